/* cpu/reduce.c — CPU kernels of the reduction family and softmax (signatures in pt_reduce.h).
 *
 * Input is a contiguous [O, N, I] block (O outer rows, N reduced extent, I inner columns). Work is
 * split into tasks of (one outer row) x (a chunk of up to PT_RED_CH inner columns); each task
 * walks N once per pass with the chunk's accumulators on the stack, so the innermost loop runs
 * over contiguous columns. When I = 1 (the reduced dims are the last ones, the common case) a task
 * is one contiguous row, with unrolled f64 accumulators for the sums. Tasks run on OpenMP threads
 * when the tensor is large. f32 data accumulates in f64.
 *
 * Tested by tests/c/test_reduce.c (exact values, gradient checks) and tests/reference/
 * test_ops_torch.py (random inputs against PyTorch).
 */
#include <math.h>   /* sqrt, pow, exp, log, fabs, INFINITY */
#include <stdint.h>

#include "../pt_dispatch.h"
#include "../pt_reduce.h"

/* FP exceptions are never inspected in proteus: without trapping math, the selects and conversions
 * of pt_expf and the max loops can be if-converted and vectorised (gcc; clang does so already). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#define PT_RED_CH 64         /* inner columns per task */
#define PT_RED_OMP_MIN 32768 /* elements below which we stay on one thread */

static inline int64_t pt_red_width(int64_t inner) { return inner == 1 ? 1 : PT_RED_CH; }

/* ---- float reductions ---------------------------------------------------------------------- */
/* Generic column path: reduces cw columns (stride 1 between columns, stride I between the N rows).
 * Also used for I = 1 with cw = 1 by the ops that have no dedicated row path. */
