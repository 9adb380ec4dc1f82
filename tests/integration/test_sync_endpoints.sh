#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The master's learned endpoints reach the backup (README), end to end with
# wireguard-go and sync between two gateways:
#  - a client connects through the VIP to gw1 (master); gw1's device learns
#    its endpoint;
#  - gw2 (backup, never master while the client was there) then has that
#    endpoint in its replicated state (hamgr peers --json), in its
#    takeover's known endpoints (status) and in its endpoint store;
#  - gw1 (master, idle) skips the endpoint store's snapshot reads while its
#    sync poll finds the device unchanged, and still stores a roam of the
#    client within a snapshot interval; gw2 replicates the new endpoint;
#    after gw2 reconnects (its catch-up merged on gw1), gw1 skips again;
#  - kill -9 of gw1 with its link down: gw2 takes over, kicks the client
#    from the VIP to exactly that endpoint, and the tunnel is back well
#    before the client's own retry (~15 s) could have brought it back.
# test_wg_takeover.sh covers the same takeover without sync, where the
# backup must have served the client once itself.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/wg_lab.sh"

require_hamgr
require_cmd wireguard-go wg tcpdump ping

VIP=10.77.0.10
declare -A pub=()

lab_create 2
wg_keys
for g in gw1 gw2; do
        (umask 077; "$HAMGR_BIN" genkey >"$HI_TMP/$g.sync.key")
        chmod 600 "$HI_TMP/$g.sync.key"
        pub[$g]=$("$HAMGR_BIN" pubkey <"$HI_TMP/$g.sync.key")
done

# write_conf NODE PRIORITY ME OTHER
write_conf() {
        local node=$1 prio=$2 me=$3 other=$4
        HC_TRACK= HC_INTERVAL_MS=100 write_hamgr_conf "$(conf_of "$node")" "$node" "$prio" "$(cat <<EOF
wireguard = ( { interface = "wg0"; backend = "uapi"; follow = "wan"; source_address = "$VIP"; } );
sync = {
    listen = "10.77.0.$me:7789";
    private_key_file = "$HI_TMP/$node.sync.key";
    bootstrap_grace_s = 0; # a new pair replicates at once (test_sync_revoke.sh: the wait)
    poll_interval_ms = 200;
    peers = ( { name = "gw$other"; address = "10.77.0.$other:7789"; public_key = "${pub[gw$other]}"; } );
};
EOF
)"
        "$HAMGR_BIN" check -c "$(conf_of "$node")" >/dev/null ||
                die "hamgr check: $("$HAMGR_BIN" check -c "$(conf_of "$node")" 2>&1)"
}

wg_gateway_setup gw1
wg_gateway_setup gw2
write_conf gw1 150 1 2
write_conf gw2 100 2 1
hamgr_start gw1 "$(conf_of gw1)"
wait_until 10 hamgr_state_is gw1 wan MASTER || die "gw1 not MASTER"
hamgr_start gw2 "$(conf_of gw2)"
wait_until 10 hamgr_state_is gw2 wan BACKUP || die "gw2 not BACKUP"
connected() {
        [ "$(hamgr_status "$1" | jq -r '.sync.peers[0].connected')" = true ]
}
wait_until 10 connected gw2 || die "gw1 and gw2 did not connect"

# ---- the client connects to the master
wg_client_setup "$VIP:$WG_PORT"
assert_true "the client reaches the gateway through the tunnel (via gw1)" wait_until 10 tunnel_ping
ep=$(wg_peer_endpoint gw1)
assert_contains "$ep" "10.77.0.100:" "gw1's device learned the client's endpoint"
assert_eq "$(node_exec gw2 wg show wg0 endpoints | awk '{ print $2 }')" "(none)" \
        "gw2's passive device has no endpoint of its own"

# ---- the backup's hamgr has it
replicated_endpoint() {
        node_exec gw2 "$HAMGR_BIN" peers --json -s /run/hamgr/control.sock |
                jq -r --arg k "$WG_CLIENT_PUB" '.[] | select(.public_key == $k) | .endpoint'
}
has_replicated_endpoint() {
        [ "$(replicated_endpoint)" = "$ep" ]
}
wait_until 5 has_replicated_endpoint || true
assert_eq "$(replicated_endpoint)" "$ep" "gw2's replicated state (hamgr peers) has the endpoint gw1 learned"
known() {
        [ "$(hamgr_status gw2 | jq -r '.wireguard[0].known_endpoints')" -ge 1 ]
}
assert_true "gw2's takeover knows an endpoint (status known_endpoints)" wait_until 5 known
stored() {
        grep -qF "$WG_CLIENT_PUB $ep" "$HI_TMP/gw2.state/wireguard-wg0.endpoints"
}
# The store is written on a timer (every 5 s).
assert_true "gw2's endpoint store has the client at that endpoint" wait_until 10 stored
assert_eq "$(inst_field gw2 wan .counters.became_master)" 0 "gw2 never was master meanwhile"

