/* test_fuzz_regressions.c — every input the fuzzers (tests/fuzz/) found that crashed, hung or made a
 * parser allocate far more than the input could hold (so far: zstd and zlib headers that sized the
 * decoder's first allocation, fixed in src/host/codec.c), plus one hostile header per parser that
 * claims a huge size. Each must be refused with its exact message, and, run again in a child
 * process whose address space may grow by only 256 MiB (RLIMIT_AS), refused the same way (a parser
 * that reserved what the header claims would get "out of memory" there, or die under ASan).
 * Inputs are inlined; docs/errors.md lists them with the messages.
 *
 *   ctest --test-dir build -R test_fuzz_regressions
 */
#include <stdint.h> /* uint8_t, uint64_t */
#include <stdio.h>  /* FILE, fopen */
#include <stdlib.h> /* atol, free, malloc */
#include <string.h> /* memcpy, strncmp, strstr */
#include <sys/resource.h> /* setrlimit: the bounded child */
#include <sys/wait.h>     /* waitpid */
#include <unistd.h>       /* unlink, getpid, fork */

#include "pt_artifact.h"
#include "pt_codec.h"
#include "pt_safetensors.h"
#include "pt_shards.h"
#include "pt_sptok.h"
#include "pt_test.h"

/* Current virtual memory size of this process, in KiB. */
static long vm_size_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long v = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmSize:", 7) == 0)
            v = atol(line + 7);
    fclose(f);
    return v;
}

/* Runs fn in a child process whose address space may grow by at most 256 MiB (RLIMIT_AS) and
 * returns what fn returned there; -1 when the child died (an allocator that aborts on failure, as
 * ASan's does) or could not start. A parser that reserves the size a hostile header claims gets
 * PT_ERR_OOM (or dies) instead of the PT_ERR_FORMAT the tests expect. */
static int run_bounded(pt_status (*fn)(void)) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        long kb = vm_size_kb();
        struct rlimit rl = {(rlim_t)(kb + 256L * 1024) * 1024, (rlim_t)(kb + 256L * 1024) * 1024};
        if (kb < 0 || setrlimit(RLIMIT_AS, &rl) != 0)
            _exit(100);
        _exit((int)fn());
    }
    int st = 0;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}


static void put_le(uint8_t *p, uint64_t v, int n) {
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* ---- the hostile inputs, each a function returning the parser's status (run twice: in this
 * process to check the message, in a bounded child to check the allocation) ---- */

/* A complete zstd frame whose header claims 2 GiB of content, holding one raw block of one byte:
 * magic, frame header descriptor 0xE0 (8-byte content size, single segment), the size, a last raw
 * block of 1 byte ('A'). Found by fuzz_codec: the one-shot path malloc'ed the claimed 2 GiB first. */
static void zstd_liar(uint8_t f[17], uint64_t claim) {
    const uint8_t head[5] = {0x28, 0xB5, 0x2F, 0xFD, 0xE0};
    memcpy(f, head, 5);
    put_le(f + 5, claim, 8);
    f[13] = 0x09; /* last = 1, type raw, size 1 */
    f[14] = 0x00;
    f[15] = 0x00;
    f[16] = 'A';
}
static pt_status case_zstd_liar(void) {
    uint8_t f[17], *out = NULL;
    size_t ol = 0;
    zstd_liar(f, (uint64_t)1 << 31);
    pt_status s = pt_zstd_decompress(f, sizeof f, (size_t)PT_ARTIFACT_MAX_PAYLOAD, &out, &ol);
    free(out);
    return s;
}

/* Found by fuzz_codec on its own (tests/fuzz/corpus/codec seeds, 127 executions, -malloc_limit_mb=1024):
 * a mutated zstd frame whose header claims 1,203,800,698 bytes (unknown dictionary, so it never
 * decodes) in 145 bytes. Not a complete frame, so it took the streaming path, which sized its first
 * buffer from the claimed size: malloc(1203800699). */
