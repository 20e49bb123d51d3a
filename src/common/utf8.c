/* SPDX-License-Identifier: BSD-3-Clause */
/* UTF-8 validation (RFC 3629): no overlong forms, no surrogates, nothing
 * past U+10FFFF. */
#include "internal.h"

/* CBOR text strings are UTF-8 (RFC 8949 3.1); libcbor's streaming decoder
 * does not check, so we do, for every text we use. */
bool vhu_utf8_valid(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t c = p[i];
        size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3
                   : (c & 0xf8) == 0xf0 ? 4 : 0;
        if (!len || len > n - i || (len == 2 && c < 0xc2) || (len == 4 && c > 0xf4))
            return false;
        for (size_t k = 1; k < len; k++)
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
        if (len == 3) {
            unsigned v = (c & 0x0fu) << 12 | (p[i + 1] & 0x3fu) << 6 | (p[i + 2] & 0x3fu);
            if (v < 0x800 || (v >= 0xd800 && v <= 0xdfff))
                return false;
        } else if (len == 4) {
            unsigned v = (c & 0x07u) << 18 | (p[i + 1] & 0x3fu) << 12;
            if (v < 0x10000 || v > 0x10ffff)
                return false;
        }
        i += len;
    }
    return true;
}

