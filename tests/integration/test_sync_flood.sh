#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Nothing unauthenticated can stall a node's replication (two gateways with
# wireguard-go, sync re-handshaking every 1.5 s):
#  - re-handshake: the node that dialled opens a fresh connection every
#    rekey_interval_ms; the handshakes and rekeys counters rise, no
#    "disconnected" is logged, replication goes on, and the new connection
#    resumes the stream (its catch-up carries no record again); a
#    re-handshake that fails (new connections reset for 3 s) is retried
#    after the dial backoff, not 10 s later;
#  - a flood of 2,000 slow connections to gw1's sync port, each trickling
#    the start of a message 1, half from gw2's own address (a configured
#    peer: through the handshake limits) and half from the client (not a
#    peer: closed at accept). Meanwhile a peer added with `hamgr peer add`
#    on gw1 reaches gw2 within 1 s, the VRRP states and gw1's health checks
#    (icmp, exec) stay as they were, gw2's re-handshakes still get through (gw2 has the
#    lower key, so it is the one that dials), gw1's descriptor count stays
#    bounded, and the log has a rate-limited summary instead of a line per
#    connection. The counters in status --json account for the refusals;
#  - a lone connection trickling a byte a second is cut at the 5 s
#    handshake deadline.
# shellcheck disable=SC2317 # helpers are called through wait_until/holds_for
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/wg_lab.sh"

require_hamgr
require_cmd wireguard-go wg jq python3 ping nft

VIP=10.77.0.10
CLIENT=10.77.0.100
FLOOD=$(cd "$(dirname "$0")" && pwd)/sync_flood.py
# The interpreter itself (not a wrapper script), for node_spawn's PID check.
PYTHON=$(python3 -c 'import sys; print(sys.executable)')
FLOOD_SECS=20
REKEY_MS=1500

# The usual soft limit of a service: with unbounded sync connections the
# flood exhausts it. hamgr raises it to the hard limit (the unit sets 4096).
ulimit -Sn 1024
lab_create 2
node_start client
wg_keys

keyhex() {
        base64 -d <<<"$1" | od -An -tx1 | tr -d ' \n'
}
declare -A SYNC_PUB=()
# gw2's key must sort below gw1's: then gw2's connection is the one kept and
# its re-handshakes must get through while its own address floods gw1. Two
# fresh keys, the lower one gw2's (never two equal keys).
(umask 077; "$HAMGR_BIN" genkey >"$HI_TMP/gw1.sync.key"; "$HAMGR_BIN" genkey >"$HI_TMP/gw2.sync.key")
SYNC_PUB[gw1]=$("$HAMGR_BIN" pubkey <"$HI_TMP/gw1.sync.key")
SYNC_PUB[gw2]=$("$HAMGR_BIN" pubkey <"$HI_TMP/gw2.sync.key")
if [[ "$(keyhex "${SYNC_PUB[gw1]}")" < "$(keyhex "${SYNC_PUB[gw2]}")" ]]; then
        mv "$HI_TMP/gw1.sync.key" "$HI_TMP/swap.key"
        mv "$HI_TMP/gw2.sync.key" "$HI_TMP/gw1.sync.key"
        mv "$HI_TMP/swap.key" "$HI_TMP/gw2.sync.key"
        SYNC_PUB[gw1]=$("$HAMGR_BIN" pubkey <"$HI_TMP/gw1.sync.key")
        SYNC_PUB[gw2]=$("$HAMGR_BIN" pubkey <"$HI_TMP/gw2.sync.key")
fi
[[ "$(keyhex "${SYNC_PUB[gw2]}")" < "$(keyhex "${SYNC_PUB[gw1]}")" ]] || die "gw2's sync key does not sort below gw1's"
chmod 600 "$HI_TMP"/gw*.sync.key

