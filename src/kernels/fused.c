/* fused.c — op fronts of the fused family (pt_fused.h): argument checks with messages that name the op,
 * the argument and the shapes; contiguous inputs; dispatch to the (op, device, dtype) kernels of
 * pt_dispatch.h; one autograd node per op whose backward calls the op's backward kernel.
 *
 * Saved tensors: inputs made contiguous (shared with the caller when they already are), plus the small
 * statistics a backward needs (rms: 1/rms per row; attention: log-sum-exp per row and a detached view
 * of the output; cross-entropy: log-sum-exp per row; lora: h = x Aᵀ). Outputs are saved as detached
 * views so that a node never holds its own output (no reference cycle).
 * Backward functions are not themselves differentiable (no double backward through fused ops).
 * Tests: tests/c/test_fused.c, tests/lua/test_functional.lua, tests/reference/fused_ops_ref.py.
 */
#include <math.h>
#include <stdio.h> /* snprintf */
#include <stdint.h>
#include <string.h>

#include "pt_dispatch.h"
#include "pt_fused.h"
#include "pt_index.h" /* pt_index_check_range: the targets' range check */
#include "pt_ops.h"

/* ---------------- helpers ---------------- */
static const char *pt_fz_shape(const pt_tensor *t, char *buf, size_t n) {
    return pt_shape_str(t->ndim, t->shape, buf, n);
}

/* t must be f32/f64; with ref, the same dtype and device as ref (named ref_arg). */
static pt_status pt_fz_float(const char *op, const char *arg, const pt_tensor *t, const pt_tensor *ref,
                             const char *ref_arg) {
    if (t->dtype != PT_F32 && t->dtype != PT_F64)
        return PT_FAIL(PT_ERR_DTYPE, "%s: %s has dtype %s; expected f32 or f64 (cast it first)", op, arg,
                       pt_dtype_name(t->dtype));
    if (ref) {
        if (t->dtype != ref->dtype)
            return PT_FAIL(PT_ERR_DTYPE, "%s: %s has dtype %s but %s has %s; cast them to one dtype", op, arg,
                           pt_dtype_name(t->dtype), ref_arg, pt_dtype_name(ref->dtype));
        if (!pt_device_eq(t->device, ref->device)) {
            char a[32], b[32];
            return PT_FAIL(PT_ERR_VALUE, "%s: %s is on %s but %s is on %s", op, arg,
                           pt_device_str(t->device, a, sizeof a), ref_arg, pt_device_str(ref->device, b, sizeof b));
        }
    }
    return PT_OK;
}

/* pt_fz_float that also takes bf16 (attention: CUDA's flash kernels; on the CPU a bf16 call ends at
 * pt_kernel_missing, which names the op, dtype and device) */
static pt_status pt_fz_float_or_bf16(const char *op, const char *arg, const pt_tensor *t, const pt_tensor *ref,
                                     const char *ref_arg) {
    if (t->dtype != PT_BF16) return pt_fz_float(op, arg, t, ref, ref_arg);
    if (ref) {
        if (ref->dtype != PT_BF16)
            return PT_FAIL(PT_ERR_DTYPE, "%s: %s has dtype bf16 but %s has %s; cast them to one dtype", op, arg,
                           ref_arg, pt_dtype_name(ref->dtype));
        if (!pt_device_eq(t->device, ref->device)) {
            char a[32], b[32];
            return PT_FAIL(PT_ERR_VALUE, "%s: %s is on %s but %s is on %s", op, arg,
                           pt_device_str(t->device, a, sizeof a), ref_arg, pt_device_str(ref->device, b, sizeof b));
        }
    }
    return PT_OK;
}

static pt_status pt_fz_ndim(const char *op, const char *arg, const pt_tensor *t, int ndim, const char *layout) {
    if (t->ndim != ndim) {
        char s[128];
        return PT_FAIL(PT_ERR_SHAPE, "%s: %s must be %d-D %s, got shape %s", op, arg, ndim, layout,
                       pt_fz_shape(t, s, sizeof s));
    }
    return PT_OK;
}

/* A contiguous gradient in like's dtype. */
static pt_status pt_fz_grad(pt_tensor *g, const pt_tensor *like, pt_tensor **out) {
    pt_tensor *t = NULL;
    *out = NULL;
    PT_TRY(pt_tensor_to(&t, g, like->dtype, like->device, 0));
    pt_status st = pt_tensor_contiguous_raw(out, t);
    pt_tensor_release(t);
    return st;
}

static pt_status pt_fz_like(pt_tensor **out, const pt_tensor *t, int zero) {
    return zero ? pt_tensor_zeros(out, t->dtype, t->device, t->ndim, t->shape)
                : pt_tensor_empty(out, t->dtype, t->device, t->ndim, t->shape);
}

#define PT_FZ_FIND(ktype, var, name, dev, dt)                        \
    ktype var = (ktype)pt_kernel_find(name, (dev).type, (dt));        \
    if (!var) return pt_kernel_missing(name, (dev).type, (dt))

/* An output that the kernel writes in full: the CPU kernels of act2, act2_bwd (dx), rms_norm_bwd
 * and softcap_ce_bwd write every element, so on the CPU it is not zeroed first (a memset pass over
 * fresh memory); other devices keep the zero fill. */
static pt_status pt_fz_out(pt_tensor **out, const pt_tensor *t) {
    return pt_fz_like(out, t, t->device.type != PT_DEV_CPU);
}

