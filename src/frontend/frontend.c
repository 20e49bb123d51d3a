/* SPDX-License-Identifier: BSD-3-Clause */
/* The front-end side of the socket: what a VMM sends, as synchronous calls.
 * Replies are framed and checked by the same wire layer the back-end uses. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <vhu/frontend.h>

#include "../common/internal.h"
#include "../wire/wire.h"

struct vhu_fe {
    int sock;
    int chan; /* our end of the back-end channel, or -1 */
    int timeout_ms;
    uint64_t offered_features, acked_pf;
    struct vhu_wire_msg msg;
    /* VIRTIO shared memory windows (GET_SHMEM_CONFIG), reserved address
     * space the back-end's BACKEND_SHMEM_MAP fills. */
    struct fe_shmem_window {
        uint8_t *base;
        uint64_t size;
    } shm[VHU_SHMEM_MAX_REGIONS];
    unsigned nshm;
    struct fe_shmem_mapping {
        uint8_t shmid;
        uint64_t offset, len;
    } shm_maps[VHU_SHMEM_MAX_MAPPINGS];
    unsigned nshm_maps;
};

static void fe_shmem_release(struct vhu_fe *fe)
{
    for (unsigned i = 0; i < fe->nshm; i++)
        if (fe->shm[i].base)
            munmap(fe->shm[i].base, fe->shm[i].size);
    fe->nshm = 0;
    fe->nshm_maps = 0;
}

int vhu_fe_from_fd(struct vhu_fe **out, int sock)
{
    struct vhu_fe *fe = calloc(1, sizeof(*fe));
    if (!fe)
        return -ENOMEM;
    fe->sock = sock;
    fe->chan = -1;
    fe->timeout_ms = 5000;
    *out = fe;
    return 0;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

int vhu_fe_connect(struct vhu_fe **out, const char *path, int timeout_ms)
{
    *out = NULL;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    int waited = 0;
    for (;;) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -errno;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            int r = vhu_fe_from_fd(out, fd);
            if (r < 0)
                close(fd);
            return r;
        }
        int e = -errno;
        close(fd);
        if ((e != -ENOENT && e != -ECONNREFUSED) || waited >= timeout_ms)
            return e;
        sleep_ms(10);
        waited += 10;
    }
}

void vhu_fe_close(struct vhu_fe *fe)
{
    if (!fe)
        return;
    vhu_close_fd(&fe->sock);
    vhu_close_fd(&fe->chan);
    fe_shmem_release(fe);
    free(fe);
}

int vhu_fe_fd(const struct vhu_fe *fe) { return fe->sock; }
void vhu_fe_set_timeout(struct vhu_fe *fe, int ms) { fe->timeout_ms = ms; }
uint64_t vhu_fe_acked_protocol_features(const struct vhu_fe *fe) { return fe->acked_pf; }

int vhu_fe_send(struct vhu_fe *fe, uint32_t request, uint32_t flags, const void *payload,
                uint32_t len, const int *fds, unsigned nfds)
{
    struct vhu_msg_header h = {.request = request, .flags = flags, .size = len};
    return vhu_wire_send(fe->sock, &h, payload, fds, nfds);
}

int vhu_fe_send_raw(struct vhu_fe *fe, const void *bytes, size_t len, const int *fds, unsigned nfds)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * 16)];
        struct cmsghdr align;
    } ctl;
    if (nfds > 16)
        return -EINVAL;
    struct iovec iov = {.iov_base = (void *)bytes, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds)
        vhu_wire_put_fds(&mh, ctl.buf, fds, nfds);
    ssize_t r = sendmsg(fe->sock, &mh, MSG_NOSIGNAL);
    if (r < 0)
        return -errno;
    return (size_t)r == len ? 0 : -EIO;
}

