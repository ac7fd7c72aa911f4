/* cuda/rng.cu — the counter-based RNG on the GPU: uniform, normal, randint (randperm stays on the CPU).
 *
 * One thread per Philox block. Every formula and the element -> (block, lane) mapping come from
 * src/host/pt_rng.h, whose shared arithmetic (PT_RNG_HD functions) compiles here with explicitly rounded
 * double operations (__dadd_rn, __dmul_rn, ...: no fused multiply-add), so a fill gives the same bits as
 * src/kernels/cpu/rng.c (compiled with -ffp-contract=off). NOT YET RUN ON A GPU;
 * tests/gpu/test_rng.lua compares a device fill with the CPU bit for bit.
 */
#include "pt_cuda_common.cuh"

extern "C" {
#include "../pt_dispatch.h"
}
#include "../../host/pt_rng.h"
extern "C" {
#include "pt_cuda_internal.h"
}

#define PT_RNG_THREADS 256
#define PT_2P24 (1.0 / 16777216.0)
#define PT_2P53 (1.0 / 9007199254740992.0)

__device__ __forceinline__ uint64_t pt_u64(uint32_t hi, uint32_t lo) { return ((uint64_t)hi << 32) | lo; }

#define BLOCK_LOOP(b, nb) for (int64_t b = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; b < (nb); b += (int64_t)gridDim.x * blockDim.x)

__global__ void k_uniform_f32(pt_rng_args g) {
    float *out = (float *)g.out;
    const int64_t nb = (g.n + 3) / 4;
    const double lo = g.a, range = __dsub_rn(g.b, g.a);
    BLOCK_LOOP(b, nb) {
        uint32_t x[4];
        pt_rng_block(g.seed, g.offset + (uint64_t)b, x);
        for (int l = 0; l < 4 && b * 4 + l < g.n; l++) {
            double u = __dmul_rn((double)(x[l] >> 8), PT_2P24);
            out[b * 4 + l] = __double2float_rn(__dadd_rn(lo, __dmul_rn(range, u)));
        }
    }
}

__global__ void k_uniform_f64(pt_rng_args g) {
    double *out = (double *)g.out;
    const int64_t nb = (g.n + 1) / 2;
    const double lo = g.a, range = __dsub_rn(g.b, g.a);
    BLOCK_LOOP(b, nb) {
        uint32_t x[4];
        pt_rng_block(g.seed, g.offset + (uint64_t)b, x);
        for (int j = 0; j < 2 && b * 2 + j < g.n; j++) {
            double u = __dmul_rn((double)(pt_u64(x[2 * j], x[2 * j + 1]) >> 11), PT_2P53);
            out[b * 2 + j] = __dadd_rn(lo, __dmul_rn(range, u));
        }
    }
}

__global__ void k_normal_f32(pt_rng_args g) {
    float *out = (float *)g.out;
    const int64_t nb = (g.n + 3) / 4;
    BLOCK_LOOP(b, nb) {
        uint32_t x[4];
        pt_rng_block(g.seed, g.offset + (uint64_t)b, x);
        double r = 0, u2 = 0;
        for (int l = 0; l < 4 && b * 4 + l < g.n; l++) {
            if (l % 2 == 0) {
                r = pt_rng_bm_radius(__dmul_rn((double)((x[l] >> 8) + 1), PT_2P24));
                u2 = __dmul_rn((double)(x[l + 1] >> 8), PT_2P24);
            }
            double z = __dmul_rn(r, pt_rng_bm_trig(u2, l % 2));
            out[b * 4 + l] = __double2float_rn(__dadd_rn(g.a, __dmul_rn(g.b, z)));
        }
    }
}

