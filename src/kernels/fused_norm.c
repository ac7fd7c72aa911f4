/* fused_norm.c — op fronts of the fused RMS-norm prologues (pt_fused_norm.h): argument checks with
 * messages that name the op, the argument and the shapes; contiguous inputs; dispatch to the
 * (op, device, dtype) kernels; autograd nodes whose backwards call the op's backward kernels.
 *
 *   pt_mix_rms_norm     two nodes: "mix" on y (saves x, x0, wx, w0, like the unfused products do) and
 *                       "mix_rms_norm" on h (input y; saves y and 1/rms per row)
 *   pt_rms_norm_rotary  one node "rms_norm_rotary" (saves x, gain and 1/rms per row; the backward
 *                       recomputes the rotated rows when gain needs a gradient)
 *
 * f32 and f64 everywhere; bf16 reaches the kernels (CUDA has them; on the CPU the kernel lookup fails
 * with "no kernel for dtype bf16 on cpu"). 1/rms is kept in f32 for bf16 tensors.
 * Backward functions are not themselves differentiable (no double backward through these ops).
 * Tests: tests/c/test_fused_norm.c, tests/lua/test_fused_norm.lua, tests/gpu/test_fused_norm.lua.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "pt_dispatch.h"
#include "pt_fused_norm.h"
#include "pt_ops.h"

/* ---------------- helpers ---------------- */
static const char *pt_fn_shape(const pt_tensor *t, char *buf, size_t n) {
    return pt_shape_str(t->ndim, t->shape, buf, n);
}

/* t must be f32, f64 or bf16; with ref, the same dtype and device as ref (named ref_arg). */
static pt_status pt_fn_float(const char *op, const char *arg, const pt_tensor *t, const pt_tensor *ref,
                             const char *ref_arg) {
    if (t->dtype != PT_F32 && t->dtype != PT_F64 && t->dtype != PT_BF16)
        return PT_FAIL(PT_ERR_DTYPE, "%s: %s has dtype %s; expected f32, f64 or bf16 (cast it first)", op, arg,
                       pt_dtype_name(t->dtype));
    if (!ref) return PT_OK;
    if (t->dtype != ref->dtype)
        return PT_FAIL(PT_ERR_DTYPE, "%s: %s has dtype %s but %s has %s; cast them to one dtype", op, arg,
                       pt_dtype_name(t->dtype), ref_arg, pt_dtype_name(ref->dtype));
    if (!pt_device_eq(t->device, ref->device)) {
        char a[32], b[32];
        return PT_FAIL(PT_ERR_VALUE, "%s: %s is on %s but %s is on %s; move them to one device", op, arg,
                       pt_device_str(t->device, a, sizeof a), ref_arg, pt_device_str(ref->device, b, sizeof b));
    }
    return PT_OK;
}

/* the dtype of the per-row 1/rms: f32 for bf16 tensors (bf16's 8 bits would spoil the backward) */
static pt_dtype pt_fn_stat_dtype(pt_dtype dt) { return dt == PT_BF16 ? PT_F32 : dt; }

/* A contiguous gradient in like's dtype and device. */
static pt_status pt_fn_grad(pt_tensor *g, const pt_tensor *like, pt_tensor **out) {
    pt_tensor *t = NULL;
    *out = NULL;
    PT_TRY(pt_tensor_to(&t, g, like->dtype, like->device, 0));
    pt_status st = pt_tensor_contiguous_raw(out, t);
    pt_tensor_release(t);
    return st;
}

static void *pt_fn_data(pt_tensor *t) { return t ? pt_tensor_data(t) : NULL; }

#define PT_FN_FIND(ktype, var, name, dev, dt)                        \
    ktype var = (ktype)pt_kernel_find(name, (dev).type, (dt));        \
    if (!var) return pt_kernel_missing(name, (dev).type, (dt))

/* ---------------- mix + rms_norm ---------------- */

