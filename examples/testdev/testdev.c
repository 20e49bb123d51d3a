/* SPDX-License-Identifier: BSD-3-Clause */
/* The test device (see testdev.h). */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "state_decls.h"
#include "testdev.h"

#define VIRTQ_DESC_F_WRITE 2

struct desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags, next;
};
struct used_elem {
    uint32_t id, len;
};

struct ring_worker {
    struct testdev *d; /* set when the ring starts */
    struct vhu_vring *q;
    pthread_t thread;
    int stop_fd;
    bool running;
    bool broken;
    atomic_ulong completed;
};

#define TESTDEV_BLOB_MAX (1ull << 31) /* what a load accepts */

struct testdev_staged {
    uint64_t completed[64];
    uint64_t scratch;
    char label[64];
    uint8_t *blob;
    size_t blob_len;
};

struct testdev {
    struct vhu_device_ops ops;
    struct vhu_state_section sections[4];
    struct testdev_state_opts opts;
    char label[64];
    uint8_t *blob;
    size_t blob_len;
    const char *fail_save;
    atomic_ulong commits, discards, snapshots_ended, snapshots_begun;
    atomic_int prepare_result; /* what ops.snapshot_prepare returns */
    unsigned num_queues;
    struct testdev_config config;
    pthread_mutex_t lock;
    struct ring_worker *rings;
    atomic_ulong resets, starts;
    atomic_bool hold;
    atomic_ulong held;
    atomic_int running;
};

static uint64_t td_features(void *dev)
{
    (void)dev;
    return VHU_BIT(VHU_F_VERSION_1) | VHU_BIT(VHU_F_LOG_ALL) | VHU_BIT(0);
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
    vhu_log(VHU_LOG_ERROR, "testdev: ring %u broken: %s (0x%lx)", vhu_vring_index(w->q), what, v);
    vhu_vring_signal_error(w->q);
}

/* Serve one request: a writable buffer is filled; returns the used length,
 * or -1 when the descriptor points outside guest memory. */
static int64_t serve(struct ring_worker *w, const struct desc *dd)
{
    void *buf = vhu_vring_gpa_to_host(w->q, dd->addr, dd->len);
    if (!buf) {
        ring_broken(w, "buffer outside guest memory", (unsigned long)dd->addr);
        return -1;
    }
    if (!(dd->flags & VIRTQ_DESC_F_WRITE))
        return 0;
    memset(buf, TESTDEV_FILL, dd->len);
    vhu_vring_log_write(w->q, dd->addr, dd->len);
    return dd->len;
}

/* Take what is in flight from before, then every published chain, and
 * complete them (unless the test holds them, standing for a back-end that
 * dies with requests in flight). */
