/* SPDX-License-Identifier: BSD-3-Clause */
/* The server: a libev loop around one backend.  Server mode listens and
 * serves one front-end at a time: a second one is accepted and closed at
 * once, so it fails instead of waiting in the listen queue (QEMU waits for
 * its first reply without a timeout).  Client mode connects and reconnects
 * with back-off.  Either way, a front-end that goes away leaves a reset
 * device behind, ready for the next one. */
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "backend_internal.h"

struct vhu_server {
    struct vhu_backend *b;
    struct ev_loop *loop;
    char *path;
    bool client;
    bool own_socket_file;
    int listen_fd;
    unsigned backoff_ms, backoff_min, backoff_max;
    atomic_ulong sessions; /* read from any thread */
    bool counted;          /* this connection has sent a request */
    /* Refusals of a second front-end: at most REFUSE_LOG_BURST lines per
     * second are logged, the rest counted into the next line, so a flood
     * of connections cannot flood the log. */
    ev_tstamp refuse_window;
    unsigned refuse_logged;
    unsigned long refuse_quiet;
    ev_io listen_w;
    ev_io conn_w;
    ev_timer retry_w;
    ev_async stop_w;
    ev_signal sigint_w, sigterm_w;
    bool signals;
    struct vhu_control *control; /* NULL without a control_path */
};

double vhu_monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int make_addr(const char *path, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa->sun_path))
        return -ENAMETOOLONG;
    strcpy(sa->sun_path, path);
    return 0;
}

/* Is somebody listening on path?  Used to tell a stale socket file from a
 * live one before replacing it. */
static bool socket_is_live(const struct sockaddr_un *sa)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool live = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0;
    close(fd);
    return live;
}

int vhu_listen_unix(const char *path, unsigned mode, int *out_fd)
{
    struct sockaddr_un sa;
    int r = make_addr(path, &sa);
    if (r < 0) {
        vhu_err("socket path too long: %s", path);
        return r;
    }
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            vhu_err("%s exists and is not a socket", path);
            return -EEXIST;
        }
        if (socket_is_live(&sa)) {
            vhu_err("%s: another back-end is listening there", path);
            return -EADDRINUSE;
        }
        unlink(path); /* stale, left by a process that died */
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* chmod between bind and listen rather than umask (process-wide, racy
     * with other threads): until listen() nobody can connect anyway. */
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || (mode && chmod(path, mode) < 0) ||
        listen(fd, 4) < 0) {
        r = -errno;
        vhu_err("listening on %s: %s", path, vhu_strerror(r));
        close(fd);
        return r;
    }
    *out_fd = fd;
    return 0;
}

static int open_listener(struct vhu_server *s)
{
    int r = vhu_listen_unix(s->path, 0, &s->listen_fd);
    if (r == 0)
        s->own_socket_file = true;
    return r;
}

static void start_session(struct vhu_server *s, int fd)
{
    vhu_backend_attach(s->b, fd);
    s->counted = false;
    ev_io_set(&s->conn_w, fd, EV_READ);
    ev_io_start(s->loop, &s->conn_w);
}

static void try_connect(struct vhu_server *s);

static void end_session(struct vhu_server *s)
{
    ev_io_stop(s->loop, &s->conn_w);
    vhu_backend_detach(s->b);
    if (s->client) {
        s->backoff_ms = s->backoff_min;
        try_connect(s);
    }
}

static void on_conn(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    struct vhu_server *s = w->data;
    int r = vhu_backend_process(s->b);
    /* Count a session once it has spoken: a peer that only checks whether
     * somebody listens (connect, close) is not a front-end. */
    if (r == 0 && !s->counted) {
        s->counted = true;
        atomic_fetch_add(&s->sessions, 1);
    }
    if (r < 0)
        end_session(s);
}

#define REFUSE_LOG_BURST 10

