// tests/emu/elementwise_emu.cpp — runs the contiguous fast path of src/kernels/cuda/elementwise.cu
// (k_fast, k_where_fast) and of copy.cu (k_cast_fast) on the CPU, by emulation, through the registered
// launchers, and requires the bits of the general CUDA kernels (emulated too) and of the CPU kernels
// (src/kernels/cpu/elementwise.c; for casts the tensor library's CPU copy) for every element.
// ctest: elementwise_emu (label "emu").
//
// How: as tests/emu/fused_norm_emu.cpp (read its header). tests/emu/extract_kernels.cmake cuts
// elementwise.cu from its "device math" banner to its "end of file" banner (kernels, launchers,
// registration) into elementwise_kernels.inc, and from copy.cu the geometry struct and everything from
// pt_word to the end of k_fill (kernels, pt_cast_fast, pt_launch_cast_fast) into copy_kernels.inc; the
// launches run on tests/emu/emu_warp.h, the launchers' host calls on tests/emu/emu_host.h. The CUDA
// kernels register themselves in the dispatch table (src/kernels/dispatch.c is linked in), so a case
// calls pt_kernel_find(name, PT_DEV_CUDA, dtype) exactly as the op fronts do, with the pt_ew_args the
// front (src/kernels/elementwise.c pt_ew_run) would build: output contiguous, operands by strides
// over the output's (collapsed) shape, pointers at their view offsets.
//
// Per case, three runs of the same operands:
//   fast     the registered launcher on contiguous operands; the launch log must show the fast kernel
//            ("k_fast<...>" / "k_where_fast<T>") where the dispatch rule says so — every operand one
//            contiguous run (same shape, a [C] row over the rows, one element, the scalar argument),
//            float dtypes, 0 < n < 2^31, comparisons only for same-shape and scalar operands — and the
//            general kernel otherwise; its grid tells the 16-byte vector loop from the one-at-a-time
//            loop (blocks for n/V + n%V items against n), and must be the one the alignment rule
//            predicts: every pointer of a loaded operand and the output aligned to V elements (16 bytes;
//            V bytes for bool outputs and where's condition), every row length a multiple of V
//   general  the same values through the general kernel: the registered launcher again, on copies of
//            the operands spread to stride 2 (so the launcher must refuse the fast path and launch
//            k_binary / k_unary / k_leaky / k_clamp / k_where / k_axpy), or, where no layout reaches it
//            (the *_bwd kernels are contiguous by contract, axpy with one element, n = 1), the general
//            kernel launched directly as its launcher would (pt_cuda_blocks(n) blocks of PT_THREADS)
//   oracle   the CPU kernel on the same strides; bf16: the f32 CPU kernel on the widened values,
//            each output rounded once with tensor.c's pt_f32_to_bf16 (bf16 is a storage type)
// and fast == general == oracle bit for bit, except that any NaN matches any NaN (pt_ee_same: payloads
// and signs follow the operand order the compiler picks and its folding of float -> double -> float; a
// GPU returns its canonical NaN; the count of such elements is printed).
// Outputs start as 0xff bytes (NaN, or an impossible bool) inside guard zones: an element not written,
// a write past the output or into the elements before a misaligned view, fails the case.
//
// Coverage (f32, f64, bf16 storage; V = 4, 2, 8): sizes 0, 1, 3, 4, 5, 1023, 4097; views misaligned by
// 4, 8, 12 bytes (f64: 8; bf16 also 2) on the output, one operand or all; ew_binary (10 ops, the
// comparisons with bool output), ew_binary_s (scalar on either side), ew_unary (all 15 ops), ew_leaky,
// ew_clamp, ew_unary_bwd (all 15, x or y absent), ew_leaky_bwd, ew_clamp_bwd, ew_where, ew_axpy; [N, C]
// with a [C] row on either side (C = 1, 3, 8, 12, 24, 1000, 1001, rows a multiple of V or not, the row
// misaligned), one element on either side, [3, 5, 8] with [8] and [5, 8] rows (uncollapsed shapes),
// a column [N, 1] (general path); a comparison with a row or one element (general path); a grid capped
// by pt_cuda_sm_count = 0 (one block: the grid-stride loops take many steps). Casts: all 12 pairs of
// f32, f64, bf16, f16, the same sizes, each side misaligned, and every 16-bit pattern as a source.
// Output: a line per group (kernel, dtype, geometry) with its case count, how many ran the vector loop,
// the one-at-a-time loop and the general kernel, and the mismatches; each failing case by name.
// What it cannot catch: see fused_norm_emu.cpp (CUDA's own libm and nvcc's FMA contraction, races,
// speed); misaligned vector accesses trap under -fsanitize=alignment (x86 would allow them).
//
// Run: ctest --test-dir build -R elementwise_emu --output-on-failure   (or build/elementwise_emu; ~6 s).
// Build by hand (in the repository root; /tmp/emu exists):
//   cmake -DSRC=src/kernels/cuda/elementwise.cu -DOUT=/tmp/emu/elementwise_kernels.inc
//     "-DBEGIN1=/* ---------------------------------------------------------------- device math */"
//     "-DEND1=/* ---------------------------------------------------------------- end of file" -DBEGIN2=
//     -P tests/emu/extract_kernels.cmake
//   cmake -DSRC=src/kernels/cuda/copy.cu -DOUT=/tmp/emu/copy_kernels.inc "-DBEGIN1=struct pt_copy_geom {"
//     "-DEND1=/* Drops size-1 dims" "-DBEGIN2=template <int W> struct pt_word;"
//     "-DEND2=/* element range [lo, hi]" -P tests/emu/extract_kernels.cmake
//   (cd /tmp/emu && gcc -O2 -D_GNU_SOURCE -ffp-contract=off -fopenmp -c $OLDPWD/src/kernels/cpu/elementwise.c
//     $OLDPWD/tests/emu/elementwise_emu_tensor.c $OLDPWD/src/kernels/dispatch.c $OLDPWD/src/host/status.c)
//   g++ -std=c++20 -O2 -D_GNU_SOURCE -ffp-contract=off -fno-strict-aliasing -Wno-unknown-pragmas
//     -fsanitize=alignment -fno-sanitize-recover=alignment -Itests/emu/shim -I/tmp/emu -Isrc/kernels/cuda
//     tests/emu/elementwise_emu.cpp /tmp/emu/elementwise.o /tmp/emu/elementwise_emu_tensor.o
//     /tmp/emu/dispatch.o /tmp/emu/status.o -fopenmp -o /tmp/emu/elementwise_emu && /tmp/emu/elementwise_emu
// Mutation checks (manual; each must print FAIL and exit 1, or stop at an alignment trap), added to the
// cmake -P line of the file as "-DMUTATE_FROM=..." "-DMUTATE_TO=..." (all checked when this test was written):
//   elementwise.cu:
//   pt_pack_ld(p, P + i % row);                        -> pt_pack_ld(p, P + i);    a row read as a full operand
//   if (kind[k] == PT_FK_ROW) vec = vec && R[k] % (uint32_t)V == 0;   -> (empty)   vectors across a row's end (trap)
//   for (uint32_t i = t * V; i < f.nvec; i += step * V) -> ... i <= f.nvec ...     one vector too many (trap)
//   for (uint32_t i = f.nvec + t; i < f.n; i += step)   -> ... i < f.n - 1 ...     the last element unwritten
//   bool vec = (uintptr_t)g->out % ((uintptr_t)V * out_es) == 0;   -> bool vec = true;   misaligned stores (trap)
//   if (g->shape[d] != 1 && st[d] != 0) return -1;      -> ... st[d] < 0) ...      a column taken as a run
//   (KB == PT_FK_FULL || KB == PT_FK_NUM)  -> (KB == PT_FK_FULL || KB == PT_FK_NUM || KB == PT_FK_ONE)
//                                          comparisons with one element on the fast path: the launch log
//   po.e[j] = pc.e[j] ? pa.e[j] : pb.e[j];              -> ... ? pb.e[j] : pa.e[j];   where's vector loop
//   copy.cu:
//   uint32_t nvec = pt_aligned16(dst) && pt_aligned16(src) ? n - n % V : 0;  -> ... pt_aligned16(dst) ? ...
//                                                                               unaligned source loads (trap)
//   constexpr int V = 16 / (sizeof(S) < sizeof(D) ? ...  -> ... sizeof(S) > sizeof(D) ...   k_cast_fast's width
//   pd.e[j] = pt_cast_st<DDT>(pt_cast_ld<SDT>(ps.e[j]));  -> ... ps.e[j ^ 1] ...    swapped pairs in a vector
//   case PT_F16: return pt_cast_ld<PT_F16>               -> ... pt_cast_ld<PT_BF16>   k_copy_cast (general) f16 loads
// (A mutation that makes a grid huge, e.g. nvec past n, is caught too but runs for many minutes: the
// emulator runs every thread of the capped grid.)
#include <memory>
#include <random>

