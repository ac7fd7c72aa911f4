/* cuda/runtime.c — CUDA device runtime: lazy device initialisation, the compute and copy streams,
 * error routing into pt_status, pending launch errors, host<->device transfers through pinned
 * staging buffers, timing events, and the installation of the backend into the tensor layer
 * (pt_set_device_allocator + pt_cuda_copy_hook) at load time.
 *
 * Transfers (per device, under one mutex):
 *   host -> device: the copy stream first waits for the compute stream (the destination block may
 *     have been freed by work still queued there and handed out again); the host data is copied into
 *     one of two pinned 8 MiB staging buffers and sent with cudaMemcpyAsync on the copy stream, the
 *     other buffer filling meanwhile; the compute stream then waits for the copy stream. The call
 *     returns once the host source has been read (the DMA may still be in flight).
 *   device -> host: the same ordering; chunks land in the staging buffers and are copied out as
 *     each completes; the call returns when the data is on the host.
 * CUDA graph captures (graph.c) record the compute stream only: every call here that would wait for
 * the GPU, use the copy stream, the pinned staging buffers or timing events, or switch devices
 * fails during a capture with "... cannot run inside a CUDA graph capture" (pt_cuda_capture_forbid),
 * and PT_CUDA_SYNC does not synchronise while capturing; memset0 and device-to-device copies are
 * captured. Errors CUDA reports for a call the capture refused carry a hint saying so.
 * Deferred checks: each device has one error record in pinned host memory mapped into the device's
 * address space (pt_cuda_deferred_rec). A validity check captured into a graph (index ranges,
 * cross-entropy targets: index.cu) cannot stop the host, so its kernel writes the first failure there
 * (a message site registered at capture time, the flat position, the offending value); the record is
 * read and cleared at the next synchronisation on that device that returns a status:
 * pt_cuda_synchronize, pt_cuda_memcpy_d2h (tensor:item(), :to("cpu"), ...) and
 * pt_cuda_event_synchronize, which then fail with the eager check's message and "(a deferred check
 * inside a CUDA graph: reported at the next synchronisation)". Mapped host memory instead of device
 * memory: reading it after a synchronisation is a plain load (no extra copy at every item()).
 * Built only when nvcc was found; tested by tests/c/test_cuda_alloc.c, tests/gpu/test_runtime.lua and
 * tests/gpu/test_graph.lua.
 */
#include <pthread.h>  /* pthread_mutex_t */
#include <stdarg.h>   /* va_list */
#include <stdio.h>    /* snprintf */
#include <stdlib.h>   /* getenv */
#include <string.h>   /* memcpy, strcspn */

#include <cuda_runtime_api.h> /* the CUDA runtime */

#include "../pt_index.h" /* pt_index_format_check: the deferred checks' messages */
#include "pt_cuda.h"
#include "pt_cuda_internal.h"

#define PT_CUDA_STAGE_BYTES ((size_t)8 << 20)
#define PT_CUDA_MAX_SITES 1024 /* distinct deferred-check messages per process */

typedef struct {
    int ready;
    cudaStream_t compute, copy;
    cudaEvent_t order;          /* records a point on one stream for the other to wait on */
    void *stage[2];             /* pinned host buffers */
    cudaEvent_t stage_done[2];  /* last copy that used stage[i] */
    pthread_mutex_t xfer_lock;  /* one transfer at a time per device (the staging buffers) */
    pt_cuda_deferred_rec *deferred;     /* host address of the deferred-check record (mapped, pinned) */
    pt_cuda_deferred_rec *deferred_dev; /* the same memory as the device sees it */
    struct cudaDeviceProp prop;
} pt_cuda_dev;

static pt_cuda_dev pt_devs[PT_CUDA_MAX_DEVICES];
static pthread_mutex_t pt_init_lock = PTHREAD_MUTEX_INITIALIZER;
static int pt_probed, pt_ndev;
static char pt_reason[256];
static _Thread_local int pt_cur = -1;
static int pt_sync_launches = -1; /* PT_CUDA_SYNC */

/* ---- errors ---- */
static pthread_mutex_t pt_pending_lock = PTHREAD_MUTEX_INITIALIZER;
static int pt_pending;
static char pt_pending_msg[1024];

