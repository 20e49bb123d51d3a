/* SPDX-License-Identifier: BSD-3-Clause */
/* What Debian's QEMU 7.2 really sends to a vhost-user-blk back-end
 * (shared/design/qemu72-traces): the same requests, in the same order, with
 * the same flags (NEED_REPLY only where QEMU sets it).  Two start/stop
 * cycles (firmware, then Linux); the second sends no memory. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define V VHU_FLAG_VERSION
#define VN (VHU_FLAG_VERSION | VHU_FLAG_NEED_REPLY)
/* Protocol features QEMU 7.2 acked of what qemu-storage-daemon offered. */
#define QEMU72_PF_MASK 0x8f2bull

static uint64_t get_u64(struct vhu_fe *fe, uint32_t code)
{
    uint64_t v = 0;
    assert_int_equal(vhu_fe_call(fe, code, V, NULL, 0, NULL, 0, &v, sizeof(v), NULL, NULL), 8);
    return v;
}

static void send_u64(struct vhu_fe *fe, uint32_t code, uint64_t v)
{
    assert_int_equal(vhu_fe_send(fe, code, V, &v, sizeof(v), NULL, 0), 0);
}

static void send_state(struct vhu_fe *fe, uint32_t code, unsigned idx, unsigned num)
{
    struct vhu_vring_state s = {idx, num};
    assert_int_equal(vhu_fe_send(fe, code, V, &s, sizeof(s), NULL, 0), 0);
}

static void send_fd(struct vhu_fe *fe, uint32_t code, unsigned idx, int fd)
{
    uint64_t v = idx;
    assert_int_equal(vhu_fe_send(fe, code, V, &v, sizeof(v), &fd, 1), 0);
}

static uint64_t ack(struct vhu_fe *fe, uint32_t code, const void *p, uint32_t len, int fd)
{
    uint64_t st = 99;
    assert_int_equal(vhu_fe_call(fe, code, VN, p, len, fd >= 0 ? &fd : NULL, fd >= 0, &st,
                                 sizeof(st), NULL, NULL),
                     8);
    return st;
}

static void send_addr(struct vhu_fe *fe, struct vhu_fe_vring *r)
{
    const struct vhu_guest_mem *m = r->mem;
    struct vhu_vring_addr a = {
        .index = r->index,
        .desc_user_addr = (uint64_t)(uintptr_t)m->host + r->desc_gpa,
        .used_user_addr = (uint64_t)(uintptr_t)m->host + r->used_gpa,
        .avail_user_addr = (uint64_t)(uintptr_t)m->host + r->avail_gpa,
        .log_guest_addr = r->used_gpa,
    };
    assert_int_equal(vhu_fe_send(fe, VHU_REQ_SET_VRING_ADDR, V, &a, sizeof(a), NULL, 0), 0);
}

static void push_requests(struct guest *g, struct vhu_fe_vring *r, unsigned n)
{
    for (unsigned k = 0; k < n; k++)
        assert_int_equal(vhu_fe_vring_push(r, (uint16_t)((r->avail_idx) % r->size),
                                           GUEST_BUF_GPA + k * 512u, 512, 2),
                         0);
    guest_kick(g, 0);
}

