/* SPDX-License-Identifier: BSD-3-Clause */
/* The virtqueue layer on hand-built packed rings (VIRTIO_F_RING_PACKED) in
 * real shared memory: this test is the driver (the front-end library lays
 * the ring out in a memfd), a real back-end maps it and starts the ring on
 * a small device offering RING_PACKED, and the test takes chains through
 * vhu/vring.h on the back-end's mapping ("manual" mode) or lets a ring
 * worker serve them ("worker" mode).
 *
 * Good chains, indirect tables and out-of-order completion at several ring
 * sizes; wrap-around many times (sizes 1 to 256); driver event suppression
 * (ENABLE, DISABLE, DESC with EVENT_IDX across a wrap) and what the device
 * writes in its own area; hostile chains, each breaking the ring with one
 * log line naming it; buffer-ID ownership; dirty logging of the
 * descriptor ring; and, over the socket, the packed base encoding of
 * SET/GET_VRING_BASE (bits 0-14 avail position, 15 avail wrap, 16-30 used
 * position, 31 used wrap) across stop, restart and a second back-end. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "devserver.h"
#include "harness.h"
#include "vqdev.h"

#define F_NEXT 1
#define F_WRITE 2
#define F_INDIRECT 4
#define F_AVAIL (1u << 7)
#define F_USED (1u << 15)
#define MEM_SIZE (1u << 20)
#define RING_GPA 0x10000u
#define TABLE_GPA 0x60000u
#define BUF(k) (0x80000u + (uint64_t)(k)*0x1000u) /* 4 KiB buffers, k < 128 */

struct pdesc {
    uint64_t addr;
    uint32_t len;
    uint16_t id, flags;
};

/* ---- the device ---- */

/* A state section, so that DEVICE_STATE is offered (and refused for
 * packed rings). */
static const struct vhu_state_section sections[] = {{.name = "none", .version = 1}};

static int save_none(void *dev, const struct vhu_state_section *s, struct vhu_state_writer *w)
{
    (void)dev, (void)s, (void)w;
    return 0;
}

static int load_none(void *dev, void *staged, const struct vhu_state_section *s, uint32_t version,
                     struct vhu_state_reader *r)
{
    (void)dev, (void)staged, (void)s, (void)version, (void)r;
    return 0;
}

/* ---- a session: device, server, front-end, guest memory, one packed ring ---- */

struct session {
    struct vqdev dev;
    struct devserver ds;
    struct vhu_fe *fe;
    struct vhu_guest_mem mem;
    struct vhu_fe_vring r;
    unsigned size;
    int kick, call, err;
    struct pdesc *ring;
};

static void activate(struct session *s, struct vhu_fe *fe, uint32_t base)
{
    struct vhu_mem_region reg = vhu_guest_mem_region(&s->mem);
    assert_int_equal(vhu_fe_set_mem_table(fe, &reg, &s->mem.fd, 1), 0);
    assert_int_equal(vhu_fe_set_vring_num(fe, 0, s->size), 0);
    assert_int_equal(vhu_fe_vring_set_addr(fe, &s->r, 0), 0);
    assert_int_equal(vhu_fe_set_vring_base(fe, 0, base), 0);
    assert_int_equal(vhu_fe_set_vring_call(fe, 0, s->call), 0);
    assert_int_equal(vhu_fe_set_vring_err(fe, 0, s->err), 0);
    assert_int_equal(vhu_fe_set_vring_kick(fe, 0, s->kick), 0);
    assert_int_equal(vhu_fe_set_vring_enable(fe, 0, true), 0);
}

static void device_init(struct vqdev *d, bool worker_mode)
{
    vqdev_init(d, "vqpacked",
               VHU_BIT(VHU_F_VERSION_1) | VHU_BIT(VHU_F_RING_EVENT_IDX) |
                   VHU_BIT(VHU_F_RING_INDIRECT_DESC) | VHU_BIT(VHU_F_LOG_ALL) |
                   VHU_BIT(VHU_F_RING_PACKED),
               worker_mode);
    d->ops.sections = sections;
    d->ops.num_sections = 1;
    d->ops.save_section = save_none;
    d->ops.load_section = load_none;
}

/* The next session_connect also opens a control socket (s->ds.control). */
static bool session_control;

/* Connected and negotiated, memory and ring laid out, not activated. */
static void session_connect(struct session *s, bool worker_mode, uint64_t features, unsigned size)
{
    memset(s, 0, sizeof(*s));
    device_init(&s->dev, worker_mode);
    assert_int_equal(
        (session_control ? devserver_start_control : devserver_start)(&s->ds, &s->dev.ops, &s->dev),
        0);
    session_control = false;
    s->fe = devserver_connect(&s->ds, features & ~VHU_BIT(VHU_F_LOG_ALL));
    s->size = size;
    assert_int_equal(vhu_guest_mem_new(&s->mem, 0, MEM_SIZE), 0);
    assert_int_equal(vhu_fe_vring_init_packed(&s->r, &s->mem, 0, size, RING_GPA), 0);
    s->ring = vhu_fe_vring_desc(&s->r);
    s->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    s->call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    s->err = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    assert_true(s->kick >= 0 && s->call >= 0 && s->err >= 0);
    log_clear();
}

static void session_open(struct session *s, bool worker_mode, uint64_t features, unsigned size)
{
    session_connect(s, worker_mode, features, size);
    activate(s, s->fe, vhu_fe_vring_packed_base(&s->r));
    assert_int_equal(atomic_load(&s->dev.starts), 1);
}

/* Close the front-end; a ring this thread drove goes back to the server
 * thread, which frees it (the store pairs with vq_stop's exchange, so that
 * ThreadSanitizer sees this thread's last use happen before the free). */
static void close_fe(struct session *s)
{
    atomic_store(&s->dev.vq, atomic_load(&s->dev.vq));
    if (s->fe)
        vhu_fe_close(s->fe);
    s->fe = NULL;
}

static void session_close(struct session *s)
{
    /* Hand a ring this thread drove back to the server thread (see
     * test_vring.c's close_frontend). */
    atomic_store(&s->dev.vq, atomic_load(&s->dev.vq));
    vhu_fe_close(s->fe);
    s->fe = NULL;
    devserver_stop(&s->ds);
    close(s->kick);
    close(s->call);
    close(s->err);
    vhu_guest_mem_free(&s->mem);
}

static uint8_t *gptr(struct session *s, uint64_t gpa, uint64_t len)
{
    uint8_t *p = vhu_guest_mem_ptr(&s->mem, gpa, len);
    assert_non_null(p);
    return p;
}

static void kick(struct session *s)
{
    uint64_t one = 1;
    assert_int_equal(write(s->kick, &one, sizeof(one)), (int)sizeof(one));
}

/* The device's event suppression area: off_wrap, flags. */
static uint16_t *device_area(struct session *s) { return (uint16_t *)gptr(s, s->r.used_gpa, 4); }

static unsigned get_base(struct session *s)
{
    unsigned base = 0;
    assert_int_equal(vhu_fe_get_vring_base(s->fe, 0, &base), 0);
    return base;
}

/* A popped element's segment i is the guest buffer at gpa, len bytes:
 * the back-end's pointer (its own mapping) reaches the driver's bytes. */
static void assert_seg(struct session *s, const struct vhu_vring_elem *e, unsigned i, uint64_t gpa,
                       uint32_t len)
{
    assert_int_equal(e->gpa[i], gpa);
    vq_assert_seg(gptr(s, gpa, len), e, i, len);
}

/* Pop that must take a chain; the log tells why when it does not. */
static void pop_ok(struct vhu_vring_io *vq, struct vhu_vring_elem *e)
{
    int r = vhu_vring_io_pop(vq, e);
    if (r != 1) {
        print_error("pop gave %d; log lines:\n", r);
        log_dump();
        fail();
    }
}

static void pop_used_expect(struct session *s, uint32_t id, uint32_t len)
{
    uint32_t gid = 0xffffffffu, glen = 0xffffffffu;
    assert_int_equal(vhu_fe_vring_pop_used(&s->r, &gid, &glen), 1);
    assert_int_equal(gid, id);
    assert_int_equal(glen, len);
}

/* ---- good chains ---- */

