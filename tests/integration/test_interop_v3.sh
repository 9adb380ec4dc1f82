#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Interoperability with keepalived (Debian 2.2.7) over IPv4: gw1 runs hamgr,
# gw2 keepalived, both with vrid 51, a 1 s interval and the same two VIPs
# (keepalived compares the address count of what it receives). VRRPv3 here;
# test_interop_v2.sh runs the multicast part with INTEROP_VERSION=2.
# Multicast:
#  - hamgr master (150), keepalived backup (100): keepalived enters BACKUP
#    and stays there past its Master_Down_Interval, so it accepts hamgr's
#    adverts (checksum included); no flapping on either side;
#  - kill -9 of hamgr: keepalived takes over after Master_Down_Interval;
#  - hamgr returns and preempts keepalived;
#  - SIGTERM of hamgr: keepalived takes over within Skew_Time (priority 0),
#    well before Master_Down_Interval;
#  - hamgr (150, preempt = false) returns and stays backup;
#  - the reverse: keepalived master (150), hamgr backup (100), stable;
#    kill -9 of keepalived: hamgr takes over after Master_Down_Interval;
#    keepalived returns and preempts hamgr; SIGTERM of keepalived: hamgr
#    takes over within Skew_Time; keepalived (150, nopreempt) returns and
#    stays backup.
# VRRPv3 only:
#  - unicast: hamgr master with keepalived backup, crash, takeover, preempt;
#  - a 0.1 s interval (10 cs on the wire) both ways, stable;
#  - control: hamgr with checksum = "rfc9568" (no IPv4 pseudo-header) is
#    refused by keepalived ("Invalid VRRPv3 checksum"), which then becomes
#    master too: the complaint and state checks can catch a real mismatch.
# Hand-over times are measured twice: from the signal to the VIPs moving
# (wall clock), and between the adverts in a capture (old master's last,
# new master's first), which is exactly Master_Down_Interval or Skew_Time.
# Throughout: keepalived logs no complaint (invalid / checksum / ignoring),
# hamgr counts no invalid or dropped packet, and tcpdump finds no bad
# checksum in either side's adverts.
# shellcheck disable=SC2317 # small predicates run through wait_until
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_hamgr
require_cmd keepalived tcpdump

V=${INTEROP_VERSION:-3}
case $V in
2) INTVL="authtype none, intvl 1s" ;;
3) INTVL="intvl 100cs" ;;
*) die "INTEROP_VERSION must be 2 or 3, not '$V'" ;;
esac
ADV="VRRPv$V, Advertisement, vrid 51"
H=gw1                   # hamgr
K=gw2                   # keepalived
H_IP=10.77.0.1
K_IP=10.77.0.2
VIP=10.77.0.10
VIP2=10.77.0.11
GROUP=224.0.0.18
INTERVAL_MS=1000        # hamgr's advert_interval_ms
ADVERT_INT=1            # keepalived's advert_int
# RFC 9568 6.1 with a 1 s interval, for the priority-100 backup.
MASTER_DOWN_MS=$((3 * 1000 + (256 - 100) * 1000 / 256))
SKEW_MS=$(((256 - 100) * 1000 / 256))
# A graceful hand-over waits Skew_Time; a silent one Master_Down_Interval
# minus up to one interval since the last advert. 2 s separates the two.
GRACEFUL_MAX_MS=2000
COMPLAINTS='invalid|checksum|ignor'

# ---------------------------------------------------------------- helpers --

# hconf FILE PRIORITY [PREEMPT]: hamgr config, multicast unless HC_UNICAST_PEERS.
hconf() {
        HC_VERSION=$V HC_INTERVAL_MS=$INTERVAL_MS HC_TRACK="" HC_NOTIFY_SCRIPT="" \
                HC_PREEMPT=${3:-true} HC_VIPS="\"$VIP/24\", \"$VIP2/24\"" \
                write_hamgr_conf "$1" "$H" "$2"
}

