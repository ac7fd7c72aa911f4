/* matmul.c — op fronts of the matmul / linear algebra family: pt_matmul (torch.matmul semantics:
 * 1-D operands are promoted and the promoted dim removed from the result, batch dims broadcast),
 * pt_qr, pt_cholesky, pt_inverse. Checks (errors name the op and both shapes), the GEMM plan handed
 * to the kernels of pt_matmul.h, dispatch, and the autograd backward.
 *
 * GEMM plan: an operand whose last two dims are row-major or column-major (any batch strides,
 * including 0 for expanded dims) is passed without a copy (a transposed view becomes a BLAS
 * transpose flag); other layouts are copied to contiguous first. [.., M, K] · [K, N] with a
 * contiguous left operand is folded into one [(..)·M, K] · [K, N] GEMM.
 * Backward: gA = g · Bᵀ, gB = Aᵀ · g, with broadcast batch dims summed back (pt_sum_to_shape) and
 * [.., M, K]ᵀ · [.., M, N] folded into one GEMM when B has no batch dims. x · W:transpose(1, 2)
 * (a linear layer) records W itself and computes dW = gᵀ · x in W's layout (pt_mm_transposed_weight).
 * inverse: gA = -Yᵀ g Yᵀ.
 * QR and Cholesky are not differentiable: a backward through them is an error that says so.
 *
 * Tests: tests/c/test_matmul.c (exact values, errors, f64 gradient checks),
 * tests/reference/test_ops_torch.py (random inputs against PyTorch).
 */
#include <limits.h> /* INT_MAX */
#include <stdio.h>  /* snprintf */
#include <stdlib.h> /* malloc, free */
#include <string.h> /* memcpy, memset */

#include "pt_dispatch.h"
#include "pt_matmul.h"
#include "pt_ops.h"

static pt_status pt_fail_release(pt_tensor **out, pt_status st) {
    if (st) {
        pt_tensor_release(*out);
        *out = NULL;
    }
    return st;
}

/* Can the last two dims of t (R x C) go to BLAS as they are? trans = 1: stored column-major. */
static int pt_mm_layout(const pt_tensor *t, int *trans, int64_t *ld) {
    int nd = t->ndim;
    int64_t R = t->shape[nd - 2], C = t->shape[nd - 1], sr = t->stride[nd - 2], sc = t->stride[nd - 1];
    int64_t mc = C > 1 ? C : 1, mr = R > 1 ? R : 1;
    if ((sc == 1 || C == 1) && (R == 1 || sr >= mc)) {
        *trans = 0;
        *ld = R == 1 ? mc : sr;
        return *ld <= INT_MAX;
    }
    if ((sr == 1 || R == 1) && (C == 1 || sc >= mr)) {
        *trans = 1;
        *ld = C == 1 ? mr : sc;
        return *ld <= INT_MAX;
    }
    return 0;
}

/* View of t with a 1 inserted at dim (0 or ndim) — a raw view, no autograd. */
static pt_status pt_mm_promote(pt_tensor **out, pt_tensor *t, int front) {
    int64_t shape[2], stride[2];
    int64_t s = t->stride[0];
    if (front) {
        shape[0] = 1; shape[1] = t->shape[0];
        stride[0] = t->shape[0] * s; stride[1] = s;
    } else {
        shape[0] = t->shape[0]; shape[1] = 1;
        stride[0] = s; stride[1] = 1;
    }
    return pt_tensor_view_of(out, t, 2, shape, stride, t->offset);
}

static pt_status pt_matmul_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin);

/* x · Wᵀ (a linear layer): b is the 2-d transpose view of a 2-d W (b = W:transpose(1, 2), its
 * grad_fn the permute {1, 0} of W, no retain_grad on b). Returns W, else NULL. The matmul node then
 * takes W itself as its second input and its backward computes dW = gᵀ · x, [N, K] in W's own
 * layout, instead of dB = xᵀ · g followed by the permute backward's transposed view, which the
 * gradient accumulation would copy to contiguous (a strided transpose of every weight gradient). */
static pt_tensor *pt_mm_transposed_weight(const pt_tensor *a, const pt_tensor *b) {
    if (a->ndim < 2 || b->ndim != 2 || b->retain_grad || !b->grad_fn) return NULL;
    const pt_node *n = b->grad_fn;
    if (strcmp(n->name, "permute") != 0 || n->n_inputs != 1 || !n->inputs[0]) return NULL;
    pt_tensor *w = n->inputs[0];
    if (w->ndim != 2 || n->i[0] != 1 || n->i[1] != 0) return NULL;
    if (w->shape[0] != b->shape[1] || w->shape[1] != b->shape[0]) return NULL;
    return w;
}