static void good_chains(unsigned size)
{
    struct vhu_vring_elem *e = malloc(2 * sizeof(*e));
    assert_non_null(e);
    struct vhu_vring_elem *e2 = e + 1;
    struct session s;
    session_open(&s, false, ~0ull, size);
    struct vhu_vring_io *vq = vqdev_vq(&s.dev);
    assert_int_equal(vhu_vring_io_pop(vq, e), 0);

    /* One writable buffer (ID 3) and a chain of two readable and one
     * writable buffer (ID 1): four descriptors. */
    assert_int_equal(vhu_fe_vring_push(&s.r, 3, BUF(0), 64, F_WRITE), 0);
    struct vhu_fe_buf c[3] = {{BUF(1), 16, false}, {BUF(2), 100, false}, {BUF(3), 512, true}};
    assert_int_equal(vhu_fe_vring_push_chain(&s.r, 1, c, 3), 0);
    assert_int_equal(vhu_vring_io_pop(vq, e), 1);
    assert_int_equal(e->head, 3);
    assert_int_equal(e->n_out, 0);
    assert_int_equal(e->n_in, 1);
    assert_int_equal(e->in_bytes, 64);
    assert_seg(&s, e, 0, BUF(0), 64);
    assert_int_equal(vhu_vring_io_pop(vq, e2), 1);
    assert_int_equal(e2->head, 1);
    assert_int_equal(e2->n_out, 2);
    assert_int_equal(e2->n_in, 1);
    assert_int_equal(e2->out_bytes, 116);
    assert_int_equal(e2->in_bytes, 512);
    assert_seg(&s, e2, 0, BUF(1), 16);
    assert_seg(&s, e2, 1, BUF(2), 100);
    assert_seg(&s, e2, 2, BUF(3), 512);
    assert_int_equal(vhu_vring_io_pop(vq, e), 0);
    assert_int_equal(vhu_vring_io_inflight(vq), 2);

    /* Completed out of order: the chain first.  Nothing is visible before
     * the flush; the first flush signals. */
    assert_int_equal(vhu_vring_io_push(vq, e2, 7), 0);
    e->head = 3;
    assert_int_equal(vhu_vring_io_push(vq, e, 64), 0);
    assert_int_equal(vhu_fe_vring_pop_used(&s.r, NULL, NULL), 0);
    assert_int_equal(vhu_vring_io_flush(vq), 1);
    assert_int_equal(vq_read_eventfd(s.call), 1);
    pop_used_expect(&s, 1, 7);
    pop_used_expect(&s, 3, 64);
    assert_int_equal(vhu_fe_vring_pop_used(&s.r, NULL, NULL), 0);
    assert_int_equal(s.r.in_use, 0);
    assert_int_equal(vhu_vring_io_inflight(vq), 0);

    /* An indirect table: two readable, two writable buffers, one ring
     * descriptor (ID 0). */
    struct vhu_fe_buf t[4] = {
        {BUF(4), 8, false}, {BUF(5), 24, false}, {BUF(6), 4096, true}, {BUF(7), 1, true}};
    assert_int_equal(vhu_fe_vring_push_indirect(&s.r, 0, TABLE_GPA, t, 4), 0);
    assert_int_equal(vhu_vring_io_pop(vq, e), 1);
    assert_int_equal(e->head, 0);
    assert_int_equal(e->n_out, 2);
    assert_int_equal(e->n_in, 2);
    assert_seg(&s, e, 0, BUF(4), 8);
    assert_seg(&s, e, 1, BUF(5), 24);
    assert_seg(&s, e, 2, BUF(6), 4096);
    assert_seg(&s, e, 3, BUF(7), 1);
    assert_int_equal(vhu_vring_io_push(vq, e, 4097), 0);
    assert_true(vhu_vring_io_flush(vq) >= 0);
    pop_used_expect(&s, 0, 4097);
    /* Five descriptors taken and used: both sides are there. */
    unsigned pos = 5 % size, wrap = (5 / size) % 2 ? 0 : 1;
    assert_int_equal(get_base(&s), pos | wrap << 15 | pos << 16 | wrap << 31);
    assert_int_equal(get_base(&s), vhu_fe_vring_packed_base(&s.r));
    assert_int_equal(log_count("broken"), 0);
    session_close(&s);
    free(e);
}

/* The longest chains allowed: as many descriptors as the ring has (from
 * position 1, so across the end of the ring), and an indirect table of
 * VHU_VRING_MAX_SEGS entries in a ring of 2. */
static void longest_chains(void)
{
    struct vhu_vring_elem *e = malloc(sizeof(*e));
    assert_non_null(e);
    struct session s;
    session_open(&s, false, ~0ull, 16);
    struct vhu_vring_io *vq = vqdev_vq(&s.dev);
    assert_int_equal(vhu_fe_vring_push(&s.r, 0, BUF(0), 64, F_WRITE), 0);
    pop_ok(vq, e);
    assert_int_equal(vhu_vring_io_push(vq, e, 0), 0);
    assert_true(vhu_vring_io_flush(vq) >= 0);
    pop_used_expect(&s, 0, 0);
    struct vhu_fe_buf c[16];
    for (unsigned i = 0; i < 16; i++)
        c[i] = (struct vhu_fe_buf){BUF(i), 32, i >= 8};
    assert_int_equal(vhu_fe_vring_push_chain(&s.r, 9, c, 16), 0);
    pop_ok(vq, e);
    assert_int_equal(e->head, 9);
    assert_int_equal(e->n_out, 8);
    assert_int_equal(e->n_in, 8);
    assert_seg(&s, e, 15, BUF(15), 32);
    assert_int_equal(vhu_vring_io_push(vq, e, 256), 0);
    assert_true(vhu_vring_io_flush(vq) >= 0);
    pop_used_expect(&s, 9, 256);
    assert_int_equal(get_base(&s), 1u | 1u << 16); /* 17 descriptors: second lap */
    session_close(&s);

    session_open(&s, false, ~0ull, 2);
    vq = vqdev_vq(&s.dev);
    static struct vhu_fe_buf t[VHU_VRING_MAX_SEGS];
    for (unsigned i = 0; i < VHU_VRING_MAX_SEGS; i++)
        t[i] = (struct vhu_fe_buf){BUF(i % 64) + 64 * (i / 64), 64, i >= 512};
    assert_int_equal(vhu_fe_vring_push_indirect(&s.r, 1, TABLE_GPA, t, VHU_VRING_MAX_SEGS), 0);
    pop_ok(vq, e);
    assert_int_equal(e->head, 1);
    assert_int_equal(e->n_out + e->n_in, VHU_VRING_MAX_SEGS);
    assert_int_equal(e->n_in, VHU_VRING_MAX_SEGS / 2);
    session_close(&s);
    free(e);
}

static void test_good_chains(void **state)
{
    (void)state;
    longest_chains();
    good_chains(4);
    good_chains(16);
    good_chains(256);
    good_chains(1024);
}

/* Push of an ID the device does not hold is refused without breaking the
 * ring (it would complete the driver's next request with that ID). */
static void test_ids_in_flight(void **state)
{
    (void)state;
    struct vhu_vring_elem *e = malloc(sizeof(*e));
    assert_non_null(e);
    struct session s;
    session_open(&s, false, ~0ull, 16);
    struct vhu_vring_io *vq = vqdev_vq(&s.dev);
    e->head = 2;
    e->n_out = e->n_in = 0;
    assert_int_equal(vhu_vring_io_push(vq, e, 0), -EINVAL);
    assert_int_equal(vhu_fe_vring_push(&s.r, 2, BUF(0), 64, F_WRITE), 0);
    assert_int_equal(vhu_vring_io_pop(vq, e), 1);
    e->head = 3;
    assert_int_equal(vhu_vring_io_push(vq, e, 0), -EINVAL);
    e->head = 16;
    assert_int_equal(vhu_vring_io_push(vq, e, 0), -EINVAL);
    e->head = 2;
    assert_int_equal(vhu_vring_io_push(vq, e, 0), 0);
    assert_int_equal(vhu_vring_io_push(vq, e, 0), -EINVAL); /* not twice */
    assert_true(vhu_vring_io_flush(vq) >= 0);
    pop_used_expect(&s, 2, 0);
    assert_false(vhu_vring_io_broken(vq));
    session_close(&s);
    free(e);
}

/* ---- wrap-around ---- */

/* Rounds of 1-3 buffers (plain, chained, indirect), completed in reverse
 * order, until the ring has wrapped many times; the data each request
 * wrote and the positions both sides reach are checked. */
static void wrap_around(unsigned size, unsigned rounds)
{
    struct vhu_vring_elem *e = malloc(3 * sizeof(*e));
    assert_non_null(e);
    struct session s;
    session_open(&s, false, ~0ull, size);
    struct vhu_vring_io *vq = vqdev_vq(&s.dev);
    unsigned next_id = 0, descs = 0;
    for (unsigned k = 0; k < rounds; k++) {
        unsigned m = 1 + k % 3, used = 0;
        uint16_t ids[3];
        unsigned n_in_round = 0;
        for (unsigned j = 0; j < m; j++) {
            unsigned kind = (k + j) % 3; /* 0 plain, 1 chain of 2, 2 indirect */
            unsigned need = kind == 1 ? 2 : 1;
            if (used + need > size)
                break;
            uint16_t id = (uint16_t)(next_id++ % size);
            ids[n_in_round++] = id;
            uint64_t out = BUF(8 + j), in = BUF(j);
            memset(gptr(&s, in, 256), 0, 256);
            if (kind == 0) {
                assert_int_equal(vhu_fe_vring_push(&s.r, id, in, 256, F_WRITE), 0);
            } else if (kind == 1) {
                struct vhu_fe_buf c[2] = {{out, 32, false}, {in, 256, true}};
                assert_int_equal(vhu_fe_vring_push_chain(&s.r, id, c, 2), 0);
            } else {
                struct vhu_fe_buf c[2] = {{out, 32, false}, {in, 256, true}};
                assert_int_equal(vhu_fe_vring_push_indirect(&s.r, id, TABLE_GPA + 64 * j, c, 2), 0);
            }
            used += need;
        }
        descs += used;
        for (unsigned j = 0; j < n_in_round; j++) {
            pop_ok(vq, &e[j]);
            assert_int_equal(e[j].head, ids[j]);
            assert_int_equal(e[j].in_bytes, 256);
            memset(e[j].iov[e[j].n_out].iov_base, (int)(ids[j] + 1), 256);
        }
        assert_int_equal(vhu_vring_io_pop(vq, e), 0);
        for (unsigned j = n_in_round; j-- > 0;)
            assert_int_equal(vhu_vring_io_push(vq, &e[j], 100 + j), 0);
        assert_true(vhu_vring_io_flush(vq) >= 0);
        for (unsigned j = n_in_round; j-- > 0;) {
            pop_used_expect(&s, ids[j], 100 + j);
            const uint8_t *p = gptr(&s, BUF(j), 256);
            assert_int_equal(p[0], (uint8_t)(ids[j] + 1));
            assert_int_equal(p[255], (uint8_t)(ids[j] + 1));
        }
        assert_int_equal(vhu_fe_vring_pop_used(&s.r, NULL, NULL), 0);
        assert_int_equal(s.r.in_use, 0);
    }
    /* Where both sides are after `descs` descriptors. */
    unsigned pos = descs % size, wrap = (descs / size) % 2 ? 0 : 1;
    assert_true(descs / size >= 3);
    assert_int_equal(vhu_fe_vring_packed_base(&s.r), pos | wrap << 15 | pos << 16 | wrap << 31);
    assert_int_equal(get_base(&s), vhu_fe_vring_packed_base(&s.r));
    assert_int_equal(log_count("broken"), 0);
    session_close(&s);
    free(e);
}

