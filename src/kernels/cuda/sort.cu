/* cuda/sort.cu — CUDA kernels of the sorting family (pt_sort.h: sort, topk, kthvalue, quantile) and the
 * randperm of the counter-based RNG (pt_rng.h: rng_randperm). The CPU kernels (src/kernels/cpu/sort.c,
 * src/kernels/cpu/rng.c) are the oracle; the results are the same elements and indices, bit for bit.
 *
 * One path for every op: each row element becomes the CPU's unsigned 64-bit key (floats: IEEE bits
 * flipped so that integer order = value order, -0.0 folded onto +0.0, every NaN the largest key; signed
 * ints: sign bit flipped; descending: key complemented) paired with its position j in the row. A stable
 * segmented sort (cub::DeviceSegmentedSort::StableSortPairs, one segment per row of the [O, N, I] view,
 * positions fed in increasing order) then yields exactly the CPU's total order (key, original index).
 * Small kernels pick from the sorted rows:
 *   sort      all N positions;          topk  the first k;          kthvalue  position k;
 *   quantile  positions floor(rank) and ceil(rank), combined with the CPU's torch.lerp formula in the
 *             input dtype, with explicitly rounded operations (no fused multiply-add); NaN when the row
 *             holds a NaN (its last sorted key is the NaN key).
 * Values are copied from the input by index, so they are bit-exact. Scratch: keys and positions twice
 * (32 bytes per element) plus CUB's temporary storage, all from the caching allocator (pt_cuda_alloc,
 * compute-stream ordered, so freeing right after the launches is safe).
 * dtypes: those the CPU registers (f32 f64 i64 i32 u16 i8 u8 bool; quantile f32 f64) and bf16 / f16,
 * which the CPU front sorts through f32 (the key of the value converted to f32 is the same).
 *
 * rng_randperm (i64): the CPU's keys (one 64-bit key per index from Philox block offset + j / 2,
 * words 2(j % 2), 2(j % 2) + 1, via pt_rng_block of pt_rng.h) sorted by (key, index) with a stable
 * cub::DeviceRadixSort::SortPairs over increasing indices: the same permutation as the CPU's qsort.
 * Reached through pt.randperm(n, {device = "cuda"}) (pt_generator_randperm_on in src/host/rng.c).
 *
 * NOT YET RUN ON A GPU (no device was lent when this was written); tests/gpu/test_sort.lua compares
 * every op with the CPU:  build/proteus tests/run.lua tests/gpu/test_sort.lua
 */
#include <math.h>   /* NAN, ceil */
#include <string.h> /* memset */

#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_segmented_sort.cuh>

#include "pt_cuda_common.cuh"

extern "C" {
#include "../pt_dispatch.h"
#include "../pt_sort.h"
}
#include "../../host/pt_rng.h"
extern "C" {
#include "pt_cuda_internal.h"
}

#define PT_SORT_THREADS 256
#define PT_SORT_NAN_KEY 0xffffffffffffffffULL

enum { PT_CS_FULL, PT_CS_TOPK, PT_CS_KTH, PT_CS_QUANTILE };

#define PT_SORT_LOOP(e, n) \
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < (n); e += (int64_t)gridDim.x * blockDim.x)

/* ---------------------------------------------------------------- keys (identical to cpu/sort.c) */
__device__ __forceinline__ uint64_t pt_sort_key_double(double v) {
    if (v != v) return PT_SORT_NAN_KEY;
    if (v == 0) v = 0.0; /* -0.0 == +0.0 */
    uint64_t b = (uint64_t)__double_as_longlong(v);
    return (b >> 63) ? ~b : (b | (1ULL << 63));
}

template <int DT>
__device__ __forceinline__ uint64_t pt_sort_key(const void *a, int64_t off) {
    switch (DT) {
    case PT_F32: return pt_sort_key_double((double)((const float *)a)[off]);
    case PT_F64: return pt_sort_key_double(((const double *)a)[off]);
    case PT_BF16: return pt_sort_key_double((double)pt_bf16_bits_to_f32(((const uint16_t *)a)[off]));
    case PT_F16: return pt_sort_key_double((double)__half2float(__ushort_as_half(((const uint16_t *)a)[off])));
    case PT_I64: return (uint64_t)((const int64_t *)a)[off] ^ (1ULL << 63);
    case PT_I32: return (uint64_t)(int64_t)((const int32_t *)a)[off] ^ (1ULL << 63);
    case PT_I8: return (uint64_t)(int64_t)((const int8_t *)a)[off] ^ (1ULL << 63);
    case PT_U16: return ((const uint16_t *)a)[off];
    case PT_U8: return ((const uint8_t *)a)[off];
    case PT_BOOL: return ((const uint8_t *)a)[off] != 0;
    default: return 0;
    }
}

