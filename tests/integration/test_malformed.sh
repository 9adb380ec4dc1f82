#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Robustness against hostile or broken VRRP traffic. Two hamgr gateways
# (gw1 priority 150 master, gw2 100 backup) each run an IPv4 instance "wan"
# and an IPv6 instance "wan6" (both vrid 51, 100 ms). From the client,
# vrrp_inject sends bursts of every malformed kind (truncated, bad checksum,
# bad version, bad type, address count mismatch, vrid 0, interval 0,
# random bytes), valid adverts with TTL / hop limit 64, and valid adverts
# for another vrid, all with priority 254, to the multicast group and to
# each node's own address. For each burst:
#  - neither node changes state while it runs (polled), and afterwards the
#    transition counters and the VIP owner are unchanged;
#  - both daemons stay alive;
#  - packets_invalid grows on both receivers by (nearly) what they were
#    sent, except for the foreign vrid, which is ignored.
# Finally a valid priority-254 advert (vrid 51, good checksum) from the
# same injector does make the master step down, for each family: the
# injector is heard, so the negative results mean something.
# Needs HAMGR_BIN and HAMGR_INJECT (path to vrrp_inject).
# shellcheck disable=SC2317 # small predicates run through wait_until
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_hamgr
require_tool HAMGR_INJECT vrrp_inject

VIP4=10.77.0.10
VIP6=fd77::10
GROUP_N=150     # packets per burst to the group
UNICAST_N=100   # packets per burst to each node

write_conf() {
        local node=$1 prio=$2
        mkdir -p "$HI_TMP/$node.state"
        cat >"$(conf_of "$node")" <<EOF
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
    virtual_ips = [ "$VIP4/24" ];
  },
  {
    name = "wan6";
    interface = "eth0";
    vrid = 51;
    priority = $prio;
    advert_interval_ms = 100;
    virtual_ips = [ "$VIP6/64" ];
  }
);
EOF
}

invalid_at_least() {
        [ "$(inst_field "$1" "$2" .counters.packets_invalid)" -ge "$3" ]
}

# The steady state this test must not disturb.
steady() {
        hamgr_state_is gw1 wan MASTER && hamgr_state_is gw2 wan BACKUP &&
                hamgr_state_is gw1 wan6 MASTER && hamgr_state_is gw2 wan6 BACKUP
}

# transitions: every instance's transition counter, for before/after checks.
transitions() {
        local n i out=""
        for n in gw1 gw2; do
                for i in wan wan6; do
                        out+="$n/$i=$(inst_field "$n" "$i" .counters.transitions) "
                done
        done
        printf '%s' "${out% }"
}

# holds_while PID CMD...: CMD stays true as long as PID runs (and at least
# once after it ended).
holds_while() {
        local pid=$1
        shift
        while hi_pid_alive "$pid"; do
                "$@" >/dev/null 2>&1 || return 1
                sleep 0.05
        done
        "$@" >/dev/null 2>&1
}

lab_start 2
CLIENT4=10.77.0.100
CLIENT_LL=$(link_local client)
GW1_LL=$(link_local gw1)
GW2_LL=$(link_local gw2)
if [ -z "$CLIENT_LL" ] || [ -z "$GW1_LL" ] || [ -z "$GW2_LL" ]; then
        die "missing link-local addresses"
fi

write_conf gw1 150
write_conf gw2 100
hamgr_start gw1 "$(conf_of gw1)"
wait_until 10 hamgr_state_is gw1 wan MASTER || die "gw1 did not become MASTER"
hamgr_start gw2 "$(conf_of gw2)"
wait_until 10 steady || die "no steady state: gw1 $(hamgr_state gw1 wan)/$(hamgr_state gw1 wan6), gw2 $(hamgr_state gw2 wan)/$(hamgr_state gw2 wan6)"
wait_until 3 vip_owner_is "$VIP4" gw1 || true
wait_until 3 vip_owner_is "$VIP6" gw1 || true
assert_eq "$(vip_owner "$VIP4") $(vip_owner "$VIP6")" "gw1 gw1" "setup: gw1 holds both VIPs"
gw1_pid=${HAMGR_PID[gw1]}
gw2_pid=${HAMGR_PID[gw2]}
T0=$(transitions)

# burst FAMILY KIND: one burst of KIND to the group and to each node,
# run in the background on the client while the state is polled.
burst() {
        local fam=$1 kind=$2 args=() src group d1 d2 log
        case $kind in
        ttl64) args=(--mode valid -t 64) ;;
        vrid99) args=(--mode valid -r 99) ;;
        *) args=(--mode "$kind") ;;
        esac
        if [ "$fam" = 4 ]; then
                src=$CLIENT4 group=224.0.0.18 d1=10.77.0.1 d2=10.77.0.2
                args+=(--vip "$VIP4")
        else
                src=$CLIENT_LL group=ff02::12 d1=$GW1_LL d2=$GW2_LL
                args+=(--vip "$VIP6")
        fi
        local inj=("$HAMGR_INJECT" -i eth0 -s "$src" -v 3 -p 254 --interval-cs 10 --gap-ms 1 "${args[@]}")
        log="$HI_TMP/flood-$fam-$kind.log"
        node_spawn client "$log" bash -c '
                "$@" -d "'"$group"'" --count '"$GROUP_N"' &&
                "$@" -d "'"$d1"'" --count '"$UNICAST_N"' &&
                "$@" -d "'"$d2"'" --count '"$UNICAST_N"' && echo FLOOD-OK' inject "${inj[@]}"
        BURST_PID=$HI_LAST_PID
        BURST_LOG=$log
}

