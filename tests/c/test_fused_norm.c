/* test_fused_norm.c — the fused RMS-norm prologues (src/kernels/fused_norm.c, cpu/fused_norm.c):
 * exact values on hand cases, errors naming the argument, f64 central-difference gradient checks for
 * every input (pt_opcheck.h), and bit-for-bit equality in f32 (forward and every gradient) with the
 * unfused composition the GPT used before (pt_mul / pt_add / pt_mul_scalar / pt_rms_norm, and
 * pt_rms_norm → pt_rotary → pt_mul by gain[H,1]), on shapes that take the threaded paths too.
 * Run: ctest --test-dir build -R c_test_fused_norm   (or build/test_fused_norm from the repo root)
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pt_autograd.h"
#include "pt_fused_norm.h"
#include "pt_opcheck.h"
#include "pt_ops.h"
#include "pt_test.h"

static double at(const pt_tensor *t, int64_t i) {
    double v = NAN;
    pt_tensor_get_flat(t, i, &v);
    return v;
}

static void release_all(int n, pt_tensor **ts) {
    for (int i = 0; i < n; i++) pt_tensor_release(ts[i]);
}

/* 1 when a and b hold the same bits element by element (values read as f64, so -0 differs from +0) */
static int same_bits(const char *what, const pt_tensor *a, const pt_tensor *b) {
    if (!a || !b) {
        printf("    %s: %s is missing\n", what, a ? "the second" : "the first");
        return 0;
    }
    if (a->dtype != b->dtype || pt_tensor_numel(a) != pt_tensor_numel(b)) {
        printf("    %s: dtype or size differs\n", what);
        return 0;
    }
    for (int64_t i = 0; i < pt_tensor_numel(a); i++) {
        double x = at(a, i), y = at(b, i);
        if (memcmp(&x, &y, sizeof x) && !(isnan(x) && isnan(y))) {
            printf("    %s: element %lld is %.9g fused, %.9g unfused\n", what, (long long)i, x, y);
            return 0;
        }
    }
    return 1;
}

static pt_tensor *randn(pt_dtype dt, int ndim, const int64_t *shape, uint64_t seed, double scale) {
    pt_tensor *t = pt_oc_randn(dt, ndim, shape, seed);
    for (int64_t i = 0; t && i < pt_tensor_numel(t); i++) pt_tensor_set_flat(t, i, at(t, i) * scale);
    return t;
}

/* ================================================================ mix + rms_norm */

PT_TEST(mix_rms_norm_exact) {
    int64_t s[2] = {2, 2}, c[1] = {2};
    pt_tensor *x = pt_oc_make(PT_F64, 2, s, (double[]){1, 2, 3, 4});
    pt_tensor *x0 = pt_oc_make(PT_F64, 2, s, (double[]){0.5, -1, 2, 0});
    pt_tensor *wx = pt_oc_make(PT_F64, 1, c, (double[]){2, 1}), *w0 = pt_oc_make(PT_F64, 1, c, (double[]){1, 3});
    pt_tensor *y = NULL, *h = NULL;
    PT_CHECK_OK(pt_mix_rms_norm(&y, &h, x, x0, wx, w0, 0.0, 0.5, 1.0));
    PT_CHECK(pt_oc_shape_is(y, 2, s) && pt_oc_shape_is(h, 2, s));
    PT_CHECK(pt_oc_equal(y, 4, (double[]){2.5, -1, 8, 4}, 0));
    const double r0 = 1 / sqrt(3.625), r1 = 1 / sqrt(40.0);
    PT_CHECK(pt_oc_equal(h, 4, (double[]){0.5 * 2.5 * r0, -0.5 * r0, 0.5 * 8 * r1, 0.5 * 4 * r1}, 1e-15));
    pt_tensor_release(y);
    pt_tensor_release(h);
    /* wx = NULL means 1; x0_scale multiplies the x0 term: y = x + (x0·w0)·2 */
    PT_CHECK_OK(pt_mix_rms_norm(&y, &h, x, x0, NULL, w0, PT_RMS_NORM_EPS, 1.0, 2.0));
    PT_CHECK(pt_oc_equal(y, 4, (double[]){2, -4, 7, 4}, 0));
    const double d0 = sqrt(10 + PT_RMS_NORM_EPS), d1 = sqrt(32.5 + PT_RMS_NORM_EPS);
    PT_CHECK(pt_oc_equal(h, 4, (double[]){2 / d0, -4 / d0, 7 / d1, 4 / d1}, 1e-15));
    /* nothing requires grad: no graph */
    PT_CHECK(!y->requires_grad && !h->requires_grad && !y->grad_fn && !h->grad_fn);
    release_all(6, (pt_tensor *[]){x, x0, wx, w0, y, h});
}

