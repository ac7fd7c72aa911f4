/* cuda/optim.cu — CUDA optimizer kernels (signatures and exact formulas in pt_optim.h; the CPU kernels in
 * src/kernels/cpu/optim.c are the oracle: the same float expressions in the same order, so AdamW, SGD,
 * Muon momentum/apply, EMA and SWA are meant to be bit-identical to the CPU).
 *
 *   optim_adamw, optim_sgd, optim_momentum, optim_apply, optim_scale, optim_ema   thread per element
 *   optim_*_multi      one launch per list part (<= PT_MT_MAX tensors): the tensor table rides in the
 *                      kernel parameter (__grid_constant__), a block per PT_MT_CHUNK elements of one
 *                      tensor (found by a binary search over the part's block offsets), float4 loads
 *                      and stores when every operand of the tensor is 16-byte aligned; step scalars
 *                      read from device memory (graph replays see new values); per-element code shared
 *                      with the per-tensor kernels (adamw_elem, ...)
 *   optim_sumsq(_multi) block partials over a fixed split of each tensor (<= PT_SUMSQ_PARTS), then a
 *                      block per tensor adds its partials in a fixed tree: Σx² per tensor, the same
 *                      bits for the host-result and the device-result clip; optim_norm adds the
 *                      per-tensor sums in order on one thread and takes the square root
 *   optim_scale_multi  forms coef = max/(norm + 1e-6) from the device norm, skips as the host would
 *   optim_swa_add/avg  f32 and bf16 (rounded per add, as the PROTEUS record)
 *   optim_ns           Newton–Schulz over a bank: small kernels over all `slots` matrices at once
 *                      (transpose-copy, bf16 rounding, row and Frobenius norms in f64, the b·A + c·A²
 *                      and a·X + BX combinations) around cublasSgemmStridedBatched (f32 accumulate,
 *                      bf16-rounded operands in bf16 mode as the CPU); no host synchronisation
 * NOT YET RUN ON A GPU; tests/gpu/test_optim.lua compares each with the CPU, and tests/emu/optim_emu.cpp
 * runs them on the CPU emulator against cpu/optim.c (ctest optim_emu, bit for bit).
 */
#include <cublas_v2.h>
#include <string.h> /* memset */

#include "pt_cuda_common.cuh"

extern "C" {
#include "../pt_dispatch.h"
#include "../pt_optim.h"
#include "pt_cuda.h" /* pt_cuda_alloc, pt_cuda_free */
#include "pt_cuda_internal.h"
}

cublasHandle_t pt_cublas_handle(void); /* matmul.cu */

#define PT_OP_THREADS 256
#define GRID_LOOP(i, n) for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

static unsigned pt_op_blocks(int64_t n) {
    int64_t b = (n + PT_OP_THREADS - 1) / PT_OP_THREADS;
    if (b < 1) b = 1;
    return (unsigned)(b > 65535 * 16 ? 65535 * 16 : b);
}
#define PT_OP_LAUNCH(n) pt_op_blocks(n), PT_OP_THREADS, 0, pt_cuda_compute_stream()

__device__ __forceinline__ float pt_bf16r(float f) {
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return f;
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    return __uint_as_float(u);
}

/* partial sums of one tensor in the sum of squares (fixed by its size alone) */
static int64_t pt_sumsq_parts(int64_t n) {
    int64_t k = (n + 2047) / 2048;
    return k > PT_SUMSQ_PARTS ? PT_SUMSQ_PARTS : k;
}

/* ---------------------------------------------------------------- per-element updates (shared) */
/* AdamW constants from a PT_ADAMW_* row: the CPU's (float) conversions of the same doubles */
struct adamw_c {
    float decay, b1, b2, omb1, omb2, neg_step, bc2s, eps;
    int maximize;
};
__device__ __forceinline__ adamw_c adamw_consts(const double *r) {
    adamw_c c;
    c.decay = (float)r[PT_ADAMW_DECAY];
    c.b1 = (float)r[PT_ADAMW_BETA1];
    c.b2 = (float)r[PT_ADAMW_BETA2];
    c.omb1 = (float)(1.0 - r[PT_ADAMW_BETA1]);
    c.omb2 = (float)(1.0 - r[PT_ADAMW_BETA2]);
    c.neg_step = (float)(-r[PT_ADAMW_STEP_SIZE]);
    c.bc2s = (float)r[PT_ADAMW_BC2_SQRT];
    c.eps = (float)r[PT_ADAMW_EPS];
    c.maximize = r[PT_ADAMW_MAXIMIZE] != 0;
    return c;
}
__device__ __forceinline__ void adamw_elem(const adamw_c &c, float &p, float g, float &m, float &v) {
    float gi = c.maximize ? -g : g;
    float pi = __fmul_rn(p, c.decay);
    float mi = __fadd_rn(__fmul_rn(m, c.b1), __fmul_rn(c.omb1, gi));
    float vi = __fadd_rn(__fmul_rn(v, c.b2), __fmul_rn(__fmul_rn(c.omb2, gi), gi));
    float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), c.bc2s), c.eps);
    m = mi;
    v = vi;
    p = __fadd_rn(pi, __fdiv_rn(__fmul_rn(c.neg_step, mi), denom));
}

