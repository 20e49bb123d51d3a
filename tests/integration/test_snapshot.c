/* SPDX-License-Identifier: BSD-3-Clause */
/* Live snapshots over the control socket (docs/live-snapshots.md): the
 * back-end pauses its rings, forks, and the child writes the SAVE stream
 * into the fd the client sent, while the front-end's rings keep running.
 * The snapshot must be the device as it was at the pause, load into a
 * fresh back-end, and no refusal or hang-up may leak an fd or a child. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define BLOB_LEN (2u << 20) /* far more than a pipe holds */

static uint8_t *noise(size_t n, uint32_t seed)
{
    uint8_t *p = malloc(n);
    uint32_t x = seed | 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
    return p;
}

static void set_scratch(struct vhu_fe *fe, uint64_t v)
{
    assert_int_equal(vhu_fe_set_config(fe, offsetof(struct testdev_config, scratch), &v, 8, 0), 0);
}

/* The back-end runs in this process: once it reaped its child, this
 * process has no child left. */
static void assert_no_child(void)
{
    errno = 0;
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

/* {"op": op} with fds attached (SCM_RIGHTS), as a client other than
 * vhu_fe_control_snapshot might send it. */
static void send_raw(struct vhu_fe_control *c, const char *op, const int *fds, unsigned nfds)
{
    uint8_t m[64];
    size_t n = strlen(op);
    assert_true(n < 24);
    m[4] = 0xa1;
    m[5] = 0x62;
    m[6] = 'o';
    m[7] = 'p';
    m[8] = (uint8_t)(0x60 + n);
    memcpy(m + 9, op, n);
    uint32_t len = (uint32_t)(5 + n);
    m[0] = 0;
    m[1] = 0;
    m[2] = 0;
    m[3] = (uint8_t)len;
    struct iovec iov = {.iov_base = m, .iov_len = 4 + len};
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int) * 4)];
    } cb;
    memset(&cb, 0, sizeof(cb));
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds) {
        mh.msg_control = cb.b;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
    }
    assert_int_equal(sendmsg(vhu_fe_control_fd(c), &mh, MSG_NOSIGNAL), (ssize_t)(4 + len));
}

static uint8_t *read_to_eof(int fd, size_t *n)
{
    size_t cap = 1 << 20, len = 0;
    uint8_t *b = malloc(cap);
    for (;;) {
        if (len == cap)
            b = realloc(b, cap *= 2);
        ssize_t r = read(fd, b + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        assert_true(r >= 0);
        if (r == 0)
            break;
        len += (size_t)r;
    }
    *n = len;
    return b;
}

static bool wait_readable(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) == 1;
}

static int memfd_of(const uint8_t *b, size_t n)
{
    int fd = memfd_create("snap", MFD_CLOEXEC);
    assert_int_equal(write(fd, b, n), (ssize_t)n);
    lseek(fd, 0, SEEK_SET);
    return fd;
}

/* ---- threads: a ring kept busy, a snapshot request waiting ---- */

struct requester {
    struct fe_session *s;
    atomic_bool stop;
    atomic_uint done;
    atomic_uint failed;
    pthread_t t;
};

static void *requester_main(void *arg)
{
    struct requester *q = arg;
    while (!atomic_load(&q->stop)) {
        if (fe_session_requests(q->s, 1, 1, 5000))
            atomic_fetch_add(&q->done, 1);
        else
            atomic_fetch_add(&q->failed, 1);
    }
    return NULL;
}

struct snap_call {
    struct vhu_fe_control *c;
    int fd;
    int r;
    char err[256];
    struct vhu_fe_control_snapshot res;
    pthread_t t;
};

static void *snap_main(void *arg)
{
    struct snap_call *s = arg;
    s->r = vhu_fe_control_snapshot(s->c, s->fd, 30000, &s->res, s->err, sizeof(s->err));
    return NULL;
}

static void print_result(const char *what, const struct vhu_fe_control_snapshot *r)
{
    fprintf(stderr, "%s: rings paused %llu us (fork %llu us); %llu bytes in %llu us\n", what,
            (unsigned long long)r->pause_us, (unsigned long long)r->fork_us,
            (unsigned long long)r->bytes, (unsigned long long)r->duration_us);
}

