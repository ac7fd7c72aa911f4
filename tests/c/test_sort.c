/* test_sort.c — sort, topk, kthvalue, quantile: exact values on small cases (expected values taken
 * from torch 1.13: NaN order, stability, f32 quantile rounding), layouts (dim 0 / inner dims,
 * keepdim, flattened quantile), selection against a full sort on large rows full of duplicates and
 * on adversarial (sorted, organ-pipe) rows, error messages, and f64 finite-difference gradient
 * checks of the values of sort/topk/kthvalue.
 *
 *   cmake --build build && ctest --test-dir build -R test_sort --output-on-failure
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pt_opcheck.h"
#include "pt_ops.h"
#include "pt_test.h"

#define SHAPE(...) ((int64_t[]){__VA_ARGS__})
#define VALS(...) ((double[]){__VA_ARGS__})

PT_TEST(sort_exact_nan_and_stability) {
    pt_tensor *x = pt_oc_make(PT_F32, 1, SHAPE(5), VALS(3, 1, NAN, 2, 1)), *v = NULL, *i = NULL;
    PT_CHECK_OK(pt_sort(&v, &i, x, 0, 0));
    PT_CHECK(pt_oc_equal(v, 5, VALS(1, 1, 2, 3, NAN), 0) && pt_oc_equal(i, 5, VALS(1, 4, 3, 0, 2), 0));
    PT_CHECK(i && i->dtype == PT_I64 && v->dtype == PT_F32);
    pt_tensor_release(v);
    pt_tensor_release(i);
    PT_CHECK_OK(pt_sort(&v, &i, x, -1, 1)); /* torch: NaN first when descending, ties stable */
    PT_CHECK(pt_oc_equal(v, 5, VALS(NAN, 3, 2, 1, 1), 0) && pt_oc_equal(i, 5, VALS(2, 0, 3, 1, 4), 0));
    pt_tensor_release(v);
    pt_tensor_release(i);
    /* -0.0 == +0.0: stable order, bits preserved; -inf and +inf in place */
    pt_tensor *z = pt_oc_make(PT_F64, 1, SHAPE(5), VALS(0.0, -0.0, INFINITY, 0.0, -INFINITY));
    PT_CHECK_OK(pt_sort(&v, &i, z, 0, 0));
    PT_CHECK(pt_oc_equal(i, 5, VALS(4, 0, 1, 3, 2), 0));
    PT_CHECK(v && !signbit(((double *)pt_tensor_data(v))[1]) && signbit(((double *)pt_tensor_data(v))[2]));
    pt_tensor_release(v);
    pt_tensor_release(i);
    pt_tensor_release(z);
    pt_tensor_release(x);
}