__device__ __forceinline__ void momentum_elem(float mu, int nesterov, float g, float &buf, float &u) {
    float bi = __fadd_rn(__fmul_rn(buf, mu), g);
    buf = bi;
    u = nesterov ? __fadd_rn(g, __fmul_rn(mu, bi)) : bi;
}

/* Muon apply constants (as cpu/optim.c's apply_span) */
struct apply_c {
    float decay, f, alpha;
    int use_wd, mode;
};
__device__ __forceinline__ apply_c apply_consts(double lr, double wd, double factor, int mode) {
    apply_c c;
    c.use_wd = wd != 0;
    c.mode = mode;
    c.decay = (float)(1.0 - lr * wd);
    c.f = (float)factor;
    c.alpha = (float)(mode == PT_MUON_ROUND_UNIT ? -lr * factor : -lr);
    return c;
}
__device__ __forceinline__ void apply_elem(const apply_c &c, float &p, float u) {
    float x = u;
    if (c.mode == PT_MUON_ROUND_UNIT) x = pt_bf16r(x);
    else if (c.mode == PT_MUON_ROUND_SCALED) x = pt_bf16r(__fmul_rn(x, c.f));
    else x = __fmul_rn(x, c.f);
    float pi = c.use_wd ? __fmul_rn(p, c.decay) : p;
    p = __fadd_rn(pi, __fmul_rn(c.alpha, x));
}

__device__ __forceinline__ void ema_elem(float k, float &e, float w) { e = __fadd_rn(e, __fmul_rn(k, __fsub_rn(w, e))); }

/* ---------------------------------------------------------------- per-tensor kernels */
__global__ void k_adamw(pt_adamw_args a) {
    double r[PT_ADAMW_NSCAL];
    r[PT_ADAMW_DECAY] = a.decay;
    r[PT_ADAMW_BETA1] = a.beta1;
    r[PT_ADAMW_BETA2] = a.beta2;
    r[PT_ADAMW_STEP_SIZE] = a.step_size;
    r[PT_ADAMW_BC2_SQRT] = a.bc2_sqrt;
    r[PT_ADAMW_EPS] = a.eps;
    r[PT_ADAMW_MAXIMIZE] = a.maximize != 0;
    const adamw_c c = adamw_consts(r);
    float *p = (float *)a.p, *m = (float *)a.m, *v = (float *)a.v;
    const float *g = (const float *)a.g;
    GRID_LOOP(i, a.n) adamw_elem(c, p[i], g[i], m[i], v[i]);
}
static void cu_adamw(const pt_adamw_args *a) {
    if (a->n == 0) return;
    k_adamw<<<PT_OP_LAUNCH(a->n)>>>(*a);
    pt_cuda_launch_check("optim_adamw");
}

__global__ void k_sgd(pt_sgd_args a) {
    float *p = (float *)a.p, *buf = (float *)a.buf;
    const float *g = (const float *)a.g;
    const float lr = (float)(-a.lr), mu = (float)a.momentum, omd = (float)(1.0 - a.dampening), wd = (float)a.wd;
    GRID_LOOP(i, a.n) {
        float gi = a.maximize ? -g[i] : g[i];
        if (a.wd != 0) gi = __fadd_rn(gi, __fmul_rn(wd, p[i]));
        if (buf) {
            float bi = a.first ? gi : __fadd_rn(__fmul_rn(buf[i], mu), __fmul_rn(omd, gi));
            buf[i] = bi;
            gi = a.nesterov ? __fadd_rn(gi, __fmul_rn(mu, bi)) : bi;
        }
        p[i] = __fadd_rn(p[i], __fmul_rn(lr, gi));
    }
}
static void cu_sgd(const pt_sgd_args *a) {
    if (a->n == 0) return;
    k_sgd<<<PT_OP_LAUNCH(a->n)>>>(*a);
    pt_cuda_launch_check("optim_sgd");
}

__global__ void k_momentum(pt_momentum_args a) {
    float *buf = (float *)a.buf, *u = (float *)a.u;
    const float *g = (const float *)a.g;
    const float mu = (float)a.momentum;
    GRID_LOOP(i, a.n) momentum_elem(mu, a.nesterov, g[i], buf[i], u[i]);
}
static void cu_momentum(const pt_momentum_args *a) {
    if (a->n == 0) return;
    k_momentum<<<PT_OP_LAUNCH(a->n)>>>(*a);
    pt_cuda_launch_check("optim_momentum");
}

__global__ void k_apply(pt_apply_args a) {
    float *p = (float *)a.p;
    const float *u = (const float *)a.u;
    const apply_c c = apply_consts(a.lr, a.wd, a.factor, a.round);
    GRID_LOOP(i, a.n) apply_elem(c, p[i], u[i]);
}
static void cu_apply(const pt_apply_args *a) {
    if (a->n == 0) return;
    k_apply<<<PT_OP_LAUNCH(a->n)>>>(*a);
    pt_cuda_launch_check("optim_apply");
}

