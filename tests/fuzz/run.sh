#!/usr/bin/env bash
# Run every libFuzzer target for SECONDS each (default 60), one after the
# other, and print a table: executions, executions per second, corpus
# entries and crashes per target. ctest's fuzz label runs each target for
# HAMGR_FUZZ_SECONDS only; this is the longer run before a release:
#
#   tests/fuzz/run.sh 600
#
# Builds (or reuses) build/test ($HAMGR_FUZZ_BUILD_DIR) with the flags of tests/run.sh (clang,
# ASan, UBSan, libFuzzer), but only the fuzz targets. The corpus grows in
# build/test/tests/fuzz/corpus_NAME, as under ctest; a crash, leak or
# timeout leaves its input in build/fuzz-artifacts/ (libFuzzer stops a
# target at the first one). Exit status 1 when a target found something,
# 2 for a usage or build error.
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds=${1:-60}
if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then
        echo "usage: tests/fuzz/run.sh [SECONDS]" >&2
        exit 2
fi

build=${HAMGR_FUZZ_BUILD_DIR:-build/test}
artifacts=build/fuzz-artifacts
mapfile -t names < <(ls tests/fuzz/fuzz_*.c | sed 's|.*/fuzz_||; s|\.c$||')

echo "== building fuzz targets in $build"
CC=clang cmake -S . -B "$build" -DHAMGR_WERROR=ON -DHAMGR_SANITIZE=ON -DHAMGR_FUZZ=ON \
        -DCMAKE_BUILD_TYPE=Debug >/dev/null
if ! cmake --build "$build" -j2 --target "${names[@]/#/fuzz_}" >"$build/fuzz-build.log" 2>&1; then
        cat "$build/fuzz-build.log" >&2
        exit 2
fi
mkdir -p "$artifacts"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
rows=() found=0
for name in "${names[@]}"; do
        corpus=$build/tests/fuzz/corpus_$name
        log=$build/tests/fuzz/run_$name.log
        mkdir -p "$corpus"
        echo "== fuzz_$name for ${seconds}s"
        status=0
        "$build/tests/fuzz/fuzz_$name" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
                -print_final_stats=1 -artifact_prefix="$artifacts/$name-" \
                "$corpus" "tests/fuzz/corpus/$name" >"$log" 2>&1 || status=$?
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
        entries=$(find "$corpus" -type f | wc -l)
        if [ "$status" -ne 0 ]; then
                # libFuzzer stops at the first crash, leak or timeout.
                crashes=$(grep -c 'Test unit written' "$log" || true)
                [ "$crashes" -gt 0 ] || crashes=1
                found=1
                grep -E 'ERROR|Test unit written|SUMMARY' "$log" | head -5 >&2
        else
                crashes=0
        fi
        rows+=("$(printf '%-16s %8s %12s %10s %8s %8s' "$name" "$seconds" "${execs:-?}" "${rate:-?}" "$entries" "$crashes")")
done

echo
printf '%-16s %8s %12s %10s %8s %8s\n' TARGET SECONDS EXECUTIONS EXEC/S CORPUS CRASHES
printf '%s\n' "${rows[@]}"
exit "$found"