PT_TEST(sort_dims_and_dtypes) {
    /* [2,3] along dim 0 and dim 1, values only (indices NULL) */
    pt_tensor *x = pt_oc_make(PT_F64, 2, SHAPE(2, 3), VALS(5, -1, 2, 0, 7, 2)), *v = NULL, *i = NULL;
    PT_CHECK_OK(pt_sort(&v, &i, x, 0, 0));
    PT_CHECK(pt_oc_equal(v, 6, VALS(0, -1, 2, 5, 7, 2), 0) && pt_oc_equal(i, 6, VALS(1, 0, 0, 0, 1, 1), 0));
    pt_tensor_release(v);
    pt_tensor_release(i);
    PT_CHECK_OK(pt_sort(&v, NULL, x, 1, 1));
    PT_CHECK(pt_oc_equal(v, 6, VALS(5, 2, -1, 7, 2, 0), 0));
    pt_tensor_release(v);
    /* integers, including the extremes of i64 (not representable in double) */
    pt_tensor *xi = NULL;
    PT_CHECK_OK(pt_tensor_empty(&xi, PT_I64, PT_CPU, 1, SHAPE(4)));
    int64_t *p = pt_tensor_data(xi);
    p[0] = INT64_MAX;
    p[1] = INT64_MIN;
    p[2] = INT64_MAX - 1;
    p[3] = -5;
    PT_CHECK_OK(pt_sort(&v, &i, xi, 0, 0));
    int64_t *pv = v ? pt_tensor_data(v) : NULL;
    PT_CHECK(pv && pv[0] == INT64_MIN && pv[1] == -5 && pv[2] == INT64_MAX - 1 && pv[3] == INT64_MAX);
    PT_CHECK(pt_oc_equal(i, 4, VALS(1, 3, 2, 0), 0));
    pt_tensor_release(v);
    pt_tensor_release(i);
    pt_dtype dts[] = {PT_I32, PT_U16, PT_I8, PT_U8, PT_BF16, PT_F16};
    for (int k = 0; k < 6; k++) {
        int sgn = dts[k] == PT_U16 || dts[k] == PT_U8 ? 1 : -1;
        pt_tensor *t = pt_oc_make(dts[k], 1, SHAPE(4), VALS(7, sgn * 3, 100, 7));
        PT_CHECK_OK(pt_sort(&v, &i, t, 0, 1));
        PT_CHECK(v && v->dtype == dts[k] && pt_oc_equal(v, 4, VALS(100, 7, 7, sgn * 3), 0));
        PT_CHECK(pt_oc_equal(i, 4, VALS(2, 0, 3, 1), 0));
        pt_tensor_release(v);
        pt_tensor_release(i);
        pt_tensor_release(t);
    }
    /* a 0-d tensor sorts to itself */
    pt_tensor *s = pt_oc_make(PT_F32, 0, NULL, VALS(4));
    PT_CHECK_OK(pt_sort(&v, &i, s, 0, 0));
    PT_CHECK(v && v->ndim == 0 && pt_oc_equal(v, 1, VALS(4), 0) && pt_oc_equal(i, 1, VALS(0), 0));
    pt_tensor_release(v);
    pt_tensor_release(i);
    pt_tensor_release(s);
    PT_CHECK_ERR(pt_sort(&v, &i, x, 2, 0), PT_ERR_INDEX, "sort: dim 2 out of range for a 2-d tensor");
    pt_tensor_release(xi);
    pt_tensor_release(x);
}

PT_TEST(topk_exact) {
    pt_tensor *x = pt_oc_make(PT_F32, 1, SHAPE(5), VALS(1, 5, 3, 5, 2)), *v = NULL, *i = NULL;
    PT_CHECK_OK(pt_topk(&v, &i, x, 2, 0, 1));
    PT_CHECK(pt_oc_equal(v, 2, VALS(5, 5), 0) && pt_oc_equal(i, 2, VALS(1, 3), 0));
    pt_tensor_release(v);
    pt_tensor_release(i);
    PT_CHECK_OK(pt_topk(&v, &i, x, 3, 0, 0));
    PT_CHECK(pt_oc_equal(v, 3, VALS(1, 2, 3), 0) && pt_oc_equal(i, 3, VALS(0, 4, 2), 0));
    pt_tensor_release(v);
    pt_tensor_release(i);
    PT_CHECK_OK(pt_topk(&v, &i, x, 0, 0, 1));
    PT_CHECK(pt_oc_shape_is(v, 1, SHAPE(0)) && pt_oc_shape_is(i, 1, SHAPE(0)));
    pt_tensor_release(v);
    pt_tensor_release(i);
    /* torch: NaN counts as the largest */
    pt_tensor *xn = pt_oc_make(PT_F64, 1, SHAPE(5), VALS(3, 1, NAN, 2, 1));
    PT_CHECK_OK(pt_topk(&v, &i, xn, 2, 0, 1));
    PT_CHECK(pt_oc_equal(v, 2, VALS(NAN, 3), 0) && pt_oc_equal(i, 2, VALS(2, 0), 0));
    pt_tensor_release(v);
    pt_tensor_release(i);
    /* [2,3,2] along the middle dim */
    pt_tensor *x3 = pt_oc_make(PT_F64, 3, SHAPE(2, 3, 2), VALS(1, 9, 4, 2, 3, 8, 0, 5, 7, 6, -1, 4));
    PT_CHECK_OK(pt_topk(&v, &i, x3, 2, 1, 1));
    PT_CHECK(pt_oc_shape_is(v, 3, SHAPE(2, 2, 2)));
    PT_CHECK(pt_oc_equal(v, 8, VALS(4, 9, 3, 8, 7, 6, 0, 5), 0) && pt_oc_equal(i, 8, VALS(1, 0, 2, 2, 1, 1, 0, 0), 0));
    pt_tensor_release(v);
    pt_tensor_release(i);
    PT_CHECK_ERR(pt_topk(&v, &i, x, 6, 0, 1), PT_ERR_INDEX, "topk: k = 6 is out of range for dim 0 of size 5");
    PT_CHECK(v == NULL && i == NULL);
    pt_tensor_release(x3);
    pt_tensor_release(xn);
    pt_tensor_release(x);
}

