/* SPDX-License-Identifier: BSD-3-Clause */
/* examples/blk through the front-end library's driver, over a real socket
 * with real eventfds and shared guest memory: config and features, write
 * and read back (chained, indirect, header and status sharing buffers),
 * flush, GET_ID, discard and write-zeroes, out-of-range requests, a
 * read-only disk, malformed requests, several queues at once, and
 * GET_VRING_BASE with requests in flight. */
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <liburing.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <cbor.h>
#include <cmocka.h>
#include <zstd.h>

#include "blk.h"
#include "devserver.h"
#include "harness.h"

#define SECTORS 2048u   /* 1 MiB image */
#define IMAGE_FILL 0xc3 /* every byte of a fresh image */
#define SLOT(ring, k) (GUEST_BUF_GPA + (ring)*0x20000u + (k)*0x4000u)
#define HDR_OFF 0x0
#define STATUS_OFF 0x20
#define TABLE_OFF 0x40
#define DATA_OFF 0x1000
#define DATA_MAX 0x3000u /* 24 sectors per slot */

struct blkt {
    struct blk *dev;
    struct devserver ds;
    struct vhu_fe *fe;
    struct guest g;
    char dir[64];
    char image[128];
    int image_fd; /* the test's own view of the image */
};

enum { DISK_FILE, DISK_RAM, DISK_FILE_DIRECT };

/* The next blkt_start also opens a control socket (t->ds.control). */
static bool blkt_control;
/* The next blkt_start's rings have this many entries (0: GUEST_RING_SIZE). */
static unsigned blkt_ring_size;
/* The second group: vhu-blk offers RING_PACKED, the driver lays out packed
 * rings. */
static bool packed_layout;
/* The next blkt_start's vhu-blk takes live snapshots by fork()
 * (--fork-snapshots) instead of its own copy-before-write. */
static bool blkt_fork_snapshots;
/* The next blkt_start's vhu-blk keeps its snapshot copy area from the start
 * (--snapshot-reserve). */
static bool blkt_snapshot_reserve;

/* Serve disk o (an image it names belongs to someone else) to a driver. */
static void blkt_start(struct blkt *t, const struct blk_options *o_in)
{
    struct blk_options o_layout = *o_in;
    o_layout.packed = packed_layout;
    o_layout.fork_snapshots = blkt_fork_snapshots;
    o_layout.snapshot_reserve = blkt_snapshot_reserve;
    blkt_fork_snapshots = blkt_snapshot_reserve = false;
    const struct blk_options *o = &o_layout;
    assert_int_equal(blk_new(&t->dev, o), 0);
    assert_int_equal(
        (blkt_control ? devserver_start_control : devserver_start)(&t->ds, blk_ops(t->dev), t->dev),
        0);
    blkt_control = false;
    /* LOG_ALL is for migration, turned on later (as QEMU does). */
    t->fe = devserver_connect(&t->ds, ~VHU_BIT(VHU_F_LOG_ALL));
    guest_init_rings(&t->g, o->queues, blkt_ring_size ? blkt_ring_size : GUEST_RING_SIZE,
                     packed_layout);
    blkt_ring_size = 0;
    log_clear();
    guest_activate(&t->g, t->fe, 0);
}

/* o with a fresh image of SECTORS (DISK_FILE*: t owns it) or a RAM disk of
 * ram bytes. */
static void blkt_open_o(struct blkt *t, struct blk_options o, int disk, uint64_t ram)
{
    memset(t, 0, sizeof(*t));
    t->image_fd = -1;
    if (disk == DISK_FILE || disk == DISK_FILE_DIRECT) {
        o.direct = disk == DISK_FILE_DIRECT;
        const char *tmp = getenv("TMPDIR");
        snprintf(t->dir, sizeof(t->dir), "%s/vhu-blk-test-XXXXXX",
                 tmp && *tmp && strlen(tmp) < 40 ? tmp : "/tmp");
        assert_non_null(mkdtemp(t->dir));
        snprintf(t->image, sizeof(t->image), "%s/disk.img", t->dir);
        t->image_fd = open(t->image, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        assert_true(t->image_fd >= 0);
        static uint8_t fill[SECTORS * BLK_SECTOR];
        memset(fill, IMAGE_FILL, sizeof(fill));
        assert_int_equal(pwrite(t->image_fd, fill, sizeof(fill), 0), (ssize_t)sizeof(fill));
        o.image = t->image;
    } else {
        o.ram_size = ram;
    }
    blkt_start(t, &o);
}

static void blkt_open_sized(struct blkt *t, unsigned queues, bool ro, int disk, uint64_t ram)
{
    blkt_open_o(t, (struct blk_options){.queues = queues, .read_only = ro}, disk, ram);
}

/* A back-end on someone else's image. */
static void blkt_open_image(struct blkt *t, const char *image, unsigned queues, bool ro,
                            const char *serial)
{
    memset(t, 0, sizeof(*t));
    t->image_fd = -1;
    blkt_start(t, &(struct blk_options){
                      .image = image, .queues = queues, .read_only = ro, .serial = serial});
}

static void blkt_open(struct blkt *t, unsigned queues, bool ro, int disk)
{
    blkt_open_sized(t, queues, ro, disk, SECTORS * BLK_SECTOR);
}

static void blkt_close(struct blkt *t)
{
    vhu_fe_close(t->fe);
    devserver_stop(&t->ds);
    guest_free(&t->g);
    blk_free(t->dev);
    if (t->image_fd >= 0) {
        close(t->image_fd);
        unlink(t->image);
        rmdir(t->dir);
    }
}

static uint8_t *gptr(struct blkt *t, uint64_t gpa, uint64_t len)
{
    uint8_t *p = vhu_guest_mem_ptr(&t->g.mem, gpa, len);
    assert_non_null(p);
    return p;
}

/* ---- the driver ---- */

struct layout {
    unsigned nseg;       /* data descriptors (0: one per request type's default) */
    bool indirect;       /* one indirect descriptor at head `slot` */
    bool split_header;   /* header as 8 + 8 bytes */
    bool status_in_data; /* status byte shares the last data buffer (IN) */
};

static bool data_writable(uint32_t type)
{
    return type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;
}

/* Publish one request in `slot` of ring `ring` (data already in place). */
static void submit(struct blkt *t, unsigned ring, unsigned slot, uint32_t type, uint64_t sector,
                   uint32_t len, struct layout l)
{
    uint64_t base = SLOT(ring, slot);
    struct virtio_blk_outhdr *h = (void *)gptr(t, base + HDR_OFF, sizeof(*h));
    *h = (struct virtio_blk_outhdr){.type = type, .sector = sector};
    *gptr(t, base + STATUS_OFF, 1) = 0xee;
    struct vhu_fe_buf b[40];
    unsigned n = 0;
    if (l.split_header) {
        b[n++] = (struct vhu_fe_buf){base + HDR_OFF, 8, false};
        b[n++] = (struct vhu_fe_buf){base + HDR_OFF + 8, 8, false};
    } else {
        b[n++] = (struct vhu_fe_buf){base + HDR_OFF, 16, false};
    }
    unsigned nseg = len ? (l.nseg ? l.nseg : 1) : 0;
    uint32_t off = 0;
    for (unsigned i = 0; i < nseg; i++) {
        uint32_t c = i + 1 < nseg ? len / nseg : len - off;
        b[n++] = (struct vhu_fe_buf){base + DATA_OFF + off, c, data_writable(type)};
        off += c;
    }
    if (l.status_in_data) {
        *gptr(t, base + DATA_OFF + len, 1) = 0xee;
        b[n - 1].len++;
    } else {
        b[n++] = (struct vhu_fe_buf){base + STATUS_OFF, 1, true};
    }
    struct vhu_fe_vring *r = &t->g.ring[ring];
    if (l.indirect)
        assert_int_equal(vhu_fe_vring_push_indirect(r, (uint16_t)slot, base + TABLE_OFF, b, n), 0);
    else
        assert_int_equal(vhu_fe_vring_push_chain(r, 0, b, n), 0);
}

static uint8_t status_of(struct blkt *t, unsigned ring, unsigned slot, uint32_t len,
                         struct layout l)
{
    uint64_t base = SLOT(ring, slot);
    return *gptr(t, l.status_in_data ? base + DATA_OFF + len : base + STATUS_OFF, 1);
}

/* Wait for the next used element of `ring`. */
static void wait_used(struct blkt *t, unsigned ring, uint32_t *id, uint32_t *len)
{
    for (int i = 0; i < 2000; i++) {
        if (vhu_fe_vring_pop_used(&t->g.ring[ring], id, len) == 1)
            return;
        sleep_ms(1);
    }
    log_dump();
    fail_msg("ring %u: no completion within 2 s", ring);
}

/* One request, synchronously: data goes in from `buf` (writes) or comes
 * back into it (reads).  Returns the status; *used gets the used length. */
static uint8_t req_l(struct blkt *t, unsigned ring, uint32_t type, uint64_t sector, void *buf,
                     uint32_t len, struct layout l, uint32_t *used)
{
    assert_true(len <= DATA_MAX);
    uint8_t *data = gptr(t, SLOT(ring, 0) + DATA_OFF, DATA_MAX + 1);
    if (data_writable(type))
        memset(data, 0xee, len);
    else if (len)
        memcpy(data, buf, len);
    submit(t, ring, 0, type, sector, len, l);
    guest_kick(&t->g, ring);
    uint32_t id, ulen;
    wait_used(t, ring, &id, &ulen);
    assert_int_equal(id, 0);
    if (used)
        *used = ulen;
    if (data_writable(type) && len)
        memcpy(buf, data, len);
    return status_of(t, ring, 0, len, l);
}

static uint8_t req(struct blkt *t, uint32_t type, uint64_t sector, void *buf, uint32_t len)
{
    return req_l(t, 0, type, sector, buf, len, (struct layout){0}, NULL);
}

static uint8_t zero_req(struct blkt *t, uint32_t type, uint64_t sector, uint32_t num,
                        uint32_t flags)
{
    struct virtio_blk_discard_write_zeroes s = {
        .sector = sector, .num_sectors = num, .flags = flags};
    return req(t, type, sector, &s, sizeof(s));
}

static void pattern(uint8_t *p, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 9));
}

/* The image file's bytes at [off, off+len) all equal v? */
static bool image_is(struct blkt *t, uint64_t off, size_t len, uint8_t v)
{
    uint8_t *p = malloc(len);
    assert_non_null(p);
    assert_int_equal(pread(t->image_fd, p, len, (off_t)off), (ssize_t)len);
    bool same = true;
    for (size_t i = 0; i < len; i++)
        same &= p[i] == v;
    free(p);
    return same;
}

static uint64_t read_eventfd(int fd)
{
    uint64_t v = 0;
    if (read(fd, &v, sizeof(v)) != sizeof(v))
        return 0;
    return v;
}

/* Does this kernel give an io_uring (a seccomp filter may refuse it)? */
static bool uring_works(void)
{
    struct io_uring ring;
    if (io_uring_queue_init(4, &ring, 0) < 0)
        return false;
    io_uring_queue_exit(&ring);
    return true;
}

