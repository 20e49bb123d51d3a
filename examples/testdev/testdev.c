/* The test device (see testdev.h). */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "testdev.h"

#define VIRTQ_DESC_F_WRITE 2

struct desc { uint64_t addr; uint32_t len; uint16_t flags, next; };
struct used_elem { uint32_t id, len; };

struct ring_worker {
    struct testdev *d;
    struct vhu_queue *q;
    pthread_t thread;
    int stop_fd;
    bool running;
    bool broken;
    atomic_ulong completed;
};

struct testdev {
    struct vhu_device_ops ops;
    unsigned num_queues;
    struct testdev_config config;
    pthread_mutex_t lock;
    struct ring_worker *rings;
    atomic_ulong resets, starts;
    atomic_int running;
};

static uint64_t td_features(void *dev)
{
    (void)dev;
    return VHU_BIT(VHU_F_VERSION_1) | VHU_BIT(0);
}

static int td_get_config(void *dev, uint32_t off, void *buf, uint32_t len)
{
    struct testdev *d = dev;
    pthread_mutex_lock(&d->lock);
    memcpy(buf, (uint8_t *)&d->config + off, len);
    pthread_mutex_unlock(&d->lock);
    return 0;
}

static int td_set_config(void *dev, uint32_t off, const void *buf, uint32_t len, uint32_t flags)
{
    struct testdev *d = dev;
    uint32_t lo = offsetof(struct testdev_config, scratch);
    /* The driver may write only `scratch`; a migration restore anything. */
    if (flags != VHU_CONFIG_FLAG_MIGRATION && off < lo)
        return -EPERM;
    pthread_mutex_lock(&d->lock);
    memcpy((uint8_t *)&d->config + off, buf, len);
    pthread_mutex_unlock(&d->lock);
    return 0;
}

/* Stop taking requests from a ring the driver corrupted: log once, tell the
 * front-end through the err eventfd, leave guest memory alone. */
static void ring_broken(struct ring_worker *w, const char *what, unsigned long v)
{
    if (w->broken)
        return;
    w->broken = true;
    vhu_log(VHU_LOG_ERROR, "testdev: ring %u broken: %s (0x%lx)", vhu_queue_index(w->q), what, v);
    vhu_queue_signal_error(w->q);
}

/* Take every published chain and complete it. */
static void process(struct ring_worker *w)
{
    struct vhu_queue *q = w->q;
    unsigned size = vhu_queue_size(q);
    struct desc *desc = vhu_queue_desc(q);
    uint16_t *avail = vhu_queue_avail(q);
    uint16_t *used_hdr = vhu_queue_used(q);
    struct used_elem *used = (struct used_elem *)(used_hdr + 2);
    /* A disabled ring keeps its requests until SET_VRING_ENABLE 1 (the
     * library kicks the ring then). */
    if (!vhu_queue_enabled(q))
        return;
    uint16_t last = vhu_queue_last_avail(q);
    uint16_t avail_idx = __atomic_load_n(&avail[1], __ATOMIC_ACQUIRE);
    uint16_t used_idx = __atomic_load_n(&used_hdr[1], __ATOMIC_RELAXED);
    bool any = false;
    /* A driver can publish at most `size` entries ahead of the device. */
    if ((uint16_t)(avail_idx - last) > size) {
        ring_broken(w, "avail index jumped", avail_idx);
        return;
    }
    while (last != avail_idx && !w->broken) {
        uint16_t head = avail[2 + (last & (size - 1))];
        if (head >= size) {
            ring_broken(w, "head out of range", head);
            break;
        }
        struct desc dd = desc[head];
        uint32_t len = 0;
        void *buf = vhu_queue_gpa_to_host(q, dd.addr, dd.len);
        if (!buf) {
            ring_broken(w, "buffer outside guest memory", (unsigned long)dd.addr);
            break;
        }
        if (dd.flags & VIRTQ_DESC_F_WRITE) {
            memset(buf, TESTDEV_FILL, dd.len);
            len = dd.len;
        }
        used[used_idx & (size - 1)] = (struct used_elem){.id = head, .len = len};
        used_idx++;
        last++;
        any = true;
        atomic_fetch_add(&w->completed, 1);
    }
    vhu_queue_set_last_avail(q, last);
    if (any) {
        __atomic_store_n(&used_hdr[1], used_idx, __ATOMIC_RELEASE);
        vhu_queue_notify(q);
    }
}

