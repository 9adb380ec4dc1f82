#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Replication between two gateways with wireguard-go:
#  - a peer added with `wg set` on the master appears on the backup's device;
#  - removal and an allowed-IPs change propagate;
#  - `hamgr peer add` on one node reaches the other node's device; while a
#    change from the other node waits to be written to the device (its
#    wireguard-go stopped), it is refused with the reason, and status shows
#    sync.devices[].write_pending; an add that waits for a stopped
#    wireguard-go does not hold the event loop (the backup stays BACKUP),
#    and a conflicting removal merged while it is written does not undo it
#    (these three stop wireguard-go: not in the kernel module's run);
#  - after hamgr's own peer writes (an edit, a merged change), the next poll
#    of each device reads only what differs, not the whole device;
#  - the replicated state survives a restart (encrypted file, 0600, no keys
#    in the clear);
#  - a node with an unknown key (the "rogue", at gw2's address so that it
#    gets past the source filter, with its own wireguard-go device holding a
#    peer of its own) is refused by the handshake: gw1 counts it in
#    sync.handshakes_failed, merges nothing (merges,
#    records and both devices unchanged, the rogue's peer nowhere), and the
#    rogue receives nothing (never connected, no frame, no merge, its device
#    and replica hold only its own peer).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/json_schema.sh"
. "$(dirname "$0")/wg_lab.sh"

require_root
require_cmd wireguard-go wg jq
[ -n "${HAMGR_BIN:-}" ] || die "HAMGR_BIN is not set"

VIP=10.77.0.10

lab_create 2
wg_keys
for g in gw1 gw2; do
        (umask 077; "$HAMGR_BIN" genkey >"$HI_TMP/$g.sync.key")
        chmod 600 "$HI_TMP/$g.sync.key"
        pub[$([ "$g" = gw1 ] && echo 1 || echo 2)]=$("$HAMGR_BIN" pubkey <"$HI_TMP/$g.sync.key")
done

# write_conf NODE PRIORITY MY_INDEX OTHER_INDEX OTHER_PUB [PORT]
# (WGIF=name: another WireGuard interface than wg0)
write_conf() {
        local node=$1 prio=$2 me=$3 other=$4 other_pub=$5 port=${6:-7789}
        HC_TRACK= HC_INTERVAL_MS=100 HC_SOCKET=/run/hamgr/${SOCK:-control}.sock write_hamgr_conf "$HI_TMP/$node.conf" "$node" "$prio" "$(cat <<EOF
wireguard = ( { interface = "${WGIF:-wg0}"; backend = "$WG_BACKEND"; follow = "wan"; source_address = "$VIP"; } );
sync = {
    listen = "10.77.0.$me:$port";
    private_key_file = "$HI_TMP/$node.sync.key";
    poll_interval_ms = 200;
    bootstrap_grace_s = 0; # a new pair replicates at once (test_sync_revoke.sh: the wait)
    peers = ( { name = "gw$other"; address = "10.77.0.$other:7789"; public_key = "$other_pub"; } );
};
EOF
)"
        "$HAMGR_BIN" check -c "$HI_TMP/$node.conf" >/dev/null || die "hamgr check: $("$HAMGR_BIN" check -c "$HI_TMP/$node.conf" 2>&1)"
}

wg_gateway_setup gw1
wg_gateway_setup gw2
write_conf gw1 150 1 2 "${pub[2]}"
write_conf gw2 100 2 1 "${pub[1]}"
hamgr_start gw1 "$HI_TMP/gw1.conf"
wait_until 10 hamgr_state_is gw1 wan MASTER || die "gw1 not MASTER"
hamgr_start gw2 "$HI_TMP/gw2.conf"
wait_until 10 hamgr_state_is gw2 wan BACKUP || die "gw2 not BACKUP"

connected() {
        [ "$(hamgr_status "$1" | jq -r '.sync.peers[0].connected')" = true ]
}
assert_true "gw1 and gw2 connect" wait_until 10 connected gw1
assert_true "gw2 sees the connection too" wait_until 5 connected gw2
assert_contains "$(node_exec gw1 "$HAMGR_BIN" status -s /run/hamgr/control.sock)" "sync peer gw2 (10.77.0.2:7789): connected" \
        "text status shows the sync peer"