static const uint8_t zstd_found_145[145] = {
    0x28, 0xb5, 0x2f, 0xfd, 0xa5, 0xc0, 0x7a, 0x8a, 0xc0, 0x47, 0x12, 0x15,
    0x08, 0x30, 0x93, 0x8c, 0xb5, 0x8e, 0xea, 0x98, 0xd5, 0x4f, 0x0d, 0xd3,
    0x5f, 0x01, 0x50, 0x31, 0x5c, 0xf3, 0xe8, 0xa3, 0xc2, 0x27, 0x77, 0xf4,
    0x4f, 0x2c, 0x20, 0x10, 0x14, 0x84, 0xb0, 0xf4, 0x43, 0x60, 0x80, 0xd0,
    0x82, 0x27, 0x14, 0x50, 0xd5, 0x7b, 0xd6, 0xb2, 0xc1, 0x71, 0xf2, 0x59,
    0x3b, 0x1a, 0x89, 0x25, 0x05, 0x06, 0x65, 0xc0, 0xdb, 0x8a, 0x43, 0x1c,
    0xcb, 0x0d, 0xf0, 0xb8, 0xe7, 0xa4, 0x05, 0x83, 0x1e, 0x98, 0xa4, 0xe3,
    0x4f, 0xbb, 0x23, 0x04, 0x4b, 0x04, 0x5b, 0xd2, 0x61, 0x2d, 0x30, 0xec,
    0x06, 0xb9, 0xcd, 0x63, 0x4a, 0x9e, 0xde, 0xe5, 0x03, 0xb1, 0x1f, 0x85,
    0xdf, 0xbc, 0xc8, 0x0d, 0xb7, 0x01, 0x87, 0xe9, 0xca, 0x09, 0xb4, 0x01,
    0xd7, 0x1f, 0x75, 0x15, 0x02, 0xd1, 0xb0, 0xa2, 0x40, 0x6f, 0x3d, 0xd2,
    0xb6, 0x75, 0xce, 0x13, 0xa6, 0x9d, 0xb1, 0x6a, 0xf1, 0x19, 0x1e, 0x00,
    0x3b,
};
static pt_status case_zstd_found(void) {
    uint8_t *out = NULL;
    size_t ol = 0;
    pt_status s = pt_zstd_decompress(zstd_found_145, sizeof zstd_found_145, (size_t)PT_ARTIFACT_MAX_PAYLOAD, &out, &ol);
    free(out);
    return s;
}

/* pt_codec's zlib framing whose u64 length claims just under 2 GiB for a 13-byte stream of "hello".
 * Found by fuzz_codec: malloc(length + 1) came before any check. */
static pt_status case_zlib_liar(void) {
    uint8_t *z = NULL, *out = NULL;
    size_t zl = 0, ol = 0;
    pt_status s = pt_zlib_compress(6, "hello", 5, &z, &zl);
    if (s != PT_OK)
        return s;
    put_le(z, ((uint64_t)1 << 31) - 5, 8);
    s = pt_zlib_decompress(z, zl, (size_t)PT_ARTIFACT_MAX_PAYLOAD, &out, &ol);
    free(z);
    free(out);
    return s;
}

/* An artifact header: magic, version 1, codec, level 0, flags 0, P, S, crc 0. */
static void art_header(uint8_t h[32], int codec, uint64_t plen, uint64_t slen) {
    memset(h, 0, 32);
    memcpy(h, "PTZ1", 4);
    put_le(h + 4, 1, 4);
    h[8] = (uint8_t)codec;
    put_le(h + 12, plen, 8);
    put_le(h + 20, slen, 8);
}
static pt_status case_artifact_zstd_liar(void) {
    uint8_t buf[32 + 17];
    art_header(buf, PT_CODEC_ZSTD, (uint64_t)1 << 31, 17);
    zstd_liar(buf + 32, (uint64_t)1 << 31);
    pt_artifact a;
    return pt_artifact_unpack(buf, sizeof buf, "liar.ptz", &a);
}
static pt_status case_artifact_tb(void) {
    uint8_t buf[40] = {0};
    art_header(buf, PT_CODEC_NONE, (uint64_t)1 << 40, 8);
    pt_artifact a;
    return pt_artifact_unpack(buf, sizeof buf, "tb.ptz", &a);
}
static pt_status case_artifact_none_2g(void) {
    uint8_t buf[40] = {0};
    art_header(buf, PT_CODEC_NONE, ((uint64_t)1 << 31) - 1, 8);
    pt_artifact a;
    return pt_artifact_unpack(buf, sizeof buf, "big.ptz", &a);
}
static pt_status case_artifact_zlib_2g(void) {
    uint8_t buf[40] = {0};
    art_header(buf, PT_CODEC_ZLIB, ((uint64_t)1 << 31) - 1, 8);
    put_le(buf + 32, ((uint64_t)1 << 31) - 1, 8);
    pt_artifact a;
    return pt_artifact_unpack(buf, sizeof buf, "z.ptz", &a);
}

