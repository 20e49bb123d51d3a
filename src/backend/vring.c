/* SPDX-License-Identifier: BSD-3-Clause */
/* Per-ring state: addresses, size, base, eventfds, started/enabled, and the
 * accessors a device uses while the ring runs. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../vring/vring_internal.h"
#include "backend_internal.h"

void vhu_vring_init(struct vhu_vring *q, struct vhu_backend *b, unsigned index)
{
    memset(q, 0, sizeof(*q));
    q->b = b;
    q->index = index;
    q->kick_fd = q->call_fd = q->err_fd = -1;
    pthread_mutex_init(&q->sig_lock, NULL);
    atomic_init(&q->enabled, false);
}

void vhu_vring_destroy(struct vhu_vring *q)
{
    vhu_vring_reset(q, false);
    pthread_mutex_destroy(&q->sig_lock);
}

void vhu_vring_reset(struct vhu_vring *q, bool keep_signals)
{
    /* Callers stop the ring first. */
    q->num = 0;
    q->last_avail = 0;
    q->packed_used = 0;
    q->base_set = false;
    q->addr_set = false;
    q->log_used = false;
    memset(&q->addr, 0, sizeof(q->addr));
    q->desc = q->avail = q->used = NULL;
    vhu_close_fd(&q->kick_fd);
    atomic_store(&q->enabled, false);
    q->features = 0;
    if (!keep_signals) {
        vhu_vring_set_call(q, -1);
        vhu_vring_set_err(q, -1);
    }
}

int vhu_vring_translate(struct vhu_vring *q, const struct vhu_mem *mem,
                        const struct vhu_vring_addr *a, unsigned num, uint64_t features, bool apply,
                        char *why, size_t n)
{
    /* Sizes from the virtio split-ring layout; the event-index words exist
     * only with EVENT_IDX.  A packed ring has its descriptor ring and two
     * 4-byte event suppression areas (driver's at the avail address,
     * device's at the used address). */
    bool packed = features & VHU_BIT(VHU_F_RING_PACKED);
    uint64_t ev = (features & VHU_BIT(VHU_F_RING_EVENT_IDX)) ? 2 : 0;
    uint64_t desc_len = 16ull * num;
    uint64_t avail_len = packed ? 4 : 4 + 2ull * num + ev;
    uint64_t used_len = packed ? 4 : 4 + 8ull * num + ev;
    void *desc = vhu_mem_uva(mem, a->desc_user_addr, desc_len);
    void *avail = vhu_mem_uva(mem, a->avail_user_addr, avail_len);
    void *used = vhu_mem_uva(mem, a->used_user_addr, used_len);
    const char *bad = !desc    ? "descriptor table"
                      : !avail ? "avail ring"
                      : !used  ? "used ring"
                               : NULL;
    if (bad) {
        uint64_t addr = !desc ? a->desc_user_addr : !avail ? a->avail_user_addr : a->used_user_addr;
        uint64_t len = !desc ? desc_len : !avail ? avail_len : used_len;
        snprintf(why, n,
                 "ring %u: %s at user address 0x%llx (+%llu bytes for size %u) is not "
                 "inside one memory region",
                 q->index, bad, (unsigned long long)addr, (unsigned long long)len, num);
        return -EFAULT;
    }
    if (((uintptr_t)desc & 15) || ((uintptr_t)avail & (packed ? 3 : 1)) || ((uintptr_t)used & 3)) {
        snprintf(why, n,
                 "ring %u: misaligned ring (descriptor table 0x%llx, avail 0x%llx, "
                 "used 0x%llx)",
                 q->index, (unsigned long long)a->desc_user_addr,
                 (unsigned long long)a->avail_user_addr, (unsigned long long)a->used_user_addr);
        return -EINVAL;
    }
    if (apply) {
        q->desc = desc;
        q->avail = avail;
        q->used = used;
        /* For the dirty log of a packed ring's writes (found above, so the
         * lookups succeed). */
        q->desc_gpa = q->used_gpa = 0;
        if (packed) {
            vhu_mem_uva_to_gpa(mem, a->desc_user_addr, desc_len, &q->desc_gpa);
            vhu_mem_uva_to_gpa(mem, a->used_user_addr, used_len, &q->used_gpa);
        }
    }
    return 0;
}

