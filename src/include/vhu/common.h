/* SPDX-License-Identifier: BSD-3-Clause */
/** @file
 * vhu/common.h - export macro, error codes and logging shared by every part
 * of the library.
 *
 * Errors: every function that can fail returns 0 (or a non-negative value)
 * on success and a negative errno-style code on failure; vhu_strerror()
 * names it.  Every error path also logs one line through the log handler
 * saying what was wrong and with which values. */
#ifndef VHU_COMMON_H
#define VHU_COMMON_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Marks a function the library exports (visible when building it). */
#if defined(VHU_BUILDING_LIBRARY)
#define VHU_API __attribute__((visibility("default")))
#else
#define VHU_API
#endif

/** Marks a public function on its way out (docs/abi.md: it stays for at
 * least two minor releases, and until the next soname bump). */
#define VHU_DEPRECATED(msg) __attribute__((deprecated(msg)))

#define VHU_VERSION_MAJOR 0 /**< the headers' version: major */
#define VHU_VERSION_MINOR 1 /**< minor */
#define VHU_VERSION_PATCH 0 /**< patch */

/** "0.1.0" */
VHU_API const char *vhu_version(void);

/** Name of a negative error code returned by a vhu function ("invalid
 * argument", ...).  Never NULL; the string is static. */
VHU_API const char *vhu_strerror(int err);

/** How much a log line matters; a handler gets lines up to the level set. */
enum vhu_log_level { VHU_LOG_ERROR = 0, VHU_LOG_WARN = 1, VHU_LOG_INFO = 2, VHU_LOG_DEBUG = 3 };

/** Receives one formatted line (no trailing newline).  May be called from
 * any thread of the library; must not call back into it. */
typedef void (*vhu_log_fn)(void *ctx, enum vhu_log_level level, const char *line);

/** @{ */
/** Install a process-wide log handler (NULL restores the default, which
 * writes "vhu: LEVEL: line" to stderr) and the most verbose level passed
 * to it.  The default level is VHU_LOG_INFO, or VHU_LOG_DEBUG when the
 * environment variable VHU_DEBUG is set. */
VHU_API void vhu_set_log_handler(vhu_log_fn fn, void *ctx);
VHU_API void vhu_set_log_level(enum vhu_log_level level);
/** @} */
/** Log one line through the handler (for devices built on vhu). */
VHU_API void vhu_log(enum vhu_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif
#endif
