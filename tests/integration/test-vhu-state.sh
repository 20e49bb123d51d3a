#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# test-vhu-state.sh VHU_STATE TESTDEV SNAPCRAFT
#
# vhu-state end to end against two real vhu-testdev back-ends: help and
# usage errors, capture, inspect (human and --json, header only, one
# section, hexdump), diff (same, different, --ignore, --json), validate
# (good, damaged, version window), capture into a pipe, load, roundtrip,
# refusals and connection errors, a back-end busy with another front-end,
# no progress line when stderr is not a terminal; info over a control socket;
# live snapshots (capture --control).
set -euo pipefail
# say, fail, $dir, start_testdev, sanitizer_report; back-ends stopped at exit.
source "$(dirname "$0")/vhu-state-common.sh" 3 3 "VHU_STATE TESTDEV SNAPCRAFT" "$@"
vs=$1
testdev=$2
craft=$3

# start SOCK LOG ARGS...: a vhu-testdev, up to 5 s for it to listen.
start() { start_testdev "$testdev" "$@"; }

# run WANT_RC ARGS...: vhu-state, bounded; stdout in $out, stderr in $err.
run() {
    local want=$1 rc=0
    shift
    timeout 60 "$vs" "$@" >"$dir/out" 2>"$dir/err" || rc=$?
    out=$(cat "$dir/out")
    err=$(cat "$dir/err")
    if sanitizer_report "$dir/err"; then
        fail "vhu-state $* : sanitizer report: $err"
    fi
    ((rc == want)) || fail "vhu-state $* exited $rc (want $want); stdout: $out; stderr: $err"
}
has() { grep -qF -- "$2" <<<"$1" || fail "expected '$2' in: $1"; }
hasnt() { ! grep -qF -- "$2" <<<"$1" || fail "did not expect '$2' in: $1"; }

sa=$dir/a.sock
sb=$dir/b.sock
start "$sa" "$dir/a.log" --blob-size 5000 --label alpha
start "$sb" "$dir/b.log" --blob-size 5000 --label beta

# --- help and usage ---------------------------------------------------------
run 0 --help
for c in inspect diff validate capture load roundtrip; do
    has "$out" "$c"
done
run 0 help inspect
has "$out" "usage: vhu-state inspect"
has "$out" "Examples:"
for c in inspect diff validate capture load roundtrip; do
    run 0 "$c" --help
    has "$out" "usage: vhu-state $c"
    has "$out" "Exit status"
done
run 2 frobnicate
has "$err" "unknown command"
run 2 inspect
has "$err" "usage:"
run 2 inspect --no-such-option x
run 2 diff onlyone
run 2 validate --device-version nonsense x
run 2 inspect "$dir/does-not-exist"
has "$err" "No such file"
say "help, usage errors and a missing file: exit 0 / 2"

# --- capture, inspect --------------------------------------------------------
run 0 capture --socket "$sa" -o "$dir/a.vhus"
has "$out" "CHECK_DEVICE_STATE: ok"
run 0 capture --socket "$sb" -o "$dir/b.vhus"
[[ -s $dir/a.vhus && -s $dir/b.vhus ]] || fail "capture wrote no file"
run 0 inspect "$dir/a.vhus"
has "$out" "device:   testdev"
has "$out" "config           version 2 (min 1)"
has "$out" "section config (version 2, min 1):"
has "$out" 'label: "alpha"'
has "$out" "data: blob, 5000 bytes"
has "$out" "section stats (version 1, min 1, optional):"
has "$out" "drift: -42"
has "$out" "end: 3 sections"
[[ -z $err ]] || fail "inspect wrote to stderr (not a terminal: no progress line): $err"
run 0 inspect --json "$dir/a.vhus"
has "$out" '"header":{"format":1,"device":"testdev","producer":"vhu '
has "$out" '{"name":"config","version":2,"min_version":1,"optional":false}'
has "$out" '"handler":{"features":'
has "$out" '{"key":"label","type":"text","value":"alpha"}'
has "$out" '{"key":"drift","type":"int","value":-42}'
has "$out" '{"key":"completed","type":"map","fields":[{"key":"q0","type":"uint","value":0}'
has "$out" '"type":"blob","head":"'
has "$out" '"size":5000}'
has "$out" '"end":{"sections":3,"compressed_size":'
if command -v python3 >/dev/null; then
    python3 -c 'import json,sys; json.load(sys.stdin)' <"$dir/out" ||
        fail "inspect --json is not one JSON document: $out"
