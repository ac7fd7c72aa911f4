/* cpu/sort.c — CPU kernels of the sorting family (signatures, order and quantile formula in
 * pt_sort.h).
 *
 * One code path for every dtype: each row element becomes a (key, index) pair whose unsigned
 * 64-bit key sorts like the value (floats: IEEE bits flipped so that integer order = value order,
 * -0.0 folded onto +0.0, every NaN mapped to the largest key; signed ints: sign bit flipped;
 * descending: key complemented). With the index as tie-break the pairs are totally ordered, so:
 *   sort      = merge sort of the pairs (insertion-sorted runs of 16, bottom-up merges);
 *   kthvalue  = quickselect (median of 3, Hoare partition; falls back to the merge sort after
 *               2·log2(N)+8 rounds, so the worst case stays O(N log N));
 *   topk      = quickselect of rank k-1, then sort of the first k;
 *   quantile  = quickselect of rank floor(pos) + a min scan for the next order statistic.
 * Output values are copied from the input by the pair's index, so they are bit-exact. Rows are
 * split over OpenMP threads, each with its own scratch buffer.
 * Tests: tests/c/test_sort.c, tests/reference/sort_vs_torch.py.
 */
#include <math.h>   /* ceilf, ceil, NAN */
#include <stdlib.h> /* malloc, free */
#include <string.h> /* memcpy */

#include "../pt_dispatch.h"
#include "../pt_sort.h"

typedef struct {
    uint64_t key;
    int64_t idx;
} pt_kv;

enum { PT_SORT_FULL, PT_SORT_TOPK, PT_SORT_KTH, PT_SORT_QUANTILE };

static inline int kv_before(const pt_kv *x, const pt_kv *y) {
    return x->key < y->key || (x->key == y->key && x->idx < y->idx);
}

static inline uint64_t key_double(double v) {
    if (v != v) return UINT64_MAX;
    if (v == 0) v = 0.0; /* -0.0 == +0.0 */
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return (b >> 63) ? ~b : (b | (1ULL << 63));
}

static inline uint64_t key_of(const void *a, pt_dtype dt, int64_t off) {
    switch (dt) {
    case PT_F32: return key_double(((const float *)a)[off]);
    case PT_F64: return key_double(((const double *)a)[off]);
    case PT_I64: return (uint64_t)((const int64_t *)a)[off] ^ (1ULL << 63);
    case PT_I32: return (uint64_t)(int64_t)((const int32_t *)a)[off] ^ (1ULL << 63);
    case PT_I8: return (uint64_t)(int64_t)((const int8_t *)a)[off] ^ (1ULL << 63);
    case PT_U16: return ((const uint16_t *)a)[off];
    case PT_U8: return ((const uint8_t *)a)[off];
    case PT_BOOL: return ((const uint8_t *)a)[off] != 0;
    default: return 0;
    }
}

static void kv_isort(pt_kv *x, int64_t n) {
    for (int64_t i = 1; i < n; i++) {
        pt_kv v = x[i];
        int64_t j = i;
        while (j > 0 && kv_before(&v, &x[j - 1])) {
            x[j] = x[j - 1];
            j--;
        }
        x[j] = v;
    }
}

static void kv_sort(pt_kv *x, pt_kv *tmp, int64_t n) {
    const int64_t R = 16;
    for (int64_t s = 0; s < n; s += R) kv_isort(x + s, n - s < R ? n - s : R);
    pt_kv *src = x, *dst = tmp;
    for (int64_t w = R; w < n; w *= 2) {
        for (int64_t lo = 0; lo < n; lo += 2 * w) {
            int64_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            int64_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) dst[k++] = kv_before(&src[j], &src[i]) ? src[j++] : src[i++];
            while (i < mid) dst[k++] = src[i++];
            while (j < hi) dst[k++] = src[j++];
        }
        pt_kv *t = src;
        src = dst;
        dst = t;
    }
    if (src != x) memcpy(x, src, (size_t)n * sizeof *x);
}

