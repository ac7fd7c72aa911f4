/* cuda/optim.cu — CUDA optimizer kernels (signatures and exact formulas in pt_optim.h; the CPU kernels in
 * src/kernels/cpu/optim.c are the oracle: the same float expressions in the same order, so AdamW, SGD,
 * Muon momentum/apply, EMA and SWA are meant to be bit-identical to the CPU).
 *
 *   optim_adamw, optim_sgd, optim_momentum, optim_apply, optim_scale, optim_ema   thread per element
 *   optim_sumsq        one block per chunk, f64 partial sums added on the host in chunk order
 *   optim_swa_add/avg  f32 and bf16 (rounded per add, as the PROTEUS record)
 *   optim_ns           Newton–Schulz per matrix: small kernels (transpose-copy, bf16 rounding, row and
 *                      Frobenius norms in f64, the b·A + c·A² and a·X + BX combinations) around cuBLAS
 *                      SGEMMs (f32 accumulate, bf16-rounded operands in bf16 mode as the CPU)
 * NOT YET RUN ON A GPU; tests/gpu/test_optim.lua compares each with the CPU.
 */
#include <cublas_v2.h>

#include "pt_cuda_common.cuh"

extern "C" {
#include "../pt_dispatch.h"
#include "../pt_optim.h"
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

/* ---------------------------------------------------------------- elementwise updates */
__global__ void k_adamw(pt_adamw_args a) {
    float *p = (float *)a.p, *m = (float *)a.m, *v = (float *)a.v;
    const float *g = (const float *)a.g;
    const float decay = (float)a.decay, b1 = (float)a.beta1, b2 = (float)a.beta2;
    const float omb1 = (float)(1.0 - a.beta1), omb2 = (float)(1.0 - a.beta2);
    const float neg_step = (float)(-a.step_size), bc2s = (float)a.bc2_sqrt, eps = (float)a.eps;
    GRID_LOOP(i, a.n) {
        float gi = a.maximize ? -g[i] : g[i];
        float pi = __fmul_rn(p[i], decay);
        float mi = __fadd_rn(__fmul_rn(m[i], b1), __fmul_rn(omb1, gi));
        float vi = __fadd_rn(__fmul_rn(v[i], b2), __fmul_rn(__fmul_rn(omb2, gi), gi));
        float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bc2s), eps);
        m[i] = mi;
        v[i] = vi;
        p[i] = __fadd_rn(pi, __fdiv_rn(__fmul_rn(neg_step, mi), denom));
    }
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
    GRID_LOOP(i, a.n) {
        float bi = __fadd_rn(__fmul_rn(buf[i], mu), g[i]);
        buf[i] = bi;
        u[i] = a.nesterov ? __fadd_rn(g[i], __fmul_rn(mu, bi)) : bi;
    }
}
static void cu_momentum(const pt_momentum_args *a) {
    if (a->n == 0) return;
    k_momentum<<<PT_OP_LAUNCH(a->n)>>>(*a);
    pt_cuda_launch_check("optim_momentum");
}

__global__ void k_apply(pt_apply_args a) {
    float *p = (float *)a.p;
    const float *u = (const float *)a.u;
    const float decay = (float)(1.0 - a.lr * a.wd), f = (float)a.factor;
    const float alpha = (float)(a.round == PT_MUON_ROUND_UNIT ? -a.lr * a.factor : -a.lr);
    GRID_LOOP(i, a.n) {
        float x = u[i];
        if (a.round == PT_MUON_ROUND_UNIT) x = pt_bf16r(x);
        else if (a.round == PT_MUON_ROUND_SCALED) x = pt_bf16r(__fmul_rn(x, f));
        else x = __fmul_rn(x, f);
        float pi = a.wd != 0 ? __fmul_rn(p[i], decay) : p[i];
        p[i] = __fadd_rn(pi, __fmul_rn(alpha, x));
    }
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
    GRID_LOOP(i, a.n) e[i] = __fadd_rn(e[i], __fmul_rn(k, __fsub_rn(w[i], e[i])));
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

/* ---------------------------------------------------------------- sum of squares (to a host double) */
#define PT_SUMSQ_CHUNKS 1024
template <typename T>
__global__ void k_sumsq(const T *x, int64_t n, double *part) {
    __shared__ double sh[PT_OP_THREADS];
    int64_t lo = n * blockIdx.x / gridDim.x, hi = n * (blockIdx.x + 1) / gridDim.x;
    double s = 0;
    for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) s += (double)x[i] * (double)x[i];
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k >>= 1) {
        if ((int)threadIdx.x < k) sh[threadIdx.x] += sh[threadIdx.x + k];
        __syncthreads();
    }
    if (threadIdx.x == 0) part[blockIdx.x] = sh[0];
}
template <typename T>
static void cu_sumsq(const pt_sumsq_args *a) {
    *a->out = 0;
    if (a->n == 0) return;
    int chunks = a->n < PT_SUMSQ_CHUNKS ? (int)a->n : PT_SUMSQ_CHUNKS;
    double *d = NULL, h[PT_SUMSQ_CHUNKS];
    if (cudaMalloc((void **)&d, sizeof(double) * chunks) != cudaSuccess) {
        pt_cuda_set_pending("optim_sumsq: cudaMalloc of %d doubles failed", chunks);
        return;
    }
    k_sumsq<T><<<chunks, PT_OP_THREADS, 0, pt_cuda_compute_stream()>>>((const T *)a->x, a->n, d);
    pt_cuda_launch_check("optim_sumsq");
    cudaMemcpyAsync(h, d, sizeof(double) * chunks, cudaMemcpyDeviceToHost, pt_cuda_compute_stream());
    cudaStreamSynchronize(pt_cuda_compute_stream());
    cudaFree(d);
    double s = 0;
    for (int c = 0; c < chunks; c++) s += h[c];
    *a->out = s;
}

