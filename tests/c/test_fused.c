/* test_fused.c — the fused ops (src/kernels/fused.c, cpu/fused.c): exact values on hand cases, error
 * messages, attention against a naive O(T²) reference (several query blocks, threaded path), f32
 * against f64, and a central-difference gradient check in f64 (eps 1e-6, |ana − num| <= 1e-6·|num| +
 * 1e-8) through pt_backward with a random upstream gradient for every differentiable op.
 * Run: ctest --test-dir build -R c_test_fused   (or build/test_fused from the repo root)
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pt_autograd.h"
#include "pt_fused.h"
#include "pt_ops.h"
#include "pt_test.h"

/* ---------------- helpers ---------------- */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double urand(void) { /* uniform in [-1, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

static pt_tensor *mk(pt_dtype dt, int ndim, const int64_t *shape, const double *vals) {
    pt_tensor *t = NULL;
    if (pt_tensor_empty(&t, dt, PT_CPU, ndim, shape)) return NULL;
    int64_t n = pt_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) pt_tensor_set_flat(t, i, vals ? vals[i] : urand());
    return t;
}
static pt_tensor *rnd(pt_dtype dt, int ndim, const int64_t *shape, double scale) {
    pt_tensor *t = mk(dt, ndim, shape, NULL);
    int64_t n = pt_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) {
        double v;
        pt_tensor_get_flat(t, i, &v);
        pt_tensor_set_flat(t, i, v * scale);
    }
    return t;
}
static double at(const pt_tensor *t, int64_t i) {
    double v = NAN;
    pt_tensor_get_flat(t, i, &v);
    return v;
}
static pt_tensor *cast(pt_tensor *t, pt_dtype dt) {
    pt_tensor *r = NULL;
    pt_tensor_to(&r, t, dt, PT_CPU, 1);
    return r;
}
static double max_rel_diff(const pt_tensor *a, const pt_tensor *b) {
    double m = 0;
    int64_t n = pt_tensor_numel(a);
    for (int64_t i = 0; i < n; i++) {
        double x = at(a, i), y = at(b, i), d = fabs(x - y) / fmax(1e-3, fmax(fabs(x), fabs(y)));
        if (!(d <= m)) m = d;
    }
    return m;
}

/* ---------------- gradient check ---------------- */
typedef pt_status (*fwd_fn)(pt_tensor **out, pt_tensor **in, const void *ud);

static double loss_of(pt_tensor *out, pt_tensor *G) {
    double s = 0;
    int64_t n = pt_tensor_numel(out);
    for (int64_t i = 0; i < n; i++) s += at(out, i) * at(G, i);
    return s;
}

/* in[0..n-1] are f64 leaves; diff[i] says whether input i is checked (integer inputs are not). */
static void gradcheck(const char *name, fwd_fn f, int n, pt_tensor **in, const int *diff, const void *ud) {
    for (int i = 0; i < n; i++) {
        in[i]->requires_grad = diff[i];
        pt_tensor_zero_grad(in[i]);
    }
    pt_tensor *out = NULL;
    PT_CHECK_OK(f(&out, in, ud));
    if (!out) return;
    PT_CHECK(out->requires_grad);
    pt_tensor *G = rnd(PT_F64, out->ndim, out->shape, 1.0);
    PT_CHECK_OK(pt_backward(out, G));
    pt_tensor_release(out);
    const double eps = 1e-6;
    double worst = 0;
    int prev = pt_grad_set_enabled(0);
    for (int i = 0; i < n; i++) {
        if (!diff[i]) continue;
        PT_CHECK(in[i]->grad != NULL);
        if (!in[i]->grad) continue;
        int64_t ne = pt_tensor_numel(in[i]);
        for (int64_t e = 0; e < ne; e++) {
            double v = at(in[i], e), lp, lm;
            pt_tensor_set_flat(in[i], e, v + eps);
            PT_CHECK_OK(f(&out, in, ud));
            lp = loss_of(out, G);
            pt_tensor_release(out);
            pt_tensor_set_flat(in[i], e, v - eps);
            PT_CHECK_OK(f(&out, in, ud));
            lm = loss_of(out, G);
            pt_tensor_release(out);
            pt_tensor_set_flat(in[i], e, v);
            double num = (lp - lm) / (2 * eps), ana = at(in[i]->grad, e);
            double err = fabs(ana - num) / (fabs(num) + 1e-2);
            if (err > worst) worst = err;
            if (!(fabs(ana - num) <= 1e-6 * fabs(num) + 1e-8)) {
                char msg[256];
                snprintf(msg, sizeof msg, "%s: input %d element %lld: analytic %.12g numeric %.12g", name, i,
                         (long long)e, ana, num);
                pt_test_fail(__FILE__, __LINE__, msg);
                i = n; /* one report per op */
                break;
            }
        }
    }
    pt_grad_set_enabled(prev);
    printf("  gradcheck %-22s max rel err %.2e\n", name, worst);
    for (int i = 0; i < n; i++) {
        pt_tensor_zero_grad(in[i]);
        in[i]->requires_grad = 0;
    }
    pt_tensor_release(G);
}

static void release_all(int n, pt_tensor **ts) {
    for (int i = 0; i < n; i++) pt_tensor_release(ts[i]);
}

/* ---------------- rms_norm ---------------- */
PT_TEST(rms_norm_exact) {
    int64_t s[1] = {2};
    pt_tensor *x = mk(PT_F64, 1, s, (double[]){3, 4}), *y = NULL, *y2 = NULL;
    PT_CHECK_OK(pt_rms_norm(&y, x, PT_RMS_NORM_EPS, 1.0));
    double d = sqrt(12.5 + 1.1920928955078125e-07);
    PT_CHECK_NEAR(at(y, 0), 3 / d, 1e-15);
    PT_CHECK_NEAR(at(y, 1), 4 / d, 1e-15);
    PT_CHECK_OK(pt_rms_norm(&y2, x, 0.0, 0.5)); /* ln-scale λ multiplies the output */
    PT_CHECK_NEAR(at(y2, 0), 0.5 * 3 / sqrt(12.5), 1e-15);
    release_all(3, (pt_tensor *[]){x, y, y2});
    /* f32 agrees */
    pt_tensor *xf = mk(PT_F32, 1, s, (double[]){3, 4}), *yf = NULL;
    PT_CHECK_OK(pt_rms_norm(&yf, xf, PT_RMS_NORM_EPS, 1.0));
    PT_CHECK(yf->dtype == PT_F32);
    PT_CHECK_NEAR(at(yf, 1), 4 / d, 1e-7);
    release_all(2, (pt_tensor *[]){xf, yf});
}

PT_TEST(rms_norm_errors) {
    int64_t s[1] = {2};
    pt_tensor *xi = NULL, *x = mk(PT_F64, 1, s, (double[]){1, 2}), *y = NULL;
    PT_CHECK_OK(pt_tensor_zeros(&xi, PT_I64, PT_CPU, 1, s));
    PT_CHECK_ERR(pt_rms_norm(&y, xi, 1e-6, 1.0), PT_ERR_DTYPE, "rms_norm: x has dtype i64");
    PT_CHECK(y == NULL);
    PT_CHECK_ERR(pt_rms_norm(&y, x, -1.0, 1.0), PT_ERR_VALUE, "eps must be a finite number >= 0, got -1");
    release_all(2, (pt_tensor *[]){xi, x});
}

static pt_status f_rms(pt_tensor **o, pt_tensor **in, const void *ud) {
    (void)ud;
    return pt_rms_norm(o, in[0], 1e-5, 0.7);
}
PT_TEST(rms_norm_gradcheck) {
    int64_t s[3] = {2, 3, 5};
    pt_tensor *x = rnd(PT_F64, 3, s, 1.0);
    gradcheck("rms_norm", f_rms, 1, &x, (int[]){1}, NULL);
    pt_tensor_release(x);
}

/* ---------------- rotary ---------------- */
PT_TEST(rotary_exact) {
    /* x [1, 2, 1, 4], r = 4, base 10000: inv_freq = [1, 0.01]; position 0 unchanged */
    int64_t s[4] = {1, 2, 1, 4};
    double v[8] = {1, 2, 3, 4, 1, 2, 3, 4};
    pt_tensor *x = mk(PT_F64, 4, s, v), *y = NULL;
    PT_CHECK_OK(pt_rotary(&y, x, 4, 10000, 1024, 0));
    for (int i = 0; i < 4; i++) PT_CHECK_NEAR(at(y, i), v[i], 1e-15);
    PT_CHECK_NEAR(at(y, 4), 1 * cos(1.0) + 3 * sin(1.0), 1e-12);
    PT_CHECK_NEAR(at(y, 6), -1 * sin(1.0) + 3 * cos(1.0), 1e-12);
    PT_CHECK_NEAR(at(y, 5), 2 * cos(0.01) + 4 * sin(0.01), 1e-12);
    PT_CHECK_NEAR(at(y, 7), -2 * sin(0.01) + 4 * cos(0.01), 1e-12);
    /* offset 1: position 0 becomes position 1 */
    pt_tensor *y1 = NULL;
    PT_CHECK_OK(pt_rotary(&y1, x, 4, 10000, 1024, 1));
    PT_CHECK_NEAR(at(y1, 0), at(y, 4), 1e-15);
    PT_CHECK_NEAR(at(y1, 3), at(y, 7), 1e-15);
    /* partial: r = 2 of D = 4 rotates pairs (0, 1); dims 2, 3 pass through */
    pt_tensor *yp = NULL;
    PT_CHECK_OK(pt_rotary(&yp, x, 2, 10000, 1024, 0));
    PT_CHECK_NEAR(at(yp, 4), 1 * cos(1.0) + 2 * sin(1.0), 1e-12);
    PT_CHECK_NEAR(at(yp, 5), -1 * sin(1.0) + 2 * cos(1.0), 1e-12);
    PT_CHECK(at(yp, 6) == 3 && at(yp, 7) == 4);
    release_all(4, (pt_tensor *[]){x, y, y1, yp});
}

PT_TEST(rotary_ntk_base) {
    /* spec §2.2: PROTEUS r=64 base 50,000 T=2048 -> 102,261.14; #598/#1539 r=16 base 10,000 -> 22,081.79 */
    PT_CHECK_NEAR(pt_rotary_effective_base(50000, 64, 2048, 1024), 102261.14, 0.01);
    PT_CHECK_NEAR(pt_rotary_effective_base(10000, 16, 2048, 1024), 22081.79, 0.01);
    PT_CHECK(pt_rotary_effective_base(10000, 16, 1024, 1024) == 10000);
    PT_CHECK(pt_rotary_effective_base(10000, 16, 2048, 0) == 10000);
    /* the op uses it: T = 3 > train_len = 2, r = 4 -> base' = base·1.5² */
    int64_t s[4] = {1, 3, 1, 4};
    pt_tensor *x = rnd(PT_F64, 4, s, 1.0), *y = NULL, *yr = NULL;
    PT_CHECK_OK(pt_rotary(&y, x, 4, 100, 2, 0));
    PT_CHECK_OK(pt_rotary(&yr, x, 4, 100 * 2.25, 0, 0));
    PT_CHECK(max_rel_diff(y, yr) < 1e-14);
    release_all(3, (pt_tensor *[]){x, y, yr});
}

PT_TEST(rotary_errors) {
    int64_t s[4] = {1, 2, 1, 6}, s3[3] = {2, 1, 6};
    pt_tensor *x = rnd(PT_F64, 4, s, 1.0), *x3 = rnd(PT_F64, 3, s3, 1.0), *y = NULL;
    PT_CHECK_ERR(pt_rotary(&y, x, 3, 10000, 1024, 0), PT_ERR_VALUE, "rotary dims must be even and in [2, D = 6], got 3");
    PT_CHECK_ERR(pt_rotary(&y, x, 8, 10000, 1024, 0), PT_ERR_VALUE, "got 8");
    PT_CHECK_ERR(pt_rotary(&y, x3, 0, 10000, 1024, 0), PT_ERR_SHAPE, "rotary: x must be 4-D [B, T, H, D], got shape [2, 1, 6]");
    PT_CHECK_ERR(pt_rotary(&y, x, 2, 10000, 1, 0), PT_ERR_VALUE, "needs rotary dims > 2");
    release_all(2, (pt_tensor *[]){x, x3});
}

typedef struct { int64_t r, train, off; } rot_ud;
static pt_status f_rot(pt_tensor **o, pt_tensor **in, const void *ud) {
    const rot_ud *u = ud;
    return pt_rotary(o, in[0], u->r, 10, u->train, u->off);
}
PT_TEST(rotary_gradcheck) {
    int64_t s[4] = {2, 5, 3, 6};
    pt_tensor *x = rnd(PT_F64, 4, s, 1.0);
    rot_ud u = {4, 4, 1}; /* partial rotary, NTK active (T = 5 > 4), offset 1 */
    gradcheck("rotary", f_rot, 1, &x, (int[]){1}, &u);
    pt_tensor_release(x);
}

/* ---------------- attention ---------------- */
PT_TEST(attention_exact) {
    /* D = 1, scale 1: t = 1 sees scores [0, ln 2] -> p = [1/3, 2/3]; v = [3, 6] -> y = [3, 5].
     * H = 2 query heads share the single kv head (GQA). */
    int64_t sq[4] = {1, 2, 2, 1}, sk[4] = {1, 2, 1, 1};
    pt_tensor *q = mk(PT_F64, 4, sq, (double[]){1, 1, 1, 1}), *k = mk(PT_F64, 4, sk, (double[]){0, log(2.0)});
    pt_tensor *v = mk(PT_F64, 4, sk, (double[]){3, 6}), *y = NULL;
    PT_CHECK_OK(pt_attention(&y, q, k, v, 0));
    PT_CHECK_NEAR(at(y, 0), 3, 1e-14);
    PT_CHECK_NEAR(at(y, 1), 3, 1e-14);
    PT_CHECK_NEAR(at(y, 2), 5, 1e-14);
    PT_CHECK_NEAR(at(y, 3), 5, 1e-14);
    release_all(4, (pt_tensor *[]){q, k, v, y});
}

PT_TEST(attention_errors) {
    int64_t sq[4] = {1, 4, 8, 2}, sk[4] = {1, 4, 3, 2}, sk2[4] = {1, 5, 4, 2};
    pt_tensor *q = rnd(PT_F64, 4, sq, 1), *k = rnd(PT_F64, 4, sk, 1), *k2 = rnd(PT_F64, 4, sk2, 1);
    pt_tensor *kf = rnd(PT_F32, 4, sk, 1), *y = NULL;
    PT_CHECK_ERR(pt_attention(&y, q, k, k, 0), PT_ERR_SHAPE, "the 3 kv heads of k [1, 4, 3, 2] do not divide the 8");
    PT_CHECK_ERR(pt_attention(&y, q, k2, k2, 0), PT_ERR_SHAPE, "differ in B, T or D");
    PT_CHECK_ERR(pt_attention(&y, q, kf, kf, 0), PT_ERR_DTYPE, "attention: k has dtype f32 but q has f64");
    PT_CHECK_ERR(pt_attention(&y, q, k, k2, 0), PT_ERR_SHAPE, "must have the same shape");
    release_all(4, (pt_tensor *[]){q, k, k2, kf});
}

/* naive reference: full score matrix per (b, h), f64 */
static void naive_attention(const pt_tensor *q, const pt_tensor *k, const pt_tensor *v, const pt_tensor *gy,
                            double *y, double *dq, double *dk, double *dv) {
    int64_t B = q->shape[0], T = q->shape[1], H = q->shape[2], Hkv = k->shape[2], D = q->shape[3];
    double sc = 1 / sqrt((double)D);
    double *P = malloc(sizeof(double) * (size_t)(T * T)), *dP = malloc(sizeof(double) * (size_t)(T * T));
    memset(dk, 0, sizeof(double) * (size_t)(B * T * Hkv * D));
    memset(dv, 0, sizeof(double) * (size_t)(B * T * Hkv * D));
#define Q(b, t, h, d) at(q, (((b) * T + (t)) * H + (h)) * D + (d))
#define K(b, t, g, d) at(k, (((b) * T + (t)) * Hkv + (g)) * D + (d))
#define V(b, t, g, d) at(v, (((b) * T + (t)) * Hkv + (g)) * D + (d))
#define GY(b, t, h, d) at(gy, (((b) * T + (t)) * H + (h)) * D + (d))
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++) {
            int64_t g = h / (H / Hkv);
            for (int64_t i = 0; i < T; i++) {
                double mx = -INFINITY, sum = 0;
                for (int64_t j = 0; j <= i; j++) {
                    double s = 0;
                    for (int64_t d = 0; d < D; d++) s += Q(b, i, h, d) * K(b, j, g, d);
                    P[i * T + j] = s * sc;
                    mx = fmax(mx, s * sc);
                }
                for (int64_t j = 0; j <= i; j++) sum += (P[i * T + j] = exp(P[i * T + j] - mx));
                for (int64_t j = 0; j <= i; j++) P[i * T + j] /= sum;
                for (int64_t d = 0; d < D; d++) {
                    double acc = 0;
                    for (int64_t j = 0; j <= i; j++) acc += P[i * T + j] * V(b, j, g, d);
                    y[((b * T + i) * H + h) * D + d] = acc;
                }
            }
            for (int64_t i = 0; i < T; i++) {
                double di = 0;
                for (int64_t j = 0; j <= i; j++) {
                    double s = 0;
                    for (int64_t d = 0; d < D; d++) s += GY(b, i, h, d) * V(b, j, g, d);
                    dP[i * T + j] = s;
                    di += s * P[i * T + j];
                }
                for (int64_t j = 0; j <= i; j++) {
                    double ds = P[i * T + j] * (dP[i * T + j] - di) * sc;
                    for (int64_t d = 0; d < D; d++) {
                        dq[((b * T + i) * H + h) * D + d] += ds * K(b, j, g, d);
                        dk[((b * T + j) * Hkv + g) * D + d] += ds * Q(b, i, h, d);
                        dv[((b * T + j) * Hkv + g) * D + d] += P[i * T + j] * GY(b, i, h, d);
                    }
                }
            }
        }
#undef Q
#undef K
#undef V
#undef GY
    free(P);
    free(dP);
}

