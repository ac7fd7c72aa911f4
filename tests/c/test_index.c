/* test_index.c — the indexing family: index_select, gather, scatter_add, embedding. Exact values on
 * small hand-computed cases (every index dtype, strided inputs), error messages (out-of-range
 * index names value, position and range; shapes; dtypes), the OpenMP paths against a naive loop
 * (bit-exact: the backward is deterministic), and f64 finite-difference gradient checks.
 *
 *   cmake --build build && ctest --test-dir build -R test_index --output-on-failure
 */
#include <math.h>
#include <stdint.h> /* INT64_MIN */
#include <stdlib.h>
#include <string.h>

#include "pt_index.h" /* pt_index_format_check, pt_index_check_range */
#include "pt_opcheck.h"
#include "pt_ops.h"
#include "pt_test.h"

#define SHAPE(...) ((int64_t[]){__VA_ARGS__})
#define VALS(...) ((double[]){__VA_ARGS__})

/* x[3,4] = 0..11 */
static pt_tensor *x34(pt_dtype dt) { return pt_oc_make(dt, 2, SHAPE(3, 4), NULL); }

PT_TEST(index_select_exact) {
    pt_tensor *x = x34(PT_F32), *y = NULL;
    pt_tensor *i0 = pt_oc_make(PT_I64, 1, SHAPE(3), VALS(2, 0, 2));
    PT_CHECK_OK(pt_index_select(&y, x, 0, i0));
    PT_CHECK(pt_oc_shape_is(y, 2, SHAPE(3, 4)) && y->dtype == PT_F32);
    PT_CHECK(pt_oc_equal(y, 12, VALS(8, 9, 10, 11, 0, 1, 2, 3, 8, 9, 10, 11), 0));
    pt_tensor_release(y);
    /* every index dtype along the last dim (negative dim) */
    pt_dtype dts[] = {PT_I64, PT_I32, PT_U16, PT_I8, PT_U8};
    for (int k = 0; k < 5; k++) {
        pt_tensor *i1 = pt_oc_make(dts[k], 1, SHAPE(2), VALS(3, 1));
        PT_CHECK_OK(pt_index_select(&y, x, -1, i1));
        PT_CHECK(pt_oc_shape_is(y, 2, SHAPE(3, 2)) && pt_oc_equal(y, 6, VALS(3, 1, 7, 5, 11, 9), 0));
        pt_tensor_release(y);
        pt_tensor_release(i1);
    }
    /* a transposed (non-contiguous) input [4,3]: row 1 of it is column 1 of x */
    pt_tensor *xt = NULL;
    PT_CHECK_OK(pt_transpose(&xt, x, 0, 1));
    pt_tensor *i2 = pt_oc_make(PT_I64, 1, SHAPE(1), VALS(1));
    PT_CHECK_OK(pt_index_select(&y, xt, 0, i2));
    PT_CHECK(pt_oc_shape_is(y, 2, SHAPE(1, 3)) && pt_oc_equal(y, 3, VALS(1, 5, 9), 0));
    pt_tensor_release(y);
    /* integer data and empty index */
    pt_tensor *xi = x34(PT_I64), *ie = pt_oc_make(PT_I64, 1, SHAPE(0), NULL);
    PT_CHECK_OK(pt_index_select(&y, xi, 0, ie));
    PT_CHECK(pt_oc_shape_is(y, 2, SHAPE(0, 4)) && y->dtype == PT_I64);
    pt_tensor_release(y);
    PT_CHECK_OK(pt_index_select(&y, xi, 1, i2));
    PT_CHECK(pt_oc_equal(y, 3, VALS(1, 5, 9), 0));
    pt_tensor_release(y);
    pt_tensor_release(xi);
    pt_tensor_release(ie);
    pt_tensor_release(i2);
    pt_tensor_release(xt);
    pt_tensor_release(i0);
    pt_tensor_release(x);
}

