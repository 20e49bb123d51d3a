/* SPDX-License-Identifier: BSD-3-Clause */
/* Dirty-page log (SET_LOG_BASE, SET_LOG_FD, VHOST_F_LOG_ALL): while QEMU
 * copies guest memory during live migration, every byte the back-end writes
 * into guest memory sets its 4 KiB page's bit in a bitmap shared with QEMU.
 * QEMU clears bits with atomic exchanges while we set them, so bits are set
 * with an atomic OR, after the data write is visible. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../vring/vring_internal.h"
#include "backend_internal.h"

#define DIRTY_PAGE 4096u
/* The largest log accepted: one bit per page of 64 TiB of guest memory. */
#define DIRTY_LOG_MAX_SIZE (2ull << 30)

void vhu_dirty_log_unmap(struct vhu_dirty_log *l)
{
    if (l->map)
        munmap(l->map, l->map_len);
    l->map = NULL;
    l->bits = NULL;
    l->size = 0;
}

/* "512 KiB": v in the largest binary unit it reaches; "~1.5 MiB" when the
 * unit does not divide it (the exact figure is given beside it). */
static void human_bytes(uint64_t v, char *out, size_t n)
{
    static const char *const unit[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    unsigned u = 0;
    while (u + 1 < VHU_ARRAY_SIZE(unit) && v >> (10 * (u + 1)))
        u++;
    uint64_t scale = 1ull << (10 * u);
    if (v % scale == 0)
        snprintf(out, n, "%" PRIu64 " %s", v / scale, unit[u]);
    else
        snprintf(out, n, "~%.1f %s", (double)v / (double)scale, unit[u]);
}

/* A log must cover every page of the current memory table, or a write into
 * the pages past it could not be marked and would not migrate.  QEMU sizes
 * the log from the table and grows it before it sends a bigger table
 * (hw/virtio/vhost.c, vhost_commit), so its logs always cover.  With no
 * table yet there is nothing to cover: any log is accepted, and a table
 * that arrives later is checked by the ring threads (mark_dirty). */
static int check_covers(struct vhu_req *r, uint64_t size)
{
    uint64_t end = vhu_mem_end(&r->b->mem);
    uint64_t need = end / DIRTY_PAGE + (end % DIRTY_PAGE != 0);
    uint64_t have = size * 8; /* size <= DIRTY_LOG_MAX_SIZE: no overflow */
    if (need <= have)
        return 0;
    char covers[32], reaches[32];
    human_bytes(have * DIRTY_PAGE, covers, sizeof(covers));
    human_bytes(end, reaches, sizeof(reaches));
    uint64_t need_bytes = need / 8 + (need % 8 != 0);
    return vhu_refuse(r, -EINVAL,
                      "log of %" PRIu64 " bytes covers %s of guest memory (%" PRIu64
                      " pages); the memory table reaches 0x%" PRIx64 " (%s): need at least %" PRIu64
                      " bytes",
                      size, covers, have, end, reaches, need_bytes);
}

int vhu_req_set_log_base(struct vhu_req *r)
{
    struct vhu_backend *b = r->b;
    const struct vhu_log *d = &r->m->p.log;
    uint64_t end;
    if (d->mmap_size == 0 || d->mmap_size > DIRTY_LOG_MAX_SIZE)
        return vhu_refuse(r, -EINVAL, "log size %" PRIu64 " (want 1..%llu bytes)", d->mmap_size,
                          DIRTY_LOG_MAX_SIZE);
    if (!vhu_range_end(d->mmap_offset, d->mmap_size, &end) || end > (uint64_t)INT64_MAX)
        return vhu_refuse(r, -EINVAL, "log offset 0x%" PRIx64 " + size 0x%" PRIx64 " overflows",
                          d->mmap_offset, d->mmap_size);
    /* Before the map: a refused log leaves the old one in place. */
    int e = check_covers(r, d->mmap_size);
    if (e < 0)
        return e;
    struct stat st;
    if (fstat(r->m->fds[0], &st) < 0)
        return vhu_refuse(r, -EBADF, "the log fd cannot be examined");
    if (st.st_size < 0 || end > (uint64_t)st.st_size)
        return vhu_refuse(r, -EINVAL,
                          "log offset 0x%" PRIx64 " + size 0x%" PRIx64
                          " runs past the end of its fd (0x%llx bytes)",
                          d->mmap_offset, d->mmap_size, (unsigned long long)st.st_size);
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    uint64_t off = d->mmap_offset & ~(page - 1);
    size_t len = (size_t)(d->mmap_offset - off + d->mmap_size);
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, r->m->fds[0], (off_t)off);
    if (p == MAP_FAILED)
        return vhu_refuse(r, -errno, "mmap of the log (%zu bytes): %s", len, vhu_strerror(-errno));
    /* Rings that log are paused around the switch: none keeps writing into
     * the old map, which is dropped only after the new one is in place. */
    bool was[VHU_MAX_QUEUES];
    vhu_backend_pause(b, was);
    struct vhu_dirty_log old = b->log;
    b->log.map = p;
    b->log.map_len = len;
    b->log.bits = (uint8_t *)p + (d->mmap_offset - off);
    b->log.size = d->mmap_size;
    atomic_store(&b->log.overflow_logged, false);
    vhu_backend_resume(b, was);
    vhu_dirty_log_unmap(&old);
    r->rep->p.u64 = 0; /* QEMU waits for this reply */
    return 0;
}

