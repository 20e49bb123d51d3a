/* SPDX-License-Identifier: BSD-3-Clause */
/* The virtqueue layer on hand-built split rings in real shared memory: a
 * front-end (this test, as the driver) lays rings out in a memfd, a real
 * back-end maps it and starts the ring on a small device, and the test
 * takes chains through vhu/vring.h on the back-end's mapping ("manual"
 * mode), or lets a ring worker serve them ("worker" mode).
 *
 * Good chains: direct, chained, indirect, direct + indirect, the longest
 * allowed; used-ring updates; EVENT_IDX and NO_INTERRUPT suppression.
 * Hostile chains: each must break the ring (one log line, err eventfd
 * readable, nothing consumed, pop/push/flush refused afterwards) without
 * touching memory outside the regions. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "devserver.h"
#include "harness.h"
#include "vqdev.h"

#define F_NEXT 1
#define F_WRITE 2
#define F_INDIRECT 4
#define RING GUEST_RING_SIZE
#define BUF(k) (GUEST_BUF_GPA + (uint64_t)(k)*0x1000u) /* 4 KiB buffers */
#define TABLE_GPA 0x60000u                             /* indirect tables */

struct desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags, next;
};

/* ---- a session: device, server, front-end, guest with one ring ---- */

struct session {
    struct vqdev dev;
    struct devserver ds;
    struct vhu_fe *fe;
    struct guest g;
    struct vhu_fe_vring *r;
    struct desc *desc;
};

/* Device, server, front-end (LOG_ALL is only turned on by the test that
 * logs, as QEMU does once migration starts), guest memory and ring. */
static void session_connect(struct session *s, bool worker_mode, uint64_t features)
{
    vqdev_init(&s->dev, "vqtest",
               VHU_BIT(VHU_F_VERSION_1) | VHU_BIT(VHU_F_RING_EVENT_IDX) |
                   VHU_BIT(VHU_F_RING_INDIRECT_DESC) | VHU_BIT(VHU_F_LOG_ALL),
               worker_mode);
    s->dev.flush_each = true;
    assert_int_equal(devserver_start(&s->ds, &s->dev.ops, &s->dev), 0);
    s->fe = devserver_connect(&s->ds, features & ~VHU_BIT(VHU_F_LOG_ALL));
    guest_init(&s->g, 1);
    s->r = &s->g.ring[0];
    s->desc = vhu_fe_vring_desc(s->r);
    log_clear();
}

static void session_open(struct session *s, bool worker_mode, uint64_t features)
{
    session_connect(s, worker_mode, features);
    guest_activate(&s->g, s->fe, 0);
    assert_int_equal(atomic_load(&s->dev.starts), 1);
}

/* Close the front-end, handing a ring this thread drove back to the server
 * thread, which frees it when it sees the socket close: the kernel orders
 * the two, and this store (read by vq_stop's exchange) tells
 * ThreadSanitizer so. */
static void close_frontend(struct session *s)
{
    atomic_store(&s->dev.vq, atomic_load(&s->dev.vq));
    vhu_fe_close(s->fe);
    s->fe = NULL;
}

static void session_close(struct session *s)
{
    close_frontend(s);
    devserver_stop(&s->ds);
    guest_free(&s->g);
}

static uint8_t *gptr(struct session *s, uint64_t gpa, uint64_t len)
{
    uint8_t *p = vhu_guest_mem_ptr(&s->g.mem, gpa, len);
    assert_non_null(p);
    return p;
}

static uint16_t *used_event(struct session *s)
{
    return (uint16_t *)gptr(s, s->r->avail_gpa + 4 + 2u * RING, 2);
}

static uint16_t *avail_event(struct session *s)
{
    return (uint16_t *)gptr(s, s->r->used_gpa + 4 + 8u * RING, 2);
}

/* ---- good chains ---- */

/* Backend pointers of a popped element address the same bytes the driver
 * sees at the buffers' guest addresses. */
static void assert_seg(struct session *s, const struct vhu_vring_elem *e, unsigned i, uint64_t gpa,
                       size_t len)
{
    vq_assert_seg(gptr(s, gpa, len), e, i, len);
}

