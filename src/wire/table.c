/* SPDX-License-Identifier: BSD-3-Clause */
/* The request tables: one row per request of the vhost-user spec, in both
 * directions.  Sizes and fd counts are what the spec fixes; the check
 * functions look inside payloads whose valid size depends on their content. */
#include <errno.h>
#include <stdio.h>

#include "wire.h"
#include "../common/internal.h"

static int check_mem_table(const struct vhu_wire_msg *m, char *why, size_t n)
{
    uint32_t nr = m->p.mem.nregions;
    if (nr == 0 || nr > VHU_MEM_TABLE_MAX) {
        snprintf(why, n, "region count %u (must be 1..%u)", nr, VHU_MEM_TABLE_MAX);
        return -1;
    }
    uint32_t want = 8 + nr * (uint32_t)sizeof(struct vhu_mem_region);
    if (m->hdr.size != want) {
        snprintf(why, n, "size %u does not fit %u regions (%u bytes)", m->hdr.size, nr, want);
        return -1;
    }
    if (m->nfds != nr) {
        snprintf(why, n, "%u fds for %u regions", m->nfds, nr);
        return -1;
    }
    return 0;
}

/* SET_VRING_KICK/CALL/ERR: bits 0-7 index, bit 8 "no fd", nothing else. */
static int check_vring_fd(const struct vhu_wire_msg *m, char *why, size_t n)
{
    uint64_t v = m->p.u64;
    if (v & ~(uint64_t)(VHU_VRING_IDX_MASK | VHU_VRING_NOFD)) {
        snprintf(why, n, "reserved bits set in 0x%llx", (unsigned long long)v);
        return -1;
    }
    bool nofd = v & VHU_VRING_NOFD;
    if (nofd && m->nfds != 0) {
        snprintf(why, n, "no-fd flag set but %u fds attached", m->nfds);
        return -1;
    }
    if (!nofd && m->nfds != 1) {
        snprintf(why, n, "%u fds attached (want 1, or the no-fd flag)", m->nfds);
        return -1;
    }
    return 0;
}

static int check_config(const struct vhu_wire_msg *m, char *why, size_t n)
{
    uint32_t sz = m->p.config.size;
    if (sz > VHU_MAX_CONFIG_SIZE) {
        snprintf(why, n, "config size %u (max %u)", sz, VHU_MAX_CONFIG_SIZE);
        return -1;
    }
    if (m->hdr.size != VHU_CONFIG_HDR_SIZE + sz) {
        snprintf(why, n, "message size %u does not match config size %u + %u", m->hdr.size,
                 VHU_CONFIG_HDR_SIZE, sz);
        return -1;
    }
    return 0;
}

/* Shorthands: payload exactly s bytes; reply kinds. */
#define SZ(s) (s), (s)
#define NOFD 0, 0
#define ONEFD 1, 1
#define ACK VHU_WIRE_REPLY_ACK, 0
#define STATUS VHU_WIRE_REPLY_STATUS, 8
#define DATA(s) VHU_WIRE_REPLY_DATA, (s)
#define NONE VHU_WIRE_GATE_NONE

