#!/usr/bin/env bash
# retry-guest-crash.sh TRIES COMMAND [ARGS...]
#
# Run a QEMU migration test again when, and only when, the guest's kernel
# failed on its own (the test exits 3: an Oops, BUG or panic on the guest's
# console, or the guest stopped making progress with nothing outstanding on
# its disk: every request completed and seen, see stalled in
# lib-rounds.sh), at most TRIES times in all; any other result is final at
# once.
#
# Why: under QEMU 7.2's TCG, live migration now and then corrupts guest
# memory, more often on a loaded host: the guest's kernel dies soon after a
# migration with list corruption or a NULL call, or hangs.  It happens the same with
# QEMU's own virtio-blk (-device virtio-blk-pci, no vhost-user at all) and
# with guest RAM in a memfd, a /dev/shm file, shared or not, so it is not
# the back-end's doing; a wrong byte in the guest's data, an I/O error, or
# a hang with requests outstanding or a completion not signalled would be,
# and is never retried.  Each retry is reported.
set -uo pipefail

if [[ $# -lt 2 || ! $1 =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 TRIES COMMAND [ARGS...]" >&2
    exit 2
fi
tries=$1
shift
for ((t = 1; t <= tries; t++)); do
    "$@"
    rc=$?
    ((rc == 3)) || exit "$rc"
    echo "retry-guest-crash: try $t of $tries: the guest's kernel failed (crash or stall)" \
         "(QEMU TCG; see this script's header)" >&2
done
echo "retry-guest-crash: the guest's kernel failed in all $tries tries" >&2
exit 1
