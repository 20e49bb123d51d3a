/* SPDX-License-Identifier: BSD-3-Clause */
/* Snapshot writer and reader internals shared by the transfer thread, the
 * front-end side and (later) vhu-state. */
#ifndef VHU_STATE_INTERNAL_H
#define VHU_STATE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vhu/state.h>
#include <zstd.h>

#include "format.h"

/* What the plain header says. */
struct vhu_snap_section_info {
    char name[VHU_SNAP_MAX_KEY + 1];
    uint32_t version, min_version;
    bool optional;
    /* Read from a section record: the fields its writer declared (a table
     * ended by a NULL key, valid until the next record), or NULL. */
    const struct vhu_state_field *fields;
};

/* The declared types' names in the format ("uint", ...): NULL when t is
 * not a type; and back (false when the name is none of them). */
const char *vhu_snap_type_name(enum vhu_state_type t);
bool vhu_snap_type_of(const uint8_t *name, size_t n, enum vhu_state_type *t);

struct vhu_snap_header {
    uint32_t format;
    char device[VHU_SNAP_MAX_KEY + 1];
    char producer[VHU_SNAP_MAX_KEY + 1];
    unsigned nsections;
    struct vhu_snap_section_info sections[VHU_SNAP_MAX_SECTIONS];
};

/* The handler's own record.  Version 1 (format 1): index, size,
 * last_avail, enabled, split rings only.  Version 2 (format 2) adds each
 * ring's layout, and for a packed ring its avail wrap counter and its used
 * position and wrap counter; last_avail is then the avail position alone. */
enum vhu_snap_layout {
    VHU_SNAP_LAYOUT_NONE,  /* not recorded (version 1) */
    VHU_SNAP_LAYOUT_SPLIT, /* "split" */
    VHU_SNAP_LAYOUT_PACKED /* "packed" */
};
/* Which of a packed ring's fields a record held (the reader fills it; the
 * writer writes all three for a packed ring, none for a split one). */
#define VHU_SNAP_Q_AVAIL_WRAP 1u
#define VHU_SNAP_Q_USED_IDX 2u
#define VHU_SNAP_Q_USED_WRAP 4u
#define VHU_SNAP_Q_PACKED_ALL 7u

struct vhu_snap_queue {
    uint32_t index, size, last_avail;
    bool enabled;
    enum vhu_snap_layout layout;
    bool avail_wrap, used_wrap;
    uint32_t used_idx;
    unsigned have; /* VHU_SNAP_Q_* */
};

struct vhu_snap_handler {
    uint32_t version; /* 1 or 2; the writer writes the matching format */
    uint64_t features, protocol_features;
    unsigned nqueues;
    struct vhu_snap_queue queues[VHU_SNAP_MAX_QUEUES];
};

/* Whether h is consistent in itself: its version's fields only, every
 * ring's layout agreeing with RING_PACKED in its features, a packed ring's
 * positions below its size (at most 0x7fff for a ring of size 0), a split
 * ring's last_avail at most 0xffff.  0, or -EINVAL with why (naming the
 * queue and the field). */
int vhu_snap_handler_check(const struct vhu_snap_handler *h, char *why, size_t n);
/* "split", "packed", or "-" (not recorded: version 1). */
const char *vhu_snap_layout_name(enum vhu_snap_layout l);
/* The format a writer puts into the header for handler record h. */
uint32_t vhu_snap_format_for(const struct vhu_snap_handler *h);

/* ---- writer ---- */

/* Start a snapshot on fd (not owned).  cancel_fd (or -1) aborts blocked
 * writes when readable.  workers: zstd compression threads (0 = none).
 * cctx: a context to reuse (reset here, not freed), or NULL. */
struct vhu_state_writer *vhu_snap_writer_new(int fd, int cancel_fd, int level, int workers,
                                             ZSTD_CCtx *cctx);
