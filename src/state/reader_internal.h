/* SPDX-License-Identifier: BSD-3-Clause */
/* The snapshot reader's layers, one file each:
 *   decode.c  the stream: plain bytes, the zstd frame decompressed in
 *             bounded pieces, one CBOR item at a time, errors
 *   parse.c   the plain header and the records (handler, section, end)
 *   get.c     section data for devices: vhu_state_get_* and friends
 *   walk.c    section data for tools that do not know its schema
 * Everything read is hostile: every length is checked against a limit
 * before use, nesting is bounded, and a stream that ends early, carries a
 * bad checksum or trailing bytes is an error naming the offset. */
#ifndef VHU_STATE_READER_INTERNAL_H
#define VHU_STATE_READER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <zstd.h>

#include "../common/cbor_item.h"
#include "state_internal.h"

#define VHU_SNAP_OUT_CAP (VHU_SNAP_MAX_CHUNK + 64) /* the largest item plus its head */

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
    uint32_t format; /* the header's, once read (0: not read, taken as 1) */
    int err;
    char why[320];
    /* Inside a section's data. */
    bool in_data;
    unsigned depth; /* maps entered below the data map */
    bool at_break;  /* the current map's break was already read */
    bool have_key;  /* a key was peeked */
    char key[VHU_SNAP_MAX_KEY + 1];
    bool in_blob, blob_indef, blob_at_end;
    const uint8_t *chunk;
    size_t chunk_left;
    /* The current section record's field declarations (parse.c): a table
     * of at most VHU_SNAP_MAX_FIELDS and its strings, allocated at that
     * size the first time a record declares fields. */
    struct vhu_state_field *decl;
    char *decl_text;
    size_t decl_used;
};

/* Room for every string of the largest declaration: four per field. */
#define VHU_SNAP_DECL_TEXT_CAP (VHU_SNAP_MAX_FIELDS * 4u * (VHU_SNAP_MAX_KEY + 1))

/* ---- decode.c ---- */

/* Record the first error and its description; returns the sticky error. */
int vhu_snap_fail(struct vhu_state_reader *r, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Plain bytes (the header), through the same input buffer zstd uses. */
int vhu_snap_read_raw(struct vhu_state_reader *r, void *dst, size_t n);
/* The next CBOR item of the body.  Strings point into the reader's buffer
 * until the next call. */
int vhu_snap_next_item(struct vhu_state_reader *r, struct vhu_cbor_item *it);
/* Skip the next value, whatever it is, bounded in nesting. */
int vhu_snap_skip_next(struct vhu_state_reader *r);
/* After the end record: the zstd frame must end (its checksum verified)
 * with nothing after it. */
int vhu_snap_finish(struct vhu_state_reader *r);

/* ---- get.c ---- */

/* Read the next key of the current map into r->key (unless peeked);
 * -ENOENT at the map's end when allow_end. */
int vhu_snap_read_key(struct vhu_state_reader *r, bool allow_end);

#endif
