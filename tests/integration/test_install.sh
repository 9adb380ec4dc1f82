#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# README's "Build and install", done literally: its cmake lines are taken
# from README.md and run (build directory and DESTDIR in a throwaway
# place) for the default prefix and for -DCMAKE_INSTALL_PREFIX=/usr. Then:
#  - the files: binary, man pages, example under share/doc, the unit where
#    systemd reads units, and nothing at all under etc (no live config);
#  - the unit runs the installed binary with the installed config path,
#    is skipped while that config is missing, does not conflict with
#    keepalived, and `systemd-analyze verify --root` accepts it with the
#    installed tree as root; with the binary taken away the same verify
#    fails (so ExecStart's executability is what was checked);
#  - systemd-analyze security exposure at most 3.0;
#  - the installed binary accepts the installed example (`check`), and
#    `run`/`check` without a configuration explain how to create one.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

require_cmd cmake systemd-analyze awk
[ -n "${HAMGR_SOURCE_DIR:-}" ] || die "HAMGR_SOURCE_DIR is not set"
cd "$HAMGR_SOURCE_DIR"

# The fenced block after "## Build and install": its cmake lines, comments
# cut. Three are expected: configure, build, install.
readme_cmake=$(awk '/^## Build and install/ { s = 1; next }
                    s && /^```/ { if (in_block) exit; in_block = 1; next }
                    s && in_block && /^(sudo )?cmake / { sub(/[ \t]*#.*/, ""); sub(/^sudo /, ""); print }' README.md)
[ "$(printf '%s\n' "$readme_cmake" | grep -c .)" -eq 3 ] ||
        die "README.md Build and install: expected 3 cmake lines, found: $readme_cmake"
printf '%s\n' "$readme_cmake" | sed 's/^/    README: /'

# readme_build DIR DESTDIR [CMAKE ARGS...]: the README's lines with build
# directory DIR, -j2 (shared machine), extra configure arguments, and
# DESTDIR for the install.
readme_build() {
        local dir=$1 destdir=$2 line
        shift 2
        while IFS= read -r line; do
                line=${line//" build"/" $dir"}
                line=$(printf '%s' "$line" | sed 's/ -j$/ -j2/; s/ -j / -j2 /')
                case $line in
                "cmake -S "*) line="$line $*" ;;
                "cmake --install "*) line="env DESTDIR=$destdir $line" ;;
                esac
                echo "    \$ $line"
                eval "$line" >"$HI_TMP/cmake.log" 2>&1 || { cat "$HI_TMP/cmake.log"; return 1; }
        done <<<"$readme_cmake"
}

# check_tree NAME DESTDIR PREFIX SYSCONFDIR UNITDIR
check_tree() {
        local name=$1 d=$2 prefix=$3 etc=$4 unitdir=$5
        local bin=$prefix/sbin/hamgr conf=$etc/hamgr/hamgr.conf
        local example=$prefix/share/doc/hamgr/hamgr.conf.example
        local unit=$d$unitdir/hamgr.service out rc

        assert_true "$name: $bin is executable" test -x "$d$bin"
        assert_true "$name: hamgr(8)" test -f "$d$prefix/share/man/man8/hamgr.8"
        assert_true "$name: hamgr.conf(5)" test -f "$d$prefix/share/man/man5/hamgr.conf.5"
        assert_true "$name: $example" test -f "$d$example"
        assert_true "$name: notify example" test -f "$d$prefix/share/doc/hamgr/examples/notify.sh"
        assert_true "$name: unit in $unitdir" test -f "$unit"
        assert_eq "$(cd "$d" && find . -path '*/etc/*' | head -3)" "" "$name: nothing installed under an etc directory"

        assert_true "$name: unit runs $bin run -c $conf" grep -qxF "ExecStart=$bin run -c $conf" "$unit"
        assert_true "$name: unit checks before start" grep -qxF "ExecStartPre=$bin check -c $conf" "$unit"
        assert_true "$name: unit skipped without $conf" grep -qxF "ConditionPathExists=$conf" "$unit"
        assert_false "$name: no Conflicts= (keepalived)" grep -q '^Conflicts=' "$unit"
        assert_false "$name: no @VARIABLE@ left" grep -q '@[A-Z_]*@' "$unit"

        # verify --root resolves ExecStart inside the root; the root needs
        # systemd's own units for the dependencies (network-online.target).
        local v=$HI_TMP/verify-$name
        rm -rf "$v"
        cp -a "$d" "$v"
        mkdir -p "$v/usr/lib/systemd"
        cp -a /usr/lib/systemd/system "$v/usr/lib/systemd/"
        [ -e "$v/lib" ] || ln -s usr/lib "$v/lib"
        if out=$(systemd-analyze verify --man=no --root="$v" "$v$unitdir/hamgr.service" 2>&1) && [ -z "$out" ]; then
                pass "$name: systemd-analyze verify --root: clean"
        else
                fail "$name: systemd-analyze verify --root: $out"
        fi
        rm "$v$bin"
        if out=$(systemd-analyze verify --man=no --root="$v" "$v$unitdir/hamgr.service" 2>&1); then
                fail "$name: verify without the binary passed, so it did not check ExecStart: $out"
        else
                assert_contains "$out" "$bin is not executable" "$name: verify without the binary"
        fi

        if out=$(systemd-analyze security --offline=true --threshold=30 --root="$d" hamgr.service 2>&1); then
                pass "$name: $(printf '%s\n' "$out" | grep 'Overall exposure')"
        else
                fail "$name: security exposure above 3.0: $(printf '%s\n' "$out" | tail -1)"
        fi

        set +e
        out=$("$d$bin" check -c "$d$example" 2>&1)
        rc=$?
        set -e
        assert_eq "$rc" 0 "$name: installed hamgr checks the installed example"
        assert_contains "$out" "OK" "$name: check says"

        # Without -c: the built-in path, which must not exist here (a real
        # config would start a daemon on this host).
        [ ! -e "$conf" ] || die "$conf exists on this host: cannot test hamgr run without a configuration"
        local cmd
        for cmd in run check; do
                set +e
                out=$("$d$bin" $cmd 2>&1)
                rc=$?
                set -e
                assert_eq "$rc" 1 "$name: hamgr $cmd without a configuration: exit status"
                assert_contains "$out" "no configuration file at $conf" "$name: hamgr $cmd names the missing file"
                assert_contains "$out" "install -D -m 0600 $example $conf" "$name: hamgr $cmd says how to create it"
                assert_contains "$out" "hamgr check -c $conf" "$name: hamgr $cmd says how to validate it"
        done
}

readme_build "$HI_TMP/build-local" "$HI_TMP/root-local"
check_tree local "$HI_TMP/root-local" /usr/local /usr/local/etc /usr/local/lib/systemd/system

# Tests off for the second tree only to halve the build time; they do not
# change what is installed.
readme_build "$HI_TMP/build-usr" "$HI_TMP/root-usr" -DCMAKE_INSTALL_PREFIX=/usr -DHAMGR_TESTS=OFF
check_tree usr "$HI_TMP/root-usr" /usr /etc /usr/lib/systemd/system

finish
