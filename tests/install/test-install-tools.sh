#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# test-install-tools.sh BUILD_DIR
#
# Install a vhu build into a scratch prefix and check that what the programs'
# users need beside them is where their tools look: the bash completion of
# vhu-state in share/bash-completion/completions/vhu-state (and that bash
# can source it from there); the man pages the build made (with pandoc) in
# share/man/man1, where `man NAME` finds them; the systemd unit of vhu-blk in
# lib/systemd/system, its ExecStart on the vhu-blk the install made (under
# the prefix the build was configured with).
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi
build=$(cd "$1" && pwd)

say() { echo "test-install-tools: $*"; }
die() {
    echo "test-install-tools: FAIL: $*" >&2
    exit 1
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vhu-install-tools.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

[[ -f $build/CMakeCache.txt ]] || die "$build is not a CMake build directory"
if ! cmake --install "$build" --prefix "$prefix" >"$tmp/log" 2>&1; then
    cat "$tmp/log" >&2
    die "cmake --install $build failed"
fi

comp=$prefix/share/bash-completion/completions/vhu-state
[[ -f $comp ]] || die "no $comp"
bash -c 'source "$1" && complete -p vhu-state' _ "$comp" >/dev/null ||
    die "$comp does not register a completion for vhu-state"
say "bash completion: $comp"

shopt -s nullglob
built=("$build"/docs/man/man1/*.1)
if [[ ${#built[@]} -eq 0 ]]; then
    say "no man pages in this build (pandoc missing when it was configured)"
else
    for page in "${built[@]}"; do
        name=$(basename "$page" .1)
        inst=$prefix/share/man/man1/$name.1
        cmp -s "$page" "$inst" || die "$name.1 is not installed as $inst"
        if command -v man >/dev/null; then
            MANPATH=$prefix/share/man man -w "$name" 2>/dev/null | grep -qx "$inst" ||
                die "man -w $name does not find $inst (MANPATH=$prefix/share/man)"
        fi
        say "man page: $inst"
    done
fi
if [[ -f $build/examples/systemd/vhu-blk@.service ]]; then
    unit=$prefix/lib/systemd/system/vhu-blk@.service
    cmp -s "$build/examples/systemd/vhu-blk@.service" "$unit" || die "no $unit"
    exe=$(grep -m1 '^ExecStart=' "$unit" | cut -d' ' -f1)
    exe=${exe#ExecStart=}
    configured=$(sed -n 's/^CMAKE_INSTALL_PREFIX:[A-Z]*=//p' "$build/CMakeCache.txt")
    [[ $exe == "$configured"/*/vhu-blk && -x $prefix/${exe#"$configured"/} ]] ||
        die "$unit: ExecStart $exe is not the installed vhu-blk (prefix $configured)"
    say "systemd unit: $unit (ExecStart=$exe)"
fi
say "PASS"
