/* test_artifact.c — the PTZ1 artifact container: round trips with every codec (with and without
 * byte shuffle), and clean errors for truncated files at every cut point, flipped bytes (error or
 * the exact original content, never silently different data), bad magic,
 * other versions, huge claimed lengths, unknown schemes and offsets past the payload.
 * Run: ctest --test-dir build -R c_test_artifact
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "pt_artifact.h"
#include "pt_fileio.h"
#include "pt_test.h"

static int8_t q6[4 * 8], q8[3 * 5], q8t[6];
static uint8_t packed6[18];
static uint16_t sc4[4], sc3[3], sct[1], f16v[7], bf16v[2];
static float f32v[5];
static int64_t i64v[3];

static int make_entries(pt_artifact_entry *e) {
    for (int i = 0; i < 32; i++)
        q6[i] = (int8_t)((i * 5) % 63 - 31);
    for (int i = 0; i < 15; i++)
        q8[i] = (int8_t)(i * 17 - 120);
    for (int i = 0; i < 6; i++)
        q8t[i] = (int8_t)(i - 3);
    int8_t p6src[24];
    for (int i = 0; i < 24; i++)
        p6src[i] = (int8_t)(i - 12);
    PT_CHECK_OK(pt_int6_pack(p6src, 24, packed6));
    for (int i = 0; i < 4; i++)
        sc4[i] = (uint16_t)(0x2000 + i);
    for (int i = 0; i < 3; i++)
        sc3[i] = (uint16_t)(0x2400 + i);
    sct[0] = 0x3c00;
    for (int i = 0; i < 7; i++)
        f16v[i] = (uint16_t)(0x3c00 + i * 3);
    bf16v[0] = 0x3f80;
    bf16v[1] = 0xbf80;
    for (int i = 0; i < 5; i++)
        f32v[i] = 0.25f * (float)i;
    for (int i = 0; i < 3; i++)
        i64v[i] = (int64_t)i * 1000000000000LL;
    int n = 0;
    e[n++] = (pt_artifact_entry){.name = "blocks.0.attn.c_q.weight", .scheme = PT_SCHEME_INT6_PER_ROW, .dtype = PT_I8,
                                 .ndim = 2, .shape = {4, 8}, .orig_dtype = PT_F32, .data = q6, .data_len = 32,
                                 .scale_dtype = PT_F16, .scales = sc4, .scales_len = 8};
    e[n++] = (pt_artifact_entry){.name = "blocks.0.mlp.fc.weight", .scheme = PT_SCHEME_INT6_PER_ROW, .dtype = PT_I8,
                                 .packed6 = 1, .ndim = 2, .shape = {3, 8}, .orig_dtype = PT_F32, .data = packed6,
                                 .data_len = 18, .scale_dtype = PT_F16, .scales = sc3, .scales_len = 6};
    e[n++] = (pt_artifact_entry){.name = "tok_emb.weight", .scheme = PT_SCHEME_INT8_PER_ROW, .dtype = PT_I8,
                                 .ndim = 2, .shape = {3, 5}, .orig_dtype = PT_BF16, .data = q8, .data_len = 15,
                                 .scale_dtype = PT_F16, .scales = sc3, .scales_len = 6};
    e[n++] = (pt_artifact_entry){.name = "bigram.embed.weight", .scheme = PT_SCHEME_INT8_PER_TENSOR, .dtype = PT_I8,
                                 .ndim = 2, .shape = {2, 3}, .orig_dtype = PT_F32, .data = q8t, .data_len = 6,
                                 .scale_dtype = PT_F16, .scales = sct, .scales_len = 2};
    e[n++] = (pt_artifact_entry){.name = "smear.gate", .scheme = PT_SCHEME_FP16, .dtype = PT_F16, .ndim = 1,
                                 .shape = {7}, .orig_dtype = PT_F32, .data = f16v, .data_len = 14};
    e[n++] = (pt_artifact_entry){.name = "blocks.0.attn_scale", .scheme = PT_SCHEME_FP32, .dtype = PT_F32, .ndim = 1,
                                 .shape = {5}, .orig_dtype = PT_F32, .data = f32v, .data_len = 20};
    e[n++] = (pt_artifact_entry){.name = "depth_scale", .scheme = PT_SCHEME_BF16, .dtype = PT_BF16, .ndim = 1,
                                 .shape = {2}, .orig_dtype = PT_BF16, .data = bf16v, .data_len = 4};
    e[n++] = (pt_artifact_entry){.name = "step", .scheme = PT_SCHEME_RAW, .dtype = PT_I64, .ndim = 1, .shape = {3},
                                 .orig_dtype = PT_I64, .data = i64v, .data_len = 24};
    e[n++] = (pt_artifact_entry){.name = "empty", .scheme = PT_SCHEME_FP32, .dtype = PT_F32, .ndim = 2,
                                 .shape = {0, 4}, .orig_dtype = PT_F32, .data = NULL, .data_len = 0};
    return n;
}

static const pt_artifact_meta META = {
    .recipe = "v9_lora_ttt",
    .config_json = "{\"num_layers\":11,\"model_dim\":512,\"lr\":0.025,\"name\":\"x\\\"y\"}",
    .extra_json = "{\"clip\":0.9999984}",
    .tokenizer_sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
};

static void check_equal(const pt_artifact_entry *e, int n, const pt_artifact *a) {
    PT_CHECK(a->n == n);
    for (int i = 0; i < n && i < a->n; i++) {
        const pt_artifact_entry *x = &e[i], *y = &a->entries[i];
        PT_CHECK(strcmp(x->name, y->name) == 0);
        PT_CHECK(x->scheme == y->scheme && x->dtype == y->dtype && x->packed6 == y->packed6);
        PT_CHECK(x->orig_dtype == y->orig_dtype && x->ndim == y->ndim);
        for (int k = 0; k < x->ndim; k++)
            PT_CHECK(x->shape[k] == y->shape[k]);
        PT_CHECK(x->data_len == y->data_len && (x->data_len == 0 || memcmp(x->data, y->data, x->data_len) == 0));
        PT_CHECK(x->scales_len == y->scales_len);
        if (x->scales_len)
            PT_CHECK(x->scale_dtype == y->scale_dtype && memcmp(x->scales, y->scales, x->scales_len) == 0);
    }
    PT_CHECK(strcmp(a->recipe, "v9_lora_ttt") == 0);
    PT_CHECK(strcmp(a->tokenizer_sha256, META.tokenizer_sha256) == 0);
    PT_CHECK(strcmp(a->config_json, "{\"num_layers\":11,\"model_dim\":512,\"lr\":0.025,\"name\":\"x\\\"y\"}") == 0);
    PT_CHECK(strcmp(a->extra_json, "{\"clip\":0.9999984}") == 0);
}

PT_TEST(artifact_roundtrip_every_codec) {
    pt_artifact_entry e[16];
    int n = make_entries(e);
    const int levels[PT_NCODECS] = {0, 22, 11, 9};
    for (int c = 0; c < PT_NCODECS; c++)
        for (int sh = 0; sh <= 1; sh++) {
            uint8_t *buf = NULL;
            size_t len = 0;
            PT_CHECK_OK(pt_artifact_pack(e, n, &META, (pt_codec)c, levels[c], sh, &buf, &len));
            PT_CHECK(len > PT_ARTIFACT_HEADER_BYTES && memcmp(buf, "PTZ1", 4) == 0);
            pt_artifact a;
            PT_CHECK_OK(pt_artifact_unpack(buf, len, "mem.ptz", &a));
            check_equal(e, n, &a);
            PT_CHECK(a.codec == (pt_codec)c && a.level == levels[c] && a.shuffle == sh);
            PT_CHECK(a.file_len == len && a.stored_len == len - 32);
            PT_CHECK(pt_artifact_find(&a, "tok_emb.weight") == 2 && pt_artifact_find(&a, "nope") == -1);
            /* the packed int6 entry unpacks to the values that went in */
            int8_t v[24];
            const pt_artifact_entry *p = &a.entries[1];
            PT_CHECK_OK(pt_int6_unpack(p->data, p->data_len, 24, v));
            PT_CHECK(v[0] == -12 && v[23] == 11);
            pt_artifact_free(&a);
            free(buf);
        }
}

