#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# After a split heals, the node that stays MASTER takes the virtual IPs back
# in the neighbours' caches at once. Two gateways (gw1 150, gw2 100, 100 ms
# adverts, one instance with an IPv4 and an IPv6 virtual IP) and a client:
#  - the client has neighbour entries for both VIPs with gw1's MAC;
#  - nftables in gw2 drop VRRP both ways for 3 s: gw2 becomes MASTER as
#    well and its GARP / NA move the client's entries to gw2's MAC (so the
#    client really holds the loser's MAC during the split);
#  - the rules go: gw1 hears gw2's lower-priority advert, stays MASTER,
#    answers it and re-announces; gw2 yields. The client's entries hold
#    gw1's MAC within 1 s of the heal, read without sending anything from
#    the client (its own resolution would take the 5 s DELAY state at the
#    least, so 1 s tells the re-announce from the cache expiring);
#  - the re-announce is logged on gw1, which never left MASTER, and the
#    NAs carry the Router flag;
#  - a second split and heal: answered again (the 1 s rate limit of the
#    re-announce has long passed), once (more only if gw2 was still heard
#    as a master over a second after the heal: see reannounced).
# The lost side yields with one last advert of its own priority, so gw1
# hears a losing master even when its own advert reaches gw2 first.
#  - a sync group (wan vrid 51, lan vrid 52, 1 s adverts): after a split,
#    only "wan" heals (nftables keeps dropping vrid 52 in gw2);
#    gw1 re-announces "lan" too, and the client holds gw1's MAC for both
#    VIPs within 1 s.
#  - the same with VRRP over IPv6 (an IPv6 instance, VIPs fe80::1:10 and
#    fd77::10).
# No delayed second burst (garp.delay_s = 0), which could move the client
# by itself.
# shellcheck disable=SC2317 # small predicates run through wait_until
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_hamgr
require_cmd nft ping tcpdump

VIP4=10.77.0.10
VIP6=fd77::10

lab_create 2
node_start client

for g in gw1 gw2; do
        prio=150
        [ "$g" = gw2 ] && prio=100
        # No delayed second burst: it could land just after a heal and move
        # the client without the re-announce under test.
        HC_VIPS="\"$VIP4/24\", \"$VIP6/64\"" HC_INSTANCE_EXTRA='garp = { delay_s = 0; };' \
                write_hamgr_conf "$(conf_of "$g")" "$g" "$prio"
done
MAC1=$(node_mac gw1)
MAC2=$(node_mac gw2)

hamgr_start gw1 "$(conf_of gw1)"
wait_until 5 hamgr_state_is gw1 wan MASTER || die "gw1 did not become MASTER"
hamgr_start gw2 "$(conf_of gw2)"
wait_until 5 states_are MASTER BACKUP || die "gw2 did not settle as BACKUP"

client_has() {
        [ "$(neigh_mac client "$1")" = "$2" ]
}

# ping VIP: one echo from the client (creates its neighbour entry).
ping_vip() {
        node_exec client ping -c 1 -W 1 "$1" >/dev/null 2>&1
}

wait_until 5 ping_vip "$VIP4" || die "client cannot ping $VIP4"
wait_until 5 ping_vip "$VIP6" || die "client cannot ping $VIP6"
assert_eq "$(neigh_mac client "$VIP4")" "$MAC1" "before the split: client has gw1's MAC for $VIP4"
assert_eq "$(neigh_mac client "$VIP6")" "$MAC1" "before the split: client has gw1's MAC for $VIP6"

# VRRP (protocol 112) dropped in and out of gw2; ARP and ND still pass.
split() {
        ip netns exec "$(ns_of gw2)" nft -f - <<'EOF'
table inet hi_split {
        chain in { type filter hook input priority 0; meta l4proto 112 drop; }
        chain out { type filter hook output priority 0; meta l4proto 112 drop; }
}
EOF
}

heal() {
        HEAL_MS=$(hi_now_ms)
        ip netns exec "$(ns_of gw2)" nft delete table inet hi_split
}

# reannounced MSG BEFORE: gw1 re-announced since the heal (it had logged
# BEFORE re-announces until then), as often as its rate limit allows while
# it still heard gw2 as a master: at least once, at most once a second from
# the heal until gw2 was seen BACKUP (call it right after that). gw2
# normally yields at gw1's reply, within a 100 ms advert: exactly once. On a
# loaded machine gw2 can stay master (or its last advert, which loses to
# gw1, can come) more than a second later; then gw1 rightly answers again.
# One re-announce per lower advert (no rate limit) fails this either way.
reannounced() {
        local msg=$1 before=$2 n max
        n=$(($(hamgr_log_count gw1 're-announcing virtual IPs') - before))
        max=$((1 + ($(hi_now_ms) - HEAL_MS) / 1000))
        if [ "$n" -ge 1 ] && [ "$n" -le "$max" ]; then
                pass "$msg: $n re-announce(s), at most $max allowed by the 1 s rate limit"
        else
                fail "$msg: $n re-announce(s), want 1 to $max (one a second while gw2 was still heard)"
        fi
}

