/* cuda/fused.cu — CUDA kernels of the fused GPT family (signatures and semantics in pt_fused.h; the CPU
 * kernels in src/kernels/cpu/fused_tmpl.h are the oracle: same expressions, sums in f64).
 *
 * First, correct versions (speed is issue 11's work: a flash-style wgmma attention, fused epilogues):
 *   rms_norm / _bwd        block per row, f64 sums
 *   rotary                 thread per rotated pair (cos/sin in the element type, like the CPU)
 *   attention / _bwd       bf16: the flash kernels of attention.cu where they apply (rule and the
 *                          PROTEUS_ATTN switch at the attention section below); otherwise warp per query
 *                          row, online softmax in the forward (saves lse); the backward recomputes P from
 *                          lse and adds dK, dV with float atomics (not bit-stable)
 *   xsa / _bwd             thread per (position, kv head)
 *   act2 / _bwd            thread per element; star's dscale/dbias: block per unit, f64 sums
 *   softcap_ce / _bwd      block per row; the fronts range-check the targets first ("index_check",
 *                          index.cu: eager, or deferred inside a graph capture; a bad target -> NaN row)
 *   ce_mean                one block of 1024 threads: strided f64 partial sums, fixed tree (the CE
 *                          ops' reduction mean without a host read; deterministic)
 *   bigram_hash            thread per position (int32 arithmetic exactly as cpu/fused.c)
 *   smear_gate / _bwd      thread per element; dgate: block per channel
 *   lora / lora_bwd        in lora.cu (cuBLAS strided-batched GEMMs)
 * dtypes f32, f64 (attention also bf16). NOT YET RUN ON A GPU (no device was lent when this was written); the GPU suite
 * tests/gpu/test_fused.lua compares every kernel and backward with the CPU.
 */
#include <math.h>
#include <stdlib.h> /* getenv */
#include <string.h> /* strcmp */

#include "pt_cuda_common.cuh"

extern "C" {
#include "../pt_dispatch.h"
#include "../pt_fused.h"
#include "pt_cuda_internal.h"
}
#include "pt_attention.cuh" /* the flash kernels (attention.cu) */

#define PT_FZ_THREADS 256
#define PT_XSA_EPS 1e-12
#define PT_ATT_MAX_D 256

static unsigned pt_fz_blocks(int64_t n) {
    int64_t b = (n + PT_FZ_THREADS - 1) / PT_FZ_THREADS;
    if (b < 1) b = 1;
    return (unsigned)(b > 65535 * 16 ? 65535 * 16 : b);
}

static pt_status pt_fz_done(const char *what) {
    pt_cuda_launch_check(what);
    return pt_cuda_check_pending();
}

#define GRID_LOOP(i, n) for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

__device__ double pt_fz_block_sum(double v) {
    __shared__ double sh[PT_FZ_THREADS];
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    double r = sh[0];
    __syncthreads();
    return r;
}

/* ---------------------------------------------------------------- rms_norm */
template <typename T>
__global__ void k_rms_norm(pt_rmsnorm_args a) {
    const T *x = (const T *)a.x + blockIdx.x * a.c;
    T *y = (T *)a.y + blockIdx.x * a.c;
    double ss = 0;
    for (int64_t j = threadIdx.x; j < a.c; j += blockDim.x) ss += (double)x[j] * (double)x[j];
    ss = pt_fz_block_sum(ss);
    T r = (T)(1.0 / sqrt(ss / (double)a.c + a.eps));
    if (threadIdx.x == 0) ((T *)a.rstd)[blockIdx.x] = r;
    const bool apply = a.scale != 1.0;
    for (int64_t j = threadIdx.x; j < a.c; j += blockDim.x) {
        T v = x[j] * r;
        y[j] = apply ? v * (T)a.scale : v;
    }
}

template <typename T>
__global__ void k_rms_norm_bwd(pt_rmsnorm_args a) {
    const T *x = (const T *)a.x + blockIdx.x * a.c, *g = (const T *)a.g + blockIdx.x * a.c;
    T *dx = (T *)a.dx + blockIdx.x * a.c;
    double dot = 0;
    for (int64_t j = threadIdx.x; j < a.c; j += blockDim.x) dot += (double)g[j] * (double)x[j];
    dot = pt_fz_block_sum(dot);
    double r = (double)((const T *)a.rstd)[blockIdx.x];
    double m = dot * r * r / (double)a.c, sr = a.scale * r;
    for (int64_t j = threadIdx.x; j < a.c; j += blockDim.x) dx[j] = (T)(sr * ((double)g[j] - (double)x[j] * m));
}

template <typename T>
static pt_status cu_rms_norm(const pt_rmsnorm_args *a) {
    if (a->n == 0) return PT_OK;
    k_rms_norm<T><<<(unsigned)a->n, PT_FZ_THREADS, 0, pt_cuda_compute_stream()>>>(*a);
    return pt_fz_done("rms_norm");
}
template <typename T>
static pt_status cu_rms_norm_bwd(const pt_rmsnorm_args *a) {
    if (a->n == 0) return PT_OK;
    k_rms_norm_bwd<T><<<(unsigned)a->n, PT_FZ_THREADS, 0, pt_cuda_compute_stream()>>>(*a);
    return pt_fz_done("rms_norm_bwd");
}

