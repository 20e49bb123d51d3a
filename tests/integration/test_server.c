/* SPDX-License-Identifier: BSD-3-Clause */
/* The server: one front-end at a time (a second one closed at once), the
 * next one after a disconnect (or after a hang-up not yet read),
 * client mode with reconnection, socket-file handling, clean stop. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define VIRTQ_DESC_F_WRITE 2

static uint64_t buf_gpa(unsigned k) { return GUEST_BUF_GPA + k * 256u; }

/* One request on ring 0, answered: the ring is served. */
static void ring_round_trip(struct guest *g, unsigned k)
{
    assert_int_equal(vhu_fe_vring_push(&g->ring[0], (uint16_t)(k % GUEST_RING_SIZE), buf_gpa(k),
                                       256, VIRTQ_DESC_F_WRITE),
                     0);
    guest_kick(g, 0);
    assert_true(wait_used_idx(&g->ring[0], (uint16_t)(k + 1), 2000));
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One front-end at a time: a second one is closed at once (it would wait
 * forever in the listen queue otherwise: QEMU has no timeout on its first
 * reply), one line names it, and the session in progress is undisturbed,
 * also by a hundred more. */
static void test_second_front_end_refused(void **state)
{
    (void)state;
    struct harness h;
    assert_int_equal(harness_start(&h, 1), 0);
    struct vhu_fe *a = harness_connect_negotiated(&h);
    struct guest g;
    guest_init(&g, 1);
    guest_activate(&g, a, 0);
    ring_round_trip(&g, 0);
    log_clear();

    struct vhu_fe *b = harness_connect(&h);
    double t0 = now_s();
    assert_true(vhu_fe_peer_closed(b, 2000));
    assert_true(now_s() - t0 < 2.0);
    vhu_fe_close(b);
    char who[64];
    snprintf(who, sizeof(who), "pid %d", (int)getpid());
    assert_true(log_wait("refused a second front-end", 1000));
    assert_int_equal(log_count(who), 1);
    assert_int_equal(log_count(h.path), 1);

    /* What a front-end library makes of it. */
    b = harness_connect(&h);
    assert_int_equal(vhu_fe_negotiate(b, ~0ull, ~0ull, NULL, NULL), -EBUSY);
    vhu_fe_close(b);

    /* a is still served: requests and its ring. */
    uint64_t n = 0;
    assert_int_equal(vhu_fe_get_queue_num(a, &n), 0);
    assert_int_equal(n, 1);
    ring_round_trip(&g, 1);

    /* A hundred more: no fd kept, the log bounded, a undisturbed. */
    log_clear();
    int fds = count_open_fds();
    t0 = now_s();
    for (int i = 0; i < 100; i++) {
        b = harness_connect(&h);
        assert_true(vhu_fe_peer_closed(b, 2000));
        vhu_fe_close(b);
    }
    double took = now_s() - t0;
    assert_int_equal(count_open_fds(), fds);
    int lines = log_count("refused a second front-end");
    assert_true(lines >= 1);
    assert_true(lines <= 10 * ((int)took + 2)); /* at most 10 a second */
    assert_true(lines < 100);
    /* The unlogged ones are counted into the next line logged. */
    sleep_ms(1100);
    b = harness_connect(&h);
    assert_true(vhu_fe_peer_closed(b, 2000));
    vhu_fe_close(b);
    assert_true(log_wait("more refused unlogged", 1000));
    assert_int_equal(vhu_fe_get_queue_num(a, &n), 0);
    ring_round_trip(&g, 2);
    assert_int_equal(testdev_resets(h.dev), 0);
    assert_int_equal(vhu_server_sessions(h.s), 1);

    vhu_fe_close(a);
    guest_free(&g);
    harness_stop(&h);
}

/* The front-end being served has hung up, but the server has not read the
 * hang-up yet when the next one connects: the next one is served (the old
 * session ends as on any disconnect), not refused.  The server thread is
 * held in its log handler while it accepts a, so that a's hang-up and b's
 * connection arrive together. */
struct gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool armed, hit, released;
    int hung_up, refused;
};
static struct gate gate = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void gate_log(void *ctx, enum vhu_log_level level, const char *line)
{
    (void)ctx;
    (void)level;
    pthread_mutex_lock(&gate.lock);
    if (strstr(line, "hung up"))
        gate.hung_up++;
    if (strstr(line, "refused a second front-end"))
        gate.refused++;
    if (gate.armed && strstr(line, "front-end connected")) {
        gate.armed = false;
        gate.hit = true;
        pthread_cond_broadcast(&gate.cond);
        while (!gate.released)
            pthread_cond_wait(&gate.cond, &gate.lock);
    }
    pthread_mutex_unlock(&gate.lock);
}

