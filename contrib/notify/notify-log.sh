#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Example hamgr notify script: appends one record per call to a log, for
# tests and for seeing what a notify script receives. hamgr calls the
# generic script like keepalived does:
#     notify-log.sh TYPE NAME STATE PRIORITY
# e.g. "INSTANCE wan MASTER 150". The log is $HAMGR_NOTIFY_LOG, or
# /run/hamgr/notify.log.
#
# Record format, one line, fields separated by a tab:
#     <unix time with ns> <tab> args=<arg1> <arg2> ... <tab> env=<K=V> <K=V> ...
# where env lists the HAMGR_* variables (sorted), so a test can grep both.

set -u
log="${HAMGR_NOTIFY_LOG:-/run/hamgr/notify.log}"
mkdir -p "$(dirname "$log")" 2>/dev/null

env_vars=$(env | grep '^HAMGR_' | grep -v '^HAMGR_NOTIFY_LOG=' | LC_ALL=C sort | tr '\n' ' ')
now=$(date +%s.%N)

# One write per record: concurrent calls (several instances changing state
# at once) must not interleave within a line.
printf '%s\targs=%s\tenv=%s\n' "$now" "$*" "${env_vars% }" >>"$log"
