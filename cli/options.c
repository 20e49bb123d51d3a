/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu-state: shared option handling, output helpers, progress line and the
 * snapshot input (see options.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "options.h"

struct cli_common cli = {.max_size = 64ull << 30, .timeout_ms = 5000};

/* ---- options ---- */

void cli_print_help(const struct cli_cmd *cmd, FILE *f)
{
    fprintf(f, "usage: vhu-state %s\n\n%s\n\n%s", cmd->usage, cmd->summary, cmd->help);
    fprintf(f, "\nCommon options:\n"
               "  -j, --json          machine-readable output (keys: see vhu-state.md)\n"
               "      --max-size N    refuse a snapshot inflating beyond N bytes (K/M/G/T\n"
               "                      suffixes; default 64G)\n"
               "      --timeout SECS  connect and reply timeout for --socket (default 5)\n"
               "  -h, --help          this text\n"
               "\nManual: cli/vhu-state.md in the vhu sources.\n");
}

int cli_usage_error(const struct cli_cmd *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "vhu-state %s: ", cmd->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: vhu-state %s (try: vhu-state help %s)\n", cmd->usage, cmd->name);
    return CLI_ERR;
}

bool cli_parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!*s || *s == '-')
        return false;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return false;
    unsigned shift = 0;
    switch (*end) {
    case 0: break;
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    case 't': case 'T': shift = 40; end++; break;
    default: return false;
    }
    if (*end == 'i' && shift)
        end++;
    if ((*end == 'B' || *end == 'b') && shift)
        end++;
    if (*end || (shift && v > (UINT64_MAX >> shift)))
        return false;
    *out = (uint64_t)v << shift;
    return true;
}

int cli_common_option(const struct cli_cmd *cmd, int c, const char *arg)
{
    switch (c) {
    case 'h':
        cli_print_help(cmd, stdout);
        return cli_finish_output(CLI_OK);
    case 'j':
        cli.json = true;
        return -1;
    case OPT_MAX_SIZE:
        if (!cli_parse_size(arg, &cli.max_size) || cli.max_size == 0)
            return cli_usage_error(cmd, "--max-size: '%s' is not a size (e.g. 512M, 64G)", arg);
        return -1;
    case OPT_TIMEOUT: {
        char *end;
        unsigned long v = strtoul(arg, &end, 10);
        if (*end || end == arg || v < 1 || v > 3600)
            return cli_usage_error(cmd, "--timeout: '%s' is not 1..3600 seconds", arg);
        cli.timeout_ms = (int)v * 1000;
        return -1;
    }
    default:
        /* getopt printed what was wrong. */
        fprintf(stderr, "usage: vhu-state %s (try: vhu-state help %s)\n", cmd->usage,
                cmd->name);
        return CLI_ERR;
    }
}

void cli_err(const char *fmt, ...)
{
    va_list ap;
    progress_done();
    fputs("vhu-state: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cli_finish_output(int code)
{
    progress_done();
    if (fflush(stdout) != 0 || ferror(stdout)) {
        if (errno != EPIPE)
            fprintf(stderr, "vhu-state: writing the output: %s\n", strerror(errno));
        return CLI_ERR;
    }
    return code;
}

/* ---- text ---- */

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static size_t utf8_len(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

bool cli_utf8_valid(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t l = utf8_len(s + i, n - i);
        if (!l)
            return false;
        i += l;
    }
    return true;
}

void h_quoted(FILE *f, const uint8_t *s, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        size_t l = utf8_len(s + i, n - i);
        if (l == 1 && s[i] >= 0x20 && s[i] != 0x7f && s[i] != '"' && s[i] != '\\')
            fputc(s[i], f);
        else if (l > 1)
            fwrite(s + i, 1, l, f);
        else if (s[i] == '"' || s[i] == '\\')
            fprintf(f, "\\%c", s[i]);
        else
            fprintf(f, "\\x%02x", s[i]);
        i += l ? l : 1;
    }
    fputc('"', f);
}

/* ---- JSON ---- */

#define J_MAX 64
struct jlevel {
    bool arr, first;
};
static struct jlevel jst[J_MAX];
static unsigned jn;
static bool j_any; /* something written at top level */

static void j_escaped(const uint8_t *s, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n;) {
        size_t l = utf8_len(s + i, n - i);
        uint8_t c = s[i];
        if (l > 1) {
            fwrite(s + i, 1, l, stdout);
            i += l;
            continue;
        }
        if (l == 0)
            fputs("\\ufffd", stdout); /* not UTF-8: the replacement character */
        else if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c == '\n')
            fputs("\\n", stdout);
        else if (c == '\t')
            fputs("\\t", stdout);
        else if (c < 0x20 || c == 0x7f)
            printf("\\u%04x", c);
        else
            putchar(c);
        i++;
    }
    putchar('"');
}

