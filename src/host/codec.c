/* codec.c — zstd, brotli, zlib, byte shuffle and int6 packing (formats documented in pt_codec.h).
 *
 * Every decoder is bounded: it never allocates more than max_out + 1 bytes and reports corrupt,
 * truncated or oversized input as PT_ERR_FORMAT. zstd and brotli decode by streaming into a buffer
 * that grows geometrically up to the limit, so a frame that does not state (or lies about) its size
 * cannot force a large allocation.
 *
 * Test: tests/c/test_codec.c (run by ctest as c_test_codec).
 */
#include "pt_codec.h"

#include <stdlib.h> /* malloc, realloc, free */
#include <string.h> /* memcpy, strcmp */

#include <brotli/decode.h> /* BrotliDecoderDecompressStream, BrotliDecoderErrorString */
#include <brotli/encode.h> /* BrotliEncoderCompress, BrotliEncoderMaxCompressedSize */
#include <zlib.h>          /* compress2, uncompress2, compressBound */
#include <zstd.h>          /* ZSTD_compress, ZSTD_decompressStream, ZSTD_getFrameContentSize */

static const char *const pt_codec_names[PT_NCODECS] = {"none", "zstd", "brotli", "zlib"};

const char *pt_codec_name(pt_codec c) {
    return (c >= 0 && c < PT_NCODECS) ? pt_codec_names[c] : "?";
}

pt_status pt_codec_parse(const char *name, pt_codec *out) {
    for (int i = 0; i < PT_NCODECS; i++)
        if (name && strcmp(name, pt_codec_names[i]) == 0) {
            *out = (pt_codec)i;
            return PT_OK;
        }
    return PT_FAIL(PT_ERR_VALUE, "unknown codec '%s' (expected none, zstd, brotli or zlib)",
                   name ? name : "(null)");
}

int pt_codec_max_level(pt_codec c) {
    switch (c) {
    case PT_CODEC_ZSTD: return 22;
    case PT_CODEC_BROTLI: return 11;
    case PT_CODEC_ZLIB: return 9;
    default: return 0;
    }
}

pt_status pt_codec_check_level(pt_codec c, int level) {
    int lo = (c == PT_CODEC_ZSTD) ? 1 : 0, hi = pt_codec_max_level(c);
    if (c < 0 || c >= PT_NCODECS)
        return PT_FAIL(PT_ERR_VALUE, "unknown codec id %d", (int)c);
    if (level < lo || level > hi)
        return PT_FAIL(PT_ERR_VALUE, "%s level %d out of range (%d..%d)", pt_codec_name(c), level, lo, hi);
    return PT_OK;
}

/* ---- zstd ---- */

pt_status pt_zstd_compress(int level, const void *src, size_t n, uint8_t **out, size_t *out_len) {
    PT_TRY(pt_codec_check_level(PT_CODEC_ZSTD, level));
    size_t bound = ZSTD_compressBound(n);
    if (ZSTD_isError(bound))
        return PT_FAIL(PT_ERR_VALUE, "zstd: input of %zu bytes is too large", n);
    uint8_t *buf = malloc(bound + 1);
    if (!buf)
        return PT_FAIL(PT_ERR_OOM, "zstd: cannot allocate %zu bytes", bound + 1);
    size_t k = ZSTD_compress(buf, bound, n ? src : "", n, level);
    if (ZSTD_isError(k)) {
        free(buf);
        return PT_FAIL(PT_ERR_VALUE, "zstd compress (level %d): %s", level, ZSTD_getErrorName(k));
    }
    *out = buf;
    *out_len = k;
    return PT_OK;
}

/* Growing output buffer bounded by limit = max_out + 1 (the extra byte tells "exactly max_out" from
 * "more than max_out"). */
typedef struct {
    uint8_t *buf;
    size_t cap, pos, limit, max_out;
} pt_growbuf;

static pt_status pt_growbuf_init(pt_growbuf *g, size_t hint, size_t max_out, const char *who) {
    g->max_out = max_out;
    g->limit = max_out == SIZE_MAX ? SIZE_MAX : max_out + 1;
    g->cap = hint < 4096 ? 4096 : hint;
    if (g->cap > g->limit)
        g->cap = g->limit;
    g->pos = 0;
    g->buf = malloc(g->cap);
    if (!g->buf)
        return PT_FAIL(PT_ERR_OOM, "%s: cannot allocate %zu bytes", who, g->cap);
    return PT_OK;
}

