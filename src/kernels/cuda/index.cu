/* cuda/index.cu — CUDA kernels of the indexing family (signatures in pt_index.h; the CPU kernels in
 * src/kernels/cpu/index.c are the oracle).
 *
 *   index_check   every integer index dtype: one thread per index, atomicMin of the first bad
 *                 position into a scratch word (caching allocator). Eagerly the word and the bad value
 *                 are copied back (synchronous: the front needs the answer before it runs the indexing
 *                 kernel). Inside a CUDA graph capture nothing can be read back: a one-thread kernel
 *                 records the first failure (message site, position, value) in the device's deferred
 *                 record (runtime.c), reported at the next synchronisation with the eager message, and
 *                 the check returns "valid"; every data kernel below therefore skips (or writes 0 for)
 *                 an index outside its range, so a bad index in a replay never faults.
 *   index_select  every dtype (moves 1/2/4/8-byte elements): thread per output element; embedding
 *                 forward
 *   index_add     f32, f64: deterministic and bitwise equal to the CPU (each output element adds its
 *                 contributions in increasing j, starting from its current value). Grouping on the
 *                 device, nothing on the host (capturable): keys[j] = idx[j], pos[j] = j, a stable
 *                 cub::DeviceRadixSort::SortPairs over the bits of D (so equal keys keep increasing
 *                 j), then one thread per (outer, sorted slot, column) where a run of equal keys
 *                 starts walks the run in order into the output row. Embedding / index_select backward.
 *                 Scratch (4 x 8 bytes per index + CUB's) from the caching allocator.
 *   gather        every dtype: thread per index element.
 *   scatter_add   f32, f64, i64, i32: thread per source element, atomicAdd. Not bitwise deterministic
 *                 for floats when indices collide (the CPU adds in increasing e; atomics land in any
 *                 order); exact for integers and without collisions (gather's backward with a
 *                 permutation). tests/gpu/test_sort.lua compares it with the CPU.
 * NOT YET RUN ON A GPU (no device was lent when this was written); tests/gpu/test_index.lua compares
 * each kernel with the CPU, tests/gpu/test_graph.lua the captured and deferred paths.
 */
#include <stdlib.h>
#include <string.h>

#include <cub/device/device_radix_sort.cuh>

#include "pt_cuda_common.cuh"

extern "C" {
#include "../pt_dispatch.h"
#include "../pt_index.h"
#include "pt_cuda_internal.h"
}

#define PT_IX_THREADS 256

__device__ __forceinline__ int64_t pt_idx_ld(const void *p, pt_dtype dt, int64_t i) {
    switch (dt) {
    case PT_I64: return ((const int64_t *)p)[i];
    case PT_I32: return ((const int32_t *)p)[i];
    case PT_U16: return ((const uint16_t *)p)[i];
    case PT_I8: return ((const int8_t *)p)[i];
    case PT_U8: return ((const uint8_t *)p)[i];
    default: return -1;
    }
}

static unsigned pt_ix_blocks(int64_t n) {
    int64_t b = (n + PT_IX_THREADS - 1) / PT_IX_THREADS;
    return (unsigned)(b > 65535 * 16 ? 65535 * 16 : b);
}

/* ---------------------------------------------------------------- index_check */
#define PT_IX_NONE 0xffffffffffffffffULL

__global__ void k_index_check(const void *idx, pt_dtype dt, int64_t n, int64_t limit, unsigned long long *first) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t v = pt_idx_ld(idx, dt, i);
        if (v < 0 || v >= limit) atomicMin(first, (unsigned long long)i);
    }
}

/* eager: s[1] = the bad value when s[0] holds a position */
__global__ void k_index_bad_value(const void *idx, pt_dtype dt, unsigned long long *s) {
    if (s[0] != PT_IX_NONE) s[1] = (unsigned long long)pt_idx_ld(idx, dt, (int64_t)s[0]);
}

/* captured: the first failure since the record was last read goes into it (one thread; kernels of the
 * compute stream run in order, so "first" is the stream's order) */
__global__ void k_index_defer(const void *idx, pt_dtype dt, const unsigned long long *first, int64_t site,
                              pt_cuda_deferred_rec *rec) {
    const unsigned long long f = *first;
    if (f == PT_IX_NONE) return;
    volatile pt_cuda_deferred_rec *r = rec;
    if (r->site != 0) return;
    r->pos = (int64_t)f;
    r->value = pt_idx_ld(idx, dt, (int64_t)f);
    __threadfence_system(); /* pos and value before the site that publishes them */
    r->site = site;
}

