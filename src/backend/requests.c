/* SPDX-License-Identifier: BSD-3-Clause */
/* One function per front-end request, reached through the table at the end
 * of this file.  Each runs only on a message that passed the wire checks
 * (size, fd count, structure) and the negotiation gate; it checks values
 * against the session state and either acts or refuses with a reason. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend_internal.h"

/* Take ownership of the message's fd i. */
static int take_fd(struct vhu_req *r, unsigned i)
{
    int fd = r->m->fds[i];
    r->m->fds[i] = -1;
    return fd;
}

static void reply_u64(struct vhu_req *r, uint64_t v)
{
    r->rep->p.u64 = v;
    r->rep->size = sizeof(uint64_t);
}

/* The ring a request names, or NULL (with the refusal reason set). */
static struct vhu_vring *ring_at(struct vhu_req *r, uint32_t idx)
{
    if (idx >= r->b->nqueues) {
        vhu_refuse(r, -ERANGE, "ring index %u out of range (device has %u rings)", idx,
                   r->b->nqueues);
        return NULL;
    }
    return &r->b->vrings[idx];
}

static bool any_started(const struct vhu_backend *b)
{
    for (unsigned i = 0; i < b->nqueues; i++)
        if (b->vrings[i].started)
            return true;
    return false;
}

/* ---- session and features ---- */

static int req_get_features(struct vhu_req *r)
{
    reply_u64(r, r->b->features_offered);
    return 0;
}

static int req_set_features(struct vhu_req *r)
{
    struct vhu_backend *b = r->b;
    uint64_t f = r->m->p.u64;
    if (f & ~b->features_offered)
        return vhu_refuse(r, -EINVAL, "feature bits 0x%llx were never offered (offered 0x%llx)",
                          (unsigned long long)(f & ~b->features_offered),
                          (unsigned long long)b->features_offered);
    for (unsigned i = 0; i < b->nqueues; i++)
        if (b->vrings[i].started && ((f ^ b->acked_features) & ~VHU_BIT(VHU_F_LOG_ALL)))
            return vhu_refuse(r, -EBUSY, "features 0x%llx -> 0x%llx while ring %u runs",
                              (unsigned long long)b->acked_features, (unsigned long long)f, i);
    if (b->ops->ack_features) {
        int e = b->ops->ack_features(b->dev, f);
        if (e < 0)
            return vhu_refuse(r, e, "the device refused features 0x%llx", (unsigned long long)f);
    }
    b->acked_features = f;
    bool log_all = f & VHU_BIT(VHU_F_LOG_ALL);
    /* Each switch-on (a new migration) reports its first unmarked write. */
    if (log_all && !atomic_load(&b->logging))
        atomic_store(&b->log.overflow_logged, false);
    atomic_store(&b->logging, log_all);
    /* Without PROTOCOL_FEATURES rings are enabled from the start; with it
     * they wait for SET_VRING_ENABLE. */
    if (!(f & VHU_BIT(VHU_F_PROTOCOL_FEATURES)))
        for (unsigned i = 0; i < b->nqueues; i++)
            atomic_store(&b->vrings[i].enabled, true);
    return 0;
}

static int req_set_owner(struct vhu_req *r)
{
    if (r->b->owned)
        return vhu_refuse(r, -EALREADY, "the session already has an owner");
    r->b->owned = true;
    return 0;
}

/* RESET_OWNER is deprecated; like libvhost-user and the spec's advice we
 * treat it as a device reset that keeps the session. */
static int req_reset_owner(struct vhu_req *r)
{
    vhu_backend_reset_device(r->b);
    return 0;
}

static int req_reset_device(struct vhu_req *r)
{
    vhu_backend_reset_device(r->b);
    return 0;
}

static int req_get_protocol_features(struct vhu_req *r)
{
    reply_u64(r, r->b->pf_offered);
    return 0;
}

