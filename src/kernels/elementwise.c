/* elementwise.c — op fronts of the elementwise family: broadcasting, dtype promotion, dispatch to
 * the (op, device, dtype) kernels of pt_elementwise.h, and the autograd backward of each op.
 *
 * Promotion: f64 > f32 > i64 > i32; other integer dtypes compute as i64, bf16/f16 compute only where
 * a kernel exists for them (CUDA), on the CPU cast to f32 first. Comparisons return bool.
 * Tests: tests/lua/test_tensor.lua (exact values), tests/lua/test_gradcheck.lua (all backwards).
 */
#include <math.h>
#include <string.h>

#include "pt_dispatch.h"
#include "pt_elementwise.h"
#include "pt_ops.h"

static const char *pt_binop_names[PT_NBINOPS] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum",
                                                 "eq",  "ne",  "lt",  "le",  "gt",  "ge"};
static const char *pt_unop_names[PT_NUNOPS] = {"neg",  "exp", "log",   "tanh",  "sigmoid",
                                               "relu", "sqrt", "rsqrt", "abs", "sign",
                                               "round", "sin", "cos",  "square", "reciprocal"};
const char *pt_binop_name(pt_binop op) { return (unsigned)op < PT_NBINOPS ? pt_binop_names[op] : "?"; }
const char *pt_unop_name(pt_unop op) { return (unsigned)op < PT_NUNOPS ? pt_unop_names[op] : "?"; }

static int pt_is_cmp(pt_binop op) { return op >= PT_BIN_EQ; }

static int pt_rank(pt_dtype d) {
    switch (d) {
    case PT_F64: return 6;
    case PT_F32: return 5;
    case PT_BF16: return 4;
    case PT_F16: return 4;
    case PT_I64: return 3;
    case PT_I32: return 2;
    default: return 1;
    }
}

static pt_dtype pt_compute_dtype(pt_dtype a, pt_dtype b) {
    pt_dtype r = pt_rank(a) >= pt_rank(b) ? a : b;
    if (pt_rank(a) == 4 && pt_rank(b) == 4 && a != b) return PT_F32; /* bf16 with f16 */
    if (pt_rank(r) == 1) return PT_I64;
    return r;
}

pt_status pt_broadcast_shape(const char *op, int an, const int64_t *as, int bn, const int64_t *bs, int *on,
                             int64_t *os) {
    int n = an > bn ? an : bn;
    for (int i = 0; i < n; i++) {
        int64_t x = i < n - an ? 1 : as[i - (n - an)];
        int64_t y = i < n - bn ? 1 : bs[i - (n - bn)];
        if (x != y && x != 1 && y != 1) {
            char sa[128], sb[128];
            return PT_FAIL(PT_ERR_SHAPE, "%s: shapes %s and %s cannot be broadcast together (dim %d: %lld vs %lld)",
                           op, pt_shape_str(an, as, sa, sizeof sa), pt_shape_str(bn, bs, sb, sizeof sb), i,
                           (long long)x, (long long)y);
        }
        os[i] = x == 1 ? y : x;
    }
    *on = n;
    return PT_OK;
}

/* strides of t broadcast to shape (ndim n >= t->ndim) */
static void pt_bstrides(const pt_tensor *t, int n, const int64_t *shape, int64_t *st) {
    for (int i = 0; i < n; i++) {
        int j = i - (n - t->ndim);
        st[i] = (j < 0 || t->shape[j] == 1) ? 0 : t->stride[j];
        (void)shape;
    }
}

/* Merges adjacent dims that are contiguous for all operands; guarantees ndim >= 1. */
static void pt_collapse(pt_ew_args *g, int nops) {
    int64_t *S[3] = {g->sa, g->sb, g->sc};
    if (g->ndim == 0) {
        g->ndim = 1;
        g->shape[0] = 1;
        g->sa[0] = g->sb[0] = g->sc[0] = 0;
        return;
    }
    int w = 0;
    for (int d = 1; d < g->ndim; d++) {
        int ok = 1;
        for (int k = 0; k < nops; k++)
            if (S[k][w] != S[k][d] * g->shape[d]) ok = 0;
        if (ok) {
            g->shape[w] *= g->shape[d];
            for (int k = 0; k < nops; k++) S[k][w] = S[k][d];
        } else {
            w++;
            g->shape[w] = g->shape[d];
            for (int k = 0; k < nops; k++) S[k][w] = S[k][d];
        }
    }
    g->ndim = w + 1;
}

