/* cuda/alloc.c — the caching device allocator (after cutorch's THCCachingAllocator, much smaller).
 *
 * cudaMalloc/cudaFree synchronise the device and cost tens of microseconds, so freed blocks are kept
 * and handed out again:
 *   - Sizes are rounded to a size class: at least 512 B; up to 32 MiB, four classes per power of
 *     two (at most 25% slack: 1280, 1536, 1792, 2048, 2560, ...); above 32 MiB, a multiple of 2 MiB.
 *     Class sizes are reused exactly; a large request takes the smallest cached large block that is
 *     at most 1/8 bigger than it.
 *   - Free lists are kept per (device, stream). A block is reused only by an allocation on the stream
 *     it was used on, so reuse is ordered by the stream and never waits (all tensors live on the
 *     compute stream; transfers order the copy stream against it, runtime.c).
 *   - Out of memory: every cached block of the device is returned to the driver and the cudaMalloc is
 *     tried once more; if it fails again the error says what was asked, what live tensors hold and
 *     what the device reports free.
 *   - Statistics per device (pt_cuda_mem_stats): allocated, requested, reserved, cached, peaks, and
 *     counts of allocations, frees, cache hits, cudaMalloc/cudaFree calls and out-of-memory flushes.
 *   - CUDA graph pools (graph.c): while a thread captures a graph on a device, that thread's
 *     allocations there come from the graph's private pool (its free blocks, else a block taken over
 *     from the device cache, else a cudaMalloc under the relaxed capture mode), and every block freed
 *     on that device during the capture (whoever allocated it) is adopted by the pool: the graph
 *     holds its address, so no one else may get it while the graph lives. A pool block freed later
 *     goes back to its pool, never to the device cache. Releasing the pool (the graph's free, or an
 *     aborted capture) moves its free blocks to the device cache and turns its live blocks into
 *     ordinary ones. Pool blocks count in the device statistics like any block (a free pool block is
 *     "cached", but empty_cache does not return it to the driver) and in graph_pool_* fields.
 * Thread-safe (one mutex). Tested by tests/c/test_cuda_alloc.c (skips without a device) and
 * tests/gpu/test_graph.lua (pools).
 */
#include <pthread.h> /* pthread_mutex_t */
#include <stdint.h>
#include <stdio.h>   /* snprintf */
#include <stdlib.h>  /* calloc, free */

#include <cuda_runtime_api.h> /* cudaMalloc, cudaFree, cudaMemGetInfo */

#include "pt_cuda.h"
#include "pt_cuda_internal.h"

#define PT_MIN_BLOCK ((size_t)512)
#define PT_SMALL_MAX ((size_t)32 << 20)
#define PT_LARGE_ROUND ((size_t)2 << 20)
#define PT_NCLASSES 128 /* classes 0..(1 + (25-9)*4) for <= 32 MiB */
#define PT_NSTREAMS 2   /* 0 = compute, 1 = copy */
#define PT_MAX_REQUEST ((size_t)1 << 56)

typedef struct pt_block {
    void *ptr;
    size_t size;      /* rounded size obtained from cudaMalloc */
    size_t requested; /* what the current user asked for */
    int device, stream, cls; /* cls = -1 for large blocks */
    struct pt_cuda_pool *pool; /* the graph pool owning it, NULL for the device cache */
    struct pt_block *next;   /* free list */
    struct pt_block *hnext;  /* hash chain of active blocks */
} pt_block;

typedef struct {
    pt_block *small[PT_NCLASSES];
    pt_block *large;
} pt_freelist;

typedef struct {
    pt_freelist fl[PT_NSTREAMS];
    pt_cuda_mem_stats st;
} pt_dev_cache;

/* A CUDA graph's private pool (graph.c owns one per graph). */
struct pt_cuda_pool {
    int device;
    pt_freelist fl;
    pt_cuda_pool_stats st;
};

