/* SPDX-License-Identifier: BSD-3-Clause */
/* SET_DEVICE_STATE_FD / CHECK_DEVICE_STATE: the transfer thread.
 *
 * SET checks the seed's three conditions (phase STOPPED, every ring
 * stopped, no transfer active), starts a thread and replies at once: the
 * front-end may read or write the pipe before it sends CHECK, so waiting
 * for CHECK before moving data would deadlock on a full pipe.
 *
 * SAVE streams header, handler record and the device's sections into the
 * fd, then closes it (EOF ends the stream).  LOAD reads and verifies the
 * whole stream into a staged state; only CHECK makes it live, and only if
 * everything verified.  A failed or abandoned load leaves handler and
 * device exactly as they were. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../backend/backend_internal.h"
#include "state_internal.h"

/* How long CHECK waits for the transfer to finish once the front-end says
 * it is done with the pipe; then the transfer is cancelled. */
#define CHECK_TIMEOUT_S 30

/* The transfer thread is started once per back-end and kept: creating a
 * thread and zstd contexts per transfer cost more than a small state's
 * whole round trip. */
struct vhu_state_worker {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct vhu_transfer *job;
    bool quit;
    ZSTD_CCtx *cctx;
    ZSTD_DCtx *dctx;
};

struct vhu_transfer {
    struct vhu_backend *b;
    uint32_t direction;
    int fd;
    int cancel_fd;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    int result;
    char why[480];
    struct vhu_snap_handler handler; /* SAVE: what to write; LOAD: what was read */
    void *staged;
    bool staged_live; /* load_begin succeeded: needs commit/discard */
};

static int tfail(struct vhu_transfer *t, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int tfail(struct vhu_transfer *t, int err, const char *fmt, ...)
{
    if (t->result)
        return t->result;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->why, sizeof(t->why), fmt, ap);
    va_end(ap);
    t->result = err < 0 ? err : -EIO;
    return t->result;
}

static const struct vhu_state_section *declared(const struct vhu_device_ops *ops, const char *name)
{
    for (unsigned i = 0; i < ops->num_sections; i++)
        if (strcmp(ops->sections[i].name, name) == 0)
            return &ops->sections[i];
    return NULL;
}

static void fill_header(const struct vhu_device_ops *ops, const struct vhu_snap_handler *hd,
                        struct vhu_snap_header *h)
{
    memset(h, 0, sizeof(*h));
    h->format = vhu_snap_format_for(hd);
    snprintf(h->device, sizeof(h->device), "%s", ops->name ? ops->name : "device");
    snprintf(h->producer, sizeof(h->producer), "vhu %s", vhu_version());
    h->nsections = ops->num_sections;
    for (unsigned i = 0; i < ops->num_sections; i++) {
        snprintf(h->sections[i].name, sizeof(h->sections[i].name), "%s", ops->sections[i].name);
        h->sections[i].version = ops->sections[i].version;
        h->sections[i].min_version = ops->sections[i].min_version;
        h->sections[i].optional = ops->sections[i].optional;
    }
}

/* Split rings: handler record version 1 (format 1, what every vhu build
 * reads).  Packed rings: version 2, each ring's avail and used positions
 * and wrap counters (QEMU's base encoding, split in its fields); a ring
 * that never had a base has the one its first start would give it (both
 * positions 0, both wrap counters 1). */
