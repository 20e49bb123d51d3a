/* SPDX-License-Identifier: BSD-3-Clause */
/* The seed's lifecycle test, ported: a front-end drives the test device
 * through negotiation, config, activation, request processing, reset,
 * re-activation and sleep, over a real socket with real eventfds and shared
 * memory; plus the state rules around it (enable, memory changes, config,
 * status). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define VIRTQ_DESC_F_WRITE 2

struct used_elem {
    uint32_t id, len;
};

static struct used_elem used_elem(struct guest *g, unsigned ring, unsigned i)
{
    struct vhu_fe_vring *r = &g->ring[ring];
    struct used_elem *u = vhu_guest_mem_ptr(&g->mem, r->used_gpa + 4, 8ull * r->size);
    return u[i % r->size];
}

/* Buffer k of ring `ring`: 256 bytes in the guest's buffer area. */
static uint64_t buf_gpa(unsigned ring, unsigned k)
{
    return GUEST_BUF_GPA + ring * 0x10000u + k * 256u;
}

static void push_writable(struct guest *g, unsigned ring, unsigned k)
{
    uint8_t *p = vhu_guest_mem_ptr(&g->mem, buf_gpa(ring, k), 256);
    memset(p, 0, 256);
    assert_int_equal(vhu_fe_vring_push(&g->ring[ring], (uint16_t)(k % GUEST_RING_SIZE),
                                       buf_gpa(ring, k), 256, VIRTQ_DESC_F_WRITE),
                     0);
}

static bool buf_filled(struct guest *g, unsigned ring, unsigned k, uint8_t v)
{
    uint8_t *p = vhu_guest_mem_ptr(&g->mem, buf_gpa(ring, k), 256);
    for (int i = 0; i < 256; i++)
        if (p[i] != v)
            return false;
    return true;
}

static void stop_all(struct vhu_fe *fe, struct guest *g, unsigned *bases)
{
    for (unsigned i = 0; i < g->nrings; i++) {
        assert_int_equal(vhu_fe_set_vring_enable(fe, i, false), 0);
        assert_int_equal(vhu_fe_get_vring_base(fe, i, &bases[i]), 0);
    }
}