/* keys[r * N + j] = key of a[o, j, i] (r = o * I + i), pos[r * N + j] = j */
template <int DT>
__global__ void k_sort_keys(const void *a, int64_t n, int64_t inner, int64_t total, int desc, uint64_t *keys,
                            int64_t *pos) {
    PT_SORT_LOOP(e, total) {
        int64_t r = e / n, j = e % n, o = r / inner, i = r % inner;
        uint64_t key = pt_sort_key<DT>(a, (o * n + j) * inner + i);
        keys[e] = desc ? ~key : key;
        pos[e] = j;
    }
}

__global__ void k_sort_offsets(int64_t *off, int64_t rows, int64_t n) {
    PT_SORT_LOOP(r, rows + 1) off[r] = r * n;
}

/* values/indices [O, K, I] from the sorted positions, starting at rank `first` of each row */
template <typename E>
__global__ void k_sort_pick(const E *a, const int64_t *spos, int64_t n, int64_t inner, int64_t K, int64_t first,
                            int64_t total, E *values, int64_t *indices) {
    PT_SORT_LOOP(oi, total) {
        int64_t i = oi % inner, j = (oi / inner) % K, o = oi / (inner * K);
        int64_t r = o * inner + i;
        int64_t idx = spos[r * n + first + j];
        values[oi] = a[(o * n + idx) * inner + i];
        if (indices) indices[oi] = idx;
    }
}

/* rounded arithmetic without contraction, so a + w * (b - a) is evaluated like the CPU's C code */
__device__ __forceinline__ float pt_s_add(float x, float y) { return __fadd_rn(x, y); }
__device__ __forceinline__ float pt_s_sub(float x, float y) { return __fsub_rn(x, y); }
__device__ __forceinline__ float pt_s_mul(float x, float y) { return __fmul_rn(x, y); }
__device__ __forceinline__ float pt_s_ceil(float x) { return ceilf(x); }
__device__ __forceinline__ double pt_s_add(double x, double y) { return __dadd_rn(x, y); }
__device__ __forceinline__ double pt_s_sub(double x, double y) { return __dsub_rn(x, y); }
__device__ __forceinline__ double pt_s_mul(double x, double y) { return __dmul_rn(x, y); }
__device__ __forceinline__ double pt_s_ceil(double x) { return ceil(x); }

/* one thread per row: out[o * I + i] = out[r] */
template <typename T>
__global__ void k_sort_quantile(const T *a, const uint64_t *skeys, const int64_t *spos, int64_t rows, int64_t n,
                                int64_t inner, double q, T *out) {
    PT_SORT_LOOP(r, rows) {
        int64_t o = r / inner, i = r % inner;
        T rank = pt_s_mul((T)q, (T)(n - 1));
        int64_t lo = (int64_t)rank, hi = (int64_t)pt_s_ceil(rank);
        if (hi > n - 1) hi = n - 1;
        if (lo > hi) lo = hi;
        T w = pt_s_sub(rank, (T)lo), res;
        if (skeys[r * n + n - 1] == PT_SORT_NAN_KEY) {
            res = (T)NAN;
        } else {
            T va = a[(o * n + spos[r * n + lo]) * inner + i];
            T vb = a[(o * n + spos[r * n + hi]) * inner + i];
            res = (w < (T)0.5 && w > (T)-0.5) ? pt_s_add(va, pt_s_mul(w, pt_s_sub(vb, va)))
                                              : pt_s_sub(vb, pt_s_mul(pt_s_sub(vb, va), pt_s_sub((T)1, w)));
        }
        out[r] = res;
    }
}

/* ---------------------------------------------------------------- scratch */
typedef struct {
    int dev;
    void *p[6];
    size_t bytes[6];
} pt_sort_scratch;

static pt_status pt_sort_alloc(pt_sort_scratch *s, int slot, size_t bytes) {
    s->bytes[slot] = bytes ? bytes : 1;
    return pt_cuda_alloc(&s->p[slot], s->bytes[slot], s->dev);
}

static void pt_sort_release(pt_sort_scratch *s) {
    for (int k = 0; k < 6; k++)
        if (s->p[k]) pt_cuda_free(s->p[k], s->bytes[k], s->dev);
}

static pt_status pt_sort_cub_fail(cudaError_t e, const char *what) {
    return pt_cuda_fail(e, what, __FILE__, __LINE__);
}