static void test_wrap_around(void **state)
{
    (void)state;
    wrap_around(1, 9);
    wrap_around(2, 15);
    wrap_around(4, 40);
    wrap_around(16, 101);
    wrap_around(256, 700);
}

/* ---- event suppression ---- */

/* n single-buffer requests through the device (manual mode); returns
 * flush's result. */
static int complete_n(struct session *s, struct vhu_vring_elem *e, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        uint16_t id = (uint16_t)i;
        assert_int_equal(vhu_fe_vring_push(&s->r, id, BUF(i), 64, F_WRITE), 0);
        assert_int_equal(vhu_vring_io_pop(vqdev_vq(&s->dev), e), 1);
        assert_int_equal(vhu_vring_io_push(vqdev_vq(&s->dev), e, 1), 0);
    }
    int r = vhu_vring_io_flush(vqdev_vq(&s->dev));
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(vhu_fe_vring_pop_used(&s->r, NULL, NULL), 1);
    return r;
}

/* The driver's kick decision (Linux's virtqueue_kick_prepare_packed): the
 * device area after `added` descriptors made available up to the driver's
 * next position. */
static bool driver_would_kick(struct session *s, unsigned added)
{
    const uint16_t *dev = device_area(s);
    uint16_t off_wrap = __atomic_load_n(&dev[0], __ATOMIC_RELAXED);
    uint16_t flags = __atomic_load_n(&dev[1], __ATOMIC_RELAXED);
    if (flags != 2)
        return flags != 1;
    uint16_t new_pos = s->r.next_avail, old = (uint16_t)(new_pos - added);
    uint16_t ev = off_wrap & 0x7fff;
    if ((off_wrap >> 15) != s->r.avail_wrap)
        ev = (uint16_t)(ev - s->size);
    return (uint16_t)(new_pos - ev - 1) < (uint16_t)(new_pos - old);
}

/* With EVENT_IDX, a device that is serving asks for no kicks: the first
 * chain it pops after enable_kick turns them off (DISABLE), and the next
 * enable_kick asks for one at the next descriptor again.  Left at DESC, the
 * driver would meet the event position again every second lap and kick a
 * device that polls anyway. */
static void test_kicks_off_while_serving(void **state)
{
    (void)state;
    struct vhu_vring_elem *e = malloc(sizeof(*e));
    assert_non_null(e);
    struct session s;
    session_open(&s, false, ~0ull, 16);
    struct vhu_vring_io *vq = vqdev_vq(&s.dev);
    uint16_t *dev = device_area(&s);
    assert_false(vhu_vring_io_enable_kick(vq));
    assert_int_equal(dev[0], 0x8000);
    assert_int_equal(dev[1], 2);
    /* The first request is the event: the driver kicks. */
    assert_int_equal(vhu_fe_vring_push(&s.r, 0, BUF(0), 64, F_WRITE), 0);
    assert_true(driver_would_kick(&s, 1));
    /* Four laps of requests served as they come, never enable_kick: no
     * kick asked for after the first pop. */
    unsigned kicks = 0;
    for (unsigned i = 0; i < 4 * 16; i++) {
        assert_int_equal(vhu_vring_io_pop(vq, e), 1);
        assert_int_equal(dev[1], 1);
        assert_int_equal(vhu_vring_io_push(vq, e, 1), 0);
        assert_int_equal(vhu_vring_io_flush(vq), 1); /* the driver area is zeroed: ENABLE */
        assert_int_equal(vhu_fe_vring_pop_used(&s.r, NULL, NULL), 1);
        assert_int_equal(vhu_fe_vring_push(&s.r, (uint16_t)((i + 1) % 16), BUF(0), 64, F_WRITE), 0);
        kicks += driver_would_kick(&s, 1);
    }
    assert_int_equal(kicks, 0);
    /* One request is left; the device takes it and then asks for a kick
     * at the next descriptor (position 1 of the fifth lap, wrap 1). */
    assert_int_equal(vhu_vring_io_pop(vq, e), 1);
    assert_int_equal(vhu_vring_io_push(vq, e, 1), 0);
    assert_int_equal(vhu_vring_io_flush(vq), 1);
    assert_int_equal(vhu_fe_vring_pop_used(&s.r, NULL, NULL), 1);
    assert_false(vhu_vring_io_enable_kick(vq));
    assert_int_equal(dev[0], 0x8000 | 1);
    assert_int_equal(dev[1], 2);
    assert_int_equal(vhu_fe_vring_push(&s.r, 3, BUF(0), 64, F_WRITE), 0);
    assert_true(driver_would_kick(&s, 1));
    /* enable_kick that finds a published descriptor leaves DESC; the pop
     * turns kicks off again. */
    assert_true(vhu_vring_io_enable_kick(vq));
    assert_int_equal(dev[1], 2);
    assert_int_equal(vhu_vring_io_pop(vq, e), 1);
    assert_int_equal(dev[1], 1);
    assert_int_equal(vhu_vring_io_push(vq, e, 1), 0);
    session_close(&s);

    /* Without EVENT_IDX the driver kicks every time, as on a split ring:
     * pop leaves the area at ENABLE. */
    session_open(&s, false, ~VHU_BIT(VHU_F_RING_EVENT_IDX), 16);
    vq = vqdev_vq(&s.dev);
    dev = device_area(&s);
    assert_false(vhu_vring_io_enable_kick(vq));
    assert_int_equal(dev[1], 0);
    assert_int_equal(vhu_fe_vring_push(&s.r, 0, BUF(0), 64, F_WRITE), 0);
    assert_int_equal(vhu_vring_io_pop(vq, e), 1);
    assert_int_equal(dev[1], 0);
    assert_int_equal(vhu_vring_io_push(vq, e, 1), 0);
    session_close(&s);
    free(e);
}

static void test_event_suppression(void **state)
{
    (void)state;
    struct vhu_vring_elem *e = malloc(sizeof(*e));
    assert_non_null(e);
    struct session s;
    session_open(&s, false, ~0ull, 16);
    struct vhu_vring_io *vq = vqdev_vq(&s.dev);
    uint16_t *dev = device_area(&s);

    /* The device asks for a kick at the next descriptor it would take:
     * position and wrap counter, flags DESC (EVENT_IDX). */
    assert_false(vhu_vring_io_enable_kick(vq));
    assert_int_equal(dev[0], 0x8000);
    assert_int_equal(dev[1], 2);
    vhu_fe_vring_packed_set_event(&s.r, 0, 0);
    assert_int_equal(complete_n(&s, e, 3), 1);
    assert_int_equal(vq_read_eventfd(s.call), 1);
    assert_false(vhu_vring_io_enable_kick(vq));
    assert_int_equal(dev[0], 0x8003);
    /* DISABLE: no signal. */
    vhu_fe_vring_packed_set_event(&s.r, 1, 0);
    assert_int_equal(complete_n(&s, e, 2), 0);
    assert_int_equal(vq_read_eventfd(s.call), 0);
    /* ENABLE: every flush signals. */
    vhu_fe_vring_packed_set_event(&s.r, 0, 0);
    assert_int_equal(complete_n(&s, e, 1), 1);
    assert_int_equal(complete_n(&s, e, 1), 1);
    assert_int_equal(vq_read_eventfd(s.call), 2);
    /* Used position is now 7 (wrap 1).  DESC at 8: not crossed by the
     * entry at 7, crossed by the one at 8. */
    vhu_fe_vring_packed_set_event(&s.r, 2, 0x8000 | 8);
    assert_int_equal(complete_n(&s, e, 1), 0);
    assert_int_equal(complete_n(&s, e, 1), 1);
    assert_int_equal(vq_read_eventfd(s.call), 1);
    /* Used position 9.  DESC at position 1 of the next lap (wrap 0):
     * entries 9-13, then 14-15 (the end of the ring), then 0, then 1:
     * only the entry at 1 is the event. */
    vhu_fe_vring_packed_set_event(&s.r, 2, 1);
    assert_int_equal(complete_n(&s, e, 5), 0);
    assert_int_equal(complete_n(&s, e, 2), 0);
    assert_int_equal(complete_n(&s, e, 1), 0);
    assert_int_equal(complete_n(&s, e, 1), 1);
    assert_int_equal(vq_read_eventfd(s.call), 1);
    assert_int_equal(vhu_fe_vring_packed_base(&s.r), 2u | 0u << 15 | 2u << 16 | 0u << 31);
    assert_false(vhu_vring_io_enable_kick(vq));
    assert_int_equal(dev[0], 2);
    /* A batch that goes past the event in one flush signals once. */
    vhu_fe_vring_packed_set_event(&s.r, 2, 4);
    assert_int_equal(complete_n(&s, e, 4), 1);
    assert_int_equal(vq_read_eventfd(s.call), 1);
    /* enable_kick sees a descriptor the driver published. */
    assert_int_equal(vhu_fe_vring_push(&s.r, 9, BUF(0), 64, F_WRITE), 0);
    assert_true(vhu_vring_io_enable_kick(vq));
    session_close(&s);

    /* Without EVENT_IDX: the device area says ENABLE, and DESC (which the
     * driver may not use then) is taken as ENABLE. */
    session_open(&s, false, ~VHU_BIT(VHU_F_RING_EVENT_IDX), 16);
    dev = device_area(&s);
    dev[1] = 0xffff;
    assert_false(vhu_vring_io_enable_kick(vqdev_vq(&s.dev)));
    assert_int_equal(dev[1], 0);
    vhu_fe_vring_packed_set_event(&s.r, 2, 0x8005);
    assert_int_equal(complete_n(&s, e, 1), 1);
    assert_int_equal(complete_n(&s, e, 1), 1);
    vhu_fe_vring_packed_set_event(&s.r, 1, 0);
    assert_int_equal(complete_n(&s, e, 1), 0);
    assert_int_equal(vq_read_eventfd(s.call), 2);
    session_close(&s);
    free(e);
}

