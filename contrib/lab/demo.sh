#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# hamgr demo: build, start a lab of two gateways and a client in network
# namespaces, run two failover drills (a crash and a graceful stop of the
# master) while the client pings the virtual IP, and print each timeline.
# Everything it creates is removed when it exits. Run as root.
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

VIP=10.77.0.10
INTERVAL_MS=${DEMO_INTERVAL_MS:-100}

echo "== lab: gw1 (priority 150) and gw2 (priority 100) on one bridge, a client; VIP $VIP"
lab_create 2
for g in gw1 gw2; do
        prio=150
        [ "$g" = gw2 ] && prio=100
        HC_INTERVAL_MS=$INTERVAL_MS HC_TRACK= write_hamgr_conf "$HI_TMP/$g.conf" "$g" "$prio"
        "$HAMGR_BIN" check -c "$HI_TMP/$g.conf" >/dev/null
        hamgr_start "$g" "$HI_TMP/$g.conf"
done
wait_until 10 hamgr_state_is gw1 wan MASTER || die "gw1 did not become MASTER"
wait_until 10 hamgr_state_is gw2 wan BACKUP || die "gw2 did not become BACKUP"
node_exec gw1 "$HAMGR_BIN" status
echo

now_ms() {
        local t
        t=$(date +%s%N)
        echo $((t / 1000000))
}

# Epoch seconds with a fraction -> milliseconds after T0.
since_t0() {
        awk -v t="$1" -v t0="$2" 'BEGIN { printf "%d", t * 1000 - t0 }'
}

# drill NAME ACTION...: the client pings the VIP every 20 ms and watches
# ARP; ACTION breaks the master; print what happened when, relative to it.
drill() {
        local title=$1 from=$2 to=$3
        shift 3
        local ping_log=$HI_TMP/ping.$from.log arp_log=$HI_TMP/arp.$from.log t0 line
        local to_notify
        to_notify=$(hamgr_notify_log "$to")
        : >"$ping_log"
        node_spawn client "$arp_log" tcpdump -tt -n -e -l -U -i eth0 arp and host "$VIP"
        local tcpdump_pid=$HI_LAST_PID
        node_spawn client "$ping_log" ping -D -n -i 0.02 -W 1 "$VIP"
        local ping_pid=$HI_LAST_PID
        wait_until 5 grep -q "bytes from $VIP" "$ping_log" || die "no ping replies before the drill"
        local before
        before=$(wc -l <"$to_notify" 2>/dev/null || echo 0)

        t0=$(now_ms)
        "$@"
        wait_until 10 hamgr_state_is "$to" wan MASTER || die "$to did not take over"
        wait_until 5 awk -v t0="$t0" '/bytes from/ { gsub(/[\[\]]/, "", $1); if ($1 * 1000 >= t0) f = 1 } END { exit !f }' "$ping_log" ||
                die "no ping reply after the failover"
        sleep 0.3
        stop_pid "$ping_pid" INT
        stop_pid "$tcpdump_pid" INT

        echo "== drill: $title"
        local events=()
        events+=("0|failure injected on $from")
        line=$(tail -n +"$((before + 1))" "$to_notify" | grep -m1 "args=INSTANCE wan MASTER" || true)
        [ -z "$line" ] || events+=("$(since_t0 "${line%%$'\t'*}" "$t0")|$to: BACKUP -> MASTER (its notify script ran)")
        line=$(awk -v t0="$t0" '$1 * 1000 >= t0 && /Request who-has/ { print; exit }' "$arp_log")
        [ -z "$line" ] || events+=("$(since_t0 "${line%% *}" "$t0")|client saw gratuitous ARP for $VIP from $(awk '{ print $2 }' <<<"$line")")
        line=$(awk -v t0="$t0" '/bytes from/ { t = $1; gsub(/[\[\]]/, "", t); if (t * 1000 >= t0) { print t; exit } }' "$ping_log")
        events+=("$(since_t0 "$line" "$t0")|first ping reply from $VIP after the failure")
        printf '%s\n' "${events[@]}" | sort -t'|' -k1,1n | while IFS='|' read -r ms what; do
                printf '  %8s  %s\n' "+$ms ms" "$what"
        done
        printf '  %8s  %s\n' "" "client's ARP entry for $VIP: $(ip -n "$(ns_of client)" neigh show "$VIP" dev eth0 | awk '{ print $3 }') ($to is $(node_mac "$to"))"
        local down_ms
        down_ms=$(hamgr_status "$to" | jq -r '.instances[0].master_down_interval_ms')
        echo "  (Master_Down_Interval on $to: $down_ms ms = 3 x ${INTERVAL_MS} ms + skew)"
        echo
}

crash_gw1() {
        node_link gw1 eth0 down
        hamgr_stop gw1 KILL
}

drill "crash of the master (gw1: eth0 down, hamgr killed with SIGKILL)" gw1 gw2 crash_gw1

echo "== gw1 comes back: its stale VIP is removed at start, then it preempts (priority 150 > 100)"
node_link gw1 eth0 up
hamgr_start gw1 "$HI_TMP/gw1.conf"
wait_until 10 hamgr_state_is gw1 wan MASTER || die "gw1 did not preempt"
wait_until 10 hamgr_state_is gw2 wan BACKUP || die "gw2 did not step down"
node_exec gw1 "$HAMGR_BIN" status
echo

stop_gw1() {
        hamgr_stop gw1 TERM
}
drill "graceful stop of the master (gw1: SIGTERM, priority 0 release)" gw1 gw2 stop_gw1

echo "== notify calls seen on gw2 (keepalived-style arguments)"
cut -f2 "$(hamgr_notify_log gw2)" | sed 's/^args=/  /'
echo
echo "demo finished; the lab is removed on exit (contrib/lab/lab.sh up keeps one around)"
