/* test_optim.c — the optimizer kernels (src/kernels/pt_optim.h) on small cases with known answers:
 * Newton–Schulz on matrices with known singular vectors and values, MuonEq-R, the Muon shape factor
 * and decoupled weight decay, AdamW/SGD first steps by hand, clip_grad_norm, EMA, SWA, and the error
 * messages; the multi-tensor fronts (AdamW, Muon with banks, EMA, the device-side clip) bitwise
 * against the per-tensor ones, and their errors naming the list entry. The 10-step comparisons with
 * PyTorch are in tests/lua/test_optim.lua.
 *
 *   cmake --build build && ./build/test_optim      (or ctest -R test_optim)
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "pt_ops.h" /* pt_transpose */
#include "pt_optim.h"
#include "pt_test.h"

static pt_tensor *mk(int ndim, const int64_t *shape, const double *vals) {
    pt_tensor *t = NULL;
    if (pt_tensor_zeros(&t, PT_F32, PT_CPU, ndim, shape) != PT_OK) return NULL;
    if (vals)
        for (int64_t i = 0; i < pt_tensor_numel(t); i++) pt_tensor_set_flat(t, i, vals[i]);
    return t;
}
static int pt_same_shape_test(const pt_tensor *a, const pt_tensor *b) {
    return a->ndim == b->ndim && memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim) == 0;
}
static double at(const pt_tensor *t, int64_t i) {
    double v = NAN;
    pt_tensor_get_flat(t, i, &v);
    return v;
}

/* Householder reflection H = I − 2vvᵀ/vᵀv (orthogonal, symmetric), n×n into h */
static void householder(int n, const double *v, double *h) {
    double vv = 0;
    for (int i = 0; i < n; i++) vv += v[i] * v[i];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) h[i * n + j] = (i == j) - 2 * v[i] * v[j] / vv;
}

/* the composed NS polynomial applied to x */
static double ns_poly(double x, int steps, const double (*c)[3], int nc) {
    for (int k = 0; k < steps; k++) {
        const double *t = c[nc == 1 ? 0 : k];
        x = t[0] * x + t[1] * x * x * x + t[2] * x * x * x * x * x;
    }
    return x;
}

/* G = H4 · diag(s) · H6[0:4, :] (4×6), expected NS(G) = H4 · diag(p(s/‖s‖)) · H6[0:4, :] */
PT_TEST(newton_schulz_maps_singular_values_through_the_quintic) {
    double v4[4] = {1, -2, 0.5, 3}, v6[6] = {0.3, 1, -1, 2, 0.7, -0.4}, h4[16], h6[36];
    householder(4, v4, h4);
    householder(6, v6, h6);
    double s[4] = {4, 3, 2, 0.5}, fro = sqrt(16 + 9 + 4 + 0.25);
    double g[24], want[24];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 6; j++) {
            double a = 0, b = 0;
            for (int k = 0; k < 4; k++) {
                a += h4[i * 4 + k] * s[k] * h6[k * 6 + j];
                b += h4[i * 4 + k] * ns_poly(s[k] / fro, 5, pt_ns5_coeffs, 1) * h6[k * 6 + j];
            }
            g[i * 6 + j] = a;
            want[i * 6 + j] = b;
        }
    for (int k = 0; k < 4; k++) { /* the quintic's band for these inputs */
        double y = ns_poly(s[k] / fro, 5, pt_ns5_coeffs, 1);
        PT_CHECK(y > 0.68 && y < 1.21);
    }
    int64_t sh[2] = {4, 6};
    pt_tensor *G = mk(2, sh, g), *X = NULL, *Gt = NULL, *Xt = NULL, *Xb = NULL;
    PT_CHECK_OK(pt_newton_schulz(&X, G, 5, pt_ns5_coeffs, 1, 0));
    for (int i = 0; i < 24; i++) PT_CHECK_NEAR(at(X, i), want[i], 2e-5);

    /* the transposed matrix (rows > cols) gives the transposed result */
    double gt[24];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 6; j++) gt[j * 4 + i] = g[i * 6 + j];
    int64_t sht[2] = {6, 4};
    Gt = mk(2, sht, gt);
    PT_CHECK_OK(pt_newton_schulz(&Xt, Gt, 5, pt_ns5_coeffs, 1, 0));
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 6; j++) PT_CHECK_NEAR(at(Xt, j * 4 + i), want[i * 6 + j], 2e-5);

    /* bf16 mode (the records' numerics) stays within bf16 noise of the f32 result */
    PT_CHECK_OK(pt_newton_schulz(&Xb, G, 5, pt_ns5_coeffs, 1, PT_NS_BF16));
    for (int i = 0; i < 24; i++) {
        double v = at(Xb, i);
        PT_CHECK_NEAR(v, want[i], 0.05);
        PT_CHECK(v == (double)pt_bf16_to_f32(pt_f32_to_bf16((float)v))); /* output is bf16-valued */
    }
    pt_tensor_release(G);
    pt_tensor_release(X);
    pt_tensor_release(Gt);
    pt_tensor_release(Xt);
    pt_tensor_release(Xb);
}

