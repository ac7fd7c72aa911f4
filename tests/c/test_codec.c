/* test_codec.c — codecs (zstd, brotli, zlib), byte shuffle, int6 packing and pt_fileio.
 * Run: ctest --test-dir build -R c_test_codec   (or build/test_codec from the repo root)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pt_codec.h"
#include "pt_fileio.h"
#include "pt_test.h"

/* Deterministic compressible test data: small-integer "weights" with some structure. */
static uint8_t *make_data(size_t n, uint32_t seed) {
    uint8_t *p = malloc(n ? n : 1);
    uint32_t x = seed ? seed : 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)((x % 7) + (i % 64 == 0 ? 100 : 0));
    }
    return p;
}

static void roundtrip(pt_codec c, int level, size_t n) {
    uint8_t *src = make_data(n, (uint32_t)(n + 7)), *enc = NULL, *dec = NULL;
    size_t el = 0, dl = 0;
    PT_CHECK_OK(pt_codec_compress(c, level, src, n, &enc, &el));
    PT_CHECK_OK(pt_codec_decompress(c, enc, el, n, &dec, &dl));
    PT_CHECK(dl == n);
    PT_CHECK(dec && (n == 0 || memcmp(src, dec, n) == 0));
    free(src);
    free(enc);
    free(dec);
}

PT_TEST(codec_roundtrip_all_levels) {
    for (int l = 1; l <= 22; l += (l < 19 ? 6 : 1))
        roundtrip(PT_CODEC_ZSTD, l, 10000);
    for (int q = 0; q <= 11; q++)
        roundtrip(PT_CODEC_BROTLI, q, 5000);
    for (int l = 0; l <= 9; l++)
        roundtrip(PT_CODEC_ZLIB, l, 5000);
    roundtrip(PT_CODEC_NONE, 0, 5000);
    /* empty and 1-byte inputs */
    for (int c = 0; c < PT_NCODECS; c++) {
        roundtrip((pt_codec)c, c == PT_CODEC_ZSTD ? 3 : 0, 0);
        roundtrip((pt_codec)c, c == PT_CODEC_ZSTD ? 3 : 0, 1);
    }
}

PT_TEST(codec_compresses) {
    uint8_t *src = make_data(100000, 3), *enc = NULL;
    size_t el = 0;
    PT_CHECK_OK(pt_zstd_compress(22, src, 100000, &enc, &el));
    PT_CHECK(el < 60000); /* 7 symbols: < 3 bits each */
    free(enc);
    free(src);
}

PT_TEST(codec_bad_levels_and_names) {
    uint8_t *o = NULL;
    size_t ol;
    PT_CHECK_ERR(pt_zstd_compress(23, "ab", 2, &o, &ol), PT_ERR_VALUE, "zstd level 23 out of range (1..22)");
    PT_CHECK_ERR(pt_zstd_compress(0, "ab", 2, &o, &ol), PT_ERR_VALUE, "zstd level 0");
    PT_CHECK_ERR(pt_brotli_compress(12, "ab", 2, &o, &ol), PT_ERR_VALUE, "brotli level 12 out of range (0..11)");
    PT_CHECK_ERR(pt_zlib_compress(10, "ab", 2, &o, &ol), PT_ERR_VALUE, "zlib level 10");
    pt_codec c;
    PT_CHECK_ERR(pt_codec_parse("lzma", &c), PT_ERR_VALUE, "unknown codec 'lzma'");
    PT_CHECK_OK(pt_codec_parse("brotli", &c));
    PT_CHECK(c == PT_CODEC_BROTLI);
    PT_CHECK(strcmp(pt_codec_name(PT_CODEC_ZLIB), "zlib") == 0);
}

/* Every codec, every truncation point and many flipped bytes: a clean error or (for a flip that the
 * format cannot detect) a result of bounded size — never a crash. */