static int req_set_protocol_features(struct vhu_req *r)
{
    struct vhu_backend *b = r->b;
    uint64_t pf = r->m->p.u64;
    if (pf & ~b->pf_offered)
        return vhu_refuse(
            r, -EINVAL, "protocol feature bits 0x%llx were never offered (offered 0x%llx)",
            (unsigned long long)(pf & ~b->pf_offered), (unsigned long long)b->pf_offered);
    b->acked_pf = pf;
    return 0;
}

static int req_get_queue_num(struct vhu_req *r)
{
    reply_u64(r, r->b->nqueues);
    return 0;
}

static int req_set_status(struct vhu_req *r)
{
    uint64_t s = r->m->p.u64;
    if (s > 0xff)
        return vhu_refuse(r, -EINVAL, "status 0x%llx does not fit the virtio status byte",
                          (unsigned long long)s);
    if (r->b->ops->set_status) {
        int e = r->b->ops->set_status(r->b->dev, (uint8_t)s);
        if (e < 0)
            return vhu_refuse(r, e, "the device refused status 0x%llx", (unsigned long long)s);
    }
    r->b->status = (uint8_t)s;
    return 0;
}

static int req_get_status(struct vhu_req *r)
{
    reply_u64(r, r->b->status);
    return 0;
}

static int req_set_backend_req_fd(struct vhu_req *r)
{
    struct stat st;
    if (fstat(r->m->fds[0], &st) < 0 || !S_ISSOCK(st.st_mode))
        return vhu_refuse(r, -EINVAL, "the fd is not a socket");
    int fd = take_fd(r, 0);
    struct vhu_backend *b = r->b;
    pthread_mutex_lock(&b->chan_lock);
    int old = b->chan_fd;
    b->chan_fd = fd;
    pthread_mutex_unlock(&b->chan_lock);
    vhu_close_fd(&old);
    return 0;
}

/* ---- memory ---- */

/* Would every started ring still translate with `mem`? */
static int rings_fit(struct vhu_req *r, const struct vhu_mem *mem)
{
    struct vhu_backend *b = r->b;
    for (unsigned i = 0; i < b->nqueues; i++) {
        struct vhu_vring *q = &b->vrings[i];
        if (!q->started)
            continue;
        char why[VHU_REASON_MAX];
        if (vhu_vring_translate(q, mem, &q->addr, q->num, q->features, false, why, sizeof(why)) < 0)
            return vhu_refuse(r, -EBUSY, "ring %u runs and would lose its memory: %s", i, why);
    }
    return 0;
}

/* Install `next` as the memory table under paused rings; frees the old. */
static void swap_mem(struct vhu_backend *b, struct vhu_mem *next)
{
    bool was[VHU_MAX_QUEUES];
    vhu_backend_pause(b, was);
    struct vhu_mem old = b->mem;
    b->mem = *next;
    vhu_backend_resume(b, was);
    vhu_mem_clear(&old);
}

static int req_set_mem_table(struct vhu_req *r)
{
    const struct vhu_mem_table *t = &r->m->p.mem;
    struct vhu_mem next = {0};
    int e = 0;
    for (uint32_t i = 0; i < t->nregions; i++) {
        const struct vhu_mem_region *d = &t->regions[i];
        struct vhu_region reg;
        if ((e = vhu_mem_region_check(d, r->why, sizeof(r->why))) < 0 ||
            (e = vhu_mem_check_overlap(&next, d, r->why, sizeof(r->why))) < 0 ||
            (e = vhu_mem_map(d, r->m->fds[i], &reg, r->why, sizeof(r->why))) < 0)
            goto fail;
        if ((e = vhu_mem_append(&next, &reg)) < 0) {
            vhu_mem_unmap(&reg);
            vhu_refuse(r, e, "out of memory");
            goto fail;
        }
    }
    if ((e = rings_fit(r, &next)) < 0)
        goto fail;
    /* A table reaching past the dirty log is accepted, logging or not:
     * QEMU's vhost_dev_start sends it before SET_LOG_BASE when a device
     * starts during migration.  Until a covering log arrives, a write past
     * the log fails loudly (dirty_log.c, mark_dirty); only SET_LOG_BASE is held
     * to cover the table. */
    swap_mem(r->b, &next);
    return 0;
fail:
    vhu_mem_clear(&next);
    return e;
}