#define PT_EMU_NAME "elementwise_emu"
#define PT_EMU_SMEM pt_ee_emu_dyn_smem // these kernels have no dynamic shared memory
#define PT_EMU_INPUTS_WHAT "nothing (elementwise.cu and copy.cu have no cp.async)"
#include "emu_warp.h" // the CUDA execution model: fibers, barriers, shared memory, launches
#include "emu_host.h" // pt_cuda_sm_count / streams / launch checks / pending errors for the launchers

extern "C" {
#include "../pt_elementwise.h"
#include "../pt_ops.h"
}

#include "elementwise_kernels.inc" // elementwise.cu: kernels, launchers, registration (PT_DEV_CUDA)
#include "copy_kernels.inc"        // copy.cu: k_copy_cast, k_cast_fast, pt_cast_fast

// ---------------------------------------------------------------- dtypes
template <typename T> struct pt_ee_t;
template <> struct pt_ee_t<float> {
    typedef float O; // the oracle's element type
    static constexpr pt_dtype dt = PT_F32, odt = PT_F32;
    static constexpr const char *name = "f32";
    static float make(double v) { return (float)v; }
    static O widen(float v) { return v; }
    static float narrow(O v) { return v; }
};
template <> struct pt_ee_t<double> {
    typedef double O;
    static constexpr pt_dtype dt = PT_F64, odt = PT_F64;
    static constexpr const char *name = "f64";
    static double make(double v) { return v; }
    static O widen(double v) { return v; }
    static double narrow(O v) { return v; }
};
template <> struct pt_ee_t<pt_bf16> {
    typedef float O;
    static constexpr pt_dtype dt = PT_BF16, odt = PT_F32;
    static constexpr const char *name = "bf16";
    static pt_bf16 make(double v) { return pt_bf16{pt_f32_to_bf16((float)v)}; } // tensor.c's rounding
    static O widen(pt_bf16 v) { return pt_bf16_to_f32(v.x); }
    static pt_bf16 narrow(O v) { return pt_bf16{pt_f32_to_bf16(v)}; }
};

// ---------------------------------------------------------------- guarded, 64-byte aligned memory
struct pt_ee_mem {
    static constexpr size_t G = 256; // guard bytes on each side (0xbf)
    unsigned char *base;
    size_t n;
    pt_ee_mem(size_t nbytes, unsigned char fill) : n(nbytes) {
        base = (unsigned char *)aligned_alloc(64, (nbytes + 2 * G + 63) / 64 * 64);
        if (!base) {
            fprintf(stderr, PT_EMU_NAME ": out of memory\nFAIL\n");
            exit(1);
        }
        memset(base, 0xbf, G);
        memset(base + G, fill, nbytes);
        memset(base + G + nbytes, 0xbf, G);
    }
    pt_ee_mem(const pt_ee_mem &) = delete;
    pt_ee_mem &operator=(const pt_ee_mem &) = delete;
    ~pt_ee_mem() { free(base); }
    unsigned char *data() { return base + G; }
    bool guards_ok() const {
        for (size_t i = 0; i < G; i++)
            if (base[i] != 0xbf || base[G + n + i] != 0xbf) return false;
        return true;
    }
};

// values: mostly N(0, 2), one in 16 a special (zeros, ±inf, NaN, ties for round, exp's overflow)
static double pt_ee_draw(std::mt19937 &rng) {
    static const double sp[] = {0.0,      -0.0,      1.0, -1.0,  0.5,    -2.5,  2.5,
                                INFINITY, -INFINITY, NAN, 100.0, -100.0, 1e-30, 3.0};
    if (rng() % 16 == 0) return sp[rng() % (sizeof sp / sizeof sp[0])];
    return 2.0 * std::normal_distribution<double>(0.0, 1.0)(rng);
}

// ---------------------------------------------------------------- cases
enum { PT_EE_ABSENT = 0, PT_EE_FULL, PT_EE_ROW, PT_EE_ONE, PT_EE_COL };
struct pt_ee_opnd {
    int kind = PT_EE_ABSENT;
    int64_t st[PT_MAX_DIMS] = {};
    int64_t row = 0; // PT_EE_ROW: the run's length
    int off = 0;     // element offset of the view from a 64-byte aligned address
};
struct pt_ee_case {
    std::string group, what;
    const char *kname = "";
    int op = 0;
    int ndim = 1;
    int64_t shape[PT_MAX_DIMS] = {};
    pt_ee_opnd o[3]; // a, b, c
    int out_off = 0; // elements (bytes for bool outputs)
    double s = 0, s2 = 0;
    int scalar_first = 0;
    bool fast = true; // the dispatch rule: the launcher takes the fast path
    int sms = 132;    // pt_cuda_sm_count during the CUDA runs
};
static int64_t pt_ee_numel(const pt_ee_case &k) {
    int64_t n = 1;
    for (int d = 0; d < k.ndim; d++) n *= k.shape[d];
    return n;
}
static pt_ee_opnd pt_ee_full(const pt_ee_case &k, int off = 0) {
    pt_ee_opnd o;
    o.kind = PT_EE_FULL, o.off = off;
    int64_t s = 1;
    for (int d = k.ndim - 1; d >= 0; d--) o.st[d] = s, s *= k.shape[d];
    return o;
}
// the trailing `keep` dims contiguous, the others broadcast: a run of row elements repeated
static pt_ee_opnd pt_ee_row(const pt_ee_case &k, int keep, int off = 0) {
    pt_ee_opnd o;
    o.kind = PT_EE_ROW, o.off = off, o.row = 1;
    for (int d = k.ndim - 1; d >= k.ndim - keep; d--) o.st[d] = o.row, o.row *= k.shape[d];
    return o;
}
static pt_ee_opnd pt_ee_one(int off = 0) {
    pt_ee_opnd o;
    o.kind = PT_EE_ONE, o.off = off;
    return o;
}
// [N, 1] over [N, C]: a column (not a run: the general kernel), unless N or C is 1
static pt_ee_opnd pt_ee_col(const pt_ee_case &k, int off = 0) {
    if (k.shape[1] == 1) return pt_ee_full(k, off);
    if (k.shape[0] == 1) return pt_ee_one(off);
    pt_ee_opnd o;
    o.kind = PT_EE_COL, o.off = off, o.st[0] = 1;
    return o;
}
static int64_t pt_ee_extent(const pt_ee_case &k, const pt_ee_opnd &o) {
    if (pt_ee_numel(k) == 0) return 0;
    int64_t e = 1;
    for (int d = 0; d < k.ndim; d++) e += (k.shape[d] - 1) * o.st[d];
    return e;
}

