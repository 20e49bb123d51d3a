/* SPDX-License-Identifier: BSD-3-Clause */
/* Public structs that callers fill carry their size (docs/abi.md):
 * struct vhu_device_ops and struct vhu_server_config.  A caller built with
 * an older, smaller struct (simulated here by a smaller size) still works,
 * with the fields beyond its size at their defaults; size 0, a size short of
 * the required fields, and a larger size with an unknown field set are
 * refused with one log line, leaving nothing behind. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

static uint64_t sd_features(void *dev)
{
    (void)dev;
    return VHU_BIT(VHU_F_VERSION_1);
}
static int sd_start(void *dev, struct vhu_vring *q)
{
    (void)dev;
    (void)q;
    return 0;
}
static void sd_stop(void *dev, struct vhu_vring *q)
{
    (void)dev;
    (void)q;
}
static int sd_save(void *dev, const struct vhu_state_section *s, struct vhu_state_writer *w)
{
    (void)dev;
    (void)s;
    (void)w;
    return 0;
}
static int sd_load(void *dev, void *staged, const struct vhu_state_section *s, uint32_t version,
                   struct vhu_state_reader *r)
{
    (void)dev;
    (void)staged;
    (void)s;
    (void)version;
    (void)r;
    return 0;
}

static const struct vhu_state_section sd_sections[] = {
    {.name = "sized", .version = 1, .min_version = 1}};
static const uint64_t sd_shmem[] = {1u << 20};

/* Every optional field that shows in what the back-end offers: inflight
 * tracking, device state, shared memory. */
static const struct vhu_device_ops sd_ops = {
    .size = sizeof(struct vhu_device_ops),
    .name = "sized",
    .num_queues = 1,
    .features = sd_features,
    .start_vring = sd_start,
    .stop_vring = sd_stop,
    .tracks_inflight = true,
    .sections = sd_sections,
    .num_sections = 1,
    .save_section = sd_save,
    .load_section = sd_load,
    .num_shmem_regions = 1,
    .shmem_sizes = sd_shmem,
};

#define PF_OPTIONAL                                                                                \
    (VHU_BIT(VHU_PF_INFLIGHT_SHMFD) | VHU_BIT(VHU_PF_DEVICE_STATE) | VHU_BIT(VHU_PF_SHMEM))

/* Send a GET request, let the back-end answer it in this thread, read the
 * u64 it answered. */
static uint64_t ask_u64(struct vhu_backend *b, struct vhu_fe *fe, uint32_t req)
{
    assert_int_equal(vhu_fe_send(fe, req, VHU_FLAG_VERSION, NULL, 0, NULL, 0), 0);
    assert_int_equal(vhu_backend_process(b), 0);
    struct vhu_msg_header h;
    uint64_t v = 0;
    assert_int_equal(vhu_fe_recv(fe, &h, &v, sizeof(v), NULL, NULL), 0);
    assert_int_equal(h.request, req);
    assert_int_equal(h.size, sizeof(v));
    return v;
}

/* A back-end for ops on a socketpair: the features and protocol features it
 * offers.  ops must give a working device. */
static void offered(const struct vhu_device_ops *ops, uint64_t *f, uint64_t *pf)
{
    struct vhu_backend *b = NULL;
    assert_int_equal(vhu_backend_new(&b, ops, NULL), 0);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(vhu_backend_attach(b, sv[0]), 0);
    struct vhu_fe *fe = NULL;
    assert_int_equal(vhu_fe_from_fd(&fe, sv[1]), 0);
    *f = ask_u64(b, fe, VHU_REQ_GET_FEATURES);
    *pf = ask_u64(b, fe, VHU_REQ_GET_PROTOCOL_FEATURES);
    vhu_fe_close(fe);
    vhu_backend_free(b);
}

/* This version's size: every optional field is read. */
static void test_ops_full_size(void **state)
{
    (void)state;
    uint64_t f, pf;
    offered(&sd_ops, &f, &pf);
    assert_true(f & VHU_BIT(VHU_F_VERSION_1));
    assert_int_equal(pf & PF_OPTIONAL, PF_OPTIONAL);
}

/* Older, smaller layouts: the fields beyond the size are not read (the
 * struct behind them is this test's, fully set) and take their defaults;
 * the device works.  A size that cuts a field leaves that field out. */