PT_TEST(artifact_file_write_read) {
    pt_artifact_entry e[16];
    int n = make_entries(e);
    char dir[] = "/tmp/pt_test_art_XXXXXX";
    PT_CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/model.ptz", dir);
    PT_CHECK_OK(pt_artifact_write(path, e, n, &META, PT_CODEC_BROTLI, 11, 1));
    pt_artifact a;
    PT_CHECK_OK(pt_artifact_read(path, &a));
    check_equal(e, n, &a);
    pt_artifact_free(&a);
    /* defaults: no meta at all */
    PT_CHECK_OK(pt_artifact_write(path, e, 1, NULL, PT_CODEC_ZSTD, 3, 0));
    PT_CHECK_OK(pt_artifact_read(path, &a));
    PT_CHECK(a.n == 1 && strcmp(a.recipe, "") == 0 && strcmp(a.config_json, "{}") == 0 &&
             strcmp(a.tokenizer_sha256, "") == 0);
    pt_artifact_free(&a);
    unlink(path);
    rmdir(dir);
    PT_CHECK_ERR(pt_artifact_read("run/none-such.ptz", &a), PT_ERR_IO,
                 "cannot open run/none-such.ptz: No such file or directory");
}

PT_TEST(artifact_truncated_every_cut) {
    pt_artifact_entry e[16];
    int n = make_entries(e);
    for (int c = 0; c < PT_NCODECS; c++) {
        uint8_t *buf = NULL;
        size_t len = 0;
        PT_CHECK_OK(pt_artifact_pack(e, n, &META, (pt_codec)c, c == 1 ? 19 : 5, c % 2, &buf, &len));
        int bad = 0;
        for (size_t cut = 0; cut < len; cut++) {
            pt_artifact a;
            pt_status s = pt_artifact_unpack(buf, cut, "run/model.ptz", &a);
            if (s != PT_ERR_FORMAT || !strstr(pt_last_error(), "run/model.ptz"))
                bad++;
            if (s == PT_OK)
                pt_artifact_free(&a);
        }
        PT_CHECK(bad == 0);
        pt_artifact a;
        PT_CHECK_ERR(pt_artifact_unpack(buf, len - 1, "run/model.ptz", &a), PT_ERR_FORMAT,
                     "artifact run/model.ptz is truncated");
        free(buf);
    }
}