int vhu_fe_recv(struct vhu_fe *fe, struct vhu_msg_header *hdr, void *payload, uint32_t cap,
                int *fds, unsigned *nfds)
{
    struct vhu_wire_msg *m = &fe->msg;
    char why[VHU_REASON_MAX];
    int r = vhu_wire_recv(fe->sock, m, fe->timeout_ms, why, sizeof(why));
    if (r < 0)
        return r;
    if (hdr)
        *hdr = m->hdr;
    if (m->hdr.size > cap) {
        vhu_wire_close_fds(m);
        return -EMSGSIZE;
    }
    if (payload && m->hdr.size)
        memcpy(payload, m->p.bytes, m->hdr.size);
    if (fds && nfds) {
        memcpy(fds, m->fds, m->nfds * sizeof(int));
        *nfds = m->nfds;
        m->nfds = 0;
    } else {
        vhu_wire_close_fds(m);
        if (nfds)
            *nfds = 0;
    }
    return 0;
}

int vhu_fe_call(struct vhu_fe *fe, uint32_t request, uint32_t flags, const void *payload,
                uint32_t len, const int *fds, unsigned nfds, void *reply, uint32_t reply_cap,
                int *reply_fds, unsigned *reply_nfds)
{
    int r = vhu_fe_send(fe, request, flags, payload, len, fds, nfds);
    if (r < 0)
        return r;
    struct vhu_msg_header h;
    r = vhu_fe_recv(fe, &h, reply, reply_cap, reply_fds, reply_nfds);
    if (r < 0)
        return r;
    if (h.request != request || h.flags != (VHU_FLAG_VERSION | VHU_FLAG_REPLY)) {
        if (reply_fds && reply_nfds)
            for (unsigned i = 0; i < *reply_nfds; i++)
                close(reply_fds[i]);
        vhu_err("front-end: reply to %s has code %u flags 0x%x", vhu_request_name(request),
                h.request, h.flags);
        return -EPROTO;
    }
    return (int)h.size;
}

bool vhu_fe_peer_closed(struct vhu_fe *fe, int timeout_ms)
{
    struct pollfd p = {.fd = fe->sock, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) <= 0)
        return false;
    char c;
    ssize_t r = recv(fe->sock, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR);
}

/* ---- typed requests ---- */

static bool reply_ack(const struct vhu_fe *fe) { return fe->acked_pf & VHU_BIT(VHU_PF_REPLY_ACK); }

static int status_to_err(uint64_t s)
{
    if (s == 0)
        return 0;
    return s < 4096 ? -(int)s : -EIO;
}

/* A request whose only answer is an ack: ask for one once REPLY_ACK is on. */
static int fe_ack_request(struct vhu_fe *fe, uint32_t code, const void *p, uint32_t len,
                          const int *fds, unsigned nfds)
{
    if (!reply_ack(fe))
        return vhu_fe_send(fe, code, VHU_FLAG_VERSION, p, len, fds, nfds);
    uint64_t st = 0;
    int r = vhu_fe_call(fe, code, VHU_FLAG_VERSION | VHU_FLAG_NEED_REPLY, p, len, fds, nfds, &st,
                        sizeof(st), NULL, NULL);
    if (r < 0)
        return r;
    if (r != sizeof(st))
        return -EPROTO;
    return status_to_err(st);
}

static int fe_get_u64(struct vhu_fe *fe, uint32_t code, uint64_t *v)
{
    uint64_t x = 0;
    int r = vhu_fe_call(fe, code, VHU_FLAG_VERSION, NULL, 0, NULL, 0, &x, sizeof(x), NULL, NULL);
    if (r < 0)
        return r;
    if (r == 0)
        return -EREMOTEIO;
    if (r != sizeof(x))
        return -EPROTO;
    *v = x;
    return 0;
}

static int fe_set_u64(struct vhu_fe *fe, uint32_t code, uint64_t v)
{
    return fe_ack_request(fe, code, &v, sizeof(v), NULL, 0);
}

int vhu_fe_get_features(struct vhu_fe *fe, uint64_t *f)
{
    int r = fe_get_u64(fe, VHU_REQ_GET_FEATURES, f);
    if (r == 0)
        fe->offered_features = *f;
    return r;
}

int vhu_fe_set_features(struct vhu_fe *fe, uint64_t f)
{
    return fe_set_u64(fe, VHU_REQ_SET_FEATURES, f);
}

