/* SPDX-License-Identifier: BSD-3-Clause */
/* The bad-input matrix: each hostile message gets an error reply or a clean
 * disconnect, with one log line naming the problem; afterwards the back-end
 * still serves a fresh front-end and the process holds no more fds than
 * before. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define V VHU_FLAG_VERSION
#define VN (VHU_FLAG_VERSION | VHU_FLAG_NEED_REPLY)

enum expect { STATUS_ERR, EMPTY_REPLY, DISCONNECT };

static struct harness h;
static int baseline_fds;

static int setup(void **state)
{
    (void)state;
    log_capture_install();
    if (harness_start(&h, 2) < 0)
        return -1;
    baseline_fds = count_open_fds();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    harness_stop(&h);
    return 0;
}

/* After a case: the back-end serves a fresh front-end, and every fd it was
 * sent is closed again. */
static void check_recovered_to(int fds_before)
{
    struct vhu_fe *fe = harness_connect_negotiated(&h);
    uint64_t n = 0;
    assert_int_equal(vhu_fe_get_queue_num(fe, &n), 0);
    assert_int_equal(n, 2);
    vhu_fe_close(fe);
    int now = -1;
    for (int i = 0; i < 400 && (now = count_open_fds()) != fds_before; i++)
        sleep_ms(5);
    assert_int_equal(now, fds_before);
}

/* For cases whose test holds no fds of its own. */
static void check_recovered(void) { check_recovered_to(baseline_fds); }

/* A negotiated front-end: REPLY_ACK on (so refusals can be answered) unless
 * pf says otherwise; owner set unless no_owner. */
static struct vhu_fe *open_fe(uint64_t pf, bool owner)
{
    log_clear();
    struct vhu_fe *fe = harness_connect(&h);
    uint64_t f;
    assert_int_equal(vhu_fe_get_features(fe, &f), 0);
    assert_int_equal(vhu_fe_set_protocol_features(fe, pf), 0);
    if (owner) {
        assert_int_equal(vhu_fe_set_owner(fe), 0);
        assert_int_equal(vhu_fe_set_features(fe, f), 0);
    }
    return fe;
}

static struct vhu_fe *open_default(void)
{
    uint64_t all = VHU_BIT(VHU_PF_MQ) | VHU_BIT(VHU_PF_REPLY_ACK) | VHU_BIT(VHU_PF_CONFIG) |
                   VHU_BIT(VHU_PF_CONFIGURE_MEM_SLOTS) | VHU_BIT(VHU_PF_BACKEND_REQ) |
                   VHU_BIT(VHU_PF_RESET_DEVICE) | VHU_BIT(VHU_PF_STATUS);
    return open_fe(all, true);
}

/* Wait for the answer to what was just sent and check it is the expected
 * kind of refusal, and that the log names `needle`. */
static void expect_answer(struct vhu_fe *fe, uint32_t code, enum expect e, const char *needle)
{
    struct vhu_msg_header hdr;
    uint8_t buf[512];
    int r = vhu_fe_recv(fe, &hdr, buf, sizeof(buf), NULL, NULL);
    switch (e) {
    case DISCONNECT: assert_int_equal(r, -ECONNRESET); break;
    case STATUS_ERR: {
        assert_int_equal(r, 0);
        assert_int_equal(hdr.request, code);
        assert_int_equal(hdr.flags, VHU_FLAG_VERSION | VHU_FLAG_REPLY);
        assert_int_equal(hdr.size, 8);
        uint64_t st;
        memcpy(&st, buf, 8);
        assert_true(st != 0);
        break;
    }
    case EMPTY_REPLY:
        assert_int_equal(r, 0);
        assert_int_equal(hdr.request, code);
        assert_int_equal(hdr.flags, VHU_FLAG_VERSION | VHU_FLAG_REPLY);
        assert_int_equal(hdr.size, 0);
        break;
    }
    if (!log_wait(needle, 2000)) {
        fprintf(stderr, "expected a log line containing '%s'; got:\n", needle);
        log_dump();
        fail();
    }
}