PT_TEST(mix_rms_norm_errors) {
    int64_t s[2] = {2, 3}, c[1] = {3}, c2[1] = {2}, s3[2] = {3, 2};
    pt_tensor *x = pt_oc_randn(PT_F64, 2, s, 1), *x0 = pt_oc_randn(PT_F64, 2, s, 2);
    pt_tensor *w = pt_oc_randn(PT_F64, 1, c, 3), *w2 = pt_oc_randn(PT_F64, 1, c2, 4);
    pt_tensor *xb = pt_oc_randn(PT_F64, 2, s3, 5), *xf = pt_oc_randn(PT_F32, 2, s, 6), *xi = NULL, *xbf = NULL;
    PT_CHECK_OK(pt_tensor_zeros(&xi, PT_I64, PT_CPU, 2, s));
    PT_CHECK_OK(pt_tensor_to(&xbf, x, PT_BF16, PT_CPU, 1));
    pt_tensor *y = NULL, *h = NULL;
    PT_CHECK_ERR(pt_mix_rms_norm(&y, &h, xi, x0, w, w, 0, 1, 1), PT_ERR_DTYPE,
                 "mix_rms_norm: x has dtype i64; expected f32, f64 or bf16");
    PT_CHECK(y == NULL && h == NULL);
    PT_CHECK_ERR(pt_mix_rms_norm(&y, &h, x, xf, w, w, 0, 1, 1), PT_ERR_DTYPE,
                 "mix_rms_norm: x0 has dtype f32 but x has f64");
    PT_CHECK_ERR(pt_mix_rms_norm(&y, &h, x, xb, w, w, 0, 1, 1), PT_ERR_SHAPE,
                 "mix_rms_norm: x0 [3, 2] must have the shape of x [2, 3]");
    PT_CHECK_ERR(pt_mix_rms_norm(&y, &h, x, x0, w2, w, 0, 1, 1), PT_ERR_SHAPE,
                 "mix_rms_norm: wx [2] must be 1-D of size C = 3 (the last dim of x [2, 3])");
    PT_CHECK_ERR(pt_mix_rms_norm(&y, &h, x, x0, w, x0, 0, 1, 1), PT_ERR_SHAPE, "w0 [2, 3] must be 1-D of size C = 3");
    PT_CHECK_ERR(pt_mix_rms_norm(&y, &h, x, x0, w, NULL, 0, 1, 1), PT_ERR_VALUE, "only wx may be nil");
    PT_CHECK_ERR(pt_mix_rms_norm(&y, &h, x, x0, w, w, -1, 1, 1), PT_ERR_VALUE, "eps must be a finite number >= 0");
    PT_CHECK_ERR(pt_mix_rms_norm(&y, &h, x, x0, w, w, 0, NAN, 1), PT_ERR_VALUE, "scale must be finite");
    PT_CHECK_ERR(pt_mix_rms_norm(&y, &h, x, x0, w, w, 0, 1, INFINITY), PT_ERR_VALUE, "x0_scale must be finite");
    /* bf16 passes the checks and reaches the kernel table: CUDA only */
    pt_tensor *x0bf = NULL, *wbf = NULL;
    PT_CHECK_OK(pt_tensor_to(&x0bf, x0, PT_BF16, PT_CPU, 1));
    PT_CHECK_OK(pt_tensor_to(&wbf, w, PT_BF16, PT_CPU, 1));
    PT_CHECK_ERR(pt_mix_rms_norm(&y, &h, xbf, x0bf, NULL, wbf, 0, 1, 1), PT_ERR_UNSUPPORTED,
                 "op mix_rms_norm has no kernel for dtype bf16 on cpu");
    PT_CHECK(y == NULL && h == NULL);
    release_all(10, (pt_tensor *[]){x, x0, w, w2, xb, xf, xi, xbf, x0bf, wbf});
}