PT_TEST(index_select_errors) {
    pt_tensor *x = x34(PT_F32), *y = NULL;
    pt_tensor *bad = pt_oc_make(PT_I64, 1, SHAPE(3), VALS(0, 5, 1));
    PT_CHECK_ERR(pt_index_select(&y, x, 0, bad), PT_ERR_INDEX, "index_select: index 5 at position 1 is out of range");
    PT_CHECK(strstr(pt_last_error(), "dim 0 of size 3") && strstr(pt_last_error(), "[3, 4]"));
    PT_CHECK(y == NULL);
    pt_tensor *neg = pt_oc_make(PT_I32, 1, SHAPE(2), VALS(1, -1));
    PT_CHECK_ERR(pt_index_select(&y, x, 1, neg), PT_ERR_INDEX, "index -1 at position 1");
    PT_CHECK(strstr(pt_last_error(), "valid 0..3"));
    pt_tensor *fl = pt_oc_make(PT_F32, 1, SHAPE(1), VALS(0));
    PT_CHECK_ERR(pt_index_select(&y, x, 0, fl), PT_ERR_DTYPE, "index_select: indices must be an integer tensor");
    pt_tensor *bo = pt_oc_make(PT_BOOL, 1, SHAPE(1), VALS(0));
    PT_CHECK_ERR(pt_index_select(&y, x, 0, bo), PT_ERR_DTYPE, "got bool");
    pt_tensor *i2d = pt_oc_make(PT_I64, 2, SHAPE(1, 1), VALS(0));
    PT_CHECK_ERR(pt_index_select(&y, x, 0, i2d), PT_ERR_SHAPE, "must be 0-d or 1-d, got shape [1, 1]");
    PT_CHECK_ERR(pt_index_select(&y, x, 2, neg), PT_ERR_INDEX, "dim 2 out of range");
    pt_tensor_release(bad);
    pt_tensor_release(neg);
    pt_tensor_release(fl);
    pt_tensor_release(bo);
    pt_tensor_release(i2d);
    pt_tensor_release(x);
}

PT_TEST(embedding_exact) {
    pt_tensor *w = pt_oc_make(PT_F32, 2, SHAPE(4, 3), NULL), *y = NULL;
    pt_tensor *idx = pt_oc_make(PT_I64, 2, SHAPE(2, 2), VALS(3, 0, 1, 3));
    PT_CHECK_OK(pt_embedding(&y, w, idx));
    PT_CHECK(pt_oc_shape_is(y, 3, SHAPE(2, 2, 3)));
    PT_CHECK(pt_oc_equal(y, 12, VALS(9, 10, 11, 0, 1, 2, 3, 4, 5, 9, 10, 11), 0));
    pt_tensor_release(y);
    /* u16 tokens (the shard dtype), 0-d index -> [C] */
    pt_tensor *tok = pt_oc_make(PT_U16, 0, NULL, VALS(2));
    PT_CHECK_OK(pt_embedding(&y, w, tok));
    PT_CHECK(pt_oc_shape_is(y, 1, SHAPE(3)) && pt_oc_equal(y, 3, VALS(6, 7, 8), 0));
    pt_tensor_release(y);
    /* bf16 weights are copied bit for bit */
    pt_tensor *wb = NULL;
    PT_CHECK_OK(pt_tensor_to(&wb, w, PT_BF16, PT_CPU, 0));
    PT_CHECK_OK(pt_embedding(&y, wb, idx));
    PT_CHECK(y && y->dtype == PT_BF16 && pt_oc_equal(y, 12, VALS(9, 10, 11, 0, 1, 2, 3, 4, 5, 9, 10, 11), 0));
    pt_tensor_release(y);
    pt_tensor_release(wb);
    pt_tensor_release(tok);
    pt_tensor_release(idx);
    pt_tensor_release(w);
}

