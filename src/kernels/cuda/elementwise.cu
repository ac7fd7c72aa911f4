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
 * dtypes: f32, f64 and bf16 (storage only: loaded to fp32, computed in fp32, rounded to nearest
 * even once per output) for every kernel; i64 and i32 for binary, binary_s, unary (neg, abs,
 * sign, square) and where, like the CPU. Inputs are strided over the output's shape (0 = broadcast);
 * the output is contiguous, so thread i writes element i (grid-stride loop, 256 threads).
 * Tests: tests/c/test_cuda_elementwise.c, tests/gpu/test_elementwise.lua (CUDA vs CPU, all ops).
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
        pt_st(O, i, pt_ld((const T *)O, i) + s * pt_ld(B, o.a));
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

template <typename T, int MODE>
static void pt_binary_launch(const pt_ew_args *g, const char *what) {
    typedef typename pt_math<T>::type M;
    M s = pt_scalar<M>(g->s);
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
        k_where<T><<<PT_LAUNCH(g->n)>>>(*g);                                                            \
        pt_cuda_launch_check("ew_where " #SFX);                                                         \
    }

#define PT_DEFINE_FLOAT(SFX, T)                                                                         \
    static void cu_unb_##SFX(const pt_ew_args *g) { pt_unary_bwd_launch<T>(g, "ew_unary_bwd " #SFX); } \
    static void cu_leaky_##SFX(const pt_ew_args *g) {                                                   \
        k_leaky<T><<<PT_LAUNCH(g->n)>>>(*g, pt_scalar<pt_math<T>::type>(g->s));                         \
        pt_cuda_launch_check("ew_leaky " #SFX);                                                         \
    }                                                                                                   \
    static void cu_leaky_bwd_##SFX(const pt_ew_args *g) {                                               \
        k_leaky_bwd<T><<<PT_LAUNCH(g->n)>>>(*g, pt_scalar<pt_math<T>::type>(g->s));                     \
        pt_cuda_launch_check("ew_leaky_bwd " #SFX);                                                     \
    }                                                                                                   \
    static void cu_clamp_##SFX(const pt_ew_args *g) {                                                   \
        k_clamp<T><<<PT_LAUNCH(g->n)>>>(*g, pt_scalar<pt_math<T>::type>(g->s),                          \
                                         pt_scalar<pt_math<T>::type>(g->s2));                           \
        pt_cuda_launch_check("ew_clamp " #SFX);                                                         \
    }                                                                                                   \
    static void cu_clamp_bwd_##SFX(const pt_ew_args *g) {                                               \
        k_clamp_bwd<T><<<PT_LAUNCH(g->n)>>>(*g, pt_scalar<pt_math<T>::type>(g->s),                      \
                                             pt_scalar<pt_math<T>::type>(g->s2));                       \
        pt_cuda_launch_check("ew_clamp_bwd " #SFX);                                                     \
    }                                                                                                   \
    static void cu_sumto_##SFX(const pt_ew_args *g) { pt_sum_to_launch<T>(g, "ew_sum_to " #SFX); }     \
    static void cu_axpy_##SFX(const pt_ew_args *g) {                                                    \
        k_axpy<T><<<PT_LAUNCH(g->n)>>>(*g, pt_scalar<pt_math<T>::type>(g->s));                          \
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
