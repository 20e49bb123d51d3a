/* SPDX-License-Identifier: BSD-3-Clause */
/* Snapshot writer: CBOR items from libcbor's encoders, compressed through
 * zstd's streaming API straight to the fd.  Memory is the two fixed buffers
 * below plus zstd's context, whatever the state's size. */
#include <errno.h>
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

#define ENC_CAP (16u << 10) /* CBOR bytes gathered before compressing */

struct vhu_state_writer {
    int fd, cancel_fd;
    ZSTD_CCtx *cctx;
    bool own_cctx;
    uint8_t enc[ENC_CAP];
    size_t enc_len;
    uint8_t *out;
    size_t out_cap;
    int err;
    char why[VHU_REASON_MAX];
    bool in_section, in_blob;
    unsigned depth;
    uint64_t bytes_out;
    uint32_t format; /* the header's */
};

static int fail(struct vhu_state_writer *w, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct vhu_state_writer *w, int err, const char *fmt, ...)
{
    if (w->err)
        return w->err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->why, sizeof(w->why), fmt, ap);
    va_end(ap);
    w->err = err;
    return err;
}

struct vhu_state_writer *vhu_snap_writer_new(int fd, int cancel_fd, int level, int workers,
                                             ZSTD_CCtx *cctx)
{
    struct vhu_state_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->fd = fd;
    w->cancel_fd = cancel_fd;
    w->out_cap = ZSTD_CStreamOutSize();
    w->out = malloc(w->out_cap);
    w->own_cctx = !cctx;
    w->cctx = cctx ? cctx : ZSTD_createCCtx();
    if (!w->out || !w->cctx) {
        vhu_snap_writer_free(w);
        return NULL;
    }
    ZSTD_CCtx_reset(w->cctx, ZSTD_reset_session_and_parameters);
    ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, level);
    ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1);
    if (workers > 0 && ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_nbWorkers, workers)))
        vhu_warn("state: zstd has no worker threads here; compressing on one thread");
    return w;
}

void vhu_snap_writer_free(struct vhu_state_writer *w)
{
    if (!w)
        return;
    if (w->own_cctx)
        ZSTD_freeCCtx(w->cctx);
    free(w->out);
    free(w);
}

int vhu_snap_writer_error(const struct vhu_state_writer *w, const char **why)
{
    if (why)
        *why = w->why;
    return w->err;
}

uint64_t vhu_snap_writer_bytes_out(const struct vhu_state_writer *w) { return w->bytes_out; }

/* Write all of p to the fd; a readable cancel_fd or a reader that went
 * away ends it. */