PT_TEST(embedding_errors) {
    pt_tensor *w = NULL, *y = NULL;
    PT_CHECK_OK(pt_tensor_zeros(&w, PT_F32, PT_CPU, 2, SHAPE(1024, 4)));
    pt_tensor *idx = pt_oc_make(PT_I64, 2, SHAPE(2, 4), VALS(0, 1, 2, 3, 4, 5, 6, 1500));
    PT_CHECK_ERR(pt_embedding(&y, w, idx), PT_ERR_INDEX,
                 "embedding: index 1500 at position 7 is out of range for 1024 rows (valid 0..1023)");
    PT_CHECK(y == NULL);
    pt_tensor *w1 = NULL;
    PT_CHECK_OK(pt_tensor_zeros(&w1, PT_F32, PT_CPU, 1, SHAPE(8)));
    PT_CHECK_ERR(pt_embedding(&y, w1, idx), PT_ERR_SHAPE, "embedding: weight must be 2-d [V, C], got shape [8]");
    pt_tensor *fi = pt_oc_make(PT_F64, 1, SHAPE(1), VALS(0));
    PT_CHECK_ERR(pt_embedding(&y, w, fi), PT_ERR_DTYPE, "embedding: indices must be an integer tensor");
    pt_tensor_release(fi);
    pt_tensor_release(w1);
    pt_tensor_release(idx);
    pt_tensor_release(w);
}

PT_TEST(embedding_backward_exact) {
    pt_tensor *w = pt_oc_make(PT_F32, 2, SHAPE(4, 3), NULL), *y = NULL;
    w->requires_grad = 1;
    pt_tensor *idx = pt_oc_make(PT_I32, 1, SHAPE(3), VALS(3, 0, 3));
    PT_CHECK_OK(pt_embedding(&y, w, idx));
    PT_CHECK(y && y->requires_grad);
    pt_tensor *g = pt_oc_make(PT_F32, 2, SHAPE(3, 3), VALS(1, 2, 3, 10, 20, 30, 100, 200, 300));
    PT_CHECK_OK(pt_backward(y, g));
    PT_CHECK(w->grad && pt_oc_equal(w->grad, 12, VALS(10, 20, 30, 0, 0, 0, 0, 0, 0, 101, 202, 303), 0));
    pt_tensor_release(g);
    pt_tensor_release(y);
    pt_tensor_release(idx);
    pt_tensor_release(w);
}

/* large enough for the OpenMP paths; compared with naive loops (same summation order -> exact) */
PT_TEST(embedding_large_matches_naive) {
    const int64_t V = 50, C = 256, N = 20000;
    pt_tensor *w = pt_oc_randn(PT_F32, 2, SHAPE(V, C), 7), *idx = NULL, *y = NULL, *g = NULL;
    PT_CHECK_OK(pt_tensor_empty(&idx, PT_I64, PT_CPU, 2, SHAPE(N / 100, 100)));
    int64_t *ip = pt_tensor_data(idx);
    for (int64_t j = 0; j < N; j++) ip[j] = (j * 7919 + j / 3) % V;
    w->requires_grad = 1;
    PT_CHECK_OK(pt_embedding(&y, w, idx));
    const float *wp = pt_tensor_data(w), *yp = pt_tensor_data(y);
    int ok = 1;
    for (int64_t j = 0; j < N && ok; j++) ok = memcmp(yp + j * C, wp + ip[j] * C, sizeof(float) * (size_t)C) == 0;
    PT_CHECK(ok);
    g = pt_oc_randn(PT_F32, 3, SHAPE(N / 100, 100, C), 11);
    PT_CHECK_OK(pt_backward(y, g));
    float *ref = calloc((size_t)(V * C), sizeof(float));
    const float *gp = pt_tensor_data(g);
    for (int64_t j = 0; j < N; j++)
        for (int64_t c = 0; c < C; c++) ref[ip[j] * C + c] += gp[j * C + c];
    PT_CHECK(w->grad && memcmp(pt_tensor_data(w->grad), ref, sizeof(float) * (size_t)(V * C)) == 0);
    free(ref);
    /* index_select along dim 1 of a [8, 300, 64] tensor (outer slices over threads) */
    pt_tensor *x = pt_oc_randn(PT_F64, 3, SHAPE(8, 300, 64), 3), *i1 = NULL, *z = NULL;
    PT_CHECK_OK(pt_tensor_empty(&i1, PT_I64, PT_CPU, 1, SHAPE(500)));
    int64_t *p1 = pt_tensor_data(i1);
    for (int64_t j = 0; j < 500; j++) p1[j] = (j * 37) % 300;
    x->requires_grad = 1;
    PT_CHECK_OK(pt_index_select(&z, x, 1, i1));
    pt_tensor *gz = pt_oc_randn(PT_F64, 3, SHAPE(8, 500, 64), 5);
    PT_CHECK_OK(pt_backward(z, gz));
    double *rz = calloc(8 * 300 * 64, sizeof(double));
    const double *gzp = pt_tensor_data(gz), *xp = pt_tensor_data(x), *zp = pt_tensor_data(z);
    ok = 1;
    for (int64_t o = 0; o < 8; o++)
        for (int64_t j = 0; j < 500; j++)
            for (int64_t c = 0; c < 64; c++) {
                rz[(o * 300 + p1[j]) * 64 + c] += gzp[(o * 500 + j) * 64 + c];
                ok &= zp[(o * 500 + j) * 64 + c] == xp[(o * 300 + p1[j]) * 64 + c];
            }
    PT_CHECK(ok);
    PT_CHECK(x->grad && memcmp(pt_tensor_data(x->grad), rz, sizeof(double) * 8 * 300 * 64) == 0);
    free(rz);
    pt_tensor_release(gz);
    pt_tensor_release(z);
    pt_tensor_release(i1);
    pt_tensor_release(x);
    pt_tensor_release(g);
    pt_tensor_release(y);
    pt_tensor_release(idx);
    pt_tensor_release(w);
}

