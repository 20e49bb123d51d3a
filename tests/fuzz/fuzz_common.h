/* SPDX-License-Identifier: BSD-3-Clause */
/* What the fuzz targets share: little-endian reads of the input, the
 * library's log silenced unless VHU_FUZZ_LOG is set, and (with testdev.h
 * included first) a test device behind a back-end. */
#ifndef VHU_FUZZ_COMMON_H
#define VHU_FUZZ_COMMON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include <vhu/vhu.h>

static inline uint16_t fuzz_le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t fuzz_le32(const uint8_t *p)
{
    return fuzz_le16(p) | (uint32_t)fuzz_le16(p + 2) << 16;
}

static inline void fuzz_drop_log(void *ctx, enum vhu_log_level level, const char *line)
{
    (void)ctx;
    (void)level;
    (void)line;
}

/* Silence the library's log unless VHU_FUZZ_LOG is set; true when it is. */
static inline bool fuzz_log_init(void)
{
    if (getenv("VHU_FUZZ_LOG"))
        return true;
    vhu_set_log_handler(fuzz_drop_log, NULL);
    return false;
}

#ifdef VHU_TESTDEV_H
/* The log set up, a two-ring test device and a back-end on it; aborts when
 * either cannot be made (the target cannot run without them). */
static inline void fuzz_testdev_backend(struct testdev **dev, struct vhu_backend **b)
{
    fuzz_log_init();
    *dev = testdev_new(2);
    if (!*dev || vhu_backend_new(b, testdev_ops(*dev), *dev) < 0)
        abort();
}
#endif

#endif
