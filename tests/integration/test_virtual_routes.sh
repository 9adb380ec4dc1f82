#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# virtual_routes follow the MASTER. Two gateways (gw1 150, gw2 100), one
# instance on eth0 with the VIPs 10.77.0.10/24 and 10.79.0.10/24 and these
# routes (the client, 10.77.0.100, is the next hop and answers for the
# destinations on its lo):
#   10.200.0.0/16 via the client, src the VIP (needs the VIP first)
#   10.205.0.0/16 via 10.66.0.1: unreachable, must fail alone
#   10.201.0.0/16 via the client in table 100 (a rule sends it there)
#   0.0.0.0/0 via the client, metric 50
#   10.203.0.0/16 via 10.79.0.1: on-link only through the second VIP
#   blackhole 10.206.0.0/16
#   fd99::/48 via fd77::100
# Checked: present on the master only (ip route show), status --json, the
# failing route logged with its netlink error and the rest installed;
# routes left on the backup by a crashed run removed at its start; a crash
# of the master moves them; the crashed master restarted over its leftover
# routes preempts and they work; a reload changes them in place without a
# transition; a failed route is added when its gateway becomes reachable or
# its device comes up; SIGTERM removes them; routes added by hand (proto
# boot) are never removed, an identical one counts as installed, one in the
# way is reported.
# shellcheck disable=SC2317 # small predicates run through wait_until
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_hamgr
require_cmd ping

VIP=10.77.0.10
CLIENT=10.77.0.100
ROUTES='virtual_routes = (
      { to = "10.200.0.0/16"; via = "10.77.0.100"; src = "10.77.0.10"; },
      { to = "10.205.0.0/16"; via = "10.66.0.1"; },
      { to = "10.201.0.0/16"; via = "10.77.0.100"; table = 100; },
      { to = "0.0.0.0/0"; via = "10.77.0.100"; metric = 50; },
      { to = "10.203.0.0/16"; via = "10.79.0.1"; },
      { to = "10.206.0.0/16"; type = "blackhole"; },
      { to = "fd99::/48"; via = "fd77::100"; }
    );'

# route_show NODE ARGS...: ip route show ARGS in NODE (-6 for an IPv6 prefix).
route_show() {
        local node=$1
        shift
        ip -n "$(ns_of "$node")" route show "$@"
}

# The routes as configured (the unreachable one never exists), one check each.
r_src()   { route_show "$1" exact 10.200.0.0/16 | grep -q "via $CLIENT dev eth0 proto static src $VIP"; }
r_table() { route_show "$1" table 100 exact 10.201.0.0/16 | grep -q "via $CLIENT dev eth0 proto static"; }
r_deflt() { route_show "$1" exact 0.0.0.0/0 | grep -q "default via $CLIENT dev eth0 proto static metric 50"; }
r_vipgw() { route_show "$1" exact 10.203.0.0/16 | grep -q "via 10.79.0.1 dev eth0 proto static"; }
r_black() { route_show "$1" exact 10.206.0.0/16 | grep -q "blackhole 10.206.0.0/16 proto static"; }
r_ipv6()  { ip -n "$(ns_of "$1")" -6 route show exact fd99::/48 | grep -q "via fd77::100 dev eth0 proto static metric 1024"; }
ROUTE_CHECKS=(r_src r_table r_deflt r_vipgw r_black r_ipv6)

# routes_on NODE: how many of the routes NODE has.
routes_on() {
        local n=0 c
        for c in "${ROUTE_CHECKS[@]}"; do
                if "$c" "$1"; then
                        n=$((n + 1))
                fi
        done
        echo "$n"
}

all_routes_on() { [ "$(routes_on "$1")" = "${#ROUTE_CHECKS[@]}" ]; }
no_routes_on()  { [ "$(routes_on "$1")" = 0 ]; }
# Any route to 10.205/16 at all (the failing one must not appear).
unreachable_absent() { [ -z "$(route_show "$1" exact 10.205.0.0/16)" ]; }

# only_master NODE OTHER: NODE MASTER with every route, OTHER without any.
only_master() {
        hamgr_state_is "$1" wan MASTER && all_routes_on "$1" && no_routes_on "$2"
}

# Traffic through the routes from NODE: each one's destination answers.
routes_work() {
        local node=$1
        node_exec "$node" ping -c 1 -W 1 10.200.0.1 >/dev/null 2>&1 &&
                node_exec "$node" ping -c 1 -W 1 10.201.0.1 >/dev/null 2>&1 &&
                node_exec "$node" ping -c 1 -W 1 10.250.0.1 >/dev/null 2>&1 &&
                node_exec "$node" ping -c 1 -W 1 fd99::1 >/dev/null 2>&1
}

