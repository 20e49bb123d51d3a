/* SPDX-License-Identifier: BSD-3-Clause */
/* Packed virtqueues (virtio 1.1+, 2.8), behind the same vhu_vring_io calls as
 * split rings (split.c dispatches here when VIRTIO_F_RING_PACKED was
 * acked).  One descriptor ring holds both directions: the driver marks a
 * descriptor available by setting its AVAIL flag to its wrap counter and
 * USED to the opposite, the device marks it used by setting both to its
 * own.  vhu_vring's last_avail holds the avail position (bits 0-14) and the
 * avail wrap counter (bit 15); the used position and wrap counter are kept
 * by the back-end (vhu_vring_packed_used), which is where GET_VRING_BASE
 * finds them.
 *
 * Guest values are checked where used, as for split rings: a chain is no
 * longer than the ring, every descriptor after the first must be available
 * in the same lap (its flags say so), buffer IDs are below the ring size
 * and not already held by the device, an indirect table is the buffer's
 * only ring descriptor and holds no indirect descriptor, a descriptor whose
 * flags change between the acquire load and the copy is refused.  Any
 * violation breaks the ring (split.c's vhu_vring_io_break).
 *
 * Kicks with EVENT_IDX: enable_kick asks for one at the next descriptor
 * (DESC), and the first chain popped after it turns kicks off (DISABLE)
 * until the next enable_kick.  A split ring's avail_event just stays
 * behind while the device serves, but a packed event is a ring position
 * with one wrap bit: a driver meets it again every second lap (and the
 * area starts zeroed, which is ENABLE), so left in place it would kick
 * a device that is polling anyway. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <vhu/vring.h>

#include "../common/internal.h"
#include "vring_internal.h"

#define PDESC_F_NEXT 1u
#define PDESC_F_WRITE 2u
#define PDESC_F_INDIRECT 4u
#define PDESC_F_AVAIL (1u << 7)
#define PDESC_F_USED (1u << 15)

/* Event suppression structure (driver and device areas): off_wrap, flags. */
#define EVENT_F_ENABLE 0u
#define EVENT_F_DISABLE 1u
#define EVENT_F_DESC 2u

struct vhu_vring_io_packed {
    struct vhu_vring_io *vq;
    struct vhu_vring *q;
    unsigned size;
    bool event_idx, indirect, trace;
    struct vhu_pdesc *ring;
    uint16_t *drv;       /* driver area: off_wrap, flags (read) */
    uint16_t *dev;       /* device area: off_wrap, flags (written) */
    uint16_t last_avail; /* next descriptor to look at */
    bool avail_wrap;
    uint16_t used_idx; /* next descriptor to write a used entry into */
    bool used_wrap;
    /* Ring descriptors of each buffer ID the device holds (popped, not
     * pushed); 0: not held.  Indexed by ID, which must be below size. */
    uint16_t *ndescs;
    unsigned inflight;
    /* Ring descriptors taken and not yet handed back (popped, or pushed
     * and not flushed): never more than the ring has, which a driver
     * could only get past by reusing descriptors it does not own. */
    unsigned outstanding, pending_descs;
    bool resubmitting; /* building a request the inflight region kept */
    /* Used entries written since the last flush: the first one's flags are
     * written last (at flush), so the driver sees the batch at once. */
    unsigned npending;
    uint16_t first_slot, first_flags;
    /* Descriptor positions the used index advanced by since the last
     * notification decision (for EVENT_IDX). */
    unsigned since;
    bool signalled_valid;
    bool kick_area_set;
    bool kicks_off; /* EVENT_IDX: the device area says DISABLE (pop wrote it) */
};

static inline bool desc_avail(uint16_t flags, bool wrap)
{
    return !!(flags & PDESC_F_AVAIL) == wrap && !!(flags & PDESC_F_USED) != wrap;
}

static inline uint16_t load_flags(const struct vhu_vring_io_packed *p, unsigned i)
{
    return __atomic_load_n(&p->ring[i].flags, __ATOMIC_ACQUIRE);
}

/* One copy out of guest memory; every later use reads the copy. */
static struct vhu_pdesc read_pdesc(const struct vhu_pdesc *table, unsigned i)
{
    struct vhu_pdesc d;
    memcpy(&d, &table[i], sizeof(d));
    __asm__ __volatile__("" ::: "memory");
    return d;
}

