/* pt_elementwise.h — kernel signatures of the elementwise family (registered in pt_dispatch.h's
 * table by src/kernels/cpu/elementwise.c and src/kernels/cuda/elementwise.cu).
 *
 * The front (src/kernels/elementwise.c) hands every kernel a pt_ew_args: the output is contiguous
 * with shape `shape`; inputs are described by element strides over that same shape (0 where
 * broadcast), with data pointers already at their view offsets.
 *
 * kernel names (op, dtype):
 *   "ew_binary"      out = a OP b                 (op = pt_binop; comparisons write bool)
 *   "ew_binary_s"    out = a OP s  or  s OP a      (s = args.s, args.scalar_first)
 *   "ew_unary"       out = OP(a)                  (op = pt_unop)
 *   "ew_unary_bwd"   out = g * OP'(a, y)          (a = input, b = output y, c = g; all same shape)
 *   "ew_leaky"       out = a > 0 ? a : s*a ;  "ew_leaky_bwd"  out = c * (a > 0 ? 1 : s)
 *   "ew_clamp"       out = clamp(a, s, s2) ;  "ew_clamp_bwd"   out = c * (s <= a <= s2)
 *   "ew_where"       out = c != 0 ? a : b   (c's dtype is args.cdtype)
 *   "ew_sum_to"      out (shape) += a broadcast-reduced: a has shape args.ashape (ndim args.andim),
 *                    out strides sa (0 on reduced dims) — out must be zeroed by the caller
 *   "ew_axpy"        a += s * b (in place, a contiguous; b strided over a's shape)
 */
#ifndef PT_ELEMENTWISE_H
#define PT_ELEMENTWISE_H

#include "../host/pt_tensor.h"

typedef struct {
    int op;
    int ndim;
    int64_t shape[PT_MAX_DIMS];
    int64_t n; /* numel of shape */
    void *out;
    const void *a, *b, *c;
    int64_t sa[PT_MAX_DIMS], sb[PT_MAX_DIMS], sc[PT_MAX_DIMS];
    double s, s2;
    int scalar_first;
    pt_dtype cdtype;
    int andim;
    int64_t ashape[PT_MAX_DIMS];
} pt_ew_args;

typedef void (*pt_ew_kernel)(const pt_ew_args *args);

#endif
