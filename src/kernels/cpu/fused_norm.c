/* cpu/fused_norm.c — CPU kernels of the fused RMS-norm prologues (signatures and math in
 * pt_fused_norm.h): mix_rms_norm, mix_bwd, rms_norm_rotary, rms_norm_rotary_bwd,
 * for f32 and f64. The oracle of cuda/fused_norm.cu.
 *
 * Bitwise contract: every value is rounded where the unfused composition rounds it — products and sums
 * in the element type (fl(x·wx) + fl(x0·w0), the cos/sin table and the rotation of cpu/fused_tmpl.h),
 * the norm's sum of squares and the backward's dot products in f64 in index order, the weight
 * gradients summed in f64 over the rows in order and rounded once (ew_sum_to's order). So the fused ops
 * give the same bits as pt_rms_norm / pt_rotary / pt_mul / pt_add and their backwards on this target
 * (x86-64 without -march: nothing is contracted into FMAs). OpenMP splits rows or column blocks; no
 * sum depends on the thread count.
 *
 * The kernel bodies are written once below and instantiated for float and double by including this
 * file into itself (PT_FNORM_BODY). Tests: tests/c/test_fused_norm.c.
 */
#ifndef PT_FNORM_BODY

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h> /* malloc, calloc, free */

#include "../pt_dispatch.h"
#include "../pt_fused_norm.h"

#define PT_FNORM_OMP_MIN 32768 /* elements below which a kernel runs on one thread */
#define PT_FNORM_COLS 64       /* columns per task of the weight-gradient sums */

#define PT_FN_CAT_(a, b) a##_##b
#define PT_FN_CAT(a, b) PT_FN_CAT_(a, b)

#define PT_FNORM_BODY
#define real float
#define SUF f32
#define POW powf
#define COS cosf
#define SIN sinf
#include "fused_norm.c"
#undef real
#undef SUF
#undef POW
#undef COS
#undef SIN

#define real double
#define SUF f64
#define POW pow
#define COS cos
#define SIN sin
#include "fused_norm.c"
#undef real
#undef SUF
#undef POW
#undef COS
#undef SIN
#undef PT_FNORM_BODY

PT_REGISTER_KERNEL(mix_rms_norm, PT_DEV_CPU, PT_F32, mix_rms_norm_f32)
PT_REGISTER_KERNEL(mix_rms_norm, PT_DEV_CPU, PT_F64, mix_rms_norm_f64)
PT_REGISTER_KERNEL(mix_bwd, PT_DEV_CPU, PT_F32, mix_bwd_f32)
PT_REGISTER_KERNEL(mix_bwd, PT_DEV_CPU, PT_F64, mix_bwd_f64)
PT_REGISTER_KERNEL(rms_norm_rotary, PT_DEV_CPU, PT_F32, rms_norm_rotary_f32)
PT_REGISTER_KERNEL(rms_norm_rotary, PT_DEV_CPU, PT_F64, rms_norm_rotary_f64)
PT_REGISTER_KERNEL(rms_norm_rotary_bwd, PT_DEV_CPU, PT_F32, rms_norm_rotary_bwd_f32)
PT_REGISTER_KERNEL(rms_norm_rotary_bwd, PT_DEV_CPU, PT_F64, rms_norm_rotary_bwd_f64)

#else /* ---------------- PT_FNORM_BODY: the kernels for one element type ---------------- */

#define FN(name) PT_FN_CAT(name, SUF)

/* ---------------- mix + rms_norm ---------------- */
static pt_status FN(mix_rms_norm)(const pt_mixnorm_args *a) {
    const real *x = a->x, *x0 = a->x0, *wx = a->wx, *w0 = a->w0;
    real *y = a->y, *h = a->h, *rs = a->rstd;
    const int64_t n = a->n, c = a->c;
    const real s0 = (real)a->x0_scale, scale = (real)a->scale;
    const int scaled0 = a->x0_scale != 1.0, apply = a->scale != 1.0;
#pragma omp parallel for if (n * c > PT_FNORM_OMP_MIN)
    for (int64_t i = 0; i < n; i++) {
        const real *xi = x + i * c, *x0i = x0 + i * c;
        real *yi = y + i * c, *hi = h + i * c;
        /* y: fl(fl(x·wx) + fl(x0·w0)), with fl(·s0) on the x0 term when s0 != 1 (the unfused order) */
        for (int64_t j = 0; j < c; j++) {
            real u = x0i[j] * w0[j];
            if (scaled0) u = u * s0;
            const real v = wx ? xi[j] * wx[j] : xi[j];
            yi[j] = v + u;
        }
        double ss = 0;
        for (int64_t j = 0; j < c; j++) ss += (double)yi[j] * (double)yi[j];
        const real r = (real)(1.0 / sqrt(ss / (double)c + a->eps));
        rs[i] = r;
        for (int64_t j = 0; j < c; j++) {
            const real v = yi[j] * r;
            hi[j] = apply ? v * scale : v;
        }
    }
    return PT_OK;
}

