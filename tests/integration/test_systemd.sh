#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# systemd integration without systemd: a stand-in notify socket receives
# what hamgr sends as a Type=notify service: READY=1, STATUS=, WATCHDOG=1
# when WATCHDOG_USEC is set, RELOADING=1 + READY=1 around SIGHUP,
# STOPPING=1 on SIGTERM. Also: logs go to stderr when stderr is not the
# journal, and the shipped unit file is well formed.
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
        pass "STATUS= names the instance and its state: $(grep -m1 'STATUS=1 instance: wan=MASTER' "$nlog" | cut -d' ' -f2-)"
else
        fail "no STATUS= line with wan=MASTER: $(grep STATUS= "$nlog" | tail -1)"
fi
if wait_until 5 count_at_least WATCHDOG=1 4; then
        pass "WATCHDOG=1 keeps coming with WATCHDOG_USEC=400000 ($(count WATCHDOG=1) so far)"
else
        fail "WATCHDOG=1 not repeated: $(count WATCHDOG=1)"
fi

kill -HUP "$pid"
if wait_until 5 count_at_least RELOADING=1 1 && wait_until 5 count_at_least READY=1 2; then
        pass "SIGHUP: RELOADING=1 then READY=1"
else
        fail "SIGHUP: RELOADING=1 $(count RELOADING=1), READY=1 $(count READY=1)"
fi
assert_true "RELOADING=1 comes with MONOTONIC_USEC" grep -q "MONOTONIC_USEC=[0-9]" "$nlog"

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

assert_true "logs go to stderr with a mismatched JOURNAL_STREAM" \
        grep -q "hamgr: notice: wan: BACKUP -> MASTER" "$(hamgr_log gw1)"

# The unit file: the keys hamgr relies on, and systemd's own opinion.
unit=$HAMGR_SOURCE_DIR/contrib/systemd/hamgr.service
for key in "Type=notify" "ExecReload=/bin/kill -HUP \$MAINPID" "Restart=on-failure" "WatchdogSec="; do
        assert_true "unit has $key" grep -qF -- "$key" "$unit"
done

require_cmd systemd-analyze
mkdir -p "$HI_TMP/unit"
sed "s|/usr/sbin/hamgr|$HAMGR_BIN|g" "$unit" >"$HI_TMP/unit/hamgr.service"
if out=$(systemd-analyze verify --man=no "$HI_TMP/unit/hamgr.service" 2>&1); then
        pass "systemd-analyze verify accepts the unit"
else
        fail "systemd-analyze verify: $out"
fi

finish
