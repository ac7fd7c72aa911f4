// tests/emu/emu_warp.h — the CPU emulator of CUDA's execution model that the emulation tests share
// (tests/emu/attention_emu.cpp, linear_act_emu.cpp, fused_norm_emu.cpp; attention_emu.cpp's header says
// what such a test catches and what it cannot). A test defines, before including this file:
//   PT_EMU_NAME         its name, the prefix of every failure message ("attention_emu")
//   PT_EMU_SMEM         the name of the kernels' `extern __shared__ unsigned char NAME[]` (the dynamic
//                       shared memory array; it becomes this file's one buffer; any unused name when the
//                       kernels have none)
//   PT_EMU_INPUTS_WHAT  what cp.async may read, for its error message ("q, k, v, gy")
// and then #includes its extracted kernels (tests/emu/extract_kernels.cmake) after this file (and after
// tests/emu/emu_host.h when the extraction keeps the launchers). Include path: tests/emu/shim first
// (the CUDA headers, see tests/emu/shim/cuda_runtime.h), then src/kernels/cuda (this file includes the
// real pt_cuda_common.cuh, so the kernels use the device helpers unchanged). Compile with -std=c++20
// -O2 -ffp-contract=off -fno-strict-aliasing -Wno-unknown-pragmas; not under ASan (swapcontext stacks).
//
// What is here:
//   CUDA surface  threadIdx / blockIdx (uint3), blockDim / gridDim (dim3), blocks of up to 1024 threads
//                 in up to 3 dimensions, grids in 3 dimensions
//   fibers        one ucontext per CUDA thread of a block, on one OS thread (stacks with guard pages);
//                 barriers and warp collectives switch fibers, so a launch is serial and deterministic
//   barriers      __syncthreads, __syncwarp (full mask); a scheduler pass in which no thread moves is a
//                 deadlock report (divergent barrier, or a collective after some lanes returned)
//   warp ops      __shfl_sync / __shfl_up_sync / __shfl_down_sync / __shfl_xor_sync on any 1..8-byte
//                 trivially copyable type, with width; __ballot_sync / __all_sync / __any_sync.
//                 Full warps and mask 0xffffffff only (anything else fails with a message)
//   atomics       atomicAdd (int, unsigned, unsigned long long, float, double), atomicSub, atomicMin /
//                 atomicMax (int, unsigned, long long, unsigned long long), atomicExch, atomicCAS,
//                 atomicAnd / atomicOr / atomicXor: plain read-modify-writes (no thread switches inside
//                 one), applied in thread order — the GPU's order differs, float sums are not bit-stable
//   shared memory dynamic: this file's one PT_EMU_SMEM buffer, NaN bytes at each block's start, writes
//                 beyond the launch's size fail; static (`__shared__ T v[N]` in a kernel): rewritten
//                 by extract_kernels.cmake into a static variable plus pt_emu_shared_note, which fills it
//                 with NaN bytes at its first use in each block and checks CUDA's 48 KiB static limit
//   PTX helpers   cp.async (lands at once), ldmatrix .x4 (plain, .trans), mma.m16n8k16 bf16, under the
//                 names of src/kernels/cuda/pt_mma.cuh (never extracted), from the PTX ISA's definitions
//   launches      pt_emu_run_grid (a test names the grid itself) and pt_emu_launch_kernel, what
//                 extract_kernels.cmake writes for `k<...><<<grid, block, smem, stream>>>(args)` in the
//                 kept launchers: CUDA's configuration limits checked (empty grid, > 1024 threads, ...),
//                 each launch recorded in g_pt_emu_launches (name as written, grid, block, smem)
//   tensors       pt_emu_buf: NaN guard zones on both sides
#ifndef PT_EMU_WARP_H
#define PT_EMU_WARP_H

#if !defined(PT_EMU_NAME) || !defined(PT_EMU_SMEM) || !defined(PT_EMU_INPUTS_WHAT)
#error "define PT_EMU_NAME, PT_EMU_SMEM and PT_EMU_INPUTS_WHAT before including emu_warp.h"
#endif

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include <cuda_runtime.h>     // tests/emu/shim: qualifiers, vector types, dim3, intrinsics
#include "pt_cuda_common.cuh" // the real device helpers (pt_bf16, pt_ld / pt_st, pt_pack, ...)

// ---------------------------------------------------------------- CUDA surface
static uint3 threadIdx, blockIdx;
static dim3 blockDim, gridDim;