int vhu_fe_get_protocol_features(struct vhu_fe *fe, uint64_t *pf)
{
    return fe_get_u64(fe, VHU_REQ_GET_PROTOCOL_FEATURES, pf);
}

int vhu_fe_set_protocol_features(struct vhu_fe *fe, uint64_t pf)
{
    /* The ack decision follows the features in force before this one. */
    int r = fe_set_u64(fe, VHU_REQ_SET_PROTOCOL_FEATURES, pf);
    if (r == 0)
        fe->acked_pf = pf;
    return r;
}

int vhu_fe_set_owner(struct vhu_fe *fe)
{
    return fe_ack_request(fe, VHU_REQ_SET_OWNER, NULL, 0, NULL, 0);
}

int vhu_fe_reset_owner(struct vhu_fe *fe)
{
    return fe_ack_request(fe, VHU_REQ_RESET_OWNER, NULL, 0, NULL, 0);
}

static void fe_shmem_unmap_all(struct vhu_fe *fe);

int vhu_fe_reset_device(struct vhu_fe *fe)
{
    int r = fe_ack_request(fe, VHU_REQ_RESET_DEVICE, NULL, 0, NULL, 0);
    /* A reset device has no shared-memory mapping left. */
    if (r == 0)
        fe_shmem_unmap_all(fe);
    return r;
}

int vhu_fe_get_queue_num(struct vhu_fe *fe, uint64_t *n)
{
    return fe_get_u64(fe, VHU_REQ_GET_QUEUE_NUM, n);
}

int vhu_fe_get_max_mem_slots(struct vhu_fe *fe, uint64_t *n)
{
    return fe_get_u64(fe, VHU_REQ_GET_MAX_MEM_SLOTS, n);
}

int vhu_fe_set_status(struct vhu_fe *fe, uint8_t status)
{
    return fe_set_u64(fe, VHU_REQ_SET_STATUS, status);
}

int vhu_fe_get_status(struct vhu_fe *fe, uint8_t *status)
{
    uint64_t v;
    int r = fe_get_u64(fe, VHU_REQ_GET_STATUS, &v);
    if (r == 0)
        *status = (uint8_t)v;
    return r;
}

int vhu_fe_negotiate(struct vhu_fe *fe, uint64_t want_features, uint64_t want_pf,
                     uint64_t *acked_features, uint64_t *acked_pf)
{
    uint64_t f, pf = 0;
    int r = vhu_fe_get_features(fe, &f);
    /* Closed before the first reply: how a vhu back-end (vhu_server) turns
     * away a front-end while it serves another. */
    if (r == -ECONNRESET || r == -EPIPE)
        return -EBUSY;
    if (r < 0)
        return r;
    if (f & VHU_BIT(VHU_F_PROTOCOL_FEATURES)) {
        if ((r = vhu_fe_get_protocol_features(fe, &pf)) < 0 ||
            (r = vhu_fe_set_protocol_features(fe, pf & want_pf)) < 0)
            return r;
        pf &= want_pf;
    }
    if ((r = vhu_fe_set_owner(fe)) < 0)
        return r;
    uint64_t ack = (f & want_features) | (f & VHU_BIT(VHU_F_PROTOCOL_FEATURES));
    if ((r = vhu_fe_set_features(fe, ack)) < 0)
        return r;
    if (acked_features)
        *acked_features = ack;
    if (acked_pf)
        *acked_pf = pf;
    return 0;
}

/* ---- memory ---- */

int vhu_fe_set_mem_table(struct vhu_fe *fe, const struct vhu_mem_region *regions, const int *fds,
                         unsigned n)
{
    if (n > VHU_MEM_TABLE_MAX)
        return -EINVAL;
    struct vhu_mem_table t = {.nregions = n};
    memcpy(t.regions, regions, n * sizeof(*regions));
    return fe_ack_request(fe, VHU_REQ_SET_MEM_TABLE, &t, 8 + n * sizeof(*regions), fds, n);
}

int vhu_fe_add_mem_reg(struct vhu_fe *fe, const struct vhu_mem_region *r, int fd)
{
    struct vhu_single_mem_region m = {.region = *r};
    return fe_ack_request(fe, VHU_REQ_ADD_MEM_REG, &m, sizeof(m), &fd, 1);
}

