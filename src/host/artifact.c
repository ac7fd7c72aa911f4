/* artifact.c — the proteus artifact container, "PTZ1" (API in pt_artifact.h; prose in
 * docs/artifact.md). Build and test: ctest -R c_test_artifact.
 *
 * File layout, all integers little endian:
 *
 *   offset size  field
 *   0      4     magic          "PTZ1"
 *   4      4     u32 version    format version, 1
 *   8      1     u8 codec       0 none, 1 zstd, 2 brotli, 3 zlib (pt_codec ids)
 *   9      1     u8 level       the level/quality the writer used (informational)
 *   10     1     u8 flags       bit 0: the payload was byte-shuffled (pt_codec.h) before compression;
 *                               the other bits must be 0
 *   11     1     u8 reserved    0
 *   12     8     u64 P          payload length in bytes (decoded, after un-shuffling)
 *   20     8     u64 S          stored length: the bytes that follow this 32-byte header
 *   28     4     u32 crc        CRC-32 (zlib's, polynomial 0xEDB88320) of the P payload bytes
 *   32     S     stored         codec(shuffle?(payload)); for zlib this includes pt_codec's 8-byte
 *                               length framing. The file ends exactly here (32 + S bytes).
 *
 * Payload (P bytes once decoded):
 *
 *   0      8     u64 J          length of the JSON header
 *   8      J     JSON header    UTF-8 object, below
 *   8+J    P-8-J data region    the tensors' data and scale blobs, back to back; every offset in the
 *                               JSON is relative to the start of this region
 *
 * JSON header:
 *   "format": "proteus-artifact"       fixed
 *   "version": 1                       same as the file header's version
 *   "recipe": "v9_lora_ttt"            the recipe that produced it ("" when unknown)
 *   "tokenizer_sha256": "ab12..."      sha256 of the tokenizer .model file, 64 hex digits, or ""
 *   "config": {...}                    the recipe config after overrides (any JSON object)
 *   "extra": {...}                     anything else the writer wants to keep (quant settings...)
 *   "tensors": [                       in the writer's order
 *     {"name": "blocks.0.attn.c_q.weight",
 *      "scheme": "int6_per_row",       int6_per_row | int8_per_row | int8_per_tensor | fp16 | fp32 |
 *                                      bf16 | raw
 *      "dtype": "i8",                  dtype of the stored values: i8 for the int schemes, f16 / f32 /
 *                                      bf16 for the float schemes, anything for raw
 *      "packing": "int6",              optional, int6_per_row only: values packed 4 in 3 bytes
 *      "shape": [512, 512],            the tensor's shape
 *      "orig_dtype": "f32",            dtype before export
 *      "data": [OFFSET, LENGTH],       bytes of the values: numel * dtype size, or ceil(numel/4)*3
 *                                      when packed
 *      "scale_dtype": "f16",           int schemes only: f16, f32 or bf16
 *      "scales": [OFFSET, LENGTH]}     int schemes only: shape[0] scales per row, 1 per tensor
 *   ]
 *
 * Loading checks, in order, before any allocation that depends on them: magic, version, codec id,
 * flags, P against PT_ARTIFACT_MAX_PAYLOAD, 32 + S == file length; then decodes with an output
 * limit of P (+1 with shuffle), checks the CRC, J against P and PT_ARTIFACT_MAX_JSON, the JSON, and
 * every tensor's scheme, dtype, shape, lengths and offsets. Nothing in the file is executed.
 */
#include "pt_artifact.h"

#include <math.h>   /* floor, isfinite */
#include <stdio.h>  /* snprintf */
#include <stdlib.h> /* malloc, calloc, free, qsort */
#include <string.h> /* memcpy, strcmp, strdup, strlen */

#include <cjson/cJSON.h> /* JSON header */
#include <zlib.h>        /* crc32_z */

#include "pt_fileio.h" /* pt_file_write_atomic, pt_file_read_all */

static const char *const pt_scheme_names[PT_NSCHEMES] = {
    "int6_per_row", "int8_per_row", "int8_per_tensor", "fp16", "fp32", "bf16", "raw",
};

const char *pt_scheme_name(pt_scheme s) { return (unsigned)s < PT_NSCHEMES ? pt_scheme_names[s] : "?"; }

pt_status pt_scheme_parse(const char *name, pt_scheme *out) {
    for (int i = 0; i < PT_NSCHEMES; i++)
        if (name && strcmp(name, pt_scheme_names[i]) == 0) {
            *out = (pt_scheme)i;
            return PT_OK;
        }
    return PT_FAIL(PT_ERR_VALUE,
                   "unknown scheme '%s' (expected int6_per_row, int8_per_row, int8_per_tensor, fp16, fp32, bf16 or raw)",
                   name ? name : "(null)");
}

