/* SPDX-License-Identifier: BSD-3-Clause */
/* Split virtqueues (virtio 1.x, 2.7): taking descriptor chains from the
 * avail ring, completing them in the used ring, notification with and
 * without VIRTIO_F_EVENT_IDX.  See vhu/vring.h for the rules enforced on
 * the guest's data. */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vhu/vring.h>

#include "../common/internal.h"
#include "vring_internal.h"

#define DESC_F_NEXT 1
#define DESC_F_WRITE 2
#define DESC_F_INDIRECT 4
#define AVAIL_F_NO_INTERRUPT 1

/* Layout: descriptor table of 16-byte entries; avail = {flags, idx,
 * ring[size], used_event}; used = {flags, idx, {id, len}[size],
 * avail_event}.  The event words exist (and were checked to be mapped by
 * the back-end) only with EVENT_IDX. */
struct desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags, next;
};

struct vhu_vring_io {
    struct vhu_vring *q;
    unsigned size;
    bool event_idx, indirect;
    const struct desc *desc;
    uint16_t *avail;     /* flags, idx, ring[size], used_event */
    uint16_t *used;      /* flags, idx, then the elements, avail_event */
    uint16_t last_avail; /* mirror of the queue's, advanced by pop */
    uint16_t used_idx;   /* next used entry to write */
    uint16_t published;  /* used index last made visible */
    uint16_t signalled;  /* used index at the last notification decision */
    bool signalled_valid;
    unsigned inflight;
    /* Heads popped and not pushed yet, one byte each: a device that pushes
     * a head it does not hold, or a driver that publishes a head the
     * device still holds, would complete one request twice and have the
     * guest free memory it still uses. */
    uint8_t *taken;
    uint16_t *pending; /* heads pushed since the last flush */
    bool trace;        /* VHU_TRACE_GUEST_WRITES (trace.c) */
    unsigned npending;
    bool broken;
    atomic_bool stop; /* set from another thread by a worker's stop */
    /* VIRTIO_F_RING_PACKED: the ring is packed.c's, and the fields above
     * that describe the split layout are unused. */
    struct vhu_vring_io_packed *packed;
};

#define vq_break vhu_vring_io_break

static inline uint16_t *avail_idx_ptr(struct vhu_vring_io *vq) { return &vq->avail[1]; }
static inline uint16_t *used_event_ptr(struct vhu_vring_io *vq) { return &vq->avail[2 + vq->size]; }
static inline uint16_t *used_idx_ptr(struct vhu_vring_io *vq) { return &vq->used[1]; }
static inline uint32_t *used_elem_ptr(struct vhu_vring_io *vq, uint16_t i)
{
    return (uint32_t *)(vq->used + 2) + 2u * (i & (vq->size - 1));
}
static inline uint16_t *avail_event_ptr(struct vhu_vring_io *vq)
{
    return (uint16_t *)((uint32_t *)(vq->used + 2) + 2u * vq->size);
}