/* Send one message on a fresh default front-end and check the answer. */
static void one(uint32_t code, uint32_t flags, const void *p, uint32_t len, const int *fds,
                unsigned nfds, enum expect e, const char *needle)
{
    int before = count_open_fds();
    struct vhu_fe *fe = open_default();
    assert_int_equal(vhu_fe_send(fe, code, flags, p, len, fds, nfds), 0);
    expect_answer(fe, code, e, needle);
    vhu_fe_close(fe);
    check_recovered_to(before);
}

static void test_truncated_header(void **state)
{
    (void)state;
    struct vhu_fe *fe = open_default();
    uint8_t five[5] = {3, 0, 0, 0, 1};
    assert_int_equal(vhu_fe_send_raw(fe, five, sizeof(five), NULL, 0), 0);
    shutdown(vhu_fe_fd(fe), SHUT_WR);
    expect_answer(fe, 0, DISCONNECT, "truncated header: 5 of 12 bytes");
    vhu_fe_close(fe);
    check_recovered();
}

static void test_oversize_and_version(void **state)
{
    (void)state;
    struct vhu_fe *fe = open_default();
    struct vhu_msg_header hd = {VHU_REQ_SET_OWNER, V, 0x7fffffff};
    assert_int_equal(vhu_fe_send_raw(fe, &hd, sizeof(hd), NULL, 0), 0);
    expect_answer(fe, 0, DISCONNECT, "exceeds the largest payload");
    vhu_fe_close(fe);
    check_recovered();

    fe = open_default();
    struct vhu_msg_header bad = {VHU_REQ_GET_FEATURES, 2, 0};
    assert_int_equal(vhu_fe_send_raw(fe, &bad, sizeof(bad), NULL, 0), 0);
    expect_answer(fe, 0, DISCONNECT, "protocol version 2");
    vhu_fe_close(fe);
    check_recovered();

    /* A payload cut short by EOF. */
    fe = open_default();
    uint8_t msg[12 + 3] = {0};
    struct vhu_msg_header part = {VHU_REQ_SET_FEATURES, V, 8};
    memcpy(msg, &part, sizeof(part));
    assert_int_equal(vhu_fe_send_raw(fe, msg, sizeof(msg), NULL, 0), 0);
    shutdown(vhu_fe_fd(fe), SHUT_WR);
    expect_answer(fe, 0, DISCONNECT, "truncated payload: 3 of 8 bytes");
    vhu_fe_close(fe);
    check_recovered();
}

static void test_short_payload(void **state)
{
    (void)state;
    uint32_t four = 16;
    one(VHU_REQ_SET_VRING_NUM, VN, &four, 4, NULL, 0, STATUS_ERR,
        "SET_VRING_NUM refused: payload size 4 (want 8)");
    /* Without NEED_REPLY there is nobody to tell: the connection ends. */
    one(VHU_REQ_SET_VRING_NUM, V, &four, 4, NULL, 0, DISCONNECT,
        "SET_VRING_NUM refused: payload size 4 (want 8); closing the connection");
    struct vhu_vring_state s = {0, 0};
    one(VHU_REQ_GET_VRING_BASE, V, &s, 4, NULL, 0, EMPTY_REPLY,
        "GET_VRING_BASE refused: payload size 4");
    uint64_t big[2] = {0, 0};
    one(VHU_REQ_SET_FEATURES, VN, big, 16, NULL, 0, STATUS_ERR,
        "SET_FEATURES refused: payload size 16 (want 8)");
}

