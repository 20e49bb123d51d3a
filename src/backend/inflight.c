/* SPDX-License-Identifier: BSD-3-Clause */
/* Inflight tracking (PF_INFLIGHT_SHMFD): a shared region the front-end
 * keeps across back-end restarts, recording which requests were taken from
 * each ring and not yet completed, so a restarted back-end resubmits them
 * in their original order.  Two layouts per queue (QEMU's documented ones,
 * docs/interop/vhost-user.rst "Inflight I/O tracking"), chosen by
 * RING_PACKED when the region is made or handed over:
 *
 * split: a 16-byte header (features, version, desc_num, last_batch_head,
 * used_idx), then one 16-byte entry per descriptor head (inflight,
 * padding, next, counter).
 *
 * packed: a 32-byte header (features, version, desc_num, free_head,
 * old_free_head, used_idx, old_used_idx, used and old used wrap counters),
 * then 32-byte entries, one per ring descriptor taken: the head's
 * inflight, num, last and counter, every entry's copy of its descriptor
 * (addr, len, id, flags) and a link (next) that chains a buffer's entries
 * and the free ones.  The old_* fields are the last consistent state: a
 * pop commits old_free_head once its whole chain is recorded, a flush
 * commits all three after the used descriptors are visible, and a restart
 * rolls back to them (or forward, when the driver can already see the
 * batch).  Descriptor copies matter because completing out of order writes
 * used entries over descriptors of buffers still in flight.
 *
 * The region is front-end memory and may hold anything: every value is
 * checked before use.  A split region's nonsense is repaired (logged); a
 * packed region that is not self-consistent refuses the ring's start (one
 * line), since neither its requests nor the ring positions derived from it
 * could be trusted.  While a packed ring runs, the back-end keeps its own
 * copy of the free list and reads nothing back from the region. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../vring/vring_internal.h"
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

struct inflight_pdesc {
    uint8_t inflight;
    uint8_t padding;
    uint16_t next;
    uint16_t last;
    uint16_t num;
    uint64_t counter;
    uint16_t id;
    uint16_t flags;
    uint32_t len;
    uint64_t addr;
};

struct inflight_pqueue {
    uint64_t features;
    uint16_t version;
    uint16_t desc_num;
    uint16_t free_head;
    uint16_t old_free_head;
    uint16_t used_idx;
    uint16_t old_used_idx;
    uint8_t used_wrap_counter;
    uint8_t old_used_wrap_counter;
    uint8_t padding[7];
    struct inflight_pdesc desc[];
};

_Static_assert(sizeof(struct inflight_pdesc) == 32, "packed inflight entry");
_Static_assert(sizeof(struct inflight_pqueue) == 32, "packed inflight header");

static uint64_t queue_region(unsigned queue_size, bool packed)
{
    uint64_t entry = packed ? 32 : 16;
    return (entry + entry * queue_size + INFLIGHT_ALIGN - 1) & ~(uint64_t)(INFLIGHT_ALIGN - 1);
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
                      uint16_t qs, bool packed)
{
    struct vhu_backend *b = r->b;
    for (unsigned i = 0; i < b->nqueues; i++)
        if (b->vrings[i].started)
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
    b->inflight.region = queue_region(qs, packed);
    b->inflight.packed = packed;
    return 0;
}

int vhu_req_get_inflight_fd(struct vhu_req *r)
{
    const struct vhu_inflight *in = &r->m->p.inflight;
    int e = check_geometry(r, in->num_queues, in->queue_size);
    if (e < 0)
        return e;
    /* The layout follows the features acked so far: QEMU sends SET_FEATURES
     * (vhost_dev_prepare_inflight) before it asks. */
    bool packed = r->b->acked_features & VHU_BIT(VHU_F_RING_PACKED);
    uint64_t size = queue_region(in->queue_size, packed) * in->num_queues;
    int fd = memfd_create("vhu-inflight", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return vhu_refuse(r, -errno, "inflight: memfd_create: %s", vhu_strerror(-errno));
    /* A fresh memfd reads as zeroes: version 0, nothing in flight. */
    if (ftruncate(fd, (off_t)size) < 0) {
        close(fd);
        return vhu_refuse(r, -errno, "inflight: ftruncate: %s", vhu_strerror(-errno));
    }
    if ((e = map_region(r, fd, 0, size, in->num_queues, in->queue_size, packed)) < 0) {
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
    bool packed = r->b->acked_features & VHU_BIT(VHU_F_RING_PACKED);
    uint64_t need = queue_region(in->queue_size, packed) * in->num_queues, end;
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
                      in->queue_size, packed);
}

