/* reduce.c — op fronts of the reduction family (sum, mean, max, min, argmax, norm, var, std) and of
 * softmax / log_softmax: argument checks (errors name the op, the dims and the shape), the [O, N, I]
 * layout plan handed to the kernels of pt_reduce.h, dispatch, and the autograd backward of each op.
 *
 * Layout plan: when the reduced dims form one block (size-1 dims inside it do not matter) the input
 * is used as is (made contiguous if it is not) and seen as [O, N, I]; otherwise the kept dims are
 * permuted to the front and the reduced ones to the back, made contiguous, and I = 1.
 * dtypes: f32/f64 everywhere; integer inputs are accepted by sum (-> i64), max/min (same dtype) and
 * argmax; bf16/f16 on the CPU must be cast first (the error says so).
 *
 * Tests: tests/c/test_reduce.c (exact values, errors, f64 finite-difference gradient checks),
 * tests/reference/test_ops_torch.py (random inputs against PyTorch).
 */
#include <math.h>   /* INFINITY, isinf */
#include <string.h> /* memcpy, memset */

#include "pt_dispatch.h"
#include "pt_ops.h"
#include "pt_reduce.h"

static const char *pt_redop_names[PT_NREDOPS] = {"sum", "mean", "max", "min", "argmax", "norm", "var", "std"};

typedef struct {
    unsigned mask;                    /* bit d set: dim d is reduced */
    int out_ndim;                     /* ndim of the output (keepdim or not) */
    int64_t out_shape[PT_MAX_DIMS];
    int64_t keep_shape[PT_MAX_DIMS];  /* input shape with reduced dims set to 1 (a->ndim dims) */
    int64_t outer, n, inner;
    int block;                        /* reduced dims form one block: no permute needed */
} pt_red_plan;

static pt_status pt_fail_release(pt_tensor **out, pt_status st) {
    if (st) {
        pt_tensor_release(*out);
        *out = NULL;
    }
    return st;
}

static pt_status pt_red_plan_make(const char *op, const pt_tensor *a, int ndims, const int *dims, int keepdim,
                                  pt_red_plan *p) {
    memset(p, 0, sizeof *p);
    if (ndims < 0 || ndims > PT_MAX_DIMS) return PT_FAIL(PT_ERR_VALUE, "%s: %d dims given (at most %d)", op, ndims, PT_MAX_DIMS);
    if (ndims == 0) {
        p->mask = a->ndim ? (1u << a->ndim) - 1 : 0;
    } else {
        for (int i = 0; i < ndims; i++) {
            int d = dims[i];
            PT_TRY(pt_norm_dim(op, a->ndim, &d));
            if (a->ndim == 0) continue; /* dim 0 / -1 of a 0-d tensor: nothing to reduce */
            if (p->mask & (1u << d)) {
                char b[128];
                return PT_FAIL(PT_ERR_VALUE, "%s: dim %d appears twice in the reduction dims for shape %s", op, d,
                               pt_shape_str(a->ndim, a->shape, b, sizeof b));
            }
            p->mask |= 1u << d;
        }
    }
    p->outer = p->n = p->inner = 1;
    int lo = -1, hi = -1;
    for (int d = 0; d < a->ndim; d++) {
        int red = (p->mask >> d) & 1;
        p->keep_shape[d] = red ? 1 : a->shape[d];
        if (red) {
            if (lo < 0) lo = d;
            hi = d;
            p->n *= a->shape[d];
            if (keepdim) p->out_shape[p->out_ndim++] = 1;
        } else {
            p->out_shape[p->out_ndim++] = a->shape[d];
        }
    }
    p->block = 1;
    for (int d = lo; lo >= 0 && d <= hi; d++)
        if (!((p->mask >> d) & 1) && a->shape[d] != 1) p->block = 0;
    if (p->block) {
        if (lo < 0) { /* nothing reduced: every element is its own row */
            p->outer = pt_tensor_numel(a);
        } else {
            for (int d = 0; d < lo; d++) p->outer *= a->shape[d];
            for (int d = hi + 1; d < a->ndim; d++) p->inner *= a->shape[d];
        }
    } else {
        for (int d = 0; d < a->ndim; d++)
            if (!((p->mask >> d) & 1)) p->outer *= a->shape[d];
    }
    return PT_OK;
}