/* The connection set-up QEMU 7.2 does before any ring starts. */
static uint64_t qemu_setup(struct vhu_fe *fe, struct guest *g, bool mem_slots, int *chan)
{
    uint64_t f = get_u64(fe, VHU_REQ_GET_FEATURES);
    assert_true(f & VHU_BIT(VHU_F_PROTOCOL_FEATURES));
    uint64_t pf = get_u64(fe, VHU_REQ_GET_PROTOCOL_FEATURES) & QEMU72_PF_MASK;
    if (!mem_slots)
        pf &= ~VHU_BIT(VHU_PF_CONFIGURE_MEM_SLOTS);
    send_u64(fe, VHU_REQ_SET_PROTOCOL_FEATURES, pf);
    assert_int_equal(get_u64(fe, VHU_REQ_GET_QUEUE_NUM), 1);
    if (mem_slots)
        assert_true(get_u64(fe, VHU_REQ_GET_MAX_MEM_SLOTS) >= 8);
    /* SET_BACKEND_REQ_FD with NEED_REPLY, before SET_OWNER. */
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(ack(fe, VHU_REQ_SET_BACKEND_REQ_FD, NULL, 0, sv[1]), 0);
    close(sv[1]);
    *chan = sv[0];
    assert_int_equal(vhu_fe_send(fe, VHU_REQ_SET_OWNER, V, NULL, 0, NULL, 0), 0);
    assert_int_equal(get_u64(fe, VHU_REQ_GET_FEATURES), f);
    send_fd(fe, VHU_REQ_SET_VRING_CALL, 0, g->call[0]);
    send_fd(fe, VHU_REQ_SET_VRING_ERR, 0, g->err[0]);
    struct vhu_config c = {.offset = 0, .size = 16};
    struct vhu_config out;
    assert_int_equal(vhu_fe_call(fe, VHU_REQ_GET_CONFIG, V, &c, VHU_CONFIG_HDR_SIZE + 16, NULL, 0,
                                 &out, sizeof(out), NULL, NULL),
                     VHU_CONFIG_HDR_SIZE + 16);
    uint32_t magic;
    memcpy(&magic, out.data, 4);
    assert_int_equal(magic, TESTDEV_MAGIC);
    uint64_t acked = f & (VHU_BIT(VHU_F_VERSION_1) | VHU_BIT(VHU_F_PROTOCOL_FEATURES) | 1);
    send_u64(fe, VHU_REQ_SET_FEATURES, acked);
    send_fd(fe, VHU_REQ_SET_VRING_CALL, 0, g->call[0]);
    return acked;
}

/* vhost_dev_start: features, (memory), NUM, BASE, ADDR, KICK, ENABLE 1. */
static void qemu_start(struct vhu_fe *fe, struct guest *g, struct vhu_fe_vring *r, uint64_t acked,
                       int mem_mode, unsigned base)
{
    send_u64(fe, VHU_REQ_SET_FEATURES, acked);
    if (mem_mode == 1) {
        struct vhu_single_mem_region m = {.region = vhu_guest_mem_region(&g->mem)};
        assert_int_equal(ack(fe, VHU_REQ_ADD_MEM_REG, &m, sizeof(m), g->mem.fd), 0);
    } else if (mem_mode == 2) {
        struct vhu_mem_table t = {.nregions = 1};
        t.regions[0] = vhu_guest_mem_region(&g->mem);
        assert_int_equal(vhu_fe_send(fe, VHU_REQ_SET_MEM_TABLE, V, &t, 8 + 32, &g->mem.fd, 1), 0);
    }
    send_state(fe, VHU_REQ_SET_VRING_NUM, 0, r->size);
    send_state(fe, VHU_REQ_SET_VRING_BASE, 0, base);
    send_addr(fe, r);
    send_fd(fe, VHU_REQ_SET_VRING_KICK, 0, g->kick[0]);
    send_state(fe, VHU_REQ_SET_VRING_ENABLE, 0, 1);
}

/* vhost_dev_stop: ENABLE 0, GET_VRING_BASE. */
static unsigned qemu_stop(struct vhu_fe *fe)
{
    send_state(fe, VHU_REQ_SET_VRING_ENABLE, 0, 0);
    struct vhu_vring_state s = {0, 0}, out;
    assert_int_equal(vhu_fe_call(fe, VHU_REQ_GET_VRING_BASE, V, &s, sizeof(s), NULL, 0, &out,
                                 sizeof(out), NULL, NULL),
                     8);
    assert_int_equal(out.index, 0);
    return out.num;
}

