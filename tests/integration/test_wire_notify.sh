#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# What hamgr puts on the wire, and its notify scripts. Two gateways (gw1
# priority 150, gw2 100), one instance "wan" with VIPs 10.77.0.10/24 and
# fd77::10/64, garp { repeat 3; interval_ms 50 }:
#  - the new master sends exactly 3 gratuitous ARPs ("who-has VIP tell VIP",
#    from its own MAC) and 3 unsolicited neighbour advertisements for the
#    IPv6 VIP, on election and again on takeover;
#  - adverts carry the IPv4 VIP only (the first VIP's family), TTL 255,
#    vrid 51, prio 150, interval 10 cs; the IPv6 VIP moves anyway;
#  - notify: on the backup node, startup -> takeover -> shutdown gives the
#    generic script exactly BACKUP, MASTER, STOP with the right
#    HAMGR_PREV_STATE and HAMGR_NODE, and each per-state script runs after
#    the generic one for its state;
#  - a hanging BACKUP script does not delay the takeover, holds back the
#    MASTER notification until notify.timeout_ms (2500) kills it (with its
#    child, and a log line), after which the MASTER notification runs:
#    the MASTER script starts 2400..2900 ms after the hanging one did;
#    with timeout_ms 500 and nothing else queued it is killed on its own,
#    the script's process seen gone 400..900 ms after it started (not at
#    the next event, not at some other fixed time), and the next
#    notifications still run. The windows allow 100 ms of script start-up
#    before its own timestamp and 400 ms of load after the kill.
# Needs HAMGR_BIN.
# shellcheck disable=SC2317 # small predicates run through wait_until
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_hamgr
require_cmd tcpdump

VIP4=10.77.0.10
VIP6=fd77::10
VIPS="\"$VIP4/24\", \"$VIP6/64\""
GARP='garp = { repeat = 3; interval_ms = 50; };'
# Master_Down_Interval at 100 ms for priority 100: 3 * 100 + 60 ms.
MASTER_DOWN_MS=360

# garp_count CAP MAC: gratuitous ARPs for VIP4 from MAC.
garp_count() {
        capture_count "$1" "$2 > ff:ff:ff:ff:ff:ff" "ethertype ARP" "Request who-has $VIP4 tell $VIP4,"
}

# na_count CAP MAC: unsolicited NAs for VIP6 from MAC, to all nodes.
na_count() {
        capture_count "$1" "$2 > 33:33:00:00:00:01" "neighbor advertisement" "tgt is $VIP6," \
                "link-address option" "$2"
}

announced() {
        [ "$(garp_count "$1" "$2")" -ge 3 ] && [ "$(na_count "$1" "$2")" -ge 3 ]
}

announce_counts() {
        echo "$(garp_count "$1" "$2"):$(na_count "$1" "$2")"
}

counts_are() {
        [ "$(announce_counts "$1" "$2")" = "$3" ]
}

# generic_args NODE: the args= field of each notify-log.sh record, in order.
generic_args() {
        hamgr_notify_read "$1" | awk -F '\t' '{ sub(/^args=/, "", $2); print $2 }'
}

# generic_env NODE N VAR: VAR's value in the Nth record.
generic_env() {
        hamgr_notify_read "$1" | sed -n "${2}p" | tr '\t ' '\n' | sed -n "s/^$3=//p"
}

generic_has() {
        generic_args "$1" | grep -qxF -- "$2"
}

# A per-state script: one line per call to FILE with the time, its name, its
# arguments and environment.
write_state_script() {
        local name=$1 file=$2
        cat >"$HI_TMP/$name.sh" <<EOF
#!/bin/sh
printf '%s %s args=%s prev=%s node=%s\n' "\$(date +%s.%N)" $name "\$*" "\$HAMGR_PREV_STATE" "\$HAMGR_NODE" >>"$file"
EOF
        chmod 755 "$HI_TMP/$name.sh"
}

# notify section: generic notify-log.sh plus per-state scripts NAME=PATH.
notify_section() {
        local timeout=$1 kv
        shift
        printf 'notify = {\n    script = "%s";\n    timeout_ms = %s;\n' "$HAMGR_NOTIFY_SCRIPT" "$timeout"
        for kv in "$@"; do
                printf '    %s = "%s";\n' "${kv%%=*}" "${kv#*=}"
        done
        printf '};\n'
}

lab_start 2
GW1_MAC=$(node_mac gw1)
GW2_MAC=$(node_mac gw2)

