/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu-state inspect: the header at once, then every record with its fields,
 * streamed (a blob is never held whole). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"
#include "schemas.h"

#define MAX_SEL 64

struct inspect {
    bool header_only, hexdump;
    const char *sel[MAX_SEL];
    unsigned nsel;
    struct snapin in;
};

static bool selected(const struct inspect *x, const char *name)
{
    if (!x->nsel)
        return true;
    for (unsigned i = 0; i < x->nsel; i++)
        if (strcmp(x->sel[i], name) == 0)
            return true;
    return false;
}

static void print_header(const struct vhu_snap_header *h, const char *name)
{
    if (cli.json) {
        j_str("file", name);
        j_obj("header");
        j_u64("format", h->format);
        j_str("device", h->device);
        j_str("producer", h->producer);
        j_arr("sections");
        for (unsigned i = 0; i < h->nsections; i++) {
            const struct vhu_snap_section_info *s = &h->sections[i];
            j_obj(NULL);
            j_str("name", s->name);
            j_u64("version", s->version);
            j_u64("min_version", s->min_version);
            j_bool("optional", s->optional);
            j_end();
        }
        j_end();
        j_end();
        return;
    }
    printf("file:     %s\nformat:   %u\ndevice:   %s\nproducer: %s\nsections: %u\n", name,
           h->format, h->device, h->producer, h->nsections);
    for (unsigned i = 0; i < h->nsections; i++) {
        const struct vhu_snap_section_info *s = &h->sections[i];
        printf("  %-16s version %u (min %u)%s\n", s->name, s->version, s->min_version,
               s->optional ? " optional" : "");
    }
}

static void print_handler(const struct vhu_snap_handler *h)
{
    if (cli.json) {
        j_obj("handler");
        j_u64("features", h->features);
        j_u64("protocol_features", h->protocol_features);
        j_u64("version", h->version);
        j_arr("queues");
        for (unsigned i = 0; i < h->nqueues; i++) {
            const struct vhu_snap_queue *q = &h->queues[i];
            j_obj(NULL);
            j_u64("index", q->index);
            j_u64("size", q->size);
            j_u64("last_avail", q->last_avail);
            j_bool("enabled", q->enabled);
            if (q->layout != VHU_SNAP_LAYOUT_NONE)
                j_str("layout", vhu_snap_layout_name(q->layout));
            if (q->have & VHU_SNAP_Q_AVAIL_WRAP)
                j_bool("avail_wrap", q->avail_wrap);
            if (q->have & VHU_SNAP_Q_USED_IDX)
                j_u64("used_idx", q->used_idx);
            if (q->have & VHU_SNAP_Q_USED_WRAP)
                j_bool("used_wrap", q->used_wrap);
            j_end();
        }
        j_end();
        j_end();
        return;
    }
    printf("handler (record version %u):\n  features:          0x%016" PRIx64
           "\n  protocol_features: 0x%016" PRIx64 "\n  queues:            %u\n",
           h->version, h->features, h->protocol_features, h->nqueues);
    for (unsigned i = 0; i < h->nqueues; i++) {
        const struct vhu_snap_queue *q = &h->queues[i];
        const char *en = q->enabled ? "enabled" : "disabled";
        if (q->layout == VHU_SNAP_LAYOUT_NONE)
            printf("    queue %-3u size %-5u last_avail %-5u %s\n", q->index, q->size,
                   q->last_avail, en);
        else if (q->layout == VHU_SNAP_LAYOUT_SPLIT)
            printf("    queue %-3u size %-5u split  last_avail %-5u %s\n", q->index, q->size,
                   q->last_avail, en);
        else
            printf("    queue %-3u size %-5u packed last_avail %-5u avail_wrap %u used_idx %-5u "
                   "used_wrap %u %s\n",
                   q->index, q->size, q->last_avail, q->avail_wrap, q->used_idx, q->used_wrap, en);
    }
}

/* A hex dump streamed 16 bytes a line. */
struct hexdump {
    uint64_t off;
    uint8_t line[16];
    unsigned n;
    unsigned indent;
};

