#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Failover benchmark: how long a WireGuard client's tunnel is dead when the
# master gateway fails, with hamgr and with the plain keepalived +
# wireguard-go setup, for two failures and two advert intervals. Prints
# figures; it is not a pass/fail test and ctest does not run it. Root.
#
#   managers:  hamgr (HAMGR_BIN, else built into build/bench)
#              keepalived (VIP only; wg0 up on both gateways, same key,
#              same peer, no notify scripts: the usual setup)
#   failures:  crash    master's eth0 down, then kill -9 of the manager
#              graceful SIGTERM to the master's manager
#   intervals: 1000 ms and 100 ms (keepalived: vrrp_version 3,
#              advert_int 1 / 0.1)
#
# The client pings the gateway's tunnel address every 20 ms; one run's
# figure is the time from the failure to the first reply after the outage
# (recovery_ms in bench_lib.sh). Between runs gw1 is made master again and the tunnel
# left to settle. Each (manager, interval) pair runs in its own child
# process with its own lab, so no state leaks from one to the next.
#
# Environment: BENCH_RUNS (5), BENCH_CAP_MS (30000), BENCH_MANAGERS
# ("hamgr keepalived"), BENCH_FAILURES ("crash graceful"), BENCH_INTERVALS
# ("1000 100"), HAMGR_BIN, BENCH_VERBOSE=1 (progress of every run).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench_lib.sh
. "$BENCH_DIR/bench_lib.sh"
SRC_DIR=$BENCH_SRC_DIR
RUNS=${BENCH_RUNS:-5}
CAP_MS=${BENCH_CAP_MS:-30000}
MANAGERS=${BENCH_MANAGERS:-"hamgr keepalived"}
FAILURES=${BENCH_FAILURES:-"crash graceful"}
INTERVALS=${BENCH_INTERVALS:-"1000 100"}
PING_INTERVAL=0.02
VIP=10.77.0.10

say() {
        printf '%s\n' "$*" >&2
}

# ================================================================ a phase ==
# Everything below up to the driver runs in a child: one lab, one manager,
# one advert interval, every failure type, RUNS runs each.

phase_log() {
        if [ "${BENCH_VERBOSE:-0}" = 1 ]; then
                say "  [$PH_MANAGER ${PH_INTERVAL}ms] $*"
        fi
}

# Where the client's tunnel goes: vip, gw1, gw2 (a gateway's own address,
# i.e. the client roamed) or the raw endpoint.
client_via() {
        local ep
        ep=$(wg_peer_endpoint client 2>/dev/null || true)
        case "${ep%:*}" in
        "$VIP") echo vip ;;
        10.77.0.1) echo gw1 ;;
        10.77.0.2) echo gw2 ;;
        *) echo "${ep:-none}" ;;
        esac
}

# ---- hamgr ------------------------------------------------------------------

hamgr_write_conf() {
        local node=$1 prio=$2
        HC_TRACK='' HC_INTERVAL_MS=$PH_INTERVAL HC_NOTIFY_SCRIPT='' \
                HC_INSTANCE_EXTRA='track_checks = ( { check = "wg0"; weight = 0; } );' \
                write_hamgr_conf "$HI_TMP/$node.conf" "$node" "$prio" "$(cat <<EOF
checks = ( { name = "wg0"; type = "wireguard"; interface = "wg0"; interval_ms = 200; rise = 1; fall = 2; } );
wireguard = ( { interface = "wg0"; backend = "uapi"; follow = "wan"; source_address = "$VIP"; } );
EOF
)"
        "$HAMGR_BIN" check -c "$HI_TMP/$node.conf" >/dev/null ||
                die "hamgr check refuses $HI_TMP/$node.conf"
}

follower_phase() {
        hamgr_status "$1" | jq -r '.wireguard[0].phase'
}

follower_phase_is() {
        [ "$(follower_phase "$1" 2>/dev/null)" = "$2" ]
}

# The steady state every run starts from: gw1 master and serving, gw2
# backup and passive (wg0 down), the tunnel answering.
hamgr_steady() {
        wait_until 15 hamgr_state_is gw1 wan MASTER || die "gw1 is not MASTER: $(tail -n 5 "$(hamgr_log gw1)")"
        wait_until 15 hamgr_state_is gw2 wan BACKUP || die "gw2 is not BACKUP"
        wait_until 5 follower_phase_is gw1 active || die "gw1 is not serving tunnels"
        wait_until 5 follower_phase_is gw2 passive || die "gw2 is not passive"
        wait_until 10 tunnel_ping || die "the tunnel does not answer through gw1"
}

