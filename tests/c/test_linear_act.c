/* test_linear_act.c — pt_linear_act (src/kernels/linear_act.c, cpu/linear_act.c): exact values on a hand
 * case, bit-for-bit equality of the output and both gradients with the unfused composition
 * relu2(x · Wᵀ) / leaky_relu2(x · Wᵀ) in f32 and f64 (shapes with unit dims, a batch, and one large
 * enough for the row-blocked threaded GEMM), what the node saves (x, W, h; not the output), empty
 * shapes, no_grad, a strided x, error messages, and f64 finite-difference gradient checks.
 *
 *   cmake --build build-x --target test_linear_act && ctest --test-dir build-x -R c_test_linear_act
 *   (or build-x/test_linear_act from the repo root)
 */
#include <math.h>
#include <string.h>

#include "pt_autograd.h"
#include "pt_fused.h"
#include "pt_linear_act.h"
#include "pt_opcheck.h"
#include "pt_ops.h"
#include "pt_test.h"

#define SHAPE(...) ((int64_t[]){__VA_ARGS__})
#define VALS(...) ((double[]){__VA_ARGS__})

/* 1 when a and b hold the same dtype, shape and bytes (contiguous copies are compared) */
static int same_bits(pt_tensor *a, pt_tensor *b) {
    if (!a || !b || a->dtype != b->dtype || a->ndim != b->ndim) return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return 0;
    pt_tensor *ac = NULL, *bc = NULL;
    int ok = !pt_tensor_contiguous_raw(&ac, a) && !pt_tensor_contiguous_raw(&bc, b);
    int64_t n = pt_tensor_numel(a);
    if (ok && n > 0) ok = !memcmp(pt_tensor_data(ac), pt_tensor_data(bc), (size_t)n * pt_dtype_size(a->dtype));
    if (!ok) {
        for (int64_t i = 0; i < n; i++) {
            double x, y;
            pt_tensor_get_flat(a, i, &x);
            pt_tensor_get_flat(b, i, &y);
            if (memcmp(&x, &y, sizeof x)) {
                printf("    element %lld: %.17g vs %.17g\n", (long long)i, x, y);
                break;
            }
        }
    }
    pt_tensor_release(ac);
    pt_tensor_release(bc);
    return ok;
}

static pt_tensor *copy_leaf(pt_tensor *t) {
    pt_tensor *c = NULL;
    if (pt_tensor_to(&c, t, t->dtype, t->device, 1)) return NULL;
    c->requires_grad = 1;
    return c;
}

/* the unfused composition, as the GPT's MLP writes it: act(x:matmul(W:transpose(1, 2))) */
static pt_status unfused(pt_tensor **out, pt_tensor *x, pt_tensor *w, int act, double slope) {
    pt_tensor *wt = NULL, *h = NULL;
    pt_status st = pt_transpose(&wt, w, 0, 1);
    if (!st) st = pt_matmul(&h, x, wt);
    if (!st) st = act == PT_LINEAR_ACT_LEAKY_RELU2 ? pt_leaky_relu2(out, h, slope) : pt_relu2(out, h);
    pt_tensor_release(wt);
    pt_tensor_release(h);
    return st;
}

/* forward, dx and dW of the fused op and of the composition, bit for bit, under an upstream gradient g */
static int fused_equals_unfused(pt_dtype dt, int xnd, const int64_t *xs, int64_t N, int act, double slope,
                                uint64_t seed) {
    const int64_t K = xs[xnd - 1];
    pt_tensor *x = pt_oc_randn(dt, xnd, xs, seed), *w = pt_oc_randn(dt, 2, SHAPE(N, K), seed + 1);
    pt_tensor *x1 = copy_leaf(x), *w1 = copy_leaf(w), *x2 = copy_leaf(x), *w2 = copy_leaf(w);
    pt_tensor *y1 = NULL, *y2 = NULL, *g = NULL;
    int ok = 1;
    PT_CHECK_OK(pt_linear_act(&y1, x1, w1, act, slope));
    PT_CHECK_OK(unfused(&y2, x2, w2, act, slope));
    if (!y1 || !y2) ok = 0;
    if (ok) {
        g = pt_oc_randn(dt, y1->ndim, y1->shape, seed + 2);
        ok = same_bits(y1, y2);
        if (!ok) printf("    forward differs (act %d, N %lld)\n", act, (long long)N);
    }
    if (ok) {
        PT_CHECK_OK(pt_backward(y1, g));
        PT_CHECK_OK(pt_backward(y2, g));
        ok = same_bits(x1->grad, x2->grad);
        if (!ok) printf("    dx differs\n");
        if (ok) ok = same_bits(w1->grad, w2->grad);
        if (!ok) printf("    dW differs\n");
    }
    pt_tensor *all[] = {x, w, x1, w1, x2, w2, y1, y2, g};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) pt_tensor_release(all[i]);
    return ok;
}