static struct inflight_queue *region_of(struct vhu_vring *q)
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

/* ---- packed rings ---- */

#define PD_NEXT 1u
#define PD_INDIRECT 4u
#define PD_AVAIL (1u << 7)
#define PD_USED (1u << 15)
#define NO_ENTRY 0xffffu

/* The back-end's side of a packed ring's region.  Private: while the ring
 * runs nothing is read back from the shared region, so a front-end
 * scribbling on it cannot steer the back-end. */
struct inflight_packed {
    struct inflight_pqueue *r;
    unsigned desc_num, ring;
    uint16_t *next;    /* [desc_num] free-list links, as written to the region */
    uint16_t *last;    /* [desc_num] a head entry's last entry */
    uint16_t *num;     /* [desc_num] a head entry's descriptor count */
    uint16_t *entry;   /* [ring] the head entry of a buffer ID held, or NO_ENTRY */
    uint16_t *pending; /* [ring] head entries put since the last flush */
    unsigned npending;
    uint16_t free_head; /* desc_num: the free list is empty */
    unsigned nfree;
    /* The chain pop is recording: the entry for its next descriptor, the
     * entry of its latest one, how many, and whether they did not fit. */
    uint16_t cur, cur_last;
    unsigned ncur;
    bool overflow;
    uint64_t counter;
    uint16_t used; /* position | wrap << 15 of the flush under way */
    /* Requests recovered at start, oldest first: head entries and where
     * their descriptor copies start in rs_desc. */
    uint16_t *rs_entry;
    unsigned *rs_off;
    struct vhu_pdesc *rs_desc;
    unsigned rs_n, rs_pos;
};

static void packed_free(struct inflight_packed *ip)
{
    if (!ip)
        return;
    free(ip->next);
    free(ip->last);
    free(ip->num);
    free(ip->entry);
    free(ip->pending);
    free(ip->rs_entry);
    free(ip->rs_off);
    free(ip->rs_desc);
    free(ip);
}

static struct inflight_packed *packed_new(unsigned desc_num, unsigned ring)
{
    struct inflight_packed *ip = calloc(1, sizeof(*ip));
    if (!ip)
        return NULL;
    ip->desc_num = desc_num;
    ip->ring = ring;
    ip->next = calloc(desc_num, sizeof(*ip->next));
    ip->last = calloc(desc_num, sizeof(*ip->last));
    ip->num = calloc(desc_num, sizeof(*ip->num));
    ip->entry = malloc(ring * sizeof(*ip->entry));
    ip->pending = calloc(ring, sizeof(*ip->pending));
    ip->rs_entry = calloc(ring, sizeof(*ip->rs_entry));
    ip->rs_off = calloc(ring, sizeof(*ip->rs_off));
    ip->rs_desc = calloc(ring, sizeof(*ip->rs_desc));
    if (!ip->next || !ip->last || !ip->num || !ip->entry || !ip->pending || !ip->rs_entry ||
        !ip->rs_off || !ip->rs_desc) {
        packed_free(ip);
        return NULL;
    }
    for (unsigned i = 0; i < ring; i++)
        ip->entry[i] = NO_ENTRY;
    return ip;
}

/* Every entry not held by a recovered request (owned[i] == 0, or owned
 * NULL: none is) into the free list, in ascending order, in the region
 * and in the private copy; the header's free heads point at it. */
static void rebuild_free_list(struct inflight_packed *ip, const uint8_t *owned)
{
    struct inflight_pqueue *r = ip->r;
    uint16_t head = (uint16_t)ip->desc_num, *link = &head;
    ip->nfree = 0;
    for (unsigned i = 0; i < ip->desc_num; i++) {
        if (owned && owned[i])
            continue;
        *link = (uint16_t)i;
        link = &ip->next[i];
        r->desc[i].inflight = 0;
        ip->nfree++;
    }
    *link = (uint16_t)ip->desc_num;
    for (unsigned i = 0; i < ip->desc_num; i++)
        if (!owned || !owned[i])
            r->desc[i].next = ip->next[i];
    ip->free_head = head;
    r->free_head = head;
    __atomic_store_n(&r->old_free_head, head, __ATOMIC_RELEASE);
}

