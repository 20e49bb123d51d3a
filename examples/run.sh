#!/usr/bin/env bash
# The main job: install what is missing, build vhu, and serve the test device
# on a vhost-user socket until Ctrl-C.
#   examples/run.sh [SOCKET]        (default: /tmp/vhu-testdev.sock)
set -euo pipefail
cd "$(dirname "$0")/.."
tests/setup-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
sock=${1:-/tmp/vhu-testdev.sock}
echo "built vhu; in another terminal, attach a front-end:"
echo "  $(pwd)/build/examples/vhu-probe --socket $sock"
exec build/examples/vhu-testdev --socket "$sock"
