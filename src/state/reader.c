/* SPDX-License-Identifier: BSD-3-Clause */
/* Snapshot reader: the plain header, then the zstd frame decompressed in
 * bounded pieces and decoded one CBOR item at a time with libcbor's
 * streaming decoder.  Everything read is hostile: every length is checked
 * against a limit before use, nesting is bounded, and a stream that ends
 * early, carries a bad checksum or trailing bytes is an error naming the
 * offset. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cbor.h>
#include <zstd.h>

#include "../common/internal.h"
#include "state_internal.h"

enum item_type {
    IT_UINT, IT_NINT, IT_BSTR, IT_BSTR_INDEF, IT_TSTR, IT_TSTR_INDEF, IT_ARRAY, IT_ARRAY_INDEF,
    IT_MAP, IT_MAP_INDEF, IT_TAG, IT_FLOAT, IT_BOOL, IT_NULL, IT_UNDEF, IT_BREAK
};

struct item {
    enum item_type t;
    uint64_t u;            /* integer value, collection size, tag */
    const uint8_t *data;   /* strings: valid until the next item is read */
    size_t len;
    bool b;
};

#define OUT_CAP (VHU_SNAP_MAX_CHUNK + 64) /* the largest item plus its head */

struct vhu_state_reader {
    int fd, cancel_fd;
    ZSTD_DCtx *dctx;
    bool own_dctx;
    uint8_t *in;
    size_t in_cap, in_pos, in_len;
    uint8_t *out;
    size_t out_start, out_end;
    bool fd_eof, frame_done;
    uint64_t consumed; /* stream bytes consumed */
    uint64_t body_off; /* decompressed bytes decoded */
    unsigned fills;
    int err;
    char why[320];
    /* Inside a section's data. */
    bool in_data;
    unsigned depth;          /* maps entered below the data map */
    bool at_break;           /* the current map's break was already read */
    bool have_key;           /* a key was peeked */
    char key[VHU_SNAP_MAX_KEY + 1];
    bool in_blob, blob_indef, blob_at_end;
    const uint8_t *chunk;
    size_t chunk_left;
};

static int fail(struct vhu_state_reader *r, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct vhu_state_reader *r, int err, const char *fmt, ...)
{
    if (r->err)
        return r->err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->why, sizeof(r->why), fmt, ap);
    va_end(ap);
    r->err = err;
    return err;
}

int vhu_state_fail(struct vhu_state_reader *r, int err, const char *fmt, ...)
{
    if (r->err)
        return r->err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->why, sizeof(r->why), fmt, ap);
    va_end(ap);
    r->err = err < 0 ? err : -EINVAL;
    return r->err;
}

struct vhu_state_reader *vhu_snap_reader_new(int fd, int cancel_fd, ZSTD_DCtx *dctx)
{
    struct vhu_state_reader *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->fd = fd;
    r->cancel_fd = cancel_fd;
    r->in_cap = ZSTD_DStreamInSize();
    r->in = malloc(r->in_cap);
    r->out = malloc(OUT_CAP);
    r->own_dctx = !dctx;
    r->dctx = dctx ? dctx : ZSTD_createDCtx();
    if (!r->in || !r->out || !r->dctx) {
        vhu_snap_reader_free(r);
        return NULL;
    }
    /* A frame asking for a larger window than this is refused, so memory
     * stays bounded whatever the stream claims. */
    ZSTD_DCtx_reset(r->dctx, ZSTD_reset_session_and_parameters);
    ZSTD_DCtx_setParameter(r->dctx, ZSTD_d_windowLogMax, VHU_SNAP_WINDOW_LOG_MAX);
    return r;
}

void vhu_snap_reader_free(struct vhu_state_reader *r)
{
    if (!r)
        return;
    if (r->own_dctx)
        ZSTD_freeDCtx(r->dctx);
    free(r->in);
    free(r->out);
    free(r);
}

int vhu_snap_reader_error(const struct vhu_state_reader *r, const char **why)
{
    if (why)
        *why = r->why;
    return r->err;
}

uint64_t vhu_snap_reader_offset(const struct vhu_state_reader *r)
{
    return r->consumed;
}

static bool cancelled(struct vhu_state_reader *r)
{
    if (r->cancel_fd < 0)
        return false;
    struct pollfd p = {.fd = r->cancel_fd, .events = POLLIN};
    return poll(&p, 1, 0) > 0;
}

