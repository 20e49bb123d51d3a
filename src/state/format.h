/* SPDX-License-Identifier: BSD-3-Clause */
/* The snapshot container, versions 1 and 2 (formats/snapshot-v1.md is the
 * spec; version 2 differs only in its handler record, which carries each
 * ring's layout and a packed ring's wrap counters and used position).
 *
 *   zstd skippable frame   magic 0x184D2A56, u32 LE length, then "VHUSTATE"
 *                          and one CBOR map: format, device, producer,
 *                          sections (readable without decompressing)
 *   zstd frame             content checksum; body = CBOR sequence of
 *                          {"handler": ...} {"section": ...}* {"end": ...}
 */
#ifndef VHU_STATE_FORMAT_H
#define VHU_STATE_FORMAT_H

#include <stdint.h>

#define VHU_SNAP_SKIPPABLE_MAGIC 0x184D2A56u
#define VHU_SNAP_MAGIC "VHUSTATE"
#define VHU_SNAP_MAGIC_LEN 8
#define VHU_SNAP_FORMAT 2u     /* the newest this build reads and writes */
#define VHU_SNAP_FORMAT_MIN 1u /* the oldest it reads */
/* The handler record's version: 1 in format 1 (no "version" key, split
 * rings only), 2 in format 2.  A writer uses format 1 unless a ring is
 * packed, so that builds reading only format 1 keep reading it. */
#define VHU_SNAP_HANDLER_VERSION 2u
#define VHU_SNAP_HEADER_MAX 65536u /* bytes of header content */

/* Limits a reader enforces on hostile input, and the writer respects. */
#define VHU_SNAP_MAX_SECTIONS 256u
#define VHU_SNAP_MAX_DEPTH 16u /* nested maps inside section data */
#define VHU_SNAP_MAX_KEY 255u
#define VHU_SNAP_MAX_TEXT 4096u
#define VHU_SNAP_MAX_CHUNK (1u << 20) /* one byte-string (chunk) */
#define VHU_SNAP_WRITE_CHUNK (64u << 10)
#define VHU_SNAP_MAX_QUEUES 256u
#define VHU_SNAP_MAX_FIELDS 256u   /* declared fields of one section */
#define VHU_SNAP_WINDOW_LOG_MAX 24 /* zstd window a reader accepts: 16 MiB */

#endif
