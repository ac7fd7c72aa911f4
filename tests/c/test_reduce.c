/* test_reduce.c — reductions (sum, mean, max, min, argmax, norm, var, std) and softmax /
 * log_softmax: exact values on small hand-computed cases, layouts (inner dims, non-block dim sets,
 * non-contiguous inputs, OpenMP-sized inputs), error messages, and f64 finite-difference gradient
 * checks of every backward.
 *
 *   cmake --build build && ctest --test-dir build -R test_reduce --output-on-failure
 */
#include <math.h>
#include <string.h>

#include "pt_opcheck.h"
#include "pt_ops.h"
#include "pt_test.h"

#define SHAPE(...) ((int64_t[]){__VA_ARGS__})
#define VALS(...) ((double[]){__VA_ARGS__})
#define DIMS(...) ((int[]){__VA_ARGS__})

static pt_tensor *x23(pt_dtype dt) { return pt_oc_make(dt, 2, SHAPE(2, 3), VALS(1, 2, 3, 4, 5, 6)); }

PT_TEST(sum_exact) {
    pt_tensor *x = x23(PT_F32), *y = NULL;
    PT_CHECK_OK(pt_sum(&y, x, 0, NULL, 0));
    PT_CHECK(y && y->ndim == 0 && y->dtype == PT_F32 && pt_oc_equal(y, 1, VALS(21), 0));
    pt_tensor_release(y);
    PT_CHECK_OK(pt_sum(&y, x, 1, DIMS(0), 0));
    PT_CHECK(pt_oc_shape_is(y, 1, SHAPE(3)) && pt_oc_equal(y, 3, VALS(5, 7, 9), 0));
    pt_tensor_release(y);
    PT_CHECK_OK(pt_sum(&y, x, 1, DIMS(-1), 1));
    PT_CHECK(pt_oc_shape_is(y, 2, SHAPE(2, 1)) && pt_oc_equal(y, 2, VALS(6, 15), 0));
    pt_tensor_release(y);
    PT_CHECK_OK(pt_sum(&y, x, 2, DIMS(1, 0), 1));
    PT_CHECK(pt_oc_shape_is(y, 2, SHAPE(1, 1)) && pt_oc_equal(y, 1, VALS(21), 0));
    pt_tensor_release(y);
    pt_tensor_release(x);
}

PT_TEST(sum_3d_layouts) {
    /* x[i,j,k] = 6i + 2j + k, shape [2, 3, 2] */
    pt_tensor *x = pt_oc_make(PT_F64, 3, SHAPE(2, 3, 2), NULL), *y = NULL, *t = NULL;
    PT_CHECK_OK(pt_sum(&y, x, 2, DIMS(0, 2), 0)); /* not one block: permuted */
    PT_CHECK(pt_oc_shape_is(y, 1, SHAPE(3)) && pt_oc_equal(y, 3, VALS(14, 22, 30), 0));
    pt_tensor_release(y);
    PT_CHECK_OK(pt_sum(&y, x, 1, DIMS(1), 0)); /* middle dim: inner = 2 */
    PT_CHECK(pt_oc_shape_is(y, 2, SHAPE(2, 2)) && pt_oc_equal(y, 4, VALS(6, 9, 24, 27), 0));
    pt_tensor_release(y);
    PT_CHECK_OK(pt_sum(&y, x, 2, DIMS(0, 2), 1));
    PT_CHECK(pt_oc_shape_is(y, 3, SHAPE(1, 3, 1)));
    pt_tensor_release(y);
    /* non-contiguous input: transpose then reduce the last dim */
    PT_CHECK_OK(pt_transpose(&t, x, 0, 2)); /* [2, 3, 2] with t[k,j,i] = x[i,j,k] */
    PT_CHECK_OK(pt_sum(&y, t, 1, DIMS(2), 0));
    /* sum_i (6i + 2j + k) = 6 + 4j + 2k at [k, j] */
    PT_CHECK(pt_oc_equal(y, 6, VALS(6, 10, 14, 8, 12, 16), 0));
    pt_tensor_release(y);
    pt_tensor_release(t);
    pt_tensor_release(x);
}