/* a bank [2, 2, 3]: each matrix is orthogonalised on its own (own Frobenius norm) */
PT_TEST(newton_schulz_bank_is_per_matrix) {
    /* matrix 0 = diag(2, 1) padded, matrix 1 = 10 · diag(1, 1) padded */
    double g[12] = {2, 0, 0, 0, 1, 0, /**/ 10, 0, 0, 0, 10, 0};
    int64_t sh[3] = {2, 2, 3};
    pt_tensor *G = mk(3, sh, g), *X = NULL;
    PT_CHECK_OK(pt_newton_schulz(&X, G, 5, pt_ns5_coeffs, 1, 0));
    double f0 = sqrt(5.0);
    PT_CHECK_NEAR(at(X, 0), ns_poly(2 / f0, 5, pt_ns5_coeffs, 1), 1e-5);
    PT_CHECK_NEAR(at(X, 4), ns_poly(1 / f0, 5, pt_ns5_coeffs, 1), 1e-5);
    PT_CHECK_NEAR(at(X, 6), ns_poly(1 / sqrt(2.0), 5, pt_ns5_coeffs, 1), 1e-5);
    PT_CHECK_NEAR(at(X, 10), ns_poly(1 / sqrt(2.0), 5, pt_ns5_coeffs, 1), 1e-5);
    PT_CHECK(at(X, 1) == 0 && at(X, 5) == 0 && at(X, 11) == 0);
    pt_tensor_release(G);
    pt_tensor_release(X);
}

/* MuonEq-R: rows orthogonal with norms 5, 0.1, 2, 1 become orthonormal, then 1/√4 after Frobenius */
PT_TEST(newton_schulz_row_norm_polar_express) {
    double v6[6] = {1, 2, -0.5, 0.25, 1, -1}, h6[36], r[4] = {5, 0.1, 2, 1}, g[24];
    householder(6, v6, h6);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 6; j++) g[i * 6 + j] = r[i] * h6[i * 6 + j];
    int64_t sh[2] = {4, 6};
    pt_tensor *G = mk(2, sh, g), *X = NULL;
    PT_CHECK_OK(pt_newton_schulz(&X, G, PT_POLAR_EXPRESS_STEPS, pt_polar_express_coeffs, 5, PT_NS_ROW_NORM));
    double y = ns_poly(0.5, PT_POLAR_EXPRESS_STEPS, pt_polar_express_coeffs, 5);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 6; j++) PT_CHECK_NEAR(at(X, i * 6 + j), y * h6[i * 6 + j], 2e-5);
    pt_tensor_release(X);
    /* without row normalisation the result is not row-uniform */
    PT_CHECK_OK(pt_newton_schulz(&X, G, PT_POLAR_EXPRESS_STEPS, pt_polar_express_coeffs, 5, 0));
    PT_CHECK(fabs(at(X, 6) - y * h6[6]) > 1e-2);
    pt_tensor_release(G);
    pt_tensor_release(X);
}

