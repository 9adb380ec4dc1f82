#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Replication across a real partition of the sync link (both daemons keep
# running; only unicast between the gateways is cut, VRRP multicast still
# flows), with wireguard-go on both gateways:
#  - both sides notice the peer is gone by the 5 s liveness timeout,
#    measured from status: when `connected` first reads false,
#    last_frame_ms_ago is in [5000, 6500] ms (a shorter or a much longer
#    timeout fails), last_error says why; both keep their VRRP roles;
#  - after the heal both reconnect within the 10 s reconnect back-off cap
#    (plus 2 s) and last_error is cleared (null) on connect;
#  - edits on both sides while apart (an add on each side, a removal of a
#    peer both had, an allowed-IPs change) end, after the heal, as the same
#    merged set on both devices and the same records in `hamgr peers`; the
#    removed peer stays removed;
#  - the same peer edited on both sides while apart: the later edit wins on
#    both, whichever node made it;
#  - the clock offset to the peer is shown and small (same clock);
#  - a client added on the master just before a crash connects through the
#    new master.
# shellcheck disable=SC2317 # helpers are called through wait_until/holds_for
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/wg_lab.sh"

require_hamgr
require_cmd wireguard-go wg ping

VIP=10.77.0.10
SOCK=/run/hamgr/control.sock

lab_create 2
wg_keys
declare -A SYNC_PUB=()
for g in gw1 gw2; do
        (umask 077; "$HAMGR_BIN" genkey >"$HI_TMP/$g.sync.key")
        chmod 600 "$HI_TMP/$g.sync.key"
        SYNC_PUB[$g]=$("$HAMGR_BIN" pubkey <"$HI_TMP/$g.sync.key")
        # The partition is a blackhole route to the other gateway. Reverse
        # path filtering would then drop the other's VRRP adverts too (the
        # source is unroutable), which is not the partition meant here; the
        # lab's kernel default may be either, so say it.
        hi_sysctl "$(ns_of "$g")" net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.eth0.rp_filter=0
done

# write_conf NODE PRIORITY OTHER
write_conf() {
        local node=$1 prio=$2 other=$3
        HC_TRACK='' HC_INTERVAL_MS=100 write_hamgr_conf "$(conf_of "$node")" "$node" "$prio" "$(cat <<EOF
wireguard = ( { interface = "wg0"; backend = "uapi"; follow = "wan"; source_address = "$VIP"; } );
sync = {
    listen = "10.77.0.${node#gw}:7789";
    private_key_file = "$HI_TMP/$node.sync.key";
    poll_interval_ms = 200;
    bootstrap_grace_s = 0; # a new pair replicates at once (test_sync_revoke.sh: the wait)
    peers = ( { name = "$other"; address = "10.77.0.${other#gw}:7789"; public_key = "${SYNC_PUB[$other]}"; } );
};
EOF
)"
        "$HAMGR_BIN" check -c "$(conf_of "$node")" >/dev/null ||
                die "hamgr check: $("$HAMGR_BIN" check -c "$(conf_of "$node")" 2>&1)"
}

# ---- helpers

sync_field() {
        hamgr_status "$1" | jq -r ".sync.peers[0].$2"
}
connected() {
        [ "$(sync_field "$1" connected)" = true ]
}
disconnected() {
        [ "$(sync_field "$1" connected)" = false ]
}
# allowed_of NODE KEY: the peer's allowed IPs on NODE's device, sorted,
# comma separated ("" when it has none or is not there).
allowed_of() {
        node_exec "$1" wg show wg0 dump |
                awk -v k="$2" 'NR > 1 && $1 == k { print $4 }' | tr ',' '\n' | sort | paste -sd, -
}
allowed_is() {
        [ "$(allowed_of "$1" "$2")" = "$3" ]
}
# peer_set NODE: "KEY ALLOWED" per peer of NODE's wg0 (from wg show dump),
# allowed IPs sorted, peers sorted: what must agree between the nodes.
peer_set() {
        node_exec "$1" wg show wg0 dump | awk 'NR > 1 { print $1, $4 }' |
                while read -r k a; do
                        printf '%s %s\n' "$k" "$(tr ',' '\n' <<<"$a" | sort | paste -sd, -)"
                done | sort
}
same_peer_set() {
        [ "$(peer_set gw1)" = "$(peer_set gw2)" ]
}
# records NODE: `hamgr peers --json` without the per-node view
# (on_every_node is about what this node heard back), sorted by key.
records() {
        node_exec "$1" "$HAMGR_BIN" peers --json -s "$SOCK" |
                jq -cS 'map(del(.on_every_node)) | sort_by(.interface, .public_key)'
}
same_records() {
        local a b
        a=$(records gw1) && b=$(records gw2) && [ -n "$a" ] && [ "$a" = "$b" ]
}
# record_allowed NODE KEY: the allowed IPs of KEY's record in NODE's replica.
record_allowed() {
        node_exec "$1" "$HAMGR_BIN" peers --json -s "$SOCK" |
                jq -r --arg k "$2" '.[] | select(.public_key == $k) | .allowed_ips | join(",")'
}
record_allowed_is() {
        [ "$(record_allowed "$1" "$2")" = "$3" ]
}
wg_on() {
        local node=$1
        shift
        node_exec "$node" wg set wg0 "$@"
}
newkey() {
        wg genkey | wg pubkey
}
# cut_sync / heal_sync: a blackhole route to the other gateway in each.
cut_sync() {
        ip -n "$(ns_of gw1)" route add blackhole 10.77.0.2/32
        ip -n "$(ns_of gw2)" route add blackhole 10.77.0.1/32
}
heal_sync() {
        ip -n "$(ns_of gw1)" route del blackhole 10.77.0.2/32
        ip -n "$(ns_of gw2)" route del blackhole 10.77.0.1/32
}
abs() {
        local v=$1
        echo "${v#-}"
}

