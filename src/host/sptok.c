/* sptok.c — SentencePiece .model reader (protobuf wire format decoded by hand) and the BPB byte
 * tables (spec §1.3). Formats and rules are documented in pt_sptok.h.
 *
 * Test: ctest --test-dir build -R test_sptok   (tests/c/test_sptok.c)
 */
#include "pt_sptok.h"

#include <errno.h>  /* errno */
#include <stdio.h>  /* fopen, fread */
#include <stdlib.h> /* malloc, calloc, free */
#include <string.h> /* memcpy, strcmp, strerror */

#include "pt_sha256.h"  /* hash of the model bytes */
#include "pt_shards.h"  /* pt_tokens_check_vocab */

/* ---- protobuf wire reading ----
 * A cursor over [p, end); every read checks it stays inside. */
typedef struct {
    const uint8_t *p, *end, *start;
    const char *name; /* file name for messages */
} pt_pb;

static pt_status pt_pb_varint(pt_pb *r, uint64_t *v) {
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end)
            return PT_FAIL(PT_ERR_FORMAT, "%s: truncated varint at byte %td: not a complete SentencePiece model",
                           r->name, r->p - r->start);
        uint8_t b = *r->p++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return PT_OK;
        }
    }
    return PT_FAIL(PT_ERR_FORMAT, "%s: varint longer than 10 bytes at byte %td: not a SentencePiece model",
                   r->name, r->p - r->start);
}

/* Reads a length prefix and returns a sub-cursor over the payload, advancing r past it. */
static pt_status pt_pb_len(pt_pb *r, pt_pb *sub) {
    uint64_t n;
    PT_TRY(pt_pb_varint(r, &n));
    if (n > (uint64_t)(r->end - r->p))
        return PT_FAIL(PT_ERR_FORMAT,
                       "%s: field of %llu bytes at byte %td runs past the end (%td bytes left): truncated or "
                       "not a SentencePiece model",
                       r->name, (unsigned long long)n, r->p - r->start, r->end - r->p);
    sub->p = r->p;
    sub->end = r->p + n;
    sub->start = r->start;
    sub->name = r->name;
    r->p += n;
    return PT_OK;
}

static pt_status pt_pb_skip(pt_pb *r, int wire, uint64_t field) {
    uint64_t v;
    pt_pb sub;
    switch (wire) {
    case 0: return pt_pb_varint(r, &v);
    case 2: return pt_pb_len(r, &sub);
    case 1:
    case 5: {
        int64_t k = wire == 1 ? 8 : 4;
        if (r->end - r->p < k)
            return PT_FAIL(PT_ERR_FORMAT, "%s: truncated fixed%d field %llu at byte %td", r->name,
                           (int)(8 * k), (unsigned long long)field, r->p - r->start);
        r->p += k;
        return PT_OK;
    }
    default:
        return PT_FAIL(PT_ERR_FORMAT,
                       "%s: unsupported protobuf wire type %d (field %llu) at byte %td: not a SentencePiece model",
                       r->name, wire, (unsigned long long)field, r->p - r->start);
    }
}

/* One SentencePiece message. piece is malloc'd (NUL-terminated). */
static pt_status pt_pb_piece(pt_pb *r, int index, char **piece, float *score, int *type) {
    *piece = NULL;
    *score = 0.0f;
    *type = PT_PIECE_NORMAL;
    int have_piece = 0;
    pt_status st = PT_OK;
    while (r->p < r->end) {
        uint64_t key;
        if ((st = pt_pb_varint(r, &key)) != PT_OK)
            break;
        uint64_t field = key >> 3;
        int wire = (int)(key & 7);
        if (field == 1 && wire == 2) {
            pt_pb s;
            if ((st = pt_pb_len(r, &s)) != PT_OK)
                break;
            size_t n = (size_t)(s.end - s.p);
            if (memchr(s.p, 0, n)) {
                st = PT_FAIL(PT_ERR_FORMAT, "%s: piece %d contains a NUL byte", r->name, index);
                break;
            }
            free(*piece);
            *piece = malloc(n + 1);
            if (!*piece) {
                st = PT_FAIL(PT_ERR_OOM, "%s: out of memory", r->name);
                break;
            }
            memcpy(*piece, s.p, n);
            (*piece)[n] = 0;
            have_piece = 1;
        } else if (field == 2 && wire == 5) {
            if (r->end - r->p < 4) {
                st = PT_FAIL(PT_ERR_FORMAT, "%s: truncated score of piece %d", r->name, index);
                break;
            }
            uint32_t u = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 |
                         (uint32_t)r->p[3] << 24;
            memcpy(score, &u, 4);
            r->p += 4;
        } else if (field == 3 && wire == 0) {
            uint64_t t;
            if ((st = pt_pb_varint(r, &t)) != PT_OK)
                break;
            if (t < PT_PIECE_NORMAL || t > PT_PIECE_BYTE) {
                st = PT_FAIL(PT_ERR_FORMAT, "%s: piece %d has unknown type %llu (expected 1..6)", r->name, index,
                             (unsigned long long)t);
                break;
            }
            *type = (int)t;
        } else if ((st = pt_pb_skip(r, wire, field)) != PT_OK) {
            break;
        }
    }
    if (st == PT_OK && !have_piece)
        st = PT_FAIL(PT_ERR_FORMAT, "%s: piece %d has no string (field 1): not a SentencePiece model", r->name,
                     index);
    if (st != PT_OK) {
        free(*piece);
        *piece = NULL;
    }
    return st;
}

