#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Check weights in a sync group are the group's. gw1 (150) and gw2 (100)
# run "wan" on eth0 and "lan" on eth2 (a direct link) in group "gateway";
# only gw1's wan tracks a link check on eth1 with weight -60.
#  - eth1 loses carrier on gw1: both members of gw1 drop to 90 (lan too,
#    although it tracks nothing), so every member of gw2 would preempt and
#    gw2 takes the group: one transition per member on each node;
#  - carrier back: both back to 150 and gw1 takes the group back.
# shellcheck disable=SC2317 # small predicates run through wait_until
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_hamgr

WAN_VIP=10.77.0.10
LAN_VIP=10.79.0.20

# write_conf FILE NODE PRIORITY WAN_TRACK CHECKS
write_conf() {
        local file=$1 node=$2 prio=$3
        mkdir -p "$HI_TMP/$node.state"
        cat >"$file" <<EOF
node = { name = "$node"; state_dir = "$HI_TMP/$node.state"; control_socket = "/run/hamgr/control.sock"; };
checks = ( $5 );
vrrp = (
  { name = "wan"; interface = "eth0"; vrid = 51; priority = $prio; advert_interval_ms = 100;
    virtual_ips = [ "$WAN_VIP/24" ]; track_checks = ( $4 ); },
  { name = "lan"; interface = "eth2"; vrid = 52; priority = $prio; advert_interval_ms = 100;
    virtual_ips = [ "$LAN_VIP/24" ]; }
);
groups = ( { name = "gateway"; instances = [ "wan", "lan" ]; } );
EOF
        node_exec "$node" "$HAMGR_BIN" check -c "$file" >/dev/null ||
                die "hamgr check refuses $file: $(node_exec "$node" "$HAMGR_BIN" check -c "$file" 2>&1)"
}

both_are() {
        hamgr_state_is "$1" wan "$2" && hamgr_state_is "$1" lan "$2"
}

holds() {
        local other=gw2
        [ "$1" = gw2 ] && other=gw1
        both_are "$1" MASTER && both_are "$other" BACKUP
}

# prios NODE: "wan lan" effective priorities
prios() {
        hamgr_status "$1" | jq -er '[.instances[] | .effective_priority] | map(tostring) | join(" ")'
}

prios_are() {
        [ "$(prios "$1")" = "$2" ]
}

transitions() {
        hamgr_status "$1" | jq -er '[.instances[] | .counters.transitions] | add'
}

lab_create 2
node_start gw1
node_start gw2
gw_direct_link gw1 gw2 eth2 10.79.0
write_conf "$(conf_of gw1)" gw1 150 '{ check = "uplink"; weight = -60; }' \
        '{ name = "uplink"; type = "link"; interface = "eth1"; interval_ms = 100; rise = 1; fall = 1; }'
write_conf "$(conf_of gw2)" gw2 100 '' ''
hamgr_start gw1 "$(conf_of gw1)"
hamgr_start gw2 "$(conf_of gw2)"

wait_until 10 holds gw1 || fail "start: gw1 wan/lan $(hamgr_state gw1 wan)/$(hamgr_state gw1 lan), gw2 $(hamgr_state gw2 wan)/$(hamgr_state gw2 lan)"
assert_true "start: gw1 effective priorities 150 150" wait_until 3 prios_are gw1 "150 150"
assert_true "start: gw1 holds the group for 1 s" holds_for 1 holds gw1
t1=$(transitions gw1)
t2=$(transitions gw2)

# ---- the check fails: the whole group of gw1 drops, gw2 takes it
gw_carrier gw1 off
assert_true "down: gw1 effective priorities 90 90 (lan follows wan's weight)" wait_until 3 prios_are gw1 "90 90"
assert_eq "$(hamgr_log_count gw1 'lan: priority 150 -> 90 (tracked checks of group gateway)')" 1 \
        "down: gw1 logs lan's priority change"
assert_true "down: gw2 takes the group" wait_until 5 holds gw2
assert_true "down: stable for 2 s" holds_for 2 holds gw2
assert_eq "$(transitions gw1)" "$((t1 + 2))" "down: one transition per member on gw1"
assert_eq "$(transitions gw2)" "$((t2 + 2))" "down: one transition per member on gw2"

# ---- the check recovers: gw1 preempts back
gw_carrier gw1 on
assert_true "up: gw1 effective priorities 150 150" wait_until 3 prios_are gw1 "150 150"
assert_true "up: gw1 takes the group back" wait_until 5 holds gw1
assert_true "up: stable for 2 s" holds_for 2 holds gw1
assert_eq "$(transitions gw1)" "$((t1 + 4))" "up: one more transition per member on gw1"
assert_eq "$(transitions gw2)" "$((t2 + 4))" "up: one more transition per member on gw2"

finish