/* ---------------------------------------------------------------- sort / topk / kthvalue / quantile */
template <int DT, typename E>
static pt_status cu_sort_run(const pt_sort_args *g, int mode) {
    const int64_t rows = g->outer * g->inner, n = g->n, inner = g->inner;
    if (rows == 0 || n == 0) return PT_OK;
    const int64_t K = mode == PT_CS_FULL ? n : mode == PT_CS_TOPK ? g->k : 1;
    if (K == 0) return PT_OK;
    const int desc = (mode == PT_CS_FULL || mode == PT_CS_TOPK) && g->descending;
    const int64_t total = rows * n;
    cudaStream_t st = pt_cuda_compute_stream();
    pt_sort_scratch s;
    memset(&s, 0, sizeof s);
    PT_CUDA_CHECK(cudaGetDevice(&s.dev));
    pt_status rc = pt_sort_alloc(&s, 0, (size_t)total * sizeof(uint64_t));
    if (!rc) rc = pt_sort_alloc(&s, 1, (size_t)total * sizeof(uint64_t));
    if (!rc) rc = pt_sort_alloc(&s, 2, (size_t)total * sizeof(int64_t));
    if (!rc) rc = pt_sort_alloc(&s, 3, (size_t)total * sizeof(int64_t));
    if (!rc) rc = pt_sort_alloc(&s, 4, (size_t)(rows + 1) * sizeof(int64_t));
    uint64_t *kin = (uint64_t *)s.p[0], *kout = (uint64_t *)s.p[1];
    int64_t *pin = (int64_t *)s.p[2], *pout = (int64_t *)s.p[3], *off = (int64_t *)s.p[4];
    if (!rc) {
        k_sort_keys<DT><<<pt_cuda_blocks(total, PT_SORT_THREADS), PT_SORT_THREADS, 0, st>>>(g->a, n, inner, total,
                                                                                            desc, kin, pin);
        pt_cuda_launch_check("sort keys");
        k_sort_offsets<<<pt_cuda_blocks(rows + 1, PT_SORT_THREADS), PT_SORT_THREADS, 0, st>>>(off, rows, n);
        pt_cuda_launch_check("sort offsets");
        size_t tb = 0;
        cudaError_t e = cub::DeviceSegmentedSort::StableSortPairs(NULL, tb, kin, kout, pin, pout, total, rows, off,
                                                                  off + 1, st);
        if (e != cudaSuccess) rc = pt_sort_cub_fail(e, "cub::DeviceSegmentedSort::StableSortPairs (size query)");
        if (!rc) rc = pt_sort_alloc(&s, 5, tb);
        if (!rc) {
            e = cub::DeviceSegmentedSort::StableSortPairs(s.p[5], tb, kin, kout, pin, pout, total, rows, off, off + 1,
                                                          st);
            if (e != cudaSuccess) rc = pt_sort_cub_fail(e, "cub::DeviceSegmentedSort::StableSortPairs");
        }
    }
    if (!rc) {
        if constexpr (std::is_floating_point<E>::value) { /* quantile: f32 and f64 only */
            if (mode == PT_CS_QUANTILE)
                k_sort_quantile<E><<<pt_cuda_blocks(rows, PT_SORT_THREADS), PT_SORT_THREADS, 0, st>>>(
                    (const E *)g->a, kout, pout, rows, n, inner, g->q, (E *)g->values);
        }
        if (mode != PT_CS_QUANTILE) {
            const int64_t first = mode == PT_CS_KTH ? g->k : 0, nout = g->outer * K * inner;
            k_sort_pick<E><<<pt_cuda_blocks(nout, PT_SORT_THREADS), PT_SORT_THREADS, 0, st>>>(
                (const E *)g->a, pout, n, inner, K, first, nout, (E *)g->values, g->indices);
        }
        pt_cuda_launch_check(mode == PT_CS_QUANTILE ? "quantile" : "sort pick");
    }
    pt_sort_release(&s);
    if (rc) return rc;
    return pt_cuda_check_pending();
}

