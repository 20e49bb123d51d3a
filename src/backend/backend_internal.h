/* SPDX-License-Identifier: BSD-3-Clause */
/* Private state of a back-end: the protocol state machine's data. */
#ifndef VHU_BACKEND_INTERNAL_H
#define VHU_BACKEND_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <vhu/backend.h>

#include "../common/internal.h"
#include "../wire/wire.h"

/* Most memory regions held at once (GET_MAX_MEM_SLOTS). */
#define VHU_MAX_MEM_SLOTS 509u

/* ---- memory.c: guest memory regions ---- */

struct vhu_region {
    uint64_t gpa, size, uva, mmap_offset;
    uint8_t *host; /* host address of gpa */
    void *map;     /* what mmap returned */
    size_t map_len;
};

struct vhu_mem {
    unsigned n, cap;
    struct vhu_region *r;
};

/* Checks that need no fd: non-zero size, no wrap of GPA, user address or
 * mmap_offset + size.  0 or -EINVAL with why. */
int vhu_mem_region_check(const struct vhu_mem_region *d, char *why, size_t n);
/* Does d overlap any of mem's regions, in guest-physical or front-end
 * virtual address space?  0, or -EINVAL with why. */
int vhu_mem_check_overlap(const struct vhu_mem *mem, const struct vhu_mem_region *d, char *why,
                          size_t n);
/* Map d from fd (which stays open; the caller closes it).  Checks with
 * fstat that mmap_offset + size lies within the fd. */
int vhu_mem_map(const struct vhu_mem_region *d, int fd, struct vhu_region *out, char *why,
                size_t n);
void vhu_mem_unmap(struct vhu_region *r);
/* Append a mapped region (mem takes it over); -ENOMEM. */
int vhu_mem_append(struct vhu_mem *mem, const struct vhu_region *r);
/* Unmap every region and free the table's array. */
void vhu_mem_clear(struct vhu_mem *mem);
/* End (exclusive) of the highest region: max(gpa + size); 0 when empty. */
uint64_t vhu_mem_end(const struct vhu_mem *mem);
/* Host pointer for [addr, addr+len) when it lies inside one region; NULL
 * otherwise.  gpa: guest-physical; uva: front-end virtual. */
void *vhu_mem_gpa(const struct vhu_mem *mem, uint64_t gpa, uint64_t len);
void *vhu_mem_uva(const struct vhu_mem *mem, uint64_t uva, uint64_t len);
/* Guest-physical address of [uva, uva+len) when it lies inside one region;
 * false otherwise. */
bool vhu_mem_uva_to_gpa(const struct vhu_mem *mem, uint64_t uva, uint64_t len, uint64_t *gpa);

/* ---- vring.c: per-ring state ---- */

struct vhu_vring {
    struct vhu_backend *b;
    unsigned index;
    unsigned num;                /* ring size, 0 until SET_VRING_NUM */
    uint16_t last_avail;         /* SET_VRING_BASE / advanced by the device;
                               * packed: position | avail wrap counter << 15 */
    uint16_t packed_used;        /* packed: used position | used wrap << 15 */
    bool base_set;               /* SET_VRING_BASE, a load, or a packed ring's
                               * first start since the last reset */
    uint64_t desc_gpa, used_gpa; /* packed: guest addresses of the descriptor
                               * ring and the device area, while started */
    bool addr_set;
    struct vhu_vring_addr addr;
    void *desc, *avail, *used; /* host pointers, valid while started */
    int kick_fd;
    pthread_mutex_t sig_lock; /* call_fd/err_fd may be swapped while running */
    int call_fd, err_fd;
    atomic_bool enabled;
    bool started;
    bool log_used;  /* SET_VRING_ADDR had VHOST_VRING_F_LOG */
    void *inflight; /* this ring's inflight region, or NULL */
    uint64_t inflight_counter;
    uint16_t *resubmit; /* heads to resubmit, oldest first */
    unsigned resubmit_n, resubmit_pos;
    /* Packed rings: the back-end's side of the ring's inflight region
     * (inflight.c), or NULL. */
    struct inflight_packed *inflight_packed;
    uint64_t features;
    /* Requests completed (used index published) since the back-end was
     * created: written by the device's thread, read by `info`. */
    atomic_ulong completed;
};

