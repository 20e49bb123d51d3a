/* SPDX-License-Identifier: BSD-3-Clause */
/* A RAM disk's memory (--ram): anonymous, 2 MiB-aligned and in transparent
 * huge pages where the kernel allows (MADV_HUGEPAGE).  Besides fewer TLB
 * misses, a live snapshot's fork() then copies one page-table entry per
 * 2 MiB instead of 512.
 *
 * A snapshot's copy-on-write splits every huge page the guest writes while
 * the child streams (the kernel copies 4 KiB, not 2 MiB, on such a fault),
 * and khugepaged takes minutes to merge them back: the next fork of a
 * 1 GiB disk written all over copied 262144 entries, 100-160 ms here
 * instead of a few.  So once the child has exited, a thread collapses the
 * disk back into huge pages (MADV_COLLAPSE, Linux 6.1), 32 MiB per call so
 * that a fork or blk_ram_free waits for one step at most. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>

#include "blk_internal.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

#define RAM_ALIGN (2u << 20)
#define COLLAPSE_STEP (32u << 20)

static size_t ram_span(uint64_t size)
{
    return (size_t)((size + RAM_ALIGN - 1) & ~(uint64_t)(RAM_ALIGN - 1));
}

uint8_t *blk_ram_alloc(uint64_t size)
{
    if (size > SIZE_MAX - 2 * RAM_ALIGN)
        return NULL;
    size_t span = ram_span(size), len = span + RAM_ALIGN;
    uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    /* Trim to a 2 MiB-aligned span. */
    uint8_t *a = (uint8_t *)(((uintptr_t)p + RAM_ALIGN - 1) & ~(uintptr_t)(RAM_ALIGN - 1));
    if (a > p)
        munmap(p, (size_t)(a - p));
    if (a + span < p + len)
        munmap(a + span, (size_t)(p + len - (a + span)));
    madvise(a, span, MADV_HUGEPAGE); /* a hint: without THP it is ordinary memory */
    return a;
}

static void *collapse_main(void *arg)
{
    struct blk *d = arg;
    size_t span = ram_span(d->size);
    do {
        atomic_store(&d->collapse_again, false);
        for (size_t off = 0; off < span && !atomic_load(&d->collapse_stop); off += COLLAPSE_STEP) {
            size_t n = span - off < COLLAPSE_STEP ? span - off : COLLAPSE_STEP;
            /* EINVAL: a kernel before 6.1 or THP off; khugepaged will do. */
            if (madvise(d->ram + off, n, MADV_COLLAPSE) < 0 && errno == EINVAL)
                goto out;
        }
    } while (atomic_load(&d->collapse_again) && !atomic_load(&d->collapse_stop));
out:
    atomic_store(&d->collapse_done, true);
    return NULL;
}

void blk_ram_recollapse(struct blk *d)
{
    if (!d->ram)
        return;
    if (d->collapsing) {
        if (!atomic_load(&d->collapse_done)) {
            atomic_store(&d->collapse_again, true);
            return;
        }
        pthread_join(d->collapse_th, NULL);
        d->collapsing = false;
    }
    atomic_store(&d->collapse_stop, false);
    atomic_store(&d->collapse_done, false);
    d->collapsing = pthread_create(&d->collapse_th, NULL, collapse_main, d) == 0;
}

void blk_ram_collapse_stop(struct blk *d)
{
    if (!d->collapsing)
        return;
    atomic_store(&d->collapse_stop, true);
    pthread_join(d->collapse_th, NULL);
    d->collapsing = false;
}

void blk_ram_free(uint8_t *p, uint64_t size)
{
    if (p)
        munmap(p, ram_span(size));
}