/* Makes room for more output; fails once the limit is reached. */
static pt_status pt_growbuf_grow(pt_growbuf *g, const char *who) {
    if (g->cap >= g->limit)
        return PT_FAIL(PT_ERR_FORMAT, "%s: decoded data exceeds the limit of %zu bytes", who, g->max_out);
    size_t ncap = g->cap > g->limit / 2 ? g->limit : g->cap * 2;
    uint8_t *nb = realloc(g->buf, ncap);
    if (!nb)
        return PT_FAIL(PT_ERR_OOM, "%s: cannot allocate %zu bytes", who, ncap);
    g->buf = nb;
    g->cap = ncap;
    return PT_OK;
}

static pt_status pt_growbuf_finish(pt_growbuf *g, const char *who, uint8_t **out, size_t *out_len) {
    if (g->pos > g->max_out) {
        free(g->buf);
        return PT_FAIL(PT_ERR_FORMAT, "%s: decoded data exceeds the limit of %zu bytes", who, g->max_out);
    }
    /* keep one spare byte so empty results are non-NULL and text can be NUL-terminated */
    if (g->pos == g->cap) {
        uint8_t *nb = realloc(g->buf, g->cap + 1);
        if (!nb) {
            free(g->buf);
            return PT_FAIL(PT_ERR_OOM, "%s: cannot allocate %zu bytes", who, g->cap + 1);
        }
        g->buf = nb;
    }
    *out = g->buf;
    *out_len = g->pos;
    return PT_OK;
}

pt_status pt_zstd_decompress(const void *src, size_t n, size_t max_out, uint8_t **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    unsigned long long size = ZSTD_getFrameContentSize(src, n);
    if (size == ZSTD_CONTENTSIZE_ERROR)
        return PT_FAIL(PT_ERR_FORMAT, "zstd: input of %zu bytes is not a zstd frame (bad magic or header)", n);
    if (size != ZSTD_CONTENTSIZE_UNKNOWN && size > max_out)
        return PT_FAIL(PT_ERR_FORMAT, "zstd: frame claims %llu decoded bytes, more than the limit of %zu",
                       size, max_out);
    /* one frame with a stated size that covers all the input: decode in one call. Only when the
     * stated size is possible for n input bytes (a zstd block of 128 KiB costs at least 4 bytes, so
     * no frame expands more than 32768:1); a frame header that lies about its size would otherwise
     * make a few bytes allocate max_out (found by tests/fuzz/fuzz_codec.c). It then streams, and the
     * buffer only grows with what really decodes. */
    if (size != ZSTD_CONTENTSIZE_UNKNOWN && size / 32768 <= n && ZSTD_findFrameCompressedSize(src, n) == n) {
        uint8_t *buf = malloc((size_t)size + 1);
        if (!buf)
            return PT_FAIL(PT_ERR_OOM, "zstd: cannot allocate %llu bytes", size + 1);
        size_t k = ZSTD_decompress(buf, (size_t)size, src, n);
        if (ZSTD_isError(k) || k != size) {
            free(buf);
            return PT_FAIL(PT_ERR_FORMAT, "zstd: corrupt data (%s)",
                           ZSTD_isError(k) ? ZSTD_getErrorName(k) : "decoded size differs from the frame header");
        }
        *out = buf;
        *out_len = k;
        return PT_OK;
    }
    /* otherwise stream (unknown size, several frames, or a truncated frame) */
    ZSTD_DCtx *d = ZSTD_createDCtx();
    if (!d)
        return PT_FAIL(PT_ERR_OOM, "zstd: cannot create a decoder");
    pt_growbuf g;
    size_t hint = n > SIZE_MAX / 4 ? SIZE_MAX : n * 4;
    if (size != ZSTD_CONTENTSIZE_UNKNOWN && size / 32768 <= n)
        hint = (size_t)size + 1;
    pt_status s = pt_growbuf_init(&g, hint, max_out, "zstd");
    if (s != PT_OK) {
        ZSTD_freeDCtx(d);
        return s;
    }
    ZSTD_inBuffer in = {src, n, 0};
    for (;;) {
        ZSTD_outBuffer ob = {g.buf, g.cap, g.pos};
        size_t r = ZSTD_decompressStream(d, &ob, &in);
        g.pos = ob.pos;
        if (ZSTD_isError(r)) {
            s = PT_FAIL(PT_ERR_FORMAT, "zstd: corrupt data (%s)", ZSTD_getErrorName(r));
            break;
        }
        if (r == 0 && in.pos == in.size)
            break; /* last frame complete, all input used */
        if (g.pos == g.cap) {
            if ((s = pt_growbuf_grow(&g, "zstd")) != PT_OK)
                break;
        } else if (in.pos == in.size) {
            s = PT_FAIL(PT_ERR_FORMAT, "zstd: data is truncated (input ended inside a frame)");
            break;
        }
    }
    ZSTD_freeDCtx(d);
    if (s != PT_OK) {
        free(g.buf);
        return s;
    }
    return pt_growbuf_finish(&g, "zstd", out, out_len);
}

