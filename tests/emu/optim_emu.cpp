// tests/emu/optim_emu.cpp — runs the kernels of src/kernels/cuda/optim.cu on the CPU, by emulation,
// through the file's own launchers and kernel registrations, and compares them with the CPU kernels of
// src/kernels/cpu/optim.c (the oracle; same argument structs, src/kernels/pt_optim.h). ctest: optim_emu
// (label "emu"), so every edit of optim.cu is checked without a GPU.
//
// How: tests/emu/extract_kernels.cmake cuts optim.cu from its first #include to its end marker into
// optim_kernels.inc (kernels, launchers, and the PT_REGISTER_KERNEL lines, so each kernel is looked up
// as the fronts do: pt_kernel_find(op, PT_DEV_CUDA, dt); the CPU ones are pt_kernel_find(op,
// PT_DEV_CPU, dt) from cpu/optim.c, linked in with src/kernels/dispatch.c). The `<<<...>>>` launches run
// on tests/emu/emu_warp.h (a fiber per CUDA thread, __syncthreads, static __shared__ NaN-filled per
// block); tests/emu/emu_host.h gives pt_cuda_alloc (guarded NaN workspaces), streams, and the graph-
// capture state; the shim's cublasSgemmStridedBatched runs Newton–Schulz's GEMMs. The lists go through
// a copy of the fronts' loop (src/kernels/optim.c pt_mt_run: parts of PT_MT_MAX = 48 tensors, scal +
// off·stride), with the step scalars in a guarded f64 "device" buffer laid out as optim.lua's prepare
// builds it (make_plan: a row of K doubles per param, or one shared row; Muon: one buffer, each group's
// launch a slice of it; EMA: one shared decay). This file defines cblas_sgemm (cpu/optim.c's NS GEMM) as
// a plain f32 loop in the shim's k order, so the NS comparison is exact and checks the kernels around
// the GEMMs (the real cuBLAS/OpenBLAS orders are tests/gpu/test_optim.lua's business).
//
// Kernels and cases:
//   adamw_multi     100 tensors (parts 48, 48, 4), sizes 0..16385 (float4 multiples, n % 4 = 1..3
//                   tails, 4095/4096/4097: one chunk and one element more or less, several chunks,
//                   empty tensors), views 16 bytes in (float4 path) and 4 or 8 bytes in (scalar path
//                   for that tensor), a row per tensor (wd 0 or not, maximize, betas, eps, step count)
//                   over 3 steps of carried state; Adam with one shared row (stride 0); 3 tensors
//   momentum_multi + apply_multi (Muon)  two groups = two launches over one scalar buffer (20 + 50
//                   params: matrices and banks [k, R, C], 1x1 to 64x100 and 33x130), u written into
//                   same-shape banks at the fronts' offsets (mostly not 16-byte aligned), nesterov on
//                   and off, rounding "scaled" and "unit", wd on and off, factor given or √max(1, R/C);
//                   2 steps; then 3 groups with Newton–Schulz (optim_ns) on the banks between momentum
//                   and apply: bf16, bf16 + MuonEq-R row norm with 4 per-step tuples, f32; round "none"
//   optim_ns alone  batch 5 in 2 slots (the pass loop), R > C (transposed), square f32 + row norm
//   ema_multi       60 tensors with one shared decay (EMA:prepare's layout), 10 with a decay each
//   sumsq_multi (f32, f64: 52 and 50 tensors, sizes 0..40000, > 48 tensors), one f32 tensor of
//                   1024·2048 + 3 (the PT_SUMSQ_PARTS cap); optim_sumsq per tensor (its own workspace);
//                   optim_norm; the device clip (sumsq_multi, norm, scale_multi) against the host clip
//                   (per-tensor sumsq, the host's sum, per-tensor scale); scale_multi's no-clip cases
//                   (max_norm 0, norm +inf, NaN, coef >= 1); optim_sumsq inside a capture: refused
//   per-tensor      adamw, sgd (no buffer, first step, dampening + maximize, nesterov + wd), momentum
//                   (both nesterov), apply (3 modes, wd on/off), ema, scale f32/f64, swa add/avg f32 and
//                   bf16; n = 0 (no launch), 1, 300 (views 1 element in), 5003
//   empty lists     3 empty tensors: no multi kernel launches
// Each op's launches are checked (kernel, grid, block; the multi kernels launch inside the
// PT_MT_LAUNCHER macro and the SWA ones inside PT_SWA_LAUNCH, so the recorded names are the macros'
// parameters "KERNEL" and "K": their grids tell them apart), no workspace left, no pending error.
// Outputs and state start as values (in-place) or NaN (u), inputs (g, w, u for the apply, x of the sums)
// must stay bitwise unchanged, and guard zones and the elements before an offset view stay NaN.
//
// Expected bits: every update (AdamW, SGD, momentum, apply, NS, EMA, scale, SWA) bitwise the CPU's —
// the kernels round each operation as the CPU does (_rn intrinsics, same order and the same f32
// constants from the same doubles). Σx² per tensor: within 2(n−1)·2^-53·Σ of the CPU (both sum n
// non-negative doubles, in different orders — the CPU sequentially or in 64 slices, the GPU in per-thread
// strides, block trees and a tree over ≤ 1024 partials — so each is within (n−1)·2^-53·Σ of the exact
// sum; the squares are the same doubles, exact for f32); the printed maximum is ~70–300·2^-53. Bitwise
// on the GPU side: per-tensor sumsq = sumsq_multi, host clip = device clip (norm and gradients); norm =
// the CPU's norm on the same sums; the scaled gradients = the CPU's scale_multi on the same norm.
//
// What it cannot catch: see attention_emu.cpp (races hidden by the serial fiber order, speed); here
// also nvcc contracting k_sumsq_part's `s += (double)x·x` into an FMA (exact for f32, last bits for f64,
// still the same kernel for both clips), cuBLAS's summation order, the per-tensor kernels' grid-stride
// loops beyond one pass (n > 2^28), and misaligned float4 accesses only through -fsanitize=alignment
// (this test's build has it where the compiler does: a trap, exit 1).
//
// Run: ctest --test-dir build -R optim_emu --output-on-failure   (or build/optim_emu; ~4 s).
// Build by hand (in the repository root; /tmp/emu exists):
//   cmake -DSRC=src/kernels/cuda/optim.cu -DOUT=/tmp/emu/optim_kernels.inc "-DBEGIN1=#include <cublas_v2.h>"
//     "-DEND1=/* ---------------------------------------------------------------- end (the emulator's extraction stops here) */"
//     -DBEGIN2= -P tests/emu/extract_kernels.cmake
//   (cd /tmp/emu && gcc -O2 -D_GNU_SOURCE -fopenmp -ffp-contract=off $(pkg-config --cflags openblas) -c
//     $OLDPWD/src/kernels/cpu/optim.c $OLDPWD/src/kernels/dispatch.c $OLDPWD/src/host/status.c)
//   g++ -std=c++20 -O2 -D_GNU_SOURCE -ffp-contract=off -fno-strict-aliasing -Wno-unknown-pragmas
//     -fsanitize=alignment -fno-sanitize-recover=alignment -Itests/emu/shim -I/tmp/emu -Isrc/kernels/cuda
//     $(pkg-config --cflags openblas) tests/emu/optim_emu.cpp /tmp/emu/optim.o /tmp/emu/dispatch.o
//     /tmp/emu/status.o -fopenmp -o /tmp/emu/optim_emu && /tmp/emu/optim_emu
// Mutation checks (manual; each must fail: FAIL and exit 1, or an alignment trap), added to the cmake -P
// line above as "-DMUTATE_FROM=..." "-DMUTATE_TO=..." (all checked when this test was written):
//   if (L.block0[mid] <= b) lo = mid;    -> ... < b ...                 a chunk found in the wrong tensor
//   int lo = 0, hi = L.a.n - 1;          -> ... L.a.n - 2;              a part's last tensor never found
//   int64_t end = s.lo + PT_MT_CHUNK;    -> ... PT_MT_CHUNK + 1;        chunks overlap by one element
//   i0 = nv << 2;                        -> i0 = nv << 1;               the tail redoes float4 elements
//   al &= ((uintptr_t)a->t[o][j] & 15u) == 0;  -> ... & 7u ...          float4 on 8-byte views (trap)
//   for (int o = 0; o < nops; o++)       -> ... o < nops - 1 ...        last operand's alignment (trap)
//   adamw_consts(L.a.scal + s.j * L.a.scal_stride)  -> adamw_consts(L.a.scal)   row 0 for every tensor
//   __fmul_rn(__fmul_rn(c.omb2, gi), gi) -> __fmul_rn(c.omb2, __fmul_rn(gi, gi))  another rounding order
//   u = nesterov ? __fadd_rn(g, __fmul_rn(mu, bi)) : bi;  -> u = nesterov ? bi : bi;
//   x = pt_bf16r(__fmul_rn(x, c.f));     -> x = __fmul_rn(pt_bf16r(x), c.f);   "scaled" rounds as "unit"
//   c.use_wd = wd != 0;                  -> c.use_wd = 0;               Muon weight decay dropped
//   __fsub_rn(w, e)                      -> __fsub_rn(e, w)             EMA moves away from w
//   for (int q = blockDim.x / 2; q > 0; q >>= 1)  -> ... q > 1 ...      Σx² block trees a step short
//   hi = n * (c + 1) / k;                -> ... / k + 1;                Σx² slices overlap, read past x
//   if (!(L.a.max_norm > 0) || !isfinite(norm)) return;  -> if (!(L.a.max_norm > 0)) return;
//   sizeof(double) * (PT_SUMSQ_PARTS + 1) -> sizeof(double) * PT_SUMSQ_PARTS   workspace overrun (free)
//   for (int64_t j = 0; j < n; j++) total += sums[j];  -> summed backwards: not the host's norm bits
//   3 * (a->ncoeffs == 1 ? 0 : k)        -> ... ? 0 : 0)                NS per-step tuples ignored
//   *A = X + S * MN                      -> *A = X + MN                 NS work slots overlap
//   cu_ema's `if (a->n == 0) return;` removed                           a launch for an empty tensor
#include <random>