PT_TEST(sum_int_and_empty) {
    pt_tensor *x = pt_oc_make(PT_I32, 2, SHAPE(2, 2), VALS(1, -2, 3, 40)), *y = NULL;
    PT_CHECK_OK(pt_sum(&y, x, 1, DIMS(1), 0));
    PT_CHECK(y && y->dtype == PT_I64 && pt_oc_equal(y, 2, VALS(-1, 43), 0));
    pt_tensor_release(y);
    pt_tensor_release(x);
    x = pt_oc_make(PT_F32, 2, SHAPE(2, 0), NULL);
    PT_CHECK_OK(pt_sum(&y, x, 1, DIMS(1), 0));
    PT_CHECK(pt_oc_shape_is(y, 1, SHAPE(2)) && pt_oc_equal(y, 2, VALS(0, 0), 0));
    pt_tensor_release(y);
    PT_CHECK_ERR(pt_max(&y, NULL, x, 1, 0), PT_ERR_SHAPE, "max: cannot reduce over dim 1 of size 0 (shape [2, 0])");
    pt_tensor_release(x);
    /* 0-d input */
    x = pt_oc_make(PT_F64, 0, NULL, VALS(2.5));
    PT_CHECK_OK(pt_sum(&y, x, 1, DIMS(0), 0));
    PT_CHECK(y && y->ndim == 0 && pt_oc_equal(y, 1, VALS(2.5), 0));
    pt_tensor_release(y);
    pt_tensor_release(x);
}

PT_TEST(mean_exact) {
    pt_tensor *x = x23(PT_F64), *y = NULL;
    PT_CHECK_OK(pt_mean(&y, x, 1, DIMS(1), 0));
    PT_CHECK(pt_oc_equal(y, 2, VALS(2, 5), 0));
    pt_tensor_release(y);
    PT_CHECK_OK(pt_mean(&y, x, 0, NULL, 0));
    PT_CHECK(pt_oc_equal(y, 1, VALS(3.5), 0));
    pt_tensor_release(y);
    pt_tensor_release(x);
}

PT_TEST(max_min_argmax_exact) {
    pt_tensor *x = pt_oc_make(PT_F32, 2, SHAPE(2, 3), VALS(1, 3, 3, 7, -1, 7)), *v = NULL, *i = NULL;
    PT_CHECK_OK(pt_max(&v, &i, x, 1, 0));
    PT_CHECK(pt_oc_equal(v, 2, VALS(3, 7), 0) && i && i->dtype == PT_I64 && pt_oc_equal(i, 2, VALS(1, 0), 0));
    pt_tensor_release(v);
    pt_tensor_release(i);
    PT_CHECK_OK(pt_min(&v, &i, x, 0, 1));
    PT_CHECK(pt_oc_shape_is(v, 2, SHAPE(1, 3)) && pt_oc_equal(v, 3, VALS(1, -1, 3), 0) &&
             pt_oc_equal(i, 3, VALS(0, 1, 0), 0));
    pt_tensor_release(v);
    pt_tensor_release(i);
    PT_CHECK_OK(pt_argmax(&i, x, -1, 1));
    PT_CHECK(pt_oc_shape_is(i, 2, SHAPE(2, 1)) && pt_oc_equal(i, 2, VALS(1, 0), 0));
    pt_tensor_release(i);
    pt_tensor_release(x);
    /* NaN wins like in torch */
    x = pt_oc_make(PT_F64, 1, SHAPE(3), VALS(1, NAN, 3));
    PT_CHECK_OK(pt_max(&v, &i, x, 0, 0));
    PT_CHECK(pt_oc_equal(v, 1, VALS(NAN), 0) && pt_oc_equal(i, 1, VALS(1), 0));
    pt_tensor_release(v);
    pt_tensor_release(i);
    pt_tensor_release(x);
    /* integers keep their dtype */
    x = pt_oc_make(PT_I32, 2, SHAPE(1, 3), VALS(1, 9, 2));
    PT_CHECK_OK(pt_max(&v, &i, x, 1, 0));
    PT_CHECK(v && v->dtype == PT_I32 && pt_oc_equal(v, 1, VALS(9), 0) && pt_oc_equal(i, 1, VALS(1), 0));
    pt_tensor_release(v);
    pt_tensor_release(i);
    PT_CHECK_OK(pt_argmax(&i, x, 1, 0));
    PT_CHECK(pt_oc_equal(i, 1, VALS(1), 0));
    pt_tensor_release(i);
    pt_tensor_release(x);
}

