/* test_optim.c — the optimizer kernels (src/kernels/pt_optim.h) on small cases with known answers:
 * Newton–Schulz on matrices with known singular vectors and values, MuonEq-R, the Muon shape factor
 * and decoupled weight decay, AdamW/SGD first steps by hand, clip_grad_norm, EMA, SWA, and the error
 * messages. The 10-step comparisons with PyTorch are in tests/lua/test_optim.lua.
 *
 *   cmake --build build && ./build/test_optim      (or ctest -R test_optim)
 */
#include <math.h>
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

int main(void) { return pt_test_main(); }
