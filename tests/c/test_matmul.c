/* test_matmul.c — pt_matmul (1-D/2-D/batched, broadcast batch dims, transposed and strided operands),
 * pt_qr, pt_cholesky, pt_inverse: exact values on small hand-computed cases, error messages, and f64
 * finite-difference gradient checks of the matmul and inverse backwards.
 *
 *   cmake --build build && ctest --test-dir build -R test_matmul --output-on-failure
 */
#include <math.h>
#include <string.h>

#include "pt_opcheck.h"
#include "pt_ops.h"
#include "pt_test.h"

#define SHAPE(...) ((int64_t[]){__VA_ARGS__})
#define VALS(...) ((double[]){__VA_ARGS__})

static pt_tensor *A23(pt_dtype dt) { return pt_oc_make(dt, 2, SHAPE(2, 3), VALS(1, 2, 3, 4, 5, 6)); }
static pt_tensor *B32(pt_dtype dt) { return pt_oc_make(dt, 2, SHAPE(3, 2), VALS(7, 8, 9, 10, 11, 12)); }

PT_TEST(matmul_2d_exact) {
    pt_tensor *a = A23(PT_F32), *b = B32(PT_F32), *c = NULL;
    PT_CHECK_OK(pt_matmul(&c, a, b));
    PT_CHECK(pt_oc_shape_is(c, 2, SHAPE(2, 2)) && c->dtype == PT_F32 && pt_oc_equal(c, 4, VALS(58, 64, 139, 154), 0));
    pt_tensor_release(c);
    /* a transposed view goes to BLAS as a transpose: AᵀA */
    pt_tensor *at = NULL;
    PT_CHECK_OK(pt_transpose(&at, a, 0, 1));
    PT_CHECK_OK(pt_matmul(&c, at, a));
    PT_CHECK(pt_oc_shape_is(c, 2, SHAPE(3, 3)) && pt_oc_equal(c, 9, VALS(17, 22, 27, 22, 29, 36, 27, 36, 45), 0));
    pt_tensor_release(c);
    /* B Bᵀ with the right operand transposed */
    pt_tensor *bt = NULL;
    PT_CHECK_OK(pt_transpose(&bt, b, 0, 1));
    PT_CHECK_OK(pt_matmul(&c, b, bt));
    PT_CHECK(pt_oc_equal(c, 9, VALS(113, 143, 173, 143, 181, 219, 173, 219, 265), 0));
    pt_tensor_release(c);
    /* an expanded operand (row stride 0) is copied first */
    pt_tensor *r = pt_oc_make(PT_F32, 2, SHAPE(1, 3), VALS(1, 2, 3)), *re = NULL;
    PT_CHECK_OK(pt_expand(&re, r, 2, SHAPE(2, 3)));
    PT_CHECK_OK(pt_matmul(&c, re, b));
    PT_CHECK(pt_oc_equal(c, 4, VALS(58, 64, 58, 64), 0));
    pt_tensor_release(c);
    pt_tensor_release(r);
    pt_tensor_release(re);
    pt_tensor_release(at);
    pt_tensor_release(bt);
    pt_tensor_release(a);
    pt_tensor_release(b);
}

PT_TEST(matmul_1d_cases) {
    pt_tensor *u = pt_oc_make(PT_F64, 1, SHAPE(3), VALS(1, 2, 3)), *v = pt_oc_make(PT_F64, 1, SHAPE(3), VALS(4, 5, 6));
    pt_tensor *w = pt_oc_make(PT_F64, 1, SHAPE(2), VALS(1, 1)), *a = A23(PT_F64), *c = NULL;
    PT_CHECK_OK(pt_matmul(&c, u, v));
    PT_CHECK(c && c->ndim == 0 && pt_oc_equal(c, 1, VALS(32), 0));
    pt_tensor_release(c);
    PT_CHECK_OK(pt_matmul(&c, a, u)); /* [2,3]·[3] -> [2] */
    PT_CHECK(pt_oc_shape_is(c, 1, SHAPE(2)) && pt_oc_equal(c, 2, VALS(14, 32), 0));
    pt_tensor_release(c);
    PT_CHECK_OK(pt_matmul(&c, w, a)); /* [2]·[2,3] -> [3] */
    PT_CHECK(pt_oc_shape_is(c, 1, SHAPE(3)) && pt_oc_equal(c, 3, VALS(5, 7, 9), 0));
    pt_tensor_release(c);
    /* [3]·[2,3,2] -> [2,2] */
    pt_tensor *b3 = pt_oc_make(PT_F64, 3, SHAPE(2, 3, 2), VALS(7, 8, 9, 10, 11, 12, 1, 0, 0, 1, 1, 1));
    PT_CHECK_OK(pt_matmul(&c, u, b3));
    PT_CHECK(pt_oc_shape_is(c, 2, SHAPE(2, 2)) && pt_oc_equal(c, 4, VALS(58, 64, 4, 5), 0));
    pt_tensor_release(c);
    /* [2,3,2]ᵀ-ish: [2,2,3]·[3] -> [2,2] */
    pt_tensor *a3 = pt_oc_make(PT_F64, 3, SHAPE(2, 2, 3), VALS(1, 2, 3, 4, 5, 6, 1, 0, 0, 0, 0, 1));
    PT_CHECK_OK(pt_matmul(&c, a3, u));
    PT_CHECK(pt_oc_shape_is(c, 2, SHAPE(2, 2)) && pt_oc_equal(c, 4, VALS(14, 32, 1, 3), 0));
    pt_tensor_release(c);
    pt_tensor_release(a3);
    pt_tensor_release(b3);
    pt_tensor_release(u);
    pt_tensor_release(v);
    pt_tensor_release(w);
    pt_tensor_release(a);
}

