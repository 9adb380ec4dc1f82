#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# A split brain ends: VRRP is dropped on the switch both ways for a while,
# so gw1 (master) keeps its role, hearing nothing, and gw2 becomes master
# too and announces the VIP (the client's ARP entry moves to gw2). The
# client's WireGuard session moves to gw2 (its peer is configured afresh,
# so it handshakes again, with gw2). When VRRP passes again gw2 yields, and gw1,
# which never left MASTER:
#  - announces the VIP again (the client's ARP entry names gw1 again);
#  - once gw2 is quiet, kicks the WireGuard peers into a fresh handshake
#    (wg_followers_rekick): the client's newest session is gw2's, which gw1
#    cannot decrypt, so without the kick the tunnel would only come back
#    with the client's own retry (~15 s);
# so the tunnel is back within a few seconds.
# Both ways: with VRRP dropped one way only, gw1 hears gw2's lower adverts
# and re-announces at once (at most once a second), so the client would
# not stay with gw2; split_heal covers that re-announce.
# shellcheck disable=SC2317 # small predicates run through wait_until/holds_for
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/wg_lab.sh"

require_hamgr
require_cmd wireguard-go wg ping nft

VIP=10.77.0.10

write_conf() {
        local node=$1 prio=$2
        # No delayed second GARP burst: gw1's, 5 s after it became master,
        # could land in the split and take the client back without any
        # mechanism under test.
        HC_TRACK='' HC_INTERVAL_MS=200 HC_INSTANCE_EXTRA='garp = { delay_s = 0; };' write_hamgr_conf "$(conf_of "$node")" "$node" "$prio" \
                "wireguard = ( { interface = \"wg0\"; backend = \"uapi\"; follow = \"wan\"; source_address = \"$VIP\"; } );"
}

nft_sw() {
        ip netns exec "$(ns_of sw)" nft "$@"
}

lab_create 2
wg_keys
for g in gw1 gw2; do
        wg_gateway_setup "$g"
done
write_conf gw1 150
write_conf gw2 100
hamgr_start gw1 "$(conf_of gw1)"
wait_until 10 hamgr_state_is gw1 wan MASTER || die "gw1 did not become MASTER"
hamgr_start gw2 "$(conf_of gw2)"
wait_until 10 hamgr_state_is gw2 wan BACKUP || die "gw2 did not become BACKUP"
wg_client_setup "$VIP:$WG_PORT"
wait_until 10 tunnel_ping || die "no tunnel through gw1"
GW1_MAC=$(node_mac gw1)
GW2_MAC=$(node_mac gw2)

client_mac_is() {
        [ "$(ip -n "$(ns_of client)" neigh show "$VIP" dev eth0 | sed -n 's/.*lladdr \([0-9a-f:]*\).*/\1/p')" = "$1" ]
}
# gw2_has_handshake: gw2 completed a handshake with the client.
gw2_has_handshake() {
        [ "$(node_exec gw2 wg show wg0 latest-handshakes | awk '{ print $2 }')" -gt 0 ] 2>/dev/null
}
kicked_once() {
        [ "$(hamgr_log_count gw1 "another master served meanwhile, kicking the peers")" = 1 ]
}

# ---- split: VRRP dropped both ways, each master alone
nft_sw add table bridge split
nft_sw add chain bridge split pass '{ type filter hook forward priority 0; }'
nft_sw add rule bridge split pass iifname gw1 oifname gw2 ether type ip ip protocol 112 drop
nft_sw add rule bridge split pass iifname gw2 oifname gw1 ether type ip ip protocol 112 drop
assert_true "split: gw2 becomes MASTER too" wait_until 5 hamgr_state_is gw2 wan MASTER
assert_true "split: gw1 stays MASTER" hamgr_state_is gw1 wan MASTER
assert_true "split: the client's ARP entry followed gw2's announcement" wait_until 3 client_mac_is "$GW2_MAC"
# The client's session moves to gw2: the peer configured afresh has no
# session, so the next packet starts a handshake, which gw2 answers.
node_exec client wg set wg0 peer "$WG_GW_PUB" remove
node_exec client wg set wg0 peer "$WG_GW_PUB" endpoint "$VIP:$WG_PORT" allowed-ips 10.99.0.0/24
assert_true "split: the client's tunnel runs through gw2" wait_until 10 tunnel_ping
assert_true "split: gw2 has a session with the client" gw2_has_handshake
assert_true "split: the client stays with gw2 (gw1 hears no lower advert)" holds_for 1 client_mac_is "$GW2_MAC"

# ---- heal
nft_sw delete table bridge split
t0=$(hi_now_ms)
assert_true "heal: gw2 yields" wait_until 3 hamgr_state_is gw2 wan BACKUP
assert_true "heal: gw1 announces the VIP again (client's ARP entry names gw1)" wait_until 3 client_mac_is "$GW1_MAC"
# Well before the client's own retry (~15 s) could bring it back.
if wait_until 5 tunnel_ping; then
        pass "heal: tunnel through gw1 again after $(( $(hi_now_ms) - t0 )) ms"
else
        fail "heal: no tunnel through gw1 within 5 s"
fi
assert_true "heal: gw1 kicked its peers" \
        wait_until 3 grep -q "another master served meanwhile, kicking the peers" "$(hamgr_log gw1)"
assert_true "heal: only once" holds_for 1 kicked_once
assert_eq "$(hamgr_log_count gw1 'MASTER -> ')" 0 "heal: gw1 never left MASTER"

finish