static int g_cur; // the running fiber = linear thread index in the block

// Called on a fiber's stack: exit() would run the static destructors, which free state under the
// running code; flush and leave at once instead.
[[noreturn]] static void pt_emu_fail(const char *what) {
    fprintf(stderr, PT_EMU_NAME ": %s (block %u,%u,%u thread %u,%u,%u)\nFAIL\n", what, blockIdx.x, blockIdx.y,
            blockIdx.z, threadIdx.x, threadIdx.y, threadIdx.z);
    fflush(nullptr);
    _Exit(1);
}

// dynamic shared memory: the kernels' `extern __shared__ unsigned char PT_EMU_SMEM[]` names this array
constexpr size_t PT_EMU_SMEM_MAX = 256 * 1024;
alignas(16) unsigned char PT_EMU_SMEM[PT_EMU_SMEM_MAX];
static size_t g_smem_bytes; // the current launch's dynamic size
constexpr size_t PT_EMU_SM90_SMEM = 227 * 1024;  // opt-in maximum per block on sm_90 (static + dynamic)
constexpr size_t PT_EMU_STATIC_SMEM = 48 * 1024; // static __shared__ limit per block

// ---------------------------------------------------------------- fibers: one per CUDA thread
constexpr int PT_EMU_MAX_THREADS = 1024;
constexpr size_t PT_EMU_STACK = 256 * 1024;
struct pt_emu_fiber {
    ucontext_t ctx;
    bool done;
};
static pt_emu_fiber g_fib[PT_EMU_MAX_THREADS];
static ucontext_t g_sched;
static unsigned long g_progress; // barrier arrivals; a scheduler pass without any is a deadlock
static std::function<void()> g_body;

// the stacks: reserved once (pages are touched only as used), each below a PROT_NONE guard page so an
// overflow faults instead of corrupting the next fiber
static char *pt_emu_stack(int i) {
    static char *base = nullptr;
    static size_t page = 0;
    if (!base) {
        page = (size_t)sysconf(_SC_PAGESIZE);
        const size_t slot = PT_EMU_STACK + page, total = slot * PT_EMU_MAX_THREADS;
        void *p = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) pt_emu_fail("cannot reserve the fiber stacks (mmap)");
        base = (char *)p;
        for (int k = 0; k < PT_EMU_MAX_THREADS; k++) mprotect(base + (size_t)k * slot, page, PROT_NONE);
    }
    return base + (size_t)i * (PT_EMU_STACK + page) + page;
}

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
static int g_nthreads; // threads of the running block
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
static void pt_emu_wbar() { pt_emu_bar_wait(g_warp_bar[g_cur / 32]); }

// a warp collective: mask 0xffffffff over a full warp of 32 threads
static void pt_emu_full_warp(const char *what, unsigned mask) {
    if (mask != 0xffffffffu) {
        char m[160];
        snprintf(m, sizeof m, "%s with mask 0x%08x: only the full mask is emulated", what, mask);
        pt_emu_fail(m);
    }
    if ((g_cur / 32 + 1) * 32 > g_nthreads) {
        char m[160];
        snprintf(m, sizeof m, "%s in a partial warp (block of %d threads): not emulated", what, g_nthreads);
        pt_emu_fail(m);
    }
}
[[maybe_unused]] static void __syncwarp(unsigned mask = 0xffffffffu) {
    pt_emu_full_warp("__syncwarp", mask);
    pt_emu_wbar();
}

// getcontext / swapcontext return twice: each sits in a function of its own with nothing live across it
__attribute__((noinline)) static void pt_emu_init_fiber(int i) {
    getcontext(&g_fib[i].ctx);
    g_fib[i].ctx.uc_stack.ss_sp = pt_emu_stack(i);
    g_fib[i].ctx.uc_stack.ss_size = PT_EMU_STACK;
    g_fib[i].ctx.uc_link = &g_sched;
    makecontext(&g_fib[i].ctx, pt_emu_entry, 0);
    g_fib[i].done = false;
}

// runs fiber i until it waits or ends
__attribute__((noinline)) static void pt_emu_resume(int i) {
    g_cur = i;
    threadIdx = {(unsigned)i % blockDim.x, (unsigned)i / blockDim.x % blockDim.y,
                 (unsigned)i / (blockDim.x * blockDim.y)};
    swapcontext(&g_sched, &g_fib[i].ctx);
}

