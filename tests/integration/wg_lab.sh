# SPDX-License-Identifier: GPL-2.0-or-later
# shellcheck shell=bash
#
# WireGuard on top of lib.sh's lab: wireguard-go per node (inside the node's
# holder, so each has its own /var/run/wireguard), a gateway key shared by
# all gateways (as a real HA pair has), one client key. Sourced after lib.sh.
#
#   gateways: wg0 10.99.0.1/24, listen port 51820, peer = the client
#             (allowed 10.99.0.2/32, no endpoint: learned or restored)
#   client:   wg0 10.99.0.2/24, peer = the gateways at VIP:51820
#             (allowed 10.99.0.0/24)
#
# HAMGR_WG_BACKEND=kernel (tests/vm/run-in-vm.sh sets it, in a guest whose
# kernel has the module): the devices are the kernel's (ip link add ...
# type wireguard) instead of wireguard-go, and $WG_BACKEND, which tests
# write as the config's backend, is "kernel". Stopping a device then
# deletes the link, as wireguard-go's death removes its TUN. Default: uapi.

WG_PORT=51820
WG_GW_TUN=10.99.0.1
WG_CLIENT_TUN=10.99.0.2
declare -A WG_GO_PID=()
WG_BACKEND=${HAMGR_WG_BACKEND:-uapi}
case $WG_BACKEND in
uapi|kernel) ;;
*) die "HAMGR_WG_BACKEND=$WG_BACKEND: expected uapi or kernel" ;;
esac
declare -A WG_DEV_PID=()     # "NODE IFACE" -> wireguard-go pid (uapi)
declare -A WG_DEV_KERNEL=()  # "NODE IFACE" -> 1: a kernel link we added

wg_keys() {
        WG_GW_KEY=$(wg genkey)
        WG_GW_PUB=$(printf '%s' "$WG_GW_KEY" | wg pubkey)
        WG_CLIENT_KEY=$(wg genkey)
        WG_CLIENT_PUB=$(printf '%s' "$WG_CLIENT_KEY" | wg pubkey)
        printf '%s\n' "$WG_GW_KEY" >"$HI_TMP/gw.key"
        printf '%s\n' "$WG_CLIENT_KEY" >"$HI_TMP/client.key"
        chmod 600 "$HI_TMP/gw.key" "$HI_TMP/client.key"
}

# wg_dev_start NODE [IFACE]: an empty WireGuard device IFACE (default wg0)
# in NODE, of $WG_BACKEND's kind: wireguard-go (then waits for its UAPI
# socket) or the kernel's link.
wg_dev_start() {
        local node=$1 ifname=${2:-wg0} log
        node_start "$node"
        if [ "$WG_BACKEND" = kernel ]; then
                node_exec "$node" ip link add "$ifname" type wireguard ||
                        die "cannot add a kernel wireguard link $ifname on $node"
                WG_DEV_KERNEL["$node $ifname"]=1
                return 0
        fi
        log=$HI_TMP/$node.wireguard-go.log
        [ "$ifname" = wg0 ] || log=$HI_TMP/$node.$ifname.wireguard-go.log
        WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 \
                node_spawn "$node" "$log" wireguard-go -f "$ifname"
        WG_DEV_PID["$node $ifname"]=$HI_LAST_PID
        [ "$ifname" != wg0 ] || WG_GO_PID[$node]=$HI_LAST_PID
        wait_until 5 node_exec "$node" test -S "/var/run/wireguard/$ifname.sock" ||
                die "wireguard-go did not come up on $node: $(cat "$log")"
}

# wg_dev_stop NODE [IFACE [SIGNAL]]: the device goes away: wireguard-go
# stopped with SIGNAL (default TERM), or the kernel link deleted.
wg_dev_stop() {
        local node=$1 ifname=${2:-wg0} sig=${3:-TERM} key="$1 ${2:-wg0}"
        if [ -n "${WG_DEV_KERNEL[$key]:-}" ]; then
                unset 'WG_DEV_KERNEL[$key]'
                node_exec "$node" ip link del "$ifname"
                return
        fi
        [ -n "${WG_DEV_PID[$key]:-}" ] || return 0
        stop_pid "${WG_DEV_PID[$key]}" "$sig"
        unset 'WG_DEV_PID[$key]'
        [ "$ifname" != wg0 ] || unset 'WG_GO_PID[$node]'
}

# wg_go_start NODE: wg0 in NODE (named for wireguard-go, the default).
wg_go_start() {
        wg_dev_start "$1" wg0
}

wg_go_stop() {
        wg_dev_stop "$1" wg0 "${2:-TERM}"
}

# wg_gateway_setup NODE: the shared gateway identity, link left down (hamgr
# decides when it comes up).
wg_gateway_setup() {
        local node=$1
        wg_go_start "$node"
        node_exec "$node" wg set wg0 private-key "$HI_TMP/gw.key" listen-port "$WG_PORT" \
                peer "$WG_CLIENT_PUB" allowed-ips "$WG_CLIENT_TUN/32"
        node_exec "$node" ip addr add "$WG_GW_TUN/24" dev wg0
}

# wg_client_setup ENDPOINT [KEEPALIVE]: the client, pointed at ENDPOINT.
wg_client_setup() {
        local endpoint=$1 keepalive=${2:-0}
        wg_go_start client
        node_exec client wg set wg0 private-key "$HI_TMP/client.key" \
                peer "$WG_GW_PUB" endpoint "$endpoint" allowed-ips 10.99.0.0/24 persistent-keepalive "$keepalive"
        node_exec client ip addr add "$WG_CLIENT_TUN/24" dev wg0
        node_exec client ip link set wg0 up
}

