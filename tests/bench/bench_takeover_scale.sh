#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Takeover at scale: a hamgr pair with wireguard-go (or the kernel module)
# and SCALE_PEERS (10000) peers besides the one real client. The backup
# knows every peer's endpoint and last handshake (its endpoint store is
# written before it starts, as if it had served them all; handshake times
# are random over the last day); the master is stopped and the benchmark
# reports
#  - the takeover hamgr reports (.wireguard[0].last_takeover_ms, kicked),
#  - when the handshake initiations of the kick were on the wire, counted
#    from the takeover start (the new master's first advert): the
#    SCALE_RECENT (1000) most recently active peers', and everybody's,
#  - whether the new master's VRRP adverts kept their rhythm meanwhile
#    (largest gap between consecutive adverts, seen by the client, against
#    the advert interval; the old master's adverts before the failure are
#    the baseline),
#  - when the real client's tunnel answered again.
# The peers' public keys are random bytes (they never answer) and their
# endpoints are the client's address with ports 20000 + i, where nothing
# listens: the initiations stay on the lab's bridge. Prints figures; not a
# pass/fail test, not run by ctest. Root.
#
# Environment: SCALE_PEERS (10000), SCALE_RECENT (1000), SCALE_INTERVAL_MS
# (100), SCALE_BACKEND (uapi: wireguard-go; kernel: the wireguard module,
# which this machine may lack: the lab's VM has it),
# SCALE_FAILURE (graceful: SIGTERM; crash: eth0 down + kill -9),
# SCALE_OBSERVE_S (11: how long to keep watching after the takeover, long
# enough for two endpoint snapshots), SCALE_TAKEOVER_WAIT_S (120: how long
# the takeover may take before the bench gives up; the qemu guest needs
# more), HAMGR_BIN.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench_lib.sh
. "$BENCH_DIR/bench_lib.sh"
# shellcheck source=../integration/lib.sh
. "$BENCH_DIR/../integration/lib.sh"
# shellcheck source=../integration/wg_lab.sh
. "$BENCH_DIR/../integration/wg_lab.sh"

PEERS=${SCALE_PEERS:-10000}
RECENT=${SCALE_RECENT:-1000}
BACKEND=${SCALE_BACKEND:-$WG_BACKEND}
WG_BACKEND=$BACKEND # wg_lab.sh: kernel devices instead of wireguard-go
INTERVAL_MS=${SCALE_INTERVAL_MS:-100}
FAILURE=${SCALE_FAILURE:-graceful}
OBSERVE_S=${SCALE_OBSERVE_S:-11}
TAKEOVER_WAIT_S=${SCALE_TAKEOVER_WAIT_S:-120}
VIP=10.77.0.10
CLIENT_PORT=51821
PORT_BASE=20000

require_root
require_cmd wireguard-go wg jq tcpdump perl ping
if [ "$PEERS" -lt 1 ] || [ "$PEERS" -gt 60000 ]; then
        die "SCALE_PEERS must be 1..60000"
fi
if [ "$RECENT" -lt 1 ] || [ "$RECENT" -gt "$PEERS" ]; then
        die "SCALE_RECENT must be 1..SCALE_PEERS"
fi
case $BACKEND in
uapi | kernel) ;;
*) die "SCALE_BACKEND must be uapi or kernel" ;;
esac
case $FAILURE in
crash | graceful) ;;
*) die "SCALE_FAILURE must be crash or graceful" ;;
esac
bench_hamgr_bin
export HAMGR_BIN

say() {
        printf '%s\n' "$*" >&2
}

write_conf() {
        local node=$1 prio=$2
        HC_TRACK='' HC_INTERVAL_MS=$INTERVAL_MS HC_NOTIFY_SCRIPT='' \
                HC_INSTANCE_EXTRA='track_checks = ( { check = "wg0"; weight = 0; } );' \
                write_hamgr_conf "$HI_TMP/$node.conf" "$node" "$prio" "$(cat <<EOF
checks = ( { name = "wg0"; type = "wireguard"; interface = "wg0"; interval_ms = 200; rise = 1; fall = 2; } );
wireguard = ( { interface = "wg0"; backend = "$BACKEND"; follow = "wan"; source_address = "$VIP"; } );
EOF
)"
        "$HAMGR_BIN" check -c "$HI_TMP/$node.conf" >/dev/null || die "hamgr check refuses $HI_TMP/$node.conf"
}

