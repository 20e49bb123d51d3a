#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# test-install.sh BUILD_DIR INSTALL_TEST_DIR
#
# Install a vhu build into a scratch prefix and build two small consumers
# against the installed tree only: a back-end (INSTALL_TEST_DIR/consumer.c,
# libvhu alone) and a front-end (consumer_fe.c, libvhu-fe), the ways a user
# would: cc + pkg-config (vhu, vhu-fe), and find_package(vhu) with vhu::vhu,
# vhu::vhu_static, vhu::vhu-fe and vhu::vhu-fe_static.  Each program is run;
# the back-end ones must not need libvhu-fe.
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
[[ -f $testdir/consumer_fe.c ]] || die "$testdir/consumer_fe.c missing"
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
fe_so=$(find_one libvhu-fe.so)
fe_ar=$(find_one libvhu-fe.a)
fe_pc=$(find_one vhu-fe.pc)
cfg=$(find_one vhuConfig.cmake)
libdir=$(dirname "$so")
for f in "$ar" "$fe_so" "$fe_ar"; do
    [[ $(dirname "$f") == "$libdir" ]] || die "$f is not next to libvhu.so ($so)"
done
[[ $(dirname "$fe_pc") == "$(dirname "$pc")" ]] || die "vhu-fe.pc ($fe_pc) is not next to $pc"
for l in libvhu libvhu-fe; do
    [[ -e $libdir/$l.so.0 ]] || die "no soname link $l.so.0 in $libdir"
    [[ $(readlink -f "$libdir/$l.so") == "$(readlink -f "$libdir/$l.so.0")" ]] ||
        die "$l.so and $l.so.0 are different files"
    soname=$(readelf -d "$libdir/$l.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
    [[ $soname == "$l.so.0" ]] || die "$l.so has soname '$soname', not $l.so.0"
done
# libvhu-fe builds on libvhu; libvhu knows nothing of libvhu-fe.  (The
# dynamic sections are read whole first: grep -q ending a pipe early fails
# it under pipefail.)
needs() { # needs FILE REGEX: FILE has a DT_NEEDED entry matching REGEX
    local dyn
    dyn=$(readelf -d "$1")
    grep -q "NEEDED.*$2" <<<"$dyn"
}
needs "$fe_so" '\[libvhu\.so\.0\]' || die "libvhu-fe.so does not need libvhu.so.0"
if needs "$so" 'libvhu-fe'; then
    die "libvhu.so needs libvhu-fe"
fi
[[ -f $(dirname "$cfg")/vhuConfigVersion.cmake ]] || die "no vhuConfigVersion.cmake next to $cfg"
[[ -f $(dirname "$cfg")/vhuTargets.cmake ]] || die "no vhuTargets.cmake next to $cfg"
# Private headers stay private.
if find "$prefix/include" -name 'internal.h' -o -name 'wire.h' | grep -q .; then
    die "private headers installed under $prefix/include"
fi
say "installed: ${so#"$prefix"/}, ${ar#"$prefix"/}, ${fe_so#"$prefix"/}, ${fe_ar#"$prefix"/}," \
    "${pc#"$prefix"/}, ${fe_pc#"$prefix"/}, ${cfg#"$prefix"/}, include/vhu/*.h"

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
read -r -a san <<<"$san_flags"

# pc_consumer MODULE SOURCE EXE LIB...: build SOURCE with pkg-config MODULE,
# run it, and check that it resolves each LIB (a soname stem) to the
# installed file.
pc_consumer() {
    local module=$1 src=$2 exe=$3
    shift 3
    local cflags libs out lib resolved
    read -r -a cflags <<<"$("${pkgconf[@]}" --cflags "$module")"
    read -r -a libs <<<"$("${pkgconf[@]}" --libs "$module")"
    say "cc ${san[*]} ${cflags[*]} $(basename "$src") ${libs[*]}"
    run cc -Wall -Werror "${san[@]}" "${cflags[@]}" "$src" -o "$tmp/$exe" "${libs[@]}"
    # It must use the installed libraries, not ones from the build tree.
    for lib in "$@"; do
        resolved=$(LD_LIBRARY_PATH=$libdir ldd "$tmp/$exe" |
            awk -v l="$lib" '$1 == l ".so.0" { print $3 }')
        [[ $(readlink -f "$resolved") == "$(readlink -f "$libdir/$lib.so.0")" ]] ||
            die "$exe resolves $lib to '$resolved', not the installed $libdir/$lib.so.0"
    done
    out=$(LD_LIBRARY_PATH=$libdir "$tmp/$exe") || die "$exe failed: $out"
    grep -q 'consumer.*: ok' <<<"$out" || die "$exe output: $out"
    say "pkg-config $module consumer ran: $(head -1 <<<"$out")"
}
pc_consumer vhu "$testdir/consumer.c" consumer-pc libvhu
if needs "$tmp/consumer-pc" 'libvhu-fe'; then
    die "the back-end consumer (pkg-config vhu) needs libvhu-fe"
fi
[[ $(readlink -m "$("${pkgconf[@]}" --variable=libdir vhu-fe)") == "$(readlink -m "$libdir")" ]] ||
    die "vhu-fe.pc's libdir is not the installed $libdir"
pc_consumer vhu-fe "$testdir/consumer_fe.c" consumer-fe-pc libvhu-fe libvhu
[[ $("${pkgconf[@]}" --modversion vhu-fe) == "$version" ]] ||
    die "vhu-fe.pc and vhu.pc give different versions"

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
needs "$cbuild/consumer" 'libvhu\.so\.0' ||
    die "cmake consumer does not link libvhu.so.0"
if needs "$cbuild/consumer" 'libvhu-fe'; then
    die "cmake consumer (vhu::vhu) needs libvhu-fe"
fi
say "find_package consumer (vhu::vhu) ran"

out=$("$cbuild/consumer_static") || die "static consumer failed: $out"
grep -q 'consumer: ok' <<<"$out" || die "static consumer output: $out"
if needs "$cbuild/consumer_static" 'libvhu'; then
    die "consumer_static still needs libvhu.so"
fi
say "find_package consumer (vhu::vhu_static) ran without libvhu.so"

out=$(LD_LIBRARY_PATH=$libdir "$cbuild/consumer_fe") || die "cmake consumer_fe failed: $out"
grep -q 'consumer-fe: ok' <<<"$out" || die "cmake consumer_fe output: $out"
needs "$cbuild/consumer_fe" 'libvhu-fe\.so\.0' ||
    die "cmake consumer_fe does not link libvhu-fe.so.0"
say "find_package consumer (vhu::vhu-fe) ran"

out=$("$cbuild/consumer_fe_static") || die "static consumer_fe failed: $out"
grep -q 'consumer-fe: ok' <<<"$out" || die "static consumer_fe output: $out"
if needs "$cbuild/consumer_fe_static" 'libvhu'; then
    die "consumer_fe_static still needs a libvhu*.so"
fi
say "find_package consumer (vhu::vhu-fe_static) ran without libvhu*.so"

if ((status)); then
    die "see above"
fi
say "all consumers built and ran against the installed tree"
