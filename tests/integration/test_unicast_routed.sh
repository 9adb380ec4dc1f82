#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Unicast across a router (cloud pairs in two subnets). gw1 (10.81.1.2/24,
# and 10.81.1.5 as a second address) and gw2 (10.81.2.2/24) sit in two
# subnets joined by the namespace "rtr", which forwards and so decrements
# the TTL. Both run instance "wan" in unicast mode:
#   gw1: priority 150, unicast_source 10.81.1.5, unicast_peers [10.81.2.2]
#   gw2: priority 100, unicast_ttl 64,           unicast_peers [10.81.1.5]
# Asserted:
#  - they elect one master (gw1 MASTER, gw2 BACKUP, for 2 s), gw2 hears
#    gw1 at 10.81.1.5 and drops nothing for its TTL;
#  - on the wire behind the router gw1's adverts come from 10.81.1.5 (the
#    unicast_source, not the interface's primary 10.81.1.2) with TTL 254,
#    and nothing from 10.81.1.2;
#  - gw2's adverts (sent once it is master) carry TTL 64, 63 behind the
#    router; gw2 takes over when gw1 stops and gives back when it returns;
#  - the same over IPv6 with global unicast_source addresses (link-local
#    ones do not cross routers): one master, hop limit 254 on the wire.
# Needs HAMGR_BIN.
# shellcheck disable=SC2317 # small predicates run through wait_until
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_hamgr
require_cmd tcpdump

VIP=10.81.50.1

# link NODE IFACE ADDR/PREFIX RTR_IFACE RTR_ADDR/PREFIX: a veth from NODE to rtr.
link() {
        local ns rns
        ns=$(ns_of "$1")
        rns=$(ns_of rtr)
        ip -n "$rns" link add "$4" type veth peer name "$2" netns "$ns"
        ip -n "$rns" addr add "$5" dev "$4"
        ip -n "$rns" link set "$4" up
        ip -n "$ns" addr add "$3" dev "$2"
        ip -n "$ns" link set "$2" up
        ip -n "$ns" route add default via "${5%/*}"
}

for n in rtr gw1 gw2; do
        hi_netns_add "$(ns_of "$n")"
done
hi_sysctl "$(ns_of rtr)" net.ipv4.ip_forward=1
link gw1 eth0 10.81.1.2/24 r1 10.81.1.1/24
link gw2 eth0 10.81.2.2/24 r2 10.81.2.1/24
ip -n "$(ns_of gw1)" addr add 10.81.1.5/24 dev eth0
for n in rtr gw1 gw2; do
        node_start "$n"
done
wait_until 5 node_exec gw1 ping -c 1 -W 1 10.81.2.2 || die "gw1 cannot reach gw2 through rtr"

HC_TRACK="" HC_VIPS="\"$VIP/32\"" HC_UNICAST_PEERS='"10.81.2.2"' \
        HC_INSTANCE_EXTRA='unicast_source = "10.81.1.5";' write_hamgr_conf "$(conf_of gw1)" gw1 150
HC_TRACK="" HC_VIPS="\"$VIP/32\"" HC_UNICAST_PEERS='"10.81.1.5"' \
        HC_INSTANCE_EXTRA='unicast_ttl = 64;' write_hamgr_conf "$(conf_of gw2)" gw2 100
for n in gw1 gw2; do
        out=$("$HAMGR_BIN" check -c "$(conf_of "$n")" 2>&1) || die "$n config: $out"
done

CAP2="$HI_TMP/r2.cap"
CAP1="$HI_TMP/r1.cap"
capture_start rtr r2 "ip proto 112" "$CAP2"
capture_start rtr r1 "ip proto 112" "$CAP1"
hamgr_start gw1 "$(conf_of gw1)"
wait_until 10 hamgr_state_is gw1 wan MASTER || die "gw1 did not become MASTER"
hamgr_start gw2 "$(conf_of gw2)"
wait_until 10 states_are MASTER BACKUP || true
assert_eq "$(hamgr_state gw1 wan):$(hamgr_state gw2 wan)" MASTER:BACKUP "one master across the router"
assert_true "still one master 2 s later" holds_for 2 states_are MASTER BACKUP
assert_eq "$(inst_field gw1 wan .primary_address)" 10.81.1.5 "gw1 advertises from its unicast_source"
assert_eq "$(inst_field gw2 wan .last_master)" 10.81.1.5 "gw2 hears gw1 at 10.81.1.5"
assert_true "gw2 accepts adverts that crossed a router" [ "$(inst_field gw2 wan .counters.adverts_received)" -ge 10 ]
assert_eq "$(inst_field gw2 wan .drops.ttl):$(inst_field gw2 wan .counters.packets_invalid)" 0:0 \
        "gw2 drops nothing for the TTL"

