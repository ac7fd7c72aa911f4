/* cuda/linear_act.cu — CUDA kernels of the fused linear + squared activation (pt_linear_act.h):
 * h = x · Wᵀ, out = relu(h)² or leaky_relu(h, slope)², and the backward's dh = g ⊙ act'(h).
 *
 * Dimension letters: M rows of x, K = in (the reduced dim), N = out. Layout: x [M, K], W [N, K], h and
 * out [M, N], all row-major and contiguous (the front makes them so).
 *
 * Two ways to the forward; PROTEUS_LINEAR_ACT (read at every call) picks one:
 *   cublas (the default, "auto" too)  the "matmul" kernel of matmul.cu (cublasGemmEx, fp32 accumulate
 *                      for bf16) writes h, then k_la_act writes out: every dtype (bf16, f32, f64).
 *   fused              bf16 only, K and N multiples of 64, M <= 8,388,480, 16-byte aligned x and W:
 *                      k_la_gemm_act, whose epilogue writes h and act(h). Any other call with
 *                      PROTEUS_LINEAR_ACT=fused is an error naming the dtype or the shape.
 * "auto" stays on cublas until a GPU measurement (bench/gpu_linear_act.lua) says the fused kernel is
 * faster at the model's shapes; none has been made (written on a machine without a GPU).
 *
 * k_la_gemm_act: block tile 128 (M) × 128 (N), K in steps of 32, 8 warps as 2 × 4, each warp 64 × 32
 * (4 m16 × 4 n8 accumulator tiles, fp32). Tiles of x and W move global -> shared with cp.async through
 * a 4-stage ring (wait_group STAGES − 2, one __syncthreads per K step), shared -> registers with
 * ldmatrix.x4; W's rows are the B operand's columns, so plain (non-.trans) ldmatrix gives the "col"
 * fragments of mma.sync.m16n8k16.row.col bf16 -> f32. Shared rows are padded by 8 elements (80-byte
 * rows: the 8 row addresses of an ldmatrix fall in distinct banks). Rows of x past M and rows of W past
 * N are zero-filled in shared memory and never stored; a warp whose whole tile lies past M or N skips
 * its products. Epilogue: h rounded to bf16 once, act computed in fp32 from that rounded h (so that out
 * is exactly what k_la_act makes of the stored h, on either path) and rounded once; bf16 pairs are
 * stored straight from the accumulator fragments (4 bytes per lane).
 *
 * k_la_act / k_la_act_bwd: thread per element, the CPU's expressions (cpu/fused_tmpl.h act2 / act2_bwd)
 * in the math type (fp32 for bf16, rounded once), so f32 and f64 match the CPU bit for bit given h.
 *
 * The emulation test (ctest linear_act_emu, tests/emu/linear_act_emu.cpp) cuts everything from the
 * definition of PT_LA_BM to the "device helpers" banner, and from the "GEMM tiles" banner to the
 * "launchers" banner, out of this file at build time and runs k_la_gemm_act on the CPU against f64:
 * keep those markers (the exact strings are in CMakeLists.txt's linear_act_emu block). Test on a GPU: tests/gpu/test_linear_act.lua; bench: bench/gpu_linear_act.lua.
 * NOT YET RUN ON A GPU (compiled for sm_90a with zero warnings; its index math checked by the emulator).
 */
#include <stdint.h>
#include <stdio.h>  /* snprintf */
#include <stdlib.h> /* getenv */
#include <string.h> /* strcmp */

#include "pt_cuda_common.cuh"

extern "C" {
#include "../pt_dispatch.h"
#include "../pt_linear_act.h"
#include "../pt_matmul.h"
#include "pt_cuda_internal.h"
}

#define PT_LA_BM 128     /* rows of x (and h) per block */
#define PT_LA_BN 128     /* rows of W (columns of h) per block */
#define PT_LA_BK 32      /* K per pipeline stage */
#define PT_LA_STAGES 4   /* cp.async ring depth */
#define PT_LA_THREADS 256 /* 8 warps: 2 along M × 4 along N */
#define PT_LA_WM 64      /* rows per warp */
#define PT_LA_WN 32      /* columns per warp */
#define PT_LA_PAD 8      /* bf16 elements of padding per shared row (16 bytes) */
#define PT_LA_LD (PT_LA_BK + PT_LA_PAD)
#define PT_LA_STAGE_ELEMS ((PT_LA_BM + PT_LA_BN) * PT_LA_LD) /* x tile, then W tile */
#define PT_LA_SMEM_BYTES (PT_LA_STAGES * PT_LA_STAGE_ELEMS * 2)
#define PT_LA_LEAKY 1    /* PT_LINEAR_ACT_LEAKY_RELU2 (checked below the launchers banner) */

