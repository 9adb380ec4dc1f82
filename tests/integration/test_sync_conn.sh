#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The sync connection as hamgr.conf(5) (SYNC, Connections) and
# docs/sync-protocol.md describe it, two gateways with wireguard-go:
#  - the daemon does not start when it cannot bind sync.listen (an address
#    the node does not have; a port already taken);
#  - of the two connections both nodes dial, the one kept is dialled by the
#    node with the smaller public key (seen in the sockets: one connection,
#    whose local port is 7789 on the node with the larger key), and it is
#    dialled from the listen address even by a master whose routes prefer
#    the VIP as source;
#  - changes from the other node are written to the device without reading
#    it first, and the device is read right after: a peer added by hand on
#    gw2 (which polls once an hour here) is neither removed by applying
#    gw1's change nor lost: it reaches gw1 at once; a peer removed by hand
#    on gw2 is not brought back by gw1's change to it, and its removal
#    (the newer edit) reaches gw1;
#  - a stream cut without a close frame (kill -9) is logged and counted
#    (truncated); a clean stop is not;
#  - a wire error from an unknown node is logged with its reason and
#    counted (handshakes_failed);
#  - a closed connection is redialled after 250 ms, each failed attempt
#    doubling the delay (SYNs on the wire 250, 500, 1000, 2000, 4000 ms
#    apart);
#  - when the larger key's dial came first (the smaller key's were
#    refused), the smaller key still dials, and its connection replaces
#    the first.
# test_sync.sh covers replication itself.
# shellcheck disable=SC2317 # small predicates run through wait_until
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/wg_lab.sh"

require_hamgr
require_cmd wireguard-go wg tcpdump ss nc od base64

VIP=10.77.0.10
declare -A pub=()

key_hex() {
        printf '%s' "$1" | base64 -d | od -An -tx1 | tr -d ' \n'
}

lab_create 2
wg_keys
# gw1, the master, gets the smaller key: its connection is the one kept,
# dialled while it holds the VIP.
while :; do
        for g in gw1 gw2; do
                (umask 077; "$HAMGR_BIN" genkey >"$HI_TMP/$g.sync.key")
                chmod 600 "$HI_TMP/$g.sync.key"
                pub[$g]=$("$HAMGR_BIN" pubkey <"$HI_TMP/$g.sync.key")
        done
        [[ "$(key_hex "${pub[gw1]}")" < "$(key_hex "${pub[gw2]}")" ]] && break
done

# write_conf NODE PRIORITY ME OTHER [POLL_MS] [LISTEN]
write_conf() {
        local node=$1 prio=$2 me=$3 other=$4 poll=${5:-200} listen=${6:-}
        [ -n "$listen" ] || listen=10.77.0.$me:7789
        HC_TRACK= HC_NOTIFY_SCRIPT= HC_INTERVAL_MS=100 write_hamgr_conf "$(conf_of "$node")" "$node" "$prio" "$(cat <<EOF
wireguard = ( { interface = "wg0"; backend = "uapi"; follow = "wan"; source_address = "$VIP"; } );
sync = {
    listen = "$listen";
    private_key_file = "$HI_TMP/$node.sync.key";
    bootstrap_grace_s = 0; # a new pair replicates at once (test_sync_revoke.sh: the wait)
    poll_interval_ms = $poll;
    peers = ( { name = "gw$other"; address = "10.77.0.$other:7789"; public_key = "${pub[gw$other]}"; } );
};
EOF
)"
        "$HAMGR_BIN" check -c "$(conf_of "$node")" >/dev/null ||
                die "hamgr check: $("$HAMGR_BIN" check -c "$(conf_of "$node")" 2>&1)"
}

sync_field() {
        hamgr_status "$1" | jq -er ".sync.peers[0]$2"
}
connected() {
        [ "$(sync_field "$1" .connected 2>/dev/null)" = true ]
}

wg_gateway_setup gw1
wg_gateway_setup gw2

# ================================================= cannot bind: no start
# run_refused WHAT: hamgr run with gw1's config exits (non-zero) by itself
# and says why.
run_refused() {
        local what=$1 out rc=0
        out=$(timeout 10 nsenter -t "$(node_holder gw1)" -m -n -- "$HAMGR_BIN" run -c "$(conf_of gw1)" 2>&1) || rc=$?
        if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]; then
                pass "$what: the daemon exits (status $rc)"
        else
                fail "$what: the daemon did not exit by itself (status $rc)"
        fi
        assert_contains "$out" "sync: cannot listen on $2" "$what: it says why"
}
write_conf gw1 150 1 2 200 10.77.0.99:7789
run_refused "listen on an address gw1 does not have" 10.77.0.99:7789
node_spawn gw1 "$HI_TMP/nc.log" nc -l 10.77.0.1 7790
nc_pid=$HI_LAST_PID
wait_until 5 node_exec gw1 ss -Htln 'sport = :7790' | grep -q . || true
write_conf gw1 150 1 2 200 10.77.0.1:7790
run_refused "listen on a port already taken" 10.77.0.1:7790
stop_pid "$nc_pid" TERM