/* Frozen spellings and sizes (the file format must not follow renames elsewhere). */
static const struct {
    const char *name;
    size_t size;
} pt_art_dtypes[PT_NDTYPES] = {
    [PT_F32] = {"f32", 4}, [PT_F64] = {"f64", 8}, [PT_BF16] = {"bf16", 2}, [PT_F16] = {"f16", 2},
    [PT_I64] = {"i64", 8}, [PT_I32] = {"i32", 4}, [PT_U16] = {"u16", 2},  [PT_I8] = {"i8", 1},
    [PT_U8] = {"u8", 1},   [PT_BOOL] = {"bool", 1},
};

const char *pt_artifact_dtype_name(pt_dtype dt) {
    return (unsigned)dt < PT_NDTYPES ? pt_art_dtypes[dt].name : "?";
}

pt_status pt_artifact_dtype_parse(const char *name, pt_dtype *out) {
    for (int i = 0; i < PT_NDTYPES; i++)
        if (name && strcmp(name, pt_art_dtypes[i].name) == 0) {
            *out = (pt_dtype)i;
            return PT_OK;
        }
    return PT_FAIL(PT_ERR_DTYPE, "unknown dtype '%s' (expected f32 f64 bf16 f16 i64 i32 u16 i8 u8 bool)",
                   name ? name : "(null)");
}

static int pt_scheme_is_int(pt_scheme s) {
    return s == PT_SCHEME_INT6_PER_ROW || s == PT_SCHEME_INT8_PER_ROW || s == PT_SCHEME_INT8_PER_TENSOR;
}

pt_status pt_artifact_entry_check(const pt_artifact_entry *e, const char *what) {
    const char *nm = e->name ? e->name : "";
    if (!*nm)
        return PT_FAIL(PT_ERR_VALUE, "%s: a tensor has an empty name", what);
    if (strlen(nm) > 4096)
        return PT_FAIL(PT_ERR_VALUE, "%s: a tensor name is longer than 4096 bytes", what);
    if ((unsigned)e->scheme >= PT_NSCHEMES)
        return PT_FAIL(PT_ERR_VALUE, "%s: tensor %s has unknown scheme id %d", what, nm, (int)e->scheme);
    if ((unsigned)e->dtype >= PT_NDTYPES || (unsigned)e->orig_dtype >= PT_NDTYPES)
        return PT_FAIL(PT_ERR_DTYPE, "%s: tensor %s has an unknown dtype id", what, nm);
    if (e->ndim < 0 || e->ndim > PT_MAX_DIMS)
        return PT_FAIL(PT_ERR_SHAPE, "%s: tensor %s has %d dims (0..%d)", what, nm, e->ndim, PT_MAX_DIMS);
    uint64_t numel = 1;
    for (int i = 0; i < e->ndim; i++) {
        if (e->shape[i] < 0 || (uint64_t)e->shape[i] > ((uint64_t)1 << 40))
            return PT_FAIL(PT_ERR_SHAPE, "%s: tensor %s has bad size %lld in dim %d", what, nm,
                           (long long)e->shape[i], i);
        numel *= (uint64_t)e->shape[i];
        if (numel > ((uint64_t)1 << 40))
            return PT_FAIL(PT_ERR_SHAPE, "%s: tensor %s has more than 2^40 elements", what, nm);
    }
    pt_dtype want = e->dtype;
    switch (e->scheme) {
    case PT_SCHEME_INT6_PER_ROW:
    case PT_SCHEME_INT8_PER_ROW:
    case PT_SCHEME_INT8_PER_TENSOR: want = PT_I8; break;
    case PT_SCHEME_FP16: want = PT_F16; break;
    case PT_SCHEME_FP32: want = PT_F32; break;
    case PT_SCHEME_BF16: want = PT_BF16; break;
    default: break;
    }
    if (e->dtype != want)
        return PT_FAIL(PT_ERR_DTYPE, "%s: tensor %s: scheme %s stores %s, not %s", what, nm,
                       pt_scheme_name(e->scheme), pt_art_dtypes[want].name, pt_art_dtypes[e->dtype].name);
    if (e->packed6 && e->scheme != PT_SCHEME_INT6_PER_ROW)
        return PT_FAIL(PT_ERR_VALUE, "%s: tensor %s: int6 packing needs scheme int6_per_row, not %s", what, nm,
                       pt_scheme_name(e->scheme));
    uint64_t want_len = e->packed6 ? pt_int6_packed_size((size_t)numel) : numel * pt_art_dtypes[e->dtype].size;
    if (e->data_len != want_len || (want_len && !e->data))
        return PT_FAIL(PT_ERR_FORMAT, "%s: tensor %s has %zu data bytes but shape %s %s needs %llu", what, nm,
                       e->data_len, pt_art_dtypes[e->dtype].name, e->packed6 ? "(int6-packed)" : "",
                       (unsigned long long)want_len);
    if (pt_scheme_is_int(e->scheme)) {
        uint64_t nscale = 1;
        if (e->scheme != PT_SCHEME_INT8_PER_TENSOR) {
            if (e->ndim < 1)
                return PT_FAIL(PT_ERR_SHAPE, "%s: tensor %s: scheme %s needs at least one dimension", what, nm,
                               pt_scheme_name(e->scheme));
            nscale = (uint64_t)e->shape[0];
        }
        if (e->scale_dtype != PT_F16 && e->scale_dtype != PT_F32 && e->scale_dtype != PT_BF16)
            return PT_FAIL(PT_ERR_DTYPE, "%s: tensor %s: scale dtype must be f16, f32 or bf16, not %s", what, nm,
                           pt_artifact_dtype_name(e->scale_dtype));
        uint64_t want_s = nscale * pt_art_dtypes[e->scale_dtype].size;
        if (e->scales_len != want_s || (want_s && !e->scales))
            return PT_FAIL(PT_ERR_FORMAT, "%s: tensor %s has %zu scale bytes but needs %llu (%llu %s scales)", what,
                           nm, e->scales_len, (unsigned long long)want_s, (unsigned long long)nscale,
                           pt_art_dtypes[e->scale_dtype].name);
    } else if (e->scales_len != 0) {
        return PT_FAIL(PT_ERR_FORMAT, "%s: tensor %s: scheme %s has no scales but %zu scale bytes were given", what,
                       nm, pt_scheme_name(e->scheme), e->scales_len);
    }
    return PT_OK;
}

