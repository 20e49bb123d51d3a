/* SPDX-License-Identifier: BSD-3-Clause */
/* The validator shared by `validate` and `load` (which uses it to explain
 * a refusal). */
#ifndef VHU_CLI_VALIDATE_H
#define VHU_CLI_VALIDATE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define VAL_MAX_DEVVER 64

struct val_opts {
    struct {
        const char *name;
        uint32_t version;
    } devver[VAL_MAX_DEVVER]; /* --device-version NAME=V */
    unsigned ndevver;
};

/* Validate one snapshot (fd < 0: open name; else use and close fd).  Human
 * output goes to out; with cli.json, one object of the "files" array goes
 * to stdout.  Returns CLI_OK, CLI_BAD (problems found) or CLI_ERR (it could
 * not be read). */
int cli_validate_one(const char *name, int fd, FILE *out, const struct val_opts *vo);

#endif
