/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu-bench-state: device-state transfer figures, side by side with zstd.
 *
 *   vhu-bench-state [--sizes 64M,1G] [--workers N] [--repeat R]
 *
 * For each size and data kind (text-like, random): a back-end process saves
 * a state of that size through SET_DEVICE_STATE_FD into a pipe whose other
 * end a second back-end process loads from (zstd level 1 + CBOR both ways);
 * the same bytes go through `zstd -1 | zstd -d` (and `-T2`) in the same
 * run.  Also: peak RSS growth of the saving and loading processes, and
 * the SET_DEVICE_STATE_FD -> CHECK_DEVICE_STATE round trip for a 4 KiB
 * state.  Prints figures; asserts nothing. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <vhu/frontend.h>
#include <vhu/vhu.h>

#define PATTERN (16u << 20) /* bytes repeated to make a state of any size */

static uint8_t *pattern;
static uint64_t state_len;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void make_pattern(int kind)
{
    static const char *const words[] = {"virtio",   "ring",  "queue",   "guest",      "memory",
                                        "device",   "state", "migrate", "descriptor", "the",
                                        "a",        "of",    "vhost",   "user",       "back-end",
                                        "snapshot", "\n"};
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < PATTERN;) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (kind) {
            memcpy(pattern + i, &x, PATTERN - i < 8 ? PATTERN - i : 8);
            i += 8;
        } else {
            const char *w = words[x % (sizeof(words) / sizeof(words[0]))];
            size_t n = strlen(w);
            for (size_t k = 0; k < n && i < PATTERN; k++)
                pattern[i++] = (uint8_t)w[k];
            if (i < PATTERN)
                pattern[i++] = (x >> 32) % 5 ? ' ' : (uint8_t)('0' + (x >> 40) % 10);
        }
    }
}

/* ---- the bench device: one section holding state_len bytes ---- */

static const struct vhu_state_section sections[] = {
    {.name = "data", .version = 1, .min_version = 1, .optional = false}};
static uint64_t loaded_bytes;

static uint64_t bd_features(void *dev)
{
    (void)dev;
    return VHU_BIT(VHU_F_VERSION_1);
}

static int bd_start(void *dev, struct vhu_vring *q)
{
    (void)dev;
    (void)q;
    return 0;
}

static void bd_stop(void *dev, struct vhu_vring *q)
{
    (void)dev;
    (void)q;
}

static int bd_save(void *dev, const struct vhu_state_section *s, struct vhu_state_writer *w)
{
    (void)dev;
    (void)s;
    vhu_state_put_u64(w, "length", state_len);
    vhu_state_blob_begin(w, "bytes");
    for (uint64_t off = 0; off < state_len;) {
        uint64_t n = state_len - off < (1u << 20) ? state_len - off : (1u << 20);
        vhu_state_blob_write(w, pattern + (off % PATTERN), n);
        off += n;
    }
    return vhu_state_blob_end(w);
}

static int bd_load(void *dev, void *staged, const struct vhu_state_section *s, uint32_t version,
                   struct vhu_state_reader *r)
{
    (void)dev;
    (void)staged;
    (void)s;
    (void)version;
    uint64_t len;
    static uint8_t buf[1u << 20];
    if (vhu_state_get_u64(r, "length", &len) < 0 || vhu_state_blob_open(r, "bytes") < 0)
        return -EBADMSG;
    uint64_t got = 0;
    ssize_t n;
    while ((n = vhu_state_blob_read(r, buf, sizeof(buf))) > 0)
        got += (uint64_t)n;
    loaded_bytes = got;
    return n < 0 || got != len ? -EBADMSG : 0;
}

static const struct vhu_device_ops bench_ops = {
    .size = sizeof(struct vhu_device_ops),
    .name = "bench",
    .num_queues = 1,
    .features = bd_features,
    .start_vring = bd_start,
    .stop_vring = bd_stop,
    .sections = sections,
    .num_sections = 1,
    .save_section = bd_save,
    .load_section = bd_load,
};

/* A back-end process on path; returns its pid. */
static pid_t spawn_backend(const char *path, int workers)
{
    pid_t pid = fork();
    if (pid)
        return pid;
    struct vhu_backend *b;
    struct vhu_server *s;
    vhu_set_log_level(VHU_LOG_WARN);
    vhu_backend_new(&b, &bench_ops, NULL);
    vhu_backend_set_state_compression(b, 1, workers);
    struct vhu_server_config cfg = {
        .size = sizeof(cfg), .socket_path = path, .handle_signals = true};
    if (vhu_server_new(&s, b, &cfg) < 0)
        _exit(1);
    vhu_server_run(s);
    vhu_server_free(s);
    vhu_backend_free(b);
    _exit(0);
}

