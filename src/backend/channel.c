/* The back-end request channel (SET_BACKEND_REQ_FD): messages the back-end
 * sends to the front-end.  May be used from any thread; one request at a
 * time, as the spec requires. */
#include <errno.h>
#include <stdio.h>

#include "backend_internal.h"

/* Send a back-end request and, when REPLY_ACK was negotiated, wait for the
 * front-end's u64 status.  chan_lock held by the caller. */
static int channel_request(struct vhu_backend *b, uint32_t code, const void *payload,
                           uint32_t size)
{
    const struct vhu_wire_row *row = vhu_wire_backend_row(code);
    if (b->chan_fd < 0) {
        vhu_err("%s: no back-end channel (SET_BACKEND_REQ_FD)", row->name);
        return -ENOTCONN;
    }
    if (row->gate >= 0 && !vhu_pf_acked(b, (unsigned)row->gate)) {
        vhu_err("%s: its protocol feature was not negotiated", row->name);
        return -ENOTSUP;
    }
    bool ack = vhu_pf_acked(b, VHU_PF_REPLY_ACK);
    struct vhu_msg_header h = {.request = code,
                               .flags = VHU_FLAG_VERSION | (ack ? VHU_FLAG_NEED_REPLY : 0),
                               .size = size};
    int r = vhu_wire_send(b->chan_fd, &h, payload, NULL, 0);
    if (r < 0) {
        vhu_err("%s: send: %s", row->name, vhu_strerror(r));
        return r;
    }
    if (!ack)
        return 0;
    struct vhu_wire_msg m;
    char why[256] = "";
    r = vhu_wire_recv(b->chan_fd, &m, b->timeout_ms, why, sizeof(why));
    if (r < 0) {
        vhu_err("%s: waiting for the front-end's reply: %s", row->name, why);
        return r;
    }
    vhu_wire_close_fds(&m);
    if (vhu_wire_check(row, &m, false, why, sizeof(why)) < 0 || m.hdr.request != code ||
        m.hdr.size != sizeof(uint64_t)) {
        vhu_err("%s: bad reply from the front-end (code %u size %u%s%s)", row->name,
                m.hdr.request, m.hdr.size, why[0] ? ": " : "", why);
        return -EPROTO;
    }
    if (m.p.u64 != 0) {
        vhu_err("%s: the front-end answered status %llu", row->name,
                (unsigned long long)m.p.u64);
        return -EREMOTEIO;
    }
    return 0;
}

int vhu_backend_send_config_change(struct vhu_backend *b)
{
    pthread_mutex_lock(&b->chan_lock);
    int r = channel_request(b, VHU_BREQ_CONFIG_CHANGE_MSG, NULL, 0);
    pthread_mutex_unlock(&b->chan_lock);
    return r;
}