/* ---------------- rms_norm ---------------- */
pt_status pt_rms_norm_backward(pt_node *node, pt_tensor *g, pt_tensor **gin) {
    pt_tensor *x = node->saved[0], *rstd = node->saved[1], *gc = NULL;
    PT_FZ_FIND(pt_rmsnorm_kernel, k, "rms_norm_bwd", x->device, x->dtype);
    pt_status st = pt_fz_grad(g, x, &gc);
    if (!st) st = pt_fz_out(&gin[0], x);
    if (!st && pt_tensor_numel(x) > 0) {
        pt_rmsnorm_args a = {.n = pt_tensor_rows(x), .c = x->shape[x->ndim - 1], .scale = node->f[0],
                             .x = pt_tensor_data(x), .rstd = pt_tensor_data(rstd), .g = pt_tensor_data(gc),
                             .dx = pt_tensor_data(gin[0])};
        st = k(&a);
    }
    pt_tensor_release(gc);
    return st;
}

pt_status pt_rms_norm(pt_tensor **out, pt_tensor *x, double eps, double scale) {
    *out = NULL;
    PT_TRY(pt_fz_float("rms_norm", "x", x, NULL, NULL));
    if (x->ndim < 1)
        return PT_FAIL(PT_ERR_SHAPE, "rms_norm: x must have at least one dim (it normalises the last), got a scalar");
    if (!(eps >= 0) || !isfinite(eps))
        return PT_FAIL(PT_ERR_VALUE, "rms_norm: eps must be a finite number >= 0, got %g", eps);
    if (!isfinite(scale)) return PT_FAIL(PT_ERR_VALUE, "rms_norm: scale must be finite, got %g", scale);
    PT_FZ_FIND(pt_rmsnorm_kernel, k, "rms_norm", x->device, x->dtype);
    pt_tensor *xc = NULL, *rstd = NULL;
    int64_t n = pt_tensor_rows(x);
    pt_status st = pt_tensor_contiguous_raw(&xc, x);
    if (!st) st = pt_tensor_empty(out, x->dtype, x->device, x->ndim, x->shape);
    if (!st) st = pt_tensor_zeros(&rstd, x->dtype, x->device, 1, &n);
    if (!st && pt_tensor_numel(x) > 0) {
        pt_rmsnorm_args a = {.n = n, .c = x->shape[x->ndim - 1], .eps = eps, .scale = scale,
                             .x = pt_tensor_data(xc), .y = pt_tensor_data(*out), .rstd = pt_tensor_data(rstd)};
        st = k(&a);
    }
    pt_node *node = NULL;
    pt_tensor *sv[2] = {xc, rstd};
    if (!st) st = pt_autograd_record(*out, "rms_norm", pt_rms_norm_backward, 1, &x, 2, sv, &node);
    if (!st && node) node->f[0] = scale;
    pt_tensor_release(xc);
    pt_tensor_release(rstd);
    if (st) {
        pt_tensor_release(*out);
        *out = NULL;
    }
    return st;
}

/* ---------------- rotary ---------------- */
double pt_rotary_effective_base(double base, int64_t rotary_dims, int64_t T, int64_t train_len) {
    if (train_len <= 0 || T <= train_len || rotary_dims <= 2) return base;
    return base * pow((double)T / (double)train_len, (double)rotary_dims / (double)(rotary_dims - 2));
}

static pt_status pt_rotary_run(pt_tensor *src, pt_tensor *dst, int64_t r, int64_t offset, double base, int inverse) {
    PT_FZ_FIND(pt_rotary_kernel, k, "rotary", src->device, src->dtype);
    if (pt_tensor_numel(src) == 0) return PT_OK;
    pt_rotary_args a = {.B = src->shape[0], .T = src->shape[1], .H = src->shape[2], .D = src->shape[3], .r = r,
                        .offset = offset, .base = base, .inverse = inverse, .x = pt_tensor_data(src),
                        .y = pt_tensor_data(dst)};
    return k(&a);
}

static pt_status pt_rotary_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin) {
    pt_tensor *gc = NULL;
    pt_tensor *x = node->inputs[0];
    pt_status st = pt_fz_grad(g, x, &gc);
    if (!st) st = pt_fz_like(&gin[0], gc, 0);
    if (!st) st = pt_rotary_run(gc, gin[0], node->i[0], node->i[1], node->f[0], 1);
    pt_tensor_release(gc);
    return st;
}