static bool pt_ee_is(const pt_ee_case &k, const char *name) { return !strcmp(k.kname, name); }
static bool pt_ee_bwd(const pt_ee_case &k) {
    return pt_ee_is(k, "ew_unary_bwd") || pt_ee_is(k, "ew_leaky_bwd") || pt_ee_is(k, "ew_clamp_bwd");
}
static bool pt_ee_cmp(const pt_ee_case &k) {
    return (pt_ee_is(k, "ew_binary") || pt_ee_is(k, "ew_binary_s")) && k.op >= PT_BIN_EQ;
}
static const char *pt_ee_general_name(const pt_ee_case &k) {
    if (pt_ee_is(k, "ew_binary") || pt_ee_is(k, "ew_binary_s")) return "k_binary<T, OP, MODE>";
    if (pt_ee_is(k, "ew_unary")) return "k_unary<T, OP>";
    if (pt_ee_is(k, "ew_leaky")) return "k_leaky<T>";
    if (pt_ee_is(k, "ew_clamp")) return "k_clamp<T>";
    if (pt_ee_is(k, "ew_where")) return "k_where<T>";
    if (pt_ee_is(k, "ew_axpy")) return "k_axpy<T>";
    if (pt_ee_is(k, "ew_unary_bwd")) return "k_unary_bwd<T, OP>";
    if (pt_ee_is(k, "ew_leaky_bwd")) return "k_leaky_bwd<T>";
    return "k_clamp_bwd<T>";
}

// the general kernels launched directly, as their launchers would (PT_LAUNCH: pt_cuda_blocks(n) blocks of
// PT_THREADS): for what no operand layout reaches through a launcher (the *_bwd kernels are contiguous
// by contract, axpy with one element, and n = 1, where every layout is one contiguous run)
template <typename T, int MODE> static bool pt_ee_direct_binary(const pt_ew_args &g, dim3 grid, dim3 block) {
    const typename pt_math<T>::type s = pt_scalar<typename pt_math<T>::type>(g.s);
    switch (g.op) {
#define PT_EE_BIN(OP)                                                                                                  \
    case OP: pt_emu_launch_kernel(k_binary<T, OP, MODE>, "k_binary<T, OP, MODE>", grid, block)(g, s); return true;
        PT_EE_BIN(PT_BIN_ADD)
        PT_EE_BIN(PT_BIN_SUB)
        PT_EE_BIN(PT_BIN_MUL)
        PT_EE_BIN(PT_BIN_DIV)
        PT_EE_BIN(PT_BIN_POW)
        PT_EE_BIN(PT_BIN_MAX)
        PT_EE_BIN(PT_BIN_MIN)
        PT_EE_BIN(PT_BIN_EQ)
        PT_EE_BIN(PT_BIN_NE)
        PT_EE_BIN(PT_BIN_LT)
        PT_EE_BIN(PT_BIN_LE)
        PT_EE_BIN(PT_BIN_GT)
        PT_EE_BIN(PT_BIN_GE)
#undef PT_EE_BIN
    default: return false;
    }
}
template <typename T> static void pt_ee_direct(const pt_ee_case &k, const pt_ew_args &g) {
    typedef typename pt_math<T>::type M;
    const dim3 grid(pt_cuda_blocks(g.n, PT_THREADS)), block(PT_THREADS);
    const M s = pt_scalar<M>(g.s), s2 = pt_scalar<M>(g.s2);
    bool done = true;
    if (pt_ee_is(k, "ew_binary")) done = pt_ee_direct_binary<T, 0>(g, grid, block);
    else if (pt_ee_is(k, "ew_binary_s"))
        done = g.scalar_first ? pt_ee_direct_binary<T, 2>(g, grid, block) : pt_ee_direct_binary<T, 1>(g, grid, block);
    else if (pt_ee_is(k, "ew_unary") || pt_ee_is(k, "ew_unary_bwd")) {
        const bool bwd = pt_ee_is(k, "ew_unary_bwd");
        switch (g.op) {
#define PT_EE_UN(OP)                                                                                                   \
    case OP:                                                                                                           \
        if (bwd) pt_emu_launch_kernel(k_unary_bwd<T, OP>, "k_unary_bwd<T, OP>", grid, block)(g);                       \
        else pt_emu_launch_kernel(k_unary<T, OP>, "k_unary<T, OP>", grid, block)(g);                                   \
        break;
            PT_EE_UN(PT_UN_NEG)
            PT_EE_UN(PT_UN_EXP)
            PT_EE_UN(PT_UN_LOG)
            PT_EE_UN(PT_UN_TANH)
            PT_EE_UN(PT_UN_SIGMOID)
            PT_EE_UN(PT_UN_RELU)
            PT_EE_UN(PT_UN_SQRT)
            PT_EE_UN(PT_UN_RSQRT)
            PT_EE_UN(PT_UN_ABS)
            PT_EE_UN(PT_UN_SIGN)
            PT_EE_UN(PT_UN_ROUND)
            PT_EE_UN(PT_UN_SIN)
            PT_EE_UN(PT_UN_COS)
            PT_EE_UN(PT_UN_SQUARE)
            PT_EE_UN(PT_UN_RECIPROCAL)
#undef PT_EE_UN
        default: done = false;
        }
    } else if (pt_ee_is(k, "ew_leaky")) pt_emu_launch_kernel(k_leaky<T>, "k_leaky<T>", grid, block)(g, s);
    else if (pt_ee_is(k, "ew_leaky_bwd")) pt_emu_launch_kernel(k_leaky_bwd<T>, "k_leaky_bwd<T>", grid, block)(g, s);
    else if (pt_ee_is(k, "ew_clamp")) pt_emu_launch_kernel(k_clamp<T>, "k_clamp<T>", grid, block)(g, s, s2);
    else if (pt_ee_is(k, "ew_clamp_bwd")) pt_emu_launch_kernel(k_clamp_bwd<T>, "k_clamp_bwd<T>", grid, block)(g, s, s2);
    else if (pt_ee_is(k, "ew_where")) pt_emu_launch_kernel(k_where<T>, "k_where<T>", grid, block)(g);
    else if (pt_ee_is(k, "ew_axpy")) pt_emu_launch_kernel(k_axpy<T>, "k_axpy<T>", grid, block)(g, s);
    else done = false;
    if (!done) {
        fprintf(stderr, PT_EMU_NAME ": no direct launch for %s op %d\nFAIL\n", k.kname, g.op);
        exit(1);
    }
}

// ---------------------------------------------------------------- statistics, per group
struct pt_ee_group {
    std::string name;
    int cases = 0, vec = 0, scalar = 0, general = 0, failed = 0;
};
static std::vector<pt_ee_group> g_pt_ee_groups;
static int g_pt_ee_failures;
static pt_ee_group &pt_ee_grp(const std::string &name) {
    for (auto &g : g_pt_ee_groups)
        if (g.name == name) return g;
    g_pt_ee_groups.push_back({name});
    return g_pt_ee_groups.back();
}
static void pt_ee_fail(pt_ee_group &grp, const std::string &what, const std::string &why) {
    grp.failed++;
    if (++g_pt_ee_failures <= 40 || getenv("PT_EE_ALL")) printf("  FAIL %s: %s\n", what.c_str(), why.c_str());
}