template <typename T>
__global__ void k_scale(pt_scale_args a) {
    T *x = (T *)a.x;
    const T s = (T)a.s;
    GRID_LOOP(i, a.n) x[i] = x[i] * s;
}
template <typename T>
static void cu_scale(const pt_scale_args *a) {
    if (a->n == 0) return;
    k_scale<T><<<PT_OP_LAUNCH(a->n)>>>(*a);
    pt_cuda_launch_check("optim_scale");
}

__global__ void k_ema(pt_ema_args a) {
    float *e = (float *)a.ema;
    const float *w = (const float *)a.w;
    const float k = (float)(1.0 - a.decay);
    GRID_LOOP(i, a.n) ema_elem(k, e[i], w[i]);
}
static void cu_ema(const pt_ema_args *a) {
    if (a->n == 0) return;
    k_ema<<<PT_OP_LAUNCH(a->n)>>>(*a);
    pt_cuda_launch_check("optim_ema");
}

__global__ void k_swa_add_f32(pt_swa_args a) {
    GRID_LOOP(i, a.n)((float *)a.sum)[i] = __fadd_rn(((float *)a.sum)[i], ((const float *)a.w)[i]);
}
__global__ void k_swa_add_bf16(pt_swa_args a) {
    uint16_t *s = (uint16_t *)a.sum;
    const uint16_t *w = (const uint16_t *)a.w;
    GRID_LOOP(i, a.n) s[i] = pt_f32_to_bf16_bits(pt_bf16_bits_to_f32(s[i]) + pt_bf16_bits_to_f32(w[i]));
}
__global__ void k_swa_avg_f32(pt_swa_args a) {
    const float c = (float)a.count;
    GRID_LOOP(i, a.n)((float *)a.out)[i] = __fdiv_rn(((const float *)a.sum)[i], c);
}
__global__ void k_swa_avg_bf16(pt_swa_args a) {
    const float c = (float)a.count;
    GRID_LOOP(i, a.n)
    ((uint16_t *)a.out)[i] = pt_f32_to_bf16_bits(__fdiv_rn(pt_bf16_bits_to_f32(((const uint16_t *)a.sum)[i]), c));
}
#define PT_SWA_LAUNCH(NAME, K)                                     \
    static void NAME(const pt_swa_args *a) {                       \
        if (a->n == 0) return;                                     \
        K<<<PT_OP_LAUNCH(a->n)>>>(*a);                             \
        pt_cuda_launch_check(#NAME);                               \
    }
PT_SWA_LAUNCH(cu_swa_add_f32, k_swa_add_f32)
PT_SWA_LAUNCH(cu_swa_add_bf16, k_swa_add_bf16)
PT_SWA_LAUNCH(cu_swa_avg_f32, k_swa_avg_f32)
PT_SWA_LAUNCH(cu_swa_avg_bf16, k_swa_avg_bf16)

/* ---------------------------------------------------------------- multi-tensor launches */
#define PT_MT_THREADS 256
#define PT_MT_CHUNK 4096 /* elements per block: 16 per thread, 4 float4s when aligned */

/* one launch's table: the fronts' args, the first block of each tensor, and which tensors may use
 * float4 (about 2.2 KB, under the 4 KB kernel-parameter limit of older toolkits) */
struct pt_mt_launch {
    pt_mt_args a;
    int32_t block0[PT_MT_MAX + 1];
    uint64_t aligned;
};

/* fills L from a; blocks of tensor j: ceil(numel / chunk), or, for the sum of squares, its number of
 * partial sums. Returns the total block count (0: nothing to launch). */
static int64_t mt_table(pt_mt_launch *L, const pt_mt_args *a, int nops, int sumsq) {
    L->a = *a;
    L->aligned = 0;
    int64_t blocks = 0;
    for (int j = 0; j < a->n; j++) {
        L->block0[j] = (int32_t)blocks;
        int64_t n = a->numel[j];
        blocks += sumsq ? pt_sumsq_parts(n) : (n + PT_MT_CHUNK - 1) / PT_MT_CHUNK;
        int al = 1;
        for (int o = 0; o < nops; o++) al &= ((uintptr_t)a->t[o][j] & 15u) == 0;
        if (al) L->aligned |= 1ull << j;
    }
    L->block0[a->n] = (int32_t)blocks;
    return blocks;
}

/* the tensor of this block: the last j with block0[j] <= blockIdx.x (empty tensors own no block) */
__device__ __forceinline__ int mt_tensor(const pt_mt_launch &L) {
    int lo = 0, hi = L.a.n - 1;
    const int32_t b = (int32_t)blockIdx.x;
    while (lo < hi) {
        int mid = (lo + hi + 1) >> 1;
        if (L.block0[mid] <= b) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

struct mt_span {
    int j;
    int64_t lo, hi; /* this block's elements of tensor j */
    int vec;        /* float4 path allowed */
};
__device__ __forceinline__ mt_span mt_locate(const pt_mt_launch &L) {
    mt_span s;
    s.j = mt_tensor(L);
    s.lo = (int64_t)((int32_t)blockIdx.x - L.block0[s.j]) * PT_MT_CHUNK;
    int64_t end = s.lo + PT_MT_CHUNK;
    s.hi = end < L.a.numel[s.j] ? end : L.a.numel[s.j];
    s.vec = (int)((L.aligned >> s.j) & 1u);
    return s;
}

/* f(x[i], u[i]) for this thread's i < n of a block's span: x updated in place from u (read only), a
 * float4 at a time when vec (both 16-byte aligned), then the tail */
template <typename F>
__device__ __forceinline__ void mt_update(float *x, const float *u, int64_t n, int vec, F f) {
    int64_t i0 = 0;
    if (vec) {
        const int64_t nv = n >> 2;
        for (int64_t k = threadIdx.x; k < nv; k += blockDim.x) {
            float4 X = ((float4 *)x)[k];
            const float4 U = ((const float4 *)u)[k];
            f(X.x, U.x);
            f(X.y, U.y);
            f(X.z, U.z);
            f(X.w, U.w);
            ((float4 *)x)[k] = X;
        }
        i0 = nv << 2;
    }
    for (int64_t i = i0 + threadIdx.x; i < n; i += blockDim.x) f(x[i], u[i]);
}

__global__ void __launch_bounds__(PT_MT_THREADS) k_adamw_multi(const __grid_constant__ pt_mt_launch L) {
    mt_span s = mt_locate(L);
    const adamw_c c = adamw_consts(L.a.scal + s.j * L.a.scal_stride);
    float *p = (float *)L.a.t[0][s.j] + s.lo, *m = (float *)L.a.t[2][s.j] + s.lo, *v = (float *)L.a.t[3][s.j] + s.lo;
    const float *g = (const float *)L.a.t[1][s.j] + s.lo;
    int64_t n = s.hi - s.lo, i0 = 0;
    if (s.vec) {
        const int64_t nv = n >> 2;
        for (int64_t k = threadIdx.x; k < nv; k += blockDim.x) {
            float4 P = ((float4 *)p)[k], M = ((float4 *)m)[k], V = ((float4 *)v)[k];
            const float4 G = ((const float4 *)g)[k];
            adamw_elem(c, P.x, G.x, M.x, V.x);
            adamw_elem(c, P.y, G.y, M.y, V.y);
            adamw_elem(c, P.z, G.z, M.z, V.z);
            adamw_elem(c, P.w, G.w, M.w, V.w);
            ((float4 *)p)[k] = P;
            ((float4 *)m)[k] = M;
            ((float4 *)v)[k] = V;
        }
        i0 = nv << 2;
    }
    for (int64_t i = i0 + threadIdx.x; i < n; i += blockDim.x) adamw_elem(c, p[i], g[i], m[i], v[i]);
}

__global__ void __launch_bounds__(PT_MT_THREADS) k_momentum_multi(const __grid_constant__ pt_mt_launch L) {
    mt_span s = mt_locate(L);
    const float mu = (float)L.a.scal[s.j * L.a.scal_stride + PT_MUON_MOMENTUM];
    const int nest = L.a.flags;
    const float *g = (const float *)L.a.t[0][s.j] + s.lo;
    float *buf = (float *)L.a.t[1][s.j] + s.lo, *u = (float *)L.a.t[2][s.j] + s.lo;
    int64_t n = s.hi - s.lo, i0 = 0;
    if (s.vec) {
        const int64_t nv = n >> 2;
        for (int64_t k = threadIdx.x; k < nv; k += blockDim.x) {
            const float4 G = ((const float4 *)g)[k];
            float4 B = ((float4 *)buf)[k], U;
            momentum_elem(mu, nest, G.x, B.x, U.x);
            momentum_elem(mu, nest, G.y, B.y, U.y);
            momentum_elem(mu, nest, G.z, B.z, U.z);
            momentum_elem(mu, nest, G.w, B.w, U.w);
            ((float4 *)buf)[k] = B;
            ((float4 *)u)[k] = U;
        }
        i0 = nv << 2;
    }
    for (int64_t i = i0 + threadIdx.x; i < n; i += blockDim.x) momentum_elem(mu, nest, g[i], buf[i], u[i]);
}

__global__ void __launch_bounds__(PT_MT_THREADS) k_apply_multi(const __grid_constant__ pt_mt_launch L) {
    mt_span s = mt_locate(L);
    const double *r = L.a.scal + s.j * L.a.scal_stride;
    const apply_c c = apply_consts(r[PT_MUON_LR], r[PT_MUON_WD], r[PT_MUON_FACTOR], L.a.flags);
    float *p = (float *)L.a.t[0][s.j] + s.lo;
    const float *u = (const float *)L.a.t[1][s.j] + s.lo;
    mt_update(p, u, s.hi - s.lo, s.vec, [&](float &pi, float ui) { apply_elem(c, pi, ui); });
}

__global__ void __launch_bounds__(PT_MT_THREADS) k_ema_multi(const __grid_constant__ pt_mt_launch L) {
    mt_span s = mt_locate(L);
    const float k = (float)(1.0 - L.a.scal[s.j * L.a.scal_stride]);
    float *e = (float *)L.a.t[0][s.j] + s.lo;
    const float *w = (const float *)L.a.t[1][s.j] + s.lo;
    mt_update(e, w, s.hi - s.lo, s.vec, [&](float &ei, float wi) { ema_elem(k, ei, wi); });
}

/* clip: x ← x·coef with coef = max/(norm + 1e-6) formed here from the device norm; nothing when
 * max <= 0, the norm is not finite or coef >= 1 (pt_clip_grad_norm's conditions, same doubles) */
template <typename T>
__global__ void __launch_bounds__(PT_MT_THREADS) k_scale_multi(const __grid_constant__ pt_mt_launch L) {
    const double norm = L.a.scal[0];
    if (!(L.a.max_norm > 0) || !isfinite(norm)) return;
    const double coef = L.a.max_norm / (norm + 1e-6);
    if (coef >= 1.0) return;
    const T c = (T)coef;
    mt_span s = mt_locate(L);
    T *x = (T *)L.a.t[0][s.j];
    for (int64_t i = s.lo + threadIdx.x; i < s.hi; i += blockDim.x) x[i] = x[i] * c;
}

#define PT_MT_LAUNCHER(NAME, KERNEL, NOPS, WHAT)                                                   \
    static void NAME(const pt_mt_args *a) {                                                        \
        pt_mt_launch L;                                                                            \
        int64_t blocks = mt_table(&L, a, NOPS, 0);                                                 \
        if (blocks == 0) return;                                                                   \
        KERNEL<<<(unsigned)blocks, PT_MT_THREADS, 0, pt_cuda_compute_stream()>>>(L);               \
        pt_cuda_launch_check(WHAT);                                                                \
    }
PT_MT_LAUNCHER(cu_adamw_multi, k_adamw_multi, 4, "optim_adamw_multi")
PT_MT_LAUNCHER(cu_momentum_multi, k_momentum_multi, 3, "optim_momentum_multi")
PT_MT_LAUNCHER(cu_apply_multi, k_apply_multi, 2, "optim_apply_multi")
PT_MT_LAUNCHER(cu_ema_multi, k_ema_multi, 2, "optim_ema_multi")
PT_MT_LAUNCHER(cu_scale_multi_f32, k_scale_multi<float>, 1, "optim_scale_multi")
PT_MT_LAUNCHER(cu_scale_multi_f64, k_scale_multi<double>, 1, "optim_scale_multi")

/* ---------------------------------------------------------------- sum of squares */
/* block b of tensor j sums its slice [n·c/k, n·(c+1)/k) (k = pt_sumsq_parts(n)) into part[b] */
template <typename T>
__global__ void __launch_bounds__(PT_MT_THREADS) k_sumsq_part(const __grid_constant__ pt_mt_launch L, double *part) {
    __shared__ double sh[PT_MT_THREADS];
    const int j = mt_tensor(L);
    const int64_t n = L.a.numel[j], k = L.block0[j + 1] - L.block0[j], c = (int32_t)blockIdx.x - L.block0[j];
    const int64_t lo = n * c / k, hi = n * (c + 1) / k;
    const T *x = (const T *)L.a.t[0][j];
    double s = 0;
    for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) s += (double)x[i] * (double)x[i];
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int q = blockDim.x / 2; q > 0; q >>= 1) {
        if ((int)threadIdx.x < q) sh[threadIdx.x] += sh[threadIdx.x + q];
        __syncthreads();
    }
    if (threadIdx.x == 0) part[blockIdx.x] = sh[0];
}
/* block j: sums[j] = the partials of tensor j added in a fixed tree (0 for an empty tensor) */
__global__ void __launch_bounds__(PT_MT_THREADS) k_sumsq_fin(const __grid_constant__ pt_mt_launch L, const double *part,
                                                             double *sums) {
    __shared__ double sh[PT_MT_THREADS];
    const int j = blockIdx.x;
    double s = 0;
    for (int32_t b = L.block0[j] + (int32_t)threadIdx.x; b < L.block0[j + 1]; b += blockDim.x) s += part[b];
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int q = blockDim.x / 2; q > 0; q >>= 1) {
        if ((int)threadIdx.x < q) sh[threadIdx.x] += sh[threadIdx.x + q];
        __syncthreads();
    }
    if (threadIdx.x == 0) sums[j] = sh[0];
}
/* sums[0..n) of one launch; part: PT_SUMSQ_WORK doubles of device scratch */
template <typename T>
static void mt_sumsq(const pt_mt_args *a, double *part, double *sums) {
    pt_mt_launch L;
    int64_t blocks = mt_table(&L, a, 1, 1);
    cudaStream_t st = pt_cuda_compute_stream();
    if (blocks > 0) k_sumsq_part<T><<<(unsigned)blocks, PT_MT_THREADS, 0, st>>>(L, part);
    k_sumsq_fin<<<(unsigned)a->n, PT_MT_THREADS, 0, st>>>(L, part, sums);
    pt_cuda_launch_check("optim_sumsq");
}
template <typename T>
static void cu_sumsq_multi(const pt_mt_args *a) {
    mt_sumsq<T>(a, a->work, a->sums);
}