# leave_as_crashed NODE: what a crashed master leaves: its VIPs and routes.
leave_as_crashed() {
        local ns
        ns=$(ns_of "$1")
        ip -n "$ns" addr add "$VIP/24" dev eth0
        ip -n "$ns" addr add 10.79.0.10/24 dev eth0
        ip -n "$ns" route add 10.200.0.0/16 via "$CLIENT" dev eth0 src "$VIP" proto static
        ip -n "$ns" route add 10.201.0.0/16 via "$CLIENT" dev eth0 table 100 proto static
        ip -n "$ns" route add default via "$CLIENT" dev eth0 metric 50 proto static
        ip -n "$ns" route add 10.203.0.0/16 via 10.79.0.1 dev eth0 proto static
        ip -n "$ns" route add blackhole 10.206.0.0/16 proto static
        ip -n "$ns" -6 route add fd99::/48 via fd77::100 dev eth0 metric 1024 proto static
}

write_confs() {
        local routes=$1
        for g in gw1 gw2; do
                local prio=150
                [ "$g" = gw2 ] && prio=100
                HC_VIPS='"10.77.0.10/24", "10.79.0.10/24"' HC_INSTANCE_EXTRA="$routes" \
                        write_hamgr_conf "$(conf_of "$g")" "$g" "$prio"
        done
}

lab_start 2
ns_client=$(ns_of client)
for a in 10.200.0.1 10.201.0.1 10.250.0.1; do
        ip -n "$ns_client" addr add "$a/32" dev lo
done
ip -n "$ns_client" -6 addr add fd99::1/128 dev lo
for g in gw1 gw2; do
        ip -n "$(ns_of "$g")" rule add to 10.201.0.0/16 lookup 100 pref 100
done

write_confs "$ROUTES"
assert_true "config: hamgr check accepts it" node_exec gw1 "$HAMGR_BIN" check -c "$(conf_of gw1)"

# ---- the backup starts over what a crashed run left
leave_as_crashed gw2
assert_eq "$(routes_on gw2)" "${#ROUTE_CHECKS[@]}" "setup: gw2 holds the crashed run's routes"
hamgr_start gw1 "$(conf_of gw1)"
wait_until 10 hamgr_state_is gw1 wan MASTER || die "gw1 did not become MASTER"
hamgr_start gw2 "$(conf_of gw2)"
wait_until 10 hamgr_state_is gw2 wan BACKUP || die "gw2 did not become BACKUP"
assert_true "start: gw1 MASTER with every route, gw2 none" wait_until 5 only_master gw1 gw2
assert_true "start: gw2 lost the crashed run's VIP" wait_until 3 vip_owner_is "$VIP" gw1
assert_eq "$(hamgr_log_count gw2 "removed virtual route")" 6 \
        "start: gw2 logged its 6 stale routes removed"
# The kernel's prefix route of the stale 10.79.0.10/24 (alone in its subnet)
# goes with it: not given another source and so left behind.
no_stale_subnet_route() { [ -z "$(route_show gw2 exact 10.79.0.0/24)" ]; }
assert_true "start: gw2 has no route left for the stale VIP's subnet" wait_until 3 no_stale_subnet_route
assert_eq "$(hamgr_log_count gw2 "as source, left by a previous run")" 0 \
        "start: gw2 gave no route of its stale VIPs another source"
assert_true "start: no route to 10.205/16 on gw1" unreachable_absent gw1
assert_contains "$(cat "$(hamgr_log gw1)")" \
        "cannot add virtual route 10.205.0.0/16 via 10.66.0.1 dev eth0 metric 0: Network is unreachable" \
        "start: the failing route logged with its error"
st=$(hamgr_status gw1)
assert_eq "$(jq -c '[.instances[0].virtual_routes[] | .installed]' <<<"$st")" \
        '[true,false,true,true,true,true,true]' "status: installed per route"
assert_eq "$(jq -r '.instances[0].virtual_routes[1].error' <<<"$st")" "Network is unreachable" "status: error"
assert_eq "$(jq -c '.instances[0].virtual_routes[2] | [.to, .via, .dev, .table, .metric, .type]' <<<"$st")" \
        '["10.201.0.0/16","10.77.0.100","eth0",100,0,"unicast"]' "status: route fields"