void vhu_vring_init(struct vhu_vring *q, struct vhu_backend *b, unsigned index);
void vhu_vring_destroy(struct vhu_vring *q);
/* Back to the state after init, keeping call/err fds when keep_signals. */
void vhu_vring_reset(struct vhu_vring *q, bool keep_signals);
/* Compute the ring's host pointers from its addresses against mem, size and
 * features.  0, or -EFAULT/-EINVAL with why; q is changed only on success
 * when `apply` is true. */
int vhu_vring_translate(struct vhu_vring *q, const struct vhu_mem *mem,
                        const struct vhu_vring_addr *addr, unsigned num, uint64_t features,
                        bool apply, char *why, size_t n);
/* Start (translate + device start_vring) / stop (device stop_vring). */
int vhu_vring_start(struct vhu_vring *q, char *why, size_t n);
void vhu_vring_stop(struct vhu_vring *q);
/* Replace a signalling fd (takes ownership of fd; -1 = none). */
void vhu_vring_set_call(struct vhu_vring *q, int fd);
void vhu_vring_set_err(struct vhu_vring *q, int fd);

/* ---- dirty_log.c: dirty-page log ---- */

struct vhu_dirty_log {
    void *map;
    size_t map_len;
    uint8_t *bits; /* bit for guest page p: bits[p / 8] & (1 << p % 8) */
    uint64_t size; /* bytes of bitmap */
    /* A write the log could not mark was reported (one line per log or
     * per LOG_ALL switch-on); set from any ring thread. */
    atomic_bool overflow_logged;
};
void vhu_dirty_log_unmap(struct vhu_dirty_log *l);

/* ---- inflight.c: inflight tracking region ---- */

struct vhu_inflight_region {
    void *map;
    size_t map_len;
    uint8_t *base;
    uint16_t num_queues, queue_size;
    uint64_t region; /* bytes per queue */
    bool packed;     /* the packed layout (RING_PACKED was acked) */
};
void vhu_inflight_unmap(struct vhu_inflight_region *f);
/* Ring start/stop: adopt the queue's region (recovering what a previous
 * back-end left in flight) / let go of it.  Start fails (why says why)
 * when a packed ring's region is not self-consistent. */
int vhu_inflight_start(struct vhu_vring *q, char *why, size_t n);
void vhu_inflight_stop(struct vhu_vring *q);

/* Public structs with a size first field (sized.c): check the caller's size
 * and read the fields within it into dst, this version's layout, the others
 * zero (their defaults).  0, -EINVAL or -E2BIG, logged. */
int vhu_device_ops_read(struct vhu_device_ops *dst, const struct vhu_device_ops *ops);
int vhu_server_config_read(struct vhu_server_config *dst, const struct vhu_server_config *cfg);

/* ---- the back-end ---- */

struct vhu_backend {
    const struct vhu_device_ops *ops; /* the device's, or ops_own */
    struct vhu_device_ops ops_own;    /* a smaller (older) device's, widened */
    void *dev;
    int sock;
    int timeout_ms;

    bool owned;
    uint64_t features_offered, pf_offered;
    uint64_t acked_features, acked_pf;
    uint8_t status;

    struct vhu_mem mem;
    struct vhu_dirty_log log;
    struct vhu_inflight_region inflight;
    int log_fd;
    atomic_bool logging;      /* VHOST_F_LOG_ALL acked (a log may be missing) */
    struct vhu_vring *vrings; /* nqueues of them */
    unsigned nqueues;
    unsigned max_queue_size;

    pthread_mutex_t chan_lock; /* back-end channel, used from any thread */
    int chan_fd;
    /* Shared-memory mappings the front-end made for us (chan_lock). */
    struct vhu_shmem_mapping {
        uint8_t shmid;
        uint64_t offset, len;
    } shmem_maps[VHU_SHMEM_MAX_MAPPINGS];
    unsigned nshmem_maps;

    struct vhu_control *control;           /* the server's control socket, or NULL */
    struct vhu_transfer *transfer;         /* active device-state transfer, or NULL */
    struct vhu_state_worker *state_worker; /* its thread, once one was needed */
    int state_level, state_workers;