# ------------------------------------------------------------ the wire
CAP="$HI_TMP/client.cap"
capture_start client eth0 "arp or icmp6 or ip proto 112 or ip6 proto 112" "$CAP"
HC_VIPS=$VIPS HC_INSTANCE_EXTRA=$GARP write_hamgr_conf "$HI_TMP/gw1.conf" gw1 150
HC_VIPS=$VIPS HC_INSTANCE_EXTRA=$GARP write_hamgr_conf "$HI_TMP/gw2.conf" gw2 100
hamgr_start gw1 "$HI_TMP/gw1.conf"
wait_until 10 hamgr_state_is gw1 wan MASTER || die "gw1 did not become MASTER"
hamgr_start gw2 "$HI_TMP/gw2.conf"
wait_until 10 states_are MASTER BACKUP || true
assert_eq "$(hamgr_state gw1 wan):$(hamgr_state gw2 wan)" MASTER:BACKUP "election: gw1 MASTER, gw2 BACKUP"
assert_eq "$(inst_field gw1 wan .family)" ipv4 "the first VIP sets the advert family"
wait_until 3 announced "$CAP" "$GW1_MAC" || true
# The burst is 3 packets 50 ms apart; a fourth would follow within 50 ms.
assert_true "gw1 sends no more announcements after its burst" holds_for 0.5 counts_are "$CAP" "$GW1_MAC" 3:3
assert_eq "$(announce_counts "$CAP" "$GW1_MAC")" 3:3 "gw1 on election: GARPs:NAs = garp.repeat"
assert_eq "$(capture_count "$CAP" "ethertype ARP" "$GW2_MAC > ff:ff:ff:ff:ff:ff" "tell $VIP4")" 0 \
        "the backup sends no gratuitous ARP"
assert_true "both VIPs on gw1" vip_owner_is "$VIP4" gw1
assert_true "both VIPs on gw1 (v6)" vip_owner_is "$VIP6" gw1
# The client learns both VIPs at gw1; the takeover's announcements alone
# must move them. locktime 0: the kernel would ignore an ARP update that
# comes within 1 s of the entry's last change.
ip netns exec "$(ns_of client)" sysctl -qw net.ipv4.neigh.eth0.locktime=0 net.ipv6.neigh.eth0.locktime=0
node_exec client ping -4 -c 1 -W 2 "$VIP4" >/dev/null || fail "client cannot ping $VIP4 at gw1"
node_exec client ping -6 -c 1 -W 2 "$VIP6" >/dev/null || fail "client cannot ping $VIP6 at gw1"
assert_eq "$(neigh_mac client "$VIP4"):$(neigh_mac client "$VIP6")" "$GW1_MAC:$GW1_MAC" \
        "client's neighbour entries for both VIPs point to gw1"

assert_true "advert from gw1: TTL 255, VRRPv3, vrid 51, prio 150, 10 cs, IPv4 VIP" \
        capture_has "$CAP" "$GW1_MAC > 01:00:5e:00:00:12" "ttl 255," "proto VRRP (112)" \
        "10.77.0.1 > 224.0.0.18:" "VRRPv3, Advertisement, vrid 51, prio 150, intvl 10cs," "addrs: $VIP4"
assert_eq "$(capture_grep "$CAP" "proto VRRP (112)" | grep -vc 'ttl 255,' || true)" 0 \
        "no IPv4 advert with a TTL other than 255"
assert_true "adverts carry internetwork-control precedence (tos 0xc0), like keepalived's" \
        capture_has "$CAP" "$GW1_MAC > 01:00:5e:00:00:12" "(tos 0xc0," "proto VRRP (112)"
assert_eq "$(capture_count "$CAP" "VRRP" "fd77")" 0 "the IPv6 VIP is not advertised"
assert_eq "$(capture_count "$CAP" "next-header VRRP")" 0 "no IPv6 adverts: the instance is IPv4"

