/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu-state: what every subcommand shares.  Exit codes, the common options
 * (--json, --max-size, --timeout, --help), output helpers for human and
 * JSON output, the progress line, and the snapshot input (snapin: a file or
 * stdin fed to the library's streaming reader, bounded in memory). */
#ifndef VHU_CLI_OPTIONS_H
#define VHU_CLI_OPTIONS_H

#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "state/state_internal.h"

/* Exit codes of every command. */
#define CLI_OK 0   /* ok / same / valid */
#define CLI_BAD 1  /* differs / invalid / refused */
#define CLI_ERR 2  /* usage or I/O error */

struct cli_cmd {
    const char *name;
    int (*run)(const struct cli_cmd *cmd, int argc, char **argv);
    const char *summary;  /* one line */
    const char *usage;    /* "inspect [OPTIONS] FILE" */
    const char *help;     /* options, details and examples */
};

extern const struct cli_cmd cli_inspect_cmd, cli_diff_cmd, cli_validate_cmd, cli_capture_cmd,
    cli_load_cmd, cli_roundtrip_cmd, cli_info_cmd;

/* Settings of the common options. */
struct cli_common {
    bool json;
    uint64_t max_size;   /* decompressed bytes a snapshot may inflate to */
    int timeout_ms;      /* connect and reply timeout for socket commands */
};
extern struct cli_common cli;

/* Long options every command takes; put first in a command's table.  Their
 * short codes are above 255 (or 'h' / 'j'). */
enum { OPT_MAX_SIZE = 0x100, OPT_TIMEOUT, OPT_FIRST_CMD };
#define CLI_COMMON_OPTIONS                                                   \
    {"help", no_argument, NULL, 'h'}, {"json", no_argument, NULL, 'j'},      \
        {"max-size", required_argument, NULL, OPT_MAX_SIZE},                 \
        {"timeout", required_argument, NULL, OPT_TIMEOUT}
#define CLI_COMMON_SHORT "+hj"
/* Handle a common option (or getopt's '?').  Returns -1 when the caller
 * goes on parsing, else the exit code to return now. */
int cli_common_option(const struct cli_cmd *cmd, int c, const char *arg);
void cli_print_help(const struct cli_cmd *cmd, FILE *f);
/* A usage error: message, "try --help", returns CLI_ERR. */
int cli_usage_error(const struct cli_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Parse sizes like 4096, 64K, 16M, 64G. */
bool cli_parse_size(const char *s, uint64_t *out);

/* Messages on stderr, "vhu-state: " first. */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Flush stdout; CLI_ERR (with a message) if writing it failed. */
int cli_finish_output(int code);

/* ---- JSON, streamed (never held in memory) ---- */
void j_obj(const char *key);     /* key NULL inside an array or at top level */
void j_arr(const char *key);
void j_end(void);                /* close the innermost object or array */
void j_close_to(unsigned depth); /* close until depth containers remain */
unsigned j_depth(void);
void j_str(const char *key, const char *s);
void j_strn(const char *key, const uint8_t *s, size_t n);
void j_u64(const char *key, uint64_t v);
void j_i64(const char *key, int64_t v);
void j_bool(const char *key, bool v);
/* A hex string written in pieces: j_hex_begin, j_hex_more..., j_hex_end. */
void j_hex_begin(const char *key);
void j_hex_more(const uint8_t *p, size_t n);
void j_hex_end(void);
void j_newline(void);

/* Human text: a string with control and non-UTF-8 bytes escaped. */
void h_quoted(FILE *f, const uint8_t *s, size_t n);
bool cli_utf8_valid(const uint8_t *s, size_t n);

/* ---- progress line: stderr, only when it is a terminal ---- */
void progress_set(const char *what);
void progress_update(uint64_t in_bytes, uint64_t out_bytes);
void progress_done(void);

/* ---- snapshot input ---- */
#define SNAP_HEAD_CAP (8 + VHU_SNAP_HEADER_MAX + 32)
struct snapin {
    char name[256];            /* for messages */
    int in_fd;                 /* the input; closed at the end unless stdin */
    bool own_in;
    int rd, wr;                /* the pipe the library reads from / the pump feeds */
    int stop_fd;               /* eventfd: the pump stops when it is readable */
    pthread_t pump;
    bool pump_running;
    atomic_uint_fast64_t raw;  /* input bytes read so far */
    atomic_int in_err;         /* errno of a failed read of the input */
    atomic_bool pump_done;
    uint8_t *head;             /* the first input bytes (header, frame header) */
    atomic_size_t head_len;
    struct vhu_state_reader *r;
    struct vhu_snap_header *h;
    bool too_big;
    bool out_err;              /* stdout failed (closed pipe) */
    int dctx_slot;             /* the pooled zstd context used, or -1 */
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

/* ---- the front-end side (capture.c, load.c) ---- */
struct vhu_fe;
/* Connect and negotiate; DEVICE_STATE must be offered. */
int cli_fe_open(const char *sock, struct vhu_fe **out);
/* GET_VRING_BASE on every ring. */
int cli_fe_stop_rings(struct vhu_fe *fe, const char *sock, unsigned *nrings);
/* LOAD fd and CHECK: CLI_OK, CLI_BAD (refused) or CLI_ERR. */
int cli_load_fd(struct vhu_fe *fe, const char *sock, const char *name, int fd);

#endif
