#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Write fuzz_handler's seed inputs (tests/fuzz/seeds/handler/): the set-up
sequences a real front-end sends, in the target's record format
[u8 fd-kind bits][u8 nfds][u16 LE len][message bytes]."""
import os
import struct
import sys

V, NEED = 1, 8
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "seeds/handler")


def msg(code, payload=b"", flags=V, fds=0, memfds=0):
    body = struct.pack("<III", code, flags, len(payload)) + payload
    return struct.pack("<BBH", memfds, fds, len(body)) + body


u64 = lambda v: struct.pack("<Q", v)
state = lambda i, n: struct.pack("<II", i, n)
UVA = 0x10000000
PF = (1 << 0) | (1 << 1) | (1 << 3) | (1 << 5) | (1 << 9) | (1 << 12) | (1 << 13) | (1 << 15) | (1 << 16) | (1 << 19)
FEAT = (1 << 32) | (1 << 30) | (1 << 26) | 1
region = struct.pack("<QQQQ", 0, 65536, UVA, 0)

setup = [msg(1), msg(15), msg(16, u64(PF)), msg(17), msg(3), msg(2, u64(FEAT), V | NEED),
         msg(24, struct.pack("<III", 0, 16, 0) + bytes(16))]
mem_table = msg(5, struct.pack("<II", 1, 0) + region, V | NEED, fds=1, memfds=1)
mem_slot = msg(37, u64(0) + region, V | NEED, fds=1, memfds=1)
ring = [msg(8, state(0, 16), V | NEED),
        msg(10, state(0, 0), V | NEED),
        msg(9, struct.pack("<IIQQQQ", 0, 0, UVA, UVA + 0x1000, UVA + 0x100, 0x1000), V | NEED),
        msg(13, u64(0), V | NEED, fds=1), msg(14, u64(0), V | NEED, fds=1),
        msg(12, u64(0), V | NEED, fds=1), msg(18, state(0, 1), V | NEED)]
stop = [msg(18, state(0, 0)), msg(11, state(0, 0))]
seeds = {
    "setup-mem-table": setup + [mem_table] + ring + stop,
    "setup-mem-slots": setup + [mem_slot] + ring + stop + [msg(38, u64(0) + region, V | NEED)],
    "log-and-inflight": setup + [mem_table, msg(31, struct.pack("<QQHH", 0, 0, 1, 16))] + ring +
    [msg(6, struct.pack("<QQ", 4096, 0), V, fds=1, memfds=1)] + stop,
    # 1 byte of log covers 32 KiB, the table 64 KiB: refused.
    "log-too-small": setup + [mem_table] + ring +
    [msg(6, struct.pack("<QQ", 1, 0), V, fds=1, memfds=1)] + stop,
    "state-save": setup + [msg(42, struct.pack("<II", 0, 0), V, fds=1, memfds=1), msg(43)],
    "reset": setup + [mem_table] + ring + [msg(34, b"", V | NEED), msg(39, u64(15), V | NEED), msg(40)],
}
os.makedirs(out, exist_ok=True)
for name, parts in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(b"".join(parts))
print("wrote", len(seeds), "seeds to", out)
