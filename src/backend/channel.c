/* SPDX-License-Identifier: BSD-3-Clause */
/* The back-end request channel (SET_BACKEND_REQ_FD): messages the back-end
 * sends to the front-end.  May be used from any thread; one request at a
 * time, as the spec requires. */
#include <errno.h>
#include <stdio.h>

#include "backend_internal.h"

/* Send a back-end request and, when REPLY_ACK was negotiated, wait for the
 * front-end's u64 status.  chan_lock held by the caller. */
static int channel_request(struct vhu_backend *b, uint32_t code, const void *payload, uint32_t size,
                           int fd)
{
    const struct vhu_wire_row *row = vhu_wire_backend_row(code);
    if (b->chan_fd < 0) {
        vhu_err("%s: no back-end channel (SET_BACKEND_REQ_FD)", row->name);
        return -ENOTCONN;
    }
    if (row->gate >= 0 && !vhu_pf_acked(b, (unsigned)row->gate)) {
        vhu_err("%s: its protocol feature was not negotiated", row->name);
        return -ENOTSUP;
    }
    /* A request whose row always has a status reply waits for it too. */
    bool ack = vhu_pf_acked(b, VHU_PF_REPLY_ACK) || row->reply == VHU_WIRE_REPLY_STATUS;
    struct vhu_msg_header h = {
        .request = code, .flags = VHU_FLAG_VERSION | (ack ? VHU_FLAG_NEED_REPLY : 0), .size = size};
    int r = vhu_wire_send(b->chan_fd, &h, payload, fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0);
    if (r < 0) {
        vhu_err("%s: send: %s", row->name, vhu_strerror(r));
        return r;
    }
    if (!ack)
        return 0;
    struct vhu_wire_msg m;
    char why[VHU_REASON_MAX] = "";
    r = vhu_wire_recv(b->chan_fd, &m, b->timeout_ms, why, sizeof(why));
    if (r < 0) {
        vhu_err("%s: waiting for the front-end's reply: %s", row->name, why);
        return r;
    }
    vhu_wire_close_fds(&m);
    if (vhu_wire_check(row, &m, false, why, sizeof(why)) < 0 || m.hdr.request != code ||
        m.hdr.size != sizeof(uint64_t)) {
        vhu_err("%s: bad reply from the front-end (code %u size %u%s%s)", row->name, m.hdr.request,
                m.hdr.size, why[0] ? ": " : "", why);
        return -EPROTO;
    }
    if (m.p.u64 != 0) {
        vhu_err("%s: the front-end answered status %llu", row->name, (unsigned long long)m.p.u64);
        return -EREMOTEIO;
    }
    return 0;
}

int vhu_backend_send_config_change(struct vhu_backend *b)
{
    pthread_mutex_lock(&b->chan_lock);
    int r = channel_request(b, VHU_BREQ_CONFIG_CHANGE_MSG, NULL, 0, -1);
    pthread_mutex_unlock(&b->chan_lock);
    return r;
}

/* ---- shared memory (PF_SHMEM) ---- */

/* Is [off, off + len) a non-empty range inside region shmid? */
static int shmem_range(struct vhu_backend *b, const char *what, uint8_t shmid, uint64_t off,
                       uint64_t len)
{
    if (shmid >= b->ops->num_shmem_regions) {
        vhu_err("%s: no shared memory region %u (the device has %u)", what, shmid,
                b->ops->num_shmem_regions);
        return -EINVAL;
    }
    uint64_t size = b->ops->shmem_sizes[shmid];
    if (len == 0 || off > size || len > size - off) {
        vhu_err("%s: offset 0x%llx length 0x%llx is outside region %u (0x%llx bytes)", what,
                (unsigned long long)off, (unsigned long long)len, shmid, (unsigned long long)size);
        return -EINVAL;
    }
    return 0;
}

int vhu_backend_shmem_map(struct vhu_backend *b, uint8_t shmid, int fd, uint64_t fd_offset,
                          uint64_t shm_offset, uint64_t len, bool writable)
{
    if (fd < 0) {
        vhu_err("BACKEND_SHMEM_MAP: no fd");
        return -EINVAL;
    }
    int r = shmem_range(b, "BACKEND_SHMEM_MAP", shmid, shm_offset, len);
    if (r < 0)
        return r;
    pthread_mutex_lock(&b->chan_lock);
    for (unsigned i = 0; i < b->nshmem_maps; i++) {
        const struct vhu_shmem_mapping *m = &b->shmem_maps[i];
        /* Both ranges lie inside the region: no overflow in the ends. */
        if (m->shmid == shmid && shm_offset < m->offset + m->len && m->offset < shm_offset + len) {
            vhu_err("BACKEND_SHMEM_MAP: region %u 0x%llx+0x%llx overlaps the mapping at "
                    "0x%llx+0x%llx",
                    shmid, (unsigned long long)shm_offset, (unsigned long long)len,
                    (unsigned long long)m->offset, (unsigned long long)m->len);
            r = -EEXIST;
            goto out;
        }
    }
    if (b->nshmem_maps == VHU_SHMEM_MAX_MAPPINGS) {
        vhu_err("BACKEND_SHMEM_MAP: already %u mappings", VHU_SHMEM_MAX_MAPPINGS);
        r = -ENOSPC;
        goto out;
    }
    struct vhu_shmem_mmap msg = {.shmid = shmid,
                                 .fd_offset = fd_offset,
                                 .shm_offset = shm_offset,
                                 .len = len,
                                 .flags = writable ? VHU_SHMEM_MAP_RW : 0};
    r = channel_request(b, VHU_BREQ_SHMEM_MAP, &msg, sizeof(msg), fd);
    if (r == 0)
        b->shmem_maps[b->nshmem_maps++] =
            (struct vhu_shmem_mapping){.shmid = shmid, .offset = shm_offset, .len = len};
out:
    pthread_mutex_unlock(&b->chan_lock);
    return r;
}

int vhu_backend_shmem_unmap(struct vhu_backend *b, uint8_t shmid, uint64_t shm_offset, uint64_t len)
{
    int r = shmem_range(b, "BACKEND_SHMEM_UNMAP", shmid, shm_offset, len);
    if (r < 0)
        return r;
    pthread_mutex_lock(&b->chan_lock);
    unsigned i = 0;
    while (i < b->nshmem_maps &&
           !(b->shmem_maps[i].shmid == shmid && b->shmem_maps[i].offset == shm_offset &&
             b->shmem_maps[i].len == len))
        i++;
    if (i == b->nshmem_maps) {
        vhu_err("BACKEND_SHMEM_UNMAP: no mapping at region %u 0x%llx+0x%llx", shmid,
                (unsigned long long)shm_offset, (unsigned long long)len);
        r = -ENOENT;
        goto out;
    }
    struct vhu_shmem_mmap msg = {.shmid = shmid, .shm_offset = shm_offset, .len = len};
    r = channel_request(b, VHU_BREQ_SHMEM_UNMAP, &msg, sizeof(msg), -1);
    /* Forgotten whatever the answer: a front-end that failed to unmap has
     * no mapping we could use or unmap again. */
    b->shmem_maps[i] = b->shmem_maps[--b->nshmem_maps];
out:
    pthread_mutex_unlock(&b->chan_lock);
    return r;
}
