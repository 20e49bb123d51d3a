/* SPDX-License-Identifier: BSD-3-Clause */
/* Snapshot reader, the device-facing layer: the vhu_state_get_* calls a
 * device's load_section makes, fields in the order they were written.
 * See reader_internal.h. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../common/internal.h"
#include "reader_internal.h"

/* ---- section data: what devices call ---- */

int vhu_snap_read_key(struct vhu_state_reader *r, bool allow_end)
{
    if (r->err)
        return r->err;
    if (!r->in_data)
        return vhu_snap_fail(r, -EINVAL, "field read outside a section");
    if (r->in_blob)
        return vhu_snap_fail(r, -EINVAL, "field read while a blob is open");
    if (r->have_key)
        return 0;
    if (r->at_break)
        return allow_end ? -ENOENT : vhu_snap_fail(r, -EBADMSG, "no more fields in this map");
    struct vhu_cbor_item it;
    if (vhu_snap_next_item(r, &it) < 0)
        return r->err;
    if (it.t == VHU_CBOR_BREAK) {
        r->at_break = true;
        return allow_end ? -ENOENT : vhu_snap_fail(r, -EBADMSG, "no more fields in this map");
    }
    if (it.t != VHU_CBOR_TSTR || it.len == 0 || it.len > VHU_SNAP_MAX_KEY)
        return vhu_snap_fail(r, -EBADMSG,
                             "field key: expected a text string of 1..%u bytes, found a %s "
                             "at body offset %" PRIu64,
                             VHU_SNAP_MAX_KEY, vhu_cbor_type_name(it.t), r->body_off);
    if (!vhu_utf8_valid(it.data, it.len) || memchr(it.data, 0, it.len))
        return vhu_snap_fail(r, -EBADMSG, "field key at body offset %" PRIu64 " is not UTF-8 text",
                             r->body_off);
    memcpy(r->key, it.data, it.len);
    r->key[it.len] = 0;
    r->have_key = true;
    return 0;
}

/* The next field must be `key`: consume its key. */
static int expect_key(struct vhu_state_reader *r, const char *key)
{
    int e = vhu_snap_read_key(r, true);
    if (e == -ENOENT)
        return vhu_snap_fail(r, -EBADMSG, "field '%s' missing (end of map)", key);
    if (e < 0)
        return e;
    if (strcmp(r->key, key) != 0)
        return vhu_snap_fail(r, -EBADMSG, "expected field '%s', found '%s'", key, r->key);
    r->have_key = false;
    return 0;
}

static int value(struct vhu_state_reader *r, const char *key, struct vhu_cbor_item *it)
{
    if (expect_key(r, key) < 0 || vhu_snap_next_item(r, it) < 0)
        return r->err;
    return 0;
}

static int type_error(struct vhu_state_reader *r, const char *key, const char *want_t,
                      const struct vhu_cbor_item *it)
{
    return vhu_snap_fail(r, -EBADMSG, "field '%s': expected %s, found a %s", key, want_t,
                         vhu_cbor_type_name(it->t));
}

int vhu_state_get_u64(struct vhu_state_reader *r, const char *key, uint64_t *v)
{
    struct vhu_cbor_item it;
    if (value(r, key, &it) < 0)
        return r->err;
    if (it.t != VHU_CBOR_UINT)
        return type_error(r, key, "an unsigned integer", &it);
    *v = it.u;
    return 0;
}

int vhu_state_get_i64(struct vhu_state_reader *r, const char *key, int64_t *v)
{
    struct vhu_cbor_item it;
    if (value(r, key, &it) < 0)
        return r->err;
    if ((it.t != VHU_CBOR_UINT && it.t != VHU_CBOR_NINT) || it.u > INT64_MAX)
        return it.t == VHU_CBOR_UINT || it.t == VHU_CBOR_NINT
                   ? vhu_snap_fail(r, -ERANGE, "field '%s': integer out of 64-bit signed range",
                                   key)
                   : type_error(r, key, "an integer", &it);
    *v = it.t == VHU_CBOR_UINT ? (int64_t)it.u : -1 - (int64_t)it.u;
    return 0;
}

int vhu_state_get_bool(struct vhu_state_reader *r, const char *key, bool *v)
{
    struct vhu_cbor_item it;
    if (value(r, key, &it) < 0)
        return r->err;
    if (it.t != VHU_CBOR_BOOL)
        return type_error(r, key, "a boolean", &it);
    *v = it.b;
    return 0;
}

int vhu_state_get_str(struct vhu_state_reader *r, const char *key, char *buf, size_t cap)
{
    struct vhu_cbor_item it;
    if (value(r, key, &it) < 0)
        return r->err;
    if (it.t != VHU_CBOR_TSTR)
        return type_error(r, key, "a text string", &it);
    if (!vhu_utf8_valid(it.data, it.len))
        return vhu_snap_fail(r, -EBADMSG, "field '%s': text is not UTF-8", key);
    if (it.len >= cap || memchr(it.data, 0, it.len))
        return vhu_snap_fail(r, -ERANGE, "field '%s': string of %zu bytes does not fit %zu", key,
                             it.len, cap);
    memcpy(buf, it.data, it.len);
    buf[it.len] = 0;
    return 0;
}

