/* SPDX-License-Identifier: BSD-3-Clause */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

static void *server_thread(void *arg)
{
    struct harness *h = arg;
    vhu_server_run(h->s);
    return NULL;
}

static int start(struct harness *h, unsigned queues, bool control, bool kept)
{
    memset(h, 0, sizeof(*h));
    strcpy(h->dir, "/tmp/vhu-test-XXXXXX");
    if (!mkdtemp(h->dir))
        return -errno;
    snprintf(h->path, sizeof(h->path), "%s/sock", h->dir);
    h->dev = testdev_new(queues);
    if (!h->dev)
        return -ENOMEM;
    if (kept)
        testdev_keep_snapshots(h->dev);
    int r = vhu_backend_new(&h->b, testdev_ops(h->dev), h->dev);
    if (r < 0)
        return r;
    struct vhu_server_config cfg = {.size = sizeof(cfg), .socket_path = h->path};
    if (control) {
        snprintf(h->control, sizeof(h->control), "%s/control", h->dir);
        cfg.control_path = h->control;
    }
    r = vhu_server_new(&h->s, h->b, &cfg);
    if (r < 0)
        return r;
    return -pthread_create(&h->thread, NULL, server_thread, h);
}

int harness_start(struct harness *h, unsigned queues) { return start(h, queues, false, false); }

int harness_start_control(struct harness *h, unsigned queues)
{
    return start(h, queues, true, false);
}

int harness_start_control_kept(struct harness *h, unsigned queues)
{
    return start(h, queues, true, true);
}

void harness_stop(struct harness *h)
{
    if (h->s) {
        vhu_server_stop(h->s);
        pthread_join(h->thread, NULL);
        vhu_server_free(h->s);
    }
    vhu_backend_free(h->b);
    testdev_free(h->dev);
    rmdir(h->dir);
    memset(h, 0, sizeof(*h));
}

struct vhu_fe *harness_connect(struct harness *h)
{
    struct vhu_fe *fe = NULL;
    int r = vhu_fe_connect(&fe, h->path, 2000);
    assert_int_equal(r, 0);
    return fe;
}

struct vhu_fe *harness_connect_negotiated(struct harness *h)
{
    struct vhu_fe *fe = harness_connect(h);
    assert_int_equal(vhu_fe_negotiate(fe, ~0ull, ~0ull, NULL, NULL), 0);
    return fe;
}

int inflight_get(struct vhu_fe *fe, uint16_t nq, uint16_t qs, struct vhu_inflight *out)
{
    struct vhu_inflight in = {.num_queues = nq, .queue_size = qs};
    int fds[VHU_MAX_FDS];
    unsigned nfds = 0;
    int r = vhu_fe_call(fe, VHU_REQ_GET_INFLIGHT_FD, VHU_FLAG_VERSION, &in, sizeof(in), NULL, 0,
                        out, sizeof(*out), fds, &nfds);
    if (r < 0)
        return r;
    if (r != (int)sizeof(*out) || nfds != 1) {
        for (unsigned i = 0; i < nfds; i++)
            close(fds[i]);
        return -EPROTO;
    }
    return fds[0];
}

int inflight_set(struct vhu_fe *fe, const struct vhu_inflight *in, int fd)
{
    uint64_t st = 0;
    int r = vhu_fe_call(fe, VHU_REQ_SET_INFLIGHT_FD, VHU_FLAG_VERSION | VHU_FLAG_NEED_REPLY, in,
                        sizeof(*in), &fd, 1, &st, sizeof(st), NULL, NULL);
    return r < 0 ? r : (int)st;
}

struct config_change_call {
    struct vhu_backend *b;
    int result;
};

static void *send_config_change(void *arg)
{
    struct config_change_call *c = arg;
    c->result = vhu_backend_send_config_change(c->b);
    return NULL;
}

int config_change_served(struct vhu_backend *b, struct vhu_fe *fe, int *sent)
{
    struct config_change_call cc = {.b = b, .result = -1};
    pthread_t t;
    if (pthread_create(&t, NULL, send_config_change, &cc) != 0)
        return -EAGAIN;
    int r = vhu_fe_serve_backend_request(fe, 2000);
    pthread_join(t, NULL);
    *sent = cc.result;
    return r;
}

uint64_t wait_eventfd(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    uint64_t v = 0;
    if (poll(&p, 1, ms) != 1 || read(fd, &v, sizeof(v)) != sizeof(v))
        return 0;
    return v;
}

int count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the DIR's own fd */
}

int settled_open_fds(void)
{
    int prev = count_open_fds();
    for (int i = 0; i < 100; i++) {
        sleep_ms(20);
        int now = count_open_fds();
        if (now == prev)
            return now;
        prev = now;
    }
    return prev;
}

void wait_open_fds(int want)
{
    for (int i = 0; i < 200 && count_open_fds() != want; i++)
        sleep_ms(10);
    assert_int_equal(count_open_fds(), want);
}

/* ---- log capture ---- */

#define LOG_LINES 256
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_lines[LOG_LINES][512];
static int log_n;

static void capture(void *ctx, enum vhu_log_level level, const char *line)
{
    (void)ctx;
    if (getenv("VHU_TEST_LOG"))
        fprintf(stderr, "[vhu %d] %s\n", level, line);
    if (level > VHU_LOG_WARN)
        return;
    pthread_mutex_lock(&log_lock);
    if (log_n < LOG_LINES)
        snprintf(log_lines[log_n++], sizeof(log_lines[0]), "%s", line);
    pthread_mutex_unlock(&log_lock);
}