PT_TEST(artifact_flipped_bytes) {
    pt_artifact_entry e[16];
    int n = make_entries(e);
    for (int c = 0; c < PT_NCODECS; c++) {
        uint8_t *buf = NULL;
        size_t len = 0;
        PT_CHECK_OK(pt_artifact_pack(e, n, &META, (pt_codec)c, c == 1 ? 19 : 5, 1, &buf, &len));
        for (size_t i = 0; i < len; i++) {
            for (int bit = 0; bit < 8; bit += 7) {
                buf[i] ^= (uint8_t)(1u << bit);
                pt_artifact a;
                pt_status s = pt_artifact_unpack(buf, len, "flip.ptz", &a);
                /* Either a clean error, or (a flip in the informational level byte, or in bits of the
                 * compressed stream the decoder ignores) the exact original content, CRC-verified. */
                if (s == PT_OK) {
                    check_equal(e, n, &a);
                } else if (s != PT_ERR_FORMAT) {
                    char m[160];
                    snprintf(m, sizeof m, "codec %d byte %zu bit %d: %s", c, i, bit, pt_status_name(s));
                    pt_test_fail(__FILE__, __LINE__, m);
                }
                if (s == PT_OK)
                    pt_artifact_free(&a);
                buf[i] ^= (uint8_t)(1u << bit);
            }
        }
        free(buf);
    }
}

