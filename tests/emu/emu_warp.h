// tests/emu/emu_warp.h — the CPU emulator of CUDA's warp-level instructions that the emulation tests
// share (tests/emu/attention_emu.cpp, tests/emu/linear_act_emu.cpp; read attention_emu.cpp's header for
// what such a test catches and what it cannot). A test defines, before including this file:
//   PT_EMU_NAME         its name, the prefix of every failure message ("attention_emu")
//   PT_EMU_SMEM         the name of the kernels' `extern __shared__ unsigned char NAME[]` (the dynamic
//                       shared memory array; it becomes this file's one buffer)
//   PT_EMU_INPUTS_WHAT  what cp.async may read, for its error message ("q, k, v, gy")
// and then #includes its extracted kernels (tests/emu/extract_kernels.cmake) after this file. The
// kernels' inline-PTX helpers (src/kernels/cuda/pt_mma.cuh) are never extracted: this file defines the
// same names on pt_emu_cp16 / pt_emu_ldsm / pt_emu_mma.
//
// What is here: the CUDA surface (threadIdx / blockIdx / blockDim / gridDim, the qualifiers as empty
// macros, __syncthreads, __shfl_xor_sync), fibers (one ucontext per CUDA thread of a block, run on one
// OS thread; barriers and warp collectives switch fibers, so a launch is serial and deterministic),
// cp.async / ldmatrix (.x4, plain and .trans) / mma.m16n8k16 bf16 written from the PTX ISA's fragment
// definitions, bf16 conversions identical to src/kernels/cuda/pt_cuda_common.cuh, a grid launcher that
// fills shared memory with NaN bytes and checks how much of it a block wrote, and tensors with NaN
// guard zones (pt_emu_buf).
#ifndef PT_EMU_WARP_H
#define PT_EMU_WARP_H

#if !defined(PT_EMU_NAME) || !defined(PT_EMU_SMEM) || !defined(PT_EMU_INPUTS_WHAT)
#error "define PT_EMU_NAME, PT_EMU_SMEM and PT_EMU_INPUTS_WHAT before including emu_warp.h"
#endif

#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

// ---------------------------------------------------------------- CUDA surface
struct pt_emu_dim3 {
    unsigned x = 0, y = 0, z = 0;
};
static pt_emu_dim3 threadIdx, blockIdx, blockDim, gridDim;
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(x)
#define __shared__

// Called on a fiber's stack: exit() would run the static destructors, which free the fiber stacks
// (g_stacks) under the running code; flush and leave at once instead.
[[noreturn]] static void pt_emu_fail(const char *what) {
    fprintf(stderr, PT_EMU_NAME ": %s (block %u,%u thread %u)\nFAIL\n", what, blockIdx.x, blockIdx.y, threadIdx.x);
    fflush(nullptr);
    _Exit(1);
}

// dynamic shared memory: the kernels' `extern __shared__ unsigned char PT_EMU_SMEM[]` names this array
constexpr size_t PT_EMU_SMEM_MAX = 256 * 1024;
alignas(16) unsigned char PT_EMU_SMEM[PT_EMU_SMEM_MAX];
static size_t g_smem_bytes; // the current launch's dynamic size

// ---------------------------------------------------------------- fibers: one per CUDA thread
constexpr int PT_EMU_MAX_THREADS = 256;
constexpr size_t PT_EMU_STACK = 256 * 1024;
struct pt_emu_fiber {
    ucontext_t ctx;
    bool done;
};
static pt_emu_fiber g_fib[PT_EMU_MAX_THREADS];
static std::vector<char> g_stacks(PT_EMU_MAX_THREADS * PT_EMU_STACK);
static ucontext_t g_sched;
static int g_cur;
static unsigned long g_progress; // barrier arrivals; a scheduler pass without any is a deadlock
static std::function<void()> g_body;

static void pt_emu_yield() { swapcontext(&g_fib[g_cur].ctx, &g_sched); }
static void pt_emu_entry() {
    g_body();
    g_fib[g_cur].done = true; // returns to uc_link = the scheduler
}