PT_TEST(codec_truncated_and_corrupt) {
    size_t n = 3000;
    uint8_t *src = make_data(n, 11);
    for (int c = 1; c < PT_NCODECS; c++) {
        uint8_t *enc = NULL, *dec = NULL;
        size_t el = 0, dl = 0;
        PT_CHECK_OK(pt_codec_compress((pt_codec)c, c == PT_CODEC_ZSTD ? 19 : 6, src, n, &enc, &el));
        for (size_t cut = 0; cut < el; cut++) {
            pt_status s = pt_codec_decompress((pt_codec)c, enc, cut, n, &dec, &dl);
            if (s != PT_ERR_FORMAT) {
                char msg[128];
                snprintf(msg, sizeof msg, "%s cut at %zu of %zu: expected a format error", pt_codec_name((pt_codec)c), cut, el);
                pt_test_fail(__FILE__, __LINE__, msg);
                free(dec);
            }
        }
        for (size_t i = 0; i < el; i++) {
            for (int bit = 0; bit < 8; bit += 3) {
                enc[i] ^= (uint8_t)(1u << bit);
                pt_status s = pt_codec_decompress((pt_codec)c, enc, el, n, &dec, &dl);
                PT_CHECK(s == PT_OK || s == PT_ERR_FORMAT);
                if (s == PT_OK) {
                    PT_CHECK(dl <= n);
                    free(dec);
                }
                enc[i] ^= (uint8_t)(1u << bit);
            }
        }
        free(enc);
    }
    free(src);
}

PT_TEST(codec_messages) {
    uint8_t *o = NULL;
    size_t ol;
    PT_CHECK_ERR(pt_zstd_decompress("hello world", 11, 100, &o, &ol), PT_ERR_FORMAT, "not a zstd frame");
    PT_CHECK_ERR(pt_brotli_decompress("", 0, 100, &o, &ol), PT_ERR_FORMAT, "brotli: data is truncated");
    PT_CHECK_ERR(pt_zlib_decompress("\x05\0\0", 3, 100, &o, &ol), PT_ERR_FORMAT, "zlib: data is truncated");
    /* output limit */
    uint8_t *src = calloc(1, 100000), *enc = NULL;
    size_t el;
    for (int c = 1; c < PT_NCODECS; c++) {
        PT_CHECK_OK(pt_codec_compress((pt_codec)c, 1, src, 100000, &enc, &el));
        PT_CHECK_ERR(pt_codec_decompress((pt_codec)c, enc, el, 99999, &o, &ol), PT_ERR_FORMAT, "limit of 99999");
        PT_CHECK_OK(pt_codec_decompress((pt_codec)c, enc, el, 100000, &o, &ol));
        PT_CHECK(ol == 100000);
        free(o);
        free(enc);
    }
    free(src);
}

PT_TEST(codec_hostile_sizes) {
    /* zlib frame claiming 2^60 bytes: refused before allocating */
    uint8_t z[16] = {0, 0, 0, 0, 0, 0, 0, 0x10, 0x78, 0x9c, 3, 0, 0, 0, 0, 1};
    uint8_t *o = NULL;
    size_t ol;
    PT_CHECK_ERR(pt_zlib_decompress(z, sizeof z, (size_t)1 << 30, &o, &ol), PT_ERR_FORMAT,
                 "stored length 1152921504606846976 is more than the limit");
    /* zstd frame header claiming 2^40 bytes (single segment, 8-byte content size) */
    uint8_t zs[32] = {0x28, 0xB5, 0x2F, 0xFD, 0xE0, 0, 0, 0, 0, 0, 1, 0, 0};
    PT_CHECK_ERR(pt_zstd_decompress(zs, sizeof zs, (size_t)1 << 30, &o, &ol), PT_ERR_FORMAT,
                 "frame claims 1099511627776 decoded bytes");
    /* zstd with unknown content size (streamed) still honours the limit */
    uint8_t *src = calloc(1, 1 << 20), *enc = NULL;
    size_t el;
    PT_CHECK_OK(pt_zstd_compress(3, src, 1 << 20, &enc, &el));
    /* clear the content-size flag: rebuild a frame header without it is fiddly; instead use two
     * frames back to back, which takes the streaming path */
    uint8_t *two = malloc(2 * el);
    memcpy(two, enc, el);
    memcpy(two + el, enc, el);
    PT_CHECK_OK(pt_zstd_decompress(two, 2 * el, 2u << 20, &o, &ol));
    PT_CHECK(ol == 2u << 20);
    free(o);
    PT_CHECK_ERR(pt_zstd_decompress(two, 2 * el, (1u << 20) + 5, &o, &ol), PT_ERR_FORMAT, "exceeds the limit");
    free(two);
    free(enc);
    free(src);
}