# ---- setup

wg_gateway_setup gw1
wg_gateway_setup gw2
write_conf gw1 150 gw2
write_conf gw2 100 gw1
hamgr_start gw1 "$(conf_of gw1)"
wait_until 10 hamgr_state_is gw1 wan MASTER || die "gw1 not MASTER: $(tail -5 "$(hamgr_log gw1)")"
hamgr_start gw2 "$(conf_of gw2)"
wait_until 10 hamgr_state_is gw2 wan BACKUP || die "gw2 not BACKUP: $(tail -5 "$(hamgr_log gw2)")"
wait_until 10 connected gw1 || die "gw1 never connected to gw2: $(tail -5 "$(hamgr_log gw1)")"
wait_until 5 connected gw2 || die "gw2 never connected to gw1"

# ---- the clock offset (namespaces share one clock: only latency shows)
offset_known() {
        [[ "$(sync_field "$1" clock_offset_ms)" =~ ^-?[0-9]+$ ]]
}
for g in gw1 gw2; do
        if wait_until 5 offset_known "$g"; then
                off=$(sync_field "$g" clock_offset_ms)
                if [ "$(abs "$off")" -lt 1000 ]; then
                        pass "$g: clock offset to the peer shown and small: $off ms"
                else
                        fail "$g: clock offset $off ms on a shared clock"
                fi
        else
                fail "$g: clock_offset_ms not a number: $(sync_field "$g" clock_offset_ms)"
        fi
done
assert_eq "$(grep -c 'clock offset' "$(hamgr_log gw1)" "$(hamgr_log gw2)" | awk -F: '{ s += $2 } END { print s }')" 0 \
        "no clock offset warning logged"

# ---- peers both nodes have before the partition
kC=$(newkey) # removed on gw1 while apart
kD=$(newkey) # allowed IPs changed on gw2 while apart
kE=$(newkey) # edited on both: gw1 first, gw2 a second later
kF=$(newkey) # edited on both: gw2 first, gw1 a second later
wg_on gw1 peer "$kC" allowed-ips 10.99.10.3/32 peer "$kD" allowed-ips 10.99.10.4/32 \
        peer "$kE" allowed-ips 10.99.10.5/32 peer "$kF" allowed-ips 10.99.10.6/32
for k in "$kC" "$kD" "$kE" "$kF"; do
        wait_until 5 wg_has_peer gw2 "$k" || die "a peer added on gw1 did not reach gw2 before the partition"
done
assert_true "before the partition: the devices agree" wait_until 5 same_peer_set

# ---- partition
transitions1=$(inst_field gw1 wan .counters.transitions)
transitions2=$(inst_field gw2 wan .counters.transitions)
adverts2=$(inst_field gw2 wan .counters.adverts_received)
# Both nodes are polled in one loop until each first reads connected =
# false; last_frame_ms_ago - disconnected_ms_ago at that poll is how long
# after its last frame the connection was declared dead (the poll's own
# lag cancels out).
# last_error of that poll names the cause, unless a redial (250 ms later,
# refused by the blackhole route) has already replaced it.
declare -A DEAD_AFTER=() DEAD_WHY=()
t_cut=$(hi_now_ms)
cut_sync
while [ "${#DEAD_AFTER[@]}" -lt 2 ] && [ $(($(hi_now_ms) - t_cut)) -lt 12000 ]; do
        for g in gw1 gw2; do
                [ -z "${DEAD_AFTER[$g]:-}" ] || continue
                st=$(hamgr_status "$g" | jq -r '.sync.peers[0] | "\(.connected) \(.last_frame_ms_ago) \(.disconnected_ms_ago) \(.last_error)"') || continue
                if [ "${st%% *}" = false ]; then
                        read -r _ last_ms disc_ms why <<<"$st"
                        if [[ "$last_ms" =~ ^[0-9]+$ ]] && [[ "$disc_ms" =~ ^[0-9]+$ ]]; then
                                DEAD_AFTER[$g]=$((last_ms - disc_ms))
                        else
                                DEAD_AFTER[$g]="last_frame_ms_ago=$last_ms disconnected_ms_ago=$disc_ms"
                        fi
                        DEAD_WHY[$g]=$why
                fi
        done
        sleep 0.02
