/* pt_fused.h — the fused differentiable ops of the GPT family (spec parameter-golf.md §2–§5): op fronts
 * (src/kernels/fused.c, one autograd node each) and the kernel signatures registered in the
 * pt_dispatch.h table by src/kernels/cpu/fused.c (f32, f64) and, later, src/kernels/cuda/fused.cu.
 *
 * Dimension letters: B batch, T time, H query heads, Hkv key/value heads, D head dim, C channels,
 * V vocab, N rows (all dims but the last), R LoRA rank.
 * Tests: tests/c/test_fused.c (exact values, errors, f64 finite-difference gradient checks),
 *        tests/lua/test_functional.lua (Lua API), tests/reference/fused_ops_ref.py (PyTorch parity).
 *
 * Ops (out receives a new reference; inputs are any layout, f32 or f64 on the CPU, all float
 * inputs of one op share a dtype):
 *   pt_rms_norm          y = x / sqrt(mean(x², last dim) + eps) · scale     (scale = λ of ln-scale; 1 = none)
 *   pt_rotary            RoPE on the first r dims of x [B,T,H,D], half-split convention of §2.2:
 *                        out1 = x1·cos + x2·sin, out2 = −x1·sin + x2·cos; θ = (t + offset)·inv_freq_j,
 *                        inv_freq_j = base'^(−2j/r); base' = base·(T/train_len)^(r/(r−2)) when
 *                        train_len > 0 and T > train_len (NTK), else base. r = 0 means r = D.
 *   pt_attention         causal softmax(q kᵀ·scale) v with GQA: q [B,T,H,D], k, v [B,T,Hkv,D];
 *                        query head h reads kv head ⌊h/(H/Hkv)⌋; scale <= 0 means 1/√D. Also bf16 on
 *                        CUDA (cuda/attention.cu; fp32 accumulation).
 *   pt_xsa               y − (y·v̂)v̂ per position and head, v̂ = v/max(‖v‖, 1e-12) of the head's kv group.
 *   pt_relu2             relu(x)²
 *   pt_leaky_relu2       leaky_relu(x, slope)²
 *   pt_star_relu         relu(x)²·scale + bias, scale and bias [C] over the last dim (§5.2)
 *   pt_softcap_cross_entropy
 *                        z = cap·tanh(logits/cap) (cap <= 0: z = logits), nll = logsumexp(z) − z_target;
 *                        logits [..., V], targets [...] integer ids; reduction mean (scalar, f64 sum)
 *                        or none (shape of targets). Differentiable in logits only.
 *   pt_bigram_hash       tokens [..., T] integer -> i64 buckets (§3.2; int32 reading: cpu/fused.c), not
 *                        differentiable
 *   pt_smear_gate        (1−σ(g))⊙x + σ(g)⊙shift(x), x [B,T,C] (or [T,C]), g [C]
 *   pt_lora              (x Aᵀ) Bᵀ per batch element: x [B,T,in], A [B,R,in], Bw [B,out,R] -> [B,T,out]
 */
#ifndef PT_FUSED_H
#define PT_FUSED_H

#include "../host/pt_autograd.h"
#include "../host/pt_tensor.h"

/* FLT_EPSILON: the eps torch's F.rms_norm uses when eps=None (§2.1) */
#define PT_RMS_NORM_EPS 1.1920928955078125e-07

typedef enum { PT_CE_MEAN = 0, PT_CE_NONE = 1 } pt_ce_reduction;

pt_status pt_rms_norm(pt_tensor **out, pt_tensor *x, double eps, double scale);
/* The backward of an RMS-norm node: saved[0] = the normalised input x, saved[1] = rstd [rows], f[0] =
 * scale; kernel "rms_norm_bwd". Also the backward of pt_mix_rms_norm's h node (pt_fused_norm.h). */
pt_status pt_rms_norm_backward(pt_node *node, pt_tensor *g, pt_tensor **gin);
pt_status pt_rotary(pt_tensor **out, pt_tensor *x, int64_t rotary_dims, double base, int64_t train_len,
                    int64_t offset);
/* base' actually used for a sequence of length T (the NTK rule above); exposed for tests and logs. */
double pt_rotary_effective_base(double base, int64_t rotary_dims, int64_t T, int64_t train_len);
pt_status pt_attention(pt_tensor **out, pt_tensor *q, pt_tensor *k, pt_tensor *v, double scale);
pt_status pt_xsa(pt_tensor **out, pt_tensor *y, pt_tensor *v);
pt_status pt_relu2(pt_tensor **out, pt_tensor *x);
pt_status pt_leaky_relu2(pt_tensor **out, pt_tensor *x, double slope);
pt_status pt_star_relu(pt_tensor **out, pt_tensor *x, pt_tensor *scale, pt_tensor *bias);
/* the mean of a per-position NLL tensor (f32 or f64) as a 0-d tensor on its device and dtype: an f64
 * sum (row order on the CPU; the "ce_mean" kernel below), on the device (the CE ops' reduction "mean") */
pt_status pt_ce_mean(pt_tensor **out, pt_tensor *nll);
pt_status pt_softcap_cross_entropy(pt_tensor **out, pt_tensor *logits, pt_tensor *targets, double softcap,
                                   pt_ce_reduction reduction);
pt_status pt_bigram_hash(pt_tensor **out, pt_tensor *tokens, int64_t buckets);
pt_status pt_smear_gate(pt_tensor **out, pt_tensor *x, pt_tensor *gate);
pt_status pt_lora(pt_tensor **out, pt_tensor *x, pt_tensor *A, pt_tensor *Bw);

