/* cuda/linalg.cu — "cholesky", "inverse" and "qr" on the GPU through cuSOLVER dense (cusolverDn),
 * f32 and f64 like the CPU kernels (contracts in pt_matmul.h; src/kernels/cpu/matmul.c, LAPACK, is
 * the oracle).
 *
 * Row-major vs column-major. cuSOLVER, like LAPACK, is column-major: a row-major [R, C] matrix is, to
 * cuSOLVER, its transpose (a column-major C×R matrix with leading dimension C). The three ops handle
 * that as the CPU kernels do:
 *   cholesky  A is symmetric, so the column-major view is A itself. potrf with the LOWER triangle of the
 *             column-major view computes A = L·Lᵀ there; read row-major, that L is Lᵀ = U, the upper
 *             factor. So a row-major upper factor asks cuSOLVER for LOWER, a lower one for UPPER. The
 *             triangle potrf does not touch is then zeroed by a kernel (as the CPU zeroes it).
 *   inverse   the view is Aᵀ. getrf factors Aᵀ (in a scratch copy), getrs solves Aᵀ·X = I with the
 *             output preset to the identity: X = inv(Aᵀ) = inv(A)ᵀ column-major, which read row-major
 *             is inv(A). No transposes.
 *   qr        needs A itself, so a kernel transposes A into a column-major work buffer (as the CPU
 *             does); geqrf + orgqr there; kernels copy R (upper triangle of the first min(M,N) rows)
 *             and Q (first min(M,N) columns) back out row-major. No sign normalisation: the CPU does
 *             none either, and cuSOLVER's Householder reflectors follow LAPACK's convention, so Q and
 *             R agree with the CPU up to rounding (tests/gpu/test_linalg.lua also checks Q·R = A).
 * Batches (cholesky, inverse) are one cuSOLVER call per matrix on the compute stream, sharing one
 * workspace; each matrix gets its own devInfo slot, all copied to the host with one synchronising copy
 * after the loop. The kernel returns the first failing matrix's info and sets args->bad to its index,
 * as the CPU does (the front names the matrix and the minor / pivot). qr is one matrix (batch 1).
 *
 * Scratch (workspace, devInfo, pivots, LU copy, tau, QR work) comes from the caching allocator. A
 * CUDA or cuSOLVER failure (or out of GPU memory) records a pending error naming the op and call,
 * and the kernel returns 0, like matmul.cu: the error is raised by the next synchronising call.
 * The cusolverDn handle is created per device on first use and bound to the compute stream.
 *
 * NOT YET RUN ON A GPU. Test: build/proteus tests/run.lua tests/gpu/test_linalg.lua (ctest -L gpu).
 */
#include <cublas_v2.h>
#include <cusolverDn.h>

#include <stdlib.h> /* malloc, free */

#include "pt_cuda_common.cuh"

extern "C" {
#include "../pt_dispatch.h"
#include "../pt_matmul.h"
#include "pt_cuda_internal.h"
}

#define PT_MAX_CUDA_DEVICES 64

static cusolverDnHandle_t pt_cusolver[PT_MAX_CUDA_DEVICES];

/* the current device's handle bound to the compute stream; NULL (pending error set) on failure */
static cusolverDnHandle_t pt_cusolver_handle(const char *op, int *dev_out) {
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= PT_MAX_CUDA_DEVICES) {
        pt_cuda_set_pending("%s: no current CUDA device", op);
        return NULL;
    }
    if (!pt_cusolver[dev]) {
        cusolverStatus_t s = cusolverDnCreate(&pt_cusolver[dev]);
        if (s != CUSOLVER_STATUS_SUCCESS) {
            pt_cuda_set_pending("%s: cusolverDnCreate on cuda:%d failed (status %d)", op, dev, (int)s);
            pt_cusolver[dev] = NULL;
            return NULL;
        }
    }
    cusolverStatus_t s = cusolverDnSetStream(pt_cusolver[dev], pt_cuda_compute_stream());
    if (s != CUSOLVER_STATUS_SUCCESS) {
        pt_cuda_set_pending("%s: cusolverDnSetStream on cuda:%d failed (status %d)", op, dev, (int)s);
        return NULL;
    }
    *dev_out = dev;
    return pt_cusolver[dev];
}

/* ---- scratch from the caching allocator, released together ---- */
#define PT_LA_SLOTS 5
typedef struct {
    void *p[PT_LA_SLOTS];
    size_t bytes[PT_LA_SLOTS];
    int dev;
    const char *op;
} pt_la_scratch;