pt_status pt_rotary(pt_tensor **out, pt_tensor *x, int64_t rotary_dims, double base, int64_t train_len,
                    int64_t offset) {
    *out = NULL;
    PT_TRY(pt_fz_float("rotary", "x", x, NULL, NULL));
    PT_TRY(pt_fz_ndim("rotary", "x", x, 4, "[B, T, H, D]"));
    const int64_t T = x->shape[1], D = x->shape[3];
    int64_t r = rotary_dims == 0 ? D : rotary_dims;
    if (r < 2 || r > D || r % 2)
        return PT_FAIL(PT_ERR_VALUE, "rotary: rotary dims must be even and in [2, D = %lld], got %lld", (long long)D,
                       (long long)r);
    if (!(base > 0) || !isfinite(base))
        return PT_FAIL(PT_ERR_VALUE, "rotary: base must be a finite number > 0, got %g", base);
    if (train_len < 0)
        return PT_FAIL(PT_ERR_VALUE, "rotary: train_len must be >= 0 (0 turns NTK scaling off), got %lld",
                       (long long)train_len);
    if (offset < 0) return PT_FAIL(PT_ERR_VALUE, "rotary: position offset must be >= 0, got %lld", (long long)offset);
    if (train_len > 0 && T > train_len && r == 2)
        return PT_FAIL(PT_ERR_VALUE, "rotary: NTK scaling (T = %lld > train_len = %lld) needs rotary dims > 2 "
                                     "(the exponent r/(r-2) is undefined for r = 2)", (long long)T, (long long)train_len);
    double eb = pt_rotary_effective_base(base, r, T, train_len);
    pt_tensor *xc = NULL;
    pt_status st = pt_tensor_contiguous_raw(&xc, x);
    if (!st) st = pt_fz_like(out, xc, 0);
    if (!st) st = pt_rotary_run(xc, *out, r, offset, eb, 0);
    pt_node *node = NULL;
    if (!st) st = pt_autograd_record(*out, "rotary", pt_rotary_bwd, 1, &x, 0, NULL, &node);
    if (!st && node) {
        node->i[0] = r;
        node->i[1] = offset;
        node->f[0] = eb;
    }
    pt_tensor_release(xc);
    if (st) {
        pt_tensor_release(*out);
        *out = NULL;
    }
    return st;
}

/* ---------------- attention ---------------- */
static pt_status pt_attention_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin) {
    pt_tensor *q = node->saved[0], *kk = node->saved[1], *v = node->saved[2], *y = node->saved[3];
    pt_tensor *lse = node->saved[4], *gc = NULL, *dq = NULL, *dk = NULL, *dv = NULL;
    PT_FZ_FIND(pt_attention_kernel, k, "attention_bwd", q->device, q->dtype);
    pt_status st = pt_fz_grad(g, q, &gc);
    if (!st) st = pt_fz_like(&dq, q, 1);
    if (!st) st = pt_fz_like(&dk, kk, 1);
    if (!st) st = pt_fz_like(&dv, v, 1);
    if (!st && pt_tensor_numel(q) > 0 && pt_tensor_numel(kk) > 0) {
        pt_attention_args a = {.B = q->shape[0], .T = q->shape[1], .H = q->shape[2], .Hkv = kk->shape[2],
                               .D = q->shape[3], .scale = node->f[0], .q = pt_tensor_data(q),
                               .k = pt_tensor_data(kk), .v = pt_tensor_data(v), .gy = pt_tensor_data(gc),
                               .y = pt_tensor_data(y), .lse = pt_tensor_data(lse), .dq = pt_tensor_data(dq),
                               .dk = pt_tensor_data(dk), .dv = pt_tensor_data(dv)};
        st = k(&a);
    }
    pt_tensor_release(gc);
    if (st) {
        pt_tensor_release(dq);
        pt_tensor_release(dk);
        pt_tensor_release(dv);
        return st;
    }
    gin[0] = dq;
    gin[1] = dk;
    gin[2] = dv;
    return PT_OK;
}

pt_status pt_attention(pt_tensor **out, pt_tensor *q, pt_tensor *k, pt_tensor *v, double scale) {
    *out = NULL;
    const char *op = "attention";
    PT_TRY(pt_fz_float_or_bf16(op, "q", q, NULL, NULL));
    PT_TRY(pt_fz_float_or_bf16(op, "k", k, q, "q"));
    PT_TRY(pt_fz_float_or_bf16(op, "v", v, q, "q"));
    PT_TRY(pt_fz_ndim(op, "q", q, 4, "[B, T, H, D]"));
    PT_TRY(pt_fz_ndim(op, "k", k, 4, "[B, T, Hkv, D]"));
    PT_TRY(pt_fz_ndim(op, "v", v, 4, "[B, T, Hkv, D]"));
    char sq[128], sk[128], sv[128];
    pt_fz_shape(q, sq, sizeof sq);
    pt_fz_shape(k, sk, sizeof sk);
    pt_fz_shape(v, sv, sizeof sv);
    if (memcmp(k->shape, v->shape, 4 * sizeof(int64_t)))
        return PT_FAIL(PT_ERR_SHAPE, "attention: k %s and v %s must have the same shape [B, T, Hkv, D]", sk, sv);
    if (k->shape[0] != q->shape[0] || k->shape[1] != q->shape[1] || k->shape[3] != q->shape[3])
        return PT_FAIL(PT_ERR_SHAPE, "attention: q %s and k %s differ in B, T or D (q [B,T,H,D], k [B,T,Hkv,D])", sq,
                       sk);
    const int64_t H = q->shape[2], Hkv = k->shape[2];
    if (Hkv < 1 || H % Hkv)
        return PT_FAIL(PT_ERR_SHAPE, "attention: the %lld kv heads of k %s do not divide the %lld query heads of q %s",
                       (long long)Hkv, sk, (long long)H, sq);
    if (!isfinite(scale)) return PT_FAIL(PT_ERR_VALUE, "attention: scale must be finite, got %g", scale);
    if (scale <= 0) scale = q->shape[3] > 0 ? 1.0 / sqrt((double)q->shape[3]) : 1.0;
    PT_FZ_FIND(pt_attention_kernel, kern, "attention", q->device, q->dtype);
    pt_tensor *qc = NULL, *kc = NULL, *vc = NULL, *lse = NULL, *yd = NULL;
    int64_t lshape[3] = {q->shape[0], H, q->shape[1]};
    pt_status st = pt_tensor_contiguous_raw(&qc, q);
    if (!st) st = pt_tensor_contiguous_raw(&kc, k);
    if (!st) st = pt_tensor_contiguous_raw(&vc, v);
    if (!st) st = pt_fz_like(out, q, 1);
    /* lse stays f32 for bf16 inputs (the backward's P = exp(s - lse) needs more than bf16's 8 bits) */
    if (!st) st = pt_tensor_zeros(&lse, q->dtype == PT_BF16 ? PT_F32 : q->dtype, q->device, 3, lshape);
    if (!st && pt_tensor_numel(q) > 0) {
        pt_attention_args a = {.B = q->shape[0], .T = q->shape[1], .H = H, .Hkv = Hkv, .D = q->shape[3],
                               .scale = scale, .q = pt_tensor_data(qc), .k = pt_tensor_data(kc),
                               .v = pt_tensor_data(vc), .y = pt_tensor_data(*out), .lse = pt_tensor_data(lse)};
        st = kern(&a);
    }
    if (!st) st = pt_tensor_detach(&yd, *out);
    pt_node *node = NULL;
    pt_tensor *in[3] = {q, k, v}, *saved[5] = {qc, kc, vc, yd, lse};
    if (!st) st = pt_autograd_record(*out, "attention", pt_attention_bwd, 3, in, 5, saved, &node);
    if (!st && node) node->f[0] = scale;
    pt_tensor_release(qc);
    pt_tensor_release(kc);
    pt_tensor_release(vc);
    pt_tensor_release(lse);
    pt_tensor_release(yd);
    if (st) {
        pt_tensor_release(*out);
        *out = NULL;
    }
    return st;
}

