/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu-state validate: every rule of formats/snapshot-v1.md checked, one
 * line per problem with its byte offset.  The library's reader checks the
 * container (magic, header, zstd frame and checksum, CBOR well-formedness,
 * limits, end record, EOF); on top of it this checks what the header may
 * omit or get wrong without the library noticing (required keys, types,
 * UTF-8, the frame's checksum flag), that records agree with the header,
 * the handler record's values, the generic section-data rules, the schema
 * of each section (declared in its record, or for older snapshots of the
 * device types vhu ships, by those devices: schemas.c), and the version
 * window against a given back-end. */
#include <cbor.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/internal.h" /* vhu_utf8_valid */
#include "options.h"
#include "schemas.h"
#include "validate.h"

#define ZSTD_FRAME_MAGIC 0xFD2FB528u

struct val {
    struct snapin in;
    FILE *out;
    const struct val_opts *vo;
    unsigned nprob, nnotes;
    char section[VHU_SNAP_MAX_KEY + 1]; /* the section being read, for messages */
};

static void problem(struct val *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(struct val *v, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    v->nprob++;
    uint64_t off = snapin_offset(&v->in), body = snapin_body_offset(&v->in);
    if (cli.json) {
        if (v->nprob == 1)
            j_arr("problems");
        j_obj(NULL);
        j_u64("offset", off);
        j_u64("body_offset", body);
        if (v->section[0])
            j_str("section", v->section);
        j_str("message", msg);
        j_end();
        return;
    }
    progress_done();
    fprintf(v->out, "%s: byte %" PRIu64 " (body offset %" PRIu64 "): %s%s%s%s\n", v->in.name, off,
            body, v->section[0] ? "section '" : "", v->section, v->section[0] ? "': " : "", msg);
}

/* Notes are printed in human mode only; JSON counts them ("notes"). */
static void note(struct val *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct val *v, const char *fmt, ...)
{
    v->nnotes++;
    if (cli.json)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(v->out, "%s: note: ", v->in.name);
    vfprintf(v->out, fmt, ap);
    fputc('\n', v->out);
    va_end(ap);
}

/* The reader stopped: the problem it names. */
static void fatal(struct val *v)
{
    int code;
    problem(v, "%s", snapin_why(&v->in, &code));
}

/* ---- the header, strictly (the library skips what it does not need) ---- */

static bool is_text(cbor_item_t *i, size_t min, size_t max)
{
    return cbor_isa_string(i) && cbor_string_is_definite(i) && cbor_string_length(i) >= min &&
           cbor_string_length(i) <= max &&
           vhu_utf8_valid(cbor_string_handle(i), cbor_string_length(i));
}

static bool key_is(cbor_item_t *k, const char *s)
{
    return cbor_isa_string(k) && cbor_string_is_definite(k) && cbor_string_length(k) == strlen(s) &&
           memcmp(cbor_string_handle(k), s, strlen(s)) == 0;
}

static void check_keys(struct val *v, cbor_item_t *m, const char *what)
{
    struct cbor_pair *p = cbor_map_handle(m);
    size_t n = cbor_map_size(m);
    for (size_t i = 0; i < n; i++) {
        if (!is_text(p[i].key, 1, VHU_SNAP_MAX_KEY)) {
            problem(v, "header: %s has a key that is not a UTF-8 text string of 1..%u bytes", what,
                    VHU_SNAP_MAX_KEY);
            continue;
        }
        for (size_t j = 0; j < i; j++)
            if (cbor_isa_string(p[j].key) && cbor_string_is_definite(p[j].key) &&
                cbor_string_length(p[j].key) == cbor_string_length(p[i].key) &&
                memcmp(cbor_string_handle(p[j].key), cbor_string_handle(p[i].key),
                       cbor_string_length(p[i].key)) == 0)
                problem(v, "header: %s has the key '%.*s' twice", what,
                        (int)cbor_string_length(p[i].key), cbor_string_handle(p[i].key));
    }
}

static cbor_item_t *get(cbor_item_t *m, const char *key)
{
    struct cbor_pair *p = cbor_map_handle(m);
    for (size_t i = 0; i < cbor_map_size(m); i++)
        if (key_is(p[i].key, key))
            return p[i].value;
    return NULL;
}

static void check_header_strict(struct val *v)
{
    const uint8_t *b = v->in.head;
    size_t have = atomic_load(&v->in.head_len);
    uint32_t len;
    if (have < 8)
        return;
    memcpy(&len, b + 4, 4);
    if (len < VHU_SNAP_MAGIC_LEN || have < 8 + (size_t)len)
        return;
    struct cbor_load_result res;
    /* The header is at most 64 KiB and the library has already refused one
     * whose collections claim more items than it has bytes: loading it
     * whole is bounded.  libcbor's loader also checks what the library's
     * item-by-item parse does not: UTF-8 of every text, nesting. */
    cbor_item_t *root = cbor_load(b + 8 + VHU_SNAP_MAGIC_LEN, len - VHU_SNAP_MAGIC_LEN, &res);
    if (!root) {
        problem(v,
                "header: not well-formed CBOR at header byte %zu (malformed, text that "
                "is not UTF-8, or nested too deep)",
                res.error.position + VHU_SNAP_MAGIC_LEN);
        return;
    }
    if (!cbor_isa_map(root))
        goto out;
    check_keys(v, root, "the header map");
    cbor_item_t *x = get(root, "device");
    if (x && !is_text(x, 1, VHU_SNAP_MAX_KEY))
        problem(v, "header: 'device' is not a UTF-8 text string of 1..255 bytes");
    x = get(root, "producer");
    if (!x)
        problem(v, "header: 'producer' is missing");
    else if (!is_text(x, 0, VHU_SNAP_MAX_KEY))
        problem(v, "header: 'producer' is not a UTF-8 text string of at most 255 bytes");
    x = get(root, "sections");
    if (x && cbor_isa_array(x)) {
        for (size_t i = 0; i < cbor_array_size(x); i++) {
            cbor_item_t *m = cbor_array_handle(x)[i];
            char what[64];
            snprintf(what, sizeof(what), "section descriptor %zu", i);
            if (!cbor_isa_map(m))
                continue; /* the library said so */
            check_keys(v, m, what);
            cbor_item_t *y = get(m, "name");
            if (y && !is_text(y, 1, VHU_SNAP_MAX_KEY))
                problem(v, "header: %s: 'name' is not a UTF-8 text string of 1..255 bytes", what);
            y = get(m, "optional");
            if (!y || !cbor_is_bool(y))
                problem(v, "header: %s: 'optional' is %s", what, y ? "not a boolean" : "missing");
        }
    }
    /* The zstd frame right after: its content checksum is what makes
     * corruption of the body visible. */
    size_t f = 8 + (size_t)len;
    if (have >= f + 5) {
        uint32_t magic;
        memcpy(&magic, b + f, 4);
        if (magic == ZSTD_FRAME_MAGIC && !(b[f + 4] & 0x04))
            problem(v,
                    "the zstd frame at byte %zu has no content checksum (the format "
                    "requires one)",
                    f);
    }
out:
    cbor_decref(&root);
}

/* ---- the handler record ---- */

static void check_handler(struct val *v, const struct vhu_snap_handler *h)
{
    bool seen[VHU_SNAP_MAX_QUEUES] = {0};
    for (unsigned i = 0; i < h->nqueues; i++) {
        const struct vhu_snap_queue *q = &h->queues[i];
        if (q->index >= VHU_SNAP_MAX_QUEUES) {
            problem(v, "handler: queue %u has index %u (max %u)", i, q->index,
                    VHU_SNAP_MAX_QUEUES - 1);
            continue;
        }
        if (seen[q->index])
            problem(v, "handler: queue index %u listed twice", q->index);
        seen[q->index] = true;
        if (q->size && ((q->size & (q->size - 1)) || q->size > 32768))
            problem(v, "handler: queue %u: size %u is not 0 or a power of two up to 32768",
                    q->index, q->size);
    }
    /* Layouts, wrap counters, positions: what a loading back-end checks. */
    char why[200];
    if (vhu_snap_handler_check(h, why, sizeof(why)) < 0)
        problem(v, "%s", why);
}

/* ---- section data ---- */

struct schk {
    const struct sch_section *sch;
    uint32_t version;
    bool off;          /* stopped checking after a mismatch */
    unsigned next;     /* next schema field to expect */
    int in_map;        /* schema index of the map we are in, or -1 */
    uint64_t uval[16]; /* UINT values of top-level schema fields */
};

static bool type_fits(enum vhu_state_type want, const struct vhu_snap_field *f)
{
    switch (want) {
    case VHU_STATE_ANY: return true;
    case VHU_STATE_UINT: return f->type == VHU_SNAP_UINT;
    case VHU_STATE_INT:
        return (f->type == VHU_SNAP_UINT || f->type == VHU_SNAP_NINT) && f->u <= INT64_MAX;
    case VHU_STATE_BOOL: return f->type == VHU_SNAP_BOOL;
    case VHU_STATE_TEXT: return f->type == VHU_SNAP_TEXT;
    case VHU_STATE_BYTES: return f->type == VHU_SNAP_BYTES || f->type == VHU_SNAP_BLOB;
    case VHU_STATE_MAP: return f->type == VHU_SNAP_MAP;
    }
    return false;
}

/* The key is `prefix` followed by one or more decimal digits. */
static bool key_matches(const char *prefix, const char *key)
{
    size_t n = strlen(prefix);
    if (strncmp(key, prefix, n) != 0 || !key[n])
        return false;
    for (const char *p = key + n; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    return true;
}

static int next_expected(const struct schk *c)
{
    for (unsigned i = c->next; i < c->sch->nfields; i++)
        if (c->sch->fields[i].since <= c->version)
            return (int)i;
    return -1;
}

/* A top-level field against the schema; returns the schema index or -1. */
static int sch_field(struct val *v, struct schk *c, const struct vhu_snap_field *f)
{
    if (!c->sch || c->off)
        return -1;
    int e = next_expected(c);
    const char *dev = v->in.h->device;
    if (e < 0) {
        if (c->version <= c->sch->newest) {
            problem(v, "field '%s' is not in the schema of %s '%s' version %u", f->key, dev,
                    c->sch->section, c->version);
            c->off = true;
        }
        return -1;
    }
    const struct vhu_state_field *s = &c->sch->fields[e];
    if (strcmp(s->key, f->key) != 0) {
        problem(v, "expected field '%s' (%s), found '%s' (%s)", s->key, sch_type_name(s->type),
                f->key, ftype_name(f->type));
        c->off = true;
        return -1;
    }
    c->next = (unsigned)e + 1;
    if (!type_fits(s->type, f)) {
        problem(v, "field '%s': expected %s, found %s", f->key, sch_type_name(s->type),
                ftype_name(f->type));
        c->off = true;
        return -1;
    }
    if (s->type == VHU_STATE_UINT && s->max && f->u > s->max)
        problem(v, "field '%s': %" PRIu64 " is larger than %" PRIu64, f->key, f->u, s->max);
    if (s->type == VHU_STATE_TEXT && s->max && f->len > s->max)
        problem(v, "field '%s': text of %zu bytes (at most %" PRIu64 ")", f->key, f->len, s->max);
    if (e < 16 && f->type == VHU_SNAP_UINT)
        c->uval[e] = f->u;
    return e;
}

static void sch_end(struct val *v, struct schk *c)
{
    if (!c->sch || c->off)
        return;
    int e = next_expected(c);
    if (e >= 0)
        problem(v, "field '%s' (%s) is missing", c->sch->fields[e].key,
                sch_type_name(c->sch->fields[e].type));
}

static int walk_section(struct val *v, const struct vhu_snap_section_info *si)
{
    static uint8_t buf[64 << 10];
    struct sch_section sch;
    struct schk c = {.sch = sch_for(v->in.h->device, si, &sch) ? &sch : NULL,
                     .version = si->version,
                     .in_map = -1};
    struct vhu_snap_field f;
    for (;;) {
        if (snapin_field(&v->in, &f) < 0)
            return -1;
        if (f.type == VHU_SNAP_END) {
            if (f.depth == 0) {
                sch_end(v, &c);
                return 0;
            }
            if (f.depth == 1)
                c.in_map = -1;
            continue;
        }
        if (!vhu_utf8_valid((const uint8_t *)f.key, strlen(f.key)))
            problem(v, "a field key is not valid UTF-8");
        if (f.type == VHU_SNAP_TEXT && !vhu_utf8_valid(f.data, f.len))
            problem(v, "field '%s': text that is not valid UTF-8", f.key);
        int e = -1;
        if (f.depth == 0) {
            e = sch_field(v, &c, &f);
        } else if (f.depth == 1 && c.in_map >= 0) {
            const struct vhu_state_field *m = &c.sch->fields[c.in_map];
            if (!type_fits(m->each, &f))
                problem(v, "field '%s.%s': expected %s, found %s", m->key, f.key,
                        sch_type_name(m->each), ftype_name(f.type));
            if (m->key_prefix && !key_matches(m->key_prefix, f.key))
                problem(v, "field '%s.%s': key is not '%s' and a number", m->key, f.key,
                        m->key_prefix);
        }
        if (f.type == VHU_SNAP_MAP) {
            if (f.depth == 0)
                c.in_map = e;
            continue;
        }
        if (f.type != VHU_SNAP_BLOB && f.type != VHU_SNAP_BYTES)
            continue;
        /* Read it through (the reader checks every chunk). */
        uint64_t size = f.len;
        if (f.type == VHU_SNAP_BLOB) {
            size = 0;
            for (;;) {
                ssize_t n = snapin_blob_read(&v->in, buf, sizeof(buf));
                if (n < 0)
                    return -1;
                if (n == 0)
                    break;
                size += (uint64_t)n;
            }
        }
        if (e >= 0) {
            const struct vhu_state_field *s = &c.sch->fields[e];
            if (s->max && size > s->max)
                problem(v, "field '%s': %" PRIu64 " bytes (at most %" PRIu64 ")", f.key, size,
                        s->max);
            if (s->len_from) {
                for (unsigned i = 0; i < (unsigned)e && i < 16; i++)
                    if (strcmp(c.sch->fields[i].key, s->len_from) == 0 && c.uval[i] != size)
                        problem(v, "field '%s': %" PRIu64 " bytes, but '%s' says %" PRIu64, f.key,
                                size, s->len_from, c.uval[i]);
            }
        }
    }
}

static void check_versions(struct val *v)
{
    const struct vhu_snap_header *h = v->in.h;
    for (unsigned d = 0; d < v->vo->ndevver; d++) {
        const char *name = v->vo->devver[d].name;
        uint32_t dv = v->vo->devver[d].version;
        bool found = false;
        for (unsigned i = 0; i < h->nsections; i++) {
            const struct vhu_snap_section_info *s = &h->sections[i];
            if (strcmp(s->name, name) != 0)
                continue;
            found = true;
            if (s->min_version > dv)
                problem(v,
                        "section '%s' is version %u and needs a reader of version %u or "
                        "newer; the back-end reads up to version %u",
                        name, s->version, s->min_version, dv);
            else if (s->version > dv)
                note(v,
                     "section '%s' is version %u; a back-end reading version %u skips the "
                     "fields it does not know",
                     name, s->version, dv);
            else if (s->version < dv)
                note(v,
                     "section '%s' is version %u; a back-end of version %u loads it "
                     "through its upgrade path",
                     name, s->version, dv);
        }
        if (!found)
            note(v,
                 "section '%s' (back-end version %u) is not in the snapshot; a back-end "
                 "that requires it refuses the load",
                 name, dv);
    }
}

static bool same_info(const struct vhu_snap_section_info *a, const struct vhu_snap_section_info *b)
{
    return strcmp(a->name, b->name) == 0 && a->version == b->version &&
           a->min_version == b->min_version && a->optional == b->optional;
}

int cli_validate_one(const char *name, int fd, FILE *out, const struct val_opts *vo)
{
    struct val *v = calloc(1, sizeof(*v));
    struct vhu_snap_handler *hd = malloc(sizeof(*hd));
    struct vhu_snap_section_info si;
    unsigned nend = 0;
    int code = CLI_OK, k;
    if (!v || !hd) {
        free(v);
        free(hd);
        cli_err("out of memory");
        return CLI_ERR;
    }
    v->out = out;
    v->vo = vo;
    int r = fd < 0 ? snapin_open(&v->in, name) : snapin_open_fd(&v->in, name, fd);
    if (cli.json) {
        j_obj(NULL);
        j_str("file", v->in.name[0] ? v->in.name : name);
    }
    if (r) {
        code = CLI_ERR;
        if (cli.json) {
            j_bool("valid", false);
            j_obj("error");
            j_str("message", v->in.why);
            j_end();
            j_end();
        }
        goto out;
    }
    progress_set("validate");
    const struct vhu_snap_header *h = v->in.h;
    if (snapin_header(&v->in) < 0) {
        fatal(v);
        goto done;
    }
    if (cli.json) {
        j_str("device", h->device);
        j_u64("format", h->format);
        j_u64("sections", h->nsections);
    }
    check_header_strict(v);
    check_versions(v);
    k = snapin_record(&v->in, hd, &si, &nend);
    if (k < 0) {
        fatal(v);
        goto done;
    }
    if (k != 'h') {
        problem(v, "the first record is not the handler record");
        goto done;
    }
    check_handler(v, hd);
    for (unsigned i = 0;; i++) {
        v->section[0] = 0;
        k = snapin_record(&v->in, NULL, &si, &nend);
        if (k < 0) {
            fatal(v);
            goto done;
        }
        if (k == 'h') {
            problem(v, "a second handler record");
            continue;
        }
        if (k == 'e')
            break;
        snprintf(v->section, sizeof(v->section), "%s", si.name);
        if (i >= h->nsections)
            problem(v, "section record %u: the header lists only %u sections", i, h->nsections);
        else if (!same_info(&si, &h->sections[i]))
            problem(v,
                    "the record (version %u, min %u%s) does not match the header's section "
                    "%u ('%s' version %u, min %u%s)",
                    si.version, si.min_version, si.optional ? ", optional" : "", i,
                    h->sections[i].name, h->sections[i].version, h->sections[i].min_version,
                    h->sections[i].optional ? ", optional" : "");
        if (walk_section(v, &si) < 0 || snapin_section_done(&v->in) < 0) {
            fatal(v);
            goto done;
        }
    }
    v->section[0] = 0;
    if (nend != h->nsections)
        problem(v, "the end record counts %u sections, the header %u", nend, h->nsections);
done:
    if (atomic_load(&v->in.in_err))
        code = CLI_ERR;
    else if (v->nprob)
        code = CLI_BAD;
    if (cli.json) {
        if (v->nprob)
            j_end(); /* problems */
        j_bool("valid", v->nprob == 0 && code == CLI_OK);
        j_u64("notes", v->nnotes);
        j_u64("size", atomic_load(&v->in.raw));
        j_end();
    } else if (code == CLI_OK) {
        fprintf(out, "%s: valid: device %s, format %u, %u sections, %" PRIu64 " bytes\n",
                v->in.name, h->device, h->format, h->nsections, snapin_offset(&v->in));
    } else {
        fprintf(out, "%s: invalid: %u problem%s\n", v->in.name, v->nprob, v->nprob == 1 ? "" : "s");
    }
out:
    snapin_close(&v->in);
    free(v);
    free(hd);
    return code;
}

static int validate_main(const struct cli_cmd *cmd, int argc, char **argv)
{
    static const struct option lo[] = {
        CLI_COMMON_OPTIONS, {"device-version", required_argument, NULL, 'd'}, {NULL, 0, NULL, 0}};
    struct val_opts vo = {0};
    int c, r;
    while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "d:", lo, NULL)) != -1) {
        switch (c) {
        case 'd': {
            char *eq = strchr(optarg, '=');
            char *end;
            unsigned long ver = eq ? strtoul(eq + 1, &end, 10) : 0;
            if (!eq || eq == optarg || !eq[1] || *end || ver > UINT32_MAX)
                return cli_usage_error(cmd, "--device-version wants NAME=VERSION, not '%s'",
                                       optarg);
            if (vo.ndevver == VAL_MAX_DEVVER)
                return cli_usage_error(cmd, "at most %d --device-version options", VAL_MAX_DEVVER);
            *eq = 0;
            vo.devver[vo.ndevver].name = optarg;
            vo.devver[vo.ndevver].version = (uint32_t)ver;
            vo.ndevver++;
            break;
        }
        default:
            if ((r = cli_common_option(cmd, c, optarg)) >= 0)
                return r;
        }
    }
    if (optind >= argc)
        return cli_usage_error(cmd, "at least one FILE expected");
    unsigned stdin_uses = 0;
    for (int i = optind; i < argc; i++)
        stdin_uses += strcmp(argv[i], "-") == 0;
    if (stdin_uses > 1)
        return cli_usage_error(cmd, "only one FILE can be '-'");
    int worst = CLI_OK;
    if (cli.json) {
        j_obj(NULL);
        j_arr("files");
    }
    for (int i = optind; i < argc; i++) {
        int x = cli_validate_one(argv[i], -1, stdout, &vo);
        if (x > worst)
            worst = x;
    }
    if (cli.json) {
        j_end();
        j_bool("valid", worst == CLI_OK);
        j_end();
    }
    return cli_finish_output(worst);
}

