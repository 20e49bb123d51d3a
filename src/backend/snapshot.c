/* SPDX-License-Identifier: BSD-3-Clause */
/* Live snapshots: stop every running ring at a request boundary, fork(),
 * restart the rings.  The child is a copy-on-write image of the device at
 * the pause: it writes the SAVE stream (the one SET_DEVICE_STATE_FD SAVE
 * writes) into the output fd on its only thread and exits; the parent
 * learns the result from a small report on a pipe and reaps the child
 * through a pidfd (docs/live-snapshots.md).
 *
 * The child runs without the library: no lock another thread may have held
 * at fork (the ring threads were joined by the pause, the transfer thread is
 * idle), no libev, no logging, no guest memory (MAP_SHARED: the guest goes
 * on writing it), no fd but its output and its report pipe. */
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend_internal.h"
#include "snapshot.h"
#include "../state/state_internal.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif

#define REPORT_MAGIC 0x76687553u

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t us(double from, double to)
{
    return to > from ? (uint64_t)((to - from) * 1e6 + 0.5) : 0;
}

static void close_from_to(unsigned lo, unsigned hi)
{
    if (lo > hi)
        return;
    if (syscall(SYS_close_range, lo, hi, 0) == 0)
        return;
    /* Before Linux 5.9: every possible number. */
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > (1l << 20))
        max = 1l << 20;
    for (long fd = lo; fd <= (long)hi && fd < max; fd++)
        close((int)fd);
}

/* Move fd to 3 or above (0-2 are closed in the child). */
static int above_stdio(int fd)
{
    if (fd > 2)
        return fd;
    int n = fcntl(fd, F_DUPFD, 3);
    return n < 0 ? fd : n;
}

static void write_report(int rep, const struct vhu_snapshot_report *r)
{
    ssize_t w;
    do
        w = write(rep, r, sizeof(*r));
    while (w < 0 && errno == EINTR);
}

static void child_main(struct vhu_backend *b, int out, int rep, pid_t parent)
    __attribute__((noreturn));
static void child_main(struct vhu_backend *b, int out, int rep, pid_t parent)
{
    /* The back-end's handlers would act on a process they do not know. */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP)
            (void)sigaction(s, &sa, NULL);
    sa.sa_handler = SIG_IGN; /* a reader gone: EPIPE, reported */
    (void)sigaction(SIGPIPE, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* Dies with the back-end. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(3);
    /* The device's ring threads serve the guest on the same CPUs while this
     * process compresses: they come first.  SCHED_BATCH + nice 10 rather
     * than SCHED_IDLE, which a busy host could starve forever. */
    struct sched_param sp = {.sched_priority = 0};
    (void)sched_setscheduler(0, SCHED_BATCH, &sp);
    (void)setpriority(PRIO_PROCESS, 0, 10);

    /* Every fd but the output and the report pipe: the vhost-user socket,
     * kick/call fds, guest memory fds, control clients.  stderr stays (the
     * child writes nothing there; sanitizers may). */
    out = above_stdio(out);
    rep = above_stdio(rep);
    int lo = out < rep ? out : rep, hi = out < rep ? rep : out;
    close_from_to(0, 1);
    close_from_to(3, (unsigned)lo - 1);
    close_from_to((unsigned)lo + 1, (unsigned)hi - 1);
    close_from_to((unsigned)hi + 1, ~0u);

    struct vhu_snapshot_report r;
    memset(&r, 0, sizeof(r));
    r.magic = REPORT_MAGIC;
    struct vhu_snap_handler *h = malloc(sizeof(*h));
    if (!h) {
        r.result = -ENOMEM;
        snprintf(r.why, sizeof(r.why), "out of memory");
    } else {
        /* The rings as the pause left them: last_avail names the next
         * request each ring takes. */
        vhu_state_fill_handler(b, h);
        r.result = vhu_state_save_stream(b, out, -1, 0, NULL, h, &r.bytes, r.why, sizeof(r.why));
        free(h);
    }
    close(out);
    write_report(rep, &r);
    _exit(r.result ? 1 : 0);
}

/* The thread's first part with ops.snapshot_prepare: prepare (the rings
 * run), say so, wait for the back-end's thread to have paused, begun and
 * resumed.  True to go on and write the stream; false with r filled. */
