#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Chaos run for a gateway pair: the lab of test_wg_takeover.sh (gw1 priority
# 150, gw2 100, preempt, wireguard-go per node, a wg0 check that faults the
# instance) with a client pinging the gateway's tunnel address through the
# VIP. For a bounded time, faults are injected at random (seeded) moments:
#
#   kill9      kill -9 of hamgr; healed by starting it again
#   sigstop    SIGSTOP of hamgr, sometimes shorter than Master_Down; SIGCONT
#   linkdown   eth0 down; up again
#   vrrp1way   VRRP from one gateway to the other dropped on the switch
#              (nftables, bridge family), the other way untouched; rule removed
#   wgrestart  wireguard-go killed; restarted and configured again the way
#              wg-quick would (key, port, peer, address): hamgr brings the
#              link up when it is master, nothing re-creates the config
#   restart    hamgr stopped with SIGTERM (must exit 0) and started again
#
# After each heal the invariants are checked:
#   - exactly one MASTER (and the VIP on it alone) within SETTLE_S, and it
#     is gw1: with every fault healed, preemption makes that the only
#     stable state;
#   - two MASTERs after the heal for at most one advert interval plus the
#     re-announce (REANNOUNCE_MS: the receipt, one advert sent at once and
#     the other side stepping down, on a loaded machine);
#   - the client's tunnel works again within TUNNEL_S;
#   - no state change in a quiet second after settling (a flap);
#   - a fault that leaves the master reachable (SIGSTOP of the backup, VRRP
#     from the backup to the master dropped) moves nothing: no takeover;
#   - no hamgr died unless killed on purpose, none ended badly, no sanitizer
#     report (lib.sh judges every daemon's end).
# The end prints a table and "N passed, M failed"; any violation fails.
#
# Usage: chaos.sh [--duration SECONDS] [--seed N] [--max-injections N]
#                 [--kinds kill9,sigstop,...]
# (or CHAOS_DURATION, CHAOS_SEED, CHAOS_MAX_INJECTIONS, CHAOS_KINDS).
# HAMGR_BIN defaults to build/test's hamgr. To look into a failure:
# HI_KEEP_TMP=1 keeps the logs, CHAOS_CAPTURE=1 adds a capture of the
# client's eth0 (WireGuard, VRRP, ARP) per injection.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${HAMGR_BIN:=$here/../../build/test/hamgr/hamgr}"
export HAMGR_BIN
. "$here/../integration/lib.sh"
. "$here/../integration/wg_lab.sh"

DURATION=${CHAOS_DURATION:-75}
SEED=${CHAOS_SEED:-}
MAX_INJECTIONS=${CHAOS_MAX_INJECTIONS:-500}
ONLY_KINDS=${CHAOS_KINDS:-}
usage() {
        printf 'usage: %s [--duration SECONDS] [--seed N] [--max-injections N] [--kinds K1,K2...]\n' "$0" >&2
        exit 2
}
while [ $# -gt 0 ]; do
        case $1 in
        --duration) DURATION=${2:?}; shift 2 ;;
        --seed) SEED=${2:?}; shift 2 ;;
        --max-injections) MAX_INJECTIONS=${2:?}; shift 2 ;;
        --kinds) ONLY_KINDS=${2:?}; shift 2 ;;
        *) usage ;;
        esac
done
[[ "$DURATION" =~ ^[0-9]+$ ]] && [[ "$MAX_INJECTIONS" =~ ^[0-9]+$ ]] || usage
if [ -z "$SEED" ]; then
        SEED=$(( (RANDOM << 15 | RANDOM) ))
fi
[[ "$SEED" =~ ^[0-9]+$ ]] || usage
RANDOM=$SEED

require_hamgr
require_cmd wireguard-go wg ping nft timeout

VIP=10.77.0.10
INTERVAL_MS=200
REANNOUNCE_MS=200
DUAL_BOUND_MS=$((INTERVAL_MS + REANNOUNCE_MS))
SETTLE_S=10
TUNNEL_S=10
QUIET_S=1
KINDS=(kill9 sigstop linkdown vrrp1way wgrestart restart)
if [ -n "$ONLY_KINDS" ]; then
        IFS=, read -r -a only <<<"$ONLY_KINDS"
        for k in "${only[@]}"; do
                [[ " ${KINDS[*]} " == *" $k "* ]] || die "unknown injection kind '$k' (${KINDS[*]})"
        done
        KINDS=("${only[@]}")