# split_and_heal ROUND: a 3 s split during which the client moves to gw2,
# then the heal.
split_and_heal() {
        local round=$1
        split
        wait_until 5 states_are MASTER MASTER || die "$round: gw2 did not become MASTER during the split"
        assert_true "$round: during the split the client has gw2's MAC for $VIP4" \
                wait_until 2 client_has "$VIP4" "$MAC2"
        assert_true "$round: during the split the client has gw2's MAC for $VIP6" \
                wait_until 2 client_has "$VIP6" "$MAC2"
        sleep 3
        assert_eq "$(neigh_mac client "$VIP4")" "$MAC2" "$round: client still on gw2 for $VIP4 at the end of the split"
        heal
}

capture_start client eth0 "arp or (icmp6 and ip6[40] == 136)" "$HI_TMP/client.cap"

# ---- first split
split_and_heal "split 1"
assert_true "split 1: within 1 s of the heal the client has gw1's MAC for $VIP4" \
        wait_until 1 client_has "$VIP4" "$MAC1"
assert_true "split 1: within 1 s of the heal the client has gw1's MAC for $VIP6" \
        wait_until 1 client_has "$VIP6" "$MAC1"
wait_until 3 states_are MASTER BACKUP || fail "split 1: after the heal gw1/gw2 are $(hamgr_state gw1 wan)/$(hamgr_state gw2 wan)"
assert_eq "$(inst_field gw2 wan .last_transition.reason)" higher-priority "split 1: gw2 yields to the higher priority"
assert_eq "$(hamgr_log_count gw1 'MASTER -> ')" 0 "split 1: gw1 never left MASTER"
reannounced "split 1: gw1 logged its re-announce" 0
assert_true "split 1: gw1's NA for $VIP6 carries the Router flag" \
        capture_has "$HI_TMP/client.cap" "$MAC1 > 33:33:00:00:00:01" "tgt is $VIP6," "Flags [router, override]"

# ---- a second split at once: gw1 answers again (the 1 s window has passed
# by the end of a 3 s split), and only once per heal
before=$(hamgr_log_count gw1 're-announcing virtual IPs')
split_and_heal "split 2"
assert_true "split 2: within 1 s of the heal the client has gw1's MAC for $VIP4" \
        wait_until 1 client_has "$VIP4" "$MAC1"
assert_true "split 2: within 1 s of the heal the client has gw1's MAC for $VIP6" \
        wait_until 1 client_has "$VIP6" "$MAC1"
wait_until 3 states_are MASTER BACKUP || fail "split 2: after the heal gw1/gw2 are $(hamgr_state gw1 wan)/$(hamgr_state gw2 wan)"
reannounced "split 2: gw1 logged a re-announce again" "$before"

# ---- sync group: the re-announce covers every member
# 1 s adverts here (Master_Down 3.6 s), so that the steps below have time.
LAN_VIP=10.77.0.20

# write_group_conf FILE NODE PRIORITY: "wan" (vrid 51) and "lan" (vrid 52)
# on eth0 in group "gateway", no delayed second burst.
write_group_conf() {
        local file=$1 node=$2 prio=$3
        mkdir -p "$HI_TMP/$node.state"
        cat >"$file" <<EOF
node = { name = "$node"; state_dir = "$HI_TMP/$node.state"; control_socket = "/run/hamgr/control.sock"; };
vrrp = (
  { name = "wan"; interface = "eth0"; vrid = 51; priority = $prio; advert_interval_ms = 1000;
    virtual_ips = [ "$VIP4/24" ]; garp = { delay_s = 0; }; },
  { name = "lan"; interface = "eth0"; vrid = 52; priority = $prio; advert_interval_ms = 1000;
    virtual_ips = [ "$LAN_VIP/24" ]; garp = { delay_s = 0; }; }
);
groups = ( { name = "gateway"; instances = [ "wan", "lan" ]; } );
EOF
}

both_are() {
        hamgr_state_is "$1" wan "$2" && hamgr_state_is "$1" lan "$2"
}