static pt_status pt_as_dtype(pt_tensor **out, pt_tensor *t, pt_dtype dt) {
    return pt_tensor_to(out, t, dt, t->device, 0);
}

/* Runs kernel `name` for out = f(a[, b]) with broadcasting; a/b already in the compute dtype. */
static pt_status pt_ew_run(const char *name, int op, pt_tensor *out, pt_tensor *a, pt_tensor *b, pt_tensor *c,
                           double s, double s2, int scalar_first, pt_dtype kdt) {
    pt_ew_kernel k = (pt_ew_kernel)pt_kernel_find(name, out->device.type, kdt);
    if (!k) return pt_kernel_missing(name, out->device.type, kdt);
    pt_ew_args g;
    memset(&g, 0, sizeof g);
    g.op = op;
    g.ndim = out->ndim;
    memcpy(g.shape, out->shape, sizeof(int64_t) * (size_t)out->ndim);
    g.n = pt_tensor_numel(out);
    if (g.n == 0) return PT_OK;
    g.out = pt_tensor_data(out);
    int nops = 0;
    if (a) { pt_bstrides(a, g.ndim, g.shape, g.sa); g.a = pt_tensor_data(a); nops = 1; }
    if (b) { pt_bstrides(b, g.ndim, g.shape, g.sb); g.b = pt_tensor_data(b); nops = 2; }
    if (c) { pt_bstrides(c, g.ndim, g.shape, g.sc); g.c = pt_tensor_data(c); nops = 3; }
    g.s = s;
    g.s2 = s2;
    g.scalar_first = scalar_first;
    /* the output is contiguous: include it in the collapse test through a virtual operand */
    int64_t so[PT_MAX_DIMS];
    int64_t acc = 1;
    for (int d = g.ndim - 1; d >= 0; d--) { so[d] = acc; acc *= g.shape[d]; }
    {
        /* collapse with the output's strides as an extra constraint */
        pt_ew_args h = g;
        int64_t *S[4] = {h.sa, h.sb, h.sc, so};
        if (h.ndim == 0) {
            pt_collapse(&g, nops);
        } else {
            int w = 0;
            for (int d = 1; d < h.ndim; d++) {
                int ok = 1;
                for (int kk = 0; kk < 4; kk++)
                    if ((kk < nops || kk == 3) && S[kk][w] != S[kk][d] * h.shape[d]) ok = 0;
                if (ok) {
                    h.shape[w] *= h.shape[d];
                    for (int kk = 0; kk < 4; kk++) S[kk][w] = S[kk][d];
                } else {
                    w++;
                    h.shape[w] = h.shape[d];
                    for (int kk = 0; kk < 4; kk++) S[kk][w] = S[kk][d];
                }
            }
            h.ndim = w + 1;
            g = h;
        }
    }
    k(&g);
    return PT_OK;
}

/* ---------------- binary ---------------- */
static pt_status pt_binary_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin);

