/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu-bench-snapshot: what a live snapshot costs the guest, next to a
 * stop-the-world save of the same state.
 *
 *   vhu-bench-snapshot --vhu-blk PATH [--sizes 64M,1G] [--repeat R]
 *                      [--qd N] [--seconds S] [--modes device,reserve,fork]
 *                      [--wait]
 *
 * For each size and mode: starts `vhu-blk --ram SIZE --control C` (mode
 * "device": vhu-blk's own copy-before-write, ops.snapshot_begin; "reserve":
 * the same with --snapshot-reserve; "fork": with --fork-snapshots, the
 * library's fork()), connects as the
 * front-end (one split ring), fills the whole disk with incompressible
 * data (64 KiB writes), then keeps --qd 4 KiB random writes in flight from
 * a driver thread that polls the used ring and resubmits at once.  After
 * --seconds of that (the baseline), the main thread asks the control socket
 * for a live snapshot into a pipe a thread drains, --repeat times, --seconds apart.
 * Every request's submit and completion times are kept; a request counts
 * as "during" a snapshot when its life overlaps a snapshot's request-reply
 * window.  Printed per size:
 *
 *   live: the back-end's own pause (rings stopped: quiesce + fork), the
 *   snapshot's duration and throughput (disk bytes / duration), and the
 *   guest-visible figures over all windows: requests during, their p99 and
 *   max latency, and the longest gap between two completions;
 *   baseline: p99 and max latency of the requests outside every window,
 *   and its longest gap; the gaps over 10 ms (the target) inside the
 *   windows and outside, with the seconds of each, so that the machine's
 *   own stalls can be told from the snapshot's (VHU_BENCH_GAPS=MS also
 *   prints every gap over MS ms with its CLOCK_MONOTONIC start, for
 *   tests/bench/snapshot-gaps.sh);
 *   stop-the-world: the driver drains, the ring is stopped
 *   (GET_VRING_BASE) and the same state saved over the vhost-user socket
 *   (SET_DEVICE_STATE_FD, CHECK_DEVICE_STATE) into /dev/null: the guest
 *   would see at least that long a stall.
 *
 * Asserts only that every request completed OK and every snapshot and
 * save succeeded (exit 1 otherwise). */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/virtio_blk.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <vhu/frontend.h>
#include <vhu/state.h>
#include <vhu/vhu.h>

#define SECTOR 512u
#define RING_SIZE 128u /* three descriptors per request */
#define MAX_QD 32u
#define FILL_BS (64u << 10)
#define RAND_BS 4096u
#define RING_GPA 0x100000u
#define META_GPA 0x110000u /* per slot: header at +0, status at +32 */
#define DATA_GPA 0x200000u /* per slot: FILL_BS bytes */

static struct {
    const char *vhu_blk;
    const char *sizes;
    unsigned repeat, qd;
    double seconds;
    const char *modes; /* "device", "fork" or both, comma-separated */
    bool wait;         /* the driver sleeps on the call eventfd when idle */
} o = {.sizes = "64M,1G", .repeat = 3, .qd = 32, .seconds = 2, .modes = "device,reserve,fork"};

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static _Noreturn void die(const char *what, int r)
{
    fprintf(stderr, "vhu-bench-snapshot: %s%s%s\n", what, r ? ": " : "", r ? vhu_strerror(r) : "");
    exit(1);
}

struct sample {
    uint64_t submit, done;
};

struct driver {
    struct vhu_fe_vring ring;
    struct vhu_guest_mem mem;
    int kick, call, err;
    uint64_t sectors;
    uint64_t rng;
    uint64_t slot_t[MAX_QD];
    uint64_t fill_next; /* next sector of the fill */
    bool fill;
    atomic_bool stop;
    struct sample *samples;
    size_t nsamples, cap;
    const char *failed;
};

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Fill slot k's data with fresh pseudo-random bytes and publish a write of
 * len bytes at sector. */
