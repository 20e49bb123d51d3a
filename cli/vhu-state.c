/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu-state: inspect, diff, validate, capture, load and round-trip vhu
 * device-state snapshots (formats/snapshot-v1.md).  One file per command;
 * this one dispatches and prints help.  The manual is cli/vhu-state.md. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <vhu/common.h>

#include "options.h"

static const struct cli_cmd *const cmds[] = {
    &cli_inspect_cmd, &cli_diff_cmd,      &cli_validate_cmd, &cli_capture_cmd,
    &cli_load_cmd,    &cli_roundtrip_cmd, &cli_info_cmd,
};
#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

static const struct cli_cmd *find(const char *name)
{
    for (size_t i = 0; i < NCMDS; i++)
        if (strcmp(cmds[i]->name, name) == 0)
            return cmds[i];
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: vhu-state COMMAND [OPTIONS] ARGS...\n"
               "       vhu-state help [COMMAND]\n"
               "\n"
               "Inspect, compare, validate, capture and restore vhu device-state snapshots\n"
               "(the bytes a vhost-user back-end writes for SET_DEVICE_STATE_FD).\n"
               "\n"
               "Commands:\n");
    for (size_t i = 0; i < NCMDS; i++)
        fprintf(f, "  %-10s %s\n", cmds[i]->name, cmds[i]->summary);
    fprintf(f,
            "\n"
            "Every command takes --json (stable keys, one JSON document on stdout) and\n"
            "--help.  FILE '-' is stdin (for -o: stdout).  Exit status: 0 ok / same /\n"
            "valid, 1 differs / invalid / refused, 2 usage or I/O error.\n"
            "\n"
            "Examples:\n"
            "  vhu-state inspect snap.vhus\n"
            "  vhu-state capture --socket /run/dev.sock -o - | vhu-state inspect -\n"
            "  vhu-state diff --ignore stats old.vhus new.vhus\n"
            "  vhu-state validate --device-version config=2 formats/corpus/*.vhus\n"
            "  vhu-state roundtrip --socket /run/dev.sock old.vhus\n"
            "  vhu-state info --control /run/dev.ctl\n"
            "\n"
            "vhu-state help COMMAND shows a command's options and examples.\n"
            "vhu %s\n",
            vhu_version());
}

int main(int argc, char **argv)
{
    /* A closed output pipe is an error to report, not a signal to die of. */
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        usage(stderr);
        return CLI_ERR;
    }
    const char *c = argv[1];
    if (strcmp(c, "--help") == 0 || strcmp(c, "-h") == 0) {
        usage(stdout);
        return cli_finish_output(CLI_OK);
    }
    if (strcmp(c, "--version") == 0) {
        printf("vhu-state (vhu %s), snapshot format %u\n", vhu_version(), VHU_SNAP_FORMAT);
        return cli_finish_output(CLI_OK);
    }
    if (strcmp(c, "help") == 0) {
        if (argc == 2) {
            usage(stdout);
            return cli_finish_output(CLI_OK);
        }
        const struct cli_cmd *cmd = find(argv[2]);
        if (!cmd || argc > 3) {
            fprintf(stderr, "vhu-state: help: no command '%s'\n", argv[2]);
            usage(stderr);
            return CLI_ERR;
        }
        cli_print_help(cmd, stdout);
        return cli_finish_output(CLI_OK);
    }
    const struct cli_cmd *cmd = find(c);
    if (!cmd) {
        fprintf(stderr, "vhu-state: unknown command '%s'\n", c);
        usage(stderr);
        return CLI_ERR;
    }
    /* getopt sees the command's own arguments; program name for messages. */
    argv[1] = (char *)"vhu-state";
    return cmd->run(cmd, argc - 1, argv + 1);
}