/* ---- hostile chains ---- */

struct hostile {
    const char *name;
    const char *log;
    uint64_t features;
    void (*build)(struct session *s, struct vhu_vring_io *vq, struct vhu_vring_elem *e);
};

/* Write descriptor `ahead` positions after the driver's next one, marked
 * available for its lap (plus extra flags). */
static void put(struct session *s, unsigned ahead, uint64_t addr, uint32_t len, uint16_t id,
                uint16_t flags)
{
    unsigned pos = (s->r.next_avail + ahead) % s->size;
    struct pdesc *d = &s->ring[pos];
    d->addr = addr;
    d->len = len;
    d->id = id;
    __atomic_store_n(&d->flags, (uint16_t)(flags | vhu_fe_vring_packed_avail_flags(&s->r, ahead)),
                     __ATOMIC_RELEASE);
}

static struct pdesc *table(struct session *s, unsigned n)
{
    return (struct pdesc *)gptr(s, TABLE_GPA, 16u * n);
}

static void h_id_out_of_range(struct session *s, struct vhu_vring_io *vq, struct vhu_vring_elem *e)
{
    (void)vq, (void)e;
    put(s, 0, BUF(0), 64, 16, F_WRITE);
}

static void h_id_max(struct session *s, struct vhu_vring_io *vq, struct vhu_vring_elem *e)
{
    (void)vq, (void)e;
    put(s, 0, BUF(0), 64, 0xffff, F_WRITE);
}

static void h_last_id_out_of_range(struct session *s, struct vhu_vring_io *vq,
                                   struct vhu_vring_elem *e)
{
    (void)vq, (void)e;
    put(s, 1, BUF(1), 64, 40, F_WRITE);
    put(s, 0, BUF(0), 64, 0, F_NEXT);
}

static void h_id_in_flight(struct session *s, struct vhu_vring_io *vq, struct vhu_vring_elem *e)
{
    assert_int_equal(vhu_fe_vring_push(&s->r, 5, BUF(0), 64, F_WRITE), 0);
    assert_int_equal(vhu_vring_io_pop(vq, e), 1);
    put(s, 0, BUF(1), 64, 5, F_WRITE);
}

static void h_chain_longer_than_ring(struct session *s, struct vhu_vring_io *vq,
                                     struct vhu_vring_elem *e)
{
    (void)vq, (void)e;
    for (unsigned i = s->size; i-- > 0;)
        put(s, i, BUF(i % 16), 64, 0, F_NEXT);
}

static void h_next_not_available(struct session *s, struct vhu_vring_io *vq,
                                 struct vhu_vring_elem *e)
{
    (void)vq, (void)e;
    put(s, 1, BUF(1), 64, 0, F_WRITE);
    /* The second descriptor still as the last lap left it. */
    s->ring[(s->r.next_avail + 1) % s->size].flags ^= F_AVAIL | F_USED;
    put(s, 0, BUF(0), 64, 0, F_NEXT);
}

static void h_avail_and_used(struct session *s, struct vhu_vring_io *vq, struct vhu_vring_elem *e)
{
    (void)vq, (void)e;
    put(s, 0, BUF(0), 64, 0, F_WRITE);
    /* Both flags equal to the wrap counter, which is 0 in this lap. */
    assert_false(s->r.avail_wrap);
    s->ring[s->r.next_avail].flags &= (uint16_t) ~(F_AVAIL | F_USED);
}

static void h_nested_indirect(struct session *s, struct vhu_vring_io *vq, struct vhu_vring_elem *e)
{
    (void)vq, (void)e;
    struct pdesc *t = table(s, 2);
    t[0] = (struct pdesc){BUF(0), 64, 0, 0};
    t[1] = (struct pdesc){TABLE_GPA, 32, 0, F_INDIRECT};
    put(s, 0, TABLE_GPA, 32, 0, F_INDIRECT);
}

static void h_indirect_with_next(struct session *s, struct vhu_vring_io *vq,
                                 struct vhu_vring_elem *e)
{
    (void)vq, (void)e;
    table(s, 1)[0] = (struct pdesc){BUF(0), 64, 0, F_WRITE};
    put(s, 1, BUF(1), 64, 0, F_WRITE);
    put(s, 0, TABLE_GPA, 16, 0, F_INDIRECT | F_NEXT);
}

static void h_indirect_in_chain(struct session *s, struct vhu_vring_io *vq,
                                struct vhu_vring_elem *e)
{
    (void)vq, (void)e;
    table(s, 1)[0] = (struct pdesc){BUF(0), 64, 0, F_WRITE};
    put(s, 1, TABLE_GPA, 16, 0, F_INDIRECT);
    put(s, 0, BUF(1), 64, 0, F_NEXT);
}

static void h_indirect_len_24(struct session *s, struct vhu_vring_io *vq, struct vhu_vring_elem *e)
{
    (void)vq, (void)e;
    put(s, 0, TABLE_GPA, 24, 0, F_INDIRECT);
}

static void h_indirect_too_long(struct session *s, struct vhu_vring_io *vq,
                                struct vhu_vring_elem *e)
{
    (void)vq, (void)e;
    put(s, 0, TABLE_GPA, 16u * (VHU_VRING_MAX_SEGS + 1), 0, F_INDIRECT);
}

static void h_indirect_not_negotiated(struct session *s, struct vhu_vring_io *vq,
                                      struct vhu_vring_elem *e)
{
    (void)vq, (void)e;
    table(s, 1)[0] = (struct pdesc){BUF(0), 64, 0, F_WRITE};
    put(s, 0, TABLE_GPA, 16, 0, F_INDIRECT);
}

static void h_indirect_outside_memory(struct session *s, struct vhu_vring_io *vq,
                                      struct vhu_vring_elem *e)
{
    (void)vq, (void)e;
    put(s, 0, MEM_SIZE - 16, 32, 0, F_INDIRECT);
}

static void h_buffer_outside_memory(struct session *s, struct vhu_vring_io *vq,
                                    struct vhu_vring_elem *e)
{
    (void)vq, (void)e;
    put(s, 1, MEM_SIZE - 8, 16, 0, F_WRITE);
    put(s, 0, BUF(0), 64, 0, F_NEXT);
}

static void h_buffer_in_table_outside(struct session *s, struct vhu_vring_io *vq,
                                      struct vhu_vring_elem *e)
{
    (void)vq, (void)e;
    struct pdesc *t = table(s, 2);
    t[0] = (struct pdesc){BUF(0), 64, 0, 0};
    t[1] = (struct pdesc){0x100000000ull, 64, 0, F_WRITE};
    put(s, 0, TABLE_GPA, 32, 0, F_INDIRECT);
}

static void h_zero_length(struct session *s, struct vhu_vring_io *vq, struct vhu_vring_elem *e)
{
    (void)vq, (void)e;
    put(s, 0, BUF(0), 0, 0, F_WRITE);
}

static void h_readable_after_writable(struct session *s, struct vhu_vring_io *vq,
                                      struct vhu_vring_elem *e)
{
    (void)vq, (void)e;
    put(s, 1, BUF(1), 64, 0, 0);
    put(s, 0, BUF(0), 64, 0, F_WRITE | F_NEXT);
}

static const struct hostile hostile_cases[] = {
    {"buffer id out of range", "buffer id 16 out of range (ring size 16)", ~0ull,
     h_id_out_of_range},
    {"buffer id 0xffff", "buffer id 65535 out of range", ~0ull, h_id_max},
    {"last descriptor's id out of range", "buffer id 40 out of range", ~0ull,
     h_last_id_out_of_range},
    {"buffer id already in flight", "buffer id 5 is already in flight", ~0ull, h_id_in_flight},
    {"chain longer than the ring", "longer than the ring (16 descriptors)", ~0ull,
     h_chain_longer_than_ring},
    {"chain's next descriptor not available", "(number 2 of the chain) is not available", ~0ull,
     h_next_not_available},
    {"AVAIL and USED both set to the wrap counter", "neither available nor left by the device",
     ~0ull, h_avail_and_used},
    {"nested indirect", "indirect descriptor inside an indirect table", ~0ull, h_nested_indirect},
    {"indirect with next", "both INDIRECT and NEXT", ~0ull, h_indirect_with_next},
    {"indirect inside a chain", "inside a chain", ~0ull, h_indirect_in_chain},
    {"indirect table of 24 bytes", "indirect table of 24 bytes", ~0ull, h_indirect_len_24},
    {"indirect table of more than 1024 entries",
     "indirect table of 16400 bytes (must be "
     "16..16384",
     ~0ull, h_indirect_too_long},
    {"indirect not negotiated", "without RING_INDIRECT_DESC", ~VHU_BIT(VHU_F_RING_INDIRECT_DESC),
     h_indirect_not_negotiated},
    {"indirect table outside memory", "indirect table at 0xffff0 (+32)", ~0ull,
     h_indirect_outside_memory},
    {"buffer straddling the end of memory", "buffer at 0xffff8 (+16) is not inside", ~0ull,
     h_buffer_outside_memory},
    {"buffer in a table outside every region", "buffer at 0x100000000", ~0ull,
     h_buffer_in_table_outside},
    {"zero-length buffer", "zero-length buffer", ~0ull, h_zero_length},
    {"readable after writable", "a readable buffer after a writable one", ~0ull,
     h_readable_after_writable},
};

