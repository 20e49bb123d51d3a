/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu-blk's private parts: what blk.c (the device) and uring.c (its
 * io_uring path, --direct) share. */
#ifndef VHU_EXAMPLES_BLK_INTERNAL_H
#define VHU_EXAMPLES_BLK_INTERNAL_H

#include <linux/virtio_blk.h>
#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "blk.h"

/* Requests in flight per queue at most.  Reads and writes of at least
 * PAR_MIN_BYTES go to the queue's helper threads (large copies in
 * parallel, each completed as soon as it is done, so one slow copy does not
 * hold up the others); everything else is done by the worker at once.
 * With --direct every read and write waits for the device, so this is the
 * queue depth the device sees (16 held 4 KiB QD 32 direct reads to about
 * 75 k IOPS here where 64 gave 100 k).  The device function returns only
 * when every request it took is complete, so a stopped ring never has a
 * request half done. */
#define SLOTS 64u
#define PAR_MIN_BYTES (32u * 1024u)
#define HELPERS 2u

/* One request in flight: the chain, and its data part (the buffers minus
 * header / status). */
struct blk_req {
    struct vhu_vring_elem elem;
    struct iovec data[VHU_VRING_MAX_SEGS];
    unsigned n;        /* reads and writes: buffers in data */
    uint64_t off, len; /* ...where on the disk, how many bytes */
    bool write;
    uint32_t written;
    uint8_t status;
};

struct blk_queue {
    struct blk *d;
    struct vhu_vring_worker *worker;
    struct blk_req *reqs; /* SLOTS of them */
    atomic_ulong completed;
    /* Helpers take slot numbers from `todo` and put them in `done` (FIFOs
     * of SLOTS entries, under mu); the worker pushes what is done. */
    pthread_t helper[HELPERS];
    unsigned nhelpers;
    /* With --direct, reads and writes go to the kernel asynchronously
     * through an io_uring instead (the worker submits and reaps; no
     * helpers): a direct read waits for the device, and up to SLOTS of
     * them are in flight at once. */
    struct io_uring ring;
    atomic_bool uring;
    pthread_mutex_t mu;
    pthread_cond_t work, finished;
    bool quit;
    unsigned todo[SLOTS], todo_head, todo_n;
    unsigned done[SLOTS], done_n;
};

/* A live snapshot of a RAM disk without fork() (ram.c): the disk in chunks
 * of COW_CHUNK bytes, each written into the snapshot from the disk or, if
 * the guest wrote it first, from a copy taken just before that write into
 * the copy area (chunk i at i * COW_CHUNK), which blk_ram_cow_prepare maps
 * and faults in before the snapshot's instant. */
#define COW_CHUNK (32u * 1024u)
enum { COW_LIVE, COW_BUSY, COW_KEPT };

struct blk_ram_cow {
    atomic_bool armed; /* a snapshot is being written */
    size_t nchunks;
    /* Per chunk: COW_LIVE (not in the snapshot yet, unwritten), COW_BUSY
     * (a writer is copying it aside), COW_KEPT (in the snapshot, or in
     * the copy area: the guest may write it). */
    _Atomic uint8_t *state;
    uint8_t *area;       /* the copies, mapped from prepare to disarm */
    size_t area_len;     /* bytes mapped at area */
    bool reserved;       /* --snapshot-reserve: area mapped for good */
    atomic_ulong copies; /* chunks writers copied aside, this snapshot */
};

struct blk {
    struct vhu_device_ops ops;
    int fd;                              /* the image, or -1 for a memory-only disk */
    int dfd;                             /* the image opened with O_DIRECT (--direct), or -1 */
    uint32_t dio_mem_mask, dio_off_mask; /* what O_DIRECT on dfd needs aligned:
                                          * buffer addresses; offsets and lengths */
    atomic_bool uring_refused;           /* said once */
    uint8_t *ram;                        /* the disk, with --ram (ram.c) */
    pthread_t collapse_th;               /* ram.c: huge pages back after a snapshot */
    bool collapsing;                     /* collapse_th to be joined */
    atomic_bool collapse_done, collapse_again, collapse_stop;
    struct blk_ram_cow cow; /* ram.c: live snapshots without fork() */
    uint64_t size;          /* bytes, a multiple of BLK_SECTOR; changed only by
                         * blk_resize() (atomic: the rings read it) */
    bool ro;
    bool packed; /* RING_PACKED offered (blk_options.packed) */
    unsigned nq;
    char id[VIRTIO_BLK_ID_BYTES]; /* what GET_ID answers, NUL-padded */
    pthread_mutex_t config_lock;  /* config against blk_resize() */
    struct virtio_blk_config config;
    struct blk_queue *q;
};

