/* SPDX-License-Identifier: BSD-3-Clause */
/* Snapshot reader, the parsing layer: the plain header and the records of
 * the body (handler, section heads, end).  See reader_internal.h. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vhu/protocol.h>

#include "../common/internal.h"
#include "reader_internal.h"

/* ---- the plain header ----
 *
 * Parsed item by item with the same streaming decoder over the header's
 * bytes: a tree-building parser would allocate whatever element counts the
 * input claims. */

struct hcur {
    struct vhu_state_reader *r;
    const uint8_t *p;
    size_t len, pos;
};

static int hnext(struct hcur *c, struct vhu_cbor_item *it)
{
    memset(it, 0, sizeof(*it));
    if (c->pos >= c->len)
        return vhu_snap_fail(c->r, -EBADMSG,
                             "header: ends in the middle of its CBOR map (header byte %zu)",
                             c->pos + VHU_SNAP_MAGIC_LEN);
    size_t used;
    if (vhu_cbor_item_decode(c->p + c->pos, c->len - c->pos, it, &used) < 0)
        return vhu_snap_fail(c->r, -EBADMSG, "header: malformed CBOR at header byte %zu",
                             c->pos + VHU_SNAP_MAGIC_LEN);
    c->pos += used;
    return 0;
}

/* Skip one value; counts are bounded by the bytes left (each item takes at
 * least one), nesting by depth. */
static int hskip(struct hcur *c, const struct vhu_cbor_item *first, unsigned depth)
{
    if (depth > 8)
        return vhu_snap_fail(c->r, -EBADMSG, "header: values nested deeper than 8");
    struct vhu_cbor_item it;
    uint64_t n = 0;
    bool indef = false;
    switch (first->t) {
    case VHU_CBOR_ARRAY: n = first->u; break;
    case VHU_CBOR_MAP:
        if (first->u > SIZE_MAX / 2)
            return vhu_snap_fail(c->r, -EBADMSG, "header: map size overflows");
        n = first->u * 2;
        break;
    case VHU_CBOR_TAG: n = 1; break;
    case VHU_CBOR_ARRAY_INDEF:
    case VHU_CBOR_MAP_INDEF:
    case VHU_CBOR_BSTR_INDEF:
    case VHU_CBOR_TSTR_INDEF: indef = true; break;
    case VHU_CBOR_BREAK: return vhu_snap_fail(c->r, -EBADMSG, "header: unexpected break");
    default: return 0;
    }
    if (n > c->len - c->pos)
        return vhu_snap_fail(c->r, -EBADMSG,
                             "header: a collection claims %" PRIu64 " items in %zu bytes", n,
                             c->len - c->pos);
    for (uint64_t i = 0; indef || i < n; i++) {
        if (hnext(c, &it) < 0)
            return c->r->err;
        if (indef && it.t == VHU_CBOR_BREAK)
            return 0;
        if (hskip(c, &it, depth + 1) < 0)
            return c->r->err;
    }
    return 0;
}

static int htext(struct hcur *c, const struct vhu_cbor_item *it, char *dst, size_t cap,
                 const char *what)
{
    if (it->t != VHU_CBOR_TSTR || it->len >= cap || memchr(it->data, 0, it->len) ||
        !vhu_utf8_valid(it->data, it->len))
        return vhu_snap_fail(c->r, -EBADMSG, "header: '%s' is not UTF-8 text of at most %zu bytes",
                             what, cap - 1);
    memcpy(dst, it->data, it->len);
    dst[it->len] = 0;
    return 0;
}

static int huint32(struct hcur *c, const struct vhu_cbor_item *it, uint32_t *v, const char *what)
{
    if (it->t != VHU_CBOR_UINT || it->u > UINT32_MAX)
        return vhu_snap_fail(c->r, -EBADMSG, "header: '%s' is not an unsigned 32-bit integer",
                             what);
    *v = (uint32_t)it->u;
    return 0;
}