fi
run 0 inspect --header-only "$dir/a.vhus"
has "$out" "sections: 3"
hasnt "$out" "handler:"
run 0 inspect --section blob --hexdump "$dir/a.vhus"
has "$out" "section blob"
hasnt "$out" "section config"
has "$out" "00000000 "
has "$out" "00001380 "
has "$out" "(5000 bytes)"
say "capture and inspect (human, --json, --header-only, --section, --hexdump)"

# --- diff ----------------------------------------------------------------------
run 0 diff "$dir/a.vhus" "$dir/a.vhus"
has "$out" "same:"
run 1 diff "$dir/a.vhus" "$dir/b.vhus"
has "$out" 'config.label: changed: "alpha" -> "beta"'
has "$out" "1 difference between"
run 0 diff --ignore config.label "$dir/a.vhus" "$dir/b.vhus"
run 0 diff --ignore 'config.*' "$dir/a.vhus" "$dir/b.vhus"
run 1 diff --json "$dir/a.vhus" "$dir/b.vhus"
has "$out" '{"path":"config.label","kind":"changed","a_type":"text","a":"alpha","b_type":"text","b":"beta"}'
has "$out" '"same":false,"count":1'
# A blob of another size: byte ranges.
start "$dir/c.sock" "$dir/c.log" --blob-size 7000 --label alpha
run 0 capture --socket "$dir/c.sock" -o "$dir/c.vhus"
run 1 diff "$dir/a.vhus" "$dir/c.vhus"
has "$out" "blob.length: changed: 5000 -> 7000"
has "$out" "blob.data: bytes differ: 5000..6999 (A 5000 bytes, B 7000 bytes)"
# A section at another version, and one missing.
start "$dir/d.sock" "$dir/d.log" --blob-size 5000 --config-version 1 --no-stats
run 0 capture --socket "$dir/d.sock" -o "$dir/d.vhus"
run 1 diff "$dir/a.vhus" "$dir/d.vhus"
has "$out" "config: section version 2 (min 1) -> 1 (min 1)"
has "$out" "config.label: removed"
has "$out" "stats: section removed"
# A renamed field is one removal and one addition, not a cascade over the
# fields after it.
# (The data's key, after the map's start: the record's field declarations
# before the data name the fields too.)
"$craft" patch "$dir/a.vhus" "$dir/renamed.vhus" '\xbfgscratch' '\xbfgscratcX' >/dev/null
run 1 diff "$dir/a.vhus" "$dir/renamed.vhus"
has "$out" "config.scratch: removed (uint 0)"
has "$out" "config.scratcX: added (uint 0)"
has "$out" "2 differences between"
say "diff: same (0), different (1) naming fields, byte ranges, sections, --ignore, --json"

# --- validate ----------------------------------------------------------------
run 0 validate "$dir/a.vhus" "$dir/b.vhus" "$dir/d.vhus"
has "$out" "a.vhus: valid: device testdev, format 1, 3 sections"
"$craft" patch "$dir/a.vhus" "$dir/badkey.vhus" 'label\x65alpha' 'lab3l\x65alpha' >/dev/null
run 1 validate "$dir/a.vhus" "$dir/badkey.vhus"
has "$out" "badkey.vhus: byte "
has "$out" "section 'config': expected field 'label' (text), found 'lab3l' (text)"
has "$out" "badkey.vhus: invalid: 1 problem"
"$craft" patch "$dir/a.vhus" "$dir/badlen.vhus" 'length\x19\x13\x88' 'length\x19\x13\x89' >/dev/null
run 1 validate "$dir/badlen.vhus"
has "$out" "field 'data': 5000 bytes, but 'length' says 5001"
"$craft" patch "$dir/a.vhus" "$dir/badend.vhus" 'sections\x03' 'sections\x02' >/dev/null
run 1 validate "$dir/badend.vhus"
has "$out" "the end record counts 2 sections, the header 3"
head -c 1000 "$dir/a.vhus" >"$dir/trunc.vhus"
run 1 validate "$dir/trunc.vhus"
grep -Eq 'trunc.vhus: byte [0-9]+ \(body offset [0-9]+\): .*truncated' <<<"$out" ||
    fail "no truncation line with offsets: $out"