void vhu_state_fill_handler(const struct vhu_backend *b, struct vhu_snap_handler *h)
{
    bool packed = b->acked_features & VHU_BIT(VHU_F_RING_PACKED);
    memset(h, 0, sizeof(*h));
    h->version = packed ? 2 : 1;
    h->features = b->acked_features;
    h->protocol_features = b->acked_pf;
    h->nqueues = b->nqueues;
    for (unsigned i = 0; i < b->nqueues; i++) {
        const struct vhu_vring *vq = &b->vrings[i];
        struct vhu_snap_queue *q = &h->queues[i];
        *q = (struct vhu_snap_queue){.index = i,
                                     .size = vq->num,
                                     .last_avail = vq->last_avail,
                                     .enabled = atomic_load(&vq->enabled)};
        if (!packed)
            continue;
        uint16_t avail = vq->base_set ? vq->last_avail : 0x8000u;
        uint16_t used = vq->base_set ? vq->packed_used : 0x8000u;
        q->layout = VHU_SNAP_LAYOUT_PACKED;
        q->last_avail = avail & 0x7fffu;
        q->avail_wrap = avail >> 15;
        q->used_idx = used & 0x7fffu;
        q->used_wrap = used >> 15;
        q->have = VHU_SNAP_Q_PACKED_ALL;
    }
}

