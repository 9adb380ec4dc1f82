# SPDX-License-Identifier: GPL-2.0-or-later
# shellcheck shell=bash
#
# Helpers shared by the lab benchmarks (bench_failover.sh,
# bench_takeover_scale.sh). Needs nothing from lib.sh, so a driver that
# creates no lab can source it too.

BENCH_SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# bench_hamgr_bin: set HAMGR_BIN, building hamgr into build/bench (Release,
# only the daemon's target) when it is not given.
bench_hamgr_bin() {
        if [ -n "${HAMGR_BIN:-}" ]; then
                return 0
        fi
        printf '== building hamgr (build/bench)\n' >&2
        cmake -S "$BENCH_SRC_DIR" -B "$BENCH_SRC_DIR/build/bench" -DCMAKE_BUILD_TYPE=Release >/dev/null
        cmake --build "$BENCH_SRC_DIR/build/bench" -j"$(nproc)" --target hamgr >/dev/null
        HAMGR_BIN=$BENCH_SRC_DIR/build/bench/hamgr/hamgr
}

# A reply later than this counts as lost: it was held up by the outage.
BENCH_SLOW_MS=100

# recovery_ms LOG T0: milliseconds from T0 (epoch ms) to the first reply
# after the outage, from "ping -D" output. A reply's send time is its
# receive time minus its RTT, so replies in flight at T0 do not count, nor
# do the old master's last answers while it winds down (graceful): the
# outage starts at the first request after the last one sent before T0
# that goes unanswered (or is answered late); it ends with the first reply
# to any later request (queued requests are answered as soon as a session
# exists). Prints "nogap" when no request went unanswered and the last one
# seen was sent more than 2 s after T0 (a seamless hand-over, 0 ms), and
# fails while the outage lasts.
recovery_ms() {
        awk -v t0="$2" -v slow="$BENCH_SLOW_MS" '
        /bytes from/ {
                ts = $1; gsub(/[\[\]]/, "", ts)
                seq = ""; rtt = ""
                for (i = 2; i <= NF; i++) {
                        if ($i ~ /^icmp_seq=/) seq = substr($i, 10) + 0
                        else if ($i ~ /^time=/) rtt = substr($i, 6) + 0
                }
                if (seq == "" || rtt == "" || (seq in recv)) next
                recv[seq] = ts * 1000.0
                sent[seq] = recv[seq] - rtt
                if (seq > maxseq) maxseq = seq
        }
        END {
                p = -1
                for (s in recv)
                        if (sent[s] < t0 && s + 0 > p) p = s + 0
                if (p < 0) exit 1
                for (g = p + 1; g <= maxseq; g++)
                        if (!(g in recv) || recv[g] - sent[g] > slow) break
                if (g > maxseq) {
                        if (maxseq > p && sent[maxseq] > t0 + 2000) { print "nogap"; exit 0 }
                        exit 1
                }
                best = -1
                for (s in recv)
                        if (s + 0 > g && (best < 0 || recv[s] < best)) best = recv[s]
                if (best < 0) exit 1
                printf "%d\n", best - t0
        }' "$1"
}
