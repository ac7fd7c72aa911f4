/* cpu/index.c — CPU kernels of the indexing family (signatures and layouts in pt_index.h).
 *
 * index_select / embedding forward copy whole inner rows with memcpy (the hot path of every model:
 * an embedding lookup is one memcpy of C elements per token), split over OpenMP threads by row.
 * index_add (the backward of both) splits the INNER columns over threads, so no two threads ever
 * write the same element and each element accumulates in increasing index order: the result is
 * identical for any thread count. gather copies element by element; scatter_add is sequential.
 * Tests: tests/c/test_index.c.
 */
#include <omp.h>    /* omp_get_max_threads */
#include <string.h> /* memcpy */

#include "../pt_dispatch.h"
#include "../pt_index.h"

#define PT_OMP_MIN 32768

/* ---- index_check (keyed by index dtype) ---- */
static int64_t idx_check(const void *idx, pt_dtype dt, int64_t n, int64_t limit, int64_t *bad) {
    for (int64_t i = 0; i < n; i++) {
        int64_t v = pt_idx_load(idx, dt, i);
        if (v < 0 || v >= limit) {
            *bad = v;
            return i;
        }
    }
    return -1;
}
/* msg is for devices that defer the check (pt_index.h); the CPU checks now */
#define IDX_CHECK(DT)                                                                                         \
    static int64_t idx_check_##DT(const void *idx, int64_t n, int64_t limit, int64_t *bad, const char *msg) { \
        (void)msg;                                                                                            \
        return idx_check(idx, DT, n, limit, bad);                                                             \
    }                                                                                                         \
    PT_REGISTER_KERNEL(index_check, PT_DEV_CPU, DT, idx_check_##DT)
IDX_CHECK(PT_I64)
IDX_CHECK(PT_I32)
IDX_CHECK(PT_U16)
IDX_CHECK(PT_I8)
IDX_CHECK(PT_U8)

/* ---- index_select: row copies, any dtype ---- */
static void isel(const pt_isel_args *g) {
    const char *src = g->src;
    char *out = g->out;
    size_t row = (size_t)g->inner * g->esize;
    int64_t rows = g->outer * g->n_idx;
#pragma omp parallel for if (rows * g->inner > PT_OMP_MIN)
    for (int64_t r = 0; r < rows; r++) {
        int64_t o = r / g->n_idx, j = r % g->n_idx;
        int64_t v = pt_idx_load(g->idx, g->idx_dtype, j);
        memcpy(out + (size_t)r * row, src + ((size_t)o * (size_t)g->dim_size + (size_t)v) * row, row);
    }
}
PT_REGISTER_KERNEL(index_select, PT_DEV_CPU, PT_F32, isel)
PT_REGISTER_KERNEL(index_select, PT_DEV_CPU, PT_F64, isel)
PT_REGISTER_KERNEL(index_select, PT_DEV_CPU, PT_BF16, isel)
PT_REGISTER_KERNEL(index_select, PT_DEV_CPU, PT_F16, isel)
PT_REGISTER_KERNEL(index_select, PT_DEV_CPU, PT_I64, isel)
PT_REGISTER_KERNEL(index_select, PT_DEV_CPU, PT_I32, isel)
PT_REGISTER_KERNEL(index_select, PT_DEV_CPU, PT_U16, isel)
PT_REGISTER_KERNEL(index_select, PT_DEV_CPU, PT_I8, isel)
PT_REGISTER_KERNEL(index_select, PT_DEV_CPU, PT_U8, isel)
PT_REGISTER_KERNEL(index_select, PT_DEV_CPU, PT_BOOL, isel)

/* ---- index_add: columns split over threads (race free, deterministic) ---- */
#define IADD_KERNEL(NAME, T)                                                                     \
    static void NAME(const pt_isel_args *g) {                                                    \
        const T *src = g->src;                                                                   \
        T *out = g->out;                                                                         \
        int64_t O = g->outer, N = g->n_idx, D = g->dim_size, I = g->inner;                       \
        int nt = omp_get_max_threads();                                                          \
        int64_t work = O * N * I;                                                                \
        if (O >= nt && work > PT_OMP_MIN) { /* each thread owns whole outer slices */            \
            _Pragma("omp parallel for")                                                          \
            for (int64_t o = 0; o < O; o++)                                                      \
                for (int64_t j = 0; j < N; j++) {                                                \
                    const T *s = src + (o * N + j) * I;                                          \
                    T *d = out + (o * D + pt_idx_load(g->idx, g->idx_dtype, j)) * I;             \
                    for (int64_t i = 0; i < I; i++) d[i] += s[i];                                \
                }                                                                                \
            return;                                                                              \
        }                                                                                        \
        /* column blocks: at least 16 columns each, at most one per thread */                    \
        int64_t cb = (I + nt - 1) / nt;                                                          \
        if (cb < 16) cb = 16;                                                                    \
        int64_t nb = (I + cb - 1) / cb;                                                          \
        _Pragma("omp parallel for if (work > PT_OMP_MIN && nb > 1)")                             \
        for (int64_t b = 0; b < nb; b++) {                                                       \
            int64_t c0 = b * cb, c1 = c0 + cb < I ? c0 + cb : I;                                 \
            for (int64_t o = 0; o < O; o++)                                                      \
                for (int64_t j = 0; j < N; j++) {                                                \
                    const T *s = src + (o * N + j) * I;                                          \
                    T *d = out + (o * D + pt_idx_load(g->idx, g->idx_dtype, j)) * I;             \
                    for (int64_t i = c0; i < c1; i++) d[i] += s[i];                              \
                }                                                                                \
        }                                                                                        \
    }
IADD_KERNEL(iadd_f32, float)
IADD_KERNEL(iadd_f64, double)
IADD_KERNEL(iadd_i64, int64_t)
IADD_KERNEL(iadd_i32, int32_t)
PT_REGISTER_KERNEL(index_add, PT_DEV_CPU, PT_F32, iadd_f32)
PT_REGISTER_KERNEL(index_add, PT_DEV_CPU, PT_F64, iadd_f64)
PT_REGISTER_KERNEL(index_add, PT_DEV_CPU, PT_I64, iadd_i64)
PT_REGISTER_KERNEL(index_add, PT_DEV_CPU, PT_I32, iadd_i32)

/* offsets (src without the `dim` coordinate, out) of row r = all coordinates but the last */
static inline void gather_row_off(const pt_gather_args *g, int64_t r, int64_t *so, int64_t *oo) {
    int64_t s = 0, o = 0;
    for (int d = g->ndim - 2; d >= 0; d--) {
        int64_t c = r % g->shape[d];
        r /= g->shape[d];
        if (d != g->dim) s += c * g->ss[d];
        o += c * g->os[d];
    }
    *so = s;
    *oo = o;
}

/* ---- gather: element copies by element size ---- */
#define GATHER_KERNEL(NAME, T)                                                                   \
    static void NAME(const pt_gather_args *g) {                                                  \
        const T *src = g->src;                                                                   \
        T *out = g->out;                                                                         \
        int last = g->ndim - 1;                                                                  \
        int64_t inner = g->shape[last], rows = g->n / inner;                                     \
        int64_t sl = last == g->dim ? 0 : g->ss[last], sd = g->ss[g->dim], ol = g->os[last];     \
        _Pragma("omp parallel for if (g->n > PT_OMP_MIN)")                                       \
        for (int64_t r = 0; r < rows; r++) {                                                     \
            int64_t so, oo;                                                                      \
            gather_row_off(g, r, &so, &oo);                                                      \
            for (int64_t j = 0; j < inner; j++) {                                                \
                int64_t v = pt_idx_load(g->idx, g->idx_dtype, r * inner + j);                    \
                out[oo + j * ol] = src[so + j * sl + v * sd];                                    \
            }                                                                                    \
        }                                                                                        \
    }
GATHER_KERNEL(gather_8, uint64_t)
GATHER_KERNEL(gather_4, uint32_t)
GATHER_KERNEL(gather_2, uint16_t)
GATHER_KERNEL(gather_1, uint8_t)
PT_REGISTER_KERNEL(gather, PT_DEV_CPU, PT_F32, gather_4)
PT_REGISTER_KERNEL(gather, PT_DEV_CPU, PT_F64, gather_8)
PT_REGISTER_KERNEL(gather, PT_DEV_CPU, PT_BF16, gather_2)
PT_REGISTER_KERNEL(gather, PT_DEV_CPU, PT_F16, gather_2)
PT_REGISTER_KERNEL(gather, PT_DEV_CPU, PT_I64, gather_8)
PT_REGISTER_KERNEL(gather, PT_DEV_CPU, PT_I32, gather_4)
PT_REGISTER_KERNEL(gather, PT_DEV_CPU, PT_U16, gather_2)
PT_REGISTER_KERNEL(gather, PT_DEV_CPU, PT_I8, gather_1)
PT_REGISTER_KERNEL(gather, PT_DEV_CPU, PT_U8, gather_1)
PT_REGISTER_KERNEL(gather, PT_DEV_CPU, PT_BOOL, gather_1)

/* ---- scatter_add: sequential (several e may hit the same output element) ---- */
#define SCATTER_KERNEL(NAME, T)                                                                  \
    static void NAME(const pt_gather_args *g) {                                                  \
        const T *src = g->src;                                                                   \
        T *out = g->out;                                                                         \
        int last = g->ndim - 1;                                                                  \
        int64_t inner = g->shape[last], rows = g->n / inner;                                     \
        for (int64_t r = 0; r < rows; r++) {                                                     \
            /* here `so` is the out offset without `dim`, `oo` the src offset */                 \
            int64_t oo = 0, so = 0, rr = r;                                                      \
            for (int d = g->ndim - 2; d >= 0; d--) {                                             \
                int64_t c = rr % g->shape[d];                                                    \
                rr /= g->shape[d];                                                               \
                if (d != g->dim) oo += c * g->os[d];                                             \
                so += c * g->ss[d];                                                              \
            }                                                                                    \
            int64_t ol = last == g->dim ? 0 : g->os[last], od = g->os[g->dim];                   \
            for (int64_t j = 0; j < inner; j++) {                                                \
                int64_t v = pt_idx_load(g->idx, g->idx_dtype, r * inner + j);                    \
                out[oo + j * ol + v * od] += src[so + j * g->ss[last]];                          \
            }                                                                                    \
        }                                                                                        \
    }
SCATTER_KERNEL(scatter_f32, float)
SCATTER_KERNEL(scatter_f64, double)
SCATTER_KERNEL(scatter_i64, int64_t)
SCATTER_KERNEL(scatter_i32, int32_t)
PT_REGISTER_KERNEL(scatter_add, PT_DEV_CPU, PT_F32, scatter_f32)
PT_REGISTER_KERNEL(scatter_add, PT_DEV_CPU, PT_F64, scatter_f64)
PT_REGISTER_KERNEL(scatter_add, PT_DEV_CPU, PT_I64, scatter_i64)
PT_REGISTER_KERNEL(scatter_add, PT_DEV_CPU, PT_I32, scatter_i32)
