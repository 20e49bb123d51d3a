#!/bin/busybox sh
# SPDX-License-Identifier: BSD-3-Clause
# /init of the QEMU tests' guest.  It loads the virtio-blk driver, then does
# what the kernel command line's vhu.mode= asks for on /dev/vda (the vhu-blk
# disk), reporting on the serial console:
#
# vhu.mode=boot (the default; test-qemu-boot.sh)
#   - read the host's marker from sector 0,
#   - write /pattern at 1 MiB with O_DIRECT, read it back with O_DIRECT
#     and compare,
#   - discard 64 KiB at 4 MiB (the host filled it with 0xff) and read zeroes,
#   - with vhu.resize=1: wait for the disk to grow by 1 MiB (the host
#     resizes it and sends vhu-blk SIGHUP) and read the new MiB's first
#     sector,
#   then PASS and power off.  The host checks the image afterwards.
#
# vhu.mode=rounds (test-qemu-migrate.sh, test-qemu-reconnect.sh)
#   Rounds n = 1, 2, ...: write round n's data (4 MiB at 1 MiB, see
#   round_data) with O_DIRECT, read it back with O_DIRECT, compare, print
#   "VHU-BLK-GUEST: round n ok".  Before each round, sector 0 is read with
#   O_DIRECT: once the host wrote "vhu-stop" there, the guest prints
#   "VHU-BLK-GUEST: PASS after N rounds" (N the last round written) and
#   powers off.  vhu.rounds=MAX (default 100000) stops it after MAX rounds
#   with a FAIL.  Any error is a FAIL and a power-off.
#
# vhu.mode=find vhu.find=LO:HI (test-qemu-snapshot.sh)
#   the disk was loaded from a snapshot taken during rounds: find which
#   round's data it holds at 1 MiB (see the case below), then PASS.

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

mode=boot
maxrounds=100000
resize=0
find=
for arg in $(cat /proc/cmdline); do
    case $arg in
    vhu.mode=*) mode=${arg#vhu.mode=} ;;
    vhu.rounds=*) maxrounds=${arg#vhu.rounds=} ;;
    vhu.resize=*) resize=${arg#vhu.resize=} ;;
    vhu.find=*) find=${arg#vhu.find=} ;;
    esac
done

# The host grows the disk by 1 MiB whose first sector says "vhu-blk grown".
check_resize() {
    sectors=$(cat /sys/block/vda/size)
    echo "VHU-BLK-GUEST: waiting for a resize"
    i=0
    while [ "$(cat /sys/block/vda/size)" = "$sectors" ]; do
        i=$((i + 1))
        [ $i -le 600 ] || fail "the disk still has $sectors sectors after 60 s"
        sleep 0.1
    done
    grown=$(cat /sys/block/vda/size)
    echo "VHU-BLK-GUEST: resized to $grown sectors"
    [ "$grown" -eq $((sectors + 2048)) ] || fail "expected $((sectors + 2048)) sectors"
    tail=$(dd if=/dev/vda bs=512 skip="$sectors" count=1 iflag=direct 2>/dev/null | head -c 13)
    [ "$tail" = "vhu-blk grown" ] || fail "the new MiB's first sector reads '$tail'"
}

# round_data N: round N's 4 MiB on stdout.  MiB i of it is /pattern
# rotated by ((N * 4 + i) % 2048) sectors, so every round's data differs
# from every other's in each sector (the host rebuilds it the same way).
round_data() {
    local i s
    for i in 0 1 2 3; do
        s=$((($1 * 4 + i) % 2048))
        dd if=/pattern bs=512 skip=$s 2>/dev/null
        [ $s -eq 0 ] || dd if=/pattern bs=512 count=$s 2>/dev/null
    done
}

case $mode in
boot)
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

    # With vhu.resize=1 (test-qemu-boot.sh): the host grows the image by
    # 1 MiB (its first sector says so) and sends vhu-blk SIGHUP; the new
    # capacity must reach the guest.
    if [ "$resize" = 1 ]; then
        check_resize
    fi
    echo "VHU-BLK-GUEST: PASS"
    ;;
rounds)
    n=0
    while :; do
        flag=$(dd if=/dev/vda bs=512 count=1 iflag=direct 2>/dev/null | head -c 8) ||
            fail "O_DIRECT read of sector 0 after round $n"
        [ "$flag" = "vhu-stop" ] && break
        [ $n -ge "$maxrounds" ] && fail "no stop from the host after $n rounds"
        n=$((n + 1))
        round_data $n >/round
        dd if=/round of=/dev/vda bs=65536 seek=16 oflag=direct conv=fsync 2>/dev/null ||
            fail "O_DIRECT write in round $n"
        dd if=/dev/vda of=/readback bs=65536 skip=16 count=64 iflag=direct 2>/dev/null ||
            fail "O_DIRECT read in round $n"
        cmp /round /readback >/dev/null || fail "round $n: read back differs from what was written"
        echo "VHU-BLK-GUEST: round $n ok"
    done
    echo "VHU-BLK-GUEST: PASS after $n rounds"
    ;;
find)
    # vhu.find=LO:HI: the disk is a snapshot taken while rounds ran
    # (test-qemu-snapshot.sh).  At 1 MiB it must hold round n (LO <= n <=
    # HI) whole, or round n's first D bytes and round n-1's rest, D a
    # multiple of 512 (the snapshot caught round n's writes part done, at a
    # request boundary).  Prints "found round n" or "found rounds n (D
    # bytes) and n-1", then PASS.
    lo=${find%:*}
    hi=${find#*:}
    [ -n "$lo" ] && [ -n "$hi" ] && [ "$lo" -le "$hi" ] || fail "vhu.find=$find is not LO:HI"
    dd if=/dev/vda of=/readback bs=65536 skip=16 count=64 iflag=direct 2>/dev/null ||
        fail "O_DIRECT read"
    n=$hi
    found=
    while [ "$n" -ge "$lo" ]; do
        round_data "$n" >/round
        if cmp -s /readback /round; then
            found="round $n"
            break
        fi
        # "FILE FILE differ: char C, line L": C is 1-based.
        d=$(cmp /readback /round 2>/dev/null | sed -n 's/.* char \([0-9]*\).*/\1/p')
        if [ -n "$d" ] && [ "$n" -gt "$lo" ]; then
            d=$((d - 1))
            d=$((d / 512 * 512))
            round_data $((n - 1)) >/previous
            if [ "$d" -gt 0 ] && cmp -s /readback /previous "$d" "$d"; then
                found="rounds $n ($d bytes) and $((n - 1))"
                break
            fi
        fi
        n=$((n - 1))
    done
    [ -n "$found" ] || fail "the disk holds no round from $lo to $hi at 1 MiB"
    echo "VHU-BLK-GUEST: found $found"
    echo "VHU-BLK-GUEST: PASS"
    ;;
*)
    fail "unknown vhu.mode=$mode"
    ;;
esac
poweroff -f
