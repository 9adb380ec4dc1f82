#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# systemd integration without systemd: a stand-in notify socket receives
# what hamgr sends as a Type=notify service: READY=1, STATUS=, WATCHDOG=1
# when WATCHDOG_USEC is set, RELOADING=1 + READY=1 around SIGHUP,
# STOPPING=1 on SIGTERM. Also: logs go to stderr when stderr is not the
# journal, and the shipped unit file is well formed.
#  - watchdog: sd-event pings when a loop iteration finds a quarter of the
#    period gone and arms a wake-up between half and three quarters of it
#    (a master wakes every advert, so it pings at about a quarter), so the
#    median gap lies in [WATCHDOG_USEC/4, 3*WATCHDOG_USEC/4], less 5% of the period for
#    the listener's receive jitter. Two runs, 400 ms and 1600 ms: their
#    windows [80,300] and [320,1200] ms do not overlap, so no fixed interval
#    passes both; only a period derived from WATCHDOG_USEC does;
#  - SIGHUP: the message with RELOADING=1 carries MONOTONIC_USEC, which is
#    CLOCK_MONOTONIC of that moment (the listener's receive time on the same
#    clock, at most 1 s later), and exactly one READY=1 follows it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

require_hamgr
require_tool HAMGR_NOTIFY_LISTEN sd_notify_listen

lab_create 1
conf=$HI_TMP/gw1.conf
HC_TRACK= HC_NOTIFY_SCRIPT= write_hamgr_conf "$conf" gw1 150

sock=$HI_TMP/notify.sock
nlog=$HI_TMP/notify-socket.log
node_spawn gw1 "$nlog" "$HAMGR_NOTIFY_LISTEN" "$sock"
wait_until 5 test -S "$sock" || die "notify listener did not bind $sock"

# A JOURNAL_STREAM that does not describe our stderr must not divert logs.
NOTIFY_SOCKET=$sock WATCHDOG_USEC=400000 JOURNAL_STREAM=1:1 \
        node_spawn gw1 "$(hamgr_log gw1)" "$HAMGR_BIN" run -c "$conf"
pid=$HI_LAST_PID

# The listener writes "MS N FIELD": receive time (CLOCK_MONOTONIC, ms),
# message number, one field of the message.
count() {
        grep -c -- " $1\$" "$nlog" || true
}
count_at_least() {
        [ "$(count "$1")" -ge "$2" ]
}

if wait_until 10 count_at_least READY=1 1; then
        pass "READY=1 sent at start"
else
        fail "no READY=1"
fi
if wait_until 10 grep -q "STATUS=1 instance: wan=MASTER" "$nlog"; then
        pass "STATUS= names the instance and its state: $(grep -m1 'STATUS=1 instance: wan=MASTER' "$nlog" | cut -d' ' -f3-)"
else
        fail "no STATUS= line with wan=MASTER: $(grep STATUS= "$nlog" | tail -1)"
fi
# check_watchdog LOG PERIOD_MS: the median gap between WATCHDOG=1 messages
# in LOG lies in [PERIOD/4 - PERIOD/20, 3*PERIOD/4] (see the top).
check_watchdog() {
        local log=$1 period=$2 gaps median lo hi
        lo=$((period / 4 - period / 20))
        hi=$((period * 3 / 4))
        gaps=$(awk '$3 == "WATCHDOG=1" { if (last != "") print $1 - last; last = $1 }' "$log" | sort -n)
        median=$(awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }' <<<"$gaps")
        if [ -n "$median" ] && [ "$median" -ge "$lo" ] && [ "$median" -le "$hi" ]; then
                pass "WATCHDOG_USEC=${period}000: median gap ${median} ms in [$lo, $hi] ($(tr '\n' ' ' <<<"$gaps"))"
        else
                fail "WATCHDOG_USEC=${period}000: median gap '${median}' ms, want [$lo, $hi] (gaps: $(tr '\n' ' ' <<<"$gaps"))"
        fi
}
if wait_until 10 count_at_least WATCHDOG=1 12; then
        check_watchdog "$nlog" 400
else
        fail "WATCHDOG=1 not repeated: $(count WATCHDOG=1)"
fi