static int save_fail(char *why, size_t n, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int save_fail(char *why, size_t n, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
    return err < 0 ? err : -EIO;
}

int vhu_state_save_stream(struct vhu_backend *b, int fd, int cancel_fd, int workers,
                          ZSTD_CCtx *cctx, const struct vhu_snap_handler *hd, uint64_t *bytes,
                          char *why_out, size_t n)
{
    const struct vhu_device_ops *ops = b->ops;
    int ret = 0;
    *bytes = 0;
    struct vhu_state_writer *w = vhu_snap_writer_new(fd, cancel_fd, b->state_level, workers, cctx);
    if (!w)
        return save_fail(why_out, n, -ENOMEM, "out of memory");
    struct vhu_snap_header *h = malloc(sizeof(*h));
    const char *why;
    const char *where = "header";
    if (!h) {
        ret = save_fail(why_out, n, -ENOMEM, "out of memory");
        goto out;
    }
    fill_header(ops, hd, h);
    if (vhu_snap_write_header(w, h) < 0 || vhu_snap_write_handler(w, hd) < 0)
        goto werr;
    for (unsigned i = 0; i < ops->num_sections; i++) {
        const struct vhu_state_section *s = &ops->sections[i];
        where = s->name;
        if (vhu_snap_section_begin(w, s) < 0)
            goto werr;
        int e = ops->save_section(b->dev, s, w);
        if (vhu_snap_writer_error(w, &why))
            goto werr;
        if (e < 0) {
            ret = save_fail(why_out, n, e, "section '%s': the device failed to save it: %s",
                            s->name, vhu_strerror(e));
            goto out;
        }
        if (vhu_snap_section_end(w) < 0)
            goto werr;
    }
    where = "end";
    if (vhu_snap_write_end(w, ops->num_sections) < 0)
        goto werr;
    goto out;
werr:
    vhu_snap_writer_error(w, &why);
    ret = save_fail(why_out, n, vhu_snap_writer_error(w, NULL), "saving %s%s: %s",
                    strcmp(where, "header") && strcmp(where, "end") ? "section " : "the ", where,
                    why);
out:
    *bytes = vhu_snap_writer_bytes_out(w);
    free(h);
    vhu_snap_writer_free(w);
    return ret;
}

static void do_save(struct vhu_transfer *t)
{
    uint64_t bytes;
    char why[sizeof(t->why)];
    int e = vhu_state_save_stream(t->b, t->fd, t->cancel_fd, t->b->state_workers,
                                  t->b->state_worker->cctx, &t->handler, &bytes, why, sizeof(why));
    if (e < 0)
        tfail(t, e, "%s", why);
    else
        vhu_debug("state: saved %llu bytes", (unsigned long long)bytes);
}

/* Check the snapshot's handler record against this back-end. */
static int check_handler(struct vhu_transfer *t, const struct vhu_snap_handler *h)
{
    struct vhu_backend *b = t->b;
    if (h->features & ~b->features_offered)
        return tfail(t, -EINVAL,
                     "handler: the snapshot's features 0x%llx include 0x%llx, "
                     "which this back-end does not offer",
                     (unsigned long long)h->features,
                     (unsigned long long)(h->features & ~b->features_offered));
    if (h->nqueues > b->nqueues)
        return tfail(t, -EINVAL, "handler: the snapshot has %u queues, this device %u", h->nqueues,
                     b->nqueues);
    for (unsigned i = 0; i < h->nqueues; i++) {
        const struct vhu_snap_queue *q = &h->queues[i];
        if (q->index >= b->nqueues)
            return tfail(t, -EINVAL, "handler: queue index %u out of range", q->index);
        if (q->size && (!vhu_is_pow2(q->size) || q->size > b->max_queue_size))
            return tfail(t, -EINVAL, "handler: queue %u size %u", q->index, q->size);
    }
    /* Layouts, wrap counters, positions against sizes. */
    char why[200];
    if (vhu_snap_handler_check(h, why, sizeof(why)) < 0)
        return tfail(t, -EINVAL, "%s", why);
    return 0;
}

/* What the stream should hold is known from its header: refuse early what
 * this device cannot load. */
static int check_header(struct vhu_transfer *t, const struct vhu_snap_header *h)
{
    const struct vhu_device_ops *ops = t->b->ops;
    const char *me = ops->name ? ops->name : "device";
    if (strcmp(h->device, me) != 0)
        return tfail(t, -EINVAL, "the snapshot is of device '%s', this back-end runs '%s'",
                     h->device, me);
    for (unsigned i = 0; i < h->nsections; i++) {
        const struct vhu_snap_section_info *s = &h->sections[i];
        const struct vhu_state_section *d = declared(ops, s->name);
        if (!d && !s->optional)
            return tfail(t, -EINVAL,
                         "section '%s' (version %u) is unknown to this device and "
                         "not optional",
                         s->name, s->version);
        if (d && s->min_version > d->version)
            return tfail(t, -EPROTONOSUPPORT,
                         "section '%s' is version %u and needs a reader of "
                         "version %u or newer; this device reads up to version %u",
                         s->name, s->version, s->min_version, d->version);
    }
    for (unsigned i = 0; i < ops->num_sections; i++) {
        bool found = false;
        for (unsigned j = 0; j < h->nsections && !found; j++)
            found = strcmp(h->sections[j].name, ops->sections[i].name) == 0;
        if (!found && !ops->sections[i].optional)
            return tfail(t, -EINVAL, "section '%s' is missing from the snapshot",
                         ops->sections[i].name);
    }
    return 0;
}

static void do_load(struct vhu_transfer *t)
{
    const struct vhu_device_ops *ops = t->b->ops;
    struct vhu_state_reader *r = vhu_snap_reader_new(t->fd, t->cancel_fd, t->b->state_worker->dctx);
    struct vhu_snap_header *h = malloc(sizeof(*h));
    struct vhu_snap_section_info info;
    const char *why;
    unsigned nend = 0;
    int kind;
    if (!r || !h) {
        tfail(t, -ENOMEM, "out of memory");
        goto out;
    }
    if (vhu_snap_read_header(r, h) < 0) {
        vhu_snap_reader_error(r, &why);
        tfail(t, vhu_snap_reader_error(r, NULL), "%s", why);
        goto out;
    }
    if (check_header(t, h) < 0)
        goto out;
    if (ops->load_begin) {
        int e = ops->load_begin(t->b->dev, &t->staged);
        if (e < 0) {
            tfail(t, e, "the device could not start a load: %s", vhu_strerror(e));
            goto out;
        }
    }
    t->staged_live = true;
    kind = vhu_snap_next_record(r, &t->handler, &info, &nend);
    if (kind != 'h') {
        if (kind > 0)
            tfail(t, -EBADMSG, "the first record is not the handler's");
        goto rerr;
    }
    if (check_handler(t, &t->handler) < 0)
        goto out;
    for (unsigned i = 0; i < h->nsections; i++) {
        const struct vhu_snap_section_info *hs = &h->sections[i];
        kind = vhu_snap_next_record(r, NULL, &info, &nend);
        if (kind != 's') {
            if (kind > 0)
                tfail(t, -EBADMSG, "section '%s' listed in the header is not in the stream",
                      hs->name);
            goto rerr;
        }
        if (strcmp(info.name, hs->name) || info.version != hs->version ||
            info.min_version != hs->min_version || info.optional != hs->optional) {
            tfail(t, -EBADMSG,
                  "section record '%s' version %u does not match the header's "
                  "section %u ('%s' version %u)",
                  info.name, info.version, i, hs->name, hs->version);
            goto out;
        }
        const struct vhu_state_section *d = declared(ops, info.name);
        if (d) {
            int e = ops->load_section(t->b->dev, t->staged, d, info.version, r);
            if (vhu_snap_reader_error(r, &why)) {
                tfail(t, vhu_snap_reader_error(r, NULL), "section '%s' (version %u): %s", info.name,
                      info.version, why);
                goto out;
            }
            if (e < 0) {
                tfail(t, e, "section '%s' (version %u): the device refused it: %s", info.name,
                      info.version, vhu_strerror(e));
                goto out;
            }
        } else {
            vhu_info("state: skipping optional section '%s' (version %u) this device does "
                     "not know",
                     info.name, info.version);
        }
        if (vhu_snap_section_done(r) < 0) {
            vhu_snap_reader_error(r, &why);
            tfail(t, vhu_snap_reader_error(r, NULL), "section '%s' (version %u): %s", info.name,
                  info.version, why);
            goto out;
        }
    }
    kind = vhu_snap_next_record(r, NULL, &info, &nend);
    if (kind != 'e') {
        if (kind > 0)
            tfail(t, -EBADMSG, "a record follows the last section where the end record belongs");
        goto rerr;
    }
    if (nend != h->nsections) {
        tfail(t, -EBADMSG, "the end record counts %u sections, the header %u", nend, h->nsections);
        goto out;
    }
    if (ops->load_end) {
        int e = ops->load_end(t->b->dev, t->staged);
        if (e < 0)
            tfail(t, e, "the device refused the state as a whole: %s", vhu_strerror(e));
    }
    goto out;
rerr:
    vhu_snap_reader_error(r, &why);
    tfail(t, vhu_snap_reader_error(r, NULL), "%s", why);
out:
    if (t->result && t->staged_live) {
        if (ops->discard)
            ops->discard(t->b->dev, t->staged);
        t->staged_live = false;
        t->staged = NULL;
    }
    free(h);
    vhu_snap_reader_free(r);
}

static void run_transfer(struct vhu_transfer *t)
{
    if (t->direction == VHU_TRANSFER_SAVE)
        do_save(t);
    else
        do_load(t);
    /* EOF for the front-end: it reads (SAVE) until we close. */
    vhu_close_fd(&t->fd);
    pthread_mutex_lock(&t->lock);
    t->done = true;
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->lock);
    /* t belongs to the waiter from here on. */
}