# wg_link_up NODE: wg0 is administratively up in NODE.
wg_link_up() {
        node_exec "$1" ip -o link show wg0 | grep -q '<[^>]*[<,]UP[,>]'
}

wg_link_down() {
        node_exec "$1" ip -o link show wg0 >/dev/null 2>&1 && ! wg_link_up "$1"
}

# tunnel_ping: one ping from the client to the gateway's tunnel address.
tunnel_ping() {
        node_exec client ping -c 1 -W 1 "$WG_GW_TUN" >/dev/null 2>&1
}

# wg_peer_endpoint NODE: the endpoint NODE has for its (only) peer.
wg_peer_endpoint() {
        node_exec "$1" wg show wg0 endpoints | awk '{ print $2 }'
}

# wg_random_peers N [endpoint] [v6]: N [Peer] sections for `wg addconf`,
# random public keys (they never answer), AllowedIPs 10.100.0.1/32 and up
# (with "v6" also fd00::I/128), and with "endpoint" an endpoint at the
# client's address, port 20000 + I, where nothing listens.
wg_random_peers() {
        python3 - "$@" <<'PY'
import base64, os, sys
n = int(sys.argv[1])
endpoint = "endpoint" in sys.argv[2:]
v6 = "v6" in sys.argv[2:]
for i in range(n):
    print("[Peer]")
    print("PublicKey = " + base64.b64encode(os.urandom(32)).decode())
    ips = "10.%d.%d.%d/32" % (100 + i // 62500, i // 250 % 250, i % 250 + 1)
    if v6:
        ips += ", fd00::%x/128" % (i + 1)
    print("AllowedIPs = " + ips)
    if endpoint:
        print("Endpoint = 10.77.0.100:%d" % (20000 + i))
    print()
PY
}

# ---- a replicating pair (gw1, gw2: sync on 10.77.0.N:7789, wg0 on uapi)

# wg_gen_peers N BASE: N [Peer] sections for `wg addconf`, allowed IPs
# 10.(100+i/65536).(i/256%256).(i%256)/32 from i = BASE. The keys are 256
# random bits: 33 random bytes are 44 base64 characters; the first 42 are
# kept and the 43rd is masked to the 4 bits a 32-byte key has left there.
# One pass instead of a `head | base64` per peer, which takes minutes at
# 100,000.
wg_gen_peers() {
        local n=$1 base=$2
        head -c $((33 * n)) /dev/urandom | base64 -w 44 | awk -v base="$base" '
        BEGIN { A = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/" }
        {
                k = index(A, substr($0, 43, 1)) - 1
                k -= k % 4
                j = NR - 1 + base
                printf "[Peer]\nPublicKey = %s%s=\nAllowedIPs = 10.%d.%d.%d/32\n\n", substr($0, 1, 42), substr(A, k + 1, 1),
                        100 + int(j / 65536), int(j / 256) % 256, j % 256
        }'
}

# sync_pair_keys: a sync key per gateway in $HI_TMP/gwN.sync.key, the
# public ones in SYNC_PUB[N].
declare -gA SYNC_PUB=()
sync_pair_keys() {
        local g
        for g in gw1 gw2; do
                (umask 077; "$HAMGR_BIN" genkey >"$HI_TMP/$g.sync.key")
                SYNC_PUB[${g#gw}]=$("$HAMGR_BIN" pubkey <"$HI_TMP/$g.sync.key")
        done
}

# sync_pair_conf NODE PRIORITY MY_INDEX OTHER_INDEX VIP SYNC_LINES: NODE's
# config in $HI_TMP/NODE.conf (checked with hamgr check): wg0 following
# "wan" with VIP as source, polled every 200 ms, SYNC_LINES added to the
# sync section.
sync_pair_conf() {
        local node=$1 prio=$2 me=$3 other=$4 vip=$5 extra=$6
        HC_TRACK='' HC_INTERVAL_MS=100 write_hamgr_conf "$HI_TMP/$node.conf" "$node" "$prio" "$(cat <<EOF
wireguard = ( { interface = "wg0"; backend = "uapi"; follow = "wan"; source_address = "$vip"; } );
sync = {
    listen = "10.77.0.$me:7789";
    private_key_file = "$HI_TMP/$node.sync.key";
    poll_interval_ms = 200;
$extra
    peers = ( { name = "gw$other"; address = "10.77.0.$other:7789"; public_key = "${SYNC_PUB[$other]}"; } );
};
EOF
)"
        "$HAMGR_BIN" check -c "$HI_TMP/$node.conf" >/dev/null || die "hamgr check: $("$HAMGR_BIN" check -c "$HI_TMP/$node.conf" 2>&1)"
}

# ctl NODE ARGS...: hamgr ARGS against NODE's daemon.
ctl() {
        local node=$1
        shift
        node_exec "$node" "$HAMGR_BIN" "$@" -s /run/hamgr/control.sock
}
# sync_connected NODE: its (one) sync peer is connected.
sync_connected() {
        [ "$(hamgr_status "$1" | jq -r '.sync.peers[0].connected')" = true ]
}
# wg_has_peer / wg_no_peer NODE KEY: on NODE's wg0 or not.
wg_has_peer() {
        node_exec "$1" wg show wg0 peers | grep -xF "$2" >/dev/null
}
wg_no_peer() {
        ! wg_has_peer "$1" "$2"
}
# sync_revoked KEY: on neither gateway's wg0, and on neither a live peer in
# `hamgr peers` (removed, or not listed at all).
sync_revoked() {
        local n
        for n in gw1 gw2; do
                wg_no_peer "$n" "$1" || return 1
                ctl "$n" peers --json | jq -e --arg k "$1" 'all(.[]; .public_key != $k or .removed)' >/dev/null || return 1
        done
}