# write_conf NODE PRIORITY OTHER
write_conf() {
        local node=$1 prio=$2 other=$3
        HC_TRACK='' HC_INTERVAL_MS=100 HC_INSTANCE_EXTRA='track_checks = ( { check = "client"; weight = -60; }, { check = "exec"; weight = -60; } );' \
                write_hamgr_conf "$(conf_of "$node")" "$node" "$prio" "$(cat <<EOF
checks = ( { name = "client"; type = "icmp"; address = "$CLIENT"; interval_ms = 500; timeout_ms = 400; rise = 1; fall = 3; },
           { name = "exec"; type = "exec"; command = "/bin/true"; interval_ms = 500; timeout_ms = 400; rise = 1; fall = 3; } );
wireguard = ( { interface = "wg0"; backend = "uapi"; follow = "wan"; source_address = "$VIP"; } );
sync = {
    listen = "10.77.0.${node#gw}:7789";
    private_key_file = "$HI_TMP/$node.sync.key";
    poll_interval_ms = 200;
    rekey_interval_ms = $REKEY_MS;
    bootstrap_grace_s = 0; # a new pair replicates at once (test_sync_revoke.sh: the wait)
    peers = ( { name = "$other"; address = "10.77.0.${other#gw}:7789"; public_key = "${SYNC_PUB[$other]}"; } );
};
EOF
)"
        "$HAMGR_BIN" check -c "$(conf_of "$node")" >/dev/null ||
                die "hamgr check: $("$HAMGR_BIN" check -c "$(conf_of "$node")" 2>&1)"
}

sync_num() {
        hamgr_status "$1" | jq -r ".sync.$2"
}
connected() {
        [ "$(hamgr_status "$1" | jq -r '.sync.peers[0].connected')" = true ]
}
# Both health checks of NODE are up (the exec check needs new descriptors
# for every probe).
check_up() {
        [ "$(hamgr_status "$1" | jq -r '[.checks[] | select(.status == "up")] | length')" = 2 ]
}
steady() {
        states_are MASTER BACKUP && check_up gw1
}
cut_at_least() {
        [ "$(hamgr_status "$1" | jq -r '.sync.handshake_timeouts + .sync.handshakes_evicted')" -ge "$2" ]
}
num_at_least() {
        [ "$(sync_num "$1" "$2")" -ge "$3" ]
}

wg_gateway_setup gw1
wg_gateway_setup gw2
write_conf gw1 150 gw2
write_conf gw2 100 gw1
hamgr_start gw1 "$(conf_of gw1)"
wait_until 10 hamgr_state_is gw1 wan MASTER || die "gw1 not MASTER: $(tail -5 "$(hamgr_log gw1)")"
hamgr_start gw2 "$(conf_of gw2)"
wait_until 10 hamgr_state_is gw2 wan BACKUP || die "gw2 not BACKUP: $(tail -5 "$(hamgr_log gw2)")"
assert_true "gw1 and gw2 connect" wait_until 10 connected gw1
assert_true "gw2 sees the connection" wait_until 5 connected gw2
assert_true "gw1's health checks are up" wait_until 5 check_up gw1
assert_eq "$(sync_num gw1 rekey_interval_ms)" "$REKEY_MS" "status shows the re-handshake interval"

# ---- re-handshake
h0=$(sync_num gw1 handshakes)
assert_true "gw1: handshakes rise with a ${REKEY_MS} ms interval" wait_until 10 num_at_least gw1 handshakes $((h0 + 3))
assert_true "gw1: counted as rekeys" num_at_least gw1 rekeys 2
assert_true "gw2 (the dialler): rekeys too" wait_until 5 num_at_least gw2 rekeys 2
assert_true "still connected after re-handshakes" connected gw1
# Each new connection resumes the stream where the old one left it: after
# the first catch-up, a re-handshake's catch-up carries no record again.
for g in gw1 gw2; do
        assert_contains "$(cat "$(hamgr_log "$g")")" "caught up: 0 records received" \
                "$g: a re-handshake resumes the stream instead of resending the state"