static void *worker_thread(void *arg)
{
    struct vhu_state_worker *w = arg;
    (void)pthread_setname_np(pthread_self(), "vhu-transfer");
    /* A front-end that closes its end early must give us EPIPE, not kill the
     * process with SIGPIPE; a signal blocked in this thread stays here. */
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &s, NULL);
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->job && !w->quit)
            pthread_cond_wait(&w->cond, &w->lock);
        if (w->quit)
            break;
        struct vhu_transfer *t = w->job;
        w->job = NULL;
        pthread_mutex_unlock(&w->lock);
        run_transfer(t);
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

static int worker_get(struct vhu_backend *b)
{
    if (b->state_worker)
        return 0;
    struct vhu_state_worker *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->cctx = ZSTD_createCCtx();
    w->dctx = ZSTD_createDCtx();
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    int e = w->cctx && w->dctx ? pthread_create(&w->thread, NULL, worker_thread, w) : ENOMEM;
    if (e) {
        ZSTD_freeCCtx(w->cctx);
        ZSTD_freeDCtx(w->dctx);
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->cond);
        free(w);
        return -e;
    }
    b->state_worker = w;
    return 0;
}

void vhu_state_worker_free(struct vhu_backend *b)
{
    struct vhu_state_worker *w = b->state_worker;
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->quit = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    ZSTD_freeCCtx(w->cctx);
    ZSTD_freeDCtx(w->dctx);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    free(w);
    b->state_worker = NULL;
}

