/* test_cuda_alloc.c — the CUDA caching allocator, transfers, events and the copy/fill hooks.
 *
 *   ctest --test-dir build -R test_cuda_alloc     (or build/test_cuda_alloc)
 *
 * Exits 77 (skip) when CUDA is not built in or no device is present; the size-class rounding
 * checks need no device and run first whenever CUDA is built (a failure there exits 1).
 */
#include <stdlib.h>
#include <string.h>

#include "pt_test.h"
#include "pt_tensor.h"

#ifdef PT_WITH_CUDA
#include "cuda/pt_cuda.h"

static pt_cuda_mem_stats stats(void) {
    pt_cuda_mem_stats s;
    memset(&s, 0, sizeof s);
    PT_CHECK_OK(pt_cuda_memory_stats(0, &s));
    return s;
}

/* ---- no device needed ---- */
static void check_rounding(void) {
    PT_CHECK(pt_cuda_alloc_round(0) == 0);
    PT_CHECK(pt_cuda_alloc_round(1) == 512);
    PT_CHECK(pt_cuda_alloc_round(512) == 512);
    PT_CHECK(pt_cuda_alloc_round(513) == 640);
    PT_CHECK(pt_cuda_alloc_round(1000) == 1024);
    PT_CHECK(pt_cuda_alloc_round(1025) == 1280);
    PT_CHECK(pt_cuda_alloc_round(1537) == 1792);
    PT_CHECK(pt_cuda_alloc_round((size_t)3 << 20) == (size_t)3 << 20);
    PT_CHECK(pt_cuda_alloc_round(((size_t)3 << 20) + 1) == (size_t)7 << 19); /* 3.5 MiB */
    PT_CHECK(pt_cuda_alloc_round((size_t)32 << 20) == (size_t)32 << 20);
    PT_CHECK(pt_cuda_alloc_round(((size_t)32 << 20) + 1) == (size_t)34 << 20); /* 2 MiB steps */
    PT_CHECK(pt_cuda_alloc_round((size_t)41 << 20) == (size_t)42 << 20);
    /* never more than 25% slack below 32 MiB */
    for (size_t n = 1; n < ((size_t)32 << 20); n = n * 3 / 2 + 7) {
        size_t r = pt_cuda_alloc_round(n);
        PT_CHECK(r >= n && (r <= 512 || r - n <= n / 4));
    }
    char b[32];
    PT_CHECK(strcmp(pt_cuda_fmt_bytes(512, b, sizeof b), "512 B") == 0);
    PT_CHECK(strcmp(pt_cuda_fmt_bytes((int64_t)3 << 29, b, sizeof b), "1.50 GiB") == 0);
}

/* ---- with a device ---- */
PT_TEST(reuse_same_class_and_stats) {
    PT_CHECK_OK(pt_cuda_empty_cache(0));
    pt_cuda_mem_stats s0 = stats();
    void *p = NULL, *q = NULL, *r = NULL;
    PT_CHECK_OK(pt_cuda_alloc(&p, 1000, 0));
    PT_CHECK(p != NULL);
    pt_cuda_mem_stats s1 = stats();
    PT_CHECK(s1.allocated_bytes - s0.allocated_bytes == 1024);
    PT_CHECK(s1.requested_bytes - s0.requested_bytes == 1000);
    PT_CHECK(s1.reserved_bytes - s0.reserved_bytes == 1024);
    PT_CHECK(s1.n_cuda_mallocs - s0.n_cuda_mallocs == 1);
    PT_CHECK(s1.n_allocs - s0.n_allocs == 1);
    PT_CHECK(s1.peak_allocated_bytes >= s1.allocated_bytes);
    pt_cuda_free(p, 1000, 0);
    pt_cuda_mem_stats s2 = stats();
    PT_CHECK(s2.allocated_bytes == s0.allocated_bytes);
    PT_CHECK(s2.cached_bytes - s0.cached_bytes == 1024);
    PT_CHECK(s2.reserved_bytes == s1.reserved_bytes);
    PT_CHECK(s2.n_frees - s0.n_frees == 1);
    /* 900 bytes is the same class (1024): the cached block comes back, no cudaMalloc */
    PT_CHECK_OK(pt_cuda_alloc(&q, 900, 0));
    PT_CHECK(q == p);
    pt_cuda_mem_stats s3 = stats();
    PT_CHECK(s3.n_cache_hits - s2.n_cache_hits == 1);
    PT_CHECK(s3.n_cuda_mallocs == s2.n_cuda_mallocs);
    PT_CHECK(s3.cached_bytes == s0.cached_bytes);
    /* 2000 bytes is another class: a new block */
    PT_CHECK_OK(pt_cuda_alloc(&r, 2000, 0));
    PT_CHECK(r != q);
    PT_CHECK(stats().n_cuda_mallocs - s3.n_cuda_mallocs == 1);
    pt_cuda_free(q, 900, 0);
    pt_cuda_free(r, 2000, 0);
    PT_CHECK_OK(pt_cuda_empty_cache(0));
    pt_cuda_mem_stats s4 = stats();
    PT_CHECK(s4.cached_bytes == 0);
    PT_CHECK(s4.reserved_bytes == s4.allocated_bytes);
    PT_CHECK(s4.peak_reserved_bytes >= s1.reserved_bytes);
}

