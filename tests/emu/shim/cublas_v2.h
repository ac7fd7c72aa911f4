// tests/emu/shim/cublas_v2.h — the part of cuBLAS that proteus's .cu files call, for the CPU emulator
// (overview: tests/emu/shim/cuda_runtime.h). The real header (found in /usr/local/include on some
// machines) would pull in the real CUDA headers, so the shim has its own.
//
// Defined: the handle, status, operation and math-mode types; cublasSetMathMode, cublasSetStream
// (accepted, no effect); cublasSgemmStridedBatched on host memory: column-major, every argument checked
// as cuBLAS does (CUBLAS_STATUS_INVALID_VALUE), beta == 0 never reads C (so NaN there does not
// propagate, as on the GPU), sums in f32 in k order — cuBLAS's blocked order differs in the last bits,
// so a test compares its results with a tolerance. The handle itself comes from the test (e.g. a
// pt_cublas_handle returning any non-null cublasHandle_t). Add other calls here with the same care.
#ifndef PT_EMU_SHIM_CUBLAS_V2_H
#define PT_EMU_SHIM_CUBLAS_V2_H

#include <algorithm>

#include "cuda_runtime.h"

extern "C++" {

typedef struct cublasContext *cublasHandle_t;
typedef enum {
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_NOT_INITIALIZED = 1,
    CUBLAS_STATUS_INVALID_VALUE = 7,
} cublasStatus_t;
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1, CUBLAS_OP_C = 2 } cublasOperation_t;
typedef enum {
    CUBLAS_DEFAULT_MATH = 0,
    CUBLAS_TENSOR_OP_MATH = 1,
    CUBLAS_PEDANTIC_MATH = 2,
    CUBLAS_TF32_TENSOR_OP_MATH = 3,
} cublasMath_t;

static inline cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t mode) {
    (void)mode;
    return h ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED;
}
static inline cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) {
    (void)s;
    return h ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED;
}

// C[b] = alpha·op(A[b])·op(B[b]) + beta·C[b], column-major: op(A) m×k, op(B) k×n, C m×n
static inline cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb,
                                                       int m, int n, int k, const float *alpha, const float *A,
                                                       int lda, long long sa, const float *B, int ldb, long long sb,
                                                       const float *beta, float *C, int ldc, long long sc, int batch) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    const bool at = ta != CUBLAS_OP_N, bt = tb != CUBLAS_OP_N;
    if (m < 0 || n < 0 || k < 0 || batch < 0 || lda < std::max(1, at ? k : m) || ldb < std::max(1, bt ? n : k) ||
        ldc < std::max(1, m))
        return CUBLAS_STATUS_INVALID_VALUE;
    for (int b = 0; b < batch; b++) {
        const float *Ab = A + b * sa, *Bb = B + b * sb;
        float *Cb = C + b * sc;
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                float s = 0.0f;
                for (int p = 0; p < k; p++) {
                    const float av = at ? Ab[p + (long long)i * lda] : Ab[i + (long long)p * lda];
                    const float bv = bt ? Bb[j + (long long)p * ldb] : Bb[p + (long long)j * ldb];
                    s += av * bv;
                }
                float *c = &Cb[i + (long long)j * ldc];
                *c = *beta == 0.0f ? *alpha * s : *alpha * s + *beta * *c;
            }
    }
    return CUBLAS_STATUS_SUCCESS;
}

} // extern "C++"

#endif