done
k0=$(wg genkey | wg pubkey)
node_exec gw2 "$HAMGR_BIN" peer add wg0 "$k0" --allowed-ips 10.99.7.7/32 -s /run/hamgr/control.sock
assert_true "replication goes on across re-handshakes" wait_until 2 wg_has_peer gw1 "$k0"

# A re-handshake that fails is tried again soon: gw1 resets new connections
# to its sync port for 3 s, so each of gw2's attempts fails at once while
# the old connection carries on. Retried after the dial backoff (0.25 s,
# doubling), one gets through at most about 2 s after the resets end;
# retried at the attempt's deadline instead, 7-10 s after.
ip netns exec "$(ns_of gw1)" nft -f - <<'NFT'
table inet hi_rekey {
        chain input {
                type filter hook input priority 0;
                tcp dport 7789 tcp flags & (syn | ack) == syn counter reject with tcp reset
        }
}
NFT
# A re-handshake whose SYN got through just before may still complete.
sleep 0.5
h1=$(sync_num gw1 handshakes)
sleep 3
resets=$(ip netns exec "$(ns_of gw1)" nft list table inet hi_rekey | sed -n 's/.*counter packets \([0-9]*\).*/\1/p')
ip netns exec "$(ns_of gw1)" nft delete table inet hi_rekey
assert_eq "$(sync_num gw1 handshakes)" "$h1" "while new connections are reset, no re-handshake gets through"
assert_true "gw2 tried at least once meanwhile (SYNs reset: ${resets:-0})" test "${resets:-0}" -ge 1
assert_true "a failed re-handshake is retried soon: one gets through within 4 s of the resets ending" \
        wait_until 4 num_at_least gw1 handshakes $((h1 + 1))
assert_true "the old connection carried on meanwhile" connected gw1
for g in gw1 gw2; do
        assert_not_contains "$(cat "$(hamgr_log "$g")")" "disconnected" "$g: a re-handshake is no disconnection"
done

# ---- the flood
pid1=${HAMGR_PID[gw1]}
fds_before=$(node_exec gw1 ls /proc/"$pid1"/fd | wc -l)
h_before=$(sync_num gw1 handshakes)
node_spawn gw2 "$HI_TMP/flood-peer.log" "$PYTHON" "$FLOOD" 10.77.0.1 7789 1000 "$FLOOD_SECS" 1
flood_peer=$HI_LAST_PID
node_spawn client "$HI_TMP/flood-stranger.log" "$PYTHON" "$FLOOD" 10.77.0.1 7789 1000 "$FLOOD_SECS" 1
flood_stranger=$HI_LAST_PID
t_flood=$(hi_now_ms)
# Descriptors of gw1's hamgr, sampled through the flood.
(
        while [ $(($(hi_now_ms) - t_flood)) -lt $(((FLOOD_SECS + 2) * 1000)) ]; do
                ls /proc/"$pid1"/fd 2>/dev/null | wc -l
                sleep 0.2
        done
) >"$HI_TMP/fds" &
sampler=$!

assert_true "strangers are refused at accept" wait_until 10 num_at_least gw1 refused_unknown_source 100
assert_true "slow handshakes from the peer's address are cut" wait_until 10 cut_at_least gw1 1
for i in 1 2; do
        k=$(wg genkey | wg pubkey)
        node_exec gw1 "$HAMGR_BIN" peer add wg0 "$k" --allowed-ips "10.99.8.$i/32" -s /run/hamgr/control.sock
        assert_true "during the flood: hamgr peer add on gw1 reaches gw2 within 1 s ($i)" wait_until 1 wg_has_peer gw2 "$k"
        assert_true "during the flood: VRRP states and the health checks hold ($i)" holds_for 4 steady
done
h_during=$(($(sync_num gw1 handshakes) - h_before))
assert_true "during the flood: gw2's re-handshakes get through ($h_during in $((($(hi_now_ms) - t_flood) / 1000)) s)" \
        test "$h_during" -ge 3