static int write_fd(struct vhu_state_writer *w, const void *p, size_t n)
{
    const uint8_t *b = p;
    /* A reader that keeps up never makes the write wait: look for a cancel
     * once per buffer too. */
    struct pollfd pc = {.fd = w->cancel_fd, .events = POLLIN};
    if (w->cancel_fd >= 0 && poll(&pc, 1, 0) > 0)
        return fail(w, -ECANCELED, "transfer cancelled");
    while (n) {
        ssize_t r = write(w->fd, b, n);
        if (r > 0) {
            b += r;
            n -= (size_t)r;
            w->bytes_out += (uint64_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno == EAGAIN) {
            struct pollfd pf[2] = {{.fd = w->fd, .events = POLLOUT},
                                   {.fd = w->cancel_fd, .events = POLLIN}};
            if (poll(pf, w->cancel_fd >= 0 ? 2 : 1, -1) < 0 && errno != EINTR)
                return fail(w, -errno, "waiting to write: %s", vhu_strerror(-errno));
            if (w->cancel_fd >= 0 && pf[1].revents)
                return fail(w, -ECANCELED, "transfer cancelled");
            continue;
        }
        int e = r < 0 ? -errno : -EIO;
        return fail(w, e, "writing the state after %llu bytes: %s",
                    (unsigned long long)w->bytes_out, vhu_strerror(e));
    }
    return 0;
}

/* Feed bytes to zstd and write what comes out. */
static int compress(struct vhu_state_writer *w, const void *p, size_t n, ZSTD_EndDirective mode)
{
    ZSTD_inBuffer in = {p, n, 0};
    for (;;) {
        ZSTD_outBuffer out = {w->out, w->out_cap, 0};
        size_t left = ZSTD_compressStream2(w->cctx, &out, &in, mode);
        if (ZSTD_isError(left))
            return fail(w, -EIO, "zstd: %s", ZSTD_getErrorName(left));
        if (out.pos && write_fd(w, w->out, out.pos) < 0)
            return w->err;
        bool done = mode == ZSTD_e_continue ? in.pos == in.size : left == 0;
        if (done)
            return 0;
    }
}

static int flush_enc(struct vhu_state_writer *w)
{
    if (!w->enc_len || w->err)
        return w->err;
    int r = compress(w, w->enc, w->enc_len, ZSTD_e_continue);
    w->enc_len = 0;
    return r;
}

/* Append raw bytes to the CBOR body. */
static int body(struct vhu_state_writer *w, const void *p, size_t n)
{
    if (w->err)
        return w->err;
    if (n > ENC_CAP / 2) {
        if (flush_enc(w) < 0)
            return w->err;
        return compress(w, p, n, ZSTD_e_continue);
    }
    if (w->enc_len + n > ENC_CAP && flush_enc(w) < 0)
        return w->err;
    memcpy(w->enc + w->enc_len, p, n);
    w->enc_len += n;
    return 0;
}

/* Encode one CBOR head with a libcbor encoder into the body. */
#define ENC(w, call)                                                                               \
    do {                                                                                           \
        unsigned char h_[16];                                                                      \
        unsigned char *buffer = h_;                                                                \
        size_t buffer_size = sizeof(h_);                                                           \
        size_t n_ = (call);                                                                        \
        if (!n_)                                                                                   \
            return fail((w), -EINVAL, "CBOR encoding");                                            \
        if (body((w), h_, n_) < 0)                                                                 \
            return (w)->err;                                                                       \
    } while (0)

static int enc_uint(struct vhu_state_writer *w, uint64_t v)
{
    ENC(w, cbor_encode_uint(v, buffer, buffer_size));
    return 0;
}

static int enc_text(struct vhu_state_writer *w, const char *s, size_t n)
{
    ENC(w, cbor_encode_string_start(n, buffer, buffer_size));
    return body(w, s, n);
}

static int enc_map(struct vhu_state_writer *w, size_t n)
{
    ENC(w, cbor_encode_map_start(n, buffer, buffer_size));
    return 0;
}

static int enc_kv_uint(struct vhu_state_writer *w, const char *k, uint64_t v)
{
    if (enc_text(w, k, strlen(k)) < 0)
        return w->err;
    return enc_uint(w, v);
}

static int enc_bool(struct vhu_state_writer *w, bool b)
{
    ENC(w, cbor_encode_bool(b, buffer, buffer_size));
    return 0;
}

/* ---- the header: plain, before the compressed frame ---- */

/* A small growable buffer for the header's CBOR. */
struct hbuf {
    uint8_t b[VHU_SNAP_HEADER_MAX];
    size_t n;
    bool overflow;
};

static void hput(struct hbuf *h, const void *p, size_t n)
{
    if (h->n + n > sizeof(h->b)) {
        h->overflow = true;
        return;
    }
    memcpy(h->b + h->n, p, n);
    h->n += n;
}

#define HENC(h, call)                                                                              \
    do {                                                                                           \
        unsigned char h_[16];                                                                      \
        unsigned char *buffer = h_;                                                                \
        size_t buffer_size = sizeof(h_);                                                           \
        hput((h), h_, (call));                                                                     \
    } while (0)

static void htext(struct hbuf *h, const char *s)
{
    size_t n = strlen(s);
    HENC(h, cbor_encode_string_start(n, buffer, buffer_size));
    hput(h, s, n);
}

int vhu_snap_write_header(struct vhu_state_writer *w, const struct vhu_snap_header *hd)
{
    struct hbuf *h = calloc(1, sizeof(*h));
    if (!h)
        return fail(w, -ENOMEM, "out of memory");
    w->format = hd->format;
    hput(h, VHU_SNAP_MAGIC, VHU_SNAP_MAGIC_LEN);
    HENC(h, cbor_encode_map_start(4, buffer, buffer_size));
    htext(h, "format");
    HENC(h, cbor_encode_uint(hd->format, buffer, buffer_size));
    htext(h, "device");
    htext(h, hd->device);
    htext(h, "producer");
    htext(h, hd->producer);
    htext(h, "sections");
    HENC(h, cbor_encode_array_start(hd->nsections, buffer, buffer_size));
    for (unsigned i = 0; i < hd->nsections; i++) {
        const struct vhu_snap_section_info *s = &hd->sections[i];
        HENC(h, cbor_encode_map_start(4, buffer, buffer_size));
        htext(h, "name");
        htext(h, s->name);
        htext(h, "version");
        HENC(h, cbor_encode_uint(s->version, buffer, buffer_size));
        htext(h, "min_version");
        HENC(h, cbor_encode_uint(s->min_version, buffer, buffer_size));
        htext(h, "optional");
        HENC(h, cbor_encode_bool(s->optional, buffer, buffer_size));
    }
    int r;
    if (h->overflow) {
        r = fail(w, -EMSGSIZE, "header larger than %u bytes", VHU_SNAP_HEADER_MAX);
    } else {
        uint32_t frame[2] = {VHU_SNAP_SKIPPABLE_MAGIC, (uint32_t)h->n}; /* little-endian hosts */
        r = write_fd(w, frame, sizeof(frame));
        if (r == 0)
            r = write_fd(w, h->b, h->n);
    }
    free(h);
    return r;
}

/* ---- records ---- */

/* Version 1 (format 1): {features, protocol_features, queues: [{index,
 * size, last_avail, enabled}]}, as vhu 0.1.0 wrote it.  Version 2 (format
 * 2): "version" first, and each queue's "layout"; a packed queue's
 * last_avail is its avail position, followed by avail_wrap, used_idx and
 * used_wrap.  A handler the reader would refuse is not written. */
int vhu_snap_write_handler(struct vhu_state_writer *w, const struct vhu_snap_handler *hd)
{
    char why[160];
    uint32_t fmt = vhu_snap_format_for(hd);
    if (vhu_snap_handler_check(hd, why, sizeof(why)) < 0)
        return fail(w, -EINVAL, "%s", why);
    if (w->format != fmt)
        return fail(w, -EINVAL,
                    "a version-%u handler record belongs in a format-%u snapshot, not %u", fmt, fmt,
                    w->format);
    bool v2 = fmt >= 2;
    if (enc_map(w, 1) < 0 || enc_text(w, "handler", 7) < 0 || enc_map(w, v2 ? 4 : 3) < 0 ||
        (v2 && enc_kv_uint(w, "version", VHU_SNAP_HANDLER_VERSION) < 0) ||
        enc_kv_uint(w, "features", hd->features) < 0 ||
        enc_kv_uint(w, "protocol_features", hd->protocol_features) < 0 ||
        enc_text(w, "queues", 6) < 0)
        return w->err;
    ENC(w, cbor_encode_array_start(hd->nqueues, buffer, buffer_size));
    for (unsigned i = 0; i < hd->nqueues; i++) {
        const struct vhu_snap_queue *q = &hd->queues[i];
        bool packed = q->layout == VHU_SNAP_LAYOUT_PACKED;
        if (enc_map(w, !v2      ? 4
                       : packed ? 8
                                : 5) < 0 ||
            enc_kv_uint(w, "index", q->index) < 0 || enc_kv_uint(w, "size", q->size) < 0 ||
            enc_kv_uint(w, "last_avail", q->last_avail) < 0 || enc_text(w, "enabled", 7) < 0 ||
            enc_bool(w, q->enabled) < 0)
            return w->err;
        if (v2 && (enc_text(w, "layout", 6) < 0 ||
                   enc_text(w, packed ? "packed" : "split", packed ? 6 : 5) < 0))
            return w->err;
        if (packed && (enc_text(w, "avail_wrap", 10) < 0 || enc_bool(w, q->avail_wrap) < 0 ||
                       enc_kv_uint(w, "used_idx", q->used_idx) < 0 ||
                       enc_text(w, "used_wrap", 9) < 0 || enc_bool(w, q->used_wrap) < 0))
            return w->err;
    }
    return 0;
}

static const char *const type_names[] = {"any", "uint", "int", "bool", "text", "bytes", "map"};
#define NTYPES (sizeof(type_names) / sizeof(type_names[0]))

const char *vhu_snap_type_name(enum vhu_state_type t)
{
    return (unsigned)t < NTYPES ? type_names[t] : NULL;
}

bool vhu_snap_type_of(const uint8_t *name, size_t n, enum vhu_state_type *t)
{
    for (unsigned i = 0; i < NTYPES; i++)
        if (strlen(type_names[i]) == n && memcmp(type_names[i], name, n) == 0) {
            *t = (enum vhu_state_type)i;
            return true;
        }
    return false;
}

/* A declared string: 1..255 bytes of UTF-8 (0..255 for a meaning). */
static bool decl_text_ok(const char *s, bool may_be_empty)
{
    size_t n = strnlen(s, VHU_SNAP_MAX_KEY + 1);
    return n <= VHU_SNAP_MAX_KEY && (n || may_be_empty) && vhu_utf8_valid((const uint8_t *)s, n);
}

static int enc_kv_text(struct vhu_state_writer *w, const char *k, const char *v)
{
    if (enc_text(w, k, strlen(k)) < 0)
        return w->err;
    return enc_text(w, v, strlen(v));
}

/* The section's declared fields (struct vhu_state_field): the record's
 * "fields" array.  A declaration the format cannot carry is the device's
 * bug: the save fails naming it. */
static int enc_fields(struct vhu_state_writer *w, const struct vhu_state_section *s)
{
    size_t n = 0;
    while (s->fields[n].key)
        if (++n > VHU_SNAP_MAX_FIELDS)
            return fail(w, -EINVAL, "section '%s' declares more than %u fields", s->name,
                        VHU_SNAP_MAX_FIELDS);
    if (enc_text(w, "fields", 6) < 0)
        return w->err;
    ENC(w, cbor_encode_array_start(n, buffer, buffer_size));
    for (size_t i = 0; i < n; i++) {
        const struct vhu_state_field *f = &s->fields[i];
        const char *type = vhu_snap_type_name(f->type), *each = vhu_snap_type_name(f->each);
        if (!decl_text_ok(f->key, false) || !type || !each ||
            (f->len_from && !decl_text_ok(f->len_from, false)) ||
            (f->key_prefix && !decl_text_ok(f->key_prefix, false)) ||
            (f->meaning && !decl_text_ok(f->meaning, true)))
            return fail(w, -EINVAL,
                        "section '%s': the declaration of field %zu is not valid "
                        "(key, len_from, key_prefix: 1..255 bytes of UTF-8; meaning: at most "
                        "255; a known type)",
                        s->name, i);
        bool has_each = f->type == VHU_STATE_MAP && f->each != VHU_STATE_ANY;
        if (enc_map(w, 3 + (f->max != 0) + (f->len_from != NULL) + has_each +
                           (f->key_prefix != NULL) + (f->meaning != NULL)) < 0 ||
            enc_kv_text(w, "key", f->key) < 0 || enc_kv_text(w, "type", type) < 0 ||
            enc_kv_uint(w, "since", f->since) < 0 ||
            (f->max && enc_kv_uint(w, "max", f->max) < 0) ||
            (f->len_from && enc_kv_text(w, "len_from", f->len_from) < 0) ||
            (has_each && enc_kv_text(w, "each", each) < 0) ||
            (f->key_prefix && enc_kv_text(w, "key_prefix", f->key_prefix) < 0) ||
            (f->meaning && enc_kv_text(w, "meaning", f->meaning) < 0))
            return w->err;
    }
    return 0;
}

int vhu_snap_section_begin(struct vhu_state_writer *w, const struct vhu_state_section *s)
{
    /* "fields" (when declared) before "data", which stays last. */
    if (enc_map(w, 1) < 0 || enc_text(w, "section", 7) < 0 || enc_map(w, s->fields ? 6 : 5) < 0 ||
        enc_text(w, "name", 4) < 0 || enc_text(w, s->name, strlen(s->name)) < 0 ||
        enc_kv_uint(w, "version", s->version) < 0 ||
        enc_kv_uint(w, "min_version", s->min_version) < 0 || enc_text(w, "optional", 8) < 0 ||
        enc_bool(w, s->optional) < 0 || (s->fields && enc_fields(w, s) < 0) ||
        enc_text(w, "data", 4) < 0)
        return w->err;
    ENC(w, cbor_encode_indef_map_start(buffer, buffer_size));
    w->in_section = true;
    w->depth = 0;
    return 0;
}

int vhu_snap_section_end(struct vhu_state_writer *w)
{
    if (w->err)
        return w->err;
    if (w->in_blob || w->depth)
        return fail(w, -EINVAL, "section ended inside an open %s", w->in_blob ? "blob" : "map");
    ENC(w, cbor_encode_break(buffer, buffer_size));
    w->in_section = false;
    return 0;
}

int vhu_snap_write_end(struct vhu_state_writer *w, unsigned nsections)
{
    if (enc_map(w, 1) < 0 || enc_text(w, "end", 3) < 0 || enc_map(w, 1) < 0 ||
        enc_kv_uint(w, "sections", nsections) < 0 || flush_enc(w) < 0)
        return w->err;
    return compress(w, NULL, 0, ZSTD_e_end);
}

/* ---- what devices call ---- */

/* A field may start here: inside a section, not inside a blob; key sane. */
static int field(struct vhu_state_writer *w, const char *key)
{
    if (w->err)
        return w->err;
    if (!w->in_section)
        return fail(w, -EINVAL, "field '%s' written outside a section", key ? key : "");
    if (w->in_blob)
        return fail(w, -EINVAL, "field '%s' written inside an open blob", key ? key : "");
    size_t n = key ? strlen(key) : 0;
    if (n == 0 || n > VHU_SNAP_MAX_KEY || !vhu_utf8_valid((const uint8_t *)key, n))
        return fail(w, -EINVAL, "field key must be 1..%u bytes of UTF-8", VHU_SNAP_MAX_KEY);
    return enc_text(w, key, n);
}

int vhu_state_put_u64(struct vhu_state_writer *w, const char *key, uint64_t v)
{
    if (field(w, key) < 0)
        return w->err;
    return enc_uint(w, v);
}

int vhu_state_put_i64(struct vhu_state_writer *w, const char *key, int64_t v)
{
    if (field(w, key) < 0)
        return w->err;
    if (v >= 0)
        return enc_uint(w, (uint64_t)v);
    /* CBOR negative integers carry -1 - v. */
    ENC(w, cbor_encode_negint((uint64_t)(-(v + 1)), buffer, buffer_size));
    return 0;
}

int vhu_state_put_bool(struct vhu_state_writer *w, const char *key, bool v)
{
    if (field(w, key) < 0)
        return w->err;
    return enc_bool(w, v);
}

int vhu_state_put_str(struct vhu_state_writer *w, const char *key, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n > VHU_SNAP_MAX_TEXT)
        return fail(w, -EINVAL, "field '%s': string of %zu bytes (max %u)", key, n,
                    VHU_SNAP_MAX_TEXT);
    if (s && !vhu_utf8_valid((const uint8_t *)s, n))
        return fail(w, -EINVAL, "field '%s': string is not UTF-8", key);
    if (field(w, key) < 0)
        return w->err;
    return enc_text(w, s ? s : "", n);
}

