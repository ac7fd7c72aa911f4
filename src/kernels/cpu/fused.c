/* cpu/fused.c — CPU kernels of the fused family (signatures and math in pt_fused.h): rms_norm, rotary,
 * causal GQA attention (BLAS per (batch, head) over the causal prefix, log-sum-exp saved for the
 * backward), XSA, relu²/leaky relu²/star relu, softcapped cross-entropy, BigramHash, SmearGate and
 * batched LoRA, each with its backward, for f32 and f64; and ce_mean (the CE ops' mean, f64 in row order).
 *
 * The kernel bodies are written once in cpu/fused_tmpl.h and instantiated here for float and double.
 * OpenMP splits rows (or (batch, head) pairs) when the work is large; per-unit reductions use fixed
 * chunks summed in order, so results do not depend on the thread count. Inside an OpenMP region the
 * BLAS calls run single-threaded (pt_blas_serial_begin) to not oversubscribe the cores.
 * Tests: tests/c/test_fused.c.
 */
#include <cblas.h> /* cblas_sgemm, cblas_dgemm, openblas_{get,set}_num_threads */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h> /* malloc, calloc, free */
#include <string.h> /* memcpy */

#include "../pt_dispatch.h"
#include "../pt_fused.h"

#define PT_FUSED_OMP_MIN 32768 /* elements below which a kernel runs on one thread */
#define PT_FUSED_CHUNKS 64     /* row chunks of the deterministic per-unit reductions */
#define PT_ATT_BS 64           /* query rows per attention block */
#define PT_XSA_EPS 1e-12       /* F.normalize's eps in §4.2 */

#define PT_CAT_(a, b) a##_##b
#define PT_CAT(a, b) PT_CAT_(a, b)

/* OpenBLAS (pthreads build) would start its own threads inside each of ours: run it on one thread
 * while an OpenMP region is active. Returns the previous thread count, or 0 when nothing changed. */
static int pt_blas_serial_begin(int parallel) {
    if (!parallel || omp_get_max_threads() < 2) return 0;
    int prev = openblas_get_num_threads();
    if (prev > 1) openblas_set_num_threads(1);
    return prev > 1 ? prev : 0;
}
static void pt_blas_serial_end(int prev) {
    if (prev > 0) openblas_set_num_threads(prev);
}

#define real float
#define SUF f32
#define GEMM cblas_sgemm
#define EXP expf
#define TANH tanhf
#define POW powf
#define COS cosf
#define SIN sinf
#include "fused_tmpl.h"
#undef real
#undef SUF
#undef GEMM
#undef EXP
#undef TANH
#undef POW
#undef COS
#undef SIN

#define real double
#define SUF f64
#define GEMM cblas_dgemm
#define EXP exp
#define TANH tanh
#define POW pow
#define COS cos
#define SIN sin
#include "fused_tmpl.h"
#undef real
#undef SUF
#undef GEMM
#undef EXP
#undef TANH
#undef POW
#undef COS
#undef SIN

/* ---------------- BigramHash (§3.2) ----------------
 * b_0 = buckets − 1; b_t = ((36313·tok_t) XOR (27191·tok_{t−1})) mod (buckets − 1).
 * Reading of "int32 arithmetic, non-negative": the reference casts tokens to int32 and computes with
 * torch int32 tensors, so the products wrap modulo 2³² (two's complement; done here in uint32 to avoid
 * signed-overflow UB), XOR is on the 32-bit patterns, and `%` is torch's remainder, which takes the
 * sign of the divisor, i.e. the floor modulo, always in [0, buckets − 2]. For token ids < 59,138
 * nothing wraps and every operand is non-negative. The front rejects negative and > INT32_MAX ids. */
static pt_status bigram_hash_i64(const pt_bigram_args *a) {
    const int64_t n = a->n, TT = a->T, mod = a->buckets - 1;
#pragma omp parallel for if (n * TT > PT_FUSED_OMP_MIN)
    for (int64_t i = 0; i < n; i++) {
        const int64_t *tok = a->tokens + i * TT;
        int64_t *o = a->out + i * TT;
        if (TT > 0) o[0] = mod;
        for (int64_t t = 1; t < TT; t++) {
            uint32_t p = 36313u * (uint32_t)tok[t], q = 27191u * (uint32_t)tok[t - 1];
            int32_t h = (int32_t)(p ^ q); /* two's complement reinterpretation */
            int64_t r = (int64_t)h % mod;
            o[t] = r < 0 ? r + mod : r;
        }
    }
    return PT_OK;
}

