/* SPDX-License-Identifier: BSD-3-Clause */
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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vhu/device.h>
#include <vhu/state.h>

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

/* Device state (saved and loaded through vhu/state.h), in sections:
 *   "config" v2 (min 1): scratch (u64), label (string, added in v2)
 *   "blob"   v1: length, then `data`, a blob of that many bytes
 *   "stats"  v1, optional: a map of completed-request counters per queue
 * Tests reshape what a device declares to stand for older or newer
 * builds. */
struct testdev_state_opts {
    unsigned config_version; /* 1 or 2 (default 2) */
    bool stats;              /* declare "stats" (default true) */
    bool extra;              /* declare a mandatory "extra" section, v1 (default false) */
    bool stats_min_newer;    /* write "stats" with min_version 9 (no reader can) */
};
void testdev_set_state_opts(struct testdev *d, const struct testdev_state_opts *o);
/* Rename the device type (what a snapshot header records). */
void testdev_set_name(struct testdev *d, const char *name);
/* Replace the device's blob (copied) / look at it. */
int testdev_set_blob(struct testdev *d, const void *p, size_t n);
void testdev_blob(struct testdev *d, const uint8_t **p, size_t *n);
void testdev_set_label(struct testdev *d, const char *label);
const char *testdev_label(struct testdev *d);
uint64_t testdev_scratch(struct testdev *d);
/* Fail the next save of `section` (NULL: none) with -EIO. */
void testdev_fail_save(struct testdev *d, const char *section);
/* Loads committed and discarded so far. */
unsigned long testdev_commits(struct testdev *d);
unsigned long testdev_discards(struct testdev *d);
/* Live snapshots ended (ops.snapshot_done calls), succeeded or not. */
unsigned long testdev_snapshots_ended(struct testdev *d);
/* Keep live snapshots in the device (ops.snapshot_prepare and
 * ops.snapshot_begin) instead of the library's fork(): call before the
 * back-end is made from testdev_ops().  testdev keeps nothing at the
 * instant (its sections are read under its lock as the library's thread
 * writes them): for tests of the library's side.  Each prepare returns
 * what testdev_set_prepare_result last set (0 at first). */
void testdev_keep_snapshots(struct testdev *d);
void testdev_set_prepare_result(struct testdev *d, int result);
/* ops.snapshot_begin calls so far. */
unsigned long testdev_snapshots_begun(struct testdev *d);

/* Take requests but never complete them (a back-end about to die with
 * requests in flight); how many were taken that way. */
void testdev_hold(struct testdev *d, bool hold);
unsigned long testdev_held(struct testdev *d);

/* Counters the tests read (thread-safe). */
unsigned long testdev_completed(struct testdev *d, unsigned queue);
unsigned long testdev_resets(struct testdev *d);
unsigned long testdev_starts(struct testdev *d);
int testdev_running(struct testdev *d); /* rings whose thread runs now */

#endif