allowed_of() {
        node_exec "$1" wg show wg0 allowed-ips | awk -v k="$2" '$1 == k { $1 = ""; sub(/^ /, ""); print }'
}

# ---- wg set on the master reaches the backup
k1=$(wg genkey | wg pubkey)
node_exec gw1 wg set wg0 peer "$k1" allowed-ips 10.99.1.1/32
assert_true "wg set on gw1: the peer appears on gw2" wait_until 5 wg_has_peer gw2 "$k1"
assert_eq "$(allowed_of gw2 "$k1")" "10.99.1.1/32" "its allowed IPs came along"

node_exec gw1 wg set wg0 peer "$k1" allowed-ips 10.99.1.1/32,10.99.2.0/24
has_allowed() {
        [ "$(allowed_of gw2 "$k1")" = "$1" ]
}
assert_true "allowed-IPs change propagates" wait_until 5 has_allowed "10.99.1.1/32 10.99.2.0/24"

node_exec gw1 wg set wg0 peer "$k1" remove
assert_true "removal propagates" wait_until 5 wg_no_peer gw2 "$k1"

# ---- a reload with the same sync settings keeps replicating
kill -HUP "${HAMGR_PID[gw1]}"
kill -HUP "${HAMGR_PID[gw2]}"
assert_true "SIGHUP: gw1 still running" holds_for 1 hamgr_alive gw1
assert_true "SIGHUP: gw2 still running" hamgr_alive gw2
assert_true "SIGHUP: still connected" wait_until 10 connected gw1

# ---- hamgr peer add on the backup reaches the master
k2=$(wg genkey | wg pubkey)
wg genpsk >"$HI_TMP/k2.psk"
chmod 600 "$HI_TMP/k2.psk"
t0=$(hi_now_ms)
node_exec gw2 "$HAMGR_BIN" peer add wg0 "$k2" --allowed-ips 10.99.3.3/32 --keepalive 25 \
        --preshared-key-file "$HI_TMP/k2.psk" -s /run/hamgr/control.sock
assert_true "hamgr peer add on gw2: the peer is on gw2's device" wg_has_peer gw2 "$k2"
assert_true "hamgr peer add on gw2: the peer reaches gw1" wait_until 5 wg_has_peer gw1 "$k2"
pass "hamgr peer add to the other node's device in $(($(hi_now_ms) - t0)) ms"
peers=$(node_exec gw1 "$HAMGR_BIN" peers --json -s /run/hamgr/control.sock)
json_schema_check "peers --json" "$HAMGR_SOURCE_DIR/tests/integration/peers-schema.txt" "$peers"
assert_eq "$(jq -r --arg k "$k2" '.[] | select(.public_key == $k) | .origin' <<<"$peers")" gw2 "peers: origin gw2"
on_every_node() {
        node_exec gw2 "$HAMGR_BIN" peers --json -s /run/hamgr/control.sock |
                jq -e --arg k "$k2" '.[] | select(.public_key == $k) | .on_every_node' >/dev/null
}
assert_true "peers: on every node" wait_until 5 on_every_node
psk_on() {
        [ "$(node_exec "$1" wg show wg0 preshared-keys | awk -v k="$k2" '$1 == k { print $2 }')" = "$(cat "$HI_TMP/k2.psk")" ]
}
assert_true "the preshared key reached gw1's device" wait_until 5 psk_on gw1
# hamgr(8): private and preshared keys are never printed.
for g in gw1 gw2; do
        out=$(node_exec "$g" "$HAMGR_BIN" peers -s /run/hamgr/control.sock; node_exec "$g" "$HAMGR_BIN" peers --json -s /run/hamgr/control.sock)
        assert_contains "$out" "$k2" "$g: peers lists the peer"
        for secret in psk:"$(cat "$HI_TMP/k2.psk")" wireguard-private:"$WG_GW_KEY" sync-private:"$(cat "$HI_TMP/$g.sync.key")"; do
                if [[ "$out" == *"${secret#*:}"* ]]; then
                        fail "$g: peers prints the ${secret%%:*} key"
                else
                        pass "$g: peers does not print the ${secret%%:*} key"
                fi
        done