typedef struct {
    double eps, scale, s0;
    int out; /* 0: h, 1: y, 2: h + y (both paths into y) */
    int no_wx;
} mix_ud;

static pt_status f_mix(pt_tensor **o, pt_tensor *const *in, void *ud) {
    const mix_ud *u = ud;
    pt_tensor *y = NULL, *h = NULL;
    pt_tensor *wx = u->no_wx ? NULL : in[2], *w0 = u->no_wx ? in[2] : in[3];
    PT_TRY(pt_mix_rms_norm(&y, &h, in[0], in[1], wx, w0, u->eps, u->scale, u->s0));
    pt_status st = PT_OK;
    if (u->out == 0) {
        *o = h;
        h = NULL;
    } else if (u->out == 1) {
        *o = y;
        y = NULL;
    } else {
        st = pt_add(o, h, y);
    }
    pt_tensor_release(y);
    pt_tensor_release(h);
    return st;
}

PT_TEST(mix_rms_norm_gradcheck) {
    int64_t s[3] = {2, 3, 5}, c[1] = {5};
    pt_tensor *in[4] = {pt_oc_randn(PT_F64, 3, s, 11), pt_oc_randn(PT_F64, 3, s, 12), pt_oc_randn(PT_F64, 1, c, 13),
                        pt_oc_randn(PT_F64, 1, c, 14)};
    mix_ud u = {1e-5, 0.7, 1.0, 0, 0};
    PT_CHECK(pt_oc_gradcheck("mix_rms_norm h", f_mix, 4, in, &u));
    u.out = 1;
    u.s0 = 0.6;
    PT_CHECK(pt_oc_gradcheck("mix_rms_norm y, x0_scale", f_mix, 4, in, &u));
    u.out = 2;
    PT_CHECK(pt_oc_gradcheck("mix_rms_norm h + y", f_mix, 4, in, &u));
    /* wx = NULL: inputs x, x0, w0 */
    mix_ud v = {0.0, 1.0, 1.7, 2, 1};
    pt_tensor *in3[3] = {in[0], in[1], in[3]};
    PT_CHECK(pt_oc_gradcheck("mix_rms_norm wx=NULL", f_mix, 3, in3, &v));
    release_all(4, in);
}

/* the unfused composition of nn.lua: x*wx + x0*w0 (or x + (x0*w0)*s0), then rms_norm(·, eps, scale) */
static pt_status mix_unfused(pt_tensor **y, pt_tensor **h, pt_tensor *x, pt_tensor *x0, pt_tensor *wx, pt_tensor *w0,
                             double eps, double scale, double s0) {
    pt_tensor *t1 = NULL, *t2 = NULL, *t3 = NULL;
    pt_status st = wx ? pt_mul(&t1, x, wx) : PT_OK;
    if (!st) st = pt_mul(&t2, x0, w0);
    if (!st && s0 != 1.0) {
        st = pt_mul_scalar(&t3, t2, s0);
        pt_tensor_release(t2);
        t2 = t3;
    }
    if (!st) st = pt_add(y, wx ? t1 : x, t2);
    if (!st) st = pt_rms_norm(h, *y, eps, scale);
    pt_tensor_release(t1);
    pt_tensor_release(t2);
    return st;
}

