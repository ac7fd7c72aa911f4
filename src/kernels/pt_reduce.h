/* pt_reduce.h — kernel signatures of the reduction family (sum, mean, max/min/argmax, norm, var/std)
 * and of softmax / log_softmax, registered in pt_dispatch.h's table by src/kernels/cpu/reduce.c
 * (and, later, src/kernels/cuda/reduce.cu). The op fronts live in src/kernels/reduce.c.
 *
 * Layout convention (dimension letters): the front hands every kernel a contiguous input viewed as
 * [O, N, I] — O outer rows, N the reduced (or softmax) extent, I inner columns — with the data
 * pointer already at the view offset. Reductions write a contiguous [O, I] output; softmax writes
 * [O, N, I]. Reducing a set of dims that is not one contiguous block is done by the front: it
 * permutes the reduced dims to the end and makes the input contiguous (then I = 1).
 *
 * kernel names (op, dtype):
 *   "red"          out[o,i] = REDUCE_n x[o,n,i]   (op = pt_redop; p = norm order, correction = var/std)
 *                  f32/f64 accumulate in f64; i64 for SUM/MAX/MIN/ARGMAX only (i64 accumulator).
 *                  MAX/MIN/ARGMAX also write idx (i64, may be NULL for MAX/MIN): first index on ties,
 *                  NaN counts as the largest (and smallest) value like torch. N must be > 0 for them.
 *   "red_scatter"  out[o, idx[o,i], i] = g[o,i]   (out zeroed by the caller; backward of max/min)
 *   "softmax"      y = softmax_n(x) (op 0) or log_softmax_n(x) (op 1), max-subtracted, f64 sums
 *   "softmax_bwd"  dx = y * (g - sum_n g*y)   (op 0, y = softmax output)
 *                  dx = g - exp(y) * sum_n g  (op 1, y = log_softmax output)
 */
#ifndef PT_REDUCE_H
#define PT_REDUCE_H

#include "../host/pt_tensor.h"

typedef enum {
    PT_RED_SUM,
    PT_RED_MEAN,
    PT_RED_MAX,
    PT_RED_MIN,
    PT_RED_ARGMAX,
    PT_RED_NORM,
    PT_RED_VAR,
    PT_RED_STD,
    PT_NREDOPS
} pt_redop;

typedef struct {
    int op;
    int64_t outer, n, inner;
    const void *x;  /* [O, N, I] contiguous */
    void *out;      /* [O, I] contiguous (reductions) or [O, N, I] (softmax) */
    int64_t *idx;   /* [O, I] indices for MAX/MIN/ARGMAX (NULL for MAX/MIN when not wanted) */
    const void *y;  /* softmax_bwd: forward output; red_scatter: unused */
    const void *g;  /* softmax_bwd: [O, N, I] gradient; red_scatter: [O, I] gradient */
    const int64_t *gidx; /* red_scatter: [O, I] indices */
    double p;       /* norm order (INFINITY / -INFINITY allowed) */
    double correction; /* var/std: divisor is max(0, N - correction) */
} pt_reduce_args;

typedef void (*pt_reduce_kernel)(const pt_reduce_args *args);

#endif
