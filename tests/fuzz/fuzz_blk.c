/* SPDX-License-Identifier: BSD-3-Clause */
/* libFuzzer target: vhu-blk (examples/blk) serving hostile virtio-blk
 * requests from guest memory.
 *
 * The input describes up to 32 requests; the target lays them out as
 * descriptor chains in a 384 KiB guest region (ring of 256 entries at GPA 0,
 * avail ring at 0x1000, used ring at 0x2000, indirect tables, headers,
 * status bytes and data buffers after them), publishes them, applies up to
 * 16 byte patches anywhere in the region (so the rings, tables and headers
 * can be anything), and has vhu-blk serve the ring once on this thread
 * (blk_serve(): inline, or through io_uring with --direct).  One of four
 * disks: 1 MiB in memory, the same read-only, a 1 MiB image file, the image
 * with O_DIRECT.  ASan and UBSan watch every access; the target checks that
 * the used index moved by no more than what was published and that every
 * answered request's status byte is one virtio-blk defines.
 *
 * Input: an 8-byte header {u8 disk, u8 flags, u8 nreq, u8 npatch, u32
 * unused}; flags: 1 EVENT_IDX, 2 INDIRECT_DESC.  Then nreq 16-byte requests
 * {u8 type, u8 nseg, u8 layout, u8 seg_jitter, u32 sector, u16 len, u16
 * misc, u32 extra}: type 0..5 IN, OUT, FLUSH, GET_ID, DISCARD, WRITE_ZEROES,
 * anything else sent as `extra`; len bytes of data (up to 8 KiB, not always
 * a multiple of 512) in nseg (1..8) buffers; layout bits: 1 indirect, 2
 * header in two buffers, 4 header short (8 bytes), 8 status byte read-only,
 * 16 no status byte, 32 status in the last data buffer; for DISCARD and
 * WRITE_ZEROES the data is one segment {sector, num_sectors = misc, flags =
 * extra}.  Then npatch 4-byte patches {u8 where, u8 offset, u8 value, u8
 * unused}: where % 8 picks an area (descriptor table, avail ring, used
 * ring, indirect tables, headers, status bytes, data, more data), the byte
 * written is offset + 256 * (where / 8) into it. */
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vhu/vhu.h>

#include "backend/backend_internal.h"
#include "blk.h"

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define HDR 8
#define REQ 16
#define MAX_REQ 32
#define MAX_PATCH 16
#define RING 256u
#define REGION 0x60000u
#define DESC_GPA 0x0u
#define AVAIL_GPA 0x1000u
#define USED_GPA 0x2000u
#define TABLE_GPA(i) (0x3000u + (i)*0x100u)
#define HEADER_GPA(i) (0x6000u + (i)*0x20u)
#define STATUS_GPA(i) (0x7000u + (i)*0x10u)
#define DATA_GPA(i) (0x10000u + (i)*0x2400u)
#define DATA_MAX 0x2000u
#define UVA 0x7f0000000000ull
#define DISK (1u << 20)

#define F_NEXT 1
#define F_WRITE 2
#define F_INDIRECT 4

struct desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags, next;
};

enum { DISK_RAM, DISK_RAM_RO, DISK_FILE, DISK_DIRECT, NDISKS };
static struct blk *disks[NDISKS];
static char dir[64];
static bool verbose;

static void cleanup(void)
{
    for (unsigned i = 0; i < NDISKS; i++)
        blk_free(disks[i]);
    char path[96];
    snprintf(path, sizeof(path), "%s/disk.img", dir);
    unlink(path);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    verbose = fuzz_log_init();
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/vhu-fuzz-blk-XXXXXX",
             tmp && *tmp && strlen(tmp) < 40 ? tmp : "/tmp");
    if (!mkdtemp(dir))
        abort();
    char path[96];
    snprintf(path, sizeof(path), "%s/disk.img", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || ftruncate(fd, DISK) < 0)
        abort();
    close(fd);
    struct blk_options o[NDISKS] = {
        {.ram_size = DISK, .queues = 1},
        {.ram_size = DISK, .queues = 1, .read_only = true},
        {.image = path, .queues = 1},
        {.image = path, .queues = 1, .direct = true},
    };
    for (unsigned i = 0; i < NDISKS; i++) {
        /* No O_DIRECT on this file system: the plain image instead. */
        if (blk_new(&disks[i], &o[i]) < 0 &&
            (i != DISK_DIRECT || blk_new(&disks[i], &o[DISK_FILE]) < 0))
            abort();
    }
    atexit(cleanup);
    return 0;
}

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_blk: %s\n", what);
    abort();
}