/* The one way a ring breaks, for both layouts (packed.c calls it too). */
void vhu_vring_io_break(struct vhu_vring_io *vq, const char *fmt, ...)
{
    if (vq->broken)
        return;
    vq->broken = true;
    char why[VHU_REASON_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    vhu_err("ring %u broken: %s", vhu_vring_index(vq->q), why);
    vhu_vring_signal_error(vq->q);
}

void vhu_vring_io_set_broken(struct vhu_vring_io *vq, const char *why) { vq_break(vq, "%s", why); }

bool vhu_vring_io_broken(const struct vhu_vring_io *vq) { return vq->broken; }

struct vhu_vring *vhu_vring_io_vring(const struct vhu_vring_io *vq) { return vq->q; }

void vhu_vring_io_request_stop(struct vhu_vring_io *vq) { atomic_store(&vq->stop, true); }

bool vhu_vring_io_stop_requested(const struct vhu_vring_io *vq)
{
    return atomic_load_explicit(&vq->stop, memory_order_relaxed);
}

unsigned vhu_vring_io_inflight(const struct vhu_vring_io *vq)
{
    return vq->packed ? vhu_packed_inflight(vq->packed) : vq->inflight;
}

int vhu_vring_io_new(struct vhu_vring_io **out, struct vhu_vring *q)
{
    *out = NULL;
    unsigned size = vhu_vring_size(q);
    if (!vhu_vring_desc(q) || !vhu_vring_avail(q) || !vhu_vring_used(q) || !vhu_is_pow2(size))
        return -EINVAL;
    uint64_t f = vhu_vring_features(q);
    struct vhu_vring_io *vq = calloc(1, sizeof(*vq));
    if (vq && (f & VHU_BIT(VHU_F_RING_PACKED))) {
        vq->q = q;
        vq->size = size;
        int r = vhu_packed_new(&vq->packed, vq, q);
        if (r < 0) {
            free(vq);
            return r;
        }
        *out = vq;
        return 0;
    }
    if (vq) {
        vq->pending = calloc(size, sizeof(*vq->pending));
        vq->taken = calloc(size, 1);
    }
    if (!vq || !vq->pending || !vq->taken) {
        if (vq) {
            free(vq->pending);
            free(vq->taken);
        }
        free(vq);
        return -ENOMEM;
    }
    vq->q = q;
    vq->size = size;
    vq->trace = vhu_trace_guest_writes();
    vq->event_idx = f & VHU_BIT(VHU_F_RING_EVENT_IDX);
    vq->indirect = f & VHU_BIT(VHU_F_RING_INDIRECT_DESC);
    vq->desc = vhu_vring_desc(q);
    vq->avail = vhu_vring_avail(q);
    vq->used = vhu_vring_used(q);
    vq->last_avail = vhu_vring_last_avail(q);
    /* The used index is not part of SET_VRING_BASE: the ring holds it.
     * Continue from there, as the driver expects after a stop/start. */
    vq->used_idx = vq->published = __atomic_load_n(used_idx_ptr(vq), __ATOMIC_ACQUIRE);
    *out = vq;
    return 0;
}

void vhu_vring_io_free(struct vhu_vring_io *vq)
{
    if (vq) {
        free(vq->pending);
        free(vq->taken);
        vhu_packed_free(vq->packed);
    }
    free(vq);
}

/* Copy one descriptor out of guest memory.  The compiler barrier makes
 * every later use read the copy, never the guest's memory again (which the
 * driver may be rewriting).  memcpy because an indirect table need not be
 * aligned. */
static struct desc read_desc(const struct desc *table, unsigned i)
{
    struct desc d;
    memcpy(&d, &table[i], sizeof(d));
    __asm__ __volatile__("" ::: "memory");
    return d;
}

int vhu_vring_io_pop(struct vhu_vring_io *vq, struct vhu_vring_elem *e)
{
    if (vq->broken)
        return -EIO;
    /* A disabled ring's chains stay in it (SET_VRING_ENABLE 0): checked
     * here too, not only by the worker before it calls the device, so a
     * device draining the ring stops taking chains once the disable is
     * answered. */
    if (vhu_vring_io_stop_requested(vq) || !vhu_vring_enabled(vq->q))
        return 0;
    if (vq->packed)
        return vhu_packed_pop(vq->packed, e);
    /* First what a previous back-end left in flight (inflight tracking):
     * those heads were taken from the avail ring before, and the queue's
     * last_avail is already past them. */
    uint16_t head;
    bool resubmitted = vhu_vring_inflight_resubmit(vq->q, &head);
    if (!resubmitted) {
        /* Acquire: ring entries and descriptors the driver wrote before
         * publishing this index are visible after it. */
        uint16_t avail_idx = __atomic_load_n(avail_idx_ptr(vq), __ATOMIC_ACQUIRE);
        uint16_t pending = (uint16_t)(avail_idx - vq->last_avail);
        if (pending > vq->size) {
            vq_break(vq, "avail index %u is %u entries ahead of %u (ring size %u)", avail_idx,
                     pending, vq->last_avail, vq->size);
            return -EIO;
        }
        if (pending == 0)
            return 0;
        head = __atomic_load_n(&vq->avail[2 + (vq->last_avail & (vq->size - 1))], __ATOMIC_RELAXED);
    }
    if (head >= vq->size) {
        vq_break(vq, "avail entry %u: head %u out of range (ring size %u)", vq->last_avail, head,
                 vq->size);
        return -EIO;
    }
    if (vq->taken[head]) {
        vq_break(vq, "avail entry %u: head %u is already in flight", vq->last_avail, head);
        return -EIO;
    }

    e->head = head;
    e->n_out = e->n_in = 0;
    e->out_bytes = e->in_bytes = 0;
    const struct desc *table = vq->desc;
    unsigned table_size = vq->size;
    bool in_indirect = false;
    unsigned i = head;
    /* Descriptors visited in the current table: a chain can be no longer
     * than its table, which also ends any loop. */
    unsigned visited = 1;
    for (;;) {
        struct desc d = read_desc(table, i);
        if (d.flags & DESC_F_INDIRECT) {
            if (in_indirect) {
                vq_break(vq, "chain %u: indirect descriptor inside an indirect table", head);
                return -EIO;
            }
            if (!vq->indirect) {
                vq_break(vq, "chain %u: indirect descriptor without RING_INDIRECT_DESC", head);
                return -EIO;
            }
            if (d.flags & DESC_F_NEXT) {
                vq_break(vq, "chain %u: descriptor %u has both INDIRECT and NEXT", head, i);
                return -EIO;
            }
            if (d.len == 0 || d.len % sizeof(struct desc) ||
                d.len / sizeof(struct desc) > vq->size) {
                vq_break(vq,
                         "chain %u: indirect table of %u bytes (must be 16..%u, a multiple "
                         "of 16)",
                         head, d.len, 16u * vq->size);
                return -EIO;
            }
            table = vhu_vring_gpa_to_host(vq->q, d.addr, d.len);
            if (!table) {
                vq_break(vq,
                         "chain %u: indirect table at 0x%llx (+%u) is not inside guest "
                         "memory",
                         head, (unsigned long long)d.addr, d.len);
                return -EIO;
            }
            table_size = d.len / sizeof(struct desc);
            in_indirect = true;
            i = 0;
            visited = 1;
            continue;
        }
        if (d.len == 0) {
            vq_break(vq, "chain %u: zero-length buffer", head);
            return -EIO;
        }
        void *p = vhu_vring_gpa_to_host(vq->q, d.addr, d.len);
        if (!p) {
            vq_break(vq, "chain %u: buffer at 0x%llx (+%u) is not inside guest memory", head,
                     (unsigned long long)d.addr, d.len);
            return -EIO;
        }
        if (e->n_out + e->n_in == VHU_VRING_MAX_SEGS) {
            vq_break(vq, "chain %u: more than %u buffers", head, VHU_VRING_MAX_SEGS);
            return -EIO;
        }
        if (d.flags & DESC_F_WRITE) {
            e->n_in++;
            e->in_bytes += d.len;
        } else {
            if (e->n_in) {
                vq_break(vq, "chain %u: a readable buffer after a writable one", head);
                return -EIO;
            }
            e->n_out++;
            e->out_bytes += d.len;
        }
        e->iov[e->n_out + e->n_in - 1] = (struct iovec){.iov_base = p, .iov_len = d.len};
        e->gpa[e->n_out + e->n_in - 1] = d.addr;
        if (!(d.flags & DESC_F_NEXT))
            break;
        if (d.next >= table_size) {
            vq_break(vq, "chain %u: next %u out of range (%s size %u)", head, d.next,
                     in_indirect ? "indirect table" : "ring", table_size);
            return -EIO;
        }
        if (++visited > table_size) {
            vq_break(vq, "chain %u: longer than its %s (%u descriptors): a loop", head,
                     in_indirect ? "indirect table" : "ring", table_size);
            return -EIO;
        }
        i = d.next;
    }
    if (!resubmitted) {
        vq->last_avail++;
        vhu_vring_set_last_avail(vq->q, vq->last_avail);
        vhu_vring_inflight_get(vq->q, head);
    }
    vq->taken[head] = 1;
    vq->inflight++;
    return 1;
}

int vhu_vring_io_push(struct vhu_vring_io *vq, const struct vhu_vring_elem *e, uint32_t written)
{
    if (vq->broken)
        return -EIO;
    if (vq->packed)
        return vhu_packed_push(vq->packed, e, written);
    if (vq->inflight == 0 || e->head >= vq->size || !vq->taken[e->head] ||
        e->n_out + e->n_in > VHU_VRING_MAX_SEGS)
        return -EINVAL;
    /* A device that pushes a whole ring's worth without flushing would
     * overwrite entries the driver has not seen: publish them first. */
    if (vq->npending == vq->size)
        vhu_vring_io_flush(vq);
    /* Dirty log (migration): the device wrote the chain's buffers before
     * this call; mark every writable one (not only `written` bytes: the
     * device may have written anywhere in them, e.g. a status byte at the
     * end). */
    if (vhu_vring_logging(vq->q))
        for (unsigned i = e->n_out; i < e->n_out + e->n_in; i++)
            vhu_vring_log_write(vq->q, e->gpa[i], e->iov[i].iov_len);
    if (vq->trace)
        for (unsigned i = e->n_out; i < e->n_out + e->n_in; i++)
            vhu_trace_guest_write(e->gpa[i], e->iov[i].iov_len);
    unsigned slot = vq->used_idx & (vq->size - 1);
    uint32_t *ue = used_elem_ptr(vq, vq->used_idx);
    __atomic_store_n(&ue[0], (uint32_t)e->head, __ATOMIC_RELAXED);
    __atomic_store_n(&ue[1], written, __ATOMIC_RELAXED);
    vhu_vring_log_used(vq->q, 4 + 8ull * slot, 8);
    vhu_vring_inflight_put_begin(vq->q, e->head);
    vq->taken[e->head] = 0;
    vq->pending[vq->npending++] = e->head;
    vq->used_idx++;
    vq->inflight--;
    return 0;
}

/* Linux's vring_need_event(): has the used index crossed event_idx while
 * going from old to new (free-running 16-bit indices)? */
static bool need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old_idx)
{
    return (uint16_t)(new_idx - event_idx - 1) < (uint16_t)(new_idx - old_idx);
}