static void test_good_chains(void **state)
{
    (void)state;
    struct session s;
    session_open(&s, false, ~0ull);
    struct vhu_vring_io *vq = vqdev_vq(&s.dev);
    struct vhu_vring_elem *e = malloc(sizeof(*e));
    assert_non_null(e);
    assert_int_equal(vhu_vring_io_pop(vq, e), 0); /* empty ring */

    /* A three-buffer chain: header and data to read, status to write. */
    struct vhu_fe_buf c1[3] = {{BUF(0), 16, false}, {BUF(1), 4096, false}, {BUF(2), 1, true}};
    assert_int_equal(vhu_fe_vring_push_chain(s.r, 0, c1, 3), 0);
    assert_int_equal(vhu_vring_io_pop(vq, e), 1);
    assert_int_equal(e->head, 0);
    assert_int_equal(e->n_out, 2);
    assert_int_equal(e->n_in, 1);
    assert_int_equal(e->out_bytes, 16 + 4096);
    assert_int_equal(e->in_bytes, 1);
    assert_seg(&s, e, 0, BUF(0), 16);
    assert_seg(&s, e, 1, BUF(1), 4096);
    assert_seg(&s, e, 2, BUF(2), 1);
    assert_int_equal(vhu_vring_io_inflight(vq), 1);
    assert_int_equal(vhu_vring_io_pop(vq, e), 0);

    /* Completed, flushed: the driver sees {head, len} and gets a call. */
    assert_int_equal(vhu_vring_io_push(vq, e, 1), 0);
    assert_int_equal(vhu_fe_vring_used_idx(s.r), 0); /* not before flush */
    assert_int_equal(vhu_vring_io_flush(vq), 1);
    uint32_t id = 99, len = 99;
    assert_int_equal(vhu_fe_vring_pop_used(s.r, &id, &len), 1);
    assert_int_equal(id, 0);
    assert_int_equal(len, 1);
    assert_true(vq_read_eventfd(s.g.call[0]) >= 1);
    assert_int_equal(vhu_vring_io_push(vq, e, 1), -EINVAL); /* nothing outstanding */

    /* The longest chain a 16-entry ring holds, wrapping around the table. */
    struct vhu_fe_buf c2[RING];
    for (unsigned i = 0; i < RING; i++)
        c2[i] = (struct vhu_fe_buf){BUF(i), 100 + i, i >= 10};
    assert_int_equal(vhu_fe_vring_push_chain(s.r, 5, c2, RING), 0);
    assert_int_equal(vhu_vring_io_pop(vq, e), 1);
    assert_int_equal(e->head, 5);
    assert_int_equal(e->n_out, 10);
    assert_int_equal(e->n_in, 6);
    for (unsigned i = 0; i < RING; i++)
        assert_seg(&s, e, i, BUF(i), 100 + i);
    /* Kept for completion below, out of order. */
    static struct vhu_vring_elem taken[3];
    taken[0] = *e;

    /* An indirect table: one readable, three writable buffers. */
    struct vhu_fe_buf c3[4] = {
        {BUF(3), 16, false}, {BUF(4), 512, true}, {BUF(5), 512, true}, {BUF(6), 1, true}};
    assert_int_equal(vhu_fe_vring_push_indirect(s.r, 7, TABLE_GPA, c3, 4), 0);
    assert_int_equal(vhu_vring_io_pop(vq, e), 1);
    assert_int_equal(e->head, 7);
    assert_int_equal(e->n_out, 1);
    assert_int_equal(e->n_in, 3);
    assert_int_equal(e->in_bytes, 1025);
    assert_seg(&s, e, 3, BUF(6), 1);
    taken[1] = *e;

    /* Direct descriptors followed by an indirect table (the spec allows
     * it), the table holding as many entries as the ring. */
    struct vhu_fe_buf t[RING];
    for (unsigned i = 0; i < RING; i++)
        t[i] = (struct vhu_fe_buf){BUF(i), 64, true};
    /* push_indirect publishes head 9; the device takes nothing until the
     * next pop, so the same avail entry is rewritten to head 8 in front. */
    assert_int_equal(vhu_fe_vring_push_indirect(s.r, 9, TABLE_GPA + 0x1000, t, RING), 0);
    s.r->avail_idx--;
    s.desc[8] = (struct desc){BUF(7), 32, F_NEXT, 9};
    vhu_fe_vring_publish(s.r, 8);
    assert_int_equal(vhu_vring_io_pop(vq, e), 1);
    assert_int_equal(e->head, 8);
    assert_int_equal(e->n_out, 1);
    assert_int_equal(e->n_in, RING);
    assert_int_equal(e->in_bytes, 64 * RING);
    taken[2] = *e;

    /* Completions in any order; one flush publishes them all. */
    assert_int_equal(vhu_vring_io_inflight(vq), 3);
    assert_int_equal(vhu_vring_io_push(vq, &taken[1], 1025), 0);
    assert_int_equal(vhu_vring_io_push(vq, &taken[2], 0), 0);
    assert_int_equal(vhu_vring_io_push(vq, &taken[0], 42), 0);
    /* EVENT_IDX is on and used_event is still 0, passed long ago: no call
     * (test_event_idx covers the rules). */
    assert_int_equal(vhu_vring_io_flush(vq), 0);
    assert_int_equal(vhu_fe_vring_used_idx(s.r), 4);
    uint32_t want[3][2] = {{7, 1025}, {8, 0}, {5, 42}};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(vhu_fe_vring_pop_used(s.r, &id, &len), 1);
        assert_int_equal(id, want[i][0]);
        assert_int_equal(len, want[i][1]);
    }
    assert_false(vhu_vring_io_broken(vq));
    assert_int_equal(vq_read_eventfd(s.g.err[0]), 0);
    assert_int_equal(log_count("broken"), 0);

    /* Once SET_VRING_ENABLE 0 is answered, pop takes nothing: the chain
     * stays in the ring until the ring is enabled again. */
    assert_int_equal(vhu_fe_set_vring_enable(s.fe, 0, false), 0);
    assert_int_equal(vhu_fe_vring_push(s.r, 0, BUF(0), 64, F_WRITE), 0);
    assert_int_equal(vhu_vring_io_pop(vq, e), 0);
    assert_int_equal(vhu_vring_io_inflight(vq), 0);
    assert_int_equal(vhu_fe_set_vring_enable(s.fe, 0, true), 0);
    assert_int_equal(vhu_vring_io_pop(vq, e), 1);
    assert_int_equal(e->head, 0);
    assert_int_equal(vhu_vring_io_push(vq, e, 64), 0);
    vhu_vring_io_flush(vq);
    unsigned base = 0;
    assert_int_equal(vhu_fe_get_vring_base(s.fe, 0, &base), 0);
    assert_int_equal(base, 5);
    free(e);
    session_close(&s);
}

/* One request through pop/push/flush; returns what flush returned. */
static int one_request(struct session *s, struct vhu_vring_io *vq, struct vhu_vring_elem *e)
{
    uint16_t head = (uint16_t)(s->r->avail_idx % RING);
    assert_int_equal(vhu_fe_vring_push(s->r, head, BUF(head), 64, F_WRITE), 0);
    assert_int_equal(vhu_vring_io_pop(vq, e), 1);
    assert_int_equal(vhu_vring_io_push(vq, e, 64), 0);
    return vhu_vring_io_flush(vq);
}