assert_true "wire behind rtr: gw1's advert from 10.81.1.5 to 10.81.2.2 with TTL 254" \
        capture_has "$CAP2" "ttl 254" "10.81.1.5 > 10.81.2.2:" "VRRPv3, Advertisement" "vrid 51, prio 150"
assert_eq "$(capture_count "$CAP2" "10.81.1.2 >")" 0 "wire: nothing from gw1's primary 10.81.1.2"
assert_eq "$(capture_grep "$CAP2" "VRRP" | grep -vc 'ttl 254' || true)" 0 "wire: every advert behind rtr has TTL 254"

# gw2 advertises once it is master: with its unicast_ttl.
hamgr_stop gw1
wait_until 5 hamgr_state_is gw2 wan MASTER || true
assert_eq "$(hamgr_state gw2 wan)" MASTER "gw2 takes over when gw1 stops"
wait_until 3 capture_has "$CAP1" "10.81.2.2 > 10.81.1.5:" "prio 100" || true
assert_true "wire behind rtr: gw2's advert to 10.81.1.5 with TTL 63 (unicast_ttl 64, one hop)" \
        capture_has "$CAP1" "ttl 63" "10.81.2.2 > 10.81.1.5:" "VRRPv3, Advertisement" "vrid 51, prio 100"
hamgr_start gw1 "$(conf_of gw1)"
wait_until 10 states_are MASTER BACKUP || true
assert_eq "$(hamgr_state gw1 wan):$(hamgr_state gw2 wan)" MASTER:BACKUP "gw1 preempts back across the router"
assert_eq "$(inst_field gw1 wan .drops.ttl)" 0 "gw1 dropped nothing for the TTL (63 on arrival)"

capture_stop
hamgr_stop gw1
hamgr_stop gw2

# ------------------------------------------------ IPv6, global unicast_source
# Link-local sources do not cross routers: with a global unicast_source
# the peers are global addresses too.
hi_sysctl "$(ns_of rtr)" net.ipv6.conf.all.forwarding=1
ip -n "$(ns_of rtr)" addr add fd81:1::1/64 dev r1 nodad
ip -n "$(ns_of rtr)" addr add fd81:2::1/64 dev r2 nodad
ip -n "$(ns_of gw1)" addr add fd81:1::2/64 dev eth0 nodad
ip -n "$(ns_of gw2)" addr add fd81:2::2/64 dev eth0 nodad
ip -n "$(ns_of gw1)" -6 route add default via fd81:1::1
ip -n "$(ns_of gw2)" -6 route add default via fd81:2::1
wait_until 5 node_exec gw1 ping -6 -c 1 -W 1 fd81:2::2 || die "gw1 cannot reach gw2 over IPv6"
HC_INSTANCE=wan6 HC_TRACK="" HC_VIPS='"fd81:50::1/128"' HC_UNICAST_PEERS='"fd81:2::2"' \
        HC_INSTANCE_EXTRA='unicast_source = "fd81:1::2";' write_hamgr_conf "$(conf_of gw1)" gw1 150
HC_INSTANCE=wan6 HC_TRACK="" HC_VIPS='"fd81:50::1/128"' HC_UNICAST_PEERS='"fd81:1::2"' \
        HC_INSTANCE_EXTRA='unicast_source = "fd81:2::2";' write_hamgr_conf "$(conf_of gw2)" gw2 100
CAP6="$HI_TMP/r2-v6.cap"
capture_start rtr r2 "ip6 proto 112" "$CAP6"
hamgr_start gw1 "$(conf_of gw1)"
wait_until 10 hamgr_state_is gw1 wan6 MASTER || die "IPv6: gw1 did not become MASTER"
hamgr_start gw2 "$(conf_of gw2)"
wait_until 10 hamgr_state_is gw2 wan6 BACKUP || true
assert_true "IPv6: one master across the router for 2 s" \
        holds_for 2 eval 'hamgr_state_is gw1 wan6 MASTER && hamgr_state_is gw2 wan6 BACKUP'
assert_eq "$(inst_field gw2 wan6 .last_master)" fd81:1::2 "IPv6: gw2 hears gw1 at its global unicast_source"
assert_true "IPv6 wire behind rtr: gw1's advert from fd81:1::2 to fd81:2::2, hop limit 254" \
        capture_has "$CAP6" "hlim 254" "fd81:1::2 > fd81:2::2:" "vrid 51, prio 150"
capture_stop

hamgr_stop gw1
hamgr_stop gw2
finish
