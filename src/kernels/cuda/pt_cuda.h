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
    /* CUDA graph pools (graph.c): memory owned by live graphs, part of the counts above; a pool's
     * free blocks are in cached_bytes but stay with their graph (empty_cache leaves them) */
    int64_t n_graph_pools;
    int64_t graph_pool_reserved_bytes;
    int64_t graph_pool_allocated_bytes;
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

/* ---- CUDA graphs (graph.c) ----
 * Capture of the current thread's work on one device's compute stream, replayed with one launch:
 *
 *   PT_TRY(pt_cuda_graph_begin(0));
 *   st = step();                                  // launches are recorded, nothing runs
 *   if (st) { pt_cuda_graph_abort(); return st; }
 *   PT_TRY(pt_cuda_graph_end(&g));                // fails if anything in step() could not be captured
 *   for (...) { copy new inputs into the same tensors; PT_TRY(pt_cuda_graph_replay(g)); }
 *   pt_cuda_graph_free(g);
 *
 * During the capture the thread's allocations on that device come from the graph's private pool
 * (alloc.c), so the addresses baked into the graph stay valid for every replay; tensors made before
 * the capture and read by it must stay alive while the graph is replayed. Host synchronisation
 * (device->host copies, synchronize, events), host->device copies, empty_cache and other devices
 * fail with "... cannot run inside a CUDA graph capture" and mark the capture failed. */
typedef struct pt_cuda_graph pt_cuda_graph;
typedef struct {
    int64_t reserved_bytes;       /* device memory the pool owns */
    int64_t allocated_bytes;      /* of which held by live tensors */
    int64_t peak_allocated_bytes;
    int64_t n_blocks;             /* blocks owned */
    int64_t n_allocs, n_frees;    /* allocations served and frees returned to the pool */
    int64_t n_reuses;             /* allocations served from the pool's own free blocks */
    int64_t n_from_cache;         /* blocks taken over from the device cache */
    int64_t n_cuda_mallocs;       /* blocks obtained by cudaMalloc during the capture */
    int64_t n_adopted;            /* blocks of earlier tensors freed during the capture */
} pt_cuda_pool_stats;
typedef struct {
    int device;
    int64_t nodes;    /* graph nodes (kernels, copies, memsets) */
    int64_t replays;
    pt_cuda_pool_stats pool;
} pt_cuda_graph_stats;

/* Starts capturing this thread's work on `device` (thread-local capture mode). Fails when a
 * capture is already in progress on this thread or on that device. */
pt_status pt_cuda_graph_begin(int device);
/* Ends the capture and instantiates the graph. On failure (an operation that could not be
 * captured, a kernel error during the capture) the capture is discarded, its pool released, and the
 * error names the first failure. */
pt_status pt_cuda_graph_end(pt_cuda_graph **out);
/* Ends and discards this thread's capture, if any (after an error in the captured code). */
void pt_cuda_graph_abort(void);
/* Device this thread is capturing, or -1. */
int pt_cuda_graph_capturing(void);
/* Launches the graph on its device's compute stream (asynchronous, like any kernel). */
pt_status pt_cuda_graph_replay(pt_cuda_graph *g);
pt_status pt_cuda_graph_get_stats(pt_cuda_graph *g, pt_cuda_graph_stats *out);
/* Destroys the graph and releases its pool (live tensors from the pool become ordinary blocks).
 * NULL is fine; during a capture on this thread the destruction waits for the capture's end. */
void pt_cuda_graph_free(pt_cuda_graph *g);

#ifdef __cplusplus
}
#endif

#endif
