/* cuda/elementwise.cu — CUDA kernels of the elementwise family (signatures and semantics in
 * pt_elementwise.h; the CPU kernels in src/kernels/cpu/elementwise.c are the oracle: every
 * expression here is the same expression, evaluated in the same type).
 *
 * Kernels (kernels first, launchers and registration at the bottom):
 *   k_binary<T, OP, MODE>  out = a OP b (MODE 0), a OP s (1), s OP a (2); comparisons write bool
 *   k_unary<T, OP>         out = OP(a)
 *   k_unary_bwd<T, OP>     out = g * OP'(x, y)             (contiguous; x or y may be absent)
 *   k_leaky / k_leaky_bwd, k_clamp / k_clamp_bwd
 *   k_where<T>             out = c ? a : b                 (c is bool, strided)
 *   k_sum_to<T, ACC>       out += a summed over the broadcast dims, one thread per output in the
 *                          CPU's order (bit-identical in f32); k_sum_to_block: one block per output
 *                          when there are few outputs and many terms (tree order, within rounding)
 *   k_axpy<T>              out += s * b                    (out contiguous, b strided)
 *   k_fast<T, OUT, F, KA, KB, KC>, k_where_fast<T>: the contiguous fast path (see its section) that
 *                          the launchers take first for f32 / f64 / bf16 (where: every dtype) when
 *                          every operand is one contiguous run: same shape, a [C] row repeated over
 *                          the rows of [N, C], one element, or the scalar argument; n < 2^31
 * dtypes: f32, f64 and bf16 (storage only: loaded to fp32, computed in fp32, rounded to nearest
 * even once per output) for every kernel; i64 and i32 for binary, binary_s, unary (neg, abs,
 * sign, square) and where, like the CPU. Inputs are strided over the output's shape (0 = broadcast);
 * the output is contiguous, so thread i writes element i (grid-stride loop, 256 threads).
 * Tests: tests/c/test_cuda_elementwise.c, tests/gpu/test_elementwise.lua (CUDA vs CPU, all ops; the
 * fast_* tests: fast vs general kernel bit for bit, sizes 1..4097, views off 16-byte alignment).
 */
#include <string.h> /* memset */

#include "pt_cuda_common.cuh"

extern "C" {
#include "../pt_dispatch.h"
#include "../pt_elementwise.h"
#include "../pt_ops.h"
#include "pt_cuda_internal.h"
}

/* ---------------------------------------------------------------- device math */
template <typename M, int OP>
__device__ __forceinline__ M pt_arith(M x, M y) {
    if constexpr (std::is_floating_point<M>::value) {
        if constexpr (OP == PT_BIN_ADD) return x + y;
        if constexpr (OP == PT_BIN_SUB) return x - y;
        if constexpr (OP == PT_BIN_MUL) return x * y;
        if constexpr (OP == PT_BIN_DIV) return x / y;
        if constexpr (OP == PT_BIN_POW) return pt_pow(x, y);
        if constexpr (OP == PT_BIN_MAX) return (x != x || x >= y) ? x : y;
        if constexpr (OP == PT_BIN_MIN) return (x != x || x <= y) ? x : y;
    } else {
        typedef typename std::make_unsigned<M>::type U;
        if constexpr (OP == PT_BIN_ADD) return (M)((U)x + (U)y);
        if constexpr (OP == PT_BIN_SUB) return (M)((U)x - (U)y);
        if constexpr (OP == PT_BIN_MUL) return (M)((U)x * (U)y);
        if constexpr (OP == PT_BIN_DIV) return y == 0 ? (M)0 : (y == -1 ? (M)(0 - (U)x) : (M)(x / y));
        if constexpr (OP == PT_BIN_POW) {
            /* integer power with the CPU's rules for negative exponents */
            if (y < 0) return x == 1 ? (M)1 : (x == -1 ? ((y & 1) ? (M)-1 : (M)1) : (M)0);
            unsigned long long r = 1, b = (unsigned long long)(long long)x;
            long long e = (long long)y;
            while (e) {
                if (e & 1) r *= b;
                b *= b;
                e >>= 1;
            }
            return (M)(long long)r;
        }
        if constexpr (OP == PT_BIN_MAX) return x >= y ? x : y;
        if constexpr (OP == PT_BIN_MIN) return x <= y ? x : y;
    }
    return x;
}

template <typename M, int OP>
__device__ __forceinline__ uint8_t pt_cmp(M x, M y) {
    if constexpr (OP == PT_BIN_EQ) return x == y;
    if constexpr (OP == PT_BIN_NE) return x != y;
    if constexpr (OP == PT_BIN_LT) return x < y;
    if constexpr (OP == PT_BIN_LE) return x <= y;
    if constexpr (OP == PT_BIN_GT) return x > y;
    return x >= y; /* PT_BIN_GE */
}

template <typename M, int OP>
__device__ __forceinline__ M pt_un(M x) {
    if constexpr (std::is_floating_point<M>::value) {
        if constexpr (OP == PT_UN_NEG) return -x;
        if constexpr (OP == PT_UN_EXP) return pt_exp(x);
        if constexpr (OP == PT_UN_LOG) return pt_log(x);
        if constexpr (OP == PT_UN_TANH) return pt_tanh(x);
        if constexpr (OP == PT_UN_SIGMOID)
            return x >= 0 ? (M)1 / ((M)1 + pt_exp(-x)) : pt_exp(x) / ((M)1 + pt_exp(x));
        if constexpr (OP == PT_UN_RELU) return x > 0 ? x : (M)0;
        if constexpr (OP == PT_UN_SQRT) return pt_sqrt(x);
        if constexpr (OP == PT_UN_RSQRT) return (M)1 / pt_sqrt(x);
        if constexpr (OP == PT_UN_ABS) return pt_fabs(x);
        if constexpr (OP == PT_UN_SIGN) return (M)((x > 0) - (x < 0));
        if constexpr (OP == PT_UN_ROUND) return pt_rint(x);
        if constexpr (OP == PT_UN_SIN) return pt_sin(x);
        if constexpr (OP == PT_UN_COS) return pt_cos(x);
        if constexpr (OP == PT_UN_SQUARE) return x * x;
        if constexpr (OP == PT_UN_RECIPROCAL) return (M)1 / x;
    } else {
        typedef typename std::make_unsigned<M>::type U;
        if constexpr (OP == PT_UN_NEG) return (M)(0 - (U)x);
        if constexpr (OP == PT_UN_ABS) return x < 0 ? (M)(0 - (U)x) : x;
        if constexpr (OP == PT_UN_SIGN) return (M)((x > 0) - (x < 0));
        if constexpr (OP == PT_UN_SQUARE) return (M)((U)x * (U)x);
    }
    return x;
}

