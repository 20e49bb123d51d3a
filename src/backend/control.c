/* SPDX-License-Identifier: BSD-3-Clause */
/* The control socket: a second unix socket, next to the vhost-user one,
 * where tools ask the back-end about itself (docs/control-protocol.md).
 * It runs on the server's loop and must never disturb the vhost-user
 * session: every client socket is non-blocking, input is read in bounded
 * pieces, output is bounded (a client that does not read is dropped), and
 * there are at most CTL_MAX_CLIENTS of them. */
#include <errno.h>
#include <ev.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend_internal.h"
#include "snapshot.h"
#include "../common/ctl.h"

#define CTL_MAX_CLIENTS 16
#define CTL_OUT_MAX (1u << 20) /* replies waiting for a slow reader */
#define CTL_READ_CHUNK 16384   /* read per wake-up */
#define CTL_LOG_BURST 10       /* refusal lines per second */
#define CTL_MAX_FDS 4          /* fds received and not yet given to a request */

struct ctl_client {
    struct vhu_control *c;
    unsigned slot;
    int fd;
    ev_io w;
    struct vhu_ctl_buf in, out;
    /* fds that came with a read ending at in.p + fd_at[i] (SCM_RIGHTS):
     * they belong to the request holding that byte. */
    int fds[CTL_MAX_FDS];
    size_t fd_at[CTL_MAX_FDS];
    unsigned nfds;
    bool snap_wait; /* its snapshot runs: later requests wait for its reply */
};

struct vhu_control {
    struct ev_loop *loop;
    struct vhu_backend *b;
    const struct vhu_server *s;
    double started;
    char *path;
    int listen_fd;
    ev_io listen_w;
    struct ctl_client *clients[CTL_MAX_CLIENTS];
    /* Refusal lines: at most CTL_LOG_BURST a second, the rest counted. */
    ev_tstamp log_window;
    unsigned log_n;
    unsigned long log_quiet;
    /* The snapshot in progress (one at a time), and who asked for it (NULL
     * once that client is gone: the child is killed, then reaped). */
    bool snap_running;
    struct vhu_snapshot_job job;
    ev_io snap_w;
    ev_io ready_w; /* the snapshot thread prepared: time for the pause */
    struct ctl_client *snap_cl;
    bool snap_has_id;
    uint64_t snap_id;
    /* For `info`: snapshots ended well or not, and the last one. */
    uint64_t snaps_ok, snaps_failed;
    struct {
        bool ok;
        uint64_t pause_us, fork_us, bytes, duration_us;
        double ended;
    } last;
};

