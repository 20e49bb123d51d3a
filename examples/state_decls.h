/* SPDX-License-Identifier: BSD-3-Clause */
/* The example devices' state sections, with their fields declared next to
 * them (struct vhu_state_field): each device saves with these, and the
 * writer puts the field declarations into every section record.
 *
 * vhu-state reads a section's schema from its record.  Snapshots written
 * before records carried one (the golden corpus of vhu 0.1.0) are from
 * these two devices only, so example_state_section() is vhu-state's
 * fallback for them; a new device needs nothing here. */
#ifndef VHU_EXAMPLES_STATE_DECLS_H
#define VHU_EXAMPLES_STATE_DECLS_H

#include <vhu/state.h>

/* vhu-testdev (examples/testdev/testdev_state.c): config, blob, stats,
 * extra, at the newest versions this build writes. */
enum {
    TESTDEV_SEC_CONFIG,
    TESTDEV_SEC_BLOB,
    TESTDEV_SEC_STATS,
    TESTDEV_SEC_EXTRA,
    TESTDEV_NUM_SECTIONS
};
extern const struct vhu_state_section testdev_state_sections[TESTDEV_NUM_SECTIONS];

/* vhu-blk (examples/blk/blk_state.c): config, then disk (RAM disks only). */
enum { BLK_SEC_CONFIG, BLK_SEC_DISK, BLK_NUM_SECTIONS };
extern const struct vhu_state_section blk_state_sections[BLK_NUM_SECTIONS];

/* The declaration of `section` of the example device type `device`
 * ("testdev", "blk"), or NULL. */
const struct vhu_state_section *example_state_section(const char *device, const char *section);

#endif