static const struct vhu_wire_row frontend_rows[VHU_REQ_MAX + 1] = {
    [1] = {1, "GET_FEATURES", SZ(0), NOFD, DATA(8), NONE, NULL},
    [2] = {2, "SET_FEATURES", SZ(8), NOFD, ACK, NONE, NULL},
    [3] = {3, "SET_OWNER", SZ(0), NOFD, ACK, NONE, NULL},
    [4] = {4, "RESET_OWNER", SZ(0), NOFD, ACK, NONE, NULL},
    [5] = {5, "SET_MEM_TABLE", 8, 8 + VHU_MEM_TABLE_MAX * 32, 1, VHU_MAX_FDS, ACK, NONE,
           check_mem_table},
    [6] = {6, "SET_LOG_BASE", SZ(16), ONEFD, STATUS, VHU_PF_LOG_SHMFD, NULL},
    [7] = {7, "SET_LOG_FD", SZ(0), ONEFD, ACK, VHU_PF_LOG_SHMFD, NULL},
    [8] = {8, "SET_VRING_NUM", SZ(8), NOFD, ACK, NONE, NULL},
    [9] = {9, "SET_VRING_ADDR", SZ(40), NOFD, ACK, NONE, NULL},
    [10] = {10, "SET_VRING_BASE", SZ(8), NOFD, ACK, NONE, NULL},
    [11] = {11, "GET_VRING_BASE", SZ(8), NOFD, DATA(8), NONE, NULL},
    [12] = {12, "SET_VRING_KICK", SZ(8), 0, 1, ACK, NONE, check_vring_fd},
    [13] = {13, "SET_VRING_CALL", SZ(8), 0, 1, ACK, NONE, check_vring_fd},
    [14] = {14, "SET_VRING_ERR", SZ(8), 0, 1, ACK, NONE, check_vring_fd},
    /* Gated by F_PROTOCOL_FEATURES being offered, which vhu always does. */
    [15] = {15, "GET_PROTOCOL_FEATURES", SZ(0), NOFD, DATA(8), NONE, NULL},
    [16] = {16, "SET_PROTOCOL_FEATURES", SZ(8), NOFD, ACK, NONE, NULL},
    [17] = {17, "GET_QUEUE_NUM", SZ(0), NOFD, DATA(8), VHU_PF_MQ, NULL},
    [18] = {18, "SET_VRING_ENABLE", SZ(8), NOFD, ACK, VHU_WIRE_GATE_F_PROTOCOL_FEATURES, NULL},
    [19] = {19, "SEND_RARP", SZ(8), NOFD, ACK, VHU_PF_RARP, NULL},
    [20] = {20, "NET_SET_MTU", SZ(8), NOFD, ACK, VHU_PF_NET_MTU, NULL},
    [21] = {21, "SET_BACKEND_REQ_FD", SZ(0), ONEFD, ACK, VHU_PF_BACKEND_REQ, NULL},
    [22] = {22, "IOTLB_MSG", SZ(32), NOFD, STATUS, VHU_WIRE_GATE_F_ACCESS_PLATFORM, NULL},
    [23] = {23, "SET_VRING_ENDIAN", SZ(8), NOFD, ACK, VHU_PF_CROSS_ENDIAN, NULL},
    [24] = {24, "GET_CONFIG", VHU_CONFIG_HDR_SIZE, VHU_CONFIG_HDR_SIZE + VHU_MAX_CONFIG_SIZE, NOFD,
            DATA(VHU_WIRE_SIZE_VAR), VHU_PF_CONFIG, check_config},
    [25] = {25, "SET_CONFIG", VHU_CONFIG_HDR_SIZE, VHU_CONFIG_HDR_SIZE + VHU_MAX_CONFIG_SIZE, NOFD,
            ACK, VHU_PF_CONFIG, check_config},
    [26] = {26, "CREATE_CRYPTO_SESSION", 0, VHU_WIRE_MAX_PAYLOAD, NOFD, DATA(VHU_WIRE_SIZE_VAR),
            VHU_PF_CRYPTO_SESSION, NULL},
    [27] = {27, "CLOSE_CRYPTO_SESSION", SZ(8), NOFD, ACK, VHU_PF_CRYPTO_SESSION, NULL},
    [28] = {28, "POSTCOPY_ADVISE", SZ(0), NOFD, DATA(0), VHU_PF_PAGEFAULT, NULL},
    [29] = {29, "POSTCOPY_LISTEN", SZ(0), NOFD, ACK, VHU_PF_PAGEFAULT, NULL},
    [30] = {30, "POSTCOPY_END", SZ(0), NOFD, STATUS, VHU_PF_PAGEFAULT, NULL},
    /* 24 bytes from QEMU (unpacked struct), 20 from packed senders. */
    [31] = {31, "GET_INFLIGHT_FD", 20, 24, NOFD, DATA(24), VHU_PF_INFLIGHT_SHMFD, NULL},
    [32] = {32, "SET_INFLIGHT_FD", 20, 24, ONEFD, ACK, VHU_PF_INFLIGHT_SHMFD, NULL},
    [33] = {33, "GPU_SET_SOCKET", SZ(0), ONEFD, ACK, VHU_WIRE_GATE_GPU, NULL},
    [34] = {34, "RESET_DEVICE", SZ(0), NOFD, ACK, VHU_PF_RESET_DEVICE, NULL},
    [35] = {35, "VRING_KICK", SZ(8), NOFD, ACK, VHU_PF_INBAND_NOTIFICATIONS, NULL},
    [36] = {36, "GET_MAX_MEM_SLOTS", SZ(0), NOFD, DATA(8), VHU_PF_CONFIGURE_MEM_SLOTS, NULL},
    [37] = {37, "ADD_MEM_REG", SZ(40), ONEFD, ACK, VHU_PF_CONFIGURE_MEM_SLOTS, NULL},
    /* The spec says no fd; QEMU versions have sent one: accept and close. */
    [38] = {38, "REM_MEM_REG", SZ(40), 0, 1, ACK, VHU_PF_CONFIGURE_MEM_SLOTS, NULL},
    [39] = {39, "SET_STATUS", SZ(8), NOFD, ACK, VHU_PF_STATUS, NULL},
    [40] = {40, "GET_STATUS", SZ(0), NOFD, DATA(8), VHU_PF_STATUS, NULL},
    [41] = {41, "GET_SHARED_OBJECT", SZ(16), NOFD, STATUS, VHU_PF_SHARED_OBJECT, NULL},
    [42] = {42, "SET_DEVICE_STATE_FD", SZ(8), ONEFD, STATUS, VHU_PF_DEVICE_STATE, NULL},
    [43] = {43, "CHECK_DEVICE_STATE", SZ(0), NOFD, STATUS, VHU_PF_DEVICE_STATE, NULL},
    [44] = {44, "GET_SHMEM_CONFIG", SZ(0), NOFD, DATA(72), VHU_PF_SHMEM, NULL},
};

