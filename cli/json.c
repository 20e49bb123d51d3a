/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu-state: the JSON writer, streamed to stdout (see json.h). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "json.h"

#include "common/internal.h"

#define J_MAX 64
struct jlevel {
    bool arr, first;
};
static struct jlevel jst[J_MAX];
static unsigned jn;
static bool j_any; /* something written at top level */

static void j_escaped(const uint8_t *s, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n;) {
        size_t l = vhu_utf8_seq_len(s + i, n - i);
        uint8_t c = s[i];
        if (l > 1) {
            fwrite(s + i, 1, l, stdout);
            i += l;
            continue;
        }
        if (l == 0)
            fputs("\\ufffd", stdout); /* not UTF-8: the replacement character */
        else if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c == '\n')
            fputs("\\n", stdout);
        else if (c == '\t')
            fputs("\\t", stdout);
        else if (c < 0x20 || c == 0x7f)
            printf("\\u%04x", c);
        else
            putchar(c);
        i++;
    }
    putchar('"');
}

static void j_key(const char *key)
{
    if (jn) {
        if (!jst[jn - 1].first)
            putchar(',');
        jst[jn - 1].first = false;
    } else if (j_any) {
        putchar('\n');
    }
    j_any = true;
    if (key && jn && !jst[jn - 1].arr) {
        j_escaped((const uint8_t *)key, strlen(key));
        putchar(':');
    }
}

static void j_open(const char *key, bool arr)
{
    j_key(key);
    putchar(arr ? '[' : '{');
    if (jn < J_MAX)
        jst[jn] = (struct jlevel){.arr = arr, .first = true};
    jn++;
}

void j_obj(const char *key) { j_open(key, false); }
void j_arr(const char *key) { j_open(key, true); }

void j_end(void)
{
    if (!jn)
        return;
    jn--;
    putchar(jn < J_MAX && jst[jn].arr ? ']' : '}');
    if (!jn)
        putchar('\n');
}

void j_close_to(unsigned depth)
{
    while (jn > depth)
        j_end();
}

unsigned j_depth(void) { return jn; }

void j_str(const char *key, const char *s)
{
    j_key(key);
    j_escaped((const uint8_t *)s, strlen(s));
}

void j_strn(const char *key, const uint8_t *s, size_t n)
{
    j_key(key);
    j_escaped(s, n);
}

void j_u64(const char *key, uint64_t v)
{
    j_key(key);
    printf("%" PRIu64, v);
}

void j_i64(const char *key, int64_t v)
{
    j_key(key);
    printf("%" PRId64, v);
}

void j_bool(const char *key, bool v)
{
    j_key(key);
    fputs(v ? "true" : "false", stdout);
}

void j_hex_begin(const char *key)
{
    j_key(key);
    putchar('"');
}

void j_hex_more(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%02x", p[i]);
}

void j_hex_end(void) { putchar('"'); }

void j_newline(void) { putchar('\n'); }
