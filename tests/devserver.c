/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "devserver.h"

static void *serve(void *arg)
{
    struct devserver *ds = arg;
    vhu_server_run(ds->s);
    return NULL;
}

static int start(struct devserver *ds, const struct vhu_device_ops *ops, void *dev, bool control)
{
    memset(ds, 0, sizeof(*ds));
    strcpy(ds->dir, "/tmp/vhu-test-XXXXXX");
    if (!mkdtemp(ds->dir))
        return -errno;
    snprintf(ds->path, sizeof(ds->path), "%s/sock", ds->dir);
    int r = vhu_backend_new(&ds->b, ops, dev);
    if (r < 0)
        return r;
    struct vhu_server_config cfg = {.size = sizeof(cfg), .socket_path = ds->path};
    if (control) {
        snprintf(ds->control, sizeof(ds->control), "%s/control", ds->dir);
        cfg.control_path = ds->control;
    }
    r = vhu_server_new(&ds->s, ds->b, &cfg);
    if (r < 0)
        return r;
    return -pthread_create(&ds->thread, NULL, serve, ds);
}

int devserver_start(struct devserver *ds, const struct vhu_device_ops *ops, void *dev)
{
    return start(ds, ops, dev, false);
}

int devserver_start_control(struct devserver *ds, const struct vhu_device_ops *ops, void *dev)
{
    return start(ds, ops, dev, true);
}

void devserver_stop(struct devserver *ds)
{
    if (ds->s) {
        vhu_server_stop(ds->s);
        pthread_join(ds->thread, NULL);
        vhu_server_free(ds->s);
    }
    vhu_backend_free(ds->b);
    rmdir(ds->dir);
    memset(ds, 0, sizeof(*ds));
}

struct vhu_fe *devserver_connect(struct devserver *ds, uint64_t features)
{
    struct vhu_fe *fe = NULL;
    assert_int_equal(vhu_fe_connect(&fe, ds->path, 2000), 0);
    assert_int_equal(vhu_fe_negotiate(fe, features, ~0ull, NULL, NULL), 0);
    return fe;
}
