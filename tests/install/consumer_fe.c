/* SPDX-License-Identifier: BSD-3-Clause */
/* A front-end program built against an installed vhu, the way a user would:
 * <vhu/frontend.h> from libvhu-fe, found through pkg-config (vhu-fe) or
 * find_package(vhu) (vhu::vhu-fe); libvhu comes with it. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vhu/frontend.h>

#define STR2(x) #x
#define STR(x) STR2(x)

int main(void)
{
    const char *v = vhu_version();
    printf("consumer-fe: vhu %s\n", v);
    /* The header and the library agree. */
    const char *hv = STR(VHU_VERSION_MAJOR) "." STR(VHU_VERSION_MINOR) "." STR(VHU_VERSION_PATCH);
    if (strcmp(v, hv) != 0) {
        fprintf(stderr, "consumer-fe: library %s, header %s\n", v, hv);
        return 1;
    }
    const char *e = vhu_strerror(-EINVAL);
    if (!e || !*e) {
        fprintf(stderr, "consumer-fe: vhu_strerror(-EINVAL) is empty\n");
        return 1;
    }

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        perror("consumer-fe: socketpair");
        return 1;
    }
    struct vhu_fe *fe = NULL;
    int r = vhu_fe_from_fd(&fe, sv[0]);
    if (r < 0 || !fe || vhu_fe_fd(fe) != sv[0]) {
        fprintf(stderr, "consumer-fe: vhu_fe_from_fd: %s\n", vhu_strerror(r));
        return 1;
    }
    /* One raw message through the library, read back by hand. */
    r = vhu_fe_send(fe, VHU_REQ_GET_FEATURES, VHU_FLAG_VERSION, NULL, 0, NULL, 0);
    struct vhu_msg_header h;
    if (r < 0 || read(sv[1], &h, sizeof(h)) != (ssize_t)sizeof(h) ||
        h.request != VHU_REQ_GET_FEATURES || h.flags != VHU_FLAG_VERSION || h.size != 0) {
        fprintf(stderr, "consumer-fe: vhu_fe_send: %s\n", vhu_strerror(r));
        return 1;
    }
    printf("consumer-fe: sent %s; vhu_strerror(-EINVAL) = \"%s\"\n", vhu_request_name(h.request),
           e);
    vhu_fe_close(fe);
    close(sv[1]);
    printf("consumer-fe: ok\n");
    return 0;
}
