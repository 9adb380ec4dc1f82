#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Spoke-side endpoint rotation: a client with two candidate gateways (gw1,
# gw2, the same gateway key, each serving wg0 on its own address, no VRRP)
# runs hamgr with only an endpoints section.
#  - control: without hamgr, WireGuard keeps sending to a dead gw1 for good;
#  - with hamgr, the peer moves to gw2 once the last handshake is older than
#    stale_after_s, and the tunnel works through gw2;
#  - a healthy idle tunnel (keepalives only) is not rotated;
#  - prefer_first (first candidate by name): a restarted daemon finds the
#    peer on gw2, keeps it there while gw1 is away and returns to gw1 as
#    soon as it answers ICMP again.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/wg_lab.sh"

require_root
require_cmd wireguard-go wg jq ping
[ -n "${HAMGR_BIN:-}" ] || die "HAMGR_BIN is not set"

GW1_EP=10.77.0.1:$WG_PORT
# gw1 by name, in a private /etc/hosts of the client's mount namespace.
GW1_NAME=gw1.spoke.hamgr-lab.test
GW1_NAME_EP=$GW1_NAME:$WG_PORT
GW2_EP=10.77.0.2:$WG_PORT
STALE_S=5

write_client_conf() {
        local prefer=$1 first=$2 file=$HI_TMP/client.conf
        mkdir -p "$HI_TMP/client.state"
        cat >"$file" <<EOF
node = {
    name = "client";
    state_dir = "$HI_TMP/client.state";
    control_socket = "/run/hamgr/control.sock";
};

endpoints = (
  {
    interface = "wg0";
    peer = "$WG_GW_PUB";
    candidates = [ "$first", "$GW2_EP" ];
    stale_after_s = $STALE_S;
    prefer_first = $prefer;
  }
);
EOF
        "$HAMGR_BIN" check -c "$file" >/dev/null ||
                die "hamgr check refuses a config without vrrp: $("$HAMGR_BIN" check -c "$file" 2>&1)"
}

ep_field() {
        hamgr_status client | jq -r ".endpoints[0].$1"
}

endpoint_is() {
        [ "$(wg_peer_endpoint client)" = "$1" ]
}

# No rotation since ROT, and the peer not on gw1 (it may have no endpoint
# for a moment while hamgr re-adds it to ask for a handshake).
stays_put() {
        [ "$(ep_field rotations)" = "$1" ] && ! endpoint_is "$GW1_EP"
}

# gw1 back as after a reboot: no session with the client and no endpoint
# for it. (A gateway that still knows the client would contact it itself,
# and WireGuard on the client would roam to it whatever hamgr does.)
gw1_return() {
        node_exec gw1 wg set wg0 peer "$WG_CLIENT_PUB" remove
        node_exec gw1 wg set wg0 peer "$WG_CLIENT_PUB" allowed-ips "$WG_CLIENT_TUN/32"
        node_link gw1 eth0 up
}

lab_create 2
wg_keys
for g in gw1 gw2; do
        wg_gateway_setup "$g"
        # No VRRP here: each gateway serves on its own address all the time.
        node_exec "$g" ip link set wg0 up
done
wg_client_setup "$GW1_EP" 2
# The holder has a private mount namespace: this hides the host's file
# from the client only.
{ cat /etc/hosts; printf '10.77.0.1 %s\n' "$GW1_NAME"; } >"$HI_TMP/client.hosts"
node_exec client mount --bind "$HI_TMP/client.hosts" /etc/hosts
assert_eq "$(node_exec client getent hosts "$GW1_NAME" | awk '{ print $1 }')" 10.77.0.1 "the client resolves gw1's name"
assert_false "the host's /etc/hosts is untouched" grep -qF "$GW1_NAME" /etc/hosts
assert_true "the tunnel works through gw1" wait_until 10 tunnel_ping

# ---- control: WireGuard alone never leaves a dead endpoint
node_link gw1 eth0 down
t0=$(hi_now_ms)
assert_true "without hamgr the endpoint stays at the dead gw1 for $((STALE_S + 2)) s" \
        holds_for $((STALE_S + 2)) endpoint_is "$GW1_EP"
assert_false "without hamgr the tunnel is down" tunnel_ping

