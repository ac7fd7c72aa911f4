/* cpu/matmul.c — CPU kernels of the matmul / linear algebra family (signatures in pt_matmul.h):
 * batched GEMM through OpenBLAS cblas_sgemm/dgemm (a large product in row blocks over the OpenMP
 * threads, each block a single-threaded OpenBLAS call; see "GEMM" below), and QR, Cholesky and
 * inverse through the LAPACK routines that libopenblas carries.
 *
 * LAPACK is Fortran and column-major; there is no lapacke.h on the build machines, so the routines
 * are declared here by hand (character arguments get gfortran's hidden length argument). A row-major
 * matrix handed to LAPACK is its transpose: inverse and Cholesky use that directly (inv(Aᵀ) =
 * inv(A)ᵀ; a symmetric A is its own transpose, and the lower factor of the column-major view is the
 * upper factor of the row-major one); QR transposes into a column-major work buffer.
 *
 * Tested by tests/c/test_matmul.c and tests/reference/test_ops_torch.py.
 */
#include <cblas.h>  /* cblas_sgemm, cblas_dgemm (OpenBLAS; pkg-config openblas) */
#include <omp.h>    /* the row blocks of a large GEMM run on the OpenMP threads */
#include <stddef.h> /* size_t */
#include <stdint.h>
#include <stdlib.h> /* malloc, free */
#include <string.h> /* memset */

#include "../pt_dispatch.h"
#include "../pt_matmul.h"

/* ---- LAPACK (Fortran ABI, column-major) ---- */
extern void sgeqrf_(const int *m, const int *n, float *a, const int *lda, float *tau, float *work, const int *lwork,
                    int *info);
extern void dgeqrf_(const int *m, const int *n, double *a, const int *lda, double *tau, double *work,
                    const int *lwork, int *info);
extern void sorgqr_(const int *m, const int *n, const int *k, float *a, const int *lda, const float *tau,
                    float *work, const int *lwork, int *info);
extern void dorgqr_(const int *m, const int *n, const int *k, double *a, const int *lda, const double *tau,
                    double *work, const int *lwork, int *info);
extern void spotrf_(const char *uplo, const int *n, float *a, const int *lda, int *info, size_t uplo_len);
extern void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t uplo_len);
extern void sgetrf_(const int *m, const int *n, float *a, const int *lda, int *ipiv, int *info);
extern void dgetrf_(const int *m, const int *n, double *a, const int *lda, int *ipiv, int *info);
extern void sgetri_(const int *n, float *a, const int *lda, const int *ipiv, float *work, const int *lwork,
                    int *info);
extern void dgetri_(const int *n, double *a, const int *lda, const int *ipiv, double *work, const int *lwork,
                    int *info);

/* ---- GEMM ----
 * A large single GEMM (batch 1, at least 2·PT_GEMM_ROWS rows, m·n·k >= PT_GEMM_SPLIT_FLOPS) is cut
 * into blocks of PT_GEMM_ROWS rows of C, and the blocks are shared by the OpenMP threads, each block
 * one single-threaded OpenBLAS call. Why not OpenBLAS's own threads: the other kernels run on
 * OpenMP, and with two thread pools on the cores, each one's idle threads (libgomp spinning after a
 * parallel region, OpenBLAS's sched_yield loop) take the cores from the other's working threads —
 * the v9 step took twice as long (bench/RESULTS.md, 2026-12-04). Blocks go to whichever thread is
 * free (dynamic: a thread the OS has paused does not hold the others up). The blocks do not depend
 * on the thread count, so neither do the values (one thread makes the same calls in order). Smaller
 * or batched products make one call per matrix and OpenBLAS threads them as it sees fit. */
