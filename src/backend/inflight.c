/* SPDX-License-Identifier: BSD-3-Clause */
/* Inflight tracking (PF_INFLIGHT_SHMFD, split rings): a shared region the
 * front-end keeps across back-end restarts, recording which requests were
 * taken from each ring and not yet completed, so a restarted back-end
 * resubmits them in their original order.  Layout per queue (QEMU's
 * documented one): a 16-byte header (features, version, desc_num,
 * last_batch_head, used_idx), then one 16-byte entry per descriptor head
 * (inflight, padding, next, counter).  The region is front-end memory and
 * may hold anything: every value is checked before use, and nonsense is
 * repaired (logged) rather than trusted. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend_internal.h"

#define INFLIGHT_VERSION 1
#define INFLIGHT_ALIGN 64u

struct inflight_desc {
    uint8_t inflight;
    uint8_t padding[5];
    uint16_t next;
    uint64_t counter;
};

struct inflight_queue {
    uint64_t features;
    uint16_t version;
    uint16_t desc_num;
    uint16_t last_batch_head;
    uint16_t used_idx;
    struct inflight_desc desc[];
};

_Static_assert(sizeof(struct inflight_desc) == 16, "inflight entry");
_Static_assert(sizeof(struct inflight_queue) == 16, "inflight header");

static uint64_t queue_region(unsigned queue_size)
{
    return (16ull + 16ull * queue_size + INFLIGHT_ALIGN - 1) & ~(uint64_t)(INFLIGHT_ALIGN - 1);
}

void vhu_inflight_unmap(struct vhu_inflight_region *f)
{
    if (f->map)
        munmap(f->map, f->map_len);
    memset(f, 0, sizeof(*f));
}

static int check_geometry(struct vhu_req *r, uint16_t nq, uint16_t qs)
{
    if (nq == 0 || nq > r->b->nqueues)
        return vhu_refuse(r, -EINVAL, "inflight: %u queues (device has %u)", nq, r->b->nqueues);
    if (!vhu_is_pow2(qs) || qs > r->b->max_queue_size)
        return vhu_refuse(r, -EINVAL, "inflight: queue size %u (a power of two up to %u)", qs,
                          r->b->max_queue_size);
    return 0;
}

static int map_region(struct vhu_req *r, int fd, uint64_t offset, uint64_t size, uint16_t nq,
                      uint16_t qs)
{
    struct vhu_backend *b = r->b;
    for (unsigned i = 0; i < b->nqueues; i++)
        if (b->queues[i].started)
            return vhu_refuse(r, -EBUSY, "inflight: ring %u is running", i);
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    uint64_t off = offset & ~(page - 1);
    void *p = mmap(NULL, (size_t)(offset - off + size), PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                   (off_t)off);
    if (p == MAP_FAILED)
        return vhu_refuse(r, -errno, "inflight: mmap of %" PRIu64 " bytes: %s", size,
                          vhu_strerror(-errno));
    vhu_inflight_unmap(&b->inflight);
    b->inflight.map = p;
    b->inflight.map_len = (size_t)(offset - off + size);
    b->inflight.base = (uint8_t *)p + (offset - off);
    b->inflight.num_queues = nq;
    b->inflight.queue_size = qs;
    b->inflight.region = queue_region(qs);
    return 0;
}

int vhu_req_get_inflight_fd(struct vhu_req *r)
{
    const struct vhu_inflight *in = &r->m->p.inflight;
    int e = check_geometry(r, in->num_queues, in->queue_size);
    if (e < 0)
        return e;
    uint64_t size = queue_region(in->queue_size) * in->num_queues;
    int fd = memfd_create("vhu-inflight", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return vhu_refuse(r, -errno, "inflight: memfd_create: %s", vhu_strerror(-errno));
    /* A fresh memfd reads as zeroes: version 0, nothing in flight. */
    if (ftruncate(fd, (off_t)size) < 0) {
        close(fd);
        return vhu_refuse(r, -errno, "inflight: ftruncate: %s", vhu_strerror(-errno));
    }
    if ((e = map_region(r, fd, 0, size, in->num_queues, in->queue_size)) < 0) {
        close(fd);
        return e;
    }
    struct vhu_inflight *out = &r->rep->p.inflight;
    memset(out, 0, sizeof(*out));
    out->mmap_size = size;
    out->mmap_offset = 0;
    out->num_queues = in->num_queues;
    out->queue_size = in->queue_size;
    r->rep->size = sizeof(*out);
    r->rep->fds[0] = fd; /* the dispatcher closes our copy after sending */
    r->rep->nfds = 1;
    return 0;
}

