# SPDX-License-Identifier: BSD-3-Clause
# vhu-state-common.sh: the preamble the test-vhu-state*.sh scripts share.
# Sourced (not run) right after `set -euo pipefail`:
#
#   source "$(dirname "$0")/vhu-state-common.sh" MIN MAX "ARGS USAGE" "$@"
#
# With fewer than MIN or more than MAX arguments (MAX empty: no limit) it
# prints "usage: SCRIPT ARGS USAGE" and exits 2.  Then:
#
#   say MSG...         "NAME: MSG" on stdout (NAME: the script's, without .sh)
#   fail MSG...        "NAME: FAIL: MSG" on stderr; exit 1
#   dir                a scratch directory, removed at exit
#   pids               back-ends to stop at exit (start_testdev adds to it)
#   stop_backends      SIGTERM every one of pids, reap it; pids emptied
#   start_testdev TESTDEV SOCK LOG ARGS...
#                      a vhu-testdev on SOCK, its output in LOG; up to 5 s
#                      for it to listen, or fail
#   sanitizer_report FILE
#                      true when FILE holds an ASan, UBSan or LSan report

if (($# < 3)); then
    echo "vhu-state-common.sh: source it with MIN MAX USAGE \"\$@\"" >&2
    exit 2
fi
if (($# - 3 < $1)) || { [[ -n $2 ]] && (($# - 3 > $2)); }; then
    echo "usage: $0 $3" >&2
    exit 2
fi

vhu_test_name=$(basename "$0" .sh)
say() { echo "$vhu_test_name: $*"; }
fail() {
    echo "$vhu_test_name: FAIL: $*" >&2
    exit 1
}

dir=$(mktemp -d "${TMPDIR:-/tmp}/${vhu_test_name#test-}.XXXXXX")
pids=()
stop_backends() {
    local p
    for p in "${pids[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    pids=()
}
vhu_test_cleanup() {
    stop_backends
    rm -rf "$dir"
}
trap vhu_test_cleanup EXIT

start_testdev() {
    local prog=$1 sock=$2 log=$3 i
    shift 3
    "$prog" --socket "$sock" "$@" >"$log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    for ((i = 0; i < 50; i++)); do
        grep -q 'listening on' "$log" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || fail "vhu-testdev exited early: $(cat "$log")"
        sleep 0.1
    done
    fail "vhu-testdev not listening after 5 s: $(cat "$log")"
}

sanitizer_report() {
    grep -qE 'AddressSanitizer|runtime error:|LeakSanitizer' "$1"
}
