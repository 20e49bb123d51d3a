#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# test-install.sh BUILD_DIR INSTALL_TEST_DIR
#
# Install a vhu build into a scratch prefix and build a small consumer
# (INSTALL_TEST_DIR/consumer.c) against the installed tree only, the three
# ways a user would: cc + pkg-config, find_package(vhu) with vhu::vhu, and
# find_package(vhu) with vhu::vhu_static.  Each program is run.
set -euo pipefail

if [[ $# -ne 2 ]]; then
    echo "usage: $0 BUILD_DIR INSTALL_TEST_DIR" >&2
    exit 2
fi
build=$(cd "$1" && pwd)
testdir=$(cd "$2" && pwd)

say() { echo "test-install: $*"; }
die() {
    echo "test-install: FAIL: $*" >&2
    exit 1
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vhu-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
log=$tmp/log

# Run a command quietly; on failure show its output and stop.
run() {
    if ! "$@" >"$log" 2>&1; then
        echo "test-install: FAIL: $*" >&2
        cat "$log" >&2
        exit 1
    fi
}

[[ -f $build/CMakeCache.txt ]] || die "$build is not a CMake build directory"
[[ -f $testdir/consumer.c ]] || die "$testdir/consumer.c missing"
[[ -f $testdir/consumer/CMakeLists.txt ]] || die "$testdir/consumer/CMakeLists.txt missing"

# A sanitizer build of the library needs a sanitizer-linked consumer.
san_flags=""
if grep -q 'VHU_SANITIZE:BOOL=ON' "$build/CMakeCache.txt"; then
    san_flags="-fsanitize=address,undefined"
    say "library built with sanitizers: consumers use $san_flags"
fi

# --- Install -------------------------------------------------------------
say "installing $build into $prefix"
run cmake --install "$build" --prefix "$prefix"

# --- The installed tree ----------------------------------------------------
find_one() { # find_one NAME: the single installed file called NAME
    local hits
    hits=$(find "$prefix" -name "$1" \( -type f -o -type l \))
    [[ -n $hits ]] || die "installed tree has no $1"
    [[ $(wc -l <<<"$hits") -eq 1 ]] || die "installed tree has several $1: $hits"
    echo "$hits"
}
for h in vhu.h common.h protocol.h device.h backend.h frontend.h; do
    [[ -f $prefix/include/vhu/$h ]] || die "missing $prefix/include/vhu/$h"
done
so=$(find_one libvhu.so)
ar=$(find_one libvhu.a)
pc=$(find_one vhu.pc)
cfg=$(find_one vhuConfig.cmake)
libdir=$(dirname "$so")
[[ $(dirname "$ar") == "$libdir" ]] || die "libvhu.a ($ar) is not next to libvhu.so ($so)"
[[ -e $libdir/libvhu.so.0 ]] || die "no soname link libvhu.so.0 in $libdir"
[[ $(readlink -f "$so") == "$(readlink -f "$libdir/libvhu.so.0")" ]] ||
    die "libvhu.so and libvhu.so.0 are different files"
[[ -f $(dirname "$cfg")/vhuConfigVersion.cmake ]] || die "no vhuConfigVersion.cmake next to $cfg"
[[ -f $(dirname "$cfg")/vhuTargets.cmake ]] || die "no vhuTargets.cmake next to $cfg"
# Private headers stay private.
if find "$prefix/include" -name 'internal.h' -o -name 'wire.h' | grep -q .; then
    die "private headers installed under $prefix/include"
fi
say "installed: ${so#"$prefix"/}, ${ar#"$prefix"/}, ${pc#"$prefix"/}, ${cfg#"$prefix"/}, include/vhu/*.h"

status=0

# --- (a) cc + pkg-config -----------------------------------------------------
export PKG_CONFIG_PATH
PKG_CONFIG_PATH=$(dirname "$pc")
pkgconf=(pkg-config)
version=$("${pkgconf[@]}" --modversion vhu) || die "pkg-config cannot read $pc"
say "pkg-config: vhu $version"
pc_includedir=$("${pkgconf[@]}" --variable=includedir vhu)
pc_libdir=$("${pkgconf[@]}" --variable=libdir vhu)
if [[ $(readlink -m "$pc_includedir") != "$(readlink -m "$prefix/include")" ||
    $(readlink -m "$pc_libdir") != "$(readlink -m "$libdir")" ]]; then
    echo "test-install: FAIL: vhu.pc does not follow the install prefix:" \
        "includedir=$pc_includedir libdir=$pc_libdir, but installed under $prefix" >&2
    echo "test-install:       (vhu.pc has the configure-time CMAKE_INSTALL_PREFIX" \
        "baked in; carrying on with --define-variable=prefix=$prefix)" >&2
    status=1
    pkgconf=(pkg-config "--define-variable=prefix=$prefix")
fi
read -r -a pc_cflags <<<"$("${pkgconf[@]}" --cflags vhu)"
read -r -a pc_libs <<<"$("${pkgconf[@]}" --libs vhu)"
read -r -a san <<<"$san_flags"
say "cc ${san[*]} ${pc_cflags[*]} consumer.c ${pc_libs[*]}"
run cc -Wall -Werror "${san[@]}" "${pc_cflags[@]}" "$testdir/consumer.c" -o "$tmp/consumer-pc" \
    "${pc_libs[@]}"
# It must use the installed library, not one from the build tree.
resolved=$(LD_LIBRARY_PATH=$libdir ldd "$tmp/consumer-pc" | awk '$1 ~ /^libvhu\.so/ { print $3 }')
[[ $(readlink -f "$resolved") == "$(readlink -f "$so")" ]] ||
    die "consumer-pc resolves libvhu to '$resolved', not the installed $so"
out=$(LD_LIBRARY_PATH=$libdir "$tmp/consumer-pc") || die "consumer-pc failed: $out"
grep -q 'consumer: ok' <<<"$out" || die "consumer-pc output: $out"
say "pkg-config consumer ran: $(head -1 <<<"$out")"

# --- (b) find_package(vhu): vhu::vhu and vhu::vhu_static ---------------------
cbuild=$tmp/consumer-build
say "configuring tests/install/consumer with CMAKE_PREFIX_PATH=$prefix"
run cmake -S "$testdir/consumer" -B "$cbuild" \
    -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
    -DCMAKE_C_FLAGS="$san_flags" \
    -DCMAKE_EXE_LINKER_FLAGS="$san_flags"
vhu_dir=$(sed -n 's/^vhu_DIR:PATH=//p' "$cbuild/CMakeCache.txt")
[[ $(readlink -f "$vhu_dir") == "$(readlink -f "$(dirname "$cfg")")" ]] ||
    die "find_package(vhu) found '$vhu_dir', not the installed $(dirname "$cfg")"
run cmake --build "$cbuild"
out=$(LD_LIBRARY_PATH=$libdir "$cbuild/consumer") || die "cmake consumer failed: $out"
grep -q 'consumer: ok' <<<"$out" || die "cmake consumer output: $out"
readelf -d "$cbuild/consumer" | grep -q 'NEEDED.*libvhu\.so\.0' ||
    die "cmake consumer does not link libvhu.so.0"
say "find_package consumer (vhu::vhu) ran"

out=$("$cbuild/consumer_static") || die "static consumer failed: $out"
grep -q 'consumer: ok' <<<"$out" || die "static consumer output: $out"
if readelf -d "$cbuild/consumer_static" | grep -q 'NEEDED.*libvhu'; then
    die "consumer_static still needs libvhu.so"
fi
say "find_package consumer (vhu::vhu_static) ran without libvhu.so"

if ((status)); then
    die "see above"
fi
say "all consumers built and ran against the installed tree"
