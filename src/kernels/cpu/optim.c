/* cpu/optim.c — CPU kernels of the optimizer family (signatures and formulas in pt_optim.h).
 *
 * Plain loops over contiguous f32 buffers, in PyTorch's operation order with f32 arithmetic so that a
 * step matches torch's single-tensor optimizers to the last bit or two; the Newton–Schulz iteration
 * uses OpenBLAS (cblas_sgemm) for its three matmuls per step. Large loops split over OpenMP threads.
 * This file is the oracle the CUDA kernels will be tested against.
 *
 * Dimension letters: R rows, C cols of one matrix; M = min(R, C), N = max(R, C) (NS works on the
 * [M, N] orientation so that A = X Xᵀ is the small M×M Gram matrix).
 *
 * Tests: tests/c/test_optim.c, tests/lua/test_optim.lua.
 */
#include <cblas.h> /* cblas_sgemm (OpenBLAS) */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../pt_dispatch.h"
#include "../pt_optim.h"

#define PT_OMP_MIN 32768

/* round a float to the nearest bf16 (ties to even; NaN stays NaN), returned as a float */
static inline float bf16r(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return f;
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    memcpy(&f, &u, 4);
    return f;
}
static inline float bf16_load(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline uint16_t bf16_store(float f) {
    uint32_t u;
    f = bf16r(f);
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)(u >> 16);
}

/* ---- AdamW ---- */
static void adamw_f32(const pt_adamw_args *a) {
    float *p = a->p, *m = a->m, *v = a->v;
    const float *g = a->g;
    const float decay = (float)a->decay, b1 = (float)a->beta1, b2 = (float)a->beta2;
    const float omb1 = (float)(1.0 - a->beta1), omb2 = (float)(1.0 - a->beta2);
    const float neg_step = (float)(-a->step_size), bc2s = (float)a->bc2_sqrt, eps = (float)a->eps;
    const int maximize = a->maximize;
#pragma omp parallel for if (a->n > PT_OMP_MIN)
    for (int64_t i = 0; i < a->n; i++) {
        float gi = maximize ? -g[i] : g[i];
        float pi = p[i] * decay;
        float mi = m[i] * b1 + omb1 * gi;
        float vi = v[i] * b2 + omb2 * gi * gi;
        float denom = sqrtf(vi) / bc2s + eps;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi + neg_step * mi / denom;
    }
}
PT_REGISTER_KERNEL(optim_adamw, PT_DEV_CPU, PT_F32, adamw_f32)

/* ---- SGD (PyTorch semantics: L2 weight decay added to the gradient) ---- */
static void sgd_f32(const pt_sgd_args *a) {
    float *p = a->p, *buf = a->buf;
    const float *g = a->g;
    const float lr = (float)(-a->lr), mu = (float)a->momentum, omd = (float)(1.0 - a->dampening);
    const float wd = (float)a->wd;
    const int use_wd = a->wd != 0, first = a->first, nesterov = a->nesterov, maximize = a->maximize;
#pragma omp parallel for if (a->n > PT_OMP_MIN)
    for (int64_t i = 0; i < a->n; i++) {
        float gi = maximize ? -g[i] : g[i];
        if (use_wd) gi = gi + wd * p[i];
        if (buf) {
            float bi = first ? gi : buf[i] * mu + omd * gi;
            buf[i] = bi;
            gi = nesterov ? gi + mu * bi : bi;
        }
        p[i] = p[i] + lr * gi;
    }
}
PT_REGISTER_KERNEL(optim_sgd, PT_DEV_CPU, PT_F32, sgd_f32)

/* ---- Muon momentum: buf ← μ·buf + g; u ← nesterov ? g + μ·buf : buf ---- */
static void momentum_f32(const pt_momentum_args *a) {
    float *buf = a->buf, *u = a->u;
    const float *g = a->g;
    const float mu = (float)a->momentum;
    const int nesterov = a->nesterov;
#pragma omp parallel for if (a->n > PT_OMP_MIN)
    for (int64_t i = 0; i < a->n; i++) {
        float bi = buf[i] * mu + g[i];
        buf[i] = bi;
        u[i] = nesterov ? g[i] + mu * bi : bi;
    }
}
PT_REGISTER_KERNEL(optim_momentum, PT_DEV_CPU, PT_F32, momentum_f32)

/* ---- Newton–Schulz ---- */
int64_t pt_ns_work_elems(int64_t rows, int64_t cols) {
    int64_t m = rows < cols ? rows : cols, n = rows < cols ? cols : rows;
    return 2 * m * n + 2 * m * m;
}

