#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The VRRP I/O layer (vrrp/socket.c, vrrp/address.c, vrrp/announce.c) with
# real traffic between two network namespaces joined by a veth pair:
# advertisements (IPv4/IPv6, multicast/unicast), virtual addresses via
# netlink, gratuitous ARP and unsolicited neighbour advertisements.
#
# Needs root, iproute2, tcpdump, and HAMGR_IO_SELFTEST pointing at the
# io_selftest binary (tests/integration/io/io_selftest.c).

set -u

fail() {
        echo "FAIL: $*" >&2
        exit 1
}

pass() {
        echo "ok: $*"
}

[ "$(id -u)" -eq 0 ] || fail "must run as root (creates network namespaces)"
BIN=${HAMGR_IO_SELFTEST:-}
[ -n "$BIN" ] || fail "HAMGR_IO_SELFTEST is not set; it must point to the io_selftest binary"
[ -x "$BIN" ] || fail "HAMGR_IO_SELFTEST=$BIN is not an executable file"
for tool in ip tcpdump; do
        command -v "$tool" >/dev/null || fail "$tool not found"
done

A=hio-a-$$
B=hio-b-$$
TMP=$(mktemp -d /tmp/hamgr-io.XXXXXX)
PIDS=()

cleanup() {
        local p
        for p in "${PIDS[@]}"; do
                kill "$p" 2>/dev/null
                wait "$p" 2>/dev/null
        done
        ip netns del "$A" 2>/dev/null
        ip netns del "$B" 2>/dev/null
        rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

inA() { ip netns exec "$A" "$@"; }
inB() { ip netns exec "$B" "$@"; }

# Forget a background PID once it has been waited for.
forget_pid() {
        local p keep=()
        for p in "${PIDS[@]}"; do
                [ "$p" = "$1" ] || keep+=("$p")
        done
        PIDS=("${keep[@]}")
}

# wait_for_pattern FILE REGEX: up to 5 s for a line to appear.
wait_for_pattern() {
        local i
        for ((i = 0; i < 100; i++)); do
                grep -qE "$2" "$1" 2>/dev/null && return 0
                sleep 0.05
        done
        return 1
}

# start_recv NS FAMILY TIMEOUT_MS [BUFSIZE]: a receiver on veth0 in NS, in
# the background, ready (socket open, group joined) on return. Sets RECV_PID
# and RECV_OUT.
start_recv() {
        RECV_OUT=$TMP/recv.$RANDOM
        ip netns exec "$1" "$BIN" recv veth0 "$2" "$3" ${4:+"$4"} >"$RECV_OUT" 2>&1 &
        RECV_PID=$!
        PIDS+=("$RECV_PID")
        wait_for_pattern "$RECV_OUT" '^(ready|error)' || fail "receiver in $1 did not start: $(cat "$RECV_OUT")"
        grep -q '^ready' "$RECV_OUT" || fail "receiver in $1: $(cat "$RECV_OUT")"
}

# finish_recv: wait for the receiver started last; sets RECV_RC.
finish_recv() {
        wait "$RECV_PID"
        RECV_RC=$?
        forget_pid "$RECV_PID"
}

# advert FAMILY SRC DST: send an advert from A, expect B to receive it with
# TTL 255, the same source and destination, and a valid v3 checksum.
advert() {
        local fam=$1 src=$2 dst=$3 out
        start_recv "$B" "$fam" 5000
        out=$(inA "$BIN" send veth0 "$fam" "$src" "$dst") || fail "send IPv$fam $src -> $dst: $out"
        finish_recv
        [ "$RECV_RC" -eq 0 ] || fail "IPv$fam advert $src -> $dst not received in B: $(cat "$RECV_OUT")"
        grep -q "^src=$src dst=$dst ttl=255 len=[0-9]* parse=ok version=3 vrid=42 priority=100\$" "$RECV_OUT" ||
                fail "IPv$fam advert $src -> $dst received wrong: $(grep -v '^ready' "$RECV_OUT")"
        pass "IPv$fam advert $src -> $dst received in B with ttl 255, same src/dst, checksum valid"
}

# tcpdump_start NS FILTER...: capture one matching frame on veth0 in NS.
# Sets TD_PID and TD_OUT once tcpdump is listening.
tcpdump_start() {
        local ns=$1
        shift
        TD_OUT=$TMP/tcpdump.$RANDOM
        ip netns exec "$ns" tcpdump -e -n -l -vv -c 1 -i veth0 "$@" >"$TD_OUT" 2>"$TD_OUT.err" &
        TD_PID=$!
        PIDS+=("$TD_PID")
        wait_for_pattern "$TD_OUT.err" 'listening on' || fail "tcpdump in $ns did not start: $(cat "$TD_OUT.err")"
}

tcpdump_finish() {
        local i
        for ((i = 0; i < 100; i++)); do
                kill -0 "$TD_PID" 2>/dev/null || break
                sleep 0.05
        done
        if kill -0 "$TD_PID" 2>/dev/null; then
                kill "$TD_PID"
                wait "$TD_PID" 2>/dev/null
                forget_pid "$TD_PID"
                fail "tcpdump saw no matching frame: $1"
        fi
        wait "$TD_PID" 2>/dev/null
        forget_pid "$TD_PID"
}

# neigh_lladdr NS ADDR: the MAC B's neighbour table has for ADDR.
neigh_lladdr() {
        ip -n "$1" neigh show dev veth0 to "$2" | sed -n 's/.* lladdr \([0-9a-f:]*\).*/\1/p'
}

wait_neigh() {
        local i
        for ((i = 0; i < 100; i++)); do
                [ "$(neigh_lladdr "$1" "$2")" = "$3" ] && return 0
                sleep 0.05
        done
        return 1
}

# --- topology ---------------------------------------------------------------
# A:veth0 10.0.0.1/24 10.0.0.5/24 fe80::a fe80::a2 2001:db8::1  <-->  B:veth0
# 10.0.0.2/24 fe80::b 2001:db8::2. A:d0 (peer d0p, no carrier) holds the
# IPv4 address tests. No automatic link-local addresses, no DAD on the
# addresses set here: the test decides what is tentative.
ip netns add "$A" || fail "ip netns add $A"
ip netns add "$B" || fail "ip netns add $B"
ip -n "$A" link add veth0 type veth peer name veth0 netns "$B" || fail "creating veth pair"
ip -n "$A" link add d0 type veth peer name d0p || fail "creating d0"
for ns in "$A" "$B"; do
        ip -n "$ns" link set lo up
        ip -n "$ns" link set veth0 addrgenmode none
        ip -n "$ns" link set veth0 up
done
ip -n "$A" link set d0 addrgenmode none
ip -n "$A" link set d0 up
ip -n "$A" addr add 10.0.0.1/24 dev veth0
ip -n "$A" addr add 10.0.0.5/24 dev veth0
ip -n "$B" addr add 10.0.0.2/24 dev veth0
ip -n "$A" addr add fe80::a/64 dev veth0 nodad
ip -n "$A" addr add fe80::a2/64 dev veth0 nodad
ip -n "$B" addr add fe80::b/64 dev veth0 nodad
ip -n "$A" addr add 2001:db8::1/64 dev veth0 nodad
ip -n "$B" addr add 2001:db8::2/64 dev veth0 nodad
MAC_A=$(ip -n "$A" -o link show veth0 | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
[ -n "$MAC_A" ] || fail "cannot read A's MAC"

# --- advertisements ---------------------------------------------------------
advert 4 10.0.0.1 224.0.0.18
# 10.0.0.5 is a secondary: the kernel would pick 10.0.0.1 on its own, so this
# shows the IP_PKTINFO source is honoured.
advert 4 10.0.0.5 224.0.0.18
advert 4 10.0.0.1 10.0.0.2
advert 6 fe80::a ff02::12
advert 6 fe80::a2 ff02::12
advert 6 fe80::a fe80::b
advert 6 2001:db8::1 2001:db8::2

# Multicast loopback is off: a receiver in A itself must not see A's advert
# (B receiving it at the same time shows it was sent).
start_recv "$B" 4 5000
B_PID=$RECV_PID B_OUT=$RECV_OUT
start_recv "$A" 4 1500
LOOP_PID=$RECV_PID LOOP_OUT=$RECV_OUT
out=$(inA "$BIN" send veth0 4 10.0.0.1 224.0.0.18) || fail "send for loopback check: $out"
if ! kill -0 "$LOOP_PID" 2>/dev/null && grep -q '^timeout' "$LOOP_OUT"; then
        fail "loopback check inconclusive: A's receiver timed out before the send"
fi
RECV_PID=$B_PID RECV_OUT=$B_OUT
finish_recv
[ "$RECV_RC" -eq 0 ] || fail "loopback check: B did not receive: $(cat "$RECV_OUT")"
RECV_PID=$LOOP_PID RECV_OUT=$LOOP_OUT
finish_recv
[ "$RECV_RC" -eq 3 ] || fail "multicast loopback is on: A received its own advert: $(cat "$RECV_OUT")"
pass "IPv4 multicast loopback off: the sender's namespace does not receive its own advert"

# A 12-byte advert into a 20-byte buffer (IPv4 header + 0 bytes of room).
start_recv "$B" 4 5000 20
out=$(inA "$BIN" send veth0 4 10.0.0.1 224.0.0.18) || fail "send for truncation check: $out"
finish_recv
grep -q '^error: vrrp_socket_recv: bad message: truncated datagram$' "$RECV_OUT" ||
        fail "short buffer not reported as truncated: $(cat "$RECV_OUT")"
pass "a datagram larger than the buffer is -EBADMSG \"truncated datagram\""

# --- IPv4 addresses ---------------------------------------------------------
sel() {
        inA "$BIN" "$@"
}
expect() {
        local want=$1 out
        shift
        out=$(sel "$@" 2>&1)
        [ "$out" = "$want" ] || fail "io_selftest $*: expected '$want', got '$out'"
}
ip4_shown() {
        ip -n "$A" -4 -o addr show dev d0 | grep -q " inet $1 "
}

expect absent addr-present d0 10.1.0.100
expect ok addr-add d0 10.1.0.100/32
ip4_shown 10.1.0.100/32 || fail "10.1.0.100/32 not on d0 after addr-add: $(ip -n "$A" -4 -o addr show dev d0)"
expect present addr-present d0 10.1.0.100
expect ok addr-add d0 10.1.0.100/32
pass "IPv4 addr-add puts the address on the interface; present; adding it again succeeds"
expect absent addr-present veth0 10.1.0.100
pass "IPv4 addr-present only looks at the given interface"

# 10.1.0.100/32 (a "virtual IP") is listed first; both /24s come after it,
# 10.1.0.5 as a secondary.
expect ok addr-add d0 10.1.0.1/24
expect ok addr-add d0 10.1.0.5/24
expect primary=10.1.0.100 primary d0 4
expect primary=10.1.0.1 primary d0 4 10.1.0.100/32
expect primary=10.1.0.5 primary d0 4 10.1.0.100/32 10.1.0.1/24
expect "error: primary: No such file or directory [ENOENT]" primary d0 4 10.1.0.100/32 10.1.0.1/24 10.1.0.5/24
expect primary=10.0.0.1 primary veth0 4 10.1.0.100/32
pass "IPv4 primary: first address not excluded, secondary only as fallback, ENOENT if none, per interface"

expect ok addr-del d0 10.1.0.100/32
ip4_shown 10.1.0.100/32 && fail "10.1.0.100/32 still on d0 after addr-del"
expect absent addr-present d0 10.1.0.100
expect ok addr-del d0 10.1.0.100/32
ip4_shown 10.1.0.1/24 || fail "addr-del of 10.1.0.100/32 removed 10.1.0.1/24 too"
pass "IPv4 addr-del removes only that address; deleting an absent one succeeds"

# --- IPv6 addresses ---------------------------------------------------------
# Slow DAD down on A's veth0 so an address that does DAD stays tentative for
# the rest of the test; 2001:db8:5::200 is the control showing DAD is active.
inA sysctl -qw net.ipv6.conf.veth0.accept_dad=1 net.ipv6.neigh.veth0.retrans_time_ms=60000 ||
        fail "cannot set DAD sysctls"
ip -n "$A" addr add 2001:db8:5::200/64 dev veth0
ip -n "$A" -6 -o addr show dev veth0 | grep -q 'inet6 2001:db8:5::200/64 .*tentative' ||
        fail "control address is not tentative, DAD test meaningless: $(ip -n "$A" -6 -o addr show dev veth0)"

expect absent addr-present veth0 2001:db8:5::100
expect ok addr-add veth0 2001:db8:5::100/64
line=$(ip -n "$A" -6 -o addr show dev veth0 | grep ' inet6 2001:db8:5::100/64 ')
[ -n "$line" ] || fail "2001:db8:5::100/64 not on veth0 after addr-add"
case $line in
*tentative*) fail "2001:db8:5::100 is tentative right after addr-add (NODAD not set): $line" ;;
*nodad*) ;;
*) fail "2001:db8:5::100 has no nodad flag: $line" ;;
esac
expect present addr-present veth0 2001:db8:5::100
expect ok addr-add veth0 2001:db8:5::100/64
pass "IPv6 addr-add: address usable at once (nodad, not tentative); present; re-adding succeeds"

