/* SPDX-License-Identifier: BSD-3-Clause */
/* Device-state transfer: SET_DEVICE_STATE_FD / CHECK_DEVICE_STATE over real
 * sockets and pipes.  A test device with several sections (one large, one
 * optional, one at an older version) saves through the front-end library
 * and loads into a fresh back-end; every fault leaves the loading device
 * exactly as it was and gets an error naming the problem. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <zstd.h>

#include "harness.h"

#define BLOB_LEN (3u << 20)

static uint8_t *pattern(size_t n, uint32_t seed)
{
    uint8_t *p = malloc(n ? n : 1);
    uint32_t x = seed | 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        /* Half text-like (compressible), half noise. */
        p[i] = (i / 4096) % 2 ? (uint8_t)x : (uint8_t)('a' + (i * 7 + (x & 3)) % 26);
    }
    return p;
}

/* A back-end (harness) with a device full of state: blob, scratch, label,
 * and a ring that ran and stopped at base 3. */
static void fill_source(struct harness *h, size_t blob_len)
{
    uint8_t *b = pattern(blob_len, 7);
    assert_int_equal(testdev_set_blob(h->dev, b, blob_len), 0);
    free(b);
    testdev_set_label(h->dev, "hello");
}

/* The driver's scratch value lives in config space and is reset with the
 * device when a session ends: write it in the session that saves. */
static void set_scratch(struct vhu_fe *fe)
{
    uint64_t scratch = 0xfeedface12345678ull;
    assert_int_equal(vhu_fe_set_config(fe, offsetof(struct testdev_config, scratch), &scratch, 8,
                                       VHU_CONFIG_FLAG_WRITABLE),
                     0);
}

/* A memfd holding a snapshot saved from h (rings stopped). */
static int save_to_memfd(struct harness *h)
{
    int fd = memfd_create("snap", MFD_CLOEXEC);
    struct vhu_fe *fe = harness_connect_negotiated(h);
    set_scratch(fe);
    assert_int_equal(vhu_fe_save_state(fe, fd), 0);
    vhu_fe_close(fe);
    lseek(fd, 0, SEEK_SET);
    return fd;
}

static int load_fd(struct harness *h, int fd)
{
    lseek(fd, 0, SEEK_SET);
    struct vhu_fe *fe = harness_connect_negotiated(h);
    int r = vhu_fe_load_state(fe, fd);
    vhu_fe_close(fe);
    return r;
}

/* The loading device's state, to compare before and after a failed load. */
struct devstate {
    uint8_t *blob;
    size_t len;
    uint64_t scratch;
    char label[64];
};

static void capture(struct harness *h, struct devstate *s)
{
    const uint8_t *p;
    testdev_blob(h->dev, &p, &s->len);
    s->blob = malloc(s->len ? s->len : 1);
    memcpy(s->blob, p, s->len);
    s->scratch = testdev_scratch(h->dev);
    snprintf(s->label, sizeof(s->label), "%s", testdev_label(h->dev));
}

static void assert_same(struct harness *h, const struct devstate *s)
{
    const uint8_t *p;
    size_t n;
    testdev_blob(h->dev, &p, &n);
    assert_int_equal(n, s->len);
    assert_memory_equal(p, s->blob, n);
    assert_int_equal(testdev_scratch(h->dev), s->scratch);
    assert_string_equal(testdev_label(h->dev), s->label);
}

static uint8_t *read_all(int fd, size_t *n)
{
    struct stat st;
    fstat(fd, &st);
    uint8_t *b = malloc((size_t)st.st_size + 1);
    assert_int_equal(pread(fd, b, (size_t)st.st_size, 0), st.st_size);
    *n = (size_t)st.st_size;
    return b;
}

static int memfd_of(const uint8_t *b, size_t n)
{
    int fd = memfd_create("bad", MFD_CLOEXEC);
    assert_int_equal(write(fd, b, n), (ssize_t)n);
    lseek(fd, 0, SEEK_SET);
    return fd;
}