static void hd_flush(struct hexdump *d)
{
    if (!d->n)
        return;
    printf("%*s%08" PRIx64 " ", d->indent, "", d->off);
    for (unsigned i = 0; i < 16; i++)
        printf(i < d->n ? " %02x" : "   ", d->line[i]);
    printf("  |");
    for (unsigned i = 0; i < d->n; i++)
        putchar(d->line[i] >= 0x20 && d->line[i] < 0x7f ? d->line[i] : '.');
    printf("|\n");
    d->off += d->n;
    d->n = 0;
}

static void hd_feed(struct hexdump *d, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        d->line[d->n++] = p[i];
        if (d->n == 16)
            hd_flush(d);
    }
}

/* A byte string or blob: size, a short preview, or a hex dump. */
static int print_bytes(struct inspect *x, const struct vhu_snap_field *f, unsigned indent)
{
    static uint8_t buf[64 << 10];
    uint8_t head[16];
    size_t nhead = 0;
    uint64_t total = 0;
    struct hexdump d = {.indent = indent + 2};
    const char *kind = f->type == VHU_SNAP_BLOB ? "blob" : "bytes";
    if (cli.json) {
        j_obj(NULL);
        j_str("key", f->key);
        j_str("type", kind);
        if (x->hexdump)
            j_hex_begin("hex");
    } else {
        printf("%*s%s: %s", indent, "", f->key, kind);
        if (x->hexdump)
            printf("\n");
    }
    for (;;) {
        const uint8_t *p;
        size_t n;
        if (f->type == VHU_SNAP_BYTES) {
            if (total)
                break;
            p = f->data;
            n = f->len;
        } else {
            ssize_t g = snapin_blob_read(&x->in, buf, sizeof(buf));
            if (g < 0) {
                if (cli.json && x->hexdump)
                    j_hex_end();
                return (int)g;
            }
            p = buf;
            n = (size_t)g;
        }
        if (n == 0)
            break;
        if (nhead < sizeof(head)) {
            size_t c = n < sizeof(head) - nhead ? n : sizeof(head) - nhead;
            memcpy(head + nhead, p, c);
            nhead += c;
        }
        if (x->hexdump) {
            if (cli.json)
                j_hex_more(p, n);
            else
                hd_feed(&d, p, n);
        }
        total += n;
    }
    if (cli.json) {
        if (x->hexdump)
            j_hex_end();
        else
            j_hex_begin("head"), j_hex_more(head, nhead), j_hex_end();
        j_u64("size", total);
        j_end();
        return 0;
    }
    if (x->hexdump) {
        hd_flush(&d);
        printf("%*s(%" PRIu64 " bytes)\n", indent + 2, "", total);
        return 0;
    }
    printf(", %" PRIu64 " bytes", total);
    if (nhead) {
        printf(":");
        for (size_t i = 0; i < nhead; i++)
            printf(" %02x", head[i]);
        if (total > nhead)
            printf(" ...");
    }
    printf("\n");
    return 0;
}

/* The fields the section record declares (written by builds after 0.1.0; older
 * snapshots have none and print as before). */
static void print_declared(const struct vhu_state_field *fields)
{
    char what[512];
    if (cli.json)
        j_arr("declared");
    else
        printf("  declared fields:\n");
    for (const struct vhu_state_field *f = fields; f->key; f++) {
        sch_describe(f, what, sizeof(what));
        if (!cli.json) {
            printf("    %s: %s%s%s\n", f->key, what, f->meaning ? " - " : "",
                   f->meaning ? f->meaning : "");
            continue;
        }
        j_obj(NULL);
        j_str("key", f->key);
        j_str("type", vhu_snap_type_name(f->type));
        j_u64("since", f->since);
        if (f->max)
            j_u64("max", f->max);
        if (f->len_from)
            j_str("len_from", f->len_from);
        if (f->type == VHU_STATE_MAP && f->each != VHU_STATE_ANY)
            j_str("each", vhu_snap_type_name(f->each));
        if (f->key_prefix)
            j_str("key_prefix", f->key_prefix);
        if (f->meaning)
            j_str("meaning", f->meaning);
        j_end();
    }
    if (cli.json)
        j_end();
}