#define PT_GEMM_ROWS 128
#define PT_GEMM_SPLIT_FLOPS 4194304.0
#define PT_DEF_MATMUL(SUF, T, GEMM)                                                                \
    static void gemm_rows_##SUF(const pt_matmul_args *g, int64_t i, int64_t r0, int64_t r1) {      \
        const T *A = g->a, *B = g->b;                                                              \
        T *C = g->out;                                                                             \
        int64_t ao = (g->aoff ? g->aoff[i] : 0) + (g->ta ? r0 : r0 * g->lda);                      \
        GEMM(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans, g->tb ? CblasTrans : CblasNoTrans,  \
             (int)(r1 - r0), (int)g->n, (int)g->k, 1, A + ao, (int)g->lda,                         \
             B + (g->boff ? g->boff[i] : 0), (int)g->ldb, 0, C + i * g->m * g->n + r0 * g->n,      \
             (int)g->n);                                                                           \
    }                                                                                              \
    static void matmul_##SUF(const pt_matmul_args *g) {                                            \
        if (g->batch == 1 && g->m >= 2 * PT_GEMM_ROWS &&                                           \
            (double)g->m * (double)g->n * (double)g->k >= PT_GEMM_SPLIT_FLOPS) {                   \
            const int64_t nb = (g->m + PT_GEMM_ROWS - 1) / PT_GEMM_ROWS;                           \
            const int prev = openblas_get_num_threads();                                           \
            if (prev > 1) openblas_set_num_threads(1);                                             \
            _Pragma("omp parallel for schedule(dynamic, 1)")                                        \
            for (int64_t blk = 0; blk < nb; blk++) {                                               \
                int64_t r0 = blk * PT_GEMM_ROWS, r1 = r0 + PT_GEMM_ROWS < g->m ? r0 + PT_GEMM_ROWS : g->m; \
                gemm_rows_##SUF(g, 0, r0, r1);                                                     \
            }                                                                                      \
            if (prev > 1) openblas_set_num_threads(prev);                                          \
            return;                                                                                \
        }                                                                                          \
        for (int64_t i = 0; i < g->batch; i++) gemm_rows_##SUF(g, i, 0, g->m);                     \
    }
PT_DEF_MATMUL(f32, float, cblas_sgemm)
PT_DEF_MATMUL(f64, double, cblas_dgemm)
PT_REGISTER_KERNEL(matmul, PT_DEV_CPU, PT_F32, matmul_f32)
PT_REGISTER_KERNEL(matmul, PT_DEV_CPU, PT_F64, matmul_f64)

/* ---- QR: geqrf + orgqr on a column-major copy ---- */
#define PT_DEF_QR(SUF, T, GEQRF, ORGQR)                                                            \
    static int qr_##SUF(pt_linalg_args *g) {                                                       \
        int m = (int)g->m, n = (int)g->n, kk = m < n ? m : n, info = 0, lwork = -1;                \
        const T *A = g->a;                                                                         \
        T *Q = g->q, *R = g->r, q1 = 0, q2 = 0;                                                    \
        g->bad = 0;                                                                                \
        T *w = malloc(sizeof(T) * (size_t)m * (size_t)n), *tau = malloc(sizeof(T) * (size_t)(kk + 1)); \
        if (!w || !tau) {                                                                          \
            free(w);                                                                               \
            free(tau);                                                                             \
            return -1;                                                                             \
        }                                                                                          \
        for (int i = 0; i < m; i++)                                                                \
            for (int j = 0; j < n; j++) w[i + (size_t)j * m] = A[(size_t)i * n + j];               \
        GEQRF(&m, &n, w, &m, tau, &q1, &lwork, &info);                                             \
        if (!info) ORGQR(&m, &kk, &kk, w, &m, tau, &q2, &lwork, &info);                            \
        lwork = (int)(q1 > q2 ? q1 : q2);                                                          \
        if (lwork < 1) lwork = 1;                                                                  \
        T *work = info ? NULL : malloc(sizeof(T) * (size_t)lwork);                                 \
        if (!info && !work) info = -1;                                                             \
        else if (!info) GEQRF(&m, &n, w, &m, tau, work, &lwork, &info);                            \
        if (!info) {                                                                               \
            for (int i = 0; i < kk; i++)                                                           \
                for (int j = 0; j < n; j++) R[(size_t)i * n + j] = j >= i ? w[i + (size_t)j * m] : 0; \
            ORGQR(&m, &kk, &kk, w, &m, tau, work, &lwork, &info);                                  \
        }                                                                                          \
        if (!info)                                                                                 \
            for (int i = 0; i < m; i++)                                                            \
                for (int j = 0; j < kk; j++) Q[(size_t)i * kk + j] = w[i + (size_t)j * m];         \
        free(work);                                                                                \
        free(tau);                                                                                 \
        free(w);                                                                                   \
        return info < 0 && info != -1 ? info - 1 : info;                                           \
    }