struct pt_la_params {
    const uint16_t *x, *w; /* bf16 bit patterns */
    uint16_t *h, *a;
    int M, N, K;
    int act;
    float slope;
};

/* ---------------------------------------------------------------- device helpers */
/* cp.async, ldmatrix and mma.sync m16n8k16 (inline PTX); the emulator has its own */
#include "pt_mma.cuh"

/* ---------------------------------------------------------------- GEMM tiles */
/* relu(v)² or leaky_relu(v, slope)², the CPU's expressions (act2) */
__device__ __forceinline__ float pt_la_act(float v, int act, float slope) {
    const float r = v > 0.f ? v : (act == PT_LA_LEAKY ? v * slope : 0.f);
    return r * r;
}

/* Starts copying the K slice [k0, k0 + 32) of rows m0.. of x and n0.. of W into one stage: x tile
 * [128][LD] then W tile [128][LD]. 4 chunks of 16 bytes per row, 2 + 2 chunks per thread. */
__device__ __forceinline__ void pt_la_load_stage(uint16_t *s, const pt_la_params &p, int m0, int n0, int k0) {
    constexpr int CH = PT_LA_BK / 8;
    static_assert(PT_LA_BM * CH % PT_LA_THREADS == 0 && PT_LA_BN * CH % PT_LA_THREADS == 0, "whole chunks per thread");
    uint16_t *sx = s, *sw = s + PT_LA_BM * PT_LA_LD;
#pragma unroll
    for (int it = 0; it < PT_LA_BM * CH / PT_LA_THREADS; it++) {
        const int c = (int)threadIdx.x + it * PT_LA_THREADS, r = c / CH, kc = (c % CH) * 8, row = m0 + r;
        const bool ok = row < p.M;
        pt_mma_cp16(sx + r * PT_LA_LD + kc, p.x + (int64_t)(ok ? row : 0) * p.K + k0 + kc, ok);
    }
#pragma unroll
    for (int it = 0; it < PT_LA_BN * CH / PT_LA_THREADS; it++) {
        const int c = (int)threadIdx.x + it * PT_LA_THREADS, r = c / CH, kc = (c % CH) * 8, row = n0 + r;
        const bool ok = row < p.N;
        pt_mma_cp16(sw + r * PT_LA_LD + kc, p.w + (int64_t)(ok ? row : 0) * p.K + k0 + kc, ok);
    }
}

/* acc[i][j] (rows wm0 + 16i.., columns wn0 + 8j..) += x tile · W tileᵀ over one stage (two k16 steps).
 * Lane l: A operand rows (l & 7) + 8·((l >> 3) & 1), k half (l >> 4); B operand (W rows = n) rows
 * (l & 7) + 8·(l >> 4), k half ((l >> 3) & 1), so b[0], b[1] are n-tile 2j's k halves, b[2], b[3] 2j+1's. */
__device__ __forceinline__ void pt_la_mma_stage(float acc[4][4][4], const uint16_t *s, int wm0, int wn0) {
    const uint16_t *sx = s, *sw = s + PT_LA_BM * PT_LA_LD;
    const int lane = threadIdx.x & 31, mi = lane >> 3;
#pragma unroll
    for (int kk = 0; kk < PT_LA_BK / 16; kk++) {
        uint32_t a[4][4], b[2][4];
#pragma unroll
        for (int i = 0; i < 4; i++)
            pt_mma_ldsm(a[i], sx + (wm0 + i * 16 + (lane & 7) + (mi & 1) * 8) * PT_LA_LD + kk * 16 + (mi >> 1) * 8);
#pragma unroll
        for (int j = 0; j < 2; j++)
            pt_mma_ldsm(b[j], sw + (wn0 + j * 16 + (lane & 7) + (mi >> 1) * 8) * PT_LA_LD + kk * 16 + (mi & 1) * 8);
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int j = 0; j < 2; j++) {
                pt_mma_m16n8k16(acc[i][2 * j], a[i], b[j][0], b[j][1]);
                pt_mma_m16n8k16(acc[i][2 * j + 1], a[i], b[j][2], b[j][3]);
            }
    }
}