static void test_lifecycle(void **state)
{
    (void)state;
    struct harness h;
    assert_int_equal(harness_start(&h, 2), 0);
    int fds_before = count_open_fds();

    /* VhostUserFrontend::new(): negotiation and the back-end channel. */
    struct vhu_fe *fe = harness_connect(&h);
    uint64_t acked_pf = 0;
    assert_int_equal(vhu_fe_negotiate(fe, ~0ull, ~0ull, NULL, &acked_pf), 0);
    assert_true(acked_pf & VHU_BIT(VHU_PF_REPLY_ACK));
    assert_true(acked_pf & VHU_BIT(VHU_PF_CONFIG));
    assert_int_equal(vhu_fe_open_backend_channel(fe), 0);
    uint64_t nq = 0;
    assert_int_equal(vhu_fe_get_queue_num(fe, &nq), 0);
    assert_int_equal(nq, 2);

    /* read_config: the fake config data. */
    struct testdev_config cfg;
    assert_int_equal(vhu_fe_get_config(fe, 0, &cfg, sizeof(cfg)), 0);
    assert_int_equal(cfg.magic, TESTDEV_MAGIC);
    assert_int_equal(cfg.num_queues, 2);

    /* activate: memory, rings; then real requests through both rings. */
    struct guest g;
    guest_init(&g, 2);
    guest_activate(&g, fe, 0);
    for (unsigned k = 0; k < 3; k++)
        push_writable(&g, 0, k);
    for (unsigned k = 0; k < 2; k++)
        push_writable(&g, 1, k);
    guest_kick(&g, 0);
    guest_kick(&g, 1);
    assert_true(wait_used_idx(&g.ring[0], 3, 2000));
    assert_true(wait_used_idx(&g.ring[1], 2, 2000));
    for (unsigned k = 0; k < 3; k++) {
        assert_true(buf_filled(&g, 0, k, TESTDEV_FILL));
        assert_int_equal(used_elem(&g, 0, k).id, k);
        assert_int_equal(used_elem(&g, 0, k).len, 256);
    }
    assert_true(buf_filled(&g, 1, 1, TESTDEV_FILL));
    assert_true(wait_eventfd(g.call[0], 2000) >= 1); /* the guest was notified */
    assert_int_equal(testdev_running(h.dev), 2);

    /* reset (the seed's): disable and stop each ring; GET_VRING_BASE says
     * where each ring stopped, and the device no longer runs them. */
    unsigned bases[2];
    stop_all(fe, &g, bases);
    assert_int_equal(bases[0], 3);
    assert_int_equal(bases[1], 2);
    assert_int_equal(testdev_running(h.dev), 0);

    /* A request published while the ring is stopped is not touched... */
    push_writable(&g, 0, 3);
    guest_kick(&g, 0);
    sleep_ms(50);
    assert_int_equal(vhu_fe_vring_used_idx(&g.ring[0]), 3);
    assert_false(buf_filled(&g, 0, 3, TESTDEV_FILL));

    /* ...and is served, not lost, once the ring starts again from there. */
    assert_int_equal(vhu_fe_set_vring_base(fe, 0, bases[0]), 0);
    assert_int_equal(vhu_fe_set_vring_base(fe, 1, bases[1]), 0);
    for (unsigned i = 0; i < 2; i++) {
        assert_int_equal(vhu_fe_set_vring_kick(fe, i, g.kick[i]), 0);
        assert_int_equal(vhu_fe_set_vring_enable(fe, i, true), 0);
    }
    assert_true(wait_used_idx(&g.ring[0], 4, 2000));
    assert_true(buf_filled(&g, 0, 3, TESTDEV_FILL));

    /* The back-end channel works after reset/re-activation. */
    int sent = -1;
    assert_int_equal(config_change_served(h.b, fe, &sent), VHU_BREQ_CONFIG_CHANGE_MSG);
    assert_int_equal(sent, 0);

    /* virtio_sleep: stop both rings again. */
    stop_all(fe, &g, bases);
    assert_int_equal(bases[0], 4);
    assert_int_equal(bases[1], 2);
    assert_int_equal(testdev_running(h.dev), 0);

    /* The front-end leaves: everything it gave the back-end is released, and
     * the next front-end is served. */
    vhu_fe_close(fe);
    guest_free(&g);
    fe = harness_connect_negotiated(&h);
    assert_int_equal(vhu_fe_get_queue_num(fe, &nq), 0);
    vhu_fe_close(fe);
    int fds_after = -1;
    for (int i = 0; i < 200 && (fds_after = count_open_fds()) != fds_before; i++)
        sleep_ms(5);
    assert_int_equal(fds_after, fds_before);
    assert_true(testdev_resets(h.dev) >= 2); /* one per session end */
    harness_stop(&h);
}

/* Without PROTOCOL_FEATURES, rings are enabled from SET_FEATURES on and
 * SET_VRING_ENABLE is refused; with it, a disabled ring runs without side
 * effects. */