PT_TEST(norm_exact) {
    pt_tensor *x = pt_oc_make(PT_F64, 2, SHAPE(2, 2), VALS(3, 4, 0, -2)), *y = NULL;
    PT_CHECK_OK(pt_norm(&y, x, 2, 1, DIMS(1), 0));
    PT_CHECK(pt_oc_equal(y, 2, VALS(5, 2), 0));
    pt_tensor_release(y);
    PT_CHECK_OK(pt_norm(&y, x, 1, 0, NULL, 0));
    PT_CHECK(pt_oc_equal(y, 1, VALS(9), 0));
    pt_tensor_release(y);
    PT_CHECK_OK(pt_norm(&y, x, INFINITY, 1, DIMS(0), 0));
    PT_CHECK(pt_oc_equal(y, 2, VALS(3, 4), 0));
    pt_tensor_release(y);
    PT_CHECK_OK(pt_norm(&y, x, -INFINITY, 1, DIMS(1), 0));
    PT_CHECK(pt_oc_equal(y, 2, VALS(3, 0), 0));
    pt_tensor_release(y);
    PT_CHECK_OK(pt_norm(&y, x, 0, 0, NULL, 0));
    PT_CHECK(pt_oc_equal(y, 1, VALS(3), 0));
    pt_tensor_release(y);
    PT_CHECK_OK(pt_norm(&y, x, 3, 1, DIMS(1), 0)); /* (27 + 64)^(1/3), 2 */
    PT_CHECK(pt_oc_equal(y, 2, VALS(pow(91.0, 1.0 / 3.0), 2), 1e-15));
    pt_tensor_release(y);
    PT_CHECK_ERR(pt_norm(&y, x, -1, 0, NULL, 0), PT_ERR_VALUE, "norm: order p = -1");
    pt_tensor_release(x);
}

PT_TEST(var_std_exact) {
    pt_tensor *x = pt_oc_make(PT_F64, 2, SHAPE(2, 4), VALS(1, 2, 3, 4, 2, 2, 2, 2)), *y = NULL;
    PT_CHECK_OK(pt_var(&y, x, 1, DIMS(1), 1, 0));
    PT_CHECK(pt_oc_equal(y, 2, VALS(5.0 / 3.0, 0), 1e-15));
    pt_tensor_release(y);
    PT_CHECK_OK(pt_var(&y, x, 1, DIMS(1), 0, 1));
    PT_CHECK(pt_oc_shape_is(y, 2, SHAPE(2, 1)) && pt_oc_equal(y, 2, VALS(1.25, 0), 1e-15));
    pt_tensor_release(y);
    PT_CHECK_OK(pt_std(&y, x, 1, DIMS(1), 0, 0));
    PT_CHECK(pt_oc_equal(y, 2, VALS(sqrt(1.25), 0), 1e-15));
    pt_tensor_release(y);
    /* over dim 0 (inner = 4): pairs (1,2) (2,2) (3,2) (4,2) */
    PT_CHECK_OK(pt_var(&y, x, 1, DIMS(0), 1, 0));
    PT_CHECK(pt_oc_equal(y, 4, VALS(0.5, 0, 0.5, 2), 1e-15));
    pt_tensor_release(y);
    /* one element with correction 1: nan like torch */
    pt_tensor *one = pt_oc_make(PT_F64, 1, SHAPE(1), VALS(3));
    PT_CHECK_OK(pt_var(&y, one, 0, NULL, 1, 0));
    PT_CHECK(pt_oc_equal(y, 1, VALS(NAN), 0));
    pt_tensor_release(y);
    pt_tensor_release(one);
    pt_tensor_release(x);
}

PT_TEST(softmax_exact) {
    pt_tensor *x = pt_oc_make(PT_F64, 2, SHAPE(2, 3), VALS(0, log(2.0), log(3.0), 1000, 1000, 1000)), *y = NULL;
    PT_CHECK_OK(pt_softmax(&y, x, 1));
    PT_CHECK(pt_oc_equal(y, 6, VALS(1.0 / 6, 2.0 / 6, 3.0 / 6, 1.0 / 3, 1.0 / 3, 1.0 / 3), 1e-15));
    pt_tensor_release(y);
    PT_CHECK_OK(pt_log_softmax(&y, x, -1));
    PT_CHECK(pt_oc_equal(y, 6, VALS(log(1.0 / 6), log(2.0 / 6), log(3.0 / 6), -log(3.0), -log(3.0), -log(3.0)), 1e-14));
    pt_tensor_release(y);
    pt_tensor_release(x);
    /* over dim 0 (inner = 2) */
    x = pt_oc_make(PT_F32, 2, SHAPE(2, 2), VALS(0, 0, log(3.0), 0));
    PT_CHECK_OK(pt_softmax(&y, x, 0));
    PT_CHECK(pt_oc_equal(y, 4, VALS(0.25, 0.5, 0.75, 0.5), 1e-7));
    pt_tensor_release(y);
    pt_tensor_release(x);
}