run 1 validate --json "$dir/trunc.vhus"
has "$out" '"valid":false'
has "$out" '"problems":[{"offset":'
run 1 validate --device-version stats=0 "$dir/a.vhus"
has "$out" "section 'stats' is version 1 and needs a reader of version 1 or newer; the back-end reads up to version 0"
run 0 validate --device-version config=1 --device-version blob=1 "$dir/a.vhus"
has "$out" "note: section 'config' is version 2"
say "validate: good (0), damaged with offsets (1), schema, end record, version window"

# --- schemas: declared by the device, carried by the snapshot -----------------
# vhu-testdev declares its sections' fields (examples/testdev/testdev_state.c):
# its snapshots carry them, and inspect shows them.
run 0 inspect --section config "$dir/a.vhus"
has "$out" "declared fields:"
has "$out" "scratch: uint - the config space's scratch register"
has "$out" "label: text, at most 63 bytes, since version 2"
run 0 inspect --json --section config "$dir/a.vhus"
has "$out" '"declared":[{"key":"scratch","type":"uint","since":1,'
# A device nothing in vhu knows: validated and inspected by the snapshot's
# own declarations.
"$craft" gizmo "$dir/gizmo.vhus"
run 0 validate "$dir/gizmo.vhus"
has "$out" "gizmo.vhus: valid: device gizmo, format 1, 2 sections"
run 0 inspect "$dir/gizmo.vhus"
has "$out" "rpm: uint, at most 20000 - revolutions per minute"
has "$out" "zones: map of bool, keys 'z' and a number, since version 3 - armed, per zone"
has "$out" "rpm: 1200 (0x4b0)"
has "$out" 'last: "spun up"'
"$craft" gizmo "$dir/gizmo-wrong.vhus" wrong
run 1 validate "$dir/gizmo-wrong.vhus"
has "$out" "section 'motor': field 'rpm': 30000 is larger than 20000"
has "$out" "section 'motor': field 'calibration': 5 bytes, but 'cal_len' says 6"
has "$out" "section 'motor': field 'zones.zoneA': key is not 'z' and a number"
has "$out" "gizmo-wrong.vhus: invalid: 3 problems"
# A declaration the format cannot carry is the device's bug: the save fails
# naming it.
rc=0
"$craft" gizmo "$dir/gizmo-bad.vhus" baddecl 2>"$dir/bad.err" || rc=$?
((rc == 2)) || fail "a bad declaration was written (exit $rc)"
grep -qF "section 'log': the declaration of field 1 is not valid" "$dir/bad.err" ||
    fail "bad declaration: $(cat "$dir/bad.err")"
# A snapshot older than declarations (the golden corpus): the example
# devices' own declarations (examples/state_decls.h) still check it, and it
# inspects as before.
old=$(cd "$(dirname "$0")/../../formats/corpus" && pwd)/testdev-f1-blobv1-configv2-statsv1-full.vhus
"$craft" patch "$old" "$dir/old-renamed.vhus" '\xbfgscratch' '\xbfgscratcX' >/dev/null
run 1 validate "$dir/old-renamed.vhus"
has "$out" "section 'config': expected field 'scratch' (uint), found 'scratcX' (uint)"
run 0 inspect "$old"
hasnt "$out" "declared fields:"
say "schemas: declared by devices, read from the snapshot; older snapshots by the examples'"

# --- pipes ---------------------------------------------------------------------
rc=0
timeout 30 "$vs" capture --socket "$sa" -o - 2>"$dir/cap.err" |
    timeout 30 "$vs" inspect - >"$dir/pipe.out" 2>"$dir/pipe.err" || rc=$?