/* A definite map of at most max entries. */
static int hmap(struct hcur *c, uint64_t max, uint64_t *n, const char *what)
{
    struct vhu_cbor_item it;
    if (hnext(c, &it) < 0)
        return c->r->err;
    if (it.t != VHU_CBOR_MAP || it.u > max)
        return vhu_snap_fail(c->r, -EBADMSG,
                             "header: %s is not a map of at most %" PRIu64 " entries", what, max);
    *n = it.u;
    return 0;
}

static int hsection(struct hcur *c, struct vhu_snap_header *h, unsigned i)
{
    struct vhu_snap_section_info *s = &h->sections[i];
    bool name = false, ver = false, min = false;
    uint64_t n;
    if (hmap(c, 16, &n, "a section descriptor") < 0)
        return c->r->err;
    for (uint64_t j = 0; j < n; j++) {
        struct vhu_cbor_item k, v;
        if (hnext(c, &k) < 0 || hnext(c, &v) < 0)
            return c->r->err;
        if (k.t == VHU_CBOR_TSTR && !vhu_utf8_valid(k.data, k.len))
            return vhu_snap_fail(c->r, -EBADMSG, "header: a section descriptor key is not UTF-8");
        bool known = k.t == VHU_CBOR_TSTR;
#define KEY(str) (known && k.len == strlen(str) && memcmp(k.data, str, k.len) == 0)
        if (KEY("name")) {
            if (htext(c, &v, s->name, sizeof(s->name), "name") < 0)
                return c->r->err;
            name = s->name[0] != 0;
        } else if (KEY("version")) {
            if (huint32(c, &v, &s->version, "version") < 0)
                return c->r->err;
            ver = true;
        } else if (KEY("min_version")) {
            if (huint32(c, &v, &s->min_version, "min_version") < 0)
                return c->r->err;
            min = true;
        } else if (KEY("optional") && v.t == VHU_CBOR_BOOL) {
            s->optional = v.b;
        } else if (hskip(c, &v, 1) < 0) {
            return c->r->err;
        }
    }
    if (!name || !ver || !min)
        return vhu_snap_fail(c->r, -EBADMSG,
                             "header: section %u lacks a valid name, version or "
                             "min_version",
                             i);
    for (unsigned k = 0; k < i; k++)
        if (strcmp(h->sections[k].name, s->name) == 0)
            return vhu_snap_fail(c->r, -EBADMSG, "header: section '%s' listed twice", s->name);
    return 0;
}