static int req_get_max_mem_slots(struct vhu_req *r)
{
    reply_u64(r, VHU_MAX_MEM_SLOTS);
    return 0;
}

static int req_add_mem_reg(struct vhu_req *r)
{
    struct vhu_backend *b = r->b;
    const struct vhu_mem_region *d = &r->m->p.mreg.region;
    int e;
    if (b->mem.n >= VHU_MAX_MEM_SLOTS)
        return vhu_refuse(r, -ENOSPC, "all %u memory slots are in use", VHU_MAX_MEM_SLOTS);
    if ((e = vhu_mem_region_check(d, r->why, sizeof(r->why))) < 0 ||
        (e = vhu_mem_check_overlap(&b->mem, d, r->why, sizeof(r->why))) < 0)
        return e;
    struct vhu_region reg;
    if ((e = vhu_mem_map(d, r->m->fds[0], &reg, r->why, sizeof(r->why))) < 0)
        return e;
    /* Past the dirty log or not, accepted: see req_set_mem_table. */
    /* Appending may move the region array: pause rings around it. */
    bool was[VHU_MAX_QUEUES];
    vhu_backend_pause(b, was);
    e = vhu_mem_append(&b->mem, &reg);
    vhu_backend_resume(b, was);
    if (e < 0) {
        vhu_mem_unmap(&reg);
        return vhu_refuse(r, e, "out of memory");
    }
    return 0;
}

static int req_rem_mem_reg(struct vhu_req *r)
{
    struct vhu_backend *b = r->b;
    const struct vhu_mem_region *d = &r->m->p.mreg.region;
    unsigned i;
    for (i = 0; i < b->mem.n; i++) {
        const struct vhu_region *g = &b->mem.r[i];
        if (g->gpa == d->guest_phys_addr && g->uva == d->userspace_addr &&
            g->size == d->memory_size)
            break;
    }
    if (i == b->mem.n)
        return vhu_refuse(r, -ENOENT, "no region at guest 0x%llx user 0x%llx size 0x%llx",
                          (unsigned long long)d->guest_phys_addr,
                          (unsigned long long)d->userspace_addr,
                          (unsigned long long)d->memory_size);
    /* Check the running rings against the table without region i. */
    struct vhu_mem without = b->mem;
    struct vhu_region tmp[1];
    struct vhu_region *copy = b->mem.n > 1 ? malloc((b->mem.n - 1) * sizeof(*copy)) : tmp;
    if (!copy)
        return vhu_refuse(r, -ENOMEM, "out of memory");
    unsigned k = 0;
    for (unsigned j = 0; j < b->mem.n; j++)
        if (j != i)
            copy[k++] = b->mem.r[j];
    without.r = copy;
    without.n = k;
    int e = rings_fit(r, &without);
    if (copy != tmp)
        free(copy);
    if (e < 0)
        return e;
    bool was[VHU_MAX_QUEUES];
    vhu_backend_pause(b, was);
    struct vhu_region gone = b->mem.r[i];
    memmove(&b->mem.r[i], &b->mem.r[i + 1], (b->mem.n - i - 1) * sizeof(b->mem.r[0]));
    b->mem.n--;
    vhu_backend_resume(b, was);
    vhu_mem_unmap(&gone);
    return 0;
}

/* ---- rings ---- */

static int req_set_vring_num(struct vhu_req *r)
{
    const struct vhu_vring_state *s = &r->m->p.state;
    struct vhu_vring *q = ring_at(r, s->index);
    if (!q)
        return -ERANGE;
    if (!vhu_is_pow2(s->num) || s->num > r->b->max_queue_size)
        return vhu_refuse(r, -EINVAL, "ring %u: size %u is not a power of two in 1..%u", s->index,
                          s->num, r->b->max_queue_size);
    if (q->started)
        return vhu_refuse(r, -EBUSY, "ring %u is running", s->index);
    q->num = s->num;
    return 0;
}

