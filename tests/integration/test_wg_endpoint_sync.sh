#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Configured and replicated endpoints with replication on: the newer wins.
#  - gw1 serves the client at 10.77.0.100:51821; passive gw2 learns that
#    endpoint through sync;
#  - the client moves to port 51822 without sending anything, and gw2 is
#    rebooted with the new address configured on its device (as wg-quick
#    sets it) before hamgr starts: the older replicated endpoint, from
#    gw2's replica file and from gw1's catch-up, does not replace it;
#  - crash of gw1 (kill -9, cable pulled, 100 ms adverts): gw2 kicks the
#    configured endpoint and the tunnel is back in under 1 s (the client's
#    own retry would take ~15 s);
#  - gw1's hamgr comes back passive, its device still holding the old
#    endpoint its crash left: the endpoint gw2 replicated since wins;
#    crash of gw2: gw1 kicks the right endpoint, back in under 1 s.
# The client pings every 20 ms from the crash on; its first reply dates
# the tunnel's return.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/wg_lab.sh"

require_hamgr
require_cmd wireguard-go wg ping

VIP=10.77.0.10
OLD_EP=10.77.0.100:51821
NEW_EP=10.77.0.100:51822

for g in gw1 gw2; do
        (umask 077; "$HAMGR_BIN" genkey >"$HI_TMP/$g.sync.key")
        chmod 600 "$HI_TMP/$g.sync.key"
done
declare -A SYNC_PUB=([gw1]=$("$HAMGR_BIN" pubkey <"$HI_TMP/gw1.sync.key")
                     [gw2]=$("$HAMGR_BIN" pubkey <"$HI_TMP/gw2.sync.key"))

# write_conf NODE PRIORITY OTHER
write_conf() {
        local node=$1 prio=$2 other=$3
        HC_TRACK= HC_INTERVAL_MS=100 write_hamgr_conf "$(conf_of "$node")" "$node" "$prio" "$(cat <<EOF
wireguard = ( { interface = "wg0"; backend = "uapi"; follow = "wan"; source_address = "$VIP"; } );
sync = {
    listen = "10.77.0.${node#gw}:7789";
    private_key_file = "$HI_TMP/$node.sync.key";
    poll_interval_ms = 200;
    bootstrap_grace_s = 0; # a new pair replicates at once (test_sync_revoke.sh: the wait)
    peers = ( { name = "$other"; address = "10.77.0.${other#gw}:7789"; public_key = "${SYNC_PUB[$other]}"; } );
};
EOF
)"
        "$HAMGR_BIN" check -c "$(conf_of "$node")" >/dev/null ||
                die "hamgr check: $("$HAMGR_BIN" check -c "$(conf_of "$node")" 2>&1)"
}

connected() {
        [ "$(hamgr_status "$1" | jq -r '.sync.peers[0].connected')" = true ]
}

stored() {
        grep -q "^$WG_CLIENT_PUB $2 " "$HI_TMP/$1.state/wireguard-wg0.endpoints"
}

# back_after_ms FILE T0_MS: ms from T0 to the first reply in FILE.
back_after_ms() {
        awk -v t0="$2" '/bytes from/ {
                printf "%d\n", substr($1, 2, length($1) - 2) * 1000 - t0; found = 1; exit
        } END { if (!found) exit 1 }' "$1"
}

# crash_and_time NODE WHAT: kill -9 NODE's hamgr, then pull its cable (in
# this order, so the dead node's device keeps its endpoints), then the
# client pings; pass when the tunnel is back in under 1 s.
crash_and_time() {
        local node=$1 what=$2 log=$HI_TMP/ping.$1.log t0 elapsed
        t0=$(hi_now_ms)
        hamgr_stop "$node" KILL
        node_link "$node" eth0 down
        node_spawn client "$log" ping -n -D -i 0.02 "$WG_GW_TUN"
        wait_until 20 back_after_ms "$log" "$t0" || true
        stop_pid "$HI_LAST_PID"
        if elapsed=$(back_after_ms "$log" "$t0"); then
                if [ "$elapsed" -lt 1000 ]; then
                        pass "$what: tunnel back after $elapsed ms (< 1 s: the right endpoint was kicked)"
                else
                        fail "$what: tunnel back only after $elapsed ms (the client's own retry, not the kick)"
                fi
        else
                fail "$what: tunnel not back within 20 s"
        fi
}

lab_create 2
wg_keys
wg_gateway_setup gw1
wg_gateway_setup gw2
write_conf gw1 150 gw2
write_conf gw2 100 gw1
hamgr_start gw1 "$(conf_of gw1)"
wait_until 10 hamgr_state_is gw1 wan MASTER || die "gw1 not MASTER"
hamgr_start gw2 "$(conf_of gw2)"
wait_until 10 hamgr_state_is gw2 wan BACKUP || die "gw2 not BACKUP"
wait_until 10 connected gw2 || die "the sync link did not come up"

# ---- gw2 learns the client's first address through sync
wg_client_setup "$VIP:$WG_PORT"
node_exec client wg set wg0 listen-port "${OLD_EP##*:}"
assert_true "the client reaches the gateway through gw1" wait_until 10 tunnel_ping
assert_true "passive gw2 learned $OLD_EP through sync" wait_until 10 stored gw2 "$OLD_EP"

# ---- the client moves, silently; gw2 reboots with the new address configured
node_exec client wg set wg0 listen-port "${NEW_EP##*:}"
hamgr_stop gw2 TERM
wg_go_stop gw2 TERM
wg_gateway_setup gw2
node_exec gw2 wg set wg0 peer "$WG_CLIENT_PUB" endpoint "$NEW_EP"
hamgr_start gw2 "$(conf_of gw2)"
wait_until 10 hamgr_state_is gw2 wan BACKUP || die "gw2 did not come back as BACKUP"
assert_true "gw2 reconnects to gw1" wait_until 10 connected gw2
assert_true "gw2 keeps the configured $NEW_EP over the older replicated $OLD_EP" holds_for 1 stored gw2 "$NEW_EP"

crash_and_time gw1 "crash of gw1"
assert_eq "$(wg_peer_endpoint gw2)" "$NEW_EP" "gw2 serves the client at the configured endpoint"

# ---- gw1 back, passive (no preemption), its device as its crash left it
assert_eq "$(wg_peer_endpoint gw1)" "$OLD_EP" "gw1's device still has the endpoint it served"
revive_node gw1
HC_PREEMPT=false write_conf gw1 150 gw2
hamgr_start gw1 "$(conf_of gw1)"
wait_until 10 hamgr_state_is gw1 wan BACKUP || die "gw1 did not come back as BACKUP"
assert_true "gw1 reconnects to gw2" wait_until 10 connected gw1
assert_true "gw1 takes the endpoint gw2 saw since over what its crash left" wait_until 5 stored gw1 "$NEW_EP"
assert_eq "$(wg_peer_endpoint gw1)" "(none)" "passive gw1 cleared its device"

crash_and_time gw2 "crash of gw2"
assert_eq "$(wg_peer_endpoint gw1)" "$NEW_EP" "gw1 serves the client at its new endpoint"

finish
