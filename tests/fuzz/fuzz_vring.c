/* SPDX-License-Identifier: BSD-3-Clause */
/* libFuzzer target: the virtqueue layer (src/vring) walking descriptor
 * chains in hostile guest memory.
 *
 * The input is a guest: a memory region whose bytes (descriptor table,
 * avail and used rings, indirect tables, buffers) come from the input, a
 * ring size and indices, ring placement, optional dirty log and inflight
 * region (also from the input), and a script of device and driver actions
 * (pop and walk every buffer, push, flush, enable_kick, the driver
 * publishing heads or rewriting bytes between two pops, the front-end
 * disabling and enabling the ring).  The ring is placed
 * with the back-end's own check (vhu_vring_translate) and recovered with its
 * own inflight start, as a real ring start does.
 *
 * Guest memory is three separate heap blocks (ASan catches a read or write
 * past any of them): region 0 at GPA 0 holding the rings, a page at GPA
 * 0x100000, and a page just below the top of the 64-bit address space.
 * Beyond ASan, the target checks that every popped buffer lies inside one
 * region, the byte counts add up, and that a broken ring is never written
 * again.
 *
 * Input: a 24-byte header
 *   u8 size_log2 (ring size 1 << (v % 11)), u8 flags, u8 pages (region 0 is
 *   1 + v % 32 pages), u8 log_bytes (dirty bitmap size; 0: none),
 *   u16 last_avail, u16 n_ops, u32 desc_off, u32 avail_off, u32 used_off
 *   (offsets of the rings in region 0), u8 fill (of the other regions),
 *   u8 inflight_shift, u16 used_base (packed rings: used position and wrap
 *   counter, bit 15);
 * then n_ops 6-byte operations [op, a, b, c, d, e], then region 0's bytes,
 * then the inflight region's bytes; what is missing reads as zeroes.
 * Flags: 1 EVENT_IDX, 2 INDIRECT_DESC, 4 logging on (log_bytes 0: with no
 * log), 8 log the used ring, 16 inflight region, 32 a call eventfd, 64 a
 * packed ring (RING_PACKED: desc_off is the descriptor ring, avail_off and
 * used_off the driver's and the device's event areas; last_avail and
 * used_base are positions modulo the ring size plus their wrap counters,
 * as SET_VRING_BASE gives them, and "publish" makes descriptors available
 * instead of writing avail entries).
 *
 * With VHU_FUZZ_VRING_PACKED=1 in the environment every input is a packed
 * ring (flag 64 forced on): a long run spends all its executions on
 * packed.c.  A finding of such a run reproduces without the variable once
 * bit 6 of the input's byte 1 is set. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <vhu/vhu.h>
#include <vhu/vring.h>

#include "backend/backend_internal.h"

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define HDR 24
#define OP_SIZE 6
#define MAX_OPS 512
#define SLOTS 4
#define PAGE 4096u
#define NREG 3
#define POP_BUDGET 4096u

#define UVA0 0x7f0000000000ull
static const uint64_t reg_gpa[NREG] = {0, 0x100000, 0xffffffffffffe000ull};
static const uint64_t reg_uva[NREG] = {UVA0, UVA0 + 0x100000, UVA0 + 0x200000};

static struct vhu_vring_elem elems[SLOTS], drain;
static int call_fd = -1;
static bool verbose;
static bool force_packed; /* VHU_FUZZ_VRING_PACKED=1 */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    verbose = fuzz_log_init();
    const char *fp = getenv("VHU_FUZZ_VRING_PACKED");
    force_packed = fp && strcmp(fp, "1") == 0;
    if (force_packed)
        fprintf(stderr, "fuzz_vring: VHU_FUZZ_VRING_PACKED=1: every input is a packed ring\n");
    call_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (call_fd < 0)
        abort();
    return 0;
}

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_vring: %s\n", what);
    abort();
}

struct guest {
    struct vhu_region r[NREG];
    size_t r0_size;
};