# ---- the master's store follows a roam while its snapshot reads are skipped
# The sync poll reads gw1's device every 200 ms and compares endpoints and
# keepalives with the last read: while nothing changes, the 5 s snapshot
# for the endpoint store is not read again (README, "Replication"). A
# skipped snapshot that missed a change would leave the store stale until
# the next forced read, 60 s later.
snap_field() {
        hamgr_status gw1 | jq -r ".wireguard[0].$1"
}
snapshot_skipped() {
        [ "$(snap_field snapshots_skipped)" -ge 1 ]
}
assert_true "gw1 (master, idle) skips a snapshot read the poll shows would find nothing new" \
        wait_until 12 snapshot_skipped
snaps0=$(snap_field snapshots)
stored_on() {
        grep -qF "$WG_CLIENT_PUB $2" "$HI_TMP/$1.state/wireguard-wg0.endpoints"
}
# The client roams: another source port, as behind a NAT that rebinds.
node_exec client wg set wg0 listen-port 51999
tunnel_ping || true
assert_true "the client reaches the gateway from its new port" wait_until 5 tunnel_ping
ep2=$(wg_peer_endpoint gw1)
assert_eq "$ep2" "10.77.0.100:51999" "gw1's device learned the roamed endpoint"
t_roam=$(hi_now_ms)
if wait_until 10 stored_on gw1 "$ep2"; then
        pass "gw1's endpoint store has the roamed endpoint after $(($(hi_now_ms) - t_roam)) ms (snapshot every 5 s)"
else
        fail "gw1's endpoint store lacks the roamed endpoint $ep2 after 10 s: $(grep -F "$WG_CLIENT_PUB" "$HI_TMP/gw1.state/wireguard-wg0.endpoints")"
fi
assert_true "gw1 read a snapshot for the roam (snapshots $snaps0 -> more)" test "$(snap_field snapshots)" -gt "$snaps0"
ep=$ep2
assert_true "gw2's replicated state has the roamed endpoint" wait_until 5 has_replicated_endpoint

# ---- the skipping resumes after a merge that left gw1's device as it was
# gw2 reconnects (as at each re-handshake, every 2 minutes by default):
# what gw1 merges from it changes nothing on gw1's device, but a merge
# makes gw1 forget what its polls had shown. The next unchanged reads
# must show it again; otherwise every snapshot is read from then on.
skipped_more() {
        [ "$(snap_field snapshots_skipped)" -gt "$1" ]
}
hamgr_stop gw2 TERM
hamgr_start gw2 "$(conf_of gw2)"
assert_true "gw2 back: connected again" wait_until 10 connected gw1
sleep 1
skips0=$(snap_field snapshots_skipped)
assert_true "gw1 skips snapshot reads again after merging gw2's catch-up (skipped $skips0 -> more)" \
        wait_until 12 skipped_more "$skips0"

# ---- failover: gw2 kicks the client at the replicated endpoint
capture_start client eth0 "udp port $WG_PORT" "$HI_TMP/takeover.cap"
t0=$(hi_now_ms)
node_link gw1 eth0 down
hamgr_stop gw1 KILL
back_ms=""
while [ $(($(hi_now_ms) - t0)) -lt 15000 ]; do
        if tunnel_ping; then
                back_ms=$(($(hi_now_ms) - t0))
                break
        fi
done
assert_true "failover: gw2 is MASTER" hamgr_state_is gw2 wan MASTER
# The client's own recovery takes ~15 s (keepalive 10 s + rekey 5 s); the
# kick makes it about one round trip after Master_Down (~0.4 s).
if [ -n "$back_ms" ] && [ "$back_ms" -lt 5000 ]; then
        pass "failover: tunnel back through gw2 after ${back_ms} ms, before the client's own retry"
else
        fail "failover: tunnel back after '${back_ms:-never}' ms (want < 5000)"
fi
capture_stop "$HI_TMP/takeover.cap"
assert_true "failover: gw2's handshake initiation left from the VIP to the replicated endpoint" \
        capture_has "$HI_TMP/takeover.cap" "$VIP.$WG_PORT > ${ep%:*}.${ep##*:}:"
assert_true "failover: gw2 kicked the peer" test "$(hamgr_status gw2 | jq -r '.wireguard[0].last_kicked')" -ge 1

finish