/* The snapshot is the device at the pause: state changed while the child
 * writes (it is held up by a full pipe) is not in it; the front-end's
 * rings serve requests all along; the file loads into a fresh back-end with
 * the same data and ring bases. */
static void test_snapshot_live(void **state)
{
    (void)state;
    struct harness h, fresh;
    log_capture_install();
    assert_int_equal(harness_start_control(&h, 2), 0);
    uint8_t *blob = noise(BLOB_LEN, 11);
    assert_int_equal(testdev_set_blob(h.dev, blob, BLOB_LEN), 0);
    testdev_set_label(h.dev, "before");
    struct fe_session s;
    fe_session_open(&h, &s);
    set_scratch(s.fe, 0x1111);
    assert_true(fe_session_requests(&s, 0, 5, 5000));
    int fds0 = settled_open_fds();

    struct requester rq = {.s = &s};
    assert_int_equal(pthread_create(&rq.t, NULL, requester_main, &rq), 0);
    while (atomic_load(&rq.done) < 3)
        sleep_ms(1);
    unsigned before = atomic_load(&rq.done);

    struct vhu_fe_control *c = NULL;
    assert_int_equal(vhu_fe_control_connect(&c, h.control, 30000), 0);
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    struct snap_call sc = {.c = c, .fd = p[1]};
    assert_int_equal(pthread_create(&sc.t, NULL, snap_main, &sc), 0);
    /* The child writes, then waits on the full pipe: the pause is over. */
    assert_true(wait_readable(p[0], 10000));
    unsigned during = atomic_load(&rq.done);
    close(p[1]); /* the request is sent: the back-end has its own copy */
    /* The device changes under the running child. */
    set_scratch(s.fe, 0x2222);
    testdev_set_label(h.dev, "after");
    assert_true(fe_session_requests(&s, 0, 3, 5000));
    /* Ring 1 serves requests while the child is still writing. */
    for (int i = 0; i < 500 && atomic_load(&rq.done) < during + 5; i++)
        sleep_ms(2);
    assert_true(atomic_load(&rq.done) >= during + 5);
    size_t n;
    uint8_t *snap = read_to_eof(p[0], &n);
    close(p[0]);
    pthread_join(sc.t, NULL);
    atomic_store(&rq.stop, true);
    pthread_join(rq.t, NULL);
    if (sc.r < 0)
        fprintf(stderr, "snapshot: %s: %s\n", vhu_strerror(sc.r), sc.err);
    assert_int_equal(sc.r, 0);
    print_result("snapshot into a pipe, 2 rings running", &sc.res);
    assert_int_equal(sc.res.bytes, n);
    assert_true(sc.res.pause_us > 0 && sc.res.pause_us < 5000000);
    assert_true(sc.res.fork_us <= sc.res.pause_us);
    assert_true(sc.res.duration_us >= sc.res.pause_us);
    assert_true(sc.res.pid > 0 && sc.res.pid != (uint64_t)getpid());
    unsigned after = atomic_load(&rq.done);
    assert_int_equal(atomic_load(&rq.failed), 0);
    assert_true(fe_session_requests(&s, 1, 2, 5000));
    assert_true(fe_session_requests(&s, 0, 2, 5000));

    /* A second one, into a file, while nothing changes: the same bytes
     * as a SAVE would give is checked by loading both. */
    int f = memfd_create("snap2", MFD_CLOEXEC);
    struct vhu_fe_control_snapshot r2;
    char err[256];
    assert_int_equal(vhu_fe_control_snapshot(c, f, 30000, &r2, err, sizeof(err)), 0);
    print_result("snapshot into a file", &r2);
    struct stat st;
    assert_int_equal(fstat(f, &st), 0);
    assert_int_equal((uint64_t)st.st_size, r2.bytes);
    close(f);
    vhu_fe_control_close(c);
    wait_open_fds(fds0); /* the back-end kept nothing */
    assert_no_child();

    /* Into a fresh back-end: the device as it was at the pause. */
    assert_int_equal(harness_start(&fresh, 2), 0);
    struct vhu_fe *fe2 = harness_connect_negotiated(&fresh);
    int in = memfd_of(snap, n);
    assert_int_equal(vhu_fe_load_state(fe2, in), 0);
    close(in);
    const uint8_t *pb;
    size_t lb;
    testdev_blob(fresh.dev, &pb, &lb);
    assert_int_equal(lb, BLOB_LEN);
    assert_memory_equal(pb, blob, BLOB_LEN);
    assert_int_equal(testdev_scratch(fresh.dev), 0x1111);
    assert_string_equal(testdev_label(fresh.dev), "before");
    unsigned base;
    assert_int_equal(vhu_fe_get_vring_base(fe2, 0, &base), 0);
    assert_int_equal(base, 5); /* the 3 later requests came after the pause */
    assert_int_equal(vhu_fe_get_vring_base(fe2, 1, &base), 0);
    fprintf(stderr,
            "ring 1: %u requests before the request, %u when the child wrote, "
            "base %u in the snapshot, %u at the end\n",
            before, during, base, after);
    assert_true(base >= before && base <= during);
    vhu_fe_close(fe2);
    harness_stop(&fresh);

    fe_session_close(&s);
    harness_stop(&h);
    free(snap);
    free(blob);
}