/* k_index_defer is launched only inside captures, so a warm-up never loads it; with lazy module loading
 * (CUDA_MODULE_LOADING=LAZY, the default since CUDA 12.2) its first launch would load it during the
 * capture, which drivers before CUDA 12.3 refuse. Querying its attributes loads it now. */
extern "C" pt_status pt_index_capture_prepare(void) {
    cudaFuncAttributes a;
    cudaError_t e = cudaFuncGetAttributes(&a, k_index_defer);
    if (e != cudaSuccess) return pt_cuda_fail(e, "cudaFuncGetAttributes(k_index_defer)", __FILE__, __LINE__);
    return PT_OK;
}

static int64_t pt_index_check_cuda(const void *idx, int64_t n, int64_t limit, int64_t *bad_value, pt_dtype dt,
                                   const char *msg) {
    if (n == 0) return -1;
    int dev = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e != cudaSuccess) {
        pt_cuda_set_pending("index_check: cudaGetDevice: %s", cudaGetErrorString(e));
        return -1;
    }
    const size_t bytes = 2 * sizeof(unsigned long long);
    unsigned long long *s = NULL;
    if (pt_cuda_alloc((void **)&s, bytes, dev) != PT_OK) {
        pt_cuda_set_pending("index_check: %s", pt_last_error());
        return -1;
    }
    cudaStream_t st = pt_cuda_compute_stream();
    int64_t pos = -1;
    e = cudaMemsetAsync(s, 0xff, bytes, st);
    if (e == cudaSuccess) {
        k_index_check<<<pt_ix_blocks(n), PT_IX_THREADS, 0, st>>>(idx, dt, n, limit, s);
        pt_cuda_launch_check("index_check");
        if (pt_cuda_graph_capturing() >= 0) { /* deferred: nothing can be read back now */
            int64_t site = pt_cuda_deferred_site(msg && *msg ? msg : "index {value} at position {pos} is out of range");
            if (site == 0) {
                pt_cuda_set_pending("index_check inside a CUDA graph capture: more than 1024 distinct checks (or out "
                                    "of host memory) to report later; capture a smaller function");
            } else {
                k_index_defer<<<1, 1, 0, st>>>(idx, dt, s, site, pt_cuda_deferred_record());
                pt_cuda_launch_check("index_check (deferred)");
            }
        } else {
            k_index_bad_value<<<1, 1, 0, st>>>(idx, dt, s);
            pt_cuda_launch_check("index_check");
            unsigned long long h[2] = {PT_IX_NONE, 0};
            e = cudaMemcpyAsync(h, s, bytes, cudaMemcpyDeviceToHost, st);
            if (e == cudaSuccess) e = cudaStreamSynchronize(st);
            if (e == cudaSuccess && h[0] != PT_IX_NONE) {
                pos = (int64_t)h[0];
                if (bad_value) *bad_value = (int64_t)h[1];
            }
        }
    }
    if (e != cudaSuccess)
        pt_cuda_set_pending("index_check of %lld indices: %s (%s)", (long long)n, cudaGetErrorString(e),
                            cudaGetErrorName(e));
    pt_cuda_free(s, bytes, dev); /* compute-stream ordered reuse */
    return pos;
}

#define PT_DEF_CHECK(SFX, DT)                                                                          \
    static int64_t cu_index_check_##SFX(const void *idx, int64_t n, int64_t limit, int64_t *bad,          \
                                        const char *msg) {                                             \
        return pt_index_check_cuda(idx, n, limit, bad, DT, msg);                                       \
    }                                                                                                  \
    PT_REGISTER_KERNEL(index_check, PT_DEV_CUDA, DT, cu_index_check_##SFX)
PT_DEF_CHECK(i64, PT_I64)
PT_DEF_CHECK(i32, PT_I32)
PT_DEF_CHECK(u16, PT_U16)
PT_DEF_CHECK(i8, PT_I8)
PT_DEF_CHECK(u8, PT_U8)

/* ---------------------------------------------------------------- index_select */
template <typename E>
__global__ void k_index_select(pt_isel_args a) {
    const int64_t total = a.outer * a.n_idx * a.inner;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = e % a.inner, j = (e / a.inner) % a.n_idx, o = e / (a.inner * a.n_idx);
        int64_t d = pt_idx_ld(a.idx, a.idx_dtype, j);
        ((E *)a.out)[e] = d >= 0 && d < a.dim_size ? ((const E *)a.src)[(o * a.dim_size + d) * a.inner + i] : (E)0;
    }
}

