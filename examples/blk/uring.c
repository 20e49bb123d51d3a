/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu-blk's io_uring path (--direct): each queue's worker submits reads and
 * writes to its own ring and reaps the completions (see blk.h). */
#include <errno.h>
#include <liburing.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "blk_internal.h"

/* With --direct, give queue bq an io_uring (once) when the kernel gives
 * one: it may be turned off, e.g. by a seccomp filter, and then the helper
 * threads do the work.  True when bq has one. */
bool blk_uring_open(struct blk *d, struct blk_queue *bq)
{
    if (atomic_load(&bq->uring))
        return true;
    if (d->dfd < 0)
        return false;
    /* COOP_TASKRUN: completions run when the worker enters the kernel
     * anyway, without an interrupt (Linux 5.19+; else plain). */
    int r = io_uring_queue_init(SLOTS, &bq->ring, IORING_SETUP_COOP_TASKRUN);
    if (r == -EINVAL)
        r = io_uring_queue_init(SLOTS, &bq->ring, 0);
    if (r < 0 && !atomic_exchange(&d->uring_refused, true))
        vhu_log(VHU_LOG_WARN,
                "blk: no io_uring (%s): --direct reads and writes go "
                "through helper threads",
                strerror(-r));
    atomic_store(&bq->uring, r == 0);
    return r == 0;
}

void blk_uring_close(struct blk_queue *bq)
{
    if (atomic_exchange(&bq->uring, false))
        io_uring_queue_exit(&bq->ring);
}

/* Queue read or write r (slot i) on the ring: on the O_DIRECT fd when its
 * buffers allow, else through the page cache.  false when the ring has no
 * room (it always has: SLOTS entries for SLOTS requests). */
bool blk_uring_queue(struct blk_queue *bq, struct blk_req *r, unsigned i)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&bq->ring);
    if (!sqe)
        return false;
    struct blk *d = bq->d;
    int fd = blk_direct_ok(d, r->data, r->n, r->off) ? d->dfd : d->fd;
    if (r->write)
        io_uring_prep_writev(sqe, fd, r->data, r->n, r->off);
    else
        io_uring_prep_readv(sqe, fd, r->data, r->n, r->off);
    io_uring_sqe_set_data64(sqe, i);
    return true;
}

/* The kernel's answer res for request r: done, or finished here
 * synchronously when it was short (the rest) or refused for an alignment
 * the file did not report (through the page cache). */
static void uring_finish(struct blk *d, struct blk_req *r, int res)
{
    int err = 0;
    if (res == -EINVAL || (res >= 0 && (uint64_t)res < r->len)) {
        struct iovec *iov = r->data;
        size_t done = res > 0 ? (size_t)res : 0;
        unsigned n = blk_iov_advance(&iov, r->n, done);
        err = blk_disk_io(d, r->write, iov, n, r->off + done);
    } else if (res < 0) {
        err = res;
    }
    r->written = blk_rw_result(r, err, &r->status);
    blk_put_status(r);
}

/* Submit what is queued and push what the kernel has finished; with
 * `wait`, first wait for at least one. */
void blk_uring_reap(struct vhu_vring_io *vq, struct blk_queue *bq, struct pipe *p, bool wait)
{
    for (;;) {
        int r = wait ? io_uring_submit_and_wait(&bq->ring, 1) : io_uring_submit(&bq->ring);
        if (r >= 0 || (r != -EINTR && r != -EAGAIN && r != -EBUSY))
            break;
        if (r != -EINTR)
            usleep(100); /* the kernel is short of something: a moment */
    }
    struct io_uring_cqe *cqe;
    unsigned n = 0;
    while (io_uring_peek_cqe(&bq->ring, &cqe) == 0) {
        uint64_t i = io_uring_cqe_get_data64(cqe);
        int res = cqe->res;
        io_uring_cqe_seen(&bq->ring, cqe);
        if (i >= SLOTS)
            continue; /* not ours: there is nothing else on this ring */
        uring_finish(bq->d, &bq->reqs[i], res);
        blk_complete(vq, bq, p, (unsigned)i);
        n++;
    }
    p->inflight -= n;
    if (n)
        vhu_vring_io_flush(vq);
}