static bool wait_go(struct vhu_snapshot_job *job, struct vhu_snapshot_report *r)
{
    double t = mono();
    job->prepare_result = job->b->ops->snapshot_prepare(job->b->dev);
    job->prepare_us = us(t, mono());
    uint64_t one = 1;
    if (write(job->ready_fd, &one, sizeof(one)) != sizeof(one)) {
        r->result = -errno;
        snprintf(r->why, sizeof(r->why), "cannot signal the back-end's thread: %s",
                 vhu_strerror(r->result));
        return false;
    }
    for (;;) {
        struct pollfd pf[2] = {{.fd = job->go_fd, .events = POLLIN},
                               {.fd = job->cancel_fd, .events = POLLIN}};
        if (poll(pf, 2, -1) < 0 && errno != EINTR) {
            r->result = -errno;
            snprintf(r->why, sizeof(r->why), "poll: %s", vhu_strerror(r->result));
            return false;
        }
        if (pf[0].revents) {
            uint64_t v;
            if (read(job->go_fd, &v, sizeof(v)) != sizeof(v))
                continue;
            if (job->go_result < 0) {
                r->result = job->go_result;
                snprintf(r->why, sizeof(r->why), "%s", job->go_why);
                return false;
            }
            return true;
        }
        if (pf[1].revents) {
            r->result = -ECANCELED;
            snprintf(r->why, sizeof(r->why), "cancelled before its instant");
            return false;
        }
    }
}

/* A device's own snapshot (ops.snapshot_begin): the child's work, on a
 * thread of this process.  It yields the CPUs to the ring threads the
 * same way (SCHED_BATCH, nice 10: per thread on Linux). */
static void *thread_main(void *arg)
{
    struct vhu_snapshot_job *job = arg;
    (void)pthread_setname_np(pthread_self(), "vhu-snapshot");
    struct sched_param sp = {.sched_priority = 0};
    (void)pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
    (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10);
    struct vhu_snapshot_report r;
    memset(&r, 0, sizeof(r));
    r.magic = REPORT_MAGIC;
    if (job->ready_fd >= 0 && !wait_go(job, &r))
        goto report;
    r.result = vhu_state_save_stream(job->b, job->out_fd, job->cancel_fd, 0, NULL, job->handler,
                                     &r.bytes, r.why, sizeof(r.why));
report:
    /* The stream ends before the report: a reader sees its EOF first. */
    vhu_close_fd(&job->out_fd);
    write_report(job->rep_fd, &r);
    vhu_close_fd(&job->rep_fd);
    return NULL;
}

static void thread_job_close(struct vhu_snapshot_job *job)
{
    vhu_close_fd(&job->ready_fd);
    vhu_close_fd(&job->go_fd);
    vhu_close_fd(&job->cancel_fd);
    vhu_close_fd(&job->out_fd);
    vhu_close_fd(&job->rep_fd);
    vhu_close_fd(&job->status_fd);
    free(job->handler);
    job->handler = NULL;
}

/* The instant of a device-kept snapshot: rings paused, the handler record
 * filled, ops.snapshot_begin, rings resumed.  0, or <0 with why filled. */
static int pause_and_begin(struct vhu_snapshot_job *job, char *why, size_t n)
{
    struct vhu_backend *b = job->b;
    bool *was = calloc(b->nqueues ? b->nqueues : 1, sizeof(*was));
    if (!was) {
        snprintf(why, n, "out of memory");
        return -ENOMEM;
    }
    double t0 = mono();
    vhu_backend_pause(b, was);
    vhu_state_fill_handler(b, job->handler);
    int e = b->ops->snapshot_begin(b->dev);
    int rr = vhu_backend_resume(b, was);
    job->pause_us = us(t0, mono());
    job->quiesced = true;
    free(was);
    if (rr < 0)
        vhu_err("snapshot: a ring did not restart after the pause: %s", vhu_strerror(rr));
    if (e < 0)
        snprintf(why, n, "the device refused the snapshot: %s", vhu_strerror(e));
    return e;
}

