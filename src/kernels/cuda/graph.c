/* cuda/graph.c — CUDA graphs: capture a sequence of work on one device's compute stream once, then
 * replay it with a single launch (issue 11: a whole training step without per-kernel launch costs).
 *
 *   pt_cuda_graph_begin(dev)  -> cudaStreamBeginCapture(compute stream, thread-local mode); a private
 *                                allocator pool starts serving this thread (alloc.c)
 *   ... launches ...          -> recorded, not run
 *   pt_cuda_graph_end(&g)     -> cudaStreamEndCapture + cudaGraphInstantiate + cudaGraphUpload
 *   pt_cuda_graph_replay(g)   -> cudaGraphLaunch on the compute stream (ordered like any kernel)
 *   pt_cuda_graph_free(g)     -> destroys the graph and releases its pool
 *
 * Capture mode: cudaStreamCaptureModeThreadLocal. A "potentially unsafe" CUDA call made by the
 * capturing thread (cudaMalloc, a synchronous cudaMemcpy, cudaStreamSynchronize, ...) then fails
 * instead of running eagerly beside the capture, so code that was never meant to be captured cannot
 * slip through silently; other threads are not affected by our capture (global mode would make
 * their cudaMallocs fail too), and relaxed mode would let such calls run. The allocator is the one
 * place that must call cudaMalloc during a capture (the pool grows): it switches this thread to the
 * relaxed mode for that single call (alloc.c), which is safe because the block is never freed
 * while the graph lives. Our own host-synchronising paths (device->host copies, synchronize,
 * events, host->device copies through the pinned staging buffers and the copy stream, empty_cache,
 * other devices) do not even reach CUDA: they fail through pt_cuda_capture_forbid with a message
 * that names the operation. Every such failure, every CUDA error and every pending launch error
 * during the capture is noted here (first one wins), so ending the capture fails even when the
 * caller swallowed the error, and the capture is discarded cleanly (cudaStreamEndCapture, graph
 * destroyed, pool released, CUDA's last error cleared): the process goes on.
 *
 * Tests: tests/gpu/test_graph.lua (skips without a device), tests/lua/test_graph_api.lua (the errors
 * without a device). Lua: proteus.cuda's cuda.graph(fn) (lua/lib/proteus/cuda.lua); training:
 * train.run{cuda_graph = true} (lua/lib/proteus/train.lua); docs/gpu.md, "CUDA graphs".
 */
#include <stdio.h>  /* snprintf */
#include <stdlib.h> /* calloc, free, getenv */
#include <string.h> /* strlen, strcmp */

#include <cuda_runtime_api.h> /* cudaStreamBeginCapture, cudaGraph* */

#include "pt_cuda.h"
#include "pt_cuda_internal.h"

struct pt_cuda_graph {
    int device;
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    pt_cuda_pool *pool;
    int64_t nodes, replays;
    struct pt_cuda_graph *next_deferred; /* freed during a capture: destroyed at its end */
};

/* The capture in progress on this thread. */
typedef struct {
    int device;
    pt_cuda_pool *pool;
    int failed;
    char error[1024]; /* the first failure */
} pt_cuda_capture;

static _Thread_local pt_cuda_capture *pt_cap;
static _Thread_local pt_cuda_graph *pt_deferred; /* graphs freed while this thread captured */

int pt_cuda_graph_capturing(void) { return pt_cap ? pt_cap->device : -1; }

void pt_cuda_capture_note(const char *msg) {
    if (!pt_cap || pt_cap->failed) return;
    pt_cap->failed = 1;
    snprintf(pt_cap->error, sizeof pt_cap->error, "%s", msg && *msg ? msg : "(no message)");
}

pt_status pt_cuda_capture_forbid(const char *what, const char *fix) {
    if (!pt_cap) return PT_OK;
    pt_status st = PT_FAIL(PT_ERR_UNSUPPORTED, "%s cannot run inside a CUDA graph capture; %s", what, fix);
    pt_cuda_capture_note(pt_last_error());
    return st;
}

/* A kernel launched for the first time inside a capture is loaded then (lazy module loading, the
 * default since CUDA 12.2), which drivers before CUDA 12.3 refuse: say so when such a driver is in use. */
