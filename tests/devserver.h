/* SPDX-License-Identifier: BSD-3-Clause */
/* Any device served by vhu on a fresh unix socket, in a thread of the test
 * process (the harness does the same for the test device only). */
#ifndef VHU_TEST_DEVSERVER_H
#define VHU_TEST_DEVSERVER_H

#include <pthread.h>

#include <vhu/frontend.h>
#include <vhu/vhu.h>

struct devserver {
    struct vhu_backend *b;
    struct vhu_server *s;
    pthread_t thread;
    char dir[64];
    char path[128];
    char control[128]; /* the control socket, when started with one */
};

/* Serve dev with ops on DIR/sock; 0 or a negative error. */
int devserver_start(struct devserver *ds, const struct vhu_device_ops *ops, void *dev);
/* The same, with a control socket at ds->control (DIR/control). */
int devserver_start_control(struct devserver *ds, const struct vhu_device_ops *ops, void *dev);
/* Stop the server (rings stop, the device is reset) and remove the socket. */
void devserver_stop(struct devserver *ds);
/* Connect and negotiate as QEMU does, asking for `features` and every
 * protocol feature (cmocka-asserts success). */
struct vhu_fe *devserver_connect(struct devserver *ds, uint64_t features);

#endif