// the one launch of the last call: name and grid
static std::string pt_ee_launch_check(const char *name, unsigned grid) {
    std::string why;
    if (g_pt_emu_launches.size() != 1) why = std::to_string(g_pt_emu_launches.size()) + " launches";
    else if (g_pt_emu_launches[0].name != name) why = "launched " + g_pt_emu_launches[0].name + ", expected " + name;
    else if (g_pt_emu_launches[0].grid.x != grid || g_pt_emu_launches[0].block.x != PT_THREADS)
        why = std::string(name) + " with grid " + std::to_string(g_pt_emu_launches[0].grid.x) + " x " +
              std::to_string(g_pt_emu_launches[0].block.x) + ", expected " + std::to_string(grid) + " x " +
              std::to_string(PT_THREADS);
    g_pt_emu_launches.clear();
    const pt_status s = pt_cuda_check_pending();
    if (s != PT_OK) why += std::string(why.empty() ? "" : "; ") + "pending error: " + pt_last_error();
    return why;
}
static bool pt_ee_aligned(const void *p, size_t bytes) { return (uintptr_t)p % bytes == 0; }

// NaN payloads and signs are not compared: x86 returns the first operand's NaN when both are NaN and
// the compiler may swap the operands of a commutative operation, it may fold a float -> double -> float
// round trip that would quiet a signalling NaN, and the GPU returns its canonical NaN. Elements match
// when their bits are equal or both are NaNs of their dtype (counted and printed).
static long g_pt_ee_nan_payloads;
static bool pt_ee_isnan(const unsigned char *p, pt_dtype dt) {
    if (dt == PT_F32) {
        float f;
        memcpy(&f, p, 4);
        return std::isnan(f);
    }
    if (dt == PT_F64) {
        double d;
        memcpy(&d, p, 8);
        return std::isnan(d);
    }
    uint16_t h;
    memcpy(&h, p, 2);
    if (dt == PT_BF16) return (h & 0x7f80u) == 0x7f80u && (h & 0x7fu);
    if (dt == PT_F16) return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu);
    return false; // bool
}
static bool pt_ee_same(const unsigned char *x, const unsigned char *y, size_t es, pt_dtype dt) {
    if (!memcmp(x, y, es)) return true;
    if (!pt_ee_isnan(x, dt) || !pt_ee_isnan(y, dt)) return false;
    g_pt_ee_nan_payloads++;
    return true;
}

// ---------------------------------------------------------------- one case: fast, general, oracle
template <typename T> static void pt_ee_run(const pt_ee_case &k) {
    typedef pt_ee_t<T> D;
    typedef typename D::O O;
    pt_ee_group &grp = pt_ee_grp(k.group);
    grp.cases++;
    std::mt19937 rng((unsigned)std::hash<std::string>{}(k.what));
    const int64_t n = pt_ee_numel(k);
    const bool cmp = pt_ee_cmp(k), bwd = pt_ee_bwd(k), where = pt_ee_is(k, "ew_where"), axpy = pt_ee_is(k, "ew_axpy");
    const size_t oes = cmp ? 1 : sizeof(T); // output element size
    const int V = 16 / (int)sizeof(T);

    // operands: values, the fast run's buffers (views at their offsets), the spread copies (stride 2)
    size_t es[3];
    int64_t ext[3];
    std::vector<std::vector<unsigned char>> vals(3);
    std::vector<std::unique_ptr<pt_ee_mem>> fb(3), sb(3);
    for (int j = 0; j < 3; j++) {
        es[j] = where && j == 2 ? 1 : sizeof(T);
        ext[j] = k.o[j].kind ? pt_ee_extent(k, k.o[j]) : 0;
        if (!k.o[j].kind) continue;
        vals[j].resize((size_t)ext[j] * es[j]);
        for (int64_t i = 0; i < ext[j]; i++) {
            if (es[j] == 1) {
                vals[j][(size_t)i] = (unsigned char)(rng() & 1u);
            } else {
                const T v = D::make(pt_ee_draw(rng));
                memcpy(&vals[j][(size_t)i * es[j]], &v, sizeof v);
            }
        }
        fb[j] = std::make_unique<pt_ee_mem>((size_t)(k.o[j].off + ext[j]) * es[j], 0xff);
        if (ext[j]) memcpy(fb[j]->data() + (size_t)k.o[j].off * es[j], vals[j].data(), vals[j].size());
        const int64_t sext = ext[j] ? 2 * ext[j] - 1 : 0;
        sb[j] = std::make_unique<pt_ee_mem>((size_t)sext * es[j], 0xff);
        for (int64_t i = 0; i < ext[j]; i++)
            memcpy(sb[j]->data() + (size_t)(2 * i) * es[j], &vals[j][(size_t)i * es[j]], es[j]);
    }
    // axpy's output is also its input
    std::vector<T> out0;
    if (axpy)
        for (int64_t i = 0; i < n; i++) out0.push_back(D::make(pt_ee_draw(rng)));
    auto make_out = [&]() {
        auto m = std::make_unique<pt_ee_mem>((size_t)(k.out_off + n) * oes, 0xff);
        if (axpy && n) memcpy(m->data() + (size_t)k.out_off * oes, out0.data(), (size_t)n * oes);
        return m;
    };

    pt_ew_args g;
    memset(&g, 0, sizeof g);
    g.op = k.op, g.ndim = k.ndim, g.n = n, g.s = k.s, g.s2 = k.s2, g.scalar_first = k.scalar_first;
    g.cdtype = where ? PT_BOOL : PT_F32;
    memcpy(g.shape, k.shape, sizeof g.shape);
    int64_t *gst[3] = {g.sa, g.sb, g.sc};
    const void **gp[3] = {&g.a, &g.b, &g.c};
    for (int j = 0; j < 3; j++)
        if (k.o[j].kind) {
            memcpy(gst[j], k.o[j].st, sizeof k.o[j].st);
            *gp[j] = fb[j]->data() + (size_t)k.o[j].off * es[j];
        }
    auto fo = make_out();
    g.out = fo->data() + (size_t)k.out_off * oes;

    // ---- fast: the registered launcher on the contiguous operands
    auto kern = (pt_ew_kernel)pt_kernel_find(k.kname, PT_DEV_CUDA, D::dt);
    if (!kern) {
        pt_ee_fail(grp, k.what, std::string("no CUDA kernel ") + k.kname + " registered");
        return;
    }
    bool vec = bwd ? pt_ee_aligned(g.out, 16) : pt_ee_aligned(g.out, (size_t)V * oes);
    for (int j = 0; j < 3; j++) {
        if (!k.o[j].kind || k.o[j].kind == PT_EE_ONE) continue;
        vec = vec && pt_ee_aligned(*gp[j], bwd ? 16 : (size_t)V * es[j]);
        if (k.o[j].kind == PT_EE_ROW) vec = vec && k.o[j].row % V == 0;
    }
    const bool fast = k.fast && n > 0;
    g_pt_emu_sm_count = k.sms;
    kern(&g);
    std::string why = fast ? pt_ee_launch_check(where ? "k_where_fast<T>" : "k_fast<T, OUT, F, KA, KB, KC>",
                                                pt_cuda_blocks(vec ? n / V + n % V : n, PT_THREADS))
                           : pt_ee_launch_check(pt_ee_general_name(k), pt_cuda_blocks(n, PT_THREADS));
    if (!why.empty()) why = "fast run: " + why;
    if (fast && vec && n >= V) grp.vec++;
    else if (fast) grp.scalar++;
    else grp.general++;

    // ---- general: the spread copies through the launcher, or a direct launch
    auto go = make_out();
    pt_ew_args g2 = g;
    g2.out = go->data() + (size_t)k.out_off * oes;
    const bool direct = bwd || (axpy && k.o[1].kind == PT_EE_ONE) || n == 1;
    if (direct) {
        pt_ee_direct<T>(k, g2);
    } else {
        int64_t *g2st[3] = {g2.sa, g2.sb, g2.sc};
        const void **g2p[3] = {&g2.a, &g2.b, &g2.c};
        for (int j = 0; j < 3; j++)
            if (k.o[j].kind) {
                for (int d = 0; d < k.ndim; d++) g2st[j][d] = 2 * k.o[j].st[d];
                *g2p[j] = sb[j]->data();
            }
        kern(&g2);
    }
    const std::string why2 = pt_ee_launch_check(pt_ee_general_name(k), pt_cuda_blocks(n, PT_THREADS));
    if (!why2.empty()) why += (why.empty() ? "" : "; ") + std::string("general run: ") + why2;
    g_pt_emu_sm_count = 132;

    // ---- oracle: the CPU kernel (f32 for bf16) on the widened operands, outputs rounded once
    std::vector<std::vector<O>> ov(3);
    pt_ew_args g3 = g;
    const void **g3p[3] = {&g3.a, &g3.b, &g3.c};
    for (int j = 0; j < 3; j++) {
        if (!k.o[j].kind || es[j] == 1) continue;
        ov[j].resize((size_t)ext[j]);
        for (int64_t i = 0; i < ext[j]; i++) {
            T v;
            memcpy(&v, &vals[j][(size_t)i * es[j]], sizeof v);
            ov[j][(size_t)i] = D::widen(v);
        }
        *g3p[j] = ov[j].data();
    }
    if (where) g3.c = vals[2].data();
    std::vector<O> oout((size_t)n);
    std::vector<uint8_t> bout((size_t)n);
    for (int64_t i = 0; i < n && axpy; i++) oout[(size_t)i] = D::widen(out0[(size_t)i]);
    g3.out = cmp ? (void *)bout.data() : (void *)oout.data();
    auto cpu = (pt_ew_kernel)pt_kernel_find(k.kname, PT_DEV_CPU, D::odt);
    if (!cpu) {
        pt_ee_fail(grp, k.what,
                   std::string("no CPU kernel ") + k.kname + " (src/kernels/cpu/elementwise.c not linked?)");
        return;
    }
    if (n) cpu(&g3); // the front never calls a kernel for an empty output
    std::vector<unsigned char> want((size_t)n * oes);
    for (int64_t i = 0; i < n; i++) {
        if (cmp) {
            want[(size_t)i] = bout[(size_t)i];
        } else {
            const T v = D::narrow(oout[(size_t)i]);
            memcpy(&want[(size_t)i * oes], &v, oes);
        }
    }

    // ---- bits
    const unsigned char *pf = (const unsigned char *)g.out, *pg = (const unsigned char *)g2.out;
    const pt_dtype odt = cmp ? PT_BOOL : D::dt;
    int64_t dfg = 0, dfo = 0, first = -1;
    for (int64_t i = 0; i < n; i++) {
        const bool a = !pt_ee_same(pf + i * oes, pg + i * oes, oes, odt),
                   b = !pt_ee_same(pf + i * oes, &want[(size_t)i * oes], oes, odt);
        dfg += a, dfo += b;
        if ((a || b) && first < 0) first = i;
    }
    if (dfg || dfo) {
        char b[240];
        snprintf(b, sizeof b, "%lld elements differ fast/general, %lld fast/oracle (first at %lld)", (long long)dfg,
                 (long long)dfo, (long long)first);
        why += (why.empty() ? "" : "; ") + std::string(b);
    }
    for (int j = 0; j < 3; j++)
        if (k.o[j].kind && (!fb[j]->guards_ok() || !sb[j]->guards_ok())) why += "; an operand's guard zone written";
    for (auto *m : {fo.get(), go.get()}) {
        if (!m->guards_ok()) why += "; the output's guard zone written";
        for (size_t i = 0; i < (size_t)k.out_off * oes; i++)
            if (m->data()[i] != 0xff) {
                why += "; an element before the output view written";
                break;
            }
    }
    if (!why.empty()) pt_ee_fail(grp, k.what, why);
}

