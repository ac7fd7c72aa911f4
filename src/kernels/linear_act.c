/* linear_act.c — pt_linear_act (pt_linear_act.h): x · Wᵀ followed by relu² or leaky relu², one autograd
 * node. Checks (errors name the op, the argument and the shapes), the contiguous operands, dispatch to
 * the "linear_act" / "linear_act_bwd" kernels of the (device, dtype), and the backward's two GEMMs
 * through the "matmul" kernel (pt_matmul.h).
 *
 * Backward GEMMs, row-major, the calls the unfused linear's backward (matmul.c, pt_matmul_wt_bwd) makes:
 *   dx [M, K] = dh [M, N] · W [N, K]          (ta = 0, lda = N; tb = 0, ldb = K)
 *   dW [N, K] = dhᵀ · x                       (dh passed transposed: ta = 1, lda = N; x: ldb = K)
 * Saved: x, W (contiguous) and h; the output is not saved. The backward is not differentiable.
 * Tests: tests/c/test_linear_act.c (values, errors, f64 gradient checks, bitwise equality with the
 * unfused composition), tests/lua/test_linear_act.lua, tests/gpu/test_linear_act.lua.
 */
#include <limits.h> /* INT_MAX */
#include <math.h>   /* isfinite */
#include <string.h> /* memcpy */

#include "pt_dispatch.h"
#include "pt_linear_act.h"
#include "pt_matmul.h"
#include "pt_ops.h"

static const char *la_name(int act) { return act == PT_LINEAR_ACT_LEAKY_RELU2 ? "linear_leaky_relu2" : "linear_relu2"; }

/* ---------------- backward ---------------- */
static pt_status la_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin) {
    pt_tensor *x = node->saved[0], *w = node->saved[1], *h = node->saved[2];
    pt_tensor *gt = NULL, *gc = NULL, *dh = NULL;
    const pt_device dev = x->device;
    const pt_dtype dt = x->dtype;
    pt_linear_act_kernel kb = (pt_linear_act_kernel)pt_kernel_find("linear_act_bwd", dev.type, dt);
    if (!kb) return pt_kernel_missing("linear_act_bwd", dev.type, dt);
    const int64_t M = pt_tensor_rows(x), K = x->shape[x->ndim - 1], N = w->shape[0];
    pt_status st = pt_tensor_to(&gt, g, dt, dev, 0);
    if (!st) st = pt_tensor_contiguous_raw(&gc, gt);
    if (!st) st = pt_tensor_empty(&dh, dt, dev, h->ndim, h->shape);
    if (!st && M * N > 0) {
        pt_linear_act_args a = {.act = (int)node->i[0], .slope = node->f[0], .m = M, .n = N, .k = K,
                                .h = pt_tensor_data(h), .g = pt_tensor_data(gc), .dh = pt_tensor_data(dh)};
        st = kb(&a);
    }
    /* dx = dh · W, dW = dhᵀ · x: the matmul node's own backward for x · Wᵀ (same bits as unfused) */
    if (!st)
        st = pt_linear_backward(x, w, dh, pt_node_needs_grad(node, 0) ? &gin[0] : NULL,
                                pt_node_needs_grad(node, 1) ? &gin[1] : NULL);
    pt_tensor_release(gt);
    pt_tensor_release(gc);
    pt_tensor_release(dh);
    if (st) { /* the caller releases nothing it did not get */
        pt_tensor_release(gin[0]);
        gin[0] = NULL;
        pt_tensor_release(gin[1]);
        gin[1] = NULL;
    }
    return st;
}