/* ---- brotli ---- */

pt_status pt_brotli_compress(int quality, const void *src, size_t n, uint8_t **out, size_t *out_len) {
    PT_TRY(pt_codec_check_level(PT_CODEC_BROTLI, quality));
    size_t bound = BrotliEncoderMaxCompressedSize(n);
    if (bound == 0)
        return PT_FAIL(PT_ERR_VALUE, "brotli: input of %zu bytes is too large", n);
    uint8_t *buf = malloc(bound + 1);
    if (!buf)
        return PT_FAIL(PT_ERR_OOM, "brotli: cannot allocate %zu bytes", bound + 1);
    size_t k = bound;
    if (!BrotliEncoderCompress(quality, BROTLI_DEFAULT_WINDOW, BROTLI_MODE_GENERIC, n,
                               n ? src : (const void *)"", &k, buf)) {
        free(buf);
        return PT_FAIL(PT_ERR_VALUE, "brotli compress (quality %d) failed on %zu bytes", quality, n);
    }
    *out = buf;
    *out_len = k;
    return PT_OK;
}

pt_status pt_brotli_decompress(const void *src, size_t n, size_t max_out, uint8_t **out,
                               size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    BrotliDecoderState *d = BrotliDecoderCreateInstance(NULL, NULL, NULL);
    if (!d)
        return PT_FAIL(PT_ERR_OOM, "brotli: cannot create a decoder");
    pt_growbuf g;
    pt_status s = pt_growbuf_init(&g, n * 4, max_out, "brotli");
    if (s != PT_OK) {
        BrotliDecoderDestroyInstance(d);
        return s;
    }
    size_t avail_in = n;
    const uint8_t *next_in = n ? src : (const uint8_t *)"";
    for (;;) {
        size_t avail_out = g.cap - g.pos;
        uint8_t *next_out = g.buf + g.pos;
        BrotliDecoderResult r = BrotliDecoderDecompressStream(d, &avail_in, &next_in, &avail_out, &next_out, NULL);
        g.pos = (size_t)(next_out - g.buf);
        if (r == BROTLI_DECODER_RESULT_SUCCESS) {
            if (avail_in != 0)
                s = PT_FAIL(PT_ERR_FORMAT, "brotli: %zu trailing bytes after the end of the stream", avail_in);
            break;
        }
        if (r == BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT) {
            if ((s = pt_growbuf_grow(&g, "brotli")) != PT_OK)
                break;
            continue;
        }
        if (r == BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT) {
            s = PT_FAIL(PT_ERR_FORMAT, "brotli: data is truncated (input ended inside the stream)");
            break;
        }
        s = PT_FAIL(PT_ERR_FORMAT, "brotli: corrupt data (%s)",
                    BrotliDecoderErrorString(BrotliDecoderGetErrorCode(d)));
        break;
    }
    BrotliDecoderDestroyInstance(d);
    if (s != PT_OK) {
        free(g.buf);
        return s;
    }
    return pt_growbuf_finish(&g, "brotli", out, out_len);
}

/* ---- zlib (u64 LE decoded length + zlib stream) ---- */

