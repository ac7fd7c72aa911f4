/* index.c — op fronts of the indexing family (declared in pt_ops.h): index_select, gather,
 * scatter_add, embedding. Each checks dtypes and shapes (errors name the op and both shapes),
 * checks every index against its valid range (PT_ERR_INDEX naming the value, its flat position in
 * the index tensor and the range; pt_index_check_range, which the cross-entropy ops use for their
 * targets too: on CUDA inside a graph capture the check is deferred to the next synchronisation),
 * then runs the (op, device, dtype) kernel of pt_index.h and records the autograd node.
 *
 * Semantics follow torch: indices must be in [0, size) (no negative wrap-around); gather and
 * scatter_add need index.ndim == input.ndim with index.size(d) <= input.size(d) for d != dim (and
 * <= src.size(d) for every d in scatter_add). Gradients: index_select / embedding -> index_add of g
 * into zeros; gather -> scatter_add of g into zeros; scatter_add -> (g, gather(g)). Indices never
 * get a gradient.
 * Tests: tests/c/test_index.c (exact values, errors, f64 finite-difference gradient checks).
 */
#include <stdio.h>  /* snprintf */
#include <string.h> /* memcpy, memset */

#include "pt_dispatch.h"
#include "pt_index.h"
#include "pt_ops.h"

static pt_status pt_idx_fail(pt_tensor **out, pt_status st) {
    if (st && out) {
        pt_tensor_release(*out);
        *out = NULL;
    }
    return st;
}

static pt_status pt_check_index_dtype(const char *op, const pt_tensor *idx) {
    if (!pt_dtype_is_int(idx->dtype) || idx->dtype == PT_BOOL)
        return PT_FAIL(PT_ERR_DTYPE, "%s: indices must be an integer tensor (i64, i32, u16, i8, u8), got %s", op,
                       pt_dtype_name(idx->dtype));
    return PT_OK;
}

void pt_index_format_check(char *buf, size_t n, const char *tmpl, int64_t value, int64_t pos) {
    static const char kv[] = "{value}", kp[] = "{pos}";
    size_t w = 0;
    if (n == 0) return;
    while (*tmpl && w + 1 < n) {
        char num[24];
        const char *ins = NULL;
        if (strncmp(tmpl, kv, sizeof kv - 1) == 0) {
            snprintf(num, sizeof num, "%lld", (long long)value);
            ins = num;
            tmpl += sizeof kv - 1;
        } else if (strncmp(tmpl, kp, sizeof kp - 1) == 0) {
            snprintf(num, sizeof num, "%lld", (long long)pos);
            ins = num;
            tmpl += sizeof kp - 1;
        }
        if (ins) {
            for (; *ins && w + 1 < n; ins++) buf[w++] = *ins;
        } else {
            buf[w++] = *tmpl++;
        }
    }
    buf[w] = 0;
}

pt_status pt_index_check_range(const pt_tensor *idx, int64_t limit, const char *tmpl) {
    int64_t n = pt_tensor_numel(idx);
    if (n == 0) return PT_OK;
    pt_index_check_kernel k = (pt_index_check_kernel)pt_kernel_find("index_check", idx->device.type, idx->dtype);
    if (!k) return pt_kernel_missing("index_check", idx->device.type, idx->dtype);
    int64_t bad = 0;
    int64_t pos = k(pt_tensor_data(idx), n, limit, &bad, tmpl);
    if (pos >= 0) {
        char msg[1024];
        pt_index_format_check(msg, sizeof msg, tmpl, bad, pos);
        return PT_FAIL(PT_ERR_INDEX, "%s", msg);
    }
    return PT_OK;
}

/* Checks idx (contiguous) against [0, limit). `what` completes "out of range for ..." */
static pt_status pt_check_indices(const char *op, const pt_tensor *idx, int64_t limit, const char *what) {
    char tmpl[512];
    snprintf(tmpl, sizeof tmpl, "%s: index {value} at position {pos} is out of range for %s (valid 0..%lld)", op,
             what, (long long)limit - 1);
    return pt_index_check_range(idx, limit, tmpl);
}