static int req_set_vring_addr(struct vhu_req *r)
{
    struct vhu_backend *b = r->b;
    const struct vhu_vring_addr *a = &r->m->p.addr;
    struct vhu_vring *q = ring_at(r, a->index);
    if (!q)
        return -ERANGE;
    int e;
    if (a->flags & ~VHU_VRING_F_LOG)
        return vhu_refuse(r, -EINVAL, "ring %u: unknown address flags 0x%x", a->index,
                          a->flags & ~VHU_VRING_F_LOG);
    if ((a->flags & VHU_VRING_F_LOG) && !(b->features_offered & VHU_BIT(VHU_F_LOG_ALL)))
        return vhu_refuse(r, -ENOTSUP,
                          "ring %u: used-ring logging asked of a device that does "
                          "not log its writes",
                          a->index);
    if (!q->num)
        return vhu_refuse(r, -EINVAL, "ring %u: SET_VRING_ADDR before SET_VRING_NUM", a->index);
    if (b->mem.n == 0)
        return vhu_refuse(r, -EINVAL, "ring %u: SET_VRING_ADDR before any memory table", a->index);
    e = vhu_vring_translate(q, &b->mem, a, q->num, b->acked_features, false, r->why,
                            sizeof(r->why));
    if (e < 0)
        return e;
    bool was = q->started;
    vhu_vring_stop(q);
    q->addr = *a;
    q->addr_set = true;
    q->log_used = a->flags & VHU_VRING_F_LOG;
    if (was && vhu_vring_start(q, r->why, sizeof(r->why)) < 0)
        return -EIO;
    return 0;
}

static int req_set_vring_base(struct vhu_req *r)
{
    const struct vhu_vring_state *s = &r->m->p.state;
    struct vhu_vring *q = ring_at(r, s->index);
    if (!q)
        return -ERANGE;
    bool packed = r->b->acked_features & VHU_BIT(VHU_F_RING_PACKED);
    if (!packed && s->num > 0xffff)
        return vhu_refuse(r, -EINVAL, "ring %u: base 0x%x has reserved bits set (split ring)",
                          s->index, s->num);
    /* Packed (QEMU's virtio_queue_packed_get_last_avail_idx): bits 0-14
     * the avail position, 15 the avail wrap counter, 16-30 the used
     * position, 31 the used wrap counter.  Positions are checked against
     * the size here when it is known, and again when the ring starts. */
    if (packed && q->num && ((s->num & 0x7fffu) >= q->num || ((s->num >> 16) & 0x7fffu) >= q->num))
        return vhu_refuse(r, -EINVAL,
                          "ring %u: packed base 0x%x: avail position %u or used "
                          "position %u is not below the ring size %u",
                          s->index, s->num, s->num & 0x7fffu, (s->num >> 16) & 0x7fffu, q->num);
    if (q->started)
        return vhu_refuse(r, -EBUSY, "ring %u is running", s->index);
    q->last_avail = (uint16_t)s->num;
    q->packed_used = packed ? (uint16_t)(s->num >> 16) : 0;
    q->base_set = true;
    return 0;
}

static int req_get_vring_base(struct vhu_req *r)
{
    struct vhu_backend *b = r->b;
    const struct vhu_vring_state *s = &r->m->p.state;
    struct vhu_vring *q = ring_at(r, s->index);
    if (!q)
        return -ERANGE;
    bool was = q->started;
    /* Returns once the device no longer touches the ring. */
    vhu_vring_stop(q);
    vhu_close_fd(&q->kick_fd);
    if (was && !any_started(b) && b->ops->suspend)
        b->ops->suspend(b->dev);
    r->rep->p.state.index = s->index;
    r->rep->p.state.num = q->last_avail;
    if (b->acked_features & VHU_BIT(VHU_F_RING_PACKED))
        r->rep->p.state.num |= (uint32_t)q->packed_used << 16;
    r->rep->size = sizeof(struct vhu_vring_state);
    return 0;
}

