#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# How hamgr chooses and survives a userspace WireGuard backend:
#  - a stale UAPI socket (bound, nobody listening: a daemon that died) is
#    removed by a lookup with backend auto, which then uses the kernel, as
#    wg(8) does; with backend uapi configured it is left alone and the UAPI
#    answer (no such device) stands;
#  - a UAPI daemon that accepts and never answers (a python3 stand-in on
#    /var/run/wireguard/wg0.sock, in the node's own tmpfs) does not stall
#    hamgr: with advert_interval 1 s, priority 100 (a backup would declare
#    the master down after 3.6 s), no gap between adverts on the wire
#    reaches 3.6 s; the watchdog (WATCHDOG_USEC=10 s, recorded through
#    sd_notify_listen) is fed with no gap of 10 s; hamgr status reports the
#    wireguard error (-ETIMEDOUT) and keeps answering. After a timeout the
#    daemon is held off for 10 s and then asked again (the stand-in logs
#    each request; a backend probe connects and sends nothing). The periodic reads (snapshot, health)
#    run beside the event loop and do not stall it at all; a stall left
#    (a read on the loop, at most 2 s per 10 s) shows as a long advert gap.
# Without a bound per exchange (the old 10 s per read) the first exchange
# alone stalls hamgr past both limits.
# shellcheck disable=SC2317 # small predicates run through wait_until
set -euo pipefail
. "$(dirname "$0")/lib.sh"

require_hamgr
require_cmd python3 tcpdump jq wg
require_tool HAMGR_NOTIFY_LISTEN sd_notify_listen
require_tool HAMGR_WG_TOOL wg_tool

lab_create 1
node_start gw1

# ---- stale socket

# A socket file nobody listens on: bound, then the process ends.
stale_socket() {
        node_exec gw1 python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])' "/var/run/wireguard/$1.sock"
}

stale_socket wgs
assert_true "stale: the socket file is there" node_exec gw1 test -S /var/run/wireguard/wgs.sock
out=$(node_exec gw1 "$HAMGR_WG_TOOL" -b uapi dump wgs 2>&1 || true)
assert_contains "$out" "No such device" "stale, backend uapi: no such device"
assert_true "stale, backend uapi: the socket is left alone" node_exec gw1 test -S /var/run/wireguard/wgs.sock
out=$(node_exec gw1 "$HAMGR_WG_TOOL" -b auto dump wgs 2>&1 || true)
assert_false "stale, backend auto: the socket is removed" node_exec gw1 test -e /var/run/wireguard/wgs.sock
# The referee: wg(8) does the same with its own stale socket.
stale_socket wgr
node_exec gw1 wg show wgr >/dev/null 2>&1 || true
assert_false "wg(8) removes a stale socket too" node_exec gw1 test -e /var/run/wireguard/wgr.sock

# ---- a hung daemon

node_exec gw1 ip tuntap add mode tun name wg0
node_exec gw1 ip link set wg0 up
node_spawn gw1 "$HI_TMP/hung.log" python3 -c 'import selectors, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
s.listen(64)
print("listening", flush=True)
sel = selectors.DefaultSelector()
sel.register(s, selectors.EVENT_READ)
asked = set()
while True:
    for key, _ in sel.select():
        if key.fileobj is s:
            c, _ = s.accept()
            sel.register(c, selectors.EVENT_READ)
            continue
        c = key.fileobj
        data = c.recv(4096)   # answer nothing, keep it open
        if not data:
            sel.unregister(c)
        elif c not in asked:
            asked.add(c)      # a request, not a probe (which sends nothing)
            print("asked", flush=True)' /var/run/wireguard/wg0.sock
wait_until 5 grep -q listening "$HI_TMP/hung.log" || die "the hung daemon did not start"

conf=$HI_TMP/gw1.conf
HC_TRACK= HC_NOTIFY_SCRIPT= HC_INTERVAL_MS=1000 write_hamgr_conf "$conf" gw1 100 \
        'wireguard = ( { interface = "wg0"; follow = "wan"; } );'

