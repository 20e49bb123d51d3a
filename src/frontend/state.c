/* SPDX-License-Identifier: BSD-3-Clause */
/* The front-end side of device-state transfer: what QEMU's
 * vhost_save_backend_state / vhost_load_backend_state do, over a socket
 * pair (a peer that closes early gives EPIPE here, never SIGPIPE). */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vhu/frontend.h>
#include <vhu/state.h>

#include "../common/internal.h"

#define COPY_CHUNK (256u << 10)

static int status_err(uint64_t s)
{
    s &= 0xff;
    return s ? -(int)s : 0;
}

int vhu_fe_set_device_state_fd(struct vhu_fe *fe, uint32_t direction, uint32_t phase, int fd,
                               int *returned_fd)
{
    struct vhu_device_state_params p = {.direction = direction, .phase = phase};
    uint64_t st = 0;
    int fds[VHU_MAX_FDS];
    unsigned nfds = 0;
    *returned_fd = -1;
    int r = vhu_fe_call(fe, VHU_REQ_SET_DEVICE_STATE_FD, VHU_FLAG_VERSION, &p, sizeof(p), &fd, 1,
                        &st, sizeof(st), fds, &nfds);
    if (r < 0)
        return r;
    int e = r != sizeof(st) ? -EPROTO : status_err(st);
    if (e == 0 && !(st & VHU_VRING_NOFD)) {
        if (nfds != 1)
            e = -EPROTO; /* "an fd comes back" but none (or several) did */
        else
            *returned_fd = fds[0];
    }
    for (unsigned i = 0; i < nfds; i++)
        if (fds[i] != *returned_fd)
            close(fds[i]);
    return e;
}

int vhu_fe_check_device_state(struct vhu_fe *fe)
{
    uint64_t st = 0;
    int r = vhu_fe_call(fe, VHU_REQ_CHECK_DEVICE_STATE, VHU_FLAG_VERSION, NULL, 0, NULL, 0, &st,
                        sizeof(st), NULL, NULL);
    if (r < 0)
        return r;
    if (r != sizeof(st))
        return -EPROTO;
    return st == 0 ? 0 : st < 4096 ? -(int)st : -EIO;
}

static int write_all(int fd, const uint8_t *p, size_t n, bool sock)
{
    while (n) {
        ssize_t w = sock ? send(fd, p, n, MSG_NOSIGNAL) : write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Copy from `from` until EOF into `to`. */
static int copy_fd(int from, int to, bool to_sock)
{
    uint8_t *buf = malloc(COPY_CHUNK);
    if (!buf)
        return -ENOMEM;
    int r = 0;
    for (;;) {
        ssize_t n = read(from, buf, COPY_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            break;
        }
        if (n == 0)
            break;
        if ((r = write_all(to, buf, (size_t)n, to_sock)) < 0)
            break;
    }
    free(buf);
    return r;
}

/* Open the channel: our end in *mine, the back-end's sent with SET. */
static int open_channel(struct vhu_fe *fe, uint32_t direction, int *mine)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    int back = -1;
    int r = vhu_fe_set_device_state_fd(fe, direction, VHU_PHASE_STOPPED, sv[1], &back);
    close(sv[1]);
    if (r < 0) {
        close(sv[0]);
        return r;
    }
    if (back >= 0) {
        /* The back-end made its own channel: use it instead. */
        close(sv[0]);
        *mine = back;
    } else {
        *mine = sv[0];
    }
    return 0;
}

int vhu_fe_save_state(struct vhu_fe *fe, int out_fd)
{
    int ch;
    int r = open_channel(fe, VHU_TRANSFER_SAVE, &ch);
    if (r < 0)
        return r;
    int copied = copy_fd(ch, out_fd, false);
    close(ch);
    /* CHECK ends the transfer on the back-end even when our copy failed. */
    int checked = vhu_fe_check_device_state(fe);
    if (copied < 0)
        vhu_log(VHU_LOG_ERROR, "saving state: copying it out: %s", vhu_strerror(copied));
    return copied < 0 ? copied : checked;
}

int vhu_fe_load_state(struct vhu_fe *fe, int in_fd)
{
    int ch;
    int r = open_channel(fe, VHU_TRANSFER_LOAD, &ch);
    if (r < 0)
        return r;
    int copied = copy_fd(in_fd, ch, true);
    close(ch); /* EOF for the back-end */
    int checked = vhu_fe_check_device_state(fe);
    /* A back-end that refused the stream closes its end early: our copy
     * then fails with EPIPE, but its CHECK answer is the real reason. */
    if (checked < 0)
        return checked;
    if (copied < 0)
        vhu_log(VHU_LOG_ERROR, "loading state: copying it in: %s", vhu_strerror(copied));
    return copied;
}
