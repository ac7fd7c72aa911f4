/* cuda/lora.cu — the batched LoRA delta of TTT on the GPU ("lora", "lora_bwd" of pt_fused.h; the CPU
 * kernels in src/kernels/cpu/fused_tmpl.h are the oracle): per batch element b,
 *   h = x Aᵀ [T,R],  y = h Bwᵀ [T,out];  backward dBw = gyᵀ h, dh = gy Bw, dA = dhᵀ x, dx = dh A.
 * Each product is one cuBLAS strided-batched GEMM over the B elements (row-major via the column-major
 * transpose product, like matmul.cu). f32 and f64. NOT YET RUN ON A GPU; tests/gpu/test_lora.lua.
 */
#include <cublas_v2.h>

#include "pt_cuda_common.cuh"

extern "C" {
#include "../pt_dispatch.h"
#include "../pt_fused.h"
#include "pt_cuda.h"
#include "pt_cuda_internal.h"
}

cublasHandle_t pt_cublas_handle(void); /* matmul.cu */

/* row-major C[b] [m,n] = op(A[b]) op(B[b]); strides in elements */
template <typename T>
static cublasStatus_t pt_gemm_rm_batched(cublasHandle_t h, int ta, int tb, int64_t m, int64_t n, int64_t k,
                                         const T *A, int64_t lda, int64_t sa, const T *B, int64_t ldb, int64_t sb,
                                         T *C, int64_t ldc, int64_t sc, int64_t batch) {
    const T one = 1, zero = 0;
    cublasOperation_t opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N, opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    if constexpr (sizeof(T) == 4)
        return cublasSgemmStridedBatched(h, opb, opa, (int)n, (int)m, (int)k, (const float *)&one, (const float *)B,
                                         (int)ldb, sb, (const float *)A, (int)lda, sa, (const float *)&zero,
                                         (float *)C, (int)ldc, sc, (int)batch);
    else
        return cublasDgemmStridedBatched(h, opb, opa, (int)n, (int)m, (int)k, (const double *)&one, (const double *)B,
                                         (int)ldb, sb, (const double *)A, (int)lda, sa, (const double *)&zero,
                                         (double *)C, (int)ldc, sc, (int)batch);
}

#define PT_GEMM_OK(call, what)                                                                        \
    do {                                                                                              \
        cublasStatus_t s_ = (call);                                                                   \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                              \
            return PT_FAIL(PT_ERR_DEVICE, "lora: cuBLAS %s failed (status %d)", what, (int)s_);       \
    } while (0)

template <typename T>
static pt_status cu_lora(const pt_lora_args *a) {
    const int64_t B = a->B, TT = a->T, in = a->in, out = a->out, R = a->R;
    if (B * TT == 0) return PT_OK;
    cublasHandle_t h = pt_cublas_handle();
    if (!h) return pt_cuda_check_pending();
    const T *x = (const T *)a->x, *A = (const T *)a->A, *Bw = (const T *)a->Bw;
    T *hh = (T *)a->h, *y = (T *)a->y;
    PT_GEMM_OK(pt_gemm_rm_batched<T>(h, 0, 1, TT, R, in, x, in, TT * in, A, in, R * in, hh, R, TT * R, B), "x·Aᵀ");
    PT_GEMM_OK(pt_gemm_rm_batched<T>(h, 0, 1, TT, out, R, hh, R, TT * R, Bw, R, out * R, y, out, TT * out, B), "h·Bᵀ");
    return pt_cuda_check_pending();
}

template <typename T>
static pt_status cu_lora_bwd(const pt_lora_args *a) {
    const int64_t B = a->B, TT = a->T, in = a->in, out = a->out, R = a->R;
    if (B * TT == 0) return PT_OK;
    cublasHandle_t h = pt_cublas_handle();
    if (!h) return pt_cuda_check_pending();
    const T *x = (const T *)a->x, *A = (const T *)a->A, *Bw = (const T *)a->Bw, *hh = (const T *)a->h;
    const T *gy = (const T *)a->gy;
    if (a->dBw) /* dBw = gyᵀ h  [out, R] */
        PT_GEMM_OK(pt_gemm_rm_batched<T>(h, 1, 0, out, R, TT, gy, out, TT * out, hh, R, TT * R, (T *)a->dBw, R, out * R, B),
                   "gyᵀ·h");
    if (!a->dA && !a->dx) return pt_cuda_check_pending();
    void *dhv = NULL;
    int dev = 0;
    cudaGetDevice(&dev);
    PT_TRY(pt_cuda_alloc(&dhv, sizeof(T) * (size_t)(B * TT * R), dev));
    T *dh = (T *)dhv;
    pt_status st = PT_OK;
    cublasStatus_t s = pt_gemm_rm_batched<T>(h, 0, 0, TT, R, out, gy, out, TT * out, Bw, R, out * R, dh, R, TT * R, B);
    if (s == CUBLAS_STATUS_SUCCESS && a->dA) /* dA = dhᵀ x [R, in] */
        s = pt_gemm_rm_batched<T>(h, 1, 0, R, in, TT, dh, R, TT * R, x, in, TT * in, (T *)a->dA, in, R * in, B);
    if (s == CUBLAS_STATUS_SUCCESS && a->dx) /* dx = dh A [T, in] */
        s = pt_gemm_rm_batched<T>(h, 0, 0, TT, in, R, dh, R, TT * R, A, in, R * in, (T *)a->dx, in, TT * in, B);
    if (s != CUBLAS_STATUS_SUCCESS) st = PT_FAIL(PT_ERR_DEVICE, "lora backward: cuBLAS failed (status %d)", (int)s);
    /* the caching allocator hands dh out again only in compute-stream order (after these GEMMs): no
     * synchronisation needed, so the backward can be captured into a CUDA graph */
    pt_cuda_free(dhv, sizeof(T) * (size_t)(B * TT * R), dev);
    if (st) return st;
    return pt_cuda_check_pending();
}

static pt_status cu_lora_f32(const pt_lora_args *a) { return cu_lora<float>(a); }
static pt_status cu_lora_f64(const pt_lora_args *a) { return cu_lora<double>(a); }
static pt_status cu_lora_bwd_f32(const pt_lora_args *a) { return cu_lora_bwd<float>(a); }
static pt_status cu_lora_bwd_f64(const pt_lora_args *a) { return cu_lora_bwd<double>(a); }
PT_REGISTER_KERNEL(lora, PT_DEV_CUDA, PT_F32, cu_lora_f32)
PT_REGISTER_KERNEL(lora, PT_DEV_CUDA, PT_F64, cu_lora_f64)
PT_REGISTER_KERNEL(lora_bwd, PT_DEV_CUDA, PT_F32, cu_lora_bwd_f32)
PT_REGISTER_KERNEL(lora_bwd, PT_DEV_CUDA, PT_F64, cu_lora_bwd_f64)