int vhu_snap_read_header(struct vhu_state_reader *r, struct vhu_snap_header *h)
{
    memset(h, 0, sizeof(*h));
    uint32_t frame[2];
    if (vhu_snap_read_raw(r, frame, sizeof(frame)) < 0)
        return r->err;
    if (frame[0] != VHU_SNAP_SKIPPABLE_MAGIC)
        return vhu_snap_fail(r, -EBADMSG,
                             "not a vhu snapshot: magic 0x%08x at byte 0 (want 0x%08x)", frame[0],
                             VHU_SNAP_SKIPPABLE_MAGIC);
    if (frame[1] < VHU_SNAP_MAGIC_LEN + 1 || frame[1] > VHU_SNAP_HEADER_MAX)
        return vhu_snap_fail(r, -EBADMSG, "header length %u at byte 4 (want %u..%u)", frame[1],
                             VHU_SNAP_MAGIC_LEN + 1, VHU_SNAP_HEADER_MAX);
    uint8_t *buf = malloc(frame[1]);
    if (!buf)
        return vhu_snap_fail(r, -ENOMEM, "out of memory");
    if (vhu_snap_read_raw(r, buf, frame[1]) < 0) {
        free(buf);
        return r->err;
    }
    if (memcmp(buf, VHU_SNAP_MAGIC, VHU_SNAP_MAGIC_LEN) != 0) {
        free(buf);
        return vhu_snap_fail(r, -EBADMSG, "not a vhu snapshot: no VHUSTATE magic at byte 8");
    }
    struct hcur c = {.r = r, .p = buf + VHU_SNAP_MAGIC_LEN, .len = frame[1] - VHU_SNAP_MAGIC_LEN};
    bool fmt = false, dev = false, secs = false;
    uint64_t n;
    if (hmap(&c, 64, &n, "the header") < 0)
        goto out;
    for (uint64_t i = 0; i < n; i++) {
        struct vhu_cbor_item k, v;
        if (hnext(&c, &k) < 0 || hnext(&c, &v) < 0)
            goto out;
        if (k.t == VHU_CBOR_TSTR && !vhu_utf8_valid(k.data, k.len)) {
            vhu_snap_fail(r, -EBADMSG, "header: a key is not UTF-8");
            goto out;
        }
        bool known = k.t == VHU_CBOR_TSTR;
        if (KEY("format")) {
            if (huint32(&c, &v, &h->format, "format") < 0)
                goto out;
            fmt = true;
        } else if (KEY("device")) {
            if (htext(&c, &v, h->device, sizeof(h->device), "device") < 0)
                goto out;
            dev = h->device[0] != 0;
        } else if (KEY("producer")) {
            if (htext(&c, &v, h->producer, sizeof(h->producer), "producer") < 0)
                goto out;
        } else if (KEY("sections")) {
            if (v.t != VHU_CBOR_ARRAY || v.u > VHU_SNAP_MAX_SECTIONS) {
                vhu_snap_fail(r, -EBADMSG, "header: 'sections' is not an array of at most %u",
                              VHU_SNAP_MAX_SECTIONS);
                goto out;
            }
            h->nsections = (unsigned)v.u;
            for (unsigned j = 0; j < h->nsections; j++)
                if (hsection(&c, h, j) < 0)
                    goto out;
            secs = true;
        } else if (hskip(&c, &v, 1) < 0) {
            goto out;
        }
#undef KEY
    }
    if (c.pos != c.len) {
        vhu_snap_fail(r, -EBADMSG, "header: %zu bytes after its CBOR map", c.len - c.pos);
        goto out;
    }
    if (!fmt || !dev || !secs) {
        vhu_snap_fail(r, -EBADMSG, "header: missing or invalid %s",
                      !fmt   ? "'format'"
                      : !dev ? "'device'"
                             : "'sections'");
        goto out;
    }
    if (h->format < VHU_SNAP_FORMAT_MIN || h->format > VHU_SNAP_FORMAT)
        vhu_snap_fail(r, -EPROTONOSUPPORT,
                      "snapshot format version %u; this build reads versions %u to %u", h->format,
                      VHU_SNAP_FORMAT_MIN, VHU_SNAP_FORMAT);
    else
        r->format = h->format;
out:
    free(buf);
    return r->err;
}

/* ---- records ---- */

static int want(struct vhu_state_reader *r, struct vhu_cbor_item *it, enum vhu_cbor_type t,
                const char *what)
{
    if (vhu_snap_next_item(r, it) < 0)
        return r->err;
    if (it->t != t)
        return vhu_snap_fail(r, -EBADMSG, "%s: expected a %s, found a %s at body offset %" PRIu64,
                             what, vhu_cbor_type_name(t), vhu_cbor_type_name(it->t), r->body_off);
    return 0;
}

/* A definite text string into buf. */
static int want_text(struct vhu_state_reader *r, char *buf, size_t cap, const char *what)
{
    struct vhu_cbor_item it;
    if (want(r, &it, VHU_CBOR_TSTR, what) < 0)
        return r->err;
    if (it.len >= cap || !vhu_utf8_valid(it.data, it.len) || memchr(it.data, 0, it.len))
        return vhu_snap_fail(r, -EBADMSG, "%s: not UTF-8 text of at most %zu bytes", what, cap - 1);
    memcpy(buf, it.data, it.len);
    buf[it.len] = 0;
    return 0;
}