static void pt_put_u64le(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t pt_get_u64le(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

pt_status pt_zlib_compress(int level, const void *src, size_t n, uint8_t **out, size_t *out_len) {
    PT_TRY(pt_codec_check_level(PT_CODEC_ZLIB, level));
    uLong bound = compressBound((uLong)n);
    uint8_t *buf = malloc(8 + (size_t)bound);
    if (!buf)
        return PT_FAIL(PT_ERR_OOM, "zlib: cannot allocate %zu bytes", 8 + (size_t)bound);
    pt_put_u64le(buf, n);
    uLongf k = bound;
    int rc = compress2(buf + 8, &k, n ? src : (const void *)"", (uLong)n, level);
    if (rc != Z_OK) {
        free(buf);
        return PT_FAIL(PT_ERR_VALUE, "zlib compress (level %d) failed: %s", level, zError(rc));
    }
    *out = buf;
    *out_len = 8 + (size_t)k;
    return PT_OK;
}

pt_status pt_zlib_decompress(const void *src, size_t n, size_t max_out, uint8_t **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    if (n < 8)
        return PT_FAIL(PT_ERR_FORMAT, "zlib: data is truncated (%zu bytes, the length field alone is 8)", n);
    uint64_t len = pt_get_u64le(src);
    if (len > max_out)
        return PT_FAIL(PT_ERR_FORMAT, "zlib: stored length %llu is more than the limit of %zu bytes",
                       (unsigned long long)len, max_out);
    /* deflate expands at most 1032:1 (a 258-byte match in 2 bits), so a stored length beyond that
     * is a lie: refuse it before allocating (a 21-byte input used to malloc 2 GiB here; tested by
     * tests/c/test_fuzz_regressions.c) */
    if (len / 1032 > n)
        return PT_FAIL(PT_ERR_FORMAT,
                       "zlib: stored length %llu is impossible for %zu bytes of compressed data (deflate expands "
                       "at most 1032:1): the length field is corrupt",
                       (unsigned long long)len, n);
    uint8_t *buf = malloc((size_t)len + 1);
    if (!buf)
        return PT_FAIL(PT_ERR_OOM, "zlib: cannot allocate %llu bytes", (unsigned long long)len + 1);
    uLongf dl = (uLongf)len;
    uLong sl = (uLong)(n - 8);
    int rc = uncompress2(buf, &dl, (const uint8_t *)src + 8, &sl);
    if (rc != Z_OK || dl != len || sl != n - 8) {
        free(buf);
        if (rc == Z_DATA_ERROR)
            return PT_FAIL(PT_ERR_FORMAT, "zlib: corrupt data");
        if (rc == Z_BUF_ERROR)
            return PT_FAIL(PT_ERR_FORMAT, "zlib: data is truncated or decodes to more than its stored length %llu",
                           (unsigned long long)len);
        if (rc != Z_OK)
            return PT_FAIL(PT_ERR_FORMAT, "zlib: %s", zError(rc));
        if (dl != len)
            return PT_FAIL(PT_ERR_FORMAT, "zlib: decoded %lu bytes but the stored length is %llu",
                           (unsigned long)dl, (unsigned long long)len);
        return PT_FAIL(PT_ERR_FORMAT, "zlib: %lu trailing bytes after the end of the stream",
                       (unsigned long)(n - 8 - sl));
    }
    *out = buf;
    *out_len = (size_t)len;
    return PT_OK;
}

/* ---- dispatch ---- */

pt_status pt_codec_compress(pt_codec c, int level, const void *src, size_t n, uint8_t **out,
                            size_t *out_len) {
    switch (c) {
    case PT_CODEC_ZSTD: return pt_zstd_compress(level, src, n, out, out_len);
    case PT_CODEC_BROTLI: return pt_brotli_compress(level, src, n, out, out_len);
    case PT_CODEC_ZLIB: return pt_zlib_compress(level, src, n, out, out_len);
    case PT_CODEC_NONE: {
        uint8_t *buf = malloc(n + 1);
        if (!buf)
            return PT_FAIL(PT_ERR_OOM, "cannot allocate %zu bytes", n + 1);
        if (n)
            memcpy(buf, src, n);
        *out = buf;
        *out_len = n;
        return PT_OK;
    }
    default: return PT_FAIL(PT_ERR_VALUE, "unknown codec id %d", (int)c);
    }
}

pt_status pt_codec_decompress(pt_codec c, const void *src, size_t n, size_t max_out, uint8_t **out,
                              size_t *out_len) {
    switch (c) {
    case PT_CODEC_ZSTD: return pt_zstd_decompress(src, n, max_out, out, out_len);
    case PT_CODEC_BROTLI: return pt_brotli_decompress(src, n, max_out, out, out_len);
    case PT_CODEC_ZLIB: return pt_zlib_decompress(src, n, max_out, out, out_len);
    case PT_CODEC_NONE:
        if (n > max_out)
            return PT_FAIL(PT_ERR_FORMAT, "%zu bytes is more than the limit of %zu", n, max_out);
        return pt_codec_compress(PT_CODEC_NONE, 0, src, n, out, out_len);
    default: return PT_FAIL(PT_ERR_FORMAT, "unknown codec id %d", (int)c);
    }
}

/* ---- byte shuffle ---- */

size_t pt_shuffle4_size(size_t n) { return ((n + 3) & ~(size_t)3) + 1; }

void pt_shuffle4(const uint8_t *src, size_t n, uint8_t *dst) {
    size_t padded = (n + 3) & ~(size_t)3, rows = padded / 4;
    for (size_t j = 0; j < 4; j++)
        for (size_t i = 0; i < rows; i++) {
            size_t k = 4 * i + j;
            dst[j * rows + i] = k < n ? src[k] : 0;
        }
    dst[padded] = (uint8_t)(padded - n);
}

pt_status pt_unshuffle4(const uint8_t *src, size_t n, uint8_t *dst, size_t *out_len) {
    if (n == 0)
        return PT_FAIL(PT_ERR_FORMAT, "byte shuffle: empty input (at least the pad-count byte is needed)");
    size_t padded = n - 1, pad = src[n - 1];
    if (padded % 4 != 0)
        return PT_FAIL(PT_ERR_FORMAT, "byte shuffle: %zu data bytes is not a multiple of 4", padded);
    if (pad > 3 || pad > padded)
        return PT_FAIL(PT_ERR_FORMAT, "byte shuffle: pad count %zu is invalid for %zu data bytes", pad, padded);
    size_t rows = padded / 4, len = padded - pad;
    for (size_t k = len; k < padded; k++) /* k = 4*(rows-1) + j */
        if (src[(k % 4) * rows + rows - 1] != 0)
            return PT_FAIL(PT_ERR_FORMAT, "byte shuffle: padding byte %zu is not zero", k);
    for (size_t j = 0; j < 4; j++)
        for (size_t i = 0; i < rows; i++) {
            size_t k = 4 * i + j;
            if (k < len)
                dst[k] = src[j * rows + i];
        }
    *out_len = len;
    return PT_OK;
}

/* ---- int6 packing ---- */

size_t pt_int6_packed_size(size_t n) { return (n / 4 + (n % 4 != 0)) * 3; }

pt_status pt_int6_pack(const int8_t *vals, size_t n, uint8_t *dst) {
    for (size_t g = 0; g < n; g += 4) {
        uint32_t w = 0;
        for (size_t i = 0; i < 4; i++) {
            if (g + i >= n)
                break;
            int v = vals[g + i];
            if (v < -32 || v > 31)
                return PT_FAIL(PT_ERR_VALUE, "int6 pack: value %d at index %zu is outside [-32, 31]", v, g + i);
            w |= (uint32_t)(v & 63) << (6 * i);
        }
        uint8_t *p = dst + (g / 4) * 3;
        p[0] = (uint8_t)w;
        p[1] = (uint8_t)(w >> 8);
        p[2] = (uint8_t)(w >> 16);
    }
    return PT_OK;
}

pt_status pt_int6_unpack(const uint8_t *src, size_t nbytes, size_t n, int8_t *dst) {
    if (nbytes != pt_int6_packed_size(n))
        return PT_FAIL(PT_ERR_FORMAT, "int6 unpack: %zu values need %zu packed bytes, got %zu", n,
                       pt_int6_packed_size(n), nbytes);
    for (size_t g = 0; g < n; g += 4) {
        const uint8_t *p = src + (g / 4) * 3;
        uint32_t w = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
        for (size_t i = 0; i < 4; i++) {
            uint32_t u = (w >> (6 * i)) & 63;
            if (g + i >= n) {
                if (u != 0)
                    return PT_FAIL(PT_ERR_FORMAT, "int6 unpack: padding bits after value %zu are not zero", n);
                continue;
            }
            dst[g + i] = (int8_t)(u >= 32 ? (int)u - 64 : (int)u);
        }
    }
    return PT_OK;
}