((rc == 0)) || fail "capture -o - | inspect - exited $rc: $(cat "$dir/cap.err" "$dir/pipe.err")"
grep -q 'label: "alpha"' "$dir/pipe.out" || fail "inspect - showed: $(cat "$dir/pipe.out")"
grep -q "CHECK_DEVICE_STATE: ok" "$dir/cap.err" || fail "capture -o - report: $(cat "$dir/cap.err")"
rc=0
"$vs" validate - <"$dir/a.vhus" >"$dir/v.out" 2>&1 || rc=$?
((rc == 0)) || fail "validate - exited $rc: $(cat "$dir/v.out")"
rc=0
"$vs" diff - "$dir/a.vhus" <"$dir/b.vhus" >"$dir/v.out" 2>&1 || rc=$?
((rc == 1)) || fail "diff - FILE exited $rc: $(cat "$dir/v.out")"
say "capture -o - | inspect -, validate -, diff - FILE"

# --- load, roundtrip -----------------------------------------------------------
run 0 load --socket "$sb" "$dir/a.vhus"
has "$out" "CHECK_DEVICE_STATE: ok"
run 0 capture --socket "$sb" -o "$dir/b2.vhus"
run 0 diff "$dir/a.vhus" "$dir/b2.vhus"
run 0 roundtrip --socket "$sb" "$dir/b.vhus"
has "$out" "saves back the same state"
run 0 roundtrip --json --socket "$sb" "$dir/d.vhus"
has "$out" '"same":true'
has "$out" '"path":"config.label","kind":"added","note":true'
rc=0
"$vs" roundtrip --socket "$sb" - <"$dir/c.vhus" >"$dir/v.out" 2>&1 || rc=$?
((rc == 0)) || fail "roundtrip from stdin exited $rc: $(cat "$dir/v.out")"
rc=0
"$vs" capture --socket "$sa" -o - 2>/dev/null | "$vs" load --socket "$sb" - >"$dir/v.out" 2>&1 ||
    rc=$?
((rc == 0)) || fail "capture -o - | load - exited $rc: $(cat "$dir/v.out")"
run 0 capture --socket "$sb" -o "$dir/b3.vhus"
run 0 diff "$dir/a.vhus" "$dir/b3.vhus"
say "load (0; the back-end then saves what was loaded), roundtrip (0), from stdin"

# --- refusals and errors -------------------------------------------------------
run 1 load --socket "$sb" "$dir/badkey.vhus"
has "$err" "refused"
has "$err" "expected field 'label'"
run 1 roundtrip --socket "$sb" "$dir/trunc.vhus"
run 1 load --json --socket "$sb" "$dir/trunc.vhus"
has "$out" '"loaded":false,"check":"refused"'
# The refused loads changed nothing.
run 0 capture --socket "$sb" -o "$dir/b4.vhus"
run 0 diff "$dir/a.vhus" "$dir/b4.vhus"
run 2 capture --socket "$dir/nobody.sock" --timeout 1 -o "$dir/x.vhus"
has "$err" "cannot connect"
[[ ! -e $dir/x.vhus ]] || fail "a failed capture left a file"
run 2 load --socket "$dir/nobody.sock" --timeout 1 "$dir/a.vhus"
say "refused loads (1, device unchanged), no back-end (2, no file left)"

# --- a busy back-end ------------------------------------------------------------
# A front-end holds $sb: a load whose stdin (a FIFO) gives nothing yet.  Any
# other front-end is closed at once, and vhu-state says "busy" (2), well
# before its 5 s reply timeout.
mkfifo "$dir/hold"
connected() { grep -c 'front-end connected' "$dir/b.log" || true; }
before=$(connected)
"$vs" load --socket "$sb" - <"$dir/hold" >"$dir/hold.out" 2>&1 &
holder=$!
exec 9>"$dir/hold"
for ((i = 0; i < 50; i++)); do
    (($(connected) > before)) && break
    sleep 0.1
