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

static bool fd_is_open(int fd)
{
    return fd >= 0 && fcntl(fd, F_GETFD) >= 0;
}

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
    if (nfds) {
        memset(&ctl, 0, sizeof(ctl));
        mh.msg_control = ctl.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
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

/* Receive on sock and expect error `want`, a `why`, no fds left in m, and
 * no fd leaked compared to base (which counts the socketpair). */
static void expect_recv_error(int sock, int want, int timeout_ms, int base)
{
    struct vhu_wire_msg *m = new_msg(0, 0, 0);
    char why[256] = "";
    int r = vhu_wire_recv(sock, m, timeout_ms, why, sizeof(why));
    assert_int_equal(r, want);
    assert_true(why[0] != '\0');
    assert_int_equal(m->nfds, 0);
    assert_int_equal(count_fds(), base);
    free(m);
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

static void test_table_spot_checks(void **state)
{
    (void)state;
    const struct vhu_wire_row *r;

    r = vhu_wire_frontend_row(VHU_REQ_SET_MEM_TABLE);
    assert_string_equal(r->name, "SET_MEM_TABLE");
    assert_int_equal(r->fds_min, 1);
    assert_int_equal(r->fds_max, 8);
    assert_int_equal(r->size_min, 8);
    assert_int_equal(r->size_max, 8 + 8 * 32);
    assert_non_null(r->check);

    r = vhu_wire_frontend_row(VHU_REQ_SET_VRING_KICK);
    assert_string_equal(r->name, "SET_VRING_KICK");
    assert_int_equal(r->size_min, 8);
    assert_int_equal(r->size_max, 8);
    assert_int_equal(r->fds_min, 0);
    assert_int_equal(r->fds_max, 1);
    assert_non_null(r->check);

    r = vhu_wire_frontend_row(VHU_REQ_GET_CONFIG);
    assert_string_equal(r->name, "GET_CONFIG");
    assert_int_equal(r->reply, VHU_WIRE_REPLY_DATA);
    assert_int_equal(r->gate, VHU_PF_CONFIG);
    assert_int_equal(r->size_min, VHU_CONFIG_HDR_SIZE);
    assert_int_equal(r->size_max, VHU_CONFIG_HDR_SIZE + VHU_MAX_CONFIG_SIZE);
    assert_non_null(r->check);

    r = vhu_wire_frontend_row(VHU_REQ_SET_DEVICE_STATE_FD);
    assert_string_equal(r->name, "SET_DEVICE_STATE_FD");
    assert_int_equal(r->fds_min, 1);
    assert_int_equal(r->fds_max, 1);
    assert_int_equal(r->size_min, 8);
    assert_int_equal(r->size_max, 8);
    assert_int_equal(r->reply, VHU_WIRE_REPLY_STATUS);
    assert_int_equal(r->gate, VHU_PF_DEVICE_STATE);

    r = vhu_wire_frontend_row(VHU_REQ_SET_VRING_ENABLE);
    assert_string_equal(r->name, "SET_VRING_ENABLE");
    assert_int_equal(r->gate, VHU_WIRE_GATE_F_PROTOCOL_FEATURES);
    assert_int_equal(r->size_min, 8);
    assert_int_equal(r->size_max, 8);

    r = vhu_wire_frontend_row(VHU_REQ_GET_FEATURES);
    assert_int_equal(r->size_max, 0);
    assert_int_equal(r->reply, VHU_WIRE_REPLY_DATA);
    assert_int_equal(r->reply_size, 8);

    r = vhu_wire_frontend_row(VHU_REQ_SET_VRING_ADDR);
    assert_int_equal(r->size_min, 40);
    assert_int_equal(r->size_max, 40);

    r = vhu_wire_frontend_row(VHU_REQ_GET_QUEUE_NUM);
    assert_int_equal(r->gate, VHU_PF_MQ);

    assert_string_equal(vhu_request_name(12), "SET_VRING_KICK");
    assert_string_equal(vhu_request_name(1), "GET_FEATURES");
    assert_string_equal(vhu_request_name(43), "CHECK_DEVICE_STATE");
    assert_string_equal(vhu_request_name(999), "UNKNOWN");
    assert_string_equal(vhu_request_name(0), "UNKNOWN");
    assert_string_equal(vhu_backend_request_name(2), "BACKEND_CONFIG_CHANGE_MSG");
    assert_string_equal(vhu_backend_request_name(0), "UNKNOWN");
    assert_string_equal(vhu_backend_request_name(11), "UNKNOWN");
}

/* ------------------------------------------------------------------------ */
/* vhu_wire_check */

static void test_check_vring_num(void **state)
{
    (void)state;
    char why[256];
    struct vhu_wire_msg *m = new_msg(VHU_REQ_SET_VRING_NUM, VHU_FLAG_VERSION, 8);
    m->p.state.index = 0;
    m->p.state.num = 256;
    assert_int_equal(check_req(VHU_REQ_SET_VRING_NUM, m, why, sizeof(why)), 0);

    /* NEED_REPLY is a known flag. */
    m->hdr.flags = VHU_FLAG_VERSION | VHU_FLAG_NEED_REPLY;
    assert_int_equal(check_req(VHU_REQ_SET_VRING_NUM, m, why, sizeof(why)), 0);
    m->hdr.flags = VHU_FLAG_VERSION;

    m->hdr.size = 4;
    assert_int_equal(check_req(VHU_REQ_SET_VRING_NUM, m, why, sizeof(why)), -EBADMSG);
    assert_non_null(strstr(why, "size 4"));

    m->hdr.size = 12;
    assert_int_equal(check_req(VHU_REQ_SET_VRING_NUM, m, why, sizeof(why)), -EBADMSG);
    assert_non_null(strstr(why, "size 12"));

    m->hdr.size = 0;
    assert_int_equal(check_req(VHU_REQ_SET_VRING_NUM, m, why, sizeof(why)), -EBADMSG);
    m->hdr.size = 8;

    /* A stray fd on a no-fd request. */
    give_fds(m, 1);
    assert_int_equal(check_req(VHU_REQ_SET_VRING_NUM, m, why, sizeof(why)), -EBADMSG);
    assert_non_null(strstr(why, "fd"));
    drop_msg(m);
}

static void test_check_flags(void **state)
{
    (void)state;
    char why[256];
    struct vhu_wire_msg *m = new_msg(VHU_REQ_SET_VRING_NUM, VHU_FLAG_VERSION, 8);

    m->hdr.flags = VHU_FLAG_VERSION | VHU_FLAG_REPLY;
    assert_int_equal(check_req(VHU_REQ_SET_VRING_NUM, m, why, sizeof(why)), -EBADMSG);
    assert_non_null(strstr(why, "reply"));

    m->hdr.flags = VHU_FLAG_VERSION | 0x10;
    assert_int_equal(check_req(VHU_REQ_SET_VRING_NUM, m, why, sizeof(why)), -EBADMSG);
    assert_non_null(strstr(why, "0x10"));

    m->hdr.flags = VHU_FLAG_VERSION | 0x80000000u;
    assert_int_equal(check_req(VHU_REQ_SET_VRING_NUM, m, why, sizeof(why)), -EBADMSG);

    m->hdr.flags = VHU_FLAG_VERSION;
    m->fds_truncated = true;
    assert_int_equal(check_req(VHU_REQ_SET_VRING_NUM, m, why, sizeof(why)), -EBADMSG);
    assert_true(why[0] != '\0');

    /* Also on a request that takes fds. */
    m->hdr.request = VHU_REQ_SET_OWNER;
    m->hdr.size = 0;
    assert_int_equal(check_req(VHU_REQ_SET_OWNER, m, why, sizeof(why)), -EBADMSG);
    m->fds_truncated = false;
    assert_int_equal(check_req(VHU_REQ_SET_OWNER, m, why, sizeof(why)), 0);
    drop_msg(m);
}

static void test_check_reply(void **state)
{
    (void)state;
    char why[256] = "";
    const struct vhu_wire_row *row = vhu_wire_frontend_row(VHU_REQ_GET_FEATURES);
    struct vhu_wire_msg *m = new_msg(VHU_REQ_GET_FEATURES, VHU_FLAG_VERSION, 8);
    assert_int_equal(vhu_wire_check(row, m, false, why, sizeof(why)), -EBADMSG);
    assert_true(why[0] != '\0');

    m->hdr.flags = VHU_FLAG_VERSION | VHU_FLAG_REPLY;
    assert_int_equal(vhu_wire_check(row, m, false, why, sizeof(why)), 0);

    /* Unknown flag bits are refused on replies too. */
    m->hdr.flags = VHU_FLAG_VERSION | VHU_FLAG_REPLY | 0x100;
    assert_int_equal(vhu_wire_check(row, m, false, why, sizeof(why)), -EBADMSG);
    drop_msg(m);
}

static void fill_regions(struct vhu_wire_msg *m, uint32_t n)
{
    for (uint32_t i = 0; i < n && i < VHU_MEM_TABLE_MAX; i++) {
        m->p.mem.regions[i].guest_phys_addr = (uint64_t)i << 30;
        m->p.mem.regions[i].memory_size = 1u << 20;
        m->p.mem.regions[i].userspace_addr = 0x7f0000000000ull + ((uint64_t)i << 30);
        m->p.mem.regions[i].mmap_offset = 0;
    }
}

static void test_check_mem_table(void **state)
{
    (void)state;
    char why[256];
    int base = count_fds();
    struct vhu_wire_msg *m = new_msg(VHU_REQ_SET_MEM_TABLE, VHU_FLAG_VERSION, 8 + 2 * 32);
    m->p.mem.nregions = 2;
    fill_regions(m, 2);
    give_fds(m, 2);
    assert_int_equal(check_req(VHU_REQ_SET_MEM_TABLE, m, why, sizeof(why)), 0);

    /* nregions 0 (with a plausible size and one fd). */
    m->p.mem.nregions = 0;
    assert_int_equal(check_req(VHU_REQ_SET_MEM_TABLE, m, why, sizeof(why)), -EBADMSG);
    m->hdr.size = 8;
    assert_int_equal(check_req(VHU_REQ_SET_MEM_TABLE, m, why, sizeof(why)), -EBADMSG);

    /* nregions 9: with the largest size the row allows, the check function
     * must catch it; with the size 9 regions would need, the row does. */
    vhu_wire_close_fds(m);
    give_fds(m, 8);
    m->p.mem.nregions = 9;
    m->hdr.size = 8 + 8 * 32;
    assert_int_equal(check_req(VHU_REQ_SET_MEM_TABLE, m, why, sizeof(why)), -EBADMSG);
    assert_non_null(strstr(why, "9"));
    m->hdr.size = 8 + 9 * 32;
    assert_int_equal(check_req(VHU_REQ_SET_MEM_TABLE, m, why, sizeof(why)), -EBADMSG);

    /* nregions 0xFFFFFFFF: 8 + n * 32 wraps in 32 bits. */
    m->p.mem.nregions = 0xffffffffu;
    m->hdr.size = 8 + 8 * 32;
    assert_int_equal(check_req(VHU_REQ_SET_MEM_TABLE, m, why, sizeof(why)), -EBADMSG);
    m->p.mem.nregions = 0x08000001u; /* * 32 wraps to 32: looks like 1 region */
    m->hdr.size = 8 + 32;
    vhu_wire_close_fds(m);
    give_fds(m, 1);
    assert_int_equal(check_req(VHU_REQ_SET_MEM_TABLE, m, why, sizeof(why)), -EBADMSG);

    /* Size does not match 8 + n * 32. */
    vhu_wire_close_fds(m);
    give_fds(m, 2);
    m->p.mem.nregions = 2;
    m->hdr.size = 8 + 3 * 32;
    assert_int_equal(check_req(VHU_REQ_SET_MEM_TABLE, m, why, sizeof(why)), -EBADMSG);
    assert_non_null(strstr(why, "size"));
    m->hdr.size = 8 + 1 * 32;
    assert_int_equal(check_req(VHU_REQ_SET_MEM_TABLE, m, why, sizeof(why)), -EBADMSG);
    m->hdr.size = 8 + 2 * 32 + 1;
    assert_int_equal(check_req(VHU_REQ_SET_MEM_TABLE, m, why, sizeof(why)), -EBADMSG);
    m->hdr.size = 8 + 2 * 32;
    assert_int_equal(check_req(VHU_REQ_SET_MEM_TABLE, m, why, sizeof(why)), 0);

    /* fd count != nregions. */
    vhu_wire_close_fds(m);
    give_fds(m, 1);
    assert_int_equal(check_req(VHU_REQ_SET_MEM_TABLE, m, why, sizeof(why)), -EBADMSG);
    assert_non_null(strstr(why, "fds"));
    vhu_wire_close_fds(m);
    give_fds(m, 3);
    assert_int_equal(check_req(VHU_REQ_SET_MEM_TABLE, m, why, sizeof(why)), -EBADMSG);
    vhu_wire_close_fds(m);
    assert_int_equal(check_req(VHU_REQ_SET_MEM_TABLE, m, why, sizeof(why)), -EBADMSG);

    /* The largest table: 8 regions, 8 fds. */
    give_fds(m, 8);
    m->p.mem.nregions = 8;
    fill_regions(m, 8);
    m->hdr.size = 8 + 8 * 32;
    assert_int_equal(check_req(VHU_REQ_SET_MEM_TABLE, m, why, sizeof(why)), 0);

    drop_msg(m);
    assert_int_equal(count_fds(), base);
}

static void check_vring_fd_rules(uint32_t code)
{
    char why[256];
    struct vhu_wire_msg *m = new_msg(code, VHU_FLAG_VERSION, 8);

    /* Index 1 with an fd: good. */
    m->p.u64 = 1;
    give_fds(m, 1);
    assert_int_equal(check_req(code, m, why, sizeof(why)), 0);
    /* Highest index. */
    m->p.u64 = 0xff;
    assert_int_equal(check_req(code, m, why, sizeof(why)), 0);

    /* No-fd bit with an fd. */
    m->p.u64 = 1 | VHU_VRING_NOFD;
    assert_int_equal(check_req(code, m, why, sizeof(why)), -EBADMSG);
    assert_true(why[0] != '\0');

    /* Reserved bits, with or without an fd. */
    m->p.u64 = 1 | 0x200;
    assert_int_equal(check_req(code, m, why, sizeof(why)), -EBADMSG);
    assert_non_null(strstr(why, "reserved"));
    m->p.u64 = 1 | (1ull << 32);
    assert_int_equal(check_req(code, m, why, sizeof(why)), -EBADMSG);

    /* Two fds: over the row's maximum. */
    vhu_wire_close_fds(m);
    give_fds(m, 2);
    m->p.u64 = 1;
    assert_int_equal(check_req(code, m, why, sizeof(why)), -EBADMSG);

    /* No fd without the bit. */
    vhu_wire_close_fds(m);
    m->p.u64 = 1;
    assert_int_equal(check_req(code, m, why, sizeof(why)), -EBADMSG);
    assert_true(why[0] != '\0');

    /* No fd with the bit: good. */
    m->p.u64 = 1 | VHU_VRING_NOFD;
    assert_int_equal(check_req(code, m, why, sizeof(why)), 0);
    m->p.u64 = 1 | VHU_VRING_NOFD | 0x200;
    assert_int_equal(check_req(code, m, why, sizeof(why)), -EBADMSG);

    /* Wrong size. */
    m->p.u64 = 1 | VHU_VRING_NOFD;
    m->hdr.size = 4;
    assert_int_equal(check_req(code, m, why, sizeof(why)), -EBADMSG);
    drop_msg(m);
}

static void test_check_vring_kick_call(void **state)
{
    (void)state;
    int base = count_fds();
    check_vring_fd_rules(VHU_REQ_SET_VRING_KICK);
    check_vring_fd_rules(VHU_REQ_SET_VRING_CALL);
    check_vring_fd_rules(VHU_REQ_SET_VRING_ERR);
    assert_int_equal(count_fds(), base);
}

static void test_check_config(void **state)
{
    (void)state;
    char why[256];
    struct vhu_wire_msg *m = new_msg(VHU_REQ_GET_CONFIG, VHU_FLAG_VERSION, 12 + 16);
    m->p.config.offset = 0;
    m->p.config.size = 16;
    assert_int_equal(check_req(VHU_REQ_GET_CONFIG, m, why, sizeof(why)), 0);
    assert_int_equal(check_req(VHU_REQ_SET_CONFIG, m, why, sizeof(why)), 0);

    m->p.config.size = 256;
    m->hdr.size = 12 + 256;
    assert_int_equal(check_req(VHU_REQ_GET_CONFIG, m, why, sizeof(why)), 0);

    /* config.size 257, with the largest message the row allows (the check
     * function's job) and with the matching size (the row's). */
    m->p.config.size = 257;
    m->hdr.size = 12 + 256;
    assert_int_equal(check_req(VHU_REQ_GET_CONFIG, m, why, sizeof(why)), -EBADMSG);
    assert_non_null(strstr(why, "257"));
    assert_int_equal(check_req(VHU_REQ_SET_CONFIG, m, why, sizeof(why)), -EBADMSG);
    m->hdr.size = 12 + 257;
    assert_int_equal(check_req(VHU_REQ_GET_CONFIG, m, why, sizeof(why)), -EBADMSG);

    /* A huge config.size (12 + size wraps). */
    m->p.config.size = 0xffffffffu;
    m->hdr.size = 12 + 16;
    assert_int_equal(check_req(VHU_REQ_GET_CONFIG, m, why, sizeof(why)), -EBADMSG);
    m->p.config.size = 0xfffffff4u;
    assert_int_equal(check_req(VHU_REQ_GET_CONFIG, m, why, sizeof(why)), -EBADMSG);

    /* Message size not matching 12 + config.size. */
    m->p.config.size = 16;
    m->hdr.size = 12 + 8;
    assert_int_equal(check_req(VHU_REQ_GET_CONFIG, m, why, sizeof(why)), -EBADMSG);
    assert_non_null(strstr(why, "size"));
    m->hdr.size = 12 + 17;
    assert_int_equal(check_req(VHU_REQ_GET_CONFIG, m, why, sizeof(why)), -EBADMSG);
    assert_int_equal(check_req(VHU_REQ_SET_CONFIG, m, why, sizeof(why)), -EBADMSG);

    /* Shorter than the config header. */
    m->p.config.size = 0;
    m->hdr.size = 8;
    assert_int_equal(check_req(VHU_REQ_GET_CONFIG, m, why, sizeof(why)), -EBADMSG);
    drop_msg(m);
}

static void test_check_one_fd_rows(void **state)
{
    (void)state;
    char why[256];
    int base = count_fds();
    struct vhu_wire_msg *m = new_msg(VHU_REQ_SET_DEVICE_STATE_FD, VHU_FLAG_VERSION, 8);
    m->p.dstate.direction = VHU_TRANSFER_SAVE;
    m->p.dstate.phase = VHU_PHASE_STOPPED;
    assert_int_equal(check_req(VHU_REQ_SET_DEVICE_STATE_FD, m, why, sizeof(why)), -EBADMSG);
    give_fds(m, 1);
    assert_int_equal(check_req(VHU_REQ_SET_DEVICE_STATE_FD, m, why, sizeof(why)), 0);
    vhu_wire_close_fds(m);
    give_fds(m, 2);
    assert_int_equal(check_req(VHU_REQ_SET_DEVICE_STATE_FD, m, why, sizeof(why)), -EBADMSG);
    drop_msg(m);
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
    struct vhu_msg_header h2 = {.request = VHU_REQ_SET_VRING_NUM, .flags = VHU_FLAG_VERSION,
                                .size = 8};
    struct vhu_vring_state vs = {.index = 1, .num = 512};
    int efd = make_eventfd();
    struct vhu_msg_header h3 = {.request = VHU_REQ_SET_VRING_KICK, .flags = VHU_FLAG_VERSION,
                                .size = 8};
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
    struct vhu_msg_header hdr = {.request = VHU_REQ_SET_VRING_BASE, .flags = VHU_FLAG_VERSION,
                                 .size = 8};
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
        if (first && w->fd >= 0) {
            memset(&ctl, 0, sizeof(ctl));
            mh.msg_control = ctl.buf;
            mh.msg_controllen = sizeof(ctl.buf);
            struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(c), &w->fd, sizeof(int));
        }
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
    struct vhu_msg_header hdr = {.request = VHU_REQ_SET_VRING_CALL, .flags = VHU_FLAG_VERSION,
                                 .size = 8};
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

static void test_recv_eof_before_any_byte(void **state)
{
    (void)state;
    int sv[2];
    make_pair(sv);
    close(sv[0]);
    int base = count_fds();
    expect_recv_error(sv[1], -ECONNRESET, TIMEOUT_MS, base);
    close(sv[1]);
}

static void test_recv_truncated_header(void **state)
{
    (void)state;
    int sv[2];
    make_pair(sv);
    struct vhu_msg_header hdr = {.request = VHU_REQ_SET_OWNER, .flags = VHU_FLAG_VERSION};
    assert_int_equal(write(sv[0], &hdr, 5), 5);
    close(sv[0]);
    int base = count_fds();
    expect_recv_error(sv[1], -EPROTO, TIMEOUT_MS, base);
    close(sv[1]);
}

static void test_recv_truncated_header_with_fds(void **state)
{
    (void)state;
    int sv[2];
    make_pair(sv);
    int efd[2] = {make_eventfd(), make_eventfd()};
    struct vhu_msg_header hdr = {.request = VHU_REQ_SET_OWNER, .flags = VHU_FLAG_VERSION};
    send_raw(sv[0], &hdr, 7, efd, 2);
    close_all(efd, 2);
    close(sv[0]);
    int base = count_fds();
    expect_recv_error(sv[1], -EPROTO, TIMEOUT_MS, base);
    close(sv[1]);
}

static void test_recv_oversize(void **state)
{
    (void)state;
    int sv[2];
    make_pair(sv);
    struct vhu_msg_header hdr = {.request = VHU_REQ_SET_CONFIG, .flags = VHU_FLAG_VERSION,
                                 .size = VHU_WIRE_MAX_PAYLOAD + 1};
    assert_int_equal(write(sv[0], &hdr, sizeof(hdr)), sizeof(hdr));
    int base = count_fds();
    expect_recv_error(sv[1], -EMSGSIZE, TIMEOUT_MS, base);

    /* The largest size is still framed. */
    static unsigned char payload[VHU_WIRE_MAX_PAYLOAD];
    hdr.size = VHU_WIRE_MAX_PAYLOAD;
    struct vhu_wire_msg *m = new_msg(0, 0, 0);
    char why[256];
    int s2[2];
    make_pair(s2);
    assert_int_equal(vhu_wire_send(s2[0], &hdr, payload, NULL, 0), 0);
    assert_int_equal(vhu_wire_recv(s2[1], m, TIMEOUT_MS, why, sizeof(why)), 0);
    assert_int_equal(m->hdr.size, VHU_WIRE_MAX_PAYLOAD);
    close_all(s2, 2);
    free(m);

    hdr.size = 0xffffffffu;
    int s3[2];
    make_pair(s3);
    assert_int_equal(write(s3[0], &hdr, sizeof(hdr)), sizeof(hdr));
    expect_recv_error(s3[1], -EMSGSIZE, TIMEOUT_MS, base + 2);
    close_all(s3, 2);
    close_all(sv, 2);
}

static void test_recv_oversize_with_fds(void **state)
{
    (void)state;
    int sv[2];
    make_pair(sv);
    int efd[2] = {make_eventfd(), make_eventfd()};
    struct vhu_msg_header hdr = {.request = VHU_REQ_SET_MEM_TABLE, .flags = VHU_FLAG_VERSION,
                                 .size = 1u << 20};
    send_raw(sv[0], &hdr, sizeof(hdr), efd, 2);
    close_all(efd, 2);
    int base = count_fds();
    expect_recv_error(sv[1], -EMSGSIZE, TIMEOUT_MS, base);
    close_all(sv, 2);
}

static void test_recv_bad_version(void **state)
{
    (void)state;
    int sv[2];
    make_pair(sv);
    int base = count_fds();
    uint32_t versions[] = {0, 2, 3};
    for (unsigned i = 0; i < 3; i++) {
        struct vhu_msg_header hdr = {.request = VHU_REQ_SET_OWNER, .flags = versions[i]};
        assert_int_equal(write(sv[0], &hdr, sizeof(hdr)), sizeof(hdr));
        expect_recv_error(sv[1], -EPROTO, TIMEOUT_MS, base);
    }
    /* With fds attached. */
    int efd[2] = {make_eventfd(), make_eventfd()};
    struct vhu_msg_header hdr = {.request = VHU_REQ_SET_MEM_TABLE,
                                 .flags = 2 | VHU_FLAG_NEED_REPLY, .size = 0};
    send_raw(sv[0], &hdr, sizeof(hdr), efd, 2);
    close_all(efd, 2);
    expect_recv_error(sv[1], -EPROTO, TIMEOUT_MS, base);
    close_all(sv, 2);
}

static void test_recv_truncated_payload(void **state)
{
    (void)state;
    int sv[2];
    make_pair(sv);
    unsigned char buf[12 + 3];
    struct vhu_msg_header hdr = {.request = VHU_REQ_SET_VRING_NUM, .flags = VHU_FLAG_VERSION,
                                 .size = 8};
    memcpy(buf, &hdr, 12);
    memset(buf + 12, 0x11, 3);
    assert_int_equal(write(sv[0], buf, sizeof(buf)), sizeof(buf));
    close(sv[0]);
    int base = count_fds();
    expect_recv_error(sv[1], -EPROTO, TIMEOUT_MS, base);
    close(sv[1]);
}

static void test_recv_truncated_payload_with_fds(void **state)
{
    (void)state;
    int sv[2];
    make_pair(sv);
    struct vhu_msg_header hdr = {.request = VHU_REQ_SET_VRING_KICK, .flags = VHU_FLAG_VERSION,
                                 .size = 8};
    int efd[3] = {make_eventfd(), make_eventfd(), make_eventfd()};
    /* One fd with the header, two more with the partial payload. */
    send_raw(sv[0], &hdr, sizeof(hdr), efd, 1);
    unsigned char part[3] = {1, 0, 0};
    send_raw(sv[0], part, sizeof(part), efd + 1, 2);
    close_all(efd, 3);
    close(sv[0]);
    int base = count_fds();
    expect_recv_error(sv[1], -EPROTO, TIMEOUT_MS, base);
    close(sv[1]);
}

static void test_recv_timeout_stalled_payload(void **state)
{
    (void)state;
    int sv[2];
    make_pair(sv);
    unsigned char buf[12 + 3];
    struct vhu_msg_header hdr = {.request = VHU_REQ_SET_VRING_NUM, .flags = VHU_FLAG_VERSION,
                                 .size = 8};
    memcpy(buf, &hdr, 12);
    memset(buf + 12, 0, 3);
    int efd = make_eventfd();
    send_raw(sv[0], buf, sizeof(buf), &efd, 1);
    close(efd);
    int base = count_fds();
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    expect_recv_error(sv[1], -ETIMEDOUT, 50, base);
    long ms = elapsed_ms(&t0);
    assert_true(ms >= 40);
    assert_true(ms < 1500);
    close_all(sv, 2);
}

static void test_recv_timeout_stalled_header(void **state)
{
    (void)state;
    int sv[2];
    make_pair(sv);
    struct vhu_msg_header hdr = {.request = VHU_REQ_SET_OWNER, .flags = VHU_FLAG_VERSION};
    assert_int_equal(write(sv[0], &hdr, 5), 5);
    int base = count_fds();
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    expect_recv_error(sv[1], -ETIMEDOUT, 50, base);
    long ms = elapsed_ms(&t0);
    assert_true(ms >= 40);
    assert_true(ms < 1500);
    close_all(sv, 2);
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
    struct vhu_msg_header hdr = {.request = VHU_REQ_SET_OWNER, .flags = VHU_FLAG_VERSION,
                                 .size = 0};
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
        cmocka_unit_test(test_check_vring_num),
        cmocka_unit_test(test_check_flags),
        cmocka_unit_test(test_check_reply),
        cmocka_unit_test(test_check_mem_table),
        cmocka_unit_test(test_check_vring_kick_call),
        cmocka_unit_test(test_check_config),
        cmocka_unit_test(test_check_one_fd_rows),
        cmocka_unit_test(test_roundtrip_payload_fds),
        cmocka_unit_test(test_send_recv_no_payload_and_sequence),
        cmocka_unit_test(test_header_split_written_before_recv),
        cmocka_unit_test(test_header_split_trickled),
        cmocka_unit_test(test_recv_eof_before_any_byte),
        cmocka_unit_test(test_recv_truncated_header),
        cmocka_unit_test(test_recv_truncated_header_with_fds),
        cmocka_unit_test(test_recv_oversize),
        cmocka_unit_test(test_recv_oversize_with_fds),
        cmocka_unit_test(test_recv_bad_version),
        cmocka_unit_test(test_recv_truncated_payload),
        cmocka_unit_test(test_recv_truncated_payload_with_fds),
        cmocka_unit_test(test_recv_timeout_stalled_payload),
        cmocka_unit_test(test_recv_timeout_stalled_header),
        cmocka_unit_test(test_recv_nine_fds),
        cmocka_unit_test(test_recv_many_fds),
        cmocka_unit_test(test_recv_eight_fds_not_truncated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
