/* SPDX-License-Identifier: BSD-3-Clause */
/* The control socket (docs/control-protocol.md): `info` over a real socket
 * while a front-end runs a ring, and hostile clients that must neither
 * disturb the vhost-user session nor leak the back-end's fds. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

/* n requests through ring r (harness.c's fe_session); waits for them. */
static void session_requests(struct fe_session *s, unsigned r, unsigned n)
{
    assert_true(fe_session_requests(s, r, n, 2000));
}

static struct vhu_fe_control *ctl_connect(struct harness *h)
{
    struct vhu_fe_control *c = NULL;
    assert_int_equal(vhu_fe_control_connect(&c, h->control, 2000), 0);
    return c;
}

static void info(struct vhu_fe_control *c, struct vhu_fe_control_info *in)
{
    char err[128];
    int r = vhu_fe_control_info(c, in, err, sizeof(err));
    if (r < 0)
        fprintf(stderr, "info: %s: %s\n", vhu_strerror(r), err);
    assert_int_equal(r, 0);
}

/* Completions are counted just after the used index is published: wait
 * for the count rather than race it. */
static uint64_t wait_completed(struct vhu_fe_control *c, unsigned q, uint64_t want)
{
    struct vhu_fe_control_info in;
    uint64_t got = 0;
    for (int i = 0; i < 200; i++) {
        info(c, &in);
        got = in.queues[q].completed;
        vhu_fe_control_info_free(&in);
        if (got >= want)
            break;
        sleep_ms(10);
    }
    return got;
}

static void test_info(void **state)
{
    (void)state;
    struct harness h;
    log_capture_install(); /* before the server thread starts */
    assert_int_equal(harness_start_control(&h, 2), 0);
    log_clear();

    /* Only the back-end's user may connect. */
    struct stat st;
    assert_int_equal(stat(h.control, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);

    int fds0 = count_open_fds();
    struct vhu_fe_control *c = ctl_connect(&h);
    struct vhu_fe_control_info in;

    /* Nobody attached yet. */
    info(c, &in);
    assert_string_equal(in.device, "testdev");
    assert_string_equal(in.vhu_version, vhu_version());
    assert_int_equal(in.pid, (uint64_t)getpid());
    assert_false(in.connected);
    assert_int_equal(in.sessions, 0);
    assert_string_equal(in.transfer, "idle");
    assert_int_equal(in.num_queues, 2);
    assert_int_equal(in.acked_features, 0);
    assert_true(in.offered_features & VHU_BIT(VHU_F_PROTOCOL_FEATURES));
    assert_true(in.uptime_s < 60);
    for (unsigned q = 0; q < 2; q++) {
        assert_int_equal(in.queues[q].index, q);
        assert_false(in.queues[q].started);
        assert_int_equal(in.queues[q].completed, 0);
    }
    vhu_fe_control_info_free(&in);

    /* A front-end with running rings serving requests. */
    struct fe_session s;
    fe_session_open(&h, &s);
    session_requests(&s, 0, 3);
    assert_int_equal(wait_completed(c, 0, 3), 3);
    info(c, &in);
    assert_true(in.connected);
    assert_int_equal(in.sessions, 1);
    assert_true(in.acked_features & VHU_BIT(VHU_F_PROTOCOL_FEATURES));
    assert_true(in.acked_protocol_features & VHU_BIT(VHU_PF_REPLY_ACK));
    assert_int_equal(in.acked_protocol_features & ~in.offered_protocol_features, 0);
    assert_int_equal(in.acked_features & ~in.offered_features, 0);
    assert_true(in.queues[0].started);
    assert_true(in.queues[0].enabled);
    assert_int_equal(in.queues[0].size, GUEST_RING_SIZE);
    assert_int_equal(in.queues[0].last_avail, 3);
    assert_int_equal(in.queues[0].completed, 3);
    assert_int_equal(in.queues[1].completed, 0);
    vhu_fe_control_info_free(&in);

    /* The counts go up with more requests, on both rings. */
    session_requests(&s, 0, 10);
    session_requests(&s, 0, 10);
    session_requests(&s, 1, 5);
    assert_int_equal(wait_completed(c, 0, 23), 23);
    assert_int_equal(wait_completed(c, 1, 5), 5);

    /* last_avail is what GET_VRING_BASE then returns. */
    info(c, &in);
    unsigned last0 = in.queues[0].last_avail;
    vhu_fe_control_info_free(&in);
    assert_int_equal(vhu_fe_set_vring_enable(s.fe, 0, false), 0);
    unsigned base = 0;
    assert_int_equal(vhu_fe_get_vring_base(s.fe, 0, &base), 0);
    assert_int_equal(base, last0);
    assert_int_equal(base, 23);
    info(c, &in);
    assert_false(in.queues[0].started);
    assert_int_equal(in.queues[0].last_avail, base);
    assert_true(in.queues[1].started);
    vhu_fe_control_info_free(&in);

    /* The front-end goes away: not connected, the count stays. */
    fe_session_close(&s);
    for (int i = 0; i < 200; i++) {
        info(c, &in);
        bool conn = in.connected;
        vhu_fe_control_info_free(&in);
        if (!conn)
            break;
        sleep_ms(10);
    }
    info(c, &in);
    assert_false(in.connected);
    assert_int_equal(in.sessions, 1);
    assert_int_equal(in.queues[0].completed, 23);
    vhu_fe_control_info_free(&in);

    vhu_fe_control_close(c);
    wait_open_fds(fds0);
    assert_int_equal(log_count("control"), 0);
    char path[128];
    strcpy(path, h.control);
    harness_stop(&h);
    /* vhu_server_free removed the socket file. */
    assert_int_equal(access(path, F_OK), -1);
}

/* Raw client: write bytes, then read one reply. */
static int raw_connect(struct harness *h)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, h->control);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static void raw_send(int fd, const void *p, size_t n)
{
    assert_int_equal(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Is fd closed by the peer (EOF within 2 s, nothing else unread)? */
static bool closed_by_peer(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 2000) != 1)
        return false;
    char b;
    return recv(fd, &b, 1, MSG_DONTWAIT) == 0;
}