static void test_enable_rules(void **state)
{
    (void)state;
    struct harness h;
    assert_int_equal(harness_start(&h, 2), 0);
    struct vhu_fe *fe = harness_connect(&h);
    uint64_t f;
    assert_int_equal(vhu_fe_get_features(fe, &f), 0);
    assert_int_equal(vhu_fe_set_protocol_features(fe, VHU_BIT(VHU_PF_REPLY_ACK)), 0);
    assert_int_equal(vhu_fe_set_owner(fe), 0);
    assert_int_equal(vhu_fe_set_features(fe, f & ~VHU_BIT(VHU_F_PROTOCOL_FEATURES)), 0);
    assert_int_equal(vhu_fe_set_vring_enable(fe, 0, true), -ENOTSUP);

    struct guest g;
    guest_init(&g, 1);
    struct vhu_mem_region reg = vhu_guest_mem_region(&g.mem);
    assert_int_equal(vhu_fe_set_mem_table(fe, &reg, &g.mem.fd, 1), 0);
    assert_int_equal(vhu_fe_set_vring_num(fe, 0, GUEST_RING_SIZE), 0);
    assert_int_equal(vhu_fe_vring_set_addr(fe, &g.ring[0], 0), 0);
    assert_int_equal(vhu_fe_set_vring_kick(fe, 0, g.kick[0]), 0);
    push_writable(&g, 0, 0);
    guest_kick(&g, 0);
    assert_true(wait_used_idx(&g.ring[0], 1, 2000));
    assert_true(buf_filled(&g, 0, 0, TESTDEV_FILL)); /* enabled: side effects */
    vhu_fe_close(fe);
    guest_free(&g);

    /* With PROTOCOL_FEATURES: the test device leaves a disabled ring's
     * requests alone and serves them once the ring is enabled. */
    fe = harness_connect_negotiated(&h);
    guest_init(&g, 2);
    guest_activate(&g, fe, 0);
    assert_int_equal(vhu_fe_set_vring_enable(fe, 1, false), 0);
    push_writable(&g, 0, 0);
    push_writable(&g, 1, 0);
    guest_kick(&g, 0);
    guest_kick(&g, 1);
    assert_true(wait_used_idx(&g.ring[0], 1, 2000));
    assert_true(buf_filled(&g, 0, 0, TESTDEV_FILL));
    sleep_ms(50);
    assert_int_equal(vhu_fe_vring_used_idx(&g.ring[1]), 0);
    assert_true(buf_filled(&g, 1, 0, 0));
    assert_int_equal(vhu_fe_set_vring_enable(fe, 1, true), 0); /* no kick from the guest */
    assert_true(wait_used_idx(&g.ring[1], 1, 2000));
    assert_true(buf_filled(&g, 1, 0, TESTDEV_FILL));
    vhu_fe_close(fe);
    guest_free(&g);
    harness_stop(&h);
}

/* Memory changes under running rings: a new table that still holds the
 * rings is swapped in without losing a request; one that drops a running
 * ring's memory is refused and the old table stays. */
static void test_memory_changes(void **state)
{
    (void)state;
    struct harness h;
    assert_int_equal(harness_start(&h, 1), 0);
    log_clear();
    struct vhu_fe *fe = harness_connect_negotiated(&h);
    struct guest g;
    guest_init(&g, 1);
    guest_activate(&g, fe, 0);
    push_writable(&g, 0, 0);
    guest_kick(&g, 0);
    assert_true(wait_used_idx(&g.ring[0], 1, 2000));

    /* Same memory plus a second region: accepted, ring keeps running. */
    struct vhu_guest_mem extra;
    assert_int_equal(vhu_guest_mem_new(&extra, 0x100000000ull, 1 << 16), 0);
    struct vhu_mem_region regs[2] = {vhu_guest_mem_region(&g.mem), vhu_guest_mem_region(&extra)};
    int fds[2] = {g.mem.fd, extra.fd};
    assert_int_equal(vhu_fe_set_mem_table(fe, regs, fds, 2), 0);
    push_writable(&g, 0, 1);
    guest_kick(&g, 0);
    assert_true(wait_used_idx(&g.ring[0], 2, 2000));

    /* Only the extra region: the running ring would lose its memory. */
    assert_int_equal(vhu_fe_set_mem_table(fe, &regs[1], &fds[1], 1), -EBUSY);
    assert_true(log_count("SET_MEM_TABLE refused: ring 0 runs") == 1);
    push_writable(&g, 0, 2);
    guest_kick(&g, 0);
    assert_true(wait_used_idx(&g.ring[0], 3, 2000));

    /* Memory slots: removing the region the ring lives in is refused,
     * removing the other one works, an unknown one is ENOENT. */
    assert_int_equal(vhu_fe_rem_mem_reg(fe, &regs[0]), -EBUSY);
    assert_int_equal(vhu_fe_rem_mem_reg(fe, &regs[1]), 0);
    assert_int_equal(vhu_fe_rem_mem_reg(fe, &regs[1]), -ENOENT);
    assert_int_equal(vhu_fe_add_mem_reg(fe, &regs[1], extra.fd), 0);
    assert_int_equal(vhu_fe_add_mem_reg(fe, &regs[1], extra.fd), -EINVAL); /* overlaps */
    push_writable(&g, 0, 3);
    guest_kick(&g, 0);
    assert_true(wait_used_idx(&g.ring[0], 4, 2000));
    uint64_t slots = 0;
    assert_int_equal(vhu_fe_get_max_mem_slots(fe, &slots), 0);
    assert_true(slots >= 8);

    /* Moving the ring (SET_VRING_ADDR on a running ring) keeps its place. */
    struct vhu_fe_vring moved;
    assert_int_equal(vhu_fe_vring_init(&moved, &g.mem, 0, GUEST_RING_SIZE, 0x40000), 0);
    /* Carry the driver's state over: descriptors and indices. */
    memcpy(vhu_guest_mem_ptr(&g.mem, moved.desc_gpa, 1),
           vhu_guest_mem_ptr(&g.mem, g.ring[0].desc_gpa, 1), vhu_fe_vring_bytes(GUEST_RING_SIZE));
    moved.avail_idx = g.ring[0].avail_idx;
    assert_int_equal(vhu_fe_vring_set_addr(fe, &moved, 0), 0);
    push_writable(&g, 0, 9); /* into the old ring: must not be seen */
    g.ring[0] = moved;
    push_writable(&g, 0, 4);
    guest_kick(&g, 0);
    assert_true(wait_used_idx(&g.ring[0], 5, 2000));
    assert_true(buf_filled(&g, 0, 4, TESTDEV_FILL));
    assert_false(buf_filled(&g, 0, 9, TESTDEV_FILL));
    unsigned base;
    assert_int_equal(vhu_fe_get_vring_base(fe, 0, &base), 0);
    assert_int_equal(base, 5);

    vhu_fe_close(fe);
    vhu_guest_mem_free(&extra);
    guest_free(&g);
    harness_stop(&h);
}