static void submit(struct driver *d, unsigned k, uint64_t sector, uint32_t len)
{
    uint8_t *meta = vhu_guest_mem_ptr(&d->mem, META_GPA + k * 64u, 64);
    uint64_t *data = vhu_guest_mem_ptr(&d->mem, DATA_GPA + (uint64_t)k * FILL_BS, len);
    for (uint32_t i = 0; i < len / 8; i++)
        data[i] = xorshift(&d->rng);
    struct virtio_blk_outhdr h = {.type = htole32(VIRTIO_BLK_T_OUT), .sector = htole64(sector)};
    memcpy(meta, &h, sizeof(h));
    meta[32] = 0xff;
    struct vhu_fe_buf b[3] = {{META_GPA + k * 64u, sizeof(h), false},
                              {DATA_GPA + (uint64_t)k * FILL_BS, len, false},
                              {META_GPA + k * 64u + 32, 1, true}};
    d->slot_t[k] = now_ns();
    if (vhu_fe_vring_push_chain(&d->ring, (uint16_t)(k * 3), b, 3) < 0)
        die("ring push", -EIO);
}

static void next(struct driver *d, unsigned k)
{
    if (d->fill) {
        if (d->fill_next >= d->sectors)
            return;
        submit(d, k, d->fill_next, FILL_BS);
        d->fill_next += FILL_BS / SECTOR;
    } else {
        uint64_t blocks = d->sectors / (RAND_BS / SECTOR);
        submit(d, k, xorshift(&d->rng) % blocks * (RAND_BS / SECTOR), RAND_BS);
    }
}

static void kick(struct driver *d)
{
    uint64_t one = 1;
    if (write(d->kick, &one, sizeof(one)) != sizeof(one))
        die("kick", -errno);
}

/* Keep qd requests in flight until stop (or, filling, until the disk is
 * written); the last ones are waited for. */
