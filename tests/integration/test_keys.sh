#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# hamgr genkey / pubkey: keys in wg's format, the same public key as
# `wg pubkey` derives, bad input refused. Needs no namespace.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

require_cmd wg
[ -n "${HAMGR_BIN:-}" ] || die "HAMGR_BIN is not set"

key=$("$HAMGR_BIN" genkey)
assert_true "genkey prints 44 base64 characters" grep -qE '^[A-Za-z0-9+/]{43}=$' <<<"$key"
assert_eq "$("$HAMGR_BIN" pubkey <<<"$key")" "$(wg pubkey <<<"$key")" "pubkey equals wg pubkey"
key2=$("$HAMGR_BIN" genkey)
assert_true "two genkey calls differ" test "$key" != "$key2"
wgkey=$(wg genkey)
assert_eq "$("$HAMGR_BIN" pubkey <<<"$wgkey")" "$(wg pubkey <<<"$wgkey")" "pubkey of a wg genkey key equals wg pubkey"
if out=$("$HAMGR_BIN" pubkey <<<"not a key" 2>&1); then
        fail "pubkey accepted garbage: $out"
else
        pass "pubkey refuses garbage: $out"
fi
rc=0
"$HAMGR_BIN" genkey extra >/dev/null 2>&1 || rc=$?
assert_eq "$rc" 2 "genkey with an argument is a usage error"

finish