static const struct vhu_wire_row backend_rows[VHU_BREQ_MAX + 1] = {
    [1] = {1, "BACKEND_IOTLB_MSG", SZ(32), NOFD, ACK, VHU_WIRE_GATE_F_ACCESS_PLATFORM, NULL},
    [2] = {2, "BACKEND_CONFIG_CHANGE_MSG", SZ(0), NOFD, ACK, VHU_PF_CONFIG, NULL},
    [3] = {3, "BACKEND_VRING_HOST_NOTIFIER_MSG", SZ(24), 0, 1, ACK, VHU_PF_HOST_NOTIFIER, NULL},
    [4] = {4, "BACKEND_VRING_CALL", SZ(8), NOFD, ACK, VHU_PF_INBAND_NOTIFICATIONS, NULL},
    [5] = {5, "BACKEND_VRING_ERR", SZ(8), NOFD, ACK, VHU_PF_INBAND_NOTIFICATIONS, NULL},
    [6] = {6, "BACKEND_SHARED_OBJECT_ADD", SZ(16), NOFD, ACK, VHU_PF_SHARED_OBJECT, NULL},
    [7] = {7, "BACKEND_SHARED_OBJECT_REMOVE", SZ(16), NOFD, ACK, VHU_PF_SHARED_OBJECT, NULL},
    [8] = {8, "BACKEND_SHARED_OBJECT_LOOKUP", SZ(16), NOFD, STATUS, VHU_PF_SHARED_OBJECT, NULL},
    [9] = {9, "BACKEND_SHMEM_MAP", SZ(40), ONEFD, ACK, VHU_PF_SHMEM, NULL},
    [10] = {10, "BACKEND_SHMEM_UNMAP", SZ(40), NOFD, STATUS, VHU_PF_SHMEM, NULL},
};

const struct vhu_wire_row *vhu_wire_frontend_row(uint32_t code)
{
    if (code == 0 || code > VHU_REQ_MAX)
        return NULL;
    return &frontend_rows[code];
}

const struct vhu_wire_row *vhu_wire_backend_row(uint32_t code)
{
    if (code == 0 || code > VHU_BREQ_MAX)
        return NULL;
    return &backend_rows[code];
}

