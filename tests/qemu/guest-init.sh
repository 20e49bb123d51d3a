#!/bin/busybox sh
# /init of the QEMU boot test's guest: load the virtio-blk driver, then on
# /dev/vda (the vhu-blk disk):
#   - read the host's marker from sector 0,
#   - write /pattern at 1 MiB with O_DIRECT, read it back with O_DIRECT
#     and compare,
#   - discard 64 KiB at 4 MiB (the host filled it with 0xff) and read zeroes,
# and report on the serial console.  The host checks the image afterwards.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev

fail() {
    echo "VHU-BLK-GUEST: FAIL: $*"
    poweroff -f
}

for m in $(cat /mods/order); do
    insmod "/mods/$m.ko" || fail "insmod $m"
done
i=0
while [ ! -b /dev/vda ]; do
    i=$((i + 1))
    [ $i -gt 100 ] && fail "no /dev/vda after 10 s"
    sleep 0.1
done
echo "VHU-BLK-GUEST: /dev/vda is $(cat /sys/block/vda/size) sectors"

marker=$(dd if=/dev/vda bs=512 count=1 iflag=direct 2>/dev/null | head -c 19)
[ "$marker" = "vhu-blk host marker" ] || fail "sector 0 reads '$marker'"

dd if=/pattern of=/dev/vda bs=65536 seek=16 oflag=direct conv=fsync 2>/dev/null ||
    fail "O_DIRECT write"
dd if=/dev/vda of=/readback bs=65536 skip=16 count=16 iflag=direct 2>/dev/null ||
    fail "O_DIRECT read"
cmp /pattern /readback || fail "read back differs from what was written"

blkdiscard -o $((4 * 1024 * 1024)) -l 65536 /dev/vda || fail "blkdiscard"
dd if=/dev/vda of=/discarded bs=65536 skip=64 count=1 iflag=direct 2>/dev/null ||
    fail "read after discard"
head -c 65536 /dev/zero >/zeroes
cmp /zeroes /discarded || fail "discarded range does not read as zeroes"

echo "VHU-BLK-GUEST: PASS"
poweroff -f
