/* The server: one front-end at a time, the next one after a disconnect,
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
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

static void test_one_front_end_at_a_time(void **state)
{
    (void)state;
    struct harness h;
    assert_int_equal(harness_start(&h, 1), 0);
    struct vhu_fe *a = harness_connect_negotiated(&h);
    struct vhu_fe *b = harness_connect(&h); /* queued by the kernel */
    vhu_fe_set_timeout(b, 100);
    assert_int_equal(vhu_fe_send(b, VHU_REQ_GET_FEATURES, VHU_FLAG_VERSION, NULL, 0, NULL, 0), 0);
    struct vhu_msg_header hdr;
    uint64_t f;
    assert_int_equal(vhu_fe_recv(b, &hdr, &f, sizeof(f), NULL, NULL), -ETIMEDOUT);
    uint64_t n;
    assert_int_equal(vhu_fe_get_queue_num(a, &n), 0); /* a is still served */
    vhu_fe_close(a);
    /* Now b's request is answered. */
    vhu_fe_set_timeout(b, 2000);
    assert_int_equal(vhu_fe_recv(b, &hdr, &f, sizeof(f), NULL, NULL), 0);
    assert_int_equal(hdr.request, VHU_REQ_GET_FEATURES);
    assert_true(f & VHU_BIT(VHU_F_PROTOCOL_FEATURES));
    vhu_fe_close(b);
    harness_stop(&h);
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
    struct vhu_server_config cfg = {.socket_path = h.path};
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
    struct vhu_server_config cfg = {.socket_path = path, .client = true,
                                    .reconnect_min_ms = 5, .reconnect_max_ms = 40};
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
        cmocka_unit_test(test_one_front_end_at_a_time),
        cmocka_unit_test(test_stop_with_session),
        cmocka_unit_test(test_socket_file),
        cmocka_unit_test(test_client_mode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