/* node "mix" on y: inputs x, x0, wx (may be NULL), w0; saved their contiguous versions; f[0] = x0_scale */
static pt_status pt_mix_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin) {
    pt_tensor *x = node->saved[0], *x0 = node->saved[1], *wx = node->saved[2], *w0 = node->saved[3];
    pt_tensor *like = node->inputs[1], *gc = NULL; /* x0: always a tensor of y's shape */
    PT_FN_FIND(pt_mixnorm_kernel, k, "mix_bwd", like->device, like->dtype);
    const int nx = pt_node_needs_grad(node, 0), nx0 = pt_node_needs_grad(node, 1);
    const int nwx = pt_node_needs_grad(node, 2), nw0 = pt_node_needs_grad(node, 3);
    pt_status st = pt_fn_grad(g, like, &gc);
    if (!st && nx && !wx) { /* y = x + ...: dx is g itself */
        pt_tensor_retain(gc);
        gin[0] = gc;
    } else if (!st && nx) {
        st = pt_tensor_empty(&gin[0], like->dtype, like->device, like->ndim, like->shape);
    }
    if (!st && nx0) st = pt_tensor_empty(&gin[1], like->dtype, like->device, like->ndim, like->shape);
    const int64_t C = like->ndim ? like->shape[like->ndim - 1] : 1;
    if (!st && nwx) st = pt_tensor_zeros(&gin[2], like->dtype, like->device, 1, &C);
    if (!st && nw0) st = pt_tensor_zeros(&gin[3], like->dtype, like->device, 1, &C);
    const int64_t n = pt_tensor_rows(like);
    if (!st && n > 0 && C > 0 && ((nx && wx) || nx0 || nwx || nw0)) {
        pt_mixnorm_args a = {.n = n, .c = C, .x0_scale = node->f[0], .x = pt_fn_data(x), .x0 = pt_fn_data(x0),
                             .wx = pt_fn_data(wx), .w0 = pt_fn_data(w0), .g = pt_tensor_data(gc),
                             .dx = nx && wx ? pt_tensor_data(gin[0]) : NULL, .dx0 = nx0 ? pt_tensor_data(gin[1]) : NULL,
                             .dwx = nwx ? pt_tensor_data(gin[2]) : NULL, .dw0 = nw0 ? pt_tensor_data(gin[3]) : NULL};
        st = k(&a);
    }
    pt_tensor_release(gc);
    return st;
}

