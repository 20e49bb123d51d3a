/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu-blk: a virtio-blk device on a vhost-user socket. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_blk.h>

#include <vhu/vhu.h>

#include "blk.h"
#include "parse_size.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vhu-blk --socket PATH --image FILE [--queues N] [--read-only] [--direct]\n"
            "               [--serial S] [--control PATH]\n"
            "       vhu-blk --socket PATH --ram SIZE [--image FILE] [--queues N] [--read-only]\n"
            "               [--serial S]\n"
            "\n"
            "Serve a virtio-blk disk on a vhost-user socket (QEMU: -device\n"
            "vhost-user-blk-pci,chardev=CHR with -chardev socket,id=CHR,path=PATH and\n"
            "guest memory shared: -object memory-backend-memfd,...,share=on).\n"
            "\n"
            "  -s, --socket PATH  unix socket to listen on (or connect to with --client)\n"
            "  -i, --image FILE   the disk: an image file or a block device, read and\n"
            "                     written in place; its size, rounded down to 512-byte\n"
            "                     sectors, is the disk's\n"
            "  -r, --ram SIZE     keep the disk in this process's memory instead: SIZE\n"
            "                     bytes (suffixes K, M, G, T: powers of 1024), zero-filled\n"
            "                     or, with --image, initialised from FILE, which is then\n"
            "                     only read; the contents go when the process exits\n"
            "  -q, --queues N     number of request queues, 1..%u (default 1)\n"
            "  -d, --direct       also open the image with O_DIRECT (QEMU's cache.direct=on):\n"
            "                     reads and writes aligned as its filesystem wants bypass\n"
            "                     the host page cache; the others go through it; all go\n"
            "                     to the kernel through an io_uring per queue, up to 64\n"
            "                     at once\n"
            "  -R, --read-only    offer a read-only disk (VIRTIO_BLK_F_RO): writes,\n"
            "                     discards and write-zeroes fail with VIRTIO_BLK_S_IOERR\n"
            "      --serial S     the disk's serial, answered to VIRTIO_BLK_T_GET_ID (the\n"
            "                     guest's /sys/block/vdX/serial): 1..%u bytes of printable\n"
            "                     ASCII (default \"%s\")\n"
            "  -c, --client       connect to PATH and reconnect when the front-end goes away\n"
            "      --control PATH also listen on this unix socket (mode 0600, this user only)\n"
            "                     for the control protocol: vhu-state info --control PATH\n"
            "      --fork-snapshots  take live snapshots (vhu-state capture --control) by\n"
            "                     fork() and its copy-on-write, as for any vhu device,\n"
            "                     instead of vhu-blk's own copy-before-write of its RAM\n"
            "                     disk (which costs the guest less; this is for comparison)\n"
            "      --snapshot-reserve  keep the memory a live snapshot of the RAM disk copies\n"
            "                     into (as much again as the disk) from the start, in huge\n"
            "                     pages, instead of making it for each snapshot: the\n"
            "                     smallest stalls, for twice the memory\n"
            "      --packed       also offer packed rings (VIRTIO_F_RING_PACKED; QEMU:\n"
            "                     vhost-user-blk-pci,packed=on), with inflight tracking,\n"
            "                     device state and live snapshots as on split rings\n"
            "  -v, --verbose      log every request\n"
            "  -h, --help         this text\n"
            "\n"
            "Stops cleanly on SIGINT or SIGTERM.  On SIGHUP, takes the image's\n"
            "size again (after it was grown or shrunk) and tells the front-end the\n"
            "capacity changed (CONFIG_CHANGE_MSG on the back-end channel).\n"
            "\n"
            "Device state (vhost-user SET_DEVICE_STATE_FD, for migration): the disk's\n"
            "capacity, block size, read-only flag, writeback flag, queue count and\n"
            "serial, and with --ram its contents.  A load into a back-end whose disk\n"
            "differs in any of them (the wrong or a resized image, another --serial)\n"
            "is refused, naming the field, and changes nothing.  An image's data is\n"
            "not device state: source and destination share the image.\n",
            BLK_MAX_QUEUES, VIRTIO_BLK_ID_BYTES, BLK_ID);
}

/* SIGHUP: a thread waits for it (blocked in every other thread) so that
 * the resize and the message to the front-end run outside signal context. */
struct resizer {
    struct blk *dev;
    struct vhu_backend *b;
    atomic_bool stopping;
    pthread_t thread;
};