PT_REGISTER_KERNEL(rms_norm, PT_DEV_CPU, PT_F32, rms_norm_f32)
PT_REGISTER_KERNEL(rms_norm, PT_DEV_CPU, PT_F64, rms_norm_f64)
PT_REGISTER_KERNEL(rms_norm_bwd, PT_DEV_CPU, PT_F32, rms_norm_bwd_f32)
PT_REGISTER_KERNEL(rms_norm_bwd, PT_DEV_CPU, PT_F64, rms_norm_bwd_f64)
PT_REGISTER_KERNEL(rotary, PT_DEV_CPU, PT_F32, rotary_f32)
PT_REGISTER_KERNEL(rotary, PT_DEV_CPU, PT_F64, rotary_f64)
PT_REGISTER_KERNEL(attention, PT_DEV_CPU, PT_F32, attention_f32)
PT_REGISTER_KERNEL(attention, PT_DEV_CPU, PT_F64, attention_f64)
PT_REGISTER_KERNEL(attention_bwd, PT_DEV_CPU, PT_F32, attention_bwd_f32)
PT_REGISTER_KERNEL(attention_bwd, PT_DEV_CPU, PT_F64, attention_bwd_f64)
PT_REGISTER_KERNEL(xsa, PT_DEV_CPU, PT_F32, xsa_f32)
PT_REGISTER_KERNEL(xsa, PT_DEV_CPU, PT_F64, xsa_f64)
PT_REGISTER_KERNEL(xsa_bwd, PT_DEV_CPU, PT_F32, xsa_bwd_f32)
PT_REGISTER_KERNEL(xsa_bwd, PT_DEV_CPU, PT_F64, xsa_bwd_f64)
PT_REGISTER_KERNEL(act2, PT_DEV_CPU, PT_F32, act2_f32)
PT_REGISTER_KERNEL(act2, PT_DEV_CPU, PT_F64, act2_f64)
PT_REGISTER_KERNEL(act2_bwd, PT_DEV_CPU, PT_F32, act2_bwd_f32)
PT_REGISTER_KERNEL(act2_bwd, PT_DEV_CPU, PT_F64, act2_bwd_f64)
PT_REGISTER_KERNEL(softcap_ce, PT_DEV_CPU, PT_F32, softcap_ce_f32)
PT_REGISTER_KERNEL(softcap_ce, PT_DEV_CPU, PT_F64, softcap_ce_f64)
PT_REGISTER_KERNEL(softcap_ce_bwd, PT_DEV_CPU, PT_F32, softcap_ce_bwd_f32)
PT_REGISTER_KERNEL(softcap_ce_bwd, PT_DEV_CPU, PT_F64, softcap_ce_bwd_f64)
PT_REGISTER_KERNEL(smear_gate, PT_DEV_CPU, PT_F32, smear_gate_f32)
PT_REGISTER_KERNEL(smear_gate, PT_DEV_CPU, PT_F64, smear_gate_f64)
PT_REGISTER_KERNEL(smear_gate_bwd, PT_DEV_CPU, PT_F32, smear_gate_bwd_f32)
PT_REGISTER_KERNEL(smear_gate_bwd, PT_DEV_CPU, PT_F64, smear_gate_bwd_f64)
PT_REGISTER_KERNEL(lora, PT_DEV_CPU, PT_F32, lora_f32)
PT_REGISTER_KERNEL(lora, PT_DEV_CPU, PT_F64, lora_f64)
PT_REGISTER_KERNEL(lora_bwd, PT_DEV_CPU, PT_F32, lora_bwd_f32)
PT_REGISTER_KERNEL(lora_bwd, PT_DEV_CPU, PT_F64, lora_bwd_f64)
PT_REGISTER_KERNEL(bigram_hash, PT_DEV_CPU, PT_I64, bigram_hash_i64)

/* ---- ce_mean: the CE ops' reduction mean, an f64 sum in row order (one thread: the order is the
 * documented value), rounded once to the dtype ---- */
static pt_status ce_mean_f32(const void *nll, int64_t n, void *out) {
    const float *p = nll;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += (double)p[i];
    *(float *)out = (float)(sum / (double)n);
    return PT_OK;
}
static pt_status ce_mean_f64(const void *nll, int64_t n, void *out) {
    const double *p = nll;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += p[i];
    *(double *)out = sum / (double)n;
    return PT_OK;
}
PT_REGISTER_KERNEL(ce_mean, PT_DEV_CPU, PT_F32, ce_mean_f32)
PT_REGISTER_KERNEL(ce_mean, PT_DEV_CPU, PT_F64, ce_mean_f64)