pt_status pt_mix_rms_norm(pt_tensor **y, pt_tensor **h, pt_tensor *x, pt_tensor *x0, pt_tensor *wx, pt_tensor *w0,
                          double eps, double scale, double x0_scale) {
    const char *op = "mix_rms_norm";
    *y = NULL;
    *h = NULL;
    if (!x || !x0 || !w0)
        return PT_FAIL(PT_ERR_VALUE, "%s: x, x0 and w0 are required tensors (only wx may be nil, meaning 1)", op);
    PT_TRY(pt_fn_float(op, "x", x, NULL, NULL));
    PT_TRY(pt_fn_float(op, "x0", x0, x, "x"));
    if (wx) PT_TRY(pt_fn_float(op, "wx", wx, x, "x"));
    PT_TRY(pt_fn_float(op, "w0", w0, x, "x"));
    char sx[128], s0[128], sw[128];
    pt_fn_shape(x, sx, sizeof sx);
    pt_fn_shape(x0, s0, sizeof s0);
    if (x->ndim < 1)
        return PT_FAIL(PT_ERR_SHAPE, "%s: x must have at least one dim (it normalises the last), got a scalar", op);
    if (x0->ndim != x->ndim || memcmp(x0->shape, x->shape, sizeof(int64_t) * (size_t)x->ndim))
        return PT_FAIL(PT_ERR_SHAPE, "%s: x0 %s must have the shape of x %s", op, s0, sx);
    const int64_t C = x->shape[x->ndim - 1];
    if (wx && (wx->ndim != 1 || wx->shape[0] != C))
        return PT_FAIL(PT_ERR_SHAPE, "%s: wx %s must be 1-D of size C = %lld (the last dim of x %s)", op,
                       pt_fn_shape(wx, sw, sizeof sw), (long long)C, sx);
    if (w0->ndim != 1 || w0->shape[0] != C)
        return PT_FAIL(PT_ERR_SHAPE, "%s: w0 %s must be 1-D of size C = %lld (the last dim of x %s)", op,
                       pt_fn_shape(w0, sw, sizeof sw), (long long)C, sx);
    if (!(eps >= 0) || !isfinite(eps))
        return PT_FAIL(PT_ERR_VALUE, "%s: eps must be a finite number >= 0, got %g", op, eps);
    if (!isfinite(scale)) return PT_FAIL(PT_ERR_VALUE, "%s: scale must be finite, got %g", op, scale);
    if (!isfinite(x0_scale)) return PT_FAIL(PT_ERR_VALUE, "%s: x0_scale must be finite, got %g", op, x0_scale);
    PT_FN_FIND(pt_mixnorm_kernel, k, "mix_rms_norm", x->device, x->dtype);
    const int64_t n = pt_tensor_rows(x);
    pt_tensor *xc = NULL, *x0c = NULL, *wxc = NULL, *w0c = NULL, *rstd = NULL;
    pt_status st = pt_tensor_contiguous_raw(&xc, x);
    if (!st) st = pt_tensor_contiguous_raw(&x0c, x0);
    if (!st && wx) st = pt_tensor_contiguous_raw(&wxc, wx);
    if (!st) st = pt_tensor_contiguous_raw(&w0c, w0);
    if (!st) st = pt_tensor_empty(y, x->dtype, x->device, x->ndim, x->shape);
    if (!st) st = pt_tensor_empty(h, x->dtype, x->device, x->ndim, x->shape);
    if (!st) st = pt_tensor_zeros(&rstd, pt_fn_stat_dtype(x->dtype), x->device, 1, &n);
    if (!st && n > 0 && C > 0) {
        pt_mixnorm_args a = {.n = n, .c = C, .eps = eps, .scale = scale, .x0_scale = x0_scale,
                             .x = pt_tensor_data(xc), .x0 = pt_tensor_data(x0c), .wx = pt_fn_data(wxc),
                             .w0 = pt_tensor_data(w0c), .y = pt_tensor_data(*y), .h = pt_tensor_data(*h),
                             .rstd = pt_tensor_data(rstd)};
        st = k(&a);
    }
    pt_node *node = NULL;
    pt_tensor *in[4] = {x, x0, wx, w0}, *sv[4] = {xc, x0c, wxc, w0c};
    if (!st) st = pt_autograd_record(*y, "mix", pt_mix_bwd, 4, in, 4, sv, &node);
    if (!st && node) node->f[0] = x0_scale;
    pt_tensor *sn[2] = {*y, rstd};
    node = NULL;
    if (!st) st = pt_autograd_record(*h, "mix_rms_norm", pt_rms_norm_backward, 1, y, 2, sn, &node);
    if (!st && node) node->f[0] = scale;
    pt_tensor_release(xc);
    pt_tensor_release(x0c);
    pt_tensor_release(wxc);
    pt_tensor_release(w0c);
    pt_tensor_release(rstd);
    if (st) {
        pt_tensor_release(*y);
        pt_tensor_release(*h);
        *y = NULL;
        *h = NULL;
    }
    return st;
}

/* ---------------- rms_norm + rotary (+ gain) ---------------- */

/* node "rms_norm_rotary": inputs x, gain (may be NULL); saved xc, gainc, rstd; i[0] = r, i[1] = offset,
 * f[0] = effective base, f[1] = eps */
static pt_status pt_rms_norm_rotary_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin) {
    pt_tensor *x = node->saved[0], *gain = node->saved[1], *rstd = node->saved[2], *gc = NULL;
    PT_FN_FIND(pt_normrot_kernel, k, "rms_norm_rotary_bwd", x->device, x->dtype);
    const int nx = pt_node_needs_grad(node, 0), ng = gain && pt_node_needs_grad(node, 1);
    pt_status st = pt_fn_grad(g, x, &gc);
    if (!st && nx) st = pt_tensor_empty(&gin[0], x->dtype, x->device, x->ndim, x->shape);
    if (!st && ng) st = pt_tensor_zeros(&gin[1], gain->dtype, gain->device, 1, gain->shape);
    if (!st && pt_tensor_numel(x) > 0 && (nx || ng)) {
        pt_normrot_args a = {.B = x->shape[0], .T = x->shape[1], .H = x->shape[2], .D = x->shape[3],
                             .r = node->i[0], .offset = node->i[1], .base = node->f[0], .eps = node->f[1],
                             .x = pt_tensor_data(x), .gain = pt_fn_data(gain), .g = pt_tensor_data(gc),
                             .rstd = pt_tensor_data(rstd), .dx = nx ? pt_tensor_data(gin[0]) : NULL,
                             .dgain = ng ? pt_tensor_data(gin[1]) : NULL};
        st = k(&a);
    }
    pt_tensor_release(gc);
    return st;
}