/* An unsigned integer, or (want_map) a definite map header, of at most max. */
static int want_upto(struct vhu_state_reader *r, enum vhu_cbor_type t, uint64_t max, uint64_t *v,
                     const char *what)
{
    struct vhu_cbor_item it;
    if (want(r, &it, t, what) < 0)
        return r->err;
    if (it.u > max)
        return vhu_snap_fail(r, -EBADMSG,
                             t == VHU_CBOR_MAP ? "%s: map of %" PRIu64 " entries (max %" PRIu64 ")"
                                               : "%s: %" PRIu64 " is out of range (max %" PRIu64
                                                 ")",
                             what, it.u, max);
    *v = it.u;
    return 0;
}

static int want_uint(struct vhu_state_reader *r, uint64_t max, uint64_t *v, const char *what)
{
    return want_upto(r, VHU_CBOR_UINT, max, v, what);
}

static int want_map(struct vhu_state_reader *r, uint64_t max, uint64_t *n, const char *what)
{
    return want_upto(r, VHU_CBOR_MAP, max, n, what);
}

static int want_bool(struct vhu_state_reader *r, bool *b, const char *what)
{
    struct vhu_cbor_item it;
    if (want(r, &it, VHU_CBOR_BOOL, what) == 0)
        *b = it.b;
    return r->err;
}

/* A queue's "layout": "split" or "packed", nothing else. */
static int read_layout(struct vhu_state_reader *r, struct vhu_snap_queue *q, unsigned i)
{
    char v[32];
    if (want_text(r, v, sizeof(v), "handler queue layout") < 0)
        return r->err;
    if (strcmp(v, "split") == 0)
        q->layout = VHU_SNAP_LAYOUT_SPLIT;
    else if (strcmp(v, "packed") == 0)
        q->layout = VHU_SNAP_LAYOUT_PACKED;
    else
        return vhu_snap_fail(r, -EBADMSG,
                             "handler: queue entry %u: layout \"%s\" (want \"split\" or "
                             "\"packed\")",
                             i, v);
    return 0;
}

static int read_queue(struct vhu_state_reader *r, struct vhu_snap_queue *q, unsigned i)
{
    uint64_t n = 0, v = 0;
    char k[32];
    if (want_map(r, 16, &n, "handler queue") < 0)
        return r->err;
    for (uint64_t j = 0; j < n; j++) {
        if (want_text(r, k, sizeof(k), "handler queue key") < 0)
            return r->err;
        if (strcmp(k, "index") == 0 && want_uint(r, UINT32_MAX, &v, "queue index") == 0)
            q->index = (uint32_t)v;
        else if (strcmp(k, "size") == 0 && want_uint(r, UINT32_MAX, &v, "queue size") == 0)
            q->size = (uint32_t)v;
        else if (strcmp(k, "last_avail") == 0 &&
                 want_uint(r, UINT32_MAX, &v, "queue last_avail") == 0)
            q->last_avail = (uint32_t)v;
        else if (strcmp(k, "enabled") == 0)
            want_bool(r, &q->enabled, "queue enabled");
        else if (strcmp(k, "layout") == 0)
            read_layout(r, q, i);
        else if (strcmp(k, "avail_wrap") == 0) {
            if (want_bool(r, &q->avail_wrap, "queue avail_wrap") == 0)
                q->have |= VHU_SNAP_Q_AVAIL_WRAP;
        } else if (strcmp(k, "used_idx") == 0) {
            if (want_uint(r, UINT32_MAX, &v, "queue used_idx") == 0) {
                q->used_idx = (uint32_t)v;
                q->have |= VHU_SNAP_Q_USED_IDX;
            }
        } else if (strcmp(k, "used_wrap") == 0) {
            if (want_bool(r, &q->used_wrap, "queue used_wrap") == 0)
                q->have |= VHU_SNAP_Q_USED_WRAP;
        } else if (!r->err)
            vhu_snap_skip_next(r);
        if (r->err)
            return r->err;
    }
    return 0;
}