/* the per-tensor sum to a host double: the same kernels on a one-tensor list, then a synchronous copy */
template <typename T>
static void cu_sumsq(const pt_sumsq_args *a) {
    *a->out = 0;
    if (a->n == 0) return;
    if (pt_cuda_graph_capturing() >= 0) { /* the host reads the sum below: a capture cannot hold that */
        (void)pt_cuda_capture_forbid("optim.clip_grad_norm(params, max_norm) reads the norm on the host and",
                                     "use optim.clip_grad_norm(params, max_norm, {device = true}) in a captured step");
        pt_cuda_set_pending("%s", pt_last_error());
        return;
    }
    int dev = 0;
    cudaGetDevice(&dev);
    const size_t bytes = sizeof(double) * (PT_SUMSQ_PARTS + 1);
    void *d = NULL;
    if (pt_cuda_alloc(&d, bytes, dev) != PT_OK) {
        pt_cuda_set_pending("optim_sumsq: no device memory for %d partial sums", PT_SUMSQ_PARTS + 1);
        return;
    }
    pt_mt_args m;
    memset(&m, 0, sizeof m);
    m.n = 1;
    m.numel[0] = a->n;
    m.t[0][0] = (void *)a->x;
    double *part = (double *)d, h = 0;
    mt_sumsq<T>(&m, part, part + PT_SUMSQ_PARTS);
    cudaStream_t st = pt_cuda_compute_stream();
    cudaError_t e = cudaMemcpyAsync(&h, part + PT_SUMSQ_PARTS, sizeof h, cudaMemcpyDeviceToHost, st);
    if (e == cudaSuccess) e = cudaStreamSynchronize(st);
    pt_cuda_free(d, bytes, dev);
    if (e != cudaSuccess) { /* a NaN norm stops the training loop; the pending error names the cause */
        pt_cuda_set_pending("optim_sumsq: reading the sum of squares failed: %s (%s)", cudaGetErrorString(e),
                            cudaGetErrorName(e));
        h = NAN;
    }
    *a->out = h;
}