/* ---------------------------------------------------------------- rotary */
template <typename T>
__global__ void k_rotary(pt_rotary_args a) {
    const int64_t half = a.r / 2, D = a.D;
    const int64_t total = a.B * a.T * a.H * D;
    GRID_LOOP(e, total) {
        const int64_t d = e % D, row = e / D; /* row = (b*T + t)*H + h */
        const int64_t t = (row / a.H) % a.T;
        const T *xr = (const T *)a.x + row * D;
        T *yr = (T *)a.y + row * D;
        if (d >= 2 * half) {
            yr[d] = xr[d];
            continue;
        }
        const int64_t j = d < half ? d : d - half;
        T ex = (T)(2 * j) / (T)a.r;
        T inv = (T)1 / pt_pow((T)a.base, ex);
        T ang = (T)(t + a.offset) * inv;
        T cs = pt_cos(ang), sn = (a.inverse ? (T)-1 : (T)1) * pt_sin(ang);
        T x1 = xr[j], x2 = xr[half + j];
        yr[d] = d < half ? x1 * cs + x2 * sn : -x1 * sn + x2 * cs;
    }
}
template <typename T>
static pt_status cu_rotary(const pt_rotary_args *a) {
    int64_t total = a->B * a->T * a->H * a->D;
    if (total == 0) return PT_OK;
    k_rotary<T><<<pt_fz_blocks(total), PT_FZ_THREADS, 0, pt_cuda_compute_stream()>>>(*a);
    return pt_fz_done("rotary");
}

/* ---------------------------------------------------------------- attention
 * Which kernel runs. PROTEUS_ATTN is read at every call:
 *   unset, "" or "auto": the flash kernels of attention.cu when q is bf16 and they take the call
 *                        (pt_flash_attention_supported: D = 64 or 128, T <= 4194240, 16-byte aligned
 *                        pointers), else the simple kernel below. Both are tested against the CPU, so
 *                        this is a speed choice, not a correctness one.
 *   "simple":            the simple kernel for every dtype and shape (the baseline the bench compares).
 *   "flash":             the flash kernels, or an error naming the dtype or shape they do not take.
 * The simple kernel: warp per query row, math in f64, online softmax (saves lse); the backward
 * recomputes P from lse and adds dK, dV with atomics (f32 atomics into a workspace for bf16, then
 * rounded once), so it is not bit-stable. lse is f32 for bf16 inputs, else the input dtype. */
enum { PT_ATTN_AUTO = 0, PT_ATTN_SIMPLE = 1, PT_ATTN_FLASH = 2 };

static pt_status pt_attn_mode(int *mode) {
    const char *e = getenv("PROTEUS_ATTN");
    *mode = PT_ATTN_AUTO;
    if (!e || !*e || !strcmp(e, "auto")) return PT_OK;
    if (!strcmp(e, "simple")) *mode = PT_ATTN_SIMPLE;
    else if (!strcmp(e, "flash")) *mode = PT_ATTN_FLASH;
    else
        return PT_FAIL(PT_ERR_VALUE, "PROTEUS_ATTN=%s: expected simple, flash or auto (unset means auto: flash where "
                                     "it applies)", e);
    return PT_OK;
}

/* *flash = 1 when this call goes to attention.cu */
static pt_status pt_attn_pick(const pt_attention_args *a, pt_dtype dt, int bwd, int *flash) {
    int mode;
    *flash = 0;
    PT_TRY(pt_attn_mode(&mode));
    if (mode == PT_ATTN_SIMPLE) return PT_OK;
    const char *what = bwd ? "attention backward" : "attention";
    if (dt != PT_BF16) {
        if (mode == PT_ATTN_FLASH)
            return PT_FAIL(PT_ERR_UNSUPPORTED, "%s on CUDA with PROTEUS_ATTN=flash: the flash kernel takes bf16, got %s "
                                               "(cast q, k, v to bf16, or unset PROTEUS_ATTN)", what, pt_dtype_name(dt));
        return PT_OK;
    }
    char why[192];
    if (!pt_flash_attention_supported(a, bwd, why, sizeof why)) {
        if (mode == PT_ATTN_FLASH)
            return PT_FAIL(PT_ERR_UNSUPPORTED, "%s on CUDA with PROTEUS_ATTN=flash: q [B=%lld, T=%lld, H=%lld, D=%lld], "
                                               "k, v [Hkv=%lld] bf16: %s (unset PROTEUS_ATTN to use the simple kernel)",
                           what, (long long)a->B, (long long)a->T, (long long)a->H, (long long)a->D,
                           (long long)a->Hkv, why);
        return PT_OK;
    }
    *flash = 1;
    return PT_OK;
}

/* storage dtype, lse type and dK/dV accumulation type of each instantiation */
template <typename T> struct pt_attn_t;
template <> struct pt_attn_t<float> { typedef float lse; typedef float acc; static const pt_dtype dt = PT_F32; };
template <> struct pt_attn_t<double> { typedef double lse; typedef double acc; static const pt_dtype dt = PT_F64; };
template <> struct pt_attn_t<pt_bf16> { typedef float lse; typedef float acc; static const pt_dtype dt = PT_BF16; };

