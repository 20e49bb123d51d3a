/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu-state: the JSON writer.  Streamed to stdout as it is called (never
 * held in memory); one document per line at top level.  Strings that are
 * not UTF-8 get U+FFFD for each bad byte. */
#ifndef VHU_CLI_JSON_H
#define VHU_CLI_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void j_obj(const char *key); /* key NULL inside an array or at top level */
void j_arr(const char *key);
void j_end(void);                /* close the innermost object or array */
void j_close_to(unsigned depth); /* close until depth containers remain */
unsigned j_depth(void);
void j_str(const char *key, const char *s);
void j_strn(const char *key, const uint8_t *s, size_t n);
void j_u64(const char *key, uint64_t v);
void j_i64(const char *key, int64_t v);
void j_bool(const char *key, bool v);
/* A hex string written in pieces: j_hex_begin, j_hex_more..., j_hex_end. */
void j_hex_begin(const char *key);
void j_hex_more(const uint8_t *p, size_t n);
void j_hex_end(void);
void j_newline(void);

#endif