static void transfer_free(struct vhu_transfer *t)
{
    vhu_close_fd(&t->fd);
    vhu_close_fd(&t->cancel_fd);
    pthread_mutex_destroy(&t->lock);
    pthread_cond_destroy(&t->cond);
    free(t);
}

/* Wait for the transfer to end, cancelling it after `timeout_s` (at once
 * when timeout_s is 0). */
static void transfer_finish(struct vhu_transfer *t, int timeout_s)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_s;
    pthread_mutex_lock(&t->lock);
    while (!t->done && timeout_s > 0)
        if (pthread_cond_timedwait(&t->cond, &t->lock, &until) == ETIMEDOUT)
            break;
    if (!t->done) {
        uint64_t one = 1;
        if (write(t->cancel_fd, &one, sizeof(one)) < 0)
            vhu_err("state: cancelling the transfer: %s", vhu_strerror(-errno));
        while (!t->done)
            pthread_cond_wait(&t->cond, &t->lock);
        if (timeout_s && t->result == 0)
            t->result = -ETIMEDOUT;
        if (timeout_s)
            snprintf(t->why, sizeof(t->why),
                     "the transfer did not finish within %d s of "
                     "CHECK_DEVICE_STATE",
                     timeout_s);
    }
    pthread_mutex_unlock(&t->lock);
}

const char *vhu_transfer_state(const struct vhu_backend *b)
{
    if (!b->transfer)
        return "idle";
    return b->transfer->direction == VHU_TRANSFER_SAVE ? "save" : "load";
}

void vhu_transfer_abort(struct vhu_backend *b)
{
    struct vhu_transfer *t = b->transfer;
    if (!t)
        return;
    transfer_finish(t, 0);
    if (t->staged_live && b->ops->discard)
        b->ops->discard(b->dev, t->staged);
    vhu_info("state: transfer abandoned (front-end gone)");
    transfer_free(t);
    b->transfer = NULL;
}