# ======================================= the connection the smaller key dials
write_conf gw1 150 1 2
write_conf gw2 100 2 1 3600000
hamgr_start gw1 "$(conf_of gw1)"
wait_until 10 hamgr_state_is gw1 wan MASTER || die "gw1 not MASTER"
hamgr_start gw2 "$(conf_of gw2)"
wait_until 10 hamgr_state_is gw2 wan BACKUP || die "gw2 not BACKUP"
assert_true "gw1 and gw2 connect" wait_until 10 connected gw1
wait_until 5 connected gw2 || die "gw2 does not see the connection"

small=gw1 large=gw2
# sync_conns NODE: the established sync connections of NODE, "LOCAL PEER".
sync_conns() {
        node_exec "$1" ss -Htn state established '( sport = :7789 or dport = :7789 )' | awk '{ print $3, $4 }'
}
large_ip=10.77.0.${large#gw}
# settled: one connection, the one the smaller key dials. Not just one:
# when the larger key's dial came first, it is the only connection until
# the smaller key's own dial replaces it (seen once in CI-like runs with
# debug logging and a busy CPU).
settled() {
        [ "$(sync_conns gw1 | grep -c .)" = 1 ] &&
                [ "$(sync_conns "$large" | awk '{ print $1 }')" = "$large_ip:7789" ]
}
wait_until 5 settled || true
assert_eq "$(sync_conns gw1 | grep -c .)" 1 "one sync connection between the pair"
assert_eq "$(sync_conns "$large" | awk '{ print $1 }')" "$large_ip:7789" \
        "the connection kept was accepted by $large (larger key)"
assert_eq "$(sync_conns "$small" | awk '{ print $2 }')" "$large_ip:7789" \
        "and dialled by $small (smaller key)"
# Not from the VIP, although it is the preferred source of gw1's routes
# while master (source_address): such a connection would break when the
# VIP moves.
assert_eq "$(sync_conns gw1 | awk '{ sub(/:[0-9]+$/, "", $1); print $1 }')" 10.77.0.1 \
        "gw1 dialled from its listen address, not from the VIP"

# ====================== hand edits on the receiving side survive a batch
k_hand=$(wg genkey | wg pubkey)
k_remote=$(wg genkey | wg pubkey)
node_exec gw2 wg set wg0 peer "$k_hand" allowed-ips 10.99.7.7/32
w_before=$(hamgr_status gw2 | jq '.sync.devices[0].last_write_unix_us // 0')
t_edit=${EPOCHREALTIME/[.,]/}
node_exec gw1 wg set wg0 peer "$k_remote" allowed-ips 10.99.8.8/32
assert_true "gw1's change reaches gw2" wait_until 5 wg_has_peer gw2 "$k_remote"
# The device's answer to that write, as status reports it: after the edit,
# before now (the bench times merged writes by it).
w_after=$(hamgr_status gw2 | jq '.sync.devices[0].last_write_unix_us // 0')
t_now=${EPOCHREALTIME/[.,]/}
if [ "$w_after" -gt "$t_edit" ] && [ "$w_after" -le "$t_now" ] && [ "$w_after" -gt "$w_before" ]; then
        pass "gw2's status: last_write_unix_us is the merged write's ($((w_after - t_edit)) us after the edit)"
else
        fail "gw2's status: last_write_unix_us $w_after (was $w_before), want after the edit ($t_edit) and not after $t_now"
fi
assert_true "the peer added by hand on gw2 is not undone by applying it" holds_for 1 wg_has_peer gw2 "$k_hand"
# gw2 polls once an hour: only the read before applying can have seen it.
assert_true "the peer added by hand on gw2 reaches gw1" wait_until 3 wg_has_peer gw1 "$k_hand"
# Removed by hand on gw2, then changed on gw1 before gw2 polls (an hour):
# written as it is, the batch would create the peer again on gw2.
k_gone=$(wg genkey | wg pubkey)
node_exec gw1 wg set wg0 peer "$k_gone" allowed-ips 10.99.9.9/32
wait_until 5 wg_has_peer gw2 "$k_gone" || die "gw1's peer $k_gone did not reach gw2"
node_exec gw2 wg set wg0 peer "$k_gone" remove
node_exec gw1 wg set wg0 peer "$k_gone" allowed-ips 10.99.9.9/32,10.99.9.10/32
assert_true "a peer removed by hand on gw2 is not brought back by gw1's change to it" holds_for 2 wg_no_peer gw2 "$k_gone"
# gw2 polls only after applying a batch: gw1's change arrived.
assert_true "its removal on gw2, the newer edit, reaches gw1" wait_until 3 wg_no_peer gw1 "$k_gone"

# ====================================== a wire error before the peer is known
# From gw2's address, so that it gets past the source filter and reaches the
# handshake (from elsewhere it is refused before that: test_sync_flood.sh).
before=$(hamgr_status gw1 | jq -r .sync.handshakes_failed)
# A message 1 of protocol version 2.
printf '\002\001%0100d' 0 | node_exec gw2 nc -N -w 2 10.77.0.1 7789 >/dev/null 2>&1 || true
counted() {
        [ "$(hamgr_status gw1 | jq -r .sync.handshakes_failed)" = $((before + 1)) ]
}
assert_true "a wire error before the peer is known is counted (handshakes_failed)" wait_until 3 counted
assert_contains "$(cat "$(hamgr_log gw1)")" "sync: refused connection (unknown handshake version from 10.77.0.2)" \
        "and logged with its reason"
assert_true "the pair stays connected" connected gw1

# ========================================= a truncated stream, a clean close
t_before=$(sync_field gw1 .truncated)
hamgr_stop gw2 TERM
assert_true "gw2 stopped: gw1 sees the connection gone" wait_until 5 eval '! connected gw1'
assert_eq "$(sync_field gw1 .truncated)" "$t_before" "a clean stop (close frame) is not counted as truncated"
hamgr_start gw2 "$(conf_of gw2)"
assert_true "gw2 back: connected again" wait_until 10 connected gw1
t_before=$(sync_field gw1 .truncated)
hamgr_stop gw2 KILL
truncated_counted() {
        [ "$(sync_field gw1 .truncated)" = $((t_before + 1)) ]
}
assert_true "kill -9 of gw2: gw1 counts a truncated stream" wait_until 5 truncated_counted
assert_contains "$(cat "$(hamgr_log gw1)")" "stream ended early: stream truncated (no close frame)" "and logs it"

# ============================================= redial after 250 ms, doubling
hamgr_start gw2 "$(conf_of gw2)"
assert_true "gw2 back: connected again" wait_until 10 connected gw1
CAP="$HI_TMP/gw1.sync.cap"
capture_start gw1 eth0 "tcp port 7789" "$CAP"
hamgr_stop gw2 TERM
# Closed at gw2's FIN; then gw1 dials at +250, +500, +1000, +2000, +4000 ms
# (refused at once: nothing listens on gw2 any more).
# (gw1 may dial from the VIP: source_address is the preferred source of
# the routes out of eth0 while it is master.)
syns() {
        capture_grep "$CAP" "> 10.77.0.2.7789: Flags [S]," | grep -c . || true
}
wait_until 12 eval '[ "$(syns)" -ge 5 ]' || true
capture_stop "$CAP"
times=$(capture_records "$CAP" | awk '
        function ms(rec,  t) { split(rec, t, /[: ]/); return ((t[1] * 60 + t[2]) * 60 + t[3]) * 1000 }
        !fin && / 10\.77\.0\.2\.[0-9]+ > 10\.77\.0\.[0-9]+\.[0-9]+: Flags \[F/ { fin = ms($0); next }
        fin && index($0, "> 10.77.0.2.7789: Flags [S],") { printf "%d ", ms($0) - fin }')
gaps=$(printf '%s\n' $times | awk '{ printf "%d ", $1 - prev; prev = $1 }')
hi_log "redial: SYNs at $times ms after the close; gaps $gaps"
want=(250 500 1000 2000 4000)
read -ra got <<<"$gaps"
ok=1
for i in 0 1 2 3 4; do
        g=${got[$i]:-}
        w=${want[$i]}
        # A timer slack of 10 ms plus scheduling; far from the neighbours.
        if [ -z "$g" ] || [ "$g" -lt $((w * 9 / 10 - 20)) ] || [ "$g" -gt $((w * 11 / 10 + 150)) ]; then
                ok=0
        fi
done
if [ "$ok" = 1 ]; then
        pass "redial: after 250 ms, then doubling (gaps $gaps ms)"
else
        fail "redial: gaps '$gaps' ms, want about ${want[*]}"
fi

# ============================ the larger key's dial came first: still the rule
# gw1's dials are reset while gw2 starts, so the only connection is the
# one gw2 dials. Once the resets stop, gw1 (the smaller key) dials anyway
# and its connection replaces gw2's: which connection the pair ends with
# does not depend on whose dial came first.
ip netns exec "$(ns_of gw1)" nft -f - <<'NFT'
table inet hi_nodial {
        chain output {
                type filter hook output priority 0;
                ip daddr 10.77.0.2 tcp dport 7789 tcp flags & (syn | ack) == syn counter reject with tcp reset
        }
}
NFT
hamgr_start gw2 "$(conf_of gw2)"
wait_until 10 connected gw1 || die "gw2's dial did not connect: $(tail -5 "$(hamgr_log gw2)")"
assert_eq "$(sync_conns "$small" | awk '{ print $1 }')" "${small/gw/10.77.0.}:7789" \
        "gw1's dials reset: the connection is the one gw2 dialled"
resets=$(ip netns exec "$(ns_of gw1)" nft list table inet hi_nodial | sed -n 's/.*counter packets \([0-9]*\).*/\1/p')
ip netns exec "$(ns_of gw1)" nft delete table inet hi_nodial
assert_true "gw1 dialled meanwhile, and was reset (${resets:-0} SYNs)" test "${resets:-0}" -ge 1
assert_true "the resets over, gw1's own dial replaces it: one connection, dialled by $small" wait_until 10 settled
assert_true "and the pair is connected" connected gw2

finish
