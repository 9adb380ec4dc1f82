#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# A frozen backup does not take over. gw1 (priority 150, MASTER) and gw2
# (100, BACKUP) run a dual-stack pair of instances, "wan" (IPv4) and
# "wan6" (IPv6), advertising every 100 ms, so Master_Down is about 360 ms.
# gw2's hamgr is stopped (SIGSTOP) for 1 s and continued, twenty times,
# while gw1 stays healthy. When gw2 resumes, its Master_Down timers have
# expired and gw1's adverts are queued on its sockets, unread; sd-event
# makes all of them pending in one iteration and, with more than one
# instance, may run a timer before its socket: the daemon must read the
# queued adverts before acting on the timer. Then five more stalls land
# inside the socket handler (strace delays a recvmsg() by 1 s): the adverts
# read after such a stall must count as heard after it. Asserted:
#  - both of gw2's instances stay BACKUP (polled after each stall), their
#    transition and became_master counters do not move, and gw2 notifies
#    and logs nothing after startup;
#  - no advert leaves gw2 (a capture on gw1's side of the wire);
#  - gw1 stays MASTER.
# Control: the same 1 s stall of the master (gw1) does make gw2 take over
# (reason master-down), so the stall is long enough to be noticed.
# Needs HAMGR_BIN.
# shellcheck disable=SC2317 # small predicates run through wait_until
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_hamgr
require_cmd tcpdump strace timeout

ROUNDS=20
HELD_ROUNDS=5
STALL=1

write_conf() {
        local node=$1 prio=$2
        mkdir -p "$HI_TMP/$node.state"
        cat >"$(conf_of "$node")" <<CONF
node = {
    name = "$node";
    state_dir = "$HI_TMP/$node.state";
};
vrrp = (
  {
    name = "wan";
    interface = "eth0";
    vrid = 51;
    priority = $prio;
    advert_interval_ms = 100;
    virtual_ips = [ "10.77.0.10/24" ];
  },
  {
    name = "wan6";
    interface = "eth0";
    vrid = 51;
    priority = $prio;
    advert_interval_ms = 100;
    virtual_ips = [ "fd77::10/64" ];
  }
);
notify = {
    script = "$HAMGR_NOTIFY_SCRIPT";
};
CONF
}

steady() {
        hamgr_state_is gw1 wan MASTER && hamgr_state_is gw2 wan BACKUP &&
                hamgr_state_is gw1 wan6 MASTER && hamgr_state_is gw2 wan6 BACKUP
}

counters() {
        local i out=""
        for i in wan wan6; do
                out+="$i=$(inst_field gw2 "$i" .counters.transitions)/$(inst_field gw2 "$i" .counters.became_master) "
        done
        printf '%s' "${out% }"
}

lab_start 2
GW1_LL=$(link_local gw1)
[ -n "$GW1_LL" ] || die "gw1 has no link-local address"
write_conf gw1 150
write_conf gw2 100
hamgr_start gw1 "$(conf_of gw1)"
wait_until 10 hamgr_state_is gw1 wan MASTER || die "gw1 did not become MASTER"
hamgr_start gw2 "$(conf_of gw2)"
wait_until 10 steady || die "no steady state: gw1 $(hamgr_state gw1 wan)/$(hamgr_state gw1 wan6), gw2 $(hamgr_state gw2 wan)/$(hamgr_state gw2 wan6)"
wait_until 3 inst_field_is gw2 wan .last_master 10.77.0.1 || true
wait_until 3 inst_field_is gw2 wan6 .last_master "$GW1_LL" || true
assert_eq "$(inst_field gw2 wan .last_master) $(inst_field gw2 wan6 .last_master)" "10.77.0.1 $GW1_LL" "setup: gw2 hears gw1"

down_ms=$(inst_field gw2 wan .master_down_interval_ms)
if [ "$down_ms" -ge $((STALL * 1000 / 2)) ]; then
        die "Master_Down $down_ms ms is not well below the ${STALL} s stall"
