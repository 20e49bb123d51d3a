# SPDX-License-Identifier: BSD-3-Clause
# lib-rounds.sh: sourced by test-qemu-migrate.sh and test-qemu-reconnect.sh.
# Set NAME (the prefix of every message) before sourcing.  Provides:
#   rounds_args WHAT DEFAULT "$@"   blk, cache, count from the command line;
#                        exit 77 unless QEMU runs; the guest built
#   make_image IMG       16 MiB of 0xff
#   start_blk VAR LOG ARGS...   start vhu-blk, wait for "listening on",
#                        store its pid in VAR (and in the cleanup list)
#   qemu_cmd             the common QEMU arguments (array QEMU_ARGS)
#   start_qemu VAR NAME CHARDEV   QEMU with the guest on vhu-blk's disk
#                        (-chardev socket,id=blk0,CHARDEV; the device's
#                        options end with $BLK_DEV_OPTS), serial in
#                        $dir/NAME.serial, log in $dir/NAME.log; pid in VAR,
#                        in the cleanup list and the watched QPIDS
#   wait_serial FILE REGEX SECS   until a line matches, or fail (a guest
#                        FAIL line, a dead QEMU (QPIDS) or the time out;
#                        a guest kernel crash, or a stall, fails with what
#                        the disk's ring shows (see stalled))
#   rounds_in FILE       "round N ok" lines' numbers, one a line
#   round_data N         round N's 4 MiB, as the guest makes it
#   check_image IMG N    the image holds round N at 1 MiB, the rest as made
# Everything lives in $dir, removed at exit together with the processes.
# shellcheck source=lib-qemu.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib-qemu.sh"

# rounds_args WHAT DEFAULT ARGS...: the command line VHU_BLK CACHE_DIR [WHAT]
# into blk, cache and count (DEFAULT); then QEMU checked, the guest built.
rounds_args() {
    local what=$1 def=$2
    shift 2
    if [[ $# -lt 2 || $# -gt 3 ]]; then
        echo "usage: $0 VHU_BLK CACHE_DIR [$what]" >&2
        exit 2
    fi
    blk=$1
    cache=$2
    count=${3:-$def}
    [[ $count =~ ^[1-9][0-9]*$ ]] || { echo "$0: $what must be a positive number" >&2; exit 2; }
    check_qemu
    "$here/build-guest.sh" "$cache" || fail "could not build the guest (see above)"
    say "guest: $(cat "$cache/kernel") + busybox initramfs"
    # The guest of build-guest.sh in rounds mode, RAM shared through a memfd.
    local mem=${guest_mem:-$GUEST_MEM_DEFAULT}
    QEMU_ARGS=(-nodefaults -no-user-config -display none -no-reboot
        -machine pc,accel=tcg -cpu qemu64 -smp 1 -m "$mem"
        -object memory-backend-memfd,id=mem,size="$mem",share=on -numa node,memdev=mem
        -kernel "$cache/vmlinuz" -initrd "$cache/initrd.gz"
        -append "console=ttyS0 panic=-1 loglevel=3 vhu.mode=rounds")
}

# The guest's RAM: 256 MiB and 8 KiB, on purpose not a multiple of 256 KiB.
# QEMU before 9.0 (Debian 12 has 7.2) loses pages a TCG vCPU writes during a
# migration: when it syncs the dirty bitmap of a RAM block 64 pages at a
# time (the block's size a multiple of 256 KiB), it does not make the
# vCPU's TLB trap the next write to a page again, so that write is never
# marked dirty nor sent (fixed upstream by "physmem: Fix migration dirty
# bitmap coherency with TCG memory access", 2024).  A block of any other
# size is synced page by page, a path that does re-arm the TLB.  With 256M
# the guest crashed or hung after about one migration in eight here, on
# QEMU's own virtio-blk as on vhost-user back-ends (docs/migration.md).
GUEST_MEM_DEFAULT=262152K

PIDS=()
dir=$(mktemp -d "${TMPDIR:-/tmp}/vhu-qemu.XXXXXX")
cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill -9 "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    if [[ -n ${KEEP:-} ]]; then
        echo "$NAME: kept $dir" >&2
    else
        rm -rf "$dir"
    fi
}
trap cleanup EXIT

make_image() {
    head -c $((16 * 1024 * 1024)) /dev/zero | tr '\0' '\377' >"$1"
}

start_blk() {
    local var=$1 log=$2 pid i
    shift 2
    "$blk" "$@" >"$log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for ((i = 0; i < 50; i++)); do
        grep -q 'listening on' "$log" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || fail "vhu-blk exited early: $(cat "$log")"
        sleep 0.1
    done
    grep -q 'listening on' "$log" || fail "vhu-blk not listening after 5 s: $(cat "$log")"
    printf -v "$var" %s "$pid"
}

QPIDS=()
BLK_DEV_OPTS=
start_qemu() {
    local var=$1 name=$2 chardev=$3 pid
    "$qemu" "${QEMU_ARGS[@]}" \
        -chardev socket,id=blk0,"$chardev" \
        -device vhost-user-blk-pci,chardev=blk0,num-queues=1$BLK_DEV_OPTS \
        -serial file:"$dir/$name.serial" >"$dir/$name.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    QPIDS=("$pid")
    printf -v "$var" %s "$pid"
}

show() {
    local f
    for f in "$dir"/*.serial "$dir"/*.log; do
        [[ -f $f ]] || continue
        echo "--- ${f##*/} (last 30 lines) ---" >&2
        tail -30 "$f" >&2
    done
}