/* A head is the device's from pop to push: pushing one it does not hold is
 * refused (it would complete whatever the driver has on that head next),
 * and a driver that publishes a head the device still holds breaks the
 * ring. */
static void test_heads_in_flight(void **state)
{
    (void)state;
    struct session s;
    session_open(&s, false, ~0ull);
    struct vhu_vring_io *vq = vqdev_vq(&s.dev);
    struct vhu_vring_elem *e = malloc(2 * sizeof(*e));
    assert_non_null(e);
    assert_int_equal(one_request(&s, vq, &e[1]), 1); /* e[1]: head 0, done */
    assert_int_equal(vhu_fe_vring_push(s.r, 2, BUF(2), 64, F_WRITE), 0);
    assert_int_equal(vhu_vring_io_pop(vq, &e[0]), 1);
    assert_int_equal(e[0].head, 2);
    /* Head 0 again while head 2 is outstanding: refused, nothing written. */
    assert_int_equal(vhu_vring_io_push(vq, &e[1], 64), -EINVAL);
    assert_int_equal(vhu_vring_io_flush(vq), 0);
    assert_int_equal(vhu_fe_vring_used_idx(s.r), 1);
    /* The driver publishes head 2 a second time. */
    vhu_fe_vring_publish(s.r, 2);
    assert_int_equal(vhu_vring_io_pop(vq, &e[1]), -EIO);
    assert_int_equal(log_count("head 2 is already in flight"), 1);
    assert_int_equal(vq_read_eventfd(s.g.err[0]), 1);
    free(e);
    session_close(&s);
}

static void test_event_idx(void **state)
{
    (void)state;
    struct session s;
    session_open(&s, false, ~0ull);
    struct vhu_vring_io *vq = vqdev_vq(&s.dev);
    struct vhu_vring_elem *e = malloc(sizeof(*e));
    assert_non_null(e);

    /* The first completion always signals (nothing to compare with). */
    *used_event(&s) = 0;
    assert_int_equal(one_request(&s, vq, e), 1);
    assert_int_equal(vq_read_eventfd(s.g.call[0]), 1);
    /* used_event = 4: the driver wants a call once entry 4 is used, i.e.
     * when the used index goes past 4 (to 5), not before. */
    *used_event(&s) = 4;
    for (int used = 2; used <= 4; used++)
        assert_int_equal(one_request(&s, vq, e), 0);
    assert_int_equal(vq_read_eventfd(s.g.call[0]), 0);
    assert_int_equal(one_request(&s, vq, e), 1);
    assert_int_equal(vq_read_eventfd(s.g.call[0]), 1);
    /* An event index already passed does not signal again. */
    assert_int_equal(one_request(&s, vq, e), 0);
    /* Several entries in one flush crossing the event index: one call. */
    *used_event(&s) = 7;
    for (int i = 0; i < 3; i++) {
        uint16_t head = (uint16_t)(s.r->avail_idx % RING);
        assert_int_equal(vhu_fe_vring_push(s.r, head, BUF(head), 64, F_WRITE), 0);
        assert_int_equal(vhu_vring_io_pop(vq, e), 1);
        assert_int_equal(vhu_vring_io_push(vq, e, 64), 0);
    }
    assert_int_equal(vhu_vring_io_flush(vq), 1);
    assert_int_equal(vq_read_eventfd(s.g.call[0]), 1);
    assert_int_equal(vhu_fe_vring_used_idx(s.r), 9);

    /* Kick suppression: the device asks for a kick at the next index it
     * will take, and sees what was published before that. */
    assert_false(vhu_vring_io_enable_kick(vq));
    assert_int_equal(*avail_event(&s), 9);
    assert_int_equal(vhu_fe_vring_push(s.r, 0, BUF(0), 64, F_WRITE), 0);
    assert_true(vhu_vring_io_enable_kick(vq));
    assert_int_equal(vhu_vring_io_pop(vq, e), 1);
    assert_false(vhu_vring_io_enable_kick(vq));
    assert_int_equal(*avail_event(&s), 10);
    free(e);
    session_close(&s);
}

/* Without EVENT_IDX the driver suppresses calls with NO_INTERRUPT, and the
 * event words (not mapped-checked by the back-end then) are never used. */
static void test_no_interrupt(void **state)
{
    (void)state;
    struct session s;
    session_open(&s, false, ~VHU_BIT(VHU_F_RING_EVENT_IDX));
    struct vhu_vring_io *vq = vqdev_vq(&s.dev);
    struct vhu_vring_elem *e = malloc(sizeof(*e));
    assert_non_null(e);
    *used_event(&s) = 0x1234;
    *avail_event(&s) = 0x4321;
    assert_int_equal(one_request(&s, vq, e), 1);
    assert_int_equal(one_request(&s, vq, e), 1);
    assert_int_equal(vq_read_eventfd(s.g.call[0]), 2);
    uint16_t *avail_flags = (uint16_t *)gptr(&s, s.r->avail_gpa, 2);
    *avail_flags = 1; /* VRING_AVAIL_F_NO_INTERRUPT */
    assert_int_equal(one_request(&s, vq, e), 0);
    assert_int_equal(vq_read_eventfd(s.g.call[0]), 0);
    *avail_flags = 0;
    assert_int_equal(one_request(&s, vq, e), 1);
    assert_false(vhu_vring_io_enable_kick(vq));
    assert_int_equal(*avail_event(&s), 0x4321);
    assert_int_equal(*used_event(&s), 0x1234);
    assert_int_equal(vhu_fe_vring_used_idx(s.r), 4);
    free(e);
    session_close(&s);
}