static int read_handler(struct vhu_state_reader *r, struct vhu_snap_handler *h)
{
    uint64_t n = 0, v = 0;
    char k[32];
    bool have_version = false;
    if (!h)
        return vhu_snap_fail(r, -EBADMSG,
                             "a second handler record at body offset %" PRIu64
                             " (only the first record is the handler's)",
                             r->body_off);
    memset(h, 0, sizeof(*h));
    if (want_map(r, 16, &n, "handler record") < 0)
        return r->err;
    for (uint64_t i = 0; i < n; i++) {
        if (want_text(r, k, sizeof(k), "handler key") < 0)
            return r->err;
        if (strcmp(k, "version") == 0) {
            if (want_uint(r, UINT32_MAX, &v, "handler version") == 0) {
                h->version = (uint32_t)v;
                have_version = true;
            }
        } else if (strcmp(k, "features") == 0) {
            want_uint(r, UINT64_MAX, &h->features, "handler features");
        } else if (strcmp(k, "protocol_features") == 0) {
            want_uint(r, UINT64_MAX, &h->protocol_features, "handler protocol_features");
        } else if (strcmp(k, "queues") == 0) {
            struct vhu_cbor_item it;
            if (want(r, &it, VHU_CBOR_ARRAY, "handler queues") < 0)
                return r->err;
            if (it.u > VHU_SNAP_MAX_QUEUES)
                return vhu_snap_fail(r, -EBADMSG, "handler: %" PRIu64 " queues (max %u)", it.u,
                                     VHU_SNAP_MAX_QUEUES);
            h->nqueues = (unsigned)it.u;
            for (unsigned q = 0; q < h->nqueues; q++)
                if (read_queue(r, &h->queues[q], q) < 0)
                    return r->err;
        } else {
            vhu_snap_skip_next(r);
        }
        if (r->err)
            return r->err;
    }
    /* Format 1: the record of vhu 0.1.0, unversioned.  Format 2: versioned,
     * and a newer version than this build's is refused by number. */
    uint32_t fmt = r->format ? r->format : 1;
    if (fmt == 1) {
        if (have_version && h->version != 1)
            return vhu_snap_fail(r, -EBADMSG,
                                 "handler record version %u in a format-1 snapshot (format 1 "
                                 "holds version 1 only)",
                                 h->version);
        h->version = 1;
    } else if (!have_version) {
        return vhu_snap_fail(r, -EBADMSG,
                             "handler record without a version in a format-%u snapshot", fmt);
    } else if (h->version > VHU_SNAP_HANDLER_VERSION) {
        return vhu_snap_fail(r, -EPROTONOSUPPORT,
                             "handler record version %u; this build reads up to version %u",
                             h->version, VHU_SNAP_HANDLER_VERSION);
    } else if (h->version < 2) {
        return vhu_snap_fail(r, -EBADMSG,
                             "handler record version %u in a format-%u snapshot (want 2)",
                             h->version, fmt);
    }
    return 0;
}

const char *vhu_snap_layout_name(enum vhu_snap_layout l)
{
    return l == VHU_SNAP_LAYOUT_SPLIT ? "split" : l == VHU_SNAP_LAYOUT_PACKED ? "packed" : "-";
}

uint32_t vhu_snap_format_for(const struct vhu_snap_handler *h) { return h->version >= 2 ? 2 : 1; }

