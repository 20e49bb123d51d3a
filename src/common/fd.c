/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu_close_fd, apart from the logger: libvhu-fe links its own hidden copy
 * of this file (and of the wire and control codecs) without taking a second
 * copy of the log handler's state. */
#include <errno.h>
#include <unistd.h>

#include "internal.h"

void vhu_close_fd(int *fd)
{
    if (*fd >= 0) {
        int saved = errno;
        close(*fd);
        errno = saved;
        *fd = -1;
    }
}
