/* head_ce.c — pt_linear_softcap_cross_entropy (pt_head_ce.h): the LM-head GEMM fused with the softcapped
 * cross-entropy in row chunks, forward and an autograd node whose backward recomputes each chunk's
 * logits. No kernels of its own: "matmul" (pt_matmul.h) and "softcap_ce" / "softcap_ce_bwd"
 * (pt_fused.h) come from the dispatch table, so the op runs on every device that has those.
 *
 * GEMMs (row-major, the same calls the unfused x:matmul(w:transpose(1, 2)) path makes):
 *   logits_c [n, V] = x_c [n, C] · wᵀ          (w [V, C] passed transposed, ldb = C)
 *   dx_c     [n, C] = dlogits_c [n, V] · w
 *   dw       [V, C] = dlogits_cᵀ · x_c          (dlogits_c passed transposed; summed over chunks; the
 *                                               unfused path's linear backward makes the same call)
 * Saved: x, w, targets (contiguous; shared with the caller when they already are) and lse [N].
 * The backward is not differentiable (no double backward). Tests: tests/lua/test_head_ce.lua,
 * tests/gpu/test_head_ce.lua; run: build-x/proteus tests/run.lua tests/lua/test_head_ce.lua
 */
#include <limits.h> /* INT_MAX */
#include <math.h>
#include <stdint.h>
#include <stdio.h> /* snprintf */
#include <string.h>

#include "pt_dispatch.h"
#include "pt_head_ce.h"
#include "pt_index.h" /* pt_index_check_range */
#include "pt_matmul.h"
#include "pt_ops.h"

#define HC_OP "linear_softcap_cross_entropy"

int64_t pt_head_ce_auto_chunk(int64_t V, pt_dtype dt) {
    int64_t row = V * (int64_t)pt_dtype_size(dt);
    if (row <= 0) return 1;
    int64_t n = PT_HEAD_CE_CHUNK_BYTES / row;
    return n < 1 ? 1 : n;
}

/* element `i` of a contiguous buffer of elements of `es` bytes */
static void *hc_at(const void *p, int64_t i, size_t es) { return (char *)(uintptr_t)p + i * (int64_t)es; }

/* The dtype of the cross-entropy (logits it reads, nll, lse, loss) for GEMM operands of dtype dt: bf16
 * operands (the GPT's compute_dtype = "bf16") give bf16 logits, which are widened to f32 for the CE, as
 * the unfused path's lin(bf16):to("f32") does. */
static pt_dtype hc_ce_dtype(pt_dtype dt) { return dt == PT_BF16 ? PT_F32 : dt; }

/* dst[0..m) = src[0..m) (rows of two [ck, V] buffers; the dtypes differ: a cast) */
static pt_status hc_cast_rows(pt_tensor *dst, pt_tensor *src, int64_t m) {
    const int64_t shape[2] = {m, src->shape[1]}, stride[2] = {src->shape[1], 1};
    pt_tensor *d = NULL, *s = NULL;
    pt_status st = pt_tensor_view_of(&d, dst, 2, shape, stride, 0);
    if (!st) st = pt_tensor_view_of(&s, src, 2, shape, stride, 0);
    if (!st) st = pt_tensor_copy_(d, s);
    pt_tensor_release(d);
    pt_tensor_release(s);
    return st;
}

