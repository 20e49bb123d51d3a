/* SPDX-License-Identifier: BSD-3-Clause */
/* See vqdev.h. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "vqdev.h"

static uint64_t vq_features(void *dev)
{
    struct vqdev *d = dev;
    return d->features;
}

static void echo(struct vhu_vring_io *vq, void *arg)
{
    struct vqdev *d = arg;
    struct vhu_vring_elem *e = malloc(sizeof(*e));
    assert_non_null(e);
    while (vhu_vring_io_pop(vq, e) == 1) {
        for (unsigned i = e->n_out; i < e->n_out + e->n_in; i++)
            memset(e->iov[i].iov_base, VQDEV_ECHO_FILL, e->iov[i].iov_len);
        int us = atomic_load(&d->echo_delay_us);
        if (us)
            usleep((useconds_t)us);
        /* Counted before the driver can see it completed: a test that
         * saw the used index move finds the count already there. */
        atomic_fetch_add(&d->served, 1);
        assert_int_equal(vhu_vring_io_push(vq, e, (uint32_t)e->in_bytes), 0);
        if (d->flush_each)
            vhu_vring_io_flush(vq);
    }
    free(e);
}

static int vq_start(void *dev, struct vhu_vring *q)
{
    struct vqdev *d = dev;
    int r;
    if (d->worker_mode) {
        r = vhu_vring_worker_start(&d->w, q, echo, d);
    } else {
        struct vhu_vring_io *vq;
        r = vhu_vring_io_new(&vq, q);
        if (r == 0)
            atomic_store(&d->vq, vq);
    }
    if (r == 0)
        atomic_fetch_add(&d->starts, 1);
    return r;
}

static void vq_stop(void *dev, struct vhu_vring *q)
{
    (void)q;
    struct vqdev *d = dev;
    if (d->worker_mode) {
        vhu_vring_worker_stop(d->w);
        d->w = NULL;
    } else {
        vhu_vring_io_free(atomic_exchange(&d->vq, NULL));
    }
}

void vqdev_init(struct vqdev *d, const char *name, uint64_t features, bool worker_mode)
{
    memset(d, 0, sizeof(*d));
    d->ops = (struct vhu_device_ops){.size = sizeof(d->ops),
                                     .name = name,
                                     .num_queues = 1,
                                     .max_queue_size = 1024,
                                     .features = vq_features,
                                     .start_vring = vq_start,
                                     .stop_vring = vq_stop,
                                     .tracks_inflight = true};
    d->features = features;
    d->worker_mode = worker_mode;
}

struct vhu_vring_io *vqdev_vq(struct vqdev *d)
{
    struct vhu_vring_io *vq = atomic_load(&d->vq);
    assert_non_null(vq);
    return vq;
}

uint64_t vq_read_eventfd(int fd)
{
    uint64_t v = 0;
    if (read(fd, &v, sizeof(v)) != sizeof(v))
        return 0;
    return v;
}

void vq_assert_seg(uint8_t *drv, const struct vhu_vring_elem *e, unsigned i, size_t len)
{
    assert_int_equal(e->iov[i].iov_len, len);
    uint8_t *dev = e->iov[i].iov_base;
    drv[0] = (uint8_t)(0x10 + i);
    assert_int_equal(dev[0], 0x10 + i);
    drv[len - 1] = (uint8_t)(0x20 + i);
    assert_int_equal(dev[len - 1], 0x20 + i);
}

int vq_set_log_base(struct vhu_fe *fe, int fd)
{
    struct vhu_log l = {.mmap_size = VQ_LOG_BYTES, .mmap_offset = 0};
    uint64_t st = 0;
    int r = vhu_fe_call(fe, VHU_REQ_SET_LOG_BASE, VHU_FLAG_VERSION, &l, sizeof(l), &fd, 1, &st,
                        sizeof(st), NULL, NULL);
    return r < 0 ? r : r == 8 ? (int)st : -EPROTO;
}

uint8_t *vq_log_start(struct vhu_fe *fe, uint64_t features, int *lfd)
{
    *lfd = memfd_create("log", MFD_CLOEXEC);
    assert_true(*lfd >= 0);
    assert_int_equal(ftruncate(*lfd, VQ_LOG_BYTES), 0);
    uint8_t *log = mmap(NULL, VQ_LOG_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, *lfd, 0);
    assert_true(log != MAP_FAILED);
    assert_int_equal(vq_set_log_base(fe, *lfd), 0);
    assert_int_equal(vhu_fe_set_features(fe, features | VHU_BIT(VHU_F_LOG_ALL)), 0);
    return log;
}

bool vq_log_bit(const uint8_t *log, uint64_t gpa)
{
    uint64_t page = gpa / 4096;
    return __atomic_load_n(&log[page / 8], __ATOMIC_ACQUIRE) & (1u << (page % 8));
}

unsigned vq_log_bits(const uint8_t *log)
{
    unsigned n = 0;
    for (size_t i = 0; i < VQ_LOG_BYTES; i++)
        n += (unsigned)__builtin_popcount(log[i]);
    return n;
}

void vq_assert_broken(struct vhu_vring_io *vq, struct vhu_vring_elem *e, const char *name,
                      const char *log, int err_fd)
{
    int r = vhu_vring_io_pop(vq, e);
    if (r != -EIO || log_count("ring 0 broken") != 1 || log_count(log) != 1) {
        print_error("case '%s': pop gave %d; log lines:\n", name, r);
        log_dump();
        fail();
    }
    assert_true(vhu_vring_io_broken(vq));
    assert_int_equal(vq_read_eventfd(err_fd), 1);
    /* Broken stays broken, quietly, and nothing more is written. */
    assert_int_equal(vhu_vring_io_pop(vq, e), -EIO);
    assert_int_equal(vhu_vring_io_push(vq, e, 1), -EIO);
    assert_int_equal(vhu_vring_io_flush(vq), -EIO);
    assert_false(vhu_vring_io_enable_kick(vq));
    assert_int_equal(log_count("ring 0 broken"), 1);
    assert_int_equal(vq_read_eventfd(err_fd), 0);
}