static void test_fd_counts(void **state)
{
    (void)state;
    int efd[10];
    for (int i = 0; i < 10; i++)
        efd[i] = eventfd(0, EFD_CLOEXEC);
    uint64_t ring0 = 0;
    one(VHU_REQ_SET_VRING_KICK, VN, &ring0, 8, NULL, 0, STATUS_ERR,
        "SET_VRING_KICK refused: 0 fds attached (want 1, or the no-fd flag)");
    one(VHU_REQ_SET_VRING_CALL, VN, &ring0, 8, efd, 2, STATUS_ERR,
        "SET_VRING_CALL refused: 2 fds attached (want 0..1)");
    uint64_t nofd = VHU_VRING_NOFD;
    one(VHU_REQ_SET_VRING_ERR, VN, &nofd, 8, efd, 1, STATUS_ERR,
        "SET_VRING_ERR refused: no-fd flag set but 1 fds attached");
    one(VHU_REQ_SET_OWNER, VN, NULL, 0, efd, 1, STATUS_ERR,
        "SET_OWNER refused: 1 fds attached (want 0)");
    one(VHU_REQ_SET_BACKEND_REQ_FD, VN, NULL, 0, NULL, 0, STATUS_ERR,
        "SET_BACKEND_REQ_FD refused: 0 fds attached (want 1)");
    one(VHU_REQ_ADD_MEM_REG, VN, &(struct vhu_single_mem_region){0}, 40, efd, 8, STATUS_ERR,
        "ADD_MEM_REG refused: 8 fds attached (want 1)");
    /* 9 and 10 fds: more than a message may carry. */
    int before = count_open_fds();
    struct vhu_fe *fe = open_default();
    struct vhu_msg_header hd = {VHU_REQ_GET_FEATURES, V, 0};
    assert_int_equal(vhu_fe_send_raw(fe, &hd, sizeof(hd), efd, 9), 0);
    expect_answer(fe, VHU_REQ_GET_FEATURES, EMPTY_REPLY, "more than 8 fds attached");
    vhu_fe_close(fe);
    check_recovered_to(before);
    fe = open_default();
    struct vhu_msg_header own = {VHU_REQ_SET_OWNER, V, 0};
    assert_int_equal(vhu_fe_send_raw(fe, &own, sizeof(own), efd, 10), 0);
    expect_answer(fe, 0, DISCONNECT, "SET_OWNER refused: more than 8 fds attached");
    vhu_fe_close(fe);
    check_recovered_to(before);
    /* A fd on a kick request whose ring does not exist is closed too. */
    uint64_t ring7 = 7;
    one(VHU_REQ_SET_VRING_KICK, VN, &ring7, 8, efd, 1, STATUS_ERR,
        "SET_VRING_KICK refused: ring index 7 out of range");
    for (int i = 0; i < 10; i++)
        close(efd[i]);
}

static void test_flags_and_codes(void **state)
{
    (void)state;
    one(VHU_REQ_SET_OWNER, VN | VHU_FLAG_REPLY, NULL, 0, NULL, 0, STATUS_ERR,
        "SET_OWNER refused: reply flag set on a request");
    one(VHU_REQ_GET_FEATURES, V | 0x100, NULL, 0, NULL, 0, EMPTY_REPLY,
        "GET_FEATURES refused: unknown flag bits 0x100");
    one(99, VN, NULL, 0, NULL, 0, STATUS_ERR, "unknown request 99 refused");
    one(0, VN, NULL, 0, NULL, 0, STATUS_ERR, "unknown request 0 refused");
    one(0xdeadbeef, V, NULL, 0, NULL, 0, DISCONNECT, "unknown request 3735928559 refused");
}

static void test_ring_index_out_of_range(void **state)
{
    (void)state;
    unsigned bad[] = {2, 255, 0xffffffffu};
    for (unsigned i = 0; i < 3; i++) {
        struct vhu_vring_state s = {bad[i], 16};
        char needle[96];
        snprintf(needle, sizeof(needle), "ring index %u out of range (device has 2 rings)", bad[i]);
        one(VHU_REQ_SET_VRING_NUM, VN, &s, 8, NULL, 0, STATUS_ERR, needle);
        one(VHU_REQ_SET_VRING_BASE, VN, &s, 8, NULL, 0, STATUS_ERR, needle);
        one(VHU_REQ_SET_VRING_ENABLE, VN, &(struct vhu_vring_state){bad[i], 1}, 8, NULL, 0,
            STATUS_ERR, needle);
        one(VHU_REQ_GET_VRING_BASE, V, &s, 8, NULL, 0, EMPTY_REPLY, needle);
        struct vhu_vring_addr a = {.index = bad[i]};
        one(VHU_REQ_SET_VRING_ADDR, VN, &a, sizeof(a), NULL, 0, STATUS_ERR, needle);
    }
    int efd = eventfd(0, EFD_CLOEXEC);
    uint64_t idx = 200;
    one(VHU_REQ_SET_VRING_KICK, VN, &idx, 8, &efd, 1, STATUS_ERR, "ring index 200 out of range");
    one(VHU_REQ_SET_VRING_CALL, VN, &idx, 8, &efd, 1, STATUS_ERR, "ring index 200 out of range");
    close(efd);
}

