/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of the wire layer: the request tables, vhu_wire_check() on
 * hand-built messages, and vhu_wire_recv()/vhu_wire_send() over a real
 * AF_UNIX socketpair, including every error path of the framer and the fds
 * that arrive on it. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "wire/wire.h"
#include "common/internal.h"

#define TIMEOUT_MS 2000

/* ------------------------------------------------------------------------ */
/* Helpers */

/* Number of fds the process has open (the directory's own fd included, the
 * same way every time). */
static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static void make_pair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

static int make_eventfd(void)
{
    int fd = eventfd(0, EFD_CLOEXEC);
    assert_true(fd >= 0);
    return fd;
}

static void close_all(int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
        fds[i] = -1;
    }
}

static bool fd_is_open(int fd) { return fd >= 0 && fcntl(fd, F_GETFD) >= 0; }

/* Write raw bytes with fds attached (any number, unlike vhu_wire_send). */
static void send_raw(int sock, const void *buf, size_t len, const int *fds, unsigned nfds)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * 32)];
        struct cmsghdr align;
    } ctl;
    assert_true(nfds <= 32);
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds)
        vhu_wire_put_fds(&mh, ctl.buf, fds, nfds);
    assert_int_equal(sendmsg(sock, &mh, MSG_NOSIGNAL), (ssize_t)len);
}

static struct vhu_wire_msg *new_msg(uint32_t request, uint32_t flags, uint32_t size)
{
    struct vhu_wire_msg *m = malloc(sizeof(*m));
    assert_non_null(m);
    memset(m, 0, sizeof(*m));
    for (unsigned i = 0; i < VHU_MAX_FDS; i++)
        m->fds[i] = -1;
    m->hdr.request = request;
    m->hdr.flags = flags;
    m->hdr.size = size;
    return m;
}

/* Give m n fresh eventfds (closed by drop_msg). */
static void give_fds(struct vhu_wire_msg *m, unsigned n)
{
    assert_true(n <= VHU_MAX_FDS);
    for (unsigned i = 0; i < n; i++)
        m->fds[i] = make_eventfd();
    m->nfds = n;
}

static void drop_msg(struct vhu_wire_msg *m)
{
    vhu_wire_close_fds(m);
    free(m);
}

static int check_req(uint32_t code, const struct vhu_wire_msg *m, char *why, size_t n)
{
    const struct vhu_wire_row *row = vhu_wire_frontend_row(code);
    assert_non_null(row);
    why[0] = '\0';
    return vhu_wire_check(row, m, true, why, n);
}

static long elapsed_ms(const struct timespec *a)
{
    struct timespec b;
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (b.tv_sec - a->tv_sec) * 1000L + (b.tv_nsec - a->tv_nsec) / 1000000L;
}

/* ------------------------------------------------------------------------ */
/* Tables */

static void test_frontend_table_complete(void **state)
{
    (void)state;
    for (uint32_t c = 1; c <= VHU_REQ_MAX; c++) {
        const struct vhu_wire_row *r = vhu_wire_frontend_row(c);
        assert_non_null(r);
        assert_int_equal(r->code, c);
        assert_non_null(r->name);
        assert_true(r->name[0] != '\0');
        assert_string_equal(vhu_request_name(c), r->name);
        assert_true(r->size_min <= r->size_max);
        assert_true(r->size_max <= VHU_WIRE_MAX_PAYLOAD);
        assert_true(r->fds_min <= r->fds_max);
        assert_true(r->fds_max <= VHU_MAX_FDS);
        assert_true(r->reply <= VHU_WIRE_REPLY_DATA);
        /* Names are unique. */
        for (uint32_t d = 1; d < c; d++)
            assert_string_not_equal(vhu_wire_frontend_row(d)->name, r->name);
    }
    assert_int_equal(VHU_REQ_MAX, 44);
    assert_null(vhu_wire_frontend_row(0));
    assert_null(vhu_wire_frontend_row(45));
    assert_null(vhu_wire_frontend_row(0xffffffffu));
}

static void test_backend_table_complete(void **state)
{
    (void)state;
    for (uint32_t c = 1; c <= VHU_BREQ_MAX; c++) {
        const struct vhu_wire_row *r = vhu_wire_backend_row(c);
        assert_non_null(r);
        assert_int_equal(r->code, c);
        assert_non_null(r->name);
        assert_true(r->name[0] != '\0');
        assert_string_equal(vhu_backend_request_name(c), r->name);
        assert_true(r->size_min <= r->size_max);
        assert_true(r->fds_min <= r->fds_max);
        assert_true(r->fds_max <= VHU_MAX_FDS);
    }
    assert_int_equal(VHU_BREQ_MAX, 10);
    assert_null(vhu_wire_backend_row(0));
    assert_null(vhu_wire_backend_row(11));
    assert_null(vhu_wire_backend_row(0xffffffffu));
}

/* What the vhost-user specification says of a few requests, whole rows:
 * payload sizes, fds, how they are answered, the protocol feature that
 * gates them, and whether a check function looks inside the payload. */
struct row_expect {
    uint32_t code;
    const char *name;
    uint16_t size_min, size_max;
    uint8_t fds_min, fds_max;
    uint8_t reply;
    uint16_t reply_size;
    int8_t gate;
    bool check;
};