/* How many of the image's pages in [off, off + len) the host page cache
 * holds (mincore on a mapping nothing touches). */
static unsigned cached_pages(int fd, uint64_t off, uint64_t len)
{
    const size_t size = SECTORS * BLK_SECTOR, page = 4096;
    void *m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    assert_true(m != MAP_FAILED);
    unsigned char vec[SECTORS * BLK_SECTOR / 4096];
    assert_int_equal(mincore(m, size, vec), 0);
    unsigned n = 0;
    for (uint64_t p = off / page; p < (off + len + page - 1) / page; p++)
        n += vec[p] & 1;
    munmap(m, size);
    return n;
}

/* ---- tests ---- */

static int fds_at_start;

static void test_config_and_features(void **state)
{
    (void)state;
    fds_at_start = count_open_fds();
    struct blkt t;
    blkt_open(&t, 2, false, DISK_FILE);
    uint64_t f = 0, nq = 0;
    assert_int_equal(vhu_fe_get_features(t.fe, &f), 0);
    uint64_t want = VHU_BIT(VHU_F_VERSION_1) | VHU_BIT(VHU_F_RING_EVENT_IDX) |
                    VHU_BIT(VHU_F_RING_INDIRECT_DESC) | VHU_BIT(VIRTIO_BLK_F_SEG_MAX) |
                    VHU_BIT(VIRTIO_BLK_F_BLK_SIZE) | VHU_BIT(VIRTIO_BLK_F_FLUSH) |
                    VHU_BIT(VIRTIO_BLK_F_MQ) | VHU_BIT(VIRTIO_BLK_F_DISCARD) |
                    VHU_BIT(VIRTIO_BLK_F_WRITE_ZEROES) | VHU_BIT(VHU_F_LOG_ALL);
    assert_int_equal(f & want, want);
    /* Migration and restarts: dirty logging and inflight tracking (the
     * vring layer does both for the device). */
    uint64_t pf = vhu_fe_acked_protocol_features(t.fe);
    assert_true(pf & VHU_BIT(VHU_PF_LOG_SHMFD));
    assert_true(pf & VHU_BIT(VHU_PF_INFLIGHT_SHMFD));
    assert_false(f & VHU_BIT(VIRTIO_BLK_F_RO));
    assert_int_equal(vhu_fe_get_queue_num(t.fe, &nq), 0);
    assert_int_equal(nq, 2);
    struct virtio_blk_config c;
    assert_int_equal(vhu_fe_get_config(t.fe, 0, &c, sizeof(c)), 0);
    assert_int_equal(c.capacity, SECTORS);
    assert_int_equal(c.blk_size, 512);
    assert_int_equal(c.seg_max, BLK_SEG_MAX);
    assert_int_equal(c.num_queues, 2);
    assert_int_equal(c.max_discard_seg, 1);
    assert_int_equal(c.max_discard_sectors, BLK_MAX_ZERO_SECTORS);
    assert_int_equal(c.max_write_zeroes_seg, 1);
    assert_int_equal(c.max_write_zeroes_sectors, BLK_MAX_ZERO_SECTORS);
    assert_int_equal(c.write_zeroes_may_unmap, 1);
    /* Reads of a part of the config space, and past it, as the library
     * checks them. */
    uint32_t blk_size = 0;
    assert_int_equal(
        vhu_fe_get_config(t.fe, offsetof(struct virtio_blk_config, blk_size), &blk_size, 4), 0);
    assert_int_equal(blk_size, 512);
    assert_int_equal(vhu_fe_get_config(t.fe, sizeof(c) - 2, &blk_size, 4), -EREMOTEIO);
    blkt_close(&t);

    /* One queue: no MQ; read-only: RO. */
    blkt_open(&t, 1, true, DISK_RAM);
    assert_int_equal(vhu_fe_get_features(t.fe, &f), 0);
    assert_false(f & VHU_BIT(VIRTIO_BLK_F_MQ));
    assert_true(f & VHU_BIT(VIRTIO_BLK_F_RO));
    blkt_close(&t);
}

static void test_write_read(void **state)
{
    (void)state;
    for (int disk = DISK_FILE; disk <= DISK_RAM; disk++) {
        struct blkt t;
        blkt_open(&t, 1, false, disk);
        uint8_t w[8 * 512], r[8 * 512];
        pattern(w, sizeof(w), 1);
        uint32_t used = 0;
        /* Write 8 sectors at 10: header split, data in 3 chained buffers. */
        struct layout lw = {.nseg = 3, .split_header = true};
        assert_int_equal(req_l(&t, 0, VIRTIO_BLK_T_OUT, 10, w, sizeof(w), lw, &used),
                         VIRTIO_BLK_S_OK);
        assert_int_equal(used, 1); /* the status byte only */
        /* Read back through an indirect table, 5 buffers, the status byte
         * sharing the last one. */
        struct layout lr = {.nseg = 5, .indirect = true, .status_in_data = true};
        assert_int_equal(req_l(&t, 0, VIRTIO_BLK_T_IN, 10, r, sizeof(r), lr, &used),
                         VIRTIO_BLK_S_OK);
        assert_int_equal(used, sizeof(r) + 1);
        assert_memory_equal(w, r, sizeof(w));
        /* Where it landed, and nowhere else. */
        if (disk == DISK_FILE) {
            uint8_t img[sizeof(w)];
            assert_int_equal(pread(t.image_fd, img, sizeof(img), 10 * 512), (ssize_t)sizeof(img));
            assert_memory_equal(img, w, sizeof(w));
            assert_true(image_is(&t, 0, 10 * 512, IMAGE_FILL));
            assert_true(image_is(&t, 18 * 512, (SECTORS - 18) * 512, IMAGE_FILL));
        } else {
            assert_memory_equal(blk_ram(t.dev) + 10 * 512, w, sizeof(w));
            assert_int_equal(blk_ram(t.dev)[10 * 512 - 1], 0);
            assert_int_equal(blk_ram(t.dev)[18 * 512], 0);
        }
        /* The last sector of the disk is usable; one sector read. */
        assert_int_equal(req(&t, VIRTIO_BLK_T_OUT, SECTORS - 1, w, 512), VIRTIO_BLK_S_OK);
        memset(r, 0, sizeof(r));
        assert_int_equal(req(&t, VIRTIO_BLK_T_IN, SECTORS - 1, r, 512), VIRTIO_BLK_S_OK);
        assert_memory_equal(w, r, 512);
        /* Flush. */
        assert_int_equal(req_l(&t, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, (struct layout){0}, &used),
                         VIRTIO_BLK_S_OK);
        assert_int_equal(used, 1);
        assert_true(wait_eventfd(t.g.call[0], 2000) >= 1);
        assert_int_equal(read_eventfd(t.g.err[0]), 0);
        assert_int_equal(blk_completed(t.dev, 0), 5);
        blkt_close(&t);
    }
}

/* --direct: a request whose buffers and offset are aligned bypasses the
 * host page cache (mincore shows the image's pages stay out of it, where
 * the same write without --direct leaves them in); one split into
 * unaligned buffers goes through the page cache; both read back the same,
 * in the guest and in the file. */
static void test_direct(void **state)
{
    (void)state;
    const int disks[2] = {DISK_FILE, DISK_FILE_DIRECT};
    enum { A = 1024, B = 1536 }; /* the sectors written: 512 KiB and 768 KiB in */
    for (int k = 0; k < 2; k++) {
        bool direct = disks[k] == DISK_FILE_DIRECT;
        struct blkt t;
        blkt_open(&t, 1, false, disks[k]);
        /* --direct: io_uring, unless this kernel gives none. */
        assert_int_equal(blk_async(t.dev, 0), direct && uring_works());
        static uint8_t w[16 * 512], r[16 * 512], img[16 * 512];
        /* On tmpfs the page cache is the file: nothing to bypass, and
         * mincore says every page is there. */
        struct statfs sfs;
        assert_int_equal(fstatfs(t.image_fd, &sfs), 0);
        bool check_cache = sfs.f_type != TMPFS_MAGIC;
        /* Nothing of the ranges used cached to begin with.  (Not the whole
         * image: valgrind reads the start of every file mapped.) */
        assert_int_equal(fdatasync(t.image_fd), 0);
        assert_int_equal(posix_fadvise(t.image_fd, 0, 0, POSIX_FADV_DONTNEED), 0);
        if (check_cache)
            assert_int_equal(cached_pages(t.image_fd, A * 512, (B + 16 - A) * 512), 0);

        /* 8 KiB at sector A, one page-aligned buffer: written and read. */
        pattern(w, sizeof(w), 7);
        assert_int_equal(req(&t, VIRTIO_BLK_T_OUT, A, w, sizeof(w)), VIRTIO_BLK_S_OK);
        memset(r, 0, sizeof(r));
        assert_int_equal(req(&t, VIRTIO_BLK_T_IN, A, r, sizeof(r)), VIRTIO_BLK_S_OK);
        assert_memory_equal(w, r, sizeof(w));
        if (check_cache)
            assert_int_equal(cached_pages(t.image_fd, A * 512, sizeof(w)), direct ? 0 : 2);

        /* 8 KiB at sector B in buffers of 2730, 2730 and 2732 bytes. */
        uint8_t w2[sizeof(w)];
        pattern(w2, sizeof(w2), 8);
        assert_int_equal(
            req_l(&t, 0, VIRTIO_BLK_T_OUT, B, w2, sizeof(w2), (struct layout){.nseg = 3}, NULL),
            VIRTIO_BLK_S_OK);
        if (check_cache)
            assert_int_equal(cached_pages(t.image_fd, B * 512, sizeof(w2)), 2);
        /* Read back in one aligned buffer (direct I/O after buffered). */
        memset(r, 0, sizeof(r));
        assert_int_equal(req(&t, VIRTIO_BLK_T_IN, B, r, sizeof(r)), VIRTIO_BLK_S_OK);
        assert_memory_equal(w2, r, sizeof(r));
        assert_int_equal(req_l(&t, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, (struct layout){0}, NULL),
                         VIRTIO_BLK_S_OK);

        /* The file holds both, and the fill around them. */
        assert_int_equal(pread(t.image_fd, img, sizeof(img), A * 512), (ssize_t)sizeof(img));
        assert_memory_equal(img, w, sizeof(w));
        assert_int_equal(pread(t.image_fd, img, sizeof(img), B * 512), (ssize_t)sizeof(img));
        assert_memory_equal(img, w2, sizeof(w2));
        assert_true(image_is(&t, 0, A * 512, IMAGE_FILL));
        assert_true(image_is(&t, (A + 16) * 512, (B - A - 16) * 512, IMAGE_FILL));
        assert_true(image_is(&t, (B + 16) * 512, (SECTORS - B - 16) * 512, IMAGE_FILL));
        assert_int_equal(read_eventfd(t.g.err[0]), 0);
        blkt_close(&t);
    }
}