# kconf FILE PRIORITY [PEER...]: keepalived config (KC_NOPREEMPT honoured).
kconf() {
        local file=$1 prio=$2
        shift 2
        KC_VIPS="$VIP/24"$'\n'"        $VIP2/24" KC_UNICAST_SRC=$K_IP KC_ADVERT_INT=$ADVERT_INT \
                write_keepalived_conf "$file" "$prio" "$V" unused "$@"
}

KA_MARK=0

# ka_start CONF: start keepalived on K; its log lines from here on are
# this run's (ka_log).
ka_start() {
        local log
        log=$(keepalived_log "$K")
        KA_MARK=0
        [ ! -e "$log" ] || KA_MARK=$(wc -l <"$log")
        keepalived_start "$K" "$1"
}

ka_log() {
        tail -n +$((KA_MARK + 1)) "$(keepalived_log "$K")" 2>/dev/null || true
}

ka_alive() {
        [ -n "${KEEPALIVED_PID[$K]:-}" ] && hi_pid_alive "${KEEPALIVED_PID[$K]}"
}

# State keepalived last entered in this run, DOWN when it is not running.
ka_state() {
        if ! ka_alive; then
                echo DOWN
                return 0
        fi
        ka_log | sed -n 's/.*(VI_1) Entering \([A-Z]*\) STATE.*/\1/p' | tail -n 1
}

ka_state_is() {
        [ "$(ka_state)" = "$1" ]
}

# All state changes keepalived logged, over every run.
ka_transitions() {
        grep -cE '\(VI_1\) Entering [A-Z]+ STATE' "$(keepalived_log "$K")" 2>/dev/null || true
}

ka_complaints() {
        grep -iE -- "$COMPLAINTS" "$(keepalived_log "$K")" 2>/dev/null || true
}

vips_on() {
        vip_owner_is "$VIP" "$1" && vip_owner_is "$VIP2" "$1"
}

# settled hamgr|keepalived: that daemon is MASTER with both VIPs, the other
# BACKUP without any.
settled() {
        case $1 in
        hamgr) hamgr_state_is "$H" wan MASTER && ka_state_is BACKUP && vips_on "$H" ;;
        keepalived) ka_state_is MASTER && hamgr_state_is "$H" wan BACKUP && vips_on "$K" ;;
        *) return 1 ;;
        esac
}

# alone hamgr|keepalived: the other one is not running; this one is MASTER.
alone() {
        case $1 in
        hamgr) hamgr_state_is "$H" wan MASTER && vips_on "$H" ;;
        keepalived) ka_state_is MASTER && vips_on "$K" ;;
        *) return 1 ;;
        esac
}

# assert_captured MSG FILE STRING...: a packet with every STRING is in the
# capture (tcpdump may print it a little after the state change).
assert_captured() {
        local msg=$1
        shift
        wait_until 3 capture_has "$@" || true
        assert_true "$msg" capture_has "$@"
}

# check_clean WHAT: neither side rejected anything of the other's so far.
check_clean() {
        local c
        c=$(ka_complaints)
        assert_eq "$c" "" "$1: keepalived logged no invalid/checksum/ignoring complaint"
        if hamgr_alive "$H"; then
                assert_eq "$(inst_field "$H" wan '"\(.counters.packets_invalid) \(.counters.adverts_dropped) \(.last_invalid_reason)"')" \
                        "0 0 null" "$1: hamgr counted no invalid or dropped packet"
        fi
}

# hold_settled WHO SECONDS WHAT: stays settled, with no transition at all
# on either side (a flap between two polls would still count one).
hold_settled() {
        local who=$1 secs=$2 what=$3 kt ht
        kt=$(ka_transitions)
        ht=$(inst_field "$H" wan .counters.transitions)
        assert_true "$what: $who stays master for ${secs} s" holds_for "$secs" settled "$who"
        assert_eq "$(ka_transitions):$(inst_field "$H" wan .counters.transitions)" "$kt:$ht" \
                "$what: no state change on either side meanwhile"
}

