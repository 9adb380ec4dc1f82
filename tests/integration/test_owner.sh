#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Address owner (priority 255). gw1 has 10.77.0.50/24 on eth0 as an address
# of its own, configured before hamgr starts, and owns the virtual router
# for it; gw2 (100) backs it up.
#  - start: gw1 MASTER at once, keeps the address (no "left by a previous
#    run" removal), logs it as owned; gw2 BACKUP;
#  - eth0 down on gw1 (FAULT): the address stays configured on gw1;
#    eth0 up: gw1 MASTER again, gw2 BACKUP and without the address;
#  - hamgr stops on gw1 (TERM): the address is still on gw1's eth0;
#  - for contrast, gw2 (not an owner) removes the address when it stops.
# shellcheck disable=SC2317 # small predicates run through wait_until
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_hamgr

VIP=10.77.0.50

write_conf() {
        local file=$1 node=$2 prio=$3
        mkdir -p "$HI_TMP/$node.state"
        cat >"$file" <<EOF
node = { name = "$node"; state_dir = "$HI_TMP/$node.state"; control_socket = "/run/hamgr/control.sock"; };
vrrp = ( { name = "wan"; interface = "eth0"; vrid = 51; priority = $prio; advert_interval_ms = 100;
           virtual_ips = [ "$VIP/24" ]; } );
EOF
}

settled() {
        hamgr_state_is gw1 wan MASTER && hamgr_state_is gw2 wan BACKUP && vip_owner_is "$VIP" gw1
}

lab_create 2
node_start gw1
node_start gw2
ip -n "$(ns_of gw1)" addr add "$VIP/24" dev eth0
write_conf "$(conf_of gw1)" gw1 255
write_conf "$(conf_of gw2)" gw2 100
hamgr_start gw1 "$(conf_of gw1)"
hamgr_start gw2 "$(conf_of gw2)"

# ---- start
assert_true "start: gw1 MASTER, gw2 BACKUP, address on gw1 only" wait_until 5 settled
assert_eq "$(inst_field gw1 wan .last_transition.reason)" address-owner "start: gw1's reason"
assert_eq "$(hamgr_log_count gw1 "removed virtual IP $VIP")" 0 "start: the owner did not remove its address"
assert_eq "$(hamgr_log_count gw1 "virtual IP $VIP is an address of eth0: owned")" 1 "start: logged as owned"
assert_true "start: stable for 1 s" holds_for 1 settled

# ---- FAULT: the interface goes down, the address stays
node_link gw1 eth0 down
assert_true "fault: gw1 FAULT" wait_until 5 hamgr_state_is gw1 wan FAULT
assert_true "fault: gw1 keeps its address for 1 s" holds_for 1 vip_on gw1 "$VIP"
node_link gw1 eth0 up
wait_until 5 node_has_carrier gw1 eth0 || die "gw1 eth0 has no carrier"
assert_true "fault cleared: gw1 MASTER, gw2 BACKUP" wait_until 5 settled
assert_true "fault cleared: stable for 1 s" holds_for 1 settled

# ---- STOP: hamgr exits, the address stays
hamgr_stop gw1 TERM
assert_true "stop: gw2 takes over" wait_until 5 hamgr_state_is gw2 wan MASTER
assert_true "stop: gw1's own address is still there" vip_on gw1 "$VIP"

# ---- contrast: a non-owner removes what it added
hamgr_stop gw2 TERM
assert_false "stop: gw2 removed the virtual IP it had added" vip_on gw2 "$VIP"
assert_true "stop: gw1's address is still there" vip_on gw1 "$VIP"

finish
