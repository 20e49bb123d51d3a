#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# test-vhu-state-damage.sh VHU_STATE TESTDEV SNAPCRAFT
#
# Bad input: a real snapshot (captured from vhu-testdev) truncated at every
# length up to 300 bytes and then at a stride through the rest, and with a
# byte inverted at a stride through the whole file.  Every damaged file must
# be reported invalid by validate (exit 1, a line with its byte offset),
# and inspect and diff must end with exit 1 or 2 (inspect 0 allowed for a
# flip in free text it does not check) and a message, never a crash (exit
# >= 128 or a sanitizer report) or a hang.  Then the bombs: a zstd frame of
# ~160 KB inflating to 4 GiB (refused at --max-size in bounded time), maps
# nested 100000 deep in section data, 65000 nested arrays in the header,
# header lengths that lie, and no progress line when stderr is not a tty.
set -euo pipefail
# say, fail, $dir, start_testdev, sanitizer_report; back-ends stopped at exit.
source "$(dirname "$0")/vhu-state-common.sh" 3 3 "VHU_STATE TESTDEV SNAPCRAFT" "$@"
vs=$1
testdev=$2
craft=$3

sanitizer_clean() { ! sanitizer_report "$1"; }

# check_run WHAT ALLOWED_RCS CMD...: run bounded; rc must be in the list,
# a non-zero rc must come with a message, no sanitizer report.
check_run() {
    local what=$1 allowed=$2 rc=0
    shift 2
    timeout 30 "$@" >"$dir/o" 2>"$dir/e" || rc=$?
    ((rc != 124)) || fail "$what: hung (killed after 30 s)"
    ((rc < 128)) || fail "$what: crashed (exit $rc): $(head -c 2000 "$dir/e")"
    sanitizer_clean "$dir/e" || fail "$what: sanitizer report: $(head -c 4000 "$dir/e")"
    [[ " $allowed " == *" $rc "* ]] || fail "$what: exit $rc (allowed: $allowed): $(cat "$dir/e")"
    if ((rc != 0)) && [[ ! -s $dir/e && ! -s $dir/o ]]; then
        fail "$what: exit $rc without a message"
    fi
    last_rc=$rc
}

sock=$dir/s
start_testdev "$testdev" "$sock" "$dir/td.log" --blob-size 3000 --label damage
good=$dir/good.vhus
timeout 30 "$vs" capture --socket "$sock" -o "$good" >/dev/null || fail "capture failed"
size=$(stat -c %s "$good")
say "a real snapshot of $size bytes"

# --- the sweep -------------------------------------------------------------
mkdir "$dir/sweep"
count=$("$craft" sweep "$good" "$dir/sweep" 300 37 4)
files=("$dir"/sweep/*)
((${#files[@]} == count)) || fail "snapcraft made ${#files[@]} files, said $count"
# One validate over all of them (a process per file costs too much under
# the sanitizers): every file gets a problem line and an "invalid" summary.
rc=0
timeout 120 "$vs" validate "${files[@]}" >"$dir/sweep.out" 2>"$dir/sweep.err" || rc=$?
((rc != 124)) || fail "validate over the sweep hung"
((rc < 128)) || fail "validate over the sweep crashed (exit $rc): $(tail -c 3000 "$dir/sweep.err")"
sanitizer_clean "$dir/sweep.err" || fail "sanitizer report: $(head -c 4000 "$dir/sweep.err")"
((rc == 1)) || fail "validate over the sweep exited $rc (want 1): $(tail -5 "$dir/sweep.out")"
invalid=$(grep -c ': invalid: ' "$dir/sweep.out" || true)
if ((invalid != count)); then
    grep ': valid: ' "$dir/sweep.out" | head -5 >&2 || true
    fail "$invalid of $count damaged files reported invalid"
fi
lines=$(grep -cE ': byte [0-9]+ \(body offset [0-9]+\): ' "$dir/sweep.out" || true)
((lines >= count)) || fail "only $lines problem lines with offsets for $count files"
say "validate: all $count truncated/flipped files invalid, each with an offset line"

# inspect and diff, one process each, on a sample.
n=0
for f in "${files[@]}"; do
    ((n++ % 60 == 0)) || continue
    case $f in
    */trunc-*) check_run "inspect $(basename "$f")" "1" "$vs" inspect "$f" ;;
    *) check_run "inspect $(basename "$f")" "0 1" "$vs" inspect "$f" ;;
    esac
    if ((n % 180 == 1)); then
        check_run "diff $(basename "$f")" "0 1 2" "$vs" diff "$good" "$f"
        check_run "inspect --json $(basename "$f")" "0 1" "$vs" inspect --json "$f"
    fi
done
say "inspect and diff on a sample: exit 0/1/2 with a message, no crash"