static const struct row_expect row_expects[] = {
    {VHU_REQ_GET_FEATURES, "GET_FEATURES", 0, 0, 0, 0, VHU_WIRE_REPLY_DATA, 8, VHU_WIRE_GATE_NONE,
     false},
    {VHU_REQ_SET_MEM_TABLE, "SET_MEM_TABLE", 8, 8 + 8 * 32, 1, 8, VHU_WIRE_REPLY_ACK, 0,
     VHU_WIRE_GATE_NONE, true},
    {VHU_REQ_SET_VRING_ADDR, "SET_VRING_ADDR", 40, 40, 0, 0, VHU_WIRE_REPLY_ACK, 0,
     VHU_WIRE_GATE_NONE, false},
    {VHU_REQ_SET_VRING_KICK, "SET_VRING_KICK", 8, 8, 0, 1, VHU_WIRE_REPLY_ACK, 0,
     VHU_WIRE_GATE_NONE, true},
    {VHU_REQ_GET_QUEUE_NUM, "GET_QUEUE_NUM", 0, 0, 0, 0, VHU_WIRE_REPLY_DATA, 8, VHU_PF_MQ, false},
    {VHU_REQ_SET_VRING_ENABLE, "SET_VRING_ENABLE", 8, 8, 0, 0, VHU_WIRE_REPLY_ACK, 0,
     VHU_WIRE_GATE_F_PROTOCOL_FEATURES, false},
    {VHU_REQ_GET_CONFIG, "GET_CONFIG", VHU_CONFIG_HDR_SIZE,
     VHU_CONFIG_HDR_SIZE + VHU_MAX_CONFIG_SIZE, 0, 0, VHU_WIRE_REPLY_DATA, VHU_WIRE_SIZE_VAR,
     VHU_PF_CONFIG, true},
    {VHU_REQ_SET_DEVICE_STATE_FD, "SET_DEVICE_STATE_FD", 8, 8, 1, 1, VHU_WIRE_REPLY_STATUS, 8,
     VHU_PF_DEVICE_STATE, false},
};

static void test_table_spot_checks(void **state)
{
    (void)state;
    for (size_t i = 0; i < VHU_ARRAY_SIZE(row_expects); i++) {
        const struct row_expect *e = &row_expects[i];
        const struct vhu_wire_row *r = vhu_wire_frontend_row(e->code);
        assert_non_null(r);
        if (strcmp(r->name, e->name) != 0 || r->size_min != e->size_min ||
            r->size_max != e->size_max || r->fds_min != e->fds_min || r->fds_max != e->fds_max ||
            r->reply != e->reply || r->reply_size != e->reply_size || r->gate != e->gate ||
            (r->check != NULL) != e->check)
            fail_msg("row %u is {%s, size %u..%u, fds %u..%u, reply %u/%u, gate %d, check %d}, "
                     "want {%s, size %u..%u, fds %u..%u, reply %u/%u, gate %d, check %d}",
                     e->code, r->name, r->size_min, r->size_max, r->fds_min, r->fds_max, r->reply,
                     r->reply_size, r->gate, r->check != NULL, e->name, e->size_min, e->size_max,
                     e->fds_min, e->fds_max, e->reply, e->reply_size, e->gate, e->check);
    }
}

static const struct {
    bool backend; /* a back-end -> front-end request */
    uint32_t code;
    const char *name;
} request_names[] = {
    {false, 1, "GET_FEATURES"},
    {false, 12, "SET_VRING_KICK"},
    {false, 43, "CHECK_DEVICE_STATE"},
    {false, 999, "UNKNOWN"},
    {false, 0, "UNKNOWN"},
    {true, 2, "BACKEND_CONFIG_CHANGE_MSG"},
    {true, 0, "UNKNOWN"},
    {true, 11, "UNKNOWN"},
};

static void test_request_names(void **state)
{
    (void)state;
    for (size_t i = 0; i < VHU_ARRAY_SIZE(request_names); i++) {
        const char *got = request_names[i].backend ? vhu_backend_request_name(request_names[i].code)
                                                   : vhu_request_name(request_names[i].code);
        if (strcmp(got, request_names[i].name) != 0)
            fail_msg("%s request %u is named %s, want %s",
                     request_names[i].backend ? "back-end" : "front-end", request_names[i].code,
                     got, request_names[i].name);
    }
}

/* Every protocol feature bit vhu defines is named as the spec spells it
 * (spot checks against the VHU_PF_* numbers), and every other bit, up to
 * the top of the 64-bit mask and beyond it, has no name. */
static void test_protocol_feature_names(void **state)
{
    (void)state;
    static const struct {
        unsigned bit;
        const char *name;
    } want[] = {
        {VHU_PF_MQ, "MQ"},
        {VHU_PF_LOG_SHMFD, "LOG_SHMFD"},
        {VHU_PF_REPLY_ACK, "REPLY_ACK"},
        {VHU_PF_BACKEND_REQ, "BACKEND_REQ"},
        {VHU_PF_CONFIG, "CONFIG"},
        {VHU_PF_INFLIGHT_SHMFD, "INFLIGHT_SHMFD"},
        {VHU_PF_CONFIGURE_MEM_SLOTS, "CONFIGURE_MEM_SLOTS"},
        {VHU_PF_STATUS, "STATUS"},
        {VHU_PF_DEVICE_STATE, "DEVICE_STATE"},
        {VHU_PF_SHMEM, "SHMEM"},
    };
    for (size_t i = 0; i < VHU_ARRAY_SIZE(want); i++) {
        const char *got = vhu_protocol_feature_name(want[i].bit);
        if (got == NULL || strcmp(got, want[i].name) != 0)
            fail_msg("protocol feature %u is named %s, want %s", want[i].bit, got ? got : "(null)",
                     want[i].name);
    }
    for (unsigned bit = 0; bit <= VHU_PF_SHMEM; bit++)
        if (vhu_protocol_feature_name(bit) == NULL)
            fail_msg("protocol feature %u has no name", bit);
    for (unsigned bit = VHU_PF_SHMEM + 1; bit < 64; bit++)
        assert_null(vhu_protocol_feature_name(bit));
    assert_null(vhu_protocol_feature_name(64));
    assert_null(vhu_protocol_feature_name(~0u));
}

/* ------------------------------------------------------------------------ */
/* vhu_wire_check: one row per message, built from the row's fields */

