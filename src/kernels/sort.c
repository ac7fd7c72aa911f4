/* sort.c — op fronts of the sorting family (declared in pt_ops.h; kernels in pt_sort.h):
 * sort, topk, kthvalue, quantile. Each normalizes `dim`, views the contiguous input as [O, N, I],
 * runs the (op, device, dtype) kernel and, for sort/topk/kthvalue on float inputs, records an
 * autograd node whose backward scatters the gradient of the values back to the chosen indices
 * (zeros elsewhere). quantile is not differentiable (its output never requires grad).
 *
 * bf16/f16 inputs on the CPU are sorted through f32 (exact: the conversion is monotone and
 * lossless) and the values are converted back. Integer dtypes sort natively; quantile needs f32/f64.
 * Tests: tests/c/test_sort.c; randomized comparison with torch: tests/reference/sort_vs_torch.py.
 */
#include <math.h>   /* isnan */
#include <string.h> /* memcpy */

#include "pt_dispatch.h"
#include "pt_ops.h"
#include "pt_sort.h"

static pt_status pt_sort_fail(pt_status st, pt_tensor **a, pt_tensor **b) {
    if (st) {
        if (a) {
            pt_tensor_release(*a);
            *a = NULL;
        }
        if (b) {
            pt_tensor_release(*b);
            *b = NULL;
        }
    }
    return st;
}

/* Backward: zeros(input shape) with g scattered at indices along dim. node->i[0] = dim,
 * node->i[1] = 1 when the front removed `dim` (kthvalue without keepdim). */
static pt_status pt_sort_values_bwd(pt_node *node, pt_tensor *g, pt_tensor **gin) {
    pt_tensor *a = node->inputs[0], *idx = node->saved[0];
    int dim = (int)node->i[0];
    pt_tensor *gg = g, *ii = idx, *z = NULL;
    pt_status st = PT_OK;
    if (node->i[1]) { /* restore the reduced dim */
        int64_t shape[PT_MAX_DIMS];
        memcpy(shape, a->shape, sizeof(int64_t) * (size_t)a->ndim);
        int nd = a->ndim == 0 ? 0 : a->ndim;
        if (nd) shape[dim] = 1;
        gg = ii = NULL;
        st = pt_reshape(&gg, g, nd, shape);
        if (!st) st = pt_reshape(&ii, idx, nd, shape);
    }
    if (!st && a->ndim == 0) { /* 0-d input: the gradient is g itself */
        st = pt_tensor_to(&gin[0], gg, gg->dtype, gg->device, 1);
    } else if (!st) {
        st = pt_tensor_zeros(&z, g->dtype, g->device, a->ndim, a->shape);
        if (!st) st = pt_scatter_add(&gin[0], z, dim, ii, gg);
    }
    if (gg != g) pt_tensor_release(gg);
    if (ii != idx) pt_tensor_release(ii);
    pt_tensor_release(z);
    return st;
}

typedef struct {
    pt_tensor *ac; /* contiguous input in the kernel dtype */
    pt_sort_args args;
    pt_dtype kdt;
} pt_sort_prep;

/* Normalizes dim, makes a contiguous input in the kernel dtype, fills the geometry. */
static pt_status pt_sort_prepare(const char *op, pt_tensor *a, int *dim, pt_sort_prep *p) {
    memset(p, 0, sizeof *p);
    PT_TRY(pt_norm_dim(op, a->ndim, dim));
    p->kdt = (a->dtype == PT_BF16 || a->dtype == PT_F16) && a->device.type == PT_DEV_CPU ? PT_F32 : a->dtype;
    pt_tensor *t = NULL;
    PT_TRY(pt_tensor_to(&t, a, p->kdt, a->device, 0));
    pt_status st = pt_tensor_contiguous_raw(&p->ac, t);
    pt_tensor_release(t);
    if (st) return st;
    p->args.outer = 1;
    p->args.inner = 1;
    p->args.n = a->ndim ? a->shape[*dim] : 1;
    for (int d = 0; d < *dim && d < a->ndim; d++) p->args.outer *= a->shape[d];
    for (int d = *dim + 1; d < a->ndim; d++) p->args.inner *= a->shape[d];
    p->args.a = pt_tensor_data(p->ac);
    return PT_OK;
}

/* Runs kernel `kname` into new values/indices tensors of shape `shape`; converts the values back
 * to a's dtype; records the autograd node when a is float. */
static pt_status pt_sort_exec(const char *kname, const char *opname, pt_tensor **values, pt_tensor **indices,
                              pt_tensor *a, pt_sort_prep *p, int dim, int ndim, const int64_t *shape,
                              int removed_dim) {
    pt_tensor *v = NULL, *ix = NULL;
    pt_sort_kernel k = (pt_sort_kernel)pt_kernel_find(kname, a->device.type, p->kdt);
    pt_status st = k ? PT_OK : pt_kernel_missing(kname, a->device.type, p->kdt);
    if (!st) st = pt_tensor_empty(&v, p->kdt, a->device, ndim, shape);
    if (!st) st = pt_tensor_empty(&ix, PT_I64, a->device, ndim, shape);
    if (!st) {
        p->args.values = pt_tensor_data(v);
        p->args.indices = pt_tensor_data(ix);
        st = k(&p->args);
    }
    if (!st && v->dtype != a->dtype) {
        pt_tensor *v2 = NULL;
        st = pt_tensor_to(&v2, v, a->dtype, a->device, 0);
        pt_tensor_release(v);
        v = v2;
    }
    if (!st && pt_dtype_is_float(a->dtype)) {
        pt_node *node;
        st = pt_autograd_record(v, opname, pt_sort_values_bwd, 1, &a, 1, &ix, &node);
        if (!st && node) {
            node->i[0] = dim;
            node->i[1] = removed_dim;
        }
    }
    pt_tensor_release(p->ac);
    p->ac = NULL;
    if (st) {
        pt_tensor_release(v);
        pt_tensor_release(ix);
        return st;
    }
    *values = v;
    if (indices) *indices = ix;
    else pt_tensor_release(ix);
    return PT_OK;
}