int vhu_packed_new(struct vhu_vring_io_packed **out, struct vhu_vring_io *vq, struct vhu_vring *q)
{
    *out = NULL;
    unsigned size = vhu_vring_size(q);
    uint16_t base = vhu_vring_last_avail(q);
    uint16_t used = vhu_vring_packed_used(q);
    if ((base & 0x7fffu) >= size || (used & 0x7fffu) >= size)
        return -EINVAL;
    struct vhu_vring_io_packed *p = calloc(1, sizeof(*p));
    if (p)
        p->ndescs = calloc(size, sizeof(*p->ndescs));
    if (!p || !p->ndescs) {
        if (p)
            free(p->ndescs);
        free(p);
        return -ENOMEM;
    }
    uint64_t f = vhu_vring_features(q);
    p->vq = vq;
    p->q = q;
    p->size = size;
    p->event_idx = f & VHU_BIT(VHU_F_RING_EVENT_IDX);
    p->indirect = f & VHU_BIT(VHU_F_RING_INDIRECT_DESC);
    p->trace = vhu_trace_guest_writes();
    p->ring = vhu_vring_desc(q);
    p->drv = vhu_vring_avail(q);
    p->dev = vhu_vring_used(q);
    p->last_avail = base & 0x7fffu;
    p->avail_wrap = base >> 15;
    p->used_idx = used & 0x7fffu;
    p->used_wrap = used >> 15;
    *out = p;
    return 0;
}

void vhu_packed_free(struct vhu_vring_io_packed *p)
{
    if (p)
        free(p->ndescs);
    free(p);
}

unsigned vhu_packed_inflight(const struct vhu_vring_io_packed *p) { return p->inflight; }

static void advance(const struct vhu_vring_io_packed *p, uint16_t *idx, bool *wrap, unsigned n)
{
    unsigned i = *idx + n;
    if (i >= p->size) {
        i -= p->size;
        *wrap = !*wrap;
    }
    *idx = (uint16_t)i;
}

bool vhu_packed_avail_pending(const struct vhu_vring_io_packed *p)
{
    /* Requests to resubmit, or AVAIL equal to our wrap counter: available,
     * or a descriptor whose USED flag is wrong, which pop refuses. */
    return vhu_vring_inflight_packed_pending(p->q) ||
           !!(load_flags(p, p->last_avail) & PDESC_F_AVAIL) == p->avail_wrap;
}

/* How break messages name the chain (its ring position, or the buffer ID
 * of a request resubmitted from the inflight region). */
static const char *where(const struct vhu_vring_io_packed *p)
{
    return p->resubmitting ? "resubmitted buffer" : "chain at";
}

/* Add one buffer to e; false when the ring broke. */
static bool add_buf(struct vhu_vring_io_packed *p, struct vhu_vring_elem *e,
                    const struct vhu_pdesc *d, unsigned pos)
{
    if (d->len == 0) {
        vhu_vring_io_break(p->vq, "%s %u: zero-length buffer", where(p), pos);
        return false;
    }
    void *h = vhu_vring_gpa_to_host(p->q, d->addr, d->len);
    if (!h) {
        vhu_vring_io_break(p->vq, "%s %u: buffer at 0x%llx (+%u) is not inside guest memory",
                           where(p), pos, (unsigned long long)d->addr, d->len);
        return false;
    }
    if (e->n_out + e->n_in == VHU_VRING_MAX_SEGS) {
        vhu_vring_io_break(p->vq, "%s %u: more than %u buffers", where(p), pos, VHU_VRING_MAX_SEGS);
        return false;
    }
    if (d->flags & PDESC_F_WRITE) {
        e->n_in++;
        e->in_bytes += d->len;
    } else {
        if (e->n_in) {
            vhu_vring_io_break(p->vq, "%s %u: a readable buffer after a writable one", where(p),
                               pos);
            return false;
        }
        e->n_out++;
        e->out_bytes += d->len;
    }
    e->iov[e->n_out + e->n_in - 1] = (struct iovec){.iov_base = h, .iov_len = d->len};
    e->gpa[e->n_out + e->n_in - 1] = d->addr;
    return true;
}

