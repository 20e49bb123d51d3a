/* SPDX-License-Identifier: BSD-3-Clause */
/* The back-end's dispatcher: frame a message, hold it against its table row
 * and the negotiated state, hand it to its request function, and answer.
 * Every refusal logs exactly one line naming the request and the problem. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../state/format.h"
#include "backend_internal.h"

/* A snapshot can hold every queue and every section a device may have. */
_Static_assert(VHU_MAX_QUEUES <= VHU_SNAP_MAX_QUEUES, "a snapshot holds every queue");

/* Virtio transport features this version cannot honour: a device offering
 * them gets them masked out (with a warning).  RING_PACKED is the device's
 * choice: the vring layer serves both layouts. */
#define VHU_UNSUPPORTED_FEATURES (VHU_BIT(VHU_F_ACCESS_PLATFORM))

/* Protocol features this version implements. */
#define VHU_IMPLEMENTED_PF                                                                         \
    (VHU_BIT(VHU_PF_MQ) | VHU_BIT(VHU_PF_REPLY_ACK) | VHU_BIT(VHU_PF_BACKEND_REQ) |                \
     VHU_BIT(VHU_PF_CONFIG) | VHU_BIT(VHU_PF_RESET_DEVICE) | VHU_BIT(VHU_PF_CONFIGURE_MEM_SLOTS) | \
     VHU_BIT(VHU_PF_STATUS) | VHU_BIT(VHU_PF_DEVICE_STATE) | VHU_BIT(VHU_PF_LOG_SHMFD) |           \
     VHU_BIT(VHU_PF_INFLIGHT_SHMFD) | VHU_BIT(VHU_PF_SHMEM))

int vhu_refuse(struct vhu_req *r, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->why, sizeof(r->why), fmt, ap);
    va_end(ap);
    return err;
}

int vhu_backend_new(struct vhu_backend **out, const struct vhu_device_ops *user_ops, void *dev)
{
    *out = NULL;
    if (!user_ops) {
        vhu_err("vhu_backend_new: ops is NULL");
        return -EINVAL;
    }
    /* Checked and used through this version's layout (sized.c). */
    struct vhu_device_ops own;
    int r = vhu_device_ops_read(&own, user_ops);
    if (r < 0)
        return r;
    const struct vhu_device_ops *ops = &own;
    const char *bad = NULL;
    /* The limits are constants; the messages name them as numbers. */
    _Static_assert(VHU_MAX_QUEUES == 256 && VHU_MAX_CONFIG_SIZE == 256 &&
                       VHU_SNAP_MAX_SECTIONS == 256 && VHU_MAX_QUEUE_SIZE == 32768 &&
                       VHU_SHMEM_MAX_REGIONS == 8,
                   "update the messages below");
    if (!ops->features || !ops->start_vring || !ops->stop_vring)
        bad = "features, start_vring and stop_vring are required";
    else if (ops->num_queues < 1 || ops->num_queues > VHU_MAX_QUEUES)
        bad = "num_queues must be 1..256";
    else if (ops->max_queue_size &&
             (!vhu_is_pow2(ops->max_queue_size) || ops->max_queue_size > VHU_MAX_QUEUE_SIZE))
        bad = "max_queue_size must be a power of two <= 32768";
    else if (ops->config_size > VHU_MAX_CONFIG_SIZE)
        bad = "config_size must be <= 256";
    else if (ops->config_size && !ops->get_config)
        bad = "get_config is required when config_size > 0";
    else if (ops->num_sections > VHU_SNAP_MAX_SECTIONS || (ops->num_sections && !ops->sections))
        bad = "sections: at most 256, and num_sections needs the array";
    else if (ops->num_shmem_regions > VHU_SHMEM_MAX_REGIONS ||
             (ops->num_shmem_regions && !ops->shmem_sizes))
        bad = "shared memory: at most 8 regions, and num_shmem_regions needs shmem_sizes";
    if (bad) {
        vhu_err("vhu_backend_new: %s", bad);
        return -EINVAL;
    }
    struct vhu_backend *b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    b->vrings = calloc(ops->num_queues, sizeof(*b->vrings));
    if (!b->vrings) {
        free(b);
        return -ENOMEM;
    }
    /* A device of this layout or a newer one is read live, as it always
     * was; an older, smaller one through the copy with its defaults. */
    b->ops_own = own;
    b->ops = user_ops->size >= sizeof(*user_ops) ? user_ops : &b->ops_own;
    b->dev = dev;
    b->sock = -1;
    b->chan_fd = -1;
    b->log_fd = -1;
    b->timeout_ms = 5000;
    b->state_level = 1;
    b->nqueues = ops->num_queues;
    b->max_queue_size = ops->max_queue_size ? ops->max_queue_size : VHU_MAX_QUEUE_SIZE;
    pthread_mutex_init(&b->chan_lock, NULL);
    for (unsigned i = 0; i < b->nqueues; i++)
        vhu_vring_init(&b->vrings[i], b, i);

    uint64_t f = ops->features(dev);
    if (f & VHU_UNSUPPORTED_FEATURES)
        vhu_warn("%s: feature bits 0x%llx are not supported by vhu %s and are not offered",
                 ops->name ? ops->name : "device",
                 (unsigned long long)(f & VHU_UNSUPPORTED_FEATURES), vhu_version());
    b->features_offered = (f & ~VHU_UNSUPPORTED_FEATURES) | VHU_BIT(VHU_F_PROTOCOL_FEATURES);
    uint64_t pf = VHU_IMPLEMENTED_PF;
    if (ops->protocol_features)
        pf &= ops->protocol_features(dev);
    if (!ops->config_size)
        pf &= ~VHU_BIT(VHU_PF_CONFIG);
    if (!ops->save_section || !ops->load_section)
        pf &= ~VHU_BIT(VHU_PF_DEVICE_STATE);
    /* Dirty logging only for devices that log their writes (they say so
     * by offering LOG_ALL). */
    if (!(b->features_offered & VHU_BIT(VHU_F_LOG_ALL)))
        pf &= ~VHU_BIT(VHU_PF_LOG_SHMFD);
    if (!ops->tracks_inflight)
        pf &= ~VHU_BIT(VHU_PF_INFLIGHT_SHMFD);
    if (!ops->num_shmem_regions)
        pf &= ~VHU_BIT(VHU_PF_SHMEM);
    b->pf_offered = pf;
    *out = b;
    return 0;
}

