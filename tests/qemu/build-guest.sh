#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# build-guest.sh CACHE_DIR
#
# The tiny guest of the QEMU boot test, built once into CACHE_DIR:
#   vmlinuz        Debian 12's kernel (linux-image-amd64's current image,
#                  fetched with apt-get download and unpacked with dpkg-deb)
#   initrd.gz      a busybox initramfs: busybox-static, the virtio modules
#                  the kernel needs for a virtio-blk disk, guest-init.sh as
#                  /init and a 1 MiB pattern file
#   pattern        that pattern, for the host's check after the guest ran
# Nothing is installed on the machine: both packages are only unpacked.
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 CACHE_DIR" >&2
    exit 2
fi
cache=$1
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
# ctest may run several QEMU tests at once: one builds, the others wait and
# then find the stamp (the pattern must match the initramfs that holds it).
exec 9>"$cache/.lock"
flock 9
# Rebuilt when this script or the guest's init changes.
stamp=$(cat "$0" "$here/guest-init.sh" | sha256sum | cut -c1-16)
if [[ -f $cache/stamp && $(cat "$cache/stamp") == "$stamp" && -f $cache/vmlinuz &&
      -f $cache/initrd.gz && -f $cache/pattern ]]; then
    exit 0
fi

work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT

# fetch PACKAGE: download and unpack a .deb into $work/PACKAGE.
fetch() {
    (cd "$work" && apt-get download "$1" >/dev/null 2>"$work/apt.err") || {
        echo "build-guest: apt-get download $1 failed:" >&2
        cat "$work/apt.err" >&2
        exit 1
    }
    dpkg-deb -x "$work/$1"_*.deb "$work/$1"
}

# linux-image-amd64 is a metapackage: its dependency is the real kernel.
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
       awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
if [[ -z $kpkg ]]; then
    echo "build-guest: cannot find the kernel package linux-image-amd64 depends on" \
         "(apt-get update?)" >&2
    exit 1
fi
fetch "$kpkg"
fetch busybox-static

kroot=$work/$kpkg
kver=$(ls "$kroot/lib/modules")
root=$work/initramfs
mkdir -p "$root"/{bin,dev,proc,sys,mods}
cp "$work/busybox-static/bin/busybox" "$root/bin/busybox"
# virtio-blk over PCI.  The package has no modules.dep (depmod makes it at
# install): each module's .modinfo names its dependencies, loaded first.
declare -A added=()
add_module() {
    local m=$1 f deps d
    [[ -n ${added[$m]:-} ]] && return 0
    added[$m]=1
    f=$(find "$kroot/lib/modules/$kver" -name "$m.ko*" | head -1)
    if [[ -z $f ]]; then
        echo "build-guest: module $m not in $kpkg" >&2
        exit 1
    fi
    case $f in
    *.ko) cp "$f" "$root/mods/$m.ko" ;;
    *.ko.xz) xz -dc "$f" >"$root/mods/$m.ko" ;;
    *.ko.zst) zstd -qdc "$f" >"$root/mods/$m.ko" ;;
    *) echo "build-guest: cannot unpack $f" >&2; exit 1 ;;
    esac
    deps=$(grep -a -o 'depends=[a-z0-9_,-]*' "$root/mods/$m.ko" | head -1 | cut -d= -f2)
    for d in ${deps//,/ }; do
        add_module "${d//-/_}"
    done
    echo "$m" >>"$root/mods/order"
}
add_module virtio_pci
add_module virtio_blk
cp "$here/guest-init.sh" "$root/init"
chmod +x "$root/init"
head -c $((1024 * 1024)) /dev/urandom >"$root/pattern"
(cd "$root" && find . | "$root/bin/busybox" cpio -o -H newc 2>/dev/null | gzip -9) >"$work/initrd.gz"

cp "$kroot/boot/vmlinuz-$kver" "$cache/vmlinuz"
cp "$work/initrd.gz" "$cache/initrd.gz"
cp "$root/pattern" "$cache/pattern"
echo "$kpkg" >"$cache/kernel"
echo "$stamp" >"$cache/stamp"