/* ---- hostile chains ---- */

struct hostile {
    const char *name;
    const char *log;   /* part of the one log line expected */
    uint64_t features; /* to negotiate (~0: all) */
    void (*build)(struct session *s);
};

static void h_head_out_of_range(struct session *s)
{
    s->desc[0] = (struct desc){BUF(0), 64, 0, 0};
    vhu_fe_vring_publish(s->r, RING);
}

static void h_head_max(struct session *s) { vhu_fe_vring_publish(s->r, 0xffff); }

static void h_next_out_of_range(struct session *s)
{
    s->desc[0] = (struct desc){BUF(0), 64, F_NEXT, RING};
    vhu_fe_vring_publish(s->r, 0);
}

static void h_loop(struct session *s)
{
    s->desc[0] = (struct desc){BUF(0), 64, F_NEXT, 1};
    s->desc[1] = (struct desc){BUF(1), 64, F_NEXT, 0};
    vhu_fe_vring_publish(s->r, 0);
}

static void h_self_loop(struct session *s)
{
    s->desc[3] = (struct desc){BUF(0), 64, F_WRITE | F_NEXT, 3};
    vhu_fe_vring_publish(s->r, 3);
}

/* Every descriptor of the ring, then back to the first: RING + 1 long. */
static void h_chain_longer_than_ring(struct session *s)
{
    for (unsigned i = 0; i < RING; i++)
        s->desc[i] = (struct desc){BUF(i), 64, F_NEXT, (uint16_t)((i + 1) % RING)};
    vhu_fe_vring_publish(s->r, 0);
}

static struct desc *table(struct session *s, unsigned n)
{
    return (struct desc *)gptr(s, TABLE_GPA, 16ull * n);
}

static void h_nested_indirect(struct session *s)
{
    struct desc *t = table(s, 2);
    t[0] = (struct desc){BUF(0), 64, F_NEXT, 1};
    t[1] = (struct desc){TABLE_GPA, 32, F_INDIRECT, 0};
    s->desc[0] = (struct desc){TABLE_GPA, 32, F_INDIRECT, 0};
    vhu_fe_vring_publish(s->r, 0);
}

static void h_indirect_len_24(struct session *s)
{
    table(s, 2)[0] = (struct desc){BUF(0), 64, 0, 0};
    s->desc[0] = (struct desc){TABLE_GPA, 24, F_INDIRECT, 0};
    vhu_fe_vring_publish(s->r, 0);
}

static void h_indirect_len_0(struct session *s)
{
    s->desc[0] = (struct desc){TABLE_GPA, 0, F_INDIRECT, 0};
    vhu_fe_vring_publish(s->r, 0);
}

static void h_indirect_too_long(struct session *s)
{
    struct desc *t = table(s, RING + 1);
    for (unsigned i = 0; i <= RING; i++)
        t[i] = (struct desc){BUF(0), 64, F_WRITE | (i < RING ? F_NEXT : 0), (uint16_t)(i + 1)};
    s->desc[0] = (struct desc){TABLE_GPA, 16u * (RING + 1), F_INDIRECT, 0};
    vhu_fe_vring_publish(s->r, 0);
}

static void h_indirect_with_next(struct session *s)
{
    table(s, 1)[0] = (struct desc){BUF(0), 64, 0, 0};
    s->desc[0] = (struct desc){TABLE_GPA, 16, F_INDIRECT | F_NEXT, 1};
    s->desc[1] = (struct desc){BUF(1), 64, F_WRITE, 0};
    vhu_fe_vring_publish(s->r, 0);
}

static void h_indirect_outside_memory(struct session *s)
{
    s->desc[0] = (struct desc){GUEST_MEM_SIZE - 16, 32, F_INDIRECT, 0};
    vhu_fe_vring_publish(s->r, 0);
}

static void h_indirect_loop(struct session *s)
{
    struct desc *t = table(s, 2);
    t[0] = (struct desc){BUF(0), 64, F_NEXT, 1};
    t[1] = (struct desc){BUF(1), 64, F_NEXT, 0};
    s->desc[0] = (struct desc){TABLE_GPA, 32, F_INDIRECT, 0};
    vhu_fe_vring_publish(s->r, 0);
}

static void h_indirect_next_out_of_range(struct session *s)
{
    struct desc *t = table(s, 2);
    t[0] = (struct desc){BUF(0), 64, F_NEXT, 2};
    t[1] = (struct desc){BUF(1), 64, 0, 0};
    s->desc[0] = (struct desc){TABLE_GPA, 32, F_INDIRECT, 0};
    vhu_fe_vring_publish(s->r, 0);
}

static void h_indirect_not_negotiated(struct session *s)
{
    table(s, 1)[0] = (struct desc){BUF(0), 64, 0, 0};
    s->desc[0] = (struct desc){TABLE_GPA, 16, F_INDIRECT, 0};
    vhu_fe_vring_publish(s->r, 0);
}

static void h_buffer_outside_memory(struct session *s)
{
    s->desc[0] = (struct desc){BUF(0), 64, F_NEXT, 1};
    s->desc[1] = (struct desc){GUEST_MEM_SIZE - 8, 16, F_WRITE, 0}; /* straddles the end */
    vhu_fe_vring_publish(s->r, 0);
}

static void h_buffer_far_away(struct session *s)
{
    s->desc[0] = (struct desc){0x100000000ull, 64, F_WRITE, 0};
    vhu_fe_vring_publish(s->r, 0);
}

static void h_buffer_wraps(struct session *s)
{
    s->desc[0] = (struct desc){0xfffffffffffffff0ull, 0x20, F_WRITE, 0};
    vhu_fe_vring_publish(s->r, 0);
}