#define V VHU_FLAG_VERSION
#define BAD (-EBADMSG)

struct check_case {
    const char *what;
    uint32_t code;      /* the request, and the row it is checked against */
    uint32_t flags;     /* hdr.flags */
    uint32_t size;      /* hdr.size */
    unsigned nfds;      /* fresh eventfds attached */
    bool fds_truncated; /* the sender attached more than VHU_MAX_FDS */
    bool reply;         /* checked as a reply, not a request */
    /* The payload, by request: */
    struct vhu_vring_state vring;          /* SET_VRING_NUM */
    uint32_t nregions;                     /* SET_MEM_TABLE: regions filled in */
    uint32_t config_size;                  /* GET/SET_CONFIG (offset 0) */
    struct vhu_device_state_params dstate; /* SET_DEVICE_STATE_FD */
    int want;                              /* 0 or -EBADMSG (with a reason) */
    const char *why_has;                   /* the reason names this */
};

static const struct check_case check_cases[] = {
    /* SET_VRING_NUM: a fixed-size payload and no fds. */
    {"ring 0, 256 entries", VHU_REQ_SET_VRING_NUM, V, 8, .vring = {0, 256}, .want = 0},
    {"NEED_REPLY is a known flag", VHU_REQ_SET_VRING_NUM, V | VHU_FLAG_NEED_REPLY, 8,
     .vring = {0, 256}, .want = 0},
    {"size 4", VHU_REQ_SET_VRING_NUM, V, 4, .vring = {0, 256}, .want = BAD, .why_has = "size 4"},
    {"size 12", VHU_REQ_SET_VRING_NUM, V, 12, .vring = {0, 256}, .want = BAD, .why_has = "size 12"},
    {"size 0", VHU_REQ_SET_VRING_NUM, V, 0, .vring = {0, 256}, .want = BAD},
    {"a stray fd", VHU_REQ_SET_VRING_NUM, V, 8, 1, .vring = {0, 256}, .want = BAD, .why_has = "fd"},
    /* Flags. */
    {"the REPLY flag on a request", VHU_REQ_SET_VRING_NUM, V | VHU_FLAG_REPLY, 8, .want = BAD,
     .why_has = "reply"},
    {"unknown flag 0x10", VHU_REQ_SET_VRING_NUM, V | 0x10, 8, .want = BAD, .why_has = "0x10"},
    {"unknown flag bit 31", VHU_REQ_SET_VRING_NUM, V | 0x80000000u, 8, .want = BAD},
    {"fds truncated", VHU_REQ_SET_VRING_NUM, V, 8, .fds_truncated = true, .want = BAD},
    {"fds truncated, no-payload request", VHU_REQ_SET_OWNER, V, 0, .fds_truncated = true,
     .want = BAD},
    {"no payload, no fds", VHU_REQ_SET_OWNER, V, 0, .want = 0},
    /* Replies. */
    {"a reply without the REPLY flag", VHU_REQ_GET_FEATURES, V, 8, .reply = true, .want = BAD},
    {"a reply", VHU_REQ_GET_FEATURES, V | VHU_FLAG_REPLY, 8, .reply = true, .want = 0},
    {"a reply with unknown flag 0x100", VHU_REQ_GET_FEATURES, V | VHU_FLAG_REPLY | 0x100, 8,
     .reply = true, .want = BAD},
    /* SET_MEM_TABLE: size, region count and fd count agree. */
    {"2 regions, 2 fds", VHU_REQ_SET_MEM_TABLE, V, 8 + 2 * 32, 2, .nregions = 2, .want = 0},
    {"0 regions, size of 2", VHU_REQ_SET_MEM_TABLE, V, 8 + 2 * 32, 2, .nregions = 0, .want = BAD},
    {"0 regions, size 8", VHU_REQ_SET_MEM_TABLE, V, 8, 2, .nregions = 0, .want = BAD},
    /* 9 regions: with the largest size the row allows the check function
     * must catch it; with the size 9 regions would need, the row does. */
    {"9 regions, size of 8", VHU_REQ_SET_MEM_TABLE, V, 8 + 8 * 32, 8, .nregions = 9, .want = BAD,
     .why_has = "9"},
    {"9 regions, size of 9", VHU_REQ_SET_MEM_TABLE, V, 8 + 9 * 32, 8, .nregions = 9, .want = BAD},
    /* 8 + n * 32 wraps in 32 bits. */
    {"0xffffffff regions", VHU_REQ_SET_MEM_TABLE, V, 8 + 8 * 32, 8, .nregions = 0xffffffffu,
     .want = BAD},
    {"0x08000001 regions (* 32 wraps to 32)", VHU_REQ_SET_MEM_TABLE, V, 8 + 32, 1,
     .nregions = 0x08000001u, .want = BAD},
    {"2 regions, size of 3", VHU_REQ_SET_MEM_TABLE, V, 8 + 3 * 32, 2, .nregions = 2, .want = BAD,
     .why_has = "size"},
    {"2 regions, size of 1", VHU_REQ_SET_MEM_TABLE, V, 8 + 1 * 32, 2, .nregions = 2, .want = BAD},
    {"2 regions, a byte more", VHU_REQ_SET_MEM_TABLE, V, 8 + 2 * 32 + 1, 2, .nregions = 2,
     .want = BAD},
    {"2 regions, 1 fd", VHU_REQ_SET_MEM_TABLE, V, 8 + 2 * 32, 1, .nregions = 2, .want = BAD,
     .why_has = "fds"},
    {"2 regions, 3 fds", VHU_REQ_SET_MEM_TABLE, V, 8 + 2 * 32, 3, .nregions = 2, .want = BAD},
    {"2 regions, no fd", VHU_REQ_SET_MEM_TABLE, V, 8 + 2 * 32, 0, .nregions = 2, .want = BAD},
    {"the largest table: 8 regions, 8 fds", VHU_REQ_SET_MEM_TABLE, V, 8 + 8 * 32, 8, .nregions = 8,
     .want = 0},
    /* GET_CONFIG / SET_CONFIG: the message size is the header's 12 bytes
     * plus config.size, at most 256. */
    {"16 bytes", VHU_REQ_GET_CONFIG, V, 12 + 16, .config_size = 16, .want = 0},
    {"16 bytes", VHU_REQ_SET_CONFIG, V, 12 + 16, .config_size = 16, .want = 0},
    {"256 bytes", VHU_REQ_GET_CONFIG, V, 12 + 256, .config_size = 256, .want = 0},
    /* config.size 257, with the largest message the row allows (the check
     * function's job) and with the matching size (the row's). */
    {"257 bytes in a 256-byte message", VHU_REQ_GET_CONFIG, V, 12 + 256, .config_size = 257,
     .want = BAD, .why_has = "257"},
    {"257 bytes in a 256-byte message", VHU_REQ_SET_CONFIG, V, 12 + 256, .config_size = 257,
     .want = BAD},
    {"257 bytes", VHU_REQ_GET_CONFIG, V, 12 + 257, .config_size = 257, .want = BAD},
    /* 12 + config.size wraps. */
    {"config.size 0xffffffff", VHU_REQ_GET_CONFIG, V, 12 + 16, .config_size = 0xffffffffu,
     .want = BAD},
    {"config.size 0xfffffff4", VHU_REQ_GET_CONFIG, V, 12 + 16, .config_size = 0xfffffff4u,
     .want = BAD},
    {"16 bytes in an 8-byte message", VHU_REQ_GET_CONFIG, V, 12 + 8, .config_size = 16, .want = BAD,
     .why_has = "size"},
    {"16 bytes in a 17-byte message", VHU_REQ_GET_CONFIG, V, 12 + 17, .config_size = 16,
     .want = BAD},
    {"16 bytes in a 17-byte message", VHU_REQ_SET_CONFIG, V, 12 + 17, .config_size = 16,
     .want = BAD},
    {"shorter than the config header", VHU_REQ_GET_CONFIG, V, 8, .config_size = 0, .want = BAD},
    /* SET_DEVICE_STATE_FD: exactly one fd. */
    {"no fd", VHU_REQ_SET_DEVICE_STATE_FD, V, 8, 0,
     .dstate = {VHU_TRANSFER_SAVE, VHU_PHASE_STOPPED}, .want = BAD},
    {"one fd", VHU_REQ_SET_DEVICE_STATE_FD, V, 8, 1,
     .dstate = {VHU_TRANSFER_SAVE, VHU_PHASE_STOPPED}, .want = 0},
    {"two fds", VHU_REQ_SET_DEVICE_STATE_FD, V, 8, 2,
     .dstate = {VHU_TRANSFER_SAVE, VHU_PHASE_STOPPED}, .want = BAD},
};

