#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# test-qemu-migrate.sh [--backend vhu|qsd|builtin] [--mem SIZE] VHU_BLK CACHE_DIR [MIGRATIONS]
#
# Live migration of a guest on vhu-blk under QEMU 7.2 (TCG, -cpu qemu64,
# guest RAM in a shared memfd).  Two sides on this host, A and B, each with
# its own vhu-blk on the same image file.  QEMU 0 boots the guest of
# build-guest.sh on A with vhu.mode=rounds: the guest writes round n's data
# (4 MiB at 1 MiB) with O_DIRECT, reads it back, compares and prints
# "round n ok", round after round (see guest-init.sh).  After round 2, QEMU 1
# starts on B with -incoming unix:..., and the test drives QEMU 0's QMP
# socket (qmp.py): migrate to it, wait for status "completed", check QEMU 0
# is in "postmigrate" and quit it.  With MIGRATIONS > 1 (default 1) the
# guest goes back and forth (QEMU 2 on A, QEMU 3 on B, ...), each hop after
# the guest verified at least one round on the current side.  Once the
# guest verified two rounds after the last migration, the host writes
# "vhu-stop" into sector 0 and the guest stops with "PASS after N rounds".
# Then: rounds 1..N each reported exactly once across the QEMUs' consoles,
# the image holds round N's data and nothing else changed, both vhu-blk
# stop cleanly on SIGTERM.  Prints each migration's time ("migration K:
# ... ms"); soak-migrate.sh runs it many times on each back-end.
#
# --backend names the disk's back-end, the same on both sides: vhu (the
# default: vhu-blk), qsd (qemu-storage-daemon's vhost-user-blk export, with
# file locking off so both sides open the image) or builtin (QEMU's own
# virtio-blk-pci on the image, no vhost-user at all).  The same guest,
# rounds and checks run on each: soak-migrate.sh compares their failure
# rates.  --mem sets the guest's RAM (default 262152K, 256 MiB and 8 KiB: see
# GUEST_MEM_DEFAULT in lib-rounds.sh).  VHU_ROUND_WAIT
# (seconds, default 90) bounds the wait for a round after a migration.
# Guest memory is compared page by page at each switch-over (see
# VHU_MIGRATE_COMPARE below and memcmp-pages.py).
#
# VHU_QEMU_PACKED=1: packed rings (vhu-blk --packed, vhost-user-blk-pci,packed=on;
# with --backend builtin, virtio-blk-pci,packed=on; qemu-storage-daemon has
# none); ctest runs it so as test_qemu_migrate_packed.
#
# Exit 77 (skipped) only when QEMU cannot run at all.  ctest runs it as
# test_qemu_migrate; by hand (KEEP=1 keeps the logs in the work directory):
#   tests/qemu/test-qemu-migrate.sh build/examples/vhu-blk build/qemu-guest
#   tests/qemu/test-qemu-migrate.sh build/examples/vhu-blk build/qemu-guest 4
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
NAME=test-qemu-migrate
# shellcheck source=lib-rounds.sh
source "$here/lib-rounds.sh"
backend=vhu
while [[ $# -gt 0 && $1 == --* ]]; do
    case $1 in
    --backend) backend=${2:-}; shift 2 ;;
    --mem) guest_mem=${2:-}; shift 2 ;;
    *) echo "$0: unknown option $1" >&2; exit 2 ;;
    esac
done
case $backend in
vhu | qsd | builtin) ;;
*) echo "$0: --backend must be vhu, qsd or builtin" >&2; exit 2 ;;
esac
rounds_args MIGRATIONS 1 "$@"
say "back-end: $backend"
# How long the guest may take for a round after a migration before it is
# taken to have stalled (soak-migrate.sh shortens it).
round_wait=${VHU_ROUND_WAIT:-90}
# VHU_MIGRATE_COMPARE (default 1; 0 turns it off): the destination starts
# paused; after each migration the source's guest memory (frozen since
# switch-over) is compared page by page with what the destination received,
# before it runs; any page that differs fails the test.
compare=${VHU_MIGRATE_COMPARE:-1}
mem_bytes=$(numfmt --from=iec "${guest_mem:-$GUEST_MEM_DEFAULT}")

img=$dir/disk.img
make_image "$img"
# start_qsd VAR LOG SOCKET: qemu-storage-daemon exporting the image as a
# vhost-user-blk device on SOCKET; its pid in VAR.
start_qsd() {
    local var=$1 log=$2 sock=$3 pid i qsd
    qsd=$(command -v qemu-storage-daemon) || fail "qemu-storage-daemon is not installed (qemu-utils)"
    "$qsd" --blockdev driver=file,node-name=disk,filename="$img",locking=off \
        --export type=vhost-user-blk,id=exp,node-name=disk,writable=on,num-queues=1,addr.type=unix,addr.path="$sock" \
        >"$log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for ((i = 0; i < 50; i++)); do
        [[ -S $sock ]] && break
        kill -0 "$pid" 2>/dev/null || fail "qemu-storage-daemon exited early: $(cat "$log")"
        sleep 0.1
    done
    [[ -S $sock ]] || fail "qemu-storage-daemon made no socket after 5 s: $(cat "$log")"
    printf -v "$var" %s "$pid"
}
packed_blk=()
packed_dev=
if [[ ${VHU_QEMU_PACKED:-0} == 1 ]]; then
    [[ $backend != qsd ]] || fail "VHU_QEMU_PACKED=1: qemu-storage-daemon has no packed rings"
    say "packed rings"
    packed_blk=(--packed)
    packed_dev=,packed=on
