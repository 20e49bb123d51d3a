/* SPDX-License-Identifier: BSD-3-Clause */
/* Guest-write trace, for migration tests: with VHU_TRACE_GUEST_WRITES=PATH
 * in the environment, every writable buffer of every chain pushed (all the
 * guest memory a device may have written for it) is appended to PATH as a
 * line "GPA LEN" (hex, decimal).  It is recorded apart from the dirty log,
 * so a test can tell a guest page that did not migrate and that the
 * back-end wrote (a back-end fault: its bit was missing) from one the
 * back-end never touched (the VMM's).  One write(2) per line, O_APPEND:
 * lines from several rings never interleave and need no flush. */
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../common/internal.h"
#include "vring_internal.h"

static int trace_fd = -1;
static pthread_once_t trace_once = PTHREAD_ONCE_INIT;

static void trace_open(void)
{
    const char *path = getenv("VHU_TRACE_GUEST_WRITES");
    if (!path || !*path)
        return;
    trace_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (trace_fd < 0)
        vhu_err("VHU_TRACE_GUEST_WRITES: cannot open %s", path);
}

bool vhu_trace_guest_writes(void)
{
    pthread_once(&trace_once, trace_open);
    return trace_fd >= 0;
}

void vhu_trace_guest_write(uint64_t gpa, uint64_t len)
{
    char line[48];
    int n = snprintf(line, sizeof(line), "0x%" PRIx64 " %" PRIu64 "\n", gpa, len);
    if (n > 0 && write(trace_fd, line, (size_t)n) < 0) {
        /* A test that asked for the trace reads a short one as missing
         * writes; nothing else to do here. */
    }
}