/* f32 rows use a vectorised exp: check it against libm over a wide range, masked (-inf) entries are
 * exactly 0 and a NaN poisons only its own row */
PT_TEST(softmax_f32_rows_accuracy_and_masks) {
    int64_t N = 2001;
    pt_tensor *x = pt_oc_make(PT_F32, 2, SHAPE(1, N), NULL), *y = NULL;
    for (int64_t i = 0; i < N; i++) pt_tensor_set_flat(x, i, -100.0 + 0.05 * (double)i); /* -100 .. 0 */
    PT_CHECK_OK(pt_log_softmax(&y, x, 1));
    double z = 0, worst = 0;
    for (int64_t i = 0; i < N; i++) z += exp((double)(float)(-100.0 + 0.05 * (double)i));
    for (int64_t i = 0; i < N; i++) {
        double v, want = (double)(float)(-100.0 + 0.05 * (double)i) - log(z);
        pt_tensor_get_flat(y, i, &v);
        worst = fmax(worst, fabs(v - want) / fmax(1.0, fabs(want)));
    }
    PT_CHECK(worst < 1e-6);
    pt_tensor_release(y);
    PT_CHECK_OK(pt_softmax(&y, x, 1));
    worst = 0;
    for (int64_t i = 0; i < N; i++) {
        double v, want = exp((double)(float)(-100.0 + 0.05 * (double)i)) / z;
        pt_tensor_get_flat(y, i, &v);
        worst = fmax(worst, fabs(v - want) / fmax(want, 1e-30));
        if (want < 1e-30) worst = fmax(worst, v > 1e-30 ? 1.0 : 0.0);
    }
    PT_CHECK(worst < 1e-5);
    pt_tensor_release(y);
    pt_tensor_release(x);
    x = pt_oc_make(PT_F32, 2, SHAPE(2, 3), VALS(1, -INFINITY, 1, 0, NAN, 0));
    PT_CHECK_OK(pt_softmax(&y, x, -1));
    PT_CHECK(pt_oc_equal(y, 6, VALS(0.5, 0, 0.5, NAN, NAN, NAN), 0));
    pt_tensor_release(y);
    pt_tensor_release(x);
}

/* naive double reference over [O, N, I] for the wide / OpenMP-sized cases */
PT_TEST(large_layouts_match_naive) {
    int64_t O = 37, N = 300, I = 100;
    pt_tensor *x = pt_oc_randn(PT_F32, 3, SHAPE(O, N, I), 7), *y = NULL, *v = NULL, *ix = NULL, *sm = NULL;
    PT_CHECK_OK(pt_sum(&y, x, 1, DIMS(1), 0));
    PT_CHECK_OK(pt_max(&v, &ix, x, 1, 0));
    PT_CHECK_OK(pt_softmax(&sm, x, 1));
    const float *X = pt_tensor_data(x), *Y = pt_tensor_data(y), *V = pt_tensor_data(v), *S = pt_tensor_data(sm);
    const int64_t *IX = pt_tensor_data(ix);
    int bad = 0;
    for (int64_t o = 0; o < O && !bad; o++)
        for (int64_t i = 0; i < I && !bad; i++) {
            double s = 0, m = -INFINITY, z = 0;
            int64_t mi = 0;
            for (int64_t n = 0; n < N; n++) {
                double e = X[(o * N + n) * I + i];
                s += e;
                if (e > m) { m = e; mi = n; }
            }
            for (int64_t n = 0; n < N; n++) z += exp(X[(o * N + n) * I + i] - m);
            if (fabs(Y[o * I + i] - s) > 1e-4 || V[o * I + i] != (float)m || IX[o * I + i] != mi) bad = 1;
            for (int64_t n = 0; n < N; n++)
                if (fabs(S[(o * N + n) * I + i] - exp(X[(o * N + n) * I + i] - m) / z) > 1e-6) bad = 1;
        }
    PT_CHECK(!bad);
    pt_tensor_release(y);
    pt_tensor_release(v);
    pt_tensor_release(ix);
    pt_tensor_release(sm);
    /* the last dim (rows), with the unrolled row sums */
    PT_CHECK_OK(pt_var(&y, x, 1, DIMS(2), 1, 0));
    const float *VV = pt_tensor_data(y);
    for (int64_t r = 0; r < O * N && !bad; r++) {
        double s = 0, q = 0;
        for (int64_t i = 0; i < I; i++) s += X[r * I + i];
        s /= (double)I;
        for (int64_t i = 0; i < I; i++) q += (X[r * I + i] - s) * (X[r * I + i] - s);
        if (fabs(VV[r] - q / (double)(I - 1)) > 1e-6) bad = 1;
    }
    PT_CHECK(!bad);
    pt_tensor_release(y);
    pt_tensor_release(x);
}