/* Epilogue of one warp: accumulator (i, j) element e sits at row r0 + 16i + g + 8·(e >> 1), column
 * c0 + 8j + 2t + (e & 1) (g = lane/4, t = lane%4). Writes h = bf16(acc) and act(h) as bf16 pairs; rows
 * >= M and columns >= N (N is even) are skipped. */
__device__ __forceinline__ void pt_la_store(const pt_la_params &p, const float acc[4][4][4], int r0, int c0) {
    const int lane = threadIdx.x & 31, g = lane >> 2, t2 = 2 * (lane & 3);
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int half = 0; half < 2; half++) {
            const int row = r0 + i * 16 + g + half * 8;
            if (row >= p.M) continue;
            uint16_t *hr = p.h + (int64_t)row * p.N, *ar = p.a + (int64_t)row * p.N;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int col = c0 + j * 8 + t2;
                if (col >= p.N) continue;
                const uint16_t h0 = pt_f32_to_bf16_bits(acc[i][j][2 * half]);
                const uint16_t h1 = pt_f32_to_bf16_bits(acc[i][j][2 * half + 1]);
                const uint16_t a0 = pt_f32_to_bf16_bits(pt_la_act(pt_bf16_bits_to_f32(h0), p.act, p.slope));
                const uint16_t a1 = pt_f32_to_bf16_bits(pt_la_act(pt_bf16_bits_to_f32(h1), p.act, p.slope));
                *(uint32_t *)(hr + col) = (uint32_t)h0 | ((uint32_t)h1 << 16);
                *(uint32_t *)(ar + col) = (uint32_t)a0 | ((uint32_t)a1 << 16);
            }
        }
}

/* grid (ceil(N/128), ceil(M/128)), 256 threads, PT_LA_SMEM_BYTES of dynamic shared memory; K % 32 == 0 */
__global__ void __launch_bounds__(PT_LA_THREADS) k_la_gemm_act(pt_la_params p) {
    extern __shared__ __align__(16) unsigned char pt_la_smem[];
    uint16_t *smem = (uint16_t *)pt_la_smem;
    const int n0 = (int)blockIdx.x * PT_LA_BN, m0 = (int)blockIdx.y * PT_LA_BM;
    const int warp = (int)threadIdx.x >> 5, wm0 = (warp >> 2) * PT_LA_WM, wn0 = (warp & 3) * PT_LA_WN;
    const bool live = m0 + wm0 < p.M && n0 + wn0 < p.N; /* uniform per warp */
    const int nk = p.K / PT_LA_BK;

    float acc[4][4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j][0] = acc[i][j][1] = acc[i][j][2] = acc[i][j][3] = 0.f;

#pragma unroll
    for (int s = 0; s < PT_LA_STAGES - 1; s++) {
        if (s < nk) pt_la_load_stage(smem + s * PT_LA_STAGE_ELEMS, p, m0, n0, s * PT_LA_BK);
        pt_mma_commit(); /* an empty group keeps the wait_group count uniform */
    }
    for (int kt = 0; kt < nk; kt++) {
        pt_mma_wait<PT_LA_STAGES - 2>(); /* this thread's copies of step kt have landed */
        __syncthreads();                /* everyone's have; and step kt − 1's stage is free again */
        const int nt = kt + PT_LA_STAGES - 1;
        if (nt < nk) pt_la_load_stage(smem + (nt % PT_LA_STAGES) * PT_LA_STAGE_ELEMS, p, m0, n0, nt * PT_LA_BK);
        pt_mma_commit();
        if (live) pt_la_mma_stage(acc, smem + (kt % PT_LA_STAGES) * PT_LA_STAGE_ELEMS, wm0, wn0);
    }
    if (live) pt_la_store(p, acc, m0 + wm0, n0 + wn0);
}

/* ---------------------------------------------------------------- launchers */
static_assert(PT_LA_LEAKY == PT_LINEAR_ACT_LEAKY_RELU2, "PT_LA_LEAKY must name PT_LINEAR_ACT_LEAKY_RELU2");
static_assert(PT_LA_THREADS == 32 * (PT_LA_BM / PT_LA_WM) * (PT_LA_BN / PT_LA_WN), "warp grid must cover the tile");

#define PT_LA_MAX_M ((int64_t)65535 * PT_LA_BM) /* grid.y limit */
#define PT_LA_MAX_DEVICES 64

