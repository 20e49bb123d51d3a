/* The test device: a small virtio device used by vhu's tests and by the
 * README's first command until examples/blk exists.
 *
 * Each ring runs on its own thread.  While the ring is enabled, for every
 * chain the driver publishes
 * it takes the head descriptor (no chaining), and
 *  - a device-writable buffer is filled with the byte 0xA5 and completed
 *    with its length,
 *  - a read-only buffer is completed with length 0,
 * then publishes the used entry and signals the call eventfd.  A head or
 * buffer outside the ring or guest memory marks the ring broken (logged
 * once, err eventfd signalled) instead of being touched. */
#ifndef VHU_TESTDEV_H
#define VHU_TESTDEV_H

#include <stdint.h>

#include <vhu/device.h>

#define TESTDEV_MAGIC 0x30554856u /* "VHU0" */
#define TESTDEV_FILL 0xA5

/* Config space (16 bytes): magic and queue count read-only, `scratch`
 * writable by the driver. */
struct testdev_config {
    uint32_t magic;
    uint32_t num_queues;
    uint64_t scratch;
};

struct testdev;

struct testdev *testdev_new(unsigned num_queues);
void testdev_free(struct testdev *d);
const struct vhu_device_ops *testdev_ops(struct testdev *d);

/* Counters the tests read (thread-safe). */
unsigned long testdev_completed(struct testdev *d, unsigned queue);
unsigned long testdev_resets(struct testdev *d);
unsigned long testdev_starts(struct testdev *d);
int testdev_running(struct testdev *d); /* rings whose thread runs now */

#endif
