/* SPDX-License-Identifier: BSD-3-Clause */
/* Snapshot reader, the walker: section data field by field for tools that
 * do not know its schema (vhu-state).  See reader_internal.h. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../common/internal.h"
#include "reader_internal.h"

/* ---- generic walking, for tools that do not know the section's schema ---- */

int vhu_snap_next_field(struct vhu_state_reader *r, struct vhu_snap_field *f)
{
    memset(f, 0, sizeof(*f));
    int e = vhu_snap_read_key(r, true);
    if (e == -ENOENT) {
        f->type = VHU_SNAP_END;
        f->depth = r->depth;
        if (r->depth) {
            r->depth--;
            r->at_break = false;
        }
        return 0;
    }
    if (e < 0)
        return e;
    snprintf(f->key, sizeof(f->key), "%s", r->key);
    r->have_key = false;
    f->depth = r->depth;
    struct vhu_cbor_item it;
    if (vhu_snap_next_item(r, &it) < 0)
        return r->err;
    switch (it.t) {
    case VHU_CBOR_UINT:
        f->type = VHU_SNAP_UINT;
        f->u = it.u;
        return 0;
    case VHU_CBOR_NINT:
        f->type = VHU_SNAP_NINT;
        f->u = it.u; /* the value is -1 - u */
        return 0;
    case VHU_CBOR_BOOL:
        f->type = VHU_SNAP_BOOL;
        f->u = it.b;
        return 0;
    case VHU_CBOR_TSTR:
        if (it.len > VHU_SNAP_MAX_TEXT)
            return vhu_snap_fail(r, -EBADMSG, "field '%s': text of %zu bytes (max %u)", f->key,
                                 it.len, VHU_SNAP_MAX_TEXT);
        if (!vhu_utf8_valid(it.data, it.len))
            return vhu_snap_fail(r, -EBADMSG,
                                 "field '%s': text is not UTF-8 (body offset %" PRIu64 ")", f->key,
                                 r->body_off);
        f->type = VHU_SNAP_TEXT;
        f->data = it.data;
        f->len = it.len;
        return 0;
    case VHU_CBOR_BSTR:
        f->type = VHU_SNAP_BYTES;
        f->data = it.data;
        f->len = it.len;
        return 0;
    case VHU_CBOR_BSTR_INDEF:
        f->type = VHU_SNAP_BLOB;
        r->in_blob = true;
        r->blob_at_end = false;
        r->blob_indef = true;
        r->chunk = NULL;
        r->chunk_left = 0;
        return 0;
    case VHU_CBOR_MAP_INDEF:
        if (r->depth >= VHU_SNAP_MAX_DEPTH)
            return vhu_snap_fail(r, -EBADMSG, "maps nested deeper than %u", VHU_SNAP_MAX_DEPTH);
        f->type = VHU_SNAP_MAP;
        r->depth++;
        r->at_break = false;
        return 0;
    default:
        return vhu_snap_fail(
            r, -EBADMSG, "field '%s': a %s is not a valid section value (body offset %" PRIu64 ")",
            f->key, vhu_cbor_type_name(it.t), r->body_off);
    }
}