pt_status pt_rms_norm_rotary(pt_tensor **out, pt_tensor *x, pt_tensor *gain, double eps, int64_t rotary_dims,
                             double base, int64_t train_len, int64_t offset) {
    const char *op = "rms_norm_rotary";
    *out = NULL;
    if (!x) return PT_FAIL(PT_ERR_VALUE, "%s: x is a required tensor", op);
    PT_TRY(pt_fn_float(op, "x", x, NULL, NULL));
    if (gain) PT_TRY(pt_fn_float(op, "gain", gain, x, "x"));
    char sx[128], sg[128];
    pt_fn_shape(x, sx, sizeof sx);
    if (x->ndim != 4) return PT_FAIL(PT_ERR_SHAPE, "%s: x must be 4-D [B, T, H, D], got shape %s", op, sx);
    const int64_t T = x->shape[1], H = x->shape[2], D = x->shape[3];
    if (gain && (gain->ndim != 1 || gain->shape[0] != H))
        return PT_FAIL(PT_ERR_SHAPE, "%s: gain %s must be 1-D of size H = %lld (dim 3 of x %s)", op,
                       pt_fn_shape(gain, sg, sizeof sg), (long long)H, sx);
    const int64_t r = rotary_dims == 0 ? D : rotary_dims;
    if (r < 2 || r > D || r % 2)
        return PT_FAIL(PT_ERR_VALUE, "%s: rotary dims must be even and in [2, D = %lld], got %lld", op, (long long)D,
                       (long long)r);
    if (!(base > 0) || !isfinite(base))
        return PT_FAIL(PT_ERR_VALUE, "%s: base must be a finite number > 0, got %g", op, base);
    if (train_len < 0)
        return PT_FAIL(PT_ERR_VALUE, "%s: train_len must be >= 0 (0 turns NTK scaling off), got %lld", op,
                       (long long)train_len);
    if (offset < 0) return PT_FAIL(PT_ERR_VALUE, "%s: position offset must be >= 0, got %lld", op, (long long)offset);
    if (train_len > 0 && T > train_len && r == 2)
        return PT_FAIL(PT_ERR_VALUE, "%s: NTK scaling (T = %lld > train_len = %lld) needs rotary dims > 2 (the "
                                     "exponent r/(r-2) is undefined for r = 2)", op, (long long)T, (long long)train_len);
    if (!(eps >= 0) || !isfinite(eps))
        return PT_FAIL(PT_ERR_VALUE, "%s: eps must be a finite number >= 0, got %g", op, eps);
    PT_FN_FIND(pt_normrot_kernel, k, "rms_norm_rotary", x->device, x->dtype);
    const double eb = pt_rotary_effective_base(base, r, T, train_len);
    const int64_t rows = x->shape[0] * T * H;
    pt_tensor *xc = NULL, *gc = NULL, *rstd = NULL;
    pt_status st = pt_tensor_contiguous_raw(&xc, x);
    if (!st && gain) st = pt_tensor_contiguous_raw(&gc, gain);
    if (!st) st = pt_tensor_empty(out, x->dtype, x->device, 4, x->shape);
    if (!st) st = pt_tensor_zeros(&rstd, pt_fn_stat_dtype(x->dtype), x->device, 1, &rows);
    if (!st && pt_tensor_numel(x) > 0) {
        pt_normrot_args a = {.B = x->shape[0], .T = T, .H = H, .D = D, .r = r, .offset = offset, .eps = eps,
                             .base = eb, .x = pt_tensor_data(xc), .gain = pt_fn_data(gc), .y = pt_tensor_data(*out),
                             .rstd = pt_tensor_data(rstd)};
        st = k(&a);
    }
    pt_node *node = NULL;
    pt_tensor *in[2] = {x, gain}, *sv[3] = {xc, gc, rstd};
    if (!st) st = pt_autograd_record(*out, op, pt_rms_norm_rotary_bwd, 2, in, 3, sv, &node);
    if (!st && node) {
        node->i[0] = r;
        node->i[1] = offset;
        node->f[0] = eb;
        node->f[1] = eps;
    }
    pt_tensor_release(xc);
    pt_tensor_release(gc);
    pt_tensor_release(rstd);
    if (st) {
        pt_tensor_release(*out);
        *out = NULL;
    }
    return st;
}
