/* view.c — differentiable views and joins: reshape, transpose, permute, narrow, select, expand,
 * contiguous, (un)squeeze, cat, stack. Views share storage with their input (no copy) except
 * reshape of a non-viewable layout, which copies. Layout only: no math kernels needed beyond copy.
 * Tests: tests/lua/test_tensor.lua (views share storage, exact values), test_gradcheck.lua.
 */
#include <string.h>

#include "pt_ops.h"

pt_status pt_norm_dim(const char *op, int ndim, int *dim) {
    int d = *dim;
    int n = ndim == 0 ? 1 : ndim;
    if (d < -n || d >= n)
        return PT_FAIL(PT_ERR_INDEX, "%s: dim %d out of range for a %d-d tensor", op, d, ndim);
    *dim = d < 0 ? d + n : d;
    return PT_OK;
}

static pt_status pt_fail_release(pt_tensor **out, pt_status st) {
    if (st) {
        pt_tensor_release(*out);
        *out = NULL;
    }
    return st;
}

/* ---- reshape ---- */
static pt_status pt_reshape_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin) {
    return pt_reshape(&gin[0], g, node->inputs[0]->ndim, node->inputs[0]->shape);
}

pt_status pt_reshape(pt_tensor **out, pt_tensor *a, int ndim, const int64_t *shape_in) {
    *out = NULL;
    if (ndim < 0 || ndim > PT_MAX_DIMS) return PT_FAIL(PT_ERR_SHAPE, "reshape: %d dims (max %d)", ndim, PT_MAX_DIMS);
    int64_t shape[PT_MAX_DIMS];
    int infer = -1;
    int64_t known = 1, numel = pt_tensor_numel(a);
    for (int i = 0; i < ndim; i++) {
        shape[i] = shape_in[i];
        if (shape[i] == -1) {
            if (infer >= 0) return PT_FAIL(PT_ERR_SHAPE, "reshape: only one dimension can be -1");
            infer = i;
        } else if (shape[i] < 0) {
            return PT_FAIL(PT_ERR_SHAPE, "reshape: negative size %lld", (long long)shape[i]);
        } else {
            known *= shape[i];
        }
    }
    if (infer >= 0) {
        if (known == 0 || numel % known) {
            char x[128], y[128];
            return PT_FAIL(PT_ERR_SHAPE, "reshape: cannot reshape %s into %s", pt_shape_str(a->ndim, a->shape, x, sizeof x),
                           pt_shape_str(ndim, shape_in, y, sizeof y));
        }
        shape[infer] = numel / known;
        known = numel;
    }
    if (known != numel) {
        char x[128], y[128];
        return PT_FAIL(PT_ERR_SHAPE, "reshape: cannot reshape %s (%lld elements) into %s (%lld elements)",
                       pt_shape_str(a->ndim, a->shape, x, sizeof x), (long long)numel,
                       pt_shape_str(ndim, shape, y, sizeof y), (long long)known);
    }
    pt_tensor *src = NULL;
    PT_TRY(pt_tensor_contiguous_raw(&src, a));
    int64_t stride[PT_MAX_DIMS], s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        stride[i] = s;
        s *= shape[i];
    }
    pt_status st = pt_tensor_view_of(out, src, ndim, shape, stride, src->offset);
    pt_tensor_release(src);
    if (!st) st = pt_autograd_record(*out, "reshape", pt_reshape_bwd, 1, &a, 0, NULL, NULL);
    return pt_fail_release(out, st);
}

/* ---- permute / transpose ---- */
static pt_status pt_permute_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin) {
    int inv[PT_MAX_DIMS];
    for (int i = 0; i < node->inputs[0]->ndim; i++) inv[node->i[i]] = i;
    return pt_permute(&gin[0], g, inv);
}

pt_status pt_permute(pt_tensor **out, pt_tensor *a, const int *perm) {
    *out = NULL;
    int seen[PT_MAX_DIMS] = {0};
    int64_t shape[PT_MAX_DIMS], stride[PT_MAX_DIMS];
    int p[PT_MAX_DIMS];
    for (int i = 0; i < a->ndim; i++) {
        p[i] = perm[i];
        PT_TRY(pt_norm_dim("permute", a->ndim, &p[i]));
        if (seen[p[i]]++) return PT_FAIL(PT_ERR_VALUE, "permute: dim %d repeated", p[i]);
        shape[i] = a->shape[p[i]];
        stride[i] = a->stride[p[i]];
    }
    PT_TRY(pt_tensor_view_of(out, a, a->ndim, shape, stride, a->offset));
    pt_node *node;
    pt_status st = pt_autograd_record(*out, "permute", pt_permute_bwd, 1, &a, 0, NULL, &node);
    if (!st && node)
        for (int i = 0; i < a->ndim; i++) node->i[i] = p[i];
    return pt_fail_release(out, st);
}