pt_status pt_binary(pt_tensor **out, pt_binop op, pt_tensor *a, pt_tensor *b) {
    *out = NULL;
    const char *name = pt_binop_name(op);
    PT_TRY(pt_check_same_device(name, a, b));
    int on;
    int64_t os[PT_MAX_DIMS];
    PT_TRY(pt_broadcast_shape(name, a->ndim, a->shape, b->ndim, b->shape, &on, os));
    pt_dtype cd = pt_compute_dtype(a->dtype, b->dtype);
    pt_tensor *ac = NULL, *bc = NULL;
    pt_status st = pt_as_dtype(&ac, a, cd);
    if (!st) st = pt_as_dtype(&bc, b, cd);
    if (!st && op == PT_BIN_DIV && pt_dtype_is_int(cd)) {
        /* integer division by zero is an error, not UB */
        int64_t n = pt_tensor_numel(bc);
        for (int64_t i = 0; i < n && !st && bc->device.type == PT_DEV_CPU; i++) {
            double v;
            pt_tensor_get_flat(bc, i, &v);
            if (v == 0) st = PT_FAIL(PT_ERR_VALUE, "div: integer division by zero");
        }
    }
    if (!st) st = pt_tensor_empty(out, pt_is_cmp(op) ? PT_BOOL : cd, a->device, on, os);
    if (!st) st = pt_ew_run("ew_binary", op, *out, ac, bc, NULL, 0, 0, 0, cd);
    if (!st && !pt_is_cmp(op) && pt_dtype_is_float(cd)) {
        pt_tensor *in[2] = {a, b};
        pt_tensor *sv[3] = {ac, bc, *out};
        pt_node *node;
        /* save the output only where the backward needs it (pow), to not keep a cycle */
        st = pt_autograd_record(*out, name, pt_binary_bwd, 2, in, op == PT_BIN_POW ? 2 : 2, sv, &node);
        if (!st && node) node->i[0] = op;
    }
    pt_tensor_release(ac);
    pt_tensor_release(bc);
    if (st) {
        pt_tensor_release(*out);
        *out = NULL;
    }
    return st;
}

/* Casts a gradient to the dtype of the input it belongs to and sums broadcast dims. */
static pt_status pt_grad_for(pt_tensor **out, pt_tensor *g, pt_tensor *input) {
    pt_tensor *r = NULL;
    PT_TRY(pt_sum_to_shape(&r, g, input->ndim, input->shape));
    if (r->dtype != input->dtype) {
        pt_status st = pt_tensor_to(out, r, input->dtype, input->device, 0);
        pt_tensor_release(r);
        return st;
    }
    *out = r;
    return PT_OK;
}

static pt_status pt_binary_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin) {
    pt_binop op = (pt_binop)node->i[0];
    pt_tensor *a = node->saved[0], *b = node->saved[1];
    pt_tensor *A = node->inputs[0], *B = node->inputs[1];
    pt_tensor *t1 = NULL, *t2 = NULL, *t3 = NULL;
    pt_status st = PT_OK;
    int na = pt_node_needs_grad(node, 0), nb = pt_node_needs_grad(node, 1);
    switch (op) {
    case PT_BIN_ADD:
    case PT_BIN_SUB:
        if (na) st = pt_grad_for(&gin[0], g, A);
        if (!st && nb) {
            if (op == PT_BIN_SUB) {
                st = pt_neg(&t1, g);
                if (!st) st = pt_grad_for(&gin[1], t1, B);
            } else {
                st = pt_grad_for(&gin[1], g, B);
            }
        }
        break;
    case PT_BIN_MUL:
        if (na) {
            st = pt_mul(&t1, g, b);
            if (!st) st = pt_grad_for(&gin[0], t1, A);
        }
        if (!st && nb) {
            st = pt_mul(&t2, g, a);
            if (!st) st = pt_grad_for(&gin[1], t2, B);
        }
        break;
    case PT_BIN_DIV:
        if (na) {
            st = pt_div(&t1, g, b);
            if (!st) st = pt_grad_for(&gin[0], t1, A);
        }
        if (!st && nb) { /* -g * a / b^2 */
            st = pt_mul(&t2, g, a);
            if (!st) st = pt_unary(&t3, PT_UN_SQUARE, b);
            pt_tensor *t4 = NULL, *t5 = NULL;
            if (!st) st = pt_div(&t4, t2, t3);
            if (!st) st = pt_neg(&t5, t4);
            if (!st) st = pt_grad_for(&gin[1], t5, B);
            pt_tensor_release(t4);
            pt_tensor_release(t5);
        }
        break;
    case PT_BIN_POW: {
        /* d/da = b * a^(b-1); d/db = a^b * log(a) */
        pt_tensor *y = NULL;
        st = pt_binary(&y, PT_BIN_POW, a, b);
        if (!st && na) {
            pt_tensor *bm1 = NULL, *p = NULL, *q = NULL;
            st = pt_add_scalar(&bm1, b, -1.0);
            if (!st) st = pt_binary(&p, PT_BIN_POW, a, bm1);
            if (!st) st = pt_mul(&q, p, b);
            if (!st) st = pt_mul(&t1, q, g);
            if (!st) st = pt_grad_for(&gin[0], t1, A);
            pt_tensor_release(bm1);
            pt_tensor_release(p);
            pt_tensor_release(q);
        }
        if (!st && nb) {
            pt_tensor *la = NULL, *p = NULL;
            st = pt_unary(&la, PT_UN_LOG, a);
            if (!st) st = pt_mul(&p, y, la);
            if (!st) st = pt_mul(&t2, p, g);
            if (!st) st = pt_grad_for(&gin[1], t2, B);
            pt_tensor_release(la);
            pt_tensor_release(p);
        }
        pt_tensor_release(y);
        break;
    }
    case PT_BIN_MAX:
    case PT_BIN_MIN: {
        /* gradient to a where a wins (ties go to a), else to b */
        pt_tensor *mask = NULL, *zero = NULL;
        st = pt_binary(&mask, op == PT_BIN_MAX ? PT_BIN_GE : PT_BIN_LE, a, b);
        if (!st) st = pt_tensor_zeros(&zero, g->dtype, g->device, 0, NULL);
        if (!st && na) {
            st = pt_where(&t1, mask, g, zero);
            if (!st) st = pt_grad_for(&gin[0], t1, A);
        }
        if (!st && nb) {
            st = pt_where(&t2, mask, zero, g);
            if (!st) st = pt_grad_for(&gin[1], t2, B);
        }
        pt_tensor_release(mask);
        pt_tensor_release(zero);
        break;
    }
    default:
        st = PT_FAIL(PT_ERR_VALUE, "%s is not differentiable", pt_binop_name(op));
    }
    pt_tensor_release(t1);
    pt_tensor_release(t2);
    pt_tensor_release(t3);
    return st;
}