PT_TEST(kthvalue_exact) {
    pt_tensor *x = pt_oc_make(PT_F32, 1, SHAPE(4), VALS(3, 1, 2, 1)), *v = NULL, *i = NULL;
    double want_v[] = {1, 1, 2, 3}, want_i[] = {1, 3, 2, 0};
    for (int k = 1; k <= 4; k++) {
        PT_CHECK_OK(pt_kthvalue(&v, &i, x, k, 0, 0));
        PT_CHECK(v && v->ndim == 0 && pt_oc_equal(v, 1, &want_v[k - 1], 0) && pt_oc_equal(i, 1, &want_i[k - 1], 0));
        pt_tensor_release(v);
        pt_tensor_release(i);
    }
    pt_tensor *x2 = pt_oc_make(PT_F64, 2, SHAPE(2, 3), VALS(3, 1, 2, 6, 5, 4));
    PT_CHECK_OK(pt_kthvalue(&v, &i, x2, 2, 1, 0)); /* torch: values [2, 5], indices [2, 1] */
    PT_CHECK(pt_oc_shape_is(v, 1, SHAPE(2)) && pt_oc_equal(v, 2, VALS(2, 5), 0) && pt_oc_equal(i, 2, VALS(2, 1), 0));
    pt_tensor_release(v);
    pt_tensor_release(i);
    PT_CHECK_OK(pt_kthvalue(&v, &i, x2, 1, 0, 1));
    PT_CHECK(pt_oc_shape_is(v, 2, SHAPE(1, 3)) && pt_oc_equal(v, 3, VALS(3, 1, 2), 0) &&
             pt_oc_equal(i, 3, VALS(0, 0, 0), 0));
    pt_tensor_release(v);
    pt_tensor_release(i);
    PT_CHECK_ERR(pt_kthvalue(&v, &i, x2, 0, 1, 0), PT_ERR_INDEX, "kthvalue: k = 0 is out of range for dim 1 of size 3");
    PT_CHECK_ERR(pt_kthvalue(&v, &i, x2, 4, -1, 0), PT_ERR_INDEX, "k = 4");
    pt_tensor_release(x2);
    pt_tensor_release(x);
}