done
(($(connected) > before)) || fail "the holding front-end did not connect: $(cat "$dir/b.log")"
for cmd in "capture -o $dir/busy.vhus" "load $dir/a.vhus" "roundtrip $dir/a.vhus"; do
    t0=$(date +%s%N)
    # shellcheck disable=SC2086 # cmd is split on purpose
    run 2 ${cmd%% *} --socket "$sb" ${cmd#* }
    ms=$((($(date +%s%N) - t0) / 1000000))
    has "$err" "$sb: the back-end is busy with another front-end"
    ((ms < 3000)) || fail "vhu-state ${cmd%% *} against a busy back-end took $ms ms"
done
[[ ! -e $dir/busy.vhus ]] || fail "a refused capture left a file"
grep -q "refused a second front-end, pid [0-9]* (vhu-state)" "$dir/b.log" ||
    fail "no line naming the refused front-end: $(cat "$dir/b.log")"
exec 9>&- # the holder's stream ends: its load fails, the back-end is free again
wait "$holder" || true
run 0 capture --socket "$sb" -o "$dir/b5.vhus"
run 0 diff "$dir/a.vhus" "$dir/b5.vhus"
say "busy back-end: capture, load, roundtrip fail at once (2, \"busy\"), the back-end names them"
# --- info over the control socket -------------------------------------------
# A back-end with --control: info (human and --json) with no front-end, with
# one mid-load (connected, transfer "load"), and after two sessions.
ctl=$dir/e.ctl
start "$dir/e.sock" "$dir/e.log" --control "$ctl"
epid=${pids[-1]}
[[ $(stat -c %a "$ctl") == 600 ]] || fail "control socket mode $(stat -c %a "$ctl"), want 600"
run 0 help info
has "$out" "usage: vhu-state info --control PATH"
run 2 info
has "$err" "--control"
run 0 info --control "$ctl"
has "$out" "device     testdev (vhu "
has "$out" ", pid $epid, up "
has "$out" "front-end  none; 0 session(s) served"
has "$out" "transfer   idle"
has "$out" "snapshots  none running; 0 taken, 0 failed"
has "$out" "queues     2"
has "$out" "  queue size  started enabled last_avail completed"
has "$out" "  1     0     no      no      0          0"
run 0 info --json --control "$ctl"
has "$out" '"device":"testdev"'
has "$out" "\"pid\":$epid,"
has "$out" '"connected":false,"sessions":0,'
has "$out" '"transfer":"idle","num_queues":2,"queues":[{"index":0,"size":0,"started":false,'
mkfifo "$dir/ehold"
"$vs" load --socket "$dir/e.sock" - <"$dir/ehold" >"$dir/ehold.out" 2>&1 &
holder=$!
exec 8>"$dir/ehold"
for ((i = 0; i < 50; i++)); do
    run 0 info --json --control "$ctl"
    grep -qF '"transfer":"load"' <<<"$out" && break
    sleep 0.1
done
has "$out" '"connected":true,"sessions":1,'
has "$out" '"transfer":"load"'
run 0 info --control "$ctl"
has "$out" "front-end  connected; 1 session(s) served"
has "$out" "transfer   load"
# A live snapshot is refused while the transfer runs (and leaves no file).
run 1 capture --control "$ctl" -o "$dir/busy2.vhus"
has "$err" "transfer (load) is active"
[[ ! -e $dir/busy2.vhus ]] || fail "a refused snapshot left a file"
exec 8>&-
wait "$holder" || true
run 0 capture --socket "$dir/e.sock" -o "$dir/e.vhus"
for ((i = 0; i < 50; i++)); do
    run 0 info --control "$ctl"
    grep -qF "front-end  none" <<<"$out" && break
    sleep 0.1
done
has "$out" "front-end  none; 2 session(s) served"
has "$out" "transfer   idle"
run 2 info --control "$dir/nobody.ctl" --timeout 1
has "$err" "cannot connect"
say "info: human and --json, idle / mid-load / after sessions, mode 0600, removed at exit"
# --- live snapshot over the control socket ------------------------------------
run 0 help capture
has "$out" "--control PATH"
run 2 capture --control "$ctl" --socket "$dir/e.sock" -o "$dir/x.vhus"
run 0 capture --control "$ctl" -o "$dir/live.vhus"
has "$out" "snapshot of $ctl into $dir/live.vhus ("
has "$out" " us), written in "
run 0 validate "$dir/live.vhus"
# The same device state as the SAVE; the handler differs only in what the
# session that saved e.vhus had negotiated (none is attached now).
run 0 diff --ignore "handler.*features" "$dir/e.vhus" "$dir/live.vhus"
run 0 capture --json --control "$ctl" -o "$dir/live2.vhus"
has "$out" '"pause_us":'
timeout 30 "$vs" capture --control "$ctl" -o - 2>"$dir/cap.err" |
    "$vs" inspect - >"$dir/pipe.out" 2>"$dir/pipe.err" || fail "capture --control -o - | inspect -: $(cat "$dir/cap.err" "$dir/pipe.err")"
grep -q "device:   testdev" "$dir/pipe.out" || fail "inspect of a live snapshot: $(cat "$dir/pipe.out")"
grep -q "rings paused" "$dir/cap.err" || fail "capture --control -o - report: $(cat "$dir/cap.err")"
run 2 capture --control "$dir/nobody.ctl" --timeout 1 -o "$dir/x.vhus"
[[ ! -e $dir/x.vhus ]] || fail "a failed snapshot left a file"
# An output that fails (stdout on /dev/full): exit 2 (I/O error) naming it; the
# back-end's child stops on EPIPE and the back-end serves on.
rc=0
"$vs" capture --control "$ctl" -o - >/dev/full 2>"$dir/full.err" || rc=$?
((rc == 2)) || fail "capture -o - >/dev/full exited $rc: $(cat "$dir/full.err")"
grep -q "stdout: No space left on device" "$dir/full.err" ||
    fail "capture -o - >/dev/full said: $(cat "$dir/full.err")"
run 0 capture --control "$ctl" -o "$dir/live3.vhus"
run 0 diff "$dir/live.vhus" "$dir/live3.vhus"
# info counts them: five ended (the one on /dev/full failed in the back-end
# too unless its small stream fit in the pipe before the CLI's write
# failed), the last well.
run 0 info --control "$ctl"
line=$(grep -E '^snapshots  none running; [0-9]+ taken, [0-9]+ failed$' <<<"$out") ||
    fail "no snapshots line in: $out"
read -r taken failed < <(sed -E 's/.*; ([0-9]+) taken, ([0-9]+) failed/\1 \2/' <<<"$line")
((taken + failed == 5 && taken >= 4)) || fail "snapshots counted: $line (want 5 in all)"
has "$out" "  last     ok "
run 0 info --json --control "$ctl"
has "$out" "\"snapshots\":{\"running\":false,\"taken\":$taken,\"failed\":$failed,\"last\":{\"ok\":true,\"pause_us\":"
# On a terminal, a progress line while the stream is slow to drain (16 MiB
# of state, half noise; the reader sleeps 2 s first).
if command -v script >/dev/null; then
    start "$dir/f.sock" "$dir/f.log" --control "$dir/f.ctl" --blob-size 16777216
    VS=$vs CTL=$dir/f.ctl script -qec \
        '"$VS" capture --control "$CTL" -o - 2>/dev/tty | (sleep 2; cat >/dev/null)' \
        /dev/null >"$dir/tty.out" </dev/null || fail "capture on a terminal: $(cat -A "$dir/tty.out")"
    grep -aq 'vhu-state: capture: [0-9]* MiB written' "$dir/tty.out" ||
        fail "no progress line on a terminal: $(cat -A "$dir/tty.out" | head -5)"
    grep -aq "rings paused" "$dir/tty.out" || fail "no report on the terminal: $(cat -A "$dir/tty.out")"
fi
say "capture --control: file, --json, -o - | inspect -, refused mid-transfer, diff-equal to a SAVE, a failing output, progress on a terminal"
kill -TERM "$epid"
wait "$epid" || true
[[ ! -e $ctl ]] || fail "the control socket outlived its back-end"
say "all checks passed"
