/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu-blk under a live migration of guest memory done the way QEMU does it,
 * with this test as the VMM: a driver thread (the guest's vCPU) keeps QD
 * requests in flight on one ring, each slot writing a version of its data
 * and reading it back into a buffer of its own; meanwhile the test turns
 * dirty logging on (SET_LOG_BASE, SET_FEATURES with LOG_ALL, SET_VRING_ADDR
 * with the LOG flag on the running ring: requests in flight), copies all of
 * guest memory to a "destination" copy, then again and again takes the
 * dirty pages (the back-end's log, and the pages the driver wrote: QEMU's
 * own tracking of the vCPU) and copies them.  At switch-over the driver
 * stops, the ring is stopped (SET_VRING_ENABLE 0, GET_VRING_BASE), the log
 * read a last time.
 *
 * Then every page of the destination copy must equal the source: a page the
 * back-end changed without its bit (or set its bit before the change was
 * visible, or changed after GET_VRING_BASE) differs, and the test names it
 * (used ring, a slot's read buffer, a slot's header page).  A second check
 * 20 ms later catches a write after GET_VRING_BASE that came too late for
 * the first.  Then the destination runs: a second vhu-blk on the same image
 * maps the copy, starts the ring at the base the source returned, and the
 * driver carries on there: completions the source published and the driver
 * had not yet seen are consumed from the copy (their read data and status
 * verified), and every slot verifies two more rounds.
 *
 * Run at queue depths 1, 8, 32 and 64, small (512 B - 4 KiB) and large
 * (32 - 64 KiB: vhu-blk's helper threads) requests, on an image through the
 * page cache, with --direct (io_uring) and on a RAM disk (no destination
 * part: its data is device state, tested in test_blk). */
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "blk.h"
#include "devserver.h"
#include "harness.h"

#define MEM_SIZE (16u << 20)
#define PAGE 4096u
#define NPAGES (MEM_SIZE / PAGE)
#define LOG_BYTES (NPAGES / 8)
#define RING_GPA 0x10000u
#define RING_SIZE 128u
#define MAX_QD 64u
/* Slot k: page 0 holds its indirect table, header and status; its write
 * data at A, its read buffer at B.  Only the back-end writes B, so a
 * B page whose copy differs is the back-end's. */
#define SLOT_GPA(k) (0x100000u + (uint64_t)(k)*0x21000u)
#define TABLE_OFF 0x0u
#define HDR_OFF 0x400u
#define STATUS_OFF 0x500u
#define A_OFF 0x1000u
#define B_OFF 0x11000u
#define DATA_MAX 0x10000u
/* Each slot reads and writes only its own zone of the disk. */
#define ZONE (DATA_MAX / BLK_SECTOR)
#define DISK_BYTES ((uint64_t)MAX_QD * DATA_MAX)

enum disk { DISK_FILE, DISK_DIRECT, DISK_RAM };
enum sizes { SMALL, LARGE };

/* One slot's place in its cycle: write version v, then read it back. */
struct slot {
    unsigned v;
    bool reading;
    uint32_t sector, len; /* of version v */
};

struct driver {
    struct vhu_guest_mem *mem;
    struct vhu_fe_vring *ring;
    int kick;
    unsigned qd;
    enum sizes sizes;
    struct slot s[MAX_QD];
    uint8_t *vcpu_dirty; /* pages the driver wrote, one bit each */
    atomic_bool stop;
    unsigned long completed;
    unsigned rounds_min; /* fewest versions verified by any slot */
    char failure[200];
    atomic_bool failed; /* failure written (read the text after a join) */
};

static uint32_t mix(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

/* Version v of slot k: where in its zone, how long, and its bytes. */
static void version_of(const struct driver *d, unsigned k, unsigned v, struct slot *s)
{
    uint32_t r = mix(k * 1000003u + v);
    uint32_t sectors = d->sizes == SMALL ? 1 + r % 8 : 64 + r % 65; /* 512 B-4 KiB, 32-64 KiB */
    s->len = sectors * BLK_SECTOR;
    s->sector = k * ZONE + (mix(r) % (ZONE - sectors + 1));
}

static void fill(uint8_t *p, uint32_t len, unsigned k, unsigned v)
{
    uint32_t x = mix(k * 7919u + v * 104729u + 1);
    for (uint32_t i = 0; i < len; i += 4) {
        x = x * 1664525u + 1013904223u;
        memcpy(p + i, &x, 4);
    }
}

static uint8_t *gp(const struct driver *d, uint64_t gpa) { return d->mem->host + gpa; }

/* The driver wrote [gpa, gpa+len): QEMU's dirty tracking of the vCPU. */
static void vcpu_wrote(struct driver *d, uint64_t gpa, uint64_t len)
{
    for (uint64_t p = gpa / PAGE; p <= (gpa + len - 1) / PAGE; p++)
        __atomic_fetch_or(&d->vcpu_dirty[p / 8], (uint8_t)(1u << (p % 8)), __ATOMIC_RELEASE);
}

static void submit(struct driver *d, unsigned k)
{
    struct slot *s = &d->s[k];
    uint64_t base = SLOT_GPA(k);
    struct virtio_blk_outhdr *h = (void *)gp(d, base + HDR_OFF);
    *h = (struct virtio_blk_outhdr){.type = s->reading ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT,
                                    .sector = s->sector};
    *gp(d, base + STATUS_OFF) = 0xee;
    if (!s->reading) {
        fill(gp(d, base + A_OFF), s->len, k, s->v);
        vcpu_wrote(d, base + A_OFF, s->len);
    }
    /* The data in one, two or three buffers, by version. */
    struct vhu_fe_buf b[5];
    unsigned n = 0, nseg = 1 + s->v % 3;
    if (s->len / BLK_SECTOR < nseg)
        nseg = 1;
    b[n++] = (struct vhu_fe_buf){base + HDR_OFF, 16, false};
    uint64_t data = base + (s->reading ? B_OFF : A_OFF);
    uint32_t off = 0, each = s->len / BLK_SECTOR / nseg * BLK_SECTOR;
    for (unsigned i = 0; i < nseg; i++) {
        uint32_t c = i + 1 < nseg ? each : s->len - off;
        b[n++] = (struct vhu_fe_buf){data + off, c, s->reading};
        off += c;
    }
    b[n++] = (struct vhu_fe_buf){base + STATUS_OFF, 1, true};
    assert_int_equal(vhu_fe_vring_push_indirect(d->ring, (uint16_t)k, base + TABLE_OFF, b, n), 0);
    vcpu_wrote(d, base, PAGE);
    vcpu_wrote(d, RING_GPA, PAGE); /* descriptor table and avail ring */
}

/* The driver's side of a completion of slot id: check it, move the slot
 * on and submit its next request.  false (with d->failure) on a bad one. */
static bool complete(struct driver *d, uint32_t id)
{
    if (id >= d->qd) {
        snprintf(d->failure, sizeof(d->failure), "used id %u (queue depth %u)", id, d->qd);
        atomic_store(&d->failed, true);
        return false;
    }
    struct slot *s = &d->s[id];
    uint64_t base = SLOT_GPA(id);
    uint8_t st = *gp(d, base + STATUS_OFF);
    if (st != VIRTIO_BLK_S_OK) {
        snprintf(d->failure, sizeof(d->failure), "slot %u version %u (%s): status 0x%x", id, s->v,
                 s->reading ? "read" : "write", st);
        atomic_store(&d->failed, true);
        return false;
    }
    if (s->reading) {
        uint8_t *want = malloc(s->len);
        assert_non_null(want);
        fill(want, s->len, id, s->v);
        bool same = memcmp(want, gp(d, base + B_OFF), s->len) == 0;
        free(want);
        if (!same) {
            snprintf(d->failure, sizeof(d->failure),
                     "slot %u version %u: read back differs (sector %u, %u bytes)", id, s->v,
                     s->sector, s->len);
            atomic_store(&d->failed, true);
            return false;
        }
        s->v++;
        version_of(d, id, s->v, s);
        s->reading = false;
    } else {
        s->reading = true;
    }
    __atomic_fetch_add(&d->completed, 1, __ATOMIC_RELAXED);
    submit(d, id);
    return true;
}

static unsigned min_rounds(const struct driver *d)
{
    unsigned m = ~0u;
    for (unsigned k = 0; k < d->qd; k++)
        m = d->s[k].v < m ? d->s[k].v : m;
    return m;
}

/* Consume completions and resubmit until told to stop (or, with
 * until_rounds, until every slot verified that many versions). */
static void drive(struct driver *d, unsigned until_rounds)
{
    struct timespec last, now;
    clock_gettime(CLOCK_MONOTONIC, &last);
    while (!atomic_load(&d->stop)) {
        uint32_t id;
        bool any = false;
        while (vhu_fe_vring_pop_used(d->ring, &id, NULL) == 1) {
            if (!complete(d, id))
                return;
            any = true;
        }
        if (until_rounds && min_rounds(d) >= until_rounds)
            return;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (any) {
            last = now;
            uint64_t one = 1;
            assert_int_equal(write(d->kick, &one, sizeof(one)), 8);
        } else if (now.tv_sec - last.tv_sec > 10) {
            snprintf(d->failure, sizeof(d->failure), "no completion for 10 s (%lu so far)",
                     d->completed);
            atomic_store(&d->failed, true);
            return;
        } else {
            usleep(10);
        }
    }
}

static void *driver_main(void *arg)
{
    drive(arg, 0);
    return NULL;
}

/* ---- the VMM's migration of guest memory ---- */

struct migration {
    uint8_t *log; /* the back-end's dirty log (shared memfd) */
    int log_fd;
    uint8_t *dest; /* the destination's copy of guest memory */
    int dest_fd;
    unsigned synced; /* pages copied after the first pass */
};

static int set_log_base(struct vhu_fe *fe, int fd, uint64_t size)
{
    struct vhu_log l = {.mmap_size = size, .mmap_offset = 0};
    uint64_t st = 0;
    int r = vhu_fe_call(fe, VHU_REQ_SET_LOG_BASE, VHU_FLAG_VERSION, &l, sizeof(l), &fd, 1, &st,
                        sizeof(st), NULL, NULL);
    return r < 0 ? r : r == 8 ? (int)st : -EPROTO;
}

/* One pass over the dirty bits, as QEMU's vhost_dev_sync_region(): take
 * each word of the log with an atomic exchange, then copy the pages whose
 * bits were set (in the back-end's log or the vCPU's). */
static void sync_dirty(struct migration *m, struct driver *d, const uint8_t *src)
{
    uint64_t *vl = (uint64_t *)m->log, *cl = (uint64_t *)d->vcpu_dirty;
    for (unsigned w = 0; w < LOG_BYTES / 8; w++) {
        uint64_t bits = __atomic_exchange_n(&vl[w], 0, __ATOMIC_ACQ_REL) |
                        __atomic_exchange_n(&cl[w], 0, __ATOMIC_ACQ_REL);
        while (bits) {
            unsigned b = (unsigned)__builtin_ctzll(bits);
            bits &= bits - 1;
            uint64_t page = (uint64_t)w * 64 + b;
            memcpy(m->dest + page * PAGE, src + page * PAGE, PAGE);
            m->synced++;
        }
    }
}

/* What the page at gpa is, for a failure message. */
static void describe(uint64_t gpa, char *buf, size_t n)
{
    if (gpa >= RING_GPA && gpa < RING_GPA + PAGE)
        snprintf(buf, n, "descriptor table / avail ring");
    else if (gpa >= RING_GPA + PAGE && gpa < RING_GPA + 4 * PAGE)
        snprintf(buf, n, "used ring");
    else if (gpa >= SLOT_GPA(0) && gpa < SLOT_GPA(MAX_QD)) {
        unsigned k = (unsigned)((gpa - SLOT_GPA(0)) / 0x21000u);
        uint64_t off = gpa - SLOT_GPA(k);
        snprintf(buf, n, "slot %u %s", k,
                 off < A_OFF   ? "header/status page"
                 : off < B_OFF ? "write data"
                               : "read buffer");
    } else {
        snprintf(buf, n, "memory the test never uses");
    }
}

/* Pages where dest and src differ: count, and the first few named. */
static unsigned diff_pages(const uint8_t *dest, const uint8_t *src, const char *when)
{
    unsigned bad = 0;
    for (uint64_t p = 0; p < NPAGES; p++) {
        if (memcmp(dest + p * PAGE, src + p * PAGE, PAGE) == 0)
            continue;
        if (bad++ < 5) {
            char what[80];
            describe(p * PAGE, what, sizeof(what));
            fprintf(stderr, "  %s: guest page 0x%llx (%s) differs in the destination's copy\n",
                    when, (unsigned long long)(p * PAGE), what);
        }
    }
    return bad;
}

static void ring_setup(struct vhu_fe *fe, struct vhu_guest_mem *mem, struct vhu_fe_vring *ring,
                       unsigned base, int kick, int call, int err)
{
    struct vhu_mem_region reg = vhu_guest_mem_region(mem);
    assert_int_equal(vhu_fe_set_mem_table(fe, &reg, &mem->fd, 1), 0);
    assert_int_equal(vhu_fe_set_vring_num(fe, 0, RING_SIZE), 0);
    assert_int_equal(vhu_fe_set_vring_base(fe, 0, base), 0);
    assert_int_equal(vhu_fe_vring_set_addr(fe, ring, 0), 0);
    assert_int_equal(vhu_fe_set_vring_call(fe, 0, call), 0);
    assert_int_equal(vhu_fe_set_vring_err(fe, 0, err), 0);
    assert_int_equal(vhu_fe_set_vring_kick(fe, 0, kick), 0);
    assert_int_equal(vhu_fe_set_vring_enable(fe, 0, true), 0);
}

static struct blk *new_disk(enum disk kind, const char *image)
{
    struct blk *dev = NULL;
    struct blk_options o = {.queues = 1, .direct = kind == DISK_DIRECT};
    if (kind == DISK_RAM)
        o.ram_size = DISK_BYTES;
    else
        o.image = image;
    assert_int_equal(blk_new(&dev, &o), 0);
    return dev;
}

static void migrate_once(enum disk kind, unsigned qd, enum sizes sizes)
{
    char dir[64], image[128];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/vhu-migrate-XXXXXX",
             tmp && *tmp && strlen(tmp) < 40 ? tmp : "/tmp");
    assert_non_null(mkdtemp(dir));
    snprintf(image, sizeof(image), "%s/disk.img", dir);
    int ifd = open(image, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    assert_true(ifd >= 0);
    assert_int_equal(ftruncate(ifd, (off_t)DISK_BYTES), 0);
    close(ifd);

    struct blk *dev = new_disk(kind, image);
    struct devserver ds;
    assert_int_equal(devserver_start(&ds, blk_ops(dev), dev), 0);
    uint64_t acked = 0;
    struct vhu_fe *fe = NULL;
    assert_int_equal(vhu_fe_connect(&fe, ds.path, 2000), 0);
    assert_int_equal(vhu_fe_negotiate(fe, ~VHU_BIT(VHU_F_LOG_ALL), ~0ull, &acked, NULL), 0);
    assert_true(acked & VHU_BIT(VHU_F_RING_EVENT_IDX));
    struct vhu_guest_mem mem;
    assert_int_equal(vhu_guest_mem_new(&mem, 0, MEM_SIZE), 0);
    struct vhu_fe_vring ring;
    assert_int_equal(vhu_fe_vring_init(&ring, &mem, 0, RING_SIZE, RING_GPA), 0);
    int kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK),
        call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int err = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    ring_setup(fe, &mem, &ring, 0, kick, call, err);

    static uint8_t vcpu_dirty[LOG_BYTES] __attribute__((aligned(8)));
    memset(vcpu_dirty, 0, sizeof(vcpu_dirty));
    struct driver d = {.mem = &mem,
                       .ring = &ring,
                       .kick = kick,
                       .qd = qd,
                       .sizes = sizes,
                       .vcpu_dirty = vcpu_dirty};
    for (unsigned k = 0; k < qd; k++) {
        version_of(&d, k, 0, &d.s[k]);
        submit(&d, k);
    }
    uint64_t one = 1;
    assert_int_equal(write(kick, &one, 8), 8);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, driver_main, &d), 0);
    while (__atomic_load_n(&d.completed, __ATOMIC_RELAXED) < 2 * qd && !atomic_load(&d.failed))
        usleep(200);

    /* Migration starts, as QEMU's vhost_log_global_start(): the log, LOG_ALL,
     * then the LOG flag on the running ring (off and on once more: a
     * cancelled and restarted migration), requests in flight throughout. */
    struct migration m = {0};
    m.log_fd = memfd_create("log", MFD_CLOEXEC);
    assert_int_equal(ftruncate(m.log_fd, LOG_BYTES), 0);
    m.log = mmap(NULL, LOG_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, m.log_fd, 0);
    assert_true(m.log != MAP_FAILED);
    assert_int_equal(set_log_base(fe, m.log_fd, LOG_BYTES), 0);
    assert_int_equal(vhu_fe_set_features(fe, acked | VHU_BIT(VHU_F_LOG_ALL)), 0);
    assert_int_equal(vhu_fe_vring_set_addr(fe, &ring, VHU_VRING_F_LOG), 0);
    assert_int_equal(vhu_fe_vring_set_addr(fe, &ring, 0), 0);
    assert_int_equal(vhu_fe_vring_set_addr(fe, &ring, VHU_VRING_F_LOG), 0);

    /* The first pass copies everything; then the dirty pages, round after
     * round, while the guest runs. */
    struct vhu_guest_mem dest;
    assert_int_equal(vhu_guest_mem_new(&dest, 0, MEM_SIZE), 0);
    m.dest = dest.host;
    memcpy(m.dest, mem.host, MEM_SIZE);
    unsigned long at_start = __atomic_load_n(&d.completed, __ATOMIC_RELAXED);
    /* At least 40 passes, and on until the driver saw 2 x QD more
     * completions (a slow disk, a busy machine), for at most 10 s. */
    for (int round = 0; round < 20000 && !atomic_load(&d.failed); round++) {
        if (round >= 40 && __atomic_load_n(&d.completed, __ATOMIC_RELAXED) >= at_start + 2 * qd)
            break;
        usleep(500);
        sync_dirty(&m, &d, mem.host);
    }
    /* Switch-over: the vCPU stops, then the ring (QEMU's vhost_dev_stop),
     * then the last pass over the log. */
    atomic_store(&d.stop, true);
    pthread_join(th, NULL);
    if (atomic_load(&d.failed))
        fail_msg("source: %s", d.failure);
    unsigned long during = d.completed - at_start;
    assert_int_equal(vhu_fe_set_vring_enable(fe, 0, false), 0);
    unsigned base = 0;
    assert_int_equal(vhu_fe_get_vring_base(fe, 0, &base), 0);
    /* Nothing taken is left undone: every request the back-end took is in
     * the used ring. */
    assert_int_equal(vhu_fe_vring_used_idx(&ring), (uint16_t)base);
    sync_dirty(&m, &d, mem.host);
    unsigned bad = diff_pages(m.dest, mem.host, "at switch-over");
    usleep(20000);
    unsigned late = diff_pages(m.dest, mem.host, "20 ms after GET_VRING_BASE");
    if (bad || late)
        fail_msg("%s disk, QD %u, %s requests: %u page(s) differ at switch-over, %u after "
                 "20 ms (%lu requests completed while logging, %u pages copied by the log)",
                 kind == DISK_FILE     ? "image"
                 : kind == DISK_DIRECT ? "direct"
                                       : "RAM",
                 qd, sizes == SMALL ? "small" : "large", bad, late, during, m.synced);
    if (during == 0) {
        log_dump();
        fail_msg("no request completed while logging (%lu before; used %u, avail %u)", at_start,
                 vhu_fe_vring_used_idx(&ring), ring.avail_idx);
    }
    assert_int_equal(wait_eventfd(err, 0), 0);
    assert_int_equal(log_count("broken"), 0);

    if (kind != DISK_RAM) {
        /* The destination: its own vhu-blk on the image, its memory the
         * copy, the ring started at the source's base; the driver goes on
         * there. */
        struct blk *dev2 = new_disk(kind, image);
        struct devserver ds2;
        assert_int_equal(devserver_start(&ds2, blk_ops(dev2), dev2), 0);
        struct vhu_fe *fe2 = NULL;
        assert_int_equal(vhu_fe_connect(&fe2, ds2.path, 2000), 0);
        assert_int_equal(vhu_fe_negotiate(fe2, acked, ~0ull, NULL, NULL), 0);
        struct vhu_fe_vring ring2 = ring;
        ring2.mem = &dest;
        ring_setup(fe2, &dest, &ring2, base, kick, call, err);
        d.mem = &dest;
        d.ring = &ring2;
        atomic_store(&d.stop, false);
        unsigned goal = min_rounds(&d) + 2;
        assert_int_equal(write(kick, &one, 8), 8);
        drive(&d, goal);
        if (atomic_load(&d.failed))
            fail_msg("destination: %s", d.failure);
        assert_true(min_rounds(&d) >= goal);
        assert_int_equal(vhu_fe_set_vring_enable(fe2, 0, false), 0);
        assert_int_equal(vhu_fe_get_vring_base(fe2, 0, &base), 0);
        vhu_fe_close(fe2);
        devserver_stop(&ds2);
        blk_free(dev2);
    }
    fprintf(stderr,
            "  %s disk, QD %2u, %s: %lu requests completed while logging, %u dirty "
            "pages copied, all pages equal\n",
            kind == DISK_FILE     ? "image "
            : kind == DISK_DIRECT ? "direct"
                                  : "RAM   ",
            qd, sizes == SMALL ? "small" : "large", during, m.synced);

    munmap(m.log, LOG_BYTES);
    close(m.log_fd);
    vhu_fe_close(fe);
    devserver_stop(&ds);
    blk_free(dev);
    vhu_guest_mem_free(&dest);
    vhu_guest_mem_free(&mem);
    close(kick);
    close(call);
    close(err);
    unlink(image);
    rmdir(dir);
}

