/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu-testdev's state sections and their fields, in the order
 * td_save_section (testdev.c) writes them. */
#include "state_decls.h"

static const struct vhu_state_field config_fields[] = {
    {.key = "scratch",
     .type = VHU_STATE_UINT,
     .since = 1,
     .meaning = "the config space's scratch register"},
    /* Kept in 64 bytes with its NUL. */
    {.key = "label",
     .type = VHU_STATE_TEXT,
     .since = 2,
     .max = 63,
     .meaning = "--label, added in version 2 (version 1 loads with an empty one)"},
    {0},
};

static const struct vhu_state_field blob_fields[] = {
    {.key = "length",
     .type = VHU_STATE_UINT,
     .since = 1,
     .max = 1ull << 31,
     .meaning = "bytes of data"},
    {.key = "data",
     .type = VHU_STATE_BYTES,
     .since = 1,
     .len_from = "length",
     .meaning = "the blob, streamed in pieces"},
    {0},
};

static const struct vhu_state_field stats_fields[] = {
    {.key = "completed",
     .type = VHU_STATE_MAP,
     .since = 1,
     .each = VHU_STATE_UINT,
     .key_prefix = "q",
     .meaning = "requests completed, per queue (q0, q1, ...)"},
    {.key = "drift", .type = VHU_STATE_INT, .since = 1, .meaning = "always -42"},
    {.key = "ok", .type = VHU_STATE_BOOL, .since = 1, .meaning = "always true"},
    {0},
};

static const struct vhu_state_field extra_fields[] = {
    {.key = "note",
     .type = VHU_STATE_TEXT,
     .since = 1,
     .meaning = "a section only newer builds know"},
    {0},
};

const struct vhu_state_section testdev_state_sections[TESTDEV_NUM_SECTIONS] = {
    [TESTDEV_SEC_CONFIG] = {"config", 2, 1, false, config_fields},
    [TESTDEV_SEC_BLOB] = {"blob", 1, 1, false, blob_fields},
    [TESTDEV_SEC_STATS] = {"stats", 1, 1, true, stats_fields},
    [TESTDEV_SEC_EXTRA] = {"extra", 1, 1, false, extra_fields},
};
