/* SPDX-License-Identifier: BSD-3-Clause */
/* The wire layer: framing, fd passing and the per-request rules table.
 *
 * Receiving is two steps.  vhu_wire_recv() frames one message (header,
 * payload, fds) and fails only when the byte stream cannot be trusted any
 * more (EOF, timeout, bad version bits, a size larger than any request).
 * vhu_wire_check() then holds a framed message against its table row (size,
 * fd count, reply flag, per-request structure); a message that fails it was
 * read completely, so the connection stays in sync and an error reply can
 * be sent.  The back-end's handlers only ever see messages that passed
 * both. */
#ifndef VHU_WIRE_H
#define VHU_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vhu/protocol.h>

/* Largest payload accepted from a peer.  The largest real request is
 * QEMU's CREATE_CRYPTO_SESSION (a few hundred bytes); everything vhu
 * implements is at most 268 bytes. */
#define VHU_WIRE_MAX_PAYLOAD 4096u

struct vhu_wire_msg {
    struct vhu_msg_header hdr;
    union {
        uint64_t u64;
        struct vhu_vring_state state;
        struct vhu_vring_addr addr;
        struct vhu_mem_table mem;
        struct vhu_single_mem_region mreg;
        struct vhu_log log;
        struct vhu_inflight inflight;
        struct vhu_config config;
        struct vhu_vring_area area;
        struct vhu_device_state_params dstate;
        struct vhu_iotlb_msg iotlb;
        struct vhu_shared_object shared;
        struct vhu_shmem_mmap mmap;
        uint8_t bytes[VHU_WIRE_MAX_PAYLOAD];
    } p;
    int fds[VHU_MAX_FDS];
    unsigned nfds;
    bool fds_truncated; /* the sender attached more fds than VHU_MAX_FDS */
};

/* How a request is answered. */
enum vhu_wire_reply {
    VHU_WIRE_REPLY_ACK = 0, /* only with NEED_REPLY (REPLY_ACK): u64 status */
    VHU_WIRE_REPLY_STATUS,  /* always: u64 status (0 = success) */
    VHU_WIRE_REPLY_DATA,    /* always: a payload; size 0 signals an error */
};

/* What must have been negotiated before a request is accepted. */
#define VHU_WIRE_GATE_NONE (-1)
#define VHU_WIRE_GATE_F_PROTOCOL_FEATURES (-2) /* virtio bit 30 acked */
#define VHU_WIRE_GATE_F_ACCESS_PLATFORM (-3)   /* virtio bit 33 acked */
#define VHU_WIRE_GATE_GPU (-4)                 /* vhost-user-gpu devices only */

#define VHU_WIRE_SIZE_VAR 0xffffu

struct vhu_wire_row {
    uint32_t code;
    const char *name;
    uint16_t size_min, size_max; /* payload bytes accepted */
    uint8_t fds_min, fds_max;
    uint8_t reply;       /* enum vhu_wire_reply */
    uint16_t reply_size; /* reply payload bytes, or VHU_WIRE_SIZE_VAR */
    int8_t gate;         /* protocol feature bit or VHU_WIRE_GATE_* */
    /* Structure inside the payload (counts vs size, no-fd bit vs fds). */
    int (*check)(const struct vhu_wire_msg *m, char *why, size_t whylen);
};

/* Row for a front-end -> back-end request, or NULL for an unknown code. */
const struct vhu_wire_row *vhu_wire_frontend_row(uint32_t code);
/* Row for a back-end -> front-end request, or NULL. */
const struct vhu_wire_row *vhu_wire_backend_row(uint32_t code);

/* Frame one message.  0 on success.  Errors (every fd received is closed,
 * why says what happened): -ECONNRESET the peer closed before the first
 * byte; -ETIMEDOUT a partial message stalled for timeout_ms (< 0: wait
 * forever); -EPROTO bad version bits or a message cut short by EOF;
 * -EMSGSIZE a size larger than VHU_WIRE_MAX_PAYLOAD; -EIO and others from
 * the socket. */
int vhu_wire_recv(int sock, struct vhu_wire_msg *m, int timeout_ms, char *why, size_t whylen);

/* Check a framed message against its row.  `request` is true for requests
 * (the REPLY flag must be clear), false for replies.  0, or -EBADMSG with
 * why filled. */
int vhu_wire_check(const struct vhu_wire_row *row, const struct vhu_wire_msg *m, bool request,
                   char *why, size_t whylen);

/* Send header + payload (hdr->size bytes) with fds attached to the first
 * byte.  Retries short writes and EINTR; never raises SIGPIPE. */
int vhu_wire_send(int sock, const struct vhu_msg_header *hdr, const void *payload, const int *fds,
                  unsigned nfds);

/* Attach fds as one SCM_RIGHTS message to mh, using ctl as the control
 * buffer (at least CMSG_SPACE(sizeof(int) * nfds) bytes, suitably aligned). */
struct msghdr;
void vhu_wire_put_fds(struct msghdr *mh, void *ctl, const int *fds, unsigned nfds);

/* Close every fd still held by m (entries already taken are -1). */
void vhu_wire_close_fds(struct vhu_wire_msg *m);

#endif
