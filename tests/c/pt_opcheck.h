/* pt_opcheck.h — helpers shared by the op tests (tests/c/test_reduce.c, tests/c/test_matmul.c):
 * building small tensors from literal values, comparing values, and a finite-difference gradient
 * check in f64.
 *
 *   pt_tensor *x = pt_oc_make(PT_F64, 2, (int64_t[]){2, 3}, (double[]){1, 2, 3, 4, 5, 6});
 *   PT_CHECK(pt_oc_equal(y, 3, (double[]){5, 7, 9}, 0));
 *   PT_CHECK(pt_oc_gradcheck("sum", fn, 1, &x, ud));   // x: f64 leaf, requires_grad set here
 *
 * Gradient check: loss = Σ f(inputs) ⊙ w with fixed, distinct weights w (so every output element
 * gets its own gradient); the analytic gradient comes from pt_backward, the numeric one from
 * central differences with eps = 1e-6; they must agree to 1e-6 relative (absolute below 1).
 * Static functions only: each test file includes its own copy.
 */
#ifndef PT_OPCHECK_H
#define PT_OPCHECK_H

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "pt_ops.h"
#include "pt_test.h"

static pt_tensor *pt_oc_make(pt_dtype dt, int ndim, const int64_t *shape, const double *vals) {
    pt_tensor *t = NULL;
    if (pt_tensor_empty(&t, dt, PT_CPU, ndim, shape)) {
        pt_test_fail(__FILE__, __LINE__, pt_last_error());
        return NULL;
    }
    int64_t n = pt_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) pt_tensor_set_flat(t, i, vals ? vals[i] : (double)i);
    return t;
}

/* deterministic pseudo-random values in [-1, 1) */
static double pt_oc_rand(uint64_t *s) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(*s >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

static pt_tensor *pt_oc_randn(pt_dtype dt, int ndim, const int64_t *shape, uint64_t seed) {
    pt_tensor *t = pt_oc_make(dt, ndim, shape, NULL);
    if (!t) return NULL;
    int64_t n = pt_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) pt_tensor_set_flat(t, i, pt_oc_rand(&seed));
    return t;
}

/* 1 when t has n elements equal to want within tol (prints the first mismatch) */
static int pt_oc_equal(const pt_tensor *t, int64_t n, const double *want, double tol) {
    if (!t) return 0;
    if (pt_tensor_numel(t) != n) {
        printf("    numel %lld, expected %lld\n", (long long)pt_tensor_numel(t), (long long)n);
        return 0;
    }
    for (int64_t i = 0; i < n; i++) {
        double v;
        pt_tensor_get_flat(t, i, &v);
        int same = (isnan(want[i]) && isnan(v)) || v == want[i] || fabs(v - want[i]) <= tol;
        if (!same) {
            printf("    element %lld: got %.17g, expected %.17g\n", (long long)i, v, want[i]);
            return 0;
        }
    }
    return 1;
}

static int pt_oc_shape_is(const pt_tensor *t, int ndim, const int64_t *shape) {
    if (!t || t->ndim != ndim) return 0;
    for (int i = 0; i < ndim; i++)
        if (t->shape[i] != shape[i]) return 0;
    return 1;
}

typedef pt_status (*pt_oc_fn)(pt_tensor **out, pt_tensor *const *in, void *ud);

static double pt_oc_weight(int64_t i) { return 0.5 + 0.37 * (double)((i * 7) % 11) - 0.9 * (double)(i % 2); }

static pt_status pt_oc_loss(pt_oc_fn f, int n, pt_tensor *const *in, void *ud, double *loss) {
    pt_tensor *y = NULL;
    PT_TRY(f(&y, in, ud));
    double s = 0;
    int64_t m = pt_tensor_numel(y);
    for (int64_t i = 0; i < m; i++) {
        double v;
        pt_tensor_get_flat(y, i, &v);
        s += v * pt_oc_weight(i);
    }
    (void)n;
    pt_tensor_release(y);
    *loss = s;
    return PT_OK;
}

/* inputs: f64 leaves; those with requires_grad already set are checked (all when none is set) */
static int pt_oc_gradcheck(const char *name, pt_oc_fn f, int n, pt_tensor *const *in, void *ud) {
    const double eps = 1e-6, tol = 1e-6;
    int any = 0, ok = 1;
    for (int i = 0; i < n; i++) any |= in[i]->requires_grad;
    for (int i = 0; i < n && !any; i++) in[i]->requires_grad = 1;
    for (int i = 0; i < n; i++) pt_tensor_zero_grad(in[i]);
    pt_tensor *y = NULL, *w = NULL, *yw = NULL, *loss = NULL;
    pt_status st = f(&y, in, ud);
    if (!st) {
        w = pt_oc_make(PT_F64, y->ndim, y->shape, NULL);
        for (int64_t i = 0; i < pt_tensor_numel(w); i++) pt_tensor_set_flat(w, i, pt_oc_weight(i));
        st = pt_mul(&yw, y, w);
    }
    if (!st) st = pt_sum(&loss, yw, 0, NULL, 0);
    if (!st) st = pt_backward(loss, NULL);
    pt_tensor_release(y);
    pt_tensor_release(w);
    pt_tensor_release(yw);
    pt_tensor_release(loss);
    if (st) {
        printf("    gradcheck %s: %s\n", name, pt_last_error());
        return 0;
    }
    int prev = pt_grad_set_enabled(0);
    for (int k = 0; k < n && ok; k++) {
        if (!in[k]->requires_grad) continue;
        if (!in[k]->grad) {
            printf("    gradcheck %s: input %d got no gradient\n", name, k);
            ok = 0;
            break;
        }
        for (int64_t e = 0; e < pt_tensor_numel(in[k]) && ok; e++) {
            double x0, lp, lm, an;
            pt_tensor_get_flat(in[k], e, &x0);
            pt_tensor_set_flat(in[k], e, x0 + eps);
            st = pt_oc_loss(f, n, in, ud, &lp);
            pt_tensor_set_flat(in[k], e, x0 - eps);
            if (!st) st = pt_oc_loss(f, n, in, ud, &lm);
            pt_tensor_set_flat(in[k], e, x0);
            if (st) {
                printf("    gradcheck %s: %s\n", name, pt_last_error());
                ok = 0;
                break;
            }
            double num = (lp - lm) / (2 * eps);
            pt_tensor_get_flat(in[k]->grad, e, &an);
            double scale = fmax(1.0, fmax(fabs(an), fabs(num)));
            if (!(fabs(an - num) <= tol * scale)) {
                printf("    gradcheck %s: input %d element %lld: analytic %.12g numeric %.12g\n", name, k,
                       (long long)e, an, num);
                ok = 0;
            }
        }
    }
    pt_grad_set_enabled(prev);
    for (int i = 0; i < n; i++) pt_tensor_zero_grad(in[i]);
    return ok;
}

#endif
