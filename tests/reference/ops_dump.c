/* ops_dump.c — writes random cases of the reduction, softmax, matmul and linear algebra ops (inputs,
 * outputs and the gradients of loss = Σ out ⊙ w computed by proteus) to a text file, for
 * tests/reference/test_ops_torch.py to recompute with PyTorch and compare. Built and run by the
 * ctest `ref_ops_torch` (CMakeLists.txt, last block):
 *
 *   build/ops_dump /tmp/ops.txt && /usr/bin/python3 tests/reference/test_ops_torch.py --file /tmp/ops.txt
 *
 * File format (text, one record per line):
 *   case NAME OP key=value...      starts a case; keys: dims=0,2 (empty: all) keep=0|1 dim=N p=P
 *                                  corr=C upper=0|1
 *   tensor TAG DTYPE NDIM D1..Dn V1..Vnumel    TAG: inputs a, b; output y (and idx, q, r); weight w;
 *                                  gradients ga, gb (absent for non-differentiable ops)
 *   end
 * Values are printed with %.17g (exact for f64 and f32).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pt_ops.h"

static uint64_t rng_state = 12345;
static double rnd(void) {
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(rng_state >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

static pt_tensor *make(pt_dtype dt, int nd, const int64_t *shape) {
    pt_tensor *t = NULL;
    if (pt_tensor_empty(&t, dt, PT_CPU, nd, shape)) return NULL;
    for (int64_t i = 0; i < pt_tensor_numel(t); i++) pt_tensor_set_flat(t, i, rnd());
    return t;
}

static void dump(FILE *f, const char *tag, const pt_tensor *t) {
    if (!t) return;
    fprintf(f, "tensor %s %s %d", tag, pt_dtype_name(t->dtype), t->ndim);
    for (int i = 0; i < t->ndim; i++) fprintf(f, " %lld", (long long)t->shape[i]);
    for (int64_t i = 0; i < pt_tensor_numel(t); i++) {
        double v;
        pt_tensor_get_flat(t, i, &v);
        fprintf(f, " %.17g", v);
    }
    fprintf(f, "\n");
}

typedef struct {
    const char *name, *op;
    pt_dtype dt;
    int an, bn;
    int64_t as[4], bs[4];
    int nd, dims[4], keep, dim, corr, upper;
    double p;
    int spd; /* make a symmetric positive definite (cholesky) or well conditioned (inverse) */
} ref_case;