int vhu_vring_start(struct vhu_vring *q, char *why, size_t n)
{
    struct vhu_backend *b = q->b;
    if (q->started)
        return 0;
    if (!q->num || !q->addr_set || b->mem.n == 0 || q->kick_fd < 0) {
        snprintf(why, n, "ring %u cannot start without %s", q->index,
                 !q->num         ? "SET_VRING_NUM"
                 : !q->addr_set  ? "SET_VRING_ADDR"
                 : b->mem.n == 0 ? "a memory table"
                                 : "a kick fd");
        return -EINVAL;
    }
    bool packed = b->acked_features & VHU_BIT(VHU_F_RING_PACKED);
    if (packed && !q->base_set) {
        /* A fresh packed ring: position 0, both wrap counters 1 (what
         * QEMU sends as base 0x80008000).  From here on the ring has a
         * base: a restart without SET_VRING_BASE, and a snapshot, go on
         * from where it stopped. */
        q->last_avail = 0x8000;
        q->packed_used = 0x8000;
        q->base_set = true;
    }
    if (packed && ((q->last_avail & 0x7fffu) >= q->num || (q->packed_used & 0x7fffu) >= q->num)) {
        snprintf(why, n,
                 "ring %u: packed base: avail position %u or used position %u is not "
                 "below the ring size %u",
                 q->index, q->last_avail & 0x7fffu, q->packed_used & 0x7fffu, q->num);
        return -EINVAL;
    }
    int r = vhu_vring_translate(q, &b->mem, &q->addr, q->num, b->acked_features, true, why, n);
    if (r < 0)
        return r;
    q->features = b->acked_features;
    char what[VHU_REASON_MAX] = "";
    r = vhu_inflight_start(q, what, sizeof(what));
    if (r < 0) {
        snprintf(why, n, "ring %u: inflight region: %s", q->index,
                 what[0] ? what : vhu_strerror(r));
        q->desc = q->avail = q->used = NULL;
        return r;
    }
    r = b->ops->start_vring(b->dev, q);
    if (r < 0) {
        vhu_inflight_stop(q);
        snprintf(why, n, "ring %u: the device refused to start it: %s", q->index, vhu_strerror(r));
        q->desc = q->avail = q->used = NULL;
        return r;
    }
    q->started = true;
    return 0;
}

void vhu_vring_stop(struct vhu_vring *q)
{
    if (!q->started)
        return;
    q->b->ops->stop_vring(q->b->dev, q);
    vhu_inflight_stop(q);
    q->started = false;
    q->desc = q->avail = q->used = NULL;
}

static void swap_fd(struct vhu_vring *q, int *slot, int fd)
{
    pthread_mutex_lock(&q->sig_lock);
    int old = *slot;
    *slot = fd;
    pthread_mutex_unlock(&q->sig_lock);
    vhu_close_fd(&old);
}

void vhu_vring_set_call(struct vhu_vring *q, int fd) { swap_fd(q, &q->call_fd, fd); }

void vhu_vring_set_err(struct vhu_vring *q, int fd) { swap_fd(q, &q->err_fd, fd); }

static int signal_fd(struct vhu_vring *q, int *slot)
{
    int r = 0;
    pthread_mutex_lock(&q->sig_lock);
    if (*slot >= 0) {
        uint64_t one = 1;
        if (write(*slot, &one, sizeof(one)) < 0 && errno != EAGAIN)
            r = -errno;
    }
    pthread_mutex_unlock(&q->sig_lock);
    return r;
}

/* ---- public accessors ---- */

unsigned vhu_vring_index(const struct vhu_vring *q) { return q->index; }
unsigned vhu_vring_size(const struct vhu_vring *q) { return q->num; }
uint64_t vhu_vring_features(const struct vhu_vring *q) { return q->features; }
int vhu_vring_kick_fd(const struct vhu_vring *q) { return q->kick_fd; }
void *vhu_vring_desc(const struct vhu_vring *q) { return q->desc; }
void *vhu_vring_avail(const struct vhu_vring *q) { return q->avail; }
void *vhu_vring_used(const struct vhu_vring *q) { return q->used; }
/* Atomic: the control socket's `info` reads it on the loop thread while the
 * device's thread advances it. */
uint16_t vhu_vring_last_avail(const struct vhu_vring *q)
{
    return __atomic_load_n(&q->last_avail, __ATOMIC_RELAXED);
}
void vhu_vring_set_last_avail(struct vhu_vring *q, uint16_t idx)
{
    __atomic_store_n(&q->last_avail, idx, __ATOMIC_RELAXED);
}
uint16_t vhu_vring_packed_used(const struct vhu_vring *q)
{
    return __atomic_load_n(&q->packed_used, __ATOMIC_RELAXED);
}
void vhu_vring_set_packed_used(struct vhu_vring *q, uint16_t v)
{
    __atomic_store_n(&q->packed_used, v, __ATOMIC_RELAXED);
}
bool vhu_vring_enabled(const struct vhu_vring *q) { return atomic_load(&q->enabled); }
int vhu_vring_notify(struct vhu_vring *q) { return signal_fd(q, &q->call_fd); }
int vhu_vring_signal_error(struct vhu_vring *q) { return signal_fd(q, &q->err_fd); }

void *vhu_vring_gpa_to_host(const struct vhu_vring *q, uint64_t gpa, uint64_t len)
{
    return vhu_mem_gpa(&q->b->mem, gpa, len);
}
