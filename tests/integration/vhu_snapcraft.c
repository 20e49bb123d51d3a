/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu-snapcraft: makes damaged and hostile snapshots for the vhu-state
 * tests (test-vhu-state-damage.sh).  Not installed.
 *
 *   sweep GOOD DIR TRUNC_ALL TRUNC_STRIDE FLIP_STRIDE
 *       DIR/trunc-N: GOOD cut to N bytes, every N below TRUNC_ALL, then every
 *       TRUNC_STRIDE up to its size; DIR/flip-N: byte N inverted, every
 *       FLIP_STRIDE bytes through the whole file.  Prints the file count.
 *   zbomb OUT MIB
 *       a valid header, then a zstd frame of a few KB (raw and RLE blocks
 *       written by hand) whose blob inflates to MIB MiB of zeros.
 *   nestbomb OUT DEPTH
 *       section data with DEPTH maps nested in each other.
 *   headerbomb OUT DEPTH
 *       a header whose unknown key holds DEPTH nested arrays.
 *   setlen GOOD OUT LEN
 *       GOOD with its header length field set to LEN (a header that lies).
 *   patch GOOD OUT FROM TO
 *       GOOD with the first FROM (same length as TO; \xNN escapes allowed)
 *       in its decompressed body replaced by TO, recompressed with a
 *       checksum: a well-formed container around bad content.
 *   gizmo OUT [wrong|baddecl]
 *       a snapshot of device "gizmo", which nothing in vhu knows, written by
 *       the library's writer with its sections' fields declared; with
 *       "wrong", data that breaks three of those declarations; with
 *       "baddecl", a declaration the writer refuses (exit 2, its message). */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <unistd.h>
#include <zstd.h>

#include "state/state_internal.h"

/* fmt holds one "%s", replaced by arg. */
static void die(const char *fmt, const char *arg)
{
    const char *at = strstr(fmt, "%s");
    fprintf(stderr, "vhu-snapcraft: %.*s%s%s\n", at ? (int)(at - fmt) : (int)strlen(fmt), fmt,
            at ? arg : "", at ? at + 2 : "");
    exit(2);
}

static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die("cannot open %s", path);
    size_t cap = 1 << 16, len = 0;
    uint8_t *b = malloc(cap);
    size_t r;
    while (b && (r = fread(b + len, 1, cap - len, f)) > 0) {
        len += r;
        if (len == cap)
            b = realloc(b, cap *= 2);
    }
    fclose(f);
    if (!b)
        die("out of memory reading %s", path);
    *n = len;
    return b;
}

static void spit(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0)
        die("cannot write %s", path);
}

/* ---- a small CBOR writer ---- */
struct buf {
    uint8_t *p;
    size_t n, cap;
};

