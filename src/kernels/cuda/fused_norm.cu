/* cuda/fused_norm.cu — CUDA kernels of the fused RMS-norm prologues (signatures and semantics in
 * pt_fused_norm.h; the CPU kernels in src/kernels/cpu/fused_norm.c are the oracle).
 *
 *   mix_rms_norm          block per row: y = x⊙wx + (x0⊙w0)·s0 and its sum of squares in one pass,
 *                         then h = y·rstd·scale; 16-byte loads/stores (float4, double2, 8 × bf16) when
 *                         C is a multiple of the vector and every pointer is 16-byte aligned
 *   mix_bwd               dx, dx0: thread per element (vectorised like the forward); dwx, dw0: column
 *                         partial sums over row chunks (thread per column, coalesced), then one ordered
 *                         sum per column — no atomics, the same bits on every run
 *   rms_norm_bwd (bf16)   block per row, vectorised: the backward of mix_rms_norm's h node (the node is
 *                         rms_norm's own, pt_rms_norm_backward) for bf16; f32/f64 are cuda/fused.cu's
 *   rms_norm_rotary       warp per (b, t, h) row: sum of squares by shuffles, cos/sin from a [T, r/2]
 *                         table computed once per call (in the math type, like the CPU), gain per head
 *   rms_norm_rotary_bwd   warp per row: ×gain, inverse rotation, rms_norm backward (the rotated
 *                         gradient recomputed in a second pass instead of held); dgain: per-row f64
 *                         partials, then a block per head sums them in a fixed order
 *
 * dtypes f32, f64 and bf16 (storage; loaded to fp32, rounded once per output). Sums: f64 for f32/f64
 * (like cuda/fused.cu's rms_norm), f32 for bf16; 1/rms is stored in f32 for bf16. The elementwise
 * products and sums use the _rn intrinsics, so nvcc contracts nothing into FMAs: f32/f64 y and the
 * rotations round like the CPU; only the order of the long sums (and CUDA's cos/sin/pow) differ.
 * NOT YET RUN ON A GPU (written without a device); tests/gpu/test_fused_norm.lua compares every kernel
 * and backward with the CPU (f32, f64) and bf16 with the f32 CPU result.
 */
#include <math.h>

#include "pt_cuda_common.cuh"

extern "C" {
#include "../pt_dispatch.h"
#include "../pt_fused_norm.h"
#include "pt_cuda_internal.h"
}

#define PT_FN_THREADS 256
#define PT_FN_MAX_CHUNKS 128 /* row chunks of the weight-gradient sums */

/* accumulation type (sums, the backward's dot products) and the type of the saved 1/rms */
template <typename T> struct pt_fn_t;
template <> struct pt_fn_t<float> { typedef double acc; typedef float stat; };
template <> struct pt_fn_t<double> { typedef double acc; typedef double stat; };
template <> struct pt_fn_t<pt_bf16> { typedef float acc; typedef float stat; };

