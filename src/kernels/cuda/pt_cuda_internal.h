/* pt_cuda_internal.h — what the backend's own files share (.c compiled by gcc, .cu by nvcc):
 * error checking that routes into pt_status, the current device's streams, launch checks and grid
 * sizing. Not for bindings (they use pt_cuda.h, which has no CUDA types).
 *
 *   pt_status f(...) {
 *       PT_CUDA_CHECK(cudaMemsetAsync(p, 0, n, pt_cuda_compute_stream()));
 *       my_kernel<<<grid, 256, 0, pt_cuda_compute_stream()>>>(...);
 *       pt_cuda_launch_check("my_kernel f32");    // records a pending error if the launch failed
 *       return PT_OK;
 *   }
 *
 * PT_CUDA_CHECK(call) returns PT_ERR_DEVICE with "file:line: cudaXxx: <CUDA's message> (<name>)";
 * asynchronous faults (illegal address, launch failure, ...) add a hint to rerun with PT_CUDA_SYNC=1.
 */
#ifndef PT_CUDA_INTERNAL_H
#define PT_CUDA_INTERNAL_H

#include <cuda_runtime_api.h> /* cudaError_t, cudaStream_t, cudaMalloc, ... */

#include "pt_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Formats the failure of `call` (source text; trimmed to the function name) into the status
 * message, clears CUDA's last error where it is not sticky, returns PT_ERR_DEVICE. */
pt_status pt_cuda_fail(cudaError_t err, const char *call, const char *file, int line);

#define PT_CUDA_CHECK(call)                                                          \
    do {                                                                             \
        cudaError_t pt_cuda_e_ = (call);                                             \
        if (pt_cuda_e_ != cudaSuccess)                                               \
            return pt_cuda_fail(pt_cuda_e_, #call, __FILE__, __LINE__);              \
    } while (0)

/* Streams of the current device (pt_cuda_use must have succeeded on this thread). */
cudaStream_t pt_cuda_compute_stream(void);
cudaStream_t pt_cuda_copy_stream(void);
/* Multiprocessor count of the current device (for grid sizing). */
int pt_cuda_sm_count(void);

/* After a launch: records cudaGetLastError() (and with PT_CUDA_SYNC=1 the result of synchronising
 * the compute stream) as the pending error, named after `what`. */
void pt_cuda_launch_check(const char *what);
/* Records a pending error message (first one wins until it is reported). */
void pt_cuda_set_pending(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- CUDA graph capture (graph.c) ----
 * PT_OK when this thread is not capturing; else records the failure in the capture (so ending it
 * fails even if the caller swallows the error) and returns PT_ERR_UNSUPPORTED with
 * "<what> cannot run inside a CUDA graph capture; <fix>". For every host-synchronising or
 * non-capturable path: if (...) PT_TRY(pt_cuda_capture_forbid("cuda.synchronize()", "move it ...")); */
pt_status pt_cuda_capture_forbid(const char *what, const char *fix);
/* Records msg as the capture's failure (first one wins) when this thread is capturing. */
void pt_cuda_capture_note(const char *msg);

/* ---- deferred device-side checks (runtime.c; used by index.cu) ----
 * Eagerly a validity check (index ranges, cross-entropy targets) synchronises and fails at once.
 * Inside a CUDA graph capture it cannot: its kernel records the first failure into the device's
 * record instead (one thread: if site == 0 { pos, value; __threadfence_system(); site }), and the
 * next synchronisation on that device that returns a status (pt_cuda_synchronize,
 * pt_cuda_memcpy_d2h, pt_cuda_event_synchronize) reads and clears it and fails with PT_ERR_INDEX:
 * the check's message + " (a deferred check inside a CUDA graph: reported at the next
 * synchronisation)". The record is pinned host memory mapped into the device (zero-copy). */
typedef struct {
    int64_t site;  /* 0: no failure; else the id of the check's message (pt_cuda_deferred_site) */
    int64_t pos;   /* flat position of the first bad element */
    int64_t value; /* its value */
} pt_cuda_deferred_rec;
/* Id (>= 1) of a message template with {value} and {pos} placeholders (pt_index_format_check);
 * equal templates share an id. 0 when the table (1024 messages) is full or out of memory. */
int64_t pt_cuda_deferred_site(const char *tmpl);
/* The current device's record, as the device addresses it. */
pt_cuda_deferred_rec *pt_cuda_deferred_record(void);
/* Reads and clears the record of `device` (call after a synchronisation): PT_OK or the failure. */
pt_status pt_cuda_deferred_take(int device);
/* Loads the kernels that only a capture launches (index.cu's deferred check) before the capture starts:
 * with lazy module loading a first launch inside a capture fails on drivers before CUDA 12.3. */
pt_status pt_index_capture_prepare(void);

/* cuBLAS (matmul.cu): creates the current device's handle if needed, bound to the compute stream
 * with a workspace from the caching allocator (cublasSetWorkspace), so that cuBLAS calls can be
 * captured. Called before every capture (graph.c). */
pt_status pt_cuda_blas_prepare(void);

/* ---- graph pools (alloc.c) ---- */
typedef struct pt_cuda_pool pt_cuda_pool;
pt_status pt_cuda_pool_new(int device, pt_cuda_pool **out);
/* p != NULL: this thread's allocations on p's device come from p, and every block freed on that
 * device is adopted by p (fails if another pool captures that device). p == NULL: stops that for
 * `device`. */
pt_status pt_cuda_pool_capture(pt_cuda_pool *p, int device);
/* Free blocks go to the device cache, live ones become ordinary; frees p. */
void pt_cuda_pool_release(pt_cuda_pool *p);
void pt_cuda_pool_get_stats(const pt_cuda_pool *p, pt_cuda_pool_stats *out);

/* Blocks for a grid-stride loop over n items with `threads` per block (at least 1, at most
 * 32 blocks per multiprocessor). */
static inline unsigned pt_cuda_blocks(int64_t n, int threads) {
    int64_t b = (n + threads - 1) / threads;
    int64_t cap = (int64_t)pt_cuda_sm_count() * 32;
    if (b > cap) b = cap;
    if (b < 1) b = 1;
    return (unsigned)b;
}

#ifdef __cplusplus
}
#endif

#endif
