/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu-blk: a virtio-blk device (virtio 1.x, 5.2) on the virtqueue layer.
 *
 * The disk is an image file (or block device) read and written with
 * preadv/pwritev (with O_DIRECT when asked and aligned), or a buffer in
 * this process's memory (--ram).  Each queue runs on its own ring worker
 * (vhu/vring.h), with two helper threads for large reads and writes (up to
 * 64 requests in flight per queue, each completed when done) or, with
 * --direct, an io_uring through which every read and write goes to the
 * kernel asynchronously; the worker's function returns only when every
 * request it took is complete, so a stopped ring never has a request half
 * done.
 *
 * Requests: IN, OUT, FLUSH, GET_ID, DISCARD, WRITE_ZEROES.  A request whose
 * range runs past the disk's end, whose data length is not a multiple of
 * 512, or that writes a read-only disk completes with VIRTIO_BLK_S_IOERR
 * and touches nothing; an unknown type gets VIRTIO_BLK_S_UNSUPP.  A chain
 * without a 16-byte header or a writable status byte cannot be answered:
 * it breaks the ring (vhu_vring_io_set_broken).
 *
 * Device state (SET_DEVICE_STATE_FD / CHECK_DEVICE_STATE), for every disk:
 * section "config", the disk as the driver sees it (capacity, block size,
 * read-only, writeback, queue count, serial), each of which must match
 * the loading back-end's own; with a RAM disk also section "disk", the
 * contents (the size, which must match, and the bytes).  An image's data
 * is not device state: it stays on the shared storage. */
#ifndef VHU_EXAMPLES_BLK_H
#define VHU_EXAMPLES_BLK_H

#include <stdbool.h>
#include <stdint.h>

#include <vhu/vhu.h>

#define BLK_SECTOR 512u
#define BLK_MAX_QUEUES 64u
/* Data segments per request (config seg_max): a request's header and
 * status descriptors plus these fit QEMU's default 128-entry ring. */
#define BLK_SEG_MAX 126u
/* Per DISCARD / WRITE_ZEROES segment (config max_*_sectors): 1 GiB. */
#define BLK_MAX_ZERO_SECTORS (1u << 21)
#define BLK_ID "vhu-blk"

struct blk_options {
    const char *image; /* image file or block device; NULL with ram_size */
    uint64_t ram_size; /* > 0: the disk lives in memory, this many bytes
                         * (rounded down to a sector), initialised from the
                         * image when there is one, which is then never
                         * written */
    unsigned queues;   /* 1..BLK_MAX_QUEUES */
    bool read_only;
    bool direct;           /* the image also opened with O_DIRECT: reads and
                         * writes aligned as the file wants bypass the host
                         * page cache (QEMU's cache.direct=on); others, and
                         * flushes, go through it */
    const char *serial;    /* what GET_ID answers: 1..VIRTIO_BLK_ID_BYTES (20)
                         * bytes of printable ASCII; NULL: BLK_ID */
    bool snapshot_reserve; /* the RAM disk's copy area for live snapshots
                            * made at start and kept (--snapshot-reserve) */
    bool fork_snapshots;   /* live snapshots by fork() (the library's way)
                          * instead of the device's copy-before-write of
                          * its RAM disk (--fork-snapshots; for comparison) */
    bool packed;           /* offer RING_PACKED (not by default; --packed, marked
                         * experimental: inflight tracking and device state
                         * do not support packed rings yet, issue #13) */
};

struct blk;

/* Open the disk and build the device.  0 or a negative errno (and one
 * line on stderr saying why). */
int blk_new(struct blk **out, const struct blk_options *o);
void blk_free(struct blk *d);
const struct vhu_device_ops *blk_ops(struct blk *d);
/* Disk size in bytes (a multiple of BLK_SECTOR). */
uint64_t blk_size(const struct blk *d);
/* The image grew or shrank: take its new size (rounded down to a sector)
 * as the disk's, in config space too.  Requests already past the new end
 * fail with VIRTIO_BLK_S_IOERR.  Stores the size in *size; returns 1 if it
 * changed, 0 if not, -ENOTSUP for an in-memory disk, -EINVAL (size kept)
 * if the image has no whole sector, or another negative errno.  Safe while
 * the rings run; the caller tells the front-end
 * (vhu_backend_send_config_change()). */
int blk_resize(struct blk *d, uint64_t *size);
/* The in-memory disk (--ram), or NULL. */
const uint8_t *blk_ram(const struct blk *d);
/* Serve what ring vq (queue q, not started through the library) has
 * available, on the calling thread, as the ring's worker would: inline,
 * or through io_uring with --direct.  For tests and fuzzing. */
void blk_serve(struct blk *d, unsigned q, struct vhu_vring_io *vq);
/* Does running queue q do its reads and writes through io_uring (with
 * --direct, when the kernel gives one)? */
bool blk_async(const struct blk *d, unsigned q);
/* Requests completed on queue q (thread-safe). */
unsigned long blk_completed(struct blk *d, unsigned q);

#endif