/* The input as a contiguous [O, N, I] tensor (a new reference). */
static pt_status pt_red_input(pt_tensor **x, pt_tensor *a, const pt_red_plan *p) {
    if (p->block) return pt_tensor_contiguous_raw(x, a);
    int64_t shape[PT_MAX_DIMS], stride[PT_MAX_DIMS];
    int k = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int d = 0; d < a->ndim; d++)
            if ((int)((p->mask >> d) & 1) == pass) {
                shape[k] = a->shape[d];
                stride[k++] = a->stride[d];
            }
    pt_tensor *v = NULL;
    PT_TRY(pt_tensor_view_of(&v, a, a->ndim, shape, stride, a->offset));
    pt_status st = pt_tensor_contiguous_raw(x, v);
    pt_tensor_release(v);
    return st;
}

static pt_status pt_red_kernel(pt_reduce_kernel *k, const char *name, pt_device dev, pt_dtype dt) {
    *k = (pt_reduce_kernel)pt_kernel_find(name, dev.type, dt);
    if (!*k) return pt_kernel_missing(name, dev.type, dt);
    return PT_OK;
}

/* Runs the "red" kernel: vals (may be NULL for argmax) and idx (may be NULL) are allocated here. */
static pt_status pt_red_compute(pt_tensor **vals, pt_tensor **idx, pt_redop op, pt_tensor *a, const pt_red_plan *p,
                                double pnorm, double correction, pt_dtype kdt) {
    pt_reduce_kernel k;
    PT_TRY(pt_red_kernel(&k, "red", a->device, kdt));
    pt_tensor *x = NULL;
    pt_status st = pt_red_input(&x, a, p);
    if (!st && vals) st = pt_tensor_empty(vals, kdt, a->device, p->out_ndim, p->out_shape);
    if (!st && idx) st = pt_tensor_empty(idx, PT_I64, a->device, p->out_ndim, p->out_shape);
    if (!st && p->outer * p->inner > 0) {
        pt_reduce_args args;
        memset(&args, 0, sizeof args);
        args.op = op;
        args.outer = p->outer;
        args.n = p->n;
        args.inner = p->inner;
        args.x = pt_tensor_data(x);
        args.out = vals ? pt_tensor_data(*vals) : NULL;
        args.idx = idx ? pt_tensor_data(*idx) : NULL;
        args.p = pnorm;
        args.correction = correction;
        k(&args);
    }
    pt_tensor_release(x);
    if (st) {
        if (vals) pt_fail_release(vals, st);
        if (idx) pt_fail_release(idx, st);
    }
    return st;
}

/* g (output shape) reshaped to the keepdim shape, so it broadcasts against the input. */
static pt_status pt_red_grad_keep(pt_tensor **out, pt_tensor *g, const pt_node *node) {
    const pt_tensor *in = node->inputs[0];
    int64_t shape[PT_MAX_DIMS];
    for (int d = 0; d < in->ndim; d++) shape[d] = ((node->i[0] >> d) & 1) ? 1 : in->shape[d];
    return pt_reshape(out, g, in->ndim, shape);
}

/* the reduction dims of a node as a list (for calling pt_sum/pt_mean in a backward) */
static int pt_red_dims(const pt_node *node, int *dims) {
    int n = 0;
    for (int d = 0; d < node->inputs[0]->ndim; d++)
        if ((node->i[0] >> d) & 1) dims[n++] = d;
    return n;
}

/* ---------------- sum, mean ---------------- */
static pt_status pt_sum_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin) {
    pt_tensor *in = node->inputs[0], *gk = NULL, *ge = NULL;
    pt_status st = pt_red_grad_keep(&gk, g, node);
    if (!st) st = pt_expand(&ge, gk, in->ndim, in->shape);
    /* one broadcasting elementwise pass writes the contiguous gradient (and applies 1/N for mean) */
    if (!st) st = pt_mul_scalar(&gin[0], ge, node->f[0]);
    pt_tensor_release(gk);
    pt_tensor_release(ge);
    return st;
}