static pt_status FN(mix_bwd)(const pt_mixnorm_args *a) {
    const real *x = a->x, *x0 = a->x0, *wx = a->wx, *w0 = a->w0, *g = a->g;
    real *dx = a->dx, *dx0 = a->dx0;
    const int64_t n = a->n, c = a->c;
    const real s0 = (real)a->x0_scale;
    const int scaled0 = a->x0_scale != 1.0;
    if (dx || dx0) {
#pragma omp parallel for if (n * c > PT_FNORM_OMP_MIN)
        for (int64_t i = 0; i < n; i++) {
            const real *gi = g + i * c;
            if (dx) {
                real *di = dx + i * c;
                for (int64_t j = 0; j < c; j++) di[j] = wx ? gi[j] * wx[j] : gi[j];
            }
            if (dx0) {
                real *di = dx0 + i * c;
                for (int64_t j = 0; j < c; j++) {
                    const real gs = scaled0 ? gi[j] * s0 : gi[j];
                    di[j] = gs * w0[j];
                }
            }
        }
    }
    if (a->dwx || a->dw0) {
        /* per column, Σ over the rows in order in f64, rounded once (ew_sum_to's order); tasks are
         * blocks of columns, so the order does not depend on the thread count */
        const int64_t nb = (c + PT_FNORM_COLS - 1) / PT_FNORM_COLS;
        real *dwx = a->dwx, *dw0 = a->dw0;
#pragma omp parallel for if (n * c > PT_FNORM_OMP_MIN)
        for (int64_t b = 0; b < nb; b++) {
            const int64_t j0 = b * PT_FNORM_COLS, m = c - j0 < PT_FNORM_COLS ? c - j0 : PT_FNORM_COLS;
            double ax[PT_FNORM_COLS] = {0}, a0[PT_FNORM_COLS] = {0};
            for (int64_t i = 0; i < n; i++) {
                const real *gi = g + i * c + j0, *xi = x + i * c + j0, *x0i = x0 + i * c + j0;
                if (dwx)
                    for (int64_t j = 0; j < m; j++) ax[j] += (double)(gi[j] * xi[j]);
                if (dw0)
                    for (int64_t j = 0; j < m; j++) {
                        const real gs = scaled0 ? gi[j] * s0 : gi[j];
                        a0[j] += (double)(gs * x0i[j]);
                    }
            }
            for (int64_t j = 0; j < m; j++) {
                if (dwx) dwx[j0 + j] = (real)ax[j];
                if (dw0) dw0[j0 + j] = (real)a0[j];
            }
        }
    }
    return PT_OK;
}

/* ---------------- rms_norm + rotary (+ gain) ---------------- */

/* cos/sin of every position t < T (t + offset) and pair j < r/2: tab[t][0..half) = cos,
 * tab[t][half..r) = sin, computed in real exactly as cpu/fused_tmpl.h's rotary_table. NULL on OOM. */
static real *FN(normrot_table)(const pt_normrot_args *a) {
    const int64_t half = a->r / 2, TT = a->T;
    real *tab = malloc(sizeof(real) * (size_t)(TT * 2 * half > 0 ? TT * 2 * half : 1));
    if (!tab) return NULL;
#pragma omp parallel for if (TT * half > PT_FNORM_OMP_MIN / 8)
    for (int64_t t = 0; t < TT; t++) {
        real *cs = tab + t * 2 * half, *sn = cs + half;
        for (int64_t j = 0; j < half; j++) {
            real e = (real)(2 * j) / (real)a->r;
            real inv = (real)1 / POW((real)a->base, e);
            real ang = (real)(t + a->offset) * inv;
            cs[j] = COS(ang);
            sn[j] = SIN(ang);
        }
    }
    return tab;
}

/* the normalised, rotated row (before the gain): o = rotate(x·r) */
static void FN(normrot_row)(const real *xi, real r, const real *cs, const real *sn, int64_t half, int64_t D,
                            real *o) {
    for (int64_t j = 0; j < half; j++) {
        const real x1 = xi[j] * r, x2 = xi[half + j] * r, s = sn[j];
        o[j] = x1 * cs[j] + x2 * s;
        o[half + j] = -x1 * s + x2 * cs[j];
    }
    for (int64_t d = 2 * half; d < D; d++) o[d] = xi[d] * r;
}