PT_TEST(matmul_batched_broadcast) {
    /* [2,2,3] · [3,2]: folded into one GEMM */
    pt_tensor *a = pt_oc_make(PT_F32, 3, SHAPE(2, 2, 3), VALS(1, 2, 3, 4, 5, 6, 2, 4, 6, 8, 10, 12));
    pt_tensor *b = B32(PT_F32), *c = NULL;
    PT_CHECK_OK(pt_matmul(&c, a, b));
    PT_CHECK(pt_oc_shape_is(c, 3, SHAPE(2, 2, 2)) && pt_oc_equal(c, 8, VALS(58, 64, 139, 154, 116, 128, 278, 308), 0));
    pt_tensor_release(c);
    /* [1,2,3] · [2,3,2]: batch broadcast on the left */
    pt_tensor *a1 = A23(PT_F32), *a1r = NULL;
    PT_CHECK_OK(pt_reshape(&a1r, a1, 3, SHAPE(1, 2, 3)));
    pt_tensor *b2 = pt_oc_make(PT_F32, 3, SHAPE(2, 3, 2), VALS(7, 8, 9, 10, 11, 12, 1, 0, 0, 1, 0, 0));
    PT_CHECK_OK(pt_matmul(&c, a1r, b2));
    PT_CHECK(pt_oc_shape_is(c, 3, SHAPE(2, 2, 2)) && pt_oc_equal(c, 8, VALS(58, 64, 139, 154, 1, 2, 4, 5), 0));
    pt_tensor_release(c);
    /* [2,1,2,3] · [3,3,2] -> [2,3,2,2]: both sides broadcast */
    pt_tensor *a4 = NULL, *b3 = pt_oc_randn(PT_F64, 3, SHAPE(3, 3, 2), 3), *a4d = pt_oc_randn(PT_F64, 4, SHAPE(2, 1, 2, 3), 4);
    PT_CHECK_OK(pt_matmul(&c, a4d, b3));
    PT_CHECK(pt_oc_shape_is(c, 4, SHAPE(2, 3, 2, 2)));
    int bad = 0;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            for (int m = 0; m < 2; m++)
                for (int n = 0; n < 2; n++) {
                    double s = 0, x, y, got;
                    for (int k = 0; k < 3; k++) {
                        pt_tensor_get(a4d, SHAPE(i, 0, m, k), &x);
                        pt_tensor_get(b3, SHAPE(j, k, n), &y);
                        s += x * y;
                    }
                    pt_tensor_get(c, SHAPE(i, j, m, n), &got);
                    if (fabs(got - s) > 1e-14) bad = 1;
                }
    PT_CHECK(!bad);
    pt_tensor_release(c);
    /* K = 0: zeros */
    pt_tensor *z1 = pt_oc_make(PT_F32, 2, SHAPE(2, 0), NULL), *z2 = pt_oc_make(PT_F32, 2, SHAPE(0, 3), NULL);
    PT_CHECK_OK(pt_matmul(&c, z1, z2));
    PT_CHECK(pt_oc_shape_is(c, 2, SHAPE(2, 3)) && pt_oc_equal(c, 6, VALS(0, 0, 0, 0, 0, 0), 0));
    pt_tensor_release(c);
    pt_tensor_release(z1);
    pt_tensor_release(z2);
    pt_tensor_release(a4);
    pt_tensor_release(a4d);
    pt_tensor_release(b3);
    pt_tensor_release(a);
    pt_tensor_release(b);
    pt_tensor_release(a1);
    pt_tensor_release(a1r);
    pt_tensor_release(b2);
}