void pt_matmul_2d(pt_matmul_kernel mm, int64_t m, int64_t n, int64_t k, const void *a, int ta, int64_t lda,
                  const void *b, int tb, int64_t ldb, void *out) {
    pt_matmul_args g;
    memset(&g, 0, sizeof g);
    g.batch = 1;
    g.m = m;
    g.n = n;
    g.k = k;
    g.a = a;
    g.ta = ta;
    g.lda = lda;
    g.b = b;
    g.tb = tb;
    g.ldb = ldb;
    g.out = out;
    mm(&g);
}

/* The computation on promoted (>= 2-d) operands; out already allocated with numel B*M*N. */
static pt_status pt_matmul_run(pt_tensor *out, pt_tensor *a2, pt_tensor *b2, int bn, const int64_t *bshape) {
    pt_matmul_kernel kern = (pt_matmul_kernel)pt_kernel_find("matmul", out->device.type, out->dtype);
    if (!kern) return pt_kernel_missing("matmul", out->device.type, out->dtype);
    int64_t M = a2->shape[a2->ndim - 2], K = a2->shape[a2->ndim - 1], N = b2->shape[b2->ndim - 1];
    int64_t batch = pt_shape_numel(bn, bshape);
    if (batch * M * N == 0) return PT_OK;
    if (K == 0) return pt_tensor_fill_(out, 0.0);
    pt_tensor *ac = NULL, *bc = NULL;
    pt_matmul_args g;
    memset(&g, 0, sizeof g);
    int64_t lda, ldb;
    int ta, tb;
    pt_status st = PT_OK;
    if (pt_mm_layout(a2, &ta, &lda)) {
        ac = a2;
        pt_tensor_retain(ac);
    } else {
        st = pt_tensor_contiguous_raw(&ac, a2);
        ta = 0;
        lda = K;
    }
    if (!st && pt_mm_layout(b2, &tb, &ldb)) {
        bc = b2;
        pt_tensor_retain(bc);
    } else if (!st) {
        st = pt_tensor_contiguous_raw(&bc, b2);
        tb = 0;
        ldb = N;
    }
    if (st) goto done;
    g.m = M; g.n = N; g.k = K;
    g.ta = ta; g.tb = tb;
    g.lda = lda; g.ldb = ldb;
    g.a = pt_tensor_data(ac);
    g.b = pt_tensor_data(bc);
    g.out = pt_tensor_data(out);
    g.batch = batch;
    if (M > INT_MAX || N > INT_MAX || K > INT_MAX) {
        st = PT_FAIL(PT_ERR_UNSUPPORTED, "matmul: a dimension larger than %d (M=%lld N=%lld K=%lld) does not fit BLAS",
                     INT_MAX, (long long)M, (long long)N, (long long)K);
        goto done;
    }
    if (b2->ndim == 2 && !ta && pt_tensor_is_contiguous(ac) && batch * M <= INT_MAX) {
        g.m = batch * M; /* fold the batch into the rows of one GEMM */
        g.batch = 1;
        kern(&g);
        goto done;
    }
    if (batch > 1) {
        int64_t *off = malloc(sizeof(int64_t) * (size_t)batch * 2);
        if (!off) {
            st = PT_FAIL(PT_ERR_OOM, "matmul: out of host memory for %lld batch offsets", (long long)batch);
            goto done;
        }
        int an = ac->ndim - 2, bnd = bc->ndim - 2;
        for (int64_t i = 0; i < batch; i++) {
            int64_t r = i, oa = 0, ob = 0;
            for (int d = bn - 1; d >= 0; d--) {
                int64_t id = r % bshape[d];
                r /= bshape[d];
                int da = d - (bn - an), db = d - (bn - bnd);
                if (da >= 0 && ac->shape[da] != 1) oa += id * ac->stride[da];
                if (db >= 0 && bc->shape[db] != 1) ob += id * bc->stride[db];
            }
            off[i] = oa;
            off[batch + i] = ob;
        }
        g.aoff = off;
        g.boff = off + batch;
        kern(&g);
        free(off);
    } else {
        kern(&g);
    }
done:
    pt_tensor_release(ac);
    pt_tensor_release(bc);
    return st;
}