/* CUDA's answers to a call that a stream capture refused or that broke the capture */
static int pt_cuda_is_capture_error(cudaError_t e) {
    return e == cudaErrorStreamCaptureUnsupported || e == cudaErrorStreamCaptureInvalidated ||
           e == cudaErrorStreamCaptureMerge || e == cudaErrorStreamCaptureUnmatched ||
           e == cudaErrorStreamCaptureUnjoined || e == cudaErrorStreamCaptureIsolation ||
           e == cudaErrorStreamCaptureImplicit || e == cudaErrorCapturedEvent ||
           e == cudaErrorStreamCaptureWrongThread;
}

static int pt_cuda_is_sticky(cudaError_t e) {
    return e == cudaErrorIllegalAddress || e == cudaErrorLaunchFailure || e == cudaErrorIllegalInstruction ||
           e == cudaErrorMisalignedAddress || e == cudaErrorHardwareStackError || e == cudaErrorAssert ||
           e == cudaErrorInvalidPc || e == cudaErrorInvalidAddressSpace || e == cudaErrorLaunchTimeout;
}

pt_status pt_cuda_fail(cudaError_t err, const char *call, const char *file, int line) {
    char name[64];
    size_t n = strcspn(call, "( ");
    if (n >= sizeof name) n = sizeof name - 1;
    memcpy(name, call, n);
    name[n] = 0;
    if (!pt_cuda_is_sticky(err)) (void)cudaGetLastError(); /* clear it so later calls start clean */
    pt_status st = pt_error(
        PT_ERR_DEVICE, file, line, "%s: %s (%s)%s", name, cudaGetErrorString(err), cudaGetErrorName(err),
        pt_cuda_is_sticky(err) ? "; a kernel faulted earlier and the CUDA context is unusable: restart the process, and "
                                 "rerun with PT_CUDA_SYNC=1 (or under compute-sanitizer) to find the kernel"
        : pt_cuda_is_capture_error(err)
            ? "; this call cannot run inside a CUDA graph capture (it waits for the GPU, allocates outside the "
              "graph's pool or uses another stream): move it out of the captured function"
            : "");
    pt_cuda_capture_note(pt_last_error());
    return st;
}

void pt_cuda_set_pending(const char *fmt, ...) {
    pthread_mutex_lock(&pt_pending_lock);
    if (!pt_pending) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(pt_pending_msg, sizeof pt_pending_msg, fmt, ap);
        va_end(ap);
        pt_pending = 1;
        pt_cuda_capture_note(pt_pending_msg);
    }
    pthread_mutex_unlock(&pt_pending_lock);
}

pt_status pt_cuda_check_pending(void) {
    if (!__atomic_load_n(&pt_pending, __ATOMIC_ACQUIRE)) return PT_OK;
    char msg[1024];
    pthread_mutex_lock(&pt_pending_lock);
    memcpy(msg, pt_pending_msg, sizeof msg);
    pt_pending = 0;
    pthread_mutex_unlock(&pt_pending_lock);
    if (pt_cuda_graph_capturing() >= 0)
        return PT_FAIL(PT_ERR_DEVICE,
                       "an earlier CUDA call failed during a CUDA graph capture: %s (an operation that waits for the "
                       "GPU or allocates outside the graph's pool cannot be captured; see docs/gpu.md, CUDA graphs)",
                       msg);
    return PT_FAIL(PT_ERR_DEVICE, "an earlier CUDA kernel failed: %s", msg);
}

