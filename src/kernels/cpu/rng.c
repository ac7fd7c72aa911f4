/* cpu/rng.c — CPU kernels of the counter-based RNG: uniform, normal, randint, randperm. The
 * element -> (Philox block, lane) mapping and every formula are fixed in src/host/pt_rng.h; this
 * file only loops over blocks (OpenMP, any thread count gives the same bits). Compiled with
 * -ffp-contract=off (CMakeLists.txt) so the double arithmetic matches the CUDA side bit for bit.
 * Tests: tests/c/test_rng.c.
 */
#include <stdlib.h> /* malloc, free, qsort */

#include "../../host/pt_rng.h"
#include "../pt_dispatch.h"

#define PT_OMP_MIN_BLOCKS 4096
#define PT_2P24 (1.0 / 16777216.0)
#define PT_2P53 (1.0 / 9007199254740992.0)

static inline uint64_t pt_u64(uint32_t hi, uint32_t lo) { return ((uint64_t)hi << 32) | lo; }

/* ---- uniform ---- */
static pt_status uniform_f32(const pt_rng_args *g) {
    float *out = g->out;
    int64_t nb = (g->n + 3) / 4;
    double lo = g->a, range = g->b - g->a;
#pragma omp parallel for if (nb > PT_OMP_MIN_BLOCKS)
    for (int64_t b = 0; b < nb; b++) {
        uint32_t x[4];
        pt_rng_block(g->seed, g->offset + (uint64_t)b, x);
        for (int l = 0; l < 4 && b * 4 + l < g->n; l++) {
            double u = (double)(x[l] >> 8) * PT_2P24;
            out[b * 4 + l] = (float)(lo + range * u);
        }
    }
    return PT_OK;
}

static pt_status uniform_f64(const pt_rng_args *g) {
    double *out = g->out;
    int64_t nb = (g->n + 1) / 2;
    double lo = g->a, range = g->b - g->a;
#pragma omp parallel for if (nb > PT_OMP_MIN_BLOCKS)
    for (int64_t b = 0; b < nb; b++) {
        uint32_t x[4];
        pt_rng_block(g->seed, g->offset + (uint64_t)b, x);
        for (int j = 0; j < 2 && b * 2 + j < g->n; j++) {
            double u = (double)(pt_u64(x[2 * j], x[2 * j + 1]) >> 11) * PT_2P53;
            out[b * 2 + j] = lo + range * u;
        }
    }
    return PT_OK;
}
PT_REGISTER_KERNEL(rng_uniform, PT_DEV_CPU, PT_F32, uniform_f32)
PT_REGISTER_KERNEL(rng_uniform, PT_DEV_CPU, PT_F64, uniform_f64)

/* ---- normal (Box–Muller of pt_rng.h) ---- */
static pt_status normal_f32(const pt_rng_args *g) {
    float *out = g->out;
    int64_t nb = (g->n + 3) / 4;
    double mean = g->a, std = g->b;
#pragma omp parallel for if (nb > PT_OMP_MIN_BLOCKS / 8)
    for (int64_t b = 0; b < nb; b++) {
        uint32_t x[4];
        pt_rng_block(g->seed, g->offset + (uint64_t)b, x);
        double r = 0, u2 = 0;
        for (int l = 0; l < 4 && b * 4 + l < g->n; l++) {
            if (l % 2 == 0) { /* one radius per pair: the same bits as pt_rng_box_muller */
                r = pt_rng_bm_radius((double)((x[l] >> 8) + 1) * PT_2P24);
                u2 = (double)(x[l + 1] >> 8) * PT_2P24;
            }
            double z = r * pt_rng_bm_trig(u2, l % 2);
            out[b * 4 + l] = (float)(mean + std * z);
        }
    }
    return PT_OK;
}

static pt_status normal_f64(const pt_rng_args *g) {
    double *out = g->out;
    int64_t nb = (g->n + 1) / 2;
    double mean = g->a, std = g->b;
#pragma omp parallel for if (nb > PT_OMP_MIN_BLOCKS / 8)
    for (int64_t b = 0; b < nb; b++) {
        uint32_t x[4];
        pt_rng_block(g->seed, g->offset + (uint64_t)b, x);
        double u1 = (double)((pt_u64(x[0], x[1]) >> 11) + 1) * PT_2P53;
        double u2 = (double)(pt_u64(x[2], x[3]) >> 11) * PT_2P53;
        double r = pt_rng_bm_radius(u1);
        for (int j = 0; j < 2 && b * 2 + j < g->n; j++) out[b * 2 + j] = mean + std * (r * pt_rng_bm_trig(u2, j));
    }
    return PT_OK;
}
PT_REGISTER_KERNEL(rng_normal, PT_DEV_CPU, PT_F32, normal_f32)
PT_REGISTER_KERNEL(rng_normal, PT_DEV_CPU, PT_F64, normal_f64)