void log_capture_install(void) { vhu_set_log_handler(capture, NULL); }

void log_clear(void)
{
    pthread_mutex_lock(&log_lock);
    log_n = 0;
    pthread_mutex_unlock(&log_lock);
}

int log_count(const char *needle)
{
    int n = 0;
    pthread_mutex_lock(&log_lock);
    for (int i = 0; i < log_n; i++)
        if (strstr(log_lines[i], needle))
            n++;
    pthread_mutex_unlock(&log_lock);
    return n;
}

bool log_wait(const char *needle, int ms)
{
    for (int t = 0; t <= ms; t += 2) {
        if (log_count(needle) > 0)
            return true;
        sleep_ms(2);
    }
    return false;
}

void log_dump(void)
{
    pthread_mutex_lock(&log_lock);
    for (int i = 0; i < log_n; i++)
        fprintf(stderr, "  log: %s\n", log_lines[i]);
    pthread_mutex_unlock(&log_lock);
}

void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

bool wait_used_idx(const struct vhu_fe_vring *r, uint16_t want, int ms)
{
    for (int t = 0; t <= ms; t++) {
        if (vhu_fe_vring_used_idx(r) == want)
            return true;
        sleep_ms(1);
    }
    return false;
}

/* ---- guest ---- */

void guest_init(struct guest *g, unsigned nrings)
{
    guest_init_rings(g, nrings, GUEST_RING_SIZE, false);
}

void guest_init_layout(struct guest *g, unsigned nrings, bool packed)
{
    guest_init_rings(g, nrings, GUEST_RING_SIZE, packed);
}

void guest_init_rings(struct guest *g, unsigned nrings, unsigned size, bool packed)
{
    memset(g, 0, sizeof(*g));
    assert_true(nrings <= 4);
    assert_true(size >= 1 && size <= GUEST_RING_MAX && (size & (size - 1)) == 0);
    assert_int_equal(vhu_guest_mem_new(&g->mem, 0, GUEST_MEM_SIZE), 0);
    g->nrings = nrings;
    g->ring_size = size;
    for (unsigned i = 0; i < nrings; i++) {
        assert_int_equal((packed ? vhu_fe_vring_init_packed : vhu_fe_vring_init)(
                             &g->ring[i], &g->mem, i, size, 0x10000u * (i + 1)),
                         0);
        g->kick[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        g->call[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        g->err[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        assert_true(g->kick[i] >= 0 && g->call[i] >= 0 && g->err[i] >= 0);
    }
}

void guest_free(struct guest *g)
{
    for (unsigned i = 0; i < g->nrings; i++) {
        close(g->kick[i]);
        close(g->call[i]);
        close(g->err[i]);
    }
    vhu_guest_mem_free(&g->mem);
}

void guest_activate(struct guest *g, struct vhu_fe *fe, unsigned base)
{
    struct vhu_mem_region reg = vhu_guest_mem_region(&g->mem);
    assert_int_equal(vhu_fe_set_mem_table(fe, &reg, &g->mem.fd, 1), 0);
    for (unsigned i = 0; i < g->nrings; i++) {
        unsigned b = base;
        if (g->ring[i].packed) {
            if (base)
                vhu_fe_vring_packed_set_base(&g->ring[i], base);
            b = vhu_fe_vring_packed_base(&g->ring[i]);
        } else {
            g->ring[i].avail_idx = (uint16_t)base;
        }
        assert_int_equal(vhu_fe_set_vring_num(fe, i, g->ring_size), 0);
        assert_int_equal(vhu_fe_vring_set_addr(fe, &g->ring[i], 0), 0);
        assert_int_equal(vhu_fe_set_vring_base(fe, i, b), 0);
        assert_int_equal(vhu_fe_set_vring_call(fe, i, g->call[i]), 0);
        assert_int_equal(vhu_fe_set_vring_err(fe, i, g->err[i]), 0);
        assert_int_equal(vhu_fe_set_vring_kick(fe, i, g->kick[i]), 0);
        assert_int_equal(vhu_fe_set_vring_enable(fe, i, true), 0);
    }
}

void guest_kick(struct guest *g, unsigned ring)
{
    uint64_t one = 1;
    assert_int_equal(write(g->kick[ring], &one, sizeof(one)), (int)sizeof(one));
}

void fe_session_open(struct harness *h, struct fe_session *s)
{
    memset(s, 0, sizeof(*s));
    s->fe = harness_connect_negotiated(h);
    guest_init(&s->g, 2);
    guest_activate(&s->g, s->fe, 0);
}

bool fe_session_requests(struct fe_session *s, unsigned r, unsigned n, int ms)
{
    const uint16_t write_only = 2; /* VIRTQ_DESC_F_WRITE */
    for (unsigned i = 0; i < n; i++) {
        unsigned k = s->pushed[r]++;
        uint64_t gpa = GUEST_BUF_GPA + r * 0x10000u + (k % GUEST_RING_SIZE) * 256u;
        if (vhu_fe_vring_push(&s->g.ring[r], (uint16_t)(k % GUEST_RING_SIZE), gpa, 256,
                              write_only) < 0)
            return false;
    }
    uint64_t one = 1;
    if (write(s->g.kick[r], &one, sizeof(one)) != (ssize_t)sizeof(one))
        return false;
    return wait_used_idx(&s->g.ring[r], (uint16_t)s->pushed[r], ms);
}

void fe_session_close(struct fe_session *s)
{
    vhu_fe_close(s->fe);
    guest_free(&s->g);
}