/* norm = √(Σ sums in order): one thread, the host's order and IEEE double arithmetic */
__global__ void k_norm(const double *sums, int64_t n, double *norm) {
    double total = 0;
    for (int64_t j = 0; j < n; j++) total += sums[j];
    *norm = sqrt(total);
}
static void cu_norm(const pt_norm_args *a) {
    k_norm<<<1, 1, 0, pt_cuda_compute_stream()>>>(a->sums, a->n, a->norm);
    pt_cuda_launch_check("optim_norm");
}

/* ---------------------------------------------------------------- Newton–Schulz over a bank */
/* X[b] [M,N] = G[b] [R,C] (transposed when R > C), optionally bf16-rounded, for nb matrices */
__global__ void k_ns_load(const float *G, float *X, int64_t nb, int64_t R, int64_t C, int tr, int bf) {
    const int64_t RC = R * C;
    GRID_LOOP(e, nb * RC) {
        int64_t b = e / RC, r = e % RC, i = r / C, j = r % C;
        float v = G[e];
        if (bf) v = pt_bf16r(v);
        X[b * RC + (tr ? j * R + i : r)] = v;
    }
}
__global__ void k_ns_store(float *G, const float *X, int64_t nb, int64_t R, int64_t C, int tr) {
    const int64_t RC = R * C;
    GRID_LOOP(e, nb * RC) {
        int64_t b = e / RC, r = e % RC, i = r / C, j = r % C;
        G[e] = X[b * RC + (tr ? j * R + i : r)];
    }
}
/* MuonEq-R: block per row (of every matrix), row / max(‖row‖, 1e-7) */
__global__ void k_ns_rownorm(float *X, int64_t N, int bf) {
    __shared__ double sh[PT_OP_THREADS];
    float *row = X + (int64_t)blockIdx.x * N;
    double s = 0;
    for (int64_t j = threadIdx.x; j < N; j += blockDim.x) s += (double)row[j] * row[j];
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k >>= 1) {
        if ((int)threadIdx.x < k) sh[threadIdx.x] += sh[threadIdx.x + k];
        __syncthreads();
    }
    float nr = (float)sqrt(sh[0]);
    if (bf) nr = pt_bf16r(nr);
    if (!(nr >= 1e-7f)) nr = nr != nr ? nr : 1e-7f;
    for (int64_t j = threadIdx.x; j < N; j += blockDim.x) {
        float v = __fdiv_rn(row[j], nr);
        row[j] = bf ? pt_bf16r(v) : v;
    }
}
/* block b: den[b] = bf(bf(‖X[b]‖_F) + 1e-7) */
__global__ void k_ns_frob(const float *X, int64_t n, int bf, float *den) {
    __shared__ double sh[PT_OP_THREADS];
    const float *x = X + (int64_t)blockIdx.x * n;
    double s = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += (double)x[i] * x[i];
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k >>= 1) {
        if ((int)threadIdx.x < k) sh[threadIdx.x] += sh[threadIdx.x + k];
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        float nf = (float)sqrt(sh[0]);
        if (bf) nf = pt_bf16r(nf);
        float d = __fadd_rn(nf, 1e-7f);
        den[blockIdx.x] = bf ? pt_bf16r(d) : d;
    }
}
__global__ void k_ns_div(float *X, int64_t total, int64_t per, const float *den, int bf) {
    GRID_LOOP(i, total) {
        float v = __fdiv_rn(X[i], den[i / per]);
        X[i] = bf ? pt_bf16r(v) : v;
    }
}
__global__ void k_ns_round(float *X, int64_t n) {
    GRID_LOOP(i, n) X[i] = pt_bf16r(X[i]);
}
/* A2 ← b·A + c·A2 */
__global__ void k_ns_poly(const float *A, float *A2, int64_t n, float cb, float cc, int bf) {
    GRID_LOOP(i, n) {
        if (bf) A2[i] = pt_bf16r(__fadd_rn(pt_bf16r(__fmul_rn(cb, A[i])), pt_bf16r(__fmul_rn(cc, pt_bf16r(A2[i])))));
        else A2[i] = __fadd_rn(__fmul_rn(cb, A[i]), __fmul_rn(cc, A2[i]));
    }
}
/* X ← a·X + BX */
__global__ void k_ns_comb(float *X, const float *BX, int64_t n, float ca, int bf) {
    GRID_LOOP(i, n) {
        if (bf) X[i] = pt_bf16r(__fadd_rn(pt_bf16r(__fmul_rn(ca, X[i])), pt_bf16r(BX[i])));
        else X[i] = __fadd_rn(__fmul_rn(ca, X[i]), BX[i]);
    }
}