static void cu_index_select(const pt_isel_args *a) {
    int64_t total = a->outer * a->n_idx * a->inner;
    if (total == 0) return;
    unsigned b = pt_ix_blocks(total);
    cudaStream_t s = pt_cuda_compute_stream();
    switch (a->esize) {
    case 1: k_index_select<uint8_t><<<b, PT_IX_THREADS, 0, s>>>(*a); break;
    case 2: k_index_select<uint16_t><<<b, PT_IX_THREADS, 0, s>>>(*a); break;
    case 4: k_index_select<uint32_t><<<b, PT_IX_THREADS, 0, s>>>(*a); break;
    case 8: k_index_select<uint64_t><<<b, PT_IX_THREADS, 0, s>>>(*a); break;
    default: pt_cuda_set_pending("index_select: element size %zu", a->esize); return;
    }
    pt_cuda_launch_check("index_select");
}
PT_REGISTER_KERNEL(index_select, PT_DEV_CUDA, PT_F32, cu_index_select)
PT_REGISTER_KERNEL(index_select, PT_DEV_CUDA, PT_F64, cu_index_select)
PT_REGISTER_KERNEL(index_select, PT_DEV_CUDA, PT_BF16, cu_index_select)
PT_REGISTER_KERNEL(index_select, PT_DEV_CUDA, PT_F16, cu_index_select)
PT_REGISTER_KERNEL(index_select, PT_DEV_CUDA, PT_I64, cu_index_select)
PT_REGISTER_KERNEL(index_select, PT_DEV_CUDA, PT_I32, cu_index_select)
PT_REGISTER_KERNEL(index_select, PT_DEV_CUDA, PT_U16, cu_index_select)
PT_REGISTER_KERNEL(index_select, PT_DEV_CUDA, PT_I8, cu_index_select)
PT_REGISTER_KERNEL(index_select, PT_DEV_CUDA, PT_U8, cu_index_select)
PT_REGISTER_KERNEL(index_select, PT_DEV_CUDA, PT_BOOL, cu_index_select)

/* ---------------------------------------------------------------- index_add (deterministic) */
/* keys[j] = idx[j], or D for an index outside [0, D) (a deferred check failed: no row takes it) */
__global__ void k_iadd_keys(const void *idx, pt_dtype dt, int64_t n, int64_t D, unsigned long long *keys,
                            int64_t *pos) {
    for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < n; j += (int64_t)gridDim.x * blockDim.x) {
        int64_t v = pt_idx_ld(idx, dt, j);
        keys[j] = v >= 0 && v < D ? (unsigned long long)v : (unsigned long long)D;
        pos[j] = j;
    }
}

/* End (exclusive) of the run of key d that starts at k in the sorted keys: galloping then binary search,
 * O(log run) dependent loads instead of one per row (a frequent token's run is thousands of rows). */
__device__ __forceinline__ int64_t pt_iadd_run_end(const unsigned long long *keys, int64_t N, int64_t k,
                                                   unsigned long long d) {
    int64_t lo = k, step = 1; /* keys[lo] == d */
    while (lo + step < N && keys[lo + step] == d) {
        lo += step;
        step *= 2;
    }
    int64_t hi = lo + step < N ? lo + step : N; /* keys[hi] != d or hi == N */
    while (hi - lo > 1) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (keys[mid] == d) lo = mid;
        else hi = mid;
    }
    return hi;
}

#define PT_IADD_UNROLL 8

/* keys, pos: sorted by key, stable (pos increasing within a key). The thread of (o, k, i) where a run
 * of key d starts adds the run's rows in order: out[o, d, i] = ((out + src[pos_k]) + src[pos_k+1]) + ...,
 * the CPU's order. The run's end is found first, so the loads of PT_IADD_UNROLL rows (positions, then
 * values) are issued together before their in-order adds: the same bits, fewer round trips. */
