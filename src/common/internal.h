/* SPDX-License-Identifier: BSD-3-Clause */
/* Private helpers shared by every module of the library. */
#ifndef VHU_INTERNAL_H
#define VHU_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vhu/common.h>

#define VHU_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Size of a buffer that holds the reason for a refusal or a broken ring
 * (the `why` a function fills in for its caller's error line). */
#define VHU_REASON_MAX 256

/* Most queues a device may declare (vhu_device_ops.num_queues); arrays
 * with one entry per queue, such as vhu_backend_pause's, have this many,
 * and a control client believes no larger count. */
#define VHU_MAX_QUEUES 256

#define vhu_err(...) vhu_log(VHU_LOG_ERROR, __VA_ARGS__)
#define vhu_warn(...) vhu_log(VHU_LOG_WARN, __VA_ARGS__)
#define vhu_info(...) vhu_log(VHU_LOG_INFO, __VA_ARGS__)
#define vhu_debug(...) vhu_log(VHU_LOG_DEBUG, __VA_ARGS__)

/* close() that keeps errno and ignores fd < 0; sets *fd to -1. */
void vhu_close_fd(int *fd);

/* [a, a+len) end without wrap: returns false when a + len overflows. */
static inline bool vhu_range_end(uint64_t a, uint64_t len, uint64_t *end)
{
    return !__builtin_add_overflow(a, len, end);
}

/* Is [a, a+alen) inside [b, b+blen)?  Overflow-safe; alen 0 counts as
 * inside when a is within [b, b+blen]. */
static inline bool vhu_range_within(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a >= b && a - b <= blen && alen <= blen - (a - b);
}

/* Is [p, p+n) well-formed UTF-8? */
bool vhu_utf8_valid(const uint8_t *p, size_t n);
/* Length (1-4) of the well-formed UTF-8 sequence at p (n bytes left), 0 if
 * there is none (for tools that escape what is not UTF-8, byte by byte). */
size_t vhu_utf8_seq_len(const uint8_t *p, size_t n);

static inline bool vhu_is_pow2(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

#endif
