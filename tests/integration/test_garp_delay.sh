#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The delayed second announcement burst, on the wire (tcpdump on the
# client). One gateway with an IPv4 and an IPv6 virtual IP becomes MASTER
# with garp = { repeat = 2; interval_ms = 100; delay_s = 2; delay_repeat = 3; }:
#  - gratuitous ARPs: 2 packets, then 3 more starting about 2 s after the
#    first (the gap from the first burst's first packet to the second
#    burst's first is between 1.6 and 3 s: neither the 100 ms spacing of a
#    burst nor "never"), and no more after that;
#  - neighbour advertisements for the IPv6 VIP: the same 2 + 3, with the
#    Router and Override flags;
#  - delay_s = 0: only the first burst (2 of each), nothing in the next 3 s.
# shellcheck disable=SC2317 # small predicates run through wait_until
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_hamgr
require_cmd tcpdump

VIP4=10.77.0.10
VIP6=fd77::10

lab_create 1
MAC1=$(node_mac gw1)

# arp_ms FILE / na_ms FILE: the capture time (ms since midnight) of each of
# gw1's announcements for the VIP, one a line.
to_ms() {
        awk '{ split($1, t, ":"); printf "%d\n", (t[1] * 3600 + t[2] * 60 + t[3]) * 1000 }'
}

arp_ms() {
        capture_grep "$1" "$MAC1 > ff:ff:ff:ff:ff:ff" "Request who-has $VIP4 tell $VIP4," | to_ms
}

na_ms() {
        capture_grep "$1" "$MAC1 > 33:33:00:00:00:01" "neighbor advertisement" "tgt is $VIP6," \
                "Flags [router, override]" | to_ms
}

count_is() {
        [ "$("$1" "$2" | grep -c . || true)" -eq "$3" ]
}

# check_bursts WHAT FILE FUNC: 2 + 3 packets, the second burst ~2 s later.
check_bursts() {
        local what=$1 file=$2 fn=$3 t gap
        mapfile -t t < <("$fn" "$file")
        assert_eq "${#t[@]}" 5 "$what: 2 + 3 packets"
        [ "${#t[@]}" -ge 3 ] || return 0
        hi_log "$what at (ms): ${t[*]}"
        gap=$((t[1] - t[0]))
        assert_true "$what: first burst spaced by interval_ms (${gap} ms)" test "$gap" -ge 50 -a "$gap" -lt 600
        gap=$((t[2] - t[0]))
        assert_true "$what: second burst ${gap} ms after the first (delay_s = 2)" \
                test "$gap" -ge 1600 -a "$gap" -le 3000
}

GARP='garp = { repeat = 2; interval_ms = 100; delay_s = 2; delay_repeat = 3; };'
HC_VIPS="\"$VIP4/24\", \"$VIP6/64\"" HC_INSTANCE_EXTRA="$GARP" write_hamgr_conf "$(conf_of gw1)" gw1 150

capture_start client eth0 "arp or (icmp6 and ip6[40] == 136)" "$HI_TMP/bursts.cap"
hamgr_start gw1 "$(conf_of gw1)"
wait_until 5 hamgr_state_is gw1 wan MASTER || die "gw1 did not become MASTER"
wait_until 2 count_is arp_ms "$HI_TMP/bursts.cap" 2 || fail "first ARP burst not seen"
wait_until 5 count_is arp_ms "$HI_TMP/bursts.cap" 5 || fail "second ARP burst not seen"
wait_until 2 count_is na_ms "$HI_TMP/bursts.cap" 5 || fail "second NA burst not seen"
# Nothing more (refresh_s = 0): well past a third would-be burst.
sleep 2.5
capture_stop "$HI_TMP/bursts.cap"
check_bursts "gratuitous ARP" "$HI_TMP/bursts.cap" arp_ms
check_bursts "neighbour advertisement" "$HI_TMP/bursts.cap" na_ms

# ---- delay_s = 0: the first burst only
hamgr_stop gw1
: >"$(hamgr_log gw1)"
GARP='garp = { repeat = 2; interval_ms = 100; delay_s = 0; delay_repeat = 3; };'
HC_VIPS="\"$VIP4/24\", \"$VIP6/64\"" HC_INSTANCE_EXTRA="$GARP" write_hamgr_conf "$(conf_of gw1)" gw1 150
capture_start client eth0 "arp or (icmp6 and ip6[40] == 136)" "$HI_TMP/nodelay.cap"
hamgr_start gw1 "$(conf_of gw1)"
wait_until 5 hamgr_state_is gw1 wan MASTER || die "delay_s = 0: gw1 did not become MASTER"
wait_until 2 count_is arp_ms "$HI_TMP/nodelay.cap" 2 || fail "delay_s = 0: first ARP burst not seen"
sleep 3
capture_stop "$HI_TMP/nodelay.cap"
assert_eq "$(arp_ms "$HI_TMP/nodelay.cap" | grep -c . || true)" 2 "delay_s = 0: 2 gratuitous ARPs in 3 s, no second burst"
assert_eq "$(na_ms "$HI_TMP/nodelay.cap" | grep -c . || true)" 2 "delay_s = 0: 2 neighbour advertisements in 3 s, no second burst"

finish