static void test_get_id(void **state)
{
    (void)state;
    struct blkt t;
    blkt_open(&t, 1, false, DISK_FILE);
    char id[VIRTIO_BLK_ID_BYTES];
    uint32_t used = 0;
    assert_int_equal(
        req_l(&t, 0, VIRTIO_BLK_T_GET_ID, 0, id, sizeof(id), (struct layout){0}, &used),
        VIRTIO_BLK_S_OK);
    assert_int_equal(used, VIRTIO_BLK_ID_BYTES + 1);
    char want[VIRTIO_BLK_ID_BYTES] = BLK_ID;
    assert_memory_equal(id, want, sizeof(id));
    /* A shorter buffer gets what fits. */
    memset(id, 0, sizeof(id));
    assert_int_equal(req_l(&t, 0, VIRTIO_BLK_T_GET_ID, 0, id, 3, (struct layout){0}, &used),
                     VIRTIO_BLK_S_OK);
    assert_int_equal(used, 4);
    assert_memory_equal(id, "vhu", 3);
    /* An unknown request type. */
    assert_int_equal(req_l(&t, 0, 0x7777, 0, id, 0, (struct layout){0}, &used),
                     VIRTIO_BLK_S_UNSUPP);
    assert_int_equal(used, 1);
    blkt_close(&t);
}

static void test_discard_write_zeroes(void **state)
{
    (void)state;
    for (int disk = DISK_FILE; disk <= DISK_RAM; disk++) {
        struct blkt t;
        blkt_open(&t, 1, false, disk);
        static uint8_t w[24 * 512], r[24 * 512];
        pattern(w, sizeof(w), 2);
        assert_int_equal(req(&t, VIRTIO_BLK_T_OUT, 100, w, sizeof(w)), VIRTIO_BLK_S_OK);
        /* Discard 100..103; write zeroes on 108..111 (keep allocation) and
         * 116..119 (may unmap). */
        assert_int_equal(zero_req(&t, VIRTIO_BLK_T_DISCARD, 100, 4, 0), VIRTIO_BLK_S_OK);
        assert_int_equal(zero_req(&t, VIRTIO_BLK_T_WRITE_ZEROES, 108, 4, 0), VIRTIO_BLK_S_OK);
        assert_int_equal(
            zero_req(&t, VIRTIO_BLK_T_WRITE_ZEROES, 116, 4, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP),
            VIRTIO_BLK_S_OK);
        assert_int_equal(req(&t, VIRTIO_BLK_T_IN, 100, r, sizeof(r)), VIRTIO_BLK_S_OK);
        for (unsigned s = 0; s < 24; s++) {
            bool zeroed = s < 4 || (s >= 8 && s < 12) || (s >= 16 && s < 20);
            if (zeroed) {
                static const uint8_t z[512];
                assert_memory_equal(r + s * 512, z, 512);
            } else {
                assert_memory_equal(r + s * 512, w + s * 512, 512);
            }
        }
        /* Refused: past the end, too long for one segment, unknown flags
         * (UNMAP means nothing to a discard), two segments. */
        assert_int_equal(zero_req(&t, VIRTIO_BLK_T_DISCARD, SECTORS - 2, 4, 0), VIRTIO_BLK_S_IOERR);
        assert_int_equal(zero_req(&t, VIRTIO_BLK_T_WRITE_ZEROES, ~0ull - 1, 4, 0),
                         VIRTIO_BLK_S_IOERR);
        assert_int_equal(zero_req(&t, VIRTIO_BLK_T_WRITE_ZEROES, 0, BLK_MAX_ZERO_SECTORS + 1, 0),
                         VIRTIO_BLK_S_IOERR);
        assert_int_equal(
            zero_req(&t, VIRTIO_BLK_T_DISCARD, 0, 4, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP),
            VIRTIO_BLK_S_UNSUPP);
        assert_int_equal(zero_req(&t, VIRTIO_BLK_T_WRITE_ZEROES, 0, 4, 0x80), VIRTIO_BLK_S_UNSUPP);
        struct virtio_blk_discard_write_zeroes two[2] = {{.sector = 0, .num_sectors = 1},
                                                         {.sector = 2, .num_sectors = 1}};
        assert_int_equal(req(&t, VIRTIO_BLK_T_DISCARD, 0, two, sizeof(two)), VIRTIO_BLK_S_IOERR);
        if (disk == DISK_FILE) {
            assert_true(image_is(&t, 0, 100 * 512, IMAGE_FILL));
            struct stat st;
            assert_int_equal(fstat(t.image_fd, &st), 0);
            assert_int_equal(st.st_size, SECTORS * 512);
        }
        blkt_close(&t);
    }
}

/* Requests that run past the end: an error status, and nothing read or
 * written out of bounds (the image file keeps its size and contents). */
static void test_out_of_range(void **state)
{
    (void)state;
    for (int disk = DISK_FILE; disk <= DISK_RAM; disk++) {
        struct blkt t;
        blkt_open(&t, 1, false, disk);
        static uint8_t w[4 * 512], r[4 * 512];
        memset(w, 0x77, sizeof(w));
        uint32_t used = 0;
        const uint64_t bad[] = {SECTORS - 1, SECTORS, SECTORS + 1, 1ull << 55, ~0ull, ~0ull - 1};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            assert_int_equal(req(&t, VIRTIO_BLK_T_OUT, bad[i], w, sizeof(w)), VIRTIO_BLK_S_IOERR);
            memset(r, 0x55, sizeof(r));
            assert_int_equal(
                req_l(&t, 0, VIRTIO_BLK_T_IN, bad[i], r, sizeof(r), (struct layout){0}, &used),
                VIRTIO_BLK_S_IOERR);
            assert_int_equal(used, 1); /* no data */
            for (size_t k = 0; k < sizeof(r); k++)
                assert_int_equal(r[k], 0xee); /* the driver's buffer untouched */
        }
        /* Not a whole number of sectors. */
        assert_int_equal(req(&t, VIRTIO_BLK_T_OUT, 0, w, 513), VIRTIO_BLK_S_IOERR);
        assert_int_equal(req(&t, VIRTIO_BLK_T_IN, 0, r, 100), VIRTIO_BLK_S_IOERR);
        /* A zero-length read or write is in range and does nothing. */
        assert_int_equal(req(&t, VIRTIO_BLK_T_OUT, SECTORS, NULL, 0), VIRTIO_BLK_S_OK);
        if (disk == DISK_FILE) {
            struct stat st;
            assert_int_equal(fstat(t.image_fd, &st), 0);
            assert_int_equal(st.st_size, SECTORS * 512);
            assert_true(image_is(&t, 0, SECTORS * 512, IMAGE_FILL));
        } else {
            for (size_t k = 0; k < SECTORS * 512; k++)
                assert_int_equal(blk_ram(t.dev)[k], 0);
        }
        assert_int_equal(read_eventfd(t.g.err[0]), 0);
        blkt_close(&t);
    }
}

/* A read-only disk refuses every write (the image is also opened read-only,
 * so the RAM disk is where the device's own check shows). */
static void test_read_only(void **state)
{
    (void)state;
    for (int disk = DISK_FILE; disk <= DISK_RAM; disk++) {
        struct blkt t;
        blkt_open(&t, 1, true, disk);
        uint8_t fill = disk == DISK_FILE ? IMAGE_FILL : 0;
        static uint8_t w[2 * 512], r[2 * 512];
        memset(w, 0x11, sizeof(w));
        assert_int_equal(req(&t, VIRTIO_BLK_T_OUT, 4, w, sizeof(w)), VIRTIO_BLK_S_IOERR);
        assert_int_equal(zero_req(&t, VIRTIO_BLK_T_DISCARD, 4, 2, 0), VIRTIO_BLK_S_IOERR);
        assert_int_equal(zero_req(&t, VIRTIO_BLK_T_WRITE_ZEROES, 4, 2, 0), VIRTIO_BLK_S_IOERR);
        assert_int_equal(req(&t, VIRTIO_BLK_T_IN, 4, r, sizeof(r)), VIRTIO_BLK_S_OK);
        for (size_t k = 0; k < sizeof(r); k++)
            assert_int_equal(r[k], fill);
        assert_int_equal(req(&t, VIRTIO_BLK_T_FLUSH, 0, NULL, 0), VIRTIO_BLK_S_OK);
        if (disk == DISK_FILE) {
            assert_true(image_is(&t, 0, SECTORS * 512, IMAGE_FILL));
        } else {
            /* The RAM disk starts zeroed; write-zeroes would not show, the
             * write would. */
            for (size_t k = 0; k < SECTORS * 512; k++)
                assert_int_equal(blk_ram(t.dev)[k], 0);
        }
        blkt_close(&t);
    }
}

/* Requests the device cannot answer (no header, no writable status byte)
 * break the ring: logged once, err eventfd, nothing completed, no crash;
 * the back-end goes on serving. */
static void test_malformed(void **state)
{
    (void)state;
    for (int c = 0; c < 4; c++) {
        struct blkt t;
        blkt_open(&t, 1, false, DISK_FILE);
        uint64_t base = SLOT(0, 0);
        struct virtio_blk_outhdr *h = (void *)gptr(&t, base, 16);
        *h = (struct virtio_blk_outhdr){.type = VIRTIO_BLK_T_OUT, .sector = 0};
        struct vhu_fe_buf b[3];
        unsigned n = 0;
        switch (c) {
        case 0: /* the header alone */ b[n++] = (struct vhu_fe_buf){base, 16, false}; break;
        case 1: /* status byte not writable */
            b[n++] = (struct vhu_fe_buf){base, 16, false};
            b[n++] = (struct vhu_fe_buf){base + DATA_OFF, 512, false};
            b[n++] = (struct vhu_fe_buf){base + STATUS_OFF, 1, false};
            break;
        case 2: /* header too short */
            b[n++] = (struct vhu_fe_buf){base, 8, false};
            b[n++] = (struct vhu_fe_buf){base + STATUS_OFF, 1, true};
            break;
        case 3: /* only a writable buffer */
            b[n++] = (struct vhu_fe_buf){base + STATUS_OFF, 1, true};
            break;
        }
        assert_int_equal(vhu_fe_vring_push_chain(&t.g.ring[0], 0, b, n), 0);
        guest_kick(&t.g, 0);
        assert_true(log_wait("without a 16-byte header or a writable status byte", 2000));
        assert_int_equal(log_count("ring 0 broken"), 1);
        uint64_t errs = 0;
        for (int i = 0; i < 2000 && (errs = read_eventfd(t.g.err[0])) == 0; i++)
            sleep_ms(1);
        assert_int_equal(errs, 1); /* the front-end was told */
        assert_int_equal(vhu_fe_vring_used_idx(&t.g.ring[0]), 0);
        unsigned vbase = 99;
        assert_int_equal(vhu_fe_get_vring_base(t.fe, 0, &vbase), 0);
        /* Taken, not answerable: split, avail index 1; packed, avail
         * position n (its descriptors), used position 0, both wrap
         * counters 1. */
        assert_int_equal(vbase, packed_layout ? 0x80008000u | n : 1u);
        assert_true(image_is(&t, 0, SECTORS * 512, IMAGE_FILL));
        /* The back-end still speaks the protocol. */
        uint64_t nq = 0;
        assert_int_equal(vhu_fe_get_queue_num(t.fe, &nq), 0);
        blkt_close(&t);
    }
}

/* Four queues at once, each writing its own sectors and reading back
 * another queue's. */