PT_TEST(quantile_exact_torch_values) {
    pt_tensor *x = pt_oc_make(PT_F32, 1, SHAPE(4), VALS(4, 1, 3, 2)), *q = NULL;
    double qs[] = {0, 0.25, 0.5, 1}, want[] = {1, 1.75, 2.5, 4};
    for (int k = 0; k < 4; k++) {
        PT_CHECK_OK(pt_quantile(&q, x, qs[k], 0, 0));
        PT_CHECK(q && q->ndim == 0 && pt_oc_equal(q, 1, &want[k], 0));
        pt_tensor_release(q);
    }
    /* f32 rounding exactly as torch (rank and lerp computed in f32) */
    pt_tensor *m = pt_oc_make(PT_F32, 2, SHAPE(2, 4), VALS(0.5, -1, 3, 2, 7, 1, 1, -2)), *md = NULL;
    PT_CHECK_OK(pt_quantile(&q, m, 0.3, 1, 0));
    PT_CHECK(pt_oc_shape_is(q, 1, SHAPE(2)) && pt_oc_equal(q, 2, VALS(0.3500000536441803, 0.7000001072883606), 0));
    pt_tensor_release(q);
    PT_CHECK_OK(pt_quantile(&q, m, 0.7, -1, 1));
    PT_CHECK(pt_oc_shape_is(q, 2, SHAPE(2, 1)) && pt_oc_equal(q, 2, VALS(2.0999999046325684, 1.5999994277954102), 0));
    pt_tensor_release(q);
    PT_CHECK_OK(pt_quantile(&q, m, 0.3, 0, 0));
    PT_CHECK(pt_oc_equal(q, 4, VALS(2.45, -0.4, 1.6, -0.8), 1e-6));
    pt_tensor_release(q);
    PT_CHECK_OK(pt_quantile(&q, m, 0.3, PT_ALL_DIMS, 0));
    PT_CHECK(q && q->ndim == 0 && pt_oc_equal(q, 1, VALS(0.5500000715255737), 0));
    pt_tensor_release(q);
    PT_CHECK_OK(pt_quantile(&q, m, 0.3, PT_ALL_DIMS, 1));
    PT_CHECK(pt_oc_shape_is(q, 2, SHAPE(1, 1)) && pt_oc_equal(q, 1, VALS(0.5500000715255737), 0));
    pt_tensor_release(q);
    PT_CHECK_OK(pt_tensor_to(&md, m, PT_F64, PT_CPU, 0));
    PT_CHECK_OK(pt_quantile(&q, md, 0.3, 1, 0));
    PT_CHECK(pt_oc_equal(q, 2, VALS(0.34999999999999987, 0.6999999999999997), 0));
    pt_tensor_release(q);
    /* the quantization case: q = 0.9999984 on a 2048-row (a permutation of j/2048) */
    pt_tensor *r = NULL, *rd = NULL;
    PT_CHECK_OK(pt_tensor_empty(&r, PT_F32, PT_CPU, 1, SHAPE(2048)));
    for (int64_t j = 0; j < 2048; j++) ((float *)pt_tensor_data(r))[j] = (float)((j * 7919) % 2048) / 2048.0f;
    PT_CHECK_OK(pt_quantile(&q, r, 0.9999984, 0, 0));
    PT_CHECK(pt_oc_equal(q, 1, VALS(0.9995101094245911), 0));
    pt_tensor_release(q);
    PT_CHECK_OK(pt_tensor_to(&rd, r, PT_F64, PT_CPU, 0));
    PT_CHECK_OK(pt_quantile(&q, rd, 0.9999984, 0, 0));
    PT_CHECK(pt_oc_equal(q, 1, VALS(0.9995101195312499), 0));
    pt_tensor_release(q);
    /* NaN anywhere in the row -> NaN (torch.quantile) */
    pt_tensor *n = pt_oc_make(PT_F64, 2, SHAPE(2, 3), VALS(1, NAN, 2, 1, 2, 3));
    PT_CHECK_OK(pt_quantile(&q, n, 0.5, 1, 0));
    PT_CHECK(pt_oc_equal(q, 2, VALS(NAN, 2), 0));
    pt_tensor_release(q);
    /* not differentiable: the output never requires grad */
    md->requires_grad = 1;
    PT_CHECK_OK(pt_quantile(&q, md, 0.5, 1, 0));
    PT_CHECK(q && !q->requires_grad && q->grad_fn == NULL);
    pt_tensor_release(q);
    /* errors */
    PT_CHECK_ERR(pt_quantile(&q, x, 1.5, 0, 0), PT_ERR_VALUE, "quantile: q = 1.5 must be in [0, 1]");
    PT_CHECK_ERR(pt_quantile(&q, x, NAN, 0, 0), PT_ERR_VALUE, "must be in [0, 1]");
    pt_tensor *xi = pt_oc_make(PT_I64, 1, SHAPE(2), VALS(1, 2)), *e = NULL;
    PT_CHECK_ERR(pt_quantile(&q, xi, 0.5, 0, 0), PT_ERR_DTYPE, "quantile: expected a f32 or f64 tensor, got i64");
    PT_CHECK_OK(pt_tensor_empty(&e, PT_F32, PT_CPU, 2, SHAPE(3, 0)));
    PT_CHECK_ERR(pt_quantile(&q, e, 0.5, 1, 0), PT_ERR_SHAPE, "quantile: input of shape [3, 0] is empty");
    PT_CHECK_ERR(pt_quantile(&q, x, 0.5, 3, 0), PT_ERR_INDEX, "quantile: dim 3 out of range");
    PT_CHECK(q == NULL);
    pt_tensor_release(e);
    pt_tensor_release(xi);
    pt_tensor_release(n);
    pt_tensor_release(rd);
    pt_tensor_release(r);
    pt_tensor_release(md);
    pt_tensor_release(m);
    pt_tensor_release(x);
}