__device__ __forceinline__ double pt_warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

template <typename T>
__global__ void k_attention(pt_attention_args a) {
    typedef typename pt_attn_t<T>::lse LT;
    typedef typename pt_math<T>::type M;
    const int64_t warp = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x % 32;
    const int64_t rows = a.B * a.H * a.T;
    if (warp >= rows) return;
    const int64_t t = warp % a.T, h = (warp / a.T) % a.H, b = warp / (a.T * a.H);
    const int64_t grp = a.H / a.Hkv, gk = h / grp, D = a.D;
    const int64_t ldq = a.H * D, ldk = a.Hkv * D;
    const T *q = (const T *)a.q + (b * a.T + t) * ldq + h * D;
    const T *K = (const T *)a.k + b * a.T * ldk + gk * D;
    const T *V = (const T *)a.v + b * a.T * ldk + gk * D;
    const int nd = (int)((D + 31) / 32);
    double acc[PT_ATT_MAX_D / 32], qv[PT_ATT_MAX_D / 32];
    for (int i = 0; i < nd; i++) {
        int64_t d = lane + 32 * i;
        acc[i] = 0;
        qv[i] = d < D ? (double)pt_ld(q, d) : 0;
    }
    double m = -INFINITY, l = 0;
    for (int64_t j = 0; j <= t; j++) {
        double s = 0;
        for (int i = 0; i < nd; i++) {
            int64_t d = lane + 32 * i;
            if (d < D) s += qv[i] * (double)pt_ld(K, j * ldk + d);
        }
        s = pt_warp_sum(s) * a.scale;
        double mn = s > m ? s : m;
        double corr = exp(m - mn), p = exp(s - mn);
        l = l * corr + p;
        for (int i = 0; i < nd; i++) {
            int64_t d = lane + 32 * i;
            acc[i] = acc[i] * corr + (d < D ? p * (double)pt_ld(V, j * ldk + d) : 0);
        }
        m = mn;
    }
    T *y = (T *)a.y + (b * a.T + t) * ldq + h * D;
    for (int i = 0; i < nd; i++) {
        int64_t d = lane + 32 * i;
        if (d < D) pt_st(y, d, (M)(acc[i] / l));
    }
    if (lane == 0) ((LT *)a.lse)[(b * a.H + h) * a.T + t] = (LT)(m + log(l));
}