static void pt_odi(const pt_tensor *a, int dim, int64_t *outer, int64_t *inner) {
    *outer = 1;
    *inner = 1;
    for (int d = 0; d < dim; d++) *outer *= a->shape[d];
    for (int d = dim + 1; d < a->ndim; d++) *inner *= a->shape[d];
}

/* out[O, D, I] (zeros) += src[O, N, I] at idx: the backward of index_select and embedding */
static pt_status pt_index_add_into(pt_tensor *out, pt_tensor *src, pt_tensor *idx, int dim) {
    pt_isel_kernel k = (pt_isel_kernel)pt_kernel_find("index_add", out->device.type, out->dtype);
    if (!k) return pt_kernel_missing("index_add", out->device.type, out->dtype);
    pt_tensor *sc = NULL;
    PT_TRY(pt_tensor_to(&sc, src, out->dtype, out->device, 0));
    pt_tensor *scc = NULL;
    pt_status st = pt_tensor_contiguous_raw(&scc, sc);
    pt_tensor_release(sc);
    if (st) return st;
    pt_isel_args g;
    memset(&g, 0, sizeof g);
    pt_odi(out, dim, &g.outer, &g.inner);
    g.dim_size = out->shape[dim];
    g.n_idx = pt_tensor_numel(idx);
    g.esize = pt_dtype_size(out->dtype);
    g.src = pt_tensor_data(scc);
    g.out = pt_tensor_data(out);
    g.idx = pt_tensor_data(idx);
    g.idx_dtype = idx->dtype;
    if (g.outer * g.n_idx * g.inner > 0) k(&g);
    pt_tensor_release(scc);
    return PT_OK;
}

/* ---------------- index_select ---------------- */
static pt_status pt_index_select_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin) {
    pt_tensor *a = node->inputs[0], *idx = node->saved[0];
    int dim = (int)node->i[0];
    PT_TRY(pt_tensor_zeros(&gin[0], g->dtype, g->device, a->ndim, a->shape));
    return pt_idx_fail(&gin[0], pt_index_add_into(gin[0], g, idx, dim));
}

pt_status pt_index_select(pt_tensor **out, pt_tensor *a, int dim, pt_tensor *idx) {
    *out = NULL;
    PT_TRY(pt_check_same_device("index_select", a, idx));
    PT_TRY(pt_check_index_dtype("index_select", idx));
    if (idx->ndim > 1) {
        char b[128];
        return PT_FAIL(PT_ERR_SHAPE, "index_select: indices must be 0-d or 1-d, got shape %s",
                       pt_shape_str(idx->ndim, idx->shape, b, sizeof b));
    }
    if (a->ndim == 0) return PT_FAIL(PT_ERR_SHAPE, "index_select: input must have at least one dim, got a 0-d tensor");
    PT_TRY(pt_norm_dim("index_select", a->ndim, &dim));
    pt_tensor *ic = NULL, *ac = NULL;
    PT_TRY(pt_tensor_contiguous_raw(&ic, idx));
    char what[200], sh[128];
    snprintf(what, sizeof what, "dim %d of size %lld (input shape %s)", dim, (long long)a->shape[dim],
             pt_shape_str(a->ndim, a->shape, sh, sizeof sh));
    pt_status st = pt_check_indices("index_select", ic, a->shape[dim], what);
    pt_isel_kernel k = NULL;
    if (!st) {
        k = (pt_isel_kernel)pt_kernel_find("index_select", a->device.type, a->dtype);
        if (!k) st = pt_kernel_missing("index_select", a->device.type, a->dtype);
    }
    if (!st) st = pt_tensor_contiguous_raw(&ac, a);
    int64_t shape[PT_MAX_DIMS];
    memcpy(shape, a->shape, sizeof(int64_t) * (size_t)a->ndim);
    shape[dim] = pt_tensor_numel(ic);
    if (!st) st = pt_tensor_empty(out, a->dtype, a->device, a->ndim, shape);
    if (!st) {
        pt_isel_args g;
        memset(&g, 0, sizeof g);
        pt_odi(a, dim, &g.outer, &g.inner);
        g.dim_size = a->shape[dim];
        g.n_idx = shape[dim];
        g.esize = pt_dtype_size(a->dtype);
        g.src = pt_tensor_data(ac);
        g.out = pt_tensor_data(*out);
        g.idx = pt_tensor_data(ic);
        g.idx_dtype = ic->dtype;
        if (pt_tensor_numel(*out) > 0) k(&g);
    }
    if (!st && pt_dtype_is_float(a->dtype)) {
        pt_node *node;
        st = pt_autograd_record(*out, "index_select", pt_index_select_bwd, 1, &a, 1, &ic, &node);
        if (!st && node) node->i[0] = dim;
    }
    pt_tensor_release(ic);
    pt_tensor_release(ac);
    return pt_idx_fail(out, st);
}