PT_TEST(matmul_errors) {
    pt_tensor *a = A23(PT_F32), *b = B32(PT_F64), *c = NULL, *s = pt_oc_make(PT_F32, 0, NULL, VALS(1));
    PT_CHECK_ERR(pt_matmul(&c, a, a), PT_ERR_SHAPE, "matmul: shapes [2, 3] and [2, 3] do not fit");
    PT_CHECK_ERR(pt_matmul(&c, a, b), PT_ERR_DTYPE, "matmul: dtypes differ (f32 and f64)");
    PT_CHECK_ERR(pt_matmul(&c, s, a), PT_ERR_SHAPE, "matmul: both operands need at least 1 dim, got shapes [] and [2, 3]");
    pt_tensor *x = pt_oc_make(PT_F32, 3, SHAPE(2, 2, 3), NULL), *y = pt_oc_make(PT_F32, 3, SHAPE(3, 3, 2), NULL);
    PT_CHECK_ERR(pt_matmul(&c, x, y), PT_ERR_SHAPE, "matmul of [2, 2, 3] and [3, 3, 2]");
    pt_tensor *xi = A23(PT_I32);
    PT_CHECK_ERR(pt_matmul(&c, xi, xi), PT_ERR_DTYPE, "matmul: expected a f32 or f64 tensor, got i32");
    PT_CHECK(c == NULL);
    pt_tensor_release(a);
    pt_tensor_release(b);
    pt_tensor_release(s);
    pt_tensor_release(x);
    pt_tensor_release(y);
    pt_tensor_release(xi);
}

/* ---- linear algebra ---- */
PT_TEST(qr_exact) {
    pt_tensor *a = pt_oc_make(PT_F64, 2, SHAPE(2, 2), VALS(3, 1, 4, 2)), *q = NULL, *r = NULL;
    PT_CHECK_OK(pt_qr(&q, &r, a));
    PT_CHECK(pt_oc_equal(q, 4, VALS(-0.6, -0.8, -0.8, 0.6), 1e-15));
    PT_CHECK(pt_oc_equal(r, 4, VALS(-5, -2.2, 0, 0.4), 1e-14));
    pt_tensor_release(q);
    pt_tensor_release(r);
    pt_tensor_release(a);
    /* tall and wide: Q R = A, QᵀQ = I, R upper triangular */
    for (int wide = 0; wide < 2; wide++) {
        int64_t M = wide ? 3 : 5, N = wide ? 5 : 3, K = 3;
        a = pt_oc_randn(PT_F64, 2, SHAPE(M, N), 11 + (uint64_t)wide);
        PT_CHECK_OK(pt_qr(&q, &r, a));
        PT_CHECK(pt_oc_shape_is(q, 2, SHAPE(M, K)) && pt_oc_shape_is(r, 2, SHAPE(K, N)));
        pt_tensor *qr = NULL, *qt = NULL, *qtq = NULL;
        PT_CHECK_OK(pt_matmul(&qr, q, r));
        PT_CHECK_OK(pt_transpose(&qt, q, 0, 1));
        PT_CHECK_OK(pt_matmul(&qtq, qt, q));
        int bad = 0;
        for (int64_t i = 0; i < M * N; i++) {
            double x, y;
            pt_tensor_get_flat(qr, i, &x);
            pt_tensor_get_flat(a, i, &y);
            if (fabs(x - y) > 1e-13) bad = 1;
        }
        for (int64_t i = 0; i < K; i++)
            for (int64_t j = 0; j < K; j++) {
                double x;
                pt_tensor_get(qtq, SHAPE(i, j), &x);
                if (fabs(x - (i == j)) > 1e-13) bad = 1;
            }
        for (int64_t i = 0; i < K; i++)
            for (int64_t j = 0; j < i; j++) {
                double x;
                pt_tensor_get(r, SHAPE(i, j), &x);
                if (x != 0) bad = 1;
            }
        PT_CHECK(!bad);
        pt_tensor_release(qr);
        pt_tensor_release(qt);
        pt_tensor_release(qtq);
        pt_tensor_release(q);
        pt_tensor_release(r);
        pt_tensor_release(a);
    }
    /* f32 works too */
    a = pt_oc_make(PT_F32, 2, SHAPE(2, 2), VALS(3, 1, 4, 2));
    PT_CHECK_OK(pt_qr(&q, &r, a));
    PT_CHECK(pt_oc_equal(r, 4, VALS(-5, -2.2, 0, 0.4), 1e-6));
    pt_tensor_release(q);
    pt_tensor_release(r);
    pt_tensor_release(a);
}