/* Has the current front-end hung up, with the hang-up not yet read?  Asked
 * when another one connects: its socket has been closed (or shut down for
 * writing), so nothing more can come from it.  Nothing is consumed. */
static bool conn_hung_up(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR));
}

/* Close a front-end that connected while another is served, naming it by
 * its credentials (the kernel's, not anything it says). */
static void refuse_conn(struct vhu_server *s, int fd)
{
    ev_tstamp now = ev_now(s->loop);
    if (now - s->refuse_window >= 1.0) {
        s->refuse_window = now;
        s->refuse_logged = 0;
    }
    if (s->refuse_logged >= REFUSE_LOG_BURST) {
        s->refuse_quiet++;
        close(fd);
        return;
    }
    s->refuse_logged++;
    char who[96] = "a peer of unknown pid";
    struct ucred uc;
    socklen_t len = sizeof(uc);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) == 0 && len == sizeof(uc)) {
        char comm[20] = "";
        char proc[40];
        snprintf(proc, sizeof(proc), "/proc/%d/comm", (int)uc.pid);
        int cfd = uc.pid > 0 ? open(proc, O_RDONLY | O_CLOEXEC) : -1;
        if (cfd >= 0) {
            ssize_t n = read(cfd, comm, sizeof(comm) - 1);
            close(cfd);
            comm[n > 0 ? n : 0] = 0;
            comm[strcspn(comm, "\n")] = 0;
            for (char *c = comm; *c; c++) /* a process names itself: printable only */
                if (*c < 0x20 || *c > 0x7e)
                    *c = '?';
        }
        snprintf(who, sizeof(who), "pid %d%s%s%s uid %u", (int)uc.pid, comm[0] ? " (" : "", comm,
                 comm[0] ? ")" : "", (unsigned)uc.uid);
    }
    char more[64] = "";
    if (s->refuse_quiet)
        snprintf(more, sizeof(more), " (%lu more refused unlogged)", s->refuse_quiet);
    s->refuse_quiet = 0;
    vhu_warn("%s: refused a second front-end, %s: another front-end is connected%s", s->path, who,
             more);
    close(fd);
}

static void on_listen(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    struct vhu_server *s = w->data;
    int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
            vhu_err("accept on %s: %s", s->path, vhu_strerror(-errno));
        return;
    }
    /* One front-end at a time; the listener stays watched so a second one
     * learns it at once (one accept per wake-up: a flood of them cannot
     * starve the session). */
    int cur = vhu_backend_fd(s->b);
    if (cur >= 0) {
        if (!conn_hung_up(cur)) {
            refuse_conn(s, fd);
            return;
        }
        vhu_info("front-end on %s hung up; serving the one that just connected", s->path);
        end_session(s);
    }
    vhu_info("front-end connected on %s", s->path);
    start_session(s, fd);
}

static void try_connect(struct vhu_server *s)
{
    struct sockaddr_un sa;
    make_addr(s->path, &sa);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        vhu_info("connected to front-end at %s", s->path);
        start_session(s, fd);
        return;
    }
    if (fd >= 0)
        close(fd);
    vhu_debug("connecting to %s failed; retrying in %u ms", s->path, s->backoff_ms);
    ev_timer_set(&s->retry_w, s->backoff_ms / 1000.0, 0.);
    ev_timer_start(s->loop, &s->retry_w);
    s->backoff_ms = s->backoff_ms * 2 > s->backoff_max ? s->backoff_max : s->backoff_ms * 2;
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    try_connect(w->data);
}

static void on_stop(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)revents;
    vhu_info("signal %d: shutting down", w->signum);
    ev_break(loop, EVBREAK_ALL);
}