pt_status pt_add(pt_tensor **out, pt_tensor *a, pt_tensor *b) { return pt_binary(out, PT_BIN_ADD, a, b); }
pt_status pt_sub(pt_tensor **out, pt_tensor *a, pt_tensor *b) { return pt_binary(out, PT_BIN_SUB, a, b); }
pt_status pt_mul(pt_tensor **out, pt_tensor *a, pt_tensor *b) { return pt_binary(out, PT_BIN_MUL, a, b); }
pt_status pt_div(pt_tensor **out, pt_tensor *a, pt_tensor *b) { return pt_binary(out, PT_BIN_DIV, a, b); }

/* ---------------- binary with scalar ---------------- */
static pt_status pt_binary_scalar_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin);

pt_status pt_binary_scalar(pt_tensor **out, pt_binop op, pt_tensor *a, double s, int scalar_first) {
    *out = NULL;
    pt_dtype cd = a->dtype;
    if (pt_rank(cd) == 1) cd = PT_I64;
    if (pt_dtype_is_int(cd) && (s != floor(s) || (op == PT_BIN_DIV && !pt_is_cmp(op))))
        cd = PT_F32; /* int tensor with a fractional scalar, or true division */
    if (pt_dtype_is_int(cd) && op == PT_BIN_POW && !scalar_first && s < 0) cd = PT_F32;
    pt_tensor *ac = NULL;
    PT_TRY(pt_as_dtype(&ac, a, cd));
    pt_status st = pt_tensor_empty(out, pt_is_cmp(op) ? PT_BOOL : cd, a->device, a->ndim, a->shape);
    if (!st) st = pt_ew_run("ew_binary_s", op, *out, ac, NULL, NULL, s, 0, scalar_first, cd);
    if (!st && !pt_is_cmp(op) && pt_dtype_is_float(cd)) {
        pt_node *node;
        pt_tensor *sv[1] = {ac};
        st = pt_autograd_record(*out, pt_binop_name(op), pt_binary_scalar_bwd, 1, &a, 1, sv, &node);
        if (!st && node) {
            node->i[0] = op;
            node->i[1] = scalar_first;
            node->f[0] = s;
        }
    }
    pt_tensor_release(ac);
    if (st) {
        pt_tensor_release(*out);
        *out = NULL;
    }
    return st;
}

