/* cuda/index.cu — CUDA kernels of the indexing family (signatures in pt_index.h; the CPU kernels in
 * src/kernels/cpu/index.c are the oracle).
 *
 *   index_check   every integer index dtype: one thread per index, atomicMin of the first bad
 *                 position; the result is copied back (synchronous: the front needs it before it runs
 *                 the indexing kernel)
 *   index_select  every dtype (moves 1/2/4/8-byte elements): thread per output element; embedding
 *                 forward
 *   index_add     f32, f64: deterministic like the CPU (each output element adds its contributions in
 *                 increasing j). The index list is grouped by target row on the host (counting sort
 *                 over the D rows, stable in j) and uploaded; then one thread per (row, column) walks
 *                 its row's list in order. Embedding / index_select backward.
 *   gather        every dtype: thread per index element.
 *   scatter_add   f32, f64, i64, i32: thread per source element, atomicAdd. Not bitwise deterministic
 *                 for floats when indices collide (the CPU adds in increasing e; atomics land in any
 *                 order); exact for integers and without collisions (gather's backward with a
 *                 permutation). tests/gpu/test_sort.lua compares it with the CPU.
 * NOT YET RUN ON A GPU (no device was lent when this was written); tests/gpu/test_index.lua compares
 * each kernel with the CPU.
 */
#include <stdlib.h>
#include <string.h>

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
__global__ void k_index_check(const void *idx, pt_dtype dt, int64_t n, int64_t limit, unsigned long long *first) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t v = pt_idx_ld(idx, dt, i);
        if (v < 0 || v >= limit) atomicMin(first, (unsigned long long)i);
    }
}

static int64_t pt_index_check_cuda(const void *idx, int64_t n, int64_t limit, int64_t *bad_value, pt_dtype dt) {
    if (n == 0) return -1;
    unsigned long long *d_first = NULL;
    unsigned long long h_first = ~0ULL;
    if (cudaMalloc((void **)&d_first, sizeof *d_first) != cudaSuccess) {
        pt_cuda_set_pending("index_check: cudaMalloc of 8 bytes failed");
        return -1;
    }
    cudaMemcpyAsync(d_first, &h_first, sizeof h_first, cudaMemcpyHostToDevice, pt_cuda_compute_stream());
    k_index_check<<<pt_ix_blocks(n), PT_IX_THREADS, 0, pt_cuda_compute_stream()>>>(idx, dt, n, limit, d_first);
    pt_cuda_launch_check("index_check");
    cudaMemcpyAsync(&h_first, d_first, sizeof h_first, cudaMemcpyDeviceToHost, pt_cuda_compute_stream());
    cudaStreamSynchronize(pt_cuda_compute_stream());
    cudaFree(d_first);
    if (h_first == ~0ULL) return -1;
    int64_t pos = (int64_t)h_first;
    size_t es = pt_dtype_size(dt);
    int64_t v = 0;
    unsigned char buf[8] = {0};
    cudaMemcpy(buf, (const char *)idx + pos * (int64_t)es, es, cudaMemcpyDeviceToHost);
    switch (dt) {
    case PT_I64: memcpy(&v, buf, 8); break;
    case PT_I32: { int32_t x; memcpy(&x, buf, 4); v = x; break; }
    case PT_U16: { uint16_t x; memcpy(&x, buf, 2); v = x; break; }
    case PT_I8: v = (int8_t)buf[0]; break;
    case PT_U8: v = buf[0]; break;
    default: break;
    }
    if (bad_value) *bad_value = v;
    return pos;
}

#define PT_DEF_CHECK(SFX, DT)                                                                   \
    static int64_t cu_index_check_##SFX(const void *idx, int64_t n, int64_t limit, int64_t *bad) { \
        return pt_index_check_cuda(idx, n, limit, bad, DT);                                     \
    }                                                                                           \
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
        ((E *)a.out)[e] = ((const E *)a.src)[(o * a.dim_size + d) * a.inner + i];
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
/* rows[start[d] .. start[d+1]) lists the j with idx[j] == d, increasing */
template <typename T>
__global__ void k_index_add(pt_isel_args a, const int64_t *start, const int64_t *rows) {
    const int64_t total = a.outer * a.dim_size * a.inner;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = e % a.inner, d = (e / a.inner) % a.dim_size, o = e / (a.inner * a.dim_size);
        int64_t b = start[d], end = start[d + 1];
        if (b == end) continue;
        T acc = ((T *)a.out)[e];
        for (int64_t k = b; k < end; k++) acc += ((const T *)a.src)[(o * a.n_idx + rows[k]) * a.inner + i];
        ((T *)a.out)[e] = acc;
    }
}