done
for g in gw1 gw2; do
        l=${DEAD_AFTER[$g]:-}
        if [[ "$l" =~ ^[0-9]+$ ]] && [ "$l" -ge 5000 ] && [ "$l" -le 6500 ]; then
                pass "partition: $g declared the peer dead $l ms after its last frame (liveness 5 s)"
        else
                fail "partition: $g: last_frame_ms_ago '$l' when first seen disconnected, want 5000..6500 ($(($(hi_now_ms) - t_cut)) ms after the cut)"
        fi
        why=${DEAD_WHY[$g]:-}
        if [ "$why" = "no frame for 5 s" ] || [[ "$why" == "connect: "* ]]; then
                pass "partition: $g: last_error says why: '$why'"
        else
                fail "partition: $g: last_error '$why', want 'no frame for 5 s' (or a failed redial)"
        fi
done

kA=$(newkey) # added on gw1 while apart
kB=$(newkey) # added on gw2 while apart
wg_on gw1 peer "$kA" allowed-ips 10.99.11.1/32
wg_on gw1 peer "$kC" remove
wg_on gw2 peer "$kB" allowed-ips 10.99.12.1/32
wg_on gw2 peer "$kD" allowed-ips 10.99.10.4/32,10.99.13.0/24
# Concurrent edits of one peer: the second one a second later, each taken
# into the local replica (polled, versioned) before the other is made.
wg_on gw1 peer "$kE" allowed-ips 10.99.14.1/32
wg_on gw2 peer "$kF" allowed-ips 10.99.15.2/32
wait_until 5 record_allowed_is gw1 "$kE" 10.99.14.1/32 || fail "gw1 did not record its edit of E"
wait_until 5 record_allowed_is gw2 "$kF" 10.99.15.2/32 || fail "gw2 did not record its edit of F"
sleep 1 # not a timer: the later edits must carry a clearly later wall time
wg_on gw2 peer "$kE" allowed-ips 10.99.14.2/32
wg_on gw1 peer "$kF" allowed-ips 10.99.15.1/32
wait_until 5 record_allowed_is gw2 "$kE" 10.99.14.2/32 || fail "gw2 did not record its edit of E"
wait_until 5 record_allowed_is gw1 "$kF" 10.99.15.1/32 || fail "gw1 did not record its edit of F"

# Nothing crossed: the partition is real.
assert_true "partition: gw1's new peer A is not on gw2" wg_no_peer gw2 "$kA"
assert_true "partition: gw2's new peer B is not on gw1" wg_no_peer gw1 "$kB"
assert_true "partition: C removed on gw1 is still on gw2" wg_has_peer gw2 "$kC"
assert_true "partition: the edits are still apart" test "$(allowed_of gw1 "$kE")" != "$(allowed_of gw2 "$kE")"
assert_true "partition: VRRP still flows (gw2 kept receiving adverts)" \
        test "$(inst_field gw2 wan .counters.adverts_received)" -gt "$adverts2"
assert_true "partition: both still connected-false" disconnected gw1
assert_eq "$(hamgr_state gw1 wan)/$(hamgr_state gw2 wan)" MASTER/BACKUP "partition: VRRP roles unchanged"

# ---- heal
t_heal=$(hi_now_ms)
heal_sync
# Reconnects back off up to 10 s; both sides dial.
assert_true "heal: gw1 reconnected" wait_until 15 connected gw1
assert_true "heal: gw2 reconnected" wait_until 5 connected gw2
took=$(($(hi_now_ms) - t_heal))
assert_true "heal: reconnected after $took ms, within the 10 s back-off cap" test "$took" -le 12000
for g in gw1 gw2; do
        assert_eq "$(sync_field "$g" last_error)" null "heal: $g: last_error cleared on connect"
