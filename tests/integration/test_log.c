/* Dirty-page logging as QEMU drives it at migration: SET_LOG_BASE with a
 * shared bitmap while the rings run, SET_FEATURES with LOG_ALL, SET_VRING_ADDR
 * with the LOG flag on the running ring; every page the device writes
 * (buffers and used ring) must then be marked, and nothing when logging is
 * off. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define LOG_BYTES 4096u /* covers 128 MiB of guest memory */

static bool bit(const uint8_t *log, uint64_t gpa)
{
    uint64_t page = gpa / 4096;
    return __atomic_load_n(&log[page / 8], __ATOMIC_ACQUIRE) & (1u << (page % 8));
}

static unsigned count_bits(const uint8_t *log, size_t n)
{
    unsigned c = 0;
    for (size_t i = 0; i < n; i++)
        c += (unsigned)__builtin_popcount(log[i]);
    return c;
}

/* SET_LOG_BASE: the back-end's u64 status (0 ok), or a negative error. */
static int set_log_base(struct vhu_fe *fe, int fd, uint64_t size, uint64_t offset)
{
    struct vhu_log l = {.mmap_size = size, .mmap_offset = offset};
    uint64_t st = 0;
    int r = vhu_fe_call(fe, VHU_REQ_SET_LOG_BASE, VHU_FLAG_VERSION, &l, sizeof(l), &fd, 1, &st,
                        sizeof(st), NULL, NULL);
    if (r < 0)
        return r;
    return r == 8 ? (int)st : -EPROTO;
}

static uint8_t *new_log(int *fd, size_t size)
{
    *fd = memfd_create("log", MFD_CLOEXEC);
    assert_int_equal(ftruncate(*fd, (off_t)size), 0);
    uint8_t *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
    assert_true(p != MAP_FAILED);
    return p;
}

static void push(struct guest *g, unsigned k)
{
    assert_int_equal(vhu_fe_ring_push(&g->ring[0], (uint16_t)(k % GUEST_RING_SIZE),
                                      GUEST_BUF_GPA + k * 0x2000u, 256, 2), 0);
    guest_kick(g, 0);
}

