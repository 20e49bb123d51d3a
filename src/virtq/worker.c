/* Ring workers: one thread and one libev loop per started ring.  The kick
 * eventfd is an ev_io; an ev_async ends the loop.  Everything the loop
 * needs is set up before the thread starts, so starting and stopping are
 * ordered by pthread_create and pthread_join alone. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include <ev.h>

#include <vhu/virtq.h>

#include "../common/internal.h"
#include "virtq_internal.h"

struct vhu_virtq_worker {
    struct vhu_queue *q;
    struct vhu_virtq *vq;
    vhu_virtq_fn fn;
    void *arg;
    struct ev_loop *loop;
    ev_io kick;
    ev_async stop;
    pthread_t thread;
};

/* Serve the ring until it is empty, disabled or broken.  A disabled ring's
 * chains stay where they are (the library kicks the ring when it is enabled
 * again); after the device's function, pushed entries are published and the
 * driver asked for a kick, and if it published more meanwhile we go on. */
static void serve(struct vhu_virtq_worker *w)
{
    while (vhu_queue_enabled(w->q) && !vhu_virtq_broken(w->vq) &&
           !vhu_virtq_stop_requested(w->vq)) {
        w->fn(w->vq, w->arg);
        vhu_virtq_flush(w->vq);
        if (!vhu_virtq_enable_kick(w->vq))
            break;
    }
}

static void on_kick(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)revents;
    struct vhu_virtq_worker *w = io->data;
    uint64_t n;
    /* The kick fd comes from the front-end and should be an eventfd (8-byte
     * counter, readable when non-zero).  Anything that reports end of file
     * or an error instead would wake this loop forever: stop watching it. */
    ssize_t r = read(io->fd, &n, sizeof(n));
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
        vhu_err("ring %u: kick fd %d is not readable as an eventfd (%s); no longer watched",
                vhu_queue_index(w->q), io->fd, r == 0 ? "end of file" : vhu_strerror(-errno));
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
    struct vhu_virtq_worker *w = arg;
    serve(w); /* chains published before the kick fd was given */
    ev_run(w->loop, 0);
    return NULL;
}

int vhu_virtq_worker_start(struct vhu_virtq_worker **out, struct vhu_queue *q, vhu_virtq_fn fn,
                           void *arg)
{
    *out = NULL;
    if (!fn || vhu_queue_kick_fd(q) < 0)
        return -EINVAL;
    struct vhu_virtq_worker *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->q = q;
    w->fn = fn;
    w->arg = arg;
    int r = vhu_virtq_new(&w->vq, q);
    if (r < 0) {
        free(w);
        return r;
    }
    /* EVFLAG_NOSIGMASK: libev must not touch the process's signal mask
     * (the server's loop handles signals). */
    w->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    if (!w->loop) {
        vhu_virtq_free(w->vq);
        free(w);
        return -ENOMEM;
    }
    ev_io_init(&w->kick, on_kick, vhu_queue_kick_fd(q), EV_READ);
    w->kick.data = w;
    ev_io_start(w->loop, &w->kick);
    ev_async_init(&w->stop, on_stop);
    ev_async_start(w->loop, &w->stop);
    r = pthread_create(&w->thread, NULL, worker_main, w);
    if (r) {
        vhu_err("ring %u: cannot start its worker thread: %s", vhu_queue_index(q),
                vhu_strerror(-r));
        ev_loop_destroy(w->loop);
        vhu_virtq_free(w->vq);
        free(w);
        return -r;
    }
    *out = w;
    return 0;
}

void vhu_virtq_worker_stop(struct vhu_virtq_worker *w)
{
    if (!w)
        return;
    /* The flag ends a busy serve() (a driver that keeps publishing); the
     * ev_async ends the loop, and one sent before the thread reaches ev_run
     * stays pending and ends it as soon as it runs. */
    vhu_virtq_request_stop(w->vq);
    ev_async_send(w->loop, &w->stop);
    pthread_join(w->thread, NULL);
    unsigned left = vhu_virtq_inflight(w->vq);
    if (left && !vhu_virtq_broken(w->vq))
        vhu_warn("ring %u stopped with %u request(s) taken but not completed (kept only "
                 "in the inflight region, if the front-end gave one)", vhu_queue_index(w->q),
                 left);
    ev_loop_destroy(w->loop);
    vhu_virtq_free(w->vq);
    free(w);
}
