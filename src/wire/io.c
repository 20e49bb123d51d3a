/* SPDX-License-Identifier: BSD-3-Clause */
/* Framing over an AF_UNIX stream socket: header, payload, SCM_RIGHTS fds. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wire.h"
#include "../common/internal.h"

_Static_assert(sizeof(struct vhu_msg_header) == 12, "header is 12 bytes");
_Static_assert(sizeof(struct vhu_vring_state) == 8, "vring state");
_Static_assert(sizeof(struct vhu_vring_addr) == 40, "vring addr");
_Static_assert(sizeof(struct vhu_mem_region) == 32, "mem region");
_Static_assert(sizeof(struct vhu_mem_table) == 8 + 8 * 32, "mem table");
_Static_assert(sizeof(struct vhu_single_mem_region) == 40, "single region");
_Static_assert(sizeof(struct vhu_log) == 16, "log");
_Static_assert(sizeof(struct vhu_inflight) == 24, "inflight");
_Static_assert(sizeof(struct vhu_config) == 12 + 256, "config");
_Static_assert(sizeof(struct vhu_vring_area) == 24, "vring area");
_Static_assert(sizeof(struct vhu_device_state_params) == 8, "device state");
_Static_assert(sizeof(struct vhu_iotlb_msg) == 32, "iotlb");
_Static_assert(sizeof(struct vhu_shmem_mmap) == 40, "shmem mmap");

void vhu_wire_close_fds(struct vhu_wire_msg *m)
{
    for (unsigned i = 0; i < m->nfds; i++)
        vhu_close_fd(&m->fds[i]);
    m->nfds = 0;
}

/* Move fds from a control message into m; beyond VHU_MAX_FDS they are
 * closed and the message is marked as truncated. */
static void take_fds(struct vhu_wire_msg *m, struct msghdr *mh)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        const unsigned char *data = CMSG_DATA(c);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, data + i * sizeof(int), sizeof(int));
            if (m->nfds < VHU_MAX_FDS) {
                m->fds[m->nfds++] = fd;
            } else {
                close(fd);
                m->fds_truncated = true;
            }
        }
    }
    if (mh->msg_flags & MSG_CTRUNC)
        m->fds_truncated = true;
}