sock=$HI_TMP/notify.sock
nlog=$HI_TMP/notify.log
node_spawn gw1 "$nlog" "$HAMGR_NOTIFY_LISTEN" "$sock"
wait_until 5 test -S "$sock" || die "notify listener did not bind $sock"

cap=$HI_TMP/vrrp.txt
capture_start gw1 eth0 "ip proto 112" "$cap"
NOTIFY_SOCKET=$sock WATCHDOG_USEC=10000000 \
        node_spawn gw1 "$(hamgr_log gw1)" "$HAMGR_BIN" run -c "$conf"
HAMGR_PID[gw1]=$HI_LAST_PID

if wait_until 15 hamgr_state_is gw1 wan MASTER; then
        pass "hung daemon: gw1 becomes MASTER"
else
        fail "hung daemon: gw1 is $(hamgr_state gw1 wan 2>/dev/null || echo '?')"
fi
t0=$(date +%s)
asked0=$(grep -c asked "$HI_TMP/hung.log" || true)
# 25 s: at least two hold-offs expire, so the daemon is asked again;
# status asked meanwhile, as an operator would.
while [ $(($(date +%s) - t0)) -lt 25 ]; do
        hamgr_status gw1 >/dev/null || fail "status did not answer"
        sleep 1
done
st=$(hamgr_status gw1)
capture_stop "$cap"

# Adverts from gw1: seconds of the day of each, largest gap in ms.
gaps=$(capture_records "$cap" | grep -F "10.77.0.1 > 224.0.0.18" |
        awk '{ split($1, t, ":"); s = t[1] * 3600 + t[2] * 60 + t[3]
               g = 0; if (n++) { g = (s - last) * 1000; if (g > max) max = g } last = s
               if (n > 1 && g > 1500) stalls++ }
             END { printf "%d %d %d\n", n, max, stalls }')
read -r n_adv max_gap stalls <<<"$gaps"
assert_true "hung daemon: adverts keep going ($n_adv)" test "$n_adv" -ge 20
if [ "$max_gap" -lt 3600 ]; then
        pass "hung daemon: largest gap between adverts ${max_gap} ms < 3600 ms (master down at a backup)"
else
        fail "hung daemon: an advert gap of ${max_gap} ms: a backup would have taken over"
fi
# The daemon is asked again when a hold-off ends (it may have recovered),
# and not in between: a few connections per 10 s, not one per read.
asked=$(($(grep -c asked "$HI_TMP/hung.log" || true) - asked0))
hi_log "hung daemon: ${stalls:-0} advert gaps over 1.5 s, $asked requests in 25 s"
# With the reads on the loop, each one that timed out (2 s) held an advert
# back by that much; beside the loop, not one gap reaches 1.5 intervals.
assert_eq "${stalls:-0}" 0 "hung daemon: no gap between adverts over 1.5 s (1 s interval): no read runs on the loop"
assert_true "hung daemon: asked again after the hold-off ($asked requests in 25 s)" \
        test "$asked" -ge 1 -a "$asked" -le 9

wd=$(awk '$3 == "WATCHDOG=1" { if (n++) { g = $1 - last; if (g > max) max = g } last = $1 }
          END { printf "%d %d\n", n, max }' "$nlog")
read -r n_wd max_wd <<<"$wd"
assert_true "hung daemon: the watchdog is fed ($n_wd WATCHDOG=1)" test "$n_wd" -ge 4
if [ "$max_wd" -lt 10000 ]; then
        pass "hung daemon: largest gap between WATCHDOG=1 ${max_wd} ms < WatchdogSec 10 s"
else
        fail "hung daemon: WATCHDOG=1 gap of ${max_wd} ms: systemd would have killed hamgr"
fi

err=$(jq -r '.wireguard[] | select(.interface == "wg0") | .last_error' <<<"$st")
assert_eq "$err" "-110" "hung daemon: status reports the wireguard error (-ETIMEDOUT)"
assert_contains "$(cat "$(hamgr_log gw1)")" "Connection timed out" "hung daemon: the log says why"
assert_true "hung daemon: hamgr still runs" hamgr_alive gw1
hamgr_stop gw1

finish
