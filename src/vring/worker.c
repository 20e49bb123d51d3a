/* SPDX-License-Identifier: BSD-3-Clause */
/* Ring workers: one thread and one libev loop per started ring.  The kick
 * eventfd is an ev_io; an ev_async ends the loop.  Everything the loop
 * needs is set up before the thread starts, so starting and stopping are
 * ordered by pthread_create and pthread_join alone.
 *
 * Adaptive polling: when the ring runs empty the worker first watches the
 * avail index for a while (at most VHU_VRING_POLL_US microseconds from the
 * environment, default 20; 0 turns polling off) before it asks the driver
 * for a kick and sleeps.  A request that comes while it polls is served
 * without a kick (with EVENT_IDX the driver does not send one: avail_event
 * stays behind) and without waking a sleeping thread, which at low queue
 * depth costs more than the request.  The window adapts to
 * how often polling finds work (see poll_ring()). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include <vhu/vring.h>

#include "../common/internal.h"
#include "vring_internal.h"

struct vhu_vring_worker {
    struct vhu_vring *q;
    struct vhu_vring_io *vq;
    vhu_vring_fn fn;
    void *arg;
    struct ev_loop *loop;
    ev_io kick;
    ev_async stop;
    pthread_t thread;
    uint64_t poll_max_ns; /* 0: no polling */
    uint64_t poll_ns;     /* current window */
    unsigned poll_skips;  /* empty rings seen without polling */
};

#define POLL_DEFAULT_US 20u
#define POLL_MIN_NS 1000u
#define POLL_RETRY 64u

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static bool keep_serving(struct vhu_vring_worker *w)
{
    return vhu_vring_enabled(w->q) && !vhu_vring_io_broken(w->vq) &&
           !vhu_vring_io_stop_requested(w->vq);
}

/* Has the driver published a chain the worker has not taken?  (Reads only
 * what tells; pop checks it properly.) */
static bool avail_pending(struct vhu_vring_worker *w) { return vhu_vring_io_avail_pending(w->vq); }

/* Watch the avail index for up to poll_ns: true when there is work.  The
 * window adapts to how polling fares: it doubles (up to poll_max_ns) when a
 * poll finds work and halves when one gives up, down to nothing; with no
 * window left, every POLL_RETRY-th time the ring runs empty tries again
 * with the smallest.  So a driver that answers completions at once (on
 * another CPU) is served without kicks and wake-ups, and one that does not
 * (idle, or sharing this CPU) costs next to no spinning. */
static bool poll_ring(struct vhu_vring_worker *w)
{
    if (!w->poll_max_ns)
        return false;
    if (!w->poll_ns) {
        if (++w->poll_skips < POLL_RETRY)
            return false;
        w->poll_skips = 0;
        w->poll_ns = POLL_MIN_NS;
    }
    uint64_t start = now_ns();
    for (;;) {
        for (unsigned i = 0; i < 32; i++) {
            if (avail_pending(w)) {
                w->poll_ns = 2 * w->poll_ns < w->poll_max_ns ? 2 * w->poll_ns : w->poll_max_ns;
                return true;
            }
            cpu_relax();
        }
        if (!keep_serving(w))
            return false;
        if (now_ns() - start >= w->poll_ns)
            break;
    }
    w->poll_ns /= 2;
    if (w->poll_ns < POLL_MIN_NS)
        w->poll_ns = 0;
    return false;
}

static uint64_t poll_max_from_env(void)
{
    const char *s = getenv("VHU_VRING_POLL_US");
    if (!s || !*s)
        return POLL_DEFAULT_US * 1000ull;
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (*end || *s == '-' || v > 1000000)
        return POLL_DEFAULT_US * 1000ull;
    return (uint64_t)v * 1000u;
}

/* Serve the ring until it is empty, disabled or broken.  A disabled ring's
 * chains stay where they are (the library kicks the ring when it is enabled
 * again); after the device's function, pushed entries are published, the
 * ring polled for a while, then the driver asked for a kick, and if it
 * published more meanwhile we go on. */