__device__ __forceinline__ void pt_atomic_add(float *p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void pt_atomic_add(double *p, double v) { atomicAdd(p, v); }

/* dK, dV accumulate into dKa, dVa (the outputs for f32/f64, an f32 workspace for bf16) */
template <typename T>
__global__ void k_attention_bwd(pt_attention_args a, typename pt_attn_t<T>::acc *dKa, typename pt_attn_t<T>::acc *dVa) {
    typedef typename pt_attn_t<T>::lse LT;
    typedef typename pt_attn_t<T>::acc AT;
    typedef typename pt_math<T>::type M;
    const int64_t warp = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x % 32;
    const int64_t rows = a.B * a.H * a.T;
    if (warp >= rows) return;
    const int64_t t = warp % a.T, h = (warp / a.T) % a.H, b = warp / (a.T * a.H);
    const int64_t grp = a.H / a.Hkv, gk = h / grp, D = a.D;
    const int64_t ldq = a.H * D, ldk = a.Hkv * D;
    const int64_t qoff = (b * a.T + t) * ldq + h * D;
    const T *q = (const T *)a.q + qoff, *y = (const T *)a.y + qoff, *gy = (const T *)a.gy + qoff;
    const T *K = (const T *)a.k + b * a.T * ldk + gk * D;
    const T *V = (const T *)a.v + b * a.T * ldk + gk * D;
    AT *dK = dKa + b * a.T * ldk + gk * D, *dV = dVa + b * a.T * ldk + gk * D;
    const double lse = (double)((const LT *)a.lse)[(b * a.H + h) * a.T + t];
    const int nd = (int)((D + 31) / 32);
    double qv[PT_ATT_MAX_D / 32], gv[PT_ATT_MAX_D / 32], dq[PT_ATT_MAX_D / 32];
    double di = 0;
    for (int i = 0; i < nd; i++) {
        int64_t d = lane + 32 * i;
        qv[i] = d < D ? (double)pt_ld(q, d) : 0;
        gv[i] = d < D ? (double)pt_ld(gy, d) : 0;
        dq[i] = 0;
        if (d < D) di += (double)pt_ld(y, d) * gv[i];
    }
    di = pt_warp_sum(di);
    for (int64_t j = 0; j <= t; j++) {
        double s = 0, dp = 0;
        for (int i = 0; i < nd; i++) {
            int64_t d = lane + 32 * i;
            if (d < D) {
                s += qv[i] * (double)pt_ld(K, j * ldk + d);
                dp += gv[i] * (double)pt_ld(V, j * ldk + d);
            }
        }
        s = pt_warp_sum(s) * a.scale;
        dp = pt_warp_sum(dp);
        double p = exp(s - lse), ds = p * (dp - di);
        for (int i = 0; i < nd; i++) {
            int64_t d = lane + 32 * i;
            if (d < D) {
                dq[i] += a.scale * ds * (double)pt_ld(K, j * ldk + d);
                pt_atomic_add(&dK[j * ldk + d], (AT)(a.scale * ds * qv[i]));
                pt_atomic_add(&dV[j * ldk + d], (AT)(p * gv[i]));
            }
        }
    }
    T *dQ = (T *)a.dq + qoff;
    for (int i = 0; i < nd; i++) {
        int64_t d = lane + 32 * i;
        if (d < D) pt_st(dQ, d, (M)dq[i]);
    }
}

__global__ void k_attention_f32_to_bf16(const float *src, pt_bf16 *dst, int64_t n) {
    GRID_LOOP(i, n) pt_st(dst, i, src[i]);
}

template <typename T>
static pt_status cu_attention(const pt_attention_args *a) {
    int flash = 0;
    PT_TRY(pt_attn_pick(a, pt_attn_t<T>::dt, 0, &flash));
    if (flash) return pt_flash_attention_fwd(a);
    if (a->D > PT_ATT_MAX_D)
        return PT_FAIL(PT_ERR_UNSUPPORTED, "attention on CUDA: head dim %lld > %d is not supported yet", (long long)a->D,
                       PT_ATT_MAX_D);
    int64_t rows = a->B * a->H * a->T;
    if (rows == 0) return PT_OK;
    k_attention<T><<<pt_fz_blocks(rows * 32), PT_FZ_THREADS, 0, pt_cuda_compute_stream()>>>(*a);
    return pt_fz_done("attention");
}

template <typename T>
static pt_status cu_attention_bwd(const pt_attention_args *a) {
    typedef typename pt_attn_t<T>::acc AT;
    int flash = 0;
    PT_TRY(pt_attn_pick(a, pt_attn_t<T>::dt, 1, &flash));
    if (flash) return pt_flash_attention_bwd(a);
    if (a->D > PT_ATT_MAX_D)
        return PT_FAIL(PT_ERR_UNSUPPORTED, "attention backward on CUDA: head dim %lld > %d is not supported yet",
                       (long long)a->D, PT_ATT_MAX_D);
    int64_t rows = a->B * a->H * a->T;
    if (rows == 0) return PT_OK;
    if (pt_attn_t<T>::dt != PT_BF16) { /* dk, dv arrive zeroed and take the atomics directly */
        k_attention_bwd<T><<<pt_fz_blocks(rows * 32), PT_FZ_THREADS, 0, pt_cuda_compute_stream()>>>(*a, (AT *)a->dk,
                                                                                                  (AT *)a->dv);
        return pt_fz_done("attention_bwd");
    }
    /* bf16: f32 atomics into a zeroed workspace, then one rounding; the allocator reuses the
     * workspace in compute-stream order, so freeing it after the launches is safe */
    const int64_t nkv = a->B * a->T * a->Hkv * a->D;
    const size_t bytes = 2 * sizeof(float) * (size_t)nkv;
    int dev = 0;
    PT_CUDA_CHECK(cudaGetDevice(&dev));
    void *ws = NULL;
    PT_TRY(pt_cuda_alloc(&ws, bytes, dev));
    float *dk = (float *)ws, *dv = dk + nkv;
    cudaError_t e = cudaMemsetAsync(ws, 0, bytes, pt_cuda_compute_stream());
    if (e == cudaSuccess) {
        k_attention_bwd<T><<<pt_fz_blocks(rows * 32), PT_FZ_THREADS, 0, pt_cuda_compute_stream()>>>(*a, (AT *)dk,
                                                                                                  (AT *)dv);
        k_attention_f32_to_bf16<<<pt_fz_blocks(nkv), PT_FZ_THREADS, 0, pt_cuda_compute_stream()>>>(dk, (pt_bf16 *)a->dk,
                                                                                                   nkv);
        k_attention_f32_to_bf16<<<pt_fz_blocks(nkv), PT_FZ_THREADS, 0, pt_cuda_compute_stream()>>>(dv, (pt_bf16 *)a->dv,
                                                                                                   nkv);
    }
    pt_cuda_free(ws, bytes, dev);
    if (e != cudaSuccess) return pt_cuda_fail(e, "cudaMemsetAsync", __FILE__, __LINE__);
    return pt_fz_done("attention_bwd");
}

static pt_status cu_attention_bf16(const pt_attention_args *a) { return cu_attention<pt_bf16>(a); }
static pt_status cu_attention_bwd_bf16(const pt_attention_args *a) { return cu_attention_bwd<pt_bf16>(a); }
PT_REGISTER_KERNEL(attention, PT_DEV_CUDA, PT_BF16, cu_attention_bf16)
PT_REGISTER_KERNEL(attention_bwd, PT_DEV_CUDA, PT_BF16, cu_attention_bwd_bf16)

/* ---------------------------------------------------------------- XSA */
template <typename T>
__global__ void k_xsa(pt_xsa_args a) {
    const int64_t grp = a.H / a.Hkv, D = a.D;
    GRID_LOOP(pg, a.n * a.Hkv) {
        const int64_t p = pg / a.Hkv, gk = pg % a.Hkv;
        const T *vr = (const T *)a.v + (p * a.Hkv + gk) * D;
        double nn = 0;
        for (int64_t d = 0; d < D; d++) nn += (double)vr[d] * (double)vr[d];
        const double inv = 1.0 / fmax(sqrt(nn), PT_XSA_EPS);
        for (int64_t h = gk * grp; h < (gk + 1) * grp; h++) {
            const T *yr = (const T *)a.y + (p * a.H + h) * D;
            T *o = (T *)a.out + (p * a.H + h) * D;
            double c = 0;
            for (int64_t d = 0; d < D; d++) c += (double)yr[d] * (double)vr[d] * inv;
            for (int64_t d = 0; d < D; d++) o[d] = (T)((double)yr[d] - c * (double)vr[d] * inv);
        }
    }
}

template <typename T>
__global__ void k_xsa_bwd(pt_xsa_args a) {
    const int64_t grp = a.H / a.Hkv, D = a.D;
    GRID_LOOP(pg, a.n * a.Hkv) {
        const int64_t p = pg / a.Hkv, gk = pg % a.Hkv;
        const T *vr = (const T *)a.v + (p * a.Hkv + gk) * D;
        double nn = 0;
        for (int64_t d = 0; d < D; d++) nn += (double)vr[d] * (double)vr[d];
        const double norm = sqrt(nn), inv = 1.0 / fmax(norm, PT_XSA_EPS);
        T *dvr = a.dv ? (T *)a.dv + (p * a.Hkv + gk) * D : NULL;
        if (dvr)
            for (int64_t d = 0; d < D; d++) dvr[d] = 0;
        for (int64_t h = gk * grp; h < (gk + 1) * grp; h++) {
            const T *yr = (const T *)a.y + (p * a.H + h) * D, *gr = (const T *)a.g + (p * a.H + h) * D;
            double c = 0, al = 0;
            for (int64_t d = 0; d < D; d++) {
                double vh = (double)vr[d] * inv;
                c += (double)yr[d] * vh;
                al += (double)gr[d] * vh;
            }
            if (a.dy) {
                T *dyr = (T *)a.dy + (p * a.H + h) * D;
                for (int64_t d = 0; d < D; d++) dyr[d] = (T)((double)gr[d] - al * (double)vr[d] * inv);
            }
            if (dvr)
                for (int64_t d = 0; d < D; d++) dvr[d] = (T)((double)dvr[d] - al * (double)yr[d] - c * (double)gr[d]);
        }
        if (dvr) {
            if (norm > PT_XSA_EPS) {
                double dot = 0;
                for (int64_t d = 0; d < D; d++) dot += (double)dvr[d] * (double)vr[d] * inv;
                for (int64_t d = 0; d < D; d++) dvr[d] = (T)(((double)dvr[d] - dot * (double)vr[d] * inv) * inv);
            } else {
                for (int64_t d = 0; d < D; d++) dvr[d] = (T)((double)dvr[d] * inv);
            }
        }
    }
}

template <typename T>
static pt_status cu_xsa(const pt_xsa_args *a) {
    if (a->n * a->Hkv == 0) return PT_OK;
    k_xsa<T><<<pt_fz_blocks(a->n * a->Hkv), PT_FZ_THREADS, 0, pt_cuda_compute_stream()>>>(*a);
    return pt_fz_done("xsa");
}
template <typename T>
static pt_status cu_xsa_bwd(const pt_xsa_args *a) {
    if (a->n * a->Hkv == 0) return PT_OK;
    k_xsa_bwd<T><<<pt_fz_blocks(a->n * a->Hkv), PT_FZ_THREADS, 0, pt_cuda_compute_stream()>>>(*a);
    return pt_fz_done("xsa_bwd");
}

/* ---------------------------------------------------------------- relu², leaky relu², star relu */
template <typename T>
__global__ void k_act2(pt_act2_args a) {
    const T *x = (const T *)a.x, *sc = (const T *)a.scale, *bi = (const T *)a.bias;
    T *o = (T *)a.out;
    const T slope = (T)a.slope;
    GRID_LOOP(e, a.n * a.c) {
        const int64_t j = e % a.c;
        T v = x[e], r;
        if (a.op == PT_ACT2_RELU2) {
            r = v > 0 ? v : (T)0;
            o[e] = r * r;
        } else if (a.op == PT_ACT2_LEAKY2) {
            r = v > 0 ? v : v * slope;
            o[e] = r * r;
        } else {
            r = v > 0 ? v : (T)0;
            o[e] = r * r * sc[j] + bi[j];
        }
    }
}

template <typename T>
__global__ void k_act2_bwd(pt_act2_args a) {
    const T *x = (const T *)a.x, *sc = (const T *)a.scale, *g = (const T *)a.g;
    T *dx = (T *)a.dx;
    const T slope = (T)a.slope;
    GRID_LOOP(e, a.n * a.c) {
        const int64_t j = e % a.c;
        T v = x[e], gg = g[e];
        if (a.op == PT_ACT2_RELU2) dx[e] = v > 0 ? 2 * v * gg : (T)0;
        else if (a.op == PT_ACT2_LEAKY2) dx[e] = v > 0 ? 2 * v * gg : 2 * v * slope * slope * gg;
        else dx[e] = v > 0 ? 2 * v * sc[j] * gg : (T)0;
    }
}

/* one block per unit j: dscale_j = Σ relu(x)²·g, dbias_j = Σ g over the rows (written, not added) */
template <typename T>
__global__ void k_star_params_bwd(pt_act2_args a) {
    const int64_t j = blockIdx.x;
    const T *x = (const T *)a.x, *g = (const T *)a.g;
    double s = 0, b = 0;
    for (int64_t i = threadIdx.x; i < a.n; i += blockDim.x) {
        double v = (double)x[i * a.c + j], gg = (double)g[i * a.c + j], r = v > 0 ? v : 0;
        s += r * r * gg;
        b += gg;
    }
    s = pt_fz_block_sum(s);
    b = pt_fz_block_sum(b);
    if (threadIdx.x == 0) {
        if (a.dscale) ((T *)a.dscale)[j] = (T)s;
        if (a.dbias) ((T *)a.dbias)[j] = (T)b;
    }
}

template <typename T>
static pt_status cu_act2(const pt_act2_args *a) {
    if (a->n * a->c == 0) return PT_OK;
    k_act2<T><<<pt_fz_blocks(a->n * a->c), PT_FZ_THREADS, 0, pt_cuda_compute_stream()>>>(*a);
    return pt_fz_done("act2");
}
template <typename T>
static pt_status cu_act2_bwd(const pt_act2_args *a) {
    if (a->n * a->c == 0) return PT_OK;
    if (a->dx) k_act2_bwd<T><<<pt_fz_blocks(a->n * a->c), PT_FZ_THREADS, 0, pt_cuda_compute_stream()>>>(*a);
    if (a->op == PT_ACT2_STAR && (a->dscale || a->dbias))
        k_star_params_bwd<T><<<(unsigned)a->c, PT_FZ_THREADS, 0, pt_cuda_compute_stream()>>>(*a);
    return pt_fz_done("act2_bwd");
}

/* ---------------------------------------------------------------- softcapped cross-entropy */
/* The fronts range-check the targets with the "index_check" kernel (index.cu) before these run; inside
 * a CUDA graph capture that check is deferred, so a row with a target outside [0, V) gets a NaN loss
 * here instead of a read outside its row (the error comes at the next synchronisation). */
template <typename T>
__device__ __forceinline__ T pt_cap(T x, T cap, bool capped) {
    return capped ? cap * pt_tanh(x / cap) : x;
}

template <typename T>
__global__ void k_softcap_ce(pt_ce_args a) {
    __shared__ double shm[PT_FZ_THREADS];
    const T *x = (const T *)a.logits + blockIdx.x * a.V;
    const T cap = (T)a.cap;
    const bool capped = a.cap > 0;
    double mx = -INFINITY;
    for (int64_t j = threadIdx.x; j < a.V; j += blockDim.x) {
        double z = (double)pt_cap(x[j], cap, capped);
        mx = z > mx ? z : mx;
    }
    shm[threadIdx.x] = mx;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) shm[threadIdx.x] = fmax(shm[threadIdx.x], shm[threadIdx.x + s]);
        __syncthreads();
    }
    mx = shm[0];
    __syncthreads();
    double sum = 0;
    for (int64_t j = threadIdx.x; j < a.V; j += blockDim.x) sum += exp((double)pt_cap(x[j], cap, capped) - mx);
    sum = pt_fz_block_sum(sum);
    if (threadIdx.x == 0) {
        double l = mx + log(sum);
        int64_t y = a.targets[blockIdx.x];
        ((T *)a.lse)[blockIdx.x] = (T)l;
        ((T *)a.nll)[blockIdx.x] = y >= 0 && y < a.V ? (T)(l - (double)pt_cap(x[y], cap, capped)) : (T)NAN;
    }
}

