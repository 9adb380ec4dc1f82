#!/usr/bin/env bash
# The whole test suite: installs dependencies, builds with clang under
# ASan/UBSan with libFuzzer targets and -Werror, checks that gcc builds
# warning-free too, then runs every ctest label (unit, fuzz, integration).
# Integration tests need root (network namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."

bash contrib/setup.sh

if [ "$(id -u)" -ne 0 ]; then
  echo "tests/run.sh: integration tests need root (network namespaces); run as root" >&2
  exit 1
fi

jobs=$(nproc)
echo "== gcc build (-Werror)"
cmake -S . -B build/gcc -DHAMGR_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/gcc -j"$jobs" >/dev/null

echo "== clang build (-Werror, ASan, UBSan, libFuzzer)"
CC=clang cmake -S . -B build/test -DHAMGR_WERROR=ON -DHAMGR_SANITIZE=ON -DHAMGR_FUZZ=ON \
  -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build/test -j"$jobs" >/dev/null

echo "== ctest"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --test-dir build/test --output-on-failure -j"$jobs" "$@"