expect ok addr-del veth0 2001:db8:5::100/64
ip -n "$A" -6 -o addr show dev veth0 | grep -q ' inet6 2001:db8:5::100/' && fail "2001:db8:5::100 still there after addr-del"
expect absent addr-present veth0 2001:db8:5::100
expect ok addr-del veth0 2001:db8:5::100/64
pass "IPv6 addr-del removes the address; deleting an absent one succeeds"

# Newer addresses of a scope are listed first: fe80::1 (a "virtual IP"),
# fe80::dead (tentative), then fe80::a2, fe80::a.
ip -n "$A" addr add fe80::dead/64 dev veth0
expect ok addr-add veth0 fe80::1/64
order=$(ip -n "$A" -6 -o addr show dev veth0 scope link | awk '{print $4}' | tr '\n' ' ')
[ "$order" = "fe80::1/64 fe80::dead/64 fe80::a2/64 fe80::a/64 " ] ||
        fail "unexpected link-local order, primary test meaningless: $order"
ip -n "$A" -6 -o addr show dev veth0 | grep -q 'inet6 fe80::dead/64 .*tentative' || fail "fe80::dead not tentative"
expect primary=fe80::1 primary veth0 6
expect primary=fe80::a2 primary veth0 6 fe80::1/64
expect primary=fe80::a primary veth0 6 fe80::1/64 fe80::a2/64
expect "error: primary: No such file or directory [ENOENT]" primary d0 6
pass "IPv6 primary: first link-local, skipping excluded and tentative ones (and the global ones); ENOENT if none"
expect ok addr-del veth0 fe80::1/64
ip -n "$A" addr del fe80::dead/64 dev veth0
ip -n "$A" addr del 2001:db8:5::200/64 dev veth0

