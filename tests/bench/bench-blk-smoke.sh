#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Smoke test for vhu-bench-blk: one short row against vhu-blk (a RAM
# disk), which must complete with non-zero IOPS and no failed request;
# then 64 KiB requests (vhu-blk's parallel batches) with --verify: a
# sequential write over the whole (2 MiB) disk stamps every sector, random reads
# check the stamps.
#   bench-blk-smoke.sh VHU_BENCH_BLK VHU_BLK
set -euo pipefail
bench=$1 blk=$2
dir=$(mktemp -d /tmp/vhu-bench-smoke-XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
"$blk" --socket "$dir/s" --ram 2M --queues 2 >"$dir/blk.log" 2>&1 &
pid=$!
line=$("$bench" --socket "$dir/s" --rw randread --qd 8 --queues 2 --seconds 0.7 --warmup 0.1)
echo "$line"
iops=$(sed -n 's/.* iops=\([0-9]*\) .*/\1/p' <<<"$line")
errors=$(sed -n 's/.* errors=\([0-9]*\).*/\1/p' <<<"$line")
[ -n "$iops" ] && [ "$iops" -gt 0 ] && [ "$errors" = 0 ] || { echo "FAIL: $line"; exit 1; }
for rw in write randread; do
    "$bench" --socket "$dir/s" --rw $rw --bs 64K --qd 8 --queues 2 --seconds 0.3 --warmup 0 \
        --verify || { echo "FAIL: $rw --verify"; exit 1; }
done
echo PASS
