/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu-state: the snapshot input (see input.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "input.h"
#include "options.h"
#include "progress.h"

/* A pump thread reads the input and feeds the library's reader through a
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

int snapin_header(struct snapin *s) { return vhu_snap_read_header(s->r, s->h); }

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

int snapin_section_done(struct snapin *s) { return vhu_snap_section_done(s->r); }

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
        snprintf(s->why, sizeof(s->why),
                 "the snapshot inflates beyond %" PRIu64 " bytes (--max-size) at byte %" PRIu64
                 "; refusing it (a zstd bomb?)",
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
