#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The main job: install what is missing, build vhu, and serve a virtio-blk
# disk (examples/blk, vhu-blk) on a vhost-user socket until Ctrl-C, printing
# the QEMU command line that attaches it.
#   examples/run.sh [SOCKET [IMAGE]]
#   (defaults: /tmp/vhu-blk.sock and /tmp/vhu-blk.img, a 64 MiB sparse image
#    made if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
tests/setup-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
sock=${1:-/tmp/vhu-blk.sock}
image=${2:-/tmp/vhu-blk.img}
if [ ! -e "$image" ]; then
  # A scratch disk, with the marker the demo guest looks for in sector 0.
  truncate -s 64M "$image"
  printf 'vhu-blk host marker' | dd of="$image" conv=notrunc status=none
fi
# A tiny guest to boot on it (Debian's kernel and busybox, unpacked from
# their packages; the test suite's guest writes and checks a pattern).
guest=build/qemu-guest
tests/qemu/build-guest.sh "$guest" >/dev/null 2>&1 || guest=
cat <<MSG
built vhu; serving $image on $sock.  Attach QEMU (in another terminal):

  qemu-system-x86_64 -machine pc,accel=tcg -cpu qemu64 -m 256M -nographic -no-reboot \\
    -object memory-backend-memfd,id=mem,size=256M,share=on -numa node,memdev=mem \\
    -chardev socket,id=c0,path=$sock -device vhost-user-blk-pci,chardev=c0 \\
MSG
if [ -n "$guest" ]; then
  echo "    -kernel $(pwd)/$guest/vmlinuz -initrd $(pwd)/$guest/initrd.gz -append console=ttyS0"
  echo
  echo "(that guest checks the marker in sector 0, writes a pattern with O_DIRECT, reads it"
  echo " back, discards a range, prints VHU-BLK-GUEST: PASS and powers off; it overwrites"
  echo " part of the disk: give it a scratch image, or boot your own kernel instead)"
else
  echo "    -kernel YOUR_KERNEL -initrd YOUR_INITRD -append console=ttyS0"
fi
echo
echo "Or look at the disk with the front-end library:"
echo "  $(pwd)/build/examples/vhu-probe --socket $sock --config-size 60"
exec build/examples/vhu-blk --socket "$sock" --image "$image"
