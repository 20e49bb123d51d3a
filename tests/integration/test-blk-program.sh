#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# test-blk-program.sh VHU_BLK PROBE VHU_STATE
#
# The vhu-blk program: --help documents every option, bad command lines exit
# 2, an image and a RAM disk are served (vhu-probe sees the capacity, the
# queue count and the read-only bit), SIGTERM stops it cleanly; an
# image-backed disk's state (section config) is captured, inspected, loaded
# into a vhu-blk on the same image and refused, by name, by one on a resized
# image or with another serial, which keeps its fds and its state; on packed
# rings (--packed), the golden corpus's snapshot is inspected (its ring
# fields), restored and refused by a vhu-blk without --packed.
set -euo pipefail

if [[ $# -ne 3 ]]; then
    echo "usage: $0 VHU_BLK PROBE VHU_STATE" >&2
    exit 2
fi
blk=$1
probe=$2
vs=$3
say() { echo "test-blk-program: $*"; }
fail() {
    echo "test-blk-program: FAIL: $*" >&2
    exit 1
}

dir=$(mktemp -d "${TMPDIR:-/tmp}/vhu-blk-prog.XXXXXX")
pid=
cleanup() {
    if [[ -n $pid ]]; then
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
}
trap cleanup EXIT

# --- Command line -------------------------------------------------------------
out=$("$blk" --help) || fail "--help exited $?"
for opt in --socket --image --queues --read-only --ram --direct --serial; do
    grep -q -- "$opt" <<<"$out" || fail "--help does not document $opt"
done
expect_usage_error() {
    local r=0 o
    o=$("$blk" "$@" 2>&1) || r=$?
    ((r == 2)) || fail "vhu-blk $* exited $r (want 2): $o"
}
expect_usage_error
expect_usage_error --socket "$dir/s"                      # no disk
expect_usage_error --socket "$dir/s" --ram 100            # less than a sector
expect_usage_error --socket "$dir/s" --ram 1Q
expect_usage_error --socket "$dir/s" --ram 1M --queues 0
expect_usage_error --socket "$dir/s" --ram 1M --queues 65
expect_usage_error --socket "$dir/s" --ram 1M --serial ""
expect_usage_error --socket "$dir/s" --ram 1M --serial 123456789012345678901    # 21 bytes
r=0
o=$("$blk" --socket "$dir/s" --ram 1M --serial $'a\tb' 2>&1) || r=$?
((r == 1)) || fail "a serial with a tab exited $r (want 1): $o"
grep -q "byte 0x09 at 1" <<<"$o" || fail "the serial's bad byte not named: $o"
r=0
o=$("$blk" --socket "$dir/s" --image "$dir/missing.img" 2>&1) || r=$?
((r == 1)) || fail "a missing image exited $r (want 1): $o"
grep -q "cannot open" <<<"$o" || fail "a missing image was not named: $o"
r=0
o=$("$blk" --socket "$dir/s" --ram 1M --direct 2>&1) || r=$?
((r == 1)) || fail "--direct with --ram exited $r (want 1): $o"
grep -q -- "--direct is for an image" <<<"$o" || fail "--direct with --ram not explained: $o"
say "--help documents the options; bad command lines refused"

# serve ARGS...: start vhu-blk on $dir/s, wait until it listens.
serve() {
    # The old log goes first: the child truncates it only once it runs, and
    # the wait below must not find the previous vhu-blk's "listening on".
    rm -f "$dir/s" "$dir/out"
    "$blk" --socket "$dir/s" "$@" >"$dir/out" 2>&1 &
    pid=$!
    local i
    for ((i = 0; i < 200; i++)); do
        grep -q 'listening on' "$dir/out" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || fail "vhu-blk $* exited early: $(cat "$dir/out")"
        sleep 0.1
    done
    fail "vhu-blk $* not listening after 20 s"
}

stop() {
    kill -TERM "$pid"
    local r=0
    wait "$pid" || r=$?
    pid=
    ((r == 0)) || fail "vhu-blk exited $r after SIGTERM: $(cat "$dir/out")"
    [[ ! -e $dir/s ]] || fail "socket left behind"
}

# probe_config: the probe's output (16 config bytes: capacity first).
probe_out() {
    timeout 10 "$probe" --socket "$dir/s" || fail "vhu-probe failed"
}

# --- An image: 3 MiB + 100 bytes -> 6144 sectors (0x1800) -------------------
head -c $((3 * 1024 * 1024 + 100)) /dev/zero >"$dir/disk.img"
serve --image "$dir/disk.img" --queues 3 --direct
grep -q "disk.img, O_DIRECT), 3 queue" "$dir/out" || fail "no O_DIRECT in: $(cat "$dir/out")"
out=$(probe_out)
grep -q '00 18 00 00 00 00 00 00' <<<"$out" || fail "capacity of 6144 sectors not in config: $out"
grep -Eq '^queues: *3$' <<<"$out" || fail "3 queues not reported: $out"
features=$(sed -n 's/^features: *0x\([0-9a-f]*\)$/\1/p' <<<"$out")
(((0x$features >> 5) & 1)) && fail "RO offered for a writable image"
(((0x$features >> 12) & 1)) || fail "MQ not offered with 3 queues"
# SIGHUP after the image grew: the new size, in config space too; nobody
# to tell (no front-end connected).
truncate -s $((4 * 1024 * 1024)) "$dir/disk.img"
kill -HUP "$pid"
wait_out() {
    local i
    for ((i = 0; i < 200; i++)); do
        grep -qF "$1" "$dir/out" && return 0
        sleep 0.1
    done
    fail "no '$1' from vhu-blk: $(cat "$dir/out")"
}
wait_out 'SIGHUP: now 8192 sectors; no front-end with a back-end channel to tell'
out=$(probe_out)
grep -q '00 20 00 00 00 00 00 00' <<<"$out" || fail "capacity of 8192 sectors not in config: $out"
kill -HUP "$pid"
wait_out 'SIGHUP: still 8192 sectors'
stop
say "image (O_DIRECT): 6144 sectors, 3 queues, writable; SIGHUP after growing: 8192"

# --- RAM, read-only: 1 MiB -> 2048 sectors (0x800) -----------------------------
serve --ram 1M --read-only
out=$(probe_out)
grep -q '00 08 00 00 00 00 00 00' <<<"$out" || fail "capacity of 2048 sectors not in config: $out"
features=$(sed -n 's/^features: *0x\([0-9a-f]*\)$/\1/p' <<<"$out")
(((0x$features >> 5) & 1)) || fail "RO not offered with --read-only"
(((0x$features >> 12) & 1)) && fail "MQ offered with one queue"
kill -HUP "$pid"
wait_out 'SIGHUP: cannot resize: the disk is in memory'
stop
grep -qF 'served 1 front-end session(s)' "$dir/out" || fail "no session count: $(cat "$dir/out")"
say "RAM disk: 2048 sectors, read-only; SIGTERM: exit 0, socket removed"

# --- An image's state: its identity, not its data -----------------------------
truncate -s 1M "$dir/disk.img"
serve --image "$dir/disk.img" --serial SN-prog-1
grep -q "serial SN-prog-1" "$dir/out" || fail "serial not in: $(cat "$dir/out")"
"$vs" capture --socket "$dir/s" -o "$dir/snap.vhus" >/dev/null || fail "capture failed"
stop
out=$("$vs" inspect "$dir/snap.vhus") || fail "inspect failed"
for f in 'capacity: 2048 ' 'block_size: 512 ' 'read_only: false' 'writeback: true' \
         'queues: 1 ' 'serial: "SN-prog-1"'; do
    grep -qF "  $f" <<<"$out" || fail "inspect does not show '$f': $out"
done
"$vs" validate "$dir/snap.vhus" >/dev/null || fail "the snapshot does not validate"
# load_into ARGS...: serve ARGS, load the snapshot; vhu-state's exit code.
load_into() {
    serve "$@"
    local r=0
    "$vs" load --socket "$dir/s" "$dir/snap.vhus" >"$dir/load.out" 2>&1 || r=$?
    return $r
}
load_into --image "$dir/disk.img" --serial SN-prog-1 || fail "same image refused: $(cat "$dir/out")"
stop
# settled_fds: vhu-blk's open fds once the count stays the same for 0.5 s.
settled_fds() {
    local n m i
    n=$(ls /proc/"$pid"/fd | wc -l)
    for ((i = 0; i < 40; i++)); do
        sleep 0.5
        m=$(ls /proc/"$pid"/fd | wc -l)
        ((m == n)) && break
        n=$m
    done
    echo "$n"
}
# refused WHY ARGS...: the load into ARGS fails with one line naming WHY;
# the back-end's fds and its state stay as they were.
refused() {
    local why=$1
    shift
    serve "$@"
    # Counted once the back-end is fully up and idle: its loop makes some fds
    # only after "listening on" (libev's signal watchers), and closes a
    # session's fds a moment after the front-end left.  A count that holds
    # for half a second, after the capture's session.
    local fds r=0
    "$vs" capture --socket "$dir/s" -o "$dir/before.vhus" >/dev/null || fail "capture failed"
    fds=$(settled_fds)
    "$vs" load --socket "$dir/s" "$dir/snap.vhus" >"$dir/load.out" 2>&1 || r=$?
    ((r == 1)) || fail "load into $* exited $r (want 1): $(cat "$dir/load.out")"
    # The session is over once vhu-state exits; give the back-end a moment.
    local i
    for ((i = 0; i < 100; i++)); do
        (($(ls /proc/"$pid"/fd | wc -l) == fds)) && break
        sleep 0.1
    done
    (($(ls /proc/"$pid"/fd | wc -l) == fds)) || fail "fds of vhu-blk $*: $fds before, \
$(ls /proc/"$pid"/fd | wc -l) after"
    (($(grep -c 'LOAD failed' "$dir/out") == 1)) || fail "not one refusal: $(cat "$dir/out")"
    grep -qF "$why" "$dir/out" || fail "refusal does not say '$why': $(cat "$dir/out")"
    "$vs" capture --socket "$dir/s" -o "$dir/after.vhus" >/dev/null || fail "capture failed"
    cmp -s "$dir/before.vhus" "$dir/after.vhus" || fail "vhu-blk $* changed by a refused load"
    stop
}
refused 'serial: snapshot "SN-prog-1", this disk "SN-prog-2"' \
    --image "$dir/disk.img" --serial SN-prog-2
refused 'read_only: snapshot false, this disk true' \
    --image "$dir/disk.img" --serial SN-prog-1 --read-only
refused 'queues: snapshot 1, this disk 4' --image "$dir/disk.img" --serial SN-prog-1 --queues 4
truncate -s 2M "$dir/disk.img"
refused 'capacity: snapshot 2048 sectors, this disk 4096' \
    --image "$dir/disk.img" --serial SN-prog-1
say "image state: capture, inspect, load into the same disk; refused, by field, unchanged:" \
    "another serial, read-only, 4 queues, a resized image"

# --- Packed rings: format 2, the handler record's ring fields -----------------
# The golden corpus's packed RAM disk: inspect shows the record version,
# each ring's layout, wrap counters and used position; it restores into
# vhu-blk --packed and saves back the same (roundtrip compares the ring
# fields); a vhu-blk without --packed refuses it, unchanged.
golden=$(cd "$(dirname "$0")/../../formats/corpus" && pwd)/blk-f2-configv1-diskv1-packed-ram64k.vhus
out=$("$vs" inspect "$golden") || fail "inspect of the packed golden failed"
for f in 'format:   2' 'handler (record version 2):'; do
    grep -qF "$f" <<<"$out" || fail "inspect does not show '$f': $out"
done
grep -Eq '^    queue 0 +size 0 +packed last_avail 0 +avail_wrap 1 used_idx 0 +used_wrap 1 disabled$' \
    <<<"$out" || fail "inspect does not show ring 0's packed fields: $out"
out=$("$vs" inspect --json "$golden") || fail "inspect --json of the packed golden failed"
for f in '"version":2' '"layout":"packed"' '"avail_wrap":true' '"used_idx":0' '"used_wrap":true'; do
    grep -qF "$f" <<<"$out" || fail "inspect --json does not show '$f': $out"
done
serve --packed --ram 64K
out=$("$vs" roundtrip --socket "$dir/s" "$golden" 2>&1) || fail "packed golden: roundtrip: $out"
stop
# A ring of 16 stopped at avail position 2, wrap 1, used position 14, wrap 0
# (every field unlike a fresh ring's): shown, and saved back the same after
# the load, so each of the four was restored.
ring16=${golden%-ram64k.vhus}-ring16-ram64k.vhus
out=$("$vs" inspect "$ring16") || fail "inspect of $ring16 failed"
grep -Eq '^    queue 0 +size 16 +packed last_avail 2 +avail_wrap 1 used_idx 14 +used_wrap 0 disabled$' \
    <<<"$out" || fail "inspect does not show ring 0's packed fields: $out"
serve --packed --ram 64K
out=$("$vs" roundtrip --socket "$dir/s" "$ring16" 2>&1) || fail "$ring16: roundtrip: $out"
stop
cp "$golden" "$dir/snap.vhus"
refused 'which this back-end does not offer' --ram 64K
# A capture from a packed vhu-blk writes format 2 with the ring's layout.
serve --packed --ram 64K
"$vs" capture --socket "$dir/s" -o "$dir/packed.vhus" >/dev/null || fail "packed capture failed"
stop
out=$("$vs" inspect "$dir/packed.vhus") || fail "inspect failed"
grep -qF 'format:   2' <<<"$out" || fail "a packed capture is not format 2: $out"
grep -Eq 'queue 0 +size 0 +packed last_avail 0 +avail_wrap 1' <<<"$out" ||
    fail "a packed capture without ring 0's packed fields: $out"
say "packed rings: the golden's ring fields inspected, restored exactly; refused without" \
    "--packed, unchanged; a capture writes format 2"
say "all checks passed"