/* Read more of the stream into `in` (which must be fully consumed). */
static int read_more(struct vhu_state_reader *r)
{
    r->in_pos = r->in_len = 0;
    for (;;) {
        ssize_t n = read(r->fd, r->in, r->in_cap);
        if (n > 0) {
            r->in_len = (size_t)n;
            return 0;
        }
        if (n == 0) {
            r->fd_eof = true;
            return 0;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return fail(r, -errno, "reading the state at byte %" PRIu64 ": %s", r->consumed,
                        vhu_strerror(-errno));
        struct pollfd pf[2] = {{.fd = r->fd, .events = POLLIN},
                               {.fd = r->cancel_fd, .events = POLLIN}};
        if (poll(pf, r->cancel_fd >= 0 ? 2 : 1, -1) < 0 && errno != EINTR)
            return fail(r, -errno, "waiting for the state: %s", vhu_strerror(-errno));
        if (r->cancel_fd >= 0 && pf[1].revents)
            return fail(r, -ECANCELED, "transfer cancelled");
    }
}

/* Plain bytes (the header), through the same input buffer zstd uses. */
static int read_raw(struct vhu_state_reader *r, void *dst, size_t n)
{
    uint8_t *d = dst;
    while (n) {
        if (r->in_pos == r->in_len) {
            if (r->fd_eof || read_more(r) < 0)
                return r->err ? r->err : 0;
            if (r->fd_eof && r->in_len == 0)
                return fail(r, -EPROTO, "stream truncated at byte %" PRIu64 " (inside the header)",
                            r->consumed);
        }
        size_t c = r->in_len - r->in_pos < n ? r->in_len - r->in_pos : n;
        memcpy(d, r->in + r->in_pos, c);
        r->in_pos += c;
        r->consumed += c;
        d += c;
        n -= c;
    }
    return 0;
}

/* Decompress more into out[out_end..].  1: produced bytes; 0: nothing more
 * (frame ended, or the stream ended); <0 error. */
static int fill(struct vhu_state_reader *r)
{
    if (r->err)
        return r->err;
    if ((++r->fills & 63) == 0 && cancelled(r))
        return fail(r, -ECANCELED, "transfer cancelled");
    while (!r->frame_done) {
        if (r->in_pos == r->in_len) {
            if (r->fd_eof)
                return 0;
            if (read_more(r) < 0)
                return r->err;
            if (r->fd_eof)
                return 0;
        }
        ZSTD_inBuffer ib = {r->in, r->in_len, r->in_pos};
        ZSTD_outBuffer ob = {r->out, OUT_CAP, r->out_end};
        size_t ret = ZSTD_decompressStream(r->dctx, &ob, &ib);
        r->consumed += ib.pos - r->in_pos;
        r->in_pos = ib.pos;
        size_t produced = ob.pos - r->out_end;
        r->out_end = ob.pos;
        if (ZSTD_isError(ret))
            return fail(r, -EBADMSG, "compressed data near byte %" PRIu64 ": %s", r->consumed,
                        ZSTD_getErrorName(ret));
        if (ret == 0)
            r->frame_done = true;
        if (produced)
            return 1;
        if (r->out_end == OUT_CAP)
            return 0; /* no room: the caller decides */
    }
    return 0;
}

/* libcbor streaming callbacks: each fills the item being decoded. */
#define CB(name, T, body) \
    static void name(void *ctx, T v) { struct item *it = ctx; body; }
CB(cb_u8, uint8_t, it->t = IT_UINT; it->u = v)
CB(cb_u16, uint16_t, it->t = IT_UINT; it->u = v)
CB(cb_u32, uint32_t, it->t = IT_UINT; it->u = v)
CB(cb_u64, uint64_t, it->t = IT_UINT; it->u = v)
CB(cb_n8, uint8_t, it->t = IT_NINT; it->u = v)
CB(cb_n16, uint16_t, it->t = IT_NINT; it->u = v)
CB(cb_n32, uint32_t, it->t = IT_NINT; it->u = v)
CB(cb_n64, uint64_t, it->t = IT_NINT; it->u = v)
CB(cb_array, size_t, it->t = IT_ARRAY; it->u = v)
CB(cb_map, size_t, it->t = IT_MAP; it->u = v)
CB(cb_tag, uint64_t, it->t = IT_TAG; it->u = v)
CB(cb_f2, float, (void)v; it->t = IT_FLOAT)
CB(cb_f4, float, (void)v; it->t = IT_FLOAT)
CB(cb_f8, double, (void)v; it->t = IT_FLOAT)
CB(cb_bool, bool, it->t = IT_BOOL; it->b = v)
static void cb_bstr(void *ctx, cbor_data d, size_t n)
{
    struct item *it = ctx;
    it->t = IT_BSTR;
    it->data = d;
    it->len = n;
}
static void cb_tstr(void *ctx, cbor_data d, size_t n)
{
    struct item *it = ctx;
    it->t = IT_TSTR;
    it->data = d;
    it->len = n;
}
#define CB0(name, type) \
    static void name(void *ctx) { ((struct item *)ctx)->t = type; }
CB0(cb_bstr_indef, IT_BSTR_INDEF)
CB0(cb_tstr_indef, IT_TSTR_INDEF)
CB0(cb_array_indef, IT_ARRAY_INDEF)
CB0(cb_map_indef, IT_MAP_INDEF)
CB0(cb_null, IT_NULL)
CB0(cb_undef, IT_UNDEF)
CB0(cb_break, IT_BREAK)

static const struct cbor_callbacks callbacks = {
    .uint8 = cb_u8, .uint16 = cb_u16, .uint32 = cb_u32, .uint64 = cb_u64,
    .negint8 = cb_n8, .negint16 = cb_n16, .negint32 = cb_n32, .negint64 = cb_n64,
    .byte_string_start = cb_bstr_indef, .byte_string = cb_bstr,
    .string = cb_tstr, .string_start = cb_tstr_indef,
    .indef_array_start = cb_array_indef, .array_start = cb_array,
    .indef_map_start = cb_map_indef, .map_start = cb_map, .tag = cb_tag,
    .float2 = cb_f2, .float4 = cb_f4, .float8 = cb_f8,
    .undefined = cb_undef, .null = cb_null, .boolean = cb_bool, .indef_break = cb_break,
};

/* The next CBOR item of the body.  Strings point into `out` until the next
 * call. */
static int next_item(struct vhu_state_reader *r, struct item *it)
{
    for (;;) {
        if (r->err)
            return r->err;
        size_t avail = r->out_end - r->out_start;
        size_t need = 1;
        if (avail) {
            memset(it, 0, sizeof(*it));
            struct cbor_decoder_result res =
                cbor_stream_decode(r->out + r->out_start, avail, &callbacks, it);
            if (res.status == CBOR_DECODER_FINISHED) {
                r->out_start += res.read;
                r->body_off += res.read;
                return 0;
            }
            if (res.status == CBOR_DECODER_ERROR)
                return fail(r, -EBADMSG, "malformed CBOR at body offset %" PRIu64, r->body_off);
            need = res.required;
            if (need <= avail || need > OUT_CAP)
                return fail(r, -EMSGSIZE,
                            "CBOR item at body offset %" PRIu64 " is larger than %u bytes",
                            r->body_off, VHU_SNAP_MAX_CHUNK);
        }
        /* Make room at the end, then decompress more. */
        if (r->out_start) {
            memmove(r->out, r->out + r->out_start, avail);
            r->out_end = avail;
            r->out_start = 0;
        }
        int f = fill(r);
        if (f < 0)
            return f;
        if (f == 0)
            return fail(r, -EPROTO, "stream truncated at body offset %" PRIu64 "%s",
                        r->body_off + avail, avail ? " (inside an item)" : "");
    }
}

static const char *type_name(enum item_type t)
{
    static const char *const n[] = {"unsigned integer", "negative integer", "byte string",
                                    "byte string", "text string", "text string", "array",
                                    "array", "map", "map", "tag", "float", "boolean", "null",
                                    "undefined", "break"};
    return n[t];
}

/* Skip one value, bounded in nesting. */
static int skip_value(struct vhu_state_reader *r, const struct item *first, unsigned depth)
{
    if (depth > VHU_SNAP_MAX_DEPTH + 4)
        return fail(r, -EBADMSG, "values nested deeper than %u at body offset %" PRIu64,
                    VHU_SNAP_MAX_DEPTH + 4, r->body_off);
    struct item it = *first;
    switch (it.t) {
    case IT_BSTR_INDEF:
    case IT_TSTR_INDEF: {
        enum item_type chunk = it.t == IT_BSTR_INDEF ? IT_BSTR : IT_TSTR;
        for (;;) {
            if (next_item(r, &it) < 0)
                return r->err;
            if (it.t == IT_BREAK)
                return 0;
            if (it.t != chunk)
                return fail(r, -EBADMSG, "%s inside a chunked string at body offset %" PRIu64,
                            type_name(it.t), r->body_off);
        }
    }
    case IT_ARRAY:
    case IT_MAP: {
        uint64_t n = it.t == IT_MAP ? it.u * 2 : it.u;
        if (it.t == IT_MAP && it.u > UINT64_MAX / 2)
            return fail(r, -EBADMSG, "map size overflows");
        for (uint64_t i = 0; i < n; i++) {
            if (next_item(r, &it) < 0 || skip_value(r, &it, depth + 1) < 0)
                return r->err;
        }
        return 0;
    }
    case IT_ARRAY_INDEF:
    case IT_MAP_INDEF:
        for (;;) {
            if (next_item(r, &it) < 0)
                return r->err;
            if (it.t == IT_BREAK)
                return 0;
            if (skip_value(r, &it, depth + 1) < 0)
                return r->err;
        }
    case IT_TAG:
        if (next_item(r, &it) < 0)
            return r->err;
        return skip_value(r, &it, depth + 1);
    case IT_BREAK:
        return fail(r, -EBADMSG, "unexpected break at body offset %" PRIu64, r->body_off);
    default:
        return 0;
    }
}

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

static int hnext(struct hcur *c, struct item *it)
{
    memset(it, 0, sizeof(*it));
    if (c->pos >= c->len)
        return fail(c->r, -EBADMSG, "header: ends in the middle of its CBOR map (header byte %zu)",
                    c->pos + VHU_SNAP_MAGIC_LEN);
    struct cbor_decoder_result res = cbor_stream_decode(c->p + c->pos, c->len - c->pos,
                                                        &callbacks, it);
    if (res.status != CBOR_DECODER_FINISHED)
        return fail(c->r, -EBADMSG, "header: malformed CBOR at header byte %zu",
                    c->pos + VHU_SNAP_MAGIC_LEN);
    c->pos += res.read;
    return 0;
}

/* Skip one value; counts are bounded by the bytes left (each item takes at
 * least one), nesting by depth. */
static int hskip(struct hcur *c, const struct item *first, unsigned depth)
{
    if (depth > 8)
        return fail(c->r, -EBADMSG, "header: values nested deeper than 8");
    struct item it;
    uint64_t n = 0;
    bool indef = false;
    switch (first->t) {
    case IT_ARRAY: n = first->u; break;
    case IT_MAP:
        if (first->u > SIZE_MAX / 2)
            return fail(c->r, -EBADMSG, "header: map size overflows");
        n = first->u * 2;
        break;
    case IT_TAG: n = 1; break;
    case IT_ARRAY_INDEF: case IT_MAP_INDEF: case IT_BSTR_INDEF: case IT_TSTR_INDEF:
        indef = true;
        break;
    case IT_BREAK:
        return fail(c->r, -EBADMSG, "header: unexpected break");
    default:
        return 0;
    }
    if (n > c->len - c->pos)
        return fail(c->r, -EBADMSG, "header: a collection claims %" PRIu64 " items in %zu bytes",
                    n, c->len - c->pos);
    for (uint64_t i = 0; indef || i < n; i++) {
        if (hnext(c, &it) < 0)
            return c->r->err;
        if (indef && it.t == IT_BREAK)
            return 0;
        if (hskip(c, &it, depth + 1) < 0)
            return c->r->err;
    }
    return 0;
}

static int htext(struct hcur *c, const struct item *it, char *dst, size_t cap, const char *what)
{
    if (it->t != IT_TSTR || it->len >= cap || memchr(it->data, 0, it->len) ||
        !vhu_utf8_valid(it->data, it->len))
        return fail(c->r, -EBADMSG, "header: '%s' is not UTF-8 text of at most %zu bytes", what,
                    cap - 1);
    memcpy(dst, it->data, it->len);
    dst[it->len] = 0;
    return 0;
}

static int huint32(struct hcur *c, const struct item *it, uint32_t *v, const char *what)
{
    if (it->t != IT_UINT || it->u > UINT32_MAX)
        return fail(c->r, -EBADMSG, "header: '%s' is not an unsigned 32-bit integer", what);
    *v = (uint32_t)it->u;
    return 0;
}

/* A definite map of at most max entries. */
static int hmap(struct hcur *c, uint64_t max, uint64_t *n, const char *what)
{
    struct item it;
    if (hnext(c, &it) < 0)
        return c->r->err;
    if (it.t != IT_MAP || it.u > max)
        return fail(c->r, -EBADMSG, "header: %s is not a map of at most %" PRIu64 " entries",
                    what, max);
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
        struct item k, v;
        if (hnext(c, &k) < 0 || hnext(c, &v) < 0)
            return c->r->err;
        if (k.t == IT_TSTR && !vhu_utf8_valid(k.data, k.len))
            return fail(c->r, -EBADMSG, "header: a section descriptor key is not UTF-8");
        bool known = k.t == IT_TSTR;
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
        } else if (KEY("optional") && v.t == IT_BOOL) {
            s->optional = v.b;
        } else if (hskip(c, &v, 1) < 0) {
            return c->r->err;
        }
    }
    if (!name || !ver || !min)
        return fail(c->r, -EBADMSG, "header: section %u lacks a valid name, version or "
                    "min_version", i);
    for (unsigned k = 0; k < i; k++)
        if (strcmp(h->sections[k].name, s->name) == 0)
            return fail(c->r, -EBADMSG, "header: section '%s' listed twice", s->name);
    return 0;
}

