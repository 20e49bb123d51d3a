#!/usr/bin/env python3
"""memcmp-pages.py A B

Compare two dumps of guest memory (QMP pmemsave, guest-physical address 0
up) in 4 KiB pages.  Prints "N of M pages differ" and, for the first 20
that do, the page's guest-physical address and how many bytes differ.
Exit 0 when none differ, 1 when some do, 2 on error."""
import mmap
import sys

PAGE = 4096


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1], "rb") as fa, open(sys.argv[2], "rb") as fb:
        a = mmap.mmap(fa.fileno(), 0, access=mmap.ACCESS_READ)
        b = mmap.mmap(fb.fileno(), 0, access=mmap.ACCESS_READ)
        if len(a) != len(b):
            print("sizes differ: %d and %d bytes" % (len(a), len(b)))
            return 1
        pages = len(a) // PAGE
        bad = []
        for p in range(pages):
            off = p * PAGE
            if a[off:off + PAGE] != b[off:off + PAGE]:
                bad.append(p)
        print("%d of %d pages differ" % (len(bad), pages))
        for p in bad[:20]:
            off = p * PAGE
            pa, pb = a[off:off + PAGE], b[off:off + PAGE]
            n = sum(1 for i in range(PAGE) if pa[i] != pb[i])
            print("  page 0x%x: %d bytes differ" % (off, n))
        return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