assert_eq "$(count READY=1):$(count RELOADING=1)" 1:0 "before SIGHUP: one READY=1, no RELOADING=1"
kill -HUP "$pid"
wait_until 5 count_at_least READY=1 2 || true
reload_msg=$(awk '$3 == "RELOADING=1" { print $2; exit }' "$nlog")
ready_msgs=$(awk '$3 == "READY=1" { print $2 }' "$nlog" | tr '\n' ' ')
if [ -n "$reload_msg" ] && [ "$(awk -v r="$reload_msg" '$3 == "READY=1" && $2 > r' "$nlog" | wc -l)" = 1 ] &&
        [ "$(awk -v r="$reload_msg" '$3 == "READY=1" && $2 < r' "$nlog" | wc -l)" = 1 ]; then
        pass "SIGHUP: RELOADING=1 (message $reload_msg) then one READY=1 (messages $ready_msgs)"
else
        fail "SIGHUP: RELOADING=1 in message '$reload_msg', READY=1 in messages $ready_msgs"
fi
# MONOTONIC_USEC in the RELOADING=1 message itself, and CLOCK_MONOTONIC then.
mono=$(awk -v r="$reload_msg" '$2 == r && $3 ~ /^MONOTONIC_USEC=/ { sub(/^MONOTONIC_USEC=/, "", $3); print $3 }' "$nlog")
recv_ms=$(awk -v r="$reload_msg" '$2 == r { print $1; exit }' "$nlog")
if [[ "$mono" =~ ^[0-9]+$ ]] && [ -n "$recv_ms" ] && [ $((recv_ms - mono / 1000)) -ge -1 ] &&
        [ $((recv_ms - mono / 1000)) -le 1000 ]; then
        pass "RELOADING=1 carries MONOTONIC_USEC=$mono, $((recv_ms - mono / 1000)) ms before it was received (CLOCK_MONOTONIC)"
else
        fail "RELOADING=1 message $reload_msg: MONOTONIC_USEC '$mono' vs received at ${recv_ms} ms (CLOCK_MONOTONIC): want 0..1000 ms before"
fi

kill -TERM "$pid"
if wait_until 5 count_at_least STOPPING=1 1; then
        pass "SIGTERM: STOPPING=1"
else
        fail "SIGTERM: no STOPPING=1"
fi
if hi_wait_gone "$pid" 5; then
        pass "hamgr exited after SIGTERM"
else
        fail "hamgr still running after SIGTERM"
fi

# The second watchdog period, on a fresh daemon and listener.
sock2=$HI_TMP/notify2.sock
nlog2=$HI_TMP/notify-socket2.log
node_spawn gw1 "$nlog2" "$HAMGR_NOTIFY_LISTEN" "$sock2"
wait_until 5 test -S "$sock2" || die "notify listener did not bind $sock2"
NOTIFY_SOCKET=$sock2 WATCHDOG_USEC=1600000 \
        node_spawn gw1 "$HI_TMP/gw1-wd2.hamgr.log" "$HAMGR_BIN" run -c "$conf"
pid2=$HI_LAST_PID
wd2_at_least() {
        [ "$(grep -c ' WATCHDOG=1$' "$nlog2" || true)" -ge "$1" ]
}
if wait_until 12 wd2_at_least 8; then
        check_watchdog "$nlog2" 1600
else
        fail "WATCHDOG_USEC=1600000: only $(grep -c ' WATCHDOG=1$' "$nlog2" || true) WATCHDOG=1 in 12 s"
fi
stop_pid "$pid2" TERM

assert_true "logs go to stderr with a mismatched JOURNAL_STREAM" \
        grep -q "hamgr: notice: wan: BACKUP -> MASTER" "$(hamgr_log gw1)"

# The unit file: the keys hamgr relies on, and systemd's own opinion.
unit=${HAMGR_UNIT:?HAMGR_UNIT is not set (the unit generated by cmake)}
for key in "Type=notify" "ExecReload=/bin/kill -HUP \$MAINPID" "Restart=on-failure" "WatchdogSec="; do
        assert_true "unit has $key" grep -qF -- "$key" "$unit"
done

require_cmd systemd-analyze
mkdir -p "$HI_TMP/unit"
# The generated unit names the installed binary: point it at the built one.
sed "s|^\(Exec[A-Za-z]*=\)[^ ]*/hamgr |\1$HAMGR_BIN |" "$unit" >"$HI_TMP/unit/hamgr.service"
assert_true "unit runs the built binary" grep -qF "ExecStart=$HAMGR_BIN run" "$HI_TMP/unit/hamgr.service"
if out=$(systemd-analyze verify --man=no "$HI_TMP/unit/hamgr.service" 2>&1); then
        pass "systemd-analyze verify accepts the unit"
else
        fail "systemd-analyze verify: $out"
fi

finish