struct bad {
    const char *name;
    const uint8_t *bytes;
    size_t len;
    int want;    /* the error reply's code */
    bool closes; /* and the connection is closed */
};

static void test_bad_input(void **state)
{
    (void)state;
    struct harness h;
    log_capture_install(); /* before the server thread starts */
    assert_int_equal(harness_start_control(&h, 2), 0);
    struct fe_session s;
    fe_session_open(&h, &s);
    session_requests(&s, 0, 1);
    int fds0 = count_open_fds();

    static const uint8_t garbage[] = {0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0xff};
    /* {"op": "info"} cut short inside the frame. */
    static const uint8_t truncated[] = {0, 0, 0, 5, 0xa1, 0x62, 'o', 'p', 0x64};
    static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 0xa0};
    static const uint8_t notmap[] = {0, 0, 0, 1, 0x01};
    static const uint8_t trailing[] = {0, 0, 0, 2, 0xa0, 0x00};
    static const uint8_t noop[] = {0, 0, 0, 1, 0xa0};
    static const uint8_t opint[] = {0, 0, 0, 5, 0xa1, 0x62, 'o', 'p', 0x01};
    /* A map claiming 2^32 pairs, and nested arrays deeper than allowed. */
    static const uint8_t bigmap[] = {0, 0, 0, 5, 0xba, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t deep[] = {0,    0,    0,    15,   0xa1, 0x61, 'x',  0x81, 0x81, 0x81,
                                   0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0x00};
    /* {"op": "reboot", "id": 7}: unknown, the connection stays. */
    static const uint8_t unknown[] = {0,   0,   0,   15,  0xa2, 0x62, 'o', 'p', 0x66, 'r',
                                      'e', 'b', 'o', 'o', 't',  0x62, 'i', 'd', 0x07};
    const struct bad cases[] = {
        {"garbage", garbage, sizeof(garbage), -EBADMSG, true},
        {"truncated", truncated, sizeof(truncated), -EBADMSG, true},
        {"4 GiB", huge, sizeof(huge), -EMSGSIZE, true},
        {"not a map", notmap, sizeof(notmap), -EBADMSG, true},
        {"trailing bytes", trailing, sizeof(trailing), -EBADMSG, true},
        {"no op", noop, sizeof(noop), -EBADMSG, true},
        {"op not text", opint, sizeof(opint), -EBADMSG, true},
        {"map of 2^32 pairs", bigmap, sizeof(bigmap), -EBADMSG, true},
        {"nested too deep", deep, sizeof(deep), -EBADMSG, true},
        {"unknown op", unknown, sizeof(unknown), -EOPNOTSUPP, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct bad *b = &cases[i];
        /* Refusals are logged at most 10 a second: stay under that. */
        if (i % 8 == 7)
            sleep_ms(1100);
        log_clear();
        struct vhu_fe_control *c = ctl_connect(&h);
        raw_send(vhu_fe_control_fd(c), b->bytes, b->len);
        char err[128];
        int r = vhu_fe_control_recv(c, err, sizeof(err));
        if (r != b->want)
            fprintf(stderr, "%s: got %d (%s)\n", b->name, r, err);
        assert_int_equal(r, b->want);
        assert_true(err[0]);
        /* One line says what was wrong. */
        assert_int_equal(log_count("control"), 1);
        if (b->closes) {
            assert_true(closed_by_peer(vhu_fe_control_fd(c)));
        } else {
            struct vhu_fe_control_info in;
            info(c, &in);
            vhu_fe_control_info_free(&in);
        }
        vhu_fe_control_close(c);
        session_requests(&s, 0, 1); /* the vhost-user session goes on */
    }

    /* A frame left half-sent when the client hangs up: closed, logged. */
    sleep_ms(1100);
    log_clear();
    int fd = raw_connect(&h);
    static const uint8_t half[] = {0, 0, 0, 100, 0xa1};
    raw_send(fd, half, sizeof(half));
    shutdown(fd, SHUT_WR);
    assert_true(closed_by_peer(fd));
    close(fd);
    assert_true(log_wait("closed inside a message", 2000));

    /* A client that asks and never reads is dropped once its replies pile
     * up; meanwhile another client and the ring are served. */
    log_clear();
    fd = raw_connect(&h);
    static const uint8_t req[] = {0, 0, 0, 9, 0xa1, 0x62, 'o', 'p', 0x64, 'i', 'n', 'f', 'o'};
    uint8_t batch[100 * sizeof(req)];
    for (int i = 0; i < 100; i++)
        memcpy(batch + i * sizeof(req), req, sizeof(req));
    bool dropped = false;
    for (int i = 0; i < 2000 && !dropped; i++) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, 2000) != 1 || (p.revents & (POLLERR | POLLHUP))) {
            dropped = true;
            break;
        }
        ssize_t n = send(fd, batch, sizeof(batch), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno != EAGAIN)
            dropped = true;
        if (i == 5) {
            struct vhu_fe_control *other = ctl_connect(&h);
            struct vhu_fe_control_info in;
            info(other, &in);
            vhu_fe_control_info_free(&in);
            vhu_fe_control_close(other);
            session_requests(&s, 1, 1);
        }
    }
    assert_true(dropped);
    close(fd);
    assert_true(log_wait("does not read its replies", 2000));
    session_requests(&s, 0, 1);

    wait_open_fds(fds0);
    fe_session_close(&s);
    harness_stop(&h);
}

