#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Clearing endpoints never leaves a peer removed, even for an instant: when
# a node goes passive (at start, on FAULT), hamgr clears its peers'
# endpoints by removing each peer and creating it again. Sent as two
# requests (all removals, then all re-creations), a hamgr killed between
# them lost every peer with an endpoint for good (seen in CI: a gateway
# killed -9 right after its link went down came back with no peers). Now
# each removal and its re-creation travel in one UAPI request or one
# kernel message, which the device applies whole.
#
# A watcher reads the device (wg show, as fast as it can) while hamgr
# strips 2,000 peers, at start and on three FAULTs; the moment it sees a
# peer missing it kills hamgr -9, as a crash there would. Each time: the
# watcher never saw a peer missing, the device ends with every peer and
# its allowed IPs, and no endpoint.
# shellcheck disable=SC2317 # helpers run through wait_until
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/wg_lab.sh"

require_hamgr
require_cmd wireguard-go wg python3 jq

N=${RELEASE_N:-2000}
ROUNDS=3

lab_create 1
wg_keys
wg_random_peers "$N" endpoint v6 >"$HI_TMP/peers.conf"
wg_gateway_setup gw1
WANT=$((N + 1)) # and the client's peer

HC_INTERVAL_MS=100 write_hamgr_conf "$(conf_of gw1)" gw1 150 "$(cat <<EOF
wireguard = ( { interface = "wg0"; backend = "$WG_BACKEND"; follow = "wan"; } );
EOF
)"

# The device as wg shows it: "peers allowed-ips endpoints" counts.
device_counts() {
        local peers ips eps
        peers=$(node_exec gw1 wg show wg0 peers | wc -l)
        ips=$(node_exec gw1 wg show wg0 allowed-ips | awk '{ n += NF - 1 } END { print n + 0 }')
        eps=$(node_exec gw1 wg show wg0 endpoints | awk '$2 != "(none)"' | wc -l)
        echo "$peers $ips $eps"
}
endpoints_gone() {
        [ "$(node_exec gw1 wg show wg0 endpoints | awk '$2 != "(none)"' | wc -l)" = 0 ]
}
passive() {
        [ "$(hamgr_status gw1 | jq -r '.wireguard[0].phase')" = passive ]
}

# watch_start PID: in the background, until stopped (at most 30 s), count
# the device's peers; on fewer than $WANT, kill -9 PID and record the count.
watch_start() {
        local pid=$1
        rm -f "$HI_TMP/watch.seen"
        (
                end=$((SECONDS + 30))
                while [ "$SECONDS" -lt "$end" ]; do
                        c=$(node_exec gw1 wg show wg0 peers 2>/dev/null | wc -l)
                        if [ "$c" -lt "$WANT" ]; then
                                kill -9 "$pid" 2>/dev/null || true
                                echo "$c" >"$HI_TMP/watch.seen"
                                exit 0
                        fi
                done
        ) &
        WATCH_PID=$!
}
watch_stop() {
        kill "$WATCH_PID" 2>/dev/null || true
        wait "$WATCH_PID" 2>/dev/null || true
}

# check_round WHAT: the watcher saw every peer, the device has them all,
# with their allowed IPs and without endpoints.
check_round() {
        local what=$1 seen=""
        if [ -f "$HI_TMP/watch.seen" ]; then
                seen=$(cat "$HI_TMP/watch.seen")
                hi_expect_exit "${HAMGR_PID[gw1]}" 137
                unset 'HAMGR_PID[gw1]'
        fi
        assert_eq "$seen" "" "$what: no reader saw a peer missing (fewer than $WANT peers: hamgr killed there)"
        assert_eq "$(device_counts)" "$WANT $((2 * N + 1)) 0" \
                "$what: every peer and allowed IP still there, no endpoint left"
}

# At start: the endpoints of the device it finds are cleared. eth1 (tracked)
# is down, so the node stays passive (FAULT) instead of taking over and
# staging the endpoints again.
node_exec gw1 wg addconf wg0 "$HI_TMP/peers.conf"
assert_eq "$(device_counts)" "$WANT $((2 * N + 1)) $N" "the device has $N peers with endpoints"
node_link gw1 eth1 down
hamgr_start gw1 "$(conf_of gw1)"
watch_start "${HAMGR_PID[gw1]}"
wait_until 60 endpoints_gone || [ -f "$HI_TMP/watch.seen" ] || fail "start: endpoints not cleared in 60 s"
watch_stop
check_round "start"
hamgr_alive gw1 || hamgr_start gw1 "$(conf_of gw1)"
node_link gw1 eth1 up

for round in $(seq 1 "$ROUNDS"); do
        wait_until 10 hamgr_state_is gw1 wan MASTER || die "round $round: gw1 not MASTER"
        node_exec gw1 wg addconf wg0 "$HI_TMP/peers.conf"
        # FAULT (the tracked eth1 goes down): the node goes passive.
        watch_start "${HAMGR_PID[gw1]}"
        node_link gw1 eth1 down
        wait_until 60 endpoints_gone || [ -f "$HI_TMP/watch.seen" ] || fail "round $round: endpoints not cleared in 60 s"
        watch_stop
        check_round "FAULT $round"
        if hamgr_alive gw1; then
                assert_true "round $round: hamgr's follower is passive" wait_until 10 passive
        else
                hamgr_start gw1 "$(conf_of gw1)"
        fi
        node_link gw1 eth1 up
done
# Nobody but hamgr touched wg0's link: a "came up while passive" would be
# hamgr reading its own link-down late and releasing (stripping) twice.
assert_eq "$(grep -c "came up while this node is passive" "$(hamgr_log gw1)" || true)" 0 \
        "hamgr never mistook its own link-down for someone bringing wg0 up"
finish