/* ---------------- XSA ---------------- */
static pt_status pt_xsa_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin) {
    pt_tensor *y = node->saved[0], *v = node->saved[1], *gc = NULL;
    PT_FZ_FIND(pt_xsa_kernel, k, "xsa_bwd", y->device, y->dtype);
    int ny = pt_node_needs_grad(node, 0), nv = pt_node_needs_grad(node, 1);
    pt_status st = pt_fz_grad(g, y, &gc);
    if (!st && ny) st = pt_fz_like(&gin[0], y, 1);
    if (!st && nv) st = pt_fz_like(&gin[1], v, 1);
    if (!st && pt_tensor_numel(y) > 0) {
        pt_xsa_args a = {.n = y->shape[0] * y->shape[1], .H = y->shape[2], .Hkv = v->shape[2], .D = y->shape[3],
                         .y = pt_tensor_data(y), .v = pt_tensor_data(v), .g = pt_tensor_data(gc),
                         .dy = ny ? pt_tensor_data(gin[0]) : NULL, .dv = nv ? pt_tensor_data(gin[1]) : NULL};
        st = k(&a);
    }
    pt_tensor_release(gc);
    return st;
}

pt_status pt_xsa(pt_tensor **out, pt_tensor *y, pt_tensor *v) {
    *out = NULL;
    PT_TRY(pt_fz_float("xsa", "y", y, NULL, NULL));
    PT_TRY(pt_fz_float("xsa", "v", v, y, "y"));
    PT_TRY(pt_fz_ndim("xsa", "y", y, 4, "[B, T, H, D]"));
    PT_TRY(pt_fz_ndim("xsa", "v", v, 4, "[B, T, Hkv, D]"));
    char sy[128], sv[128];
    pt_fz_shape(y, sy, sizeof sy);
    pt_fz_shape(v, sv, sizeof sv);
    if (y->shape[0] != v->shape[0] || y->shape[1] != v->shape[1] || y->shape[3] != v->shape[3])
        return PT_FAIL(PT_ERR_SHAPE, "xsa: y %s and v %s differ in B, T or D (y [B,T,H,D], v [B,T,Hkv,D])", sy, sv);
    if (v->shape[2] < 1 || y->shape[2] % v->shape[2])
        return PT_FAIL(PT_ERR_SHAPE, "xsa: the %lld kv heads of v %s do not divide the %lld heads of y %s",
                       (long long)v->shape[2], sv, (long long)y->shape[2], sy);
    PT_FZ_FIND(pt_xsa_kernel, k, "xsa", y->device, y->dtype);
    pt_tensor *yc = NULL, *vc = NULL;
    pt_status st = pt_tensor_contiguous_raw(&yc, y);
    if (!st) st = pt_tensor_contiguous_raw(&vc, v);
    if (!st) st = pt_fz_like(out, y, 1);
    if (!st && pt_tensor_numel(y) > 0) {
        pt_xsa_args a = {.n = y->shape[0] * y->shape[1], .H = y->shape[2], .Hkv = v->shape[2], .D = y->shape[3],
                         .y = pt_tensor_data(yc), .v = pt_tensor_data(vc), .out = pt_tensor_data(*out)};
        st = k(&a);
    }
    pt_tensor *in[2] = {y, v}, *saved[2] = {yc, vc};
    if (!st) st = pt_autograd_record(*out, "xsa", pt_xsa_bwd, 2, in, 2, saved, NULL);
    pt_tensor_release(yc);
    pt_tensor_release(vc);
    if (st) {
        pt_tensor_release(*out);
        *out = NULL;
    }
    return st;
}

