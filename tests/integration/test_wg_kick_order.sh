#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The takeover of a gateway with many peers (wireguard-go): gw2's endpoint
# store gives 2,000 peers distinct last-handshake times, then gw1 stops.
#  - the first 20 peers whose handshake initiations are on the wire are the
#    20 most recently active ones: the kick follows recency, not the
#    device's or the store's key order;
#  - every peer gets its initiation, from the VIP;
#  - the new master's adverts keep their rhythm while the takeover runs:
#    no gap above two advert intervals (the takeover yields to VRRP between
#    batches; one that held the event loop for its whole length would leave
#    a gap of several intervals);
#  - afterwards a peer whose keepalive is off has it off again, and one
#    with its own keepalive keeps it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/wg_lab.sh"

require_hamgr
require_cmd wireguard-go wg tcpdump perl

VIP=10.77.0.10
PEERS=2000
FIRST=20
# The last peers of the configuration have a keepalive of their own (25 s)
# and the oldest handshakes: wireguard-go, whose device is up for it
# whatever the link, tries a handshake for them as soon as they are added
# (and again every 5 s), and within 5 s of one it ignores a kick. Last,
# because the wireguard-go of Debian 12 carries a peer's "keepalive turned
# on" over to the following peers of the same request.
OWN_KEEPALIVE=5
INTERVAL_MS=100
PORT_BASE=20000
INITIATION_UDP_LEN=156 # 148 bytes of handshake initiation + the UDP header

write_conf() {
        local node=$1 prio=$2
        HC_TRACK='' HC_INTERVAL_MS=$INTERVAL_MS \
                HC_INSTANCE_EXTRA='track_checks = ( { check = "wg0"; weight = 0; } );' \
                write_hamgr_conf "$(conf_of "$node")" "$node" "$prio" "$(cat <<EOF
checks = ( { name = "wg0"; type = "wireguard"; interface = "wg0"; interval_ms = 1000; rise = 1; fall = 2; } );
wireguard = ( { interface = "wg0"; backend = "uapi"; follow = "wan"; source_address = "$VIP"; } );
EOF
)"
        "$HAMGR_BIN" check -c "$(conf_of "$node")" >/dev/null || die "hamgr check refuses $(conf_of "$node")"
}

follower_phase_is() {
        [ "$(hamgr_status "$1" 2>/dev/null | jq -r '.wireguard[0].phase')" = "$2" ]
}

# Random peers (they never answer; their endpoints are the client's
# address on ports where nothing listens), endpoint store lines with
# distinct handshake times over the last day in random order, and the
# ports of the FIRST most recent peers.
gen_peers() {
        perl -MMIME::Base64 -MTime::HiRes=time -e '
                my ($n, $base, $first, $own, $conf, $store, $top) = @ARGV;
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
                        $h = $now - 90000000 - $i if $i >= $n - $own;
                        push @hs, [$h, $base + $i];
                        printf $c "[Peer]\nPublicKey = %s\nAllowedIPs = 10.%d.%d.%d/32\n%s\n", $b,
                                100 + int($i / 65536), int($i / 256) % 256, $i % 256,
                                $i >= $n - $own ? "PersistentKeepalive = 25\n" : "";
                        printf $s "%s 10.77.0.100:%d 0 %d %d\n", $b, $base + $i, $now - 86400000, $h;
                }
                open(my $t, ">", $top) or die;
                my @sorted = sort { $b->[0] <=> $a->[0] } @hs;
                print $t "$_->[1]\n" for @sorted[0 .. $first - 1];
        ' "$PEERS" "$PORT_BASE" "$FIRST" "$OWN_KEEPALIVE" "$HI_TMP/peers.conf" "$HI_TMP/peers.store" \
                "$HI_TMP/peers.top"
}

# "PORT TIME": peers in the order of their first initiation.
initiations() {
        tcpdump -r "$HI_TMP/kick.pcap" -tt -n 2>/dev/null |
                awk -v lo="$PORT_BASE" -v hi=$((PORT_BASE + PEERS - 1)) '
                { split($5, a, "."); port = a[5]; sub(/:$/, "", port); port += 0
                  if (port >= lo && port <= hi && !(port in seen)) { seen[port] = 1; print port, $1 } }'
}

all_initiated() {
        [ "$(initiations | wc -l)" -ge "$PEERS" ]
}