/* row-major C[b] [m,n] = op(A[b]) op(B[b]) for nb matrices, as the column-major transpose product */
static int pt_sgemm_rm_batched(cublasHandle_t h, int ta, int tb, int64_t m, int64_t n, int64_t k, const float *A,
                               int64_t lda, int64_t sa, const float *B, int64_t ldb, int64_t sb, float *C, int64_t ldc,
                               int64_t sc, int64_t nb) {
    const float one = 1.0f, zero = 0.0f;
    cublasStatus_t s = cublasSgemmStridedBatched(h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                                                 (int)n, (int)m, (int)k, &one, B, (int)ldb, (long long)sb, A, (int)lda,
                                                 (long long)sa, &zero, C, (int)ldc, (long long)sc, (int)nb);
    if (s != CUBLAS_STATUS_SUCCESS) {
        pt_cuda_set_pending("optim_ns: cublasSgemmStridedBatched failed (status %d)", (int)s);
        return -1;
    }
    return 0;
}

static void cu_ns(const pt_ns_args *a) {
    cublasHandle_t h = pt_cublas_handle();
    if (!h) return;
    /* NS in f32 with TF32 off, as the CPU's sgemm */
    cublasSetMathMode(h, CUBLAS_DEFAULT_MATH);
    const int bf = (a->flags & PT_NS_BF16) != 0;
    const int64_t R = a->rows, C = a->cols, S = a->slots < 1 ? 1 : a->slots;
    const int tr = R > C;
    const int64_t M = tr ? C : R, N = tr ? R : C, MN = M * N, MM = M * M;
    float *X = (float *)a->work, *A = X + S * MN, *A2 = A + S * MM, *BX = A2 + S * MM, *den = BX + S * MN;
    cudaStream_t st = pt_cuda_compute_stream();
    for (int64_t b0 = 0; b0 < a->batch; b0 += S) {
        const int64_t nb = a->batch - b0 < S ? a->batch - b0 : S;
        float *G = (float *)a->x + b0 * R * C;
        k_ns_load<<<pt_op_blocks(nb * MN), PT_OP_THREADS, 0, st>>>(G, X, nb, R, C, tr, bf);
        if (a->flags & PT_NS_ROW_NORM) k_ns_rownorm<<<(unsigned)(nb * M), PT_OP_THREADS, 0, st>>>(X, N, bf);
        k_ns_frob<<<(unsigned)nb, PT_OP_THREADS, 0, st>>>(X, MN, bf, den);
        k_ns_div<<<pt_op_blocks(nb * MN), PT_OP_THREADS, 0, st>>>(X, nb * MN, MN, den, bf);
        for (int k = 0; k < a->steps; k++) {
            const double *cf = a->coeffs + 3 * (a->ncoeffs == 1 ? 0 : k);
            if (pt_sgemm_rm_batched(h, 0, 1, M, M, N, X, N, MN, X, N, MN, A, M, MM, nb)) goto out; /* A = X Xᵀ */
            if (bf) k_ns_round<<<pt_op_blocks(nb * MM), PT_OP_THREADS, 0, st>>>(A, nb * MM);
            if (pt_sgemm_rm_batched(h, 0, 0, M, M, M, A, M, MM, A, M, MM, A2, M, MM, nb)) goto out; /* A2 = A A */
            k_ns_poly<<<pt_op_blocks(nb * MM), PT_OP_THREADS, 0, st>>>(A, A2, nb * MM, (float)cf[1], (float)cf[2], bf);
            if (pt_sgemm_rm_batched(h, 0, 0, M, N, M, A2, M, MM, X, N, MN, BX, N, MN, nb)) goto out; /* BX = B X */
            k_ns_comb<<<pt_op_blocks(nb * MN), PT_OP_THREADS, 0, st>>>(X, BX, nb * MN, (float)cf[0], bf);
        }
        k_ns_store<<<pt_op_blocks(nb * MN), PT_OP_THREADS, 0, st>>>(G, X, nb, R, C, tr);
    }
out:
    pt_cuda_launch_check("optim_ns");
}

