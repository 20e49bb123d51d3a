/* SPDX-License-Identifier: BSD-3-Clause */
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

/* A 256-byte device-writable buffer at gpa as head `head` of ring 0, a
 * kick, and the wait until the device has completed it (the used index
 * reaches head + 1: the tests push heads in order from 0). */
static void serve_at(struct guest *g, uint16_t head, uint64_t gpa)
{
    assert_int_equal(vhu_fe_vring_push(&g->ring[0], head, gpa, 256, 2), 0);
    guest_kick(g, 0);
    assert_true(wait_used_idx(&g->ring[0], (uint16_t)(head + 1), 2000));
}

/* Request k: a buffer of its own, 8 KiB apart from the others. */
static void serve(struct guest *g, unsigned k)
{
    serve_at(g, (uint16_t)k, GUEST_BUF_GPA + k * 0x2000u);
}

static void free_log(uint8_t *log, int fd, size_t size)
{
    munmap(log, size);
    close(fd);
}

/* A back-end with one running ring, the front-end negotiated with LOG_ALL
 * and the ring's LOG flag set: migration under way. */
struct logging {
    struct harness h;
    struct vhu_fe *fe;
    struct guest g;
};

static void logging_start(struct logging *s)
{
    assert_int_equal(harness_start(&s->h, 1), 0);
    s->fe = harness_connect_negotiated(&s->h); /* LOG_ALL included */
    guest_init(&s->g, 1);
    guest_activate(&s->g, s->fe, 0);
    assert_int_equal(vhu_fe_vring_set_addr(s->fe, &s->g.ring[0], VHU_VRING_F_LOG), 0);
}

static void logging_stop(struct logging *s)
{
    vhu_fe_close(s->fe);
    guest_free(&s->g);
    harness_stop(&s->h);
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
    serve(&g, 0);
    assert_int_equal(count_bits(log, LOG_BYTES), 0); /* LOG_ALL not on yet */

    /* LOG_ALL, and the LOG flag on the running ring. */
    assert_int_equal(vhu_fe_set_features(fe, f | VHU_BIT(VHU_F_LOG_ALL)), 0);
    assert_int_equal(vhu_fe_vring_set_addr(fe, &g.ring[0], VHU_VRING_F_LOG), 0);
    serve(&g, 1);
    assert_true(bit(log, GUEST_BUF_GPA + 0x2000)); /* the buffer written */
    assert_true(bit(log, g.ring[0].used_gpa));     /* the used ring */
    assert_false(bit(log, GUEST_BUF_GPA));         /* written before logging */
    assert_false(bit(log, g.ring[0].desc_gpa));    /* only read */
    assert_int_equal(count_bits(log, LOG_BYTES), 2);

    /* QEMU harvests (clears) the bits; new writes are marked again. */
    memset(log, 0, LOG_BYTES);
    serve(&g, 2);
    assert_true(bit(log, GUEST_BUF_GPA + 2 * 0x2000));
    assert_true(bit(log, g.ring[0].used_gpa));

    /* A bigger log replaces the old one (memory grew): bits go there. */
    int lfd2;
    uint8_t *log2 = new_log(&lfd2, 2 * LOG_BYTES);
    assert_int_equal(set_log_base(fe, lfd2, 2 * LOG_BYTES, 0), 0);
    memset(log, 0, LOG_BYTES);
    serve(&g, 3);
    assert_true(bit(log2, GUEST_BUF_GPA + 3 * 0x2000));
    assert_int_equal(count_bits(log, LOG_BYTES), 0);

    /* Migration cancelled: LOG_ALL off, nothing marked any more. */
    assert_int_equal(vhu_fe_set_features(fe, f), 0);
    assert_int_equal(vhu_fe_vring_set_addr(fe, &g.ring[0], 0), 0);
    memset(log2, 0, 2 * LOG_BYTES);
    serve(&g, 4);
    assert_int_equal(count_bits(log2, 2 * LOG_BYTES), 0);
    /* No request was lost across the switches. */
    unsigned base;
    assert_int_equal(vhu_fe_get_vring_base(fe, 0, &base), 0);
    assert_int_equal(base, 5);

    vhu_fe_close(fe);
    free_log(log, lfd, LOG_BYTES);
    free_log(log2, lfd2, 2 * LOG_BYTES);
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
    /* No memory table yet: nothing to cover, any size is accepted. */
    assert_int_equal(set_log_base(fe, lfd, 1, 0), 0);

    vhu_fe_close(fe);
    free_log(log, lfd, LOG_BYTES);
    harness_stop(&h);
}

/* The guest's 1 MiB at guest 0 is 256 pages: a log of 32 bytes covers it
 * exactly. */
#define COVER_BYTES (GUEST_MEM_SIZE / 4096 / 8)

