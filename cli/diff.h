/* SPDX-License-Identifier: BSD-3-Clause */
/* The structural diff shared by `diff` and `roundtrip`. */
#ifndef VHU_CLI_DIFF_H
#define VHU_CLI_DIFF_H

#include <stdbool.h>

#define DIFF_MAX_IGNORE 64

struct diff_opts {
    const char *ignore[DIFF_MAX_IGNORE]; /* paths or fnmatch patterns */
    unsigned nignore;
    /* B was written by a newer build from A (roundtrip): a section whose
     * version went up, and fields or optional sections only B has, are
     * notes, not differences. */
    bool upgrade_ok;
};

/* Compare two snapshots, streaming both.  fd < 0: open the name as a path
 * ("-": stdin); else the fd is used (and closed).  Prints the result (human
 * or JSON); returns CLI_OK (same), CLI_BAD (differ), CLI_ERR (either
 * cannot be read). */
int cli_diff(const char *name_a, int fd_a, const char *name_b, int fd_b, const struct diff_opts *o);

#endif
