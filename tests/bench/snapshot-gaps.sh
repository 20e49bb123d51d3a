#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Who had the CPUs while the guest waited: runs vhu-bench-snapshot under
# `perf sched record` and, for every gap over GAP_MS (default 10) ms between
# two completions (inside a snapshot's window or outside), lists the tasks
# that ran during it and for how long, longest first.  A gap filled by a
# task that is neither the benchmark's nor vhu-blk's (the kernel's kdamond,
# say) is the machine's; one where vhu-blk's threads ran, or nobody did, is
# to be looked at.
#
#   tests/bench/snapshot-gaps.sh BUILD_DIR [vhu-bench-snapshot options]
#
# e.g. tests/bench/snapshot-gaps.sh build --sizes 1G --repeat 5 --modes device --wait
# Needs perf (Debian: linux-perf) and root or perf_event_paranoid <= 0.
set -euo pipefail

build=${1:?usage: $0 BUILD_DIR [vhu-bench-snapshot options]}
shift
bench=$build/tests/vhu-bench-snapshot
blk=$build/examples/vhu-blk
for f in "$bench" "$blk"; do
    [ -x "$f" ] || { echo "snapshot-gaps: no $f (build first)" >&2; exit 2; }
done
command -v perf >/dev/null || { echo "snapshot-gaps: perf not found (apt-get install linux-perf)" >&2; exit 2; }

# KEEP=DIR keeps the recording (DIR/perf.data) for a closer look.
tmp=${KEEP:-$(mktemp -d)}
mkdir -p "$tmp"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$tmp"' EXIT
VHU_BENCH_GAPS=${GAP_MS:-10} perf sched record -q -k CLOCK_MONOTONIC -o "$tmp/perf.data" -- \
    "$bench" --vhu-blk "$blk" "$@" >"$tmp/bench.out" 2>"$tmp/perf.err" ||
    { cat "$tmp/bench.out" "$tmp/perf.err" >&2; exit 1; }
grep -v '^    gap ' "$tmp/bench.out"
perf sched timehist -i "$tmp/perf.data" >"$tmp/timehist" 2>/dev/null

# timehist: "TIME [CPU] TASK WAIT SCHDELAY RUN": TASK ran RUN ms up to TIME.
grep '^    gap ' "$tmp/bench.out" | while read -r _ ms _ _ at where; do
    awk -v g0="$at" -v len="$ms" -v where="$where" '
        BEGIN { g1 = g0 + len / 1000 }
        $2 ~ /^\[[0-9]+\]$/ && $NF ~ /^[0-9.]+$/ {
            t = $1 + 0; run = $NF / 1000; task = $3
            if (task == "<idle>") next
            sub(/\[.*/, "", task)
            lo = t - run > g0 ? t - run : g0; hi = t < g1 ? t : g1
            if (hi > lo) ran[task] += (hi - lo) * 1000
        }
        END {
            printf "gap %.1f ms at %.6f %s:", len, g0, where
            n = 0
            for (k in ran) if (ran[k] >= 0.5) { line[n++] = sprintf("%08.3f %s", ran[k], k) }
            # longest first (a small insertion sort: few tasks)
            for (i = 1; i < n; i++) for (j = i; j > 0 && line[j] > line[j-1]; j--) {
                x = line[j]; line[j] = line[j-1]; line[j-1] = x }
            for (i = 0; i < n && i < 6; i++) {
                split(line[i], f, " "); printf " %s %.1f ms%s", f[2], f[1] + 0, i < n - 1 && i < 5 ? "," : ""
            }
            if (!n) printf " nobody ran"
            printf "\n"
        }' "$tmp/timehist"
done