static void attention_vs_naive(pt_dtype dt, int64_t B, int64_t T, int64_t H, int64_t Hkv, int64_t D, double tol) {
    int64_t sq[4] = {B, T, H, D}, sk[4] = {B, T, Hkv, D};
    pt_tensor *q = rnd(PT_F64, 4, sq, 1), *k = rnd(PT_F64, 4, sk, 1), *v = rnd(PT_F64, 4, sk, 1);
    pt_tensor *gy = rnd(PT_F64, 4, sq, 1), *y = NULL;
    pt_tensor *qd = cast(q, dt), *kd = cast(k, dt), *vd = cast(v, dt);
    int64_t nq = B * T * H * D, nk = B * T * Hkv * D;
    double *ry = calloc((size_t)nq, sizeof(double)), *rdq = calloc((size_t)nq, sizeof(double));
    double *rdk = calloc((size_t)nk, sizeof(double)), *rdv = calloc((size_t)nk, sizeof(double));
    naive_attention(q, k, v, gy, ry, rdq, rdk, rdv);
    qd->requires_grad = kd->requires_grad = vd->requires_grad = 1;
    PT_CHECK_OK(pt_attention(&y, qd, kd, vd, 0));
    PT_CHECK_OK(pt_backward(y, gy));
    double e = 0;
    for (int64_t i = 0; i < nq; i++) e = fmax(e, fabs(at(y, i) - ry[i]));
    for (int64_t i = 0; i < nq; i++) e = fmax(e, fabs(at(qd->grad, i) - rdq[i]));
    for (int64_t i = 0; i < nk; i++) e = fmax(e, fabs(at(kd->grad, i) - rdk[i]));
    for (int64_t i = 0; i < nk; i++) e = fmax(e, fabs(at(vd->grad, i) - rdv[i]));
    printf("  attention %s B=%lld T=%lld H=%lld Hkv=%lld D=%lld: max abs diff vs naive %.2e\n", pt_dtype_name(dt),
           (long long)B, (long long)T, (long long)H, (long long)Hkv, (long long)D, e);
    PT_CHECK(e < tol);
    free(ry);
    free(rdq);
    free(rdk);
    free(rdv);
    release_all(8, (pt_tensor *[]){q, k, v, gy, y, qd, kd, vd});
}