/* products and sums rounded on their own (no FMA contraction) */
__device__ __forceinline__ float pt_fn_mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double pt_fn_mul(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float pt_fn_add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double pt_fn_add(double a, double b) { return __dadd_rn(a, b); }

/* v rounded to the storage type T and back (what a load of the stored value gives) */
template <typename T> __device__ __forceinline__ typename pt_math<T>::type pt_fn_round(typename pt_math<T>::type v) {
    return v;
}
template <> __device__ __forceinline__ float pt_fn_round<pt_bf16>(float v) {
    return pt_bf16_bits_to_f32(pt_f32_to_bf16_bits(v));
}

/* ---------------------------------------------------------------- vector loads and stores
 * VEC = 1: one element; VEC = 16 / sizeof(T): one 16-byte access (p + j must be 16-byte aligned). */
template <typename T> struct __align__(16) pt_fn_pack { T v[16 / sizeof(T)]; };
template <typename T> constexpr int pt_fn_vec() { return (int)(16 / sizeof(T)); }

template <typename T, int VEC>
__device__ __forceinline__ void pt_fn_load(const T *p, int64_t j, typename pt_math<T>::type *out) {
    if (VEC == 1) {
        out[0] = pt_ld(p, j);
    } else {
        const pt_fn_pack<T> pk = *reinterpret_cast<const pt_fn_pack<T> *>(p + j);
#pragma unroll
        for (int k = 0; k < VEC; k++) out[k] = pt_ld(pk.v, k);
    }
}

template <typename T, int VEC>
__device__ __forceinline__ void pt_fn_store(T *p, int64_t j, const typename pt_math<T>::type *in) {
    if (VEC == 1) {
        pt_st(p, j, in[0]);
    } else {
        pt_fn_pack<T> pk;
#pragma unroll
        for (int k = 0; k < VEC; k++) pt_st(pk.v, k, in[k]);
        *reinterpret_cast<pt_fn_pack<T> *>(p + j) = pk;
    }
}

static bool pt_fn_aligned(const void *p) { return p == NULL || ((uintptr_t)p & 15u) == 0; }

/* ---------------------------------------------------------------- reductions */
template <typename A> __device__ __forceinline__ A pt_fn_warp_sum(A v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result */
template <typename A> __device__ A pt_fn_block_sum(A v) {
    __shared__ A sh[32];
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = (int)(blockDim.x >> 5);
    v = pt_fn_warp_sum(v);
    __syncthreads(); /* sh may still be read by a previous call */
    if (lane == 0) sh[w] = v;
    __syncthreads();
    if (w == 0) {
        A r = lane < nw ? sh[lane] : (A)0;
        r = pt_fn_warp_sum(r);
        if (lane == 0) sh[0] = r;
    }
    __syncthreads();
    return sh[0];
}

/* threads per row-block: enough for one vector per thread, a multiple of 32, at most 1024 */
static unsigned pt_fn_row_threads(int64_t c, int vec) {
    int64_t t = (c / vec + 31) / 32 * 32;
    if (t < 32) t = 32;
    if (t > 1024) t = 1024;
    return (unsigned)t;
}

static pt_status pt_fn_done(const char *what) {
    pt_cuda_launch_check(what);
    return pt_cuda_check_pending();
}

/* ---------------------------------------------------------------- mix + rms_norm */
template <typename T, int VEC>
__global__ void k_mix_rms_norm(pt_mixnorm_args a) {
    typedef typename pt_math<T>::type M;
    typedef typename pt_fn_t<T>::acc A;
    typedef typename pt_fn_t<T>::stat S;
    const int64_t c = a.c, row = blockIdx.x;
    const T *x = (const T *)a.x + row * c, *x0 = (const T *)a.x0 + row * c;
    const T *wx = (const T *)a.wx, *w0 = (const T *)a.w0;
    T *y = (T *)a.y + row * c, *h = (T *)a.h + row * c;
    const M s0 = (M)a.x0_scale, scale = (M)a.scale;
    const bool scaled0 = a.x0_scale != 1.0, apply = a.scale != 1.0;
    A ss = 0;
    for (int64_t j = (int64_t)threadIdx.x * VEC; j < c; j += (int64_t)blockDim.x * VEC) {
        M xv[VEC], x0v[VEC], wxv[VEC], w0v[VEC], yv[VEC];
        pt_fn_load<T, VEC>(x, j, xv);
        pt_fn_load<T, VEC>(x0, j, x0v);
        pt_fn_load<T, VEC>(w0, j, w0v);
        if (wx) pt_fn_load<T, VEC>(wx, j, wxv);
#pragma unroll
        for (int k = 0; k < VEC; k++) {
            M u = pt_fn_mul(x0v[k], w0v[k]);
            if (scaled0) u = pt_fn_mul(u, s0);
            yv[k] = pt_fn_add(wx ? pt_fn_mul(xv[k], wxv[k]) : xv[k], u);
        }
        pt_fn_store<T, VEC>(y, j, yv);
#pragma unroll
        for (int k = 0; k < VEC; k++) {
            const A v = (A)pt_fn_round<T>(yv[k]); /* h normalises the stored y */
            ss += v * v;
        }
    }
    ss = pt_fn_block_sum(ss);
    const S r = (S)(1.0 / sqrt((double)ss / (double)c + a.eps));
    if (threadIdx.x == 0) ((S *)a.rstd)[row] = r;
    const M rm = (M)r;
    for (int64_t j = (int64_t)threadIdx.x * VEC; j < c; j += (int64_t)blockDim.x * VEC) {
        M yv[VEC], hv[VEC];
        pt_fn_load<T, VEC>(y, j, yv); /* this thread's own stores above */
#pragma unroll
        for (int k = 0; k < VEC; k++) {
            const M v = pt_fn_mul(yv[k], rm);
            hv[k] = apply ? pt_fn_mul(v, scale) : v;
        }
        pt_fn_store<T, VEC>(h, j, hv);
    }
}

/* VEC-wide 16-byte accesses apply: C a multiple of the vector, every pointer 16-byte aligned */
template <typename T>
static bool pt_fn_use_vec(int64_t c, const void *p0, const void *p1, const void *p2, const void *p3, const void *p4,
                          const void *p5) {
    return c % pt_fn_vec<T>() == 0 && pt_fn_aligned(p0) && pt_fn_aligned(p1) && pt_fn_aligned(p2) &&
           pt_fn_aligned(p3) && pt_fn_aligned(p4) && pt_fn_aligned(p5);
}

template <typename T>
static pt_status cu_mix_rms_norm(const pt_mixnorm_args *a) {
    if (a->n == 0 || a->c == 0) return PT_OK;
    constexpr int V = pt_fn_vec<T>();
    if (pt_fn_use_vec<T>(a->c, a->x, a->x0, a->wx, a->w0, a->y, a->h))
        k_mix_rms_norm<T, V><<<(unsigned)a->n, pt_fn_row_threads(a->c, V), 0, pt_cuda_compute_stream()>>>(*a);
    else
        k_mix_rms_norm<T, 1><<<(unsigned)a->n, pt_fn_row_threads(a->c, 1), 0, pt_cuda_compute_stream()>>>(*a);
    return pt_fn_done("mix_rms_norm");
}

/* dx = g⊙wx (g when wx is NULL), dx0 = fl(g·s0)⊙w0: VEC elements per thread */
template <typename T, int VEC>
__global__ void k_mix_dx(pt_mixnorm_args a) {
    typedef typename pt_math<T>::type M;
    const T *g = (const T *)a.g, *wx = (const T *)a.wx, *w0 = (const T *)a.w0;
    const M s0 = (M)a.x0_scale;
    const bool scaled0 = a.x0_scale != 1.0;
    const int64_t nv = a.n * a.c / VEC;
    PT_GRID_LOOP(e, nv) {
        const int64_t i = e * VEC, j = i % a.c;
        M gv[VEC], wv[VEC], o[VEC];
        pt_fn_load<T, VEC>(g, i, gv);
        if (a.dx) {
            if (wx) pt_fn_load<T, VEC>(wx, j, wv);
#pragma unroll
            for (int k = 0; k < VEC; k++) o[k] = wx ? pt_fn_mul(gv[k], wv[k]) : gv[k];
            pt_fn_store<T, VEC>((T *)a.dx, i, o);
        }
        if (a.dx0) {
            pt_fn_load<T, VEC>(w0, j, wv);
#pragma unroll
            for (int k = 0; k < VEC; k++) o[k] = pt_fn_mul(scaled0 ? pt_fn_mul(gv[k], s0) : gv[k], wv[k]);
            pt_fn_store<T, VEC>((T *)a.dx0, i, o);
        }
    }
}

/* partial column sums: block (column tile, row chunk), thread per column; rows of the chunk in order.
 * part[ch][j] (wx) and part[nch + ch][j] (w0). */
template <typename T>
__global__ void k_mix_dw_part(pt_mixnorm_args a, typename pt_fn_t<T>::acc *part, int64_t rows_per_chunk) {
    typedef typename pt_math<T>::type M;
    typedef typename pt_fn_t<T>::acc A;
    const int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, ch = blockIdx.y, nch = gridDim.y;
    if (j >= a.c) return;
    const int64_t i0 = ch * rows_per_chunk, i1 = i0 + rows_per_chunk < a.n ? i0 + rows_per_chunk : a.n;
    const T *g = (const T *)a.g, *x = (const T *)a.x, *x0 = (const T *)a.x0;
    const M s0 = (M)a.x0_scale;
    const bool scaled0 = a.x0_scale != 1.0;
    A sx = 0, s0acc = 0;
    for (int64_t i = i0; i < i1; i++) {
        const M gg = pt_ld(g, i * a.c + j);
        if (a.dwx) sx += (A)pt_fn_mul(gg, pt_ld(x, i * a.c + j));
        if (a.dw0) s0acc += (A)pt_fn_mul(scaled0 ? pt_fn_mul(gg, s0) : gg, pt_ld(x0, i * a.c + j));
    }
    part[ch * a.c + j] = sx;
    part[(nch + ch) * a.c + j] = s0acc;
}

template <typename T>
__global__ void k_mix_dw_sum(pt_mixnorm_args a, const typename pt_fn_t<T>::acc *part, int64_t nch) {
    typedef typename pt_fn_t<T>::acc A;
    PT_GRID_LOOP(j, a.c) {
        A sx = 0, s0 = 0;
        for (int64_t ch = 0; ch < nch; ch++) {
            sx += part[ch * a.c + j];
            s0 += part[(nch + ch) * a.c + j];
        }
        if (a.dwx) pt_st((T *)a.dwx, j, (typename pt_math<T>::type)sx);
        if (a.dw0) pt_st((T *)a.dw0, j, (typename pt_math<T>::type)s0);
    }
}

template <typename T>
static pt_status cu_mix_bwd(const pt_mixnorm_args *a) {
    typedef typename pt_fn_t<T>::acc A;
    if (a->n == 0 || a->c == 0) return PT_OK;
    constexpr int V = pt_fn_vec<T>();
    if (a->dx || a->dx0) {
        if (pt_fn_use_vec<T>(a->c, a->g, a->wx, a->w0, a->dx, a->dx0, NULL))
            k_mix_dx<T, V><<<pt_cuda_blocks(a->n * a->c / V, PT_FN_THREADS), PT_FN_THREADS, 0,
                             pt_cuda_compute_stream()>>>(*a);
        else
            k_mix_dx<T, 1><<<pt_cuda_blocks(a->n * a->c, PT_FN_THREADS), PT_FN_THREADS, 0,
                             pt_cuda_compute_stream()>>>(*a);
        pt_cuda_launch_check("mix_bwd dx");
    }
    if (!a->dwx && !a->dw0) return pt_fn_done("mix_bwd");
    const int64_t nch = a->n < PT_FN_MAX_CHUNKS ? a->n : PT_FN_MAX_CHUNKS;
    const int64_t rpc = (a->n + nch - 1) / nch;
    const size_t bytes = 2 * sizeof(A) * (size_t)nch * (size_t)a->c;
    int dev = 0;
    PT_CUDA_CHECK(cudaGetDevice(&dev));
    void *ws = NULL;
    PT_TRY(pt_cuda_alloc(&ws, bytes, dev));
    dim3 grid((unsigned)((a->c + PT_FN_THREADS - 1) / PT_FN_THREADS), (unsigned)nch);
    k_mix_dw_part<T><<<grid, PT_FN_THREADS, 0, pt_cuda_compute_stream()>>>(*a, (A *)ws, rpc);
    k_mix_dw_sum<T><<<pt_cuda_blocks(a->c, PT_FN_THREADS), PT_FN_THREADS, 0, pt_cuda_compute_stream()>>>(
        *a, (const A *)ws, nch);
    pt_cuda_free(ws, bytes, dev); /* the allocator reuses it in compute-stream order */
    return pt_fn_done("mix_bwd");
}

/* rms_norm's backward over the saved y: dx = scale·r·(g − y·r²·mean(g·y)) */
template <typename T, int VEC>
__global__ void k_mix_rms_norm_bwd(pt_rmsnorm_args a) {
    typedef typename pt_math<T>::type M;
    typedef typename pt_fn_t<T>::acc A;
    typedef typename pt_fn_t<T>::stat S;
    const int64_t c = a.c, row = blockIdx.x;
    const T *x = (const T *)a.x + row * c, *g = (const T *)a.g + row * c;
    T *dx = (T *)a.dx + row * c;
    A dot = 0;
    for (int64_t j = (int64_t)threadIdx.x * VEC; j < c; j += (int64_t)blockDim.x * VEC) {
        M xv[VEC], gv[VEC];
        pt_fn_load<T, VEC>(x, j, xv);
        pt_fn_load<T, VEC>(g, j, gv);
#pragma unroll
        for (int k = 0; k < VEC; k++) dot += (A)gv[k] * (A)xv[k];
    }
    dot = pt_fn_block_sum(dot);
    const A r = (A)((const S *)a.rstd)[row];
    const A m = dot * r * r / (A)c, sr = (A)a.scale * r;
    for (int64_t j = (int64_t)threadIdx.x * VEC; j < c; j += (int64_t)blockDim.x * VEC) {
        M xv[VEC], gv[VEC], o[VEC];
        pt_fn_load<T, VEC>(x, j, xv);
        pt_fn_load<T, VEC>(g, j, gv);
#pragma unroll
        for (int k = 0; k < VEC; k++) o[k] = (M)(sr * ((A)gv[k] - (A)xv[k] * m));
        pt_fn_store<T, VEC>(dx, j, o);
    }
}

template <typename T>
static pt_status cu_mix_rms_norm_bwd(const pt_rmsnorm_args *a) {
    if (a->n == 0 || a->c == 0) return PT_OK;
    constexpr int V = pt_fn_vec<T>();
    if (pt_fn_use_vec<T>(a->c, a->x, a->g, a->dx, NULL, NULL, NULL))
        k_mix_rms_norm_bwd<T, V><<<(unsigned)a->n, pt_fn_row_threads(a->c, V), 0, pt_cuda_compute_stream()>>>(*a);
    else
        k_mix_rms_norm_bwd<T, 1><<<(unsigned)a->n, pt_fn_row_threads(a->c, 1), 0, pt_cuda_compute_stream()>>>(*a);
    return pt_fn_done("rms_norm_bwd");
}

/* ---------------------------------------------------------------- rms_norm + rotary (+ gain) */

/* tab[t][0..half) = cos, tab[t][half..r) = sin of (t + offset)·base^(−2j/r), in the math type M with
 * the CPU's expression order (cpu/fused_norm.c normrot_table) */
template <typename M>
__global__ void k_normrot_table(pt_normrot_args a, M *tab) {
    const int64_t half = a.r / 2;
    PT_GRID_LOOP(e, a.T * half) {
        const int64_t t = e / half, j = e % half;
        const M ex = (M)(2 * j) / (M)a.r;
        const M inv = (M)1 / pt_pow((M)a.base, ex);
        const M ang = pt_fn_mul((M)(t + a.offset), inv);
        tab[t * 2 * half + j] = pt_cos(ang);
        tab[t * 2 * half + half + j] = pt_sin(ang);
    }
}

/* warp per row (b, t, h) */
template <typename T>
__global__ void k_rms_norm_rotary(pt_normrot_args a, const typename pt_math<T>::type *tab) {
    typedef typename pt_math<T>::type M;
    typedef typename pt_fn_t<T>::acc A;
    typedef typename pt_fn_t<T>::stat S;
    const int64_t row = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x & 31;
    if (row >= a.B * a.T * a.H) return; /* whole warps leave together */
    const int64_t D = a.D, half = a.r / 2, t = (row / a.H) % a.T;
    const T *x = (const T *)a.x + row * D;
    T *y = (T *)a.y + row * D;
    const M *cs = tab + t * 2 * half, *sn = cs + half;
    A ss = 0;
    for (int64_t d = lane; d < D; d += 32) {
        const A v = (A)pt_ld(x, d);
        ss += v * v;
    }
    ss = pt_fn_warp_sum(ss);
    const S r = (S)(1.0 / sqrt((double)ss / (double)D + a.eps));
    if (lane == 0) ((S *)a.rstd)[row] = r;
    const M rm = (M)r, gh = a.gain ? pt_ld((const T *)a.gain, row % a.H) : (M)1;
    const bool gained = a.gain != NULL;
    for (int64_t j = lane; j < half; j += 32) {
        const M x1 = pt_fn_mul(pt_ld(x, j), rm), x2 = pt_fn_mul(pt_ld(x, half + j), rm), c = cs[j], s = sn[j];
        M o1 = pt_fn_add(pt_fn_mul(x1, c), pt_fn_mul(x2, s));
        M o2 = pt_fn_add(pt_fn_mul(-x1, s), pt_fn_mul(x2, c));
        if (gained) {
            o1 = pt_fn_mul(o1, gh);
            o2 = pt_fn_mul(o2, gh);
        }
        pt_st(y, j, o1);
        pt_st(y, half + j, o2);
    }
    for (int64_t d = 2 * half + lane; d < D; d += 32) {
        const M o = pt_fn_mul(pt_ld(x, d), rm);
        pt_st(y, d, gained ? pt_fn_mul(o, gh) : o);
    }
}

/* warp per row: dgain partial (part[row] = Σ_d g·rot), then dx */
template <typename T>
__global__ void k_rms_norm_rotary_bwd(pt_normrot_args a, const typename pt_math<T>::type *tab,
                                      typename pt_fn_t<T>::acc *part) {
    typedef typename pt_math<T>::type M;
    typedef typename pt_fn_t<T>::acc A;
    typedef typename pt_fn_t<T>::stat S;
    const int64_t row = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x & 31;
    if (row >= a.B * a.T * a.H) return;
    const int64_t D = a.D, half = a.r / 2, t = (row / a.H) % a.T;
    const T *x = (const T *)a.x + row * D, *g = (const T *)a.g + row * D;
    const M *cs = tab + t * 2 * half, *sn = cs + half;
    const M rm = (M)((const S *)a.rstd)[row];
    const bool gained = a.gain != NULL;
    const M gh = gained ? pt_ld((const T *)a.gain, row % a.H) : (M)1;
    if (part) {
        A p = 0;
        for (int64_t j = lane; j < half; j += 32) {
            const M x1 = pt_fn_mul(pt_ld(x, j), rm), x2 = pt_fn_mul(pt_ld(x, half + j), rm), c = cs[j], s = sn[j];
            const M o1 = pt_fn_add(pt_fn_mul(x1, c), pt_fn_mul(x2, s));
            const M o2 = pt_fn_add(pt_fn_mul(-x1, s), pt_fn_mul(x2, c));
            p += (A)pt_fn_mul(pt_ld(g, j), o1) + (A)pt_fn_mul(pt_ld(g, half + j), o2);
        }
        for (int64_t d = 2 * half + lane; d < D; d += 32) p += (A)pt_fn_mul(pt_ld(g, d), pt_fn_mul(pt_ld(x, d), rm));
        p = pt_fn_warp_sum(p);
        if (lane == 0) part[row] = p;
    }
    if (!a.dx) return;
    /* gn = rotate⁻¹(g·gain); pass 1: dot = Σ gn·x; pass 2 recomputes gn and writes dx */
    A dot = 0;
    for (int pass = 0; pass < 2; pass++) {
        const A rr = (A)rm, m = dot * rr * rr / (A)D;
        T *dx = (T *)a.dx + row * D;
        for (int64_t j = lane; j < half; j += 32) {
            M g1 = pt_ld(g, j), g2 = pt_ld(g, half + j);
            if (gained) {
                g1 = pt_fn_mul(g1, gh);
                g2 = pt_fn_mul(g2, gh);
            }
            const M c = cs[j], s = -sn[j];
            const M n1 = pt_fn_add(pt_fn_mul(g1, c), pt_fn_mul(g2, s));
            const M n2 = pt_fn_add(pt_fn_mul(-g1, s), pt_fn_mul(g2, c));
            const A x1 = (A)pt_ld(x, j), x2 = (A)pt_ld(x, half + j);
            if (pass == 0) {
                dot += (A)n1 * x1 + (A)n2 * x2;
            } else {
                pt_st(dx, j, (M)(rr * ((A)n1 - x1 * m)));
                pt_st(dx, half + j, (M)(rr * ((A)n2 - x2 * m)));
            }
        }
        for (int64_t d = 2 * half + lane; d < D; d += 32) {
            const M gn = gained ? pt_fn_mul(pt_ld(g, d), gh) : pt_ld(g, d);
            const A xd = (A)pt_ld(x, d);
            if (pass == 0) dot += (A)gn * xd;
            else pt_st(dx, d, (M)(rr * ((A)gn - xd * m)));
        }
        if (pass == 0) dot = pt_fn_warp_sum(dot);
    }
}

/* dgain[h] = Σ over (b, t) of part[(b·T + t)·H + h]: a block per head, fixed order */
template <typename T>
__global__ void k_normrot_dgain(pt_normrot_args a, const typename pt_fn_t<T>::acc *part) {
    typedef typename pt_fn_t<T>::acc A;
    const int64_t h = blockIdx.x, nbt = a.B * a.T;
    A s = 0;
    for (int64_t bt = threadIdx.x; bt < nbt; bt += blockDim.x) s += part[bt * a.H + h];
    s = pt_fn_block_sum(s);
    if (threadIdx.x == 0) pt_st((T *)a.dgain, h, (typename pt_math<T>::type)s);
}

/* the cos/sin table (and, for the backward with dgain, the per-row partials) in one workspace */
template <typename T>
static pt_status cu_normrot(const pt_normrot_args *a, int bwd) {
    typedef typename pt_math<T>::type M;
    typedef typename pt_fn_t<T>::acc A;
    const int64_t rows = a->B * a->T * a->H, half = a->r / 2;
    if (rows == 0 || a->D == 0 || (bwd && !a->dx && !a->dgain)) return PT_OK;
    const size_t tab_elems = (size_t)(a->T * 2 * half > 0 ? a->T * 2 * half : 1);
    const size_t tab_bytes = (tab_elems * sizeof(M) + 15) / 16 * 16;
    const size_t bytes = tab_bytes + (bwd && a->dgain ? sizeof(A) * (size_t)rows : 0);
    int dev = 0;
    PT_CUDA_CHECK(cudaGetDevice(&dev));
    void *ws = NULL;
    PT_TRY(pt_cuda_alloc(&ws, bytes, dev));
    M *tab = (M *)ws;
    A *part = bwd && a->dgain ? (A *)((char *)ws + tab_bytes) : NULL;
    cudaStream_t s = pt_cuda_compute_stream();
    if (half > 0) k_normrot_table<M><<<pt_cuda_blocks(a->T * half, PT_FN_THREADS), PT_FN_THREADS, 0, s>>>(*a, tab);
    const unsigned blocks = (unsigned)((rows * 32 + PT_FN_THREADS - 1) / PT_FN_THREADS);
    if (!bwd) {
        k_rms_norm_rotary<T><<<blocks, PT_FN_THREADS, 0, s>>>(*a, tab);
    } else {
        k_rms_norm_rotary_bwd<T><<<blocks, PT_FN_THREADS, 0, s>>>(*a, tab, part);
        if (part) k_normrot_dgain<T><<<(unsigned)a->H, PT_FN_THREADS, 0, s>>>(*a, part);
    }
    pt_cuda_free(ws, bytes, dev); /* reused in compute-stream order */
    return pt_fn_done(bwd ? "rms_norm_rotary_bwd" : "rms_norm_rotary");
}

template <typename T> static pt_status cu_rms_norm_rotary(const pt_normrot_args *a) { return cu_normrot<T>(a, 0); }
template <typename T> static pt_status cu_rms_norm_rotary_bwd(const pt_normrot_args *a) { return cu_normrot<T>(a, 1); }

/* ---------------------------------------------------------------- registration */
#define PT_FN_REG(SFX, T, DT)                                                                                   \
    static pt_status cu_mix_rms_norm_##SFX(const pt_mixnorm_args *a) { return cu_mix_rms_norm<T>(a); }          \
    static pt_status cu_mix_bwd_##SFX(const pt_mixnorm_args *a) { return cu_mix_bwd<T>(a); }                    \
    static pt_status cu_rms_norm_rotary_##SFX(const pt_normrot_args *a) { return cu_rms_norm_rotary<T>(a); }    \
    static pt_status cu_rms_norm_rotary_bwd_##SFX(const pt_normrot_args *a) {                                   \
        return cu_rms_norm_rotary_bwd<T>(a);                                                                   \
    }                                                                                                           \
    PT_REGISTER_KERNEL(mix_rms_norm, PT_DEV_CUDA, DT, cu_mix_rms_norm_##SFX)                                    \
    PT_REGISTER_KERNEL(mix_bwd, PT_DEV_CUDA, DT, cu_mix_bwd_##SFX)                                              \
    PT_REGISTER_KERNEL(rms_norm_rotary, PT_DEV_CUDA, DT, cu_rms_norm_rotary_##SFX)                              \
    PT_REGISTER_KERNEL(rms_norm_rotary_bwd, PT_DEV_CUDA, DT, cu_rms_norm_rotary_bwd_##SFX)

PT_FN_REG(f32, float, PT_F32)
PT_FN_REG(f64, double, PT_F64)
PT_FN_REG(bf16, pt_bf16, PT_BF16)
/* rms_norm_bwd for bf16 (cuda/fused.cu registers f32 and f64) */
static pt_status cu_rms_norm_bwd_bf16(const pt_rmsnorm_args *a) { return cu_mix_rms_norm_bwd<pt_bf16>(a); }
PT_REGISTER_KERNEL(rms_norm_bwd, PT_DEV_CUDA, PT_BF16, cu_rms_norm_bwd_bf16)