pt_status pt_sort(pt_tensor **values, pt_tensor **indices, pt_tensor *a, int dim, int descending) {
    *values = NULL;
    if (indices) *indices = NULL;
    pt_sort_prep p;
    PT_TRY(pt_sort_prepare("sort", a, &dim, &p));
    p.args.descending = descending != 0;
    return pt_sort_exec("sort", "sort", values, indices, a, &p, dim, a->ndim, a->shape, 0);
}

pt_status pt_topk(pt_tensor **values, pt_tensor **indices, pt_tensor *a, int64_t k, int dim, int largest) {
    *values = NULL;
    if (indices) *indices = NULL;
    PT_TRY(pt_norm_dim("topk", a->ndim, &dim));
    int64_t n = a->ndim ? a->shape[dim] : 1;
    if (k < 0 || k > n) {
        char b[128];
        return PT_FAIL(PT_ERR_INDEX, "topk: k = %lld is out of range for dim %d of size %lld (shape %s)", (long long)k,
                       dim, (long long)n, pt_shape_str(a->ndim, a->shape, b, sizeof b));
    }
    pt_sort_prep p;
    PT_TRY(pt_sort_prepare("topk", a, &dim, &p));
    p.args.k = k;
    p.args.descending = largest != 0;
    int64_t shape[PT_MAX_DIMS];
    memcpy(shape, a->shape, sizeof(int64_t) * (size_t)a->ndim);
    if (a->ndim) shape[dim] = k;
    return pt_sort_exec("topk", "topk", values, indices, a, &p, dim, a->ndim, shape, 0);
}

pt_status pt_kthvalue(pt_tensor **values, pt_tensor **indices, pt_tensor *a, int64_t k, int dim, int keepdim) {
    *values = NULL;
    if (indices) *indices = NULL;
    PT_TRY(pt_norm_dim("kthvalue", a->ndim, &dim));
    int64_t n = a->ndim ? a->shape[dim] : 1;
    if (k < 1 || k > n) {
        char b[128];
        return PT_FAIL(PT_ERR_INDEX, "kthvalue: k = %lld is out of range for dim %d of size %lld (shape %s; k is "
                       "1-based)", (long long)k, dim, (long long)n, pt_shape_str(a->ndim, a->shape, b, sizeof b));
    }
    pt_sort_prep p;
    PT_TRY(pt_sort_prepare("kthvalue", a, &dim, &p));
    p.args.k = k - 1;
    int64_t shape[PT_MAX_DIMS];
    int nd = 0;
    for (int d = 0; d < a->ndim; d++) {
        if (d == dim && !keepdim) continue;
        shape[nd++] = d == dim ? 1 : a->shape[d];
    }
    return pt_sort_exec("kthvalue", "kthvalue", values, indices, a, &p, dim, nd, shape, !keepdim && a->ndim > 0);
}

pt_status pt_quantile(pt_tensor **out, pt_tensor *a, double q, int dim, int keepdim) {
    *out = NULL;
    if (!(q >= 0 && q <= 1)) return PT_FAIL(PT_ERR_VALUE, "quantile: q = %g must be in [0, 1]", q);
    if (a->dtype != PT_F32 && a->dtype != PT_F64)
        return PT_FAIL(PT_ERR_DTYPE, "quantile: expected a f32 or f64 tensor, got %s (convert with :to('f32'))",
                       pt_dtype_name(a->dtype));
    char b[128];
    if (pt_tensor_numel(a) == 0)
        return PT_FAIL(PT_ERR_SHAPE, "quantile: input of shape %s is empty", pt_shape_str(a->ndim, a->shape, b, sizeof b));
    pt_tensor *flat = NULL, *src = a;
    int64_t shape[PT_MAX_DIMS];
    int nd = 0;
    if (dim == PT_ALL_DIMS) {
        int64_t n = pt_tensor_numel(a);
        PT_TRY(pt_tensor_contiguous_raw(&flat, a));
        pt_tensor *v = NULL;
        pt_status st = pt_tensor_view_of(&v, flat, 1, &n, (int64_t[]){1}, flat->offset);
        pt_tensor_release(flat);
        if (st) return st;
        src = flat = v;
        if (keepdim)
            for (int d = 0; d < a->ndim; d++) shape[nd++] = 1;
        dim = 0;
    } else {
        PT_TRY(pt_norm_dim("quantile", a->ndim, &dim));
        for (int d = 0; d < a->ndim; d++) {
            if (d == dim && !keepdim) continue;
            shape[nd++] = d == dim ? 1 : a->shape[d];
        }
    }
    pt_sort_prep p;
    pt_status st = pt_sort_prepare("quantile", src, &dim, &p);
    pt_sort_kernel k = NULL;
    if (!st) {
        k = (pt_sort_kernel)pt_kernel_find("quantile", a->device.type, a->dtype);
        if (!k) st = pt_kernel_missing("quantile", a->device.type, a->dtype);
    }
    if (!st) st = pt_tensor_empty(out, a->dtype, a->device, nd, shape);
    if (!st) {
        p.args.q = q;
        p.args.values = pt_tensor_data(*out);
        p.args.indices = NULL;
        st = k(&p.args);
    }
    pt_tensor_release(p.ac);
    pt_tensor_release(flat);
    return pt_sort_fail(st, out, NULL);
}