static void run_boot(bool mem_slots)
{
    struct harness h;
    assert_int_equal(harness_start(&h, 1), 0);
    log_clear();
    struct vhu_fe *fe = harness_connect(&h);
    struct guest g;
    guest_init(&g, 1);
    int chan;
    uint64_t acked = qemu_setup(fe, &g, mem_slots, &chan);

    /* Firmware: a 128-entry ring, two requests, stop. */
    struct vhu_fe_vring fw;
    assert_int_equal(vhu_fe_vring_init(&fw, &g.mem, 0, 128, 0x20000), 0);
    qemu_start(fe, &g, &fw, acked, mem_slots ? 1 : 2, 0);
    push_requests(&g, &fw, 2);
    assert_true(wait_used_idx(&fw, 2, 2000));
    assert_int_equal(qemu_stop(fe), 2);

    /* Linux: a different ring at another place, base carried over; no
     * memory message this time, the first mapping must still serve. */
    send_fd(fe, VHU_REQ_SET_VRING_CALL, 0, g.call[0]);
    struct vhu_fe_vring lx;
    assert_int_equal(vhu_fe_vring_init(&lx, &g.mem, 0, GUEST_RING_SIZE, 0x40000), 0);
    lx.avail_idx = 2;
    /* Linux's ring starts with the used index where the firmware's ended:
     * QEMU carries last_avail over, the device writes used entries from
     * its own used->idx, which Linux's fresh ring has at 2. */
    uint16_t *used = vhu_guest_mem_ptr(&g.mem, lx.used_gpa, 4);
    used[1] = 2;
    /* ...and its avail index too: a device may look at the ring as soon as
     * it is enabled, before the driver publishes anything new. */
    uint16_t *avail = vhu_guest_mem_ptr(&g.mem, lx.avail_gpa, 4);
    avail[1] = 2;
    qemu_start(fe, &g, &lx, acked, 0, 2);
    push_requests(&g, &lx, 3);
    assert_true(wait_used_idx(&lx, 5, 2000));
    assert_int_equal(qemu_stop(fe), 5);

    /* Nothing QEMU sent was refused, and the back-end still answers. */
    assert_int_equal(get_u64(fe, VHU_REQ_GET_FEATURES) & VHU_BIT(VHU_F_PROTOCOL_FEATURES),
                     VHU_BIT(VHU_F_PROTOCOL_FEATURES));
    if (log_count("refused") != 0)
        log_dump();
    assert_int_equal(log_count("refused"), 0);
    assert_int_equal(testdev_running(h.dev), 0);
    close(chan);
    vhu_fe_close(fe);
    guest_free(&g);
    harness_stop(&h);
}

static void test_qemu72_blk_boot_mem_slots(void **state)
{
    (void)state;
    run_boot(true);
}

static void test_qemu72_blk_boot_mem_table(void **state)
{
    (void)state;
    run_boot(false);
}

/* Refusing everything before SET_OWNER would break QEMU; letting memory and
 * ring requests through before it would be too lax. */
static void test_before_owner(void **state)
{
    (void)state;
    struct harness h;
    assert_int_equal(harness_start(&h, 1), 0);
    struct vhu_fe *fe = harness_connect(&h);
    uint64_t pf = get_u64(fe, VHU_REQ_GET_PROTOCOL_FEATURES);
    assert_int_equal(vhu_fe_set_protocol_features(fe, pf), 0);
    uint64_t n;
    assert_int_equal(vhu_fe_get_queue_num(fe, &n), 0);
    assert_int_equal(vhu_fe_get_max_mem_slots(fe, &n), 0);
    assert_int_equal(vhu_fe_open_backend_channel(fe), 0);
    assert_int_equal(vhu_fe_set_vring_num(fe, 0, 16), -EPERM);
    assert_int_equal(vhu_fe_set_owner(fe), 0);
    assert_int_equal(vhu_fe_set_vring_num(fe, 0, 16), 0);
    vhu_fe_close(fe);
    harness_stop(&h);
}

int main(void)
{
    log_capture_install();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qemu72_blk_boot_mem_slots),
        cmocka_unit_test(test_qemu72_blk_boot_mem_table),
        cmocka_unit_test(test_before_owner),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