# crash_leftovers NODE: a crashed daemon leaves its VIPs behind; the node is
# dead, so they go too.
crash_leftovers() {
        local a
        for a in "$VIP" "$VIP2"; do
                ip -n "$(ns_of "$1")" addr del "$a/24" dev eth0 2>/dev/null || true
        done
}

# advert_gap FROM TO: ms from FROM's last multicast advert in the client's
# capture to TO's first one after it (tcpdump's clock, time of day).
advert_gap() {
        capture_records "$CAP" | awk -v from="$1 > $GROUP: " -v to="$2 > $GROUP: " -v adv="$ADV" '
                function ms(rec,  t) {
                        split(rec, t, /[: ]/)
                        return ((t[1] * 60 + t[2]) * 60 + t[3]) * 1000
                }
                { rec[NR] = $0 }
                index($0, from) && index($0, adv) { last = NR }
                END {
                        if (!last)
                                exit
                        for (i = last + 1; i <= NR; i++)
                                if (index(rec[i], to) && index(rec[i], adv)) {
                                        d = ms(rec[i]) - ms(rec[last])
                                        if (d < 0)
                                                d += 86400000
                                        printf "%d\n", d
                                        exit
                                }
                }'
}

have_gap() {
        [ -n "$(advert_gap "$1" "$2")" ]
}

# check_takeover WHAT KIND FROM TO T0: after a crash (KIND silent) the new
# master's first advert follows the old one's last by Master_Down_Interval,
# after a stop (KIND graceful) by Skew_Time; and the VIPs moved within a
# bound from T0 (the signal) that tells the two apart.
check_takeover() {
        local what=$1 kind=$2 from=$3 to=$4 t0=$5 took gap lo hi want
        took=$(($(hi_now_ms) - t0))
        if [ "$kind" = silent ]; then
                want=$MASTER_DOWN_MS
                if [ "$took" -ge $((MASTER_DOWN_MS - 1000 - 200)) ] && [ "$took" -le $((MASTER_DOWN_MS + 1000)) ]; then
                        pass "$what: VIPs moved ${took} ms after the kill, Master_Down_Interval ${MASTER_DOWN_MS} ms"
                else
                        fail "$what: VIPs moved ${took} ms after the kill, want $((MASTER_DOWN_MS - 1200))..$((MASTER_DOWN_MS + 1000)) ms"
                fi
        else
                want=$SKEW_MS
                if [ "$took" -lt "$GRACEFUL_MAX_MS" ]; then
                        pass "$what: VIPs moved ${took} ms after SIGTERM (silent: >= $((MASTER_DOWN_MS - 1000)) ms)"
                else
                        fail "$what: VIPs moved ${took} ms after SIGTERM, want < ${GRACEFUL_MAX_MS} ms"
                fi
        fi
        wait_until 3 have_gap "$from" "$to" || true
        gap=$(advert_gap "$from" "$to")
        lo=$((want - 200))
        hi=$((want + 700))
        if [ -n "$gap" ] && [ "$gap" -ge "$lo" ] && [ "$gap" -le "$hi" ]; then
                pass "$what: first advert of the new master ${gap} ms after the last of the old (want ${want} ms)"
        else
                fail "$what: first advert of the new master '${gap}' ms after the last of the old, want ${lo}..${hi} ms"
        fi
}

stop_all() {
        hamgr_stop "$H"
        keepalived_stop "$K"
        crash_leftovers "$H"
        crash_leftovers "$K"
}

lab_create 2
node_start "$H"
node_start "$K"
node_start client
CAP="$HI_TMP/client.cap"
capture_start client eth0 "ip proto 112" "$CAP"

# ================================================= multicast, hamgr master
hconf "$HI_TMP/h150.conf" 150
hconf "$HI_TMP/h150-nopreempt.conf" 150 false
kconf "$HI_TMP/k100.conf" 100

