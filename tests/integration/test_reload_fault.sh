#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Reload and fault handling of hamgr, two gateways gw1 (150) and gw2 (100),
# 100 ms adverts, both tracking eth1:
#  - SIGHUP with an unchanged config: no transition (counter, log), VIP
#    stays;
#  - SIGHUP with a changed priority: applied in place (status and the
#    peer's view change, state kept, no transition); lowering the master
#    below the backup makes the (preempting) backup take over;
#  - a config that fails to load on SIGHUP: error logged as FILE:LINE, the
#    old config keeps running, a later good reload still works;
#  - tracked interface loses carrier: gw1 FAULT naming eth1, gw2 takes
#    over; carrier back: gw1 BACKUP (fault-cleared), then preempts;
#  - a VIP left on eth0 by a previous run is removed when a BACKUP starts;
#  - an instance whose interface does not exist yet is FAULT
#    (interface-missing) and recovers when the interface appears.
# shellcheck disable=SC2317 # small predicates run through wait_until
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_hamgr

VIP=10.77.0.10

# Reload outcomes NODE logged so far, good or bad.
reload_outcomes() {
        echo $(($(hamgr_log_count "$1" 'reloaded:') + $(hamgr_log_count "$1" 'reload of')))
}

reload_outcomes_gt() {
        [ "$(reload_outcomes "$1")" -gt "$2" ]
}

# reload NODE: SIGHUP NODE's hamgr and wait until it logged the outcome
# (one more "reloaded" or "reload of" line than before).
reload() {
        local node=$1 before
        before=$(reload_outcomes "$node")
        kill -s HUP "${HAMGR_PID[$node]}"
        wait_until 5 reload_outcomes_gt "$node" "$before" || die "reload $node: no outcome logged"
}

gw2_holds() {
        states_are BACKUP MASTER && vip_owner_is "$VIP" gw2
}

vip_gone_from() {
        ! vip_on "$1" "$VIP"
}

stable_master() {
        states_are MASTER BACKUP && vip_owner_is "$VIP" gw1
}

lab_create 2
node_start gw1
node_start gw2
write_hamgr_conf "$(conf_of gw1)" gw1 150
write_hamgr_conf "$(conf_of gw2)" gw2 100
hamgr_start gw1 "$(conf_of gw1)"
hamgr_start gw2 "$(conf_of gw2)"
wait_until 10 stable_master || die "setup: gw1 MASTER / gw2 BACKUP not reached"

# ---- SIGHUP, config unchanged
tr0=$(inst_field gw1 wan .counters.transitions)
lines0=$(hamgr_log_count gw1 ' -> ')
reload gw1
assert_eq "$(hamgr_log_count gw1 'reloaded: 1 instance')" 1 "reload same: reloaded"
assert_true "reload same: gw1 stays MASTER with the VIP for 1 s" holds_for 1 stable_master
assert_eq "$(inst_field gw1 wan .counters.transitions)" "$tr0" "reload same: transitions counter"
assert_eq "$(hamgr_log_count gw1 ' -> ')" "$lines0" "reload same: no transition logged"

# ---- SIGHUP, priority changed but still highest
write_hamgr_conf "$(conf_of gw1)" gw1 140
reload gw1
assert_eq "$(inst_field gw1 wan .priority)" 140 "reload prio: status priority"
assert_true "reload prio: gw2 hears priority 140" wait_until 3 inst_field_is gw2 wan .last_master_priority 140
assert_true "reload prio: no flap for 1 s" holds_for 1 stable_master
assert_eq "$(inst_field gw1 wan .counters.transitions)" "$tr0" "reload prio: transitions counter"
assert_eq "$(hamgr_log_count gw1 ' -> ')" "$lines0" "reload prio: no transition logged"

# ---- SIGHUP, master lowered below the backup
write_hamgr_conf "$(conf_of gw1)" gw1 90
reload gw1
wait_until 5 states_are BACKUP MASTER || fail "reload lower: gw2 did not take over"
assert_eq "$(inst_field gw2 wan .last_transition.reason)" preempt "reload lower: gw2 preempted"
assert_eq "$(inst_field gw1 wan .last_transition.reason)" higher-priority "reload lower: gw1 yielded"
assert_true "reload lower: VIP on gw2 alone" wait_until 3 vip_owner_is "$VIP" gw2

# ---- SIGHUP with a config that does not load
BAD="$HI_TMP/gw1.bad.conf"
cp "$(conf_of gw1)" "$BAD"
sed -i 's/priority = 90;/priority = 300;/' "$BAD"
bad_line=$(grep -n 'priority = 300;' "$BAD" | cut -d: -f1)
[ -n "$bad_line" ] || die "bad config: could not plant the error"
cp "$(conf_of gw1)" "$HI_TMP/gw1.good.conf"
cp "$BAD" "$(conf_of gw1)"
tr1=$(inst_field gw1 wan .counters.transitions)
reload gw1
assert_contains "$(cat "$(hamgr_log gw1)")" "$(conf_of gw1):$bad_line:" "bad config: error with file:line"
assert_contains "$(cat "$(hamgr_log gw1)")" "keeping the running configuration" "bad config: old config kept"
assert_true "bad config: gw1 still running" hamgr_alive gw1
assert_eq "$(inst_field gw1 wan .priority)" 90 "bad config: old priority in force"
assert_true "bad config: gw1 BACKUP, gw2 MASTER unchanged for 1 s" \
        holds_for 1 gw2_holds