static inline void kv_swap(pt_kv *x, int64_t i, int64_t j) {
    pt_kv t = x[i];
    x[i] = x[j];
    x[j] = t;
}

/* Puts the element of rank k at x[k], smaller ones before it, larger ones after. */
static void kv_select(pt_kv *x, pt_kv *tmp, int64_t n, int64_t k) {
    int64_t lo = 0, hi = n - 1;
    int budget = 8;
    for (int64_t m = n; m > 1; m >>= 1) budget += 2;
    while (hi > lo) {
        if (hi - lo < 16) {
            kv_isort(x + lo, hi - lo + 1);
            return;
        }
        if (budget-- <= 0) {
            kv_sort(x + lo, tmp, hi - lo + 1);
            return;
        }
        int64_t mid = lo + (hi - lo) / 2;
        if (kv_before(&x[mid], &x[lo])) kv_swap(x, lo, mid);
        if (kv_before(&x[hi], &x[lo])) kv_swap(x, lo, hi);
        if (kv_before(&x[hi], &x[mid])) kv_swap(x, mid, hi);
        kv_swap(x, mid, hi - 1); /* x[lo] <= pivot <= x[hi] act as sentinels */
        pt_kv p = x[hi - 1];
        int64_t i = lo, j = hi - 1;
        for (;;) {
            while (kv_before(&x[++i], &p)) {}
            while (kv_before(&p, &x[--j])) {}
            if (i >= j) break;
            kv_swap(x, i, j);
        }
        kv_swap(x, i, hi - 1);
        if (i == k) return;
        if (k < i) hi = i - 1;
        else lo = i + 1;
    }
}

static inline void copy_elem(void *dst, int64_t di, const void *src, int64_t si, size_t es) {
    switch (es) {
    case 8: ((uint64_t *)dst)[di] = ((const uint64_t *)src)[si]; break;
    case 4: ((uint32_t *)dst)[di] = ((const uint32_t *)src)[si]; break;
    case 2: ((uint16_t *)dst)[di] = ((const uint16_t *)src)[si]; break;
    default: ((uint8_t *)dst)[di] = ((const uint8_t *)src)[si]; break;
    }
}

/* torch.lerp in T: weight < 0.5 from the start, else from the end */
#define PT_QUANTILE_ROW(T, CEIL)                                                             \
    do {                                                                                     \
        const T *A = g->a;                                                                   \
        T rank = (T)g->q * (T)(n - 1);                                                       \
        int64_t lo = (int64_t)rank, hi = (int64_t)CEIL(rank);                                \
        if (hi > n - 1) hi = n - 1;                                                          \
        if (lo > hi) lo = hi;                                                                \
        T w = rank - (T)lo, r;                                                               \
        if (has_nan) {                                                                       \
            r = (T)NAN;                                                                      \
        } else {                                                                             \
            kv_select(buf, tmp, n, lo);                                                      \
            T va = A[base + buf[lo].idx * inner], vb = va;                                   \
            if (hi > lo) {                                                                   \
                int64_t m = lo + 1;                                                          \
                for (int64_t j = lo + 2; j < n; j++)                                         \
                    if (kv_before(&buf[j], &buf[m])) m = j;                                  \
                vb = A[base + buf[m].idx * inner];                                           \
            }                                                                                \
            r = (w < (T)0.5 && w > (T)-0.5) ? va + w * (vb - va) : vb - (vb - va) * ((T)1 - w); \
        }                                                                                    \
        ((T *)g->values)[o * inner + i] = r;                                                 \
    } while (0)