/* ---------------- relu², leaky relu², star relu ---------------- */
static pt_status pt_act2_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin) {
    pt_tensor *x = node->saved[0], *scale = node->saved[1], *gc = NULL;
    int op = (int)node->i[0];
    PT_FZ_FIND(pt_act2_kernel, k, "act2_bwd", x->device, x->dtype);
    int nx = pt_node_needs_grad(node, 0), ns = op == PT_ACT2_STAR && pt_node_needs_grad(node, 1),
        nb = op == PT_ACT2_STAR && pt_node_needs_grad(node, 2);
    pt_status st = pt_fz_grad(g, x, &gc);
    if (!st && nx) st = pt_fz_out(&gin[0], x);
    if (!st && ns) st = pt_fz_like(&gin[1], scale, 1);
    if (!st && nb) st = pt_fz_like(&gin[2], scale, 1);
    if (!st && pt_tensor_numel(x) > 0) {
        pt_act2_args a = {.op = op, .n = pt_tensor_rows(x), .c = x->shape[x->ndim - 1], .slope = node->f[0],
                          .x = pt_tensor_data(x), .scale = scale ? pt_tensor_data(scale) : NULL,
                          .g = pt_tensor_data(gc), .dx = nx ? pt_tensor_data(gin[0]) : NULL,
                          .dscale = ns ? pt_tensor_data(gin[1]) : NULL, .dbias = nb ? pt_tensor_data(gin[2]) : NULL};
        st = k(&a);
    }
    pt_tensor_release(gc);
    return st;
}

static pt_status pt_act2(pt_tensor **out, const char *op_name, int op, pt_tensor *x, double slope, pt_tensor *scale,
                         pt_tensor *bias) {
    *out = NULL;
    PT_TRY(pt_fz_float(op_name, "x", x, NULL, NULL));
    if (x->ndim < 1) return PT_FAIL(PT_ERR_SHAPE, "%s: x must have at least one dim, got a scalar", op_name);
    if (!isfinite(slope)) return PT_FAIL(PT_ERR_VALUE, "%s: slope must be finite, got %g", op_name, slope);
    if (op == PT_ACT2_STAR) {
        PT_TRY(pt_fz_float(op_name, "scale", scale, x, "x"));
        PT_TRY(pt_fz_float(op_name, "bias", bias, x, "x"));
        const int64_t C = x->shape[x->ndim - 1];
        char sx[128], ss[128], sb[128];
        if (scale->ndim != 1 || bias->ndim != 1 || scale->shape[0] != C || bias->shape[0] != C)
            return PT_FAIL(PT_ERR_SHAPE, "%s: scale %s and bias %s must be 1-D of size %lld (the last dim of x %s)",
                           op_name, pt_fz_shape(scale, ss, sizeof ss), pt_fz_shape(bias, sb, sizeof sb), (long long)C,
                           pt_fz_shape(x, sx, sizeof sx));
    }
    PT_FZ_FIND(pt_act2_kernel, k, "act2", x->device, x->dtype);
    pt_tensor *xc = NULL, *sc = NULL, *bc = NULL;
    pt_status st = pt_tensor_contiguous_raw(&xc, x);
    if (!st && scale) st = pt_tensor_contiguous_raw(&sc, scale);
    if (!st && bias) st = pt_tensor_contiguous_raw(&bc, bias);
    if (!st) st = pt_fz_out(out, x);
    if (!st && pt_tensor_numel(x) > 0) {
        pt_act2_args a = {.op = op, .n = pt_tensor_rows(x), .c = x->shape[x->ndim - 1], .slope = slope,
                          .x = pt_tensor_data(xc), .scale = sc ? pt_tensor_data(sc) : NULL,
                          .bias = bc ? pt_tensor_data(bc) : NULL, .out = pt_tensor_data(*out)};
        st = k(&a);
    }
    pt_node *node = NULL;
    pt_tensor *in[3] = {x, scale, bias}, *saved[2] = {xc, sc};
    if (!st) st = pt_autograd_record(*out, op_name, pt_act2_bwd, op == PT_ACT2_STAR ? 3 : 1, in, 2, saved, &node);
    if (!st && node) {
        node->i[0] = op;
        node->f[0] = slope;
    }
    pt_tensor_release(xc);
    pt_tensor_release(sc);
    pt_tensor_release(bc);
    if (st) {
        pt_tensor_release(*out);
        *out = NULL;
    }
    return st;
}

pt_status pt_relu2(pt_tensor **out, pt_tensor *x) { return pt_act2(out, "relu2", PT_ACT2_RELU2, x, 0, NULL, NULL); }
pt_status pt_leaky_relu2(pt_tensor **out, pt_tensor *x, double slope) {
    return pt_act2(out, "leaky_relu2", PT_ACT2_LEAKY2, x, slope, NULL, NULL);
}
pt_status pt_star_relu(pt_tensor **out, pt_tensor *x, pt_tensor *scale, pt_tensor *bias) {
    if (!scale || !bias) {
        *out = NULL;
        return PT_FAIL(PT_ERR_VALUE, "star_relu: scale and bias tensors are required");
    }
    return pt_act2(out, "star_relu", PT_ACT2_STAR, x, 0, scale, bias);
}