/* SET_VRING_KICK, SET_VRING_CALL and SET_VRING_ERR alike: bits 0-7 the
 * ring, bit 8 "no fd" (then no fd comes, else exactly one), nothing else. */
static const struct {
    const char *what;
    uint64_t u64;
    unsigned nfds;
    uint32_t size;
    int want;
    const char *why_has;
} vring_fd_cases[] = {
    {"ring 1 with an fd", 1, 1, 8, 0, NULL},
    {"the highest ring", 0xff, 1, 8, 0, NULL},
    {"the no-fd bit with an fd", 1 | VHU_VRING_NOFD, 1, 8, BAD, NULL},
    {"reserved bit 9", 1 | 0x200, 1, 8, BAD, "reserved"},
    {"reserved bit 32", 1 | (1ull << 32), 1, 8, BAD, NULL},
    {"two fds", 1, 2, 8, BAD, NULL},
    {"no fd without the bit", 1, 0, 8, BAD, NULL},
    {"no fd with the bit", 1 | VHU_VRING_NOFD, 0, 8, 0, NULL},
    {"no fd with the bit and reserved bit 9", 1 | VHU_VRING_NOFD | 0x200, 0, 8, BAD, NULL},
    {"size 4", 1 | VHU_VRING_NOFD, 0, 4, BAD, NULL},
};

static void fill_regions(struct vhu_wire_msg *m, uint32_t n)
{
    for (uint32_t i = 0; i < n && i < VHU_MEM_TABLE_MAX; i++) {
        m->p.mem.regions[i].guest_phys_addr = (uint64_t)i << 30;
        m->p.mem.regions[i].memory_size = 1u << 20;
        m->p.mem.regions[i].userspace_addr = 0x7f0000000000ull + ((uint64_t)i << 30);
        m->p.mem.regions[i].mmap_offset = 0;
    }
}

/* Check m against code's row: the result must be want, a refusal must give
 * a reason, and the reason must name why_has. */
static void check_gives(uint32_t code, const char *what, const struct vhu_wire_msg *m, bool reply,
                        int want, const char *why_has)
{
    const struct vhu_wire_row *row = vhu_wire_frontend_row(code);
    assert_non_null(row);
    char why[256] = "";
    int r = vhu_wire_check(row, m, !reply, why, sizeof(why));
    if (r != want || (want != 0 && why[0] == '\0') || (why_has && !strstr(why, why_has)))
        fail_msg("%s, %s: vhu_wire_check gave %d (\"%s\"), want %d%s%s%s", row->name, what, r, why,
                 want, why_has ? " naming \"" : "", why_has ? why_has : "", why_has ? "\"" : "");
}

