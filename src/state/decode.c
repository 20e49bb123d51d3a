/* SPDX-License-Identifier: BSD-3-Clause */
/* Snapshot reader, the stream layer: the plain header's bytes, then the
 * zstd frame decompressed in bounded pieces and decoded one CBOR item at a
 * time (cbor_item.c), errors and offsets.  See reader_internal.h. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zstd.h>

#include "../common/internal.h"
#include "reader_internal.h"

static int vfail(struct vhu_state_reader *r, int err, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static int vfail(struct vhu_state_reader *r, int err, const char *fmt, va_list ap)
{
    if (r->err)
        return r->err;
    vsnprintf(r->why, sizeof(r->why), fmt, ap);
    r->err = err;
    return err;
}

int vhu_snap_fail(struct vhu_state_reader *r, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(r, err, fmt, ap);
    va_end(ap);
    return r->err;
}

int vhu_state_fail(struct vhu_state_reader *r, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(r, err < 0 ? err : -EINVAL, fmt, ap);
    va_end(ap);
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
    r->out = malloc(VHU_SNAP_OUT_CAP);
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
    free(r->decl);
    free(r->decl_text);
    free(r);
}

int vhu_snap_reader_error(const struct vhu_state_reader *r, const char **why)
{
    if (why)
        *why = r->why;
    return r->err;
}

uint64_t vhu_snap_reader_offset(const struct vhu_state_reader *r) { return r->consumed; }

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
            return vhu_snap_fail(r, -errno, "reading the state at byte %" PRIu64 ": %s",
                                 r->consumed, vhu_strerror(-errno));
        struct pollfd pf[2] = {{.fd = r->fd, .events = POLLIN},
                               {.fd = r->cancel_fd, .events = POLLIN}};
        if (poll(pf, r->cancel_fd >= 0 ? 2 : 1, -1) < 0 && errno != EINTR)
            return vhu_snap_fail(r, -errno, "waiting for the state: %s", vhu_strerror(-errno));
        if (r->cancel_fd >= 0 && pf[1].revents)
            return vhu_snap_fail(r, -ECANCELED, "transfer cancelled");
    }
}

int vhu_snap_read_raw(struct vhu_state_reader *r, void *dst, size_t n)
{
    uint8_t *d = dst;
    while (n) {
        if (r->in_pos == r->in_len) {
            if (r->fd_eof || read_more(r) < 0)
                return r->err ? r->err : 0;
            if (r->fd_eof && r->in_len == 0)
                return vhu_snap_fail(r, -EPROTO,
                                     "stream truncated at byte %" PRIu64 " (inside the header)",
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
        return vhu_snap_fail(r, -ECANCELED, "transfer cancelled");
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
        ZSTD_outBuffer ob = {r->out, VHU_SNAP_OUT_CAP, r->out_end};
        size_t ret = ZSTD_decompressStream(r->dctx, &ob, &ib);
        r->consumed += ib.pos - r->in_pos;
        r->in_pos = ib.pos;
        size_t produced = ob.pos - r->out_end;
        r->out_end = ob.pos;
        if (ZSTD_isError(ret))
            return vhu_snap_fail(r, -EBADMSG, "compressed data near byte %" PRIu64 ": %s",
                                 r->consumed, ZSTD_getErrorName(ret));
        if (ret == 0)
            r->frame_done = true;
        if (produced)
            return 1;
        if (r->out_end == VHU_SNAP_OUT_CAP)
            return 0; /* no room: the caller decides */
    }
    return 0;
}

/* The next CBOR item of the body.  Strings point into `out` until the next
 * call. */
