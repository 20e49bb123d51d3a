/* SPDX-License-Identifier: BSD-3-Clause */
/* Section schemas for `validate`: the fields a section holds, in order, by
 * section version.  A device declares them next to its sections (struct
 * vhu_state_field in vhu/state.h) and the writer puts them into each
 * section record, so any device's snapshot carries its own.  Snapshots
 * written before that (the golden corpus of vhu 0.1) fall back to the
 * example devices' declarations (examples/state_decls.h). */
#ifndef VHU_CLI_SCHEMAS_H
#define VHU_CLI_SCHEMAS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vhu/state.h>

#include "state/state_internal.h"

struct sch_section {
    const char *section;
    uint32_t newest; /* the version the declaration describes */
    const struct vhu_state_field *fields;
    unsigned nfields;
    bool from_snapshot; /* declared in the section record */
};

/* The schema of the section record si (just read) of a snapshot of
 * `device`: its own declaration, else vhu's for the example devices.
 * false when there is neither.  Valid until the next record. */
bool sch_for(const char *device, const struct vhu_snap_section_info *si, struct sch_section *out);
const char *sch_type_name(enum vhu_state_type t);
/* One declaration in words: "uint, at most 64", "map of bool, keys 'q'
 * and a number", ... (without its key or meaning). */
void sch_describe(const struct vhu_state_field *f, char *buf, size_t n);

#endif