PT_TEST(hand_values_relu2_and_leaky) {
    /* x [2, 3], W [2, 3]: h = [[1·1 + 2·0 + 3·(−1), 1·2 + 2·1 + 3·0], [4 − 6, 8 + 5]] = [[−2, 4], [−2, 13]] */
    pt_tensor *x = pt_oc_make(PT_F64, 2, SHAPE(2, 3), VALS(1, 2, 3, 4, 5, 6));
    pt_tensor *w = pt_oc_make(PT_F64, 2, SHAPE(2, 3), VALS(1, 0, -1, 2, 1, 0));
    pt_tensor *y = NULL;
    PT_CHECK_OK(pt_linear_act(&y, x, w, PT_LINEAR_ACT_RELU2, 0));
    PT_CHECK(pt_oc_shape_is(y, 2, SHAPE(2, 2)) && y->dtype == PT_F64 && pt_oc_equal(y, 4, VALS(0, 16, 0, 169), 0));
    pt_tensor_release(y);
    PT_CHECK_OK(pt_linear_act(&y, x, w, PT_LINEAR_ACT_LEAKY_RELU2, 0.5));
    PT_CHECK(pt_oc_equal(y, 4, VALS(1, 16, 1, 169), 0)); /* (−2·0.5)² = 1 */
    pt_tensor_release(y);
    /* a 1-D x is one row: [3] -> [2] */
    pt_tensor *x1 = pt_oc_make(PT_F32, 1, SHAPE(3), VALS(1, 2, 3)), *w1 = NULL;
    PT_CHECK_OK(pt_tensor_to(&w1, w, PT_F32, PT_CPU, 0));
    PT_CHECK_OK(pt_linear_act(&y, x1, w1, PT_LINEAR_ACT_LEAKY_RELU2, -1.5));
    PT_CHECK(pt_oc_shape_is(y, 1, SHAPE(2)) && y->dtype == PT_F32 && pt_oc_equal(y, 2, VALS(9, 16), 0));
    pt_tensor_release(y);
    pt_tensor_release(x);
    pt_tensor_release(w);
    pt_tensor_release(x1);
    pt_tensor_release(w1);
}

PT_TEST(bitwise_equal_to_the_unfused_composition) {
    const pt_dtype dts[2] = {PT_F32, PT_F64};
    for (int d = 0; d < 2; d++) {
        pt_dtype dt = dts[d];
        for (int act = 0; act < 2; act++) {
            double slope = act ? 0.5 : 0;
            PT_CHECK(fused_equals_unfused(dt, 3, SHAPE(2, 5, 16), 24, act, slope, 11));      /* batch dims */
            PT_CHECK(fused_equals_unfused(dt, 2, SHAPE(300, 128), 200, act, slope, 12));    /* threaded GEMM */
            PT_CHECK(fused_equals_unfused(dt, 2, SHAPE(7, 9), 1, act, slope, 13));          /* N = 1 */
            PT_CHECK(fused_equals_unfused(dt, 2, SHAPE(7, 1), 6, act, slope, 14));          /* K = 1 */
            PT_CHECK(fused_equals_unfused(dt, 2, SHAPE(1, 33), 17, act, slope, 15));        /* one row */
            PT_CHECK(fused_equals_unfused(dt, 1, SHAPE(12), 10, act, slope, 16));           /* 1-D x */
        }
        PT_CHECK(fused_equals_unfused(dt, 2, SHAPE(20, 30), 40, PT_LINEAR_ACT_LEAKY_RELU2, -1.25, 17));
    }
}

