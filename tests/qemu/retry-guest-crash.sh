#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# retry-guest-crash.sh TRIES COMMAND [ARGS...]
#
# Run a QEMU migration test again when, and only when, it exits 3: the
# guest failed (its kernel crashed, it stopped with its disk idle, or it
# reported a data mismatch or I/O error) AND the test's page-by-page
# comparison of guest memory at the switch-over (source frozen, destination
# not yet started) found pages that QEMU did not migrate, none of them in
# the disk's virtqueue (see guest_fault in lib-rounds.sh).  At most
# TRIES runs in all; any other result is final at once, and every retry is
# reported on stderr.
#
# Why: QEMU 7.2 under TCG now and then fails to migrate pages the guest's
# vCPU wrote (kernel memory that no device touches), more often on a busy
# host; the guest then dies with list corruption, hangs, or reads wrong
# data.  tests/qemu/soak-migrate.sh measured it with QEMU's own virtio-blk
# (no vhost-user) at the same rate as with vhu-blk and qemu-storage-daemon,
# and every such failure came with lost pages outside the virtqueue (docs/migration.md,
# "Live migration under QEMU: measured").  A failure without such evidence,
# a lost page in the virtqueue, or a stall with requests outstanding could
# be the back-end's, and is never retried.  What the back-end itself writes
# and logs is checked exactly, without QEMU, by test_blk_migrate.
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
    echo "retry-guest-crash: RETRY: try $t of $tries failed with guest pages QEMU did not" \
         "migrate (QEMU 7.2 TCG; see this script's header); running it again" >&2
done
echo "retry-guest-crash: the guest's kernel failed in all $tries tries" >&2
exit 1