/* loss = Σ h⊙G1 + Σ y⊙G2 through both versions; forward values and every gradient must be equal bits */
static void mix_bitwise(int64_t B, int64_t T, int64_t C, int with_wx, double scale, double s0) {
    int64_t s[3] = {B, T, C}, c[1] = {C};
    pt_tensor *x = randn(PT_F32, 3, s, 21, 3.0), *x0 = randn(PT_F32, 3, s, 22, 1.0);
    pt_tensor *wx = with_wx ? randn(PT_F32, 1, c, 23, 1.0) : NULL, *w0 = randn(PT_F32, 1, c, 24, 1.0);
    pt_tensor *G1 = randn(PT_F32, 3, s, 25, 1.0), *G2 = randn(PT_F32, 3, s, 26, 1.0), *ones = NULL;
    PT_CHECK_OK(pt_tensor_full(&ones, PT_F32, PT_CPU, 3, s, 1.0));
    pt_tensor *grads[2][4] = {{0}};
    pt_tensor *ys[2] = {0}, *hs[2] = {0};
    for (int fused = 0; fused < 2; fused++) {
        pt_tensor *leaf[4] = {x, x0, wx, w0};
        for (int i = 0; i < 4; i++)
            if (leaf[i]) {
                pt_tensor_zero_grad(leaf[i]);
                leaf[i]->requires_grad = 1;
            }
        pt_tensor *a = NULL, *b = NULL, *o = NULL;
        if (fused) PT_CHECK_OK(pt_mix_rms_norm(&ys[1], &hs[1], x, x0, wx, w0, PT_RMS_NORM_EPS, scale, s0));
        else PT_CHECK_OK(mix_unfused(&ys[0], &hs[0], x, x0, wx, w0, PT_RMS_NORM_EPS, scale, s0));
        PT_CHECK_OK(pt_mul(&a, hs[fused], G1));
        PT_CHECK_OK(pt_mul(&b, ys[fused], G2));
        PT_CHECK_OK(pt_add(&o, a, b));
        PT_CHECK_OK(pt_backward(o, ones));
        for (int i = 0; i < 4; i++)
            if (leaf[i]) {
                grads[fused][i] = leaf[i]->grad;
                leaf[i]->grad = NULL;
            }
        release_all(3, (pt_tensor *[]){a, b, o});
    }
    char what[96];
    snprintf(what, sizeof what, "mix [%lld,%lld,%lld] wx=%d scale=%g s0=%g", (long long)B, (long long)T, (long long)C,
             with_wx, scale, s0);
    PT_CHECK(same_bits(what, ys[1], ys[0]));
    PT_CHECK(same_bits(what, hs[1], hs[0]));
    const char *names[4] = {"dx", "dx0", "dwx", "dw0"};
    for (int i = 0; i < 4; i++) {
        if (i == 2 && !with_wx) continue;
        char w2[128];
        snprintf(w2, sizeof w2, "%s %s", what, names[i]);
        PT_CHECK(same_bits(w2, grads[1][i], grads[0][i]));
    }
    printf("  %s: fused == unfused bit for bit (values and gradients)\n", what);
    for (int f = 0; f < 2; f++) {
        release_all(2, (pt_tensor *[]){ys[f], hs[f]});
        for (int i = 0; i < 4; i++) pt_tensor_release(grads[f][i]);
    }
    release_all(7, (pt_tensor *[]){x, x0, wx, w0, G1, G2, ones});
}

PT_TEST(mix_rms_norm_bitwise_equals_unfused_f32) {
    mix_bitwise(2, 33, 96, 1, 1.0, 1.0);                  /* resid mix, no ln-scale; 96 crosses a column block */
    mix_bitwise(2, 33, 96, 1, 1 / sqrt(3.0), 1.0);        /* ln-scale λ */
    mix_bitwise(3, 17, 40, 0, 0.5, 1.0);                  /* y + att⊙attn_scale */
    mix_bitwise(3, 17, 40, 0, 1.0, 0.70703125);           /* · depth scale (a bf16 value) */
    mix_bitwise(4, 64, 512, 1, 1 / sqrt(2.0), 1.0);       /* threaded paths */
    mix_bitwise(4, 64, 512, 0, 1 / sqrt(2.0), 0.5771484375);
}

