/* SPDX-License-Identifier: BSD-3-Clause */
/* The virtio-blk device (see blk.h); its io_uring path is in uring.c. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <linux/virtio_blk.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blk_internal.h"
#include "state_decls.h"

/* Flush the used ring at least this often while a long batch runs, so the
 * driver sees completions before the ring is empty. */
#define FLUSH_EVERY 32

/* ---- iovec helpers ---- */

/* Copy up to len bytes starting `skip` bytes into iov to buf; returns the
 * count copied. */
static size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t skip, void *buf, size_t len)
{
    size_t done = 0;
    for (unsigned i = 0; i < n && done < len; i++) {
        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        size_t c = iov[i].iov_len - skip;
        if (c > len - done)
            c = len - done;
        memcpy((uint8_t *)buf + done, (uint8_t *)iov[i].iov_base + skip, c);
        done += c;
        skip = 0;
    }
    return done;
}

/* dst = the `len` bytes of iov starting `skip` bytes in; returns the
 * number of entries (dst has room for VHU_VRING_MAX_SEGS). */
static unsigned iov_slice(const struct iovec *iov, unsigned n, size_t skip, size_t len,
                          struct iovec *dst)
{
    unsigned k = 0;
    for (unsigned i = 0; i < n && len; i++) {
        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        size_t c = iov[i].iov_len - skip;
        if (c > len)
            c = len;
        dst[k++] = (struct iovec){(uint8_t *)iov[i].iov_base + skip, c};
        len -= c;
        skip = 0;
    }
    return k;
}

/* ---- the disk ---- */

/* Is [sector, sector + bytes / 512) inside the disk?  Overflow-safe. */
static bool in_range(const struct blk *d, uint64_t sector, uint64_t bytes)
{
    uint64_t sectors = __atomic_load_n(&d->size, __ATOMIC_ACQUIRE) / BLK_SECTOR;
    return sector <= sectors && bytes / BLK_SECTOR <= sectors - sector;
}

/* Drop the first `done` bytes of *iov (n entries); returns the entries left. */
unsigned blk_iov_advance(struct iovec **iov, unsigned n, size_t done)
{
    while (n && done >= (*iov)->iov_len) {
        done -= (*iov)->iov_len;
        (*iov)++;
        n--;
    }
    if (n) {
        (*iov)->iov_base = (uint8_t *)(*iov)->iov_base + done;
        (*iov)->iov_len -= done;
    }
    return n;
}

/* With --direct, may this transfer bypass the page cache?  O_DIRECT wants
 * the offset, and every buffer's address and length, aligned; a request
 * that is not (a guest may split a sector across descriptors) goes through
 * the page cache instead, which the kernel keeps coherent with direct I/O
 * on the same file. */
bool blk_direct_ok(const struct blk *d, const struct iovec *iov, unsigned n, uint64_t off)
{
    if (d->dfd < 0 || (off & d->dio_off_mask))
        return false;
    for (unsigned i = 0; i < n; i++)
        if (((uintptr_t)iov[i].iov_base & d->dio_mem_mask) || (iov[i].iov_len & d->dio_off_mask))
            return false;
    return true;
}

static ssize_t rw(int fd, bool write, const struct iovec *iov, unsigned n, uint64_t off)
{
    return write ? pwritev(fd, iov, (int)n, (off_t)off) : preadv(fd, iov, (int)n, (off_t)off);
}

/* Read or write the whole iovec at off; partial transfers continue, a
 * transfer that makes no progress (the image shrank under us) fails. */
