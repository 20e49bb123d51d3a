/* SPDX-License-Identifier: BSD-3-Clause */
/* Guest memory (a memfd shared with the back-end) and split or packed rings
 * laid out in it, as a driver would: what the tests and benchmarks run
 * devices on. */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vhu/frontend.h>

#include "../common/internal.h"

int vhu_guest_mem_new(struct vhu_guest_mem *m, uint64_t gpa, uint64_t size)
{
    memset(m, 0, sizeof(*m));
    m->fd = -1;
    uint64_t end;
    if (size == 0 || size > SIZE_MAX || !vhu_range_end(gpa, size, &end))
        return -EINVAL;
    int fd = memfd_create("vhu-guest", MFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (ftruncate(fd, (off_t)size) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    void *p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        int e = -errno;
        close(fd);
        return e;
    }
    m->fd = fd;
    m->host = p;
    m->gpa = gpa;
    m->size = size;
    return 0;
}

void vhu_guest_mem_free(struct vhu_guest_mem *m)
{
    if (m->host)
        munmap(m->host, (size_t)m->size);
    vhu_close_fd(&m->fd);
    m->host = NULL;
}

struct vhu_mem_region vhu_guest_mem_region(const struct vhu_guest_mem *m)
{
    struct vhu_mem_region r = {.guest_phys_addr = m->gpa,
                               .memory_size = m->size,
                               .userspace_addr = (uint64_t)(uintptr_t)m->host,
                               .mmap_offset = 0};
    return r;
}

void *vhu_guest_mem_ptr(const struct vhu_guest_mem *m, uint64_t gpa, uint64_t len)
{
    if (!vhu_range_within(gpa, len, m->gpa, m->size) || gpa - m->gpa >= m->size)
        return NULL;
    return m->host + (gpa - m->gpa);
}

/* Split-ring layout (virtio 1.x, 2.7): descriptors 16 bytes each; avail =
 * flags, idx, ring[size], used_event; used = flags, idx, {id, len}[size],
 * avail_event. */
struct ring_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags, next;
};
#define AVAIL_BYTES(n) (6ull + 2ull * (n))
#define USED_BYTES(n) (6ull + 8ull * (n))

static uint64_t used_offset(unsigned size)
{
    return (16ull * size + AVAIL_BYTES(size) + 4095) & ~4095ull;
}

uint64_t vhu_fe_vring_bytes(unsigned size) { return used_offset(size) + USED_BYTES(size); }

int vhu_fe_vring_init(struct vhu_fe_vring *r, struct vhu_guest_mem *m, unsigned index,
                      unsigned size, uint64_t gpa)
{
    memset(r, 0, sizeof(*r));
    if (!vhu_is_pow2(size) || size > VHU_MAX_QUEUE_SIZE || (gpa & 15))
        return -EINVAL;
    void *p = vhu_guest_mem_ptr(m, gpa, vhu_fe_vring_bytes(size));
    if (!p)
        return -EFAULT;
    memset(p, 0, vhu_fe_vring_bytes(size));
    r->index = index;
    r->size = size;
    r->mem = m;
    r->desc_gpa = gpa;
    r->avail_gpa = gpa + 16ull * size;
    r->used_gpa = gpa + used_offset(size);
    return 0;
}

static uint64_t gpa_to_uva(const struct vhu_guest_mem *m, uint64_t gpa)
{
    return (uint64_t)(uintptr_t)m->host + (gpa - m->gpa);
}

int vhu_fe_vring_set_addr(struct vhu_fe *fe, const struct vhu_fe_vring *r, uint32_t flags)
{
    struct vhu_vring_addr a = {
        .index = r->index,
        .flags = flags,
        .desc_user_addr = gpa_to_uva(r->mem, r->desc_gpa),
        .used_user_addr = gpa_to_uva(r->mem, r->used_gpa),
        .avail_user_addr = gpa_to_uva(r->mem, r->avail_gpa),
        .log_guest_addr = r->used_gpa,
    };
    return vhu_fe_set_vring_addr(fe, &a);
}

/* ---- packed rings (virtio 1.1+, 2.8) ---- */