static void *pt_la_alloc(pt_la_scratch *s, int slot, size_t bytes) {
    s->bytes[slot] = bytes > 0 ? bytes : 1;
    if (pt_cuda_alloc(&s->p[slot], s->bytes[slot], s->dev)) {
        pt_cuda_set_pending("%s: out of GPU memory for %zu bytes of cuSOLVER scratch on cuda:%d (free memory or "
                            "run the op on the CPU)", s->op, s->bytes[slot], s->dev);
        s->p[slot] = NULL;
    }
    return s->p[slot];
}

static void pt_la_release(pt_la_scratch *s) {
    for (int k = 0; k < PT_LA_SLOTS; k++)
        if (s->p[k]) pt_cuda_free(s->p[k], s->bytes[k], s->dev);
}

/* Copies n devInfo values to the host (synchronising) and returns the first nonzero one (its index in
 * *bad), 0 if all are 0; -2 when the copy failed (pending error set; the caller returns 0). */
static int pt_la_first_info(const int *dinfo, int64_t n, int64_t *bad, const char *op) {
    int *h = (int *)malloc(sizeof(int) * (size_t)n);
    if (!h) {
        pt_cuda_set_pending("%s: out of host memory for %lld devInfo values", op, (long long)n);
        return -2;
    }
    cudaStream_t st = pt_cuda_compute_stream();
    cudaError_t e = cudaMemcpyAsync(h, dinfo, sizeof(int) * (size_t)n, cudaMemcpyDeviceToHost, st);
    if (e == cudaSuccess) e = cudaStreamSynchronize(st);
    if (e != cudaSuccess) {
        pt_cuda_set_pending("%s: reading cuSOLVER's devInfo: %s (%s)", op, cudaGetErrorString(e), cudaGetErrorName(e));
        free(h);
        return -2;
    }
    int info = 0;
    for (int64_t b = 0; b < n && !info; b++)
        if (h[b]) {
            info = h[b];
            *bad = b;
        }
    free(h);
    return info;
}

/* ---- the S / D entry points of cuSOLVER ---- */
template <typename T> struct pt_sol;
template <> struct pt_sol<float> {
    static cusolverStatus_t potrf_size(cusolverDnHandle_t h, cublasFillMode_t u, int n, float *a, int *lw) {
        return cusolverDnSpotrf_bufferSize(h, u, n, a, n, lw);
    }
    static cusolverStatus_t potrf(cusolverDnHandle_t h, cublasFillMode_t u, int n, float *a, float *w, int lw, int *i) {
        return cusolverDnSpotrf(h, u, n, a, n, w, lw, i);
    }
    static cusolverStatus_t getrf_size(cusolverDnHandle_t h, int n, float *a, int *lw) {
        return cusolverDnSgetrf_bufferSize(h, n, n, a, n, lw);
    }
    static cusolverStatus_t getrf(cusolverDnHandle_t h, int n, float *a, float *w, int *piv, int *i) {
        return cusolverDnSgetrf(h, n, n, a, n, w, piv, i);
    }
    static cusolverStatus_t getrs(cusolverDnHandle_t h, int n, const float *a, const int *piv, float *b, int *i) {
        return cusolverDnSgetrs(h, CUBLAS_OP_N, n, n, a, n, piv, b, n, i);
    }
    static cusolverStatus_t geqrf_size(cusolverDnHandle_t h, int m, int n, float *a, int *lw) {
        return cusolverDnSgeqrf_bufferSize(h, m, n, a, m, lw);
    }
    static cusolverStatus_t geqrf(cusolverDnHandle_t h, int m, int n, float *a, float *tau, float *w, int lw, int *i) {
        return cusolverDnSgeqrf(h, m, n, a, m, tau, w, lw, i);
    }
    static cusolverStatus_t orgqr_size(cusolverDnHandle_t h, int m, int k, const float *a, const float *tau, int *lw) {
        return cusolverDnSorgqr_bufferSize(h, m, k, k, a, m, tau, lw);
    }
    static cusolverStatus_t orgqr(cusolverDnHandle_t h, int m, int k, float *a, const float *tau, float *w, int lw,
                                  int *i) {
        return cusolverDnSorgqr(h, m, k, k, a, m, tau, w, lw, i);
    }
};
template <> struct pt_sol<double> {
    static cusolverStatus_t potrf_size(cusolverDnHandle_t h, cublasFillMode_t u, int n, double *a, int *lw) {
        return cusolverDnDpotrf_bufferSize(h, u, n, a, n, lw);
    }
    static cusolverStatus_t potrf(cusolverDnHandle_t h, cublasFillMode_t u, int n, double *a, double *w, int lw,
                                  int *i) {
        return cusolverDnDpotrf(h, u, n, a, n, w, lw, i);
    }
    static cusolverStatus_t getrf_size(cusolverDnHandle_t h, int n, double *a, int *lw) {
        return cusolverDnDgetrf_bufferSize(h, n, n, a, n, lw);
    }
    static cusolverStatus_t getrf(cusolverDnHandle_t h, int n, double *a, double *w, int *piv, int *i) {
        return cusolverDnDgetrf(h, n, n, a, n, w, piv, i);
    }
    static cusolverStatus_t getrs(cusolverDnHandle_t h, int n, const double *a, const int *piv, double *b, int *i) {
        return cusolverDnDgetrs(h, CUBLAS_OP_N, n, n, a, n, piv, b, n, i);
    }
    static cusolverStatus_t geqrf_size(cusolverDnHandle_t h, int m, int n, double *a, int *lw) {
        return cusolverDnDgeqrf_bufferSize(h, m, n, a, m, lw);
    }
    static cusolverStatus_t geqrf(cusolverDnHandle_t h, int m, int n, double *a, double *tau, double *w, int lw,
                                  int *i) {
        return cusolverDnDgeqrf(h, m, n, a, m, tau, w, lw, i);
    }
    static cusolverStatus_t orgqr_size(cusolverDnHandle_t h, int m, int k, const double *a, const double *tau,
                                       int *lw) {
        return cusolverDnDorgqr_bufferSize(h, m, k, k, a, m, tau, lw);
    }
    static cusolverStatus_t orgqr(cusolverDnHandle_t h, int m, int k, double *a, const double *tau, double *w, int lw,
                                  int *i) {
        return cusolverDnDorgqr(h, m, k, k, a, m, tau, w, lw, i);
    }
};

