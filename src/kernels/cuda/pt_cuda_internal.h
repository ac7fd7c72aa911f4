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