# crashed FILE...: if a guest kernel crashed, fail.
crashed() {
    local f pat='kernel BUG|Oops|Kernel panic|general protection fault'
    for f in "$@"; do
        if grep -aqE "$pat" "$f" 2>/dev/null; then
            show
            fail "the guest's kernel crashed (${f##*/}): $(grep -aE -m1 "$pat" "$f")"
        fi
    done
}

# stalled WHY: the guest made no progress.  With QMP_SOCK (the running
# QEMU's QMP socket) set, look at the disk's ring in guest memory, twice, a
# second apart, and say what it shows: every request the guest submitted
# completed (avail = used) and the driver saw every completion (used_event =
# used), so the guest stopped on its own; or requests outstanding, or a
# completion the driver was not told of.  It fails either way.  VHU_QEMU_PACKED=1:
# the same read from a packed ring's descriptors and driver event area
# (qmp.py ring-idx packed).
stalled() {
    local a u e a2 u2 e2 layout=()
    # A guest whose kernel crashed stops too (and its QEMU may be gone, with
    # its QMP socket): say so, rather than look at a ring nobody drives.
    crashed "$dir"/*.serial
    [[ ${VHU_QEMU_PACKED:-0} == 1 ]] && layout=(packed)
    if [[ -n ${QMP_SOCK:-} ]] && read -r a u e < <("$here/qmp.py" "$QMP_SOCK" ring-idx "${layout[@]}") &&
        sleep 1 && read -r a2 u2 e2 < <("$here/qmp.py" "$QMP_SOCK" ring-idx "${layout[@]}"); then
        show
        if ((${#layout[@]})); then
            # Packed (qmp.py's header): nothing available and not used, no
            # used descriptor where the driver reads next, notifications on.
            if [[ $a == 0 && $e != 1 && $a2 == "$a" && $u2 == "$u" && $e2 == "$e" ]]; then
                fail "$1; the guest stopped with nothing outstanding on its disk's packed ring (driver at off_wrap $u)"
            fi
            fail "$1; the disk's packed ring: outstanding $a -> $a2, driver's off_wrap $u -> $u2, event flags $e -> $e2"
        fi
        if [[ $a == "$u" && $u == "$e" && $a2 == "$a" && $u2 == "$u" && $e2 == "$e" ]]; then
            fail "$1; the guest stopped with nothing outstanding on its disk (avail = used = used_event = $a)"
        fi
        fail "$1; the disk's ring: avail $a -> $a2, used $u -> $u2, used_event $e -> $e2"
    fi
    show
    fail "$1"
}

wait_serial() {
    local file=$1 re=$2 secs=$3 end p
    end=$((SECONDS + secs))
    while ! grep -aqE "$re" "$file" 2>/dev/null; do
        crashed "$file"
        if grep -aq 'VHU-BLK-GUEST: FAIL' "$file" 2>/dev/null; then
            show
            fail "the guest failed: $(grep -a 'VHU-BLK-GUEST: FAIL' "$file")"
        fi
        for p in "${QPIDS[@]}"; do
            if ! kill -0 "$p" 2>/dev/null; then
                crashed "$dir"/*.serial # a panic ends QEMU (-no-reboot)
                show
                fail "QEMU $p exited while waiting for '$re' in ${file##*/}"
            fi
        done
        if ((SECONDS >= end)); then
            crashed "$dir"/*.serial
            stalled "no '$re' in ${file##*/} after $secs s"
        fi
        sleep 0.2
    done
}

rounds_in() {
    cat "$@" | grep -aoE 'VHU-BLK-GUEST: round [0-9]+ ok' | awk '{ print $3 }'
}

round_data() {
    local i s
    for i in 0 1 2 3; do
        s=$((($1 * 4 + i) % 2048))
        dd if="$cache/pattern" bs=512 skip=$s status=none
        ((s == 0)) || dd if="$cache/pattern" bs=512 count=$s status=none
    done
}

check_image() {
    local img=$1 n=$2 MiB=$((1024 * 1024))
    (($(stat -c %s "$img") == 16 * MiB)) || fail "the image is not 16 MiB any more"
    cmp -s <(dd if="$img" bs=$MiB skip=1 count=4 status=none) <(round_data "$n") ||
        fail "the image does not hold round $n's data at 1 MiB"
    cmp -s <(dd if="$img" bs=512 skip=1 count=2047 status=none) \
           <(head -c $((MiB - 512)) /dev/zero | tr '\0' '\377') ||
        fail "the image changed between sector 1 and 1 MiB"
    cmp -s <(dd if="$img" bs=$MiB skip=5 status=none) \
           <(head -c $((11 * MiB)) /dev/zero | tr '\0' '\377') ||
        fail "the image changed after 5 MiB"
}

# Rounds in the concatenated serial logs must be 1, 2, ..., N: none failed,
# none missing, none repeated.
check_rounds() {
    local n=$1
    shift
    diff <(rounds_in "$@") <(seq 1 "$n") >/dev/null ||
        fail "the guest's rounds are not 1..$n: $(rounds_in "$@" | tr '\n' ' ')"
}
