/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu-state: the snapshot input (snapin): a file or stdin fed to the
 * library's streaming reader by a pump thread, bounded in memory; the
 * --max-size limit and a closed stdout stop the reading. */
#ifndef VHU_CLI_INPUT_H
#define VHU_CLI_INPUT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "state/state_internal.h"

#define SNAP_HEAD_CAP (8 + VHU_SNAP_HEADER_MAX + 32)
struct snapin {
    char name[256]; /* for messages */
    int in_fd;      /* the input; closed at the end unless stdin */
    bool own_in;
    int rd, wr;  /* the pipe the library reads from / the pump feeds */
    int stop_fd; /* eventfd: the pump stops when it is readable */
    pthread_t pump;
    bool pump_running;
    atomic_uint_fast64_t raw; /* input bytes read so far */
    atomic_int in_err;        /* errno of a failed read of the input */
    atomic_bool pump_done;
    uint8_t *head; /* the first input bytes (header, frame header) */
    atomic_size_t head_len;
    struct vhu_state_reader *r;
    struct vhu_snap_header *h;
    bool too_big;
    bool out_err;  /* stdout failed (closed pipe) */
    int dctx_slot; /* the pooled zstd context used, or -1 */
    char why[512];
};
/* Open path ("-": stdin), or an fd already open (owned).  CLI_ERR with a
 * message on failure. */
int snapin_open(struct snapin *s, const char *path);
int snapin_open_fd(struct snapin *s, const char *name, int fd);
void snapin_close(struct snapin *s);
int snapin_header(struct snapin *s);
int snapin_record(struct snapin *s, struct vhu_snap_handler *h, struct vhu_snap_section_info *si,
                  unsigned *nend);
int snapin_field(struct snapin *s, struct vhu_snap_field *f);
ssize_t snapin_blob_read(struct snapin *s, void *buf, size_t cap);
int snapin_section_done(struct snapin *s);
/* After an error: the message, and its exit code (CLI_ERR for I/O, CLI_BAD
 * for a damaged or refused snapshot). */
const char *snapin_why(struct snapin *s, int *code);
uint64_t snapin_offset(const struct snapin *s);      /* stream byte */
uint64_t snapin_body_offset(const struct snapin *s); /* decompressed byte */
/* Skip the rest of the map just entered (after a MAP field), or drain a
 * blob just opened (after a BLOB field). */
int snapin_skip_value(struct snapin *s, const struct vhu_snap_field *f);

const char *ftype_name(enum vhu_snap_ftype t);

#endif
