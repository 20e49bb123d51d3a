#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# soak-migrate.sh VHU_BLK CACHE_DIR [RUNS [BACKENDS [MIGRATIONS]]]
#
# Migration soak (not a ctest test): the scenario of test-qemu-migrate.sh
# (two QEMU 7.2 under TCG, the guest verifying O_DIRECT rounds before,
# across and after the migration) RUNS times (default 30) on each back-end
# of BACKENDS (default "vhu qsd builtin": vhu-blk, qemu-storage-daemon,
# QEMU's own virtio-blk-pci), interleaved (vhu, qsd, builtin, vhu, ...) so
# that the machine's load falls on all of them alike.  MIGRATIONS (default
# 1) per run.  Each run ends as one of:
#   pass    every check of the test passed
#   crash   the guest's kernel crashed (Oops, BUG, panic on its console)
#   hang    the guest stopped making progress with nothing outstanding on
#           its disk (every request completed and seen)
#   stall   the guest stopped with requests outstanding, or a completion
#           not signalled, on its disk: the back-end's (or QEMU's device's)
#   lost    guest pages did not migrate (the test compares guest memory at
#           the switch-over and stops there)
#   fail    anything else (data mismatch, I/O error, QEMU or back-end
#           failure, migration failed)
# One line per run as it ends, then a table per back-end, with, of the
# runs that lost pages, how many lost one in the disk's virtqueue.  Logs of
# every run that did not pass are kept under $SOAK_DIR (default a new
# directory in TMPDIR), named BACKEND-RUN.log (plus the test's work
# directory).  Environment: VHU_ROUND_WAIT (seconds a round may take after a
# migration before the guest is taken to have stalled; default 40 here),
# GUEST_MEM (default the test's, 262152K: see GUEST_MEM_DEFAULT in
# lib-rounds.sh; 256M shows QEMU 7.2's lost pages) and VHU_MIGRATE_COMPARE
# (default 1: guest memory compared page by page at switch-over), passed on
# to the test.  Exit 0 when every run of every back-end passed.  By hand:
#   tests/qemu/soak-migrate.sh build/examples/vhu-blk build/qemu-guest 30
set -uo pipefail

if [[ $# -lt 2 || $# -gt 5 ]]; then
    echo "usage: $0 VHU_BLK CACHE_DIR [RUNS [BACKENDS [MIGRATIONS]]]" >&2
    exit 2
fi
blk=$1 cache=$2 runs=${3:-30} backends=${4:-vhu qsd builtin} count=${5:-1}
here=$(cd "$(dirname "$0")" && pwd)
out=${SOAK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/vhu-soak-migrate.XXXXXX")}
mkdir -p "$out"
export VHU_ROUND_WAIT=${VHU_ROUND_WAIT:-40}
declare -A n
for b in $backends; do
    for k in pass crash hang stall lost fail ringlost; do n[$b.$k]=0; done
done
start=$SECONDS
echo "soak-migrate: $runs run(s) x ($backends), $count migration(s) each;" \
     "guest RAM ${GUEST_MEM:-262152K}; logs of failed runs in $out"
for ((r = 1; r <= runs; r++)); do
    for b in $backends; do
        log=$out/$b-$r.log
        t=$SECONDS
        KEEP=1 "$here/test-qemu-migrate.sh" --backend "$b" ${GUEST_MEM:+--mem "$GUEST_MEM"} \
            "$blk" "$cache" "$count" >"$log" 2>&1
        rc=$?
        if ((rc == 0)); then
            res=pass
        elif grep -q "guest pages did not migrate" "$log"; then
            res=lost
        elif grep -q "the guest's kernel crashed" "$log"; then
            res=crash
        elif grep -q 'stopped with nothing outstanding' "$log"; then
            res=hang
        elif grep -q "the disk's ring: avail" "$log"; then
            res=stall
        else
            res=fail
        fi
        n[$b.$res]=$((n[$b.$res] + 1))
        kept=$(sed -n 's/^test-qemu-migrate: kept //p' "$log")
        why=$(grep -m1 'FAIL' "$log" | cut -c1-160)
        mig=$(grep -o 'completed in [0-9]* ms (QEMU: total [0-9]* ms, downtime [0-9]* ms), guest at round [0-9]* when it started, [0-9]* at switch-over' "$log" |
              head -1)
        # How many guest pages did not migrate (unless VHU_MIGRATE_COMPARE=0).
        cmp=$(grep -oE 'guest memory compared: [0-9]+ of [0-9]+ pages differ, [0-9]+ in the device ranges(, [0-9]+ written by the back-end)?' "$log" | head -1)
        if [[ $cmp =~ compared:\ ([0-9]+)\ of\ [0-9]+\ pages\ differ,\ ([0-9]+)\ in\ the\ device\ ranges(,\ ([0-9]+)\ written)? ]]; then
            ((BASH_REMATCH[2] > 0)) && n[$b.ringlost]=$((n[$b.ringlost] + 1))
        fi
        echo "run $r $b: $res ($((SECONDS - t)) s)${mig:+ $mig}${cmp:+; $cmp}${why:+ -- $why}"
        if [[ $res == pass ]]; then
            rm -rf "$kept" "$log"
        elif [[ -n $kept && -d $kept ]]; then
            mv "$kept" "$out/$b-$r.dir"
        fi
    done
done
echo "soak-migrate: $((SECONDS - start)) s"
# device: of the runs that lost pages, those with a lost page in the
# disk's virtqueue.
printf '%-8s %5s %5s %6s %5s %6s %5s %5s %7s\n' back-end runs pass crash hang stall lost fail device
all=0
for b in $backends; do
    printf '%-8s %5d %5d %6d %5d %6d %5d %5d %7d\n' "$b" "$runs" "${n[$b.pass]}" "${n[$b.crash]}" \
        "${n[$b.hang]}" "${n[$b.stall]}" "${n[$b.lost]}" "${n[$b.fail]}" "${n[$b.ringlost]}"
    ((n[$b.pass] == runs)) || all=1
done
exit "$all"