follower_phase_is() {
        [ "$(hamgr_status "$1" 2>/dev/null | jq -r '.wireguard[0].phase')" = "$2" ]
}

# Peers for "wg addconf" and the matching endpoint store lines: random
# 32-byte public keys, allowed IP 10.100.x.y/32, endpoint client:20000+i,
# last handshake a distinct random time in the last day (endpoint learned a
# day ago). peers.recent: the ports of the RECENT most recent, newest first.
gen_peers() {
        perl -MMIME::Base64 -MTime::HiRes=time -e '
                my ($n, $base, $recent, $conf, $store, $top) = @ARGV;
                my $now = int(time() * 1000);
                my (%used, @hs);
                open(my $r, "<", "/dev/urandom") or die;
                open(my $c, ">", $conf) or die;
                open(my $s, ">", $store) or die;
                for my $i (0 .. $n - 1) {
                        read($r, my $k, 32) == 32 or die;
                        my $b = encode_base64($k, "");
                        my $h;
                        do { $h = $now - 1000 - int(rand(86400000)) } while ($used{$h}++);
                        push @hs, [$h, $base + $i];
                        printf $c "[Peer]\nPublicKey = %s\nAllowedIPs = 10.%d.%d.%d/32\n\n",
                                $b, 100 + int($i / 65536), int($i / 256) % 256, $i % 256;
                        printf $s "%s 10.77.0.100:%d 0 %d %d\n", $b, $base + $i, $now - 86400000, $h;
                }
                open(my $t, ">", $top) or die;
                my @sorted = sort { $b->[0] <=> $a->[0] } @hs;
                print $t "$_->[1]\n" for @sorted[0 .. $recent - 1];
        ' "$PEERS" "$PORT_BASE" "$RECENT" "$HI_TMP/peers.conf" "$HI_TMP/peers.store" "$HI_TMP/peers.recent"
}

# scale_gateway_setup NODE: wg_lab.sh's gateway on wireguard-go, or the
# same identity on a kernel WireGuard interface.
scale_gateway_setup() {
        local node=$1
        if [ "$BACKEND" = uapi ]; then
                wg_gateway_setup "$node"
                return 0
        fi
        node_start "$node"
        node_exec "$node" ip link add wg0 type wireguard ||
                die "$node: cannot create a kernel WireGuard interface (no wireguard module?)"
        node_exec "$node" wg set wg0 private-key "$HI_TMP/gw.key" listen-port "$WG_PORT" \
                peer "$WG_CLIENT_PUB" allowed-ips "$WG_CLIENT_TUN/32"
        node_exec "$node" ip addr add "$WG_GW_TUN/24" dev wg0
}

# Adverts "EPOCH SRC PRIO" from the VRRP capture.
adverts() {
        tcpdump -r "$1" -tt -n 2>/dev/null |
                awk '/VRRP/ { p = ""; for (i = 1; i <= NF; i++) if ($i == "prio") { p = $(i + 1); sub(/,/, "", p) }
                              print $1, $3, p }'
}

# ---- the lab
t_setup=$(hi_now_ms)
lab_create 2
wg_keys
gen_peers
for g in gw1 gw2; do
        scale_gateway_setup "$g"
        t=$(hi_now_ms)
        node_exec "$g" wg addconf wg0 "$HI_TMP/peers.conf"
        say "$g: $PEERS peers loaded ($BACKEND) in $(($(hi_now_ms) - t)) ms"
done
write_conf gw1 150
write_conf gw2 100
wg_client_setup "$VIP:$WG_PORT"
node_exec client wg set wg0 listen-port "$CLIENT_PORT"
# gw1 knows only the client; gw2 knows everybody, as if it had served them.
{
        echo "hamgr-endpoints 1"
        echo "$WG_CLIENT_PUB 10.77.0.100:$CLIENT_PORT 0"
} >"$HI_TMP/gw1.state/wireguard-wg0.endpoints"
{
        # The real client is the most recently active peer.
        echo "hamgr-endpoints 2"
        echo "$WG_CLIENT_PUB 10.77.0.100:$CLIENT_PORT 0 $(hi_now_ms) $(hi_now_ms)"
        cat "$HI_TMP/peers.store"
} >"$HI_TMP/gw2.state/wireguard-wg0.endpoints"