static void put(struct buf *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 256;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            die("%s", "out of memory");
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void put1(struct buf *b, uint8_t c) { put(b, &c, 1); }

static void head(struct buf *b, unsigned major, uint64_t v)
{
    uint8_t m = (uint8_t)(major << 5);
    if (v < 24) {
        put1(b, m | (uint8_t)v);
    } else if (v < 256) {
        put1(b, m | 24);
        put1(b, (uint8_t)v);
    } else if (v < 65536) {
        put1(b, m | 25);
        put1(b, (uint8_t)(v >> 8));
        put1(b, (uint8_t)v);
    } else {
        put1(b, m | 26);
        for (int i = 3; i >= 0; i--)
            put1(b, (uint8_t)(v >> (8 * i)));
    }
}

static void text(struct buf *b, const char *s)
{
    head(b, 3, strlen(s));
    put(b, s, strlen(s));
}

/* The container's first part: skippable frame with the header. */
static void container_header(struct buf *out, const struct buf *hdr)
{
    uint32_t magic = 0x184D2A56u, len = (uint32_t)(8 + hdr->n);
    put(out, &magic, 4);
    put(out, &len, 4);
    put(out, "VHUSTATE", 8);
    put(out, hdr->p, hdr->n);
}

/* A header listing one section. */
static void one_section_header(struct buf *h, const char *name)
{
    head(h, 5, 4);
    text(h, "format");
    head(h, 0, 1);
    text(h, "device");
    text(h, "testdev");
    text(h, "producer");
    text(h, "vhu-snapcraft");
    text(h, "sections");
    head(h, 4, 1);
    head(h, 5, 4);
    text(h, "name");
    text(h, name);
    text(h, "version");
    head(h, 0, 1);
    text(h, "min_version");
    head(h, 0, 1);
    text(h, "optional");
    put1(h, 0xf4);
}

/* The records up to the inside of the section's data map. */
static void records_start(struct buf *c, const char *name)
{
    head(c, 5, 1);
    text(c, "handler");
    head(c, 5, 3);
    text(c, "features");
    head(c, 0, 0);
    text(c, "protocol_features");
    head(c, 0, 0);
    text(c, "queues");
    head(c, 4, 0);
    head(c, 5, 1);
    text(c, "section");
    head(c, 5, 5);
    text(c, "name");
    text(c, name);
    text(c, "version");
    head(c, 0, 1);
    text(c, "min_version");
    head(c, 0, 1);
    text(c, "optional");
    put1(c, 0xf4);
    text(c, "data");
    put1(c, 0xbf);
}

static void records_end(struct buf *c)
{
    put1(c, 0xff); /* the data map */
    head(c, 5, 1);
    text(c, "end");
    head(c, 5, 1);
    text(c, "sections");
    head(c, 0, 1);
}

/* ---- a zstd frame by hand: raw and RLE blocks, no checksum ---- */
static void zframe_begin(struct buf *z)
{
    uint32_t magic = 0xFD2FB528u;
    put(z, &magic, 4);
    put1(z, 0x00);    /* no content size, not single segment, no checksum */
    put1(z, 7u << 3); /* window 2^(10+7) = 128 KiB */
}

static void zblock(struct buf *z, unsigned type, bool last, uint32_t size)
{
    uint32_t h = size << 3 | type << 1 | (last ? 1u : 0u);
    put1(z, (uint8_t)h);
    put1(z, (uint8_t)(h >> 8));
    put1(z, (uint8_t)(h >> 16));
}

static void zraw(struct buf *z, const uint8_t *p, size_t n, bool last)
{
    while (n || last) {
        size_t c = n < (128u << 10) ? n : (128u << 10);
        zblock(z, 0, last && c == n, (uint32_t)c);
        put(z, p, c);
        p += c;
        n -= c;
        if (n == 0)
            break;
    }
}

static void zbomb(const char *out, unsigned long mib)
{
    struct buf h = {0}, o = {0}, c = {0};
    one_section_header(&h, "blob");
    container_header(&o, &h);
    records_start(&c, "blob");
    text(&c, "length");
    head(&c, 0, 0);
    text(&c, "data");
    put1(&c, 0x5f);
    zframe_begin(&o);
    zraw(&o, c.p, c.n, false);
    for (unsigned long m = 0; m < mib; m++) {
        uint8_t chunk_head[5] = {0x5a, 0x00, 0x10, 0x00, 0x00}; /* 1 MiB byte string */
        zraw(&o, chunk_head, 5, false);
        for (int k = 0; k < 8; k++) {
            zblock(&o, 1, false, 128u << 10);
            put1(&o, 0);
        }
    }
    struct buf t = {0};
    put1(&t, 0xff); /* the blob */
    records_end(&t);
    zraw(&o, t.p, t.n, true);
    spit(out, o.p, o.n);
    printf("%zu bytes inflating to %lu MiB\n", o.n, mib);
    free(h.p);
    free(o.p);
    free(c.p);
    free(t.p);
}

static void nestbomb(const char *out, unsigned long depth)
{
    struct buf h = {0}, o = {0}, c = {0};
    one_section_header(&h, "config");
    container_header(&o, &h);
    records_start(&c, "config");
    for (unsigned long i = 0; i < depth; i++) {
        text(&c, "a");
        put1(&c, 0xbf);
    }
    for (unsigned long i = 0; i < depth; i++)
        put1(&c, 0xff);
    records_end(&c);
    zframe_begin(&o);
    zraw(&o, c.p, c.n, true);
    spit(out, o.p, o.n);
    free(h.p);
    free(o.p);
    free(c.p);
}

static void headerbomb(const char *out, unsigned long depth)
{
    struct buf h = {0}, o = {0};
    head(&h, 5, 5);
    text(&h, "format");
    head(&h, 0, 1);
    text(&h, "device");
    text(&h, "testdev");
    text(&h, "producer");
    text(&h, "vhu-snapcraft");
    text(&h, "sections");
    head(&h, 4, 0);
    text(&h, "x");
    for (unsigned long i = 0; i < depth; i++)
        put1(&h, 0x81);
    put1(&h, 0);
    container_header(&o, &h);
    struct buf c = {0};
    head(&c, 5, 1);
    text(&c, "end");
    head(&c, 5, 1);
    text(&c, "sections");
    head(&c, 0, 0);
    zframe_begin(&o);
    zraw(&o, c.p, c.n, true);
    spit(out, o.p, o.n);
    free(h.p);
    free(o.p);
    free(c.p);
}

static void sweep(const char *good, const char *dir, unsigned long all, unsigned long stride,
                  unsigned long fstride)
{
    size_t n;
    uint8_t *b = slurp(good, &n);
    char path[4096];
    unsigned long count = 0;
    for (size_t cut = 0; cut < n; cut += cut < all ? 1 : stride) {
        snprintf(path, sizeof(path), "%s/trunc-%zu", dir, cut);
        spit(path, b, cut);
        count++;
    }
    for (size_t at = 0; at < n; at += fstride) {
        b[at] ^= 0xff;
        snprintf(path, sizeof(path), "%s/flip-%zu", dir, at);
        spit(path, b, n);
        b[at] ^= 0xff;
        count++;
    }
    printf("%lu\n", count);
    free(b);
}

static void setlen(const char *good, const char *out, unsigned long len)
{
    size_t n;
    uint8_t *b = slurp(good, &n);
    uint32_t l = (uint32_t)len;
    if (n < 8)
        die("%s is too short", good);
    memcpy(b + 4, &l, 4);
    spit(out, b, n);
    free(b);
}

/* "\xNN" escapes into bytes. */
static size_t unescape(const char *s, uint8_t *out)
{
    size_t n = 0;
    while (*s) {
        if (s[0] == '\\' && s[1] == 'x' && s[2] && s[3]) {
            char hex[3] = {s[2], s[3], 0};
            out[n++] = (uint8_t)strtoul(hex, NULL, 16);
            s += 4;
        } else {
            out[n++] = (uint8_t)*s++;
        }
    }
    return n;
}

static void patch(const char *good, const char *out, const char *from, const char *to)
{
    size_t n;
    uint8_t *b = slurp(good, &n);
    uint32_t hl;
    memcpy(&hl, b + 4, 4);
    size_t hdr = 8 + hl;
    if (hdr > n)
        die("%s: bad header length", good);
    uint8_t f[256], t[256];
    size_t fn = unescape(from, f), tn = unescape(to, t);
    if (fn != tn || fn == 0 || strlen(from) > 255 || strlen(to) > 255)
        die("%s", "FROM and TO must be as long as each other");
    size_t cap = 64u << 20;
    uint8_t *raw = malloc(cap);
    ZSTD_DCtx *d = ZSTD_createDCtx();
    ZSTD_inBuffer ib = {b + hdr, n - hdr, 0};
    ZSTD_outBuffer ob = {raw, cap, 0};
    size_t r = ZSTD_decompressStream(d, &ob, &ib);
    if (ZSTD_isError(r) || r != 0)
        die("%s: cannot decompress the body", good);
    ZSTD_freeDCtx(d);
    uint8_t *hit = memmem(raw, ob.pos, f, fn);
    if (!hit)
        die("'%s' is not in the body", from);
    memcpy(hit, t, tn);
    ZSTD_CCtx *c = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
    size_t bound = ZSTD_compressBound(ob.pos);
    uint8_t *o = malloc(hdr + bound);
    memcpy(o, b, hdr);
    size_t cn = ZSTD_compress2(c, o + hdr, bound, raw, ob.pos);
    if (ZSTD_isError(cn))
        die("%s", "cannot compress");
    ZSTD_freeCCtx(c);
    spit(out, o, hdr + cn);
    free(o);
    free(raw);
    free(b);
}

/* Device "gizmo": sections and fields vhu-state has never heard of. */
static const struct vhu_state_field motor_fields[] = {
    {.key = "rpm",
     .type = VHU_STATE_UINT,
     .since = 1,
     .max = 20000,
     .meaning = "revolutions per minute"},
    {.key = "direction", .type = VHU_STATE_TEXT, .since = 1, .max = 8},
    {.key = "trim", .type = VHU_STATE_INT, .since = 2, .meaning = "signed offset"},
    {.key = "cal_len", .type = VHU_STATE_UINT, .since = 3},
    {.key = "calibration", .type = VHU_STATE_BYTES, .since = 3, .len_from = "cal_len"},
    {.key = "zones",
     .type = VHU_STATE_MAP,
     .since = 3,
     .each = VHU_STATE_BOOL,
     .key_prefix = "z",
     .meaning = "armed, per zone"},
    {0},
};
static const struct vhu_state_field log_fields[] = {
    {.key = "lines", .type = VHU_STATE_UINT, .since = 1},
    {.key = "last", .type = VHU_STATE_TEXT, .since = 1, .meaning = "the newest line"},
    {0},
};
static const struct vhu_state_field bad_log_fields[] = {
    {.key = "lines", .type = VHU_STATE_UINT, .since = 1},
    {.key = "", .type = VHU_STATE_TEXT, .since = 1},
    {0},
};
static const struct vhu_state_section gizmo_sections[] = {
    {.name = "motor", .version = 3, .min_version = 2, .fields = motor_fields},
    {.name = "log", .version = 1, .min_version = 1, .optional = true, .fields = log_fields},
    {.name = "log", .version = 1, .min_version = 1, .optional = true, .fields = bad_log_fields},
};

static void gizmo(const char *out, bool wrong, bool baddecl)
{
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        die("cannot write %s", out);
    struct vhu_snap_header *h = calloc(1, sizeof(*h));
    struct vhu_snap_handler *hd = calloc(1, sizeof(*hd));
    struct vhu_state_writer *w = vhu_snap_writer_new(fd, -1, 3, 0, NULL);
    if (!h || !hd || !w)
        die("%s", "out of memory");
    h->format = 1;
    strcpy(h->device, "gizmo");
    strcpy(h->producer, "vhu-snapcraft");
    h->nsections = 2;
    for (unsigned i = 0; i < 2; i++) {
        strcpy(h->sections[i].name, gizmo_sections[i].name);
        h->sections[i].version = gizmo_sections[i].version;
        h->sections[i].min_version = gizmo_sections[i].min_version;
        h->sections[i].optional = gizmo_sections[i].optional;
    }
    hd->nqueues = 1;
    hd->queues[0].size = 256;
    static const uint8_t cal[6] = {1, 2, 3, 4, 5, 6};
    vhu_snap_write_header(w, h);
    vhu_snap_write_handler(w, hd);
    vhu_snap_section_begin(w, &gizmo_sections[0]);
    vhu_state_put_u64(w, "rpm", wrong ? 30000 : 1200);
    vhu_state_put_str(w, "direction", "forward");
    vhu_state_put_i64(w, "trim", -7);
    vhu_state_put_u64(w, "cal_len", 6);
    vhu_state_put_bytes(w, "calibration", cal, wrong ? 5 : 6);
    vhu_state_map_begin(w, "zones");
    vhu_state_put_bool(w, "z0", true);
    vhu_state_put_bool(w, wrong ? "zoneA" : "z1", false);
    vhu_state_map_end(w);
    vhu_snap_section_end(w);
    vhu_snap_section_begin(w, &gizmo_sections[baddecl ? 2 : 1]);
    vhu_state_put_u64(w, "lines", 2);
    vhu_state_put_str(w, "last", "spun up");
    vhu_snap_section_end(w);
    const char *why;
    if (vhu_snap_write_end(w, 2) < 0 || vhu_snap_writer_error(w, &why) < 0)
        die("writing the gizmo snapshot: %s", vhu_snap_writer_error(w, &why) ? why : "?");
    vhu_snap_writer_free(w);
    free(h);
    free(hd);
    close(fd);
}

int main(int argc, char **argv)
{
    if (argc == 7 && strcmp(argv[1], "sweep") == 0)
        sweep(argv[2], argv[3], strtoul(argv[4], NULL, 10), strtoul(argv[5], NULL, 10),
              strtoul(argv[6], NULL, 10));
    else if (argc == 4 && strcmp(argv[1], "zbomb") == 0)
        zbomb(argv[2], strtoul(argv[3], NULL, 10));
    else if (argc == 4 && strcmp(argv[1], "nestbomb") == 0)
        nestbomb(argv[2], strtoul(argv[3], NULL, 10));
    else if (argc == 4 && strcmp(argv[1], "headerbomb") == 0)
        headerbomb(argv[2], strtoul(argv[3], NULL, 10));
    else if (argc == 5 && strcmp(argv[1], "setlen") == 0)
        setlen(argv[2], argv[3], strtoul(argv[4], NULL, 0));
    else if (argc == 6 && strcmp(argv[1], "patch") == 0)
        patch(argv[2], argv[3], argv[4], argv[5]);
    else if (argc >= 3 && argc <= 4 && strcmp(argv[1], "gizmo") == 0 &&
             (argc == 3 || strcmp(argv[3], "wrong") == 0 || strcmp(argv[3], "baddecl") == 0))
        gizmo(argv[2], argc == 4 && argv[3][0] == 'w', argc == 4 && argv[3][0] == 'b');
    else
        die("%s", "usage: see the comment at the top of vhu_snapcraft.c");
    return 0;
}
