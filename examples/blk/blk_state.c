/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu-blk's state sections and their fields, in the order blk.c saves
 * them (formats/snapshot-v1.md, section 7). */
#include "state_decls.h"

/* At most 64 queues (BLK_MAX_QUEUES), the GET_ID serial in 20 bytes
 * (VIRTIO_BLK_ID_BYTES). */
static const struct vhu_state_field config_fields[] = {
    {.key = "capacity", .type = VHU_STATE_UINT, .since = 1, .meaning = "sectors of 512 bytes"},
    {.key = "block_size", .type = VHU_STATE_UINT, .since = 1, .meaning = "virtio blk_size"},
    {.key = "read_only", .type = VHU_STATE_BOOL, .since = 1, .meaning = "VIRTIO_BLK_F_RO offered"},
    {.key = "writeback",
     .type = VHU_STATE_BOOL,
     .since = 1,
     .meaning = "writes are volatile until FLUSH"},
    {.key = "queues", .type = VHU_STATE_UINT, .since = 1, .max = 64},
    {.key = "serial",
     .type = VHU_STATE_TEXT,
     .since = 1,
     .max = 20,
     .meaning = "what GET_ID answers"},
    {0},
};

static const struct vhu_state_field disk_fields[] = {
    {.key = "size", .type = VHU_STATE_UINT, .since = 1, .meaning = "bytes"},
    {.key = "data",
     .type = VHU_STATE_BYTES,
     .since = 1,
     .len_from = "size",
     .meaning = "the RAM disk's contents"},
    {0},
};

/* "config" first: a mismatch is refused before a RAM disk's bytes are
 * read.  Image-backed disks declare only the first. */
const struct vhu_state_section blk_state_sections[BLK_NUM_SECTIONS] = {
    [BLK_SEC_CONFIG] = {.name = "config",
                        .version = 1,
                        .min_version = 1,
                        .optional = true,
                        .fields = config_fields},
    [BLK_SEC_DISK] =
        {.name = "disk", .version = 1, .min_version = 1, .optional = false, .fields = disk_fields},
};
