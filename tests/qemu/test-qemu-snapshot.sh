#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# test-qemu-snapshot.sh VHU_BLK CACHE_DIR [CAPTURES]
#
# Live snapshots of a running QEMU guest's disk, then the last one booted.
# vhu-blk serves a 256 MiB RAM disk (--ram 256M) with a control socket
# (--control); QEMU 7.2 (TCG, -cpu qemu64, guest RAM in a shared memfd)
# runs the guest of build-guest.sh in vhu.mode=rounds: it writes round n's
# data (4 MiB at 1 MiB) with O_DIRECT, reads it back, compares and prints
# "round n ok", round after round (see guest-init.sh).
#
# CAPTURES times (default 3), once the guest verified a round more:
# `vhu-state capture --control CTL -o snap-k` takes a live snapshot while
# the guest keeps going; rounds L (the last the guest reported before the
# capture) and H (the last after its reply) bound what it can hold.  The
# guest must verify every round throughout: rounds 1..N each reported once,
# no FAIL line.  `vhu-state info --control` is shown once.
#
# Then QEMU and vhu-blk stop; a fresh `vhu-blk --ram 256M` gets the last
# snapshot with `vhu-state load --socket`, and the same guest boots on it in
# vhu.mode=find vhu.find=L:H+1: it must find at 1 MiB round n (L <= n <=
# H + 1) whole, or round n's first bytes and round n-1's rest, cut at a
# sector boundary (a snapshot at a request boundary while round n was being
# written), and print PASS.
#
# Exit 77 (skipped) only when QEMU cannot run at all.  ctest runs it as
# test_qemu_snapshot; by hand (KEEP=1 keeps the logs in the work directory;
# VHU_STATE names the vhu-state binary, default next to vhu-blk's build):
#   tests/qemu/test-qemu-snapshot.sh build/examples/vhu-blk build/qemu-guest
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
NAME=test-qemu-snapshot
# shellcheck source=lib-rounds.sh
source "$here/lib-rounds.sh"
rounds_args CAPTURES 3 "$@"
captures=$count
vhu_state=${VHU_STATE:-$(dirname "$blk")/../cli/vhu-state}
[[ -x $vhu_state ]] || fail "no vhu-state at $vhu_state (set VHU_STATE)"

sock=$dir/blk.sock
ctl=$dir/blk.ctl
start_blk bpid "$dir/blk-0.log" --socket "$sock" --ram 256M --control "$ctl"

serial=$dir/guest.serial
t0=$SECONDS
start_qemu qpid guest path="$sock"

wait_rounds() {
    wait_serial "$serial" "VHU-BLK-GUEST: round $1 ok" "$2"
}
last_round() { rounds_in "$serial" | tail -1; }

wait_rounds 2 120
say "guest verifying rounds ($((SECONDS - t0)) s after start)"
"$vhu_state" info --control "$ctl" | sed "s/^/$NAME: info: /"
lo=0 hi=0
for ((k = 1; k <= captures; k++)); do
    lo=$(last_round)
    "$vhu_state" capture --control "$ctl" -o "$dir/snap-$k" >"$dir/capture-$k.txt" 2>&1 ||
        { cat "$dir/capture-$k.txt" >&2; show; fail "capture $k failed"; }
    hi=$(last_round)
    say "capture $k: guest between rounds $lo and $hi: $(head -1 "$dir/capture-$k.txt")"
    "$vhu_state" validate "$dir/snap-$k" >/dev/null ||
        fail "capture $k does not validate: $("$vhu_state" validate "$dir/snap-$k" 2>&1 | head -3)"
    wait_rounds $((hi + 1)) 120
done
kill -0 "$qpid" 2>/dev/null || { show; fail "QEMU exited"; }
n=$(last_round)
check_rounds "$n" "$serial"
say "guest: rounds 1..$n verified, each once, through $captures live captures"

# Stop the first VM (a RAM disk: nothing to keep but the snapshots).
kill -TERM "$qpid"
wait "$qpid" 2>/dev/null || true
QPIDS=()
kill -TERM "$bpid"
rc=0
wait "$bpid" || rc=$?
((rc == 0)) || fail "vhu-blk exited $rc after SIGTERM: $(tail -5 "$dir/blk-0.log")"

# The last capture into a fresh vhu-blk, and the same guest booted on it.
sock2=$dir/blk2.sock
start_blk bpid2 "$dir/blk-1.log" --socket "$sock2" --ram 256M
"$vhu_state" load --socket "$sock2" "$dir/snap-$captures" >"$dir/load.txt" 2>&1 ||
    { cat "$dir/load.txt" >&2; fail "vhu-state load of capture $captures failed"; }
say "capture $captures loaded into a fresh vhu-blk: $(head -1 "$dir/load.txt")"
QEMU_ARGS[-1]="console=ttyS0 panic=-1 loglevel=3 vhu.mode=find vhu.find=$lo:$((hi + 1))"
serial2=$dir/guest2.serial
start_qemu qpid2 guest2 path="$sock2"
wait_serial "$serial2" 'VHU-BLK-GUEST: PASS' 120
say "guest on the loaded disk: $(grep -ao 'found .*' "$serial2" | head -1)"
rc=0
wait "$qpid2" || rc=$?
((rc == 0)) || { show; fail "QEMU exited $rc"; }
kill -TERM "$bpid2"
rc=0
wait "$bpid2" || rc=$?
((rc == 0)) || fail "the second vhu-blk exited $rc after SIGTERM: $(tail -5 "$dir/blk-1.log")"
say "PASS ($((SECONDS - t0)) s)"