/* The buffer's indirect table (d is its only ring descriptor). */
static bool add_indirect(struct vhu_vring_io_packed *p, struct vhu_vring_elem *e,
                         const struct vhu_pdesc *d, unsigned pos)
{
    if (!p->indirect) {
        vhu_vring_io_break(p->vq, "%s %u: indirect descriptor without RING_INDIRECT_DESC", where(p),
                           pos);
        return false;
    }
    /* At most as many entries as an element holds (not the ring size: a
     * packed ring may be smaller than its indirect tables, and a ring of
     * one descriptor is still usable). */
    if (d->len == 0 || d->len % sizeof(struct vhu_pdesc) ||
        d->len / sizeof(struct vhu_pdesc) > VHU_VRING_MAX_SEGS) {
        vhu_vring_io_break(p->vq,
                           "%s %u: indirect table of %u bytes (must be 16..%u, a "
                           "multiple of 16)",
                           where(p), pos, d->len, 16u * VHU_VRING_MAX_SEGS);
        return false;
    }
    const struct vhu_pdesc *table = vhu_vring_gpa_to_host(p->q, d->addr, d->len);
    if (!table) {
        vhu_vring_io_break(p->vq,
                           "%s %u: indirect table at 0x%llx (+%u) is not inside "
                           "guest memory",
                           where(p), pos, (unsigned long long)d->addr, d->len);
        return false;
    }
    /* Entries follow one another; only WRITE means anything in them (the
     * spec has the device ignore NEXT and the buffer ID there). */
    unsigned n = d->len / sizeof(struct vhu_pdesc);
    for (unsigned k = 0; k < n; k++) {
        struct vhu_pdesc t = read_pdesc(table, k);
        if (t.flags & PDESC_F_INDIRECT) {
            vhu_vring_io_break(p->vq, "%s %u: indirect descriptor inside an indirect table",
                               where(p), pos);
            return false;
        }
        if (!add_buf(p, e, &t, pos))
            return false;
    }
    return true;
}

/* A request a previous back-end left in flight, from the inflight region's
 * copies of its ring descriptors (its place in the ring may hold used
 * entries by now).  The copies' structure was checked when the ring
 * started; their buffers are checked here like a ring's. */
static int pop_resubmitted(struct vhu_vring_io_packed *p, struct vhu_vring_elem *e,
                           const struct vhu_pdesc *d, unsigned n)
{
    e->n_out = e->n_in = 0;
    e->out_bytes = e->in_bytes = 0;
    uint16_t id = d[n - 1].id;
    p->resubmitting = true;
    bool ok = true;
    if (id >= p->size || p->ndescs[id]) {
        vhu_vring_io_break(p->vq, "resubmitted buffer %u: %s", id,
                           id >= p->size ? "out of range" : "already in flight");
        ok = false;
    } else if (p->outstanding + n > p->size) {
        vhu_vring_io_break(p->vq,
                           "resubmitted buffer %u: more than the ring's %u descriptors "
                           "outstanding",
                           id, p->size);
        ok = false;
    }
    for (unsigned k = 0; ok && k < n; k++)
        ok = (d[k].flags & PDESC_F_INDIRECT) ? add_indirect(p, e, &d[k], id)
                                             : add_buf(p, e, &d[k], id);
    p->resubmitting = false;
    if (!ok)
        return -EIO;
    p->ndescs[id] = (uint16_t)n;
    p->outstanding += n;
    p->inflight++;
    e->head = id;
    return 1;
}