int vhu_req_set_log_fd(struct vhu_req *r)
{
    struct vhu_backend *b = r->b;
    int fd = r->m->fds[0];
    r->m->fds[0] = -1;
    vhu_close_fd(&b->log_fd);
    b->log_fd = fd;
    return 0;
}

/* Set the bits for [gpa, gpa+len).  Called from ring threads.
 *
 * A write the log cannot mark - no log at all, or one that ends before the
 * page - fails loudly: the ring's err eventfd and an error line (one per
 * log change or LOG_ALL switch-on), never a silent drop, since the page
 * would not migrate.  Both happen with a correct front-end: QEMU's
 * vhost_dev_start, when a device starts during migration, sends SET_FEATURES
 * with LOG_ALL, SET_MEM_TABLE and starts the rings before SET_LOG_BASE, and
 * a table may grow past the current log until the covering log arrives.
 * The data is already written and cannot be taken back; the error is what
 * tells QEMU (it reports the vring error) that this migration may miss a
 * page. */
static void mark_dirty(struct vhu_vring *q, uint64_t gpa, uint64_t len)
{
    struct vhu_dirty_log *l = &q->b->log;
    if (!len)
        return;
    uint64_t last;
    if (!l->bits || !vhu_range_end(gpa, len - 1, &last) || last / DIRTY_PAGE / 8 >= l->size) {
        /* Never a write past the map; QEMU must learn the page is not marked. */
        if (!atomic_exchange(&l->overflow_logged, true)) {
            if (!l->bits)
                vhu_err("dirty log: write at guest 0x%" PRIx64 "+%" PRIu64 " while logging is "
                        "on but no log was given (SET_LOG_BASE); migration would miss it",
                        gpa, len);
            else
                vhu_err("dirty log: write at guest 0x%" PRIx64 "+%" PRIu64 " is beyond the %" PRIu64
                        "-byte log; migration would miss it",
                        gpa, len, l->size);
        }
        vhu_vring_signal_error(q);
        return;
    }
    /* Release: the data is visible before QEMU can see the bit. */
    for (uint64_t page = gpa / DIRTY_PAGE; page <= last / DIRTY_PAGE; page++)
        __atomic_fetch_or(&l->bits[page / 8], (uint8_t)(1u << (page % 8)), __ATOMIC_RELEASE);
}

void vhu_vring_log_write(struct vhu_vring *q, uint64_t gpa, uint64_t len)
{
    if (atomic_load_explicit(&q->b->logging, memory_order_relaxed))
        mark_dirty(q, gpa, len);
}

void vhu_vring_log_used(struct vhu_vring *q, uint64_t offset, uint64_t len)
{
    uint64_t gpa;
    if (!q->log_used || !atomic_load_explicit(&q->b->logging, memory_order_relaxed))
        return;
    if (!vhu_range_end(q->addr.log_guest_addr, offset, &gpa)) {
        vhu_vring_signal_error(q);
        return;
    }
    mark_dirty(q, gpa, len);
}

/* A packed ring's writes (packed.c) are marked by the guest addresses of
 * the descriptor ring and the device area, whatever log_guest_addr says,
 * whenever logging is on: QEMU points log_guest_addr at the device area,
 * which does not cover the descriptors the device writes. */
void vhu_vring_log_desc(struct vhu_vring *q, uint64_t offset, uint64_t len)
{
    if (atomic_load_explicit(&q->b->logging, memory_order_relaxed))
        mark_dirty(q, q->desc_gpa + offset, len);
}

void vhu_vring_log_device_area(struct vhu_vring *q, uint64_t offset, uint64_t len)
{
    if (atomic_load_explicit(&q->b->logging, memory_order_relaxed))
        mark_dirty(q, q->used_gpa + offset, len);
}

bool vhu_vring_logging(const struct vhu_vring *q)
{
    return atomic_load_explicit(&q->b->logging, memory_order_relaxed);
}