/* ns_steps 0 and momentum 0: u = g/‖g‖_F, so p = p(1 − lr·wd) − lr·√(rows/cols)·u exactly */
PT_TEST(muon_shape_factor_and_decoupled_wd) {
    int64_t sh[2] = {4, 2};
    double gv[8] = {3, 0, 0, 4, 0, 0, 0, 0}, ones[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    pt_tensor *p = mk(2, sh, ones), *g = mk(2, sh, gv), *buf = mk(2, sh, NULL);
    pt_muon_opts o = {.lr = 0.1, .momentum = 0, .wd = 0.1, .nesterov = 0, .factor = 0, .ns_steps = 0,
                      .coeffs = pt_ns5_coeffs, .ncoeffs = 1, .ns_flags = 0, .round = PT_MUON_ROUND_NONE};
    PT_CHECK_OK(pt_muon_step(p, g, buf, &o));
    float decay = (float)(1 - 0.01), f = (float)sqrt(2.0);
    PT_CHECK(at(p, 0) == (double)(decay - 0.1f * (0.6f * f)));
    PT_CHECK(at(p, 3) == (double)(decay - 0.1f * (0.8f * f)));
    PT_CHECK(at(p, 1) == (double)decay);
    PT_CHECK(at(buf, 3) == 4.0); /* buf = 0·μ + g */
    /* explicit factor 2 with the update rounded to bf16 after scaling: 0.6·2 = 1.2 -> bf16 1.203125 */
    double o1[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    pt_tensor *q = mk(2, sh, o1);
    o.factor = 2;
    o.wd = 0;
    o.round = PT_MUON_ROUND_SCALED;
    PT_CHECK_OK(pt_muon_step(q, g, buf, &o));
    PT_CHECK(at(q, 0) == (double)(1.0f + -0.1f * 1.203125f));
    pt_tensor_release(p);
    pt_tensor_release(q);
    pt_tensor_release(g);
    pt_tensor_release(buf);
}

PT_TEST(adamw_and_sgd_by_hand) {
    int64_t sh[1] = {2};
    double pv[2] = {1, -2}, gv[2] = {0.5, -0.25};
    pt_tensor *p = mk(1, sh, pv), *g = mk(1, sh, gv), *m = mk(1, sh, NULL), *v = mk(1, sh, NULL);
    /* step 1: m̂ = g, v̂ = g², so p ← p(1 − lr·wd) − lr·g/(|g| + eps) = 0.99 − 0.1 (eps negligible) */
    PT_CHECK_OK(pt_adamw_step(p, g, m, v, 1, 0.1, 0.9, 0.999, 1e-8, 0.1, 0));
    PT_CHECK_NEAR(at(p, 0), 0.89, 1e-6);
    PT_CHECK_NEAR(at(p, 1), -1.98 + 0.1, 1e-6);
    PT_CHECK_NEAR(at(m, 0), 0.05, 1e-8);
    PT_CHECK_NEAR(at(v, 1), 0.001 * 0.0625, 1e-10);
    PT_CHECK_ERR(pt_adamw_step(p, g, m, v, 0, 0.1, 0.9, 0.999, 1e-8, 0, 0), PT_ERR_VALUE, "step = 0");
    PT_CHECK_ERR(pt_adamw_step(p, g, m, v, 1, 0.1, 1.0, 0.999, 1e-8, 0, 0), PT_ERR_VALUE, "beta1 = 1");

    /* SGD momentum 0.9: buf = g, p = 1 − 0.1·2 = 0.8; then buf = 0.9·2 + 2 = 3.8, p = 0.8 − 0.38 */
    double one[1] = {1}, two[1] = {2};
    int64_t s1[1] = {1};
    pt_tensor *q = mk(1, s1, one), *gq = mk(1, s1, two), *b = mk(1, s1, NULL);
    PT_CHECK_OK(pt_sgd_step(q, gq, b, 1, 0.1, 0.9, 0, 0, 0, 0));
    PT_CHECK(at(q, 0) == (double)(1.0f - 0.1f * 2.0f));
    PT_CHECK_OK(pt_sgd_step(q, gq, b, 0, 0.1, 0.9, 0, 0, 0, 0));
    PT_CHECK_NEAR(at(b, 0), 3.8, 1e-6);
    PT_CHECK_NEAR(at(q, 0), 0.42, 1e-6);
    PT_CHECK_ERR(pt_sgd_step(q, gq, NULL, 0, 0.1, 0.9, 0, 0, 0, 0), PT_ERR_VALUE, "momentum_buffer is missing");
    PT_CHECK_ERR(pt_sgd_step(q, gq, b, 0, 0.1, 0, 0, 0, 1, 0), PT_ERR_VALUE, "nesterov needs momentum > 0");
    pt_tensor_release(p);
    pt_tensor_release(g);
    pt_tensor_release(m);
    pt_tensor_release(v);
    pt_tensor_release(q);
    pt_tensor_release(gq);
    pt_tensor_release(b);
}

PT_TEST(clip_grad_norm_exact) {
    int64_t s2[1] = {2}, s1[1] = {1};
    double a[2] = {3, 4};
    pt_tensor *ga = mk(1, s2, a), *gb = NULL;
    PT_CHECK_OK(pt_tensor_full(&gb, PT_F64, PT_CPU, 1, s1, 12.0)); /* f64 gradients work too */
    pt_tensor *gs[3] = {ga, NULL, gb};                             /* NULL = a param without grad */
    double norm = 0;
    PT_CHECK_OK(pt_clip_grad_norm(3, gs, 0, &norm)); /* max_norm 0: measure only */
    PT_CHECK(norm == 13.0);
    PT_CHECK(at(ga, 0) == 3.0 && at(gb, 0) == 12.0);
    PT_CHECK_OK(pt_clip_grad_norm(3, gs, 100.0, &norm)); /* under the threshold: untouched */
    PT_CHECK(norm == 13.0 && at(ga, 1) == 4.0 && at(gb, 0) == 12.0);
    /* over: every gradient times coef = max/(norm + 1e-6) (in the gradient's dtype) */
    PT_CHECK_OK(pt_clip_grad_norm(3, gs, 6.5, &norm));
    double coef = 6.5 / (13.0 + 1e-6);
    PT_CHECK(norm == 13.0);
    PT_CHECK(at(ga, 0) == (double)(3.0f * (float)coef));
    PT_CHECK(at(ga, 1) == (double)(4.0f * (float)coef));
    PT_CHECK(at(gb, 0) == 12.0 * coef);
    /* exactly at the threshold PyTorch still scales by max/(max + 1e-6) */
    PT_CHECK_OK(pt_clip_grad_norm(1, &gb, 12.0 * coef, &norm));
    PT_CHECK(at(gb, 0) < 12.0 * coef);
    pt_tensor *bad = NULL;
    int64_t s3[1] = {3};
    PT_CHECK_OK(pt_tensor_zeros(&bad, PT_I32, PT_CPU, 1, s3));
    pt_tensor *gs2[2] = {ga, bad};
    PT_CHECK_ERR(pt_clip_grad_norm(2, gs2, 1.0, &norm), PT_ERR_DTYPE, "gradient 2 has dtype i32");
    pt_tensor_release(ga);
    pt_tensor_release(gb);
    pt_tensor_release(bad);
}

PT_TEST(ema_and_swa) {
    int64_t sh[1] = {2};
    double w[2] = {1, -3};
    pt_tensor *e = mk(1, sh, NULL), *wt = mk(1, sh, w);
    PT_CHECK_OK(pt_ema_update(e, wt, 0.9));
    PT_CHECK(at(e, 0) == (double)(0.1f * 1.0f));
    PT_CHECK_ERR(pt_ema_update(e, wt, 1.5), PT_ERR_VALUE, "decay = 1.5");
    pt_tensor *sum = mk(1, sh, NULL), *dst = mk(1, sh, NULL);
    PT_CHECK_OK(pt_swa_add(sum, wt));
    PT_CHECK_OK(pt_swa_add(sum, wt));
    PT_CHECK_OK(pt_swa_add(sum, e));
    PT_CHECK_OK(pt_swa_average(dst, sum, 3));
    PT_CHECK(at(dst, 1) == (double)((-6.0f + (float)at(e, 1)) / 3.0f));
    PT_CHECK_ERR(pt_swa_average(dst, sum, 0), PT_ERR_VALUE, "count = 0");
    int64_t sh3[1] = {3};
    pt_tensor *w3 = mk(1, sh3, NULL);
    PT_CHECK_ERR(pt_swa_add(sum, w3), PT_ERR_SHAPE, "weights have shape [3] but the accumulator has shape [2]");
    pt_tensor_release(e);
    pt_tensor_release(wt);
    pt_tensor_release(sum);
    pt_tensor_release(dst);
    pt_tensor_release(w3);
}

PT_TEST(errors_name_the_problem) {
    int64_t s23[2] = {2, 3}, s32[2] = {3, 2}, s4[1] = {4};
    pt_tensor *p = mk(2, s23, NULL), *g = mk(2, s32, NULL), *m = mk(2, s23, NULL), *v = mk(2, s23, NULL);
    pt_tensor *vec = mk(1, s4, NULL), *X = NULL;
    PT_CHECK_ERR(pt_adamw_step(p, g, m, v, 1, 0.1, 0.9, 0.95, 1e-8, 0, 0), PT_ERR_SHAPE,
                 "grad has shape [3, 2] but the param has shape [2, 3]");
    PT_CHECK_ERR(pt_newton_schulz(&X, vec, 5, pt_ns5_coeffs, 1, 0), PT_ERR_SHAPE, "got [4]");
    PT_CHECK_ERR(pt_newton_schulz(&X, p, 5, pt_polar_express_coeffs, 4, 0), PT_ERR_VALUE,
                 "4 coefficient tuples for 5 steps");
    pt_tensor *t = NULL;
    PT_CHECK_OK(pt_transpose(&t, g, 0, 1)); /* a [2, 3] view that is not contiguous */
    PT_CHECK_ERR(pt_adamw_step(t, p, m, v, 1, 0.1, 0.9, 0.95, 1e-8, 0, 0), PT_ERR_VALUE, "is not contiguous");
    /* a non-contiguous gradient is fine (copied) */
    PT_CHECK_OK(pt_adamw_step(p, t, m, v, 1, 0.1, 0.9, 0.95, 1e-8, 0, 0));
    pt_tensor_release(t);
    pt_tensor_release(p);
    pt_tensor_release(g);
    pt_tensor_release(m);
    pt_tensor_release(v);
    pt_tensor_release(vec);
}

/* ---------------------------------------------------------------- multi-tensor ("foreach") fronts */

static uint64_t lcg_state = 12345;
static double urand(void) { /* deterministic, in [-1, 1) */
    lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(lcg_state >> 11) * (2.0 / 9007199254740992.0) - 1.0;
}
static pt_tensor *rnd(int ndim, const int64_t *shape) {
    pt_tensor *t = mk(ndim, shape, NULL);
    for (int64_t i = 0; t && i < pt_tensor_numel(t); i++) pt_tensor_set_flat(t, i, urand());
    return t;
}
static pt_tensor *dup(pt_tensor *t) {
    pt_tensor *c = NULL;
    if (pt_tensor_to(&c, t, t->dtype, t->device, 1) != PT_OK) return NULL;
    return c;
}
/* same dtype, shape and bytes */
static int same_bits(const pt_tensor *a, const pt_tensor *b) {
    return a->dtype == b->dtype && pt_same_shape_test(a, b) &&
           memcmp(pt_tensor_data(a), pt_tensor_data(b), (size_t)pt_tensor_numel(a) * (a->dtype == PT_F64 ? 8 : 4)) == 0;
}
static pt_tensor *rows_tensor(int64_t n) { /* f64 [n] zeros */
    pt_tensor *t = NULL;
    return pt_tensor_zeros(&t, PT_F64, PT_CPU, 1, &n) == PT_OK ? t : NULL;
}

#define NMULTI 53 /* more than one launch (PT_MT_MAX = 48) */

/* shapes: mostly small of odd sizes, a matrix, and one tensor above the threading threshold */
static void multi_shape(int i, int *ndim, int64_t *shape) {
    if (i == 7) {
        *ndim = 2, shape[0] = 200, shape[1] = 201;
    } else if (i % 3 == 0) {
        *ndim = 2, shape[0] = 1 + i % 5, shape[1] = 3 + i % 7;
    } else {
        *ndim = 1, shape[0] = 1 + (i * 37) % 301;
    }
}

PT_TEST(adamw_multi_is_bitwise_adamw_step) {
    pt_tensor *p1[NMULTI], *p2[NMULTI], *g[NMULTI], *m1[NMULTI], *m2[NMULTI], *v1[NMULTI], *v2[NMULTI];
    for (int i = 0; i < NMULTI; i++) {
        int nd;
        int64_t sh[2];
        multi_shape(i, &nd, sh);
        p1[i] = rnd(nd, sh), p2[i] = dup(p1[i]), g[i] = rnd(nd, sh);
        m1[i] = mk(nd, sh, NULL), m2[i] = mk(nd, sh, NULL), v1[i] = mk(nd, sh, NULL), v2[i] = mk(nd, sh, NULL);
    }
    pt_tensor *rows = rows_tensor(NMULTI * PT_ADAMW_NSCAL), *shared = rows_tensor(PT_ADAMW_NSCAL);
    for (int step = 1; step <= 3; step++) {
        /* a row per tensor: per-tensor lr, wd, betas, maximize and step counts */
        for (int i = 0; i < NMULTI; i++) {
            int64_t t = step + i % 3;
            double lr = 0.01 * (1 + i % 5), wd = i % 2 ? 0.04 : 0, b1 = i % 4 ? 0.9 : 0.8, b2 = 0.95, eps = 1e-8;
            int mx = i % 7 == 0;
            PT_CHECK_OK(pt_adamw_step(p1[i], g[i], m1[i], v1[i], t, lr, b1, b2, eps, wd, mx));
            PT_CHECK_OK(pt_adamw_scalars((double *)pt_tensor_data(rows) + i * PT_ADAMW_NSCAL, t, lr, b1, b2, eps, wd, mx));
        }
        PT_CHECK_OK(pt_adamw_multi(NMULTI, p2, g, m2, v2, rows));
        /* one shared row */
        for (int i = 0; i < NMULTI; i++) PT_CHECK_OK(pt_adamw_step(p1[i], g[i], m1[i], v1[i], step, 0.003, 0.9, 0.99, 1e-6, 0.1, 0));
        PT_CHECK_OK(pt_adamw_scalars(pt_tensor_data(shared), step, 0.003, 0.9, 0.99, 1e-6, 0.1, 0));
        PT_CHECK_OK(pt_adamw_multi(NMULTI, p2, g, m2, v2, shared));
    }
    int bad = 0;
    for (int i = 0; i < NMULTI; i++)
        bad += !same_bits(p1[i], p2[i]) || !same_bits(m1[i], m2[i]) || !same_bits(v1[i], v2[i]);
    PT_CHECK(bad == 0);
    PT_CHECK(!same_bits(p1[7], g[7])); /* something happened */
    PT_CHECK_OK(pt_adamw_multi(0, NULL, NULL, NULL, NULL, NULL)); /* an empty list is a no-op */
    for (int i = 0; i < NMULTI; i++) {
        pt_tensor_release(p1[i]), pt_tensor_release(p2[i]), pt_tensor_release(g[i]);
        pt_tensor_release(m1[i]), pt_tensor_release(m2[i]), pt_tensor_release(v1[i]), pt_tensor_release(v2[i]);
    }
    pt_tensor_release(rows);
    pt_tensor_release(shared);
}

/* Muon over a list (banks of same-shaped matrices, or per param) against muon_step per tensor */
PT_TEST(muon_multi_is_bitwise_muon_step) {
    enum { N = 6 };
    const int nds[N] = {2, 3, 2, 2, 2, 3};
    const int64_t shs[N][3] = {{6, 4}, {2, 6, 4}, {4, 6}, {6, 4}, {3, 3}, {1, 4, 6}};
    const int flags_list[3] = {0, PT_NS_BF16, PT_NS_BF16 | PT_NS_ROW_NORM};
    for (int variant = 0; variant < 6; variant++) {
        int flags = flags_list[variant % 3], batched = variant < 3, round = variant % 3;
        pt_tensor *p1[N], *p2[N], *g[N], *b1[N], *b2[N];
        for (int i = 0; i < N; i++) {
            p1[i] = rnd(nds[i], shs[i]), p2[i] = dup(p1[i]), g[i] = rnd(nds[i], shs[i]);
            b1[i] = mk(nds[i], shs[i], NULL), b2[i] = mk(nds[i], shs[i], NULL);
        }
        pt_muon_opts o = {.lr = 0, .momentum = 0, .wd = 0, .nesterov = variant != 4, .factor = 0,
                          .ns_steps = flags & PT_NS_ROW_NORM ? PT_POLAR_EXPRESS_STEPS : 5,
                          .coeffs = flags & PT_NS_ROW_NORM ? pt_polar_express_coeffs : pt_ns5_coeffs,
                          .ncoeffs = flags & PT_NS_ROW_NORM ? 5 : 1, .ns_flags = flags, .round = round};
        pt_tensor *rows = rows_tensor(N * PT_MUON_NSCAL);
        for (int step = 0; step < 2; step++) {
            for (int i = 0; i < N; i++) {
                pt_muon_opts oi = o;
                oi.lr = 0.02 * (1 + i % 2), oi.momentum = 0.95, oi.wd = i % 2 ? 0.04 : 0, oi.factor = i == 4 ? 2 : 0;
                PT_CHECK_OK(pt_muon_step(p1[i], g[i], b1[i], &oi));
                const pt_tensor *t = p1[i];
                PT_CHECK_OK(pt_muon_scalars((double *)pt_tensor_data(rows) + i * PT_MUON_NSCAL, oi.lr, oi.momentum, oi.wd,
                                            oi.factor, t->shape[t->ndim - 2], t->shape[t->ndim - 1]));
            }
            PT_CHECK_OK(pt_muon_multi(N, p2, g, b2, rows, &o, batched));
        }
        int bad = 0;
        for (int i = 0; i < N; i++) bad += !same_bits(p1[i], p2[i]) || !same_bits(b1[i], b2[i]);
        PT_CHECK(bad == 0);
        for (int i = 0; i < N; i++) {
            pt_tensor_release(p1[i]), pt_tensor_release(p2[i]), pt_tensor_release(g[i]);
            pt_tensor_release(b1[i]), pt_tensor_release(b2[i]);
        }
        pt_tensor_release(rows);
    }
}

PT_TEST(ema_multi_and_device_clip_are_bitwise) {
    pt_tensor *e1[NMULTI], *e2[NMULTI], *w[NMULTI], *ga[NMULTI], *gb[NMULTI];
    for (int i = 0; i < NMULTI; i++) {
        int nd;
        int64_t sh[2];
        multi_shape(i, &nd, sh);
        e1[i] = rnd(nd, sh), e2[i] = dup(e1[i]), w[i] = rnd(nd, sh);
        ga[i] = i == 3 ? NULL : rnd(nd, sh); /* NULL: a param without a grad */
        gb[i] = ga[i] ? dup(ga[i]) : NULL;
    }
    pt_tensor *row = rows_tensor(1);
    PT_CHECK_OK(pt_ema_scalars(pt_tensor_data(row), 0.9965));
    for (int i = 0; i < NMULTI; i++) PT_CHECK_OK(pt_ema_update(e1[i], w[i], 0.9965));
    PT_CHECK_OK(pt_ema_multi(NMULTI, e2, w, row));
    int bad = 0;
    for (int i = 0; i < NMULTI; i++) bad += !same_bits(e1[i], e2[i]);
    PT_CHECK(bad == 0);
    PT_CHECK_ERR(pt_ema_scalars(pt_tensor_data(row), 1.5), PT_ERR_VALUE, "decay = 1.5");

    /* clip: over the threshold, then under it, then a measure only */
    pt_tensor *norm = NULL;
    PT_CHECK_OK(pt_tensor_zeros(&norm, PT_F64, PT_CPU, 0, NULL));
    const double maxes[3] = {1.0, 1e9, 0};
    for (int r = 0; r < 3; r++) {
        double host = 0, dev = 0;
        PT_CHECK_OK(pt_clip_grad_norm(NMULTI, ga, maxes[r], &host));
        PT_CHECK_OK(pt_clip_grad_norm_dev(NMULTI, gb, maxes[r], norm));
        dev = at(norm, 0);
        PT_CHECK(memcmp(&host, &dev, sizeof host) == 0);
        bad = 0;
        for (int i = 0; i < NMULTI; i++) bad += ga[i] && !same_bits(ga[i], gb[i]);
        PT_CHECK(bad == 0);
    }
    /* an infinite gradient: the norm is inf and nothing is scaled */
    pt_tensor_set_flat(gb[0], 0, INFINITY);
    double before = at(gb[1], 0);
    PT_CHECK_OK(pt_clip_grad_norm_dev(NMULTI, gb, 1.0, norm));
    PT_CHECK(isinf(at(norm, 0)) && at(gb[1], 0) == before);
    /* no gradients: norm 0 */
    pt_tensor *none[2] = {NULL, NULL};
    PT_CHECK_OK(pt_clip_grad_norm_dev(2, none, 1.0, norm));
    PT_CHECK(at(norm, 0) == 0.0);
    for (int i = 0; i < NMULTI; i++) {
        pt_tensor_release(e1[i]), pt_tensor_release(e2[i]), pt_tensor_release(w[i]);
        pt_tensor_release(ga[i]), pt_tensor_release(gb[i]);
    }
    pt_tensor_release(row);
    pt_tensor_release(norm);
}

PT_TEST(multi_errors_name_the_entry) {
    int64_t s23[2] = {2, 3}, s4[1] = {4}, s5[1] = {5};
    pt_tensor *p[2] = {mk(2, s23, NULL), mk(1, s4, NULL)};
    pt_tensor *g[2] = {mk(2, s23, NULL), mk(1, s5, NULL)};
    pt_tensor *m[2] = {mk(2, s23, NULL), mk(1, s4, NULL)};
    pt_tensor *v[2] = {mk(2, s23, NULL), mk(1, s4, NULL)};
    pt_tensor *rows = rows_tensor(2 * PT_ADAMW_NSCAL), *f64 = NULL, *i32 = NULL, *t = NULL, *small = rows_tensor(3);
    PT_CHECK_OK(pt_tensor_zeros(&f64, PT_F64, PT_CPU, 1, s4));
    PT_CHECK_OK(pt_tensor_zeros(&i32, PT_I32, PT_CPU, 1, s4));
    PT_CHECK_ERR(pt_adamw_multi(2, p, g, m, v, rows), PT_ERR_SHAPE, "grad #2 has shape [5] but param #2 has shape [4]");
    pt_tensor *g2[2] = {g[0], i32};
    PT_CHECK_ERR(pt_adamw_multi(2, p, g2, m, v, rows), PT_ERR_DTYPE, "grad #2 has dtype i32; expected a float dtype");
    pt_tensor *m2[2] = {m[0], f64};
    g2[1] = p[1];
    PT_CHECK_ERR(pt_adamw_multi(2, p, g2, m2, v, rows), PT_ERR_DTYPE, "exp_avg #2 has dtype f64");
    pt_tensor *v2[2] = {v[0], m[0]};
    PT_CHECK_ERR(pt_adamw_multi(2, p, g2, m, v2, rows), PT_ERR_SHAPE,
                 "exp_avg_sq #2 has shape [2, 3] but param #2 has shape [4]");
    PT_CHECK_OK(pt_transpose(&t, p[0], 0, 1));
    pt_tensor *pt2[2] = {p[0], t};
    PT_CHECK_ERR(pt_adamw_multi(2, pt2, g2, m, v, rows), PT_ERR_VALUE, "param #2 [3, 2] is not contiguous");
    PT_CHECK_ERR(pt_adamw_multi(2, p, g2, m, v, small), PT_ERR_SHAPE, "the step scalars have 3 values; expected 7");
    PT_CHECK_ERR(pt_adamw_multi(2, p, g2, m, v, p[0]), PT_ERR_DTYPE, "the step scalars have dtype f32");
    PT_CHECK_ERR(pt_adamw_scalars(pt_tensor_data(rows), 0, 0.1, 0.9, 0.95, 1e-8, 0, 0), PT_ERR_VALUE, "step = 0");
    /* Muon: a vector param, mismatched buffers */
    pt_muon_opts o = {.nesterov = 1, .ns_steps = 5, .coeffs = pt_ns5_coeffs, .ncoeffs = 1, .round = 1};
    pt_tensor *mp[2] = {p[0], p[1]}, *mg[2] = {g[0], p[1]}, *mb[2] = {m[0], m[1]};
    pt_tensor *mrows = rows_tensor(2 * PT_MUON_NSCAL);
    PT_CHECK_ERR(pt_muon_multi(2, mp, mg, mb, mrows, &o, 1), PT_ERR_SHAPE,
                 "param #2 has shape [4]; Muon updates matrices");
    pt_tensor *mb2[2] = {f64, m[1]};
    PT_CHECK_ERR(pt_muon_multi(1, mp, mg, mb2, mrows, &o, 1), PT_ERR_DTYPE, "momentum_buffer #1 has dtype f64");
    PT_CHECK_ERR(pt_muon_scalars(pt_tensor_data(mrows), 0.1, 1.0, 0, 0, 2, 3), PT_ERR_VALUE, "momentum = 1");
    /* EMA weights and clip dtypes */
    pt_tensor *ew[2] = {g[0], g[1]};
    pt_tensor *erow = rows_tensor(1);
    PT_CHECK_ERR(pt_ema_multi(2, p, ew, erow), PT_ERR_SHAPE, "weights #2 has shape [5] but param #2 has shape [4]");
    pt_tensor *cg[3] = {p[0], NULL, f64}, *norm = rows_tensor(1);
    PT_CHECK_ERR(pt_clip_grad_norm_dev(3, cg, 1.0, norm), PT_ERR_DTYPE,
                 "gradient #3 has dtype f64 but the first gradient has f32");
    cg[2] = i32;
    PT_CHECK_ERR(pt_clip_grad_norm_dev(3, cg, 1.0, norm), PT_ERR_DTYPE, "gradient #3 has dtype i32");
    PT_CHECK_ERR(pt_clip_grad_norm_dev(1, cg, 1.0, rows), PT_ERR_VALUE, "an f64 tensor of one element");
    for (int i = 0; i < 2; i++) {
        pt_tensor_release(p[i]), pt_tensor_release(g[i]), pt_tensor_release(m[i]), pt_tensor_release(v[i]);
    }
    pt_tensor_release(rows), pt_tensor_release(f64), pt_tensor_release(i32), pt_tensor_release(t);
    pt_tensor_release(small), pt_tensor_release(mrows), pt_tensor_release(erow), pt_tensor_release(norm);
}

int main(void) { return pt_test_main(); }