/* ---- kernels: every pointer is contiguous and already at its view offset; f32 kernels read and
 * write float, f64 kernels double; index arrays are int64_t. Kernels return PT_OK or PT_ERR_OOM
 * (workspace); they never see invalid arguments (the fronts check them). ---- */

/* "rms_norm":     x [N,C] -> y [N,C], rstd [N] = 1/sqrt(mean(x²)+eps)
 * "rms_norm_bwd": dx = scale·rstd·(g − x·rstd²·mean(g·x)) */
typedef struct {
    int64_t n, c;
    double eps, scale;
    const void *x, *g;
    void *y, *rstd, *dx;
} pt_rmsnorm_args;

/* "rotary": y = rotate(x) by +θ (inverse = 0) or by −θ (inverse = 1: the backward, g -> dx).
 * base is the effective base (NTK already applied); f32 computes cos/sin in f32 like the reference. */
typedef struct {
    int64_t B, T, H, D, r, offset;
    double base;
    int inverse;
    const void *x;
    void *y;
} pt_rotary_args;

/* "attention":     q,k,v -> y [B,T,H,D], lse [B,H,T] (log-sum-exp of the scaled causal scores; f32 when
 *                  q is bf16, else q's dtype)
 * "attention_bwd": q,k,v,y,lse,gy -> dq, dk, dv (dk, dv must be zeroed by the caller) */
typedef struct {
    int64_t B, T, H, Hkv, D;
    double scale;
    const void *q, *k, *v, *gy;
    void *y, *lse;   /* forward outputs; the backward reads them */
    void *dq, *dk, *dv;
} pt_attention_args;

/* "xsa": y, v -> out ; "xsa_bwd": y, v, g -> dy, dv.  n = B·T positions. */
typedef struct {
    int64_t n, H, Hkv, D;
    const void *y, *v, *g;
    void *out, *dy, *dv;
} pt_xsa_args;

/* "act2": out = f(x) ; "act2_bwd": g -> dx (and dscale, dbias for star: [C], written, not added).
 * op: PT_ACT2_RELU2, PT_ACT2_LEAKY2 (slope), PT_ACT2_STAR (scale, bias [C]). x is [N, C]. */
typedef enum { PT_ACT2_RELU2 = 0, PT_ACT2_LEAKY2 = 1, PT_ACT2_STAR = 2 } pt_act2_op;
typedef struct {
    int op;
    int64_t n, c;
    double slope;
    const void *x, *scale, *bias, *g;
    void *out, *dx, *dscale, *dbias;
} pt_act2_args;

/* "softcap_ce":     logits [N,V], targets [N] (i64, in range) -> nll [N], lse [N] (of the capped z)
 * "softcap_ce_bwd": dlogits[i,j] = g[i·gstride]·gscale·(softmax(z)_ij − [j = t_i])·dz/dlogit
 * The fronts check the targets first (pt_index_check_range, the "index_check" kernel); inside a CUDA
 * graph capture that check is deferred, so for a row whose target is out of range the CUDA kernels
 * never read outside the row: the forward gives a NaN nll, the backward the softmax gradient without
 * the one-hot term (as the CPU kernel does); the deferred check fails the step at the next sync. */
typedef struct {
    int64_t n, V;
    double cap;
    const void *logits;
    const int64_t *targets;
    void *nll, *lse;
    const void *g;
    int64_t gstride; /* 0: one upstream value for every row (reduction mean) */
    double gscale;   /* 1/N for mean, 1 for none */
    void *dlogits;
} pt_ce_args;

/* "bigram_hash" (dtype i64): tokens [N,T] i64 -> buckets [N,T] i64 */
typedef struct {
    int64_t n, T, buckets;
    const int64_t *tokens;
    int64_t *out;
} pt_bigram_args;

/* "smear_gate": x [B,T,C], gate [C] -> y ; "smear_gate_bwd": gy -> dx, dgate [C] */
typedef struct {
    int64_t B, T, C;
    const void *x, *gate, *gy;
    void *y, *dx, *dgate;
} pt_smear_args;

/* "lora": x [B,T,in], A [B,R,in], Bw [B,out,R] -> h = x Aᵀ [B,T,R], y = h Bwᵀ [B,T,out]
 * "lora_bwd": gy -> dx, dA, dBw (any of them may be NULL = not wanted) */
typedef struct {
    int64_t B, T, in, out, R;
    const void *x, *A, *Bw, *gy;
    void *h, *y, *dx, *dA, *dBw;
} pt_lora_args;

typedef pt_status (*pt_rmsnorm_kernel)(const pt_rmsnorm_args *a);
typedef pt_status (*pt_rotary_kernel)(const pt_rotary_args *a);
typedef pt_status (*pt_attention_kernel)(const pt_attention_args *a);
typedef pt_status (*pt_xsa_kernel)(const pt_xsa_args *a);
typedef pt_status (*pt_act2_kernel)(const pt_act2_args *a);
typedef pt_status (*pt_ce_kernel)(const pt_ce_args *a);
typedef pt_status (*pt_bigram_kernel)(const pt_bigram_args *a);
typedef pt_status (*pt_smear_kernel)(const pt_smear_args *a);
typedef pt_status (*pt_lora_kernel)(const pt_lora_args *a);

/* "ce_mean" (f32, f64; pt_ce_mean): out[0] = (sum of nll[0..n) in f64) / n, rounded once to the dtype.
 * nll contiguous [n], out a 0-d tensor's element, both on the kernel's device. The CPU adds in row
 * order (the CE ops' documented reduction); CUDA in one block: fixed strided f64 partial sums, then a
 * fixed tree (deterministic, not bitwise the CPU's order). No host reads: capturable. */
typedef pt_status (*pt_ce_mean_kernel)(const void *nll, int64_t n, void *out);

#endif