PT_TEST(gather_exact) {
    pt_tensor *x = pt_oc_make(PT_F32, 2, SHAPE(2, 3), VALS(1, 2, 3, 4, 5, 6)), *y = NULL;
    pt_tensor *i1 = pt_oc_make(PT_I64, 2, SHAPE(2, 2), VALS(0, 0, 2, 1));
    PT_CHECK_OK(pt_gather(&y, x, 1, i1));
    PT_CHECK(pt_oc_shape_is(y, 2, SHAPE(2, 2)) && pt_oc_equal(y, 4, VALS(1, 1, 6, 5), 0));
    pt_tensor_release(y);
    pt_tensor *i0 = pt_oc_make(PT_U8, 2, SHAPE(1, 3), VALS(1, 0, 1));
    PT_CHECK_OK(pt_gather(&y, x, 0, i0));
    PT_CHECK(pt_oc_shape_is(y, 2, SHAPE(1, 3)) && pt_oc_equal(y, 3, VALS(4, 2, 6), 0));
    pt_tensor_release(y);
    /* strided input: gather from x^T [3,2] along dim 0 */
    pt_tensor *xt = NULL;
    PT_CHECK_OK(pt_transpose(&xt, x, 0, 1));
    pt_tensor *i2 = pt_oc_make(PT_I32, 2, SHAPE(2, 2), VALS(2, 0, 1, 1));
    PT_CHECK_OK(pt_gather(&y, xt, 0, i2)); /* xt = [[1,4],[2,5],[3,6]] */
    PT_CHECK(pt_oc_equal(y, 4, VALS(3, 4, 2, 5), 0));
    pt_tensor_release(y);
    /* 3-d, dim 1 (middle): x3[i,j,k] = 100i + 10j + k, shape [2,3,2] */
    double v3[12];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 2; k++) v3[i * 6 + j * 2 + k] = 100 * i + 10 * j + k;
    pt_tensor *x3 = pt_oc_make(PT_F64, 3, SHAPE(2, 3, 2), v3);
    pt_tensor *i3 = pt_oc_make(PT_I64, 3, SHAPE(2, 1, 2), VALS(2, 0, 1, 2));
    PT_CHECK_OK(pt_gather(&y, x3, 1, i3));
    PT_CHECK(pt_oc_shape_is(y, 3, SHAPE(2, 1, 2)) && pt_oc_equal(y, 4, VALS(20, 1, 110, 121), 0));
    pt_tensor_release(y);
    /* errors */
    pt_tensor *bad = pt_oc_make(PT_I64, 2, SHAPE(1, 2), VALS(0, 3));
    PT_CHECK_ERR(pt_gather(&y, x, 1, bad), PT_ERR_INDEX, "gather: index 3 at position 1 is out of range for dim 1 "
                                                         "of size 3 (input shape [2, 3])");
    pt_tensor *big = pt_oc_make(PT_I64, 2, SHAPE(3, 1), VALS(0, 0, 0));
    PT_CHECK_ERR(pt_gather(&y, x, 1, big), PT_ERR_SHAPE, "gather: index shape [3, 1] is larger than input shape [2, 3] in dim 0");
    pt_tensor *flat = pt_oc_make(PT_I64, 1, SHAPE(2), VALS(0, 0));
    PT_CHECK_ERR(pt_gather(&y, x, 1, flat), PT_ERR_SHAPE, "must have as many dims as input shape [2, 3]");
    pt_tensor_release(flat);
    pt_tensor_release(big);
    pt_tensor_release(bad);
    pt_tensor_release(i3);
    pt_tensor_release(x3);
    pt_tensor_release(i2);
    pt_tensor_release(xt);
    pt_tensor_release(i0);
    pt_tensor_release(i1);
    pt_tensor_release(x);
}