hamgr_start gw1 "$HI_TMP/gw1.conf"
wait_until 30 hamgr_state_is gw1 wan MASTER || die "gw1 did not become MASTER: $(tail -n 5 "$(hamgr_log gw1)")"
hamgr_start gw2 "$HI_TMP/gw2.conf"
wait_until 30 hamgr_state_is gw2 wan BACKUP || die "gw2 did not become BACKUP: $(tail -n 5 "$(hamgr_log gw2)")"
wait_until 30 follower_phase_is gw1 active || die "gw1 does not serve tunnels"
wait_until 30 follower_phase_is gw2 passive || die "gw2 is not passive"
wait_until 10 tunnel_ping || die "no tunnel through gw1"
known=$(hamgr_status gw2 | jq -r '.wireguard[0].known_endpoints')
[ "$known" -eq $((PEERS + 1)) ] || die "gw2 loaded $known endpoints, want $((PEERS + 1))"
say "lab ready in $(($(hi_now_ms) - t_setup)) ms; gw2 knows $known endpoints"

# ---- captures, the client's pings, the failure
node_spawn client "$HI_TMP/vrrp.err" tcpdump -B 8192 -U -n -i eth0 -w "$HI_TMP/vrrp.pcap" 'ip proto 112'
wait_until 5 grep -q "listening on" "$HI_TMP/vrrp.err" || die "tcpdump (vrrp): $(cat "$HI_TMP/vrrp.err")"
node_spawn client "$HI_TMP/kick.err" tcpdump -B 65536 -U -n -s 96 -i eth0 -w "$HI_TMP/kick.pcap" \
        "udp and src host $VIP and src port $WG_PORT"
wait_until 5 grep -q "listening on" "$HI_TMP/kick.err" || die "tcpdump (kick): $(cat "$HI_TMP/kick.err")"
node_spawn client "$HI_TMP/ping.log" ping -D -n -i 0.02 -W 1 "$WG_GW_TUN"
ping_pid=$HI_LAST_PID
wait_until 5 grep -q "bytes from" "$HI_TMP/ping.log" || die "no ping replies before the failure"
# A baseline of the old master's rhythm.
sleep 5

t0=$(hi_now_ms)
if [ "$FAILURE" = crash ]; then
        node_link gw1 eth0 down
        hamgr_stop gw1 KILL
else
        hamgr_stop gw1 TERM
fi
wait_until 30 hamgr_state_is gw2 wan MASTER || die "gw2 did not take over"
wait_until "$TAKEOVER_WAIT_S" follower_phase_is gw2 active || die "gw2's takeover did not finish within $TAKEOVER_WAIT_S s"
t_active=$(hi_now_ms)
sleep "$OBSERVE_S"
stop_pid "$ping_pid" INT
capture_stop_all() {
        local pid
        for pid in "${HI_PIDS[@]}"; do
                if hi_pid_alive "$pid" && [ "$(hi_pid_argv0 "$pid")" = tcpdump ]; then
                        stop_pid "$pid" INT
                fi
        done
        return 0
}
capture_stop_all

# ---- figures
st=$(hamgr_status gw2)
takeover_ms=$(jq -r '.wireguard[0].last_takeover_ms' <<<"$st")
kicked=$(jq -r '.wireguard[0].last_kicked' <<<"$st")
wg_err=$(jq -r '.wireguard[0].last_error' <<<"$st")
logline=$(grep -F "serving tunnels" "$(hamgr_log gw2)" | tail -n 1 || true)
client_ms=$(recovery_ms "$HI_TMP/ping.log" "$t0" || echo "not back")
[ "$client_ms" != nogap ] || client_ms=0

adverts "$HI_TMP/vrrp.pcap" >"$HI_TMP/adverts.txt"
new_first=$(awk -v t0="$t0" '$2 == "10.77.0.2" && $1 * 1000.0 >= t0 { printf "%d\n", $1 * 1000.0 - t0; exit }' \
        "$HI_TMP/adverts.txt")
[ -n "$new_first" ] || die "no advert of the new master in the capture"