PT_TEST(attention_matches_naive) {
    attention_vs_naive(PT_F64, 1, 5, 2, 1, 3, 1e-13);
    attention_vs_naive(PT_F64, 2, 200, 4, 2, 8, 1e-12); /* 4 query blocks, threaded path */
    attention_vs_naive(PT_F32, 2, 130, 8, 4, 16, 2e-5);
}

static pt_status f_att(pt_tensor **o, pt_tensor **in, const void *ud) {
    (void)ud;
    return pt_attention(o, in[0], in[1], in[2], 0);
}
PT_TEST(attention_gradcheck) {
    int64_t sq[4] = {2, 5, 4, 3}, sk[4] = {2, 5, 2, 3};
    pt_tensor *in[3] = {rnd(PT_F64, 4, sq, 1), rnd(PT_F64, 4, sk, 1), rnd(PT_F64, 4, sk, 1)};
    gradcheck("attention", f_att, 3, in, (int[]){1, 1, 1}, NULL);
    release_all(3, in);
    /* T = 67 crosses a query block boundary (64) */
    int64_t lq[4] = {1, 67, 2, 2}, lk[4] = {1, 67, 1, 2};
    pt_tensor *in2[3] = {rnd(PT_F64, 4, lq, 1), rnd(PT_F64, 4, lk, 1), rnd(PT_F64, 4, lk, 1)};
    gradcheck("attention T=67", f_att, 3, in2, (int[]){1, 1, 1}, NULL);
    release_all(3, in2);
}