static void *ring_thread(void *arg)
{
    struct ring_worker *w = arg;
    struct pollfd p[2] = {{.fd = vhu_queue_kick_fd(w->q), .events = POLLIN},
                          {.fd = w->stop_fd, .events = POLLIN}};
    process(w); /* entries published before the kick fd was set */
    for (;;) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents)
            break;
        if (p[0].revents & POLLIN) {
            uint64_t n;
            if (read(p[0].fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
                break;
            process(w);
        }
        if (p[0].revents & (POLLHUP | POLLERR | POLLNVAL))
            break;
    }
    return NULL;
}

static int td_start_queue(void *dev, struct vhu_queue *q)
{
    struct testdev *d = dev;
    struct ring_worker *w = &d->rings[vhu_queue_index(q)];
    w->q = q;
    w->broken = false;
    w->stop_fd = eventfd(0, EFD_CLOEXEC);
    if (w->stop_fd < 0)
        return -errno;
    int r = pthread_create(&w->thread, NULL, ring_thread, w);
    if (r) {
        close(w->stop_fd);
        return -r;
    }
    w->running = true;
    atomic_fetch_add(&d->starts, 1);
    atomic_fetch_add(&d->running, 1);
    return 0;
}

static void td_stop_queue(void *dev, struct vhu_queue *q)
{
    struct testdev *d = dev;
    struct ring_worker *w = &d->rings[vhu_queue_index(q)];
    if (!w->running)
        return;
    uint64_t one = 1;
    if (write(w->stop_fd, &one, sizeof(one)) < 0) {
        /* An eventfd write of 1 cannot fail short of a bug; join anyway. */
    }
    pthread_join(w->thread, NULL);
    close(w->stop_fd);
    w->stop_fd = -1;
    w->running = false;
    atomic_fetch_sub(&d->running, 1);
}

static void td_reset(void *dev)
{
    struct testdev *d = dev;
    pthread_mutex_lock(&d->lock);
    d->config.scratch = 0;
    pthread_mutex_unlock(&d->lock);
    atomic_fetch_add(&d->resets, 1);
}

static const struct vhu_device_ops base_ops = {
    .name = "testdev",
    .max_queue_size = 1024,
    .config_size = sizeof(struct testdev_config),
    .features = td_features,
    .get_config = td_get_config,
    .set_config = td_set_config,
    .start_queue = td_start_queue,
    .stop_queue = td_stop_queue,
    .reset = td_reset,
};

struct testdev *testdev_new(unsigned num_queues)
{
    struct testdev *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->rings = calloc(num_queues ? num_queues : 1, sizeof(*d->rings));
    if (!d->rings) {
        free(d);
        return NULL;
    }
    d->ops = base_ops;
    d->ops.num_queues = num_queues;
    d->num_queues = num_queues;
    d->config.magic = TESTDEV_MAGIC;
    d->config.num_queues = num_queues;
    pthread_mutex_init(&d->lock, NULL);
    for (unsigned i = 0; i < num_queues; i++)
        d->rings[i].stop_fd = -1;
    return d;
}

void testdev_free(struct testdev *d)
{
    if (!d)
        return;
    pthread_mutex_destroy(&d->lock);
    free(d->rings);
    free(d);
}

const struct vhu_device_ops *testdev_ops(struct testdev *d)
{
    return &d->ops;
}

unsigned long testdev_completed(struct testdev *d, unsigned queue)
{
    return queue < d->num_queues ? atomic_load(&d->rings[queue].completed) : 0;
}

unsigned long testdev_resets(struct testdev *d)
{
    return atomic_load(&d->resets);
}

unsigned long testdev_starts(struct testdev *d)
{
    return atomic_load(&d->starts);
}

int testdev_running(struct testdev *d)
{
    return atomic_load(&d->running);
}