int vhu_packed_pop(struct vhu_vring_io_packed *p, struct vhu_vring_elem *e)
{
    const struct vhu_pdesc *rd;
    unsigned rn;
    if (vhu_vring_inflight_packed_resubmit(p->q, &rd, &rn))
        return pop_resubmitted(p, e, rd, rn);
    uint16_t pos = p->last_avail;
    bool wrap = p->avail_wrap;
    uint16_t first = load_flags(p, pos);
    if (!!(first & PDESC_F_AVAIL) != wrap)
        return 0;
    if (!desc_avail(first, wrap)) {
        vhu_vring_io_break(p->vq,
                           "descriptor %u: flags 0x%x have AVAIL and USED both %u (avail "
                           "wrap counter %u): neither available nor left by the device",
                           pos, first, wrap, wrap);
        return -EIO;
    }
    e->n_out = e->n_in = 0;
    e->out_bytes = e->in_bytes = 0;
    unsigned n = 0;
    uint16_t id;
    const uint16_t start = pos;
    for (;;) {
        if (n == p->size) {
            vhu_vring_io_break(p->vq, "chain at %u: longer than the ring (%u descriptors)", start,
                               p->size);
            return -EIO;
        }
        struct vhu_pdesc d = read_pdesc(p->ring, pos);
        if (n == 0 && (d.flags & (PDESC_F_AVAIL | PDESC_F_USED)) !=
                          (first & (PDESC_F_AVAIL | PDESC_F_USED))) {
            vhu_vring_io_break(p->vq, "descriptor %u changed under us (flags 0x%x, then 0x%x)", pos,
                               first, d.flags);
            return -EIO;
        }
        if (n > 0 && !desc_avail(d.flags, wrap)) {
            vhu_vring_io_break(p->vq,
                               "chain at %u: descriptor %u (number %u of the chain) is "
                               "not available (flags 0x%x, wrap counter %u)",
                               start, pos, n + 1, d.flags, wrap);
            return -EIO;
        }
        if (p->outstanding + n == p->size) {
            vhu_vring_io_break(p->vq,
                               "chain at %u: more than the ring's %u descriptors outstanding "
                               "(%u held or not yet flushed)",
                               start, p->size, p->outstanding);
            return -EIO;
        }
        vhu_vring_inflight_packed_record(p->q, n, &d);
        n++;
        unsigned here = pos;
        advance(p, &pos, &wrap, 1);
        if (d.flags & PDESC_F_INDIRECT) {
            if (n > 1) {
                vhu_vring_io_break(p->vq, "chain at %u: indirect descriptor %u inside a chain",
                                   start, here);
                return -EIO;
            }
            if (d.flags & PDESC_F_NEXT) {
                vhu_vring_io_break(p->vq, "chain at %u: descriptor %u has both INDIRECT and NEXT",
                                   start, here);
                return -EIO;
            }
            if (!add_indirect(p, e, &d, start))
                return -EIO;
            id = d.id;
            break;
        }
        if (!add_buf(p, e, &d, start))
            return -EIO;
        if (!(d.flags & PDESC_F_NEXT)) {
            id = d.id; /* the buffer ID is in the chain's last descriptor */
            break;
        }
    }
    if (id >= p->size) {
        vhu_vring_io_break(p->vq, "chain at %u: buffer id %u out of range (ring size %u)", start,
                           id, p->size);
        return -EIO;
    }
    if (p->ndescs[id]) {
        vhu_vring_io_break(p->vq, "chain at %u: buffer id %u is already in flight", start, id);
        return -EIO;
    }
    if (vhu_vring_inflight_packed_get(p->q, n, id) < 0) {
        vhu_vring_io_break(p->vq, "chain at %u: no room for it in the inflight region", start);
        return -EIO;
    }
    p->ndescs[id] = (uint16_t)n;
    p->outstanding += n;
    if (p->event_idx && !p->kicks_off) {
        /* Serving: no kicks until enable_kick asks for the next one. */
        __atomic_store_n(&p->dev[1], (uint16_t)EVENT_F_DISABLE, __ATOMIC_RELAXED);
        vhu_vring_log_device_area(p->q, 2, 2);
        p->kicks_off = true;
    }
    p->last_avail = pos;
    p->avail_wrap = wrap;
    vhu_vring_set_last_avail(p->q, (uint16_t)(pos | (unsigned)wrap << 15));
    p->inflight++;
    e->head = id;
    return 1;
}

