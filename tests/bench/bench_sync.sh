#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Replication benchmark: two gateways with wireguard-go replicating their
# peers over the `sync` section. Prints figures; it is not a pass/fail test
# and ctest does not run it. Root.
#
#  1. initial sync: gw1's wg0 holds N peers (random public keys, one /32
#     allowed IP each, loaded with one `wg addconf` per interface, all at
#     once and timed: the least time this machine's wireguard-go needs to
#     create the peers the standby's writes create), gw2's wg0 and both
#     state_dirs start empty. Once gw1's hamgr runs as master, the same
#     load is timed into gw2's devices (then emptied again): the least
#     time beside the master's polls, which share the two cores with the
#     standby's writes during the sync. CPU time of each process over the
#     sync is printed too. gw1's hamgr is started, becomes master and
#     versions its N peers; then the clock starts with gw2's hamgr and
#     stops when gw2's hamgr holds as many records as gw1's and reports no
#     device write pending (`hamgr status --json`, every 100 ms: the
#     device has answered the last set request), checked once after by
#     counting the peers on gw2's devices (`wg show peers`). Not that count
#     every 100 ms: at 50,000 peers each `wg show` makes wireguard-go
#     format its whole configuration under the lock its set requests wait
#     for, and such polling made the 100,000-peer sync it measured 1 to 3
#     s longer (11.3-12.3 s against 9.4-10.5 s). Bytes are TCP
#     payload on the sync port, from tcpdump in gw2 (eth0, port 7789),
#     summed per direction from the IP/TCP headers (no framing, no
#     retransmit filtering), from gw2's start until the sync is complete
#     plus 1 s.
#  2. `hamgr peer add` on gw1 -> the peer listed on gw2's wg0: median of
#     BENCH_SYNC_ADDS adds, gw2 polled every 20 ms (plus the time one
#     `wg show` takes at that size, printed as the resolution). At 50,000
#     peers one `wg show` takes seconds, so a second column times the same
#     adds by gw2's `hamgr status --json` (which costs milliseconds): a
#     higher replicated record count and no device write pending, i.e.
#     wireguard-go has answered the set request that carries the peer
#     (hamgr writes merged peers beside its event loop, so the count alone
#     would stop the clock before the device has it). That poll adds up
#     to one status read to each figure, so each is printed a second
#     time with its end taken from gw2's status instead: when gw2's hamgr
#     had wireguard-go's answer to the write that carried the peer
#     (`last_write_unix_us`, wall clock, read once the poll saw it).
#  3. idle cost at every size >= BENCH_SYNC_IDLE_MIN: after the sync
#     settled (no pending change batches, 5 s of quiet), utime+stime of hamgr and wireguard-go
#     on both gateways over BENCH_SYNC_IDLE_S, and their VmRSS/VmHWM.
#  4. an edit made with `wg set` on gw1 (a peer added behind hamgr's back)
#     -> the peer listed on gw2's device: median and maximum of
#     BENCH_SYNC_EDITS edits, spread over the poll interval. The bound to
#     meet is the poll interval + 50 ms.
#
# wireguard-go refuses a device's 65,537th peer ("too many peers"), so a
# size above BENCH_SYNC_PER_DEV (50000) is split over several interfaces
# (wg0, wg1, ... each its own wireguard-go, all replicated); peer counts
# are summed over them. This kernel has no WireGuard module to compare with.
#
# hamgr runs with the default poll interval (1000 ms) and a 1000 ms advert
# interval, no notify script, WireGuard backend uapi.
#
# Environment: BENCH_SYNC_SIZES ("1000 10000 65000 100000"),
# BENCH_SYNC_CAP_S (600, per size), BENCH_SYNC_ADDS (20),
# BENCH_SYNC_EDITS (10), BENCH_SYNC_PER_DEV (50000),
# BENCH_SYNC_IDLE_S (30), BENCH_SYNC_IDLE_MIN (50000),
# BENCH_SYNC_POLL_MS (unset: the default), HAMGR_BIN (else built into
# build/bench, Release).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench_lib.sh
. "$BENCH_DIR/bench_lib.sh"
SIZES=${BENCH_SYNC_SIZES:-"1000 10000 65000 100000"}
CAP_S=${BENCH_SYNC_CAP_S:-600}
ADDS=${BENCH_SYNC_ADDS:-20}
EDITS=${BENCH_SYNC_EDITS:-10}
PER_DEV=${BENCH_SYNC_PER_DEV:-50000}
NIF=1
IDLE_S=${BENCH_SYNC_IDLE_S:-30}
IDLE_MIN=${BENCH_SYNC_IDLE_MIN:-50000}
SYNC_PORT=7789
VIP=10.77.0.10

