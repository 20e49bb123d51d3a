/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu-state diff: two snapshots compared structurally, field by field, both
 * streamed in lockstep (memory does not grow with their size).
 *
 * Sections are matched by name; fields by key within each map, walking both
 * in order: B's fields passed while looking for A's current key are kept
 * (up to 32 scalars per map) so that a field inserted or removed in the
 * middle costs one report, not a cascade; maps, blobs and byte strings are
 * never held, so one of those passed is reported as added (and A's, if it
 * comes later, as removed).  Blobs and byte strings are compared in pieces
 * and their differences reported as byte ranges. */
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "diff.h"
#include "options.h"

#define PATH_CAP 2048
#define MAX_RANGES 16
#define CMP_BUF (64u << 10)

struct diffctx {
    struct snapin a, b;
    const struct diff_opts *o;
    unsigned ndiff, nnotes;
    char path[PATH_CAP];
    uint8_t *buf_a, *buf_b;
    struct snapin *failed; /* the input that could not be read */
};

static bool ignored(const struct diffctx *d, const char *path)
{
    for (unsigned i = 0; i < d->o->nignore; i++) {
        const char *p = d->o->ignore[i];
        size_t n = strlen(p);
        if (fnmatch(p, path, 0) == 0 ||
            (strncmp(path, p, n) == 0 && (path[n] == '.' || path[n] == '[')))
            return true;
    }
    return false;
}

/* Append ".key" (or "key" at the start) to the path; returns the old length. */
static size_t path_push(struct diffctx *d, const char *key)
{
    size_t n = strlen(d->path);
    snprintf(d->path + n, PATH_CAP - n, "%s%s", n ? "." : "", key);
    return n;
}

static void path_pop(struct diffctx *d, size_t n) { d->path[n] = 0; }

/* ---- reporting ---- */

/* A field's value for the report (maps and blobs by type only). */
static void json_value(const char *key, const struct vhu_snap_field *f)
{
    switch (f->type) {
    case VHU_SNAP_UINT: j_u64(key, f->u); break;
    case VHU_SNAP_NINT:
        if (f->u <= INT64_MAX)
            j_i64(key, -1 - (int64_t)f->u);
        else
            j_str(key, "below -2^63");
        break;
    case VHU_SNAP_BOOL: j_bool(key, f->u); break;
    case VHU_SNAP_TEXT: j_strn(key, f->data, f->len); break;
    default: j_str(key, ftype_name(f->type)); break;
    }
}

static void human_value(const struct vhu_snap_field *f)
{
    switch (f->type) {
    case VHU_SNAP_UINT: printf("%" PRIu64, f->u); break;
    case VHU_SNAP_NINT:
        if (f->u == UINT64_MAX)
            printf("-18446744073709551616");
        else
            printf("-%" PRIu64, f->u + 1);
        break;
    case VHU_SNAP_BOOL: printf("%s", f->u ? "true" : "false"); break;
    case VHU_SNAP_TEXT: h_quoted(stdout, f->data, f->len); break;
    default: printf("(%s)", ftype_name(f->type)); break;
    }
}

/* The start of every report: false when path is ignored; else counted, and
 * with --json the object opened with its path, kind and note flag (the
 * caller adds its fields and closes it). */
static bool rep_begin(struct diffctx *d, bool note, const char *path, const char *kind)
{
    if (ignored(d, path))
        return false;
    if (note)
        d->nnotes++;
    else
        d->ndiff++;
    if (cli.json) {
        j_obj(NULL);
        j_str("path", path);
        j_str("kind", kind);
        if (note)
            j_bool("note", true);
    }
    return true;
}

/* One difference (or a note) about a field: kind is changed, added or
 * removed; fa / fb may be NULL. */
static void rep_field(struct diffctx *d, bool note, const char *kind,
                      const struct vhu_snap_field *fa, const struct vhu_snap_field *fb)
{
    if (!rep_begin(d, note, d->path, kind))
        return;
    if (cli.json) {
        if (fa) {
            j_str("a_type", ftype_name(fa->type));
            json_value("a", fa);
        }
        if (fb) {
            j_str("b_type", ftype_name(fb->type));
            json_value("b", fb);
        }
        j_end();
        return;
    }
    printf("%s%s: %s", note ? "note: " : "", d->path, kind);
    if (fa && fb) {
        printf(": ");
        human_value(fa);
        if (fa->type != fb->type)
            printf(" (%s)", ftype_name(fa->type));
        printf(" -> ");
        human_value(fb);
        if (fa->type != fb->type)
            printf(" (%s)", ftype_name(fb->type));
    } else if (fa || fb) {
        const struct vhu_snap_field *f = fa ? fa : fb;
        printf(" (%s", ftype_name(f->type));
        if (f->type != VHU_SNAP_MAP && f->type != VHU_SNAP_BLOB && f->type != VHU_SNAP_BYTES) {
            printf(" ");
            human_value(f);
        }
        printf(")");
    }
    printf("\n");
}