template <typename T>
__global__ void k_iadd_runs(pt_isel_args a, const unsigned long long *keys, const int64_t *pos) {
    const int64_t N = a.n_idx, I = a.inner, D = a.dim_size;
    const int64_t total = a.outer * N * I;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        const int64_t i = e % I, k = (e / I) % N, o = e / (I * N);
        const unsigned long long d = keys[k];
        if (d >= (unsigned long long)D || (k > 0 && keys[k - 1] == d)) continue;
        const int64_t end = pt_iadd_run_end(keys, N, k, d);
        T *dst = (T *)a.out + (o * D + (int64_t)d) * I + i;
        const T *src = (const T *)a.src + o * N * I + i;
        T acc = *dst;
        int64_t kk = k;
        for (; kk + PT_IADD_UNROLL <= end; kk += PT_IADD_UNROLL) {
            int64_t p[PT_IADD_UNROLL];
            T v[PT_IADD_UNROLL];
#pragma unroll
            for (int j = 0; j < PT_IADD_UNROLL; j++) p[j] = pos[kk + j];
#pragma unroll
            for (int j = 0; j < PT_IADD_UNROLL; j++) v[j] = src[p[j] * I];
#pragma unroll
            for (int j = 0; j < PT_IADD_UNROLL; j++) acc += v[j];
        }
        for (; kk < end; kk++) acc += src[pos[kk] * I];
        *dst = acc;
    }
}

template <typename T>
static void cu_index_add(const pt_isel_args *a) {
    const int64_t N = a->n_idx, D = a->dim_size;
    if (N == 0 || a->outer * D * a->inner == 0) return;
    int dev = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e != cudaSuccess) {
        pt_cuda_set_pending("index_add: cudaGetDevice: %s", cudaGetErrorString(e));
        return;
    }
    int end_bit = 1; /* bits that hold every key 0..D (D: the skipped bad index) */
    while (end_bit < 64 && ((unsigned long long)D >> end_bit) != 0) end_bit++;
    cudaStream_t st = pt_cuda_compute_stream();
    void *p[5] = {NULL, NULL, NULL, NULL, NULL};
    size_t bytes[5] = {(size_t)N * 8, (size_t)N * 8, (size_t)N * 8, (size_t)N * 8, 0};
    pt_status rc = PT_OK;
    for (int k = 0; k < 4 && !rc; k++) rc = pt_cuda_alloc(&p[k], bytes[k], dev);
    unsigned long long *kin = (unsigned long long *)p[0], *kout = (unsigned long long *)p[1];
    int64_t *pin = (int64_t *)p[2], *pout = (int64_t *)p[3];
    if (!rc) {
        k_iadd_keys<<<pt_ix_blocks(N), PT_IX_THREADS, 0, st>>>(a->idx, a->idx_dtype, N, D, kin, pin);
        pt_cuda_launch_check("index_add keys");
        e = cub::DeviceRadixSort::SortPairs(NULL, bytes[4], kin, kout, pin, pout, N, 0, end_bit, st);
        if (e == cudaSuccess) {
            if (bytes[4] == 0) bytes[4] = 1;
            rc = pt_cuda_alloc(&p[4], bytes[4], dev);
            if (!rc) e = cub::DeviceRadixSort::SortPairs(p[4], bytes[4], kin, kout, pin, pout, N, 0, end_bit, st);
        }
        if (!rc && e != cudaSuccess) {
            pt_cuda_set_pending("index_add: cub::DeviceRadixSort::SortPairs of %lld indices: %s (%s)", (long long)N,
                                cudaGetErrorString(e), cudaGetErrorName(e));
            (void)cudaGetLastError();
        }
        if (!rc && e == cudaSuccess) {
            k_iadd_runs<T><<<pt_ix_blocks(a->outer * N * a->inner), PT_IX_THREADS, 0, st>>>(*a, kout, pout);
            pt_cuda_launch_check("index_add");
        }
    }
    if (rc) pt_cuda_set_pending("index_add: scratch for grouping %lld indices: %s", (long long)N, pt_last_error());
    for (int k = 0; k < 5; k++) /* compute-stream ordered reuse: safe right after the launches */
        if (p[k]) pt_cuda_free(p[k], bytes[k], dev);
}
static void cu_index_add_f32(const pt_isel_args *a) { cu_index_add<float>(a); }
static void cu_index_add_f64(const pt_isel_args *a) { cu_index_add<double>(a); }
PT_REGISTER_KERNEL(index_add, PT_DEV_CUDA, PT_F32, cu_index_add_f32)
PT_REGISTER_KERNEL(index_add, PT_DEV_CUDA, PT_F64, cu_index_add_f64)