// ---------------------------------------------------------------- case lists
template <typename T> static std::vector<int> pt_ee_misalign(); // element offsets: 4, 8, 12 bytes (+2 for bf16)
template <> std::vector<int> pt_ee_misalign<float>() { return {1, 2, 3}; }
template <> std::vector<int> pt_ee_misalign<double>() { return {1}; }
template <> std::vector<int> pt_ee_misalign<pt_bf16>() { return {1, 2, 4, 6}; }

static const int64_t pt_ee_sizes[] = {0, 1, 3, 4, 5, 1023, 4097};

static std::string pt_ee_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static std::string pt_ee_fmt(const char *fmt, ...) {
    char b[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, sizeof b, fmt, ap);
    va_end(ap);
    return b;
}
static pt_ee_case pt_ee_shape1(int64_t n) {
    pt_ee_case k;
    k.ndim = 1, k.shape[0] = n;
    return k;
}
static pt_ee_case pt_ee_shape2(int64_t r, int64_t c) {
    pt_ee_case k;
    k.ndim = 2, k.shape[0] = r, k.shape[1] = c;
    return k;
}
// offsets patterns over (out, a, b): none, each alone, all
struct pt_ee_offs {
    int out, a, b;
};
static std::vector<pt_ee_offs> pt_ee_patterns(const std::vector<int> &mis, bool two) {
    std::vector<pt_ee_offs> p = {{0, 0, 0}};
    for (int m : mis) {
        p.push_back({m, 0, 0}), p.push_back({0, m, 0});
        if (two) p.push_back({0, 0, m});
        p.push_back({m, m, two ? m : 0});
    }
    return p;
}

template <typename T> static void pt_ee_binary_cases() {
    const char *tn = pt_ee_t<T>::name;
    const int all_ops[] = {PT_BIN_ADD, PT_BIN_SUB, PT_BIN_MUL, PT_BIN_DIV, PT_BIN_POW,
                           PT_BIN_MAX, PT_BIN_MIN, PT_BIN_EQ,  PT_BIN_LT,  PT_BIN_GE};
    const int mis_ops[] = {PT_BIN_ADD, PT_BIN_DIV, PT_BIN_MAX, PT_BIN_LT};
    for (int64_t n : pt_ee_sizes) {
        for (int op : all_ops) {
            pt_ee_case k = pt_ee_shape1(n);
            k.kname = "ew_binary", k.op = op, k.o[0] = pt_ee_full(k), k.o[1] = pt_ee_full(k);
            k.group = pt_ee_fmt("ew_binary %s same shape, aligned, 10 ops", tn);
            k.what = pt_ee_fmt("ew_binary %s op %d n=%lld", tn, op, (long long)n);
            pt_ee_run<T>(k);
        }
        for (int op : mis_ops)
            for (const auto &p : pt_ee_patterns(pt_ee_misalign<T>(), true)) {
                if (!p.out && !p.a && !p.b) continue;
                pt_ee_case k = pt_ee_shape1(n);
                k.kname = "ew_binary", k.op = op, k.o[0] = pt_ee_full(k, p.a), k.o[1] = pt_ee_full(k, p.b);
                k.out_off = op >= PT_BIN_EQ ? p.out * (int)sizeof(T) : p.out; // bool output: the same bytes
                k.group = pt_ee_fmt("ew_binary %s same shape, misaligned views (add div max lt)", tn);
                k.what = pt_ee_fmt("ew_binary %s op %d n=%lld offsets out %d a %d b %d", tn, op, (long long)n,
                                   k.out_off, p.a, p.b);
                pt_ee_run<T>(k);
            }
    }
    // the scalar argument on either side
    const int s_ops[] = {PT_BIN_SUB, PT_BIN_DIV, PT_BIN_POW, PT_BIN_MAX, PT_BIN_GT};
    for (int64_t n : pt_ee_sizes)
        for (int op : s_ops)
            for (int sf = 0; sf < 2; sf++)
                for (const auto &p : pt_ee_patterns(pt_ee_misalign<T>(), false)) {
                    if ((p.out || p.a) && op != PT_BIN_SUB && op != PT_BIN_GT) continue;
                    pt_ee_case k = pt_ee_shape1(n);
                    k.kname = "ew_binary_s", k.op = op, k.o[0] = pt_ee_full(k, p.a),
                    k.s = op == PT_BIN_POW ? -0.75 : 1.5;
                    k.scalar_first = sf, k.out_off = op >= PT_BIN_EQ ? p.out * (int)sizeof(T) : p.out;
                    k.group = pt_ee_fmt("ew_binary_s %s a OP s and s OP a (5 ops; sub gt misaligned)", tn);
                    k.what = pt_ee_fmt("ew_binary_s %s op %d scalar_first %d n=%lld offsets out %d a %d", tn, op, sf,
                                       (long long)n, k.out_off, p.a);
                    pt_ee_run<T>(k);
                }
}