static void test_ops_older_sizes(void **state)
{
    (void)state;
    static const struct {
        size_t size;
        uint64_t pf_left; /* of PF_OPTIONAL */
    } cases[] = {
        {offsetof(struct vhu_device_ops, stop_vring) + sizeof(void (*)(void)), 0},
        {offsetof(struct vhu_device_ops, tracks_inflight), 0},
        {offsetof(struct vhu_device_ops, sections), VHU_BIT(VHU_PF_INFLIGHT_SHMFD)},
        /* save_section in, load_section out: no device state */
        {offsetof(struct vhu_device_ops, load_section), VHU_BIT(VHU_PF_INFLIGHT_SHMFD)},
        {offsetof(struct vhu_device_ops, num_shmem_regions),
         VHU_BIT(VHU_PF_INFLIGHT_SHMFD) | VHU_BIT(VHU_PF_DEVICE_STATE)},
        /* half of num_shmem_regions */
        {offsetof(struct vhu_device_ops, num_shmem_regions) + 2,
         VHU_BIT(VHU_PF_INFLIGHT_SHMFD) | VHU_BIT(VHU_PF_DEVICE_STATE)},
    };
    int fds = count_open_fds();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct vhu_device_ops ops = sd_ops;
        ops.size = cases[i].size;
        uint64_t f, pf;
        offered(&ops, &f, &pf);
        assert_true(f & VHU_BIT(VHU_F_VERSION_1));
        if ((pf & PF_OPTIONAL) != cases[i].pf_left)
            fail_msg("size %zu: optional protocol features 0x%llx, want 0x%llx", cases[i].size,
                     (unsigned long long)(pf & PF_OPTIONAL), (unsigned long long)cases[i].pf_left);
    }
    /* The count read, its array not: the older layout is incomplete and the
     * usual check refuses it. */
    struct vhu_device_ops ops = sd_ops;
    ops.size = offsetof(struct vhu_device_ops, shmem_sizes);
    struct vhu_backend *b = NULL;
    log_clear();
    assert_int_equal(vhu_backend_new(&b, &ops, NULL), -EINVAL);
    assert_null(b);
    assert_int_equal(log_count("num_shmem_regions needs shmem_sizes"), 1);
    assert_int_equal(count_open_fds(), fds);
}

/* An older layout is copied at vhu_backend_new: the caller's struct beyond
 * its size is never read, even when it changes afterwards. */
static void test_ops_older_copied(void **state)
{
    (void)state;
    struct vhu_device_ops *ops = malloc(sizeof(*ops));
    assert_non_null(ops);
    *ops = sd_ops;
    ops->size = offsetof(struct vhu_device_ops, tracks_inflight);
    struct vhu_backend *b = NULL;
    assert_int_equal(vhu_backend_new(&b, ops, NULL), 0);
    memset(ops, 0xff, sizeof(*ops)); /* garbage where the library must not look */
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(vhu_backend_attach(b, sv[0]), 0);
    struct vhu_fe *fe = NULL;
    assert_int_equal(vhu_fe_from_fd(&fe, sv[1]), 0);
    assert_true(ask_u64(b, fe, VHU_REQ_GET_FEATURES) & VHU_BIT(VHU_F_VERSION_1));
    vhu_fe_close(fe);
    vhu_backend_free(b);
    free(ops);
}

/* size 0, short of the required fields, or larger with an unknown field
 * set: refused, one line each, nothing created. */