pt_status pt_transpose(pt_tensor **out, pt_tensor *a, int d0, int d1) {
    PT_TRY(pt_norm_dim("transpose", a->ndim, &d0));
    PT_TRY(pt_norm_dim("transpose", a->ndim, &d1));
    int perm[PT_MAX_DIMS];
    for (int i = 0; i < a->ndim; i++) perm[i] = i;
    perm[d0] = d1;
    perm[d1] = d0;
    return pt_permute(out, a, perm);
}

/* ---- narrow / select ---- */
static pt_status pt_narrow_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin) {
    pt_tensor *in = node->inputs[0], *slot = NULL;
    pt_status st = pt_tensor_zeros(&gin[0], g->dtype, g->device, in->ndim, in->shape);
    if (st) return st;
    int dim = (int)node->i[0];
    int64_t start = node->i[1];
    int64_t offset = gin[0]->offset + start * gin[0]->stride[dim];
    int64_t shape[PT_MAX_DIMS];
    memcpy(shape, in->shape, sizeof shape);
    shape[dim] = g->shape[dim];
    st = pt_tensor_view_of(&slot, gin[0], in->ndim, shape, gin[0]->stride, offset);
    if (!st) st = pt_tensor_copy_(slot, g);
    pt_tensor_release(slot);
    return st;
}

pt_status pt_narrow(pt_tensor **out, pt_tensor *a, int dim, int64_t start, int64_t length) {
    *out = NULL;
    PT_TRY(pt_norm_dim("narrow", a->ndim, &dim));
    if (a->ndim == 0) return PT_FAIL(PT_ERR_SHAPE, "narrow: cannot narrow a 0-d tensor");
    if (start < 0) start += a->shape[dim];
    if (start < 0 || length < 0 || start + length > a->shape[dim])
        return PT_FAIL(PT_ERR_INDEX, "narrow: range [%lld, %lld) out of bounds for dim %d of size %lld",
                       (long long)start, (long long)(start + length), dim, (long long)a->shape[dim]);
    int64_t shape[PT_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    shape[dim] = length;
    PT_TRY(pt_tensor_view_of(out, a, a->ndim, shape, a->stride, a->offset + start * a->stride[dim]));
    pt_node *node;
    pt_status st = pt_autograd_record(*out, "narrow", pt_narrow_bwd, 1, &a, 0, NULL, &node);
    if (!st && node) {
        node->i[0] = dim;
        node->i[1] = start;
    }
    return pt_fail_release(out, st);
}

pt_status pt_select(pt_tensor **out, pt_tensor *a, int dim, int64_t index) {
    *out = NULL;
    PT_TRY(pt_norm_dim("select", a->ndim, &dim));
    if (a->ndim == 0) return PT_FAIL(PT_ERR_SHAPE, "select: cannot index a 0-d tensor");
    int64_t size = a->shape[dim];
    if (index < -size || index >= size)
        return PT_FAIL(PT_ERR_INDEX, "index %lld out of range for dim %d of size %lld", (long long)index, dim,
                       (long long)size);
    if (index < 0) index += size;
    pt_tensor *n = NULL;
    PT_TRY(pt_narrow(&n, a, dim, index, 1));
    pt_status st = pt_squeeze(out, n, dim);
    pt_tensor_release(n);
    return st;
}

/* ---- expand ---- */
static pt_status pt_expand_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin) {
    return pt_sum_to_shape(&gin[0], g, node->inputs[0]->ndim, node->inputs[0]->shape);
}

pt_status pt_expand(pt_tensor **out, pt_tensor *a, int ndim, const int64_t *shape_in) {
    *out = NULL;
    if (ndim < a->ndim || ndim > PT_MAX_DIMS) {
        char x[128], y[128];
        return PT_FAIL(PT_ERR_SHAPE, "expand: cannot expand %s to %s", pt_shape_str(a->ndim, a->shape, x, sizeof x),
                       pt_shape_str(ndim, shape_in, y, sizeof y));
    }
    int64_t shape[PT_MAX_DIMS], stride[PT_MAX_DIMS];
    int lead = ndim - a->ndim;
    for (int i = 0; i < ndim; i++) {
        int j = i - lead;
        int64_t want = shape_in[i];
        if (j < 0) {
            if (want < 0) return PT_FAIL(PT_ERR_SHAPE, "expand: -1 not allowed for a new leading dim");
            shape[i] = want;
            stride[i] = 0;
        } else if (want == -1 || want == a->shape[j]) {
            shape[i] = a->shape[j];
            stride[i] = a->stride[j];
        } else if (a->shape[j] == 1) {
            shape[i] = want;
            stride[i] = 0;
        } else {
            char x[128], y[128];
            return PT_FAIL(PT_ERR_SHAPE, "expand: cannot expand %s to %s (dim %d)",
                           pt_shape_str(a->ndim, a->shape, x, sizeof x), pt_shape_str(ndim, shape_in, y, sizeof y), i);
        }
    }
    PT_TRY(pt_tensor_view_of(out, a, ndim, shape, stride, a->offset));
    pt_status st = pt_autograd_record(*out, "expand", pt_expand_bwd, 1, &a, 0, NULL, NULL);
    return pt_fail_release(out, st);
}