template <typename T>
static void cu_index_add(const pt_isel_args *a) {
    int64_t N = a->n_idx, D = a->dim_size;
    if (N == 0 || a->outer * D * a->inner == 0) return;
    size_t es = pt_dtype_size(a->idx_dtype);
    /* group the index list by target row on the host (stable counting sort) */
    unsigned char *hidx = (unsigned char *)malloc((size_t)N * es);
    int64_t *start = (int64_t *)calloc((size_t)D + 1, sizeof(int64_t));
    int64_t *rows = (int64_t *)malloc((size_t)N * sizeof(int64_t));
    int64_t *d_start = NULL, *d_rows = NULL;
    if (!hidx || !start || !rows) {
        pt_cuda_set_pending("index_add: out of host memory grouping %lld indices", (long long)N);
        goto done;
    }
    if (cudaMemcpyAsync(hidx, a->idx, (size_t)N * es, cudaMemcpyDeviceToHost, pt_cuda_compute_stream()) != cudaSuccess ||
        cudaStreamSynchronize(pt_cuda_compute_stream()) != cudaSuccess) {
        pt_cuda_set_pending("index_add: copying %lld indices to the host failed", (long long)N);
        goto done;
    }
    for (int64_t j = 0; j < N; j++) start[pt_idx_load(hidx, a->idx_dtype, j) + 1]++;
    for (int64_t d = 0; d < D; d++) start[d + 1] += start[d];
    {
        int64_t *fill = (int64_t *)malloc((size_t)D * sizeof(int64_t));
        if (!fill) {
            pt_cuda_set_pending("index_add: out of host memory");
            goto done;
        }
        memcpy(fill, start, (size_t)D * sizeof(int64_t));
        for (int64_t j = 0; j < N; j++) rows[fill[pt_idx_load(hidx, a->idx_dtype, j)]++] = j;
        free(fill);
    }
    if (cudaMalloc((void **)&d_start, ((size_t)D + 1) * sizeof(int64_t)) != cudaSuccess ||
        cudaMalloc((void **)&d_rows, (size_t)N * sizeof(int64_t)) != cudaSuccess) {
        pt_cuda_set_pending("index_add: cudaMalloc of the row lists failed");
        goto done;
    }
    cudaMemcpyAsync(d_start, start, ((size_t)D + 1) * sizeof(int64_t), cudaMemcpyHostToDevice, pt_cuda_compute_stream());
    cudaMemcpyAsync(d_rows, rows, (size_t)N * sizeof(int64_t), cudaMemcpyHostToDevice, pt_cuda_compute_stream());
    k_index_add<T><<<pt_ix_blocks(a->outer * D * a->inner), PT_IX_THREADS, 0, pt_cuda_compute_stream()>>>(*a, d_start, d_rows);
    pt_cuda_launch_check("index_add");
    cudaStreamSynchronize(pt_cuda_compute_stream()); /* the host buffers are freed below */
done:
    if (d_start) cudaFree(d_start);
    if (d_rows) cudaFree(d_rows);
    free(hidx);
    free(start);
    free(rows);
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
#pragma unroll
        for (int d = PT_MAX_DIMS - 1; d >= 0; d--) {
            if (d >= a.ndim) continue;
            int64_t c = rem % a.shape[d];
            rem /= a.shape[d];
            int64_t sc = d == a.dim ? pt_idx_ld(a.idx, a.idx_dtype, e) : c;
            so += sc * a.ss[d];
            oo += c * a.os[d];
        }
        ((E *)a.out)[oo] = ((const E *)a.src)[so];
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
#pragma unroll
        for (int d = PT_MAX_DIMS - 1; d >= 0; d--) {
            if (d >= a.ndim) continue;
            int64_t c = rem % a.shape[d];
            rem /= a.shape[d];
            int64_t oc = d == a.dim ? pt_idx_ld(a.idx, a.idx_dtype, e) : c;
            oo += oc * a.os[d];
            so += c * a.ss[d];
        }
        pt_sc_add((T *)a.out + oo, ((const T *)a.src)[so]);
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