PT_TEST(large_blocks_reuse_within_an_eighth) {
    void *p = NULL, *q = NULL;
    PT_CHECK_OK(pt_cuda_alloc(&p, (size_t)42 << 20, 0));
    pt_cuda_free(p, (size_t)42 << 20, 0);
    pt_cuda_mem_stats s = stats();
    PT_CHECK_OK(pt_cuda_alloc(&q, (size_t)40 << 20, 0)); /* 42 MiB is at most 1/8 over 40 MiB */
    PT_CHECK(q == p);
    PT_CHECK(stats().n_cache_hits - s.n_cache_hits == 1);
    pt_cuda_free(q, (size_t)40 << 20, 0);
    PT_CHECK_OK(pt_cuda_alloc(&q, (size_t)20 << 20, 0)); /* a small class: not the large block */
    PT_CHECK(q != p);
    pt_cuda_free(q, (size_t)20 << 20, 0);
    PT_CHECK_OK(pt_cuda_empty_cache(-1));
}

PT_TEST(out_of_memory_flushes_then_names_sizes) {
    void *p = NULL, *keep = NULL;
    PT_CHECK_OK(pt_cuda_alloc(&keep, 4096, 0));
    PT_CHECK_OK(pt_cuda_alloc(&p, (size_t)3 << 20, 0));
    pt_cuda_free(p, (size_t)3 << 20, 0); /* 3 MiB cached */
    pt_cuda_mem_stats s = stats();
    PT_CHECK(s.cached_bytes >= (int64_t)3 << 20);
    p = NULL;
    PT_CHECK_ERR(pt_cuda_alloc(&p, (size_t)1 << 50, 0), PT_ERR_OOM, "cudaMalloc on cuda:0: out of memory (asked 1.00 PiB");
    PT_CHECK(strstr(pt_last_error(), "by live tensors") != NULL);
    PT_CHECK(strstr(pt_last_error(), "of cache released before retrying") != NULL);
    PT_CHECK(strstr(pt_last_error(), "free of") != NULL);
    PT_CHECK(p == NULL);
    pt_cuda_mem_stats s2 = stats();
    PT_CHECK(s2.n_oom_flushes - s.n_oom_flushes == 1);
    PT_CHECK(s2.cached_bytes == 0);
    PT_CHECK(s2.allocated_bytes == s.allocated_bytes);
    /* the allocator still works afterwards */
    PT_CHECK_OK(pt_cuda_alloc(&p, 100, 0));
    pt_cuda_free(p, 100, 0);
    pt_cuda_free(keep, 4096, 0);
}

PT_TEST(bad_device_and_bad_free_are_errors) {
    void *p = NULL;
    PT_CHECK_ERR(pt_cuda_alloc(&p, 10, 99), PT_ERR_DEVICE, "cuda:99: no such device");
    pt_cuda_free((void *)(uintptr_t)0x1234, 8, 0);
    PT_CHECK_ERR(pt_cuda_synchronize(0), PT_ERR_DEVICE, "was not handed out by the caching allocator");
    PT_CHECK_OK(pt_cuda_synchronize(0)); /* reported once */
}

PT_TEST(transfers_round_trip_across_staging_chunks) {
    size_t sizes[] = {3, 4096, ((size_t)8 << 20) + 5, (size_t)20 << 20};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        unsigned char *h = malloc(n), *back = malloc(n);
        for (size_t i = 0; i < n; i++) h[i] = (unsigned char)(i * 2654435761u >> 13);
        memset(back, 0, n);
        void *d = NULL, *d2 = NULL;
        PT_CHECK_OK(pt_cuda_alloc(&d, n, 0));
        PT_CHECK_OK(pt_cuda_alloc(&d2, n, 0));
        PT_CHECK_OK(pt_cuda_memcpy_h2d(d, h, n, 0));
        PT_CHECK_OK(pt_cuda_memcpy_d2d(d2, d, n, 0));
        PT_CHECK_OK(pt_cuda_memcpy_d2h(back, d2, n, 0));
        PT_CHECK(memcmp(h, back, n) == 0);
        PT_CHECK_OK(pt_cuda_memset0(d2, n, 0));
        PT_CHECK_OK(pt_cuda_memcpy_d2h(back, d2, n, 0));
        size_t nz = 0;
        for (size_t i = 0; i < n; i++) nz += back[i] != 0;
        PT_CHECK(nz == 0);
        pt_cuda_free(d, n, 0);
        pt_cuda_free(d2, n, 0);
        free(h);
        free(back);
    }
}