crash_node gw1 "$VIP4/24" "$VIP6/64"
t0=$(hi_now_ms)
wait_until 5 hamgr_state_is gw2 wan MASTER || true
took=$(($(hi_now_ms) - t0))
assert_eq "$(hamgr_state gw2 wan)" MASTER "takeover: gw2 MASTER after kill -9 of gw1 (${took} ms)"
wait_until 3 announced "$CAP" "$GW2_MAC" || true
assert_true "gw2 sends no more announcements after its burst" holds_for 0.5 counts_are "$CAP" "$GW2_MAC" 3:3
assert_eq "$(announce_counts "$CAP" "$GW2_MAC")" 3:3 "gw2 on takeover: GARPs:NAs = garp.repeat"
assert_eq "$(vip_owner "$VIP4"):$(vip_owner "$VIP6")" gw2:gw2 "takeover: both VIPs moved to gw2"
assert_true "advert from gw2: TTL 255, VRRPv3, vrid 51, prio 100" \
        capture_has "$CAP" "$GW2_MAC > 01:00:5e:00:00:12" "ttl 255," "10.77.0.2 > 224.0.0.18:" \
        "VRRPv3, Advertisement, vrid 51, prio 100, intvl 10cs," "addrs: $VIP4"
# No traffic since: the GARP and the NA alone moved the client's entries.
assert_eq "$(neigh_mac client "$VIP4")" "$GW2_MAC" "client's ARP entry for $VIP4 follows the GARP to gw2"
assert_eq "$(neigh_mac client "$VIP6")" "$GW2_MAC" "client's neighbour entry for $VIP6 follows the NA to gw2"
capture_stop "$CAP"
hamgr_stop gw2
revive_node gw1

# ------------------------------------------------- notify: the sequence
PERSTATE="$HI_TMP/gw2.perstate.log"
for s in master backup fault stop; do
        write_state_script "$s" "$PERSTATE"
done
rm -f "$(hamgr_notify_log gw1)" "$(hamgr_notify_log gw2)"
write_hamgr_conf "$HI_TMP/gw1-n.conf" gw1 150
HC_NOTIFY_SCRIPT="" write_hamgr_conf "$HI_TMP/gw2-n.conf" gw2 100 "$(notify_section 5000 \
        "master=$HI_TMP/master.sh" "backup=$HI_TMP/backup.sh" "fault=$HI_TMP/fault.sh" "stop=$HI_TMP/stop.sh")"
assert_true "notify config checks" "$HAMGR_BIN" check -c "$HI_TMP/gw2-n.conf"
hamgr_start gw1 "$HI_TMP/gw1-n.conf"
wait_until 10 hamgr_state_is gw1 wan MASTER || die "gw1 did not become MASTER"
hamgr_start gw2 "$HI_TMP/gw2-n.conf"
wait_until 10 states_are MASTER BACKUP || die "gw2 did not become BACKUP"
wait_until 3 generic_has gw2 "INSTANCE wan BACKUP 100" || true
hamgr_stop gw1
wait_until 5 hamgr_state_is gw2 wan MASTER || true
assert_eq "$(hamgr_state gw2 wan)" MASTER "notify: gw2 took over"
wait_until 3 generic_has gw2 "INSTANCE wan MASTER 100" || true
gw2_pid=${HAMGR_PID[gw2]}
hamgr_stop gw2
assert_false "notify: gw2 daemon gone after SIGTERM" hi_pid_alive "$gw2_pid"

assert_eq "$(generic_args gw2 | tr '\n' '|')" \
        "INSTANCE wan BACKUP 100|INSTANCE wan MASTER 100|INSTANCE wan STOP 100|" \
        "notify: generic script calls on the backup node"
assert_eq "$(generic_env gw2 1 HAMGR_PREV_STATE):$(generic_env gw2 2 HAMGR_PREV_STATE):$(generic_env gw2 3 HAMGR_PREV_STATE)" \
        INIT:BACKUP:MASTER "notify: HAMGR_PREV_STATE of each call"
assert_eq "$(generic_env gw2 1 HAMGR_STATE):$(generic_env gw2 2 HAMGR_STATE):$(generic_env gw2 3 HAMGR_STATE)" \
        BACKUP:MASTER:STOP "notify: HAMGR_STATE of each call"
assert_eq "$(generic_env gw2 1 HAMGR_NODE):$(generic_env gw2 3 HAMGR_NODE)" gw2:gw2 "notify: HAMGR_NODE"
assert_eq "$(generic_env gw2 2 HAMGR_INSTANCE):$(generic_env gw2 2 HAMGR_PRIORITY)" wan:100 \
        "notify: HAMGR_INSTANCE and HAMGR_PRIORITY"
