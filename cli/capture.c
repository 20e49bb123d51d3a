/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu-state capture: act as the front-end and save a back-end's state:
 * connect, negotiate (DEVICE_STATE required), stop every ring with
 * GET_VRING_BASE, SET_DEVICE_STATE_FD(SAVE), copy the stream out, CHECK.
 * Or, with --control, a live snapshot over the back-end's control socket:
 * the output fd is handed over and the back-end writes it while its VM
 * keeps running. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vhu/frontend.h>
#include <vhu/state.h>

#include "options.h"

int cli_fe_open(const char *sock, struct vhu_fe **out)
{
    struct vhu_fe *fe = NULL;
    uint64_t pf = 0;
    int r = vhu_fe_connect(&fe, sock, cli.timeout_ms);
    if (r < 0) {
        cli_err("%s: cannot connect: %s", sock, vhu_strerror(r));
        return CLI_ERR;
    }
    vhu_fe_set_timeout(fe, cli.timeout_ms);
    r = vhu_fe_negotiate(fe, ~0ull, ~0ull, NULL, &pf);
    if (r == -EBUSY) {
        cli_err("%s: the back-end is busy with another front-end (it closed this "
                "connection)",
                sock);
        vhu_fe_close(fe);
        return CLI_ERR;
    }
    if (r < 0) {
        cli_err("%s: negotiation failed: %s", sock, vhu_strerror(r));
        vhu_fe_close(fe);
        return CLI_ERR;
    }
    if (!(pf & VHU_BIT(VHU_PF_DEVICE_STATE))) {
        cli_err("%s: the back-end does not offer the DEVICE_STATE protocol feature: it "
                "cannot save or load its state",
                sock);
        vhu_fe_close(fe);
        return CLI_ERR;
    }
    *out = fe;
    return 0;
}

/* GET_VRING_BASE on every ring: a started ring stops, others are left as
 * they are.  The count comes from GET_QUEUE_NUM (MQ), else rings are tried
 * until the back-end refuses an index. */
int cli_fe_stop_rings(struct vhu_fe *fe, const char *sock, unsigned *nrings)
{
    uint64_t n = 0;
    bool mq = vhu_fe_acked_protocol_features(fe) & VHU_BIT(VHU_PF_MQ);
    int r;
    if (mq && (r = vhu_fe_get_queue_num(fe, &n)) < 0) {
        cli_err("%s: GET_QUEUE_NUM failed: %s", sock, vhu_strerror(r));
        return CLI_ERR;
    }
    unsigned limit =
        mq ? (n < VHU_SNAP_MAX_QUEUES ? (unsigned)n : VHU_SNAP_MAX_QUEUES) : VHU_SNAP_MAX_QUEUES;
    unsigned i;
    for (i = 0; i < limit; i++) {
        unsigned base;
        r = vhu_fe_get_vring_base(fe, i, &base);
        if (r < 0 && !mq && i > 0)
            break; /* past the last ring */
        if (r < 0) {
            cli_err("%s: GET_VRING_BASE %u failed: %s", sock, i, vhu_strerror(r));
            return CLI_ERR;
        }
    }
    *nrings = i;
    return 0;
}

/* The stream goes through a pipe to a copy thread that writes it to the
 * output and counts it for the progress line.  A write error closes the
 * pipe: the writer (the back-end's child, or the library's SAVE copy) then
 * fails with EPIPE instead of blocking on a pipe nobody reads. */
struct copier {
    int in, out; /* the pipe's read end; the output */
    pthread_t thread;
    uint64_t bytes;
    int err; /* errno of the failed write, or 0 */
};

static void *copier_main(void *arg)
{
    struct copier *c = arg;
    static char buf[1u << 16];
    for (;;) {
        ssize_t n = read(c->in, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(c->out, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                c->err = errno;
                close(c->in);
                c->in = -1;
                return NULL;
            }
            off += w;
        }
        c->bytes += (uint64_t)n;
        progress_written(c->bytes);
    }
    close(c->in);
    c->in = -1;
    return NULL;
}

/* The fd to hand the writer, or -1 (errno set). */
static int copier_start(struct copier *c, int out)
{
    int p[2];
    memset(c, 0, sizeof(*c));
    if (pipe2(p, O_CLOEXEC) < 0)
        return -1;
    c->in = p[0];
    c->out = out;
    if ((errno = pthread_create(&c->thread, NULL, copier_main, c)) != 0) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    return p[1];
}

/* Close the writer's end (every other copy is closed by now) and wait for
 * the rest; 0 or the write's errno. */