void pt_sptok_free(pt_sptok *tok) {
    if (!tok)
        return;
    if (tok->pieces)
        for (int i = 0; i < tok->vocab; i++)
            free(tok->pieces[i]);
    free(tok->pieces);
    free(tok->scores);
    free(tok->types);
    free(tok);
}

static pt_status pt_sptok_grow(pt_sptok *tok, int *cap, const char *name) {
    int nc = *cap ? *cap * 2 : 1024;
    char **p = realloc(tok->pieces, (size_t)nc * sizeof *p);
    if (p)
        tok->pieces = p;
    float *s = p ? realloc(tok->scores, (size_t)nc * sizeof *s) : NULL;
    if (s)
        tok->scores = s;
    uint8_t *t = s ? realloc(tok->types, (size_t)nc) : NULL;
    if (t)
        tok->types = t;
    if (!t)
        return PT_FAIL(PT_ERR_OOM, "%s: out of memory for %d pieces", name, nc);
    *cap = nc;
    return PT_OK;
}

pt_status pt_sptok_parse(pt_sptok **out, const void *buf, size_t n, const char *name) {
    if (n == 0)
        return PT_FAIL(PT_ERR_FORMAT, "%s: empty file: not a SentencePiece model", name);
    pt_sptok *tok = calloc(1, sizeof *tok);
    if (!tok)
        return PT_FAIL(PT_ERR_OOM, "%s: out of memory", name);
    pt_pb r = {buf, (const uint8_t *)buf + n, buf, name};
    int cap = 0;
    pt_status st = PT_OK;
    while (r.p < r.end && st == PT_OK) {
        uint64_t key;
        if ((st = pt_pb_varint(&r, &key)) != PT_OK)
            break;
        uint64_t field = key >> 3;
        int wire = (int)(key & 7);
        if (field == 0) {
            st = PT_FAIL(PT_ERR_FORMAT, "%s: invalid protobuf field number 0 at byte %td: not a SentencePiece model",
                         name, r.p - r.start);
            break;
        }
        if (field != 1) {
            st = pt_pb_skip(&r, wire, field);
            continue;
        }
        if (wire != 2) {
            st = PT_FAIL(PT_ERR_FORMAT, "%s: field 1 (pieces) has wire type %d, expected 2: not a SentencePiece model",
                         name, wire);
            break;
        }
        pt_pb sub;
        if ((st = pt_pb_len(&r, &sub)) != PT_OK)
            break;
        if (tok->vocab == cap && (st = pt_sptok_grow(tok, &cap, name)) != PT_OK)
            break;
        char *piece;
        float score;
        int type;
        if ((st = pt_pb_piece(&sub, tok->vocab, &piece, &score, &type)) != PT_OK)
            break;
        tok->pieces[tok->vocab] = piece;
        tok->scores[tok->vocab] = score;
        tok->types[tok->vocab] = (uint8_t)type;
        tok->vocab++;
        if (tok->vocab > 65536)
            st = PT_FAIL(PT_ERR_FORMAT, "%s: more than 65536 pieces; token shards hold uint16 ids", name);
    }
    if (st == PT_OK && tok->vocab == 0)
        st = PT_FAIL(PT_ERR_FORMAT, "%s: no pieces found (field 1): not a SentencePiece model", name);
    if (st != PT_OK) {
        pt_sptok_free(tok);
        return st;
    }
    uint8_t d[32];
    pt_sha256(buf, n, d);
    pt_sha256_hex(d, tok->sha256);
    *out = tok;
    return PT_OK;
}

