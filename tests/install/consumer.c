/* SPDX-License-Identifier: BSD-3-Clause */
/* A back-end program built against an installed vhu, the way a device author
 * would: only <vhu/vhu.h> and libvhu, found through pkg-config (vhu) or
 * find_package(vhu) (vhu::vhu, vhu::vhu_static).  It must not need libvhu-fe. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vhu/vhu.h>

#define STR2(x) #x
#define STR(x) STR2(x)

static uint64_t features(void *dev)
{
    (void)dev;
    return VHU_BIT(VHU_F_VERSION_1);
}
static int start_vring(void *dev, struct vhu_vring *q)
{
    (void)dev;
    (void)q;
    return 0;
}
static void stop_vring(void *dev, struct vhu_vring *q)
{
    (void)dev;
    (void)q;
}

int main(void)
{
    const char *v = vhu_version();
    printf("consumer: vhu %s\n", v);
    /* The header and the library agree. */
    const char *hv = STR(VHU_VERSION_MAJOR) "." STR(VHU_VERSION_MINOR) "." STR(VHU_VERSION_PATCH);
    if (strcmp(v, hv) != 0) {
        fprintf(stderr, "consumer: library %s, header %s\n", v, hv);
        return 1;
    }
    const char *e = vhu_strerror(-EINVAL);
    if (!e || !*e) {
        fprintf(stderr, "consumer: vhu_strerror(-EINVAL) is empty\n");
        return 1;
    }

    /* A device on one end of a socketpair: the back-end takes the socket. */
    static const struct vhu_device_ops ops = {
        .size = sizeof(struct vhu_device_ops),
        .name = "consumer",
        .num_queues = 1,
        .features = features,
        .start_vring = start_vring,
        .stop_vring = stop_vring,
    };
    struct vhu_backend *b = NULL;
    int r = vhu_backend_new(&b, &ops, NULL);
    if (r < 0 || !b) {
        fprintf(stderr, "consumer: vhu_backend_new: %s\n", vhu_strerror(r));
        return 1;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        perror("consumer: socketpair");
        return 1;
    }
    r = vhu_backend_attach(b, sv[0]);
    if (r < 0 || vhu_backend_fd(b) != sv[0]) {
        fprintf(stderr, "consumer: vhu_backend_attach: %s\n", vhu_strerror(r));
        return 1;
    }
    /* One GET_FEATURES written by hand, answered by the library. */
    struct vhu_msg_header h = {.request = VHU_REQ_GET_FEATURES, .flags = VHU_FLAG_VERSION};
    uint64_t f = 0;
    if (write(sv[1], &h, sizeof(h)) != (ssize_t)sizeof(h) || (r = vhu_backend_process(b)) < 0 ||
        read(sv[1], &h, sizeof(h)) != (ssize_t)sizeof(h) || h.size != sizeof(f) ||
        read(sv[1], &f, sizeof(f)) != (ssize_t)sizeof(f) || !(f & VHU_BIT(VHU_F_VERSION_1))) {
        fprintf(stderr, "consumer: GET_FEATURES through the back-end failed: %s\n",
                vhu_strerror(r));
        return 1;
    }
    printf("consumer: %s answered 0x%llx; vhu_strerror(-EINVAL) = \"%s\"\n",
           vhu_request_name(h.request), (unsigned long long)f, e);
    vhu_backend_free(b);
    close(sv[1]);
    printf("consumer: ok\n");
    return 0;
}