void pt_cuda_launch_check(const char *what) {
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) {
        pt_cuda_set_pending("launching %s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
        return;
    }
    if (pt_sync_launches < 0) {
        const char *v = getenv("PT_CUDA_SYNC");
        pt_sync_launches = v && *v && strcmp(v, "0") != 0;
    }
    if (pt_sync_launches && pt_cuda_graph_capturing() < 0) { /* a capturing stream cannot be synchronised */
        e = cudaStreamSynchronize(pt_cuda_compute_stream());
        if (e != cudaSuccess)
            pt_cuda_set_pending("running %s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
    }
}

/* ---- devices ---- */
static void pt_cuda_probe(void) {
    pthread_mutex_lock(&pt_init_lock);
    if (!pt_probed) {
        int n = 0;
        cudaError_t e = cudaGetDeviceCount(&n);
        if (e != cudaSuccess) {
            snprintf(pt_reason, sizeof pt_reason, "cudaGetDeviceCount: %s (%s)", cudaGetErrorString(e),
                     cudaGetErrorName(e));
            (void)cudaGetLastError();
            n = 0;
        } else if (n == 0) {
            snprintf(pt_reason, sizeof pt_reason, "cudaGetDeviceCount found no CUDA device");
        }
        pt_ndev = n > PT_CUDA_MAX_DEVICES ? PT_CUDA_MAX_DEVICES : n;
        __atomic_store_n(&pt_probed, 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&pt_init_lock);
}

int pt_cuda_device_count(void) {
    if (!__atomic_load_n(&pt_probed, __ATOMIC_ACQUIRE)) pt_cuda_probe();
    return pt_ndev;
}

const char *pt_cuda_unavailable_reason(void) {
    pt_cuda_device_count();
    return pt_reason;
}

static pt_status pt_cuda_init_device(int d) {
    pt_cuda_dev *D = &pt_devs[d];
    PT_CUDA_CHECK(cudaSetDevice(d));
    PT_CUDA_CHECK(cudaGetDeviceProperties(&D->prop, d));
    PT_CUDA_CHECK(cudaStreamCreateWithFlags(&D->compute, cudaStreamNonBlocking));
    PT_CUDA_CHECK(cudaStreamCreateWithFlags(&D->copy, cudaStreamNonBlocking));
    PT_CUDA_CHECK(cudaEventCreateWithFlags(&D->order, cudaEventDisableTiming));
    for (int i = 0; i < 2; i++) {
        PT_CUDA_CHECK(cudaHostAlloc(&D->stage[i], PT_CUDA_STAGE_BYTES, cudaHostAllocPortable));
        PT_CUDA_CHECK(cudaEventCreateWithFlags(&D->stage_done[i], cudaEventDisableTiming));
    }
    PT_CUDA_CHECK(cudaHostAlloc((void **)&D->deferred, sizeof *D->deferred, cudaHostAllocMapped | cudaHostAllocPortable));
    memset(D->deferred, 0, sizeof *D->deferred);
    PT_CUDA_CHECK(cudaHostGetDevicePointer((void **)&D->deferred_dev, D->deferred, 0));
    pthread_mutex_init(&D->xfer_lock, NULL);
    return PT_OK;
}

pt_status pt_cuda_use(int device) {
    if (device == pt_cur && device >= 0) return PT_OK;
    int capturing = pt_cuda_graph_capturing();
    if (capturing >= 0 && device != capturing) {
        char what[96];
        snprintf(what, sizeof what, "work on cuda:%d while cuda:%d is being captured", device, capturing);
        return pt_cuda_capture_forbid(what, "a CUDA graph records one device's compute stream; keep the captured "
                                            "function on that device");
    }
    int n = pt_cuda_device_count();
    if (device < 0 || device >= n) {
        if (n == 0) return PT_FAIL(PT_ERR_DEVICE, "cuda:%d: no CUDA device is usable (%s)", device, pt_reason);
        return PT_FAIL(PT_ERR_DEVICE, "cuda:%d: no such device (%d CUDA device%s present: cuda:0..cuda:%d)", device,
                       n, n == 1 ? "" : "s", n - 1);
    }
    pt_cuda_dev *D = &pt_devs[device];
    if (!__atomic_load_n(&D->ready, __ATOMIC_ACQUIRE)) {
        pthread_mutex_lock(&pt_init_lock);
        pt_status st = PT_OK;
        if (!D->ready) {
            st = pt_cuda_init_device(device);
            if (st == PT_OK) __atomic_store_n(&D->ready, 1, __ATOMIC_RELEASE);
        }
        pthread_mutex_unlock(&pt_init_lock);
        if (st) return pt_error_context(st, "initialising cuda:%d", device);
    }
    PT_CUDA_CHECK(cudaSetDevice(device));
    pt_cur = device;
    return PT_OK;
}

/* The current device of this thread (initialised); 0 before any pt_cuda_use. */
static pt_cuda_dev *pt_cur_dev(void) { return &pt_devs[pt_cur < 0 ? 0 : pt_cur]; }
cudaStream_t pt_cuda_compute_stream(void) { return pt_cur_dev()->compute; }
cudaStream_t pt_cuda_copy_stream(void) { return pt_cur_dev()->copy; }
int pt_cuda_sm_count(void) {
    int n = pt_cur_dev()->prop.multiProcessorCount;
    return n > 0 ? n : 1;
}

pt_status pt_cuda_get_device_info(int device, pt_cuda_device_info *out) {
    PT_TRY(pt_cuda_use(device));
    const struct cudaDeviceProp *p = &pt_devs[device].prop;
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", p->name);
    out->major = p->major;
    out->minor = p->minor;
    out->sm_count = p->multiProcessorCount;
    out->total_bytes = p->totalGlobalMem;
    out->l2_bytes = (size_t)p->l2CacheSize;
    out->smem_per_block_optin = p->sharedMemPerBlockOptin;
    return PT_OK;
}

/* ---- deferred checks ---- */
static pthread_mutex_t pt_site_lock = PTHREAD_MUTEX_INITIALIZER;
static char *pt_sites[PT_CUDA_MAX_SITES];
static int64_t pt_nsites;

int64_t pt_cuda_deferred_site(const char *tmpl) {
    int64_t id = 0;
    pthread_mutex_lock(&pt_site_lock);
    for (int64_t i = 0; i < pt_nsites && !id; i++)
        if (strcmp(pt_sites[i], tmpl) == 0) id = i + 1;
    if (!id && pt_nsites < PT_CUDA_MAX_SITES) {
        size_t n = strlen(tmpl) + 1;
        char *c = malloc(n);
        if (c) {
            memcpy(c, tmpl, n);
            pt_sites[pt_nsites++] = c;
            id = pt_nsites;
        }
    }
    pthread_mutex_unlock(&pt_site_lock);
    return id;
}

pt_cuda_deferred_rec *pt_cuda_deferred_record(void) { return pt_cur_dev()->deferred_dev; }

pt_status pt_cuda_deferred_take(int device) {
    if (device < 0 || device >= PT_CUDA_MAX_DEVICES || !__atomic_load_n(&pt_devs[device].ready, __ATOMIC_ACQUIRE))
        return PT_OK;
    volatile pt_cuda_deferred_rec *r = pt_devs[device].deferred;
    int64_t site = r->site;
    if (site == 0) return PT_OK;
    __atomic_thread_fence(__ATOMIC_ACQUIRE); /* the kernel wrote pos and value before the site */
    int64_t pos = r->pos, value = r->value;
    r->site = 0;
    char msg[1024];
    pthread_mutex_lock(&pt_site_lock);
    if (site >= 1 && site <= pt_nsites)
        pt_index_format_check(msg, sizeof msg, pt_sites[site - 1], value, pos);
    else
        snprintf(msg, sizeof msg, "a device-side check failed (value %lld at position %lld; unknown check %lld)",
                 (long long)value, (long long)pos, (long long)site);
    pthread_mutex_unlock(&pt_site_lock);
    return PT_FAIL(PT_ERR_INDEX, "%s (a deferred check inside a CUDA graph: reported at the next synchronisation)",
                   msg);
}

pt_status pt_cuda_synchronize(int device) {
    PT_TRY(pt_cuda_capture_forbid("cuda.synchronize() waits for the GPU and",
                                  "move it out of the captured function (after graph:replay())"));
    PT_TRY(pt_cuda_use(device));
    cudaError_t e = cudaDeviceSynchronize();
    PT_TRY(pt_cuda_check_pending());
    PT_CUDA_CHECK(e);
    return pt_cuda_deferred_take(device);
}

/* ---- transfers ---- */
/* Makes stream `to` wait for the work queued so far on stream `from`. */
static pt_status pt_cuda_order(pt_cuda_dev *D, cudaStream_t from, cudaStream_t to) {
    PT_CUDA_CHECK(cudaEventRecord(D->order, from));
    PT_CUDA_CHECK(cudaStreamWaitEvent(to, D->order, 0));
    return PT_OK;
}

static pt_status pt_h2d_locked(pt_cuda_dev *D, char *dst, const char *src, size_t n) {
    PT_TRY(pt_cuda_order(D, D->compute, D->copy));
    for (size_t off = 0, i = 0; off < n; off += PT_CUDA_STAGE_BYTES, i++) {
        size_t len = n - off < PT_CUDA_STAGE_BYTES ? n - off : PT_CUDA_STAGE_BYTES;
        int b = (int)(i & 1);
        PT_CUDA_CHECK(cudaEventSynchronize(D->stage_done[b])); /* its previous copy has left */
        memcpy(D->stage[b], src + off, len);
        PT_CUDA_CHECK(cudaMemcpyAsync(dst + off, D->stage[b], len, cudaMemcpyHostToDevice, D->copy));
        PT_CUDA_CHECK(cudaEventRecord(D->stage_done[b], D->copy));
    }
    PT_TRY(pt_cuda_order(D, D->copy, D->compute));
    return PT_OK;
}

static pt_status pt_d2h_locked(pt_cuda_dev *D, char *dst, const char *src, size_t n) {
    PT_TRY(pt_cuda_order(D, D->compute, D->copy));
    size_t prev_off = 0, prev_len = 0;
    int prev_b = 0;
    for (size_t off = 0, i = 0; off < n; off += PT_CUDA_STAGE_BYTES, i++) {
        size_t len = n - off < PT_CUDA_STAGE_BYTES ? n - off : PT_CUDA_STAGE_BYTES;
        int b = (int)(i & 1);
        PT_CUDA_CHECK(cudaMemcpyAsync(D->stage[b], src + off, len, cudaMemcpyDeviceToHost, D->copy));
        PT_CUDA_CHECK(cudaEventRecord(D->stage_done[b], D->copy));
        if (prev_len) { /* drain the chunk before while this one is in flight */
            PT_CUDA_CHECK(cudaEventSynchronize(D->stage_done[prev_b]));
            memcpy(dst + prev_off, D->stage[prev_b], prev_len);
        }
        prev_off = off;
        prev_len = len;
        prev_b = b;
    }
    if (prev_len) {
        PT_CUDA_CHECK(cudaEventSynchronize(D->stage_done[prev_b]));
        memcpy(dst + prev_off, D->stage[prev_b], prev_len);
    }
    return PT_OK;
}

static const char pt_h2d_fix[] =
    "a replay would not read the host data again: fill the tensors the graph reads (its static inputs) "
    "with :copy_() before graph:replay(), outside the captured function";

pt_status pt_cuda_memcpy_h2d(void *dst, const void *src, size_t n, int device) {
    if (pt_cuda_graph_capturing() >= 0) {
        char what[160];
        snprintf(what, sizeof what,
                 "a host->device copy (%zu bytes to cuda:%d: a CPU tensor or Lua values moved to the GPU, or a "
                 "fill through the host)",
                 n, device);
        return pt_cuda_capture_forbid(what, pt_h2d_fix);
    }
    PT_TRY(pt_cuda_use(device));
    PT_TRY(pt_cuda_check_pending());
    if (n == 0) return PT_OK;
    pt_cuda_dev *D = &pt_devs[device];
    pthread_mutex_lock(&D->xfer_lock);
    pt_status st = pt_h2d_locked(D, dst, src, n);
    pthread_mutex_unlock(&D->xfer_lock);
    if (st) return pt_error_context(st, "copying %zu bytes to cuda:%d", n, device);
    return PT_OK;
}

pt_status pt_cuda_memcpy_d2h(void *dst, const void *src, size_t n, int device) {
    if (pt_cuda_graph_capturing() >= 0) {
        char what[160];
        snprintf(what, sizeof what,
                 "a device->host copy (%zu bytes from cuda:%d: tensor:item(), :totable(), :to(\"cpu\"), printing) "
                 "reads the GPU and",
                 n, device);
        return pt_cuda_capture_forbid(what, "move it out of the captured function (read the graph's outputs after "
                                            "graph:replay())");
    }
    PT_TRY(pt_cuda_use(device));
    PT_TRY(pt_cuda_check_pending());
    if (n == 0) return PT_OK;
    pt_cuda_dev *D = &pt_devs[device];
    pthread_mutex_lock(&D->xfer_lock);
    pt_status st = pt_d2h_locked(D, dst, src, n);
    pthread_mutex_unlock(&D->xfer_lock);
    if (st == PT_OK) st = pt_cuda_check_pending(); /* a launch failed while we waited */
    if (st) return pt_error_context(st, "copying %zu bytes from cuda:%d", n, device);
    return pt_cuda_deferred_take(device); /* a check inside a replayed graph failed */
}

pt_status pt_cuda_memcpy_d2d(void *dst, const void *src, size_t n, int device) {
    PT_TRY(pt_cuda_use(device));
    PT_TRY(pt_cuda_check_pending());
    if (n == 0) return PT_OK;
    PT_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, pt_cuda_compute_stream()));
    return PT_OK;
}