PT_TEST(tensor_to_cuda_strided_cast_and_fill) {
    int64_t shape[2] = {37, 29};
    pt_tensor *a = NULL, *g = NULL, *gt = NULL, *ct = NULL, *gd = NULL, *cd = NULL, *h = NULL;
    PT_CHECK_OK(pt_tensor_empty(&a, PT_F32, PT_CPU, 2, shape));
    for (int64_t i = 0; i < 37 * 29; i++) PT_CHECK_OK(pt_tensor_set_flat(a, i, (double)(i % 101) * 0.37 - 17.3));
    pt_device cuda0 = {PT_DEV_CUDA, 0};
    PT_CHECK_OK(pt_tensor_to(&g, a, PT_F32, cuda0, 0));
    /* transposed views, cast to bf16: device copy hook vs the CPU copy */
    int64_t tshape[2] = {29, 37}, tstride[2] = {1, 29};
    PT_CHECK_OK(pt_tensor_view_of(&gt, g, 2, tshape, tstride, 0));
    PT_CHECK_OK(pt_tensor_view_of(&ct, a, 2, tshape, tstride, 0));
    PT_CHECK_OK(pt_tensor_to(&gd, gt, PT_BF16, cuda0, 1));
    PT_CHECK_OK(pt_tensor_to(&cd, ct, PT_BF16, PT_CPU, 1));
    PT_CHECK_OK(pt_tensor_to(&h, gd, PT_BF16, PT_CPU, 0));
    PT_CHECK(h->dtype == PT_BF16 && h->device.type == PT_DEV_CPU);
    PT_CHECK(memcmp(h->storage->data, cd->storage->data, 29 * 37 * 2) == 0);
    /* fill a strided view on the device, compare with the CPU fill */
    PT_CHECK_OK(pt_tensor_fill_(gt, -2.5));
    PT_CHECK_OK(pt_tensor_fill_(ct, -2.5));
    pt_tensor *back = NULL;
    PT_CHECK_OK(pt_tensor_to(&back, g, PT_F32, PT_CPU, 0));
    PT_CHECK(memcmp(back->storage->data, a->storage->data, 37 * 29 * 4) == 0);
    pt_tensor *rows[] = {a, g, gt, ct, gd, cd, h, back};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) pt_tensor_release(rows[i]);
}

PT_TEST(events_time_forward) {
    pt_cuda_event *e0 = NULL, *e1 = NULL;
    PT_CHECK_OK(pt_cuda_event_new(&e0));
    PT_CHECK_OK(pt_cuda_event_new(&e1));
    double ms = -1;
    PT_CHECK_ERR(pt_cuda_event_elapsed_ms(e0, e1, &ms), PT_ERR_VALUE, "must be recorded first");
    PT_CHECK_OK(pt_cuda_event_record(e0));
    void *d = NULL;
    PT_CHECK_OK(pt_cuda_alloc(&d, (size_t)64 << 20, 0));
    PT_CHECK_OK(pt_cuda_memset0(d, (size_t)64 << 20, 0));
    PT_CHECK_OK(pt_cuda_event_record(e1));
    PT_CHECK_OK(pt_cuda_event_elapsed_ms(e0, e1, &ms));
    PT_CHECK(ms >= 0 && ms < 10000);
    pt_cuda_free(d, (size_t)64 << 20, 0);
    pt_cuda_event_free(e0);
    pt_cuda_event_free(e1);
}

int main(void) {
    check_rounding();
    if (pt_test_current_failed()) {
        printf("not ok size_class_rounding\n");
        return 1;
    }
    printf("ok size_class_rounding\n");
    if (pt_cuda_device_count() == 0) {
        printf("skip: no CUDA device (%s)\n", pt_cuda_unavailable_reason());
        return 77;
    }
    return pt_test_main();
}

#else

int main(void) {
    printf("skip: CUDA not built into this proteus (nvcc was not found at build time)\n");
    return 77;
}

#endif