static const ref_case cases[] = {
    {"sum_dims02", "sum", PT_F64, 3, 0, {3, 4, 5}, {0}, 2, {0, 2}, 0, 0, 0, 0, 0, 0},
    {"sum_all_f32", "sum", PT_F32, 2, 0, {7, 9}, {0}, 0, {0}, 0, 0, 0, 0, 0, 0},
    {"sum_mid_keep", "sum", PT_F64, 3, 0, {2, 70, 3}, {0}, 1, {1}, 1, 0, 0, 0, 0, 0},
    {"mean_d1_keep", "mean", PT_F64, 3, 0, {3, 4, 5}, {0}, 1, {1}, 1, 0, 0, 0, 0, 0},
    {"mean_f32", "mean", PT_F32, 2, 0, {33, 65}, {0}, 1, {0}, 0, 0, 0, 0, 0, 0},
    {"max_d1", "max", PT_F64, 3, 0, {3, 4, 5}, {0}, 0, {0}, 0, 1, 0, 0, 0, 0},
    {"min_d0_keep", "min", PT_F32, 2, 0, {6, 5}, {0}, 0, {0}, 1, 0, 0, 0, 0, 0},
    {"argmax_last", "argmax", PT_F64, 3, 0, {3, 4, 5}, {0}, 0, {0}, 0, -1, 0, 0, 0, 0},
    {"norm2_d1", "norm", PT_F64, 3, 0, {3, 4, 5}, {0}, 1, {1}, 0, 0, 0, 0, 2, 0},
    {"norm2_all_f32", "norm", PT_F32, 2, 0, {20, 30}, {0}, 0, {0}, 0, 0, 0, 0, 2, 0},
    {"norm1_d2", "norm", PT_F64, 3, 0, {3, 4, 5}, {0}, 1, {2}, 1, 0, 0, 0, 1, 0},
    {"norminf_d02", "norm", PT_F64, 3, 0, {3, 4, 5}, {0}, 2, {0, 2}, 0, 0, 0, 0, INFINITY, 0},
    {"norm3_d1", "norm", PT_F64, 2, 0, {4, 6}, {0}, 1, {1}, 0, 0, 0, 0, 3, 0},
    {"var_c1_d2", "var", PT_F64, 3, 0, {3, 4, 5}, {0}, 1, {2}, 0, 0, 1, 0, 0, 0},
    {"var_c0_d0_f32", "var", PT_F32, 2, 0, {50, 7}, {0}, 1, {0}, 1, 0, 0, 0, 0, 0},
    {"std_c0_d01", "std", PT_F64, 3, 0, {3, 4, 5}, {0}, 2, {0, 1}, 0, 0, 0, 0, 0, 0},
    {"std_c1_all", "std", PT_F64, 2, 0, {4, 5}, {0}, 0, {0}, 0, 0, 1, 0, 0, 0},
    {"softmax_d1", "softmax", PT_F64, 3, 0, {3, 4, 5}, {0}, 0, {0}, 0, 1, 0, 0, 0, 0},
    {"softmax_last_f32", "softmax", PT_F32, 2, 0, {8, 100}, {0}, 0, {0}, 0, -1, 0, 0, 0, 0},
    {"log_softmax_d0", "log_softmax", PT_F64, 3, 0, {3, 4, 5}, {0}, 0, {0}, 0, 0, 0, 0, 0, 0},
    {"log_softmax_last_f32", "log_softmax", PT_F32, 2, 0, {5, 70}, {0}, 0, {0}, 0, -1, 0, 0, 0, 0},
    {"mm_2d", "matmul", PT_F64, 2, 2, {4, 5}, {5, 3}, 0, {0}, 0, 0, 0, 0, 0, 0},
    {"mm_2d_f32", "matmul", PT_F32, 2, 2, {40, 50}, {50, 30}, 0, {0}, 0, 0, 0, 0, 0, 0},
    {"mm_bcast4d", "matmul", PT_F64, 4, 3, {2, 1, 4, 5}, {3, 5, 2}, 0, {0}, 0, 0, 0, 0, 0, 0},
    {"mm_1d_3d", "matmul", PT_F64, 1, 3, {5}, {2, 5, 3}, 0, {0}, 0, 0, 0, 0, 0, 0},
    {"mm_3d_1d", "matmul", PT_F64, 3, 1, {2, 4, 5}, {5}, 0, {0}, 0, 0, 0, 0, 0, 0},
    {"mm_1d_1d", "matmul", PT_F64, 1, 1, {6}, {6}, 0, {0}, 0, 0, 0, 0, 0, 0},
    {"mm_3d_2d_f32", "matmul", PT_F32, 3, 2, {3, 16, 24}, {24, 8}, 0, {0}, 0, 0, 0, 0, 0, 0},
    {"qr_tall", "qr", PT_F64, 2, 0, {6, 4}, {0}, 0, {0}, 0, 0, 0, 0, 0, 0},
    {"qr_wide_f32", "qr", PT_F32, 2, 0, {3, 5}, {0}, 0, {0}, 0, 0, 0, 0, 0, 0},
    {"cholesky_lower", "cholesky", PT_F64, 2, 0, {5, 5}, {0}, 0, {0}, 0, 0, 0, 0, 0, 1},
    {"cholesky_upper_batch", "cholesky", PT_F64, 3, 0, {2, 4, 4}, {0}, 0, {0}, 0, 0, 0, 1, 0, 1},
    {"inverse_batch", "inverse", PT_F64, 3, 0, {3, 4, 4}, {0}, 0, {0}, 0, 0, 0, 0, 0, 1},
};

