/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu-testdev: the test device on a vhost-user socket. */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vhu/vhu.h>

#include "testdev.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: vhu-testdev --socket PATH [--client] [--queues N] [--verbose]\n"
               "                   [--blob-size N] [--label TEXT] [--config-version 1|2]\n"
               "                   [--no-stats] [--control PATH]\n"
               "\n"
               "Serve vhu's test device on a vhost-user socket.\n"
               "\n"
               "  -s, --socket PATH  unix socket to listen on (or connect to with --client)\n"
               "  -c, --client       connect to PATH and reconnect when the front-end goes away\n"
               "  -q, --queues N     number of virtqueues, 1..64 (default 2)\n"
               "      --control PATH also listen on this unix socket (mode 0600, this user only)\n"
               "                     for the control protocol: vhu-state info --control PATH\n"
               "  -v, --verbose      log every request\n"
               "\n"
               "Device state (what SET_DEVICE_STATE_FD saves), for snapshot tests:\n"
               "      --blob-size N  start with an N-byte blob of a fixed pattern (default 0)\n"
               "      --label TEXT   start with this label (default empty; at most 63 bytes)\n"
               "      --config-version V  write section \"config\" at version 1 (no label)\n"
               "                     or 2 (default), as an older or the current build\n"
               "      --no-stats     do not declare the optional \"stats\" section\n"
               "  -h, --help         this text\n"
               "\n"
               "Stops cleanly on SIGINT or SIGTERM.  Attach a front-end, e.g.:\n"
               "  vhu-probe --socket PATH\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"socket", required_argument, NULL, 's'},
                                         {"client", no_argument, NULL, 'c'},
                                         {"queues", required_argument, NULL, 'q'},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"blob-size", required_argument, NULL, 'B'},
                                         {"label", required_argument, NULL, 'L'},
                                         {"config-version", required_argument, NULL, 'C'},
                                         {"no-stats", no_argument, NULL, 'N'},
                                         {"control", required_argument, NULL, 'K'},
                                         {NULL, 0, NULL, 0}};
    const char *path = NULL, *control = NULL;
    bool client = false;
    unsigned queues = 2;
    unsigned long blob_size = 0;
    const char *label = NULL;
    struct testdev_state_opts st = {.config_version = 2, .stats = true};
    int c;
    while ((c = getopt_long(argc, argv, "s:cq:vh", opts, NULL)) != -1) {
        switch (c) {
        case 's': path = optarg; break;
        case 'c': client = true; break;
        case 'K': control = optarg; break;
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
        case 'B': {
            char *end;
            blob_size = strtoul(optarg, &end, 10);
            if (*end || end == optarg || blob_size > (256ul << 20)) {
                fprintf(stderr, "vhu-testdev: --blob-size must be 0..268435456\n");
                return 2;
            }
            break;
        }
        case 'L':
            if (strlen(optarg) > 63) {
                fprintf(stderr, "vhu-testdev: --label is at most 63 bytes\n");
                return 2;
            }
            label = optarg;
            break;
        case 'C':
            if (strcmp(optarg, "1") != 0 && strcmp(optarg, "2") != 0) {
                fprintf(stderr, "vhu-testdev: --config-version must be 1 or 2\n");
                return 2;
            }
            st.config_version = (unsigned)(optarg[0] - '0');
            break;
        case 'N': st.stats = false; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!path || optind != argc) {
        usage(stderr);
        return 2;
    }
    struct testdev *dev = testdev_new(queues);
    if (dev) {
        testdev_set_state_opts(dev, &st);
        if (label)
            testdev_set_label(dev, label);
        if (blob_size) {
            /* A fixed pattern, half text-like, half noise: the same bytes on
             * every run, so snapshots of it can be compared. */
            uint8_t *p = malloc(blob_size);
            uint32_t x = 0x9e3779b9u;
            for (unsigned long i = 0; p && i < blob_size; i++) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                p[i] = (i / 4096) % 2 ? (uint8_t)x : (uint8_t)('a' + (i * 7 + (x & 3)) % 26);
            }
            if (!p || testdev_set_blob(dev, p, blob_size) < 0) {
                fprintf(stderr, "vhu-testdev: out of memory for the blob\n");
                free(p);
                testdev_free(dev);
                return 1;
            }
            free(p);
        }
    }
    struct vhu_backend *b = NULL;
    struct vhu_server *s = NULL;
    int r = dev ? vhu_backend_new(&b, testdev_ops(dev), dev) : -1;
    if (r == 0) {
        struct vhu_server_config cfg = {.size = sizeof(cfg),
                                        .socket_path = path,
                                        .client = client,
                                        .handle_signals = true,
                                        .control_path = control};
        r = vhu_server_new(&s, b, &cfg);
    }
    if (r < 0) {
        fprintf(stderr, "vhu-testdev: cannot start: %s\n", vhu_strerror(r));
        vhu_backend_free(b);
        testdev_free(dev);
        return 1;
    }
    printf("vhu-testdev: %s %s with %u queues (vhu %s)\n",
           client ? "connecting to" : "listening on", path, queues, vhu_version());
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