/* ---------------- XSA ---------------- */
PT_TEST(xsa_exact) {
    /* y = [1, 1], v = [2, 0] -> v̂ = [1, 0] -> out = [0, 1]; a zero v leaves y unchanged */
    int64_t s[4] = {1, 2, 1, 2};
    pt_tensor *y = mk(PT_F64, 4, s, (double[]){1, 1, 5, -3}), *v = mk(PT_F64, 4, s, (double[]){2, 0, 0, 0}), *o = NULL;
    PT_CHECK_OK(pt_xsa(&o, y, v));
    PT_CHECK(at(o, 0) == 0 && at(o, 1) == 1 && at(o, 2) == 5 && at(o, 3) == -3);
    release_all(3, (pt_tensor *[]){y, v, o});
    /* GQA: heads 0, 1 use kv head 0; heads 2, 3 kv head 1; the result is orthogonal to v̂ */
    int64_t sy[4] = {1, 1, 4, 3}, sv[4] = {1, 1, 2, 3};
    pt_tensor *y2 = rnd(PT_F64, 4, sy, 1), *v2 = rnd(PT_F64, 4, sv, 1), *o2 = NULL;
    PT_CHECK_OK(pt_xsa(&o2, y2, v2));
    for (int h = 0; h < 4; h++) {
        double dot = 0;
        for (int d = 0; d < 3; d++) dot += at(o2, h * 3 + d) * at(v2, (h / 2) * 3 + d);
        PT_CHECK_NEAR(dot, 0, 1e-14);
    }
    release_all(3, (pt_tensor *[]){y2, v2, o2});
}