static pt_status pt_sum_mean(pt_tensor **out, pt_redop op, pt_tensor *a, int ndims, const int *dims, int keepdim) {
    *out = NULL;
    const char *name = pt_redop_names[op];
    pt_red_plan p;
    PT_TRY(pt_red_plan_make(name, a, ndims, dims, keepdim, &p));
    pt_dtype kdt = a->dtype;
    if (op == PT_RED_SUM && pt_dtype_is_int(a->dtype)) kdt = PT_I64;
    else PT_TRY(pt_check_float(name, a));
    pt_tensor *ac = NULL;
    PT_TRY(pt_tensor_to(&ac, a, kdt, a->device, 0));
    pt_status st = pt_red_compute(out, NULL, op, ac, &p, 0, 0, kdt);
    pt_tensor_release(ac);
    if (!st && pt_dtype_is_float(kdt)) {
        pt_node *node;
        st = pt_autograd_record(*out, name, pt_sum_bwd, 1, &a, 0, NULL, &node);
        if (!st && node) {
            node->i[0] = p.mask;
            node->f[0] = op == PT_RED_MEAN ? 1.0 / (double)p.n : 1.0;
        }
    }
    return pt_fail_release(out, st);
}

pt_status pt_sum(pt_tensor **out, pt_tensor *a, int ndims, const int *dims, int keepdim) {
    return pt_sum_mean(out, PT_RED_SUM, a, ndims, dims, keepdim);
}

pt_status pt_mean(pt_tensor **out, pt_tensor *a, int ndims, const int *dims, int keepdim) {
    return pt_sum_mean(out, PT_RED_MEAN, a, ndims, dims, keepdim);
}

/* ---------------- max, min, argmax ---------------- */
/* gradient of max/min: g goes to the position of the winning index (inputs[0] shape) */
static pt_status pt_maxmin_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin) {
    pt_tensor *in = node->inputs[0], *idx = node->saved[0], *gc = NULL;
    int dim = (int)node->i[0];
    pt_reduce_kernel k;
    PT_TRY(pt_red_kernel(&k, "red_scatter", g->device, g->dtype));
    pt_status st = pt_tensor_contiguous_raw(&gc, g);
    if (!st) st = pt_tensor_zeros(&gin[0], g->dtype, g->device, in->ndim, in->shape);
    if (!st) {
        pt_reduce_args args;
        memset(&args, 0, sizeof args);
        args.outer = args.n = args.inner = 1;
        for (int d = 0; d < in->ndim; d++) {
            if (d < dim) args.outer *= in->shape[d];
            else if (d == dim) args.n = in->shape[d];
            else args.inner *= in->shape[d];
        }
        args.g = pt_tensor_data(gc);
        args.gidx = pt_tensor_data(idx);
        args.out = pt_tensor_data(gin[0]);
        if (args.outer * args.inner > 0) k(&args);
    }
    pt_tensor_release(gc);
    return st;
}