total_sent=0
for fam in 4 6; do
        inst=wan
        [ "$fam" = 6 ] && inst=wan6
        kinds=(truncated badsum badver badtype countmismatch zerovrid zerointerval random ttl64 vrid99)
        for kind in "${kinds[@]}"; do
                i1=$(inst_field gw1 "$inst" .counters.packets_invalid)
                i2=$(inst_field gw2 "$inst" .counters.packets_invalid)
                burst "$fam" "$kind"
                if holds_while "$BURST_PID" steady; then
                        pass "IPv$fam $kind: states unchanged during the burst"
                else
                        fail "IPv$fam $kind: state changed: gw1 $(hamgr_state gw1 "$inst") gw2 $(hamgr_state gw2 "$inst")"
                fi
                hi_wait_gone "$BURST_PID" 10 || fail "IPv$fam $kind: injector hangs"
                if ! grep -q FLOOD-OK "$BURST_LOG"; then
                        fail "IPv$fam $kind: injector failed: $(tail -n 3 "$BURST_LOG")"
                        continue
                fi
                total_sent=$((total_sent + GROUP_N + 2 * UNICAST_N))
                assert_true "IPv$fam $kind: gw1 daemon alive" hi_pid_alive "$gw1_pid"
                assert_true "IPv$fam $kind: gw2 daemon alive" hi_pid_alive "$gw2_pid"
                want=$((GROUP_N + UNICAST_N))
                if [ "$kind" = vrid99 ]; then
                        # Another virtual router's adverts: valid, not ours.
                        assert_eq "$(($(inst_field gw1 "$inst" .counters.packets_invalid) - i1)):$(($(inst_field gw2 "$inst" .counters.packets_invalid) - i2))" \
                                0:0 "IPv$fam $kind: not counted as invalid"
                        continue
                fi
                # Give the daemons a moment to drain their sockets.
                wait_until 2 invalid_at_least gw2 "$inst" $((i2 + want)) || true
                for n in gw1 gw2; do
                        before=$i1
                        [ "$n" = gw2 ] && before=$i2
                        got=$(($(inst_field "$n" "$inst" .counters.packets_invalid) - before))
                        # Allow a few losses to a full socket buffer on a busy machine.
                        if [ "$got" -ge $((want * 9 / 10)) ] && [ "$got" -le "$want" ]; then
                                pass "IPv$fam $kind: $n packets_invalid +$got of $want ($(inst_field "$n" "$inst" .last_invalid_reason))"
                        else
                                fail "IPv$fam $kind: $n packets_invalid +$got, want $((want * 9 / 10))..$want"
                        fi
                done
        done
done
hi_log "flood: $total_sent packets"
assert_true "after the flood: steady for another 1 s" holds_for 1 steady
assert_eq "$(transitions)" "$T0" "after the flood: no instance made a transition"
assert_eq "$(vip_owner "$VIP4") $(vip_owner "$VIP6")" "gw1 gw1" "after the flood: gw1 still holds both VIPs"
assert_eq "$(grep -c -- ' -> ' "$(hamgr_log gw2)")" 2 "after the flood: gw2 logged only its two startup transitions"

# ------------------------------------------------- control: a valid advert
for fam in 4 6; do
        if [ "$fam" = 4 ]; then
                inst=wan src=$CLIENT4 group=224.0.0.18 vip=$VIP4
        else
                inst=wan6 src=$CLIENT_LL group=ff02::12 vip=$VIP6
        fi
        node_spawn client "$HI_TMP/valid-$fam.log" "$HAMGR_INJECT" -i eth0 -s "$src" -d "$group" -v 3 -r 51 \
                -p 254 --interval-cs 10 --vip "$vip" --count 20 --gap-ms 100
        vpid=$HI_LAST_PID
        wait_until 3 hamgr_state_is gw1 "$inst" BACKUP || true
        assert_eq "$(hamgr_state gw1 "$inst")" BACKUP "control IPv$fam: a valid priority-254 advert demotes gw1"
        assert_eq "$(inst_field gw1 "$inst" .last_transition.reason)" higher-priority "control IPv$fam: reason"
        assert_eq "$(inst_field gw1 "$inst" .last_master)" "$src" "control IPv$fam: gw1 sees the injector as master"
        assert_eq "$(hamgr_state gw2 "$inst")" BACKUP "control IPv$fam: gw2 stays BACKUP"
        wait_until 2 vip_owner_is "$vip" "" || true
        assert_eq "$(vip_owner "$vip")" "" "control IPv$fam: nobody holds $vip while the injector is master"
        stop_pid "$vpid"
        wait_until 5 hamgr_state_is gw1 "$inst" MASTER || true
        assert_eq "$(hamgr_state gw1 "$inst")" MASTER "control IPv$fam: gw1 MASTER again once the injector stops"
        wait_until 3 vip_owner_is "$vip" gw1 || true
        assert_eq "$(vip_owner "$vip")" gw1 "control IPv$fam: $vip back on gw1"
done

hamgr_stop gw1
hamgr_stop gw2
finish
