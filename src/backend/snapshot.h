/* SPDX-License-Identifier: BSD-3-Clause */
/* Live snapshots (docs/live-snapshots.md): quiesce the rings, fork, let the
 * child write the SAVE stream while the parent's rings run again. */
#ifndef VHU_BACKEND_SNAPSHOT_H
#define VHU_BACKEND_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/types.h>

struct vhu_backend;
struct vhu_snap_handler;

/* What the child tells the parent: one write, smaller than PIPE_BUF. */
struct vhu_snapshot_report {
    int32_t result;
    uint32_t magic;
    uint64_t bytes;
    char why[240];
};

struct vhu_snapshot_job {
    /* A device with ops.snapshot_begin: no child, a thread of this process
     * writes the stream (and the report). */
    bool threaded;
    bool joinable; /* thread to be joined */
    pthread_t thread;
    int cancel_fd; /* eventfd: the thread's writer gives up when it is readable */
    int out_fd;    /* the thread's copy of the output (it closes it) */
    int rep_fd;    /* the report pipe's write end (the thread closes it) */
    /* With ops.snapshot_prepare, the thread prepares first, then says so
     * on ready_fd; the back-end's thread pauses the rings, calls
     * snapshot_begin, resumes, and tells the thread through go_fd. */
    int ready_fd, go_fd;           /* eventfds; -1 without prepare */
    bool quiesced;                 /* the pause is done (or was never to be) */
    int prepare_result, go_result; /* 0 or <0, each written before its eventfd */
    char go_why[200];              /* why go_result < 0 */
    struct vhu_backend *b;
    struct vhu_snap_handler *handler; /* the rings at the pause */
    pid_t pid;                        /* the child; 0 once reaped (and for a thread) */
    int pidfd;                        /* readable once the child exited; -1 without pidfd_open */
    int status_fd;                    /* the child's report (read end of a pipe) */
    struct vhu_snapshot_report rep;
    size_t rep_got;      /* bytes of rep read so far */
    uint64_t pause_us;   /* rings stopped: quiesce + fork */
    uint64_t fork_us;    /* of which fork() (0 for a thread) */
    uint64_t prepare_us; /* ops.snapshot_prepare, before the pause (rings running) */
    double started;      /* vhu_monotonic() at the request */
};

/* Pause, fork a child writing b's SAVE stream into out_fd, resume; or, for
 * a device with ops.snapshot_begin, pause, call it, resume, and write the
 * stream on a thread.  The caller keeps out_fd (and closes it).  0 with *job filled, or <0 with why
 * filled (nothing to clean up). */
int vhu_snapshot_start(struct vhu_backend *b, int out_fd, struct vhu_snapshot_job *job, char *why,
                       size_t n);
/* With ops.snapshot_prepare the thread prepares first, rings running: once
 * this fd (or -1: none, or done) is readable, call vhu_snapshot_quiesce on
 * the back-end's thread.  It pauses the rings, calls snapshot_begin,
 * resumes and lets the thread write the stream (or report why not). */
int vhu_snapshot_ready_fd(const struct vhu_snapshot_job *job);
void vhu_snapshot_quiesce(struct vhu_snapshot_job *job);
/* The fd to wait on: the pidfd, or where pidfd_open is missing (before Linux
 * 5.3, valgrind 3.19) or for a thread, the report pipe, which ends once the
 * child exited (the thread is returning). */
int vhu_snapshot_watch_fd(const struct vhu_snapshot_job *job);
/* After the watch fd became readable: reap the child and read its report.
 * 0 (the stream was written, *bytes of it) or <0 with why filled; the job's
 * fds are closed either way.  -EAGAIN: not exited yet, call again later. */
int vhu_snapshot_finish(struct vhu_snapshot_job *job, uint64_t *bytes, char *why, size_t n);
/* SIGKILL the child (if not reaped yet), or cancel the thread's writer; the
 * caller then waits for the watch fd and calls vhu_snapshot_finish, or
 * passes wait to reap (join) here, blocking, and drop the report. */
void vhu_snapshot_kill(struct vhu_snapshot_job *job, bool wait);
/* Cancel a thread's snapshot and wait for it: vhu_snapshot_finish's result
 * (-ECANCELED unless it had completed).  For a child, as kill + finish. */
int vhu_snapshot_cancel(struct vhu_snapshot_job *job, uint64_t *bytes, char *why, size_t n);

#endif