/* ---------------- checks ---------------- */
static pt_status la_check(const char *op, pt_tensor *x, pt_tensor *w, int act, double slope) {
    char sx[128], sw[128];
    pt_shape_str(x->ndim, x->shape, sx, sizeof sx);
    pt_shape_str(w->ndim, w->shape, sw, sizeof sw);
    if (act != PT_LINEAR_ACT_RELU2 && act != PT_LINEAR_ACT_LEAKY_RELU2)
        return PT_FAIL(PT_ERR_VALUE, "linear_act: unknown activation %d (PT_LINEAR_ACT_RELU2 or _LEAKY_RELU2)", act);
    if (x->dtype != PT_F32 && x->dtype != PT_F64 && x->dtype != PT_BF16)
        return PT_FAIL(PT_ERR_DTYPE, "%s: x has dtype %s; expected f32, f64 (CPU, CUDA) or bf16 (CUDA); cast it first",
                       op, pt_dtype_name(x->dtype));
    PT_TRY(pt_linear_check_pair(op, x, w, "W", "[out, in]", "in"));
    if (act == PT_LINEAR_ACT_LEAKY_RELU2 && !isfinite(slope))
        return PT_FAIL(PT_ERR_VALUE, "%s: slope must be finite, got %g", op, slope);
    const int64_t M = pt_tensor_rows(x), N = w->shape[0], K = w->shape[1];
    if (M > INT_MAX || N > INT_MAX || K > INT_MAX)
        return PT_FAIL(PT_ERR_UNSUPPORTED, "%s: x %s, W %s: rows %lld, out %lld or in %lld is larger than %d, which "
                                           "does not fit a BLAS int", op, sx, sw, (long long)M, (long long)N,
                       (long long)K, INT_MAX);
    return PT_OK;
}

/* ---------------- forward ---------------- */
pt_status pt_linear_act(pt_tensor **out, pt_tensor *x, pt_tensor *W, pt_linear_act_kind act, double slope) {
    *out = NULL;
    const char *op = la_name((int)act);
    PT_TRY(la_check(op, x, W, (int)act, slope));
    const pt_device dev = x->device;
    const pt_dtype dt = x->dtype;
    pt_linear_act_kernel k = (pt_linear_act_kernel)pt_kernel_find("linear_act", dev.type, dt);
    if (!k) return pt_kernel_missing("linear_act", dev.type, dt);
    if (act == PT_LINEAR_ACT_RELU2) slope = 0;
    const int64_t M = pt_tensor_rows(x), N = W->shape[0], K = W->shape[1];
    int64_t oshape[PT_MAX_DIMS];
    memcpy(oshape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    oshape[x->ndim - 1] = N;
    pt_tensor *xc = NULL, *wc = NULL, *h = NULL;
    pt_status st = pt_tensor_contiguous_raw(&xc, x);
    if (!st) st = pt_tensor_contiguous_raw(&wc, W);
    if (!st && K == 0) { /* nothing to sum: h = 0 and act(0) = 0 */
        st = pt_tensor_zeros(&h, dt, dev, x->ndim, oshape);
        if (!st) st = pt_tensor_zeros(out, dt, dev, x->ndim, oshape);
    } else if (!st) {
        st = pt_tensor_empty(&h, dt, dev, x->ndim, oshape);
        if (!st) st = pt_tensor_empty(out, dt, dev, x->ndim, oshape);
        if (!st && M * N > 0) {
            pt_linear_act_args a = {.act = (int)act, .slope = slope, .m = M, .n = N, .k = K,
                                    .x = pt_tensor_data(xc), .w = pt_tensor_data(wc), .h = pt_tensor_data(h),
                                    .out = pt_tensor_data(*out)};
            st = k(&a);
        }
    }
    pt_node *node = NULL;
    pt_tensor *in[2] = {x, W}, *saved[3] = {xc, wc, h};
    if (!st) st = pt_autograd_record(*out, op, la_bwd, 2, in, 3, saved, &node);
    if (!st && node) {
        node->i[0] = act;
        node->f[0] = slope;
    }
    pt_tensor_release(xc);
    pt_tensor_release(wc);
    pt_tensor_release(h);
    if (st) {
        pt_tensor_release(*out);
        *out = NULL;
    }
    return st;
}