/* Refusals, each answered with the connection kept and nothing leaked. */
static void test_snapshot_refusals(void **state)
{
    (void)state;
    struct harness h;
    log_capture_install();
    assert_int_equal(harness_start_control(&h, 2), 0);
    uint8_t *blob = noise(BLOB_LEN, 5);
    assert_int_equal(testdev_set_blob(h.dev, blob, BLOB_LEN), 0);
    free(blob);
    int fds0 = settled_open_fds();
    log_clear();
    struct vhu_fe_control *c = NULL, *c2 = NULL;
    assert_int_equal(vhu_fe_control_connect(&c, h.control, 30000), 0);
    assert_int_equal(vhu_fe_control_connect(&c2, h.control, 30000), 0);
    char err[256];
    struct vhu_fe_control_info in;
    struct vhu_fe_control_snapshot res;

    /* No fd. */
    assert_int_equal(vhu_fe_control_call(c, "snapshot", err, sizeof(err)), -EBADF);
    assert_non_null(strstr(err, "no fd"));
    assert_int_equal(vhu_fe_control_info(c, &in, err, sizeof(err)), 0);
    vhu_fe_control_info_free(&in);

    /* An fd with a request that takes none: closed, the request served. */
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    send_raw(c, "info", &p[1], 1);
    assert_int_equal(vhu_fe_control_recv(c, err, sizeof(err)), 0);
    assert_true(log_wait("which takes none", 2000));
    /* Read-only, and not a file/pipe/socket. */
    assert_int_equal(vhu_fe_control_snapshot(c, p[0], 5000, &res, err, sizeof(err)), -EBADF);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    assert_int_equal(vhu_fe_control_snapshot(c, ep, 5000, &res, err, sizeof(err)), -EINVAL);
    close(ep);
    /* Two fds with one snapshot: one is used, the other closed. */
    int f = memfd_create("s", MFD_CLOEXEC);
    int two[2] = {f, p[1]};
    send_raw(c, "snapshot", two, 2);
    assert_int_equal(vhu_fe_control_recv(c, err, sizeof(err)), 0);
    assert_true(log_wait("fds too many", 2000));
    struct stat st;
    assert_int_equal(fstat(f, &st), 0);
    assert_true(st.st_size > 1000);
    close(f);

    /* Pipelined: a request, then a snapshot with its fd, read together. */
    f = memfd_create("s", MFD_CLOEXEC);
    send_raw(c, "info", NULL, 0);
    send_raw(c, "snapshot", &f, 1);
    assert_int_equal(vhu_fe_control_recv(c, err, sizeof(err)), 0);
    assert_int_equal(vhu_fe_control_recv(c, err, sizeof(err)), 0);
    assert_int_equal(fstat(f, &st), 0);
    assert_true(st.st_size > 1000);
    close(f);

    /* A second snapshot while one runs (its child blocked on a pipe nobody
     * reads yet). */
    send_raw(c, "snapshot", &p[1], 1);
    assert_true(wait_readable(p[0], 10000));
    f = memfd_create("s", MFD_CLOEXEC);
    assert_int_equal(vhu_fe_control_snapshot(c2, f, 5000, &res, err, sizeof(err)), -EBUSY);
    assert_non_null(strstr(err, "another snapshot"));
    /* The busy client's next request waits for its snapshot's reply. */
    send_raw(c, "info", NULL, 0);
    close(p[1]);
    size_t n;
    uint8_t *snap = read_to_eof(p[0], &n);
    close(p[0]);
    assert_int_equal(vhu_fe_control_recv(c, err, sizeof(err)), 0); /* snapshot */
    assert_int_equal(vhu_fe_control_recv(c, err, sizeof(err)), 0); /* info */
    free(snap);
    assert_true(n > 1000);

    /* A device-state transfer is active. */
    struct vhu_fe *fe = harness_connect_negotiated(&h);
    int t = memfd_create("t", MFD_CLOEXEC);
    int ret = -1;
    assert_int_equal(vhu_fe_set_device_state_fd(fe, VHU_TRANSFER_SAVE, VHU_PHASE_STOPPED, t, &ret),
                     0);
    assert_int_equal(vhu_fe_control_snapshot(c2, f, 5000, &res, err, sizeof(err)), -EBUSY);
    assert_non_null(strstr(err, "transfer"));
    assert_int_equal(vhu_fe_check_device_state(fe), 0);
    close(t);
    vhu_fe_close(fe);
    /* And once it is over, a snapshot goes through. */
    assert_int_equal(vhu_fe_control_snapshot(c2, f, 30000, &res, err, sizeof(err)), 0);
    print_result("snapshot, no front-end", &res);
    close(f);

    vhu_fe_control_close(c);
    vhu_fe_control_close(c2);
    wait_open_fds(fds0);
    assert_no_child();
    harness_stop(&h);
}

