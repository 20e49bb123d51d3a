/* SPDX-License-Identifier: BSD-3-Clause */
/* The CBOR item-head decoder (cbor_item.h): libcbor's streaming decoder
 * with callbacks that fill one struct vhu_cbor_item. */
#include <errno.h>
#include <string.h>

#include <cbor.h>

#include "cbor_item.h"

#define CB(name, T, body)                                                                          \
    static void name(void *ctx, T v)                                                               \
    {                                                                                              \
        struct vhu_cbor_item *it = ctx;                                                            \
        body;                                                                                      \
    }
CB(cb_u8, uint8_t, it->t = VHU_CBOR_UINT; it->u = v)
CB(cb_u16, uint16_t, it->t = VHU_CBOR_UINT; it->u = v)
CB(cb_u32, uint32_t, it->t = VHU_CBOR_UINT; it->u = v)
CB(cb_u64, uint64_t, it->t = VHU_CBOR_UINT; it->u = v)
CB(cb_n8, uint8_t, it->t = VHU_CBOR_NINT; it->u = v)
CB(cb_n16, uint16_t, it->t = VHU_CBOR_NINT; it->u = v)
CB(cb_n32, uint32_t, it->t = VHU_CBOR_NINT; it->u = v)
CB(cb_n64, uint64_t, it->t = VHU_CBOR_NINT; it->u = v)
CB(cb_array, size_t, it->t = VHU_CBOR_ARRAY; it->u = v)
CB(cb_map, size_t, it->t = VHU_CBOR_MAP; it->u = v)
CB(cb_tag, uint64_t, it->t = VHU_CBOR_TAG; it->u = v)
CB(cb_f2, float, (void)v; it->t = VHU_CBOR_FLOAT)
CB(cb_f4, float, (void)v; it->t = VHU_CBOR_FLOAT)
CB(cb_f8, double, (void)v; it->t = VHU_CBOR_FLOAT)
CB(cb_bool, bool, it->t = VHU_CBOR_BOOL; it->b = v)

static void string(void *ctx, enum vhu_cbor_type t, cbor_data d, size_t n)
{
    struct vhu_cbor_item *it = ctx;
    it->t = t;
    it->data = d;
    it->len = n;
}
static void cb_bstr(void *ctx, cbor_data d, size_t n) { string(ctx, VHU_CBOR_BSTR, d, n); }
static void cb_tstr(void *ctx, cbor_data d, size_t n) { string(ctx, VHU_CBOR_TSTR, d, n); }

#define CB0(name, type)                                                                            \
    static void name(void *ctx) { ((struct vhu_cbor_item *)ctx)->t = type; }
CB0(cb_bstr_indef, VHU_CBOR_BSTR_INDEF)
CB0(cb_tstr_indef, VHU_CBOR_TSTR_INDEF)
CB0(cb_array_indef, VHU_CBOR_ARRAY_INDEF)
CB0(cb_map_indef, VHU_CBOR_MAP_INDEF)
CB0(cb_null, VHU_CBOR_NULL)
CB0(cb_undef, VHU_CBOR_UNDEF)
CB0(cb_break, VHU_CBOR_BREAK)

static const struct cbor_callbacks callbacks = {
    .uint8 = cb_u8,
    .uint16 = cb_u16,
    .uint32 = cb_u32,
    .uint64 = cb_u64,
    .negint8 = cb_n8,
    .negint16 = cb_n16,
    .negint32 = cb_n32,
    .negint64 = cb_n64,
    .byte_string_start = cb_bstr_indef,
    .byte_string = cb_bstr,
    .string = cb_tstr,
    .string_start = cb_tstr_indef,
    .indef_array_start = cb_array_indef,
    .array_start = cb_array,
    .indef_map_start = cb_map_indef,
    .map_start = cb_map,
    .tag = cb_tag,
    .float2 = cb_f2,
    .float4 = cb_f4,
    .float8 = cb_f8,
    .undefined = cb_undef,
    .null = cb_null,
    .boolean = cb_bool,
    .indef_break = cb_break,
};

int vhu_cbor_item_decode(const uint8_t *p, size_t len, struct vhu_cbor_item *it, size_t *used)
{
    memset(it, 0, sizeof(*it));
    *used = 0;
    if (!len) {
        *used = 1;
        return -ENODATA;
    }
    struct cbor_decoder_result res = cbor_stream_decode(p, len, &callbacks, it);
    if (res.status == CBOR_DECODER_NEDATA) {
        *used = res.required;
        return -ENODATA;
    }
    /* Items libcbor decodes without a callback (simple values other than
     * the ones above) are malformed here too. */
    if (res.status != CBOR_DECODER_FINISHED || it->t == VHU_CBOR_NONE)
        return -EBADMSG;
    *used = res.read;
    return 0;
}

const char *vhu_cbor_type_name(enum vhu_cbor_type t)
{
    static const char *const n[] = {"nothing",
                                    "unsigned integer",
                                    "negative integer",
                                    "byte string",
                                    "byte string",
                                    "text string",
                                    "text string",
                                    "array",
                                    "array",
                                    "map",
                                    "map",
                                    "tag",
                                    "float",
                                    "boolean",
                                    "null",
                                    "undefined",
                                    "break"};
    return (unsigned)t < sizeof(n) / sizeof(n[0]) ? n[t] : "unknown item";
}

bool vhu_cbor_is_indef(enum vhu_cbor_type t)
{
    return t == VHU_CBOR_BSTR_INDEF || t == VHU_CBOR_TSTR_INDEF || t == VHU_CBOR_ARRAY_INDEF ||
           t == VHU_CBOR_MAP_INDEF;
}

bool vhu_cbor_is_text(const struct vhu_cbor_item *it, const char *s)
{
    return it->t == VHU_CBOR_TSTR && it->len == strlen(s) && memcmp(it->data, s, it->len) == 0;
}