pt_status pt_matmul(pt_tensor **out, pt_tensor *a, pt_tensor *b) {
    *out = NULL;
    char sa[128], sb[128];
    PT_TRY(pt_check_same_device("matmul", a, b));
    if (a->ndim == 0 || b->ndim == 0)
        return PT_FAIL(PT_ERR_SHAPE, "matmul: both operands need at least 1 dim, got shapes %s and %s",
                       pt_shape_str(a->ndim, a->shape, sa, sizeof sa), pt_shape_str(b->ndim, b->shape, sb, sizeof sb));
    /* bf16 wherever the device has a bf16 matmul kernel (CUDA; the CPU's widens to f32: cpu/bf16.c) */
    if (!(a->dtype == PT_BF16 && pt_kernel_find("matmul", a->device.type, PT_BF16))) PT_TRY(pt_check_float("matmul", a));
    if (!(b->dtype == PT_BF16 && pt_kernel_find("matmul", b->device.type, PT_BF16))) PT_TRY(pt_check_float("matmul", b));
    if (a->dtype != b->dtype)
        return PT_FAIL(PT_ERR_DTYPE, "matmul: dtypes differ (%s and %s); cast one operand first",
                       pt_dtype_name(a->dtype), pt_dtype_name(b->dtype));
    pt_tensor *a2 = NULL, *b2 = NULL;
    pt_status st = PT_OK;
    if (a->ndim == 1) st = pt_mm_promote(&a2, a, 1);
    else pt_tensor_retain(a2 = a);
    if (!st && b->ndim == 1) st = pt_mm_promote(&b2, b, 0);
    else if (!st) pt_tensor_retain(b2 = b);
    if (st) goto done;
    int64_t K = a2->shape[a2->ndim - 1];
    if (b2->shape[b2->ndim - 2] != K) {
        st = PT_FAIL(PT_ERR_SHAPE, "matmul: shapes %s and %s do not fit (inner dims %lld and %lld differ)",
                     pt_shape_str(a->ndim, a->shape, sa, sizeof sa), pt_shape_str(b->ndim, b->shape, sb, sizeof sb),
                     (long long)K, (long long)b2->shape[b2->ndim - 2]);
        goto done;
    }
    int bn;
    int64_t bshape[PT_MAX_DIMS], oshape[PT_MAX_DIMS + 2];
    st = pt_broadcast_shape("matmul (batch dims)", a2->ndim - 2, a2->shape, b2->ndim - 2, b2->shape, &bn, bshape);
    if (st) {
        pt_error_context(st, "matmul of %s and %s", pt_shape_str(a->ndim, a->shape, sa, sizeof sa),
                         pt_shape_str(b->ndim, b->shape, sb, sizeof sb));
        goto done;
    }
    int on = bn;
    memcpy(oshape, bshape, sizeof(int64_t) * (size_t)bn);
    if (a->ndim > 1) oshape[on++] = a2->shape[a2->ndim - 2];
    if (b->ndim > 1) oshape[on++] = b2->shape[b2->ndim - 1];
    if (on > PT_MAX_DIMS) {
        st = PT_FAIL(PT_ERR_SHAPE, "matmul: result would have %d dims (max %d)", on, PT_MAX_DIMS);
        goto done;
    }
    st = pt_tensor_empty(out, a->dtype, a->device, on, oshape);
    if (!st) st = pt_matmul_run(*out, a2, b2, bn, bshape);
    if (!st) {
        pt_tensor *w = pt_mm_transposed_weight(a, b);
        pt_tensor *in[2] = {a, w ? w : b};
        pt_node *node = NULL;
        st = pt_autograd_record(*out, "matmul", pt_matmul_bwd, 2, in, 0, NULL, &node);
        if (!st && node) node->i[0] = w != NULL;
    }
done:
    pt_tensor_release(a2);
    pt_tensor_release(b2);
    return pt_fail_release(out, st);
}