/* Read an eventfd (non-blocking): its count, 0 when not signalled. */
static uint64_t take_eventfd(int fd)
{
    uint64_t v = 0;
    return read(fd, &v, sizeof(v)) == (ssize_t)sizeof(v) ? v : 0;
}

/* A log that does not cover the memory table is refused, naming both
 * figures, before anything changes: the old log stays, no fd is kept, the
 * session goes on.  The boundary: 32 bytes cover 1 MiB, 31 do not. */
static void test_log_too_small(void **state)
{
    (void)state;
    struct logging ls;
    logging_start(&ls);
    struct vhu_fe *fe = ls.fe;
    int fds_before = count_open_fds();
    int lfd, lfd2;
    uint8_t *log = new_log(&lfd, LOG_BYTES), *log2 = new_log(&lfd2, LOG_BYTES);

    log_clear();
    assert_true(set_log_base(fe, lfd, 1, 0) > 0);
    assert_int_equal(log_count("SET_LOG_BASE refused: log of 1 bytes covers 32 KiB of guest "
                               "memory (8 pages); the memory table reaches 0x100000 (1 MiB): "
                               "need at least 32 bytes"),
                     1);
    assert_true(set_log_base(fe, lfd, COVER_BYTES - 1, 0) > 0);
    assert_int_equal(log_count("log of 31 bytes covers 992 KiB of guest memory (248 pages); "
                               "the memory table reaches 0x100000 (1 MiB): need at least 32 "
                               "bytes"),
                     1);
    /* A log at an offset in its fd is held to the same figure. */
    assert_true(set_log_base(fe, lfd, COVER_BYTES - 1, 4096 - COVER_BYTES) > 0);
    assert_int_equal(log_count("refused"), 3);
    assert_int_equal(count_open_fds(), fds_before + 2);

    /* Exactly covering: accepted, and it marks pages. */
    assert_int_equal(set_log_base(fe, lfd, COVER_BYTES, 0), 0);
    serve(&ls.g, 0);
    assert_true(bit(log, GUEST_BUF_GPA));
    assert_true(bit(log, ls.g.ring[0].used_gpa));
    /* A refused log leaves the accepted one in place. */
    assert_true(set_log_base(fe, lfd2, COVER_BYTES - 1, 0) > 0);
    serve(&ls.g, 1);
    assert_true(bit(log, GUEST_BUF_GPA + 0x2000));
    assert_int_equal(count_bits(log2, LOG_BYTES), 0);
    assert_int_equal(take_eventfd(ls.g.err[0]), 0);
    assert_int_equal(log_count("dirty log:"), 0);
    assert_int_equal(count_open_fds(), fds_before + 2);

    free_log(log, lfd, LOG_BYTES);
    free_log(log2, lfd2, LOG_BYTES);
    logging_stop(&ls);
}

/* A memory table that grows past the log while logging is on is accepted
 * (QEMU sends it before the covering log when a device starts during
 * migration); a write into the new memory fails loudly until a covering
 * log arrives, and a log that still does not cover is refused. */
