#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Revocation is final across restarts (two gateways with wireguard-go):
#  - a peer removed on gw1 stays removed when gw2 restarts on a device
#    recreated from an old configuration that still lists it (gw2 kept its
#    state file: start-up drops the tombstoned peer);
#  - the same when gw2's device appears only after hamgr started (the
#    restore at start fails and is retried before any poll, still keeping
#    the peers the device came up with);
#  - the same when gw2's device is recreated while hamgr runs (status shows
#    it missing, then settling): written whole twice, 2 s apart, before any
#    poll, so a revoked peer the tool adds after creating the link goes;
#  - the same with gw2's state file deleted: gw2 versions nothing until it
#    merged gw1's full state, then matches it; a peer added to gw2's device
#    while it was down still replicates afterwards;
#  - two nodes that both start without state wait bootstrap_grace_s, say so
#    at WARNING, and then converge.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/wg_lab.sh"

require_root
require_cmd wireguard-go wg jq
[ -n "${HAMGR_BIN:-}" ] || die "HAMGR_BIN is not set"

VIP=10.77.0.10
GRACE=8

lab_create 2
wg_keys
sync_pair_keys

bootstrapping() {
        [ "$(hamgr_status "$1" | jq -r '.sync.bootstrapping')" = true ]
}
not_bootstrapping() {
        [ "$(hamgr_status "$1" | jq -r '.sync.bootstrapping')" = false ]
}
# listed NODE KEY: `hamgr peers` on NODE has KEY as a live peer.
listed() {
        ctl "$1" peers --json | jq -e --arg k "$2" 'any(.[]; .public_key == $k and (.removed | not))' >/dev/null
}

# recreate_gw2 KEY...: gw2's wg0 as a configuration file would bring it
# back: the gateway key, the client, and the peers KEY (10.99.9.N/32 each).
recreate_gw2() {
        local k i=1
        wg_go_stop gw2
        wg_gateway_setup gw2
        for k in "$@"; do
                node_exec gw2 wg set wg0 peer "$k" allowed-ips "10.99.9.$i/32"
                i=$((i + 1))
        done
}

wg_gateway_setup gw1
wg_gateway_setup gw2
sync_pair_conf gw1 150 1 2 "$VIP" "    bootstrap_grace_s = $GRACE;"
sync_pair_conf gw2 100 2 1 "$VIP" "    bootstrap_grace_s = $GRACE;"
hamgr_start gw1 "$HI_TMP/gw1.conf"
hamgr_start gw2 "$HI_TMP/gw2.conf"
# A first start has no state either: the pair waits out the grace period
# once (covered in detail at the end).
assert_true "first start: gw1 and gw2 connect" wait_until 10 sync_connected gw1
assert_true "first start: the bootstrap ends (grace ${GRACE} s)" wait_until $((GRACE + 10)) not_bootstrapping gw1
assert_true "first start: gw2's bootstrap ends too" wait_until 10 not_bootstrapping gw2

# ---- a revoked peer on a recreated device, gw2 kept its state
kr=$(wg genkey | wg pubkey)
ctl gw1 peer add wg0 "$kr" --allowed-ips 10.99.9.1/32
assert_true "the peer reaches gw2" wait_until 5 wg_has_peer gw2 "$kr"
ctl gw1 peer remove wg0 "$kr"
assert_true "hamgr peer remove on gw1: gone from gw2" wait_until 5 wg_no_peer gw2 "$kr"
assert_true "the removal is a tombstone on gw2" wait_until 5 sync_revoked "$kr"
hamgr_stop gw2 TERM
recreate_gw2 "$kr"
assert_true "gw2's recreated device lists the revoked peer" wg_has_peer gw2 "$kr"
hamgr_start gw2 "$HI_TMP/gw2.conf"
assert_true "restart with state: gw2 drops the revoked peer" wait_until 5 wg_no_peer gw2 "$kr"
assert_true "restart with state: reconnected" wait_until 10 sync_connected gw1
assert_true "restart with state: the peer stays revoked on both nodes for 5 s" holds_for 5 sync_revoked "$kr"
assert_true "restart with state: the client peer is still on gw2" wg_has_peer gw2 "$WG_CLIENT_PUB"
assert_contains "$(cat "$(hamgr_log gw2)")" "it was revoked" "gw2 logged the removal of the revoked peer"

# ---- the same, gw2's device created only after hamgr started (its
# wireguard-go started later): the restore at start fails and is retried,
# and no poll versions the device before it succeeded
hamgr_stop gw2 TERM
wg_go_stop gw2
hamgr_start gw2 "$HI_TMP/gw2.conf"
assert_true "late device: gw2 reconnects without its device" wait_until 10 sync_connected gw1
kd=$(wg genkey | wg pubkey) # on the device as it comes up: added while hamgr could not see it
recreate_gw2 "$kr" "$kd"
assert_true "late device: gw2 drops the revoked peer once its device is there" wait_until 5 wg_no_peer gw2 "$kr"
assert_true "late device: the peer stays revoked on both nodes for 5 s" holds_for 5 sync_revoked "$kr"
assert_true "late device: the client peer is on gw2" wg_has_peer gw2 "$WG_CLIENT_PUB"
assert_true "late device: the peer it came up with stays on gw2 and reaches gw1" wait_until 5 wg_has_peer gw1 "$kd"
assert_true "late device: and is still on gw2" wg_has_peer gw2 "$kd"

