/* pt_index.h — kernel signatures of the indexing family: index_select, gather, scatter_add,
 * embedding (registered in pt_dispatch.h's table by src/kernels/cpu/index.c; a CUDA file registers
 * the same names). The op fronts are in src/kernels/index.c (declared in pt_ops.h).
 *
 * Index tensors: any integer dtype except bool (i64, i32, u16, i8, u8), contiguous, read through
 * pt_idx_load(). The fronts check every index with the "index_check" kernel BEFORE running an
 * indexing kernel, so kernels may assume 0 <= idx < limit.
 *
 * Dimension letters: O = outer (product of dims before `dim`), N = indices, D = size of `dim`,
 * I = inner (product of dims after `dim`); embedding is index_select with O = 1, D = V, I = C.
 *
 * kernel names (keyed by the dtype of the data, except index_check):
 *   "index_check"   int64_t fn(const void *idx, int64_t n, int64_t limit, int64_t *bad_value,
 *                              const char *msg)
 *                   keyed by the INDEX dtype; returns the first flat position whose index is
 *                   outside [0, limit) (and its value in *bad_value), or -1 when all are valid.
 *                   msg: the error message template of the caller (pt_index_format_check). A
 *                   device that cannot check now (CUDA inside a graph capture) returns -1 and records
 *                   the failure with msg, to be reported at the next synchronisation (see
 *                   src/kernels/cuda/runtime.c, deferred checks); the CPU ignores it. Kernels of a
 *                   device with deferred checks must not fault on an index outside [0, limit) (they
 *                   skip it or write 0), since the data kernel then runs before the check is read.
 *   "index_select"  out[o, j, i] = src[o, idx[j], i]    src [O, D, I], out [O, N, I]; a row copy,
 *                   registered for every dtype (dtype-agnostic: moves esize-byte elements).
 *   "index_add"     out[o, idx[j], i] += src[o, j, i]   out [O, D, I] (filled by the caller),
 *                   src [O, N, I]. Deterministic: each output element sums its contributions
 *                   in increasing j whatever the thread count (the backward of index_select and
 *                   embedding).
 *   "gather"        out[e] = src[e with coordinate `dim` replaced by idx[e]]; e runs over the
 *                   index shape; src strided (ss), out contiguous (os). Every dtype.
 *   "scatter_add"   out[e with coordinate `dim` replaced by idx[e]] += src[e]; e runs over the
 *                   index shape; src strided (ss), out strided (os, a contiguous copy made by the
 *                   front). Sequential in e (deterministic).
 */
#ifndef PT_INDEX_H
#define PT_INDEX_H

#include "../host/pt_tensor.h"

typedef struct {
    int64_t outer, dim_size, n_idx, inner; /* O, D, N, I */
    size_t esize;                          /* bytes per element (index_select) */
    const void *src;
    void *out;
    const void *idx;
    pt_dtype idx_dtype;
} pt_isel_args;

typedef struct {
    int ndim, dim;
    int64_t shape[PT_MAX_DIMS]; /* the index tensor's shape = iteration space */
    int64_t n;                  /* numel of shape */
    const void *idx;            /* contiguous over shape */
    pt_dtype idx_dtype;
    const void *src;
    int64_t ss[PT_MAX_DIMS]; /* src strides (elements) */
    void *out;
    int64_t os[PT_MAX_DIMS]; /* out strides (elements) */
    size_t esize;
    int64_t limit; /* size of `dim` in the tensor the index points into (src for gather, out for
                    * scatter_add): device kernels skip an index outside [0, limit) (deferred checks) */
} pt_gather_args;

typedef int64_t (*pt_index_check_kernel)(const void *idx, int64_t n, int64_t limit, int64_t *bad_value,
                                         const char *msg);
typedef void (*pt_isel_kernel)(const pt_isel_args *args);
typedef void (*pt_gather_kernel)(const pt_gather_args *args);

/* Element i of a contiguous index buffer of dtype dt, as int64. */
static inline int64_t pt_idx_load(const void *p, pt_dtype dt, int64_t i) {
    switch (dt) {
    case PT_I64: return ((const int64_t *)p)[i];
    case PT_I32: return ((const int32_t *)p)[i];
    case PT_U16: return ((const uint16_t *)p)[i];
    case PT_I8: return ((const int8_t *)p)[i];
    case PT_U8: return ((const uint8_t *)p)[i];
    default: return -1;
    }
}

/* Writes tmpl into buf (at most n bytes, always terminated) with every "{value}" replaced by value
 * and every "{pos}" by pos (index.c). The one formatter of the range checks' messages, eager and
 * deferred, so both read the same. */
void pt_index_format_check(char *buf, size_t n, const char *tmpl, int64_t value, int64_t pos);

/* Checks that every element of idx (contiguous, an integer dtype) lies in [0, limit) with the
 * "index_check" kernel of its device; fails with PT_ERR_INDEX and tmpl formatted by
 * pt_index_format_check (the first bad value and its flat position). Inside a CUDA graph capture the
 * check is deferred (see "index_check"). Used by the indexing fronts and the cross-entropy ops. */
pt_status pt_index_check_range(const pt_tensor *idx, int64_t limit, const char *tmpl);

#endif
