#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Health checks drive VRRP. gw1 (priority 150) and gw2 (priority 100),
# advert interval 100 ms, no track_interfaces:
#  - exec, weight -60 on gw1: the flag file gone -> DOWN after `fall`
#    failures -> gw1 at 90 -> gw2 (110, see tcp) preempts; flag back -> 150,
#    gw1 preempts again;
#  - tcp to a listener on the client, weight +10 on gw2: 110 while it
#    answers, 100 when the listener is gone;
#  - icmp to the client, weight 0 on gw1 (not tracked by gw2): client down
#    -> gw1 FAULT naming the check -> gw2 MASTER; client back -> recovery;
#  - link on eth1, weight 0 on gw1: carrier lost -> FAULT;
#  - an exec check that hangs (timeout_ms 300, interval_ms 1000) fails at
#    timeout_ms and its processes (the shell and its child) are killed: the
#    first hanging shell is seen gone 200..550 ms after its own start
#    timestamp (a kill at twice the timeout, at the next probe, 1000 ms,
#    or none fails).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

require_root
require_cmd jq nc
[ -n "${HAMGR_BIN:-}" ] || die "HAMGR_BIN is not set"

CLIENT=10.77.0.100
PORT=8080

# ---- check programs (run by hamgr inside the gateway's namespaces)
# Per node: one flag file and one hang file in $HI_TMP.
for g in gw1 gw2; do
        cat >"$HI_TMP/$g-flag-check.sh" <<EOF
#!/bin/sh
test -e "$HI_TMP/$g.flag"
EOF
        cat >"$HI_TMP/$g-hang-check.sh" <<EOF
#!/bin/sh
# While the hang file exists: record this shell's PID and start time (ms),
# hang in a child.
if [ -e "$HI_TMP/$g.hang" ]; then
        echo "\$\$ \$(date +%s%3N)" >>"$HI_TMP/$g.hang.pids"
        sleep 30
fi
exit 0
EOF
        chmod +x "$HI_TMP/$g-flag-check.sh" "$HI_TMP/$g-hang-check.sh"
        touch "$HI_TMP/$g.flag"
done

write_conf() {
        local node=$1 prio=$2 track=$3 checks=$4
        HC_TRACK='' HC_NOTIFY_SCRIPT='' HC_INTERVAL_MS=100 HC_INSTANCE_EXTRA="track_checks = ( $track );" \
                write_hamgr_conf "$HI_TMP/$node.conf" "$node" "$prio" "checks = ( $checks );"
        "$HAMGR_BIN" check -c "$HI_TMP/$node.conf" >/dev/null ||
                die "hamgr check refuses $node.conf: $("$HAMGR_BIN" check -c "$HI_TMP/$node.conf" 2>&1)"
}

# check_field NODE CHECK FIELD
check_field() {
        hamgr_status "$1" | jq -r --arg n "$2" ".checks[] | select(.name == \$n) | .$3"
}

check_is() {
        [ "$(check_field "$1" "$2" status)" = "$3" ]
}

eff_prio() {
        hamgr_status "$1" | jq -r '.instances[0].effective_priority'
}

eff_prio_is() {
        [ "$(eff_prio "$1")" = "$2" ]
}

# Processes in NODE's network namespace running "sleep 30".
hang_sleeps() {
        local p n=0 cmd
        for p in $(ip netns pids "$(ns_of "$1")" 2>/dev/null); do
                cmd=$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) || continue
                [ "$cmd" = "sleep 30 " ] && n=$((n + 1))
        done
        echo "$n"
}

no_hang_sleeps() {
        [ "$(hang_sleeps "$1")" = 0 ]
}

listener_start() {
        node_spawn client "$HI_TMP/nc.log" nc -d -l -k "$CLIENT" "$PORT"
        NC_PID=$HI_LAST_PID
        wait_until 5 node_exec client sh -c "ss -Hltn 'sport = :$PORT' | grep -q ." ||
                die "nc does not listen on $CLIENT:$PORT: $(cat "$HI_TMP/nc.log")"
}

lab_create 2
node_start client
listener_start