/* gA = g · Bᵀ, gB = Aᵀ · g on the promoted shapes, summed back to the input shapes. */
pt_status pt_linear_check_pair(const char *op, const pt_tensor *x, const pt_tensor *w, const char *wname,
                               const char *wdims, const char *in) {
    char sx[128], sw[128], a[32], b[32];
    pt_shape_str(x->ndim, x->shape, sx, sizeof sx);
    pt_shape_str(w->ndim, w->shape, sw, sizeof sw);
    if (w->dtype != x->dtype)
        return PT_FAIL(PT_ERR_DTYPE, "%s: %s has dtype %s but x has %s; cast them to one dtype", op, wname,
                       pt_dtype_name(w->dtype), pt_dtype_name(x->dtype));
    if (!pt_device_eq(w->device, x->device))
        return PT_FAIL(PT_ERR_VALUE, "%s: %s is on %s but x is on %s", op, wname, pt_device_str(w->device, a, sizeof a),
                       pt_device_str(x->device, b, sizeof b));
    if (x->ndim < 1) return PT_FAIL(PT_ERR_SHAPE, "%s: x must be [..., %s], got a scalar", op, in);
    if (w->ndim != 2 || w->shape[1] != x->shape[x->ndim - 1])
        return PT_FAIL(PT_ERR_SHAPE, "%s: x %s and %s %s do not fit: %s must be %s with %s = %lld, the last dim of x",
                       op, sx, wname, sw, wname, wdims, in, (long long)x->shape[x->ndim - 1]);
    return PT_OK;
}

pt_status pt_linear_backward(pt_tensor *a, pt_tensor *w, pt_tensor *g, pt_tensor **da, pt_tensor **dw) {
    pt_tensor *t = NULL, *s = NULL, *af = NULL, *gf = NULL;
    pt_status st = PT_OK;
    if (da) { /* dA = g · W (the transpose of Wᵀ) */
        st = pt_matmul(&s, g, w);
        if (!st) st = pt_reshape(da, s, a->ndim, a->shape);
        pt_tensor_release(s);
        s = NULL;
    }
    if (!st && dw) { /* dW = gᵀ · A over the folded rows: [N, M] · [M, K] */
        /* explicit row counts, not -1: a reshape cannot infer a dim next to a zero-size one */
        const int64_t rows = pt_tensor_rows(a);
        int64_t fa[2] = {rows, a->shape[a->ndim - 1]}, fg[2] = {rows, g->shape[g->ndim - 1]};
        st = pt_reshape(&af, a, 2, fa);
        if (!st) st = pt_reshape(&gf, g, 2, fg);
        if (!st) st = pt_transpose(&t, gf, 0, 1);
        if (!st) st = pt_matmul(&s, t, af);
        if (!st) st = pt_reshape(dw, s, w->ndim, w->shape);
    }
    pt_tensor_release(t);
    pt_tensor_release(s);
    pt_tensor_release(af);
    pt_tensor_release(gf);
    return st;
}

static pt_status pt_matmul_wt_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin) {
    return pt_linear_backward(node->inputs[0], node->inputs[1], g, pt_node_needs_grad(node, 0) ? &gin[0] : NULL,
                              pt_node_needs_grad(node, 1) ? &gin[1] : NULL);
}

static pt_status pt_matmul_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin) {
    if (node->i[0]) return pt_matmul_wt_bwd(node, g, gin);
    pt_tensor *a = node->inputs[0], *b = node->inputs[1];
    pt_tensor *a2 = NULL, *b2 = NULL, *g2 = NULL, *t = NULL, *p = NULL, *s = NULL, *af = NULL, *gf = NULL;
    pt_status st = a->ndim == 1 ? pt_unsqueeze(&a2, a, 0) : (pt_tensor_retain(a2 = a), PT_OK);
    if (!st) st = b->ndim == 1 ? pt_unsqueeze(&b2, b, 1) : (pt_tensor_retain(b2 = b), PT_OK);
    if (!st) { /* g with the promoted dims put back: [batch.., M, N] */
        int64_t gs[PT_MAX_DIMS + 2];
        int gn = g->ndim;
        memcpy(gs, g->shape, sizeof(int64_t) * (size_t)gn);
        if (a->ndim == 1 && b->ndim == 1) {
            gn = 0;
            gs[gn++] = 1;
            gs[gn++] = 1;
        } else if (a->ndim == 1) {
            gs[gn] = gs[gn - 1];
            gs[gn - 1] = 1;
            gn++;
        } else if (b->ndim == 1) {
            gs[gn++] = 1;
        }
        st = pt_reshape(&g2, g, gn, gs);
    }
    if (!st && pt_node_needs_grad(node, 0)) {
        st = pt_transpose(&t, b2, -1, -2);
        if (!st) st = pt_matmul(&p, g2, t);
        if (!st) st = pt_sum_to_shape(&s, p, a2->ndim, a2->shape);
        if (!st) st = pt_reshape(&gin[0], s, a->ndim, a->shape);
        pt_tensor_release(t);
        pt_tensor_release(p);
        pt_tensor_release(s);
        t = p = s = NULL;
    }
    if (!st && pt_node_needs_grad(node, 1)) {
        if (b2->ndim == 2 && a2->ndim > 2) { /* fold the batch: [K, B*M] · [B*M, N] */
            int64_t fa[2] = {-1, a2->shape[a2->ndim - 1]}, fg[2] = {-1, g2->shape[g2->ndim - 1]};
            st = pt_reshape(&af, a2, 2, fa);
            if (!st) st = pt_reshape(&gf, g2, 2, fg);
            if (!st) st = pt_transpose(&t, af, 0, 1);
            if (!st) st = pt_matmul(&s, t, gf);
        } else {
            st = pt_transpose(&t, a2, -1, -2);
            if (!st) st = pt_matmul(&p, t, g2);
            if (!st) st = pt_sum_to_shape(&s, p, b2->ndim, b2->shape);
        }
        if (!st) st = pt_reshape(&gin[1], s, b->ndim, b->shape);
    }
    pt_tensor_release(a2);
    pt_tensor_release(b2);
    pt_tensor_release(g2);
    pt_tensor_release(t);
    pt_tensor_release(p);
    pt_tensor_release(s);
    pt_tensor_release(af);
    pt_tensor_release(gf);
    return st;
}

