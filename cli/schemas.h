/* SPDX-License-Identifier: BSD-3-Clause */
/* Section schemas of the device types vhu ships, for `validate`: the
 * fields a device's load_section reads, in order, by section version. */
#ifndef VHU_CLI_SCHEMAS_H
#define VHU_CLI_SCHEMAS_H

#include <stdbool.h>
#include <stdint.h>

enum sch_type { SCH_UINT, SCH_INT, SCH_BOOL, SCH_TEXT, SCH_BYTES, SCH_MAP };

struct sch_field {
    const char *key;
    enum sch_type type;
    uint32_t since;        /* first section version with this field */
    uint64_t max;          /* UINT: largest value; TEXT/BYTES: longest (0: no limit) */
    const char *len_from;  /* BYTES: its size must equal this earlier UINT field */
    enum sch_type each;    /* MAP: the type of every entry */
    const char *key_prefix; /* MAP: every entry's key is this and a number ("q" for q0) */
};

struct sch_section {
    const char *device, *section;
    uint32_t newest;       /* newest version this table describes */
    const struct sch_field *fields;
    unsigned nfields;
};

const struct sch_section *sch_find(const char *device, const char *section);
const char *sch_type_name(enum sch_type t);

#endif