extern "C" {
#include <cblas.h> // the declaration of cblas_sgemm that cpu/optim.c calls (defined below, not OpenBLAS's)
}

#define PT_EMU_NAME "optim_emu"
#define PT_EMU_SMEM pt_opt_emu_dyn_smem // optim.cu has no dynamic shared memory
#define PT_EMU_INPUTS_WHAT "nothing (optim.cu has no cp.async)"
#include "emu_warp.h" // the CUDA execution model: fibers, barriers, shared memory, launches
#include "emu_host.h" // pt_cuda_alloc / streams / capture state for the launchers

#include "optim_kernels.inc" // optim.cu: kernels, launchers and their PT_REGISTER_KERNEL lines

// ---------------------------------------------------------------- what optim.cu needs from elsewhere
// matmul.cu's handle: any non-null handle (the shim's cuBLAS keeps no state)
static char g_pt_emu_cublas;
cublasHandle_t pt_cublas_handle(void) { return (cublasHandle_t)(void *)&g_pt_emu_cublas; }

// The CPU oracle's GEMM (cpu/optim.c's Newton–Schulz calls cblas_sgemm): a plain row-major loop summing
// in k order in f32, the order of the shim's cublasSgemmStridedBatched, so that the Newton–Schulz
// comparison checks the kernels around the GEMMs bit for bit (which GEMM order cuBLAS or OpenBLAS use
// is not what this test is about; tests/gpu/test_optim.lua compares the real ones with a tolerance).
extern "C" void cblas_sgemm(const enum CBLAS_ORDER order, const enum CBLAS_TRANSPOSE ta, const enum CBLAS_TRANSPOSE tb,
                            const blasint m, const blasint n, const blasint k, const float alpha, const float *A,
                            const blasint lda, const float *B, const blasint ldb, const float beta, float *C,
                            const blasint ldc) {
    if (order != CblasRowMajor) {
        fprintf(stderr, PT_EMU_NAME ": cblas_sgemm: only row-major is emulated\nFAIL\n");
        exit(1);
    }
    for (blasint i = 0; i < m; i++)
        for (blasint j = 0; j < n; j++) {
            float s = 0.0f;
            for (blasint p = 0; p < k; p++) {
                const float av = ta == CblasNoTrans ? A[(int64_t)i * lda + p] : A[(int64_t)p * lda + i];
                const float bv = tb == CblasNoTrans ? B[(int64_t)p * ldb + j] : B[(int64_t)j * ldb + p];
                s += av * bv;
            }
            float *c = &C[(int64_t)i * ldc + j];
            *c = beta == 0.0f ? alpha * s : alpha * s + beta * *c;
        }
}

// ---------------------------------------------------------------- kernels from the dispatch table
template <typename K> static K pt_emu_kern(const char *op, pt_devtype dev, pt_dtype dt) {
    K k = (K)pt_kernel_find(op, dev, dt);
    if (!k) {
        fprintf(stderr, PT_EMU_NAME ": no %s kernel %s for %s (registration not extracted or not linked?)\nFAIL\n",
                dev == PT_DEV_CUDA ? "CUDA" : "CPU", op, pt_dtype_name(dt));
        exit(1);
    }
    return k;
}
template <typename K> static K pt_emu_gpu(const char *op, pt_dtype dt = PT_F32) {
    return pt_emu_kern<K>(op, PT_DEV_CUDA, dt);
}
template <typename K> static K pt_emu_cpu(const char *op, pt_dtype dt = PT_F32) {
    return pt_emu_kern<K>(op, PT_DEV_CPU, dt);
}

// ---------------------------------------------------------------- results
struct pt_emu_res {
    bool ok = true;
    std::string log;
    void bad(const std::string &m) { ok = false, log += " " + m; }
    void note(const std::string &m) { log += " " + m; }
};
static bool pt_emu_report(const std::string &head, const pt_emu_res &r) {
    printf("%s:%s %s\n", head.c_str(), r.log.c_str(), r.ok ? "ok" : "FAIL");
    fflush(stdout);
    return r.ok;
}
template <typename T> static bool pt_emu_same(const T &a, const T &b) { return memcmp(&a, &b, sizeof a) == 0; }
template <typename T> static bool pt_emu_isnan(T v) { return v != v; }
template <> bool pt_emu_isnan<uint16_t>(uint16_t v) { return (v & 0x7fffu) > 0x7f80u; } // bf16 bits
template <typename T> static T pt_emu_nan() {
    T t;
    memset((void *)&t, 0xff, sizeof t); // all-ones: NaN for f32, f64, bf16
    return t;
}

// the launches since the last check, against (name as the launcher writes it, grid.x, block.x); also
// no workspace left allocated and no pending error
struct pt_emu_launch_want {
    std::string name;
    unsigned grid, block;
};
static void pt_emu_expect(pt_emu_res &r, const std::vector<pt_emu_launch_want> &want) {
    bool same = g_pt_emu_launches.size() == want.size();
    for (size_t i = 0; same && i < want.size(); i++) {
        const auto &l = g_pt_emu_launches[i];
        same = l.name == want[i].name && l.grid.x == want[i].grid && l.grid.y == 1 && l.grid.z == 1 &&
               l.block.x == want[i].block && l.block.y == 1 && l.block.z == 1 && l.smem == 0;
    }
    if (!same) {
        std::string m = "LAUNCHES [";
        for (auto &l : g_pt_emu_launches)
            m += l.name + "<<<" + std::to_string(l.grid.x) + "," + std::to_string(l.block.x) + ">>>;";
        m += "] EXPECTED [";
        for (auto &w : want) m += w.name + "<<<" + std::to_string(w.grid) + "," + std::to_string(w.block) + ">>>;";
        r.bad(m + "]");
    }
    if (pt_emu_live_workspaces() != 0) r.bad("WORKSPACE NOT FREED");
    if (pt_cuda_check_pending() != PT_OK) r.bad(std::string("PENDING ERROR: ") + pt_last_error());
    g_pt_emu_launches.clear();
}