static void test_hung_up_front_end_replaced(void **state)
{
    (void)state;
    vhu_set_log_handler(gate_log, NULL); /* before the server thread starts */
    gate.armed = true;
    struct harness h;
    assert_int_equal(harness_start(&h, 1), 0);

    struct vhu_fe *a = harness_connect(&h);
    pthread_mutex_lock(&gate.lock);
    while (!gate.hit)
        pthread_cond_wait(&gate.cond, &gate.lock);
    pthread_mutex_unlock(&gate.lock);
    /* The server holds a's connection; a hangs up, b connects and asks. */
    vhu_fe_close(a);
    struct vhu_fe *b = harness_connect(&h);
    assert_int_equal(vhu_fe_send(b, VHU_REQ_GET_FEATURES, VHU_FLAG_VERSION, NULL, 0, NULL, 0), 0);
    pthread_mutex_lock(&gate.lock);
    gate.released = true;
    pthread_cond_broadcast(&gate.cond);
    pthread_mutex_unlock(&gate.lock);

    vhu_fe_set_timeout(b, 2000);
    struct vhu_msg_header hdr;
    uint64_t f = 0;
    assert_int_equal(vhu_fe_recv(b, &hdr, &f, sizeof(f), NULL, NULL), 0);
    assert_int_equal(hdr.request, VHU_REQ_GET_FEATURES);
    assert_true(f & VHU_BIT(VHU_F_PROTOCOL_FEATURES));
    assert_int_equal(vhu_fe_negotiate(b, ~0ull, ~0ull, NULL, NULL), 0);
    vhu_fe_close(b);
    harness_stop(&h);
    vhu_set_log_handler(NULL, NULL); /* the thread is gone */
    log_capture_install();
    /* b came through the hung-up check, not the refusal. */
    assert_int_equal(gate.refused, 0);
    assert_int_equal(gate.hung_up, 1);
}

/* Stopping the server with a session and running rings: rings stopped,
 * device reset, every fd released, socket file removed. */
static void test_stop_with_session(void **state)
{
    (void)state;
    int before = count_open_fds();
    struct harness h;
    assert_int_equal(harness_start(&h, 2), 0);
    char path[128];
    strcpy(path, h.path);
    struct vhu_fe *fe = harness_connect_negotiated(&h);
    struct guest g;
    guest_init(&g, 2);
    guest_activate(&g, fe, 0);
    assert_int_equal(testdev_running(h.dev), 2);
    /* Stop the server from here, as a signal handler would. */
    vhu_server_stop(h.s);
    pthread_join(h.thread, NULL);
    vhu_server_free(h.s);
    h.s = NULL;
    assert_int_equal(testdev_running(h.dev), 0);
    assert_true(testdev_resets(h.dev) >= 1);
    struct stat st;
    assert_int_equal(stat(path, &st), -1);
    assert_true(vhu_fe_peer_closed(fe, 1000));
    vhu_fe_close(fe);
    guest_free(&g);
    harness_stop(&h);
    assert_int_equal(count_open_fds(), before);
}