/* ---- randint: lo + floor(r * R / 2^64) ---- */
static inline int64_t pt_randint_at(const pt_rng_args *g, const uint32_t *x, int j) {
    uint64_t r = pt_u64(x[2 * j], x[2 * j + 1]);
    uint64_t v = (uint64_t)(((unsigned __int128)r * g->range) >> 64);
    return (int64_t)((uint64_t)g->lo + v);
}
#define RANDINT_KERNEL(NAME, T)                                                           \
    static pt_status NAME(const pt_rng_args *g) {                                         \
        T *out = g->out;                                                                  \
        int64_t nb = (g->n + 1) / 2;                                                      \
        _Pragma("omp parallel for if (nb > PT_OMP_MIN_BLOCKS)")                           \
        for (int64_t b = 0; b < nb; b++) {                                                \
            uint32_t x[4];                                                                \
            pt_rng_block(g->seed, g->offset + (uint64_t)b, x);                            \
            for (int j = 0; j < 2 && b * 2 + j < g->n; j++) out[b * 2 + j] = (T)pt_randint_at(g, x, j); \
        }                                                                                 \
        return PT_OK;                                                                     \
    }
RANDINT_KERNEL(randint_i64, int64_t)
RANDINT_KERNEL(randint_i32, int32_t)
RANDINT_KERNEL(randint_u16, uint16_t)
RANDINT_KERNEL(randint_i8, int8_t)
RANDINT_KERNEL(randint_u8, uint8_t)
RANDINT_KERNEL(randint_f32, float)
RANDINT_KERNEL(randint_f64, double)
PT_REGISTER_KERNEL(rng_randint, PT_DEV_CPU, PT_I64, randint_i64)
PT_REGISTER_KERNEL(rng_randint, PT_DEV_CPU, PT_I32, randint_i32)
PT_REGISTER_KERNEL(rng_randint, PT_DEV_CPU, PT_U16, randint_u16)
PT_REGISTER_KERNEL(rng_randint, PT_DEV_CPU, PT_I8, randint_i8)
PT_REGISTER_KERNEL(rng_randint, PT_DEV_CPU, PT_U8, randint_u8)
PT_REGISTER_KERNEL(rng_randint, PT_DEV_CPU, PT_F32, randint_f32)
PT_REGISTER_KERNEL(rng_randint, PT_DEV_CPU, PT_F64, randint_f64)

/* ---- randperm: indices sorted by (64-bit key, index) ---- */
typedef struct {
    uint64_t key;
    int64_t idx;
} pt_perm_kv;

static int pt_perm_cmp(const void *pa, const void *pb) {
    const pt_perm_kv *a = pa, *b = pb;
    if (a->key != b->key) return a->key < b->key ? -1 : 1;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

static pt_status randperm_i64(const pt_rng_args *g) {
    int64_t n = g->n, nb = (n + 1) / 2;
    pt_perm_kv *kv = malloc((size_t)(n ? n : 1) * sizeof *kv);
    if (!kv) return PT_FAIL(PT_ERR_OOM, "randperm: out of host memory for %lld keys", (long long)n);
#pragma omp parallel for if (nb > PT_OMP_MIN_BLOCKS)
    for (int64_t b = 0; b < nb; b++) {
        uint32_t x[4];
        pt_rng_block(g->seed, g->offset + (uint64_t)b, x);
        for (int j = 0; j < 2 && b * 2 + j < n; j++) {
            kv[b * 2 + j].key = pt_u64(x[2 * j], x[2 * j + 1]);
            kv[b * 2 + j].idx = b * 2 + j;
        }
    }
    qsort(kv, (size_t)n, sizeof *kv, pt_perm_cmp);
    int64_t *out = g->out;
    for (int64_t i = 0; i < n; i++) out[i] = kv[i].idx;
    free(kv);
    return PT_OK;
}
PT_REGISTER_KERNEL(rng_randperm, PT_DEV_CPU, PT_I64, randperm_i64)