#define PT_DEF_RED_FLOAT(SUF, T)                                                                   \
    static void red_cols_##SUF(const pt_reduce_args *a, const T *x, int64_t N, int64_t I, int64_t cw, \
                               T *y, int64_t *ix) {                                               \
        double acc[PT_RED_CH], mean[PT_RED_CH];                                                    \
        int64_t bi[PT_RED_CH];                                                                     \
        T best[PT_RED_CH];                                                                         \
        double p = a->p;                                                                           \
        switch ((pt_redop)a->op) {                                                                 \
        case PT_RED_SUM:                                                                           \
        case PT_RED_MEAN:                                                                          \
            for (int64_t j = 0; j < cw; j++) acc[j] = 0;                                           \
            for (int64_t k = 0; k < N; k++)                                                        \
                for (int64_t j = 0; j < cw; j++) acc[j] += (double)x[k * I + j];                   \
            for (int64_t j = 0; j < cw; j++)                                                       \
                y[j] = (T)(a->op == PT_RED_MEAN ? acc[j] / (double)N : acc[j]);                    \
            break;                                                                                 \
        case PT_RED_MAX:                                                                           \
        case PT_RED_ARGMAX:                                                                        \
        case PT_RED_MIN: {                                                                         \
            int mx = a->op != PT_RED_MIN;                                                          \
            for (int64_t j = 0; j < cw; j++) {                                                     \
                best[j] = x[j];                                                                    \
                bi[j] = 0;                                                                         \
            }                                                                                      \
            for (int64_t k = 1; k < N; k++)                                                        \
                for (int64_t j = 0; j < cw; j++) {                                                 \
                    T v = x[k * I + j], b = best[j];                                               \
                    /* first index wins ties; the first NaN wins over everything */                \
                    if (b == b && (v != v || (mx ? v > b : v < b))) {                              \
                        best[j] = v;                                                               \
                        bi[j] = k;                                                                 \
                    }                                                                              \
                }                                                                                  \
            for (int64_t j = 0; j < cw; j++) {                                                     \
                if (y) y[j] = best[j];                                                             \
                if (ix) ix[j] = bi[j];                                                             \
            }                                                                                      \
            break;                                                                                 \
        }                                                                                          \
        case PT_RED_NORM:                                                                          \
            for (int64_t j = 0; j < cw; j++) acc[j] = p == -INFINITY ? INFINITY : 0;               \
            for (int64_t k = 0; k < N; k++)                                                        \
                for (int64_t j = 0; j < cw; j++) {                                                 \
                    double v = fabs((double)x[k * I + j]);                                         \
                    if (p == 2) acc[j] += v * v;                                                   \
                    else if (p == 1) acc[j] += v;                                                  \
                    else if (p == INFINITY) acc[j] = (v > acc[j] || v != v) ? v : acc[j];          \
                    else if (p == -INFINITY) acc[j] = (v < acc[j] || v != v) ? v : acc[j];         \
                    else if (p == 0) acc[j] += v != 0;                                             \
                    else acc[j] += pow(v, p);                                                      \
                }                                                                                  \
            for (int64_t j = 0; j < cw; j++) {                                                     \
                double r = acc[j];                                                                 \
                if (p == 2) r = sqrt(r);                                                           \
                else if (p != 1 && p != 0 && !isinf(p)) r = pow(r, 1.0 / p);                       \
                y[j] = (T)r;                                                                       \
            }                                                                                      \
            break;                                                                                 \
        case PT_RED_VAR:                                                                           \
        case PT_RED_STD: {                                                                         \
            double div = (double)N - a->correction;                                                \
            if (div < 0) div = 0;                                                                  \
            for (int64_t j = 0; j < cw; j++) acc[j] = 0;                                           \
            for (int64_t k = 0; k < N; k++)                                                        \
                for (int64_t j = 0; j < cw; j++) acc[j] += (double)x[k * I + j];                   \
            for (int64_t j = 0; j < cw; j++) {                                                     \
                mean[j] = acc[j] / (double)N;                                                      \
                acc[j] = 0;                                                                        \
            }                                                                                      \
            for (int64_t k = 0; k < N; k++)                                                        \
                for (int64_t j = 0; j < cw; j++) {                                                 \
                    double d = (double)x[k * I + j] - mean[j];                                     \
                    acc[j] += d * d;                                                               \
                }                                                                                  \
            for (int64_t j = 0; j < cw; j++) {                                                     \
                double v = acc[j] / div;                                                           \
                y[j] = (T)(a->op == PT_RED_STD ? sqrt(v) : v);                                     \
            }                                                                                      \
            break;                                                                                 \
        }                                                                                          \
        default: break;                                                                            \
        }                                                                                          \
    }                                                                                              \
    /* sum of a contiguous row with four f64 accumulators (sq: of squares, after subtracting c) */  \
    static inline double red_rowsum_##SUF(const T *x, int64_t N, int sq, double c) {               \
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;                                                     \
        int64_t k = 0;                                                                             \
        if (sq) {                                                                                  \
            for (; k + 4 <= N; k += 4) {                                                           \
                double d0 = x[k] - c, d1 = x[k + 1] - c, d2 = x[k + 2] - c, d3 = x[k + 3] - c;     \
                s0 += d0 * d0; s1 += d1 * d1; s2 += d2 * d2; s3 += d3 * d3;                        \
            }                                                                                      \
            for (; k < N; k++) { double d = x[k] - c; s0 += d * d; }                               \
        } else {                                                                                   \
            for (; k + 4 <= N; k += 4) {                                                           \
                s0 += x[k]; s1 += x[k + 1]; s2 += x[k + 2]; s3 += x[k + 3];                        \
            }                                                                                      \
            for (; k < N; k++) s0 += x[k];                                                         \
        }                                                                                          \
        return (s0 + s1) + (s2 + s3);                                                              \
    }                                                                                              \
    static void red_##SUF(const pt_reduce_args *a) {                                               \
        int64_t O = a->outer, N = a->n, I = a->inner;                                              \
        int64_t w = pt_red_width(I), nch = (I + w - 1) / w, tasks = O * nch;                       \
        const T *X = a->x;                                                                         \
        T *Y = a->out;                                                                             \
        int rowfast = I == 1 && (a->op == PT_RED_SUM || a->op == PT_RED_MEAN || a->op == PT_RED_VAR || \
                                 a->op == PT_RED_STD || (a->op == PT_RED_NORM && a->p == 2));      \
        _Pragma("omp parallel for if (O * N * I > PT_RED_OMP_MIN && tasks > 1)")                   \
        for (int64_t t = 0; t < tasks; t++) {                                                      \
            int64_t o = t / nch, j0 = (t % nch) * w;                                               \
            int64_t cw = I - j0 < w ? I - j0 : w;                                                  \
            const T *x = X + o * N * I + j0;                                                       \
            T *y = Y ? Y + o * I + j0 : NULL;                                                      \
            int64_t *ix = a->idx ? a->idx + o * I + j0 : NULL;                                     \
            if (!rowfast) {                                                                        \
                red_cols_##SUF(a, x, N, I, cw, y, ix);                                             \
                continue;                                                                          \
            }                                                                                      \
            if (a->op == PT_RED_NORM) {                                                            \
                y[0] = (T)sqrt(red_rowsum_##SUF(x, N, 1, 0.0));                                    \
            } else if (a->op == PT_RED_SUM || a->op == PT_RED_MEAN) {                              \
                double s = red_rowsum_##SUF(x, N, 0, 0.0);                                         \
                y[0] = (T)(a->op == PT_RED_MEAN ? s / (double)N : s);                              \
            } else {                                                                               \
                double div = (double)N - a->correction;                                            \
                double m = red_rowsum_##SUF(x, N, 0, 0.0) / (double)N;                             \
                double v = red_rowsum_##SUF(x, N, 1, m) / (div < 0 ? 0 : div);                     \
                y[0] = (T)(a->op == PT_RED_STD ? sqrt(v) : v);                                     \
            }                                                                                      \
        }                                                                                          \
    }