/* ---- contiguous ---- */
static pt_status pt_identity_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin) {
    (void)node;
    pt_tensor_retain(g);
    gin[0] = g;
    return PT_OK;
}

pt_status pt_contiguous(pt_tensor **out, pt_tensor *a) {
    if (pt_tensor_is_contiguous(a)) {
        pt_tensor_retain(a);
        *out = a;
        return PT_OK;
    }
    PT_TRY(pt_tensor_contiguous_raw(out, a));
    pt_status st = pt_autograd_record(*out, "contiguous", pt_identity_bwd, 1, &a, 0, NULL, NULL);
    return pt_fail_release(out, st);
}

/* ---- squeeze / unsqueeze (views via reshape) ---- */
pt_status pt_unsqueeze(pt_tensor **out, pt_tensor *a, int dim) {
    *out = NULL;
    if (dim < 0) dim += a->ndim + 1;
    if (dim < 0 || dim > a->ndim || a->ndim >= PT_MAX_DIMS)
        return PT_FAIL(PT_ERR_INDEX, "unsqueeze: dim %d out of range for a %d-d tensor", dim, a->ndim);
    int64_t shape[PT_MAX_DIMS], stride[PT_MAX_DIMS];
    for (int i = 0, j = 0; i <= a->ndim; i++) {
        if (i == dim) {
            shape[i] = 1;
            stride[i] = (j < a->ndim) ? a->stride[j] * a->shape[j] : 1;
        } else {
            shape[i] = a->shape[j];
            stride[i] = a->stride[j];
            j++;
        }
    }
    PT_TRY(pt_tensor_view_of(out, a, a->ndim + 1, shape, stride, a->offset));
    pt_status st = pt_autograd_record(*out, "unsqueeze", pt_reshape_bwd, 1, &a, 0, NULL, NULL);
    return pt_fail_release(out, st);
}

pt_status pt_squeeze(pt_tensor **out, pt_tensor *a, int dim) {
    *out = NULL;
    PT_TRY(pt_norm_dim("squeeze", a->ndim, &dim));
    if (a->ndim == 0 || a->shape[dim] != 1) {
        pt_tensor_retain(a);
        *out = a;
        return PT_OK;
    }
    int64_t shape[PT_MAX_DIMS], stride[PT_MAX_DIMS];
    for (int i = 0, j = 0; i < a->ndim; i++) {
        if (i == dim) continue;
        shape[j] = a->shape[i];
        stride[j] = a->stride[i];
        j++;
    }
    PT_TRY(pt_tensor_view_of(out, a, a->ndim - 1, shape, stride, a->offset));
    pt_status st = pt_autograd_record(*out, "squeeze", pt_reshape_bwd, 1, &a, 0, NULL, NULL);
    return pt_fail_release(out, st);
}

/* ---- cat / stack ---- */
typedef struct {
    int n;
    int64_t sizes[];
} pt_cat_ctx;

static pt_status pt_cat_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin) {
    int dim = (int)node->i[0];
    int64_t start = 0;
    for (int k = 0; k < node->n_inputs; k++) {
        int64_t len = node->inputs[k]->shape[dim];
        if (pt_node_needs_grad(node, k)) {
            pt_tensor *v = NULL;
            PT_TRY(pt_tensor_view_of(&v, g, g->ndim, g->shape, g->stride, g->offset));
            pt_tensor *nv = NULL;
            int prev = pt_grad_set_enabled(0);
            pt_status st = pt_narrow(&nv, v, dim, start, len);
            pt_grad_set_enabled(prev);
            pt_tensor_release(v);
            if (st) return st;
            st = pt_tensor_contiguous_raw(&gin[k], nv);
            pt_tensor_release(nv);
            if (st) return st;
        }
        start += len;
    }
    return PT_OK;
}

