#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# test-testdev-program.sh TESTDEV PROBE
#
# The README's main program, end to end: vhu-testdev serving on a socket,
# vhu-probe attaching to it (twice in a row, then asking for too much
# config), the command line, a second instance on a live socket, a clean
# SIGTERM shutdown, and a restart over the stale socket of a killed one.
set -euo pipefail

if [[ $# -ne 2 ]]; then
    echo "usage: $0 TESTDEV PROBE" >&2
    exit 2
fi
testdev=$1
probe=$2
[[ -x $testdev ]] || { echo "test-testdev-program: $testdev is not executable" >&2; exit 1; }
[[ -x $probe ]] || { echo "test-testdev-program: $probe is not executable" >&2; exit 1; }

say() { echo "test-testdev-program: $*"; }
fail() {
    echo "test-testdev-program: FAIL: $*" >&2
    exit 1
}

dir=$(mktemp -d "${TMPDIR:-/tmp}/vhu-testdev.XXXXXX")
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do
        kill -9 "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$dir"
}
trap cleanup EXIT

# start_testdev PATH OUTFILE: start a server in the background; sets $pid.
start_testdev() {
    "$testdev" --socket "$1" --queues 3 >"$2" 2>&1 &
    pid=$!
    pids+=("$pid")
}

# wait_listening PID OUTFILE: up to 5 s for the "listening on" line (printed
# once the socket is bound and listening).
wait_listening() {
    local i
    for ((i = 0; i < 50; i++)); do
        grep -q 'listening on' "$2" 2>/dev/null && return 0
        kill -0 "$1" 2>/dev/null || fail "vhu-testdev exited early: $(cat "$2")"
        sleep 0.1
    done
    fail "vhu-testdev not listening after 5 s: $(cat "$2")"
}

# stop_testdev PID: SIGTERM, then up to 5 s for it to exit; sets $rc.
stop_testdev() {
    local i
    kill -TERM "$1"
    for ((i = 0; i < 50; i++)); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$1" 2>/dev/null && fail "vhu-testdev still running 5 s after SIGTERM"
    rc=0
    wait "$1" || rc=$?
}

# run_probe OUTVAR ARGS...: run the probe (bounded), fail unless it exits 0.
run_probe() {
    local _var=$1 _out _r=0
    shift
    _out=$(timeout 10 "$probe" "$@" 2>&1) || _r=$?
    ((_r == 0)) || fail "vhu-probe $* exited $_r: $_out"
    printf -v "$_var" '%s' "$_out"
}

check_probe_output() {
    local out=$1 pfline
    grep -Eq '^queues: *3$' <<<"$out" || fail "probe did not report 3 queues: $out"
    pfline=$(grep '^protocol features:' <<<"$out") || fail "no protocol features line: $out"
    local name
    for name in MQ REPLY_ACK CONFIG; do
        grep -qw -- "$name" <<<"$pfline" || fail "protocol feature $name missing: $pfline"
    done
    grep -q '56 48 55 30 03 00 00 00' <<<"$out" || fail "config bytes wrong: $out"
}

sock=$dir/s
log=$dir/testdev.out

# --- Serve, probe, probe again, over-ask ----------------------------------
start_testdev "$sock" "$log"
main_pid=$pid
for ((i = 0; i < 50; i++)); do
    [[ -S $sock ]] && break
    kill -0 "$main_pid" 2>/dev/null || fail "vhu-testdev exited early: $(cat "$log")"
    sleep 0.1
done
[[ -S $sock ]] || fail "socket $sock did not appear within 5 s"
say "vhu-testdev (pid $main_pid) listening on $sock"

run_probe out --socket "$sock"
check_probe_output "$out"
say "probe 1: $(grep '^protocol features:' <<<"$out")"

run_probe out --socket "$sock"
check_probe_output "$out"
say "probe 2: the back-end served a second front-end"

run_probe out --socket "$sock" --config-size 20
grep -Eq '^config: *refused' <<<"$out" || fail "20 config bytes were not refused: $out"
grep -Eq '^queues: *3$' <<<"$out" || fail "probe 3 did not report 3 queues: $out"
say "probe 3: $(grep '^config:' <<<"$out")"

# --- Command line -----------------------------------------------------------
r=0
out=$("$testdev" --help 2>&1) || r=$?
((r == 0)) || fail "vhu-testdev --help exited $r"
grep -q '^usage: vhu-testdev' <<<"$out" || fail "vhu-testdev --help printed no usage: $out"
r=0
out=$("$testdev" 2>&1) || r=$?
((r == 2)) || fail "vhu-testdev with no arguments exited $r (want 2)"
grep -q 'usage:' <<<"$out" || fail "vhu-testdev with no arguments printed no usage: $out"
say "--help exits 0, no arguments exits 2"

# --- A second instance on the live socket -----------------------------------
r=0
out=$(timeout 5 "$testdev" --socket "$sock" --queues 3 2>&1) || r=$?
((r != 0)) || fail "a second vhu-testdev on the live socket $sock succeeded"
((r != 124)) || fail "a second vhu-testdev on the live socket $sock kept running"
[[ -S $sock ]] || fail "the second vhu-testdev removed the live socket $sock"
kill -0 "$main_pid" 2>/dev/null || fail "the first vhu-testdev died: $(cat "$log")"
say "second instance refused (exit $r): $(head -1 <<<"$out")"

# --- SIGTERM ----------------------------------------------------------------
stop_testdev "$main_pid"
((rc == 0)) || fail "vhu-testdev exited $rc after SIGTERM: $(cat "$log")"
# Three probes were three sessions; the second instance's look at the live
# socket is not a front-end session.  (Checked last so that the stale-socket
# part below still runs when this fails.)
sessions_ok=1
if ! grep -qF 'served 3 front-end session(s)' "$log"; then
    echo "test-testdev-program: FAIL: vhu-testdev did not report 3 sessions:" >&2
    cat "$log" >&2
    sessions_ok=0
fi
[[ ! -e $sock ]] || fail "socket $sock left behind after SIGTERM"
say "SIGTERM: exit 0, $(grep -o 'served [0-9]* front-end session(s)' "$log"), socket removed"

# --- Restart over a stale socket ---------------------------------------------
sock2=$dir/stale
start_testdev "$sock2" "$dir/killed.out"
wait_listening "$pid" "$dir/killed.out"
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
[[ -S $sock2 ]] || fail "kill -9 left no socket file behind (nothing stale to test)"
start_testdev "$sock2" "$dir/restart.out"
wait_listening "$pid" "$dir/restart.out"
run_probe out --socket "$sock2"
check_probe_output "$out"
stop_testdev "$pid"
((rc == 0)) || fail "restarted vhu-testdev exited $rc: $(cat "$dir/restart.out")"
grep -qF 'served 1 front-end session(s)' "$dir/restart.out" ||
    fail "restarted vhu-testdev did not report 1 session: $(cat "$dir/restart.out")"
[[ ! -e $sock2 ]] || fail "socket $sock2 left behind after SIGTERM"
say "restart over a stale socket: served a probe, exit 0"

((sessions_ok)) || fail "wrong session count after three probes (see above)"
say "all checks passed"