PT_DEF_RED_FLOAT(f32, float)
PT_DEF_RED_FLOAT(f64, double)
PT_REGISTER_KERNEL(red, PT_DEV_CPU, PT_F32, red_f32)
PT_REGISTER_KERNEL(red, PT_DEV_CPU, PT_F64, red_f64)

/* ---- i64 reductions: SUM, MAX, MIN, ARGMAX (the front casts other integer dtypes to i64) ---- */
static void red_i64(const pt_reduce_args *a) {
    int64_t O = a->outer, N = a->n, I = a->inner;
    const int64_t *X = a->x;
    int64_t *Y = a->out;
    int mx = a->op != PT_RED_MIN;
#pragma omp parallel for if (O * N * I > PT_RED_OMP_MIN)
    for (int64_t t = 0; t < O * I; t++) {
        int64_t o = t / I, j = t % I;
        const int64_t *x = X + o * N * I + j;
        if (a->op == PT_RED_SUM) {
            uint64_t s = 0; /* wraps like torch instead of overflowing (UB) */
            for (int64_t k = 0; k < N; k++) s += (uint64_t)x[k * I];
            Y[t] = (int64_t)s;
            continue;
        }
        int64_t best = x[0], bi = 0;
        for (int64_t k = 1; k < N; k++) {
            int64_t v = x[k * I];
            if (mx ? v > best : v < best) {
                best = v;
                bi = k;
            }
        }
        if (Y) Y[t] = best;
        if (a->idx) a->idx[t] = bi;
    }
}
PT_REGISTER_KERNEL(red, PT_DEV_CPU, PT_I64, red_i64)

/* ---- red_scatter: out[o, idx[o,i], i] = g[o,i] (out zeroed by the front) ---- */
#define PT_DEF_SCATTER(SUF, T)                                                                     \
    static void red_scatter_##SUF(const pt_reduce_args *a) {                                       \
        int64_t O = a->outer, N = a->n, I = a->inner;                                              \
        const T *G = a->g;                                                                         \
        T *Y = a->out;                                                                             \
        for (int64_t t = 0; t < O * I; t++) {                                                      \
            int64_t o = t / I, j = t % I, k = a->gidx[t];                                          \
            if (k >= 0 && k < N) Y[(o * N + k) * I + j] = G[t];                                    \
        }                                                                                          \
    }
PT_DEF_SCATTER(f32, float)
PT_DEF_SCATTER(f64, double)
PT_REGISTER_KERNEL(red_scatter, PT_DEV_CPU, PT_F32, red_scatter_f32)
PT_REGISTER_KERNEL(red_scatter, PT_DEV_CPU, PT_F64, red_scatter_f64)

/* ---- softmax / log_softmax and their backward ---- */
/* exp for f32 that the compiler can vectorise (libm's expf is a scalar call): Cephes-style range
 * reduction x = n ln2 + r and a degree-5 polynomial on |r| <= ln2/2, ~1 ulp. exp(x) for
 * x < -87.3 (including -inf) is 0 (no subnormals), NaN stays NaN, large x saturates to inf. */
