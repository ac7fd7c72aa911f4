/* pt_sort.h — kernel signatures of the sorting / order-statistics family: sort, topk, kthvalue,
 * quantile (registered by src/kernels/cpu/sort.c; op fronts in src/kernels/sort.c, declared in
 * pt_ops.h).
 *
 * Order: the total order used everywhere is (value, original index): values ascend with NaN
 * after +inf (all NaNs equal), -0.0 == +0.0, and ties keep their original order. Descending
 * reverses the value order only (NaN first, as torch.sort(descending=True)); ties still keep
 * their original order. So sort is stable, and topk/kthvalue return the same elements a stable
 * sort would put at those ranks (torch leaves the tie order of topk/kthvalue unspecified).
 *
 * Differentiability (fronts): the VALUES of sort, topk and kthvalue are differentiable (the
 * gradient is scattered back to the chosen indices); quantile is NOT differentiable: its output
 * never requires grad, whatever its input.
 *
 * Geometry: the input is contiguous and viewed as [O, N, I] (O = product of the dims before `dim`,
 * N = size of `dim`, I = product of the dims after); outputs are contiguous [O, K, I].
 *
 * kernel names (keyed by the input dtype; all return PT_OK or PT_ERR_OOM for scratch memory):
 *   "sort"      K = N: values and i64 indices in order (descending flag)
 *   "topk"      K = k: the first k of the order (descending = largest)
 *   "kthvalue"  K = 1: element of 0-based rank k in ascending order (selection, O(N) expected)
 *   "quantile"  K = 1, values only (f32/f64): torch.quantile, linear interpolation computed in the
 *               input dtype exactly as torch does:
 *                   rank = (T)q * (T)(N - 1); lo = (int64)rank; hi = (int64)ceil(rank);
 *                   w = rank - (T)lo; a = x_(lo), b = x_(hi) (order statistics, 0-based);
 *                   result = |w| < 0.5 ? a + w * (b - a) : b - (b - a) * (1 - w)   (torch.lerp)
 *               and NaN when the row holds a NaN. Uses one quickselect + a min scan, no sort.
 */
#ifndef PT_SORT_H
#define PT_SORT_H

#include "../host/pt_tensor.h"

typedef struct {
    int64_t outer, n, inner; /* O, N, I */
    const void *a;           /* input, contiguous [O, N, I] */
    void *values;            /* [O, K, I], input dtype */
    int64_t *indices;        /* [O, K, I] i64; NULL for quantile */
    int64_t k;               /* topk: K; kthvalue: 0-based rank */
    int descending;          /* sort: descending; topk: largest */
    double q;                /* quantile in [0, 1] */
} pt_sort_args;

typedef pt_status (*pt_sort_kernel)(const pt_sort_args *args);

#endif