assert_true "during the flood: gw1 still connected" wait_until 3 connected gw1
assert_true "during the flood: gw1 at most 64 connections in handshake" \
        sh -c "[ $(sync_num gw1 handshakes_pending) -le 64 ]"
remaining=$(((FLOOD_SECS * 1000 - ($(hi_now_ms) - t_flood)) / 1000))
[ "$remaining" -le 0 ] || assert_true "the rest of the flood: VRRP states and the health checks hold" holds_for "$remaining" steady
hi_wait_gone "$flood_peer" 10 || true
hi_wait_gone "$flood_stranger" 10 || true
wait "$sampler" || true
cat "$HI_TMP/flood-peer.log" "$HI_TMP/flood-stranger.log"

opened=$(sed -n 's/.*opened \([0-9]*\),.*/\1/p' "$HI_TMP/flood-peer.log" "$HI_TMP/flood-stranger.log" | awk '{ n += $1 } END { print n + 0 }')
assert_true "the flooders opened at least 2,000 connections ($opened)" test "${opened:-0}" -ge 2000
max_fds=$(sort -n "$HI_TMP/fds" | tail -1)
assert_true "gw1's descriptors stayed bounded: $fds_before before, at most $max_fds during the flood" \
        test "${max_fds:-9999}" -le $((fds_before + 64 + 16))
st=$(hamgr_status gw1)
jq -c '.sync | del(.peers)' <<<"$st"
assert_true "refused_unknown_source counts the stranger's connections" \
        test "$(jq -r '.sync.refused_unknown_source' <<<"$st")" -ge 500
assert_true "the peer address's slow connections were timed out or evicted" \
        test "$(jq -r '.sync.handshake_timeouts + .sync.handshakes_evicted' <<<"$st")" -ge 100
assert_eq "$(jq -r '.sync.refused_fd_reserve' <<<"$st")" 0 "the descriptor reserve was never reached"
pending_zero() {
        [ "$(sync_num gw1 handshakes_pending)" = 0 ]
}
assert_true "after the flood no handshake is left pending" wait_until 8 pending_zero
# The text status says the same as the JSON (the refusal counters are
# still once the flood is over; the handshake counters are not: gw2
# re-handshakes every 1.5 s).
st=$(hamgr_status gw1)
text=$(node_exec gw1 "$HAMGR_BIN" status -s /run/hamgr/control.sock || true)
assert_contains "$text" "$(jq -r '.sync | "pending; refused: \(.refused_unknown_source) unknown source, \(.handshake_timeouts) handshake timeouts, \(.handshakes_failed) failed, \(.handshakes_evicted) evicted, \(.refused_fd_reserve) for the descriptor reserve"' <<<"$st")" \
        "hamgr status (text) shows the refusal counters"
log=$(cat "$(hamgr_log gw1)")
lines=$(grep -c "sync: refused connection" <<<"$log" || true)
assert_true "refusals are logged as a summary, not per connection ($lines lines)" \
        test "$lines" -ge 1 -a "$lines" -le $((FLOOD_SECS / 10 + 4))
assert_contains "$log" "from addresses that are not sync peers" "the summary names the causes"
assert_true "after the flood: still connected" connected gw1
assert_true "after the flood: VRRP states and the health checks unchanged" steady
for g in gw1 gw2; do
        assert_not_contains "$(cat "$(hamgr_log "$g")")" "disconnected" "$g: never disconnected"
done

# ---- the handshake deadline: two lone connections trickling a byte a second
t0=$(sync_num gw1 handshake_timeouts)
node_spawn gw2 "$HI_TMP/trickle.log" "$PYTHON" "$FLOOD" 10.77.0.1 7789 2 8 1
trickle=$HI_LAST_PID
assert_true "trickling bytes do not keep a handshake alive: both cut after 5 s" \
        wait_until 9 num_at_least gw1 handshake_timeouts $((t0 + 2))
hi_wait_gone "$trickle" 10 || true
cat "$HI_TMP/trickle.log"

finish