int vhu_snap_read_header(struct vhu_state_reader *r, struct vhu_snap_header *h)
{
    memset(h, 0, sizeof(*h));
    uint32_t frame[2];
    if (read_raw(r, frame, sizeof(frame)) < 0)
        return r->err;
    if (frame[0] != VHU_SNAP_SKIPPABLE_MAGIC)
        return fail(r, -EBADMSG, "not a vhu snapshot: magic 0x%08x at byte 0 (want 0x%08x)",
                    frame[0], VHU_SNAP_SKIPPABLE_MAGIC);
    if (frame[1] < VHU_SNAP_MAGIC_LEN + 1 || frame[1] > VHU_SNAP_HEADER_MAX)
        return fail(r, -EBADMSG, "header length %u at byte 4 (want %u..%u)", frame[1],
                    VHU_SNAP_MAGIC_LEN + 1, VHU_SNAP_HEADER_MAX);
    uint8_t *buf = malloc(frame[1]);
    if (!buf)
        return fail(r, -ENOMEM, "out of memory");
    if (read_raw(r, buf, frame[1]) < 0) {
        free(buf);
        return r->err;
    }
    if (memcmp(buf, VHU_SNAP_MAGIC, VHU_SNAP_MAGIC_LEN) != 0) {
        free(buf);
        return fail(r, -EBADMSG, "not a vhu snapshot: no VHUSTATE magic at byte 8");
    }
    struct hcur c = {.r = r, .p = buf + VHU_SNAP_MAGIC_LEN, .len = frame[1] - VHU_SNAP_MAGIC_LEN};
    bool fmt = false, dev = false, secs = false;
    uint64_t n;
    if (hmap(&c, 64, &n, "the header") < 0)
        goto out;
    for (uint64_t i = 0; i < n; i++) {
        struct item k, v;
        if (hnext(&c, &k) < 0 || hnext(&c, &v) < 0)
            goto out;
        if (k.t == IT_TSTR && !vhu_utf8_valid(k.data, k.len)) {
            fail(r, -EBADMSG, "header: a key is not UTF-8");
            goto out;
        }
        bool known = k.t == IT_TSTR;
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
            if (v.t != IT_ARRAY || v.u > VHU_SNAP_MAX_SECTIONS) {
                fail(r, -EBADMSG, "header: 'sections' is not an array of at most %u",
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
        fail(r, -EBADMSG, "header: %zu bytes after its CBOR map", c.len - c.pos);
        goto out;
    }
    if (!fmt || !dev || !secs) {
        fail(r, -EBADMSG, "header: missing or invalid %s", !fmt ? "'format'"
             : !dev ? "'device'" : "'sections'");
        goto out;
    }
    if (h->format != VHU_SNAP_FORMAT)
        fail(r, -EPROTONOSUPPORT, "snapshot format version %u; this build reads version %u",
             h->format, VHU_SNAP_FORMAT);
out:
    free(buf);
    return r->err;
}

/* ---- records ---- */

static int want(struct vhu_state_reader *r, struct item *it, enum item_type t, const char *what)
{
    if (next_item(r, it) < 0)
        return r->err;
    if (it->t != t)
        return fail(r, -EBADMSG, "%s: expected a %s, found a %s at body offset %" PRIu64, what,
                    type_name(t), type_name(it->t), r->body_off);
    return 0;
}

/* A definite text string into buf. */
static int want_text(struct vhu_state_reader *r, char *buf, size_t cap, const char *what)
{
    struct item it;
    if (want(r, &it, IT_TSTR, what) < 0)
        return r->err;
    if (it.len >= cap || !vhu_utf8_valid(it.data, it.len) || memchr(it.data, 0, it.len))
        return fail(r, -EBADMSG, "%s: not UTF-8 text of at most %zu bytes", what, cap - 1);
    memcpy(buf, it.data, it.len);
    buf[it.len] = 0;
    return 0;
}

static int want_uint(struct vhu_state_reader *r, uint64_t max, uint64_t *v, const char *what)
{
    struct item it;
    if (want(r, &it, IT_UINT, what) < 0)
        return r->err;
    if (it.u > max)
        return fail(r, -EBADMSG, "%s: %" PRIu64 " is out of range (max %" PRIu64 ")", what, it.u,
                    max);
    *v = it.u;
    return 0;
}

/* A definite map header of at most max pairs. */
static int want_map(struct vhu_state_reader *r, uint64_t max, uint64_t *n, const char *what)
{
    struct item it;
    if (want(r, &it, IT_MAP, what) < 0)
        return r->err;
    if (it.u > max)
        return fail(r, -EBADMSG, "%s: map of %" PRIu64 " entries (max %" PRIu64 ")", what, it.u,
                    max);
    *n = it.u;
    return 0;
}

static int skip_next(struct vhu_state_reader *r)
{
    struct item it;
    if (next_item(r, &it) < 0)
        return r->err;
    return skip_value(r, &it, 0);
}

static int read_queue(struct vhu_state_reader *r, struct vhu_snap_queue *q)
{
    uint64_t n = 0, v = 0;
    char k[32];
    if (want_map(r, 16, &n, "handler queue") < 0)
        return r->err;
    for (uint64_t i = 0; i < n; i++) {
        if (want_text(r, k, sizeof(k), "handler queue key") < 0)
            return r->err;
        if (strcmp(k, "index") == 0 && want_uint(r, UINT32_MAX, &v, "queue index") == 0)
            q->index = (uint32_t)v;
        else if (strcmp(k, "size") == 0 && want_uint(r, UINT32_MAX, &v, "queue size") == 0)
            q->size = (uint32_t)v;
        else if (strcmp(k, "last_avail") == 0 &&
                 want_uint(r, UINT32_MAX, &v, "queue last_avail") == 0)
            q->last_avail = (uint32_t)v;
        else if (strcmp(k, "enabled") == 0) {
            struct item it;
            if (want(r, &it, IT_BOOL, "queue enabled") == 0)
                q->enabled = it.b;
        } else if (!r->err)
            skip_next(r);
        if (r->err)
            return r->err;
    }
    return 0;
}

static int read_handler(struct vhu_state_reader *r, struct vhu_snap_handler *h)
{
    uint64_t n = 0;
    char k[32];
    memset(h, 0, sizeof(*h));
    if (want_map(r, 16, &n, "handler record") < 0)
        return r->err;
    for (uint64_t i = 0; i < n; i++) {
        if (want_text(r, k, sizeof(k), "handler key") < 0)
            return r->err;
        if (strcmp(k, "features") == 0) {
            want_uint(r, UINT64_MAX, &h->features, "handler features");
        } else if (strcmp(k, "protocol_features") == 0) {
            want_uint(r, UINT64_MAX, &h->protocol_features, "handler protocol_features");
        } else if (strcmp(k, "queues") == 0) {
            struct item it;
            if (want(r, &it, IT_ARRAY, "handler queues") < 0)
                return r->err;
            if (it.u > VHU_SNAP_MAX_QUEUES)
                return fail(r, -EBADMSG, "handler: %" PRIu64 " queues (max %u)", it.u,
                            VHU_SNAP_MAX_QUEUES);
            h->nqueues = (unsigned)it.u;
            for (unsigned q = 0; q < h->nqueues; q++)
                if (read_queue(r, &h->queues[q]) < 0)
                    return r->err;
        } else {
            skip_next(r);
        }
        if (r->err)
            return r->err;
    }
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
            struct item it;
            if (want(r, &it, IT_BOOL, "section optional") == 0)
                s->optional = it.b;
        } else if (strcmp(k, "data") == 0) {
            if (i != n - 1)
                return fail(r, -EBADMSG, "section '%s': 'data' is not its last entry", s->name);
            if (!name || !ver || !min)
                return fail(r, -EBADMSG, "section record lacks name, version or min_version "
                            "before its data");
            struct item it;
            if (want(r, &it, IT_MAP_INDEF, "section data") < 0)
                return r->err;
            r->in_data = true;
            r->depth = 0;
            r->at_break = false;
            r->have_key = false;
            r->in_blob = false;
            return 0;
        } else {
            skip_next(r);
        }
        if (r->err)
            return r->err;
    }
    return fail(r, -EBADMSG, "section record without data");
}