void vhu_backend_free(struct vhu_backend *b)
{
    if (!b)
        return;
    vhu_backend_detach(b);
    vhu_state_worker_free(b);
    for (unsigned i = 0; i < b->nqueues; i++)
        vhu_vring_destroy(&b->vrings[i]);
    pthread_mutex_destroy(&b->chan_lock);
    free(b->vrings);
    free(b);
}

int vhu_backend_attach(struct vhu_backend *b, int sock)
{
    if (b->sock >= 0)
        return -EBUSY;
    b->sock = sock;
    return 0;
}

int vhu_backend_fd(const struct vhu_backend *b) { return b->sock; }
void vhu_backend_set_timeout(struct vhu_backend *b, int ms) { b->timeout_ms = ms; }

void vhu_backend_set_state_compression(struct vhu_backend *b, int level, int workers)
{
    b->state_level = level;
    b->state_workers = workers < 0 ? 0 : workers;
}
uint64_t vhu_backend_acked_features(const struct vhu_backend *b) { return b->acked_features; }
uint64_t vhu_backend_acked_protocol_features(const struct vhu_backend *b) { return b->acked_pf; }

void vhu_backend_pause(struct vhu_backend *b, bool *was)
{
    for (unsigned i = 0; i < b->nqueues; i++) {
        was[i] = b->vrings[i].started;
        vhu_vring_stop(&b->vrings[i]);
    }
}

int vhu_backend_resume(struct vhu_backend *b, const bool *was)
{
    int ret = 0;
    for (unsigned i = 0; i < b->nqueues; i++) {
        if (!was[i])
            continue;
        char why[VHU_REASON_MAX];
        int r = vhu_vring_start(&b->vrings[i], why, sizeof(why));
        if (r < 0) {
            /* Callers validate before pausing, so this is the device's own
             * refusal: the ring stays stopped and the guest is told. */
            vhu_err("restarting %s", why);
            vhu_vring_signal_error(&b->vrings[i]);
            ret = r;
        }
    }
    return ret;
}

static bool any_started(const struct vhu_backend *b)
{
    for (unsigned i = 0; i < b->nqueues; i++)
        if (b->vrings[i].started)
            return true;
    return false;
}

