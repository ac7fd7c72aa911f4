/* tests/fuzz/fuzz_codec.c — libFuzzer target for the codecs' decoders (src/host/pt_codec.h).
 *
 * The first input byte selects the decoder, the rest is its input:
 *   0 zstd, 1 brotli, 2 zlib (u64 length framing), 3 none      decompress with the artifact's
 *                                                             2 GiB limit, and again with 4 KiB
 *   4 unshuffle4                                              pad byte and padding validation
 *   5 int6 unpack                                             n = 4/3 of the bytes (and n - 1)
 * A successful decode (up to 256 KiB) is re-encoded and decoded again and must give the same bytes.
 *
 *   bash scripts/fuzz.sh codec 120
 */
#include <stdint.h> /* uint8_t */
#include <stdlib.h> /* malloc, free, abort */
#include <string.h> /* memcmp */

#include "pt_artifact.h" /* PT_ARTIFACT_MAX_PAYLOAD */
#include "pt_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void pt_fuzz_decode(pt_codec c, const uint8_t *src, size_t n, size_t max_out) {
    uint8_t *out = NULL;
    size_t len = 0;
    if (pt_codec_decompress(c, src, n, max_out, &out, &len) != PT_OK)
        return;
    if (len > max_out)
        abort();
    uint8_t *re = NULL, *back = NULL;
    size_t rl = 0, bl = 0;
    /* re-encode only small results: a few input bytes can legitimately decode to megabytes */
    if (len <= (1u << 18) && pt_codec_compress(c, c == PT_CODEC_NONE ? 0 : 1, out, len, &re, &rl) == PT_OK) {
        if (pt_codec_decompress(c, re, rl, len, &back, &bl) != PT_OK || bl != len ||
            (len && memcmp(back, out, len) != 0))
            abort(); /* round trip lost bytes */
        free(back);
        free(re);
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    int sel = data[0] % 6;
    const uint8_t *src = data + 1;
    size_t n = size - 1;
    static const pt_codec codecs[4] = {PT_CODEC_ZSTD, PT_CODEC_BROTLI, PT_CODEC_ZLIB, PT_CODEC_NONE};
    if (sel < 4) {
        pt_fuzz_decode(codecs[sel], src, n, (size_t)PT_ARTIFACT_MAX_PAYLOAD);
        pt_fuzz_decode(codecs[sel], src, n, 4096);
    } else if (sel == 4) {
        uint8_t *dst = malloc(n + 1);
        size_t ol = 0;
        if (dst && pt_unshuffle4(src, n, dst, &ol) == PT_OK) {
            if (ol + 1 > n || pt_shuffle4_size(ol) != n)
                abort();
            uint8_t *again = malloc(n);
            pt_shuffle4(dst, ol, again);
            if (memcmp(again, src, n) != 0)
                abort(); /* a valid shuffled buffer must re-shuffle to itself */
            free(again);
        }
        free(dst);
    } else {
        size_t vals = n / 3 * 4;
        int8_t *dst = malloc(vals + 1);
        if (dst) {
            if (pt_int6_unpack(src, n, vals, dst) == PT_OK) {
                for (size_t i = 0; i < vals; i++)
                    if (dst[i] < -32 || dst[i] > 31)
                        abort();
            }
            if (vals > 0)
                (void)pt_int6_unpack(src, n, vals - 1, dst);
            free(dst);
        }
    }
    return 0;
}