static int copier_finish(struct copier *c, int wfd)
{
    close(wfd);
    pthread_join(c->thread, NULL);
    progress_done();
    return c->err;
}

static int capture_main(const struct cli_cmd *cmd, int argc, char **argv)
{
    static const struct option lo[] = {CLI_COMMON_OPTIONS,
                                       {"socket", required_argument, NULL, 's'},
                                       {"control", required_argument, NULL, 'c'},
                                       {"output", required_argument, NULL, 'o'},
                                       {NULL, 0, NULL, 0}};
    const char *sock = NULL, *ctlp = NULL, *outp = NULL;
    int c, r;
    while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "s:c:o:", lo, NULL)) != -1) {
        switch (c) {
        case 's': sock = optarg; break;
        case 'c': ctlp = optarg; break;
        case 'o': outp = optarg; break;
        default:
            if ((r = cli_common_option(cmd, c, optarg)) >= 0)
                return r;
        }
    }
    if (!sock == !ctlp || !outp || optind != argc)
        return cli_usage_error(cmd, "one of --socket or --control, and -o, are required, and "
                                    "nothing else");
    bool to_stdout = strcmp(outp, "-") == 0;
    /* The report goes to stderr when the snapshot goes to stdout. */
    FILE *rep = to_stdout ? stderr : stdout;
    if (to_stdout && cli.json)
        return cli_usage_error(cmd, "--json reports on stdout: it cannot go with -o -");

    char *tmp = NULL;
    int fd = 1;
    if (!to_stdout) {
        /* Written next to the target and renamed over it once CHECK passed:
         * a failed capture leaves no half snapshot behind. */
        char *dup = strdup(outp);
        if (!dup || asprintf(&tmp, "%s/.%s.XXXXXX", dirname(dup),
                             strrchr(outp, '/') ? strrchr(outp, '/') + 1 : outp) < 0) {
            free(dup);
            cli_err("out of memory");
            return CLI_ERR;
        }
        free(dup);
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0) {
            cli_err("%s: cannot create a file next to it: %s", outp, strerror(errno));
            free(tmp);
            return CLI_ERR;
        }
        fchmod(fd, 0644);
    }
    progress_set("capture");
    struct vhu_fe *fe = NULL;
    unsigned nrings = 0;
    struct vhu_fe_control_snapshot snap = {0};
    int code;
    /* The stream goes through the copier to fd: wfd is what the back-end
     * (--control) or the library's SAVE copy (--socket) writes. */
    struct copier cp;
    int wfd = copier_start(&cp, fd);
    if (wfd < 0) {
        cli_err("no pipe or thread for the stream: %s", strerror(errno));
        code = CLI_ERR;
    } else if (ctlp) {
        struct vhu_fe_control *ctl = NULL;
        char why[512] = "";
        r = vhu_fe_control_connect(&ctl, ctlp, cli.timeout_ms);
        bool connected = r == 0;
        if (!connected)
            cli_err("%s: cannot connect: %s", ctlp, vhu_strerror(r));
        else /* The reply comes when the stream is complete: no limit. */
            r = vhu_fe_control_snapshot(ctl, wfd, -1, &snap, why, sizeof(why));
        vhu_fe_control_close(ctl);
        int e = copier_finish(&cp, wfd);
        code = 0;
        if (e) {
            /* The child then failed too (EPIPE): the output is the news. */
            cli_err("%s: %s", to_stdout ? "stdout" : outp, strerror(e));
            code = CLI_ERR;
        } else if (!connected) {
            code = CLI_ERR;
        } else if (r < 0) {
            cli_err("%s: snapshot failed: %s%s%s", ctlp, vhu_strerror(r), why[0] ? ": " : "", why);
            code = r == -ECONNRESET || r == -EPROTO || r == -ETIMEDOUT ? CLI_ERR : CLI_BAD;
        }
    } else {
        code = cli_fe_open(sock, &fe);
        if (code == 0)
            code = cli_fe_stop_rings(fe, sock, &nrings);
        r = code == 0 ? vhu_fe_save_state(fe, wfd) : 0;
        vhu_fe_close(fe);
        int e = copier_finish(&cp, wfd);
        if (e) {
            cli_err("%s: %s", to_stdout ? "stdout" : outp, strerror(e));
            code = CLI_ERR;
        } else if (code == 0 && r < 0) {
            cli_err("%s: saving the state failed: %s%s", sock, vhu_strerror(r),
                    r == -EPIPE || r == -EIO ? "" : " (the back-end's log names the reason)");
            code = r == -EPIPE || r == -ENOSPC || r == -EBADF ? CLI_ERR : CLI_BAD;
        }
    }
    off_t size = 0;
    if (!to_stdout) {
        struct stat st;
        if (code == 0 && fstat(fd, &st) == 0)
            size = st.st_size;
        if (code == 0 && (fsync(fd) < 0 || rename(tmp, outp) < 0)) {
            cli_err("%s: %s", outp, strerror(errno));
            code = CLI_ERR;
        }
        close(fd);
        if (code != 0)
            unlink(tmp);
        free(tmp);
    }
    if (code != 0)
        return code;
    if (cli.json && ctlp) {
        j_obj(NULL);
        j_str("control", ctlp);
        j_str("output", outp);
        j_u64("size", (uint64_t)size);
        j_u64("bytes", snap.bytes);
        j_u64("pause_us", snap.pause_us);
        j_u64("fork_us", snap.fork_us);
        j_u64("duration_us", snap.duration_us);
        j_end();
    } else if (ctlp) {
        fprintf(rep,
                "snapshot of %s into %s (%" PRIu64 " bytes); rings paused %" PRIu64
                " us (fork %" PRIu64 " us), written in %" PRIu64 " ms\n",
                ctlp, to_stdout ? "stdout" : outp, snap.bytes, snap.pause_us, snap.fork_us,
                snap.duration_us / 1000);
    } else if (cli.json) {
        j_obj(NULL);
        j_str("socket", sock);
        j_str("output", outp);
        j_u64("size", (uint64_t)size);
        j_u64("rings_stopped", nrings);
        j_bool("checked", true);
        j_end();
    } else {
        fprintf(rep, "captured the state of %s into %s", sock, to_stdout ? "stdout" : outp);
        if (!to_stdout)
            fprintf(rep, " (%" PRIu64 " bytes)", (uint64_t)size);
        fprintf(rep, "; %u ring%s stopped; CHECK_DEVICE_STATE: ok\n", nrings,
                nrings == 1 ? "" : "s");
    }
    return cli_finish_output(CLI_OK);
}