/* ---------------- linear algebra ---------------- */
static pt_status pt_not_differentiable_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin) {
    (void)g;
    (void)gin;
    return PT_FAIL(PT_ERR_UNSUPPORTED, "%s: backward is not implemented (the op is not differentiable in proteus); "
                                       "detach its input or compute it under no_grad",
                   node->name);
}

static pt_status pt_linalg_kernel_find(pt_linalg_kernel *k, const char *name, const pt_tensor *a) {
    *k = (pt_linalg_kernel)pt_kernel_find(name, a->device.type, a->dtype);
    if (!*k) return pt_kernel_missing(name, a->device.type, a->dtype);
    return PT_OK;
}

/* the LAPACK status of a kernel as an error (info > 0 is handled by the caller) */
static pt_status pt_linalg_status(const char *op, int info) {
    if (info == -1) return PT_FAIL(PT_ERR_OOM, "%s: out of host memory for the LAPACK workspace", op);
    return PT_FAIL(PT_ERR_VALUE, "%s: LAPACK rejected argument %d (a bug in proteus)", op, -info - 1);
}

pt_status pt_qr(pt_tensor **q, pt_tensor **r, pt_tensor *a) {
    *q = *r = NULL;
    char sa[128];
    PT_TRY(pt_check_float("qr", a));
    if (a->ndim != 2)
        return PT_FAIL(PT_ERR_SHAPE, "qr: expected a 2-d matrix, got shape %s (batched QR is not supported)",
                       pt_shape_str(a->ndim, a->shape, sa, sizeof sa));
    int64_t M = a->shape[0], N = a->shape[1], KK = M < N ? M : N;
    if (M > INT_MAX / (N > 0 ? N : 1))
        return PT_FAIL(PT_ERR_UNSUPPORTED, "qr: matrix %s is too large for LAPACK", pt_shape_str(2, a->shape, sa, sizeof sa));
    pt_linalg_kernel k;
    PT_TRY(pt_linalg_kernel_find(&k, "qr", a));
    int64_t qs[2] = {M, KK}, rs[2] = {KK, N};
    pt_tensor *ac = NULL;
    pt_status st = pt_tensor_contiguous_raw(&ac, a);
    if (!st) st = pt_tensor_empty(q, a->dtype, a->device, 2, qs);
    if (!st) st = pt_tensor_empty(r, a->dtype, a->device, 2, rs);
    if (!st && KK > 0) {
        pt_linalg_args g;
        memset(&g, 0, sizeof g);
        g.batch = 1;
        g.m = M;
        g.n = N;
        g.a = pt_tensor_data(ac);
        g.q = pt_tensor_data(*q);
        g.r = pt_tensor_data(*r);
        int info = k(&g);
        if (info) st = pt_linalg_status("qr", info);
    }
    pt_tensor_release(ac);
    if (!st) st = pt_autograd_record(*q, "qr", pt_not_differentiable_bwd, 1, &a, 0, NULL, NULL);
    if (!st) st = pt_autograd_record(*r, "qr", pt_not_differentiable_bwd, 1, &a, 0, NULL, NULL);
    if (st) {
        pt_fail_release(q, st);
        pt_fail_release(r, st);
    }
    return st;
}