/* records a failed cuSOLVER call; returns 1 when it failed */
static int pt_sol_failed(cusolverStatus_t s, const char *op, const char *call) {
    if (s == CUSOLVER_STATUS_SUCCESS) return 0;
    pt_cuda_set_pending("%s: %s failed (cuSOLVER status %d)", op, call, (int)s);
    return 1;
}

/* ---- element kernels ---- */
/* zero the strict lower (upper = 1) or strict upper (upper = 0) triangle of batch row-major n×n matrices */
template <typename T> __global__ void pt_tri_zero_kernel(T *a, int64_t n, int64_t total, int upper) {
    PT_GRID_LOOP(idx, total) {
        int64_t e = idx % (n * n), i = e / n, j = e - i * n;
        if (upper ? j < i : j > i) a[idx] = (T)0;
    }
}

/* batch row-major n×n identities */
template <typename T> __global__ void pt_eye_kernel(T *a, int64_t n, int64_t total) {
    PT_GRID_LOOP(idx, total) {
        int64_t e = idx % (n * n), i = e / n, j = e - i * n;
        a[idx] = i == j ? (T)1 : (T)0;
    }
}

/* row-major [m, n] a -> column-major m×n w (leading dimension m) */
template <typename T> __global__ void pt_to_colmajor_kernel(const T *a, T *w, int64_t m, int64_t n) {
    PT_GRID_LOOP(idx, m * n) {
        int64_t i = idx / n, j = idx - i * n;
        w[i + j * m] = a[idx];
    }
}

/* R [kk, n] row-major = upper triangle of the first kk rows of column-major w (m×n) */
template <typename T> __global__ void pt_take_r_kernel(const T *w, T *r, int64_t m, int64_t n, int64_t kk) {
    PT_GRID_LOOP(idx, kk * n) {
        int64_t i = idx / n, j = idx - i * n;
        r[idx] = j >= i ? w[i + j * m] : (T)0;
    }
}

/* Q [m, kk] row-major = first kk columns of column-major w (m×kk part of m×n, leading dimension m) */
template <typename T> __global__ void pt_take_q_kernel(const T *w, T *q, int64_t m, int64_t kk) {
    PT_GRID_LOOP(idx, m * kk) {
        int64_t i = idx / kk, j = idx - i * kk;
        q[idx] = w[i + j * m];
    }
}