fi
case $backend in
vhu)
    # --verbose: each vhost-user message is logged (the dirty log's set-up).
    # VHU_TRACE_GUEST_WRITES: every buffer each one completes into guest
    # memory, for the page comparison below.
    VHU_TRACE_GUEST_WRITES=$dir/trace-A start_blk bpid_A "$dir/blk-A.log" --verbose \
        --socket "$dir/A.sock" --image "$img" "${packed_blk[@]}"
    VHU_TRACE_GUEST_WRITES=$dir/trace-B start_blk bpid_B "$dir/blk-B.log" --verbose \
        --socket "$dir/B.sock" --image "$img" "${packed_blk[@]}"
    ;;
qsd)
    start_qsd bpid_A "$dir/blk-A.log" "$dir/A.sock"
    start_qsd bpid_B "$dir/blk-B.log" "$dir/B.sock"
    ;;
esac

# start_qemu K SIDE [EXTRA...]: QEMU K on side A or B, QMP on $dir/qK.qmp.
start_qemu() {
    local k=$1 side=$2
    shift 2
    local disk=(-chardev socket,id=blk0,path="$dir/$side.sock"
                -device vhost-user-blk-pci,chardev=blk0,num-queues=1$packed_dev)
    [[ $backend == builtin ]] &&
        disk=(-drive file="$img",format=raw,if=none,id=blk0,file.locking=off
              -device virtio-blk-pci,drive=blk0,num-queues=1$packed_dev)
    "$qemu" "${QEMU_ARGS[@]}" "${disk[@]}" \
        -qmp unix:"$dir/q$k.qmp",server=on,wait=off \
        -serial file:"$dir/q$k.serial" "$@" >"$dir/qemu-$k.log" 2>&1 &
    qpid[$k]=$!
    PIDS+=("${qpid[$k]}")
    QPIDS=("${qpid[$k]}")
}
# wait_file PATH SECS PID: until PATH exists (a socket QEMU made).
wait_file() {
    local end=$((SECONDS + $2))
    while [[ ! -S $1 ]]; do
        kill -0 "$3" 2>/dev/null || { show; fail "QEMU exited before making ${1##*/}"; }
        ((SECONDS < end)) || { show; fail "no ${1##*/} after $2 s"; }
        sleep 0.1
    done
}
qmp() { "$here/qmp.py" "$@"; }

declare -a qpid
t0=$SECONDS
start_qemu 0 A
QMP_SOCK=$dir/q0.qmp
wait_file "$dir/q0.qmp" 30 "${qpid[0]}"
wait_serial "$dir/q0.serial" 'round 2 ok' 120
say "guest verifying rounds on A ($((SECONDS - t0)) s after start)"