/* Is [p, p+len) inside one region, at the GPA it was translated from? */
static bool in_region(const struct guest *g, const void *p, size_t len, uint64_t gpa)
{
    for (unsigned i = 0; i < NREG; i++) {
        const struct vhu_region *r = &g->r[i];
        const uint8_t *q = p;
        if (q >= r->host && q < r->host + r->size && len <= (size_t)(r->host + r->size - q))
            return gpa - r->gpa == (uint64_t)(q - r->host);
    }
    return false;
}

/* Read every byte the device may read, write every byte it may write. */
static void walk(const struct guest *g, const struct vhu_vring_elem *e, unsigned ring_size)
{
    if (e->head >= ring_size)
        fail("popped head out of range");
    unsigned n = e->n_out + e->n_in;
    if (n == 0 || n > VHU_VRING_MAX_SEGS)
        fail("popped chain with no or too many buffers");
    uint64_t out = 0, in = 0;
    volatile uint8_t sink = 0;
    for (unsigned i = 0; i < n; i++) {
        const struct iovec *v = &e->iov[i];
        if (v->iov_len == 0 || !in_region(g, v->iov_base, v->iov_len, e->gpa[i]))
            fail("popped buffer outside guest memory");
        if (i < e->n_out) {
            out += v->iov_len;
            const uint8_t *p = v->iov_base;
            sink ^= p[0];
            sink ^= p[v->iov_len - 1];
        } else {
            in += v->iov_len;
            memset(v->iov_base, 0x5a, v->iov_len);
        }
    }
    (void)sink;
    if (out != e->out_bytes || in != e->in_bytes)
        fail("popped byte counts do not add up");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < HDR)
        return 0;
    const uint8_t *h = data;
    unsigned ring_size = 1u << (h[0] % 11);
    uint8_t flags = (uint8_t)(h[1] | (force_packed ? 64 : 0));
    size_t r0_size = PAGE * (1u + h[2] % 32);
    unsigned log_bytes = h[3];
    uint16_t last_avail = fuzz_le16(h + 4);
    unsigned n_ops = fuzz_le16(h + 6) % (MAX_OPS + 1);
    uint32_t desc_off = fuzz_le32(h + 8), avail_off = fuzz_le32(h + 12),
             used_off = fuzz_le32(h + 16);
    uint8_t fill = h[20];
    unsigned if_shift = h[21] % 3;
    bool packed = flags & 64;
    uint16_t used_base = fuzz_le16(h + 22);
    if (packed) {
        /* Positions below the ring size, as SET_VRING_BASE makes sure. */
        last_avail = (uint16_t)((last_avail & 0x8000) | ((last_avail & 0x7fff) % ring_size));
        used_base = (uint16_t)((used_base & 0x8000) | ((used_base & 0x7fff) % ring_size));
    }
    data += HDR;
    size -= HDR;
    const uint8_t *ops = data;
    if (n_ops > size / OP_SIZE)
        n_ops = (unsigned)(size / OP_SIZE);
    data += (size_t)n_ops * OP_SIZE;
    size -= (size_t)n_ops * OP_SIZE;

    /* Guest memory. */
    struct guest g;
    memset(&g, 0, sizeof(g));
    g.r0_size = r0_size;
    for (unsigned i = 0; i < NREG; i++) {
        size_t len = i == 0 ? r0_size : PAGE;
        uint8_t *p = aligned_alloc(PAGE, len);
        if (!p)
            abort();
        memset(p, i == 0 ? 0 : fill, len);
        g.r[i] = (struct vhu_region){.gpa = reg_gpa[i],
                                     .size = len,
                                     .uva = reg_uva[i],
                                     .host = p,
                                     .map = NULL,
                                     .map_len = 0};
    }
    size_t take = size < r0_size ? size : r0_size;
    memcpy(g.r[0].host, data, take);
    data += take;
    size -= take;

    /* A back-end with just what the ring layer uses. */
    struct vhu_backend fb;
    memset(&fb, 0, sizeof(fb));
    fb.mem = (struct vhu_mem){.n = NREG, .cap = NREG, .r = g.r};
    atomic_init(&fb.logging, false);
    atomic_init(&fb.log.overflow_logged, false);
    uint8_t *log_bits = NULL;
    if (log_bytes) {
        log_bits = calloc(1, log_bytes);
        if (!log_bits)
            abort();
        fb.log.bits = log_bits;
        fb.log.size = log_bytes;
    }
    /* Logging may be on with no log (QEMU starts rings before SET_LOG_BASE). */
    atomic_store(&fb.logging, (flags & 4) != 0);
    uint8_t *inflight = NULL;
    unsigned if_qs = ring_size << if_shift;
    if ((flags & 16) && if_qs <= 32768) {
        size_t len = (16u + 16u * if_qs + 63u) & ~(size_t)63;
        inflight = aligned_alloc(64, len);
        if (!inflight)
            abort();
        memset(inflight, 0, len);
        memcpy(inflight, data, size < len ? size : len);
        fb.inflight = (struct vhu_inflight_region){
            .base = inflight, .num_queues = 1, .queue_size = (uint16_t)if_qs, .region = len};
    }

    struct vhu_vring q;
    vhu_vring_init(&q, &fb, 0);
    q.num = ring_size;
    q.last_avail = last_avail;
    q.addr.desc_user_addr = UVA0 + desc_off;
    q.addr.avail_user_addr = UVA0 + avail_off;
    q.addr.used_user_addr = UVA0 + used_off;
    q.addr.log_guest_addr = used_off;
    q.log_used = (flags & 8) != 0;
    q.features = VHU_BIT(VHU_F_VERSION_1);
    if (flags & 1)
        q.features |= VHU_BIT(VHU_F_RING_EVENT_IDX);
    if (flags & 2)
        q.features |= VHU_BIT(VHU_F_RING_INDIRECT_DESC);
    if (flags & 32)
        q.call_fd = call_fd;
    if (packed) {
        q.features |= VHU_BIT(VHU_F_RING_PACKED);
        q.packed_used = used_base;
        q.base_set = true;
    }
    atomic_store(&q.enabled, true); /* as SET_VRING_ENABLE 1 leaves it */

    char why[256];
    struct vhu_vring_io *vq = NULL;
    if (vhu_vring_translate(&q, &fb.mem, &q.addr, q.num, q.features, true, why, sizeof(why)) < 0) {
        if (verbose)
            fprintf(stderr, "fuzz_vring: %s\n", why);
        goto out;
    }
    if (vhu_inflight_start(&q, why, sizeof(why)) < 0) {
        if (verbose)
            fprintf(stderr, "fuzz_vring: %s\n", why);
        goto out;
    }
    if (vhu_vring_io_new(&vq, &q) < 0)
        abort();

    bool busy[SLOTS] = {false};
    unsigned popped = 0, pops = 0, chains = 0;
    uint8_t *snap = NULL; /* region 0 when the ring broke */
    for (unsigned k = 0; k < n_ops; k++) {
        const uint8_t *o = ops + (size_t)k * OP_SIZE;
        bool was_broken = vhu_vring_io_broken(vq);
        int r;
        switch (o[0] % 8) {
        case 0: { /* pop into a free slot, walk its buffers */
            unsigned s = o[1] % SLOTS;
            if (busy[s] || pops++ >= POP_BUDGET)
                break;
            r = vhu_vring_io_pop(vq, &elems[s]);
            if (r == 1 && !atomic_load(&q.enabled))
                fail("a disabled ring gave a chain");
            if (r == 1) {
                walk(&g, &elems[s], ring_size);
                chains++;
                busy[s] = true;
                popped++;
            } else if (r != 0 && !(r == -EIO && vhu_vring_io_broken(vq))) {
                fail("pop: unexpected result");
            }
            break;
        }
        case 1: { /* push a popped chain */
            unsigned s = o[1] % SLOTS;
            if (!busy[s])
                break;
            uint32_t w = fuzz_le16(o + 2);
            if (w > elems[s].in_bytes)
                w = (uint32_t)elems[s].in_bytes;
            r = vhu_vring_io_push(vq, &elems[s], w);
            if (r < 0 && !(r == -EIO && vhu_vring_io_broken(vq)))
                fail("push of a popped chain failed");
            busy[s] = false;
            popped--;
            break;
        }
        case 2:
            r = vhu_vring_io_flush(vq);
            if (r < 0 && !vhu_vring_io_broken(vq))
                fail("flush failed on a healthy ring");
            break;
        case 3: vhu_vring_io_enable_kick(vq); break;
        case 4: { /* the driver rewrites two bytes anywhere in region 0 */
            if (was_broken)
                break;
            size_t at = (o[1] | (size_t)o[2] << 8 | (size_t)o[3] << 16) % r0_size;
            g.r[0].host[at] = o[4];
            if (at + 1 < r0_size)
                g.r[0].host[at + 1] = o[5];
            break;
        }
        case 5: { /* the driver publishes heads */
            if (was_broken)
                break;
            if (packed) {
                /* Descriptors from position a made available for the lap
                 * of e's bit 0 (or not, by its bit 1), flags NEXT, WRITE,
                 * INDIRECT from d, IDs from c. */
                struct {
                    uint64_t addr;
                    uint32_t len;
                    uint16_t id, flags;
                } *ring = vhu_vring_desc(&q);
                unsigned n = 1 + o[3] % 4;
                for (unsigned j = 0; j < n; j++) {
                    unsigned pos = (fuzz_le16(o + 1) + j) % ring_size;
                    bool w = o[5] & 1;
                    uint16_t f = (uint16_t)((o[4] & 7) | (w ? 1u << 7 : 1u << 15));
                    if (o[5] & 2)
                        f ^= (1u << 7);
                    ring[pos].id = (uint16_t)(o[3] + j);
                    __atomic_store_n(&ring[pos].flags, f, __ATOMIC_RELEASE);
                }
                break;
            }
            uint16_t *avail = vhu_vring_avail(&q);
            unsigned n = 1 + o[3] % 4;
            for (unsigned j = 0; j < n; j++) {
                uint16_t idx = __atomic_load_n(&avail[1], __ATOMIC_RELAXED);
                avail[2 + (idx & (ring_size - 1))] = (uint16_t)(fuzz_le16(o + 1) + j);
                __atomic_store_n(&avail[1], (uint16_t)(idx + 1), __ATOMIC_RELEASE);
            }
            break;
        }
        case 6: /* a device loop: pop, push and flush until empty */
            for (unsigned j = 0; j < 2 * ring_size && pops < POP_BUDGET; j++, pops++) {
                r = vhu_vring_io_pop(vq, &drain);
                if (r == 0)
                    break;
                if (r != 1) {
                    if (!(r == -EIO && vhu_vring_io_broken(vq)))
                        fail("pop: unexpected result");
                    break;
                }
                walk(&g, &drain, ring_size);
                chains++;
                r = vhu_vring_io_push(vq, &drain,
                                      (uint32_t)(drain.in_bytes > o[2] ? o[2] : drain.in_bytes));
                if (r < 0)
                    fail("push of a popped chain failed");
                if (o[3] & 1)
                    vhu_vring_io_flush(vq);
            }
            vhu_vring_io_flush(vq);
            break;
        default:
            if (o[1] == 0xff)
                vhu_vring_io_set_broken(vq, "the device gave up");
            else if (o[1] == 0xfe) /* SET_VRING_ENABLE 0 or 1: a disabled ring gives nothing */
                atomic_store(&q.enabled, !atomic_load(&q.enabled));
            break;
        }
        if (vhu_vring_io_broken(vq) && !snap) {
            snap = malloc(r0_size);
            if (!snap)
                abort();
            memcpy(snap, g.r[0].host, r0_size);
        }
    }
    if (verbose)
        fprintf(stderr, "fuzz_vring: ring size %u, %u pop calls, %u chains, %u held, %s\n",
                ring_size, pops, chains, popped, vhu_vring_io_broken(vq) ? "broken" : "healthy");
    if (!vhu_vring_io_broken(vq) && vhu_vring_io_inflight(vq) != popped)
        fail("inflight count differs from chains popped and not pushed");
    if (snap) {
        if (memcmp(snap, g.r[0].host, r0_size))
            fail("a broken ring was written");
        free(snap);
    }

out:
    vhu_vring_io_free(vq);
    vhu_inflight_stop(&q);
    q.call_fd = -1;
    pthread_mutex_destroy(&q.sig_lock);
    free(inflight);
    free(log_bits);
    for (unsigned i = 0; i < NREG; i++)
        free(g.r[i].host);
    return 0;
}
