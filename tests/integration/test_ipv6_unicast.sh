#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Protocol variants between two hamgr gateways (gw1 priority 150, gw2 100):
#  a) IPv6 (VRRPv3, VIP fd77::10/64): adverts go from the link-local address
#     to ff02::12 with hop limit 255; exactly one master holds the VIP; after
#     kill -9 (and eth0 down) of the master the backup takes over and the
#     client reaches the VIP with ping, at the new master's MAC;
#  b) unicast IPv4 (unicast_peers = the other gateway): adverts go to the
#     peer's own address, never to 224.0.0.18; failover works;
#  c) in unicast mode an advert from a source outside unicast_peers (the
#     client, priority 254) is dropped, at the backup and at the master,
#     and counted in adverts_dropped; the same packets with an allowed
#     (spoofed) source are accepted, so the injector is heard;
#  d) VRRPv2 (advert_interval_ms 1000): election, adverts on the wire,
#     hand-over on SIGTERM within Skew_Time, and preemption back.
# Needs HAMGR_BIN and HAMGR_INJECT (path to vrrp_inject).
# shellcheck disable=SC2317 # small predicates run through wait_until
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_hamgr
require_cmd tcpdump ping
require_tool HAMGR_INJECT vrrp_inject

VIP4=10.77.0.10
VIP6=fd77::10
CLIENT_IP=10.77.0.100

# counter NODE NAME: one of the instance's counters from status JSON.
counter() {
        inst_field "$1" wan ".counters.$2"
}

counter_at_least() {
        [ "$(counter "$1" "$2")" -ge "$3" ]
}

client_ping() {
        node_exec client ping "$1" -c 2 -i 0.2 -W 2 "$2" >/dev/null
}

# start_pair WHAT CONF1 CONF2: hamgr on gw1 with CONF1 and gw2 with CONF2;
# gw1 must end up MASTER and gw2 BACKUP.
start_pair() {
        hamgr_start gw1 "$2"
        hamgr_start gw2 "$3"
        wait_until 10 states_are MASTER BACKUP || true
        assert_eq "$(hamgr_state gw1 wan):$(hamgr_state gw2 wan)" MASTER:BACKUP "$1: gw1 MASTER, gw2 BACKUP"
}

inject() {
        node_exec client "$HAMGR_INJECT" -q -i eth0 -v 3 -r 51 --interval-cs 10 "$@"
}

lab_start 2
GW1_MAC=$(node_mac gw1)
GW2_MAC=$(node_mac gw2)

# ---------------------------------------------------------------- a) IPv6
GW1_LL=$(link_local gw1)
GW2_LL=$(link_local gw2)
if [ -z "$GW1_LL" ] || [ -z "$GW2_LL" ]; then
        die "gateways have no link-local address"
fi
CAP6="$HI_TMP/v6.cap"
capture_start client eth0 "ip6 proto 112" "$CAP6"

HC_VIPS="\"$VIP6/64\"" write_hamgr_conf "$HI_TMP/gw1-v6.conf" gw1 150
HC_VIPS="\"$VIP6/64\"" write_hamgr_conf "$HI_TMP/gw2-v6.conf" gw2 100
start_pair v6 "$HI_TMP/gw1-v6.conf" "$HI_TMP/gw2-v6.conf"
assert_eq "$(inst_field gw1 wan .family)" ipv6 "v6: instance family"
assert_eq "$(inst_field gw1 wan .primary_address)" "$GW1_LL" "v6: adverts come from gw1's link-local address"
wait_until 3 vip_owner_is "$VIP6" gw1 || true
assert_true "v6: exactly gw1 holds $VIP6 for 1 s" holds_for 1 vip_owner_is "$VIP6" gw1
assert_true "v6: still exactly one master" states_are MASTER BACKUP
assert_true "v6 capture: advert from $GW1_LL to ff02::12, hop limit 255" \
        capture_has "$CAP6" "$GW1_MAC > 33:33:00:00:00:12" "hlim 255" "$GW1_LL > ff02::12:" \
        "VRRPv3, Advertisement, vrid 51, prio 150, intvl 10cs" "addrs: $VIP6"
assert_eq "$(capture_grep "$CAP6" "VRRP" | grep -vc 'hlim 255' || true)" 0 "v6 capture: no advert with another hop limit"
assert_eq "$(capture_count "$CAP6" "prio 100")" 0 "v6 capture: the backup stays silent"