static pthread_mutex_t pt_alock = PTHREAD_MUTEX_INITIALIZER;
static pt_dev_cache pt_cache[PT_CUDA_MAX_DEVICES];
static pt_block **pt_hash;
static size_t pt_hash_n, pt_hash_count;
/* the pool of the capture in progress on each device (adopts every block freed there) */
static pt_cuda_pool *pt_capture_pool[PT_CUDA_MAX_DEVICES];
/* the pool this thread's allocations come from (set only on the capturing thread) */
static _Thread_local pt_cuda_pool *pt_tl_pool;

/* ---- sizes ---- */
static int pt_log2_floor(size_t x) {
    int p = 0;
    while (x >>= 1) p++;
    return p;
}

/* Size class of a request <= PT_SMALL_MAX, and the class's size. */
static int pt_class_of(size_t n, size_t *size) {
    if (n <= PT_MIN_BLOCK) {
        *size = PT_MIN_BLOCK;
        return 0;
    }
    int p = pt_log2_floor(n - 1); /* 2^p < n <= 2^(p+1), p >= 9 */
    size_t step = (size_t)1 << (p - 2);
    size_t k = (n + step - 1) / step; /* 5..8 */
    *size = k * step;
    return 1 + (p - 9) * 4 + (int)(k - 5);
}

size_t pt_cuda_alloc_round(size_t n) {
    if (n == 0) return 0;
    if (n > PT_SMALL_MAX) return (n + PT_LARGE_ROUND - 1) / PT_LARGE_ROUND * PT_LARGE_ROUND;
    size_t s;
    pt_class_of(n, &s);
    return s;
}

const char *pt_cuda_fmt_bytes(int64_t n, char *buf, size_t len) {
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = (double)n;
    int u = 0;
    while ((v >= 1024 || v <= -1024) && u < 6) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%lld B", (long long)n);
    else
        snprintf(buf, len, "%.2f %s", v, units[u]);
    return buf;
}

/* ---- active-block hash (pointer -> block) ---- */
static size_t pt_hslot(const void *p, size_t n) {
    uint64_t x = (uint64_t)(uintptr_t)p >> 9;
    x *= 0x9E3779B97F4A7C15ull;
    return (size_t)(x >> 20) & (n - 1);
}

static int pt_hash_grow(void) {
    size_t nn = pt_hash_n ? pt_hash_n * 2 : 1024;
    pt_block **nb = calloc(nn, sizeof *nb);
    if (!nb) return -1;
    for (size_t i = 0; i < pt_hash_n; i++) {
        pt_block *b = pt_hash[i];
        while (b) {
            pt_block *nx = b->hnext;
            size_t h = pt_hslot(b->ptr, nn);
            b->hnext = nb[h];
            nb[h] = b;
            b = nx;
        }
    }
    free(pt_hash);
    pt_hash = nb;
    pt_hash_n = nn;
    return 0;
}

static int pt_hash_put(pt_block *b) {
    if (pt_hash_count + 1 > pt_hash_n && pt_hash_grow()) return -1;
    size_t h = pt_hslot(b->ptr, pt_hash_n);
    b->hnext = pt_hash[h];
    pt_hash[h] = b;
    pt_hash_count++;
    return 0;
}

static pt_block *pt_hash_take(const void *p) {
    if (!pt_hash_n) return NULL;
    pt_block **pp = &pt_hash[pt_hslot(p, pt_hash_n)];
    while (*pp) {
        if ((*pp)->ptr == p) {
            pt_block *b = *pp;
            *pp = b->hnext;
            b->hnext = NULL;
            pt_hash_count--;
            return b;
        }
        pp = &(*pp)->hnext;
    }
    return NULL;
}

/* ---- free lists ---- */
static pt_block *pt_take_cached(pt_freelist *fl, size_t n, size_t *rounded) {
    if (n <= PT_SMALL_MAX) {
        int k = pt_class_of(n, rounded);
        pt_block *b = fl->small[k];
        if (b) fl->small[k] = b->next;
        return b;
    }
    *rounded = pt_cuda_alloc_round(n);
    pt_block **best = NULL;
    for (pt_block **pp = &fl->large; *pp; pp = &(*pp)->next) {
        size_t s = (*pp)->size;
        if (s >= *rounded && s - *rounded <= *rounded / 8 && (!best || s < (*best)->size)) best = pp;
    }
    if (!best) return NULL;
    pt_block *b = *best;
    *best = b->next;
    return b;
}

