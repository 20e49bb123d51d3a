/* SPDX-License-Identifier: BSD-3-Clause */
/** @file
 * vhu/device.h - what a device implements, and what it gets from the
 * library while its rings run.
 *
 * A device is a struct vhu_device_ops plus an opaque pointer handed back to
 * every callback.  The library runs the vhost-user protocol; the device only
 * sees well-formed, validated requests, in order, on the back-end's thread.
 *
 * Ring life cycle, as seen by the device:
 *   start_vring(q)  the ring's memory, size, base and kick fd are set and
 *                   checked; the device may process it from any thread
 *                   until stop_vring returns.
 *   stop_vring(q)   must return only once the device no longer reads or
 *                   writes the ring or buffers it took from it, with
 *                   vhu_vring_last_avail() naming the next avail entry it
 *                   would have taken.  It cannot fail.
 * The library may stop and restart a running ring on its own (for example
 * to swap the memory table under it): devices must not assume that
 * start/stop only follow the front-end's kick/GET_VRING_BASE. */
#ifndef VHU_DEVICE_H
#define VHU_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vhu/common.h>
#include <vhu/protocol.h>
/* struct vhu_state_section in full: a device fills an array of them, so its
 * layout is ABI and must be seen wherever vhu_device_ops is (docs/abi.md). */
#include <vhu/state.h>

