#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# A wireguard entry naming an interface that is not WireGuard (a typo
# naming the uplink) never has that link taken down. The stand-ins: a veth
# (d0; this kernel may lack the dummy driver) and a TUN device without a
# UAPI daemon (t0, what a wireguard-go link looks like once it is gone):
#  - hamgr check warns about both, naming the interface and its kind, and
#    says nothing about an interface that is absent (it may run elsewhere);
#  - hamgr run refuses to start and says why, and no event touches d0 or
#    t0 meanwhile (ip monitor); both stay UP;
#  - a wireguard-go interface (kind tun, UAPI socket answering) is accepted;
#  - a reload adding an entry for d0 is refused: the daemon keeps running
#    with its configuration and d0 stays UP;
#  - an entry whose interface is absent at start and later appears as a veth
#    that is up, while the instance is FAULT (passive follower) and then
#    MASTER and at stop: the follower leaves it up, and says why.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/wg_lab.sh"

require_hamgr
require_cmd wireguard-go wg

entry() {
        printf '{ interface = "%s"; backend = "%s"; follow = "wan"; }' "$1" "${2:-auto}"
}

conf() {
        local file=$1
        shift
        local IFS=,
        HC_TRACK= write_hamgr_conf "$file" gw1 100 "wireguard = ( $* );"
}

hamgr_gone() {
        ! hamgr_alive gw1
}

link_is_up() {
        node_exec gw1 ip -o link show "$1" | grep -q '<[^>]*[<,]UP[,>]'
}

lab_create 1
node_start gw1
node_exec gw1 ip link add d0 type veth peer name d0p
node_exec gw1 ip link set d0p up
node_exec gw1 ip link set d0 up
node_exec gw1 ip tuntap add mode tun name t0
node_exec gw1 ip link set t0 up
wg_go_start gw1

# ---- hamgr check
conf "$HI_TMP/bad.conf" "$(entry d0)" "$(entry t0 uapi)" "$(entry wg0 uapi)" "$(entry wg9)"
rc=0
out=$(node_exec gw1 "$HAMGR_BIN" check -c "$HI_TMP/bad.conf" 2>&1) || rc=$?
assert_eq "$rc" 0 "check: warnings do not fail the check"
assert_contains "$out" "warning: 'd0' is not a WireGuard interface: its link kind is 'veth'" "check: warns about d0"
assert_contains "$out" "warning: 't0' is a TUN device whose WireGuard UAPI socket" "check: warns about t0"
assert_not_contains "$out" "'wg0'" "check: wireguard-go's wg0 is fine"
assert_not_contains "$out" "wg9" "check: an absent interface is no warning"
assert_eq "$(printf '%s\n' "$out" | grep -c warning)" 2 "check: two warnings"

# ---- hamgr run refuses, touching nothing
node_spawn gw1 "$HI_TMP/monitor.log" ip -o monitor link
MONITOR_PID=$HI_LAST_PID
sleep 0.2
node_exec gw1 ip link set d0p mtu 1400 # a marker: the monitor is listening
wait_until 5 grep -q d0p "$HI_TMP/monitor.log" || die "ip monitor shows nothing"
for bad in "$(entry d0)" "$(entry t0 uapi)"; do
        conf "$HI_TMP/run.conf" "$(entry wg0 uapi)" "$bad"
        name=$(printf '%s' "$bad" | sed 's/.*interface = "\([^"]*\)".*/\1/')
        : >"$(hamgr_log gw1)"
        hamgr_start gw1 "$HI_TMP/run.conf"
        if wait_until 5 hamgr_gone; then
                pass "run with $name: hamgr refuses to start"
        else
                fail "run with $name: hamgr is still running"
        fi
        # Refusing is exit status 1: asserted now if it is gone, else when
        # hamgr_stop ends it (then failing: SIGTERM ends it with 0).
        hi_expect_exit "${HAMGR_PID[gw1]}" 1
        hamgr_stop gw1
        log=$(cat "$(hamgr_log gw1)")
        assert_contains "$log" "wireguard entry '$name' (line" "run with $name: the error names the entry"
        assert_contains "$log" "'$name' is" "run with $name: and says what the interface is"
        assert_contains "$log" "refuses to manage it: fix the interface name" "run with $name: and what to do"
        assert_true "run with $name: $name is still up" link_is_up "$name"
done
node_exec gw1 ip link set d0p mtu 1500
wait_until 5 grep -q 'd0p.*mtu 1500' "$HI_TMP/monitor.log" || true
stop_pid "$MONITOR_PID"
assert_eq "$(grep -cE '^[0-9]+: (d0|t0)[:@]' "$HI_TMP/monitor.log" || true)" 0 \
        "no link event for d0 or t0 while hamgr ran"

# ---- a reload adding d0 is refused
node_exec gw1 ip link set d0 up # whatever happened above
conf "$HI_TMP/good.conf" "$(entry wg0 uapi)"
: >"$(hamgr_log gw1)"
hamgr_start gw1 "$HI_TMP/good.conf"
wait_until 10 hamgr_state_is gw1 wan MASTER || die "gw1 did not start with wg0: $(tail -5 "$(hamgr_log gw1)")"
assert_eq "$(hamgr_status gw1 | jq -r '.wireguard[0].interface + " " + .wireguard[0].phase')" "wg0 active" \
        "wireguard-go's wg0 is followed"
conf "$HI_TMP/good.conf" "$(entry wg0 uapi)" "$(entry d0)"
kill -HUP "${HAMGR_PID[gw1]}"
assert_true "reload adding d0: refused" wait_until 5 grep -q "reload of .* failed" "$(hamgr_log gw1)"
assert_true "reload adding d0: hamgr keeps running" hamgr_alive gw1
assert_eq "$(hamgr_status gw1 | jq -r '.wireguard | length')" 1 "reload adding d0: still one wireguard entry"
assert_true "reload adding d0: d0 is still up" link_is_up d0
hamgr_stop gw1

# ---- absent at start, a veth later: left up. The instance is FAULT (its
# tracked eth1 has no carrier), so the follower is passive and takes down
# any link of its name that comes up, if WireGuard.
HC_TRACK='"eth1"' write_hamgr_conf "$HI_TMP/late.conf" gw1 100 "wireguard = ( $(entry d1) );"
gw_carrier gw1 off
: >"$(hamgr_log gw1)"
hamgr_start gw1 "$HI_TMP/late.conf"
wait_until 10 hamgr_state_is gw1 wan FAULT || die "gw1 did not start in FAULT: $(tail -5 "$(hamgr_log gw1)")"
node_exec gw1 ip link add d1 type veth peer name d1p
node_exec gw1 ip link set d1p up
node_exec gw1 ip link set d1 up
assert_true "d1 appearing later: the passive follower says why it leaves d1 alone" \
        wait_until 5 grep -q "not touching the link: 'd1' is not a WireGuard interface" "$(hamgr_log gw1)"
assert_true "d1 appearing later: d1 stays up" holds_for 1 link_is_up d1
assert_true "d1 appearing later: hamgr keeps running" hamgr_alive gw1
gw_carrier gw1 on
assert_true "d1 appearing later: master after all" wait_until 5 hamgr_state_is gw1 wan MASTER
assert_true "d1 appearing later: d1 stays up while master" holds_for 0.5 link_is_up d1
hamgr_stop gw1
assert_true "d1 appearing later: d1 is up after hamgr stopped" link_is_up d1

finish