static pt_status pt_maxmin(pt_tensor **values, pt_tensor **indices, pt_redop op, pt_tensor *a, int dim, int keepdim) {
    if (values) *values = NULL;
    if (indices) *indices = NULL;
    const char *name = pt_redop_names[op];
    PT_TRY(pt_norm_dim(name, a->ndim, &dim));
    pt_red_plan p;
    PT_TRY(pt_red_plan_make(name, a, 1, &dim, keepdim, &p));
    if (p.n == 0) {
        char b[128];
        return PT_FAIL(PT_ERR_SHAPE, "%s: cannot reduce over dim %d of size 0 (shape %s)", name, dim,
                       pt_shape_str(a->ndim, a->shape, b, sizeof b));
    }
    pt_dtype kdt = a->dtype;
    if (pt_dtype_is_int(a->dtype)) kdt = PT_I64;
    else PT_TRY(pt_check_float(name, a));
    pt_tensor *ac = NULL, *vals = NULL, *idx = NULL;
    PT_TRY(pt_tensor_to(&ac, a, kdt, a->device, 0));
    int want_vals = values != NULL;
    int need_idx = indices != NULL || (want_vals && a->requires_grad && pt_grad_enabled());
    pt_status st = pt_red_compute(want_vals ? &vals : NULL, need_idx ? &idx : NULL, op, ac, &p, 0, 0, kdt);
    pt_tensor_release(ac);
    if (!st && vals && vals->dtype != a->dtype) { /* integer input: back to its dtype */
        pt_tensor *v2 = NULL;
        st = pt_tensor_to(&v2, vals, a->dtype, a->device, 0);
        pt_tensor_release(vals);
        vals = v2;
    }
    if (!st && vals && pt_dtype_is_float(kdt)) {
        pt_node *node;
        st = pt_autograd_record(vals, name, pt_maxmin_bwd, 1, &a, 1, &idx, &node);
        if (!st && node) node->i[0] = dim;
    }
    if (st) {
        pt_tensor_release(vals);
        pt_tensor_release(idx);
        return st;
    }
    if (values) *values = vals;
    if (indices) *indices = idx;
    else pt_tensor_release(idx);
    return PT_OK;
}

pt_status pt_max(pt_tensor **values, pt_tensor **indices, pt_tensor *a, int dim, int keepdim) {
    if (!values) return PT_FAIL(PT_ERR_VALUE, "max: values output is required (use pt_argmax for indices only)");
    return pt_maxmin(values, indices, PT_RED_MAX, a, dim, keepdim);
}

pt_status pt_min(pt_tensor **values, pt_tensor **indices, pt_tensor *a, int dim, int keepdim) {
    if (!values) return PT_FAIL(PT_ERR_VALUE, "min: values output is required");
    return pt_maxmin(values, indices, PT_RED_MIN, a, dim, keepdim);
}

pt_status pt_argmax(pt_tensor **out, pt_tensor *a, int dim, int keepdim) {
    return pt_maxmin(NULL, out, PT_RED_ARGMAX, a, dim, keepdim);
}

/* ---------------- norm ---------------- */
/* sign(x) * |x|^(p-1) / y^(p-1) * g, with 0 where y = 0; inf-norm: g * sign(x) spread evenly over
 * the entries with |x| = y */
static pt_status pt_norm_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin) {
    pt_tensor *x = node->inputs[0], *y = node->saved[0];
    double p = node->f[0];
    pt_tensor *T[10] = {0};
    pt_tensor *gk = NULL, *yk = NULL, *sgn = NULL;
    pt_status st = pt_red_grad_keep(&gk, g, node);
    if (!st) st = pt_red_grad_keep(&yk, y, node);
    if (!st) st = pt_unary(&sgn, PT_UN_SIGN, x);
    if (st) goto done;
    if (p == 0) {
        st = pt_tensor_zeros(&gin[0], x->dtype, x->device, x->ndim, x->shape);
    } else if (p == 1) {
        st = pt_mul(&gin[0], sgn, gk);
    } else if (isinf(p)) {
        int dims[PT_MAX_DIMS];
        int nd = pt_red_dims(node, dims);
        st = pt_unary(&T[0], PT_UN_ABS, x);                      /* |x| */
        if (!st) st = pt_binary(&T[1], PT_BIN_EQ, T[0], yk);     /* winners */
        if (!st) st = pt_cast(&T[2], T[1], x->dtype);
        if (!st) st = pt_sum(&T[3], T[2], nd, dims, 1);          /* number of winners */
        if (!st) st = pt_div(&T[4], gk, T[3]);
        if (!st) st = pt_mul(&T[5], T[2], sgn);
        if (!st) st = pt_mul(&gin[0], T[5], T[4]);
    } else {
        /* scale = g / y^(p-1) (0 where y = 0), times sign(x) |x|^(p-1) */
        pt_tensor *zero = NULL;
        st = pt_tensor_zeros(&zero, x->dtype, x->device, 0, NULL);
        if (!st) st = pt_pow_scalar(&T[0], yk, p - 1);
        if (!st) st = pt_div(&T[1], gk, T[0]);
        if (!st) st = pt_binary_scalar(&T[2], PT_BIN_EQ, yk, 0, 0);
        if (!st) st = pt_where(&T[3], T[2], zero, T[1]);
        if (!st && p == 2) {
            st = pt_mul(&gin[0], x, T[3]);
        } else if (!st) {
            st = pt_unary(&T[4], PT_UN_ABS, x);
            if (!st) st = pt_pow_scalar(&T[5], T[4], p - 1);
            if (!st) st = pt_mul(&T[6], T[5], sgn);
            if (!st) st = pt_mul(&gin[0], T[6], T[3]);
        }
        pt_tensor_release(zero);
    }
done:
    for (int i = 0; i < 10; i++) pt_tensor_release(T[i]);
    pt_tensor_release(gk);
    pt_tensor_release(yk);
    pt_tensor_release(sgn);
    return st;
}