/* After the end record: the zstd frame must end (its checksum verified)
 * with nothing after it. */
static int finish(struct vhu_state_reader *r)
{
    if (r->out_end != r->out_start)
        return fail(r, -EBADMSG, "data after the end record at body offset %" PRIu64,
                    r->body_off);
    while (!r->frame_done) {
        r->out_start = r->out_end = 0;
        int f = fill(r);
        if (f < 0)
            return f;
        if (f > 0)
            return fail(r, -EBADMSG, "data after the end record at body offset %" PRIu64,
                        r->body_off);
        if (!r->frame_done)
            return fail(r, -EPROTO, "stream truncated at byte %" PRIu64
                        " (compressed frame not finished)", r->consumed);
    }
    if (r->in_pos == r->in_len && !r->fd_eof && read_more(r) < 0)
        return r->err;
    if (r->in_pos != r->in_len)
        return fail(r, -EBADMSG, "trailing bytes after the snapshot at byte %" PRIu64,
                    r->consumed);
    return 0;
}

int vhu_snap_next_record(struct vhu_state_reader *r, struct vhu_snap_handler *h,
                         struct vhu_snap_section_info *s, unsigned *end_nsections)
{
    uint64_t n = 0, v = 0;
    char k[16];
    if (r->in_data)
        return fail(r, -EINVAL, "next record requested inside a section");
    if (want_map(r, 1, &n, "record") < 0)
        return r->err;
    if (n != 1)
        return fail(r, -EBADMSG, "record: map of %" PRIu64 " entries (want 1)", n);
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
                skip_next(r);
            }
            if (r->err)
                return r->err;
        }
        if (!have)
            return fail(r, -EBADMSG, "end record without a section count");
        return finish(r) < 0 ? r->err : 'e';
    }
    return fail(r, -EBADMSG, "unknown record type '%s' at body offset %" PRIu64, k, r->body_off);
}