/* ---------------- backward ---------------- */
static pt_status hc_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin) {
    pt_tensor *x = node->saved[0], *w = node->saved[1], *tc = node->saved[2], *lse = node->saved[3];
    pt_tensor *gc = NULL, *gt = NULL, *buf = NULL, *fbuf = NULL, *dbuf = NULL, *dbuf16 = NULL, *dw = NULL,
              *dwf = NULL, *part = NULL, *partf = NULL;
    const pt_device dev = x->device;
    const pt_dtype dt = x->dtype, cd = hc_ce_dtype(dt);
    const int mixed = cd != dt; /* bf16 GEMMs, f32 cross-entropy */
    pt_matmul_kernel mm = (pt_matmul_kernel)pt_kernel_find("matmul", dev.type, dt);
    if (!mm) return pt_kernel_missing("matmul", dev.type, dt);
    pt_ce_kernel ceb = (pt_ce_kernel)pt_kernel_find("softcap_ce_bwd", dev.type, cd);
    if (!ceb) return pt_kernel_missing("softcap_ce_bwd", dev.type, cd);
    const int nx = pt_node_needs_grad(node, 0), nw = pt_node_needs_grad(node, 1);
    const int64_t n = pt_tensor_rows(x), C = x->shape[x->ndim - 1], V = w->shape[0], ck = node->i[1];
    const int mean = node->i[0] == PT_CE_MEAN;
    const size_t es = pt_dtype_size(dt), ecs = pt_dtype_size(cd);
    int64_t bshape[2] = {ck, V}, wshape[2] = {V, C};
    pt_status st = pt_tensor_to(&gt, g, cd, dev, 0);
    if (!st) st = pt_tensor_contiguous_raw(&gc, gt);
    if (!st && nx) st = pt_tensor_zeros(&gin[0], dt, dev, x->ndim, x->shape);
    if (!st && nw) st = pt_tensor_zeros(&dw, dt, dev, 2, wshape);
    if (!st && nw && mixed) st = pt_tensor_zeros(&dwf, cd, dev, 2, wshape);
    if (!st && n > 0) /* C = 0: no GEMM writes the logits, they stay 0 */
        st = C > 0 ? pt_tensor_empty(&buf, dt, dev, 2, bshape) : pt_tensor_zeros(&buf, dt, dev, 2, bshape);
    if (!st && n > 0 && mixed) st = pt_tensor_empty(&fbuf, cd, dev, 2, bshape);
    if (!st && n > 0) st = pt_tensor_empty(&dbuf, cd, dev, 2, bshape);
    if (!st && n > 0 && mixed) st = pt_tensor_empty(&dbuf16, dt, dev, 2, bshape);
    if (!st && nw && C > 0 && (n > ck || mixed)) st = pt_tensor_empty(&part, dt, dev, 2, wshape);
    if (!st && nw && C > 0 && mixed && n > ck) st = pt_tensor_empty(&partf, cd, dev, 2, wshape);
    const void *xp = n > 0 ? pt_tensor_data(x) : NULL, *wp = pt_tensor_data(w);
    const int64_t *tp = n > 0 ? pt_tensor_data(tc) : NULL;
    for (int64_t r0 = 0; !st && r0 < n; r0 += ck) {
        const int64_t m = n - r0 < ck ? n - r0 : ck;
        const void *xc = hc_at(xp, r0 * C, es);
        if (C > 0) pt_matmul_2d(mm, m, V, C, xc, 0, C, wp, 1, C, pt_tensor_data(buf));
        if (mixed) st = hc_cast_rows(fbuf, buf, m);
        if (st) continue;
        pt_ce_args a = {.n = m, .V = V, .cap = node->f[0], .logits = pt_tensor_data(mixed ? fbuf : buf),
                        .targets = tp + r0, .lse = hc_at(pt_tensor_data(lse), r0, ecs),
                        .g = mean ? pt_tensor_data(gc) : hc_at(pt_tensor_data(gc), r0, ecs),
                        .gstride = mean ? 0 : 1, .gscale = mean ? 1.0 / (double)n : 1.0,
                        .dlogits = pt_tensor_data(dbuf)};
        st = ceb(&a);
        if (!st && mixed) st = hc_cast_rows(dbuf16, dbuf, m); /* the unfused path's cast node: f32 -> bf16 */
        if (st || C == 0) continue;
        const void *dl = pt_tensor_data(mixed ? dbuf16 : dbuf);
        if (nx) pt_matmul_2d(mm, m, C, V, dl, 0, V, wp, 0, C, hc_at(pt_tensor_data(gin[0]), r0 * C, es));
        if (nw && !mixed) {
            pt_matmul_2d(mm, V, C, m, dl, 1, V, xc, 0, C, pt_tensor_data(r0 == 0 ? dw : part));
            if (r0 > 0) st = pt_add_(dw, part, 1.0);
        } else if (nw) { /* bf16 chunk products summed in f32, rounded to bf16 once at the end */
            pt_matmul_2d(mm, V, C, m, dl, 1, V, xc, 0, C, pt_tensor_data(part));
            if (r0 == 0) {
                st = pt_tensor_copy_(dwf, part);
            } else {
                st = pt_tensor_copy_(partf, part);
                if (!st) st = pt_add_(dwf, partf, 1.0);
            }
        }
    }
    if (!st && nw && mixed && C > 0 && n > 0) st = pt_tensor_copy_(dw, dwf);
    if (!st && nw) { /* dw [V, C], contiguous: autograd takes it as .grad without a copy */
        gin[1] = dw;
        dw = NULL;
    }
    pt_tensor *tmp[] = {gt, gc, buf, fbuf, dbuf, dbuf16, part, partf, dw, dwf};
    for (size_t i = 0; i < sizeof tmp / sizeof tmp[0]; i++) pt_tensor_release(tmp[i]);
    if (st) { /* the caller releases nothing it did not get */
        pt_tensor_release(gin[0]);
        gin[0] = NULL;
        pt_tensor_release(gin[1]);
        gin[1] = NULL;
    }
    return st;
}