fi
GWS=(gw1 gw2)

declare -A N_KIND=() V_KIND=() FROZEN=()
for k in "${KINDS[@]}"; do
        N_KIND[$k]=0
        V_KIND[$k]=0
done
VIOLATIONS=0
FLAPS=0
FALSE_TAKEOVERS=0
DEATHS=0
MAX_DUAL_MS=0
MAX_DUAL_AT=""
MAX_RECOVER_MS=0
MAX_RECOVER_AT=""
VIOLATION_LIST=()
CUR=""          # "kind node" of the injection being checked

printf 'chaos: seed %s, duration %s s (replay: %s --seed %s --duration %s)\n' \
        "$SEED" "$DURATION" "$0" "$SEED" "$DURATION"

# rnd LO HI: an integer in [LO, HI] from the seeded generator.
rnd() {
        echo $(($1 + RANDOM % ($2 - $1 + 1)))
}

violation() {
        local kind=${CUR%% *}
        VIOLATIONS=$((VIOLATIONS + 1))
        [ -z "$kind" ] || V_KIND[$kind]=$((V_KIND[$kind] + 1))
        VIOLATION_LIST+=("[$CUR] $*")
        fail "[$CUR] $*"
}

write_conf() {
        local node=$1 prio=$2
        HC_TRACK= HC_INTERVAL_MS=$INTERVAL_MS HC_INSTANCE_EXTRA='track_checks = ( { check = "wg0"; weight = 0; } );' \
                write_hamgr_conf "$(conf_of "$node")" "$node" "$prio" "$(cat <<EOF
checks = ( { name = "wg0"; type = "wireguard"; interface = "wg0"; interval_ms = 200; rise = 1; fall = 2; } );
wireguard = ( { interface = "wg0"; backend = "uapi"; follow = "wan"; source_address = "$VIP"; } );
EOF
)"
        "$HAMGR_BIN" check -c "$(conf_of "$node")" >/dev/null ||
                die "hamgr check refuses $(conf_of "$node"): $("$HAMGR_BIN" check -c "$(conf_of "$node")" 2>&1)"
}

# state NODE: the instance's state, or DOWN (no hamgr), FROZEN (stopped by
# us), ? (no answer within a second).
state() {
        local node=$1 out
        if [ -n "${FROZEN[$node]:-}" ]; then
                echo FROZEN
                return 0
        fi
        if ! hamgr_alive "$node"; then
                echo DOWN
                return 0
        fi
        # status exits 1 when an instance is FAULT, with the status printed.
        out=$({ timeout 1 nsenter -t "$(node_holder "$node")" -m -n -- "$HAMGR_BIN" status --json \
                -s /run/hamgr/control.sock 2>/dev/null || [ $? -eq 1 ]; } |
                jq -r '.instances[] | select(.name == "wan") | .state' 2>/dev/null) || out=""
        echo "${out:-?}"
}

# masters: the gateways whose hamgr says MASTER, space separated.
masters() {
        local g out=()
        for g in "${GWS[@]}"; do
                [ "$(state "$g")" != MASTER ] || out+=("$g")
        done
        printf '%s' "${out[*]}"
}

# Converged: gw1 (the higher priority, preempting) MASTER, gw2 BACKUP, the
# VIP on gw1 alone. With every fault healed nothing else is stable.
settled() {
        [ "$(state gw1) $(state gw2)" = "MASTER BACKUP" ] && vip_owner_is "$VIP" gw1
}

transitions() {
        cat "$(hamgr_log gw1)" "$(hamgr_log gw2)" 2>/dev/null | grep -cE 'wan: [A-Z]+ -> [A-Z]+' || true
}

became_master() {
        cat "$(hamgr_log gw1)" "$(hamgr_log gw2)" 2>/dev/null | grep -cE 'wan: [A-Z]+ -> MASTER' || true
}

other() {
        if [ "$1" = gw1 ]; then echo gw2; else echo gw1; fi
}

# A daemon that should run and does not died unexpectedly: judged (status,
# sanitizer report), counted, started again so that the run goes on.
check_alive() {
        local g pid
        for g in "${GWS[@]}"; do
                pid=${HAMGR_PID[$g]:-}
                if [ -n "$pid" ] && ! hi_pid_alive "$pid"; then
                        DEATHS=$((DEATHS + 1))
                        violation "hamgr on $g (pid $pid) died: $(tail -n 3 "$(hamgr_log "$g")" | tr '\n' ' ')"
                        hi_daemon_judge "$pid" ""
                        unset 'HAMGR_PID[$g]'
                        hamgr_start "$g" "$(conf_of "$g")"
                fi
        done
}