static void test_ops_bad_sizes(void **state)
{
    (void)state;
    int fds = count_open_fds();
    struct vhu_backend *b = NULL;
    struct big_ops {
        struct vhu_device_ops ops;
        unsigned char newer[24]; /* fields of a later version */
    } big;
    memset(&big, 0, sizeof(big));
    big.ops = sd_ops;

    log_clear();
    big.ops.size = 0;
    assert_int_equal(vhu_backend_new(&b, &big.ops, NULL), -EINVAL);
    assert_null(b);
    assert_int_equal(log_count("vhu_backend_new: ops: size is 0"), 1);

    log_clear();
    big.ops.size = offsetof(struct vhu_device_ops, stop_vring);
    assert_int_equal(vhu_backend_new(&b, &big.ops, NULL), -EINVAL);
    assert_null(b);
    assert_int_equal(log_count("is too small: struct vhu_device_ops needs at least"), 1);

    /* A newer, larger layout whose extra fields are all zero: fine. */
    log_clear();
    big.ops.size = sizeof(big);
    assert_int_equal(vhu_backend_new(&b, &big.ops, NULL), 0);
    assert_non_null(b);
    vhu_backend_free(b);
    b = NULL;
    assert_int_equal(log_count("vhu_backend_new"), 0);

    /* ... with one set: this library cannot honour it. */
    big.newer[5] = 1;
    assert_int_equal(vhu_backend_new(&b, &big.ops, NULL), -E2BIG);
    assert_null(b);
    char want[128];
    snprintf(want, sizeof(want), "byte %zu beyond them is set",
             offsetof(struct big_ops, newer) + 5);
    assert_int_equal(log_count(want), 1);

    log_clear();
    assert_int_equal(vhu_backend_new(&b, NULL, NULL), -EINVAL);
    assert_int_equal(log_count("vhu_backend_new: ops is NULL"), 1);
    assert_int_equal(count_open_fds(), fds);
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* struct vhu_server_config: an older layout's later fields default (no
 * control socket, server mode); bad sizes are refused and create no file. */
static void test_server_config_sizes(void **state)
{
    (void)state;
    char dir[] = "/tmp/vhu-sized.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char sock[64], ctl[64];
    snprintf(sock, sizeof(sock), "%s/vhost.sock", dir);
    snprintf(ctl, sizeof(ctl), "%s/control.sock", dir);
    int fds = count_open_fds();
    struct vhu_backend *b = NULL;
    assert_int_equal(vhu_backend_new(&b, &sd_ops, NULL), 0);
    struct vhu_server *s = NULL;

    struct vhu_server_config cfg = {.size = sizeof(cfg), .socket_path = sock, .control_path = ctl};
    assert_int_equal(vhu_server_new(&s, b, &cfg), 0);
    assert_true(exists(sock));
    assert_true(exists(ctl));
    vhu_server_free(s);
    s = NULL;
    assert_false(exists(sock));

    /* Built before control_path existed: no control socket. */
    cfg.size = offsetof(struct vhu_server_config, control_path);
    assert_int_equal(vhu_server_new(&s, b, &cfg), 0);
    assert_true(exists(sock));
    assert_false(exists(ctl));
    vhu_server_free(s);
    s = NULL;

    /* Only socket_path: client (set, but beyond the size) is not read, so
     * the server listens. */
    struct vhu_server_config old = {.size = offsetof(struct vhu_server_config, client),
                                    .socket_path = sock,
                                    .client = true,
                                    .control_path = ctl};
    assert_int_equal(vhu_server_new(&s, b, &old), 0);
    assert_true(exists(sock));
    assert_false(exists(ctl));
    vhu_server_free(s);
    s = NULL;

    log_clear();
    cfg.size = 0;
    assert_int_equal(vhu_server_new(&s, b, &cfg), -EINVAL);
    assert_int_equal(log_count("vhu_server_new: config: size is 0"), 1);
    cfg.size = sizeof(size_t);
    assert_int_equal(vhu_server_new(&s, b, &cfg), -EINVAL);
    assert_int_equal(log_count("is too small: struct vhu_server_config needs at least"), 1);
    struct {
        struct vhu_server_config cfg;
        unsigned char newer[8];
    } big;
    memset(&big, 0, sizeof(big));
    big.cfg = (struct vhu_server_config){.size = sizeof(big), .socket_path = sock};
    big.newer[0] = 1;
    assert_int_equal(vhu_server_new(&s, b, &big.cfg), -E2BIG);
    assert_int_equal(log_count("struct vhu_server_config has"), 1);
    assert_null(s);
    assert_false(exists(sock));

    vhu_backend_free(b);
    assert_int_equal(count_open_fds(), fds);
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    log_capture_install();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ops_full_size),       cmocka_unit_test(test_ops_older_sizes),
        cmocka_unit_test(test_ops_older_copied),    cmocka_unit_test(test_ops_bad_sizes),
        cmocka_unit_test(test_server_config_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