static pt_status FN(rms_norm_rotary)(const pt_normrot_args *a) {
    const int64_t TT = a->T, H = a->H, D = a->D, half = a->r / 2, rows = a->B * TT * H;
    const real *x = a->x, *gain = a->gain;
    real *y = a->y, *rs = a->rstd;
    real *tab = FN(normrot_table)(a);
    if (!tab) return PT_FAIL(PT_ERR_OOM, "rms_norm_rotary: out of host memory for the cos/sin table (T = %lld)",
                             (long long)TT);
#pragma omp parallel for if (rows * D > PT_FNORM_OMP_MIN)
    for (int64_t row = 0; row < rows; row++) {
        const int64_t t = (row / H) % TT;
        const real *xi = x + row * D, *cs = tab + t * 2 * half;
        real *yi = y + row * D;
        double ss = 0;
        for (int64_t d = 0; d < D; d++) ss += (double)xi[d] * (double)xi[d];
        const real r = (real)(1.0 / sqrt(ss / (double)D + a->eps));
        rs[row] = r;
        FN(normrot_row)(xi, r, cs, cs + half, half, D, yi);
        if (gain) {
            const real gh = gain[row % H];
            for (int64_t d = 0; d < D; d++) yi[d] = yi[d] * gh;
        }
    }
    free(tab);
    return PT_OK;
}

/* Per row: gr = g·gain (or g); dgain partial = Σ_d fl(g·rot) in f64; gn = rotate⁻¹(gr);
 * dx = r·(gn − x·r²·mean(gn·x)). The dgain partials of the rows are summed per head over (b, t) in
 * order (ew_sum_to's order for the [B,T,H,D] -> [H,1] reduction). */
static pt_status FN(rms_norm_rotary_bwd)(const pt_normrot_args *a) {
    const int64_t TT = a->T, H = a->H, D = a->D, half = a->r / 2, rows = a->B * TT * H;
    const real *x = a->x, *gain = a->gain, *g = a->g, *rs = a->rstd;
    real *dx = a->dx, *dgain = a->dgain;
    const int par = rows * D > PT_FNORM_OMP_MIN;
    const int nthr = par ? omp_get_max_threads() : 1;
    real *tab = FN(normrot_table)(a);
    real *work = malloc(sizeof(real) * (size_t)nthr * 2 * (size_t)D);
    double *part = dgain ? malloc(sizeof(double) * (size_t)rows) : NULL;
    if (!tab || !work || (dgain && !part)) {
        free(tab);
        free(work);
        free(part);
        return PT_FAIL(PT_ERR_OOM, "rms_norm_rotary backward: out of host memory (T = %lld, rows = %lld)",
                       (long long)TT, (long long)rows);
    }
#pragma omp parallel for num_threads(nthr) if (par)
    for (int64_t row = 0; row < rows; row++) {
        const int64_t t = (row / H) % TT;
        const real *xi = x + row * D, *gi = g + row * D, *cs = tab + t * 2 * half, *sn = cs + half;
        real *rot = work + (size_t)omp_get_thread_num() * 2 * (size_t)D, *gr = rot + D;
        const real r = rs[row], gh = gain ? gain[row % H] : (real)1;
        if (part) {
            FN(normrot_row)(xi, r, cs, sn, half, D, rot);
            double p = 0;
            for (int64_t d = 0; d < D; d++) p += (double)(gi[d] * rot[d]);
            part[row] = p;
        }
        if (!dx) continue;
        for (int64_t d = 0; d < D; d++) gr[d] = gain ? gi[d] * gh : gi[d];
        /* the inverse rotation in place (pt_rotary's backward: rotate by −θ) */
        for (int64_t j = 0; j < half; j++) {
            const real x1 = gr[j], x2 = gr[half + j], s = (real)-1 * sn[j];
            gr[j] = x1 * cs[j] + x2 * s;
            gr[half + j] = -x1 * s + x2 * cs[j];
        }
        double dot = 0;
        for (int64_t d = 0; d < D; d++) dot += (double)gr[d] * (double)xi[d];
        const double rr = r, m = dot * rr * rr / (double)D, sr = 1.0 * rr;
        real *di = dx + row * D;
        for (int64_t d = 0; d < D; d++) di[d] = (real)(sr * ((double)gr[d] - (double)xi[d] * m));
    }
    if (dgain)
        for (int64_t h = 0; h < H; h++) {
            double acc = 0;
            for (int64_t bt = 0; bt < rows / H; bt++) acc += part[bt * H + h];
            dgain[h] = (real)acc;
        }
    free(tab);
    free(work);
    free(part);
    return PT_OK;
}

#undef FN

#endif /* PT_FNORM_BODY */
