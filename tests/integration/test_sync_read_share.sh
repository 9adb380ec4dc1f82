#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The backup reads a large device at most a tenth of the time (README
# "Replication", hamgr.conf(5) poll_interval_ms): wireguard-go holds its
# configuration lock for a whole read, and a change merged from the master
# waits for it. Two gateways with wireguard-go, 20,000 peers loaded on gw1
# and replicated to gw2, both polling every 200 ms:
#  - gw1 (master, its interface up) reads its device at its interval;
#  - gw2 (backup, interface down) waits ten times its last read's length
#    between reads: over 10 s it reads less than half as often as gw1,
#    and its status shows the read length it waits on (last_read_ms);
#  - it still reads: a peer added by hand on gw2's device reaches gw1.
# Needs HAMGR_BIN.
# shellcheck disable=SC2317 # helpers are called through wait_until
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/wg_lab.sh"

require_root
require_cmd wireguard-go wg jq
[ -n "${HAMGR_BIN:-}" ] || die "HAMGR_BIN is not set"

VIP=10.77.0.10
N=20000
WINDOW_S=10

lab_create 2
wg_keys
sync_pair_keys
wg_gateway_setup gw1
wg_gateway_setup gw2
wg_gen_peers "$N" 0 >"$HI_TMP/peers.conf"
node_exec gw1 wg addconf wg0 "$HI_TMP/peers.conf"
rm -f "$HI_TMP/peers.conf"
SYNC_LINES="    bootstrap_grace_s = 0;"
sync_pair_conf gw1 150 1 2 "$VIP" "$SYNC_LINES"
sync_pair_conf gw2 100 2 1 "$VIP" "$SYNC_LINES"
hamgr_start gw1 "$HI_TMP/gw1.conf"
wait_until 15 hamgr_state_is gw1 wan MASTER || die "gw1 not MASTER"
hamgr_start gw2 "$HI_TMP/gw2.conf"
wait_until 15 hamgr_state_is gw2 wan BACKUP || die "gw2 not BACKUP"
wait_until 10 sync_connected gw1 || die "gw1 and gw2 did not connect"
peers_on() {
        [ "$(node_exec "$1" wg show wg0 peers | wc -l)" -ge "$2" ]
}
wait_until 60 peers_on gw2 "$N" || die "gw2 did not get the $N peers"
sleep 2

# reads NODE: the versioned reads of NODE's wg0 so far, of every kind.
reads() {
        hamgr_status "$1" | jq '.sync.devices[0] | .reads_unchanged + .reads_partial + .reads_whole'
}
r1=$(reads gw1) r2=$(reads gw2)
sleep "$WINDOW_S"
d1=$(($(reads gw1) - r1)) d2=$(($(reads gw2) - r2))
len1=$(hamgr_status gw1 | jq '.sync.devices[0].last_read_ms')
len2=$(hamgr_status gw2 | jq '.sync.devices[0].last_read_ms')
hi_log "reads of $N peers in ${WINDOW_S} s: gw1 (master) $d1, last ${len1} ms; gw2 (backup) $d2, last ${len2} ms"
assert_true "gw1 (master) reads at its interval: more than $WINDOW_S reads in $WINDOW_S s ($d1)" test "$d1" -gt "$WINDOW_S"
assert_true "gw2 (backup) still reads ($d2 in $WINDOW_S s)" test "$d2" -ge 1
assert_true "gw2 (backup) reads less than half as often as gw1 ($d2 against $d1)" test $((2 * d2)) -lt "$d1"
assert_true "gw2's status shows the read length it waits on (last_read_ms $len2)" test "$len2" -ge 1

k=$(wg genkey | wg pubkey)
node_exec gw2 wg set wg0 peer "$k" allowed-ips 10.99.1.1/32
assert_true "a peer added by hand on gw2 still reaches gw1" wait_until 10 wg_has_peer gw1 "$k"

finish