/* checks a [..., N, N] float matrix and returns a contiguous copy to work on in place */
static pt_status pt_square_copy(pt_tensor **out, const char *op, pt_tensor *a, int64_t *batch) {
    char sa[128];
    PT_TRY(pt_check_float(op, a));
    if (a->ndim < 2 || a->shape[a->ndim - 1] != a->shape[a->ndim - 2])
        return PT_FAIL(PT_ERR_SHAPE, "%s: expected a square matrix (or a batch of them), got shape %s", op,
                       pt_shape_str(a->ndim, a->shape, sa, sizeof sa));
    if (a->shape[a->ndim - 1] > 46340)
        return PT_FAIL(PT_ERR_UNSUPPORTED, "%s: matrix %s is too large for LAPACK", op,
                       pt_shape_str(a->ndim, a->shape, sa, sizeof sa));
    *batch = pt_shape_numel(a->ndim - 2, a->shape);
    return pt_tensor_to(out, a, a->dtype, a->device, 1);
}

/* "the matrix [3, 3]" or "matrix 2 of the batch [4, 3, 3]" */
static const char *pt_which_matrix(const pt_tensor *a, int64_t bad, char *buf, size_t n) {
    char s[128];
    pt_shape_str(a->ndim, a->shape, s, sizeof s);
    if (a->ndim == 2) snprintf(buf, n, "the matrix %s", s);
    else snprintf(buf, n, "matrix %lld of the batch %s", (long long)bad, s);
    return buf;
}

pt_status pt_cholesky(pt_tensor **out, pt_tensor *a, int upper) {
    *out = NULL;
    pt_linalg_kernel k;
    int64_t batch;
    PT_TRY(pt_check_float("cholesky", a));
    PT_TRY(pt_linalg_kernel_find(&k, "cholesky", a));
    PT_TRY(pt_square_copy(out, "cholesky", a, &batch));
    pt_status st = PT_OK;
    int64_t n = a->shape[a->ndim - 1];
    if (batch * n > 0) {
        pt_linalg_args g;
        memset(&g, 0, sizeof g);
        g.batch = batch;
        g.m = g.n = n;
        g.a = pt_tensor_data(*out);
        g.upper = upper;
        int info = k(&g);
        char w[192];
        if (info > 0)
            st = PT_FAIL(PT_ERR_VALUE, "cholesky: %s is not positive definite (its leading minor of order %d is not "
                                       "positive)", pt_which_matrix(a, g.bad, w, sizeof w), info);
        else if (info < 0)
            st = pt_linalg_status("cholesky", info);
    }
    if (!st) st = pt_autograd_record(*out, "cholesky", pt_not_differentiable_bwd, 1, &a, 0, NULL, NULL);
    return pt_fail_release(out, st);
}

static pt_status pt_inverse_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin) {
    pt_tensor *yt = NULL, *t = NULL, *u = NULL;
    pt_status st = pt_transpose(&yt, node->saved[0], -1, -2);
    if (!st) st = pt_matmul(&t, yt, g);
    if (!st) st = pt_matmul(&u, t, yt);
    if (!st) st = pt_neg(&gin[0], u);
    pt_tensor_release(yt);
    pt_tensor_release(t);
    pt_tensor_release(u);
    return st;
}

pt_status pt_inverse(pt_tensor **out, pt_tensor *a) {
    *out = NULL;
    pt_linalg_kernel k;
    int64_t batch;
    PT_TRY(pt_check_float("inverse", a));
    PT_TRY(pt_linalg_kernel_find(&k, "inverse", a));
    PT_TRY(pt_square_copy(out, "inverse", a, &batch));
    pt_status st = PT_OK;
    int64_t n = a->shape[a->ndim - 1];
    if (batch * n > 0) {
        pt_linalg_args g;
        memset(&g, 0, sizeof g);
        g.batch = batch;
        g.m = g.n = n;
        g.a = pt_tensor_data(*out);
        int info = k(&g);
        char w[192];
        if (info > 0)
            st = PT_FAIL(PT_ERR_VALUE, "inverse: %s is singular (pivot %d of its LU factorization is exactly 0)",
                         pt_which_matrix(a, g.bad, w, sizeof w), info);
        else if (info < 0)
            st = pt_linalg_status("inverse", info);
    }
    pt_tensor *y = NULL;
    if (!st) st = pt_tensor_detach(&y, *out);
    if (!st) st = pt_autograd_record(*out, "inverse", pt_inverse_bwd, 1, &a, 1, &y, NULL);
    pt_tensor_release(y);
    return pt_fail_release(out, st);
}