PT_TEST(qr_errors_and_no_backward) {
    pt_tensor *a = pt_oc_make(PT_F64, 3, SHAPE(2, 2, 2), NULL), *q = NULL, *r = NULL, *s = NULL;
    PT_CHECK_ERR(pt_qr(&q, &r, a), PT_ERR_SHAPE, "qr: expected a 2-d matrix, got shape [2, 2, 2]");
    pt_tensor_release(a);
    a = pt_oc_make(PT_F64, 2, SHAPE(2, 2), VALS(3, 1, 4, 2));
    a->requires_grad = 1;
    PT_CHECK_OK(pt_qr(&q, &r, a));
    PT_CHECK_OK(pt_sum(&s, q, 0, NULL, 0));
    PT_CHECK_ERR(pt_backward(s, NULL), PT_ERR_UNSUPPORTED, "qr: backward is not implemented");
    pt_tensor_release(s);
    pt_tensor_release(q);
    pt_tensor_release(r);
    pt_tensor_release(a);
}

PT_TEST(cholesky_exact) {
    pt_tensor *a = pt_oc_make(PT_F64, 2, SHAPE(3, 3), VALS(4, 12, -16, 12, 37, -43, -16, -43, 98)), *l = NULL;
    PT_CHECK_OK(pt_cholesky(&l, a, 0));
    PT_CHECK(pt_oc_equal(l, 9, VALS(2, 0, 0, 6, 1, 0, -8, 5, 3), 1e-14));
    pt_tensor_release(l);
    PT_CHECK_OK(pt_cholesky(&l, a, 1));
    PT_CHECK(pt_oc_equal(l, 9, VALS(2, 6, -8, 0, 1, 5, 0, 0, 3), 1e-14));
    pt_tensor_release(l);
    pt_tensor_release(a);
    /* batched, f32 */
    a = pt_oc_make(PT_F32, 3, SHAPE(2, 2, 2), VALS(4, 2, 2, 2, 9, 0, 0, 16));
    PT_CHECK_OK(pt_cholesky(&l, a, 0));
    PT_CHECK(pt_oc_equal(l, 8, VALS(2, 0, 1, 1, 3, 0, 0, 4), 1e-6));
    pt_tensor_release(l);
    pt_tensor_release(a);
}

PT_TEST(cholesky_errors) {
    pt_tensor *a = pt_oc_make(PT_F64, 2, SHAPE(2, 2), VALS(1, 2, 2, 1)), *l = NULL;
    PT_CHECK_ERR(pt_cholesky(&l, a, 0), PT_ERR_VALUE,
                 "cholesky: the matrix [2, 2] is not positive definite (its leading minor of order 2 is not positive)");
    pt_tensor_release(a);
    a = pt_oc_make(PT_F64, 3, SHAPE(2, 2, 2), VALS(1, 0, 0, 1, -1, 0, 0, 1));
    PT_CHECK_ERR(pt_cholesky(&l, a, 0), PT_ERR_VALUE, "matrix 1 of the batch [2, 2, 2] is not positive definite (its leading minor of order 1");
    pt_tensor_release(a);
    a = pt_oc_make(PT_F64, 2, SHAPE(2, 3), NULL);
    PT_CHECK_ERR(pt_cholesky(&l, a, 0), PT_ERR_SHAPE, "cholesky: expected a square matrix (or a batch of them), got shape [2, 3]");
    PT_CHECK(l == NULL);
    pt_tensor_release(a);
}

PT_TEST(inverse_exact) {
    pt_tensor *a = pt_oc_make(PT_F64, 2, SHAPE(2, 2), VALS(4, 7, 2, 6)), *y = NULL;
    PT_CHECK_OK(pt_inverse(&y, a));
    PT_CHECK(pt_oc_equal(y, 4, VALS(0.6, -0.7, -0.2, 0.4), 1e-15));
    pt_tensor_release(y);
    pt_tensor_release(a);
    a = pt_oc_make(PT_F32, 3, SHAPE(2, 2, 2), VALS(2, 0, 0, 4, 0, 1, 1, 0));
    PT_CHECK_OK(pt_inverse(&y, a));
    PT_CHECK(pt_oc_equal(y, 8, VALS(0.5, 0, 0, 0.25, 0, 1, 1, 0), 0));
    pt_tensor_release(y);
    pt_tensor_release(a);
    a = pt_oc_make(PT_F64, 2, SHAPE(2, 2), VALS(1, 2, 2, 4));
    PT_CHECK_ERR(pt_inverse(&y, a), PT_ERR_VALUE, "inverse: the matrix [2, 2] is singular");
    PT_CHECK(y == NULL);
    pt_tensor_release(a);
}

