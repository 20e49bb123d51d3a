/* SPDX-License-Identifier: BSD-3-Clause */
/* Section schemas (schemas.h).  The library's reader has checked a
 * record's declarations (types, limits, UTF-8) before they get here. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "schemas.h"
#include "state_decls.h"

bool sch_for(const char *device, const struct vhu_snap_section_info *si, struct sch_section *out)
{
    memset(out, 0, sizeof(*out));
    out->section = si->name;
    out->newest = si->version;
    out->fields = si->fields;
    out->from_snapshot = si->fields != NULL;
    if (!out->fields) {
        const struct vhu_state_section *decl = example_state_section(device, si->name);
        if (!decl || !decl->fields)
            return false;
        out->newest = decl->version;
        out->fields = decl->fields;
    }
    while (out->fields[out->nfields].key)
        out->nfields++;
    return true;
}

const char *sch_type_name(enum vhu_state_type t)
{
    static const char *const n[] = {"any value", "uint",          "int", "bool",
                                    "text",      "bytes or blob", "map"};
    return (unsigned)t < sizeof(n) / sizeof(n[0]) ? n[t] : "unknown";
}

void sch_describe(const struct vhu_state_field *f, char *buf, size_t n)
{
    int k = snprintf(buf, n, "%s", sch_type_name(f->type));
#define MORE(...)                                                                                  \
    do {                                                                                           \
        if (k >= 0 && (size_t)k < n)                                                               \
            k += snprintf(buf + k, n - (size_t)k, __VA_ARGS__);                                    \
    } while (0)
    if (f->type == VHU_STATE_MAP && f->each != VHU_STATE_ANY)
        MORE(" of %s", sch_type_name(f->each));
    if (f->key_prefix)
        MORE(", keys '%s' and a number", f->key_prefix);
    if (f->max)
        MORE(", at most %" PRIu64 "%s", f->max,
             f->type == VHU_STATE_TEXT || f->type == VHU_STATE_BYTES ? " bytes" : "");
    if (f->len_from)
        MORE(", as many bytes as '%s' says", f->len_from);
    if (f->since > 1)
        MORE(", since version %u", f->since);
#undef MORE
}