PT_TEST(node_saves_x_w_and_h_not_the_output) {
    pt_tensor *x = pt_oc_randn(PT_F32, 2, SHAPE(4, 6), 21), *w = pt_oc_randn(PT_F32, 2, SHAPE(5, 6), 22);
    w->requires_grad = 1;
    pt_tensor *y = NULL, *wt = NULL, *h = NULL;
    PT_CHECK_OK(pt_linear_act(&y, x, w, PT_LINEAR_ACT_RELU2, 0));
    PT_CHECK(y && y->grad_fn && y->requires_grad);
    if (y && y->grad_fn) {
        pt_node *n = y->grad_fn;
        PT_CHECK(!strcmp(n->name, "linear_relu2") && n->n_inputs == 2 && n->n_saved == 3);
        PT_CHECK(n->saved[0] == x && n->saved[1] == w); /* contiguous inputs are shared, not copied */
        PT_CHECK(n->saved[2] != y && pt_oc_shape_is(n->saved[2], 2, SHAPE(4, 5)));
        pt_grad_set_enabled(0);
        PT_CHECK_OK(pt_transpose(&wt, w, 0, 1));
        PT_CHECK_OK(pt_matmul(&h, x, wt));
        pt_grad_set_enabled(1);
        PT_CHECK(same_bits(n->saved[2], h)); /* h, before the activation */
    }
    pt_tensor_release(y);
    /* under no_grad there is no node */
    int prev = pt_grad_set_enabled(0);
    PT_CHECK_OK(pt_linear_act(&y, x, w, PT_LINEAR_ACT_LEAKY_RELU2, 0.5));
    PT_CHECK(y && !y->grad_fn && !y->requires_grad);
    pt_grad_set_enabled(prev);
    pt_tensor_release(y);
    pt_tensor_release(wt);
    pt_tensor_release(h);
    pt_tensor_release(x);
    pt_tensor_release(w);
}

PT_TEST(strided_x_and_shared_storage) {
    /* x as a transposed view: copied to contiguous first; values equal the composition within rounding */
    pt_tensor *xb = pt_oc_randn(PT_F64, 2, SHAPE(8, 5), 31), *x = NULL, *w = pt_oc_randn(PT_F64, 2, SHAPE(3, 8), 32);
    PT_CHECK_OK(pt_transpose(&x, xb, 0, 1)); /* [5, 8] */
    pt_tensor *y1 = NULL, *y2 = NULL;
    PT_CHECK_OK(pt_linear_act(&y1, x, w, PT_LINEAR_ACT_RELU2, 0));
    PT_CHECK_OK(unfused(&y2, x, w, PT_LINEAR_ACT_RELU2, 0));
    if (y1 && y2) {
        double want[15];
        for (int i = 0; i < 15; i++) pt_tensor_get_flat(y2, i, &want[i]);
        PT_CHECK(pt_oc_shape_is(y1, 2, SHAPE(5, 3)) && pt_oc_equal(y1, 15, want, 1e-12));
    }
    pt_tensor_release(y1);
    pt_tensor_release(y2);
    pt_tensor_release(x);
    pt_tensor_release(xb);
    pt_tensor_release(w);
}

PT_TEST(empty_shapes) {
    pt_tensor *y = NULL;
    /* no rows */
    pt_tensor *x0 = pt_oc_make(PT_F32, 2, SHAPE(0, 4), NULL), *w = pt_oc_randn(PT_F32, 2, SHAPE(3, 4), 41);
    PT_CHECK_OK(pt_linear_act(&y, x0, w, PT_LINEAR_ACT_RELU2, 0));
    PT_CHECK(pt_oc_shape_is(y, 2, SHAPE(0, 3)));
    pt_tensor_release(y);
    /* no outputs */
    pt_tensor *x = pt_oc_randn(PT_F32, 2, SHAPE(2, 4), 42), *wn = pt_oc_make(PT_F32, 2, SHAPE(0, 4), NULL);
    PT_CHECK_OK(pt_linear_act(&y, x, wn, PT_LINEAR_ACT_RELU2, 0));
    PT_CHECK(pt_oc_shape_is(y, 2, SHAPE(2, 0)));
    pt_tensor_release(y);
    /* K = 0: h = 0, out = 0, and the gradients are zeros of the inputs' shapes */
    pt_tensor *xk = pt_oc_make(PT_F64, 2, SHAPE(2, 0), NULL), *wk = pt_oc_make(PT_F64, 2, SHAPE(3, 0), NULL);
    xk->requires_grad = wk->requires_grad = 1;
    PT_CHECK_OK(pt_linear_act(&y, xk, wk, PT_LINEAR_ACT_LEAKY_RELU2, 0.5));
    PT_CHECK(pt_oc_shape_is(y, 2, SHAPE(2, 3)) && pt_oc_equal(y, 6, VALS(0, 0, 0, 0, 0, 0), 0));
    pt_tensor *g = pt_oc_randn(PT_F64, 2, SHAPE(2, 3), 43);
    if (y) PT_CHECK_OK(pt_backward(y, g));
    PT_CHECK(xk->grad && pt_oc_shape_is(xk->grad, 2, SHAPE(2, 0)) && wk->grad && pt_oc_shape_is(wk->grad, 2, SHAPE(3, 0)));
    pt_tensor_release(y);
    pt_tensor *all[] = {x0, w, x, wn, xk, wk, g};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) pt_tensor_release(all[i]);
}