# hamgr first, so keepalived joins a running master: it must stay BACKUP
# past its own Master_Down_Interval on hamgr's adverts alone.
hamgr_start "$H" "$HI_TMP/h150.conf"
wait_until 8 alone hamgr || fail "startup: hamgr did not become master alone"
ka_start "$HI_TMP/k100.conf"
wait_until 5 settled hamgr || true
assert_true "v$V hamgr master: hamgr MASTER, keepalived BACKUP, VIPs on $H" settled hamgr
assert_contains "$(ka_log)" "(VI_1) Entering BACKUP STATE" "v$V hamgr master: keepalived log"
hold_settled hamgr 4 "v$V hamgr master"
assert_not_contains "$(ka_log)" "Entering MASTER STATE" "v$V hamgr master: keepalived never became master"
check_clean "v$V hamgr master"
assert_captured "capture: hamgr's adverts are VRRPv$V, 1 s, both VIPs" \
        "$CAP" "$H_IP > $GROUP" "ttl 255" "$ADV, prio 150, $INTVL" "addrs(2): $VIP,$VIP2"

# ---- kill -9 of hamgr
hamgr_stop "$H" KILL
t0=$(hi_now_ms)
crash_leftovers "$H"
wait_until $(((MASTER_DOWN_MS + 2000) / 1000)) alone keepalived || true
assert_true "hamgr crash: keepalived is MASTER with both VIPs" alone keepalived
check_takeover "hamgr crash" silent "$H_IP" "$K_IP" "$t0"
assert_captured "capture: keepalived's adverts are VRRPv$V, 1 s, both VIPs" \
        "$CAP" "$K_IP > $GROUP" "ttl 255" "$ADV, prio 100, $INTVL" "addrs(2): $VIP,$VIP2"

# ---- hamgr returns and preempts
backups=$(ka_log | grep -c 'Entering BACKUP STATE' || true)
hamgr_start "$H" "$HI_TMP/h150.conf"
wait_until 8 settled hamgr || true
assert_true "hamgr preempts: hamgr (150) took over from keepalived (100)" settled hamgr
assert_eq "$(ka_log | grep -c 'Entering BACKUP STATE' || true)" $((backups + 1)) \
        "hamgr preempts: keepalived logged one more BACKUP transition"
hold_settled hamgr 2 "hamgr preempts"
check_clean "hamgr preempts"

# ---- SIGTERM of hamgr: priority 0, keepalived takes over after Skew_Time
kill -s TERM "${HAMGR_PID[$H]}"
t0=$(hi_now_ms)
wait_until 4 alone keepalived || true
assert_true "hamgr stop: keepalived is MASTER with both VIPs" alone keepalived
check_takeover "hamgr stop" graceful "$H_IP" "$K_IP" "$t0"
hamgr_stop "$H"
assert_captured "capture: hamgr said goodbye with a priority-0 advert" \
        "$CAP" "$H_IP > $GROUP" "$ADV, prio 0,"

# ---- hamgr (150) returns with preempt = false: stays backup
hamgr_start "$H" "$HI_TMP/h150-nopreempt.conf"
wait_until 3 hamgr_state_is "$H" wan BACKUP || true
# Longer than hamgr's Master_Down_Interval (3.41 s at priority 150).
hold_settled keepalived 5 "hamgr preempt=false"
assert_eq "$(inst_field "$H" wan '"\(.last_master) \(.last_master_priority) \(.counters.became_master)"')" "$K_IP 100 0" \
        "hamgr preempt=false: hamgr follows keepalived's adverts, never master"
check_clean "hamgr preempt=false"

# ============================================ multicast, keepalived master
stop_all
hconf "$HI_TMP/h100.conf" 100
kconf "$HI_TMP/k150.conf" 150
KC_NOPREEMPT=1 kconf "$HI_TMP/k150-nopreempt.conf" 150