static void h_zero_length(struct session *s)
{
    s->desc[0] = (struct desc){BUF(0), 0, F_WRITE, 0};
    vhu_fe_vring_publish(s->r, 0);
}

static void h_readable_after_writable(struct session *s)
{
    s->desc[0] = (struct desc){BUF(0), 64, F_WRITE | F_NEXT, 1};
    s->desc[1] = (struct desc){BUF(1), 64, 0, 0};
    vhu_fe_vring_publish(s->r, 0);
}

static void h_avail_idx_jump(struct session *s)
{
    s->desc[0] = (struct desc){BUF(0), 64, F_WRITE, 0};
    uint16_t *avail = (uint16_t *)gptr(s, s->r->avail_gpa, 4);
    s->r->avail_idx = (uint16_t)(s->r->avail_idx + RING + 1);
    __atomic_store_n(&avail[1], s->r->avail_idx, __ATOMIC_RELEASE);
}

static const struct hostile hostile_cases[] = {
    {"head out of range", "head 16 out of range", ~0ull, h_head_out_of_range},
    {"head 0xffff", "head 65535 out of range", ~0ull, h_head_max},
    {"next out of range", "next 16 out of range (ring", ~0ull, h_next_out_of_range},
    {"descriptor loop", "a loop", ~0ull, h_loop},
    {"self loop", "a loop", ~0ull, h_self_loop},
    {"chain longer than the ring", "longer than its ring", ~0ull, h_chain_longer_than_ring},
    {"nested indirect", "indirect descriptor inside an indirect table", ~0ull, h_nested_indirect},
    {"indirect table of 24 bytes", "indirect table of 24 bytes", ~0ull, h_indirect_len_24},
    {"indirect table of 0 bytes", "indirect table of 0 bytes", ~0ull, h_indirect_len_0},
    {"indirect table longer than the ring", "indirect table of 272 bytes", ~0ull,
     h_indirect_too_long},
    {"indirect with next", "both INDIRECT and NEXT", ~0ull, h_indirect_with_next},
    {"indirect table outside memory", "indirect table at 0xffff0 (+32)", ~0ull,
     h_indirect_outside_memory},
    {"loop in an indirect table", "longer than its indirect table", ~0ull, h_indirect_loop},
    {"next out of range in an indirect table", "next 2 out of range (indirect table", ~0ull,
     h_indirect_next_out_of_range},
    {"indirect not negotiated", "without RING_INDIRECT_DESC", ~VHU_BIT(VHU_F_RING_INDIRECT_DESC),
     h_indirect_not_negotiated},
    {"buffer straddling the end of memory", "buffer at 0xffff8 (+16) is not inside", ~0ull,
     h_buffer_outside_memory},
    {"buffer outside every region", "buffer at 0x100000000", ~0ull, h_buffer_far_away},
    {"buffer wrapping 2^64", "buffer at 0xfffffffffffffff0", ~0ull, h_buffer_wraps},
    {"zero-length buffer", "zero-length buffer", ~0ull, h_zero_length},
    {"readable after writable", "a readable buffer after a writable one", ~0ull,
     h_readable_after_writable},
    {"avail index jump", "is 17 entries ahead", ~0ull, h_avail_idx_jump},
};

static void test_hostile_chains(void **state)
{
    (void)state;
    struct vhu_vring_elem *e = malloc(sizeof(*e));
    assert_non_null(e);
    for (size_t c = 0; c < sizeof(hostile_cases) / sizeof(hostile_cases[0]); c++) {
        const struct hostile *h = &hostile_cases[c];
        struct session s;
        session_open(&s, false, h->features);
        struct vhu_vring_io *vq = vqdev_vq(&s.dev);
        /* A good request first: the ring works until the bad one. */
        assert_int_equal(one_request(&s, vq, e), 1);
        h->build(&s);
        vq_assert_broken(vq, e, h->name, h->log, s.g.err[0]);
        assert_int_equal(vhu_fe_vring_used_idx(&s.g.ring[0]), 1);
        /* The bad chain was not taken. */
        unsigned base = 0;
        assert_int_equal(vhu_fe_get_vring_base(s.fe, 0, &base), 0);
        assert_int_equal(base, 1);
        session_close(&s);
    }
    free(e);
}

/* ---- ring workers ---- */

static void push_writable(struct session *s, unsigned k)
{
    uint16_t head = (uint16_t)(k % RING);
    memset(gptr(s, BUF(head), 256), 0, 256);
    assert_int_equal(vhu_fe_vring_push(s->r, head, BUF(head), 256, F_WRITE), 0);
}

static bool filled(struct session *s, unsigned k)
{
    uint8_t *p = gptr(s, BUF(k % RING), 256);
    for (int i = 0; i < 256; i++)
        if (p[i] != VQDEV_ECHO_FILL)
            return false;
    return true;
}