void vhu_backend_reset_device(struct vhu_backend *b)
{
    bool was_running = any_started(b);
    for (unsigned i = 0; i < b->nqueues; i++) {
        vhu_vring_stop(&b->vrings[i]);
        vhu_vring_reset(&b->vrings[i], true);
    }
    if (was_running && b->ops->suspend)
        b->ops->suspend(b->dev);
    if (b->ops->reset)
        b->ops->reset(b->dev);
    b->acked_features = 0;
    atomic_store(&b->logging, false);
    b->status = 0;
    /* The front-end drops every shared-memory mapping on reset. */
    pthread_mutex_lock(&b->chan_lock);
    b->nshmem_maps = 0;
    pthread_mutex_unlock(&b->chan_lock);
}

void vhu_backend_detach(struct vhu_backend *b)
{
    vhu_transfer_abort(b);
    vhu_backend_reset_device(b);
    for (unsigned i = 0; i < b->nqueues; i++)
        vhu_vring_reset(&b->vrings[i], false);
    vhu_mem_clear(&b->mem);
    vhu_dirty_log_unmap(&b->log);
    vhu_close_fd(&b->log_fd);
    vhu_inflight_unmap(&b->inflight);
    pthread_mutex_lock(&b->chan_lock);
    vhu_close_fd(&b->chan_fd);
    pthread_mutex_unlock(&b->chan_lock);
    b->owned = false;
    b->acked_pf = 0;
    vhu_close_fd(&b->sock);
}

/* ---- answering ---- */

static int send_reply(struct vhu_backend *b, uint32_t code, const void *payload, uint32_t size,
                      const int *fds, unsigned nfds)
{
    struct vhu_msg_header h = {
        .request = code, .flags = VHU_FLAG_VERSION | VHU_FLAG_REPLY, .size = size};
    int r = vhu_wire_send(b->sock, &h, payload, fds, nfds);
    if (r < 0)
        vhu_err("%s: sending the reply: %s", vhu_request_name(code), vhu_strerror(r));
    return r;
}

static int send_status(struct vhu_backend *b, uint32_t code, uint64_t status)
{
    return send_reply(b, code, &status, sizeof(status), NULL, 0);
}

/* u64 status for a refusal: the positive errno (bits 0-7 are what QEMU
 * reads for SET_DEVICE_STATE_FD, where bit 8 also says "no fd"). */
static uint64_t error_status(uint32_t code, int err)
{
    uint64_t s = (uint64_t)(err < 0 ? -err : err);
    if (s == 0)
        s = EIO;
    if (code == VHU_REQ_SET_DEVICE_STATE_FD)
        s = (s & 0xff ? s & 0xff : 1) | VHU_VRING_NOFD;
    return s;
}

/* Refuse a request: error reply when one can be sent, otherwise end the
 * connection.  Logs the one line. */
static int refuse(struct vhu_backend *b, const struct vhu_wire_row *row, uint32_t code,
                  bool need_reply, int err, const char *why)
{
    const char *name = row ? row->name : "request";
    bool replies = row && row->reply != VHU_WIRE_REPLY_ACK;
    if (!replies && !need_reply) {
        if (row)
            vhu_err("%s refused: %s; closing the connection (no reply was asked for)", name, why);
        else
            vhu_err("unknown request %u refused: %s; closing the connection", code, why);
        return err < 0 ? err : -EPROTO;
    }
    if (row)
        vhu_err("%s refused: %s", name, why);
    else
        vhu_err("unknown request %u refused: %s", code, why);
    int r;
    if (row && row->reply == VHU_WIRE_REPLY_DATA)
        r = send_reply(b, code, NULL, 0, NULL, 0); /* empty payload = error */
    else
        r = send_status(b, code, error_status(code, err));
    return r < 0 ? r : 0;
}

static bool gate_open(const struct vhu_backend *b, int gate)
{
    switch (gate) {
    case VHU_WIRE_GATE_NONE: return true;
    case VHU_WIRE_GATE_F_PROTOCOL_FEATURES:
        return b->acked_features & VHU_BIT(VHU_F_PROTOCOL_FEATURES);
    case VHU_WIRE_GATE_F_ACCESS_PLATFORM: return b->acked_features & VHU_BIT(VHU_F_ACCESS_PLATFORM);
    case VHU_WIRE_GATE_GPU: return false;
    default: return vhu_pf_acked(b, (unsigned)gate);
    }
}

static const char *gate_name(int gate)
{
    switch (gate) {
    case VHU_WIRE_GATE_F_PROTOCOL_FEATURES: return "feature PROTOCOL_FEATURES";
    case VHU_WIRE_GATE_F_ACCESS_PLATFORM: return "feature ACCESS_PLATFORM";
    case VHU_WIRE_GATE_GPU: return "a vhost-user-gpu device";
    default: {
        const char *name = gate >= 0 ? vhu_protocol_feature_name((unsigned)gate) : NULL;
        return name ? name : "a protocol feature";
    }
    }
}