# --- bombs -----------------------------------------------------------------
"$craft" zbomb "$dir/zbomb.vhus" 4096 >/dev/null
zs=$(stat -c %s "$dir/zbomb.vhus")
((zs < 200000)) || fail "the zstd bomb is $zs bytes"
start=$SECONDS
check_run "validate zbomb" "1" "$vs" validate --max-size 64M "$dir/zbomb.vhus"
grep -q 'inflates beyond 67108864 bytes (--max-size)' "$dir/o" ||
    fail "zbomb: no --max-size line: $(cat "$dir/o")"
check_run "inspect zbomb" "1" "$vs" inspect --max-size 64M "$dir/zbomb.vhus"
grep -q 'max-size' "$dir/e" || fail "inspect zbomb: $(cat "$dir/e")"
check_run "diff zbomb" "2" "$vs" diff --max-size 64M "$dir/zbomb.vhus" "$dir/zbomb.vhus"
((SECONDS - start < 20)) || fail "the zstd bomb took $((SECONDS - start)) s"
say "zstd bomb ($zs bytes -> 4 GiB): refused at --max-size in $((SECONDS - start)) s"

"$craft" nestbomb "$dir/nest.vhus" 100000
check_run "validate nestbomb" "1" "$vs" validate "$dir/nest.vhus"
grep -q 'nested deeper than 16' "$dir/o" || fail "nestbomb: $(cat "$dir/o")"
check_run "inspect nestbomb" "1" "$vs" inspect "$dir/nest.vhus"
"$craft" headerbomb "$dir/hbomb.vhus" 65000
check_run "validate headerbomb" "1" "$vs" validate "$dir/hbomb.vhus"
check_run "inspect headerbomb" "1" "$vs" inspect --header-only "$dir/hbomb.vhus"
say "nesting bombs (section data, header): refused"

"$craft" setlen "$good" "$dir/len-huge.vhus" 0xffffffff
check_run "huge header length" "1" "$vs" validate "$dir/len-huge.vhus"
grep -q 'header length 4294967295 at byte 4' "$dir/o" || fail "huge length: $(cat "$dir/o")"
"$craft" setlen "$good" "$dir/len-max.vhus" 65536
check_run "header length past the end" "1" "$vs" inspect "$dir/len-max.vhus"
hl=$(od -An -tu4 -j4 -N4 "$good" | tr -d ' ')
"$craft" setlen "$good" "$dir/len-more.vhus" $((hl + 7))
check_run "header length into the frame" "1" "$vs" validate "$dir/len-more.vhus"
"$craft" setlen "$good" "$dir/len-less.vhus" $((hl - 7))
check_run "header length too short" "1" "$vs" validate "$dir/len-less.vhus"
say "headers that lie about their length: refused"

# Empty input, a directory, garbage.
: >"$dir/empty.vhus"
check_run "empty file" "1" "$vs" validate "$dir/empty.vhus"
check_run "a directory" "2" "$vs" inspect "$dir"
head -c 5000 /dev/urandom >"$dir/noise.vhus"
check_run "noise" "1" "$vs" validate "$dir/noise.vhus"
check_run "noise on stdin" "1" sh -c "\"$vs\" inspect - <\"$dir/noise.vhus\""
# stderr is a file here: no progress line, whatever the size of the work
# (inflating 1 GiB takes long enough for one on a terminal).
"$craft" zbomb "$dir/zbomb1g.vhus" 1024 >/dev/null
check_run "big inflation" "0" "$vs" inspect "$dir/zbomb1g.vhus"
grep -q 'data: blob, 1073741824 bytes' "$dir/o" || fail "1 GiB blob: $(cat "$dir/o")"
# Bounded memory: 1 GiB of records inspected, diffed (two at once) and
# validated within 128 MiB of address space.  (Not under the sanitizers,
# which reserve terabytes of shadow.)
# (grep reads the whole of ldd's output: with pipefail, grep -q quitting early
# could kill ldd with SIGPIPE and fail the test.)
if grep -q 'libasan' <<<"$(ldd "$vs" 2>/dev/null)"; then
    say "bounded memory: skipped (sanitizer build)"
else
    check_run "inspect in 128 MiB" "0" sh -c "ulimit -v 131072; exec \"$vs\" inspect \"$dir/zbomb1g.vhus\""
    check_run "diff in 128 MiB" "0" sh -c "ulimit -v 131072; exec \"$vs\" diff \"$dir/zbomb1g.vhus\" \"$dir/zbomb1g.vhus\""
    check_run "validate in 128 MiB" "1" sh -c "ulimit -v 131072; exec \"$vs\" validate \"$dir/zbomb1g.vhus\""
    grep -q "1073741824 bytes, but 'length' says 0" "$dir/o" || fail "validate 1 GiB: $(cat "$dir/o")"
    say "bounded memory: 1 GiB of records inspected, diffed and validated in 128 MiB"
fi
if grep -q $'\r' "$dir/e"; then
    fail "a progress line on a non-terminal stderr: $(cat -A "$dir/e" | head -3)"
fi
say "empty, directory, noise: 1/2 with a message; no progress line off a terminal"
say "all checks passed"