static long status_kib(pid_t pid, const char *field)
{
    char p[64], line[256];
    snprintf(p, sizeof(p), "/proc/%d/status", (int)pid);
    FILE *f = fopen(p, "r");
    long v = -1;
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, field, strlen(field)) == 0)
            v = atol(line + strlen(field) + 1);
    if (f)
        fclose(f);
    return v;
}

static struct vhu_fe *connect_fe(const char *path)
{
    struct vhu_fe *fe;
    if (vhu_fe_connect(&fe, path, 5000) < 0 || vhu_fe_negotiate(fe, ~0ull, ~0ull, NULL, NULL) < 0) {
        fprintf(stderr, "bench: cannot connect to %s\n", path);
        exit(1);
    }
    vhu_fe_set_timeout(fe, 600000);
    return fe;
}

struct check_job {
    struct vhu_fe *fe;
    int result;
};

static void *check_thread(void *arg)
{
    struct check_job *j = arg;
    j->result = vhu_fe_check_device_state(j->fe);
    return NULL;
}

/* One SAVE -> pipe -> LOAD: the pipe's ends go straight to the two
 * back-ends (as two QEMUs' would, minus the migration stream), both CHECKs
 * run at once.  Seconds of wall time. */
static double vhu_pipe_run(struct vhu_fe *a, struct vhu_fe *b, int *ok)
{
    int p[2], back;
    if (pipe2(p, O_CLOEXEC) < 0)
        exit(1);
    fcntl(p[0], F_SETPIPE_SZ, 1 << 20);
    double t0 = now_s();
    int ra = vhu_fe_set_device_state_fd(a, VHU_TRANSFER_SAVE, VHU_PHASE_STOPPED, p[1], &back);
    int rb = vhu_fe_set_device_state_fd(b, VHU_TRANSFER_LOAD, VHU_PHASE_STOPPED, p[0], &back);
    close(p[0]);
    close(p[1]);
    struct check_job j = {.fe = a};
    pthread_t t;
    pthread_create(&t, NULL, check_thread, &j);
    int cb = vhu_fe_check_device_state(b);
    pthread_join(t, NULL);
    double dt = now_s() - t0;
    *ok = ra == 0 && rb == 0 && j.result == 0 && cb == 0;
    return dt;
}

static double shell_run(const char *cmd)
{
    double t0 = now_s();
    int r = system(cmd);
    double dt = now_s() - t0;
    return r == 0 ? dt : -1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return v[n / 2];
}

static uint64_t parse_size(const char *s)
{
    char *end;
    uint64_t v = strtoull(s, &end, 10);
    switch (*end) {
    case 'K':
    case 'k': return v << 10;
    case 'M':
    case 'm': return v << 20;
    case 'G':
    case 'g': return v << 30;
    default: return v;
    }
}