/* ---------------- softcapped cross-entropy ---------------- */
static pt_status pt_ce_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin) {
    pt_tensor *x = node->saved[0], *tg = node->saved[1], *lse = node->saved[2], *gc = NULL;
    PT_FZ_FIND(pt_ce_kernel, k, "softcap_ce_bwd", x->device, x->dtype);
    const int64_t n = pt_tensor_rows(x);
    const int mean = node->i[0] == PT_CE_MEAN;
    pt_status st = pt_fz_grad(g, x, &gc);
    if (!st) st = pt_fz_out(&gin[0], x);
    if (!st && pt_tensor_numel(x) > 0) {
        pt_ce_args a = {.n = n, .V = x->shape[x->ndim - 1], .cap = node->f[0], .logits = pt_tensor_data(x),
                        .targets = pt_tensor_data(tg), .lse = pt_tensor_data(lse), .g = pt_tensor_data(gc),
                        .gstride = mean ? 0 : 1, .gscale = mean ? 1.0 / (double)n : 1.0,
                        .dlogits = pt_tensor_data(gin[0])};
        st = k(&a);
    }
    pt_tensor_release(gc);
    return st;
}

pt_status pt_ce_mean(pt_tensor **out, pt_tensor *nll) {
    *out = NULL;
    PT_TRY(pt_fz_float("ce_mean", "nll", nll, NULL, NULL));
    PT_FZ_FIND(pt_ce_mean_kernel, k, "ce_mean", nll->device, nll->dtype);
    pt_tensor *nc = NULL;
    PT_TRY(pt_tensor_contiguous_raw(&nc, nll));
    pt_status st = pt_tensor_empty(out, nll->dtype, nll->device, 0, NULL);
    if (!st) st = k(pt_tensor_data(nc), pt_tensor_numel(nc), pt_tensor_data(*out)); /* on the device: no host read */
    pt_tensor_release(nc);
    if (st) {
        pt_tensor_release(*out);
        *out = NULL;
    }
    return st;
}

pt_status pt_softcap_cross_entropy(pt_tensor **out, pt_tensor *logits, pt_tensor *targets, double softcap,
                                   pt_ce_reduction reduction) {
    *out = NULL;
    const char *op = "softcap_cross_entropy";
    PT_TRY(pt_fz_float(op, "logits", logits, NULL, NULL));
    char sl[128], st_[128];
    pt_fz_shape(logits, sl, sizeof sl);
    pt_fz_shape(targets, st_, sizeof st_);
    if (logits->ndim < 1) return PT_FAIL(PT_ERR_SHAPE, "%s: logits must be [..., V], got a scalar", op);
    if (!pt_dtype_is_int(targets->dtype) || targets->dtype == PT_BOOL)
        return PT_FAIL(PT_ERR_DTYPE, "%s: targets have dtype %s; expected integer token ids (i64, i32, u16, u8)", op,
                       pt_dtype_name(targets->dtype));
    if (targets->ndim != logits->ndim - 1 ||
        memcmp(targets->shape, logits->shape, sizeof(int64_t) * (size_t)targets->ndim))
        return PT_FAIL(PT_ERR_SHAPE, "%s: targets %s must have the shape of logits %s without its last dim", op, st_,
                       sl);
    if (!pt_device_eq(targets->device, logits->device))
        return PT_FAIL(PT_ERR_VALUE, "%s: targets and logits are on different devices", op);
    if (!(softcap >= 0) || !isfinite(softcap))
        return PT_FAIL(PT_ERR_VALUE, "%s: softcap must be a finite number >= 0 (0 = no cap), got %g", op, softcap);
    if (reduction != PT_CE_MEAN && reduction != PT_CE_NONE)
        return PT_FAIL(PT_ERR_VALUE, "%s: unknown reduction %d (mean or none)", op, (int)reduction);
    const int64_t n = pt_tensor_rows(logits), V = logits->shape[logits->ndim - 1];
    if (reduction == PT_CE_MEAN && n == 0)
        return PT_FAIL(PT_ERR_VALUE, "%s: reduction mean of an empty batch (logits %s)", op, sl);
    if (V == 0 && n > 0) return PT_FAIL(PT_ERR_SHAPE, "%s: logits %s have a vocabulary of size 0", op, sl);
    PT_FZ_FIND(pt_ce_kernel, k, "softcap_ce", logits->device, logits->dtype);
    pt_tensor *xc = NULL, *t64 = NULL, *tc = NULL, *nll = NULL, *lse = NULL;
    pt_status st = pt_tensor_contiguous_raw(&xc, logits);
    if (!st) st = pt_tensor_to(&t64, targets, PT_I64, targets->device, 0);
    if (!st) st = pt_tensor_contiguous_raw(&tc, t64);
    if (!st) { /* every device: the "index_check" kernel (deferred inside a CUDA graph capture) */
        char tmpl[512];
        snprintf(tmpl, sizeof tmpl, "%s: target {value} at position {pos} (flat index into targets %s) is out of "
                 "range [0, %lld)", op, st_, (long long)V);
        st = pt_index_check_range(tc, V, tmpl);
    }
    if (!st) st = pt_tensor_zeros(&nll, logits->dtype, logits->device, targets->ndim, targets->shape);
    if (!st) st = pt_tensor_zeros(&lse, logits->dtype, logits->device, 1, &n);
    if (!st && n > 0) {
        pt_ce_args a = {.n = n, .V = V, .cap = softcap, .logits = pt_tensor_data(xc), .targets = pt_tensor_data(tc),
                        .nll = pt_tensor_data(nll), .lse = pt_tensor_data(lse)};
        st = k(&a);
    }
    if (!st && reduction == PT_CE_MEAN) {
        st = pt_ce_mean(out, nll);
    } else if (!st) {
        *out = nll;
        nll = NULL;
    }
    pt_node *node = NULL;
    pt_tensor *saved[3] = {xc, tc, lse};
    if (!st) st = pt_autograd_record(*out, op, pt_ce_bwd, 1, &logits, 3, saved, &node);
    if (!st && node) {
        node->i[0] = reduction;
        node->f[0] = softcap;
    }
    pt_tensor_release(xc);
    pt_tensor_release(t64);
    pt_tensor_release(tc);
    pt_tensor_release(nll);
    pt_tensor_release(lse);
    if (st) {
        pt_tensor_release(*out);
        *out = NULL;
    }
    return st;
}