struct by_counter {
    uint64_t counter;
    uint16_t entry;
};

static int cmp_by_counter(const void *a, const void *b)
{
    const struct by_counter *x = a, *y = b;
    if (x->counter != y->counter)
        return x->counter < y->counter ? -1 : 1;
    return x->entry < y->entry ? -1 : x->entry > y->entry;
}

#define REFUSE(...) (snprintf(why, wn, __VA_ARGS__), -EINVAL)

/* Check the region's requests (heads sorted oldest first) and copy their
 * descriptors; 0 or -EINVAL with why.  owned marks the entries they hold
 * (1 free, 2 held on the way in and out). */
static int recover_requests(struct inflight_packed *ip, const struct by_counter *heads,
                            unsigned nheads, uint8_t *owned, char *why, size_t wn)
{
    struct inflight_pqueue *r = ip->r;
    uint8_t *id_seen = calloc(ip->ring, 1);
    if (!id_seen)
        return -ENOMEM;
    int err = 0;
    unsigned total = 0;
    for (unsigned i = 0; i < nheads && !err; i++) {
        uint16_t h = heads[i].entry;
        uint16_t num = r->desc[h].num, last = r->desc[h].last;
        if (num == 0 || num > ip->ring - total) {
            err = REFUSE("entry %u: a request of %u descriptors (%u of the ring's %u are "
                         "already in flight)",
                         h, num, total, ip->ring);
            break;
        }
        uint16_t e = h;
        for (unsigned k = 0; k < num; k++) {
            if (e >= ip->desc_num || owned[e]) {
                err = REFUSE("entry %u: descriptor %u of its request is entry %u, %s", h, k, e,
                             e >= ip->desc_num ? "out of range"
                             : owned[e] == 1   ? "a free one"
                                               : "another request's");
                break;
            }
            owned[e] = 2;
            struct inflight_pdesc c;
            memcpy(&c, &r->desc[e], sizeof(c));
            __asm__ __volatile__("" ::: "memory");
            bool is_last = k + 1 == num;
            if (!(c.flags & PD_NEXT) != is_last || ((c.flags & PD_INDIRECT) && num != 1)) {
                err =
                    REFUSE("entry %u: descriptor %u of %u has flags 0x%x", h, k + 1, num, c.flags);
                break;
            }
            ip->rs_desc[total + k] =
                (struct vhu_pdesc){.addr = c.addr, .len = c.len, .id = c.id, .flags = c.flags};
            if (!is_last)
                e = c.next;
        }
        if (err)
            break;
        uint16_t id = ip->rs_desc[total + num - 1].id;
        if (e != last)
            err = REFUSE("entry %u: its last entry is %u, its descriptors end at %u", h, last, e);
        else if (id >= ip->ring)
            err = REFUSE("entry %u: buffer id %u out of range (ring size %u)", h, id, ip->ring);
        else if (id_seen[id])
            err = REFUSE("entry %u: buffer id %u is in flight twice", h, id);
        if (err)
            break;
        id_seen[id] = 1;
        ip->last[h] = e;
        ip->num[h] = num;
        ip->rs_entry[i] = h;
        ip->rs_off[i] = total;
        total += num;
        if (heads[i].counter >= ip->counter)
            ip->counter = heads[i].counter + 1;
    }
    free(id_seen);
    ip->rs_n = err ? 0 : nheads;
    return err;
}

/* Recovery (the spec's "when reconnecting"), then the positions: the used
 * side from the region, the avail side past every descriptor in flight.
 * The ring positions of SET_VRING_BASE are taken only for a fresh region:
 * QEMU 7.2 cannot restore a packed ring's index after a crash (it has no
 * used index in guest memory to read) and sends what it had at the last
 * start. */
