/* SPDX-License-Identifier: BSD-3-Clause */
/* One CBOR item head at a time, without building a tree: a tree-building
 * parser would allocate whatever element counts the input claims.  Shared
 * by the snapshot reader (src/state/) and the control protocol (ctl.c). */
#ifndef VHU_CBOR_ITEM_H
#define VHU_CBOR_ITEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum vhu_cbor_type {
    VHU_CBOR_NONE,
    VHU_CBOR_UINT,
    VHU_CBOR_NINT,
    VHU_CBOR_BSTR,
    VHU_CBOR_BSTR_INDEF,
    VHU_CBOR_TSTR,
    VHU_CBOR_TSTR_INDEF,
    VHU_CBOR_ARRAY,
    VHU_CBOR_ARRAY_INDEF,
    VHU_CBOR_MAP,
    VHU_CBOR_MAP_INDEF,
    VHU_CBOR_TAG,
    VHU_CBOR_FLOAT,
    VHU_CBOR_BOOL,
    VHU_CBOR_NULL,
    VHU_CBOR_UNDEF,
    VHU_CBOR_BREAK
};

struct vhu_cbor_item {
    enum vhu_cbor_type t;
    uint64_t u;          /* UINT, NINT (the value is -1 - u), ARRAY/MAP counts, TAG */
    bool b;              /* BOOL */
    const uint8_t *data; /* BSTR/TSTR: into the input, valid while it is */
    size_t len;
};

/* Decode the item head at p[0..len).  0: *used bytes were read; -ENODATA:
 * the input ends inside it, *used is how many bytes it needs in all;
 * -EBADMSG: malformed. */
int vhu_cbor_item_decode(const uint8_t *p, size_t len, struct vhu_cbor_item *it, size_t *used);
/* "unsigned integer", "text string", ... for messages. */
const char *vhu_cbor_type_name(enum vhu_cbor_type t);
/* An indefinite-length string, array or map head. */
bool vhu_cbor_is_indef(enum vhu_cbor_type t);
/* A definite text string equal to s. */
bool vhu_cbor_is_text(const struct vhu_cbor_item *it, const char *s);

#endif
