/* pt_cuda.h — the CUDA backend's C API: devices, streams, the caching allocator's statistics,
 * synchronisation, timing events and the strided copy/fill entry points.
 *
 * This header uses no CUDA types, so the Lua binding (src/bindings/cuda.c, compiled by gcc) and the
 * C tests can include it; the CUDA-side helpers (PT_CUDA_CHECK, stream handles) are in
 * pt_cuda_internal.h. Only compiled in when nvcc was found (PT_WITH_CUDA).
 *
 * Model (src/kernels/cuda/README.md has the whole picture):
 *   - Devices initialise lazily on first use; a machine without a GPU or driver reports
 *     device_count 0 and every call that needs a device fails with PT_ERR_DEVICE naming why.
 *   - Per device: one compute stream (every kernel, device-to-device copy and memset) and one copy
 *     stream (host<->device transfers through a pinned staging buffer, ordered against the compute
 *     stream with events). Everything is stream-ordered: nothing here blocks except reads to the
 *     host, pt_cuda_synchronize and the event queries.
 *   - Kernel launchers cannot return a status (pt_ew_kernel returns void), so a failed launch is
 *     recorded as a pending error that the next status-returning call of this API reports (at the
 *     latest the copy that brings a result to the host). PT_CUDA_SYNC=1 in the environment
 *     synchronises after every launch, so an asynchronous fault names its own kernel.
 *
 * Tests: tests/c/test_cuda_alloc.c, tests/c/test_cuda_elementwise.c, tests/gpu/test_*.lua
 * (scripts/gpu_tests.sh runs them all; they skip without a device).
 */
#ifndef PT_CUDA_H
#define PT_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "../../host/pt_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PT_CUDA_MAX_DEVICES 16

/* ---- devices ---- */
/* Number of usable devices (0 when there is no driver or no GPU; never fails). */
int pt_cuda_device_count(void);
/* Why there is no device ("" when there is one): e.g. "cudaGetDeviceCount: no CUDA-capable device
 * is detected". */
const char *pt_cuda_unavailable_reason(void);
typedef struct {
    char name[256];
    int major, minor;          /* compute capability */
    int sm_count;
    size_t total_bytes;        /* device memory */
    size_t l2_bytes;
    size_t smem_per_block_optin;
} pt_cuda_device_info;
pt_status pt_cuda_get_device_info(int device, pt_cuda_device_info *out);
/* Makes `device` current on this thread, initialising it (streams, events) on first use. */
pt_status pt_cuda_use(int device);
/* Waits for all work on `device` (both streams) and reports any pending or asynchronous error. */
pt_status pt_cuda_synchronize(int device);
/* Returns and clears the pending launch error, if any (PT_OK otherwise). */
pt_status pt_cuda_check_pending(void);

/* ---- caching allocator (alloc.c) ---- */
typedef struct {
    int64_t allocated_bytes;  /* bytes in blocks handed out (rounded to the size class) */
    int64_t requested_bytes;  /* bytes asked for by those blocks */
    int64_t reserved_bytes;   /* bytes obtained from cudaMalloc (allocated + cached) */
    int64_t cached_bytes;     /* reserved - allocated: free blocks waiting for reuse */
    int64_t peak_allocated_bytes;
    int64_t peak_reserved_bytes;
    int64_t n_allocs;         /* successful allocations (cache hits + cudaMalloc) */
    int64_t n_frees;
    int64_t n_cache_hits;     /* allocations served from a free list */
    int64_t n_cuda_mallocs;
    int64_t n_cuda_frees;
    int64_t n_oom_flushes;    /* times an out-of-memory emptied the cache and retried */
    int64_t n_active_blocks;
    int64_t n_cached_blocks;
} pt_cuda_mem_stats;

pt_status pt_cuda_alloc(void **ptr, size_t nbytes, int device);
void pt_cuda_free(void *ptr, size_t nbytes, int device);
/* Size a request of nbytes is rounded to (its size class). */
size_t pt_cuda_alloc_round(size_t nbytes);
pt_status pt_cuda_memory_stats(int device, pt_cuda_mem_stats *out);
/* Resets the peaks to the current values. */
pt_status pt_cuda_reset_peak_stats(int device);
/* Returns every cached (free) block of `device` to the driver; device < 0: all devices. */
pt_status pt_cuda_empty_cache(int device);
/* "1.50 GiB", "512 B": human-readable byte counts for messages. */
const char *pt_cuda_fmt_bytes(int64_t n, char *buf, size_t len);

/* ---- transfers (runtime.c); the tensor layer calls them through pt_device_allocator ---- */
pt_status pt_cuda_memcpy_h2d(void *dst, const void *src, size_t n, int device);
pt_status pt_cuda_memcpy_d2h(void *dst, const void *src, size_t n, int device);
pt_status pt_cuda_memcpy_d2d(void *dst, const void *src, size_t n, int device);
pt_status pt_cuda_memset0(void *dst, size_t n, int device);

/* ---- strided copies with casts, and fill (copy.cu) ---- */
/* dst and src on CUDA, same shape, any dtypes and strides (the tensor layer's copy hook). */
pt_status pt_cuda_copy(pt_tensor *dst, const pt_tensor *src);
/* Sets every element of the view t (any strides) to value, converted like pt_tensor_fill_. Also
 * registered in the kernel table as ("tensor_fill", PT_DEV_CUDA, dtype) with type pt_fill_kernel. */
pt_status pt_cuda_fill(pt_tensor *t, double value);
typedef pt_status (*pt_fill_kernel)(pt_tensor *t, double value);

/* ---- timing events (recorded on the compute stream of the current device) ---- */
typedef struct pt_cuda_event pt_cuda_event;
pt_status pt_cuda_event_new(pt_cuda_event **out);
pt_status pt_cuda_event_record(pt_cuda_event *ev);
/* Milliseconds between two recorded events; waits for `end`. */
pt_status pt_cuda_event_elapsed_ms(pt_cuda_event *start, pt_cuda_event *end, double *ms);
pt_status pt_cuda_event_synchronize(pt_cuda_event *ev);
void pt_cuda_event_free(pt_cuda_event *ev);

#ifdef __cplusplus
}
#endif

#endif