/* While the transfer thread reads or writes the device's state, only
 * requests that change nothing the state depends on are served. */
static bool allowed_during_transfer(uint32_t code)
{
    switch (code) {
    case VHU_REQ_GET_FEATURES:
    case VHU_REQ_GET_PROTOCOL_FEATURES:
    case VHU_REQ_GET_QUEUE_NUM:
    case VHU_REQ_GET_MAX_MEM_SLOTS:
    case VHU_REQ_GET_STATUS:
    case VHU_REQ_GET_VRING_BASE:
    case VHU_REQ_SET_VRING_CALL:
    case VHU_REQ_SET_VRING_ERR:
    case VHU_REQ_SET_DEVICE_STATE_FD: /* refused with its own reason */
    case VHU_REQ_CHECK_DEVICE_STATE: return true;
    default: return false;
    }
}

int vhu_backend_process(struct vhu_backend *b)
{
    if (b->sock < 0)
        return -ENOTCONN;
    struct vhu_wire_msg *m = &b->msg;
    char why[VHU_REASON_MAX];
    int r = vhu_wire_recv(b->sock, m, b->timeout_ms, why, sizeof(why));
    if (r == -ECONNRESET) {
        vhu_info("front-end disconnected");
        return r;
    }
    if (r < 0) {
        vhu_err("%s; closing the connection", why);
        return r;
    }

    uint32_t code = m->hdr.request;
    const struct vhu_wire_row *row = vhu_wire_frontend_row(code);
    bool need_reply = (m->hdr.flags & VHU_FLAG_NEED_REPLY) && vhu_pf_acked(b, VHU_PF_REPLY_ACK);
    vhu_debug("<- %s flags 0x%x size %u fds %u", row ? row->name : "?", m->hdr.flags, m->hdr.size,
              m->nfds);

    if (!row) {
        vhu_wire_close_fds(m);
        snprintf(why, sizeof(why), "code %u is not a vhost-user request (size %u, %u fds)", code,
                 m->hdr.size, m->nfds);
        return refuse(b, NULL, code, need_reply, -ENOSYS, why);
    }
    r = vhu_wire_check(row, m, true, why, sizeof(why));
    if (r < 0) {
        vhu_wire_close_fds(m);
        return refuse(b, row, code, need_reply, r, why);
    }
    if (!gate_open(b, row->gate)) {
        vhu_wire_close_fds(m);
        snprintf(why, sizeof(why), "needs %s, which was not negotiated", gate_name(row->gate));
        return refuse(b, row, code, need_reply, -ENOTSUP, why);
    }
    const struct vhu_req_handler *h = vhu_req_handler(code);
    if (!h || !h->fn) {
        vhu_wire_close_fds(m);
        snprintf(why, sizeof(why), "not implemented by vhu %s", vhu_version());
        return refuse(b, row, code, need_reply, -ENOSYS, why);
    }
    if (b->transfer && !allowed_during_transfer(code)) {
        vhu_wire_close_fds(m);
        return refuse(b, row, code, need_reply, -EBUSY,
                      "a device-state transfer is active (CHECK_DEVICE_STATE ends it)");
    }
    if (h->needs_owner && !b->owned) {
        vhu_wire_close_fds(m);
        return refuse(b, row, code, need_reply, -EPERM, "no SET_OWNER yet");
    }

    struct vhu_reply rep;
    rep.size = 0;
    rep.nfds = 0;
    rep.p.u64 = 0;
    struct vhu_req req = {.b = b, .m = m, .rep = &rep};
    req.why[0] = 0;
    r = h->fn(&req);
    vhu_wire_close_fds(m); /* whatever the handler did not keep */
    if (r < 0) {
        for (unsigned i = 0; i < rep.nfds; i++)
            close(rep.fds[i]);
        return refuse(b, row, code, need_reply, r, req.why[0] ? req.why : vhu_strerror(r));
    }
    switch (row->reply) {
    case VHU_WIRE_REPLY_DATA: r = send_reply(b, code, &rep.p, rep.size, rep.fds, rep.nfds); break;
    case VHU_WIRE_REPLY_STATUS:
        r = send_reply(b, code, &rep.p, sizeof(uint64_t), rep.fds, rep.nfds);
        break;
    default: r = need_reply ? send_status(b, code, 0) : 0; break;
    }
    for (unsigned i = 0; i < rep.nfds; i++)
        close(rep.fds[i]);
    return r;
}