static void j_key(const char *key)
{
    if (jn) {
        if (!jst[jn - 1].first)
            putchar(',');
        jst[jn - 1].first = false;
    } else if (j_any) {
        putchar('\n');
    }
    j_any = true;
    if (key && jn && !jst[jn - 1].arr) {
        j_escaped((const uint8_t *)key, strlen(key));
        putchar(':');
    }
}

static void j_open(const char *key, bool arr)
{
    j_key(key);
    putchar(arr ? '[' : '{');
    if (jn < J_MAX)
        jst[jn] = (struct jlevel){.arr = arr, .first = true};
    jn++;
}

void j_obj(const char *key) { j_open(key, false); }
void j_arr(const char *key) { j_open(key, true); }

void j_end(void)
{
    if (!jn)
        return;
    jn--;
    putchar(jn < J_MAX && jst[jn].arr ? ']' : '}');
    if (!jn)
        putchar('\n');
}

void j_close_to(unsigned depth)
{
    while (jn > depth)
        j_end();
}

unsigned j_depth(void) { return jn; }

void j_str(const char *key, const char *s)
{
    j_key(key);
    j_escaped((const uint8_t *)s, strlen(s));
}

void j_strn(const char *key, const uint8_t *s, size_t n)
{
    j_key(key);
    j_escaped(s, n);
}

void j_u64(const char *key, uint64_t v)
{
    j_key(key);
    printf("%" PRIu64, v);
}

void j_i64(const char *key, int64_t v)
{
    j_key(key);
    printf("%" PRId64, v);
}

void j_bool(const char *key, bool v)
{
    j_key(key);
    fputs(v ? "true" : "false", stdout);
}

void j_hex_begin(const char *key)
{
    j_key(key);
    putchar('"');
}

void j_hex_more(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%02x", p[i]);
}

void j_hex_end(void) { putchar('"'); }

void j_newline(void) { putchar('\n'); }

/* ---- progress ---- */

static const char *prog_what;
static bool prog_shown;
static int prog_tty = -1;
static struct timespec prog_last, prog_start;

void progress_set(const char *what)
{
    prog_what = what;
    clock_gettime(CLOCK_MONOTONIC, &prog_start);
    prog_last = prog_start;
}

void progress_update(uint64_t in_bytes, uint64_t out_bytes)
{
    if (prog_tty < 0)
        prog_tty = isatty(2);
    if (!prog_tty || !prog_what)
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double since = (double)(now.tv_sec - prog_last.tv_sec) +
                   (double)(now.tv_nsec - prog_last.tv_nsec) / 1e9;
    double total = (double)(now.tv_sec - prog_start.tv_sec) +
                   (double)(now.tv_nsec - prog_start.tv_nsec) / 1e9;
    /* Quick work shows nothing; long work a line twice a second. */
    if (since < 0.5 || total < 1.0)
        return;
    prog_last = now;
    fprintf(stderr, "\rvhu-state: %s: %" PRIu64 " MiB read, %" PRIu64 " MiB decompressed ",
            prog_what, in_bytes >> 20, out_bytes >> 20);
    prog_shown = true;
}

void progress_done(void)
{
    if (prog_shown) {
        fputs("\r\033[K", stderr);
        prog_shown = false;
    }
}

/* ---- snapshot input ----
 *
 * A pump thread reads the input and feeds the library's reader through a
 * pipe, keeping the first bytes (header and zstd frame header) for the
 * checks the library does not make, and counting what it read. */

#define PUMP_CHUNK (64u << 10)

