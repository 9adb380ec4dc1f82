#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The WireGuard takeover with wireguard-go: two gateways sharing one key,
# a client pinging the gateway's tunnel address through the VIP.
#  - the backup's wg0 is down and sends nothing;
#  - after kill -9 of the master's hamgr with its link down, the tunnel is
#    back well before the client's own retry could (~15 s: KEEPALIVE 10 s +
#    REKEY 5 s), because the new master knows the client's endpoint and
#    kicks a handshake;
#  - that handshake initiation leaves from the VIP (seen on the wire);
#  - while master, the routes out of eth0 have the VIP as preferred source
#    (a connected and a static route); after the node leaves MASTER they
#    have their original source back;
#  - the kick moves each peer's persistent keepalive from 0 to its
#    configured value (a peer with keepalive 120 s keeps 120 s), or to 25 s
#    and back to 0 when it has none (the client's peer got its initiation
#    and is "off" again afterwards);
#  - killing wireguard-go on the master makes the pair fail over (check);
#  - a master killed with its link up and restarted keeps its LAN route;
#  - a master whose wireguard-go restarts serves the new wg0.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/wg_lab.sh"

require_hamgr
require_cmd wireguard-go wg tcpdump ping

VIP=10.77.0.10

write_conf() {
        local node=$1 prio=$2
        HC_TRACK= HC_INTERVAL_MS=100 HC_INSTANCE_EXTRA='track_checks = ( { check = "wg0"; weight = 0; } );' \
                write_hamgr_conf "$(conf_of "$node")" "$node" "$prio" "$(cat <<EOF
checks = ( { name = "wg0"; type = "wireguard"; interface = "wg0"; interval_ms = 200; rise = 1; fall = 2; } );
wireguard = ( { interface = "wg0"; backend = "$WG_BACKEND"; follow = "wan"; source_address = "$VIP"; } );
EOF
)"
        "$HAMGR_BIN" check -c "$(conf_of "$node")" >/dev/null || die "hamgr check refuses $HI_TMP/$node.conf: $("$HAMGR_BIN" check -c "$(conf_of "$node")" 2>&1)"
}

# Seconds (ms precision) until the tunnel answers again, polling every 100 ms.
time_to_tunnel() {
        local t0=$1 limit_ms=$2 now
        while true; do
                if node_exec client ping -c 1 -W 0.2 "$WG_GW_TUN" >/dev/null 2>&1; then
                        now=$(hi_now_ms)
                        echo $((now - t0))
                        return 0
                fi
                now=$(hi_now_ms)
                [ $((now - t0)) -lt "$limit_ms" ] || { echo "$limit_ms"; return 1; }
                sleep 0.1
        done
}

lab_create 2
# A static route out of eth0 without a source, beside the connected one.
for g in gw1 gw2; do
        ip -n "$(ns_of "$g")" route add 10.200.0.0/24 via 10.77.0.100 dev eth0
done
wg_keys
for g in gw1 gw2; do
        wg_gateway_setup "$g"
done
write_conf gw1 150
write_conf gw2 100
hamgr_start gw1 "$(conf_of gw1)"
wait_until 10 hamgr_state_is gw1 wan MASTER || die "gw1 did not become MASTER: $(tail -5 "$(hamgr_log gw1)")"
hamgr_start gw2 "$(conf_of gw2)"
wait_until 10 hamgr_state_is gw2 wan BACKUP || die "gw2 did not become BACKUP"

assert_true "master: wg0 up on gw1" wait_until 5 wg_link_up gw1
# A reload with the same settings keeps the follower and the check going.
kill -HUP "${HAMGR_PID[gw1]}"
assert_true "SIGHUP: gw1 keeps running" holds_for 1 hamgr_alive gw1
assert_eq "$(hamgr_status gw1 | jq -r '.wireguard[0].phase + " " + .checks[0].status')" "active up" \
        "SIGHUP: follower still active, check still up"
assert_true "backup: wg0 down on gw2" wg_link_down gw2
assert_eq "$(hamgr_status gw2 | jq -r '.wireguard[0].phase')" passive "backup: follower passive"