# Initiations, ms after the takeover start (the new master's first advert):
# when the last of the RECENT most recent peers had its first one, when the
# last peer did, and how many of the first RECENT peers on the wire are
# among the RECENT most recent (the order).
tcpdump -r "$HI_TMP/kick.pcap" -tt -n 2>/dev/null >"$HI_TMP/kick.txt"
read -r kick_pkts kick_peers kick_first kick_all recent_seen recent_all in_order <<<"$(
        awk -v t0="$t0" -v ts="$new_first" -v lo="$PORT_BASE" -v hi=$((PORT_BASE + PEERS - 1)) -v want="$RECENT" '
        FNR == NR { recent[$1 + 0] = 1; next }
        {
                split($5, a, "."); port = a[5]; sub(/:$/, "", port); port += 0
                if (port < lo || port > hi) next
                t = $1 * 1000.0 - t0 - ts
                if (t < 0) next # a start-up blip of gw2 (no adverts of gw1 heard yet)
                pkts++
                if (port in seen) next
                seen[port] = 1; peers++
                if (peers == 1) first = t
                all = t
                if (port in recent) { rseen++; rall = t; if (peers <= want) order++ }
        }
        END { printf "%d %d %d %d %d %d %d\n", pkts, peers, first, all, rseen, rall, order }' \
                "$HI_TMP/peers.recent" "$HI_TMP/kick.txt")"
kick_end=$((new_first + kick_all))
[ "$kick_end" -gt "$((new_first + takeover_ms))" ] || kick_end=$((new_first + takeover_ms))

# Times below are ms after the failure (t0). The takeover window runs from
# the new master's first advert to the later of its last initiation and
# the takeover's end, plus one interval.
read -r base_gap base_n old_last tk_gap tk_n after_gap after_n <<<"$(
        awk -v t0="$t0" -v end="$kick_end" -v iv="$INTERVAL_MS" '
        function upd(which, gap) { if (gap > max[which]) max[which] = gap; n[which]++ }
        {
                t = $1 * 1000.0 - t0
                if ($2 == "10.77.0.1") {
                        if (t < 0) { if (have1) upd("base", t - last1); have1 = 1; last1 = t }
                        else if ($3 != "0") last1 = t
                        old_last = t
                } else if ($2 == "10.77.0.2" && t >= 0) {
                        if (!have2) { have2 = 1; last2 = t; next }
                        gap = t - last2
                        if (last2 <= end + iv) upd("tk", gap); else upd("after", gap)
                        last2 = t
                }
        }
        END {
                printf "%d %d %d %d %d %d %d\n", max["base"], n["base"], old_last,
                        max["tk"], n["tk"], max["after"], n["after"]
        }' "$HI_TMP/adverts.txt")"

echo
echo "Takeover at scale: $PEERS peers (+1 real client), backend $BACKEND, advert interval $INTERVAL_MS ms, failure: $FAILURE"
echo
echo "| figure | value |"
echo "|---|---|"
echo "| takeover duration (hamgr status .wireguard[0].last_takeover_ms) | $takeover_ms ms |"
echo "| peers kicked (last_kicked), last_error | $kicked, $wg_err |"
echo "| hamgr's log | ${logline#*: } |"
echo "| takeover start: the new master's first advert | +$new_first ms after the failure |"
echo "| the $RECENT most recently active peers' initiations on the wire | by +$recent_all ms after the takeover start ($recent_seen of $RECENT seen) |"
echo "| all peers' initiations on the wire (first / last) | +$kick_first / +$kick_all ms after the takeover start ($kick_peers of $PEERS peers, $kick_pkts packets) |"
echo "| the first $RECENT peers on the wire that are among the $RECENT most recent | $in_order |"
echo "| real client's tunnel answered again | +$client_ms ms after the failure |"
echo "| old master: last advert (ms after the failure) | $old_last |"
echo "| advert interval | $INTERVAL_MS ms |"
echo "| largest gap between the old master's adverts before the failure (baseline, $base_n gaps) | $base_gap ms |"
echo "| largest gap between the new master's adverts during the takeover ($tk_n gaps) | $tk_gap ms ($(awk -v g="$tk_gap" -v i="$INTERVAL_MS" 'BEGIN { printf "%.2f", g / i }') intervals) |"
echo "| largest gap between the new master's adverts after it ($after_n gaps; endpoint snapshots every 5 s) | $after_gap ms |"
echo
echo "takeover finished (phase active seen) +$((t_active - t0)) ms after the failure"
# shellcheck disable=SC2034 # read by lib.sh's exit trap
HI_FINISHED=1