int blk_disk_io(struct blk *d, bool write, struct iovec *iov, unsigned n, uint64_t off)
{
    if (d->ram) {
        for (unsigned i = 0; i < n; i++) {
            if (write && atomic_load_explicit(&d->cow.armed, memory_order_acquire))
                blk_ram_cow_keep(d, off, iov[i].iov_len);
            if (write)
                memcpy(d->ram + off, iov[i].iov_base, iov[i].iov_len);
            else
                memcpy(iov[i].iov_base, d->ram + off, iov[i].iov_len);
            off += iov[i].iov_len;
        }
        return 0;
    }
    while (n) {
        bool direct = blk_direct_ok(d, iov, n, off);
        ssize_t r = rw(direct ? d->dfd : d->fd, write, iov, n, off);
        /* An alignment rule the file did not report: the page cache then. */
        if (r < 0 && errno == EINVAL && direct)
            r = rw(d->fd, write, iov, n, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? -errno : -EIO;
        off += (uint64_t)r;
        n = blk_iov_advance(&iov, n, (size_t)r);
    }
    return 0;
}

static int write_zeroes(struct blk *d, uint64_t off, uint64_t len, bool unmap)
{
    if (d->ram) {
        if (atomic_load_explicit(&d->cow.armed, memory_order_acquire))
            blk_ram_cow_keep(d, off, len);
        memset(d->ram + off, 0, len);
        return 0;
    }
    /* Deallocate when allowed, else zero in place; a file system or device
     * that cannot do either gets explicit zeroes. */
    int mode = unmap ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
                     : FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
    if (fallocate(d->fd, mode, (off_t)off, (off_t)len) == 0)
        return 0;
    static const uint8_t zeroes[64 * 1024];
    while (len) {
        size_t c = len < sizeof(zeroes) ? (size_t)len : sizeof(zeroes);
        ssize_t r = pwrite(d->fd, zeroes, c, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? -errno : -EIO;
        off += (uint64_t)r;
        len -= (uint64_t)r;
    }
    return 0;
}

/* ---- requests ---- */

/* DISCARD and WRITE_ZEROES: `data` holds max_*_seg (1) segment
 * descriptors {le64 sector, le32 num_sectors, le32 flags}. */
static uint8_t discard_or_zero(struct blk *d, bool zero, const struct iovec *data, unsigned n,
                               uint64_t len)
{
    struct virtio_blk_discard_write_zeroes seg;
    if (len != sizeof(seg))
        return VIRTIO_BLK_S_IOERR; /* none, several (max_*_seg is 1), or torn */
    iov_to_buf(data, n, 0, &seg, sizeof(seg));
    uint64_t sector = le64toh(seg.sector);
    uint32_t num = le32toh(seg.num_sectors);
    uint32_t flags = le32toh(seg.flags);
    uint32_t allowed = zero ? VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP : 0;
    if (flags & ~allowed)
        return VIRTIO_BLK_S_UNSUPP;
    if (d->ro || num > BLK_MAX_ZERO_SECTORS || !in_range(d, sector, (uint64_t)num * BLK_SECTOR))
        return VIRTIO_BLK_S_IOERR;
    /* A discarded range reads back as zeroes here: simplest for a driver
     * and for the tests, and allowed by the spec. */
    bool unmap = !zero || (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
    return write_zeroes(d, sector * BLK_SECTOR, (uint64_t)num * BLK_SECTOR, unmap) == 0
               ? VIRTIO_BLK_S_OK
               : VIRTIO_BLK_S_IOERR;
}

/* A read (IN) or write (OUT) at `sector`: checked, and its data buffers
 * sliced into r->data.  VIRTIO_BLK_S_OK, or the status to answer with. */
static uint8_t rw_setup(struct blk *d, struct blk_req *r, bool write, uint64_t sector)
{
    const struct vhu_vring_elem *e = &r->elem;
    const size_t hdr = sizeof(struct virtio_blk_outhdr);
    /* Data after the header (writes), before the status byte (reads). */
    uint64_t len = write ? e->out_bytes - hdr : e->in_bytes - 1;
    /* The used length (data + status) must fit its 32 bits. */
    if ((write && d->ro) || len % BLK_SECTOR || len >= UINT32_MAX || !in_range(d, sector, len))
        return VIRTIO_BLK_S_IOERR;
    r->n = write ? iov_slice(e->iov, e->n_out, hdr, len, r->data)
                 : iov_slice(e->iov + e->n_out, e->n_in, 0, len, r->data);
    r->write = write;
    r->off = sector * BLK_SECTOR;
    r->len = len;
    return VIRTIO_BLK_S_OK;
}

/* A read or write done with result err (0 or a negative errno): its status,
 * and the bytes it wrote into the driver's buffers. */
uint32_t blk_rw_result(const struct blk_req *r, int err, uint8_t *status)
{
    *status = err == 0 ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR;
    return err == 0 && !r->write ? (uint32_t)r->len : 0;
}

/* Serve one request; returns the bytes written into the driver's writable
 * buffers before the status byte. */
static uint32_t handle_req(struct blk *d, struct blk_req *r, uint8_t *status)
{
    struct vhu_vring_elem *e = &r->elem;
    struct virtio_blk_outhdr h;
    const struct iovec *out = e->iov, *in = e->iov + e->n_out;
    /* Copy the header once: the driver may change it while we work. */
    iov_to_buf(out, e->n_out, 0, &h, sizeof(h));
    uint32_t type = le32toh(h.type);
    uint64_t sector = le64toh(h.sector);
    uint64_t out_len = e->out_bytes - sizeof(h); /* data after the header */
    uint64_t in_len = e->in_bytes - 1;           /* data before the status */
    unsigned n;

    switch (type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT:
        if ((*status = rw_setup(d, r, type == VIRTIO_BLK_T_OUT, sector)) != VIRTIO_BLK_S_OK)
            return 0;
        return blk_rw_result(r, blk_disk_io(d, r->write, r->data, r->n, r->off), status);
    case VIRTIO_BLK_T_FLUSH:
        *status = d->ram || fdatasync(d->fd) == 0 ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR;
        return 0;
    case VIRTIO_BLK_T_GET_ID: {
        /* 20 bytes, NUL-padded (not terminated when all 20 are used). */
        size_t c = in_len < sizeof(d->id) ? (size_t)in_len : sizeof(d->id);
        n = iov_slice(in, e->n_in, 0, c, r->data);
        size_t done = 0;
        for (unsigned i = 0; i < n; i++) {
            memcpy(r->data[i].iov_base, d->id + done, r->data[i].iov_len);
            done += r->data[i].iov_len;
        }
        *status = VIRTIO_BLK_S_OK;
        return (uint32_t)c;
    }
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES:
        n = iov_slice(out, e->n_out, sizeof(h), out_len, r->data);
        *status = discard_or_zero(d, type == VIRTIO_BLK_T_WRITE_ZEROES, r->data, n, out_len);
        return 0;
    default: *status = VIRTIO_BLK_S_UNSUPP; return 0;
    }
}

/* Write r's status byte (the last byte of the last writable buffer). */
void blk_put_status(struct blk_req *r)
{
    const struct iovec *last = &r->elem.iov[r->elem.n_out + r->elem.n_in - 1];
    ((uint8_t *)last->iov_base)[last->iov_len - 1] = r->status;
}

/* Serve request r and write its status byte. */
static void handle(struct blk *d, struct blk_req *r)
{
    r->written = handle_req(d, r, &r->status);
    blk_put_status(r);
}

/* Take the oldest queued request, serve it outside the lock and move it to
 * `done`.  Called with bq->mu held and todo_n > 0; returns with it held. */
static void run_queued(struct blk_queue *bq)
{
    unsigned i = bq->todo[bq->todo_head];
    bq->todo_head = (bq->todo_head + 1) % SLOTS;
    bq->todo_n--;
    pthread_mutex_unlock(&bq->mu);
    handle(bq->d, &bq->reqs[i]);
    pthread_mutex_lock(&bq->mu);
    bq->done[bq->done_n++] = i;
}

static void *helper_main(void *arg)
{
    struct blk_queue *bq = arg;
    (void)pthread_setname_np(pthread_self(), "blk-helper");
    pthread_mutex_lock(&bq->mu);
    for (;;) {
        while (!bq->quit && !bq->todo_n)
            pthread_cond_wait(&bq->work, &bq->mu);
        if (bq->quit)
            break;
        run_queued(bq);
        pthread_cond_signal(&bq->finished);
    }
    pthread_mutex_unlock(&bq->mu);
    return NULL;
}

void blk_complete(struct vhu_vring_io *vq, struct blk_queue *bq, struct pipe *p, unsigned i)
{
    vhu_vring_io_push(vq, &bq->reqs[i].elem, bq->reqs[i].written + 1);
    atomic_fetch_add_explicit(&bq->completed, 1, memory_order_relaxed);
    p->free[p->nfree++] = i;
    if (++p->unflushed >= FLUSH_EVERY) {
        vhu_vring_io_flush(vq);
        p->unflushed = 0;
    }
}

/* Push what the helpers (or the kernel) have finished; with `wait`, first
 * wait for at least one (doing a queued request here meanwhile rather than
 * idling). */
static void reap(struct vhu_vring_io *vq, struct blk_queue *bq, struct pipe *p, bool wait)
{
    if (bq->uring) {
        blk_uring_reap(vq, bq, p, wait);
        return;
    }
    unsigned got[SLOTS], n;
    pthread_mutex_lock(&bq->mu);
    while (wait && !bq->done_n) {
        if (bq->todo_n) {
            run_queued(bq);
        } else {
            pthread_cond_wait(&bq->finished, &bq->mu);
        }
    }
    n = bq->done_n;
    for (unsigned k = 0; k < n; k++)
        got[k] = bq->done[k];
    bq->done_n = 0;
    pthread_mutex_unlock(&bq->mu);
    for (unsigned k = 0; k < n; k++)
        blk_complete(vq, bq, p, got[k]);
    p->inflight -= n;
    if (n) /* let the driver refill while the rest is being done */
        vhu_vring_io_flush(vq);
}

/* Ring worker function: take every available request (up to SLOTS in
 * flight), small ones done at once, large reads and writes by the helpers;
 * return when the ring is empty and everything taken is complete. */
static void serve(struct vhu_vring_io *vq, void *arg)
{
    struct blk_queue *bq = arg;
    struct pipe p = {.nfree = SLOTS};
    for (unsigned i = 0; i < SLOTS; i++)
        p.free[i] = SLOTS - 1 - i;
    bool malformed = false;
    for (;;) {
        bool took = false;
        while (p.nfree && !malformed) {
            unsigned i = p.free[p.nfree - 1];
            struct blk_req *r = &bq->reqs[i];
            if (vhu_vring_io_pop(vq, &r->elem) != 1)
                break;
            p.nfree--;
            took = true;
            const struct vhu_vring_elem *e = &r->elem;
            if (e->out_bytes < sizeof(struct virtio_blk_outhdr) || e->in_bytes < 1) {
                /* Nowhere to put a status: the request cannot be answered,
                 * and a driver that sends it is broken.  What is in flight
                 * is completed first. */
                malformed = true;
                break;
            }
            /* The type as it is now decides where the request goes;
             * handle() reads its own copy, and one whose type changed
             * meanwhile is still served correctly. */
            struct virtio_blk_outhdr h;
            iov_to_buf(e->iov, e->n_out, 0, &h, sizeof(h));
            uint32_t type = le32toh(h.type);
            bool rw = type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_OUT;
            /* With io_uring, to the kernel; one refused (or, which cannot
             * happen, with no room on the ring) is answered below. */
            if (rw && atomic_load(&bq->uring) &&
                rw_setup(bq->d, r, type == VIRTIO_BLK_T_OUT, le64toh(h.sector)) ==
                    VIRTIO_BLK_S_OK &&
                blk_uring_queue(bq, r, i)) {
                p.inflight++;
                continue;
            }
            if (rw && bq->nhelpers && e->out_bytes + e->in_bytes >= PAR_MIN_BYTES) {
                pthread_mutex_lock(&bq->mu);
                bq->todo[(bq->todo_head + bq->todo_n) % SLOTS] = i;
                bq->todo_n++;
                pthread_cond_signal(&bq->work);
                pthread_mutex_unlock(&bq->mu);
                p.inflight++;
                continue;
            }
            /* Anything but a read or write (a FLUSH covers the writes
             * completed before it) waits for what is in flight. */
            while (!rw && p.inflight)
                reap(vq, bq, &p, true);
            handle(bq->d, r);
            blk_complete(vq, bq, &p, i);
        }
        if (p.inflight)
            reap(vq, bq, &p, !took || !p.nfree || malformed);
        else if (!took || malformed)
            break;
    }
    if (malformed)
        vhu_vring_io_set_broken(vq, "virtio-blk request without a 16-byte header or a "
                                    "writable status byte");
}

/* ---- device callbacks ---- */

static uint64_t blk_features(void *dev)
{
    struct blk *d = dev;
    /* LOG_ALL: every write into guest memory goes through the vring
     * layer, which logs it. */
    uint64_t f = VHU_BIT(VHU_F_VERSION_1) | VHU_BIT(VHU_F_LOG_ALL) | VHU_BIT(VHU_F_RING_EVENT_IDX) |
                 VHU_BIT(VHU_F_RING_INDIRECT_DESC) | VHU_BIT(VIRTIO_BLK_F_SEG_MAX) |
                 VHU_BIT(VIRTIO_BLK_F_BLK_SIZE) | VHU_BIT(VIRTIO_BLK_F_FLUSH) |
                 VHU_BIT(VIRTIO_BLK_F_DISCARD) | VHU_BIT(VIRTIO_BLK_F_WRITE_ZEROES);
    if (d->nq > 1)
        f |= VHU_BIT(VIRTIO_BLK_F_MQ);
    if (d->ro)
        f |= VHU_BIT(VIRTIO_BLK_F_RO);
    if (d->packed)
        f |= VHU_BIT(VHU_F_RING_PACKED);
    return f;
}

static int blk_get_config(void *dev, uint32_t off, void *buf, uint32_t len)
{
    struct blk *d = dev;
    pthread_mutex_lock(&d->config_lock);
    memcpy(buf, (uint8_t *)&d->config + off, len); /* range checked by the library */
    pthread_mutex_unlock(&d->config_lock);
    return 0;
}

static void stop_helpers(struct blk_queue *bq)
{
    pthread_mutex_lock(&bq->mu);
    bq->quit = true;
    pthread_cond_broadcast(&bq->work);
    pthread_mutex_unlock(&bq->mu);
    for (unsigned i = 0; i < bq->nhelpers; i++)
        pthread_join(bq->helper[i], NULL);
    bq->nhelpers = 0;
    bq->quit = false;
    bq->todo_head = bq->todo_n = bq->done_n = 0; /* empty already: serve() waits */
}

static int blk_start_queue(void *dev, struct vhu_vring *q)
{
    struct blk *d = dev;
    struct blk_queue *bq = &d->q[vhu_vring_index(q)];
    if (blk_uring_open(d, bq)) { /* then no helpers */
        int r = vhu_vring_worker_start(&bq->worker, q, serve, bq);
        if (r < 0)
            blk_uring_close(bq);
        return r;
    }
    /* Helpers are an optimisation: without them (no thread to be had)
     * the worker serves every batch itself. */
    for (unsigned i = 0; i < HELPERS; i++) {
        if (pthread_create(&bq->helper[i], NULL, helper_main, bq) != 0)
            break;
        bq->nhelpers++;
    }
    int r = vhu_vring_worker_start(&bq->worker, q, serve, bq);
    if (r < 0)
        stop_helpers(bq);
    return r;
}

static void blk_stop_queue(void *dev, struct vhu_vring *q)
{
    struct blk *d = dev;
    struct blk_queue *bq = &d->q[vhu_vring_index(q)];
    vhu_vring_worker_stop(bq->worker); /* no batch runs after this */
    bq->worker = NULL;
    blk_uring_close(bq);
    stop_helpers(bq);
}

static const struct vhu_device_ops blk_base_ops = {
    .size = sizeof(struct vhu_device_ops),
    .name = "blk",
    .max_queue_size = 1024,
    .config_size = sizeof(struct virtio_blk_config),
    .features = blk_features,
    .get_config = blk_get_config,
    .start_vring = blk_start_queue,
    .stop_vring = blk_stop_queue,
    /* The vring layer records every request in the inflight region. */
    .tracks_inflight = true,
};

/* ---- device state ----
 *
 * Every vhu-blk offers device state (SET_DEVICE_STATE_FD).  Section
 * "config" is the disk as the driver sees it: capacity, block size,
 * read-only, writeback, queue count and the ID GET_ID answers.  The
 * driver read them at start and will not read them again, so a
 * destination that differs in any (the wrong image, a resized one,
 * another --serial) would corrupt the guest's view: a load compares each
 * with this back-end's own and refuses the first that differs.  The
 * section is optional, so a snapshot from a build without it (the golden
 * RAM snapshot has only "disk") still loads, and an older vhu-blk skips it.
 *
 * With --ram the disk's contents are device state too: section "disk",
 * the size and the bytes as a blob.  A load fills a staged buffer and
 * only a verified stream replaces the live disk, so a failed load leaves
 * the disk as it was.  An image's data is not device state: the
 * destination opens the same, shared image; only its identity travels. */

#define STATE_CHUNK (1u << 20)

struct blk_staged {
    uint8_t *ram;
};

/* Writes are cached until FLUSH: VIRTIO_BLK_F_FLUSH is always offered and
 * CONFIG_WCE never, so the cache mode cannot change (virtio 1.x 5.2.6.2). */
static bool blk_writeback(const struct blk *d)
{
    (void)d;
    return true;
}

static int save_config(struct blk *d, struct vhu_state_writer *w)
{
    char serial[VIRTIO_BLK_ID_BYTES + 1] = {0};
    memcpy(serial, d->id, sizeof(d->id));
    vhu_state_put_u64(w, "capacity", blk_size(d) / BLK_SECTOR);
    vhu_state_put_u64(w, "block_size", le32toh(d->config.blk_size));
    vhu_state_put_bool(w, "read_only", d->ro);
    vhu_state_put_bool(w, "writeback", blk_writeback(d));
    vhu_state_put_u64(w, "queues", d->nq);
    return vhu_state_put_str(w, "serial", serial); /* errors are sticky: this one tells */
}

static int blk_save_section(void *dev, const struct vhu_state_section *s,
                            struct vhu_state_writer *w)
{
    struct blk *d = dev;
    if (strcmp(s->name, "config") == 0)
        return save_config(d, w);
    vhu_state_put_u64(w, "size", d->size);
    vhu_state_blob_begin(w, "data");
    /* A live snapshot of ours (blk_snapshot_begin): the disk as it was. */
    if (atomic_load(&d->cow.armed)) {
        int e = blk_ram_save_kept(d, w);
        return e < 0 ? e : vhu_state_blob_end(w);
    }
    for (uint64_t off = 0; off < d->size; off += STATE_CHUNK) {
        uint64_t n = d->size - off < STATE_CHUNK ? d->size - off : STATE_CHUNK;
        vhu_state_blob_write(w, d->ram + off, (size_t)n);
    }
    return vhu_state_blob_end(w); /* errors are sticky: this one tells */
}

static int blk_load_begin(void *dev, void **staged)
{
    (void)dev;
    *staged = calloc(1, sizeof(struct blk_staged));
    return *staged ? 0 : -ENOMEM;
}

/* A serial from a snapshot, quoted for a log line: it is hostile and may
 * hold control characters (UTF-8 beyond ASCII shown as \x escapes too). */
static const char *quote_id(const char *id, char out[4 * VIRTIO_BLK_ID_BYTES + 3])
{
    char *o = out;
    *o++ = '"';
    for (size_t i = 0; i < VIRTIO_BLK_ID_BYTES && id[i]; i++) {
        unsigned char c = (unsigned char)id[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
            *o++ = (char)c;
        else
            o += sprintf(o, "\\x%02x", c);
    }
    *o++ = '"';
    *o = 0;
    return out;
}

/* Each field of "config" against this back-end's own: the first that
 * differs is refused, naming it and both values. */
static int load_config(struct blk *d, struct vhu_state_reader *r)
{
    uint64_t capacity, block_size, queues;
    bool ro, writeback;
    char serial[VIRTIO_BLK_ID_BYTES + 1];
    if (vhu_state_get_u64(r, "capacity", &capacity) < 0 ||
        vhu_state_get_u64(r, "block_size", &block_size) < 0 ||
        vhu_state_get_bool(r, "read_only", &ro) < 0 ||
        vhu_state_get_bool(r, "writeback", &writeback) < 0 ||
        vhu_state_get_u64(r, "queues", &queues) < 0 ||
        vhu_state_get_str(r, "serial", serial, sizeof(serial)) < 0)
        return -EBADMSG; /* the reader's own message names the field */
    uint64_t mine = blk_size(d) / BLK_SECTOR;
    if (capacity != mine)
        return vhu_state_fail(r, -EINVAL, "capacity: snapshot %llu sectors, this disk %llu",
                              (unsigned long long)capacity, (unsigned long long)mine);
    if (block_size != le32toh(d->config.blk_size))
        return vhu_state_fail(r, -EINVAL, "block_size: snapshot %llu bytes, this disk %u",
                              (unsigned long long)block_size, le32toh(d->config.blk_size));
    if (ro != d->ro)
        return vhu_state_fail(r, -EINVAL, "read_only: snapshot %s, this disk %s",
                              ro ? "true" : "false", d->ro ? "true" : "false");
    if (writeback != blk_writeback(d))
        return vhu_state_fail(r, -EINVAL, "writeback: snapshot %s, this disk %s",
                              writeback ? "true" : "false", blk_writeback(d) ? "true" : "false");
    if (queues != d->nq)
        return vhu_state_fail(r, -EINVAL, "queues: snapshot %llu, this disk %u",
                              (unsigned long long)queues, d->nq);
    char id[VIRTIO_BLK_ID_BYTES + 1] = {0};
    memcpy(id, d->id, sizeof(d->id));
    if (strcmp(serial, id) != 0) {
        char a[4 * VIRTIO_BLK_ID_BYTES + 3], b[4 * VIRTIO_BLK_ID_BYTES + 3];
        return vhu_state_fail(r, -EINVAL, "serial: snapshot %s, this disk %s", quote_id(serial, a),
                              quote_id(id, b));
    }
    return 0;
}

static int blk_load_section(void *dev, void *staged, const struct vhu_state_section *s,
                            uint32_t version, struct vhu_state_reader *r)
{
    (void)version; /* version 1 only; a newer writer's extra fields are skipped */
    struct blk *d = dev;
    struct blk_staged *st = staged;
    if (strcmp(s->name, "config") == 0)
        return load_config(d, r);
    uint64_t size;
    int e = vhu_state_get_u64(r, "size", &size);
    if (e < 0)
        return e;
    /* The driver was told the capacity at start: it cannot change. */
    if (size != d->size)
        return vhu_state_fail(r, -EINVAL,
                              "a disk of %llu bytes cannot be loaded into one of "
                              "%llu",
                              (unsigned long long)size, (unsigned long long)d->size);
    blk_ram_free(st->ram, size);
    st->ram = blk_ram_alloc(size);
    if (!st->ram)
        return -ENOMEM;
    /* Exactly `size` bytes: a longer blob is refused by
     * vhu_state_get_bytes, a shorter one here. */
    size_t got;
    if ((e = vhu_state_get_bytes(r, "data", st->ram, (size_t)size, &got)) < 0)
        return e;
    if (got != size)
        return vhu_state_fail(r, -EBADMSG, "disk data has %llu of %llu bytes",
                              (unsigned long long)got, (unsigned long long)size);
    return 0;
}

static int blk_load_end(void *dev, void *staged)
{
    struct blk *d = dev;
    struct blk_staged *st = staged;
    /* "disk" is not optional for a RAM disk; be sure anyway.  An image's
     * load stages nothing: "config" only checks. */
    return d->ram && !st->ram ? -EBADMSG : 0;
}

static void blk_commit(void *dev, void *staged)
{
    struct blk *d = dev;
    struct blk_staged *st = staged;
    /* Every ring is stopped: no worker reads d->ram now. */
    if (st->ram) {
        blk_ram_collapse_stop(d);
        blk_ram_free(d->ram, d->size);
        d->ram = st->ram;
    }
    free(st);
}

/* Live snapshots: the copy area is made while the guest runs, then the
 * disk's chunks are kept from the instant (ram.c); "config" does not change
 * while the device runs. */
static int blk_snapshot_prepare(void *dev) { return blk_ram_cow_prepare(dev); }

static int blk_snapshot_begin(void *dev)
{
    struct blk *d = dev;
    if (d->ram && !d->cow.area)
        return -ENOMEM; /* not prepared: nowhere to copy to */
    blk_ram_cow_arm(d);
    return 0;
}

static void blk_snapshot_done(void *dev)
{
    struct blk *d = dev;
    if (d->ops.snapshot_begin)
        blk_ram_cow_disarm(d);
    else
        blk_ram_recollapse(d); /* --fork-snapshots: huge pages back */
}

static void blk_discard(void *dev, void *staged)
{
    struct blk *d = dev;
    struct blk_staged *st = staged;
    if (st)
        blk_ram_free(st->ram, d->size); /* staged only for a disk of d->size */
    free(st);
}

/* ---- set-up ---- */

static int image_size(int fd, const char *path, uint64_t *size)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (S_ISREG(st.st_mode)) {
        *size = (uint64_t)st.st_size;
        return 0;
    }
    if (S_ISBLK(st.st_mode))
        return ioctl(fd, BLKGETSIZE64, size) < 0 ? -errno : 0;
    fprintf(stderr, "vhu-blk: %s is neither a regular file nor a block device\n", path);
    return -EINVAL;
}

static int load_ram(struct blk *d, int fd, uint64_t image)
{
    uint64_t want = image < d->size ? image : d->size;
    for (uint64_t off = 0; off < want;) {
        ssize_t r = pread(fd, d->ram + off, (size_t)(want - off), (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? -errno : -EIO;
        off += (uint64_t)r;
    }
    return 0;
}

/* What O_DIRECT on d->dfd needs aligned: statx says (Linux 6.1 and later);
 * before that, a block device's logical block size, or else a page. */
static int direct_alignment(struct blk *d, const char *path)
{
    uint32_t mem = 4096, off = 4096;
    struct statx sx;
    struct stat st;
    int lbs = 0;
    if (statx(d->dfd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
        (sx.stx_mask & STATX_DIOALIGN)) {
        mem = sx.stx_dio_mem_align;
        off = sx.stx_dio_offset_align;
        if (!mem || !off) {
            fprintf(stderr, "vhu-blk: --direct: %s does not support direct I/O\n", path);
            return -EINVAL;
        }
    } else if (fstat(d->dfd, &st) == 0 && S_ISBLK(st.st_mode) &&
               ioctl(d->dfd, BLKSSZGET, &lbs) == 0 && lbs > 0) {
        mem = off = (uint32_t)lbs;
    }
    if ((mem & (mem - 1)) || (off & (off - 1)) || off > 65536 || mem > 65536) {
        fprintf(stderr,
                "vhu-blk: --direct: %s wants direct I/O aligned to %u (memory) and "
                "%u (offsets), which vhu-blk does not handle\n",
                path, mem, off);
        return -EINVAL;
    }
    d->dio_mem_mask = mem - 1;
    d->dio_off_mask = off - 1;
    return 0;
}

static int open_disk(struct blk *d, const struct blk_options *o)
{
    int fd = -1, r;
    uint64_t image = 0;
    if (o->image) {
        /* Only a disk that is written through needs write access. */
        bool writable = !o->read_only && !o->ram_size;
        fd = open(o->image, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
        if (fd < 0) {
            r = -errno;
            fprintf(stderr, "vhu-blk: cannot open %s: %s\n", o->image, strerror(errno));
            return r;
        }
        if ((r = image_size(fd, o->image, &image)) < 0)
            goto fail;
    }
    if (o->direct) {
        if (!o->image || o->ram_size) {
            fprintf(stderr, "vhu-blk: --direct is for an image read and written in place, "
                            "not a disk in memory (--ram)\n");
            r = -EINVAL;
            goto fail;
        }
        d->dfd = open(o->image, (o->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_DIRECT);
        if (d->dfd < 0) {
            r = -errno;
            fprintf(stderr, "vhu-blk: --direct: cannot open %s with O_DIRECT: %s%s\n", o->image,
                    strerror(errno), errno == EINVAL ? " (no direct I/O on its filesystem)" : "");
            goto fail;
        }
        if ((r = direct_alignment(d, o->image)) < 0)
            goto fail;
    }
    d->size = (o->ram_size ? o->ram_size : image) / BLK_SECTOR * BLK_SECTOR;
    if (d->size == 0) {
        fprintf(stderr, "vhu-blk: the disk would have no sector (%s)\n",
                o->image ? o->image : "--ram");
        r = -EINVAL;
        goto fail;
    }
    if (o->ram_size) {
        if (d->size > SIZE_MAX || !(d->ram = blk_ram_alloc(d->size)) ||
            blk_ram_cow_init(d, o->snapshot_reserve && !o->fork_snapshots) < 0) {
            fprintf(stderr, "vhu-blk: cannot allocate %llu bytes of disk\n",
                    (unsigned long long)d->size);
            r = -ENOMEM;
            goto fail;
        }
        if (fd >= 0 && (r = load_ram(d, fd, image)) < 0) {
            fprintf(stderr, "vhu-blk: cannot read %s: %s\n", o->image, strerror(-r));
            goto fail;
        }
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    d->fd = fd;
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    return r;
}

int blk_new(struct blk **out, const struct blk_options *o)
{
    *out = NULL;
    if (!o->image && !o->ram_size) {
        fprintf(stderr, "vhu-blk: an image or a RAM size is needed\n");
        return -EINVAL;
    }
    if (o->queues < 1 || o->queues > BLK_MAX_QUEUES) {
        fprintf(stderr, "vhu-blk: %u queues (1..%u)\n", o->queues, BLK_MAX_QUEUES);
        return -EINVAL;
    }
    /* GET_ID's 20 bytes (virtio 1.x 5.2.6: VIRTIO_BLK_ID_BYTES), of text a
     * log line and a snapshot can carry as it is. */
    const char *serial = o->serial ? o->serial : BLK_ID;
    size_t slen = strlen(serial);
    if (slen == 0 || slen > VIRTIO_BLK_ID_BYTES) {
        fprintf(stderr,
                "vhu-blk: the serial '%s' has %zu bytes; a virtio-blk serial has "
                "1..%u\n",
                serial, slen, VIRTIO_BLK_ID_BYTES);
        return -EINVAL;
    }
    for (size_t i = 0; i < slen; i++) {
        if (serial[i] < 0x20 || serial[i] > 0x7e) {
            fprintf(stderr,
                    "vhu-blk: the serial has byte 0x%02x at %zu; printable ASCII "
                    "only\n",
                    (unsigned char)serial[i], i);
            return -EINVAL;
        }
    }
    struct blk *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    memcpy(d->id, serial, slen); /* NUL-padded by calloc */
    d->fd = d->dfd = -1;
    pthread_mutex_init(&d->config_lock, NULL);
    d->q = calloc(o->queues, sizeof(*d->q));
    int r = d->q ? open_disk(d, o) : -ENOMEM;
    if (r < 0) {
        blk_free(d);
        return r;
    }
    d->ro = o->read_only;
    d->packed = o->packed;
    d->nq = o->queues;
    for (unsigned i = 0; i < d->nq; i++) {
        struct blk_queue *bq = &d->q[i];
        bq->d = d;
        /* Untouched pages of these cost nothing until a batch uses them. */
        bq->reqs = calloc(SLOTS, sizeof(*bq->reqs));
        if (!bq->reqs) {
            blk_free(d);
            return -ENOMEM;
        }
        pthread_mutex_init(&bq->mu, NULL);
        pthread_cond_init(&bq->work, NULL);
        pthread_cond_init(&bq->finished, NULL);
    }
    d->ops = blk_base_ops;
    d->ops.num_queues = d->nq;
    d->ops.sections = blk_state_sections; /* with their fields: blk_state.c */
    d->ops.num_sections = d->ram ? 2 : 1; /* "config", and "disk" with --ram */
    d->ops.save_section = blk_save_section;
    d->ops.load_begin = blk_load_begin;
    d->ops.load_section = blk_load_section;
    d->ops.load_end = blk_load_end;
    d->ops.commit = blk_commit;
    d->ops.discard = blk_discard;
    d->ops.snapshot_done = blk_snapshot_done;
    if (!o->fork_snapshots) {
        d->ops.snapshot_prepare = blk_snapshot_prepare;
        d->ops.snapshot_begin = blk_snapshot_begin;
    }

    /* Config space, little-endian (virtio 1.x). */
    struct virtio_blk_config *c = &d->config;
    c->capacity = htole64(d->size / BLK_SECTOR);
    c->seg_max = htole32(BLK_SEG_MAX);
    c->blk_size = htole32(BLK_SECTOR);
    c->num_queues = htole16((uint16_t)d->nq);
    c->max_discard_sectors = htole32(BLK_MAX_ZERO_SECTORS);
    c->max_discard_seg = htole32(1);
    c->discard_sector_alignment = htole32(1);
    c->max_write_zeroes_sectors = htole32(BLK_MAX_ZERO_SECTORS);
    c->max_write_zeroes_seg = htole32(1);
    c->write_zeroes_may_unmap = 1;
    *out = d;
    return 0;
}

void blk_free(struct blk *d)
{
    if (!d)
        return;
    if (d->fd >= 0)
        close(d->fd);
    if (d->dfd >= 0)
        close(d->dfd);
    blk_ram_collapse_stop(d);
    blk_ram_cow_free(d);
    blk_ram_free(d->ram, d->size);
    for (unsigned i = 0; d->q && i < d->nq; i++) {
        blk_uring_close(&d->q[i]); /* one blk_serve() left */
        if (!d->q[i].reqs)
            continue;
        free(d->q[i].reqs);
        pthread_mutex_destroy(&d->q[i].mu);
        pthread_cond_destroy(&d->q[i].work);
        pthread_cond_destroy(&d->q[i].finished);
    }
    free(d->q);
    pthread_mutex_destroy(&d->config_lock);
    free(d);
}

const struct vhu_device_ops *blk_ops(struct blk *d) { return &d->ops; }

uint64_t blk_size(const struct blk *d) { return __atomic_load_n(&d->size, __ATOMIC_ACQUIRE); }

int blk_resize(struct blk *d, uint64_t *size)
{
    if (d->ram)
        return -ENOTSUP;
    uint64_t image;
    int r = image_size(d->fd, "the image", &image);
    if (r < 0)
        return r;
    uint64_t now = image / BLK_SECTOR * BLK_SECTOR;
    *size = now;
    if (now == 0)
        return -EINVAL; /* a disk with no sector: keep the old size */
    pthread_mutex_lock(&d->config_lock);
    bool changed = now != d->size;
    if (changed) {
        __atomic_store_n(&d->size, now, __ATOMIC_RELEASE);
        d->config.capacity = htole64(now / BLK_SECTOR);
    }
    pthread_mutex_unlock(&d->config_lock);
    return changed;
}

const uint8_t *blk_ram(const struct blk *d) { return d->ram; }

void blk_serve(struct blk *d, unsigned q, struct vhu_vring_io *vq)
{
    if (q >= d->nq)
        return;
    struct blk_queue *bq = &d->q[q];
    blk_uring_open(d, bq);
    serve(vq, bq);
}

bool blk_async(const struct blk *d, unsigned q) { return q < d->nq && atomic_load(&d->q[q].uring); }

unsigned long blk_completed(struct blk *d, unsigned q)
{
    return q < d->nq ? atomic_load(&d->q[q].completed) : 0;
}