static void test_worker(void **state)
{
    (void)state;
    struct session s;
    session_open(&s, true, ~0ull);
    for (unsigned k = 0; k < 5; k++)
        push_writable(&s, k);
    guest_kick(&s.g, 0);
    assert_true(wait_used_idx(s.r, 5, 2000));
    for (unsigned k = 0; k < 5; k++)
        assert_true(filled(&s, k));
    assert_true(wait_eventfd(s.g.call[0], 2000) >= 1);
    /* The worker asked for a kick at the next index (EVENT_IDX), just after
     * publishing the used entries. */
    for (int i = 0; i < 2000 && __atomic_load_n(avail_event(&s), __ATOMIC_ACQUIRE) != 5; i++)
        sleep_ms(1);
    assert_int_equal(*avail_event(&s), 5);

    /* Indirect chains too. */
    struct vhu_fe_buf b[2] = {{BUF(8), 16, false}, {BUF(9), 256, true}};
    memset(gptr(&s, BUF(9), 256), 0, 256);
    assert_int_equal(vhu_fe_vring_push_indirect(s.r, 5, TABLE_GPA, b, 2), 0);
    guest_kick(&s.g, 0);
    assert_true(wait_used_idx(s.r, 6, 2000));
    assert_true(filled(&s, 9));

    /* Disabled: chains wait in the ring; enabling serves them.  (Disabled
     * once the worker is idle, asking for a kick at 6: a worker still
     * draining the ring could take a chain published just after the
     * disable was answered, between its check and its read of the avail
     * index.) */
    for (int i = 0; i < 2000 && __atomic_load_n(avail_event(&s), __ATOMIC_ACQUIRE) != 6; i++)
        sleep_ms(1);
    assert_int_equal(*avail_event(&s), 6);
    assert_int_equal(vhu_fe_set_vring_enable(s.fe, 0, false), 0);
    push_writable(&s, 6);
    guest_kick(&s.g, 0);
    sleep_ms(50);
    assert_int_equal(vhu_fe_vring_used_idx(s.r), 6);
    assert_int_equal(vhu_fe_set_vring_enable(s.fe, 0, true), 0);
    assert_true(wait_used_idx(s.r, 7, 2000));

    /* Stopped: GET_VRING_BASE says where; nothing is served until the ring
     * starts again, from there, on the used index the ring holds. */
    unsigned base = 0;
    assert_int_equal(vhu_fe_get_vring_base(s.fe, 0, &base), 0);
    assert_int_equal(base, 7);
    push_writable(&s, 7);
    guest_kick(&s.g, 0);
    sleep_ms(50);
    assert_int_equal(vhu_fe_vring_used_idx(s.r), 7);
    assert_int_equal(vhu_fe_set_vring_base(s.fe, 0, base), 0);
    assert_int_equal(vhu_fe_set_vring_kick(s.fe, 0, s.g.kick[0]), 0);
    assert_int_equal(vhu_fe_set_vring_enable(s.fe, 0, true), 0);
    assert_true(wait_used_idx(s.r, 8, 2000));
    assert_true(filled(&s, 7));

    /* A hostile chain breaks the ring; the worker lives on, quietly, and a
     * restart (with a fixed ring) serves again. */
    log_clear();
    vhu_fe_vring_publish(s.r, 0x4000);
    guest_kick(&s.g, 0);
    assert_true(log_wait("ring 0 broken", 2000));
    guest_kick(&s.g, 0);
    sleep_ms(20);
    assert_int_equal(log_count("ring 0 broken"), 1);
    assert_int_equal(wait_eventfd(s.g.err[0], 2000), 1);
    assert_int_equal(vhu_fe_get_vring_base(s.fe, 0, &base), 0);
    assert_int_equal(base, 8);
    s.r->avail_idx = 8; /* the driver takes the bad entry back */
    push_writable(&s, 8);
    assert_int_equal(vhu_fe_set_vring_base(s.fe, 0, base), 0);
    assert_int_equal(vhu_fe_set_vring_kick(s.fe, 0, s.g.kick[0]), 0);
    assert_int_equal(vhu_fe_set_vring_enable(s.fe, 0, true), 0);
    assert_true(wait_used_idx(s.r, 9, 2000));
    assert_int_equal(atomic_load(&s.dev.served), 9);
    session_close(&s);
}

/* The driver keeps publishing and kicking on its own thread while the
 * front-end stops the ring: GET_VRING_BASE returns only once the worker is
 * done, with every chain it took completed, and nothing is taken after. */
struct driver {
    struct session *s;
    atomic_bool stop;
    atomic_uint pushed;
};

static void *drive(void *arg)
{
    struct driver *d = arg;
    struct session *s = d->s;
    while (!atomic_load(&d->stop)) {
        uint16_t used = vhu_fe_vring_used_idx(s->r);
        if ((uint16_t)(s->r->avail_idx - used) < RING) {
            uint16_t head = (uint16_t)(s->r->avail_idx % RING);
            vhu_fe_vring_push(s->r, head, BUF(head), 256, F_WRITE);
            atomic_fetch_add(&d->pushed, 1);
        }
        uint64_t one = 1;
        if (write(s->g.kick[0], &one, sizeof(one)) < 0)
            break;
        usleep(20);
    }
    return NULL;
}

static void test_worker_stop_under_load(void **state)
{
    (void)state;
    for (int round = 0; round < 5; round++) {
        struct session s;
        session_open(&s, true, ~0ull);
        atomic_store(&s.dev.echo_delay_us, 200);
        struct driver d = {.s = &s};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, drive, &d), 0);
        /* Let the worker get going (it serves 200 us per chain). */
        for (int i = 0; i < 2000 && atomic_load(&s.dev.served) == 0; i++)
            sleep_ms(1);
        sleep_ms(5 * (unsigned)round);
        unsigned base = 0;
        assert_int_equal(vhu_fe_get_vring_base(s.fe, 0, &base), 0);
        /* Every chain the worker took is in the used ring, flushed. */
        assert_int_equal(vhu_fe_vring_used_idx(s.r), (uint16_t)base);
        assert_int_equal(atomic_load(&s.dev.served), base);
        assert_true(base > 0);
        /* The driver goes on publishing until the ring is full... */
        for (int i = 0; i < 2000 && atomic_load(&d.pushed) < base + RING; i++)
            sleep_ms(1);
        assert_int_equal(atomic_load(&d.pushed), base + RING);
        sleep_ms(20);
        atomic_store(&d.stop, true);
        pthread_join(t, NULL);
        /* ...and none of it is taken. */
        assert_int_equal(vhu_fe_vring_used_idx(s.r), (uint16_t)base);
        assert_int_equal(atomic_load(&s.dev.served), base);
        assert_int_equal(log_count("taken but not completed"), 0);
        session_close(&s);
    }
}

