/* SPDX-License-Identifier: BSD-3-Clause */
/* Section schemas for `vhu-state validate`, one table per device type vhu
 * ships.  Keep in step with the device's save/load code:
 *   testdev: examples/testdev/testdev.c (td_save_section, td_load_section)
 *   blk:     examples/blk/blk.c (blk_save_section, blk_load_section)
 * A field's `since` is the section version that added it; a newer writer
 * may append fields a reader of this table skips. */
#include <stddef.h>
#include <string.h>

#include "schemas.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct sch_field td_config[] = {
    {.key = "scratch", .type = SCH_UINT, .since = 1},
    /* testdev keeps the label in 64 bytes with its NUL. */
    {.key = "label", .type = SCH_TEXT, .since = 2, .max = 63},
};

static const struct sch_field td_blob[] = {
    {.key = "length", .type = SCH_UINT, .since = 1, .max = 1ull << 31},
    {.key = "data", .type = SCH_BYTES, .since = 1, .len_from = "length"},
};

static const struct sch_field td_stats[] = {
    {.key = "completed", .type = SCH_MAP, .since = 1, .each = SCH_UINT, .key_prefix = "q"},
    {.key = "drift", .type = SCH_INT, .since = 1},
    {.key = "ok", .type = SCH_BOOL, .since = 1},
};

static const struct sch_field td_extra[] = {
    {.key = "note", .type = SCH_TEXT, .since = 1},
};

static const struct sch_field blk_disk[] = {
    {.key = "size", .type = SCH_UINT, .since = 1},
    {.key = "data", .type = SCH_BYTES, .since = 1, .len_from = "size"},
};

/* Capacity in sectors, block size in bytes, at most 64 queues
 * (BLK_MAX_QUEUES), the GET_ID serial in 20 bytes (VIRTIO_BLK_ID_BYTES). */
static const struct sch_field blk_config[] = {
    {.key = "capacity", .type = SCH_UINT, .since = 1},
    {.key = "block_size", .type = SCH_UINT, .since = 1},
    {.key = "read_only", .type = SCH_BOOL, .since = 1},
    {.key = "writeback", .type = SCH_BOOL, .since = 1},
    {.key = "queues", .type = SCH_UINT, .since = 1, .max = 64},
    {.key = "serial", .type = SCH_TEXT, .since = 1, .max = 20},
};

static const struct sch_section schemas[] = {
    {"testdev", "config", 2, td_config, N(td_config)},
    {"testdev", "blob", 1, td_blob, N(td_blob)},
    {"testdev", "stats", 1, td_stats, N(td_stats)},
    {"testdev", "extra", 1, td_extra, N(td_extra)},
    {"blk", "config", 1, blk_config, N(blk_config)},
    {"blk", "disk", 1, blk_disk, N(blk_disk)},
};

const struct sch_section *sch_find(const char *device, const char *section)
{
    for (size_t i = 0; i < N(schemas); i++)
        if (strcmp(schemas[i].device, device) == 0 && strcmp(schemas[i].section, section) == 0)
            return &schemas[i];
    return NULL;
}

const char *sch_type_name(enum sch_type t)
{
    static const char *const n[] = {"uint", "int", "bool", "text", "bytes or blob", "map"};
    return n[t];
}