template <typename M, int OP>
__device__ __forceinline__ M pt_unb(M x, M y, M gr) {
    if constexpr (OP == PT_UN_NEG) return -gr;
    if constexpr (OP == PT_UN_EXP) return gr * y;
    if constexpr (OP == PT_UN_LOG) return gr / x;
    if constexpr (OP == PT_UN_TANH) return gr * ((M)1 - y * y);
    if constexpr (OP == PT_UN_SIGMOID) return gr * y * ((M)1 - y);
    if constexpr (OP == PT_UN_RELU) return x > 0 ? gr : (M)0;
    if constexpr (OP == PT_UN_SQRT) return gr * (M)0.5 / y;
    if constexpr (OP == PT_UN_RSQRT) return gr * (M)-0.5 * y * y * y;
    if constexpr (OP == PT_UN_ABS) return gr * (M)((x > 0) - (x < 0));
    if constexpr (OP == PT_UN_SIGN || OP == PT_UN_ROUND) return (M)0;
    if constexpr (OP == PT_UN_SIN) return gr * pt_cos(x);
    if constexpr (OP == PT_UN_COS) return -gr * pt_sin(x);
    if constexpr (OP == PT_UN_SQUARE) return (M)2 * x * gr;
    if constexpr (OP == PT_UN_RECIPROCAL) return -gr * y * y;
    return gr;
}

/* out + s * b: one function for the general and the fast kernel, so both compile to the same code */
template <typename M>
__device__ __forceinline__ M pt_axpy_el(M o, M s, M b) {
    return o + s * b;
}

/* ---------------------------------------------------------------- kernels */
template <typename T, int OP, int MODE>
__global__ void k_binary(pt_ew_args g, typename pt_math<T>::type s) {
    typedef typename pt_math<T>::type M;
    const T *A = (const T *)g.a, *B = (const T *)g.b;
    PT_GRID_LOOP(i, g.n) {
        pt_offs o = pt_offsets<MODE == 0 ? 2 : 1>(i, g.ndim, g.shape, g.sa, g.sb, g.sc);
        M x, y;
        if constexpr (MODE == 0) {
            x = pt_ld(A, o.a);
            y = pt_ld(B, o.b);
        } else if constexpr (MODE == 1) {
            x = pt_ld(A, o.a);
            y = s;
        } else {
            x = s;
            y = pt_ld(A, o.a);
        }
        if constexpr (OP >= PT_BIN_EQ)
            ((uint8_t *)g.out)[i] = pt_cmp<M, OP>(x, y);
        else
            pt_st((T *)g.out, i, pt_arith<M, OP>(x, y));
    }
}

template <typename T, int OP>
__global__ void k_unary(pt_ew_args g) {
    const T *A = (const T *)g.a;
    PT_GRID_LOOP(i, g.n) {
        pt_offs o = pt_offsets<1>(i, g.ndim, g.shape, g.sa, g.sb, g.sc);
        pt_st((T *)g.out, i, pt_un<typename pt_math<T>::type, OP>(pt_ld(A, o.a)));
    }
}

template <typename T, int OP>
__global__ void k_unary_bwd(pt_ew_args g) {
    typedef typename pt_math<T>::type M;
    const T *X = (const T *)g.a, *Y = (const T *)g.b, *G = (const T *)g.c;
    PT_GRID_LOOP(i, g.n) {
        M x = X ? pt_ld(X, i) : (M)0, y = Y ? pt_ld(Y, i) : (M)0;
        pt_st((T *)g.out, i, pt_unb<M, OP>(x, y, pt_ld(G, i)));
    }
}

template <typename T>
__global__ void k_leaky(pt_ew_args g, typename pt_math<T>::type s) {
    typedef typename pt_math<T>::type M;
    const T *A = (const T *)g.a;
    PT_GRID_LOOP(i, g.n) {
        pt_offs o = pt_offsets<1>(i, g.ndim, g.shape, g.sa, g.sb, g.sc);
        M x = pt_ld(A, o.a);
        pt_st((T *)g.out, i, x > 0 ? x : s * x);
    }
}

template <typename T>
__global__ void k_leaky_bwd(pt_ew_args g, typename pt_math<T>::type s) {
    typedef typename pt_math<T>::type M;
    const T *X = (const T *)g.a, *G = (const T *)g.c;
    PT_GRID_LOOP(i, g.n) {
        M x = pt_ld(X, i), gr = pt_ld(G, i);
        pt_st((T *)g.out, i, x > 0 ? gr : s * gr);
    }
}

template <typename T>
__global__ void k_clamp(pt_ew_args g, typename pt_math<T>::type lo, typename pt_math<T>::type hi) {
    typedef typename pt_math<T>::type M;
    const T *A = (const T *)g.a;
    PT_GRID_LOOP(i, g.n) {
        pt_offs o = pt_offsets<1>(i, g.ndim, g.shape, g.sa, g.sb, g.sc);
        M x = pt_ld(A, o.a);
        pt_st((T *)g.out, i, x < lo ? lo : (x > hi ? hi : x));
    }
}

template <typename T>
__global__ void k_clamp_bwd(pt_ew_args g, typename pt_math<T>::type lo, typename pt_math<T>::type hi) {
    typedef typename pt_math<T>::type M;
    const T *X = (const T *)g.a, *G = (const T *)g.c;
    PT_GRID_LOOP(i, g.n) {
        M x = pt_ld(X, i), gr = pt_ld(G, i);
        pt_st((T *)g.out, i, (x >= lo && x <= hi) ? gr : (M)0);
    }
}

/* where copies the chosen element's bits (no conversion), like the CPU */
template <typename T>
__global__ void k_where(pt_ew_args g) {
    const T *A = (const T *)g.a, *B = (const T *)g.b;
    const uint8_t *C = (const uint8_t *)g.c;
    PT_GRID_LOOP(i, g.n) {
        pt_offs o = pt_offsets<3>(i, g.ndim, g.shape, g.sa, g.sb, g.sc);
        ((T *)g.out)[i] = C[o.c] ? A[o.a] : B[o.b];
    }
}

template <typename T>
__global__ void k_axpy(pt_ew_args g, typename pt_math<T>::type s) {
    const T *B = (const T *)g.b;
    T *O = (T *)g.out;
    PT_GRID_LOOP(i, g.n) {
        pt_offs o = pt_offsets<1>(i, g.ndim, g.shape, g.sb, g.sb, g.sb);
        pt_st(O, i, pt_axpy_el(pt_ld((const T *)O, i), s, pt_ld(B, o.a)));
    }
}

/* sum_to geometry: a (contiguous, shape ashape) split into kept dims (also in out) and reduced dims */
struct pt_sumto_geom {
    int nk, nr;
    int64_t ksize[PT_MAX_DIMS], kout[PT_MAX_DIMS], kin[PT_MAX_DIMS]; /* kept: size, out stride, a stride */
    int64_t rsize[PT_MAX_DIMS], rin[PT_MAX_DIMS];                    /* reduced: size, a stride */
    int64_t R, nout;
};