pt_status pt_cuda_memset0(void *dst, size_t n, int device) {
    PT_TRY(pt_cuda_use(device));
    PT_TRY(pt_cuda_check_pending());
    if (n == 0) return PT_OK;
    PT_CUDA_CHECK(cudaMemsetAsync(dst, 0, n, pt_cuda_compute_stream()));
    return PT_OK;
}

/* ---- events ---- */
struct pt_cuda_event {
    cudaEvent_t ev;
    int device;
    int recorded;
};

static const char pt_event_fix[] = "time graph:replay() from outside the captured function";

pt_status pt_cuda_event_new(pt_cuda_event **out) {
    *out = NULL;
    PT_TRY(pt_cuda_capture_forbid("a timing event (cuda.event(), cuda.time())", pt_event_fix));
    int d = pt_cur < 0 ? 0 : pt_cur;
    PT_TRY(pt_cuda_use(d));
    pt_cuda_event *e = calloc(1, sizeof *e);
    if (!e) return PT_FAIL(PT_ERR_OOM, "out of host memory allocating a CUDA event");
    cudaError_t err = cudaEventCreate(&e->ev);
    if (err != cudaSuccess) {
        free(e);
        PT_CUDA_CHECK(err);
    }
    e->device = d;
    *out = e;
    return PT_OK;
}

