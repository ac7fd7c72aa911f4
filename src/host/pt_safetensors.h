/* pt_safetensors.h — read and write the safetensors format (the weights format PyTorch, JAX and
 * Hugging Face tools exchange; no code in the file, unlike pickle).
 *
 * File layout (all integers little endian):
 *   u64   N                 header length in bytes
 *   N     header            UTF-8 JSON object:
 *                             "NAME": {"dtype": "F32", "shape": [2, 3], "data_offsets": [BEGIN, END]}
 *                             ... one entry per tensor, and optionally
 *                             "__metadata__": {"key": "string value", ...}
 *                           BEGIN/END are byte offsets into the data buffer (END exclusive).
 *   ...   data buffer       the tensors' bytes, row-major, little endian
 *
 * dtypes: F32 F64 BF16 F16 I64 I32 U16 I8 U8 BOOL (the ones proteus tensors have).
 *
 * The reader validates everything before allocating tensor memory: N <= file size - 8 and N <= 100 MB,
 * well-formed JSON, known dtype, shape of non-negative integers (at most PT_MAX_DIMS dims), offsets
 * inside the data buffer, END - BEGIN == numel * dtype size, no two tensors overlapping, no
 * duplicate names, BOOL bytes 0 or 1. The writer orders tensors by name, pads the header with
 * spaces so the data starts at a multiple of 8, and writes atomically (pt_fileio.h).
 *
 * Tests: tests/c/test_safetensors.c, tests/reference/safetensors_interop.py (PyTorch).
 */
#ifndef PT_SAFETENSORS_H
#define PT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "pt_status.h"
#include "pt_tensor.h"

#define PT_ST_MAX_HEADER (100u * 1000u * 1000u) /* 100 MB */

typedef struct {
    char *name;
    pt_tensor *tensor; /* one reference owned by the list */
} pt_st_tensor;

typedef struct {
    char *key;
    char *value;
} pt_st_meta;

/* A name -> tensor list plus the string metadata. Zero-initialise ({0}) before use; free with
 * pt_st_list_free. Loading returns tensors sorted by name, on the CPU, contiguous. */
typedef struct {
    int n, cap;
    pt_st_tensor *items;
    int nmeta, capmeta;
    pt_st_meta *meta;
} pt_st_list;

/* Adds (name, t) to the list; retains t. Duplicate names are refused. */
pt_status pt_st_list_add(pt_st_list *l, const char *name, pt_tensor *t);
pt_status pt_st_list_add_meta(pt_st_list *l, const char *key, const char *value);
/* Returns the tensor named name (borrowed) or NULL. */
pt_tensor *pt_st_list_get(const pt_st_list *l, const char *name);
const char *pt_st_list_get_meta(const pt_st_list *l, const char *key);
void pt_st_list_free(pt_st_list *l);

/* Loads every tensor of path into out (which must be zero-initialised). */
pt_status pt_safetensors_load(const char *path, pt_st_list *out);
/* The same from bytes in memory; `what` names the source in error messages. */
pt_status pt_safetensors_parse(const uint8_t *buf, size_t len, const char *what, pt_st_list *out);
/* Writes the list to path atomically. Tensors on other devices or non-contiguous are copied. */
pt_status pt_safetensors_save(const char *path, const pt_st_list *l);
/* The same into a new malloc'ed buffer. */
pt_status pt_safetensors_serialize(const pt_st_list *l, uint8_t **out, size_t *out_len);

/* "F32" ... "BOOL" and back. */
const char *pt_safetensors_dtype_name(pt_dtype dt);
pt_status pt_safetensors_dtype_parse(const char *name, pt_dtype *out);

#endif