/* ---------------------------------------------------------------- gather */
template <typename E>
__global__ void k_gather(pt_gather_args a) {
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < a.n; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t rem = e, so = 0, oo = 0;
        bool ok = true;
#pragma unroll
        for (int d = PT_MAX_DIMS - 1; d >= 0; d--) {
            if (d >= a.ndim) continue;
            int64_t c = rem % a.shape[d];
            rem /= a.shape[d];
            int64_t sc = d == a.dim ? pt_idx_ld(a.idx, a.idx_dtype, e) : c;
            if (d == a.dim && (sc < 0 || sc >= a.limit)) ok = false;
            so += sc * a.ss[d];
            oo += c * a.os[d];
        }
        ((E *)a.out)[oo] = ok ? ((const E *)a.src)[so] : (E)0;
    }
}

static void cu_gather(const pt_gather_args *a) {
    if (a->n == 0) return;
    unsigned b = pt_ix_blocks(a->n);
    cudaStream_t s = pt_cuda_compute_stream();
    switch (a->esize) {
    case 1: k_gather<uint8_t><<<b, PT_IX_THREADS, 0, s>>>(*a); break;
    case 2: k_gather<uint16_t><<<b, PT_IX_THREADS, 0, s>>>(*a); break;
    case 4: k_gather<uint32_t><<<b, PT_IX_THREADS, 0, s>>>(*a); break;
    case 8: k_gather<uint64_t><<<b, PT_IX_THREADS, 0, s>>>(*a); break;
    default: pt_cuda_set_pending("gather: element size %zu", a->esize); return;
    }
    pt_cuda_launch_check("gather");
}
PT_REGISTER_KERNEL(gather, PT_DEV_CUDA, PT_F32, cu_gather)
PT_REGISTER_KERNEL(gather, PT_DEV_CUDA, PT_F64, cu_gather)
PT_REGISTER_KERNEL(gather, PT_DEV_CUDA, PT_BF16, cu_gather)
PT_REGISTER_KERNEL(gather, PT_DEV_CUDA, PT_I64, cu_gather)
PT_REGISTER_KERNEL(gather, PT_DEV_CUDA, PT_I32, cu_gather)

/* ---------------------------------------------------------------- scatter_add */
__device__ __forceinline__ void pt_sc_add(float *p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void pt_sc_add(double *p, double v) { atomicAdd(p, v); }
__device__ __forceinline__ void pt_sc_add(int32_t *p, int32_t v) { atomicAdd((int *)p, (int)v); }
__device__ __forceinline__ void pt_sc_add(int64_t *p, int64_t v) {
    atomicAdd((unsigned long long *)p, (unsigned long long)v); /* wraps like two's complement */
}

/* gather's loop with the roles swapped: the index picks the output coordinate along dim */
template <typename T>
__global__ void k_scatter_add(pt_gather_args a) {
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < a.n; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t rem = e, so = 0, oo = 0;
        bool ok = true;
#pragma unroll
        for (int d = PT_MAX_DIMS - 1; d >= 0; d--) {
            if (d >= a.ndim) continue;
            int64_t c = rem % a.shape[d];
            rem /= a.shape[d];
            int64_t oc = d == a.dim ? pt_idx_ld(a.idx, a.idx_dtype, e) : c;
            if (d == a.dim && (oc < 0 || oc >= a.limit)) ok = false;
            oo += oc * a.os[d];
            so += c * a.ss[d];
        }
        if (ok) pt_sc_add((T *)a.out + oo, ((const T *)a.src)[so]);
    }
}

template <typename T>
static void cu_scatter_add(const pt_gather_args *a) {
    if (a->n == 0) return;
    k_scatter_add<T><<<pt_ix_blocks(a->n), PT_IX_THREADS, 0, pt_cuda_compute_stream()>>>(*a);
    pt_cuda_launch_check("scatter_add");
}
static void cu_scatter_add_f32(const pt_gather_args *a) { cu_scatter_add<float>(a); }
static void cu_scatter_add_f64(const pt_gather_args *a) { cu_scatter_add<double>(a); }
static void cu_scatter_add_i64(const pt_gather_args *a) { cu_scatter_add<int64_t>(a); }
static void cu_scatter_add_i32(const pt_gather_args *a) { cu_scatter_add<int32_t>(a); }
PT_REGISTER_KERNEL(scatter_add, PT_DEV_CUDA, PT_F32, cu_scatter_add_f32)
PT_REGISTER_KERNEL(scatter_add, PT_DEV_CUDA, PT_F64, cu_scatter_add_f64)
PT_REGISTER_KERNEL(scatter_add, PT_DEV_CUDA, PT_I64, cu_scatter_add_i64)
PT_REGISTER_KERNEL(scatter_add, PT_DEV_CUDA, PT_I32, cu_scatter_add_i32)