// ---------------------------------------------------------------- operand lists
// Tensor j of a list: n[j] values at offset off[j] (elements) of its own guarded buffer (pt_emu_buf:
// guard zones on both sides); the off[j] elements before the view keep the fill (NaN bytes 0xff).
template <typename T> struct pt_emu_ol {
    std::vector<pt_emu_buf<T>> b;
    std::vector<int64_t> n;
    std::vector<int> off;
    pt_emu_ol(const std::vector<int64_t> &numel, const std::vector<int> &offs) : n(numel), off(offs) {
        b.reserve(numel.size());
        for (size_t j = 0; j < numel.size(); j++) b.emplace_back((size_t)(numel[j] + offs[j]), pt_emu_nan<T>());
    }
    T *at(size_t j) { return b[j].data() + off[j]; }
    std::vector<void *> ptrs() {
        std::vector<void *> p(n.size());
        for (size_t j = 0; j < n.size(); j++) p[j] = at(j);
        return p;
    }
    std::vector<std::vector<T>> host() { // a copy of the views (the oracle's tensors)
        std::vector<std::vector<T>> h(n.size());
        for (size_t j = 0; j < n.size(); j++) h[j].assign(at(j), at(j) + n[j]);
        return h;
    }
    void set(const std::vector<std::vector<T>> &h) {
        for (size_t j = 0; j < n.size(); j++) std::copy(h[j].begin(), h[j].end(), at(j));
    }
};
template <typename T> static std::vector<void *> pt_emu_ptrs(std::vector<std::vector<T>> &h) {
    std::vector<void *> p(h.size());
    for (size_t j = 0; j < h.size(); j++) p[j] = h[j].data();
    return p;
}
// normal values (|.| when positive) times scale
template <typename T> static void pt_emu_fill(pt_emu_ol<T> &L, std::mt19937 &rng, double scale, bool positive = false) {
    std::normal_distribution<double> nd(0.0, 1.0);
    for (size_t j = 0; j < L.n.size(); j++)
        for (int64_t i = 0; i < L.n[j]; i++) {
            const double v = nd(rng);
            L.at(j)[i] = (T)(scale * (positive ? std::fabs(v) : v));
        }
}
// every view bitwise equal to want, guard zones and the elements before each view untouched
template <typename T>
static void pt_emu_check(pt_emu_res &r, const char *what, pt_emu_ol<T> &L, const std::vector<std::vector<T>> &want) {
    size_t diff = 0, total = 0, tens = 0, nan = 0;
    bool fence = true;
    for (size_t j = 0; j < L.n.size(); j++) {
        size_t d = 0;
        for (int64_t i = 0; i < L.n[j]; i++) {
            d += !pt_emu_same(L.at(j)[i], want[j][(size_t)i]);
            nan += pt_emu_isnan(want[j][(size_t)i]); // (finite inputs: a NaN would make "exact" meaningless)
        }
        diff += d, tens += d > 0, total += (size_t)L.n[j];
        fence &= L.b[j].guards_ok();
        for (int i = 0; i < L.off[j]; i++) fence &= pt_emu_same(L.b[j][(size_t)i], pt_emu_nan<T>());
    }
    char m[160];
    if (diff) snprintf(m, sizeof m, "%s %zu/%zu DIFFER (in %zu tensors)", what, diff, total, tens), r.bad(m);
    else snprintf(m, sizeof m, "%s exact;", what), r.note(m);
    if (!fence) r.bad(std::string(what) + ": GUARD ZONE OR ELEMENT BEFORE A VIEW WRITTEN");
    if (nan) r.bad(std::string(what) + ": " + std::to_string(nan) + " NaN IN THE ORACLE'S RESULT");
}

// the fronts' loop over a list (src/kernels/optim.c, pt_mt_run): parts of PT_MT_MAX tensors, each
// with its slice of the scalar rows (scal + off·stride) and of the sums
static void pt_emu_mt_run(pt_mt_kernel k, const std::vector<int64_t> &numel,
                          const std::vector<std::vector<void *>> &ops, pt_mt_args a, const double *scal, int64_t stride,
                          double *sums) {
    const int n = (int)numel.size();
    for (int off = 0; off < n; off += PT_MT_MAX) {
        const int m = std::min(n - off, PT_MT_MAX);
        a.n = m;
        for (int j = 0; j < m; j++) {
            a.numel[j] = numel[(size_t)(off + j)];
            for (size_t o = 0; o < ops.size(); o++) a.t[o][j] = ops[o][(size_t)(off + j)];
        }
        a.scal = scal ? scal + off * stride : nullptr;
        a.scal_stride = stride;
        a.sums = sums ? sums + off : nullptr;
        k(&a);
    }
}
// the launches of pt_emu_mt_run over an update kernel: per part Σ ceil(numel / PT_MT_CHUNK) blocks,
// no launch for a part without elements. The launches sit inside the PT_MT_LAUNCHER macro, so the
// name the emulator records is the macro's parameter, "KERNEL"; the grid tells the parts apart.
static std::vector<pt_emu_launch_want> pt_emu_mt_launches(const std::vector<int64_t> &numel) {
    std::vector<pt_emu_launch_want> w;
    for (size_t off = 0; off < numel.size(); off += PT_MT_MAX) {
        int64_t blocks = 0;
        for (size_t j = off; j < std::min(numel.size(), off + PT_MT_MAX); j++)
            blocks += (numel[j] + PT_MT_CHUNK - 1) / PT_MT_CHUNK;
        if (blocks) w.push_back({"KERNEL", (unsigned)blocks, PT_MT_THREADS});
    }
    return w;
}
static unsigned pt_emu_op_grid(int64_t n) {
    return (unsigned)std::max<int64_t>(1, (n + PT_OP_THREADS - 1) / PT_OP_THREADS);
}

// the sizes the update lists cycle through: float4 multiples and tails (n % 4 = 1, 2, 3), one block
// exactly (4096) and one element more or less, several blocks, empty tensors
static const int64_t k_pt_emu_sizes[] = {4096, 1,  4097, 3,     8197, 4,    0, 12288, 5,
                                         4095, 64, 2,    16385, 7,    1000, 0, 4100,  33};
static std::vector<int64_t> pt_emu_sizes(int nt, int shift = 0) {
    const int ns = (int)(sizeof k_pt_emu_sizes / sizeof k_pt_emu_sizes[0]);
    std::vector<int64_t> v((size_t)nt);
    for (int j = 0; j < nt; j++) v[(size_t)j] = k_pt_emu_sizes[(j + shift) % ns];
    return v;
}
// view offsets of operand o of tensor j: most at 0; every 9th all operands 4 elements in (16 bytes:
// still the float4 path); with misalign, every 6th tensor has one operand 1 or 2 elements in (that
// tensor takes the scalar path)
static std::vector<int> pt_emu_offs(int nt, int o, int nops, bool misalign) {
    std::vector<int> v((size_t)nt, 0);
    for (int j = 0; j < nt; j++) {
        if (j % 9 == 4) v[(size_t)j] = 4;
        if (misalign && j % 6 == 5 && o == (j / 6) % nops) v[(size_t)j] = 1 + j % 2;
    }
    return v;
}

// ---------------------------------------------------------------- AdamW / Adam over lists
// the PT_ADAMW_* row of pt_adamw_scalars (src/kernels/optim.c, pt_adamw_row)
static void pt_emu_adamw_row(double *r, int64_t step, double lr, double b1, double b2, double eps, double wd,
                             int maxi) {
    r[PT_ADAMW_DECAY] = 1.0 - lr * wd;
    r[PT_ADAMW_BETA1] = b1;
    r[PT_ADAMW_BETA2] = b2;
    r[PT_ADAMW_STEP_SIZE] = lr / (1.0 - pow(b1, (double)step));
    r[PT_ADAMW_BC2_SQRT] = sqrt(1.0 - pow(b2, (double)step));
    r[PT_ADAMW_EPS] = eps;
    r[PT_ADAMW_MAXIMIZE] = maxi != 0;
}