static void test_log_table_grows(void **state)
{
    (void)state;
    struct logging ls;
    logging_start(&ls);
    struct vhu_fe *fe = ls.fe;
    int lfd;
    uint8_t *log = new_log(&lfd, LOG_BYTES);
    assert_int_equal(set_log_base(fe, lfd, COVER_BYTES, 0), 0);

    /* 1 MiB more, just above: the table now reaches 2 MiB, past the log. */
    struct vhu_guest_mem more;
    assert_int_equal(vhu_guest_mem_new(&more, GUEST_MEM_SIZE, GUEST_MEM_SIZE), 0);
    struct vhu_mem_region regs[2] = {vhu_guest_mem_region(&ls.g.mem), vhu_guest_mem_region(&more)};
    int mfds[2] = {ls.g.mem.fd, more.fd};
    log_clear();
    assert_int_equal(vhu_fe_set_mem_table(fe, regs, mfds, 2), 0);

    const uint64_t past = GUEST_MEM_SIZE + 0x3000; /* page 259 */
    serve_at(&ls.g, 0, past);
    assert_true(log_wait("dirty log: write at guest 0x103000+256 is beyond the 32-byte log", 2000));
    assert_true(wait_eventfd(ls.g.err[0], 2000) >= 1);
    assert_true(bit(log, ls.g.ring[0].used_gpa)); /* inside the log: marked */

    /* The old log's size no longer covers: refused; writes past it still
     * signal the ring's error (the line is not repeated for the same log). */
    int lfd2;
    uint8_t *log2 = new_log(&lfd2, LOG_BYTES);
    assert_true(set_log_base(fe, lfd2, COVER_BYTES, 0) > 0);
    assert_int_equal(log_count("the memory table reaches 0x200000 (2 MiB): need at least 64 "
                               "bytes"),
                     1);
    serve_at(&ls.g, 1, past + 0x1000);
    assert_true(wait_eventfd(ls.g.err[0], 2000) >= 1);
    assert_int_equal(log_count("dirty log:"), 1);
    assert_int_equal(count_bits(log2, LOG_BYTES), 0);

    /* The covering log: writes past the old one are marked, silently. */
    assert_int_equal(set_log_base(fe, lfd2, 2 * COVER_BYTES, 0), 0);
    assert_int_equal(take_eventfd(ls.g.err[0]), 0);
    serve_at(&ls.g, 2, past + 0x2000);
    assert_true(bit(log2, past + 0x2000));
    assert_true(bit(log2, ls.g.ring[0].used_gpa));
    assert_int_equal(take_eventfd(ls.g.err[0]), 0);
    assert_int_equal(log_count("dirty log:"), 1);

    /* ADD_MEM_REG past the log is accepted too. */
    struct vhu_guest_mem third;
    assert_int_equal(vhu_guest_mem_new(&third, 2 * GUEST_MEM_SIZE, GUEST_MEM_SIZE), 0);
    struct vhu_mem_region r3 = vhu_guest_mem_region(&third);
    assert_int_equal(vhu_fe_add_mem_reg(fe, &r3, third.fd), 0);
    serve_at(&ls.g, 3, 2 * GUEST_MEM_SIZE);
    assert_true(log_wait("write at guest 0x200000+256 is beyond the 64-byte log", 2000));
    assert_true(wait_eventfd(ls.g.err[0], 2000) >= 1);

    vhu_guest_mem_free(&more);
    vhu_guest_mem_free(&third);
    free_log(log, lfd, LOG_BYTES);
    free_log(log2, lfd2, LOG_BYTES);
    logging_stop(&ls);
}

/* Logging on and no log at all (QEMU's vhost_dev_start during migration:
 * LOG_ALL, the table and the rings before SET_LOG_BASE): a write is one
 * that would not migrate, and fails loudly the same way. */
static void test_log_missing(void **state)
{
    (void)state;
    struct logging ls;
    logging_start(&ls);
    struct vhu_fe *fe = ls.fe;
    log_clear();
    serve(&ls.g, 0);
    assert_true(log_wait("dirty log: write at guest 0x80000+256 while logging is on but no log "
                         "was given (SET_LOG_BASE); migration would miss it",
                         2000));
    assert_true(wait_eventfd(ls.g.err[0], 2000) >= 1);
    serve(&ls.g, 1);
    assert_true(wait_eventfd(ls.g.err[0], 2000) >= 1);
    assert_int_equal(log_count("dirty log:"), 1); /* one line until the log changes */
    /* LOG_ALL off: nothing to mark, nothing signalled; on again (a new
     * migration): its first unmarked write has its own line. */
    uint64_t f;
    assert_int_equal(vhu_fe_get_features(fe, &f), 0);
    assert_int_equal(vhu_fe_set_features(fe, f & ~VHU_BIT(VHU_F_LOG_ALL)), 0);
    /* As QEMU follows it; restarting the ring also waits out its thread. */
    assert_int_equal(vhu_fe_vring_set_addr(fe, &ls.g.ring[0], 0), 0);
    take_eventfd(ls.g.err[0]);
    serve(&ls.g, 2);
    assert_int_equal(wait_eventfd(ls.g.err[0], 50), 0);
    assert_int_equal(vhu_fe_set_features(fe, f), 0);
    assert_int_equal(vhu_fe_vring_set_addr(fe, &ls.g.ring[0], VHU_VRING_F_LOG), 0);
    serve(&ls.g, 3);
    assert_true(wait_eventfd(ls.g.err[0], 2000) >= 1);
    assert_int_equal(log_count("dirty log:"), 2);

    /* The log arrives: writes are marked, without error.  (The switch
     * pauses the ring: every signal of the pushes above is in by then.) */
    int lfd;
    uint8_t *log = new_log(&lfd, LOG_BYTES);
    assert_int_equal(set_log_base(fe, lfd, COVER_BYTES, 0), 0);
    take_eventfd(ls.g.err[0]);
    serve(&ls.g, 4);
    assert_true(bit(log, GUEST_BUF_GPA + 4 * 0x2000));
    assert_int_equal(take_eventfd(ls.g.err[0]), 0);
    assert_int_equal(log_count("dirty log:"), 2);

    free_log(log, lfd, LOG_BYTES);
    logging_stop(&ls);
}

int main(void)
{
    log_capture_install();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dirty_log),     cmocka_unit_test(test_log_refusals),
        cmocka_unit_test(test_log_too_small), cmocka_unit_test(test_log_table_grows),
        cmocka_unit_test(test_log_missing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