static void pt_put_le(uint8_t *p, uint64_t v, int n) {
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t pt_get_le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static int pt_cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Finds a duplicate in names[0..n) (sorted copy); returns it or NULL. */
static const char *pt_find_duplicate(const char **names, int n) {
    qsort(names, (size_t)n, sizeof *names, pt_cmp_str_ptr);
    for (int i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            return names[i];
    return NULL;
}

static pt_status pt_parse_json_object(const char *text, const char *field, cJSON **out) {
    *out = cJSON_Parse(text && *text ? text : "{}");
    if (!*out || !cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        return PT_FAIL(PT_ERR_VALUE, "artifact pack: %s is not a JSON object: %.80s", field, text);
    }
    return PT_OK;
}

static int pt_is_sha256_hex(const char *s) {
    if (!s || !*s)
        return 1; /* unknown */
    if (strlen(s) != 64)
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return 0;
    return 1;
}

pt_status pt_artifact_pack(const pt_artifact_entry *entries, int n, const pt_artifact_meta *meta, pt_codec codec,
                           int level, int shuffle, uint8_t **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    if (n < 0 || n > PT_ARTIFACT_MAX_TENSORS || (n > 0 && !entries))
        return PT_FAIL(PT_ERR_VALUE, "artifact pack: bad tensor count %d", n);
    if ((unsigned)codec >= PT_NCODECS)
        return PT_FAIL(PT_ERR_VALUE, "artifact pack: unknown codec id %d", (int)codec);
    if (codec == PT_CODEC_NONE)
        level = 0;
    PT_TRY(pt_codec_check_level(codec, level));
    pt_artifact_meta m = meta ? *meta : (pt_artifact_meta){0};
    if (!pt_is_sha256_hex(m.tokenizer_sha256))
        return PT_FAIL(PT_ERR_VALUE, "artifact pack: tokenizer_sha256 '%s' is not 64 lowercase hex digits",
                       m.tokenizer_sha256);
    for (int i = 0; i < n; i++)
        PT_TRY(pt_artifact_entry_check(&entries[i], "artifact pack"));
    if (n > 0) {
        const char **names = malloc((size_t)n * sizeof *names);
        if (!names)
            return PT_FAIL(PT_ERR_OOM, "artifact pack: out of memory");
        for (int i = 0; i < n; i++)
            names[i] = entries[i].name;
        const char *dup = pt_find_duplicate(names, n);
        pt_status s = dup ? PT_FAIL(PT_ERR_VALUE, "artifact pack: tensor name %s appears twice", dup) : PT_OK;
        free(names);
        PT_TRY(s);
    }

    pt_status s = PT_OK;
    cJSON *root = cJSON_CreateObject(), *config = NULL, *extra = NULL;
    char *json = NULL;
    uint8_t *payload = NULL, *shuffled = NULL, *stored = NULL, *file = NULL;
    size_t stored_len = 0;
    if (!root) {
        s = PT_FAIL(PT_ERR_OOM, "artifact pack: out of memory");
        goto done;
    }
    if ((s = pt_parse_json_object(m.config_json, "config", &config)) != PT_OK)
        goto done;
    if ((s = pt_parse_json_object(m.extra_json, "extra", &extra)) != PT_OK)
        goto done;
    cJSON_AddStringToObject(root, "format", "proteus-artifact");
    cJSON_AddNumberToObject(root, "version", PT_ARTIFACT_VERSION);
    cJSON_AddStringToObject(root, "recipe", m.recipe ? m.recipe : "");
    cJSON_AddStringToObject(root, "tokenizer_sha256", m.tokenizer_sha256 ? m.tokenizer_sha256 : "");
    cJSON_AddItemToObject(root, "config", config);
    config = NULL;
    cJSON_AddItemToObject(root, "extra", extra);
    extra = NULL;
    cJSON *arr = cJSON_AddArrayToObject(root, "tensors");
    uint64_t off = 0;
    for (int i = 0; arr && i < n; i++) {
        const pt_artifact_entry *e = &entries[i];
        cJSON *t = cJSON_CreateObject();
        if (!t) {
            arr = NULL;
            break;
        }
        cJSON_AddItemToArray(arr, t);
        cJSON_AddStringToObject(t, "name", e->name);
        cJSON_AddStringToObject(t, "scheme", pt_scheme_name(e->scheme));
        cJSON_AddStringToObject(t, "dtype", pt_art_dtypes[e->dtype].name);
        if (e->packed6)
            cJSON_AddStringToObject(t, "packing", "int6");
        cJSON *sh = cJSON_AddArrayToObject(t, "shape");
        for (int k = 0; sh && k < e->ndim; k++)
            cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)e->shape[k]));
        cJSON_AddStringToObject(t, "orig_dtype", pt_art_dtypes[e->orig_dtype].name);
        cJSON *d = cJSON_AddArrayToObject(t, "data");
        if (d) {
            cJSON_AddItemToArray(d, cJSON_CreateNumber((double)off));
            cJSON_AddItemToArray(d, cJSON_CreateNumber((double)e->data_len));
        }
        off += e->data_len;
        if (pt_scheme_is_int(e->scheme)) {
            cJSON_AddStringToObject(t, "scale_dtype", pt_art_dtypes[e->scale_dtype].name);
            cJSON *sc = cJSON_AddArrayToObject(t, "scales");
            if (sc) {
                cJSON_AddItemToArray(sc, cJSON_CreateNumber((double)off));
                cJSON_AddItemToArray(sc, cJSON_CreateNumber((double)e->scales_len));
            }
            off += e->scales_len;
        }
    }
    json = arr ? cJSON_PrintUnformatted(root) : NULL;
    if (!json) {
        s = PT_FAIL(PT_ERR_OOM, "artifact pack: cannot build the JSON header");
        goto done;
    }
    size_t jl = strlen(json);
    uint64_t plen = 8 + (uint64_t)jl + off;
    if (plen > PT_ARTIFACT_MAX_PAYLOAD) {
        s = PT_FAIL(PT_ERR_VALUE, "artifact pack: payload of %llu bytes is more than the %llu-byte limit",
                    (unsigned long long)plen, (unsigned long long)PT_ARTIFACT_MAX_PAYLOAD);
        goto done;
    }
    payload = malloc((size_t)plen);
    if (!payload) {
        s = PT_FAIL(PT_ERR_OOM, "artifact pack: cannot allocate %llu bytes", (unsigned long long)plen);
        goto done;
    }
    pt_put_le(payload, jl, 8);
    memcpy(payload + 8, json, jl);
    size_t pos = 8 + jl;
    for (int i = 0; i < n; i++) {
        if (entries[i].data_len)
            memcpy(payload + pos, entries[i].data, entries[i].data_len);
        pos += entries[i].data_len;
        if (entries[i].scales_len)
            memcpy(payload + pos, entries[i].scales, entries[i].scales_len);
        pos += entries[i].scales_len;
    }
    uint32_t crc = (uint32_t)crc32_z(0L, payload, (size_t)plen);
    const uint8_t *src = payload;
    size_t src_len = (size_t)plen;
    if (shuffle) {
        src_len = pt_shuffle4_size((size_t)plen);
        shuffled = malloc(src_len);
        if (!shuffled) {
            s = PT_FAIL(PT_ERR_OOM, "artifact pack: cannot allocate %zu bytes", src_len);
            goto done;
        }
        pt_shuffle4(payload, (size_t)plen, shuffled);
        src = shuffled;
    }
    if ((s = pt_codec_compress(codec, level, src, src_len, &stored, &stored_len)) != PT_OK) {
        pt_error_context(s, "artifact pack");
        goto done;
    }
    file = malloc(PT_ARTIFACT_HEADER_BYTES + stored_len);
    if (!file) {
        s = PT_FAIL(PT_ERR_OOM, "artifact pack: cannot allocate %zu bytes", PT_ARTIFACT_HEADER_BYTES + stored_len);
        goto done;
    }
    memcpy(file, PT_ARTIFACT_MAGIC, 4);
    pt_put_le(file + 4, PT_ARTIFACT_VERSION, 4);
    file[8] = (uint8_t)codec;
    file[9] = (uint8_t)level;
    file[10] = shuffle ? 1 : 0;
    file[11] = 0;
    pt_put_le(file + 12, plen, 8);
    pt_put_le(file + 20, stored_len, 8);
    pt_put_le(file + 28, crc, 4);
    memcpy(file + PT_ARTIFACT_HEADER_BYTES, stored, stored_len);
    *out = file;
    *out_len = PT_ARTIFACT_HEADER_BYTES + stored_len;