static void *resize_on_sighup(void *arg)
{
    struct resizer *z = arg;
    sigset_t hup;
    sigemptyset(&hup);
    sigaddset(&hup, SIGHUP);
    for (;;) {
        int sig;
        if (sigwait(&hup, &sig) != 0 || atomic_load(&z->stopping))
            return NULL;
        uint64_t size = 0;
        int r = blk_resize(z->dev, &size);
        if (r == 0) {
            printf("vhu-blk: SIGHUP: still %llu sectors\n",
                   (unsigned long long)(size / BLK_SECTOR));
        } else if (r < 0) {
            printf("vhu-blk: SIGHUP: cannot resize: %s\n",
                   r == -ENOTSUP ? "the disk is in memory" : strerror(-r));
        } else {
            r = vhu_backend_send_config_change(z->b);
            printf("vhu-blk: SIGHUP: now %llu sectors; %s\n",
                   (unsigned long long)(size / BLK_SECTOR),
                   r == 0           ? "front-end told"
                   : r == -ENOTCONN ? "no front-end with a back-end channel to tell"
                                    : vhu_strerror(r));
        }
        fflush(stdout);
    }
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"socket", required_argument, NULL, 's'},
                                         {"image", required_argument, NULL, 'i'},
                                         {"ram", required_argument, NULL, 'r'},
                                         {"queues", required_argument, NULL, 'q'},
                                         {"read-only", no_argument, NULL, 'R'},
                                         {"client", no_argument, NULL, 'c'},
                                         {"direct", no_argument, NULL, 'd'},
                                         {"serial", required_argument, NULL, 'S'},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"control", required_argument, NULL, 'K'},
                                         {"packed", no_argument, NULL, 'P'},
                                         {"fork-snapshots", no_argument, NULL, 'F'},
                                         {"snapshot-reserve", no_argument, NULL, 'M'},
                                         {NULL, 0, NULL, 0}};
    const char *path = NULL, *control = NULL;
    bool client = false;
    struct blk_options o = {.queues = 1};
    int c;
    while ((c = getopt_long(argc, argv, "s:i:r:q:Rdcvh", opts, NULL)) != -1) {
        switch (c) {
        case 's': path = optarg; break;
        case 'i': o.image = optarg; break;
        case 'r':
            if (!vhu_parse_size(optarg, &o.ram_size) || o.ram_size < BLK_SECTOR) {
                fprintf(stderr, "vhu-blk: --ram needs a size of at least 512 bytes, not '%s'\n",
                        optarg);
                return 2;
            }
            break;
        case 'q': {
            char *end;
            unsigned long v = strtoul(optarg, &end, 10);
            if (*end || *optarg == '-' || v < 1 || v > BLK_MAX_QUEUES) {
                fprintf(stderr, "vhu-blk: --queues must be 1..%u\n", BLK_MAX_QUEUES);
                return 2;
            }
            o.queues = (unsigned)v;
            break;
        }
        case 'R': o.read_only = true; break;
        case 'd': o.direct = true; break;
        case 'S':
            /* Checked here too so that a bad one is a usage error (2). */
            if (!*optarg || strlen(optarg) > VIRTIO_BLK_ID_BYTES) {
                fprintf(stderr,
                        "vhu-blk: --serial '%s' has %zu bytes; a virtio-blk serial "
                        "has 1..%u\n",
                        optarg, strlen(optarg), VIRTIO_BLK_ID_BYTES);
                return 2;
            }
            o.serial = optarg;
            break;
        case 'c': client = true; break;
        case 'K': control = optarg; break;
        case 'P': o.packed = true; break;
        case 'F': o.fork_snapshots = true; break;
        case 'M': o.snapshot_reserve = true; break;
        case 'v': vhu_set_log_level(VHU_LOG_DEBUG); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!path || (!o.image && !o.ram_size) || optind != argc) {
        usage(stderr);
        return 2;
    }
    /* SIGHUP blocked before any thread starts (they inherit the mask): only
     * resize_on_sighup() takes it. */
    sigset_t hup;
    sigemptyset(&hup);
    sigaddset(&hup, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &hup, NULL);
    struct blk *dev = NULL;
    struct vhu_backend *b = NULL;
    struct vhu_server *s = NULL;
    int r = blk_new(&dev, &o);
    if (r < 0)
        return 1;
    r = vhu_backend_new(&b, blk_ops(dev), dev);
    if (r == 0) {
        struct vhu_server_config cfg = {.size = sizeof(cfg),
                                        .socket_path = path,
                                        .client = client,
                                        .handle_signals = true,
                                        .control_path = control};
        r = vhu_server_new(&s, b, &cfg);
    }
    struct resizer z = {.dev = dev, .b = b};
    bool resizer = false;
    if (r == 0) {
        r = -pthread_create(&z.thread, NULL, resize_on_sighup, &z);
        resizer = r == 0;
    }
    if (r < 0) {
        vhu_server_free(s);
        fprintf(stderr, "vhu-blk: cannot start: %s\n", vhu_strerror(r));
        vhu_backend_free(b);
        blk_free(dev);
        return 1;
    }
    printf("vhu-blk: %s %s: %llu sectors (%s%s%s), %u queue(s), serial %s (vhu %s)\n",
           client ? "connecting to" : "listening on", path,
           (unsigned long long)(blk_size(dev) / BLK_SECTOR), o.ram_size ? "in memory" : o.image,
           o.read_only ? ", read-only" : "", o.direct ? ", O_DIRECT" : "", o.queues,
           o.serial ? o.serial : BLK_ID, vhu_version());
    fflush(stdout);
    vhu_server_run(s);
    if (resizer) {
        atomic_store(&z.stopping, true);
        pthread_kill(z.thread, SIGHUP);
        pthread_join(z.thread, NULL);
    }
    printf("vhu-blk: served %lu front-end session(s); bye\n", vhu_server_sessions(s));
    vhu_server_free(s);
    vhu_backend_free(b);
    blk_free(dev);
    return 0;
}
