#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Smoke test for vhu-bench-blk: one short row against vhu-blk (a RAM
# disk), which must complete with non-zero IOPS and no failed request;
# then 64 KiB requests (vhu-blk's parallel batches) with --verify: a
# sequential write over the whole (2 MiB) disk stamps every sector, random reads
# check the stamps.  Then packed rings (--packed; vhu-blk offers them): short
# rows, and the --verify pair again after random writes wiped the stamps.
#   bench-blk-smoke.sh VHU_BENCH_BLK VHU_BLK
set -euo pipefail
bench=$1 blk=$2
dir=$(mktemp -d /tmp/vhu-bench-smoke-XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
"$blk" --socket "$dir/s" --ram 2M --queues 2 --packed >"$dir/blk.log" 2>&1 &
pid=$!
# row RING SECONDS [ARGS...]: one row on RING (split or packed) that must
# complete with non-zero IOPS, no failed request, on that ring layout.
row() {
    local ring=$1 secs=$2 extra=()
    shift 2
    [ "$ring" = packed ] && extra=(--packed)
    local line
    line=$("$bench" --socket "$dir/s" "${extra[@]}" --seconds "$secs" "$@")
    echo "$line"
    local iops errors got
    iops=$(sed -n 's/.* iops=\([0-9]*\) .*/\1/p' <<<"$line")
    errors=$(sed -n 's/.* errors=\([0-9]*\) .*/\1/p' <<<"$line")
    got=$(sed -n 's/.* ring=\([a-z]*\)$/\1/p' <<<"$line")
    if [ -z "$iops" ] || [ "$iops" -eq 0 ] || [ "$errors" != 0 ] || [ "$got" != "$ring" ]; then
        echo "FAIL: $line"
        exit 1
    fi
}
row split 0.7 --rw randread --qd 8 --queues 2 --warmup 0.1
for rw in write randread; do
    "$bench" --socket "$dir/s" --rw $rw --bs 64K --qd 8 --queues 2 --seconds 0.3 --warmup 0 \
        --verify || { echo "FAIL: $rw --verify"; exit 1; }
done
# Packed: QD 32 on a ring of 128 descriptors (the wrap counters flip every
# lap), QD 1.  The random writes (no --verify: the driver's 0x5a pattern)
# wipe the stamps, so the reads after them check what the packed
# sequential write put.
row packed 0.4 --rw randread --qd 32 --queues 2 --warmup 0.1
row packed 0.3 --rw randwrite --qd 1 --warmup 0
row split 0.2 --rw randwrite --bs 4K --qd 8 --queues 2 --warmup 0
for rw in write randread; do
    "$bench" --socket "$dir/s" --packed --rw $rw --bs 64K --qd 8 --queues 2 --seconds 0.3 \
        --warmup 0 --verify || { echo "FAIL: packed $rw --verify"; exit 1; }
done
echo PASS