int vhu_snap_handler_check(const struct vhu_snap_handler *h, char *why, size_t n)
{
    bool v2 = h->version >= 2;
    bool packed_features = h->features & VHU_BIT(VHU_F_RING_PACKED);
    if (h->version > VHU_SNAP_HANDLER_VERSION) {
        snprintf(why, n, "handler: record version %u (this build knows up to %u)", h->version,
                 VHU_SNAP_HANDLER_VERSION);
        return -EINVAL;
    }
    if (!v2 && packed_features) {
        snprintf(why, n,
                 "handler: a version-1 record cannot describe packed rings (its features include "
                 "RING_PACKED); version 2 does");
        return -EINVAL;
    }
    for (unsigned i = 0; i < h->nqueues; i++) {
        const struct vhu_snap_queue *q = &h->queues[i];
        bool packed = q->layout == VHU_SNAP_LAYOUT_PACKED;
        if (!v2 && (q->layout != VHU_SNAP_LAYOUT_NONE || q->have)) {
            snprintf(why, n, "handler: queue %u: a version-1 record has no layout or wrap fields",
                     q->index);
            return -EINVAL;
        }
        if (v2 && q->layout == VHU_SNAP_LAYOUT_NONE) {
            snprintf(why, n, "handler: queue %u has no layout (a version-2 record needs one)",
                     q->index);
            return -EINVAL;
        }
        if (v2 && packed != packed_features) {
            snprintf(why, n, "handler: queue %u is a %s ring, but the features %s RING_PACKED",
                     q->index, packed ? "packed" : "split", packed ? "lack" : "include");
            return -EINVAL;
        }
        if (!packed) {
            if (q->have) {
                snprintf(why, n,
                         "handler: queue %u is a split ring but has %s (a packed ring's field)",
                         q->index,
                         q->have & VHU_SNAP_Q_AVAIL_WRAP ? "avail_wrap"
                         : q->have & VHU_SNAP_Q_USED_IDX ? "used_idx"
                                                         : "used_wrap");
                return -EINVAL;
            }
            if (q->last_avail > 0xffff) {
                snprintf(why, n, "handler: queue %u last_avail %u (max 65535)", q->index,
                         q->last_avail);
                return -EINVAL;
            }
            continue;
        }
        if (q->have != VHU_SNAP_Q_PACKED_ALL) {
            snprintf(why, n, "handler: packed queue %u lacks %s", q->index,
                     !(q->have & VHU_SNAP_Q_AVAIL_WRAP) ? "avail_wrap"
                     : !(q->have & VHU_SNAP_Q_USED_IDX) ? "used_idx"
                                                        : "used_wrap");
            return -EINVAL;
        }
        /* Positions are 15 bits (QEMU's base encoding) and name a slot of
         * the ring: below its size once it has one. */
        uint32_t lim = q->size ? q->size : 0x8000u;
        if (q->last_avail >= lim || q->used_idx >= lim) {
            snprintf(why, n,
                     "handler: packed queue %u: avail position %u or used position %u is not "
                     "below %s%u",
                     q->index, q->last_avail, q->used_idx, q->size ? "the ring size " : "", lim);
            return -EINVAL;
        }
    }
    return 0;
}

/* A declared string (field declarations), copied into the reader's
 * table of them: 1..255 bytes of UTF-8, or 0..255 when may_be_empty. */
static const char *decl_text(struct vhu_state_reader *r, bool may_be_empty, const char *what,
                             unsigned i)
{
    struct vhu_cbor_item it;
    if (want(r, &it, VHU_CBOR_TSTR, "field declaration") < 0)
        return NULL;
    if ((!it.len && !may_be_empty) || it.len > VHU_SNAP_MAX_KEY || memchr(it.data, 0, it.len) ||
        !vhu_utf8_valid(it.data, it.len)) {
        vhu_snap_fail(r, -EBADMSG,
                      "field declaration %u: '%s' is not UTF-8 text of %u..%u "
                      "bytes",
                      i, what, may_be_empty ? 0 : 1, VHU_SNAP_MAX_KEY);
        return NULL;
    }
    if (it.len + 1 > VHU_SNAP_DECL_TEXT_CAP - r->decl_used) {
        vhu_snap_fail(r, -EBADMSG, "field declarations: more than %u bytes of text",
                      VHU_SNAP_DECL_TEXT_CAP);
        return NULL;
    }
    char *d = r->decl_text + r->decl_used;
    memcpy(d, it.data, it.len);
    d[it.len] = 0;
    r->decl_used += it.len + 1;
    return d;
}