static void test_hostile_chains(void **state)
{
    (void)state;
    struct vhu_vring_elem *e = malloc(sizeof(*e));
    assert_non_null(e);
    for (size_t c = 0; c < sizeof(hostile_cases) / sizeof(hostile_cases[0]); c++) {
        const struct hostile *h = &hostile_cases[c];
        struct session s;
        session_open(&s, false, h->features, 16);
        struct vhu_vring_io *vq = vqdev_vq(&s.dev);
        /* Good requests first, across the end of the ring, so the bad one
         * is in the second lap (wrap counter 0). */
        for (unsigned i = 0; i < 17; i++) {
            assert_int_equal(vhu_fe_vring_push(&s.r, 1, BUF(0), 64, F_WRITE), 0);
            assert_int_equal(vhu_vring_io_pop(vq, e), 1);
            assert_int_equal(vhu_vring_io_push(vq, e, 1), 0);
            assert_true(vhu_vring_io_flush(vq) >= 0);
            assert_int_equal(vhu_fe_vring_pop_used(&s.r, NULL, NULL), 1);
        }
        vq_read_eventfd(s.call);
        h->build(&s, vq, e);
        vq_assert_broken(vq, e, h->name, h->log, s.err);
        assert_int_equal(vq_read_eventfd(s.call), 0);
        /* The bad chain was not taken: the base is where the good ones
         * left it (plus the held request of the in-flight case). */
        unsigned held = h->build == h_id_in_flight ? 1 : 0;
        assert_int_equal(get_base(&s), (1u + held) | 1u << 16);
        session_close(&s);
    }
    free(e);
}

/* ---- ring workers ---- */

static bool filled(struct session *s, uint64_t gpa, unsigned len)
{
    uint8_t *p = gptr(s, gpa, len);
    for (unsigned i = 0; i < len; i++)
        if (p[i] != VQDEV_ECHO_FILL)
            return false;
    return true;
}

static bool wait_used(struct session *s, uint32_t *id, uint32_t *len)
{
    for (int t = 0; t < 5000; t++) {
        if (vhu_fe_vring_pop_used(&s->r, id, len) == 1)
            return true;
        sleep_ms(1);
    }
    return false;
}

/* A worker serves kicked requests one by one and in batches, around the
 * ring several times; the driver sees each completion with its ID. */
static void test_worker(void **state)
{
    (void)state;
    struct session s;
    session_open(&s, true, ~0ull, 16);
    for (unsigned k = 0; k < 53; k++) {
        uint16_t id = (uint16_t)(k % 16);
        memset(gptr(&s, BUF(id), 256), 0, 256);
        if (k % 2) {
            assert_int_equal(vhu_fe_vring_push(&s.r, id, BUF(id), 256, F_WRITE), 0);
        } else {
            struct vhu_fe_buf c[2] = {{BUF(32), 16, false}, {BUF(id), 256, true}};
            assert_int_equal(vhu_fe_vring_push_chain(&s.r, id, c, 2), 0);
        }
        kick(&s);
        uint32_t gid, glen;
        assert_true(wait_used(&s, &gid, &glen));
        assert_int_equal(gid, id);
        assert_int_equal(glen, 256);
        assert_true(filled(&s, BUF(id), 256));
    }
    /* A batch of 8 behind one kick. */
    for (unsigned k = 0; k < 8; k++) {
        memset(gptr(&s, BUF(k), 128), 0, 128);
        assert_int_equal(vhu_fe_vring_push(&s.r, (uint16_t)k, BUF(k), 128, F_WRITE), 0);
    }
    kick(&s);
    for (unsigned k = 0; k < 8; k++) {
        uint32_t gid;
        assert_true(wait_used(&s, &gid, NULL));
        assert_int_equal(gid, k);
        assert_true(filled(&s, BUF(k), 128));
    }
    assert_int_equal(vhu_fe_vring_used_idx(&s.r), 61);
    assert_int_equal(get_base(&s), vhu_fe_vring_packed_base(&s.r));
    assert_int_equal(log_count("broken"), 0);
    session_close(&s);
}

/* ---- dirty log ---- */

/* While the front-end logs, the used descriptors the device writes into
 * the descriptor ring, its event area and the buffers it filled are
 * marked; what it only read is not.  A 256-entry ring: descriptors fill
 * the page at RING_GPA, the event areas are on the next page. */
static void test_dirty_log(void **state)
{
    (void)state;
    struct session s;
    session_open(&s, true, ~0ull, 256);
    uint64_t f = 0;
    assert_int_equal(vhu_fe_get_features(s.fe, &f), 0);
    f &= ~VHU_BIT(VHU_F_LOG_ALL); /* what session_open acked */
    int lfd;
    uint8_t *log = vq_log_start(s.fe, f, &lfd);
    assert_int_equal(vhu_fe_vring_set_addr(s.fe, &s.r, VHU_VRING_F_LOG), 0);
    assert_int_equal(s.r.used_gpa / 4096, RING_GPA / 4096 + 1);

    struct vhu_fe_buf b[2] = {{BUF(5), 16, false}, {BUF(3), 256, true}};
    assert_int_equal(vhu_fe_vring_push_indirect(&s.r, 0, TABLE_GPA, b, 2), 0);
    kick(&s);
    uint32_t id;
    assert_true(wait_used(&s, &id, NULL));
    /* The device's event area (next kick at 1, wrap 1) is written after
     * the used descriptor: wait for it. */
    uint16_t *dev = device_area(&s);
    for (int i = 0; i < 2000 && __atomic_load_n(&dev[0], __ATOMIC_ACQUIRE) != 0x8001; i++)
        sleep_ms(1);
    assert_int_equal(__atomic_load_n(&dev[0], __ATOMIC_ACQUIRE), 0x8001);
    assert_true(vq_log_bit(log, BUF(3)));
    assert_true(vq_log_bit(log, RING_GPA));
    assert_true(vq_log_bit(log, s.r.used_gpa));
    assert_false(vq_log_bit(log, BUF(5)));
    assert_false(vq_log_bit(log, TABLE_GPA));
    assert_int_equal(vq_log_bits(log), 3);

    /* Logging off: nothing marked any more. */
    assert_int_equal(vhu_fe_set_features(s.fe, f), 0);
    assert_int_equal(vhu_fe_vring_set_addr(s.fe, &s.r, 0), 0);
    memset(log, 0, VQ_LOG_BYTES);
    assert_int_equal(vhu_fe_vring_push_indirect(&s.r, 1, TABLE_GPA, b, 2), 0);
    kick(&s);
    assert_true(wait_used(&s, &id, NULL));
    sleep_ms(10);
    assert_int_equal(vq_log_bits(log), 0);
    munmap(log, VQ_LOG_BYTES);
    close(lfd);
    session_close(&s);
}

/* ---- SET/GET_VRING_BASE: the packed encoding over the socket ---- */

/* All four fields are kept as set and returned as kept; a position not
 * below the ring size is refused with one line, and the back-end still
 * serves with no fd left open. */
static void test_base_fields(void **state)
{
    (void)state;
    int fds = count_open_fds();
    struct session s;
    session_connect(&s, false, ~0ull, 16);
    struct vhu_mem_region reg = vhu_guest_mem_region(&s.mem);
    assert_int_equal(vhu_fe_set_mem_table(s.fe, &reg, &s.mem.fd, 1), 0);
    assert_int_equal(vhu_fe_set_vring_num(s.fe, 0, 16), 0);
    const uint32_t bases[] = {0x80008000u, 0x00030005u, 0x80000007u, 0x000f800fu, 0u, 0x800f000eu};
    for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
        assert_int_equal(vhu_fe_set_vring_base(s.fe, 0, bases[i]), 0);
        assert_int_equal(get_base(&s), bases[i]);
    }
    assert_int_equal(vhu_fe_set_vring_base(s.fe, 0, 0x80008010u), -EINVAL);
    assert_int_equal(log_count("packed base 0x80008010: avail position 16 or used position 0 "
                               "is not below the ring size 16"),
                     1);
    assert_int_equal(vhu_fe_set_vring_base(s.fe, 0, 0x7fff0000u), -EINVAL);
    assert_int_equal(log_count("used position 32767 is not below"), 1);
    /* The refusals changed nothing. */
    assert_int_equal(get_base(&s), 0x800f000eu);
    /* A ring started from a base with different positions and wrap
     * counters takes at avail position 14 (wrap 0) and completes at
     * position 15 (wrap 1). */
    vhu_fe_vring_packed_set_base(&s.r, 0x800f000eu);
    activate(&s, s.fe, 0x800f000eu);
    struct vhu_vring_elem *e = malloc(sizeof(*e));
    assert_non_null(e);
    assert_int_equal(vhu_fe_vring_push(&s.r, 4, BUF(0), 64, F_WRITE), 0);
    assert_int_equal(s.ring[14].flags & (F_AVAIL | F_USED), F_USED);
    assert_int_equal(vhu_vring_io_pop(vqdev_vq(&s.dev), e), 1);
    assert_int_equal(e->head, 4);
    assert_int_equal(vhu_vring_io_push(vqdev_vq(&s.dev), e, 9), 0);
    assert_true(vhu_vring_io_flush(vqdev_vq(&s.dev)) >= 0);
    assert_int_equal(s.ring[15].id, 4);
    assert_int_equal(s.ring[15].len, 9);
    assert_int_equal(s.ring[15].flags & (F_AVAIL | F_USED), F_AVAIL | F_USED);
    /* Avail 15 wrap 0; used 0 wrap 0 (15 + 1 wraps). */
    assert_int_equal(get_base(&s), 0x0000000fu);
    free(e);
    session_close(&s);
    assert_int_equal(count_open_fds(), fds);
}