__global__ void k_normal_f64(pt_rng_args g) {
    double *out = (double *)g.out;
    const int64_t nb = (g.n + 1) / 2;
    BLOCK_LOOP(b, nb) {
        uint32_t x[4];
        pt_rng_block(g.seed, g.offset + (uint64_t)b, x);
        double u1 = __dmul_rn((double)((pt_u64(x[0], x[1]) >> 11) + 1), PT_2P53);
        double u2 = __dmul_rn((double)(pt_u64(x[2], x[3]) >> 11), PT_2P53);
        double r = pt_rng_bm_radius(u1);
        for (int j = 0; j < 2 && b * 2 + j < g.n; j++)
            out[b * 2 + j] = __dadd_rn(g.a, __dmul_rn(g.b, __dmul_rn(r, pt_rng_bm_trig(u2, j))));
    }
}

template <typename T>
__global__ void k_randint(pt_rng_args g) {
    T *out = (T *)g.out;
    const int64_t nb = (g.n + 1) / 2;
    BLOCK_LOOP(b, nb) {
        uint32_t x[4];
        pt_rng_block(g.seed, g.offset + (uint64_t)b, x);
        for (int j = 0; j < 2 && b * 2 + j < g.n; j++) {
            uint64_t r = pt_u64(x[2 * j], x[2 * j + 1]);
            uint64_t v = __umul64hi(r, g.range);
            out[b * 2 + j] = (T)(int64_t)((uint64_t)g.lo + v);
        }
    }
}

static unsigned pt_rng_blocks(int64_t nb) {
    int64_t b = (nb + PT_RNG_THREADS - 1) / PT_RNG_THREADS;
    if (b < 1) b = 1;
    return (unsigned)(b > 65535 * 16 ? 65535 * 16 : b);
}

/* The seed and offset are kernel arguments fixed at capture: a replayed graph would draw the same
 * numbers every time, so a random fill is refused inside a capture (the message says what to do). */
static pt_status pt_rng_capture_check(void) {
    return pt_cuda_capture_forbid("a random fill on the GPU (pt.rand / randn / randint / randperm)",
                                  "a replay would repeat the numbers drawn at capture: draw them outside the "
                                  "captured function into a tensor that the graph reads");
}

#define PT_RNG_LAUNCHER(NAME, KERNEL, PER)                                                      \
    static pt_status NAME(const pt_rng_args *g) {                                               \
        if (g->n == 0) return PT_OK;                                                            \
        PT_TRY(pt_rng_capture_check());                                                         \
        int64_t nb = (g->n + (PER)-1) / (PER);                                                  \
        KERNEL<<<pt_rng_blocks(nb), PT_RNG_THREADS, 0, pt_cuda_compute_stream()>>>(*g);         \
        pt_cuda_launch_check(#NAME);                                                            \
        return pt_cuda_check_pending();                                                         \
    }
PT_RNG_LAUNCHER(cu_uniform_f32, k_uniform_f32, 4)
PT_RNG_LAUNCHER(cu_uniform_f64, k_uniform_f64, 2)
PT_RNG_LAUNCHER(cu_normal_f32, k_normal_f32, 4)
PT_RNG_LAUNCHER(cu_normal_f64, k_normal_f64, 2)
PT_RNG_LAUNCHER(cu_randint_i64, k_randint<int64_t>, 2)
PT_RNG_LAUNCHER(cu_randint_i32, k_randint<int32_t>, 2)
PT_RNG_LAUNCHER(cu_randint_f32, k_randint<float>, 2)

PT_REGISTER_KERNEL(rng_uniform, PT_DEV_CUDA, PT_F32, cu_uniform_f32)
PT_REGISTER_KERNEL(rng_uniform, PT_DEV_CUDA, PT_F64, cu_uniform_f64)
PT_REGISTER_KERNEL(rng_normal, PT_DEV_CUDA, PT_F32, cu_normal_f32)
PT_REGISTER_KERNEL(rng_normal, PT_DEV_CUDA, PT_F64, cu_normal_f64)
PT_REGISTER_KERNEL(rng_randint, PT_DEV_CUDA, PT_I64, cu_randint_i64)
PT_REGISTER_KERNEL(rng_randint, PT_DEV_CUDA, PT_I32, cu_randint_i32)
PT_REGISTER_KERNEL(rng_randint, PT_DEV_CUDA, PT_F32, cu_randint_f32)
