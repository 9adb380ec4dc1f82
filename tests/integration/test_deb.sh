#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The Debian package, as README's "Debian package" builds it:
# dpkg-buildpackage -us -uc -b in a copy of the tree (so nothing lands in
# the source), lintian without errors, then the .deb unpacked with dpkg -x
# into a throwaway root:
#  - the files: /usr/sbin/hamgr, the unit in /lib/systemd/system, man
#    pages, copyright, the example uncompressed (hamgr names it), notify
#    examples, and nothing under /etc (no live configuration);
#  - the unit runs /usr/sbin/hamgr with /etc/hamgr/hamgr.conf, is skipped
#    without it, and systemd-analyze verify --root accepts it;
#  - the maintainer scripts never restart the daemon on upgrade;
#  - the packaged binary accepts the packaged example.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

require_cmd dpkg-buildpackage dpkg-deb lintian fakeroot dh systemd-analyze tar
[ -n "${HAMGR_SOURCE_DIR:-}" ] || die "HAMGR_SOURCE_DIR is not set"

src=$HI_TMP/src
mkdir -p "$src"
# The tree as it is (also uncommitted edits), without build output or git.
tar -C "$HAMGR_SOURCE_DIR" --exclude=./build --exclude=./.git --exclude='./obj-*' -cf - . | tar -C "$src" -xf -
if (cd "$src" && dpkg-buildpackage -us -uc -b -j2) >"$HI_TMP/build.log" 2>&1; then
        pass "dpkg-buildpackage -us -uc -b"
else
        tail -40 "$HI_TMP/build.log"
        die "dpkg-buildpackage failed"
fi
deb=$(ls "$HI_TMP"/hamgr_*_*.deb)
[ -f "$deb" ] || die "no hamgr .deb in $HI_TMP: $(ls "$HI_TMP")"
pass "built $(basename "$deb")"

# Errors fail the test; warnings are printed for the reader.
changes=$(ls "$HI_TMP"/hamgr_*.changes)
if out=$(lintian --fail-on error "$changes" 2>&1); then
        pass "lintian: no errors"
else
        fail "lintian errors: $out"
fi
[ -z "$out" ] || printf '%s\n' "$out" | sed 's/^/    lintian: /'

root=$HI_TMP/root
dpkg -x "$deb" "$root"
files=$(dpkg-deb -c "$deb" | awk '{ print $6 }')
for f in ./usr/sbin/hamgr ./lib/systemd/system/hamgr.service ./usr/share/man/man8/hamgr.8.gz \
         ./usr/share/man/man5/hamgr.conf.5.gz ./usr/share/doc/hamgr/copyright \
         ./usr/share/doc/hamgr/hamgr.conf.example ./usr/share/doc/hamgr/examples/notify.sh; do
        assert_true "package has $f" grep -qxF "$f" <<<"$files"
done
assert_eq "$(grep '^\./etc/' <<<"$files" || true)" "" "package installs nothing under /etc"

unit=$root/lib/systemd/system/hamgr.service
assert_true "unit: ExecStart=/usr/sbin/hamgr run -c /etc/hamgr/hamgr.conf" \
        grep -qxF "ExecStart=/usr/sbin/hamgr run -c /etc/hamgr/hamgr.conf" "$unit"
assert_true "unit: skipped without /etc/hamgr/hamgr.conf" \
        grep -qxF "ConditionPathExists=/etc/hamgr/hamgr.conf" "$unit"
assert_false "unit: no Conflicts=" grep -q '^Conflicts=' "$unit"
v=$HI_TMP/verify
cp -a "$root" "$v"
mkdir -p "$v/usr/lib/systemd"
cp -a /usr/lib/systemd/system "$v/usr/lib/systemd/"
if out=$(systemd-analyze verify --man=no --root="$v" "$v/lib/systemd/system/hamgr.service" 2>&1) && [ -z "$out" ]; then
        pass "systemd-analyze verify --root on the unpacked package: clean"
else
        fail "systemd-analyze verify --root: $out"
fi

ctrl=$HI_TMP/control
dpkg-deb -e "$deb" "$ctrl"
assert_true "postinst enables the unit" grep -q "deb-systemd-helper enable 'hamgr.service'" "$ctrl/postinst"
assert_false "maintainer scripts never restart hamgr" \
        grep -qE "deb-systemd-invoke (restart|try-restart)" "$ctrl/postinst" "$ctrl/prerm"
# prerm stops it on removal only (the condition line above the stop).
assert_eq "$(grep -c "deb-systemd-invoke stop" "$ctrl/prerm" || true)" 1 "prerm: one stop"
assert_true "prerm stops hamgr on removal only, not on upgrade" \
        bash -c "grep -B1 'deb-systemd-invoke stop' '$ctrl/prerm' | head -1 | grep -qF '\"\$1\" = remove'"

set +e
out=$("$root/usr/sbin/hamgr" check -c "$root/usr/share/doc/hamgr/hamgr.conf.example" 2>&1)
rc=$?
set -e
assert_eq "$rc" 0 "packaged hamgr checks the packaged example"
set +e
out=$("$root/usr/sbin/hamgr" check -c "$HI_TMP/none.conf" 2>&1)
set -e
assert_contains "$out" "install -D -m 0600 /usr/share/doc/hamgr/hamgr.conf.example" \
        "packaged hamgr points at the packaged example"

finish
