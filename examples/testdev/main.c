/* vhu-testdev: the test device on a vhost-user socket. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vhu/vhu.h>

#include "testdev.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vhu-testdev --socket PATH [--client] [--queues N] [--verbose]\n"
            "\n"
            "Serve vhu's test device on a vhost-user socket.\n"
            "\n"
            "  -s, --socket PATH  unix socket to listen on (or connect to with --client)\n"
            "  -c, --client       connect to PATH and reconnect when the front-end goes away\n"
            "  -q, --queues N     number of virtqueues, 1..64 (default 2)\n"
            "  -v, --verbose      log every request\n"
            "  -h, --help         this text\n"
            "\n"
            "Stops cleanly on SIGINT or SIGTERM.  Attach a front-end, e.g.:\n"
            "  vhu-probe --socket PATH\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'}, {"client", no_argument, NULL, 'c'},
        {"queues", required_argument, NULL, 'q'}, {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    const char *path = NULL;
    bool client = false;
    unsigned queues = 2;
    int c;
    while ((c = getopt_long(argc, argv, "s:cq:vh", opts, NULL)) != -1) {
        switch (c) {
        case 's': path = optarg; break;
        case 'c': client = true; break;
        case 'q': {
            char *end;
            unsigned long v = strtoul(optarg, &end, 10);
            if (*end || v < 1 || v > 64) {
                fprintf(stderr, "vhu-testdev: --queues must be 1..64\n");
                return 2;
            }
            queues = (unsigned)v;
            break;
        }
        case 'v': vhu_set_log_level(VHU_LOG_DEBUG); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!path || optind != argc) {
        usage(stderr);
        return 2;
    }
    struct testdev *dev = testdev_new(queues);
    struct vhu_backend *b = NULL;
    struct vhu_server *s = NULL;
    int r = dev ? vhu_backend_new(&b, testdev_ops(dev), dev) : -1;
    if (r == 0) {
        struct vhu_server_config cfg = {.socket_path = path, .client = client,
                                        .handle_signals = true};
        r = vhu_server_new(&s, b, &cfg);
    }
    if (r < 0) {
        fprintf(stderr, "vhu-testdev: cannot start: %s\n", vhu_strerror(r));
        vhu_backend_free(b);
        testdev_free(dev);
        return 1;
    }
    printf("vhu-testdev: %s %s with %u queues (vhu %s)\n", client ? "connecting to" : "listening on",
           path, queues, vhu_version());
    if (!client)
        printf("attach a front-end, e.g.: vhu-probe --socket %s\n", path);
    fflush(stdout);
    vhu_server_run(s);
    printf("vhu-testdev: served %lu front-end session(s); bye\n", vhu_server_sessions(s));
    vhu_server_free(s);
    vhu_backend_free(b);
    testdev_free(dev);
    return 0;
}