done:
    cJSON_Delete(root);
    cJSON_Delete(config);
    cJSON_Delete(extra);
    free(json);
    free(payload);
    free(shuffled);
    free(stored);
    return s;
}

pt_status pt_artifact_write(const char *path, const pt_artifact_entry *entries, int n,
                            const pt_artifact_meta *meta, pt_codec codec, int level, int shuffle) {
    uint8_t *buf;
    size_t len;
    PT_TRY(pt_artifact_pack(entries, n, meta, codec, level, shuffle, &buf, &len));
    pt_chunk c = {buf, len};
    pt_status s = pt_file_write_atomic(path, &c, 1);
    free(buf);
    return s;
}

/* "PK\x03\x04" style rendering of the first bytes of a file. */
static const char *pt_magic_str(const uint8_t *p, size_t n, char *buf, size_t bn) {
    size_t k = 0;
    for (size_t i = 0; i < n && k + 5 < bn; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\'' && p[i] != '\\')
            buf[k++] = (char)p[i];
        else
            k += (size_t)snprintf(buf + k, bn - k, "\\x%02X", p[i]);
    }
    buf[k] = 0;
    return buf;
}

/* A JSON number that is a non-negative integer below 2^53. */
static int pt_json_u64(const cJSON *j, uint64_t *v) {
    if (!cJSON_IsNumber(j))
        return 0;
    double d = j->valuedouble;
    if (!isfinite(d) || d < 0 || d != floor(d) || d > 9007199254740992.0)
        return 0;
    *v = (uint64_t)d;
    return 1;
}