static pt_status pt_binary_scalar_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin) {
    pt_binop op = (pt_binop)node->i[0];
    int sf = (int)node->i[1];
    double s = node->f[0];
    pt_tensor *a = node->saved[0], *t1 = NULL, *t2 = NULL, *r = NULL;
    pt_status st = PT_OK;
    switch (op) {
    case PT_BIN_ADD: st = pt_tensor_to(&r, g, g->dtype, g->device, 0); break;
    case PT_BIN_SUB: st = sf ? pt_neg(&r, g) : pt_tensor_to(&r, g, g->dtype, g->device, 0); break;
    case PT_BIN_MUL: st = pt_mul_scalar(&r, g, s); break;
    case PT_BIN_DIV:
        if (!sf) {
            st = pt_mul_scalar(&r, g, 1.0 / s);
        } else { /* d(s/a) = -s/a^2 */
            st = pt_unary(&t1, PT_UN_SQUARE, a);
            if (!st) st = pt_binary_scalar(&t2, PT_BIN_DIV, t1, -s, 1);
            if (!st) st = pt_mul(&r, t2, g);
        }
        break;
    case PT_BIN_POW:
        if (!sf) { /* s * a^(s-1) */
            st = pt_binary_scalar(&t1, PT_BIN_POW, a, s - 1.0, 0);
            if (!st) st = pt_mul_scalar(&t2, t1, s);
            if (!st) st = pt_mul(&r, t2, g);
        } else { /* s^a * ln s */
            st = pt_binary_scalar(&t1, PT_BIN_POW, a, s, 1);
            if (!st) st = pt_mul_scalar(&t2, t1, log(s));
            if (!st) st = pt_mul(&r, t2, g);
        }
        break;
    case PT_BIN_MAX:
    case PT_BIN_MIN: {
        pt_tensor *zero = NULL;
        st = pt_binary_scalar(&t1, op == PT_BIN_MAX ? PT_BIN_GE : PT_BIN_LE, a, s, 0);
        if (!st) st = pt_tensor_zeros(&zero, g->dtype, g->device, 0, NULL);
        if (!st) st = pt_where(&r, t1, g, zero);
        pt_tensor_release(zero);
        break;
    }
    default: st = PT_FAIL(PT_ERR_VALUE, "%s is not differentiable", pt_binop_name(op));
    }
    pt_tensor_release(t1);
    pt_tensor_release(t2);
    if (!st && r->dtype != node->inputs[0]->dtype) {
        st = pt_tensor_to(&gin[0], r, node->inputs[0]->dtype, r->device, 0);
        pt_tensor_release(r);
    } else if (!st) {
        gin[0] = r;
    } else {
        pt_tensor_release(r);
    }
    return st;
}

pt_status pt_add_scalar(pt_tensor **out, pt_tensor *a, double s) { return pt_binary_scalar(out, PT_BIN_ADD, a, s, 0); }
pt_status pt_mul_scalar(pt_tensor **out, pt_tensor *a, double s) { return pt_binary_scalar(out, PT_BIN_MUL, a, s, 0); }
pt_status pt_pow_scalar(pt_tensor **out, pt_tensor *a, double p) { return pt_binary_scalar(out, PT_BIN_POW, a, p, 0); }

/* ---------------- unary ---------------- */
static pt_status pt_unary_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin);

static int pt_unop_float_only(pt_unop op) {
    return !(op == PT_UN_NEG || op == PT_UN_ABS || op == PT_UN_SIGN || op == PT_UN_SQUARE);
}