/* ---------------------------------------------------------------- registration */
static void cu_scale_f32(const pt_scale_args *a) { cu_scale<float>(a); }
static void cu_scale_f64(const pt_scale_args *a) { cu_scale<double>(a); }
static void cu_sumsq_f32(const pt_sumsq_args *a) { cu_sumsq<float>(a); }
static void cu_sumsq_f64(const pt_sumsq_args *a) { cu_sumsq<double>(a); }
static void cu_sumsq_multi_f32(const pt_mt_args *a) { cu_sumsq_multi<float>(a); }
static void cu_sumsq_multi_f64(const pt_mt_args *a) { cu_sumsq_multi<double>(a); }
PT_REGISTER_KERNEL(optim_adamw, PT_DEV_CUDA, PT_F32, cu_adamw)
PT_REGISTER_KERNEL(optim_sgd, PT_DEV_CUDA, PT_F32, cu_sgd)
PT_REGISTER_KERNEL(optim_momentum, PT_DEV_CUDA, PT_F32, cu_momentum)
PT_REGISTER_KERNEL(optim_apply, PT_DEV_CUDA, PT_F32, cu_apply)
PT_REGISTER_KERNEL(optim_ns, PT_DEV_CUDA, PT_F32, cu_ns)
PT_REGISTER_KERNEL(optim_scale, PT_DEV_CUDA, PT_F32, cu_scale_f32)
PT_REGISTER_KERNEL(optim_scale, PT_DEV_CUDA, PT_F64, cu_scale_f64)
PT_REGISTER_KERNEL(optim_sumsq, PT_DEV_CUDA, PT_F32, cu_sumsq_f32)
PT_REGISTER_KERNEL(optim_sumsq, PT_DEV_CUDA, PT_F64, cu_sumsq_f64)
PT_REGISTER_KERNEL(optim_ema, PT_DEV_CUDA, PT_F32, cu_ema)
PT_REGISTER_KERNEL(optim_swa_add, PT_DEV_CUDA, PT_F32, cu_swa_add_f32)
PT_REGISTER_KERNEL(optim_swa_add, PT_DEV_CUDA, PT_BF16, cu_swa_add_bf16)
PT_REGISTER_KERNEL(optim_swa_avg, PT_DEV_CUDA, PT_F32, cu_swa_avg_f32)
PT_REGISTER_KERNEL(optim_swa_avg, PT_DEV_CUDA, PT_BF16, cu_swa_avg_bf16)
PT_REGISTER_KERNEL(optim_adamw_multi, PT_DEV_CUDA, PT_F32, cu_adamw_multi)
PT_REGISTER_KERNEL(optim_momentum_multi, PT_DEV_CUDA, PT_F32, cu_momentum_multi)
PT_REGISTER_KERNEL(optim_apply_multi, PT_DEV_CUDA, PT_F32, cu_apply_multi)
PT_REGISTER_KERNEL(optim_ema_multi, PT_DEV_CUDA, PT_F32, cu_ema_multi)
PT_REGISTER_KERNEL(optim_sumsq_multi, PT_DEV_CUDA, PT_F32, cu_sumsq_multi_f32)
PT_REGISTER_KERNEL(optim_sumsq_multi, PT_DEV_CUDA, PT_F64, cu_sumsq_multi_f64)
PT_REGISTER_KERNEL(optim_scale_multi, PT_DEV_CUDA, PT_F32, cu_scale_multi_f32)
PT_REGISTER_KERNEL(optim_scale_multi, PT_DEV_CUDA, PT_F64, cu_scale_multi_f64)
PT_REGISTER_KERNEL(optim_norm, PT_DEV_CUDA, PT_F64, cu_norm)

/* ---------------------------------------------------------------- end (the emulator's extraction stops here) */
