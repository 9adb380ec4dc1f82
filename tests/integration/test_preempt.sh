#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Preemption rules of hamgr, two gateways on the lab bridge (100 ms adverts,
# Master_Down ~0.35 s):
#  - preempt: gw1 (150) joining a running gw2 (100) takes over, reason
#    "preempt" in status and log; gw2 steps down with "higher-priority";
#  - preempt = false: gw1 (150) joining stays BACKUP for many Master_Down
#    intervals while hearing gw2's lower-priority adverts;
#  - preempt_delay_ms = 1500: gw1 is still BACKUP 1 s after its start and
#    MASTER (preempt) only after the delay;
#  - equal priority (100/100): when two masters meet (a partition heals)
#    the higher primary address, gw2 10.77.0.2, stays MASTER and gw1 yields
#    with "tie-break"; seen on the wire by a capture on the client: after
#    the heal, for 0.6 s, only 10.77.0.2 sends adverts (prio 100), at least
#    3, and 10.77.0.1 none. Three more runs start both at the same moment,
#    each cut off from the bridge so that both claim MASTER every time (a
#    BACKUP accepts an equal-priority master whatever its address, RFC 9568
#    6.4.2, so an unpartitioned simultaneous start reaches the tie-break
#    only when both timers fire before either hears the other), then join
#    them: every run must end with gw2 advertising alone on the wire.
#  - priority 255 (address owner) goes INIT -> MASTER at once, reason
#    "address-owner", and the running gw2 yields.
# shellcheck disable=SC2317 # small predicates run through wait_until
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_hamgr

VIP=10.77.0.10

# restart NODE: stop NODE's hamgr (if any) and start it on a fresh log with
# $(conf_of NODE).
restart() {
        hamgr_stop "$1"
        : >"$(hamgr_log "$1")"
        hamgr_start "$1" "$(conf_of "$1")"
}

stop_all() {
        hamgr_stop gw1
        hamgr_stop gw2
}

# Partition NODE from the bridge (its eth0 keeps carrier) and back.
partition() {
        ip -n "$(ns_of sw)" link set "$1" nomaster
}

heal() {
        ip -n "$(ns_of sw)" link set "$1" master "$HI_BRIDGE"
}

gw2_holds() {
        states_are BACKUP MASTER && vip_owner_is "$VIP" gw2
}

lab_create 2
node_start gw1
node_start gw2

# ---- preempt: a higher priority joining takes over
write_hamgr_conf "$(conf_of gw1)" gw1 150
write_hamgr_conf "$(conf_of gw2)" gw2 100
restart gw2
wait_until 5 hamgr_state_is gw2 wan MASTER || die "preempt: gw2 alone did not become MASTER"
wait_until 3 vip_owner_is "$VIP" gw2 || fail "preempt: VIP not on gw2 before gw1 joins"
restart gw1
wait_until 5 states_are MASTER BACKUP || fail "preempt: gw1 did not take over"
assert_eq "$(inst_field gw1 wan .last_transition.reason)" preempt "preempt: gw1 status reason"
assert_eq "$(hamgr_log_count gw1 'wan: BACKUP -> MASTER (preempt)')" 1 "preempt: gw1 log line"
assert_eq "$(inst_field gw2 wan .last_transition.reason)" higher-priority "preempt: gw2 status reason"
assert_true "preempt: VIP moved to gw1" wait_until 3 vip_owner_is "$VIP" gw1

# ---- preempt = false: the returning higher priority stays BACKUP
hamgr_stop gw1
wait_until 3 hamgr_state_is gw2 wan MASTER || die "nopreempt: gw2 did not take over from the stopped gw1"
HC_PREEMPT=false write_hamgr_conf "$(conf_of gw1)" gw1 150
restart gw1
wait_until 5 hamgr_state_is gw1 wan BACKUP || die "nopreempt: gw1 not BACKUP"
md_ms=$(inst_field gw1 wan .master_down_interval_ms)
rx0=$(inst_field gw1 wan .counters.adverts_received)
# 2 s is more than five Master_Down intervals of gw1.
assert_true "nopreempt: gw1 BACKUP, gw2 MASTER, VIP on gw2 for 2 s (Master_Down ${md_ms} ms)" \
        holds_for 2 gw2_holds
rx1=$(inst_field gw1 wan .counters.adverts_received)
assert_true "nopreempt: gw1 kept hearing gw2 ($rx0 -> $rx1 adverts)" test "$rx1" -ge $((rx0 + 10))
assert_eq "$(inst_field gw1 wan .last_master_priority)" 100 "nopreempt: gw1 sees the lower priority"
assert_eq "$(inst_field gw1 wan .preempt)" false "nopreempt: status shows preempt off"
assert_eq "$(hamgr_log_count gw1 '-> MASTER')" 0 "nopreempt: gw1 never logged MASTER"

# ---- preempt_delay_ms: takeover waits for the delay
hamgr_stop gw1
HC_INSTANCE_EXTRA='preempt_delay_ms = 1500;' write_hamgr_conf "$(conf_of gw1)" gw1 150
: >"$(hamgr_log gw1)"
t0=$(hi_now_ms)
hamgr_start gw1 "$(conf_of gw1)"
wait_until 3 hamgr_state_is gw1 wan BACKUP || die "preempt delay: gw1 not BACKUP"
left=$((1000 - ($(hi_now_ms) - t0)))
[ "$left" -gt 100 ] || die "preempt delay: starting gw1 took too long to check the 1 s mark"
assert_true "preempt delay: gw1 still BACKUP and gw2 MASTER 1 s after start" \
        holds_for "0.$(printf '%03d' "$left")" states_are BACKUP MASTER