PT_TEST(scatter_add_exact) {
    /* torch docs example shape: a zeros [3,5], src [2,5] = 1..10, dim 0 */
    pt_tensor *a = NULL, *y = NULL;
    PT_CHECK_OK(pt_tensor_zeros(&a, PT_F32, PT_CPU, 2, SHAPE(3, 5)));
    pt_tensor *src = pt_oc_make(PT_F32, 2, SHAPE(2, 5), VALS(1, 2, 3, 4, 5, 6, 7, 8, 9, 10));
    pt_tensor *idx = pt_oc_make(PT_I64, 2, SHAPE(2, 5), VALS(0, 1, 2, 0, 0, 2, 0, 0, 1, 2));
    PT_CHECK_OK(pt_scatter_add(&y, a, 0, idx, src));
    PT_CHECK(pt_oc_shape_is(y, 2, SHAPE(3, 5)));
    PT_CHECK(pt_oc_equal(y, 15, VALS(1, 7, 8, 4, 5, 0, 2, 0, 9, 0, 6, 0, 3, 0, 10), 0));
    pt_tensor_release(y);
    /* a is not modified; ones + src along dim 1 with an index smaller than src */
    pt_tensor *ones = NULL;
    PT_CHECK_OK(pt_tensor_full(&ones, PT_F32, PT_CPU, 2, SHAPE(2, 3), 1.0));
    pt_tensor *i1 = pt_oc_make(PT_I32, 2, SHAPE(1, 2), VALS(2, 2));
    PT_CHECK_OK(pt_scatter_add(&y, ones, 1, i1, src));
    PT_CHECK(pt_oc_equal(y, 6, VALS(1, 1, 4, 1, 1, 1), 0));
    PT_CHECK(pt_oc_equal(ones, 6, VALS(1, 1, 1, 1, 1, 1), 0));
    pt_tensor_release(y);
    /* integer scatter */
    pt_tensor *ai = pt_oc_make(PT_I64, 1, SHAPE(3), VALS(0, 0, 0)), *si = pt_oc_make(PT_I64, 1, SHAPE(4), VALS(1, 2, 3, 4));
    pt_tensor *ii = pt_oc_make(PT_I64, 1, SHAPE(4), VALS(2, 2, 0, 2));
    PT_CHECK_OK(pt_scatter_add(&y, ai, 0, ii, si));
    PT_CHECK(y && y->dtype == PT_I64 && pt_oc_equal(y, 3, VALS(3, 0, 7), 0));
    pt_tensor_release(y);
    /* errors */
    pt_tensor *bad = pt_oc_make(PT_I64, 1, SHAPE(4), VALS(0, 0, 3, 0));
    PT_CHECK_ERR(pt_scatter_add(&y, ai, 0, bad, si), PT_ERR_INDEX, "scatter_add: index 3 at position 2");
    pt_tensor *sf = pt_oc_make(PT_F32, 1, SHAPE(4), VALS(1, 2, 3, 4));
    PT_CHECK_ERR(pt_scatter_add(&y, ai, 0, ii, sf), PT_ERR_DTYPE, "scatter_add: input dtype i64 and src dtype f32 differ");
    pt_tensor *s2 = pt_oc_make(PT_I64, 1, SHAPE(2), VALS(1, 2));
    PT_CHECK_ERR(pt_scatter_add(&y, ai, 0, ii, s2), PT_ERR_SHAPE, "scatter_add: index shape [4] is larger than src shape [2]");
    pt_tensor_release(s2);
    pt_tensor_release(sf);
    pt_tensor_release(bad);
    pt_tensor_release(ii);
    pt_tensor_release(si);
    pt_tensor_release(ai);
    pt_tensor_release(i1);
    pt_tensor_release(ones);
    pt_tensor_release(idx);
    pt_tensor_release(src);
    pt_tensor_release(a);
}