struct pt_emu_bar {
    int need, count;
    unsigned gen;
};
static pt_emu_bar g_block_bar, g_warp_bar[PT_EMU_MAX_THREADS / 32];
static void pt_emu_bar_wait(pt_emu_bar &b) {
    const unsigned gen = b.gen;
    g_progress++;
    if (++b.count == b.need) {
        b.count = 0;
        b.gen++;
        return;
    }
    while (b.gen == gen) pt_emu_yield();
}
static void __syncthreads() { pt_emu_bar_wait(g_block_bar); }
static void pt_emu_wbar() { pt_emu_bar_wait(g_warp_bar[threadIdx.x / 32]); }

// getcontext / swapcontext return twice: each sits in a function of its own with nothing live across it
__attribute__((noinline)) static void pt_emu_init_fiber(int i) {
    getcontext(&g_fib[i].ctx);
    g_fib[i].ctx.uc_stack.ss_sp = g_stacks.data() + (size_t)i * PT_EMU_STACK;
    g_fib[i].ctx.uc_stack.ss_size = PT_EMU_STACK;
    g_fib[i].ctx.uc_link = &g_sched;
    makecontext(&g_fib[i].ctx, pt_emu_entry, 0);
    g_fib[i].done = false;
}

// runs fiber i until it waits or ends
__attribute__((noinline)) static void pt_emu_resume(int i) {
    g_cur = i;
    threadIdx = {(unsigned)i, 0, 0};
    swapcontext(&g_sched, &g_fib[i].ctx);
}

static void pt_emu_run_block(int n) {
    if (n > PT_EMU_MAX_THREADS || n % 32) pt_emu_fail("block size is not a multiple of 32 up to PT_EMU_MAX_THREADS");
    g_block_bar = {n, 0, 0};
    for (auto &w : g_warp_bar) w = {32, 0, 0};
    for (int i = 0; i < n; i++) pt_emu_init_fiber(i);
    int live = n;
    while (live > 0) {
        const unsigned long before = g_progress;
        int finished = 0;
        for (int i = 0; i < n; i++) {
            if (g_fib[i].done) continue;
            pt_emu_resume(i);
            if (g_fib[i].done) live--, finished++;
        }
        if (live > 0 && finished == 0 && g_progress == before)
            pt_emu_fail("deadlock: threads wait at a barrier that the others never reach (divergent "
                        "__syncthreads or a warp collective after some lanes returned)");
    }
}

// ---------------------------------------------------------------- global memory bookkeeping
struct pt_emu_region {
    const char *p;
    size_t n;
};
static std::vector<pt_emu_region> g_inputs; // what cp.async may read

static bool pt_emu_in_smem(const void *p, size_t n) {
    const unsigned char *c = (const unsigned char *)p;
    return c >= PT_EMU_SMEM && c + n <= PT_EMU_SMEM + g_smem_bytes;
}