static int req_set_vring_kick(struct vhu_req *r)
{
    uint64_t v = r->m->p.u64;
    struct vhu_vring *q = ring_at(r, (uint32_t)(v & VHU_VRING_IDX_MASK));
    if (!q)
        return -ERANGE;
    int e;
    if (v & VHU_VRING_NOFD)
        return vhu_refuse(r, -ENOTSUP, "ring %u: polling mode (no kick fd) is not supported",
                          q->index);
    bool was = q->started;
    int old = q->kick_fd;
    vhu_vring_stop(q);
    q->kick_fd = r->m->fds[0];
    e = vhu_vring_start(q, r->why, sizeof(r->why));
    if (e < 0) {
        /* Leave the ring as it was: running on its old kick fd. */
        q->kick_fd = old;
        char again[VHU_REASON_MAX];
        if (was && vhu_vring_start(q, again, sizeof(again)) < 0)
            vhu_close_fd(&q->kick_fd);
        return e;
    }
    take_fd(r, 0);
    vhu_close_fd(&old);
    return 0;
}

static int req_set_vring_call(struct vhu_req *r)
{
    uint64_t v = r->m->p.u64;
    struct vhu_vring *q = ring_at(r, (uint32_t)(v & VHU_VRING_IDX_MASK));
    if (!q)
        return -ERANGE;
    vhu_vring_set_call(q, (v & VHU_VRING_NOFD) ? -1 : take_fd(r, 0));
    return 0;
}

static int req_set_vring_err(struct vhu_req *r)
{
    uint64_t v = r->m->p.u64;
    struct vhu_vring *q = ring_at(r, (uint32_t)(v & VHU_VRING_IDX_MASK));
    if (!q)
        return -ERANGE;
    vhu_vring_set_err(q, (v & VHU_VRING_NOFD) ? -1 : take_fd(r, 0));
    return 0;
}

