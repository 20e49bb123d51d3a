/* SPDX-License-Identifier: BSD-3-Clause */
/* The control protocol's framing and CBOR, shared by the back-end's control
 * socket (src/backend/control.c) and its client (src/frontend/control.c);
 * docs/control-protocol.md describes the protocol. */
#ifndef VHU_CTL_H
#define VHU_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cbor_item.h"

/* Largest message body (after the 4-byte length) each side accepts. */
#define VHU_CTL_REQ_MAX (64u << 10)
#define VHU_CTL_REPLY_MAX (256u << 10)

/* One CBOR item header, from the shared decoder (cbor_item.h); the control
 * code names its types CTL_*. */
#define vhu_ctl_item vhu_cbor_item
#define CTL_UINT VHU_CBOR_UINT
#define CTL_NINT VHU_CBOR_NINT
#define CTL_BSTR VHU_CBOR_BSTR
#define CTL_TSTR VHU_CBOR_TSTR
#define CTL_ARRAY VHU_CBOR_ARRAY
#define CTL_MAP VHU_CBOR_MAP
#define CTL_TAG VHU_CBOR_TAG
#define CTL_BOOL VHU_CBOR_BOOL

/* Decode the item at p[*pos..len) and advance *pos.  0, -ENODATA (the
 * input ends inside it) or -EBADMSG. */
int vhu_ctl_next(const uint8_t *p, size_t len, size_t *pos, struct vhu_ctl_item *it);
/* Skip the value whose header is `it` (already decoded), nested at most 8
 * deep; counts are bounded by the bytes left (an item is at least one). */
int vhu_ctl_skip(const uint8_t *p, size_t len, size_t *pos, const struct vhu_ctl_item *it,
                 unsigned depth);
/* Is it a text string equal to s? */
bool vhu_ctl_is(const struct vhu_ctl_item *it, const char *s);

/* A bounded growable output buffer; the first failure sticks in err. */
struct vhu_ctl_buf {
    uint8_t *p;
    size_t len, cap, max;
    int err;
};
void vhu_ctl_put(struct vhu_ctl_buf *b, const void *data, size_t n);
void vhu_ctl_put_uint(struct vhu_ctl_buf *b, uint64_t v);
void vhu_ctl_put_int(struct vhu_ctl_buf *b, int64_t v);
void vhu_ctl_put_text(struct vhu_ctl_buf *b, const char *s);
void vhu_ctl_put_bool(struct vhu_ctl_buf *b, bool v);
void vhu_ctl_put_map(struct vhu_ctl_buf *b, size_t pairs);
void vhu_ctl_put_array(struct vhu_ctl_buf *b, size_t n);
/* Start a framed message (reserves its length) / fill in its length. */
size_t vhu_ctl_frame_begin(struct vhu_ctl_buf *b);
void vhu_ctl_frame_end(struct vhu_ctl_buf *b, size_t at);
/* Drop the first n bytes. */
void vhu_ctl_consume(struct vhu_ctl_buf *b, size_t n);
void vhu_ctl_buf_free(struct vhu_ctl_buf *b);

#endif