int vhu_req_set_inflight_fd(struct vhu_req *r)
{
    const struct vhu_inflight *in = &r->m->p.inflight;
    int e = check_geometry(r, in->num_queues, in->queue_size);
    if (e < 0)
        return e;
    uint64_t need = queue_region(in->queue_size) * in->num_queues, end;
    if (in->mmap_size < need)
        return vhu_refuse(r, -EINVAL,
                          "inflight: %" PRIu64 " bytes for %u queues of %u (need %" PRIu64 ")",
                          in->mmap_size, in->num_queues, in->queue_size, need);
    struct stat st;
    if (!vhu_range_end(in->mmap_offset, in->mmap_size, &end) || fstat(r->m->fds[0], &st) < 0 ||
        st.st_size < 0 || end > (uint64_t)st.st_size)
        return vhu_refuse(
            r, -EINVAL, "inflight: offset 0x%" PRIx64 " + size 0x%" PRIx64 " is not inside its fd",
            in->mmap_offset, in->mmap_size);
    return map_region(r, r->m->fds[0], in->mmap_offset, in->mmap_size, in->num_queues,
                      in->queue_size);
}

static struct inflight_queue *region_of(struct vhu_queue *q)
{
    struct vhu_inflight_region *f = &q->b->inflight;
    if (!f->base || q->index >= f->num_queues)
        return NULL;
    return (struct inflight_queue *)(f->base + q->index * f->region);
}

static int cmp_counter(const void *a, const void *b, void *arg)
{
    const struct inflight_queue *iq = arg;
    uint64_t x = iq->desc[*(const uint16_t *)a].counter, y = iq->desc[*(const uint16_t *)b].counter;
    return x < y ? -1 : x > y;
}

/* At ring start: adopt the queue's region, recovering what a previous
 * back-end left in flight.  Sets q->last_avail past what is resubmitted. */