pt_status pt_cuda_event_record(pt_cuda_event *ev) {
    PT_TRY(pt_cuda_capture_forbid("event:record()", pt_event_fix));
    PT_TRY(pt_cuda_use(ev->device));
    PT_CUDA_CHECK(cudaEventRecord(ev->ev, pt_devs[ev->device].compute));
    ev->recorded = 1;
    return PT_OK;
}

pt_status pt_cuda_event_synchronize(pt_cuda_event *ev) {
    if (!ev->recorded) return PT_FAIL(PT_ERR_VALUE, "CUDA event: synchronize before record()");
    PT_TRY(pt_cuda_capture_forbid("waiting for a CUDA event (event:synchronize(), elapsed_ms())", pt_event_fix));
    PT_TRY(pt_cuda_use(ev->device));
    PT_CUDA_CHECK(cudaEventSynchronize(ev->ev));
    PT_TRY(pt_cuda_check_pending());
    return pt_cuda_deferred_take(ev->device);
}

pt_status pt_cuda_event_elapsed_ms(pt_cuda_event *start, pt_cuda_event *end, double *ms) {
    if (!start->recorded || !end->recorded)
        return PT_FAIL(PT_ERR_VALUE, "CUDA event elapsed_ms: both events must be recorded first (the %s one is not)",
                       start->recorded ? "end" : "start");
    if (start->device != end->device)
        return PT_FAIL(PT_ERR_VALUE, "CUDA event elapsed_ms: events on different devices (cuda:%d and cuda:%d)",
                       start->device, end->device);
    PT_TRY(pt_cuda_event_synchronize(end));
    float f = 0;
    PT_CUDA_CHECK(cudaEventElapsedTime(&f, start->ev, end->ev));
    *ms = f;
    return PT_OK;
}

void pt_cuda_event_free(pt_cuda_event *ev) {
    if (!ev) return;
    (void)cudaEventDestroy(ev->ev);
    free(ev);
}

/* ---- installation into the tensor layer ---- */
extern pt_status (*pt_cuda_copy_hook)(pt_tensor *dst, const pt_tensor *src); /* tensor.c */

static const pt_device_allocator pt_cuda_allocator = {
    .alloc = pt_cuda_alloc,
    .free = pt_cuda_free,
    .memcpy_h2d = pt_cuda_memcpy_h2d,
    .memcpy_d2h = pt_cuda_memcpy_d2h,
    .memcpy_d2d = pt_cuda_memcpy_d2d,
    .memset0 = pt_cuda_memset0,
};

/* Runs at load time and touches no CUDA API: devices are probed on first use. */
__attribute__((constructor)) static void pt_cuda_install(void) {
    pt_set_device_allocator(PT_DEV_CUDA, &pt_cuda_allocator);
    pt_cuda_copy_hook = pt_cuda_copy;
}
