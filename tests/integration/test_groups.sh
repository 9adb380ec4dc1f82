#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Instance groups, two gateways gw1 (150) and gw2 (100). Each runs two
# instances on eth0, "wan" (vrid 51, VIP 10.77.0.10) and "lan" (vrid 52,
# VIP 10.77.0.20), in one group "gateway"; only "lan" tracks eth1.
#  - both instances MASTER on gw1, both BACKUP on gw2, group state
#    reported by status, GROUP notify calls with state and priority;
#  - eth1 loses carrier on gw1: lan goes FAULT by itself and wan follows
#    (FAULT, reason group) although nothing is wrong with wan; gw2 takes
#    both; GROUP FAULT / GROUP MASTER notifies;
#  - carrier back: gw1 takes both back, gw2 both BACKUP;
#  - kill -9 of gw1's hamgr: gw2 takes both.
# shellcheck disable=SC2317 # small predicates run through wait_until
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_hamgr

WAN_VIP=10.77.0.10
LAN_VIP=10.77.0.20

# write_group_conf FILE NODE PRIORITY: the two instances and their group.
write_group_conf() {
        local file=$1 node=$2 prio=$3
        mkdir -p "$HI_TMP/$node.state"
        cat >"$file" <<EOF
node = {
    name = "$node";
    state_dir = "$HI_TMP/$node.state";
    control_socket = "/run/hamgr/control.sock";
};

vrrp = (
  {
    name = "wan";
    interface = "eth0";
    vrid = 51;
    priority = $prio;
    advert_interval_ms = 100;
    virtual_ips = [ "$WAN_VIP/24" ];
  },
  {
    name = "lan";
    interface = "eth0";
    vrid = 52;
    priority = $prio;
    advert_interval_ms = 100;
    virtual_ips = [ "$LAN_VIP/24" ];
    track_interfaces = [ "eth1" ];
  }
);

groups = (
  {
    name = "gateway";
    instances = [ "wan", "lan" ];
  }
);

notify = {
    script = "$HAMGR_NOTIFY_SCRIPT";
    timeout_ms = 5000;
};
EOF
}

group_state() {
        hamgr_status "$1" | jq -er '.groups[] | select(.name == "gateway") | .state'
}

# both_are NODE STATE: wan and lan of NODE are in STATE.
both_are() {
        hamgr_state_is "$1" wan "$2" && hamgr_state_is "$1" lan "$2"
}

# holds_both NODE [OTHER_STATE]: NODE is MASTER of both and alone holds
# both VIPs, the other gateway is in OTHER_STATE (BACKUP) for both.
holds_both() {
        local other=gw2
        [ "$1" = gw2 ] && other=gw1
        both_are "$1" MASTER && both_are "$other" "${2:-BACKUP}" &&
                vip_owner_is "$WAN_VIP" "$1" && vip_owner_is "$LAN_VIP" "$1"
}

notify_count_ge() {
        [ "$(hamgr_notify_count "$1" "$2")" -ge "$3" ]
}

config_ok() {
        node_exec gw1 "$HAMGR_BIN" check -c "$1" >/dev/null
}

has_both_vips() {
        vip_on "$1" "$WAN_VIP" && vip_on "$1" "$LAN_VIP"
}

lab_create 2
node_start gw1
node_start gw2
write_group_conf "$(conf_of gw1)" gw1 150
write_group_conf "$(conf_of gw2)" gw2 100
assert_true "config: hamgr check accepts the group config" config_ok "$(conf_of gw1)"
hamgr_start gw1 "$(conf_of gw1)"
hamgr_start gw2 "$(conf_of gw2)"

# ---- both instances on one node
wait_until 10 holds_both gw1 || fail "start: gw1 does not hold both (gw1 wan/lan $(hamgr_state gw1 wan)/$(hamgr_state gw1 lan), gw2 $(hamgr_state gw2 wan)/$(hamgr_state gw2 lan))"
assert_true "start: gw1 MASTER of both, gw2 BACKUP of both, VIPs on gw1, for 1 s" holds_for 1 holds_both gw1
assert_eq "$(group_state gw1)" MASTER "start: gw1 group state"
assert_eq "$(group_state gw2)" BACKUP "start: gw2 group state"
assert_eq "$(inst_field gw1 wan .group)" gateway "start: wan is in the group"
assert_true "start: gw1 notify GROUP MASTER" wait_until 3 notify_count_ge gw1 "args=GROUP gateway MASTER 150" 1
assert_true "start: gw2 notify GROUP BACKUP" wait_until 3 notify_count_ge gw2 "args=GROUP gateway BACKUP 100" 1
assert_contains "$(hamgr_notify_read gw1 | grep -F 'args=GROUP gateway MASTER')" "HAMGR_GROUP=gateway" \
        "start: GROUP notify environment"
