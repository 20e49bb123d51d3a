/* SPDX-License-Identifier: BSD-3-Clause */
/* Sizes on command lines ("4096", "64K", "16M", "1GiB"), for vhu's programs
 * (vhu-state, vhu-blk).  Not part of either library: the static library
 * vhu_parse_size, which the programs link. */
#ifndef VHU_PARSE_SIZE_H
#define VHU_PARSE_SIZE_H

#include <stdbool.h>
#include <stdint.h>

/* A decimal number, optionally followed by K, M, G or T (either case,
 * powers of 1024) and then an optional "i" and an optional "B"/"b" ("64M",
 * "64MiB", "64MB" are all 64 << 20).  False, *out unchanged, on anything
 * else: empty, a leading blank or sign, other characters, or a value above
 * UINT64_MAX. */
bool vhu_parse_size(const char *s, uint64_t *out);

#endif