int vhu_inflight_start(struct vhu_queue *q)
{
    free(q->resubmit);
    q->resubmit = NULL;
    q->resubmit_n = q->resubmit_pos = 0;
    q->inflight = NULL;
    struct inflight_queue *iq = region_of(q);
    if (!iq)
        return 0;
    if (q->features & VHU_BIT(VHU_F_RING_PACKED)) {
        /* The region's packed layout is not implemented (issue #13): the
         * ring runs untracked rather than misread a split record.  The
         * region itself is accepted (GET/SET_INFLIGHT_FD): QEMU 7.2's
         * vhost-user-blk asks for it with RING_PACKED already acked and
         * does not start the device without it. */
        vhu_err("ring %u: inflight tracking of packed rings is not supported; not tracking",
                q->index);
        return 0;
    }
    unsigned qs = q->b->inflight.queue_size;
    if (q->num > qs) {
        vhu_err("ring %u: size %u exceeds the inflight region's queue size %u; not tracking",
                q->index, q->num, qs);
        return 0;
    }
    uint16_t used = __atomic_load_n((uint16_t *)q->used + 1, __ATOMIC_ACQUIRE);
    if (iq->version == 0 || iq->version != INFLIGHT_VERSION || iq->desc_num != qs) {
        if (iq->version != 0)
            vhu_warn("ring %u: inflight region holds version %u, %u entries (want %u, %u): "
                     "records discarded",
                     q->index, iq->version, iq->desc_num, INFLIGHT_VERSION, qs);
        memset(iq->desc, 0, 16ull * qs);
        iq->features = 0;
        iq->desc_num = (uint16_t)qs;
        iq->last_batch_head = 0;
        iq->used_idx = used;
        __atomic_store_n(&iq->version, INFLIGHT_VERSION, __ATOMIC_RELEASE);
        q->inflight = iq;
        q->inflight_counter = 1;
        return 0;
    }
    /* Completions published in the used ring but not yet cleared here:
     * the newest (used - used_idx) ones, chained from last_batch_head. */
    uint16_t unclear = (uint16_t)(used - iq->used_idx);
    if (unclear > qs) {
        vhu_warn("ring %u: inflight used_idx %u is %u behind the used ring's %u; records "
                 "discarded",
                 q->index, iq->used_idx, unclear, used);
        memset(iq->desc, 0, 16ull * qs);
        unclear = 0;
    }
    for (uint16_t i = 0, h = iq->last_batch_head; i < unclear && h < qs; i++) {
        iq->desc[h].inflight = 0;
        h = iq->desc[h].next;
    }
    iq->used_idx = used;
    unsigned n = 0;
    uint64_t max = 0;
    uint16_t *list = malloc(sizeof(*list) * qs);
    if (!list)
        return -ENOMEM;
    for (unsigned i = 0; i < qs; i++) {
        uint8_t v = iq->desc[i].inflight;
        if (v > 1) {
            vhu_warn("ring %u: inflight entry %u holds %u; cleared", q->index, i, v);
            iq->desc[i].inflight = 0;
            continue;
        }
        /* Only heads the ring can have: below its current size. */
        if (v && i < q->num)
            list[n++] = (uint16_t)i;
        else if (v)
            iq->desc[i].inflight = 0;
        if (iq->desc[i].counter > max)
            max = iq->desc[i].counter;
    }
    qsort_r(list, n, sizeof(*list), cmp_counter, iq);
    q->inflight = iq;
    q->inflight_counter = max + 1;
    q->resubmit = list;
    q->resubmit_n = n;
    /* Everything up to the used index was completed; what is in flight was
     * taken after it. */
    q->last_avail = (uint16_t)(used + n);
    if (n)
        vhu_info("ring %u: %u request(s) in flight from before; resubmitting", q->index, n);
    return 0;
}

void vhu_inflight_stop(struct vhu_queue *q)
{
    free(q->resubmit);
    q->resubmit = NULL;
    q->resubmit_n = q->resubmit_pos = 0;
    q->inflight = NULL;
}

bool vhu_queue_inflight_resubmit(struct vhu_queue *q, uint16_t *head)
{
    if (q->resubmit_pos >= q->resubmit_n)
        return false;
    *head = q->resubmit[q->resubmit_pos++];
    return true;
}

void vhu_queue_inflight_get(struct vhu_queue *q, uint16_t head)
{
    struct inflight_queue *iq = q->inflight;
    if (!iq || head >= iq->desc_num)
        return;
    iq->desc[head].counter = q->inflight_counter++;
    __atomic_store_n(&iq->desc[head].inflight, 1, __ATOMIC_RELEASE);
}

void vhu_queue_inflight_put_begin(struct vhu_queue *q, uint16_t head)
{
    struct inflight_queue *iq = q->inflight;
    if (!iq || head >= iq->desc_num)
        return;
    /* Chain the completions so a restart can clear the ones that reached
     * the used ring. */
    iq->desc[head].next = iq->last_batch_head;
    __atomic_store_n(&iq->last_batch_head, head, __ATOMIC_RELEASE);
}

void vhu_queue_inflight_put_end(struct vhu_queue *q, uint16_t head, uint16_t used_idx)
{
    /* Every completion passes here (the virtq helpers call it whether or
     * not an inflight region exists), so this is where `info` counts. */
    atomic_fetch_add_explicit(&q->completed, 1, memory_order_relaxed);
    struct inflight_queue *iq = q->inflight;
    if (!iq || head >= iq->desc_num)
        return;
    __atomic_store_n(&iq->desc[head].inflight, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&iq->used_idx, used_idx, __ATOMIC_RELEASE);
}