# --- gratuitous ARP / unsolicited NA ------------------------------------------
# B holds stale entries with a made-up MAC; the announcements must be seen on
# the wire with the right fields and must move B's entries to A's MAC.
FAKE_MAC=02:00:00:00:00:99
ip -n "$B" neigh add 10.0.0.100 lladdr $FAKE_MAC dev veth0 nud stale || fail "seeding B's ARP entry"
ip -n "$B" neigh add 2001:db8::100 lladdr $FAKE_MAC dev veth0 nud stale || fail "seeding B's ND entry"

tcpdump_start "$B" arp
out=$(sel garp veth0 10.0.0.100) || fail "garp: $out"
tcpdump_finish "gratuitous ARP for 10.0.0.100"
grep -q "^[0-9:.]* $MAC_A > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 60: .*Request who-has 10.0.0.100 tell 10.0.0.100, " "$TD_OUT" ||
        fail "gratuitous ARP wrong on the wire: $(cat "$TD_OUT")"
pass "GARP on the wire: $MAC_A > broadcast, ARP Request who-has 10.0.0.100 tell 10.0.0.100"
wait_neigh "$B" 10.0.0.100 "$MAC_A" || fail "B's ARP entry for 10.0.0.100 not updated: $(ip -n "$B" neigh show to 10.0.0.100)"
pass "GARP updated B's ARP cache entry to A's MAC"

