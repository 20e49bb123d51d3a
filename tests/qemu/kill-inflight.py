#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""kill-inflight.py PID QEMU_PID TIMEOUT [split|packed]

Kill -9 the vhu-blk process PID while it has requests in flight, for
test-qemu-reconnect.sh.  Over and over: stop it (SIGSTOP), read its inflight
region (the memfd "vhu-inflight" it gave QEMU with GET_INFLIGHT_FD, which
QEMU keeps open: read through /proc/QEMU_PID/fd) and, when queue 0 has a descriptor marked in flight, SIGKILL
it there, print the number of descriptors in flight and exit 0; otherwise
let it go on (SIGCONT) and look again a moment later.  After TIMEOUT
seconds without catching a request in flight: SIGKILL anyway, print 0,
exit 1.  Layout (the last argument, split by default; one region per
queue): split rings have a 16-byte header (features u64, version u16,
desc_num u16, last_batch_head u16, used_idx u16), then 16 bytes per
descriptor head whose first byte is 1 while the request is in flight.
Packed rings have a 32-byte header (features u64, version u16, desc_num
u16, free_head u16, old_free_head u16, used_idx u16, old_used_idx u16,
used and old used wrap counters u8), then 32-byte entries whose first
byte is 1 in a request's head entry; a request counts only while no pop
or flush is half done (free_head = old_free_head, used_idx = old_used_idx,
wrap counters equal), since a restart rolls those back or forward."""
import os
import random
import signal
import struct
import sys
import time


def inflight_fd(pids):
    for pid in pids:
        path = fd_of(pid)
        if path:
            return path
    return None


def fd_of(pid):
    d = "/proc/%d/fd" % pid
    for n in os.listdir(d):
        try:
            if os.readlink(os.path.join(d, n)).startswith("/memfd:vhu-inflight"):
                return os.path.join(d, n)
        except OSError:
            pass
    return None


def in_flight(path, layout):
    if layout == "packed":
        with open(path, "rb") as f:
            head = f.read(32)
            if len(head) < 32:
                return 0
            (_, version, desc_num, free_head, old_free_head, used, old_used, wrap,
             old_wrap) = struct.unpack_from("<QHHHHHHBB", head)
            if (version != 1 or free_head != old_free_head or used != old_used
                    or wrap != old_wrap):
                return 0
            body = f.read(32 * desc_num)
        return sum(1 for i in range(0, len(body), 32) if body[i] == 1)
    with open(path, "rb") as f:
        head = f.read(16)
        if len(head) < 16:
            return 0
        desc_num = struct.unpack_from("<QHHHH", head)[2]
        body = f.read(16 * desc_num)
    return sum(1 for i in range(0, len(body), 16) if body[i] == 1)


def wait_stopped(pid):
    """Until every thread of pid is stopped (state T): SIGSTOP is
    asynchronous, a thread on another CPU may still run for a moment."""
    for _ in range(200):
        try:
            states = []
            for t in os.listdir("/proc/%d/task" % pid):
                with open("/proc/%d/task/%s/stat" % (pid, t)) as f:
                    states.append(f.read().rsplit(")", 1)[1].split()[0])
        except OSError:
            return
        if all(s in "tT" for s in states):
            return
        time.sleep(0.0002)


def main():
    if len(sys.argv) not in (4, 5) or sys.argv[4:] not in ([], ["split"], ["packed"]):
        print(__doc__, file=sys.stderr)
        return 2
    layout = sys.argv[4] if len(sys.argv) == 5 else "split"
    pid = int(sys.argv[1])
    qpid = int(sys.argv[2])
    deadline = time.monotonic() + float(sys.argv[3])
    while time.monotonic() < deadline:
        os.kill(pid, signal.SIGSTOP)
        wait_stopped(pid)
        try:
            path = inflight_fd((qpid, pid))
            n = in_flight(path, layout) if path else 0
        except OSError:
            n = 0
        if n:
            os.kill(pid, signal.SIGKILL)
            print(n)
            return 0
        os.kill(pid, signal.SIGCONT)
        time.sleep(random.uniform(0.0005, 0.003))
    os.kill(pid, signal.SIGKILL)
    print(0)
    return 1


if __name__ == "__main__":
    sys.exit(main())