static void test_dirty_log(void **state)
{
    (void)state;
    struct harness h;
    assert_int_equal(harness_start(&h, 1), 0);
    struct vhu_fe *fe = harness_connect(&h);
    uint64_t f = 0, pf = 0;
    assert_int_equal(vhu_fe_negotiate(fe, ~0ull & ~VHU_BIT(VHU_F_LOG_ALL), ~0ull, &f, &pf), 0);
    assert_true(pf & VHU_BIT(VHU_PF_LOG_SHMFD));
    struct guest g;
    guest_init(&g, 1);
    guest_activate(&g, fe, 0);

    int lfd;
    uint8_t *log = new_log(&lfd, LOG_BYTES);
    /* Migration starts: the log arrives while the ring runs. */
    assert_int_equal(set_log_base(fe, lfd, LOG_BYTES, 0), 0);
    push(&g, 0);
    assert_true(wait_used_idx(&g.ring[0], 1, 2000));
    assert_int_equal(count_bits(log, LOG_BYTES), 0); /* LOG_ALL not on yet */

    /* LOG_ALL, and the LOG flag on the running ring. */
    assert_int_equal(vhu_fe_set_features(fe, f | VHU_BIT(VHU_F_LOG_ALL)), 0);
    assert_int_equal(vhu_fe_ring_set_addr(fe, &g.ring[0], VHU_VRING_F_LOG), 0);
    push(&g, 1);
    assert_true(wait_used_idx(&g.ring[0], 2, 2000));
    assert_true(bit(log, GUEST_BUF_GPA + 0x2000));     /* the buffer written */
    assert_true(bit(log, g.ring[0].used_gpa));         /* the used ring */
    assert_false(bit(log, GUEST_BUF_GPA));             /* written before logging */
    assert_false(bit(log, g.ring[0].desc_gpa));        /* only read */
    assert_int_equal(count_bits(log, LOG_BYTES), 2);

    /* QEMU harvests (clears) the bits; new writes are marked again. */
    memset(log, 0, LOG_BYTES);
    push(&g, 2);
    assert_true(wait_used_idx(&g.ring[0], 3, 2000));
    assert_true(bit(log, GUEST_BUF_GPA + 2 * 0x2000));
    assert_true(bit(log, g.ring[0].used_gpa));

    /* A bigger log replaces the old one (memory grew): bits go there. */
    int lfd2;
    uint8_t *log2 = new_log(&lfd2, 2 * LOG_BYTES);
    assert_int_equal(set_log_base(fe, lfd2, 2 * LOG_BYTES, 0), 0);
    memset(log, 0, LOG_BYTES);
    push(&g, 3);
    assert_true(wait_used_idx(&g.ring[0], 4, 2000));
    assert_true(bit(log2, GUEST_BUF_GPA + 3 * 0x2000));
    assert_int_equal(count_bits(log, LOG_BYTES), 0);

    /* Migration cancelled: LOG_ALL off, nothing marked any more. */
    assert_int_equal(vhu_fe_set_features(fe, f), 0);
    assert_int_equal(vhu_fe_ring_set_addr(fe, &g.ring[0], 0), 0);
    memset(log2, 0, 2 * LOG_BYTES);
    push(&g, 4);
    assert_true(wait_used_idx(&g.ring[0], 5, 2000));
    assert_int_equal(count_bits(log2, 2 * LOG_BYTES), 0);
    /* No request was lost across the switches. */
    unsigned base;
    assert_int_equal(vhu_fe_get_vring_base(fe, 0, &base), 0);
    assert_int_equal(base, 5);

    vhu_fe_close(fe);
    munmap(log, LOG_BYTES);
    munmap(log2, 2 * LOG_BYTES);
    close(lfd);
    close(lfd2);
    guest_free(&g);
    harness_stop(&h);
}

static void test_log_refusals(void **state)
{
    (void)state;
    struct harness h;
    assert_int_equal(harness_start(&h, 1), 0);
    struct vhu_fe *fe = harness_connect_negotiated(&h);
    int lfd;
    uint8_t *log = new_log(&lfd, LOG_BYTES);
    log_clear();
    assert_true(set_log_base(fe, lfd, 0, 0) > 0);
    assert_true(set_log_base(fe, lfd, 2 * LOG_BYTES, 0) > 0);
    assert_true(set_log_base(fe, lfd, LOG_BYTES, 4096) > 0);
    assert_true(set_log_base(fe, lfd, 16, 0xfffffffffffffff8ull) > 0);
    assert_int_equal(log_count("runs past the end of its fd"), 2);
    assert_int_equal(log_count("overflows"), 1);

    /* A log too small for where the device writes: never a write past its
     * end; the error is logged once and the ring's err eventfd fires. */
    struct guest g;
    guest_init(&g, 1);
    guest_activate(&g, fe, 0);
    uint64_t f;
    assert_int_equal(vhu_fe_get_features(fe, &f), 0);
    assert_int_equal(set_log_base(fe, lfd, 1, 0), 0); /* 8 pages: 32 KiB */
    assert_int_equal(vhu_fe_set_features(fe, f), 0); /* LOG_ALL included */
    push(&g, 0);
    assert_true(wait_used_idx(&g.ring[0], 1, 2000));
    assert_true(log_wait("beyond the 1-byte log", 2000));
    uint64_t v = 0;
    assert_int_equal(read(g.err[0], &v, sizeof(v)), (ssize_t)sizeof(v));
    assert_true(v >= 1);
    for (size_t i = 1; i < LOG_BYTES; i++)
        assert_int_equal(log[i], 0);
    vhu_fe_close(fe);
    guest_free(&g);
    munmap(log, LOG_BYTES);
    close(lfd);
    harness_stop(&h);
}

int main(void)
{
    log_capture_install();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dirty_log),
        cmocka_unit_test(test_log_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
