#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The kick after link up on wireguard-go. wireguard-go learns of the link
# coming up from a netlink event; a kick (keepalive 0 -> 25) that reaches it
# before that sends nothing, and a peer whose keepalive is off gets 0 back
# right after, so nothing is sent when it does come up either. hamgr waits
# until wireguard-go has bound its listen port (it does so only once up)
# before kicking. Checked on the wire, five takeovers in a row on one
# gateway (FAULT through its tracked eth1 losing carrier, then MASTER again, so the link
# goes down and up and the kick follows at once), with client and gateway
# both without keepalive, so that only the kick can start a handshake:
#  - each takeover sends a handshake initiation (148 bytes) from the VIP to
#    the client within 3 s (the client alone would never send one);
#  - hamgr never had to kick without the daemon being up ("kicking anyway").
# Debian's wireguard-go (0.0.20220316) does not go down with its link here
# (its UDP port stays bound, a kick while the link is down is sent at
# once), so it never makes hamgr wait and these rounds pass with or
# without the wait; they guard the kick on the wire. A wireguard-go that
# does go down closes its port and is waited for.
# shellcheck disable=SC2317 # small predicates run through wait_until
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/wg_lab.sh"

require_hamgr
require_cmd wireguard-go wg tcpdump ping

VIP=10.77.0.10

lab_create 1
wg_keys
wg_gateway_setup gw1

# ---- hamgr
conf=$(conf_of gw1)
HC_INTERVAL_MS=100 write_hamgr_conf "$conf" gw1 150 \
        "wireguard = ( { interface = \"wg0\"; backend = \"uapi\"; follow = \"wan\"; source_address = \"$VIP\"; } );"
hamgr_start gw1 "$conf"
wait_until 10 hamgr_state_is gw1 wan MASTER || die "gw1 did not become MASTER: $(tail -5 "$(hamgr_log gw1)")"
wait_until 5 wg_link_up gw1 || die "wg0 not up on gw1"

# The client, keepalive off: one ping so that gw1 learns its endpoint.
wg_client_setup "$VIP:$WG_PORT" 0
wait_until 10 tunnel_ping || die "no tunnel through gw1"
wait_until 10 node_exec gw1 grep -q "$WG_CLIENT_PUB" "$HI_TMP/gw1.state/wireguard-wg0.endpoints" ||
        die "gw1 did not store the client's endpoint"

for i in 1 2 3 4 5; do
        gw_carrier gw1 off
        wait_until 5 hamgr_state_is gw1 wan FAULT || die "round $i: gw1 not FAULT"
        wait_until 5 wg_link_down gw1 || die "round $i: wg0 still up in FAULT"
        cap=$HI_TMP/kick$i.cap
        capture_start client eth0 "udp port $WG_PORT" "$cap"
        gw_carrier gw1 on
        if wait_until 3 capture_has "$cap" "$VIP.$WG_PORT > 10.77.0.100." "length 148"; then
                pass "round $i: the kick's handshake initiation left from the VIP"
        else
                fail "round $i: no handshake initiation from $VIP within 3 s: $(capture_records "$cap" | head -3)"
        fi
        capture_stop "$cap"
        assert_eq "$(hamgr_status gw1 | jq -r '.wireguard[0].phase')" active "round $i: follower active"
done
assert_not_contains "$(cat "$(hamgr_log gw1)")" "kicking anyway" "the daemon was always up before the kick"

finish