/* ---------------------------------------------------------------- Newton–Schulz */
/* X [M,N] = G [R,C] (transposed when R > C), optionally bf16-rounded */
__global__ void k_ns_load(const float *G, float *X, int64_t R, int64_t C, int tr, int bf) {
    GRID_LOOP(e, R * C) {
        int64_t i = e / C, j = e % C;
        float v = G[e];
        if (bf) v = pt_bf16r(v);
        if (tr) X[j * R + i] = v;
        else X[e] = v;
    }
}
__global__ void k_ns_store(float *G, const float *X, int64_t R, int64_t C, int tr) {
    GRID_LOOP(e, R * C) {
        int64_t i = e / C, j = e % C;
        G[e] = tr ? X[j * R + i] : X[e];
    }
}
/* MuonEq-R: block per row, row / max(‖row‖, 1e-7) */
__global__ void k_ns_rownorm(float *X, int64_t N, int bf) {
    __shared__ double sh[PT_OP_THREADS];
    float *row = X + blockIdx.x * N;
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
/* one block: den = bf(bf(‖X‖_F) + 1e-7) into *den */
__global__ void k_ns_frob(const float *X, int64_t n, int bf, float *den) {
    __shared__ double sh[PT_OP_THREADS];
    double s = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += (double)X[i] * X[i];
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
        *den = bf ? pt_bf16r(d) : d;
    }
}
__global__ void k_ns_div(float *X, int64_t n, const float *den, int bf) {
    const float d = *den;
    GRID_LOOP(i, n) {
        float v = __fdiv_rn(X[i], d);
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

/* row-major C [m,n] = op(A) op(B) via the column-major transpose product */
static int pt_sgemm_rm(cublasHandle_t h, int ta, int tb, int64_t m, int64_t n, int64_t k, const float *A, int64_t lda,
                       const float *B, int64_t ldb, float *C, int64_t ldc) {
    const float one = 1.0f, zero = 0.0f;
    cublasStatus_t s = cublasSgemm(h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, (int)n, (int)m,
                                   (int)k, &one, B, (int)ldb, A, (int)lda, &zero, C, (int)ldc);
    if (s != CUBLAS_STATUS_SUCCESS) {
        pt_cuda_set_pending("optim_ns: cublasSgemm failed (status %d)", (int)s);
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
    const int64_t R = a->rows, C = a->cols;
    const int tr = R > C;
    const int64_t M = tr ? C : R, N = tr ? R : C;
    float *X = (float *)a->work, *A = X + M * N, *A2 = A + M * M, *BX = A2 + M * M;
    float *den = NULL;
    if (cudaMalloc((void **)&den, sizeof(float)) != cudaSuccess) {
        pt_cuda_set_pending("optim_ns: cudaMalloc of a scalar failed");
        return;
    }
    cudaStream_t st = pt_cuda_compute_stream();
    for (int64_t b = 0; b < a->batch; b++) {
        float *G = (float *)a->x + b * R * C;
        k_ns_load<<<pt_op_blocks(R * C), PT_OP_THREADS, 0, st>>>(G, X, R, C, tr, bf);
        if (a->flags & PT_NS_ROW_NORM) k_ns_rownorm<<<(unsigned)M, PT_OP_THREADS, 0, st>>>(X, N, bf);
        k_ns_frob<<<1, PT_OP_THREADS, 0, st>>>(X, M * N, bf, den);
        k_ns_div<<<pt_op_blocks(M * N), PT_OP_THREADS, 0, st>>>(X, M * N, den, bf);
        for (int k = 0; k < a->steps; k++) {
            const double *cf = a->coeffs + 3 * (a->ncoeffs == 1 ? 0 : k);
            if (pt_sgemm_rm(h, 0, 1, M, M, N, X, N, X, N, A, M)) goto out; /* A = X Xᵀ */
            if (bf) k_ns_round<<<pt_op_blocks(M * M), PT_OP_THREADS, 0, st>>>(A, M * M);
            if (pt_sgemm_rm(h, 0, 0, M, M, M, A, M, A, M, A2, M)) goto out; /* A2 = A A */
            k_ns_poly<<<pt_op_blocks(M * M), PT_OP_THREADS, 0, st>>>(A, A2, M * M, (float)cf[1], (float)cf[2], bf);
            if (pt_sgemm_rm(h, 0, 0, M, N, M, A2, M, X, N, BX, N)) goto out; /* BX = B X */
            k_ns_comb<<<pt_op_blocks(M * N), PT_OP_THREADS, 0, st>>>(X, BX, M * N, (float)cf[0], bf);
        }
        k_ns_store<<<pt_op_blocks(R * C), PT_OP_THREADS, 0, st>>>(G, X, R, C, tr);
    }
out:
    pt_cuda_launch_check("optim_ns");
    cudaStreamSynchronize(st);
    cudaFree(den);
}

/* ---------------------------------------------------------------- registration */
static void cu_scale_f32(const pt_scale_args *a) { cu_scale<float>(a); }
static void cu_scale_f64(const pt_scale_args *a) { cu_scale<double>(a); }
static void cu_sumsq_f32(const pt_sumsq_args *a) { cu_sumsq<float>(a); }
static void cu_sumsq_f64(const pt_sumsq_args *a) { cu_sumsq<double>(a); }
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
