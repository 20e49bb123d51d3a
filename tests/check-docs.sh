#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# check-docs.sh BUILD_DIR: build the API reference (target docs: Doxygen over
# the public headers) and fail on any warning doxygen prints (the Doxyfile
# also sets WARN_AS_ERROR).  Exits 77 when doxygen was not found at
# configure time (then there is no docs target).
set -euo pipefail
build=$1
if [[ ! -f $build/docs/api/Doxyfile ]]; then
    echo "check-docs: SKIP: doxygen was not found when configuring (apt-get install doxygen)"
    exit 77
fi
log="${TMPDIR:-/tmp}/check-docs.$$"
trap 'rm -f "$log"' EXIT
status=0
cmake --build "$build" --target docs >"$log" 2>&1 || status=$?
warnings=$(grep -ciE 'warning|error' "$log" || true)
if ((status != 0 || warnings != 0)); then
    cat "$log"
    echo "check-docs: FAIL: doxygen exit status $status, $warnings warning or error lines"
    exit 1
fi
if [[ ! -f $build/docs/api/html/index.html ]]; then
    echo "check-docs: FAIL: no $build/docs/api/html/index.html"
    exit 1
fi
echo "check-docs: OK: $build/docs/api/html/index.html"
