/* SPDX-License-Identifier: BSD-3-Clause */
/* Between the ring layouts (split.c, packed.c), the ring workers and the
 * back-end's per-ring state. */
#ifndef VHU_VRING_INTERNAL_H
#define VHU_VRING_INTERNAL_H

#include <vhu/vring.h>

/* Ask the ring's user to stop (any thread): from then on pop reports an
 * empty ring, so a device function busy with a driver that never stops
 * publishing returns, and the worker's loop gets to its stop event. */
void vhu_vring_io_request_stop(struct vhu_vring_io *vq);
bool vhu_vring_io_stop_requested(const struct vhu_vring_io *vq);
/* Has the driver published something pop has not looked at yet?  Reads
 * only what tells (split: the avail index; packed: the next descriptor's
 * flags); pop checks it properly. */
bool vhu_vring_io_avail_pending(struct vhu_vring_io *vq);
/* Break the ring: one error line, the err eventfd, no more ring access. */
void vhu_vring_io_break(struct vhu_vring_io *vq, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Packed rings (packed.c), reached through split.c's vhu_vring_io_* once the
 * common checks (broken, stopping, disabled) are done. */
struct vhu_vring_io_packed;
int vhu_packed_new(struct vhu_vring_io_packed **out, struct vhu_vring_io *vq, struct vhu_vring *q);
void vhu_packed_free(struct vhu_vring_io_packed *p);
int vhu_packed_pop(struct vhu_vring_io_packed *p, struct vhu_vring_elem *e);
int vhu_packed_push(struct vhu_vring_io_packed *p, const struct vhu_vring_elem *e,
                    uint32_t written);
int vhu_packed_flush(struct vhu_vring_io_packed *p);
bool vhu_packed_enable_kick(struct vhu_vring_io_packed *p);
bool vhu_packed_avail_pending(const struct vhu_vring_io_packed *p);
unsigned vhu_packed_inflight(const struct vhu_vring_io_packed *p);

/* Back-end side of a packed ring (src/backend): the used position (bits
 * 0-14) and used wrap counter (bit 15), which SET_VRING_BASE sets and
 * GET_VRING_BASE returns in its upper half; dirty-log marks for writes
 * into the descriptor ring and the device event area, by offset from
 * their start (their guest addresses are found when the ring starts). */
uint16_t vhu_vring_packed_used(const struct vhu_vring *q);
void vhu_vring_set_packed_used(struct vhu_vring *q, uint16_t v);
void vhu_vring_log_desc(struct vhu_vring *q, uint64_t offset, uint64_t len);
void vhu_vring_log_device_area(struct vhu_vring *q, uint64_t offset, uint64_t len);

/* A packed ring descriptor (and the copy the inflight region keeps). */
struct vhu_pdesc {
    uint64_t addr;
    uint32_t len;
    uint16_t id, flags;
};

/* Inflight tracking of a packed ring (src/backend/inflight.c), called by
 * packed.c on the ring's thread.  Without an inflight region: resubmit
 * and pending say there is nothing, get succeeds, the rest do nothing
 * (flush_end still counts completions).
 * - resubmit: the next request a previous back-end left in flight, oldest
 *   first: its n ring descriptors (private copies, checked for structure
 *   when the ring started: NEXT on all but the last, INDIRECT only alone,
 *   the buffer ID below the ring size and not repeated).
 * - record: descriptor number i (0 first) of the chain pop is taking;
 *   get: the chain's n descriptors are all recorded and it is taken with
 *   buffer ID id (-ENOSPC: the region has no room, which the ring's own
 *   limit on descriptors outstanding rules out).
 * - put: buffer ID id's used entry was written (not yet visible).
 * - flush_begin before the batch's first used flags are written (used:
 *   the position and wrap counter after it, as in vhu_vring_packed_used),
 *   flush_end after, with the number of buffers in the batch. */
bool vhu_vring_inflight_packed_resubmit(struct vhu_vring *q, const struct vhu_pdesc **d,
                                        unsigned *n);
bool vhu_vring_inflight_packed_pending(const struct vhu_vring *q);
void vhu_vring_inflight_packed_record(struct vhu_vring *q, unsigned i, const struct vhu_pdesc *d);
int vhu_vring_inflight_packed_get(struct vhu_vring *q, unsigned n, uint16_t id);
void vhu_vring_inflight_packed_put(struct vhu_vring *q, uint16_t id);
void vhu_vring_inflight_packed_flush_begin(struct vhu_vring *q, uint16_t used);
void vhu_vring_inflight_packed_flush_end(struct vhu_vring *q, unsigned batch);

/* Guest-write trace (trace.c): on when VHU_TRACE_GUEST_WRITES names a
 * file; vhu_trace_guest_write() only after vhu_trace_guest_writes() said
 * it is on. */
bool vhu_trace_guest_writes(void);
void vhu_trace_guest_write(uint64_t gpa, uint64_t len);

#endif