ka_start "$HI_TMP/k150.conf"
wait_until 8 alone keepalived || fail "startup: keepalived did not become master alone"
hamgr_start "$H" "$HI_TMP/h100.conf"
wait_until 5 settled keepalived || true
assert_true "v$V keepalived master: keepalived MASTER, hamgr BACKUP, VIPs on $K" settled keepalived
# Longer than hamgr's Master_Down_Interval (3.61 s at priority 100).
hold_settled keepalived 4 "v$V keepalived master"
assert_eq "$(inst_field "$H" wan '"\(.last_master) \(.last_master_priority) \(.master_adver_interval_ms) \(.counters.became_master)"')" \
        "$K_IP 150 1000 0" "v$V keepalived master: hamgr follows keepalived's adverts, never master"
check_clean "v$V keepalived master"
assert_captured "capture: keepalived's adverts are VRRPv$V, 1 s, both VIPs" \
        "$CAP" "$K_IP > $GROUP" "ttl 255" "$ADV, prio 150, $INTVL" "addrs(2): $VIP,$VIP2"

# ---- kill -9 of keepalived
keepalived_crash "$K"
t0=$(hi_now_ms)
crash_leftovers "$K"
wait_until $(((MASTER_DOWN_MS + 2000) / 1000)) alone hamgr || true
assert_true "keepalived crash: hamgr is MASTER with both VIPs" alone hamgr
check_takeover "keepalived crash" silent "$K_IP" "$H_IP" "$t0"
assert_eq "$(inst_field "$H" wan .last_transition.reason)" master-down "keepalived crash: hamgr's reason"

# ---- keepalived returns and preempts
ka_start "$HI_TMP/k150.conf"
wait_until 8 settled keepalived || true
assert_true "keepalived preempts: keepalived (150) took over from hamgr (100)" settled keepalived
assert_eq "$(inst_field "$H" wan .last_transition.reason)" higher-priority "keepalived preempts: hamgr's reason"
hold_settled keepalived 2 "keepalived preempts"
check_clean "keepalived preempts"

# ---- SIGTERM of keepalived: priority 0, hamgr takes over after Skew_Time
kill -s TERM "${KEEPALIVED_PID[$K]}"
t0=$(hi_now_ms)
wait_until 4 alone hamgr || true
assert_true "keepalived stop: hamgr is MASTER with both VIPs" alone hamgr
check_takeover "keepalived stop" graceful "$K_IP" "$H_IP" "$t0"
keepalived_stop "$K"
assert_captured "capture: keepalived said goodbye with a priority-0 advert" \
        "$CAP" "$K_IP > $GROUP" "$ADV, prio 0,"

# ---- keepalived (150, nopreempt) returns: stays backup
ka_start "$HI_TMP/k150-nopreempt.conf"
wait_until 3 ka_state_is BACKUP || true
# Longer than keepalived's Master_Down_Interval (3.41 s at priority 150).
hold_settled hamgr 5 "keepalived nopreempt"
assert_not_contains "$(ka_log)" "Entering MASTER STATE" "keepalived nopreempt: never became master"
check_clean "keepalived nopreempt"
# tcpdump -v checks every VRRP checksum (v3 over IPv4 with the pseudo-header).
assert_eq "$(capture_count "$CAP" "bad vrrp cksum")" 0 "capture: no advert with a bad checksum"