# ---- the device recreated while hamgr runs (wg-quick down, then up from a
# file that still lists the revoked peer): once gw2 has seen it gone, the
# device that comes back is written whole, then again once it settled
# (its tool adds peers after creating it), before anything is versioned.
device_field() {
        [ "$(hamgr_status gw2 | jq -r --arg f "$1" '.sync.devices[] | select(.interface == "wg0") | .[$f]')" = "$2" ]
}
wg_go_stop gw2
assert_true "recreated while running: gw2 sees its device gone (status: missing)" wait_until 5 device_field missing true
recreate_gw2 "$kr"
assert_true "recreated while running: gw2 drops the revoked peer" wait_until 8 wg_no_peer gw2 "$kr"
assert_true "recreated while running: the peer stays revoked on both nodes for 5 s" holds_for 5 sync_revoked "$kr"
assert_true "recreated while running: settled (status)" device_field settling false
assert_true "recreated while running: the client peer is on gw2" wg_has_peer gw2 "$WG_CLIENT_PUB"
assert_true "recreated while running: the peer it lacked comes back from the replica" wait_until 5 wg_has_peer gw2 "$kd"

# ---- the same with gw2's state file deleted
hamgr_stop gw2 TERM
rm -f "$HI_TMP/gw2.state/replica.state"
kl=$(wg genkey | wg pubkey) # added on gw2 by hand while its hamgr was down
recreate_gw2 "$kr" "$kl"
: >"$(hamgr_log gw2)"
hamgr_start gw2 "$HI_TMP/gw2.conf"
assert_true "no state: reconnected" wait_until 10 sync_connected gw1
assert_true "no state: gw2 drops the revoked peer once it has gw1's state" wait_until 5 wg_no_peer gw2 "$kr"
assert_true "no state: the peer stays revoked on both nodes for 5 s" holds_for 5 sync_revoked "$kr"
assert_true "no state: gw2 no longer bootstraps" not_bootstrapping gw2
assert_contains "$(cat "$(hamgr_log gw2)")" "sync gw1: merged its full state" "gw2 ended its bootstrap with gw1's state"
assert_not_contains "$(cat "$(hamgr_log gw2)")" "within $GRACE s" "gw2 did not wait out the grace period"
assert_true "no state: the peer added on gw2 while down reaches gw1" wait_until 5 wg_has_peer gw1 "$kl"
assert_true "no state: the client peer is still on gw2" wg_has_peer gw2 "$WG_CLIENT_PUB"
same_peers() {
        [ "$(node_exec gw1 wg show wg0 peers | sort)" = "$(node_exec gw2 wg show wg0 peers | sort)" ]
}
assert_true "no state: gw2's device matches gw1's" wait_until 5 same_peers
assert_true "no state: gw2 saved a state again" wait_until 5 test -s "$HI_TMP/gw2.state/replica.state"

# ---- both nodes fresh: they wait out the grace period, then converge
hamgr_stop gw1 TERM
hamgr_stop gw2 TERM
rm -f "$HI_TMP/gw1.state/replica.state" "$HI_TMP/gw2.state/replica.state"
k1=$(wg genkey | wg pubkey)
k2=$(wg genkey | wg pubkey)
node_exec gw1 wg set wg0 peer "$k1" allowed-ips 10.99.8.1/32
node_exec gw2 wg set wg0 peer "$k2" allowed-ips 10.99.8.2/32
: >"$(hamgr_log gw1)"
: >"$(hamgr_log gw2)"
hamgr_start gw1 "$HI_TMP/gw1.conf"
hamgr_start gw2 "$HI_TMP/gw2.conf"
assert_true "fresh pair: gw1 waits for a full state" wait_until 5 bootstrapping gw1
assert_true "fresh pair: gw2 waits for a full state" wait_until 5 bootstrapping gw2
out=$(ctl gw1 peer add wg0 "$(wg genkey | wg pubkey)" --allowed-ips 10.99.8.9/32 2>&1 || true)
# Checked after the request: once over, a wait never starts again.
assert_true "fresh pair: gw1 was still waiting during hamgr peer add" bootstrapping gw1
assert_contains "$out" "waiting" "fresh pair: hamgr peer add is refused while waiting"
assert_true "fresh pair: connected" wait_until 10 sync_connected gw1
# While a node waits, nothing it finds is versioned, so nothing of it
# reaches the other node.
quiet_while_waiting() {
        { ! bootstrapping gw1 || { wg_no_peer gw2 "$k1" && ! listed gw2 "$k1"; }; } &&
                { ! bootstrapping gw2 || { wg_no_peer gw1 "$k2" && ! listed gw1 "$k2"; }; }
}
assert_true "fresh pair: nothing replicated while waiting" holds_for 2 quiet_while_waiting
converged() {
        wg_has_peer gw1 "$k2" && wg_has_peer gw2 "$k1" && same_peers
}
assert_true "fresh pair: converged after the grace period" wait_until $((GRACE + 10)) converged
assert_true "fresh pair: gw1 no longer waits" not_bootstrapping gw1
assert_true "fresh pair: gw2 no longer waits" wait_until 5 not_bootstrapping gw2
# The first to give up waiting says so; the other may end its wait with
# that node's (now complete) state instead.
warned=$(cat "$(hamgr_log gw1)" "$(hamgr_log gw2)" | grep -c "warning: sync: no full state from any peer within $GRACE s" || true)
if [ "$warned" -ge 1 ]; then
        pass "fresh pair: giving up waiting was logged at WARNING ($warned node(s))"
else
        fail "fresh pair: no WARNING about giving up waiting"
fi

finish