PT_TEST(shuffle4_layout) {
    const uint8_t in[6] = {1, 2, 3, 4, 5, 6};
    uint8_t out[9];
    PT_CHECK(pt_shuffle4_size(6) == 9);
    pt_shuffle4(in, 6, out);
    /* rows {1,2,3,4} {5,6,0,0}: byte 0s = 1 5, byte 1s = 2 6, byte 2s = 3 0, byte 3s = 4 0, pad 2 */
    const uint8_t want[9] = {1, 5, 2, 6, 3, 0, 4, 0, 2};
    PT_CHECK(memcmp(out, want, 9) == 0);
    uint8_t back[9];
    size_t bl = 0;
    PT_CHECK_OK(pt_unshuffle4(out, 9, back, &bl));
    PT_CHECK(bl == 6 && memcmp(back, in, 6) == 0);
    /* every length 0..40 round trips */
    for (size_t n = 0; n <= 40; n++) {
        uint8_t *d = make_data(n, (uint32_t)n + 1), s[48], u[48];
        pt_shuffle4(d, n, s);
        PT_CHECK(s[pt_shuffle4_size(n) - 1] == (4 - n % 4) % 4);
        PT_CHECK_OK(pt_unshuffle4(s, pt_shuffle4_size(n), u, &bl));
        PT_CHECK(bl == n && (n == 0 || memcmp(d, u, n) == 0));
        free(d);
    }
}

PT_TEST(shuffle4_rejects_bad_input) {
    uint8_t out[16];
    size_t ol;
    PT_CHECK_ERR(pt_unshuffle4((const uint8_t *)"", 0, out, &ol), PT_ERR_FORMAT, "empty input");
    const uint8_t a[6] = {1, 2, 3, 4, 5, 0};
    PT_CHECK_ERR(pt_unshuffle4(a, 6, out, &ol), PT_ERR_FORMAT, "5 data bytes is not a multiple of 4");
    const uint8_t b[5] = {1, 2, 3, 4, 4};
    PT_CHECK_ERR(pt_unshuffle4(b, 5, out, &ol), PT_ERR_FORMAT, "pad count 4 is invalid");
    const uint8_t c[1] = {1};
    PT_CHECK_ERR(pt_unshuffle4(c, 1, out, &ol), PT_ERR_FORMAT, "pad count 1 is invalid for 0 data bytes");
    const uint8_t d[9] = {1, 5, 2, 6, 3, 9, 4, 0, 2}; /* padding byte not zero */
    PT_CHECK_ERR(pt_unshuffle4(d, 9, out, &ol), PT_ERR_FORMAT, "padding byte 6 is not zero");
}

PT_TEST(int6_pack_layout_and_roundtrip) {
    const int8_t v[4] = {1, -1, 31, -32};
    uint8_t p[3];
    PT_CHECK_OK(pt_int6_pack(v, 4, p));
    /* codes 1, 63, 31, 32 -> word 1 | 63<<6 | 31<<12 | 32<<18 = 0x81FFC1 */
    PT_CHECK(p[0] == 0xC1 && p[1] == 0xFF && p[2] == 0x81);
    int8_t back[4];
    PT_CHECK_OK(pt_int6_unpack(p, 3, 4, back));
    PT_CHECK(memcmp(back, v, 4) == 0);
    for (size_t n = 0; n <= 70; n++) {
        int8_t in[70], out[70];
        uint8_t pk[60];
        for (size_t i = 0; i < n; i++)
            in[i] = (int8_t)((int)((i * 37 + n) % 64) - 32);
        PT_CHECK(pt_int6_packed_size(n) == (n + 3) / 4 * 3);
        PT_CHECK_OK(pt_int6_pack(in, n, pk));
        PT_CHECK_OK(pt_int6_unpack(pk, pt_int6_packed_size(n), n, out));
        PT_CHECK(n == 0 || memcmp(in, out, n) == 0);
    }
}

PT_TEST(int6_rejects_bad_input) {
    const int8_t v[5] = {0, 0, 0, 32, 0};
    uint8_t p[6] = {0};
    PT_CHECK_ERR(pt_int6_pack(v, 5, p), PT_ERR_VALUE, "value 32 at index 3 is outside [-32, 31]");
    const int8_t w[1] = {-33};
    PT_CHECK_ERR(pt_int6_pack(w, 1, p), PT_ERR_VALUE, "value -33 at index 0");
    int8_t out[8];
    PT_CHECK_ERR(pt_int6_unpack(p, 5, 5, out), PT_ERR_FORMAT, "5 values need 6 packed bytes, got 5");
    uint8_t q[3] = {0, 0, 0xFF}; /* 1 value, but the unused codes are not zero */
    PT_CHECK_ERR(pt_int6_unpack(q, 3, 1, out), PT_ERR_FORMAT, "padding bits after value 1 are not zero");
}