if [ "$V" = 3 ]; then
        # ============================================== unicast, hamgr master
        stop_all
        HC_UNICAST_PEERS="\"$K_IP\"" hconf "$HI_TMP/h150-uc.conf" 150
        kconf "$HI_TMP/k100-uc.conf" 100 "$H_IP"
        # The bridge has learned the MACs by now: unicast is seen at the
        # peer only.
        KCAP="$HI_TMP/$K.cap"
        capture_start "$K" eth0 "ip proto 112" "$KCAP"

        hamgr_start "$H" "$HI_TMP/h150-uc.conf"
        wait_until 8 alone hamgr || fail "unicast startup: hamgr did not become master alone"
        ka_start "$HI_TMP/k100-uc.conf"
        wait_until 5 settled hamgr || true
        assert_true "unicast: hamgr MASTER, keepalived BACKUP" settled hamgr
        hold_settled hamgr 4 "unicast"
        assert_not_contains "$(ka_log)" "Entering MASTER STATE" "unicast: keepalived never became master"
        assert_captured "capture: hamgr's adverts go unicast to keepalived" \
                "$KCAP" "$H_IP > $K_IP" "ttl 255" "$ADV, prio 150"

        hamgr_stop "$H" KILL
        crash_leftovers "$H"
        wait_until $(((MASTER_DOWN_MS + 2000) / 1000)) alone keepalived || true
        assert_true "unicast hamgr crash: keepalived is MASTER with both VIPs" alone keepalived
        assert_captured "capture: keepalived's adverts go unicast to hamgr" \
                "$KCAP" "$K_IP > $H_IP" "ttl 255" "$ADV, prio 100"

        hamgr_start "$H" "$HI_TMP/h150-uc.conf"
        wait_until 8 settled hamgr || true
        assert_true "unicast: hamgr returns and preempts keepalived" settled hamgr
        assert_eq "$(inst_field "$H" wan '"\(.last_master) \(.last_master_priority)"')" "$K_IP 100" \
                "unicast: hamgr heard keepalived's unicast adverts"
        hold_settled hamgr 1 "unicast preempt"
        check_clean "unicast"
        assert_eq "$(capture_count "$KCAP" "> $GROUP")" 0 "unicast: no advert went to the multicast group"

        # ============================================ 0.1 s interval, v3
        stop_all
        INTERVAL_MS=100
        ADVERT_INT=0.1
        hconf "$HI_TMP/h150-fast.conf" 150
        hconf "$HI_TMP/h50-fast.conf" 50
        kconf "$HI_TMP/k100-fast.conf" 100
        hamgr_start "$H" "$HI_TMP/h150-fast.conf"
        wait_until 3 alone hamgr || fail "0.1 s startup: hamgr did not become master alone"
        ka_start "$HI_TMP/k100-fast.conf"
        wait_until 3 settled hamgr || true
        # Five times keepalived's Master_Down_Interval (0.36 s).
        hold_settled hamgr 2 "0.1 s, hamgr master"
        check_clean "0.1 s, hamgr master"
        assert_captured "capture: hamgr's adverts carry 10 cs" \
                "$CAP" "$H_IP > $GROUP" "ttl 255" "$ADV, prio 150, intvl 10cs" "addrs(2): $VIP,$VIP2"

        hamgr_stop "$H"
        wait_until 3 alone keepalived || true
        assert_true "0.1 s: keepalived took over from the stopped hamgr" alone keepalived
        hamgr_start "$H" "$HI_TMP/h50-fast.conf"
        wait_until 3 hamgr_state_is "$H" wan BACKUP || true
        hold_settled keepalived 2 "0.1 s, keepalived master"
        assert_eq "$(inst_field "$H" wan '"\(.last_master) \(.last_master_priority) \(.master_adver_interval_ms) \(.counters.became_master)"')" \
                "$K_IP 100 100 0" "0.1 s: hamgr follows keepalived's 10 cs adverts, never master"
        check_clean "0.1 s, keepalived master"

        # ==================================== control: a checksum it refuses
        # The same, with hamgr checksumming the message alone (checksum =
        # "rfc9568"): keepalived must complain and take the VIPs too, so
        # the complaint and state checks above can fail. Last: it leaves
        # complaints in the log.
        stop_all
        HC_CHECKSUM=rfc9568 hconf "$HI_TMP/h150-9568.conf" 150
        hamgr_start "$H" "$HI_TMP/h150-9568.conf"
        wait_until 3 alone hamgr || fail "control startup: hamgr did not become master alone"
        ka_start "$HI_TMP/k100-fast.conf"
        wait_until 3 ka_state_is MASTER || true
        assert_contains "$(ka_complaints)" "(VI_1) Invalid VRRPv3 checksum" \
                "control: keepalived refuses message-only v3 checksums"
        assert_true "control: keepalived became master beside hamgr" ka_state_is MASTER
        assert_true "control: hamgr is master too" hamgr_state_is "$H" wan MASTER
fi

capture_stop
finish