static void process(struct ring_worker *w)
{
    struct vhu_vring *q = w->q;
    unsigned size = vhu_vring_size(q);
    struct desc *desc = vhu_vring_desc(q);
    uint16_t *avail = vhu_vring_avail(q);
    uint16_t *used_hdr = vhu_vring_used(q);
    struct used_elem *used = (struct used_elem *)(used_hdr + 2);
    /* A disabled ring keeps its requests until SET_VRING_ENABLE 1 (the
     * library kicks the ring then). */
    if (!vhu_vring_enabled(q) || w->broken)
        return;
    uint16_t heads[1024];
    unsigned n = 0;
    uint16_t head;
    while (n < size && vhu_vring_inflight_resubmit(q, &head))
        heads[n++] = head;
    uint16_t last = vhu_vring_last_avail(q);
    uint16_t avail_idx = __atomic_load_n(&avail[1], __ATOMIC_ACQUIRE);
    /* Again after reading the index: a request published after a
     * SET_VRING_ENABLE 0 is seen only with that disable (the check above
     * may have come before it, this worker then preempted). */
    if (!vhu_vring_enabled(q))
        avail_idx = last; /* take nothing new; what was resubmitted completes */
    /* A driver can publish at most `size` entries ahead of the device. */
    if ((uint16_t)(avail_idx - last) > size) {
        ring_broken(w, "avail index jumped", avail_idx);
        return;
    }
    while (last != avail_idx && n < size) {
        head = avail[2 + (last & (size - 1))];
        if (head >= size) {
            ring_broken(w, "head out of range", head);
            break;
        }
        vhu_vring_inflight_get(q, head);
        heads[n++] = head;
        last++;
    }
    vhu_vring_set_last_avail(q, last);
    if (!n)
        return;
    if (atomic_load(&w->d->hold)) {
        atomic_fetch_add(&w->d->held, n);
        return;
    }
    uint16_t used_idx = __atomic_load_n(&used_hdr[1], __ATOMIC_RELAXED);
    unsigned done = 0;
    for (unsigned i = 0; i < n; i++) {
        struct desc dd = desc[heads[i]];
        int64_t len = serve(w, &dd);
        if (len < 0)
            break;
        unsigned slot = (used_idx + done) & (size - 1);
        used[slot] = (struct used_elem){.id = heads[i], .len = (uint32_t)len};
        vhu_vring_log_used(q, 4 + 8ull * slot, 8);
        vhu_vring_inflight_put_begin(q, heads[i]);
        done++;
    }
    if (!done)
        return;
    used_idx = (uint16_t)(used_idx + done);
    __atomic_store_n(&used_hdr[1], used_idx, __ATOMIC_RELEASE);
    vhu_vring_log_used(q, 2, 2);
    for (unsigned i = 0; i < done; i++)
        vhu_vring_inflight_put_end(q, heads[i], used_idx);
    atomic_fetch_add(&w->completed, done);
    vhu_vring_notify(q);
}