template <typename T>
__global__ void k_softcap_ce_bwd(pt_ce_args a) {
    const int64_t i = blockIdx.x;
    const T *x = (const T *)a.logits + i * a.V;
    T *dx = (T *)a.dlogits + i * a.V;
    const T cap = (T)a.cap;
    const bool capped = a.cap > 0;
    const double gi = (double)((const T *)a.g)[i * a.gstride] * a.gscale, l = (double)((const T *)a.lse)[i];
    const int64_t y = a.targets[i];
    for (int64_t j = threadIdx.x; j < a.V; j += blockDim.x) {
        double th = capped ? (double)pt_tanh(x[j] / cap) : 0;
        double z = capped ? (double)(cap * (T)th) : (double)x[j];
        double p = exp(z - l) - (j == y ? 1.0 : 0.0);
        dx[j] = (T)(gi * p * (capped ? 1.0 - th * th : 1.0));
    }
}

template <typename T>
static pt_status cu_softcap_ce(const pt_ce_args *a) {
    if (a->n == 0) return PT_OK;
    k_softcap_ce<T><<<(unsigned)a->n, PT_FZ_THREADS, 0, pt_cuda_compute_stream()>>>(*a);
    return pt_fz_done("softcap_ce");
}
template <typename T>
static pt_status cu_softcap_ce_bwd(const pt_ce_args *a) {
    if (a->n == 0) return PT_OK;
    k_softcap_ce_bwd<T><<<(unsigned)a->n, PT_FZ_THREADS, 0, pt_cuda_compute_stream()>>>(*a);
    return pt_fz_done("softcap_ce_bwd");
}