/* ---- section data: what devices call ---- */

/* Read the next key of the current map into r->key (unless peeked). */
static int read_key(struct vhu_state_reader *r, bool allow_end)
{
    if (r->err)
        return r->err;
    if (!r->in_data)
        return fail(r, -EINVAL, "field read outside a section");
    if (r->in_blob)
        return fail(r, -EINVAL, "field read while a blob is open");
    if (r->have_key)
        return 0;
    if (r->at_break)
        return allow_end ? -ENOENT : fail(r, -EBADMSG, "no more fields in this map");
    struct item it;
    if (next_item(r, &it) < 0)
        return r->err;
    if (it.t == IT_BREAK) {
        r->at_break = true;
        return allow_end ? -ENOENT : fail(r, -EBADMSG, "no more fields in this map");
    }
    if (it.t != IT_TSTR || it.len == 0 || it.len > VHU_SNAP_MAX_KEY)
        return fail(r, -EBADMSG, "field key: expected a text string of 1..%u bytes, found a %s "
                    "at body offset %" PRIu64, VHU_SNAP_MAX_KEY, type_name(it.t), r->body_off);
    if (!vhu_utf8_valid(it.data, it.len) || memchr(it.data, 0, it.len))
        return fail(r, -EBADMSG, "field key at body offset %" PRIu64 " is not UTF-8 text",
                    r->body_off);
    memcpy(r->key, it.data, it.len);
    r->key[it.len] = 0;
    r->have_key = true;
    return 0;
}