done
node_exec gw2 "$HAMGR_BIN" peer remove wg0 "$k2" -s /run/hamgr/control.sock
assert_true "hamgr peer remove on gw2 reaches gw1" wait_until 5 wg_no_peer gw1 "$k2"
removed_flag=$(node_exec gw1 "$HAMGR_BIN" peers --json -s /run/hamgr/control.sock | jq -r --arg k "$k2" '.[] | select(.public_key == $k) | .removed')
assert_eq "$removed_flag" true "the removal is kept as a tombstone"

# ---- hamgr's own peer writes keep the polls partial (wireguard-go): after
# an add on gw2 and its merged write on gw1, the next read of each device
# lists only what differs from its last one (the written peer among
# them), and neither reads its whole device again (sync.devices[].reads_*).
reads_of() {
        hamgr_status "$1" | jq -r --arg k "reads_$2" '.sync.devices[] | select(.interface == "wg0") | .[$k]'
}
read_more() {
        [ "$(reads_of "$1" "$2")" -gt "$3" ]
}
w1=$(reads_of gw1 whole) w2=$(reads_of gw2 whole) p1=$(reads_of gw1 partial) p2=$(reads_of gw2 partial)
k_own=$(wg genkey | wg pubkey)
node_exec gw2 "$HAMGR_BIN" peer add wg0 "$k_own" --allowed-ips 10.99.4.4/32 -s /run/hamgr/control.sock
wait_until 5 wg_has_peer gw1 "$k_own" || die "gw2's add of $k_own did not reach gw1"
if [ "$WG_BACKEND" = uapi ]; then
        assert_true "gw2 (the edit's node) reads its device partially after the write" wait_until 3 read_more gw2 partial "$p2"
        assert_true "gw1 (the merge's node) reads its device partially after the write" wait_until 3 read_more gw1 partial "$p1"
        assert_eq "$(reads_of gw2 whole)" "$w2" "gw2 did not read its whole device again"
        assert_eq "$(reads_of gw1 whole)" "$w1" "gw1 did not read its whole device again"
else
        assert_true "kernel module: the device is read whole after the write" wait_until 3 read_more gw1 whole "$w1"
        assert_eq "$(reads_of gw1 partial)" 0 "kernel module: no partial reads"
fi
node_exec gw2 "$HAMGR_BIN" peer remove wg0 "$k_own" -s /run/hamgr/control.sock
wait_until 5 wg_no_peer gw1 "$k_own" || die "gw2's removal of $k_own did not reach gw1"

