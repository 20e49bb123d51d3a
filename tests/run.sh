#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The whole test suite: installs missing packages, then builds and runs every
# test twice, in a normal build (build/) and under AddressSanitizer +
# UndefinedBehaviorSanitizer (build-asan/), with the normal build's compiled
# tests once more under valgrind memcheck and a short run of each libFuzzer
# target in between (build-fuzz/), and the threaded tests under
# ThreadSanitizer at the end (build-tsan/).  Exit status 0 only if all pass.
set -euo pipefail
cd "$(dirname "$0")/.."

# tests/run.sh --coverage: only a gcov build (build-coverage/) and its tests
# (not the QEMU ones, nor test_install, whose consumer build does not link
# gcov), then the line and branch coverage of src/ (lcov).
if [ "${1:-}" = --coverage ]; then
  tests/setup-deps.sh --also lcov
  cmake -S . -B build-coverage -DCMAKE_BUILD_TYPE=Debug -DVHU_COVERAGE=ON -DVHU_WERROR=ON
  cmake --build build-coverage -j"$(nproc)"
  find build-coverage -name '*.gcda' -delete
  ctest --test-dir build-coverage --output-on-failure -j"$(nproc)" --timeout 600 -LE qemu \
    -E '^test_install$'
  lcov --quiet --rc lcov_branch_coverage=1 --capture --directory build-coverage \
    --output-file build-coverage/all.info
  lcov --quiet --rc lcov_branch_coverage=1 --extract build-coverage/all.info "$PWD/src/*" \
    --output-file build-coverage/src.info
  echo "=== coverage of src/ (tests/run.sh --coverage; no QEMU tests) ==="
  lcov --rc lcov_branch_coverage=1 --summary build-coverage/src.info 2>&1 | grep -E 'lines|branches|functions'
  exit 0
fi

tests/setup-deps.sh

jobs=$(nproc)

# On failure, print last the lines that say why (a CI log often keeps only
# its tail): failed assertions, sanitizer and valgrind reports, from the
# logs this run wrote.
stamp=$(mktemp)
why_failed() {
  echo "=== tests/run.sh failed (exit $1); why, from this run's test logs ==="
  find build* -path '*/Testing/Temporary/*.log' -newer "$stamp" 2>/dev/null | sort |
  while read -r f; do
    grep -hE '\[ +(ERROR|FAILED|LINE) +\]|: error:|ERROR: [A-Za-z]+Sanitizer|runtime error|WARNING: ThreadSanitizer|(definitely|indirectly) lost in|Invalid (read|write)|uninitialised|Conditional jump' "$f" |
      sed "s|^|$f: |" | head -n 6
    grep -hE -A6 '(definitely|indirectly) lost in' "$f" | grep -E 'at 0x|by 0x' | head -n 6
  done | tail -n 40
  rm -f "$stamp"
}
trap 'rc=$?; if [ "$rc" -ne 0 ]; then why_failed "$rc"; else rm -f "$stamp"; fi' EXIT
run() {
  local dir=$1; shift
  echo "=== $dir: configure, build, test ==="
  cmake -S . -B "$dir" "$@"
  cmake --build "$dir" -j"$jobs"
  ctest --test-dir "$dir" --output-on-failure -j"$jobs" --timeout 300
}
run build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVHU_WERROR=ON

# valgrind memcheck over the normal build's test programs: invalid accesses,
# uninitialised reads, and definite/indirect leaks fail the test.  Not run
# under it: tests labelled script, whose command is a shell script (valgrind
# would check bash, not our programs); the QEMU, install and export checks
# are among them.  The labels are set where the tests are defined
# (tests/CMakeLists.txt).
echo "=== build: valgrind memcheck ==="
ctest --test-dir build -T memcheck --output-on-failure -j"$jobs" --timeout 600 \
  --overwrite MemoryCheckCommand="$(command -v valgrind)" \
  --overwrite MemoryCheckCommandOptions="--leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=1 --num-callers=30" \
  -LE '^script$'

echo "=== build-fuzz: libFuzzer targets (clang), a short run each ==="
CC=clang cmake -S . -B build-fuzz -DVHU_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVHU_WERROR=ON
cmake --build build-fuzz -j"$jobs"
tests/fuzz/run.sh build-fuzz "${VHU_FUZZ_SECONDS:-15}"

ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run build-asan -DCMAKE_BUILD_TYPE=Debug -DVHU_SANITIZE=ON -DVHU_WERROR=ON

# ThreadSanitizer (CMake option VHU_TSAN) over the tests labelled tsan: test
# programs whose back-end (server, ring workers, transfer thread) runs on
# threads beside the test's own.  A test left out says why where it is
# defined.  Only their programs are built (a test's name is its program's).
echo "=== build-tsan: ThreadSanitizer ==="
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVHU_TSAN=ON -DVHU_WERROR=ON
mapfile -t tsan_tests < <(ctest --test-dir build-tsan -N -L '^tsan$' | sed -n 's/^ *Test *#[0-9]*: //p')
if [ ${#tsan_tests[@]} -eq 0 ]; then
  echo "tests/run.sh: no test is labelled tsan" >&2
  exit 1
fi
cmake --build build-tsan -j"$jobs" --target "${tsan_tests[@]}"
TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1" \
  ctest --test-dir build-tsan --output-on-failure -j"$jobs" --timeout 300 -L '^tsan$'