static const char *pt_json_str(const cJSON *obj, const char *key) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(j) ? j->valuestring : NULL;
}

/* Reads [offset, length] of field `field` and checks it lies inside the data region. */
static pt_status pt_art_range(const cJSON *t, const char *field, const char *what, const char *name,
                              uint64_t region, uint64_t *off, uint64_t *len) {
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(t, field);
    if (!cJSON_IsArray(r) || cJSON_GetArraySize(r) != 2 || !pt_json_u64(r->child, off) ||
        !pt_json_u64(r->child->next, len))
        return PT_FAIL(PT_ERR_FORMAT, "artifact %s: tensor %s: '%s' must be [offset, length] (non-negative integers)",
                       what, name, field);
    if (*off > region || *len > region - *off)
        return PT_FAIL(PT_ERR_FORMAT, "artifact %s: tensor %s %s extends past the payload (offset %llu + %llu > %llu)",
                       what, name, field, (unsigned long long)*off, (unsigned long long)*len,
                       (unsigned long long)region);
    return PT_OK;
}

void pt_artifact_free(pt_artifact *a) {
    if (!a)
        return;
    for (int i = 0; a->entries && i < a->n; i++)
        free((char *)a->entries[i].name);
    free(a->entries);
    free(a->payload);
    free(a->recipe);
    free(a->config_json);
    free(a->extra_json);
    free(a->tokenizer_sha256);
    memset(a, 0, sizeof *a);
}