template <typename T> static void pt_ee_broadcast_cases() {
    const char *tn = pt_ee_t<T>::name;
    const int64_t shapes[][2] = {{37, 8}, {5, 1000}, {3, 1001}, {7, 3}, {9, 12}, {4, 24}, {6, 1}, {1, 1023}};
    const int ops[] = {PT_BIN_ADD, PT_BIN_MUL, PT_BIN_DIV, PT_BIN_POW, PT_BIN_MAX, PT_BIN_LT};
    enum { ROW_RIGHT, ROW_LEFT, ONE_RIGHT, ONE_LEFT, COL_RIGHT, NFORMS };
    static const char *form_name[NFORMS] = {"[N,C] op [C]", "[C] op [N,C]", "[N,C] op [1]", "[1] op [N,C]",
                                            "[N,C] op [N,1]"};
    for (const auto &sh : shapes)
        for (int op : ops)
            for (int form = 0; form < NFORMS; form++)
                for (int moff = 0; moff < 3; moff++) { // 0: aligned, 1: the broadcast operand off, 2: the output off
                    if (moff && op != PT_BIN_ADD && op != PT_BIN_LT) continue;
                    pt_ee_case k = pt_ee_shape2(sh[0], sh[1]);
                    const int m = moff == 1 ? pt_ee_misalign<T>()[0] : 0;
                    pt_ee_opnd big = pt_ee_full(k), small;
                    if (form == ROW_RIGHT || form == ROW_LEFT)
                        small = k.shape[1] == 1 ? pt_ee_one(m) : pt_ee_row(k, 1, m);
                    else if (form == COL_RIGHT) small = pt_ee_col(k, m);
                    else small = pt_ee_one(m);
                    if (k.shape[0] == 1 && small.kind == PT_EE_ROW) small.kind = PT_EE_FULL; // [1, C]: same shape
                    const bool left = form == ROW_LEFT || form == ONE_LEFT;
                    k.kname = "ew_binary", k.op = op, k.o[0] = left ? small : big, k.o[1] = left ? big : small;
                    k.out_off = moff == 2 ? (op >= PT_BIN_EQ ? 4 : pt_ee_misalign<T>()[0]) : 0;
                    const bool cmp = op >= PT_BIN_EQ;
                    k.fast = small.kind != PT_EE_COL && !(cmp && (small.kind == PT_EE_ROW || small.kind == PT_EE_ONE));
                    k.group = pt_ee_fmt("ew_binary %s broadcast: row, one element, column (6 ops)", tn);
                    k.what = pt_ee_fmt("ew_binary %s op %d %s N=%lld C=%lld%s", tn, op, form_name[form],
                                       (long long)sh[0], (long long)sh[1],
                                       moff == 1   ? " small operand misaligned"
                                       : moff == 2 ? " out misaligned"
                                                   : "");
                    pt_ee_run<T>(k);
                }
    // uncollapsed shapes: [3, 5, 8] with an [8] row and a [5, 8] row, both sides
    for (int keep = 1; keep <= 2; keep++)
        for (int left = 0; left < 2; left++)
            for (int op : {PT_BIN_SUB, PT_BIN_LT}) {
                pt_ee_case k;
                k.ndim = 3, k.shape[0] = 3, k.shape[1] = 5, k.shape[2] = 8;
                const pt_ee_opnd big = pt_ee_full(k), small = pt_ee_row(k, keep);
                k.kname = "ew_binary", k.op = op, k.o[0] = left ? small : big, k.o[1] = left ? big : small;
                k.fast = op < PT_BIN_EQ;
                k.group = pt_ee_fmt("ew_binary %s broadcast: [3,5,8] with [8] and [5,8] rows", tn);
                k.what =
                    pt_ee_fmt("ew_binary %s op %d [3,5,8] row of %d dims %s", tn, op, keep, left ? "left" : "right");
                pt_ee_run<T>(k);
            }
    // the grid capped to one block (pt_cuda_sm_count = 0): the grid-stride loops take many steps
    for (int op : {PT_BIN_ADD, PT_BIN_LT})
        for (int m : {0, pt_ee_misalign<T>()[0]}) {
            pt_ee_case k = pt_ee_shape2(41, 200);
            k.kname = "ew_binary", k.op = op, k.o[0] = pt_ee_full(k, m), k.o[1] = pt_ee_full(k), k.sms = 0;
            k.group = pt_ee_fmt("ew_binary %s one block (sm_count 0): grid-stride loops", tn);
            k.what = pt_ee_fmt("ew_binary %s op %d [41,200] sm_count 0 a offset %d", tn, op, m);
            pt_ee_run<T>(k);
            pt_ee_case r = k;
            r.o[1] = pt_ee_row(r, 1, m), r.o[0] = pt_ee_full(r), r.fast = op < PT_BIN_EQ;
            r.what += " b row";
            pt_ee_run<T>(r);
        }
}