# arp_owner: which gateway the client's neighbour entry for the VIP names.
arp_owner() {
        local mac g
        mac=$(neigh_mac client "$VIP")
        for g in "${GWS[@]}"; do
                [ "$mac" != "$(node_mac "$g")" ] || { echo "$g"; return 0; }
        done
        echo "none"
}

# handshake_age NODE: seconds since NODE's wg0 last completed a handshake.
handshake_age() {
        local t
        t=$(node_exec "$1" wg show wg0 latest-handshakes 2>/dev/null | awk '{ print $2; exit }')
        if [ -z "$t" ] || [ "$t" = 0 ]; then
                echo never
        else
                echo $(( $(date +%s) - t ))
        fi
}

nft_sw() {
        ip netns exec "$(ns_of sw)" nft "$@"
}

wg_restart_heal() {
        local node=$1
        wait_until 5 bash -c "! ip -n '$(ns_of "$node")' link show wg0" >/dev/null 2>&1 ||
                violation "wg0 of the killed wireguard-go still there on $node"
        node_exec "$node" rm -f /var/run/wireguard/wg0.sock
        wg_gateway_setup "$node"
}

# ---------------------------------------------------------------- setup --

lab_create 2
wg_keys
for g in "${GWS[@]}"; do
        wg_gateway_setup "$g"
done
write_conf gw1 150
write_conf gw2 100
hamgr_start gw1 "$(conf_of gw1)"
wait_until 10 hamgr_state_is gw1 wan MASTER || die "gw1 did not become MASTER: $(tail -5 "$(hamgr_log gw1)")"
hamgr_start gw2 "$(conf_of gw2)"
wait_until 10 hamgr_state_is gw2 wan BACKUP || die "gw2 did not become BACKUP"
wg_client_setup "$VIP:$WG_PORT"
wait_until 10 tunnel_ping || die "no tunnel from the client before any fault"
PING_LOG=$HI_TMP/client.ping.log
node_spawn client "$PING_LOG" ping -D -n -i 0.1 -W 1 "$WG_GW_TUN"
# Each gateway serves the client once, so that both know its endpoint, as
# after a while in production (without replication a node only knows the
# endpoints it saw while master).
hamgr_stop gw1 TERM
wait_until 5 hamgr_state_is gw2 wan MASTER || die "gw2 did not take over on SIGTERM"
# gw2 does not know the client yet: the client's own retry (~15 s) does it.
wait_until 30 tunnel_ping || die "no tunnel through gw2"
wait_until 10 grep -q "$WG_CLIENT_PUB" "$HI_TMP/gw2.state/wireguard-wg0.endpoints" ||
        die "gw2 did not store the client's endpoint"
hamgr_start gw1 "$(conf_of gw1)"
wait_until "$SETTLE_S" settled || die "the pair did not settle before the run"
wait_until "$TUNNEL_S" tunnel_ping || die "no tunnel through gw1"
pass "setup: gw1 MASTER, gw2 BACKUP, tunnel up, seed $SEED"

# ---------------------------------------------------------------- the run --

inject() {
        local kind=$1 node=$2
        case $kind in
        kill9) hamgr_stop "$node" KILL ;;
        sigstop)
                kill -s STOP "${HAMGR_PID[$node]}"
                FROZEN[$node]=1
                ;;
        linkdown) node_link "$node" eth0 down ;;
        vrrp1way)
                # Frames from NODE's port to the other's, VRRP only.
                nft_sw add table bridge chaos
                nft_sw add chain bridge chaos pass '{ type filter hook forward priority 0; }'
                nft_sw add rule bridge chaos pass iifname "$node" oifname "$(other "$node")" ether type ip ip protocol 112 drop
                ;;
        wgrestart) wg_go_stop "$node" KILL ;;
        restart)
                hamgr_stop "$node" TERM
                hamgr_start "$node" "$(conf_of "$node")"
                ;;
        esac
}

heal() {
        local kind=$1 node=$2
        case $kind in
        kill9) hamgr_start "$node" "$(conf_of "$node")" ;;
        sigstop)
                kill -s CONT "${HAMGR_PID[$node]}"
                unset 'FROZEN[$node]'
                ;;
        linkdown) revive_node "$node" ;;
        vrrp1way) nft_sw delete table bridge chaos ;;
        wgrestart) wg_restart_heal "$node" ;;
        restart) ;;
        esac
}

