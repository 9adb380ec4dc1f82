#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# hamgr.conf(5) promises about the master's announcements, seen on the wire
# from the client, and accept_mode in the status:
#  - garp.refresh_s = 1: while master, the gratuitous ARP burst (repeat 2,
#    100 ms apart) comes again 1 s after the previous one ended, not only
#    at the transition;
#  - once preempted (BACKUP) the node sends none any more;
#  - refresh_s = 0 (the default): one burst at the transition, then quiet;
#  - accept_mode is reported by hamgr status as configured (true, and the
#    default false).
# shellcheck disable=SC2317 # small predicates run through wait_until
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_hamgr
require_cmd tcpdump

VIP=10.77.0.10
GW1_MAC=02:77:00:00:00:01
GW2_MAC=02:77:00:00:00:02
CAP="$HI_TMP/client.arp"

# garps_from MAC: times (ms of the day, tcpdump's clock) of the gratuitous
# ARPs for the VIP sent from MAC, one a line.
garps_from() {
        capture_grep "$CAP" "$1 > ff:ff:ff:ff:ff:ff" "ARP" "$VIP tell $VIP" |
                awk '{ split($1, t, ":"); printf "%d\n", ((t[1] * 60 + t[2]) * 60 + t[3]) * 1000 }'
}

# bursts MAC: the start of each burst (a gratuitous ARP more than 500 ms
# after the one before), one a line.
bursts() {
        garps_from "$1" | awk 'NR == 1 || $1 - prev > 500 { print } { prev = $1 }'
}

burst_count() {
        bursts "$1" | grep -c . || true
}

at_least_bursts() {
        [ "$(burst_count "$1")" -ge "$2" ]
}

lab_create 2
node_start gw1
node_start gw2
node_start client
capture_start client eth0 arp "$CAP"

HC_TRACK= HC_NOTIFY_SCRIPT= HC_INSTANCE_EXTRA='accept_mode = true; garp = { repeat = 2; interval_ms = 100; refresh_s = 1; };' \
        write_hamgr_conf "$(conf_of gw1)" gw1 100
HC_TRACK= HC_NOTIFY_SCRIPT= write_hamgr_conf "$(conf_of gw2)" gw2 150

# ---- gw1 alone, master, refresh every second
hamgr_start gw1 "$(conf_of gw1)"
wait_until 5 hamgr_state_is gw1 wan MASTER || die "gw1 did not become MASTER"
assert_eq "$(inst_field gw1 wan .accept_mode)" true "status reports accept_mode = true"
assert_true "refresh_s = 1: five bursts within 5.5 s of mastership" wait_until 6 at_least_bursts "$GW1_MAC" 5
gaps=$(bursts "$GW1_MAC" | awk 'NR > 1 { printf "%d ", $1 - prev } { prev = $1 }')
# refresh_s counts from the end of a burst: starts 1 s + 1 x 100 ms apart.
bad=$(printf '%s\n' $gaps | awk '$1 < 1000 || $1 > 1400' | grep -c . || true)
assert_eq "$bad" 0 "refresh_s = 1: bursts 1.1 s apart, start to start (gaps: $gaps ms)"
# Sizes of the bursts but the last (which may still be under way).
sizes=$(garps_from "$GW1_MAC" | awk 'NR > 1 && $1 - prev > 500 { printf "%d ", n; n = 0 } { n++; prev = $1 }')
assert_eq "$(printf '%s\n' $sizes | sort -u | tr -d '\n')" 2 "refresh_s = 1: each burst has repeat = 2 packets (sizes: $sizes)"

# ---- preempted by gw2: gw1 stops refreshing
hamgr_start gw2 "$(conf_of gw2)"
wait_until 5 states_are BACKUP MASTER || die "gw2 did not preempt gw1"
assert_eq "$(inst_field gw2 wan .accept_mode)" false "status reports accept_mode = false (the default)"
n=$(garps_from "$GW1_MAC" | grep -c . || true)
sleep 2.5
assert_eq "$(garps_from "$GW1_MAC" | grep -c . || true)" "$n" "BACKUP: gw1 sent no gratuitous ARP in 2.5 s"

# ---- refresh_s = 0 (gw2's default): one burst, then quiet
assert_eq "$(burst_count "$GW2_MAC")" 1 "refresh_s = 0: gw2 sent one burst in 2.5 s of mastership"
# gw1 yields with one last advert of its own priority, which gw2 answers by
# announcing again (a second master that loses was heard), and once gw1 is
# quiet gw2 announces once more (the split is over); each restarts the
# burst, so a burst cut short by the next one sends fewer than 3.
reann=$(($(hamgr_log_count gw2 're-announcing virtual IPs') + $(hamgr_log_count gw2 'the other master has yielded')))
n=$(garps_from "$GW2_MAC" | grep -c . || true)
assert_true "refresh_s = 0: at least the default 3 packets, at most 3 per announcement (1 + $reann): $n" \
        test "$n" -ge 3 -a "$n" -le $((3 * (1 + reann)))

capture_stop
finish