static void test_many_clients(void **state)
{
    (void)state;
    struct harness h;
    log_capture_install(); /* before the server thread starts */
    assert_int_equal(harness_start_control(&h, 1), 0);
    log_clear();
    struct fe_session s;
    memset(&s, 0, sizeof(s));
    s.fe = harness_connect_negotiated(&h);
    guest_init(&s.g, 1);
    guest_activate(&s.g, s.fe, 0);
    int fds0 = count_open_fds();

    enum { N = 100, MAX = 16 };
    struct vhu_fe_control *c[N];
    for (int i = 0; i < N; i++)
        c[i] = ctl_connect(&h);
    /* The first 16 are served; every later one hears EBUSY and is closed. */
    int busy = 0;
    char err[128];
    for (int i = MAX; i < N; i++) {
        int r = vhu_fe_control_recv(c[i], err, sizeof(err));
        busy += r == -EBUSY;
        assert_true(closed_by_peer(vhu_fe_control_fd(c[i])));
    }
    assert_int_equal(busy, N - MAX);
    for (int i = 0; i < MAX; i++) {
        struct vhu_fe_control_info in;
        info(c[i], &in);
        assert_int_equal(in.num_queues, 1);
        vhu_fe_control_info_free(&in);
    }
    /* Refusals are logged, but not one line each. */
    int lines = log_count("already 16 clients");
    assert_true(lines >= 1 && lines < busy);
    session_requests(&s, 0, 2);

    for (int i = 0; i < N; i++)
        vhu_fe_control_close(c[i]);
    wait_open_fds(fds0);
    /* A slot freed is a slot for the next client. */
    struct vhu_fe_control *again = ctl_connect(&h);
    struct vhu_fe_control_info in;
    info(again, &in);
    assert_int_equal(in.queues[0].completed, 2);
    vhu_fe_control_info_free(&in);
    vhu_fe_control_close(again);
    wait_open_fds(fds0);
    fe_session_close(&s);
    harness_stop(&h);
}

/* Another uid is refused by SO_PEERCRED, even when the file's mode lets it
 * connect.  Needs root (to become another user); skipped otherwise. */
static void test_other_uid(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        skip();
        return;
    }
    struct harness h;
    log_capture_install(); /* before the server thread starts */
    assert_int_equal(harness_start_control(&h, 1), 0);
    log_clear();
    assert_int_equal(chmod(h.dir, 0755), 0);
    assert_int_equal(chmod(h.control, 0666), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (setgid(65534) < 0 || setuid(65534) < 0)
            _exit(3);
        struct vhu_fe_control *c = NULL;
        if (vhu_fe_control_connect(&c, h.control, 2000) < 0)
            _exit(4);
        char err[128];
        int r = vhu_fe_control_recv(c, err, sizeof(err));
        _exit(r == -EACCES ? 0 : 5);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_true(log_wait("not uid 0", 2000));
    harness_stop(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_info),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_many_clients),
        cmocka_unit_test(test_other_uid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
