/* SPDX-License-Identifier: BSD-3-Clause */
/* The client side of the control protocol (docs/control-protocol.md), for
 * vhu-state and the tests.  The back-end's replies are checked as any
 * peer's bytes: a bounded length, then a streamed walk over the CBOR. */
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <vhu/frontend.h>

#include "../common/ctl.h"
#include "../common/internal.h"
#include "../wire/wire.h"

struct vhu_fe_control {
    int fd;
    int timeout_ms;
    uint64_t next_id;
    uint8_t *reply; /* the last reply's body */
    size_t reply_len;
};

static void nap_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

int vhu_fe_control_connect(struct vhu_fe_control **out, const char *path, int timeout_ms)
{
    *out = NULL;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    struct vhu_fe_control *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->timeout_ms = timeout_ms < 1000 ? 1000 : timeout_ms;
    for (int waited = 0;; waited += 10) {
        c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->fd < 0)
            break;
        if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            *out = c;
            return 0;
        }
        int e = errno;
        vhu_close_fd(&c->fd);
        errno = e;
        if ((e != ENOENT && e != ECONNREFUSED) || waited >= timeout_ms)
            break;
        nap_ms(10);
    }
    int r = -errno;
    free(c);
    return r;
}

void vhu_fe_control_close(struct vhu_fe_control *c)
{
    if (!c)
        return;
    vhu_close_fd(&c->fd);
    free(c->reply);
    free(c);
}

int vhu_fe_control_fd(const struct vhu_fe_control *c) { return c->fd; }

/* Exactly n bytes, each wait bounded by the timeout. */
static int read_full(struct vhu_fe_control *c, uint8_t *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        struct pollfd pf = {.fd = c->fd, .events = POLLIN};
        int pr = poll(&pf, 1, c->timeout_ms);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr == 0)
            return -ETIMEDOUT;
        if (pr < 0)
            return -errno;
        ssize_t r = recv(c->fd, p + got, n - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return errno == ECONNRESET ? -ECONNRESET : -errno;
        if (r == 0)
            return -ECONNRESET;
        got += (size_t)r;
    }
    return 0;
}

static void copy_text(char *dst, size_t cap, const struct vhu_ctl_item *it)
{
    if (!cap)
        return;
    size_t n = it->len < cap - 1 ? it->len : cap - 1;
    for (size_t i = 0; i < n; i++) /* the back-end's words, printable */
        dst[i] = it->data[i] >= 0x20 && it->data[i] < 0x7f ? (char)it->data[i] : '?';
    dst[n] = 0;
}

int vhu_fe_control_recv(struct vhu_fe_control *c, char *error, size_t n)
{
    if (n)
        error[0] = 0;
    uint8_t h[4];
    int r = read_full(c, h, 4);
    if (r < 0)
        return r;
    uint32_t len = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    if (len == 0 || len > VHU_FE_CONTROL_REPLY_MAX)
        return -EPROTO;
    free(c->reply);
    c->reply_len = 0;
    c->reply = malloc(len);
    if (!c->reply)
        return -ENOMEM;
    if ((r = read_full(c, c->reply, len)) < 0)
        return r;
    c->reply_len = len;
    /* The top map: "ok", and "error"/"errno" when not ok. */
    size_t pos = 0;
    struct vhu_ctl_item m, k, v;
    if (vhu_ctl_next(c->reply, len, &pos, &m) < 0 || m.t != CTL_MAP || m.u > 64)
        return -EPROTO;
    int ok = -1, err = -EIO;
    for (uint64_t i = 0; i < m.u; i++) {
        if (vhu_ctl_next(c->reply, len, &pos, &k) < 0 || k.t != CTL_TSTR ||
            vhu_ctl_next(c->reply, len, &pos, &v) < 0 ||
            vhu_ctl_skip(c->reply, len, &pos, &v, 0) < 0)
            return -EPROTO;
        if (vhu_ctl_is(&k, "ok") && v.t == CTL_BOOL)
            ok = v.b;
        else if (vhu_ctl_is(&k, "error") && v.t == CTL_TSTR)
            copy_text(error, n, &v);
        else if (vhu_ctl_is(&k, "errno") && v.t == CTL_UINT && v.u > 0 && v.u < 4096)
            err = -(int)v.u;
    }
    if (pos != len || ok < 0)
        return -EPROTO;
    return ok ? 0 : err;
}