/* ---- Cholesky: potrf per matrix, then zero the other triangle ---- */
template <typename T> static int pt_cholesky_cuda(pt_linalg_args *g) {
    const char *op = "cholesky";
    g->bad = 0;
    int dev = 0, n = (int)g->n, lw = 0;
    cusolverDnHandle_t h = pt_cusolver_handle(op, &dev);
    if (!h) return 0;
    /* row-major upper factor = column-major lower factor of the same (symmetric) matrix */
    cublasFillMode_t uplo = g->upper ? CUBLAS_FILL_MODE_LOWER : CUBLAS_FILL_MODE_UPPER;
    T *A = (T *)g->a;
    if (pt_sol_failed(pt_sol<T>::potrf_size(h, uplo, n, A, &lw), op, "potrf_bufferSize")) return 0;
    pt_la_scratch s = {};
    s.dev = dev;
    s.op = op;
    T *work = (T *)pt_la_alloc(&s, 0, sizeof(T) * (size_t)(lw > 0 ? lw : 1));
    int *dinfo = (int *)pt_la_alloc(&s, 1, sizeof(int) * (size_t)g->batch);
    int info = 0;
    if (work && dinfo) {
        int failed = 0;
        for (int64_t b = 0; b < g->batch && !failed; b++)
            failed = pt_sol_failed(pt_sol<T>::potrf(h, uplo, n, A + b * (int64_t)n * n, work, lw, dinfo + b), op,
                                   "potrf");
        if (!failed) {
            info = pt_la_first_info(dinfo, g->batch, &g->bad, op);
            if (info == -2) info = 0; /* pending error set */
            else if (info == 0) {
                int64_t total = g->batch * (int64_t)n * n;
                pt_tri_zero_kernel<T><<<pt_cuda_blocks(total, PT_THREADS), PT_THREADS, 0, pt_cuda_compute_stream()>>>(
                    A, n, total, g->upper);
                pt_cuda_launch_check("cholesky triangle zeroing");
            }
        }
    }
    pt_la_release(&s);
    return info < 0 ? info - 1 : info; /* devInfo < 0: cuSOLVER rejected argument -info (a bug) */
}

/* ---- inverse: getrf on a copy, getrs against the identity ---- */
template <typename T> static int pt_inverse_cuda(pt_linalg_args *g) {
    const char *op = "inverse";
    g->bad = 0;
    int dev = 0, n = (int)g->n, lw = 0;
    cusolverDnHandle_t h = pt_cusolver_handle(op, &dev);
    if (!h) return 0;
    T *A = (T *)g->a;
    const int64_t nn = (int64_t)n * n, total = g->batch * nn;
    if (pt_sol_failed(pt_sol<T>::getrf_size(h, n, A, &lw), op, "getrf_bufferSize")) return 0;
    pt_la_scratch s = {};
    s.dev = dev;
    s.op = op;
    T *work = (T *)pt_la_alloc(&s, 0, sizeof(T) * (size_t)(lw > 0 ? lw : 1));
    T *lu = (T *)pt_la_alloc(&s, 1, sizeof(T) * (size_t)total);
    int *piv = (int *)pt_la_alloc(&s, 2, sizeof(int) * (size_t)n);
    int *dinfo = (int *)pt_la_alloc(&s, 3, sizeof(int) * (size_t)(2 * g->batch)); /* getrf, then getrs */
    int info = 0;
    if (work && lu && piv && dinfo) {
        cudaStream_t st = pt_cuda_compute_stream();
        cudaError_t e = cudaMemcpyAsync(lu, A, sizeof(T) * (size_t)total, cudaMemcpyDeviceToDevice, st);
        int failed = 0;
        if (e != cudaSuccess) {
            pt_cuda_set_pending("%s: copying the matrices to the LU scratch: %s (%s)", op, cudaGetErrorString(e),
                                cudaGetErrorName(e));
            failed = 1;
        } else {
            pt_eye_kernel<T><<<pt_cuda_blocks(total, PT_THREADS), PT_THREADS, 0, st>>>(A, n, total);
            pt_cuda_launch_check("inverse identity");
        }
        for (int64_t b = 0; b < g->batch && !failed; b++) {
            failed = pt_sol_failed(pt_sol<T>::getrf(h, n, lu + b * nn, work, piv, dinfo + b), op, "getrf");
            /* a singular matrix gives infs here; the host sees its getrf devInfo and fails the op */
            if (!failed)
                failed = pt_sol_failed(pt_sol<T>::getrs(h, n, lu + b * nn, piv, A + b * nn, dinfo + g->batch + b), op,
                                       "getrs");
        }
        if (!failed) {
            int64_t bad = 0;
            info = pt_la_first_info(dinfo, 2 * g->batch, &bad, op);
            if (info == -2) info = 0; /* pending error set */
            /* the getrf slots come first, so the first singular matrix wins, as on the CPU; getrs only
             * reports rejected arguments (< 0) */
            else if (info) g->bad = bad < g->batch ? bad : bad - g->batch;
        }
    }
    pt_la_release(&s);
    return info < 0 ? info - 1 : info;
}