/* ---- gradient checks (f64, central differences vs pt_backward) ---- */
typedef struct {
    pt_tensor *idx;
    int dim;
} idx_ud;

static pt_status f_index_select(pt_tensor **out, pt_tensor *const *in, void *ud) {
    idx_ud *u = ud;
    return pt_index_select(out, in[0], u->dim, u->idx);
}
static pt_status f_gather(pt_tensor **out, pt_tensor *const *in, void *ud) {
    idx_ud *u = ud;
    return pt_gather(out, in[0], u->dim, u->idx);
}
static pt_status f_scatter_add(pt_tensor **out, pt_tensor *const *in, void *ud) {
    idx_ud *u = ud;
    return pt_scatter_add(out, in[0], u->dim, u->idx, in[1]);
}
static pt_status f_embedding(pt_tensor **out, pt_tensor *const *in, void *ud) {
    idx_ud *u = ud;
    return pt_embedding(out, in[0], u->idx);
}

PT_TEST(index_gradcheck) {
    pt_tensor *x = pt_oc_randn(PT_F64, 3, SHAPE(3, 4, 2), 1);
    idx_ud u = {pt_oc_make(PT_I64, 1, SHAPE(5), VALS(3, 0, 3, 1, 3)), 1};
    PT_CHECK(pt_oc_gradcheck("index_select dim 1", f_index_select, 1, &x, &u));
    pt_tensor_release(u.idx);

    u.idx = pt_oc_make(PT_I32, 3, SHAPE(2, 3, 2), VALS(0, 1, 2, 2, 1, 0, 0, 0, 3, 3, 2, 1));
    u.dim = 1;
    PT_CHECK(pt_oc_gradcheck("gather dim 1", f_gather, 1, &x, &u));
    pt_tensor_release(u.idx);
    u.idx = pt_oc_make(PT_I64, 3, SHAPE(3, 2, 2), VALS(1, 0, 1, 1, 0, 0, 0, 1, 1, 1, 1, 0));
    u.dim = 2;
    PT_CHECK(pt_oc_gradcheck("gather dim 2", f_gather, 1, &x, &u));
    pt_tensor_release(u.idx);

    /* scatter_add into x [3,4,2] along dim 0 from src [2,4,3] with index [2,3,2] (smaller than src) */
    pt_tensor *in[2] = {x, pt_oc_randn(PT_F64, 3, SHAPE(2, 4, 3), 2)};
    u.idx = pt_oc_make(PT_I64, 3, SHAPE(2, 3, 2), VALS(2, 0, 2, 2, 1, 0, 0, 0, 2, 1, 2, 2));
    u.dim = 0;
    PT_CHECK(pt_oc_gradcheck("scatter_add dim 0", f_scatter_add, 2, in, &u));
    pt_tensor_release(u.idx);
    pt_tensor_release(in[1]);

    pt_tensor *w = pt_oc_randn(PT_F64, 2, SHAPE(5, 3), 4);
    u.idx = pt_oc_make(PT_U16, 2, SHAPE(2, 3), VALS(4, 0, 4, 2, 4, 0));
    PT_CHECK(pt_oc_gradcheck("embedding", f_embedding, 1, &w, &u));
    pt_tensor_release(u.idx);
    pt_tensor_release(w);
    pt_tensor_release(x);
}

