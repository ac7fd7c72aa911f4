/* pt_codec.h — byte codecs for artifacts: zstd, brotli, zlib, the 4-byte byte shuffle and int6
 * bit packing. All functions work on plain byte buffers; outputs are malloc'ed and owned by the
 * caller (free()).
 *
 * Decoders treat their input as untrusted: corrupt or truncated input gives PT_ERR_FORMAT with a
 * message, never a crash, and no decoder allocates more than the caller's max_out.
 *
 * zlib framing (proteus-specific, because zlib streams do not record their decoded length):
 *     u64 little-endian decoded length, then one zlib stream (RFC 1950, compress2 output).
 *
 * Byte shuffle (spec §4.5, the #1539 "BROT" pre-pass): pad the input with zero bytes to a multiple
 * of 4, view it as rows of 4 bytes, emit byte 0 of every row, then byte 1 of every row, then 2, then
 * 3; append one byte = the pad count (0..3). Output length = padded length + 1.
 *
 * int6 packing: values in [-32, 31], 4 values in 3 bytes. For a group v0..v3 with 6-bit two's
 * complement codes u_i = v_i & 63, the 24-bit word u0 | u1<<6 | u2<<12 | u3<<18 is stored little
 * endian. A last partial group is padded with zero codes. Packed size = ceil(n/4)*3 bytes.
 *
 * Tests: tests/c/test_codec.c, tests/lua/test_codec.lua.
 */
#ifndef PT_CODEC_H
#define PT_CODEC_H

#include <stddef.h> /* size_t */
#include <stdint.h> /* uint8_t, int8_t */

#include "pt_status.h"

/* Codec ids; the numbers are stored in artifact files, never renumber. */
typedef enum {
    PT_CODEC_NONE = 0,
    PT_CODEC_ZSTD = 1,
    PT_CODEC_BROTLI = 2,
    PT_CODEC_ZLIB = 3,
    PT_NCODECS
} pt_codec;

/* "none", "zstd", "brotli", "zlib" */
const char *pt_codec_name(pt_codec c);
pt_status pt_codec_parse(const char *name, pt_codec *out);
/* Levels: zstd 1..22, brotli 0..11 (quality), zlib 0..9, none 0. */
pt_status pt_codec_check_level(pt_codec c, int level);
int pt_codec_max_level(pt_codec c);

/* Compresses src[0..n) into a new buffer *out of *out_len bytes. */
pt_status pt_codec_compress(pt_codec c, int level, const void *src, size_t n, uint8_t **out,
                            size_t *out_len);
/* Decompresses; fails with PT_ERR_FORMAT if the result would exceed max_out bytes. */
pt_status pt_codec_decompress(pt_codec c, const void *src, size_t n, size_t max_out, uint8_t **out,
                              size_t *out_len);

pt_status pt_zstd_compress(int level, const void *src, size_t n, uint8_t **out, size_t *out_len);
pt_status pt_zstd_decompress(const void *src, size_t n, size_t max_out, uint8_t **out, size_t *out_len);
pt_status pt_brotli_compress(int quality, const void *src, size_t n, uint8_t **out, size_t *out_len);
pt_status pt_brotli_decompress(const void *src, size_t n, size_t max_out, uint8_t **out,
                               size_t *out_len);
pt_status pt_zlib_compress(int level, const void *src, size_t n, uint8_t **out, size_t *out_len);
pt_status pt_zlib_decompress(const void *src, size_t n, size_t max_out, uint8_t **out, size_t *out_len);

/* Byte shuffle: dst must hold pt_shuffle4_size(n) bytes. */
size_t pt_shuffle4_size(size_t n);
void pt_shuffle4(const uint8_t *src, size_t n, uint8_t *dst);
/* Inverse; dst must hold n bytes (the result is at most n-1 bytes long). Validates the trailing pad
 * byte (0..3, consistent with n) and that the padding bytes are zero. */
pt_status pt_unshuffle4(const uint8_t *src, size_t n, uint8_t *dst, size_t *out_len);

/* int6 packing: dst must hold pt_int6_packed_size(n) bytes. Values outside [-32, 31] are refused
 * (PT_ERR_VALUE naming the index and value). */
size_t pt_int6_packed_size(size_t n);
pt_status pt_int6_pack(const int8_t *vals, size_t n, uint8_t *dst);
/* Unpacks n values from src (nbytes must equal pt_int6_packed_size(n); unused bits must be 0). */
pt_status pt_int6_unpack(const uint8_t *src, size_t nbytes, size_t n, int8_t *dst);

#endif
