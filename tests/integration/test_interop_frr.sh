#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Interoperability with FRR's vrrpd (Debian 12: FRR 8.4) over IPv4, VRRPv3:
# gw1 runs hamgr, gw2 FRR (zebra + vrrpd), vrrid 51, a 1 s interval, one VIP.
# FRR does not move addresses: as its documentation asks, the VIP sits on a
# macvlan in bridge mode (named vrrp4-2-1, virtual MAC 00:00:5e:00:01:33,
# addrgenmode random) and vrrpd keeps that macvlan in protodown while Backup.
# hamgr puts the VIP on eth0 with the interface's own MAC.
#  - hamgr master (150), FRR backup (100): FRR stays Backup past its
#    Master_Down_Interval, no transition on either side; the client's ARP
#    for the VIP resolves to gw1;
#  - kill -9 of hamgr: FRR becomes Master, the client resolves the VIP to
#    the virtual MAC;
#  - hamgr returns and preempts FRR;
#  - the reverse: FRR master (150), hamgr backup (100), stable; kill -9 of
#    vrrpd: hamgr takes over; vrrpd returns and preempts hamgr.
#  - control: hamgr with checksum = "rfc9568" (no IPv4 pseudo-header): FRR
#    discards its adverts and becomes Master beside it, so the state checks
#    above can tell a real mismatch.
# Throughout: hamgr counts no invalid or dropped packet and tcpdump finds no
# bad checksum in either side's adverts.
# shellcheck disable=SC2317 # small predicates run through wait_until
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_hamgr
FRR_DIR=${FRR_DIR:-/usr/lib/frr}
require_cmd tcpdump "$FRR_DIR/zebra" "$FRR_DIR/vrrpd"
id frr >/dev/null 2>&1 || die "no user 'frr' (the frr package creates it)"

H=gw1                   # hamgr
F=gw2                   # FRR
H_IP=10.77.0.1
F_IP=10.77.0.2
VIP=10.77.0.10
VRID=51
MACVLAN=vrrp4-2-1
VMAC=00:00:5e:00:01:33  # RFC 5798 7.3, vrid 51
H_MAC=02:77:00:00:00:01
GROUP=224.0.0.18
ADV="VRRPv3, Advertisement, vrid $VRID"
# Master_Down_Interval of a priority-100 backup at 1 s, plus slack.
TAKEOVER_S=6

# ---------------------------------------------------------------- helpers --

# hconf FILE PRIORITY: hamgr config.
hconf() {
        HC_VERSION=3 HC_INTERVAL_MS=1000 HC_TRACK="" HC_NOTIFY_SCRIPT="" \
                HC_VIPS="\"$VIP/24\"" write_hamgr_conf "$1" "$H" "$2"
}

FRR_RUN="$HI_TMP/frr"   # sockets and pid files, owned by the frr user
FRR_N=0                 # vrrpd runs so far; each logs to its own file
VRRPD_PID=""

vrrpd_log() {
        printf '%s/%s.vrrpd%d.log' "$HI_TMP" "$F" "$FRR_N"
}

# frr_setup: the macvlan and zebra on F. vrrpd talks to this zebra over
# a socket in FRR_RUN; the frr user must reach it.
frr_setup() {
        local ns
        ns=$(ns_of "$F")
        mkdir -p "$FRR_RUN"
        chmod o+x "$HI_TMP"
        chown frr:frr "$FRR_RUN"
        # addrgenmode cannot be given to "link add" for a macvlan here.
        ip -n "$ns" link add "$MACVLAN" link eth0 type macvlan mode bridge
        ip -n "$ns" link set "$MACVLAN" addrgenmode random
        ip -n "$ns" link set "$MACVLAN" address "$VMAC"
        ip -n "$ns" addr add "$VIP/24" dev "$MACVLAN"
        ip -n "$ns" link set "$MACVLAN" up
        # Only the macvlan answers ARP for the VIP, and only while vrrpd
        # has it out of protodown; by default eth0 would answer for it too,
        # and ask for neighbours in the VIP's name with its own MAC.
        hi_sysctl "$ns" net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
        printf 'hostname %s-frr\n' "$F" >"$FRR_RUN/zebra.conf"
        node_spawn "$F" "$HI_TMP/$F.zebra.log" "$FRR_DIR/zebra" --log stdout \
                -f "$FRR_RUN/zebra.conf" -i "$FRR_RUN/zebra.pid" -z "$FRR_RUN/zserv.api" \
                --vty_socket "$FRR_RUN" -A 127.0.0.1
        hi_pid_alive "$HI_LAST_PID" || die "zebra died at start: $(tail -n 20 "$HI_TMP/$F.zebra.log")"
        wait_until 5 test -S "$FRR_RUN/zserv.api" || die "zebra did not open its socket"
}