/* ---- activation kernels (the cublas path, and the backward of both paths) ---- */
template <typename T>
__global__ void k_la_act(const T *h, T *out, int64_t n, int act, typename pt_math<T>::type slope) {
    typedef typename pt_math<T>::type M;
    PT_GRID_LOOP(i, n) {
        const M v = pt_ld(h, i), r = v > 0 ? v : (act == PT_LA_LEAKY ? v * slope : (M)0);
        pt_st(out, i, r * r);
    }
}

template <typename T>
__global__ void k_la_act_bwd(const T *h, const T *g, T *dh, int64_t n, int act, typename pt_math<T>::type slope) {
    typedef typename pt_math<T>::type M;
    PT_GRID_LOOP(i, n) {
        const M v = pt_ld(h, i), gg = pt_ld(g, i);
        M d;
        if (v > 0) d = 2 * v * gg;
        else d = act == PT_LA_LEAKY ? 2 * v * slope * slope * gg : (M)0;
        pt_st(dh, i, d);
    }
}

/* ---- the switch ---- */
enum { PT_LA_AUTO = 0, PT_LA_CUBLAS = 1, PT_LA_FUSED = 2 };

static pt_status pt_la_mode(int *mode) {
    const char *e = getenv("PROTEUS_LINEAR_ACT");
    *mode = PT_LA_AUTO;
    if (!e || !*e || !strcmp(e, "auto")) return PT_OK;
    if (!strcmp(e, "cublas")) *mode = PT_LA_CUBLAS;
    else if (!strcmp(e, "fused")) *mode = PT_LA_FUSED;
    else
        return PT_FAIL(PT_ERR_VALUE, "PROTEUS_LINEAR_ACT=%s: expected cublas, fused or auto (unset means auto: "
                                     "cublas + activation kernel until a GPU measurement says fused wins)", e);
    return PT_OK;
}

static int pt_la_aligned(const void *ptr, uintptr_t n) { return ((uintptr_t)ptr & (n - 1)) == 0; }

/* 1 when k_la_gemm_act takes these (bf16) arguments; otherwise 0 and why[] names the failed condition */
static int pt_la_fused_supported(const pt_linear_act_args *a, char *why, size_t why_len) {
    if (a->k % 64 || a->n % 64) {
        snprintf(why, why_len, "in = %lld and out = %lld must both be multiples of 64", (long long)a->k,
                 (long long)a->n);
        return 0;
    }
    if (a->m > PT_LA_MAX_M) {
        snprintf(why, why_len, "%lld rows is more than the %lld of the fused kernel's grid", (long long)a->m,
                 (long long)PT_LA_MAX_M);
        return 0;
    }
    const char *bad = !pt_la_aligned(a->x, 16) ? "x" : !pt_la_aligned(a->w, 16) ? "W"
                      : !pt_la_aligned(a->h, 4) ? "h" : !pt_la_aligned(a->out, 4) ? "out" : NULL;
    if (bad) {
        snprintf(why, why_len, "%s is not aligned (a view at an odd offset; the fused kernel loads 16 bytes at a time)",
                 bad);
        return 0;
    }
    return 1;
}

static pt_status pt_la_fused(const pt_linear_act_args *a) {
    pt_la_params p;
    p.x = (const uint16_t *)a->x;
    p.w = (const uint16_t *)a->w;
    p.h = (uint16_t *)a->h;
    p.a = (uint16_t *)a->out;
    p.M = (int)a->m;
    p.N = (int)a->n;
    p.K = (int)a->k;
    p.act = a->act;
    p.slope = (float)a->slope;
    /* more than 48 KiB of dynamic shared memory needs the kernel's opt-in, once per device */
    static unsigned char attr_set[PT_LA_MAX_DEVICES];
    int dev = 0;
    PT_CUDA_CHECK(cudaGetDevice(&dev));
    if (dev < 0 || dev >= PT_LA_MAX_DEVICES)
        return PT_FAIL(PT_ERR_DEVICE, "linear_act: device %d is beyond the %d this kernel keeps state for", dev,
                       PT_LA_MAX_DEVICES);
    if (!attr_set[dev]) {
        PT_CUDA_CHECK(cudaFuncSetAttribute(k_la_gemm_act, cudaFuncAttributeMaxDynamicSharedMemorySize, PT_LA_SMEM_BYTES));
        attr_set[dev] = 1;
    }
    const dim3 grid((unsigned)((a->n + PT_LA_BN - 1) / PT_LA_BN), (unsigned)((a->m + PT_LA_BM - 1) / PT_LA_BM));
    k_la_gemm_act<<<grid, PT_LA_THREADS, PT_LA_SMEM_BYTES, pt_cuda_compute_stream()>>>(p);
    pt_cuda_launch_check("linear_act (fused bf16 GEMM + activation)");
    return pt_cuda_check_pending();
}

