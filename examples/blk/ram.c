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
 * that a fork or blk_ram_free waits for one step at most.
 *
 * That is the fork() way (--fork-snapshots).  By default vhu-blk keeps a
 * live snapshot itself (ops.snapshot_begin) and no fork happens: fork's
 * copy-on-write costs the guest a page fault and, on a multi-CPU host, a
 * TLB-shootdown IPI on the first write to each page after the pause
 * (docs/live-snapshots.md).  Here the snapshot's instant arms a table of
 * chunks; the first write to a chunk the snapshot has not yet taken copies
 * it aside first (a memcpy), and the snapshot thread takes each chunk from
 * the disk or from its copy.  The copies go into an area as large as the
 * disk, mapped and faulted in before the instant (ops.snapshot_prepare):
 * faulting it in as writes come, or a malloc per copy, put a page fault on
 * nearly every guest write right after the instant (a 1 GiB disk under
 * random writes had every chunk copied within a fraction of a second) and
 * stalled the guest 10-30 ms. */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>

#include "blk_internal.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define RAM_ALIGN (2u << 20)
#define COLLAPSE_STEP (32u << 20)
#define UNMAP_STEP (8u << 20)

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

int blk_ram_cow_init(struct blk *d, bool reserve)
{
    if (!d->ram)
        return 0;
    d->cow.nchunks = (size_t)((d->size + COW_CHUNK - 1) / COW_CHUNK);
    d->cow.state = calloc(d->cow.nchunks, sizeof(*d->cow.state));
    if (!d->cow.state) {
        blk_ram_cow_free(d);
        return -ENOMEM;
    }
    for (size_t i = 0; i < d->cow.nchunks; i++)
        atomic_init(&d->cow.state[i], COW_KEPT); /* nothing to keep: no snapshot */
    if (reserve) {
        /* Like the disk: huge pages where the kernel has them, found now
         * rather than while a guest runs; faulted in once. */
        size_t len = d->cow.nchunks * COW_CHUNK;
        d->cow.area = blk_ram_alloc(len);
        if (!d->cow.area) {
            blk_ram_cow_free(d);
            return -ENOMEM;
        }
        d->cow.area_len = len;
        d->cow.reserved = true;
        if (madvise(d->cow.area, ram_span(len), MADV_POPULATE_WRITE) < 0 && errno != EINVAL) {
            blk_ram_cow_free(d);
            return -ENOMEM;
        }
    }
    return 0;
}

static void area_unmap(struct blk *d)
{
    if (d->cow.reserved)
        return; /* kept for the next snapshot */
    /* In steps: one munmap of a 1 GiB area in 4 KiB pages holds the
     * process's memory map for tens of ms (a ring thread that faults
     * meanwhile waits) and ends in one large TLB shootdown. */
    for (size_t off = 0; d->cow.area && off < d->cow.area_len; off += UNMAP_STEP)
        munmap(d->cow.area + off,
               d->cow.area_len - off < UNMAP_STEP ? d->cow.area_len - off : UNMAP_STEP);
    d->cow.area = NULL;
    d->cow.area_len = 0;
}

void blk_ram_cow_free(struct blk *d)
{
    if (d->cow.reserved) {
        blk_ram_free(d->cow.area, d->cow.area_len);
        d->cow.reserved = false;
        d->cow.area = NULL;
        d->cow.area_len = 0;
    }
    area_unmap(d); /* one a snapshot prepared, if any is left */
    free((void *)d->cow.state);
    d->cow.state = NULL;
    d->cow.nchunks = 0;
}

int blk_ram_cow_prepare(struct blk *d)
{
    if (!d->cow.state)
        return 0;
    area_unmap(d); /* a snapshot that was refused after its prepare */
    if (d->cow.reserved)
        return 0; /* --snapshot-reserve: made once, kept */
    /* In 4 KiB pages, not huge ones: finding huge pages while the guest
     * runs makes the kernel compact memory, moving pages of the disk
     * itself, and a guest write to a page being moved waits (stalls of
     * 40-70 ms measured). */
    size_t len = d->cow.nchunks * COW_CHUNK;
    uint8_t *a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (a == MAP_FAILED)
        return -ENOMEM;
    (void)madvise(a, len, MADV_NOHUGEPAGE);
    /* Faulted in by one call, inside the kernel (much cheaper than a
     * fault per page).  EINVAL: a kernel before 5.14; the pages then come
     * as the guest writes. */
    if (madvise(a, len, MADV_POPULATE_WRITE) < 0 && errno != EINVAL) {
        int e = errno == ENOMEM || errno == EFAULT ? -ENOMEM : -errno;
        munmap(a, len);
        return e;
    }
    d->cow.area = a;
    d->cow.area_len = len;
    return 0;
}

