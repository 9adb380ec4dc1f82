#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Tombstone collection between two gateways with wireguard-go
# (tombstone_retention_s = 2, so collection runs every second):
#  - a peer removed on gw1, merged and saved by gw2, has its tombstone
#    collected on gw1 once gw2 acknowledged it and it is 2 s old, and
#    `hamgr peers` no longer lists it;
#  - the worst moment for a restart: gw2 merges another removal (the peer
#    leaves its device) but its state file save is held (strace delays its
#    fsync() by 8 s) and gw2 is killed meanwhile. An acknowledgement sent
#    before the save would let gw1 collect the tombstone after 2 s, and gw2,
#    restarting from its older state file that still holds the peer live,
#    would bring the revoked peer back on both nodes. Asserted: gw1 keeps
#    the tombstone while gw2 is down (well past the retention), the peer
#    stays off both devices and out of both `hamgr peers` for 5 s after
#    gw2's restart, and gw1 collects the tombstone once gw2 has saved and
#    acknowledged it;
#  - the same while gw2 is stopped cleanly before it ever received the
#    removal: nothing is collected until it is back and has acknowledged.
# Needs HAMGR_BIN.
# shellcheck disable=SC2317 # helpers are called through wait_until/holds_for
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/wg_lab.sh"

require_root
require_cmd wireguard-go wg jq strace
[ -n "${HAMGR_BIN:-}" ] || die "HAMGR_BIN is not set"

VIP=10.77.0.10
RETENTION=2

lab_create 2
wg_keys
sync_pair_keys
SYNC_LINES="    bootstrap_grace_s = 3;
    tombstone_retention_s = $RETENTION;"

collected() {
        hamgr_status "$1" | jq -r '.sync.tombstones_collected'
}
collected_at_least() {
        [ "$(collected "$1")" -ge "$2" ]
}
not_bootstrapping() {
        [ "$(hamgr_status "$1" | jq -r '.sync.bootstrapping')" = false ]
}
# tombstone NODE KEY: `hamgr peers` on NODE lists KEY as removed.
tombstone() {
        ctl "$1" peers --json | jq -e --arg k "$2" 'any(.[]; .public_key == $k and .removed)' >/dev/null
}
# unlisted NODE KEY: `hamgr peers` on NODE does not list KEY at all.
unlisted() {
        ctl "$1" peers --json | jq -e --arg k "$2" 'all(.[]; .public_key != $k)' >/dev/null
}
# add_everywhere KEY N: added on gw1, on gw2's device too.
add_everywhere() {
        ctl gw1 peer add wg0 "$1" --allowed-ips "10.99.9.$2/32"
        wait_until 5 wg_has_peer gw2 "$1" || die "peer $2 did not reach gw2"
}

wg_gateway_setup gw1
wg_gateway_setup gw2
sync_pair_conf gw1 150 1 2 "$VIP" "$SYNC_LINES"
sync_pair_conf gw2 100 2 1 "$VIP" "$SYNC_LINES"
hamgr_start gw1 "$HI_TMP/gw1.conf"
hamgr_start gw2 "$HI_TMP/gw2.conf"
assert_true "gw1 and gw2 connect" wait_until 10 sync_connected gw1
assert_true "the first start's bootstrap ends" wait_until 15 not_bootstrapping gw1
wait_until 10 not_bootstrapping gw2 || die "gw2 still bootstrapping"

# ---- collection: acknowledged and older than the retention
ka=$(wg genkey | wg pubkey)
add_everywhere "$ka" 1
c0=$(collected gw1)
ctl gw1 peer remove wg0 "$ka"
assert_true "a removal on gw1 leaves gw2's device" wait_until 5 wg_no_peer gw2 "$ka"
assert_true "gw1 holds it as a tombstone" tombstone gw1 "$ka"
assert_true "acknowledged and ${RETENTION} s old: gw1 collects the tombstone" \
        wait_until $((RETENTION + 8)) collected_at_least gw1 $((c0 + 1))
assert_true "collected: gw1's hamgr peers no longer lists it" unlisted gw1 "$ka"

# ---- the worst moment: merged, not yet saved, killed
kb=$(wg genkey | wg pubkey)
add_everywhere "$kb" 2
# Saves before the removal's are done: the state file holds kb live.
sleep 1
c1=$(collected gw1)
hamgr_hold_syscall gw2 fsync 8000000 "$HI_TMP/gw2.fsync.trace"
ctl gw1 peer remove wg0 "$kb"
assert_true "held save: gw2 merged the removal (off its device)" wait_until 5 wg_no_peer gw2 "$kb"
# The merge's save is now held in fsync(); give an early ack time to arrive.
sleep 1
assert_contains "$(cat "$HI_TMP/gw2.fsync.trace")" "fsync(" "held save: gw2's save reached fsync() and is held there"
hamgr_stop gw2 KILL
hamgr_release_syscall
sleep $((RETENTION + 2))
assert_eq "$(collected gw1)" "$c1" "gw2 killed before its save ended: gw1 collected nothing, $((RETENTION + 2)) s on"
assert_true "gw1 still holds the tombstone" tombstone gw1 "$kb"
hamgr_start gw2 "$HI_TMP/gw2.conf"
assert_true "gw2 restarted from its older state file: reconnected" wait_until 10 sync_connected gw1
assert_true "the revoked peer stays off both devices and both nodes' peers for 5 s" holds_for 5 sync_revoked "$kb"
assert_true "saved and acknowledged after the restart: gw1 collects the tombstone" \
        wait_until $((RETENTION + 10)) collected_at_least gw1 $((c1 + 1))
assert_true "and the peer is still revoked" sync_revoked "$kb"

# ---- a node away: nothing collected until it is back and acknowledged
kc=$(wg genkey | wg pubkey)
add_everywhere "$kc" 3
sleep 1
c2=$(collected gw1)
hamgr_stop gw2 TERM
ctl gw1 peer remove wg0 "$kc"
sleep $((RETENTION + 3))
assert_eq "$(collected gw1)" "$c2" "gw2 away: gw1 collected nothing, $((RETENTION + 3)) s after the removal"
hamgr_start gw2 "$HI_TMP/gw2.conf"
assert_true "gw2 back: it drops the peer removed while it was away" wait_until 10 wg_no_peer gw2 "$kc"
assert_true "gw2 back: gw1 collects once it acknowledged" \
        wait_until $((RETENTION + 10)) collected_at_least gw1 $((c2 + 1))
assert_true "gw2 back: the peer stays revoked for 5 s" holds_for 5 sync_revoked "$kc"

hamgr_stop gw1
hamgr_stop gw2
finish