/* The fields of the current section, in order. */
static int print_fields(struct inspect *x)
{
    struct vhu_snap_field f;
    unsigned depth = 0;
    for (;;) {
        int e = snapin_field(&x->in, &f);
        if (e < 0)
            return e;
        unsigned indent = 2 + 2 * f.depth;
        switch (f.type) {
        case VHU_SNAP_END:
            if (cli.json)
                j_end(); /* fields array */
            if (depth == 0)
                return 0;
            depth--;
            if (cli.json)
                j_end(); /* the map's object */
            else
                printf("%*s}\n", indent - 2, "");
            continue;
        case VHU_SNAP_MAP:
            depth++;
            if (cli.json) {
                j_obj(NULL);
                j_str("key", f.key);
                j_str("type", "map");
                j_arr("fields");
            } else {
                printf("%*s%s: map {\n", indent, "", f.key);
            }
            continue;
        case VHU_SNAP_BLOB:
        case VHU_SNAP_BYTES:
            if ((e = print_bytes(x, &f, indent)) < 0)
                return e;
            continue;
        default: break;
        }
        if (cli.json) {
            j_obj(NULL);
            j_str("key", f.key);
            j_str("type", ftype_name(f.type));
            if (f.type == VHU_SNAP_UINT)
                j_u64("value", f.u);
            else if (f.type == VHU_SNAP_NINT)
                f.u <= INT64_MAX ? j_i64("value", -1 - (int64_t)f.u)
                                 : j_str("value", "below -2^63");
            else if (f.type == VHU_SNAP_BOOL)
                j_bool("value", f.u);
            else
                j_strn("value", f.data, f.len);
            j_end();
            continue;
        }
        printf("%*s%s: ", indent, "", f.key);
        if (f.type == VHU_SNAP_UINT)
            printf("%" PRIu64 " (0x%" PRIx64 ")\n", f.u, f.u);
        else if (f.type == VHU_SNAP_NINT)
            f.u == UINT64_MAX ? printf("-18446744073709551616\n")
                              : printf("-%" PRIu64 "\n", f.u + 1);
        else if (f.type == VHU_SNAP_BOOL)
            printf("%s\n", f.u ? "true" : "false");
        else
            h_quoted(stdout, f.data, f.len), printf("\n");
    }
}

static int run(struct inspect *x, const char *path)
{
    int code = CLI_OK;
    struct vhu_snap_handler *hd = malloc(sizeof(*hd));
    struct vhu_snap_section_info si;
    unsigned nend = 0, nsec = 0;
    bool in_sections = false;
    if (!hd) {
        cli_err("out of memory");
        return CLI_ERR;
    }
    if (cli.json)
        j_obj(NULL);
    if (snapin_open(&x->in, path) != 0) {
        code = CLI_ERR;
        if (cli.json) {
            j_str("file", path);
            j_obj("error");
            j_str("message", x->in.why);
            j_end();
        }
        goto out;
    }
    progress_set("inspect");
    if (snapin_header(&x->in) < 0)
        goto bad;
    print_header(x->in.h, x->in.name);
    fflush(stdout); /* the header at once, before any decompression */
    if (x->header_only)
        goto out;
    for (;;) {
        int k = snapin_record(&x->in, hd, &si, &nend);
        if (k < 0)
            goto bad;
        if (k == 'h') {
            print_handler(hd);
            if (cli.json) {
                j_arr("sections");
                in_sections = true;
            }
            continue;
        }
        if (k == 'e')
            break;
        /* A section. */
        nsec++;
        uint64_t start = snapin_body_offset(&x->in);
        if (!selected(x, si.name)) {
            if (snapin_section_done(&x->in) < 0)
                goto bad;
            continue;
        }
        if (cli.json) {
            if (!in_sections) {
                j_arr("sections");
                in_sections = true;
            }
            j_obj(NULL);
            j_str("name", si.name);
            j_u64("version", si.version);
            j_u64("min_version", si.min_version);
            j_bool("optional", si.optional);
            if (si.fields)
                print_declared(si.fields);
            j_arr("fields");
        } else {
            printf("section %s (version %u, min %u%s):\n", si.name, si.version, si.min_version,
                   si.optional ? ", optional" : "");
            if (si.fields)
                print_declared(si.fields);
        }
        if (print_fields(x) < 0 || snapin_section_done(&x->in) < 0)
            goto bad;
        uint64_t size = snapin_body_offset(&x->in) - start;
        if (cli.json) {
            j_u64("size", size);
            j_end();
        } else {
            printf("  (%" PRIu64 " bytes of section data)\n", size);
        }
    }
    if (in_sections)
        j_end();
    if (nend != x->in.h->nsections || nsec != x->in.h->nsections) {
        cli_err("%s: the header lists %u sections, the stream holds %u and its end record "
                "counts %u",
                x->in.name, x->in.h->nsections, nsec, nend);
        code = CLI_BAD;
    }
    if (cli.json) {
        j_obj("end");
        j_u64("sections", nend);
        j_u64("compressed_size", snapin_offset(&x->in));
        j_u64("decompressed_size", snapin_body_offset(&x->in));
        j_end();
    } else {
        printf("end: %u sections; %" PRIu64 " bytes in the file, %" PRIu64
               " bytes of records decompressed\n",
               nend, snapin_offset(&x->in), snapin_body_offset(&x->in));
    }
    goto out;
bad : {
    const char *why = snapin_why(&x->in, &code);
    cli_err("%s: %s", x->in.name, why);
    if (cli.json) {
        j_close_to(1);
        j_obj("error");
        j_str("message", why);
        j_u64("offset", snapin_offset(&x->in));
        j_u64("body_offset", snapin_body_offset(&x->in));
        j_end();
    } else {
        fflush(stdout);
    }
}
out:
    if (cli.json)
        j_close_to(0);
    snapin_close(&x->in);
    free(hd);
    return code;
}