static void pt_put_cached(pt_freelist *fl, pt_block *b) {
    pt_block **head = b->cls >= 0 ? &fl->small[b->cls] : &fl->large;
    b->next = *head;
    *head = b;
}

/* The free list a freed block goes back to. */
static pt_freelist *pt_home(pt_block *b) { return b->pool ? &b->pool->fl : &pt_cache[b->device].fl[b->stream]; }

/* Returns every cached block of device d to the driver (lock held). */
static pt_status pt_release_cached(int d) {
    pt_dev_cache *c = &pt_cache[d];
    pt_status st = PT_OK;
    for (int s = 0; s < PT_NSTREAMS; s++) {
        for (int k = 0; k <= PT_NCLASSES; k++) {
            pt_block **head = k < PT_NCLASSES ? &c->fl[s].small[k] : &c->fl[s].large;
            while (*head) {
                pt_block *b = *head;
                *head = b->next;
                cudaError_t e = cudaFree(b->ptr);
                if (e != cudaSuccess && st == PT_OK) st = pt_cuda_fail(e, "cudaFree", __FILE__, __LINE__);
                c->st.reserved_bytes -= (int64_t)b->size;
                c->st.cached_bytes -= (int64_t)b->size;
                c->st.n_cached_blocks--;
                c->st.n_cuda_frees++;
                free(b);
            }
        }
    }
    return st;
}

static void pt_peaks(pt_cuda_mem_stats *s) {
    if (s->allocated_bytes > s->peak_allocated_bytes) s->peak_allocated_bytes = s->allocated_bytes;
    if (s->reserved_bytes > s->peak_reserved_bytes) s->peak_reserved_bytes = s->reserved_bytes;
}

/* cudaMalloc; inside a capture under the relaxed mode for this one call: the thread-local capture
 * mode forbids it otherwise, and the block is safe to capture (it is not stream work, and the pool
 * never frees it while the graph lives). */
static cudaError_t pt_malloc_maybe_capturing(void **p, size_t n, int capturing) {
    if (!capturing) return cudaMalloc(p, n);
    enum cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
    cudaError_t e = cudaThreadExchangeStreamCaptureMode(&mode);
    if (e != cudaSuccess) return e;
    e = cudaMalloc(p, n);
    (void)cudaThreadExchangeStreamCaptureMode(&mode); /* back to the capture's mode */
    return e;
}