/* ---------------- BigramHash ---------------- */
pt_status pt_bigram_hash(pt_tensor **out, pt_tensor *tokens, int64_t buckets) {
    *out = NULL;
    char s[128];
    pt_fz_shape(tokens, s, sizeof s);
    if (!pt_dtype_is_int(tokens->dtype) || tokens->dtype == PT_BOOL)
        return PT_FAIL(PT_ERR_DTYPE, "bigram_hash: tokens have dtype %s; expected integer token ids",
                       pt_dtype_name(tokens->dtype));
    if (tokens->ndim < 1) return PT_FAIL(PT_ERR_SHAPE, "bigram_hash: tokens must be [..., T], got a scalar");
    if (buckets < 2 || buckets > INT32_MAX)
        return PT_FAIL(PT_ERR_VALUE, "bigram_hash: buckets must be in [2, 2^31 - 1] (bucket buckets-1 is reserved "
                                     "for position 0), got %lld", (long long)buckets);
    PT_FZ_FIND(pt_bigram_kernel, k, "bigram_hash", tokens->device, PT_I64);
    pt_tensor *t64 = NULL, *tc = NULL;
    pt_status st = pt_tensor_to(&t64, tokens, PT_I64, tokens->device, 0);
    if (!st) st = pt_tensor_contiguous_raw(&tc, t64);
    const int64_t n = pt_tensor_rows(tokens), T = tokens->shape[tokens->ndim - 1];
    if (!st && tc->device.type == PT_DEV_CPU) {
        const int64_t *tp = pt_tensor_data(tc);
        for (int64_t i = 0; i < n * T; i++)
            if (tp[i] < 0 || tp[i] > INT32_MAX) {
                st = PT_FAIL(PT_ERR_VALUE, "bigram_hash: token %lld at position %lld (flat index into tokens %s) is "
                                           "not a token id in [0, 2^31 - 1]", (long long)tp[i], (long long)i, s);
                break;
            }
    }
    if (!st) st = pt_tensor_zeros(out, PT_I64, tokens->device, tokens->ndim, tokens->shape);
    if (!st && n * T > 0) {
        pt_bigram_args a = {.n = n, .T = T, .buckets = buckets, .tokens = pt_tensor_data(tc),
                            .out = pt_tensor_data(*out)};
        st = k(&a);
    }
    pt_tensor_release(t64);
    pt_tensor_release(tc);
    if (st) {
        pt_tensor_release(*out);
        *out = NULL;
    }
    return st;
}

/* ---------------- SmearGate ---------------- */
static pt_status pt_smear_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin) {
    pt_tensor *x = node->saved[0], *gate = node->saved[1], *gc = NULL;
    PT_FZ_FIND(pt_smear_kernel, k, "smear_gate_bwd", x->device, x->dtype);
    int nx = pt_node_needs_grad(node, 0), ng = pt_node_needs_grad(node, 1);
    pt_status st = pt_fz_grad(g, x, &gc);
    if (!st && nx) st = pt_fz_like(&gin[0], node->inputs[0], 1);
    if (!st && ng) st = pt_fz_like(&gin[1], gate, 1);
    if (!st && pt_tensor_numel(x) > 0) {
        pt_smear_args a = {.B = node->i[0], .T = node->i[1], .C = node->i[2], .x = pt_tensor_data(x),
                           .gate = pt_tensor_data(gate), .gy = pt_tensor_data(gc),
                           .dx = nx ? pt_tensor_data(gin[0]) : NULL, .dgate = ng ? pt_tensor_data(gin[1]) : NULL};
        st = k(&a);
    }
    pt_tensor_release(gc);
    return st;
}

pt_status pt_smear_gate(pt_tensor **out, pt_tensor *x, pt_tensor *gate) {
    *out = NULL;
    PT_TRY(pt_fz_float("smear_gate", "x", x, NULL, NULL));
    PT_TRY(pt_fz_float("smear_gate", "gate", gate, x, "x"));
    char sx[128], sg[128];
    pt_fz_shape(x, sx, sizeof sx);
    pt_fz_shape(gate, sg, sizeof sg);
    if (x->ndim != 2 && x->ndim != 3)
        return PT_FAIL(PT_ERR_SHAPE, "smear_gate: x must be [B, T, C] or [T, C], got %s", sx);
    const int64_t C = x->shape[x->ndim - 1], T = x->shape[x->ndim - 2], B = x->ndim == 3 ? x->shape[0] : 1;
    if (gate->ndim != 1 || gate->shape[0] != C)
        return PT_FAIL(PT_ERR_SHAPE, "smear_gate: gate %s must be 1-D of size C = %lld (the last dim of x %s)", sg,
                       (long long)C, sx);
    PT_FZ_FIND(pt_smear_kernel, k, "smear_gate", x->device, x->dtype);
    pt_tensor *xc = NULL, *gc = NULL;
    pt_status st = pt_tensor_contiguous_raw(&xc, x);
    if (!st) st = pt_tensor_contiguous_raw(&gc, gate);
    if (!st) st = pt_fz_like(out, x, 1);
    if (!st && pt_tensor_numel(x) > 0) {
        pt_smear_args a = {.B = B, .T = T, .C = C, .x = pt_tensor_data(xc), .gate = pt_tensor_data(gc),
                           .y = pt_tensor_data(*out)};
        st = k(&a);
    }
    pt_node *node = NULL;
    pt_tensor *in[2] = {x, gate}, *saved[2] = {xc, gc};
    if (!st) st = pt_autograd_record(*out, "smear_gate", pt_smear_bwd, 2, in, 2, saved, &node);
    if (!st && node) {
        node->i[0] = B;
        node->i[1] = T;
        node->i[2] = C;
    }
    pt_tensor_release(xc);
    pt_tensor_release(gc);
    if (st) {
        pt_tensor_release(*out);
        *out = NULL;
    }
    return st;
}