/* Kick queues 0..nq-1, then take per_ring completions from each: every
 * one a request the test submitted (slot below per_ring) with status OK,
 * and when ulen is not 0, that used length. */
static void kick_and_wait_all(struct blkt *t, unsigned nq, unsigned per_ring, uint32_t len,
                              uint32_t ulen)
{
    for (unsigned q = 0; q < nq; q++)
        guest_kick(&t->g, q);
    for (unsigned q = 0; q < nq; q++)
        for (unsigned k = 0; k < per_ring; k++) {
            uint32_t id, got;
            wait_used(t, q, &id, &got);
            assert_true(id < per_ring);
            if (ulen)
                assert_int_equal(got, ulen);
            assert_int_equal(status_of(t, q, id, len, (struct layout){0}), VIRTIO_BLK_S_OK);
        }
}

static void test_multiqueue(void **state)
{
    (void)state;
    struct blkt t;
    blkt_open(&t, 4, false, DISK_FILE);
    const unsigned per_ring = 6;
    const uint32_t len = 4 * 512;
    for (unsigned q = 0; q < 4; q++)
        for (unsigned k = 0; k < per_ring; k++) {
            uint8_t *data = gptr(&t, SLOT(q, k) + DATA_OFF, len);
            pattern(data, len, q * 16 + k);
            submit(&t, q, k, VIRTIO_BLK_T_OUT, (q * per_ring + k) * 4, len,
                   (struct layout){.nseg = 2, .indirect = true});
        }
    kick_and_wait_all(&t, 4, per_ring, len, 0);
    /* Read everything back, queue q reading what queue (q + 1) % 4 wrote. */
    for (unsigned q = 0; q < 4; q++)
        for (unsigned k = 0; k < per_ring; k++) {
            memset(gptr(&t, SLOT(q, k) + DATA_OFF, len), 0, len);
            submit(&t, q, k, VIRTIO_BLK_T_IN, (((q + 1) % 4) * per_ring + k) * 4, len,
                   (struct layout){.nseg = 3, .indirect = true});
        }
    kick_and_wait_all(&t, 4, per_ring, len, len + 1);
    uint8_t want[4 * 512];
    for (unsigned q = 0; q < 4; q++) {
        for (unsigned k = 0; k < per_ring; k++) {
            pattern(want, len, ((q + 1) % 4) * 16 + k);
            assert_memory_equal(gptr(&t, SLOT(q, k) + DATA_OFF, len), want, len);
        }
        assert_int_equal(blk_completed(t.dev, q), 2 * per_ring);
    }
    blkt_close(&t);
}

/* GET_VRING_BASE with I/O in flight: a driver thread keeps every slot of
 * the ring busy with writes while the front-end disables and stops the
 * ring.  The returned base must equal the used index (every request the
 * device took is completed, with status OK), nothing moves after it, and
 * after a restart from there the requests left in the ring are served. */
#define STOP_LEN (24 * 512)

struct writer {
    struct blkt *t;
    atomic_bool stop;
    unsigned submitted, completed;
    bool bad_status;
};

static void submit_slot(struct blkt *t, unsigned k)
{
    submit(t, 0, k, VIRTIO_BLK_T_OUT, k * 24, STOP_LEN,
           (struct layout){.nseg = 6, .indirect = true});
}

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    struct blkt *t = w->t;
    for (unsigned k = 0; k < GUEST_RING_SIZE; k++, w->submitted++)
        submit_slot(t, k);
    guest_kick(&t->g, 0);
    while (!atomic_load(&w->stop)) {
        uint32_t id;
        bool any = false;
        while (vhu_fe_vring_pop_used(&t->g.ring[0], &id, NULL) == 1) {
            w->completed++;
            if (id >= GUEST_RING_SIZE ||
                status_of(t, 0, id, STOP_LEN, (struct layout){0}) != VIRTIO_BLK_S_OK) {
                w->bad_status = true;
                continue;
            }
            submit_slot(t, id);
            w->submitted++;
            any = true;
        }
        if (any)
            guest_kick(&t->g, 0);
        else
            usleep(50);
    }
    return NULL;
}

/* Packed rings: the base for n one-descriptor requests taken (the avail
 * and the used half alike when all of them are completed). */
static unsigned packed_half(unsigned n)
{
    return n % GUEST_RING_SIZE | ((n / GUEST_RING_SIZE) % 2 ? 0 : 0x8000u);
}

static void test_stop_in_flight(void **state)
{
    (void)state;
    /* Through the helper threads, and (--direct) through io_uring. */
    for (int round = 0; round < 8; round++) {
        struct blkt t;
        blkt_open(&t, 1, false, round % 2 ? DISK_FILE_DIRECT : DISK_FILE);
        if (round % 2)
            assert_true(blk_async(t.dev, 0) || !uring_works());
        for (unsigned k = 0; k < GUEST_RING_SIZE; k++)
            pattern(gptr(&t, SLOT(0, k) + DATA_OFF, STOP_LEN), STOP_LEN, 50 + k);
        struct writer w = {.t = &t};
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, writer_main, &w), 0);
        /* Stop once the device is busy (it has completed something). */
        for (int i = 0; i < 2000 && blk_completed(t.dev, 0) == 0; i++)
            sleep_ms(1);
        sleep_ms(5 * (unsigned)(round / 2));
        assert_int_equal(vhu_fe_set_vring_enable(t.fe, 0, false), 0);
        unsigned base = 0;
        assert_int_equal(vhu_fe_get_vring_base(t.fe, 0, &base), 0);
        /* A packed ring's used count is the driver thread's to read (the
         * library walks the ring with the driver's positions); nothing
         * moving after the stop is then seen from the count after it. */
        uint16_t used_at_stop = packed_layout ? 0 : vhu_fe_vring_used_idx(&t.g.ring[0]);
        sleep_ms(10);
        atomic_store(&w.stop, true);
        pthread_join(th, NULL);
        assert_false(w.bad_status);
        if (packed_layout) {
            /* Every request taken is completed: both halves alike, and
             * equal to what the driver sees in the ring. */
            unsigned used = vhu_fe_vring_used_idx(&t.g.ring[0]);
            assert_int_equal(base & 0xffff, base >> 16);
            assert_int_equal(base & 0xffff, packed_half(used));
            assert_int_equal(blk_completed(t.dev, 0), used);
        } else {
            assert_int_equal(used_at_stop, (uint16_t)base);
            assert_int_equal(vhu_fe_vring_used_idx(&t.g.ring[0]), (uint16_t)base);
            assert_int_equal(blk_completed(t.dev, 0), base);
        }
        /* The writer keeps the whole ring published. */
        assert_int_equal(w.submitted - w.completed, GUEST_RING_SIZE);

        /* Restart where it stopped (as QEMU does after a stop/start): the
         * requests still in the ring are served. */
        assert_int_equal(vhu_fe_set_vring_base(t.fe, 0, base), 0);
        assert_int_equal(vhu_fe_set_vring_kick(t.fe, 0, t.g.kick[0]), 0);
        assert_int_equal(vhu_fe_set_vring_enable(t.fe, 0, true), 0);
        assert_true(wait_used_idx(&t.g.ring[0], (uint16_t)w.submitted, 2000));
        uint32_t id;
        while (vhu_fe_vring_pop_used(&t.g.ring[0], &id, NULL) == 1) {
            w.completed++;
            assert_int_equal(status_of(&t, 0, id, STOP_LEN, (struct layout){0}), VIRTIO_BLK_S_OK);
        }
        assert_int_equal(w.completed, w.submitted);
        assert_int_equal(vhu_fe_get_vring_base(t.fe, 0, &base), 0);
        if (packed_layout)
            assert_int_equal(base, packed_half(w.submitted) | packed_half(w.submitted) << 16);
        else
            assert_int_equal(base, w.submitted);
        uint8_t *img = malloc(STOP_LEN), *want = malloc(STOP_LEN);
        assert_non_null(img);
        assert_non_null(want);
        for (unsigned k = 0; k < GUEST_RING_SIZE; k++) {
            pattern(want, STOP_LEN, 50 + k);
            assert_int_equal(pread(t.image_fd, img, STOP_LEN, (off_t)k * STOP_LEN),
                             (ssize_t)STOP_LEN);
            assert_memory_equal(img, want, STOP_LEN);
        }
        free(img);
        free(want);
        assert_int_equal(log_count("taken but not completed"), 0);
        blkt_close(&t);
    }
}

/* Restart ring 0 after a GET_VRING_BASE that returned base. */
static void restart_ring(struct blkt *t, unsigned base)
{
    assert_int_equal(vhu_fe_set_vring_base(t->fe, 0, base), 0);
    assert_int_equal(vhu_fe_set_vring_kick(t->fe, 0, t->g.kick[0]), 0);
    assert_int_equal(vhu_fe_set_vring_enable(t->fe, 0, true), 0);
}

/* A RAM disk's contents are device state: saved from one vhu-blk, loaded
 * into another, read back there by the driver.  A load that fails (a
 * truncated stream, a disk of another size) leaves the disk unchanged. */
static void test_ram_state(void **state)
{
    (void)state;
    struct blkt a, b;
    blkt_open(&a, 1, false, DISK_RAM);
    assert_true(vhu_fe_acked_protocol_features(a.fe) & VHU_BIT(VHU_PF_DEVICE_STATE));
    static uint8_t w[8 * 512], r[8 * 512];
    pattern(w, sizeof(w), 7);
    assert_int_equal(req(&a, VIRTIO_BLK_T_OUT, 0, w, sizeof(w)), VIRTIO_BLK_S_OK);
    assert_int_equal(req(&a, VIRTIO_BLK_T_OUT, SECTORS - 8, w, sizeof(w)), VIRTIO_BLK_S_OK);
    unsigned base;
    assert_int_equal(vhu_fe_get_vring_base(a.fe, 0, &base), 0);
    int snap = memfd_create("blk-snap", MFD_CLOEXEC);
    assert_true(snap >= 0);
    assert_int_equal(vhu_fe_save_state(a.fe, snap), 0);
    off_t snap_len = lseek(snap, 0, SEEK_END);
    assert_true(snap_len > 0);

    blkt_open(&b, 1, false, DISK_RAM);
    unsigned bbase;
    assert_int_equal(vhu_fe_get_vring_base(b.fe, 0, &bbase), 0);
    /* Truncated: refused, the disk unchanged (all zeroes). */
    int half = memfd_create("blk-half", MFD_CLOEXEC);
    assert_true(half >= 0);
    uint8_t *buf = malloc((size_t)snap_len);
    assert_non_null(buf);
    assert_int_equal(pread(snap, buf, (size_t)snap_len, 0), snap_len);
    assert_int_equal(write(half, buf, (size_t)snap_len / 2), snap_len / 2);
    lseek(half, 0, SEEK_SET);
    assert_true(vhu_fe_load_state(b.fe, half) < 0);
    for (size_t k = 0; k < SECTORS * 512; k++)
        assert_int_equal(blk_ram(b.dev)[k], 0);
    /* Whole: loaded, the same bytes, and the driver reads them back. */
    lseek(snap, 0, SEEK_SET);
    assert_int_equal(vhu_fe_load_state(b.fe, snap), 0);
    assert_memory_equal(blk_ram(b.dev), blk_ram(a.dev), SECTORS * 512);
    restart_ring(&b, bbase);
    assert_int_equal(req(&b, VIRTIO_BLK_T_IN, SECTORS - 8, r, sizeof(r)), VIRTIO_BLK_S_OK);
    assert_memory_equal(r, w, sizeof(w));
    blkt_close(&b);

    /* Another size: refused, with a line saying so. */
    struct blkt c;
    blkt_open_sized(&c, 1, false, DISK_RAM, 2 * SECTORS * BLK_SECTOR);
    assert_int_equal(vhu_fe_get_vring_base(c.fe, 0, &bbase), 0);
    log_clear();
    lseek(snap, 0, SEEK_SET);
    assert_true(vhu_fe_load_state(c.fe, snap) < 0);
    /* "config" comes first and names the field. */
    assert_int_equal(log_count("capacity: snapshot 2048 sectors, this disk 4096"), 1);
    for (size_t k = 0; k < 2 * SECTORS * 512; k++)
        assert_int_equal(blk_ram(c.dev)[k], 0);
    blkt_close(&c);
    blkt_close(&a);
    free(buf);
    close(half);
    close(snap);
}

