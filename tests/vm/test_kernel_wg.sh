#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The kernel (genetlink) WireGuard backend against the kernel module, with
# wireguard-tools' wg(8) as the referee. Runs inside the guest of
# tests/vm/run-in-vm.sh (this host's kernel has no module):
#  - a fresh link: AUTO resolves to the kernel backend;
#  - sync (get, wg_device_diff, set) to 10,000 peers with two allowed IPs
#    and an endpoint each: our dump and `wg show dump` both equal the
#    configuration; a second sync finds nothing to do; a sync that removes
#    50, changes 50 and adds 50 sends exactly those 150;
#  - one peer with 1,000 allowed IPs (more than one SET message, more than
#    one GET reply message): set, read back whole by us and by wg, then
#    replaced by 2 and read back again;
#  - the errors the kernel answers: a missing link is -ENODEV.
# Needs HAMGR_WG_TOOL (tests/integration/wg_tool.c).
set -euo pipefail
# shellcheck source=../integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"

require_root
require_cmd ip wg awk sort
[ -n "${HAMGR_WG_TOOL:-}" ] || die "HAMGR_WG_TOOL is not set"
require_cmd "$HAMGR_WG_TOOL"

NODE=gw1
IFACE=wgk0
NPEERS=10000

hi_netns_add "$(ns_of "$NODE")"
node_start "$NODE"
node_exec "$NODE" ip link add "$IFACE" type wireguard ||
        die "cannot add a kernel wireguard link (is this the guest of tests/vm/run-in-vm.sh?)"

tool() {
        node_exec "$NODE" "$HAMGR_WG_TOOL" "$@"
}

# Keys masked, handshake/transfer columns dropped, allowed IPs and peers
# sorted, so that our dump and wg's compare as text.
normalize() {
        awk -F'\t' 'BEGIN { OFS = "\t" }
                NR == 1 { print "(hidden)", $2, $3, $4; next }
                {
                        psk = ($2 == "(none)") ? "(none)" : "(hidden)"
                        n = split($4, a, ",")
                        for (i = 2; i <= n; i++) { v = a[i]; j = i - 1
                                while (j > 0 && a[j] > v) { a[j + 1] = a[j]; j-- } a[j + 1] = v }
                        s = a[1]; for (i = 2; i <= n; i++) s = s "," a[i]
                        print $1, psk, $3, s, $8
                }' | { IFS= read -r head; printf '%s\n' "$head"; LC_ALL=C sort; }
}

ours() {
        tool -b kernel dump "$IFACE" | normalize
}

theirs() {
        node_exec "$NODE" wg show "$IFACE" dump | normalize
}

same_text() {
        local msg=$1
        printf '%s\n' "$2" >"$HI_TMP/got"
        printf '%s\n' "$3" >"$HI_TMP/want"
        if cmp -s "$HI_TMP/got" "$HI_TMP/want"; then
                pass "$msg ($(wc -l <"$HI_TMP/want") lines)"
        else
                fail "$msg: $(diff "$HI_TMP/want" "$HI_TMP/got" | head -n 12)"
        fi
}

umask 077
wg genkey >"$HI_TMP/priv.key"
PUB=$(wg pubkey <"$HI_TMP/priv.key")
"$HAMGR_WG_TOOL" genkeys $((NPEERS + 50)) >"$HI_TMP/keys"
[ "$(wc -l <"$HI_TMP/keys")" = $((NPEERS + 50)) ] || die "genkeys gave too few keys"

assert_eq "$(tool -b auto dump "$IFACE" | head -n1)" "$(tool -b kernel dump "$IFACE" | head -n1)" \
        "AUTO resolves to the kernel backend for a kernel link"
assert_eq "$(tool -b kernel dump "$IFACE")" $'(none)\t(none)\t0\toff' "fresh link: no key, no port, no fwmark, no peers"

# peers FIRST LAST CHANGED_FROM CHANGED_TO FORMAT: one line per peer
# FIRST..LAST-1 (keys file line i+1), two allowed IPs and an endpoint; a
# third allowed IP for CHANGED_FROM..CHANGED_TO-1. FORMAT conf: wg_tool
# tokens; dump: the normalised dump line.
peers() {
        awk -v first="$1" -v last="$2" -v cf="$3" -v ct="$4" -v fmt="$5" '
                { i = NR - 1 }
                i < first || i >= last { next }
                {
                        ips = sprintf("10.%d.%d.0/24,fd00::1:%x/128", 100 + int(i / 256), i % 256, i)
                        if (i >= cf && i < ct)
                                ips = ips sprintf(",172.16.%d.%d/32", int(i / 256), i % 256)
                        ep = sprintf("192.0.%d.%d:%d", 2 + int(i / 250) % 200, 1 + i % 250, 10000 + i)
                        if (fmt == "conf") {
                                printf "peer=%s endpoint=%s allowed_ips=%s\n", $1, ep, ips
                        } else {
                                n = split(ips, a, ",")
                                for (k = 2; k <= n; k++) { v = a[k]; j = k - 1
                                        while (j > 0 && a[j] > v) { a[j + 1] = a[j]; j-- } a[j + 1] = v }
                                s = a[1]; for (k = 2; k <= n; k++) s = s "," a[k]
                                printf "%s\t(none)\t%s\t%s\toff\n", $1, ep, s
                        }
                }' "$HI_TMP/keys"
}

