/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu-bench-populate: what faulting in fresh memory costs the other threads
 * of the same process on this machine, with no vhu code involved.
 *
 *   vhu-bench-populate [--mib N] [--rounds R] [--step-kib K]
 *
 * A vhu-blk live snapshot in its default mode maps a copy area as large as
 * the RAM disk and faults it in (MADV_POPULATE_WRITE, 4 KiB pages) on the
 * snapshot thread while the ring thread serves the guest.  This program
 * does the same with a plain thread: one thread (on CPU 0) keeps writing
 * one byte into a random page of a 256 MiB buffer and records the longest
 * time between two of its writes; another (on CPU 1) maps N MiB (default
 * 1024), faults it in (in steps of K KiB, default all at once), and unmaps
 * it in 8 MiB steps, R times (default 5).  Printed per round: the populate
 * and unmap times, and the first thread's longest stall while idle (the
 * reference, 0.7 s before), during the populate, and during the unmap.
 * On a host with hardware-assisted paging the three stalls should be alike;
 * a VM that shadows page tables shows what the populate costs the ring. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define TOUCH_BYTES (256u << 20)
#define UNMAP_STEP (8u << 20)

enum phase { IDLE, POPULATE, UNMAP, NPHASES };

static _Atomic int phase = IDLE;
static _Atomic bool stop;
static _Atomic uint64_t longest[NPHASES]; /* ns, written by the toucher only */

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void pin(int cpu)
{
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    (void)sched_setaffinity(0, sizeof(s), &s); /* one CPU: both run there, still measured */
}

/* The ring thread's stand-in: writes into memory it owns, as a ring thread
 * writes into guest memory and the disk, and notes its longest pause. */
static void *toucher(void *arg)
{
    volatile uint8_t *m = arg;
    pin(0);
    uint64_t last = now_ns(), pos = 0;
    int seen = IDLE;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        m[pos]++;
        pos = (pos + 4096u * 7919u) % TOUCH_BYTES; /* a different page each time */
        uint64_t t = now_ns();
        int p = atomic_load_explicit(&phase, memory_order_relaxed);
        if (p != seen) {
            seen = p; /* a gap across a phase change belongs to neither */
        } else if (t - last > atomic_load_explicit(&longest[p], memory_order_relaxed)) {
            atomic_store_explicit(&longest[p], t - last, memory_order_relaxed);
        }
        last = t;
    }
    return NULL;
}

static void set_phase(enum phase p)
{
    if (p == IDLE)
        for (int i = 0; i < NPHASES; i++)
            atomic_store(&longest[i], 0);
    atomic_store(&phase, p);
}

int main(int argc, char **argv)
{
    unsigned long mib = 1024, rounds = 5, step_kib = 0;
    static const struct option opts[] = {{"mib", required_argument, NULL, 'm'},
                                         {"rounds", required_argument, NULL, 'r'},
                                         {"step-kib", required_argument, NULL, 's'},
                                         {NULL, 0, NULL, 0}};
    for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        unsigned long *v = c == 'm' ? &mib : c == 'r' ? &rounds : c == 's' ? &step_kib : NULL;
        if (!v) {
            fprintf(stderr, "usage: %s [--mib N] [--rounds R] [--step-kib K]\n", argv[0]);
            return 2;
        }
        *v = strtoul(optarg, NULL, 0);
    }
    if (!mib || mib > (1ul << 20) || !rounds) {
        fprintf(stderr, "vhu-bench-populate: --mib 1..1048576, --rounds >= 1\n");
        return 2;
    }
    size_t len = (size_t)mib << 20, step = step_kib ? (size_t)step_kib << 10 : len;

    uint8_t *touch =
        mmap(NULL, TOUCH_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (touch == MAP_FAILED) {
        perror("vhu-bench-populate: mmap");
        return 1;
    }
    memset(touch, 1, TOUCH_BYTES); /* faulted in before anything is measured */
    pthread_t th;
    if (pthread_create(&th, NULL, toucher, touch)) {
        fprintf(stderr, "vhu-bench-populate: no thread\n");
        return 1;
    }
    pin(1);
    printf("populate %lu MiB of 4 KiB pages (%s), %lu rounds; longest stall of a thread of the "
           "same process writing memory on another CPU:\n",
           mib, step_kib ? "in steps" : "one call", rounds);
    int rc = 0;
    for (unsigned long r = 0; r < rounds && !rc; r++) {
        set_phase(IDLE);
        usleep(700000);
        uint64_t idle = atomic_load(&longest[IDLE]);
        set_phase(POPULATE);
        uint64_t t0 = now_ns();
        uint8_t *a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (a == MAP_FAILED) {
            perror("vhu-bench-populate: mmap");
            rc = 1;
            break;
        }
        (void)madvise(a, len, MADV_NOHUGEPAGE); /* 4 KiB pages, as vhu-blk's copy area */
        for (size_t off = 0; off < len && !rc; off += step)
            if (madvise(a + off, len - off < step ? len - off : step, MADV_POPULATE_WRITE) < 0) {
                fprintf(stderr, "vhu-bench-populate: MADV_POPULATE_WRITE: %s\n", strerror(errno));
                rc = 1;
            }
        uint64_t t1 = now_ns();
        set_phase(UNMAP);
        for (size_t off = 0; off < len; off += UNMAP_STEP)
            munmap(a + off, len - off < UNMAP_STEP ? len - off : UNMAP_STEP);
        uint64_t t2 = now_ns();
        usleep(1000); /* the toucher notes the unmap's last stall */
        printf("  round %lu: populate %.0f ms, unmap %.0f ms; stall idle %.2f ms, during populate "
               "%.2f ms, during unmap %.2f ms\n",
               r + 1, (double)(t1 - t0) / 1e6, (double)(t2 - t1) / 1e6, (double)idle / 1e6,
               (double)atomic_load(&longest[POPULATE]) / 1e6,
               (double)atomic_load(&longest[UNMAP]) / 1e6);
        fflush(stdout);
    }
    atomic_store(&stop, true);
    pthread_join(th, NULL);
    munmap(touch, TOUCH_BYTES);
    return rc;
}