static pt_status pt_alloc_locked(void **ptr, size_t n, int d, int stream) {
    pt_dev_cache *c = &pt_cache[d];
    pt_cuda_pool *pool = pt_tl_pool && pt_tl_pool->device == d ? pt_tl_pool : NULL;
    size_t rounded = 0;
    pt_block *b = NULL;
    if (pool) {
        b = pt_take_cached(&pool->fl, n, &rounded);
        if (b) {
            pool->st.n_reuses++;
        } else if ((b = pt_take_cached(&c->fl[stream], n, &rounded)) != NULL) {
            /* a free block of the device cache: its last use is queued before the capture */
            b->pool = pool;
            pool->st.reserved_bytes += (int64_t)b->size;
            pool->st.n_blocks++;
            pool->st.n_from_cache++;
            c->st.graph_pool_reserved_bytes += (int64_t)b->size;
        }
    } else {
        b = pt_take_cached(&c->fl[stream], n, &rounded);
    }
    if (b) {
        c->st.n_cache_hits++;
        c->st.cached_bytes -= (int64_t)b->size;
        c->st.n_cached_blocks--;
    } else {
        void *p = NULL;
        cudaError_t e = pt_malloc_maybe_capturing(&p, rounded, pool != NULL);
        if (e == cudaErrorMemoryAllocation && pool) {
            /* no flush: cudaFree cannot run inside a capture */
            (void)cudaGetLastError();
            char a[32], h[32], ph[32], cb[32];
            return PT_FAIL(PT_ERR_OOM,
                           "cudaMalloc on cuda:%d during a CUDA graph capture: out of memory (asked %s = %zu bytes, "
                           "rounded to %zu; the graph's pool holds %s, live tensors %s, the device cache %s, which "
                           "cannot be flushed inside a capture): call cuda.empty_cache() before capturing or make "
                           "the captured step smaller",
                           d, pt_cuda_fmt_bytes((int64_t)n, a, sizeof a), n, rounded,
                           pt_cuda_fmt_bytes(pool->st.reserved_bytes, ph, sizeof ph),
                           pt_cuda_fmt_bytes(c->st.allocated_bytes, h, sizeof h),
                           pt_cuda_fmt_bytes(c->st.cached_bytes, cb, sizeof cb));
        }
        if (e == cudaErrorMemoryAllocation) {
            (void)cudaGetLastError();
            int64_t flushed = c->st.cached_bytes - c->st.graph_pool_reserved_bytes + c->st.graph_pool_allocated_bytes;
            c->st.n_oom_flushes++;
            PT_TRY(pt_release_cached(d));
            e = cudaMalloc(&p, rounded);
            if (e == cudaErrorMemoryAllocation) {
                (void)cudaGetLastError();
                size_t fr = 0, tot = 0;
                (void)cudaMemGetInfo(&fr, &tot);
                (void)cudaGetLastError();
                char a[32], h[32], f[32], fb[32], tb[32];
                return PT_FAIL(PT_ERR_OOM,
                               "cudaMalloc on cuda:%d: out of memory (asked %s = %zu bytes, rounded to %zu; held: "
                               "%s by live tensors, %s of cache released before retrying; device: %s free of %s)",
                               d, pt_cuda_fmt_bytes((int64_t)n, a, sizeof a), n, rounded,
                               pt_cuda_fmt_bytes(c->st.allocated_bytes, h, sizeof h),
                               pt_cuda_fmt_bytes(flushed, f, sizeof f), pt_cuda_fmt_bytes((int64_t)fr, fb, sizeof fb),
                               pt_cuda_fmt_bytes((int64_t)tot, tb, sizeof tb));
            }
        }
        if (e != cudaSuccess) return pt_cuda_fail(e, "cudaMalloc", __FILE__, __LINE__);
        b = calloc(1, sizeof *b);
        if (!b) {
            (void)cudaFree(p);
            return PT_FAIL(PT_ERR_OOM, "out of host memory allocating a device block header");
        }
        b->ptr = p;
        b->size = rounded;
        b->device = d;
        b->stream = stream;
        b->cls = -1;
        if (n <= PT_SMALL_MAX) {
            size_t s;
            b->cls = pt_class_of(n, &s);
        }
        c->st.reserved_bytes += (int64_t)rounded;
        c->st.n_cuda_mallocs++;
        if (pool) {
            b->pool = pool;
            pool->st.reserved_bytes += (int64_t)rounded;
            pool->st.n_blocks++;
            pool->st.n_cuda_mallocs++;
            c->st.graph_pool_reserved_bytes += (int64_t)rounded;
        }
    }
    if (pt_hash_put(b)) {
        pt_put_cached(pt_home(b), b);
        c->st.cached_bytes += (int64_t)b->size;
        c->st.n_cached_blocks++;
        return PT_FAIL(PT_ERR_OOM, "out of host memory growing the device block table");
    }
    b->requested = n;
    c->st.allocated_bytes += (int64_t)b->size;
    c->st.requested_bytes += (int64_t)n;
    c->st.n_allocs++;
    c->st.n_active_blocks++;
    pt_peaks(&c->st);
    if (b->pool) {
        pt_cuda_pool_stats *ps = &b->pool->st;
        ps->allocated_bytes += (int64_t)b->size;
        ps->n_allocs++;
        if (ps->allocated_bytes > ps->peak_allocated_bytes) ps->peak_allocated_bytes = ps->allocated_bytes;
        c->st.graph_pool_allocated_bytes += (int64_t)b->size;
    }
    *ptr = b->ptr;
    return PT_OK;
}