conf() {
        echo "private_key_file=$HI_TMP/priv.key listen_port=51820 fwmark=0x1234"
        peers "$@" conf
}

expected() {
        printf '(hidden)\t%s\t51820\t0x1234\n' "$PUB"
        peers "$@" dump | LC_ALL=C sort
}

# ---------------------------------------------------------- 10,000 peers --
conf 0 "$NPEERS" 0 0 >"$HI_TMP/big.conf"
t0=$(hi_now_ms)
out=$(tool -b kernel -e sync "$IFACE" "$HI_TMP/big.conf") || die "sync to $NPEERS peers failed"
hi_log "sync of $NPEERS peers: $(($(hi_now_ms) - t0)) ms (TCG)"
assert_eq "$out" "diff: $NPEERS peers, flags 0x1a" "sync: $NPEERS new peers, private key, port and fwmark (0x2|0x8|0x10)"
assert_eq "$(node_exec "$NODE" wg show "$IFACE" peers | wc -l)" "$NPEERS" "wg counts $NPEERS peers"
want=$(expected 0 "$NPEERS" 0 0)
t0=$(hi_now_ms)
got=$(ours)
hi_log "read of $NPEERS peers: $(($(hi_now_ms) - t0)) ms (TCG)"
same_text "our dump matches the $NPEERS-peer configuration" "$got" "$want"
same_text "wg's dump matches the $NPEERS-peer configuration" "$(theirs)" "$want"
out=$(tool -b kernel -e sync "$IFACE" "$HI_TMP/big.conf") || die "second sync failed"
assert_eq "$out" "diff: 0 peers, flags 0x0" "a second sync finds nothing to do"

# Peers 0..49 go, 50..99 get a third allowed IP, NPEERS..NPEERS+49 are new.
conf 50 $((NPEERS + 50)) 50 100 >"$HI_TMP/big2.conf"
out=$(tool -b kernel -e sync "$IFACE" "$HI_TMP/big2.conf") || die "third sync failed"
assert_eq "$out" "diff: 150 peers, flags 0x0" "sync sends only the 150 changed peers"
want=$(expected 50 $((NPEERS + 50)) 50 100)
same_text "our dump matches after the partial change" "$(ours)" "$want"
same_text "wg's dump matches after the partial change" "$(theirs)" "$want"

# ------------------------------------------- a peer with 1,000 allowed IPs --
node_exec "$NODE" ip link del "$IFACE"
node_exec "$NODE" ip link add "$IFACE" type wireguard
BIG=$(head -n1 "$HI_TMP/keys")
ips=$(awk 'BEGIN { for (i = 0; i < 1000; i++) printf "%s10.%d.%d.0/24", (i ? "," : ""), 50 + int(i / 250), i % 250 }')
tool -b kernel set "$IFACE" peer="$BIG" allowed_ips="$ips" || die "set of 1000 allowed IPs failed"
sorted_ips=$(tr ',' '\n' <<<"$ips" | LC_ALL=C sort)
assert_eq "$(node_exec "$NODE" wg show "$IFACE" allowed-ips | cut -f2 | tr ' ' '\n' | LC_ALL=C sort)" "$sorted_ips" \
        "wg reads the 1000 allowed IPs set across several messages"
assert_eq "$(tool -b kernel dump "$IFACE" | awk -F'\t' 'NR == 2 { print $4 }' | tr ',' '\n' | LC_ALL=C sort)" "$sorted_ips" \
        "we read the 1000 allowed IPs back, the peer coalesced across reply messages"
assert_eq "$(tool -b kernel dump "$IFACE" | wc -l)" 2 "one peer, not one per message"
tool -b kernel set "$IFACE" peer="$BIG" replace_allowed_ips allowed_ips=10.1.0.0/16,fd01::/64 ||
        die "replacing the 1000 allowed IPs failed"
assert_eq "$(node_exec "$NODE" wg show "$IFACE" allowed-ips | cut -f2 | tr ' ' '\n' | LC_ALL=C sort | xargs)" \
        "10.1.0.0/16 fd01::/64" "replace_allowed_ips leaves only the 2 new ones"

# ---------------------------------------------------------------- errors --
if err=$(tool -b kernel dump nosuchwg0 2>&1); then
        fail "a missing link reads without error"
else
        assert_contains "$err" "No such device" "a missing link: ENODEV"
fi

finish