pt_status pt_norm(pt_tensor **out, pt_tensor *a, double p, int ndims, const int *dims, int keepdim) {
    *out = NULL;
    PT_TRY(pt_check_float("norm", a));
    if (p != p || (p < 0 && p != -INFINITY))
        return PT_FAIL(PT_ERR_VALUE, "norm: order p = %g is not supported (use p >= 0, inf or -inf)", p);
    pt_red_plan pl;
    PT_TRY(pt_red_plan_make("norm", a, ndims, dims, keepdim, &pl));
    PT_TRY(pt_red_compute(out, NULL, PT_RED_NORM, a, &pl, p, 0, a->dtype));
    pt_tensor *y = NULL;
    pt_status st = pt_tensor_detach(&y, *out); /* a detached alias: no reference cycle */
    if (!st) {
        pt_node *node;
        st = pt_autograd_record(*out, "norm", pt_norm_bwd, 1, &a, 1, &y, &node);
        if (!st && node) {
            node->i[0] = pl.mask;
            node->f[0] = p;
        }
    }
    pt_tensor_release(y);
    return pt_fail_release(out, st);
}

/* ---------------- var, std ---------------- */
/* var: g * 2 (x - mean) / (N - c);  std: g * (x - mean) / ((N - c) * y) */
static pt_status pt_var_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin) {
    pt_tensor *x = node->inputs[0], *y = node->saved[0];
    int dims[PT_MAX_DIMS];
    int nd = pt_red_dims(node, dims);
    double div = (double)node->i[1] - node->f[0];
    int is_std = (int)node->i[2];
    pt_tensor *gk = NULL, *m = NULL, *d = NULL, *s = NULL, *yk = NULL, *q = NULL;
    pt_status st = pt_red_grad_keep(&gk, g, node);
    if (!st) st = pt_mean(&m, x, nd, dims, 1);
    if (!st) st = pt_sub(&d, x, m);
    if (!st) st = pt_mul_scalar(&s, gk, (is_std ? 1.0 : 2.0) / (div < 0 ? 0 : div));
    if (!st && is_std) {
        st = pt_red_grad_keep(&yk, y, node);
        if (!st) st = pt_div(&q, s, yk);
        if (!st) st = pt_mul(&gin[0], d, q);
    } else if (!st) {
        st = pt_mul(&gin[0], d, s);
    }
    pt_tensor_release(gk);
    pt_tensor_release(m);
    pt_tensor_release(d);
    pt_tensor_release(s);
    pt_tensor_release(yk);
    pt_tensor_release(q);
    return st;
}

static pt_status pt_var_std(pt_tensor **out, pt_redop op, pt_tensor *a, int ndims, const int *dims, int correction,
                            int keepdim) {
    *out = NULL;
    const char *name = pt_redop_names[op];
    PT_TRY(pt_check_float(name, a));
    if (correction < 0) return PT_FAIL(PT_ERR_VALUE, "%s: correction %d must be >= 0", name, correction);
    pt_red_plan pl;
    PT_TRY(pt_red_plan_make(name, a, ndims, dims, keepdim, &pl));
    PT_TRY(pt_red_compute(out, NULL, op, a, &pl, 0, correction, a->dtype));
    pt_tensor *y = NULL;
    pt_status st = pt_tensor_detach(&y, *out);
    if (!st) {
        pt_node *node;
        st = pt_autograd_record(*out, name, pt_var_bwd, 1, &a, 1, &y, &node);
        if (!st && node) {
            node->i[0] = pl.mask;
            node->i[1] = pl.n;
            node->i[2] = op == PT_RED_STD;
            node->f[0] = correction;
        }
    }
    pt_tensor_release(y);
    return pt_fail_release(out, st);
}

