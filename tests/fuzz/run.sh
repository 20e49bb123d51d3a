#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# tests/fuzz/run.sh BUILD_DIR SECONDS: run each fuzz target for SECONDS over
# its seeds and regression inputs; fails on the first finding.
set -euo pipefail
build=$1
secs=${2:-20}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/vhu-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
declare -A seeds=([fuzz_handler]="$here/seeds/handler" [fuzz_snapshot]="$top/formats/corpus"
                  [fuzz_load]="$top/formats/corpus" [fuzz_vring]="$here/seeds/vring")
declare -A dicts=([fuzz_handler]="$here/handler.dict" [fuzz_snapshot]="$here/snapshot.dict"
                  [fuzz_load]="$here/snapshot.dict" [fuzz_vring]="$here/vring.dict")
# fuzz_blk starts from nothing: its input lays out well-formed requests by
# itself (see fuzz_blk.c).
for t in fuzz_handler fuzz_snapshot fuzz_load fuzz_vring fuzz_blk; do
  bin=$build/tests/fuzz/$t
  mkdir -p "$work/$t" "$here/regress/$t"
  # Replay every input that once found a bug.
  if compgen -G "$here/regress/$t/*" >/dev/null; then
    "$bin" "$here"/regress/"$t"/* >"$work/$t.replay" 2>&1 || {
      cat "$work/$t.replay"; echo "fuzz: $t: a regression input fails again" >&2; exit 1; }
  fi
  echo "fuzz: $t for ${secs}s"
  dirs=("$work/$t")
  [ -d "${seeds[$t]:-}" ] && dirs+=("${seeds[$t]}")
  dict=()
  [ -n "${dicts[$t]:-}" ] && dict=(-dict="${dicts[$t]}")
  if ! "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$work/$t-" "${dict[@]}" "${dirs[@]}" \
       >"$work/$t.log" 2>&1; then
    grep -v '^#' "$work/$t.log" | tail -60
    for a in "$work/$t"-*; do
      [ -e "$a" ] && cp "$a" "$here/regress/$t/" && echo "fuzz: finding kept in tests/fuzz/regress/$t/$(basename "$a")"
    done
    exit 1
  fi
  grep -E '^stat::number_of_executed_units|^Done' "$work/$t.log" | tail -2
done
echo "fuzz: no finding"
