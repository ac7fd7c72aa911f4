/* cuda/scatter.cu — the CUDA scatter_add kernel of the indexing family (signature and semantics in
 * pt_index.h: out[e with coordinate `dim` replaced by idx[e]] += src[e], e over the index shape, src and
 * out strided; the front checks every index first). The CPU kernel (src/kernels/cpu/index.c) is the
 * oracle.
 *
 * One thread per index element, atomicAdd into out (f32, f64 (sm_60+), i64 as unsigned 64-bit
 * two's-complement addition, i32).
 * Determinism: the integer results equal the CPU's exactly. The float results are NOT bitwise
 * deterministic when several elements hit the same output element: the additions happen in whatever
 * order the atomics land, while the CPU adds in increasing e. Without collisions (e.g. gather's
 * backward with a permutation index) the result is exact. tests/gpu/test_sort.lua compares with the
 * CPU within a tolerance (exactly for integers).
 * NOT YET RUN ON A GPU (no device was lent when this was written):
 *   build/proteus tests/run.lua tests/gpu/test_sort.lua
 */
#include "pt_cuda_common.cuh"

extern "C" {
#include "../pt_dispatch.h"
#include "../pt_index.h"
#include "pt_cuda_internal.h"
}

#define PT_SC_THREADS 256

__device__ __forceinline__ int64_t pt_sc_idx(const void *p, pt_dtype dt, int64_t i) {
    switch (dt) {
    case PT_I64: return ((const int64_t *)p)[i];
    case PT_I32: return ((const int32_t *)p)[i];
    case PT_U16: return ((const uint16_t *)p)[i];
    case PT_I8: return ((const int8_t *)p)[i];
    case PT_U8: return ((const uint8_t *)p)[i];
    default: return -1;
    }
}

__device__ __forceinline__ void pt_sc_add(float *p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void pt_sc_add(double *p, double v) { atomicAdd(p, v); }
__device__ __forceinline__ void pt_sc_add(int32_t *p, int32_t v) { atomicAdd((int *)p, (int)v); }
__device__ __forceinline__ void pt_sc_add(int64_t *p, int64_t v) {
    atomicAdd((unsigned long long *)p, (unsigned long long)v); /* wraps like two's complement */
}

template <typename T>
__global__ void k_scatter_add(pt_gather_args a) {
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < a.n; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t rem = e, so = 0, oo = 0;
#pragma unroll
        for (int d = PT_MAX_DIMS - 1; d >= 0; d--) {
            if (d >= a.ndim) continue;
            int64_t c = rem % a.shape[d];
            rem /= a.shape[d];
            int64_t oc = d == a.dim ? pt_sc_idx(a.idx, a.idx_dtype, e) : c;
            oo += oc * a.os[d];
            so += c * a.ss[d];
        }
        pt_sc_add((T *)a.out + oo, ((const T *)a.src)[so]);
    }
}

template <typename T>
static void cu_scatter_add(const pt_gather_args *a) {
    if (a->n == 0) return;
    k_scatter_add<T><<<pt_cuda_blocks(a->n, PT_SC_THREADS), PT_SC_THREADS, 0, pt_cuda_compute_stream()>>>(*a);
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