static void test_check_cases(void **state)
{
    (void)state;
    int base = count_fds();
    for (size_t i = 0; i < VHU_ARRAY_SIZE(check_cases); i++) {
        const struct check_case *c = &check_cases[i];
        struct vhu_wire_msg *m = new_msg(c->code, c->flags, c->size);
        switch (c->code) {
        case VHU_REQ_SET_VRING_NUM: m->p.state = c->vring; break;
        case VHU_REQ_SET_MEM_TABLE:
            m->p.mem.nregions = c->nregions;
            fill_regions(m, c->nregions);
            break;
        case VHU_REQ_GET_CONFIG:
        case VHU_REQ_SET_CONFIG:
            m->p.config.offset = 0;
            m->p.config.size = c->config_size;
            break;
        case VHU_REQ_SET_DEVICE_STATE_FD: m->p.dstate = c->dstate; break;
        default: break;
        }
        give_fds(m, c->nfds);
        m->fds_truncated = c->fds_truncated;
        check_gives(c->code, c->what, m, c->reply, c->want, c->why_has);
        drop_msg(m);
    }
    assert_int_equal(count_fds(), base);
}

static void test_check_vring_fd_cases(void **state)
{
    (void)state;
    static const uint32_t codes[] = {VHU_REQ_SET_VRING_KICK, VHU_REQ_SET_VRING_CALL,
                                     VHU_REQ_SET_VRING_ERR};
    int base = count_fds();
    for (size_t k = 0; k < VHU_ARRAY_SIZE(codes); k++) {
        for (size_t i = 0; i < VHU_ARRAY_SIZE(vring_fd_cases); i++) {
            struct vhu_wire_msg *m = new_msg(codes[k], V, vring_fd_cases[i].size);
            m->p.u64 = vring_fd_cases[i].u64;
            give_fds(m, vring_fd_cases[i].nfds);
            check_gives(codes[k], vring_fd_cases[i].what, m, false, vring_fd_cases[i].want,
                        vring_fd_cases[i].why_has);
            drop_msg(m);
        }
    }
    assert_int_equal(count_fds(), base);
}

/* ------------------------------------------------------------------------ */
/* vhu_wire_send / vhu_wire_recv */

static void test_roundtrip_payload_fds(void **state)
{
    (void)state;
    int base = count_fds();
    int sv[2];
    make_pair(sv);
    int efd[2] = {make_eventfd(), make_eventfd()};

    struct vhu_msg_header hdr = {.request = VHU_REQ_SET_MEM_TABLE,
                                 .flags = VHU_FLAG_VERSION | VHU_FLAG_NEED_REPLY,
                                 .size = 8 + 2 * 32};
    struct vhu_mem_table mt;
    memset(&mt, 0, sizeof(mt));
    mt.nregions = 2;
    mt.regions[0].guest_phys_addr = 0;
    mt.regions[0].memory_size = 0x100000;
    mt.regions[0].userspace_addr = 0x7f0000000000ull;
    mt.regions[1].guest_phys_addr = 0x100000000ull;
    mt.regions[1].memory_size = 0x200000;
    mt.regions[1].userspace_addr = 0x7f1000000000ull;
    mt.regions[1].mmap_offset = 0x1000;
    assert_int_equal(vhu_wire_send(sv[0], &hdr, &mt, efd, 2), 0);

    struct vhu_wire_msg *m = new_msg(0, 0, 0);
    memset(m->p.bytes, 0xaa, sizeof(m->p.bytes)); /* stale bytes */
    char why[256] = "";
    assert_int_equal(vhu_wire_recv(sv[1], m, TIMEOUT_MS, why, sizeof(why)), 0);
    assert_int_equal(m->hdr.request, VHU_REQ_SET_MEM_TABLE);
    assert_int_equal(m->hdr.flags, VHU_FLAG_VERSION | VHU_FLAG_NEED_REPLY);
    assert_int_equal(m->hdr.size, 8 + 2 * 32);
    assert_memory_equal(m->p.bytes, &mt, 8 + 2 * 32);
    /* The rest of the payload buffer is zeroed. */
    for (size_t i = 8 + 2 * 32; i < sizeof(m->p.bytes); i++)
        assert_int_equal(m->p.bytes[i], 0);
    assert_int_equal(m->nfds, 2);
    assert_false(m->fds_truncated);
    assert_int_equal(check_req(VHU_REQ_SET_MEM_TABLE, m, why, sizeof(why)), 0);

    /* The received fds are new, open, close-on-exec descriptors of the
     * same eventfds, in order. */
    for (int i = 0; i < 2; i++) {
        assert_true(fd_is_open(m->fds[i]));
        assert_int_not_equal(m->fds[i], efd[0]);
        assert_int_not_equal(m->fds[i], efd[1]);
        assert_true(fcntl(m->fds[i], F_GETFD) & FD_CLOEXEC);
        uint64_t v = 10 + (uint64_t)i, got = 0;
        assert_int_equal(write(m->fds[i], &v, sizeof(v)), sizeof(v));
        assert_int_equal(read(efd[i], &got, sizeof(got)), sizeof(got));
        assert_int_equal(got, v);
        v = 100 + (uint64_t)i;
        assert_int_equal(write(efd[i], &v, sizeof(v)), sizeof(v));
        assert_int_equal(read(m->fds[i], &got, sizeof(got)), sizeof(got));
        assert_int_equal(got, v);
    }
    assert_int_equal(count_fds(), base + 2 + 2 + 2);

    int kept0 = m->fds[0];
    vhu_wire_close_fds(m);
    assert_int_equal(m->nfds, 0);
    assert_false(fd_is_open(kept0));
    close_all(efd, 2);
    close_all(sv, 2);
    free(m);
    assert_int_equal(count_fds(), base);
}