PT_TEST(mix_rms_norm_non_contiguous_inputs) {
    /* transposed x and x0 give the values and gradients of their contiguous copies */
    int64_t s[2] = {6, 4}, c[1] = {6};
    pt_tensor *bx = pt_oc_randn(PT_F64, 2, s, 31), *b0 = pt_oc_randn(PT_F64, 2, s, 32);
    pt_tensor *w0 = pt_oc_randn(PT_F64, 1, c, 33), *xt = NULL, *x0t = NULL, *xc = NULL, *x0c = NULL;
    bx->requires_grad = 1;
    PT_CHECK_OK(pt_transpose(&xt, bx, 0, 1));
    PT_CHECK_OK(pt_transpose(&x0t, b0, 0, 1));
    PT_CHECK(!pt_tensor_is_contiguous(xt));
    PT_CHECK_OK(pt_tensor_to(&xc, xt, PT_F64, PT_CPU, 1));
    PT_CHECK_OK(pt_tensor_to(&x0c, x0t, PT_F64, PT_CPU, 1));
    PT_CHECK(pt_tensor_is_contiguous(xc));
    pt_tensor *y1 = NULL, *h1 = NULL, *y2 = NULL, *h2 = NULL;
    xc->requires_grad = 1;
    PT_CHECK_OK(pt_mix_rms_norm(&y1, &h1, xt, x0t, NULL, w0, 1e-6, 1, 1));
    PT_CHECK_OK(pt_mix_rms_norm(&y2, &h2, xc, x0c, NULL, w0, 1e-6, 1, 1));
    PT_CHECK(same_bits("non-contiguous y", y1, y2) && same_bits("non-contiguous h", h1, h2));
    pt_tensor *G = pt_oc_randn(PT_F64, 2, (int64_t[]){4, 6}, 34);
    PT_CHECK_OK(pt_backward(h1, G));
    PT_CHECK_OK(pt_backward(h2, G));
    pt_tensor *gt = NULL;
    PT_CHECK(bx->grad != NULL);
    if (bx->grad) {
        PT_CHECK_OK(pt_transpose(&gt, bx->grad, 0, 1));
        PT_CHECK(same_bits("non-contiguous dx", gt, xc->grad));
    }
    release_all(12, (pt_tensor *[]){bx, b0, w0, xt, x0t, xc, x0c, y1, h1, y2, h2, G});
    pt_tensor_release(gt);
}

/* ================================================================ rms_norm + rotary (+ gain) */

PT_TEST(rms_norm_rotary_exact) {
    /* x [1, 2, 1, 4], r = 4, base 10000: inv_freq = [1, 0.01]; eps 0: rms = sqrt(7.5); gain 2 */
    int64_t s[4] = {1, 2, 1, 4}, h1[1] = {1};
    const double v[8] = {1, 2, 3, 4, 1, 2, 3, 4};
    pt_tensor *x = pt_oc_make(PT_F64, 4, s, v), *g = pt_oc_make(PT_F64, 1, h1, (double[]){2}), *y = NULL, *k = NULL;
    PT_CHECK_OK(pt_rms_norm_rotary(&y, x, g, 0.0, 4, 10000, 1024, 0));
    const double n = 1 / sqrt(7.5);
    for (int i = 0; i < 4; i++) PT_CHECK_NEAR(at(y, i), 2 * v[i] * n, 1e-15); /* position 0: no rotation */
    PT_CHECK_NEAR(at(y, 4), 2 * n * (1 * cos(1.0) + 3 * sin(1.0)), 1e-12);
    PT_CHECK_NEAR(at(y, 6), 2 * n * (-1 * sin(1.0) + 3 * cos(1.0)), 1e-12);
    PT_CHECK_NEAR(at(y, 5), 2 * n * (2 * cos(0.01) + 4 * sin(0.01)), 1e-12);
    PT_CHECK_NEAR(at(y, 7), 2 * n * (-2 * sin(0.01) + 4 * cos(0.01)), 1e-12);
    /* no gain (k), partial rotary r = 2 of D = 4, offset 1: position 0 rotates by θ = 1 */
    PT_CHECK_OK(pt_rms_norm_rotary(&k, x, NULL, 0.0, 2, 10000, 0, 1));
    PT_CHECK_NEAR(at(k, 0), n * (1 * cos(1.0) + 2 * sin(1.0)), 1e-12);
    PT_CHECK_NEAR(at(k, 1), n * (-1 * sin(1.0) + 2 * cos(1.0)), 1e-12);
    PT_CHECK_NEAR(at(k, 2), 3 * n, 1e-15);
    PT_CHECK_NEAR(at(k, 3), 4 * n, 1e-15);
    release_all(4, (pt_tensor *[]){x, g, y, k});
}

