/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu-state: strings in human output. */
#ifndef VHU_CLI_QUOTE_H
#define VHU_CLI_QUOTE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* s in double quotes, with '"' and '\' escaped and control bytes and bytes
 * that are not UTF-8 as \xNN (UTF-8 as the library checks it). */
void h_quoted(FILE *f, const uint8_t *s, size_t n);

#endif