/* ---------------- embedding ---------------- */
static pt_status pt_embedding_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin) {
    pt_tensor *w = node->inputs[0], *idx = node->saved[0];
    PT_TRY(pt_tensor_zeros(&gin[0], g->dtype, g->device, 2, w->shape));
    return pt_idx_fail(&gin[0], pt_index_add_into(gin[0], g, idx, 0));
}

pt_status pt_embedding(pt_tensor **out, pt_tensor *weight, pt_tensor *idx) {
    *out = NULL;
    PT_TRY(pt_check_same_device("embedding", weight, idx));
    PT_TRY(pt_check_index_dtype("embedding", idx));
    if (weight->ndim != 2) {
        char b[128];
        return PT_FAIL(PT_ERR_SHAPE, "embedding: weight must be 2-d [V, C], got shape %s",
                       pt_shape_str(weight->ndim, weight->shape, b, sizeof b));
    }
    if (idx->ndim >= PT_MAX_DIMS)
        return PT_FAIL(PT_ERR_SHAPE, "embedding: indices have %d dims, at most %d allowed", idx->ndim, PT_MAX_DIMS - 1);
    pt_isel_kernel k = (pt_isel_kernel)pt_kernel_find("index_select", weight->device.type, weight->dtype);
    if (!k) return pt_kernel_missing("index_select", weight->device.type, weight->dtype);
    pt_tensor *ic = NULL, *wc = NULL;
    PT_TRY(pt_tensor_contiguous_raw(&ic, idx));
    char what[64];
    snprintf(what, sizeof what, "%lld rows", (long long)weight->shape[0]);
    pt_status st = pt_check_indices("embedding", ic, weight->shape[0], what);
    if (!st) st = pt_tensor_contiguous_raw(&wc, weight);
    int64_t shape[PT_MAX_DIMS];
    memcpy(shape, idx->shape, sizeof(int64_t) * (size_t)idx->ndim);
    shape[idx->ndim] = weight->shape[1];
    if (!st) st = pt_tensor_empty(out, weight->dtype, weight->device, idx->ndim + 1, shape);
    if (!st) {
        pt_isel_args g;
        memset(&g, 0, sizeof g);
        g.outer = 1;
        g.dim_size = weight->shape[0];
        g.n_idx = pt_tensor_numel(ic);
        g.inner = weight->shape[1];
        g.esize = pt_dtype_size(weight->dtype);
        g.src = pt_tensor_data(wc);
        g.out = pt_tensor_data(*out);
        g.idx = pt_tensor_data(ic);
        g.idx_dtype = ic->dtype;
        if (g.n_idx * g.inner > 0) k(&g);
    }
    if (!st && pt_dtype_is_float(weight->dtype))
        st = pt_autograd_record(*out, "embedding", pt_embedding_bwd, 1, &weight, 1, &ic, NULL);
    pt_tensor_release(ic);
    pt_tensor_release(wc);
    return pt_idx_fail(out, st);
}

