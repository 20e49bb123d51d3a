/* SPDX-License-Identifier: BSD-3-Clause */
/** @file
 * vhu/backend.h - the back-end: a device behind a vhost-user socket.
 *
 * Two levels:
 *  - struct vhu_backend runs the protocol over one connected socket.  Use it
 *    directly to embed vhu in an event loop of your own (watch
 *    vhu_backend_fd() for input, call vhu_backend_process()).
 *  - struct vhu_server owns a libev loop and the socket: it listens (or
 *    connects), serves one front-end at a time, resets the device when the
 *    front-end goes away and waits for the next one.  In server mode a
 *    front-end that connects while another is served is closed at once
 *    (one warning line names it by pid and uid; a flood is logged at most
 *    10 lines a second) -- unless the one served has already hung up, in
 *    which case its session ends and the new one is served.
 *
 * Threading: a backend and its server are driven from one thread.  The only
 * calls allowed from other threads are vhu_server_stop(),
 * vhu_server_sessions(), vhu_backend_send_config_change() and
 * vhu_backend_shmem_map()/unmap(). */
#ifndef VHU_BACKEND_H
#define VHU_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vhu/common.h>
#include <vhu/device.h>

#ifdef __cplusplus
extern "C" {
#endif

struct vhu_backend;

/** Create a back-end for a device.  ops must stay valid for the backend's
 * life; the library reads it while the backend lives, so a change to an
 * optional field (name, sections) shows at its next use.  When ops->size is
 * smaller than this version's struct (a device built against older headers)
 * the fields it has are copied here, once, and the rest take their
 * defaults.
 *
 * @param out  the new back-end, on success
 * @param ops  the device's description (ops->size set)
 * @param dev  handed back to every callback in ops
 * @return 0, -EINVAL (ops incomplete or out of range, or a size of 0 or too
 *         small) or -E2BIG (ops->size larger than this version's struct
 *         with a field beyond it set), each logged. */
VHU_API int vhu_backend_new(struct vhu_backend **out, const struct vhu_device_ops *ops, void *dev);
/** Stops running rings, resets the device, closes every fd it holds. */
VHU_API void vhu_backend_free(struct vhu_backend *b);

/** Give the backend a connected socket; it owns it from now on.  -EBUSY if
 * one is already attached. */
VHU_API int vhu_backend_attach(struct vhu_backend *b, int sock);
/** The attached socket, or -1. */
VHU_API int vhu_backend_fd(const struct vhu_backend *b);
/** Read and handle one request (blocks until a whole message is read or the
 * receive timeout expires).  Returns 0 to keep going, or a negative code
 * when the connection must end (peer closed, or a message that cannot be
 * answered); the caller then calls vhu_backend_detach(). */
VHU_API int vhu_backend_process(struct vhu_backend *b);
/** End the session: stop rings, reset the device and the protocol state,
 * unmap memory, close the socket and every fd received on it. */
VHU_API void vhu_backend_detach(struct vhu_backend *b);
/** How long a partly received message may take to arrive (default 5000). */
VHU_API void vhu_backend_set_timeout(struct vhu_backend *b, int ms);

/** Device-state snapshots: zstd compression level (default 1) and
 * compression worker threads (default 0: compress on the transfer thread).
 * Workers raise throughput on large states at the cost of CPU. */
VHU_API void vhu_backend_set_state_compression(struct vhu_backend *b, int level, int workers);

/** @{ */
/** Features negotiated so far on this connection. */
VHU_API uint64_t vhu_backend_acked_features(const struct vhu_backend *b);
VHU_API uint64_t vhu_backend_acked_protocol_features(const struct vhu_backend *b);
/** @} */

/** Tell the front-end the config space changed (BACKEND_CONFIG_CHANGE_MSG on
 * the back-end channel; waits for the front-end's ack when REPLY_ACK was
 * negotiated).  -ENOTCONN without a back-end channel. */
VHU_API int vhu_backend_send_config_change(struct vhu_backend *b);

/** @{ */
/** VIRTIO shared memory (PROTOCOL_F_SHMEM; the regions are the device's
 * ops->shmem_sizes).  Ask the front-end to map len bytes of fd, from
 * fd_offset, at shm_offset in region shmid (BACKEND_SHMEM_MAP), writable or
 * read-only; the fd stays the caller's.  The range must lie inside the
 * region and overlap no earlier mapping; unmap takes exactly one earlier
 * mapping away (BACKEND_SHMEM_UNMAP).  Mappings end with a device reset and
 * with the session.  Returns 0, -ENOTCONN (no back-end channel), -ENOTSUP
 * (not negotiated), -EINVAL (no such region, or a range outside it),
 * -EEXIST (overlap), -ENOENT (no such mapping), -ENOSPC (already
 * VHU_SHMEM_MAX_MAPPINGS), -EREMOTEIO (the front-end refused).  Safe from
 * any thread. */
VHU_API int vhu_backend_shmem_map(struct vhu_backend *b, uint8_t shmid, int fd, uint64_t fd_offset,
                                  uint64_t shm_offset, uint64_t len, bool writable);
VHU_API int vhu_backend_shmem_unmap(struct vhu_backend *b, uint8_t shmid, uint64_t shm_offset,
                                    uint64_t len);
/** @} */

/* --- Server --- */

struct vhu_server;

/** Read once, by vhu_server_new().  size is sizeof(struct vhu_server_config)
 * as the caller was compiled; the rules of struct vhu_device_ops apply: only
 * fields wholly within size are read, the rest default; size 0 or a size
 * that stops before socket_path is refused (-EINVAL), a larger size with a
 * field beyond this version's struct set too (-E2BIG). */
struct vhu_server_config {
    size_t size;               /**< sizeof(struct vhu_server_config); required */
    const char *socket_path;   /**< required */
    bool client;               /**< connect to socket_path instead of listening */
    bool handle_signals;       /**< stop cleanly on SIGINT/SIGTERM */
    unsigned reconnect_min_ms; /**< client mode back-off: first delay (100) */
    unsigned reconnect_max_ms; /**< ... doubling up to this (5000) */
    /** Optional: also listen here (mode 0600, either mode) for the control
     * protocol (docs/control-protocol.md: `info`).  Only peers running as
     * the back-end's effective uid are served. */
    const char *control_path;
};

/** Create a server for a backend (the server does not own the backend).
 * In server mode the socket is created here: a stale socket file left by a
 * dead process is replaced, a live one is an error (-EADDRINUSE). */
VHU_API int vhu_server_new(struct vhu_server **out, struct vhu_backend *b,
                           const struct vhu_server_config *cfg);
/** Run until vhu_server_stop() or a handled signal.  Returns 0. */
VHU_API int vhu_server_run(struct vhu_server *s);
/** Make vhu_server_run() return soon; safe from any thread. */
VHU_API void vhu_server_stop(struct vhu_server *s);
/** Detaches any front-end and removes the socket files it created. */
VHU_API void vhu_server_free(struct vhu_server *s);
/** Front-end sessions served so far: connections that sent at least one
 * request the back-end handled.  Safe from any thread. */
VHU_API unsigned long vhu_server_sessions(const struct vhu_server *s);

#ifdef __cplusplus
}
#endif
#endif
