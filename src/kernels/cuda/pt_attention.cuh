/* pt_attention.cuh — the flash attention of attention.cu, as fused.cu's attention dispatch calls it
 * (C++ linkage: both sides are .cu files). Semantics and argument struct: pt_attention_args in
 * ../pt_fused.h; the rule that chooses between this kernel and fused.cu's simple one is written at the
 * top of fused.cu. Test: tests/gpu/test_attention_flash.lua; bench: bench/gpu_attention.lua.
 */
#ifndef PT_ATTENTION_CUH
#define PT_ATTENTION_CUH

#include <stddef.h> /* size_t */

extern "C" {
#include "../pt_fused.h"
}

/* 1 when the flash kernels take these arguments (bf16 storage is the caller's business): head dim
 * 64 or 128, T and B·H within the grid limits, every pointer the call uses 16-byte aligned (bwd = 1
 * also checks gy, dq, dk, dv). Otherwise 0 and why[] says which condition failed, naming the values. */
int pt_flash_attention_supported(const pt_attention_args *a, int bwd, char *why, size_t why_len);

/* bf16 q, k, v [B,T,H|Hkv,D] -> bf16 y [B,T,H,D] and f32 lse [B,H,T] (natural log). */
pt_status pt_flash_attention_fwd(const pt_attention_args *a);
/* bf16 q, k, v, y, gy and the forward's f32 lse -> bf16 dq, dk, dv (every row written; deterministic:
 * no atomics, the kv heads' gradients sum their query heads in a fixed order). */
pt_status pt_flash_attention_bwd(const pt_attention_args *a);

#endif