/* ---------------------------------------------------------------- mean of the CE's nll */
#define PT_CE_MEAN_THREADS 1024

/* one block: thread t adds nll[t], nll[t + 1024], ... in f64, then a fixed halving tree; the order never
 * depends on timing, so the result is the same at every run (and in every replay of a graph) */
template <typename T>
__global__ void __launch_bounds__(PT_CE_MEAN_THREADS) k_ce_mean(const T *nll, int64_t n, T *out) {
    __shared__ double sh[PT_CE_MEAN_THREADS];
    double s = 0;
    for (int64_t i = threadIdx.x; i < n; i += PT_CE_MEAN_THREADS) s += (double)nll[i];
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int w = PT_CE_MEAN_THREADS / 2; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w) sh[threadIdx.x] += sh[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) *out = (T)(sh[0] / (double)n);
}

template <typename T>
static pt_status cu_ce_mean(const void *nll, int64_t n, void *out) {
    k_ce_mean<T><<<1, PT_CE_MEAN_THREADS, 0, pt_cuda_compute_stream()>>>((const T *)nll, n, (T *)out);
    return pt_fz_done("ce_mean");
}
static pt_status cu_ce_mean_f32(const void *nll, int64_t n, void *out) { return cu_ce_mean<float>(nll, n, out); }
static pt_status cu_ce_mean_f64(const void *nll, int64_t n, void *out) { return cu_ce_mean<double>(nll, n, out); }
PT_REGISTER_KERNEL(ce_mean, PT_DEV_CUDA, PT_F32, cu_ce_mean_f32)
PT_REGISTER_KERNEL(ce_mean, PT_DEV_CUDA, PT_F64, cu_ce_mean_f64)

