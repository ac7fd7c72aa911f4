/* pt_sptok.h — a SentencePiece .model read natively (no library) and the BPB byte tables of
 * spec §1.3.
 *
 * The .model file is a serialized protobuf ModelProto. Only field 1 is read:
 *   ModelProto    { repeated SentencePiece pieces = 1; TrainerSpec = 2; NormalizerSpec = 3; ... }
 *   SentencePiece { string piece = 1; float score = 2; Type type = 3 [default NORMAL]; }
 *   Type: 1 NORMAL, 2 UNKNOWN, 3 CONTROL, 4 USER_DEFINED, 5 UNUSED, 6 BYTE
 * Every other field is skipped by its wire type (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32);
 * every varint and length is bounds-checked, so a truncated or garbage file is an error, not a crash.
 *
 * Byte tables (table_size = max(sp_vocab, model_vocab)):
 *   is_boundary[id] = control, unknown or unused piece, or id >= sp_vocab  (base 0, no space)
 *   BYTE pieces <0xNN>: base_bytes = 1
 *   otherwise: a leading U+2581 "▁" sets has_space and is stripped; base_bytes = UTF-8 length of the rest
 *   bytes(prev, y) = base_bytes[y] + (has_space[y] && !is_boundary[prev])
 *
 * Tested by tests/c/test_sptok.c.
 */
#ifndef PT_SPTOK_H
#define PT_SPTOK_H

#include <stddef.h>
#include <stdint.h>

#include "pt_status.h"

typedef enum {
    PT_PIECE_NORMAL = 1,
    PT_PIECE_UNKNOWN = 2,
    PT_PIECE_CONTROL = 3,
    PT_PIECE_USER_DEFINED = 4,
    PT_PIECE_UNUSED = 5,
    PT_PIECE_BYTE = 6,
} pt_piece_type;

typedef struct {
    int vocab;      /* number of pieces */
    char **pieces;  /* NUL-terminated UTF-8 */
    float *scores;
    uint8_t *types; /* pt_piece_type */
    char sha256[65]; /* of the file bytes (hex), "" when parsed from memory without a hash */
} pt_sptok;

/* Reads a .model file; the message of an error names the file and what is wrong. */
pt_status pt_sptok_load(pt_sptok **out, const char *path);
/* Parses a serialized ModelProto held in memory; name is used in messages. Computes sha256. */
pt_status pt_sptok_parse(pt_sptok **out, const void *buf, size_t n, const char *name);
void pt_sptok_free(pt_sptok *tok);
/* id of an exact piece string, or -1 */
int pt_sptok_piece_id(const pt_sptok *tok, const char *piece);

typedef struct {
    int size;        /* table_size = max(sp_vocab, model_vocab) */
    int sp_vocab;    /* ids >= sp_vocab are never produced by this tokenizer */
    int32_t *base_bytes;
    uint8_t *has_space;
    uint8_t *is_boundary;
} pt_byte_tables;

/* model_vocab <= 0 means "same as the tokenizer". A model vocabulary smaller than the tokenizer's is
 * an error (its logits could not cover every id the tokenizer emits). */
pt_status pt_byte_tables_build(pt_byte_tables **out, const pt_sptok *tok, int model_vocab);
void pt_byte_tables_free(pt_byte_tables *bt);
/* bytes credited for predicting y after p (both must be < size; unchecked, hot path) */
static inline int pt_byte_tables_bytes(const pt_byte_tables *bt, int p, int y) {
    return bt->base_bytes[y] + (bt->has_space[y] && !bt->is_boundary[p]);
}
/* Σ bytes(tokens[t-1], tokens[t]) over t = 1..count-1. Tokens outside the tokenizer's vocabulary are
 * an error naming the token, its position and name. */
pt_status pt_byte_tables_sum(const pt_byte_tables *bt, const uint16_t *tokens, int64_t count,
                             const char *name, int64_t *out);

#endif
