/* SPDX-License-Identifier: BSD-3-Clause */
/* VIRTIO shared memory (PROTOCOL_F_SHMEM): GET_SHMEM_CONFIG, and
 * BACKEND_SHMEM_MAP / UNMAP on the back-end channel, over a real socket
 * with real memfds.  The front-end library maps what the back-end sends
 * into its windows; the test checks the bytes are shared both ways, that
 * both sides refuse bad regions, ranges and overlaps, that a refusal by
 * the front-end leaves the back-end's table as it was, that a device reset
 * ends every mapping, and that no fd is left open. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include <vhu/frontend.h>
#include <vhu/vhu.h>

#include "devserver.h"
#include "harness.h"

#define REGION0 (1024 * 1024)
#define REGION1 (64 * 1024)
#define PAGE 4096

static const uint64_t sizes[] = {REGION0, REGION1};

static uint64_t shm_features(void *dev)
{
    (void)dev;
    return VHU_BIT(VHU_F_VERSION_1);
}
static int shm_start(void *dev, struct vhu_vring *q)
{
    (void)dev;
    (void)q;
    return 0;
}
static void shm_stop(void *dev, struct vhu_vring *q)
{
    (void)dev;
    (void)q;
}

static const struct vhu_device_ops shm_ops = {
    .size = sizeof(struct vhu_device_ops),
    .name = "shm",
    .num_queues = 1,
    .features = shm_features,
    .start_vring = shm_start,
    .stop_vring = shm_stop,
    .num_shmem_regions = 2,
    .shmem_sizes = sizes,
};

/* The back-end's calls run on a thread while the test serves the front-end
 * side of the channel, as a VMM's event loop would. */
struct call {
    struct vhu_backend *b;
    bool unmap;
    uint8_t shmid;
    int fd;
    uint64_t fd_offset, offset, len;
    int result;
};

static void *run_call(void *arg)
{
    struct call *c = arg;
    c->result = c->unmap ? vhu_backend_shmem_unmap(c->b, c->shmid, c->offset, c->len)
                         : vhu_backend_shmem_map(c->b, c->shmid, c->fd, c->fd_offset, c->offset,
                                                 c->len, true);
    return NULL;
}

/* Run one back-end call, serve what it sends; the front-end's result. */
static int served(struct vhu_fe *fe, struct call *c)
{
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, run_call, c), 0);
    int r = vhu_fe_serve_backend_request(fe, 2000);
    pthread_join(t, NULL);
    return r;
}