assert_eq "$(jq -c '.instances[0].virtual_routes[5] | [.dev, .via, .type]' <<<"$st")" \
        '[null,null,"blackhole"]' "status: blackhole fields"
assert_eq "$(jq -c '[.instances[0].virtual_routes[] | .installed] | any' <<<"$(hamgr_status gw2)")" false \
        "status: nothing installed on the backup"
assert_true "start: traffic through gw1's routes" routes_work gw1
ping_quiet() { node_exec "$1" ping -c 1 -W 1 "$2" >/dev/null 2>&1; }
assert_false "start: no such traffic from gw2" ping_quiet gw2 10.200.0.1

# ---- reload: routes change in place
trans=$(inst_field gw1 wan .counters.transitions)
write_confs 'virtual_routes = (
      { to = "10.200.0.0/16"; via = "10.77.0.100"; src = "10.77.0.10"; },
      { to = "10.201.0.0/16"; via = "10.77.0.100"; table = 100; },
      { to = "0.0.0.0/0"; via = "10.77.0.100"; metric = 60; },
      { to = "10.207.0.0/16"; via = "10.77.0.100"; }
    );'
kill -s HUP "${HAMGR_PID[gw1]}"
r_new() { route_show "$1" exact 10.207.0.0/16 | grep -q "via $CLIENT dev eth0 proto static"; }
r_metric60() { route_show "$1" exact 0.0.0.0/0 | grep -q "default via $CLIENT dev eth0 proto static metric 60"; }
assert_true "reload: new route added" wait_until 5 r_new gw1
assert_true "reload: changed metric applied" wait_until 3 r_metric60 gw1
assert_false "reload: old metric gone" r_deflt gw1
assert_false "reload: dropped blackhole gone" r_black gw1
assert_false "reload: dropped IPv6 route gone" r_ipv6 gw1
assert_false "reload: dropped VIP-gateway route gone" r_vipgw gw1
assert_true "reload: unchanged route kept" r_src gw1
assert_true "reload: unchanged table-100 route kept" r_table gw1
assert_eq "$(inst_field gw1 wan .state)" MASTER "reload: still MASTER"
assert_eq "$(inst_field gw1 wan .counters.transitions)" "$trans" "reload: no transition"
assert_eq "$(inst_field gw1 wan '[.virtual_routes[] | .installed] | all')" true "reload: status all installed"
# Back to the first set for the rest.
write_confs "$ROUTES"
kill -s HUP "${HAMGR_PID[gw1]}"
assert_true "reload back: every route again" wait_until 5 all_routes_on gw1
assert_true "reload back: extra route gone" wait_until 3 bash -c "! ip -n $(ns_of gw1) route show exact 10.207.0.0/16 | grep -q ."

# ---- the master crashes (kill -9, link up): the routes move
hamgr_stop gw1 KILL
assert_true "crash: gw2 MASTER with every route" wait_until 10 all_routes_on gw2
assert_true "crash: gw2 reports MASTER" hamgr_state_is gw2 wan MASTER
assert_true "crash: traffic through gw2's routes" routes_work gw2
assert_eq "$(routes_on gw1)" "${#ROUTE_CHECKS[@]}" "crash: the dead gw1 still holds its routes"

# ---- gw1 restarted over its leftovers: removed, then preempts and adds them
: >"$(hamgr_log gw1)"
hamgr_start gw1 "$(conf_of gw1)"
assert_true "restart: gw1 MASTER with every route, gw2 none" wait_until 10 only_master gw1 gw2
assert_eq "$(inst_field gw1 wan .last_transition.reason)" preempt "restart: gw1 preempted"
assert_eq "$(hamgr_log_count gw1 "removed virtual route")" 6 "restart: gw1 removed its 6 leftover routes first"
assert_true "restart: traffic through gw1's routes" routes_work gw1
assert_true "restart: gw1 keeps them, gw2 stays clean, for 1 s" holds_for 1 only_master gw1 gw2

# ---- failed routes are retried on link and address changes
r_late() { route_show "$1" exact 10.205.0.0/16 | grep -q "via 10.66.0.1 dev eth0 proto static"; }
assert_eq "$(inst_field gw1 wan '.virtual_routes[1].installed')" false "retry: 10.205/16 failed on gw1"
ip -n "$(ns_of gw1)" addr add 10.66.0.5/24 dev eth0
assert_true "retry: added once its gateway is on a connected network" wait_until 5 r_late gw1
assert_true "retry: status installed" wait_until 3 inst_field_is gw1 wan '.virtual_routes[1].installed' true
assert_eq "$(inst_field gw1 wan '.virtual_routes[1].error')" null "retry: error cleared"
assert_contains "$(cat "$(hamgr_log gw1)")" \
        "added virtual route 10.205.0.0/16 via 10.66.0.1 dev eth0 metric 0, which had failed" "retry: logged"