total_ms=0
for ((k = 1; k <= count; k++)); do
    src=$((k - 1))
    if ((k % 2)); then side=B src_side=A; else side=A src_side=B; fi
    paused=()
    ((compare)) && paused=(-S) # stays paused after the migration, for the comparison
    start_qemu "$k" "$side" -incoming unix:"$dir/mig$k.sock" "${paused[@]}"
    QPIDS=("${qpid[$src]}" "${qpid[$k]}")
    wait_file "$dir/mig$k.sock" 30 "${qpid[$k]}"
    wait_file "$dir/q$k.qmp" 30 "${qpid[$k]}"
    before=$(rounds_in "$dir/q$src.serial" | tail -1)
    ring_pages=
    ((compare)) && { ring_pages=$(qmp "$dir/q$src.qmp" ring-pages ${packed_dev:+packed}) ||
        fail "ring-pages on QEMU $src"; }
    t_start=$(date +%s%N)
    tracepos=0
    [[ -f $dir/trace-$src_side ]] && tracepos=$(stat -c %s "$dir/trace-$src_side")
    qmp "$dir/q$src.qmp" migrate "{\"uri\": \"unix:$dir/mig$k.sock\"}" >/dev/null ||
        { show; fail "migrate $k refused"; }
    res=$(qmp "$dir/q$src.qmp" wait-migration 90) || { show; fail "migration $k: $res"; }
    ms=$((($(date +%s%N) - t_start) / 1000000))
    total_ms=$((total_ms + ms))
    read -r status qtotal qdown <<<"$res"
    [[ $status == completed ]] || fail "migration $k: $res"
    st=$(qmp "$dir/q$src.qmp" query-status) || fail "query-status on QEMU $src"
    [[ $st == *'"postmigrate"'* ]] || fail "QEMU $src is not in postmigrate after migration $k: $st"
    after=$(rounds_in "$dir/q$src.serial" | tail -1)
    say "migration $k: QEMU $src -> QEMU $k (side $side) completed in $ms ms" \
        "(QEMU: total ${qtotal} ms, downtime ${qdown} ms), guest at round ${before:-0}" \
        "when it started, ${after:-0} at switch-over"
    if ((compare)); then
        # Guest memory as the source left it (stopped since switch-over)
        # and as the destination received it (not started yet): any page
        # that differs did not migrate.
        qmp "$dir/q$src.qmp" pmemsave "{\"val\": 0, \"size\": $mem_bytes, \"filename\": \"$dir/mem-src\"}" >/dev/null ||
            fail "pmemsave on QEMU $src"
        qmp "$dir/q$k.qmp" pmemsave "{\"val\": 0, \"size\": $mem_bytes, \"filename\": \"$dir/mem-dst\"}" >/dev/null ||
            fail "pmemsave on QEMU $k"
        # With vhu-blk, which of the pages that differ the source back-end
        # wrote during this migration (its trace, kept apart from the dirty
        # log, from where it stood when the migration started): a page
        # among them that did not migrate points at its dirty log.
        written=()
        if [[ $backend == vhu ]]; then
            tail -c +$((tracepos + 1)) "$dir/trace-$src_side" >"$dir/trace-mig$k"
            written=(--written "$dir/trace-mig$k")
        fi
        cmpout=$("$here/memcmp-pages.py" "${written[@]}" "$dir/mem-src" "$dir/mem-dst" $ring_pages) ||
            true
        rm -f "$dir/mem-src" "$dir/mem-dst"
        say "migration $k: guest memory compared: $cmpout"
        # Every page must have arrived as the source left it, whoever wrote
        # it (the vCPU, QEMU, the back-end); a lost page fails the test at
        # once, before the guest runs on it.
        [[ $cmpout == "0 of "* ]] ||
            { show; fail "migration $k: guest pages did not migrate: ${cmpout%%$'\n'*}"; }
        qmp "$dir/q$k.qmp" cont >/dev/null || fail "cont on QEMU $k"
    fi
    qmp "$dir/q$src.qmp" quit >/dev/null || true
    wait "${qpid[$src]}" 2>/dev/null || true
    QPIDS=("${qpid[$k]}")
    QMP_SOCK=$dir/q$k.qmp
    # The guest carries on there: at least one more verified round (two
    # after the last migration).
    need=1
    ((k < count)) || need=2
    end=$((SECONDS + round_wait))
    while (($(rounds_in "$dir/q$k.serial" | wc -l) < need)); do
        wait_serial "$dir/q$k.serial" 'round [0-9]+ ok' "$round_wait"
        ((SECONDS < end)) || stalled "the guest did not verify $need rounds on QEMU $k"
        sleep 0.2
    done
done
say "$count migration(s), $((total_ms / count)) ms each on average"

# Stop the guest: "vhu-stop" in sector 0.
printf 'vhu-stop' | dd of="$img" conv=notrunc status=none
wait_serial "$dir/q$count.serial" 'VHU-BLK-GUEST: PASS after [0-9]+ rounds' 90
r=0
wait "${qpid[$count]}" || r=$?
((r == 0)) || { show; fail "the last QEMU exited $r"; }
serials=()
for ((k = 0; k <= count; k++)); do serials+=("$dir/q$k.serial"); done
n=$(grep -aoE 'PASS after [0-9]+ rounds' "$dir/q$count.serial" | awk '{ print $3 }')
check_rounds "$n" "${serials[@]}"
if grep -aq 'VHU-BLK-GUEST: FAIL' "${serials[@]}"; then
    show
    fail "a guest FAIL line: $(grep -ah 'VHU-BLK-GUEST: FAIL' "${serials[@]}" | head -1)"
fi
say "guest: PASS after $n rounds, each verified once"

printf '\377\377\377\377\377\377\377\377' | dd of="$img" conv=notrunc status=none
check_image "$img" "$n"
say "image checked: round $n's data at 1 MiB, the rest untouched"

[[ $backend == builtin ]] && { say "PASS ($((SECONDS - t0)) s)"; exit 0; }
# Each source vhu-blk was given the dirty log (SET_LOG_BASE with the log
# memfd) and VHOST_F_LOG_ALL: the migrations ran with dirty-page logging.
if [[ $backend == vhu ]]; then
    nlog=$(cat "$dir/blk-A.log" "$dir/blk-B.log" | grep -c '<- SET_LOG_BASE' || true)
    ((nlog >= count)) || fail "$nlog SET_LOG_BASE for $count migration(s)"
fi
for s in A B; do
    v=bpid_$s
    kill -TERM "${!v}"
    r=0
    wait "${!v}" || r=$?
    ((r == 0)) || fail "$backend back-end $s exited $r after SIGTERM: $(cat "$dir/blk-$s.log")"
done
say "PASS ($((SECONDS - t0)) s)"