int vhu_state_put_bytes(struct vhu_state_writer *w, const char *key, const void *p, size_t n)
{
    if (n > VHU_SNAP_MAX_CHUNK)
        return fail(w, -EINVAL, "field '%s': %zu bytes in one piece (max %u; use a blob)", key, n,
                    VHU_SNAP_MAX_CHUNK);
    if (field(w, key) < 0)
        return w->err;
    ENC(w, cbor_encode_bytestring_start(n, buffer, buffer_size));
    return body(w, p, n);
}

int vhu_state_blob_begin(struct vhu_state_writer *w, const char *key)
{
    if (field(w, key) < 0)
        return w->err;
    ENC(w, cbor_encode_indef_bytestring_start(buffer, buffer_size));
    w->in_blob = true;
    return 0;
}

int vhu_state_blob_write(struct vhu_state_writer *w, const void *p, size_t n)
{
    if (w->err)
        return w->err;
    if (!w->in_blob)
        return fail(w, -EINVAL, "blob data written with no open blob");
    const uint8_t *b = p;
    while (n) {
        size_t c = n < VHU_SNAP_WRITE_CHUNK ? n : VHU_SNAP_WRITE_CHUNK;
        ENC(w, cbor_encode_bytestring_start(c, buffer, buffer_size));
        if (body(w, b, c) < 0)
            return w->err;
        b += c;
        n -= c;
    }
    return 0;
}

int vhu_state_blob_end(struct vhu_state_writer *w)
{
    if (w->err)
        return w->err;
    if (!w->in_blob)
        return fail(w, -EINVAL, "blob ended with no open blob");
    ENC(w, cbor_encode_break(buffer, buffer_size));
    w->in_blob = false;
    return 0;
}

int vhu_state_map_begin(struct vhu_state_writer *w, const char *key)
{
    if (field(w, key) < 0)
        return w->err;
    if (w->depth >= VHU_SNAP_MAX_DEPTH)
        return fail(w, -EINVAL, "map '%s' nested deeper than %u", key, VHU_SNAP_MAX_DEPTH);
    ENC(w, cbor_encode_indef_map_start(buffer, buffer_size));
    w->depth++;
    return 0;
}

int vhu_state_map_end(struct vhu_state_writer *w)
{
    if (w->err)
        return w->err;
    if (!w->depth || w->in_blob)
        return fail(w, -EINVAL, "map ended with no open map");
    ENC(w, cbor_encode_break(buffer, buffer_size));
    w->depth--;
    return 0;
}
