/* pt_head_ce.h — the LM head fused with the softcapped cross-entropy, computed in row chunks so the
 * [N, V] logits never exist at once (proteus issue 11). The front and its autograd node live in
 * src/kernels/head_ce.c; there are no kernels of its own: it composes the "matmul" kernel of
 * pt_matmul.h (OpenBLAS on the CPU, cuBLAS on CUDA) and the "softcap_ce" / "softcap_ce_bwd" kernels of
 * pt_fused.h through the pt_dispatch.h table, so it runs wherever those have kernels (f32, f64, and
 * bf16 x and w: bf16 GEMMs whose logits are widened to f32 for the CE, as the unfused path's
 * lin(bf16):to("f32") — nll, lse and the loss are f32; the gradient of the logits is rounded to bf16
 * before the backward GEMMs, as the unfused cast node does; dw's chunk products are summed in f32 and
 * rounded to bf16 once, so with one chunk dw is the unfused bits and with several it differs only there).
 *
 *   pt_linear_softcap_cross_entropy(&out, x, w, targets, softcap, chunk, reduction)
 *     = pt_softcap_cross_entropy(x · wᵀ, targets, softcap, reduction)
 *   x [..., C] (N rows: all dims but the last), w [V, C] (the tied embedding), targets [...] (the shape
 *   of x without its last dim; integer ids in [0, V)). chunk: rows per chunk, >= 1; 0 = automatic
 *   (pt_head_ce_auto_chunk of the CE dtype: a chunk's logits take at most PT_HEAD_CE_CHUNK_BYTES).
 *   softcap 0 = no cap.
 *   reduction mean (scalar; f64 sum in row order, as pt_softcap_cross_entropy) or none (targets' shape).
 *
 * Forward, per chunk of rows [r0, r0 + n): logits_c = x_c · wᵀ, then "softcap_ce" -> nll, lse.
 * Only lse [N] is saved (with x, w, targets). Backward, per chunk: recompute logits_c, "softcap_ce_bwd"
 * -> dlogits_c, dx_c = dlogits_c · w, dw += dlogits_cᵀ · x_c. Extra memory: two chunks of logits
 * (logits_c, dlogits_c) plus, with more than one chunk, one [V, C] partial of dw.
 * With one chunk (chunk >= N) the GEMM and kernel calls are the unfused path's, so loss, dx and dw are
 * bit for bit the same (tested on OpenBLAS). With several chunks only the rounding differs: the BLAS may
 * take another code path for a small row count (gemv for one row), and dw is summed chunk by chunk.
 *
 * Tests: tests/lua/test_head_ce.lua (CPU: equality with the unfused path, f64 gradient check, errors,
 *        the GPT switch fused_head_ce), tests/gpu/test_head_ce.lua (CUDA vs CPU; skips without a GPU).
 *   build-x/proteus tests/run.lua tests/lua/test_head_ce.lua
 */
#ifndef PT_HEAD_CE_H
#define PT_HEAD_CE_H

#include "../host/pt_autograd.h"
#include "../host/pt_tensor.h"
#include "pt_fused.h" /* pt_ce_reduction */

/* the automatic chunk keeps one chunk of logits at or under this many bytes */
#define PT_HEAD_CE_CHUNK_BYTES ((int64_t)64 << 20)

/* Rows per chunk used when chunk = 0: max(1, PT_HEAD_CE_CHUNK_BYTES / (V · sizeof(dtype))). */
int64_t pt_head_ce_auto_chunk(int64_t V, pt_dtype dt);

pt_status pt_linear_softcap_cross_entropy(pt_tensor **out, pt_tensor *x, pt_tensor *w, pt_tensor *targets,
                                          double softcap, int64_t chunk, pt_ce_reduction reduction);

#endif