// nt params; shared: one row for all (stride 0, Adam: wd 0); else a row per param (stride
// PT_ADAMW_NSCAL) with its own lr, wd (0 for every third), betas, eps, step count and maximize
static bool pt_emu_adamw_multi(int nt, bool shared, int nsteps, bool misalign) {
    std::mt19937 rng(11u + (unsigned)nt);
    const std::vector<int64_t> numel = pt_emu_sizes(nt);
    pt_emu_ol<float> P(numel, pt_emu_offs(nt, 0, 4, misalign)), G(numel, pt_emu_offs(nt, 1, 4, misalign)),
        M(numel, pt_emu_offs(nt, 2, 4, misalign)), V(numel, pt_emu_offs(nt, 3, 4, misalign));
    pt_emu_fill(P, rng, 1.0), pt_emu_fill(M, rng, 0.01), pt_emu_fill(V, rng, 1e-4, true);
    auto hp = P.host(), hm = M.host(), hv = V.host();
    const int64_t K = PT_ADAMW_NSCAL, stride = shared ? 0 : K;
    pt_emu_buf<double> scal((size_t)(shared ? K : nt * K), pt_emu_nan<double>());
    const pt_mt_kernel kg = pt_emu_gpu<pt_mt_kernel>("optim_adamw_multi"),
                       kc = pt_emu_cpu<pt_mt_kernel>("optim_adamw_multi");
    pt_emu_res r;
    for (int s = 0; s < nsteps; s++) {
        pt_emu_fill(G, rng, 0.1);
        auto hg = G.host();
        if (shared) pt_emu_adamw_row(scal.data(), s + 1, 1e-3, 0.9, 0.999, 1e-8, 0.0, 0);
        else
            for (int j = 0; j < nt; j++)
                pt_emu_adamw_row(scal.data() + j * K, s + 1 + j % 3, 1e-3 * (1 + j % 3), j % 2 ? 0.8 : 0.9,
                                 j % 2 ? 0.95 : 0.999, j % 4 ? 1e-8 : 1e-6, j % 3 ? 0.01 * (j % 5) : 0.0, j % 7 == 2);
        pt_emu_mt_run(kg, numel, {P.ptrs(), G.ptrs(), M.ptrs(), V.ptrs()}, pt_mt_args{}, scal.data(), stride, nullptr);
        pt_emu_expect(r, pt_emu_mt_launches(numel));
        pt_emu_mt_run(kc, numel, {pt_emu_ptrs(hp), pt_emu_ptrs(hg), pt_emu_ptrs(hm), pt_emu_ptrs(hv)}, pt_mt_args{},
                      scal.data(), stride, nullptr);
        if (s == nsteps - 1) {
            pt_emu_check(r, "p", P, hp), pt_emu_check(r, "m", M, hm), pt_emu_check(r, "v", V, hv);
            pt_emu_check(r, "g (read only)", G, hg);
        } else { // the state must agree at every step, checked quietly
            pt_emu_res q;
            pt_emu_check(q, "p", P, hp), pt_emu_check(q, "m", M, hm), pt_emu_check(q, "v", V, hv);
            pt_emu_check(q, "g", G, hg);
            if (!q.ok) r.bad("step " + std::to_string(s + 1) + ":" + q.log);
        }
    }
    if (!scal.guards_ok()) r.bad("SCALAR BUFFER GUARD WRITTEN");
    char head[160];
    snprintf(head, sizeof head, "%s_multi %d tensors, %d steps, %s%s", shared ? "adam" : "adamw", nt, nsteps,
             shared ? "one shared row" : "a row per tensor (wd, maximize, betas, steps vary)",
             misalign ? ", misaligned views" : "");
    return pt_emu_report(head, r);
}

// ---------------------------------------------------------------- Muon: momentum, Newton–Schulz, apply
struct pt_emu_mshape {
    int64_t k, R, C; // k = 0: a matrix [R, C]; else a bank [k, R, C]
};
struct pt_emu_mgroup {
    std::vector<pt_emu_mshape> shapes;
    double lr, momentum, wd, factor; // factor <= 0: √max(1, R/C) (pt_muon_factor)
    int nesterov, round;
    int ns_steps; // 0: no Newton–Schulz (u goes from the momentum to the apply as it is)
    int ns_flags, ncoeffs;
    const double *coeffs;
};
static const double k_pt_emu_ns5[1][3] = {{3.4445, -4.7750, 2.0315}};
static const double k_pt_emu_ns4[4][3] = {{4.0, -5.5, 2.25}, {3.6, -4.9, 1.9}, {3.0, -3.5, 1.4}, {2.5, -2.2, 0.8}};
static const char *pt_emu_round_name(int m) {
    return m == PT_MUON_ROUND_SCALED ? "scaled" : m == PT_MUON_ROUND_UNIT ? "unit" : "none";
}

// Newton–Schulz of one bank on both sides (CUDA: all matrices at once in `slots` slots of its work;
// CPU: one at a time); compared bitwise
static void pt_emu_ns_pair(pt_emu_res &r, const char *what, float *gx, std::vector<float> &hx, int64_t batch, int64_t R,
                           int64_t C, int64_t slots, int steps, const double *coeffs, int ncoeffs, int flags) {
    pt_emu_buf<float> work((size_t)pt_ns_work_elems(slots, R, C), pt_emu_nan<float>());
    std::vector<float> hwork((size_t)pt_ns_work_elems(1, R, C));
    pt_ns_args a{};
    a.batch = batch, a.rows = R, a.cols = C, a.x = gx, a.work = work.data(), a.slots = slots, a.steps = steps;
    a.coeffs = coeffs, a.ncoeffs = ncoeffs, a.flags = flags;
    pt_emu_gpu<pt_ns_kernel>("optim_ns")(&a);
    g_pt_emu_launches.clear(); // (its many launches are not listed; pending errors are checked)
    pt_emu_expect(r, {});
    a.x = hx.data(), a.work = hwork.data(), a.slots = 1;
    pt_emu_cpu<pt_ns_kernel>("optim_ns")(&a);
    size_t d = 0, nan = 0;
    for (size_t i = 0; i < hx.size(); i++) d += !pt_emu_same(gx[i], hx[i]), nan += pt_emu_isnan(hx[i]);
    if (d) r.bad(std::string(what) + " " + std::to_string(d) + "/" + std::to_string(hx.size()) + " DIFFER");
    if (nan) r.bad(std::string(what) + ": NaN IN THE ORACLE'S RESULT");
    if (!work.guards_ok()) r.bad(std::string(what) + ": NS WORK GUARD WRITTEN");
}