static void *pump_thread(void *arg)
{
    struct snapin *s = arg;
    uint8_t *buf = malloc(PUMP_CHUNK);
    if (!buf) {
        atomic_store(&s->in_err, ENOMEM);
        goto out;
    }
    for (;;) {
        /* Wait for input or for the end of the run (an input that never
         * ends must not keep us here). */
        struct pollfd pf[2] = {{.fd = s->in_fd, .events = POLLIN},
                               {.fd = s->stop_fd, .events = POLLIN}};
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            atomic_store(&s->in_err, errno);
            break;
        }
        if (pf[1].revents)
            break;
        ssize_t n = read(s->in_fd, buf, PUMP_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            atomic_store(&s->in_err, errno);
            break;
        }
        if (n == 0)
            break;
        size_t hl = atomic_load(&s->head_len);
        if (hl < SNAP_HEAD_CAP) {
            size_t c = (size_t)n < SNAP_HEAD_CAP - hl ? (size_t)n : SNAP_HEAD_CAP - hl;
            memcpy(s->head + hl, buf, c);
            atomic_store(&s->head_len, hl + c);
        }
        atomic_fetch_add(&s->raw, (uint64_t)n);
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(s->wr, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                goto out; /* the reader stopped reading: fine */
            off += w;
        }
    }
out:
    free(buf);
    atomic_store(&s->pump_done, true);
    close(s->wr);
    s->wr = -1;
    return NULL;
}

/* Decompression contexts are kept for the whole run (validate reads many
 * files; diff two at once): their buffers are allocated once. */
static struct {
    ZSTD_DCtx *dctx;
    bool busy;
} dctx_pool[2];

static ZSTD_DCtx *dctx_get(struct snapin *s)
{
    for (unsigned i = 0; i < 2; i++) {
        if (dctx_pool[i].busy)
            continue;
        if (!dctx_pool[i].dctx && !(dctx_pool[i].dctx = ZSTD_createDCtx()))
            return NULL; /* the reader makes its own */
        dctx_pool[i].busy = true;
        s->dctx_slot = (int)i;
        return dctx_pool[i].dctx;
    }
    return NULL;
}

int snapin_open_fd(struct snapin *s, const char *name, int fd)
{
    memset(s, 0, sizeof(*s));
    s->dctx_slot = -1;
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->in_fd = fd;
    s->own_in = fd != 0;
    s->rd = s->wr = -1;
    s->stop_fd = eventfd(0, EFD_CLOEXEC);
    s->head = malloc(SNAP_HEAD_CAP);
    s->h = malloc(sizeof(*s->h));
    int p[2];
    if (s->stop_fd < 0 || !s->head || !s->h || pipe2(p, O_CLOEXEC) < 0) {
        snprintf(s->why, sizeof(s->why), "cannot set up the input: %s",
                 strerror(errno ? errno : ENOMEM));
        cli_err("%s: %s", name, s->why);
        return CLI_ERR;
    }
    s->rd = p[0];
    s->wr = p[1];
    s->r = vhu_snap_reader_new(s->rd, -1, dctx_get(s));
    if (!s->r) {
        cli_err("%s: out of memory", name);
        return CLI_ERR;
    }
    int e = pthread_create(&s->pump, NULL, pump_thread, s);
    if (e) {
        cli_err("%s: cannot start the input thread: %s", name, strerror(e));
        return CLI_ERR;
    }
    s->pump_running = true;
    return 0;
}

int snapin_open(struct snapin *s, const char *path)
{
    int fd;
    if (strcmp(path, "-") == 0) {
        fd = 0;
        path = "(stdin)";
    } else {
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            memset(s, 0, sizeof(*s));
            s->rd = s->wr = s->in_fd = s->stop_fd = s->dctx_slot = -1;
            snprintf(s->name, sizeof(s->name), "%s", path);
            snprintf(s->why, sizeof(s->why), "cannot open: %s", strerror(e));
            cli_err("%s: %s", path, strerror(e));
            return CLI_ERR;
        }
    }
    return snapin_open_fd(s, path, fd);
}

void snapin_close(struct snapin *s)
{
    if (s->pump_running) {
        /* The pump may wait on an input that never ends, or on a pipe
         * nobody reads any more: stop it both ways. */
        uint64_t one = 1;
        if (write(s->stop_fd, &one, sizeof(one)) < 0)
            cli_err("stopping the input thread: %s", strerror(errno));
        close(s->rd);
        s->rd = -1;
        pthread_join(s->pump, NULL);
        s->pump_running = false;
    }
    if (s->wr >= 0)
        close(s->wr);
    if (s->rd >= 0)
        close(s->rd);
    if (s->own_in && s->in_fd >= 0)
        close(s->in_fd);
    if (s->stop_fd >= 0)
        close(s->stop_fd);
    vhu_snap_reader_free(s->r);
    if (s->dctx_slot >= 0)
        dctx_pool[s->dctx_slot].busy = false;
    free(s->head);
    free(s->h);
    memset(s, 0, sizeof(*s));
    s->rd = s->wr = s->in_fd = s->stop_fd = s->dctx_slot = -1;
}