/* A difference that is not about one field's value: path, kind, and a
 * human text (JSON: "detail"). */
static void rep_text(struct diffctx *d, bool note, const char *path, const char *kind,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void rep_text(struct diffctx *d, bool note, const char *path, const char *kind,
                     const char *fmt, ...)
{
    if (!rep_begin(d, note, path, kind))
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (cli.json) {
        j_str("detail", msg);
        j_end();
        return;
    }
    printf("%s%s: %s\n", note ? "note: " : "", path, msg);
}

static void rep_u64(struct diffctx *d, const char *path, uint64_t a, uint64_t b, bool hex)
{
    if (a == b || !rep_begin(d, false, path, "changed"))
        return;
    if (cli.json) {
        j_str("a_type", "uint");
        j_u64("a", a);
        j_str("b_type", "uint");
        j_u64("b", b);
        j_end();
    } else if (hex) {
        printf("%s: changed: 0x%" PRIx64 " -> 0x%" PRIx64 "\n", path, a, b);
    } else {
        printf("%s: changed: %" PRIu64 " -> %" PRIu64 "\n", path, a, b);
    }
}

static void rep_str(struct diffctx *d, const char *path, const char *a, const char *b)
{
    if (strcmp(a, b) == 0 || !rep_begin(d, false, path, "changed"))
        return;
    if (cli.json) {
        j_str("a_type", "text");
        j_str("a", a);
        j_str("b_type", "text");
        j_str("b", b);
        j_end();
        return;
    }
    printf("%s: changed: ", path);
    h_quoted(stdout, (const uint8_t *)a, strlen(a));
    printf(" -> ");
    h_quoted(stdout, (const uint8_t *)b, strlen(b));
    printf("\n");
}

/* ---- walking ---- */

static int err_of(struct diffctx *d, struct snapin *s)
{
    if (!d->failed)
        d->failed = s;
    return -EIO;
}

static int skip(struct diffctx *d, struct snapin *s, const struct vhu_snap_field *f)
{
    return snapin_skip_value(s, f) < 0 ? err_of(d, s) : 0;
}

/* A byte sequence: a definite byte string (whole in the field) or a blob
 * (read in pieces). */
struct bsrc {
    struct snapin *s;
    const struct vhu_snap_field *f;
    uint8_t *buf;
    const uint8_t *p;
    size_t avail;
    bool done;
    uint64_t total;
};

static int bsrc_fill(struct diffctx *d, struct bsrc *b)
{
    if (b->avail || b->done)
        return 0;
    if (b->f->type == VHU_SNAP_BYTES) {
        if (b->total || !b->f->len) {
            b->done = true;
            return 0;
        }
        b->p = b->f->data;
        b->avail = b->f->len;
        return 0;
    }
    ssize_t n = snapin_blob_read(b->s, b->buf, CMP_BUF);
    if (n < 0)
        return err_of(d, b->s);
    if (n == 0)
        b->done = true;
    b->p = b->buf;
    b->avail = (size_t)n;
    return 0;
}

struct ranges {
    uint64_t r[MAX_RANGES][2];
    unsigned n;
    uint64_t total; /* ranges found (more than stored, maybe) */
    bool open;
    uint64_t start, end;
};

static void range_add(struct ranges *g, uint64_t off)
{
    if (g->open && g->end == off) {
        g->end = off + 1;
        return;
    }
    if (g->open && g->n < MAX_RANGES) {
        g->r[g->n][0] = g->start;
        g->r[g->n][1] = g->end;
        g->n++;
    }
    g->open = true;
    g->total++;
    g->start = off;
    g->end = off + 1;
}

static void range_close(struct ranges *g)
{
    if (g->open && g->n < MAX_RANGES) {
        g->r[g->n][0] = g->start;
        g->r[g->n][1] = g->end;
        g->n++;
    }
    g->open = false;
}

static int diff_bytes(struct diffctx *d, const struct vhu_snap_field *fa,
                      const struct vhu_snap_field *fb)
{
    struct bsrc a = {.s = &d->a, .f = fa, .buf = d->buf_a};
    struct bsrc b = {.s = &d->b, .f = fb, .buf = d->buf_b};
    struct ranges g = {0};
    uint64_t off = 0;
    for (;;) {
        if (bsrc_fill(d, &a) < 0 || bsrc_fill(d, &b) < 0)
            return -EIO;
        if (a.done || b.done)
            break;
        size_t n = a.avail < b.avail ? a.avail : b.avail;
        if (memcmp(a.p, b.p, n) != 0) {
            for (size_t i = 0; i < n; i++)
                if (a.p[i] != b.p[i])
                    range_add(&g, off + i);
        }
        off += n;
        a.p += n, a.avail -= n, a.total += n;
        b.p += n, b.avail -= n, b.total += n;
    }
    /* Count what remains of the longer one. */
    struct bsrc *rest = a.done ? &b : &a;
    while (!rest->done) {
        rest->total += rest->avail;
        rest->avail = 0;
        if (bsrc_fill(d, rest) < 0)
            return -EIO;
    }
    range_close(&g);
    if (a.total != b.total) {
        if (g.n < MAX_RANGES) {
            g.r[g.n][0] = off;
            g.r[g.n][1] = a.total > b.total ? a.total : b.total;
            g.n++;
        }
        g.total++;
    }
    if (!g.total || !rep_begin(d, false, d->path, "bytes"))
        return 0;
    if (cli.json) {
        j_u64("a_size", a.total);
        j_u64("b_size", b.total);
        j_arr("ranges");
        for (unsigned i = 0; i < g.n; i++) {
            j_arr(NULL);
            j_u64(NULL, g.r[i][0]);
            j_u64(NULL, g.r[i][1]);
            j_end();
        }
        j_end();
        j_u64("ranges_total", g.total);
        j_end();
        return 0;
    }
    printf("%s: bytes differ:", d->path);
    for (unsigned i = 0; i < g.n; i++)
        printf("%s %" PRIu64 "..%" PRIu64, i ? "," : "", g.r[i][0], g.r[i][1] - 1);
    if (g.total > g.n)
        printf(" and %" PRIu64 " more ranges", g.total - g.n);
    printf(" (A %" PRIu64 " bytes, B %" PRIu64 " bytes)\n", a.total, b.total);
    return 0;
}

static int diff_map(struct diffctx *d, bool upgraded);

static bool is_bytes(enum vhu_snap_ftype t) { return t == VHU_SNAP_BYTES || t == VHU_SNAP_BLOB; }

/* Report the rest of one side's current map as removed (A) or added (B). */
static int one_sided_rest(struct diffctx *d, struct snapin *s, struct vhu_snap_field *f, bool is_a,
                          bool upgraded)
{
    for (;;) {
        if (f->type == VHU_SNAP_END)
            return 0;
        size_t n = path_push(d, f->key);
        rep_field(d, !is_a && upgraded, is_a ? "removed" : "added", is_a ? f : NULL,
                  is_a ? NULL : f);
        path_pop(d, n);
        if (skip(d, s, f) < 0)
            return -EIO;
        if (snapin_field(s, f) < 0)
            return err_of(d, s);
    }
}

/* B's fields read ahead while looking for A's current key: scalars are
 * kept (bounded) so that a field B inserted, or one A has and B lacks,
 * costs one report, not a cascade; maps, blobs and byte strings cannot be
 * kept and are reported as added when passed. */
#define PEND_MAX 32
struct pend {
    struct vhu_snap_field f;
    uint8_t text[VHU_SNAP_MAX_TEXT];
    bool used;
};

static bool scalar(enum vhu_snap_ftype t)
{
    return t == VHU_SNAP_UINT || t == VHU_SNAP_NINT || t == VHU_SNAP_BOOL || t == VHU_SNAP_TEXT;
}

/* Two fields with the same key (fa from A, fb from B, either possibly
 * kept from earlier): compare, recurse into maps, consume their values. */
static int compare_fields(struct diffctx *d, const struct vhu_snap_field *fa,
                          const struct vhu_snap_field *fb, bool fb_live, bool upgraded)
{
    size_t n = path_push(d, fa->key);
    int e = 0;
    if (fb_live && fa->type == VHU_SNAP_MAP && fb->type == VHU_SNAP_MAP) {
        e = diff_map(d, upgraded);
    } else if (fb_live && is_bytes(fa->type) && is_bytes(fb->type)) {
        e = diff_bytes(d, fa, fb);
    } else if (fa->type != fb->type) {
        rep_field(d, false, "changed", fa, fb);
        if (skip(d, &d->a, fa) < 0 || (fb_live && skip(d, &d->b, fb) < 0))
            e = -EIO;
    } else if (fa->u != fb->u || fa->len != fb->len ||
               (fa->len && memcmp(fa->data, fb->data, fa->len) != 0)) {
        rep_field(d, false, "changed", fa, fb);
    }
    path_pop(d, n);
    return e;
}

static void rep_one(struct diffctx *d, const struct vhu_snap_field *f, bool is_a, bool upgraded)
{
    size_t n = path_push(d, f->key);
    rep_field(d, !is_a && upgraded, is_a ? "removed" : "added", is_a ? f : NULL, is_a ? NULL : f);
    path_pop(d, n);
}

static int diff_map(struct diffctx *d, bool upgraded)
{
    struct vhu_snap_field fa, fb;
    struct pend *pend = malloc(PEND_MAX * sizeof(*pend));
    unsigned npend = 0;
    bool b_end = false;
    int e = 0;
    if (!pend)
        return -ENOMEM;
    for (;;) {
        if (snapin_field(&d->a, &fa) < 0) {
            e = err_of(d, &d->a);
            goto out;
        }
        if (fa.type == VHU_SNAP_END)
            break;
        /* Read ahead already? */
        unsigned i;
        for (i = 0; i < npend; i++)
            if (!pend[i].used && strcmp(pend[i].f.key, fa.key) == 0)
                break;
        if (i < npend) {
            pend[i].used = true;
            if ((e = compare_fields(d, &fa, &pend[i].f, false, upgraded)) < 0)
                goto out;
            continue;
        }
        /* Read B up to the same key, keeping what passes. */
        bool matched = false;
        while (!b_end) {
            if (snapin_field(&d->b, &fb) < 0) {
                e = err_of(d, &d->b);
                goto out;
            }
            if (fb.type == VHU_SNAP_END) {
                b_end = true;
                break;
            }
            if (strcmp(fb.key, fa.key) == 0) {
                matched = true;
                break;
            }
            if (scalar(fb.type) && npend < PEND_MAX) {
                struct pend *p = &pend[npend++];
                p->f = fb;
                p->used = false;
                if (fb.type == VHU_SNAP_TEXT) {
                    memcpy(p->text, fb.data, fb.len);
                    p->f.data = p->text;
                }
                continue;
            }
            rep_one(d, &fb, false, upgraded);
            if (skip(d, &d->b, &fb) < 0) {
                e = -EIO;
                goto out;
            }
        }
        if (matched) {
            if ((e = compare_fields(d, &fa, &fb, true, upgraded)) < 0)
                goto out;
            continue;
        }
        rep_one(d, &fa, true, upgraded);
        if (skip(d, &d->a, &fa) < 0) {
            e = -EIO;
            goto out;
        }
    }
    /* A's map ended: what B has left was added. */
    for (unsigned i = 0; i < npend; i++)
        if (!pend[i].used)
            rep_one(d, &pend[i].f, false, upgraded);
    if (!b_end) {
        if (snapin_field(&d->b, &fb) < 0) {
            e = err_of(d, &d->b);
            goto out;
        }
        e = one_sided_rest(d, &d->b, &fb, false, upgraded);
    }
out:
    free(pend);
    return e;
}

static void diff_handler(struct diffctx *d, const struct vhu_snap_handler *a,
                         const struct vhu_snap_handler *b)
{
    char p[64];
    rep_u64(d, "handler.features", a->features, b->features, true);
    rep_u64(d, "handler.protocol_features", a->protocol_features, b->protocol_features, true);
    rep_u64(d, "handler.version", a->version, b->version, false);
    if (a->nqueues != b->nqueues)
        rep_text(d, false, "handler.queues", "changed", "%u queues -> %u queues", a->nqueues,
                 b->nqueues);
    unsigned n = a->nqueues < b->nqueues ? a->nqueues : b->nqueues;
    for (unsigned i = 0; i < n; i++) {
        const struct vhu_snap_queue *qa = &a->queues[i], *qb = &b->queues[i];
        snprintf(p, sizeof(p), "handler.queues[%u].index", i);
        rep_u64(d, p, qa->index, qb->index, false);
        snprintf(p, sizeof(p), "handler.queues[%u].size", i);
        rep_u64(d, p, qa->size, qb->size, false);
        snprintf(p, sizeof(p), "handler.queues[%u].last_avail", i);
        rep_u64(d, p, qa->last_avail, qb->last_avail, false);
        snprintf(p, sizeof(p), "handler.queues[%u].enabled", i);
        rep_u64(d, p, qa->enabled, qb->enabled, false);
        snprintf(p, sizeof(p), "handler.queues[%u].layout", i);
        rep_str(d, p, vhu_snap_layout_name(qa->layout), vhu_snap_layout_name(qb->layout));
        snprintf(p, sizeof(p), "handler.queues[%u].avail_wrap", i);
        rep_u64(d, p, qa->avail_wrap, qb->avail_wrap, false);
        snprintf(p, sizeof(p), "handler.queues[%u].used_idx", i);
        rep_u64(d, p, qa->used_idx, qb->used_idx, false);
        snprintf(p, sizeof(p), "handler.queues[%u].used_wrap", i);
        rep_u64(d, p, qa->used_wrap, qb->used_wrap, false);
    }
}

static int find_section(const struct vhu_snap_header *h, const char *name)
{
    for (unsigned i = 0; i < h->nsections; i++)
        if (strcmp(h->sections[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* The next record of s must be section `want` of its header. */
static int next_section(struct diffctx *d, struct snapin *s, const char *want,
                        struct vhu_snap_section_info *si)
{
    unsigned nend;
    int k = snapin_record(s, NULL, si, &nend);
    if (k < 0)
        return err_of(d, s);
    if (k != 's' || strcmp(si->name, want) != 0) {
        snprintf(s->why, sizeof(s->why),
                 "the stream does not hold section '%s' where its "
                 "header lists it",
                 want);
        d->failed = d->failed ? d->failed : s;
        return -EBADMSG;
    }
    return 0;
}

static int skip_section(struct diffctx *d, struct snapin *s)
{
    return snapin_section_done(s) < 0 ? err_of(d, s) : 0;
}

static int diff_sections(struct diffctx *d)
{
    const struct vhu_snap_header *ha = d->a.h, *hb = d->b.h;
    struct vhu_snap_section_info sa, sb;
    /* Added, removed and changed descriptors come from the headers. */
    for (unsigned i = 0; i < ha->nsections; i++) {
        const struct vhu_snap_section_info *x = &ha->sections[i];
        int j = find_section(hb, x->name);
        if (j < 0) {
            rep_text(d, false, x->name, "section_removed", "section removed (version %u%s)",
                     x->version, x->optional ? ", optional" : "");
            continue;
        }
        const struct vhu_snap_section_info *y = &hb->sections[j];
        bool up = d->o->upgrade_ok && y->version > x->version;
        if (x->version != y->version || x->min_version != y->min_version ||
            x->optional != y->optional)
            rep_text(d, up, x->name, "section_version",
                     "section version %u (min %u%s) -> %u (min %u%s)%s", x->version, x->min_version,
                     x->optional ? ", optional" : "", y->version, y->min_version,
                     y->optional ? ", optional" : "", up ? ", upgraded" : "");
    }
    for (unsigned j = 0; j < hb->nsections; j++) {
        const struct vhu_snap_section_info *y = &hb->sections[j];
        if (find_section(ha, y->name) < 0)
            rep_text(d, d->o->upgrade_ok && y->optional, y->name, "section_added",
                     "section added (version %u%s)", y->version, y->optional ? ", optional" : "");
    }
    /* Then the data, both streams in order. */
    unsigned ib = 0;
    for (unsigned i = 0; i < ha->nsections; i++) {
        const struct vhu_snap_section_info *x = &ha->sections[i];
        if (next_section(d, &d->a, x->name, &sa) < 0)
            return -EIO;
        int j = find_section(hb, x->name);
        if (j < 0 || (unsigned)j < ib) {
            if (j >= 0)
                rep_text(d, false, x->name, "section_moved",
                         "section in another order in B; "
                         "its data was not compared");
            if (skip_section(d, &d->a) < 0)
                return -EIO;
            continue;
        }
        for (; ib < (unsigned)j; ib++) {
            if (next_section(d, &d->b, hb->sections[ib].name, &sb) < 0 ||
                skip_section(d, &d->b) < 0)
                return -EIO;
            if (find_section(ha, hb->sections[ib].name) >= 0)
                rep_text(d, false, hb->sections[ib].name, "section_moved",
                         "section in another order in B; its data was not compared");
        }
        if (next_section(d, &d->b, x->name, &sb) < 0)
            return -EIO;
        ib++;
        if (!ignored(d, x->name)) {
            path_push(d, x->name);
            int e = diff_map(d, d->o->upgrade_ok && sb.version > sa.version);
            path_pop(d, 0);
            if (e < 0)
                return e;
        }
        if (skip_section(d, &d->a) < 0 || skip_section(d, &d->b) < 0)
            return -EIO;
    }
    for (; ib < hb->nsections; ib++)
        if (next_section(d, &d->b, hb->sections[ib].name, &sb) < 0 || skip_section(d, &d->b) < 0)
            return -EIO;
    return 0;
}

static int end_record(struct diffctx *d, struct snapin *s)
{
    struct vhu_snap_section_info si;
    unsigned nend = 0;
    int k = snapin_record(s, NULL, &si, &nend);
    if (k < 0)
        return err_of(d, s);
    if (k != 'e' || nend != s->h->nsections) {
        snprintf(s->why, sizeof(s->why),
                 "no end record counting the header's %u sections "
                 "after the last section",
                 s->h->nsections);
        d->failed = d->failed ? d->failed : s;
        return -EBADMSG;
    }
    return 0;
}

static int first_record(struct diffctx *d, struct snapin *s, struct vhu_snap_handler *h)
{
    struct vhu_snap_section_info si;
    unsigned nend;
    int k = snapin_record(s, h, &si, &nend);
    if (k < 0)
        return err_of(d, s);
    if (k != 'h') {
        snprintf(s->why, sizeof(s->why), "the first record is not the handler record");
        d->failed = d->failed ? d->failed : s;
        return -EBADMSG;
    }
    return 0;
}

int cli_diff(const char *name_a, int fd_a, const char *name_b, int fd_b, const struct diff_opts *o)
{
    struct diffctx *d = calloc(1, sizeof(*d));
    struct vhu_snap_handler *h = calloc(2, sizeof(*h));
    int code = CLI_ERR;
    if (!d || !h) {
        cli_err("out of memory");
        free(d);
        free(h);
        return CLI_ERR;
    }
    d->o = o;
    d->buf_a = malloc(CMP_BUF);
    d->buf_b = malloc(CMP_BUF);
    int ra = fd_a < 0 ? snapin_open(&d->a, name_a) : snapin_open_fd(&d->a, name_a, fd_a);
    int rb = fd_b < 0 ? snapin_open(&d->b, name_b) : snapin_open_fd(&d->b, name_b, fd_b);
    if (ra || rb || !d->buf_a || !d->buf_b) {
        if (cli.json) {
            struct snapin *s = ra ? &d->a : &d->b;
            j_obj(NULL);
            j_str("a", name_a);
            j_str("b", name_b);
            j_obj("error");
            j_str("file", s->name);
            j_str("message", s->why[0] ? s->why : "out of memory");
            j_end();
            j_end();
        }
        goto out;
    }
    progress_set("diff");
    if (cli.json) {
        j_obj(NULL);
        j_str("a", d->a.name);
        j_str("b", d->b.name);
        j_arr("differences");
    }
    if (snapin_header(&d->a) < 0) {
        err_of(d, &d->a);
        goto failed;
    }
    if (snapin_header(&d->b) < 0) {
        err_of(d, &d->b);
        goto failed;
    }
    rep_str(d, "header.device", d->a.h->device, d->b.h->device);
    rep_str(d, "header.producer", d->a.h->producer, d->b.h->producer);
    if (first_record(d, &d->a, &h[0]) < 0 || first_record(d, &d->b, &h[1]) < 0)
        goto failed;
    diff_handler(d, &h[0], &h[1]);
    if (diff_sections(d) < 0 || end_record(d, &d->a) < 0 || end_record(d, &d->b) < 0)
        goto failed;
    code = d->ndiff ? CLI_BAD : CLI_OK;
    if (cli.json) {
        j_end();
        j_bool("same", d->ndiff == 0);
        j_u64("count", d->ndiff);
        j_u64("notes", d->nnotes);
        j_end();
    } else if (d->ndiff) {
        printf("%u difference%s between %s and %s\n", d->ndiff, d->ndiff == 1 ? "" : "s", d->a.name,
               d->b.name);
    } else {
        printf("same: %s and %s hold the same state%s\n", d->a.name, d->b.name,
               d->nnotes ? " (see the notes)" : "");
    }
    goto out;
failed : {
    struct snapin *s = d->failed ? d->failed : &d->a;
    int c;
    const char *why = s->why[0] && !vhu_snap_reader_error(s->r, NULL) ? s->why : snapin_why(s, &c);
    cli_err("%s: %s; cannot compare", s->name, why);
    code = CLI_ERR;
    if (cli.json) {
        j_close_to(1);
        j_obj("error");
        j_str("file", s->name);
        j_str("message", why);
        j_u64("offset", snapin_offset(s));
        j_u64("body_offset", snapin_body_offset(s));
        j_end();
        j_close_to(0);
    }
}
out:
    snapin_close(&d->a);
    snapin_close(&d->b);
    free(d->buf_a);
    free(d->buf_b);
    free(d);
    free(h);
    return code;
}

static int diff_main(const struct cli_cmd *cmd, int argc, char **argv)
{
    static const struct option lo[] = {CLI_COMMON_OPTIONS,
                                       {"ignore", required_argument, NULL, 'i'},
                                       {"upgrade", no_argument, NULL, 'u'},
                                       {NULL, 0, NULL, 0}};
    struct diff_opts o = {0};
    int c, r;
    while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "i:u", lo, NULL)) != -1) {
        switch (c) {
        case 'i':
            if (o.nignore == DIFF_MAX_IGNORE)
                return cli_usage_error(cmd, "at most %d --ignore options", DIFF_MAX_IGNORE);
            o.ignore[o.nignore++] = optarg;
            break;
        case 'u': o.upgrade_ok = true; break;
        default:
            if ((r = cli_common_option(cmd, c, optarg)) >= 0)
                return r;
        }
    }
    if (optind != argc - 2)
        return cli_usage_error(cmd, "two FILEs expected");
    if (strcmp(argv[optind], "-") == 0 && strcmp(argv[optind + 1], "-") == 0)
        return cli_usage_error(cmd, "only one FILE can be '-'");
    return cli_finish_output(cli_diff(argv[optind], -1, argv[optind + 1], -1, &o));
}

const struct cli_cmd cli_diff_cmd = {
    .name = "diff",
    .run = diff_main,
    .summary = "compare two snapshots section by section, field by field",
    .usage = "diff [--ignore FIELD]... [--upgrade] [--json] A B",
    .help = "Reports, one line each: header fields that differ (device, producer), the\n"
            "handler record (features, queues), sections added, removed or at another\n"
            "version, fields that differ with both values, fields only one side has, and\n"
            "blobs or byte strings that differ as byte ranges (first..last, inclusive).\n"
            "Fields are matched by key within each map, in order (a field inserted or\n"
            "removed in the middle is one line).  Both files are streamed together:\n"
            "memory does not grow with their size.\n"
            "\n"
            "Paths: header.device, header.producer, handler.features,\n"
            "handler.protocol_features, handler.queues[N].size (.last_avail, .enabled),\n"
            "SECTION, SECTION.FIELD, SECTION.MAP.FIELD ...\n"
            "\n"
            "Options:\n"
            "  -i, --ignore FIELD  do not report this path, anything under it, or any\n"
            "                      path matching it as a shell pattern (repeatable)\n"
            "  -u, --upgrade       B was saved by a newer build after loading A: a section\n"
            "                      at a higher version, fields only B has there, and new\n"
            "                      optional sections are notes, not differences\n"
            "\n"
            "Exit status: 0 same, 1 different, 2 usage error or an input that cannot be\n"
            "read (I/O error or a damaged snapshot: the message says which and where).\n"
            "\n"
            "Examples:\n"
            "  vhu-state diff before.vhus after.vhus\n"
            "  vhu-state diff --ignore header.producer --ignore 'stats.*' a.vhus b.vhus\n"
            "  vhu-state diff --json a.vhus b.vhus | python3 -m json.tool\n",
};
