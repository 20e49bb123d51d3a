/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu-bench-blk: a guest-side virtio-blk driver on the front-end library,
 * for measuring a vhost-user-blk back-end (vhu-blk, qemu-storage-daemon,
 * anything that serves a vhost-user-blk socket).
 *
 *   vhu-bench-blk --socket PATH [--rw randread|randwrite|read|write]
 *                 [--bs BYTES] [--qd N] [--queues N] [--seconds S]
 *                 [--warmup S] [--csv] [--no-header] [--label TEXT]
 *                 [--packed] [--verify]
 *
 * It connects, negotiates VIRTIO_F_VERSION_1 (+ RING_EVENT_IDX when
 * offered, VIRTIO_BLK_F_MQ for more than one queue, RING_PACKED with
 * --packed), maps its own guest memory (one memfd), sets up N split (or
 * packed) rings and keeps each filled with --qd requests (header + data +
 * status, three direct descriptors).  One thread busy-polls every used ring
 * and resubmits at once; the back-end is kicked through the kick eventfd
 * only when it asked for it (split: avail_event with EVENT_IDX,
 * VRING_USED_F_NO_NOTIFY without; packed: the device event suppression
 * area, its descriptor event with EVENT_IDX).  Interrupts are suppressed
 * (split: used_event kept far ahead / VRING_AVAIL_F_NO_INTERRUPT; packed:
 * the driver area's flags DISABLE), as a poll-mode driver does; the call
 * eventfds are never read.  Every completion's id and status byte are
 * checked; a bad one stops the run (exit 1).
 *
 * Output: one line of key=value pairs (or, with --csv, a CSV header and
 * one row): IOPS, MB/s (10^6 bytes), completion latency p50/p99/max in
 * microseconds (from publishing a request to seeing it in the used ring;
 * log-linear histogram, < 1.6 % resolution).  The warm-up is not counted.
 * --verify checks data placement: writes stamp every sector with its
 * number, reads check the stamps (run a sequential write over the whole
 * disk first). */
#include <endian.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/virtio_blk.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <vhu/frontend.h>
#include <vhu/vhu.h>

#define MAX_QUEUES 16u
#define SECTOR 512u
#define AVAIL_F_NO_INTERRUPT 1
#define USED_F_NO_NOTIFY 1
#define SLOT_META 64u /* header at +0, status at +32 */
/* --verify: what a write puts at the start of each sector. */
#define STAMP(sector) ((sector) ^ 0x7668752d626c6b00ull)

enum rw { RW_RANDREAD, RW_RANDWRITE, RW_READ, RW_WRITE };
static const char *const rw_names[] = {"randread", "randwrite", "read", "write"};

struct opts {
    const char *socket;
    enum rw rw;
    uint32_t bs;
    unsigned qd, queues;
    double seconds, warmup;
    bool csv, header, verify, packed;
    const char *label;
};

/* Latency histogram: values in ns; 64 linear sub-buckets per power of two. */
#define SUB_BITS 6
#define NBUCKETS (64 * (64 - SUB_BITS + 1))
struct hist {
    uint64_t n[NBUCKETS];
    uint64_t count, max;
};

static unsigned bucket_of(uint64_t v)
{
    if (v < (1u << SUB_BITS))
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - SUB_BITS;
    return ((shift + 1) << SUB_BITS) + (unsigned)((v >> shift) & ((1u << SUB_BITS) - 1));
}

static uint64_t bucket_value(unsigned b) /* the middle of bucket b */
{
    if (b < (1u << SUB_BITS))
        return b;
    unsigned shift = (b >> SUB_BITS) - 1;
    uint64_t base = ((uint64_t)(1u << SUB_BITS) | (b & ((1u << SUB_BITS) - 1))) << shift;
    return base + ((1ull << shift) >> 1);
}

static void hist_add(struct hist *h, uint64_t v)
{
    h->n[bucket_of(v)]++;
    h->count++;
    if (v > h->max)
        h->max = v;
}

static double hist_pct(const struct hist *h, double p)
{
    if (!h->count)
        return 0;
    uint64_t want = (uint64_t)ceil(p / 100.0 * (double)h->count);
    if (want < 1)
        want = 1;
    uint64_t seen = 0;
    for (unsigned b = 0; b < NBUCKETS; b++) {
        seen += h->n[b];
        if (seen >= want)
            return (double)bucket_value(b);
    }
    return (double)h->max;
}

static inline uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* ---- one queue ---- */

struct slot {
    uint64_t meta_gpa, data_gpa, sector;
    uint64_t t_submit;
    bool busy;
};

struct queue {
    struct vhu_fe_vring ring;
    int kick, call, err;
    unsigned nslots;
    struct slot *slots;
    uint16_t *avail;    /* flags, idx, ring[size], used_event */
    uint16_t *used;     /* flags, idx, elems, avail_event */
    uint16_t kicked_at; /* split: avail index at the last kick decision */
    uint16_t *dev_area; /* packed: the device's event suppression (off_wrap, flags) */
    unsigned added;     /* packed: descriptors made available since the last decision */
    uint64_t seq_next;  /* next sector for sequential patterns */
    uint64_t rng;
};

static struct opts o = {.rw = RW_RANDREAD,
                        .bs = 4096,
                        .qd = 1,
                        .queues = 1,
                        .seconds = 3,
                        .warmup = 0.5,
                        .header = true};
static bool event_idx;
static uint64_t capacity; /* sectors */
static struct hist hist;
static uint64_t kicks;

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static void die(const char *what, int r)
{
    fprintf(stderr, "vhu-bench-blk: %s: %s\n", what, r < 0 ? strerror(-r) : "failed");
    exit(2);
}

static uint64_t next_sector(struct queue *q)
{
    uint64_t per = o.bs / SECTOR;
    uint64_t blocks = capacity / per;
    if (o.rw == RW_RANDREAD || o.rw == RW_RANDWRITE)
        return (xorshift(&q->rng) % blocks) * per;
    uint64_t s = q->seq_next;
    q->seq_next += per;
    if (q->seq_next + per > blocks * per)
        q->seq_next = 0;
    return s;
}

static void submit(struct queue *q, unsigned k, struct vhu_guest_mem *mem)
{
    struct slot *s = &q->slots[k];
    struct virtio_blk_outhdr *h = vhu_guest_mem_ptr(mem, s->meta_gpa, sizeof(*h));
    uint8_t *status = vhu_guest_mem_ptr(mem, s->meta_gpa + 32, 1);
    bool read = o.rw == RW_RANDREAD || o.rw == RW_READ;
    h->type = htole32(read ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT);
    h->ioprio = 0;
    s->sector = next_sector(q);
    h->sector = htole64(s->sector);
    *status = 0xff;
    if (o.verify) {
        uint8_t *data = vhu_guest_mem_ptr(mem, s->data_gpa, o.bs);
        for (uint32_t off = 0; off < o.bs; off += SECTOR) {
            uint64_t stamp = read ? 0 : STAMP(s->sector + off / SECTOR);
            memcpy(data + off, &stamp, sizeof(stamp));
        }
    }
    struct vhu_fe_buf b[3] = {
        {s->meta_gpa, sizeof(*h), false},
        {s->data_gpa, o.bs, read},
        {s->meta_gpa + 32, 1, true},
    };
    s->busy = true;
    s->t_submit = now_ns();
    /* Split: slot k owns descriptors 3k..3k+2, the head is 3k.  Packed:
     * the buffer ID is k (the chain takes the next three free descriptors). */
    int r = vhu_fe_vring_push_chain(&q->ring, (uint16_t)(o.packed ? k : 3 * k), b, 3);
    if (r < 0)
        die("push", r);
    if (o.packed)
        q->added += 3;
}

/* Packed: kick if the device event suppression asks for it (the kernel
 * driver's virtqueue_kick_prepare_packed): flags ENABLE, or DESC with an
 * event descriptor among those made available since the last decision. */
static bool packed_need_kick(struct queue *q)
{
    uint16_t new_pos = q->ring.next_avail, old = (uint16_t)(new_pos - q->added);
    q->added = 0;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint16_t off_wrap = __atomic_load_n(&q->dev_area[0], __ATOMIC_RELAXED);
    uint16_t flags = __atomic_load_n(&q->dev_area[1], __ATOMIC_RELAXED);
    if (flags != 2)
        return flags != 1;
    uint16_t ev = off_wrap & 0x7fff;
    if ((off_wrap >> 15) != q->ring.avail_wrap)
        ev = (uint16_t)(ev - q->ring.size);
    return (uint16_t)(new_pos - ev - 1) < (uint16_t)(new_pos - old);
}

/* Kick if the device wants it (after a full barrier: the avail index is
 * written, the device's avail_event / flags read after it). */
static void maybe_kick(struct queue *q)
{
    if (o.packed) {
        if (q->added && packed_need_kick(q)) {
            uint64_t one = 1;
            if (write(q->kick, &one, sizeof(one)) != sizeof(one))
                die("kick", -errno);
            kicks++;
        }
        return;
    }
    uint16_t new_idx = q->ring.avail_idx, old = q->kicked_at;
    if (new_idx == old)
        return;
    q->kicked_at = new_idx;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    bool need;
    if (event_idx) {
        uint16_t ev = __atomic_load_n(&q->used[2 + 4 * q->ring.size], __ATOMIC_RELAXED);
        need = (uint16_t)(new_idx - ev - 1) < (uint16_t)(new_idx - old);
    } else {
        need = !(__atomic_load_n(&q->used[0], __ATOMIC_RELAXED) & USED_F_NO_NOTIFY);
    }
    if (need) {
        uint64_t one = 1;
        if (write(q->kick, &one, sizeof(one)) != sizeof(one))
            die("kick", -errno);
        kicks++;
    }
}

static void usage(FILE *f)
{
    fprintf(f, "usage: vhu-bench-blk --socket PATH [--rw randread|randwrite|read|write]\n"
               "                     [--bs BYTES] [--qd N] [--queues N] [--seconds S]\n"
               "                     [--warmup S] [--csv] [--no-header] [--label TEXT]\n"
               "                     [--packed] [--verify]\n"
               "\n"
               "Drive a vhost-user-blk back-end as a busy-polling virtio-blk guest driver\n"
               "and print IOPS, MB/s and completion latency (p50, p99, max).\n"
               "\n"
               "  --socket PATH   the back-end's vhost-user socket\n"
               "  --rw PATTERN    randread (default), randwrite, read, write (sequential)\n"
               "  --bs BYTES      request size, a multiple of 512 (K/M suffix; default 4K)\n"
               "  --qd N          requests in flight per queue (default 1)\n"
               "  --queues N      queues (default 1; >1 needs VIRTIO_BLK_F_MQ)\n"
               "  --seconds S     measured time (default 3)\n"
               "  --warmup S      time run before measuring (default 0.5)\n"
               "  --csv           CSV header and one row instead of key=value\n"
               "  --no-header     with --csv: the row only\n"
               "  --label TEXT    first field of the output (default: the socket path)\n"
               "  --packed        packed rings (VIRTIO_F_RING_PACKED; vhu-blk --packed)\n"
               "  --verify        writes stamp each sector with its number, reads check\n"
               "                  the stamp (for a disk written whole by a --verify run)\n"
               "\n"
               "Exit status: 0, 1 when a request failed (status byte, id), 2 on setup errors.\n");
}

static uint64_t parse_size(const char *s)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s)
        return 0;
    if (*end == 'k' || *end == 'K')
        v <<= 10, end++;
    else if (*end == 'm' || *end == 'M')
        v <<= 20, end++;
    return *end ? 0 : v;
}