static int memfd_of(size_t size, uint8_t fill)
{
    int fd = memfd_create("shm-test", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    uint8_t *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    assert_true(p != MAP_FAILED);
    memset(p, fill, size);
    munmap(p, size);
    return fd;
}

static void test_map_unmap(void **state)
{
    (void)state;
    int fds_before = count_open_fds();
    struct devserver ds;
    assert_int_equal(devserver_start(&ds, &shm_ops, NULL), 0);
    struct vhu_fe *fe = devserver_connect(&ds, ~0ull);
    assert_true(vhu_fe_acked_protocol_features(fe) & VHU_BIT(VHU_PF_SHMEM));
    assert_int_equal(vhu_fe_open_backend_channel(fe), 0);

    struct vhu_shmem_config cfg;
    assert_int_equal(vhu_fe_get_shmem_config(fe, &cfg), 0);
    assert_int_equal(cfg.nregions, 2);
    assert_int_equal(cfg.memory_sizes[0], REGION0);
    assert_int_equal(cfg.memory_sizes[1], REGION1);
    assert_int_equal(cfg.memory_sizes[2], 0);
    void *w0 = NULL;
    uint64_t w0size = 0;
    assert_int_equal(vhu_fe_shmem_window(fe, 0, &w0, &w0size), 0);
    assert_int_equal(w0size, REGION0);
    void *w2;
    assert_int_equal(vhu_fe_shmem_window(fe, 2, &w2, &w0size), -ENOENT);

    /* 128 KiB of the memfd, from 64 KiB, at 256 KiB in region 0. */
    int mfd = memfd_of(512 * 1024, 0x11);
    uint8_t *dev = mmap(NULL, 512 * 1024, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    assert_true(dev != MAP_FAILED);
    memset(dev + 64 * 1024, 0xa5, 128 * 1024);
    struct call c = {.b = ds.b,
                     .shmid = 0,
                     .fd = mfd,
                     .fd_offset = 64 * 1024,
                     .offset = 256 * 1024,
                     .len = 128 * 1024};
    assert_int_equal(served(fe, &c), VHU_BREQ_SHMEM_MAP);
    assert_int_equal(c.result, 0);
    uint8_t *win = (uint8_t *)w0 + 256 * 1024;
    assert_int_equal(win[0], 0xa5);
    assert_int_equal(win[128 * 1024 - 1], 0xa5);
    win[5] = 0x3c; /* shared: the device sees the front-end's write */
    assert_int_equal(dev[64 * 1024 + 5], 0x3c);
    dev[64 * 1024 + 6] = 0x4d;
    assert_int_equal(win[6], 0x4d);

    /* Refused by the back-end before anything is sent. */
    const struct {
        uint8_t shmid;
        uint64_t offset, len;
        int err;
    } bad[] = {
        {2, 0, PAGE, -EINVAL},                      /* no region 2 */
        {0, 0, 0, -EINVAL},                         /* empty */
        {0, REGION0 - PAGE, 2 * PAGE, -EINVAL},     /* runs past the end */
        {0, ~0ull - PAGE + 1, 2 * PAGE, -EINVAL},   /* wraps */
        {1, 0, REGION1 + PAGE, -EINVAL},            /* larger than region 1 */
        {0, 256 * 1024 + 64 * 1024, PAGE, -EEXIST}, /* inside the mapping */
        {0, 252 * 1024, 8 * 1024, -EEXIST},         /* overlaps its start */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(
            vhu_backend_shmem_map(ds.b, bad[i].shmid, mfd, 0, bad[i].offset, bad[i].len, true),
            bad[i].err);
    }
    assert_int_equal(vhu_backend_shmem_map(ds.b, 0, -1, 0, 0, PAGE, true), -EINVAL);
    assert_int_equal(vhu_backend_shmem_unmap(ds.b, 0, 256 * 1024, PAGE), -ENOENT);
    assert_int_equal(vhu_backend_shmem_unmap(ds.b, 1, 256 * 1024, 128 * 1024), -EINVAL);
    /* ... and nothing reached the front-end. */
    assert_true(vhu_fe_serve_backend_request(fe, 100) < 0);

    /* Refused by the front-end (an fd offset mmap will not take): the
     * back-end reports it and keeps no mapping. */
    struct call odd = {
        .b = ds.b, .shmid = 1, .fd = mfd, .fd_offset = 100, .offset = 0, .len = PAGE};
    assert_int_equal(served(fe, &odd), -EINVAL);
    assert_int_equal(odd.result, -EREMOTEIO);
    struct call ok1 = {
        .b = ds.b, .shmid = 1, .fd = mfd, .fd_offset = 0, .offset = 0, .len = REGION1};
    assert_int_equal(served(fe, &ok1), VHU_BREQ_SHMEM_MAP);
    assert_int_equal(ok1.result, 0);
    void *w1;
    uint64_t w1size;
    assert_int_equal(vhu_fe_shmem_window(fe, 1, &w1, &w1size), 0);
    assert_int_equal(((uint8_t *)w1)[0], 0x11);

    /* Refused by the front-end's mmap (a write-sealed memfd asked for
     * read-write): reported, and the window's range is still reserved
     * (mincore fails with ENOMEM on an address nothing maps). */
    int sealed = memfd_create("sealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    assert_true(sealed >= 0);
    assert_int_equal(ftruncate(sealed, 2 * PAGE), 0);
    assert_int_equal(fcntl(sealed, F_ADD_SEALS, F_SEAL_WRITE), 0);
    struct call ro = {
        .b = ds.b, .shmid = 0, .fd = sealed, .fd_offset = 0, .offset = 512 * 1024, .len = 2 * PAGE};
    assert_int_equal(served(fe, &ro), -EPERM);
    assert_int_equal(ro.result, -EREMOTEIO);
    unsigned char resident[2];
    assert_int_equal(mincore((uint8_t *)w0 + 512 * 1024, 2 * PAGE, resident), 0);
    close(sealed);

    /* Unmap: the exact mapping; then the range can be mapped again. */
    struct call um = {
        .b = ds.b, .unmap = true, .shmid = 0, .offset = 256 * 1024, .len = 128 * 1024};
    assert_int_equal(served(fe, &um), VHU_BREQ_SHMEM_UNMAP);
    assert_int_equal(um.result, 0);
    memset(dev, 0x77, PAGE);
    struct call again = {
        .b = ds.b, .shmid = 0, .fd = mfd, .fd_offset = 0, .offset = 252 * 1024, .len = 8 * 1024};
    assert_int_equal(served(fe, &again), VHU_BREQ_SHMEM_MAP);
    assert_int_equal(again.result, 0);
    assert_int_equal(((uint8_t *)w0)[252 * 1024], 0x77);

    /* A device reset ends every mapping (the front-end drops them too). */
    assert_int_equal(vhu_fe_reset_device(fe), 0);
    assert_int_equal(vhu_backend_shmem_unmap(ds.b, 0, 252 * 1024, 8 * 1024), -ENOENT);
    assert_int_equal(vhu_backend_shmem_unmap(ds.b, 1, 0, REGION1), -ENOENT);
    /* ...and both sides can map the same ranges again. */
    struct call fresh = {
        .b = ds.b, .shmid = 1, .fd = mfd, .fd_offset = 0, .offset = 0, .len = REGION1};
    assert_int_equal(served(fe, &fresh), VHU_BREQ_SHMEM_MAP);
    assert_int_equal(fresh.result, 0);
    assert_int_equal(((uint8_t *)w1)[0], 0x77);

    munmap(dev, 512 * 1024);
    close(mfd);
    vhu_fe_close(fe);
    devserver_stop(&ds);
    assert_int_equal(count_open_fds(), fds_before);
}

/* Without the channel or without PF_SHMEM nothing is sent; a device with no
 * region does not offer PF_SHMEM, and its GET_SHMEM_CONFIG is refused. */
static void test_not_negotiated(void **state)
{
    (void)state;
    int fds_before = count_open_fds();
    struct devserver ds;
    assert_int_equal(devserver_start(&ds, &shm_ops, NULL), 0);
    struct vhu_fe *fe = devserver_connect(&ds, ~0ull);
    int mfd = memfd_of(PAGE, 0);
    assert_int_equal(vhu_backend_shmem_map(ds.b, 0, mfd, 0, 0, PAGE, true), -ENOTCONN);
    vhu_fe_close(fe);

    fe = NULL;
    assert_int_equal(vhu_fe_connect(&fe, ds.path, 2000), 0);
    assert_int_equal(vhu_fe_negotiate(fe, ~0ull, ~VHU_BIT(VHU_PF_SHMEM), NULL, NULL), 0);
    assert_int_equal(vhu_fe_open_backend_channel(fe), 0);
    assert_int_equal(vhu_backend_shmem_map(ds.b, 0, mfd, 0, 0, PAGE, true), -ENOTSUP);
    struct vhu_shmem_config cfg;
    assert_true(vhu_fe_get_shmem_config(fe, &cfg) < 0);
    vhu_fe_close(fe);
    devserver_stop(&ds);

    struct vhu_device_ops none = shm_ops;
    none.num_shmem_regions = 0;
    assert_int_equal(devserver_start(&ds, &none, NULL), 0);
    fe = devserver_connect(&ds, ~0ull);
    assert_false(vhu_fe_acked_protocol_features(fe) & VHU_BIT(VHU_PF_SHMEM));
    vhu_fe_close(fe);
    devserver_stop(&ds);

    struct vhu_device_ops many = shm_ops;
    many.num_shmem_regions = VHU_SHMEM_MAX_REGIONS + 1;
    struct vhu_backend *b = NULL;
    assert_int_equal(vhu_backend_new(&b, &many, NULL), -EINVAL);
    many.num_shmem_regions = 1;
    many.shmem_sizes = NULL;
    assert_int_equal(vhu_backend_new(&b, &many, NULL), -EINVAL);
    close(mfd);
    assert_int_equal(count_open_fds(), fds_before);
}

int main(void)
{
    log_capture_install();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_map_unmap),
        cmocka_unit_test(test_not_negotiated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