/* E: a storage type of the element size (values are moved, never converted) */
#define PT_CU_SORT(DT, SFX, E)                                                                          \
    static pt_status cu_sort_##SFX(const pt_sort_args *g) { return cu_sort_run<DT, E>(g, PT_CS_FULL); } \
    static pt_status cu_topk_##SFX(const pt_sort_args *g) { return cu_sort_run<DT, E>(g, PT_CS_TOPK); } \
    static pt_status cu_kth_##SFX(const pt_sort_args *g) { return cu_sort_run<DT, E>(g, PT_CS_KTH); }   \
    PT_REGISTER_KERNEL(sort, PT_DEV_CUDA, DT, cu_sort_##SFX)                                             \
    PT_REGISTER_KERNEL(topk, PT_DEV_CUDA, DT, cu_topk_##SFX)                                             \
    PT_REGISTER_KERNEL(kthvalue, PT_DEV_CUDA, DT, cu_kth_##SFX)
PT_CU_SORT(PT_F32, f32, uint32_t)
PT_CU_SORT(PT_F64, f64, uint64_t)
PT_CU_SORT(PT_BF16, bf16, uint16_t)
PT_CU_SORT(PT_F16, f16, uint16_t)
PT_CU_SORT(PT_I64, i64, uint64_t)
PT_CU_SORT(PT_I32, i32, uint32_t)
PT_CU_SORT(PT_U16, u16, uint16_t)
PT_CU_SORT(PT_I8, i8, uint8_t)
PT_CU_SORT(PT_U8, u8, uint8_t)
PT_CU_SORT(PT_BOOL, bool, uint8_t)

static pt_status cu_quantile_f32(const pt_sort_args *g) { return cu_sort_run<PT_F32, float>(g, PT_CS_QUANTILE); }
static pt_status cu_quantile_f64(const pt_sort_args *g) { return cu_sort_run<PT_F64, double>(g, PT_CS_QUANTILE); }
PT_REGISTER_KERNEL(quantile, PT_DEV_CUDA, PT_F32, cu_quantile_f32)
PT_REGISTER_KERNEL(quantile, PT_DEV_CUDA, PT_F64, cu_quantile_f64)

/* ---------------------------------------------------------------- randperm */
/* the CPU's keys: element j takes words 2(j % 2), 2(j % 2) + 1 of Philox block offset + j / 2 */
__global__ void k_randperm_keys(uint64_t seed, uint64_t offset, int64_t n, uint64_t *keys, int64_t *pos) {
    const int64_t nb = (n + 1) / 2;
    PT_SORT_LOOP(b, nb) {
        uint32_t x[4];
        pt_rng_block(seed, offset + (uint64_t)b, x);
        for (int j = 0; j < 2 && b * 2 + j < n; j++) {
            keys[b * 2 + j] = ((uint64_t)x[2 * j] << 32) | x[2 * j + 1];
            pos[b * 2 + j] = b * 2 + j;
        }
    }
}

static pt_status cu_randperm_i64(const pt_rng_args *g) {
    /* seed and offset fixed at capture: a replay would repeat the permutation (as rng.cu's fills) */
    PT_TRY(pt_cuda_capture_forbid("pt.randperm on the GPU", "a replay would repeat the permutation drawn at "
                                  "capture: draw it outside the captured function into a tensor the graph reads"));
    const int64_t n = g->n;
    if (n == 0) return PT_OK;
    cudaStream_t st = pt_cuda_compute_stream();
    pt_sort_scratch s;
    memset(&s, 0, sizeof s);
    PT_CUDA_CHECK(cudaGetDevice(&s.dev));
    pt_status rc = pt_sort_alloc(&s, 0, (size_t)n * sizeof(uint64_t));
    if (!rc) rc = pt_sort_alloc(&s, 1, (size_t)n * sizeof(uint64_t));
    if (!rc) rc = pt_sort_alloc(&s, 2, (size_t)n * sizeof(int64_t));
    uint64_t *kin = (uint64_t *)s.p[0], *kout = (uint64_t *)s.p[1];
    int64_t *pin = (int64_t *)s.p[2];
    if (!rc) {
        k_randperm_keys<<<pt_cuda_blocks((n + 1) / 2, PT_SORT_THREADS), PT_SORT_THREADS, 0, st>>>(g->seed, g->offset,
                                                                                                  n, kin, pin);
        pt_cuda_launch_check("randperm keys");
        size_t tb = 0;
        cudaError_t e = cub::DeviceRadixSort::SortPairs(NULL, tb, kin, kout, pin, (int64_t *)g->out, n, 0, 64, st);
        if (e != cudaSuccess) rc = pt_sort_cub_fail(e, "cub::DeviceRadixSort::SortPairs (size query)");
        if (!rc) rc = pt_sort_alloc(&s, 3, tb);
        if (!rc) {
            e = cub::DeviceRadixSort::SortPairs(s.p[3], tb, kin, kout, pin, (int64_t *)g->out, n, 0, 64, st);
            if (e != cudaSuccess) rc = pt_sort_cub_fail(e, "cub::DeviceRadixSort::SortPairs");
        }
    }
    pt_sort_release(&s);
    if (rc) return rc;
    return pt_cuda_check_pending();
}
PT_REGISTER_KERNEL(rng_randperm, PT_DEV_CUDA, PT_I64, cu_randperm_i64)
