/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu-state roundtrip: restore compatibility in one command.  Load FILE
 * into the back-end, save its state again on the same session, and diff
 * the two (header.producer and handler.protocol_features, which belong to
 * the build and the session, are not compared; a section the back-end
 * upgraded is compared on the fields the file has). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vhu/frontend.h>
#include <vhu/state.h>

#include "diff.h"
#include "options.h"

/* An unnamed temporary file: on disk under $TMPDIR, else in memory. */
static int temp_fd(void)
{
    const char *dir = getenv("TMPDIR");
    int fd = open(dir && *dir ? dir : "/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0)
        fd = memfd_create("vhu-state", MFD_CLOEXEC);
    return fd;
}

/* Copy a stream (stdin, a pipe) into a temporary file so it can be read
 * twice. */
static int spool(int in)
{
    int fd = temp_fd();
    if (fd < 0)
        return -errno;
    static char buf[64 << 10];
    for (;;) {
        ssize_t n = read(in, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = -errno;
            close(fd);
            return e;
        }
        if (n == 0)
            break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(fd, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                int e = w < 0 ? -errno : -EIO;
                close(fd);
                return e;
            }
            off += w;
        }
    }
    return fd;
}

static int roundtrip_main(const struct cli_cmd *cmd, int argc, char **argv)
{
    static const struct option lo[] = {CLI_COMMON_OPTIONS,
                                       {"socket", required_argument, NULL, 's'},
                                       {"ignore", required_argument, NULL, 'i'},
                                       {"keep", required_argument, NULL, 'k'},
                                       {NULL, 0, NULL, 0}};
    const char *sock = NULL, *keep = NULL;
    struct diff_opts o = {.upgrade_ok = true};
    o.ignore[o.nignore++] = "header.producer";
    o.ignore[o.nignore++] = "handler.protocol_features";
    int c, r;
    while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "s:i:k:", lo, NULL)) != -1) {
        switch (c) {
        case 's': sock = optarg; break;
        case 'k': keep = optarg; break;
        case 'i':
            if (o.nignore == DIFF_MAX_IGNORE)
                return cli_usage_error(cmd, "at most %d --ignore options", DIFF_MAX_IGNORE - 2);
            o.ignore[o.nignore++] = optarg;
            break;
        default:
            if ((r = cli_common_option(cmd, c, optarg)) >= 0)
                return r;
        }
    }
    int in;
    if (cli_socket_and_file(cmd, sock, argc, argv, &in) != CLI_OK)
        return CLI_ERR;
    const char *path = argv[optind];
    const char *name = strcmp(path, "-") ? path : "(stdin)";
    struct stat st;
    /* FILE is read twice (load, then diff): a stream is spooled first. */
    if (fstat(in, &st) < 0 || !S_ISREG(st.st_mode)) {
        int s = spool(in);
        if (in > 0)
            close(in);
        if (s < 0) {
            cli_err("%s: %s", name, strerror(-s));
            return CLI_ERR;
        }
        in = s;
    }
    int saved = keep ? open(keep, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : temp_fd();
    if (saved < 0) {
        cli_err("%s: %s", keep ? keep : "a temporary file", strerror(errno));
        if (in > 0)
            close(in);
        return CLI_ERR;
    }
    struct vhu_fe *fe = NULL;
    unsigned nrings;
    int code = cli_fe_open(sock, &fe);
    if (code == 0 && lseek(in, 0, SEEK_SET) != 0) {
        cli_err("%s: %s", name, strerror(errno));
        code = CLI_ERR;
    }
    if (code == 0)
        code = cli_load_fd(fe, sock, name, in);
    /* A loaded ring is not started (no kick fd came with the load); stop
     * them anyway, as capture does, so SAVE finds them stopped. */
    if (code == 0)
        code = cli_fe_stop_rings(fe, sock, &nrings);
    if (code == 0 && (r = vhu_fe_save_state(fe, saved)) < 0) {
        cli_err("%s: saving the state again after the load failed: %s", sock, vhu_strerror(r));
        code = CLI_BAD;
    }
    vhu_fe_close(fe);
    if (code != 0) {
        if (cli.json) {
            j_obj(NULL);
            j_str("socket", sock);
            j_str("file", name);
            j_bool("loaded", false);
            j_bool("same", false);
            j_end();
        }
        close(saved);
        if (in > 0)
            close(in);
        return cli_finish_output(code);
    }
    lseek(in, 0, SEEK_SET);
    lseek(saved, 0, SEEK_SET);
    code = cli_diff(name, in, keep ? keep : "(saved again)", saved, &o);
    if (!cli.json && code == CLI_OK)
        printf("roundtrip: %s restores into %s and saves back the same state\n", name, sock);
    else if (!cli.json && code == CLI_BAD)
        printf("roundtrip: %s loads into %s but saves back a different state\n", name, sock);
    return cli_finish_output(code);
}

const struct cli_cmd cli_roundtrip_cmd = {
    .name = "roundtrip",
    .run = roundtrip_main,
    .summary = "load a snapshot, save it again, diff: restore compatibility",
    .usage = "roundtrip --socket SOCKET [--ignore FIELD]... [--keep FILE] [--json] FILE",
    .help = "Loads FILE into the back-end (as `load`), then on the same session stops\n"
            "the rings and saves the state again (as `capture`), and compares the two\n"
            "snapshots (as `diff --upgrade`).  header.producer and\n"
            "handler.protocol_features are not compared (they belong to the build and\n"
            "to the session).  A section the back-end writes at a newer version is\n"
            "compared on the fields FILE has; fields it adds are notes.  This is the\n"
            "restore-compatibility test for a saved snapshot: run it in CI against every\n"
            "snapshot your earlier releases wrote (see formats/corpus/README.md).\n"
            "\n"
            "Options:\n"
            "  -s, --socket SOCKET the back-end's vhost-user socket\n"
            "  -i, --ignore FIELD  also ignore this path (as diff --ignore; repeatable)\n"
            "  -k, --keep FILE     keep the snapshot saved after the load in FILE\n"
            "\n"
            "Exit status: 0 restored and saved back the same state, 1 the back-end\n"
            "refused FILE or saved back a different state, 2 usage, connection or I/O\n"
            "error, the back-end is busy with another front-end, or FILE is not a\n"
            "readable snapshot.\n"
            "\n"
            "Examples:\n"
            "  vhu-state roundtrip --socket /run/dev.sock old.vhus\n"
            "  for f in formats/corpus/testdev-*.vhus; do\n"
            "      vhu-state roundtrip --socket /run/testdev.sock \"$f\" || exit 1; done\n",
};