done
assert_true "heal: both devices end with the same peers and allowed IPs" wait_until 5 same_peer_set
for g in gw1 gw2; do
        assert_true "heal: $g has A (added on gw1 while apart)" wg_has_peer "$g" "$kA"
        assert_true "heal: $g has B (added on gw2 while apart)" wg_has_peer "$g" "$kB"
        assert_true "heal: $g has no C (removed on gw1 while apart)" wg_no_peer "$g" "$kC"
        assert_eq "$(allowed_of "$g" "$kD")" "10.99.10.4/32,10.99.13.0/24" "heal: $g: D's allowed IPs from gw2"
        assert_eq "$(allowed_of "$g" "$kE")" "10.99.14.2/32" "heal: $g: E, the later edit (gw2's) wins"
        assert_eq "$(allowed_of "$g" "$kF")" "10.99.15.1/32" "heal: $g: F, the later edit (gw1's) wins"
        assert_eq "$(allowed_of "$g" "$WG_CLIENT_PUB")" "$WG_CLIENT_TUN/32" "heal: $g: the untouched client peer kept"
done
c_gone() {
        wg_no_peer gw1 "$kC" && wg_no_peer gw2 "$kC" && same_peer_set
}
assert_true "heal: C stays removed and the sets stay equal" holds_for 2 c_gone
assert_true "heal: hamgr peers shows the same records on both" wait_until 5 same_records
# Each side has heard back from the other for everything it holds.
all_confirmed() {
        node_exec "$1" "$HAMGR_BIN" peers --json -s "$SOCK" | jq -e 'length > 0 and all(.on_every_node)' &&
                [ "$(sync_field "$1" pending_changes)" = 0 ]
}
assert_true "heal: gw1 has every record confirmed by gw2" wait_until 5 all_confirmed gw1
assert_true "heal: gw2 has every record confirmed by gw1" wait_until 5 all_confirmed gw2
rec=$(records gw2)
assert_eq "$(jq -r --arg k "$kC" '.[] | select(.public_key == $k) | .removed' <<<"$rec")" true "peers: C is a tombstone"
assert_eq "$(jq -r --arg k "$kE" '.[] | select(.public_key == $k) | .origin' <<<"$rec")" gw2 "peers: E's winner came from gw2"
assert_eq "$(jq -r --arg k "$kF" '.[] | select(.public_key == $k) | .origin' <<<"$rec")" gw1 "peers: F's winner came from gw1"
assert_eq "$(jq -r 'map(select(.removed == false)) | length' <<<"$rec")" 6 "peers: 6 live records (client, A, B, D, E, F)"
assert_eq "$(inst_field gw1 wan .counters.transitions)/$(inst_field gw2 wan .counters.transitions)" \
        "$transitions1/$transitions2" "no VRRP transition on either node through partition and heal"

# ---- a client added on the master just before a failover
CLIENT2_KEY=$(wg genkey)
CLIENT2_PUB=$(printf '%s' "$CLIENT2_KEY" | wg pubkey)
printf '%s\n' "$CLIENT2_KEY" >"$HI_TMP/client2.key"
chmod 600 "$HI_TMP/client2.key"
node_exec gw1 "$HAMGR_BIN" peer add wg0 "$CLIENT2_PUB" --allowed-ips 10.99.0.3/32 -s "$SOCK" >/dev/null
assert_true "client2 added on gw1 reaches gw2" wait_until 5 wg_has_peer gw2 "$CLIENT2_PUB"
crash_node gw1 "$VIP/24"
assert_true "failover: gw2 MASTER" wait_until 5 hamgr_state_is gw2 wan MASTER
assert_true "failover: wg0 up on gw2" wait_until 5 wg_link_up gw2

WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 \
        node_spawn client "$HI_TMP/client.wg1.wireguard-go.log" wireguard-go -f wg1
wait_until 5 node_exec client test -S /var/run/wireguard/wg1.sock ||
        die "wireguard-go wg1 did not come up: $(cat "$HI_TMP/client.wg1.wireguard-go.log")"
node_exec client wg set wg1 private-key "$HI_TMP/client2.key" \
        peer "$WG_GW_PUB" endpoint "$VIP:$WG_PORT" allowed-ips 10.99.0.0/24
node_exec client ip addr add 10.99.0.3/24 dev wg1
node_exec client ip link set wg1 up
client2_ping() {
        node_exec client ping -c 1 -W 1 -I wg1 "$WG_GW_TUN"
}
assert_true "client2 reaches 10.99.0.1 through gw2" wait_until 10 client2_ping
hs=$(node_exec gw2 wg show wg0 latest-handshakes | awk -v k="$CLIENT2_PUB" '$1 == k { print $2 }')
assert_true "gw2 did the handshake with client2" test "${hs:-0}" -gt 0

finish
