#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""memcmp-pages.py A B [GPA:LEN ...]

Compare two dumps of guest memory (QMP pmemsave, guest-physical address 0
up) in 4 KiB pages.  Prints "N of M pages differ, K in the device ranges"
(the GPA:LEN ranges given, in hex or decimal: what a device writes, such as
a disk's virtqueue) and, for the first 20 pages that differ, the page's
guest-physical address and how many bytes differ.  Exit 0 when none differ,
1 when some do, 2 on error."""
import mmap
import sys

PAGE = 4096


def main():
    args = sys.argv[1:]
    written = None
    if args[:1] == ["--written"] and len(args) > 1:
        written = set()
        with open(args[1]) as f:
            for line in f:
                gpa, length = line.split()
                first, last = int(gpa, 0) // PAGE, (int(gpa, 0) + int(length) - 1) // PAGE
                written.update(range(first, last + 1))
        args = args[2:]
    if len(args) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    ranges = []
    for arg in args[2:]:
        start, length = (int(x, 0) for x in arg.split(":"))
        ranges.append((start // PAGE, (start + length - 1) // PAGE))
    with open(args[0], "rb") as fa, open(args[1], "rb") as fb:
        a = mmap.mmap(fa.fileno(), 0, access=mmap.ACCESS_READ)
        b = mmap.mmap(fb.fileno(), 0, access=mmap.ACCESS_READ)
        if len(a) != len(b):
            print("sizes differ: %d and %d bytes" % (len(a), len(b)))
            return 1
        pages = len(a) // PAGE
        bad = [p for p in range(pages) if a[p * PAGE:(p + 1) * PAGE] != b[p * PAGE:(p + 1) * PAGE]]
        in_dev = [p for p in bad if any(lo <= p <= hi for lo, hi in ranges)]
        line = "%d of %d pages differ, %d in the device ranges" % (len(bad), pages, len(in_dev))
        if written is not None:
            line += ", %d written by the back-end" % sum(1 for p in bad if p in written)
        print(line)
        for p in bad[:20]:
            pa, pb = a[p * PAGE:(p + 1) * PAGE], b[p * PAGE:(p + 1) * PAGE]
            n = sum(1 for i in range(PAGE) if pa[i] != pb[i])
            print("  page 0x%x: %d bytes differ%s%s" % (p * PAGE, n,
                  " (device range)" if p in in_dev else "",
                  " (written by the back-end)" if written and p in written else ""))
        return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