assert_eq "$(cut -d' ' -f2- "$PERSTATE" | tr '\n' '|')" \
        "backup args=INSTANCE wan BACKUP 100 prev=INIT node=gw2|master args=INSTANCE wan MASTER 100 prev=BACKUP node=gw2|stop args=INSTANCE wan STOP 100 prev=MASTER node=gw2|" \
        "notify: per-state scripts on the backup node"
# Each per-state script ran after the generic script of the same change.
order_ok=$(paste <(hamgr_notify_read gw2 | cut -f1) <(cut -d' ' -f1 "$PERSTATE") |
        awk 'NF == 2 && $2 >= $1 { ok++ } END { print ok + 0 }')
assert_eq "$order_ok" 3 "notify: per-state script runs after the generic one, each time"
assert_eq "$(generic_args gw1 | head -n 2 | tr '\n' '|')" "INSTANCE wan BACKUP 150|INSTANCE wan MASTER 150|" \
        "notify: gw1 (generic script only) saw BACKUP then MASTER"

# ------------------------------------ notify: a hanging script
SLOW_LOG="$HI_TMP/slow.log"
SLOW_PID="$HI_TMP/slow.pid"
cat >"$HI_TMP/slow-backup.sh" <<EOF
#!/bin/sh
echo "started \$(date +%s.%N)" >>"$SLOW_LOG"
echo "pid \$\$" >>"$SLOW_LOG"
sleep 30 &
echo \$! >"$SLOW_PID"
wait
echo finished >>"$SLOW_LOG"
EOF
chmod 755 "$HI_TMP/slow-backup.sh"
rm -f "$(hamgr_notify_log gw2)" "$PERSTATE"
: >"$(hamgr_log gw2)"
# Long enough to outlast the takeover on a loaded machine, so the script is
# demonstrably still hanging when gw2 becomes master.
TIMEOUT_MS=2500
HC_NOTIFY_SCRIPT="" write_hamgr_conf "$HI_TMP/gw2-slow.conf" gw2 100 "$(notify_section $TIMEOUT_MS \
        "backup=$HI_TMP/slow-backup.sh" "master=$HI_TMP/master.sh")"
hamgr_start gw1 "$HI_TMP/gw1-n.conf"
wait_until 10 hamgr_state_is gw1 wan MASTER || die "gw1 did not become MASTER"
hamgr_start gw2 "$HI_TMP/gw2-slow.conf"
wait_until 5 test -s "$SLOW_PID" || die "the slow BACKUP script did not start"
slow_child=$(cat "$SLOW_PID")
assert_true "slow: its sleep is running" kill -0 "$slow_child"
assert_eq "$(hamgr_state gw2 wan)" BACKUP "slow: gw2 is BACKUP while its script hangs"

crash_node gw1 "$VIP4/24" "$VIP6/64"
t0=$(hi_now_ms)
wait_until 5 hamgr_state_is gw2 wan MASTER || true
took=$(($(hi_now_ms) - t0))
assert_eq "$(hamgr_state gw2 wan)" MASTER "slow: gw2 takes over while the BACKUP script hangs"
if [ "$took" -le $((MASTER_DOWN_MS + 900)) ]; then
        pass "slow: takeover after ${took} ms (Master_Down_Interval ${MASTER_DOWN_MS} ms)"
else
        fail "slow: takeover after ${took} ms, want <= $((MASTER_DOWN_MS + 900)) ms"
fi
assert_true "slow: the BACKUP script is still sleeping at takeover" kill -0 "$slow_child"
assert_eq "$(vip_owner "$VIP4")" gw2 "slow: gw2 holds the VIP"
assert_false "slow: the MASTER notification waits its turn" generic_has gw2 "INSTANCE wan MASTER 100"

# The log says so; when is measured below, not read from its text.
KILLED_RE='slow-backup\.sh did not finish within [0-9]+ ms, killing it'
wait_until 5 grep -qE "$KILLED_RE" "$(hamgr_log gw2)" || true
assert_true "slow: log says the script was killed" grep -qE "$KILLED_RE" "$(hamgr_log gw2)"
wait_until 3 generic_has gw2 "INSTANCE wan MASTER 100" || true
assert_true "slow: the next notification (MASTER) ran" generic_has gw2 "INSTANCE wan MASTER 100"
wait_until 3 test -s "$PERSTATE" || true
assert_eq "$(cut -d' ' -f2- "$PERSTATE" 2>/dev/null)" "master args=INSTANCE wan MASTER 100 prev=BACKUP node=gw2" \
        "slow: the MASTER per-state script ran after it"