/* The client hangs up while its child writes: the child is killed and
 * reaped, its fds and the pipe are released, and the back-end serves the
 * next snapshot. */
static void test_snapshot_client_gone(void **state)
{
    (void)state;
    struct harness h;
    log_capture_install();
    assert_int_equal(harness_start_control(&h, 2), 0);
    uint8_t *blob = noise(BLOB_LEN, 3);
    assert_int_equal(testdev_set_blob(h.dev, blob, BLOB_LEN), 0);
    free(blob);
    struct fe_session s;
    fe_session_open(&h, &s);
    assert_true(fe_session_requests(&s, 0, 4, 5000));
    int fds0 = settled_open_fds();
    log_clear();

    struct vhu_fe_control *c = NULL;
    assert_int_equal(vhu_fe_control_connect(&c, h.control, 30000), 0);
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    send_raw(c, "snapshot", &p[1], 1);
    close(p[1]);
    assert_true(wait_readable(p[0], 10000));
    vhu_fe_control_close(c);
    assert_true(log_wait("client gone during its snapshot", 5000));
    assert_true(log_wait("its client was gone", 5000));
    /* The device heard it ended (ops.snapshot_done), once. */
    assert_int_equal(testdev_snapshots_ended(h.dev), 1);
    /* The child is gone: the pipe's writer with it. */
    size_t n;
    uint8_t *part = read_to_eof(p[0], &n);
    free(part);
    close(p[0]);
    assert_true(n < BLOB_LEN);
    assert_no_child();
    wait_open_fds(fds0);
    assert_true(fe_session_requests(&s, 0, 2, 5000));

    /* Still serving. */
    assert_int_equal(vhu_fe_control_connect(&c, h.control, 30000), 0);
    int f = memfd_create("s", MFD_CLOEXEC);
    struct vhu_fe_control_snapshot res;
    char err[256];
    assert_int_equal(vhu_fe_control_snapshot(c, f, 30000, &res, err, sizeof(err)), 0);
    assert_int_equal(testdev_snapshots_ended(h.dev), 2);
    /* info counts both and describes the last, as its reply did. */
    struct vhu_fe_control_info in;
    assert_int_equal(vhu_fe_control_info(c, &in, err, sizeof(err)), 0);
    assert_false(in.snapshot_running);
    assert_int_equal(in.snapshots_taken, 1);
    assert_int_equal(in.snapshots_failed, 1);
    assert_true(in.has_last_snapshot && in.last_ok);
    assert_int_equal(in.last_bytes, res.bytes);
    assert_int_equal(in.last_pause_us, res.pause_us);
    assert_int_equal(in.last_fork_us, res.fork_us);
    assert_true(in.last_duration_us > 0 && in.last_ago_s < 60);
    vhu_fe_control_info_free(&in);
    close(f);
    vhu_fe_control_close(c);
    wait_open_fds(fds0);
    assert_no_child();

    /* The back-end stops with a snapshot running: killed and reaped too. */
    assert_int_equal(vhu_fe_control_connect(&c, h.control, 30000), 0);
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    send_raw(c, "snapshot", &p[1], 1);
    close(p[1]);
    assert_true(wait_readable(p[0], 10000));
    fe_session_close(&s);
    harness_stop(&h);
    assert_no_child();
    part = read_to_eof(p[0], &n);
    free(part);
    close(p[0]);
    vhu_fe_control_close(c);
}