const struct cli_cmd cli_validate_cmd = {
    .name = "validate",
    .run = validate_main,
    .summary = "check snapshots against the format and the sections' declared fields",
    .usage = "validate [--device-version SECTION=V]... [--json] FILE...",
    .help = "Checks, for each FILE: the magic and the header (required keys, types,\n"
            "UTF-8, limits, format version), the zstd frame (content checksum present and\n"
            "right), CBOR well-formedness and the format's limits, that the records agree\n"
            "with the header (handler record first, each section as the header lists it,\n"
            "the end record and its count, nothing after the frame), the handler record's\n"
            "queues, the section-data rules (types, sizes, key lengths, nesting, UTF-8),\n"
            "and each section's fields against what its device declared (carried in the\n"
            "snapshot; for older snapshots of testdev and blk, their declarations).\n"
            "Prints one line per problem:\n"
            "\n"
            "  FILE: byte N (body offset M): [section 'S': ]PROBLEM\n"
            "\n"
            "N is the offset in the file (for damage inside the compressed body: how far\n"
            "the reader got), M the offset in the decompressed records.  Damage that stops\n"
            "the reader ends the checks of that file.  Then one summary line per file.\n"
            "\n"
            "Options:\n"
            "  -d, --device-version SECTION=V\n"
            "                      the back-end you will load into reads SECTION up to\n"
            "                      version V (repeatable): a section whose min_version\n"
            "                      is above V is a problem; other version gaps are notes\n"
            "\n"
            "Exit status: 0 every FILE is valid, 1 a FILE has problems, 2 usage error or\n"
            "a FILE could not be read.\n"
            "\n"
            "Examples:\n"
            "  vhu-state validate snap.vhus\n"
            "  vhu-state validate --device-version config=1 --device-version blob=1 snap.vhus\n"
            "  vhu-state validate --json formats/corpus/*.vhus\n",
};