/* selection (kthvalue, topk, quantile) agrees with the full stable sort on big rows with many
 * duplicates, on sorted rows and on organ-pipe rows (the quickselect's bad cases) */
PT_TEST(selection_matches_sort) {
    const int64_t R = 64, N = 2048;
    pt_tensor *x = NULL, *sv = NULL, *si = NULL;
    PT_CHECK_OK(pt_tensor_empty(&x, PT_F32, PT_CPU, 2, SHAPE(R, N)));
    float *px = pt_tensor_data(x);
    uint64_t s = 99;
    for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < N; j++) {
            float v;
            if (r % 4 == 0) v = (float)j;                              /* sorted */
            else if (r % 4 == 1) v = (float)(j < N / 2 ? j : N - j);   /* organ pipe */
            else if (r % 4 == 2) v = (float)((int)(pt_oc_rand(&s) * 8)); /* heavy duplicates */
            else v = (float)pt_oc_rand(&s);
            px[r * N + j] = v;
        }
    PT_CHECK_OK(pt_sort(&sv, &si, x, 1, 0));
    const float *psv = pt_tensor_data(sv);
    const int64_t *psi = pt_tensor_data(si);
    int ok = 1;
    for (int64_t r = 0; r < R && ok; r++)
        for (int64_t j = 1; j < N; j++)
            if (psv[r * N + j - 1] > psv[r * N + j] ||
                (psv[r * N + j - 1] == psv[r * N + j] && psi[r * N + j - 1] >= psi[r * N + j]))
                ok = 0;
    PT_CHECK(ok); /* ascending, ties by increasing index */
    int64_t ks[] = {1, 2, 1000, 2047, 2048};
    for (int t = 0; t < 5; t++) {
        pt_tensor *kv = NULL, *ki = NULL;
        PT_CHECK_OK(pt_kthvalue(&kv, &ki, x, ks[t], 1, 0));
        const float *pkv = pt_tensor_data(kv);
        const int64_t *pki = pt_tensor_data(ki);
        for (int64_t r = 0; r < R; r++)
            ok &= pkv[r] == psv[r * N + ks[t] - 1] && pki[r] == psi[r * N + ks[t] - 1];
        pt_tensor_release(kv);
        pt_tensor_release(ki);
    }
    PT_CHECK(ok);
    pt_tensor *tv = NULL, *ti = NULL;
    PT_CHECK_OK(pt_topk(&tv, &ti, x, 10, 1, 0));
    const float *ptv = pt_tensor_data(tv);
    const int64_t *pti = pt_tensor_data(ti);
    for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < 10; j++) ok &= ptv[r * 10 + j] == psv[r * N + j] && pti[r * 10 + j] == psi[r * N + j];
    PT_CHECK(ok);
    /* quantile from the sorted rows with torch's f32 formula */
    pt_tensor *q = NULL;
    PT_CHECK_OK(pt_quantile(&q, x, 0.9999984, 1, 0));
    const float *pq = pt_tensor_data(q);
    for (int64_t r = 0; r < R; r++) {
        float rank = 0.9999984f * (float)(N - 1), w = rank - (float)(int64_t)rank;
        float a = psv[r * N + (int64_t)rank], b = psv[r * N + (int64_t)ceilf(rank)];
        float want = w < 0.5f ? a + w * (b - a) : b - (b - a) * (1.0f - w);
        ok &= pq[r] == want;
    }
    PT_CHECK(ok);
    pt_tensor_release(q);
    pt_tensor_release(tv);
    pt_tensor_release(ti);
    /* one long sorted row (exercises the selection's fallback budget) */
    pt_tensor *big = NULL, *bv = NULL, *bi = NULL;
    PT_CHECK_OK(pt_tensor_empty(&big, PT_F64, PT_CPU, 1, SHAPE(200000)));
    for (int64_t j = 0; j < 200000; j++) ((double *)pt_tensor_data(big))[j] = (double)(j % 1000) * 0.5;
    PT_CHECK_OK(pt_kthvalue(&bv, &bi, big, 100001, 0, 0));
    PT_CHECK(pt_oc_equal(bv, 1, VALS(250), 0) && pt_oc_equal(bi, 1, VALS(500), 0));
    pt_tensor_release(bv);
    pt_tensor_release(bi);
    pt_tensor_release(big);
    pt_tensor_release(sv);
    pt_tensor_release(si);
    pt_tensor_release(x);
}