# The next three stall the device by stopping its wireguard-go (SIGSTOP).
# The kernel module answers netlink at once and has no process to stop:
# under HAMGR_WG_BACKEND=kernel (kernel/sync) they are left to the run
# with wireguard-go (integration/sync), and the log says so.
if [ "$WG_BACKEND" = uapi ]; then
        # ---- hamgr peer add while a change from the other node waits to be written
        # gw2's wireguard-go stopped (SIGSTOP): gw1's change, merged on gw2, cannot
        # reach gw2's device yet, and the write that will bring it could undo an
        # edit made there now (hamgr(8)): such an edit is refused, and accepted
        # once the write is done.
        write_pending() {
                [ "$(hamgr_status gw2 | jq -r '.sync.devices[] | select(.interface == "wg0") | .write_pending')" = "$1" ]
        }
        assert_true "status: no write pending on gw2" wait_until 5 write_pending false
        k3=$(wg genkey | wg pubkey)
        k4=$(wg genkey | wg pubkey)
        kill -STOP "${WG_GO_PID[gw2]}"
        node_exec gw1 wg set wg0 peer "$k3" allowed-ips 10.99.4.4/32
        pending_seen=1
        wait_until 5 write_pending true || pending_seen=0
        rc=0
        err=$(node_exec gw2 "$HAMGR_BIN" peer add wg0 "$k4" --allowed-ips 10.99.5.5/32 -s /run/hamgr/control.sock 2>&1) || rc=$?
        kill -CONT "${WG_GO_PID[gw2]}"
        assert_eq "$pending_seen" 1 "gw1's change merged on gw2 waits to be written (status: write_pending)"
        assert_eq "$rc" 1 "hamgr peer add on gw2 meanwhile is refused"
        assert_contains "$err" "replication is writing changes from the other node to wg0" "and says why"
        # Within 2 s the stalled write gets its answer; later, it timed out, and the
        # poll retries once the 10 s hold-off of a stalled daemon is over.
        assert_true "gw1's change reaches gw2's device once wireguard-go runs again" wait_until 20 wg_has_peer gw2 "$k3"
        assert_true "status: the write is no longer pending" wait_until 5 write_pending false
        node_exec gw2 "$HAMGR_BIN" peer add wg0 "$k4" --allowed-ips 10.99.5.5/32 -s /run/hamgr/control.sock
        assert_true "then hamgr peer add on gw2 is accepted and reaches gw1" wait_until 5 wg_has_peer gw1 "$k4"

        # ---- hamgr peer add does not hold the event loop
        # gw1's wireguard-go stopped: the add waits for the device beside the loop,
        # and gw1 goes on sending adverts every 100 ms, so gw2 stays BACKUP. Had the
        # add waited on the loop, gw1 would have been silent past gw2's master-down
        # interval (about 360 ms) until its wireguard-go ran again.
        k5=$(wg genkey | wg pubkey)
        kill -STOP "${WG_GO_PID[gw1]}"
        node_exec gw1 "$HAMGR_BIN" peer add wg0 "$k5" --allowed-ips 10.99.6.6/32 -s /run/hamgr/control.sock \
                >"$HI_TMP/add5.out" 2>&1 &
        add_pid=$!
        held=0
        holds_for 0.8 hamgr_state_is gw2 wan BACKUP || held=1
        # Within the 2 s a UAPI exchange may stall.
        kill -CONT "${WG_GO_PID[gw1]}"
        rc=0
        wait "$add_pid" || rc=$?
        assert_eq "$held" 0 "gw2 stays BACKUP while gw1's hamgr peer add waits for its stopped wireguard-go"
        assert_eq "$rc" 0 "the add succeeds once wireguard-go runs again ($(cat "$HI_TMP/add5.out"))"
        assert_true "and reaches gw2" wait_until 5 wg_has_peer gw2 "$k5"
        wait_until 10 hamgr_state_is gw1 wan MASTER || die "gw1 is not MASTER again"

        # ---- a change merged while an add is being written waits for it
        # gw2 re-adds a peer (new allowed IPs) while its wireguard-go is stopped;
        # meanwhile gw1 removes that peer. The removal, merged on gw2 during the
        # add's write, is older than the add, which is versioned when its write
        # ends: written at once, it could land after the add and leave the device
        # without a peer the replica holds live, which gw2's next poll would then
        # remove everywhere. It waits for the add, and the add wins on both nodes.
        k6=$(wg genkey | wg pubkey)
        node_exec gw1 wg set wg0 peer "$k6" allowed-ips 10.99.7.7/32
        wait_until 5 wg_has_peer gw2 "$k6" || die "gw1's peer $k6 did not reach gw2"
        edits_writing() {
                [ "$(hamgr_status gw2 | jq -r '.sync.devices[] | select(.interface == "wg0") | .edits_writing')" = "$1" ]
        }
        kill -STOP "${WG_GO_PID[gw2]}"
        node_exec gw2 "$HAMGR_BIN" peer add wg0 "$k6" --allowed-ips 10.99.7.8/32 -s /run/hamgr/control.sock \
                >"$HI_TMP/add6.out" 2>&1 &
        add_pid=$!
        writing_seen=1
        wait_until 1 edits_writing 1 || writing_seen=0
        merged_before=$(hamgr_status gw2 | jq -r .sync.merges)
        node_exec gw1 wg set wg0 peer "$k6" remove
        merged() {
                [ "$(hamgr_status gw2 | jq -r .sync.merges)" -gt "$merged_before" ]
        }
        removal_merged=1
        wait_until 1 merged || removal_merged=0
        kill -CONT "${WG_GO_PID[gw2]}"
        rc=0
        wait "$add_pid" || rc=$?
        assert_eq "$writing_seen" 1 "status: gw2's add is being written (edits_writing)"
        assert_eq "$removal_merged" 1 "gw1's removal is merged on gw2 during the add's write"
        assert_eq "$rc" 0 "the add succeeds ($(cat "$HI_TMP/add6.out"))"
        has_allowed_on() {
                [ "$(allowed_of "$1" "$k6")" = "$2" ]
        }
        assert_true "the add, the newer edit, holds on gw2's device" holds_for 2 has_allowed_on gw2 10.99.7.8/32
        assert_true "and comes back to gw1's device" wait_until 5 has_allowed_on gw1 10.99.7.8/32