/* ---------------- gather / scatter_add ---------------- */
/* index.ndim == a.ndim, index.size(d) <= a.size(d) for d != dim (and <= src.size(d) for all d) */
static pt_status pt_check_gather_shapes(const char *op, const pt_tensor *a, int dim, const pt_tensor *idx,
                                        const pt_tensor *src) {
    char x[128], y[128], z[128];
    if (idx->ndim != a->ndim)
        return PT_FAIL(PT_ERR_SHAPE, "%s: index shape %s must have as many dims as input shape %s", op,
                       pt_shape_str(idx->ndim, idx->shape, x, sizeof x), pt_shape_str(a->ndim, a->shape, y, sizeof y));
    for (int d = 0; d < a->ndim; d++)
        if (d != dim && idx->shape[d] > a->shape[d])
            return PT_FAIL(PT_ERR_SHAPE, "%s: index shape %s is larger than input shape %s in dim %d", op,
                           pt_shape_str(idx->ndim, idx->shape, x, sizeof x), pt_shape_str(a->ndim, a->shape, y, sizeof y),
                           d);
    if (src) {
        if (src->ndim != idx->ndim)
            return PT_FAIL(PT_ERR_SHAPE, "%s: src shape %s must have as many dims as index shape %s", op,
                           pt_shape_str(src->ndim, src->shape, z, sizeof z),
                           pt_shape_str(idx->ndim, idx->shape, x, sizeof x));
        for (int d = 0; d < src->ndim; d++)
            if (idx->shape[d] > src->shape[d])
                return PT_FAIL(PT_ERR_SHAPE, "%s: index shape %s is larger than src shape %s in dim %d", op,
                               pt_shape_str(idx->ndim, idx->shape, x, sizeof x),
                               pt_shape_str(src->ndim, src->shape, z, sizeof z), d);
    }
    return PT_OK;
}

static pt_status pt_gather_common(const char *op, pt_tensor *a, int *dim, pt_tensor *idx, pt_tensor *src,
                                  pt_tensor **ic) {
    PT_TRY(pt_check_same_device(op, a, idx));
    if (src) PT_TRY(pt_check_same_device(op, a, src));
    PT_TRY(pt_check_index_dtype(op, idx));
    if (a->ndim == 0) return PT_FAIL(PT_ERR_SHAPE, "%s: input must have at least one dim, got a 0-d tensor", op);
    PT_TRY(pt_norm_dim(op, a->ndim, dim));
    PT_TRY(pt_check_gather_shapes(op, a, *dim, idx, src));
    PT_TRY(pt_tensor_contiguous_raw(ic, idx));
    char what[200], sh[128];
    snprintf(what, sizeof what, "dim %d of size %lld (input shape %s)", *dim, (long long)a->shape[*dim],
             pt_shape_str(a->ndim, a->shape, sh, sizeof sh));
    pt_status st = pt_check_indices(op, *ic, a->shape[*dim], what);
    if (st) {
        pt_tensor_release(*ic);
        *ic = NULL;
    }
    return st;
}

/* runs "gather" or "scatter_add": iteration over ic's shape; src strided, out strided */
static pt_status pt_gather_run(const char *kname, pt_tensor *out, pt_tensor *src, pt_tensor *ic, int dim) {
    pt_gather_kernel k = (pt_gather_kernel)pt_kernel_find(kname, out->device.type, out->dtype);
    if (!k) return pt_kernel_missing(kname, out->device.type, out->dtype);
    pt_gather_args g;
    memset(&g, 0, sizeof g);
    g.ndim = ic->ndim;
    g.dim = dim;
    memcpy(g.shape, ic->shape, sizeof(int64_t) * (size_t)ic->ndim);
    g.n = pt_tensor_numel(ic);
    g.idx = pt_tensor_data(ic);
    g.idx_dtype = ic->dtype;
    g.src = pt_tensor_data(src);
    memcpy(g.ss, src->stride, sizeof(int64_t) * (size_t)src->ndim);
    g.out = pt_tensor_data(out);
    memcpy(g.os, out->stride, sizeof(int64_t) * (size_t)out->ndim);
    g.esize = pt_dtype_size(out->dtype);
    g.limit = strcmp(kname, "gather") == 0 ? src->shape[dim] : out->shape[dim];
    if (g.n > 0) k(&g);
    return PT_OK;
}

