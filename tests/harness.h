/* SPDX-License-Identifier: BSD-3-Clause */
/* Test harness: a test device served by vhu on a real unix socket, in a
 * thread of the test process, plus helpers the integration tests share. */
#ifndef VHU_TEST_HARNESS_H
#define VHU_TEST_HARNESS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <vhu/frontend.h>
#include <vhu/vhu.h>

#include "testdev.h"

struct harness {
    struct testdev *dev;
    struct vhu_backend *b;
    struct vhu_server *s;
    pthread_t thread;
    char dir[64];
    char path[128];
    char control[128]; /* the control socket, when started with one */
};

/* Start a test device with `queues` rings on a fresh socket; 0 or error. */
int harness_start(struct harness *h, unsigned queues);
/* The same, with a control socket at h->control. */
int harness_start_control(struct harness *h, unsigned queues);
/* The same, testdev keeping its own live snapshots (testdev_keep_snapshots). */
int harness_start_control_kept(struct harness *h, unsigned queues);
void harness_stop(struct harness *h);
/* Connect a front-end (cmocka-asserts success). */
struct vhu_fe *harness_connect(struct harness *h);
/* Connect and negotiate as QEMU does, asking for every protocol feature. */
struct vhu_fe *harness_connect_negotiated(struct harness *h);

/* vhu_backend_send_config_change() on a thread while fe serves the back-end
 * channel, as a VMM's loop would: returns what
 * vhu_fe_serve_backend_request() returned, *sent the back-end's result. */
int config_change_served(struct vhu_backend *b, struct vhu_fe *fe, int *sent);

/* Wait up to ms for an eventfd to be signalled and read its count (0 if it
 * was not): a device writes the call eventfd just after the used index. */
uint64_t wait_eventfd(int fd, int ms);

/* Open fds of this process (entries of /proc/self/fd). */
int count_open_fds(void);
/* The count once back-end threads have finished closing what sessions
 * that just ended held (it stops changing for 20 ms; at most 2 s). */
int settled_open_fds(void);
/* Wait up to 2 s for the count to be want; asserts it is. */
void wait_open_fds(int want);

/* Log capture: every line the library logs, kept since the last clear. */
void log_capture_install(void);
void log_clear(void);
/* Error lines since the last clear that contain needle. */
int log_count(const char *needle);
/* Wait up to ms for a line containing needle. */
bool log_wait(const char *needle, int ms);
void log_dump(void);

/* GET_INFLIGHT_FD for nq queues of qs entries: the region's fd (out
 * holds the reply) or a negative errno.  SET_INFLIGHT_FD with fd: the
 * back-end's status (0 accepted), or a negative errno. */
int inflight_get(struct vhu_fe *fe, uint16_t nq, uint16_t qs, struct vhu_inflight *out);
int inflight_set(struct vhu_fe *fe, const struct vhu_inflight *in, int fd);

/* Wait up to ms for cond-like predicates. */
bool wait_used_idx(const struct vhu_fe_vring *r, uint16_t want, int ms);
void sleep_ms(unsigned ms);

/* Guest memory + one ring per queue, mapped and set up on the back-end:
 * SET_MEM_TABLE, then per ring NUM, BASE, ADDR, CALL, KICK, ENABLE. */
#define GUEST_RING_SIZE 16 /* guest_init's; guest_init_ring picks another */
#define GUEST_RING_MAX 256
#define GUEST_MEM_SIZE (1u << 20)
#define GUEST_BUF_GPA 0x80000u
struct guest {
    struct vhu_guest_mem mem;
    unsigned nrings;
    unsigned ring_size; /* entries of every ring */
    struct vhu_fe_vring ring[4];
    int kick[4], call[4], err[4];
};
void guest_init(struct guest *g, unsigned nrings);
/* The same with packed rings (packed true): guest_activate then sends the
 * packed base, the rings' own (fresh: 0x80008000) when base is 0. */
void guest_init_layout(struct guest *g, unsigned nrings, bool packed);
/* Rings of `size` entries (a power of two up to GUEST_RING_MAX), split or
 * packed. */
void guest_init_rings(struct guest *g, unsigned nrings, unsigned size, bool packed);
void guest_free(struct guest *g);
/* Set up every ring with `base` as SET_VRING_BASE; asserts success. */
void guest_activate(struct guest *g, struct vhu_fe *fe, unsigned base);
void guest_kick(struct guest *g, unsigned ring);

/* A front-end session on a harness: negotiated, guest memory and two rings
 * set up (test_control, test_snapshot). */
struct fe_session {
    struct vhu_fe *fe;
    struct guest g;
    unsigned pushed[2];
};
void fe_session_open(struct harness *h, struct fe_session *s);
/* n requests through ring r, each one 256-byte writable buffer; true once
 * all completed within ms.  No cmocka asserts: threads use it too. */
bool fe_session_requests(struct fe_session *s, unsigned r, unsigned n, int ms);
void fe_session_close(struct fe_session *s);

#endif