# frr_start PRIORITY: a new vrrpd run on F.
frr_start() {
        local conf="$FRR_RUN/vrrpd.conf"
        FRR_N=$((FRR_N + 1))
        cat >"$conf" <<EOF
hostname $F-frr
debug vrrp
interface eth0
 vrrp $VRID version 3
 vrrp $VRID priority $1
 vrrp $VRID advertisement-interval 1000
 vrrp $VRID ip $VIP
EOF
        chown frr:frr "$conf"
        # Protodown belongs to vrrpd; after a crash the node was "dead".
        ip -n "$(ns_of "$F")" link set "$MACVLAN" up
        node_spawn "$F" "$(vrrpd_log)" "$FRR_DIR/vrrpd" --log stdout --log-level debug \
                -f "$conf" -i "$FRR_RUN/vrrpd.pid" -z "$FRR_RUN/zserv.api" \
                --vty_socket "$FRR_RUN" -A 127.0.0.1
        VRRPD_PID=$HI_LAST_PID
        hi_pid_alive "$VRRPD_PID" || die "vrrpd died at start: $(tail -n 20 "$(vrrpd_log)")"
}

frr_alive() {
        [ -n "$VRRPD_PID" ] && hi_pid_alive "$VRRPD_PID"
}

# frr_crash: SIGKILL vrrpd; the node is dead, so its VIP goes too (the
# macvlan down, as a reboot would leave it).
frr_crash() {
        stop_pid "$VRRPD_PID" KILL || die "vrrpd survived SIGKILL"
        VRRPD_PID=""
        ip -n "$(ns_of "$F")" link set "$MACVLAN" down
}

# State FRR's IPv4 router last entered in this run (DOWN if not running).
frr_state() {
        if ! frr_alive; then
                echo DOWN
                return 0
        fi
        sed -n "s/.*\[VRID $VRID\] \[IPv4\] [A-Za-z]* -> \([A-Za-z]*\)\$/\1/p" "$(vrrpd_log)" | tail -n 1
}

frr_state_is() {
        [ "$(frr_state)" = "$1" ]
}

# All state changes of FRR's IPv4 router over every run.
frr_transitions() {
        cat "$HI_TMP/$F".vrrpd*.log 2>/dev/null | grep -cE "\[VRID $VRID\] \[IPv4\] [A-Za-z]+ -> " || true
}

# FRR answers for the VIP: macvlan up and not in protodown.
frr_vip_live() {
        local l
        l=$(ip -n "$(ns_of "$F")" -d link show dev "$MACVLAN") || return 1
        [[ "$l" == *"state UP"* ]] && [[ "$l" != *"protodown on"* ]]
}

# settled hamgr|frr: that one is master and holds the VIP, the other backup.
settled() {
        case $1 in
        hamgr) hamgr_state_is "$H" wan MASTER && frr_state_is Backup && vip_on "$H" "$VIP" && ! frr_vip_live ;;
        frr) frr_state_is Master && hamgr_state_is "$H" wan BACKUP && ! vip_on "$H" "$VIP" && frr_vip_live ;;
        *) return 1 ;;
        esac
}

# alone hamgr|frr: the other is not running; this one is master.
alone() {
        case $1 in
        hamgr) hamgr_state_is "$H" wan MASTER && vip_on "$H" "$VIP" ;;
        frr) frr_state_is Master && frr_vip_live ;;
        *) return 1 ;;
        esac
}

# hold_settled WHO SECONDS WHAT: stays settled with no transition at all.
hold_settled() {
        local who=$1 secs=$2 what=$3 ft ht
        ft=$(frr_transitions)
        ht=$(inst_field "$H" wan .counters.transitions)
        assert_true "$what: $who stays master for ${secs} s" holds_for "$secs" settled "$who"
        assert_eq "$(frr_transitions):$(inst_field "$H" wan .counters.transitions)" "$ft:$ht" \
                "$what: no state change on either side meanwhile"
}

check_clean() {
        assert_eq "$(inst_field "$H" wan '"\(.counters.packets_invalid) \(.counters.adverts_dropped) \(.last_invalid_reason)"')" \
                "0 0 null" "$1: hamgr counted no invalid or dropped packet"
}

# client_resolves MAC: the client's ARP for the VIP gives MAC (a stale
# entry is flushed first).
client_resolves() {
        local got
        ip -n "$(ns_of client)" neigh flush dev eth0 >/dev/null 2>&1 || true
        got=$(arp_mac_for client "$VIP")
        [ "$got" = "$1" ] || hi_log "client resolves $VIP to '$got', want $1"
        [ "$got" = "$1" ]
}

stop_hamgr_dead() {
        hamgr_stop "$H" KILL
        ip -n "$(ns_of "$H")" addr del "$VIP/24" dev eth0 2>/dev/null || true
}

lab_create 2
node_start "$H"
node_start "$F"
node_start client
CAP="$HI_TMP/client.cap"
capture_start client eth0 "ip proto 112" "$CAP"
frr_setup

