/* SPDX-License-Identifier: BSD-3-Clause */
/** @file
 * vhu/state.h - device state: what a device saves and loads, and how a
 * front-end moves it (SET_DEVICE_STATE_FD / CHECK_DEVICE_STATE).
 *
 * A device declares named sections, each with a version, the oldest reader
 * version able to read it, and whether an older back-end that does not know
 * it may skip it.  On save the library calls save_section() for each, on
 * the transfer thread, with a writer; on load it calls load_section() with
 * a reader positioned on that section's data.  The device never sees CBOR
 * or zstd: it puts and gets named fields, in order.
 *
 * Section data is a sequence of named fields (keys up to 255 bytes):
 * unsigned and signed integers, booleans, strings (up to 4096 bytes),
 * byte strings (whole, up to 1 MiB, or streamed as a blob of any size in
 * chunks), and nested maps (16 levels).  Neither side ever holds more than
 * one chunk of a blob: memory does not grow with state size.
 *
 * Errors are sticky: after the first failure every call on the same writer
 * or reader returns it again, so a device can check once at the end. */
#ifndef VHU_STATE_H
#define VHU_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <vhu/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/** What a field holds, as a device declares it (struct vhu_state_field). */
enum vhu_state_type {
    VHU_STATE_ANY,   /**< not declared: any of the ones below */
    VHU_STATE_UINT,  /**< vhu_state_put_u64 */
    VHU_STATE_INT,   /**< vhu_state_put_i64 */
    VHU_STATE_BOOL,  /**< vhu_state_put_bool */
    VHU_STATE_TEXT,  /**< vhu_state_put_str */
    VHU_STATE_BYTES, /**< vhu_state_put_bytes, or a blob */
    VHU_STATE_MAP,   /**< vhu_state_map_begin ... vhu_state_map_end */
};

/** One field of a section, declared next to the section so that tools
 * (vhu-state validate) check and explain any device's snapshots without
 * knowing the device: the writer puts the declaration into the section's
 * record.  It describes what save_section writes, in that order; the
 * library does not check the data against it. */
struct vhu_state_field {
    const char *key;          /**< NULL ends a table */
    enum vhu_state_type type; /**< what save_section writes for it */
    uint32_t since;           /**< the section version that added it (0 = the first) */
    uint64_t max;             /**< UINT: largest value; TEXT, BYTES: most bytes (0: no limit) */
    const char *len_from;     /**< BYTES: its length is this earlier UINT field's value */
    enum vhu_state_type each; /**< MAP: the type of every entry */
    const char *key_prefix;   /**< MAP: every entry's key is this and a decimal number */
    const char *meaning;      /**< one line for people (up to 255 bytes), or NULL */
};

/** One section a device saves. */
struct vhu_state_section {
    const char *name;     /**< unique within the device, e.g. "config" */
    uint32_t version;     /**< what this build writes, and the newest it reads */
    uint32_t min_version; /**< oldest reader version that can read what we write */
    bool optional;        /**< an older back-end that does not know it may skip it */
    /** Its fields (at most 256, keys up to 255 bytes), a table ended by an
     * entry whose key is NULL; or NULL: not declared. */
    const struct vhu_state_field *fields;
};

struct vhu_state_writer;
struct vhu_state_reader;

/* --- Writing a section (inside save_section) --- */

/** @{ */
/** Write one field: key and a value of that type. */
VHU_API int vhu_state_put_u64(struct vhu_state_writer *w, const char *key, uint64_t v);
VHU_API int vhu_state_put_i64(struct vhu_state_writer *w, const char *key, int64_t v);
VHU_API int vhu_state_put_bool(struct vhu_state_writer *w, const char *key, bool v);
VHU_API int vhu_state_put_str(struct vhu_state_writer *w, const char *key, const char *s);
/** @} */
/** A byte string of at most 1 MiB in one piece. */
VHU_API int vhu_state_put_bytes(struct vhu_state_writer *w, const char *key, const void *p,
                                size_t n);
/** @{ */
/** A blob of any size, written in pieces of any size. */
VHU_API int vhu_state_blob_begin(struct vhu_state_writer *w, const char *key);
VHU_API int vhu_state_blob_write(struct vhu_state_writer *w, const void *p, size_t n);
VHU_API int vhu_state_blob_end(struct vhu_state_writer *w);
/** @} */
/** @{ */
/** A nested map of fields. */
VHU_API int vhu_state_map_begin(struct vhu_state_writer *w, const char *key);
VHU_API int vhu_state_map_end(struct vhu_state_writer *w);
/** @} */

/* --- Reading a section (inside load_section): fields in the order they
 * were written.  A get whose key or type does not match is an error naming
 * both.  Fields a device does not read (written by a newer version) are
 * skipped when its load_section returns. --- */

/** @{ */
/** Read the next field, which must have this key and type, into *v. */
VHU_API int vhu_state_get_u64(struct vhu_state_reader *r, const char *key, uint64_t *v);
VHU_API int vhu_state_get_i64(struct vhu_state_reader *r, const char *key, int64_t *v);
VHU_API int vhu_state_get_bool(struct vhu_state_reader *r, const char *key, bool *v);
/** @} */
/** NUL-terminated into buf; -ERANGE when it does not fit. */
VHU_API int vhu_state_get_str(struct vhu_state_reader *r, const char *key, char *buf, size_t cap);
/** A byte string or blob of at most cap bytes, whole; its length in *n. */
VHU_API int vhu_state_get_bytes(struct vhu_state_reader *r, const char *key, void *buf, size_t cap,
                                size_t *n);
/** @{ */
/** A byte string or blob, in pieces: open, then read until it returns 0. */
VHU_API int vhu_state_blob_open(struct vhu_state_reader *r, const char *key);
VHU_API ssize_t vhu_state_blob_read(struct vhu_state_reader *r, void *buf, size_t cap);
/** @} */
/** Enter the nested map under key (its fields are read next). */
VHU_API int vhu_state_map_enter(struct vhu_state_reader *r, const char *key);
/** Leave the current map, skipping what was not read. */
VHU_API int vhu_state_map_leave(struct vhu_state_reader *r);
/** The next field's key in the current map (-ENOENT at its end). */
VHU_API int vhu_state_peek_key(struct vhu_state_reader *r, char *buf, size_t cap);
/** Skip the next field, whatever it is. */
VHU_API int vhu_state_skip(struct vhu_state_reader *r);
/** Name the problem in the load's error message (the library adds the
 * section); returns err. */
VHU_API int vhu_state_fail(struct vhu_state_reader *r, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The front-end side (vhu_fe_save_state() and the rest) is in vhu/frontend.h,
 * libvhu-fe. */

#ifdef __cplusplus
}
#endif
#endif