static pt_status st_parse_header(const char *h) {
    size_t hl = strlen(h);
    uint8_t *f = malloc(8 + hl);
    if (!f)
        return PT_ERR_OOM;
    put_le(f, hl, 8);
    memcpy(f + 8, h, hl);
    pt_st_list l = {0};
    pt_status s = pt_safetensors_parse(f, 8 + hl, "x.safetensors", &l);
    pt_st_list_free(&l);
    free(f);
    return s;
}
static pt_status case_st_header_tb(void) {
    uint8_t b[8 + 80];
    put_le(b, (uint64_t)1 << 40, 8);
    memset(b + 8, ' ', 80);
    pt_st_list l = {0};
    return pt_safetensors_parse(b, sizeof b, "x.safetensors", &l);
}
static pt_status case_st_tensor_pb(void) {
    return st_parse_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[1000000000000000],\"data_offsets\":[0,4000000000000000]}}");
}
static pt_status case_st_shape_overflow(void) {
    return st_parse_header(
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,0]}}");
}

static pt_status case_shard_2g_tokens(void) {
    char path[96];
    snprintf(path, sizeof path, "/tmp/pt_fuzzreg_%ld.bin", (long)getpid());
    uint8_t h[1024] = {0};
    put_le(h, 20240520, 4);
    put_le(h + 4, 1, 4);
    put_le(h + 8, 0x7FFFFFFF, 4);
    FILE *f = fopen(path, "wb");
    if (!f)
        return PT_ERR_IO;
    fwrite(h, 1, sizeof h, f);
    fclose(f);
    pt_shard *s = NULL;
    pt_status st = pt_shard_open(&s, path);
    pt_shard_close(s);
    unlink(path);
    return st;
}

/* field 1 (pieces), wire type 2, length varint 2^40, then 3 bytes */
static pt_status case_sptok_tb(void) {
    const uint8_t b[10] = {0x0A, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20, 'a', 'b', 'c'};
    pt_sptok *tok = NULL;
    pt_status s = pt_sptok_parse(&tok, b, sizeof b, "tb.model");
    pt_sptok_free(tok);
    return s;
}

static pt_status case_int6_tb(void) {
    int8_t v[8];
    const uint8_t p[6] = {0};
    return pt_int6_unpack(p, 6, (size_t)1 << 40, v);
}

typedef struct {
    const char *name;
    pt_status (*fn)(void);
    const char *message; /* a part of the message the user gets */
} hostile_case;

