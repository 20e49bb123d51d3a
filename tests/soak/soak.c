/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu-soak: a long run against one back-end process (vhu-testdev), to find
 * what leaks slowly.
 *
 *   1. --cycles N times: connect, negotiate, SET_MEM_TABLE, set up both
 *      rings (NUM, ADDR, BASE, CALL, ERR, KICK with fresh eventfds, ENABLE),
 *      serve one request, and disconnect -- in turn with the rings running,
 *      after GET_VRING_BASE on each, and after RESET_DEVICE.
 *   2. --transfers N device-state transfers over one connection: SAVE then
 *      LOAD of the saved bytes; every second one with a fault (truncated
 *      stream, a corrupted byte, the front-end closing the SAVE channel
 *      early, a wrong phase, the front-end disconnecting mid-LOAD).  A
 *      transfer that failed must leave the device as it was (the next clean
 *      SAVE gives the same bytes).
 *   3. At the end, one more clean cycle and transfer: it still serves.
 *
 * The back-end's open fds (/proc/PID/fd) and resident memory (VmRSS) are
 * printed at the start, at every checkpoint and at the end.  It fails if the
 * fd count ever ends a checkpoint above the start figure, if VmRSS grew by
 * more than --rss-bound-kb after warm-up (the first tenth of each phase), or
 * if this process's own fd count grew (the front-end library). */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <vhu/frontend.h>
#include <vhu/vhu.h>

#define NRINGS 2
#define RING_SIZE 64
#define MEM_SIZE (1u << 20)
#define BUF_GPA 0x80000u
#define DESC_F_WRITE 2

static const char *prog = "vhu-soak";
static pid_t be_pid = -1;
static char dir[64], sock_path[128], be_log[128];

static void cleanup(void)
{
    if (be_pid > 0) {
        kill(be_pid, SIGKILL);
        waitpid(be_pid, NULL, 0);
        be_pid = -1;
    }
    if (dir[0]) {
        unlink(sock_path);
        unlink(be_log);
        rmdir(dir);
    }
}

static void show_backend_log(void)
{
    FILE *f = fopen(be_log, "r");
    if (!f)
        return;
    /* The last lines only: a long run logs one per refused transfer. */
    char lines[20][256];
    unsigned n = 0;
    while (fgets(lines[n % 20], sizeof(lines[0]), f))
        n++;
    fclose(f);
    fprintf(stderr, "%s: the back-end's last log lines:\n", prog);
    for (unsigned i = n > 20 ? n - 20 : 0; i < n; i++)
        fprintf(stderr, "  %s", lines[i % 20]);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: FAIL: ", prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    show_backend_log();
    cleanup();
    exit(1);
}

