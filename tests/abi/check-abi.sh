#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# check-abi.sh LIB BASELINE HEADERS_DIR SOURCE_DIR
#
# Compare LIB's ABI (abi-dump.sh) with the committed BASELINE (abidiff).
# Any difference fails: an incompatible one needs a soname bump, and every
# change, compatible ones (a new function) included, needs the baseline
# updated in the same commit:
#     cmake --build build --target abi-baseline
# (docs/abi.md, "The ABI check").  Exit 77 (skipped) when abigail-tools
# are missing or LIB has no debug info.
set -euo pipefail

if [[ $# -ne 4 ]]; then
    echo "usage: $0 LIB BASELINE HEADERS_DIR SOURCE_DIR" >&2
    exit 2
fi
lib=$1
baseline=$2
here=$(cd "$(dirname "$0")" && pwd)
name=$(basename "$baseline")

if ! command -v abidiff >/dev/null; then
    echo "check-abi: abidiff not found (Debian: apt-get install abigail-tools)" >&2
    exit 77
fi
[[ -f $baseline ]] || {
    echo "check-abi: no baseline $baseline: cmake --build BUILD --target abi-baseline" >&2
    exit 1
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vhu-abi.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
rc=0
"$here/abi-dump.sh" "$lib" "$3" "$4" "$tmp/current.abi" || rc=$?
((rc == 0)) || exit "$rc"

rc=0
abidiff "$baseline" "$tmp/current.abi" >"$tmp/report" 2>"$tmp/errors" || rc=$?
# abidiff reads a baseline it cannot parse as an empty one and may still
# exit 0: anything on its stderr fails the check.
if [[ -s $tmp/errors ]]; then
    cat "$tmp/errors" >&2
    echo "check-abi: abidiff could not read $baseline or the current ABI (above)" >&2
    exit 1
fi
if ((rc == 0)); then
    echo "check-abi: $(basename "$lib") matches $name"
    exit 0
fi
cat "$tmp/report"
if ((rc & 3)); then
    echo "check-abi: abidiff failed (exit $rc)" >&2
    exit 1
fi
if ((rc & 8)); then
    echo "check-abi: FAIL: $(basename "$lib") breaks the ABI of $name (above)." \
        "An incompatible change needs a soname bump (docs/abi.md, \"Sonames\")," \
        "a CHANGELOG line and a new baseline." >&2
else
    echo "check-abi: FAIL: $(basename "$lib") differs from $name (above)." \
        "abidiff does not rate it incompatible; check it against docs/abi.md all the" \
        "same (a struct field anywhere but at the end of a sized struct is a break)." \
        "If it is intended and allowed (a new function in a new version node, a field" \
        "at the end of a sized struct), update the baseline in the same commit:" \
        "cmake --build BUILD --target abi-baseline (docs/abi.md, \"The ABI check\")." >&2
fi
exit 1