/* The next field must be `key`: consume its key. */
static int expect_key(struct vhu_state_reader *r, const char *key)
{
    int e = read_key(r, true);
    if (e == -ENOENT)
        return fail(r, -EBADMSG, "field '%s' missing (end of map)", key);
    if (e < 0)
        return e;
    if (strcmp(r->key, key) != 0)
        return fail(r, -EBADMSG, "expected field '%s', found '%s'", key, r->key);
    r->have_key = false;
    return 0;
}

static int value(struct vhu_state_reader *r, const char *key, struct item *it)
{
    if (expect_key(r, key) < 0 || next_item(r, it) < 0)
        return r->err;
    return 0;
}

static int type_error(struct vhu_state_reader *r, const char *key, const char *want_t,
                      const struct item *it)
{
    return fail(r, -EBADMSG, "field '%s': expected %s, found a %s", key, want_t,
                type_name(it->t));
}

int vhu_state_get_u64(struct vhu_state_reader *r, const char *key, uint64_t *v)
{
    struct item it;
    if (value(r, key, &it) < 0)
        return r->err;
    if (it.t != IT_UINT)
        return type_error(r, key, "an unsigned integer", &it);
    *v = it.u;
    return 0;
}

int vhu_state_get_i64(struct vhu_state_reader *r, const char *key, int64_t *v)
{
    struct item it;
    if (value(r, key, &it) < 0)
        return r->err;
    if ((it.t != IT_UINT && it.t != IT_NINT) || it.u > INT64_MAX)
        return it.t == IT_UINT || it.t == IT_NINT
                   ? fail(r, -ERANGE, "field '%s': integer out of 64-bit signed range", key)
                   : type_error(r, key, "an integer", &it);
    *v = it.t == IT_UINT ? (int64_t)it.u : -1 - (int64_t)it.u;
    return 0;
}