// groups as pt_muon_multi's launches (optim.lua: a launch per group, the rows of all groups in one
// device buffer, each launch a slice of it); u in banks of same-shaped matrices (batched = true)
static bool pt_emu_muon(const char *title, const std::vector<pt_emu_mgroup> &groups, int nsteps) {
    std::mt19937 rng(29u + (unsigned)groups.size() * 7u + (unsigned)groups[0].shapes.size());
    const int64_t K = PT_MUON_NSCAL;
    size_t nrows = 0;
    for (auto &g : groups) nrows += g.shapes.size();
    pt_emu_buf<double> scal(nrows * K, pt_emu_nan<double>());
    const pt_mt_kernel mg = pt_emu_gpu<pt_mt_kernel>("optim_momentum_multi"),
                       mc = pt_emu_cpu<pt_mt_kernel>("optim_momentum_multi");
    const pt_mt_kernel ag = pt_emu_gpu<pt_mt_kernel>("optim_apply_multi"),
                       ac = pt_emu_cpu<pt_mt_kernel>("optim_apply_multi");
    pt_emu_res r;
    size_t row0 = 0;
    int nparams = 0, nbanks_all = 0;
    for (size_t gi = 0; gi < groups.size(); gi++) {
        const pt_emu_mgroup &gr = groups[gi];
        const int nt = (int)gr.shapes.size();
        nparams += nt;
        std::vector<int64_t> numel((size_t)nt), bank((size_t)nt), moff((size_t)nt);
        std::vector<int64_t> bR, bC, bcount;
        for (int j = 0; j < nt; j++) {
            const pt_emu_mshape &s = gr.shapes[(size_t)j];
            const int64_t k = s.k ? s.k : 1;
            numel[(size_t)j] = k * s.R * s.C;
            int b = -1;
            for (size_t q = 0; q < bR.size() && b < 0; q++)
                if (bR[q] == s.R && bC[q] == s.C) b = (int)q;
            if (b < 0) b = (int)bR.size(), bR.push_back(s.R), bC.push_back(s.C), bcount.push_back(0);
            bank[(size_t)j] = b, moff[(size_t)j] = bcount[(size_t)b], bcount[(size_t)b] += k;
            double *row = scal.data() + (row0 + (size_t)j) * K;
            row[PT_MUON_MOMENTUM] = gr.momentum, row[PT_MUON_LR] = gr.lr, row[PT_MUON_WD] = gr.wd;
            row[PT_MUON_FACTOR] = gr.factor > 0 ? gr.factor : std::sqrt(std::max(1.0, (double)s.R / (double)s.C));
        }
        nbanks_all += (int)bR.size();
        const std::vector<int> z((size_t)nt, 0);
        pt_emu_ol<float> P(numel, pt_emu_offs(nt, 0, 2, false)), G(numel, z), B(numel, z);
        pt_emu_fill(P, rng, 1.0), pt_emu_fill(B, rng, 0.05);
        std::vector<pt_emu_buf<float>> U; // the banks of u (NaN until the momentum writes them)
        std::vector<std::vector<float>> hU;
        for (size_t q = 0; q < bR.size(); q++) {
            U.emplace_back((size_t)(bcount[q] * bR[q] * bC[q]), pt_emu_nan<float>());
            hU.emplace_back((size_t)(bcount[q] * bR[q] * bC[q]), pt_emu_nan<float>());
        }
        std::vector<void *> u((size_t)nt), hu((size_t)nt);
        for (int j = 0; j < nt; j++) {
            const int64_t b = bank[(size_t)j], at = moff[(size_t)j] * bR[(size_t)b] * bC[(size_t)b];
            u[(size_t)j] = U[(size_t)b].data() + at, hu[(size_t)j] = hU[(size_t)b].data() + at;
        }
        auto hp = P.host(), hb = B.host();
        const double *gscal = scal.data() + row0 * K;
        for (int s = 0; s < nsteps; s++) {
            pt_emu_fill(G, rng, 0.1);
            auto hg = G.host();
            pt_mt_args a{};
            a.flags = gr.nesterov;
            pt_emu_mt_run(mg, numel, {G.ptrs(), B.ptrs(), u}, a, gscal, K, nullptr);
            pt_emu_expect(r, pt_emu_mt_launches(numel));
            pt_emu_mt_run(mc, numel, {pt_emu_ptrs(hg), pt_emu_ptrs(hb), hu}, a, gscal, K, nullptr);
            pt_emu_res q;
            pt_emu_check(q, "buf", B, hb), pt_emu_check(q, "g (read only)", G, hg);
            size_t ud = 0, unan = 0;
            for (size_t b = 0; b < U.size(); b++)
                for (size_t i = 0; i < hU[b].size(); i++)
                    ud += !pt_emu_same(U[b][i], hU[b][i]), unan += pt_emu_isnan(hU[b][i]);
            if (ud || unan) q.bad("u (banks): " + std::to_string(ud) + " DIFFER, " + std::to_string(unan) + " NaN");
            else q.note("u exact;");
            if (gr.ns_steps) {
                for (size_t b = 0; b < U.size(); b++)
                    pt_emu_ns_pair(q, "NS(u)", U[b].data(), hU[b], bcount[b], bR[b], bC[b], bcount[b], gr.ns_steps,
                                   gr.coeffs, gr.ncoeffs, gr.ns_flags);
                if (q.ok) q.note("NS(u) exact;");
            }
            std::vector<std::vector<float>> u_before; // the GPU's u, which the apply only reads
            for (auto &b : U) u_before.emplace_back(b.data(), b.data() + b.n);
            a = pt_mt_args{};
            a.flags = gr.round;
            pt_emu_mt_run(ag, numel, {P.ptrs(), u}, a, gscal, K, nullptr);
            pt_emu_expect(q, pt_emu_mt_launches(numel));
            pt_emu_mt_run(ac, numel, {pt_emu_ptrs(hp), hu}, a, gscal, K, nullptr);
            pt_emu_check(q, "p", P, hp);
            for (size_t b = 0; b < U.size(); b++) {
                size_t d = 0;
                for (size_t i = 0; i < U[b].n; i++) d += !pt_emu_same(U[b][i], u_before[b][i]);
                if (d || !U[b].guards_ok()) q.bad("u (read only by the apply) WRITTEN");
            }
            if (!q.ok) r.bad("group " + std::to_string(gi + 1) + " step " + std::to_string(s + 1) + ":" + q.log);
            else if (gi + 1 == groups.size() && s + 1 == nsteps) r.log += q.log; // one sample line
        }
        row0 += (size_t)nt;
    }
    if (!scal.guards_ok()) r.bad("SCALAR BUFFER GUARD WRITTEN");
    char head[200];
    snprintf(head, sizeof head, "muon %s: %zu groups, %d params, %d banks, %d steps", title, groups.size(), nparams,
             nbanks_all, nsteps);
    return pt_emu_report(head, r);
}

// Newton–Schulz alone: a batch run in fewer slots than matrices (the launcher's pass loop)
static bool pt_emu_ns(int64_t batch, int64_t R, int64_t C, int64_t slots, int steps, const double *coeffs, int ncoeffs,
                      int flags) {
    std::mt19937 rng(5u + (unsigned)(R * 31 + C));
    std::normal_distribution<float> nd(0.f, 1.f);
    const size_t n = (size_t)(batch * R * C);
    pt_emu_buf<float> x(n, 0.f);
    std::vector<float> hx(n);
    for (size_t i = 0; i < n; i++) hx[i] = x[i] = nd(rng);
    pt_emu_res r;
    pt_emu_ns_pair(r, "x", x.data(), hx, batch, R, C, slots, steps, coeffs, ncoeffs, flags);
    if (!x.guards_ok()) r.bad("x GUARD WRITTEN");
    if (r.ok) r.note("x exact;");
    char head[160];
    snprintf(head, sizeof head, "ns [%lld, %lld, %lld] in %lld slots, %d steps, %d tuples,%s%s", (long long)batch,
             (long long)R, (long long)C, (long long)slots, steps, ncoeffs, flags & PT_NS_BF16 ? " bf16" : " f32",
             flags & PT_NS_ROW_NORM ? " + row norm" : "");
    return pt_emu_report(head, r);
}

// ---------------------------------------------------------------- EMA over lists
static bool pt_emu_ema_multi(int nt, bool shared, int nupd) {
    std::mt19937 rng(41u + (unsigned)nt);
    const std::vector<int64_t> numel = pt_emu_sizes(nt, 5);
    pt_emu_ol<float> E(numel, pt_emu_offs(nt, 0, 2, true)), W(numel, pt_emu_offs(nt, 1, 2, true));
    pt_emu_fill(E, rng, 1.0);
    auto he = E.host();
    pt_emu_buf<double> scal((size_t)(shared ? 1 : nt), pt_emu_nan<double>());
    for (int j = 0; j < (shared ? 1 : nt); j++) scal[(size_t)j] = shared ? std::pow(0.999, 4) : 0.9 + 0.002 * j;
    const pt_mt_kernel kg = pt_emu_gpu<pt_mt_kernel>("optim_ema_multi"),
                       kc = pt_emu_cpu<pt_mt_kernel>("optim_ema_multi");
    pt_emu_res r;
    for (int s = 0; s < nupd; s++) {
        pt_emu_fill(W, rng, 1.0);
        auto hw = W.host();
        pt_emu_mt_run(kg, numel, {E.ptrs(), W.ptrs()}, pt_mt_args{}, scal.data(), shared ? 0 : 1, nullptr);
        pt_emu_expect(r, pt_emu_mt_launches(numel));
        pt_emu_mt_run(kc, numel, {pt_emu_ptrs(he), pt_emu_ptrs(hw)}, pt_mt_args{}, scal.data(), shared ? 0 : 1,
                      nullptr);
        pt_emu_res q;
        pt_emu_check(q, "ema", E, he), pt_emu_check(q, "w (read only)", W, hw);
        if (!q.ok) r.bad("update " + std::to_string(s + 1) + ":" + q.log);
        else if (s + 1 == nupd) r.log += q.log;
    }
    char head[120];
    snprintf(head, sizeof head, "ema_multi %d tensors, %d updates, %s", nt, nupd,
             shared ? "one shared decay (as EMA:prepare)" : "a decay per tensor");
    return pt_emu_report(head, r);
}

// ---------------------------------------------------------------- Σx², norm, clip (f32, f64)
template <typename T> struct pt_emu_t;
template <> struct pt_emu_t<float> {
    static constexpr pt_dtype dt = PT_F32;
    static constexpr const char *name = "f32";
    static constexpr const char *part = "k_sumsq_part<T>";
};
template <> struct pt_emu_t<double> {
    static constexpr pt_dtype dt = PT_F64;
    static constexpr const char *name = "f64";
    static constexpr const char *part = "k_sumsq_part<T>";
};
static int64_t pt_emu_parts(int64_t n) { return std::min<int64_t>((n + 2047) / 2048, PT_SUMSQ_PARTS); }
static std::vector<pt_emu_launch_want> pt_emu_sumsq_launches(const std::vector<int64_t> &numel) {
    std::vector<pt_emu_launch_want> w;
    for (size_t off = 0; off < numel.size(); off += PT_MT_MAX) {
        const size_t end = std::min(numel.size(), off + PT_MT_MAX);
        int64_t blocks = 0;
        for (size_t j = off; j < end; j++) blocks += pt_emu_parts(numel[j]);
        if (blocks) w.push_back({"k_sumsq_part<T>", (unsigned)blocks, PT_MT_THREADS});
        w.push_back({"k_sumsq_fin", (unsigned)(end - off), PT_MT_THREADS});
    }
    return w;
}