static pt_status pt_cuda_alloc_stream(void **ptr, size_t n, int device, int stream) {
    *ptr = NULL;
    PT_TRY(pt_cuda_use(device));
    PT_TRY(pt_cuda_check_pending());
    if (n == 0) return PT_OK; /* empty tensors have no device memory */
    if (n > PT_MAX_REQUEST) {
        char a[32];
        return PT_FAIL(PT_ERR_OOM, "cudaMalloc on cuda:%d: out of memory (asked %s = %zu bytes, more than any device has)",
                       device, pt_cuda_fmt_bytes(n > (size_t)INT64_MAX ? INT64_MAX : (int64_t)n, a, sizeof a), n);
    }
    pthread_mutex_lock(&pt_alock);
    pt_status st = pt_alloc_locked(ptr, n, device, stream);
    pthread_mutex_unlock(&pt_alock);
    return st;
}

pt_status pt_cuda_alloc(void **ptr, size_t nbytes, int device) { return pt_cuda_alloc_stream(ptr, nbytes, device, 0); }

void pt_cuda_free(void *ptr, size_t nbytes, int device) {
    if (!ptr) return;
    pthread_mutex_lock(&pt_alock);
    pt_block *b = pt_hash_take(ptr);
    if (!b) {
        pthread_mutex_unlock(&pt_alock);
        pt_cuda_set_pending("pt_cuda_free: %p (%zu bytes on cuda:%d) was not handed out by the caching allocator "
                            "or was freed twice",
                            ptr, nbytes, device);
        return;
    }
    pt_dev_cache *c = &pt_cache[b->device];
    pt_cuda_pool *cap = pt_capture_pool[b->device];
    if (!b->pool && cap) {
        /* freed while its device is being captured: the graph may hold this address (work captured
         * before the free reads or writes it), so it stays out of everyone else's reach */
        b->pool = cap;
        cap->st.reserved_bytes += (int64_t)b->size;
        cap->st.allocated_bytes += (int64_t)b->size; /* undone just below, as for any pool block */
        cap->st.n_blocks++;
        cap->st.n_adopted++;
        c->st.graph_pool_reserved_bytes += (int64_t)b->size;
        c->st.graph_pool_allocated_bytes += (int64_t)b->size;
    }
    if (b->pool) {
        b->pool->st.allocated_bytes -= (int64_t)b->size;
        b->pool->st.n_frees++;
        c->st.graph_pool_allocated_bytes -= (int64_t)b->size;
    }
    c->st.allocated_bytes -= (int64_t)b->size;
    c->st.requested_bytes -= (int64_t)b->requested;
    c->st.cached_bytes += (int64_t)b->size;
    c->st.n_frees++;
    c->st.n_active_blocks--;
    c->st.n_cached_blocks++;
    pt_put_cached(pt_home(b), b);
    pthread_mutex_unlock(&pt_alock);
}

/* ---- graph pools ---- */
pt_status pt_cuda_pool_new(int device, pt_cuda_pool **out) {
    *out = NULL;
    if (device < 0 || device >= PT_CUDA_MAX_DEVICES)
        return PT_FAIL(PT_ERR_DEVICE, "cuda:%d: no such device for a graph pool", device);
    pt_cuda_pool *p = calloc(1, sizeof *p);
    if (!p) return PT_FAIL(PT_ERR_OOM, "out of host memory allocating a CUDA graph pool");
    p->device = device;
    pthread_mutex_lock(&pt_alock);
    pt_cache[device].st.n_graph_pools++;
    pthread_mutex_unlock(&pt_alock);
    *out = p;
    return PT_OK;
}

