/* SPDX-License-Identifier: BSD-3-Clause */
/** @file
 * vhu/frontend.h - the front-end side of a vhost-user socket.
 *
 * What a VMM does to a back-end, as a library: connect, negotiate, share
 * guest memory, set up rings, read config, stop rings.  Used by vhu's tests,
 * benchmarks and the vhu-state tool; also able to send raw, even malformed,
 * messages so tests can attack a back-end.
 *
 * This is libvhu-fe (pkg-config vhu-fe, CMake vhu::vhu-fe), a library of its
 * own next to the back-end library libvhu, which it links; vhu/vhu.h does
 * not include this header.
 *
 * Every call is synchronous.  Requests that have no reply of their own are
 * sent with NEED_REPLY once REPLY_ACK has been negotiated, so a refusal by
 * the back-end comes back as an error code: the back-end's non-zero status
 * s becomes -s when 0 < s < 4096, -EIO otherwise.  A reply that does not
 * arrive within the timeout gives -ETIMEDOUT; a closed socket -ECONNRESET;
 * an error reply with no payload (the back-end's way to refuse a GET)
 * -EREMOTEIO. */
#ifndef VHU_FRONTEND_H
#define VHU_FRONTEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vhu/common.h>
#include <vhu/protocol.h>

#ifdef __cplusplus
extern "C" {
#endif

struct vhu_fe;

/** Connect to a back-end listening on path (retrying until timeout_ms). */
VHU_API int vhu_fe_connect(struct vhu_fe **out, const char *path, int timeout_ms);
/** Wrap an already connected socket (owned from now on). */
VHU_API int vhu_fe_from_fd(struct vhu_fe **out, int sock);
/** Close the connection (and the back-end channel) and free fe; NULL is
 * ignored. */
VHU_API void vhu_fe_close(struct vhu_fe *fe);
/** The connection's socket. */
VHU_API int vhu_fe_fd(const struct vhu_fe *fe);
/** Reply timeout in ms (default 5000). */
VHU_API void vhu_fe_set_timeout(struct vhu_fe *fe, int ms);

/* --- Raw messages --- */

/** Send one message: header (request, flags, size = len) + payload + fds. */
VHU_API int vhu_fe_send(struct vhu_fe *fe, uint32_t request, uint32_t flags, const void *payload,
                        uint32_t len, const int *fds, unsigned nfds);
/** Send arbitrary bytes (header included, as given) with fds attached. */
VHU_API int vhu_fe_send_raw(struct vhu_fe *fe, const void *bytes, size_t len, const int *fds,
                            unsigned nfds);
/** Receive one message.  hdr gets the header; up to cap payload bytes go to
 * payload (a larger payload is an error, -EMSGSIZE); received fds go to fds
 * (room for VHU_MAX_FDS) and their count to *nfds (both may be NULL: fds
 * are then closed).  -ECONNRESET when the peer closed the socket. */
VHU_API int vhu_fe_recv(struct vhu_fe *fe, struct vhu_msg_header *hdr, void *payload, uint32_t cap,
                        int *fds, unsigned *nfds);
/** Send a request and wait for its reply (flags VERSION|REPLY, same code).
 * Returns the reply's payload size, or an error. */
VHU_API int vhu_fe_call(struct vhu_fe *fe, uint32_t request, uint32_t flags, const void *payload,
                        uint32_t len, const int *fds, unsigned nfds, void *reply,
                        uint32_t reply_cap, int *reply_fds, unsigned *reply_nfds);
/** True once the peer has closed the connection (checks without blocking
 * longer than timeout_ms; discards nothing). */
VHU_API bool vhu_fe_peer_closed(struct vhu_fe *fe, int timeout_ms);

/* --- Typed requests --- */

/** @{ */
/** The request of that name (GET_FEATURES, ...), its reply checked and
 * returned through the pointer; 0 or a negative error. */
VHU_API int vhu_fe_get_features(struct vhu_fe *fe, uint64_t *features);
VHU_API int vhu_fe_set_features(struct vhu_fe *fe, uint64_t features);
VHU_API int vhu_fe_get_protocol_features(struct vhu_fe *fe, uint64_t *pf);
VHU_API int vhu_fe_set_protocol_features(struct vhu_fe *fe, uint64_t pf);
VHU_API int vhu_fe_set_owner(struct vhu_fe *fe);
VHU_API int vhu_fe_reset_owner(struct vhu_fe *fe);
VHU_API int vhu_fe_reset_device(struct vhu_fe *fe);
VHU_API int vhu_fe_get_queue_num(struct vhu_fe *fe, uint64_t *n);
VHU_API int vhu_fe_get_max_mem_slots(struct vhu_fe *fe, uint64_t *n);
VHU_API int vhu_fe_set_status(struct vhu_fe *fe, uint8_t status);
VHU_API int vhu_fe_get_status(struct vhu_fe *fe, uint8_t *status);
/** @} */

/** Negotiate as QEMU does: GET_FEATURES, GET/SET_PROTOCOL_FEATURES (offered &
 * want_pf), SET_OWNER, then SET_FEATURES(offered & want_features, plus
 * PROTOCOL_FEATURES when offered).  Out-params may be NULL.  -EBUSY: the
 * back-end closed the connection without answering GET_FEATURES, as a vhu
 * server does while another front-end is connected. */
VHU_API int vhu_fe_negotiate(struct vhu_fe *fe, uint64_t want_features, uint64_t want_pf,
                             uint64_t *acked_features, uint64_t *acked_pf);
/** What this front-end has acked so far. */
VHU_API uint64_t vhu_fe_acked_protocol_features(const struct vhu_fe *fe);

/** @{ */
/** Memory: regions with one fd each (at most 8). */
VHU_API int vhu_fe_set_mem_table(struct vhu_fe *fe, const struct vhu_mem_region *regions,
                                 const int *fds, unsigned n);
VHU_API int vhu_fe_add_mem_reg(struct vhu_fe *fe, const struct vhu_mem_region *r, int fd);
VHU_API int vhu_fe_rem_mem_reg(struct vhu_fe *fe, const struct vhu_mem_region *r);
/** @} */

/** @{ */
/** Rings.  For kick/call/err, fd < 0 sends the no-fd flag. */
VHU_API int vhu_fe_set_vring_num(struct vhu_fe *fe, unsigned idx, unsigned num);
VHU_API int vhu_fe_set_vring_base(struct vhu_fe *fe, unsigned idx, unsigned base);
VHU_API int vhu_fe_get_vring_base(struct vhu_fe *fe, unsigned idx, unsigned *base);
VHU_API int vhu_fe_set_vring_addr(struct vhu_fe *fe, const struct vhu_vring_addr *a);
VHU_API int vhu_fe_set_vring_kick(struct vhu_fe *fe, unsigned idx, int fd);
VHU_API int vhu_fe_set_vring_call(struct vhu_fe *fe, unsigned idx, int fd);
VHU_API int vhu_fe_set_vring_err(struct vhu_fe *fe, unsigned idx, int fd);
VHU_API int vhu_fe_set_vring_enable(struct vhu_fe *fe, unsigned idx, bool on);
/** @} */

/** @{ */
/** Config space. */
VHU_API int vhu_fe_get_config(struct vhu_fe *fe, uint32_t offset, void *buf, uint32_t len);
VHU_API int vhu_fe_set_config(struct vhu_fe *fe, uint32_t offset, const void *buf, uint32_t len,
                              uint32_t flags);
/** @} */

/** @{ */
/** Back-end channel: make a socketpair and send one end with
 * SET_BACKEND_REQ_FD.  Then vhu_fe_serve_backend_request() waits up to
 * timeout_ms for one request from the back-end, acks it (when it asked for
 * a reply) and returns its code. */
VHU_API int vhu_fe_open_backend_channel(struct vhu_fe *fe);
VHU_API int vhu_fe_serve_backend_request(struct vhu_fe *fe, int timeout_ms);
/** @} */

/** @{ */
/** VIRTIO shared memory (PROTOCOL_F_SHMEM).  GET_SHMEM_CONFIG, then one
 * window of reserved address space per region (replacing earlier ones).
 * vhu_fe_serve_backend_request() carries out BACKEND_SHMEM_MAP (the fd
 * mapped at its offset in the window, shared) and BACKEND_SHMEM_UNMAP
 * (back to reserved), after the same checks the back-end makes; a refused
 * one is answered with its errno and returned as its negative.
 * vhu_fe_reset_device() drops every mapping, as the spec asks. */
VHU_API int vhu_fe_get_shmem_config(struct vhu_fe *fe, struct vhu_shmem_config *c);
VHU_API int vhu_fe_shmem_window(const struct vhu_fe *fe, uint8_t shmid, void **base,
                                uint64_t *size);
/** @} */

/* --- Guest memory and split rings, for driving a device --- */

/** Guest RAM: a memfd of `size` bytes mapped into this process; gpa is its
 * guest-physical base and the mapping address serves as the front-end
 * virtual address (as QEMU's would). */
struct vhu_guest_mem {
    int fd;        /**< the memfd */
    uint8_t *host; /**< its mapping here */
    uint64_t gpa;  /**< its guest-physical base */
    uint64_t size; /**< bytes */
};
/** Make guest RAM of `size` bytes at gpa (m filled in); 0 or a negative
 * error. */
VHU_API int vhu_guest_mem_new(struct vhu_guest_mem *m, uint64_t gpa, uint64_t size);
/** Unmap and close what vhu_guest_mem_new() made. */
VHU_API void vhu_guest_mem_free(struct vhu_guest_mem *m);
/** The region describing m, for set_mem_table/add_mem_reg. */
VHU_API struct vhu_mem_region vhu_guest_mem_region(const struct vhu_guest_mem *m);
/** Host pointer for a guest range inside m, or NULL. */
VHU_API void *vhu_guest_mem_ptr(const struct vhu_guest_mem *m, uint64_t gpa, uint64_t len);

/** A ring laid out in guest memory at gpa.  Split (vhu_fe_vring_init):
 * descriptor table, avail ring, then the used ring at the next 4 KiB
 * boundary.  Packed (vhu_fe_vring_init_packed, for VIRTIO_F_RING_PACKED):
 * the descriptor ring, the driver event suppression area (avail_gpa), the
 * device's (used_gpa), then the driver's own record of how many
 * descriptors each buffer ID took (2 bytes per ID). */
struct vhu_fe_vring {
    unsigned index;            /**< the ring's number */
    unsigned size;             /**< entries */
    uint64_t desc_gpa;         /**< descriptor table (packed: ring) */
    uint64_t avail_gpa;        /**< avail ring (packed: driver event area) */
    uint64_t used_gpa;         /**< used ring (packed: device event area) */
    struct vhu_guest_mem *mem; /**< the memory it lies in */
    uint16_t avail_idx;        /**< split: next avail index the driver will publish */
    uint16_t used_seen;        /**< used entries (buffers) consumed by the driver */
    /** @{ */
    /** Packed only: where the driver writes its next descriptor and reads
     * the next used one, with the wrap counters (both start at 1); the
     * ring descriptors the device holds; the per-ID counts' address. */
    bool packed;
    uint16_t next_avail, next_used;
    bool avail_wrap, used_wrap;
    unsigned in_use;
    uint64_t counts_gpa;
    /** @} */
};
/** Bytes a split ring of `size` entries occupies from its gpa. */
VHU_API uint64_t vhu_fe_vring_bytes(unsigned size);
/** Lay a split ring of `size` entries (a power of two) out in m at gpa
 * (16-byte aligned), zeroed, as ring `index`.  -EINVAL for a bad size or
 * alignment, -EFAULT when it does not fit in m. */
VHU_API int vhu_fe_vring_init(struct vhu_fe_vring *r, struct vhu_guest_mem *m, unsigned index,
                              unsigned size, uint64_t gpa);
/** @{ */
/** The same for a packed ring (gpa 16-byte aligned; every call below then
 * drives the packed layout: `head` arguments are buffer IDs, 0..size-1,
 * and a push takes the next free descriptors, -ENOSPC when too few are
 * free). */
VHU_API uint64_t vhu_fe_packed_ring_bytes(unsigned size);
VHU_API int vhu_fe_vring_init_packed(struct vhu_fe_vring *r, struct vhu_guest_mem *m,
                                     unsigned index, unsigned size, uint64_t gpa);
/** @} */
/** @{ */
/** Packed: the base SET_VRING_BASE gives a ring in the state r is in (avail
 * position and wrap counter, used position and wrap counter, QEMU's
 * encoding), and the reverse: set r's positions from such a base (the
 * descriptors the device held are forgotten). */
VHU_API uint32_t vhu_fe_vring_packed_base(const struct vhu_fe_vring *r);
VHU_API void vhu_fe_vring_packed_set_base(struct vhu_fe_vring *r, uint32_t base);
/** @} */
/** Packed: the AVAIL/USED flag bits a descriptor `ahead` positions after
 * the next one the driver writes must carry to be available (for tests
 * that write descriptors by hand). */
VHU_API uint16_t vhu_fe_vring_packed_avail_flags(const struct vhu_fe_vring *r, unsigned ahead);
/** Packed: the driver event suppression area (flags 0 enable, 1 disable,
 * 2 at the descriptor off_wrap, which needs EVENT_IDX). */
VHU_API void vhu_fe_vring_packed_set_event(struct vhu_fe_vring *r, uint16_t flags,
                                           uint16_t off_wrap);
/** SET_VRING_ADDR for the ring (addresses as front-end virtual addresses). */
VHU_API int vhu_fe_vring_set_addr(struct vhu_fe *fe, const struct vhu_fe_vring *r, uint32_t flags);
/** Put a one-descriptor chain {addr, len, flags} at head `head` and publish
 * it in the avail ring. */
VHU_API int vhu_fe_vring_push(struct vhu_fe_vring *r, uint16_t head, uint64_t addr, uint32_t len,
                              uint16_t flags);
/** The used ring's idx as the device last published it.  Packed: used
 * buffers consumed plus those published and not yet consumed (free-running,
 * like a split ring's). */
VHU_API uint16_t vhu_fe_vring_used_idx(const struct vhu_fe_vring *r);

/** One buffer of a chain: guest-physical address, length, device-writable. */
struct vhu_fe_buf {
    uint64_t addr; /**< guest-physical */
    uint32_t len;  /**< bytes */
    bool writable; /**< device-writable */
};
/** Put a chain of n (1..size) buffers in descriptors head, head+1, ...
 * (modulo the ring size), linked with NEXT, and publish it. */
VHU_API int vhu_fe_vring_push_chain(struct vhu_fe_vring *r, uint16_t head,
                                    const struct vhu_fe_buf *bufs, unsigned n);
/** Write the n buffers as an indirect table of 16 * n bytes at table_gpa
 * (in guest memory), point descriptor `head` at it (flags INDIRECT) and
 * publish it. */
VHU_API int vhu_fe_vring_push_indirect(struct vhu_fe_vring *r, uint16_t head, uint64_t table_gpa,
                                       const struct vhu_fe_buf *bufs, unsigned n);
/** Publish `head` in the avail ring as the descriptors stand (written by the
 * caller, through vhu_fe_vring_desc(), possibly hostile).  Any head value is
 * published as given.  Packed rings have nothing to publish (a descriptor
 * is available once its flags say so): no-op. */
VHU_API void vhu_fe_vring_publish(struct vhu_fe_vring *r, uint16_t head);
/** The ring's descriptor table in this process: {u64 addr, u32 len, u16
 * flags, u16 next} x size, for tests that write descriptors by hand. */
VHU_API void *vhu_fe_vring_desc(const struct vhu_fe_vring *r);
/** Take the next used element the driver has not consumed yet: 1 with its
 * id and len as the device wrote them, unchecked (either may be NULL), 0
 * when there is none. */
VHU_API int vhu_fe_vring_pop_used(struct vhu_fe_vring *r, uint32_t *id, uint32_t *len);

/* --- Device state (vhu/state.h): move a back-end's state through a pipe --- */

/** SET_DEVICE_STATE_FD(SAVE) + copy everything the back-end writes to
 * out_fd + CHECK_DEVICE_STATE.  The back-end's rings must be stopped. */
VHU_API int vhu_fe_save_state(struct vhu_fe *fe, int out_fd);
/** SET_DEVICE_STATE_FD(LOAD) + copy in_fd to the back-end until EOF +
 * CHECK_DEVICE_STATE.  On error the back-end's device is unchanged. */
VHU_API int vhu_fe_load_state(struct vhu_fe *fe, int in_fd);
/** @{ */
/** The two requests by themselves (for tests and other front-ends).
 * set_device_state_fd returns the fd the back-end handed back, or -1 when
 * it keeps the one it was given. */
VHU_API int vhu_fe_set_device_state_fd(struct vhu_fe *fe, uint32_t direction, uint32_t phase,
                                       int fd, int *returned_fd);
VHU_API int vhu_fe_check_device_state(struct vhu_fe *fe);
/** @} */

/* --- Control socket (a back-end's control_path; docs/control-protocol.md) --- */

struct vhu_fe_control;

/** Connect (retrying until timeout_ms while the socket does not exist yet);
 * the reply timeout is timeout_ms too (at least 1000). */
VHU_API int vhu_fe_control_connect(struct vhu_fe_control **out, const char *path, int timeout_ms);
/** Close the connection and free c. */
VHU_API void vhu_fe_control_close(struct vhu_fe_control *c);
/** The socket, for tests that write raw bytes to it. */
VHU_API int vhu_fe_control_fd(const struct vhu_fe_control *c);
/** The largest reply vhu_fe_control_recv() takes, in bytes. */
#define VHU_FE_CONTROL_REPLY_MAX (256u << 10)
/** Read one reply: 0 for {"ok": true}; for {"ok": false} the reply's
 * -errno (-EIO if it has none), its "error" text copied into error (n
 * bytes, may be 0).  -ECONNRESET when the back-end closed the connection,
 * -ETIMEDOUT, -EPROTO for a reply that is not a well-formed one (at most
 * VHU_FE_CONTROL_REPLY_MAX bytes). */
VHU_API int vhu_fe_control_recv(struct vhu_fe_control *c, char *error, size_t n);
/** Send {"op": op, "id": N} and read its reply as vhu_fe_control_recv. */
VHU_API int vhu_fe_control_call(struct vhu_fe_control *c, const char *op, char *error, size_t n);

/** One queue in the `info` reply. */
struct vhu_fe_control_queue {
    unsigned index;      /**< the queue's number */
    unsigned size;       /**< SET_VRING_NUM (0 before) */
    bool started;        /**< the device is processing it */
    bool enabled;        /**< SET_VRING_ENABLE state */
    uint16_t last_avail; /**< next avail index the device takes (GET_VRING_BASE) */
    uint64_t completed;  /**< requests completed since the back-end started */
};
/** The `info` reply (docs/control-protocol.md names each key). */
struct vhu_fe_control_info {
    char device[64];                     /**< the device's name (vhu_device_ops.name) */
    char vhu_version[32];                /**< the library's version (vhu_version()) */
    uint64_t pid;                        /**< the back-end's process id */
    uint64_t uptime_s;                   /**< seconds since vhu_server_new() */
    uint64_t sessions;                   /**< front-end sessions served */
    bool connected;                      /**< a front-end is attached now */
    uint64_t offered_features;           /**< virtio features offered */
    uint64_t acked_features;             /**< virtio features acked */
    uint64_t offered_protocol_features;  /**< protocol features offered */
    uint64_t acked_protocol_features;    /**< protocol features acked */
    uint8_t status;                      /**< the virtio status byte (SET_STATUS) */
    char transfer[8];                    /**< "idle", "save", "load" */
    unsigned num_queues;                 /**< entries in queues */
    struct vhu_fe_control_queue *queues; /**< num_queues of them */
    /** Live snapshots (absent from an older back-end's reply: all 0). */
    bool snapshot_running;
    uint64_t snapshots_taken;  /**< the reply's snapshots.taken */
    uint64_t snapshots_failed; /**< the reply's snapshots.failed */
    bool has_last_snapshot;    /**< then last_* describe the last one that ended */
    bool last_ok;              /**< it succeeded */
    uint64_t last_pause_us;    /**< its pause_us */
    uint64_t last_fork_us;     /**< its fork_us */
    uint64_t last_bytes;       /**< its bytes */
    uint64_t last_duration_us; /**< its duration_us */
    uint64_t last_ago_s;       /**< seconds since it ended */
};
/** `info`; on success free with vhu_fe_control_info_free().  Errors as
 * vhu_fe_control_call. */
VHU_API int vhu_fe_control_info(struct vhu_fe_control *c, struct vhu_fe_control_info *info,
                                char *error, size_t n);
/** Free what vhu_fe_control_info() allocated in info (its queues). */
VHU_API void vhu_fe_control_info_free(struct vhu_fe_control_info *info);

/** The `snapshot` reply. */
struct vhu_fe_control_snapshot {
    uint64_t pause_us;    /**< rings stopped, guest-visible: quiesce + fork */
    uint64_t fork_us;     /**< of which fork() */
    uint64_t bytes;       /**< snapshot bytes written into out_fd */
    uint64_t duration_us; /**< request to the child's exit */
    uint64_t pid;         /**< the child that wrote it */
};
/** `snapshot`: the back-end writes its device state (formats/snapshot-v1.md)
 * into out_fd (a writable regular file, pipe or socket; sent with
 * SCM_RIGHTS, the caller keeps its own copy) while its rings keep running.
 * Waits up to timeout_ms (-1: no limit) for the reply, which comes once the
 * stream is complete: out_fd must be read meanwhile if it is a pipe.
 * Errors as vhu_fe_control_call; -EBUSY when a snapshot or a state
 * transfer is already running. */
VHU_API int vhu_fe_control_snapshot(struct vhu_fe_control *c, int out_fd, int timeout_ms,
                                    struct vhu_fe_control_snapshot *res, char *error, size_t n);

#ifdef __cplusplus
}
#endif
#endif
