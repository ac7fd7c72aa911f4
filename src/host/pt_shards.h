/* pt_shards.h — parameter-golf token shards: reading (mmap), writing, shard sets, the baseline
 * training stream, document splitting and vocabulary checks.
 *
 * File format (spec §1.2), all little-endian:
 *   bytes 0..1023     256 × int32 header
 *                       [0] magic   = 20240520
 *                       [1] version = 1
 *                       [2] num_tokens
 *                       [3..255] zero
 *   bytes 1024..      num_tokens × uint16 token ids
 *   file size must be exactly 1024 + 2·num_tokens.
 * Files are named fineweb_{train,val}_NNNNNN.bin; a set is a glob, sorted by name.
 *
 * Tested by tests/c/test_shards.c (ctest -R test_shards).
 */
#ifndef PT_SHARDS_H
#define PT_SHARDS_H

#include <stddef.h>
#include <stdint.h>

#include "pt_status.h"

#define PT_SHARD_MAGIC 20240520
#define PT_SHARD_VERSION 1
#define PT_SHARD_HEADER_BYTES 1024
#define PT_SHARD_BOS 1

/* One open shard: a read-only mapping of the file; tokens points into it (or is NULL when the
 * shard holds zero tokens). */
typedef struct {
    char *path;
    const uint16_t *tokens;
    int64_t count;
    void *map;       /* the mmap'd file */
    size_t map_size; /* bytes mapped */
} pt_shard;

/* Opens and validates path (magic, version, size). On error *out is untouched and the message
 * names the file and the mismatch. */
pt_status pt_shard_open(pt_shard **out, const char *path);
void pt_shard_close(pt_shard *s); /* NULL is fine */

/* Writes tokens to path atomically (temp file in the same folder, fsync, rename). */
pt_status pt_shard_write(const char *path, const uint16_t *tokens, int64_t count);

/* Reports the first token >= vocab: "token 1500 at position 77 of FILE is outside the vocabulary
 * (1024)". name is used in the message (a file name, or "the validation stream"). */
pt_status pt_tokens_check_vocab(const uint16_t *tokens, int64_t count, int vocab, const char *name);
pt_status pt_shard_check_vocab(const pt_shard *s, int vocab);

/* ---- shard sets ---- */
typedef struct {
    int n;
    pt_shard **shards; /* sorted by path */
    int64_t total;     /* Σ count */
} pt_shard_set;

/* Opens every file matching pattern (glob(3)), sorted. No match is an error naming the pattern. */
pt_status pt_shard_set_open(pt_shard_set **out, const char *pattern);
void pt_shard_set_close(pt_shard_set *set);
/* Copies the concatenation of the whole set into a new malloc'd buffer (the val stream). */
pt_status pt_shard_set_concat(const pt_shard_set *set, uint16_t **out, int64_t *count);

/* ---- the baseline training stream (spec §2.4) ----
 * Sequential over the set's shards in order, wrapping to the first shard after the last. Empty
 * shards are skipped; a set with no tokens at all is an error at open. The position (shard index,
 * offset inside it) is all the state there is, so a run resumes exactly by restoring it. */
typedef struct {
    const pt_shard_set *set; /* borrowed */
    int shard;
    int64_t offset;
} pt_token_stream;

pt_status pt_stream_init(pt_token_stream *st, const pt_shard_set *set);
/* Copies the next n tokens (spanning shard boundaries, wrapping) into out. */
pt_status pt_stream_take(pt_token_stream *st, int64_t n, uint16_t *out);
/* One micro-step for rank r of W: takes W·(n+1) tokens from the stream and copies rank r's slice
 * [r(n+1), (r+1)(n+1)) into out (n+1 tokens: x = out[0..n), y = out[1..n]). Every rank advances the
 * stream by the same W·(n+1). */
pt_status pt_stream_next_batch(pt_token_stream *st, int64_t n, int rank, int world, uint16_t *out);
void pt_stream_get_pos(const pt_token_stream *st, int *shard, int64_t *offset);
pt_status pt_stream_set_pos(pt_token_stream *st, int shard, int64_t offset);

/* ---- documents (spec §3.7) ----
 * Every BOS position b_k starts a document; document k covers [b_k, b_{k+1}] inclusive (it also
 * predicts the next document's BOS); the last one runs to the end. Documents shorter than 2 tokens
 * are dropped. starts/lens are malloc'd arrays of *ndocs entries (NULL when none). */
pt_status pt_docs_split(const uint16_t *tokens, int64_t count, int64_t **starts, int64_t **lens,
                        int64_t *ndocs);

#endif
