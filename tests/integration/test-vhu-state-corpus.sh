#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# test-vhu-state-corpus.sh VHU_STATE TESTDEV CORPUS_DIR [DEVICE=PROGRAM]...
#
# The restore-compatibility regression test: every snapshot of the golden
# corpus (formats/corpus/, written by released format and section versions)
# must still validate and restore into the current build.  For each
# DEVICE-*.vhus a fresh back-end of that device type is started (testdev:
# TESTDEV; other types: "DEVICE=PROGRAM [ARGS]" arguments, a program taking
# --socket PATH after its ARGS, e.g. "blk=vhu-blk --ram 64K"), and `vhu-state
# roundtrip` loads the snapshot, saves it again and compares.  A snapshot
# whose back-end needs other ARGS has them in a sidecar, NAME.args next to
# NAME.vhus: one line of words (no quoting) replacing ARGS, where a word
# @image:SIZE becomes the path of a fresh sparse file of SIZE bytes
# (truncate's sizes: 1M is 1 MiB), e.g. "--image @image:1M --serial X" for
# an image-backed disk whose snapshot records its size and serial.  Any
# file that no longer restores fails the test,
# loudly, by name.  Copy this script and vhu-state-common.sh (beside it)
# into your own CI with your device's corpus (see formats/corpus/README.md).
set -euo pipefail
# say, fail, $dir, pids and stop_backends (also at exit); copy it with this
# script.
source "$(dirname "$0")/vhu-state-common.sh" 3 "" "VHU_STATE TESTDEV CORPUS_DIR [DEVICE=PROGRAM]..." "$@"
vs=$1
corpus=$3
declare -A program=([testdev]=$2)
for a in "${@:4}"; do
    program[${a%%=*}]=${a#*=}
done

shopt -s nullglob
files=("$corpus"/*.vhus)
((${#files[@]} > 0)) || fail "no snapshots in $corpus"

failed=()
n=0
for f in "${files[@]}"; do
    name=$(basename "$f")
    device=${name%%-*}
    prog=${program[$device]:-}
    if [[ -z $prog ]]; then
        failed+=("$name: no back-end program for device '$device' (pass $device=PROGRAM)")
        continue
    fi
    sock=$dir/$n.sock
    log=$dir/$n.log
    n=$((n + 1))
    read -ra cmd <<<"$prog"
    sidecar=${f%.vhus}.args
    if [[ -e $sidecar ]]; then
        read -ra args <"$sidecar" || true
        cmd=("${cmd[0]}")
        for a in "${args[@]}"; do
            if [[ $a == @image:* ]]; then
                truncate -s "${a#@image:}" "$dir/$n.img"
                a=$dir/$n.img
            fi
            cmd+=("$a")
        done
        prog="${cmd[*]}"
    fi
    "${cmd[@]}" --socket "$sock" >"$log" 2>&1 &
    pid=$!
    pids+=("$pid")
    for ((i = 0; i < 50; i++)); do
        [[ -S $sock ]] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if [[ ! -S $sock ]]; then
        failed+=("$name: '$prog' did not start: $(cat "$log")")
        stop_backends
        continue
    fi
    rc=0
    out=$(timeout 60 "$vs" validate "$f" 2>&1) || rc=$?
    if ((rc != 0)); then
        failed+=("$name: no longer validates (exit $rc): $out")
    fi
    rc=0
    out=$(timeout 60 "$vs" roundtrip --socket "$sock" "$f" 2>&1) || rc=$?
    if ((rc != 0)); then
        # The back-end's log names the field or section it refused.
        why=$(grep -m1 'LOAD failed' "$log" || true)
        failed+=("$name: NO LONGER RESTORES into the current $device (exit $rc): $out${why:+
    back-end: $why}")
    else
        say "$name: restores into the current $device ($(grep -c '^note:' <<<"$out" || true) notes)"
    fi
    stop_backends
done

if ((${#failed[@]})); then
    echo "test-vhu-state-corpus: FAIL: ${#failed[@]} failure(s) over ${#files[@]} corpus snapshots:" >&2
    for m in "${failed[@]}"; do
        echo "  RESTORE REGRESSION: $m" >&2
    done
    exit 1
fi
say "all ${#files[@]} corpus snapshots validate and restore"