static void test_ring_sizes(void **state)
{
    (void)state;
    unsigned sizes[] = {0, 3, 65536, 2048, 100};
    for (unsigned i = 0; i < 5; i++) {
        struct vhu_vring_state s = {0, sizes[i]};
        char needle[96];
        snprintf(needle, sizeof(needle), "ring 0: size %u is not a power of two in 1..1024",
                 sizes[i]);
        one(VHU_REQ_SET_VRING_NUM, VN, &s, 8, NULL, 0, STATUS_ERR, needle);
    }
    struct vhu_vring_state base = {0, 0x10000};
    one(VHU_REQ_SET_VRING_BASE, VN, &base, 8, NULL, 0, STATUS_ERR, "base 0x10000 has reserved");
}

/* A SET_MEM_TABLE of n regions on fresh memfds of fd_size bytes each. */
static void mem_table_case(const struct vhu_mem_region *regs, unsigned n, uint64_t fd_size,
                           const char *needle)
{
    int fds[8];
    for (unsigned i = 0; i < n; i++) {
        fds[i] = memfd_create("t", MFD_CLOEXEC);
        assert_true(fds[i] >= 0);
        assert_int_equal(ftruncate(fds[i], (off_t)fd_size), 0);
    }
    struct vhu_mem_table t = {.nregions = n};
    memcpy(t.regions, regs, n * sizeof(*regs));
    one(VHU_REQ_SET_MEM_TABLE, VN, &t, 8 + 32 * n, fds, n, STATUS_ERR, needle);
    for (unsigned i = 0; i < n; i++)
        close(fds[i]);
}

static void test_memory_tables(void **state)
{
    (void)state;
    const uint64_t M = 1 << 20;
    struct vhu_mem_region overlap_gpa[2] = {{0, M, 0x10000000, 0}, {M / 2, M, 0x20000000, 0}};
    mem_table_case(overlap_gpa, 2, M, "overlaps region guest");
    struct vhu_mem_region overlap_uva[2] = {{0, M, 0x10000000, 0},
                                            {4 * M, M, 0x10000000 + M / 2, 0}};
    mem_table_case(overlap_uva, 2, M, "overlaps region user");
    struct vhu_mem_region past_end = {0, 2 * M, 0x10000000, 0};
    mem_table_case(&past_end, 1, M, "runs past the end of its fd");
    struct vhu_mem_region past_off = {0, M, 0x10000000, 4096};
    mem_table_case(&past_off, 1, M, "runs past the end of its fd");
    struct vhu_mem_region wrap_gpa = {0xfffffffffffff000ull, 0x2000, 0x10000000, 0};
    mem_table_case(&wrap_gpa, 1, M, "wraps");
    struct vhu_mem_region wrap_uva = {0, 0x2000, 0xfffffffffffff000ull, 0};
    mem_table_case(&wrap_uva, 1, M, "user address 0xfffffffffffff000 + size 0x2000 wraps");
    struct vhu_mem_region wrap_off = {0, 0x2000, 0x1000, 0xfffffffffffff000ull};
    mem_table_case(&wrap_off, 1, M, "overflows");
    struct vhu_mem_region zero = {0, 0, 0x10000000, 0};
    mem_table_case(&zero, 1, M, "has size 0");

    /* Region counts: 0, 9 and 0xFFFFFFFF, whatever the size field says. */
    uint32_t counts[] = {0, 9, 0xffffffffu};
    int fd = memfd_create("t", MFD_CLOEXEC);
    for (unsigned i = 0; i < 3; i++) {
        struct vhu_mem_table t = {.nregions = counts[i]};
        char needle[64];
        snprintf(needle, sizeof(needle), "region count %u (must be 1..8)", counts[i]);
        one(VHU_REQ_SET_MEM_TABLE, VN, &t, sizeof(t), &fd, 1, STATUS_ERR, needle);
    }
    struct vhu_mem_table two = {.nregions = 2};
    one(VHU_REQ_SET_MEM_TABLE, VN, &two, 8 + 32, &fd, 1, STATUS_ERR, "does not fit 2 regions");
    one(VHU_REQ_SET_MEM_TABLE, VN, &two, 8 + 64, &fd, 1, STATUS_ERR, "1 fds for 2 regions");
    /* ADD_MEM_REG gets the same checks. */
    assert_int_equal(ftruncate(fd, (off_t)M), 0);
    struct vhu_single_mem_region add = {.region = {0, 2 * M, 0x10000000, 0}};
    one(VHU_REQ_ADD_MEM_REG, VN, &add, 40, &fd, 1, STATUS_ERR, "runs past the end of its fd");
    close(fd);
}