const char *vhu_request_name(uint32_t code)
{
    const struct vhu_wire_row *r = vhu_wire_frontend_row(code);
    return r ? r->name : "UNKNOWN";
}

const char *vhu_backend_request_name(uint32_t code)
{
    const struct vhu_wire_row *r = vhu_wire_backend_row(code);
    return r ? r->name : "UNKNOWN";
}

const char *vhu_protocol_feature_name(unsigned bit)
{
    /* Indexed by VHU_PF_*: the spec's names without VHOST_USER_PROTOCOL_F_. */
    static const char *const names[] = {
        [VHU_PF_MQ] = "MQ",
        [VHU_PF_LOG_SHMFD] = "LOG_SHMFD",
        [VHU_PF_RARP] = "RARP",
        [VHU_PF_REPLY_ACK] = "REPLY_ACK",
        [VHU_PF_NET_MTU] = "NET_MTU",
        [VHU_PF_BACKEND_REQ] = "BACKEND_REQ",
        [VHU_PF_CROSS_ENDIAN] = "CROSS_ENDIAN",
        [VHU_PF_CRYPTO_SESSION] = "CRYPTO_SESSION",
        [VHU_PF_PAGEFAULT] = "PAGEFAULT",
        [VHU_PF_CONFIG] = "CONFIG",
        [VHU_PF_BACKEND_SEND_FD] = "BACKEND_SEND_FD",
        [VHU_PF_HOST_NOTIFIER] = "HOST_NOTIFIER",
        [VHU_PF_INFLIGHT_SHMFD] = "INFLIGHT_SHMFD",
        [VHU_PF_RESET_DEVICE] = "RESET_DEVICE",
        [VHU_PF_INBAND_NOTIFICATIONS] = "INBAND_NOTIFICATIONS",
        [VHU_PF_CONFIGURE_MEM_SLOTS] = "CONFIGURE_MEM_SLOTS",
        [VHU_PF_STATUS] = "STATUS",
        [VHU_PF_XEN_MMAP] = "XEN_MMAP",
        [VHU_PF_SHARED_OBJECT] = "SHARED_OBJECT",
        [VHU_PF_DEVICE_STATE] = "DEVICE_STATE",
        [VHU_PF_SHMEM] = "SHMEM",
    };
    return bit < VHU_ARRAY_SIZE(names) ? names[bit] : NULL;
}

int vhu_wire_check(const struct vhu_wire_row *row, const struct vhu_wire_msg *m, bool request,
                   char *why, size_t n)
{
    uint32_t flags = m->hdr.flags;
    uint32_t known = VHU_FLAG_VERSION_MASK | VHU_FLAG_REPLY | VHU_FLAG_NEED_REPLY;
    if (flags & ~known) {
        snprintf(why, n, "unknown flag bits 0x%x", flags & ~known);
        return -EBADMSG;
    }
    if (request && (flags & VHU_FLAG_REPLY)) {
        snprintf(why, n, "reply flag set on a request");
        return -EBADMSG;
    }
    if (!request && !(flags & VHU_FLAG_REPLY)) {
        snprintf(why, n, "reply without the reply flag");
        return -EBADMSG;
    }
    if (m->fds_truncated) {
        snprintf(why, n, "more than %u fds attached", VHU_MAX_FDS);
        return -EBADMSG;
    }
    if (request) {
        if (m->hdr.size < row->size_min || m->hdr.size > row->size_max) {
            if (row->size_min == row->size_max)
                snprintf(why, n, "payload size %u (want %u)", m->hdr.size, row->size_min);
            else
                snprintf(why, n, "payload size %u (want %u..%u)", m->hdr.size, row->size_min,
                         row->size_max);
            return -EBADMSG;
        }
        if (m->nfds < row->fds_min || m->nfds > row->fds_max) {
            if (row->fds_min == row->fds_max)
                snprintf(why, n, "%u fds attached (want %u)", m->nfds, row->fds_min);
            else
                snprintf(why, n, "%u fds attached (want %u..%u)", m->nfds, row->fds_min,
                         row->fds_max);
            return -EBADMSG;
        }
        if (row->check && row->check(m, why, n) < 0)
            return -EBADMSG;
    }
    return 0;
}