/* A kick fd that is not an eventfd and reports end of file (the read end
 * of a closed pipe) would wake the worker forever: it is dropped with one
 * log line, and the ring still stops cleanly.  Sessions leave no fd
 * behind (the worker's loop has its own epoll and eventfd). */
static void test_worker_bad_kick_fd_and_fds(void **state)
{
    (void)state;
    int fds_before = count_open_fds();
    struct session s;
    session_open(&s, true, ~0ull);
    int p[2];
    assert_int_equal(pipe(p), 0);
    close(p[1]);
    assert_int_equal(vhu_fe_set_vring_kick(s.fe, 0, p[0]), 0);
    close(p[0]);
    assert_true(log_wait("is not readable as an eventfd", 2000));
    sleep_ms(20);
    assert_int_equal(log_count("is not readable as an eventfd"), 1);
    unsigned base = 99;
    assert_int_equal(vhu_fe_get_vring_base(s.fe, 0, &base), 0);
    assert_int_equal(base, 0);
    /* Back on a real eventfd, the ring is served. */
    assert_int_equal(vhu_fe_set_vring_base(s.fe, 0, 0), 0);
    assert_int_equal(vhu_fe_set_vring_kick(s.fe, 0, s.g.kick[0]), 0);
    push_writable(&s, 0);
    guest_kick(&s.g, 0);
    assert_true(wait_used_idx(s.r, 1, 2000));
    session_close(&s);
    for (int i = 0; i < 5; i++) {
        session_open(&s, true, ~0ull);
        push_writable(&s, 0);
        guest_kick(&s.g, 0);
        assert_true(wait_used_idx(s.r, 1, 2000));
        session_close(&s);
    }
    assert_int_equal(count_open_fds(), fds_before);
}

/* ---- migration support: dirty log and inflight tracking ---- */

/* While the front-end logs, what the layer writes is marked: the buffers
 * the device filled and the used ring (entries, index, avail_event) - and
 * nothing it only read (descriptors, indirect table, readable buffer). */
static void test_dirty_log(void **state)
{
    (void)state;
    struct session s;
    session_open(&s, true, ~0ull);
    uint64_t f = 0;
    assert_int_equal(vhu_fe_get_features(s.fe, &f), 0);
    f &= ~VHU_BIT(VHU_F_LOG_ALL); /* what session_open acked */
    int lfd;
    uint8_t *log = vq_log_start(s.fe, f, &lfd);
    assert_int_equal(vhu_fe_vring_set_addr(s.fe, s.r, VHU_VRING_F_LOG), 0);

    struct vhu_fe_buf b[2] = {{BUF(5), 16, false}, {BUF(3), 256, true}};
    assert_int_equal(vhu_fe_vring_push_indirect(s.r, 0, TABLE_GPA, b, 2), 0);
    guest_kick(&s.g, 0);
    assert_true(wait_used_idx(s.r, 1, 2000));
    /* avail_event is written just after the used index: wait for it. */
    for (int i = 0; i < 2000 && __atomic_load_n(avail_event(&s), __ATOMIC_ACQUIRE) != 1; i++)
        sleep_ms(1);
    assert_true(vq_log_bit(log, BUF(3)));
    assert_true(vq_log_bit(log, s.r->used_gpa));
    assert_false(vq_log_bit(log, BUF(5)));
    assert_false(vq_log_bit(log, TABLE_GPA));
    assert_false(vq_log_bit(log, s.r->desc_gpa));
    assert_int_equal(vq_log_bits(log), 2);
    assert_true(filled(&s, 3));

    /* Logging off: nothing marked any more. */
    assert_int_equal(vhu_fe_set_features(s.fe, f), 0);
    assert_int_equal(vhu_fe_vring_set_addr(s.fe, s.r, 0), 0);
    memset(log, 0, VQ_LOG_BYTES);
    assert_int_equal(vhu_fe_vring_push_indirect(s.r, 1, TABLE_GPA, b, 2), 0);
    guest_kick(&s.g, 0);
    assert_true(wait_used_idx(s.r, 2, 2000));
    sleep_ms(10);
    assert_int_equal(vq_log_bits(log), 0);
    munmap(log, VQ_LOG_BYTES);
    close(lfd);
    session_close(&s);
}

/* As QEMU starts a ring on a back-end that tracks inflight requests. */
static void start_with_inflight(struct session *s, const struct vhu_inflight *in, int ifd,
                                unsigned base)
{
    struct vhu_mem_region reg = vhu_guest_mem_region(&s->g.mem);
    assert_int_equal(vhu_fe_set_mem_table(s->fe, &reg, &s->g.mem.fd, 1), 0);
    uint64_t st = 1;
    assert_int_equal(vhu_fe_call(s->fe, VHU_REQ_SET_INFLIGHT_FD,
                                 VHU_FLAG_VERSION | VHU_FLAG_NEED_REPLY, in, sizeof(*in), &ifd, 1,
                                 &st, sizeof(st), NULL, NULL),
                     8);
    assert_int_equal(st, 0);
    assert_int_equal(vhu_fe_set_vring_num(s->fe, 0, RING), 0);
    assert_int_equal(vhu_fe_set_vring_base(s->fe, 0, base), 0);
    assert_int_equal(vhu_fe_vring_set_addr(s->fe, s->r, 0), 0);
    assert_int_equal(vhu_fe_set_vring_call(s->fe, 0, s->g.call[0]), 0);
    assert_int_equal(vhu_fe_set_vring_err(s->fe, 0, s->g.err[0]), 0);
    assert_int_equal(vhu_fe_set_vring_kick(s->fe, 0, s->g.kick[0]), 0);
    assert_int_equal(vhu_fe_set_vring_enable(s->fe, 0, true), 0);
}

