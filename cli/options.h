/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu-state: what every subcommand shares.  Exit codes, the command table's
 * entry, the common options (--json, --max-size, --timeout, --help), usage
 * errors and messages.  The JSON writer (json.h), quoting (quote.h), the
 * progress line (progress.h), the snapshot input (input.h) and the
 * front-end side (fe.h) are units of their own. */
#ifndef VHU_CLI_OPTIONS_H
#define VHU_CLI_OPTIONS_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes of every command. */
#define CLI_OK 0  /* ok / same / valid */
#define CLI_BAD 1 /* differs / invalid / refused */
#define CLI_ERR 2 /* usage or I/O error */

struct cli_cmd {
    const char *name;
    int (*run)(const struct cli_cmd *cmd, int argc, char **argv);
    const char *summary; /* one line */
    const char *usage;   /* "inspect [OPTIONS] FILE" */
    const char *help;    /* options, details and examples */
};

extern const struct cli_cmd cli_inspect_cmd, cli_diff_cmd, cli_validate_cmd, cli_capture_cmd,
    cli_load_cmd, cli_roundtrip_cmd, cli_info_cmd;

/* Settings of the common options. */
struct cli_common {
    bool json;
    uint64_t max_size; /* decompressed bytes a snapshot may inflate to */
    int timeout_ms;    /* connect and reply timeout for socket commands */
};
extern struct cli_common cli;

/* Long options every command takes; put first in a command's table.  Their
 * short codes are above 255 (or 'h' / 'j'). */
enum { OPT_MAX_SIZE = 0x100, OPT_TIMEOUT, OPT_FIRST_CMD };
#define CLI_COMMON_OPTIONS                                                                         \
    {"help", no_argument, NULL, 'h'}, {"json", no_argument, NULL, 'j'},                            \
        {"max-size", required_argument, NULL, OPT_MAX_SIZE},                                       \
    {                                                                                              \
        "timeout", required_argument, NULL, OPT_TIMEOUT                                            \
    }
#define CLI_COMMON_SHORT "+hj"
/* Handle a common option (or getopt's '?').  Returns -1 when the caller
 * goes on parsing, else the exit code to return now. */
int cli_common_option(const struct cli_cmd *cmd, int c, const char *arg);
void cli_print_help(const struct cli_cmd *cmd, FILE *f);
/* A usage error: message, "try --help", returns CLI_ERR. */
int cli_usage_error(const struct cli_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* load and roundtrip: --socket and exactly one FILE after the options
 * (argv[optind]); "-" is stdin (fd 0), anything else is opened read-only.
 * CLI_ERR with a usage error or a message when either is missing or FILE
 * cannot be opened. */
int cli_socket_and_file(const struct cli_cmd *cmd, const char *sock, int argc, char **argv,
                        int *fd);

/* Messages on stderr, "vhu-state: " first. */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Flush stdout; CLI_ERR (with a message) if writing it failed. */
int cli_finish_output(int code);

/* The other units every command uses, so that a command includes this
 * header only. */
#include "fe.h"
#include "input.h"
#include "json.h"
#include "progress.h"
#include "quote.h"

#endif