static pt_status run_case(FILE *f, const ref_case *c) {
    pt_tensor *a = make(c->dt, c->an, c->as), *b = c->bn ? make(c->dt, c->bn, c->bs) : NULL;
    pt_tensor *y = NULL, *idx = NULL, *q = NULL, *r = NULL, *w = NULL, *yw = NULL, *loss = NULL, *tmp = NULL;
    pt_status st = a && (!c->bn || b) ? PT_OK : PT_FAIL(PT_ERR_OOM, "ops_dump: allocation failed");
    if (!st && c->spd) { /* a <- a aᵀ + n I (symmetric positive definite, well conditioned) */
        pt_tensor *at = NULL, *aat = NULL;
        int64_t n = c->as[c->an - 1];
        st = pt_transpose(&at, a, -1, -2);
        if (!st) st = pt_matmul(&aat, a, at);
        for (int64_t i = 0; !st && i < pt_tensor_numel(aat); i++) {
            double v;
            pt_tensor_get_flat(aat, i, &v);
            int64_t rr = (i / n) % n, cc = i % n;
            pt_tensor_set_flat(a, i, v + (rr == cc ? (double)n : 0));
        }
        pt_tensor_release(at);
        pt_tensor_release(aat);
    }
    int diff = strcmp(c->op, "argmax") && strcmp(c->op, "qr") && strcmp(c->op, "cholesky");
    if (!st && diff) {
        a->requires_grad = 1;
        if (b) b->requires_grad = 1;
    }
    const char *op = c->op;
    if (st) {
    } else if (!strcmp(op, "sum")) st = pt_sum(&y, a, c->nd, c->dims, c->keep);
    else if (!strcmp(op, "mean")) st = pt_mean(&y, a, c->nd, c->dims, c->keep);
    else if (!strcmp(op, "max")) st = pt_max(&y, &idx, a, c->dim, c->keep);
    else if (!strcmp(op, "min")) st = pt_min(&y, &idx, a, c->dim, c->keep);
    else if (!strcmp(op, "argmax")) st = pt_argmax(&idx, a, c->dim, c->keep);
    else if (!strcmp(op, "norm")) st = pt_norm(&y, a, c->p, c->nd, c->dims, c->keep);
    else if (!strcmp(op, "var")) st = pt_var(&y, a, c->nd, c->dims, c->corr, c->keep);
    else if (!strcmp(op, "std")) st = pt_std(&y, a, c->nd, c->dims, c->corr, c->keep);
    else if (!strcmp(op, "softmax")) st = pt_softmax(&y, a, c->dim);
    else if (!strcmp(op, "log_softmax")) st = pt_log_softmax(&y, a, c->dim);
    else if (!strcmp(op, "matmul")) st = pt_matmul(&y, a, b);
    else if (!strcmp(op, "qr")) st = pt_qr(&q, &r, a);
    else if (!strcmp(op, "cholesky")) st = pt_cholesky(&y, a, c->upper);
    else if (!strcmp(op, "inverse")) st = pt_inverse(&y, a);
    if (!st && diff) {
        st = pt_tensor_empty(&w, y->dtype, PT_CPU, y->ndim, y->shape);
        for (int64_t i = 0; !st && i < pt_tensor_numel(w); i++) pt_tensor_set_flat(w, i, rnd());
        if (!st) st = pt_mul(&yw, y, w);
        if (!st) st = pt_sum(&loss, yw, 0, NULL, 0);
        if (!st) st = pt_backward(loss, NULL);
    }
    if (!st) {
        fprintf(f, "case %s %s dims=", c->name, op);
        for (int i = 0; i < c->nd; i++) fprintf(f, "%s%d", i ? "," : "", c->dims[i]);
        fprintf(f, " keep=%d dim=%d p=%.17g corr=%d upper=%d\n", c->keep, c->dim, c->p, c->corr, c->upper);
        dump(f, "a", a);
        dump(f, "b", b);
        dump(f, "y", y);
        dump(f, "idx", idx);
        dump(f, "q", q);
        dump(f, "r", r);
        dump(f, "w", w);
        if (diff) {
            dump(f, "ga", a->grad);
            if (b) dump(f, "gb", b->grad);
        }
        fprintf(f, "end\n");
    }
    pt_tensor *all[] = {a, b, y, idx, q, r, w, yw, loss, tmp};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) pt_tensor_release(all[i]);
    return st;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: ops_dump OUT.txt\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "w");
    if (!f) {
        fprintf(stderr, "ops_dump: cannot write %s\n", argv[1]);
        return 1;
    }
    int rc = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (run_case(f, &cases[i])) {
            fprintf(stderr, "ops_dump: case %s failed: %s\n", cases[i].name, pt_last_error());
            rc = 1;
        }
    }
    if (fclose(f)) rc = 1;
    return rc;
}
