#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# tests/fuzz/long-run.sh BUILD_DIR SECONDS [TARGET...]: long fuzzing runs,
# each target one libFuzzer process for SECONDS, VHU_FUZZ_PARALLEL (default:
# the number of cores) targets at a time.  Corpora persist in
# BUILD_DIR/fuzz-corpus/<target> (so a later run continues), logs and
# findings go to BUILD_DIR/fuzz-long/.  Prints executions and findings per
# target; exit status 1 if any target found something.  With
# VHU_FUZZ_VRING_PACKED=1 fuzz_vring reads every input as a packed ring; its
# corpus, log and findings are then named fuzz_vring-packed (the inputs mean
# something else than in the normal run).
set -euo pipefail
build=$1
secs=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_handler fuzz_snapshot fuzz_load fuzz_vring fuzz_blk)
declare -A seeds=([fuzz_handler]="$here/seeds/handler" [fuzz_snapshot]="$top/formats/corpus"
                  [fuzz_load]="$top/formats/corpus" [fuzz_vring]="$here/seeds/vring")
declare -A dicts=([fuzz_handler]="$here/handler.dict" [fuzz_snapshot]="$here/snapshot.dict"
                  [fuzz_load]="$here/snapshot.dict" [fuzz_vring]="$here/vring.dict")
par=${VHU_FUZZ_PARALLEL:-$(nproc)}
out=$build/fuzz-long
mkdir -p "$out"

# name TARGET: what its corpus, log and findings are called.
name() {
  if [ "$1" = fuzz_vring ] && [ "${VHU_FUZZ_VRING_PACKED:-}" = 1 ]; then
    echo fuzz_vring-packed
  else
    echo "$1"
  fi
}

one() {
  local t=$1 n
  n=$(name "$t")
  local corpus=$build/fuzz-corpus/$n
  mkdir -p "$corpus" "$out/$n-artifacts"
  local dirs=("$corpus")
  [ -d "${seeds[$t]:-}" ] && dirs+=("${seeds[$t]}")
  [ -d "$here/regress/$t" ] && dirs+=("$here/regress/$t")
  local dict=()
  [ -n "${dicts[$t]:-}" ] && dict=(-dict="${dicts[$t]}")
  # -fork=1: one child at a time that is restarted after a finding, so the
  # run goes on for SECONDS and collects every crash, not only the first.
  "$build/tests/fuzz/$t" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$out/$n-artifacts/" "${dict[@]}" "${dirs[@]}" \
    >"$out/$n.log" 2>&1 || true
}

running=0
for t in "${targets[@]}"; do
  one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$par" ]; then wait -n; running=$((running - 1)); fi
done
wait

found=0
for t in "${targets[@]}"; do
  nm=$(name "$t")
  # In fork mode the parent sums its children's executions in "#N" lines.
  execs=$(grep -oE '^#[0-9]+' "$out/$nm.log" | tail -1 | tr -d '#')
  n=$(find "$out/$nm-artifacts" -type f | wc -l)
  echo "fuzz-long: $nm: ${execs:-?} executions in ${secs}s, $n finding(s)"
  [ "$n" -eq 0 ] || { found=1; ls "$out/$nm-artifacts" | sed "s/^/  /"; }
done
exit "$found"
