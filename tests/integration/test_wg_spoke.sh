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
#  - prefer_first: when gw1 answers again the client returns to it.
# Host-name candidates are not tested: /etc/hosts is shared with the host
# (node holders have private mounts only on /run/hamgr and
# /var/run/wireguard), so a name could only be added by changing the host.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/wg_lab.sh"

require_root
require_cmd wireguard-go wg jq ping
[ -n "${HAMGR_BIN:-}" ] || die "HAMGR_BIN is not set"

GW1_EP=10.77.0.1:$WG_PORT
GW2_EP=10.77.0.2:$WG_PORT
STALE_S=5

write_client_conf() {
        local prefer=$1 file=$HI_TMP/client.conf
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
    candidates = [ "$GW1_EP", "$GW2_EP" ];
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

# Seconds since the client's last handshake with the gateway key.
handshake_age() {
        local t
        t=$(node_exec client wg show wg0 latest-handshakes | awk '{ print $2 }')
        [ -n "$t" ] && [ "$t" -gt 0 ] || { echo 999999; return 0; }
        echo $(($(date +%s) - t))
}

handshake_older_than() {
        [ "$(handshake_age)" -ge "$1" ]
}

lab_create 2
wg_keys
for g in gw1 gw2; do
        wg_gateway_setup "$g"
        # No VRRP here: each gateway serves on its own address all the time.
        node_exec "$g" ip link set wg0 up
done
wg_client_setup "$GW1_EP" 2
assert_true "the tunnel works through gw1" wait_until 10 tunnel_ping

# ---- control: WireGuard alone never leaves a dead endpoint
node_link gw1 eth0 down
t0=$(hi_now_ms)
assert_true "without hamgr the endpoint stays at the dead gw1 for $((STALE_S + 2)) s" \
        holds_for $((STALE_S + 2)) endpoint_is "$GW1_EP"
assert_false "without hamgr the tunnel is down" tunnel_ping

# ---- hamgr moves the peer to gw2
write_client_conf false
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

# ---- a working tunnel stays where it is, even when idle (keepalives only)
rot=$(ep_field rotations)
assert_true "idle but healthy: no rotation for $((STALE_S * 2 + 2)) s" \
        holds_for $((STALE_S * 2 + 2)) endpoint_is "$GW2_EP"
assert_eq "$(ep_field rotations)" "$rot" "idle but healthy: rotations unchanged"

# gw1 coming back does not matter without prefer_first.
node_link gw1 eth0 up
assert_true "prefer_first = false: stays on gw2 with gw1 back" holds_for $((STALE_S + 2)) endpoint_is "$GW2_EP"

# ---- prefer_first: back to gw1 as soon as it answers
hamgr_stop client
write_client_conf true
hamgr_start client "$HI_TMP/client.conf"
wait_until 5 hamgr_status client >/dev/null || die "hamgr on the client did not answer after restart"
# The restarted daemon only knows it is on the second candidate from the
# peer's endpoint; either way it must end up on gw1.
if wait_until $((STALE_S * 3)) endpoint_is "$GW1_EP"; then
        pass "prefer_first: back on gw1"
else
        fail "prefer_first: still at $(wg_peer_endpoint client)"
fi
assert_true "prefer_first: the tunnel works through gw1" wait_until 5 tunnel_ping
assert_eq "$(ep_field candidate_index)" 0 "prefer_first: status candidate_index"

finish