# Faults after which the master is still reachable and alive: nothing may move.
harmless() {
        local kind=$1 node=$2 master=$3
        case $kind in
        sigstop) [ "$node" != "$master" ] ;;
        vrrp1way) [ "$node" != "$master" ] ;; # the backup's adverts do not reach the master
        *) return 1 ;;
        esac
}

fo_base=$(became_master)
t_begin=$(hi_now_ms)
t_end=$((t_begin + DURATION * 1000))
n_inj=0
master=gw1
while [ "$(hi_now_ms)" -lt "$t_end" ] && [ "$n_inj" -lt "$MAX_INJECTIONS" ]; do
        sleep "0.$(rnd 2 9)"
        kind=${KINDS[$((RANDOM % ${#KINDS[@]}))]}
        node=${GWS[$((RANDOM % 2))]}
        # Mostly long enough for Master_Down (~0.7 s), sometimes shorter.
        if [ $((RANDOM % 4)) = 0 ]; then
                hold_ms=$(rnd 100 400)
        else
                hold_ms=$(rnd 1000 3000)
        fi
        n_inj=$((n_inj + 1))
        N_KIND[$kind]=$((N_KIND[$kind] + 1))
        role=backup
        [ "$node" != "$master" ] || role=master
        CUR="$kind $node($role) #$n_inj"
        t_rel=$(( ($(hi_now_ms) - t_begin) / 100 ))
        printf 'chaos: t=%3d.%ds #%d %-9s %s (%s), hold %d ms\n' $((t_rel / 10)) $((t_rel % 10)) "$n_inj" \
                "$kind" "$node" "$role" "$hold_ms"
        tr_before=$(transitions)
        [ -z "${CHAOS_CAPTURE:-}" ] || capture_start client eth0 "udp port $WG_PORT or vrrp or arp" "$HI_TMP/inj$n_inj.cap"
        inject "$kind" "$node"
        sleep "$((hold_ms / 1000)).$(printf '%03d' $((hold_ms % 1000)))"
        heal "$kind" "$node"
        t_heal=$(hi_now_ms)

        # Settle: sample until one master; note the last moment with two.
        dual_last=0
        ok=0
        deadline=$((t_heal + SETTLE_S * 1000))
        while [ "$(hi_now_ms)" -lt "$deadline" ]; do
                t_s=$(hi_now_ms)
                m=$(masters)
                if [ "$m" = "gw1 gw2" ]; then
                        dual_last=$(hi_now_ms)
                elif settled; then
                        ok=1
                        break
                fi
                [ $(( $(hi_now_ms) - t_s )) -ge 50 ] || sleep 0.05
        done
        check_alive
        if [ "$ok" = 0 ]; then
                violation "no single master within ${SETTLE_S} s after healing: gw1 $(state gw1), gw2 $(state gw2), VIP on '$(vip_owner "$VIP")'"
                wait_until 30 settled || die "[$CUR] the pair never settled; giving up"
        fi
        new_master=gw1
        if [ "$dual_last" -gt 0 ]; then
                # The end of the overlap is when the one now BACKUP left MASTER.
                t_left=$(transition_at_ms "$(other "$new_master")" wan 2>/dev/null || echo "$dual_last")
                [ "$t_left" -ge "$dual_last" ] || t_left=$dual_last
                dual=$((t_left - t_heal))
                if [ "$dual" -gt "$MAX_DUAL_MS" ]; then
                        MAX_DUAL_MS=$dual
                        MAX_DUAL_AT=$CUR
                fi
                if [ "$dual" -gt "$DUAL_BOUND_MS" ]; then
                        violation "two masters for ${dual} ms after the heal (bound ${DUAL_BOUND_MS} ms: advert interval ${INTERVAL_MS} + re-announce ${REANNOUNCE_MS})"
                fi
        fi
        if harmless "$kind" "$node" "$master"; then
                tr_now=$(transitions)
                if [ "$tr_now" != "$tr_before" ] || [ "$new_master" != "$master" ]; then
                        FALSE_TAKEOVERS=$((FALSE_TAKEOVERS + 1))
                        violation "the master stayed reachable, yet $((tr_now - tr_before)) state change(s): $(cat "$(hamgr_log gw1)" "$(hamgr_log gw2)" | grep -E 'wan: [A-Z]+ -> [A-Z]+' | tail -n $((tr_now - tr_before)) | tr '\n' ';')"
                fi
        fi
        if t_ok=$(wait_until "$TUNNEL_S" tunnel_ping && hi_now_ms); then
                rec=$((t_ok - t_heal))
                if [ "$rec" -gt "$MAX_RECOVER_MS" ]; then
                        MAX_RECOVER_MS=$rec
                        MAX_RECOVER_AT=$CUR
                fi
        else
                violation "the client's tunnel did not work within ${TUNNEL_S} s after the heal (master $new_master; client's ARP entry for the VIP: $(neigh_mac client "$VIP") = $(arp_owner); gw1's last handshake $(handshake_age gw1) s ago)"
        fi
        tr_q=$(transitions)
        if ! holds_for "$QUIET_S" settled; then
                FLAPS=$((FLAPS + 1))
                violation "flap: the settled pair changed within ${QUIET_S} s: gw1 $(state gw1), gw2 $(state gw2)"
                wait_until "$SETTLE_S" settled || die "[$CUR] the pair did not settle again"
        elif [ "$(transitions)" != "$tr_q" ]; then
                FLAPS=$((FLAPS + 1))
                violation "flap: $(( $(transitions) - tr_q )) state change(s) in the quiet second"
        fi
        check_alive
        master=gw1
done
run_s=$(( ($(hi_now_ms) - t_begin) / 1000 ))

# ---------------------------------------------------------------- results --

# Longest gap between two ping replies during the run (the client's outage).
outage=$(awk -F'[][]' -v from="$((t_begin / 1000))" '/bytes from/ { t = $2 + 0; if (t < from) next
        if (last && t - last > max) { max = t - last; at = last }; last = t }
        END { printf "%d %d\n", max * 1000, at }' "$PING_LOG")
outage_ms=${outage% *}
outage_at=${outage#* }
replies=$(grep -c 'bytes from' "$PING_LOG" || true)
failovers=$(( $(became_master) - fo_base ))
kill -s CONT "${HAMGR_PID[gw1]}" "${HAMGR_PID[gw2]}" 2>/dev/null || true
# Stop both (SIGTERM, exit 0 wanted) and collect every report now, for the table.
hi_check_daemons
crashes=$((DEATHS + HI_DAEMON_BAD))

printf '\n==== chaos summary: seed %s, %s s, %d injections ====\n' "$SEED" "$run_s" "$n_inj"
printf '%-12s %6s %11s\n' injection count violations
for k in "${KINDS[@]}"; do
        printf '%-12s %6d %11d\n' "$k" "${N_KIND[$k]}" "${V_KIND[$k]}"
done
printf '%-52s %s\n' "failovers (times a gateway became MASTER)" "$failovers"
printf '%-52s %s\n' "longest client outage (ping gap)" "${outage_ms} ms (at $(date -u -d "@$outage_at" +%T 2>/dev/null || echo "$outage_at"); $replies replies)"
printf '%-52s %s\n' "longest heal-to-tunnel-checked (upper bound)" "${MAX_RECOVER_MS} ms${MAX_RECOVER_AT:+ [$MAX_RECOVER_AT]} (bound ${TUNNEL_S} s)"
printf '%-52s %s\n' "longest time with two masters after a heal" "${MAX_DUAL_MS} ms${MAX_DUAL_AT:+ [$MAX_DUAL_AT]} (bound ${DUAL_BOUND_MS} ms)"
printf '%-52s %s\n' "flaps (state changes once settled)" "$FLAPS"
printf '%-52s %s\n' "false takeovers (master reachable, yet moved)" "$FALSE_TAKEOVERS"
printf '%-52s %s\n' "daemon crashes / bad exit statuses" "$crashes"
printf '%-52s %s\n' "sanitizer reports" "$HI_SAN_REPORTS"
printf '%-52s %s\n' "invariant violations" "$VIOLATIONS"
for v in "${VIOLATION_LIST[@]}"; do
        printf '  %s\n' "$v"
done
[ "$n_inj" -gt 0 ] || fail "no injection in ${DURATION} s"
if [ "$crashes" = 0 ] && [ "$HI_SAN_REPORTS" = 0 ]; then
        pass "no daemon crash, no bad exit status, no sanitizer report"
fi
if [ "$VIOLATIONS" = 0 ]; then
        pass "$n_inj injections, no invariant violated"
fi
finish
