/* SPDX-License-Identifier: BSD-3-Clause */
/* Control protocol CBOR: one item header at a time (the shared decoder,
 * cbor_item.c) and a bounded encoder. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cbor.h>

#include "ctl.h"

int vhu_ctl_next(const uint8_t *p, size_t len, size_t *pos, struct vhu_ctl_item *it)
{
    size_t used;
    if (*pos >= len) {
        memset(it, 0, sizeof(*it));
        return -ENODATA;
    }
    int r = vhu_cbor_item_decode(p + *pos, len - *pos, it, &used);
    if (r == 0)
        *pos += used;
    return r;
}

int vhu_ctl_skip(const uint8_t *p, size_t len, size_t *pos, const struct vhu_ctl_item *it,
                 unsigned depth)
{
    uint64_t n;
    switch (it->t) {
    case CTL_ARRAY: n = it->u; break;
    case CTL_MAP: n = it->u > SIZE_MAX / 2 ? SIZE_MAX : it->u * 2; break;
    case CTL_TAG: n = 1; break;
    case VHU_CBOR_BREAK: return -EBADMSG;
    default: return vhu_cbor_is_indef(it->t) ? -EBADMSG : 0; /* nobody here sends them */
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

bool vhu_ctl_is(const struct vhu_ctl_item *it, const char *s) { return vhu_cbor_is_text(it, s); }

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

#define PUT(b, call)                                                                               \
    do {                                                                                           \
        unsigned char buffer[16];                                                                  \
        size_t n_ = (call);                                                                        \
        if (!n_ && !(b)->err)                                                                      \
            (b)->err = -EINVAL;                                                                    \
        if (n_)                                                                                    \
            vhu_ctl_put((b), buffer, n_);                                                          \
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