/* A declared type; a name this build does not know (added by a newer
 * writer) is read as "any". */
static int decl_type(struct vhu_state_reader *r, enum vhu_state_type *t, const char *what)
{
    struct vhu_cbor_item it;
    if (want(r, &it, VHU_CBOR_TSTR, what) < 0)
        return r->err;
    if (!vhu_snap_type_of(it.data, it.len, t))
        *t = VHU_STATE_ANY;
    return 0;
}

/* One field declaration: a map; unknown keys are skipped. */
static int read_decl(struct vhu_state_reader *r, struct vhu_state_field *f, unsigned i)
{
    uint64_t n = 0, v = 0;
    memset(f, 0, sizeof(*f));
    if (want_map(r, 16, &n, "field declaration") < 0)
        return r->err;
    for (uint64_t j = 0; j < n; j++) {
        struct vhu_cbor_item k;
        if (want(r, &k, VHU_CBOR_TSTR, "field declaration key") < 0)
            return r->err;
        if (vhu_cbor_is_text(&k, "key")) {
            f->key = decl_text(r, false, "key", i);
        } else if (vhu_cbor_is_text(&k, "type")) {
            decl_type(r, &f->type, "field declaration type");
        } else if (vhu_cbor_is_text(&k, "since")) {
            if (want_uint(r, UINT32_MAX, &v, "field declaration since") == 0)
                f->since = (uint32_t)v;
        } else if (vhu_cbor_is_text(&k, "max")) {
            want_uint(r, UINT64_MAX, &f->max, "field declaration max");
        } else if (vhu_cbor_is_text(&k, "len_from")) {
            f->len_from = decl_text(r, false, "len_from", i);
        } else if (vhu_cbor_is_text(&k, "each")) {
            decl_type(r, &f->each, "field declaration each");
        } else if (vhu_cbor_is_text(&k, "key_prefix")) {
            f->key_prefix = decl_text(r, false, "key_prefix", i);
        } else if (vhu_cbor_is_text(&k, "meaning")) {
            f->meaning = decl_text(r, true, "meaning", i);
        } else {
            vhu_snap_skip_next(r);
        }
        if (r->err)
            return r->err;
    }
    if (!f->key)
        return vhu_snap_fail(r, -EBADMSG, "field declaration %u has no key", i);
    return 0;
}

/* The section record's "fields": what its writer declared the data holds. */
static int read_decls(struct vhu_state_reader *r, struct vhu_snap_section_info *s)
{
    struct vhu_cbor_item it;
    if (want(r, &it, VHU_CBOR_ARRAY, "section fields") < 0)
        return r->err;
    if (it.u > VHU_SNAP_MAX_FIELDS)
        return vhu_snap_fail(r, -EBADMSG, "section '%s': %" PRIu64 " field declarations (max %u)",
                             s->name, it.u, VHU_SNAP_MAX_FIELDS);
    if (!r->decl) {
        r->decl = malloc((VHU_SNAP_MAX_FIELDS + 1) * sizeof(*r->decl));
        r->decl_text = malloc(VHU_SNAP_DECL_TEXT_CAP);
        if (!r->decl || !r->decl_text)
            return vhu_snap_fail(r, -ENOMEM, "out of memory");
    }
    r->decl_used = 0;
    unsigned n = (unsigned)it.u;
    for (unsigned i = 0; i < n; i++)
        if (read_decl(r, &r->decl[i], i) < 0)
            return r->err;
    r->decl[n].key = NULL;
    s->fields = r->decl;
    return 0;
}