static void parse(int argc, char **argv)
{
    static const struct option lo[] = {
        {"socket", required_argument, NULL, 's'}, {"rw", required_argument, NULL, 'w'},
        {"bs", required_argument, NULL, 'b'},     {"qd", required_argument, NULL, 'd'},
        {"queues", required_argument, NULL, 'q'}, {"seconds", required_argument, NULL, 't'},
        {"warmup", required_argument, NULL, 'W'}, {"csv", no_argument, NULL, 'c'},
        {"no-header", no_argument, NULL, 'H'},    {"label", required_argument, NULL, 'l'},
        {"verify", no_argument, NULL, 'V'},       {"packed", no_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "s:w:b:d:q:t:W:cHl:VPh", lo, NULL)) != -1) {
        switch (c) {
        case 's': o.socket = optarg; break;
        case 'w': {
            unsigned i;
            for (i = 0; i < 4 && strcmp(optarg, rw_names[i]); i++) {
            }
            if (i == 4) {
                fprintf(stderr, "vhu-bench-blk: unknown --rw '%s'\n", optarg);
                exit(2);
            }
            o.rw = (enum rw)i;
            break;
        }
        case 'b': o.bs = (uint32_t)parse_size(optarg); break;
        case 'd': o.qd = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'q': o.queues = (unsigned)strtoul(optarg, NULL, 10); break;
        case 't': o.seconds = strtod(optarg, NULL); break;
        case 'W': o.warmup = strtod(optarg, NULL); break;
        case 'c': o.csv = true; break;
        case 'H': o.header = false; break;
        case 'l': o.label = optarg; break;
        case 'V': o.verify = true; break;
        case 'P': o.packed = true; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (!o.socket || optind != argc) {
        usage(stderr);
        exit(2);
    }
    if (o.bs == 0 || o.bs % SECTOR || o.bs > (16u << 20) || o.qd < 1 || o.qd > 341 ||
        o.queues < 1 || o.queues > MAX_QUEUES || !(o.seconds > 0) || o.warmup < 0) {
        fprintf(stderr,
                "vhu-bench-blk: --bs must be a multiple of 512 (<= 16M), --qd 1..341, "
                "--queues 1..%u, --seconds > 0\n",
                MAX_QUEUES);
        exit(2);
    }
    if (!o.label)
        o.label = o.socket;
}

int main(int argc, char **argv)
{
    parse(argc, argv);

    struct vhu_fe *fe;
    int r = vhu_fe_connect(&fe, o.socket, 5000);
    if (r < 0)
        die("connect", r);
    uint64_t want = VHU_BIT(VHU_F_VERSION_1) | VHU_BIT(VHU_F_RING_EVENT_IDX) |
                    (o.queues > 1 ? VHU_BIT(VIRTIO_BLK_F_MQ) : 0) |
                    (o.packed ? VHU_BIT(VHU_F_RING_PACKED) : 0);
    uint64_t want_pf = VHU_BIT(VHU_PF_MQ) | VHU_BIT(VHU_PF_REPLY_ACK) | VHU_BIT(VHU_PF_CONFIG);
    uint64_t acked, pf;
    if ((r = vhu_fe_negotiate(fe, want, want_pf, &acked, &pf)) < 0)
        die("negotiate", r);
    if (!(acked & VHU_BIT(VHU_F_VERSION_1)))
        die("the back-end does not offer VIRTIO_F_VERSION_1", 0);
    if (o.packed && !(acked & VHU_BIT(VHU_F_RING_PACKED)))
        die("--packed, but the back-end does not offer VIRTIO_F_RING_PACKED", 0);
    event_idx = acked & VHU_BIT(VHU_F_RING_EVENT_IDX);
    if (o.queues > 1) {
        uint64_t n = 1;
        if (!(acked & VHU_BIT(VIRTIO_BLK_F_MQ)))
            die("more than one queue, but VIRTIO_BLK_F_MQ is not offered", 0);
        if ((pf & VHU_BIT(VHU_PF_MQ)) && (r = vhu_fe_get_queue_num(fe, &n)) < 0)
            die("GET_QUEUE_NUM", r);
        if (n < o.queues) {
            fprintf(stderr, "vhu-bench-blk: the back-end has %" PRIu64 " queue(s)\n", n);
            return 2;
        }
    }
    if (!(pf & VHU_BIT(VHU_PF_CONFIG)))
        die("the back-end does not offer CONFIG (capacity unknown)", 0);
    struct virtio_blk_config cfg;
    if ((r = vhu_fe_get_config(fe, 0, &cfg,
                               (uint32_t)offsetof(struct virtio_blk_config, size_max))) < 0)
        die("GET_CONFIG", r);
    capacity = le64toh(cfg.capacity);
    if (capacity < o.bs / SECTOR * (uint64_t)o.queues)
        die("the disk is smaller than one request per queue", 0);

    /* Ring size: three descriptors per request, a power of two. */
    unsigned size = 16;
    while (size < 3 * o.qd)
        size *= 2;
    /* Guest memory: rings first (64 KiB apart at least), then per queue
     * qd slots of {64-byte meta} and {bs data, 4 KiB aligned}. */
    uint64_t ring_bytes = o.packed ? vhu_fe_packed_ring_bytes(size) : vhu_fe_vring_bytes(size);
    uint64_t ring_span = (ring_bytes + 0xffff) & ~0xffffull;
    uint64_t data_span = ((uint64_t)o.bs + 4095) & ~4095ull;
    uint64_t meta_span = ((uint64_t)o.qd * SLOT_META + 4095) & ~4095ull;
    uint64_t per_queue = ring_span + meta_span + (uint64_t)o.qd * data_span;
    uint64_t mem_size = ((uint64_t)o.queues * per_queue + 0x1fffff) & ~0x1fffffull;
    struct vhu_guest_mem mem;
    if ((r = vhu_guest_mem_new(&mem, 0x100000, mem_size)) < 0)
        die("guest memory", r);
    struct vhu_mem_region reg = vhu_guest_mem_region(&mem);
    if ((r = vhu_fe_set_mem_table(fe, &reg, &mem.fd, 1)) < 0)
        die("SET_MEM_TABLE", r);
    /* Writes carry a pattern (not zeroes, which a back-end might skip). */
    memset(mem.host, 0x5a, mem.size);

    struct queue *qs = calloc(o.queues, sizeof(*qs));
    if (!qs)
        die("memory", -ENOMEM);
    for (unsigned i = 0; i < o.queues; i++) {
        struct queue *q = &qs[i];
        uint64_t base = mem.gpa + i * per_queue;
        if (o.packed) {
            if ((r = vhu_fe_vring_init_packed(&q->ring, &mem, i, size, base)) < 0)
                die("ring", r);
            q->dev_area = vhu_guest_mem_ptr(&mem, q->ring.used_gpa, 4);
            /* Interrupts off: this driver polls. */
            vhu_fe_vring_packed_set_event(&q->ring, 1, 0);
        } else {
            if ((r = vhu_fe_vring_init(&q->ring, &mem, i, size, base)) < 0)
                die("ring", r);
            q->avail = vhu_guest_mem_ptr(&mem, q->ring.avail_gpa, 6 + 2ull * size);
            q->used = vhu_guest_mem_ptr(&mem, q->ring.used_gpa, 6 + 8ull * size);
            /* Interrupts off: this driver polls. */
            if (event_idx)
                q->avail[2 + size] = 0x8000;
            else
                q->avail[0] = AVAIL_F_NO_INTERRUPT;
        }
        q->nslots = o.qd;
        q->slots = calloc(o.qd, sizeof(*q->slots));
        if (!q->slots)
            die("memory", -ENOMEM);
        for (unsigned k = 0; k < o.qd; k++) {
            q->slots[k].meta_gpa = base + ring_span + k * SLOT_META;
            q->slots[k].data_gpa = base + ring_span + meta_span + k * data_span;
        }
        q->rng = 0x9e3779b97f4a7c15ull * (i + 1);
        q->seq_next = capacity / o.queues * i / (o.bs / SECTOR) * (o.bs / SECTOR);
        q->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        q->call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        q->err = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (q->kick < 0 || q->call < 0 || q->err < 0)
            die("eventfd", -errno);
        if ((r = vhu_fe_set_vring_num(fe, i, size)) < 0 ||
            (r = vhu_fe_vring_set_addr(fe, &q->ring, 0)) < 0 ||
            (r = vhu_fe_set_vring_base(fe, i, o.packed ? vhu_fe_vring_packed_base(&q->ring) : 0)) <
                0 ||
            (r = vhu_fe_set_vring_call(fe, i, q->call)) < 0 ||
            (r = vhu_fe_set_vring_err(fe, i, q->err)) < 0 ||
            (r = vhu_fe_set_vring_kick(fe, i, q->kick)) < 0)
            die("ring set-up", r);
        if ((acked & VHU_BIT(VHU_F_PROTOCOL_FEATURES)) &&
            (r = vhu_fe_set_vring_enable(fe, i, true)) < 0)
            die("SET_VRING_ENABLE", r);
    }

    /* Fill every ring, then poll. */
    for (unsigned i = 0; i < o.queues; i++) {
        for (unsigned k = 0; k < o.qd; k++)
            submit(&qs[i], k, &mem);
        maybe_kick(&qs[i]);
    }
    uint64_t t0 = now_ns();
    uint64_t t_measure = t0 + (uint64_t)(o.warmup * 1e9);
    uint64_t t_end = t_measure + (uint64_t)(o.seconds * 1e9);
    uint64_t done = 0, errors = 0, kicks_at_start = 0;
    bool measuring = o.warmup == 0;
    bool read = o.rw == RW_RANDREAD || o.rw == RW_READ;
    unsigned spin = 0;
    uint64_t now = t0;
    for (;;) {
        bool any = false;
        for (unsigned i = 0; i < o.queues; i++) {
            struct queue *q = &qs[i];
            uint32_t id, len;
            while (vhu_fe_vring_pop_used(&q->ring, &id, &len) == 1) {
                any = true;
                now = now_ns();
                unsigned k = o.packed ? id : id / 3;
                if ((!o.packed && id % 3) || k >= q->nslots || !q->slots[k].busy) {
                    fprintf(stderr,
                            "vhu-bench-blk: queue %u: used id %u is no request in "
                            "flight\n",
                            i, id);
                    return 1;
                }
                struct slot *s = &q->slots[k];
                s->busy = false;
                uint8_t st = *(uint8_t *)vhu_guest_mem_ptr(&mem, s->meta_gpa + 32, 1);
                if (st != VIRTIO_BLK_S_OK || (read && len < o.bs)) {
                    fprintf(stderr,
                            "vhu-bench-blk: queue %u: request %u completed with "
                            "status %u, used length %u\n",
                            i, k, st, len);
                    errors++;
                    return 1;
                }
                if (o.verify && read) {
                    const uint8_t *data = vhu_guest_mem_ptr(&mem, s->data_gpa, o.bs);
                    for (uint32_t off = 0; off < o.bs; off += SECTOR) {
                        uint64_t got, stamp = STAMP(s->sector + off / SECTOR);
                        memcpy(&got, data + off, sizeof(got));
                        if (got != stamp) {
                            fprintf(stderr,
                                    "vhu-bench-blk: queue %u: sector %" PRIu64
                                    " reads back 0x%016" PRIx64 ", not its stamp\n",
                                    i, s->sector + off / SECTOR, got);
                            return 1;
                        }
                    }
                }
                if (measuring) {
                    hist_add(&hist, now - s->t_submit);
                    done++;
                }
                if (now < t_end)
                    submit(q, k, &mem);
            }
            if (event_idx && !o.packed) /* keep interrupts off: used_event far ahead */
                __atomic_store_n(&q->avail[2 + q->ring.size],
                                 (uint16_t)(q->ring.used_seen + 0x7fff), __ATOMIC_RELAXED);
            maybe_kick(q);
        }
        if (!any || ++spin % 64 == 0)
            now = now_ns();
        if (!measuring && now >= t_measure) {
            measuring = true;
            kicks_at_start = kicks;
            t_measure = now;
            t_end = now + (uint64_t)(o.seconds * 1e9);
        }
        if (now >= t_end) {
            /* Let what is in flight come back (not counted after t_end
             * only in time, counted in ios). */
            unsigned left = 0;
            for (unsigned i = 0; i < o.queues; i++)
                for (unsigned k = 0; k < o.qd; k++)
                    left += qs[i].slots[k].busy;
            if (!left)
                break;
            if (now - t_end > 10ull * 1000000000ull) {
                fprintf(stderr,
                        "vhu-bench-blk: %u request(s) not completed 10 s after "
                        "the end\n",
                        left);
                return 1;
            }
        }
    }
    double secs = (double)(now - t_measure) / 1e9;
    double iops = (double)done / secs;
    double mbps = iops * o.bs / 1e6;
    if (o.csv) {
        if (o.header)
            printf("label,rw,bs,qd,queues,seconds,ios,iops,mbps,p50_us,p99_us,max_us,"
                   "kicks,event_idx,errors,ring\n");
        printf("%s,%s,%u,%u,%u,%.3f,%" PRIu64 ",%.0f,%.1f,%.2f,%.2f,%.2f,%" PRIu64 ",%d,%" PRIu64
               ",%s\n",
               o.label, rw_names[o.rw], o.bs, o.qd, o.queues, secs, done, iops, mbps,
               hist_pct(&hist, 50) / 1e3, hist_pct(&hist, 99) / 1e3, (double)hist.max / 1e3,
               kicks - kicks_at_start, event_idx, errors, o.packed ? "packed" : "split");
    } else {
        printf("label=%s rw=%s bs=%u qd=%u queues=%u seconds=%.3f ios=%" PRIu64
               " iops=%.0f mbps=%.1f p50_us=%.2f p99_us=%.2f max_us=%.2f kicks=%" PRIu64
               " event_idx=%d errors=%" PRIu64 " ring=%s\n",
               o.label, rw_names[o.rw], o.bs, o.qd, o.queues, secs, done, iops, mbps,
               hist_pct(&hist, 50) / 1e3, hist_pct(&hist, 99) / 1e3, (double)hist.max / 1e3,
               kicks - kicks_at_start, event_idx, errors, o.packed ? "packed" : "split");
    }
    fflush(stdout);
    vhu_fe_close(fe);
    for (unsigned i = 0; i < o.queues; i++) {
        close(qs[i].kick);
        close(qs[i].call);
        close(qs[i].err);
        free(qs[i].slots);
    }
    free(qs);
    vhu_guest_mem_free(&mem);
    return 0;
}