/* ---------------- checks ---------------- */
static pt_status hc_check(pt_tensor *x, pt_tensor *w, pt_tensor *targets, double softcap, int64_t chunk,
                          pt_ce_reduction reduction) {
    const char *op = HC_OP;
    char sx[128], sw[128], stg[128], a[32], b[32];
    pt_shape_str(x->ndim, x->shape, sx, sizeof sx);
    pt_shape_str(w->ndim, w->shape, sw, sizeof sw);
    pt_shape_str(targets->ndim, targets->shape, stg, sizeof stg);
    if (x->dtype != PT_F32 && x->dtype != PT_F64 && x->dtype != PT_BF16)
        return PT_FAIL(PT_ERR_DTYPE, "%s: x has dtype %s; expected f32, f64 or bf16 (cast it first)", op,
                       pt_dtype_name(x->dtype));
    PT_TRY(pt_linear_check_pair(op, x, w, "w", "[V, C]", "C"));
    if (!pt_dtype_is_int(targets->dtype) || targets->dtype == PT_BOOL)
        return PT_FAIL(PT_ERR_DTYPE, "%s: targets have dtype %s; expected integer token ids (i64, i32, u16, u8)", op,
                       pt_dtype_name(targets->dtype));
    if (targets->ndim != x->ndim - 1 || memcmp(targets->shape, x->shape, sizeof(int64_t) * (size_t)targets->ndim))
        return PT_FAIL(PT_ERR_SHAPE, "%s: targets %s must have the shape of x %s without its last dim", op, stg, sx);
    if (!pt_device_eq(targets->device, x->device))
        return PT_FAIL(PT_ERR_VALUE, "%s: targets are on %s but x is on %s", op,
                       pt_device_str(targets->device, a, sizeof a), pt_device_str(x->device, b, sizeof b));
    if (!(softcap >= 0) || !isfinite(softcap))
        return PT_FAIL(PT_ERR_VALUE, "%s: softcap must be a finite number >= 0 (0 = no cap), got %g", op, softcap);
    if (chunk < 0)
        return PT_FAIL(PT_ERR_VALUE, "%s: chunk must be >= 1 rows (0 = automatic), got %lld", op, (long long)chunk);
    if (reduction != PT_CE_MEAN && reduction != PT_CE_NONE)
        return PT_FAIL(PT_ERR_VALUE, "%s: unknown reduction %d (mean or none)", op, (int)reduction);
    const int64_t n = pt_tensor_rows(x), V = w->shape[0], C = w->shape[1];
    if (reduction == PT_CE_MEAN && n == 0)
        return PT_FAIL(PT_ERR_VALUE, "%s: reduction mean of an empty batch (x %s)", op, sx);
    if (V == 0 && n > 0) return PT_FAIL(PT_ERR_SHAPE, "%s: w %s has a vocabulary of size 0", op, sw);
    if (V > INT_MAX || C > INT_MAX)
        return PT_FAIL(PT_ERR_UNSUPPORTED, "%s: w %s has a dimension larger than %d, which does not fit BLAS", op, sw,
                       INT_MAX);
    return PT_OK;
}

/* every target in [0, V), with the device's "index_check" kernel (tc: contiguous i64 on x's device; no
 * host copy, and deferred to the next synchronisation inside a CUDA graph capture) */
static pt_status hc_check_targets(pt_tensor *tc, int64_t V, const char *stg) {
    char tmpl[512];
    snprintf(tmpl, sizeof tmpl, "%s: target {value} at position {pos} (flat index into targets %s) is out of range "
             "[0, %lld) (V = the rows of w)", HC_OP, stg, (long long)V);
    return pt_index_check_range(tc, V, tmpl);
}