int vhu_state_blob_open(struct vhu_state_reader *r, const char *key)
{
    struct vhu_cbor_item it;
    if (value(r, key, &it) < 0)
        return r->err;
    if (it.t == VHU_CBOR_BSTR) {
        r->blob_indef = false;
        r->chunk = it.data;
        r->chunk_left = it.len;
    } else if (it.t == VHU_CBOR_BSTR_INDEF) {
        r->blob_indef = true;
        r->chunk = NULL;
        r->chunk_left = 0;
    } else {
        return type_error(r, key, "a byte string", &it);
    }
    r->in_blob = true;
    r->blob_at_end = false;
    return 0;
}

ssize_t vhu_state_blob_read(struct vhu_state_reader *r, void *buf, size_t cap)
{
    if (r->err)
        return r->err;
    if (!r->in_blob)
        return vhu_snap_fail(r, -EINVAL, "blob read with no open blob");
    if (cap == 0)
        return vhu_snap_fail(r, -EINVAL, "blob read into an empty buffer");
    size_t got = 0;
    uint8_t *d = buf;
    while (got < cap) {
        if (r->chunk_left) {
            size_t c = r->chunk_left < cap - got ? r->chunk_left : cap - got;
            memcpy(d + got, r->chunk, c);
            r->chunk += c;
            r->chunk_left -= c;
            got += c;
            continue;
        }
        /* The current chunk is used up: next chunk, or the end. */
        if (r->blob_at_end)
            break;
        if (!r->blob_indef) {
            r->blob_at_end = true;
            break;
        }
        struct vhu_cbor_item it;
        if (vhu_snap_next_item(r, &it) < 0)
            return r->err;
        if (it.t == VHU_CBOR_BREAK) {
            r->blob_at_end = true;
            break;
        }
        if (it.t != VHU_CBOR_BSTR)
            return vhu_snap_fail(r, -EBADMSG, "%s inside a blob at body offset %" PRIu64,
                                 vhu_cbor_type_name(it.t), r->body_off);
        r->chunk = it.data;
        r->chunk_left = it.len;
    }
    /* The end is reported once, as a read of 0; that closes the blob. */
    if (got == 0 && r->blob_at_end) {
        r->in_blob = false;
        r->blob_at_end = false;
    }
    return (ssize_t)got;
}

int vhu_state_get_bytes(struct vhu_state_reader *r, const char *key, void *buf, size_t cap,
                        size_t *n)
{
    if (vhu_state_blob_open(r, key) < 0)
        return r->err;
    size_t total = 0;
    for (;;) {
        /* When full, ask for one byte more: anything but the end is too much. */
        uint8_t extra;
        size_t room = cap - total;
        ssize_t g = vhu_state_blob_read(r, room ? (uint8_t *)buf + total : &extra, room ? room : 1);
        if (g < 0)
            return (int)g;
        if (g == 0)
            break;
        if (!room)
            return vhu_snap_fail(r, -ERANGE, "field '%s': more than %zu bytes", key, cap);
        total += (size_t)g;
    }
    *n = total;
    return 0;
}

int vhu_state_map_enter(struct vhu_state_reader *r, const char *key)
{
    struct vhu_cbor_item it;
    if (value(r, key, &it) < 0)
        return r->err;
    if (it.t != VHU_CBOR_MAP_INDEF)
        return type_error(r, key, "a map", &it);
    if (r->depth >= VHU_SNAP_MAX_DEPTH)
        return vhu_snap_fail(r, -EBADMSG, "maps nested deeper than %u", VHU_SNAP_MAX_DEPTH);
    r->depth++;
    r->at_break = false;
    return 0;
}

/* Skip the rest of the current map, through its break. */
static int skip_rest(struct vhu_state_reader *r)
{
    if (r->in_blob) {
        /* Drain the open blob. */
        uint8_t sink[4096];
        while (r->in_blob)
            if (vhu_state_blob_read(r, sink, sizeof(sink)) < 0)
                return r->err;
    }
    for (;;) {
        int e = vhu_snap_read_key(r, true);
        if (e == -ENOENT)
            break;
        if (e < 0)
            return e;
        r->have_key = false;
        if (vhu_snap_skip_next(r) < 0)
            return r->err;
    }
    r->at_break = false;
    return 0;
}

int vhu_state_map_leave(struct vhu_state_reader *r)
{
    if (r->err)
        return r->err;
    if (!r->depth)
        return vhu_snap_fail(r, -EINVAL, "map left with no map entered");
    if (skip_rest(r) < 0)
        return r->err;
    r->depth--;
    return 0;
}

int vhu_state_peek_key(struct vhu_state_reader *r, char *buf, size_t cap)
{
    int e = vhu_snap_read_key(r, true);
    if (e < 0)
        return e;
    if (strlen(r->key) >= cap)
        return -ERANGE;
    strcpy(buf, r->key);
    return 0;
}

int vhu_state_skip(struct vhu_state_reader *r)
{
    int e = vhu_snap_read_key(r, false);
    if (e < 0)
        return e;
    r->have_key = false;
    return vhu_snap_skip_next(r);
}

int vhu_snap_section_done(struct vhu_state_reader *r)
{
    if (r->err)
        return r->err;
    while (r->depth)
        if (vhu_state_map_leave(r) < 0)
            return r->err;
    if (skip_rest(r) < 0)
        return r->err;
    r->in_data = false;
    return 0;
}
