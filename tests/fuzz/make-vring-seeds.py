#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Write fuzz_vring's seed inputs (tests/fuzz/seeds/vring/): valid rings
with good chains (direct, indirect, mixed regions), EVENT_IDX, dirty
logging, an inflight region to recover, in the target's input format (see
the comment at the top of fuzz_vring.c)."""
import os
import struct
import sys

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "seeds/vring")
NEXT, WRITE, INDIRECT = 1, 2, 4
EVENT_IDX, INDIRECT_F, LOGGING, LOG_USED, INFLIGHT, CALLFD = 1, 2, 4, 8, 16, 32
POP, PUSH, FLUSH, KICK, POKE, PUBLISH, DRAIN = range(7)
R1 = 0x100000          # second region (one page)
TOP = 0xffffffffffffe000  # third region (one page, top of the address space)


def desc(addr, length, flags=0, nxt=0):
    return struct.pack("<QIHH", addr, length, flags, nxt)


def op(code, a=0, b=0, c=0, d=0, e=0):
    return bytes([code, a, b, c, d, e])


def seed(name, size_log2, descs, heads, ops, flags=0, pages=4, log_bytes=0, last_avail=0,
         extra=None, used_event=0, inflight=b"", if_shift=0, offs=(0, 0x1000, 0x2000)):
    size = 1 << size_log2
    desc_off, avail_off, used_off = offs
    hdr = struct.pack("<BBBBHHIIIBBH", size_log2, flags, pages - 1, log_bytes, last_avail,
                      len(ops), desc_off, avail_off, used_off, 0xa5, if_shift, 0)
    assert len(hdr) == 24
    mem = bytearray(4096 * pages)
    assert 16 * len(descs) <= 16 * size
    for i, d in enumerate(descs):
        mem[desc_off + 16 * i:desc_off + 16 * i + 16] = d
    avail = struct.pack("<HH", 0, (last_avail + len(heads)) & 0xffff)
    ring = [0] * size
    for i, hd in enumerate(heads):
        ring[(last_avail + i) % size] = hd
    avail += struct.pack("<%dH" % size, *ring) + struct.pack("<H", used_event)
    mem[avail_off:avail_off + len(avail)] = avail
    for off, data in (extra or {}).items():
        mem[off:off + len(data)] = data
    # Trailing zeroes need not be stored: the target reads them as zeroes.
    body = bytes(mem).rstrip(b"\0") if not inflight else bytes(mem)
    with open(os.path.join(out, name), "wb") as f:
        f.write(hdr + b"".join(ops) + body + inflight)


os.makedirs(out, exist_ok=True)
basic_ops = [op(POP, 0), op(POP, 1), op(PUSH, 0, 16), op(PUSH, 1, 0), op(FLUSH), op(KICK)]
# Two chains: readable+writable in region 0; one readable buffer in region 1.
seed("direct", 4, [desc(0x3000, 16, NEXT, 1), desc(0x3100, 64, WRITE), desc(R1, 512)],
     [0, 2], basic_ops, flags=CALLFD)
# Indirect table of three (out, out, in) with EVENT_IDX.
seed("indirect", 4, [desc(0x3800, 48, INDIRECT), desc(TOP + 0x10, 32, WRITE)], [0, 1],
     basic_ops + [op(POP, 2), op(PUSH, 2, 8), op(FLUSH)], flags=INDIRECT_F | EVENT_IDX | CALLFD,
     extra={0x3800: desc(0x3200, 16, NEXT, 1) + desc(R1 + 0x100, 100, NEXT, 2) +
            desc(0x3300, 200, WRITE)}, used_event=1)
# The driver publishes heads while the device drains the ring.
seed("publish-drain", 3, [desc(0x3000 + 0x40 * i, 0x40, WRITE if i % 2 else 0) for i in range(8)],
     [], [op(PUBLISH, 0, 0, 3), op(DRAIN, 0, 0x40, 1), op(PUBLISH, 4, 0, 3), op(POP, 0),
          op(KICK), op(PUSH, 0, 1), op(DRAIN, 0, 0x10, 0)], flags=EVENT_IDX, last_avail=0xfffe)
# Dirty logging of buffers and the used ring, a log too small for region 1.
seed("logging", 4, [desc(0x3000, 16, NEXT, 1), desc(0x3100, 64, WRITE), desc(R1, 64, WRITE)],
     [0, 2], basic_ops, flags=LOGGING | LOG_USED, log_bytes=2)
# Logging on and no log yet (QEMU starts rings before SET_LOG_BASE).
seed("logging-no-log", 4, [desc(0x3000, 16, NEXT, 1), desc(0x3100, 64, WRITE)], [0],
     basic_ops, flags=LOGGING | LOG_USED)
# An inflight region from a previous back-end: heads 1 and 3 in flight.
ifr = bytearray(16 + 16 * 16)
struct.pack_into("<QHHHH", ifr, 0, 0, 1, 16, 0, 0)
struct.pack_into("<B5xHQ", ifr, 16 + 16 * 1, 1, 0, 7)
struct.pack_into("<B5xHQ", ifr, 16 + 16 * 3, 1, 0, 5)
ifr += bytes((-len(ifr)) % 64)
seed("inflight", 4, [desc(0x3000 + 0x40 * i, 0x40, WRITE) for i in range(16)], [4],
     [op(POP, 0), op(POP, 1), op(POP, 2), op(PUSH, 1), op(PUSH, 0), op(FLUSH), op(PUSH, 2),
      op(FLUSH)], flags=INFLIGHT, last_avail=2, inflight=bytes(ifr))
# A long chain in a 256-entry ring (the rings then span more pages).
n = 256
seed("long-chain", 8, [desc(0x8000 + 16 * i, 16, (NEXT if i < n - 1 else 0) |
                            (WRITE if i >= n // 2 else 0), i + 1) for i in range(n)],
     [0], basic_ops, pages=12)
# The most buffers a chain may have (1024: 512 direct, then an indirect
# table of 512), and one more (a 1023-long direct chain, then an indirect
# table of 2), which breaks the ring: ring size 1024, 32 pages.
for name, direct, table in (("max-segs", 512, 512), ("too-many-segs", 1023, 2)):
    n = 1024
    ds = [desc(0x10000 + 64 * i, 16, NEXT, i + 1) for i in range(direct)]
    ds.append(desc(0x18000, 16 * table, INDIRECT))
    tbl = b"".join(desc(0x8000 + 16 * (i % 1024), 16, (NEXT if i < table - 1 else 0) |
                        (WRITE if i >= table // 2 else 0), i + 1) for i in range(table))
    seed(name, 10, ds, [0], [op(POP, 0), op(PUSH, 0), op(FLUSH)], flags=INDIRECT_F, pages=32,
         extra={0x18000: tbl}, offs=(0, 0x4000, 0x5000))


# Packed rings (flag 64): descriptors {addr, len, id, flags}; the driver
# and device event areas at avail_off / used_off; last_avail and the used
# base (header bytes 22-23) are position | wrap counter << 15.
PACKED = 64
AVAIL, USED = 1 << 7, 1 << 15


def pdesc(addr, length, bid, flags, wrap=1):
    return struct.pack("<QIHH", addr, length, bid, flags | (AVAIL if wrap else USED))


def tdesc(addr, length, flags=0):
    """An indirect table entry (only WRITE counts there)."""
    return struct.pack("<QIHH", addr, length, 0, flags)


def pseed(name, size_log2, descs, ops, flags=0, pages=4, last_avail=0x8000, used_base=0x8000,
          extra=None, offs=(0, 0x1000, 0x1004), log_bytes=0):
    desc_off, avail_off, used_off = offs
    hdr = struct.pack("<BBBBHHIIIBBH", size_log2, flags | PACKED, pages - 1, log_bytes, last_avail,
                      len(ops), desc_off, avail_off, used_off, 0xa5, 0, used_base)
    mem = bytearray(4096 * pages)
    for i, d in descs.items():
        mem[desc_off + 16 * i:desc_off + 16 * i + 16] = d
    for off, data in (extra or {}).items():
        mem[off:off + len(data)] = data
    with open(os.path.join(out, name), "wb") as f:
        f.write(hdr + b"".join(ops) + bytes(mem).rstrip(b"\0"))


# A chain (readable, writable; ID 3), a single buffer in region 1 (ID 0).
pseed("packed-direct", 4, {0: pdesc(0x3000, 16, 3, NEXT), 1: pdesc(0x3100, 64, 3, WRITE),
                           2: pdesc(R1, 512, 0, WRITE)},
      basic_ops + [op(POP, 2), op(PUSH, 2, 8), op(FLUSH)], flags=CALLFD)
# An indirect table of three with EVENT_IDX; the driver asks for an event
# at descriptor 1 (driver area off_wrap 0x8001, flags DESC).
pseed("packed-indirect", 4, {0: pdesc(0x3800, 48, 5, INDIRECT), 1: pdesc(TOP + 0x10, 32, 2, WRITE)},
      basic_ops + [op(POP, 2), op(PUSH, 2, 8), op(FLUSH)], flags=INDIRECT_F | EVENT_IDX | CALLFD,
      extra={0x3800: tdesc(0x3200, 16) + tdesc(R1 + 0x100, 100) + tdesc(0x3300, 200, WRITE),
             0x1000: struct.pack("<HH", 0x8001, 2)})
# Near the end of the ring in the second lap (wrap counters 0): the
# driver publishes across the end while the device drains, out of order.
# Descriptors 1-4 hold buffers, not yet available, which "publish" then
# makes available (1, then 2-4 with IDs 2-4).
wrap_descs = {6: pdesc(0x3000, 0x40, 1, WRITE, 0), 7: pdesc(0x3040, 0x40, 2, NEXT, 0),
              0: pdesc(0x3080, 0x40, 2, WRITE, 1)}
wrap_descs.update({i: tdesc(0x3100 + 0x40 * i, 0x40) for i in range(1, 5)})
pseed("packed-wrap", 3, wrap_descs,
      [op(POP, 0), op(POP, 1), op(PUSH, 1, 4), op(PUSH, 0, 8), op(FLUSH), op(KICK),
       op(PUBLISH, 1, 0, 0, WRITE, 1), op(DRAIN, 0, 0x40, 1), op(PUBLISH, 2, 0, 2, WRITE, 1),
       op(DRAIN, 0, 0x10, 0), op(KICK)],
      flags=EVENT_IDX | CALLFD, last_avail=6, used_base=6)
# Dirty logging of the descriptor ring and the device area.
pseed("packed-logging", 4, {0: pdesc(0x3000, 16, 0, NEXT), 1: pdesc(0x3100, 64, 0, WRITE),
                            2: pdesc(R1, 64, 1, WRITE)},
      basic_ops, flags=LOGGING | LOG_USED | EVENT_IDX, log_bytes=2)