static void test_ring_addresses(void **state)
{
    (void)state;
    struct vhu_fe *fe = open_default();
    struct guest g;
    guest_init(&g, 1);
    struct vhu_vring_addr a = {.index = 0,
                               .desc_user_addr = (uintptr_t)g.mem.host + 0x10000,
                               .used_user_addr = (uintptr_t)g.mem.host + 0x11000,
                               .avail_user_addr = (uintptr_t)g.mem.host + 0x10100};
    assert_int_equal(vhu_fe_set_vring_addr(fe, &a), -EINVAL); /* before NUM */
    assert_true(log_count("SET_VRING_ADDR before SET_VRING_NUM") == 1);
    assert_int_equal(vhu_fe_set_vring_num(fe, 0, 16), 0);
    assert_int_equal(vhu_fe_set_vring_addr(fe, &a), -EINVAL); /* before memory */
    struct vhu_mem_region reg = vhu_guest_mem_region(&g.mem);
    assert_int_equal(vhu_fe_set_mem_table(fe, &reg, &g.mem.fd, 1), 0);
    assert_int_equal(vhu_fe_set_vring_addr(fe, &a), 0);
    /* A used ring that runs off the end of the region. */
    struct vhu_vring_addr off = a;
    off.used_user_addr = (uintptr_t)g.mem.host + GUEST_MEM_SIZE - 64;
    assert_int_equal(vhu_fe_set_vring_addr(fe, &off), -EFAULT);
    assert_true(log_count("used ring at user address") == 1);
    off = a;
    off.desc_user_addr = 0x1000; /* nowhere */
    assert_int_equal(vhu_fe_set_vring_addr(fe, &off), -EFAULT);
    off = a;
    off.desc_user_addr += 8; /* misaligned */
    assert_int_equal(vhu_fe_set_vring_addr(fe, &off), -EINVAL);
    off = a;
    off.flags = 0x80;
    assert_int_equal(vhu_fe_set_vring_addr(fe, &off), -EINVAL);
    /* Kick without an fd (polling) is not supported. */
    assert_int_equal(vhu_fe_set_vring_kick(fe, 0, -1), -ENOTSUP);
    /* Ring sizes cannot change under a running ring. */
    assert_int_equal(vhu_fe_set_vring_kick(fe, 0, g.kick[0]), 0);
    assert_int_equal(vhu_fe_set_vring_num(fe, 0, 8), -EBUSY);
    assert_int_equal(vhu_fe_set_vring_base(fe, 0, 1), -EBUSY);
    vhu_fe_close(fe);
    guest_free(&g);
    check_recovered();
}

static void test_features(void **state)
{
    (void)state;
    uint64_t f40 = VHU_BIT(40);
    one(VHU_REQ_SET_FEATURES, VN, &f40, 8, NULL, 0, STATUS_ERR,
        "SET_FEATURES refused: feature bits 0x10000000000 were never offered");
    uint64_t pf = VHU_BIT(VHU_PF_SHMEM) | VHU_BIT(VHU_PF_REPLY_ACK);
    one(VHU_REQ_SET_PROTOCOL_FEATURES, VN, &pf, 8, NULL, 0, STATUS_ERR,
        "protocol feature bits 0x100000 were never offered");
    uint64_t st = 0x100;
    one(VHU_REQ_SET_STATUS, VN, &st, 8, NULL, 0, STATUS_ERR, "does not fit the virtio status byte");
    one(VHU_REQ_SET_OWNER, VN, NULL, 0, NULL, 0, STATUS_ERR,
        "SET_OWNER refused: the session already has an owner");
}

