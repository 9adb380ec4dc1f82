#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Misconfigurations that would make two masters are visible. Two hamgr
# gateways (gw1 priority 150 MASTER, gw2 100 BACKUP) run four instances:
#   wan   IPv4 v3 vrid 51 multicast, 100 ms
#   wan6  IPv6 v3 vrid 51 multicast, 100 ms
#   old   IPv4 v2 vrid 52 multicast, 1 s
#   uc    IPv4 v3 vrid 53 unicast (the two gateways are each other's peer)
# From the client, vrrp_inject sends a burst of priority-254 adverts of
# each misconfiguration:
#   version           v2 adverts for vrid 51 (wan speaks v3)
#   ttl               v3 adverts for vrid 51 with TTL 64
#   checksum          v3 adverts for vrid 51 with a broken checksum
#   interval          v2 adverts for vrid 52 saying 2 s (old says 1 s)
#   auth              v2 adverts for vrid 52 with authentication type 2 (IP
#                     AH), which the log line names, then with a simple
#                     password (old has no auth_pass): twice the burst
#   source            unicast v3 adverts for vrid 53 from the client, which
#                     is not in unicast_peers, to each gateway
#   address_conflict  IPv6 adverts for vrid 51 from gw1's own link-local
#                     address (another node using our address), priority 150
# For each burst, on each receiver:
#  - the instance's drops.<cause> in status --json grows by (nearly) the
#    burst and no other cause of any instance moves;
#  - the log has exactly one WARNING line for that instance and cause,
#    also after a second burst of the same kind (rate limit: one a minute);
#  - no instance changes state;
# and the text status shows the counters in a "dropped adverts" line.
# Needs HAMGR_BIN and HAMGR_INJECT (path to vrrp_inject).
# shellcheck disable=SC2317 # small predicates run through wait_until
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_hamgr
require_tool HAMGR_INJECT vrrp_inject

BURST=40
CAUSES=(version interval source ttl checksum address_conflict auth)
INSTANCES=(wan wan6 old uc)

write_conf() {
        local node=$1 prio=$2 peer=$3
        mkdir -p "$HI_TMP/$node.state"
        cat >"$(conf_of "$node")" <<CONF
node = {
    name = "$node";
    state_dir = "$HI_TMP/$node.state";
};
vrrp = (
  { name = "wan"; interface = "eth0"; vrid = 51; priority = $prio;
    advert_interval_ms = 100; virtual_ips = [ "10.77.0.10/24" ]; },
  { name = "wan6"; interface = "eth0"; vrid = 51; priority = $prio;
    advert_interval_ms = 100; virtual_ips = [ "fd77::10/64" ]; },
  { name = "old"; interface = "eth0"; vrid = 52; priority = $prio; version = 2;
    advert_interval_ms = 1000; virtual_ips = [ "10.77.0.20/24" ]; },
  { name = "uc"; interface = "eth0"; vrid = 53; priority = $prio;
    advert_interval_ms = 100; virtual_ips = [ "10.77.0.30/24" ];
    unicast_peers = [ "$peer" ]; }
);
CONF
}

steady() {
        local i
        for i in "${INSTANCES[@]}"; do
                hamgr_state_is gw1 "$i" MASTER && hamgr_state_is gw2 "$i" BACKUP || return 1
        done
}

# all_drops NODE: "inst.cause=N ..." for every instance and cause.
all_drops() {
        hamgr_status "$1" | jq -r '.instances[] | .name as $n | .drops | to_entries[] | "\($n).\(.key)=\(.value)"' |
                tr '\n' ' '
}

# warnings NODE INSTANCE CAUSE: WARNING lines for that instance and cause.
warnings() {
        grep -F -- "warning: $2: dropped advertisement from " "$(hamgr_log "$1")" | grep -cF -- "($3)" || true
}

drop_at_least() {
        [ "$(inst_field "$1" "$2" ".drops.$3")" -ge "$4" ]
}

inject() {
        node_exec client "$HAMGR_INJECT" -q -i eth0 -p 254 --count "$BURST" --gap-ms 5 "$@"
}

