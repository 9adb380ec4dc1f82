#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# A link going down is seen every time, not only the first: the tracked
# interface eth1 and the VRRP interface eth0 (both with IPv6 on, as on any
# stock host) each go down and up three times; every down puts the
# instance in FAULT within 2 s, every up brings it back to MASTER.
# hamgr used to read link flags from whichever cached object of the index
# came first; after the first up, that was a per-family (AF_INET6) copy
# that later events never refresh, so the second down went unseen and the
# node stayed MASTER with its link down.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

require_hamgr
require_cmd jq

lab_create 1
for ifname in eth0 eth1; do
        assert_eq "$(ip netns exec "$(ns_of gw1)" cat "/proc/sys/net/ipv6/conf/$ifname/disable_ipv6")" 0 \
                "IPv6 is on for $ifname"
done
HC_INTERVAL_MS=100 write_hamgr_conf "$(conf_of gw1)" gw1 150
hamgr_start gw1 "$(conf_of gw1)"

fault_is() {
        [ "$(hamgr_status gw1 | jq -r '.instances[0].state + " " + (.instances[0].fault_detail // "")')" = "FAULT $1" ]
}
for ifname in eth1 eth0; do
        what="tracked interface eth1 down"
        [ "$ifname" = eth1 ] || what="interface eth0 down"
        for round in 1 2 3; do
                wait_until 10 hamgr_state_is gw1 wan MASTER || die "$ifname round $round: gw1 not MASTER"
                node_link gw1 "$ifname" down
                assert_true "$ifname down ($round of 3): FAULT ($what)" wait_until 2 fault_is "$what"
                node_link gw1 "$ifname" up
                assert_true "$ifname up ($round of 3): MASTER again" wait_until 10 hamgr_state_is gw1 wan MASTER
        done
done
finish