int vhu_server_new(struct vhu_server **out, struct vhu_backend *b,
                   const struct vhu_server_config *user_cfg)
{
    *out = NULL;
    if (!user_cfg) {
        vhu_err("vhu_server_new: config is NULL");
        return -EINVAL;
    }
    /* Read through this version's layout (sized.c). */
    struct vhu_server_config c;
    int rc = vhu_server_config_read(&c, user_cfg);
    if (rc < 0)
        return rc;
    const struct vhu_server_config *cfg = &c;
    if (!b || !cfg->socket_path || !cfg->socket_path[0]) {
        vhu_err("vhu_server_new: a backend and a socket path are required");
        return -EINVAL;
    }
    struct vhu_server *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->b = b;
    s->listen_fd = -1;
    s->client = cfg->client;
    s->signals = cfg->handle_signals;
    s->backoff_min = cfg->reconnect_min_ms ? cfg->reconnect_min_ms : 100;
    s->backoff_max = cfg->reconnect_max_ms ? cfg->reconnect_max_ms : 5000;
    if (s->backoff_max < s->backoff_min)
        s->backoff_max = s->backoff_min;
    s->backoff_ms = s->backoff_min;
    s->path = strdup(cfg->socket_path);
    s->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    if (!s->path || !s->loop) {
        vhu_server_free(s);
        return -ENOMEM;
    }
    if (!s->client) {
        int r = open_listener(s);
        if (r < 0) {
            vhu_server_free(s);
            return r;
        }
    }
    if (cfg->control_path) {
        int r = vhu_control_new(&s->control, s->loop, cfg->control_path, b, s, vhu_monotonic());
        if (r < 0) {
            vhu_server_free(s);
            return r;
        }
    }
    ev_io_init(&s->listen_w, on_listen, s->listen_fd, EV_READ);
    /* A hang-up and a new connection seen in the same wake-up go through
     * on_listen's check first, whatever order the kernel reported them in
     * (the outcome is the same either way; this makes it one path). */
    ev_set_priority(&s->listen_w, EV_MAXPRI);
    ev_io_init(&s->conn_w, on_conn, -1, EV_READ);
    ev_timer_init(&s->retry_w, on_retry, 0., 0.);
    ev_async_init(&s->stop_w, on_stop);
    ev_signal_init(&s->sigint_w, on_signal, SIGINT);
    ev_signal_init(&s->sigterm_w, on_signal, SIGTERM);
    s->listen_w.data = s->conn_w.data = s->retry_w.data = s;
    ev_async_start(s->loop, &s->stop_w);
    *out = s;
    return 0;
}

int vhu_server_run(struct vhu_server *s)
{
    if (s->signals) {
        ev_signal_start(s->loop, &s->sigint_w);
        ev_signal_start(s->loop, &s->sigterm_w);
    }
    if (s->control)
        vhu_control_start(s->control);
    if (!s->client)
        ev_io_start(s->loop, &s->listen_w);
    else if (vhu_backend_fd(s->b) < 0)
        try_connect(s);
    ev_run(s->loop, 0);
    if (s->control)
        vhu_control_stop(s->control);
    ev_io_stop(s->loop, &s->listen_w);
    ev_timer_stop(s->loop, &s->retry_w);
    if (s->signals) {
        ev_signal_stop(s->loop, &s->sigint_w);
        ev_signal_stop(s->loop, &s->sigterm_w);
    }
    return 0;
}

void vhu_server_stop(struct vhu_server *s) { ev_async_send(s->loop, &s->stop_w); }

unsigned long vhu_server_sessions(const struct vhu_server *s) { return atomic_load(&s->sessions); }

void vhu_server_free(struct vhu_server *s)
{
    if (!s)
        return;
    if (s->loop) {
        ev_io_stop(s->loop, &s->conn_w);
        ev_async_stop(s->loop, &s->stop_w);
    }
    vhu_control_free(s->control);
    if (s->b && vhu_backend_fd(s->b) >= 0)
        vhu_backend_detach(s->b);
    vhu_close_fd(&s->listen_fd);
    if (s->own_socket_file)
        unlink(s->path);
    if (s->loop)
        ev_loop_destroy(s->loop);
    free(s->path);
    free(s);
}
