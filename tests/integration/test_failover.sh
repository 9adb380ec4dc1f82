#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Core failover of hamgr with three gateways (priorities 250/240/1) on the
# lab bridge, client on the same segment:
#  - election: exactly one MASTER (gw1), the others BACKUP, the VIP on gw1
#    alone and stable; the client reaches the VIP through gw1's MAC;
#  - crash with the link gone (kill -9 and eth0 down on gw1): gw2, the
#    next-highest, takes over by master-down and gw3 never becomes MASTER:
#    with 200 ms adverts gw2's Skew_Time (16/256 * 200 = 12 ms) is 187 ms
#    shorter than gw3's (255/256 * 200 = 199 ms), so gw2's timer fires and
#    its advert reaches gw3 long before gw3's own timer; a reversed skew
#    makes gw3 fire first and fails the test. The client's ARP entry for
#    the VIP is gw2's MAC and the VIP answers ping;
#  - gw1 returns: its leftover VIP is removed at start and it preempts;
#  - crash with the link up (kill -9 only): the VIP is left on the dead gw1
#    as well, so only the new master's gratuitous ARP can steer the client:
#    its ARP entry must follow to gw2 and ping must still answer; again gw2
#    by master-down, gw3 never MASTER;
#  - graceful stop (advert interval 1 s, so gw2's Master_Down is
#    3 s + (256 - 240)/256 s = 3062 ms, as status must say): after SIGTERM
#    of the master gw2 is MASTER in well under
#    Master_Down (a priority-0 hand-over, not a timeout), gw1 removed its
#    VIP, logged MASTER -> STOP (shutdown) and exited 0.
# shellcheck disable=SC2317 # small predicates run through wait_until
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_hamgr
require_cmd ping

VIP=10.77.0.10
P1=250
P2=240
P3=1

# masters: the gateways whose hamgr reports MASTER, space separated.
masters() {
        local g out=()
        for g in "${HI_GATEWAYS[@]}"; do
                if hamgr_alive "$g" && hamgr_state_is "$g" wan MASTER; then
                        out+=("$g")
                fi
        done
        printf '%s' "${out[*]}"
}

masters_are() {
        [ "$(masters)" = "$1" ]
}

only_gw1() {
        vip_owner_is "$VIP" gw1 && masters_are gw1
}

client_ping() {
        node_exec client ping -c 1 -W 1 "$VIP" >/dev/null 2>&1
}

client_arp_is() {
        [ "$(arp_mac_for client "$VIP")" = "$1" ]
}

# hamgr_start_rc NODE CONF RCFILE: like hamgr_start, but hamgr runs under a
# shell that writes its exit status to RCFILE; HAMGR_PID[NODE] is hamgr's
# own PID so signals reach it directly.
hamgr_start_rc() {
        local node=$1 conf=$2 rc=$3 pidf="$HI_TMP/$1.rc-pid" i pid=""
        rm -f "$rc" "$pidf"
        # shellcheck disable=SC2016 # expanded by the inner shell
        HAMGR_NOTIFY_LOG=$(hamgr_notify_log "$node") \
                node_spawn "$node" "$(hamgr_log "$node")" bash -c \
                '"$1" run -c "$2" & echo $! >"$3"; wait $!; echo $? >"$4"' \
                sh "$HAMGR_BIN" "$conf" "$pidf" "$rc"
        for ((i = 0; i < 200; i++)); do
                pid=$(cat "$pidf" 2>/dev/null || true)
                [ -n "$pid" ] && [ "$(hi_pid_argv0 "$pid")" = "$HAMGR_BIN" ] && break
                pid=""
                sleep 0.025
        done
        [ -n "$pid" ] || die "hamgr_start_rc $node: hamgr did not start: $(tail -n 5 "$(hamgr_log "$node")")"
        hi_track_pid "$pid"
        HAMGR_PID[$node]=$pid
}