/* ---- gradient checks (values of sort / topk / kthvalue) ---- */
typedef struct {
    int kind, dim, flag;
    int64_t k;
} sort_ud;

static pt_status f_sortvals(pt_tensor **out, pt_tensor *const *in, void *ud) {
    sort_ud *u = ud;
    pt_tensor *idx = NULL;
    pt_status st;
    if (u->kind == 0) st = pt_sort(out, &idx, in[0], u->dim, u->flag);
    else if (u->kind == 1) st = pt_topk(out, &idx, in[0], u->k, u->dim, u->flag);
    else st = pt_kthvalue(out, &idx, in[0], u->k, u->dim, u->flag);
    pt_tensor_release(idx);
    return st;
}

PT_TEST(sort_gradcheck) {
    pt_tensor *x = pt_oc_randn(PT_F64, 3, SHAPE(2, 5, 3), 21);
    sort_ud u = {0, 1, 1, 0};
    PT_CHECK(pt_oc_gradcheck("sort desc dim 1", f_sortvals, 1, &x, &u));
    u = (sort_ud){0, -1, 0, 0};
    PT_CHECK(pt_oc_gradcheck("sort asc dim -1", f_sortvals, 1, &x, &u));
    u = (sort_ud){1, 1, 1, 2};
    PT_CHECK(pt_oc_gradcheck("topk largest", f_sortvals, 1, &x, &u));
    u = (sort_ud){1, 2, 0, 2};
    PT_CHECK(pt_oc_gradcheck("topk smallest", f_sortvals, 1, &x, &u));
    u = (sort_ud){2, 1, 0, 3};
    PT_CHECK(pt_oc_gradcheck("kthvalue", f_sortvals, 1, &x, &u));
    u = (sort_ud){2, 0, 1, 2};
    PT_CHECK(pt_oc_gradcheck("kthvalue keepdim", f_sortvals, 1, &x, &u));
    pt_tensor_release(x);
}

PT_TEST(sort_no_leaks) {
    pt_tensor_stats s0 = pt_tensor_get_stats();
    for (int it = 0; it < 200; it++) {
        pt_tensor *x = pt_oc_randn(PT_F32, 2, SHAPE(4, 6), (uint64_t)it), *v = NULL, *i = NULL, *q = NULL, *s = NULL;
        x->requires_grad = 1;
        PT_CHECK_OK(pt_topk(&v, &i, x, 3, 1, 1));
        PT_CHECK_OK(pt_sum(&s, v, 0, NULL, 0));
        PT_CHECK_OK(pt_backward(s, NULL));
        PT_CHECK_OK(pt_quantile(&q, x, 0.25, PT_ALL_DIMS, 0));
        pt_tensor *v2 = NULL, *i2 = NULL;
        PT_CHECK(pt_topk(&v2, &i2, x, 9, 1, 1) == PT_ERR_INDEX && v2 == NULL && i2 == NULL);
        pt_tensor_release(q);
        pt_tensor_release(s);
        pt_tensor_release(v);
        pt_tensor_release(i);
        pt_tensor_release(x);
    }
    pt_tensor_stats s1 = pt_tensor_get_stats();
    PT_CHECK(s1.live_tensors == s0.live_tensors && s1.host_bytes == s0.host_bytes);
}

int main(void) { return pt_test_main(); }
