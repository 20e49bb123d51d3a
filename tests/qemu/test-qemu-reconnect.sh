#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# test-qemu-reconnect.sh VHU_BLK CACHE_DIR [KILLS]
#
# vhu-blk dies (kill -9) with requests in flight and comes back, twice, under
# a running guest (QEMU 7.2, TCG, -cpu qemu64, guest RAM in a shared memfd).
# QEMU is the socket's client with reconnect=1
# (-chardev socket,id=c0,path=SOCK,reconnect=1), vhu-blk listens.  The guest
# of build-guest.sh runs with vhu.mode=rounds: it writes round n's data
# (4 MiB at 1 MiB) with O_DIRECT, reads it back, compares and prints
# "round n ok", round after round (see guest-init.sh).  KILLS times (default
# 2), after the guest verified at least two rounds since the last start:
# kill-inflight.py stops vhu-blk again and again until its inflight region
# (the memfd QEMU got with GET_INFLIGHT_FD) shows a request in flight and
# kills it there with SIGKILL; vhu-blk is started again on the same socket
# and image; QEMU reconnects within a second, hands the same region back
# with SET_INFLIGHT_FD and vhu-blk resubmits what was in flight ("... in
# flight from before; resubmitting" in its log, required).  The guest must
# carry on without an I/O error.  Then the host writes "vhu-stop" into
# sector 0 and the guest stops with "PASS after N rounds"; rounds 1..N each
# reported exactly once; the image holds round N's data and nothing else
# changed; the last vhu-blk stops cleanly on SIGTERM.
#
# With VHU_QEMU_PACKED=1 in the environment the disk uses packed rings
# (vhu-blk --packed, vhost-user-blk-pci,packed=on) and the inflight region
# QEMU's packed layout; ctest runs that as test_qemu_reconnect_packed.
#
# Exit 77 (skipped) only when QEMU cannot run at all.  ctest runs it as
# test_qemu_reconnect; by hand (KEEP=1 keeps the logs in the work directory):
#   tests/qemu/test-qemu-reconnect.sh build/examples/vhu-blk build/qemu-guest
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
NAME=test-qemu-reconnect
# shellcheck source=lib-rounds.sh
source "$here/lib-rounds.sh"
rounds_args KILLS 2 "$@"
kills=$count

packed_blk=()
layout=split
if [[ ${VHU_QEMU_PACKED:-0} == 1 ]]; then
    say "packed rings"
    packed_blk=(--packed)
    BLK_DEV_OPTS=,packed=on
    layout=packed
fi

img=$dir/disk.img
make_image "$img"
sock=$dir/blk.sock
# --verbose: each vhost-user message is logged (SET_INFLIGHT_FD).
start_blk bpid "$dir/blk-0.log" --verbose --socket "$sock" --image "$img" "${packed_blk[@]}"

serial=$dir/guest.serial
t0=$SECONDS
start_qemu qpid guest path="$sock",reconnect=1

# wait_rounds N SECS: until the guest verified round N.
wait_rounds() {
    wait_serial "$serial" "VHU-BLK-GUEST: round $1 ok" "$2"
}
last_round() { rounds_in "$serial" | tail -1; }

wait_rounds 2 120
say "guest verifying rounds ($((SECONDS - t0)) s after start)"
for ((k = 1; k <= kills; k++)); do
    r=$(last_round)
    n=$("$here/kill-inflight.py" "$bpid" "$qpid" 20 "$layout") ||
        { show; fail "kill $k: caught no request in flight within 20 s (killed anyway)"; }
    wait "$bpid" 2>/dev/null || true
    kill -0 "$qpid" 2>/dev/null || { show; fail "QEMU died with vhu-blk"; }
    say "kill $k: vhu-blk killed with $n request(s) in flight, guest at round $r"
    ts=$(date +%s%N)
    start_blk bpid "$dir/blk-$k.log" --verbose --socket "$sock" --image "$img" "${packed_blk[@]}"
    # QEMU reconnects (reconnect=1: within a second) and restarts the ring.
    end=$((SECONDS + 30))
    until grep -q 'resubmitting' "$dir/blk-$k.log"; do
        ((SECONDS < end)) || { show; fail "kill $k: vhu-blk resubmitted nothing within 30 s"; }
        kill -0 "$qpid" 2>/dev/null || { show; fail "QEMU exited"; }
        sleep 0.1
    done
    grep -q '<- SET_INFLIGHT_FD' "$dir/blk-$k.log" ||
        fail "kill $k: QEMU did not send SET_INFLIGHT_FD after reconnecting"
    if [[ $layout == packed ]]; then
        grep -q 'inflight tracking, packed layout' "$dir/blk-$k.log" ||
            fail "kill $k: the restarted vhu-blk did not run a packed ring"
    fi
    say "kill $k: QEMU reconnected, vhu-blk resubmitted after" \
        "$((($(date +%s%N) - ts) / 1000000)) ms: $(grep -o 'ring.*resubmitting' "$dir/blk-$k.log")"
    wait_rounds $((r + 2)) 90
done

# Stop the guest: "vhu-stop" in sector 0.
printf 'vhu-stop' | dd of="$img" conv=notrunc status=none
wait_serial "$serial" 'VHU-BLK-GUEST: PASS after [0-9]+ rounds' 90
rc=0
wait "$qpid" || rc=$?
((rc == 0)) || { show; fail "QEMU exited $rc"; }
if grep -aq 'VHU-BLK-GUEST: FAIL' "$serial"; then
    show
    fail "a guest FAIL line"
fi
n=$(grep -aoE 'PASS after [0-9]+ rounds' "$serial" | awk '{ print $3 }')
check_rounds "$n" "$serial"
say "guest: PASS after $n rounds, each verified once"

printf '\377\377\377\377\377\377\377\377' | dd of="$img" conv=notrunc status=none
check_image "$img" "$n"
say "image checked: round $n's data at 1 MiB, the rest untouched"

kill -TERM "$bpid"
rc=0
wait "$bpid" || rc=$?
((rc == 0)) || fail "vhu-blk exited $rc after SIGTERM: $(cat "$dir/blk-$kills.log")"
say "PASS ($((SECONDS - t0)) s)"