static void test_config_and_status(void **state)
{
    (void)state;
    struct harness h;
    assert_int_equal(harness_start(&h, 2), 0);
    struct vhu_fe *fe = harness_connect_negotiated(&h);
    uint64_t v = 0x1122334455667788ull, back = 0;
    size_t off = offsetof(struct testdev_config, scratch);
    assert_int_equal(vhu_fe_set_config(fe, off, &v, 8, VHU_CONFIG_FLAG_WRITABLE), 0);
    assert_int_equal(vhu_fe_get_config(fe, off, &back, 8), 0);
    assert_int_equal(back, v);
    uint32_t magic = 0;
    /* The driver may not write read-only fields; a migration restore may. */
    assert_int_equal(vhu_fe_set_config(fe, 0, &magic, 4, VHU_CONFIG_FLAG_WRITABLE), -EPERM);
    assert_int_equal(vhu_fe_get_config(fe, 0, &magic, 4), 0);
    assert_int_equal(magic, TESTDEV_MAGIC);
    assert_int_equal(vhu_fe_set_config(fe, 0, &magic, 4, 7), -EINVAL);
    assert_int_equal(vhu_fe_get_config(fe, 12, &back, 8), -EREMOTEIO);

    uint8_t st = 0xff;
    assert_int_equal(vhu_fe_get_status(fe, &st), 0);
    assert_int_equal(st, 0);
    assert_int_equal(vhu_fe_set_status(fe, 0x0f), 0);
    assert_int_equal(vhu_fe_get_status(fe, &st), 0);
    assert_int_equal(st, 0x0f);
    /* RESET_DEVICE: device state (scratch, status) back to initial; the
     * session (owner, protocol features) stays. */
    unsigned long resets = testdev_resets(h.dev);
    assert_int_equal(vhu_fe_reset_device(fe), 0);
    assert_int_equal(testdev_resets(h.dev), resets + 1);
    assert_int_equal(vhu_fe_get_config(fe, off, &back, 8), 0);
    assert_int_equal(back, 0);
    assert_int_equal(vhu_fe_get_status(fe, &st), 0);
    assert_int_equal(st, 0);
    assert_int_equal(vhu_fe_set_owner(fe), -EALREADY);
    vhu_fe_close(fe);
    harness_stop(&h);
}

int main(void)
{
    log_capture_install();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lifecycle),
        cmocka_unit_test(test_enable_rules),
        cmocka_unit_test(test_memory_changes),
        cmocka_unit_test(test_config_and_status),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