PT_TEST(errors_name_the_problem) {
    pt_tensor *x = pt_oc_randn(PT_F32, 2, SHAPE(2, 4), 51), *w = pt_oc_randn(PT_F32, 2, SHAPE(3, 4), 52);
    pt_tensor *w5 = pt_oc_randn(PT_F32, 2, SHAPE(3, 5), 53), *w64 = pt_oc_randn(PT_F64, 2, SHAPE(3, 4), 54);
    pt_tensor *w1 = pt_oc_randn(PT_F32, 1, SHAPE(4), 55), *s = pt_oc_make(PT_F32, 0, NULL, VALS(1));
    pt_tensor *xi = NULL, *xb = NULL, *wb = NULL, *y = NULL;
    PT_CHECK_OK(pt_tensor_to(&xi, x, PT_I64, PT_CPU, 0));
    PT_CHECK_OK(pt_tensor_to(&xb, x, PT_BF16, PT_CPU, 0));
    PT_CHECK_OK(pt_tensor_to(&wb, w, PT_BF16, PT_CPU, 0));
    PT_CHECK_ERR(pt_linear_act(&y, x, w5, PT_LINEAR_ACT_RELU2, 0), PT_ERR_SHAPE,
                 "linear_relu2: x [2, 4] and W [3, 5] do not fit: W must be [out, in] with in = 4");
    PT_CHECK(y == NULL);
    PT_CHECK_ERR(pt_linear_act(&y, x, w1, PT_LINEAR_ACT_RELU2, 0), PT_ERR_SHAPE, "W must be [out, in]");
    PT_CHECK_ERR(pt_linear_act(&y, s, w, PT_LINEAR_ACT_RELU2, 0), PT_ERR_SHAPE, "x must be [..., in], got a scalar");
    PT_CHECK_ERR(pt_linear_act(&y, x, w64, PT_LINEAR_ACT_LEAKY_RELU2, 0.5), PT_ERR_DTYPE,
                 "linear_leaky_relu2: W has dtype f64 but x has f32");
    PT_CHECK_ERR(pt_linear_act(&y, xi, w, PT_LINEAR_ACT_RELU2, 0), PT_ERR_DTYPE, "x has dtype i64");
    PT_CHECK_ERR(pt_linear_act(&y, x, w, PT_LINEAR_ACT_LEAKY_RELU2, NAN), PT_ERR_VALUE, "slope must be finite");
    PT_CHECK_ERR(pt_linear_act(&y, x, w, (pt_linear_act_kind)7, 0), PT_ERR_VALUE, "unknown activation 7");
    /* bf16 storage runs on the CPU too (widened to f32, rounded once: cpu/bf16.c) */
    PT_CHECK_OK(pt_linear_act(&y, xb, wb, PT_LINEAR_ACT_RELU2, 0));
    PT_CHECK(y && y->dtype == PT_BF16 && y->ndim == 2 && y->shape[0] == 2 && y->shape[1] == 3);
    pt_tensor_release(y);
    y = NULL;
    pt_tensor *all[] = {x, w, w5, w64, w1, s, xi, xb, wb};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) pt_tensor_release(all[i]);
}

typedef struct {
    int act;
    double slope;
} la_ud;

static pt_status la_fn(pt_tensor **out, pt_tensor *const *in, void *ud) {
    const la_ud *u = ud;
    return pt_linear_act(out, in[0], in[1], u->act, u->slope);
}

PT_TEST(gradcheck_f64) {
    la_ud cases[3] = {{PT_LINEAR_ACT_RELU2, 0}, {PT_LINEAR_ACT_LEAKY_RELU2, 0.5}, {PT_LINEAR_ACT_LEAKY_RELU2, -0.7}};
    for (int c = 0; c < 3; c++) {
        pt_tensor *in[2] = {pt_oc_randn(PT_F64, 3, SHAPE(2, 3, 5), 61 + c), pt_oc_randn(PT_F64, 2, SHAPE(4, 5), 71 + c)};
        PT_CHECK(pt_oc_gradcheck(c == 0 ? "linear_relu2" : "linear_leaky_relu2", la_fn, 2, in, &cases[c]));
        /* one input at a time: the other gets no gradient and its GEMM is skipped */
        in[0]->requires_grad = 1;
        in[1]->requires_grad = 0;
        PT_CHECK(pt_oc_gradcheck("linear_act dx only", la_fn, 2, in, &cases[c]));
        in[0]->requires_grad = 0;
        in[1]->requires_grad = 1;
        PT_CHECK(pt_oc_gradcheck("linear_act dW only", la_fn, 2, in, &cases[c]));
        pt_tensor_release(in[0]);
        pt_tensor_release(in[1]);
    }
}

int main(void) { return pt_test_main(); }