hamgr_setup() {
        local g
        for g in gw1 gw2; do
                wg_gateway_setup "$g"
        done
        hamgr_write_conf gw1 150
        hamgr_write_conf gw2 100
        hamgr_start gw1 "$HI_TMP/gw1.conf"
        wait_until 15 hamgr_state_is gw1 wan MASTER || die "gw1 did not become MASTER"
        hamgr_start gw2 "$HI_TMP/gw2.conf"
        wait_until 15 hamgr_state_is gw2 wan BACKUP || die "gw2 did not become BACKUP"
        wg_client_setup "$VIP:$WG_PORT"
        wait_until 10 tunnel_ping || die "no tunnel through gw1"
        # Without replication a gateway knows only the endpoints it saw
        # while master: let each serve the client once, as a pair that has
        # been running for a while has.
        wait_until 10 grep -q "$WG_CLIENT_PUB" "$HI_TMP/gw1.state/wireguard-wg0.endpoints" ||
                die "gw1 did not store the client's endpoint"
        hamgr_stop gw1 TERM
        wait_until 10 hamgr_state_is gw2 wan MASTER || die "gw2 did not take over"
        wait_until 30 tunnel_ping || die "no tunnel through gw2"
        wait_until 10 grep -q "$WG_CLIENT_PUB" "$HI_TMP/gw2.state/wireguard-wg0.endpoints" ||
                die "gw2 did not store the client's endpoint"
        hamgr_start gw1 "$HI_TMP/gw1.conf"
        hamgr_steady
}

hamgr_fail() {
        case $1 in
        crash)
                node_link gw1 eth0 down
                hamgr_stop gw1 KILL
                ;;
        graceful)
                hamgr_stop gw1 TERM
                ;;
        esac
}

hamgr_restore() {
        # After a crash, gw1's wg0 is still up with its old session: start
        # hamgr while eth0 is still down, so that it goes passive (link
        # down, endpoints dropped) before anything can leave, as a rebooted
        # node would; it removes the VIP left on eth0 too.
        hamgr_start gw1 "$HI_TMP/gw1.conf"
        if [ "$1" = crash ]; then
                wait_until 5 wg_link_down gw1 || die "gw1's hamgr did not take wg0 down"
                node_link gw1 eth0 up
        fi
        hamgr_steady
}

# ---- keepalived + wireguard-go ----------------------------------------------

ka_write_conf() {
        local node=$1 prio=$2 adv=1
        [ "$PH_INTERVAL" = 1000 ] || adv=$(awk -v ms="$PH_INTERVAL" 'BEGIN { printf "%g", ms / 1000 }')
        KC_ADVERT_INT=$adv write_keepalived_conf "$HI_TMP/$node.keepalived.conf" "$prio" 3 "$VIP/24"
}

# The harness's reset between runs, not part of the measured setup: a fresh
# wireguard-go on all three nodes (gateways with wg0 up, no endpoint, no
# session), so every run starts from one state: the client's only session
# is with gw1, through the VIP. Stale state is not harmless here: a
# wireguard-go whose last packet went unanswered retries the handshake ~15 s
# later from the node's own address (the VIP may have moved away), and even
# a plain wg0 down/up on a gateway made it initiate at once from its own
# address; either way the client roams to that address and the VIP no
# longer carries its tunnel.
ka_reset_sessions() {
        local g
        for g in gw1 gw2 client; do
                wg_go_stop "$g"
        done
        for g in gw1 gw2; do
                wg_gateway_setup "$g"
                node_exec "$g" ip link set wg0 up
        done
        wg_client_setup "$VIP:$WG_PORT"
}

ka_steady() {
        wait_until 15 vip_owner_is "$VIP" gw1 || die "gw1 does not hold the VIP alone (holders: $(vip_owner "$VIP"))"
        ka_reset_sessions
        wait_until 10 tunnel_ping || die "the tunnel does not answer through gw1"
}