static const hostile_case cases[] = {
    {"zstd frame claims 2 GiB", case_zstd_liar, "zstd: corrupt data (Frame requires too much memory for decoding)"},
    {"zstd frame found by fuzz_codec claims 1.2 GB", case_zstd_found, "zstd: corrupt data (Dictionary mismatch)"},
    {"zlib length claims 2 GiB", case_zlib_liar, "zlib: stored length 2147483643 is impossible for 21 bytes of compressed data"},
    {"artifact zstd payload claims 2 GiB", case_artifact_zstd_liar,
     "artifact liar.ptz: zstd: corrupt data (Frame requires too much memory for decoding)"},
    {"artifact claims 1 TiB", case_artifact_tb,
     "artifact tb.ptz claims a payload of 1099511627776 bytes, more than the 2147483648-byte limit"},
    {"artifact none claims 2 GiB", case_artifact_none_2g, "artifact big.ptz: payload decodes to 8 bytes, the header says 2147483647"},
    {"artifact zlib claims 2 GiB", case_artifact_zlib_2g, "artifact z.ptz: zlib: "},
    {"safetensors header length 1 TiB", case_st_header_tb,
     "safetensors x.safetensors: header length 1099511627776 exceeds the file (80 bytes after the length field)"},
    {"safetensors tensor of 4 PB", case_st_tensor_pb,
     "tensor 'w' data_offsets [0, 4000000000000000] are outside the data buffer of 0 bytes"},
    {"safetensors shape overflows 64 bits", case_st_shape_overflow,
     "tensor 'w' has 0 bytes of data but its shape and dtype F32 need more than"},
    {"shard claims 2^31-1 tokens", case_shard_2g_tokens,
     "size mismatch: file is 1024 bytes but the header says 2147483647 tokens (expected 4294968318 bytes"},
    {"sptok piece of 1 TiB", case_sptok_tb,
     "tb.model: field of 1099511627776 bytes at byte 7 runs past the end (3 bytes left): truncated or not a SentencePiece model"},
    {"int6 unpack of 2^40 values from 6 bytes", case_int6_tb,
     "int6 unpack: 1099511627776 values need 824633720832 packed bytes, got 6"},
};
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

PT_TEST(hostile_inputs_are_refused_with_a_message) {
    for (int i = 0; i < NCASES; i++) {
        pt_status s = cases[i].fn();
        if (s != PT_ERR_FORMAT || !strstr(pt_last_error(), cases[i].message)) {
            char b[1200];
            snprintf(b, sizeof b, "%s: expected a format error containing '%s', got %s '%s'", cases[i].name,
                     cases[i].message, pt_status_name(s), pt_last_error());
            pt_test_fail(__FILE__, __LINE__, b);
        }
    }
}

PT_TEST(hostile_inputs_never_reserve_more_than_256_mib) {
    for (int i = 0; i < NCASES; i++) {
        int r = run_bounded(cases[i].fn);
        if (r != PT_ERR_FORMAT) {
            char b[300];
            snprintf(b, sizeof b, "%s: under a 256 MiB address-space limit the parser gave %s", cases[i].name,
                     r < 0 ? "a crash (allocator abort)" : pt_status_name((pt_status)r));
            pt_test_fail(__FILE__, __LINE__, b);
        }
    }
}

PT_TEST(honest_inputs_next_to_the_hostile_ones_still_work) {
    uint8_t f[17], *out = NULL, *z = NULL;
    size_t ol = 0, zl = 0;
    zstd_liar(f, 1);
    PT_CHECK_OK(pt_zstd_decompress(f, sizeof f, 100, &out, &ol));
    PT_CHECK(ol == 1 && out[0] == 'A');
    free(out);
    /* a zstd frame of 1 MiB of zeros is ~40 bytes: the one-shot path still handles a real high ratio */
    uint8_t *zeros = calloc(1 << 20, 1);
    PT_CHECK_OK(pt_zstd_compress(19, zeros, 1 << 20, &z, &zl));
    PT_CHECK(zl < 200);
    PT_CHECK_OK(pt_zstd_decompress(z, zl, 1 << 20, &out, &ol));
    PT_CHECK(ol == (1 << 20) && memcmp(out, zeros, ol) == 0);
    free(out);
    free(z);
    PT_CHECK_OK(pt_zlib_compress(9, zeros, 1 << 20, &z, &zl));
    PT_CHECK_OK(pt_zlib_decompress(z, zl, 1 << 20, &out, &ol));
    PT_CHECK(ol == (1 << 20) && memcmp(out, zeros, ol) == 0);
    free(out);
    /* a zlib length within the ratio but wrong is still caught after decoding */
    put_le(z, (1 << 20) + 1, 8);
    PT_CHECK_ERR(pt_zlib_decompress(z, zl, 2 << 20, &out, &ol), PT_ERR_FORMAT,
                 "zlib: decoded 1048576 bytes but the stored length is 1048577");
    free(z);
    free(zeros);
}

int main(void) { return pt_test_main(); }