/* A chain being built: into the ring's table (direct) or an indirect one. */
struct chain {
    struct desc *t;
    unsigned n, cap;
};

static void add(struct chain *c, uint64_t gpa, uint32_t len, uint16_t flags)
{
    if (c->n >= c->cap)
        return;
    c->t[c->n] = (struct desc){gpa, len, flags, 0};
    c->n++;
}

/* Lay out request k (16 bytes at r) as a chain; returns its head, or -1
 * when the ring's table is full. */
static int lay_out(uint8_t *mem, unsigned k, const uint8_t *r, unsigned *next_desc)
{
    static const uint32_t types[] = {VIRTIO_BLK_T_IN,      VIRTIO_BLK_T_OUT,
                                     VIRTIO_BLK_T_FLUSH,   VIRTIO_BLK_T_GET_ID,
                                     VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES};
    uint8_t layout = r[2];
    unsigned nseg = 1 + r[1] % 8;
    uint32_t sector = fuzz_le32(r + 4), extra = fuzz_le32(r + 12);
    uint32_t len = fuzz_le16(r + 8) % (DATA_MAX + 1);
    uint16_t misc = fuzz_le16(r + 10);
    uint32_t type = r[0] < 6 ? types[r[0]] : extra;
    bool zero = type == VIRTIO_BLK_T_DISCARD || type == VIRTIO_BLK_T_WRITE_ZEROES;
    bool in = type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;

    struct virtio_blk_outhdr h = {.type = type, .ioprio = 0, .sector = sector};
    memcpy(mem + HEADER_GPA(k), &h, sizeof(h));
    mem[STATUS_GPA(k)] = 0xee;
    if (zero) {
        struct virtio_blk_discard_write_zeroes z = {
            .sector = sector % (DISK / 512), .num_sectors = misc, .flags = extra};
        memcpy(mem + DATA_GPA(k), &z, sizeof(z));
        len = sizeof(z);
        nseg = 1;
    }

    struct desc tmp[12];
    bool indirect = layout & 1;
    struct chain c = {.t = tmp, .n = 0, .cap = 12};
    if (layout & 2) {
        add(&c, HEADER_GPA(k), 8, 0);
        add(&c, HEADER_GPA(k) + 8, layout & 4 ? 0 : 8, 0);
    } else {
        add(&c, HEADER_GPA(k), layout & 4 ? 8 : 16, 0);
    }
    uint32_t off = 0, jitter = r[3] % 64;
    for (unsigned i = 0; i < nseg && len; i++) {
        uint32_t c_len = i + 1 < nseg ? len / nseg : len - off;
        add(&c, DATA_GPA(k) + off + (i ? jitter : 0), c_len, in ? F_WRITE : 0);
        off += c_len;
    }
    if (layout & 32 && c.n > 1 && in) {
        c.t[c.n - 1].len++; /* the status byte shares the last data buffer */
    } else if (!(layout & 16)) {
        add(&c, STATUS_GPA(k), 1, layout & 8 ? 0 : F_WRITE);
    }
    struct desc *table = (struct desc *)(mem + DESC_GPA);
    if (indirect) {
        memcpy(mem + TABLE_GPA(k), tmp, c.n * sizeof(struct desc));
        struct desc *t = (struct desc *)(mem + TABLE_GPA(k));
        for (unsigned i = 0; i + 1 < c.n; i++) {
            t[i].flags |= F_NEXT;
            t[i].next = (uint16_t)(i + 1);
        }
        if (*next_desc >= RING)
            return -1;
        unsigned head = (*next_desc)++;
        table[head] =
            (struct desc){TABLE_GPA(k), (uint32_t)(c.n * sizeof(struct desc)), F_INDIRECT, 0};
        return (int)head;
    }
    if (*next_desc + c.n > RING)
        return -1;
    unsigned head = *next_desc;
    for (unsigned i = 0; i < c.n; i++) {
        table[head + i] = tmp[i];
        if (i + 1 < c.n) {
            table[head + i].flags |= F_NEXT;
            table[head + i].next = (uint16_t)(head + i + 1);
        }
    }
    *next_desc += c.n;
    return (int)head;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < HDR)
        return 0;
    unsigned disk = data[0] % NDISKS;
    uint8_t flags = data[1];
    unsigned nreq = data[2] % (MAX_REQ + 1), npatch = data[3] % (MAX_PATCH + 1);
    data += HDR;
    size -= HDR;
    if (nreq > size / REQ)
        nreq = (unsigned)(size / REQ);
    const uint8_t *reqs = data;
    data += (size_t)nreq * REQ;
    size -= (size_t)nreq * REQ;
    if (npatch > size / 4)
        npatch = (unsigned)(size / 4);
    const uint8_t *patches = data;

    uint8_t *mem = aligned_alloc(4096, REGION);
    if (!mem)
        abort();
    memset(mem, 0, REGION);
    unsigned next_desc = 0, published = 0;
    uint16_t *avail = (uint16_t *)(mem + AVAIL_GPA);
    for (unsigned k = 0; k < nreq; k++) {
        int head = lay_out(mem, k, reqs + (size_t)k * REQ, &next_desc);
        if (head < 0)
            break;
        avail[2 + published] = (uint16_t)head;
        published++;
    }
    avail[1] = (uint16_t)published;
    for (unsigned i = 0; i < npatch; i++) {
        const uint8_t *p = patches + (size_t)i * 4;
        static const uint32_t area[] = {DESC_GPA, AVAIL_GPA, USED_GPA, 0x3000,
                                        0x6000,   0x7000,    0x10000,  0x20000};
        uint32_t at = area[p[0] % 8] + (uint32_t)p[1] + ((uint32_t)(p[0] >> 3) << 8);
        if (at < REGION)
            mem[at] = p[2];
    }
    /* The patches may have rewritten the used index too. */
    uint16_t used_before = *(uint16_t *)(mem + USED_GPA + 2);
    uint8_t before[MAX_REQ];
    for (unsigned k = 0; k < MAX_REQ; k++)
        before[k] = mem[STATUS_GPA(k)];

    struct vhu_region reg = {.gpa = 0, .size = REGION, .uva = UVA, .host = mem};
    struct vhu_backend fb;
    memset(&fb, 0, sizeof(fb));
    fb.mem = (struct vhu_mem){.n = 1, .cap = 1, .r = &reg};
    atomic_init(&fb.logging, false);
    struct vhu_vring q;
    vhu_vring_init(&q, &fb, 0);
    q.num = RING;
    q.addr.desc_user_addr = UVA + DESC_GPA;
    q.addr.avail_user_addr = UVA + AVAIL_GPA;
    q.addr.used_user_addr = UVA + USED_GPA;
    q.features = VHU_BIT(VHU_F_VERSION_1);
    if (flags & 1)
        q.features |= VHU_BIT(VHU_F_RING_EVENT_IDX);
    if (flags & 2)
        q.features |= VHU_BIT(VHU_F_RING_INDIRECT_DESC);
    atomic_store(&q.enabled, true);
    char why[256];
    struct vhu_vring_io *vq = NULL;
    if (vhu_vring_translate(&q, &fb.mem, &q.addr, q.num, q.features, true, why, sizeof(why)) < 0)
        fail(why);
    if (vhu_vring_io_new(&vq, &q) < 0)
        abort();
    blk_serve(disks[disk], 0, vq);

    /* Completions: no more than the avail index published (the ring
     * started at 0). */
    uint16_t used = __atomic_load_n((uint16_t *)(mem + USED_GPA) + 1, __ATOMIC_ACQUIRE);
    if ((uint16_t)(used - used_before) > avail[1] && !vhu_vring_io_broken(vq))
        fail("more completions than requests published");
    /* Without patches every buffer is where it was laid out, and a status
     * byte is only ever written as one: a status virtio-blk defines. */
    for (unsigned k = 0; npatch == 0 && k < nreq; k++) {
        uint8_t st = mem[STATUS_GPA(k)];
        if (st != before[k] && st != VIRTIO_BLK_S_OK && st != VIRTIO_BLK_S_IOERR &&
            st != VIRTIO_BLK_S_UNSUPP)
            fail("a status byte that is none of OK, IOERR, UNSUPP");
    }
    if (verbose)
        fprintf(stderr, "fuzz_blk: disk %u, %u published, used %u, %s\n", disk, published, used,
                vhu_vring_io_broken(vq) ? "broken" : "healthy");
    vhu_vring_io_free(vq);
    pthread_mutex_destroy(&q.sig_lock);
    free(mem);
    return 0;
}