static void test_roundtrip(void **state)
{
    (void)state;
    struct harness a, b;
    assert_int_equal(harness_start(&a, 2), 0);
    assert_int_equal(harness_start(&b, 2), 0);
    fill_source(&a, BLOB_LEN);

    /* Run a ring on the source and stop it: its base travels too. */
    struct vhu_fe *fe = harness_connect_negotiated(&a);
    set_scratch(fe);
    struct guest g;
    guest_init(&g, 1);
    guest_activate(&g, fe, 0);
    for (unsigned k = 0; k < 3; k++)
        assert_int_equal(vhu_fe_vring_push(&g.ring[0], (uint16_t)k, GUEST_BUF_GPA, 64, 2), 0);
    guest_kick(&g, 0);
    assert_true(wait_used_idx(&g.ring[0], 3, 2000));
    unsigned base;
    assert_int_equal(vhu_fe_get_vring_base(fe, 0, &base), 0);
    assert_int_equal(base, 3);
    /* With the rings stopped, save on this same session. */
    int snap = memfd_create("snap", MFD_CLOEXEC);
    assert_int_equal(vhu_fe_save_state(fe, snap), 0);
    vhu_fe_close(fe);
    guest_free(&g);
    size_t n1;
    uint8_t *s1 = read_all(snap, &n1);
    assert_true(n1 < BLOB_LEN); /* compressed */

    int fds_before = settled_open_fds();
    unsigned long commits = testdev_commits(b.dev);
    fe = harness_connect_negotiated(&b);
    lseek(snap, 0, SEEK_SET);
    assert_int_equal(vhu_fe_load_state(fe, snap), 0);
    assert_int_equal(testdev_commits(b.dev), commits + 1);
    /* Device data is byte-identical, the ring base came along. */
    const uint8_t *pa, *pb;
    size_t la, lb;
    testdev_blob(a.dev, &pa, &la);
    testdev_blob(b.dev, &pb, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(pa, pb, la);
    assert_int_equal(testdev_scratch(b.dev), 0xfeedface12345678ull);
    assert_string_equal(testdev_label(b.dev), "hello");
    assert_int_equal(vhu_fe_get_vring_base(fe, 0, &base), 0);
    assert_int_equal(base, 3);
    /* Saving again gives the same bytes: the format is deterministic. */
    int snap2 = memfd_create("snap2", MFD_CLOEXEC);
    assert_int_equal(vhu_fe_save_state(fe, snap2), 0);
    vhu_fe_close(fe);
    size_t n2;
    uint8_t *s2 = read_all(snap2, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(s1, s2, n1);
    free(s1);
    free(s2);
    close(snap2);
    /* The transfers left no fd behind (snap was open before, snap2 not). */
    int now = -1;
    for (int i = 0; i < 200 && (now = count_open_fds()) != fds_before; i++)
        sleep_ms(5);
    assert_int_equal(now, fds_before);
    close(snap);
    harness_stop(&a);
    harness_stop(&b);
}

static void test_empty_state_and_fd_kinds(void **state)
{
    (void)state;
    struct harness a, b;
    assert_int_equal(harness_start(&a, 1), 0);
    assert_int_equal(harness_start(&b, 1), 0);
    fill_source(&a, 0); /* no device data at all */
    uint8_t *old = pattern(1000, 3);
    testdev_set_blob(b.dev, old, 1000);
    free(old);

    /* A pipe, driven by hand as QEMU does: SET, read to EOF, CHECK. */
    struct vhu_fe *fe = harness_connect_negotiated(&a);
    set_scratch(fe);
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    int back;
    assert_int_equal(
        vhu_fe_set_device_state_fd(fe, VHU_TRANSFER_SAVE, VHU_PHASE_STOPPED, p[1], &back), 0);
    assert_int_equal(back, -1);
    close(p[1]);
    int snap = memfd_create("snap", MFD_CLOEXEC);
    uint8_t buf[4096];
    ssize_t n;
    while ((n = read(p[0], buf, sizeof(buf))) > 0)
        assert_int_equal(write(snap, buf, (size_t)n), n);
    close(p[0]);
    assert_int_equal(vhu_fe_check_device_state(fe), 0);
    vhu_fe_close(fe);

    /* Load from a regular file (the memfd itself). */
    fe = harness_connect_negotiated(&b);
    lseek(snap, 0, SEEK_SET);
    assert_int_equal(
        vhu_fe_set_device_state_fd(fe, VHU_TRANSFER_LOAD, VHU_PHASE_STOPPED, snap, &back), 0);
    assert_int_equal(vhu_fe_check_device_state(fe), 0);
    vhu_fe_close(fe);
    const uint8_t *pb;
    size_t lb;
    testdev_blob(b.dev, &pb, &lb);
    assert_int_equal(lb, 0);
    assert_string_equal(testdev_label(b.dev), "hello");
    close(snap);
    harness_stop(&a);
    harness_stop(&b);
}

/* A source that is an older build (config v1, no label) and a newer one
 * (an optional section the loader does not know). */
static void test_versions(void **state)
{
    (void)state;
    struct harness a, b;
    assert_int_equal(harness_start(&a, 1), 0);
    assert_int_equal(harness_start(&b, 1), 0);
    fill_source(&a, 5000);
    struct testdev_state_opts old = {.config_version = 1, .stats = true};
    testdev_set_state_opts(a.dev, &old);
    int snap = save_to_memfd(&a);
    testdev_set_label(b.dev, "stale");
    /* Checked inside the loading session: config space (scratch) is reset
     * with the device when the session ends. */
    struct vhu_fe *fe = harness_connect_negotiated(&b);
    assert_int_equal(vhu_fe_load_state(fe, snap), 0);
    /* The upgrade path: scratch restored, the v2-only label left empty. */
    assert_int_equal(testdev_scratch(b.dev), 0xfeedface12345678ull);
    assert_string_equal(testdev_label(b.dev), "");
    vhu_fe_close(fe);
    close(snap);

    /* The loader does not know "stats", which is optional: skipped. */
    struct testdev_state_opts nostats = {.config_version = 2, .stats = false};
    testdev_set_state_opts(b.dev, &nostats);
    struct testdev_state_opts cur = {.config_version = 2, .stats = true};
    testdev_set_state_opts(a.dev, &cur);
    snap = save_to_memfd(&a);
    log_clear();
    assert_int_equal(load_fd(&b, snap), 0);
    close(snap);
    harness_stop(&a);
    harness_stop(&b);
}

/* Loads that must fail, each leaving the loading device as it was. */
static void expect_load_fails(struct harness *b, int fd, const char *needle)
{
    struct devstate before;
    capture(b, &before);
    unsigned long commits = testdev_commits(b->dev);
    log_clear();
    int r = load_fd(b, fd);
    if (r == 0 || !log_wait(needle, 2000)) {
        fprintf(stderr, "load returned %d; expected a log line with '%s'; got:\n", r, needle);
        log_dump();
        fail();
    }
    assert_true(log_count("LOAD failed, device unchanged") >= 1);
    assert_int_equal(testdev_commits(b->dev), commits);
    assert_same(b, &before);
    free(before.blob);
}

static void test_refusals(void **state)
{
    (void)state;
    struct harness a, b;
    assert_int_equal(harness_start(&a, 1), 0);
    assert_int_equal(harness_start(&b, 1), 0);
    fill_source(&a, 20000);
    uint8_t *mine = pattern(777, 5);
    testdev_set_blob(b.dev, mine, 777);
    free(mine);
    testdev_set_label(b.dev, "mine");

    /* A mandatory section this device does not know. */
    struct testdev_state_opts extra = {.config_version = 2, .stats = true, .extra = true};
    testdev_set_state_opts(a.dev, &extra);
    int snap = save_to_memfd(&a);
    expect_load_fails(&b, snap,
                      "section 'extra' (version 1) is unknown to this device and not "
                      "optional");
    close(snap);

    /* A section whose writer says no reader of ours can read it. */
    struct testdev_state_opts newer = {.config_version = 2, .stats = true, .stats_min_newer = true};
    testdev_set_state_opts(a.dev, &newer);
    snap = save_to_memfd(&a);
    expect_load_fails(&b, snap,
                      "section 'stats' is version 1 and needs a reader of version 9 "
                      "or newer; this device reads up to version 1");
    close(snap);

    /* Another device type. */
    struct testdev_state_opts cur = {.config_version = 2, .stats = true};
    testdev_set_state_opts(a.dev, &cur);
    testdev_set_name(a.dev, "otherdev");
    snap = save_to_memfd(&a);
    expect_load_fails(&b, snap,
                      "the snapshot is of device 'otherdev', this back-end runs "
                      "'testdev'");
    close(snap);
    testdev_set_name(a.dev, "testdev");
    harness_stop(&a);
    harness_stop(&b);
}

/* Recompress a snapshot body after changing its decompressed CBOR. */
static uint8_t *patch_body(const uint8_t *snap, size_t n, size_t *out_n, const char *from,
                           const char *to)
{
    uint32_t hl;
    memcpy(&hl, snap + 4, 4);
    size_t hdr = 8 + hl;
    size_t cap = 64u << 20;
    uint8_t *raw = malloc(cap);
    size_t rn = ZSTD_decompress(raw, cap, snap + hdr, n - hdr);
    assert_false(ZSTD_isError(rn));
    uint8_t *hit = memmem(raw, rn, from, strlen(from));
    assert_non_null(hit);
    memcpy(hit, to, strlen(to));
    ZSTD_CCtx *c = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
    uint8_t *out = malloc(hdr + ZSTD_compressBound(rn));
    memcpy(out, snap, hdr);
    size_t cn = ZSTD_compress2(c, out + hdr, ZSTD_compressBound(rn), raw, rn);
    assert_false(ZSTD_isError(cn));
    ZSTD_freeCCtx(c);
    free(raw);
    *out_n = hdr + cn;
    return out;
}

/* The body of snap with from replaced by to must fail to load, naming it. */
static void expect_patched_fails(struct harness *b, const uint8_t *snap, size_t n, const char *from,
                                 const char *to, const char *needle)
{
    size_t pn;
    uint8_t *p = patch_body(snap, n, &pn, from, to);
    int fd = memfd_of(p, pn);
    expect_load_fails(b, fd, needle);
    close(fd);
    free(p);
}

static void test_damaged_streams(void **state)
{
    (void)state;
    struct harness a, b;
    assert_int_equal(harness_start(&a, 1), 0);
    assert_int_equal(harness_start(&b, 1), 0);
    fill_source(&a, 300000);
    uint8_t *mine = pattern(999, 9);
    testdev_set_blob(b.dev, mine, 999);
    free(mine);
    int snap = save_to_memfd(&a);
    size_t n;
    uint8_t *good = read_all(snap, &n);
    close(snap);
    uint32_t hl;
    memcpy(&hl, good + 4, 4);
    size_t hdr = 8 + hl;

    /* Truncated at several points. */
    size_t cuts[] = {0, 5, 8 + 4, hdr, hdr + 10, hdr + (n - hdr) / 2, n - 1};
    const char *why[] = {"stream truncated at byte 0",
                         "stream truncated at byte 5",
                         "stream truncated",
                         "stream truncated",
                         "stream truncated",
                         "",
                         ""};
    for (unsigned i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        int fd = memfd_of(good, cuts[i]);
        expect_load_fails(&b, fd, why[i][0] ? why[i] : "LOAD failed");
        close(fd);
    }
    /* A flipped byte: in the skippable-frame magic, in the header's CBOR,
     * in the compressed body. */
    struct {
        size_t at;
        const char *needle;
    } flips[] = {
        {1, "not a vhu snapshot"},
        {9, "not a vhu snapshot: no VHUSTATE magic"},
        {16 + 8, "LOAD failed"}, /* the value of "format", the header map's first key */
        {hdr + (n - hdr) / 3, "LOAD failed"},
        {n - 2, "LOAD failed"}, /* the checksum */
    };
    for (unsigned i = 0; i < sizeof(flips) / sizeof(flips[0]); i++) {
        uint8_t *bad = malloc(n);
        memcpy(bad, good, n);
        bad[flips[i].at] ^= 0x40;
        int fd = memfd_of(bad, n);
        expect_load_fails(&b, fd, flips[i].needle);
        close(fd);
        free(bad);
    }
    /* A header that lies about its length. */
    uint8_t *bad = malloc(n);
    memcpy(bad, good, n);
    uint32_t huge = 1u << 30;
    memcpy(bad + 4, &huge, 4);
    int fd = memfd_of(bad, n);
    expect_load_fails(&b, fd, "header length 1073741824");
    close(fd);
    /* A newer format version (the header's "format": 1 becomes 3). */
    memcpy(bad, good, n);
    uint8_t *f = memmem(bad, hdr, "format", 6);
    assert_non_null(f);
    assert_int_equal(f[6], 1);
    f[6] = 3;
    fd = memfd_of(bad, n);
    expect_load_fails(&b, fd, "snapshot format version 3; this build reads versions 1 to 2");
    close(fd);
    /* Format 2 around a handler record of format 1 (unversioned). */
    f[6] = 2;
    fd = memfd_of(bad, n);
    expect_load_fails(&b, fd, "handler record without a version in a format-2 snapshot");
    close(fd);
    /* Trailing garbage after the frame. */
    uint8_t *longer = malloc(n + 3);
    memcpy(longer, good, n);
    memcpy(longer + n, "xyz", 3);
    fd = memfd_of(longer, n + 3);
    expect_load_fails(&b, fd, "trailing bytes after the snapshot");
    close(fd);
    free(longer);
    free(bad);

    /* Valid compression, damaged CBOR inside: a field renamed, a section
     * renamed in its record, a length that lies. */
    expect_patched_fails(&b, good, n, "\xbfgscratch", "\xbfgscratcH", /* the data's key */
                         "section 'config' (version 2): expected field 'scratch', found "
                         "'scratcH'");
    /* A second handler record where the first section belongs. */
    expect_patched_fails(&b, good, n, "gsection", "ghandler",
                         "a second handler record at body offset");
    expect_patched_fails(&b, good, n, "\xbficompleted", "\xbficompleteX",
                         "section 'stats' (version 1): expected field 'completed', found "
                         "'completeX'");
    /* The record's field declarations: one whose key is not text is
     * refused; a type name this build does not know (a newer writer's)
     * is read as "any" and the load goes through. */
    expect_patched_fails(&b, good, n, "ckeygscratch", "ckey\x07scratch",
                         "field declaration: expected a text string, found a unsigned "
                         "integer");
    size_t pn;
    uint8_t *p = patch_body(good, n, &pn, "dtypeduint", "dtypedUINT");
    fd = memfd_of(p, pn);
    log_clear();
    assert_int_equal(load_fd(&b, fd), 0);
    close(fd);
    free(p);
    free(good);
    harness_stop(&a);
    harness_stop(&b);
}

static void test_protocol_misuse(void **state)
{
    (void)state;
    struct harness a;
    assert_int_equal(harness_start(&a, 1), 0);
    fill_source(&a, 4 << 20);
    struct vhu_fe *fe = harness_connect_negotiated(&a);
    int back;
    /* CHECK without SET. */
    log_clear();
    assert_true(vhu_fe_check_device_state(fe) < 0);
    assert_true(log_count("CHECK_DEVICE_STATE refused: no state transfer is active") == 1);
    /* Bad direction, bad phase, a read-only fd for SAVE, a directory. */
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    assert_true(vhu_fe_set_device_state_fd(fe, 2, 0, p[1], &back) < 0);
    assert_true(vhu_fe_set_device_state_fd(fe, 0, 1, p[1], &back) < 0);
    assert_true(vhu_fe_set_device_state_fd(fe, VHU_TRANSFER_SAVE, 0, p[0], &back) < 0);
    assert_true(log_count("a SAVE needs a writable fd") == 1);
    int dir = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(vhu_fe_set_device_state_fd(fe, VHU_TRANSFER_LOAD, 0, dir, &back) < 0);
    assert_true(log_count("not a pipe, a socket or a regular file") == 1);
    close(dir);

    /* A second SET while one is active; other requests wait for CHECK. */
    assert_int_equal(vhu_fe_set_device_state_fd(fe, VHU_TRANSFER_SAVE, 0, p[1], &back), 0);
    close(p[1]);
    int q[2];
    assert_int_equal(pipe2(q, O_CLOEXEC), 0);
    assert_int_equal(vhu_fe_set_device_state_fd(fe, VHU_TRANSFER_SAVE, 0, q[1], &back), -EBUSY);
    assert_int_equal(vhu_fe_set_vring_num(fe, 0, 16), -EBUSY);
    assert_true(log_count("a device-state transfer is active") == 1);
    close(q[0]);
    close(q[1]);
    /* The peer closes early during SAVE: the process survives (no SIGPIPE),
     * CHECK reports the failure, and the next SAVE works. */
    char buf[100];
    size_t got = 0;
    while (got < sizeof(buf)) {
        ssize_t n = read(p[0], buf + got, sizeof(buf) - got);
        assert_true(n > 0);
        got += (size_t)n;
    }
    close(p[0]);
    log_clear();
    assert_true(vhu_fe_check_device_state(fe) < 0);
    assert_true(log_count("SAVE failed") == 1);
    int snap = memfd_create("s", MFD_CLOEXEC);
    assert_int_equal(vhu_fe_save_state(fe, snap), 0);
    close(snap);
    vhu_fe_close(fe);

    /* SET while a ring runs. */
    fe = harness_connect_negotiated(&a);
    struct guest g;
    guest_init(&g, 1);
    guest_activate(&g, fe, 0);
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    assert_int_equal(vhu_fe_set_device_state_fd(fe, VHU_TRANSFER_SAVE, 0, p[1], &back), -EBUSY);
    close(p[0]);
    close(p[1]);
    vhu_fe_close(fe);
    guest_free(&g);
    harness_stop(&a);
}

/* The front-end disappears in the middle of a LOAD: the transfer ends, the
 * device is unchanged, no fd is left, the next front-end is served. */
static void test_disconnect_mid_transfer(void **state)
{
    (void)state;
    struct harness a, b;
    assert_int_equal(harness_start(&a, 1), 0);
    assert_int_equal(harness_start(&b, 1), 0);
    fill_source(&a, 2 << 20);
    int snap = save_to_memfd(&a);
    size_t n;
    uint8_t *good = read_all(snap, &n);
    close(snap);
    uint8_t *mine = pattern(4321, 1);
    testdev_set_blob(b.dev, mine, 4321);
    free(mine);
    struct devstate before;
    capture(&b, &before);
    int fds_before = settled_open_fds();

    struct vhu_fe *fe = harness_connect_negotiated(&b);
    int p[2], back;
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    assert_int_equal(vhu_fe_set_device_state_fd(fe, VHU_TRANSFER_LOAD, 0, p[0], &back), 0);
    close(p[0]);
    assert_int_equal(write(p[1], good, n / 2), (ssize_t)(n / 2));
    /* Gone, with the pipe still open and half the stream sent. */
    vhu_fe_close(fe);
    fe = harness_connect_negotiated(&b);
    uint64_t qn;
    assert_int_equal(vhu_fe_get_queue_num(fe, &qn), 0);
    vhu_fe_close(fe);
    close(p[1]);
    assert_same(&b, &before);
    int now = -1;
    for (int i = 0; i < 200 && (now = count_open_fds()) != fds_before; i++)
        sleep_ms(5);
    assert_int_equal(now, fds_before);

    /* The same in the middle of a SAVE whose reader never reads: the
     * transfer thread, blocked on a full pipe, is cancelled. */
    fe = harness_connect_negotiated(&a);
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    assert_int_equal(vhu_fe_set_device_state_fd(fe, VHU_TRANSFER_SAVE, 0, p[1], &back), 0);
    close(p[1]);
    sleep_ms(20);
    vhu_fe_close(fe);
    fe = harness_connect_negotiated(&a);
    assert_int_equal(vhu_fe_get_queue_num(fe, &qn), 0);
    /* A new SAVE on the new session works. */
    int snap2 = memfd_create("s2", MFD_CLOEXEC);
    assert_int_equal(vhu_fe_save_state(fe, snap2), 0);
    close(snap2);
    vhu_fe_close(fe);
    close(p[0]);
    for (int i = 0; i < 200 && (now = count_open_fds()) != fds_before; i++)
        sleep_ms(5);
    assert_int_equal(now, fds_before);
    free(before.blob);
    free(good);
    harness_stop(&a);
    harness_stop(&b);
}

int main(void)
{
    log_capture_install();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_empty_state_and_fd_kinds),
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_damaged_streams),
        cmocka_unit_test(test_protocol_misuse),
        cmocka_unit_test(test_disconnect_mid_transfer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
