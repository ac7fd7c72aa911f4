/* pt_cuda_common.cuh — device helpers shared by the .cu files: the bf16 storage type with the
 * CPU's exact rounding, per-dtype load/store into the math type (fp32 for bf16), float/double
 * math overloads, and strided offsets computed with compile-time indices (so the shape and stride
 * arrays of a by-value kernel argument stay in the constant bank, never in local memory).
 *
 * Conversions mirror src/host/tensor.c bit for bit: bf16 and f16 round to nearest even, NaN stays
 * a quiet NaN with the CPU's payload, float->integer saturates and NaN becomes 0. The GPU suite
 * compares casts exactly (tests/gpu/test_elementwise.lua).
 */
#ifndef PT_CUDA_COMMON_CUH
#define PT_CUDA_COMMON_CUH

#include <stdint.h>

#include <cuda_fp16.h>   /* __float2half_rn, __half2float */
#include <cuda_runtime.h>

#include <type_traits>   /* std::is_floating_point, std::make_unsigned */

extern "C" {
#include "../../host/pt_tensor.h"
}

#define PT_THREADS 256

/* bf16 as its bit pattern; arithmetic happens in fp32 */
struct pt_bf16 {
    uint16_t x;
};

__device__ __forceinline__ float pt_bf16_bits_to_f32(uint16_t h) { return __uint_as_float((uint32_t)h << 16); }

__device__ __forceinline__ uint16_t pt_f32_to_bf16_bits(float f) {
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* NaN stays quiet */
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

__device__ __forceinline__ uint16_t pt_f32_to_f16_bits(float f) {
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)(((u >> 16) & 0x8000u) | 0x7e00u);
    return __half_as_ushort(__float2half_rn(f)); /* IEEE round to nearest even, like the CPU */
}

/* math type of a storage type */
template <typename T> struct pt_math { typedef T type; };
template <> struct pt_math<pt_bf16> { typedef float type; };

template <typename T> __device__ __forceinline__ typename pt_math<T>::type pt_ld(const T *p, int64_t i) { return p[i]; }
template <> __device__ __forceinline__ float pt_ld<pt_bf16>(const pt_bf16 *p, int64_t i) {
    return pt_bf16_bits_to_f32(p[i].x);
}
template <typename T> __device__ __forceinline__ void pt_st(T *p, int64_t i, typename pt_math<T>::type v) { p[i] = v; }
template <> __device__ __forceinline__ void pt_st<pt_bf16>(pt_bf16 *p, int64_t i, float v) {
    p[i].x = pt_f32_to_bf16_bits(v);
}

/* float / double overloads of the libm functions the CPU kernels use */
__device__ __forceinline__ float pt_exp(float x) { return expf(x); }
__device__ __forceinline__ double pt_exp(double x) { return exp(x); }
__device__ __forceinline__ float pt_log(float x) { return logf(x); }
__device__ __forceinline__ double pt_log(double x) { return log(x); }
__device__ __forceinline__ float pt_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double pt_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float pt_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double pt_sqrt(double x) { return sqrt(x); }
__device__ __forceinline__ float pt_fabs(float x) { return fabsf(x); }
__device__ __forceinline__ double pt_fabs(double x) { return fabs(x); }
__device__ __forceinline__ float pt_rint(float x) { return nearbyintf(x); }
__device__ __forceinline__ double pt_rint(double x) { return nearbyint(x); }
__device__ __forceinline__ float pt_sin(float x) { return sinf(x); }
__device__ __forceinline__ double pt_sin(double x) { return sin(x); }
__device__ __forceinline__ float pt_cos(float x) { return cosf(x); }
__device__ __forceinline__ double pt_cos(double x) { return cos(x); }
__device__ __forceinline__ float pt_pow(float x, float y) { return powf(x, y); }
__device__ __forceinline__ double pt_pow(double x, double y) { return pow(x, y); }

/* Element offsets of flat index i (row-major over shape[0..ndim)) for up to three stride sets.
 * Indices into the arrays are compile-time constants (unrolled, guarded by d < ndim). */
struct pt_offs {
    int64_t a, b, c;
};

template <int NOPS>
__device__ __forceinline__ pt_offs pt_offsets(int64_t i, int ndim, const int64_t *shape, const int64_t *sa,
                                              const int64_t *sb, const int64_t *sc) {
    pt_offs o = {0, 0, 0};
    if (ndim == 1) {
        o.a = i * sa[0];
        if (NOPS > 1) o.b = i * sb[0];
        if (NOPS > 2) o.c = i * sc[0];
        return o;
    }
#pragma unroll
    for (int d = PT_MAX_DIMS - 1; d >= 0; d--) {
        if (d < ndim) {
            int64_t q = i / shape[d], r = i - q * shape[d];
            o.a += r * sa[d];
            if (NOPS > 1) o.b += r * sb[d];
            if (NOPS > 2) o.c += r * sc[d];
            i = q;
        }
    }
    return o;
}

#define PT_GRID_LOOP(i, n) \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

/* ---- 16-byte vector access (the contiguous fast paths of elementwise.cu and copy.cu) ----
 * pt_pack<T, V>: V elements of T moved as whole uint4 words (V * sizeof(T) a multiple of 16), the
 * elements read and written through e[] with compile-time indices so the pack stays in registers.
 * The pointer must be 16-byte aligned (pt_aligned16 on the host). */
template <typename T, int V>
union pt_pack {
    uint4 u[V * sizeof(T) / 16];
    T e[V];
};

template <typename T, int V>
__device__ __forceinline__ void pt_pack_ld(pt_pack<T, V> &p, const T *src) {
#pragma unroll
    for (int k = 0; k < (int)(V * sizeof(T) / 16); k++) p.u[k] = ((const uint4 *)src)[k];
}

template <typename T, int V>
__device__ __forceinline__ void pt_pack_st(T *dst, const pt_pack<T, V> &p) {
#pragma unroll
    for (int k = 0; k < (int)(V * sizeof(T) / 16); k++) ((uint4 *)dst)[k] = p.u[k];
}

/* V bytes (V = 2, 4, 8) as one word: the bool output / condition of a V-element chunk */
template <int V> struct pt_bword;
template <> struct pt_bword<2> { typedef uint16_t t; };
template <> struct pt_bword<4> { typedef uint32_t t; };
template <> struct pt_bword<8> { typedef uint2 t; };
template <int V>
union pt_bpack {
    typename pt_bword<V>::t u;
    uint8_t e[V];
};

static inline bool pt_aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

#endif