int vhu_fe_rem_mem_reg(struct vhu_fe *fe, const struct vhu_mem_region *r)
{
    struct vhu_single_mem_region m = {.region = *r};
    return fe_ack_request(fe, VHU_REQ_REM_MEM_REG, &m, sizeof(m), NULL, 0);
}

/* ---- rings ---- */

static int fe_vring_state(struct vhu_fe *fe, uint32_t code, unsigned idx, unsigned num)
{
    struct vhu_vring_state s = {.index = idx, .num = num};
    return fe_ack_request(fe, code, &s, sizeof(s), NULL, 0);
}

int vhu_fe_set_vring_num(struct vhu_fe *fe, unsigned idx, unsigned num)
{
    return fe_vring_state(fe, VHU_REQ_SET_VRING_NUM, idx, num);
}

int vhu_fe_set_vring_base(struct vhu_fe *fe, unsigned idx, unsigned base)
{
    return fe_vring_state(fe, VHU_REQ_SET_VRING_BASE, idx, base);
}

int vhu_fe_set_vring_enable(struct vhu_fe *fe, unsigned idx, bool on)
{
    return fe_vring_state(fe, VHU_REQ_SET_VRING_ENABLE, idx, on ? 1 : 0);
}

int vhu_fe_get_vring_base(struct vhu_fe *fe, unsigned idx, unsigned *base)
{
    struct vhu_vring_state s = {.index = idx}, out;
    int r = vhu_fe_call(fe, VHU_REQ_GET_VRING_BASE, VHU_FLAG_VERSION, &s, sizeof(s), NULL, 0, &out,
                        sizeof(out), NULL, NULL);
    if (r < 0)
        return r;
    if (r == 0)
        return -EREMOTEIO;
    if (r != sizeof(out) || out.index != idx)
        return -EPROTO;
    *base = out.num;
    return 0;
}

int vhu_fe_set_vring_addr(struct vhu_fe *fe, const struct vhu_vring_addr *a)
{
    return fe_ack_request(fe, VHU_REQ_SET_VRING_ADDR, a, sizeof(*a), NULL, 0);
}

static int fe_vring_fd(struct vhu_fe *fe, uint32_t code, unsigned idx, int fd)
{
    uint64_t v = idx & VHU_VRING_IDX_MASK;
    if (fd < 0)
        v |= VHU_VRING_NOFD;
    return fe_ack_request(fe, code, &v, sizeof(v), fd < 0 ? NULL : &fd, fd < 0 ? 0 : 1);
}

int vhu_fe_set_vring_kick(struct vhu_fe *fe, unsigned idx, int fd)
{
    return fe_vring_fd(fe, VHU_REQ_SET_VRING_KICK, idx, fd);
}

int vhu_fe_set_vring_call(struct vhu_fe *fe, unsigned idx, int fd)
{
    return fe_vring_fd(fe, VHU_REQ_SET_VRING_CALL, idx, fd);
}

int vhu_fe_set_vring_err(struct vhu_fe *fe, unsigned idx, int fd)
{
    return fe_vring_fd(fe, VHU_REQ_SET_VRING_ERR, idx, fd);
}

/* ---- config ---- */

int vhu_fe_get_config(struct vhu_fe *fe, uint32_t offset, void *buf, uint32_t len)
{
    if (len > VHU_MAX_CONFIG_SIZE)
        return -EINVAL;
    struct vhu_config c, out;
    memset(&c, 0, sizeof(c));
    c.offset = offset;
    c.size = len;
    int r = vhu_fe_call(fe, VHU_REQ_GET_CONFIG, VHU_FLAG_VERSION, &c, VHU_CONFIG_HDR_SIZE + len,
                        NULL, 0, &out, sizeof(out), NULL, NULL);
    if (r < 0)
        return r;
    if (r == 0)
        return -EREMOTEIO;
    if ((uint32_t)r != VHU_CONFIG_HDR_SIZE + len || out.size != len)
        return -EPROTO;
    memcpy(buf, out.data, len);
    return 0;
}