/* ---------------------------------------------------------------- bigram hash */
__global__ void k_bigram_hash(pt_bigram_args a) {
    const int64_t mod = a.buckets - 1;
    GRID_LOOP(e, a.n * a.T) {
        const int64_t t = e % a.T;
        if (t == 0) {
            a.out[e] = mod;
            continue;
        }
        uint32_t p = 36313u * (uint32_t)a.tokens[e], q = 27191u * (uint32_t)a.tokens[e - 1];
        int32_t h = (int32_t)(p ^ q);
        int64_t r = (int64_t)h % mod;
        a.out[e] = r < 0 ? r + mod : r;
    }
}
static pt_status cu_bigram_hash(const pt_bigram_args *a) {
    if (a->n * a->T == 0) return PT_OK;
    k_bigram_hash<<<pt_fz_blocks(a->n * a->T), PT_FZ_THREADS, 0, pt_cuda_compute_stream()>>>(*a);
    return pt_fz_done("bigram_hash");
}

/* ---------------------------------------------------------------- smear gate */
template <typename T>
__global__ void k_smear(pt_smear_args a) {
    const T *x = (const T *)a.x, *gt = (const T *)a.gate;
    GRID_LOOP(e, a.B * a.T * a.C) {
        const int64_t c = e % a.C, t = (e / a.C) % a.T;
        T s = (T)1 / ((T)1 + pt_exp(-gt[c]));
        ((T *)a.y)[e] = ((T)1 - s) * x[e] + (t > 0 ? s * x[e - a.C] : (T)0);
    }
}

template <typename T>
__global__ void k_smear_dx(pt_smear_args a) {
    const T *gy = (const T *)a.gy, *gt = (const T *)a.gate;
    GRID_LOOP(e, a.B * a.T * a.C) {
        const int64_t c = e % a.C, t = (e / a.C) % a.T;
        T s = (T)1 / ((T)1 + pt_exp(-gt[c]));
        ((T *)a.dx)[e] = ((T)1 - s) * gy[e] + (t + 1 < a.T ? s * gy[e + a.C] : (T)0);
    }
}

template <typename T>
__global__ void k_smear_dgate(pt_smear_args a) {
    const int64_t c = blockIdx.x;
    const T *x = (const T *)a.x, *gy = (const T *)a.gy;
    double acc = 0;
    for (int64_t bt = threadIdx.x; bt < a.B * a.T; bt += blockDim.x) {
        const int64_t t = bt % a.T;
        double prev = t > 0 ? (double)x[(bt - 1) * a.C + c] : 0.0;
        acc += (double)gy[bt * a.C + c] * (prev - (double)x[bt * a.C + c]);
    }
    acc = pt_fz_block_sum(acc);
    if (threadIdx.x == 0) {
        double s = 1.0 / (1.0 + exp(-(double)((const T *)a.gate)[c]));
        ((T *)a.dgate)[c] = (T)(acc * s * (1.0 - s));
    }
}