static inline void round_all(float *x, int64_t n, int on) {
    if (!on) return;
    for (int64_t i = 0; i < n; i++) x[i] = bf16r(x[i]);
}

/* one [R, C] matrix in place; work holds X [M,N], A [M,M], A2 [M,M], BX [M,N] */
static void ns_one(float *G, int64_t R, int64_t C, float *work, const pt_ns_args *a) {
    const int bf = (a->flags & PT_NS_BF16) != 0;
    const int tr = R > C;
    const int64_t M = tr ? C : R, N = tr ? R : C;
    float *X = work, *A = X + M * N, *A2 = A + M * M, *BX = A2 + M * M;

    /* X = bf16(G), in the [M, N] orientation */
    if (tr) {
        for (int64_t i = 0; i < R; i++)
            for (int64_t j = 0; j < C; j++) X[j * N + i] = G[i * C + j];
    } else {
        memcpy(X, G, sizeof(float) * (size_t)(M * N));
    }
    round_all(X, M * N, bf);

    if (a->flags & PT_NS_ROW_NORM) { /* MuonEq-R: row / max(‖row‖, 1e-7) */
        for (int64_t i = 0; i < M; i++) {
            double s = 0;
            for (int64_t j = 0; j < N; j++) s += (double)X[i * N + j] * X[i * N + j];
            float nr = (float)sqrt(s);
            if (bf) nr = bf16r(nr);
            if (!(nr >= 1e-7f)) nr = nr != nr ? nr : 1e-7f;
            for (int64_t j = 0; j < N; j++) X[i * N + j] = bf ? bf16r(X[i * N + j] / nr) : X[i * N + j] / nr;
        }
    }
    { /* X ← X / (‖X‖_F + 1e-7) */
        double s = 0;
        for (int64_t i = 0; i < M * N; i++) s += (double)X[i] * X[i];
        float nf = (float)sqrt(s);
        if (bf) nf = bf16r(nf);
        float den = nf + 1e-7f;
        if (bf) den = bf16r(den);
        for (int64_t i = 0; i < M * N; i++) X[i] = bf ? bf16r(X[i] / den) : X[i] / den;
    }
    for (int k = 0; k < a->steps; k++) {
        const double *cf = a->coeffs + 3 * (a->ncoeffs == 1 ? 0 : k);
        const float ca = (float)cf[0], cb = (float)cf[1], cc = (float)cf[2];
        /* A = X Xᵀ  [M, M] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)M, (int)N, 1.0f, X, (int)N, X, (int)N,
                    0.0f, A, (int)M);
        round_all(A, M * M, bf);
        /* A2 = A A, then B = b·A + c·A2 (into A2) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)M, (int)M, 1.0f, A, (int)M, A, (int)M,
                    0.0f, A2, (int)M);
        if (bf) {
            for (int64_t i = 0; i < M * M; i++)
                A2[i] = bf16r(bf16r(cb * A[i]) + bf16r(cc * bf16r(A2[i])));
        } else {
            for (int64_t i = 0; i < M * M; i++) A2[i] = cb * A[i] + cc * A2[i];
        }
        /* BX = B X  [M, N];  X = a·X + BX */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)M, 1.0f, A2, (int)M, X, (int)N,
                    0.0f, BX, (int)N);
        if (bf) {
            for (int64_t i = 0; i < M * N; i++) X[i] = bf16r(bf16r(ca * X[i]) + bf16r(BX[i]));
        } else {
            for (int64_t i = 0; i < M * N; i++) X[i] = ca * X[i] + BX[i];
        }
    }
    if (tr) {
        for (int64_t i = 0; i < R; i++)
            for (int64_t j = 0; j < C; j++) G[i * C + j] = X[j * N + i];
    } else {
        memcpy(G, X, sizeof(float) * (size_t)(M * N));
    }
}

static void ns_f32(const pt_ns_args *a) {
    float *x = a->x;
    for (int64_t b = 0; b < a->batch; b++) ns_one(x + b * a->rows * a->cols, a->rows, a->cols, a->work, a);
}
PT_REGISTER_KERNEL(optim_ns, PT_DEV_CPU, PT_F32, ns_f32)

/* ---- Muon apply: p ← p·(1 − lr·wd); p ← p − lr·R(f·u) (or − (lr·f)·R(u)) ---- */
static void apply_f32(const pt_apply_args *a) {
    float *p = a->p;
    const float *u = a->u;
    const int use_wd = a->wd != 0, mode = a->round;
    const float decay = (float)(1.0 - a->lr * a->wd), f = (float)a->factor;
    const float alpha = (float)(mode == PT_MUON_ROUND_UNIT ? -a->lr * a->factor : -a->lr);
#pragma omp parallel for if (a->n > PT_OMP_MIN)
    for (int64_t i = 0; i < a->n; i++) {
        float x = u[i];
        if (mode == PT_MUON_ROUND_UNIT) x = bf16r(x);
        else if (mode == PT_MUON_ROUND_SCALED) x = bf16r(x * f);
        else x = x * f;
        float pi = use_wd ? p[i] * decay : p[i];
        p[i] = pi + alpha * x;
    }
}
PT_REGISTER_KERNEL(optim_apply, PT_DEV_CPU, PT_F32, apply_f32)

