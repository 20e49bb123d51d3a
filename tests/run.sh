#!/usr/bin/env bash
# The whole test suite: installs missing packages, then builds and runs every
# test twice, in a normal build (build/) and under AddressSanitizer +
# UndefinedBehaviorSanitizer (build-asan/), with a short run of each libFuzzer
# target in between (build-fuzz/).  Exit status 0 only if all pass.
set -euo pipefail
cd "$(dirname "$0")/.."
tests/setup-deps.sh

jobs=$(nproc)
run() {
  local dir=$1; shift
  echo "=== $dir: configure, build, test ==="
  cmake -S . -B "$dir" "$@"
  cmake --build "$dir" -j"$jobs"
  ctest --test-dir "$dir" --output-on-failure -j"$jobs" --timeout 300
}
run build -DCMAKE_BUILD_TYPE=RelWithDebInfo

echo "=== build-fuzz: libFuzzer targets (clang), a short run each ==="
CC=clang cmake -S . -B build-fuzz -DVHU_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build-fuzz -j"$jobs"
tests/fuzz/run.sh build-fuzz "${VHU_FUZZ_SECONDS:-15}"

ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run build-asan -DCMAKE_BUILD_TYPE=Debug -DVHU_SANITIZE=ON