/* Send {"op": op, "id": N}, with fd attached (SCM_RIGHTS) unless it is -1. */
static int send_request(struct vhu_fe_control *c, const char *op, int fd)
{
    struct vhu_ctl_buf b = {.max = 4096};
    size_t at = vhu_ctl_frame_begin(&b);
    vhu_ctl_put_map(&b, 2);
    vhu_ctl_put_text(&b, "op");
    vhu_ctl_put_text(&b, op);
    vhu_ctl_put_text(&b, "id");
    vhu_ctl_put_uint(&b, ++c->next_id);
    vhu_ctl_frame_end(&b, at);
    int r = b.err;
    for (size_t sent = 0; r == 0 && sent < b.len;) {
        struct iovec iov = {.iov_base = b.p + sent, .iov_len = b.len - sent};
        union {
            struct cmsghdr h;
            char b[CMSG_SPACE(sizeof(int))];
        } cbuf;
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        if (fd >= 0 && sent == 0) /* with the first byte */
            vhu_wire_put_fds(&mh, cbuf.b, &fd, 1);
        ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            r = errno == EPIPE ? -ECONNRESET : -errno;
        else
            sent += (size_t)w;
    }
    vhu_ctl_buf_free(&b);
    return r;
}

int vhu_fe_control_call(struct vhu_fe_control *c, const char *op, char *error, size_t n)
{
    if (n)
        error[0] = 0;
    int r = send_request(c, op, -1);
    return r < 0 ? r : vhu_fe_control_recv(c, error, n);
}

static int want_uint(const struct vhu_ctl_item *v, uint64_t max, uint64_t *out)
{
    if (v->t != CTL_UINT || v->u > max)
        return -EPROTO;
    *out = v->u;
    return 0;
}

/* A reply's nested map, decoded pair by pair. */
struct reply_map {
    const uint8_t *p;
    size_t len, *pos;
    unsigned depth; /* of the map's values, for skipping */
    struct vhu_ctl_item k, v;
};
/* Called for each pair; r->v is the value's header.  0 when it took the
 * value, 1 to have it skipped, or a negative error. */
typedef int (*reply_pair_fn)(struct reply_map *r, void *ctx);

/* The map whose header is m (at most 64 pairs, text keys). */
static int each_pair(const uint8_t *p, size_t len, size_t *pos, const struct vhu_ctl_item *m,
                     unsigned depth, reply_pair_fn fn, void *ctx)
{
    struct reply_map r = {.p = p, .len = len, .pos = pos, .depth = depth};
    if (m->t != CTL_MAP || m->u > 64)
        return -EPROTO;
    for (uint64_t i = 0; i < m->u; i++) {
        if (vhu_ctl_next(p, len, pos, &r.k) < 0 || r.k.t != CTL_TSTR ||
            vhu_ctl_next(p, len, pos, &r.v) < 0)
            return -EPROTO;
        int e = fn(&r, ctx);
        if (e == 1)
            e = vhu_ctl_skip(p, len, pos, &r.v, depth) < 0 ? -EPROTO : 0;
        if (e < 0)
            return e;
    }
    return 0;
}

static int want_bool(const struct vhu_ctl_item *v, bool *out)
{
    if (v->t != CTL_BOOL)
        return -EPROTO;
    *out = v->b;
    return 0;
}

static int queue_pair(struct reply_map *r, void *ctx)
{
    struct vhu_fe_control_queue *q = ctx;
    uint64_t u = 0;
    int e;
    if (vhu_ctl_is(&r->k, "index")) {
        e = want_uint(&r->v, 65535, &u);
        q->index = (unsigned)u;
    } else if (vhu_ctl_is(&r->k, "size")) {
        e = want_uint(&r->v, 65536, &u);
        q->size = (unsigned)u;
    } else if (vhu_ctl_is(&r->k, "last_avail")) {
        e = want_uint(&r->v, 65535, &u);
        q->last_avail = (uint16_t)u;
    } else if (vhu_ctl_is(&r->k, "completed")) {
        e = want_uint(&r->v, UINT64_MAX, &q->completed);
    } else if (vhu_ctl_is(&r->k, "started")) {
        e = want_bool(&r->v, &q->started);
    } else if (vhu_ctl_is(&r->k, "enabled")) {
        e = want_bool(&r->v, &q->enabled);
    } else {
        e = 1;
    }
    return e;
}

