/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu-state: the options every command shares (--json, --max-size,
 * --timeout, --help), usage errors, messages and the end of the output (see
 * options.h). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "parse_size.h"
#include "options.h"

struct cli_common cli = {.max_size = 64ull << 30, .timeout_ms = 5000};

/* ---- options ---- */

void cli_print_help(const struct cli_cmd *cmd, FILE *f)
{
    fprintf(f, "usage: vhu-state %s\n\n%s\n\n%s", cmd->usage, cmd->summary, cmd->help);
    fprintf(f, "\nCommon options:\n"
               "  -j, --json          machine-readable output (keys: see vhu-state.md)\n"
               "      --max-size N    refuse a snapshot inflating beyond N bytes (K/M/G/T\n"
               "                      suffixes; default 64G)\n"
               "      --timeout SECS  connect and reply timeout for --socket (default 5)\n"
               "  -h, --help          this text\n"
               "\nManual: cli/vhu-state.md in the vhu sources.\n");
}

int cli_usage_error(const struct cli_cmd *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "vhu-state %s: ", cmd->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: vhu-state %s (try: vhu-state help %s)\n", cmd->usage, cmd->name);
    return CLI_ERR;
}

int cli_socket_and_file(const struct cli_cmd *cmd, const char *sock, int argc, char **argv, int *fd)
{
    if (!sock || optind != argc - 1)
        return cli_usage_error(cmd, "--socket and one FILE expected");
    const char *path = argv[optind];
    if (strcmp(path, "-") == 0) {
        *fd = 0;
        return CLI_OK;
    }
    if ((*fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        cli_err("%s: %s", path, strerror(errno));
        return CLI_ERR;
    }
    return CLI_OK;
}

int cli_common_option(const struct cli_cmd *cmd, int c, const char *arg)
{
    switch (c) {
    case 'h': cli_print_help(cmd, stdout); return cli_finish_output(CLI_OK);
    case 'j': cli.json = true; return -1;
    case OPT_MAX_SIZE:
        if (!vhu_parse_size(arg, &cli.max_size) || cli.max_size == 0)
            return cli_usage_error(cmd, "--max-size: '%s' is not a size (e.g. 512M, 64G)", arg);
        return -1;
    case OPT_TIMEOUT: {
        char *end;
        unsigned long v = strtoul(arg, &end, 10);
        if (*end || end == arg || v < 1 || v > 3600)
            return cli_usage_error(cmd, "--timeout: '%s' is not 1..3600 seconds", arg);
        cli.timeout_ms = (int)v * 1000;
        return -1;
    }
    default:
        /* getopt printed what was wrong. */
        fprintf(stderr, "usage: vhu-state %s (try: vhu-state help %s)\n", cmd->usage, cmd->name);
        return CLI_ERR;
    }
}

void cli_err(const char *fmt, ...)
{
    va_list ap;
    progress_done();
    fputs("vhu-state: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cli_finish_output(int code)
{
    progress_done();
    if (fflush(stdout) != 0 || ferror(stdout)) {
        if (errno != EPIPE)
            fprintf(stderr, "vhu-state: writing the output: %s\n", strerror(errno));
        return CLI_ERR;
    }
    return code;
}