static void *ring_thread(void *arg)
{
    struct ring_worker *w = arg;
    struct pollfd p[2] = {{.fd = vhu_vring_kick_fd(w->q), .events = POLLIN},
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

static int td_start_queue(void *dev, struct vhu_vring *q)
{
    struct testdev *d = dev;
    struct ring_worker *w = &d->rings[vhu_vring_index(q)];
    w->d = d;
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

static void td_stop_queue(void *dev, struct vhu_vring *q)
{
    struct testdev *d = dev;
    struct ring_worker *w = &d->rings[vhu_vring_index(q)];
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

/* ---- device state ---- */

static int td_save_section(void *dev, const struct vhu_state_section *s, struct vhu_state_writer *w)
{
    struct testdev *d = dev;
    if (d->fail_save && strcmp(d->fail_save, s->name) == 0)
        return -EIO;
    if (strcmp(s->name, "config") == 0) {
        pthread_mutex_lock(&d->lock);
        uint64_t scratch = d->config.scratch;
        pthread_mutex_unlock(&d->lock);
        vhu_state_put_u64(w, "scratch", scratch);
        if (s->version >= 2)
            vhu_state_put_str(w, "label", d->label);
    } else if (strcmp(s->name, "blob") == 0) {
        vhu_state_put_u64(w, "length", d->blob_len);
        vhu_state_blob_begin(w, "data");
        /* In uneven pieces, as a device streaming from its own storage. */
        for (size_t off = 0; off < d->blob_len;) {
            size_t n = d->blob_len - off < 100000 ? d->blob_len - off : 100000;
            vhu_state_blob_write(w, d->blob + off, n);
            off += n;
        }
        vhu_state_blob_end(w);
    } else if (strcmp(s->name, "stats") == 0) {
        vhu_state_map_begin(w, "completed");
        for (unsigned i = 0; i < d->num_queues; i++) {
            char k[16];
            snprintf(k, sizeof(k), "q%u", i);
            vhu_state_put_u64(w, k, atomic_load(&d->rings[i].completed));
        }
        vhu_state_map_end(w);
        vhu_state_put_i64(w, "drift", -42);
        vhu_state_put_bool(w, "ok", true);
    } else if (strcmp(s->name, "extra") == 0) {
        vhu_state_put_str(w, "note", "a section only newer builds know");
    }
    return 0;
}

static int td_load_begin(void *dev, void **staged)
{
    (void)dev;
    *staged = calloc(1, sizeof(struct testdev_staged));
    return *staged ? 0 : -ENOMEM;
}

static int td_load_section(void *dev, void *staged, const struct vhu_state_section *s,
                           uint32_t version, struct vhu_state_reader *r)
{
    struct testdev *d = dev;
    struct testdev_staged *st = staged;
    if (strcmp(s->name, "config") == 0) {
        if (vhu_state_get_u64(r, "scratch", &st->scratch) < 0)
            return -EBADMSG;
        /* Version 1 had no label: the upgrade path keeps it empty. */
        if (version >= 2 && vhu_state_get_str(r, "label", st->label, sizeof(st->label)) < 0)
            return -EBADMSG;
    } else if (strcmp(s->name, "blob") == 0) {
        uint64_t len;
        if (vhu_state_get_u64(r, "length", &len) < 0)
            return -EBADMSG;
        if (len > TESTDEV_BLOB_MAX)
            return vhu_state_fail(r, -EFBIG, "blob of %llu bytes is larger than %llu",
                                  (unsigned long long)len, (unsigned long long)TESTDEV_BLOB_MAX);
        st->blob = malloc(len ? len : 1);
        if (!st->blob)
            return -ENOMEM;
        /* Exactly `length` bytes: a longer blob is refused by
         * vhu_state_get_bytes, a shorter one here. */
        size_t got;
        if (vhu_state_get_bytes(r, "data", st->blob, (size_t)len, &got) < 0)
            return -EBADMSG;
        if (got != len)
            return vhu_state_fail(r, -EBADMSG, "blob has %zu of %llu bytes", got,
                                  (unsigned long long)len);
        st->blob_len = len;
    } else if (strcmp(s->name, "stats") == 0) {
        /* Counters by queue name; queues this device lacks are ignored. */
        if (vhu_state_map_enter(r, "completed") < 0)
            return -EBADMSG;
        char key[32];
        while (vhu_state_peek_key(r, key, sizeof(key)) == 0) {
            unsigned q;
            uint64_t v;
            if (sscanf(key, "q%u", &q) != 1 || vhu_state_get_u64(r, key, &v) < 0)
                return vhu_state_fail(r, -EBADMSG, "stats: bad counter '%s'", key);
            if (q < d->num_queues && q < 64)
                st->completed[q] = v;
        }
        if (vhu_state_map_leave(r) < 0)
            return -EBADMSG;
        int64_t drift;
        if (vhu_state_get_i64(r, "drift", &drift) < 0 || drift != -42)
            return vhu_state_fail(r, -EBADMSG, "stats drift wrong");
    }
    return 0;
}

static void td_commit(void *dev, void *staged)
{
    struct testdev *d = dev;
    struct testdev_staged *st = staged;
    pthread_mutex_lock(&d->lock);
    d->config.scratch = st->scratch;
    pthread_mutex_unlock(&d->lock);
    memcpy(d->label, st->label, sizeof(d->label));
    free(d->blob);
    d->blob = st->blob;
    d->blob_len = st->blob_len;
    for (unsigned i = 0; i < d->num_queues && i < 64; i++)
        atomic_store(&d->rings[i].completed, st->completed[i]);
    free(st);
    atomic_fetch_add(&d->commits, 1);
}

static void td_discard(void *dev, void *staged)
{
    struct testdev *d = dev;
    struct testdev_staged *st = staged;
    if (st)
        free(st->blob);
    free(st);
    atomic_fetch_add(&d->discards, 1);
}

static void td_snapshot_done(void *dev)
{
    struct testdev *d = dev;
    atomic_fetch_add(&d->snapshots_ended, 1);
}

static void build_sections(struct testdev *d)
{
    unsigned n = 0;
    unsigned cv = d->opts.config_version ? d->opts.config_version : 2;
    /* The declarations (testdev_state.c, with their fields), as the
     * options shape them. */
    d->sections[n] = testdev_state_sections[TESTDEV_SEC_CONFIG];
    d->sections[n++].version = cv;
    d->sections[n++] = testdev_state_sections[TESTDEV_SEC_BLOB];
    if (d->opts.stats) {
        d->sections[n] = testdev_state_sections[TESTDEV_SEC_STATS];
        d->sections[n++].min_version = d->opts.stats_min_newer ? 9 : 1;
    }
    if (d->opts.extra)
        d->sections[n++] = testdev_state_sections[TESTDEV_SEC_EXTRA];
    d->ops.sections = d->sections;
    d->ops.num_sections = n;
}

void testdev_set_state_opts(struct testdev *d, const struct testdev_state_opts *o)
{
    d->opts = *o;
    build_sections(d);
}

int testdev_set_blob(struct testdev *d, const void *p, size_t n)
{
    uint8_t *b = malloc(n ? n : 1);
    if (!b)
        return -ENOMEM;
    if (n)
        memcpy(b, p, n);
    free(d->blob);
    d->blob = b;
    d->blob_len = n;
    return 0;
}

void testdev_blob(struct testdev *d, const uint8_t **p, size_t *n)
{
    *p = d->blob;
    *n = d->blob_len;
}

void testdev_set_name(struct testdev *d, const char *name) { d->ops.name = name; }

void testdev_set_label(struct testdev *d, const char *label)
{
    snprintf(d->label, sizeof(d->label), "%s", label);
}

const char *testdev_label(struct testdev *d) { return d->label; }

uint64_t testdev_scratch(struct testdev *d)
{
    pthread_mutex_lock(&d->lock);
    uint64_t v = d->config.scratch;
    pthread_mutex_unlock(&d->lock);
    return v;
}

void testdev_fail_save(struct testdev *d, const char *section) { d->fail_save = section; }

unsigned long testdev_commits(struct testdev *d) { return atomic_load(&d->commits); }

unsigned long testdev_snapshots_ended(struct testdev *d)
{
    return atomic_load(&d->snapshots_ended);
}

static int td_snapshot_prepare(void *dev)
{
    struct testdev *d = dev;
    return atomic_load(&d->prepare_result);
}

static int td_snapshot_begin(void *dev)
{
    struct testdev *d = dev;
    atomic_fetch_add(&d->snapshots_begun, 1);
    return 0;
}

void testdev_keep_snapshots(struct testdev *d)
{
    d->ops.snapshot_prepare = td_snapshot_prepare;
    d->ops.snapshot_begin = td_snapshot_begin;
}

void testdev_set_prepare_result(struct testdev *d, int result)
{
    atomic_store(&d->prepare_result, result);
}

unsigned long testdev_snapshots_begun(struct testdev *d)
{
    return atomic_load(&d->snapshots_begun);
}

unsigned long testdev_discards(struct testdev *d) { return atomic_load(&d->discards); }

static const struct vhu_device_ops base_ops = {
    .size = sizeof(struct vhu_device_ops),
    .name = "testdev",
    .max_queue_size = 1024,
    .config_size = sizeof(struct testdev_config),
    .features = td_features,
    .get_config = td_get_config,
    .set_config = td_set_config,
    .start_vring = td_start_queue,
    .stop_vring = td_stop_queue,
    .reset = td_reset,
    .tracks_inflight = true,
    .save_section = td_save_section,
    .load_begin = td_load_begin,
    .load_section = td_load_section,
    .commit = td_commit,
    .discard = td_discard,
    .snapshot_done = td_snapshot_done,
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
    d->opts.config_version = 2;
    d->opts.stats = true;
    build_sections(d);
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
    free(d->blob);
    free(d->rings);
    free(d);
}

const struct vhu_device_ops *testdev_ops(struct testdev *d) { return &d->ops; }

unsigned long testdev_completed(struct testdev *d, unsigned queue)
{
    return queue < d->num_queues ? atomic_load(&d->rings[queue].completed) : 0;
}

void testdev_hold(struct testdev *d, bool hold) { atomic_store(&d->hold, hold); }

unsigned long testdev_held(struct testdev *d) { return atomic_load(&d->held); }

unsigned long testdev_resets(struct testdev *d) { return atomic_load(&d->resets); }

unsigned long testdev_starts(struct testdev *d) { return atomic_load(&d->starts); }

int testdev_running(struct testdev *d) { return atomic_load(&d->running); }