else
        hi_log "kernel backend: the stalled-device cases run in integration/sync (wireguard-go), not here"
fi

# ---- the state file
state=$HI_TMP/gw2.state/replica.state
assert_true "gw2 keeps its replicated state in state_dir" test -s "$state"
assert_eq "$(stat -c %a "$state")" 600 "state file mode"
gwkey_hex=$(printf '%s' "$WG_GW_KEY" | base64 -d | od -An -tx1 | tr -d ' \n')
if od -An -tx1 "$state" | tr -d ' \n' | grep -q "$gwkey_hex"; then
        fail "the WireGuard private key is in the state file in the clear"
else
        pass "no WireGuard private key in the clear in the state file"
fi

# ---- a node with the wrong key is refused
# The rogue dials gw1 (pinning gw1's real key) with a key gw1 does not
# know, from gw2's address (a configured peer's, so only the key can stop
# it), with a device wg9 of its own that holds one peer: had it been let
# in, that peer would have been merged on gw1. Its VRRP instance (priority
# 50) stays BACKUP behind gw1.
(umask 077; "$HAMGR_BIN" genkey >"$HI_TMP/rogue.sync.key")
chmod 600 "$HI_TMP/rogue.sync.key"
wg_dev_start gw2 wg9
kR=$(wg genkey | wg pubkey)
node_exec gw2 wg set wg9 private-key "$HI_TMP/gw.key" peer "$kR" allowed-ips 10.99.66.6/32
SOCK=rogue WGIF=wg9 write_conf rogue 50 2 1 "${pub[1]}" 7790
sync_of() {
        hamgr_status "$1" "${2:-/run/hamgr/control.sock}" | jq -er ".sync$3"
}
devices() {
        printf '%s|%s' "$(node_exec gw1 wg show wg0 dump | awk 'NR > 1 { print $1, $4 }' | sort)" \
                "$(node_exec gw2 wg show wg0 dump | awk 'NR > 1 { print $1, $4 }' | sort)"
}
merges0=$(sync_of gw1 "" .merges)
records0=$(sync_of gw1 "" .records)
refused0=$(sync_of gw1 "" .handshakes_failed)
devices0=$(devices)
node_spawn gw2 "$HI_TMP/rogue.log" "$HAMGR_BIN" run -c "$HI_TMP/rogue.conf"
rogue=$HI_LAST_PID
rogue_has_own_peer() {
        node_exec gw2 "$HAMGR_BIN" peers --json -s /run/hamgr/rogue.sock |
                jq -e --arg k "$kR" 'any(.[]; .public_key == $k and .removed == false)'
}
assert_true "rogue: its own peer is in its replica (something to push)" wait_until 5 rogue_has_own_peer
refused_more() {
        [ "$(sync_of gw1 "" .handshakes_failed)" -gt "$refused0" ]
}
assert_true "gw1: sync.handshakes_failed counts the rogue (was $refused0)" wait_until 10 refused_more
# The rogue redials with backoff: give it a few more attempts.
assert_true "rogue: never connected" holds_for 2 eval \
        '[ "$(sync_of gw2 /run/hamgr/rogue.sock ".peers[0].connected")" = false ]'
rs=$(hamgr_status gw2 /run/hamgr/rogue.sock)
assert_eq "$(jq -r '[.sync.merges, .sync.peers[0].frames_rx, .sync.peers[0].last_frame_ms_ago] | map(tostring) | join(" ")' <<<"$rs")" \
        "0 0 null" "rogue: no merge, no frame received from gw1"
assert_eq "$(node_exec gw2 "$HAMGR_BIN" peers --json -s /run/hamgr/rogue.sock | jq -r '[.[] | .public_key] | join(" ")')" \
        "$kR" "rogue: its replica holds only its own peer"