static int req_set_vring_enable(struct vhu_req *r)
{
    const struct vhu_vring_state *s = &r->m->p.state;
    struct vhu_vring *q = ring_at(r, s->index);
    if (!q)
        return -ERANGE;
    if (s->num > 1)
        return vhu_refuse(r, -EINVAL, "ring %u: enable value %u (want 0 or 1)", s->index, s->num);
    bool was = atomic_exchange(&q->enabled, s->num == 1);
    /* Wake a running ring that was just enabled, so a device that leaves a
     * disabled ring's requests alone sees them now. */
    if (q->started && !was && s->num == 1 && q->kick_fd >= 0) {
        uint64_t one = 1;
        if (write(q->kick_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            vhu_warn("ring %u: kick on enable: %s", q->index, vhu_strerror(-errno));
    }
    return 0;
}

/* ---- config space ---- */

static int config_range(struct vhu_req *r, const struct vhu_config *c)
{
    uint32_t cs = r->b->ops->config_size;
    if (c->size == 0 || c->offset > cs || c->size > cs - c->offset)
        return vhu_refuse(r, -EINVAL, "range offset %u size %u is outside the %u-byte config space",
                          c->offset, c->size, cs);
    if (c->flags > VHU_CONFIG_FLAG_MIGRATION)
        return vhu_refuse(r, -EINVAL, "unknown config flags 0x%x", c->flags);
    return 0;
}

static int req_get_config(struct vhu_req *r)
{
    const struct vhu_config *c = &r->m->p.config;
    int e = config_range(r, c);
    if (e < 0)
        return e;
    struct vhu_config *out = &r->rep->p.config;
    out->offset = c->offset;
    out->size = c->size;
    out->flags = c->flags;
    memset(out->data, 0, c->size);
    e = r->b->ops->get_config(r->b->dev, c->offset, out->data, c->size);
    if (e < 0)
        return vhu_refuse(r, e, "the device failed to read offset %u size %u", c->offset, c->size);
    r->rep->size = VHU_CONFIG_HDR_SIZE + c->size;
    return 0;
}

static int req_set_config(struct vhu_req *r)
{
    const struct vhu_config *c = &r->m->p.config;
    int e = config_range(r, c);
    if (e < 0)
        return e;
    if (!r->b->ops->set_config)
        return vhu_refuse(r, -EPERM, "the config space is read-only");
    e = r->b->ops->set_config(r->b->dev, c->offset, c->data, c->size, c->flags);
    if (e < 0)
        return vhu_refuse(r, e, "the device refused a write at offset %u size %u", c->offset,
                          c->size);
    return 0;
}

/* ---- shared memory ---- */

static int req_get_shmem_config(struct vhu_req *r)
{
    const struct vhu_device_ops *ops = r->b->ops;
    struct vhu_shmem_config *c = (struct vhu_shmem_config *)r->rep->p.bytes;
    memset(c, 0, sizeof(*c));
    c->nregions = ops->num_shmem_regions;
    for (unsigned i = 0; i < ops->num_shmem_regions; i++)
        c->memory_sizes[i] = ops->shmem_sizes[i];
    r->rep->size = sizeof(*c);
    return 0;
}

/* ---- the table: every request with a function; requests whose protocol
 * feature vhu never offers are refused by the dispatcher's gate before they
 * get here, the rest without a function as "not implemented". ---- */

static const struct vhu_req_handler handlers[VHU_REQ_MAX + 1] = {
    [VHU_REQ_GET_FEATURES] = {req_get_features, false},
    [VHU_REQ_SET_FEATURES] = {req_set_features, true},
    [VHU_REQ_SET_OWNER] = {req_set_owner, false},
    [VHU_REQ_RESET_OWNER] = {req_reset_owner, true},
    [VHU_REQ_SET_MEM_TABLE] = {req_set_mem_table, true},
    [VHU_REQ_SET_LOG_BASE] = {vhu_req_set_log_base, true},
    [VHU_REQ_SET_LOG_FD] = {vhu_req_set_log_fd, true},
    [VHU_REQ_GET_INFLIGHT_FD] = {vhu_req_get_inflight_fd, true},
    [VHU_REQ_SET_INFLIGHT_FD] = {vhu_req_set_inflight_fd, true},
    [VHU_REQ_SET_VRING_NUM] = {req_set_vring_num, true},
    [VHU_REQ_SET_VRING_ADDR] = {req_set_vring_addr, true},
    [VHU_REQ_SET_VRING_BASE] = {req_set_vring_base, true},
    [VHU_REQ_GET_VRING_BASE] = {req_get_vring_base, true},
    [VHU_REQ_SET_VRING_KICK] = {req_set_vring_kick, true},
    [VHU_REQ_SET_VRING_CALL] = {req_set_vring_call, true},
    [VHU_REQ_SET_VRING_ERR] = {req_set_vring_err, true},
    [VHU_REQ_GET_PROTOCOL_FEATURES] = {req_get_protocol_features, false},
    [VHU_REQ_SET_PROTOCOL_FEATURES] = {req_set_protocol_features, false},
    [VHU_REQ_GET_QUEUE_NUM] = {req_get_queue_num, false},
    [VHU_REQ_SET_VRING_ENABLE] = {req_set_vring_enable, true},
    [VHU_REQ_SET_BACKEND_REQ_FD] = {req_set_backend_req_fd, false},
    [VHU_REQ_GET_CONFIG] = {req_get_config, false},
    [VHU_REQ_SET_CONFIG] = {req_set_config, true},
    [VHU_REQ_RESET_DEVICE] = {req_reset_device, true},
    [VHU_REQ_GET_MAX_MEM_SLOTS] = {req_get_max_mem_slots, false},
    [VHU_REQ_ADD_MEM_REG] = {req_add_mem_reg, true},
    [VHU_REQ_REM_MEM_REG] = {req_rem_mem_reg, true},
    [VHU_REQ_SET_STATUS] = {req_set_status, true},
    [VHU_REQ_GET_STATUS] = {req_get_status, false},
    [VHU_REQ_SET_DEVICE_STATE_FD] = {vhu_req_set_device_state_fd, true},
    [VHU_REQ_CHECK_DEVICE_STATE] = {vhu_req_check_device_state, true},
    [VHU_REQ_GET_SHMEM_CONFIG] = {req_get_shmem_config, false},
};

const struct vhu_req_handler *vhu_req_handler(uint32_t code)
{
    if (code == 0 || code > VHU_REQ_MAX)
        return NULL;
    return &handlers[code];
}
