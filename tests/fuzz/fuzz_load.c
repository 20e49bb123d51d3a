/* SPDX-License-Identifier: BSD-3-Clause */
/* libFuzzer target: the LOAD path of device-state transfer into the test
 * device, end to end through the request handler (SET_DEVICE_STATE_FD with
 * the input as a regular file, then CHECK_DEVICE_STATE).  Whatever the
 * input, the device must be unchanged unless CHECK succeeded. */
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    static const uint8_t blob[] = "the device's own state before any load";
    testdev_set_blob(dev, blob, sizeof(blob));
    testdev_set_label(dev, "before");
    return 0;
}

/* Send one message and let the back-end handle it; the reply's u64. */
static uint64_t request(int fe, uint32_t code, const void *p, uint32_t len, int fd)
{
    struct vhu_msg_header h = {code, VHU_FLAG_VERSION, len};
    uint8_t msg[64];
    memcpy(msg, &h, sizeof(h));
    if (len)
        memcpy(msg + sizeof(h), p, len);
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {.iov_base = msg, .iov_len = sizeof(h) + len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (fd >= 0)
        vhu_wire_put_fds(&mh, ctl.buf, &fd, 1);
    if (sendmsg(fe, &mh, MSG_NOSIGNAL) < 0 || vhu_backend_process(b) < 0)
        abort();
    uint64_t st = ~0ull;
    struct pollfd pf = {.fd = fe, .events = POLLIN};
    if (poll(&pf, 1, 0) > 0) {
        uint8_t rep[12 + 8];
        if (recv(fe, rep, sizeof(rep), 0) == (ssize_t)sizeof(rep))
            memcpy(&st, rep + 12, 8);
    }
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return 0;
    vhu_backend_attach(b, sv[0]);
    uint64_t pf = VHU_BIT(VHU_PF_DEVICE_STATE);
    request(sv[1], VHU_REQ_SET_PROTOCOL_FEATURES, &pf, 8, -1);
    request(sv[1], VHU_REQ_SET_OWNER, NULL, 0, -1);
    int fd = memfd_create("load", MFD_CLOEXEC);
    if (size && write(fd, data, size) != (ssize_t)size)
        abort();
    lseek(fd, 0, SEEK_SET);
    const uint8_t *before;
    size_t before_len;
    testdev_blob(dev, &before, &before_len);
    uint8_t *copy = malloc(before_len + 1);
    memcpy(copy, before, before_len);
    unsigned long commits = testdev_commits(dev);
    struct vhu_device_state_params p = {VHU_TRANSFER_LOAD, VHU_PHASE_STOPPED};
    uint64_t st = request(sv[1], VHU_REQ_SET_DEVICE_STATE_FD, &p, 8, fd);
    close(fd);
    if ((st & 0xff) == 0) {
        st = request(sv[1], VHU_REQ_CHECK_DEVICE_STATE, NULL, 0, -1);
        const uint8_t *after;
        size_t after_len;
        testdev_blob(dev, &after, &after_len);
        if (st != 0 && (testdev_commits(dev) != commits || after_len != before_len ||
                        memcmp(after, copy, before_len) != 0)) {
            fprintf(stderr, "failed load changed the device\n");
            abort();
        }
    }
    free(copy);
    vhu_backend_detach(b);
    close(sv[1]);
    return 0;
}