ka_setup() {
        ka_write_conf gw1 150
        ka_write_conf gw2 100
        keepalived_start gw1 "$HI_TMP/gw1.keepalived.conf"
        wait_until 15 vip_owner_is "$VIP" gw1 || die "gw1 did not take the VIP"
        keepalived_start gw2 "$HI_TMP/gw2.keepalived.conf"
        wait_until 10 grep -q "Entering BACKUP STATE" "$(keepalived_log gw2)" || die "gw2's keepalived is not BACKUP"
        ka_steady
}

ka_fail() {
        case $1 in
        crash)
                node_link gw1 eth0 down
                keepalived_crash gw1
                ;;
        graceful)
                keepalived_stop gw1
                ;;
        esac
}

ka_restore() {
        if [ "$1" = crash ]; then
                # A crashed keepalived leaves the VIP; the node comes back
                # without it, and without its old WireGuard state.
                node_exec gw1 ip addr del "$VIP/24" dev eth0 2>/dev/null || true
                wg_go_stop gw1
                node_link gw1 eth0 up
        fi
        keepalived_start gw1 "$HI_TMP/gw1.keepalived.conf"
        ka_steady
}

# ---- the measurement ----------------------------------------------------------

# measure FAILURE RUN: one failure of gw1; appends a result line.
measure() {
        local failure=$1 run=$2 log t0 ms="" now via_before via deadline
        log=$HI_TMP/ping.$failure.$run.log
        holds_for 1 tunnel_ping || die "the tunnel is not steady before the run"
        via_before=$(client_via)
        node_spawn client "$log" ping -D -n -i "$PING_INTERVAL" -W 1 "$WG_GW_TUN"
        local ping_pid=$HI_LAST_PID
        wait_until 5 grep -q "bytes from" "$log" || die "no ping replies before the failure"
        sleep 0.2
        t0=$(hi_now_ms)
        "${PH_FN}_fail" "$failure"
        deadline=$((t0 + CAP_MS + 500))
        while true; do
                if ms=$(recovery_ms "$log" "$t0"); then
                        break
                fi
                now=$(hi_now_ms)
                if [ "$now" -ge "$deadline" ]; then
                        ms=""
                        break
                fi
                sleep 0.1
        done
        via=$(client_via)
        stop_pid "$ping_pid" INT
        # Recompute with every line flushed.
        [ -z "$ms" ] || ms=$(recovery_ms "$log" "$t0") || ms=""
        [ "$ms" != nogap ] || ms=0
        if [ -z "$ms" ] || [ "$ms" -gt "$CAP_MS" ]; then
                ms=cap
                via=none
        fi
        phase_log "$failure run $run: $ms ms (client endpoint before: $via_before, after: $via)"
        printf '%s %s %s %s %s %s\n' "$PH_MANAGER" "$failure" "$PH_INTERVAL" "$run" "$ms" "$via_before>$via" >>"$PH_RESULTS"
        "${PH_FN}_restore" "$failure"
}

phase_main() {
        PH_MANAGER=$1
        PH_INTERVAL=$2
        PH_RESULTS=$3
        # shellcheck source=../integration/lib.sh
        . "$SRC_DIR/tests/integration/lib.sh"
        # shellcheck source=../integration/wg_lab.sh
        . "$SRC_DIR/tests/integration/wg_lab.sh"
        require_root
        require_cmd wireguard-go wg jq ping
        case $PH_MANAGER in
        hamgr)
                [ -n "${HAMGR_BIN:-}" ] || die "HAMGR_BIN is not set"
                PH_FN=hamgr
                ;;
        keepalived)
                require_cmd keepalived
                PH_FN=ka
                ;;
        *)
                die "unknown manager $PH_MANAGER"
                ;;
        esac
        lab_create 2
        wg_keys
        "${PH_FN}_setup"
        local failure run
        for failure in $FAILURES; do
                for ((run = 1; run <= RUNS; run++)); do
                        measure "$failure" "$run"
                done
        done
        HI_FINISHED=1
        exit 0
}

# =============================================================== driver ==

estimate_s() {
        local m f iv per total=0 iv_s
        for m in $MANAGERS; do
                for iv in $INTERVALS; do
                        iv_s=$(((iv + 999) / 1000))
                        total=$((total + 15 + 10 * iv_s))
                        for f in $FAILURES; do
                                if [ "$m" = hamgr ]; then
                                        per=$((4 + 6 * iv / 1000))
                                else
                                        per=$((17 + 4 * iv / 1000))
                                fi
                                total=$((total + RUNS * per))
                        done
                done
        done
        echo "$total"
}