write_confs() {
        local interval=$1
        HC_INTERVAL_MS=$interval write_hamgr_conf "$(conf_of gw1)" gw1 $P1
        HC_INTERVAL_MS=$interval write_hamgr_conf "$(conf_of gw2)" gw2 $P2
        HC_INTERVAL_MS=$interval write_hamgr_conf "$(conf_of gw3)" gw3 $P3
}

lab_start 3
GW1_MAC=$(node_mac gw1)
GW2_MAC=$(node_mac gw2)

write_confs 200
for g in gw1 gw2 gw3; do
        hamgr_start "$g" "$(conf_of "$g")"
done

# ---- election
wait_until 10 masters_are gw1 || fail "election: masters are '$(masters)', want gw1"
wait_until 5 hamgr_state_is gw2 wan BACKUP || true
wait_until 5 hamgr_state_is gw3 wan BACKUP || true
assert_eq "$(masters)" gw1 "election: exactly one MASTER"
assert_eq "$(hamgr_state gw2 wan)" BACKUP "election: gw2 state"
assert_eq "$(hamgr_state gw3 wan)" BACKUP "election: gw3 state"
wait_until 5 vip_owner_is "$VIP" gw1 || true
assert_true "election: VIP on gw1 alone and one master, for 2 s" \
        holds_for 2 only_gw1
assert_eq "$(inst_field gw3 wan .last_master)" 10.77.0.1 "election: gw3 hears gw1 as master"
assert_eq "$(inst_field gw3 wan .last_master_priority)" $P1 "election: gw3 sees gw1's priority"
assert_true "election: client pings the VIP" client_ping
assert_eq "$(arp_mac_for client "$VIP")" "$GW1_MAC" "election: client resolves the VIP to gw1"

# ---- crash with link loss: kill -9 and eth0 down
hamgr_stop gw1 KILL
node_link gw1 eth0 down
wait_until 5 masters_are gw2 || fail "crash+link down: masters are '$(masters)', want gw2"
# gw2's shorter Skew_Time decides (see the top): gw3 must never have fired.
assert_eq "$(inst_field gw2 wan .last_transition.reason)" master-down "crash+link down: gw2 took over by master-down"
assert_eq "$(inst_field gw3 wan .counters.became_master)" 0 "crash+link down: gw3 never became MASTER"
assert_true "crash+link down: VIP on gw2" wait_until 3 vip_on gw2 "$VIP"
assert_false "crash+link down: VIP not on gw3" vip_on gw3 "$VIP"
assert_true "crash+link down: gw2 sole master for 1 s" holds_for 1 masters_are gw2
assert_eq "$(hamgr_state gw3 wan)" BACKUP "crash+link down: gw3 stays BACKUP"
assert_eq "$(inst_field gw3 wan .last_master)" 10.77.0.2 "crash+link down: gw3 now hears gw2"
assert_true "crash+link down: client ARP entry for the VIP is gw2's MAC" \
        wait_until 3 client_arp_is "$GW2_MAC"
assert_true "crash+link down: ping to the VIP answers" client_ping

# ---- gw1 back: leftover VIP removed at start, preempts
node_link gw1 eth0 up
wait_until 5 node_has_carrier gw1 eth0 || die "gw1 eth0 did not come back"
assert_true "restart: gw1 still carries the VIP of the crashed run" vip_on gw1 "$VIP"
hamgr_start gw1 "$(conf_of gw1)"
wait_until 5 masters_are gw1 || fail "restart: masters are '$(masters)', want gw1"
assert_eq "$(inst_field gw1 wan .last_transition.reason)" preempt "restart: gw1 preempted"
assert_true "restart: VIP on gw1 alone" wait_until 3 vip_owner_is "$VIP" gw1
assert_contains "$(cat "$(hamgr_log gw1)")" "removed virtual IP $VIP left on eth0 by a previous run" \
        "restart: gw1 log"
assert_true "restart: client ARP entry back on gw1" wait_until 3 client_arp_is "$GW1_MAC"