int vhu_packed_push(struct vhu_vring_io_packed *p, const struct vhu_vring_elem *e, uint32_t written)
{
    if (p->inflight == 0 || e->head >= p->size || !p->ndescs[e->head] ||
        e->n_out + e->n_in > VHU_VRING_MAX_SEGS)
        return -EINVAL;
    /* Dirty log and trace: every writable buffer (see split.c). */
    if (vhu_vring_logging(p->q))
        for (unsigned i = e->n_out; i < e->n_out + e->n_in; i++)
            vhu_vring_log_write(p->q, e->gpa[i], e->iov[i].iov_len);
    if (p->trace)
        for (unsigned i = e->n_out; i < e->n_out + e->n_in; i++)
            vhu_trace_guest_write(e->gpa[i], e->iov[i].iov_len);
    uint16_t slot = p->used_idx;
    uint16_t flags = p->used_wrap ? (uint16_t)(PDESC_F_AVAIL | PDESC_F_USED) : 0;
    struct vhu_pdesc *d = &p->ring[slot];
    __atomic_store_n(&d->id, e->head, __ATOMIC_RELAXED);
    __atomic_store_n(&d->len, written, __ATOMIC_RELAXED);
    if (p->npending == 0) {
        p->first_slot = slot;
        p->first_flags = flags;
    } else {
        /* Invisible to the driver until the batch's first entry is: it
         * reads used entries in ring order. */
        __atomic_store_n(&d->flags, flags, __ATOMIC_RELEASE);
        vhu_vring_log_desc(p->q, 16ull * slot, 16);
    }
    p->npending++;
    unsigned n = p->ndescs[e->head];
    p->ndescs[e->head] = 0;
    p->pending_descs += n;
    vhu_vring_inflight_packed_put(p->q, e->head);
    advance(p, &p->used_idx, &p->used_wrap, n);
    p->since += n;
    p->inflight--;
    return 0;
}

/* vring_need_event() of the spec: has the used index crossed event while
 * going from old to new? */
static bool need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx)
{
    return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old_idx);
}

int vhu_packed_flush(struct vhu_vring_io_packed *p)
{
    if (p->npending == 0)
        return 0;
    uint16_t used = (uint16_t)(p->used_idx | (unsigned)p->used_wrap << 15);
    vhu_vring_inflight_packed_flush_begin(p->q, used);
    /* Release: the batch's entries and the buffers' data before the flag
     * that hands the first entry (and so the batch) to the driver. */
    __atomic_store_n(&p->ring[p->first_slot].flags, p->first_flags, __ATOMIC_RELEASE);
    vhu_vring_log_desc(p->q, 16ull * p->first_slot, 16);
    vhu_vring_inflight_packed_flush_end(p->q, p->npending);
    p->npending = 0;
    p->outstanding -= p->pending_descs;
    p->pending_descs = 0;
    vhu_vring_set_packed_used(p->q, used);
    /* Full barrier between the used entries and reading the driver's
     * event suppression (it writes that, barrier, reads used entries). */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint16_t flags = __atomic_load_n(&p->drv[1], __ATOMIC_RELAXED);
    bool valid = p->signalled_valid;
    unsigned since = p->since;
    p->signalled_valid = true;
    p->since = 0;
    bool notify;
    if (flags == EVENT_F_DISABLE) {
        notify = false;
    } else if (flags == EVENT_F_DESC && p->event_idx) {
        uint16_t off_wrap = __atomic_load_n(&p->drv[0], __ATOMIC_RELAXED);
        /* The event's position on the same scale as used_idx: one lap
         * back when its wrap counter is not the current one. */
        int event = off_wrap & 0x7fff;
        if ((off_wrap >> 15) != p->used_wrap)
            event -= (int)p->size;
        uint16_t now = p->used_idx;
        notify = !valid || need_event((uint16_t)event, now, (uint16_t)(now - since));
    } else {
        /* ENABLE, or a value the driver may not use (DESC without
         * EVENT_IDX, 3): signalling too often is harmless. */
        notify = true;
    }
    if (!notify)
        return 0;
    vhu_vring_notify(p->q);
    return 1;
}

bool vhu_packed_enable_kick(struct vhu_vring_io_packed *p)
{
    if (p->event_idx) {
        __atomic_store_n(&p->dev[0], (uint16_t)(p->last_avail | (unsigned)p->avail_wrap << 15),
                         __ATOMIC_RELAXED);
        if (!p->kick_area_set || p->kicks_off)
            __atomic_store_n(&p->dev[1], (uint16_t)EVENT_F_DESC, __ATOMIC_RELAXED);
        vhu_vring_log_device_area(p->q, 0, 4);
        p->kick_area_set = true;
        p->kicks_off = false;
    } else if (!p->kick_area_set) {
        /* Kicks stay enabled (this layer never disables them). */
        __atomic_store_n(&p->dev[1], (uint16_t)EVENT_F_ENABLE, __ATOMIC_RELAXED);
        vhu_vring_log_device_area(p->q, 2, 2);
        p->kick_area_set = true;
    }
    /* Full barrier: the event write before the re-read of the ring. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return vhu_packed_avail_pending(p);
}