/* Requests through a worker; returns after all completed and checked. */
static void serve_requests(struct session *s, unsigned n, unsigned seed)
{
    for (unsigned k = 0; k < n; k++) {
        uint16_t id = (uint16_t)((k + seed) % s->size);
        memset(gptr(s, BUF(id), 128), 0, 128);
        if ((k + seed) % 3 == 0) {
            struct vhu_fe_buf c[3] = {
                {BUF(40), 16, false}, {BUF(41), 16, false}, {BUF(id), 128, true}};
            assert_int_equal(vhu_fe_vring_push_chain(&s->r, id, c, 3), 0);
        } else {
            assert_int_equal(vhu_fe_vring_push(&s->r, id, BUF(id), 128, F_WRITE), 0);
        }
        kick(s);
        uint32_t gid = 0, glen = 0;
        assert_true(wait_used(s, &gid, &glen));
        assert_int_equal(gid, id);
        assert_int_equal(glen, 128);
        assert_true(filled(s, BUF(id), 128));
    }
}

/* QEMU's sequence on packed rings: the ring runs, GET_VRING_BASE stops it
 * and returns both positions and wrap counters; the same back-end
 * restarted with that base (SET_VRING_BASE) resumes exactly, and so does
 * a second back-end (a migration's destination) on the same guest
 * memory. */
static void test_stop_restart_migrate(void **state)
{
    (void)state;
    struct session s;
    session_open(&s, true, ~0ull, 16);
    /* 13 requests, 5 of them of 3 descriptors: 23 descriptors, so both
     * sides are at 7 in the second lap (wrap counters 0). */
    serve_requests(&s, 13, 0);
    unsigned base = get_base(&s);
    assert_int_equal(base, 7u | 7u << 16);
    assert_int_equal(base, vhu_fe_vring_packed_base(&s.r));
    /* Restart on the same back-end (as QEMU after a stop/cont). */
    activate(&s, s.fe, base);
    assert_int_equal(atomic_load(&s.dev.starts), 2);
    serve_requests(&s, 13, 5);
    base = get_base(&s);
    assert_int_equal(base, vhu_fe_vring_packed_base(&s.r));

    /* A destination back-end on the same guest memory. */
    struct vqdev dst;
    device_init(&dst, true);
    struct devserver dds;
    assert_int_equal(devserver_start(&dds, &dst.ops, &dst), 0);
    struct vhu_fe *dfe = devserver_connect(&dds, ~VHU_BIT(VHU_F_LOG_ALL));
    activate(&s, dfe, base);
    assert_int_equal(atomic_load(&dst.starts), 1);
    serve_requests(&s, 19, 7);
    unsigned dbase = 0;
    assert_int_equal(vhu_fe_get_vring_base(dfe, 0, &dbase), 0);
    assert_int_equal(dbase, vhu_fe_vring_packed_base(&s.r));
    assert_int_equal(log_count("broken"), 0);
    vhu_fe_close(dfe);
    devserver_stop(&dds);
    session_close(&s);
}

/* Stopped with requests held: GET_VRING_BASE returns the used side behind
 * the avail side, and a restart from that base writes the next used entry
 * exactly where the driver looks for it. */
static void test_base_with_requests_held(void **state)
{
    (void)state;
    struct vhu_vring_elem *e = malloc(3 * sizeof(*e));
    assert_non_null(e);
    struct session s;
    session_open(&s, false, ~0ull, 16);
    for (unsigned i = 0; i < 3; i++) {
        assert_int_equal(vhu_fe_vring_push(&s.r, (uint16_t)i, BUF(i), 64, F_WRITE), 0);
        assert_int_equal(vhu_vring_io_pop(vqdev_vq(&s.dev), &e[i]), 1);
    }
    assert_int_equal(vhu_vring_io_push(vqdev_vq(&s.dev), &e[1], 5), 0);
    assert_true(vhu_vring_io_flush(vqdev_vq(&s.dev)) >= 0);
    pop_used_expect(&s, 1, 5);
    /* Pushed but not flushed: not part of the base. */
    assert_int_equal(vhu_vring_io_push(vqdev_vq(&s.dev), &e[2], 6), 0);
    assert_int_equal(get_base(&s), 3u | 1u << 15 | 1u << 16 | 1u << 31);
    /* The driver gives the two lost requests up (no inflight tracking
     * here) and goes on from where the device stopped. */
    vhu_fe_vring_packed_set_base(&s.r, 3u | 1u << 15 | 1u << 16 | 1u << 31);
    activate(&s, s.fe, vhu_fe_vring_packed_base(&s.r));
    assert_int_equal(vhu_fe_vring_push(&s.r, 7, BUF(7), 64, F_WRITE), 0);
    assert_int_equal(vhu_vring_io_pop(vqdev_vq(&s.dev), e), 1);
    assert_int_equal(e->head, 7);
    assert_int_equal(vhu_vring_io_push(vqdev_vq(&s.dev), e, 11), 0);
    assert_true(vhu_vring_io_flush(vqdev_vq(&s.dev)) >= 0);
    assert_int_equal(s.ring[1].id, 7);
    pop_used_expect(&s, 7, 11);
    assert_int_equal(get_base(&s), 4u | 1u << 15 | 2u << 16 | 1u << 31);
    free(e);
    session_close(&s);
}

/* ---- inflight tracking (QEMU's packed layout) ---- */

struct ipdesc {
    uint8_t inflight, padding;
    uint16_t next, last, num;
    uint64_t counter;
    uint16_t id, flags;
    uint32_t len;
    uint64_t addr;
};

struct ipqueue {
    uint64_t features;
    uint16_t version, desc_num, free_head, old_free_head, used_idx, old_used_idx;
    uint8_t used_wrap_counter, old_used_wrap_counter, padding[7];
    struct ipdesc desc[];
};

/* A session whose back-end has an inflight region (the test maps it too). */
struct iregion {
    struct vhu_inflight in;
    int fd;
    struct ipqueue *q;
};

static void iregion_get(struct session *s, struct iregion *ir)
{
    ir->fd = inflight_get(s->fe, 1, (uint16_t)s->size, &ir->in);
    assert_true(ir->fd >= 0);
    /* A 32-byte header and 32 bytes per entry, 64-byte aligned. */
    assert_int_equal(ir->in.mmap_size, (32 + 32 * s->size + 63) & ~63u);
    ir->q = mmap(NULL, ir->in.mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, ir->fd, 0);
    assert_true(ir->q != MAP_FAILED);
}

static void iregion_free(struct iregion *ir)
{
    munmap(ir->q, ir->in.mmap_size);
    close(ir->fd);
}

/* Connected to the session's back-end again (the old connection simply
 * gone, as after a crash): the region handed back, then the ring from
 * `base` (QEMU 7.2 sends what it had at the last start). */
static void reconnect(struct session *s, struct iregion *ir, uint32_t base)
{
    close_fe(s);
    s->fe = devserver_connect(&s->ds, ~VHU_BIT(VHU_F_LOG_ALL));
    assert_int_equal(inflight_set(s->fe, &ir->in, ir->fd), 0);
    activate(s, s->fe, base);
}

/* Requests in the region: head entries marked in flight. */
static unsigned region_in_flight(const struct iregion *ir, unsigned n, uint16_t *ids)
{
    unsigned k = 0;
    for (unsigned i = 0; i < n; i++) {
        const struct ipdesc *h = &ir->q->desc[i];
        if (h->inflight != 1)
            continue;
        /* The buffer ID is in the request's last entry. */
        if (ids)
            ids[k] = ir->q->desc[h->last].id;
        k++;
    }
    return k;
}

static void assert_elem(const struct vhu_vring_elem *e, uint16_t id, unsigned n_out, unsigned n_in,
                        uint64_t in_gpa, uint32_t in_len)
{
    assert_int_equal(e->head, id);
    assert_int_equal(e->n_out, n_out);
    assert_int_equal(e->n_in, n_in);
    assert_int_equal(e->gpa[n_out + n_in - 1], in_gpa);
    assert_int_equal(e->iov[n_out + n_in - 1].iov_len, in_len);
}

/* Requests popped and not completed are in the region, completed ones
 * leave it at the flush; a second back-end given the region resubmits
 * exactly those (from the region's copies: completions out of order wrote
 * used entries over their descriptors), oldest first, takes the ring
 * positions from the region (not the stale base), and goes on with the
 * ring; a clean stop after that leaves nothing to resubmit. */
