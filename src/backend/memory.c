/* SPDX-License-Identifier: BSD-3-Clause */
/* Guest memory: regions mapped from the front-end's fds, and translation of
 * guest-physical and front-end virtual addresses to host pointers.  Every
 * translation checks the whole range, with overflow-safe arithmetic. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend_internal.h"

int vhu_mem_region_check(const struct vhu_mem_region *d, char *why, size_t n)
{
    uint64_t end;
    if (d->memory_size == 0) {
        snprintf(why, n, "region at guest 0x%llx has size 0",
                 (unsigned long long)d->guest_phys_addr);
        return -EINVAL;
    }
    if (!vhu_range_end(d->guest_phys_addr, d->memory_size, &end)) {
        snprintf(why, n, "region guest 0x%llx + size 0x%llx wraps",
                 (unsigned long long)d->guest_phys_addr, (unsigned long long)d->memory_size);
        return -EINVAL;
    }
    if (!vhu_range_end(d->userspace_addr, d->memory_size, &end)) {
        snprintf(why, n, "region user address 0x%llx + size 0x%llx wraps",
                 (unsigned long long)d->userspace_addr, (unsigned long long)d->memory_size);
        return -EINVAL;
    }
    if (!vhu_range_end(d->mmap_offset, d->memory_size, &end) || end > (uint64_t)INT64_MAX) {
        snprintf(why, n, "region mmap_offset 0x%llx + size 0x%llx overflows",
                 (unsigned long long)d->mmap_offset, (unsigned long long)d->memory_size);
        return -EINVAL;
    }
    return 0;
}

/* [a, a+alen) and [b, b+blen) intersect; both are known not to wrap. */
static bool overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + alen;
}

int vhu_mem_check_overlap(const struct vhu_mem *mem, const struct vhu_mem_region *d, char *why,
                          size_t n)
{
    for (unsigned i = 0; i < mem->n; i++) {
        const struct vhu_region *r = &mem->r[i];
        if (overlap(d->guest_phys_addr, d->memory_size, r->gpa, r->size)) {
            snprintf(why, n, "region guest 0x%llx+0x%llx overlaps region guest 0x%llx+0x%llx",
                     (unsigned long long)d->guest_phys_addr, (unsigned long long)d->memory_size,
                     (unsigned long long)r->gpa, (unsigned long long)r->size);
            return -EINVAL;
        }
        if (overlap(d->userspace_addr, d->memory_size, r->uva, r->size)) {
            snprintf(why, n, "region user 0x%llx+0x%llx overlaps region user 0x%llx+0x%llx",
                     (unsigned long long)d->userspace_addr, (unsigned long long)d->memory_size,
                     (unsigned long long)r->uva, (unsigned long long)r->size);
            return -EINVAL;
        }
    }
    return 0;
}

int vhu_mem_map(const struct vhu_mem_region *d, int fd, struct vhu_region *out, char *why, size_t n)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = -errno;
        snprintf(why, n, "fstat of region fd: %s", vhu_strerror(e));
        return e;
    }
    uint64_t end = d->mmap_offset + d->memory_size; /* checked by vhu_mem_region_check */
    if (st.st_size < 0 || end > (uint64_t)st.st_size) {
        snprintf(why, n,
                 "region mmap_offset 0x%llx + size 0x%llx runs past the end of its fd "
                 "(0x%llx bytes)",
                 (unsigned long long)d->mmap_offset, (unsigned long long)d->memory_size,
                 (unsigned long long)st.st_size);
        return -EINVAL;
    }
    /* Map from an aligned file offset at or below mmap_offset: hugetlbfs
     * needs huge-page alignment (st_blksize), anything else page size. */
    uint64_t align = (uint64_t)sysconf(_SC_PAGESIZE);
    if (vhu_is_pow2((uint64_t)st.st_blksize) && (uint64_t)st.st_blksize > align)
        align = (uint64_t)st.st_blksize;
    uint64_t off = d->mmap_offset & ~(align - 1);
    uint64_t lead = d->mmap_offset - off;
    uint64_t len = lead + d->memory_size;
    if (len > SIZE_MAX) {
        snprintf(why, n, "region size 0x%llx too large to map", (unsigned long long)len);
        return -ENOMEM;
    }
    void *p =
        mmap(NULL, (size_t)len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, (off_t)off);
    if (p == MAP_FAILED) {
        int e = -errno;
        snprintf(why, n, "mmap of 0x%llx bytes at offset 0x%llx: %s", (unsigned long long)len,
                 (unsigned long long)off, vhu_strerror(e));
        return e;
    }
    /* A live snapshot's child (snapshot.c) must not read guest memory, which
     * the guest goes on writing: it does not even inherit the mapping.  Best
     * effort: without it the child still never touches the region. */
    (void)madvise(p, (size_t)len, MADV_DONTFORK);
    out->gpa = d->guest_phys_addr;
    out->size = d->memory_size;
    out->uva = d->userspace_addr;
    out->mmap_offset = d->mmap_offset;
    out->map = p;
    out->map_len = (size_t)len;
    out->host = (uint8_t *)p + lead;
    return 0;
}

void vhu_mem_unmap(struct vhu_region *r)
{
    if (r->map) {
        munmap(r->map, r->map_len);
        r->map = NULL;
        r->host = NULL;
    }
}

int vhu_mem_append(struct vhu_mem *mem, const struct vhu_region *r)
{
    if (mem->n == mem->cap) {
        unsigned cap = mem->cap ? mem->cap * 2 : 8;
        struct vhu_region *nr = realloc(mem->r, cap * sizeof(*nr));
        if (!nr)
            return -ENOMEM;
        mem->r = nr;
        mem->cap = cap;
    }
    mem->r[mem->n++] = *r;
    return 0;
}

void vhu_mem_clear(struct vhu_mem *mem)
{
    for (unsigned i = 0; i < mem->n; i++)
        vhu_mem_unmap(&mem->r[i]);
    free(mem->r);
    memset(mem, 0, sizeof(*mem));
}

uint64_t vhu_mem_end(const struct vhu_mem *mem)
{
    uint64_t end = 0;
    for (unsigned i = 0; i < mem->n; i++)
        if (mem->r[i].gpa + mem->r[i].size > end) /* no wrap: vhu_mem_region_check */
            end = mem->r[i].gpa + mem->r[i].size;
    return end;
}

void *vhu_mem_gpa(const struct vhu_mem *mem, uint64_t gpa, uint64_t len)
{
    for (unsigned i = 0; i < mem->n; i++) {
        const struct vhu_region *r = &mem->r[i];
        if (vhu_range_within(gpa, len, r->gpa, r->size) && gpa - r->gpa < r->size)
            return r->host + (gpa - r->gpa);
    }
    return NULL;
}

bool vhu_mem_uva_to_gpa(const struct vhu_mem *mem, uint64_t uva, uint64_t len, uint64_t *gpa)
{
    for (unsigned i = 0; i < mem->n; i++) {
        const struct vhu_region *r = &mem->r[i];
        if (vhu_range_within(uva, len, r->uva, r->size) && uva - r->uva < r->size) {
            *gpa = r->gpa + (uva - r->uva);
            return true;
        }
    }
    return false;
}

void *vhu_mem_uva(const struct vhu_mem *mem, uint64_t uva, uint64_t len)
{
    for (unsigned i = 0; i < mem->n; i++) {
        const struct vhu_region *r = &mem->r[i];
        if (vhu_range_within(uva, len, r->uva, r->size) && uva - r->uva < r->size)
            return r->host + (uva - r->uva);
    }
    return NULL;
}