template <typename T> static void pt_ee_unary_cases() {
    const char *tn = pt_ee_t<T>::name;
    for (int64_t n : pt_ee_sizes)
        for (int op = 0; op < PT_NUNOPS; op++) {
            pt_ee_case k = pt_ee_shape1(n);
            k.kname = "ew_unary", k.op = op, k.o[0] = pt_ee_full(k);
            k.group = pt_ee_fmt("ew_unary %s all 15 ops, aligned", tn);
            k.what = pt_ee_fmt("ew_unary %s op %d n=%lld", tn, op, (long long)n);
            pt_ee_run<T>(k);
        }
    for (int64_t n : pt_ee_sizes)
        for (const auto &p : pt_ee_patterns(pt_ee_misalign<T>(), false)) {
            for (int op : {PT_UN_EXP, PT_UN_SIGMOID, PT_UN_ROUND, PT_UN_RSQRT}) {
                if (!p.out && !p.a) continue;
                pt_ee_case k = pt_ee_shape1(n);
                k.kname = "ew_unary", k.op = op, k.o[0] = pt_ee_full(k, p.a), k.out_off = p.out;
                k.group = pt_ee_fmt("ew_unary %s misaligned (exp sigmoid round rsqrt)", tn);
                k.what = pt_ee_fmt("ew_unary %s op %d n=%lld offsets out %d a %d", tn, op, (long long)n, p.out, p.a);
                pt_ee_run<T>(k);
            }
            for (int clamp = 0; clamp < 2; clamp++) {
                pt_ee_case k = pt_ee_shape1(n);
                k.kname = clamp ? "ew_clamp" : "ew_leaky", k.o[0] = pt_ee_full(k, p.a), k.out_off = p.out;
                k.s = clamp ? -0.5 : 0.1, k.s2 = 0.7;
                k.group = pt_ee_fmt("ew_leaky, ew_clamp %s", tn);
                k.what = pt_ee_fmt("%s %s n=%lld offsets out %d a %d", k.kname, tn, (long long)n, p.out, p.a);
                pt_ee_run<T>(k);
            }
        }
    // the backward kernels: x = a, y = b, g = c, contiguous by contract
    for (int64_t n : pt_ee_sizes)
        for (int op = 0; op < PT_NUNOPS; op++) {
            pt_ee_case k = pt_ee_shape1(n);
            k.kname = "ew_unary_bwd", k.op = op, k.o[0] = pt_ee_full(k), k.o[1] = pt_ee_full(k), k.o[2] = pt_ee_full(k);
            k.group = pt_ee_fmt("ew_unary_bwd %s all 15 ops, aligned", tn);
            k.what = pt_ee_fmt("ew_unary_bwd %s op %d n=%lld", tn, op, (long long)n);
            pt_ee_run<T>(k);
        }
    const std::vector<int> mis = pt_ee_misalign<T>();
    for (int64_t n : pt_ee_sizes)
        for (int v = 0; v < 6; v++) { // x absent, y absent, then one pointer misaligned: out, x, y, g
            pt_ee_case k = pt_ee_shape1(n);
            const int m = mis[(size_t)v % mis.size()];
            k.kname = "ew_unary_bwd", k.op = v == 0 ? PT_UN_EXP : v == 1 ? PT_UN_LOG : v % 2 ? PT_UN_TANH : PT_UN_SQRT;
            k.o[0] = pt_ee_full(k, v == 3 ? m : 0), k.o[1] = pt_ee_full(k, v == 4 ? m : 0),
            k.o[2] = pt_ee_full(k, v == 5 ? m : 0);
            k.out_off = v == 2 ? m : 0;
            if (v == 0) k.o[0] = pt_ee_opnd(); // exp's backward reads y only
            if (v == 1) k.o[1] = pt_ee_opnd(); // log's reads x only
            k.group = pt_ee_fmt("ew_unary_bwd %s x or y absent, misaligned", tn);
            k.what = pt_ee_fmt("ew_unary_bwd %s op %d n=%lld variant %d", tn, k.op, (long long)n, v);
            pt_ee_run<T>(k);
        }
    for (int64_t n : pt_ee_sizes)
        for (int clamp = 0; clamp < 2; clamp++)
            for (int v = 0; v < 4; v++) { // aligned, out, x, g misaligned
                pt_ee_case k = pt_ee_shape1(n);
                k.kname = clamp ? "ew_clamp_bwd" : "ew_leaky_bwd", k.s = clamp ? -0.5 : 0.1, k.s2 = 0.7;
                k.o[0] = pt_ee_full(k, v == 2 ? mis[0] : 0), k.o[2] = pt_ee_full(k, v == 3 ? mis.back() : 0);
                k.out_off = v == 1 ? mis.back() : 0;
                k.group = pt_ee_fmt("ew_leaky_bwd, ew_clamp_bwd %s", tn);
                k.what = pt_ee_fmt("%s %s n=%lld variant %d", k.kname, tn, (long long)n, v);
                pt_ee_run<T>(k);
            }
}

template <typename T> static void pt_ee_where_axpy_cases() {
    const char *tn = pt_ee_t<T>::name;
    for (int64_t n : pt_ee_sizes)
        for (int v = 0; v < 6; v++) { // aligned; out, a, b misaligned; the condition off by 1 byte; by V bytes
            pt_ee_case k = pt_ee_shape1(n);
            const int m = pt_ee_misalign<T>()[0], V = 16 / (int)sizeof(T);
            k.kname = "ew_where", k.out_off = v == 1 ? m : 0;
            k.o[0] = pt_ee_full(k, v == 2 ? m : 0), k.o[1] = pt_ee_full(k, v == 3 ? m : 0);
            k.o[2] = pt_ee_full(k, v == 4 ? 1 : v == 5 ? V : 0);
            k.group = pt_ee_fmt("ew_where %s same shape", tn);
            k.what = pt_ee_fmt("ew_where %s n=%lld variant %d", tn, (long long)n, v);
            pt_ee_run<T>(k);
        }
    {
        pt_ee_case k = pt_ee_shape2(9, 40);
        k.kname = "ew_where", k.o[0] = pt_ee_full(k), k.o[1] = pt_ee_one(), k.o[2] = pt_ee_full(k), k.fast = false;
        k.group = pt_ee_fmt("ew_where %s broadcast (general)", tn);
        k.what = pt_ee_fmt("ew_where %s [9,40] b one element", tn);
        pt_ee_run<T>(k);
        k.o[1] = pt_ee_full(k), k.o[2] = pt_ee_row(k, 1);
        k.what = pt_ee_fmt("ew_where %s [9,40] condition a row", tn);
        pt_ee_run<T>(k);
    }
    const std::vector<int> mis = pt_ee_misalign<T>();
    for (int64_t n : pt_ee_sizes)
        for (int v = 0; v < 4; v++) { // b full: aligned, out off, b off; b one element
            pt_ee_case k = pt_ee_shape1(n);
            k.kname = "ew_axpy", k.s = 0.3, k.out_off = v == 1 ? mis.back() : 0;
            k.o[1] = v == 3 ? pt_ee_one() : pt_ee_full(k, v == 2 ? mis[0] : 0);
            k.group = pt_ee_fmt("ew_axpy %s b same shape or one element", tn);
            k.what = pt_ee_fmt("ew_axpy %s n=%lld variant %d", tn, (long long)n, v);
            pt_ee_run<T>(k);
        }
    const int64_t shapes[][2] = {{37, 8}, {5, 1000}, {3, 1001}, {9, 12}, {6, 1}};
    for (const auto &sh : shapes)
        for (int v = 0; v < 3; v++) { // row aligned, row misaligned, out misaligned
            pt_ee_case k = pt_ee_shape2(sh[0], sh[1]);
            k.kname = "ew_axpy", k.s = -1.25, k.out_off = v == 2 ? mis[0] : 0;
            k.o[1] = sh[1] == 1 ? pt_ee_one(v == 1 ? mis[0] : 0) : pt_ee_row(k, 1, v == 1 ? mis[0] : 0);
            k.group = pt_ee_fmt("ew_axpy %s b a [C] row", tn);
            k.what = pt_ee_fmt("ew_axpy %s [%lld,%lld] variant %d", tn, (long long)sh[0], (long long)sh[1], v);
            pt_ee_run<T>(k);
        }
}

template <typename T> static void pt_ee_dtype() {
    pt_ee_binary_cases<T>();
    pt_ee_broadcast_cases<T>();
    pt_ee_unary_cases<T>();
    pt_ee_where_axpy_cases<T>();
}

