#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# A compromised but authenticated node (docs/sync-protocol.md, "Threat
# model"): gw2's sync key in the hands of sync_rogue, which completes the
# real handshake from gw2's address and then sends what an honest hamgr
# never would. Two gateways with wireguard-go; gw2's hamgr is stopped while
# the rogue speaks for it.
#  - the tool is shown to speak the protocol: an honest batch is merged,
#    acknowledged and written to gw1's device;
#  - batches that break the rules are refused whole, the connection is
#    closed, and nothing of them reaches gw1's device or `hamgr peers`:
#    versions an hour ahead and at the greatest value the clock has,
#    records claiming an unknown node as writer, endpoints at a loopback,
#    multicast or port-0 address, and an honest record riding in the same
#    batch as a bad one;
#  - what §9 says remains possible: a record attributed to gw1 itself is
#    merged (relaying a node's own records back is how it recovers a lost
#    state file) and listed with gw1 as its origin;
#  - gw1 logs the refusals at most once a minute and the disconnections at
#    most once a second (all of them counted in status), and its VRRP
#    state never moves;
#  - a rogue that sends 100 batches without waiting while gw1's save is
#    held (strace delays its fsync()) is cut off once 64 acknowledgements
#    wait, and gw1 goes on;
#  - the clock was not dragged: with gw2's real hamgr back, gw1 adds a peer
#    and gw2 then removes it; the later removal wins on both nodes (a gw1
#    clock at the greatest version would have kept the peer for good).
# Needs HAMGR_BIN and HAMGR_SYNC_ROGUE.
# shellcheck disable=SC2317 # helpers are called through wait_until/holds_for
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/wg_lab.sh"

require_hamgr
require_cmd wireguard-go wg strace
require_tool HAMGR_SYNC_ROGUE sync_rogue

VIP=10.77.0.10

lab_create 2
wg_keys
sync_pair_keys
wg_gateway_setup gw1
wg_gateway_setup gw2
sync_pair_conf gw1 150 1 2 "$VIP" "    bootstrap_grace_s = 0;"
sync_pair_conf gw2 100 2 1 "$VIP" "    bootstrap_grace_s = 0;"
hamgr_start gw1 "$HI_TMP/gw1.conf"
wait_until 10 hamgr_state_is gw1 wan MASTER || die "gw1 not MASTER"
hamgr_start gw2 "$HI_TMP/gw2.conf"
assert_true "gw1 and gw2 connect" wait_until 10 sync_connected gw1
transitions0=$(inst_field gw1 wan .counters.transitions)
# From here on gw2's key belongs to the rogue.
hamgr_stop gw2 TERM

# rogue STEP...: sync_rogue as gw2, from gw2's address, to gw1. Its output
# (one line per event) in $HI_TMP/rogue.out, its status returned.
rogue() {
        node_exec gw2 "$HAMGR_SYNC_ROGUE" "$HI_TMP/gw2.sync.key" "${SYNC_PUB[1]}" 10.77.0.1:7789 gw2 "$@" \
                >"$HI_TMP/rogue.out" 2>"$HI_TMP/rogue.err"
}
# sent_keys: the public keys of the records the last rogue run sent.
sent_keys() {
        awk '$1 == "sent" { print $4 }' "$HI_TMP/rogue.out"
}
refused() {
        hamgr_status gw1 | jq -r '.sync.refused_batches'
}
# on_gw1 KEY: on gw1's device or a live peer in its `hamgr peers`.
on_gw1() {
        wg_has_peer gw1 "$1" ||
                ctl gw1 peers --json | jq -e --arg k "$1" 'any(.[]; .public_key == $k and (.removed | not))' >/dev/null
}

# ---- the tool speaks the protocol
if rogue batch:ok expect-ack; then
        pass "an honest batch from gw2's key is acknowledged"
else
        fail "an honest batch from gw2's key is acknowledged: $(cat "$HI_TMP/rogue.err")"
fi
ok_key=$(sent_keys)
assert_true "and written to gw1's device" wait_until 3 wg_has_peer gw1 "$ok_key"

# ---- what remains possible: a write attributed to gw1
if rogue batch:writer-target expect-ack; then
        pass "a record attributed to gw1 itself is merged (docs/sync-protocol.md §9)"
else
        fail "a record attributed to gw1 itself is merged: $(cat "$HI_TMP/rogue.err")"
fi
forged=$(sent_keys)
assert_eq "$(ctl gw1 peers --json | jq -r --arg k "$forged" '.[] | select(.public_key == $k) | .origin')" gw1 \
        "and listed with gw1 as its origin"