crash_node gw1 "$VIP6/64"
wait_until 5 hamgr_state_is gw2 wan MASTER || true
assert_eq "$(hamgr_state gw2 wan)" MASTER "v6 failover: gw2 MASTER after kill -9 of gw1"
assert_eq "$(inst_field gw2 wan .last_transition.reason)" master-down "v6 failover: reason"
wait_until 3 vip_owner_is "$VIP6" gw2 || true
assert_eq "$(vip_owner "$VIP6")" gw2 "v6 failover: $VIP6 moved to gw2"
wait_until 3 capture_has "$CAP6" "$GW2_LL > ff02::12:" "hlim 255" "vrid 51, prio 100" || true
assert_true "v6 capture: gw2 now advertises from $GW2_LL with hop limit 255" \
        capture_has "$CAP6" "$GW2_MAC > 33:33:00:00:00:12" "hlim 255" "$GW2_LL > ff02::12:" \
        "VRRPv3, Advertisement, vrid 51, prio 100"
assert_true "v6 failover: client pings $VIP6" client_ping -6 "$VIP6"
assert_eq "$(neigh_mac client "$VIP6")" "$GW2_MAC" "v6 failover: client reaches $VIP6 at gw2's MAC"
capture_stop "$CAP6"
hamgr_stop gw2
revive_node gw1

# ------------------------------------------------------- b) unicast IPv4
CAPU="$HI_TMP/unicast.cap"
capture_start gw2 eth0 "ip proto 112" "$CAPU"
HC_UNICAST_PEERS='"10.77.0.2"' write_hamgr_conf "$HI_TMP/gw1-uc.conf" gw1 150
HC_UNICAST_PEERS='"10.77.0.1"' write_hamgr_conf "$HI_TMP/gw2-uc.conf" gw2 100
start_pair unicast "$HI_TMP/gw1-uc.conf" "$HI_TMP/gw2-uc.conf"
assert_eq "$(inst_field gw1 wan .mode):$(inst_field gw2 wan .mode)" unicast:unicast "unicast: status mode"
wait_until 3 vip_owner_is "$VIP4" gw1 || true
assert_eq "$(vip_owner "$VIP4")" gw1 "unicast: gw1 holds $VIP4"
wait_until 3 counter_at_least gw2 adverts_received 5 || true
assert_true "unicast: gw2 hears gw1 (adverts_received >= 5)" counter_at_least gw2 adverts_received 5
assert_true "unicast capture: gw1 -> 10.77.0.2 unicast frame, TTL 255" \
        capture_has "$CAPU" "$GW1_MAC > $GW2_MAC" "ttl 255" "10.77.0.1 > 10.77.0.2:" \
        "VRRPv3, Advertisement, vrid 51, prio 150"
assert_eq "$(capture_count "$CAPU" "224.0.0.18")" 0 "unicast capture: nothing sent to 224.0.0.18"