static void test_send_recv_no_payload_and_sequence(void **state)
{
    (void)state;
    int base = count_fds();
    int sv[2];
    make_pair(sv);
    struct vhu_msg_header h1 = {.request = VHU_REQ_SET_OWNER, .flags = VHU_FLAG_VERSION, .size = 0};
    struct vhu_msg_header h2 = {
        .request = VHU_REQ_SET_VRING_NUM, .flags = VHU_FLAG_VERSION, .size = 8};
    struct vhu_vring_state vs = {.index = 1, .num = 512};
    int efd = make_eventfd();
    struct vhu_msg_header h3 = {
        .request = VHU_REQ_SET_VRING_KICK, .flags = VHU_FLAG_VERSION, .size = 8};
    uint64_t kick = 1;
    assert_int_equal(vhu_wire_send(sv[0], &h1, NULL, NULL, 0), 0);
    assert_int_equal(vhu_wire_send(sv[0], &h2, &vs, NULL, 0), 0);
    assert_int_equal(vhu_wire_send(sv[0], &h3, &kick, &efd, 1), 0);
    close(efd);

    struct vhu_wire_msg *m = new_msg(0, 0, 0);
    char why[256];
    assert_int_equal(vhu_wire_recv(sv[1], m, TIMEOUT_MS, why, sizeof(why)), 0);
    assert_int_equal(m->hdr.request, VHU_REQ_SET_OWNER);
    assert_int_equal(m->hdr.size, 0);
    assert_int_equal(m->nfds, 0);
    assert_int_equal(vhu_wire_recv(sv[1], m, TIMEOUT_MS, why, sizeof(why)), 0);
    assert_int_equal(m->hdr.request, VHU_REQ_SET_VRING_NUM);
    assert_int_equal(m->p.state.index, 1);
    assert_int_equal(m->p.state.num, 512);
    assert_int_equal(m->nfds, 0);
    assert_int_equal(vhu_wire_recv(sv[1], m, TIMEOUT_MS, why, sizeof(why)), 0);
    assert_int_equal(m->hdr.request, VHU_REQ_SET_VRING_KICK);
    assert_int_equal(m->p.u64, 1);
    /* The fd arrives with its own message, not an earlier one. */
    assert_int_equal(m->nfds, 1);
    assert_true(fd_is_open(m->fds[0]));
    vhu_wire_close_fds(m);

    /* More than VHU_MAX_FDS is refused by the sender. */
    int many[VHU_MAX_FDS + 1];
    for (unsigned i = 0; i <= VHU_MAX_FDS; i++)
        many[i] = sv[0];
    assert_int_equal(vhu_wire_send(sv[0], &h1, NULL, many, VHU_MAX_FDS + 1), -EINVAL);

    close_all(sv, 2);
    free(m);
    assert_int_equal(count_fds(), base);
}

static void test_header_split_written_before_recv(void **state)
{
    (void)state;
    int base = count_fds();
    int sv[2];
    make_pair(sv);
    unsigned char buf[12 + 8];
    struct vhu_msg_header hdr = {
        .request = VHU_REQ_SET_VRING_BASE, .flags = VHU_FLAG_VERSION, .size = 8};
    struct vhu_vring_state vs = {.index = 2, .num = 77};
    memcpy(buf, &hdr, 12);
    memcpy(buf + 12, &vs, 8);
    assert_int_equal(write(sv[0], buf, 5), 5);
    assert_int_equal(write(sv[0], buf + 5, sizeof(buf) - 5), (ssize_t)(sizeof(buf) - 5));

    struct vhu_wire_msg *m = new_msg(0, 0, 0);
    char why[256];
    assert_int_equal(vhu_wire_recv(sv[1], m, TIMEOUT_MS, why, sizeof(why)), 0);
    assert_int_equal(m->hdr.request, VHU_REQ_SET_VRING_BASE);
    assert_int_equal(m->hdr.size, 8);
    assert_int_equal(m->p.state.index, 2);
    assert_int_equal(m->p.state.num, 77);
    close_all(sv, 2);
    free(m);
    assert_int_equal(count_fds(), base);
}

/* A writer that sends the rest of a message later, so the receiver really
 * sees the header (and payload) arrive in pieces. */
struct late_writer {
    int sock;
    const unsigned char *buf;
    size_t len;
    int fd; /* attached to the first chunk, or -1 */
};

static void *late_writer_main(void *arg)
{
    struct late_writer *w = arg;
    size_t off = 0;
    bool first = true;
    while (off < w->len) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
        size_t n = w->len - off < 4 ? w->len - off : 4;
        union {
            char buf[CMSG_SPACE(sizeof(int))];
            struct cmsghdr align;
        } ctl;
        struct iovec iov = {.iov_base = (void *)(w->buf + off), .iov_len = n};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        if (first && w->fd >= 0)
            vhu_wire_put_fds(&mh, ctl.buf, &w->fd, 1);
        first = false;
        ssize_t r = sendmsg(w->sock, &mh, MSG_NOSIGNAL);
        if (r <= 0)
            return (void *)1;
        off += (size_t)r;
    }
    return NULL;
}

static void test_header_split_trickled(void **state)
{
    (void)state;
    int base = count_fds();
    int sv[2];
    make_pair(sv);
    unsigned char buf[12 + 8];
    struct vhu_msg_header hdr = {
        .request = VHU_REQ_SET_VRING_CALL, .flags = VHU_FLAG_VERSION, .size = 8};
    uint64_t v = 3;
    memcpy(buf, &hdr, 12);
    memcpy(buf + 12, &v, 8);
    int efd = make_eventfd();
    /* 5 bytes now; the remaining 15 in 4-byte pieces, 20 ms apart, the
     * first piece carrying the fd. */
    assert_int_equal(write(sv[0], buf, 5), 5);
    struct late_writer w = {.sock = sv[0], .buf = buf + 5, .len = sizeof(buf) - 5, .fd = efd};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, late_writer_main, &w), 0);

    struct vhu_wire_msg *m = new_msg(0, 0, 0);
    char why[256] = "";
    int r = vhu_wire_recv(sv[1], m, TIMEOUT_MS, why, sizeof(why));
    void *tr;
    pthread_join(t, &tr);
    assert_null(tr);
    assert_int_equal(r, 0);
    assert_int_equal(m->hdr.request, VHU_REQ_SET_VRING_CALL);
    assert_int_equal(m->hdr.size, 8);
    assert_int_equal(m->p.u64, 3);
    assert_int_equal(m->nfds, 1);
    assert_true(fd_is_open(m->fds[0]));
    assert_int_equal(check_req(VHU_REQ_SET_VRING_CALL, m, why, sizeof(why)), 0);
    vhu_wire_close_fds(m);
    close(efd);
    close_all(sv, 2);
    free(m);
    assert_int_equal(count_fds(), base);
}

