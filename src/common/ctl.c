/* SPDX-License-Identifier: BSD-3-Clause */
/* Control protocol CBOR: one item header at a time (libcbor's streaming
 * decoder) and a bounded encoder. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cbor.h>

#include "ctl.h"

#define CB(name, T, body) \
    static void name(void *ctx, T v) { struct vhu_ctl_item *it = ctx; body; }
CB(cb_u8, uint8_t, it->t = CTL_UINT; it->u = v)
CB(cb_u16, uint16_t, it->t = CTL_UINT; it->u = v)
CB(cb_u32, uint32_t, it->t = CTL_UINT; it->u = v)
CB(cb_u64, uint64_t, it->t = CTL_UINT; it->u = v)
CB(cb_n8, uint8_t, it->t = CTL_NINT; it->u = v)
CB(cb_n16, uint16_t, it->t = CTL_NINT; it->u = v)
CB(cb_n32, uint32_t, it->t = CTL_NINT; it->u = v)
CB(cb_n64, uint64_t, it->t = CTL_NINT; it->u = v)
CB(cb_array, size_t, it->t = CTL_ARRAY; it->u = v)
CB(cb_map, size_t, it->t = CTL_MAP; it->u = v)
CB(cb_tag, uint64_t, it->t = CTL_TAG; it->u = v)
CB(cb_f2, float, (void)v; it->t = CTL_FLOAT)
CB(cb_f4, float, (void)v; it->t = CTL_FLOAT)
CB(cb_f8, double, (void)v; it->t = CTL_FLOAT)
CB(cb_bool, bool, it->t = CTL_BOOL; it->b = v)
static void cb_bstr(void *ctx, cbor_data d, size_t n)
{
    struct vhu_ctl_item *it = ctx;
    it->t = CTL_BSTR;
    it->data = d;
    it->len = n;
}
static void cb_tstr(void *ctx, cbor_data d, size_t n)
{
    struct vhu_ctl_item *it = ctx;
    it->t = CTL_TSTR;
    it->data = d;
    it->len = n;
}
#define CB0(name, type) \
    static void name(void *ctx) { ((struct vhu_ctl_item *)ctx)->t = type; }
CB0(cb_indef, CTL_INDEF)
CB0(cb_null, CTL_NULL)
CB0(cb_undef, CTL_UNDEF)
CB0(cb_break, CTL_BREAK)

static const struct cbor_callbacks callbacks = {
    .uint8 = cb_u8, .uint16 = cb_u16, .uint32 = cb_u32, .uint64 = cb_u64,
    .negint8 = cb_n8, .negint16 = cb_n16, .negint32 = cb_n32, .negint64 = cb_n64,
    .byte_string_start = cb_indef, .byte_string = cb_bstr,
    .string = cb_tstr, .string_start = cb_indef,
    .indef_array_start = cb_indef, .array_start = cb_array,
    .indef_map_start = cb_indef, .map_start = cb_map, .tag = cb_tag,
    .float2 = cb_f2, .float4 = cb_f4, .float8 = cb_f8,
    .undefined = cb_undef, .null = cb_null, .boolean = cb_bool, .indef_break = cb_break,
};

int vhu_ctl_next(const uint8_t *p, size_t len, size_t *pos, struct vhu_ctl_item *it)
{
    memset(it, 0, sizeof(*it));
    if (*pos >= len)
        return -ENODATA;
    struct cbor_decoder_result res = cbor_stream_decode(p + *pos, len - *pos, &callbacks, it);
    if (res.status == CBOR_DECODER_NEDATA)
        return -ENODATA;
    if (res.status != CBOR_DECODER_FINISHED || it->t == CTL_NONE)
        return -EBADMSG;
    *pos += res.read;
    return 0;
}

int vhu_ctl_skip(const uint8_t *p, size_t len, size_t *pos, const struct vhu_ctl_item *it,
                 unsigned depth)
{
    uint64_t n;
    switch (it->t) {
    case CTL_ARRAY: n = it->u; break;
    case CTL_MAP: n = it->u > SIZE_MAX / 2 ? SIZE_MAX : it->u * 2; break;
    case CTL_TAG: n = 1; break;
    case CTL_INDEF: case CTL_BREAK: return -EBADMSG; /* nobody here sends them */
    default: return 0;
    }
    if (depth >= 8 || n > len - *pos)
        return -EBADMSG;
    for (uint64_t i = 0; i < n; i++) {
        struct vhu_ctl_item sub;
        int r = vhu_ctl_next(p, len, pos, &sub);
        if (r == 0)
            r = vhu_ctl_skip(p, len, pos, &sub, depth + 1);
        if (r < 0)
            return r;
    }
    return 0;
}

bool vhu_ctl_is(const struct vhu_ctl_item *it, const char *s)
{
    return it->t == CTL_TSTR && it->len == strlen(s) && memcmp(it->data, s, it->len) == 0;
}

void vhu_ctl_put(struct vhu_ctl_buf *b, const void *data, size_t n)
{
    if (b->err)
        return;
    if (n > b->max || b->len > b->max - n) {
        b->err = -EMSGSIZE;
        return;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->err = -ENOMEM;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

#define PUT(b, call)                           \
    do {                                       \
        unsigned char buffer[16];              \
        size_t n_ = (call);                    \
        if (!n_ && !(b)->err)                  \
            (b)->err = -EINVAL;                \
        if (n_)                                \
            vhu_ctl_put((b), buffer, n_);      \
    } while (0)

void vhu_ctl_put_uint(struct vhu_ctl_buf *b, uint64_t v)
{
    PUT(b, cbor_encode_uint(v, buffer, sizeof(buffer)));
}

void vhu_ctl_put_int(struct vhu_ctl_buf *b, int64_t v)
{
    if (v >= 0)
        PUT(b, cbor_encode_uint((uint64_t)v, buffer, sizeof(buffer)));
    else
        PUT(b, cbor_encode_negint((uint64_t)(-(v + 1)), buffer, sizeof(buffer)));
}

void vhu_ctl_put_text(struct vhu_ctl_buf *b, const char *s)
{
    size_t n = strlen(s);
    PUT(b, cbor_encode_string_start(n, buffer, sizeof(buffer)));
    vhu_ctl_put(b, s, n);
}

void vhu_ctl_put_bool(struct vhu_ctl_buf *b, bool v)
{
    PUT(b, cbor_encode_bool(v, buffer, sizeof(buffer)));
}

void vhu_ctl_put_map(struct vhu_ctl_buf *b, size_t pairs)
{
    PUT(b, cbor_encode_map_start(pairs, buffer, sizeof(buffer)));
}

void vhu_ctl_put_array(struct vhu_ctl_buf *b, size_t n)
{
    PUT(b, cbor_encode_array_start(n, buffer, sizeof(buffer)));
}

size_t vhu_ctl_frame_begin(struct vhu_ctl_buf *b)
{
    size_t at = b->len;
    vhu_ctl_put(b, "\0\0\0\0", 4);
    return at;
}

void vhu_ctl_frame_end(struct vhu_ctl_buf *b, size_t at)
{
    if (b->err)
        return;
    size_t n = b->len - at - 4;
    b->p[at] = (uint8_t)(n >> 24);
    b->p[at + 1] = (uint8_t)(n >> 16);
    b->p[at + 2] = (uint8_t)(n >> 8);
    b->p[at + 3] = (uint8_t)n;
}

void vhu_ctl_consume(struct vhu_ctl_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

void vhu_ctl_buf_free(struct vhu_ctl_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}