PT_DEF_QR(f32, float, sgeqrf_, sorgqr_)
PT_DEF_QR(f64, double, dgeqrf_, dorgqr_)
PT_REGISTER_KERNEL(qr, PT_DEV_CPU, PT_F32, qr_f32)
PT_REGISTER_KERNEL(qr, PT_DEV_CPU, PT_F64, qr_f64)

/* ---- Cholesky: potrf per matrix ---- */
#define PT_DEF_CHOL(SUF, T, POTRF)                                                                 \
    static int cholesky_##SUF(pt_linalg_args *g) {                                                 \
        int n = (int)g->n, info = 0;                                                               \
        /* row-major upper factor = column-major lower factor of the same (symmetric) matrix */    \
        const char *uplo = g->upper ? "L" : "U";                                                   \
        for (int64_t b = 0; b < g->batch; b++) {                                                   \
            T *a = (T *)g->a + b * (int64_t)n * n;                                                 \
            POTRF(uplo, &n, a, &n, &info, 1);                                                      \
            if (info) {                                                                            \
                g->bad = b;                                                                        \
                return info < 0 ? info - 1 : info;                                                 \
            }                                                                                      \
            for (int i = 0; i < n; i++)                                                            \
                for (int j = 0; j < n; j++)                                                        \
                    if (g->upper ? j < i : j > i) a[(size_t)i * n + j] = 0;                        \
        }                                                                                          \
        return 0;                                                                                  \
    }
PT_DEF_CHOL(f32, float, spotrf_)
PT_DEF_CHOL(f64, double, dpotrf_)
PT_REGISTER_KERNEL(cholesky, PT_DEV_CPU, PT_F32, cholesky_f32)
PT_REGISTER_KERNEL(cholesky, PT_DEV_CPU, PT_F64, cholesky_f64)

/* ---- inverse: getrf + getri per matrix ---- */
#define PT_DEF_INV(SUF, T, GETRF, GETRI)                                                           \
    static int inverse_##SUF(pt_linalg_args *g) {                                                  \
        int n = (int)g->n, info = 0, lwork = n * 64 > 0 ? n * 64 : 1;                              \
        int *ipiv = malloc(sizeof(int) * (size_t)(n + 1));                                         \
        T *work = malloc(sizeof(T) * (size_t)lwork);                                               \
        if (!ipiv || !work) {                                                                      \
            free(ipiv);                                                                            \
            free(work);                                                                            \
            return -1;                                                                             \
        }                                                                                          \
        for (int64_t b = 0; b < g->batch && !info; b++) {                                         \
            T *a = (T *)g->a + b * (int64_t)n * n;                                                 \
            GETRF(&n, &n, a, &n, ipiv, &info);                                                     \
            if (!info) GETRI(&n, a, &n, ipiv, work, &lwork, &info);                                \
            if (info) g->bad = b;                                                                  \
        }                                                                                          \
        free(ipiv);                                                                                \
        free(work);                                                                                \
        return info < 0 ? info - 1 : info;                                                         \
    }
PT_DEF_INV(f32, float, sgetrf_, sgetri_)
PT_DEF_INV(f64, double, dgetrf_, dgetri_)
PT_REGISTER_KERNEL(inverse, PT_DEV_CPU, PT_F32, inverse_f32)
PT_REGISTER_KERNEL(inverse, PT_DEV_CPU, PT_F64, inverse_f64)