# ---- crash with the link up: the VIP stays on the dead node
hamgr_stop gw1 KILL
wait_until 5 masters_are gw2 || fail "crash: masters are '$(masters)', want gw2"
assert_eq "$(inst_field gw2 wan .last_transition.reason)" master-down "crash: gw2 took over by master-down"
assert_eq "$(inst_field gw3 wan .counters.became_master)" 0 "crash: gw3 never became MASTER"
assert_true "crash: VIP on gw2" wait_until 3 vip_on gw2 "$VIP"
assert_true "crash: VIP still on the dead gw1 (nobody removed it)" vip_on gw1 "$VIP"
assert_true "crash: gratuitous ARP moved the client's entry to gw2" \
        wait_until 3 client_arp_is "$GW2_MAC"
assert_true "crash: ping to the VIP answers" client_ping
assert_eq "$(arp_mac_for client "$VIP")" "$GW2_MAC" "crash: client still uses gw2 after ping"

# ---- graceful stop with a 1 s interval
for g in gw2 gw3; do
        hamgr_stop "$g"
done
# The dead gw1 run left its VIP; the next start removes it.
write_confs 1000
RC="$HI_TMP/gw1.rc"
: >"$(hamgr_log gw1)"
hamgr_start_rc gw1 "$(conf_of gw1)" "$RC"
hamgr_start gw2 "$(conf_of gw2)"
hamgr_start gw3 "$(conf_of gw3)"
wait_until 15 masters_are gw1 || die "1 s interval: masters are '$(masters)', want gw1"
wait_until 5 hamgr_state_is gw2 wan BACKUP || die "1 s interval: gw2 not BACKUP"
wait_until 5 hamgr_state_is gw3 wan BACKUP || die "1 s interval: gw3 not BACKUP"
wait_until 5 vip_owner_is "$VIP" gw1 || fail "1 s interval: VIP owner '$(vip_owner "$VIP")', want gw1"
md_ms=$(inst_field gw2 wan .master_down_interval_ms)
md_want=$((3000 + (256 - P2) * 1000 / 256))
assert_true "1 s interval: gw2 Master_Down is 3 s + Skew_Time = $md_want ms (got $md_ms ms)" \
        test "$md_ms" -ge $((md_want - 2)) -a "$md_ms" -le $((md_want + 2))
t0=$(hi_now_ms)
kill -s TERM "${HAMGR_PID[gw1]}"
wait_until 5 hamgr_state_is gw2 wan MASTER || fail "SIGTERM: gw2 did not become MASTER"
t_master=$(transition_at_ms gw2 wan)
handover=$((t_master - t0))
assert_true "SIGTERM: gw2 MASTER after ${handover} ms, well before Master_Down (${md_ms} ms)" \
        test "$handover" -lt 2000
assert_eq "$(inst_field gw2 wan .last_transition.reason)" master-down "SIGTERM: gw2 reason"
hi_wait_gone "${HAMGR_PID[gw1]}" 5 || fail "SIGTERM: gw1 hamgr still running"
unset 'HAMGR_PID[gw1]'
wait_until 3 test -s "$RC" || true
assert_eq "$(cat "$RC" 2>/dev/null)" 0 "SIGTERM: gw1 exit status"
assert_false "SIGTERM: gw1 removed its VIP" vip_on gw1 "$VIP"
assert_true "SIGTERM: VIP on gw2 alone" wait_until 3 vip_owner_is "$VIP" gw2
assert_contains "$(cat "$(hamgr_log gw1)")" "wan: MASTER -> STOP (shutdown)" "SIGTERM: gw1 log"
assert_contains "$(hamgr_notify_read gw1)" "args=INSTANCE wan STOP $P1" "SIGTERM: gw1 STOP notify"
assert_true "SIGTERM: gw3 stays BACKUP" holds_for 1 hamgr_state_is gw3 wan BACKUP
assert_eq "$(masters)" gw2 "SIGTERM: one master"

finish