__device__ __forceinline__ int64_t pt_sumto_base(const pt_sumto_geom &g, int64_t o) {
    int64_t base = 0;
#pragma unroll
    for (int k = 0; k < PT_MAX_DIMS; k++)
        if (k < g.nk) base += (o / g.kout[k]) % g.ksize[k] * g.kin[k];
    return base;
}

template <typename T, typename ACC>
__global__ void k_sum_to(pt_sumto_geom g, T *out, const T *a) {
    PT_GRID_LOOP(o, g.nout) {
        int64_t off = pt_sumto_base(g, o);
        int64_t idx[PT_MAX_DIMS];
#pragma unroll
        for (int d = 0; d < PT_MAX_DIMS; d++) idx[d] = 0;
        ACC s = pt_ld(out, o);
        for (int64_t r = 0; r < g.R; r++) {
            s += (ACC)pt_ld(a, off);
#pragma unroll
            for (int d = PT_MAX_DIMS - 1; d >= 0; d--) { /* odometer over the reduced dims */
                if (d < g.nr) {
                    idx[d]++;
                    off += g.rin[d];
                    if (idx[d] < g.rsize[d]) break;
                    off -= g.rin[d] * g.rsize[d];
                    idx[d] = 0;
                }
            }
        }
        pt_st(out, o, (typename pt_math<T>::type)s);
    }
}

