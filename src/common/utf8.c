/* SPDX-License-Identifier: BSD-3-Clause */
/* UTF-8 validation (RFC 3629): no overlong forms, no surrogates, nothing
 * past U+10FFFF. */
#include "internal.h"

size_t vhu_utf8_seq_len(const uint8_t *p, size_t n)
{
    if (n == 0)
        return 0;
    uint8_t c = p[0];
    size_t len = c < 0x80             ? 1
                 : (c & 0xe0) == 0xc0 ? 2
                 : (c & 0xf0) == 0xe0 ? 3
                 : (c & 0xf8) == 0xf0 ? 4
                                      : 0;
    if (!len || len > n || (len == 2 && c < 0xc2) || (len == 4 && c > 0xf4))
        return 0;
    for (size_t k = 1; k < len; k++)
        if ((p[k] & 0xc0) != 0x80)
            return 0;
    if (len == 3) {
        unsigned v = (c & 0x0fu) << 12 | (p[1] & 0x3fu) << 6 | (p[2] & 0x3fu);
        if (v < 0x800 || (v >= 0xd800 && v <= 0xdfff))
            return 0;
    } else if (len == 4) {
        unsigned v = (c & 0x07u) << 18 | (p[1] & 0x3fu) << 12;
        if (v < 0x10000 || v > 0x10ffff)
            return 0;
    }
    return len;
}

/* CBOR text strings are UTF-8 (RFC 8949 3.1); libcbor's streaming decoder
 * does not check, so we do, for every text we use. */
bool vhu_utf8_valid(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t len = vhu_utf8_seq_len(p + i, n - i);
        if (!len)
            return false;
        i += len;
    }
    return true;
}