# route_src NODE DEST: the preferred source of NODE's route to DEST on eth0
# ("none" without one).
route_src() {
        local r
        r=$(ip -n "$(ns_of "$1")" -4 route show "$2" dev eth0)
        [ -n "$r" ] || { echo missing; return 0; }
        if [[ "$r" == *" src "* ]]; then
                r=${r##* src }
                echo "${r%% *}"
        else
                echo none
        fi
}
route_src_is() {
        [ "$(route_src "$1" "$2")" = "$3" ]
}
assert_eq "$(route_src gw1 10.77.0.0/24) $(route_src gw1 10.200.0.0/24)" "$VIP $VIP" \
        "master: routes out of eth0 have the VIP as source (connected, static)"
assert_eq "$(route_src gw2 10.77.0.0/24) $(route_src gw2 10.200.0.0/24)" "10.77.0.2 none" \
        "backup: routes keep their own source"

wg_client_setup "$VIP:$WG_PORT"
assert_true "client reaches the gateway through the tunnel (via gw1)" wait_until 10 tunnel_ping
ep=$(wg_peer_endpoint gw1)
assert_contains "$ep" "10.77.0.100:" "gw1 learned the client's endpoint"

# Let gw1 store the endpoint (snapshot every 5 s), then move the service to
# gw2 and back so that gw2 has served the client once too: without
# replication a node only knows endpoints it saw while master.
wait_until 10 node_exec gw1 grep -q "$WG_CLIENT_PUB" "$HI_TMP/gw1.state/wireguard-wg0.endpoints" ||
        fail "gw1 did not store the client's endpoint"
hamgr_stop gw1 TERM
wait_until 5 hamgr_state_is gw2 wan MASTER || die "gw2 did not take over on SIGTERM"
assert_eq "$(route_src gw1 10.77.0.0/24) $(route_src gw1 10.200.0.0/24)" "10.77.0.1 none" \
        "gw1 stopped: its routes have their original source back"
assert_true "gw2 master: its routes have the VIP as source" wait_until 3 route_src_is gw2 10.200.0.0/24 "$VIP"
assert_eq "$(route_src gw2 10.77.0.0/24)" "$VIP" "gw2 master: the connected route too"
assert_true "gw2 serves the client after a graceful hand-over" wait_until 20 tunnel_ping
wait_until 10 grep -q "$WG_CLIENT_PUB" "$HI_TMP/gw2.state/wireguard-wg0.endpoints" ||
        fail "gw2 did not store the client's endpoint"
# A second peer with a configured keepalive, which gw2 learns while master
# with an endpoint where nobody answers: the kick at the crash below moves
# its keepalive 0 -> 120 and leaves it there. (Whether wireguard-go sends
# its initiation at once is not checked: on the passive device it keeps
# retrying handshakes for a peer with a keepalive, without endpoint, and
# allows one initiation per peer every 5 s, so the kick usually falls
# inside that window; the next retry sends it.)
KA_PEER=$(wg genkey | wg pubkey)
node_exec gw2 wg set wg0 peer "$KA_PEER" allowed-ips 10.99.9.9/32 endpoint 10.77.0.100:5555 persistent-keepalive 120
wait_until 10 grep -q "$KA_PEER 10.77.0.100:5555 120" "$HI_TMP/gw2.state/wireguard-wg0.endpoints" ||
        fail "gw2 did not store the keepalive peer's endpoint and keepalive"
hamgr_start gw1 "$(conf_of gw1)"
wait_until 10 hamgr_state_is gw1 wan MASTER || die "gw1 did not preempt"
assert_true "gw2 preempted (BACKUP): its routes have their original source back" \
        wait_until 3 route_src_is gw2 10.200.0.0/24 none
assert_eq "$(route_src gw2 10.77.0.0/24)" 10.77.0.2 "gw2 preempted: the connected route too"
assert_true "gw1 serves the client again after preempting (it knew the endpoint)" wait_until 5 tunnel_ping
assert_true "gw2 is passive again: wg0 down" wait_until 5 wg_link_down gw2

# Someone bringing the passive interface up (wg-quick, a restart) is undone.
node_exec gw2 ip link set wg0 up
assert_true "passive gw2: wg0 brought up by hand is taken down again" wait_until 3 wg_link_down gw2
assert_contains "$(cat "$(hamgr_log gw2)")" "came up while this node is passive" "gw2 logged why"

# The backup sends nothing: no UDP from gw2's addresses for a while.
capture_start client eth0 "udp port $WG_PORT" "$HI_TMP/quiet.cap"
sleep 2
capture_stop "$HI_TMP/quiet.cap"
assert_eq "$(capture_count "$HI_TMP/quiet.cap" "10.77.0.2.$WG_PORT >")" 0 "the backup sent no WireGuard packet"

# ---- crash: kill -9 of the master's hamgr with its link taken down
capture_start client eth0 "udp port $WG_PORT" "$HI_TMP/takeover.cap"
t0=$(hi_now_ms)
node_link gw1 eth0 down
hamgr_stop gw1 KILL
if elapsed=$(time_to_tunnel "$t0" 15000); then
        pass "crash: tunnel back after ${elapsed} ms"
else
        fail "crash: tunnel not back within 15 s"
fi
# The client's own recovery needs ~15 s (keepalive timeout + rekey); the
# kick makes it one round trip after Master_Down (~0.4 s).
if [ "$elapsed" -lt 5000 ]; then
        pass "crash: back in under 5 s, before the client's own retry (~15 s) could have done it"
else
        fail "crash: took ${elapsed} ms, as slow as the client's own retry"
fi
capture_stop "$HI_TMP/takeover.cap"
assert_true "the handshake initiation after takeover left from the VIP" \
        capture_has "$HI_TMP/takeover.cap" "$VIP.$WG_PORT > 10.77.0.100."
assert_eq "$(capture_count "$HI_TMP/takeover.cap" "10.77.0.2.$WG_PORT >")" 0 "nothing left from gw2's own address"
assert_eq "$(hamgr_status gw2 | jq -r '.wireguard[0].phase')" active "gw2 follower active"
assert_eq "$(hamgr_status gw2 | jq -r '.wireguard[0].last_kicked')" 2 "gw2 kicked both peers"
keepalive_of() {
        node_exec gw2 wg show wg0 persistent-keepalive | awk -v k="$1" '$1 == k { print $2 }'
}
assert_eq "$(keepalive_of "$KA_PEER") $(keepalive_of "$WG_CLIENT_PUB")" "120 off" \
        "after the kick: the configured keepalive stays, the client's 25 s is back to off"

# ---- killing wireguard-go on the master fails the pair over
node_link gw1 eth0 up
hamgr_start gw1 "$(conf_of gw1)"
wait_until 10 hamgr_state_is gw1 wan MASTER || die "gw1 did not come back"
wait_until 5 tunnel_ping || fail "tunnel not back on gw1"
wg_go_stop gw1 KILL
if wait_until 5 hamgr_state_is gw1 wan FAULT; then
        pass "wireguard-go killed: gw1 FAULT ($(hamgr_status gw1 | jq -r '.instances[0].fault_detail'))"
else
        fail "wireguard-go killed: gw1 is $(hamgr_state gw1 wan)"
fi
assert_true "wireguard-go killed: gw2 takes over" wait_until 5 hamgr_state_is gw2 wan MASTER
assert_true "wireguard-go killed: the tunnel works through gw2" wait_until 5 tunnel_ping

# ---- kill -9 of the master with its link up, then a restart. The LAN
# route had the VIP as source; removing the VIP left by the dead run made
# the kernel delete it with the address, and the node could reach nobody
# on eth0 any more.
lan_route() {
        ip -n "$(ns_of "$1")" -4 route show 10.77.0.0/24 dev eth0
}
assert_contains "$(lan_route gw2)" "src $VIP" "master gw2: the LAN route leaves from the VIP"
hamgr_stop gw2 KILL
hamgr_start gw2 "$(conf_of gw2)"
assert_true "restart after kill -9: gw2 MASTER again (gw1 is in FAULT)" wait_until 10 hamgr_state_is gw2 wan MASTER
assert_eq "$(hamgr_log_count gw2 "their source is the interface's own address again")" 1 "gw2 logged the routes it gave back"
assert_contains "$(lan_route gw2)" "src $VIP" "restart after kill -9: gw2 still has its LAN route, from the VIP again"
assert_true "restart after kill -9: the tunnel works through gw2" wait_until 10 tunnel_ping

# ---- wireguard-go restarted on the master (configured again as wg-quick
# would, link left to hamgr): a new wg0 under the same name. hamgr used to
# keep the old interface's index and fail to bring the new one up.
wg_go_stop gw2 KILL
wait_until 5 bash -c "! ip -n '$(ns_of gw2)' link show wg0" >/dev/null 2>&1 || fail "wg0 outlived wireguard-go on gw2"
node_exec gw2 rm -f /var/run/wireguard/wg0.sock
wg_gateway_setup gw2
assert_true "wireguard-go restarted: gw2 brings the new wg0 up" wait_until 5 wg_link_up gw2
assert_true "wireguard-go restarted: the tunnel works through gw2 again" wait_until 5 tunnel_ping
assert_eq "$(hamgr_log_count gw2 "takeover failed")" 0 "wireguard-go restarted: no failed takeover on gw2"

finish