// The sums of squares (multi and per tensor), the norm, and the two clips (device: sumsq_multi + norm
// + scale_multi as pt_clip_grad_norm_dev; host: per-tensor sumsq + the host's sum + per-tensor scale
// as pt_clip_grad_norm), all on the emulated GPU, against each other (bitwise) and the CPU.
// full = false: only the sums (the one-tensor case at the partial-sum cap).
template <typename T> static bool pt_emu_clip(const char *title, const std::vector<int64_t> &numel, bool full) {
    typedef pt_emu_t<T> D;
    std::mt19937 rng(61u + (unsigned)numel.size());
    const int nt = (int)numel.size();
    const std::vector<int> z((size_t)nt, 0);
    pt_emu_ol<T> X(numel, z);
    pt_emu_fill(X, rng, 0.5);
    auto hx = X.host();
    const pt_mt_kernel sg = pt_emu_gpu<pt_mt_kernel>("optim_sumsq_multi", D::dt),
                       sc = pt_emu_cpu<pt_mt_kernel>("optim_sumsq_multi", D::dt);
    pt_emu_res r;
    pt_emu_buf<double> sums((size_t)nt, pt_emu_nan<double>()), work(PT_SUMSQ_WORK, pt_emu_nan<double>());
    std::vector<double> hs((size_t)nt);
    pt_mt_args a{};
    a.work = work.data();
    pt_emu_mt_run(sg, numel, {X.ptrs()}, a, nullptr, 0, sums.data());
    pt_emu_expect(r, pt_emu_sumsq_launches(numel));
    a.work = nullptr;
    pt_emu_mt_run(sc, numel, {pt_emu_ptrs(hx)}, a, nullptr, 0, hs.data());
    // Σ of n positive terms in two orders: |Δ| ≤ 2·(n−1)·2^-53·Σ (the CPU's sequential or 64-slice order
    // against the GPU's per-thread strides, block tree and partial tree); the squares are the same
    // doubles on both sides (exact for f32)
    size_t exact = 0, out = 0;
    double worst = 0;
    for (int j = 0; j < nt; j++) {
        const double g = sums[(size_t)j], w = hs[(size_t)j], n = (double)numel[(size_t)j];
        exact += pt_emu_same(g, w);
        const double e = std::fabs(g - w), tol = 2.0 * std::max(n - 1.0, 0.0) * 0x1p-53 * w;
        if (!(e <= tol)) out++;
        if (w > 0) worst = std::isnan(e) ? INFINITY : std::max(worst, e / (w * 0x1p-53));
    }
    char m[200];
    snprintf(m, sizeof m, "sums %zu/%d bitwise the CPU's, max %.3g·2^-53 relative;", exact, nt, worst);
    r.note(m);
    if (out) r.bad(std::to_string(out) + " SUMS OUTSIDE 2(n-1)·2^-53·Σ");
    if (!sums.guards_ok() || !work.guards_ok()) r.bad("SUMS OR WORK GUARD WRITTEN");
    // the per-tensor sum (the host clip's) is the same kernels on a one-tensor list: the same bits
    const pt_sumsq_kernel s1 = pt_emu_gpu<pt_sumsq_kernel>("optim_sumsq", D::dt);
    size_t same1 = 0;
    for (int j = 0; j < nt; j++) {
        double o = NAN;
        pt_sumsq_args sa{numel[(size_t)j], X.at((size_t)j), &o};
        s1(&sa);
        if (numel[(size_t)j]) pt_emu_expect(r, pt_emu_sumsq_launches({numel[(size_t)j]}));
        else pt_emu_expect(r, {});
        same1 += pt_emu_same(o, sums[(size_t)j]);
    }
    if (same1 != (size_t)nt)
        r.bad("optim_sumsq (per tensor) differs from sumsq_multi in " + std::to_string(nt - (int)same1));
    else r.note("optim_sumsq = sumsq_multi bitwise;");
    pt_emu_check(r, "x (read only)", X, hx);
    if (full) {
        // norm: the sums added in order and √, as the CPU
        pt_emu_buf<double> nrm(1, pt_emu_nan<double>());
        double hn = NAN;
        pt_norm_args na{sums.data(), nt, nrm.data()};
        pt_emu_gpu<pt_norm_kernel>("optim_norm", PT_F64)(&na);
        pt_emu_expect(r, {{"k_norm", 1, 1}});
        na.norm = &hn;
        pt_emu_cpu<pt_norm_kernel>("optim_norm", PT_F64)(&na);
        if (!pt_emu_same(nrm[0], hn) || !nrm.guards_ok()) r.bad("NORM DIFFERS FROM THE CPU'S ON THE SAME SUMS");
        // device clip (X) against host clip (X2, a copy), at max_norm = norm/3 (coef < 1)
        pt_emu_ol<T> X2(numel, z);
        X2.set(hx);
        const double max_norm = nrm[0] / 3;
        pt_mt_args c{};
        c.max_norm = max_norm;
        pt_emu_mt_run(pt_emu_gpu<pt_mt_kernel>("optim_scale_multi", D::dt), numel, {X.ptrs()}, c, nrm.data(), 0,
                      nullptr);
        pt_emu_expect(r, pt_emu_mt_launches(numel));
        double total = 0; // pt_clip_grad_norm
        for (int j = 0; j < nt; j++) {
            double o = 0;
            pt_sumsq_args sa{numel[(size_t)j], X2.at((size_t)j), &o};
            if (sa.n > 0) s1(&sa);
            total += o;
        }
        g_pt_emu_launches.clear();
        const double hnorm = std::sqrt(total), coef = max_norm / (hnorm + 1e-6);
        if (!pt_emu_same(hnorm, nrm[0])) r.bad("HOST CLIP NORM != DEVICE CLIP NORM");
        for (int j = 0; j < nt; j++) {
            pt_scale_args sa{numel[(size_t)j], X2.at((size_t)j), coef};
            if (sa.n > 0) pt_emu_gpu<pt_scale_kernel>("optim_scale", D::dt)(&sa);
        }
        g_pt_emu_launches.clear();
        pt_emu_check(r, "clip: host = device", X, X2.host());
        for (auto &b : X2.b)
            if (!b.guards_ok()) r.bad("HOST CLIP: GUARD WRITTEN");
        // the CPU's scale_multi on the same norm
        pt_emu_mt_run(pt_emu_cpu<pt_mt_kernel>("optim_scale_multi", D::dt), numel, {pt_emu_ptrs(hx)}, c, nrm.data(), 0,
                      nullptr);
        pt_emu_check(r, "= CPU", X, hx);
        // no scaling: max_norm 0, a norm of +inf or NaN, coef >= 1 (the launches run, the kernel returns)
        const double cases[4][2] = {{0.0, 1.0}, {1.0, INFINITY}, {1.0, NAN}, {3.0, 1.0}};
        size_t touched = 0;
        for (auto &cs : cases) {
            c.max_norm = cs[0];
            nrm[0] = cs[1];
            pt_emu_mt_run(pt_emu_gpu<pt_mt_kernel>("optim_scale_multi", D::dt), numel, {X.ptrs()}, c, nrm.data(), 0,
                          nullptr);
            pt_emu_expect(r, pt_emu_mt_launches(numel));
            pt_emu_res q;
            pt_emu_check(q, "x", X, hx);
            touched += !q.ok;
        }
        if (touched) r.bad("scale_multi SCALED in " + std::to_string(touched) + " of the 4 no-clip cases");
        else r.note("no-clip cases untouched;");
    }
    char head[160];
    snprintf(head, sizeof head, "sumsq/norm/clip %s %s (%d tensors)", D::name, title, nt);
    return pt_emu_report(head, r);
}