static void pt_emu_run_block(int n) {
    if (n < 1 || n > PT_EMU_MAX_THREADS) pt_emu_fail("block size outside 1..1024");
    g_nthreads = n;
    g_block_bar = {n, 0, 0};
    for (int w = 0; w < (n + 31) / 32; w++) g_warp_bar[w] = {std::min(32, n - 32 * w), 0, 0};
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

// ---------------------------------------------------------------- warp shuffles and votes
static uint64_t g_xch[PT_EMU_MAX_THREADS / 32][32]; // one exchange slot per lane

// every lane posts v, then reads lane src's post
template <typename T>
static T pt_emu_exchange(const char *what, unsigned mask, T v, int src) {
    static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "shuffles move 1..8-byte values");
    pt_emu_full_warp(what, mask);
    const int w = g_cur / 32, l = g_cur % 32;
    memcpy(&g_xch[w][l], &v, sizeof v);
    pt_emu_wbar();
    T r;
    memcpy(&r, &g_xch[w][src], sizeof r);
    pt_emu_wbar();
    return r;
}
static int pt_emu_width(const char *what, int width) {
    if (width < 1 || width > 32 || (width & (width - 1))) {
        char m[120];
        snprintf(m, sizeof m, "%s: width %d is not a power of 2 up to 32", what, width);
        pt_emu_fail(m);
    }
    return width;
}
// lanes of a width-segment may read earlier segments but not later ones (then: their own value)
template <typename T>
[[maybe_unused]] static T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
    const int l = g_cur % 32, wd = pt_emu_width("__shfl_sync", width);
    return pt_emu_exchange("__shfl_sync", mask, v, l / wd * wd + ((src % wd) + wd) % wd);
}
template <typename T>
[[maybe_unused]] static T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    const int l = g_cur % 32, wd = pt_emu_width("__shfl_up_sync", width), s = l - (int)delta;
    return pt_emu_exchange("__shfl_up_sync", mask, v, s < l / wd * wd ? l : s);
}
template <typename T>
[[maybe_unused]] static T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    const int l = g_cur % 32, wd = pt_emu_width("__shfl_down_sync", width), s = l + (int)delta;
    return pt_emu_exchange("__shfl_down_sync", mask, v, s >= (l / wd + 1) * wd ? l : s);
}
template <typename T>
[[maybe_unused]] static T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    const int l = g_cur % 32, wd = pt_emu_width("__shfl_xor_sync", width), s = l ^ lane_mask;
    return pt_emu_exchange("__shfl_xor_sync", mask, v, s >= (l / wd + 1) * wd ? l : s);
}
[[maybe_unused]] static unsigned __ballot_sync(unsigned mask, int pred) {
    pt_emu_full_warp("__ballot_sync", mask);
    const int w = g_cur / 32, l = g_cur % 32;
    g_xch[w][l] = pred != 0;
    pt_emu_wbar();
    unsigned r = 0;
    for (int k = 0; k < 32; k++) r |= (unsigned)g_xch[w][k] << k;
    pt_emu_wbar();
    return r;
}
[[maybe_unused]] static int __all_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) == 0xffffffffu; }
[[maybe_unused]] static int __any_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) != 0; }

// ---------------------------------------------------------------- atomics (no fiber switch inside)
#define PT_EMU_ATOMIC(NAME, T, EXPR)                  \
    [[maybe_unused]] static T NAME(T *p, T v) {       \
        const T old = *p;                             \
        *p = (EXPR);                                  \
        return old;                                   \
    }
#define PT_EMU_ATOMIC_INT(T)                                   \
    PT_EMU_ATOMIC(atomicAdd, T, (T)(old + v))                  \
    PT_EMU_ATOMIC(atomicSub, T, (T)(old - v))                  \
    PT_EMU_ATOMIC(atomicMin, T, v < old ? v : old)             \
    PT_EMU_ATOMIC(atomicMax, T, v > old ? v : old)             \
    PT_EMU_ATOMIC(atomicExch, T, v)                            \
    PT_EMU_ATOMIC(atomicAnd, T, (T)(old & v))                  \
    PT_EMU_ATOMIC(atomicOr, T, (T)(old | v))                   \
    PT_EMU_ATOMIC(atomicXor, T, (T)(old ^ v))                  \
    [[maybe_unused]] static T atomicCAS(T *p, T cmp, T v) {    \
        const T old = *p;                                      \
        if (old == cmp) *p = v;                                \
        return old;                                            \
    }
