/* pt_matmul.h — kernel signatures of the matmul / linear algebra family, registered in pt_dispatch.h's
 * table by src/kernels/cpu/matmul.c (OpenBLAS + LAPACK), src/kernels/cuda/matmul.cu (cuBLAS) and
 * src/kernels/cuda/linalg.cu (cuSOLVER: qr, cholesky, inverse). The op fronts live in src/kernels/matmul.c.
 *
 * Dimension letters: B batch (broadcast batch dims flattened), M rows of A and C, K inner, N columns
 * of B and C.
 *
 * kernel names (op, dtype):
 *   "matmul"   C[b] = A[b] · B[b] for b < batch, C contiguous row-major [B, M, N].
 *              A[b] starts at a + aoff[b] (elements; aoff NULL = 0 for all b); it is row-major with
 *              leading dimension lda (ta = 0), or stored transposed: a row-major [K, M] matrix with
 *              leading dimension lda (ta = 1). Same for B ([K, N], or [N, K] when tb = 1).
 *              All sizes are > 0 and fit a BLAS int (the front checks).
 *   "qr"       reduced QR of one row-major [M, N] matrix a: q [M, min(M,N)], r [min(M,N), N]
 *   "cholesky" in place on batch row-major [N, N] matrices: lower (upper = 0) or upper factor, the
 *              other triangle zeroed
 *   "inverse"  in place on batch row-major [N, N] matrices
 * The linalg kernels return 0 on success, the LAPACK info (> 0: the failing minor / zero pivot,
 * 1-based) for the matrix args->bad, or a negative value: -1 out of memory, < -1 LAPACK rejected an
 * argument (a bug).
 */
#ifndef PT_MATMUL_H
#define PT_MATMUL_H

#include "../host/pt_tensor.h"

typedef struct {
    int64_t batch, m, n, k;
    const void *a, *b;
    void *out;
    const int64_t *aoff, *boff;
    int ta, tb;
    int64_t lda, ldb;
} pt_matmul_args;

typedef void (*pt_matmul_kernel)(const pt_matmul_args *args);

/* The backward of a linear layer out = A · Wᵀ (A [..., K], W [N, K], g [..., N]): *da = g · W and
 * *dw = gᵀ · A over the folded rows, through pt_matmul (grad mode off; either pointer may be NULL: not
 * wanted). The matmul node of x · W:transpose() and the fused linear ops (linear_act.c) share it, so
 * their gradients are the same bits. */
pt_status pt_linear_backward(pt_tensor *a, pt_tensor *w, pt_tensor *g, pt_tensor **da, pt_tensor **dw);

/* The operand checks of a fused linear op x · Wᵀ (linear_act.c, head_ce.c): W has x's dtype and device,
 * x has at least one dim, W is 2-d [rows, in] with in = x's last dim. wname names W in the messages
 * ("W", "w"), wdims its dims ("[out, in]", "[V, C]") and in its second dim ("in", "C"). The dtypes each
 * op accepts are its own check. */
pt_status pt_linear_check_pair(const char *op, const pt_tensor *x, const pt_tensor *w, const char *wname,
                               const char *wdims, const char *in);

/* One 2-d product through a "matmul" kernel (batch 1, no offsets; defined in matmul.c): out [m, n],
 * contiguous row-major, = op(a) · op(b) with a row-major [m, k] of leading dimension lda (ta = 0) or a
 * row-major [k, m] passed transposed (ta = 1), b likewise [k, n] (tb = 0) or [n, k] (tb = 1). All sizes
 * > 0 and within a BLAS int: the callers check and skip empty products. */
void pt_matmul_2d(pt_matmul_kernel mm, int64_t m, int64_t n, int64_t k, const void *a, int ta, int64_t lda,
                  const void *b, int tb, int64_t ldb, void *out);

typedef struct {
    int64_t batch, m, n;
    void *a;        /* input (qr) or in/out (cholesky, inverse), contiguous */
    void *q, *r;    /* qr outputs */
    int upper;      /* cholesky */
    int64_t bad;    /* set by the kernel: index of the failing matrix */
} pt_linalg_args;

typedef int (*pt_linalg_kernel)(pt_linalg_args *args);

#endif