int main(int argc, char **argv)
{
    const char *sizes = "64M,1G";
    int workers = 2, repeat = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--sizes") && i + 1 < argc)
            sizes = argv[++i];
        else if (!strcmp(argv[i], "--workers") && i + 1 < argc)
            workers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: vhu-bench-state [--sizes 64M,1G] [--workers N] "
                            "[--repeat R]\n");
            return 2;
        }
    }
    if (repeat < 1 || repeat > 50)
        repeat = 3;
    signal(SIGPIPE, SIG_IGN);
    bool have_zstd = system("command -v zstd >/dev/null 2>&1") == 0;
    pattern = malloc(PATTERN);
    char dir[] = "/dev/shm/vhu-bench-XXXXXX";
    if (!mkdtemp(dir)) {
        strcpy(dir, "/tmp/vhu-bench-XXXXXX");
        if (!mkdtemp(dir))
            return 1;
    }
    printf("vhu %s device-state benchmark: zstd level 1 + CBOR, SAVE -> pipe -> LOAD between "
           "two back-end processes; reference: zstd -1 -c FILE | zstd -d (same bytes)\n"
           "medians of %d runs; MB/s = state bytes / wall time\n\n",
           vhu_version(), repeat);
    printf("%-7s %-6s | %9s %9s | %9s %9s | %7s %7s | %9s %9s\n", "size", "data", "vhu", "vhu-T",
           "zstd-1", "zstd-1T2", "vhu/z", "vhuT/z", "RSS+save", "RSS+load");

    char list[256];
    snprintf(list, sizeof(list), "%s", sizes);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        state_len = parse_size(tok);
        for (int kind = 0; kind < 2; kind++) {
            make_pattern(kind);
            /* Back-ends fork after the pattern exists: it is not growth. */
            char pa[128], pb[128], pc[128];
            snprintf(pa, sizeof(pa), "%s/a", dir);
            snprintf(pb, sizeof(pb), "%s/b", dir);
            snprintf(pc, sizeof(pc), "%s/c", dir);
            pid_t A = spawn_backend(pa, 0), B = spawn_backend(pb, 0),
                  C = spawn_backend(pc, workers);
            struct vhu_fe *fa = connect_fe(pa), *fb = connect_fe(pb), *fc = connect_fe(pc);
            long rss_a0 = status_kib(A, "VmRSS:"), rss_b0 = status_kib(B, "VmRSS:");
            double v[50], vt[50], z[50], zt[50];
            int ok = 1, okt = 1;
            for (int r = 0; r < repeat; r++) {
                v[r] = vhu_pipe_run(fa, fb, &ok);
                vt[r] = vhu_pipe_run(fc, fb, &okt);
            }
            long hwm_a = status_kib(A, "VmHWM:"), hwm_b = status_kib(B, "VmHWM:");
            double zm = -1, ztm = -1;
            if (have_zstd) {
                char file[160], cmd[512];
                snprintf(file, sizeof(file), "%s/data", dir);
                int fd = open(file, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
                for (uint64_t off = 0; off < state_len;) {
                    uint64_t n = state_len - off < PATTERN ? state_len - off : PATTERN;
                    if (write(fd, pattern, n) != (ssize_t)n)
                        return 1;
                    off += n;
                }
                close(fd);
                for (int r = 0; r < repeat; r++) {
                    snprintf(cmd, sizeof(cmd), "zstd -q -1 -c %s | zstd -q -d -c > /dev/null",
                             file);
                    z[r] = shell_run(cmd);
                    snprintf(cmd, sizeof(cmd), "zstd -q -1 -T2 -c %s | zstd -q -d -c > /dev/null",
                             file);
                    zt[r] = shell_run(cmd);
                }
                unlink(file);
                zm = median(z, repeat);
                ztm = median(zt, repeat);
            }
            double vm = median(v, repeat), vtm = median(vt, repeat);
            double mb = (double)state_len / 1e6;
            printf("%-7s %-6s | %9.0f %9.0f | %9.0f %9.0f | %7.2f %7.2f | %6ld MiB %6ld MiB%s\n",
                   tok, kind ? "random" : "text", mb / vm, mb / vtm, zm > 0 ? mb / zm : 0,
                   ztm > 0 ? mb / ztm : 0, zm > 0 ? zm / vm : 0, zm > 0 ? zm / vtm : 0,
                   (hwm_a - rss_a0) / 1024, (hwm_b - rss_b0) / 1024,
                   ok && okt ? "" : "  (A TRANSFER FAILED)");
            fflush(stdout);
            vhu_fe_close(fa);
            vhu_fe_close(fb);
            vhu_fe_close(fc);
            kill(A, SIGTERM);
            kill(B, SIGTERM);
            kill(C, SIGTERM);
            waitpid(A, NULL, 0);
            waitpid(B, NULL, 0);
            waitpid(C, NULL, 0);
        }
    }
    if (!have_zstd)
        printf("(zstd not installed: reference columns are 0; apt-get install zstd)\n");

    /* SET -> CHECK round trip for a 4 KiB state, saved to a memfd. */
    state_len = 4096;
    make_pattern(0);
    char pa[128];
    snprintf(pa, sizeof(pa), "%s/l", dir);
    pid_t L = spawn_backend(pa, 0);
    struct vhu_fe *fl = connect_fe(pa);
    int mfd = memfd_create("snap", MFD_CLOEXEC);
    double lat[1000];
    int n = 1000;
    for (int i = 0; i < n; i++) {
        ftruncate(mfd, 0);
        lseek(mfd, 0, SEEK_SET);
        double t0 = now_s();
        if (vhu_fe_save_state(fl, mfd) < 0) {
            printf("4 KiB save failed\n");
            break;
        }
        lat[i] = (now_s() - t0) * 1e6;
    }
    qsort(lat, (size_t)n, sizeof(lat[0]), cmp_double);
    printf("\nSET_DEVICE_STATE_FD -> CHECK_DEVICE_STATE, 4 KiB state, %d runs: p50 %.0f us, "
           "p99 %.0f us, min %.0f us\n",
           n, lat[n / 2], lat[n * 99 / 100], lat[0]);
    close(mfd);
    vhu_fe_close(fl);
    kill(L, SIGTERM);
    waitpid(L, NULL, 0);
    rmdir(dir);
    free(pattern);
    return 0;
}
