/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu-state: strings quoted for human output (see quote.h). */
#include "quote.h"

#include "common/internal.h"

void h_quoted(FILE *f, const uint8_t *s, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        size_t l = vhu_utf8_seq_len(s + i, n - i);
        if (l == 1 && s[i] >= 0x20 && s[i] != 0x7f && s[i] != '"' && s[i] != '\\')
            fputc(s[i], f);
        else if (l > 1)
            fwrite(s + i, 1, l, f);
        else if (s[i] == '"' || s[i] == '\\')
            fprintf(f, "\\%c", s[i]);
        else
            fprintf(f, "\\x%02x", s[i]);
        i += l ? l : 1;
    }
    fputc('"', f);
}