/* The worker's side of a queue's requests. */
struct pipe {
    unsigned free[SLOTS], nfree;
    unsigned inflight; /* handed to the helpers, not pushed yet */
    unsigned unflushed;
};

/* ---- blk.c ---- */

/* Drop the first `done` bytes of *iov (n entries); returns the entries left. */
unsigned blk_iov_advance(struct iovec **iov, unsigned n, size_t done);
/* With --direct, may this transfer bypass the page cache? */
bool blk_direct_ok(const struct blk *d, const struct iovec *iov, unsigned n, uint64_t off);
/* Read or write the whole iovec at off: 0 or a negative errno. */
int blk_disk_io(struct blk *d, bool write, struct iovec *iov, unsigned n, uint64_t off);
/* A read or write done with result err: its status, and the bytes it wrote
 * into the driver's buffers. */
uint32_t blk_rw_result(const struct blk_req *r, int err, uint8_t *status);
/* Write r's status byte (the last byte of the last writable buffer). */
void blk_put_status(struct blk_req *r);
/* Push request slot i to the used ring and free the slot. */
void blk_complete(struct vhu_vring_io *vq, struct blk_queue *bq, struct pipe *p, unsigned i);

/* ---- ram.c: the memory of a RAM disk ---- */

uint8_t *blk_ram_alloc(uint64_t size);
void blk_ram_free(uint8_t *p, uint64_t size);
/* A live snapshot's child has exited: merge the disk's memory back into
 * huge pages, on a thread of its own (again, if one is at it). */
void blk_ram_recollapse(struct blk *d);
/* Stop and join that thread (before d->ram goes). */
void blk_ram_collapse_stop(struct blk *d);

/* Live snapshots without fork(): the chunk table for a disk of d->size;
 * with reserve (--snapshot-reserve), the copy area too, in huge pages,
 * faulted in and kept (as much memory again as the disk). */
int blk_ram_cow_init(struct blk *d, bool reserve);
void blk_ram_cow_free(struct blk *d);
/* ops.snapshot_prepare, rings running: map the copy area, as large as the
 * disk, and fault it in (the guest's first write to each chunk after the
 * instant copies into it without a page fault).  0, or -ENOMEM. */
int blk_ram_cow_prepare(struct blk *d);
/* ops.snapshot_begin, every ring stopped: the disk as it is now is what
 * blk_ram_save_kept writes, whatever the guest writes meanwhile. */
void blk_ram_cow_arm(struct blk *d);
/* Before the guest's bytes go into [off, off + len) of the disk: keep what
 * the snapshot still needs of it.  Callers test d->cow.armed first (the
 * common case: no snapshot). */
void blk_ram_cow_keep(struct blk *d, uint64_t off, uint64_t len);
/* The disk as it was at blk_ram_cow_arm, into w's open blob. */
int blk_ram_save_kept(struct blk *d, struct vhu_state_writer *w);
/* The snapshot ended (ops.snapshot_done): the copy area unmapped, writes
 * go straight to the disk again.  Rings may be running. */
void blk_ram_cow_disarm(struct blk *d);

/* ---- uring.c: io_uring (--direct) ---- */

/* Give queue bq an io_uring (once) when the kernel gives one; true when
 * bq has one. */
bool blk_uring_open(struct blk *d, struct blk_queue *bq);
void blk_uring_close(struct blk_queue *bq);
/* Queue read or write r (slot i) on bq's ring; false when it has no room. */
bool blk_uring_queue(struct blk_queue *bq, struct blk_req *r, unsigned i);
/* Submit what is queued and push what the kernel has finished; with
 * `wait`, first wait for at least one. */
void blk_uring_reap(struct vhu_vring_io *vq, struct blk_queue *bq, struct pipe *p, bool wait);

#endif
