/* SPDX-License-Identifier: BSD-3-Clause */
/* Inflight tracking across a back-end that goes away with requests in
 * flight: the front-end keeps the inflight region (GET_INFLIGHT_FD), a new
 * session hands it back (SET_INFLIGHT_FD) and starts the ring at the used
 * index, as QEMU does after a reconnect; the back-end must resubmit exactly
 * the lost requests, in their original order, and nothing else.  A region
 * full of nonsense is repaired, never trusted. */
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

struct used_elem {
    uint32_t id, len;
};

/* Memory, inflight region, then ring 0 from `base`. */
static void start(struct vhu_fe *fe, struct guest *g, const struct vhu_inflight *in, int ifd,
                  unsigned base)
{
    struct vhu_mem_region reg = vhu_guest_mem_region(&g->mem);
    assert_int_equal(vhu_fe_set_mem_table(fe, &reg, &g->mem.fd, 1), 0);
    assert_int_equal(inflight_set(fe, in, ifd), 0);
    assert_int_equal(vhu_fe_set_vring_num(fe, 0, GUEST_RING_SIZE), 0);
    assert_int_equal(vhu_fe_set_vring_base(fe, 0, base), 0);
    assert_int_equal(vhu_fe_vring_set_addr(fe, &g->ring[0], 0), 0);
    assert_int_equal(vhu_fe_set_vring_call(fe, 0, g->call[0]), 0);
    assert_int_equal(vhu_fe_set_vring_kick(fe, 0, g->kick[0]), 0);
    assert_int_equal(vhu_fe_set_vring_enable(fe, 0, true), 0);
}

static void push(struct guest *g, unsigned k)
{
    uint8_t *b = vhu_guest_mem_ptr(&g->mem, GUEST_BUF_GPA + k * 256u, 256);
    memset(b, 0, 256);
    assert_int_equal(vhu_fe_vring_push(&g->ring[0], (uint16_t)(k % GUEST_RING_SIZE),
                                       GUEST_BUF_GPA + k * 256u, 256, 2),
                     0);
}

static bool filled(struct guest *g, unsigned k)
{
    uint8_t *b = vhu_guest_mem_ptr(&g->mem, GUEST_BUF_GPA + k * 256u, 256);
    return b[0] == TESTDEV_FILL && b[255] == TESTDEV_FILL;
}

static void test_reconnect_resubmits(void **state)
{
    (void)state;
    struct harness h;
    assert_int_equal(harness_start(&h, 1), 0);
    struct guest g;
    guest_init(&g, 1);

    /* Session 1: two requests complete, then the back-end "dies" holding
     * three more. */
    struct vhu_fe *fe = harness_connect_negotiated(&h);
    struct vhu_inflight in;
    int ifd = inflight_get(fe, 1, GUEST_RING_SIZE, &in);
    assert_true(ifd >= 0);
    assert_int_equal(in.num_queues, 1);
    assert_int_equal(in.queue_size, GUEST_RING_SIZE);
    start(fe, &g, &in, ifd, 0);
    push(&g, 0);
    push(&g, 1);
    guest_kick(&g, 0);
    assert_true(wait_used_idx(&g.ring[0], 2, 2000));
    testdev_hold(h.dev, true);
    push(&g, 2);
    push(&g, 3);
    push(&g, 4);
    guest_kick(&g, 0);
    for (int i = 0; i < 2000 && testdev_held(h.dev) < 3; i++)
        sleep_ms(1);
    assert_int_equal(testdev_held(h.dev), 3);
    vhu_fe_close(fe); /* no GET_VRING_BASE: the connection is simply gone */
    testdev_hold(h.dev, false);
    assert_int_equal(vhu_fe_vring_used_idx(&g.ring[0]), 2);
    assert_false(filled(&g, 2));

    /* Session 2: same region back; the ring restarts at the used index. */
    log_clear();
    fe = harness_connect_negotiated(&h);
    start(fe, &g, &in, ifd, vhu_fe_vring_used_idx(&g.ring[0]));
    assert_true(wait_used_idx(&g.ring[0], 5, 2000));
    for (unsigned k = 2; k < 5; k++)
        assert_true(filled(&g, k));
    /* Resubmitted in their original order, and nothing twice. */
    struct used_elem *u = vhu_guest_mem_ptr(&g.mem, g.ring[0].used_gpa + 4, 8 * GUEST_RING_SIZE);
    assert_int_equal(u[2].id, 2);
    assert_int_equal(u[3].id, 3);
    assert_int_equal(u[4].id, 4);
    /* The ring goes on from there. */
    push(&g, 5);
    guest_kick(&g, 0);
    assert_true(wait_used_idx(&g.ring[0], 6, 2000));
    unsigned base;
    assert_int_equal(vhu_fe_get_vring_base(fe, 0, &base), 0);
    assert_int_equal(base, 6);
    vhu_fe_close(fe);

    /* Session 3: a clean stop left nothing in flight: nothing resubmitted. */
    fe = harness_connect_negotiated(&h);
    start(fe, &g, &in, ifd, 6);
    sleep_ms(50);
    assert_int_equal(vhu_fe_vring_used_idx(&g.ring[0]), 6);
    vhu_fe_close(fe);
    close(ifd);
    guest_free(&g);
    harness_stop(&h);
}