static pt_status pt_cat_impl(pt_tensor **out, int n, pt_tensor *const *ts, int dim, int record) {
    *out = NULL;
    if (n <= 0) return PT_FAIL(PT_ERR_VALUE, "cat: no tensors given");
    pt_tensor *a = ts[0];
    PT_TRY(pt_norm_dim("cat", a->ndim, &dim));
    int64_t shape[PT_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    shape[dim] = 0;
    for (int k = 0; k < n; k++) {
        pt_tensor *t = ts[k];
        PT_TRY(pt_check_same_device("cat", a, t));
        if (t->dtype != a->dtype)
            return PT_FAIL(PT_ERR_DTYPE, "cat: tensor %d has dtype %s, tensor 0 has %s", k + 1, pt_dtype_name(t->dtype),
                           pt_dtype_name(a->dtype));
        int ok = t->ndim == a->ndim;
        for (int i = 0; ok && i < a->ndim; i++)
            if (i != dim && t->shape[i] != a->shape[i]) ok = 0;
        if (!ok) {
            char x[128], y[128];
            return PT_FAIL(PT_ERR_SHAPE, "cat: tensor %d has shape %s, tensor 1 has %s (must match except in dim %d)",
                           k + 1, pt_shape_str(t->ndim, t->shape, x, sizeof x),
                           pt_shape_str(a->ndim, a->shape, y, sizeof y), dim);
        }
        shape[dim] += t->shape[dim];
    }
    PT_TRY(pt_tensor_empty(out, a->dtype, a->device, a->ndim, shape));
    pt_status st = PT_OK;
    int64_t start = 0;
    for (int k = 0; k < n && !st; k++) {
        pt_tensor *slot = NULL;
        int64_t s2[PT_MAX_DIMS];
        memcpy(s2, shape, sizeof s2);
        s2[dim] = ts[k]->shape[dim];
        st = pt_tensor_view_of(&slot, *out, a->ndim, s2, (*out)->stride, start * (*out)->stride[dim]);
        if (!st) st = pt_tensor_copy_(slot, ts[k]);
        pt_tensor_release(slot);
        start += ts[k]->shape[dim];
    }
    if (!st && record) {
        if (n > PT_NODE_MAX_INPUTS) {
            /* wide cat: record as a chain of cats so autograd still works */
            for (int k = 0; k < n; k++)
                if (ts[k]->requires_grad && pt_grad_enabled()) {
                    pt_tensor_release(*out);
                    *out = NULL;
                    int half = n / 2;
                    pt_tensor *l = NULL, *r = NULL;
                    st = pt_cat(&l, half, ts, dim);
                    if (!st) st = pt_cat(&r, n - half, ts + half, dim);
                    pt_tensor *two[2] = {l, r};
                    if (!st) st = pt_cat(out, 2, two, dim);
                    pt_tensor_release(l);
                    pt_tensor_release(r);
                    return st;
                }
        } else {
            pt_node *node;
            st = pt_autograd_record(*out, "cat", pt_cat_bwd, n, ts, 0, NULL, &node);
            if (!st && node) node->i[0] = dim;
        }
    }
    return pt_fail_release(out, st);
}

pt_status pt_cat(pt_tensor **out, int n, pt_tensor *const *ts, int dim) { return pt_cat_impl(out, n, ts, dim, 1); }

pt_status pt_stack(pt_tensor **out, int n, pt_tensor *const *ts, int dim) {
    *out = NULL;
    if (n <= 0) return PT_FAIL(PT_ERR_VALUE, "stack: no tensors given");
    if (dim < 0) dim += ts[0]->ndim + 1;
    pt_tensor *us[256];
    if (n > 256) return PT_FAIL(PT_ERR_VALUE, "stack: at most 256 tensors (got %d)", n);
    pt_status st = PT_OK;
    int made = 0;
    for (int k = 0; k < n && !st; k++) {
        if (ts[k]->ndim != ts[0]->ndim || memcmp(ts[k]->shape, ts[0]->shape, sizeof(int64_t) * (size_t)ts[0]->ndim)) {
            char x[128], y[128];
            st = PT_FAIL(PT_ERR_SHAPE, "stack: tensor %d has shape %s, tensor 1 has %s", k + 1,
                         pt_shape_str(ts[k]->ndim, ts[k]->shape, x, sizeof x),
                         pt_shape_str(ts[0]->ndim, ts[0]->shape, y, sizeof y));
            break;
        }
        st = pt_unsqueeze(&us[k], ts[k], dim);
        if (!st) made++;
    }
    if (!st) st = pt_cat(out, n, us, dim);
    for (int k = 0; k < made; k++) pt_tensor_release(us[k]);
    return st;
}