static void progress(struct snapin *s)
{
    progress_update(atomic_load(&s->raw), vhu_snap_reader_body_offset(s->r));
}

/* The decompressed size limit: a zstd bomb stops here.  So does a closed
 * output (`inspect big.vhus | head`): no point reading on. */
static int check_size(struct snapin *s)
{
    if (vhu_snap_reader_body_offset(s->r) > cli.max_size) {
        s->too_big = true;
        return -EFBIG;
    }
    if (ferror(stdout)) {
        s->out_err = true;
        return -EPIPE;
    }
    return 0;
}

int snapin_header(struct snapin *s)
{
    return vhu_snap_read_header(s->r, s->h);
}

int snapin_record(struct snapin *s, struct vhu_snap_handler *h, struct vhu_snap_section_info *si,
                  unsigned *nend)
{
    if (check_size(s) < 0)
        return -EFBIG;
    int k = vhu_snap_next_record(s->r, h, si, nend);
    progress(s);
    return k;
}

int snapin_field(struct snapin *s, struct vhu_snap_field *f)
{
    if (check_size(s) < 0)
        return -EFBIG;
    int e = vhu_snap_next_field(s->r, f);
    progress(s);
    return e;
}

/* A piece of the open blob; 0 at its end (reported once). */
ssize_t snapin_blob_read(struct snapin *s, void *buf, size_t cap)
{
    if (check_size(s) < 0)
        return -EFBIG;
    ssize_t n = vhu_state_blob_read(s->r, buf, cap);
    progress(s);
    return n;
}

int snapin_section_done(struct snapin *s)
{
    return vhu_snap_section_done(s->r);
}

int snapin_skip_value(struct snapin *s, const struct vhu_snap_field *f)
{
    static uint8_t sink[64 << 10];
    if (f->type == VHU_SNAP_BLOB) {
        for (;;) {
            ssize_t n = snapin_blob_read(s, sink, sizeof(sink));
            if (n < 0)
                return (int)n;
            if (n == 0)
                return 0;
        }
    }
    if (f->type != VHU_SNAP_MAP)
        return 0;
    unsigned level = 0;
    struct vhu_snap_field g;
    for (;;) {
        int e = snapin_field(s, &g);
        if (e < 0)
            return e;
        if (g.type == VHU_SNAP_MAP) {
            level++;
        } else if (g.type == VHU_SNAP_END) {
            if (level == 0)
                return 0;
            level--;
        } else if (g.type == VHU_SNAP_BLOB) {
            if ((e = snapin_skip_value(s, &g)) < 0)
                return e;
        }
    }
}

const char *snapin_why(struct snapin *s, int *code)
{
    int in_err = atomic_load(&s->in_err);
    const char *why = NULL;
    int e = vhu_snap_reader_error(s->r, &why);
    if (in_err) {
        snprintf(s->why, sizeof(s->why), "reading the input at byte %" PRIu64 ": %s",
                 (uint64_t)atomic_load(&s->raw), strerror(in_err));
        *code = CLI_ERR;
    } else if (s->out_err) {
        snprintf(s->why, sizeof(s->why), "writing the output failed");
        *code = CLI_ERR;
    } else if (s->too_big) {
        snprintf(s->why, sizeof(s->why), "the snapshot inflates beyond %" PRIu64
                 " bytes (--max-size) at byte %" PRIu64 "; refusing it (a zstd bomb?)",
                 cli.max_size, snapin_offset(s));
        *code = CLI_BAD;
    } else if (e) {
        snprintf(s->why, sizeof(s->why), "%s", why);
        *code = e == -ENOMEM ? CLI_ERR : CLI_BAD;
    } else {
        snprintf(s->why, sizeof(s->why), "unexpected snapshot content");
        *code = CLI_BAD;
    }
    return s->why;
}

uint64_t snapin_offset(const struct snapin *s) { return vhu_snap_reader_offset(s->r); }
uint64_t snapin_body_offset(const struct snapin *s) { return vhu_snap_reader_body_offset(s->r); }

const char *ftype_name(enum vhu_snap_ftype t)
{
    static const char *const n[] = {"uint", "int", "bool", "text", "bytes", "blob", "map", "end"};
    return (unsigned)t < sizeof(n) / sizeof(n[0]) ? n[t] : "?";
}