/* A live snapshot of a RAM disk (the control socket's `snapshot`) while a
 * driver keeps every slot of the ring busy with writes: each 4 KiB block
 * written holds (block, sequence number) in every 16 bytes, and slot k
 * writes only blocks k, k + 32, ... (one write per block in flight).  In
 * the snapshot every block must be whole (one write, not two mixed), not
 * older than the last write to it completed before the request, not newer
 * than the last one submitted before the reply.  The driver keeps going
 * through it; the longest request and the longest gap between completions
 * are printed.  Queue depth 32, on a ring of 32 entries. */
#define SNAP_DEPTH 32u /* requests in flight; slots 0-31 of ring 0 */
#define SNAP_BLOCK 4096u
#define SNAP_BLOCKS (SECTORS * 512u / SNAP_BLOCK)

struct snapwriter {
    struct blkt *t;
    atomic_bool stop;
    pthread_mutex_t lock; /* seq, done, issued, completed */
    uint64_t seq;
    uint64_t published;           /* writes 1..published are in the avail ring */
    uint64_t done[SNAP_BLOCKS];   /* last completed write per block */
    uint64_t issued[SNAP_BLOCKS]; /* last submitted */
    unsigned long completed;
    unsigned slot_block[SNAP_DEPTH];
    uint64_t slot_seq[SNAP_DEPTH];
    double slot_t[SNAP_DEPTH];
    double max_stall, max_gap, last_done;
    bool bad;
    uint32_t rng;
    /* Which block write number s went to (s < SEQ_CAP): the driver's
     * history, from which the disk at any request boundary follows. */
    uint32_t *seq_block;
    bool overflow;
};
#define SEQ_CAP (1u << 21)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sw_submit(struct snapwriter *w, unsigned k)
{
    w->rng ^= w->rng << 13;
    w->rng ^= w->rng >> 17;
    w->rng ^= w->rng << 5;
    unsigned block = (w->rng % (SNAP_BLOCKS / SNAP_DEPTH)) * SNAP_DEPTH + k;
    pthread_mutex_lock(&w->lock);
    uint64_t seq = ++w->seq;
    w->issued[block] = seq;
    if (seq < SEQ_CAP)
        w->seq_block[seq] = block;
    else
        w->overflow = true;
    pthread_mutex_unlock(&w->lock);
    uint64_t *d = (uint64_t *)gptr(w->t, SLOT(0, k) + DATA_OFF, SNAP_BLOCK);
    for (unsigned i = 0; i < SNAP_BLOCK / 16; i++) {
        d[2 * i] = block;
        d[2 * i + 1] = seq;
    }
    w->slot_block[k] = block;
    w->slot_seq[k] = seq;
    w->slot_t[k] = now_s();
    submit(w->t, 0, k, VIRTIO_BLK_T_OUT, (uint64_t)block * (SNAP_BLOCK / 512), SNAP_BLOCK,
           (struct layout){.indirect = true});
}

static void *snapwriter_main(void *arg)
{
    struct snapwriter *w = arg;
    struct blkt *t = w->t;
    for (unsigned k = 0; k < SNAP_DEPTH; k++)
        sw_submit(w, k);
    guest_kick(&t->g, 0);
    w->last_done = now_s();
    while (!atomic_load(&w->stop)) {
        uint32_t id;
        bool any = false;
        while (vhu_fe_vring_pop_used(&t->g.ring[0], &id, NULL) == 1) {
            double now = now_s();
            if (id >= SNAP_DEPTH ||
                status_of(t, 0, id, SNAP_BLOCK, (struct layout){0}) != VIRTIO_BLK_S_OK) {
                w->bad = true;
                continue;
            }
            if (now - w->slot_t[id] > w->max_stall)
                w->max_stall = now - w->slot_t[id];
            if (now - w->last_done > w->max_gap)
                w->max_gap = now - w->last_done;
            w->last_done = now;
            pthread_mutex_lock(&w->lock);
            w->done[w->slot_block[id]] = w->slot_seq[id];
            w->completed++;
            pthread_mutex_unlock(&w->lock);
            sw_submit(w, id);
            any = true;
        }
        if (any)
            guest_kick(&t->g, 0);
        else
            usleep(20);
    }
    return NULL;
}

static unsigned long sw_completed(struct snapwriter *w)
{
    pthread_mutex_lock(&w->lock);
    unsigned long n = w->completed;
    pthread_mutex_unlock(&w->lock);
    return n;
}

static void ram_snapshot_live(bool fork_mode)
{
    struct blkt a, b;
    blkt_control = true;
    blkt_ring_size = SNAP_DEPTH;
    blkt_fork_snapshots = fork_mode;
    blkt_open(&a, 1, false, DISK_RAM);
    struct snapwriter *w = calloc(1, sizeof(*w));
    assert_non_null(w);
    w->seq_block = calloc(SEQ_CAP, sizeof(*w->seq_block));
    assert_non_null(w->seq_block);
    w->t = &a;
    w->rng = 0x9e3779b9u;
    pthread_mutex_init(&w->lock, NULL);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, snapwriter_main, w), 0);
    for (int i = 0; i < 5000 && sw_completed(w) < 500; i++)
        sleep_ms(1);

    struct vhu_fe_control *ctl = NULL;
    assert_int_equal(vhu_fe_control_connect(&ctl, a.ds.control, 30000), 0);
    static uint64_t lower[SNAP_BLOCKS], upper[SNAP_BLOCKS];
    pthread_mutex_lock(&w->lock);
    memcpy(lower, w->done, sizeof(lower));
    unsigned long before = w->completed;
    pthread_mutex_unlock(&w->lock);
    int f = memfd_create("blk-live", MFD_CLOEXEC);
    assert_true(f >= 0);
    struct vhu_fe_control_snapshot res;
    char err[256];
    int r = vhu_fe_control_snapshot(ctl, f, 30000, &res, err, sizeof(err));
    pthread_mutex_lock(&w->lock);
    memcpy(upper, w->issued, sizeof(upper));
    unsigned long at_reply = w->completed;
    uint64_t seq_at_reply = w->seq;
    pthread_mutex_unlock(&w->lock);
    /* The driver goes on after it too. */
    for (int i = 0; i < 5000 && sw_completed(w) < at_reply + 100; i++)
        sleep_ms(1);
    atomic_store(&w->stop, true);
    pthread_join(th, NULL);
    if (r < 0)
        fprintf(stderr, "snapshot: %s: %s\n", vhu_strerror(r), err);
    assert_int_equal(r, 0);
    assert_false(w->bad);
    assert_true(w->completed >= at_reply + 100);
    assert_false(w->overflow);
    fprintf(stderr,
            "vhu-blk --ram 1 MiB (%s), queue depth %u writes: rings paused %llu us (fork %llu "
            "us), %llu bytes in %llu us; %lu writes before, %lu during, longest request %.0f us, "
            "longest gap between completions %.0f us\n",
            fork_mode ? "fork" : "copy-before-write", SNAP_DEPTH, (unsigned long long)res.pause_us,
            (unsigned long long)res.fork_us, (unsigned long long)res.bytes,
            (unsigned long long)res.duration_us, before, at_reply - before, w->max_stall * 1e6,
            w->max_gap * 1e6);

    /* Into a fresh RAM disk; every block checked. */
    blkt_open(&b, 1, false, DISK_RAM);
    unsigned base;
    assert_int_equal(vhu_fe_get_vring_base(b.fe, 0, &base), 0);
    lseek(f, 0, SEEK_SET);
    assert_int_equal(vhu_fe_load_state(b.fe, f), 0);
    /* The ring's base in it: what the device had taken at the pause. */
    assert_int_equal(vhu_fe_get_vring_base(b.fe, 0, &base), 0);
    /* On a split ring the base counts requests taken (mod 2^16), and the
     * driver numbered its writes in ring order: the snapshot must be the
     * disk after writes 1..taken exactly, and none after. */
    static uint64_t exact[SNAP_BLOCKS];
    bool check_exact = !packed_layout;
    uint64_t taken = 0;
    if (check_exact) {
        /* At least what had completed before the request was taken, and
         * fewer than 65536 more before the pause (it follows the request
         * within milliseconds; the stream may take much longer). */
        taken = before + ((base - before) & 0xffffu);
        if (taken > seq_at_reply)
            fail_msg("the snapshot's ring base %u is not within writes %lu..%llu (completed "
                     "before the request .. submitted before the reply)",
                     base, before, (unsigned long long)seq_at_reply);
        memset(exact, 0, sizeof(exact));
        for (uint64_t sq = 1; sq <= taken; sq++)
            exact[w->seq_block[sq]] = sq;
    }
    const uint8_t *ram = blk_ram(b.dev);
    unsigned written = 0, newer = 0;
    for (unsigned blk = 0; blk < SNAP_BLOCKS; blk++) {
        uint64_t d[SNAP_BLOCK / 8];
        memcpy(d, ram + (size_t)blk * SNAP_BLOCK, SNAP_BLOCK);
        uint64_t seq = d[1];
        if (check_exact && seq != exact[blk])
            fail_msg("block %u holds write %llu; the disk after the %llu writes the ring had "
                     "taken at the pause holds write %llu there",
                     blk, (unsigned long long)seq, (unsigned long long)taken,
                     (unsigned long long)exact[blk]);
        if (d[0] == 0 && seq == 0) {
            for (unsigned i = 0; i < SNAP_BLOCK / 8; i++)
                assert_int_equal(d[i], 0);
            assert_int_equal(lower[blk], 0);
            continue;
        }
        written++;
        for (unsigned i = 0; i < SNAP_BLOCK / 16; i++) {
            if (d[2 * i] != blk || d[2 * i + 1] != seq)
                fail_msg("block %u torn at byte %u: (%llu, %llu) after (%u, %llu)", blk, i * 16,
                         (unsigned long long)d[2 * i], (unsigned long long)d[2 * i + 1], blk,
                         (unsigned long long)seq);
        }
        if (seq < lower[blk] || seq > upper[blk])
            fail_msg("block %u holds write %llu: the last completed before the request was "
                     "%llu, the last submitted before the reply %llu",
                     blk, (unsigned long long)seq, (unsigned long long)lower[blk],
                     (unsigned long long)upper[blk]);
        newer += seq > lower[blk];
    }
    fprintf(stderr,
            "%u of %u blocks written in the snapshot, %u of them by writes completed "
            "after the request was sent%s\n",
            written, SNAP_BLOCKS, newer,
            check_exact ? "; every block as after the writes the ring had taken" : "");
    assert_true(written > 0);
    if (packed_layout) {
        /* Every request is one indirect descriptor: the pause came after
         * `taken` of them, at least `before` and fewer than the writer
         * submitted; the avail half is that count's position and wrap
         * counter, the used half too (the pause waits for completions). */
        bool found = false;
        for (unsigned long n = before; n <= w->seq && !found; n++)
            found = (base & 0xffffu) == ((n % SNAP_DEPTH) | ((n / SNAP_DEPTH) % 2 ? 0 : 0x8000u));
        if (!found)
            fail_msg("packed base 0x%08x is no position taken between %lu and %llu", base, before,
                     (unsigned long long)w->seq);
        assert_int_equal(base & 0xffffu, base >> 16);
    }
    blkt_close(&b);
    vhu_fe_control_close(ctl);
    close(f);
    blkt_close(&a);
    pthread_mutex_destroy(&w->lock);
    free(w->seq_block);
    free(w);
}

