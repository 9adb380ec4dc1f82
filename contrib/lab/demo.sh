#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# hamgr demo: build, start a lab of two WireGuard gateways (wireguard-go,
# one shared key) and a client in network namespaces, run failover drills
# while the client pings the virtual IP and, through the tunnel, the
# gateway, and print each drill's timeline. Everything it creates is
# removed when it exits. Run as root.
set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$src"

if [ "$(id -u)" -ne 0 ]; then
        echo "demo: needs root (network namespaces)" >&2
        exit 1
fi
bash contrib/setup.sh

echo "== building hamgr (build/demo)"
cmake -S . -B build/demo -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHAMGR_TESTS=OFF >/dev/null
cmake --build build/demo -j"$(nproc)" >/dev/null
export HAMGR_BIN=$src/build/demo/hamgr/hamgr
export HAMGR_SOURCE_DIR=$src

HI_PREFIX=demo$$
# shellcheck source=../../tests/integration/lib.sh
. tests/integration/lib.sh
# shellcheck source=../../tests/integration/wg_lab.sh
. tests/integration/wg_lab.sh

VIP=10.77.0.10
INTERVAL_MS=${DEMO_INTERVAL_MS:-100}

echo "== lab: gw1 (priority 150) and gw2 (priority 100) on one bridge, a client; VIP $VIP"
echo "   WireGuard: both gateways wg0 $WG_GW_TUN (same key), client $WG_CLIENT_TUN with endpoint $VIP:$WG_PORT"
lab_create 2
wg_keys
for g in gw1 gw2; do
        prio=150
        [ "$g" = gw2 ] && prio=100
        wg_gateway_setup "$g"
        HC_INTERVAL_MS=$INTERVAL_MS HC_TRACK= \
                HC_INSTANCE_EXTRA='track_checks = ( { check = "wg0"; weight = 0; } );' \
                write_hamgr_conf "$HI_TMP/$g.conf" "$g" "$prio" "$(cat <<EOF
checks = ( { name = "wg0"; type = "wireguard"; interface = "wg0"; interval_ms = 500; rise = 1; fall = 2; } );
wireguard = ( { interface = "wg0"; follow = "wan"; source_address = "$VIP"; } );
EOF
)"
        "$HAMGR_BIN" check -c "$HI_TMP/$g.conf" >/dev/null
        hamgr_start "$g" "$HI_TMP/$g.conf"
        [ "$g" = gw1 ] && { wait_until 10 hamgr_state_is gw1 wan MASTER || die "gw1 did not become MASTER"; }
done
wait_until 10 hamgr_state_is gw2 wan BACKUP || die "gw2 did not become BACKUP"
wg_client_setup "$VIP:$WG_PORT"
wait_until 10 tunnel_ping || die "the tunnel does not work"
node_exec gw1 "$HAMGR_BIN" status
echo

# Epoch seconds with a fraction -> milliseconds after T0 (ms).
since_t0() {
        awk -v t="$1" -v t0="$2" 'BEGIN { printf "%d", t * 1000 - t0 }'
}

# first_reply_after_outage LOG T0: the time of the first reply in ping -D's
# LOG after T0 that follows lost ones (a gap in icmp_seq): the moment the
# path is back. Not just the first reply after T0, which can be one in
# flight when the failure was injected.
first_reply_after_outage() {
        awk -v t0="$2" '/bytes from/ && match($0, /icmp_seq=[0-9]+/) {
                t = $1; gsub(/[\[\]]/, "", t)
                seq = substr($0, RSTART + 9, RLENGTH - 9) + 0
                if (t * 1000 >= t0 && have && seq > prev + 1) { print t; exit }
                prev = seq; have = 1
        }' "$1"
}