fi
pass "setup: Master_Down $down_ms ms, stall ${STALL} s"

CAP="$HI_TMP/wire.cap"
capture_start gw1 eth0 "(ip proto 112 and src host 10.77.0.2) or (ip6 proto 112 and ether src $(node_mac gw2))" "$CAP"
gw2_pid=${HAMGR_PID[gw2]}
c0=$(counters)
n0=$(hamgr_notify_count gw2 MASTER)

bad=0
for ((i = 1; i <= ROUNDS; i++)); do
        kill -STOP "$gw2_pid"
        sleep "$STALL"
        kill -CONT "$gw2_pid"
        # Long enough for a false takeover to show (it would be at once)
        # and for gw1's next adverts to arrive.
        sleep 0.3
        if ! steady; then
                bad=$((bad + 1))
                hi_log "round $i: gw1 $(hamgr_state gw1 wan)/$(hamgr_state gw1 wan6), gw2 $(hamgr_state gw2 wan)/$(hamgr_state gw2 wan6)"
                # Let a false takeover settle before the next round.
                wait_until 5 steady || true
        fi
done
assert_eq "$bad" 0 "after each of $ROUNDS stalls: gw2 BACKUP, gw1 MASTER (both instances)"

# A stall that lands inside the socket handler, after the loop woke up and
# read its clock: strace holds gw2's next recvmsg() for 1 s before it runs.
# The adverts read then, and those queued behind them, were heard after the
# stall; dated at the wake-up instead, they would leave a Master_Down that
# has already run out, and the next iteration would take over. SIGSTOP
# rarely lands in this window; this puts the stall in it every round.
bad=0
delayed=0
for ((i = 1; i <= HELD_ROUNDS; i++)); do
        trace="$HI_TMP/held.$i.strace"
        timeout -s INT 3 strace -qq -o "$trace" -p "$gw2_pid" -e trace=recvmsg \
                -e inject=recvmsg:delay_enter=$((STALL * 1000000)):when=1 || true
        grep -q 'recvmsg(.*DELAYED' "$trace" && delayed=$((delayed + 1))
        if ! steady; then
                bad=$((bad + 1))
                hi_log "held round $i: gw1 $(hamgr_state gw1 wan)/$(hamgr_state gw1 wan6), gw2 $(hamgr_state gw2 wan)/$(hamgr_state gw2 wan6)"
                wait_until 5 steady || true
        fi
done
assert_eq "$delayed" "$HELD_ROUNDS" "each held round delayed one of gw2's recvmsg() calls by ${STALL} s"
assert_eq "$bad" 0 "after each of $HELD_ROUNDS stalls inside a receive: gw2 BACKUP, gw1 MASTER (both instances)"
assert_eq "$(counters)" "$c0" "gw2 made no transition (transitions/became_master)"
assert_eq "$(hamgr_notify_count gw2 MASTER)" "$n0" "gw2 notified no MASTER"
assert_eq "$(hamgr_log_count gw2 ' -> ')" 2 "gw2 logged only its two startup transitions"
capture_stop "$CAP"
assert_eq "$(capture_count "$CAP" "VRRP")" 0 "no advert from gw2 on the wire"

# ------------------------------------------------- control: a frozen master
gw1_pid=${HAMGR_PID[gw1]}
kill -STOP "$gw1_pid"
wait_until 3 hamgr_state_is gw2 wan MASTER || true
assert_eq "$(hamgr_state gw2 wan)" MASTER "control: gw2 takes over while gw1 is stopped"
assert_eq "$(inst_field gw2 wan .last_transition.reason)" master-down "control: reason"
kill -CONT "$gw1_pid"
wait_until 5 steady || true
assert_true "control: gw1 preempts back when continued" steady

hamgr_stop gw1
hamgr_stop gw2
finish