/* ---- Σ x² (f64) and x ← x·s ---- */
static void sumsq_f32(const pt_sumsq_args *a) {
    const float *x = a->x;
    double s = 0;
#pragma omp parallel for reduction(+ : s) if (a->n > PT_OMP_MIN)
    for (int64_t i = 0; i < a->n; i++) s += (double)x[i] * (double)x[i];
    *a->out = s;
}
PT_REGISTER_KERNEL(optim_sumsq, PT_DEV_CPU, PT_F32, sumsq_f32)
static void sumsq_f64(const pt_sumsq_args *a) {
    const double *x = a->x;
    double s = 0;
#pragma omp parallel for reduction(+ : s) if (a->n > PT_OMP_MIN)
    for (int64_t i = 0; i < a->n; i++) s += x[i] * x[i];
    *a->out = s;
}
PT_REGISTER_KERNEL(optim_sumsq, PT_DEV_CPU, PT_F64, sumsq_f64)

static void scale_f32(const pt_scale_args *a) {
    float *x = a->x;
    const float s = (float)a->s;
#pragma omp parallel for if (a->n > PT_OMP_MIN)
    for (int64_t i = 0; i < a->n; i++) x[i] = x[i] * s;
}
PT_REGISTER_KERNEL(optim_scale, PT_DEV_CPU, PT_F32, scale_f32)
static void scale_f64(const pt_scale_args *a) {
    double *x = a->x;
#pragma omp parallel for if (a->n > PT_OMP_MIN)
    for (int64_t i = 0; i < a->n; i++) x[i] = x[i] * a->s;
}
PT_REGISTER_KERNEL(optim_scale, PT_DEV_CPU, PT_F64, scale_f64)

/* ---- EMA: ema ← ema + (1 − d)(w − ema) ---- */
static void ema_f32(const pt_ema_args *a) {
    float *e = a->ema;
    const float *w = a->w;
    const float k = (float)(1.0 - a->decay);
#pragma omp parallel for if (a->n > PT_OMP_MIN)
    for (int64_t i = 0; i < a->n; i++) e[i] = e[i] + k * (w[i] - e[i]);
}
PT_REGISTER_KERNEL(optim_ema, PT_DEV_CPU, PT_F32, ema_f32)

/* ---- SWA ---- */
static void swa_add_f32(const pt_swa_args *a) {
    float *s = a->sum;
    const float *w = a->w;
#pragma omp parallel for if (a->n > PT_OMP_MIN)
    for (int64_t i = 0; i < a->n; i++) s[i] = s[i] + w[i];
}
PT_REGISTER_KERNEL(optim_swa_add, PT_DEV_CPU, PT_F32, swa_add_f32)
static void swa_add_bf16(const pt_swa_args *a) {
    uint16_t *s = a->sum;
    const uint16_t *w = a->w;
#pragma omp parallel for if (a->n > PT_OMP_MIN)
    for (int64_t i = 0; i < a->n; i++) s[i] = bf16_store(bf16_load(s[i]) + bf16_load(w[i]));
}
PT_REGISTER_KERNEL(optim_swa_add, PT_DEV_CPU, PT_BF16, swa_add_bf16)

static void swa_avg_f32(const pt_swa_args *a) {
    const float *s = a->sum;
    float *o = a->out;
    const float c = (float)a->count;
#pragma omp parallel for if (a->n > PT_OMP_MIN)
    for (int64_t i = 0; i < a->n; i++) o[i] = s[i] / c;
}
PT_REGISTER_KERNEL(optim_swa_avg, PT_DEV_CPU, PT_F32, swa_avg_f32)
static void swa_avg_bf16(const pt_swa_args *a) {
    const uint16_t *s = a->sum;
    uint16_t *o = a->out;
    const float c = (float)a->count;
#pragma omp parallel for if (a->n > PT_OMP_MIN)
    for (int64_t i = 0; i < a->n; i++) o[i] = bf16_store(bf16_load(s[i]) / c);
}
PT_REGISTER_KERNEL(optim_swa_avg, PT_DEV_CPU, PT_BF16, swa_avg_bf16)