static void serve(struct vhu_vring_worker *w)
{
    while (keep_serving(w)) {
        w->fn(w->vq, w->arg);
        vhu_vring_io_flush(w->vq);
        if (poll_ring(w))
            continue;
        if (!vhu_vring_io_enable_kick(w->vq))
            break;
    }
}

static void on_kick(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)revents;
    struct vhu_vring_worker *w = io->data;
    uint64_t n;
    /* The kick fd comes from the front-end and should be an eventfd (8-byte
     * counter, readable when non-zero).  Anything that reports end of file
     * or an error instead would wake this loop forever: stop watching it. */
    ssize_t r = read(io->fd, &n, sizeof(n));
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
        vhu_err("ring %u: kick fd %d is not readable as an eventfd (%s); no longer watched",
                vhu_vring_index(w->q), io->fd, r == 0 ? "end of file" : vhu_strerror(-errno));
        ev_io_stop(loop, io);
        return;
    }
    serve(w);
}

static void on_stop(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)a;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

static void *worker_main(void *arg)
{
    struct vhu_vring_worker *w = arg;
    char name[16]; /* what top -H and perf show */
    snprintf(name, sizeof(name), "vhu-ring%u", vhu_vring_index(w->q));
    (void)pthread_setname_np(pthread_self(), name);
    serve(w); /* chains published before the kick fd was given */
    ev_run(w->loop, 0);
    return NULL;
}

int vhu_vring_worker_start(struct vhu_vring_worker **out, struct vhu_vring *q, vhu_vring_fn fn,
                           void *arg)
{
    *out = NULL;
    if (!fn || vhu_vring_kick_fd(q) < 0)
        return -EINVAL;
    struct vhu_vring_worker *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->q = q;
    w->fn = fn;
    w->arg = arg;
    w->poll_max_ns = w->poll_ns = poll_max_from_env();
    int r = vhu_vring_io_new(&w->vq, q);
    if (r < 0) {
        free(w);
        return r;
    }
    /* EVFLAG_NOSIGMASK: libev must not touch the process's signal mask
     * (the server's loop handles signals). */
    w->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    if (!w->loop) {
        vhu_vring_io_free(w->vq);
        free(w);
        return -ENOMEM;
    }
    ev_io_init(&w->kick, on_kick, vhu_vring_kick_fd(q), EV_READ);
    w->kick.data = w;
    ev_io_start(w->loop, &w->kick);
    ev_async_init(&w->stop, on_stop);
    ev_async_start(w->loop, &w->stop);
    r = pthread_create(&w->thread, NULL, worker_main, w);
    if (r) {
        vhu_err("ring %u: cannot start its worker thread: %s", vhu_vring_index(q),
                vhu_strerror(-r));
        ev_loop_destroy(w->loop);
        vhu_vring_io_free(w->vq);
        free(w);
        return -r;
    }
    *out = w;
    return 0;
}

void vhu_vring_worker_stop(struct vhu_vring_worker *w)
{
    if (!w)
        return;
    /* The flag ends a busy serve() (a driver that keeps publishing); the
     * ev_async ends the loop, and one sent before the thread reaches ev_run
     * stays pending and ends it as soon as it runs. */
    vhu_vring_io_request_stop(w->vq);
    ev_async_send(w->loop, &w->stop);
    pthread_join(w->thread, NULL);
    unsigned left = vhu_vring_io_inflight(w->vq);
    if (left && !vhu_vring_io_broken(w->vq))
        vhu_warn("ring %u stopped with %u request(s) taken but not completed (kept only "
                 "in the inflight region, if the front-end gave one)",
                 vhu_vring_index(w->q), left);
    ev_loop_destroy(w->loop);
    vhu_vring_io_free(w->vq);
    free(w);
}
