#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""qmp.py SOCKET COMMAND [ARGUMENTS-JSON]
   qmp.py SOCKET wait-migration TIMEOUT
   qmp.py SOCKET ring-idx [packed]
   qmp.py SOCKET ring-pages [packed]

A tiny QMP client for the QEMU tests (QEMU started with
-qmp unix:SOCKET,server=on,wait=off).  The first form runs one QMP command
and prints its "return" value as JSON; an error reply exits 1 with QEMU's
message.  The second polls query-migrate every 50 ms until the status is
completed (prints "completed TOTAL_TIME_MS DOWNTIME_MS", exit 0) or failed /
cancelled (prints the status and error, exit 1), or TIMEOUT seconds passed
(exit 1).  The third prints queue 0's avail index, used index and
used_event as the guest's memory holds them (what the guest submitted, what
the back-end completed), for a vhost-user device or QEMU's own.  The fourth
prints queue 0's descriptor table, avail ring and used ring as GPA:LEN
(for memcmp-pages.py).  With "packed" (the ring is packed: VIRTIO_F_RING_PACKED),
ring-idx prints OUTSTANDING OFF_WRAP FLAGS: descriptors the driver made
available that the device has not marked used (a descriptor whose AVAIL and
USED flags differ; Linux puts each request of several buffers into one
indirect descriptor, so every descriptor is a request's head), plus one when
a used descriptor waits at the position the driver reads next; then the
driver event suppression area's off_wrap (that position, wrap counter in
bit 15, EVENT_IDX) and flags (1: notifications off).  ring-pages then prints
the descriptor ring and the two 4-byte event suppression areas."""
import json
import socket
import sys
import time


class QMP:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(path)
        self.buf = b""
        self.recv()  # greeting
        self.cmd("qmp_capabilities")

    def recv(self):
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                if line.strip():
                    msg = json.loads(line)
                    if "event" not in msg:
                        return msg
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("QEMU closed the QMP socket")
            self.buf += data

    def cmd(self, name, args=None):
        req = {"execute": name}
        if args:
            req["arguments"] = args
        self.sock.sendall(json.dumps(req).encode() + b"\n")
        msg = self.recv()
        if "error" in msg:
            raise RuntimeError("%s: %s" % (name, msg["error"].get("desc", msg["error"])))
        return msg.get("return")


def read_u16(q, phys):
    """A little-endian u16 of guest memory, through the monitor's xp."""
    out = q.cmd("human-monitor-command", {"command-line": "xp /1hx %d" % phys})
    return int(out.split(":")[1].split()[0], 16)


def read_u16s(q, phys, n):
    """n little-endian u16 of guest memory from phys, in one xp."""
    out = q.cmd("human-monitor-command", {"command-line": "xp /%dhx %d" % (n, phys)})
    vals = []
    for line in out.splitlines():
        if ":" in line:
            vals += [int(v, 16) for v in line.split(":", 1)[1].split()]
    if len(vals) != n:
        raise RuntimeError("xp gave %d values for %d" % (len(vals), n))
    return vals


def ring_layout(q):
    """Queue 0 of the first virtio device: the guest-physical addresses of
    its avail and used rings and descriptor table, and its size."""
    path = q.cmd("x-query-virtio")[0]["path"]
    try:
        st = q.cmd("x-query-virtio-vhost-queue-status", {"path": path, "queue": 0})
        return st["desc-phys"], st["avail-phys"], st["used-phys"], st["num"]
    except RuntimeError:
        # QEMU's own virtio-blk (no vhost): the ring as QEMU's device sees it.
        st = q.cmd("x-query-virtio-queue-status", {"path": path, "queue": 0})
        return st["vring-desc"], st["vring-avail"], st["vring-used"], st["vring-num"]


def ring_idx(q):
    """Queue 0 of the first virtio device, read from guest memory: the
    driver's avail index, the device's used index, and the used_event the
    driver last asked to be notified at (EVENT_IDX)."""
    _, avail_phys, used_phys, num = ring_layout(q)
    avail = read_u16(q, avail_phys + 2)
    used = read_u16(q, used_phys + 2)
    used_event = read_u16(q, avail_phys + 4 + 2 * num)
    return avail, used, used_event


def ring_idx_packed(q):
    """Queue 0 as a packed ring, read from guest memory (see the header)."""
    desc, driver, _, num = ring_layout(q)
    words = read_u16s(q, desc, 8 * num)
    avail_f, used_f = 1 << 7, 1 << 15
    flags = [words[8 * i + 7] for i in range(num)]
    outstanding = sum(1 for f in flags if bool(f & avail_f) != bool(f & used_f))
    off_wrap = read_u16(q, driver)
    ev_flags = read_u16(q, driver + 2)
    pos, wrap = off_wrap & 0x7FFF, bool(off_wrap >> 15)
    if pos < num and bool(flags[pos] & avail_f) == wrap and bool(flags[pos] & used_f) == wrap:
        outstanding += 1
    return outstanding, off_wrap, ev_flags


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        q = QMP(sys.argv[1])
        packed = sys.argv[3:4] == ["packed"]
        if sys.argv[2] == "ring-pages":
            desc, avail, used, num = ring_layout(q)
            if packed:
                print("0x%x:%d 0x%x:4 0x%x:4" % (desc, 16 * num, avail, used))
            else:
                print("0x%x:%d 0x%x:%d 0x%x:%d" % (desc, 16 * num, avail, 6 + 2 * num,
                                                    used, 6 + 8 * num))
            return 0
        if sys.argv[2] == "ring-idx":
            print(" ".join(str(v) for v in (ring_idx_packed(q) if packed else ring_idx(q))))
            return 0
        if sys.argv[2] == "wait-migration":
            deadline = time.monotonic() + float(sys.argv[3])
            while True:
                r = q.cmd("query-migrate")
                st = r.get("status", "none")
                if st == "completed":
                    print("completed %s %s" % (r.get("total-time", "?"), r.get("downtime", "?")))
                    return 0
                if st in ("failed", "cancelled"):
                    print("%s %s" % (st, r.get("error-desc", "")))
                    return 1
                if time.monotonic() > deadline:
                    print("timeout %s" % st)
                    return 1
                time.sleep(0.05)
        args = json.loads(sys.argv[3]) if len(sys.argv) > 3 else None
        print(json.dumps(q.cmd(sys.argv[2], args)))
        return 0
    except (OSError, EOFError, RuntimeError, ValueError) as e:
        print("qmp.py: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