struct packed_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t id, flags;
};
#define PF_AVAIL (1u << 7)
#define PF_USED (1u << 15)

uint64_t vhu_fe_packed_ring_bytes(unsigned size) { return 16ull * size + 8 + 2ull * size; }

int vhu_fe_vring_init_packed(struct vhu_fe_vring *r, struct vhu_guest_mem *m, unsigned index,
                             unsigned size, uint64_t gpa)
{
    memset(r, 0, sizeof(*r));
    if (size == 0 || size > VHU_MAX_QUEUE_SIZE || (gpa & 15))
        return -EINVAL;
    void *p = vhu_guest_mem_ptr(m, gpa, vhu_fe_packed_ring_bytes(size));
    if (!p)
        return -EFAULT;
    memset(p, 0, vhu_fe_packed_ring_bytes(size));
    r->index = index;
    r->size = size;
    r->mem = m;
    r->packed = true;
    r->desc_gpa = gpa;
    r->avail_gpa = gpa + 16ull * size;
    r->used_gpa = r->avail_gpa + 4;
    r->counts_gpa = r->used_gpa + 4;
    r->avail_wrap = r->used_wrap = true;
    return 0;
}

static struct packed_desc *pring(const struct vhu_fe_vring *r)
{
    return vhu_guest_mem_ptr(r->mem, r->desc_gpa, 16ull * r->size);
}

static uint16_t *pcounts(const struct vhu_fe_vring *r)
{
    return vhu_guest_mem_ptr(r->mem, r->counts_gpa, 2ull * r->size);
}

uint32_t vhu_fe_vring_packed_base(const struct vhu_fe_vring *r)
{
    return (uint32_t)r->next_avail | (uint32_t)r->avail_wrap << 15 | (uint32_t)r->next_used << 16 |
           (uint32_t)r->used_wrap << 31;
}

void vhu_fe_vring_packed_set_base(struct vhu_fe_vring *r, uint32_t base)
{
    r->next_avail = (uint16_t)(base & 0x7fff);
    r->avail_wrap = (base >> 15) & 1;
    r->next_used = (uint16_t)((base >> 16) & 0x7fff);
    r->used_wrap = base >> 31;
    r->in_use = 0;
    memset(pcounts(r), 0, 2ull * r->size);
}

uint16_t vhu_fe_vring_packed_avail_flags(const struct vhu_fe_vring *r, unsigned ahead)
{
    bool w = r->avail_wrap;
    if ((((unsigned long)r->next_avail + ahead) / r->size) & 1)
        w = !w;
    return w ? (uint16_t)PF_AVAIL : (uint16_t)PF_USED;
}