wait_until 5 hamgr_state_is gw1 wan MASTER || fail "preempt delay: gw1 never preempted"
took=$(($(transition_at_ms gw1 wan) - t0))
assert_true "preempt delay: gw1 MASTER ${took} ms after start, not before 1500 ms" \
        test "$took" -ge 1500 -a "$took" -lt 4000
assert_eq "$(inst_field gw1 wan .last_transition.reason)" preempt "preempt delay: reason"
assert_true "preempt delay: VIP on gw1" wait_until 3 vip_owner_is "$VIP" gw1

# ---- equal priority: two masters meet
CAP="$HI_TMP/client.cap"
capture_start client eth0 "ip proto 112" "$CAP"
# adverts_since MARK SRC: adverts from SRC (prio 100, vrid 51) in the
# capture after byte offset MARK.
adverts_since() {
        tail -c +$(($1 + 1)) "$CAP" >"$CAP.part"
        capture_count "$CAP.part" "$2 > 224.0.0.18:" "VRRPv3, Advertisement, vrid 51, prio 100,"
}
# tie_on_wire LABEL: after a heal, once gw1 is BACKUP, only gw2 advertises.
tie_on_wire() {
        local what=$1 mark n1 n2
        wait_until 5 states_are BACKUP MASTER || fail "$what: after the heal gw1/gw2 are $(hamgr_state gw1 wan)/$(hamgr_state gw2 wan)"
        # gw1 adverts sent before it yielded may still be on their way to
        # the capture file: start the window a little later.
        holds_for 0.2 gw2_holds || true
        mark=$(stat -c %s "$CAP")
        assert_true "$what: gw2 keeps MASTER and the VIP alone for 0.6 s" holds_for 0.6 gw2_holds
        n1=$(adverts_since "$mark" 10.77.0.1)
        n2=$(adverts_since "$mark" 10.77.0.2)
        assert_eq "$n1:$((n2 >= 3))" 0:1 "$what: on the wire only 10.77.0.2 advertises ($n2 adverts in 0.6 s, 10.77.0.1 $n1)"
}
stop_all
write_hamgr_conf "$(conf_of gw1)" gw1 100
write_hamgr_conf "$(conf_of gw2)" gw2 100
restart gw1
wait_until 5 hamgr_state_is gw1 wan MASTER || die "tie: gw1 alone did not become MASTER"
partition gw2
restart gw2
wait_until 5 states_are MASTER MASTER || die "tie: partitioned gw2 did not become MASTER too"
heal gw2
tie_on_wire tie
assert_eq "$(inst_field gw1 wan .last_transition.reason)" tie-break "tie: gw1 yields by tie-break"
assert_eq "$(hamgr_log_count gw1 'wan: MASTER -> BACKUP (tie-break)')" 1 "tie: gw1 log line"
assert_eq "$(inst_field gw1 wan .last_master)" 10.77.0.2 "tie: gw1 follows the higher address"

# ---- equal priority: both start at the same moment, apart, then meet
start_together() {
        local go=$HI_TMP/go g
        rm -f "$go"
        for g in gw1 gw2; do
                hamgr_stop "$g"
                : >"$(hamgr_log "$g")"
                # The shell execs hamgr in place, so the PID stays the same.
                # shellcheck disable=SC2016 # expanded by the inner shell
                HAMGR_NOTIFY_LOG=$(hamgr_notify_log "$g") node_spawn "$g" "$(hamgr_log "$g")" \
                        bash -c 'until [ -e "$0" ]; do sleep 0.002; done; exec "$@"' \
                        "$go" "$HAMGR_BIN" run -c "$(conf_of "$g")"
                HAMGR_PID[$g]=$HI_LAST_PID
        done
        touch "$go"
}

for run in 1 2 3; do
        partition gw1
        partition gw2
        start_together
        wait_until 5 states_are MASTER MASTER || { fail "together $run: apart, both did not claim MASTER"; heal gw1; heal gw2; continue; }
        heal gw1
        heal gw2
        tie_on_wire "together $run"
        assert_eq "$(hamgr_log_count gw1 'MASTER -> BACKUP (tie-break)')" 1 "together $run: gw1 yields by tie-break"
        assert_eq "$(hamgr_log_count gw2 'MASTER -> BACKUP')" 0 "together $run: gw2 never yielded"
done

# ---- priority 255: the address owner goes straight to MASTER
stop_all
write_hamgr_conf "$(conf_of gw2)" gw2 100
restart gw2
wait_until 5 hamgr_state_is gw2 wan MASTER || die "owner: gw2 alone did not become MASTER"
write_hamgr_conf "$(conf_of gw1)" gw1 255
restart gw1
wait_until 5 states_are MASTER BACKUP || fail "owner: gw1 (255) did not take over"
assert_eq "$(inst_field gw1 wan .last_transition.reason)" address-owner "owner: gw1 reason"
assert_eq "$(inst_field gw1 wan .last_transition.from)" INIT "owner: gw1 came from INIT"
assert_eq "$(hamgr_log_count gw1 'wan: INIT -> MASTER (address-owner)')" 1 "owner: gw1 log line"
assert_eq "$(hamgr_log_count gw1 '-> BACKUP')" 0 "owner: gw1 never was BACKUP"
assert_eq "$(inst_field gw2 wan .last_transition.reason)" higher-priority "owner: gw2 yields"
assert_eq "$(inst_field gw2 wan .last_master_priority)" 255 "owner: gw2 hears priority 255"
assert_true "owner: VIP on gw1 alone" wait_until 3 vip_owner_is "$VIP" gw1

finish