# lan_blocked DIRECTIONS: in gw2, VRRP of vrid 52 only (byte 1 of the VRRP
# header) dropped in "in", "out" or "in out".
lan_blocked() {
        local rules="" d
        for d in "$@"; do
                rules+="chain $d { type filter hook $([ "$d" = in ] && echo input || echo output) priority 0; meta l4proto 112 @th,8,8 52 drop; }"$'\n'
        done
        printf 'flush table inet hi_split\ndelete table inet hi_split\ntable inet hi_split {\n%s}\n' "$rules" |
                ip netns exec "$(ns_of gw2)" nft -f -
}

hamgr_stop gw2
hamgr_stop gw1
: >"$(hamgr_log gw1)"
write_group_conf "$(conf_of gw1)" gw1 150
write_group_conf "$(conf_of gw2)" gw2 100
hamgr_start gw1 "$(conf_of gw1)"
wait_until 8 both_are gw1 MASTER || die "group: gw1 did not become MASTER"
hamgr_start gw2 "$(conf_of gw2)"
wait_until 5 both_are gw2 BACKUP || die "group: gw2 did not settle as BACKUP"
wait_until 5 ping_vip "$LAN_VIP" || die "group: client cannot ping $LAN_VIP"
wait_until 5 ping_vip "$VIP4" || die "group: client cannot ping $VIP4"

split
wait_until 8 both_are gw2 MASTER || die "group: gw2 did not become MASTER during the split"
assert_true "group: during the split the client has gw2's MAC for $LAN_VIP" \
        wait_until 2 client_has "$LAN_VIP" "$MAC2"
assert_true "group: during the split the client has gw2's MAC for $VIP4" \
        wait_until 2 client_has "$VIP4" "$MAC2"
# Heal "wan" only: gw2's "wan" hears gw1 and yields with its last advert
# (its "lan" follows the group), so gw1 hears a losing master on "wan" only
# and must re-announce "lan" too.
lan_blocked in out
wait_until 3 both_are gw2 BACKUP || fail "group: gw2 did not yield after the heal of wan"
# Now let gw2's "lan" hear gw1's, so that it stays BACKUP.
lan_blocked out
assert_true "group: within 1 s of gw2 yielding the client has gw1's MAC for $VIP4" \
        wait_until 1 client_has "$VIP4" "$MAC1"
assert_true "group: within 1 s of gw2 yielding the client has gw1's MAC for $LAN_VIP (heard nothing on lan)" \
        wait_until 1 client_has "$LAN_VIP" "$MAC1"
assert_eq "$(hamgr_log_count gw1 'lan: re-announcing virtual IPs: a second master that loses to us was heard in the group')" 1 \
        "group: gw1's lan re-announced for the group"
assert_eq "$(hamgr_log_count gw1 'MASTER -> ')" 0 "group: gw1 never left MASTER"
assert_true "group: gw2 stays BACKUP" holds_for 1 both_are gw2 BACKUP
heal

# ---- VRRP over IPv6: the same with an IPv6 instance (link-local VIP first)
hamgr_stop gw2
hamgr_stop gw1
: >"$(hamgr_log gw1)"
for g in gw1 gw2; do
        prio=150
        [ "$g" = gw2 ] && prio=100
        HC_VRID=61 HC_VIPS="\"fe80::1:10/64\", \"$VIP6/64\"" HC_INSTANCE_EXTRA='garp = { delay_s = 0; };' \
                write_hamgr_conf "$(conf_of "$g")" "$g" "$prio"
done
hamgr_start gw1 "$(conf_of gw1)"
wait_until 5 hamgr_state_is gw1 wan MASTER || die "ipv6: gw1 did not become MASTER"
hamgr_start gw2 "$(conf_of gw2)"
wait_until 5 states_are MASTER BACKUP || die "ipv6: gw2 did not settle as BACKUP"
wait_until 5 ping_vip "$VIP6" || die "ipv6: client cannot ping $VIP6"
split
wait_until 5 states_are MASTER MASTER || die "ipv6: gw2 did not become MASTER during the split"
assert_true "ipv6: during the split the client has gw2's MAC for $VIP6" \
        wait_until 2 client_has "$VIP6" "$MAC2"
sleep 2
heal
assert_true "ipv6: within 1 s of the heal the client has gw1's MAC for $VIP6" \
        wait_until 1 client_has "$VIP6" "$MAC1"
wait_until 3 states_are MASTER BACKUP || fail "ipv6: after the heal gw1/gw2 are $(hamgr_state gw1 wan)/$(hamgr_state gw2 wan)"
reannounced "ipv6: gw1 logged its re-announce" 0
assert_eq "$(hamgr_log_count gw1 'MASTER -> ')" 0 "ipv6: gw1 never left MASTER"

finish