static void *drive(void *arg)
{
    struct driver *d = arg;
    (void)pthread_setname_np(pthread_self(), "bench-driver");
    bool busy[MAX_QD];
    unsigned inflight = 0;
    for (unsigned k = 0; k < o.qd; k++) {
        busy[k] = !d->fill || d->fill_next < d->sectors;
        if (busy[k]) {
            next(d, k);
            inflight++;
        }
    }
    kick(d);
    while (inflight) {
        uint32_t id;
        bool any = false;
        bool more = !atomic_load_explicit(&d->stop, memory_order_relaxed);
        while (vhu_fe_vring_pop_used(&d->ring, &id, NULL) == 1) {
            uint64_t t = now_ns();
            unsigned k = id / 3;
            if (id % 3 || k >= o.qd || !busy[k]) {
                d->failed = "a used id that is no request in flight";
                return NULL;
            }
            uint8_t st = *(uint8_t *)vhu_guest_mem_ptr(&d->mem, META_GPA + k * 64u + 32, 1);
            if (st != VIRTIO_BLK_S_OK) {
                d->failed = "a write failed";
                return NULL;
            }
            if (!d->fill) {
                if (d->nsamples == d->cap) {
                    d->cap = d->cap ? 2 * d->cap : 1u << 16;
                    d->samples = realloc(d->samples, d->cap * sizeof(*d->samples));
                    if (!d->samples)
                        die("memory", -ENOMEM);
                }
                d->samples[d->nsamples++] = (struct sample){d->slot_t[k], t};
            }
            busy[k] = false;
            inflight--;
            if (more && (!d->fill || d->fill_next < d->sectors)) {
                next(d, k);
                busy[k] = true;
                inflight++;
            }
            any = true;
        }
        if (any)
            kick(d);
        else if (o.wait && !d->fill) {
            /* Like a guest that takes interrupts: sleep until the device
             * signals (a completion after the check above leaves the
             * eventfd readable, so none is missed). */
            struct pollfd pf = {.fd = d->call, .events = POLLIN};
            uint64_t n;
            if (poll(&pf, 1, 100) > 0 && read(d->call, &n, sizeof(n)) < 0 && errno != EAGAIN)
                die("call", -errno);
        }
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* p99 and max of v[0..n) (sorted here), in microseconds. */
static void pct(uint64_t *v, size_t n, double *p99, double *max)
{
    *p99 = *max = 0;
    if (!n)
        return;
    qsort(v, n, sizeof(*v), cmp_u64);
    size_t i = (size_t)((double)n * 0.99);
    *p99 = (double)v[i < n ? i : n - 1] / 1e3;
    *max = (double)v[n - 1] / 1e3;
}

static uint64_t parse_size(const char *s, char **end)
{
    uint64_t v = strtoull(s, end, 10);
    switch (**end) {
    case 'G':
        v <<= 30;
        (*end)++;
        break;
    case 'M':
        v <<= 20;
        (*end)++;
        break;
    case 'K':
        v <<= 10;
        (*end)++;
        break;
    default: break;
    }
    return v;
}

enum mode { MODE_DEVICE, MODE_RESERVE, MODE_FORK };

static pid_t spawn_blk(const char *dir, uint64_t size, enum mode mode)
{
    char sock[256], ctl[256], ram[32];
    snprintf(sock, sizeof(sock), "%s/s", dir);
    snprintf(ctl, sizeof(ctl), "%s/c", dir);
    snprintf(ram, sizeof(ram), "%" PRIu64 "K", size >> 10);
    pid_t pid = fork();
    if (pid < 0)
        die("fork", -errno);
    if (pid == 0) {
        execl(o.vhu_blk, o.vhu_blk, "--socket", sock, "--ram", ram, "--control", ctl,
              mode == MODE_FORK      ? "--fork-snapshots"
              : mode == MODE_RESERVE ? "--snapshot-reserve"
                                     : (char *)NULL,
              (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Read and drop everything from fd until EOF. */
static void *drain(void *arg)
{
    static char buf[1 << 16];
    int fd = *(int *)arg;
    (void)pthread_setname_np(pthread_self(), "bench-drain");
    while (read(fd, buf, sizeof(buf)) > 0 || errno == EINTR)
        ;
    return NULL;
}

/* The back-end's memory in transparent huge pages, in MiB (-1 unknown):
 * what makes its fork cheap (docs/live-snapshots.md). */
static long huge_mib(pid_t pid)
{
    char p[64], line[256];
    snprintf(p, sizeof(p), "/proc/%d/smaps_rollup", (int)pid);
    FILE *f = fopen(p, "r");
    long v = -1;
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "AnonHugePages:", 14) == 0)
            v = atol(line + 14) / 1024;
    if (f)
        fclose(f);
    return v;
}

struct window {
    uint64_t start, end;
    uint64_t gap, gap_at; /* longest gap between completions; its start, from `start` */
    long huge_before;
    struct vhu_fe_control_snapshot res;
};

static void run_size(uint64_t size, enum mode mode)
{
    char dir[] = "/tmp/vhu-bench-snapshot-XXXXXX", sock[256], ctl[256];
    if (!mkdtemp(dir))
        die("mkdtemp", -errno);
    snprintf(sock, sizeof(sock), "%s/s", dir);
    snprintf(ctl, sizeof(ctl), "%s/c", dir);
    pid_t pid = spawn_blk(dir, size, mode);

    struct vhu_fe *fe;
    int r = vhu_fe_connect(&fe, sock, 10000);
    if (r < 0)
        die("connect to vhu-blk", r);
    vhu_fe_set_timeout(fe, 600000);
    uint64_t acked, pf;
    if ((r = vhu_fe_negotiate(fe, VHU_BIT(VHU_F_VERSION_1),
                              VHU_BIT(VHU_PF_REPLY_ACK) | VHU_BIT(VHU_PF_CONFIG) |
                                  VHU_BIT(VHU_PF_DEVICE_STATE),
                              &acked, &pf)) < 0)
        die("negotiate", r);
    if (!(pf & VHU_BIT(VHU_PF_DEVICE_STATE)))
        die("the back-end does not offer DEVICE_STATE", 0);
    struct virtio_blk_config cfg;
    if ((r = vhu_fe_get_config(fe, 0, &cfg, sizeof(cfg.capacity))) < 0)
        die("GET_CONFIG", r);

    struct driver *d = calloc(1, sizeof(*d));
    if (!d)
        die("memory", -ENOMEM);
    d->sectors = le64toh(cfg.capacity);
    d->rng = 0x9e3779b97f4a7c15ull;
    if ((r = vhu_guest_mem_new(&d->mem, 0, DATA_GPA + (uint64_t)MAX_QD * FILL_BS)) < 0)
        die("guest memory", r);
    struct vhu_mem_region reg = vhu_guest_mem_region(&d->mem);
    d->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    d->call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    d->err = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (d->kick < 0 || d->call < 0 || d->err < 0)
        die("eventfd", -errno);
    if ((r = vhu_fe_set_mem_table(fe, &reg, &d->mem.fd, 1)) < 0 ||
        (r = vhu_fe_vring_init(&d->ring, &d->mem, 0, RING_SIZE, RING_GPA)) < 0 ||
        (r = vhu_fe_set_vring_num(fe, 0, RING_SIZE)) < 0 ||
        (r = vhu_fe_vring_set_addr(fe, &d->ring, 0)) < 0 ||
        (r = vhu_fe_set_vring_base(fe, 0, 0)) < 0 ||
        (r = vhu_fe_set_vring_call(fe, 0, d->call)) < 0 ||
        (r = vhu_fe_set_vring_err(fe, 0, d->err)) < 0 ||
        (r = vhu_fe_set_vring_kick(fe, 0, d->kick)) < 0 ||
        (r = vhu_fe_set_vring_enable(fe, 0, true)) < 0)
        die("ring set-up", r);

    /* The whole disk written once, so the state is as big as the disk. */
    uint64_t t = now_ns();
    d->fill = true;
    drive(d);
    if (d->failed)
        die(d->failed, 0);
    double fill_s = (double)(now_ns() - t) / 1e9;
    d->fill = false;

    struct vhu_fe_control *c;
    if ((r = vhu_fe_control_connect(&c, ctl, 10000)) < 0)
        die("control connect", r);
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null < 0)
        die("/dev/null", -errno);
    int pipefd[2];
    pthread_t th, drainer;
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        die("pipe", -errno);
    if (pthread_create(&drainer, NULL, drain, &pipefd[0]) || pthread_create(&th, NULL, drive, d))
        die("thread", -EAGAIN);
    struct timespec pause = {(time_t)o.seconds,
                             (long)((o.seconds - (double)(time_t)o.seconds) * 1e9)};
    struct window *w = calloc(o.repeat, sizeof(*w));
    if (!w)
        die("memory", -ENOMEM);
    nanosleep(&pause, NULL);
    for (unsigned i = 0; i < o.repeat; i++) {
        char err[256] = "";
        w[i].huge_before = huge_mib(pid);
        w[i].start = now_ns();
        r = vhu_fe_control_snapshot(c, pipefd[1], 600000, &w[i].res, err, sizeof(err));
        w[i].end = now_ns();
        if (r < 0) {
            fprintf(stderr, "vhu-bench-snapshot: snapshot: %s: %s\n", vhu_strerror(r), err);
            exit(1);
        }
        nanosleep(&pause, NULL);
    }
    atomic_store(&d->stop, true);
    pthread_join(th, NULL);
    close(pipefd[1]);
    pthread_join(drainer, NULL);
    close(pipefd[0]);
    if (d->failed)
        die(d->failed, 0);

    /* Stop the world: ring stopped, state saved over the socket. */
    uint64_t t_stop = now_ns();
    unsigned base;
    if ((r = vhu_fe_get_vring_base(fe, 0, &base)) < 0)
        die("GET_VRING_BASE", r);
    if ((r = vhu_fe_save_state(fe, null)) < 0)
        die("stop-the-world save", r);
    double stw_ms = (double)(now_ns() - t_stop) / 1e6;

    /* Sort the samples into during/outside and the gaps. */
    uint64_t *in = malloc((d->nsamples + 1) * sizeof(uint64_t));
    uint64_t *out = malloc((d->nsamples + 1) * sizeof(uint64_t));
    if (!in || !out)
        die("memory", -ENOMEM);
    size_t nin = 0, nout = 0;
    uint64_t max_gap = 0, prev_done = 0;
    /* Gaps over 10 ms (the target) inside the windows and outside, so that
     * the machine's own stalls, which come with no snapshot too, can be
     * told from the snapshot's: their rates side by side. */
    const uint64_t long_gap = 10000000;
    const char *trace_env = getenv("VHU_BENCH_GAPS");
    const uint64_t trace_gap = trace_env ? (uint64_t)(strtod(trace_env, NULL) * 1e6) : 0;
    unsigned long_in = 0, long_out = 0;
    uint64_t max_gap_out = 0, t_in = 0;
    for (unsigned k = 0; k < o.repeat; k++)
        t_in += w[k].end - w[k].start;
    for (size_t i = 0; i < d->nsamples; i++) {
        struct sample s = d->samples[i];
        bool during = false, gap_in = false;
        for (unsigned k = 0; k < o.repeat; k++) {
            during |= s.submit <= w[k].end && s.done >= w[k].start;
            if (prev_done && prev_done <= w[k].end && s.done >= w[k].start) {
                gap_in = true;
                /* Where in snapshot k its longest gap began (from its request). */
                if (s.done - prev_done > w[k].gap) {
                    w[k].gap = s.done - prev_done;
                    w[k].gap_at = prev_done > w[k].start ? prev_done - w[k].start : 0;
                }
            }
        }
        if (during)
            in[nin++] = s.done - s.submit;
        else
            out[nout++] = s.done - s.submit;
        if (gap_in && prev_done && s.done - prev_done > max_gap)
            max_gap = s.done - prev_done;
        if (prev_done && s.done - prev_done > long_gap)
            *(gap_in ? &long_in : &long_out) += 1;
        /* VHU_BENCH_GAPS=MS: each gap over MS ms with its CLOCK_MONOTONIC
         * start, to find it in a `perf sched record -k CLOCK_MONOTONIC`
         * (tests/bench/snapshot-gaps.sh). */
        if (prev_done && trace_gap && s.done - prev_done > trace_gap)
            printf("    gap %.1f ms at %.6f (%s)\n", (double)(s.done - prev_done) / 1e6,
                   (double)prev_done / 1e9, gap_in ? "during a snapshot" : "outside");
        if (!gap_in && prev_done && s.done - prev_done > max_gap_out)
            max_gap_out = s.done - prev_done;
        prev_done = s.done;
    }
    double in_p99, in_max, out_p99, out_max;
    pct(in, nin, &in_p99, &in_max);
    pct(out, nout, &out_p99, &out_max);
    uint64_t pause_max = 0, dur_sum = 0, bytes = 0;
    for (unsigned k = 0; k < o.repeat; k++) {
        if (w[k].res.pause_us > pause_max)
            pause_max = w[k].res.pause_us;
        dur_sum += w[k].res.duration_us;
        bytes = w[k].res.bytes;
    }
    double dur_ms = (double)dur_sum / o.repeat / 1e3;
    printf("ram %" PRIu64 " MiB (filled in %.1f s), qd %u 4 KiB random writes:\n", size >> 20,
           fill_s, o.qd);
    printf("  live snapshot x%u, %s: back-end pause max %.2f ms (pause/fork each: ", o.repeat,
           mode == MODE_FORK ? "fork() (vhu-blk --fork-snapshots)"
           : mode == MODE_RESERVE
               ? "the device's copy-before-write, area reserved (--snapshot-reserve)"
               : "the device's copy-before-write",
           (double)pause_max / 1e3);
    for (unsigned k = 0; k < o.repeat; k++)
        printf("%s%.2f/%.2f", k ? ", " : "", (double)w[k].res.pause_us / 1e3,
               (double)w[k].res.fork_us / 1e3);
    printf("; huge pages before each:");
    for (unsigned k = 0; k < o.repeat; k++)
        printf(" %ld MiB", w[k].huge_before);
    printf("), snapshot %.0f ms, %.0f MB/s of disk, %" PRIu64 " bytes\n", dur_ms,
           dur_ms > 0 ? (double)size / 1e6 / (dur_ms / 1e3) : 0.0, bytes);
    printf("    guest during snapshots: %zu requests, p99 %.0f us, max %.0f us, "
           "longest gap between completions %.0f us\n",
           nin, in_p99, in_max, (double)max_gap / 1e3);
    printf("    longest gap in each snapshot (ms, and when it began, ms after the request):");
    for (unsigned k = 0; k < o.repeat; k++)
        printf(" %.1f@%.0f", (double)w[k].gap / 1e6, (double)w[k].gap_at / 1e6);
    printf("\n");
    if (getenv("VHU_BENCH_GAPS"))
        for (unsigned k = 0; k < o.repeat; k++)
            printf("    snapshot %u: %.6f to %.6f\n", k, (double)w[k].start / 1e9,
                   (double)w[k].end / 1e9);
    printf("    guest outside (baseline): %zu requests, p99 %.0f us, max %.0f us, "
           "longest gap between completions %.0f us\n",
           nout, out_p99, out_max, (double)max_gap_out / 1e3);
    double s_all =
        d->nsamples ? (double)(d->samples[d->nsamples - 1].done - d->samples[0].done) / 1e9 : 0.0;
    double s_in = (double)t_in / 1e9, s_out = s_all > s_in ? s_all - s_in : 0.0;
    printf(
        "    gaps over 10 ms: %u in %.1f s of snapshots (%.2f/s), %u in %.1f s outside (%.2f/s)\n",
        long_in, s_in, s_in > 0 ? long_in / s_in : 0.0, long_out, s_out,
        s_out > 0 ? long_out / s_out : 0.0);
    printf("  stop-the-world save (GET_VRING_BASE + SET_DEVICE_STATE_FD): ring stopped "
           "%.0f ms, %.0f MB/s of disk\n",
           stw_ms, (double)size / 1e6 / (stw_ms / 1e3));
    fflush(stdout);

    free(in);
    free(out);
    free(w);
    close(null);
    vhu_fe_control_close(c);
    vhu_fe_close(fe);
    close(d->kick);
    close(d->call);
    close(d->err);
    vhu_guest_mem_free(&d->mem);
    free(d->samples);
    free(d);
    kill(pid, SIGTERM);
    int status;
    waitpid(pid, &status, 0);
    unlink(sock);
    unlink(ctl);
    rmdir(dir);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vhu-bench-snapshot --vhu-blk PATH [--sizes 64M,1G] [--repeat R] "
            "[--qd N (1..%u)] [--seconds S] [--modes device,reserve,fork] [--wait]\n",
            MAX_QD);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"vhu-blk", 1, NULL, 'b'}, {"sizes", 1, NULL, 's'},   {"repeat", 1, NULL, 'r'},
        {"qd", 1, NULL, 'd'},      {"seconds", 1, NULL, 't'}, {"help", 0, NULL, 'h'},
        {"modes", 1, NULL, 'm'},   {"wait", 0, NULL, 'w'},    {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "b:s:r:d:t:hw", lo, NULL)) != -1) {
        switch (ch) {
        case 'b': o.vhu_blk = optarg; break;
        case 's': o.sizes = optarg; break;
        case 'r': o.repeat = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'd': o.qd = (unsigned)strtoul(optarg, NULL, 10); break;
        case 't': o.seconds = strtod(optarg, NULL); break;
        case 'm': o.modes = optarg; break;
        case 'w': o.wait = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!o.vhu_blk || o.repeat < 1 || o.qd < 1 || o.qd > MAX_QD || !(o.seconds > 0)) {
        usage(stderr);
        return 2;
    }
    vhu_set_log_level(VHU_LOG_WARN);
    for (const char *p = o.sizes; *p;) {
        char *end;
        uint64_t size = parse_size(p, &end);
        if (end == p || (*end && *end != ',') || size < (1u << 20) || size % FILL_BS) {
            fprintf(stderr, "vhu-bench-snapshot: bad size in --sizes at '%s'\n", p);
            return 2;
        }
        for (const char *m = o.modes; *m;) {
            size_t n = strcspn(m, ",");
            if (n == 4 && strncmp(m, "fork", 4) == 0)
                run_size(size, MODE_FORK);
            else if (n == 6 && strncmp(m, "device", 6) == 0)
                run_size(size, MODE_DEVICE);
            else if (n == 7 && strncmp(m, "reserve", 7) == 0)
                run_size(size, MODE_RESERVE);
            else {
                fprintf(stderr,
                        "vhu-bench-snapshot: --modes: 'device', 'reserve' or 'fork', not "
                        "'%.*s'\n",
                        (int)n, m);
                return 2;
            }
            m += n + (m[n] == ',');
        }
        p = *end ? end + 1 : end;
    }
    return 0;
}