template <typename T>
static pt_status cu_smear(const pt_smear_args *a) {
    int64_t n = a->B * a->T * a->C;
    if (n == 0) return PT_OK;
    k_smear<T><<<pt_fz_blocks(n), PT_FZ_THREADS, 0, pt_cuda_compute_stream()>>>(*a);
    return pt_fz_done("smear_gate");
}
template <typename T>
static pt_status cu_smear_bwd(const pt_smear_args *a) {
    int64_t n = a->B * a->T * a->C;
    if (n == 0) return PT_OK;
    if (a->dx) k_smear_dx<T><<<pt_fz_blocks(n), PT_FZ_THREADS, 0, pt_cuda_compute_stream()>>>(*a);
    if (a->dgate) k_smear_dgate<T><<<(unsigned)a->C, PT_FZ_THREADS, 0, pt_cuda_compute_stream()>>>(*a);
    return pt_fz_done("smear_gate_bwd");
}

/* ---------------------------------------------------------------- registration */
#define PT_FZ_REG(SFX, T, DT)                                                                              \
    static pt_status cu_rms_norm_##SFX(const pt_rmsnorm_args *a) { return cu_rms_norm<T>(a); }             \
    static pt_status cu_rms_norm_bwd_##SFX(const pt_rmsnorm_args *a) { return cu_rms_norm_bwd<T>(a); }     \
    static pt_status cu_rotary_##SFX(const pt_rotary_args *a) { return cu_rotary<T>(a); }                  \
    static pt_status cu_attention_##SFX(const pt_attention_args *a) { return cu_attention<T>(a); }         \
    static pt_status cu_attention_bwd_##SFX(const pt_attention_args *a) { return cu_attention_bwd<T>(a); } \
    static pt_status cu_xsa_##SFX(const pt_xsa_args *a) { return cu_xsa<T>(a); }                           \
    static pt_status cu_xsa_bwd_##SFX(const pt_xsa_args *a) { return cu_xsa_bwd<T>(a); }                   \
    static pt_status cu_act2_##SFX(const pt_act2_args *a) { return cu_act2<T>(a); }                        \
    static pt_status cu_act2_bwd_##SFX(const pt_act2_args *a) { return cu_act2_bwd<T>(a); }                \
    static pt_status cu_softcap_ce_##SFX(const pt_ce_args *a) { return cu_softcap_ce<T>(a); }              \
    static pt_status cu_softcap_ce_bwd_##SFX(const pt_ce_args *a) { return cu_softcap_ce_bwd<T>(a); }      \
    static pt_status cu_smear_##SFX(const pt_smear_args *a) { return cu_smear<T>(a); }                     \
    static pt_status cu_smear_bwd_##SFX(const pt_smear_args *a) { return cu_smear_bwd<T>(a); }             \
    PT_REGISTER_KERNEL(rms_norm, PT_DEV_CUDA, DT, cu_rms_norm_##SFX)                                       \
    PT_REGISTER_KERNEL(rms_norm_bwd, PT_DEV_CUDA, DT, cu_rms_norm_bwd_##SFX)                               \
    PT_REGISTER_KERNEL(rotary, PT_DEV_CUDA, DT, cu_rotary_##SFX)                                           \
    PT_REGISTER_KERNEL(attention, PT_DEV_CUDA, DT, cu_attention_##SFX)                                     \
    PT_REGISTER_KERNEL(attention_bwd, PT_DEV_CUDA, DT, cu_attention_bwd_##SFX)                             \
    PT_REGISTER_KERNEL(xsa, PT_DEV_CUDA, DT, cu_xsa_##SFX)                                                 \
    PT_REGISTER_KERNEL(xsa_bwd, PT_DEV_CUDA, DT, cu_xsa_bwd_##SFX)                                         \
    PT_REGISTER_KERNEL(act2, PT_DEV_CUDA, DT, cu_act2_##SFX)                                               \
    PT_REGISTER_KERNEL(act2_bwd, PT_DEV_CUDA, DT, cu_act2_bwd_##SFX)                                       \
    PT_REGISTER_KERNEL(softcap_ce, PT_DEV_CUDA, DT, cu_softcap_ce_##SFX)                                   \
    PT_REGISTER_KERNEL(softcap_ce_bwd, PT_DEV_CUDA, DT, cu_softcap_ce_bwd_##SFX)                           \
    PT_REGISTER_KERNEL(smear_gate, PT_DEV_CUDA, DT, cu_smear_##SFX)                                        \
    PT_REGISTER_KERNEL(smear_gate_bwd, PT_DEV_CUDA, DT, cu_smear_bwd_##SFX)

PT_FZ_REG(f32, float, PT_F32)
PT_FZ_REG(f64, double, PT_F64)
PT_REGISTER_KERNEL(bigram_hash, PT_DEV_CUDA, PT_I64, cu_bigram_hash)