# burst CAUSE: one burst of that misconfiguration.
burst() {
        case $1 in
        version) inject -s 10.77.0.100 -d 224.0.0.18 -v 2 -r 51 --interval-cs 100 --vip 10.77.0.10 ;;
        ttl) inject -s 10.77.0.100 -d 224.0.0.18 -v 3 -r 51 --interval-cs 10 -t 64 --vip 10.77.0.10 ;;
        checksum) inject -s 10.77.0.100 -d 224.0.0.18 -v 3 -r 51 --interval-cs 10 --mode badsum --vip 10.77.0.10 ;;
        interval) inject -s 10.77.0.100 -d 224.0.0.18 -v 2 -r 52 --interval-cs 200 --vip 10.77.0.20 ;;
        auth)
                # AH first: the one WARNING line of the minute is then its own.
                inject -s 10.77.0.100 -d 224.0.0.18 -v 2 -r 52 --interval-cs 100 --mode ah --vip 10.77.0.20
                inject -s 10.77.0.100 -d 224.0.0.18 -v 2 -r 52 --interval-cs 100 --auth-pass secret --vip 10.77.0.20
                ;;
        source)
                inject -s 10.77.0.100 -d 10.77.0.1 -v 3 -r 53 --interval-cs 10 --vip 10.77.0.30
                inject -s 10.77.0.100 -d 10.77.0.2 -v 3 -r 53 --interval-cs 10 --vip 10.77.0.30
                ;;
        address_conflict)
                node_exec client "$HAMGR_INJECT" -q -i eth0 -p 150 --count "$BURST" --gap-ms 5 \
                        -s "$GW1_LL" -d ff02::12 -v 3 -r 51 --interval-cs 10 --vip fd77::10
                ;;
        esac
}

# Where each cause shows: "NODE:INSTANCE ...".
receivers() {
        case $1 in
        version | ttl | checksum) echo "gw1:wan gw2:wan" ;;
        interval | auth) echo "gw1:old gw2:old" ;;
        source) echo "gw1:uc gw2:uc" ;;
        # gw2 takes gw1's address for gw1's: only gw1 can tell.
        address_conflict) echo "gw1:wan6" ;;
        esac
}

lab_start 2
GW1_LL=$(link_local gw1)
[ -n "$GW1_LL" ] || die "gw1 has no link-local address"
write_conf gw1 150 10.77.0.2
write_conf gw2 100 10.77.0.1
hamgr_start gw1 "$(conf_of gw1)"
hamgr_start gw2 "$(conf_of gw2)"
wait_until 15 steady || die "no steady state"
pass "setup: gw1 MASTER and gw2 BACKUP on all four instances"
for n in gw1 gw2; do
        zero=$(all_drops "$n")
        assert_eq "$(printf '%s' "$zero" | tr ' ' '\n' | grep -vc '=0$' || true)" 0 "setup: $n counts no drops ($zero)"
        assert_eq "$(hamgr_log_count "$n" "dropped advertisement")" 0 "setup: $n logged no drop"
done

for cause in "${CAUSES[@]}"; do
        before1=$(all_drops gw1)
        before2=$(all_drops gw2)
        for round in 1 2; do
                burst "$cause"
                assert_true "$cause burst $round: all instances keep their state" steady
        done
        want=$((2 * BURST))
        [ "$cause" != auth ] || want=$((4 * BURST))
        for r in $(receivers "$cause"); do
                n=${r%%:*} i=${r#*:}
                before=$before1
                [ "$n" = gw2 ] && before=$before2
                old=$(printf '%s' "$before" | tr ' ' '\n' | grep "^$i.$cause=" | cut -d= -f2)
                wait_until 2 drop_at_least "$n" "$i" "$cause" $((old + want)) || true
                got=$(($(inst_field "$n" "$i" ".drops.$cause") - old))
                # A few may be lost to a full socket buffer on a busy machine.
                if [ "$got" -ge $((want * 9 / 10)) ] && [ "$got" -le "$want" ]; then
                        pass "$cause: $n $i drops.$cause +$got of $want"
                else
                        fail "$cause: $n $i drops.$cause +$got, want $((want * 9 / 10))..$want"
                fi
                assert_eq "$(warnings "$n" "$i" "$cause")" 1 "$cause: $n logged one WARNING line for $i over two bursts"
                if [ "$cause" = auth ]; then
                        assert_eq "$(hamgr_log_count "$n" "authentication type 2 (IP AH) is not supported")" 1 \
                                "auth: $n says that AH is not supported"
                fi
        done
        # Nothing else moved: every other counter of every instance is as before.
        for n in gw1 gw2; do
                before=$before1
                [ "$n" = gw2 ] && before=$before2
                changed=$({ diff <(printf '%s' "$before" | tr ' ' '\n') <(all_drops "$n" | tr ' ' '\n') || true; } |
                        sed -n 's/^> //p' | cut -d= -f1 | tr '\n' ' ')
                expect=""
                for r in $(receivers "$cause"); do
                        [ "${r%%:*}" = "$n" ] && expect+="${r#*:}.$cause "
                done
                assert_eq "$changed" "$expect" "$cause: on $n only the expected counter moved"
        done
done

assert_eq "$(hamgr_log_count gw1 ' -> ')" 8 "gw1 logged only its startup transitions (INIT -> BACKUP -> MASTER, four instances)"
assert_eq "$(hamgr_log_count gw2 ' -> ')" 4 "gw2 logged only its four startup transitions"
text=$(node_exec gw1 "$HAMGR_BIN" status)
assert_contains "$text" "dropped adverts: version $((2 * BURST))" "text status: the wan line"
assert_contains "$text" "address_conflict" "text status: the wan6 line"
hi_log "$text"

hamgr_stop gw1
hamgr_stop gw2
finish