assert_eq "$(node_exec gw2 wg show wg9 peers | tr '\n' ' ')" "$kR " "rogue: its device got none of gw1's peers"
stop_pid "$rogue" TERM
wg_dev_stop gw2 wg9
assert_eq "$(sync_of gw1 "" .merges):$(sync_of gw1 "" .records)" "$merges0:$records0" "gw1: no merge, same records"
assert_eq "$(devices)" "$devices0" "gw1 and gw2: devices unchanged"
assert_false "gw1: the rogue's peer is not on its device" wg_has_peer gw1 "$kR"
assert_eq "$(sync_of gw1 "" '.peers[0].refused')" 0 "gw1: the refusal is not blamed on gw2"
assert_contains "$(cat "$(hamgr_log gw1)")" "sync: refused connection (" "gw1 logged the refused connection"
assert_true "gw1 still connected to the real gw2" connected gw1

# ---- partition: edits on both sides merge on heal, a removal stays
k3=$(wg genkey | wg pubkey)
k4=$(wg genkey | wg pubkey)
node_exec gw1 wg set wg0 peer "$k3" allowed-ips 10.99.4.4/32
assert_true "k3 replicated before the partition" wait_until 5 wg_has_peer gw2 "$k3"
disconnected() {
        [ "$(hamgr_status "$1" | jq -r '.sync.peers[0].connected')" = false ]
}
# A partition of the sync link: gw2's hamgr is away while both sides edit.
hamgr_stop gw2 TERM
node_exec gw1 wg set wg0 peer "$k3" remove
node_exec gw2 wg set wg0 peer "$k4" allowed-ips 10.99.5.5/32
hamgr_start gw2 "$HI_TMP/gw2.conf"
assert_true "heal: the sync link is back" wait_until 10 connected gw1
assert_true "heal: gw2's edit made while apart reached gw1" wait_until 5 wg_has_peer gw1 "$k4"
assert_true "heal: gw1's removal made while apart reached gw2" wait_until 5 wg_no_peer gw2 "$k3"
assert_true "heal: the removed peer stays removed on gw1" holds_for 1 wg_no_peer gw1 "$k3"

# ---- restart of the backup while the master is down: every peer kept
expected=$(node_exec gw1 wg show wg0 peers | sort | tr '\n' ' ')
hamgr_stop gw2 TERM
wg_go_stop gw2
node_link gw1 eth0 down
hamgr_stop gw1 KILL
wg_go_start gw2
node_exec gw2 ip addr add "$WG_GW_TUN/24" dev wg0
assert_eq "$(node_exec gw2 wg show wg0 peers | wc -l)" 0 "gw2's fresh wireguard-go starts empty"
hamgr_start gw2 "$HI_TMP/gw2.conf"
assert_true "restarted gw2 becomes master alone" wait_until 10 hamgr_state_is gw2 wan MASTER
assert_eq "$(node_exec gw2 wg show wg0 peers | sort | tr '\n' ' ')" "$expected" "restarted gw2 has every peer from its state file"
assert_eq "$(node_exec gw2 wg show wg0 public-key)" "$WG_GW_PUB" "restarted gw2 has the gateway's private key back"
wg_client_setup "$VIP:$WG_PORT"
assert_true "a client connects through the restarted gw2" wait_until 20 tunnel_ping

# hamgr(8) LOGGING: private and preshared keys are never logged, in base64
# or in the hex the UAPI speaks, over this whole run (every start, the
# replication, the restart) nor shown by status.
key_hex() {
        base64 -d <<<"$1" | od -An -tx1 | tr -d ' \n'
}
for g in gw1 gw2; do
        out=$(cat "$(hamgr_log "$g")"; node_exec "$g" "$HAMGR_BIN" status --json -s /run/hamgr/control.sock 2>/dev/null || true)
        for secret in psk:"$(cat "$HI_TMP/k2.psk")" wireguard-private:"$WG_GW_KEY" sync-private:"$(cat "$HI_TMP/$g.sync.key")"; do
                b64=${secret#*:}
                hex=$(key_hex "$b64")
                if [ ${#hex} -ne 64 ]; then
                        fail "$g: the ${secret%%:*} key is not a key ('$b64')"
                elif [[ "$out" == *"$b64"* || "$out" == *"$hex"* ]]; then
                        fail "$g: its log or status holds the ${secret%%:*} key"
                else
                        pass "$g: its log and status hold no ${secret%%:*} key ($(grep -c . <<<"$out") lines)"
                fi
        done
done

finish