/* h = x · Wᵀ by the "matmul" kernel (cuBLAS), then out = act(h) */
template <typename T>
static pt_status pt_la_cublas(const pt_linear_act_args *a, pt_dtype dt) {
    pt_matmul_kernel mm = (pt_matmul_kernel)pt_kernel_find("matmul", PT_DEV_CUDA, dt);
    if (!mm) return pt_kernel_missing("matmul", PT_DEV_CUDA, dt);
    pt_matmul_2d(mm, a->m, a->n, a->k, a->x, 0, a->k, a->w, 1, a->k, a->h); /* W passed transposed */
    const int64_t n = a->m * a->n;
    k_la_act<T><<<pt_cuda_blocks(n, PT_THREADS), PT_THREADS, 0, pt_cuda_compute_stream()>>>(
        (const T *)a->h, (T *)a->out, n, a->act, (typename pt_math<T>::type)a->slope);
    pt_cuda_launch_check("linear_act (activation after cuBLAS)");
    return pt_cuda_check_pending();
}

template <typename T>
static pt_status pt_la_forward(const pt_linear_act_args *a, pt_dtype dt) {
    int mode;
    PT_TRY(pt_la_mode(&mode));
    if (mode != PT_LA_FUSED) return pt_la_cublas<T>(a, dt);
    if (dt != PT_BF16)
        return PT_FAIL(PT_ERR_UNSUPPORTED, "linear_act on CUDA with PROTEUS_LINEAR_ACT=fused: the fused kernel takes "
                                           "bf16, got %s (cast x and W to bf16, or unset PROTEUS_LINEAR_ACT)",
                       pt_dtype_name(dt));
    char why[192];
    if (!pt_la_fused_supported(a, why, sizeof why))
        return PT_FAIL(PT_ERR_UNSUPPORTED, "linear_act on CUDA with PROTEUS_LINEAR_ACT=fused: x [%lld, %lld] · W [%lld, "
                                           "%lld]ᵀ bf16: %s (unset PROTEUS_LINEAR_ACT to use cuBLAS)",
                       (long long)a->m, (long long)a->k, (long long)a->n, (long long)a->k, why);
    return pt_la_fused(a);
}

template <typename T>
static pt_status pt_la_backward(const pt_linear_act_args *a) {
    const int64_t n = a->m * a->n;
    k_la_act_bwd<T><<<pt_cuda_blocks(n, PT_THREADS), PT_THREADS, 0, pt_cuda_compute_stream()>>>(
        (const T *)a->h, (const T *)a->g, (T *)a->dh, n, a->act, (typename pt_math<T>::type)a->slope);
    pt_cuda_launch_check("linear_act backward (activation derivative)");
    return pt_cuda_check_pending();
}

static pt_status cu_linear_act_bf16(const pt_linear_act_args *a) { return pt_la_forward<pt_bf16>(a, PT_BF16); }
static pt_status cu_linear_act_f32(const pt_linear_act_args *a) { return pt_la_forward<float>(a, PT_F32); }
static pt_status cu_linear_act_f64(const pt_linear_act_args *a) { return pt_la_forward<double>(a, PT_F64); }
static pt_status cu_linear_act_bwd_bf16(const pt_linear_act_args *a) { return pt_la_backward<pt_bf16>(a); }
static pt_status cu_linear_act_bwd_f32(const pt_linear_act_args *a) { return pt_la_backward<float>(a); }
static pt_status cu_linear_act_bwd_f64(const pt_linear_act_args *a) { return pt_la_backward<double>(a); }
PT_REGISTER_KERNEL(linear_act, PT_DEV_CUDA, PT_BF16, cu_linear_act_bf16)
PT_REGISTER_KERNEL(linear_act, PT_DEV_CUDA, PT_F32, cu_linear_act_f32)
PT_REGISTER_KERNEL(linear_act, PT_DEV_CUDA, PT_F64, cu_linear_act_f64)
PT_REGISTER_KERNEL(linear_act_bwd, PT_DEV_CUDA, PT_BF16, cu_linear_act_bwd_bf16)
PT_REGISTER_KERNEL(linear_act_bwd, PT_DEV_CUDA, PT_F32, cu_linear_act_bwd_f32)
PT_REGISTER_KERNEL(linear_act_bwd, PT_DEV_CUDA, PT_F64, cu_linear_act_bwd_f64)