assert_eq "$(hamgr_notify_count gw1 'args=INSTANCE wan MASTER 150')" 1 "start: gw1 notify wan MASTER"
assert_eq "$(hamgr_notify_count gw1 'args=INSTANCE lan MASTER 150')" 1 "start: gw1 notify lan MASTER"

# ---- one member faults: the whole group leaves MASTER on gw1
gw_carrier gw1 off
wait_until 5 both_are gw1 FAULT || fail "fault: gw1 wan/lan $(hamgr_state gw1 wan)/$(hamgr_state gw1 lan), want FAULT/FAULT"
assert_contains "$(inst_field gw1 lan '.faults | join(",")')" tracked-interface-down "fault: lan's own fault"
assert_eq "$(inst_field gw1 wan '.faults | length')" 0 "fault: wan has no fault of its own"
assert_eq "$(inst_field gw1 wan .last_transition.reason)" group "fault: wan follows the group"
assert_eq "$(inst_field gw1 lan .last_transition.reason)" fault "fault: lan's reason"
assert_eq "$(hamgr_log_count gw1 'wan: MASTER -> FAULT (group: following group gateway')" 1 "fault: gw1 log for wan"
assert_true "fault: gw2 takes both" wait_until 5 holds_both gw2 FAULT
assert_eq "$(group_state gw1)" FAULT "fault: gw1 group state"
assert_eq "$(group_state gw2)" MASTER "fault: gw2 group state"
assert_true "fault: gw1 notify GROUP FAULT" wait_until 3 notify_count_ge gw1 "args=GROUP gateway FAULT 150" 1
assert_true "fault: gw2 notify GROUP MASTER" wait_until 3 notify_count_ge gw2 "args=GROUP gateway MASTER 100" 1
assert_true "fault: gw2 keeps both while gw1's carrier is off" holds_for 1 holds_both gw2 FAULT

# ---- recovery
gw_carrier gw1 on
assert_true "recover: gw1 takes both back" wait_until 5 holds_both gw1
assert_true "recover: stable for 1 s" holds_for 1 holds_both gw1
assert_eq "$(group_state gw1)" MASTER "recover: gw1 group state"
assert_eq "$(group_state gw2)" BACKUP "recover: gw2 group state"
assert_true "recover: gw1 notify GROUP MASTER again" wait_until 3 notify_count_ge gw1 "args=GROUP gateway MASTER 150" 2
assert_true "recover: gw2 notify GROUP BACKUP again" wait_until 3 notify_count_ge gw2 "args=GROUP gateway BACKUP 100" 2
# A group and its members share one notify queue: the group's call comes
# after the member calls that made it, never between them.
order=$(hamgr_notify_read gw1 | grep -oE 'args=(INSTANCE (wan|lan)|GROUP gateway) MASTER' | tail -n 3 | tr '\n' ' ')
assert_contains "$order" "GROUP gateway MASTER " "recover: three MASTER notifications, group last"
assert_eq "$(printf '%s' "$order" | awk '{ print $(NF - 1) }')" "gateway" "recover: the group's notification comes after both members' ($order)"

# ---- crash: kill -9 moves both
hamgr_stop gw1 KILL
assert_true "crash: gw2 MASTER of both" wait_until 5 both_are gw2 MASTER
assert_true "crash: gw2 holds both VIPs" wait_until 3 has_both_vips gw2
assert_eq "$(group_state gw2)" MASTER "crash: gw2 group state"
assert_true "crash: gw2 notify GROUP MASTER" wait_until 3 notify_count_ge gw2 "args=GROUP gateway MASTER 100" 2
assert_true "crash: gw2 stays MASTER of both for 1 s" holds_for 1 both_are gw2 MASTER

finish
