/* SPDX-License-Identifier: BSD-3-Clause */
/** @file
 * vhu/vring.h - split and packed virtqueues for devices, and ring workers.
 *
 * A device gets a started ring as a struct vhu_vring (see vhu/device.h).
 * This layer turns it into requests:
 *
 *   vhu_vring_io_new(&io, q)          in start_vring: bind to the ring
 *   vhu_vring_io_pop(io, &elem)       take the next descriptor chain, as host
 *                                     iovecs (driver-readable first, then
 *                                     device-writable)
 *   vhu_vring_io_push(io, &elem, len) complete it: one used-ring entry
 *   vhu_vring_io_flush(io)            publish the used index and signal the
 *                                     call eventfd if the driver wants it
 *                                     (VIRTIO_F_EVENT_IDX / NO_INTERRUPT)
 *   vhu_vring_io_free(io)             in stop_vring
 *
 * or lets a worker thread do the waiting: vhu_vring_worker_start() in
 * start_vring runs a libev loop that calls the device's function whenever
 * the driver kicks; vhu_vring_worker_stop() in stop_vring returns once that
 * thread has stopped touching the ring.
 *
 * Migration support comes with it: what the layer writes (used ring,
 * avail_event) and the buffers of every pushed chain are marked in the
 * dirty log while the front-end logs (a device using only this layer may
 * offer VHU_F_LOG_ALL), and chains are recorded in the inflight region
 * between pop and flush (so it may set tracks_inflight).
 *
 * Guest memory is hostile.  Everything read from the rings is checked where
 * it is used: heads and `next` fields against the ring (or indirect table)
 * size, chain length against the ring size (so a loop ends), indirect tables
 * (needs VIRTIO_F_RING_INDIRECT_DESC; length a non-zero multiple of 16, at
 * most the ring size entries, not nested, not combined with NEXT), every
 * buffer translated with its whole range (zero-length buffers refused, as
 * QEMU does), readable buffers only before
 * writable ones, the avail index never more than the ring size ahead.  A
 * violation breaks the ring: one error line is logged, the err eventfd is
 * signalled, and the vhu_vring_io neither reads nor writes the ring again (pop,
 * push and flush fail with -EIO) until the device binds a new one at the
 * next start.  Descriptors are copied out of guest memory once and only the
 * copy is used, so a driver rewriting them concurrently gains nothing.
 *
 * Packed rings (VIRTIO_F_RING_PACKED acked; the device chooses by offering
 * it) are served behind the same calls: `head` is then the buffer ID (from
 * the chain's last descriptor, or the indirect descriptor), below the ring
 * size and not held by the device already; a chain is no longer than the
 * ring and every descriptor after its first must be marked available for
 * the same lap; an indirect table (at most VHU_VRING_MAX_SEGS entries) is
 * a buffer's only ring descriptor and holds no indirect descriptor; a
 * descriptor with AVAIL and USED both equal to the device's wrap counter,
 * or whose flags change between the read that found it and its copy,
 * breaks the ring.  Used descriptors pushed between two flushes are handed
 * to the driver together (the first one's flags written last); flush
 * follows the driver's event suppression (ENABLE, DISABLE, or with
 * EVENT_IDX a descriptor offset and wrap counter), and enable_kick asks
 * for a kick at the next descriptor (with EVENT_IDX) or for every one.
 * vhu_vring_last_avail() holds the avail position (bits 0-14) and wrap
 * counter (bit 15).  Not yet for packed rings: inflight tracking (the
 * ring runs untracked, with one error line, when a region was given).
 *
 * Threads: one vhu_vring_io is used by one thread at a time. */
#ifndef VHU_VRING_H
#define VHU_VRING_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include <vhu/common.h>
#include <vhu/device.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Most buffers one chain may have (like Linux's UIO_MAXIOV and QEMU's
 * VIRTQUEUE_MAX_SIZE); a longer chain breaks the ring. */
#define VHU_VRING_MAX_SEGS 1024u

/** One descriptor chain taken from the avail ring (packed: head is the
 * buffer ID).  iov[0, n_out) are the
 * driver's buffers the device reads (driver -> device), iov[n_out, n_out +
 * n_in) those it writes.  Buffers point into the mapped guest memory and
 * stay valid until the ring stops; their contents may change under the
 * device at any time (the driver owns them), so copy what must be checked
 * before checking it.  About 24 KiB: allocate it (one per worker), not on
 * a small stack. */
struct vhu_vring_elem {
    uint16_t head;      /**< the chain's first descriptor index */
    unsigned n_out;     /**< buffers the device reads: iov[0, n_out) */
    unsigned n_in;      /**< buffers the device writes: iov[n_out, n_out + n_in) */
    uint64_t out_bytes; /**< sum of iov[0, n_out) lengths */
    uint64_t in_bytes;  /**< sum of iov[n_out, n_out + n_in) lengths */
    struct iovec iov[VHU_VRING_MAX_SEGS]; /**< the buffers, in the back-end's mapping */
    uint64_t gpa[VHU_VRING_MAX_SEGS];     /**< guest-physical address of each iov */
};