lab_create 2
wg_keys
gen_peers
# Only gw2 needs the peers: the lab is busy enough with one wireguard-go
# holding 2,000 of them.
wg_gateway_setup gw1
wg_gateway_setup gw2
node_exec gw2 wg addconf wg0 "$HI_TMP/peers.conf"
write_conf gw1 150
write_conf gw2 100
wg_client_setup "$VIP:$WG_PORT"
{
        echo "hamgr-endpoints 2"
        cat "$HI_TMP/peers.store"
} >"$HI_TMP/gw2.state/wireguard-wg0.endpoints"

hamgr_start gw1 "$(conf_of gw1)"
wait_until 30 hamgr_state_is gw1 wan MASTER || die "gw1 did not become MASTER: $(tail -n 5 "$(hamgr_log gw1)")"
hamgr_start gw2 "$(conf_of gw2)"
wait_until 30 hamgr_state_is gw2 wan BACKUP || die "gw2 did not become BACKUP: $(tail -n 5 "$(hamgr_log gw2)")"
wait_until 30 follower_phase_is gw2 passive || die "gw2 is not passive"
assert_eq "$(hamgr_status gw2 | jq -r '.wireguard[0].known_endpoints')" "$PEERS" "gw2 loaded every peer's endpoint"

node_spawn client "$HI_TMP/vrrp.err" tcpdump -B 8192 -U -n -i eth0 -w "$HI_TMP/vrrp.pcap" 'ip proto 112'
vrrp_cap=$HI_LAST_PID
wait_until 5 grep -q "listening on" "$HI_TMP/vrrp.err" || die "tcpdump (vrrp): $(cat "$HI_TMP/vrrp.err")"
node_spawn client "$HI_TMP/kick.err" tcpdump -B 16384 -U -n -s 64 -i eth0 -w "$HI_TMP/kick.pcap" \
        "udp and src host $VIP and src port $WG_PORT and udp[4:2] = $INITIATION_UDP_LEN"
kick_cap=$HI_LAST_PID
wait_until 5 grep -q "listening on" "$HI_TMP/kick.err" || die "tcpdump (kick): $(cat "$HI_TMP/kick.err")"
sleep 1

hamgr_stop gw1 TERM
wait_until 30 hamgr_state_is gw2 wan MASTER || die "gw2 did not take over"
wait_until 120 follower_phase_is gw2 active || die "gw2's takeover did not finish"
# The keepalive peers' initiations may wait for wireguard-go's retry.
wait_until 15 all_initiated || true
stop_pid "$kick_cap" INT
stop_pid "$vrrp_cap" INT

initiations >"$HI_TMP/initiations.txt"
mapfile -t order < <(awk '{ print $1 }' "$HI_TMP/initiations.txt")
assert_eq "${#order[@]}" "$PEERS" "every peer got a handshake initiation from the VIP"
first=$(printf '%s\n' "${order[@]:0:$FIRST}" | sort -n | tr '\n' ' ')
want=$(sort -n "$HI_TMP/peers.top" | tr '\n' ' ')
assert_eq "$first" "$want" "the first $FIRST peers kicked are the $FIRST most recently active"

# Adverts of the new master from its first one to one interval after the
# kick of the last peer without a keepalive of its own (both captures on
# the client: one clock).
last_kick=$(awk -v n=$((PEERS - OWN_KEEPALIVE)) 'NR <= n { t = $2 } END { print t }' "$HI_TMP/initiations.txt")
read -r gaps max_gap <<<"$(
        tcpdump -r "$HI_TMP/vrrp.pcap" -tt -n 2>/dev/null |
                awk -v end="$last_kick" -v iv="$INTERVAL_MS" '
                $3 == "10.77.0.2" && / prio [1-9]/ {
                        t = $1 * 1000.0
                        if (have && last <= end * 1000.0 + iv) { gap = t - last; n++; if (gap > max) max = gap }
                        have = 1; last = t
                }
                END { printf "%d %d\n", n, max }')"
hi_log "new master: $gaps advert gaps during the takeover, the largest $max_gap ms (interval $INTERVAL_MS ms)"
assert_true "the new master advertised during the takeover ($gaps gaps)" [ "$gaps" -ge 2 ]
assert_true "the new master's adverts kept their rhythm during the takeover (largest gap $max_gap ms)" \
        [ "$max_gap" -le $((2 * INTERVAL_MS)) ]

keepalives=$(node_exec gw2 wg show wg0 persistent-keepalive | awk '{ print $2 }' | sort | uniq -c | awk '{ printf "%s:%s ", $2, $1 }')
assert_eq "$keepalives" "25:$OWN_KEEPALIVE off:$((PEERS - OWN_KEEPALIVE + 1)) " \
        "keepalives after the takeover: their own (25 s for $OWN_KEEPALIVE peers, off for the rest)"

finish
