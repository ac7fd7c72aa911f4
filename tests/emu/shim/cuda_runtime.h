// tests/emu/shim/cuda_runtime.h — the CUDA headers as the CPU emulator sees them, so that proteus's .cu
// files and src/kernels/cuda/pt_cuda_common.cuh compile unchanged with a host C++ compiler (g++/clang++,
// C++20) for the emulation tests in tests/emu/ (attention_emu, linear_act_emu, fused_norm_emu, ...).
// The directory must come first on the include path (before any real CUDA include directory).
//
// The shim (this directory; stateless, usable without the emulator for host-side code):
//   cuda_runtime.h      this file: qualifiers, vector types and dim3 / uint3, warpSize, bit casts, the
//                       _rn arithmetic intrinsics, conversions, integer intrinsics, __saturatef,
//                       min / max overloads, __ldg, memory fences (no-ops);
//                       includes cuda_runtime_api.h
//   cuda_runtime_api.h  the host runtime calls (cudaMemsetAsync, cudaGetDevice, ...) on host memory
//   cuda_fp16.h         __half and its conversions (__float2half_rn: IEEE round to nearest even,
//                       checked against the host's _Float16 on all 2^32 floats when written)
//   cublas_v2.h         the cuBLAS calls of optim.cu: cublasSgemmStridedBatched as a host loop, ...
// The execution model lives in tests/emu/emu_warp.h (it includes this file): threadIdx / blockIdx /
// blockDim / gridDim, __syncthreads, __syncwarp, warp shuffles and votes, atomics, static and dynamic
// shared memory, the grid launcher and `kernel<<<grid, block, smem, stream>>>(args)` (rewritten by
// tests/emu/extract_kernels.cmake into a call of pt_emu_launch_kernel). tests/emu/emu_host.h has proteus's
// CUDA backend host side (pt_cuda_alloc, pt_cuda_compute_stream, ...) for the launchers.
//
// Compile with -ffp-contract=off (the _rn intrinsics and plain CUDA a*b+c must round each operation;
// a host FMA would fuse them) and -fno-strict-aliasing (CUDA code reads T arrays through uint4 /
// float4 / packed structs). __CUDA_ARCH__ and __CUDACC__ stay undefined. What the shim gives that a GPU
// may not: CUDA's libm (cosf, powf, expf, ...) differs from glibc's in the last bits; __expf / __logf /
// __sinf / __cosf / __powf are the precise host functions here (the GPU's are approximations); nvcc
// contracts plain a*b+c into FMAs by default, the emulator never does.
//
// `__shared__` declarations: extract_kernels.cmake rewrites each one into a static variable that the
// emulator fills with NaN bytes at its first use in every block (so reads of unwritten entries show);
// the plain `static` below is the fallback for code compiled without the extraction. The header is
// C++ only; its content has C++ linkage even when included inside extern "C".
#ifndef PT_EMU_SHIM_CUDA_RUNTIME_H
#define PT_EMU_SHIM_CUDA_RUNTIME_H

#ifndef __cplusplus
#error "tests/emu/shim/cuda_runtime.h is for C++ (the CUDA emulation tests)"
#endif

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cuda_runtime_api.h"

extern "C++" {

// ---------------------------------------------------------------- qualifiers
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __grid_constant__
#define __constant__
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))

constexpr int warpSize = 32;

// ---------------------------------------------------------------- vector types (CUDA's alignments)
#define PT_EMU_VEC(T, N, A4)                                                                              \
    struct N##1 {                                                                                         \
        T x;                                                                                              \
    };                                                                                                    \
    struct __attribute__((aligned(2 * sizeof(T)))) N##2 {                                                 \
        T x, y;                                                                                           \
    };                                                                                                    \
    struct N##3 {                                                                                         \
        T x, y, z;                                                                                        \
    };                                                                                                    \
    struct __attribute__((aligned(A4))) N##4 {                                                            \
        T x, y, z, w;                                                                                     \
    };                                                                                                    \
    static inline N##1 make_##N##1(T x) { return N##1{x}; }                                               \
    static inline N##2 make_##N##2(T x, T y) { return N##2{x, y}; }                                       \
    static inline N##3 make_##N##3(T x, T y, T z) { return N##3{x, y, z}; }                               \
    static inline N##4 make_##N##4(T x, T y, T z, T w) { return N##4{x, y, z, w}; }