static pt_status pt_gather_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin) {
    pt_tensor *a = node->inputs[0], *ic = node->saved[0], *gc = NULL;
    int dim = (int)node->i[0];
    PT_TRY(pt_tensor_contiguous_raw(&gc, g));
    pt_status st = pt_tensor_zeros(&gin[0], g->dtype, g->device, a->ndim, a->shape);
    if (!st) st = pt_gather_run("scatter_add", gin[0], gc, ic, dim);
    pt_tensor_release(gc);
    return pt_idx_fail(&gin[0], st);
}

pt_status pt_gather(pt_tensor **out, pt_tensor *a, int dim, pt_tensor *idx) {
    *out = NULL;
    pt_tensor *ic = NULL;
    PT_TRY(pt_gather_common("gather", a, &dim, idx, NULL, &ic));
    pt_status st = pt_tensor_empty(out, a->dtype, a->device, ic->ndim, ic->shape);
    if (!st) st = pt_gather_run("gather", *out, a, ic, dim);
    if (!st && pt_dtype_is_float(a->dtype)) {
        pt_node *node;
        st = pt_autograd_record(*out, "gather", pt_gather_bwd, 1, &a, 1, &ic, &node);
        if (!st && node) node->i[0] = dim;
    }
    pt_tensor_release(ic);
    return pt_idx_fail(out, st);
}

static pt_status pt_scatter_add_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin) {
    pt_tensor *src = node->inputs[1], *ic = node->saved[0];
    int dim = (int)node->i[0];
    pt_status st = PT_OK;
    if (pt_node_needs_grad(node, 0)) st = pt_tensor_to(&gin[0], g, g->dtype, g->device, 0);
    if (!st && pt_node_needs_grad(node, 1)) {
        /* grad_src = gather(g, dim, idx) in the index region, zero elsewhere */
        st = pt_tensor_zeros(&gin[1], g->dtype, g->device, src->ndim, src->shape);
        pt_tensor *region = NULL;
        if (!st) st = pt_tensor_view_of(&region, gin[1], ic->ndim, ic->shape, gin[1]->stride, gin[1]->offset);
        if (!st) st = pt_gather_run("gather", region, g, ic, dim);
        pt_tensor_release(region);
    }
    if (st) {
        pt_idx_fail(&gin[0], st);
        pt_idx_fail(&gin[1], st);
    }
    return st;
}

pt_status pt_scatter_add(pt_tensor **out, pt_tensor *a, int dim, pt_tensor *idx, pt_tensor *src) {
    *out = NULL;
    if (a->dtype != src->dtype)
        return PT_FAIL(PT_ERR_DTYPE, "scatter_add: input dtype %s and src dtype %s differ (cast src first)",
                       pt_dtype_name(a->dtype), pt_dtype_name(src->dtype));
    pt_tensor *ic = NULL;
    PT_TRY(pt_gather_common("scatter_add", a, &dim, idx, src, &ic));
    pt_status st = pt_tensor_to(out, a, a->dtype, a->device, 1); /* contiguous copy of a */
    if (!st) st = pt_gather_run("scatter_add", *out, src, ic, dim);
    if (!st && pt_dtype_is_float(a->dtype)) {
        pt_node *node;
        pt_tensor *in[2] = {a, src};
        st = pt_autograd_record(*out, "scatter_add", pt_scatter_add_bwd, 2, in, 1, &ic, &node);
        if (!st && node) node->i[0] = dim;
    }
    pt_tensor_release(ic);
    return pt_idx_fail(out, st);
}