static void test_inflight_resubmit(void **state)
{
    (void)state;
    struct vhu_vring_elem *e = malloc(6 * sizeof(*e));
    assert_non_null(e);
    struct session s;
    session_connect(&s, false, ~0ull, 16);
    struct iregion ir;
    iregion_get(&s, &ir);
    assert_int_equal(inflight_set(s.fe, &ir.in, ir.fd), 0);
    uint32_t base0 = vhu_fe_vring_packed_base(&s.r);
    activate(&s, s.fe, base0);
    assert_int_equal(ir.q->version, 1);
    assert_int_equal(ir.q->desc_num, 16);

    /* ID 0: one buffer (slot 0); ID 1: two readable and one writable
     * (slots 1-3); ID 2: an indirect table of two (slot 4); IDs 3, 4: one
     * each (slots 5, 6). */
    assert_int_equal(vhu_fe_vring_push(&s.r, 0, BUF(0), 64, F_WRITE), 0);
    struct vhu_fe_buf c[3] = {{BUF(1), 16, false}, {BUF(2), 100, false}, {BUF(3), 512, true}};
    assert_int_equal(vhu_fe_vring_push_chain(&s.r, 1, c, 3), 0);
    struct vhu_fe_buf t[2] = {{BUF(4), 32, false}, {BUF(5), 256, true}};
    assert_int_equal(vhu_fe_vring_push_indirect(&s.r, 2, TABLE_GPA, t, 2), 0);
    assert_int_equal(vhu_fe_vring_push(&s.r, 3, BUF(6), 64, F_WRITE), 0);
    assert_int_equal(vhu_fe_vring_push(&s.r, 4, BUF(7), 64, F_WRITE), 0);
    for (unsigned i = 0; i < 5; i++)
        pop_ok(vqdev_vq(&s.dev), &e[i]);
    uint16_t ids[16];
    assert_int_equal(region_in_flight(&ir, 16, ids), 5);
    /* ID 3 then ID 0 complete: used entries in slots 0 and 1, over ID 0's
     * and ID 1's first descriptors.  ID 4 is pushed, not flushed. */
    assert_int_equal(vhu_vring_io_push(vqdev_vq(&s.dev), &e[3], 3), 0);
    assert_true(vhu_vring_io_flush(vqdev_vq(&s.dev)) >= 0);
    assert_int_equal(vhu_vring_io_push(vqdev_vq(&s.dev), &e[0], 4), 0);
    assert_true(vhu_vring_io_flush(vqdev_vq(&s.dev)) >= 0);
    assert_int_equal(vhu_vring_io_push(vqdev_vq(&s.dev), &e[4], 5), 0);
    pop_used_expect(&s, 3, 3);
    pop_used_expect(&s, 0, 4);
    assert_int_equal(vhu_fe_vring_pop_used(&s.r, NULL, NULL), 0);
    unsigned n = region_in_flight(&ir, 16, ids);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0] + ids[1] + ids[2], 1 + 2 + 4);
    assert_int_equal(ir.q->used_idx, 2);
    assert_int_equal(ir.q->old_used_idx, 2);
    assert_int_equal(ir.q->free_head, ir.q->old_free_head);

    /* The back-end goes away; the next one gets the region and the base
     * of the last start. */
    log_clear();
    reconnect(&s, &ir, base0);
    struct vhu_vring_io *vq = vqdev_vq(&s.dev);
    pop_ok(vq, &e[0]);
    assert_elem(&e[0], 1, 2, 1, BUF(3), 512);
    assert_seg(&s, &e[0], 0, BUF(1), 16);
    assert_seg(&s, &e[0], 1, BUF(2), 100);
    pop_ok(vq, &e[1]);
    assert_elem(&e[1], 2, 1, 1, BUF(5), 256);
    assert_seg(&s, &e[1], 0, BUF(4), 32);
    pop_ok(vq, &e[2]);
    assert_elem(&e[2], 4, 0, 1, BUF(7), 64);
    assert_int_equal(vhu_vring_io_pop(vq, &e[3]), 0);
    for (unsigned i = 0; i < 3; i++)
        assert_int_equal(vhu_vring_io_push(vq, &e[i], 10 + i), 0);
    assert_true(vhu_vring_io_flush(vq) >= 0);
    pop_used_expect(&s, 1, 10);
    pop_used_expect(&s, 2, 11);
    pop_used_expect(&s, 4, 12);
    assert_int_equal(region_in_flight(&ir, 16, NULL), 0);
    /* The ring goes on from there. */
    assert_int_equal(vhu_fe_vring_push(&s.r, 5, BUF(8), 64, F_WRITE), 0);
    pop_ok(vq, &e[0]);
    assert_elem(&e[0], 5, 0, 1, BUF(8), 64);
    assert_int_equal(region_in_flight(&ir, 16, ids), 1);
    assert_int_equal(ids[0], 5);
    assert_int_equal(vhu_vring_io_push(vq, &e[0], 1), 0);
    assert_true(vhu_vring_io_flush(vq) >= 0);
    pop_used_expect(&s, 5, 1);
    uint32_t base = get_base(&s);
    assert_int_equal(base, vhu_fe_vring_packed_base(&s.r));

    /* A clean stop left nothing in flight: nothing resubmitted. */
    log_clear();
    reconnect(&s, &ir, base);
    assert_int_equal(vhu_vring_io_pop(vqdev_vq(&s.dev), &e[0]), 0);
    assert_int_equal(log_count("broken"), 0);
    free(e);
    session_close(&s);
    iregion_free(&ir);
}

/* Three requests held (ID 0: two descriptors, entries 0-1; IDs 1, 2:
 * entries 2, 3), the region saved in good[]; the back-end's connection is
 * then gone. */
static void three_held(struct session *s, struct iregion *ir, uint8_t *good)
{
    session_connect(s, false, ~0ull, 16);
    iregion_get(s, ir);
    assert_int_equal(inflight_set(s->fe, &ir->in, ir->fd), 0);
    activate(s, s->fe, vhu_fe_vring_packed_base(&s->r));
    struct vhu_fe_buf c[2] = {{BUF(0), 16, false}, {BUF(1), 64, true}};
    assert_int_equal(vhu_fe_vring_push_chain(&s->r, 0, c, 2), 0);
    assert_int_equal(vhu_fe_vring_push(&s->r, 1, BUF(2), 64, F_WRITE), 0);
    assert_int_equal(vhu_fe_vring_push(&s->r, 2, BUF(3), 64, F_WRITE), 0);
    struct vhu_vring_elem *e = malloc(sizeof(*e));
    assert_non_null(e);
    for (unsigned i = 0; i < 3; i++)
        pop_ok(vqdev_vq(&s->dev), e);
    free(e);
    struct ipdesc *d = ir->q->desc;
    assert_true(d[0].inflight == 1 && d[0].num == 2 && d[0].last == 1 && d[1].id == 0);
    assert_true(d[2].inflight == 1 && d[2].num == 1 && d[2].id == 1);
    assert_true(d[3].inflight == 1 && d[3].num == 1 && d[3].id == 2);
    assert_int_equal(ir->q->old_free_head, 4);
    memcpy(good, ir->q, ir->in.mmap_size);
    close_fe(s);
}

/* After a reconnect: pop gives the buffer IDs ids[0..n-1], then nothing
 * from before. */
static void expect_resubmitted(struct session *s, const uint16_t *ids, unsigned n)
{
    struct vhu_vring_elem *e = malloc(sizeof(*e));
    assert_non_null(e);
    for (unsigned i = 0; i < n; i++) {
        pop_ok(vqdev_vq(&s->dev), e);
        assert_int_equal(e->head, ids[i]);
    }
    free(e);
}

/* What a crash in the middle of a pop or a flush leaves: the old_* fields
 * roll it back, or forward when the driver can already see the batch. */
static void test_inflight_crash_windows(void **state)
{
    (void)state;
    uint8_t *good = malloc(4096);
    assert_non_null(good);
    struct session s;
    struct iregion ir;
    uint32_t fresh = 0x80008000u;

    /* A flush of ID 1 under way, its used descriptor not yet visible:
     * rolled back, all three resubmitted. */
    three_held(&s, &ir, good);
    ir.q->desc[2].next = ir.q->free_head;
    ir.q->free_head = 2;
    ir.q->used_idx = 1;
    log_clear();
    reconnect(&s, &ir, fresh);
    expect_resubmitted(&s, (const uint16_t[]){0, 1, 2}, 3);
    assert_int_equal(ir.q->used_idx, 0);
    session_close(&s);
    iregion_free(&ir);

    /* The same flush, its used descriptor visible (ID 1 in slot 0), the
     * region's inflight flag and old_* not yet updated: rolled forward,
     * IDs 0 and 2 resubmitted; the driver sees 1, 0, 2. */
    three_held(&s, &ir, good);
    ir.q->desc[2].next = ir.q->free_head;
    ir.q->free_head = 2;
    ir.q->used_idx = 1;
    s.ring[0].id = 1;
    s.ring[0].len = 9;
    __atomic_store_n(&s.ring[0].flags, (uint16_t)(F_AVAIL | F_USED), __ATOMIC_RELEASE);
    log_clear();
    reconnect(&s, &ir, fresh);
    struct vhu_vring_elem *e = malloc(2 * sizeof(*e));
    assert_non_null(e);
    pop_ok(vqdev_vq(&s.dev), &e[0]);
    assert_elem(&e[0], 0, 1, 1, BUF(1), 64);
    pop_ok(vqdev_vq(&s.dev), &e[1]);
    assert_elem(&e[1], 2, 0, 1, BUF(3), 64);
    assert_int_equal(vhu_vring_io_pop(vqdev_vq(&s.dev), e), 0);
    assert_int_equal(vhu_vring_io_push(vqdev_vq(&s.dev), &e[1], 7), 0);
    assert_int_equal(vhu_vring_io_push(vqdev_vq(&s.dev), &e[0], 6), 0);
    assert_true(vhu_vring_io_flush(vqdev_vq(&s.dev)) >= 0);
    pop_used_expect(&s, 1, 9);
    pop_used_expect(&s, 2, 7);
    pop_used_expect(&s, 0, 6);
    assert_int_equal(log_count("broken"), 0);
    free(e);
    session_close(&s);
    iregion_free(&ir);

    /* A pop under way (entry 4 taken, marked in flight, old_free_head not
     * committed): rolled back; the driver's fourth buffer (ID 3, slot 4)
     * comes from the ring after the three. */
    three_held(&s, &ir, good);
    assert_int_equal(vhu_fe_vring_push(&s.r, 3, BUF(4), 64, F_WRITE), 0);
    ir.q->desc[4] = (struct ipdesc){
        .inflight = 1, .next = 5, .last = 4, .num = 1, .counter = 99, .id = 3, .len = 64};
    ir.q->free_head = 5;
    log_clear();
    reconnect(&s, &ir, fresh);
    expect_resubmitted(&s, (const uint16_t[]){0, 1, 2, 3}, 4);
    assert_int_equal(ir.q->desc[4].inflight, 1); /* taken again, from the ring */
    session_close(&s);
    iregion_free(&ir);
    free(good);
}