pt_status pt_var(pt_tensor **out, pt_tensor *a, int ndims, const int *dims, int correction, int keepdim) {
    return pt_var_std(out, PT_RED_VAR, a, ndims, dims, correction, keepdim);
}

pt_status pt_std(pt_tensor **out, pt_tensor *a, int ndims, const int *dims, int correction, int keepdim) {
    return pt_var_std(out, PT_RED_STD, a, ndims, dims, correction, keepdim);
}

/* ---------------- softmax, log_softmax ---------------- */
static void pt_softmax_geom(const pt_tensor *a, int dim, int64_t *o, int64_t *n, int64_t *i) {
    *o = *n = *i = 1;
    for (int d = 0; d < a->ndim; d++) {
        if (d < dim) *o *= a->shape[d];
        else if (d == dim) *n = a->shape[d];
        else *i *= a->shape[d];
    }
}

static pt_status pt_softmax_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin) {
    pt_tensor *y = node->saved[0], *gc = NULL;
    pt_reduce_kernel k;
    PT_TRY(pt_red_kernel(&k, "softmax_bwd", g->device, g->dtype));
    pt_status st = pt_tensor_contiguous_raw(&gc, g);
    if (!st) st = pt_tensor_empty(&gin[0], g->dtype, g->device, g->ndim, g->shape);
    if (!st && pt_tensor_numel(g)) {
        pt_reduce_args args;
        memset(&args, 0, sizeof args);
        args.op = (int)node->i[1];
        pt_softmax_geom(y, (int)node->i[0], &args.outer, &args.n, &args.inner);
        args.y = pt_tensor_data(y);
        args.g = pt_tensor_data(gc);
        args.out = pt_tensor_data(gin[0]);
        k(&args);
    }
    pt_tensor_release(gc);
    return st;
}

static pt_status pt_softmax_op(pt_tensor **out, pt_tensor *a, int dim, int lg) {
    *out = NULL;
    const char *name = lg ? "log_softmax" : "softmax";
    PT_TRY(pt_norm_dim(name, a->ndim, &dim));
    PT_TRY(pt_check_float(name, a));
    pt_reduce_kernel k;
    PT_TRY(pt_red_kernel(&k, "softmax", a->device, a->dtype));
    pt_tensor *x = NULL, *y = NULL;
    PT_TRY(pt_tensor_contiguous_raw(&x, a));
    pt_status st = pt_tensor_empty(out, a->dtype, a->device, a->ndim, a->shape);
    if (!st && pt_tensor_numel(a)) {
        pt_reduce_args args;
        memset(&args, 0, sizeof args);
        args.op = lg;
        pt_softmax_geom(a, a->ndim ? dim : 0, &args.outer, &args.n, &args.inner);
        args.x = pt_tensor_data(x);
        args.out = pt_tensor_data(*out);
        k(&args);
    }
    pt_tensor_release(x);
    if (!st) st = pt_tensor_detach(&y, *out);
    if (!st) {
        pt_node *node;
        st = pt_autograd_record(*out, name, pt_softmax_bwd, 1, &a, 1, &y, &node);
        if (!st && node) {
            node->i[0] = a->ndim ? dim : 0;
            node->i[1] = lg;
        }
    }
    pt_tensor_release(y);
    return pt_fail_release(out, st);
}

pt_status pt_softmax(pt_tensor **out, pt_tensor *a, int dim) { return pt_softmax_op(out, a, dim, 0); }
pt_status pt_log_softmax(pt_tensor **out, pt_tensor *a, int dim) { return pt_softmax_op(out, a, dim, 1); }