int vhu_state_get_bool(struct vhu_state_reader *r, const char *key, bool *v)
{
    struct item it;
    if (value(r, key, &it) < 0)
        return r->err;
    if (it.t != IT_BOOL)
        return type_error(r, key, "a boolean", &it);
    *v = it.b;
    return 0;
}

int vhu_state_get_str(struct vhu_state_reader *r, const char *key, char *buf, size_t cap)
{
    struct item it;
    if (value(r, key, &it) < 0)
        return r->err;
    if (it.t != IT_TSTR)
        return type_error(r, key, "a text string", &it);
    if (!vhu_utf8_valid(it.data, it.len))
        return fail(r, -EBADMSG, "field '%s': text is not UTF-8", key);
    if (it.len >= cap || memchr(it.data, 0, it.len))
        return fail(r, -ERANGE, "field '%s': string of %zu bytes does not fit %zu", key, it.len,
                    cap);
    memcpy(buf, it.data, it.len);
    buf[it.len] = 0;
    return 0;
}

int vhu_state_blob_open(struct vhu_state_reader *r, const char *key)
{
    struct item it;
    if (value(r, key, &it) < 0)
        return r->err;
    if (it.t == IT_BSTR) {
        r->blob_indef = false;
        r->chunk = it.data;
        r->chunk_left = it.len;
    } else if (it.t == IT_BSTR_INDEF) {
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
        return fail(r, -EINVAL, "blob read with no open blob");
    if (cap == 0)
        return fail(r, -EINVAL, "blob read into an empty buffer");
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
        struct item it;
        if (next_item(r, &it) < 0)
            return r->err;
        if (it.t == IT_BREAK) {
            r->blob_at_end = true;
            break;
        }
        if (it.t != IT_BSTR)
            return fail(r, -EBADMSG, "%s inside a blob at body offset %" PRIu64,
                        type_name(it.t), r->body_off);
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
        ssize_t g = vhu_state_blob_read(r, room ? (uint8_t *)buf + total : &extra,
                                        room ? room : 1);
        if (g < 0)
            return (int)g;
        if (g == 0)
            break;
        if (!room)
            return fail(r, -ERANGE, "field '%s': more than %zu bytes", key, cap);
        total += (size_t)g;
    }
    *n = total;
    return 0;
}