write_conf gw1 150 \
        '{ check = "flag"; weight = -60; }, { check = "client"; weight = 0; }, { check = "uplink"; weight = 0; }' \
        "{ name = \"flag\"; type = \"exec\"; command = \"$HI_TMP/gw1-flag-check.sh\"; interval_ms = 250; rise = 2; fall = 3; },
  { name = \"client\"; type = \"icmp\"; address = \"$CLIENT\"; interval_ms = 200; timeout_ms = 150; rise = 2; fall = 2; },
  { name = \"uplink\"; type = \"link\"; interface = \"eth1\"; interval_ms = 100; rise = 1; fall = 1; },
  { name = \"hang\"; type = \"exec\"; command = \"$HI_TMP/gw1-hang-check.sh\"; interval_ms = 1000; timeout_ms = 300; rise = 1; fall = 1; }"
write_conf gw2 100 \
        '{ check = "svc"; weight = 10; }' \
        "{ name = \"svc\"; type = \"tcp\"; address = \"$CLIENT:$PORT\"; interval_ms = 200; timeout_ms = 200; rise = 1; fall = 2; }"

hamgr_start gw1 "$HI_TMP/gw1.conf"
wait_until 10 hamgr_state_is gw1 wan MASTER || die "gw1 did not become MASTER: $(tail -5 "$(hamgr_log gw1)")"
hamgr_start gw2 "$HI_TMP/gw2.conf"
wait_until 10 hamgr_state_is gw2 wan BACKUP || die "gw2 did not become BACKUP: $(tail -5 "$(hamgr_log gw2)")"

# ---- all up
for c in flag client uplink hang; do
        assert_true "gw1: check $c UP" wait_until 5 check_is gw1 "$c" up
done
assert_true "gw2: tcp check UP" wait_until 5 check_is gw2 svc up
assert_true "gw2: effective priority 110 (+10 while the tcp check is up)" wait_until 3 eff_prio_is gw2 110
st=$(hamgr_status gw2)
assert_eq "$(jq -r '.instances[0].priority' <<<"$st")" 100 "gw2: configured priority stays 100"
assert_eq "$(jq -r '.checks[] | select(.name == "svc") | .type' <<<"$st")" tcp "gw2: check type"
assert_eq "$(eff_prio gw1)" 150 "gw1: effective priority 150"
st=$(hamgr_status gw1)
assert_eq "$(jq -r '[.checks[].name] | join(",")' <<<"$st")" "flag,client,uplink,hang" "gw1: status lists the checks"
assert_eq "$(jq -r '.checks[] | select(.name == "flag") | .failures' <<<"$st")" 0 "gw1: exec check no failures yet"
p1=$(jq -r '.checks[] | select(.name == "flag") | .probes' <<<"$st")
probes_above() {
        [ "$(check_field "$1" "$2" probes)" -gt "$3" ]
}
assert_true "gw1: exec check probes keep growing (from $p1)" wait_until 2 probes_above gw1 flag $((p1 + 2))
assert_eq "$(check_field gw1 uplink detail)" "" "gw1: link check UP has no detail"

# ---- exec, weight -60: 150 -> 90 < 110, gw2 preempts
f0=$(check_field gw1 flag failures)
rm -f "$HI_TMP/gw1.flag"
assert_true "exec: flag removed -> check DOWN" wait_until 5 check_is gw1 flag down
st=$(hamgr_status gw1)
f1=$(jq -r '.checks[] | select(.name == "flag") | .failures' <<<"$st")
assert_true "exec: DOWN only after fall=3 failures ($((f1 - f0)) seen)" test $((f1 - f0)) -ge 3
assert_contains "$(jq -r '.checks[] | select(.name == "flag") | .detail' <<<"$st")" "gw1-flag-check.sh exited with status 1" "exec: detail"
assert_true "exec: gw1 effective priority 90" wait_until 3 eff_prio_is gw1 90
assert_true "exec: gw2 (110) preempts" wait_until 5 hamgr_state_is gw2 wan MASTER
assert_true "exec: gw1 BACKUP" wait_until 5 hamgr_state_is gw1 wan BACKUP
assert_eq "$(vip_owner 10.77.0.10)" gw2 "exec: the VIP is on gw2"
assert_contains "$(cat "$(hamgr_log gw1)")" "priority 150 -> 90 (tracked checks)" "exec: gw1 logs the priority change"
touch "$HI_TMP/gw1.flag"
assert_true "exec: flag back -> check UP" wait_until 5 check_is gw1 flag up
assert_true "exec: gw1 effective priority 150 again" wait_until 3 eff_prio_is gw1 150
assert_true "exec: gw1 preempts back" wait_until 5 hamgr_state_is gw1 wan MASTER
assert_true "exec: gw2 BACKUP" wait_until 5 hamgr_state_is gw2 wan BACKUP

# ---- tcp, weight +10 on gw2
stop_pid "$NC_PID" TERM
assert_true "tcp: listener gone -> check DOWN" wait_until 5 check_is gw2 svc down
assert_contains "$(check_field gw2 svc detail)" "Connection refused" "tcp: detail"
assert_true "tcp: gw2 effective priority 100" wait_until 3 eff_prio_is gw2 100
listener_start
assert_true "tcp: listener back -> check UP" wait_until 5 check_is gw2 svc up
assert_true "tcp: gw2 effective priority 110 again" wait_until 3 eff_prio_is gw2 110
assert_eq "$(hamgr_state gw1 wan)" MASTER "tcp: gw1 stayed MASTER throughout"

# ---- icmp, weight 0 on gw1 only
node_link client eth0 down
assert_true "icmp: client away -> gw1 FAULT" wait_until 5 hamgr_state_is gw1 wan FAULT
st=$(hamgr_status gw1)
assert_eq "$(jq -r '.instances[0].fault_detail' <<<"$st")" "check client failing" "icmp: fault detail names the check"
assert_eq "$(jq -r '.checks[] | select(.name == "client") | .status' <<<"$st")" down "icmp: check down"
assert_contains "$(jq -r '.checks[] | select(.name == "client") | .detail' <<<"$st")" "no answer within 150 ms" "icmp: detail"
assert_true "icmp: gw2 MASTER (it does not track the client)" wait_until 5 hamgr_state_is gw2 wan MASTER
assert_eq "$(vip_owner 10.77.0.10)" gw2 "icmp: the VIP is on gw2"
node_link client eth0 up
assert_true "icmp: client back -> check UP" wait_until 5 check_is gw1 client up
assert_true "icmp: gw1 MASTER again" wait_until 5 hamgr_state_is gw1 wan MASTER
assert_true "icmp: gw2 BACKUP again" wait_until 5 hamgr_state_is gw2 wan BACKUP
assert_eq "$(hamgr_status gw1 | jq -r '.instances[0].last_transition.reason')" preempt "icmp: gw1 came back by preemption"

# ---- link, weight 0
gw_carrier gw1 off
assert_true "link: eth1 carrier lost -> gw1 FAULT" wait_until 5 hamgr_state_is gw1 wan FAULT
st=$(hamgr_status gw1)
assert_eq "$(jq -r '.instances[0].fault_detail' <<<"$st")" "check uplink failing" "link: fault detail names the check"
assert_eq "$(jq -r '.checks[] | select(.name == "uplink") | .detail' <<<"$st")" "interface eth1 down" "link: check detail"
assert_true "link: gw2 MASTER" wait_until 5 hamgr_state_is gw2 wan MASTER
gw_carrier gw1 on
assert_true "link: carrier back -> gw1 MASTER" wait_until 5 hamgr_state_is gw1 wan MASTER
assert_eq "$(hamgr_status gw1 | jq -r '.instances[0].faults | length')" 0 "link: no faults left"

# ---- exec timeout: the hanging program and its child are killed
assert_true "hang: nothing hangs yet" no_hang_sleeps gw1
touch "$HI_TMP/gw1.hang"
wait_until 3 test -s "$HI_TMP/gw1.hang.pids" || die "hang: the check program did not start hanging"
read -r hang_pid hang_start <"$HI_TMP/gw1.hang.pids"
hang_gone=$(pid_gone_at_ms "$hang_pid" 5) || hang_gone=""
ran=$((${hang_gone:-0} - hang_start))
if [ -n "$hang_gone" ] && [ "$ran" -ge 200 ] && [ "$ran" -le 550 ]; then
        pass "hang: the first hanging run was killed $ran ms after it started (timeout_ms 300)"
else
        fail "hang: the first hanging run gone '${hang_gone:+$ran}' ms after it started, want 200..550"
fi
assert_true "hang: check DOWN" wait_until 2 check_is gw1 hang down
assert_eq "$(check_field gw1 hang detail)" "no answer within 300 ms" "hang: detail"
failures_at_least() {
        [ "$(check_field "$1" "$2" failures)" -ge "$3" ]
}
assert_true "hang: failures keep counting while it hangs" wait_until 5 failures_at_least gw1 hang 3
rm -f "$HI_TMP/gw1.hang"
assert_true "hang: check UP again once the program returns" wait_until 5 check_is gw1 hang up
assert_true "hang: no leftover sleep in gw1" wait_until 2 no_hang_sleeps gw1
# Every hanging run recorded its shell's PID: none may be left.
no_hang_shells() {
        local pid
        while read -r pid _; do
                [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && return 1
        done <"$HI_TMP/gw1.hang.pids"
        return 0
}
assert_true "hang: no check shell left" wait_until 2 no_hang_shells
assert_eq "$(hamgr_state gw1 wan)" MASTER "hang: an untracked check does not move the instance"

finish
