/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu_strerror and vhu_version. */
#include <errno.h>

#include "internal.h"

#define VHU_STR2(x) #x
#define VHU_STR(x) VHU_STR2(x)

const char *vhu_version(void)
{
    return VHU_STR(VHU_VERSION_MAJOR) "." VHU_STR(VHU_VERSION_MINOR) "." VHU_STR(VHU_VERSION_PATCH);
}

const char *vhu_strerror(int err)
{
    /* Own table, not strerror(): static strings, thread-safe, and worded for
     * what the codes mean in this library. */
    switch (err < 0 ? -err : err) {
    case 0: return "success";
    case EPERM: return "operation not permitted in this state";
    case ENOENT: return "no such object";
    case EINTR: return "interrupted";
    case EIO: return "input/output error";
    case EBADF: return "bad file descriptor";
    case EAGAIN: return "try again";
    case ENOMEM: return "out of memory";
    case EACCES: return "permission denied";
    case EFAULT: return "address outside guest memory";
    case EBUSY: return "busy";
    case EEXIST: return "already exists";
    case EINVAL: return "invalid argument";
    case ENOSPC: return "no space left";
    case ERANGE: return "value out of range";
    case EPIPE: return "broken pipe";
    case ENOTSUP: return "not supported";
    case EPROTO: return "protocol error";
    case EBADMSG: return "malformed message";
    case EMSGSIZE: return "message too long";
    case EOVERFLOW: return "value too large";
    case ECONNRESET: return "connection closed by peer";
    case ENOTCONN: return "not connected";
    case ETIMEDOUT: return "timed out";
    case EADDRINUSE: return "address in use";
    case ECONNREFUSED: return "connection refused";
    case EREMOTEIO: return "the peer reported an error";
    case EALREADY: return "already done";
    case ENOSYS: return "not implemented";
    default: return "unknown error";
    }
}