/* Requests whose protocol feature was not negotiated (only REPLY_ACK here),
 * or that vhu does not offer at all. */
static void test_unnegotiated(void **state)
{
    (void)state;
    struct {
        uint32_t code;
        uint32_t len;
        unsigned nfds;
        enum expect e;
        const char *needle;
    } cases[] = {
        {VHU_REQ_GET_CONFIG, 12 + 4, 0, EMPTY_REPLY, "GET_CONFIG refused: needs CONFIG"},
        {VHU_REQ_GET_QUEUE_NUM, 0, 0, EMPTY_REPLY, "GET_QUEUE_NUM refused: needs MQ"},
        {VHU_REQ_ADD_MEM_REG, 40, 1, STATUS_ERR, "ADD_MEM_REG refused: needs CONFIGURE_MEM_SLOTS"},
        {VHU_REQ_SET_BACKEND_REQ_FD, 0, 1, STATUS_ERR, "needs BACKEND_REQ"},
        {VHU_REQ_SET_LOG_BASE, 16, 1, STATUS_ERR, "SET_LOG_BASE refused: needs LOG_SHMFD"},
        {VHU_REQ_SET_LOG_FD, 0, 1, STATUS_ERR, "SET_LOG_FD refused: needs LOG_SHMFD"},
        {VHU_REQ_SEND_RARP, 8, 0, STATUS_ERR, "needs RARP"},
        {VHU_REQ_NET_SET_MTU, 8, 0, STATUS_ERR, "needs NET_MTU"},
        {VHU_REQ_IOTLB_MSG, 32, 0, STATUS_ERR, "needs feature ACCESS_PLATFORM"},
        {VHU_REQ_SET_VRING_ENDIAN, 8, 0, STATUS_ERR, "needs CROSS_ENDIAN"},
        {VHU_REQ_CREATE_CRYPTO_SESSION, 64, 0, EMPTY_REPLY, "needs CRYPTO_SESSION"},
        {VHU_REQ_CLOSE_CRYPTO_SESSION, 8, 0, STATUS_ERR, "needs CRYPTO_SESSION"},
        {VHU_REQ_POSTCOPY_ADVISE, 0, 0, EMPTY_REPLY, "POSTCOPY_ADVISE refused: needs PAGEFAULT"},
        {VHU_REQ_POSTCOPY_LISTEN, 0, 0, STATUS_ERR, "needs PAGEFAULT"},
        {VHU_REQ_POSTCOPY_END, 0, 0, STATUS_ERR, "needs PAGEFAULT"},
        {VHU_REQ_GET_INFLIGHT_FD, 20, 0, EMPTY_REPLY, "needs INFLIGHT_SHMFD"},
        {VHU_REQ_SET_INFLIGHT_FD, 20, 1, STATUS_ERR, "needs INFLIGHT_SHMFD"},
        {VHU_REQ_GPU_SET_SOCKET, 0, 1, STATUS_ERR, "needs a vhost-user-gpu device"},
        {VHU_REQ_RESET_DEVICE, 0, 0, STATUS_ERR, "needs RESET_DEVICE"},
        {VHU_REQ_VRING_KICK, 8, 0, STATUS_ERR, "needs INBAND_NOTIFICATIONS"},
        {VHU_REQ_GET_MAX_MEM_SLOTS, 0, 0, EMPTY_REPLY, "needs CONFIGURE_MEM_SLOTS"},
        {VHU_REQ_SET_STATUS, 8, 0, STATUS_ERR, "needs STATUS"},
        {VHU_REQ_GET_STATUS, 0, 0, EMPTY_REPLY, "needs STATUS"},
        {VHU_REQ_GET_SHARED_OBJECT, 16, 0, STATUS_ERR, "needs SHARED_OBJECT"},
        {VHU_REQ_SET_DEVICE_STATE_FD, 8, 1, STATUS_ERR, "needs DEVICE_STATE"},
        {VHU_REQ_CHECK_DEVICE_STATE, 0, 0, STATUS_ERR, "needs DEVICE_STATE"},
    };
    int fd = memfd_create("t", MFD_CLOEXEC);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t payload[64] = {0};
        if (cases[i].code == VHU_REQ_GET_CONFIG)
            payload[4] = (uint8_t)(cases[i].len - VHU_CONFIG_HDR_SIZE); /* config.size */
        struct vhu_fe *fe = open_fe(VHU_BIT(VHU_PF_REPLY_ACK), true);
        assert_int_equal(
            vhu_fe_send(fe, cases[i].code, VN, payload, cases[i].len, &fd, cases[i].nfds), 0);
        expect_answer(fe, cases[i].code, cases[i].e, cases[i].needle);
        vhu_fe_close(fe);
    }
    close(fd);
    check_recovered();

    /* SET_DEVICE_STATE_FD's error status: bits 0-7 non-zero, bit 8 set. */
    struct vhu_fe *fe = open_fe(VHU_BIT(VHU_PF_REPLY_ACK), true);
    int p[2];
    assert_int_equal(pipe(p), 0);
    struct vhu_device_state_params dp = {VHU_TRANSFER_SAVE, VHU_PHASE_STOPPED};
    uint64_t stv = 0;
    assert_int_equal(
        vhu_fe_call(fe, VHU_REQ_SET_DEVICE_STATE_FD, V, &dp, 8, &p[1], 1, &stv, 8, NULL, NULL), 8);
    assert_true((stv & 0xff) != 0);
    assert_true(stv & VHU_VRING_NOFD);
    close(p[0]);
    close(p[1]);
    vhu_fe_close(fe);
    check_recovered();
}