/* Framing errors: what a peer writes (part of a header, a header, part of
 * a payload, with fds on either), whether it then hangs up, and the error
 * vhu_wire_recv must give, every fd that came with it closed. */
struct recv_case {
    const char *what;
    struct vhu_msg_header hdr;
    size_t hdr_bytes;     /* bytes of hdr written */
    unsigned hdr_fds;     /* eventfds sent with them */
    size_t payload_bytes; /* payload bytes after the header: in the same write... */
    unsigned payload_fds; /* ...unless they carry fds of their own */
    bool eof;             /* the peer hangs up afterwards */
    int timeout_ms;
    int want;
};

#define HDR(req, fl, sz)                                                                           \
    {                                                                                              \
        .request = (req), .flags = (fl), .size = (sz)                                              \
    }

static const struct recv_case recv_cases[] = {
    {"EOF before any byte", HDR(0, 0, 0), 0, 0, 0, 0, true, TIMEOUT_MS, -ECONNRESET},
    {"5 bytes of a header, then EOF", HDR(VHU_REQ_SET_OWNER, V, 0), 5, 0, 0, 0, true, TIMEOUT_MS,
     -EPROTO},
    {"7 bytes of a header with 2 fds, then EOF", HDR(VHU_REQ_SET_OWNER, V, 0), 7, 2, 0, 0, true,
     TIMEOUT_MS, -EPROTO},
    {"size one over the largest payload", HDR(VHU_REQ_SET_CONFIG, V, VHU_WIRE_MAX_PAYLOAD + 1), 12,
     0, 0, 0, false, TIMEOUT_MS, -EMSGSIZE},
    {"size 0xffffffff", HDR(VHU_REQ_SET_CONFIG, V, 0xffffffffu), 12, 0, 0, 0, false, TIMEOUT_MS,
     -EMSGSIZE},
    {"size 1 MiB with 2 fds", HDR(VHU_REQ_SET_MEM_TABLE, V, 1u << 20), 12, 2, 0, 0, false,
     TIMEOUT_MS, -EMSGSIZE},
    {"version 0", HDR(VHU_REQ_SET_OWNER, 0, 0), 12, 0, 0, 0, false, TIMEOUT_MS, -EPROTO},
    {"version 2", HDR(VHU_REQ_SET_OWNER, 2, 0), 12, 0, 0, 0, false, TIMEOUT_MS, -EPROTO},
    {"version 3", HDR(VHU_REQ_SET_OWNER, 3, 0), 12, 0, 0, 0, false, TIMEOUT_MS, -EPROTO},
    {"version 2 with 2 fds", HDR(VHU_REQ_SET_MEM_TABLE, 2 | VHU_FLAG_NEED_REPLY, 0), 12, 2, 0, 0,
     false, TIMEOUT_MS, -EPROTO},
    {"3 of 8 payload bytes, then EOF", HDR(VHU_REQ_SET_VRING_NUM, V, 8), 12, 0, 3, 0, true,
     TIMEOUT_MS, -EPROTO},
    {"an fd with the header, 3 payload bytes with 2 more, then EOF",
     HDR(VHU_REQ_SET_VRING_KICK, V, 8), 12, 1, 3, 2, true, TIMEOUT_MS, -EPROTO},
    {"3 of 8 payload bytes and an fd, then nothing", HDR(VHU_REQ_SET_VRING_NUM, V, 8), 12, 1, 3, 0,
     false, 50, -ETIMEDOUT},
    {"5 bytes of a header, then nothing", HDR(VHU_REQ_SET_OWNER, V, 0), 5, 0, 0, 0, false, 50,
     -ETIMEDOUT},
};

static void test_recv_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < VHU_ARRAY_SIZE(recv_cases); i++) {
        const struct recv_case *c = &recv_cases[i];
        int sv[2];
        make_pair(sv);
        unsigned char buf[sizeof(c->hdr) + 8];
        int efd[4];
        unsigned nfds = c->hdr_fds + c->payload_fds;
        assert_true(nfds <= 4 && c->hdr_bytes <= sizeof(c->hdr) && c->payload_bytes <= 8);
        for (unsigned k = 0; k < nfds; k++)
            efd[k] = make_eventfd();
        memcpy(buf, &c->hdr, sizeof(c->hdr));
        memset(buf + sizeof(c->hdr), 0x11, 8);
        size_t first = c->hdr_bytes + (c->payload_fds ? 0 : c->payload_bytes);
        if (first)
            send_raw(sv[0], buf, first, efd, c->hdr_fds);
        if (c->payload_fds)
            send_raw(sv[0], buf + c->hdr_bytes, c->payload_bytes, efd + c->hdr_fds, c->payload_fds);
        close_all(efd, nfds);
        if (c->eof)
            close_all(sv, 1);
        int base = count_fds();
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        struct vhu_wire_msg *m = new_msg(0, 0, 0);
        char why[256] = "";
        int r = vhu_wire_recv(sv[1], m, c->timeout_ms, why, sizeof(why));
        long ms = elapsed_ms(&t0);
        if (r != c->want || why[0] == '\0' || m->nfds != 0 || count_fds() != base)
            fail_msg("%s: vhu_wire_recv gave %d (\"%s\", %u fds kept, %d fds open, %d before), "
                     "want %d",
                     c->what, r, why, m->nfds, count_fds(), base, c->want);
        if (c->want == -ETIMEDOUT && (ms < c->timeout_ms - 10 || ms >= 1500))
            fail_msg("%s: timed out after %ld ms, for a timeout of %d ms", c->what, ms,
                     c->timeout_ms);
        free(m);
        close_all(sv, 2);
    }
}

