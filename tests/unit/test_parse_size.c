/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu_parse_size (src/common/parse_size.c): the sizes vhu-state --max-size
 * and vhu-blk --ram take. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/parse_size.h"

static void test_good_sizes(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        uint64_t v;
    } good[] = {
        {"0", 0},
        {"512", 512},
        {"4k", 4096},
        {"64K", 64ull << 10},
        {"16M", 16ull << 20},
        {"16MiB", 16ull << 20},
        {"16MB", 16ull << 20},
        {"16mb", 16ull << 20},
        {"1G", 1ull << 30},
        {"1GiB", 1ull << 30},
        {"2T", 2ull << 40},
        {"18446744073709551615", UINT64_MAX},
        {"16777215T", 16777215ull << 40},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        uint64_t v = 7;
        if (!vhu_parse_size(good[i].s, &v) || v != good[i].v)
            fail_msg("'%s' gave %llu, want %llu", good[i].s, (unsigned long long)v,
                     (unsigned long long)good[i].v);
    }
}

static void test_bad_sizes(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "-1",
        "+1",
        " 1",
        "1 ",
        "K",
        "1X",
        "1KK",
        "1iB",
        "1Ki B",
        "1KiBx",
        "1.5G",
        "0x10",
        "1P",
        "1E",
        "1BiK",
        "1bi",
        "18446744073709551616", /* UINT64_MAX + 1 */
        "16777216T",            /* 2^64 */
        "17179869184G",         /* 2^64 */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t v = 7;
        if (vhu_parse_size(bad[i], &v))
            fail_msg("'%s' was taken as %llu", bad[i], (unsigned long long)v);
        assert_int_equal(v, 7); /* untouched */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_sizes),
        cmocka_unit_test(test_bad_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
