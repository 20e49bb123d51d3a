#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# bench-blk.sh - vhu-blk next to qemu-storage-daemon, same driver, same disk.
#
# Usage (from the top of a clone, after the build):
#
#   cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build build -j2
#   tests/bench/bench-blk.sh [--rounds N] [--seconds S] [--out FILE] [--no-state]
#                            [--packed-only]
#
# Serves a disk with build/examples/vhu-blk (--queues 4 --packed) and with Debian's
# qemu-storage-daemon (package qemu-utils, installed with apt-get when
# missing) as
#
#   qemu-storage-daemon --blockdev driver=file,filename=IMG,node-name=d,cache.direct=off,aio=threads \
#     --export type=vhost-user-blk,id=e,node-name=d,addr.type=unix,addr.path=SOCK,writable=on,num-queues=4
#
# and drives both with build/tests/vhu-bench-blk (a busy-polling virtio-blk
# guest driver on vhu's front-end library; see its --help).  Each back-end
# gets its own 256 MiB image in /dev/shm, written fully (random bytes)
# before anything reads it; row tmp:* uses images in /tmp (a regular file
# system, through the page cache), rows direct:* the same with O_DIRECT
# (vhu-blk --direct; qsd cache.direct=on,aio=native).  Every row runs on both back-ends, once
# per round, alternating which goes first; the table gives the median IOPS
# (and MB/s) of the rounds, the ratio vhu/qsd of the medians, and the spread
# (min-max IOPS) of each.  Then build/tests/vhu-bench-state --sizes 64M,1G
# --repeat 3 and build/tests/vhu-bench-snapshot --sizes 64M,1G --repeat 3
# (a live snapshot's guest-visible stall next to a stop-the-world save) run
# and their output goes in the same report (--no-state skips both).
#
# Packed rings: vhu-blk runs with --packed (which only adds RING_PACKED to
# the features it offers: a split-ring driver is served as without it), and the rows marked below also run on it with
# vhu-bench-blk --packed (backend "vhu-packed" in the CSV): 4 KiB random
# read and write at QD 1, 8 and 32, 64 KiB sequential read and write.  In
# each round a row's split and packed runs follow each other, packed first
# in even rounds (A/B, B/A, ...), so that noise from other load on the
# machine falls on both alike.  A second table sets packed next to split:
# medians, the ratio packed/split and each one's spread (min-max IOPS, and
# half of it as a share of the median, +-%); a ratio inside the spreads is
# noise.
# qemu-storage-daemon has no packed rings: its split rows stay the
# reference.  --packed-only runs just those rows, split and packed on
# vhu-blk (no qsd, no state benchmarks).
#
# Defaults: 5 rounds of 2 s per row and back-end (+0.5 s warm-up): about
# 7 minutes (--packed-only: about 3), plus the state benchmark.  The report is printed and written to
# --out (default build/bench-blk-report.txt); raw rows (CSV) go next to it.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
build=${VHU_BUILD:-$top/build}
rounds=5 seconds=2 out=$build/bench-blk-report.txt state=1 packed_only=0
while [ $# -gt 0 ]; do
    case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --no-state) state=0; shift ;;
    --packed-only) packed_only=1; state=0; shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-blk.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

bench=$build/tests/vhu-bench-blk
vhublk=$build/examples/vhu-blk
for p in "$bench" "$vhublk"; do
    [ -x "$p" ] || { echo "bench-blk.sh: $p is missing: build first (see --help)" >&2; exit 2; }
done
if [ "$packed_only" = 0 ] && ! command -v qemu-storage-daemon >/dev/null; then
    sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update
    $sudo apt-get install -y qemu-utils
fi

work=$(mktemp -d /tmp/vhu-bench-blk-XXXXXX)
shm=$(mktemp -d /dev/shm/vhu-bench-blk-XXXXXX)
pids=()
stop_all() {
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    pids=()
}
cleanup() { stop_all; rm -rf "$work" "$shm"; }
trap cleanup EXIT

csv=${out%.txt}.csv
: >"$csv"

