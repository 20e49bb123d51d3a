/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu-state: the progress line (see progress.h). */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "progress.h"

static const char *prog_what;
static bool prog_shown;
static int prog_tty = -1;
static struct timespec prog_last, prog_start;

void progress_set(const char *what)
{
    prog_what = what;
    clock_gettime(CLOCK_MONOTONIC, &prog_start);
    prog_last = prog_start;
}

/* Is a line due now?  Quick work shows nothing; long work a line twice a
 * second. */
static bool due(void)
{
    if (prog_tty < 0)
        prog_tty = isatty(2);
    if (!prog_tty || !prog_what)
        return false;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double since =
        (double)(now.tv_sec - prog_last.tv_sec) + (double)(now.tv_nsec - prog_last.tv_nsec) / 1e9;
    double total =
        (double)(now.tv_sec - prog_start.tv_sec) + (double)(now.tv_nsec - prog_start.tv_nsec) / 1e9;
    if (since < 0.5 || total < 1.0)
        return false;
    prog_last = now;
    prog_shown = true;
    return true;
}

void progress_update(uint64_t in_bytes, uint64_t out_bytes)
{
    if (due())
        fprintf(stderr, "\rvhu-state: %s: %" PRIu64 " MiB read, %" PRIu64 " MiB decompressed ",
                prog_what, in_bytes >> 20, out_bytes >> 20);
}

void progress_written(uint64_t bytes)
{
    if (due())
        fprintf(stderr, "\rvhu-state: %s: %" PRIu64 " MiB written ", prog_what, bytes >> 20);
}

void progress_done(void)
{
    if (prog_shown) {
        fputs("\r\033[K", stderr);
        prog_shown = false;
    }
}