template <typename T, typename ACC>
__global__ void k_sum_to_block(pt_sumto_geom g, T *out, const T *a) {
    __shared__ ACC part[PT_THREADS];
    for (int64_t o = blockIdx.x; o < g.nout; o += gridDim.x) {
        int64_t base = pt_sumto_base(g, o);
        ACC s = 0;
        for (int64_t r = threadIdx.x; r < g.R; r += blockDim.x) {
            int64_t off = base, q = r;
#pragma unroll
            for (int d = PT_MAX_DIMS - 1; d >= 0; d--) {
                if (d < g.nr) {
                    int64_t qq = q / g.rsize[d];
                    off += (q - qq * g.rsize[d]) * g.rin[d];
                    q = qq;
                }
            }
            s += (ACC)pt_ld(a, off);
        }
        part[threadIdx.x] = s;
        __syncthreads();
        for (int w = PT_THREADS / 2; w > 0; w >>= 1) {
            if ((int)threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
            __syncthreads();
        }
        if (threadIdx.x == 0) pt_st(out, o, (typename pt_math<T>::type)((ACC)pt_ld(out, o) + part[0]));
        __syncthreads(); /* part is reused by the next output */
    }
}

/* ---------------------------------------------------------------- contiguous fast path
 * When the output (always contiguous) and every operand are read as whole contiguous runs, the
 * launchers below run k_fast instead: 32-bit indices (n < 2^31), a grid-stride loop, and 16-byte
 * loads/stores of V = 16 / sizeof(T) elements (float4-wide for f32, 8 x bf16, double2-wide for f64)
 * over the first nvec elements when every pointer is 16-byte aligned and every row length is a
 * multiple of V; the remaining elements (all of them when not aligned) one at a time. Each element
 * is the same expression as in the general kernels above (the same device functions), so the two
 * paths give the same bits. Operand kinds (how operand k is read at output element i): */
enum {
    PT_FK_NONE = 0, /* absent: reads (M)0 */
    PT_FK_FULL = 1, /* contiguous, same shape: element i */
    PT_FK_ROW = 2,  /* contiguous [C] over the rows of a contiguous [N, C] (C = row length): element i % C */
    PT_FK_ONE = 3,  /* one element broadcast to all: element 0, read once per thread */
    PT_FK_NUM = 4,  /* the kernel's scalar argument (ew_binary_s) */
    PT_FK_OPT = 5   /* FULL, or absent when the pointer is NULL (ew_unary_bwd's x and y) */
};

struct pt_fast {
    void *out;
    const void *a, *b, *c;
    uint32_t n;          /* elements, < 2^31 */
    uint32_t nvec;       /* leading elements done V at a time: a multiple of V, 0 when not aligned */
    uint32_t ra, rb, rc; /* row lengths of PT_FK_ROW operands */
};

/* value of operand (kind K) at element i, one element at a time */
template <typename T, int K>
__device__ __forceinline__ typename pt_math<T>::type pt_fast_ld(const T *P, uint32_t i, uint32_t row,
                                                                 typename pt_math<T>::type u) {
    typedef typename pt_math<T>::type M;
    if constexpr (K == PT_FK_FULL) return pt_ld(P, i);
    if constexpr (K == PT_FK_OPT) return P ? pt_ld(P, i) : (M)0;
    if constexpr (K == PT_FK_ROW) return pt_ld(P, i % row);
    if constexpr (K == PT_FK_ONE || K == PT_FK_NUM) return u;
    return (M)0;
}

/* loads the V elements of operand (kind K) at i..i+V-1 (i a multiple of V) into p */
template <typename T, int V, int K>
__device__ __forceinline__ void pt_fast_ldv(pt_pack<T, V> &p, const T *P, uint32_t i, uint32_t row) {
    if constexpr (K == PT_FK_FULL) pt_pack_ld(p, P + i);
    if constexpr (K == PT_FK_OPT) {
        if (P) {
            pt_pack_ld(p, P + i);
        } else {
#pragma unroll
            for (int k = 0; k < (int)(V * sizeof(T) / 16); k++) p.u[k] = make_uint4(0, 0, 0, 0);
        }
    }
    if constexpr (K == PT_FK_ROW) pt_pack_ld(p, P + i % row); /* row % V == 0: one aligned run */
}

/* element j of a loaded pack, or the uniform value u */
template <typename T, int V, int K>
__device__ __forceinline__ typename pt_math<T>::type pt_fast_el(const pt_pack<T, V> &p, int j,
                                                                 typename pt_math<T>::type u) {
    typedef typename pt_math<T>::type M;
    if constexpr (K == PT_FK_FULL || K == PT_FK_OPT || K == PT_FK_ROW) return pt_ld(p.e, j);
    if constexpr (K == PT_FK_ONE || K == PT_FK_NUM) return u;
    return (M)0;
}

template <typename T, int K>
__device__ __forceinline__ typename pt_math<T>::type pt_fast_uniform(const T *P, typename pt_math<T>::type num) {
    typedef typename pt_math<T>::type M;
    if constexpr (K == PT_FK_ONE) return pt_ld(P, 0);
    if constexpr (K == PT_FK_NUM) return num;
    return (M)0;
}

/* out[i] = fn(a, b, c) at i; OUT = T (stored with pt_st) or uint8_t (comparisons: bool) */
template <typename T, typename OUT, class F, int KA, int KB, int KC>
__global__ void __launch_bounds__(PT_THREADS) k_fast(pt_fast f, F fn, typename pt_math<T>::type num) {
    typedef typename pt_math<T>::type M;
    constexpr int V = 16 / sizeof(T);
    const T *A = (const T *)f.a, *B = (const T *)f.b, *C = (const T *)f.c;
    const M ua = pt_fast_uniform<T, KA>(A, num), ub = pt_fast_uniform<T, KB>(B, num),
            uc = pt_fast_uniform<T, KC>(C, num);
    const uint32_t t = blockIdx.x * blockDim.x + threadIdx.x, step = gridDim.x * blockDim.x;
    for (uint32_t i = t * V; i < f.nvec; i += step * V) {
        pt_pack<T, V> pa, pb, pc;
        pt_fast_ldv<T, V, KA>(pa, A, i, f.ra);
        pt_fast_ldv<T, V, KB>(pb, B, i, f.rb);
        pt_fast_ldv<T, V, KC>(pc, C, i, f.rc);
        if constexpr (std::is_same<OUT, uint8_t>::value) {
            pt_bpack<V> po;
#pragma unroll
            for (int j = 0; j < V; j++)
                po.e[j] = fn(pt_fast_el<T, V, KA>(pa, j, ua), pt_fast_el<T, V, KB>(pb, j, ub),
                             pt_fast_el<T, V, KC>(pc, j, uc));
            *(typename pt_bword<V>::t *)((uint8_t *)f.out + i) = po.u;
        } else {
            pt_pack<T, V> po;
#pragma unroll
            for (int j = 0; j < V; j++)
                pt_st(po.e, j, fn(pt_fast_el<T, V, KA>(pa, j, ua), pt_fast_el<T, V, KB>(pb, j, ub),
                                  pt_fast_el<T, V, KC>(pc, j, uc)));
            pt_pack_st((T *)f.out + i, po);
        }
    }
    for (uint32_t i = f.nvec + t; i < f.n; i += step) {
        M x = pt_fast_ld<T, KA>(A, i, f.ra, ua), y = pt_fast_ld<T, KB>(B, i, f.rb, ub),
          z = pt_fast_ld<T, KC>(C, i, f.rc, uc);
        if constexpr (std::is_same<OUT, uint8_t>::value)
            ((uint8_t *)f.out)[i] = fn(x, y, z);
        else
            pt_st((T *)f.out, i, fn(x, y, z));
    }
}

/* where, all four contiguous and the same shape: copies the chosen element's bits, like k_where */
template <typename T>
__global__ void __launch_bounds__(PT_THREADS) k_where_fast(pt_fast f) {
    constexpr int V = 16 / sizeof(T);
    const T *A = (const T *)f.a, *B = (const T *)f.b;
    const uint8_t *C = (const uint8_t *)f.c;
    const uint32_t t = blockIdx.x * blockDim.x + threadIdx.x, step = gridDim.x * blockDim.x;
    for (uint32_t i = t * V; i < f.nvec; i += step * V) {
        pt_pack<T, V> pa, pb, po;
        pt_bpack<V> pc;
        pt_pack_ld(pa, A + i);
        pt_pack_ld(pb, B + i);
        pc.u = *(const typename pt_bword<V>::t *)(C + i);
#pragma unroll
        for (int j = 0; j < V; j++) po.e[j] = pc.e[j] ? pa.e[j] : pb.e[j];
        pt_pack_st((T *)f.out + i, po);
    }
    for (uint32_t i = f.nvec + t; i < f.n; i += step) ((T *)f.out)[i] = C[i] ? A[i] : B[i];
}

/* per-element functions of the fast kernels: (x, y, z) = operands a, b, c */
template <typename M, int OP>
struct pt_fn_bin {
    __device__ __forceinline__ M operator()(M x, M y, M) const { return pt_arith<M, OP>(x, y); }
};
template <typename M, int OP>
struct pt_fn_cmp {
    __device__ __forceinline__ uint8_t operator()(M x, M y, M) const { return pt_cmp<M, OP>(x, y); }
};
template <typename M, int OP>
struct pt_fn_un {
    __device__ __forceinline__ M operator()(M x, M, M) const { return pt_un<M, OP>(x); }
};
template <typename M, int OP>
struct pt_fn_unb { /* x = input, y = output, z = incoming gradient */
    __device__ __forceinline__ M operator()(M x, M y, M gr) const { return pt_unb<M, OP>(x, y, gr); }
};
template <typename M>
struct pt_fn_leaky {
    M s;
    __device__ __forceinline__ M operator()(M x, M, M) const { return x > 0 ? x : s * x; }
};
template <typename M>
struct pt_fn_leaky_bwd {
    M s;
    __device__ __forceinline__ M operator()(M x, M, M gr) const { return x > 0 ? gr : s * gr; }
};
template <typename M>
struct pt_fn_clamp {
    M lo, hi;
    __device__ __forceinline__ M operator()(M x, M, M) const { return x < lo ? lo : (x > hi ? hi : x); }
};
template <typename M>
struct pt_fn_clamp_bwd {
    M lo, hi;
    __device__ __forceinline__ M operator()(M x, M, M gr) const { return (x >= lo && x <= hi) ? gr : (M)0; }
};
template <typename M>
struct pt_fn_axpy { /* x = out, y = b */
    M s;
    __device__ __forceinline__ M operator()(M x, M y, M) const { return pt_axpy_el(x, s, y); }
};

/* ---------------------------------------------------------------- launchers */
#define PT_LAUNCH(n) pt_cuda_blocks((n), PT_THREADS), PT_THREADS, 0, pt_cuda_compute_stream()

/* a scalar argument in the math type; integers saturate instead of overflowing the cast */
template <typename M>
static M pt_scalar(double v) {
    if constexpr (std::is_floating_point<M>::value) {
        return (M)v;
    } else {
        if (v != v) return 0;
        if (v <= -9.2e18) return (M)(-9223372036854775807LL - 1);
        if (v >= 9.2e18) return (M)9223372036854775807LL;
        return (M)(long long)v;
    }
}

/* ---------------------------------------------------------------- fast path selection */
#define PT_FAST_MAX_N 2147483647LL /* 32-bit indices: i + grid stride stays below 2^32 */

/* How the fast path reads an operand with strides st over g's (collapsed) shape: PT_FK_FULL,
 * PT_FK_ROW (*row = its length) or PT_FK_ONE; -1 when it is not one contiguous run repeated. The
 * trailing dims where st is the output's contiguous stride form the run, every dim before it must be
 * broadcast (stride 0) or of size 1. */
static int pt_fast_kind(const pt_ew_args *g, const int64_t *st, uint32_t *row) {
    int64_t run = 1;
    int d = g->ndim - 1;
    for (; d >= 0; d--) {
        if (g->shape[d] != 1 && st[d] != run) break;
        run *= g->shape[d];
    }
    for (; d >= 0; d--)
        if (g->shape[d] != 1 && st[d] != 0) return -1;
    if (run == g->n) return PT_FK_FULL;
    if (run == 1) return PT_FK_ONE;
    *row = (uint32_t)run;
    return PT_FK_ROW;
}

/* Fills f for the operands in ops (bit k = operand a, b, c; esz[k] their element sizes) read through
 * their strides in g, and kind[k] (PT_FK_NONE for the others). false: no fast path (too many elements
 * or an operand that is not a contiguous run). The vector loop runs when the output (out_es-byte
 * elements) and every loaded operand are aligned to V elements and every row length is a multiple of V. */
static bool pt_fast_prepare(const pt_ew_args *g, unsigned ops, const size_t esz[3], size_t out_es, int V, pt_fast *f,
                            int kind[3]) {
    if (g->n <= 0 || g->n > PT_FAST_MAX_N) return false;
    const void *P[3] = {g->a, g->b, g->c};
    const int64_t *S[3] = {g->sa, g->sb, g->sc};
    uint32_t R[3] = {0, 0, 0};
    bool vec = (uintptr_t)g->out % ((uintptr_t)V * out_es) == 0;
    for (int k = 0; k < 3; k++) {
        kind[k] = PT_FK_NONE;
        if (!(ops & (1u << k))) continue;
        kind[k] = pt_fast_kind(g, S[k], &R[k]);
        if (kind[k] < 0) return false;
        if (kind[k] != PT_FK_ONE) vec = vec && (uintptr_t)P[k] % ((uintptr_t)V * esz[k]) == 0;
        if (kind[k] == PT_FK_ROW) vec = vec && R[k] % (uint32_t)V == 0;
    }
    memset(f, 0, sizeof *f);
    f->out = g->out;
    f->a = g->a;
    f->b = g->b;
    f->c = g->c;
    f->ra = R[0];
    f->rb = R[1];
    f->rc = R[2];
    f->n = (uint32_t)g->n;
    f->nvec = vec ? (uint32_t)(g->n - g->n % V) : 0;
    return true;
}

/* the same for kernels whose operands are contiguous by contract (the *_bwd kernels: their strides
 * are not filled in); NULL operands are skipped */
static bool pt_fast_contiguous(const pt_ew_args *g, int V, pt_fast *f) {
    if (g->n <= 0 || g->n > PT_FAST_MAX_N) return false;
    bool vec = pt_aligned16(g->out);
    const void *P[3] = {g->a, g->b, g->c};
    for (int k = 0; k < 3; k++)
        if (P[k]) vec = vec && pt_aligned16(P[k]);
    memset(f, 0, sizeof *f);
    f->out = g->out;
    f->a = g->a;
    f->b = g->b;
    f->c = g->c;
    f->n = (uint32_t)g->n;
    f->nvec = vec ? (uint32_t)(g->n - g->n % V) : 0;
    return true;
}

static unsigned pt_fast_blocks(const pt_fast &f, int V) {
    return pt_cuda_blocks((int64_t)(f.nvec / (uint32_t)V) + (int64_t)(f.n - f.nvec), PT_THREADS);
}

template <typename T, typename OUT, int KA, int KB, int KC, class F>
static void pt_fast_run(const pt_fast &f, F fn, typename pt_math<T>::type num) {
    k_fast<T, OUT, F, KA, KB, KC>
        <<<pt_fast_blocks(f, 16 / (int)sizeof(T)), PT_THREADS, 0, pt_cuda_compute_stream()>>>(f, fn, num);
}

template <typename T>
static constexpr bool pt_fast_dtype() { /* the fast path covers the float dtypes */
    return std::is_floating_point<typename pt_math<T>::type>::value;
}

/* binary ops with operand kinds KA, KB; comparisons only for FULL / NUM operands */
template <typename T, int KA, int KB>
static bool pt_binary_fast_ops(const pt_fast &f, int op, typename pt_math<T>::type s) {
    typedef typename pt_math<T>::type M;
    switch (op) {
#define PT_FB(OP) \
    case OP: pt_fast_run<T, T, KA, KB, PT_FK_NONE>(f, pt_fn_bin<M, OP>(), s); return true;
        PT_FB(PT_BIN_ADD)
        PT_FB(PT_BIN_SUB)
        PT_FB(PT_BIN_MUL)
        PT_FB(PT_BIN_DIV)
        PT_FB(PT_BIN_POW)
        PT_FB(PT_BIN_MAX)
        PT_FB(PT_BIN_MIN)
#undef PT_FB
    default: break;
    }
    if constexpr ((KA == PT_FK_FULL || KA == PT_FK_NUM) && (KB == PT_FK_FULL || KB == PT_FK_NUM)) {
        switch (op) {
#define PT_FC(OP) \
    case OP: pt_fast_run<T, uint8_t, KA, KB, PT_FK_NONE>(f, pt_fn_cmp<M, OP>(), s); return true;
            PT_FC(PT_BIN_EQ)
            PT_FC(PT_BIN_NE)
            PT_FC(PT_BIN_LT)
            PT_FC(PT_BIN_LE)
            PT_FC(PT_BIN_GT)
            PT_FC(PT_BIN_GE)
#undef PT_FC
        default: break;
        }
    }
    return false;
}

/* ew_binary (MODE 0) / ew_binary_s (MODE 1: a OP s, 2: s OP a) on the fast path; false = not eligible */
template <typename T, int MODE>
static bool pt_binary_fast(const pt_ew_args *g, typename pt_math<T>::type s) {
    if constexpr (!pt_fast_dtype<T>()) {
        return false;
    } else {
        const size_t es[3] = {sizeof(T), sizeof(T), 1};
        const bool cmp = g->op >= PT_BIN_EQ;
        pt_fast f;
        int kind[3];
        if (!pt_fast_prepare(g, MODE == 0 ? 3u : 1u, es, cmp ? 1 : sizeof(T), 16 / (int)sizeof(T), &f, kind))
            return false;
        if constexpr (MODE == 0) {
            const int ka = kind[0], kb = kind[1];
            if (ka == PT_FK_FULL && kb == PT_FK_FULL) return pt_binary_fast_ops<T, PT_FK_FULL, PT_FK_FULL>(f, g->op, s);
            if (ka == PT_FK_FULL && kb == PT_FK_ROW) return pt_binary_fast_ops<T, PT_FK_FULL, PT_FK_ROW>(f, g->op, s);
            if (ka == PT_FK_ROW && kb == PT_FK_FULL) return pt_binary_fast_ops<T, PT_FK_ROW, PT_FK_FULL>(f, g->op, s);
            if (ka == PT_FK_FULL && kb == PT_FK_ONE) return pt_binary_fast_ops<T, PT_FK_FULL, PT_FK_ONE>(f, g->op, s);
            if (ka == PT_FK_ONE && kb == PT_FK_FULL) return pt_binary_fast_ops<T, PT_FK_ONE, PT_FK_FULL>(f, g->op, s);
            return false;
        } else {
            if (kind[0] != PT_FK_FULL) return false;
            if constexpr (MODE == 1) return pt_binary_fast_ops<T, PT_FK_FULL, PT_FK_NUM>(f, g->op, s);
            f.b = f.a; /* s OP a: a is the second operand */
            f.a = NULL;
            return pt_binary_fast_ops<T, PT_FK_NUM, PT_FK_FULL>(f, g->op, s);
        }
    }
}

template <typename T>
static bool pt_unary_fast(const pt_ew_args *g) {
    if constexpr (!pt_fast_dtype<T>()) {
        return false;
    } else {
        typedef typename pt_math<T>::type M;
        const size_t es[3] = {sizeof(T), sizeof(T), sizeof(T)};
        pt_fast f;
        int kind[3];
        if (!pt_fast_prepare(g, 1u, es, sizeof(T), 16 / (int)sizeof(T), &f, kind) || kind[0] != PT_FK_FULL) return false;
        switch (g->op) {
#define PT_FU(OP) \
    case OP: pt_fast_run<T, T, PT_FK_FULL, PT_FK_NONE, PT_FK_NONE>(f, pt_fn_un<M, OP>(), (M)0); return true;
            PT_FU(PT_UN_NEG)
            PT_FU(PT_UN_EXP)
            PT_FU(PT_UN_LOG)
            PT_FU(PT_UN_TANH)
            PT_FU(PT_UN_SIGMOID)
            PT_FU(PT_UN_RELU)
            PT_FU(PT_UN_SQRT)
            PT_FU(PT_UN_RSQRT)
            PT_FU(PT_UN_ABS)
            PT_FU(PT_UN_SIGN)
            PT_FU(PT_UN_ROUND)
            PT_FU(PT_UN_SIN)
            PT_FU(PT_UN_COS)
            PT_FU(PT_UN_SQUARE)
            PT_FU(PT_UN_RECIPROCAL)
#undef PT_FU
        default: return false;
        }
    }
}

template <typename T>
static bool pt_unary_bwd_fast(const pt_ew_args *g) {
    typedef typename pt_math<T>::type M;
    pt_fast f;
    if (!pt_fast_contiguous(g, 16 / (int)sizeof(T), &f)) return false;
    switch (g->op) {
#define PT_FUB(OP) \
    case OP: pt_fast_run<T, T, PT_FK_OPT, PT_FK_OPT, PT_FK_FULL>(f, pt_fn_unb<M, OP>(), (M)0); return true;
        PT_FUB(PT_UN_NEG)
        PT_FUB(PT_UN_EXP)
        PT_FUB(PT_UN_LOG)
        PT_FUB(PT_UN_TANH)
        PT_FUB(PT_UN_SIGMOID)
        PT_FUB(PT_UN_RELU)
        PT_FUB(PT_UN_SQRT)
        PT_FUB(PT_UN_RSQRT)
        PT_FUB(PT_UN_ABS)
        PT_FUB(PT_UN_SIGN)
        PT_FUB(PT_UN_ROUND)
        PT_FUB(PT_UN_SIN)
        PT_FUB(PT_UN_COS)
        PT_FUB(PT_UN_SQUARE)
        PT_FUB(PT_UN_RECIPROCAL)
#undef PT_FUB
    default: return false;
    }
}

/* one-input forward ops (leaky, clamp): a contiguous */
template <typename T, class F>
static bool pt_map1_fast(const pt_ew_args *g, F fn) {
    const size_t es[3] = {sizeof(T), sizeof(T), sizeof(T)};
    pt_fast f;
    int kind[3];
    if (!pt_fast_prepare(g, 1u, es, sizeof(T), 16 / (int)sizeof(T), &f, kind) || kind[0] != PT_FK_FULL) return false;
    pt_fast_run<T, T, PT_FK_FULL, PT_FK_NONE, PT_FK_NONE>(f, fn, (typename pt_math<T>::type)0);
    return true;
}

/* backward ops of leaky / clamp: x (a) and g (c) contiguous by contract */
template <typename T, class F>
static bool pt_bwd2_fast(const pt_ew_args *g, F fn) {
    pt_fast f;
    if (!pt_fast_contiguous(g, 16 / (int)sizeof(T), &f)) return false;
    pt_fast_run<T, T, PT_FK_FULL, PT_FK_NONE, PT_FK_FULL>(f, fn, (typename pt_math<T>::type)0);
    return true;
}

/* out += s * b: out contiguous (read as operand a), b FULL, ROW or ONE */
template <typename T>
static bool pt_axpy_fast(const pt_ew_args *g, typename pt_math<T>::type s) {
    typedef typename pt_math<T>::type M;
    const size_t es[3] = {sizeof(T), sizeof(T), sizeof(T)};
    pt_fast f;
    int kind[3];
    if (!pt_fast_prepare(g, 2u, es, sizeof(T), 16 / (int)sizeof(T), &f, kind)) return false;
    f.a = g->out;
    pt_fn_axpy<M> fn = {s};
    switch (kind[1]) {
    case PT_FK_FULL: pt_fast_run<T, T, PT_FK_FULL, PT_FK_FULL, PT_FK_NONE>(f, fn, (M)0); return true;
    case PT_FK_ROW: pt_fast_run<T, T, PT_FK_FULL, PT_FK_ROW, PT_FK_NONE>(f, fn, (M)0); return true;
    case PT_FK_ONE: pt_fast_run<T, T, PT_FK_FULL, PT_FK_ONE, PT_FK_NONE>(f, fn, (M)0); return true;
    default: return false;
    }
}

/* where: condition (bool), a, b all contiguous with the output's shape */
template <typename T>
static bool pt_where_fast(const pt_ew_args *g) {
    const size_t es[3] = {sizeof(T), sizeof(T), 1};
    pt_fast f;
    int kind[3];
    if (!pt_fast_prepare(g, 7u, es, sizeof(T), 16 / (int)sizeof(T), &f, kind)) return false;
    if (kind[0] != PT_FK_FULL || kind[1] != PT_FK_FULL || kind[2] != PT_FK_FULL) return false;
    k_where_fast<T><<<pt_fast_blocks(f, 16 / (int)sizeof(T)), PT_THREADS, 0, pt_cuda_compute_stream()>>>(f);
    return true;
}

template <typename T, int MODE>
static void pt_binary_launch(const pt_ew_args *g, const char *what) {
    typedef typename pt_math<T>::type M;
    M s = pt_scalar<M>(g->s);
    if (pt_binary_fast<T, MODE>(g, s)) {
        pt_cuda_launch_check(what);
        return;
    }
    switch (g->op) {
#define PT_BIN_CASE(OP) \
    case OP: k_binary<T, OP, MODE><<<PT_LAUNCH(g->n)>>>(*g, s); break;
        PT_BIN_CASE(PT_BIN_ADD)
        PT_BIN_CASE(PT_BIN_SUB)
        PT_BIN_CASE(PT_BIN_MUL)
        PT_BIN_CASE(PT_BIN_DIV)
        PT_BIN_CASE(PT_BIN_POW)
        PT_BIN_CASE(PT_BIN_MAX)
        PT_BIN_CASE(PT_BIN_MIN)
        PT_BIN_CASE(PT_BIN_EQ)
        PT_BIN_CASE(PT_BIN_NE)
        PT_BIN_CASE(PT_BIN_LT)
        PT_BIN_CASE(PT_BIN_LE)
        PT_BIN_CASE(PT_BIN_GT)
        PT_BIN_CASE(PT_BIN_GE)
#undef PT_BIN_CASE
    default: pt_cuda_set_pending("%s: unknown binary op %d", what, g->op); return;
    }
    pt_cuda_launch_check(what);
}

template <typename T>
static void pt_binary_s_launch(const pt_ew_args *g, const char *what) {
    if (g->scalar_first)
        pt_binary_launch<T, 2>(g, what);
    else
        pt_binary_launch<T, 1>(g, what);
}

template <typename T>
static void pt_unary_launch(const pt_ew_args *g, const char *what) {
    if (pt_unary_fast<T>(g)) {
        pt_cuda_launch_check(what);
        return;
    }
    switch (g->op) {
#define PT_UN_CASE(OP) \
    case OP: k_unary<T, OP><<<PT_LAUNCH(g->n)>>>(*g); break;
        PT_UN_CASE(PT_UN_NEG)
        PT_UN_CASE(PT_UN_ABS)
        PT_UN_CASE(PT_UN_SIGN)
        PT_UN_CASE(PT_UN_SQUARE)
#undef PT_UN_CASE
    default:
        if constexpr (std::is_floating_point<typename pt_math<T>::type>::value) {
            switch (g->op) {
#define PT_UN_CASE(OP) \
    case OP: k_unary<T, OP><<<PT_LAUNCH(g->n)>>>(*g); break;
                PT_UN_CASE(PT_UN_EXP)
                PT_UN_CASE(PT_UN_LOG)
                PT_UN_CASE(PT_UN_TANH)
                PT_UN_CASE(PT_UN_SIGMOID)
                PT_UN_CASE(PT_UN_RELU)
                PT_UN_CASE(PT_UN_SQRT)
                PT_UN_CASE(PT_UN_RSQRT)
                PT_UN_CASE(PT_UN_ROUND)
                PT_UN_CASE(PT_UN_SIN)
                PT_UN_CASE(PT_UN_COS)
                PT_UN_CASE(PT_UN_RECIPROCAL)
#undef PT_UN_CASE
            default: pt_cuda_set_pending("%s: unknown unary op %d", what, g->op); return;
            }
        } else {
            pt_cuda_set_pending("%s: unary op %d has no integer kernel", what, g->op);
            return;
        }
    }
    pt_cuda_launch_check(what);
}

template <typename T>
static void pt_unary_bwd_launch(const pt_ew_args *g, const char *what) {
    if (pt_unary_bwd_fast<T>(g)) {
        pt_cuda_launch_check(what);
        return;
    }
    switch (g->op) {
#define PT_UNB_CASE(OP) \
    case OP: k_unary_bwd<T, OP><<<PT_LAUNCH(g->n)>>>(*g); break;
        PT_UNB_CASE(PT_UN_NEG)
        PT_UNB_CASE(PT_UN_EXP)
        PT_UNB_CASE(PT_UN_LOG)
        PT_UNB_CASE(PT_UN_TANH)
        PT_UNB_CASE(PT_UN_SIGMOID)
        PT_UNB_CASE(PT_UN_RELU)
        PT_UNB_CASE(PT_UN_SQRT)
        PT_UNB_CASE(PT_UN_RSQRT)
        PT_UNB_CASE(PT_UN_ABS)
        PT_UNB_CASE(PT_UN_SIGN)
        PT_UNB_CASE(PT_UN_ROUND)
        PT_UNB_CASE(PT_UN_SIN)
        PT_UNB_CASE(PT_UN_COS)
        PT_UNB_CASE(PT_UN_SQUARE)
        PT_UNB_CASE(PT_UN_RECIPROCAL)
#undef PT_UNB_CASE
    default: pt_cuda_set_pending("%s: unknown unary op %d", what, g->op); return;
    }
    pt_cuda_launch_check(what);
}

template <typename T>
static void pt_sum_to_launch(const pt_ew_args *g, const char *what) {
    typedef typename std::conditional<std::is_same<T, double>::value, double, float>::type ACC;
    pt_sumto_geom s;
    memset(&s, 0, sizeof s);
    int64_t in_stride = 1;
    s.R = 1;
    s.nout = 1;
    /* walk a's dims from the last (contiguous strides), then store them in row-major order */
    int64_t kz[PT_MAX_DIMS], ko[PT_MAX_DIMS], ki[PT_MAX_DIMS], rz[PT_MAX_DIMS], ri[PT_MAX_DIMS];
    int nk = 0, nr = 0;
    for (int d = g->andim - 1; d >= 0; d--) {
        int64_t size = g->ashape[d];
        if (size != 1) {
            if (g->sa[d] != 0) {
                kz[nk] = size;
                ko[nk] = g->sa[d];
                ki[nk] = in_stride;
                nk++;
                s.nout *= size;
            } else {
                rz[nr] = size;
                ri[nr] = in_stride;
                nr++;
                s.R *= size;
            }
        }
        in_stride *= size;
    }
    for (int k = 0; k < nk; k++) {
        s.ksize[k] = kz[nk - 1 - k];
        s.kout[k] = ko[nk - 1 - k];
        s.kin[k] = ki[nk - 1 - k];
    }
    for (int k = 0; k < nr; k++) {
        s.rsize[k] = rz[nr - 1 - k];
        s.rin[k] = ri[nr - 1 - k];
    }
    s.nk = nk;
    s.nr = nr;
    if (s.nout == 0 || s.R == 0) return;
    T *out = (T *)g->out;
    const T *a = (const T *)g->a;
    if (s.R >= 4 * PT_THREADS && s.nout < (int64_t)pt_cuda_sm_count() * 64) {
        unsigned blocks = s.nout < (int64_t)pt_cuda_sm_count() * 32 ? (unsigned)s.nout : (unsigned)pt_cuda_sm_count() * 32;
        k_sum_to_block<T, ACC><<<blocks, PT_THREADS, 0, pt_cuda_compute_stream()>>>(s, out, a);
    } else {
        k_sum_to<T, ACC><<<PT_LAUNCH(s.nout)>>>(s, out, a);
    }
    pt_cuda_launch_check(what);
}

/* one launcher per (kernel name, dtype), registered in the dispatch table */
#define PT_DEFINE_ALL(SFX, T)                                                                           \
    static void cu_bin_##SFX(const pt_ew_args *g) { pt_binary_launch<T, 0>(g, "ew_binary " #SFX); }   \
    static void cu_bins_##SFX(const pt_ew_args *g) { pt_binary_s_launch<T>(g, "ew_binary_s " #SFX); } \
    static void cu_un_##SFX(const pt_ew_args *g) { pt_unary_launch<T>(g, "ew_unary " #SFX); }         \
    static void cu_where_##SFX(const pt_ew_args *g) {                                                   \
        if (!pt_where_fast<T>(g)) k_where<T><<<PT_LAUNCH(g->n)>>>(*g);                                  \
        pt_cuda_launch_check("ew_where " #SFX);                                                         \
    }

#define PT_DEFINE_FLOAT(SFX, T)                                                                         \
    static void cu_unb_##SFX(const pt_ew_args *g) { pt_unary_bwd_launch<T>(g, "ew_unary_bwd " #SFX); } \
    static void cu_leaky_##SFX(const pt_ew_args *g) {                                                   \
        typedef pt_math<T>::type M;                                                                     \
        pt_fn_leaky<M> fn = {pt_scalar<M>(g->s)};                                                       \
        if (!pt_map1_fast<T>(g, fn)) k_leaky<T><<<PT_LAUNCH(g->n)>>>(*g, fn.s);                         \
        pt_cuda_launch_check("ew_leaky " #SFX);                                                         \
    }                                                                                                   \
    static void cu_leaky_bwd_##SFX(const pt_ew_args *g) {                                               \
        typedef pt_math<T>::type M;                                                                     \
        pt_fn_leaky_bwd<M> fn = {pt_scalar<M>(g->s)};                                                   \
        if (!pt_bwd2_fast<T>(g, fn)) k_leaky_bwd<T><<<PT_LAUNCH(g->n)>>>(*g, fn.s);                     \
        pt_cuda_launch_check("ew_leaky_bwd " #SFX);                                                     \
    }                                                                                                   \
    static void cu_clamp_##SFX(const pt_ew_args *g) {                                                   \
        typedef pt_math<T>::type M;                                                                     \
        pt_fn_clamp<M> fn = {pt_scalar<M>(g->s), pt_scalar<M>(g->s2)};                                  \
        if (!pt_map1_fast<T>(g, fn)) k_clamp<T><<<PT_LAUNCH(g->n)>>>(*g, fn.lo, fn.hi);                 \
        pt_cuda_launch_check("ew_clamp " #SFX);                                                         \
    }                                                                                                   \
    static void cu_clamp_bwd_##SFX(const pt_ew_args *g) {                                               \
        typedef pt_math<T>::type M;                                                                     \
        pt_fn_clamp_bwd<M> fn = {pt_scalar<M>(g->s), pt_scalar<M>(g->s2)};                              \
        if (!pt_bwd2_fast<T>(g, fn)) k_clamp_bwd<T><<<PT_LAUNCH(g->n)>>>(*g, fn.lo, fn.hi);             \
        pt_cuda_launch_check("ew_clamp_bwd " #SFX);                                                     \
    }                                                                                                   \
    static void cu_sumto_##SFX(const pt_ew_args *g) { pt_sum_to_launch<T>(g, "ew_sum_to " #SFX); }     \
    static void cu_axpy_##SFX(const pt_ew_args *g) {                                                    \
        typedef pt_math<T>::type M;                                                                     \
        M s = pt_scalar<M>(g->s);                                                                       \
        if (!pt_axpy_fast<T>(g, s)) k_axpy<T><<<PT_LAUNCH(g->n)>>>(*g, s);                              \
        pt_cuda_launch_check("ew_axpy " #SFX);                                                          \
    }

PT_DEFINE_ALL(f32, float)
PT_DEFINE_ALL(f64, double)
PT_DEFINE_ALL(bf16, pt_bf16)
PT_DEFINE_ALL(i64, int64_t)
PT_DEFINE_ALL(i32, int32_t)
PT_DEFINE_FLOAT(f32, float)
PT_DEFINE_FLOAT(f64, double)
PT_DEFINE_FLOAT(bf16, pt_bf16)

#define PT_REG_ALL(SFX, DT)                                  \
    PT_REGISTER_KERNEL(ew_binary, PT_DEV_CUDA, DT, cu_bin_##SFX)     \
    PT_REGISTER_KERNEL(ew_binary_s, PT_DEV_CUDA, DT, cu_bins_##SFX)  \
    PT_REGISTER_KERNEL(ew_unary, PT_DEV_CUDA, DT, cu_un_##SFX)       \
    PT_REGISTER_KERNEL(ew_where, PT_DEV_CUDA, DT, cu_where_##SFX)
#define PT_REG_FLOAT(SFX, DT)                                         \
    PT_REGISTER_KERNEL(ew_unary_bwd, PT_DEV_CUDA, DT, cu_unb_##SFX)         \
    PT_REGISTER_KERNEL(ew_leaky, PT_DEV_CUDA, DT, cu_leaky_##SFX)           \
    PT_REGISTER_KERNEL(ew_leaky_bwd, PT_DEV_CUDA, DT, cu_leaky_bwd_##SFX)   \
    PT_REGISTER_KERNEL(ew_clamp, PT_DEV_CUDA, DT, cu_clamp_##SFX)           \
    PT_REGISTER_KERNEL(ew_clamp_bwd, PT_DEV_CUDA, DT, cu_clamp_bwd_##SFX)   \
    PT_REGISTER_KERNEL(ew_sum_to, PT_DEV_CUDA, DT, cu_sumto_##SFX)          \
    PT_REGISTER_KERNEL(ew_axpy, PT_DEV_CUDA, DT, cu_axpy_##SFX)

PT_REG_ALL(f32, PT_F32)
PT_REG_ALL(f64, PT_F64)
PT_REG_ALL(bf16, PT_BF16)
PT_REG_ALL(i64, PT_I64)
PT_REG_ALL(i32, PT_I32)
PT_REG_FLOAT(f32, PT_F32)
PT_REG_FLOAT(f64, PT_F64)
PT_REG_FLOAT(bf16, PT_BF16)

/* ---------------------------------------------------------------- end of file (tests/emu/elementwise_emu.cpp
 * extracts the text from the "device math" banner up to this line) */