int pt_artifact_find(const pt_artifact *a, const char *name) {
    for (int i = 0; i < a->n; i++)
        if (strcmp(a->entries[i].name, name) == 0)
            return i;
    return -1;
}

/* Parses the JSON header and the tensor table of a decoded payload held by a. */
static pt_status pt_art_parse_json(pt_artifact *a, const char *what) {
    const uint8_t *p = a->payload;
    uint64_t plen = a->payload_len;
    uint64_t jl = pt_get_le(p, 8);
    if (jl > plen - 8 || jl > PT_ARTIFACT_MAX_JSON)
        return PT_FAIL(PT_ERR_FORMAT, "artifact %s: JSON header length %llu does not fit the payload of %llu bytes%s",
                       what, (unsigned long long)jl, (unsigned long long)plen,
                       jl > PT_ARTIFACT_MAX_JSON ? " (or the 64 MiB limit)" : "");
    a->json_len = jl;
    uint64_t region = plen - 8 - jl;
    const uint8_t *base = p + 8 + jl;
    cJSON *root = cJSON_ParseWithLength((const char *)p + 8, (size_t)jl);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return PT_FAIL(PT_ERR_FORMAT, "artifact %s: the JSON header is not a valid JSON object", what);
    }
    pt_status s = PT_OK;
    const char *fmt = pt_json_str(root, "format");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "version");
    const char *recipe = pt_json_str(root, "recipe"), *tok = pt_json_str(root, "tokenizer_sha256");
    const cJSON *config = cJSON_GetObjectItemCaseSensitive(root, "config");
    const cJSON *extra = cJSON_GetObjectItemCaseSensitive(root, "extra");
    const cJSON *tensors = cJSON_GetObjectItemCaseSensitive(root, "tensors");
    uint64_t v;
    if (!fmt || strcmp(fmt, "proteus-artifact") != 0) {
        s = PT_FAIL(PT_ERR_FORMAT, "artifact %s: JSON header format is '%s', expected 'proteus-artifact'", what,
                    fmt ? fmt : "(missing)");
    } else if (!pt_json_u64(ver, &v) || v != a->version) {
        s = PT_FAIL(PT_ERR_FORMAT, "artifact %s: JSON header version does not match the file header's %u", what,
                    (unsigned)a->version);
    } else if (!recipe || !tok || !cJSON_IsObject(config) || (extra && !cJSON_IsObject(extra)) ||
               !cJSON_IsArray(tensors)) {
        s = PT_FAIL(PT_ERR_FORMAT,
                    "artifact %s: JSON header needs string recipe and tokenizer_sha256, object config and array tensors",
                    what);
    } else if (cJSON_GetArraySize(tensors) > PT_ARTIFACT_MAX_TENSORS) {
        s = PT_FAIL(PT_ERR_FORMAT, "artifact %s: more than %d tensors", what, PT_ARTIFACT_MAX_TENSORS);
    }
    if (s != PT_OK) {
        cJSON_Delete(root);
        return s;
    }
    a->recipe = strdup(recipe);
    a->tokenizer_sha256 = strdup(tok);
    a->config_json = cJSON_PrintUnformatted(config);
    a->extra_json = extra ? cJSON_PrintUnformatted(extra) : strdup("{}");
    int count = cJSON_GetArraySize(tensors);
    a->entries = calloc((size_t)(count > 0 ? count : 1), sizeof *a->entries);
    if (!a->recipe || !a->tokenizer_sha256 || !a->config_json || !a->extra_json || !a->entries) {
        cJSON_Delete(root);
        return PT_FAIL(PT_ERR_OOM, "artifact %s: out of memory", what);
    }
    char ctx[600];
    snprintf(ctx, sizeof ctx, "artifact %s", what);
    int idx = 0;
    for (const cJSON *t = tensors->child; t && s == PT_OK; t = t->next, idx++) {
        pt_artifact_entry *e = &a->entries[a->n];
        const char *name = pt_json_str(t, "name");
        if (!cJSON_IsObject(t) || !name) {
            s = PT_FAIL(PT_ERR_FORMAT, "artifact %s: tensor #%d has no name", what, idx);
            break;
        }
        e->name = strdup(name);
        if (!e->name) {
            s = PT_FAIL(PT_ERR_OOM, "artifact %s: out of memory", what);
            break;
        }
        a->n++;
        const char *scheme = pt_json_str(t, "scheme"), *dt = pt_json_str(t, "dtype");
        const char *odt = pt_json_str(t, "orig_dtype"), *packing = pt_json_str(t, "packing");
        const cJSON *shape = cJSON_GetObjectItemCaseSensitive(t, "shape");
        if (pt_scheme_parse(scheme, &e->scheme) != PT_OK) {
            s = PT_FAIL(PT_ERR_FORMAT, "artifact %s: tensor %s has unknown scheme '%s'", what, name,
                        scheme ? scheme : "(missing)");
            break;
        }
        if (pt_artifact_dtype_parse(dt, &e->dtype) != PT_OK || pt_artifact_dtype_parse(odt, &e->orig_dtype) != PT_OK) {
            s = PT_FAIL(PT_ERR_FORMAT, "artifact %s: tensor %s has unknown dtype '%s' or orig_dtype '%s'", what, name,
                        dt ? dt : "(missing)", odt ? odt : "(missing)");
            break;
        }
        if (packing && strcmp(packing, "int6") != 0 && strcmp(packing, "none") != 0) {
            s = PT_FAIL(PT_ERR_FORMAT, "artifact %s: tensor %s has unknown packing '%s'", what, name, packing);
            break;
        }
        e->packed6 = packing && strcmp(packing, "int6") == 0;
        if (!cJSON_IsArray(shape) || cJSON_GetArraySize(shape) > PT_MAX_DIMS) {
            s = PT_FAIL(PT_ERR_FORMAT, "artifact %s: tensor %s: shape must be an array of at most %d sizes", what, name,
                        PT_MAX_DIMS);
            break;
        }
        for (const cJSON *x = shape->child; x; x = x->next) {
            uint64_t d;
            if (!pt_json_u64(x, &d) || d > ((uint64_t)1 << 40)) {
                s = PT_FAIL(PT_ERR_FORMAT, "artifact %s: tensor %s: shape entry %d is not a size", what, name, e->ndim);
                break;
            }
            e->shape[e->ndim++] = (int64_t)d;
        }
        if (s != PT_OK)
            break;
        uint64_t off, len;
        if ((s = pt_art_range(t, "data", what, name, region, &off, &len)) != PT_OK)
            break;
        e->data = base + off;
        e->data_len = (size_t)len;
        if (pt_scheme_is_int(e->scheme)) {
            const char *sdt = pt_json_str(t, "scale_dtype");
            if (pt_artifact_dtype_parse(sdt, &e->scale_dtype) != PT_OK) {
                s = PT_FAIL(PT_ERR_FORMAT, "artifact %s: tensor %s has unknown scale_dtype '%s'", what, name,
                            sdt ? sdt : "(missing)");
                break;
            }
            if ((s = pt_art_range(t, "scales", what, name, region, &off, &len)) != PT_OK)
                break;
            e->scales = base + off;
            e->scales_len = (size_t)len;
        } else if (cJSON_GetObjectItemCaseSensitive(t, "scales")) {
            s = PT_FAIL(PT_ERR_FORMAT, "artifact %s: tensor %s: scheme %s has no scales", what, name,
                        pt_scheme_name(e->scheme));
            break;
        }
        s = pt_artifact_entry_check(e, ctx);
    }
    cJSON_Delete(root);
    if (s == PT_OK && a->n > 0) {
        const char **names = malloc((size_t)a->n * sizeof *names);
        if (!names)
            return PT_FAIL(PT_ERR_OOM, "artifact %s: out of memory", what);
        for (int i = 0; i < a->n; i++)
            names[i] = a->entries[i].name;
        const char *dup = pt_find_duplicate(names, a->n);
        if (dup)
            s = PT_FAIL(PT_ERR_FORMAT, "artifact %s: tensor name %s appears twice", what, dup);
        free(names);
    }
    return s;
}

