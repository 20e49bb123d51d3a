/* SPDX-License-Identifier: BSD-3-Clause */
/* Between the split-ring code and the ring workers. */
#ifndef VHU_VIRTQ_INTERNAL_H
#define VHU_VIRTQ_INTERNAL_H

#include <vhu/virtq.h>

/* Ask the ring's user to stop (any thread): from then on pop reports an
 * empty ring, so a device function busy with a driver that never stops
 * publishing returns, and the worker's loop gets to its stop event. */
void vhu_virtq_request_stop(struct vhu_virtq *vq);
bool vhu_virtq_stop_requested(const struct vhu_virtq *vq);

/* Guest-write trace (trace.c): on when VHU_TRACE_GUEST_WRITES names a
 * file; vhu_trace_guest_write() only after vhu_trace_guest_writes() said
 * it is on. */
bool vhu_trace_guest_writes(void);
void vhu_trace_guest_write(uint64_t gpa, uint64_t len);

#endif