/* ---------------- forward ---------------- */
pt_status pt_linear_softcap_cross_entropy(pt_tensor **out, pt_tensor *x, pt_tensor *w, pt_tensor *targets,
                                          double softcap, int64_t chunk, pt_ce_reduction reduction) {
    *out = NULL;
    PT_TRY(hc_check(x, w, targets, softcap, chunk, reduction));
    const pt_device dev = x->device;
    const pt_dtype dt = x->dtype, cd = hc_ce_dtype(dt);
    const int mixed = cd != dt;
    pt_matmul_kernel mm = (pt_matmul_kernel)pt_kernel_find("matmul", dev.type, dt);
    if (!mm) return pt_kernel_missing("matmul", dev.type, dt);
    pt_ce_kernel ce = (pt_ce_kernel)pt_kernel_find("softcap_ce", dev.type, cd);
    if (!ce) return pt_kernel_missing("softcap_ce", dev.type, cd);
    const int64_t n = pt_tensor_rows(x), V = w->shape[0], C = w->shape[1];
    const size_t es = pt_dtype_size(dt), ecs = pt_dtype_size(cd);
    int64_t ck = chunk > 0 ? chunk : pt_head_ce_auto_chunk(V, cd);
    if (ck > n) ck = n > 0 ? n : 1;
    if (ck > INT_MAX) ck = INT_MAX; /* a BLAS int */
    char stg[128];
    pt_shape_str(targets->ndim, targets->shape, stg, sizeof stg);
    pt_tensor *xc = NULL, *wc = NULL, *t64 = NULL, *tc = NULL, *nll = NULL, *lse = NULL, *buf = NULL, *fbuf = NULL;
    int64_t bshape[2] = {ck, V};
    pt_status st = pt_tensor_contiguous_raw(&xc, x);
    if (!st) st = pt_tensor_contiguous_raw(&wc, w);
    if (!st) st = pt_tensor_to(&t64, targets, PT_I64, targets->device, 0);
    if (!st) st = pt_tensor_contiguous_raw(&tc, t64);
    if (!st) st = hc_check_targets(tc, V, stg);
    if (!st) st = pt_tensor_zeros(&nll, cd, dev, targets->ndim, targets->shape);
    if (!st) st = pt_tensor_zeros(&lse, cd, dev, 1, &n);
    if (!st && n > 0) /* C = 0: no GEMM writes the logits, they stay 0 */
        st = C > 0 ? pt_tensor_empty(&buf, dt, dev, 2, bshape) : pt_tensor_zeros(&buf, dt, dev, 2, bshape);
    if (!st && n > 0 && mixed) st = pt_tensor_empty(&fbuf, cd, dev, 2, bshape);
    const void *xp = n > 0 ? pt_tensor_data(xc) : NULL, *wp = pt_tensor_data(wc);
    const int64_t *tp = n > 0 ? pt_tensor_data(tc) : NULL;
    for (int64_t r0 = 0; !st && r0 < n; r0 += ck) {
        const int64_t m = n - r0 < ck ? n - r0 : ck;
        if (C > 0) pt_matmul_2d(mm, m, V, C, hc_at(xp, r0 * C, es), 0, C, wp, 1, C, pt_tensor_data(buf));
        if (mixed) st = hc_cast_rows(fbuf, buf, m);
        if (st) break;
        pt_ce_args a = {.n = m, .V = V, .cap = softcap, .logits = pt_tensor_data(mixed ? fbuf : buf),
                        .targets = tp + r0, .nll = hc_at(pt_tensor_data(nll), r0, ecs),
                        .lse = hc_at(pt_tensor_data(lse), r0, ecs)};
        st = ce(&a);
    }
    if (!st && reduction == PT_CE_MEAN) { /* f64 sum in row order, as pt_softcap_cross_entropy */
        st = pt_ce_mean(out, nll);
    } else if (!st) {
        *out = nll;
        nll = NULL;
    }
    pt_node *node = NULL;
    pt_tensor *in[2] = {x, w}, *saved[4] = {xc, wc, tc, lse};
    if (!st) st = pt_autograd_record(*out, HC_OP, hc_bwd, 2, in, 4, saved, &node);
    if (!st && node) {
        node->i[0] = reduction;
        node->i[1] = ck;
        node->f[0] = softcap;
    }
    pt_tensor_release(xc);
    pt_tensor_release(wc);
    pt_tensor_release(t64);
    pt_tensor_release(tc);
    pt_tensor_release(nll);
    pt_tensor_release(lse);
    pt_tensor_release(buf);
    pt_tensor_release(fbuf);
    if (st) {
        pt_tensor_release(*out);
        *out = NULL;
    }
    return st;
}