int vhu_state_map_enter(struct vhu_state_reader *r, const char *key)
{
    struct item it;
    if (value(r, key, &it) < 0)
        return r->err;
    if (it.t != IT_MAP_INDEF)
        return type_error(r, key, "a map", &it);
    if (r->depth >= VHU_SNAP_MAX_DEPTH)
        return fail(r, -EBADMSG, "maps nested deeper than %u", VHU_SNAP_MAX_DEPTH);
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
        int e = read_key(r, true);
        if (e == -ENOENT)
            break;
        if (e < 0)
            return e;
        r->have_key = false;
        if (skip_next(r) < 0)
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
        return fail(r, -EINVAL, "map left with no map entered");
    if (skip_rest(r) < 0)
        return r->err;
    r->depth--;
    return 0;
}

int vhu_state_peek_key(struct vhu_state_reader *r, char *buf, size_t cap)
{
    int e = read_key(r, true);
    if (e < 0)
        return e;
    if (strlen(r->key) >= cap)
        return -ERANGE;
    strcpy(buf, r->key);
    return 0;
}

int vhu_state_skip(struct vhu_state_reader *r)
{
    int e = read_key(r, false);
    if (e < 0)
        return e;
    r->have_key = false;
    return skip_next(r);
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

/* ---- generic walking, for tools that do not know the section's schema ---- */

int vhu_snap_next_field(struct vhu_state_reader *r, struct vhu_snap_field *f)
{
    memset(f, 0, sizeof(*f));
    int e = read_key(r, true);
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
    struct item it;
    if (next_item(r, &it) < 0)
        return r->err;
    switch (it.t) {
    case IT_UINT:
        f->type = VHU_SNAP_UINT;
        f->u = it.u;
        return 0;
    case IT_NINT:
        f->type = VHU_SNAP_NINT;
        f->u = it.u; /* the value is -1 - u */
        return 0;
    case IT_BOOL:
        f->type = VHU_SNAP_BOOL;
        f->u = it.b;
        return 0;
    case IT_TSTR:
        if (it.len > VHU_SNAP_MAX_TEXT)
            return fail(r, -EBADMSG, "field '%s': text of %zu bytes (max %u)", f->key, it.len,
                        VHU_SNAP_MAX_TEXT);
        if (!vhu_utf8_valid(it.data, it.len))
            return fail(r, -EBADMSG, "field '%s': text is not UTF-8 (body offset %" PRIu64 ")",
                        f->key, r->body_off);
        f->type = VHU_SNAP_TEXT;
        f->data = it.data;
        f->len = it.len;
        return 0;
    case IT_BSTR:
        f->type = VHU_SNAP_BYTES;
        f->data = it.data;
        f->len = it.len;
        return 0;
    case IT_BSTR_INDEF:
        f->type = VHU_SNAP_BLOB;
        r->in_blob = true;
        r->blob_at_end = false;
        r->blob_indef = true;
        r->chunk = NULL;
        r->chunk_left = 0;
        return 0;
    case IT_MAP_INDEF:
        if (r->depth >= VHU_SNAP_MAX_DEPTH)
            return fail(r, -EBADMSG, "maps nested deeper than %u", VHU_SNAP_MAX_DEPTH);
        f->type = VHU_SNAP_MAP;
        r->depth++;
        r->at_break = false;
        return 0;
    default:
        return fail(r, -EBADMSG, "field '%s': a %s is not a valid section value (body offset %"
                    PRIu64 ")", f->key, type_name(it.t), r->body_off);
    }
}

uint64_t vhu_snap_reader_body_offset(const struct vhu_state_reader *r)
{
    return r->body_off;
}
