/* pt_ops.h — the tensor operations (op fronts). Each op checks its arguments (errors name the op and
 * the shapes/dtypes involved), allocates its output, dispatches to the kernel registered for
 * (op, device, dtype) in pt_dispatch.h, and records an autograd node when grad mode is on.
 *
 * Conventions: `out` receives a new reference. dims may be negative (counted from the end).
 * Compute dtypes on the CPU: f32 and f64 (bf16/f16 are storage types: cast with pt_cast).
 * Integer dtypes are accepted where it makes sense (comparisons, add/sub/mul, index ops, sort).
 * Op families and their files:
 *   elementwise (binary/unary/scalar/where/cast/clamp)   src/kernels/elementwise.c, cpu/elementwise.c
 *   views and joins (reshape ... cat/stack)              src/kernels/view.c
 *   reductions, softmax                                   src/kernels/reduce.c, cpu/reduce.c
 *   matmul, linalg (QR, Cholesky, inverse)               src/kernels/matmul.c, cpu/matmul.c
 *   indexing (gather, scatter_add, index_select, embedding) src/kernels/index.c, cpu/index.c
 *   sorting (sort, topk, kthvalue, quantile)             src/kernels/sort.c, cpu/sort.c
 */
#ifndef PT_OPS_H
#define PT_OPS_H

#include "../host/pt_autograd.h"
#include "../host/pt_tensor.h"

/* ---- elementwise ---- */
typedef enum {
    PT_BIN_ADD, PT_BIN_SUB, PT_BIN_MUL, PT_BIN_DIV, PT_BIN_POW, PT_BIN_MAX, PT_BIN_MIN,
    PT_BIN_EQ, PT_BIN_NE, PT_BIN_LT, PT_BIN_LE, PT_BIN_GT, PT_BIN_GE, /* comparisons -> bool */
    PT_NBINOPS
} pt_binop;

typedef enum {
    PT_UN_NEG, PT_UN_EXP, PT_UN_LOG, PT_UN_TANH, PT_UN_SIGMOID, PT_UN_RELU, PT_UN_SQRT, PT_UN_RSQRT,
    PT_UN_ABS, PT_UN_SIGN, PT_UN_ROUND, PT_UN_SIN, PT_UN_COS, PT_UN_SQUARE, PT_UN_RECIPROCAL,
    PT_NUNOPS
} pt_unop;

const char *pt_binop_name(pt_binop op);
const char *pt_unop_name(pt_unop op);

pt_status pt_binary(pt_tensor **out, pt_binop op, pt_tensor *a, pt_tensor *b);
/* a op s (scalar_first = 0) or s op a (scalar_first = 1) */
pt_status pt_binary_scalar(pt_tensor **out, pt_binop op, pt_tensor *a, double s, int scalar_first);
pt_status pt_unary(pt_tensor **out, pt_unop op, pt_tensor *a);
pt_status pt_add(pt_tensor **out, pt_tensor *a, pt_tensor *b);
pt_status pt_sub(pt_tensor **out, pt_tensor *a, pt_tensor *b);
pt_status pt_mul(pt_tensor **out, pt_tensor *a, pt_tensor *b);
pt_status pt_div(pt_tensor **out, pt_tensor *a, pt_tensor *b);
pt_status pt_add_scalar(pt_tensor **out, pt_tensor *a, double s);
pt_status pt_mul_scalar(pt_tensor **out, pt_tensor *a, double s);
pt_status pt_pow_scalar(pt_tensor **out, pt_tensor *a, double p);
pt_status pt_neg(pt_tensor **out, pt_tensor *a);
/* leaky relu with negative slope */
pt_status pt_leaky_relu(pt_tensor **out, pt_tensor *a, double slope);
/* clamp to [lo, hi]; pass -INFINITY / INFINITY for a one-sided clamp. Gradient 1 inside, 0 outside. */
pt_status pt_clamp(pt_tensor **out, pt_tensor *a, double lo, double hi);
/* cond ? a : b with broadcasting; cond is bool (or any dtype, nonzero = true). */
pt_status pt_where(pt_tensor **out, pt_tensor *cond, pt_tensor *a, pt_tensor *b);
/* dtype conversion, differentiable between float dtypes (round to nearest even for bf16/f16). */
pt_status pt_cast(pt_tensor **out, pt_tensor *a, pt_dtype dt);
/* In place, no autograd (for optimizers and accumulators): a += alpha * b (b broadcast to a). */
pt_status pt_add_(pt_tensor *a, pt_tensor *b, double alpha);
pt_status pt_mul_scalar_(pt_tensor *a, double s);
/* Sums a broadcast gradient g back to `shape` (the reverse of broadcasting). New reference. */
pt_status pt_sum_to_shape(pt_tensor **out, pt_tensor *g, int ndim, const int64_t *shape);
/* Broadcast shape of a and b; error names both shapes. */
pt_status pt_broadcast_shape(const char *op, int an, const int64_t *as, int bn, const int64_t *bs, int *on,
                             int64_t *os);

