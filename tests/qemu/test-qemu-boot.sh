#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# test-qemu-boot.sh VHU_BLK CACHE_DIR
#
# QEMU 7.2 (vhost-user-blk-pci, TCG, -cpu qemu64) boots Debian's kernel with
# a busybox initramfs on a disk served by vhu-blk (--direct: O_DIRECT on
# the image where the guest's buffers allow it); the guest writes a
# pattern with O_DIRECT, reads it back, discards a range, and reports on the
# serial console (see guest-init.sh).  Then the host grows the image by
# 1 MiB and sends vhu-blk SIGHUP: the guest must see the new capacity
# (CONFIG_CHANGE_MSG, GET_CONFIG) and read the new MiB.  After it powered
# off, the host checks the image: the pattern at 1 MiB, zeroes where the
# guest discarded, and nothing else changed.
#
# With VHU_QEMU_PACKED=1 in the environment the disk uses packed rings
# (vhu-blk --packed, vhost-user-blk-pci,packed=on); ctest runs that as
# test_qemu_boot_packed.
#
# Exit 77 (skipped) only when QEMU cannot run at all (not installed, or
# broken).  Everything else that goes wrong, fetching the guest included,
# fails the test.  ctest runs it as test_qemu_boot; by hand:
#   tests/qemu/test-qemu-boot.sh build/examples/vhu-blk build/qemu-guest
set -euo pipefail