# drill TITLE FROM TO ACTION...: ping the VIP and, through the tunnel, the
# gateway; watch ARP and WireGuard on the client's wire; ACTION breaks the
# master; print what happened when.
drill() {
        local title=$1 from=$2 to=$3
        shift 3
        local tag=$from.$RANDOM t0 line before
        local vip_log=$HI_TMP/vip.$tag.log tun_log=$HI_TMP/tun.$tag.log wire_log=$HI_TMP/wire.$tag.log
        local to_notify
        to_notify=$(hamgr_notify_log "$to")
        node_spawn client "$wire_log" tcpdump --immediate-mode -tt -n -l -U -i eth0 \
                "arp or (udp port $WG_PORT and src host $VIP)"
        local tcpdump_pid=$HI_LAST_PID
        node_spawn client "$vip_log" ping -D -n -i 0.05 -W 1 "$VIP"
        local vip_pid=$HI_LAST_PID
        node_spawn client "$tun_log" ping -D -n -i 0.05 -W 1 "$WG_GW_TUN"
        local tun_pid=$HI_LAST_PID
        wait_until 5 grep -q "bytes from $WG_GW_TUN" "$tun_log" || die "no tunnel replies before the drill"
        before=$(wc -l <"$to_notify" 2>/dev/null || echo 0)

        t0=$(($(date +%s%N) / 1000000))
        "$@"
        wait_until 10 hamgr_state_is "$to" wan MASTER || die "$to did not take over"
        wait_until 30 eval '[ -n "$(first_reply_after_outage "$tun_log" "$t0")" ]' ||
                die "no reply through the tunnel within 30 s"
        sleep 0.3
        stop_pid "$vip_pid" INT
        stop_pid "$tun_pid" INT
        stop_pid "$tcpdump_pid" INT

        echo "== drill: $title"
        {
                echo "0|failure injected on $from"
                line=$(tail -n +"$((before + 1))" "$to_notify" | grep -m1 "args=INSTANCE wan MASTER" || true)
                [ -z "$line" ] || echo "$(since_t0 "${line%%$'\t'*}" "$t0")|$to: BACKUP -> MASTER (notify script ran)"
                line=$(awk -v t0="$t0" '$1 * 1000 >= t0 && /Request who-has/ { print $1; exit }' "$wire_log")
                [ -z "$line" ] || echo "$(since_t0 "$line" "$t0")|gratuitous ARP for $VIP seen by the client"
                line=$(awk -v t0="$t0" '$1 * 1000 >= t0 && /length 148/ { print $1; exit }' "$wire_log")
                [ -z "$line" ] || echo "$(since_t0 "$line" "$t0")|WireGuard handshake initiation from $VIP:$WG_PORT (the kick)"
                line=$(first_reply_after_outage "$vip_log" "$t0")
                [ -z "$line" ] || echo "$(since_t0 "$line" "$t0")|first ping reply from the VIP after the outage"
                line=$(first_reply_after_outage "$tun_log" "$t0")
                echo "$(since_t0 "$line" "$t0")|first ping reply through the tunnel after the outage"
        } | sort -t'|' -k1,1n | while IFS='|' read -r ms what; do
                printf '  %9s  %s\n' "+$ms ms" "$what"
        done
        echo
}

stop_gw1() {
        hamgr_stop gw1 TERM
}
crash_gw1() {
        node_link gw1 eth0 down
        hamgr_stop gw1 KILL
}

echo "gw2 has never served this client, so it does not know the client's endpoint: the"
echo "first hand-over waits for the client's own WireGuard retry, as a plain keepalived pair always does."
drill "graceful stop of gw1 (SIGTERM); gw2 knows no endpoint yet" gw1 gw2 stop_gw1

echo "== gw1 comes back and preempts (priority 150 > 100); it knows the client's endpoint"
hamgr_start gw1 "$HI_TMP/gw1.conf"
wait_until 10 hamgr_state_is gw1 wan MASTER || die "gw1 did not preempt"
wait_until 10 tunnel_ping || die "the tunnel did not come back on gw1"
echo

drill "crash of gw1 (eth0 down, hamgr SIGKILL); gw2 now knows the endpoint and kicks" gw1 gw2 crash_gw1

echo "== what gw2 reports"
node_exec gw2 "$HAMGR_BIN" status --json | jq -c '{instances: [.instances[] | {name, state, effective_priority}], wireguard, checks: [.checks[] | {name, status, detail}]}'
echo
echo "demo finished; the lab is removed on exit (contrib/lab/lab.sh up keeps one around)"