pt_status pt_sptok_load(pt_sptok **out, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return PT_FAIL(PT_ERR_IO, "%s: cannot open tokenizer model: %s", path, strerror(errno));
    size_t cap = 1 << 18, n = 0;
    uint8_t *buf = malloc(cap);
    pt_status st = PT_OK;
    while (buf) {
        if (n == cap) {
            if (cap >= ((size_t)1 << 30)) {
                st = PT_FAIL(PT_ERR_FORMAT, "%s: larger than 1 GiB: not a SentencePiece model", path);
                break;
            }
            uint8_t *nb = realloc(buf, cap * 2);
            if (!nb)
                break;
            buf = nb;
            cap *= 2;
        }
        size_t k = fread(buf + n, 1, cap - n, f);
        n += k;
        if (k == 0)
            break;
    }
    if (!buf && st == PT_OK)
        st = PT_FAIL(PT_ERR_OOM, "%s: out of memory reading tokenizer", path);
    else if (st == PT_OK && ferror(f))
        st = PT_FAIL(PT_ERR_IO, "%s: read error", path);
    fclose(f);
    if (st == PT_OK)
        st = pt_sptok_parse(out, buf, n, path);
    free(buf);
    return st;
}

int pt_sptok_piece_id(const pt_sptok *tok, const char *piece) {
    for (int i = 0; i < tok->vocab; i++)
        if (strcmp(tok->pieces[i], piece) == 0)
            return i;
    return -1;
}

/* ---- byte tables ---- */

void pt_byte_tables_free(pt_byte_tables *bt) {
    if (!bt)
        return;
    free(bt->base_bytes);
    free(bt->has_space);
    free(bt->is_boundary);
    free(bt);
}

pt_status pt_byte_tables_build(pt_byte_tables **out, const pt_sptok *tok, int model_vocab) {
    if (model_vocab <= 0)
        model_vocab = tok->vocab;
    if (model_vocab < tok->vocab)
        return PT_FAIL(PT_ERR_VALUE,
                       "byte tables: the model's vocabulary (%d) is smaller than the tokenizer's (%d pieces); "
                       "use a model with vocab_size >= %d or the tokenizer it was trained with",
                       model_vocab, tok->vocab, tok->vocab);
    int size = model_vocab;
    pt_byte_tables *bt = calloc(1, sizeof *bt);
    if (bt) {
        bt->base_bytes = calloc((size_t)size, sizeof *bt->base_bytes);
        bt->has_space = calloc((size_t)size, 1);
        bt->is_boundary = calloc((size_t)size, 1);
    }
    if (!bt || !bt->base_bytes || !bt->has_space || !bt->is_boundary) {
        pt_byte_tables_free(bt);
        return PT_FAIL(PT_ERR_OOM, "byte tables: out of memory for %d entries", size);
    }
    bt->size = size;
    bt->sp_vocab = tok->vocab;
    static const char space[] = "\xe2\x96\x81"; /* U+2581 */
    for (int i = 0; i < size; i++) {
        if (i >= tok->vocab) {
            bt->is_boundary[i] = 1;
            continue;
        }
        int t = tok->types[i];
        if (t == PT_PIECE_CONTROL || t == PT_PIECE_UNKNOWN || t == PT_PIECE_UNUSED) {
            bt->is_boundary[i] = 1;
        } else if (t == PT_PIECE_BYTE) {
            bt->base_bytes[i] = 1;
        } else {
            const char *p = tok->pieces[i];
            if (strncmp(p, space, 3) == 0) {
                bt->has_space[i] = 1;
                p += 3;
            }
            bt->base_bytes[i] = (int32_t)strlen(p);
        }
    }
    *out = bt;
    return PT_OK;
}

pt_status pt_byte_tables_sum(const pt_byte_tables *bt, const uint16_t *tokens, int64_t count,
                             const char *name, int64_t *out) {
    PT_TRY(pt_tokens_check_vocab(tokens, count, bt->sp_vocab, name));
    int64_t s = 0;
    for (int64_t t = 1; t < count; t++)
        s += pt_byte_tables_bytes(bt, tokens[t - 1], tokens[t]);
    *out = s;
    return PT_OK;
}