PT_EMU_VEC(signed char, char, 4)
PT_EMU_VEC(unsigned char, uchar, 4)
PT_EMU_VEC(short, short, 8)
PT_EMU_VEC(unsigned short, ushort, 8)
PT_EMU_VEC(int, int, 16)
PT_EMU_VEC(unsigned int, uint, 16)
PT_EMU_VEC(long, long, 16)
PT_EMU_VEC(unsigned long, ulong, 16)
PT_EMU_VEC(long long, longlong, 16)
PT_EMU_VEC(unsigned long long, ulonglong, 16)
PT_EMU_VEC(float, float, 16)
PT_EMU_VEC(double, double, 16)
#undef PT_EMU_VEC

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};

// ---------------------------------------------------------------- bit casts
static inline uint32_t pt_emu_f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float pt_emu_u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline unsigned __float_as_uint(float f) { return pt_emu_f2u(f); }
static inline float __uint_as_float(unsigned u) { return pt_emu_u2f(u); }
static inline int __float_as_int(float f) { return (int)pt_emu_f2u(f); }
static inline float __int_as_float(int i) { return pt_emu_u2f((uint32_t)i); }
static inline long long __double_as_longlong(double d) {
    long long v;
    memcpy(&v, &d, 8);
    return v;
}
static inline double __longlong_as_double(long long v) {
    double d;
    memcpy(&d, &v, 8);
    return d;
}

// ---------------------------------------------------------------- IEEE operations rounded on their own
// (round to nearest even; the other rounding modes _rz / _ru / _rd are not emulated)
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float __frcp_rn(float a) { return 1.0f / a; }
static inline float __fsqrt_rn(float a) { return sqrtf(a); }
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
static inline double __dadd_rn(double a, double b) { return a + b; }
static inline double __dsub_rn(double a, double b) { return a - b; }
static inline double __dmul_rn(double a, double b) { return a * b; }
static inline double __ddiv_rn(double a, double b) { return a / b; }
static inline double __drcp_rn(double a) { return 1.0 / a; }
static inline double __dsqrt_rn(double a) { return sqrt(a); }
static inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }
static inline float __double2float_rn(double d) { return (float)d; }

// ---------------------------------------------------------------- integer intrinsics
static inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((uint64_t)a * b) >> 32); }
static inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
    return (unsigned long long)(((unsigned __int128)a * b) >> 64);
}
static inline long long __mul64hi(long long a, long long b) { return (long long)(((__int128)a * b) >> 64); }
static inline int __popc(unsigned v) { return __builtin_popcount(v); }
static inline int __popcll(unsigned long long v) { return __builtin_popcountll(v); }
static inline int __clz(int v) { return v == 0 ? 32 : __builtin_clz((unsigned)v); }
static inline int __clzll(long long v) { return v == 0 ? 64 : __builtin_clzll((unsigned long long)v); }
static inline int __ffs(int v) { return __builtin_ffs(v); }
static inline int __ffsll(long long v) { return __builtin_ffsll(v); }
static inline unsigned __brev(unsigned v) {
    unsigned r = 0;
    for (int i = 0; i < 32; i++, v >>= 1) r = (r << 1) | (v & 1u);
    return r;
}

// ---------------------------------------------------------------- math beyond <math.h>
// the fast intrinsics as the precise functions (macros: glibc's <math.h> declares these names itself,
// without exporting them); rsqrtf / rsqrt are left out (a C23 libm may declare rsqrt): add them as
// 1/sqrt when a kernel needs them
#define __expf(x) expf(x)
#define __logf(x) logf(x)
#define __sinf(x) sinf(x)
#define __cosf(x) cosf(x)
#define __powf(x, y) powf(x, y)
static inline float __saturatef(float x) { return x != x ? 0.0f : x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }
#define PT_EMU_MINMAX(T)                                          \
    static inline T min(T a, T b) { return b < a ? b : a; }       \
    static inline T max(T a, T b) { return a < b ? b : a; }
PT_EMU_MINMAX(int)
PT_EMU_MINMAX(unsigned)
PT_EMU_MINMAX(long)
PT_EMU_MINMAX(unsigned long)
PT_EMU_MINMAX(long long)
PT_EMU_MINMAX(unsigned long long)
#undef PT_EMU_MINMAX
static inline float min(float a, float b) { return fminf(a, b); }
static inline float max(float a, float b) { return fmaxf(a, b); }
static inline double min(double a, double b) { return fmin(a, b); }
static inline double max(double a, double b) { return fmax(a, b); }

// ---------------------------------------------------------------- memory
template <typename T>
static inline T __ldg(const T *p) {
    return *p;
}
// one OS thread runs every CUDA thread, switching only at barriers and warp collectives: all memory
// is coherent, fences have nothing to order
static inline void __threadfence() {}
static inline void __threadfence_block() {}
static inline void __threadfence_system() {}

} // extern "C++"

#endif