/* Memory, ring and feature requests before SET_OWNER. */
static void test_before_owner(void **state)
{
    (void)state;
    struct guest g;
    guest_init(&g, 1);
    struct vhu_mem_region reg = vhu_guest_mem_region(&g.mem);
    uint64_t all = VHU_BIT(VHU_PF_REPLY_ACK) | VHU_BIT(VHU_PF_CONFIGURE_MEM_SLOTS);
    struct vhu_fe *fe = open_fe(all, false);
    assert_int_equal(vhu_fe_set_mem_table(fe, &reg, &g.mem.fd, 1), -EPERM);
    assert_int_equal(vhu_fe_add_mem_reg(fe, &reg, g.mem.fd), -EPERM);
    assert_int_equal(vhu_fe_set_vring_num(fe, 0, 16), -EPERM);
    assert_int_equal(vhu_fe_set_vring_base(fe, 0, 0), -EPERM);
    assert_int_equal(vhu_fe_set_vring_call(fe, 0, g.call[0]), -EPERM);
    assert_int_equal(vhu_fe_set_vring_kick(fe, 0, g.kick[0]), -EPERM);
    unsigned base;
    assert_int_equal(vhu_fe_get_vring_base(fe, 0, &base), -EREMOTEIO);
    assert_int_equal(vhu_fe_set_features(fe, VHU_BIT(VHU_F_VERSION_1)), -EPERM);
    assert_int_equal(log_count("no SET_OWNER yet"), 8);
    vhu_fe_close(fe);
    guest_free(&g);
    check_recovered();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_truncated_header), cmocka_unit_test(test_oversize_and_version),
        cmocka_unit_test(test_short_payload),    cmocka_unit_test(test_fd_counts),
        cmocka_unit_test(test_flags_and_codes),  cmocka_unit_test(test_ring_index_out_of_range),
        cmocka_unit_test(test_ring_sizes),       cmocka_unit_test(test_memory_tables),
        cmocka_unit_test(test_ring_addresses),   cmocka_unit_test(test_features),
        cmocka_unit_test(test_unnegotiated),     cmocka_unit_test(test_before_owner),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