# median/min/max of the numbers on stdin ("cap" sorts last).
summarize() {
        sed "s/^cap$/999999999/" | sort -n | awk -v cap="$CAP_MS" '
        { v[NR] = $1 }
        END {
                if (NR == 0) { print "-", "-", "-"; exit }
                if (NR % 2) med = v[(NR + 1) / 2]
                else med = int((v[NR / 2] + v[NR / 2 + 1]) / 2)
                for (i = 1; i <= 3; i++) {
                        x = i == 1 ? med : i == 2 ? v[1] : v[NR]
                        s[i] = x >= 999999999 || (i == 1 && NR % 2 == 0 && v[NR / 2 + 1] >= 999999999) ? ">" cap : x
                }
                print s[1], s[2], s[3]
        }'
}

driver_main() {
        if [ "$(id -u)" -ne 0 ]; then
                say "bench_failover: needs root (network namespaces)"
                exit 1
        fi
        if [[ " $MANAGERS " == *" hamgr "* ]]; then
                bench_hamgr_bin
        fi
        export HAMGR_BIN HAMGR_SOURCE_DIR=$SRC_DIR
        local est tmp m iv f status=0
        est=$(estimate_s)
        say "== failover benchmark: managers [$MANAGERS], failures [$FAILURES], intervals [$INTERVALS] ms, $RUNS runs each"
        say "== estimated time: about $(((est + 59) / 60)) min"
        tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-failover.XXXXXX")
        # shellcheck disable=SC2064 # expand now
        trap "rm -rf -- '$tmp'" EXIT
        local started
        started=$(date +%s)
        for m in $MANAGERS; do
                for iv in $INTERVALS; do
                        say "-- $m, advert interval $iv ms"
                        # The child dies with us (its trap then removes its lab).
                        if ! setpriv --pdeathsig TERM bash "${BASH_SOURCE[0]}" --phase "$m" "$iv" "$tmp/results" \
                                >"$tmp/$m.$iv.out" 2>&1; then
                                status=1
                                say "   phase $m/$iv failed; its output:"
                                tail -n 40 "$tmp/$m.$iv.out" >&2
                        elif [ "${BENCH_VERBOSE:-0}" = 1 ]; then
                                grep '^  \[' "$tmp/$m.$iv.out" >&2 || true
                        fi
                done
        done
        touch "$tmp/results"
        echo
        echo "Failover benchmark: time from the failure to the first reply through the tunnel"
        echo "(client pings 10.99.0.1 every 20 ms; $RUNS runs; ms; \">$CAP_MS\": not back within the cap)"
        echo
        echo "| manager | failure | advert interval | median ms | min ms | max ms | client endpoint after (runs) |"
        echo "|---|---|---|---:|---:|---:|---|"
        for m in $MANAGERS; do
                for f in $FAILURES; do
                        for iv in $INTERVALS; do
                                local vals via name
                                vals=$(awk -v m="$m" -v f="$f" -v iv="$iv" '$1 == m && $2 == f && $3 == iv { print $5 }' "$tmp/results")
                                via=$(awk -v m="$m" -v f="$f" -v iv="$iv" '$1 == m && $2 == f && $3 == iv { split($6, a, ">"); n[a[2]]++ }
                                        END { for (k in n) printf "%s%s %d", (s++ ? ", " : ""), k, n[k] }' "$tmp/results")
                                name=$m
                                [ "$m" != keepalived ] || name="keepalived + wireguard-go"
                                read -r med min max <<<"$(printf '%s\n' "$vals" | grep . | summarize)"
                                echo "| $name | $f | $iv ms | $med | $min | $max | ${via:--} |"
                        done
                done
        done
        echo
        echo "Runs (manager failure interval run ms client-endpoint-before>after):"
        sed 's/^/  /' "$tmp/results"
        echo
        echo "Total time: $(($(date +%s) - started)) s"
        return "$status"
}

if [ "${1:-}" = --phase ]; then
        phase_main "$2" "$3" "$4"
fi
driver_main