pt_status pt_cuda_pool_capture(pt_cuda_pool *p, int device) {
    pthread_mutex_lock(&pt_alock);
    if (p) {
        if (pt_capture_pool[p->device] && pt_capture_pool[p->device] != p) {
            pthread_mutex_unlock(&pt_alock);
            return PT_FAIL(PT_ERR_VALUE, "cuda:%d is already being captured into a CUDA graph by another thread",
                           p->device);
        }
        pt_capture_pool[p->device] = p;
    } else if (device >= 0 && device < PT_CUDA_MAX_DEVICES) {
        pt_capture_pool[device] = NULL;
    }
    pt_tl_pool = p;
    pthread_mutex_unlock(&pt_alock);
    return PT_OK;
}

void pt_cuda_pool_release(pt_cuda_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&pt_alock);
    int d = p->device;
    pt_dev_cache *c = &pt_cache[d];
    if (pt_capture_pool[d] == p) pt_capture_pool[d] = NULL;
    if (pt_tl_pool == p) pt_tl_pool = NULL;
    /* free blocks: to the device cache (stream-ordered after the graph's last replay) */
    for (int k = 0; k <= PT_NCLASSES; k++) {
        pt_block **head = k < PT_NCLASSES ? &p->fl.small[k] : &p->fl.large;
        while (*head) {
            pt_block *b = *head;
            *head = b->next;
            b->pool = NULL;
            pt_put_cached(pt_home(b), b);
        }
    }
    /* live blocks: ordinary from now on (the tensors holding them go on using them) */
    for (size_t i = 0; i < pt_hash_n; i++)
        for (pt_block *b = pt_hash[i]; b; b = b->hnext)
            if (b->pool == p) b->pool = NULL;
    c->st.graph_pool_reserved_bytes -= p->st.reserved_bytes;
    c->st.graph_pool_allocated_bytes -= p->st.allocated_bytes;
    c->st.n_graph_pools--;
    pthread_mutex_unlock(&pt_alock);
    free(p);
}

void pt_cuda_pool_get_stats(const pt_cuda_pool *p, pt_cuda_pool_stats *out) {
    pthread_mutex_lock(&pt_alock);
    *out = p->st;
    pthread_mutex_unlock(&pt_alock);
}

static pt_status pt_check_dev(int device) {
    int n = pt_cuda_device_count();
    if (device < 0 || device >= n) {
        if (n == 0) return PT_FAIL(PT_ERR_DEVICE, "cuda:%d: no CUDA device is usable (%s)", device, pt_cuda_unavailable_reason());
        return PT_FAIL(PT_ERR_DEVICE, "cuda:%d: no such device (%d present)", device, n);
    }
    return PT_OK;
}

pt_status pt_cuda_memory_stats(int device, pt_cuda_mem_stats *out) {
    PT_TRY(pt_check_dev(device));
    pthread_mutex_lock(&pt_alock);
    *out = pt_cache[device].st;
    pthread_mutex_unlock(&pt_alock);
    return PT_OK;
}

pt_status pt_cuda_reset_peak_stats(int device) {
    PT_TRY(pt_check_dev(device));
    pthread_mutex_lock(&pt_alock);
    pt_cuda_mem_stats *s = &pt_cache[device].st;
    s->peak_allocated_bytes = s->allocated_bytes;
    s->peak_reserved_bytes = s->reserved_bytes;
    pthread_mutex_unlock(&pt_alock);
    return PT_OK;
}

pt_status pt_cuda_empty_cache(int device) {
    PT_TRY(pt_cuda_capture_forbid("cuda.empty_cache() (cudaFree)", "call it before the capture or after it"));
    int n = pt_cuda_device_count();
    if (device >= 0) PT_TRY(pt_check_dev(device));
    pt_status st = PT_OK;
    pthread_mutex_lock(&pt_alock);
    for (int d = 0; d < n; d++)
        if ((device < 0 || d == device) && st == PT_OK) st = pt_release_cached(d);
    pthread_mutex_unlock(&pt_alock);
    return st;
}