/* A device that keeps its own snapshots (ops.snapshot_begin) and gets
 * ready first (ops.snapshot_prepare), on the library's snapshot thread,
 * rings running.  A prepare that fails refuses the snapshot with its
 * errno and one line; snapshot_done still follows it, snapshot_begin is
 * not called, the rings never paused and go on serving, nothing leaks.
 * Then a prepare that succeeds: the pause, begin and a complete stream. */
static void test_snapshot_prepare_refused(void **state)
{
    (void)state;
    struct harness h;
    log_capture_install();
    assert_int_equal(harness_start_control_kept(&h, 2), 0);
    uint8_t *blob = noise(BLOB_LEN, 7);
    assert_int_equal(testdev_set_blob(h.dev, blob, BLOB_LEN), 0);
    struct fe_session s;
    fe_session_open(&h, &s);
    assert_true(fe_session_requests(&s, 0, 4, 5000));
    int fds0 = settled_open_fds();
    log_clear();

    testdev_set_prepare_result(h.dev, -ENOSPC);
    struct vhu_fe_control *c = NULL;
    assert_int_equal(vhu_fe_control_connect(&c, h.control, 30000), 0);
    struct vhu_fe_control_snapshot res;
    char err[256];
    int f = memfd_create("s", MFD_CLOEXEC);
    assert_int_equal(vhu_fe_control_snapshot(c, f, 30000, &res, err, sizeof(err)), -ENOSPC);
    assert_non_null(strstr(err, "could not prepare the snapshot"));
    assert_true(log_wait("could not prepare the snapshot", 2000));
    assert_int_equal(testdev_snapshots_ended(h.dev), 1);
    assert_int_equal(testdev_snapshots_begun(h.dev), 0);
    struct stat st;
    assert_int_equal(fstat(f, &st), 0);
    assert_int_equal(st.st_size, 0); /* nothing written */
    /* f, and the control connection's two ends (client and server in this
     * process): the job's own fds are gone. */
    wait_open_fds(fds0 + 3);
    assert_true(fe_session_requests(&s, 0, 2, 5000));
    assert_true(fe_session_requests(&s, 1, 2, 5000));

    testdev_set_prepare_result(h.dev, 0);
    assert_int_equal(vhu_fe_control_snapshot(c, f, 30000, &res, err, sizeof(err)), 0);
    print_result("snapshot kept by the device", &res);
    assert_int_equal(res.fork_us, 0);
    assert_int_equal(res.pid, 0);
    assert_int_equal(testdev_snapshots_begun(h.dev), 1);
    assert_int_equal(testdev_snapshots_ended(h.dev), 2);
    assert_int_equal(fstat(f, &st), 0);
    assert_int_equal((uint64_t)st.st_size, res.bytes);
    assert_true(res.bytes > BLOB_LEN / 2); /* the blob is noise: it does not compress */
    assert_true(fe_session_requests(&s, 0, 2, 5000));
    close(f);
    free(blob);
    vhu_fe_control_close(c);
    wait_open_fds(fds0);
    assert_no_child();
    fe_session_close(&s);
    harness_stop(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snapshot_live),
        cmocka_unit_test(test_snapshot_refusals),
        cmocka_unit_test(test_snapshot_client_gone),
        cmocka_unit_test(test_snapshot_prepare_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