# start_backends DIR [direct]: one image per back-end in DIR, both servers
# listening; with "direct", vhu-blk --direct and qsd cache.direct=on,aio=native
# (QEMU's usual choice for cache=none).
start_backends() {
    local dir=$1 vhu_extra=() qsd_cache=cache.direct=off,aio=threads
    if [ "${2:-}" = direct ]; then
        vhu_extra=(--direct)
        qsd_cache=cache.direct=on,aio=native
    fi
    local imgs=(vhu qsd)
    [ "$packed_only" = 1 ] && imgs=(vhu)
    for b in "${imgs[@]}"; do
        rm -f "$dir/$b.img"
        head -c 256M /dev/urandom >"$dir/$b.img"
    done
    sync
    rm -f "$work/vhu.sock" "$work/qsd.sock"
    "$vhublk" --socket "$work/vhu.sock" --image "$dir/vhu.img" --queues 4 --packed \
        "${vhu_extra[@]}" >"$work/vhu.log" 2>&1 &
    pids+=($!)
    if [ "$packed_only" = 1 ]; then
        for _ in $(seq 100); do
            [ -S "$work/vhu.sock" ] && return 0
            sleep 0.1
        done
        echo "bench-blk.sh: vhu-blk did not start:" >&2
        cat "$work/vhu.log" >&2
        exit 1
    fi
    qemu-storage-daemon \
        --blockdev driver=file,filename="$dir/qsd.img",node-name=d,$qsd_cache \
        --export type=vhost-user-blk,id=e,node-name=d,addr.type=unix,addr.path="$work/qsd.sock",writable=on,num-queues=4 \
        >"$work/qsd.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do
        [ -S "$work/vhu.sock" ] && [ -S "$work/qsd.sock" ] && return 0
        sleep 0.1
    done
    echo "bench-blk.sh: a back-end did not start:" >&2
    cat "$work/vhu.log" "$work/qsd.log" >&2
    exit 1
}

# Rows: name | vhu-bench-blk arguments [| p: also on packed rings].
rows_shm=(
    "4k-randread-qd1|--rw randread --bs 4K --qd 1|p"
    "4k-randread-qd8|--rw randread --bs 4K --qd 8|p"
    "4k-randread-qd32|--rw randread --bs 4K --qd 32|p"
    "4k-randwrite-qd1|--rw randwrite --bs 4K --qd 1|p"
    "4k-randwrite-qd8|--rw randwrite --bs 4K --qd 8|p"
    "4k-randwrite-qd32|--rw randwrite --bs 4K --qd 32|p"
    "64k-read-qd8|--rw read --bs 64K --qd 8|p"
    "64k-write-qd8|--rw write --bs 64K --qd 8|p"
    "4k-randread-qd32-1q|--rw randread --bs 4K --qd 32 --queues 1"
    "4k-randread-qd32-2q|--rw randread --bs 4K --qd 32 --queues 2"
    "4k-randread-qd32-4q|--rw randread --bs 4K --qd 32 --queues 4"
)
rows_tmp=(
    "tmp:4k-randwrite-qd32|--rw randwrite --bs 4K --qd 32"
)
rows_direct=(
    "direct:4k-randread-qd1|--rw randread --bs 4K --qd 1"
    "direct:4k-randread-qd32|--rw randread --bs 4K --qd 32"
    "direct:4k-randwrite-qd32|--rw randwrite --bs 4K --qd 32"
    "direct:64k-read-qd8|--rw read --bs 64K --qd 8"
)