tcpdump_start "$B" 'icmp6 and ip6[40] == 136'
out=$(sel na veth0 2001:db8::100) || fail "na: $out"
tcpdump_finish "neighbour advertisement for 2001:db8::100"
tr '\n' ' ' <"$TD_OUT" >"$TD_OUT.flat"
grep -qE "^[0-9:.]* $MAC_A > 33:33:00:00:00:01, ethertype IPv6 .*hlim 255, .* fe80::[0-9a-f:]* > ff02::1: \[icmp6 sum ok\] ICMP6, neighbor advertisement, length 32, tgt is 2001:db8::100, Flags \[router, override\] .*destination link-address option \(2\), length 8 \(1\): $MAC_A" "$TD_OUT.flat" ||
        fail "neighbour advertisement wrong on the wire: $(cat "$TD_OUT")"
pass "NA on the wire: link-local src > ff02::1, hlim 255, checksum ok, tgt 2001:db8::100, Flags [router, override], target lladdr $MAC_A"
wait_neigh "$B" 2001:db8::100 "$MAC_A" || fail "B's neighbour entry for 2001:db8::100 not updated: $(ip -n "$B" neigh show to 2001:db8::100)"
pass "NA updated B's neighbour cache entry to A's MAC"
ip -n "$B" neigh show to 2001:db8::100 | grep -qw router ||
        fail "B's neighbour entry for 2001:db8::100 not marked router: $(ip -n "$B" neigh show to 2001:db8::100)"
pass "NA (Router flag) marked B's neighbour entry as a router"

echo "PASS: vrrp I/O (adverts, addresses, GARP, NA)"