#define CHECK(call)                                                                                \
    do {                                                                                           \
        int r_ = (call);                                                                           \
        if (r_ < 0)                                                                                \
            die("%s:%d: %s: %s", __FILE__, __LINE__, #call, vhu_strerror(r_));                     \
    } while (0)

static void quiet(void *ctx, enum vhu_log_level level, const char *line)
{
    (void)ctx;
    (void)level;
    (void)line;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* ---- the back-end's figures ---- */

static int count_fds(pid_t pid)
{
    char p[64];
    snprintf(p, sizeof(p), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(p);
    if (!d)
        die("cannot read %s: %s", p, strerror(errno));
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return pid == getpid() ? n - 1 : n; /* our own DIR's fd */
}

static long rss_kb(pid_t pid)
{
    char p[64], line[256];
    snprintf(p, sizeof(p), "/proc/%d/status", (int)pid);
    FILE *f = fopen(p, "r");
    if (!f)
        die("cannot read %s: %s", p, strerror(errno));
    long kb = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    if (kb < 0)
        die("no VmRSS in %s", p);
    return kb;
}

/* The back-end closes a session's fds once it has seen the disconnect, on
 * its own thread: wait (up to 2 s) for the count to come down to `want`. */
static int settled_fds(int want)
{
    int n = count_fds(be_pid);
    for (int i = 0; i < 200 && n > want; i++) {
        sleep_ms(10);
        n = count_fds(be_pid);
    }
    return n;
}

struct figures {
    int fds_start, self_fds_start;
    long rss_start, rss_warm;
    long rss_bound_kb;
};

static void checkpoint(struct figures *fg, const char *what, unsigned done, bool warm_now)
{
    int fds = settled_fds(fg->fds_start);
    long rss = rss_kb(be_pid);
    int self = count_fds(getpid());
    if (warm_now)
        fg->rss_warm = rss;
    char count[16] = "";
    if (done)
        snprintf(count, sizeof(count), "%u", done);
    printf("%s: %-10s %6s  back-end fds %d  VmRSS %ld kB%s  (this process: %d fds)\n", prog, what,
           count, fds, rss, warm_now ? "  <- warm-up done" : "", self);
    fflush(stdout);
    if (fds > fg->fds_start)
        die("back-end fd count grew: %d at start, %d after %u %s", fg->fds_start, fds, done, what);
    if (self > fg->self_fds_start)
        die("this process's fd count grew: %d at start, %d after %u %s (front-end library)",
            fg->self_fds_start, self, done, what);
    if (fg->rss_warm >= 0 && rss > fg->rss_warm + fg->rss_bound_kb)
        die("back-end VmRSS grew by %ld kB after warm-up (%ld -> %ld kB; bound %ld kB)",
            rss - fg->rss_warm, fg->rss_warm, rss, fg->rss_bound_kb);
}

/* ---- the back-end process ---- */

static void start_backend(const char *testdev, unsigned long blob)
{
    strcpy(dir, "/tmp/vhu-soak-XXXXXX");
    if (!mkdtemp(dir))
        die("mkdtemp: %s", strerror(errno));
    snprintf(sock_path, sizeof(sock_path), "%s/sock", dir);
    snprintf(be_log, sizeof(be_log), "%s/backend.log", dir);
    char blob_arg[32];
    snprintf(blob_arg, sizeof(blob_arg), "%lu", blob);
    be_pid = fork();
    if (be_pid < 0)
        die("fork: %s", strerror(errno));
    if (be_pid == 0) {
        FILE *f = freopen(be_log, "w", stdout);
        if (!f || dup2(fileno(stdout), 2) < 0)
            _exit(127);
        execl(testdev, testdev, "--socket", sock_path, "--queues", "2", "--blob-size", blob_arg,
              "--label", "soak", (char *)NULL);
        fprintf(stderr, "exec %s: %s\n", testdev, strerror(errno));
        _exit(127);
    }
}

static void stop_backend(void)
{
    kill(be_pid, SIGTERM);
    int st = 0;
    for (int i = 0; i < 500; i++) {
        pid_t r = waitpid(be_pid, &st, WNOHANG);
        if (r == be_pid)
            break;
        if (i == 499)
            die("the back-end did not stop within 5 s of SIGTERM");
        sleep_ms(10);
    }
    be_pid = -1;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        die("the back-end did not stop cleanly (status 0x%x)", st);
}

static struct vhu_fe *connect_fe(void)
{
    struct vhu_fe *fe = NULL;
    CHECK(vhu_fe_connect(&fe, sock_path, 5000));
    CHECK(vhu_fe_negotiate(fe, ~0ull, ~0ull, NULL, NULL));
    return fe;
}

/* ---- phase 1: connect / set up / serve / disconnect ---- */

static void cycle(struct vhu_guest_mem *mem, unsigned n)
{
    struct vhu_fe *fe = connect_fe();
    struct vhu_mem_region reg = vhu_guest_mem_region(mem);
    CHECK(vhu_fe_set_mem_table(fe, &reg, &mem->fd, 1));
    struct vhu_fe_vring ring[NRINGS];
    int kick[NRINGS], call[NRINGS], err[NRINGS];
    for (unsigned i = 0; i < NRINGS; i++) {
        CHECK(vhu_fe_vring_init(&ring[i], mem, i, RING_SIZE, 0x10000u * (i + 1)));
        kick[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        call[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        err[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (kick[i] < 0 || call[i] < 0 || err[i] < 0)
            die("eventfd: %s", strerror(errno));
        CHECK(vhu_fe_set_vring_num(fe, i, RING_SIZE));
        CHECK(vhu_fe_vring_set_addr(fe, &ring[i], 0));
        CHECK(vhu_fe_set_vring_base(fe, i, 0));
        CHECK(vhu_fe_set_vring_call(fe, i, call[i]));
        CHECK(vhu_fe_set_vring_err(fe, i, err[i]));
        CHECK(vhu_fe_set_vring_kick(fe, i, kick[i]));
        CHECK(vhu_fe_set_vring_enable(fe, i, true));
    }
    /* One request on one ring: the device fills the buffer and completes it. */
    unsigned q = n % NRINGS;
    uint8_t *buf = vhu_guest_mem_ptr(mem, BUF_GPA, 512);
    memset(buf, 0, 512);
    CHECK(vhu_fe_vring_push(&ring[q], 0, BUF_GPA, 512, DESC_F_WRITE));
    uint64_t one = 1;
    if (write(kick[q], &one, sizeof(one)) != sizeof(one))
        die("kick: %s", strerror(errno));
    bool served = false;
    for (int t = 0; t < 5000 && !served; t++) {
        served = vhu_fe_vring_used_idx(&ring[q]) == 1;
        if (!served)
            usleep(t < 100 ? 20 : 1000);
    }
    if (!served)
        die("cycle %u: ring %u did not complete a request within 5 s", n, q);
    if (buf[0] != 0xA5 || buf[511] != 0xA5)
        die("cycle %u: the device did not fill the buffer", n);
    switch (n % 3) {
    case 0: /* disconnect with the rings running */ break;
    case 1: /* stop the rings as QEMU does, then disconnect */
        for (unsigned i = 0; i < NRINGS; i++) {
            unsigned base = 0;
            CHECK(vhu_fe_get_vring_base(fe, i, &base));
            if (base != (i == q ? 1u : 0u))
                die("cycle %u: GET_VRING_BASE(%u) = %u", n, i, base);
        }
        break;
    case 2: CHECK(vhu_fe_reset_device(fe)); break;
    }
    vhu_fe_close(fe);
    for (unsigned i = 0; i < NRINGS; i++) {
        close(kick[i]);
        close(call[i]);
        close(err[i]);
    }
}

/* ---- phase 2: state transfers ---- */

struct blob {
    uint8_t *p;
    size_t n;
};

static int memfd_of(const uint8_t *p, size_t n)
{
    int fd = memfd_create("vhu-soak-state", MFD_CLOEXEC);
    if (fd < 0)
        die("memfd_create: %s", strerror(errno));
    for (size_t off = 0; off < n;) {
        ssize_t w = write(fd, p + off, n - off);
        if (w <= 0)
            die("write to memfd: %s", strerror(errno));
        off += (size_t)w;
    }
    if (lseek(fd, 0, SEEK_SET) < 0)
        die("lseek: %s", strerror(errno));
    return fd;
}

static void read_memfd(int fd, struct blob *b)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        die("fstat: %s", strerror(errno));
    free(b->p);
    b->n = (size_t)st.st_size;
    b->p = malloc(b->n ? b->n : 1);
    if (!b->p)
        die("out of memory");
    if (pread(fd, b->p, b->n, 0) != (ssize_t)b->n)
        die("pread: %s", strerror(errno));
}

static int save(struct vhu_fe *fe, struct blob *out)
{
    int fd = memfd_of(NULL, 0);
    int r = vhu_fe_save_state(fe, fd);
    if (r == 0)
        read_memfd(fd, out);
    close(fd);
    return r;
}

static int load(struct vhu_fe *fe, const uint8_t *p, size_t n)
{
    int fd = memfd_of(p, n);
    int r = vhu_fe_load_state(fe, fd);
    close(fd);
    return r;
}

/* The device must hold exactly the state `want` describes. */
static void expect_state(struct vhu_fe *fe, const struct blob *want, unsigned n, const char *after)
{
    struct blob now = {0};
    int r = save(fe, &now);
    if (r < 0)
        die("transfer %u: SAVE after %s: %s", n, after, vhu_strerror(r));
    if (now.n != want->n || memcmp(now.p, want->p, now.n))
        die("transfer %u: the device's state changed after %s (%zu bytes, was %zu)", n, after,
            now.n, want->n);
    free(now.p);
}

static const char *const faults[] = {"truncated stream", "corrupted byte",
                                     "SAVE channel closed early", "wrong phase",
                                     "disconnect mid-LOAD"};

/* One transfer; returns the connection to use next (a fault may drop it). */
static struct vhu_fe *transfer(struct vhu_fe *fe, struct blob *base, unsigned n,
                               unsigned long counts[])
{
    if (n % 2 == 0) {
        struct blob s = {0};
        int r = save(fe, &s);
        if (r < 0)
            die("transfer %u: SAVE: %s", n, vhu_strerror(r));
        if ((r = load(fe, s.p, s.n)) < 0)
            die("transfer %u: LOAD of what was just saved: %s", n, vhu_strerror(r));
        if (s.n != base->n || memcmp(s.p, base->p, s.n))
            die("transfer %u: SAVE gave other bytes than the first one", n);
        free(s.p);
        if (n % 20 == 0)
            expect_state(fe, base, n, "a clean LOAD");
        counts[0]++;
        return fe;
    }
    unsigned f = (n / 2) % 5;
    counts[1 + f]++;
    int r;
    switch (f) {
    case 0: { /* truncated: LOAD of a prefix */
        size_t len = (size_t)(rnd() % base->n);
        if ((r = load(fe, base->p, len)) == 0)
            die("transfer %u: LOAD of %zu of %zu bytes succeeded", n, len, base->n);
        expect_state(fe, base, n, faults[f]);
        break;
    }
    case 1: { /* one byte flipped */
        uint8_t *p = malloc(base->n);
        if (!p)
            die("out of memory");
        memcpy(p, base->p, base->n);
        size_t at = (size_t)(rnd() % base->n);
        p[at] ^= (uint8_t)(1u + rnd() % 255);
        r = load(fe, p, base->n);
        free(p);
        /* Nearly every byte is covered by a check; one that is not (say,
         * inside the producer string) may load, and then the device holds
         * what was loaded: that becomes the reference. */
        if (r == 0) {
            counts[6]++;
            struct blob s = {0};
            if ((r = save(fe, &s)) < 0)
                die("transfer %u: SAVE after an accepted flip at %zu: %s", n, at, vhu_strerror(r));
            free(base->p);
            *base = s;
        } else {
            expect_state(fe, base, n, faults[f]);
        }
        break;
    }
    case 2: { /* the front-end reads a little of the SAVE stream, then closes */
        int sv[2], back = -1;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
            die("socketpair: %s", strerror(errno));
        CHECK(vhu_fe_set_device_state_fd(fe, VHU_TRANSFER_SAVE, VHU_PHASE_STOPPED, sv[1], &back));
        close(sv[1]);
        if (back >= 0) {
            close(sv[0]);
            sv[0] = back;
        }
        uint8_t tmp[512];
        size_t want = (size_t)(rnd() % sizeof(tmp));
        if (want && read(sv[0], tmp, want) < 0)
            die("read from the SAVE channel: %s", strerror(errno));
        close(sv[0]);
        /* Either error or, if all of it fit in the socket's buffer, 0. */
        r = vhu_fe_check_device_state(fe);
        if (r < 0 && r != -EIO && r != -EPIPE && r != -ECONNRESET && r != -ECANCELED)
            die("transfer %u: CHECK after an abandoned SAVE: %s", n, vhu_strerror(r));
        expect_state(fe, base, n, faults[f]);
        break;
    }
    case 3: { /* a phase other than STOPPED: refused, the fd not kept */
        int sv[2], back = -1;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
            die("socketpair: %s", strerror(errno));
        r = vhu_fe_set_device_state_fd(fe, (unsigned)(rnd() % 2), 1u + (unsigned)(rnd() % 3), sv[1],
                                       &back);
        close(sv[0]);
        close(sv[1]);
        if (back >= 0)
            close(back);
        if (r == 0)
            die("transfer %u: SET_DEVICE_STATE_FD with a wrong phase was accepted", n);
        expect_state(fe, base, n, faults[f]);
        break;
    }
    case 4: { /* half of the stream, then the front-end disconnects, no CHECK */
        int sv[2], back = -1;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
            die("socketpair: %s", strerror(errno));
        CHECK(vhu_fe_set_device_state_fd(fe, VHU_TRANSFER_LOAD, VHU_PHASE_STOPPED, sv[1], &back));
        close(sv[1]);
        if (back >= 0) {
            close(sv[0]);
            sv[0] = back;
        }
        size_t len = (size_t)(rnd() % base->n);
        for (size_t off = 0; off < len;) {
            ssize_t w = send(sv[0], base->p + off, len - off, MSG_NOSIGNAL);
            if (w <= 0)
                break; /* the back-end may have refused it already */
            off += (size_t)w;
        }
        vhu_fe_close(fe);
        close(sv[0]);
        fe = connect_fe();
        expect_state(fe, base, n, faults[f]);
        break;
    }
    }
    return fe;
}

/* ---- main ---- */

static void usage(FILE *f)
{
    fprintf(f, "usage: vhu-soak [--testdev PATH] [--cycles N] [--transfers N] [--blob-size N]\n"
               "                [--rss-bound-kb N] [--checkpoints N] [--seed N]\n"
               "\n"
               "Starts vhu-testdev (default: ../examples/vhu-testdev next to this program),\n"
               "then N connect/set-up/serve/disconnect cycles (default 10000) and N state\n"
               "transfers, every second one with a fault (default 1000), printing the\n"
               "back-end's open fds and VmRSS at the start, at each checkpoint and at the end.\n"
               "Fails if its fd count grows at all, if VmRSS grows by more than\n"
               "--rss-bound-kb (default 4096) after warm-up (the first tenth of each\n"
               "phase), or if it stops serving.\n");
}

static unsigned long num_arg(const char *opt, const char *s, unsigned long max)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || end == s || v > max) {
        fprintf(stderr, "%s: %s must be a number up to %lu\n", prog, opt, max);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"testdev", required_argument, NULL, 't'},
                                         {"cycles", required_argument, NULL, 'c'},
                                         {"transfers", required_argument, NULL, 'x'},
                                         {"blob-size", required_argument, NULL, 'b'},
                                         {"rss-bound-kb", required_argument, NULL, 'r'},
                                         {"checkpoints", required_argument, NULL, 'k'},
                                         {"seed", required_argument, NULL, 's'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    char testdev[PATH_MAX] = "";
    unsigned long cycles = 10000, transfers = 1000, blob = 1ul << 20, checkpoints = 10, seed = 1;
    struct figures fg = {.rss_warm = -1, .rss_bound_kb = 4096};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 't': snprintf(testdev, sizeof(testdev), "%s", optarg); break;
        case 'c': cycles = num_arg("--cycles", optarg, 100000000); break;
        case 'x': transfers = num_arg("--transfers", optarg, 100000000); break;
        case 'b': blob = num_arg("--blob-size", optarg, 64ul << 20); break;
        case 'r': fg.rss_bound_kb = (long)num_arg("--rss-bound-kb", optarg, 1ul << 30); break;
        case 'k': checkpoints = num_arg("--checkpoints", optarg, 1000); break;
        case 's': seed = num_arg("--seed", optarg, ULONG_MAX); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || checkpoints == 0 || blob < 1024) {
        usage(stderr);
        return 2;
    }
    if (!testdev[0]) {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n <= 0)
            die("cannot find this program's path; give --testdev");
        self[n] = 0;
        char *slash = strrchr(self, '/');
        *slash = 0;
        if (snprintf(testdev, sizeof(testdev), "%s/../examples/vhu-testdev", self) >=
            (int)sizeof(testdev))
            die("this program's path is too long; give --testdev");
    }
    rng ^= seed * 0x9e3779b97f4a7c15ull;
    if (!rng)
        rng = 1;
    signal(SIGPIPE, SIG_IGN);
    /* The front-end library logs every refused transfer; the faults are
     * deliberate.  VHU_SOAK_LOG=1 shows them. */
    if (!getenv("VHU_SOAK_LOG"))
        vhu_set_log_handler(quiet, NULL);

    struct vhu_guest_mem mem;
    CHECK(vhu_guest_mem_new(&mem, 0, MEM_SIZE));
    start_backend(testdev, blob);
    double t0 = now_s();
    /* The back-end is up once it accepts a connection. */
    struct vhu_fe *fe = NULL;
    CHECK(vhu_fe_connect(&fe, sock_path, 10000));
    vhu_fe_close(fe);
    fe = NULL;
    fg.fds_start = settled_fds(INT_MAX);
    for (int i = 0; i < 200; i++) { /* until it has closed the probe's socket */
        sleep_ms(5);
        int n = count_fds(be_pid);
        if (n < fg.fds_start)
            fg.fds_start = n;
    }
    fg.self_fds_start = count_fds(getpid());
    fg.rss_start = rss_kb(be_pid);
    printf("%s: back-end %s (pid %d), %lu cycles, %lu transfers, %lu-byte blob, seed %lu\n", prog,
           testdev, (int)be_pid, cycles, transfers, blob, seed);
    printf("%s: start             back-end fds %d  VmRSS %ld kB  (this process: %d fds)\n", prog,
           fg.fds_start, fg.rss_start, fg.self_fds_start);
    fflush(stdout);

    unsigned long step = cycles / checkpoints ? cycles / checkpoints : 1;
    unsigned long warm = cycles / 10 ? cycles / 10 : 1;
    for (unsigned long n = 1; n <= cycles; n++) {
        cycle(&mem, (unsigned)n);
        if (n == warm || n % step == 0 || n == cycles)
            checkpoint(&fg, "cycles", (unsigned)n, n == warm);
    }
    double t1 = now_s();

    unsigned long counts[7] = {0};
    if (transfers) {
        fe = connect_fe();
        struct blob base = {0};
        int r = save(fe, &base);
        if (r < 0)
            die("first SAVE: %s", vhu_strerror(r));
        printf("%s: snapshot of %zu bytes\n", prog, base.n);
        fg.rss_warm = -1; /* a new warm-up: the transfer thread's memory */
        step = transfers / checkpoints ? transfers / checkpoints : 1;
        /* The transfer thread's buffers and zstd contexts, and malloc's
         * arenas for them, settle over the first few transfers. */
        warm = transfers / 10 > 10 ? transfers / 10 : transfers < 10 ? transfers : 10;
        for (unsigned long n = 1; n <= transfers; n++) {
            fe = transfer(fe, &base, (unsigned)n, counts);
            if (n == warm || n % step == 0 || n == transfers) {
                /* Figures between sessions: this connection's fds are the
                 * back-end's while it lasts. */
                vhu_fe_close(fe);
                checkpoint(&fg, "transfers", (unsigned)n, n == warm);
                fe = connect_fe();
            }
        }
        /* It still serves: a clean transfer, and a state equal to the start's. */
        struct blob s = {0};
        if ((r = save(fe, &s)) < 0 || (r = load(fe, s.p, s.n)) < 0)
            die("final transfer: %s", vhu_strerror(r));
        expect_state(fe, &s, (unsigned)transfers + 1, "the final transfer");
        free(s.p);
        free(base.p);
        vhu_fe_close(fe);
    }
    cycle(&mem, 0);
    double t2 = now_s();
    checkpoint(&fg, "end", 0, false);
    int end_fds = count_fds(be_pid);
    long end_rss = rss_kb(be_pid);
    stop_backend();
    vhu_guest_mem_free(&mem);
    printf("%s: %lu cycles in %.1f s, %lu transfers in %.1f s (clean %lu; faults: truncated %lu, "
           "corrupted %lu (%lu of them loaded), SAVE channel closed early %lu, wrong phase %lu, "
           "disconnect "
           "mid-LOAD %lu)\n",
           prog, cycles, t1 - t0, transfers, t2 - t1, counts[0], counts[1], counts[2], counts[6],
           counts[3], counts[4], counts[5]);
    printf("%s: PASS  back-end fds %d -> %d, VmRSS %ld kB at start, %ld kB after warm-up, "
           "%ld kB at the end (bound +%ld kB)\n",
           prog, fg.fds_start, end_fds, fg.rss_start, fg.rss_warm, end_rss, fg.rss_bound_kb);
    cleanup();
    return 0;
}
