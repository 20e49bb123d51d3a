#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# abi-dump.sh LIB HEADERS_DIR SOURCE_DIR OUT
#
# Write LIB's ABI as libabigail XML to OUT (abidw), reduced to what
# docs/abi.md calls ABI and stripped of what depends on the build rather
# than on the code: exported symbols only, types from the public headers
# (HEADERS_DIR) only, no source locations, no compilation or corpus paths,
# translation-unit paths relative to SOURCE_DIR, hash type ids.  A
# RelWithDebInfo build and a Debug ASan build give the same file.  LIB must
# carry DWARF (-g); exit 77 when it has none or abidw is missing.
set -euo pipefail

if [[ $# -ne 4 ]]; then
    echo "usage: $0 LIB HEADERS_DIR SOURCE_DIR OUT" >&2
    exit 2
fi
lib=$1
headers=$2
src=$(cd "$3" && pwd)
out=$4

if ! command -v abidw >/dev/null; then
    echo "abi-dump: abidw not found (Debian: apt-get install abigail-tools)" >&2
    exit 77
fi
[[ -f $lib ]] || {
    echo "abi-dump: $lib: no such file" >&2
    exit 1
}
# (Read whole before grep: grep -q ending a pipe early would fail it under
# pipefail.)
sections=$(readelf -S "$lib")
if ! grep -q '\.debug_info' <<<"$sections"; then
    echo "abi-dump: $lib has no debug info: build with -g (RelWithDebInfo or Debug)" >&2
    exit 77
fi

tmp=$(mktemp "${TMPDIR:-/tmp}/vhu-abi.XXXXXX")
trap 'rm -f "$tmp"' EXIT
abidw --no-corpus-path --no-comp-dir-path --no-show-locs --no-elf-needed \
    --headers-dir "$headers" --drop-private-types --drop-undefined-syms \
    --type-id-style hash --out-file "$tmp" "$lib"
# abidiff knows the file by its first bytes, "<abi-corpus": the licence line
# and the note go just inside it.
sed -e "s|path='$src/|path='|" -e "1a\\
  <!-- SPDX-License-Identifier: BSD-3-Clause -->\\
  <!-- Written by tests/abi/abi-dump.sh, the build target abi-baseline (docs/abi.md); do not edit. -->" \
    "$tmp" >"$out"