static pt_status pt_graph_lazy_hint(pt_status st, int device) {
    int drv = 0;
    const char *mode = getenv("CUDA_MODULE_LOADING");
    if (cudaDriverGetVersion(&drv) != cudaSuccess || drv >= 12030 || (mode && strcmp(mode, "EAGER") == 0)) return st;
    return pt_error_context(st,
                            "note: cuda:%d's driver supports CUDA %d.%d, which cannot load a kernel during a capture "
                            "(12.3 can); if a kernel ran for the first time inside it, run the captured function "
                            "once eagerly first (a warm-up loads its kernels) or set CUDA_MODULE_LOADING=EAGER",
                            device, drv / 1000, (drv % 1000) / 10);
}

static void pt_graph_destroy(pt_cuda_graph *g) {
    if (g->exec) (void)cudaGraphExecDestroy(g->exec); /* a replay in flight finishes first (CUDA frees it then) */
    if (g->graph) (void)cudaGraphDestroy(g->graph);
    pt_cuda_pool_release(g->pool);
    free(g);
}

/* Ends this thread's capture: stream back to normal, pool detached, deferred frees done. Returns
 * the captured graph (NULL when CUDA produced none) and CUDA's answer. */
static cudaError_t pt_capture_finish(pt_cuda_capture *c, cudaGraph_t *graph) {
    *graph = NULL;
    cudaError_t e = cudaStreamEndCapture(pt_cuda_compute_stream(), graph);
    (void)cudaGetLastError(); /* a refused call left its error behind; it is in c->error */
    (void)pt_cuda_pool_capture(NULL, c->device);
    pt_cap = NULL;
    while (pt_deferred) {
        pt_cuda_graph *g = pt_deferred;
        pt_deferred = g->next_deferred;
        pt_graph_destroy(g);
    }
    return e;
}

pt_status pt_cuda_graph_begin(int device) {
    if (pt_cap)
        return PT_FAIL(PT_ERR_VALUE,
                       "a CUDA graph capture is already in progress on this thread (cuda:%d); end it before starting "
                       "another (captures do not nest)",
                       pt_cap->device);
    PT_TRY(pt_cuda_use(device));
    PT_TRY(pt_cuda_check_pending()); /* an earlier kernel's error is not the capture's */
    /* everything lazily created on first use must exist before the capture (cudaMalloc, handles) */
    PT_TRY(pt_cuda_blas_prepare());
    PT_TRY(pt_index_capture_prepare()); /* capture-only kernels loaded before the capture (lazy loading) */
    enum cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    PT_CUDA_CHECK(cudaStreamIsCapturing(pt_cuda_compute_stream(), &cs));
    if (cs != cudaStreamCaptureStatusNone)
        return PT_FAIL(PT_ERR_VALUE, "cuda:%d's compute stream is already being captured (by another thread)", device);
    pt_cuda_capture *c = calloc(1, sizeof *c);
    if (!c) return PT_FAIL(PT_ERR_OOM, "out of host memory starting a CUDA graph capture");
    c->device = device;
    pt_status st = pt_cuda_pool_new(device, &c->pool);
    if (st) {
        free(c);
        return st;
    }
    st = pt_cuda_pool_capture(c->pool, device);
    if (st) {
        pt_cuda_pool_release(c->pool);
        free(c);
        return st;
    }
    cudaError_t e = cudaStreamBeginCapture(pt_cuda_compute_stream(), cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) {
        (void)pt_cuda_pool_capture(NULL, device);
        pt_cuda_pool_release(c->pool);
        free(c);
        return pt_cuda_fail(e, "cudaStreamBeginCapture", __FILE__, __LINE__);
    }
    pt_cap = c;
    return PT_OK;
}

void pt_cuda_graph_abort(void) {
    pt_cuda_capture *c = pt_cap;
    if (!c) return;
    cudaGraph_t g = NULL;
    (void)pt_capture_finish(c, &g);
    if (g) (void)cudaGraphDestroy(g);
    /* a launch error recorded during the capture belongs to it: not reported again later */
    pt_status ignored = pt_cuda_check_pending();
    (void)ignored;
    pt_cuda_pool_release(c->pool);
    free(c);
}

