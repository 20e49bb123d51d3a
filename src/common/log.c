/* SPDX-License-Identifier: BSD-3-Clause */
/* Process-wide logging: one formatted line per call to the handler. */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

static vhu_log_fn log_fn;
static void *log_ctx;
static _Atomic int log_level = -1; /* -1: not decided yet */

void vhu_set_log_handler(vhu_log_fn fn, void *ctx)
{
    log_fn = fn;
    log_ctx = ctx;
}

void vhu_set_log_level(enum vhu_log_level level) { atomic_store(&log_level, (int)level); }

static int current_level(void)
{
    int l = atomic_load(&log_level);
    if (l < 0) {
        l = getenv("VHU_DEBUG") ? VHU_LOG_DEBUG : VHU_LOG_INFO;
        atomic_store(&log_level, l);
    }
    return l;
}

static const char *level_name(enum vhu_log_level level)
{
    switch (level) {
    case VHU_LOG_ERROR: return "error";
    case VHU_LOG_WARN: return "warning";
    case VHU_LOG_INFO: return "info";
    default: return "debug";
    }
}

void vhu_log(enum vhu_log_level level, const char *fmt, ...)
{
    if ((int)level > current_level())
        return;
    int saved = errno;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    vhu_log_fn fn = log_fn;
    if (fn)
        fn(log_ctx, level, line);
    else
        fprintf(stderr, "vhu: %s: %s\n", level_name(level), line);
    errno = saved;
}