int vhu_vring_io_flush(struct vhu_vring_io *vq)
{
    if (vq->broken)
        return -EIO;
    if (vq->packed)
        return vhu_packed_flush(vq->packed);
    if (vq->published == vq->used_idx)
        return 0;
    /* Release: the used entries, and the data written into the chains'
     * buffers, are visible before the index that hands them back. */
    __atomic_store_n(used_idx_ptr(vq), vq->used_idx, __ATOMIC_RELEASE);
    vq->published = vq->used_idx;
    vhu_vring_log_used(vq->q, 2, 2);
    /* Inflight tracking: these requests are now in the used ring. */
    for (unsigned i = 0; i < vq->npending; i++)
        vhu_vring_inflight_put_end(vq->q, vq->pending[i], vq->used_idx);
    vq->npending = 0;
    /* Full barrier between publishing the index and reading what the
     * driver asked for: the driver does the mirror image (writes
     * used_event / clears NO_INTERRUPT, barrier, reads the used index), so
     * one of the two sides sees the other's write and no notification is
     * lost. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    bool notify;
    if (vq->event_idx) {
        uint16_t event = __atomic_load_n(used_event_ptr(vq), __ATOMIC_RELAXED);
        uint16_t old = vq->signalled;
        bool valid = vq->signalled_valid;
        vq->signalled = vq->used_idx;
        vq->signalled_valid = true;
        /* Without a previous decision there is no `old` to compare with:
         * signal once to be safe. */
        notify = !valid || need_event(event, vq->used_idx, old);
    } else {
        notify = !(__atomic_load_n(&vq->avail[0], __ATOMIC_RELAXED) & AVAIL_F_NO_INTERRUPT);
    }
    if (!notify)
        return 0;
    vhu_vring_notify(vq->q);
    return 1;
}

bool vhu_vring_io_enable_kick(struct vhu_vring_io *vq)
{
    if (vq->broken)
        return false;
    if (vq->packed)
        return vhu_packed_enable_kick(vq->packed);
    /* Without EVENT_IDX the driver kicks unless VRING_USED_F_NO_NOTIFY is
     * set, which this layer never sets. */
    if (vq->event_idx) {
        __atomic_store_n(avail_event_ptr(vq), vq->last_avail, __ATOMIC_RELAXED);
        vhu_vring_log_used(vq->q, 4 + 8ull * vq->size, 2);
    }
    /* Full barrier: the avail_event write before the re-read of the avail
     * index (the driver writes its index, barrier, reads avail_event). */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return __atomic_load_n(avail_idx_ptr(vq), __ATOMIC_ACQUIRE) != vq->last_avail;
}

bool vhu_vring_io_avail_pending(struct vhu_vring_io *vq)
{
    if (vq->packed)
        return vhu_packed_avail_pending(vq->packed);
    return __atomic_load_n(avail_idx_ptr(vq), __ATOMIC_ACQUIRE) != vq->last_avail;
}