pt_status pt_unary(pt_tensor **out, pt_unop op, pt_tensor *a) {
    *out = NULL;
    pt_dtype cd = a->dtype;
    if (pt_rank(cd) == 1) cd = PT_I64;
    if (pt_dtype_is_int(cd) && pt_unop_float_only(op)) cd = PT_F32;
    pt_tensor *ac = NULL;
    PT_TRY(pt_as_dtype(&ac, a, cd));
    pt_status st = pt_tensor_empty(out, cd, a->device, a->ndim, a->shape);
    if (!st) st = pt_ew_run("ew_unary", op, *out, ac, NULL, NULL, 0, 0, 0, cd);
    if (!st && pt_dtype_is_float(cd)) {
        pt_node *node;
        /* x is needed by most backwards, y by exp/tanh/sigmoid/sqrt/rsqrt/reciprocal */
        int need_y = op == PT_UN_EXP || op == PT_UN_TANH || op == PT_UN_SIGMOID || op == PT_UN_SQRT ||
                     op == PT_UN_RSQRT || op == PT_UN_RECIPROCAL;
        pt_tensor *y = NULL;
        if (need_y) st = pt_tensor_detach(&y, *out); /* a detached alias: no reference cycle */
        pt_tensor *sv[2] = {ac, y};
        if (!st) st = pt_autograd_record(*out, pt_unop_name(op), pt_unary_bwd, 1, &a, 2, sv, &node);
        if (!st && node) node->i[0] = op;
        pt_tensor_release(y);
    }
    pt_tensor_release(ac);
    if (st) {
        pt_tensor_release(*out);
        *out = NULL;
    }
    return st;
}

/* runs a "*_bwd" kernel: out = g * f'(x, y), everything contiguous in g's dtype */
static pt_status pt_ew_bwd(const char *kname, int op, pt_tensor **out, pt_tensor *x, pt_tensor *y,
                           pt_tensor *g, double s, double s2) {
    pt_tensor *xc = NULL, *yc = NULL, *gc = NULL;
    pt_status st = PT_OK;
    if (x) st = pt_tensor_contiguous_raw(&xc, x);
    if (!st && y) st = pt_tensor_contiguous_raw(&yc, y);
    if (!st) st = pt_tensor_contiguous_raw(&gc, g);
    if (!st) st = pt_tensor_empty(out, g->dtype, g->device, g->ndim, g->shape);
    if (!st) {
        pt_ew_kernel k = (pt_ew_kernel)pt_kernel_find(kname, g->device.type, g->dtype);
        if (!k) {
            st = pt_kernel_missing(kname, g->device.type, g->dtype);
        } else {
            pt_ew_args args;
            memset(&args, 0, sizeof args);
            args.op = op;
            args.n = pt_tensor_numel(g);
            args.ndim = 1;
            args.shape[0] = args.n;
            args.out = pt_tensor_data(*out);
            args.a = xc ? pt_tensor_data(xc) : NULL;
            args.b = yc ? pt_tensor_data(yc) : NULL;
            args.c = pt_tensor_data(gc);
            args.s = s;
            args.s2 = s2;
            if (args.n) k(&args);
        }
    }
    pt_tensor_release(xc);
    pt_tensor_release(yc);
    pt_tensor_release(gc);
    if (st) {
        pt_tensor_release(*out);
        *out = NULL;
    }
    return st;
}

static pt_status pt_unary_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin) {
    return pt_ew_bwd("ew_unary_bwd", (int)node->i[0], &gin[0], node->saved[0], node->saved[1], g, 0, 0);
}

pt_status pt_neg(pt_tensor **out, pt_tensor *a) { return pt_unary(out, PT_UN_NEG, a); }

/* ---------------- leaky relu, clamp ---------------- */
static pt_status pt_param_unary(pt_tensor **out, const char *kname, const char *bname, pt_backward_fn bwd,
                                pt_tensor *a, double s, double s2) {
    *out = NULL;
    PT_TRY(pt_check_float(kname, a));
    PT_TRY(pt_tensor_empty(out, a->dtype, a->device, a->ndim, a->shape));
    pt_status st = pt_ew_run(kname, 0, *out, a, NULL, NULL, s, s2, 0, a->dtype);
    if (!st) {
        pt_node *node;
        st = pt_autograd_record(*out, bname, bwd, 1, &a, 1, &a, &node);
        if (!st && node) {
            node->f[0] = s;
            node->f[1] = s2;
        }
    }
    if (st) {
        pt_tensor_release(*out);
        *out = NULL;
    }
    return st;
}