PT_EMU_ATOMIC_INT(int)
PT_EMU_ATOMIC_INT(unsigned)
PT_EMU_ATOMIC_INT(unsigned long long)
PT_EMU_ATOMIC(atomicMin, long long, v < old ? v : old)
PT_EMU_ATOMIC(atomicMax, long long, v > old ? v : old)
PT_EMU_ATOMIC(atomicAdd, float, old + v)
PT_EMU_ATOMIC(atomicAdd, double, old + v)
PT_EMU_ATOMIC(atomicExch, float, v)
#undef PT_EMU_ATOMIC_INT
#undef PT_EMU_ATOMIC

// ---------------------------------------------------------------- static shared memory
// extract_kernels.cmake turns `__shared__ T v[N];` into `static T v[N]; pt_emu_shared_note(v, sizeof v);`:
// the first thread of a block to get there fills v with NaN bytes (unwritten entries read as NaN)
struct pt_emu_svar {
    void *p;
    size_t n;
    unsigned long block;
};
static std::vector<pt_emu_svar> g_svars;
static unsigned long g_block_serial; // counts every block run
static size_t g_static_bytes;        // static shared memory the running block has touched
[[maybe_unused]] static void pt_emu_shared_note(void *p, size_t n) {
    auto it = std::find_if(g_svars.begin(), g_svars.end(), [p](const pt_emu_svar &v) { return v.p == p; });
    if (it == g_svars.end()) it = g_svars.insert(g_svars.end(), {p, n, 0});
    if (it->block == g_block_serial) return;
    it->block = g_block_serial;
    memset(p, 0xff, n);
    g_static_bytes += n;
    if (g_static_bytes > PT_EMU_STATIC_SMEM || g_static_bytes + g_smem_bytes > PT_EMU_SM90_SMEM) {
        char m[200];
        snprintf(m, sizeof m, "shared memory: %zu bytes static + %zu dynamic (limits: 48 KiB static, 227 KiB in all)",
                 g_static_bytes, g_smem_bytes);
        pt_emu_fail(m);
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

// ---------------------------------------------------------------- bf16 (the tests' own, for references)
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

static const uint16_t *g_pbuf[PT_EMU_MAX_THREADS / 32][32];

// ldmatrix.x4: lane l gives the address of row l%8 of matrix l/8; r[j] holds matrix j's
// (row l/4, cols 2(l%4), +1), or with .trans (rows 2(l%4), +1; col l/4)
static void pt_emu_ldsm(uint32_t r[4], const uint16_t *p, bool trans) {
    if (((uintptr_t)p & 15u) || !pt_emu_in_smem(p, 16))
        pt_emu_fail("ldmatrix row address unaligned or outside the launch's dynamic shared memory");
    pt_emu_full_warp("ldmatrix", 0xffffffffu);
    const int w = g_cur / 32, l = g_cur % 32;
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
    pt_emu_full_warp("mma.sync", 0xffffffffu);
    const int w = g_cur / 32, l = g_cur % 32;
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
// CUDA's launch limits (sm_90): a violation is cudaErrorInvalidConfiguration on the GPU, a failure here
static void pt_emu_check_config(const char *name, dim3 grid, dim3 block, size_t smem) {
    const unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
    const char *why = nullptr;
    if (grid.x == 0 || grid.y == 0 || grid.z == 0) why = "an empty grid";
    else if (grid.x > 2147483647u || grid.y > 65535u || grid.z > 65535u) why = "a grid beyond 2^31-1 x 65535 x 65535";
    else if (threads == 0 || threads > 1024 || block.z > 64) why = "a block of 0 or more than 1024 threads (or z > 64)";
    else if (smem > PT_EMU_SM90_SMEM || smem > PT_EMU_SMEM_MAX) why = "more than 227 KiB of dynamic shared memory";
    if (!why) return;
    fprintf(stderr,
            PT_EMU_NAME ": launch of %s with grid (%u,%u,%u), block (%u,%u,%u), %zu bytes of shared memory: %s "
                        "(cudaErrorInvalidConfiguration on the GPU)\nFAIL\n",
            name, grid.x, grid.y, grid.z, block.x, block.y, block.z, smem, why);
    exit(1);
}

// 1 + the highest byte of the dynamic buffer at or above `from` that is not 0xff (0: none)
static size_t pt_emu_smem_top(size_t from) {
    static unsigned char ones[4096];
    if (ones[0] != 0xff) memset(ones, 0xff, sizeof ones);
    for (size_t end = PT_EMU_SMEM_MAX; end > from;) {
        const size_t beg = std::max(from, end >= sizeof ones ? end - sizeof ones : 0);
        if (memcmp(PT_EMU_SMEM + beg, ones, end - beg) != 0)
            for (size_t i = end; i > beg; i--)
                if (PT_EMU_SMEM[i - 1] != 0xff) return i;
        end = beg;
    }
    return 0;
}

// Runs kern on every block of the grid for which want(bx, by) is true (all when want is empty), with
// `smem` bytes of dynamic shared memory. Shared memory starts as NaN bytes for every block; a block
// that writes the dynamic buffer beyond `smem` is a failure (so only the bytes below the last block's
// `smem` need refilling).
static size_t g_smem_dirty = PT_EMU_SMEM_MAX; // bytes of the buffer that may not be 0xff
static void pt_emu_run(const char *name, const std::function<void()> &kern, dim3 grid, dim3 block, size_t smem,
                       const std::function<bool(unsigned, unsigned)> &want = {}) {
    pt_emu_check_config(name, grid, block, smem);
    gridDim = grid;
    blockDim = block;
    g_smem_bytes = smem;
    g_body = kern;
    for (unsigned bz = 0; bz < grid.z; bz++)
        for (unsigned by = 0; by < grid.y; by++)
            for (unsigned bx = 0; bx < grid.x; bx++) {
                if (want && !want(bx, by)) continue;
                blockIdx = {bx, by, bz};
                g_block_serial++;
                g_static_bytes = 0;
                memset(PT_EMU_SMEM, 0xff, std::max(smem, g_smem_dirty)); // NaN bf16 / f32 / f64
                g_smem_dirty = smem;
                pt_emu_run_block((int)(block.x * block.y * block.z));
                const size_t top = pt_emu_smem_top(smem);
                if (top > smem) {
                    fprintf(stderr, PT_EMU_NAME ": %s wrote shared memory up to byte %zu, its launch gives %zu\nFAIL\n",
                            name, top, smem);
                    exit(1);
                }
            }
}

// the tests' own launches: a gx × gy grid of 1-D blocks
[[maybe_unused]] static void pt_emu_run_grid(const char *name, const std::function<void()> &kern, unsigned gx,
                                             unsigned gy, int threads, size_t smem,
                                             const std::function<bool(unsigned, unsigned)> &want = {}) {
    pt_emu_run(name, kern, dim3(gx, gy), dim3((unsigned)threads), smem, want);
}

// `k<...><<<grid, block, smem, stream>>>(args)` as extract_kernels.cmake rewrites it:
// pt_emu_launch_kernel(k<...>, "k<...>", grid, block, smem, stream)(args). The arguments convert to the
// kernel's parameter types at the call (as CUDA's do); each CUDA thread gets its own copies.
struct pt_emu_launch_rec {
    std::string name; // the kernel as the launcher writes it, template arguments included ("k_x<T, V>")
    dim3 grid, block;
    size_t smem;
};
static std::vector<pt_emu_launch_rec> g_pt_emu_launches;

template <typename... P>
struct pt_emu_launcher {
    void (*kern)(P...);
    const char *name;
    dim3 grid, block;
    size_t smem;
    void operator()(P... args) const {
        g_pt_emu_launches.push_back({name, grid, block, smem});
        pt_emu_run(name, [&] { kern(args...); }, grid, block, smem);
    }
};
template <typename... P>
[[maybe_unused]] static pt_emu_launcher<P...> pt_emu_launch_kernel(void (*kern)(P...), const char *name, dim3 grid,
                                                                   dim3 block, size_t smem = 0,
                                                                   cudaStream_t stream = nullptr) {
    (void)stream; // launches run at once, in program order
    return {kern, name, grid, block, smem};
}

// a tensor with NaN guard zones on both sides (payload 0xbf, unlike any NaN the kernels compute)
template <typename E>
struct pt_emu_buf {
    static constexpr size_t G = 64;
    std::vector<E> all;
    size_t n;
    static E guard() {
        E e;
        memset((void *)&e, 0xbf, sizeof e);
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
            if (memcmp((const void *)&all[i], &g, sizeof g) || memcmp((const void *)&all[G + n + i], &g, sizeof g))
                return false;
        return true;
    }
};

#endif