/* vhu-blk keeps the snapshot itself (ops.snapshot_begin: copy-before-write
 * of its RAM disk, a library thread writes the stream). */
static void test_ram_snapshot_live(void **state)
{
    (void)state;
    ram_snapshot_live(false);
}

/* The same with the copy area made at the start and kept
 * (--snapshot-reserve): ops.snapshot_prepare has nothing left to do. */
static void test_ram_snapshot_live_reserve(void **state)
{
    (void)state;
    blkt_snapshot_reserve = true;
    ram_snapshot_live(false);
}

/* Is this process running under valgrind (its preload is mapped)? */
static bool under_valgrind(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    bool found = false;
    while (f && !found && fgets(line, sizeof(line), f))
        found = strstr(line, "vgpreload") != NULL;
    if (f)
        fclose(f);
    return found;
}

/* The same through the library's fork() (vhu-blk --fork-snapshots).  Not
 * under valgrind 3.19: there the child of this process (vhu-blk's helper
 * threads parked in pthread_cond_wait at the fork) spins in a SIGSEGV loop
 * inside valgrind's own code, 100 k signals a minute, and never runs; the
 * commit before the device's own snapshots does the same on this machine.
 * test_snapshot covers fork under valgrind, ASan and TSan run this one. */
static void test_ram_snapshot_live_fork(void **state)
{
    (void)state;
    if (under_valgrind()) {
        skip();
        return;
    }
    ram_snapshot_live(true);
}

struct snap_call {
    struct vhu_fe_control *ctl;
    int fd, r;
    char err[256];
};

static void *snap_call_main(void *arg)
{
    struct snap_call *c = arg;
    struct vhu_fe_control_snapshot res;
    c->r = vhu_fe_control_snapshot(c->ctl, c->fd, 30000, &res, c->err, sizeof(c->err));
    return NULL;
}

/* Migration comes first.  A SET_DEVICE_STATE_FD that arrives while vhu-blk
 * writes a live snapshot of its own (copy-before-write, on a library thread;
 * here stuck on a pipe nobody reads) cancels it: the snapshot's client is
 * told why, the transfer saves the disk as it is now (a write made after
 * the snapshot's instant included), and no fd is left behind. */
static void test_snapshot_yields_to_transfer(void **state)
{
    (void)state;
    int fds = count_open_fds();
    struct blkt a, b;
    blkt_control = true;
    blkt_open(&a, 1, false, DISK_RAM);
    /* Incompressible contents: the stream is more than a pipe holds. */
    static uint8_t buf[DATA_MAX];
    uint32_t x = 0x2545f491u;
    for (uint64_t sec = 0; sec < SECTORS; sec += DATA_MAX / 512) {
        for (size_t i = 0; i < sizeof(buf); i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            buf[i] = (uint8_t)x;
        }
        uint32_t len = (SECTORS - sec) * 512 < DATA_MAX ? (SECTORS - sec) * 512 : DATA_MAX;
        assert_int_equal(req(&a, VIRTIO_BLK_T_OUT, sec, buf, len), VIRTIO_BLK_S_OK);
    }
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    struct snap_call sc = {.fd = p[1]};
    struct vhu_fe_control *ctl2;
    assert_int_equal(vhu_fe_control_connect(&sc.ctl, a.ds.control, 30000), 0);
    assert_int_equal(vhu_fe_control_connect(&ctl2, a.ds.control, 30000), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, snap_call_main, &sc), 0);
    struct vhu_fe_control_info info;
    bool running = false;
    for (int i = 0; i < 3000 && !running; i++) {
        assert_int_equal(vhu_fe_control_info(ctl2, &info, NULL, 0), 0);
        running = info.snapshot_running;
        vhu_fe_control_info_free(&info);
        if (!running)
            sleep_ms(1);
    }
    assert_true(running);
    /* After the snapshot's instant: in the migration's state, not in the
     * snapshot's. */
    memset(buf, 0x5a, 4096);
    assert_int_equal(req(&a, VIRTIO_BLK_T_OUT, 8, buf, 4096), VIRTIO_BLK_S_OK);
    unsigned base;
    assert_int_equal(vhu_fe_get_vring_base(a.fe, 0, &base), 0);
    int m = memfd_create("blk-migrate", MFD_CLOEXEC);
    assert_true(m >= 0);
    assert_int_equal(vhu_fe_save_state(a.fe, m), 0);
    pthread_join(th, NULL);
    assert_true(sc.r < 0);
    if (!strstr(sc.err, "a device-state transfer (SAVE) began"))
        fail_msg("snapshot client told: %s", sc.err);
    assert_int_equal(vhu_fe_control_info(ctl2, &info, NULL, 0), 0);
    assert_false(info.snapshot_running);
    assert_int_equal(info.snapshots_failed, 1);
    vhu_fe_control_info_free(&info);

    /* The migration's stream: the disk as it is now. */
    blkt_open(&b, 1, false, DISK_RAM);
    assert_int_equal(vhu_fe_get_vring_base(b.fe, 0, &base), 0);
    lseek(m, 0, SEEK_SET);
    assert_int_equal(vhu_fe_load_state(b.fe, m), 0);
    const uint8_t *ram = blk_ram(b.dev);
    for (unsigned i = 0; i < 4096; i++)
        assert_int_equal(ram[8 * 512 + i], 0x5a);
    assert_memory_equal(ram, blk_ram(a.dev), SECTORS * 512);
    blkt_close(&b);
    vhu_fe_control_close(ctl2);
    vhu_fe_control_close(sc.ctl);
    close(p[0]);
    close(p[1]);
    close(m);
    blkt_close(&a);
    wait_open_fds(fds);
}

/* The whole of fd `f` (a saved snapshot), malloc'd; its length in *n. */
static uint8_t *slurp(int f, size_t *n)
{
    off_t len = lseek(f, 0, SEEK_END);
    assert_true(len > 0);
    uint8_t *p = malloc((size_t)len);
    assert_non_null(p);
    assert_int_equal(pread(f, p, (size_t)len, 0), len);
    *n = (size_t)len;
    return p;
}

/* Save t's state (ring 0 stopped) into a fresh memfd. */
static int save_to_memfd(struct blkt *t)
{
    int f = memfd_create("blk-state", MFD_CLOEXEC);
    assert_true(f >= 0);
    assert_int_equal(vhu_fe_save_state(t->fe, f), 0);
    return f;
}

/* Load snapshot `snap` into t (ring 0 stopped at base): refused with
 * exactly one line holding `why`; t's state saves as it did before; the
 * ring restarted for the caller to check the data. */
static void refused(struct blkt *t, unsigned base, int snap, const char *why)
{
    int before = save_to_memfd(t);
    log_clear();
    lseek(snap, 0, SEEK_SET);
    assert_true(vhu_fe_load_state(t->fe, snap) < 0);
    if (log_count(why) != 1)
        fail_msg("no single line '%s' in the log", why);
    assert_int_equal(log_count("LOAD failed"), 1);
    int after = save_to_memfd(t);
    size_t nb, na;
    uint8_t *b = slurp(before, &nb), *a = slurp(after, &na);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, nb);
    free(a);
    free(b);
    close(before);
    close(after);
    restart_ring(t, base);
}

/* An image-backed disk offers device state too: section "config", the
 * disk as the driver sees it.  Saved from one vhu-blk, it loads into
 * another on the same image with the same options; one whose disk differs
 * in capacity (another or a resized image), serial, read-only or queue
 * count refuses it, naming the field and both values, and is unchanged:
 * its own state saves the same, and it serves the image's data.  GET_ID
 * answers --serial.  A RAM disk's snapshot and an image's do not load into
 * each other.  No fd is left behind. */