if [[ $# -ne 2 ]]; then
    echo "usage: $0 VHU_BLK CACHE_DIR" >&2
    exit 2
fi
blk=$1
cache=$2
here=$(cd "$(dirname "$0")" && pwd)
NAME=test-qemu-boot
# shellcheck source=lib-qemu.sh
source "$here/lib-qemu.sh"
check_qemu

"$here/build-guest.sh" "$cache" || fail "could not build the guest (see above)"
say "guest: $(cat "$cache/kernel") + busybox initramfs"

dir=$(mktemp -d "${TMPDIR:-/tmp}/vhu-qemu.XXXXXX")
bpid=
qpid=
cleanup() {
    local p
    for p in $qpid $bpid; do
        kill -9 "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$dir"
}
trap cleanup EXIT

# The disk: 16 MiB of 0xff, the host's marker in sector 0.
img=$dir/disk.img
head -c $((16 * 1024 * 1024)) /dev/zero | tr '\0' '\377' >"$img"
printf 'vhu-blk host marker' | dd of="$img" conv=notrunc status=none
cp "$img" "$dir/disk.orig"

# --direct where the file system takes O_DIRECT (tmpfs before Linux 6.6 does not).
direct=(--direct)
if ! dd if=/dev/zero of="$dir/direct.probe" bs=4096 count=1 oflag=direct status=none 2>/dev/null; then
    say "no O_DIRECT in $dir: vhu-blk without --direct"
    direct=()
fi
rm -f "$dir/direct.probe"
packed_blk=()
packed_dev=
if [[ ${VHU_QEMU_PACKED:-0} == 1 ]]; then
    say "packed rings"
    packed_blk=(--packed)
    packed_dev=,packed=on
fi
"$blk" --socket "$dir/blk.sock" --image "$img" "${direct[@]}" "${packed_blk[@]}" \
    >"$dir/blk.log" 2>&1 &
bpid=$!
for ((i = 0; i < 50; i++)); do
    grep -q 'listening on' "$dir/blk.log" 2>/dev/null && break
    kill -0 "$bpid" 2>/dev/null || fail "vhu-blk exited early: $(cat "$dir/blk.log")"
    sleep 0.1
done
grep -q 'listening on' "$dir/blk.log" || fail "vhu-blk not listening after 5 s"

# Guest RAM must be shared with the back-end: a memfd backend, share=on.
serial=$dir/serial.log
start=$SECONDS
timeout 150 "$qemu" -nodefaults -no-user-config -display none -no-reboot \
    -machine pc,accel=tcg -cpu qemu64 -smp 1 -m 256M \
    -object memory-backend-memfd,id=mem,size=256M,share=on -numa node,memdev=mem \
    -chardev socket,id=blk0,path="$dir/blk.sock" \
    -device vhost-user-blk-pci,chardev=blk0,num-queues=1$packed_dev \
    -kernel "$cache/vmlinuz" -initrd "$cache/initrd.gz" \
    -append "console=ttyS0 panic=-1 loglevel=3 vhu.resize=1" \
    -serial "file:$serial" >"$dir/qemu.log" 2>&1 &
qpid=$!
# When the guest asks for it: grow the image by 1 MiB whose first sector
# says so, and SIGHUP vhu-blk.
while kill -0 "$qpid" 2>/dev/null; do
    if grep -aq 'VHU-BLK-GUEST: waiting for a resize' "$serial" 2>/dev/null; then
        { printf 'vhu-blk grown'; head -c $((1024 * 1024 - 13)) /dev/zero; } >>"$img"
        kill -HUP "$bpid"
        break
    fi
    sleep 0.1
done
r=0
wait "$qpid" || r=$?
qpid=
say "QEMU ran $((SECONDS - start)) s, exit $r"
show() {
    echo "--- serial console (last 40 lines) ---" >&2
    tail -40 "$serial" >&2 || true
    echo "--- qemu ---" >&2
    cat "$dir/qemu.log" >&2 || true
    echo "--- vhu-blk ---" >&2
    cat "$dir/blk.log" >&2 || true
}
((r != 124)) || { show; fail "the guest did not finish within 150 s"; }
grep -a 'VHU-BLK-GUEST' "$serial" | sed 's/^/  guest: /' || true
if ! grep -aq 'VHU-BLK-GUEST: PASS' "$serial"; then
    show
    fail "the guest did not report success"
fi
((r == 0)) || { show; fail "QEMU exited $r"; }

# vhu-blk served the whole boot and stops cleanly.
kill -TERM "$bpid"
r=0
wait "$bpid" || r=$?
bpid=
((r == 0)) || fail "vhu-blk exited $r after SIGTERM: $(cat "$dir/blk.log")"
# The rings really were packed: each packed ring start with an inflight
# region says so.
if [[ -n $packed_dev ]]; then
    grep -q 'inflight tracking, packed layout' "$dir/blk.log" ||
        fail "vhu-blk did not run packed rings: $(cat "$dir/blk.log")"
fi
grep -q 'served 1 front-end session' "$dir/blk.log" ||
    fail "vhu-blk did not serve exactly one session: $(cat "$dir/blk.log")"

grep -q 'SIGHUP: now 34816 sectors; front-end told' "$dir/blk.log" ||
    fail "vhu-blk did not announce the resize: $(cat "$dir/blk.log")"

# The image, as the guest left it.
MiB=$((1024 * 1024))
size=$(stat -c %s "$img")
((size == 17 * MiB)) || fail "the image is $size bytes, not $((17 * MiB))"
cmp -s <(dd if="$img" bs=$MiB skip=1 count=1 status=none) "$cache/pattern" ||
    fail "the image does not hold the guest's pattern at 1 MiB"
cmp -s <(dd if="$img" bs=65536 skip=64 count=1 status=none) <(head -c 65536 /dev/zero) ||
    fail "the range the guest discarded does not read as zeroes"
cmp -s <(dd if="$img" bs=$MiB count=1 status=none) <(dd if="$dir/disk.orig" bs=$MiB count=1 status=none) ||
    fail "the first MiB changed"
cmp -s <(dd if="$img" bs=$MiB skip=2 count=2 status=none) \
       <(dd if="$dir/disk.orig" bs=$MiB skip=2 count=2 status=none) ||
    fail "2..4 MiB changed"
cmp -s <(dd if="$img" bs=65536 skip=65 count=$((256 - 65)) status=none) \
       <(dd if="$dir/disk.orig" bs=65536 skip=65 status=none) ||
    fail "the image changed after the discarded range"
cmp -s <(dd if="$img" bs=$MiB skip=16 status=none) \
       <({ printf 'vhu-blk grown'; head -c $((MiB - 13)) /dev/zero; }) ||
    fail "the MiB the host added changed"
say "image checked: pattern at 1 MiB, zeroes at 4 MiB, the rest untouched"
say "PASS"
