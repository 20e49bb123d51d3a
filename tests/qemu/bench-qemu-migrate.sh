#!/usr/bin/env bash
# bench-qemu-migrate.sh VHU_BLK CACHE_DIR [RUNS [MIGRATIONS]]
#
# Soak / benchmark of live migration on vhu-blk (not a ctest test): RUNS
# (default 5) runs of test-qemu-migrate.sh with MIGRATIONS (default 4)
# migrations each, the guest going back and forth between two QEMU 7.2
# instances, each with its own vhu-blk on the same image, verifying its
# O_DIRECT rounds throughout.  Reports how many runs passed, how many
# migrations completed, the time per migration (wall time from QMP "migrate"
# to status "completed", QEMU's own total time and downtime), and how many
# runs ended in a guest kernel crash (QEMU TCG, see retry-guest-crash.sh)
# or in another failure.  Exit 0 only if every run passed.  By hand:
#   tests/qemu/bench-qemu-migrate.sh build/examples/vhu-blk build/qemu-guest 10 4
set -uo pipefail

if [[ $# -lt 2 || $# -gt 4 ]]; then
    echo "usage: $0 VHU_BLK CACHE_DIR [RUNS [MIGRATIONS]]" >&2
    exit 2
fi
runs=${3:-5}
count=${4:-4}
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp "${TMPDIR:-/tmp}/vhu-bench-migrate.XXXXXX")
trap 'rm -f "$out"' EXIT
start=$SECONDS
pass=0 crash=0 other=0
for ((r = 1; r <= runs; r++)); do
    "$here/test-qemu-migrate.sh" "$1" "$2" "$count" >"$out.run" 2>&1
    rc=$?
    grep -v '^vhu: debug' "$out.run" | grep -E '^test-qemu-migrate: (migration|PASS|FAIL)' |
        sed "s/^/run $r: /"
    cat "$out.run" >>"$out"
    case $rc in
    0) pass=$((pass + 1)) ;;
    3) crash=$((crash + 1)) ;;
    *) other=$((other + 1)) ;;
    esac
done
rm -f "$out.run"
done=$(grep -c 'test-qemu-migrate: migration [0-9]*: .* completed' "$out")
echo "bench-qemu-migrate: $runs run(s) of $count migration(s) in $((SECONDS - start)) s:" \
     "$pass passed, $crash ended by a guest kernel fault (crash or stall with nothing outstanding), $other failed otherwise;" \
     "$done migration(s) completed"
if ((done > 0)); then
    grep -o 'completed in [0-9]* ms (QEMU: total [0-9]* ms, downtime [0-9]* ms)' "$out" |
        awk '{ w += $3; t += $7; d += $10; if ($3 > m) m = $3; if ($10 > dm) dm = $10 }
             END { printf "bench-qemu-migrate: per migration: %.0f ms wall (max %d), QEMU total %.0f ms, downtime %.0f ms (max %d) (means)\n", w / NR, m, t / NR, d / NR, dm }'
fi
((pass == runs))