/* Wait until sock is readable.  0, -ETIMEDOUT, or -errno. */
static int wait_readable(int sock, int timeout_ms)
{
    struct pollfd p = {.fd = sock, .events = POLLIN};
    for (;;) {
        int r = poll(&p, 1, timeout_ms);
        if (r > 0)
            return 0;
        if (r == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

/* Read exactly len bytes (collecting fds on the way).  Returns bytes read
 * before EOF (< len when the peer closed), or -errno. */
static ssize_t read_full(int sock, struct vhu_wire_msg *m, void *buf, size_t len, int timeout_ms)
{
    size_t got = 0;
    /* Room for one more fd than we accept, so a sender of 9+ fds shows. */
    union {
        char buf[CMSG_SPACE(sizeof(int) * (VHU_MAX_FDS + 1))];
        struct cmsghdr align;
    } ctl;
    while (got < len) {
        int w = wait_readable(sock, timeout_ms);
        if (w < 0)
            return w;
        struct iovec iov = {.iov_base = (char *)buf + got, .iov_len = len - got};
        struct msghdr mh = {.msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = ctl.buf,
                            .msg_controllen = sizeof(ctl.buf)};
        ssize_t r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return -errno;
        }
        take_fds(m, &mh);
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

int vhu_wire_recv(int sock, struct vhu_wire_msg *m, int timeout_ms, char *why, size_t n)
{
    m->nfds = 0;
    m->fds_truncated = false;
    memset(&m->hdr, 0, sizeof(m->hdr));
    int err;

    ssize_t r = read_full(sock, m, &m->hdr, sizeof(m->hdr), timeout_ms);
    if (r < 0) {
        err = (int)r;
        snprintf(why, n, "reading the header: %s", vhu_strerror(err));
        goto fail;
    }
    if (r == 0) {
        err = -ECONNRESET;
        snprintf(why, n, "peer closed the connection");
        goto fail;
    }
    if ((size_t)r < sizeof(m->hdr)) {
        err = -EPROTO;
        snprintf(why, n, "truncated header: %zd of %zu bytes before EOF", r, sizeof(m->hdr));
        goto fail;
    }
    if ((m->hdr.flags & VHU_FLAG_VERSION_MASK) != VHU_FLAG_VERSION) {
        err = -EPROTO;
        snprintf(why, n, "request %u: protocol version %u (want %u)", m->hdr.request,
                 m->hdr.flags & VHU_FLAG_VERSION_MASK, VHU_FLAG_VERSION);
        goto fail;
    }
    if (m->hdr.size > VHU_WIRE_MAX_PAYLOAD) {
        err = -EMSGSIZE;
        snprintf(why, n, "request %u: payload size %u exceeds the largest payload %u",
                 m->hdr.request, m->hdr.size, VHU_WIRE_MAX_PAYLOAD);
        goto fail;
    }
    if (m->hdr.size) {
        r = read_full(sock, m, m->p.bytes, m->hdr.size, timeout_ms);
        if (r < 0) {
            err = (int)r;
            snprintf(why, n, "request %u: reading %u payload bytes: %s", m->hdr.request,
                     m->hdr.size, vhu_strerror(err));
            goto fail;
        }
        if ((size_t)r < m->hdr.size) {
            err = -EPROTO;
            snprintf(why, n, "request %u: truncated payload: %zd of %u bytes before EOF",
                     m->hdr.request, r, m->hdr.size);
            goto fail;
        }
    }
    /* Zero the rest so handlers reading a fixed-size struct from a short
     * (rejected anyway) or variable payload never see stale bytes. */
    memset(m->p.bytes + m->hdr.size, 0, sizeof(m->p.bytes) - m->hdr.size);
    return 0;

fail:
    vhu_wire_close_fds(m);
    return err;
}

void vhu_wire_put_fds(struct msghdr *mh, void *ctl, const int *fds, unsigned nfds)
{
    memset(ctl, 0, CMSG_SPACE(sizeof(int) * nfds));
    mh->msg_control = ctl;
    mh->msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr *c = CMSG_FIRSTHDR(mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
}

int vhu_wire_send(int sock, const struct vhu_msg_header *hdr, const void *payload, const int *fds,
                  unsigned nfds)
{
    if (nfds > VHU_MAX_FDS)
        return -EINVAL;
    union {
        char buf[CMSG_SPACE(sizeof(int) * VHU_MAX_FDS)];
        struct cmsghdr align;
    } ctl;
    struct iovec iov[2] = {
        {.iov_base = (void *)hdr, .iov_len = sizeof(*hdr)},
        {.iov_base = (void *)payload, .iov_len = payload ? hdr->size : 0},
    };
    size_t total = iov[0].iov_len + iov[1].iov_len;
    size_t sent = 0;
    bool fds_sent = nfds == 0;
    while (sent < total) {
        /* Skip what is already out. */
        struct iovec cur[2];
        int ncur = 0;
        size_t skip = sent;
        for (int i = 0; i < 2; i++) {
            if (skip >= iov[i].iov_len) {
                skip -= iov[i].iov_len;
                continue;
            }
            cur[ncur].iov_base = (char *)iov[i].iov_base + skip;
            cur[ncur].iov_len = iov[i].iov_len - skip;
            skip = 0;
            ncur++;
        }
        struct msghdr mh = {.msg_iov = cur, .msg_iovlen = (size_t)ncur};
        if (!fds_sent)
            vhu_wire_put_fds(&mh, ctl.buf, fds, nfds);
        ssize_t r = sendmsg(sock, &mh, MSG_NOSIGNAL);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                struct pollfd p = {.fd = sock, .events = POLLOUT};
                if (poll(&p, 1, 5000) <= 0)
                    return -ETIMEDOUT;
                continue;
            }
            return -errno;
        }
        fds_sent = true;
        sent += (size_t)r;
    }
    return 0;
}