if [ "$(id -u)" -ne 0 ]; then
        echo "bench_sync: needs root (network namespaces)" >&2
        exit 1
fi
bench_hamgr_bin
export HAMGR_BIN
export HAMGR_SOURCE_DIR=${HAMGR_SOURCE_DIR:-$BENCH_SRC_DIR}

# shellcheck source=../integration/lib.sh
. "$BENCH_SRC_DIR/tests/integration/lib.sh"
# shellcheck source=../integration/wg_lab.sh
. "$BENCH_SRC_DIR/tests/integration/wg_lab.sh"

require_cmd wireguard-go wg jq tcpdump awk
CLK_TCK=$(getconf CLK_TCK)

say() {
        printf '%s\n' "$*" >&2
}

# ---- peers --------------------------------------------------------------

# One random public key (for the peer-add runs).
one_key() {
        wg_gen_peers 1 0 | awk '/^PublicKey/ { print $3 }'
}

# Over every interface of the current size.
peer_count() {
        local i total=0 c
        for ((i = 0; i < NIF; i++)); do
                c=$(node_exec "$1" wg show "wg$i" peers | wc -l)
                total=$((total + c))
        done
        echo "$total"
}

# The extra interfaces wg1.. of a size above PER_DEV: one wireguard-go each.
declare -A WG_GO_EXTRA=()
extra_wg_start() {
        local node=$1 i
        for ((i = 1; i < NIF; i++)); do
                WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 \
                        node_spawn "$node" "$HI_TMP/$node.wireguard-go.wg$i.log" wireguard-go -f "wg$i"
                WG_GO_EXTRA[$node.$i]=$HI_LAST_PID
                wait_until 5 node_exec "$node" test -S "/var/run/wireguard/wg$i.sock" ||
                        die "wireguard-go wg$i did not come up on $node"
                node_exec "$node" wg set "wg$i" private-key "$HI_TMP/gw.key" listen-port $((WG_PORT + i))
        done
}

extra_wg_stop() {
        local node=$1 k
        for k in "${!WG_GO_EXTRA[@]}"; do
                [[ "$k" == "$node".* ]] || continue
                stop_pid "${WG_GO_EXTRA[$k]}" TERM
                unset 'WG_GO_EXTRA[$k]'
        done
        [ -z "$(node_holder "$node")" ] || node_exec "$node" sh -c 'rm -f /var/run/wireguard/wg[1-9]*.sock'
}

# ---- processes ------------------------------------------------------------

