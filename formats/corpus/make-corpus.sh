#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# make-corpus.sh BUILD_DIR
#
# Adds the current build's snapshots to the golden corpus (formats/corpus/).
# Run it when the snapshot format or a section version changes (see
# README.md here): each snapshot is named after what its header says —
# DEVICE-fFORMAT-SECTIONvVERSION-... .vhus — so a new version gets new files
# and the old ones stay, as the regression test needs.  An existing file of
# the same name is left alone (the same versions wrote it); --force rewrites.
set -euo pipefail

force=0
if [[ ${1:-} == --force ]]; then
    force=1
    shift
fi
if [[ $# -ne 1 ]]; then
    echo "usage: $0 [--force] BUILD_DIR" >&2
    exit 2
fi
build=$1
vs=$build/cli/vhu-state
testdev=$build/examples/vhu-testdev
blk=$build/examples/vhu-blk
ringsave=$build/tests/vhu-ringsave
here=$(cd "$(dirname "$0")" && pwd)
for p in "$vs" "$testdev" "$blk" "$ringsave"; do
    [[ -x $p ]] || { echo "make-corpus: $p is not built" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vhu-corpus.XXXXXX")
pid=
cleanup() {
    if [[ -n $pid ]]; then
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# capture TAG PROGRAM ARGS...: serve the device with these options, capture
# it, name the snapshot from its header.  With $restore_args set, also
# write NAME.args: the ARGS test-vhu-state-corpus.sh restores it into.
# With $rings set (RING:SIZE:BASE words), vhu-ringsave saves it instead of
# vhu-state capture, with those rings stopped at those bases.
restore_args=
rings=
capture() {
    local tag=$1
    shift
    rm -f "$tmp/s"
    "$@" --socket "$tmp/s" >"$tmp/log" 2>&1 &
    pid=$!
    for ((i = 0; i < 50; i++)); do
        [[ -S $tmp/s ]] && break
        sleep 0.1
    done
    if [[ -n $rings ]]; then
        # shellcheck disable=SC2086 # one word per ring
        "$ringsave" "$tmp/s" "$tmp/snap.vhus" $rings
    else
        "$vs" capture --socket "$tmp/s" -o "$tmp/snap.vhus" >/dev/null
    fi
    kill -TERM "$pid"
    wait "$pid" || true
    pid=
    # DEVICE-fFORMAT-SECTIONvV-... from the header (section names sorted).
    local hdr name
    hdr=$("$vs" inspect --header-only "$tmp/snap.vhus")
    name=$(sed -n 's/^device: *//p' <<<"$hdr")-f$(sed -n 's/^format: *//p' <<<"$hdr")
    name=$name-$(awk '/^  [^ ]+ +version [0-9]+/ {print $1 "v" $3}' <<<"$hdr" | sort |
                 paste -sd- -)
    name=$name${tag:+-$tag}.vhus
    if [[ -e $here/$name && $force -eq 0 ]]; then
        echo "make-corpus: $name exists (kept)"
    else
        cp "$tmp/snap.vhus" "$here/$name"
        echo "make-corpus: wrote $name ($(stat -c %s "$here/$name") bytes): $(basename "$1")" \
             "${*:2}"
        if [[ -n $restore_args ]]; then
            echo "$restore_args" >"$here/${name%.vhus}.args"
            echo "make-corpus: wrote ${name%.vhus}.args: $restore_args"
        fi
    fi
}

# The test device in each shape its state can take: the current sections,
# config as version 1 wrote it, without the optional stats section, and
# empty.  Same queue count as the test's back-end (the default, 2): the
# handler record carries it.
capture full "$testdev" --blob-size 2048 --label corpus
capture old-config "$testdev" --blob-size 1024 --config-version 1
capture no-stats "$testdev" --blob-size 100 --label no-stats --no-stats
capture empty "$testdev"
# Section records carrying their fields' declarations (builds after 0.1.0).
capture declared "$testdev" --blob-size 512 --label declared

# vhu-blk with a 64 KiB RAM disk (its contents are its device state),
# initialised with a text line per sector.  The corpus test restores it
# into `vhu-blk --ram 64K` (the size must match).
for ((i = 0; i < 128; i++)); do
    printf '%-511s\n' "vhu corpus sector $i"
done >"$tmp/disk.img"
capture ram64k "$blk" --ram 64K --image "$tmp/disk.img"
capture declared-ram64k "$blk" --ram 64K --image "$tmp/disk.img"
# The same disk on packed rings (--packed): format 2, whose handler record
# (version 2) carries each ring's layout, wrap counters and used position.
restore_args="--packed --ram 64K"
capture packed-ram64k "$blk" --packed --ram 64K --image "$tmp/disk.img"
# ... with ring 0 (16 entries) stopped where 34 descriptors were taken and
# 30 used: avail position 2, wrap counter 1; used position 14, wrap
# counter 0 (base 0x000e8002): every ring field differs from a fresh ring's.
rings="0:16:0x000e8002"
capture packed-ring16-ram64k "$blk" --packed --ram 64K --image "$tmp/disk.img"
rings=
restore_args=

# vhu-blk on a 1 MiB image with a serial: its state is the disk's identity
# (section config), not its data, so it restores into any vhu-blk on an
# image of the same size with the same serial (the .args sidecar).
truncate -s 1M "$tmp/image.img"
restore_args="--image @image:1M --serial vhu-corpus-0001"
capture image1m-serial "$blk" --image "$tmp/image.img" --serial vhu-corpus-0001
restore_args=
"$vs" validate "$here"/*.vhus