    struct vhu_wire_msg msg; /* the request being handled */
};

static inline bool vhu_pf_acked(const struct vhu_backend *b, unsigned bit)
{
    return b->acked_pf & VHU_BIT(bit);
}

/* Stop every started ring, remembering which ones ran; restart them.  Used
 * to change what a running ring depends on (memory table, addresses).
 * was_started has VHU_MAX_QUEUES entries. */
void vhu_backend_pause(struct vhu_backend *b, bool *was_started);
int vhu_backend_resume(struct vhu_backend *b, const bool *was_started);
/* Stop every ring, reset the device and the per-session state; keeps the
 * socket, owner and protocol features (RESET_DEVICE). */
void vhu_backend_reset_device(struct vhu_backend *b);

/* ---- requests.c: one function per request ---- */

struct vhu_reply {
    uint32_t size;
    union {
        uint64_t u64;
        struct vhu_vring_state state;
        struct vhu_config config;
        struct vhu_inflight inflight;
        uint8_t bytes[VHU_WIRE_MAX_PAYLOAD];
    } p;
    int fds[VHU_MAX_FDS];
    unsigned nfds;
};

struct vhu_req {
    struct vhu_backend *b;
    struct vhu_wire_msg *m;   /* handlers take fds they keep: m->fds[i] = -1 */
    struct vhu_reply *rep;    /* DATA replies: payload and size */
    char why[VHU_REASON_MAX]; /* reason for a refusal */
};

typedef int (*vhu_req_fn)(struct vhu_req *r);

struct vhu_req_handler {
    vhu_req_fn fn;
    bool needs_owner;
};

/* Handler for a front-end request code (fn NULL: not implemented). */
const struct vhu_req_handler *vhu_req_handler(uint32_t code);

/* Inflight requests (inflight.c). */
int vhu_req_get_inflight_fd(struct vhu_req *r);
int vhu_req_set_inflight_fd(struct vhu_req *r);

/* Dirty log requests (dirty_log.c). */
int vhu_req_set_log_base(struct vhu_req *r);
int vhu_req_set_log_fd(struct vhu_req *r);

/* Device-state transfer (src/state/transfer.c). */
int vhu_req_set_device_state_fd(struct vhu_req *r);
int vhu_req_check_device_state(struct vhu_req *r);
/* End an active transfer at once (front-end gone); a staged load is
 * discarded. */
void vhu_transfer_abort(struct vhu_backend *b);
/* Stop the transfer thread (vhu_backend_free). */
void vhu_state_worker_free(struct vhu_backend *b);
/* "idle", "save" or "load": the transfer in progress (loop thread). */
const char *vhu_transfer_state(const struct vhu_backend *b);

/* Fill r->why and return err: `return vhu_refuse(r, -EINVAL, "...", ...)`. */
int vhu_refuse(struct vhu_req *r, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- server.c / control.c: unix listening sockets ---- */

/* Listen on path: a stale socket file left by a dead process is replaced,
 * a live one is -EADDRINUSE, anything else -EEXIST.  mode 0 leaves the
 * file's mode to the umask; otherwise it is set before listen(), so nobody
 * can connect while it is wider.  Logs its refusals. */
int vhu_listen_unix(const char *path, unsigned mode, int *out_fd);

struct ev_loop;
struct vhu_control;
/* The control socket (docs/control-protocol.md) on the server's loop.
 * started: CLOCK_MONOTONIC seconds at vhu_server_new. */
int vhu_control_new(struct vhu_control **out, struct ev_loop *loop, const char *path,
                    struct vhu_backend *b, const struct vhu_server *s, double started);
void vhu_control_start(struct vhu_control *c);
void vhu_control_stop(struct vhu_control *c);
/* Closes every client and removes the socket file. */
void vhu_control_free(struct vhu_control *c);
/* A device-state transfer (`to`: what it is, for the log) is about to
 * start: a live snapshot the device serves itself (ops.snapshot_begin) is
 * cancelled and waited for, and its client told why; a forked one goes on
 * from its own copy.  Loop thread. */
void vhu_control_snapshot_yield(struct vhu_control *c, const char *to);
double vhu_monotonic(void);

#endif