PT_TEST(xsa_errors) {
    int64_t sy[4] = {1, 2, 3, 4}, sv[4] = {1, 2, 2, 4};
    pt_tensor *y = rnd(PT_F64, 4, sy, 1), *v = rnd(PT_F64, 4, sv, 1), *o = NULL;
    PT_CHECK_ERR(pt_xsa(&o, y, v), PT_ERR_SHAPE, "xsa: the 2 kv heads of v [1, 2, 2, 4] do not divide the 3 heads");
    release_all(2, (pt_tensor *[]){y, v});
}

static pt_status f_xsa(pt_tensor **o, pt_tensor **in, const void *ud) {
    (void)ud;
    return pt_xsa(o, in[0], in[1]);
}
PT_TEST(xsa_gradcheck) {
    int64_t sy[4] = {2, 3, 4, 5}, sv[4] = {2, 3, 2, 5};
    pt_tensor *in[2] = {rnd(PT_F64, 4, sy, 1), rnd(PT_F64, 4, sv, 1)};
    gradcheck("xsa", f_xsa, 2, in, (int[]){1, 1}, NULL);
    release_all(2, in);
}

/* ---------------- activations ---------------- */
PT_TEST(activations_exact) {
    int64_t s[2] = {1, 2}, c[1] = {2};
    pt_tensor *x = mk(PT_F64, 2, s, (double[]){-2, 3}), *sc = mk(PT_F64, 1, c, (double[]){2, 3});
    pt_tensor *bi = mk(PT_F64, 1, c, (double[]){1, 1}), *a = NULL, *b = NULL, *d = NULL;
    PT_CHECK_OK(pt_relu2(&a, x));
    PT_CHECK(at(a, 0) == 0 && at(a, 1) == 9);
    PT_CHECK_OK(pt_leaky_relu2(&b, x, 0.5));
    PT_CHECK(at(b, 0) == 1 && at(b, 1) == 9);
    PT_CHECK_OK(pt_star_relu(&d, x, sc, bi));
    PT_CHECK(at(d, 0) == 1 && at(d, 1) == 28);
    pt_tensor *bad = mk(PT_F64, 1, (int64_t[]){3}, (double[]){1, 1, 1}), *e = NULL;
    PT_CHECK_ERR(pt_star_relu(&e, x, bad, bi), PT_ERR_SHAPE, "star_relu: scale [3] and bias [2] must be 1-D of size 2");
    release_all(7, (pt_tensor *[]){x, sc, bi, a, b, d, bad});
}

static pt_status f_relu2(pt_tensor **o, pt_tensor **in, const void *ud) {
    (void)ud;
    return pt_relu2(o, in[0]);
}
static pt_status f_leaky2(pt_tensor **o, pt_tensor **in, const void *ud) {
    (void)ud;
    return pt_leaky_relu2(o, in[0], 0.5);
}
static pt_status f_star(pt_tensor **o, pt_tensor **in, const void *ud) {
    (void)ud;
    return pt_star_relu(o, in[0], in[1], in[2]);
}
PT_TEST(activations_gradcheck) {
    int64_t s[3] = {2, 3, 7}, c[1] = {7};
    pt_tensor *x = rnd(PT_F64, 3, s, 1);
    gradcheck("relu2", f_relu2, 1, &x, (int[]){1}, NULL);
    gradcheck("leaky_relu2", f_leaky2, 1, &x, (int[]){1}, NULL);
    pt_tensor *in[3] = {x, rnd(PT_F64, 1, c, 1), rnd(PT_F64, 1, c, 1)};
    gradcheck("star_relu", f_star, 3, in, (int[]){1, 1, 1}, NULL);
    release_all(3, in);
}