static int recover_packed(struct vhu_vring *q, struct inflight_packed *ip, char *why, size_t wn)
{
    struct inflight_pqueue *r = ip->r;
    unsigned qs = ip->desc_num, ring = ip->ring;
    uint16_t fh = r->free_head, ofh = r->old_free_head;
    uint16_t ui = r->used_idx, oui = r->old_used_idx;
    uint8_t uw = r->used_wrap_counter, ouw = r->old_used_wrap_counter;
    if (fh > qs || ofh > qs || ui >= ring || oui >= ring || uw > 1 || ouw > 1)
        return REFUSE("header out of range: free heads %u, %u (%u entries), used positions %u, "
                      "%u (ring size %u), wrap counters %u, %u",
                      fh, ofh, qs, ui, oui, ring, uw, ouw);
    if (ui != oui || uw != ouw) {
        /* A flush was under way: finish it if the driver can see its first
         * used descriptor, else roll it back. */
        const struct vhu_pdesc *ringd = q->desc;
        uint16_t f = __atomic_load_n(&ringd[oui].flags, __ATOMIC_ACQUIRE);
        if ((f & (PD_AVAIL | PD_USED)) != (ouw ? PD_AVAIL : PD_USED)) {
            ofh = fh;
            oui = ui;
            ouw = uw;
        }
    }
    r->free_head = ofh;
    r->used_idx = oui;
    r->used_wrap_counter = ouw;
    r->old_used_idx = oui;
    r->old_used_wrap_counter = ouw;
    /* 1 free (the spec clears inflight on these), 2 held by a request. */
    uint8_t *owned = calloc(qs, 1);
    struct by_counter *heads = calloc(ring, sizeof(*heads));
    if (!owned || !heads) {
        free(owned);
        free(heads);
        return -ENOMEM;
    }
    int err = 0;
    for (uint16_t e = ofh; e < qs && !owned[e]; e = r->desc[e].next)
        owned[e] = 1;
    unsigned nheads = 0;
    for (unsigned i = 0; i < qs && !err; i++) {
        uint8_t v = r->desc[i].inflight;
        if (owned[i] == 1 || v == 0)
            continue;
        if (v != 1)
            err = REFUSE("entry %u: inflight %u", i, v);
        else if (nheads == ring)
            err = REFUSE("more than the ring's %u requests in flight", ring);
        else
            heads[nheads++] =
                (struct by_counter){.counter = r->desc[i].counter, .entry = (uint16_t)i};
    }
    if (!err) {
        qsort(heads, nheads, sizeof(*heads), cmp_by_counter);
        err = recover_requests(ip, heads, nheads, owned, why, wn);
    }
    unsigned total = 0;
    if (!err) {
        for (unsigned i = 0; i < qs; i++)
            owned[i] = owned[i] == 2;
        rebuild_free_list(ip, owned);
        for (unsigned i = 0; i < ip->rs_n; i++)
            total += ip->num[ip->rs_entry[i]];
    }
    free(owned);
    free(heads);
    if (err)
        return err;
    if (ip->counter == 0)
        ip->counter = 1;
    unsigned avail = oui + total;
    bool aw = ouw;
    if (avail >= ring) {
        avail -= ring;
        aw = !aw;
    }
    uint16_t used = (uint16_t)(oui | (unsigned)ouw << 15);
    uint16_t last_avail = (uint16_t)(avail | (unsigned)aw << 15);
    if (q->base_set && (used != q->packed_used || last_avail != q->last_avail))
        vhu_info("ring %u: positions from the inflight region: avail %u (wrap %u), used %u "
                 "(wrap %u); SET_VRING_BASE gave 0x%x",
                 q->index, avail, aw, oui, ouw,
                 (unsigned)q->last_avail | (unsigned)q->packed_used << 16);
    q->packed_used = used;
    q->last_avail = last_avail;
    if (ip->rs_n)
        vhu_info("ring %u: %u request(s) in flight from before; resubmitting", q->index, ip->rs_n);
    return 0;
}

static int start_packed(struct vhu_vring *q, uint8_t *base, char *why, size_t wn)
{
    unsigned qs = q->b->inflight.queue_size;
    if (q->num > qs) {
        vhu_err("ring %u: size %u exceeds the inflight region's queue size %u; not tracking",
                q->index, q->num, qs);
        return 0;
    }
    struct inflight_packed *ip = packed_new(qs, q->num);
    if (!ip)
        return -ENOMEM;
    struct inflight_pqueue *r = (struct inflight_pqueue *)base;
    ip->r = r;
    uint16_t version = r->version, desc_num = r->desc_num;
    if (version == INFLIGHT_VERSION && desc_num == qs) {
        int e = recover_packed(q, ip, why, wn);
        if (e < 0) {
            packed_free(ip);
            return e;
        }
        q->inflight_packed = ip;
        vhu_info("ring %u: inflight tracking, packed layout (%u entries)", q->index, qs);
        return 0;
    }
    if (version != 0)
        vhu_warn("ring %u: inflight region holds version %u, %u entries (want %u, %u): "
                 "records discarded",
                 q->index, version, desc_num, INFLIGHT_VERSION, qs);
    /* Fresh: nothing in flight, the used position from SET_VRING_BASE. */
    memset(r->desc, 0, 32ull * qs);
    r->features = 0;
    r->desc_num = (uint16_t)qs;
    r->used_idx = r->old_used_idx = q->packed_used & 0x7fffu;
    r->used_wrap_counter = r->old_used_wrap_counter = (uint8_t)(q->packed_used >> 15);
    rebuild_free_list(ip, NULL);
    ip->counter = 1;
    __atomic_store_n(&r->version, INFLIGHT_VERSION, __ATOMIC_RELEASE);
    q->inflight_packed = ip;
    vhu_info("ring %u: inflight tracking, packed layout (%u entries)", q->index, qs);
    return 0;
}