/* Chains taken and not completed when the front-end goes away are
 * recorded in the inflight region; the next start hands them out again
 * first, oldest first, then the ring continues; a clean stop leaves
 * nothing to resubmit. */
static void test_inflight_resubmit(void **state)
{
    (void)state;
    struct session s;
    session_connect(&s, false, ~0ull);
    struct vhu_inflight in;
    int ifd = inflight_get(s.fe, 1, RING, &in);
    assert_true(ifd >= 0);
    start_with_inflight(&s, &in, ifd, 0);
    for (unsigned k = 0; k < 3; k++)
        assert_int_equal(vhu_fe_vring_push(s.r, (uint16_t)k, BUF(k), 64, F_WRITE), 0);
    static struct vhu_vring_elem taken[3];
    struct vhu_vring_io *vq = vqdev_vq(&s.dev);
    for (unsigned k = 0; k < 3; k++) {
        assert_int_equal(vhu_vring_io_pop(vq, &taken[k]), 1);
        assert_int_equal(taken[k].head, k);
    }
    assert_int_equal(vhu_vring_io_push(vq, &taken[2], 64), 0);
    assert_int_equal(vhu_vring_io_flush(vq), 1);
    /* The region (the vhost-user spec's split-ring layout: a 16-byte header
     * {features, version, desc_num, last_batch_head, used_idx}, then 16
     * bytes per descriptor {inflight, pad[5], next, counter}) says: 0 and 1
     * in flight, 0 taken first; 2 completed, up to used index 1. */
    uint8_t *rq = mmap(NULL, in.mmap_size, PROT_READ, MAP_SHARED, ifd, (off_t)in.mmap_offset);
    assert_true(rq != MAP_FAILED);
    uint16_t used_idx;
    memcpy(&used_idx, rq + 14, 2);
    assert_int_equal(used_idx, 1);
    uint64_t counter[2];
    for (unsigned k = 0; k < 3; k++) {
        assert_int_equal(rq[16 + 16 * k], k < 2);
        if (k < 2)
            memcpy(&counter[k], rq + 16 + 16 * k + 8, 8);
    }
    assert_true(counter[0] < counter[1]);
    munmap(rq, in.mmap_size);
    /* The front-end goes away with heads 0 and 1 in flight. */
    close_frontend(&s);
    for (int i = 0; i < 2000 && atomic_load(&s.dev.vq); i++)
        sleep_ms(1);
    assert_null(atomic_load(&s.dev.vq));

    /* It comes back with the same region and starts at the used index. */
    assert_int_equal(vhu_fe_connect(&s.fe, s.ds.path, 2000), 0);
    assert_int_equal(vhu_fe_negotiate(s.fe, ~VHU_BIT(VHU_F_LOG_ALL), ~0ull, NULL, NULL), 0);
    start_with_inflight(&s, &in, ifd, vhu_fe_vring_used_idx(s.r));
    vq = vqdev_vq(&s.dev);
    struct vhu_vring_elem *e = malloc(sizeof(*e));
    assert_non_null(e);
    for (unsigned k = 0; k < 2; k++) {
        assert_int_equal(vhu_vring_io_pop(vq, &taken[k]), 1);
        assert_int_equal(taken[k].head, k);
        assert_int_equal(taken[k].n_in, 1);
        assert_int_equal(taken[k].iov[0].iov_len, 64);
    }
    assert_int_equal(vhu_vring_io_pop(vq, e), 0); /* nothing new, nothing twice */
    assert_int_equal(vhu_vring_io_push(vq, &taken[1], 64), 0);
    assert_int_equal(vhu_vring_io_push(vq, &taken[0], 64), 0);
    vhu_vring_io_flush(vq);
    uint32_t id;
    uint32_t want[3] = {2, 1, 0};
    for (unsigned k = 0; k < 3; k++) {
        assert_int_equal(vhu_fe_vring_pop_used(s.r, &id, NULL), 1);
        assert_int_equal(id, want[k]);
    }
    unsigned base = 0;
    assert_int_equal(vhu_fe_get_vring_base(s.fe, 0, &base), 0);
    assert_int_equal(base, 3);
    close_frontend(&s);
    for (int i = 0; i < 2000 && atomic_load(&s.dev.vq); i++)
        sleep_ms(1);

    /* After a clean stop: nothing to resubmit. */
    assert_int_equal(vhu_fe_connect(&s.fe, s.ds.path, 2000), 0);
    assert_int_equal(vhu_fe_negotiate(s.fe, ~VHU_BIT(VHU_F_LOG_ALL), ~0ull, NULL, NULL), 0);
    start_with_inflight(&s, &in, ifd, 3);
    assert_int_equal(vhu_vring_io_pop(vqdev_vq(&s.dev), e), 0);
    free(e);
    close(ifd);
    session_close(&s);
}

int main(void)
{
    log_capture_install();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_chains),
        cmocka_unit_test(test_heads_in_flight),
        cmocka_unit_test(test_event_idx),
        cmocka_unit_test(test_no_interrupt),
        cmocka_unit_test(test_hostile_chains),
        cmocka_unit_test(test_worker),
        cmocka_unit_test(test_worker_stop_under_load),
        cmocka_unit_test(test_worker_bad_kick_fd_and_fds),
        cmocka_unit_test(test_dirty_log),
        cmocka_unit_test(test_inflight_resubmit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