static void test_socket_file(void **state)
{
    (void)state;
    struct harness h;
    assert_int_equal(harness_start(&h, 1), 0);
    struct testdev *d = testdev_new(1);
    struct vhu_backend *b;
    assert_int_equal(vhu_backend_new(&b, testdev_ops(d), d), 0);
    struct vhu_server *s = NULL;
    /* A live back-end's socket is not stolen. */
    struct vhu_server_config cfg = {.size = sizeof(cfg), .socket_path = h.path};
    assert_int_equal(vhu_server_new(&s, b, &cfg), -EADDRINUSE);
    struct vhu_fe *fe = harness_connect_negotiated(&h); /* still served */
    vhu_fe_close(fe);

    /* A stale socket file (nobody listening) is replaced. */
    char stale[160];
    snprintf(stale, sizeof(stale), "%s/stale", h.dir);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, stale);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
    cfg.socket_path = stale;
    assert_int_equal(vhu_server_new(&s, b, &cfg), 0);
    vhu_server_free(s);
    struct stat st;
    assert_int_equal(stat(stale, &st), -1); /* removed on free */

    /* A regular file is left alone. */
    char file[160];
    snprintf(file, sizeof(file), "%s/file", h.dir);
    fd = open(file, O_CREAT | O_WRONLY, 0600);
    close(fd);
    cfg.socket_path = file;
    assert_int_equal(vhu_server_new(&s, b, &cfg), -EEXIST);
    assert_int_equal(stat(file, &st), 0);
    unlink(file);

    char longp[200];
    memset(longp, 'x', sizeof(longp) - 1);
    longp[sizeof(longp) - 1] = 0;
    cfg.socket_path = longp;
    assert_true(vhu_server_new(&s, b, &cfg) < 0);
    cfg.socket_path = NULL;
    assert_int_equal(vhu_server_new(&s, b, &cfg), -EINVAL);

    vhu_backend_free(b);
    testdev_free(d);
    harness_stop(&h);
}

/* Client mode: the back-end connects to the front-end's socket (QEMU with
 * a server chardev), and reconnects with back-off after a disconnect, also
 * when the front-end's socket appears only later. */
struct client_ctx {
    struct vhu_server *s;
};

static void *run_server(void *arg)
{
    vhu_server_run(arg);
    return NULL;
}

static int listen_on(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 1), 0);
    return fd;
}

static struct vhu_fe *accept_fe(int lfd)
{
    int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    assert_true(c >= 0);
    struct vhu_fe *fe;
    assert_int_equal(vhu_fe_from_fd(&fe, c), 0);
    return fe;
}

static void test_client_mode(void **state)
{
    (void)state;
    char dir[] = "/tmp/vhu-client-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/qemu.sock", dir);

    struct testdev *d = testdev_new(1);
    struct vhu_backend *b;
    assert_int_equal(vhu_backend_new(&b, testdev_ops(d), d), 0);
    struct vhu_server *s;
    struct vhu_server_config cfg = {.size = sizeof(cfg),
                                    .socket_path = path,
                                    .client = true,
                                    .reconnect_min_ms = 5,
                                    .reconnect_max_ms = 40};
    assert_int_equal(vhu_server_new(&s, b, &cfg), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, run_server, s), 0);

    /* The front-end's socket appears after the back-end started trying. */
    sleep_ms(60);
    int lfd = listen_on(path);
    struct vhu_fe *fe = accept_fe(lfd);
    uint64_t af;
    assert_int_equal(vhu_fe_negotiate(fe, ~0ull, ~0ull, &af, NULL), 0);
    assert_true(af & VHU_BIT(VHU_F_VERSION_1));
    vhu_fe_close(fe);

    /* After the front-end hangs up, the back-end comes back by itself. */
    fe = accept_fe(lfd);
    uint64_t n = 0;
    assert_int_equal(vhu_fe_negotiate(fe, ~0ull, ~0ull, NULL, NULL), 0);
    assert_int_equal(vhu_fe_get_queue_num(fe, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(vhu_server_sessions(s), 2);
    vhu_fe_close(fe);

    vhu_server_stop(s);
    pthread_join(t, NULL);
    vhu_server_free(s);
    vhu_backend_free(b);
    testdev_free(d);
    close(lfd);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    log_capture_install();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_second_front_end_refused),
        cmocka_unit_test(test_hung_up_front_end_replaced),
        cmocka_unit_test(test_stop_with_session),
        cmocka_unit_test(test_socket_file),
        cmocka_unit_test(test_client_mode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