static int inspect_main(const struct cli_cmd *cmd, int argc, char **argv)
{
    static const struct option lo[] = {CLI_COMMON_OPTIONS,
                                       {"header-only", no_argument, NULL, 'H'},
                                       {"section", required_argument, NULL, 's'},
                                       {"hexdump", no_argument, NULL, 'x'},
                                       {NULL, 0, NULL, 0}};
    struct inspect *x = calloc(1, sizeof(*x));
    int c, r;
    if (!x)
        return CLI_ERR;
    while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "Hs:x", lo, NULL)) != -1) {
        switch (c) {
        case 'H': x->header_only = true; break;
        case 'x': x->hexdump = true; break;
        case 's':
            if (x->nsel == MAX_SEL) {
                free(x);
                return cli_usage_error(cmd, "at most %d --section options", MAX_SEL);
            }
            x->sel[x->nsel++] = optarg;
            break;
        default:
            if ((r = cli_common_option(cmd, c, optarg)) >= 0) {
                free(x);
                return r;
            }
        }
    }
    if (optind != argc - 1) {
        free(x);
        return cli_usage_error(cmd, "one FILE expected");
    }
    r = run(x, argv[optind]);
    free(x);
    return cli_finish_output(r);
}

const struct cli_cmd cli_inspect_cmd = {
    .name = "inspect",
    .run = inspect_main,
    .summary = "print a snapshot: header, handler record, sections and their fields",
    .usage = "inspect [--header-only] [--section NAME]... [--hexdump] [--json] FILE",
    .help = "Prints the header as soon as it is read (it is not compressed), then the\n"
            "handler record (features, queues) and every section with its version, its\n"
            "size (bytes of decompressed section data) and its decoded fields in order.\n"
            "Blobs and byte strings show their size and first 16 bytes.  Everything is\n"
            "streamed: memory does not grow with the snapshot.\n"
            "\n"
            "Options:\n"
            "  -H, --header-only   print the header only; nothing is decompressed\n"
            "  -s, --section NAME  print only this section (repeatable); others are\n"
            "                      still read and checked\n"
            "  -x, --hexdump       dump blobs and byte strings in full\n"
            "\n"
            "Exit status: 0 the whole snapshot was read; 1 it is damaged (the message\n"
            "names the byte offset); 2 usage or I/O error.\n"
            "\n"
            "Examples:\n"
            "  vhu-state inspect snap.vhus\n"
            "  vhu-state inspect --header-only --json snap.vhus\n"
            "  vhu-state inspect --section blob --hexdump snap.vhus | less\n"
            "  vhu-state capture --socket /run/dev.sock -o - | vhu-state inspect -\n",
};