void vhu_fe_vring_packed_set_event(struct vhu_fe_vring *r, uint16_t flags, uint16_t off_wrap)
{
    uint16_t *a = vhu_guest_mem_ptr(r->mem, r->avail_gpa, 4);
    __atomic_store_n(&a[0], off_wrap, __ATOMIC_RELAXED);
    __atomic_store_n(&a[1], flags, __ATOMIC_RELAXED);
    /* As a driver does: the event before it reads the used entries. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* Write n descriptors from next_avail, the first one's flags last (that
 * makes the whole chain available at once): bufs linked with NEXT, or the
 * one descriptor `one` when bufs is NULL. */
static int packed_push(struct vhu_fe_vring *r, uint16_t id, const struct vhu_fe_buf *bufs,
                       const struct packed_desc *one, unsigned n)
{
    if (id >= r->size || n == 0 || n > r->size)
        return -EINVAL;
    if (n > r->size - r->in_use)
        return -ENOSPC;
    struct packed_desc *ring = pring(r);
    uint16_t first_flags = 0;
    unsigned pos = r->next_avail;
    bool w = r->avail_wrap;
    unsigned first = pos;
    for (unsigned i = 0; i < n; i++) {
        struct packed_desc d =
            one ? *one
                : (struct packed_desc){
                      .addr = bufs[i].addr,
                      .len = bufs[i].len,
                      .flags = (uint16_t)((bufs[i].writable ? 2 : 0) | (i + 1 < n ? 1 : 0))};
        uint16_t f = (uint16_t)(d.flags | (w ? PF_AVAIL : PF_USED));
        ring[pos].addr = d.addr;
        ring[pos].len = d.len;
        ring[pos].id = id;
        if (i == 0)
            first_flags = f;
        else
            __atomic_store_n(&ring[pos].flags, f, __ATOMIC_RELAXED);
        if (++pos == r->size) {
            pos = 0;
            w = !w;
        }
    }
    pcounts(r)[id] = (uint16_t)n;
    __atomic_store_n(&ring[first].flags, first_flags, __ATOMIC_RELEASE);
    r->next_avail = (uint16_t)pos;
    r->avail_wrap = w;
    r->in_use += n;
    return 0;
}

static int packed_pop_used(struct vhu_fe_vring *r, uint32_t *id, uint32_t *len)
{
    struct packed_desc *ring = pring(r);
    uint16_t f = __atomic_load_n(&ring[r->next_used].flags, __ATOMIC_ACQUIRE);
    uint16_t want = r->used_wrap ? (uint16_t)(PF_AVAIL | PF_USED) : 0;
    if ((f & (PF_AVAIL | PF_USED)) != want)
        return 0;
    uint16_t i = ring[r->next_used].id;
    uint32_t l = ring[r->next_used].len;
    if (id)
        *id = i;
    if (len)
        *len = l;
    /* The device skips the descriptors the buffer took; an ID the driver
     * did not give is counted as one. */
    uint16_t *counts = pcounts(r);
    unsigned n = i < r->size && counts[i] ? counts[i] : 1;
    if (i < r->size)
        counts[i] = 0;
    unsigned pos = r->next_used + n;
    if (pos >= r->size) {
        pos -= r->size;
        r->used_wrap = !r->used_wrap;
    }
    r->next_used = (uint16_t)pos;
    r->in_use = r->in_use > n ? r->in_use - n : 0;
    r->used_seen++;
    return 1;
}

static uint16_t packed_used_idx(const struct vhu_fe_vring *r)
{
    const struct packed_desc *ring = pring(r);
    const uint16_t *counts = pcounts(r);
    unsigned pos = r->next_used, seen = 0;
    bool w = r->used_wrap;
    for (unsigned k = 0; k < r->size; k++) {
        uint16_t f = __atomic_load_n(&ring[pos].flags, __ATOMIC_ACQUIRE);
        if ((f & (PF_AVAIL | PF_USED)) != (w ? (PF_AVAIL | PF_USED) : 0))
            break;
        uint16_t i = ring[pos].id;
        unsigned n = i < r->size && counts[i] ? counts[i] : 1;
        seen++;
        pos += n;
        if (pos >= r->size) {
            pos -= r->size;
            w = !w;
        }
    }
    return (uint16_t)(r->used_seen + seen);
}

int vhu_fe_vring_push(struct vhu_fe_vring *r, uint16_t head, uint64_t addr, uint32_t len,
                      uint16_t flags)
{
    if (r->packed) {
        struct packed_desc d = {.addr = addr, .len = len, .flags = flags};
        return packed_push(r, head, NULL, &d, 1);
    }
    if (head >= r->size)
        return -EINVAL;
    struct ring_desc *d = vhu_guest_mem_ptr(r->mem, r->desc_gpa, 16ull * r->size);
    uint16_t *avail = vhu_guest_mem_ptr(r->mem, r->avail_gpa, AVAIL_BYTES(r->size));
    d[head] = (struct ring_desc){.addr = addr, .len = len, .flags = flags, .next = 0};
    avail[2 + (r->avail_idx & (r->size - 1))] = head;
    r->avail_idx++;
    /* Publish the entry before the index the device polls. */
    __atomic_store_n(&avail[1], r->avail_idx, __ATOMIC_RELEASE);
    return 0;
}

#define DESC_F_NEXT 1
#define DESC_F_WRITE 2
#define DESC_F_INDIRECT 4

void vhu_fe_vring_publish(struct vhu_fe_vring *r, uint16_t head)
{
    if (r->packed)
        return;
    uint16_t *avail = vhu_guest_mem_ptr(r->mem, r->avail_gpa, AVAIL_BYTES(r->size));
    __atomic_store_n(&avail[2 + (r->avail_idx & (r->size - 1))], head, __ATOMIC_RELAXED);
    r->avail_idx++;
    /* Descriptors and the entry before the index the device polls. */
    __atomic_store_n(&avail[1], r->avail_idx, __ATOMIC_RELEASE);
}

void *vhu_fe_vring_desc(const struct vhu_fe_vring *r)
{
    return vhu_guest_mem_ptr(r->mem, r->desc_gpa, 16ull * r->size);
}

static void fill_desc(struct ring_desc *d, const struct vhu_fe_buf *b, uint16_t next, bool more)
{
    *d = (struct ring_desc){
        .addr = b->addr,
        .len = b->len,
        .flags = (uint16_t)((b->writable ? DESC_F_WRITE : 0) | (more ? DESC_F_NEXT : 0)),
        .next = more ? next : 0};
}

int vhu_fe_vring_push_chain(struct vhu_fe_vring *r, uint16_t head, const struct vhu_fe_buf *bufs,
                            unsigned n)
{
    if (r->packed)
        return packed_push(r, head, bufs, NULL, n);
    if (head >= r->size || n == 0 || n > r->size)
        return -EINVAL;
    struct ring_desc *d = vhu_fe_vring_desc(r);
    unsigned mask = r->size - 1;
    for (unsigned i = 0; i < n; i++)
        fill_desc(&d[(head + i) & mask], &bufs[i], (uint16_t)((head + i + 1) & mask), i + 1 < n);
    vhu_fe_vring_publish(r, head);
    return 0;
}

int vhu_fe_vring_push_indirect(struct vhu_fe_vring *r, uint16_t head, uint64_t table_gpa,
                               const struct vhu_fe_buf *bufs, unsigned n)
{
    if (head >= r->size || n == 0 || n > 0xffffffffu / 16)
        return -EINVAL;
    if (r->packed) {
        /* Entries in order; only WRITE means anything in them. */
        struct packed_desc *pt = vhu_guest_mem_ptr(r->mem, table_gpa, 16ull * n);
        if (!pt)
            return -EFAULT;
        for (unsigned i = 0; i < n; i++)
            pt[i] = (struct packed_desc){.addr = bufs[i].addr,
                                         .len = bufs[i].len,
                                         .flags = bufs[i].writable ? DESC_F_WRITE : 0};
        struct packed_desc d = {.addr = table_gpa, .len = 16u * n, .flags = DESC_F_INDIRECT};
        return packed_push(r, head, NULL, &d, 1);
    }
    struct ring_desc *t = vhu_guest_mem_ptr(r->mem, table_gpa, 16ull * n);
    if (!t)
        return -EFAULT;
    for (unsigned i = 0; i < n; i++)
        fill_desc(&t[i], &bufs[i], (uint16_t)(i + 1), i + 1 < n);
    struct ring_desc *d = vhu_fe_vring_desc(r);
    d[head] = (struct ring_desc){.addr = table_gpa, .len = 16u * n, .flags = DESC_F_INDIRECT};
    vhu_fe_vring_publish(r, head);
    return 0;
}

int vhu_fe_vring_pop_used(struct vhu_fe_vring *r, uint32_t *id, uint32_t *len)
{
    if (r->packed)
        return packed_pop_used(r, id, len);
    uint8_t *used = vhu_guest_mem_ptr(r->mem, r->used_gpa, USED_BYTES(r->size));
    uint16_t idx = __atomic_load_n((uint16_t *)(used + 2), __ATOMIC_ACQUIRE);
    if (idx == r->used_seen)
        return 0;
    uint32_t *e = (uint32_t *)(used + 4) + 2u * (r->used_seen & (r->size - 1));
    if (id)
        *id = e[0];
    if (len)
        *len = e[1];
    r->used_seen++;
    return 1;
}

uint16_t vhu_fe_vring_used_idx(const struct vhu_fe_vring *r)
{
    if (r->packed)
        return packed_used_idx(r);
    uint16_t *used = vhu_guest_mem_ptr(r->mem, r->used_gpa, USED_BYTES(r->size));
    return __atomic_load_n(&used[1], __ATOMIC_ACQUIRE);
}