int vhu_snap_next_item(struct vhu_state_reader *r, struct vhu_cbor_item *it)
{
    for (;;) {
        if (r->err)
            return r->err;
        size_t avail = r->out_end - r->out_start;
        size_t need = 1;
        if (avail) {
            size_t used;
            int e = vhu_cbor_item_decode(r->out + r->out_start, avail, it, &used);
            if (e == 0) {
                r->out_start += used;
                r->body_off += used;
                return 0;
            }
            if (e != -ENODATA)
                return vhu_snap_fail(r, -EBADMSG, "malformed CBOR at body offset %" PRIu64,
                                     r->body_off);
            need = used;
            if (need <= avail || need > VHU_SNAP_OUT_CAP)
                return vhu_snap_fail(r, -EMSGSIZE,
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
            return vhu_snap_fail(r, -EPROTO, "stream truncated at body offset %" PRIu64 "%s",
                                 r->body_off + avail, avail ? " (inside an item)" : "");
    }
}

static int skip_value(struct vhu_state_reader *r, const struct vhu_cbor_item *first, unsigned depth)
{
    if (depth > VHU_SNAP_MAX_DEPTH + 4)
        return vhu_snap_fail(r, -EBADMSG, "values nested deeper than %u at body offset %" PRIu64,
                             VHU_SNAP_MAX_DEPTH + 4, r->body_off);
    struct vhu_cbor_item it = *first;
    switch (it.t) {
    case VHU_CBOR_BSTR_INDEF:
    case VHU_CBOR_TSTR_INDEF: {
        enum vhu_cbor_type chunk = it.t == VHU_CBOR_BSTR_INDEF ? VHU_CBOR_BSTR : VHU_CBOR_TSTR;
        for (;;) {
            if (vhu_snap_next_item(r, &it) < 0)
                return r->err;
            if (it.t == VHU_CBOR_BREAK)
                return 0;
            if (it.t != chunk)
                return vhu_snap_fail(r, -EBADMSG,
                                     "%s inside a chunked string at body offset %" PRIu64,
                                     vhu_cbor_type_name(it.t), r->body_off);
        }
    }
    case VHU_CBOR_ARRAY:
    case VHU_CBOR_MAP: {
        uint64_t n = it.t == VHU_CBOR_MAP ? it.u * 2 : it.u;
        if (it.t == VHU_CBOR_MAP && it.u > UINT64_MAX / 2)
            return vhu_snap_fail(r, -EBADMSG, "map size overflows");
        for (uint64_t i = 0; i < n; i++) {
            if (vhu_snap_next_item(r, &it) < 0 || skip_value(r, &it, depth + 1) < 0)
                return r->err;
        }
        return 0;
    }
    case VHU_CBOR_ARRAY_INDEF:
    case VHU_CBOR_MAP_INDEF:
        for (;;) {
            if (vhu_snap_next_item(r, &it) < 0)
                return r->err;
            if (it.t == VHU_CBOR_BREAK)
                return 0;
            if (skip_value(r, &it, depth + 1) < 0)
                return r->err;
        }
    case VHU_CBOR_TAG:
        if (vhu_snap_next_item(r, &it) < 0)
            return r->err;
        return skip_value(r, &it, depth + 1);
    case VHU_CBOR_BREAK:
        return vhu_snap_fail(r, -EBADMSG, "unexpected break at body offset %" PRIu64, r->body_off);
    default: return 0;
    }
}

int vhu_snap_skip_next(struct vhu_state_reader *r)
{
    struct vhu_cbor_item it;
    if (vhu_snap_next_item(r, &it) < 0)
        return r->err;
    return skip_value(r, &it, 0);
}

int vhu_snap_finish(struct vhu_state_reader *r)
{
    if (r->out_end != r->out_start)
        return vhu_snap_fail(r, -EBADMSG, "data after the end record at body offset %" PRIu64,
                             r->body_off);
    while (!r->frame_done) {
        r->out_start = r->out_end = 0;
        int f = fill(r);
        if (f < 0)
            return f;
        if (f > 0)
            return vhu_snap_fail(r, -EBADMSG, "data after the end record at body offset %" PRIu64,
                                 r->body_off);
        if (!r->frame_done)
            return vhu_snap_fail(
                r, -EPROTO, "stream truncated at byte %" PRIu64 " (compressed frame not finished)",
                r->consumed);
    }
    if (r->in_pos == r->in_len && !r->fd_eof && read_more(r) < 0)
        return r->err;
    if (r->in_pos != r->in_len)
        return vhu_snap_fail(r, -EBADMSG, "trailing bytes after the snapshot at byte %" PRIu64,
                             r->consumed);
    return 0;
}

uint64_t vhu_snap_reader_body_offset(const struct vhu_state_reader *r) { return r->body_off; }