/* the range checks' one message formatter (eager and deferred CUDA checks read the same) and
 * pt_index_check_range, which the cross-entropy ops use for their targets */
PT_TEST(check_message_template) {
    char b[128];
    pt_index_format_check(b, sizeof b, "op: index {value} at position {pos} (again {value}, {pos})", -7, 12);
    PT_CHECK(strcmp(b, "op: index -7 at position 12 (again -7, 12)") == 0);
    pt_index_format_check(b, sizeof b, "no placeholders, {val} {po} { value} stay", 1, 2);
    PT_CHECK(strcmp(b, "no placeholders, {val} {po} { value} stay") == 0);
    pt_index_format_check(b, 10, "index {value} at {pos}", 123456789, 5); /* truncated, terminated */
    PT_CHECK(strcmp(b, "index 123") == 0);
    pt_index_format_check(b, 1, "x{value}", 1, 2);
    PT_CHECK(b[0] == 0);
    pt_index_format_check(b, sizeof b, "{value}{pos}", INT64_MIN, INT64_MAX);
    PT_CHECK(strcmp(b, "-92233720368547758089223372036854775807") == 0);
    pt_tensor *ok = pt_oc_make(PT_I32, 1, SHAPE(4), VALS(0, 3, 1, 2));
    pt_tensor *bad = pt_oc_make(PT_U8, 2, SHAPE(2, 2), VALS(1, 2, 4, 9));
    pt_tensor *none = pt_oc_make(PT_I64, 1, SHAPE(0), NULL);
    PT_CHECK_OK(pt_index_check_range(ok, 4, "unused {value}"));
    PT_CHECK_OK(pt_index_check_range(none, 0, "unused {value}"));
    PT_CHECK_ERR(pt_index_check_range(bad, 4, "t: id {value} at {pos} not in [0, 4)"), PT_ERR_INDEX,
                 "t: id 4 at 2 not in [0, 4)");
    pt_tensor *f = pt_oc_make(PT_F32, 1, SHAPE(1), VALS(0));
    PT_CHECK_ERR(pt_index_check_range(f, 4, "x"), PT_ERR_UNSUPPORTED, "index_check");
    pt_tensor_release(ok);
    pt_tensor_release(bad);
    pt_tensor_release(none);
    pt_tensor_release(f);
}

PT_TEST(index_no_leaks) {
    pt_tensor_stats s0 = pt_tensor_get_stats();
    for (int it = 0; it < 200; it++) {
        pt_tensor *w = pt_oc_randn(PT_F32, 2, SHAPE(6, 4), (uint64_t)it);
        pt_tensor *idx = pt_oc_make(PT_I64, 1, SHAPE(3), VALS(5, 0, 5));
        pt_tensor *gi = pt_oc_make(PT_I64, 2, SHAPE(1, 4), VALS(2, 0, 1, 2));
        pt_tensor *y = NULL, *z = NULL, *s = NULL;
        w->requires_grad = 1;
        PT_CHECK_OK(pt_embedding(&y, w, idx));
        PT_CHECK_OK(pt_gather(&z, y, 0, gi));
        PT_CHECK_OK(pt_sum(&s, z, 0, NULL, 0));
        PT_CHECK_OK(pt_backward(s, NULL));
        pt_tensor *bad = pt_oc_make(PT_I64, 1, SHAPE(1), VALS(9)), *e = NULL;
        PT_CHECK(pt_embedding(&e, w, bad) == PT_ERR_INDEX && e == NULL);
        pt_tensor_release(bad);
        pt_tensor_release(s);
        pt_tensor_release(z);
        pt_tensor_release(y);
        pt_tensor_release(gi);
        pt_tensor_release(idx);
        pt_tensor_release(w);
    }
    pt_tensor_stats s1 = pt_tensor_get_stats();
    PT_CHECK(s1.live_tensors == s0.live_tensors && s1.host_bytes == s0.host_bytes);
}

int main(void) { return pt_test_main(); }