static pt_status sort_run(const pt_sort_args *g, pt_dtype dt, int mode) {
    int64_t rows = g->outer * g->inner, n = g->n, inner = g->inner;
    if (rows == 0 || n == 0) return PT_OK;
    size_t es = pt_dtype_size(dt);
    int64_t K = mode == PT_SORT_FULL ? n : mode == PT_SORT_TOPK ? g->k : 1;
    int desc = (mode == PT_SORT_FULL || mode == PT_SORT_TOPK) && g->descending;
    int oom = 0;
#pragma omp parallel if (rows > 1 && rows * n > 16384)
    {
        pt_kv *buf = malloc((size_t)n * 2 * sizeof *buf);
        pt_kv *tmp = buf ? buf + n : NULL;
        if (!buf) {
#pragma omp atomic write
            oom = 1;
        }
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            if (!buf) continue;
            int64_t o = r / inner, i = r % inner, base = o * n * inner + i;
            int has_nan = 0;
            for (int64_t j = 0; j < n; j++) {
                uint64_t key = key_of(g->a, dt, base + j * inner);
                has_nan |= key == UINT64_MAX && (dt == PT_F32 || dt == PT_F64);
                buf[j].key = desc ? ~key : key;
                buf[j].idx = j;
            }
            int64_t first = 0;
            switch (mode) {
            case PT_SORT_FULL: kv_sort(buf, tmp, n); break;
            case PT_SORT_TOPK:
                if (K < n && K > 0) kv_select(buf, tmp, n, K - 1);
                kv_sort(buf, tmp, K);
                break;
            case PT_SORT_KTH:
                kv_select(buf, tmp, n, g->k);
                first = g->k;
                break;
            case PT_SORT_QUANTILE:
                if (dt == PT_F32) PT_QUANTILE_ROW(float, ceilf);
                else PT_QUANTILE_ROW(double, ceil);
                continue;
            }
            for (int64_t j = 0; j < K; j++) {
                int64_t oi = o * K * inner + j * inner + i;
                const pt_kv *e = &buf[first + j];
                copy_elem(g->values, oi, g->a, base + e->idx * inner, es);
                if (g->indices) g->indices[oi] = e->idx;
            }
        }
        free(buf);
    }
    if (oom) return PT_FAIL(PT_ERR_OOM, "sort: out of host memory for a scratch row of %lld elements", (long long)n);
    return PT_OK;
}

#define SORT_KERNELS(DT, SFX)                                                                        \
    static pt_status sort_##SFX(const pt_sort_args *g) { return sort_run(g, DT, PT_SORT_FULL); }     \
    static pt_status topk_##SFX(const pt_sort_args *g) { return sort_run(g, DT, PT_SORT_TOPK); }     \
    static pt_status kth_##SFX(const pt_sort_args *g) { return sort_run(g, DT, PT_SORT_KTH); }       \
    PT_REGISTER_KERNEL(sort, PT_DEV_CPU, DT, sort_##SFX)                                             \
    PT_REGISTER_KERNEL(topk, PT_DEV_CPU, DT, topk_##SFX)                                             \
    PT_REGISTER_KERNEL(kthvalue, PT_DEV_CPU, DT, kth_##SFX)
SORT_KERNELS(PT_F32, f32)
SORT_KERNELS(PT_F64, f64)
SORT_KERNELS(PT_I64, i64)
SORT_KERNELS(PT_I32, i32)
SORT_KERNELS(PT_U16, u16)
SORT_KERNELS(PT_I8, i8)
SORT_KERNELS(PT_U8, u8)
SORT_KERNELS(PT_BOOL, bool)

static pt_status quantile_f32(const pt_sort_args *g) { return sort_run(g, PT_F32, PT_SORT_QUANTILE); }
static pt_status quantile_f64(const pt_sort_args *g) { return sort_run(g, PT_F64, PT_SORT_QUANTILE); }
PT_REGISTER_KERNEL(quantile, PT_DEV_CPU, PT_F32, quantile_f32)
PT_REGISTER_KERNEL(quantile, PT_DEV_CPU, PT_F64, quantile_f64)