static void test_nonsense_region(void **state)
{
    (void)state;
    struct harness h;
    assert_int_equal(harness_start(&h, 1), 0);
    struct guest g;
    guest_init(&g, 1);
    struct vhu_fe *fe = harness_connect_negotiated(&h);
    struct vhu_inflight in;
    int ifd = inflight_get(fe, 1, GUEST_RING_SIZE, &in);
    assert_true(ifd >= 0);
    /* A sender of the packed 20-byte struct is served too (QEMU sends 24). */
    struct vhu_inflight in20 = {.num_queues = 1, .queue_size = GUEST_RING_SIZE};
    struct vhu_inflight out20;
    int fds20[VHU_MAX_FDS];
    unsigned n20 = 0;
    assert_int_equal(vhu_fe_call(fe, VHU_REQ_GET_INFLIGHT_FD, VHU_FLAG_VERSION, &in20, 20, NULL, 0,
                                 &out20, sizeof(out20), fds20, &n20),
                     24);
    assert_int_equal(n20, 1);
    assert_int_equal(out20.mmap_size, in.mmap_size);
    close(fds20[0]);
    /* Bad geometry is refused. */
    struct vhu_inflight bad = in;
    bad.num_queues = 9;
    assert_true(inflight_set(fe, &bad, ifd) > 0);
    bad = in;
    bad.queue_size = 3;
    assert_true(inflight_set(fe, &bad, ifd) > 0);
    bad = in;
    bad.mmap_size = 1u << 30;
    assert_true(inflight_set(fe, &bad, ifd) > 0);
    bad = in;
    bad.mmap_offset = 0xfffffffffffff000ull;
    assert_true(inflight_set(fe, &bad, ifd) > 0);
    vhu_fe_close(fe);

    /* Garbage in the region: wrong version and counts, inflight flags of
     * 7, heads beyond the ring: repaired, nothing bogus resubmitted. */
    uint8_t *p = mmap(NULL, in.mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, ifd, 0);
    assert_true(p != MAP_FAILED);
    memset(p, 0x07, in.mmap_size);
    log_clear();
    fe = harness_connect_negotiated(&h);
    start(fe, &g, &in, ifd, 0);
    assert_true(log_wait("records discarded", 2000));
    push(&g, 0);
    guest_kick(&g, 0);
    assert_true(wait_used_idx(&g.ring[0], 1, 2000));
    vhu_fe_close(fe);

    /* A valid header with entries marked 7 and a used_idx far behind. */
    uint16_t *hdr = (uint16_t *)(p + 8);
    hdr[0] = 1;               /* version */
    hdr[1] = GUEST_RING_SIZE; /* desc_num */
    hdr[2] = 0xffff;          /* last_batch_head out of range */
    hdr[3] = 1;               /* used_idx: 0 behind the ring's 1 */
    for (unsigned i = 0; i < GUEST_RING_SIZE; i++)
        p[16 + 16 * i] = 7;
    log_clear();
    fe = harness_connect_negotiated(&h);
    start(fe, &g, &in, ifd, 1);
    assert_true(log_wait("holds 7; cleared", 2000));
    sleep_ms(30);
    assert_int_equal(vhu_fe_vring_used_idx(&g.ring[0]), 1);
    vhu_fe_close(fe);
    munmap(p, in.mmap_size);
    close(ifd);
    guest_free(&g);
    harness_stop(&h);
}

int main(void)
{
    log_capture_install();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reconnect_resubmits),
        cmocka_unit_test(test_nonsense_region),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
