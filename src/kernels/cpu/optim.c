/* cpu/optim.c — CPU kernels of the optimizer family (signatures and formulas in pt_optim.h).
 *
 * Plain loops over contiguous f32 buffers, in PyTorch's operation order with f32 arithmetic so that a
 * step matches torch's single-tensor optimizers to the last bit or two; the Newton–Schulz iteration
 * uses OpenBLAS (cblas_sgemm) for its three matmuls per step. Large loops split over OpenMP threads.
 * This file is the oracle the CUDA kernels will be tested against. The "_multi" kernels loop over
 * their tensor lists and run the per-tensor loops (the same static functions), with the step scalars
 * of each tensor's row, so they are bitwise the per-tensor kernels.
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

/* ---- AdamW (r = the PT_ADAMW_* row; the per-tensor kernel builds one from its arguments) ---- */
static void adamw_span(int64_t n, float *p, const float *g, float *m, float *v, const double *r) {
    const float decay = (float)r[PT_ADAMW_DECAY], b1 = (float)r[PT_ADAMW_BETA1], b2 = (float)r[PT_ADAMW_BETA2];
    const float omb1 = (float)(1.0 - r[PT_ADAMW_BETA1]), omb2 = (float)(1.0 - r[PT_ADAMW_BETA2]);
    const float neg_step = (float)(-r[PT_ADAMW_STEP_SIZE]), bc2s = (float)r[PT_ADAMW_BC2_SQRT];
    const float eps = (float)r[PT_ADAMW_EPS];
    const int maximize = r[PT_ADAMW_MAXIMIZE] != 0;
#pragma omp parallel for if (n > PT_OMP_MIN)
    for (int64_t i = 0; i < n; i++) {
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
static void adamw_f32(const pt_adamw_args *a) {
    double r[PT_ADAMW_NSCAL];
    r[PT_ADAMW_DECAY] = a->decay;
    r[PT_ADAMW_BETA1] = a->beta1;
    r[PT_ADAMW_BETA2] = a->beta2;
    r[PT_ADAMW_STEP_SIZE] = a->step_size;
    r[PT_ADAMW_BC2_SQRT] = a->bc2_sqrt;
    r[PT_ADAMW_EPS] = a->eps;
    r[PT_ADAMW_MAXIMIZE] = a->maximize != 0;
    adamw_span(a->n, a->p, a->g, a->m, a->v, r);
}
PT_REGISTER_KERNEL(optim_adamw, PT_DEV_CPU, PT_F32, adamw_f32)
static void adamw_multi_f32(const pt_mt_args *a) {
    for (int j = 0; j < a->n; j++)
        adamw_span(a->numel[j], a->t[0][j], a->t[1][j], a->t[2][j], a->t[3][j], a->scal + j * a->scal_stride);
}
PT_REGISTER_KERNEL(optim_adamw_multi, PT_DEV_CPU, PT_F32, adamw_multi_f32)

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
static void momentum_span(int64_t n, const float *g, float *buf, float *u, double momentum, int nesterov) {
    const float mu = (float)momentum;
#pragma omp parallel for if (n > PT_OMP_MIN)
    for (int64_t i = 0; i < n; i++) {
        float bi = buf[i] * mu + g[i];
        buf[i] = bi;
        u[i] = nesterov ? g[i] + mu * bi : bi;
    }
}
static void momentum_f32(const pt_momentum_args *a) { momentum_span(a->n, a->g, a->buf, a->u, a->momentum, a->nesterov); }
PT_REGISTER_KERNEL(optim_momentum, PT_DEV_CPU, PT_F32, momentum_f32)
static void momentum_multi_f32(const pt_mt_args *a) {
    for (int j = 0; j < a->n; j++)
        momentum_span(a->numel[j], a->t[0][j], a->t[1][j], a->t[2][j], a->scal[j * a->scal_stride + PT_MUON_MOMENTUM],
                      a->flags);
}
PT_REGISTER_KERNEL(optim_momentum_multi, PT_DEV_CPU, PT_F32, momentum_multi_f32)

/* ---- Newton–Schulz ---- */
int64_t pt_ns_work_elems(int64_t slots, int64_t rows, int64_t cols) {
    int64_t m = rows < cols ? rows : cols, n = rows < cols ? cols : rows;
    return slots * (2 * m * n + 2 * m * m + 1);
}

static inline void round_all(float *x, int64_t n, int on) {
    if (!on) return;
    for (int64_t i = 0; i < n; i++) x[i] = bf16r(x[i]);
}

/* one [R, C] matrix in place, in slot 0 of the work layout (pt_optim.h): X [M,N], A [M,M], A2 [M,M], BX [M,N] */
static void ns_one(float *G, int64_t R, int64_t C, float *work, const pt_ns_args *a) {
    const int bf = (a->flags & PT_NS_BF16) != 0;
    const int tr = R > C;
    const int64_t M = tr ? C : R, N = tr ? R : C, S = a->slots;
    float *X = work, *A = X + S * M * N, *A2 = A + S * M * M, *BX = A2 + S * M * M;

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
static void apply_span(int64_t n, float *p, const float *u, double lr, double wd, double factor, int mode) {
    const int use_wd = wd != 0;
    const float decay = (float)(1.0 - lr * wd), f = (float)factor;
    const float alpha = (float)(mode == PT_MUON_ROUND_UNIT ? -lr * factor : -lr);
#pragma omp parallel for if (n > PT_OMP_MIN)
    for (int64_t i = 0; i < n; i++) {
        float x = u[i];
        if (mode == PT_MUON_ROUND_UNIT) x = bf16r(x);
        else if (mode == PT_MUON_ROUND_SCALED) x = bf16r(x * f);
        else x = x * f;
        float pi = use_wd ? p[i] * decay : p[i];
        p[i] = pi + alpha * x;
    }
}
static void apply_f32(const pt_apply_args *a) { apply_span(a->n, a->p, a->u, a->lr, a->wd, a->factor, a->round); }
PT_REGISTER_KERNEL(optim_apply, PT_DEV_CPU, PT_F32, apply_f32)
static void apply_multi_f32(const pt_mt_args *a) {
    for (int j = 0; j < a->n; j++) {
        const double *r = a->scal + j * a->scal_stride;
        apply_span(a->numel[j], a->t[0][j], a->t[1][j], r[PT_MUON_LR], r[PT_MUON_WD], r[PT_MUON_FACTOR], a->flags);
    }
}
PT_REGISTER_KERNEL(optim_apply_multi, PT_DEV_CPU, PT_F32, apply_multi_f32)

/* ---- Σ x² (f64) and x ← x·s ----
 * The sum is deterministic whatever the thread count: up to PT_OMP_MIN elements in one sequential
 * pass, above that PT_SUMSQ_CPU_PARTS fixed slices summed in parallel, then added in slice order. */
#define PT_SUMSQ_CPU_PARTS 64
#define SUMSQ_SPAN(NAME, T)                                                                  \
    static double NAME(const T *x, int64_t n) {                                              \
        if (n <= PT_OMP_MIN) {                                                               \
            double s = 0;                                                                    \
            for (int64_t i = 0; i < n; i++) s += (double)x[i] * (double)x[i];                \
            return s;                                                                        \
        }                                                                                    \
        double part[PT_SUMSQ_CPU_PARTS];                                                     \
        _Pragma("omp parallel for") for (int b = 0; b < PT_SUMSQ_CPU_PARTS; b++) {           \
            int64_t lo = n * b / PT_SUMSQ_CPU_PARTS, hi = n * (b + 1) / PT_SUMSQ_CPU_PARTS;  \
            double s = 0;                                                                    \
            for (int64_t i = lo; i < hi; i++) s += (double)x[i] * (double)x[i];              \
            part[b] = s;                                                                     \
        }                                                                                    \
        double s = 0;                                                                        \
        for (int b = 0; b < PT_SUMSQ_CPU_PARTS; b++) s += part[b];                           \
        return s;                                                                            \
    }
SUMSQ_SPAN(sumsq_span_f32, float)
SUMSQ_SPAN(sumsq_span_f64, double)

static void sumsq_f32(const pt_sumsq_args *a) { *a->out = sumsq_span_f32(a->x, a->n); }
PT_REGISTER_KERNEL(optim_sumsq, PT_DEV_CPU, PT_F32, sumsq_f32)
static void sumsq_f64(const pt_sumsq_args *a) { *a->out = sumsq_span_f64(a->x, a->n); }
PT_REGISTER_KERNEL(optim_sumsq, PT_DEV_CPU, PT_F64, sumsq_f64)
static void sumsq_multi_f32(const pt_mt_args *a) {
    for (int j = 0; j < a->n; j++) a->sums[j] = sumsq_span_f32(a->t[0][j], a->numel[j]);
}
PT_REGISTER_KERNEL(optim_sumsq_multi, PT_DEV_CPU, PT_F32, sumsq_multi_f32)
static void sumsq_multi_f64(const pt_mt_args *a) {
    for (int j = 0; j < a->n; j++) a->sums[j] = sumsq_span_f64(a->t[0][j], a->numel[j]);
}
PT_REGISTER_KERNEL(optim_sumsq_multi, PT_DEV_CPU, PT_F64, sumsq_multi_f64)

/* the global norm from the per-tensor sums, added in order (as pt_clip_grad_norm does on the host) */
static void norm_f64(const pt_norm_args *a) {
    double total = 0;
    for (int64_t j = 0; j < a->n; j++) total += a->sums[j];
    *a->norm = sqrt(total);
}
PT_REGISTER_KERNEL(optim_norm, PT_DEV_CPU, PT_F64, norm_f64)

static void scale_span_f32(int64_t n, float *x, double s64) {
    const float s = (float)s64;
#pragma omp parallel for if (n > PT_OMP_MIN)
    for (int64_t i = 0; i < n; i++) x[i] = x[i] * s;
}
static void scale_span_f64(int64_t n, double *x, double s) {
#pragma omp parallel for if (n > PT_OMP_MIN)
    for (int64_t i = 0; i < n; i++) x[i] = x[i] * s;
}
static void scale_f32(const pt_scale_args *a) { scale_span_f32(a->n, a->x, a->s); }
PT_REGISTER_KERNEL(optim_scale, PT_DEV_CPU, PT_F32, scale_f32)
static void scale_f64(const pt_scale_args *a) { scale_span_f64(a->n, a->x, a->s); }
PT_REGISTER_KERNEL(optim_scale, PT_DEV_CPU, PT_F64, scale_f64)

/* clip: coef = max/(norm + 1e-6) from the norm in memory; nothing when max <= 0, the norm is not
 * finite or coef >= 1 (the conditions of pt_clip_grad_norm) */
static int clip_coef(const pt_mt_args *a, double *coef) {
    double norm = a->scal[0];
    if (!(a->max_norm > 0) || !isfinite(norm)) return 0;
    *coef = a->max_norm / (norm + 1e-6);
    return *coef < 1.0;
}
static void scale_multi_f32(const pt_mt_args *a) {
    double c;
    if (!clip_coef(a, &c)) return;
    for (int j = 0; j < a->n; j++) scale_span_f32(a->numel[j], a->t[0][j], c);
}
PT_REGISTER_KERNEL(optim_scale_multi, PT_DEV_CPU, PT_F32, scale_multi_f32)
static void scale_multi_f64(const pt_mt_args *a) {
    double c;
    if (!clip_coef(a, &c)) return;
    for (int j = 0; j < a->n; j++) scale_span_f64(a->numel[j], a->t[0][j], c);
}
PT_REGISTER_KERNEL(optim_scale_multi, PT_DEV_CPU, PT_F64, scale_multi_f64)

/* ---- EMA: ema ← ema + (1 − d)(w − ema) ---- */
static void ema_span(int64_t n, float *e, const float *w, double decay) {
    const float k = (float)(1.0 - decay);
#pragma omp parallel for if (n > PT_OMP_MIN)
    for (int64_t i = 0; i < n; i++) e[i] = e[i] + k * (w[i] - e[i]);
}
static void ema_f32(const pt_ema_args *a) { ema_span(a->n, a->ema, a->w, a->decay); }
PT_REGISTER_KERNEL(optim_ema, PT_DEV_CPU, PT_F32, ema_f32)
static void ema_multi_f32(const pt_mt_args *a) {
    for (int j = 0; j < a->n; j++) ema_span(a->numel[j], a->t[0][j], a->t[1][j], a->scal[j * a->scal_stride]);
}
PT_REGISTER_KERNEL(optim_ema_multi, PT_DEV_CPU, PT_F32, ema_multi_f32)

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