/* ---- gradient checks ---- */
static pt_status mm_apply(pt_tensor **out, pt_tensor *const *in, void *ud) {
    int mode = *(int *)ud;
    if (mode == 1) { /* transposed left operand */
        pt_tensor *t = NULL;
        PT_TRY(pt_transpose(&t, in[0], -1, -2));
        pt_status st = pt_matmul(out, t, in[1]);
        pt_tensor_release(t);
        return st;
    }
    return pt_matmul(out, in[0], in[1]);
}

PT_TEST(gradcheck_matmul) {
    static const struct {
        int an, bn;
        int64_t as[4], bs[4];
        int mode;
    } cases[] = {
        {2, 2, {2, 3}, {3, 4}, 0},          {1, 1, {3}, {3}, 0},             {2, 1, {2, 3}, {3}, 0},
        {1, 2, {3}, {3, 2}, 0},             {1, 3, {3}, {2, 3, 2}, 0},       {3, 1, {2, 2, 3}, {3}, 0},
        {3, 2, {2, 2, 3}, {3, 2}, 0},       {2, 3, {2, 3}, {2, 3, 2}, 0},    {4, 3, {2, 1, 2, 3}, {3, 3, 2}, 0},
        {3, 3, {2, 3, 2}, {2, 3, 4}, 1},    {2, 2, {3, 2}, {3, 2}, 1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        pt_tensor *in[2] = {pt_oc_randn(PT_F64, cases[k].an, cases[k].as, 100 + k),
                            pt_oc_randn(PT_F64, cases[k].bn, cases[k].bs, 200 + k)};
        char name[48];
        snprintf(name, sizeof name, "matmul case %zu", k);
        int ok = pt_oc_gradcheck(name, mm_apply, 2, in, (void *)&cases[k].mode);
        if (!ok) printf("    failed: %s\n", name);
        PT_CHECK(ok);
        pt_tensor_release(in[0]);
        pt_tensor_release(in[1]);
    }
}

static pt_status inv_apply(pt_tensor **out, pt_tensor *const *in, void *ud) {
    (void)ud;
    return pt_inverse(out, in[0]);
}

PT_TEST(gradcheck_inverse) {
    pt_tensor *a = pt_oc_make(PT_F64, 2, SHAPE(3, 3), VALS(4, 1, 0.5, 0.3, 3, -1, 0.2, 0.7, 5));
    PT_CHECK(pt_oc_gradcheck("inverse", inv_apply, 1, &a, NULL));
    pt_tensor_release(a);
    a = pt_oc_make(PT_F64, 3, SHAPE(2, 2, 2), VALS(2, 1, 0.5, 3, 1, -2, 0.3, 4));
    PT_CHECK(pt_oc_gradcheck("inverse batched", inv_apply, 1, &a, NULL));
    pt_tensor_release(a);
}

PT_TEST(matmul_large_matches_naive) {
    /* big enough for OpenBLAS threading and the batched offsets path (transposed right operand) */
    pt_tensor *a = pt_oc_randn(PT_F32, 3, SHAPE(3, 70, 50), 1), *b = pt_oc_randn(PT_F32, 3, SHAPE(3, 60, 50), 2);
    pt_tensor *bt = NULL, *c = NULL;
    PT_CHECK_OK(pt_transpose(&bt, b, 1, 2));
    PT_CHECK_OK(pt_matmul(&c, a, bt));
    const float *A = pt_tensor_data(a), *B = pt_tensor_data(b), *C = pt_tensor_data(c);
    int bad = 0;
    for (int z = 0; z < 3; z++)
        for (int i = 0; i < 70; i++)
            for (int j = 0; j < 60; j++) {
                double s = 0;
                for (int k = 0; k < 50; k++) s += (double)A[(z * 70 + i) * 50 + k] * B[(z * 60 + j) * 50 + k];
                if (fabs(C[(z * 70 + i) * 60 + j] - s) > 1e-4) bad = 1;
            }
    PT_CHECK(!bad);
    pt_tensor_release(a);
    pt_tensor_release(b);
    pt_tensor_release(bt);
    pt_tensor_release(c);
}

int main(void) { return pt_test_main(); }