int vhu_fe_set_config(struct vhu_fe *fe, uint32_t offset, const void *buf, uint32_t len,
                      uint32_t flags)
{
    if (len > VHU_MAX_CONFIG_SIZE)
        return -EINVAL;
    struct vhu_config c = {.offset = offset, .size = len, .flags = flags};
    memcpy(c.data, buf, len);
    return fe_ack_request(fe, VHU_REQ_SET_CONFIG, &c, VHU_CONFIG_HDR_SIZE + len, NULL, 0);
}

/* ---- back-end channel ---- */

int vhu_fe_open_backend_channel(struct vhu_fe *fe)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    int r = fe_ack_request(fe, VHU_REQ_SET_BACKEND_REQ_FD, NULL, 0, &sv[1], 1);
    close(sv[1]);
    if (r < 0) {
        close(sv[0]);
        return r;
    }
    vhu_close_fd(&fe->chan);
    fe->chan = sv[0];
    return 0;
}

/* ---- VIRTIO shared memory ---- */

/* Windows larger than this are refused: address space, not memory, but a
 * back-end should not make us reserve terabytes. */
#define FE_SHMEM_MAX_WINDOW (64ull << 30)

int vhu_fe_get_shmem_config(struct vhu_fe *fe, struct vhu_shmem_config *c)
{
    memset(c, 0, sizeof(*c));
    int r = vhu_fe_call(fe, VHU_REQ_GET_SHMEM_CONFIG, VHU_FLAG_VERSION, NULL, 0, NULL, 0, c,
                        sizeof(*c), NULL, NULL);
    if (r < 0)
        return r;
    if (r != (int)sizeof(*c))
        return r == 0 ? -EREMOTEIO : -EPROTO;
    if (c->nregions > VHU_SHMEM_MAX_REGIONS) {
        vhu_err("front-end: GET_SHMEM_CONFIG: %u regions (max %u)", c->nregions,
                VHU_SHMEM_MAX_REGIONS);
        return -EPROTO;
    }
    long page = sysconf(_SC_PAGESIZE);
    for (unsigned i = 0; i < c->nregions; i++) {
        uint64_t sz = c->memory_sizes[i];
        if (sz == 0 || sz > FE_SHMEM_MAX_WINDOW || sz % (uint64_t)page) {
            vhu_err("front-end: GET_SHMEM_CONFIG: region %u has size 0x%llx (pages, at most "
                    "64 GiB)",
                    i, (unsigned long long)sz);
            return -EPROTO;
        }
    }
    /* New windows replace old ones (and their mappings). */
    fe_shmem_release(fe);
    for (unsigned i = 0; i < c->nregions; i++) {
        void *p = mmap(NULL, c->memory_sizes[i], PROT_NONE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) {
            r = -errno;
            fe_shmem_release(fe);
            return r;
        }
        fe->shm[i] = (struct fe_shmem_window){.base = p, .size = c->memory_sizes[i]};
        fe->nshm = i + 1;
    }
    return 0;
}

int vhu_fe_shmem_window(const struct vhu_fe *fe, uint8_t shmid, void **base, uint64_t *size)
{
    if (shmid >= fe->nshm)
        return -ENOENT;
    *base = fe->shm[shmid].base;
    *size = fe->shm[shmid].size;
    return 0;
}

/* BACKEND_SHMEM_MAP: map the fd at the window's offset.  A status (errno)
 * for the back-end. */