/* The largest payload is still framed. */
static void test_recv_largest_payload(void **state)
{
    (void)state;
    int base = count_fds();
    static unsigned char payload[VHU_WIRE_MAX_PAYLOAD];
    struct vhu_msg_header hdr = HDR(VHU_REQ_SET_CONFIG, V, VHU_WIRE_MAX_PAYLOAD);
    struct vhu_wire_msg *m = new_msg(0, 0, 0);
    char why[256];
    int sv[2];
    make_pair(sv);
    assert_int_equal(vhu_wire_send(sv[0], &hdr, payload, NULL, 0), 0);
    assert_int_equal(vhu_wire_recv(sv[1], m, TIMEOUT_MS, why, sizeof(why)), 0);
    assert_int_equal(m->hdr.size, VHU_WIRE_MAX_PAYLOAD);
    close_all(sv, 2);
    free(m);
    assert_int_equal(count_fds(), base);
}

static void send_owner_with_n_fds(unsigned n)
{
    int base = count_fds();
    int sv[2];
    make_pair(sv);
    int efd[32];
    assert_true(n <= 32);
    for (unsigned i = 0; i < n; i++)
        efd[i] = make_eventfd();
    struct vhu_msg_header hdr = {
        .request = VHU_REQ_SET_OWNER, .flags = VHU_FLAG_VERSION, .size = 0};
    send_raw(sv[0], &hdr, sizeof(hdr), efd, n);
    close_all(efd, n);
    assert_int_equal(count_fds(), base + 2);

    struct vhu_wire_msg *m = new_msg(0, 0, 0);
    char why[256] = "";
    assert_int_equal(vhu_wire_recv(sv[1], m, TIMEOUT_MS, why, sizeof(why)), 0);
    assert_int_equal(m->hdr.request, VHU_REQ_SET_OWNER);
    assert_true(m->fds_truncated);
    assert_true(m->nfds <= VHU_MAX_FDS);
    for (unsigned i = 0; i < m->nfds; i++)
        assert_true(fd_is_open(m->fds[i]));
    /* Exactly the fds m holds are open: the extra ones were closed. */
    assert_int_equal(count_fds(), base + 2 + (int)m->nfds);
    /* And the check refuses the message. */
    assert_int_equal(check_req(VHU_REQ_SET_OWNER, m, why, sizeof(why)), -EBADMSG);
    vhu_wire_close_fds(m);
    assert_int_equal(m->nfds, 0);
    assert_int_equal(count_fds(), base + 2);

    /* The stream is still in sync: a following message frames fine. */
    struct vhu_msg_header h2 = {.request = VHU_REQ_GET_FEATURES, .flags = VHU_FLAG_VERSION};
    assert_int_equal(vhu_wire_send(sv[0], &h2, NULL, NULL, 0), 0);
    assert_int_equal(vhu_wire_recv(sv[1], m, TIMEOUT_MS, why, sizeof(why)), 0);
    assert_int_equal(m->hdr.request, VHU_REQ_GET_FEATURES);
    assert_false(m->fds_truncated);
    assert_int_equal(m->nfds, 0);

    close_all(sv, 2);
    free(m);
    assert_int_equal(count_fds(), base);
}

static void test_recv_nine_fds(void **state)
{
    (void)state;
    send_owner_with_n_fds(9);
}

static void test_recv_many_fds(void **state)
{
    (void)state;
    send_owner_with_n_fds(20);
}

static void test_recv_eight_fds_not_truncated(void **state)
{
    (void)state;
    int base = count_fds();
    int sv[2];
    make_pair(sv);
    int efd[8];
    for (unsigned i = 0; i < 8; i++)
        efd[i] = make_eventfd();
    struct vhu_msg_header hdr = {.request = VHU_REQ_SET_OWNER, .flags = VHU_FLAG_VERSION};
    send_raw(sv[0], &hdr, sizeof(hdr), efd, 8);
    close_all(efd, 8);
    struct vhu_wire_msg *m = new_msg(0, 0, 0);
    char why[256];
    assert_int_equal(vhu_wire_recv(sv[1], m, TIMEOUT_MS, why, sizeof(why)), 0);
    assert_false(m->fds_truncated);
    assert_int_equal(m->nfds, 8);
    assert_int_equal(count_fds(), base + 2 + 8);
    vhu_wire_close_fds(m);
    close_all(sv, 2);
    free(m);
    assert_int_equal(count_fds(), base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frontend_table_complete),
        cmocka_unit_test(test_backend_table_complete),
        cmocka_unit_test(test_table_spot_checks),
        cmocka_unit_test(test_request_names),
        cmocka_unit_test(test_protocol_feature_names),
        cmocka_unit_test(test_check_cases),
        cmocka_unit_test(test_check_vring_fd_cases),
        cmocka_unit_test(test_roundtrip_payload_fds),
        cmocka_unit_test(test_send_recv_no_payload_and_sequence),
        cmocka_unit_test(test_header_split_written_before_recv),
        cmocka_unit_test(test_header_split_trickled),
        cmocka_unit_test(test_recv_errors),
        cmocka_unit_test(test_recv_largest_payload),
        cmocka_unit_test(test_recv_nine_fds),
        cmocka_unit_test(test_recv_many_fds),
        cmocka_unit_test(test_recv_eight_fds_not_truncated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