static pt_status pt_leaky_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin) {
    return pt_ew_bwd("ew_leaky_bwd", 0, &gin[0], node->saved[0], NULL, g, node->f[0], 0);
}
static pt_status pt_clamp_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin) {
    return pt_ew_bwd("ew_clamp_bwd", 0, &gin[0], node->saved[0], NULL, g, node->f[0], node->f[1]);
}

pt_status pt_leaky_relu(pt_tensor **out, pt_tensor *a, double slope) {
    return pt_param_unary(out, "ew_leaky", "leaky_relu", pt_leaky_bwd, a, slope, 0);
}

pt_status pt_clamp(pt_tensor **out, pt_tensor *a, double lo, double hi) {
    if (lo > hi) return PT_FAIL(PT_ERR_VALUE, "clamp: min %g is larger than max %g", lo, hi);
    return pt_param_unary(out, "ew_clamp", "clamp", pt_clamp_bwd, a, lo, hi);
}

/* ---------------- where ---------------- */
static pt_status pt_where_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin) {
    pt_tensor *cond = node->saved[0], *zero = NULL, *t = NULL;
    pt_status st = pt_tensor_zeros(&zero, g->dtype, g->device, 0, NULL);
    for (int k = 1; k <= 2 && !st; k++) {
        if (!pt_node_needs_grad(node, k)) continue;
        st = k == 1 ? pt_where(&t, cond, g, zero) : pt_where(&t, cond, zero, g);
        if (!st) st = pt_grad_for(&gin[k], t, node->inputs[k]);
        pt_tensor_release(t);
        t = NULL;
    }
    pt_tensor_release(zero);
    return st;
}

pt_status pt_where(pt_tensor **out, pt_tensor *cond, pt_tensor *a, pt_tensor *b) {
    *out = NULL;
    PT_TRY(pt_check_same_device("where", a, b));
    PT_TRY(pt_check_same_device("where", cond, a));
    int n1, on;
    int64_t s1[PT_MAX_DIMS], os[PT_MAX_DIMS];
    PT_TRY(pt_broadcast_shape("where", a->ndim, a->shape, b->ndim, b->shape, &n1, s1));
    PT_TRY(pt_broadcast_shape("where", cond->ndim, cond->shape, n1, s1, &on, os));
    pt_dtype cd = pt_compute_dtype(a->dtype, b->dtype);
    pt_tensor *ac = NULL, *bc = NULL, *cc = NULL;
    pt_status st = pt_as_dtype(&ac, a, cd);
    if (!st) st = pt_as_dtype(&bc, b, cd);
    if (!st) st = pt_tensor_to(&cc, cond, PT_BOOL, cond->device, 0);
    if (!st) st = pt_tensor_empty(out, cd, a->device, on, os);
    if (!st) st = pt_ew_run("ew_where", 0, *out, ac, bc, cc, 0, 0, 0, cd);
    if (!st && pt_dtype_is_float(cd)) {
        pt_tensor *in[3] = {NULL, a, b};
        st = pt_autograd_record(*out, "where", pt_where_bwd, 3, in, 1, &cc, NULL);
    }
    pt_tensor_release(ac);
    pt_tensor_release(bc);
    pt_tensor_release(cc);
    if (st) {
        pt_tensor_release(*out);
        *out = NULL;
    }
    return st;
}

/* ---------------- cast ---------------- */
static pt_status pt_cast_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin) {
    return pt_tensor_to(&gin[0], g, node->inputs[0]->dtype, node->inputs[0]->device, 1);
}

pt_status pt_cast(pt_tensor **out, pt_tensor *a, pt_dtype dt) {
    PT_TRY(pt_tensor_to(out, a, dt, a->device, 1));
    if (pt_dtype_is_float(dt) && pt_dtype_is_float(a->dtype)) {
        pt_status st = pt_autograd_record(*out, "cast", pt_cast_bwd, 1, &a, 0, NULL, NULL);
        if (st) {
            pt_tensor_release(*out);
            *out = NULL;
        }
        return st;
    }
    return PT_OK;
}