PT_TEST(fileio_atomic_write_and_read) {
    char dir[] = "/tmp/pt_test_fileio_XXXXXX";
    PT_CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/model.ptz", dir);
    pt_chunk ch[3] = {{"abc", 3}, {NULL, 0}, {"defg", 4}};
    PT_CHECK_OK(pt_file_write_atomic(path, ch, 3));
    uint8_t *buf = NULL;
    size_t len = 0;
    PT_CHECK_OK(pt_file_read_all(path, &buf, &len, 100));
    PT_CHECK(len == 7 && memcmp(buf, "abcdefg", 7) == 0 && buf[7] == 0);
    free(buf);
    uint64_t sz = 0;
    PT_CHECK_OK(pt_file_size(path, &sz));
    PT_CHECK(sz == 7);
    /* overwrite: the old content is replaced whole, no temporary left behind */
    pt_chunk c2 = {"xy", 2};
    PT_CHECK_OK(pt_file_write_atomic(path, &c2, 1));
    PT_CHECK_OK(pt_file_read_all(path, &buf, &len, 100));
    PT_CHECK(len == 2 && memcmp(buf, "xy", 2) == 0);
    free(buf);
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    PT_CHECK(access(tmp, F_OK) != 0);
    /* limit checked before reading */
    PT_CHECK_ERR(pt_file_read_all(path, &buf, &len, 1), PT_ERR_FORMAT, "model.ptz is 2 bytes, more than the limit of 1");
    PT_CHECK(buf == NULL);
    /* a write into a missing directory fails and names the file */
    char bad[300];
    snprintf(bad, sizeof bad, "%s/nope/model.ptz", dir);
    PT_CHECK_ERR(pt_file_write_atomic(bad, &c2, 1), PT_ERR_IO, "nope/model.ptz.tmp.");
    PT_CHECK_ERR(pt_file_read_all(bad, &buf, &len, 100), PT_ERR_IO, "No such file or directory");
    PT_CHECK_ERR(pt_file_read_all(dir, &buf, &len, 100), PT_ERR_IO, "is a directory");
    unlink(path);
    rmdir(dir);
}

PT_TEST(fileio_read_missing_message) {
    uint8_t *buf;
    size_t len;
    PT_CHECK_ERR(pt_file_read_all("run/definitely-missing.ptz", &buf, &len, 100), PT_ERR_IO,
                 "cannot open run/definitely-missing.ptz: No such file or directory");
}

/* Crash safety (issue 13): a child rewrites the file in a loop, alternating two 1 MiB contents; the
 * parent kills it with SIGKILL at random moments. After every kill the file must be exactly one of
 * the two contents, never torn. */
PT_TEST(fileio_survives_kill9) {
    char dir[] = "/tmp/pt_test_kill_XXXXXX";
    PT_CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/model.ptz", dir);
    size_t n = 1 << 20;
    uint8_t *a = malloc(n), *b = malloc(n);
    memset(a, 'a', n);
    memset(b, 'b', n);
    pt_chunk ca = {a, n};
    PT_CHECK_OK(pt_file_write_atomic(path, &ca, 1));
    srand((unsigned)time(NULL));
    int torn = 0;
    for (int k = 0; k < 50; k++) {
        pid_t pid = fork();
        if (pid == 0) {
            for (int i = 0;; i++) {
                pt_chunk c = {i % 2 ? a : b, n};
                pt_file_write_atomic(path, &c, 1);
            }
        }
        usleep((useconds_t)(1000 + rand() % 20000));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        uint8_t *buf = NULL;
        size_t len = 0;
        PT_CHECK_OK(pt_file_read_all(path, &buf, &len, 2 * n));
        if (len != n || !(memcmp(buf, a, n) == 0 || memcmp(buf, b, n) == 0))
            torn++;
        free(buf);
        char tmp[300];
        snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)pid);
        unlink(tmp); /* a killed writer leaves its temporary behind; PATH itself is intact */
    }
    PT_CHECK(torn == 0);
    unlink(path);
    rmdir(dir);
    free(a);
    free(b);
}

int main(void) { return pt_test_main(); }