static int parse_queue(const uint8_t *p, size_t len, size_t *pos, struct vhu_fe_control_queue *q)
{
    struct vhu_ctl_item m;
    if (vhu_ctl_next(p, len, pos, &m) < 0)
        return -EPROTO;
    return each_pair(p, len, pos, &m, 1, queue_pair, q);
}

/* "snapshots"."last": {"ok", "pause_us", "fork_us", "bytes", "duration_us",
 * "ago_s"} */
static int last_snapshot_pair(struct reply_map *r, void *ctx)
{
    struct vhu_fe_control_info *info = ctx;
    static const struct {
        const char *key;
        size_t off;
    } u64s[] = {
        {"pause_us", offsetof(struct vhu_fe_control_info, last_pause_us)},
        {"fork_us", offsetof(struct vhu_fe_control_info, last_fork_us)},
        {"bytes", offsetof(struct vhu_fe_control_info, last_bytes)},
        {"duration_us", offsetof(struct vhu_fe_control_info, last_duration_us)},
        {"ago_s", offsetof(struct vhu_fe_control_info, last_ago_s)},
    };
    if (vhu_ctl_is(&r->k, "ok"))
        return want_bool(&r->v, &info->last_ok);
    for (size_t i = 0; i < sizeof(u64s) / sizeof(u64s[0]); i++)
        if (vhu_ctl_is(&r->k, u64s[i].key))
            return want_uint(&r->v, UINT64_MAX, (uint64_t *)((char *)info + u64s[i].off));
    return 1;
}

/* "snapshots": {"running", "taken", "failed", "last"?} */
static int snapshots_pair(struct reply_map *r, void *ctx)
{
    struct vhu_fe_control_info *info = ctx;
    if (vhu_ctl_is(&r->k, "running"))
        return want_bool(&r->v, &info->snapshot_running);
    if (vhu_ctl_is(&r->k, "taken"))
        return want_uint(&r->v, UINT64_MAX, &info->snapshots_taken);
    if (vhu_ctl_is(&r->k, "failed"))
        return want_uint(&r->v, UINT64_MAX, &info->snapshots_failed);
    if (vhu_ctl_is(&r->k, "last")) {
        info->has_last_snapshot = true;
        return each_pair(r->p, r->len, r->pos, &r->v, 2, last_snapshot_pair, info);
    }
    return 1;
}

