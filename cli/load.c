/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu-state load: push a snapshot into a back-end (SET_DEVICE_STATE_FD
 * LOAD, the stream, CHECK_DEVICE_STATE) and report CHECK's verdict. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vhu/frontend.h>
#include <vhu/state.h>

#include "options.h"
#include "validate.h"

/* Load fd into the back-end on fe.  Returns CLI_OK, CLI_BAD (refused) or
 * CLI_ERR; on refusal, explains from the file when it can be re-read. */
int cli_load_fd(struct vhu_fe *fe, const char *sock, const char *name, int fd)
{
    int r = vhu_fe_load_state(fe, fd);
    if (r == 0)
        return CLI_OK;
    bool io = r == -ECONNRESET || r == -ETIMEDOUT || r == -EPIPE;
    cli_err("%s: the back-end %s %s: %s", sock, io ? "could not take" : "refused", name,
            vhu_strerror(r));
    if (io)
        return CLI_ERR;
    /* CHECK carries only an error code; the back-end's log has its reason.
     * What the file itself gets wrong, we can say. */
    struct stat st;
    if (!cli.json && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        int again = dup(fd);
        if (again >= 0 && lseek(again, 0, SEEK_SET) == 0) {
            struct val_opts vo = {0};
            fprintf(stderr, "vhu-state: the file itself, checked:\n");
            cli_validate_one(name, again, stderr, &vo);
        } else if (again >= 0) {
            close(again);
        }
    }
    return CLI_BAD;
}

static int load_main(const struct cli_cmd *cmd, int argc, char **argv)
{
    static const struct option lo[] = {
        CLI_COMMON_OPTIONS, {"socket", required_argument, NULL, 's'}, {NULL, 0, NULL, 0}};
    const char *sock = NULL;
    int c, r;
    while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "s:", lo, NULL)) != -1) {
        switch (c) {
        case 's': sock = optarg; break;
        default:
            if ((r = cli_common_option(cmd, c, optarg)) >= 0)
                return r;
        }
    }
    int fd;
    if (cli_socket_and_file(cmd, sock, argc, argv, &fd) != CLI_OK)
        return CLI_ERR;
    const char *path = argv[optind];
    struct vhu_fe *fe = NULL;
    int code = cli_fe_open(sock, &fe);
    if (code == 0)
        code = cli_load_fd(fe, sock, strcmp(path, "-") ? path : "(stdin)", fd);
    vhu_fe_close(fe);
    if (fd > 0)
        close(fd);
    if (cli.json) {
        j_obj(NULL);
        j_str("socket", sock);
        j_str("file", path);
        j_bool("loaded", code == CLI_OK);
        j_str("check", code == CLI_OK ? "ok" : code == CLI_BAD ? "refused" : "error");
        j_end();
    } else if (code == CLI_OK) {
        printf("loaded %s into %s; CHECK_DEVICE_STATE: ok\n", path, sock);
    }
    return cli_finish_output(code);
}

const struct cli_cmd cli_load_cmd = {
    .name = "load",
    .run = load_main,
    .summary = "push a snapshot into a back-end and report CHECK's verdict",
    .usage = "load --socket SOCKET [--json] [--timeout SECS] FILE",
    .help =
        "Acts as the front-end (as QEMU does on the migration target): connects,\n"
        "negotiates (DEVICE_STATE must be offered), sends SET_DEVICE_STATE_FD (LOAD,\n"
        "phase STOPPED), streams FILE to the back-end and sends CHECK_DEVICE_STATE.\n"
        "A vhu back-end changes nothing unless CHECK succeeds.  On a refusal, CHECK\n"
        "only carries an error code (the back-end's log names the reason); when FILE\n"
        "is a regular file, vhu-state validates it and prints what it finds.\n"
        "\n"
        "Options:\n"
        "  -s, --socket SOCKET the back-end's vhost-user socket\n"
        "\n"
        "Exit status: 0 loaded (CHECK ok), 1 the back-end refused the snapshot, 2\n"
        "usage, connection or I/O error, or the back-end is busy with another\n"
        "front-end.\n"
        "\n"
        "Examples:\n"
        "  vhu-state load --socket /run/dev.sock snap.vhus\n"
        "  vhu-state capture --socket /run/a.sock -o - | vhu-state load --socket /run/b.sock -\n",
};