PT_TEST(rms_norm_rotary_errors) {
    int64_t s[4] = {1, 3, 2, 6}, s3[3] = {3, 2, 6}, g2[1] = {2}, g3[1] = {3};
    pt_tensor *x = pt_oc_randn(PT_F64, 4, s, 41), *x3 = pt_oc_randn(PT_F64, 3, s3, 42);
    pt_tensor *g = pt_oc_randn(PT_F64, 1, g2, 43), *gb = pt_oc_randn(PT_F64, 1, g3, 44);
    pt_tensor *gf = pt_oc_randn(PT_F32, 1, g2, 45), *xi = NULL, *y = NULL;
    PT_CHECK_OK(pt_tensor_zeros(&xi, PT_I32, PT_CPU, 4, s));
    PT_CHECK_ERR(pt_rms_norm_rotary(&y, x3, g, 0, 0, 10000, 0, 0), PT_ERR_SHAPE,
                 "rms_norm_rotary: x must be 4-D [B, T, H, D], got shape [3, 2, 6]");
    PT_CHECK(y == NULL);
    PT_CHECK_ERR(pt_rms_norm_rotary(&y, xi, NULL, 0, 0, 10000, 0, 0), PT_ERR_DTYPE, "x has dtype i32");
    PT_CHECK_ERR(pt_rms_norm_rotary(&y, x, gb, 0, 0, 10000, 0, 0), PT_ERR_SHAPE,
                 "rms_norm_rotary: gain [3] must be 1-D of size H = 2 (dim 3 of x [1, 3, 2, 6])");
    PT_CHECK_ERR(pt_rms_norm_rotary(&y, x, gf, 0, 0, 10000, 0, 0), PT_ERR_DTYPE, "gain has dtype f32 but x has f64");
    PT_CHECK_ERR(pt_rms_norm_rotary(&y, x, g, 0, 3, 10000, 0, 0), PT_ERR_VALUE,
                 "rotary dims must be even and in [2, D = 6], got 3");
    PT_CHECK_ERR(pt_rms_norm_rotary(&y, x, g, 0, 8, 10000, 0, 0), PT_ERR_VALUE, "got 8");
    PT_CHECK_ERR(pt_rms_norm_rotary(&y, x, g, 0, 2, 10000, 2, 0), PT_ERR_VALUE, "needs rotary dims > 2");
    PT_CHECK_ERR(pt_rms_norm_rotary(&y, x, g, -1, 0, 10000, 0, 0), PT_ERR_VALUE, "eps must be a finite number >= 0");
    PT_CHECK_ERR(pt_rms_norm_rotary(&y, x, g, 0, 0, 0, 0, 0), PT_ERR_VALUE, "base must be a finite number > 0");
    PT_CHECK_ERR(pt_rms_norm_rotary(&y, x, g, 0, 0, 10000, -1, 0), PT_ERR_VALUE, "train_len must be >= 0");
    PT_CHECK_ERR(pt_rms_norm_rotary(&y, x, g, 0, 0, 10000, 0, -2), PT_ERR_VALUE, "offset must be >= 0, got -2");
    release_all(6, (pt_tensor *[]){x, x3, g, gb, gf, xi});
}

typedef struct {
    int64_t r, train, off;
    int gain;
} nr_ud;

static pt_status f_nr(pt_tensor **o, pt_tensor *const *in, void *ud) {
    const nr_ud *u = ud;
    return pt_rms_norm_rotary(o, in[0], u->gain ? in[1] : NULL, 1e-5, u->r, 10, u->train, u->off);
}