static void ctl_refuse_log(struct vhu_control *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void ctl_refuse_log(struct vhu_control *c, const char *fmt, ...)
{
    ev_tstamp now = ev_now(c->loop);
    if (now - c->log_window >= 1.0) {
        c->log_window = now;
        c->log_n = 0;
    }
    if (c->log_n >= CTL_LOG_BURST) {
        c->log_quiet++;
        return;
    }
    c->log_n++;
    char line[300], more[64] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (c->log_quiet)
        snprintf(more, sizeof(more), " (%lu more unlogged)", c->log_quiet);
    c->log_quiet = 0;
    vhu_warn("control %s: %s%s", c->path, line, more);
}

static void client_free(struct ctl_client *cl)
{
    struct vhu_control *c = cl->c;
    if (c->snap_cl == cl) {
        /* Nobody to answer and perhaps nobody reading the output: the
         * child is killed; on_snap reaps it. */
        if (c->job.threaded)
            ctl_refuse_log(c, "client gone during its snapshot: cancelling it");
        else
            ctl_refuse_log(c, "client gone during its snapshot: killing pid %d", (int)c->job.pid);
        vhu_snapshot_kill(&c->job, false);
        c->snap_cl = NULL;
    }
    for (unsigned i = 0; i < cl->nfds; i++)
        vhu_close_fd(&cl->fds[i]);
    cl->nfds = 0;
    ev_io_stop(cl->c->loop, &cl->w);
    vhu_close_fd(&cl->fd);
    vhu_ctl_buf_free(&cl->in);
    vhu_ctl_buf_free(&cl->out);
    cl->c->clients[cl->slot] = NULL;
    free(cl);
}

/* One "key": value pair of a reply map. */
static void put_uint_field(struct vhu_ctl_buf *o, const char *key, uint64_t v)
{
    vhu_ctl_put_text(o, key);
    vhu_ctl_put_uint(o, v);
}

static void put_bool_field(struct vhu_ctl_buf *o, const char *key, bool v)
{
    vhu_ctl_put_text(o, key);
    vhu_ctl_put_bool(o, v);
}

static void put_error(struct vhu_ctl_buf *o, bool has_id, uint64_t id, int err, const char *what)
{
    size_t at = vhu_ctl_frame_begin(o);
    vhu_ctl_put_map(o, has_id ? 4 : 3);
    put_bool_field(o, "ok", false);
    vhu_ctl_put_text(o, "error");
    vhu_ctl_put_text(o, what);
    vhu_ctl_put_text(o, "errno");
    vhu_ctl_put_int(o, -err);
    if (has_id)
        put_uint_field(o, "id", id);
    vhu_ctl_frame_end(o, at);
}

/* Send what fits without blocking.  0, or <0 when the peer is gone. */
static int client_flush(struct ctl_client *cl)
{
    size_t sent = 0;
    while (sent < cl->out.len) {
        ssize_t n = send(cl->fd, cl->out.p + sent, cl->out.len - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0)
            return -EPIPE;
        sent += (size_t)n;
    }
    vhu_ctl_consume(&cl->out, sent);
    return 0;
}

/* Answer a request we will not serve further, then close: one try to send
 * (the reply is small; a peer whose buffer is full does not get it). */
static void client_fail(struct ctl_client *cl, int err, const char *what)
{
    cl->out.max = CTL_OUT_MAX + 512; /* room for the last word */
    put_error(&cl->out, false, 0, err, what);
    client_flush(cl);
    client_free(cl);
}

/* A success reply's frame and map head: "ok": true, then the request's
 * "id" when it had one, then `pairs` more entries for the caller to put.
 * Returns where the frame starts, for vhu_ctl_frame_end. */
static size_t put_ok_head(struct vhu_ctl_buf *o, size_t pairs, bool has_id, uint64_t id)
{
    size_t at = vhu_ctl_frame_begin(o);
    vhu_ctl_put_map(o, 1 + has_id + pairs);
    put_bool_field(o, "ok", true);
    if (has_id)
        put_uint_field(o, "id", id);
    return at;
}

static void put_info(struct vhu_control *c, struct vhu_ctl_buf *o, bool has_id, uint64_t id)
{
    struct vhu_backend *b = c->b;
    size_t at = put_ok_head(o, 15, has_id, id);
    vhu_ctl_put_text(o, "device");
    vhu_ctl_put_text(o, b->ops->name ? b->ops->name : "");
    vhu_ctl_put_text(o, "vhu_version");
    vhu_ctl_put_text(o, vhu_version());
    put_uint_field(o, "pid", (uint64_t)getpid());
    vhu_ctl_put_text(o, "uptime");
    double up = vhu_monotonic() - c->started;
    vhu_ctl_put_uint(o, up > 0 ? (uint64_t)up : 0);
    put_bool_field(o, "connected", vhu_backend_fd(b) >= 0);
    put_uint_field(o, "sessions", vhu_server_sessions(c->s));
    put_uint_field(o, "offered_features", b->features_offered);
    put_uint_field(o, "acked_features", b->acked_features);
    put_uint_field(o, "offered_protocol_features", b->pf_offered);
    put_uint_field(o, "acked_protocol_features", b->acked_pf);
    put_uint_field(o, "status", b->status);
    vhu_ctl_put_text(o, "transfer");
    vhu_ctl_put_text(o, vhu_transfer_state(b));
    put_uint_field(o, "num_queues", b->nqueues);
    vhu_ctl_put_text(o, "queues");
    vhu_ctl_put_array(o, b->nqueues);
    for (unsigned i = 0; i < b->nqueues; i++) {
        struct vhu_vring *q = &b->vrings[i];
        vhu_ctl_put_map(o, 6);
        put_uint_field(o, "index", i);
        put_uint_field(o, "size", q->num);
        put_bool_field(o, "started", q->started);
        put_bool_field(o, "enabled", atomic_load(&q->enabled));
        put_uint_field(o, "last_avail", vhu_vring_last_avail(q));
        put_uint_field(o, "completed", atomic_load_explicit(&q->completed, memory_order_relaxed));
    }
    /* Live snapshots: one running now?  How many ended, and the last. */
    bool have_last = c->snaps_ok + c->snaps_failed > 0;
    vhu_ctl_put_text(o, "snapshots");
    vhu_ctl_put_map(o, have_last ? 4 : 3);
    put_bool_field(o, "running", c->snap_running);
    put_uint_field(o, "taken", c->snaps_ok);
    put_uint_field(o, "failed", c->snaps_failed);
    if (have_last) {
        vhu_ctl_put_text(o, "last");
        vhu_ctl_put_map(o, 6);
        put_bool_field(o, "ok", c->last.ok);
        put_uint_field(o, "pause_us", c->last.pause_us);
        put_uint_field(o, "fork_us", c->last.fork_us);
        put_uint_field(o, "bytes", c->last.bytes);
        put_uint_field(o, "duration_us", c->last.duration_us);
        vhu_ctl_put_text(o, "ago_s");
        double ago = vhu_monotonic() - c->last.ended;
        vhu_ctl_put_uint(o, ago > 0 ? (uint64_t)ago : 0);
    }
    vhu_ctl_frame_end(o, at);
}

static void put_snapshot_ok(struct vhu_ctl_buf *o, bool has_id, uint64_t id,
                            const struct vhu_snapshot_job *job, uint64_t bytes,
                            uint64_t duration_us)
{
    size_t at = put_ok_head(o, 5, has_id, id);
    put_uint_field(o, "pause_us", job->pause_us);
    put_uint_field(o, "fork_us", job->fork_us);
    put_uint_field(o, "bytes", bytes);
    put_uint_field(o, "duration_us", duration_us);
    put_uint_field(o, "pid", (uint64_t)job->pid);
    vhu_ctl_frame_end(o, at);
}

static int client_process(struct ctl_client *cl);
static void client_update_watch(struct ctl_client *cl);

/* Answer the requests read so far and send what can be sent; <0 when the
 * client is gone (closed and freed). */
static int client_serve(struct ctl_client *cl)
{
    if (client_process(cl) < 0)
        return -1;
    if (client_flush(cl) < 0) {
        client_free(cl);
        return -1;
    }
    return 0;
}

static void snap_ended(struct vhu_control *c, pid_t pid, int r, uint64_t bytes, const char *why);

/* The child exited or the thread is returning (or the pidfd woke us
 * early). */
static void on_snap(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    struct vhu_control *c = w->data;
    pid_t pid = c->job.pid;
    ev_io_stop(loop, w); /* before finish closes the pidfd */
    uint64_t bytes = 0;
    char why[300];
    int r = vhu_snapshot_finish(&c->job, &bytes, why, sizeof(why));
    if (r == -EAGAIN) {
        ev_io_start(loop, w);
        return;
    }
    snap_ended(c, pid, r, bytes, why);
}

/* The device prepared its snapshot (ops.snapshot_prepare): its instant. */
static void on_snap_ready(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    struct vhu_control *c = w->data;
    vhu_snapshot_quiesce(&c->job);
    if (vhu_snapshot_ready_fd(&c->job) < 0) {
        ev_io_stop(loop, w);
        vhu_debug("control %s: snapshot: device prepared in %llu us, rings paused %llu us", c->path,
                  (unsigned long long)c->job.prepare_us, (unsigned long long)c->job.pause_us);
    }
}

void vhu_control_snapshot_yield(struct vhu_control *c, const char *to)
{
    if (!c || !c->snap_running || !c->job.threaded)
        return; /* a child writes from its own copy: nothing to share */
    ev_io_stop(c->loop, &c->ready_w);
    ev_io_stop(c->loop, &c->snap_w);
    uint64_t bytes = 0;
    char why[300], msg[400];
    int r = vhu_snapshot_cancel(&c->job, &bytes, why, sizeof(why));
    snprintf(msg, sizeof(msg), "%s began: %s", to, why);
    snap_ended(c, 0, r, bytes, r < 0 ? msg : why);
}

static void snap_ended(struct vhu_control *c, pid_t pid, int r, uint64_t bytes, const char *why)
{
    ev_io_stop(c->loop, &c->ready_w); /* a thread that ended before its instant */
    c->snap_running = false;
    if (c->b->ops->snapshot_done)
        c->b->ops->snapshot_done(c->b->dev);
    uint64_t dur = (uint64_t)((vhu_monotonic() - c->job.started) * 1e6);
    *(r < 0 ? &c->snaps_failed : &c->snaps_ok) += 1;
    c->last.ok = r == 0;
    c->last.pause_us = c->job.pause_us;
    c->last.fork_us = c->job.fork_us;
    c->last.bytes = bytes;
    c->last.duration_us = dur;
    c->last.ended = vhu_monotonic();
    struct ctl_client *cl = c->snap_cl;
    c->snap_cl = NULL;
    char who[32];
    if (c->job.threaded)
        snprintf(who, sizeof(who), "the device's own");
    else
        snprintf(who, sizeof(who), "pid %d", (int)pid);
    if (r < 0)
        ctl_refuse_log(c, "snapshot (%s) failed%s: %s", who, cl ? "" : " (its client was gone)",
                       why);
    else
        vhu_info("control %s: snapshot (%s): %llu bytes in %llu us; rings paused %llu us "
                 "(fork %llu us; device prepared before it in %llu us)",
                 c->path, who, (unsigned long long)bytes, (unsigned long long)dur,
                 (unsigned long long)c->job.pause_us, (unsigned long long)c->job.fork_us,
                 (unsigned long long)c->job.prepare_us);
    if (!cl)
        return;
    cl->snap_wait = false;
    c->job.pid = pid; /* for the reply */
    if (r < 0) {
        char msg[340];
        snprintf(msg, sizeof(msg), "snapshot failed: %s", why);
        put_error(&cl->out, c->snap_has_id, c->snap_id, r, msg);
    } else {
        put_snapshot_ok(&cl->out, c->snap_has_id, c->snap_id, &c->job, bytes, dur);
    }
    c->job.pid = 0;
    /* Requests that came while it ran. */
    if (client_serve(cl) < 0)
        return;
    client_update_watch(cl);
}

/* {"op":"snapshot"} with the output fd attached.  Always 0: refusals are
 * answered, the client stays. */
static int op_snapshot(struct ctl_client *cl, bool has_id, uint64_t id, int *fd)
{
    struct vhu_control *c = cl->c;
    struct vhu_backend *b = c->b;
    char why[300];
    int err;
    struct stat st;
    int fl;
    if (*fd < 0) {
        err = -EBADF;
        snprintf(why, sizeof(why),
                 "snapshot: no fd came with the request (send the output "
                 "with SCM_RIGHTS)");
    } else if (c->snap_running) {
        err = -EBUSY;
        snprintf(why, sizeof(why), "snapshot: another snapshot is running (pid %d)",
                 (int)c->job.pid);
    } else if (b->transfer) {
        err = -EBUSY;
        snprintf(why, sizeof(why), "snapshot: a device-state transfer (%s) is active",
                 vhu_transfer_state(b));
    } else if (!b->ops->num_sections || !b->ops->save_section) {
        err = -EOPNOTSUPP;
        snprintf(why, sizeof(why), "snapshot: the device has no state sections");
    } else if (fstat(*fd, &st) < 0 || (fl = fcntl(*fd, F_GETFL)) < 0) {
        err = -EBADF;
        snprintf(why, sizeof(why), "snapshot: the fd cannot be examined");
    } else if (!S_ISFIFO(st.st_mode) && !S_ISSOCK(st.st_mode) && !S_ISREG(st.st_mode)) {
        err = -EINVAL;
        snprintf(why, sizeof(why),
                 "snapshot: the fd is not a pipe, a socket or a regular "
                 "file");
    } else if ((fl & O_ACCMODE) == O_RDONLY) {
        err = -EBADF;
        snprintf(why, sizeof(why), "snapshot: the fd is not writable");
    } else {
        err = vhu_snapshot_start(b, *fd, &c->job, why, sizeof(why));
    }
    vhu_close_fd(fd); /* the child has its copy */
    if (err < 0) {
        ctl_refuse_log(c, "%s", why);
        put_error(&cl->out, has_id, id, err, why);
        return 0;
    }
    c->snap_running = true;
    c->snap_cl = cl;
    c->snap_has_id = has_id;
    c->snap_id = id;
    cl->snap_wait = true;
    ev_io_init(&c->snap_w, on_snap, vhu_snapshot_watch_fd(&c->job), EV_READ);
    c->snap_w.data = c;
    ev_io_start(c->loop, &c->snap_w);
    if (vhu_snapshot_ready_fd(&c->job) >= 0) {
        ev_io_init(&c->ready_w, on_snap_ready, vhu_snapshot_ready_fd(&c->job), EV_READ);
        c->ready_w.data = c;
        ev_io_start(c->loop, &c->ready_w);
        vhu_debug("control %s: snapshot: the device prepares it", c->path);
        return 0;
    }
    vhu_debug("control %s: snapshot: pid %d, rings paused %llu us (fork %llu us)", c->path,
              (int)c->job.pid, (unsigned long long)c->job.pause_us,
              (unsigned long long)c->job.fork_us);
    return 0;
}

/* One request body, with the fd that came with it (or -1; taken by a
 * request that keeps it, else closed by the caller).  Returns 0 to keep the
 * client, or a negative code after which it is closed (what was wrong is
 * answered and logged). */
static int handle(struct ctl_client *cl, const uint8_t *p, size_t len, int *fd)
{
    struct vhu_control *c = cl->c;
    size_t pos = 0;
    struct vhu_ctl_item it, v;
    char why[160];
    int r = vhu_ctl_next(p, len, &pos, &it);
    if (r < 0 || it.t != CTL_MAP) {
        snprintf(why, sizeof(why), "request is not a CBOR map (%s, %zu bytes)",
                 r == -ENODATA ? "truncated"
                 : r < 0       ? "malformed"
                               : "another item",
                 len);
        goto bad;
    }
    if (it.u > 16) {
        snprintf(why, sizeof(why), "request map has %llu pairs (at most 16)",
                 (unsigned long long)it.u);
        goto bad;
    }
    char op[33] = "";
    bool has_op = false, has_id = false;
    uint64_t id = 0;
    for (uint64_t i = 0; i < it.u; i++) {
        struct vhu_ctl_item k;
        if ((r = vhu_ctl_next(p, len, &pos, &k)) < 0 || k.t != CTL_TSTR ||
            (r = vhu_ctl_next(p, len, &pos, &v)) < 0) {
            snprintf(why, sizeof(why), "request pair %llu: %s", (unsigned long long)i,
                     r < 0 ? "truncated or malformed CBOR" : "key is not text");
            goto bad;
        }
        if (vhu_ctl_is(&k, "op")) {
            if (v.t != CTL_TSTR || v.len >= sizeof(op) || !vhu_utf8_valid(v.data, v.len) ||
                memchr(v.data, 0, v.len)) {
                snprintf(why, sizeof(why), "\"op\" is not UTF-8 text of at most %zu bytes",
                         sizeof(op) - 1);
                goto bad;
            }
            memcpy(op, v.data, v.len);
            op[v.len] = 0;
            has_op = true;
        } else if (vhu_ctl_is(&k, "id")) {
            if (v.t != CTL_UINT) {
                snprintf(why, sizeof(why), "\"id\" is not an unsigned integer");
                goto bad;
            }
            id = v.u;
            has_id = true;
        } else if ((r = vhu_ctl_skip(p, len, &pos, &v, 0)) < 0) {
            snprintf(why, sizeof(why), "request pair %llu: malformed value", (unsigned long long)i);
            goto bad;
        }
    }
    if (pos != len) {
        snprintf(why, sizeof(why), "%zu bytes after the request map", len - pos);
        goto bad;
    }
    if (!has_op) {
        snprintf(why, sizeof(why), "request has no \"op\"");
        goto bad;
    }
    if (strcmp(op, "snapshot") == 0)
        return op_snapshot(cl, has_id, id, fd);
    char printable[33];
    for (size_t i = 0; i <= strlen(op); i++)
        printable[i] = op[i] && (op[i] < 0x20 || op[i] > 0x7e) ? '?' : op[i];
    if (*fd >= 0) {
        ctl_refuse_log(c, "an fd came with a \"%s\" request, which takes none: closed", printable);
        vhu_close_fd(fd);
    }
    if (strcmp(op, "info") == 0) {
        put_info(c, &cl->out, has_id, id);
        return 0;
    }
    /* An operation this version does not know: the client may go on. */
    snprintf(why, sizeof(why), "unknown op \"%s\"", printable);
    ctl_refuse_log(c, "%s", why);
    put_error(&cl->out, has_id, id, -EOPNOTSUPP, why);
    return 0;
bad:
    ctl_refuse_log(c, "%s; closing the client", why);
    client_fail(cl, -EBADMSG, why);
    return -EBADMSG;
}

static void client_update_watch(struct ctl_client *cl)
{
    int ev = EV_READ | (cl->out.len ? EV_WRITE : 0);
    if ((cl->w.events & (EV_READ | EV_WRITE)) == ev)
        return;
    ev_io_stop(cl->c->loop, &cl->w);
    ev_io_set(&cl->w, cl->fd, ev);
    ev_io_start(cl->c->loop, &cl->w);
}

/* Every whole message read so far, unless a snapshot of this client runs
 * (its reply comes first); the work is bounded by the bytes buffered, and
 * the output cap stops a client that asks faster than it reads.  0, or <0
 * when cl is gone. */
static int client_process(struct ctl_client *cl)
{
    struct vhu_control *c = cl->c;
    size_t pos = 0;
    while (!cl->snap_wait && cl->in.len - pos >= 4) {
        const uint8_t *h = cl->in.p + pos;
        uint32_t len = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
        if (len > VHU_CTL_REQ_MAX) {
            char why[96];
            snprintf(why, sizeof(why), "request of %u bytes (at most %u)", len, VHU_CTL_REQ_MAX);
            ctl_refuse_log(c, "%s; closing the client", why);
            client_fail(cl, -EMSGSIZE, why);
            return -EMSGSIZE;
        }
        if (cl->in.len - pos - 4 < len)
            break;
        size_t end = pos + 4 + (size_t)len;
        /* The fds that came with this message's bytes: one is kept for
         * the request, the others closed. */
        int mfd = -1;
        unsigned extra = 0, keep = 0;
        for (unsigned i = 0; i < cl->nfds; i++) {
            if (cl->fd_at[i] >= end) {
                cl->fds[keep] = cl->fds[i];
                cl->fd_at[keep++] = cl->fd_at[i];
            } else if (mfd < 0) {
                mfd = cl->fds[i];
            } else {
                close(cl->fds[i]);
                extra++;
            }
        }
        cl->nfds = keep;
        if (extra)
            ctl_refuse_log(c, "%u fds too many came with one request (at most 1): closed", extra);
        int r = handle(cl, h + 4, len, &mfd);
        vhu_close_fd(&mfd);
        if (r < 0)
            return r; /* cl is gone */
        pos = end;
        if (cl->out.err) {
            ctl_refuse_log(c,
                           "client does not read its replies (%zu bytes waiting, at "
                           "most %u); dropped",
                           cl->out.len, CTL_OUT_MAX);
            client_free(cl);
            return -ENOBUFS;
        }
    }
    vhu_ctl_consume(&cl->in, pos);
    for (unsigned i = 0; i < cl->nfds; i++)
        cl->fd_at[i] -= pos;
    return 0;
}

/* Take the fds of an SCM_RIGHTS message: they belong to the request
 * holding byte `at`. */
static void take_fds(struct ctl_client *cl, struct msghdr *mh, size_t at)
{
    unsigned dropped = 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS ||
            cm->cmsg_len < CMSG_LEN(0))
            continue;
        size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
            if (cl->nfds < CTL_MAX_FDS) {
                cl->fds[cl->nfds] = fd;
                cl->fd_at[cl->nfds++] = at;
            } else {
                close(fd);
                dropped++;
            }
        }
    }
    if (dropped || (mh->msg_flags & MSG_CTRUNC))
        ctl_refuse_log(cl->c,
                       "client sent more fds than %u waiting requests take: %u%s "
                       "closed",
                       CTL_MAX_FDS, dropped, mh->msg_flags & MSG_CTRUNC ? " and more" : "");
}

