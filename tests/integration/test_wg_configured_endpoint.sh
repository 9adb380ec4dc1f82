#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# An endpoint the operator configured on the device before hamgr started
# (a site-to-site peer at a fixed address, as wg-quick sets it) survives
# the passive node clearing it, with wireguard-go and no sync section:
#  - the backup clears the endpoint from its device (it must send nothing)
#    but counts and stores it as a known endpoint;
#  - crash of the master (kill -9, cable pulled) at advert_interval_ms=100:
#    the backup restores the endpoint and kicks a handshake, so the
#    client's tunnel is back in under 1 s; without the endpoint it would
#    wait for the client's own retry (~15 s: keepalive 10 s + rekey 5 s);
#  - the same after a restart of the passive node's hamgr, whose device no
#    longer has the endpoint: the store has it.
# The client pings every 20 ms; the first reply later than the cable pull
# (plus 50 ms for replies already in flight) dates the tunnel's return.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/wg_lab.sh"

require_hamgr
require_cmd wireguard-go wg ping

VIP=10.77.0.10
CLIENT_PORT=51821
CLIENT_EP=10.77.0.100:$CLIENT_PORT

write_conf() {
        local node=$1 prio=$2
        HC_TRACK= HC_INTERVAL_MS=100 \
                write_hamgr_conf "$(conf_of "$node")" "$node" "$prio" \
                "wireguard = ( { interface = \"wg0\"; backend = \"uapi\"; follow = \"wan\"; source_address = \"$VIP\"; } );"
        "$HAMGR_BIN" check -c "$(conf_of "$node")" >/dev/null ||
                die "hamgr check refuses $(conf_of "$node"): $("$HAMGR_BIN" check -c "$(conf_of "$node")" 2>&1)"
}

# gateway_boot NODE: a freshly booted gateway: wireguard-go with the shared
# identity and, as wg-quick would set it, the client's fixed endpoint.
gateway_boot() {
        wg_gateway_setup "$1"
        node_exec "$1" wg set wg0 peer "$WG_CLIENT_PUB" endpoint "$CLIENT_EP"
        [ "$(wg_peer_endpoint "$1")" = "$CLIENT_EP" ] || die "$1: the endpoint was not configured"
}

known_endpoints() {
        hamgr_status "$1" | jq -r '.wireguard[0].known_endpoints'
}

ping_start() {
        node_spawn client "$1" ping -n -D -i 0.02 "$WG_GW_TUN"
        PING_PID=$HI_LAST_PID
}

# back_after_ms FILE T0_MS CUT_MS: ms from T0 to the first reply after
# CUT + 50 ms.
back_after_ms() {
        awk -v t0="$2" -v cut="$3" '/bytes from/ {
                ts = substr($1, 2, length($1) - 2) * 1000
                if (ts > cut + 50) { printf "%d\n", ts - t0; found = 1; exit }
        } END { if (!found) exit 1 }' "$1"
}

# crash_and_time NODE WHAT: kill -9 NODE's hamgr with its cable pulled while
# the client pings; pass when the tunnel is back in under 1 s.
crash_and_time() {
        local node=$1 what=$2 log=$HI_TMP/ping.$1.log t0 cut elapsed
        ping_start "$log"
        wait_until 5 grep -q 'bytes from' "$log" || die "$what: the client's pings are not answered before the crash"
        t0=$(hi_now_ms)
        node_link "$node" eth0 down
        cut=$(hi_now_ms) # a loaded machine may take a while to run ip
        hamgr_stop "$node" KILL
        # Long enough to see the slow path too, so a failure says how slow.
        wait_until 20 back_after_ms "$log" "$t0" "$cut" || true
        stop_pid "$PING_PID"
        if elapsed=$(back_after_ms "$log" "$t0" "$cut"); then
                if [ "$elapsed" -lt 1000 ]; then
                        pass "$what: tunnel back after $elapsed ms (< 1 s: the endpoint was restored and kicked)"
                else
                        fail "$what: tunnel back only after $elapsed ms (the client's own retry, not the kick)"
                fi
        else
                fail "$what: tunnel not back within 20 s"
        fi
}

lab_create 2
wg_keys
gateway_boot gw1
gateway_boot gw2
write_conf gw1 150
write_conf gw2 100

hamgr_start gw1 "$(conf_of gw1)"
wait_until 10 hamgr_state_is gw1 wan MASTER || die "gw1 did not become MASTER: $(tail -5 "$(hamgr_log gw1)")"
hamgr_start gw2 "$(conf_of gw2)"
wait_until 10 hamgr_state_is gw2 wan BACKUP || die "gw2 did not become BACKUP"

assert_eq "$(wg_peer_endpoint gw2)" "(none)" "passive gw2 cleared the configured endpoint from its device"
assert_eq "$(known_endpoints gw2)" 1 "passive gw2 still knows the configured endpoint"
assert_true "passive gw2 stored the configured endpoint" \
        grep -q "^$WG_CLIENT_PUB $CLIENT_EP " "$HI_TMP/gw2.state/wireguard-wg0.endpoints"
assert_eq "$(wg_peer_endpoint gw1)" "$CLIENT_EP" "master gw1 restored the configured endpoint"

wg_client_setup "$VIP:$WG_PORT"
node_exec client wg set wg0 listen-port "$CLIENT_PORT"
assert_true "the client reaches the gateway through the tunnel (via gw1)" wait_until 10 tunnel_ping

# ---- crash of the master; gw2 never served the client
crash_and_time gw1 "crash"
assert_contains "$(cat "$(hamgr_log gw2)")" "taking over: 1 of 1 peers have a known endpoint" \
        "gw2 took over with the configured endpoint"
assert_eq "$(wg_peer_endpoint gw2)" "$CLIENT_EP" "gw2 serves the client at its configured endpoint"

# ---- gw1 comes back as a rebooted host (wireguard-go and wg-quick afresh,
# no store), without preempting: it is the passive node now. Then its hamgr
# is restarted, so its device no longer has the endpoint: only the store.
wg_go_stop gw1 TERM
rm -rf "$HI_TMP/gw1.state"
revive_node gw1
gateway_boot gw1
HC_PREEMPT=false write_conf gw1 150
hamgr_start gw1 "$(conf_of gw1)"
wait_until 10 hamgr_state_is gw1 wan BACKUP || die "gw1 did not come back as BACKUP: $(hamgr_state gw1 wan || true)"
assert_true "gw2 stays master (no preemption)" hamgr_state_is gw2 wan MASTER
assert_eq "$(known_endpoints gw1)" 1 "passive gw1 knows the configured endpoint"
hamgr_stop gw1 TERM
assert_eq "$(wg_peer_endpoint gw1)" "(none)" "gw1's device has no endpoint while its hamgr is down"
hamgr_start gw1 "$(conf_of gw1)"
wait_until 10 hamgr_state_is gw1 wan BACKUP || die "gw1 did not restart as BACKUP"
assert_eq "$(known_endpoints gw1)" 1 "restarted passive gw1 knows the endpoint from its store"
assert_true "the tunnel works through gw2" wait_until 5 tunnel_ping

crash_and_time gw2 "crash after a restart of the passive node"
assert_true "gw1 is master" hamgr_state_is gw1 wan MASTER
assert_eq "$(wg_peer_endpoint gw1)" "$CLIENT_EP" "gw1 serves the client at its configured endpoint"

finish