/* ---------------- softcapped cross-entropy ---------------- */
PT_TEST(cross_entropy_exact) {
    int64_t s[2] = {2, 4}, n[1] = {2};
    pt_tensor *x = NULL, *t = NULL, *l = NULL, *ln = NULL;
    PT_CHECK_OK(pt_tensor_zeros(&x, PT_F64, PT_CPU, 2, s));
    PT_CHECK_OK(pt_tensor_zeros(&t, PT_I64, PT_CPU, 1, n));
    pt_tensor_set_flat(t, 0, 1);
    pt_tensor_set_flat(t, 1, 3);
    PT_CHECK_OK(pt_softcap_cross_entropy(&l, x, t, 30, PT_CE_MEAN));
    PT_CHECK(l->ndim == 0);
    PT_CHECK_NEAR(at(l, 0), log(4.0), 1e-15);
    PT_CHECK_OK(pt_softcap_cross_entropy(&ln, x, t, 30, PT_CE_NONE));
    PT_CHECK(ln->ndim == 1 && ln->shape[0] == 2);
    PT_CHECK_NEAR(at(ln, 1), log(4.0), 1e-15);
    release_all(4, (pt_tensor *[]){x, t, l, ln});
    /* softcap: logits [60, 0], cap 30 -> z = [30 tanh 2, 0]; target 1 -> log(1 + e^z0) */
    int64_t s2[2] = {1, 2}, n2[1] = {1};
    pt_tensor *x2 = mk(PT_F64, 2, s2, (double[]){60, 0}), *t2 = mk(PT_I32, 1, n2, (double[]){1}), *l2 = NULL;
    PT_CHECK_OK(pt_softcap_cross_entropy(&l2, x2, t2, 30, PT_CE_MEAN));
    PT_CHECK_NEAR(at(l2, 0), log1p(exp(30 * tanh(2.0))), 1e-12);
    release_all(3, (pt_tensor *[]){x2, t2, l2});
}

PT_TEST(cross_entropy_errors) {
    int64_t s[2] = {3, 4}, n[1] = {3};
    pt_tensor *x = rnd(PT_F64, 2, s, 1), *t = mk(PT_I64, 1, n, (double[]){0, 7, 1}), *l = NULL;
    PT_CHECK_ERR(pt_softcap_cross_entropy(&l, x, t, 30, PT_CE_MEAN), PT_ERR_INDEX,
                 "softcap_cross_entropy: target 7 at position 1 (flat index into targets [3]) is out of range [0, 4)");
    pt_tensor *tn = mk(PT_I64, 1, n, (double[]){0, 1, -1});
    PT_CHECK_ERR(pt_softcap_cross_entropy(&l, x, tn, 30, PT_CE_NONE), PT_ERR_INDEX, "target -1 at position 2");
    pt_tensor *tf = rnd(PT_F32, 1, n, 1), *t2 = mk(PT_I64, 1, (int64_t[]){2}, (double[]){0, 1});
    PT_CHECK_ERR(pt_softcap_cross_entropy(&l, x, tf, 30, PT_CE_MEAN), PT_ERR_DTYPE, "targets have dtype f32");
    PT_CHECK_ERR(pt_softcap_cross_entropy(&l, x, t2, 30, PT_CE_MEAN), PT_ERR_SHAPE,
                 "targets [2] must have the shape of logits [3, 4] without its last dim");
    release_all(5, (pt_tensor *[]){x, t, tn, tf, t2});
}

/* pt_ce_mean through the CPU "ce_mean" kernel: exactly the f64 sum in row order, rounded once (values
 * whose sum depends on the order, so another order would show) */
PT_TEST(ce_mean_is_the_row_order_f64_sum) {
    const int64_t n = 1000;
    pt_tensor *x32 = NULL, *x64 = NULL, *m = NULL;
    PT_CHECK_OK(pt_tensor_empty(&x32, PT_F32, PT_CPU, 1, &n));
    PT_CHECK_OK(pt_tensor_empty(&x64, PT_F64, PT_CPU, 1, &n));
    double want = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = (i % 7 == 0 ? 1e8 : 1.0) * urand() + (i % 3 == 0 ? 1e-9 : 0);
        pt_tensor_set_flat(x32, i, v);
        pt_tensor_set_flat(x64, i, v);
    }
    const float *p32 = pt_tensor_data(x32);
    for (int64_t i = 0; i < n; i++) want += (double)p32[i];
    PT_CHECK_OK(pt_ce_mean(&m, x32));
    PT_CHECK(m->ndim == 0 && m->dtype == PT_F32 && pt_device_eq(m->device, PT_CPU));
    PT_CHECK(*(const float *)pt_tensor_data(m) == (float)(want / (double)n));
    pt_tensor_release(m);
    const double *p64 = pt_tensor_data(x64);
    want = 0;
    for (int64_t i = 0; i < n; i++) want += p64[i];
    PT_CHECK_OK(pt_ce_mean(&m, x64));
    PT_CHECK(m->dtype == PT_F64 && *(const double *)pt_tensor_data(m) == want / (double)n);
    pt_tensor_release(m);
    /* a strided view is summed in its own row order (made contiguous first) */
    int64_t s2[2] = {2, 3};
    pt_tensor *a = mk(PT_F64, 2, s2, (double[]){1e17, 1, -1e17, 3, 5, 7}), *at_ = NULL;
    PT_CHECK_OK(pt_transpose(&at_, a, 0, 1)); /* rows 1e17, 3 | 1, 5 | -1e17, 7 */
    PT_CHECK_OK(pt_ce_mean(&m, at_));
    want = ((((1e17 + 3.0) + 1.0) + 5.0) + -1e17) + 7.0;
    PT_CHECK(*(const double *)pt_tensor_data(m) == want / 6.0);
    pt_tensor_release(m);
    /* the CE ops' mean is this value, bit for bit */
    int64_t sl[2] = {5, 6}, st[1] = {5};
    pt_tensor *z = rnd(PT_F32, 2, sl, 3), *t = mk(PT_I64, 1, st, (double[]){0, 5, 2, 2, 4}), *l = NULL, *ln = NULL;
    PT_CHECK_OK(pt_softcap_cross_entropy(&l, z, t, 15, PT_CE_MEAN));
    PT_CHECK_OK(pt_softcap_cross_entropy(&ln, z, t, 15, PT_CE_NONE));
    PT_CHECK_OK(pt_ce_mean(&m, ln));
    PT_CHECK(*(const float *)pt_tensor_data(l) == *(const float *)pt_tensor_data(m));
    pt_tensor *ti = NULL;
    PT_CHECK_ERR(pt_ce_mean(&ti, t), PT_ERR_DTYPE, "ce_mean: nll has dtype i64");
    PT_CHECK(ti == NULL);
    release_all(9, (pt_tensor *[]){x32, x64, m, a, at_, z, t, l, ln});
}