# ------------------------------------- c) advert from a non-peer dropped
for target in gw2 gw1; do
        addr=10.77.0.${target#gw}
        want=BACKUP
        [ "$target" = gw1 ] && want=MASTER
        d0=$(counter "$target" adverts_dropped)
        node_spawn client "$HI_TMP/inject-$target.log" "$HAMGR_INJECT" -i eth0 -v 3 -r 51 --interval-cs 10 \
                -s "$CLIENT_IP" -d "$addr" -p 254 --vip "$VIP4" --count 30 --gap-ms 20
        inj=$HI_LAST_PID
        assert_true "non-peer: $target stays $want during 30 priority-254 adverts from $CLIENT_IP" \
                holds_for 0.8 states_are MASTER BACKUP
        hi_wait_gone "$inj" 5 || fail "non-peer: injector still running"
        assert_eq "$(grep -c 'sent 30 valid' "$HI_TMP/inject-$target.log" || true)" 1 "non-peer: injector sent 30 packets"
        wait_until 2 counter_at_least "$target" adverts_dropped $((d0 + 30)) || true
        assert_eq "$(($(counter "$target" adverts_dropped) - d0))" 30 "non-peer: $target counted 30 adverts_dropped"
        assert_eq "$(vip_owner "$VIP4")" gw1 "non-peer: VIP stays on gw1"
done
assert_eq "$(inst_field gw2 wan .last_master)" 10.77.0.1 "non-peer: gw2's last master is still gw1"

# Control: the same adverts claiming the allowed peer's address are heard.
d0=$(counter gw2 adverts_dropped)
r0=$(counter gw2 adverts_received)
inject -s 10.77.0.1 -d 10.77.0.2 -p 254 --vip "$VIP4" --count 30 --gap-ms 1
# gw1's own adverts add about one per 100 ms on top of these 30.
wait_until 2 counter_at_least gw2 adverts_received $((r0 + 30)) || true
assert_true "control: gw2 accepted the 30 adverts from an allowed source" \
        counter_at_least gw2 adverts_received $((r0 + 30))
assert_eq "$(($(counter gw2 adverts_dropped) - d0))" 0 "control: adverts_dropped did not grow"

# ---------------------------------------------------- b) unicast failover
crash_node gw1 "$VIP4/24"
wait_until 5 hamgr_state_is gw2 wan MASTER || true
assert_eq "$(hamgr_state gw2 wan)" MASTER "unicast failover: gw2 MASTER after kill -9 of gw1"
wait_until 3 vip_owner_is "$VIP4" gw2 || true
assert_eq "$(vip_owner "$VIP4")" gw2 "unicast failover: $VIP4 moved to gw2"
wait_until 3 capture_has "$CAPU" "10.77.0.2 > 10.77.0.1:" "prio 100" || true
assert_true "unicast capture: gw2 now advertises to 10.77.0.1, TTL 255" \
        capture_has "$CAPU" "$GW2_MAC > " "ttl 255" "10.77.0.2 > 10.77.0.1:" \
        "VRRPv3, Advertisement, vrid 51, prio 100"
assert_eq "$(capture_count "$CAPU" "224.0.0.18")" 0 "unicast capture: still nothing to 224.0.0.18"
assert_true "unicast failover: client pings $VIP4" client_ping -4 "$VIP4"
assert_eq "$(neigh_mac client "$VIP4")" "$GW2_MAC" "unicast failover: client reaches $VIP4 at gw2's MAC"
capture_stop "$CAPU"
hamgr_stop gw2
revive_node gw1

# -------------------------------------------------------------- d) VRRPv2
CAP2="$HI_TMP/v2.cap"
capture_start client eth0 "ip proto 112" "$CAP2"
HC_VERSION=2 HC_INTERVAL_MS=1000 write_hamgr_conf "$HI_TMP/gw1-v2.conf" gw1 150
HC_VERSION=2 HC_INTERVAL_MS=1000 write_hamgr_conf "$HI_TMP/gw2-v2.conf" gw2 100
start_pair v2 "$HI_TMP/gw1-v2.conf" "$HI_TMP/gw2-v2.conf"
assert_eq "$(inst_field gw2 wan .version)" 2 "v2: instance version"
wait_until 3 counter_at_least gw2 adverts_received 1 || true
assert_eq "$(counter gw2 adverts_dropped)" 0 "v2: gw2 drops none of gw1's adverts"
assert_true "v2: gw2 accepts gw1's adverts" counter_at_least gw2 adverts_received 1
assert_eq "$(vip_owner "$VIP4")" gw1 "v2: gw1 holds $VIP4"
assert_true "v2 capture: VRRPv2 adverts from gw1, TTL 255, 1 s" \
        capture_has "$CAP2" "$GW1_MAC > 01:00:5e:00:00:12" "ttl 255" "10.77.0.1 > 224.0.0.18:" \
        "VRRPv2, Advertisement, vrid 51, prio 150, authtype none, intvl 1s" "addrs: $VIP4"
assert_eq "$(capture_count "$CAP2" "VRRPv3")" 0 "v2 capture: no VRRPv3 packet"

# Skew_Time for priority 100 at 1 s is 609 ms; Master_Down_Interval 3609 ms.
t0=$(hi_now_ms)
hamgr_stop gw1
wait_until 5 hamgr_state_is gw2 wan MASTER || true
took=$(($(hi_now_ms) - t0))
assert_eq "$(hamgr_state gw2 wan)" MASTER "v2 SIGTERM: gw2 MASTER"
if [ "$took" -le 2500 ]; then
        pass "v2 SIGTERM: hand-over after ${took} ms (priority-0 path; a silent master needs 3609 ms)"
else
        fail "v2 SIGTERM: hand-over took ${took} ms, want <= 2500 ms"
fi
assert_true "v2 capture: gw1 sent a priority-0 advert" \
        capture_has "$CAP2" "10.77.0.1 > 224.0.0.18:" "VRRPv2, Advertisement, vrid 51, prio 0"
wait_until 3 vip_owner_is "$VIP4" gw2 || true
assert_eq "$(vip_owner "$VIP4")" gw2 "v2 SIGTERM: $VIP4 moved to gw2"
wait_until 3 capture_has "$CAP2" "10.77.0.2 > 224.0.0.18:" "VRRPv2, Advertisement, vrid 51, prio 100" || true
assert_true "v2 capture: gw2 advertises as VRRPv2" \
        capture_has "$CAP2" "$GW2_MAC > 01:00:5e:00:00:12" "ttl 255" "10.77.0.2 > 224.0.0.18:" \
        "VRRPv2, Advertisement, vrid 51, prio 100, authtype none, intvl 1s"

hamgr_start gw1 "$HI_TMP/gw1-v2.conf"
wait_until 10 states_are MASTER BACKUP || true
assert_eq "$(hamgr_state gw1 wan):$(hamgr_state gw2 wan)" MASTER:BACKUP "v2: restarted gw1 preempts gw2"
wait_until 3 vip_owner_is "$VIP4" gw1 || true
assert_eq "$(vip_owner "$VIP4")" gw1 "v2: $VIP4 back on gw1 alone"

capture_stop
hamgr_stop gw1
hamgr_stop gw2
finish