pt_status pt_cuda_graph_end(pt_cuda_graph **out) {
    *out = NULL;
    pt_cuda_capture *c = pt_cap;
    if (!c) return PT_FAIL(PT_ERR_VALUE, "pt_cuda_graph_end: no CUDA graph capture is in progress on this thread");
    cudaGraph_t graph = NULL;
    cudaError_t e = pt_capture_finish(c, &graph);
    /* a launch that failed during the capture left a pending error: it is the capture's failure */
    if (pt_cuda_check_pending() != PT_OK && !c->failed) {
        c->failed = 1;
        snprintf(c->error, sizeof c->error, "%s", pt_last_error());
    }
    pt_status st = PT_OK;
    if (c->failed) {
        st = PT_FAIL(PT_ERR_UNSUPPORTED, "CUDA graph capture on cuda:%d failed and was discarded: %s", c->device,
                     c->error);
    } else if (e != cudaSuccess) {
        st = pt_cuda_fail(e, "cudaStreamEndCapture", __FILE__, __LINE__);
        st = pt_error_context(st, "CUDA graph capture on cuda:%d was discarded (an operation broke the capture)",
                              c->device);
    }
    if (st) st = pt_graph_lazy_hint(st, c->device);
    pt_cuda_graph *g = NULL;
    if (!st) {
        g = calloc(1, sizeof *g);
        if (!g) st = PT_FAIL(PT_ERR_OOM, "out of host memory ending a CUDA graph capture");
    }
    if (!st) {
        g->device = c->device;
        g->graph = graph;
        g->pool = c->pool;
        size_t n = 0;
        const char *call = "cudaGraphGetNodes";
        cudaError_t e2 = cudaGraphGetNodes(graph, NULL, &n);
        if (e2 == cudaSuccess) {
            call = "cudaGraphInstantiate";
            e2 = cudaGraphInstantiate(&g->exec, graph, 0);
        }
        if (e2 == cudaSuccess) {
            call = "cudaGraphUpload";
            e2 = cudaGraphUpload(g->exec, pt_cuda_compute_stream());
        }
        if (e2 != cudaSuccess) {
            int dev = g->device;
            st = pt_cuda_fail(e2, call, __FILE__, __LINE__);
            pt_graph_destroy(g); /* the graph and the pool */
            free(c);
            return pt_error_context(st, "instantiating the CUDA graph captured on cuda:%d", dev);
        }
        g->nodes = (int64_t)n;
        free(c);
        *out = g;
        return PT_OK;
    }
    if (graph) (void)cudaGraphDestroy(graph);
    pt_cuda_pool_release(c->pool);
    free(c);
    return st;
}

pt_status pt_cuda_graph_replay(pt_cuda_graph *g) {
    if (!g) return PT_FAIL(PT_ERR_VALUE, "CUDA graph replay: the graph was freed");
    if (pt_cap)
        return pt_cuda_capture_forbid("graph:replay()", "replay graphs outside any capture (captures do not nest)");
    PT_TRY(pt_cuda_use(g->device));
    PT_TRY(pt_cuda_check_pending());
    PT_CUDA_CHECK(cudaGraphLaunch(g->exec, pt_cuda_compute_stream()));
    g->replays++;
    pt_cuda_launch_check("CUDA graph replay");
    return PT_OK;
}

pt_status pt_cuda_graph_get_stats(pt_cuda_graph *g, pt_cuda_graph_stats *out) {
    if (!g) return PT_FAIL(PT_ERR_VALUE, "CUDA graph stats: the graph was freed");
    memset(out, 0, sizeof *out);
    out->device = g->device;
    out->nodes = g->nodes;
    out->replays = g->replays;
    pt_cuda_pool_get_stats(g->pool, &out->pool);
    return PT_OK;
}

void pt_cuda_graph_free(pt_cuda_graph *g) {
    if (!g) return;
    if (pt_cap) { /* destroying graphs and releasing pools waits for the end of this thread's capture */
        g->next_deferred = pt_deferred;
        pt_deferred = g;
        return;
    }
    pt_graph_destroy(g);
}