int vhu_req_set_device_state_fd(struct vhu_req *r)
{
    struct vhu_backend *b = r->b;
    const struct vhu_device_state_params *p = &r->m->p.dstate;
    if (p->direction > VHU_TRANSFER_LOAD)
        return vhu_refuse(r, -EINVAL, "direction %u (want 0 SAVE or 1 LOAD)", p->direction);
    if (p->phase != VHU_PHASE_STOPPED)
        return vhu_refuse(r, -EINVAL, "migration phase %u (only 0, STOPPED, is defined)", p->phase);
    if (b->transfer)
        return vhu_refuse(r, -EBUSY, "a transfer is already active; CHECK_DEVICE_STATE ends it");
    for (unsigned i = 0; i < b->nqueues; i++)
        if (b->vrings[i].started)
            return vhu_refuse(r, -EBUSY, "ring %u is running; stop it with GET_VRING_BASE first",
                              i);
    int fd = r->m->fds[0];
    struct stat st;
    int fl = fcntl(fd, F_GETFL);
    if (fstat(fd, &st) < 0 || fl < 0)
        return vhu_refuse(r, -EBADF, "the fd cannot be examined");
    if (!S_ISFIFO(st.st_mode) && !S_ISSOCK(st.st_mode) && !S_ISREG(st.st_mode))
        return vhu_refuse(r, -EINVAL, "the fd is not a pipe, a socket or a regular file");
    int acc = fl & O_ACCMODE;
    if (p->direction == VHU_TRANSFER_SAVE ? acc == O_RDONLY : acc == O_WRONLY)
        return vhu_refuse(r, -EBADF, "a %s needs a %s fd", p->direction ? "LOAD" : "SAVE",
                          p->direction ? "readable" : "writable");
    /* Migration first: a live snapshot that reads the device's state
     * from this process ends now, before the transfer touches it. */
    vhu_control_snapshot_yield(b->control, p->direction == VHU_TRANSFER_SAVE
                                               ? "a device-state transfer (SAVE)"
                                               : "a device-state transfer (LOAD)");
    struct vhu_transfer *t = calloc(1, sizeof(*t));
    if (!t)
        return vhu_refuse(r, -ENOMEM, "out of memory");
    t->b = b;
    t->direction = p->direction;
    t->fd = -1;
    t->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->cond, NULL);
    if (t->cancel_fd < 0) {
        transfer_free(t);
        return vhu_refuse(r, -EMFILE, "no eventfd for the transfer");
    }
    /* Pipes and sockets go non-blocking so a cancelled transfer never
     * stays stuck in read or write. */
    if (!S_ISREG(st.st_mode) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        transfer_free(t);
        return vhu_refuse(r, -errno, "cannot make the fd non-blocking");
    }
    if (p->direction == VHU_TRANSFER_SAVE) {
        vhu_state_fill_handler(b, &t->handler);
    }
    int e = worker_get(b);
    if (e < 0) {
        transfer_free(t);
        return vhu_refuse(r, e, "cannot start the transfer thread");
    }
    t->fd = fd;
    r->m->fds[0] = -1;
    b->transfer = t;
    struct vhu_state_worker *w = b->state_worker;
    pthread_mutex_lock(&w->lock);
    w->job = t;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    /* Success; bit 8: we keep the fd we were given, none comes back. */
    r->rep->p.u64 = VHU_VRING_NOFD;
    return 0;
}

int vhu_req_check_device_state(struct vhu_req *r)
{
    struct vhu_backend *b = r->b;
    struct vhu_transfer *t = b->transfer;
    if (!t)
        return vhu_refuse(r, -EINVAL, "no state transfer is active (SET_DEVICE_STATE_FD first)");
    transfer_finish(t, CHECK_TIMEOUT_S);
    b->transfer = NULL;
    int e = t->result;
    if (e < 0) {
        vhu_refuse(r, e, "%s %s",
                   t->direction ? "LOAD failed, device unchanged:" : "SAVE failed:", t->why);
        if (t->staged_live && b->ops->discard)
            b->ops->discard(b->dev, t->staged);
        transfer_free(t);
        return e;
    }
    if (t->direction == VHU_TRANSFER_LOAD) {
        /* Everything verified: make it live.  Protocol features belong to
         * this session and are not taken from the snapshot. */
        b->acked_features = t->handler.features;
        for (unsigned i = 0; i < t->handler.nqueues; i++) {
            const struct vhu_snap_queue *q = &t->handler.queues[i];
            struct vhu_vring *vq = &b->vrings[q->index];
            vq->num = q->size;
            vq->last_avail = (uint16_t)q->last_avail;
            if (q->layout == VHU_SNAP_LAYOUT_PACKED) {
                /* Where the saving ring stopped: its next start goes on
                 * from here (as after SET_VRING_BASE). */
                vq->last_avail = (uint16_t)(q->last_avail | (unsigned)q->avail_wrap << 15);
                vq->packed_used = (uint16_t)(q->used_idx | (unsigned)q->used_wrap << 15);
                vq->base_set = true;
            }
            atomic_store(&vq->enabled, q->enabled);
        }
        if (t->staged_live && b->ops->commit)
            b->ops->commit(b->dev, t->staged);
        vhu_info("state: loaded and committed");
    }
    transfer_free(t);
    return 0;
}
