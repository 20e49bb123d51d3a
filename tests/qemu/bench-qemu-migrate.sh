#!/usr/bin/env bash
# bench-qemu-migrate.sh VHU_BLK CACHE_DIR [MIGRATIONS]
#
# Soak / benchmark of live migration on vhu-blk (not a ctest test): runs
# test-qemu-migrate.sh with MIGRATIONS (default 10) migrations in a row, the
# guest going back and forth between two QEMU 7.2 instances, each with its
# own vhu-blk on the same image, verifying its O_DIRECT rounds throughout,
# and reports how many migrations completed and the time per migration
# (wall time from QMP "migrate" to status "completed", and QEMU's own total
# time and downtime).  Exit status: test-qemu-migrate.sh's.  By hand:
#   tests/qemu/bench-qemu-migrate.sh build/examples/vhu-blk build/qemu-guest 20
# KEEP=1 keeps the work directory (logs, consoles) for a look afterwards.
#
# A guest kernel crash after a migration (Oops, BUG, panic on the console)
# fails the run at once and is reported; a soak run stops at the first
# failure.
set -uo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
    echo "usage: $0 VHU_BLK CACHE_DIR [MIGRATIONS]" >&2
    exit 2
fi
count=${3:-10}
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp "${TMPDIR:-/tmp}/vhu-bench-migrate.XXXXXX")
trap 'rm -f "$out"' EXIT
start=$SECONDS
"$here/test-qemu-migrate.sh" "$1" "$2" "$count" 2>&1 | tee "$out" | grep -v '^vhu: debug'
rc=${PIPESTATUS[0]}
done=$(grep -c 'test-qemu-migrate: migration [0-9]*: .* completed' "$out")
echo "bench-qemu-migrate: $done of $count migration(s) completed in $((SECONDS - start)) s (exit $rc)"
if ((done > 0)); then
    grep -o 'completed in [0-9]* ms (QEMU: total [0-9]* ms, downtime [0-9]* ms)' "$out" |
        awk '{ w += $3; t += $7; d += $10; if ($3 > m) m = $3 }
             END { printf "bench-qemu-migrate: per migration: %.0f ms wall (max %d), QEMU total %.0f ms, downtime %.0f ms (means)\n", w / NR, m, t / NR, d / NR }'
fi
exit "$rc"
