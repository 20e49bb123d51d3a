#!/usr/bin/env bash
# The whole test suite: installs missing packages, then builds and runs every
# test twice, in a normal build (build/) and under AddressSanitizer +
# UndefinedBehaviorSanitizer (build-asan/).  Exit status 0 only if all pass.
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
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run build-asan -DCMAKE_BUILD_TYPE=Debug -DVHU_SANITIZE=ON