PT_TEST(artifact_bad_magic_and_version) {
    pt_artifact a;
    const uint8_t zip[40] = {'P', 'K', 3, 4};
    PT_CHECK_ERR(pt_artifact_unpack(zip, sizeof zip, "run/model.ptz", &a), PT_ERR_FORMAT,
                 "run/model.ptz is not a proteus artifact (magic 'PK\\x03\\x04'");
    PT_CHECK_ERR(pt_artifact_unpack((const uint8_t *)"PT", 2, "x.ptz", &a), PT_ERR_FORMAT, "magic 'PT'");
    pt_artifact_entry e[16];
    int n = make_entries(e);
    uint8_t *buf = NULL;
    size_t len = 0;
    PT_CHECK_OK(pt_artifact_pack(e, n, &META, PT_CODEC_ZSTD, 3, 0, &buf, &len));
    buf[4] = 2;
    PT_CHECK_ERR(pt_artifact_unpack(buf, len, "v2.ptz", &a), PT_ERR_FORMAT,
                 "artifact v2.ptz has format version 2; this proteus reads version 1");
    buf[4] = 1;
    buf[8] = 9;
    PT_CHECK_ERR(pt_artifact_unpack(buf, len, "c.ptz", &a), PT_ERR_FORMAT, "unknown codec id 9");
    buf[8] = 1;
    buf[10] = 4;
    PT_CHECK_ERR(pt_artifact_unpack(buf, len, "f.ptz", &a), PT_ERR_FORMAT, "unknown flags 0x04");
    free(buf);
}