PT_TEST(rms_norm_rotary_gradcheck) {
    int64_t s[4] = {2, 5, 3, 6}, h[1] = {3};
    pt_tensor *in[2] = {pt_oc_randn(PT_F64, 4, s, 51), pt_oc_randn(PT_F64, 1, h, 52)};
    nr_ud u = {4, 4, 1, 1}; /* partial rotary, NTK active (T = 5 > 4), offset 1 */
    PT_CHECK(pt_oc_gradcheck("rms_norm_rotary q", f_nr, 2, in, &u));
    nr_ud k = {0, 0, 0, 0}; /* full rotary, no gain (k) */
    PT_CHECK(pt_oc_gradcheck("rms_norm_rotary k", f_nr, 1, in, &k));
    /* only the gain requires grad (x is a constant): dgain alone */
    in[0]->requires_grad = 0;
    in[1]->requires_grad = 1;
    PT_CHECK(pt_oc_gradcheck("rms_norm_rotary dgain only", f_nr, 2, in, &u));
    release_all(2, in);
}

/* nn.lua before the fusion: F.rms_norm(x, eps) → F.rotary(·, rope) → · * gain:reshape{H, 1} */
static pt_status nr_unfused(pt_tensor **out, pt_tensor *x, pt_tensor *gain, double eps, int64_t r, double base,
                            int64_t train, int64_t off) {
    pt_tensor *n = NULL, *rot = NULL, *g2 = NULL;
    pt_status st = pt_rms_norm(&n, x, eps, 1.0);
    if (!st) st = pt_rotary(gain ? &rot : out, n, r, base, train, off);
    if (!st && gain) st = pt_reshape(&g2, gain, 2, (int64_t[]){gain->shape[0], 1});
    if (!st && gain) st = pt_mul(out, rot, g2);
    release_all(3, (pt_tensor *[]){n, rot, g2});
    return st;
}

static void nr_bitwise(int64_t B, int64_t T, int64_t H, int64_t D, int64_t r, int64_t train, int64_t off, int gain) {
    int64_t s[4] = {B, T, H, D}, hs[1] = {H};
    pt_tensor *x = randn(PT_F32, 4, s, 61, 2.0), *g = gain ? randn(PT_F32, 1, hs, 62, 2.0) : NULL;
    pt_tensor *G = randn(PT_F32, 4, s, 63, 1.0), *ys[2] = {0}, *dx[2] = {0}, *dg[2] = {0};
    for (int fused = 0; fused < 2; fused++) {
        x->requires_grad = 1;
        if (g) g->requires_grad = 1;
        if (fused) PT_CHECK_OK(pt_rms_norm_rotary(&ys[1], x, g, PT_RMS_NORM_EPS, r, 50000, train, off));
        else PT_CHECK_OK(nr_unfused(&ys[0], x, g, PT_RMS_NORM_EPS, r, 50000, train, off));
        PT_CHECK_OK(pt_backward(ys[fused], G));
        dx[fused] = x->grad;
        x->grad = NULL;
        if (g) {
            dg[fused] = g->grad;
            g->grad = NULL;
        }
    }
    char what[128];
    snprintf(what, sizeof what, "rms_norm_rotary [%lld,%lld,%lld,%lld] r=%lld train=%lld off=%lld gain=%d",
             (long long)B, (long long)T, (long long)H, (long long)D, (long long)r, (long long)train, (long long)off, gain);
    PT_CHECK(same_bits(what, ys[1], ys[0]));
    PT_CHECK(same_bits(what, dx[1], dx[0]));
    if (gain) PT_CHECK(same_bits(what, dg[1], dg[0]));
    printf("  %s: fused == unfused bit for bit\n", what);
    for (int f = 0; f < 2; f++) release_all(3, (pt_tensor *[]){ys[f], dx[f], dg[f]});
    release_all(3, (pt_tensor *[]){x, g, G});
}

PT_TEST(rms_norm_rotary_bitwise_equals_unfused_f32) {
    nr_bitwise(2, 9, 4, 16, 0, 0, 0, 1);       /* q: full rotary, gain */
    nr_bitwise(2, 9, 2, 16, 0, 0, 0, 0);       /* k: no gain */
    nr_bitwise(2, 70, 4, 16, 8, 64, 0, 1);     /* partial rotary, NTK active (T = 70 > 64) */
    nr_bitwise(1, 5, 3, 12, 4, 0, 7, 1);       /* offset */
    nr_bitwise(2, 128, 8, 64, 16, 1024, 0, 1); /* threaded paths */
    nr_bitwise(2, 128, 4, 64, 0, 64, 0, 0);
}