static int read_section_head(struct vhu_state_reader *r, struct vhu_snap_section_info *s)
{
    uint64_t n = 0, v = 0;
    char k[32];
    bool name = false, ver = false, min = false;
    memset(s, 0, sizeof(*s));
    if (want_map(r, 16, &n, "section record") < 0)
        return r->err;
    for (uint64_t i = 0; i < n; i++) {
        if (want_text(r, k, sizeof(k), "section key") < 0)
            return r->err;
        if (strcmp(k, "name") == 0) {
            name = want_text(r, s->name, sizeof(s->name), "section name") == 0;
        } else if (strcmp(k, "version") == 0) {
            ver = want_uint(r, UINT32_MAX, &v, "section version") == 0;
            s->version = (uint32_t)v;
        } else if (strcmp(k, "min_version") == 0) {
            min = want_uint(r, UINT32_MAX, &v, "section min_version") == 0;
            s->min_version = (uint32_t)v;
        } else if (strcmp(k, "optional") == 0) {
            struct vhu_cbor_item it;
            if (want(r, &it, VHU_CBOR_BOOL, "section optional") == 0)
                s->optional = it.b;
        } else if (strcmp(k, "fields") == 0) {
            read_decls(r, s);
        } else if (strcmp(k, "data") == 0) {
            if (i != n - 1)
                return vhu_snap_fail(r, -EBADMSG, "section '%s': 'data' is not its last entry",
                                     s->name);
            if (!name || !ver || !min)
                return vhu_snap_fail(r, -EBADMSG,
                                     "section record lacks name, version or min_version "
                                     "before its data");
            struct vhu_cbor_item it;
            if (want(r, &it, VHU_CBOR_MAP_INDEF, "section data") < 0)
                return r->err;
            r->in_data = true;
            r->depth = 0;
            r->at_break = false;
            r->have_key = false;
            r->in_blob = false;
            return 0;
        } else {
            vhu_snap_skip_next(r);
        }
        if (r->err)
            return r->err;
    }
    return vhu_snap_fail(r, -EBADMSG, "section record without data");
}

/* After the end record: the zstd frame must end (its checksum verified)
 * with nothing after it. */
int vhu_snap_next_record(struct vhu_state_reader *r, struct vhu_snap_handler *h,
                         struct vhu_snap_section_info *s, unsigned *end_nsections)
{
    uint64_t n = 0, v = 0;
    char k[16];
    if (r->in_data)
        return vhu_snap_fail(r, -EINVAL, "next record requested inside a section");
    if (want_map(r, 1, &n, "record") < 0)
        return r->err;
    if (n != 1)
        return vhu_snap_fail(r, -EBADMSG, "record: map of %" PRIu64 " entries (want 1)", n);
    if (want_text(r, k, sizeof(k), "record type") < 0)
        return r->err;
    if (strcmp(k, "handler") == 0)
        return read_handler(r, h) < 0 ? r->err : 'h';
    if (strcmp(k, "section") == 0)
        return read_section_head(r, s) < 0 ? r->err : 's';
    if (strcmp(k, "end") == 0) {
        if (want_map(r, 16, &n, "end record") < 0)
            return r->err;
        bool have = false;
        for (uint64_t i = 0; i < n; i++) {
            if (want_text(r, k, sizeof(k), "end key") < 0)
                return r->err;
            if (strcmp(k, "sections") == 0) {
                have = want_uint(r, VHU_SNAP_MAX_SECTIONS, &v, "end sections") == 0;
                *end_nsections = (unsigned)v;
            } else {
                vhu_snap_skip_next(r);
            }
            if (r->err)
                return r->err;
        }
        if (!have)
            return vhu_snap_fail(r, -EBADMSG, "end record without a section count");
        return vhu_snap_finish(r) < 0 ? r->err : 'e';
    }
    return vhu_snap_fail(r, -EBADMSG, "unknown record type '%s' at body offset %" PRIu64, k,
                         r->body_off);
}