static uint64_t fe_shmem_map(struct vhu_fe *fe, const struct vhu_shmem_mmap *mm, int fd)
{
    if (mm->shmid >= fe->nshm || (mm->flags & ~(uint64_t)VHU_SHMEM_MAP_RW))
        return EINVAL;
    const struct fe_shmem_window *w = &fe->shm[mm->shmid];
    if (mm->len == 0 || mm->shm_offset > w->size || mm->len > w->size - mm->shm_offset)
        return EINVAL;
    for (unsigned i = 0; i < fe->nshm_maps; i++) {
        const struct fe_shmem_mapping *o = &fe->shm_maps[i];
        if (o->shmid == mm->shmid && mm->shm_offset < o->offset + o->len &&
            o->offset < mm->shm_offset + mm->len)
            return EEXIST;
    }
    if (fe->nshm_maps == VHU_SHMEM_MAX_MAPPINGS)
        return ENOSPC;
    if (mm->fd_offset > (uint64_t)INT64_MAX)
        return EINVAL;
    int prot = PROT_READ | ((mm->flags & VHU_SHMEM_MAP_RW) ? PROT_WRITE : 0);
    /* mmap checks alignment and the fd's size and mode. */
    if (mmap(w->base + mm->shm_offset, mm->len, prot, MAP_SHARED | MAP_FIXED, fd,
             (off_t)mm->fd_offset) == MAP_FAILED) {
        uint64_t err = (uint64_t)errno;
        /* A MAP_FIXED that fails may already have unmapped what it was to
         * replace: reserve the range again unless it still is (EEXIST). */
        void *r = mmap(w->base + mm->shm_offset, mm->len, PROT_NONE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
        if (r != MAP_FAILED && r != w->base + mm->shm_offset)
            munmap(r, mm->len); /* a kernel before 4.17 took it as a hint */
        return err;
    }
    fe->shm_maps[fe->nshm_maps++] =
        (struct fe_shmem_mapping){.shmid = mm->shmid, .offset = mm->shm_offset, .len = mm->len};
    return 0;
}

static uint64_t fe_shmem_unmap(struct vhu_fe *fe, const struct vhu_shmem_mmap *mm)
{
    for (unsigned i = 0; i < fe->nshm_maps; i++) {
        struct fe_shmem_mapping *o = &fe->shm_maps[i];
        if (o->shmid != mm->shmid || o->offset != mm->shm_offset || o->len != mm->len)
            continue;
        /* Back to reserved address space. */
        if (mmap(fe->shm[o->shmid].base + o->offset, o->len, PROT_NONE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) == MAP_FAILED)
            return (uint64_t)errno;
        *o = fe->shm_maps[--fe->nshm_maps];
        return 0;
    }
    return ENOENT;
}

static void fe_shmem_unmap_all(struct vhu_fe *fe)
{
    for (unsigned i = 0; i < fe->nshm_maps; i++) {
        const struct fe_shmem_mapping *o = &fe->shm_maps[i];
        mmap(fe->shm[o->shmid].base + o->offset, o->len, PROT_NONE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
    }
    fe->nshm_maps = 0;
}

int vhu_fe_serve_backend_request(struct vhu_fe *fe, int timeout_ms)
{
    if (fe->chan < 0)
        return -ENOTCONN;
    struct vhu_wire_msg *m = &fe->msg;
    char why[VHU_REASON_MAX];
    int r = vhu_wire_recv(fe->chan, m, timeout_ms, why, sizeof(why));
    if (r < 0)
        return r;
    const struct vhu_wire_row *row = vhu_wire_backend_row(m->hdr.request);
    uint64_t status = 0;
    if (!row || vhu_wire_check(row, m, true, why, sizeof(why)) < 0)
        status = EINVAL;
    else if (m->hdr.request == VHU_BREQ_SHMEM_MAP)
        status = fe_shmem_map(fe, &m->p.mmap, m->fds[0]);
    else if (m->hdr.request == VHU_BREQ_SHMEM_UNMAP)
        status = fe_shmem_unmap(fe, &m->p.mmap);
    vhu_wire_close_fds(m);
    if (m->hdr.flags & VHU_FLAG_NEED_REPLY) {
        struct vhu_msg_header h = {.request = m->hdr.request,
                                   .flags = VHU_FLAG_VERSION | VHU_FLAG_REPLY,
                                   .size = sizeof(status)};
        r = vhu_wire_send(fe->chan, &h, &status, NULL, 0);
        if (r < 0)
            return r;
    }
    if (status && row &&
        (m->hdr.request == VHU_BREQ_SHMEM_MAP || m->hdr.request == VHU_BREQ_SHMEM_UNMAP))
        return status < 4096 ? -(int)status : -EIO;
    return status ? -EBADMSG : (int)m->hdr.request;
}
