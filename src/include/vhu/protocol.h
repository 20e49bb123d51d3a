/* SPDX-License-Identifier: BSD-3-Clause */
/** @file
 * vhu/protocol.h - vhost-user wire constants and payload layouts.
 *
 * Everything here is fixed by the vhost-user specification (QEMU's
 * docs/interop/vhost-user.rst).  Both sides of the socket use these: the
 * back-end library and the front-end library.  All integers are in the host's
 * byte order (little-endian on every supported host). */
#ifndef VHU_PROTOCOL_H
#define VHU_PROTOCOL_H

#include <stdint.h>

#include <vhu/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @name Header flags (struct vhu_msg_header's flags)
 * @{ */
#define VHU_FLAG_VERSION_MASK 0x3u /**< the protocol version's bits */
#define VHU_FLAG_VERSION 0x1u      /**< the only version: 1 */
#define VHU_FLAG_REPLY 0x4u        /**< this message is a reply */
#define VHU_FLAG_NEED_REPLY 0x8u   /**< the sender wants a u64 status reply (REPLY_ACK) */
/** @} */

#define VHU_MAX_FDS 8u            /**< fds in one message */
#define VHU_MAX_CONFIG_SIZE 256u  /**< GET/SET_CONFIG data bytes */
#define VHU_MAX_QUEUE_SIZE 32768u /**< the largest ring size */
#define VHU_MEM_TABLE_MAX 8u      /**< regions in SET_MEM_TABLE */
#define VHU_VRING_IDX_MASK 0xffu  /**< SET_VRING_KICK/CALL/ERR: the ring index's bits */
#define VHU_VRING_NOFD 0x100u     /**< SET_VRING_KICK/CALL/ERR: no fd attached */

/** Front-end -> back-end requests. */
enum vhu_request {
    VHU_REQ_GET_FEATURES = 1,
    VHU_REQ_SET_FEATURES = 2,
    VHU_REQ_SET_OWNER = 3,
    VHU_REQ_RESET_OWNER = 4,
    VHU_REQ_SET_MEM_TABLE = 5,
    VHU_REQ_SET_LOG_BASE = 6,
    VHU_REQ_SET_LOG_FD = 7,
    VHU_REQ_SET_VRING_NUM = 8,
    VHU_REQ_SET_VRING_ADDR = 9,
    VHU_REQ_SET_VRING_BASE = 10,
    VHU_REQ_GET_VRING_BASE = 11,
    VHU_REQ_SET_VRING_KICK = 12,
    VHU_REQ_SET_VRING_CALL = 13,
    VHU_REQ_SET_VRING_ERR = 14,
    VHU_REQ_GET_PROTOCOL_FEATURES = 15,
    VHU_REQ_SET_PROTOCOL_FEATURES = 16,
    VHU_REQ_GET_QUEUE_NUM = 17,
    VHU_REQ_SET_VRING_ENABLE = 18,
    VHU_REQ_SEND_RARP = 19,
    VHU_REQ_NET_SET_MTU = 20,
    VHU_REQ_SET_BACKEND_REQ_FD = 21,
    VHU_REQ_IOTLB_MSG = 22,
    VHU_REQ_SET_VRING_ENDIAN = 23,
    VHU_REQ_GET_CONFIG = 24,
    VHU_REQ_SET_CONFIG = 25,
    VHU_REQ_CREATE_CRYPTO_SESSION = 26,
    VHU_REQ_CLOSE_CRYPTO_SESSION = 27,
    VHU_REQ_POSTCOPY_ADVISE = 28,
    VHU_REQ_POSTCOPY_LISTEN = 29,
    VHU_REQ_POSTCOPY_END = 30,
    VHU_REQ_GET_INFLIGHT_FD = 31,
    VHU_REQ_SET_INFLIGHT_FD = 32,
    VHU_REQ_GPU_SET_SOCKET = 33,
    VHU_REQ_RESET_DEVICE = 34,
    VHU_REQ_VRING_KICK = 35,
    VHU_REQ_GET_MAX_MEM_SLOTS = 36,
    VHU_REQ_ADD_MEM_REG = 37,
    VHU_REQ_REM_MEM_REG = 38,
    VHU_REQ_SET_STATUS = 39,
    VHU_REQ_GET_STATUS = 40,
    VHU_REQ_GET_SHARED_OBJECT = 41,
    VHU_REQ_SET_DEVICE_STATE_FD = 42,
    VHU_REQ_CHECK_DEVICE_STATE = 43,
    /** PF_SHMEM (20) and its requests follow the SHMEM_MAP/UNMAP patch
     * series for QEMU (not in a released QEMU yet). */
    VHU_REQ_GET_SHMEM_CONFIG = 44,
    VHU_REQ_MAX = 44
};

/** Back-end -> front-end requests (the back-end request channel). */
enum vhu_backend_request {
    VHU_BREQ_IOTLB_MSG = 1,
    VHU_BREQ_CONFIG_CHANGE_MSG = 2,
    VHU_BREQ_VRING_HOST_NOTIFIER_MSG = 3,
    VHU_BREQ_VRING_CALL = 4,
    VHU_BREQ_VRING_ERR = 5,
    VHU_BREQ_SHARED_OBJECT_ADD = 6,
    VHU_BREQ_SHARED_OBJECT_REMOVE = 7,
    VHU_BREQ_SHARED_OBJECT_LOOKUP = 8,
    VHU_BREQ_SHMEM_MAP = 9,
    VHU_BREQ_SHMEM_UNMAP = 10,
    VHU_BREQ_MAX = 10
};

/** @{ */
/** Virtio / vhost feature bits (GET_FEATURES / SET_FEATURES). */
#define VHU_F_NOTIFY_ON_EMPTY 24
#define VHU_F_LOG_ALL 26
#define VHU_F_ANY_LAYOUT 27
#define VHU_F_RING_INDIRECT_DESC 28
#define VHU_F_RING_EVENT_IDX 29
#define VHU_F_PROTOCOL_FEATURES 30
#define VHU_F_VERSION_1 32
#define VHU_F_ACCESS_PLATFORM 33
#define VHU_F_RING_PACKED 34
#define VHU_F_IN_ORDER 35
/** @} */

/** @{ */
/** Protocol feature bits (GET_PROTOCOL_FEATURES / SET_PROTOCOL_FEATURES). */
#define VHU_PF_MQ 0
#define VHU_PF_LOG_SHMFD 1
#define VHU_PF_RARP 2
#define VHU_PF_REPLY_ACK 3
#define VHU_PF_NET_MTU 4
#define VHU_PF_BACKEND_REQ 5
#define VHU_PF_CROSS_ENDIAN 6
#define VHU_PF_CRYPTO_SESSION 7
#define VHU_PF_PAGEFAULT 8
#define VHU_PF_CONFIG 9
#define VHU_PF_BACKEND_SEND_FD 10
#define VHU_PF_HOST_NOTIFIER 11
#define VHU_PF_INFLIGHT_SHMFD 12
#define VHU_PF_RESET_DEVICE 13
#define VHU_PF_INBAND_NOTIFICATIONS 14
#define VHU_PF_CONFIGURE_MEM_SLOTS 15
#define VHU_PF_STATUS 16
#define VHU_PF_XEN_MMAP 17
#define VHU_PF_SHARED_OBJECT 18
#define VHU_PF_DEVICE_STATE 19
#define VHU_PF_SHMEM 20
/** @} */

/** The mask of feature bit n (VHU_F_* or VHU_PF_*). */
#define VHU_BIT(n) (1ull << (n))

/** Message header: 12 bytes, then `size` payload bytes. */
struct vhu_msg_header {
    uint32_t request; /**< enum vhu_request or enum vhu_backend_request */
    uint32_t flags;   /**< VHU_FLAG_* */
    uint32_t size;    /**< payload bytes that follow */
};

/** SET_VRING_NUM/BASE/ENABLE, GET_VRING_BASE (and its reply), VRING_KICK. */
struct vhu_vring_state {
    uint32_t index; /**< the ring */
    uint32_t num;   /**< the request's value: size, base, enable */
};

/** SET_VRING_ADDR's flags: log the used ring's writes (LOG_ALL). */
#define VHU_VRING_F_LOG 0x1u
/** SET_VRING_ADDR.  The three ring addresses are front-end virtual addresses
 * (translated through the memory table's userspace_addr); log_guest_addr is
 * a guest-physical address.  Note: used comes before avail. */
struct vhu_vring_addr {
    uint32_t index;           /**< the ring */
    uint32_t flags;           /**< VHU_VRING_F_LOG or 0 */
    uint64_t desc_user_addr;  /**< descriptor table (packed: the descriptor ring) */
    uint64_t used_user_addr;  /**< used ring (packed: the device event area) */
    uint64_t avail_user_addr; /**< available ring (packed: the driver event area) */
    uint64_t log_guest_addr;  /**< the used ring's guest-physical address, for logging */
};

/** One guest memory region: an fd's range, mapped by both sides. */
struct vhu_mem_region {
    uint64_t guest_phys_addr; /**< where the guest sees it */
    uint64_t memory_size;     /**< bytes */
    uint64_t userspace_addr;  /**< where the front-end has it mapped */
    uint64_t mmap_offset;     /**< the region's offset in its fd */
};

/** SET_MEM_TABLE: 8 + nregions * 32 bytes, one fd per region. */
struct vhu_mem_table {
    uint32_t nregions;                                /**< 1..VHU_MEM_TABLE_MAX */
    uint32_t padding;                                 /**< zero */
    struct vhu_mem_region regions[VHU_MEM_TABLE_MAX]; /**< the first nregions are sent */
};

/** ADD_MEM_REG / REM_MEM_REG. */
struct vhu_single_mem_region {
    uint64_t padding;             /**< zero */
    struct vhu_mem_region region; /**< the region added or removed */
};

/** SET_LOG_BASE. */
struct vhu_log {
    uint64_t mmap_size;   /**< the log's bytes: one bit per 4 KiB guest page */
    uint64_t mmap_offset; /**< the log's offset in its fd */
};

/** GET/SET_INFLIGHT_FD.  QEMU's struct is not packed: it sends and expects
 * 24 bytes (the last 4 are padding); 20-byte senders are accepted too. */
struct vhu_inflight {
    uint64_t mmap_size;   /**< the region's bytes */
    uint64_t mmap_offset; /**< the region's offset in its fd */
    uint16_t num_queues;  /**< queues it covers */
    uint16_t queue_size;  /**< entries per queue */
    uint8_t padding[4];   /**< zero */
};

/** @name GET/SET_CONFIG
 * @{ */
#define VHU_CONFIG_HDR_SIZE 12u      /**< struct vhu_config before its data */
#define VHU_CONFIG_FLAG_WRITABLE 0u  /**< a write by the driver */
#define VHU_CONFIG_FLAG_MIGRATION 1u /**< a write during live migration */
/** GET/SET_CONFIG: this header, then `size` data bytes. */
struct vhu_config {
    uint32_t offset;                   /**< in the device's config space */
    uint32_t size;                     /**< data bytes */
    uint32_t flags;                    /**< VHU_CONFIG_FLAG_* */
    uint8_t data[VHU_MAX_CONFIG_SIZE]; /**< the first size are sent */
};
/** @} */

/** BACKEND_VRING_HOST_NOTIFIER_MSG. */
struct vhu_vring_area {
    uint64_t u64;    /**< the ring index (bits 0-7) and the no-fd flag (bit 8) */
    uint64_t size;   /**< bytes of the fd to map */
    uint64_t offset; /**< where in the fd */
};

/** @name SET_DEVICE_STATE_FD
 * @{ */
#define VHU_TRANSFER_SAVE 0u /**< direction: the back-end writes its state */
#define VHU_TRANSFER_LOAD 1u /**< direction: the back-end reads a state */
#define VHU_PHASE_STOPPED 0u /**< phase: the only one, the device stopped */
/** SET_DEVICE_STATE_FD's payload (an fd comes with it). */
struct vhu_device_state_params {
    uint32_t direction; /**< VHU_TRANSFER_SAVE or VHU_TRANSFER_LOAD */
    uint32_t phase;     /**< VHU_PHASE_STOPPED */
};
/** @} */

/** IOTLB_MSG (struct vhost_iotlb_msg, naturally aligned: 32 bytes). */
struct vhu_iotlb_msg {
    uint64_t iova;  /**< I/O virtual address */
    uint64_t size;  /**< bytes */
    uint64_t uaddr; /**< front-end virtual address */
    uint8_t perm;   /**< access permission */
    uint8_t type;   /**< miss, update, invalidate, ... */
    uint8_t pad[6]; /**< zero */
};

/** GET_SHARED_OBJECT / BACKEND_SHARED_OBJECT_*: a UUID. */
struct vhu_shared_object {
    uint8_t uuid[16]; /**< the object's UUID */
};

/** VIRTIO shared memory regions a device may have (indexed by shmid). */
#define VHU_SHMEM_MAX_REGIONS 8u
/** vhu's limit on mappings one session may hold (both sides enforce it). */
#define VHU_SHMEM_MAX_MAPPINGS 64u
/** GET_SHMEM_CONFIG reply: VIRTIO shared memory regions, indexed by shmid. */
struct vhu_shmem_config {
    uint32_t nregions;                            /**< regions the device has */
    uint32_t padding;                             /**< zero */
    uint64_t memory_sizes[VHU_SHMEM_MAX_REGIONS]; /**< each region's bytes */
};

/** BACKEND_SHMEM_MAP / UNMAP's flags: map writable. */
#define VHU_SHMEM_MAP_RW 1u
/** BACKEND_SHMEM_MAP / UNMAP.  flags: VHU_SHMEM_MAP_RW or read-only. */
struct vhu_shmem_mmap {
    uint8_t shmid;       /**< the region */
    uint8_t padding[7];  /**< zero */
    uint64_t fd_offset;  /**< where in the fd (MAP) */
    uint64_t shm_offset; /**< where in the region */
    uint64_t len;        /**< bytes */
    uint64_t flags;      /**< VHU_SHMEM_MAP_RW or 0 */
};

/** @{ */
/** Names as the spec spells them ("SET_VRING_KICK"), "UNKNOWN" otherwise. */
VHU_API const char *vhu_request_name(uint32_t code);
VHU_API const char *vhu_backend_request_name(uint32_t code);
/** @} */
/** Name of a protocol feature bit as the spec spells it, without its
 * prefix.
 * @param bit  a bit number (VHU_PF_*), not a mask
 * @return "REPLY_ACK" for VHU_PF_REPLY_ACK, ...; NULL for a bit vhu has no
 *         name for. */
VHU_API const char *vhu_protocol_feature_name(unsigned bit);

#ifdef __cplusplus
}
#endif
#endif
