/* pt_artifact.h — the artifact container ("PTZ1"): the self-describing, compressed file that is a
 * submission's model (DESIGN invariant 6). The byte layout is documented field by field at the top
 * of artifact.c and in docs/artifact.md.
 *
 * The API works on plain C buffers so the quantization code can build on it: each entry is a name,
 * a scheme, the dtype and shape of what is stored, the original dtype, the data bytes and (for the
 * integer schemes) the scale bytes. Loading validates every length and offset before it allocates
 * and never executes anything from the file.
 *
 * Tests: tests/c/test_artifact.c.
 */
#ifndef PT_ARTIFACT_H
#define PT_ARTIFACT_H

#include <stddef.h>
#include <stdint.h>

#include "pt_codec.h"
#include "pt_status.h"
#include "pt_tensor.h"

#define PT_ARTIFACT_MAGIC "PTZ1"
#define PT_ARTIFACT_VERSION 1
#define PT_ARTIFACT_HEADER_BYTES 32
/* Loader limits: decoded payload, JSON header, tensor count. */
#define PT_ARTIFACT_MAX_PAYLOAD ((uint64_t)1 << 31) /* 2 GiB */
#define PT_ARTIFACT_MAX_JSON ((uint64_t)64 << 20)   /* 64 MiB */
#define PT_ARTIFACT_MAX_TENSORS 1000000

/* Quantization schemes; the names are what the JSON stores. */
typedef enum {
    PT_SCHEME_INT6_PER_ROW = 0, /* "int6_per_row": i8 values in [-32, 31], one scale per row */
    PT_SCHEME_INT8_PER_ROW,     /* "int8_per_row": i8 values, one scale per row */
    PT_SCHEME_INT8_PER_TENSOR,  /* "int8_per_tensor": i8 values, one scale */
    PT_SCHEME_FP16,             /* "fp16": stored f16 */
    PT_SCHEME_FP32,             /* "fp32": stored f32 */
    PT_SCHEME_BF16,             /* "bf16": stored bf16 */
    PT_SCHEME_RAW,              /* "raw": any dtype, stored as is (integer buffers, masks) */
    PT_NSCHEMES
} pt_scheme;

const char *pt_scheme_name(pt_scheme s);
pt_status pt_scheme_parse(const char *name, pt_scheme *out);
/* The artifact's dtype spellings: "f32" "f64" "bf16" "f16" "i64" "i32" "u16" "i8" "u8" "bool". */
const char *pt_artifact_dtype_name(pt_dtype dt);
pt_status pt_artifact_dtype_parse(const char *name, pt_dtype *out);

typedef struct {
    const char *name;
    pt_scheme scheme;
    pt_dtype dtype;      /* dtype of the stored values (i8 for the int schemes) */
    int packed6;         /* int6_per_row only: values packed 4 in 3 bytes (pt_codec.h) */
    int ndim;
    int64_t shape[PT_MAX_DIMS];
    pt_dtype orig_dtype; /* dtype of the tensor before export (informational) */
    const void *data;
    size_t data_len;
    pt_dtype scale_dtype; /* f16, f32 or bf16; integer schemes only */
    const void *scales;
    size_t scales_len;
} pt_artifact_entry;

typedef struct {
    const char *recipe;           /* recipe name; NULL = "" */
    const char *config_json;      /* JSON object text of the recipe config; NULL = {} */
    const char *extra_json;       /* JSON object with anything else (quant settings, ...); NULL = {} */
    const char *tokenizer_sha256; /* 64 lowercase hex digits, or NULL/"" when unknown */
} pt_artifact_meta;

/* An artifact read back: entries point into payload (data/scales) and own their names. */
typedef struct {
    uint32_t version;
    pt_codec codec;
    int level;
    int shuffle;
    uint64_t file_len, stored_len, payload_len, json_len;
    char *recipe, *config_json, *extra_json, *tokenizer_sha256;
    int n;
    pt_artifact_entry *entries;
    uint8_t *payload;
} pt_artifact;

/* Checks one entry (scheme vs dtype, data and scale lengths vs shape). `what` prefixes messages. */
pt_status pt_artifact_entry_check(const pt_artifact_entry *e, const char *what);

/* Builds a whole artifact file image in a new malloc'ed buffer. shuffle: apply the byte shuffle
 * before compressing. */
pt_status pt_artifact_pack(const pt_artifact_entry *entries, int n, const pt_artifact_meta *meta, pt_codec codec,
                           int level, int shuffle, uint8_t **out, size_t *out_len);
/* pack + atomic write. */
pt_status pt_artifact_write(const char *path, const pt_artifact_entry *entries, int n,
                            const pt_artifact_meta *meta, pt_codec codec, int level, int shuffle);
/* Parses a file image; `what` names it in messages (a path or "<buffer>"). */
pt_status pt_artifact_unpack(const uint8_t *buf, size_t len, const char *what, pt_artifact *out);
pt_status pt_artifact_read(const char *path, pt_artifact *out);
void pt_artifact_free(pt_artifact *a);
/* Index of the entry named name, or -1. */
int pt_artifact_find(const pt_artifact *a, const char *name);

#endif