assert_eq "$(inst_field gw1 wan .counters.transitions)" "$tr1" "bad config: no transition"
# A good config afterwards is taken: back to 150, gw1 preempts.
write_hamgr_conf "$(conf_of gw1)" gw1 150
reload gw1
assert_true "after bad config: good reload applies, gw1 preempts" wait_until 5 stable_master
assert_eq "$(inst_field gw1 wan .last_transition.reason)" preempt "after bad config: reason"

# ---- tracked interface down -> FAULT
lines1=$(hamgr_log_count gw1 ' -> ')
gw_carrier gw1 off
wait_until 5 hamgr_state_is gw1 wan FAULT || fail "fault: gw1 not FAULT"
assert_contains "$(inst_field gw1 wan '.faults | join(",")')" tracked-interface-down "fault: gw1 faults"
assert_contains "$(inst_field gw1 wan .fault_detail)" eth1 "fault: detail names eth1"
assert_true "fault: gw2 takes over" wait_until 5 hamgr_state_is gw2 wan MASTER
assert_true "fault: VIP on gw2 alone" wait_until 3 vip_owner_is "$VIP" gw2
assert_eq "$(hamgr_log_count gw1 'wan: MASTER -> FAULT (fault: tracked interface eth1 down)')" 1 "fault: gw1 log"
assert_true "fault: gw1 stays FAULT while the carrier is off" holds_for 1 hamgr_state_is gw1 wan FAULT
gw_carrier gw1 on
assert_true "fault cleared: gw1 MASTER again" wait_until 5 stable_master
assert_eq "$(inst_field gw1 wan '.faults | length')" 0 "fault cleared: no faults"
assert_eq "$(hamgr_log_count gw1 'wan: FAULT -> BACKUP (fault-cleared)')" 1 "fault cleared: gw1 went BACKUP first"
assert_eq "$(hamgr_log_count gw1 'wan: BACKUP -> MASTER (preempt)')" 2 "fault cleared: then preempted"
assert_eq "$(($(hamgr_log_count gw1 ' -> ') - lines1))" 3 "fault cleared: exactly three transitions"

# ---- a VIP left on eth0 by a previous run
hamgr_stop gw2
ip -n "$(ns_of gw2)" addr add "$VIP/24" dev eth0
assert_true "stale VIP: planted on gw2" vip_on gw2 "$VIP"
: >"$(hamgr_log gw2)"
hamgr_start gw2 "$(conf_of gw2)"
wait_until 5 hamgr_state_is gw2 wan BACKUP || fail "stale VIP: gw2 not BACKUP"
assert_true "stale VIP: removed from gw2" wait_until 3 vip_gone_from gw2
assert_eq "$(hamgr_log_count gw2 "removed virtual IP $VIP left on eth0 by a previous run")" 1 "stale VIP: gw2 log"
assert_true "stale VIP: gw1 alone holds it for 1 s" holds_for 1 stable_master

# ---- interface missing at start
hamgr_stop gw2
HC_IFACE=eth2 write_hamgr_conf "$(conf_of gw2)" gw2 100
: >"$(hamgr_log gw2)"
hamgr_start gw2 "$(conf_of gw2)"
wait_until 5 hamgr_state_is gw2 wan FAULT || fail "missing iface: gw2 not FAULT"
assert_contains "$(inst_field gw2 wan '.faults | join(",")')" interface-missing "missing iface: faults"
assert_contains "$(inst_field gw2 wan .fault_detail)" eth2 "missing iface: detail names eth2"
assert_true "missing iface: gw2 stays FAULT" holds_for 1 hamgr_state_is gw2 wan FAULT
# Plug a new veth, eth2, into the bridge; address first, link up last.
ip -n "$(ns_of sw)" link add gw2b type veth peer name eth2 netns "$(ns_of gw2)"
ip -n "$(ns_of sw)" link set gw2b master "$HI_BRIDGE" up
ip -n "$(ns_of gw2)" addr add 10.77.0.12/24 dev eth2
ip -n "$(ns_of gw2)" link set eth2 up
wait_until 5 hamgr_state_is gw2 wan BACKUP || fail "missing iface: gw2 did not recover"
assert_eq "$(inst_field gw2 wan .last_transition.reason)" fault-cleared "missing iface: reason"
assert_eq "$(inst_field gw2 wan '.faults | length')" 0 "missing iface: no faults left"
assert_eq "$(inst_field gw2 wan .primary_address)" 10.77.0.12 "missing iface: primary address from eth2"
assert_true "missing iface: gw2 hears gw1 on eth2" wait_until 3 inst_field_is gw2 wan .last_master 10.77.0.1
assert_true "missing iface: gw1 MASTER, gw2 BACKUP for 1 s" holds_for 1 stable_master

finish