static int start_thread(struct vhu_backend *b, int out_fd, struct vhu_snapshot_job *job, char *why,
                        size_t n)
{
    int sp[2], e;
    struct stat st;
    job->threaded = true;
    job->b = b;
    job->handler = malloc(sizeof(*job->handler));
    job->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    job->out_fd = fcntl(out_fd, F_DUPFD_CLOEXEC, 3);
    if (!job->handler || job->cancel_fd < 0 || job->out_fd < 0) {
        e = job->handler ? -errno : -ENOMEM;
        snprintf(why, n, "no %s for the snapshot: %s",
                 !job->handler        ? "memory"
                 : job->cancel_fd < 0 ? "eventfd"
                                      : "fd",
                 vhu_strerror(e));
        goto fail;
    }
    /* A pipe or socket goes non-blocking so that a cancel is seen even when
     * the reader stopped reading (the writer polls both). */
    int fl = fcntl(job->out_fd, F_GETFL);
    if (fstat(job->out_fd, &st) == 0 && !S_ISREG(st.st_mode) && fl >= 0 &&
        fcntl(job->out_fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        e = -errno;
        snprintf(why, n, "cannot make the output non-blocking: %s", vhu_strerror(e));
        goto fail;
    }
    if (pipe2(sp, O_CLOEXEC) < 0) {
        e = -errno;
        snprintf(why, n, "no pipe for the snapshot's report: %s", vhu_strerror(e));
        goto fail;
    }
    job->status_fd = sp[0];
    job->rep_fd = sp[1];
    (void)fcntl(job->status_fd, F_SETFL, O_NONBLOCK);
    if (b->ops->snapshot_prepare) {
        /* The thread prepares while the rings run; the pause comes when it
         * is ready (vhu_snapshot_quiesce). */
        job->ready_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        job->go_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (job->ready_fd < 0 || job->go_fd < 0) {
            e = -errno;
            snprintf(why, n, "no eventfd for the snapshot: %s", vhu_strerror(e));
            goto fail;
        }
    } else if ((e = pause_and_begin(job, why, n)) < 0) {
        goto fail;
    }
    /* Signals go to the application's threads, not this one. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    e = -pthread_create(&job->thread, NULL, thread_main, job);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e < 0) {
        snprintf(why, n, "no thread for the snapshot: %s", vhu_strerror(e));
        if (job->quiesced && b->ops->snapshot_done)
            b->ops->snapshot_done(b->dev); /* begun: it must hear the end */
        goto fail;
    }
    job->joinable = true;
    return 0;
fail:
    thread_job_close(job);
    return e;
}

int vhu_snapshot_start(struct vhu_backend *b, int out_fd, struct vhu_snapshot_job *job, char *why,
                       size_t n)
{
    memset(job, 0, sizeof(*job));
    job->pidfd = job->status_fd = job->cancel_fd = job->out_fd = job->rep_fd = -1;
    job->ready_fd = job->go_fd = -1;
    job->started = mono();
    if (b->ops->snapshot_begin)
        return start_thread(b, out_fd, job, why, n);
    int sp[2];
    if (pipe2(sp, O_CLOEXEC | O_NONBLOCK) < 0) {
        int e = -errno;
        snprintf(why, n, "no pipe for the child's report: %s", vhu_strerror(e));
        return e;
    }
    bool *was = calloc(b->nqueues ? b->nqueues : 1, sizeof(*was));
    if (!was) {
        close(sp[0]);
        close(sp[1]);
        snprintf(why, n, "out of memory");
        return -ENOMEM;
    }
    pid_t parent = getpid();
    double t0 = mono();
    vhu_backend_pause(b, was);
    double t1 = mono();
    pid_t pid = fork();
    if (pid == 0)
        child_main(b, out_fd, sp[1], parent);
    int fe = errno;
    double t2 = mono();
    int rr = vhu_backend_resume(b, was);
    double t3 = mono();
    free(was);
    close(sp[1]);
    if (rr < 0)
        vhu_err("snapshot: a ring did not restart after the pause: %s", vhu_strerror(rr));
    if (pid < 0) {
        close(sp[0]);
        snprintf(why, n, "fork: %s", vhu_strerror(-fe));
        return -fe;
    }
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0 && errno != ENOSYS) {
        int e = -errno;
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
        }
        close(sp[0]);
        snprintf(why, n, "pidfd_open: %s", vhu_strerror(e));
        return e;
    }
    job->pid = pid;
    job->pidfd = pidfd;
    job->status_fd = sp[0];
    job->pause_us = us(t0, t3);
    job->fork_us = us(t1, t2);
    return 0;
}

static void job_close(struct vhu_snapshot_job *job)
{
    vhu_close_fd(&job->pidfd);
    vhu_close_fd(&job->status_fd);
    if (job->threaded)
        thread_job_close(job);
}

static void thread_cancel(struct vhu_snapshot_job *job);

int vhu_snapshot_ready_fd(const struct vhu_snapshot_job *job)
{
    return job->quiesced ? -1 : job->ready_fd;
}

void vhu_snapshot_quiesce(struct vhu_snapshot_job *job)
{
    uint64_t v;
    if (job->quiesced || read(job->ready_fd, &v, sizeof(v)) != sizeof(v))
        return; /* not yet (or already) */
    job->quiesced = true;
    int e = job->prepare_result;
    if (e < 0)
        snprintf(job->go_why, sizeof(job->go_why), "the device could not prepare the snapshot: %s",
                 vhu_strerror(e));
    else
        e = pause_and_begin(job, job->go_why, sizeof(job->go_why));
    job->go_result = e;
    uint64_t one = 1;
    if (write(job->go_fd, &one, sizeof(one)) != sizeof(one)) {
        /* An eventfd write fails only on overflow: cannot happen.  The
         * thread would wait for a cancel. */
        vhu_err("snapshot: cannot signal the snapshot thread: %s", vhu_strerror(-errno));
        thread_cancel(job);
    }
}