static void on_client(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    struct ctl_client *cl = w->data;
    struct vhu_control *c = cl->c;
    if (revents & EV_WRITE && client_flush(cl) < 0) {
        client_free(cl);
        return;
    }
    if (revents & EV_READ) {
        uint8_t buf[CTL_READ_CHUNK];
        union {
            struct cmsghdr h;
            char b[CMSG_SPACE(sizeof(int) * CTL_MAX_FDS)];
        } cbuf;
        struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
        struct msghdr mh = {.msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = cbuf.b,
                            .msg_controllen = sizeof(cbuf.b)};
        ssize_t n = recvmsg(cl->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        /* The kernel ends a read with the message that carried fds: they
         * belong to the request holding the last byte read. */
        if (n > 0)
            take_fds(cl, &mh, cl->in.len + (size_t)n - 1);
        else if (n == 0)
            take_fds(cl, &mh, cl->in.len);
        if (n <= 0) {
            if (cl->in.len)
                ctl_refuse_log(c, "client closed inside a message (%zu bytes of it)", cl->in.len);
            client_free(cl);
            return;
        }
        vhu_ctl_put(&cl->in, buf, (size_t)n); /* in.max leaves room for one chunk */
        if (cl->in.err) {
            client_fail(cl, cl->in.err, "out of memory");
            return;
        }
        if (client_serve(cl) < 0)
            return;
    }
    client_update_watch(cl);
}

/* Reply once and close, for peers we do not serve at all. */
static void refuse_peer(int fd, int err, const char *what)
{
    struct vhu_ctl_buf o = {.max = 512};
    put_error(&o, false, 0, err, what);
    if (!o.err)
        (void)!send(fd, o.p, o.len, MSG_DONTWAIT | MSG_NOSIGNAL);
    vhu_ctl_buf_free(&o);
    close(fd);
}

static void on_listen(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    struct vhu_control *c = w->data;
    int fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
            ctl_refuse_log(c, "accept: %s", vhu_strerror(-errno));
        return;
    }
    /* Only our own user (the kernel's word, not the peer's): the socket's
     * mode says the same, this holds even if the file's mode is changed. */
    struct ucred uc;
    socklen_t ul = sizeof(uc);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &ul) < 0 || ul != sizeof(uc) ||
        uc.uid != geteuid()) {
        ctl_refuse_log(c, "refused pid %d uid %u: not uid %u", ul == sizeof(uc) ? (int)uc.pid : -1,
                       ul == sizeof(uc) ? (unsigned)uc.uid : ~0u, (unsigned)geteuid());
        refuse_peer(fd, -EACCES, "permission denied: not the back-end's user");
        return;
    }
    unsigned slot = 0;
    while (slot < CTL_MAX_CLIENTS && c->clients[slot])
        slot++;
    struct ctl_client *cl = slot < CTL_MAX_CLIENTS ? calloc(1, sizeof(*cl)) : NULL;
    if (!cl) {
        ctl_refuse_log(c, "refused pid %d: %s", (int)uc.pid,
                       slot < CTL_MAX_CLIENTS ? "out of memory" : "already 16 clients");
        refuse_peer(fd, slot < CTL_MAX_CLIENTS ? -ENOMEM : -EBUSY, "too many control clients");
        return;
    }
    cl->c = c;
    cl->slot = slot;
    cl->fd = fd;
    cl->in.max = 4 + VHU_CTL_REQ_MAX + CTL_READ_CHUNK;
    cl->out.max = CTL_OUT_MAX;
    ev_io_init(&cl->w, on_client, fd, EV_READ);
    cl->w.data = cl;
    ev_io_start(c->loop, &cl->w);
    c->clients[slot] = cl;
}

