/* pt_mma.cuh — the inline-PTX helpers of the tensor-core kernels (sm_80 and later; built for sm_90a):
 * cp.async 16-byte copies global -> shared, ldmatrix.x4 (plain and .trans), mma.sync m16n8k16 bf16 -> f32
 * and the bf16x2 pack. Shared by attention.cu (flash attention) and linear_act.cu (the fused GEMM).
 *
 * The emulation tests (ctest attention_emu, linear_act_emu) never see this file: they cut the kernels
 * out of those .cu files between markers that leave out the "device helpers" section, which only
 * #includes this header, and define these names themselves on emulated instructions
 * (tests/emu/emu_warp.h). A helper added here needs its emulated twin there before a kernel under
 * emulation may call it.
 */
#ifndef PT_MMA_CUH
#define PT_MMA_CUH

#include <stdint.h>

/* the shared-state-space address of a generic pointer into shared memory */
__device__ __forceinline__ uint32_t pt_mma_saddr(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

/* 16 bytes global -> shared, asynchronous, bypassing L1; valid = 0 writes zeros (src is not read) */
__device__ __forceinline__ void pt_mma_cp16(void *dst, const void *src, bool valid) {
    unsigned n = valid ? 16u : 0u;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(pt_mma_saddr(dst)), "l"(src), "r"(n));
}
/* closes this thread's group of cp.async copies */
__device__ __forceinline__ void pt_mma_commit() { asm volatile("cp.async.commit_group;\n" ::); }
/* waits until at most N of this thread's committed groups are still in flight */
template <int N>
__device__ __forceinline__ void pt_mma_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

/* four 8x8 bf16 matrices; lane l supplies the address of row l%8 of matrix l/8 */
__device__ __forceinline__ void pt_mma_ldsm(uint32_t r[4], const uint16_t *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(pt_mma_saddr(p)));
}
/* the same, each 8x8 matrix transposed */
__device__ __forceinline__ void pt_mma_ldsm_t(uint32_t r[4], const uint16_t *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(pt_mma_saddr(p)));
}

/* c[16x8] += a[16x16] · b[16x8]  (bf16 in, f32 accumulate) */
__device__ __forceinline__ void pt_mma_m16n8k16(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* two floats -> bf16x2 (round to nearest even), lo in the low half */
__device__ __forceinline__ uint32_t pt_mma_pack(float lo, float hi) {
    uint32_t u;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(u) : "f"(hi), "f"(lo));
    return u;
}

#endif