int vhu_fe_control_info(struct vhu_fe_control *c, struct vhu_fe_control_info *info, char *error,
                        size_t n)
{
    memset(info, 0, sizeof(*info));
    int r = vhu_fe_control_call(c, "info", error, n);
    if (r < 0)
        return r;
    const uint8_t *p = c->reply;
    size_t len = c->reply_len, pos = 0;
    struct vhu_ctl_item m, k, v;
    bool have_queues = false;
    uint64_t nq = 0;
    vhu_ctl_next(p, len, &pos, &m); /* checked by vhu_fe_control_recv */
    for (uint64_t i = 0; i < m.u && r == 0; i++) {
        uint64_t u = 0;
        if (vhu_ctl_next(p, len, &pos, &k) < 0 || vhu_ctl_next(p, len, &pos, &v) < 0) {
            r = -EPROTO;
        } else if (vhu_ctl_is(&k, "device") && v.t == CTL_TSTR) {
            copy_text(info->device, sizeof(info->device), &v);
        } else if (vhu_ctl_is(&k, "vhu_version") && v.t == CTL_TSTR) {
            copy_text(info->vhu_version, sizeof(info->vhu_version), &v);
        } else if (vhu_ctl_is(&k, "transfer") && v.t == CTL_TSTR) {
            copy_text(info->transfer, sizeof(info->transfer), &v);
        } else if (vhu_ctl_is(&k, "connected") && v.t == CTL_BOOL) {
            info->connected = v.b;
        } else if (vhu_ctl_is(&k, "pid")) {
            r = want_uint(&v, UINT64_MAX, &info->pid);
        } else if (vhu_ctl_is(&k, "uptime")) {
            r = want_uint(&v, UINT64_MAX, &info->uptime_s);
        } else if (vhu_ctl_is(&k, "sessions")) {
            r = want_uint(&v, UINT64_MAX, &info->sessions);
        } else if (vhu_ctl_is(&k, "offered_features")) {
            r = want_uint(&v, UINT64_MAX, &info->offered_features);
        } else if (vhu_ctl_is(&k, "acked_features")) {
            r = want_uint(&v, UINT64_MAX, &info->acked_features);
        } else if (vhu_ctl_is(&k, "offered_protocol_features")) {
            r = want_uint(&v, UINT64_MAX, &info->offered_protocol_features);
        } else if (vhu_ctl_is(&k, "acked_protocol_features")) {
            r = want_uint(&v, UINT64_MAX, &info->acked_protocol_features);
        } else if (vhu_ctl_is(&k, "status")) {
            r = want_uint(&v, 255, &u);
            info->status = (uint8_t)u;
        } else if (vhu_ctl_is(&k, "num_queues")) {
            r = want_uint(&v, VHU_MAX_QUEUES, &nq);
        } else if (vhu_ctl_is(&k, "queues")) {
            /* At most the most a device has, whatever it claims. */
            if (v.t != CTL_ARRAY || v.u > VHU_MAX_QUEUES || have_queues) {
                r = -EPROTO;
                break;
            }
            info->queues = calloc(v.u ? v.u : 1, sizeof(*info->queues));
            if (!info->queues) {
                r = -ENOMEM;
                break;
            }
            info->num_queues = (unsigned)v.u;
            have_queues = true;
            for (uint64_t q = 0; q < v.u && r == 0; q++)
                r = parse_queue(p, len, &pos, &info->queues[q]);
        } else if (vhu_ctl_is(&k, "snapshots")) {
            r = each_pair(p, len, &pos, &v, 1, snapshots_pair, info);
        } else if (vhu_ctl_skip(p, len, &pos, &v, 0) < 0) {
            r = -EPROTO;
        }
    }
    if (r == 0 && (!have_queues || nq != info->num_queues))
        r = -EPROTO;
    if (r < 0) {
        if (n)
            snprintf(error, n, "malformed info reply");
        vhu_fe_control_info_free(info);
    }
    return r;
}

void vhu_fe_control_info_free(struct vhu_fe_control_info *info)
{
    free(info->queues);
    info->queues = NULL;
    info->num_queues = 0;
}

int vhu_fe_control_snapshot(struct vhu_fe_control *c, int out_fd, int timeout_ms,
                            struct vhu_fe_control_snapshot *res, char *error, size_t n)
{
    memset(res, 0, sizeof(*res));
    if (n)
        error[0] = 0;
    if (out_fd < 0)
        return -EBADF;
    int r = send_request(c, "snapshot", out_fd);
    if (r < 0)
        return r;
    int saved = c->timeout_ms;
    c->timeout_ms = timeout_ms < 0 ? -1 : timeout_ms;
    r = vhu_fe_control_recv(c, error, n);
    c->timeout_ms = saved;
    if (r < 0)
        return r;
    const uint8_t *p = c->reply;
    size_t len = c->reply_len, pos = 0;
    struct vhu_ctl_item m, k, v;
    bool have_pause = false;
    vhu_ctl_next(p, len, &pos, &m); /* checked by vhu_fe_control_recv */
    for (uint64_t i = 0; i < m.u && r == 0; i++) {
        if (vhu_ctl_next(p, len, &pos, &k) < 0 || vhu_ctl_next(p, len, &pos, &v) < 0) {
            r = -EPROTO;
        } else if (vhu_ctl_is(&k, "pause_us")) {
            r = want_uint(&v, UINT64_MAX, &res->pause_us);
            have_pause = true;
        } else if (vhu_ctl_is(&k, "fork_us")) {
            r = want_uint(&v, UINT64_MAX, &res->fork_us);
        } else if (vhu_ctl_is(&k, "bytes")) {
            r = want_uint(&v, UINT64_MAX, &res->bytes);
        } else if (vhu_ctl_is(&k, "duration_us")) {
            r = want_uint(&v, UINT64_MAX, &res->duration_us);
        } else if (vhu_ctl_is(&k, "pid")) {
            r = want_uint(&v, UINT64_MAX, &res->pid);
        } else if (vhu_ctl_skip(p, len, &pos, &v, 0) < 0) {
            r = -EPROTO;
        }
    }
    if (r == 0 && !have_pause)
        r = -EPROTO;
    if (r < 0 && n)
        snprintf(error, n, "malformed snapshot reply");
    return r;
}