# ---- batches that break the rules
r0=$(refused)
d0=$(hamgr_status gw1 | jq -r '.sync.peers[0].disconnects')
lines0=$(hamgr_log_count gw1 'sync gw2: disconnected')
n=0
t_loop=$(hi_now_ms)
for kind in future max writer-invented endpoint-loopback endpoint-port0 endpoint-multicast ok+future; do
        if rogue "batch:$kind" expect-close; then
                pass "$kind: gw1 closes the connection ($(awk '$1 == "closed"' "$HI_TMP/rogue.out"))"
        else
                fail "$kind: gw1 closes the connection: $(cat "$HI_TMP/rogue.err")"
        fi
        n=$((n + 1))
        assert_eq "$(refused)" $((r0 + n)) "$kind: gw1 counts the batch refused"
        for k in $(sent_keys); do
                assert_false "$kind: record ${k:0:8}... is on neither gw1's device nor its hamgr peers" on_gw1 "$k"
        done
done
assert_eq "$(hamgr_log_count gw1 'refused a change batch')" 1 \
        "$n refusals within a minute: gw1 logged one line (the rest counted)"
assert_eq "$(hamgr_status gw1 | jq -r '.sync.peers[0].disconnects')" $((d0 + n)) "gw1 counts $n disconnections"
secs=$((($(hi_now_ms) - t_loop) / 1000))
lines=$(($(hamgr_log_count gw1 'sync gw2: disconnected') - lines0))
if [ "$lines" -le $((secs + 1)) ]; then
        pass "gw1 logged $lines of the $n disconnections in ${secs}-$((secs + 1)) s (one a second at most)"
else
        fail "gw1 logged $lines of the $n disconnections in ${secs}-$((secs + 1)) s: $(grep -F 'sync gw2: disconnected' "$(hamgr_log gw1)")"
fi
# A second on, the next disconnection is logged with the number held back
# since the last line (if any): then every disconnection so far is in the
# log, as a line of its own or in a later line's count.
sleep 1.1
rogue batch:future expect-close || fail "one more refused batch: $(cat "$HI_TMP/rogue.err")"
disc_lines=$(grep -F 'sync gw2: disconnected' "$(hamgr_log gw1)")
held=$(grep -oE '[0-9]+ more since the last line' <<<"$disc_lines" | awk '{ s += $1 } END { print s + 0 }')
assert_eq $(($(grep -c . <<<"$disc_lines") + held)) "$(hamgr_status gw1 | jq -r '.sync.peers[0].disconnects')" \
        "every disconnection is in gw1's log, as a line or in a later line's count ($held held back)"
assert_eq "$(inst_field gw1 wan .counters.transitions)" "$transitions0" "gw1's VRRP state did not move"

# ---- acknowledgements that cannot keep up: a flood while the save is held
hamgr_hold_syscall gw1 fsync 6000000 "$HI_TMP/gw1.fsync.trace"
if rogue flood:100 expect-close; then
        pass "a flood of 100 unacknowledged batches during a held save: gw1 cuts the connection"
else
        fail "a flood of 100 unacknowledged batches during a held save: gw1 cuts the connection: $(cat "$HI_TMP/rogue.err")"
fi
# The last line before was logged at least a second ago (the hold's wait).
assert_true "gw1 says why" wait_until 2 grep -qF "too many batches sent unacknowledged" "$(hamgr_log gw1)"
sent=$(grep -c '^sent ' "$HI_TMP/rogue.out")
acked=$(awk '$1 == "acked" { a = $2 } END { print a + 0 }' "$HI_TMP/rogue.out")
assert_eq "$acked" 1 "none of the $sent batches sent was acknowledged (only the empty catch-up, seq 1): the save was held"
# strace writes a held call's line once it returns or strace detaches.
hamgr_release_syscall
assert_contains "$(cat "$HI_TMP/gw1.fsync.trace")" "fsync(" "gw1's save reached fsync() and was held there"
assert_true "gw1 is MASTER" hamgr_state_is gw1 wan MASTER
assert_eq "$(inst_field gw1 wan .counters.transitions)" "$transitions0" "gw1's VRRP state did not move"

# ---- gw2's real hamgr back: the clock was not dragged
hamgr_start gw2 "$HI_TMP/gw2.conf"
assert_true "gw2's hamgr reconnects" wait_until 15 sync_connected gw1
kc=$(wg genkey | wg pubkey)
ctl gw1 peer add wg0 "$kc" --allowed-ips 10.99.8.1/32
assert_true "a peer added on gw1 reaches gw2" wait_until 5 wg_has_peer gw2 "$kc"
ctl gw2 peer remove wg0 "$kc"
assert_true "gw2 removes it afterwards: it leaves gw1's device too" wait_until 5 wg_no_peer gw1 "$kc"
assert_true "and stays removed on both for 3 s" holds_for 3 sync_revoked "$kc"
assert_true "the honest rogue batch's peer reached gw2 as well" wait_until 5 wg_has_peer gw2 "$ok_key"

hamgr_stop gw1
hamgr_stop gw2
finish