// optim_sumsq inside a graph capture: refused (the host reads the sum), nothing launched, out = 0
static bool pt_emu_sumsq_capture() {
    pt_emu_res r;
    pt_emu_buf<float> x(100, 1.f);
    double o = NAN;
    pt_sumsq_args sa{100, x.data(), &o};
    g_pt_emu_capturing = 0;
    pt_emu_gpu<pt_sumsq_kernel>("optim_sumsq")(&sa);
    g_pt_emu_capturing = -1;
    const pt_status st = pt_cuda_check_pending();
    if (st == PT_OK || !strstr(pt_last_error(), "cannot run inside a CUDA graph capture")) r.bad("NOT REFUSED");
    else r.note("refused (\"" + std::string(pt_last_error()).substr(0, 60) + "...\");");
    if (o != 0) r.bad("out != 0");
    pt_emu_expect(r, {});
    return pt_emu_report("optim_sumsq inside a capture", r);
}

// ---------------------------------------------------------------- per-tensor kernels
// each on n elements (at an offset of off elements) against the CPU kernel, bitwise, with its launch
static bool pt_emu_per_tensor(int64_t n, int off) {
    std::mt19937 rng(71u + (unsigned)n);
    const std::vector<int64_t> one = {n};
    const std::vector<int> o1 = {off};
    pt_emu_res r;
    const std::vector<pt_emu_launch_want> want =
        n ? std::vector<pt_emu_launch_want>{{"", pt_emu_op_grid(n), PT_OP_THREADS}} : std::vector<pt_emu_launch_want>{};
    auto expect = [&](const char *name) {
        auto w = want;
        for (auto &e : w) e.name = name;
        pt_emu_expect(r, w);
    };
    { // AdamW (wd, maximize)
        pt_emu_ol<float> P(one, o1), G(one, o1), M(one, o1), V(one, o1);
        pt_emu_fill(P, rng, 1.0), pt_emu_fill(G, rng, 0.1), pt_emu_fill(M, rng, 0.01), pt_emu_fill(V, rng, 1e-4, true);
        auto hp = P.host(), hg = G.host(), hm = M.host(), hv = V.host();
        double row[PT_ADAMW_NSCAL];
        pt_emu_adamw_row(row, 3, 2e-3, 0.9, 0.99, 1e-8, 0.05, 1);
        pt_adamw_args a{n,
                        P.at(0),
                        G.at(0),
                        M.at(0),
                        V.at(0),
                        row[PT_ADAMW_DECAY],
                        0.9,
                        0.99,
                        row[PT_ADAMW_STEP_SIZE],
                        row[PT_ADAMW_BC2_SQRT],
                        1e-8,
                        1};
        pt_emu_gpu<pt_adamw_kernel>("optim_adamw")(&a);
        expect("k_adamw");
        a.p = hp[0].data(), a.g = hg[0].data(), a.m = hm[0].data(), a.v = hv[0].data();
        pt_emu_cpu<pt_adamw_kernel>("optim_adamw")(&a);
        pt_emu_res q;
        pt_emu_check(q, "p", P, hp), pt_emu_check(q, "m", M, hm), pt_emu_check(q, "v", V, hv),
            pt_emu_check(q, "g", G, hg);
        if (!q.ok) r.bad("adamw:" + q.log);
    }
    // SGD: momentum 0 (no buf), first step, then momentum with dampening / nesterov, wd, maximize
    const struct {
        bool buf;
        int first, nesterov, maximize;
        double mom, damp, wd;
    } sgd[] = {{false, 0, 0, 0, 0.0, 0.0, 0.0},
               {true, 1, 0, 0, 0.9, 0.0, 0.01},
               {true, 0, 0, 1, 0.9, 0.1, 0.0},
               {true, 0, 1, 0, 0.8, 0.0, 0.02}};
    for (auto &c : sgd) {
        pt_emu_ol<float> P(one, o1), G(one, o1), B(one, o1);
        pt_emu_fill(P, rng, 1.0), pt_emu_fill(G, rng, 0.1), pt_emu_fill(B, rng, 0.1);
        auto hp = P.host(), hg = G.host(), hb = B.host();
        pt_sgd_args a{n,          P.at(0), G.at(0),   c.buf ? B.at(0) : nullptr, 0.05, c.mom, c.damp, c.wd,
                      c.nesterov, c.first, c.maximize};
        pt_emu_gpu<pt_sgd_kernel>("optim_sgd")(&a);
        expect("k_sgd");
        a.p = hp[0].data(), a.g = hg[0].data(), a.buf = c.buf ? hb[0].data() : nullptr;
        pt_emu_cpu<pt_sgd_kernel>("optim_sgd")(&a);
        pt_emu_res q;
        pt_emu_check(q, "p", P, hp), pt_emu_check(q, "buf", B, hb), pt_emu_check(q, "g", G, hg);
        if (!q.ok) r.bad("sgd:" + q.log);
    }
    for (int nest = 0; nest < 2; nest++) { // Muon momentum: u written entirely (starts NaN)
        pt_emu_ol<float> G(one, o1), B(one, o1), U(one, o1);
        pt_emu_fill(G, rng, 0.1), pt_emu_fill(B, rng, 0.1);
        auto hg = G.host(), hb = B.host(), hu = U.host();
        pt_momentum_args a{n, G.at(0), B.at(0), U.at(0), 0.95, nest};
        pt_emu_gpu<pt_momentum_kernel>("optim_momentum")(&a);
        expect("k_momentum");
        a.g = hg[0].data(), a.buf = hb[0].data(), a.u = hu[0].data();
        pt_emu_cpu<pt_momentum_kernel>("optim_momentum")(&a);
        pt_emu_res q;
        pt_emu_check(q, "buf", B, hb), pt_emu_check(q, "u", U, hu), pt_emu_check(q, "g", G, hg);
        if (!q.ok) r.bad("momentum:" + q.log);
    }
    for (int mode = 0; mode < 3; mode++) // Muon apply, each rounding mode, wd on (and off for "none")
        for (int wdon = 0; wdon < (mode == 0 ? 2 : 1); wdon++) {
            pt_emu_ol<float> P(one, o1), U(one, o1);
            pt_emu_fill(P, rng, 1.0), pt_emu_fill(U, rng, 0.3);
            auto hp = P.host(), hu = U.host();
            pt_apply_args a{n, P.at(0), U.at(0), 0.02, wdon || mode ? 0.1 : 0.0, 1.5, mode};
            pt_emu_gpu<pt_apply_kernel>("optim_apply")(&a);
            expect("k_apply");
            a.p = hp[0].data(), a.u = hu[0].data();
            pt_emu_cpu<pt_apply_kernel>("optim_apply")(&a);
            pt_emu_res q;
            pt_emu_check(q, "p", P, hp), pt_emu_check(q, "u", U, hu);
            if (!q.ok) r.bad(std::string("apply ") + pt_emu_round_name(mode) + ":" + q.log);
        }
    { // EMA
        pt_emu_ol<float> E(one, o1), W(one, o1);
        pt_emu_fill(E, rng, 1.0), pt_emu_fill(W, rng, 1.0);
        auto he = E.host(), hw = W.host();
        pt_ema_args a{n, E.at(0), W.at(0), 0.995};
        pt_emu_gpu<pt_ema_kernel>("optim_ema")(&a);
        expect("k_ema");
        a.ema = he[0].data(), a.w = hw[0].data();
        pt_emu_cpu<pt_ema_kernel>("optim_ema")(&a);
        pt_emu_res q;
        pt_emu_check(q, "ema", E, he), pt_emu_check(q, "w", W, hw);
        if (!q.ok) r.bad("ema:" + q.log);
    }
    { // scale f32 and f64
        pt_emu_ol<float> X(one, o1);
        pt_emu_ol<double> Y(one, o1);
        pt_emu_fill(X, rng, 1.0), pt_emu_fill(Y, rng, 1.0);
        auto hx = X.host();
        auto hy = Y.host();
        pt_scale_args a{n, X.at(0), 0.3};
        pt_emu_gpu<pt_scale_kernel>("optim_scale", PT_F32)(&a);
        expect("k_scale<T>");
        a.x = hx[0].data();
        pt_emu_cpu<pt_scale_kernel>("optim_scale", PT_F32)(&a);
        pt_scale_args b{n, Y.at(0), 0.3};
        pt_emu_gpu<pt_scale_kernel>("optim_scale", PT_F64)(&b);
        expect("k_scale<T>");
        b.x = hy[0].data();
        pt_emu_cpu<pt_scale_kernel>("optim_scale", PT_F64)(&b);
        pt_emu_res q;
        pt_emu_check(q, "x f32", X, hx), pt_emu_check(q, "x f64", Y, hy);
        if (!q.ok) r.bad("scale:" + q.log);
    }
    { // SWA: add and average, f32 and bf16 (launches named by PT_SWA_LAUNCH's parameter, "K")
        pt_emu_ol<float> S(one, o1), W(one, o1), O(one, o1);
        pt_emu_fill(S, rng, 1.0), pt_emu_fill(W, rng, 1.0);
        auto hs = S.host(), hw = W.host(), ho = O.host();
        pt_swa_args a{n, S.at(0), W.at(0), O.at(0), 3.0};
        pt_emu_gpu<pt_swa_kernel>("optim_swa_add", PT_F32)(&a);
        expect("K");
        pt_emu_gpu<pt_swa_kernel>("optim_swa_avg", PT_F32)(&a);
        expect("K");
        a.sum = hs[0].data(), a.w = hw[0].data(), a.out = ho[0].data();
        pt_emu_cpu<pt_swa_kernel>("optim_swa_add", PT_F32)(&a);
        pt_emu_cpu<pt_swa_kernel>("optim_swa_avg", PT_F32)(&a);
        pt_emu_ol<uint16_t> Sb(one, o1), Wb(one, o1), Ob(one, o1);
        for (int64_t i = 0; i < n; i++) // bf16 values of the f32 ones
            Sb.at(0)[i] = pt_emu_tobf(S.at(0)[i]), Wb.at(0)[i] = pt_emu_tobf(W.at(0)[i]);
        auto hsb = Sb.host(), hwb = Wb.host(), hob = Ob.host();
        pt_swa_args b{n, Sb.at(0), Wb.at(0), Ob.at(0), 7.0};
        pt_emu_gpu<pt_swa_kernel>("optim_swa_add", PT_BF16)(&b);
        expect("K");
        pt_emu_gpu<pt_swa_kernel>("optim_swa_avg", PT_BF16)(&b);
        expect("K");
        b.sum = hsb[0].data(), b.w = hwb[0].data(), b.out = hob[0].data();
        pt_emu_cpu<pt_swa_kernel>("optim_swa_add", PT_BF16)(&b);
        pt_emu_cpu<pt_swa_kernel>("optim_swa_avg", PT_BF16)(&b);
        pt_emu_res q;
        pt_emu_check(q, "sum", S, hs), pt_emu_check(q, "avg", O, ho), pt_emu_check(q, "w", W, hw);
        pt_emu_check(q, "sum bf16", Sb, hsb), pt_emu_check(q, "avg bf16", Ob, hob), pt_emu_check(q, "w bf16", Wb, hwb);
        if (!q.ok) r.bad("swa:" + q.log);
    }
    if (r.ok) r.note("adamw, sgd x4, momentum x2, apply x4, ema, scale x2, swa add/avg f32 + bf16: all exact;");
    char head[120];
    snprintf(head, sizeof head, "per-tensor kernels n=%lld%s", (long long)n, off ? " (views 1 element in)" : "");
    return pt_emu_report(head, r);
}