assert_true "slow: the script's child was killed too" hi_wait_gone "$slow_child" 2
assert_eq "$(grep -c finished "$SLOW_LOG" || true)" 0 "slow: the script never finished on its own"
# The kill came at the timeout: the MASTER script, queued behind the
# hanging one since the takeover, started 2400..2900 ms after it.
started=$(sed -n 's/^started //p' "$SLOW_LOG")
master_at=$(hamgr_notify_read gw2 | grep -F "args=INSTANCE wan MASTER 100" | cut -f1)
gap=$(awk -v a="$started" -v b="$master_at" 'BEGIN { if (a == "" || b == "") print "none"; else printf "%d", (b - a) * 1000 }')
if [[ "$gap" =~ ^[0-9]+$ ]] && [ "$gap" -ge $((TIMEOUT_MS - 100)) ] && [ "$gap" -le $((TIMEOUT_MS + 400)) ]; then
        pass "slow: the MASTER notification started $gap ms after the hanging script (timeout_ms $TIMEOUT_MS)"
else
        fail "slow: the MASTER notification started '$gap' ms after the hanging script, want $((TIMEOUT_MS - 100))..$((TIMEOUT_MS + 400))"
fi
assert_true "slow: gw2 daemon still running" hamgr_alive gw2
hamgr_stop gw2

# Same with notify.timeout_ms 500: the BACKUP script is killed after half a
# second and the following notification (MASTER, on gw1's SIGTERM) runs.
revive_node gw1
rm -f "$(hamgr_notify_log gw2)" "$PERSTATE" "$SLOW_LOG" "$SLOW_PID"
: >"$(hamgr_log gw2)"
HC_NOTIFY_SCRIPT="" write_hamgr_conf "$HI_TMP/gw2-500.conf" gw2 100 "$(notify_section 500 \
        "backup=$HI_TMP/slow-backup.sh" "master=$HI_TMP/master.sh")"
hamgr_start gw1 "$HI_TMP/gw1-n.conf"
wait_until 10 hamgr_state_is gw1 wan MASTER || die "gw1 did not become MASTER"
hamgr_start gw2 "$HI_TMP/gw2-500.conf"
wait_until 5 test -s "$SLOW_PID" || die "the slow BACKUP script did not start"
slow_child=$(cat "$SLOW_PID")
slow_shell=$(sed -n 's/^pid //p' "$SLOW_LOG")
[ -n "$slow_shell" ] || die "500 ms: the slow script did not record its PID"
killed_at=$(pid_gone_at_ms "$slow_shell" 5) || killed_at=""
wait_until 5 grep -qE "$KILLED_RE" "$(hamgr_log gw2)" || true
assert_true "500 ms: log says the script was killed" grep -qE "$KILLED_RE" "$(hamgr_log gw2)"
started=$(sed -n 's/^started //p' "$SLOW_LOG")
frac=${started#*.}000
started_ms=$((${started%.*} * 1000 + 10#${frac:0:3}))
ran=$((${killed_at:-0} - started_ms))
if [ -n "$killed_at" ] && [ "$ran" -ge 400 ] && [ "$ran" -le 900 ]; then
        pass "500 ms: the script's process gone ${ran} ms after it started"
else
        fail "500 ms: the script's process gone '${killed_at:+$ran}' ms after it started, want 400..900"
fi
assert_true "500 ms: the script's child was killed too" hi_wait_gone "$slow_child" 2
assert_eq "$(hamgr_state gw2 wan)" BACKUP "500 ms: gw2 still BACKUP (no takeover involved)"
hamgr_stop gw1
wait_until 5 hamgr_state_is gw2 wan MASTER || true
assert_eq "$(hamgr_state gw2 wan)" MASTER "500 ms: gw2 takes over on gw1's SIGTERM"
wait_until 3 test -s "$PERSTATE" || true
assert_eq "$(generic_args gw2 | tr '\n' '|')" "INSTANCE wan BACKUP 100|INSTANCE wan MASTER 100|" \
        "500 ms: the next notifications ran"
assert_eq "$(cut -d' ' -f2- "$PERSTATE" 2>/dev/null)" "master args=INSTANCE wan MASTER 100 prev=BACKUP node=gw2" \
        "500 ms: the MASTER per-state script ran"
assert_eq "$(grep -c finished "$SLOW_LOG" || true)" 0 "500 ms: the script never finished on its own"

hamgr_stop gw2
finish