PT_TEST(f32_matches_f64) {
    int64_t s[4] = {2, 9, 4, 8}, h[1] = {4}, c[1] = {8};
    pt_tensor *x = pt_oc_randn(PT_F64, 4, s, 71), *x0 = pt_oc_randn(PT_F64, 4, s, 72), *g = pt_oc_randn(PT_F64, 1, h, 73);
    pt_tensor *w = pt_oc_randn(PT_F64, 1, c, 74), *xf = NULL, *x0f = NULL, *gf = NULL, *wf = NULL;
    PT_CHECK_OK(pt_tensor_to(&xf, x, PT_F32, PT_CPU, 1));
    PT_CHECK_OK(pt_tensor_to(&x0f, x0, PT_F32, PT_CPU, 1));
    PT_CHECK_OK(pt_tensor_to(&gf, g, PT_F32, PT_CPU, 1));
    PT_CHECK_OK(pt_tensor_to(&wf, w, PT_F32, PT_CPU, 1));
    pt_tensor *a = NULL, *b = NULL, *ya = NULL, *yb = NULL;
    PT_CHECK_OK(pt_rms_norm_rotary(&a, x, g, 1e-6, 4, 10000, 4, 0));
    PT_CHECK_OK(pt_rms_norm_rotary(&b, xf, gf, 1e-6, 4, 10000, 4, 0));
    double m = 0;
    for (int64_t i = 0; i < pt_tensor_numel(a); i++) m = fmax(m, fabs(at(a, i) - at(b, i)));
    PT_CHECK(m < 1e-5);
    release_all(2, (pt_tensor *[]){a, b});
    PT_CHECK_OK(pt_mix_rms_norm(&ya, &a, x, x0, w, w, 1e-6, 0.5, 1.5));
    PT_CHECK_OK(pt_mix_rms_norm(&yb, &b, xf, x0f, wf, wf, 1e-6, 0.5, 1.5));
    m = 0;
    for (int64_t i = 0; i < pt_tensor_numel(a); i++) m = fmax(m, fabs(at(a, i) - at(b, i)));
    PT_CHECK(m < 1e-5);
    release_all(12, (pt_tensor *[]){x, x0, g, w, xf, x0f, gf, wf, a, b, ya, yb});
}

PT_TEST(no_leaks) {
    pt_tensor_stats s0 = pt_tensor_get_stats();
    {
        int64_t s[4] = {1, 6, 2, 8}, h[1] = {2}, c[1] = {8};
        pt_tensor *x = pt_oc_randn(PT_F32, 4, s, 81), *x0 = pt_oc_randn(PT_F32, 4, s, 82);
        pt_tensor *g = pt_oc_randn(PT_F32, 1, h, 83), *w = pt_oc_randn(PT_F32, 1, c, 84);
        x->requires_grad = x0->requires_grad = g->requires_grad = w->requires_grad = 1;
        pt_tensor *y = NULL, *hh = NULL, *q = NULL, *never = NULL, *never_h = NULL;
        PT_CHECK_OK(pt_mix_rms_norm(&y, &hh, x, x0, w, w, 1e-6, 0.5, 2.0));
        PT_CHECK_OK(pt_rms_norm_rotary(&q, hh, g, 1e-6, 4, 10000, 0, 0));
        /* a graph dropped without backward frees everything too */
        PT_CHECK_OK(pt_mix_rms_norm(&never, &never_h, q, x0, NULL, w, 1e-6, 1, 1));
        release_all(2, (pt_tensor *[]){never, never_h});
        pt_tensor *G = pt_oc_randn(PT_F32, 4, s, 85);
        PT_CHECK_OK(pt_backward(q, G));
        PT_CHECK(x->grad && x0->grad && g->grad && w->grad);
        release_all(8, (pt_tensor *[]){x, x0, g, w, y, hh, q, G});
    }
    pt_tensor_stats s1 = pt_tensor_get_stats();
    PT_CHECK(s1.live_tensors == s0.live_tensors);
    PT_CHECK(s1.live_storages == s0.live_storages);
}

int main(void) { return pt_test_main(); }
