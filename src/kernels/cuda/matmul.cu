/* cuda/matmul.cu — "matmul" on the GPU through cuBLAS (signature in pt_matmul.h; the CPU kernel in
 * src/kernels/cpu/matmul.c, OpenBLAS, is the oracle).
 *
 * Row-major C[b] = A[b]·B[b] is computed as the column-major product Cᵀ = Bᵀ·Aᵀ, so no copies are made:
 * a row-major matrix with leading dimension L is, to cuBLAS, its transpose with the same L. One
 * cublasGemmEx per batch element (the fronts flatten a batched-by-2-D product into one GEMM, so the
 * model's linears are one call); f32 and f64 compute in their own precision (no TF32), bf16 inputs use
 * fp32 accumulation. The handle is created per device on first use, bound to the compute stream
 * once, and given a workspace from the caching allocator (cublasSetWorkspace: 32 MiB on Hopper and
 * later, 4 MiB before, the sizes cuBLAS recommends), so cuBLAS never allocates on its own and its
 * calls can be captured into CUDA graphs (graph.c calls pt_cuda_blas_prepare before each capture).
 * cublasSetStream would reset the workspace to cuBLAS's own pool, so it is called only at creation.
 * QR, Cholesky and inverse are in linalg.cu (cuSOLVER). NOT YET RUN ON A GPU; tests/gpu/test_matmul.lua
 * compares with the CPU.
 */
#include <cublas_v2.h>

#include "pt_cuda_common.cuh"

extern "C" {
#include "../pt_dispatch.h"
#include "../pt_matmul.h"
#include "pt_cuda_internal.h"
}

#define PT_MAX_CUDA_DEVICES 64

/* shared with optim.cu (Newton–Schulz GEMMs): the current device's handle bound to the compute stream */
cublasHandle_t pt_cublas_handle(void);
static cublasHandle_t pt_cublas[PT_MAX_CUDA_DEVICES];

/* Creates device dev's handle (dev is current): stream, then workspace. Returns a status. */
static pt_status pt_cublas_create(int dev) {
    if (pt_cuda_graph_capturing() >= 0)
        return pt_cuda_capture_forbid("creating the cuBLAS handle", "run the captured function once before capturing");
    int major = 0;
    PT_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    const size_t ws = major >= 9 ? (size_t)32 << 20 : (size_t)4 << 20;
    void *w = NULL;
    PT_TRY(pt_cuda_alloc(&w, ws, dev));
    cublasHandle_t h = NULL;
    cublasStatus_t s = cublasCreate(&h);
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetStream(h, pt_cuda_compute_stream());
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetWorkspace(h, w, ws);
    if (s != CUBLAS_STATUS_SUCCESS) {
        if (h) cublasDestroy(h);
        pt_cuda_free(w, ws, dev);
        return PT_FAIL(PT_ERR_DEVICE, "cuBLAS setup on cuda:%d failed (%s, status %d)", dev, cublasGetStatusString(s),
                       (int)s);
    }
    pt_cublas[dev] = h; /* the workspace block w is held for the process's lifetime, like the handle */
    return PT_OK;
}

pt_status pt_cuda_blas_prepare(void) {
    int dev = 0;
    PT_CUDA_CHECK(cudaGetDevice(&dev));
    if (dev < 0 || dev >= PT_MAX_CUDA_DEVICES) return PT_FAIL(PT_ERR_DEVICE, "cuBLAS: device %d out of range", dev);
    if (pt_cublas[dev]) return PT_OK;
    return pt_cublas_create(dev);
}

cublasHandle_t pt_cublas_handle(void) {
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= PT_MAX_CUDA_DEVICES) {
        pt_cuda_set_pending("matmul: no current CUDA device");
        return NULL;
    }
    if (!pt_cublas[dev] && pt_cublas_create(dev) != PT_OK) {
        pt_cuda_set_pending("%s", pt_last_error());
        return NULL;
    }
    return pt_cublas[dev];
}

static void pt_matmul_cuda(const pt_matmul_args *a, cudaDataType_t dt, cublasComputeType_t ct, size_t esize) {
    cublasHandle_t h = pt_cublas_handle();
    if (!h) return;
    const float one_f = 1.0f, zero_f = 0.0f;
    const double one_d = 1.0, zero_d = 0.0;
    const void *alpha = ct == CUBLAS_COMPUTE_64F ? (const void *)&one_d : (const void *)&one_f;
    const void *beta = ct == CUBLAS_COMPUTE_64F ? (const void *)&zero_d : (const void *)&zero_f;
    cublasOperation_t opb = a->tb ? CUBLAS_OP_T : CUBLAS_OP_N, opa = a->ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    for (int64_t b = 0; b < a->batch; b++) {
        const char *A = (const char *)a->a + (a->aoff ? a->aoff[b] : 0) * (int64_t)esize;
        const char *B = (const char *)a->b + (a->boff ? a->boff[b] : 0) * (int64_t)esize;
        char *C = (char *)a->out + b * a->m * a->n * (int64_t)esize;
        cublasStatus_t s = cublasGemmEx(h, opb, opa, (int)a->n, (int)a->m, (int)a->k, alpha, B, dt, (int)a->ldb, A, dt,
                                        (int)a->lda, beta, C, dt, (int)a->n, ct, CUBLAS_GEMM_DEFAULT);
        if (s != CUBLAS_STATUS_SUCCESS) {
            pt_cuda_set_pending("cublasGemmEx [%lld x %lld] * [%lld x %lld] failed (status %d)", (long long)a->m,
                                (long long)a->k, (long long)a->k, (long long)a->n, (int)s);
            return;
        }
    }
    pt_cuda_launch_check("matmul");
}

static void cu_matmul_f32(const pt_matmul_args *a) { pt_matmul_cuda(a, CUDA_R_32F, CUBLAS_COMPUTE_32F, 4); }
static void cu_matmul_f64(const pt_matmul_args *a) { pt_matmul_cuda(a, CUDA_R_64F, CUBLAS_COMPUTE_64F, 8); }
static void cu_matmul_bf16(const pt_matmul_args *a) { pt_matmul_cuda(a, CUDA_R_16BF, CUBLAS_COMPUTE_32F, 2); }
PT_REGISTER_KERNEL(matmul, PT_DEV_CUDA, PT_F32, cu_matmul_f32)
PT_REGISTER_KERNEL(matmul, PT_DEV_CUDA, PT_F64, cu_matmul_f64)
PT_REGISTER_KERNEL(matmul, PT_DEV_CUDA, PT_BF16, cu_matmul_bf16)