static void run_disk(enum disk kind)
{
    static const unsigned depths[] = {1, 8, 32, 64};
    /* Counted after the first run: the trace file (main) is opened when the
     * first ring starts and stays open. */
    migrate_once(kind, depths[0], SMALL);
    int fds = count_open_fds();
    migrate_once(kind, depths[0], LARGE);
    for (unsigned i = 1; i < sizeof(depths) / sizeof(depths[0]); i++) {
        migrate_once(kind, depths[i], SMALL);
        migrate_once(kind, depths[i], LARGE);
    }
    assert_int_equal(count_open_fds(), fds);
}

static void test_image(void **state)
{
    (void)state;
    run_disk(DISK_FILE);
}

static void test_direct(void **state)
{
    (void)state;
    run_disk(DISK_DIRECT);
}

static void test_ram(void **state)
{
    (void)state;
    run_disk(DISK_RAM);
}

/* VHU_TRACE_GUEST_WRITES (set in main before any ring started): every
 * pushed chain's writable buffers were recorded, each inside guest memory,
 * the read buffers of the slots among them. */
static char trace_path[64];

static void test_guest_write_trace(void **state)
{
    (void)state;
    FILE *f = fopen(trace_path, "r");
    assert_non_null(f);
    unsigned long long gpa, len;
    unsigned lines = 0;
    bool seen[MAX_QD] = {false};
    while (fscanf(f, "%llx %llu", &gpa, &len) == 2) {
        lines++;
        assert_true(len > 0 && gpa + len <= MEM_SIZE);
        for (unsigned k = 0; k < MAX_QD; k++)
            if (gpa == SLOT_GPA(k) + B_OFF)
                seen[k] = true;
    }
    assert_true(feof(f));
    fclose(f);
    unlink(trace_path);
    assert_true(lines > 1000);
    for (unsigned k = 0; k < MAX_QD; k++)
        assert_true(seen[k]);
}

int main(void)
{
    log_capture_install();
    snprintf(trace_path, sizeof(trace_path), "/tmp/vhu-trace-%d", (int)getpid());
    unlink(trace_path);
    setenv("VHU_TRACE_GUEST_WRITES", trace_path, 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_image),
        cmocka_unit_test(test_direct),
        cmocka_unit_test(test_ram),
        cmocka_unit_test(test_guest_write_trace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