int vhu_control_new(struct vhu_control **out, struct ev_loop *loop, const char *path,
                    struct vhu_backend *b, const struct vhu_server *s, double started)
{
    *out = NULL;
    if (!path[0]) {
        vhu_err("control socket: empty path");
        return -EINVAL;
    }
    struct vhu_control *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->loop = loop;
    c->b = b;
    b->control = c; /* a device-state transfer asks it to yield (transfer.c) */
    c->s = s;
    c->started = started;
    c->listen_fd = -1;
    c->path = strdup(path);
    if (!c->path) {
        free(c);
        return -ENOMEM;
    }
    int r = vhu_listen_unix(path, 0600, &c->listen_fd);
    if (r < 0) {
        free(c->path);
        free(c);
        return r;
    }
    ev_io_init(&c->listen_w, on_listen, c->listen_fd, EV_READ);
    c->listen_w.data = c;
    *out = c;
    return 0;
}

/* op (ev_io_start or ev_io_stop) on every watcher the control socket has. */
static void each_watcher(struct vhu_control *c, void (*op)(struct ev_loop *, ev_io *))
{
    op(c->loop, &c->listen_w);
    if (c->snap_running)
        op(c->loop, &c->snap_w);
    if (c->snap_running && vhu_snapshot_ready_fd(&c->job) >= 0)
        op(c->loop, &c->ready_w);
    for (unsigned i = 0; i < CTL_MAX_CLIENTS; i++)
        if (c->clients[i])
            op(c->loop, &c->clients[i]->w);
}

void vhu_control_start(struct vhu_control *c) { each_watcher(c, ev_io_start); }

void vhu_control_stop(struct vhu_control *c) { each_watcher(c, ev_io_stop); }

void vhu_control_free(struct vhu_control *c)
{
    if (!c)
        return;
    for (unsigned i = 0; i < CTL_MAX_CLIENTS; i++)
        if (c->clients[i])
            client_free(c->clients[i]);
    if (c->snap_running) {
        /* Never a zombie: killed and reaped (or cancelled and joined)
         * before the back-end goes. */
        ev_io_stop(c->loop, &c->snap_w);
        ev_io_stop(c->loop, &c->ready_w);
        bool threaded = c->job.threaded;
        vhu_snapshot_kill(&c->job, true);
        c->snap_running = false;
        if (threaded && c->b->ops->snapshot_done)
            c->b->ops->snapshot_done(c->b->dev); /* it began (or prepared) here */
    }
    c->b->control = NULL;
    ev_io_stop(c->loop, &c->listen_w);
    vhu_close_fd(&c->listen_fd);
    unlink(c->path);
    free(c->path);
    free(c);
}