int vhu_snapshot_watch_fd(const struct vhu_snapshot_job *job)
{
    return job->pidfd >= 0 ? job->pidfd : job->status_fd;
}

/* Read what the pipe holds of the report.  1 at EOF, 0 when more may come. */
static int read_report(struct vhu_snapshot_job *job)
{
    while (job->status_fd >= 0) {
        uint8_t buf[sizeof(job->rep)];
        ssize_t r = read(job->status_fd, buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return errno == EAGAIN ? 0 : 1;
        if (r == 0)
            return 1;
        size_t take = (size_t)r < sizeof(job->rep) - job->rep_got ? (size_t)r
                                                                  : sizeof(job->rep) - job->rep_got;
        memcpy((uint8_t *)&job->rep + job->rep_got, buf, take);
        job->rep_got += take;
    }
    return 1;
}

int vhu_snapshot_finish(struct vhu_snapshot_job *job, uint64_t *bytes, char *why, size_t n)
{
    *bytes = 0;
    int st = 0;
    bool known = false;
    int eof = read_report(job);
    if (job->joinable) {
        /* The pipe ends when the thread returns: the join is short. */
        if (!eof)
            return -EAGAIN;
        pthread_join(job->thread, NULL);
        job->joinable = false;
    }
    if (job->pid > 0) {
        /* Without a pidfd, the end of the pipe says the child is exiting
         * (its files are closed after its memory): the wait is short. */
        bool block = job->pidfd < 0;
        if (block && !eof)
            return -EAGAIN;
        pid_t r;
        do
            r = waitpid(job->pid, &st, block ? 0 : WNOHANG);
        while (r < 0 && errno == EINTR);
        if (r == 0)
            return -EAGAIN;
        /* ECHILD: the application reaped it (a SIGCHLD handler): the
         * report alone says how it went. */
        known = r == job->pid;
        job->pid = 0;
    }
    read_report(job);
    job_close(job);
    struct vhu_snapshot_report rep = job->rep;
    if (job->rep_got == sizeof(rep) && rep.magic == REPORT_MAGIC) {
        rep.why[sizeof(rep.why) - 1] = 0;
        if (rep.result < 0) {
            snprintf(why, n, "%s", rep.why);
            return rep.result > -4096 ? rep.result : -EIO;
        }
        /* The stream is complete: how the child ended after saying so
         * does not change it (valgrind, for one, makes it exit 1 for the
         * leaks of the threads fork left behind). */
        *bytes = rep.bytes;
        return 0;
    }
    if (known && WIFSIGNALED(st)) {
        snprintf(why, n, "the snapshot process was killed by signal %d (%s)", WTERMSIG(st),
                 strsignal(WTERMSIG(st)));
        return WTERMSIG(st) == SIGKILL ? -ECANCELED : -EIO;
    }
    if (known)
        snprintf(why, n, "the snapshot process exited with status %d without a report",
                 WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    else
        snprintf(why, n, "the snapshot process ended without a report (reaped elsewhere)");
    return -EIO;
}

static void thread_cancel(struct vhu_snapshot_job *job)
{
    uint64_t one = 1;
    if (job->cancel_fd >= 0 && write(job->cancel_fd, &one, sizeof(one)) < 0)
        vhu_err("snapshot: cannot cancel the snapshot thread: %s", vhu_strerror(-errno));
}

int vhu_snapshot_cancel(struct vhu_snapshot_job *job, uint64_t *bytes, char *why, size_t n)
{
    if (!job->threaded)
        vhu_snapshot_kill(job, false);
    else
        thread_cancel(job);
    if (job->joinable) {
        pthread_join(job->thread, NULL); /* it closed the pipe: finish will not wait */
        job->joinable = false;
    }
    int r;
    while ((r = vhu_snapshot_finish(job, bytes, why, n)) == -EAGAIN) {
        struct pollfd pf = {.fd = vhu_snapshot_watch_fd(job), .events = POLLIN};
        (void)poll(&pf, 1, 100);
    }
    return r;
}

void vhu_snapshot_kill(struct vhu_snapshot_job *job, bool wait)
{
    if (job->threaded) {
        thread_cancel(job);
        if (!wait)
            return;
        if (job->joinable)
            pthread_join(job->thread, NULL);
        job->joinable = false;
        job_close(job);
        return;
    }
    if (job->pid <= 0) {
        if (wait)
            job_close(job);
        return;
    }
    kill(job->pid, SIGKILL); /* not reaped yet: the pid is still ours */
    if (!wait)
        return;
    while (waitpid(job->pid, NULL, 0) < 0 && errno == EINTR) {
    }
    job->pid = 0;
    job_close(job);
}