#ifdef __cplusplus
extern "C" {
#endif

struct vhu_vring;

/** The device's description.  Its first field, size, is sizeof(struct
 * vhu_device_ops) as the device was compiled: the struct grows at its end in
 * later versions (docs/abi.md), and the library reads only the fields that
 * lie wholly within size, taking the rest as 0 / NULL, which is every
 * optional field's default.  size 0, or a size that stops before
 * stop_vring, is refused (-EINVAL); a size larger than this version's struct
 * is accepted only when the bytes beyond it are all zero (-E2BIG otherwise:
 * the device sets a field this library does not have). */
struct vhu_device_ops {
    /** sizeof(struct vhu_device_ops).  Required. */
    size_t size;
    /** Short device name used in log lines ("blk", "testdev"). */
    const char *name;
    /** Number of queues the device has (GET_QUEUE_NUM); 1..256. */
    unsigned num_queues;
    /** Largest ring size accepted; a power of two <= 32768. 0 means 32768. */
    unsigned max_queue_size;
    /** Size of the virtio config space in bytes (<= 256).  0 means the
     * device has none and PROTOCOL_F_CONFIG is not offered. */
    unsigned config_size;

    /** Virtio feature bits offered by the device (device-specific bits plus
     * transport bits such as VERSION_1 and EVENT_IDX).  The library adds the
     * vhost-user bits it implements (PROTOCOL_FEATURES). Required. */
    uint64_t (*features)(void *dev);
    /** Protocol features the device wants offered; the library offers the
     * intersection with what it implements.  NULL: all it implements. */
    uint64_t (*protocol_features)(void *dev);
    /** The front-end acked `features` (a subset of what was offered).
     * Return <0 to refuse them.  Optional. */
    int (*ack_features)(void *dev, uint64_t features);

    /** @{ */
    /** Read/write config space.  The library has checked that
     * [offset, offset+len) lies within config_size.  flags is
     * VHU_CONFIG_FLAG_WRITABLE (driver write) or VHU_CONFIG_FLAG_MIGRATION.
     * Return <0 to refuse. Required when config_size > 0 (set_config may be
     * NULL: writes are then refused). */
    int (*get_config)(void *dev, uint32_t offset, void *buf, uint32_t len);
    int (*set_config)(void *dev, uint32_t offset, const void *buf, uint32_t len, uint32_t flags);
    /** @} */

    /** Start processing ring q (see the life cycle above).  Return <0 to
     * refuse; the ring then stays stopped.  Required. */
    int (*start_vring)(void *dev, struct vhu_vring *q);
    /** Stop processing q; returns once the device no longer touches it. */
    void (*stop_vring)(void *dev, struct vhu_vring *q);
    /** Every ring is now stopped: the device must not write guest memory,
     * signal the front-end or use the back-end channel until a ring starts
     * again.  Optional. */
    void (*suspend)(void *dev);
    /** Back to the state after creation: RESET_DEVICE, RESET_OWNER, or the
     * front-end disconnected.  Rings are already stopped.  Optional. */
    void (*reset)(void *dev);
    /** SET_STATUS with the virtio status byte.  Optional. */
    int (*set_status)(void *dev, uint8_t status);

    /** The device records what it takes from and completes into its rings
     * with the vhu_vring_inflight_* calls (the vring helpers do), so
     * PROTOCOL_F_INFLIGHT_SHMFD is offered and a restarted back-end
     * resubmits what a crashed one left in flight. */
    bool tracks_inflight;

    /** @{ */
    /** Device-state transfer (SET_DEVICE_STATE_FD; see vhu/state.h).  Offered
     * to the front-end only when save_section and load_section are set.
     * All run on the library's transfer thread while every ring is stopped
     * and the front-end cannot change the device.
     *
     * save_section also runs in a live snapshot's child process (the
     * control socket's `snapshot`, docs/live-snapshots.md): a fork() of the
     * back-end taken with every ring stopped, single-threaded, while the
     * parent and the guest go on.  There it must not read guest memory (it
     * is shared with the running guest, not a copy), must not take a lock
     * another of the device's threads may hold, nor use any fd but the
     * writer's; it may read the device's own memory (a private copy).  With
     * snapshot_begin it runs on a library thread instead (see there). */
    const struct vhu_state_section *sections;
    unsigned num_sections;
    /** @} */
    /** Write one section's fields. */
    int (*save_section)(void *dev, const struct vhu_state_section *s, struct vhu_state_writer *w);
    /** Start a load: allocate what the sections are read into. Optional. */
    int (*load_begin)(void *dev, void **staged);
    /** Read one section written at `version` (older than s->version: the
     * upgrade path; newer: only fields this version knows are read) into
     * the staged state, never into the live device. */
    int (*load_section)(void *dev, void *staged, const struct vhu_state_section *s,
                        uint32_t version, struct vhu_state_reader *r);
    /** Every section was read and the stream verified: last checks of the
     * staged state as a whole.  Optional. */
    int (*load_end)(void *dev, void *staged);
    /** Make the staged state live (CHECK_DEVICE_STATE succeeded).  Cannot
     * fail. */
    void (*commit)(void *dev, void *staged);
    /** Drop a staged state (the load failed or was abandoned). */
    void (*discard)(void *dev, void *staged);

    /** @{ */
    /** VIRTIO shared memory regions (PROTOCOL_F_SHMEM, GET_SHMEM_CONFIG):
     * how many (0..VHU_SHMEM_MAX_REGIONS) and each one's size in bytes,
     * indexed by shmid.  The device fills them with
     * vhu_backend_shmem_map() (vhu/backend.h). */
    unsigned num_shmem_regions;
    const uint64_t *shmem_sizes;
    /** @} */

    /** A live snapshot (control socket, docs/live-snapshots.md) has ended,
     * well or not: its child, a copy-on-write image of this process, is
     * gone, or (with snapshot_begin) the library's thread has returned from
     * save_section.  Called on the back-end's thread; must not block long.
     * A device that keeps large memory in transparent huge pages may merge
     * them again from here (copy-on-write split those written meanwhile,
     * which makes the next fork slower).  Optional. */
    void (*snapshot_done)(void *dev);

    /** A live snapshot the device keeps itself, without fork()
     * (docs/live-snapshots.md).  Called on the back-end's thread with every
     * ring stopped, at the snapshot's instant: the device keeps what
     * save_section will write as it is now (copies small state, arms
     * copy-before-write of large state) and returns 0, or a negative errno
     * to refuse the snapshot.  save_section then runs on a library thread
     * while the rings run again and must write the state of that instant;
     * snapshot_done follows once it has returned, whatever the outcome.
     * Between the two, save_section is called for this snapshot only: a
     * SET_DEVICE_STATE_FD transfer arriving meanwhile cancels the snapshot
     * (and waits for snapshot_done) before it starts.  Without this op the
     * library forks (see save_section).  Optional. */
    int (*snapshot_begin)(void *dev);

    /** Before a snapshot the device keeps itself (snapshot_begin), while
     * the rings still run: get ready for the instant, e.g. allocate and
     * fault in the memory copy-before-write will copy into, so that the
     * guest's writes right after the instant do not each wait for a page
     * fault.  Called on the library's snapshot thread, which then asks the
     * back-end's thread for the pause and snapshot_begin; it may take a
     * while (only the snapshot waits).  It must not touch what the rings
     * use.  Returns 0, or a negative errno to refuse the snapshot.
     * snapshot_done follows once, whatever it returned and whether or not
     * snapshot_begin was reached.  Optional. */
    int (*snapshot_prepare)(void *dev);
};

/* --- What a running ring offers the device.  Valid between start_vring and
 * the return of stop_vring. --- */

/** The ring's index (0 for the first queue). */
VHU_API unsigned vhu_vring_index(const struct vhu_vring *q);
/** Ring size (number of descriptors). */
VHU_API unsigned vhu_vring_size(const struct vhu_vring *q);
/** Virtio features acked when the ring started. */
VHU_API uint64_t vhu_vring_features(const struct vhu_vring *q);
/** The kick eventfd the device waits on. */
VHU_API int vhu_vring_kick_fd(const struct vhu_vring *q);
/** @{ */
/** Host pointers to the descriptor table, avail ring and used ring.  The
 * library has checked that each lies entirely inside one mapped region and
 * is suitably aligned; their contents are guest-controlled. */
VHU_API void *vhu_vring_desc(const struct vhu_vring *q);
VHU_API void *vhu_vring_avail(const struct vhu_vring *q);
VHU_API void *vhu_vring_used(const struct vhu_vring *q);
/** @} */
/** @{ */
/** Next avail-ring index the device will take (free-running 16 bits).  Set
 * from SET_VRING_BASE; the device advances it; GET_VRING_BASE returns it. */
VHU_API uint16_t vhu_vring_last_avail(const struct vhu_vring *q);
VHU_API void vhu_vring_set_last_avail(struct vhu_vring *q, uint16_t idx);
/** @} */
/** SET_VRING_ENABLE state.  May change while the ring runs.  What a
 * started but disabled ring does is the device's choice (net drops TX, a
 * block device leaves requests in the ring); when a running ring becomes
 * enabled the library writes its kick eventfd, so the device wakes up. */
VHU_API bool vhu_vring_enabled(const struct vhu_vring *q);
/** Signal the guest through the call eventfd (if the front-end gave one). */
VHU_API int vhu_vring_notify(struct vhu_vring *q);
/** Signal a ring error through the err eventfd (if the front-end gave one). */
VHU_API int vhu_vring_signal_error(struct vhu_vring *q);
/** @{ */
/** Dirty-page logging for live migration.  A device that offers
 * VHU_F_LOG_ALL promises to call these after every write into guest memory
 * (the vring helpers do it for what they write): log_write for a buffer at
 * a guest-physical address, log_used for bytes of the used ring at an
 * offset from its start.  Both are no-ops unless the front-end turned
 * logging on; vhu_vring_logging() says whether it is on. */
VHU_API void vhu_vring_log_write(struct vhu_vring *q, uint64_t gpa, uint64_t len);
VHU_API void vhu_vring_log_used(struct vhu_vring *q, uint64_t offset, uint64_t len);
VHU_API bool vhu_vring_logging(const struct vhu_vring *q);
/** @} */
/** @{ */
/** Inflight tracking (devices with tracks_inflight).  Before taking new
 * requests from the avail ring, take what a previous back-end left in
 * flight: inflight_resubmit gives those heads, oldest first, until it
 * returns false.  inflight_get when a request is taken from the avail ring;
 * put_begin before its used element is published, put_end after the used
 * index that covers it was written (with that index).  No-ops when the
 * front-end gave no inflight region. */
VHU_API bool vhu_vring_inflight_resubmit(struct vhu_vring *q, uint16_t *head);
VHU_API void vhu_vring_inflight_get(struct vhu_vring *q, uint16_t head);
VHU_API void vhu_vring_inflight_put_begin(struct vhu_vring *q, uint16_t head);
VHU_API void vhu_vring_inflight_put_end(struct vhu_vring *q, uint16_t head, uint16_t used_idx);
/** @} */
/** Translate a guest-physical range to a host pointer; NULL unless the whole
 * range [gpa, gpa+len) lies inside one memory region. */
VHU_API void *vhu_vring_gpa_to_host(const struct vhu_vring *q, uint64_t gpa, uint64_t len);

#ifdef __cplusplus
}
#endif
#endif