const struct cli_cmd cli_capture_cmd = {
    .name = "capture",
    .run = capture_main,
    .summary = "save a running back-end's device state into a snapshot file",
    .usage = "capture (--socket SOCKET | --control CONTROL) -o FILE [--json] [--timeout SECS]",
    .help = "Acts as the front-end (as QEMU does at migration): connects to the\n"
            "back-end's vhost-user socket, negotiates (DEVICE_STATE must be offered),\n"
            "sends GET_VRING_BASE for every ring (which stops the ones running; the\n"
            "count comes from GET_QUEUE_NUM), then SET_DEVICE_STATE_FD (SAVE, phase\n"
            "STOPPED), copies the stream into FILE and sends CHECK_DEVICE_STATE.  The\n"
            "file appears only once CHECK succeeded.  The back-end must not be serving\n"
            "another front-end (a vhost-user back-end serves one at a time): a vhu\n"
            "back-end busy with one closes this connection at once, and capture says\n"
            "so (\"busy\", exit status 2).\n"
            "\n"
            "With --control, a live snapshot instead: the back-end's control socket\n"
            "(docs/control-protocol.md) is handed FILE's fd; the back-end stops its\n"
            "rings at a request boundary, forks, restarts them (the pause is\n"
            "reported, in microseconds) and its child writes the same stream as a\n"
            "SAVE.  The VM keeps running and no vhost-user connection is needed.\n"
            "capture waits for the whole stream without a time limit (--timeout\n"
            "bounds the connection only).\n"
            "\n"
            "Options:\n"
            "  -s, --socket SOCKET the back-end's vhost-user socket\n"
            "  -c, --control PATH  the back-end's control socket (live snapshot)\n"
            "  -o, --output FILE   where to write the snapshot; '-' is stdout (the report\n"
            "                      then goes to stderr)\n"
            "\n"
            "Exit status: 0 saved and checked, 1 the back-end failed to save (CHECK\n"
            "refused, or the snapshot was refused or failed: busy, no state), 2 usage,\n"
            "connection or I/O error, or the back-end is busy (--socket).\n"
            "\n"
            "Examples:\n"
            "  vhu-state capture --socket /run/dev.sock -o snap.vhus\n"
            "  vhu-state capture --socket /run/dev.sock -o - | vhu-state inspect -\n"
            "  vhu-state capture --control /run/dev.ctl -o snap.vhus\n",
};