# A device that comes up after the VIPs, as a followed WireGuard interface
# does late in a takeover: a reload adds a route through tun0, still down.
ip -n "$(ns_of gw1)" link add tun0 type veth peer name tun0p
r_tun() { route_show "$1" exact 10.208.0.0/16 | grep -q "dev tun0 proto static"; }
write_confs "${ROUTES%);}"', { to = "10.208.0.0/16"; dev = "tun0"; } );'
kill -s HUP "${HAMGR_PID[gw1]}"
assert_true "late device: the route failed while tun0 is down" \
        wait_until 5 inst_field_is gw1 wan '.virtual_routes[7].error' "Network is down"
assert_false "late device: no route yet" r_tun gw1
ip -n "$(ns_of gw1)" link set tun0 up
assert_true "late device: added when tun0 came up" wait_until 5 r_tun gw1
assert_true "late device: status installed" wait_until 3 inst_field_is gw1 wan '.virtual_routes[7].installed' true
assert_eq "$(hamgr_log_count gw1 "cannot add virtual route 10.208.0.0/16 dev tun0")" 1 \
        "late device: the failure logged once, not at every link event"

# ---- graceful stop: SIGTERM removes them, gw2 takes them
hamgr_stop gw1
assert_eq "$(routes_on gw1)" 0 "SIGTERM: gw1 removed every route"
assert_true "SIGTERM: gw1 removed the retried ones too" unreachable_absent gw1
assert_false "SIGTERM: gw1 removed the tun0 route" r_tun gw1
assert_false "SIGTERM: gw1 removed its VIP" vip_on gw1 "$VIP"
assert_true "SIGTERM: gw2 MASTER with every route" wait_until 10 all_routes_on gw2
hamgr_stop gw2
assert_eq "$(routes_on gw2)" 0 "SIGTERM: gw2 removed every route"
assert_true "SIGTERM: the rule's table 100 is empty again" \
        test -z "$(route_show gw2 table 100)"

# ---- routes added by hand are not hamgr's: kept at start and on release
ns2=$(ns_of gw2)
ip -n "$ns2" route add 10.201.0.0/16 via "$CLIENT" dev eth0 table 100         # as configured
ip -n "$ns2" route add default via 10.77.0.3 dev eth0 metric 50               # in the way
# Each there, and with ip's default protocol (boot, which "ip route show" does not print).
hand_route() {
        local out
        out=$(route_show gw2 "${@:2}")
        [[ "$out" == *"$1"* ]] && [[ "$out" != *proto* ]]
}
hand_routes_there() {
        hand_route "10.201.0.0/16 via $CLIENT dev eth0" table 100 exact 10.201.0.0/16 &&
                hand_route "default via 10.77.0.3 dev eth0 metric 50" exact 0.0.0.0/0
}
: >"$(hamgr_log gw2)"
hamgr_start gw2 "$(conf_of gw2)"
wait_until 10 hamgr_state_is gw2 wan MASTER || die "gw2 alone did not become MASTER"
assert_true "by hand: gw2 MASTER, its other routes in" wait_until 3 r_src gw2
assert_eq "$(hamgr_log_count gw2 "left by a previous run")" 0 "by hand: nothing taken for a leftover"
assert_true "by hand: both routes untouched" hand_routes_there
st=$(hamgr_status gw2)
assert_eq "$(jq -c '.instances[0].virtual_routes[2] | [.installed, .error]' <<<"$st")" '[true,null]' \
        "by hand: the identical route counts as installed"
assert_eq "$(jq -c '.instances[0].virtual_routes[3] | [.installed, .error]' <<<"$st")" \
        '[false,"a different route holds its destination, table and metric"]' "by hand: the one in the way is an error"
assert_contains "$(cat "$(hamgr_log gw2)")" \
        "cannot add virtual route 0.0.0.0/0 via 10.77.0.100 dev eth0 metric 50: a different route with this destination, table and metric is in place" \
        "by hand: logged"
hamgr_stop gw2
assert_true "by hand: both still there after SIGTERM" hand_routes_there
assert_false "by hand: hamgr's own routes gone" r_src gw2

finish