#undef REFUSE

bool vhu_vring_inflight_packed_resubmit(struct vhu_vring *q, const struct vhu_pdesc **d,
                                        unsigned *n)
{
    struct inflight_packed *ip = q->inflight_packed;
    if (!ip || ip->rs_pos >= ip->rs_n)
        return false;
    uint16_t h = ip->rs_entry[ip->rs_pos];
    *d = &ip->rs_desc[ip->rs_off[ip->rs_pos]];
    *n = ip->num[h];
    ip->rs_pos++;
    /* Checked at start: below the ring size, not repeated. */
    ip->entry[(*d)[*n - 1].id] = h;
    return true;
}

bool vhu_vring_inflight_packed_pending(const struct vhu_vring *q)
{
    const struct inflight_packed *ip = q->inflight_packed;
    return ip && ip->rs_pos < ip->rs_n;
}

void vhu_vring_inflight_packed_record(struct vhu_vring *q, unsigned i, const struct vhu_pdesc *d)
{
    struct inflight_packed *ip = q->inflight_packed;
    if (!ip)
        return;
    if (i == 0) {
        ip->cur = ip->free_head;
        ip->ncur = 0;
        ip->overflow = false;
    }
    if (ip->overflow || ip->ncur != i || ip->ncur >= ip->nfree) {
        ip->overflow = true;
        return;
    }
    /* Into a free entry: nothing refers to it until get() commits. */
    struct inflight_pdesc *e = &ip->r->desc[ip->cur];
    e->addr = d->addr;
    e->len = d->len;
    e->id = d->id;
    e->flags = d->flags;
    ip->cur_last = ip->cur;
    ip->cur = ip->next[ip->cur];
    ip->ncur++;
}

int vhu_vring_inflight_packed_get(struct vhu_vring *q, unsigned n, uint16_t id)
{
    struct inflight_packed *ip = q->inflight_packed;
    if (!ip)
        return 0;
    if (ip->overflow || ip->ncur != n || n == 0 || id >= ip->ring)
        return -ENOSPC;
    struct inflight_pqueue *r = ip->r;
    uint16_t h = ip->free_head;
    r->desc[h].num = (uint16_t)n;
    r->desc[h].last = ip->cur_last;
    r->desc[h].counter = ip->counter++;
    __atomic_store_n(&r->desc[h].inflight, 1, __ATOMIC_RELEASE);
    ip->num[h] = (uint16_t)n;
    ip->last[h] = ip->cur_last;
    ip->entry[id] = h;
    ip->free_head = ip->cur;
    ip->nfree -= n;
    ip->ncur = 0;
    /* Commit: a restart from here on keeps this request. */
    __atomic_store_n(&r->free_head, ip->free_head, __ATOMIC_RELEASE);
    __atomic_store_n(&r->old_free_head, ip->free_head, __ATOMIC_RELEASE);
    return 0;
}

void vhu_vring_inflight_packed_put(struct vhu_vring *q, uint16_t id)
{
    struct inflight_packed *ip = q->inflight_packed;
    if (!ip || id >= ip->ring || ip->entry[id] == NO_ENTRY || ip->npending == ip->ring)
        return;
    /* Its entries go back to the free list at the flush, not now: a pop
     * before then must not reuse them while a restart could still roll
     * the completion back. */
    ip->pending[ip->npending++] = ip->entry[id];
    ip->entry[id] = NO_ENTRY;
}