static inline float pt_expf(float x) {
    /* quiet comparisons (isless & co. do not trap on NaN), so the selects below vectorise */
    int nan = __builtin_isunordered(x, x), lo = __builtin_isless(x, -87.3f), hi = __builtin_isgreater(x, 88.7f);
    float xc = nan ? 0.0f : (lo ? -87.3f : (hi ? 88.7f : x));
    float v = xc * 1.44269504088896341f + 0.5f;
    float n = (float)(int32_t)v; /* floor via truncation (SSE2 has no vector floor) */
    n = __builtin_isgreater(n, v) ? n - 1.0f : n;
    float r = xc - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float e = p * r * r + r + 1.0f;
    union {
        uint32_t u;
        float f;
    } sc;
    sc.u = (uint32_t)((int32_t)n + 127) << 23;
    e *= sc.f;
    e = hi ? INFINITY : (lo ? 0.0f : e);
    return nan ? x : e;
}

#define PT_DEF_SOFTMAX(SUF, T, EXP, LOG)                                                           \
    static void softmax_##SUF(const pt_reduce_args *a) {                                           \
        int64_t O = a->outer, N = a->n, I = a->inner;                                              \
        int64_t w = pt_red_width(I), nch = (I + w - 1) / w, tasks = O * nch;                       \
        int lg = a->op == 1;                                                                       \
        _Pragma("omp parallel for if (O * N * I > PT_RED_OMP_MIN && tasks > 1)")                   \
        for (int64_t t = 0; t < tasks; t++) {                                                      \
            int64_t o = t / nch, j0 = (t % nch) * w;                                               \
            int64_t cw = I - j0 < w ? I - j0 : w;                                                  \
            const T *x = (const T *)a->x + o * N * I + j0;                                         \
            T *y = (T *)a->out + o * N * I + j0;                                                   \
            if (I == 1) { /* contiguous row: vectorised loops */                                   \
                T mx = -INFINITY;                                                                  \
                _Pragma("omp simd reduction(max : mx)")                                            \
                for (int64_t k = 0; k < N; k++) mx = x[k] > mx ? x[k] : mx;                        \
                if (isinf(mx)) mx = 0; /* NaN rows stay NaN through exp */                         \
                double sum = 0;                                                                    \
                if (lg) {                                                                          \
                    _Pragma("omp simd reduction(+ : sum)")                                         \
                    for (int64_t k = 0; k < N; k++) sum += EXP(x[k] - mx);                         \
                } else {                                                                           \
                    _Pragma("omp simd reduction(+ : sum)")                                         \
                    for (int64_t k = 0; k < N; k++) {                                              \
                        T e = EXP(x[k] - mx);                                                      \
                        y[k] = e;                                                                  \
                        sum += e;                                                                  \
                    }                                                                              \
                }                                                                                  \
                if (lg) {                                                                          \
                    T ls = (T)log(sum);                                                            \
                    _Pragma("omp simd")                                                            \
                    for (int64_t k = 0; k < N; k++) y[k] = (x[k] - mx) - ls;                       \
                } else {                                                                           \
                    T inv = (T)(1.0 / sum);                                                        \
                    _Pragma("omp simd")                                                            \
                    for (int64_t k = 0; k < N; k++) y[k] *= inv;                                   \
                }                                                                                  \
                continue;                                                                          \
            }                                                                                      \
            T m[PT_RED_CH];                                                                        \
            double s[PT_RED_CH];                                                                   \
            for (int64_t j = 0; j < cw; j++) {                                                     \
                m[j] = -INFINITY;                                                                  \
                s[j] = 0;                                                                          \
            }                                                                                      \
            for (int64_t k = 0; k < N; k++)                                                        \
                for (int64_t j = 0; j < cw; j++) {                                                 \
                    T v = x[k * I + j];                                                            \
                    m[j] = (v > m[j] || v != v) ? v : m[j];                                        \
                }                                                                                  \
            for (int64_t j = 0; j < cw; j++)                                                       \
                if (isinf(m[j])) m[j] = 0; /* all -inf row: keep exp(x - m) defined */             \
            for (int64_t k = 0; k < N; k++)                                                        \
                for (int64_t j = 0; j < cw; j++) {                                                 \
                    T e = EXP(x[k * I + j] - m[j]);                                                \
                    if (!lg) y[k * I + j] = e;                                                     \
                    s[j] += e;                                                                     \
                }                                                                                  \
            if (lg) {                                                                              \
                for (int64_t j = 0; j < cw; j++) s[j] = log(s[j]);                                 \
                for (int64_t k = 0; k < N; k++)                                                    \
                    for (int64_t j = 0; j < cw; j++)                                               \
                        y[k * I + j] = (T)((double)(x[k * I + j] - m[j]) - s[j]);                  \
            } else {                                                                               \
                for (int64_t j = 0; j < cw; j++) s[j] = 1.0 / s[j];                                \
                for (int64_t k = 0; k < N; k++)                                                    \
                    for (int64_t j = 0; j < cw; j++) y[k * I + j] = (T)(y[k * I + j] * s[j]);      \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    static void softmax_bwd_##SUF(const pt_reduce_args *a) {                                       \
        int64_t O = a->outer, N = a->n, I = a->inner;                                              \
        int64_t w = pt_red_width(I), nch = (I + w - 1) / w, tasks = O * nch;                       \
        int lg = a->op == 1;                                                                       \
        _Pragma("omp parallel for if (O * N * I > PT_RED_OMP_MIN && tasks > 1)")                   \
        for (int64_t t = 0; t < tasks; t++) {                                                      \
            int64_t o = t / nch, j0 = (t % nch) * w;                                               \
            int64_t cw = I - j0 < w ? I - j0 : w, base = o * N * I + j0;                           \
            const T *y = (const T *)a->y + base, *g = (const T *)a->g + base;                      \
            T *dx = (T *)a->out + base;                                                            \
            if (I == 1) {                                                                          \
                double sum = 0;                                                                    \
                if (lg) {                                                                          \
                    _Pragma("omp simd reduction(+ : sum)")                                         \
                    for (int64_t k = 0; k < N; k++) sum += g[k];                                   \
                } else {                                                                           \
                    _Pragma("omp simd reduction(+ : sum)")                                         \
                    for (int64_t k = 0; k < N; k++) sum += (double)(g[k] * y[k]);                  \
                }                                                                                  \
                T ts = (T)sum;                                                                     \
                if (lg) {                                                                          \
                    _Pragma("omp simd")                                                            \
                    for (int64_t k = 0; k < N; k++) dx[k] = g[k] - EXP(y[k]) * ts;                 \
                } else {                                                                           \
                    _Pragma("omp simd")                                                            \
                    for (int64_t k = 0; k < N; k++) dx[k] = y[k] * (g[k] - ts);                    \
                }                                                                                  \
                continue;                                                                          \
            }                                                                                      \
            double s[PT_RED_CH];                                                                   \
            for (int64_t j = 0; j < cw; j++) s[j] = 0;                                             \
            for (int64_t k = 0; k < N; k++)                                                        \
                for (int64_t j = 0; j < cw; j++)                                                   \
                    s[j] += lg ? (double)g[k * I + j] : (double)g[k * I + j] * y[k * I + j];       \
            for (int64_t k = 0; k < N; k++)                                                        \
                for (int64_t j = 0; j < cw; j++) {                                                 \
                    int64_t q = k * I + j;                                                         \
                    dx[q] = lg ? (T)(g[q] - EXP(y[q]) * (T)s[j]) : (T)(y[q] * (g[q] - (T)s[j]));   \
                }                                                                                  \
        }                                                                                          \
    }
PT_DEF_SOFTMAX(f32, float, pt_expf, logf)
PT_DEF_SOFTMAX(f64, double, exp, log)
PT_REGISTER_KERNEL(softmax, PT_DEV_CPU, PT_F32, softmax_f32)
PT_REGISTER_KERNEL(softmax, PT_DEV_CPU, PT_F64, softmax_f64)
PT_REGISTER_KERNEL(softmax_bwd, PT_DEV_CPU, PT_F32, softmax_bwd_f32)
PT_REGISTER_KERNEL(softmax_bwd, PT_DEV_CPU, PT_F64, softmax_bwd_f64)