struct vhu_vring_io;

/** Bind to a started ring (between start_vring and stop_vring): reads the
 * used index the ring holds now and the features it started with.
 * -ENOMEM, or -EINVAL when q has no ring mapped. */
VHU_API int vhu_vring_io_new(struct vhu_vring_io **out, struct vhu_vring *q);
/** Free io (NULL is ignored); the ring in guest memory is left as it is. */
VHU_API void vhu_vring_io_free(struct vhu_vring_io *io);
/** The ring io was bound to. */
VHU_API struct vhu_vring *vhu_vring_io_vring(const struct vhu_vring_io *io);

/** Take the next chain: 1 with *e filled, 0 when the ring is empty (or
 * disabled, or its worker is being stopped), -EIO when the ring is (or has
 * just become) broken.  Chains a previous back-end left in flight come first (inflight
 * tracking, when the front-end gave an inflight region), oldest first; then
 * the avail ring's, advancing the queue's last_avail and recording each in
 * the inflight region.  The chain is not completed until pushed.  A head
 * the driver publishes while the device still holds it breaks the ring. */
VHU_API int vhu_vring_io_pop(struct vhu_vring_io *io, struct vhu_vring_elem *e);
/** Complete a popped chain (in any order): writes the used entry {e->head,
 * written}, written = bytes the device wrote into its writable buffers.
 * While the front-end logs dirty pages (migration), every writable buffer
 * of e and the used entry are marked, so call this after the device's last
 * write into the buffers.  Not visible to the driver until
 * vhu_vring_io_flush() (which a push of a whole ring's worth triggers by
 * itself).  -EINVAL when nothing is outstanding or e is not a chain of
 * this ring that is popped and not yet pushed (a second push of one chain
 * would complete the driver's next request on that head), -EIO on a
 * broken ring. */
VHU_API int vhu_vring_io_push(struct vhu_vring_io *io, const struct vhu_vring_elem *e,
                              uint32_t written);
/** Publish the pushed entries (release barrier: the entries and the data
 * written into buffers are visible before the index) and signal the call
 * eventfd unless the driver suppressed it (used_event with EVENT_IDX,
 * VRING_AVAIL_F_NO_INTERRUPT without).  Returns 1 if it signalled, 0 if not,
 * -EIO on a broken ring. */
VHU_API int vhu_vring_io_flush(struct vhu_vring_io *io);
/** Chains popped and not pushed yet. */
VHU_API unsigned vhu_vring_io_inflight(const struct vhu_vring_io *io);

/** Before waiting for a kick: ask the driver for one at its next buffer
 * (with EVENT_IDX, avail_event = the next index to take), then look again,
 * after a full barrier, so that a buffer published meanwhile is not missed.
 * True when there are buffers to take now (do not wait); false when the ring
 * is empty or broken. */
VHU_API bool vhu_vring_io_enable_kick(struct vhu_vring_io *io);

/** Break the ring from the device's side, for a request the device cannot
 * make sense of (a virtio-blk request without header or status byte):
 * logs "ring N broken: WHY" once, signals the err eventfd, stops the ring. */
VHU_API void vhu_vring_io_set_broken(struct vhu_vring_io *io, const char *why);
/** True once the ring is broken (by a hostile chain or by
 * vhu_vring_io_set_broken()): pop, push and flush then return -EIO. */
VHU_API bool vhu_vring_io_broken(const struct vhu_vring_io *io);

/* --- Ring workers --- */

/** Called on the worker thread when the driver kicked (and once when the
 * worker starts, for chains published before), only while the ring is
 * enabled and not broken.  It should pop and complete what it can; the
 * worker flushes after it returns and calls it again while
 * vhu_vring_io_enable_kick() reports more work. */
typedef void (*vhu_vring_fn)(struct vhu_vring_io *io, void *arg);

struct vhu_vring_worker;

/** Start a thread with its own libev loop serving q: the kick eventfd as an
 * ev_io, an ev_async to stop.  Call from start_vring.  0, or -ENOMEM /
 * -errno (nothing started). */
VHU_API int vhu_vring_worker_start(struct vhu_vring_worker **out, struct vhu_vring *q,
                                   vhu_vring_fn fn, void *arg);
/** Stop the loop, join the thread and free the worker (NULL: nothing).
 * Returns once fn has returned for the last time, so a device's stop_vring
 * may call it and then return: every chain fn popped is either pushed and
 * flushed by then, or still recorded in the inflight region (the stop logs
 * how many, as without a region they are lost). */
VHU_API void vhu_vring_worker_stop(struct vhu_vring_worker *w);

#ifdef __cplusplus
}
#endif
#endif