# ---- hamgr moves the peer to gw2
write_client_conf false "$GW1_EP"
t0=$(hi_now_ms)
hamgr_start client "$HI_TMP/client.conf"
wait_until 5 hamgr_status client >/dev/null || die "hamgr on the client did not answer: $(tail -5 "$(hamgr_log client)")"
assert_eq "$(hamgr_status client | jq -r '.instances | length')" 0 "the daemon runs without VRRP instances"
assert_eq "$(ep_field candidate_index)" 0 "starts on the first candidate"
# The last handshake is older than stale_after_s (the control phase), so
# the move is due stale_after_s after start, polled once a second.
if wait_until $((STALE_S + 4)) endpoint_is "$GW2_EP"; then
        elapsed=$(($(hi_now_ms) - t0))
        pass "peer moved to gw2 after ${elapsed} ms"
        if [ "$elapsed" -ge $(((STALE_S - 1) * 1000)) ]; then
                pass "the move waited for stale_after_s (${elapsed} ms >= $(((STALE_S - 1) * 1000)))"
        else
                fail "moved after ${elapsed} ms, before stale_after_s"
        fi
else
        fail "peer still at $(wg_peer_endpoint client) after $((STALE_S + 4)) s"
fi
assert_true "the tunnel works through gw2" wait_until 5 tunnel_ping
st=$(hamgr_status client)
assert_eq "$(jq -r '.endpoints[0].candidate' <<<"$st")" "$GW2_EP" "status: candidate"
assert_eq "$(jq -r '.endpoints[0].candidate_index' <<<"$st")" 1 "status: candidate_index"
assert_eq "$(jq -r '.endpoints[0].endpoint' <<<"$st")" "$GW2_EP" "status: endpoint"
assert_eq "$(jq -r '.endpoints[0].peer' <<<"$st")" "$WG_GW_PUB" "status: peer"
assert_true "status: rotations >= 1" test "$(jq -r '.endpoints[0].rotations' <<<"$st")" -ge 1
assert_contains "$(cat "$(hamgr_log client)")" "peer moved from $GW1_EP to $GW2_EP" "log names the move"
assert_eq "$(node_exec client wg show wg0 persistent-keepalive | awk '{ print $2 }')" 2 \
        "the peer's own keepalive survives the move"

# ---- a working tunnel stays where it is, even when idle (keepalives only,
# which a gateway does not answer)
rot=$(ep_field rotations)
assert_true "idle but healthy: no rotation for $((STALE_S * 2 + 2)) s" \
        holds_for $((STALE_S * 2 + 2)) stays_put "$rot"
assert_eq "$(wg_peer_endpoint client)" "$GW2_EP" "idle but healthy: still on gw2"
assert_true "idle but healthy: the tunnel still works" tunnel_ping

# gw1 coming back does not matter without prefer_first.
gw1_return
assert_true "prefer_first = false: stays on gw2 with gw1 back" holds_for $((STALE_S + 2)) stays_put "$rot"
assert_eq "$(wg_peer_endpoint client)" "$GW2_EP" "prefer_first = false: still on gw2"

# ---- prefer_first, with the first candidate given by name: a restarted
# daemon sees that the peer is on the fallback, keeps it there while gw1
# is away, and returns to gw1 as soon as it answers.
node_link gw1 eth0 down
hamgr_stop client
write_client_conf true "$GW1_NAME_EP"
hamgr_start client "$HI_TMP/client.conf"
wait_until 5 hamgr_status client >/dev/null || die "hamgr on the client did not answer after restart"
ep_index_is() {
        [ "$(ep_field candidate_index)" = "$1" ]
}
# Its first look at the peer is one poll (1 s) after start.
assert_true "restart: sees that the peer is on the second candidate" wait_until 3 ep_index_is 1
rot=$(ep_field rotations)
assert_true "prefer_first, gw1 away: stays on gw2" holds_for $((STALE_S + 2)) stays_put "$rot"
gw1_return
t0=$(hi_now_ms)
if wait_until $((STALE_S + 5)) endpoint_is "$GW1_EP"; then
        pass "prefer_first: back on gw1 after $(($(hi_now_ms) - t0)) ms"
else
        fail "prefer_first: still at $(wg_peer_endpoint client)"
fi
assert_true "prefer_first: the tunnel works through gw1" wait_until 5 tunnel_ping
st=$(hamgr_status client)
assert_eq "$(jq -r '.endpoints[0].candidate_index' <<<"$st")" 0 "prefer_first: status candidate_index"
assert_eq "$(jq -r '.endpoints[0].candidate' <<<"$st")" "$GW1_NAME_EP" "prefer_first: status candidate (the name)"
assert_contains "$(cat "$(hamgr_log client)")" "to $GW1_EP ($GW1_NAME_EP, the first candidate answers again)" \
        "log: the name was resolved and the first candidate answered"

finish