/* ---- QR: geqrf + orgqr on a column-major copy ---- */
template <typename T> static int pt_qr_cuda(pt_linalg_args *g) {
    const char *op = "qr";
    g->bad = 0;
    int dev = 0, m = (int)g->m, n = (int)g->n, kk = m < n ? m : n, lw1 = 0, lw2 = 0;
    cusolverDnHandle_t h = pt_cusolver_handle(op, &dev);
    if (!h) return 0;
    pt_la_scratch s = {};
    s.dev = dev;
    s.op = op;
    T *w = (T *)pt_la_alloc(&s, 0, sizeof(T) * (size_t)m * (size_t)n);
    T *tau = (T *)pt_la_alloc(&s, 1, sizeof(T) * (size_t)(kk + 1));
    int *dinfo = (int *)pt_la_alloc(&s, 2, sizeof(int) * 2); /* geqrf, orgqr */
    int info = 0;
    if (w && tau && dinfo) {
        int failed = pt_sol_failed(pt_sol<T>::geqrf_size(h, m, n, w, &lw1), op, "geqrf_bufferSize") ||
                     pt_sol_failed(pt_sol<T>::orgqr_size(h, m, kk, w, tau, &lw2), op, "orgqr_bufferSize");
        int lw = lw1 > lw2 ? lw1 : lw2;
        if (lw < 1) lw = 1;
        T *work = failed ? NULL : (T *)pt_la_alloc(&s, 3, sizeof(T) * (size_t)lw);
        if (work) {
            cudaStream_t st = pt_cuda_compute_stream();
            const int64_t M = m, N = n, KK = kk;
            pt_to_colmajor_kernel<T><<<pt_cuda_blocks(M * N, PT_THREADS), PT_THREADS, 0, st>>>((const T *)g->a, w, M,
                                                                                               N);
            pt_cuda_launch_check("qr transpose");
            failed = pt_sol_failed(pt_sol<T>::geqrf(h, m, n, w, tau, work, lw, dinfo), op, "geqrf");
            if (!failed) {
                pt_take_r_kernel<T><<<pt_cuda_blocks(KK * N, PT_THREADS), PT_THREADS, 0, st>>>(w, (T *)g->r, M, N, KK);
                pt_cuda_launch_check("qr take R");
                failed = pt_sol_failed(pt_sol<T>::orgqr(h, m, kk, w, tau, work, lw, dinfo + 1), op, "orgqr");
            }
            if (!failed) {
                pt_take_q_kernel<T><<<pt_cuda_blocks(M * KK, PT_THREADS), PT_THREADS, 0, st>>>(w, (T *)g->q, M, KK);
                pt_cuda_launch_check("qr take Q");
                int64_t bad = 0;
                info = pt_la_first_info(dinfo, 2, &bad, op);
                if (info == -2) info = 0; /* pending error set */
            }
        }
    }
    pt_la_release(&s);
    /* geqrf / orgqr report only rejected arguments (< 0), as in LAPACK */
    return info < 0 ? info - 1 : info;
}

static int cu_cholesky_f32(pt_linalg_args *g) { return pt_cholesky_cuda<float>(g); }
static int cu_cholesky_f64(pt_linalg_args *g) { return pt_cholesky_cuda<double>(g); }
static int cu_inverse_f32(pt_linalg_args *g) { return pt_inverse_cuda<float>(g); }
static int cu_inverse_f64(pt_linalg_args *g) { return pt_inverse_cuda<double>(g); }
static int cu_qr_f32(pt_linalg_args *g) { return pt_qr_cuda<float>(g); }
static int cu_qr_f64(pt_linalg_args *g) { return pt_qr_cuda<double>(g); }
PT_REGISTER_KERNEL(cholesky, PT_DEV_CUDA, PT_F32, cu_cholesky_f32)
PT_REGISTER_KERNEL(cholesky, PT_DEV_CUDA, PT_F64, cu_cholesky_f64)
PT_REGISTER_KERNEL(inverse, PT_DEV_CUDA, PT_F32, cu_inverse_f32)
PT_REGISTER_KERNEL(inverse, PT_DEV_CUDA, PT_F64, cu_inverse_f64)
PT_REGISTER_KERNEL(qr, PT_DEV_CUDA, PT_F32, cu_qr_f32)
PT_REGISTER_KERNEL(qr, PT_DEV_CUDA, PT_F64, cu_qr_f64)