/* ---------------- in place ---------------- */
pt_status pt_add_(pt_tensor *a, pt_tensor *b, double alpha) {
    PT_TRY(pt_check_same_device("add_", a, b));
    if (!pt_tensor_is_contiguous(a))
        return PT_FAIL(PT_ERR_VALUE, "add_: the destination must be contiguous");
    int on;
    int64_t os[PT_MAX_DIMS];
    PT_TRY(pt_broadcast_shape("add_", a->ndim, a->shape, b->ndim, b->shape, &on, os));
    if (on != a->ndim || memcmp(os, a->shape, sizeof(int64_t) * (size_t)on)) {
        char x[128], y[128];
        return PT_FAIL(PT_ERR_SHAPE, "add_: cannot add shape %s into shape %s in place",
                       pt_shape_str(b->ndim, b->shape, y, sizeof y), pt_shape_str(a->ndim, a->shape, x, sizeof x));
    }
    pt_tensor *bc = NULL;
    PT_TRY(pt_as_dtype(&bc, b, a->dtype));
    pt_status st = pt_ew_run("ew_axpy", 0, a, NULL, bc, NULL, alpha, 0, 0, a->dtype);
    pt_tensor_release(bc);
    return st;
}

pt_status pt_mul_scalar_(pt_tensor *a, double s) {
    if (!pt_tensor_is_contiguous(a))
        return PT_FAIL(PT_ERR_VALUE, "mul_: the destination must be contiguous");
    return pt_ew_run("ew_binary_s", PT_BIN_MUL, a, a, NULL, NULL, s, 0, 0, a->dtype);
}

/* ---------------- sum to shape (reverse of broadcasting) ---------------- */
pt_status pt_sum_to_shape(pt_tensor **out, pt_tensor *g, int ndim, const int64_t *shape) {
    *out = NULL;
    if (g->ndim == ndim && !memcmp(g->shape, shape, sizeof(int64_t) * (size_t)ndim)) {
        pt_tensor_retain(g);
        *out = g;
        return PT_OK;
    }
    if (ndim > g->ndim) {
        char a[128], b[128];
        return PT_FAIL(PT_ERR_SHAPE, "sum_to_shape: cannot reduce %s to %s", pt_shape_str(g->ndim, g->shape, a, sizeof a),
                       pt_shape_str(ndim, shape, b, sizeof b));
    }
    pt_ew_kernel k = (pt_ew_kernel)pt_kernel_find("ew_sum_to", g->device.type, g->dtype);
    if (!k) return pt_kernel_missing("ew_sum_to", g->device.type, g->dtype);
    pt_tensor *gc = NULL;
    PT_TRY(pt_tensor_contiguous_raw(&gc, g));
    pt_status st = pt_tensor_zeros(out, g->dtype, g->device, ndim, shape);
    if (!st) {
        pt_ew_args args;
        memset(&args, 0, sizeof args);
        args.andim = g->ndim;
        memcpy(args.ashape, g->shape, sizeof(int64_t) * (size_t)g->ndim);
        int lead = g->ndim - ndim;
        for (int i = 0; i < g->ndim; i++) {
            int j = i - lead;
            args.sa[i] = (j < 0 || shape[j] == 1) ? 0 : (*out)->stride[j];
            if (j >= 0 && shape[j] != 1 && shape[j] != g->shape[i]) {
                char a[128], b[128];
                st = PT_FAIL(PT_ERR_SHAPE, "sum_to_shape: cannot reduce %s to %s",
                             pt_shape_str(g->ndim, g->shape, a, sizeof a), pt_shape_str(ndim, shape, b, sizeof b));
            }
        }
        args.a = pt_tensor_data(gc);
        args.out = pt_tensor_data(*out);
        if (!st && pt_tensor_numel(gc)) k(&args);
    }
    pt_tensor_release(gc);
    if (st) {
        pt_tensor_release(*out);
        *out = NULL;
    }
    return st;
}