hconf "$HI_TMP/h150.conf" 150
hconf "$HI_TMP/h100.conf" 100

# ======================================================= hamgr master
hamgr_start "$H" "$HI_TMP/h150.conf"
wait_until 8 alone hamgr || fail "startup: hamgr did not become master alone"
frr_start 100
wait_until $TAKEOVER_S settled hamgr || true
assert_true "hamgr master: hamgr MASTER, FRR Backup (macvlan in protodown), VIP on $H" settled hamgr
# Longer than FRR's Master_Down_Interval (3.61 s at priority 100).
hold_settled hamgr 5 "hamgr master"
assert_eq "$(grep -c ' -> Master$' "$(vrrpd_log)" || true)" 0 "hamgr master: FRR never became Master"
check_clean "hamgr master"
assert_true "hamgr master: the client resolves the VIP to $H" client_resolves "$H_MAC"
assert_true "capture: hamgr's adverts are VRRPv3, 1 s" capture_has "$CAP" "$H_IP > $GROUP" "$ADV, prio 150, intvl 100cs"

# ---- kill -9 of hamgr: FRR takes over
stop_hamgr_dead
wait_until $TAKEOVER_S alone frr || true
assert_true "hamgr crash: FRR is Master, its macvlan live" alone frr
assert_true "hamgr crash: the client resolves the VIP to the virtual MAC" client_resolves "$VMAC"
wait_until 3 capture_has "$CAP" "$F_IP > $GROUP" "$ADV, prio 100, intvl 100cs" || true
assert_true "capture: FRR's adverts are VRRPv3, 1 s, from $F_IP" capture_has "$CAP" "$F_IP > $GROUP" "$ADV, prio 100, intvl 100cs"

# ---- hamgr returns and preempts FRR
hamgr_start "$H" "$HI_TMP/h150.conf"
wait_until $TAKEOVER_S settled hamgr || true
assert_true "hamgr preempts: hamgr (150) took over from FRR (100)" settled hamgr
assert_eq "$(inst_field "$H" wan '"\(.last_master) \(.last_master_priority)"')" "$F_IP 100" \
        "hamgr preempts: hamgr heard FRR's adverts"
hold_settled hamgr 2 "hamgr preempts"
assert_true "hamgr preempts: the client resolves the VIP to $H" client_resolves "$H_MAC"
check_clean "hamgr preempts"

# ======================================================= FRR master
stop_hamgr_dead
frr_crash
frr_start 150
wait_until $TAKEOVER_S alone frr || fail "startup: FRR did not become Master alone"
hamgr_start "$H" "$HI_TMP/h100.conf"
wait_until $TAKEOVER_S settled frr || true
assert_true "FRR master: FRR Master, hamgr BACKUP, VIP only on FRR's macvlan" settled frr
hold_settled frr 5 "FRR master"
assert_eq "$(inst_field "$H" wan '"\(.last_master) \(.last_master_priority) \(.master_adver_interval_ms) \(.counters.became_master)"')" \
        "$F_IP 150 1000 0" "FRR master: hamgr follows FRR's adverts, never master"
check_clean "FRR master"
assert_true "FRR master: the client resolves the VIP to the virtual MAC" client_resolves "$VMAC"

# ---- kill -9 of vrrpd: hamgr takes over
frr_crash
wait_until $TAKEOVER_S alone hamgr || true
assert_true "FRR crash: hamgr is MASTER with the VIP" alone hamgr
assert_eq "$(inst_field "$H" wan .last_transition.reason)" master-down "FRR crash: hamgr's reason"
assert_true "FRR crash: the client resolves the VIP to $H" client_resolves "$H_MAC"

# ---- vrrpd returns and preempts hamgr
frr_start 150
wait_until $((TAKEOVER_S + 2)) settled frr || true
assert_true "FRR preempts: FRR (150) took over from hamgr (100)" settled frr
assert_eq "$(inst_field "$H" wan .last_transition.reason)" higher-priority "FRR preempts: hamgr's reason"
hold_settled frr 2 "FRR preempts"
check_clean "FRR preempts"
assert_eq "$(capture_count "$CAP" "bad vrrp cksum")" 0 "capture: no advert with a bad checksum"

# ============================================ control: a checksum FRR refuses
stop_hamgr_dead
frr_crash
HC_CHECKSUM=rfc9568 hconf "$HI_TMP/h150-9568.conf" 150
hamgr_start "$H" "$HI_TMP/h150-9568.conf"
wait_until 8 alone hamgr || fail "control startup: hamgr did not become master alone"
frr_start 100
wait_until $TAKEOVER_S frr_state_is Master || true
assert_true "control: FRR discards message-only v3 checksums and becomes Master" frr_state_is Master
assert_true "control: hamgr is MASTER too" hamgr_state_is "$H" wan MASTER

capture_stop
finish