/* ---------------- batched LoRA ---------------- */
static pt_status pt_lora_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin) {
    pt_tensor *x = node->saved[0], *A = node->saved[1], *Bw = node->saved[2], *h = node->saved[3], *gc = NULL;
    PT_FZ_FIND(pt_lora_kernel, k, "lora_bwd", x->device, x->dtype);
    int nx = pt_node_needs_grad(node, 0), na = pt_node_needs_grad(node, 1), nb = pt_node_needs_grad(node, 2);
    pt_status st = pt_fz_grad(g, x, &gc);
    if (!st && nx) st = pt_fz_like(&gin[0], x, 1);
    if (!st && na) st = pt_fz_like(&gin[1], A, 1);
    if (!st && nb) st = pt_fz_like(&gin[2], Bw, 1);
    if (!st && pt_tensor_numel(x) > 0 && pt_tensor_numel(A) > 0 && pt_tensor_numel(gc) > 0) {
        pt_lora_args a = {.B = x->shape[0], .T = x->shape[1], .in = x->shape[2], .out = Bw->shape[1],
                          .R = A->shape[1], .x = pt_tensor_data(x), .A = pt_tensor_data(A), .Bw = pt_tensor_data(Bw),
                          .h = pt_tensor_data(h), .gy = pt_tensor_data(gc), .dx = nx ? pt_tensor_data(gin[0]) : NULL,
                          .dA = na ? pt_tensor_data(gin[1]) : NULL, .dBw = nb ? pt_tensor_data(gin[2]) : NULL};
        st = k(&a);
    }
    pt_tensor_release(gc);
    return st;
}

pt_status pt_lora(pt_tensor **out, pt_tensor *x, pt_tensor *A, pt_tensor *Bw) {
    *out = NULL;
    PT_TRY(pt_fz_float("lora", "x", x, NULL, NULL));
    PT_TRY(pt_fz_float("lora", "A", A, x, "x"));
    PT_TRY(pt_fz_float("lora", "B", Bw, x, "x"));
    PT_TRY(pt_fz_ndim("lora", "x", x, 3, "[B, T, in]"));
    PT_TRY(pt_fz_ndim("lora", "A", A, 3, "[B, r, in]"));
    PT_TRY(pt_fz_ndim("lora", "B", Bw, 3, "[B, out, r]"));
    char sx[128], sa[128], sb[128];
    pt_fz_shape(x, sx, sizeof sx);
    pt_fz_shape(A, sa, sizeof sa);
    pt_fz_shape(Bw, sb, sizeof sb);
    if (A->shape[0] != x->shape[0] || Bw->shape[0] != x->shape[0] || A->shape[2] != x->shape[2] ||
        Bw->shape[2] != A->shape[1])
        return PT_FAIL(PT_ERR_SHAPE, "lora: shapes x %s, A %s, B %s do not fit x [B,T,in], A [B,r,in], B [B,out,r]",
                       sx, sa, sb);
    PT_FZ_FIND(pt_lora_kernel, k, "lora", x->device, x->dtype);
    const int64_t Bn = x->shape[0], T = x->shape[1], R = A->shape[1], O = Bw->shape[1];
    int64_t yshape[3] = {Bn, T, O}, hshape[3] = {Bn, T, R};
    pt_tensor *xc = NULL, *ac = NULL, *bc = NULL, *h = NULL;
    pt_status st = pt_tensor_contiguous_raw(&xc, x);
    if (!st) st = pt_tensor_contiguous_raw(&ac, A);
    if (!st) st = pt_tensor_contiguous_raw(&bc, Bw);
    if (!st) st = pt_tensor_zeros(out, x->dtype, x->device, 3, yshape);
    if (!st) st = pt_tensor_zeros(&h, x->dtype, x->device, 3, hshape);
    if (!st && pt_tensor_numel(x) > 0 && R > 0 && O > 0) {
        pt_lora_args a = {.B = Bn, .T = T, .in = x->shape[2], .out = O, .R = R, .x = pt_tensor_data(xc),
                          .A = pt_tensor_data(ac), .Bw = pt_tensor_data(bc), .h = pt_tensor_data(h),
                          .y = pt_tensor_data(*out)};
        st = k(&a);
    }
    pt_tensor *in[3] = {x, A, Bw}, *saved[4] = {xc, ac, bc, h};
    if (!st) st = pt_autograd_record(*out, "lora", pt_lora_bwd, 3, in, 4, saved, NULL);
    pt_tensor_release(xc);
    pt_tensor_release(ac);
    pt_tensor_release(bc);
    pt_tensor_release(h);
    if (st) {
        pt_tensor_release(*out);
        *out = NULL;
    }
    return st;
}
