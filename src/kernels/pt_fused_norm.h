/* pt_fused_norm.h — the fused RMS-norm prologues of the GPT block (issue 11): op fronts
 * (src/kernels/fused_norm.c) and the kernel signatures registered in the pt_dispatch.h table by
 * src/kernels/cpu/fused_norm.c (f32, f64) and src/kernels/cuda/fused_norm.cu (f32, f64, bf16 storage
 * with fp32 math).
 *
 * Dimension letters: B batch, T time, H heads, D head dim, C channels, N rows (all dims but the last).
 * Tests: tests/c/test_fused_norm.c (exact values, errors, f64 finite-difference gradient checks, bitwise
 *        equality with the unfused ops in f32), tests/lua/test_fused_norm.lua (Lua API, the GPT switch
 *        fused_norms), tests/gpu/test_fused_norm.lua (CUDA against the CPU).
 *
 * Ops (inputs of any layout; all float inputs of one op share a dtype and a device; bf16 only on CUDA):
 *   pt_mix_rms_norm      y = x⊙wx + (x0⊙w0)·x0_scale   (wx, w0 [C] over the last dim; wx NULL means 1)
 *                        h = rms_norm(y, eps)·scale      (scale = the ln-scale λ; 1 = none)
 *                        One kernel pass per row writes y and h. Two autograd nodes: "mix" on y (inputs
 *                        x, x0, wx, w0) and "mix_rms_norm" on h (input y, rms_norm's backward with the
 *                        saved 1/rms), so h's gradient flows h → y → x, x0, wx, w0.
 *                        The float order is the unfused one's: fl(fl(x·wx) + fl(fl(x0·w0)·x0_scale))
 *                        (the last product only when x0_scale != 1), then pt_rms_norm's rounding, so on
 *                        the CPU y and h equal `x*wx + x0*w0` (or `x + (x0*w0)*s`) and pt_rms_norm(y) bit
 *                        for bit, and so do the gradients (weight sums in f64, row order, like sum_to).
 *   pt_rms_norm_rotary   x [B,T,H,D] -> rms_norm over D (eps, scale 1), then pt_rotary's RoPE (rotary_dims,
 *                        base, train_len NTK rule, offset; same f32 cos/sin), then ×gain[h] when gain [H]
 *                        is given (the q gain; NULL for k). One node; the backward is fused (×gain,
 *                        inverse rotation, rms_norm backward; dgain = Σ g·rot in f64). On the CPU the
 *                        forward and the gradients equal pt_rms_norm → pt_rotary → pt_mul bit for bit.
 */
#ifndef PT_FUSED_NORM_H
#define PT_FUSED_NORM_H

#include "../host/pt_autograd.h"
#include "../host/pt_tensor.h"
#include "pt_fused.h" /* PT_RMS_NORM_EPS, pt_rmsnorm_args, pt_rotary_effective_base */

/* y, h receive new references (both NULL on error). wx may be NULL. */
pt_status pt_mix_rms_norm(pt_tensor **y, pt_tensor **h, pt_tensor *x, pt_tensor *x0, pt_tensor *wx, pt_tensor *w0,
                          double eps, double scale, double x0_scale);
/* gain may be NULL. rotary_dims 0 = D; train_len 0 = no NTK scaling. */
pt_status pt_rms_norm_rotary(pt_tensor **out, pt_tensor *x, pt_tensor *gain, double eps, int64_t rotary_dims,
                             double base, int64_t train_len, int64_t offset);

/* ---- kernels: every pointer is contiguous and already at its view offset; pointers are of the op's
 * dtype except rstd, which is f32 for bf16 tensors (the op's dtype otherwise). Kernels write every
 * element of their outputs and return PT_OK or PT_ERR_OOM / PT_ERR_DEVICE. ---- */

/* "mix_rms_norm": x, x0 [N,C], wx (or NULL), w0 [C] -> y, h [N,C], rstd [N] = 1/sqrt(mean(y²) + eps)
 * "mix_bwd":      g (dL/dy) -> dx = g⊙wx (g when wx is NULL), dx0 = fl(g·x0_scale)⊙w0,
 *                 dwx = Σ_rows g⊙x, dw0 = Σ_rows fl(g·x0_scale)⊙x0 (sums in f64, rows in order);
 *                 any of dx, dx0, dwx, dw0 may be NULL (not wanted)
 * h's backward is rms_norm's own (pt_rms_norm_backward, kernel "rms_norm_bwd" with x = y). */
typedef struct {
    int64_t n, c;
    double eps, scale, x0_scale;
    const void *x, *x0, *wx, *w0, *g;
    void *y, *h, *rstd;
    void *dx, *dx0, *dwx, *dw0;
} pt_mixnorm_args;

/* "rms_norm_rotary":     x [B,T,H,D], gain [H] (or NULL) -> y [B,T,H,D], rstd [B·T·H]
 * "rms_norm_rotary_bwd": x, gain, rstd, g -> dx (or NULL), dgain [H] (or NULL; needs gain)
 * base is the effective base (NTK already applied); r the rotary dims (even, <= D). */
typedef struct {
    int64_t B, T, H, D, r, offset;
    double eps, base;
    const void *x, *gain, *g;
    void *y, *rstd;
    void *dx, *dgain;
} pt_normrot_args;

typedef pt_status (*pt_mixnorm_kernel)(const pt_mixnorm_args *a);
typedef pt_status (*pt_normrot_kernel)(const pt_normrot_args *a);

#endif