int main() {
    bool all = true;
    // AdamW / Adam: 100 tensors = parts of 48, 48, 4; 3 steps (state carried)
    all &= pt_emu_adamw_multi(100, false, 3, true);
    all &= pt_emu_adamw_multi(100, false, 1, false);
    all &= pt_emu_adamw_multi(20, true, 2, true);
    all &= pt_emu_adamw_multi(3, false, 1, false); // sizes 4096, 1, 4097
    {                                              // a list of empty tensors: nothing launched
        pt_emu_res r;
        float dummy[4];
        double row[PT_ADAMW_NSCAL];
        pt_emu_adamw_row(row, 1, 1e-3, 0.9, 0.999, 1e-8, 0.0, 0);
        pt_mt_args a{};
        a.n = 3, a.scal = row;
        for (int j = 0; j < 3; j++) a.t[0][j] = a.t[1][j] = a.t[2][j] = a.t[3][j] = dummy;
        pt_emu_gpu<pt_mt_kernel>("optim_adamw_multi")(&a);
        pt_emu_gpu<pt_mt_kernel>("optim_momentum_multi")(&a);
        pt_emu_gpu<pt_mt_kernel>("optim_apply_multi")(&a);
        pt_emu_gpu<pt_mt_kernel>("optim_ema_multi")(&a);
        pt_emu_gpu<pt_mt_kernel>("optim_scale_multi")(&a);
        pt_emu_expect(r, {});
        all &= pt_emu_report("multi updates over 3 empty tensors: no launch", r);
    }
    // Muon: two launches (groups) over one scalar buffer, 20 + 50 params, no Newton–Schulz
    std::vector<pt_emu_mshape> cyc = {{0, 8, 12}, {0, 3, 5},    {0, 64, 100}, {0, 1, 7},  {2, 4, 6}, {0, 12, 8},
                                      {0, 5, 3},  {0, 33, 130}, {0, 16, 16},  {3, 8, 12}, {0, 1, 1}};
    std::vector<pt_emu_mshape> s20, s50;
    for (int j = 0; j < 20; j++) s20.push_back(cyc[(size_t)j % cyc.size()]);
    for (int j = 0; j < 50; j++) s50.push_back(cyc[(size_t)(j + 3) % cyc.size()]);
    all &= pt_emu_muon("momentum + apply",
                       {{s20, 0.02, 0.95, 0.0, 0.0, 1, PT_MUON_ROUND_SCALED, 0, 0, 0, nullptr},
                        {s50, 0.05, 0.9, 0.1, 2.0, 0, PT_MUON_ROUND_UNIT, 0, 0, 0, nullptr}},
                       2);
    // Muon with Newton–Schulz on the banks (bf16, bf16 + row norm with per-step tuples, f32)
    all &= pt_emu_muon(
        "momentum + NS + apply",
        {{{{0, 8, 12}, {0, 12, 8}, {2, 8, 12}, {0, 5, 3}, {0, 8, 12}},
          0.02,
          0.95,
          0.01,
          0.0,
          1,
          PT_MUON_ROUND_NONE,
          5,
          PT_NS_BF16,
          1,
          &k_pt_emu_ns5[0][0]},
         {{{0, 12, 8}, {3, 6, 10}, {0, 16, 16}},
          0.03,
          0.9,
          0.0,
          0.0,
          0,
          PT_MUON_ROUND_SCALED,
          4,
          PT_NS_BF16 | PT_NS_ROW_NORM,
          4,
          &k_pt_emu_ns4[0][0]},
         {{{0, 10, 6}, {0, 7, 9}}, 0.01, 0.8, 0.2, 1.0, 1, PT_MUON_ROUND_UNIT, 3, 0, 1, &k_pt_emu_ns5[0][0]}},
        2);
    all &= pt_emu_ns(5, 12, 20, 2, 4, &k_pt_emu_ns4[0][0], 4, PT_NS_BF16 | PT_NS_ROW_NORM);
    all &= pt_emu_ns(3, 20, 12, 3, 5, &k_pt_emu_ns5[0][0], 1, PT_NS_BF16);
    all &= pt_emu_ns(2, 9, 9, 1, 5, &k_pt_emu_ns5[0][0], 1, PT_NS_ROW_NORM);
    // EMA
    all &= pt_emu_ema_multi(60, true, 2);
    all &= pt_emu_ema_multi(10, false, 1);
    // Σx², norm, clip
    std::vector<int64_t> s52, s50d;
    const int64_t sq[] = {0, 1, 3, 2047, 2048, 2049, 5000, 32769, 7, 64, 40000, 12};
    for (int j = 0; j < 52; j++) s52.push_back(sq[j % 12]);
    for (int j = 0; j < 50; j++) s50d.push_back(sq[(j + 5) % 12] / 2);
    all &= pt_emu_clip<float>("list", s52, true);
    all &= pt_emu_clip<double>("list", s50d, true);
    all &= pt_emu_clip<float>("one tensor at the 1024-partial cap", {(int64_t)PT_SUMSQ_PARTS * 2048 + 3}, false);
    all &= pt_emu_sumsq_capture();
    // per-tensor kernels
    all &= pt_emu_per_tensor(0, 0);
    all &= pt_emu_per_tensor(1, 0);
    all &= pt_emu_per_tensor(300, 1);
    all &= pt_emu_per_tensor(5003, 0);
    printf(all ? "ALL OK\n" : "FAIL\n");
    return all ? 0 : 1;
}
