/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu-state: the progress line of long reads, on stderr and only when it is
 * a terminal. */
#ifndef VHU_CLI_PROGRESS_H
#define VHU_CLI_PROGRESS_H

#include <stdint.h>

void progress_set(const char *what);
void progress_update(uint64_t in_bytes, uint64_t out_bytes);
/* The same line for a stream being written (capture): bytes so far. */
void progress_written(uint64_t bytes);
/* Clear the line (before any other message on stderr). */
void progress_done(void);

#endif