# cpu_ticks PID: utime + stime (fields 14 and 15 of /proc/PID/stat).
cpu_ticks() {
        local stat
        stat=$(cat "/proc/$1/stat")
        stat=${stat##*) }
        # shellcheck disable=SC2086 # split on purpose
        set -- $stat
        echo $((${12} + ${13}))
}

# node_ticks NODE COMM: utime + stime summed over NODE's processes named
# COMM (all of its wireguard-go, one per interface).
node_ticks() {
        local pid sum=0
        for pid in $(ip netns pids "$(ns_of "$1")"); do
                [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] || continue
                sum=$((sum + $(cpu_ticks "$pid" 2>/dev/null || echo 0)))
        done
        echo "$sum"
}

# status_kb PID FIELD: VmRSS / VmHWM in kB.
status_kb() {
        awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

mb() {
        awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'
}

# ---- the pair ---------------------------------------------------------------

write_conf() {
        local node=$1 prio=$2 me=$3 other=$4 poll="" wgs="" i
        [ -z "${BENCH_SYNC_POLL_MS:-}" ] || poll="poll_interval_ms = $BENCH_SYNC_POLL_MS;"
        for ((i = 0; i < NIF; i++)); do
                wgs+="${wgs:+, }{ interface = \"wg$i\"; backend = \"uapi\"; follow = \"wan\"; source_address = \"$VIP\"; }"
        done
        HC_TRACK='' HC_INTERVAL_MS=1000 HC_NOTIFY_SCRIPT='' \
                write_hamgr_conf "$HI_TMP/$node.conf" "$node" "$prio" "$(cat <<EOF
wireguard = ( $wgs );
sync = {
    listen = "10.77.0.$me:$SYNC_PORT";
    private_key_file = "$HI_TMP/$node.sync.key";
    $poll
    bootstrap_grace_s = 0; # gw1 starts alone without state: its device is the reference
    peers = ( { name = "gw$other"; address = "10.77.0.$other:$SYNC_PORT"; public_key = "${SYNC_PUB[$other]}"; } );
};
EOF
)"
        "$HAMGR_BIN" check -c "$HI_TMP/$node.conf" >/dev/null ||
                die "hamgr check refuses $HI_TMP/$node.conf: $("$HAMGR_BIN" check -c "$HI_TMP/$node.conf" 2>&1)"
}

no_wg0() {
        ! node_exec "$1" ip link show wg0 >/dev/null 2>&1
}

# fresh_gateway NODE: hamgr and wireguard-go stopped, state_dir emptied, a
# new wireguard-go with the gateway key and no peer.
fresh_gateway() {
        local node=$1
        hamgr_stop "$node" TERM
        extra_wg_stop "$node"
        wg_go_stop "$node"
        wait_until 5 no_wg0 "$node" || die "$node: wg0 outlived wireguard-go"
        # Never outside the node's own tmpfs (there is none before its holder).
        [ -z "$(node_holder "$node")" ] || node_exec "$node" rm -f /var/run/wireguard/wg0.sock
        rm -rf "${HI_TMP:?}/$node.state"
        mkdir -p "$HI_TMP/$node.state"
        wg_go_start "$node"
        node_exec "$node" wg set wg0 private-key "$HI_TMP/gw.key" listen-port "$WG_PORT"
        node_exec "$node" ip addr add "$WG_GW_TUN/24" dev wg0
        extra_wg_start "$node"
}

has_n_peers() {
        [ "$(peer_count "$1")" -ge "$2" ]
}

# Not grep -q: it would quit at the match, wg would die of SIGPIPE with
# more output than a pipe holds, and pipefail would call that "absent".
has_peer() {
        node_exec "$1" wg show wg0 peers | grep -xF "$2" >/dev/null
}

synced() {
        local s
        s=$(hamgr_status "$1") || return 1
        jq -e '.sync.peers[0].connected and .sync.peers[0].pending_changes == 0' <<<"$s" >/dev/null
}

# ---- results ------------------------------------------------------------------

declare -A R_STREAMS R_LOAD R_START R_SYNC R_TX R_RX R_STATE R_RSS1 R_RSS2 R_HWM2 R_ADD R_ADD_RANGE R_ADD_RES R_EDIT
declare -A R_ADD_REC R_EDIT_REC R_ADD_ANS R_EDIT_ANS R_SYNC_CPU R_LOAD2

records_of() {
        hamgr_status "$1" | jq -r .sync.records
}

records_above() {
        [ "$(records_of "$1")" -gt "$2" ]
}

# written_all NODE RECORDS: NODE holds RECORDS records or more and has
# confirmed every device write they asked for (write_pending is true from
# a merge until wireguard-go answered the set request with errno=0).
written_all() {
        hamgr_status "$1" | jq -e --argjson r "$2" \
                '.sync.records >= $r and ([.sync.devices[].write_pending] | any | not)' >/dev/null
}

# wait_written NODE ABOVE: until NODE holds more than ABOVE records and has
# no device write pending (60 s): a merged record is written beside the
# event loop, so its count alone does not say the device has it.
wait_written() {
        local deadline=$(($(hi_now_ms) + 60000))
        until hamgr_status "$1" | jq -e --argjson r "$2" \
                '.sync.records > $r and ([.sync.devices[].write_pending] | any | not)' >/dev/null; do
                [ "$(hi_now_ms)" -lt "$deadline" ] || return 1
                # Not faster: each read spawns nsenter, hamgr and jq, and
                # back to back they took a core from the nodes measured.
                # The answer time (timed_by_records) does not depend on it.
                sleep 0.05
        done
}

median_max() {
        sort -n | awk '{ v[NR] = $1 } END { printf "%d ms (max %d ms)", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2, v[NR] }'
}

# timed_by_records N WHAT: WHAT (add or edit) ADDS times, timed by gw2's
# record count and pending writes (wait_written).
timed_by_records() {
        local n=$1 what=$2 i key t0 before lat=() ans=() w
        for ((i = 0; i < ADDS; i++)); do
                key=$(one_key)
                before=$(records_of gw2)
                sleep "0.$((RANDOM % 1000))"
                t0=$(hi_now_ms)
                if [ "$what" = add ]; then
                        node_exec gw1 "$HAMGR_BIN" peer add wg0 "$key" --allowed-ips "10.252.$((n % 200)).$i/32" \
                                -s /run/hamgr/control.sock >/dev/null
                else
                        node_exec gw1 wg set wg0 peer "$key" allowed-ips "10.253.$((n % 200)).$i/32"
                fi
                wait_written gw2 "$before" || say "   $what $i: not on gw2 after 60 s"
                lat+=($(($(hi_now_ms) - t0)))
                # When gw2's hamgr had the device's answer to the write
                # that carried it (or to a later one): the same end without
                # the status polling's resolution.
                w=$(hamgr_status gw2 | jq '[.sync.devices[].last_write_unix_us // 0] | max')
                ans+=($((w / 1000 - t0)))
        done
        printf '%s\n' "${lat[@]}" | median_max
        echo
        printf '%s\n' "${ans[@]}" | median_max
        echo
}
IDLE_ROWS=()

# capture_sync NODE FILE: tcpdump -w of the sync port on NODE's eth0; PID
# in CAP_PID once it listens.
capture_sync() {
        local node=$1 file=$2 i
        : >"$file.log"
        node_spawn "$node" "$file.log" tcpdump -i eth0 -n -s 128 -B 16384 -U -w "$file" "tcp port $SYNC_PORT"
        CAP_PID=$HI_LAST_PID
        for ((i = 0; i < 200; i++)); do
                grep -q 'listening on' "$file.log" && return 0
                sleep 0.025
        done
        die "tcpdump on $node did not start: $(cat "$file.log")"
}

# payload_bytes FILE FILTER: TCP payload bytes of the packets that match.
# Directions are told by gw2's address: the master's connections may come
# from the virtual IP (its source route), not from 10.77.0.1.
payload_bytes() {
        tcpdump -r "$1" -n -q "$2" 2>/dev/null |
                awk '$NF ~ /^[0-9]+$/ { s += $NF } END { printf "%d\n", s }'
}

# bulk_streams FILE: connections that carried more than 4 KiB towards gw2
# (a full copy; handshakes and heartbeats are smaller). Two when both
# sides dialled at once and each sent everything on its own connection.
bulk_streams() {
        tcpdump -r "$1" -n -q "dst host 10.77.0.2" 2>/dev/null |
                awk '$NF ~ /^[0-9]+$/ { s[$3 " " $5] += $NF } END { for (k in s) if (s[k] > 4096) n++; printf "%d\n", n }'
}

# ---- one size -------------------------------------------------------------------

# load_peers NODE: $HI_TMP/peers.I.conf into NODE's wgI, all interfaces at
# once (one wg addconf each); the time in LOAD_MS, wireguard-go's CPU time
# in LOAD_CPU (seconds). Fails when a load failed.
load_peers() {
        local node=$1 i ticks t0 loads=() loaded=0
        ticks=$(node_ticks "$node" wireguard-go)
        t0=$(hi_now_ms)
        for ((i = 0; i < NIF; i++)); do
                node_exec "$node" wg addconf "wg$i" "$HI_TMP/peers.$i.conf" 2>"$HI_TMP/addconf.$node.$i.err" &
                loads+=($!)
        done
        for i in "${loads[@]}"; do
                wait "$i" || loaded=1
        done
        LOAD_MS=$(($(hi_now_ms) - t0))
        LOAD_CPU=$(awk -v t=$(($(node_ticks "$node" wireguard-go) - ticks)) -v hz="$CLK_TCK" 'BEGIN { printf "%.1f", t / hz }')
        cat "$HI_TMP"/addconf."$node".*.err >"$HI_TMP/addconf.$node.err" 2>/dev/null || true
        return "$loaded"
}

# initial_sync N: steps 1, 3 and 2 for N peers.
initial_sync() {
        local n=$1 t0 t1 got pcap deadline status="" c why i per recs
        NIF=$(((n + PER_DEV - 1) / PER_DEV))
        say "== $n peers ($NIF interface$([ "$NIF" = 1 ] || echo s))"
        write_conf gw1 150 1 2
        write_conf gw2 100 2 1
        fresh_gateway gw1
        fresh_gateway gw2
        per=$(((n + NIF - 1) / NIF))
        for ((i = 0; i < NIF; i++)); do
                wg_gen_peers $((i == NIF - 1 ? n - i * per : per)) $((i * per)) >"$HI_TMP/peers.$i.conf"
        done
        # Every interface at once, as the standby's writes go: with nothing
        # else running, the least time wireguard-go needs to create these
        # peers here, beside which the initial sync can be read.
        if ! load_peers gw1; then
                got=$(peer_count gw1)
                R_LOAD[$n]="-"
                why=$(grep -o 'failed to create new peer: .*' "$HI_TMP/gw1.wireguard-go.log" | tail -n 1 || true)
                R_SYNC[$n]="not run: wireguard-go took $got of $n peers${why:+ (\"$why\")}"
                say "   gw1: ${R_SYNC[$n]}"
                rm -f "$HI_TMP"/peers.*.conf
                return 0
        fi
        R_LOAD[$n]=$LOAD_MS
        got=$(peer_count gw1)
        [ "$got" -eq "$n" ] || die "gw1 has $got peers after wg addconf of $n"
        say "   gw1: $n peers loaded with wg addconf (all interfaces at once) in ${R_LOAD[$n]} ms, wireguard-go CPU time $LOAD_CPU s"

        t0=$(hi_now_ms)
        hamgr_start gw1 "$HI_TMP/gw1.conf"
        wait_until 120 hamgr_state_is gw1 wan MASTER || die "gw1 did not become MASTER: $(tail -n 5 "$(hamgr_log gw1)")"
        R_START[$n]=$(($(hi_now_ms) - t0))
        say "   gw1: hamgr MASTER after ${R_START[$n]} ms (advert interval 1 s: includes master-down)"

        wait_until 60 records_above gw1 $((n - 1)) || die "gw1 did not version its $n peers"
        recs=$(records_of gw1)
        # The same load into gw2's devices with gw1's hamgr running as
        # master beside it: what wireguard-go needs here while the master's
        # polls (and its wireguard-go answering them) share the two cores,
        # as they do during the sync. Then gw2 starts over, empty.
        load_peers gw2 || die "gw2 took $(peer_count gw2) of $n peers with wg addconf"
        got=$(peer_count gw2)
        [ "$got" -eq "$n" ] || die "gw2 has $got peers after wg addconf of $n"
        R_LOAD2[$n]=$LOAD_MS
        say "   gw2: the same with gw1's hamgr running, master: ${R_LOAD2[$n]} ms, wireguard-go CPU time $LOAD_CPU s"
        rm -f "$HI_TMP"/peers.*.conf
        fresh_gateway gw2
        pcap=$HI_TMP/sync.$n.pcap
        capture_sync gw2 "$pcap"
        local -A ticks0=()
        for c in gw1.hamgr gw1.wireguard-go gw2.wireguard-go; do
                ticks0[$c]=$(node_ticks "${c%%.*}" "${c#*.}")
        done
        t0=$(hi_now_ms)
        hamgr_start gw2 "$HI_TMP/gw2.conf"
        deadline=$((t0 + CAP_S * 1000))
        while :; do
                if written_all gw2 "$recs"; then
                        t1=$(hi_now_ms)
                        c=$(peer_count gw2)
                        if [ "$c" -ge "$n" ]; then
                                R_SYNC[$n]=$((t1 - t0))
                                # CPU over the sync (and the count above):
                                # what the write phase shared the cores with.
                                why=""
                                for c in gw2.hamgr gw2.wireguard-go gw1.hamgr gw1.wireguard-go; do
                                        why+="${why:+, }$c $(awk -v t=$(($(node_ticks "${c%%.*}" "${c#*.}") - ${ticks0[$c]:-0})) \
                                                -v hz="$CLK_TCK" 'BEGIN { printf "%.1f", t / hz }') s"
                                done
                                R_SYNC_CPU[$n]=$why
                                break
                        fi
                        say "   gw2: hamgr reported its devices written, but they list $c of $n peers"
                fi
                if ! hamgr_alive gw2 || ! hamgr_alive gw1; then
                        status="hamgr exited ($(peer_count gw2)/$n peers on gw2 after $(($(hi_now_ms) - t0)) ms)"
                        break
                fi
                if [ "$(hi_now_ms)" -ge "$deadline" ]; then
                        status="timeout: $(peer_count gw2)/$n peers on gw2 after ${CAP_S} s"
                        break
                fi
                sleep 0.1
        done
        sleep 1
        stop_pid "$CAP_PID" INT
        R_TX[$n]=$(payload_bytes "$pcap" "dst host 10.77.0.2")
        R_STREAMS[$n]=$(bulk_streams "$pcap")
        R_RX[$n]=$(payload_bytes "$pcap" "src host 10.77.0.2")
        [ "$HI_KEEP_TMP" = 1 ] || rm -f "$pcap"
        if [ -n "$status" ]; then
                R_SYNC[$n]=$status
                say "   gw2: $status"
                say "   gw1 log: $(tail -n 5 "$(hamgr_log gw1)" | tr '\n' '|')"
                say "   gw2 log: $(tail -n 5 "$(hamgr_log gw2)" | tr '\n' '|')"
        else
                say "   gw2: all $n peers after ${R_SYNC[$n]} ms; ${R_TX[$n]} B gw1->gw2, ${R_RX[$n]} B gw2->gw1"
                say "   CPU time over the sync: ${R_SYNC_CPU[$n]:-}"
        fi
        R_STATE[$n]=$(stat -c %s "$HI_TMP/gw2.state/replica.state" 2>/dev/null || echo -)
        if hamgr_alive gw1 && hamgr_alive gw2; then
                wait_until 120 synced gw1 || say "   gw1 still has change batches in flight"
                wait_until 120 synced gw2 || say "   gw2 still has change batches in flight"
                sleep 5
        fi
        if hamgr_alive gw1; then R_RSS1[$n]=$(status_kb "${HAMGR_PID[gw1]}" VmRSS); else R_RSS1[$n]=-; fi
        if hamgr_alive gw2; then
                R_RSS2[$n]=$(status_kb "${HAMGR_PID[gw2]}" VmRSS)
                R_HWM2[$n]=$(status_kb "${HAMGR_PID[gw2]}" VmHWM)
        else
                R_RSS2[$n]=-
                R_HWM2[$n]=-
        fi

        if [ "$n" -ge "$IDLE_MIN" ] && [ -z "$status" ]; then
                idle "$n"
        fi
        if [ -z "$status" ]; then
                peer_adds "$n"
                wg_edits "$n"
                q0=$(hi_now_ms)
                records_of gw2 >/dev/null
                q1=$(hi_now_ms)
                say "   (one status read on gw2, the floor of the next two figures: $((q1 - q0)) ms)"
                { read -r "R_ADD_REC[$n]"; read -r "R_ADD_ANS[$n]"; } < <(timed_by_records "$n" add)
                say "   peer add, merged and written on gw2: ${R_ADD_REC[$n]}; by the write's answer: ${R_ADD_ANS[$n]}"
                { read -r "R_EDIT_REC[$n]"; read -r "R_EDIT_ANS[$n]"; } < <(timed_by_records "$n" edit)
                say "   wg set, merged and written on gw2: ${R_EDIT_REC[$n]}; by the write's answer: ${R_EDIT_ANS[$n]}"
        else
                R_ADD[$n]="-"
        fi
}

# wg_edits N: step 4. Each edit is a peer added with wg(8) on gw1's wg0 at
# a random point of the poll cycle.
wg_edits() {
        local n=$1 i key t0 t1 lat=() deadline
        say "   wg set: $EDITS edits on gw1"
        for ((i = 0; i < EDITS; i++)); do
                key=$(one_key)
                sleep "0.$((RANDOM % 1000))"
                t0=$(hi_now_ms)
                node_exec gw1 wg set wg0 peer "$key" allowed-ips "10.251.$((n % 200)).$i/32"
                deadline=$((t0 + 60000))
                while ! has_peer gw2 "$key" && [ "$(hi_now_ms)" -lt "$deadline" ]; do
                        sleep 0.01
                done
                t1=$(hi_now_ms)
                lat+=($((t1 - t0)))
        done
        R_EDIT[$n]=$(printf '%s\n' "${lat[@]}" | sort -n | awk '
                { v[NR] = $1 }
                END { printf "%d ms (max %d ms)", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2, v[NR] }')
        say "   wg set: median ${R_EDIT[$n]}"
}

# snapshot_counts NODE: "READ/SKIPPED", the endpoint store's snapshot reads
# of all its interfaces (skipped: the poll showed nothing new).
snapshot_counts() {
        hamgr_status "$1" | jq -r '[.wireguard[].snapshots] as $r | [.wireguard[].snapshots_skipped] as $s |
                "\($r | add)/\($s | add)"'
}

# idle N: step 3.
idle() {
        local n=$1 node pid ticks a0 a1 what
        local -A before=()
        say "   idle: sampling CPU for ${IDLE_S} s"
        for node in gw1 gw2; do
                for what in hamgr wireguard-go; do
                        if [ "$what" = hamgr ]; then pid=${HAMGR_PID[$node]:-}; else pid=${WG_GO_PID[$node]:-}; fi
                        if [ -z "$pid" ] || ! hi_pid_alive "$pid"; then
                                continue
                        fi
                        before[$node.$what]="$pid $(cpu_ticks "$pid")"
                done
        done
        snaps0=$(snapshot_counts gw1)
        a0=$(hi_now_ms)
        sleep "$IDLE_S"
        a1=$(hi_now_ms)
        say "   idle: gw1's endpoint snapshots read / skipped, all interfaces: $snaps0 before, $(snapshot_counts gw1) after"
        for node in gw1 gw2; do
                for what in hamgr wireguard-go; do
                        [ -n "${before[$node.$what]:-}" ] || continue
                        read -r pid ticks <<<"${before[$node.$what]}"
                        hi_pid_alive "$pid" || continue
                        IDLE_ROWS+=("$(awk -v n="$n" -v node="$node" -v what="$what" -v d=$(($(cpu_ticks "$pid") - ticks)) \
                                -v hz="$CLK_TCK" -v ms=$((a1 - a0)) -v rss="$(status_kb "$pid" VmRSS)" \
                                -v hwm="$(status_kb "$pid" VmHWM)" \
                                'BEGIN { printf "| %d | %s | %s | %.2f %% | %.1f MiB | %.1f MiB |", n, node, what,
                                         100 * d / hz / (ms / 1000), rss / 1024, hwm / 1024 }')")
                done
        done
}

# peer_adds N: step 2.
peer_adds() {
        local n=$1 i key t0 t1 q0 q1 lat=() deadline ok
        q0=$(hi_now_ms)
        peer_count gw2 >/dev/null
        q1=$(hi_now_ms)
        R_ADD_RES[$n]=$((q1 - q0 + 20))
        say "   peer add: $ADDS adds on gw1 (one wg show on gw2: $((q1 - q0)) ms)"
        for ((i = 0; i < ADDS; i++)); do
                key=$(one_key)
                t0=$(hi_now_ms)
                node_exec gw1 "$HAMGR_BIN" peer add wg0 "$key" --allowed-ips "10.250.$((n % 200)).$i/32" \
                        -s /run/hamgr/control.sock >/dev/null
                deadline=$((t0 + 60000))
                ok=0
                while [ "$(hi_now_ms)" -lt "$deadline" ]; do
                        if has_peer gw2 "$key"; then
                                ok=1
                                break
                        fi
                        sleep 0.02
                done
                t1=$(hi_now_ms)
                if [ "$ok" = 1 ]; then
                        lat+=($((t1 - t0)))
                else
                        say "   peer add $i: not on gw2 after 60 s"
                fi
                sleep 0.2
        done
        if [ "${#lat[@]}" -eq 0 ]; then
                R_ADD[$n]="timeout"
                return 0
        fi
        read -r "R_ADD[$n]" "R_ADD_RANGE[$n]" < <(printf '%s\n' "${lat[@]}" | sort -n | awk '
                { v[NR] = $1 }
                END {
                        m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
                        printf "%d %d-%d\n", m, v[1], v[NR]
                }')
        if [ "${#lat[@]}" -lt "$ADDS" ]; then
                R_ADD_RANGE[$n]+=", ${#lat[@]}/$ADDS arrived"
        fi
        say "   peer add: median ${R_ADD[$n]} ms (${R_ADD_RANGE[$n]})"
}

# ---- main ------------------------------------------------------------------------

lab_create 2
wg_keys
declare -A SYNC_PUB=()
for i in 1 2; do
        (umask 077; "$HAMGR_BIN" genkey >"$HI_TMP/gw$i.sync.key")
        chmod 600 "$HI_TMP/gw$i.sync.key"
        SYNC_PUB[$i]=$("$HAMGR_BIN" pubkey <"$HI_TMP/gw$i.sync.key")
done
started=$(hi_now_ms)
for n in $SIZES; do
        initial_sync "$n"
done

printf '\n## hamgr sync benchmark (%s, %s cores, wireguard-go %s)\n\n' "$(uname -r)" "$(nproc)" \
        "$(wireguard-go --version 2>/dev/null | awk 'NR == 1 { print $2 }')"
printf 'Initial sync: gw2 starts empty, gw1 holds N peers; time from gw2'"'"'s hamgr start until gw2'"'"'s hamgr holds all records and has written them to its devices (then checked: they list N peers).\n'
printf 'Bytes: TCP payload on port %s captured on gw2'"'"'s eth0 (tcpdump), per direction.\n\n' "$SYNC_PORT"
printf '| peers | wg addconf on gw1, all interfaces at once | the same on gw2 beside gw1'"'"'s hamgr (master) | initial sync | gw1 -> gw2 (bulk connections) | gw2 -> gw1 | gw1 -> gw2 per peer | gw2 state file | hamgr RSS gw1 / gw2 (gw2 peak) | peer add -> other node, median of %s (range) | poll resolution | wg set on gw1 -> gw2, median of %s | peer add, merged and written on gw2 (%s) | the same, by the answer time | wg set, merged and written on gw2 (%s) | the same, by the answer time |\n' "$ADDS" "$EDITS" "$ADDS" "$EDITS"
printf '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n'
for n in $SIZES; do
        sync=${R_SYNC[$n]}
        if [[ "$sync" == "not run"* ]]; then
                printf '| %s | - | - | %s | - | - | - | - | - | - | - | - | - | - | - | - |\n' "$n" "$sync"
                continue
        fi
        [[ "$sync" =~ ^[0-9]+$ ]] && sync="$sync ms"
        add=${R_ADD[$n]:--}
        [[ "$add" =~ ^[0-9]+$ ]] && add="$add ms (${R_ADD_RANGE[$n]} ms)"
        rss1=${R_RSS1[$n]} rss2=${R_RSS2[$n]} hwm2=${R_HWM2[$n]}
        [ "$rss1" = - ] || rss1="$(mb "$rss1") MiB"
        [ "$rss2" = - ] || rss2="$(mb "$rss2") MiB ($(mb "$hwm2") MiB)"
        res=${R_ADD_RES[$n]:-}
        [ -z "$res" ] || res="~$res ms"
        printf '| %s | %s ms | %s ms | %s | %s B (%s) | %s B | %s B | %s B | %s / %s | %s | %s | %s | %s | %s | %s | %s |\n' "$n" "${R_LOAD[$n]}" \
                "${R_LOAD2[$n]:--}" "$sync" "${R_TX[$n]}" "${R_STREAMS[$n]}" "${R_RX[$n]}" "$((R_TX[$n] / n))" "${R_STATE[$n]}" "$rss1" "$rss2" \
                "$add" "${res:--}" "${R_EDIT[$n]:--}" "${R_ADD_REC[$n]:--}" "${R_ADD_ANS[$n]:--}" "${R_EDIT_REC[$n]:--}" \
                "${R_EDIT_ANS[$n]:--}"
done
if [ "${#IDLE_ROWS[@]}" -gt 0 ]; then
        printf '\nIdle after the sync settled, same N peers on both devices, poll interval %s ms, advert interval 1000 ms, CPU over %s s:\n\n' \
                "${BENCH_SYNC_POLL_MS:-1000}" "$IDLE_S"
        printf '| peers | node | process | CPU (of one core) | VmRSS | VmHWM |\n|---:|---|---|---:|---:|---:|\n'
        printf '%s\n' "${IDLE_ROWS[@]}"
fi
printf '\ntotal run time: %d s\n' $((($(hi_now_ms) - started) / 1000))