// ---------------------------------------------------------------- bf16 (as pt_cuda_common.cuh)
static float pt_emu_bf(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static uint16_t pt_emu_tobf(float f) { // round to nearest even; NaN stays NaN
    uint32_t u;
    memcpy(&u, &f, 4);
    if (std::isnan(f)) return (uint16_t)((u >> 16) | 0x40u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
[[maybe_unused]] static float pt_bf16_bits_to_f32(uint16_t h) { return pt_emu_bf(h); }
[[maybe_unused]] static uint16_t pt_f32_to_bf16_bits(float f) { return pt_emu_tobf(f); }

// ---------------------------------------------------------------- the inline-PTX instructions
// cp.async.cg 16 bytes, completing at once (so wait_group has nothing to wait for)
static void pt_emu_cp16(void *dst, const void *src, bool valid) {
    if (((uintptr_t)dst & 15u) || !pt_emu_in_smem(dst, 16))
        pt_emu_fail("cp.async destination unaligned or outside the launch's dynamic shared memory");
    if (!valid) {
        memset(dst, 0, 16);
        return;
    }
    const char *s = (const char *)src;
    bool ok = ((uintptr_t)s & 15u) == 0 && std::any_of(g_inputs.begin(), g_inputs.end(), [s](const pt_emu_region &r) {
                  return s >= r.p && s + 16 <= r.p + r.n;
              });
    if (!ok) pt_emu_fail("cp.async source unaligned or outside " PT_EMU_INPUTS_WHAT);
    memcpy(dst, src, 16);
}

static float g_fbuf[PT_EMU_MAX_THREADS / 32][32];
static const uint16_t *g_pbuf[PT_EMU_MAX_THREADS / 32][32];
[[maybe_unused]] static float __shfl_xor_sync(unsigned mask, float v, int o) {
    if (mask != 0xffffffffu) pt_emu_fail("__shfl_xor_sync with a partial mask is not emulated");
    const int w = threadIdx.x / 32, l = threadIdx.x % 32;
    g_fbuf[w][l] = v;
    pt_emu_wbar();
    const float r = g_fbuf[w][l ^ o];
    pt_emu_wbar();
    return r;
}

// ldmatrix.x4: lane l gives the address of row l%8 of matrix l/8; r[j] holds matrix j's
// (row l/4, cols 2(l%4), +1), or with .trans (rows 2(l%4), +1; col l/4)
static void pt_emu_ldsm(uint32_t r[4], const uint16_t *p, bool trans) {
    if (((uintptr_t)p & 15u) || !pt_emu_in_smem(p, 16))
        pt_emu_fail("ldmatrix row address unaligned or outside the launch's dynamic shared memory");
    const int w = threadIdx.x / 32, l = threadIdx.x % 32;
    g_pbuf[w][l] = p;
    pt_emu_wbar();
    for (int j = 0; j < 4; j++) {
        uint16_t e0, e1;
        if (!trans) {
            const uint16_t *row = g_pbuf[w][j * 8 + l / 4];
            e0 = row[2 * (l % 4)];
            e1 = row[2 * (l % 4) + 1];
        } else {
            e0 = g_pbuf[w][j * 8 + 2 * (l % 4)][l / 4];
            e1 = g_pbuf[w][j * 8 + 2 * (l % 4) + 1][l / 4];
        }
        r[j] = (uint32_t)e0 | ((uint32_t)e1 << 16);
    }
    pt_emu_wbar();
}

// mma.m16n8k16.row.col f32.bf16: lane l (g = l/4, t = l%4) holds A (g,2t..) (g+8,2t..) (g,2t+8..)
// (g+8,2t+8..), B (k=2t..,n=g) (k=2t+8..,n=g), C (g,2t..) (g+8,2t..)
static uint32_t g_abuf[PT_EMU_MAX_THREADS / 32][32][4], g_bbuf[PT_EMU_MAX_THREADS / 32][32][2];
static float pt_emu_lo(uint32_t u) { return pt_emu_bf((uint16_t)(u & 0xffffu)); }
static float pt_emu_hi(uint32_t u) { return pt_emu_bf((uint16_t)(u >> 16)); }
static void pt_emu_mma(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    const int w = threadIdx.x / 32, l = threadIdx.x % 32;
    for (int i = 0; i < 4; i++) g_abuf[w][l][i] = a[i];
    g_bbuf[w][l][0] = b0;
    g_bbuf[w][l][1] = b1;
    pt_emu_wbar();
    float A[16][16], B[16][8];
    for (int x = 0; x < 32; x++) {
        const int g = x / 4, t = x % 4;
        const uint32_t *ar = g_abuf[w][x], *br = g_bbuf[w][x];
        A[g][2 * t] = pt_emu_lo(ar[0]), A[g][2 * t + 1] = pt_emu_hi(ar[0]);
        A[g + 8][2 * t] = pt_emu_lo(ar[1]), A[g + 8][2 * t + 1] = pt_emu_hi(ar[1]);
        A[g][2 * t + 8] = pt_emu_lo(ar[2]), A[g][2 * t + 9] = pt_emu_hi(ar[2]);
        A[g + 8][2 * t + 8] = pt_emu_lo(ar[3]), A[g + 8][2 * t + 9] = pt_emu_hi(ar[3]);
        B[2 * t][g] = pt_emu_lo(br[0]), B[2 * t + 1][g] = pt_emu_hi(br[0]);
        B[2 * t + 8][g] = pt_emu_lo(br[1]), B[2 * t + 9][g] = pt_emu_hi(br[1]);
    }
    const int g = l / 4, t = l % 4;
    const int rows[4] = {g, g, g + 8, g + 8}, cols[4] = {2 * t, 2 * t + 1, 2 * t, 2 * t + 1};
    float out[4];
    for (int i = 0; i < 4; i++) {
        float s = c[i];
        for (int k = 0; k < 16; k++) s += A[rows[i]][k] * B[k][cols[i]];
        out[i] = s;
    }
    pt_emu_wbar();
    for (int i = 0; i < 4; i++) c[i] = out[i];
}

// ---------------------------------------------------------------- src/kernels/cuda/pt_mma.cuh, emulated
[[maybe_unused]] static void pt_mma_cp16(void *dst, const void *src, bool valid) { pt_emu_cp16(dst, src, valid); }
[[maybe_unused]] static void pt_mma_commit() {}
template <int N>
static void pt_mma_wait() {}
[[maybe_unused]] static void pt_mma_ldsm(uint32_t r[4], const uint16_t *p) { pt_emu_ldsm(r, p, false); }
[[maybe_unused]] static void pt_mma_ldsm_t(uint32_t r[4], const uint16_t *p) { pt_emu_ldsm(r, p, true); }
[[maybe_unused]] static void pt_mma_m16n8k16(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    pt_emu_mma(c, a, b0, b1);
}
[[maybe_unused]] static uint32_t pt_mma_pack(float lo, float hi) {
    return (uint32_t)pt_emu_tobf(lo) | ((uint32_t)pt_emu_tobf(hi) << 16);
}

// ---------------------------------------------------------------- launches
constexpr size_t PT_EMU_SM90_SMEM = 227 * 1024; // opt-in maximum per block on sm_90

// Runs kern on the blocks (bx, by) of a gx × gy grid for which want(bx, by) is true (all when want is
// empty), `threads` fibers per block, with `smem` bytes of dynamic shared memory. Shared memory starts as
// NaN bytes for every block; a block that writes beyond `smem` is a failure.
static void pt_emu_run_grid(const char *name, const std::function<void()> &kern, unsigned gx, unsigned gy,
                            int threads, size_t smem, const std::function<bool(unsigned, unsigned)> &want = {}) {
    if (smem > PT_EMU_SM90_SMEM || smem > PT_EMU_SMEM_MAX) {
        fprintf(stderr, PT_EMU_NAME ": %s needs %zu bytes of shared memory (sm_90 allows %zu)\nFAIL\n", name, smem,
                PT_EMU_SM90_SMEM);
        exit(1);
    }
    gridDim = {gx, gy, 1};
    blockDim = {(unsigned)threads, 1, 1};
    g_smem_bytes = smem;
    g_body = kern;
    for (unsigned by = 0; by < gy; by++)
        for (unsigned bx = 0; bx < gx; bx++) {
            if (want && !want(bx, by)) continue;
            blockIdx = {bx, by, 0};
            memset(PT_EMU_SMEM, 0xff, sizeof PT_EMU_SMEM); // NaN bf16 / f32: reads of unwritten shared memory show
            pt_emu_run_block(threads);
            size_t top = sizeof PT_EMU_SMEM;
            while (top > 0 && PT_EMU_SMEM[top - 1] == 0xff) top--;
            if (top > smem) {
                fprintf(stderr, PT_EMU_NAME ": %s wrote shared memory up to byte %zu, its launch gives %zu\nFAIL\n",
                        name, top, smem);
                exit(1);
            }
        }
}

// a tensor with NaN guard zones on both sides (payload 0xbf, unlike any NaN the kernels compute)
template <typename E>
struct pt_emu_buf {
    static constexpr size_t G = 64;
    std::vector<E> all;
    size_t n;
    static E guard() {
        E e;
        memset(&e, 0xbf, sizeof e);
        ((unsigned char *)&e)[sizeof e - 1] = 0xff;
        return e;
    }
    pt_emu_buf(size_t n_, E fill) : all(n_ + 2 * G, fill), n(n_) {
        std::fill_n(all.begin(), G, guard());
        std::fill_n(all.end() - G, G, guard());
    }
    E *data() { return all.data() + G; }
    E &operator[](size_t i) { return all[G + i]; }
    bool guards_ok() const {
        const E g = guard();
        for (size_t i = 0; i < G; i++)
            if (memcmp(&all[i], &g, sizeof g) || memcmp(&all[G + n + i], &g, sizeof g)) return false;
        return true;
    }
};

#endif
