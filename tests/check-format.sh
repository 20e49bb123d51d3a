#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# check-format.sh [SOURCE_DIR]: every C file of vhu is as clang-format
# (.clang-format at the top) would write it; prints the first differences
# and exits 1 otherwise, 77 when clang-format is missing.  To fix:
#   clang-format -i $(git ls-files '*.c' '*.h')
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"
cf=$(command -v clang-format || command -v clang-format-14 || true)
if [[ -z $cf ]]; then
    echo "check-format: SKIP: no clang-format (apt-get install clang-format)"
    exit 77
fi
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    mapfile -t files < <(git ls-files '*.c' '*.h')
else
    mapfile -t files < <(find src cli examples tests -name '*.[ch]' | sort)
fi
bad=0
for f in "${files[@]}"; do
    if ! "$cf" --style=file "$f" | diff -u "$f" - >"${TMPDIR:-/tmp}/check-format.$$" 2>&1; then
        if ((bad < 5)); then
            head -n 20 "${TMPDIR:-/tmp}/check-format.$$"
        fi
        bad=$((bad + 1))
    fi
done
rm -f "${TMPDIR:-/tmp}/check-format.$$"
if ((bad)); then
    echo "check-format: FAIL: $bad of ${#files[@]} files differ from clang-format's output" \
         "(clang-format -i FILE fixes one)"
    exit 1
fi
echo "check-format: ${#files[@]} files as clang-format writes them"
