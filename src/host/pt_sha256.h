/* pt_sha256.h — SHA-256 (FIPS 180-4) of byte buffers and files, for the artifact's tokenizer hash.
 *
 *   uint8_t d[32]; char hex[65];
 *   pt_sha256(buf, n, d); pt_sha256_hex(d, hex);
 *
 * Tested by tests/c/test_sptok.c (known-answer vectors "", "abc", the 448-bit vector, a million 'a').
 */
#ifndef PT_SHA256_H
#define PT_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "pt_status.h"

typedef struct {
    uint32_t h[8];
    uint64_t nbytes;   /* total bytes fed */
    uint8_t buf[64];   /* partial block */
    size_t nbuf;
} pt_sha256_ctx;

void pt_sha256_init(pt_sha256_ctx *c);
void pt_sha256_update(pt_sha256_ctx *c, const void *data, size_t n);
void pt_sha256_final(pt_sha256_ctx *c, uint8_t digest[32]);
void pt_sha256(const void *data, size_t n, uint8_t digest[32]);
/* 64 lower-case hex digits + NUL */
void pt_sha256_hex(const uint8_t digest[32], char hex[65]);
/* SHA-256 of a whole file as hex. */
pt_status pt_sha256_file(const char *path, char hex[65]);

#endif
