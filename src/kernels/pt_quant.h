/* pt_quant.h — the per-element hot loops of post-training quantization (spec §2.5, §3.6, §4.5,
 * §5.4): per-row clip/scale/round with the per-row reconstruction error, dequantization, and the
 * GPTQ column sweep. The policies (which tensor gets which scheme, percentile search, SDClip scales,
 * pruning) live in lua/lib/proteus/quant.lua; these fronts only do what needs a loop over elements.
 *
 * Fronts: src/kernels/quant.c. CPU kernels: src/kernels/cpu/quant.c. Lua: module proteus._quant
 * (src/bindings/quant.c) behind lua/lib/proteus/quant.lua. Tests: tests/c/test_quant.c (exact small
 * cases), tests/lua/test_quant.lua (against tests/reference/quant_ref.py, numpy/PyTorch).
 *
 * Numerics (f32, as the records' PyTorch code):
 *   rows     per row r of W [R, C]:  x = clip ? clamp(w, −clip_r, clip_r) : w;
 *            q = clamp(rint(x / scale_r), qmin, qmax)   (f32 division, round half to even as torch.round)
 *            err_r = Σ_c (w − q·err_scale_r)²           (double accumulation, w and q·s exact in double)
 *   dequant  out[r, c] = q[r, c] · scale_r               (f32 product; one scale = per tensor)
 *   gptq     H [C, C] f32 symmetric, W [R, C] f32, scale [R] (used as given, f32):
 *            dead = {j : H_jj == 0}: H_jj ← 1 and column j of W ← 0;
 *            H_jj += damp · mean(diag H) (every j); perm = columns by descending diag H (stable);
 *            U = chol_upper((H[perm, perm])⁻¹); then, in blocks of `block` columns, for column i:
 *            q_i = clamp(rint(w_i / s), qmin, qmax);  e = (w_i − q_i·s) / U_ii;
 *            w_j −= e · U_ij for the later columns j of the block; after the block
 *            W[:, rest] −= E · U[block, rest]; finally the columns are un-permuted.
 *
 * Kernel table entries (pt_dispatch.h), keyed on the weight dtype (f32):
 *   "quant_rows"        pt_quant_rows_args
 *   "quant_dequant"     pt_quant_dequant_args
 *   "quant_gptq_sweep"  pt_quant_gptq_args   (W permuted, U computed by the front)
 * A CUDA file adds the same names for PT_DEV_CUDA; every pointer is device memory then.
 */
#ifndef PT_QUANT_H
#define PT_QUANT_H

#include <stdint.h>

#include "../host/pt_tensor.h"

typedef struct {
    int64_t rows, cols;
    const float *w;         /* [rows, cols] */
    const float *clip;      /* [rows] clip magnitudes, or NULL: w is not clamped */
    const float *scale;     /* [rows] scales used to quantize */
    const float *err_scale; /* [rows] scales used to reconstruct for err (NULL: err not computed) */
    int8_t *q;              /* [rows, cols] out */
    double *err;            /* [rows] out, or NULL */
    int qmin, qmax;
} pt_quant_rows_args;

typedef struct {
    int64_t rows, cols;
    const int8_t *q;    /* [rows, cols] */
    const float *scale; /* [rows] */
    float *out;         /* [rows, cols] */
} pt_quant_dequant_args;

typedef struct {
    int64_t rows, cols, block;
    float *w;           /* [rows, cols] permuted columns, updated in place */
    const float *u;     /* [cols, cols] upper Cholesky factor of the permuted inverse Hessian */
    const float *scale; /* [rows] */
    int8_t *q;          /* [rows, cols] out (permuted order) */
    float *err;         /* scratch [rows, block] */
    int qmin, qmax;
} pt_quant_gptq_args;

typedef void (*pt_quant_rows_kernel)(const pt_quant_rows_args *a);
typedef void (*pt_quant_dequant_kernel)(const pt_quant_dequant_args *a);
typedef void (*pt_quant_gptq_kernel)(const pt_quant_gptq_args *a);

/* q (new i8 [R, C]) and err (new f64 [R], when err != NULL and err_scale given) for w [R, C]
 * (any float dtype, converted to f32); clip may be NULL; clip/scale/err_scale: [R] tensors of any
 * float dtype (converted to f32 first, so an f16 scale is used exactly as stored). qmin < qmax within
 * [−128, 127]. */
pt_status pt_quant_rows(pt_tensor **q, pt_tensor **err, pt_tensor *w, pt_tensor *clip, pt_tensor *scale,
                        pt_tensor *err_scale, int qmin, int qmax);
/* out (new f32, q's shape) = q · scale; q i8 with ndim ≥ 1, scale with shape[0] of q entries (per
 * row: everything after dim 0 is the row) or 1 entry (per tensor). */
pt_status pt_quant_dequant(pt_tensor **out, pt_tensor *q, pt_tensor *scale);
/* GPTQ of w [R, C] with Hessian h [C, C] and row scales scale [R] (see the top of this file);
 * q: new i8 [R, C] in the original column order. damp = 0.01 in #1539; block = 128. */
pt_status pt_quant_gptq(pt_tensor **q, pt_tensor *w, pt_tensor *h, pt_tensor *scale, int qmin, int qmax,
                        double damp, int64_t block);

#endif