/* A region that is not self-consistent refuses the ring's start with one
 * line (SET_VRING_KICK is refused); the same back-end then serves a sound
 * region; no fd is left open. */
static void test_inflight_hostile(void **state)
{
    (void)state;
    int fds = count_open_fds();
    uint8_t *good = malloc(4096);
    assert_non_null(good);
    struct session s;
    struct iregion ir;
    three_held(&s, &ir, good);
    static const struct {
        const char *what, *line;
    } cases[] = {
        {"inflight 7", "entry 2: inflight 7"},
        {"num 200", "entry 0: a request of 200 descriptors"},
        {"num 0", "entry 2: a request of 0 descriptors"},
        {"link out of range", "entry 0: descriptor 1 of its request is entry 16, out of range"},
        {"link to a free entry", "is entry 5, a free one"},
        {"link to another request", "entry 2: descriptor 1 of its request is entry 0, another "
                                    "request's"},
        {"last", "entry 0: its last entry is 7, its descriptors end at 1"},
        {"NEXT on the last", "entry 2: descriptor 1 of 1 has flags 0x"},
        {"no NEXT inside", "entry 0: descriptor 1 of 2 has flags 0x"},
        {"indirect in a chain", "entry 0: descriptor 1 of 2 has flags 0x"},
        {"id", "entry 3: buffer id 16 out of range (ring size 16)"},
        {"id twice", "entry 3: buffer id 1 is in flight twice"},
        {"old_used_idx", "header out of range"},
        {"old wrap", "header out of range"},
        {"free head", "header out of range"},
        {"too many", "entry 2: a request of 15 descriptors (2 of the ring's 16"},
    };
    for (unsigned c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        memcpy(ir.q, good, ir.in.mmap_size);
        struct ipdesc *d = ir.q->desc;
        switch (c) {
        case 0: d[2].inflight = 7; break;
        case 1: d[0].num = 200; break;
        case 2: d[2].num = 0; break;
        case 3: d[0].next = 16; break;
        case 4: d[0].next = 5; break;
        case 5:
            d[2].num = 2;
            d[2].next = 0;
            d[2].flags |= F_NEXT;
            break;
        case 6: d[0].last = 7; break;
        case 7: d[2].flags |= F_NEXT; break;
        case 8: d[0].flags &= (uint16_t)~F_NEXT; break;
        case 9: d[0].flags |= F_INDIRECT; break;
        case 10: d[3].id = 16; break;
        case 11: d[3].id = 1; break;
        case 12: ir.q->old_used_idx = ir.q->used_idx = 999; break;
        case 13: ir.q->old_used_wrap_counter = ir.q->used_wrap_counter = 2; break;
        case 14: ir.q->old_free_head = ir.q->free_head = 17; break;
        case 15:
            /* More descriptors in flight than the ring has. */
            d[2].num = 15;
            for (unsigned i = 2; i < 16; i++) {
                d[i].next = (uint16_t)(i + 1);
                d[i].flags = F_NEXT;
            }
            d[2].last = 16;
            d[3].inflight = 0;
            ir.q->old_free_head = ir.q->free_head = 16;
            break;
        }
        log_clear();
        close_fe(&s);
        s.fe = devserver_connect(&s.ds, ~VHU_BIT(VHU_F_LOG_ALL));
        assert_int_equal(inflight_set(s.fe, &ir.in, ir.fd), 0);
        struct vhu_mem_region reg = vhu_guest_mem_region(&s.mem);
        assert_int_equal(vhu_fe_set_mem_table(s.fe, &reg, &s.mem.fd, 1), 0);
        assert_int_equal(vhu_fe_set_vring_num(s.fe, 0, s.size), 0);
        assert_int_equal(vhu_fe_vring_set_addr(s.fe, &s.r, 0), 0);
        assert_int_equal(vhu_fe_set_vring_base(s.fe, 0, 0x80008000u), 0);
        assert_int_equal(vhu_fe_set_vring_call(s.fe, 0, s.call), 0);
        if (vhu_fe_set_vring_kick(s.fe, 0, s.kick) >= 0 || log_count(cases[c].line) != 1 ||
            log_count("inflight region:") != 1) {
            print_error("case %s: want one line with \"%s\"; log lines:\n", cases[c].what,
                        cases[c].line);
            log_dump();
            fail();
        }
        assert_null(atomic_load(&s.dev.vq));
    }
    /* Garbage in the header: records discarded (logged), the ring runs
     * from SET_VRING_BASE with nothing resubmitted. */
    memset(ir.q, 0x07, ir.in.mmap_size);
    log_clear();
    reconnect(&s, &ir, vhu_fe_vring_packed_base(&s.r));
    assert_int_equal(log_count("records discarded"), 1);
    struct vhu_vring_elem *e = malloc(sizeof(*e));
    assert_non_null(e);
    assert_int_equal(vhu_vring_io_pop(vqdev_vq(&s.dev), e), 0);
    free(e);
    /* The sound region again: the three come back. */
    memcpy(ir.q, good, ir.in.mmap_size);
    log_clear();
    reconnect(&s, &ir, 0x80008000u);
    expect_resubmitted(&s, (const uint16_t[]){0, 1, 2}, 3);
    free(good);
    session_close(&s);
    iregion_free(&ir);
    assert_int_equal(count_open_fds(), fds);
}

/* Device state (SET_DEVICE_STATE_FD, a format-2 snapshot) and a live
 * snapshot (the control socket's `snapshot`) of a packed ring: a fresh
 * front-end is served afterwards, the ring runs on after the snapshot's
 * pause, and no fd is left open. */
static void test_state_of_packed(void **state)
{
    (void)state;
    int fds = count_open_fds();
    struct session s;
    session_control = true;
    session_connect(&s, false, ~0ull, 16);
    activate(&s, s.fe, vhu_fe_vring_packed_base(&s.r));
    int r;
    struct vhu_vring_elem *e = malloc(sizeof(*e));
    assert_non_null(e);
    assert_int_equal(vhu_fe_vring_push(&s.r, 3, BUF(0), 64, F_WRITE), 0);
    assert_int_equal(vhu_vring_io_pop(vqdev_vq(&s.dev), e), 1);
    assert_int_equal(vhu_vring_io_push(vqdev_vq(&s.dev), e, 1), 0);
    assert_true(vhu_vring_io_flush(vqdev_vq(&s.dev)) >= 0);
    pop_used_expect(&s, 3, 1);
    /* Stopped (a device-state transfer needs every ring stopped). */
    get_base(&s);
    int snap = memfd_create("packed-state", MFD_CLOEXEC);
    assert_true(snap >= 0);
    assert_int_equal(vhu_fe_save_state(s.fe, snap), 0);
    uint8_t head[32];
    assert_int_equal(pread(snap, head, sizeof(head), 0), (ssize_t)sizeof(head));
    uint8_t *f = memmem(head, sizeof(head), "format", 6);
    assert_non_null(f);
    assert_int_equal(f[6], 2); /* packed rings: format 2 */
    close(snap);
    close_fe(&s);
    s.fe = devserver_connect(&s.ds, ~VHU_BIT(VHU_F_LOG_ALL));
    /* Served: a ring runs.  A live snapshot of it. */
    activate(&s, s.fe, vhu_fe_vring_packed_base(&s.r));
    assert_int_equal(atomic_load(&s.dev.starts), 2);
    struct vhu_fe_control *c;
    assert_int_equal(vhu_fe_control_connect(&c, s.ds.control, 5000), 0);
    snap = memfd_create("packed-live", MFD_CLOEXEC);
    assert_true(snap >= 0);
    struct vhu_fe_control_snapshot res;
    char err[256] = "";
    r = vhu_fe_control_snapshot(c, snap, 10000, &res, err, sizeof(err));
    if (r < 0)
        fail_msg("live snapshot of a packed ring: %s", err);
    assert_true(res.bytes > 0);
    vhu_fe_control_close(c);
    close(snap);
    /* The ring still runs. */
    assert_int_equal(vhu_fe_vring_push(&s.r, 0, BUF(0), 64, F_WRITE), 0);
    assert_int_equal(vhu_vring_io_pop(vqdev_vq(&s.dev), e), 1);
    free(e);
    session_close(&s);
    assert_int_equal(count_open_fds(), fds);
}

int main(void)
{
    log_capture_install();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_chains),
        cmocka_unit_test(test_ids_in_flight),
        cmocka_unit_test(test_wrap_around),
        cmocka_unit_test(test_event_suppression),
        cmocka_unit_test(test_kicks_off_while_serving),
        cmocka_unit_test(test_hostile_chains),
        cmocka_unit_test(test_worker),
        cmocka_unit_test(test_dirty_log),
        cmocka_unit_test(test_base_fields),
        cmocka_unit_test(test_stop_restart_migrate),
        cmocka_unit_test(test_base_with_requests_held),
        cmocka_unit_test(test_inflight_resubmit),
        cmocka_unit_test(test_inflight_crash_windows),
        cmocka_unit_test(test_inflight_hostile),
        cmocka_unit_test(test_state_of_packed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