PT_TEST(reduce_errors) {
    pt_tensor *x = x23(PT_F32), *y = NULL, *i = NULL;
    PT_CHECK_ERR(pt_sum(&y, x, 1, DIMS(2), 0), PT_ERR_INDEX, "sum: dim 2 out of range for a 2-d tensor");
    PT_CHECK_ERR(pt_sum(&y, x, 2, DIMS(1, -1), 0), PT_ERR_VALUE, "sum: dim 1 appears twice in the reduction dims for shape [2, 3]");
    PT_CHECK_ERR(pt_max(&y, &i, x, -3, 0), PT_ERR_INDEX, "max: dim -3 out of range");
    PT_CHECK_ERR(pt_softmax(&y, x, 5), PT_ERR_INDEX, "softmax: dim 5 out of range");
    PT_CHECK(y == NULL);
    pt_tensor *xi = x23(PT_I32), *xb = x23(PT_BF16);
    PT_CHECK_ERR(pt_mean(&y, xi, 0, NULL, 0), PT_ERR_DTYPE, "mean: expected a f32 or f64 tensor, got i32");
    PT_CHECK_ERR(pt_softmax(&y, xi, 0), PT_ERR_DTYPE, "softmax: expected a f32 or f64 tensor, got i32");
    PT_CHECK_ERR(pt_var(&y, xb, 0, NULL, 1, 0), PT_ERR_DTYPE, "var: expected a f32 or f64 tensor, got bf16");
    PT_CHECK_ERR(pt_norm(&y, xi, 2, 0, NULL, 0), PT_ERR_DTYPE, "norm");
    PT_CHECK_ERR(pt_std(&y, x, 0, NULL, -1, 0), PT_ERR_VALUE, "std: correction -1");
    pt_tensor_release(xi);
    pt_tensor_release(xb);
    pt_tensor_release(x);
}

/* ---- gradient checks (f64, central differences) ---- */
typedef struct {
    int op, nd, keep, corr;
    int dims[4];
    double p;
} red_case;

enum { G_SUM, G_MEAN, G_MAX, G_MIN, G_NORM, G_VAR, G_STD, G_SOFTMAX, G_LOGSOFTMAX };

static pt_status red_apply(pt_tensor **out, pt_tensor *const *in, void *ud) {
    const red_case *c = ud;
    pt_tensor *idx = NULL;
    pt_status st;
    switch (c->op) {
    case G_SUM: return pt_sum(out, in[0], c->nd, c->dims, c->keep);
    case G_MEAN: return pt_mean(out, in[0], c->nd, c->dims, c->keep);
    case G_MAX:
    case G_MIN:
        st = c->op == G_MAX ? pt_max(out, &idx, in[0], c->dims[0], c->keep) : pt_min(out, &idx, in[0], c->dims[0], c->keep);
        pt_tensor_release(idx);
        return st;
    case G_NORM: return pt_norm(out, in[0], c->p, c->nd, c->dims, c->keep);
    case G_VAR: return pt_var(out, in[0], c->nd, c->dims, c->corr, c->keep);
    case G_STD: return pt_std(out, in[0], c->nd, c->dims, c->corr, c->keep);
    case G_SOFTMAX: return pt_softmax(out, in[0], c->dims[0]);
    default: return pt_log_softmax(out, in[0], c->dims[0]);
    }
}

