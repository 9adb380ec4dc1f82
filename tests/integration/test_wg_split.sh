#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# A split brain ends: gw1 (master) keeps its role while its adverts to gw2
# are dropped on the switch for a while, so gw2 becomes master too and
# announces the VIP (the client's ARP entry moves to gw2). When the adverts
# pass again gw2 yields, and gw1, which never left MASTER:
#  - announces the VIP again (the client's ARP entry names gw1 again);
#  - kicks the WireGuard peers into a fresh handshake;
# so the tunnel is back in about a second, not after the client's own
# retry (~15 s) or its ARP entry going stale.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/wg_lab.sh"

require_hamgr
require_cmd wireguard-go wg ping nft

VIP=10.77.0.10

write_conf() {
        local node=$1 prio=$2
        HC_TRACK= HC_INTERVAL_MS=200 write_hamgr_conf "$(conf_of "$node")" "$node" "$prio" \
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

# ---- split: gw1's adverts do not reach gw2
nft_sw add table bridge split
nft_sw add chain bridge split pass '{ type filter hook forward priority 0; }'
nft_sw add rule bridge split pass iifname gw1 oifname gw2 ether type ip ip protocol 112 drop
assert_true "split: gw2 becomes MASTER too" wait_until 5 hamgr_state_is gw2 wan MASTER
assert_true "split: gw1 stays MASTER" hamgr_state_is gw1 wan MASTER
assert_true "split: the client's ARP entry followed gw2's announcement" \
        wait_until 3 bash -c "[ \"\$(ip -n '$(ns_of client)' neigh show $VIP dev eth0 | sed -n 's/.*lladdr \([0-9a-f:]*\).*/\1/p')\" = $GW2_MAC ]"
sleep 1

# ---- heal
nft_sw delete table bridge split
t0=$(hi_now_ms)
assert_true "heal: gw2 yields" wait_until 3 hamgr_state_is gw2 wan BACKUP
assert_true "heal: gw1 announces the VIP again (client's ARP entry names gw1)" \
        wait_until 3 bash -c "[ \"\$(ip -n '$(ns_of client)' neigh show $VIP dev eth0 | sed -n 's/.*lladdr \([0-9a-f:]*\).*/\1/p')\" = $GW1_MAC ]"
# Well before the client's own retry (~15 s) could bring it back.
if wait_until 5 tunnel_ping; then
        pass "heal: tunnel through gw1 again after $(( $(hi_now_ms) - t0 )) ms"
else
        fail "heal: no tunnel through gw1 within 5 s"
fi
assert_eq "$(hamgr_log_count gw1 "another master served meanwhile, kicking the peers")" 1 "heal: gw1 kicked its peers once"
assert_eq "$(hamgr_state gw1 wan)" MASTER "heal: gw1 never left MASTER"

finish