typedef struct { pt_tensor *targets; double cap; int red; } ce_ud;
static pt_status f_ce(pt_tensor **o, pt_tensor **in, const void *ud) {
    const ce_ud *u = ud;
    return pt_softcap_cross_entropy(o, in[0], u->targets, u->cap, (pt_ce_reduction)u->red);
}
PT_TEST(cross_entropy_gradcheck) {
    int64_t s[3] = {2, 3, 6}, n[2] = {2, 3};
    pt_tensor *x = rnd(PT_F64, 3, s, 4.0), *t = mk(PT_I64, 2, n, (double[]){0, 5, 2, 3, 3, 1});
    ce_ud u = {t, 3.0, PT_CE_MEAN}; /* a small cap so tanh bends the logits */
    gradcheck("softcap_ce mean", f_ce, 1, &x, (int[]){1}, &u);
    u.red = PT_CE_NONE;
    gradcheck("softcap_ce none", f_ce, 1, &x, (int[]){1}, &u);
    u.cap = 0; /* plain cross-entropy */
    gradcheck("softcap_ce nocap", f_ce, 1, &x, (int[]){1}, &u);
    release_all(2, (pt_tensor *[]){x, t});
}

/* ---------------- BigramHash ---------------- */
PT_TEST(bigram_hash_values) {
    /* expected values computed with torch int32 tensors:
     * out[..., 1:] = torch.bitwise_xor(36313 * t[..., 1:], 27191 * t[..., :-1]) % 2047
     * (36313·100000 and 36313·70000 wrap around in int32) */
    int64_t s[2] = {1, 6};
    pt_tensor *t = mk(PT_I32, 2, s, (double[]){5, 7, 1000, 100000, 70000, 3}), *b = NULL;
    PT_CHECK_OK(pt_bigram_hash(&b, t, 2048));
    PT_CHECK(b->dtype == PT_I64);
    const double want[6] = {2047, 1082, 1359, 219, 1649, 1719};
    for (int i = 0; i < 6; i++) PT_CHECK(at(b, i) == want[i]);
    /* each row restarts at the reserved bucket */
    int64_t s2[2] = {2, 2};
    pt_tensor *t2 = mk(PT_I64, 2, s2, (double[]){5, 7, 5, 7}), *b2 = NULL;
    PT_CHECK_OK(pt_bigram_hash(&b2, t2, 2048));
    PT_CHECK(at(b2, 0) == 2047 && at(b2, 1) == 1082 && at(b2, 2) == 2047 && at(b2, 3) == 1082);
    pt_tensor *tn = mk(PT_I64, 2, s2, (double[]){5, 7, -5, 7}), *bn = NULL;
    PT_CHECK_ERR(pt_bigram_hash(&bn, tn, 2048), PT_ERR_VALUE, "bigram_hash: token -5 at position 2");
    PT_CHECK_ERR(pt_bigram_hash(&bn, t2, 1), PT_ERR_VALUE, "buckets must be in [2, 2^31 - 1]");
    release_all(5, (pt_tensor *[]){t, b, t2, b2, tn});
}

/* ---------------- SmearGate ---------------- */
PT_TEST(smear_gate_exact) {
    int64_t s[3] = {1, 2, 1}, c[1] = {1};
    pt_tensor *x = mk(PT_F64, 3, s, (double[]){1, 3}), *g = mk(PT_F64, 1, c, (double[]){0}), *y = NULL;
    PT_CHECK_OK(pt_smear_gate(&y, x, g));
    PT_CHECK(at(y, 0) == 0.5 && at(y, 1) == 2);
    pt_tensor *g2 = mk(PT_F64, 1, (int64_t[]){2}, (double[]){0, 0}), *e = NULL;
    PT_CHECK_ERR(pt_smear_gate(&e, x, g2), PT_ERR_SHAPE, "smear_gate: gate [2] must be 1-D of size C = 1");
    release_all(4, (pt_tensor *[]){x, g, y, g2});
}

static pt_status f_smear(pt_tensor **o, pt_tensor **in, const void *ud) {
    (void)ud;
    return pt_smear_gate(o, in[0], in[1]);
}
PT_TEST(smear_gate_gradcheck) {
    int64_t s[3] = {2, 4, 5}, c[1] = {5};
    pt_tensor *in[2] = {rnd(PT_F64, 3, s, 1), rnd(PT_F64, 1, c, 1)};
    gradcheck("smear_gate", f_smear, 2, in, (int[]){1, 1}, NULL);
    release_all(2, in);
}