void vhu_snap_writer_free(struct vhu_state_writer *w);
int vhu_snap_write_header(struct vhu_state_writer *w, const struct vhu_snap_header *h);
int vhu_snap_write_handler(struct vhu_state_writer *w, const struct vhu_snap_handler *h);
/* Section record: begin (opens its data map), the device's fields, end. */
int vhu_snap_section_begin(struct vhu_state_writer *w, const struct vhu_state_section *s);
int vhu_snap_section_end(struct vhu_state_writer *w);
/* The end record, then the end of the zstd frame. */
int vhu_snap_write_end(struct vhu_state_writer *w, unsigned nsections);
/* First error (0 if none) and its description. */
int vhu_snap_writer_error(const struct vhu_state_writer *w, const char **why);
uint64_t vhu_snap_writer_bytes_out(const struct vhu_state_writer *w);

/* ---- saving a back-end (transfer.c) ---- */

struct vhu_backend;
/* The handler record of b as it is now (its rings' last_avail included). */
void vhu_state_fill_handler(const struct vhu_backend *b, struct vhu_snap_handler *h);
/* The whole SAVE stream of b into fd (header, handler record hd, the
 * device's sections, end): what SET_DEVICE_STATE_FD SAVE writes.  Logs
 * nothing (the snapshot child calls it).  0, or <0 with why filled;
 * *bytes: compressed bytes written. */
int vhu_state_save_stream(struct vhu_backend *b, int fd, int cancel_fd, int workers,
                          ZSTD_CCtx *cctx, const struct vhu_snap_handler *hd, uint64_t *bytes,
                          char *why, size_t n);

/* ---- reader ---- */

/* dctx: a context to reuse (reset here, not freed), or NULL. */
struct vhu_state_reader *vhu_snap_reader_new(int fd, int cancel_fd, ZSTD_DCtx *dctx);
void vhu_snap_reader_free(struct vhu_state_reader *r);
int vhu_snap_read_header(struct vhu_state_reader *r, struct vhu_snap_header *h);
/* Next record: 'h' handler (filled), 's' section (info filled; the reader
 * is then inside its data map: read fields, then vhu_snap_section_done),
 * 'e' end (nsections filled, frame and EOF verified). */
int vhu_snap_next_record(struct vhu_state_reader *r, struct vhu_snap_handler *h,
                         struct vhu_snap_section_info *s, unsigned *end_nsections);
int vhu_snap_section_done(struct vhu_state_reader *r);
int vhu_snap_reader_error(const struct vhu_state_reader *r, const char **why);
/* Bytes of the compressed stream consumed, and of decompressed CBOR. */
uint64_t vhu_snap_reader_offset(const struct vhu_state_reader *r);

/* Walk section data without knowing its schema (vhu-state).  Inside a
 * section (after next_record returned 's'): fields come in order; a MAP
 * field opens a nested map (its fields follow, closed by END); a BLOB field
 * is read with vhu_state_blob_read() until it returns 0; END at depth 0 ends
 * the section's data (then call vhu_snap_section_done). */
enum vhu_snap_ftype {
    VHU_SNAP_UINT,
    VHU_SNAP_NINT,
    VHU_SNAP_BOOL,
    VHU_SNAP_TEXT,
    VHU_SNAP_BYTES,
    VHU_SNAP_BLOB,
    VHU_SNAP_MAP,
    VHU_SNAP_END
};
struct vhu_snap_field {
    enum vhu_snap_ftype type;
    unsigned depth; /* maps open around this field */
    char key[VHU_SNAP_MAX_KEY + 1];
    uint64_t u;          /* UINT value; NINT: the value is -1 - u; BOOL 0/1 */
    const uint8_t *data; /* TEXT/BYTES: valid until the next call */
    size_t len;
};
int vhu_snap_next_field(struct vhu_state_reader *r, struct vhu_snap_field *f);
uint64_t vhu_snap_reader_body_offset(const struct vhu_state_reader *r);

#endif
