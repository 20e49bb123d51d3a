/* SPDX-License-Identifier: BSD-3-Clause */
/* libFuzzer target: the back-end's request handling fed message sequences
 * over a real socket, with real fds (memfds for memory, eventfds for
 * rings) attached as the input asks.  Any crash, leak or sanitizer report
 * is a finding; so is an fd left open after the session ends.
 *
 * Input: records of [u8 flags][u8 nfds][u16 LE len][len bytes].  The bytes
 * go out raw (header included, as written by the input); nfds (0..10) fds
 * ride along: flags bit k set = fd k is a 64 KiB memfd, clear = an eventfd. */
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vhu/vhu.h>

#include "testdev.h"

#include "fuzz_common.h"
#include "wire/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static struct testdev *dev;
static struct vhu_backend *b;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_testdev_backend(&dev, &b);
    vhu_backend_set_timeout(b, 0); /* a partial message is all there is */
    return 0;
}

static int count_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 1024; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            n++;
    return n;
}

static void drain(int fd)
{
    char buf[4096];
    while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0) {
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Counted per input: between inputs libFuzzer itself may open fds (its
     * symbolizer's pipes). */
    int baseline = count_fds();
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return 0;
    vhu_backend_attach(b, sv[0]);
    bool alive = true;
    size_t pos = 0;
    while (alive && pos + 4 <= size) {
        uint8_t flags = data[pos], nfds = data[pos + 1] % 11;
        uint16_t len = (uint16_t)(data[pos + 2] | data[pos + 3] << 8);
        pos += 4;
        if (len > size - pos)
            len = (uint16_t)(size - pos);
        int fds[10];
        for (unsigned i = 0; i < nfds; i++) {
            if (flags & (1u << (i % 8))) {
                fds[i] = memfd_create("fuzz", MFD_CLOEXEC);
                if (fds[i] >= 0 && ftruncate(fds[i], 65536) < 0) {
                    close(fds[i]);
                    fds[i] = -1;
                }
            } else {
                fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
            }
        }
        union {
            char buf[CMSG_SPACE(sizeof(int) * 10)];
            struct cmsghdr align;
        } ctl;
        struct iovec iov = {.iov_base = (void *)(data + pos), .iov_len = len};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        if (nfds && len)
            vhu_wire_put_fds(&mh, ctl.buf, fds, nfds);
        if (len && sendmsg(sv[1], &mh, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
            alive = false;
        for (unsigned i = 0; i < nfds; i++)
            if (fds[i] >= 0)
                close(fds[i]);
        pos += len;
        /* Let the back-end handle everything that is complete. */
        struct pollfd p = {.fd = sv[0], .events = POLLIN};
        while (alive && poll(&p, 1, 0) > 0) {
            if (vhu_backend_process(b) < 0)
                alive = false;
            drain(sv[1]);
        }
    }
    vhu_backend_detach(b);
    close(sv[1]);
    if (count_fds() != baseline) {
        fprintf(stderr, "fd leak: %d open, %d before\n", count_fds(), baseline);
        abort();
    }
    return 0;
}