static void put_le(uint8_t *p, uint64_t v, int n) {
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

PT_TEST(artifact_huge_claimed_lengths) {
    pt_artifact_entry e[16];
    int n = make_entries(e);
    uint8_t *buf = NULL;
    size_t len = 0;
    PT_CHECK_OK(pt_artifact_pack(e, n, &META, PT_CODEC_ZSTD, 3, 0, &buf, &len));
    pt_artifact a;
    uint8_t save[8];
    memcpy(save, buf + 12, 8);
    put_le(buf + 12, (uint64_t)1 << 62, 8);
    PT_CHECK_ERR(pt_artifact_unpack(buf, len, "big.ptz", &a), PT_ERR_FORMAT,
                 "artifact big.ptz claims a payload of 4611686018427387904 bytes, more than the 2147483648-byte limit");
    /* a payload length under the limit but larger than what the stream decodes to */
    put_le(buf + 12, (uint64_t)1 << 30, 8);
    PT_CHECK_ERR(pt_artifact_unpack(buf, len, "big.ptz", &a), PT_ERR_FORMAT, "payload decodes to");
    memcpy(buf + 12, save, 8);
    put_le(buf + 20, (uint64_t)1 << 50, 8);
    PT_CHECK_ERR(pt_artifact_unpack(buf, len, "big.ptz", &a), PT_ERR_FORMAT,
                 "artifact big.ptz is truncated: the header says 32 + 1125899906842624 bytes");
    free(buf);
}

/* Builds an uncompressed artifact around a hand-written JSON header and data region. */
static uint8_t *handmade(const char *json, size_t region, size_t *len) {
    size_t jl = strlen(json), plen = 8 + jl + region;
    *len = 32 + plen;
    uint8_t *b = calloc(1, *len);
    memcpy(b, "PTZ1", 4);
    put_le(b + 4, 1, 4);
    put_le(b + 12, plen, 8);
    put_le(b + 20, plen, 8);
    put_le(b + 32, jl, 8);
    memcpy(b + 40, json, jl);
    put_le(b + 28, crc32_z(0, b + 32, plen), 4);
    return b;
}

static void expect_bad(const char *tensors, size_t region, pt_status code, const char *needle) {
    char json[2048];
    snprintf(json, sizeof json,
             "{\"format\":\"proteus-artifact\",\"version\":1,\"recipe\":\"r\",\"tokenizer_sha256\":\"\","
             "\"config\":{},\"tensors\":[%s]}",
             tensors);
    size_t len;
    uint8_t *b = handmade(json, region, &len);
    pt_artifact a;
    PT_CHECK_ERR(pt_artifact_unpack(b, len, "run/model.ptz", &a), code, needle);
    free(b);
}

PT_TEST(artifact_bad_tables) {
    /* the handmade builder itself produces loadable files */
    size_t len;
    uint8_t *b = handmade("{\"format\":\"proteus-artifact\",\"version\":1,\"recipe\":\"r\",\"tokenizer_sha256\":\"\","
                          "\"config\":{\"a\":1},\"tensors\":[{\"name\":\"w\",\"scheme\":\"fp16\",\"dtype\":\"f16\","
                          "\"shape\":[2],\"orig_dtype\":\"f32\",\"data\":[0,4]}]}",
                          4, &len);
    pt_artifact a;
    PT_CHECK_OK(pt_artifact_unpack(b, len, "ok.ptz", &a));
    PT_CHECK(a.n == 1 && a.entries[0].data_len == 4 && strcmp(a.config_json, "{\"a\":1}") == 0);
    pt_artifact_free(&a);
    free(b);

    expect_bad("{\"name\":\"blocks.3.attn.c_q.weight\",\"scheme\":\"int6_per_row\",\"dtype\":\"i8\",\"shape\":[5,1000],"
               "\"orig_dtype\":\"f32\",\"data\":[1234,5000],\"scale_dtype\":\"f16\",\"scales\":[0,10]}",
               4096, PT_ERR_FORMAT,
               "artifact run/model.ptz: tensor blocks.3.attn.c_q.weight data extends past the payload (offset 1234 + 5000 > 4096)");
    expect_bad("{\"name\":\"w\",\"scheme\":\"int4_magic\",\"dtype\":\"i8\",\"shape\":[2],\"orig_dtype\":\"f32\","
               "\"data\":[0,2]}",
               4, PT_ERR_FORMAT, "tensor w has unknown scheme 'int4_magic'");
    expect_bad("{\"name\":\"w\",\"scheme\":\"fp16\",\"dtype\":\"f8\",\"shape\":[2],\"orig_dtype\":\"f32\",\"data\":[0,4]}",
               4, PT_ERR_FORMAT, "unknown dtype 'f8'");
    expect_bad("{\"name\":\"w\",\"scheme\":\"fp16\",\"dtype\":\"f32\",\"shape\":[2],\"orig_dtype\":\"f32\",\"data\":[0,8]}",
               8, PT_ERR_DTYPE, "tensor w: scheme fp16 stores f16, not f32");
    expect_bad("{\"name\":\"w\",\"scheme\":\"fp16\",\"dtype\":\"f16\",\"shape\":[3],\"orig_dtype\":\"f32\",\"data\":[0,4]}",
               4, PT_ERR_FORMAT, "tensor w has 4 data bytes but shape f16  needs 6");
    expect_bad("{\"name\":\"w\",\"scheme\":\"int8_per_row\",\"dtype\":\"i8\",\"shape\":[2,2],\"orig_dtype\":\"f32\","
               "\"data\":[0,4],\"scale_dtype\":\"f16\",\"scales\":[4,2]}",
               8, PT_ERR_FORMAT, "tensor w has 2 scale bytes but needs 4 (2 f16 scales)");
    expect_bad("{\"name\":\"w\",\"scheme\":\"int8_per_row\",\"dtype\":\"i8\",\"shape\":[2,2],\"orig_dtype\":\"f32\","
               "\"data\":[0,4],\"scale_dtype\":\"f16\",\"scales\":[18446744073709551615,4]}",
               8, PT_ERR_FORMAT, "'scales' must be [offset, length]");
    expect_bad("{\"name\":\"w\",\"scheme\":\"int8_per_row\",\"dtype\":\"i8\",\"shape\":[2,2],\"orig_dtype\":\"f32\","
               "\"data\":[0,4],\"scale_dtype\":\"f16\",\"scales\":[6,4]}",
               8, PT_ERR_FORMAT, "tensor w scales extends past the payload (offset 6 + 4 > 8)");
    expect_bad("{\"name\":\"w\",\"scheme\":\"fp32\",\"dtype\":\"f32\",\"shape\":[1],\"orig_dtype\":\"f32\",\"data\":[0,4]},"
               "{\"name\":\"w\",\"scheme\":\"fp32\",\"dtype\":\"f32\",\"shape\":[1],\"orig_dtype\":\"f32\",\"data\":[4,4]}",
               8, PT_ERR_FORMAT, "tensor name w appears twice");
    expect_bad("{\"name\":\"w\",\"scheme\":\"fp32\",\"dtype\":\"f32\",\"shape\":[1099511627777,1099511627777],"
               "\"orig_dtype\":\"f32\",\"data\":[0,4]}",
               8, PT_ERR_FORMAT, "shape entry 0 is not a size");
    expect_bad("{\"scheme\":\"fp32\"}", 0, PT_ERR_FORMAT, "tensor #0 has no name");

    /* JSON length field larger than the payload */
    b = handmade("{}", 0, &len);
    put_le(b + 32, 1000, 8);
    put_le(b + 28, crc32_z(0, b + 32, len - 32), 4);
    PT_CHECK_ERR(pt_artifact_unpack(b, len, "j.ptz", &a), PT_ERR_FORMAT,
                 "JSON header length 1000 does not fit the payload of 10 bytes");
    free(b);
    b = handmade("{\"format\":\"zip\"}", 0, &len);
    PT_CHECK_ERR(pt_artifact_unpack(b, len, "j.ptz", &a), PT_ERR_FORMAT, "JSON header format is 'zip'");
    free(b);
}

PT_TEST(artifact_pack_checks_entries) {
    pt_artifact_entry e[16];
    int n = make_entries(e);
    uint8_t *buf = NULL;
    size_t len;
    pt_artifact_entry x = e[0];
    x.dtype = PT_F32;
    PT_CHECK_ERR(pt_artifact_pack(&x, 1, NULL, PT_CODEC_ZSTD, 3, 0, &buf, &len), PT_ERR_DTYPE,
                 "tensor blocks.0.attn.c_q.weight: scheme int6_per_row stores i8, not f32");
    x = e[0];
    x.scales_len = 6;
    PT_CHECK_ERR(pt_artifact_pack(&x, 1, NULL, PT_CODEC_ZSTD, 3, 0, &buf, &len), PT_ERR_FORMAT,
                 "has 6 scale bytes but needs 8 (4 f16 scales)");
    x = e[4];
    x.packed6 = 1;
    PT_CHECK_ERR(pt_artifact_pack(&x, 1, NULL, PT_CODEC_ZSTD, 3, 0, &buf, &len), PT_ERR_VALUE,
                 "int6 packing needs scheme int6_per_row, not fp16");
    x = e[4];
    x.scheme = (pt_scheme)42;
    PT_CHECK_ERR(pt_artifact_pack(&x, 1, NULL, PT_CODEC_ZSTD, 3, 0, &buf, &len), PT_ERR_VALUE,
                 "unknown scheme id 42");
    pt_artifact_entry two[2] = {e[4], e[4]};
    PT_CHECK_ERR(pt_artifact_pack(two, 2, NULL, PT_CODEC_ZSTD, 3, 0, &buf, &len), PT_ERR_VALUE,
                 "tensor name smear.gate appears twice");
    pt_artifact_meta m = META;
    m.tokenizer_sha256 = "xyz";
    PT_CHECK_ERR(pt_artifact_pack(e, n, &m, PT_CODEC_ZSTD, 3, 0, &buf, &len), PT_ERR_VALUE,
                 "tokenizer_sha256 'xyz' is not 64 lowercase hex digits");
    m = META;
    m.config_json = "[1,2]";
    PT_CHECK_ERR(pt_artifact_pack(e, n, &m, PT_CODEC_ZSTD, 3, 0, &buf, &len), PT_ERR_VALUE,
                 "config is not a JSON object");
    PT_CHECK_ERR(pt_artifact_pack(e, n, &META, PT_CODEC_ZSTD, 23, 0, &buf, &len), PT_ERR_VALUE,
                 "zstd level 23 out of range");
    pt_scheme s;
    PT_CHECK_ERR(pt_scheme_parse("int4", &s), PT_ERR_VALUE, "unknown scheme 'int4'");
    PT_CHECK_OK(pt_scheme_parse("int8_per_tensor", &s));
    PT_CHECK(s == PT_SCHEME_INT8_PER_TENSOR);
}

int main(void) { return pt_test_main(); }