pt_status pt_artifact_unpack(const uint8_t *buf, size_t len, const char *what, pt_artifact *out) {
    memset(out, 0, sizeof *out);
    if (!what)
        what = "<buffer>";
    char mbuf[64];
    if (len < 4 || memcmp(buf, PT_ARTIFACT_MAGIC, 4) != 0)
        return PT_FAIL(PT_ERR_FORMAT, "%s is not a proteus artifact (magic '%s', expected 'PTZ1')", what,
                       pt_magic_str(buf, len < 4 ? len : 4, mbuf, sizeof mbuf));
    if (len < PT_ARTIFACT_HEADER_BYTES)
        return PT_FAIL(PT_ERR_FORMAT, "artifact %s is truncated: %zu bytes, the header alone is %d", what, len,
                       PT_ARTIFACT_HEADER_BYTES);
    uint32_t version = (uint32_t)pt_get_le(buf + 4, 4);
    if (version != PT_ARTIFACT_VERSION)
        return PT_FAIL(PT_ERR_FORMAT, "artifact %s has format version %u; this proteus reads version %d", what,
                       (unsigned)version, PT_ARTIFACT_VERSION);
    if (buf[8] >= PT_NCODECS)
        return PT_FAIL(PT_ERR_FORMAT, "artifact %s: unknown codec id %u", what, buf[8]);
    if ((buf[10] & ~1u) != 0 || buf[11] != 0)
        return PT_FAIL(PT_ERR_FORMAT, "artifact %s: unknown flags 0x%02X / reserved byte 0x%02X", what, buf[10], buf[11]);
    uint64_t plen = pt_get_le(buf + 12, 8), slen = pt_get_le(buf + 20, 8);
    uint32_t crc = (uint32_t)pt_get_le(buf + 28, 4);
    if (plen > PT_ARTIFACT_MAX_PAYLOAD)
        return PT_FAIL(PT_ERR_FORMAT, "artifact %s claims a payload of %llu bytes, more than the %llu-byte limit", what,
                       (unsigned long long)plen, (unsigned long long)PT_ARTIFACT_MAX_PAYLOAD);
    if (plen < 8)
        return PT_FAIL(PT_ERR_FORMAT, "artifact %s: payload of %llu bytes is too short for its JSON length field",
                       what, (unsigned long long)plen);
    if (slen != len - PT_ARTIFACT_HEADER_BYTES)
        return PT_FAIL(PT_ERR_FORMAT, "artifact %s is %s: the header says %d + %llu bytes, the file has %zu", what,
                       slen > len - PT_ARTIFACT_HEADER_BYTES ? "truncated" : "followed by extra bytes",
                       PT_ARTIFACT_HEADER_BYTES, (unsigned long long)slen, len);
    out->version = version;
    out->codec = (pt_codec)buf[8];
    out->level = buf[9];
    out->shuffle = buf[10] & 1;
    out->file_len = len;
    out->stored_len = slen;
    out->payload_len = plen;
    size_t want = out->shuffle ? pt_shuffle4_size((size_t)plen) : (size_t)plen;
    uint8_t *dec = NULL;
    size_t dl = 0;
    pt_status s = pt_codec_decompress(out->codec, buf + PT_ARTIFACT_HEADER_BYTES, (size_t)slen, want, &dec, &dl);
    if (s != PT_OK) {
        memset(out, 0, sizeof *out);
        return pt_error_context(s, "artifact %s", what);
    }
    if (dl != want) {
        free(dec);
        memset(out, 0, sizeof *out);
        return PT_FAIL(PT_ERR_FORMAT, "artifact %s: payload decodes to %zu bytes, the header says %zu", what, dl, want);
    }
    if (out->shuffle) {
        uint8_t *un = malloc(want);
        size_t ul = 0;
        s = un ? pt_unshuffle4(dec, dl, un, &ul) : PT_FAIL(PT_ERR_OOM, "out of memory");
        free(dec);
        if (s == PT_OK && ul != plen)
            s = PT_FAIL(PT_ERR_FORMAT, "un-shuffled payload is %zu bytes, the header says %llu", ul,
                        (unsigned long long)plen);
        if (s != PT_OK) {
            free(un);
            memset(out, 0, sizeof *out);
            return pt_error_context(s, "artifact %s", what);
        }
        dec = un;
    }
    out->payload = dec;
    uint32_t got = (uint32_t)crc32_z(0L, dec, (size_t)plen);
    if (got != crc) {
        pt_artifact_free(out);
        return PT_FAIL(PT_ERR_FORMAT, "artifact %s is corrupted: payload checksum 0x%08X, the header says 0x%08X", what,
                       got, crc);
    }
    s = pt_art_parse_json(out, what);
    if (s != PT_OK)
        pt_artifact_free(out);
    return s;
}

pt_status pt_artifact_read(const char *path, pt_artifact *out) {
    memset(out, 0, sizeof *out);
    uint8_t *buf;
    size_t len;
    PT_TRY(pt_file_read_all(path, &buf, &len, (size_t)PT_ARTIFACT_MAX_PAYLOAD + 4096));
    pt_status s = pt_artifact_unpack(buf, len, path, out);
    free(buf);
    return s;
}