/* ---- views and joins (differentiable; views share storage) ---- */
/* one entry of shape may be -1 (inferred); copies only if a is not viewable */
pt_status pt_reshape(pt_tensor **out, pt_tensor *a, int ndim, const int64_t *shape);
pt_status pt_transpose(pt_tensor **out, pt_tensor *a, int d0, int d1);
pt_status pt_permute(pt_tensor **out, pt_tensor *a, const int *perm);
pt_status pt_narrow(pt_tensor **out, pt_tensor *a, int dim, int64_t start, int64_t length);
/* a[..., index, ...] with that dim removed */
pt_status pt_select(pt_tensor **out, pt_tensor *a, int dim, int64_t index);
pt_status pt_expand(pt_tensor **out, pt_tensor *a, int ndim, const int64_t *shape);
pt_status pt_contiguous(pt_tensor **out, pt_tensor *a);
pt_status pt_unsqueeze(pt_tensor **out, pt_tensor *a, int dim);
pt_status pt_squeeze(pt_tensor **out, pt_tensor *a, int dim);
pt_status pt_cat(pt_tensor **out, int n, pt_tensor *const *ts, int dim);
pt_status pt_stack(pt_tensor **out, int n, pt_tensor *const *ts, int dim);
/* Normalizes a possibly negative dim for an ndim-d tensor, with an error naming the op. */
pt_status pt_norm_dim(const char *op, int ndim, int *dim);

/* ---- reductions (differentiable) ---- */
/* ndims = 0 reduces over all dims. */
pt_status pt_sum(pt_tensor **out, pt_tensor *a, int ndims, const int *dims, int keepdim);
pt_status pt_mean(pt_tensor **out, pt_tensor *a, int ndims, const int *dims, int keepdim);
/* values (differentiable) and indices (i64) along one dim; indices may be NULL */
pt_status pt_max(pt_tensor **values, pt_tensor **indices, pt_tensor *a, int dim, int keepdim);
pt_status pt_min(pt_tensor **values, pt_tensor **indices, pt_tensor *a, int dim, int keepdim);
pt_status pt_argmax(pt_tensor **out, pt_tensor *a, int dim, int keepdim);
/* p-norm (p = 2 typical; p = INFINITY allowed) */
pt_status pt_norm(pt_tensor **out, pt_tensor *a, double p, int ndims, const int *dims, int keepdim);
pt_status pt_var(pt_tensor **out, pt_tensor *a, int ndims, const int *dims, int correction, int keepdim);
pt_status pt_std(pt_tensor **out, pt_tensor *a, int ndims, const int *dims, int correction, int keepdim);
pt_status pt_softmax(pt_tensor **out, pt_tensor *a, int dim);
pt_status pt_log_softmax(pt_tensor **out, pt_tensor *a, int dim);

/* ---- matmul and linear algebra ---- */
/* 1-D/2-D/batched (batch dims broadcast) like torch.matmul; OpenBLAS on the CPU. Differentiable. */
pt_status pt_matmul(pt_tensor **out, pt_tensor *a, pt_tensor *b);
/* Reduced QR of an m×n matrix (LAPACK geqrf/orgqr); not differentiable. */
pt_status pt_qr(pt_tensor **q, pt_tensor **r, pt_tensor *a);
/* Cholesky factor of a symmetric positive definite matrix (upper = 1: U with A = UᵀU). */
pt_status pt_cholesky(pt_tensor **out, pt_tensor *a, int upper);
/* Inverse of a square matrix (LAPACK getrf/getri); error names a singular matrix. */
pt_status pt_inverse(pt_tensor **out, pt_tensor *a);

/* ---- indexing ---- */
/* idx: integer tensor (i64/i32/u16/u8); out-of-range indices are an error naming the index. */
pt_status pt_index_select(pt_tensor **out, pt_tensor *a, int dim, pt_tensor *idx);
pt_status pt_gather(pt_tensor **out, pt_tensor *a, int dim, pt_tensor *idx);
/* out = a with src added at idx along dim (a new tensor; differentiable in a and src). */
pt_status pt_scatter_add(pt_tensor **out, pt_tensor *a, int dim, pt_tensor *idx, pt_tensor *src);
/* weight [V, C], idx any shape -> [..., C]; backward scatters into weight rows. */
pt_status pt_embedding(pt_tensor **out, pt_tensor *weight, pt_tensor *idx);

/* ---- sorting and order statistics (not differentiable except values of sort/topk/kthvalue) ---- */
pt_status pt_sort(pt_tensor **values, pt_tensor **indices, pt_tensor *a, int dim, int descending);
pt_status pt_topk(pt_tensor **values, pt_tensor **indices, pt_tensor *a, int64_t k, int dim, int largest);
/* k is 1-based as in torch.kthvalue (k-th smallest) */
pt_status pt_kthvalue(pt_tensor **values, pt_tensor **indices, pt_tensor *a, int64_t k, int dim, int keepdim);
/* torch.quantile with linear interpolation; dim = PT_ALL_DIMS for the flattened tensor */
#define PT_ALL_DIMS (-1000)
pt_status pt_quantile(pt_tensor **out, pt_tensor *a, double q, int dim, int keepdim);

#endif