// ---------------------------------------------------------------- casts (copy.cu)
static size_t pt_ee_dsize(pt_dtype d) { return d == PT_F64 ? 8 : d == PT_F32 ? 4 : 2; }
static const char *pt_ee_dname(pt_dtype d) {
    return d == PT_F64 ? "f64" : d == PT_F32 ? "f32" : d == PT_BF16 ? "bf16" : "f16";
}
// source values: the 16-bit types as random or every bit pattern; f32 and f64 as numbers around every
// rounding boundary of the narrower types (ties of bf16 and f16, f16 overflow and subnormals, f32's range)
static void pt_ee_cast_src(pt_dtype sdt, int64_t n, bool all16, std::mt19937 &rng, unsigned char *dst) {
    for (int64_t i = 0; i < n; i++) {
        if (sdt == PT_BF16 || sdt == PT_F16) {
            const uint16_t h = all16 ? (uint16_t)i : (uint16_t)rng();
            memcpy(dst + 2 * i, &h, 2);
            continue;
        }
        static const double sp[] = {0.0,      -0.0,    INFINITY, -INFINITY,  NAN,        65504.0,
                                    65519.99, 65520.0, 70000.0,  6e-8,       3e-8,       1e-40,
                                    3.4e38,   1e300,   1e-310,   1.00390625, 1.01171875, -1.0009765625};
        double v;
        const unsigned r = rng() % 8;
        if (r == 0) v = sp[rng() % (sizeof sp / sizeof sp[0])];
        else if (r == 1) { // an exact tie of bf16 (f32 bits ...8000) or of f16 (... 1000 0000 0000 0)
            const uint32_t u = (rng() & 0x807f0000u) | 0x3f000000u | (rng() % 2 ? 0x8000u : 0x1000u);
            float f;
            memcpy(&f, &u, 4);
            v = f;
        } else v = std::ldexp(std::normal_distribution<double>(0.0, 1.0)(rng), (int)(rng() % 60) - 30);
        if (sdt == PT_F32) {
            const float f = (float)v;
            memcpy(dst + 4 * i, &f, 4);
        } else {
            memcpy(dst + 8 * i, &v, 8);
        }
    }
}

static void pt_ee_cast_case(pt_dtype sdt, pt_dtype ddt, int64_t n, int soff, int doff, bool all16) {
    const size_t ss = pt_ee_dsize(sdt), ds = pt_ee_dsize(ddt);
    pt_ee_group &grp = pt_ee_grp("casts (k_cast_fast against k_copy_cast and the CPU copy), 12 pairs");
    grp.cases++;
    const std::string what =
        pt_ee_fmt("cast %s -> %s n=%lld offsets src %d dst %d%s", pt_ee_dname(sdt), pt_ee_dname(ddt), (long long)n,
                  soff, doff, all16 ? " (every 16-bit pattern)" : "");
    std::mt19937 rng((unsigned)std::hash<std::string>{}(what));
    pt_ee_mem src((size_t)(soff + n) * ss, 0xff), dst((size_t)(doff + n) * ds, 0xff),
        gdst((size_t)(doff + n) * ds, 0xff);
    unsigned char *sp = src.data() + (size_t)soff * ss, *dp = dst.data() + (size_t)doff * ds;
    pt_ee_cast_src(sdt, n, all16, rng, sp);
    std::string why;
    // fast: the copy hook's contiguous cast (pt_cuda_copy calls pt_cast_fast for these pairs)
    const bool took = pt_cast_fast(dp, ddt, sp, sdt, n);
    const int V = 16 / (int)std::min(ss, ds);
    const bool vec = pt_ee_aligned(sp, 16) && pt_ee_aligned(dp, 16);
    if (n == 0) {
        if (took || !g_pt_emu_launches.empty()) why = "a launch for n = 0";
        g_pt_emu_launches.clear();
    } else {
        if (!took) why = "pt_cast_fast refused a contiguous cast";
        else why = pt_ee_launch_check("k_cast_fast<SDT, DDT>", pt_cuda_blocks(vec ? n / V + n % V : n, PT_THREADS));
        if (vec && n >= V) grp.vec++;
        else grp.scalar++;
    }
    // general: k_copy_cast over the same contiguous views, as pt_cuda_copy launches it
    pt_copy_geom geo;
    memset(&geo, 0, sizeof geo);
    geo.ndim = 1, geo.shape[0] = n, geo.sd[0] = geo.ss[0] = 1, geo.n = n;
    unsigned char *gp = gdst.data() + (size_t)doff * ds;
    if (n) {
        pt_emu_launch_kernel(k_copy_cast, "k_copy_cast", pt_cuda_blocks(n, PT_THREADS),
                             PT_THREADS)(geo, (char *)gp, (int)ddt, (const char *)sp, (int)sdt);
        g_pt_emu_launches.clear();
    }
    // oracle: the tensor library's CPU copy between CPU tensors of the two dtypes
    std::vector<unsigned char> want((size_t)n * ds);
    if (n) {
        pt_tensor *ts = nullptr, *td = nullptr;
        if (pt_tensor_empty(&ts, sdt, PT_CPU, 1, &n) != PT_OK || pt_tensor_empty(&td, ddt, PT_CPU, 1, &n) != PT_OK) {
            fprintf(stderr, PT_EMU_NAME ": pt_tensor_empty: %s\nFAIL\n", pt_last_error());
            exit(1);
        }
        memcpy(pt_tensor_data(ts), sp, (size_t)n * ss);
        if (pt_tensor_copy_(td, ts) != PT_OK) {
            fprintf(stderr, PT_EMU_NAME ": pt_tensor_copy_: %s\nFAIL\n", pt_last_error());
            exit(1);
        }
        memcpy(want.data(), pt_tensor_data(td), want.size());
        pt_tensor_release(ts);
        pt_tensor_release(td);
    }
    int64_t dfg = 0, dfo = 0, first = -1;
    for (int64_t i = 0; i < n; i++) {
        const bool a = !pt_ee_same(dp + i * ds, gp + i * ds, ds, ddt),
                   b = !pt_ee_same(dp + i * ds, &want[(size_t)i * ds], ds, ddt);
        dfg += a, dfo += b;
        if ((a || b) && first < 0) first = i;
    }
    if (dfg || dfo)
        why += pt_ee_fmt("%s%lld elements differ fast/general, %lld fast/oracle (first at %lld)",
                         why.empty() ? "" : "; ", (long long)dfg, (long long)dfo, (long long)first);
    if (!src.guards_ok() || !dst.guards_ok() || !gdst.guards_ok()) why += "; a guard zone written";
    for (size_t i = 0; i < (size_t)doff * ds; i++)
        if (dst.data()[i] != 0xff || gdst.data()[i] != 0xff) {
            why += "; an element before the destination view written";
            break;
        }
    if (!why.empty()) pt_ee_fail(grp, what, why);
}

static void pt_ee_casts() {
    const pt_dtype dts[] = {PT_F32, PT_F64, PT_BF16, PT_F16};
    for (pt_dtype s : dts)
        for (pt_dtype d : dts) {
            if (s == d) continue;
            for (int64_t n : pt_ee_sizes)
                for (int so : {0, 1, 3})
                    for (int dof : {0, 1, 3}) {
                        if (so && dof && so != dof) continue;
                        pt_ee_cast_case(s, d, n, so, dof, false);
                    }
            if (s == PT_BF16 || s == PT_F16) pt_ee_cast_case(s, d, 65536, 0, 0, true);
        }
}

int main() {
    pt_ee_dtype<float>();
    pt_ee_dtype<double>();
    pt_ee_dtype<pt_bf16>();
    pt_ee_casts();
    int cases = 0;
    for (const auto &g : g_pt_ee_groups) {
        printf("%s: %d cases (%d vector loop, %d one at a time, %d general kernel)%s\n", g.name.c_str(), g.cases, g.vec,
               g.scalar, g.general, g.failed ? pt_ee_fmt(", %d FAILED", g.failed).c_str() : ", all equal bit for bit");
        cases += g.cases;
    }
    if (pt_emu_live_workspaces() != 0) printf("workspaces not freed\n"), g_pt_ee_failures++;
    printf("%d cases, %d failed; %ld NaN elements with another payload or sign (not compared)\n%s\n", cases,
           g_pt_ee_failures, g_pt_ee_nan_payloads, g_pt_ee_failures ? "FAIL" : "ALL OK");
    return g_pt_ee_failures ? 1 : 0;
}