PT_TEST(gradcheck_reductions) {
    static const red_case cases[] = {
        {G_SUM, 2, 0, 0, {0, 2}, 0},   {G_SUM, 0, 0, 0, {0}, 0},      {G_SUM, 1, 1, 0, {1}, 0},
        {G_MEAN, 1, 1, 0, {1}, 0},     {G_MEAN, 2, 0, 0, {0, 2}, 0},  {G_MAX, 1, 0, 0, {1}, 0},
        {G_MAX, 1, 1, 0, {-1}, 0},     {G_MIN, 1, 0, 0, {0}, 0},      {G_NORM, 1, 0, 0, {1}, 2},
        {G_NORM, 0, 0, 0, {0}, 2},     {G_NORM, 1, 1, 0, {2}, 1},     {G_NORM, 1, 0, 0, {1}, INFINITY},
        {G_NORM, 2, 0, 0, {0, 2}, 3},  {G_NORM, 1, 0, 0, {1}, 1.5},   {G_VAR, 1, 0, 1, {1}, 0},
        {G_VAR, 2, 1, 0, {0, 2}, 0},   {G_STD, 0, 0, 1, {0}, 0},      {G_STD, 1, 1, 0, {2}, 0},
        {G_SOFTMAX, 1, 0, 0, {1}, 0},  {G_SOFTMAX, 1, 0, 0, {-1}, 0}, {G_LOGSOFTMAX, 1, 0, 0, {0}, 0},
        {G_LOGSOFTMAX, 1, 0, 0, {2}, 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        /* distinct values, bounded away from 0, so max/min/inf-norm/abs have no ties or kinks */
        pt_tensor *x = pt_oc_make(PT_F64, 3, SHAPE(2, 3, 4), NULL);
        for (int64_t i = 0; i < 24; i++) pt_tensor_set_flat(x, i, (i % 2 ? -1 : 1) * (0.3 + 0.11 * (double)((i * 7) % 24)));
        char name[64];
        snprintf(name, sizeof name, "case %zu (op %d)", k, cases[k].op);
        int ok = pt_oc_gradcheck(name, red_apply, 1, &x, (void *)&cases[k]);
        if (!ok) printf("    failed: %s\n", name);
        PT_CHECK(ok);
        pt_tensor_release(x);
    }
}

PT_TEST(grad_values_exact) {
    /* max: gradient to the first index of a tie */
    pt_tensor *x = pt_oc_make(PT_F64, 2, SHAPE(2, 3), VALS(1, 3, 3, 7, -1, 7)), *v = NULL, *s = NULL;
    x->requires_grad = 1;
    PT_CHECK_OK(pt_max(&v, NULL, x, 1, 0));
    PT_CHECK_OK(pt_sum(&s, v, 0, NULL, 0));
    PT_CHECK_OK(pt_backward(s, NULL));
    PT_CHECK(x->grad && pt_oc_equal(x->grad, 6, VALS(0, 1, 0, 1, 0, 0), 0));
    pt_tensor_release(v);
    pt_tensor_release(s);
    pt_tensor_zero_grad(x);
    /* mean: 1/N everywhere */
    PT_CHECK_OK(pt_mean(&v, x, 0, NULL, 0));
    PT_CHECK_OK(pt_backward(v, NULL));
    PT_CHECK(x->grad && pt_oc_equal(x->grad, 6, VALS(1.0 / 6, 1.0 / 6, 1.0 / 6, 1.0 / 6, 1.0 / 6, 1.0 / 6), 1e-16));
    pt_tensor_release(v);
    pt_tensor_release(x);
    /* norm: x / |x| */
    x = pt_oc_make(PT_F64, 1, SHAPE(2), VALS(3, -4));
    x->requires_grad = 1;
    PT_CHECK_OK(pt_norm(&v, x, 2, 0, NULL, 0));
    PT_CHECK_OK(pt_backward(v, NULL));
    PT_CHECK(x->grad && pt_oc_equal(x->grad, 2, VALS(0.6, -0.8), 1e-15));
    pt_tensor_release(v);
    pt_tensor_release(x);
}

PT_TEST(no_leaks) {
    pt_tensor_stats before = pt_tensor_get_stats();
    for (int it = 0; it < 100; it++) {
        pt_tensor *x = pt_oc_randn(PT_F64, 2, SHAPE(3, 5), (uint64_t)it), *y = NULL, *z = NULL, *l = NULL;
        x->requires_grad = 1;
        PT_CHECK_OK(pt_softmax(&y, x, 1));
        PT_CHECK_OK(pt_std(&z, y, 1, DIMS(0), 1, 0));
        pt_tensor_release(y);
        PT_CHECK_OK(pt_norm(&y, z, 2, 0, NULL, 0));
        PT_CHECK_OK(pt_mul_scalar(&l, y, 2.0));
        PT_CHECK_OK(pt_backward(l, NULL));
        pt_tensor_release(x);
        pt_tensor_release(y);
        pt_tensor_release(z);
        pt_tensor_release(l);
    }
    pt_tensor_stats after = pt_tensor_get_stats();
    PT_CHECK(after.live_tensors == before.live_tensors);
    PT_CHECK(after.host_bytes == before.host_bytes);
}

int main(void) { return pt_test_main(); }