void vhu_vring_inflight_packed_flush_begin(struct vhu_vring *q, uint16_t used)
{
    struct inflight_packed *ip = q->inflight_packed;
    if (!ip)
        return;
    struct inflight_pqueue *r = ip->r;
    for (unsigned i = 0; i < ip->npending; i++) {
        uint16_t h = ip->pending[i], l = ip->last[h];
        r->desc[l].next = ip->free_head;
        ip->next[l] = ip->free_head;
        ip->free_head = h;
        ip->nfree += ip->num[h];
    }
    ip->used = used;
    r->free_head = ip->free_head;
    r->used_idx = used & 0x7fffu;
    /* Release: all of the above before the used flags the caller writes
     * next (the point after which a restart keeps the batch). */
    __atomic_store_n(&r->used_wrap_counter, (uint8_t)(used >> 15), __ATOMIC_RELEASE);
}

void vhu_vring_inflight_packed_flush_end(struct vhu_vring *q, unsigned batch)
{
    atomic_fetch_add_explicit(&q->completed, batch, memory_order_relaxed);
    struct inflight_packed *ip = q->inflight_packed;
    if (!ip)
        return;
    struct inflight_pqueue *r = ip->r;
    for (unsigned i = 0; i < ip->npending; i++)
        __atomic_store_n(&r->desc[ip->pending[i]].inflight, 0, __ATOMIC_RELEASE);
    ip->npending = 0;
    __atomic_store_n(&r->old_free_head, ip->free_head, __ATOMIC_RELEASE);
    __atomic_store_n(&r->old_used_idx, ip->used & 0x7fffu, __ATOMIC_RELEASE);
    __atomic_store_n(&r->old_used_wrap_counter, (uint8_t)(ip->used >> 15), __ATOMIC_RELEASE);
}

/* At ring start: adopt the queue's region, recovering what a previous
 * back-end left in flight.  Sets q->last_avail past what is resubmitted. */
int vhu_inflight_start(struct vhu_vring *q, char *why, size_t wn)
{
    vhu_inflight_stop(q);
    struct inflight_queue *iq = region_of(q);
    if (!iq)
        return 0;
    bool packed = q->features & VHU_BIT(VHU_F_RING_PACKED);
    if (packed != q->b->inflight.packed) {
        /* Made or handed over while the other layout was acked. */
        vhu_err("ring %u: the inflight region has the %s layout, the ring is %s; not tracking",
                q->index, q->b->inflight.packed ? "packed" : "split", packed ? "packed" : "split");
        return 0;
    }
    if (packed)
        return start_packed(q, (uint8_t *)iq, why, wn);
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

void vhu_inflight_stop(struct vhu_vring *q)
{
    free(q->resubmit);
    q->resubmit = NULL;
    q->resubmit_n = q->resubmit_pos = 0;
    q->inflight = NULL;
    packed_free(q->inflight_packed);
    q->inflight_packed = NULL;
}

bool vhu_vring_inflight_resubmit(struct vhu_vring *q, uint16_t *head)
{
    if (q->resubmit_pos >= q->resubmit_n)
        return false;
    *head = q->resubmit[q->resubmit_pos++];
    return true;
}

void vhu_vring_inflight_get(struct vhu_vring *q, uint16_t head)
{
    struct inflight_queue *iq = q->inflight;
    if (!iq || head >= iq->desc_num)
        return;
    iq->desc[head].counter = q->inflight_counter++;
    __atomic_store_n(&iq->desc[head].inflight, 1, __ATOMIC_RELEASE);
}

void vhu_vring_inflight_put_begin(struct vhu_vring *q, uint16_t head)
{
    struct inflight_queue *iq = q->inflight;
    if (!iq || head >= iq->desc_num)
        return;
    /* Chain the completions so a restart can clear the ones that reached
     * the used ring. */
    iq->desc[head].next = iq->last_batch_head;
    __atomic_store_n(&iq->last_batch_head, head, __ATOMIC_RELEASE);
}

void vhu_vring_inflight_put_end(struct vhu_vring *q, uint16_t head, uint16_t used_idx)
{
    /* Every completion passes here (the vring helpers call it whether or
     * not an inflight region exists), so this is where `info` counts. */
    atomic_fetch_add_explicit(&q->completed, 1, memory_order_relaxed);
    struct inflight_queue *iq = q->inflight;
    if (!iq || head >= iq->desc_num)
        return;
    __atomic_store_n(&iq->desc[head].inflight, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&iq->used_idx, used_idx, __ATOMIC_RELEASE);
}