void blk_ram_cow_arm(struct blk *d)
{
    if (!d->cow.state)
        return;
    /* No writer runs: the rings are stopped. */
    for (size_t i = 0; i < d->cow.nchunks; i++)
        atomic_store_explicit(&d->cow.state[i], COW_LIVE, memory_order_relaxed);
    atomic_store(&d->cow.copies, 0);
    atomic_store_explicit(&d->cow.armed, true, memory_order_release);
}

static size_t chunk_len(const struct blk *d, size_t i)
{
    uint64_t off = (uint64_t)i * COW_CHUNK;
    return d->size - off < COW_CHUNK ? (size_t)(d->size - off) : COW_CHUNK;
}

/* Where chunk i's copy goes. */
static uint8_t *copy_of(const struct blk *d, size_t i)
{
    return d->cow.area + (uint64_t)i * COW_CHUNK;
}
static void wait_kept(struct blk *d, size_t i)
{
    for (unsigned spins = 0;
         atomic_load_explicit(&d->cow.state[i], memory_order_acquire) != COW_KEPT; spins++)
        if (spins > 64)
            sched_yield(); /* the copier may have been preempted */
}

void blk_ram_cow_keep(struct blk *d, uint64_t off, uint64_t len)
{
    if (!len || !d->cow.state)
        return;
    size_t last = (size_t)((off + len - 1) / COW_CHUNK);
    for (size_t i = (size_t)(off / COW_CHUNK); i <= last && i < d->cow.nchunks; i++) {
        uint8_t st = atomic_load_explicit(&d->cow.state[i], memory_order_acquire);
        if (st == COW_KEPT)
            continue;
        if (st == COW_LIVE &&
            atomic_compare_exchange_strong_explicit(&d->cow.state[i], &st, COW_BUSY,
                                                    memory_order_acquire, memory_order_acquire)) {
            memcpy(copy_of(d, i), d->ram + (uint64_t)i * COW_CHUNK, chunk_len(d, i));
            atomic_fetch_add(&d->cow.copies, 1);
            atomic_store_explicit(&d->cow.state[i], COW_KEPT, memory_order_release);
            continue;
        }
        wait_kept(d, i); /* the snapshot, or another writer, is copying it */
    }
}

/* The snapshot's read of a chunk the guest may start writing meanwhile:
 * kept only if the chunk is still live after it (the compare-and-swap that
 * follows), which means no write to it had begun; thrown away otherwise.
 * A seqlock's read, racy by design: not instrumented by ThreadSanitizer,
 * and through volatile loads so that the compiler makes no memcpy call of
 * it (which ThreadSanitizer would intercept).  The disk's size and chunks
 * are multiples of 512 bytes, its start 2 MiB-aligned. */
__attribute__((no_sanitize("thread"))) static void read_racy(uint64_t *dst, const uint8_t *src,
                                                             size_t n)
{
    const volatile uint64_t *s = (const volatile uint64_t *)(const void *)src;
    for (size_t i = 0; i < n / sizeof(uint64_t); i++)
        dst[i] = s[i];
}

int blk_ram_save_kept(struct blk *d, struct vhu_state_writer *w)
{
    uint64_t *buf = malloc(COW_CHUNK);
    if (!buf)
        return -ENOMEM;
    int e = 0;
    for (size_t i = 0; i < d->cow.nchunks && e >= 0; i++) {
        size_t n = chunk_len(d, i);
        /* Never make a writer wait for this thread: it runs at a low
         * priority and may be preempted for long on a busy host.  So no
         * claim while copying: copy, then take the chunk only if it is
         * still live (a writer that claims it first keeps its own copy,
         * used below). */
        uint8_t st = atomic_load_explicit(&d->cow.state[i], memory_order_acquire);
        if (st == COW_LIVE) {
            read_racy(buf, d->ram + (uint64_t)i * COW_CHUNK, n);
            if (atomic_compare_exchange_strong_explicit(
                    &d->cow.state[i], &st, COW_KEPT, memory_order_acq_rel, memory_order_acquire)) {
                e = vhu_state_blob_write(w, buf, n);
                continue;
            }
        }
        wait_kept(d, i); /* a writer copied it aside (or is copying it) */
        e = vhu_state_blob_write(w, copy_of(d, i), n);
    }
    free(buf);
    return e;
}

void blk_ram_cow_disarm(struct blk *d)
{
    if (!d->cow.state)
        return;
    if (!atomic_load(&d->cow.armed)) {
        area_unmap(d); /* prepared, but the snapshot was refused */
        return;
    }
    /* Writers may be running: take every chunk not kept yet (nothing to
     * copy now), wait for those being copied, then unmap the copies, which
     * no writer touches once its chunk is COW_KEPT. */
    for (size_t i = 0; i < d->cow.nchunks; i++) {
        uint8_t st = COW_LIVE;
        if (!atomic_compare_exchange_strong(&d->cow.state[i], &st, COW_KEPT))
            wait_kept(d, i);
    }
    atomic_store_explicit(&d->cow.armed, false, memory_order_release);
    area_unmap(d);
}
