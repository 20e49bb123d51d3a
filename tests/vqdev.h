/* SPDX-License-Identifier: BSD-3-Clause */
/* The small device test_vring and test_vring_packed serve through a real
 * back-end, and what both do around it: in "manual" mode the test takes
 * chains itself through the vhu_vring_io the device made when the ring
 * started; in "worker" mode a ring worker fills every writable buffer
 * with VQDEV_ECHO_FILL and completes it with its size.  Also the dirty-log
 * set-up and the checks that a hostile chain broke the ring. */
#ifndef VHU_TEST_VQDEV_H
#define VHU_TEST_VQDEV_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vhu/frontend.h>
#include <vhu/vhu.h>

#define VQDEV_ECHO_FILL 0x5a

struct vqdev {
    struct vhu_device_ops ops;
    uint64_t features;
    bool worker_mode;
    bool flush_each;                   /* worker mode: flush after every push */
    atomic_int echo_delay_us;          /* worker mode: per request */
    _Atomic(struct vhu_vring_io *) vq; /* manual mode, while started */
    struct vhu_vring_worker *w;
    atomic_uint starts;
    atomic_ulong served; /* worker mode: requests completed */
};

/* One queue of up to 1024 entries offering `features`, tracking inflight. */
void vqdev_init(struct vqdev *d, const char *name, uint64_t features, bool worker_mode);
/* The started ring of manual mode (cmocka-asserts there is one). */
struct vhu_vring_io *vqdev_vq(struct vqdev *d);

/* An eventfd's counter, 0 when it was not signalled (the fd is
 * non-blocking). */
uint64_t vq_read_eventfd(int fd);

/* The back-end's bytes of a popped element's segment i are the driver's
 * bytes at drv (len of them): written on one side, seen on the other. */
void vq_assert_seg(uint8_t *drv, const struct vhu_vring_elem *e, unsigned i, size_t len);

/* The dirty log: one bit per 4 KiB page, 128 MiB of guest memory. */
#define VQ_LOG_BYTES 4096u
/* SET_LOG_BASE with fd: the back-end's status (0) or a negative error. */
int vq_set_log_base(struct vhu_fe *fe, int fd);
/* A log in a memfd (*lfd), sent with SET_LOG_BASE, and LOG_ALL acked on
 * top of `features`; the caller then sets the ring's LOG flag.  Returns
 * the log's mapping (VQ_LOG_BYTES). */
uint8_t *vq_log_start(struct vhu_fe *fe, uint64_t features, int *lfd);
/* Whether the page of gpa is marked (read as the back-end writes it). */
bool vq_log_bit(const uint8_t *log, uint64_t gpa);
/* Bits set in the log. */
unsigned vq_log_bits(const uint8_t *log);

/* After a hostile chain: pop fails with -EIO and logs "ring 0 broken" and
 * `log` once each (else the case `name` fails with the log), the ring says
 * it is broken, err_fd was signalled once, and pop, push and flush are
 * refused from then on. */
void vq_assert_broken(struct vhu_vring_io *vq, struct vhu_vring_elem *e, const char *name,
                      const char *log, int err_fd);

#endif