/* ---------------- LoRA ---------------- */
PT_TEST(lora_exact) {
    /* x = [1, 2], A = [3, 4] -> h = 11; B = [1, -1]ᵀ -> y = [11, -11] */
    pt_tensor *x = mk(PT_F64, 3, (int64_t[]){1, 1, 2}, (double[]){1, 2});
    pt_tensor *A = mk(PT_F64, 3, (int64_t[]){1, 1, 2}, (double[]){3, 4});
    pt_tensor *B = mk(PT_F64, 3, (int64_t[]){1, 2, 1}, (double[]){1, -1}), *y = NULL;
    PT_CHECK_OK(pt_lora(&y, x, A, B));
    PT_CHECK(y->shape[2] == 2 && at(y, 0) == 11 && at(y, 1) == -11);
    pt_tensor *e = NULL;
    PT_CHECK_ERR(pt_lora(&e, x, B, A), PT_ERR_SHAPE, "lora: shapes x [1, 1, 2], A [1, 2, 1], B [1, 1, 2] do not fit");
    release_all(4, (pt_tensor *[]){x, A, B, y});
}

static pt_status f_lora(pt_tensor **o, pt_tensor **in, const void *ud) {
    (void)ud;
    return pt_lora(o, in[0], in[1], in[2]);
}
PT_TEST(lora_gradcheck) {
    pt_tensor *in[3] = {rnd(PT_F64, 3, (int64_t[]){2, 3, 5}, 1), rnd(PT_F64, 3, (int64_t[]){2, 2, 5}, 1),
                        rnd(PT_F64, 3, (int64_t[]){2, 4, 2}, 1)};
    gradcheck("lora", f_lora, 3, in, (int[]){1, 1, 1}, NULL);
    release_all(3, in);
}

/* ---------------- cross-cutting ---------------- */
PT_TEST(f32_matches_f64) {
    int64_t s[4] = {2, 9, 4, 8}, sk[4] = {2, 9, 2, 8};
    pt_tensor *x = rnd(PT_F64, 4, s, 1), *v = rnd(PT_F64, 4, sk, 1), *xf = cast(x, PT_F32), *vf = cast(v, PT_F32);
    pt_tensor *a = NULL, *b = NULL;
    PT_CHECK_OK(pt_rms_norm(&a, x, 1e-6, 1));
    PT_CHECK_OK(pt_rms_norm(&b, xf, 1e-6, 1));
    PT_CHECK(max_rel_diff(a, b) < 1e-6);
    release_all(2, (pt_tensor *[]){a, b});
    PT_CHECK_OK(pt_rotary(&a, x, 4, 10000, 4, 0));
    PT_CHECK_OK(pt_rotary(&b, xf, 4, 10000, 4, 0));
    PT_CHECK(max_rel_diff(a, b) < 1e-5);
    release_all(2, (pt_tensor *[]){a, b});
    PT_CHECK_OK(pt_xsa(&a, x, v));
    PT_CHECK_OK(pt_xsa(&b, xf, vf));
    PT_CHECK(max_rel_diff(a, b) < 1e-5);
    release_all(2, (pt_tensor *[]){a, b});
    release_all(4, (pt_tensor *[]){x, v, xf, vf});
}

PT_TEST(non_contiguous_inputs) {
    /* a transposed view gives the same values and gradients as its contiguous copy */
    pt_tensor *base = rnd(PT_F64, 2, (int64_t[]){5, 3}, 1), *xt = NULL, *xc = NULL, *y1 = NULL, *y2 = NULL;
    PT_CHECK_OK(pt_transpose(&xt, base, 0, 1));
    PT_CHECK(!pt_tensor_is_contiguous(xt));
    xc = cast(xt, PT_F64);
    xt->requires_grad = xc->requires_grad = 1;
    PT_CHECK_OK(pt_rms_norm(&y1, xt, 1e-6, 1));
    PT_CHECK_OK(pt_rms_norm(&y2, xc, 1e-6, 1));
    PT_CHECK(max_rel_diff(y1, y2) == 0);
    pt_tensor *G = rnd(PT_F64, 2, (int64_t[]){3, 5}, 1);
    PT_CHECK_OK(pt_backward(y1, G));
    PT_CHECK_OK(pt_backward(y2, G));
    PT_CHECK(xt->grad && xc->grad && max_rel_diff(xt->grad, xc->grad) < 1e-15);
    release_all(6, (pt_tensor *[]){base, xt, xc, y1, y2, G});
}

PT_TEST(no_leaks) {
    pt_tensor_stats s0 = pt_tensor_get_stats();
    {
        int64_t sq[4] = {1, 6, 2, 4}, sk[4] = {1, 6, 1, 4};
        pt_tensor *q = rnd(PT_F32, 4, sq, 1), *k = rnd(PT_F32, 4, sk, 1), *v = rnd(PT_F32, 4, sk, 1);
        q->requires_grad = k->requires_grad = v->requires_grad = 1;
        pt_tensor *y = NULL, *z = NULL, *n = NULL;
        PT_CHECK_OK(pt_attention(&y, q, k, v, 0));
        PT_CHECK_OK(pt_xsa(&z, y, v));
        PT_CHECK_OK(pt_rms_norm(&n, z, 1e-6, 1));
        pt_tensor *never = NULL; /* a graph that is dropped without backward frees everything too */
        PT_CHECK_OK(pt_relu2(&never, n));
        pt_tensor_release(never);
        pt_tensor *G = rnd(PT_F32, 4, sq, 1);
        PT_CHECK_OK(pt_backward(n, G));
        release_all(7, (pt_tensor *[]){q, k, v, y, z, n, G});
    }
    pt_tensor_stats s1 = pt_tensor_get_stats();
    PT_CHECK(s1.live_tensors == s0.live_tensors);
    PT_CHECK(s1.live_storages == s0.live_storages);
}

int main(void) { return pt_test_main(); }