# Backends: vhu (split rings), vhu-packed (vhu-blk, packed rings), qsd.
run_rows() {
    local round=$1; shift
    for row in "$@"; do
        local name=${row%%|*} rest=${row#*|}
        local args=${rest%%|*} mark=
        [ "$rest" != "$args" ] && mark=${rest#*|}
        local order="vhu qsd"
        [ $((round % 2)) = 0 ] && order="qsd vhu"
        if [ "$mark" = p ]; then
            # Split and packed back to back, their order swapped each round.
            order="vhu vhu-packed qsd"
            [ $((round % 2)) = 0 ] && order="qsd vhu-packed vhu"
        fi
        [ "$packed_only" = 1 ] && order=${order//qsd/}
        for b in $order; do
            local sock=$work/$b.sock extra=
            [ "$b" = vhu-packed ] && sock=$work/vhu.sock extra=--packed
            # shellcheck disable=SC2086
            if ! line=$("$bench" --socket "$sock" $args $extra --seconds "$seconds" \
                        --csv --no-header --label "$name"); then
                echo "bench-blk.sh: $b failed on $name" >&2
                exit 1
            fi
            echo "$b,$round,$line" >>"$csv"
            printf '  round %d %-22s %-10s %s\n' "$round" "$name" "$b" \
                "$(awk -F, '{printf "%8.0f IOPS %8.1f MB/s p50 %7.1f us p99 %7.1f us", $8, $9, $10, $11}' <<<"$line")"
        done
    done
}

rows_packed=()
for row in "${rows_shm[@]}"; do
    [ "${row##*|}" = p ] && rows_packed+=("$row")
done

started=$(date -u +%FT%TZ)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
if [ "$packed_only" = 1 ]; then
    echo "== vhu-bench-blk: vhu-blk split vs packed rings, $rounds rounds of ${seconds}s per row"
    start_backends "$shm"
    for r in $(seq "$rounds"); do run_rows "$r" "${rows_packed[@]}"; done
    stop_all
else
    echo "== vhu-bench-blk: vhu-blk vs qemu-storage-daemon, $rounds rounds of ${seconds}s per row"
    start_backends "$shm"
    for r in $(seq "$rounds"); do run_rows "$r" "${rows_shm[@]}"; done
    stop_all
    start_backends "$work"
    for r in $(seq "$rounds"); do run_rows "$r" "${rows_tmp[@]}"; done
    stop_all
    start_backends "$work" direct
    for r in $(seq "$rounds"); do run_rows "$r" "${rows_direct[@]}"; done
    stop_all
fi

# CSV fields: backend,round,label,rw,bs,qd,queues,seconds,ios,iops,mbps,p50,p99,...
# table A B ROW...: per row the medians of backends A and B, the ratio A/B,
# each one's spread (min-max IOPS) and median p50/p99 latency.
table() {
    local a=$1 b=$2; shift 2
    printf '%-22s %16s %16s %6s %22s %22s %14s %14s\n' row "$a IOPS (MB/s)" \
        "$b IOPS (MB/s)" ratio "$a spread (IOPS)" "$b spread (IOPS)" "$a p50/p99us" \
        "$b p50/p99us"
    for row in "$@"; do
        local name=${row%%|*}
        awk -F, -v name="$name" -v A="$a" -v B="$b" '
            function med(a, n,   i, j, t) {
                for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
                    if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
                return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
            }
            $3 == name {
                b = $1; n[b]++
                iops[b, n[b]] = $10; mb[b, n[b]] = $11; p50[b, n[b]] = $12; p99[b, n[b]] = $13
            }
            END {
                for (bi = 1; bi <= 2; bi++) {
                    b = bi == 1 ? A : B
                    delete x; delete y; delete z; delete w
                    for (i = 1; i <= n[b]; i++) {
                        x[i] = iops[b, i]; y[i] = mb[b, i]; z[i] = p50[b, i]; w[i] = p99[b, i]
                    }
                    mi[b] = med(x, n[b]); mm[b] = med(y, n[b])
                    lo[b] = x[1]; hi[b] = x[n[b]]
                    l50[b] = med(z, n[b]); l99[b] = med(w, n[b])
                }
                printf "%-22s %8.0f (%5.0f) %8.0f (%5.0f) %6.2f %10.0f-%-11.0f %10.0f-%-11.0f %6.1f/%-7.1f %6.1f/%-7.1f\n",
                    name, mi[A], mm[A], mi[B], mm[B],
                    (mi[B] > 0 ? mi[A] / mi[B] : 0),
                    lo[A], hi[A], lo[B], hi[B],
                    l50[A], l99[A], l50[B], l99[B]
            }' "$csv"
    done
}

# packed_table: vhu-blk on packed rings next to split, with each one's
# spread as a share of its median (the noise to judge the ratio by).
packed_table() {
    printf '%-22s %16s %16s %12s %22s %22s %9s %9s\n' row "split IOPS (MB/s)" \
        "packed IOPS (MB/s)" packed/split "split spread (IOPS)" "packed spread (IOPS)" \
        "split +-%" "packed +-%"
    for row in "${rows_packed[@]}"; do
        local name=${row%%|*}
        awk -F, -v name="$name" '
            function med(a, n,   i, j, t) {
                for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
                    if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
                return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
            }
            $3 == name && ($1 == "vhu" || $1 == "vhu-packed") {
                b = $1; n[b]++; iops[b, n[b]] = $10; mb[b, n[b]] = $11
            }
            END {
                for (bi = 1; bi <= 2; bi++) {
                    b = bi == 1 ? "vhu" : "vhu-packed"
                    delete x; delete y
                    for (i = 1; i <= n[b]; i++) { x[i] = iops[b, i]; y[i] = mb[b, i] }
                    mi[b] = med(x, n[b]); mm[b] = med(y, n[b])
                    lo[b] = x[1]; hi[b] = x[n[b]]
                    pct[b] = mi[b] > 0 ? 50 * (hi[b] - lo[b]) / mi[b] : 0
                }
                printf "%-22s %8.0f (%5.0f) %9.0f (%5.0f) %12.2f %10.0f-%-11.0f %10.0f-%-11.0f %8.1f%% %8.1f%%\n",
                    name, mi["vhu"], mm["vhu"], mi["vhu-packed"], mm["vhu-packed"],
                    (mi["vhu"] > 0 ? mi["vhu-packed"] / mi["vhu"] : 0),
                    lo["vhu"], hi["vhu"], lo["vhu-packed"], hi["vhu-packed"],
                    pct["vhu"], pct["vhu-packed"]
            }' "$csv"
    done
}

{
    if [ "$packed_only" = 1 ]; then
        echo "vhu-blk, split vs packed rings ($started; $rounds rounds x ${seconds}s per row and ring layout)"
    else
        echo "vhu-blk vs qemu-storage-daemon ($started; $rounds rounds x ${seconds}s per row and back-end)"
    fi
    echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(uname -r); load average before: $load0"
    if [ "$packed_only" = 0 ]; then
        echo "qemu-storage-daemon: $(qemu-storage-daemon --version | head -1)"
        echo "images: 256 MiB in /dev/shm (tmpfs), rows tmp:* and direct:* in /tmp ($(df --output=fstype /tmp | tail -1)); cache.direct=off, aio=threads for qsd"
        echo "rows direct:*: vhu-blk --direct (O_DIRECT, io_uring) vs qsd cache.direct=on, aio=native"
        echo "driver: vhu-bench-blk, busy-polling, interrupts suppressed; ratio = vhu median / qsd median IOPS"
        echo
        table vhu qsd "${rows_shm[@]}" "${rows_tmp[@]}" "${rows_direct[@]}"
        echo
    fi
    echo "packed rings (vhu-blk --packed, vhu-bench-blk --packed) next to split, same vhu-blk, runs interleaved;"
    echo "spread: min-max IOPS of the rounds, +-% = (max-min)/2 of the median; a packed/split ratio inside the spreads is noise"
    packed_table
} >"$out"
echo
cat "$out"

if [ "$state" = 1 ]; then
    {
        echo
        echo "== build/tests/vhu-bench-state --sizes 64M,1G --repeat 3"
        "$build/tests/vhu-bench-state" --sizes 64M,1G --repeat 3 2>&1
        echo
        echo "== build/tests/vhu-bench-snapshot --sizes 64M,1G --repeat 3 (live snapshot vs stop-the-world)"
        "$build/tests/vhu-bench-snapshot" --vhu-blk "$vhublk" --sizes 64M,1G --repeat 3 2>&1 |
            grep -v '^vhu'
    } | tee -a "$out"
fi
echo
echo "report: $out (raw rows: $csv)"