static void test_image_state(void **state)
{
    (void)state;
    int fds = count_open_fds();
    struct blkt src, dst;
    blkt_open_o(&src, (struct blk_options){.queues = 1, .serial = "SN-0123456789abcdefg"},
                DISK_FILE, 0);
    assert_true(vhu_fe_acked_protocol_features(src.fe) & VHU_BIT(VHU_PF_DEVICE_STATE));
    /* All 20 bytes used: no NUL. */
    char id[VIRTIO_BLK_ID_BYTES];
    assert_int_equal(req(&src, VIRTIO_BLK_T_GET_ID, 0, id, sizeof(id)), VIRTIO_BLK_S_OK);
    assert_memory_equal(id, "SN-0123456789abcdefg", sizeof(id));
    static uint8_t w[512], r[512];
    pattern(w, sizeof(w), 11);
    assert_int_equal(req(&src, VIRTIO_BLK_T_OUT, 5, w, sizeof(w)), VIRTIO_BLK_S_OK);
    unsigned base;
    assert_int_equal(vhu_fe_get_vring_base(src.fe, 0, &base), 0);
    int snap = save_to_memfd(&src);

    /* The same image and options: loaded, and the driver reads on. */
    blkt_open_image(&dst, src.image, 1, false, "SN-0123456789abcdefg");
    assert_int_equal(vhu_fe_get_vring_base(dst.fe, 0, &base), 0);
    lseek(snap, 0, SEEK_SET);
    assert_int_equal(vhu_fe_load_state(dst.fe, snap), 0);
    restart_ring(&dst, base);
    assert_int_equal(req(&dst, VIRTIO_BLK_T_IN, 5, r, sizeof(r)), VIRTIO_BLK_S_OK);
    assert_memory_equal(r, w, sizeof(w));
    blkt_close(&dst);

    /* Each difference refused by name.  (A read-only source into a
     * writable destination, or more queues into fewer, is refused before:
     * the handler's features include RO / MQ, which the destination does
     * not offer.) */
    static const struct {
        unsigned queues;
        bool ro;
        const char *serial;
        bool big;
        const char *why;
    } cases[] = {
        {1, false, "SN-other", false,
         "serial: snapshot \"SN-0123456789abcdefg\", this disk \"SN-other\""},
        {1, false, NULL, false, "serial: snapshot \"SN-0123456789abcdefg\", this disk \"vhu-blk\""},
        {1, true, "SN-0123456789abcdefg", false, "read_only: snapshot false, this disk true"},
        {2, false, "SN-0123456789abcdefg", false, "queues: snapshot 1, this disk 2"},
        {1, false, "SN-0123456789abcdefg", true, "capacity: snapshot 2048 sectors, this disk 4096"},
    };
    char big[160];
    snprintf(big, sizeof(big), "%s/big.img", src.dir);
    int bfd = open(big, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    assert_true(bfd >= 0);
    assert_int_equal(ftruncate(bfd, 2 * SECTORS * BLK_SECTOR), 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        blkt_open_image(&dst, cases[i].big ? big : src.image, cases[i].queues, cases[i].ro,
                        cases[i].serial);
        unsigned other; /* a saved or loaded back-end has every ring stopped */
        for (unsigned q = 1; q < cases[i].queues; q++)
            assert_int_equal(vhu_fe_get_vring_base(dst.fe, q, &other), 0);
        assert_int_equal(vhu_fe_get_vring_base(dst.fe, 0, &base), 0);
        refused(&dst, base, snap, cases[i].why);
        assert_int_equal(req(&dst, VIRTIO_BLK_T_IN, 5, r, sizeof(r)), VIRTIO_BLK_S_OK);
        static const uint8_t zero[512];
        assert_memory_equal(r, cases[i].big ? zero : w, sizeof(r)); /* big.img is a hole */
        blkt_close(&dst);
    }
    /* The image grew under the source after the save (SIGHUP): the
     * snapshot no longer matches. */
    assert_int_equal(ftruncate(src.image_fd, (SECTORS + 8) * BLK_SECTOR), 0);
    blkt_open_image(&dst, src.image, 1, false, "SN-0123456789abcdefg");
    assert_int_equal(vhu_fe_get_vring_base(dst.fe, 0, &base), 0);
    refused(&dst, base, snap, "capacity: snapshot 2048 sectors, this disk 2056");
    blkt_close(&dst);
    assert_int_equal(ftruncate(src.image_fd, SECTORS * BLK_SECTOR), 0);

    /* A RAM disk of the same size refuses an image's snapshot (no "disk"),
     * and an image-backed disk a RAM disk's (unknown "disk"). */
    blkt_open_o(&dst, (struct blk_options){.queues = 1, .serial = "SN-0123456789abcdefg"}, DISK_RAM,
                SECTORS * BLK_SECTOR);
    assert_int_equal(vhu_fe_get_vring_base(dst.fe, 0, &base), 0);
    refused(&dst, base, snap, "section 'disk' is missing from the snapshot");
    assert_int_equal(vhu_fe_get_vring_base(dst.fe, 0, &base), 0);
    int ram_snap = save_to_memfd(&dst);
    blkt_close(&dst);
    blkt_open_image(&dst, src.image, 1, false, "SN-0123456789abcdefg");
    assert_int_equal(vhu_fe_get_vring_base(dst.fe, 0, &base), 0);
    refused(&dst, base, ram_snap, "section 'disk' (version 1) is unknown to this device");
    blkt_close(&dst);

    close(ram_snap);
    close(snap);
    close(bfd);
    unlink(big);
    blkt_close(&src);
    assert_int_equal(count_open_fds(), fds);
}

/* ---- device state on packed rings ---- */

/* Ring 0 of t set up on t's back-end again from its own guest memory, but
 * without SET_VRING_BASE: it starts where the back-end's state says. */
static void ring_resume_no_base(struct blkt *t, struct vhu_fe *fe, struct guest *g)
{
    struct vhu_mem_region reg = vhu_guest_mem_region(&g->mem);
    assert_int_equal(vhu_fe_set_mem_table(fe, &reg, &g->mem.fd, 1), 0);
    assert_int_equal(vhu_fe_set_vring_num(fe, 0, g->ring_size), 0);
    assert_int_equal(vhu_fe_vring_set_addr(fe, &g->ring[0], 0), 0);
    assert_int_equal(vhu_fe_set_vring_call(fe, 0, g->call[0]), 0);
    assert_int_equal(vhu_fe_set_vring_kick(fe, 0, g->kick[0]), 0);
    assert_int_equal(vhu_fe_set_vring_enable(fe, 0, true), 0);
    (void)t;
}

/* A packed ring's state moves exactly: a RAM disk's ring stopped after 7
 * requests of 3 descriptors (position 21 of a 16-entry ring: 5, both wrap
 * counters flipped to 0) is saved, loaded into a fresh vhu-blk, which
 * reports the same base; the driver's ring then moves to it with no
 * SET_VRING_BASE and goes on there: the next requests are found and
 * completed where the driver expects them, and read the saved data. */
static void test_packed_state_exact(void **state)
{
    (void)state;
    struct blkt a, b;
    blkt_open(&a, 1, false, DISK_RAM);
    assert_true(a.g.ring[0].packed);
    static uint8_t w[4 * 512], r[4 * 512];
    for (unsigned k = 0; k < 7; k++) {
        pattern(w, sizeof(w), 40 + k);
        assert_int_equal(req(&a, VIRTIO_BLK_T_OUT, 8 * k, w, sizeof(w)), VIRTIO_BLK_S_OK);
    }
    unsigned base;
    assert_int_equal(vhu_fe_get_vring_base(a.fe, 0, &base), 0);
    assert_int_equal(base, 0x00050005u);
    assert_int_equal(vhu_fe_vring_packed_base(&a.g.ring[0]), base);
    int snap = save_to_memfd(&a);
    /* Saving again gives the same bytes. */
    int again = save_to_memfd(&a);
    size_t n1, n2;
    uint8_t *s1 = slurp(snap, &n1), *s2 = slurp(again, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(s1, s2, n1);
    free(s1);
    free(s2);
    close(again);

    blkt_open(&b, 1, false, DISK_RAM);
    unsigned bbase;
    assert_int_equal(vhu_fe_get_vring_base(b.fe, 0, &bbase), 0);
    assert_int_equal(bbase, 0x80008000u);
    lseek(snap, 0, SEEK_SET);
    assert_int_equal(vhu_fe_load_state(b.fe, snap), 0);
    assert_int_equal(vhu_fe_get_vring_base(b.fe, 0, &bbase), 0);
    assert_int_equal(bbase, base);
    /* The driver of a moves to b: b's vhu-blk serves a's ring. */
    ring_resume_no_base(&b, b.fe, &a.g);
    for (unsigned k = 0; k < 7; k++) {
        pattern(w, sizeof(w), 40 + k);
        assert_int_equal(req(&a, VIRTIO_BLK_T_IN, 8 * k, r, sizeof(r)), VIRTIO_BLK_S_OK);
        assert_memory_equal(r, w, sizeof(r));
    }
    /* 14 requests: position 42 = 10, wrap counters flipped twice, back to 1. */
    assert_int_equal(vhu_fe_get_vring_base(b.fe, 0, &bbase), 0);
    assert_int_equal(bbase, 0x800a800au);
    assert_int_equal(log_count("refused"), 0);
    close(snap);
    blkt_close(&b);
    blkt_close(&a);
}

/* What a hostile handler record of version 2 holds for ring 0 (absent
 * fields: -1 / NULL). */
struct hostile_q {
    const char *layout;
    int64_t last_avail, used_idx;
    int avail_wrap, used_wrap;
    uint32_t size;
};

static void map_add(cbor_item_t *m, const char *k, cbor_item_t *v)
{
    assert_true(cbor_map_add(
        m, (struct cbor_pair){.key = cbor_move(cbor_build_string(k)), .value = cbor_move(v)}));
}

/* The features of snapshot body's handler record (item `rec`). */
static uint64_t record_features(cbor_item_t *rec)
{
    cbor_item_t *h = cbor_map_handle(rec)[0].value;
    struct cbor_pair *p = cbor_map_handle(h);
    for (size_t i = 0; i < cbor_map_size(h); i++)
        if (cbor_string_length(p[i].key) == 8 &&
            memcmp(cbor_string_handle(p[i].key), "features", 8) == 0)
            return cbor_get_int(p[i].value);
    fail_msg("no features in the handler record");
    return 0;
}

/* snap (format 2, one queue) with its handler record replaced by one of
 * this version, its features (without RING_PACKED when split_features)
 * and ring 0 as q says: a memfd. */
static int hostile_snapshot(const uint8_t *snap, size_t n, uint64_t version, bool split_features,
                            const struct hostile_q *q)
{
    uint32_t hl;
    memcpy(&hl, snap + 4, 4);
    size_t hdr = 8 + hl, cap = 16u << 20;
    uint8_t *raw = malloc(cap);
    assert_non_null(raw);
    size_t rn = ZSTD_decompress(raw, cap, snap + hdr, n - hdr);
    assert_false(ZSTD_isError(rn));
    struct cbor_load_result res;
    cbor_item_t *old = cbor_load(raw, rn, &res);
    assert_non_null(old);
    uint64_t features = record_features(old);
    assert_true(features & VHU_BIT(VHU_F_RING_PACKED));
    if (split_features)
        features &= ~VHU_BIT(VHU_F_RING_PACKED);
    cbor_decref(&old);

    cbor_item_t *qm = cbor_new_definite_map(8);
    map_add(qm, "index", cbor_build_uint8(0));
    map_add(qm, "size", cbor_build_uint32(q->size));
    if (q->last_avail >= 0)
        map_add(qm, "last_avail", cbor_build_uint32((uint32_t)q->last_avail));
    map_add(qm, "enabled", cbor_build_bool(true));
    if (q->layout)
        map_add(qm, "layout", cbor_build_string(q->layout));
    if (q->avail_wrap >= 0)
        map_add(qm, "avail_wrap", cbor_build_bool(q->avail_wrap));
    if (q->used_idx >= 0)
        map_add(qm, "used_idx", cbor_build_uint32((uint32_t)q->used_idx));
    if (q->used_wrap >= 0)
        map_add(qm, "used_wrap", cbor_build_bool(q->used_wrap));
    cbor_item_t *qs = cbor_new_definite_array(1);
    assert_true(cbor_array_push(qs, cbor_move(qm)));
    cbor_item_t *hm = cbor_new_definite_map(4);
    map_add(hm, "version", cbor_build_uint64(version));
    map_add(hm, "features", cbor_build_uint64(features));
    map_add(hm, "protocol_features", cbor_build_uint8(0));
    map_add(hm, "queues", qs);
    cbor_item_t *rec = cbor_new_definite_map(1);
    map_add(rec, "handler", hm);
    unsigned char *enc = NULL;
    size_t enc_cap = 0;
    size_t en = cbor_serialize_alloc(rec, &enc, &enc_cap);
    assert_true(en > 0);
    cbor_decref(&rec);

    size_t bn = en + rn - res.read;
    uint8_t *body = malloc(bn);
    assert_non_null(body);
    memcpy(body, enc, en);
    memcpy(body + en, raw + res.read, rn - res.read);
    free(enc);
    free(raw);
    ZSTD_CCtx *c = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
    size_t ocap = hdr + ZSTD_compressBound(bn);
    uint8_t *out = malloc(ocap);
    assert_non_null(out);
    memcpy(out, snap, hdr);
    size_t cn = ZSTD_compress2(c, out + hdr, ocap - hdr, body, bn);
    assert_false(ZSTD_isError(cn));
    ZSTD_freeCCtx(c);
    free(body);
    int fd = memfd_create("hostile", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, out, hdr + cn), (ssize_t)(hdr + cn));
    free(out);
    return fd;
}

/* Hostile handler records of version 2, each refused with one line naming
 * the problem, the loading vhu-blk left as it was (its state saves the
 * same, its ring restarts and serves); the same record with sane values
 * loads, so the refusals are the values'. */
static void test_packed_state_hostile(void **state)
{
    (void)state;
    struct blkt a, b;
    blkt_open(&a, 1, false, DISK_RAM);
    static uint8_t w[512], r[512];
    pattern(w, sizeof(w), 3);
    assert_int_equal(req(&a, VIRTIO_BLK_T_OUT, 9, w, sizeof(w)), VIRTIO_BLK_S_OK);
    unsigned base;
    assert_int_equal(vhu_fe_get_vring_base(a.fe, 0, &base), 0);
    int good_fd = save_to_memfd(&a);
    size_t n;
    uint8_t *good = slurp(good_fd, &n);
    close(good_fd);
    blkt_open(&b, 1, false, DISK_RAM);
    unsigned bbase;
    assert_int_equal(vhu_fe_get_vring_base(b.fe, 0, &bbase), 0);

    static const struct {
        uint64_t version;
        bool split_features;
        struct hostile_q q;
        const char *why;
    } cases[] = {
        {2, false, {"ring", 3, 3, 1, 1, 16}, "handler: queue entry 0: layout \"ring\""},
        {2, false, {NULL, 3, 3, 1, 1, 16}, "handler: queue 0 has no layout"},
        {2, true, {"split", 3, -1, 1, -1, 16}, "queue 0 is a split ring but has avail_wrap"},
        {2, true, {"split", 3, 3, -1, -1, 16}, "queue 0 is a split ring but has used_idx"},
        {2, true, {"split", 3, -1, -1, 0, 16}, "queue 0 is a split ring but has used_wrap"},
        {2,
         false,
         {"packed", 16, 3, 1, 1, 16},
         "avail position 16 or used position 3 is not "
         "below the ring size 16"},
        {2, false, {"packed", 3, 40000, 1, 1, 16}, "avail position 3 or used position 40000"},
        {2,
         false,
         {"packed", 0x8000, 0, 1, 1, 0},
         "avail position 32768 or used position 0 is "
         "not below 32768"},
        {2, false, {"packed", 3, 3, -1, 1, 16}, "handler: packed queue 0 lacks avail_wrap"},
        {2, false, {"packed", 3, -1, 1, 1, 16}, "handler: packed queue 0 lacks used_idx"},
        {2,
         true,
         {"packed", 3, 3, 1, 1, 16},
         "queue 0 is a packed ring, but the features lack "
         "RING_PACKED"},
        {2,
         false,
         {"split", 3, -1, -1, -1, 16},
         "queue 0 is a split ring, but the features "
         "include RING_PACKED"},
        {3,
         false,
         {"packed", 3, 3, 1, 1, 16},
         "handler record version 3; this build reads up to "
         "version 2"},
        {1, false, {"packed", 3, 3, 1, 1, 16}, "handler record version 1 in a format-2 snapshot"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int fd = hostile_snapshot(good, n, cases[i].version, cases[i].split_features, &cases[i].q);
        refused(&b, bbase, fd, cases[i].why);
        assert_int_equal(req(&b, VIRTIO_BLK_T_IN, 9, r, sizeof(r)), VIRTIO_BLK_S_OK);
        static const uint8_t zero[512];
        assert_memory_equal(r, zero, sizeof(r));
        assert_int_equal(vhu_fe_get_vring_base(b.fe, 0, &bbase), 0);
        close(fd);
    }
    /* The same builder with sane values: loaded, the base as written. */
    struct hostile_q ok = {"packed", 7, 6, 0, 1, 16};
    int fd = hostile_snapshot(good, n, 2, false, &ok);
    lseek(fd, 0, SEEK_SET);
    assert_int_equal(vhu_fe_load_state(b.fe, fd), 0);
    assert_int_equal(vhu_fe_get_vring_base(b.fe, 0, &bbase), 0);
    assert_int_equal(bbase, 0x80060007u);
    close(fd);
    free(good);
    blkt_close(&b);
    blkt_close(&a);
}

/* Last: every session before closed every fd it opened (image, worker
 * loops, eventfds, guest memory, sockets). */
/* The image grows, then shrinks, under a running ring (vhu-blk does this on
 * SIGHUP): the capacity in config space follows, the front-end is told on
 * the back-end channel, and requests are checked against the new end. */
static void test_resize(void **state)
{
    (void)state;
    struct blkt t;
    blkt_open(&t, 1, false, DISK_FILE);
    assert_int_equal(vhu_fe_open_backend_channel(t.fe), 0);
    static uint8_t w[512], r[512];
    memset(w, 0x5a, sizeof(w));
    uint64_t size = 0;
    assert_int_equal(blk_resize(t.dev, &size), 0); /* nothing changed */
    assert_int_equal(size, SECTORS * 512);
    assert_int_equal(req(&t, VIRTIO_BLK_T_OUT, SECTORS + 10, w, sizeof(w)), VIRTIO_BLK_S_IOERR);

    /* Grow by 1000 sectors and a half: the half sector does not count. */
    assert_int_equal(ftruncate(t.image_fd, (SECTORS + 1000) * 512 + 256), 0);
    assert_int_equal(blk_resize(t.dev, &size), 1);
    assert_int_equal(size, (SECTORS + 1000) * 512);
    assert_int_equal(blk_size(t.dev), size);
    int sent = -1;
    assert_int_equal(config_change_served(t.ds.b, t.fe, &sent), VHU_BREQ_CONFIG_CHANGE_MSG);
    assert_int_equal(sent, 0);
    uint64_t capacity = 0;
    assert_int_equal(
        vhu_fe_get_config(t.fe, offsetof(struct virtio_blk_config, capacity), &capacity, 8), 0);
    assert_int_equal(capacity, SECTORS + 1000);
    assert_int_equal(req(&t, VIRTIO_BLK_T_OUT, SECTORS + 999, w, sizeof(w)), VIRTIO_BLK_S_OK);
    assert_int_equal(req(&t, VIRTIO_BLK_T_IN, SECTORS + 999, r, sizeof(r)), VIRTIO_BLK_S_OK);
    assert_memory_equal(r, w, sizeof(w));
    assert_int_equal(req(&t, VIRTIO_BLK_T_OUT, SECTORS + 1000, w, sizeof(w)), VIRTIO_BLK_S_IOERR);

    /* Shrink below the original size. */
    assert_int_equal(ftruncate(t.image_fd, 100 * 512), 0);
    assert_int_equal(blk_resize(t.dev, &size), 1);
    assert_int_equal(
        vhu_fe_get_config(t.fe, offsetof(struct virtio_blk_config, capacity), &capacity, 8), 0);
    assert_int_equal(capacity, 100);
    assert_int_equal(req(&t, VIRTIO_BLK_T_IN, 100, r, sizeof(r)), VIRTIO_BLK_S_IOERR);
    assert_int_equal(req(&t, VIRTIO_BLK_T_IN, 99, r, sizeof(r)), VIRTIO_BLK_S_OK);

    /* Less than a sector: refused, the size kept. */
    assert_int_equal(ftruncate(t.image_fd, 100), 0);
    assert_int_equal(blk_resize(t.dev, &size), -EINVAL);
    assert_int_equal(blk_size(t.dev), 100 * 512);
    assert_int_equal(read_eventfd(t.g.err[0]), 0);
    blkt_close(&t);

    /* An in-memory disk has no image to follow. */
    blkt_open(&t, 1, false, DISK_RAM);
    assert_int_equal(blk_resize(t.dev, &size), -ENOTSUP);
    blkt_close(&t);
}

static void test_no_fd_leak(void **state)
{
    (void)state;
    assert_int_equal(count_open_fds(), fds_at_start);
}

/* Packed group: vhu-blk offers RING_PACKED only when asked
 * (blk_options.packed), and the driver then uses it. */
static void test_packed_offered(void **state)
{
    (void)state;
    fds_at_start = count_open_fds();
    struct blkt t;
    blkt_open(&t, 1, false, DISK_RAM);
    uint64_t f = 0;
    assert_int_equal(vhu_fe_get_features(t.fe, &f), 0);
    assert_true(f & VHU_BIT(VHU_F_RING_PACKED));
    assert_true(t.g.ring[0].packed);
    blkt_close(&t);
    packed_layout = false;
    blkt_open(&t, 1, false, DISK_RAM);
    assert_int_equal(vhu_fe_get_features(t.fe, &f), 0);
    assert_false(f & VHU_BIT(VHU_F_RING_PACKED));
    blkt_close(&t);
    packed_layout = true;
}

static int packed_setup(void **state)
{
    (void)state;
    packed_layout = true;
    return 0;
}

static int packed_teardown(void **state)
{
    (void)state;
    packed_layout = false;
    return 0;
}

/* What both ring layouts run: the requests. */
/* clang-format off */
#define REQUEST_TESTS                                   \
    cmocka_unit_test(test_write_read),                  \
    cmocka_unit_test(test_direct),                      \
    cmocka_unit_test(test_get_id),                      \
    cmocka_unit_test(test_discard_write_zeroes),        \
    cmocka_unit_test(test_out_of_range),                \
    cmocka_unit_test(test_read_only),                   \
    cmocka_unit_test(test_malformed),                   \
    cmocka_unit_test(test_multiqueue),                  \
    cmocka_unit_test(test_stop_in_flight)
/* clang-format on */

int main(void)
{
    log_capture_install();
    /* clang-format off */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_and_features),
        REQUEST_TESTS,
        cmocka_unit_test(test_ram_state),
        cmocka_unit_test(test_ram_snapshot_live),
        cmocka_unit_test(test_ram_snapshot_live_reserve),
        cmocka_unit_test(test_ram_snapshot_live_fork),
        cmocka_unit_test(test_snapshot_yields_to_transfer),
        cmocka_unit_test(test_image_state),
        cmocka_unit_test(test_resize),
        cmocka_unit_test(test_no_fd_leak),
    };
    /* The same on packed rings, and their own device-state tests. */
    const struct CMUnitTest packed[] = {
        cmocka_unit_test(test_packed_offered),
        REQUEST_TESTS,
        cmocka_unit_test(test_ram_state),
        cmocka_unit_test(test_ram_snapshot_live),
        cmocka_unit_test(test_image_state),
        cmocka_unit_test(test_packed_state_exact),
        cmocka_unit_test(test_packed_state_hostile),
        cmocka_unit_test(test_no_fd_leak),
    };
    /* clang-format on */
    int failed = cmocka_run_group_tests_name("split", tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("packed", packed, packed_setup, packed_teardown);
    return failed;
}
