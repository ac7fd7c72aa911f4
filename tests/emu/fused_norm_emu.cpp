// tests/emu/fused_norm_emu.cpp — runs every kernel of src/kernels/cuda/fused_norm.cu on the CPU, by
// emulation, through the file's own launchers, and compares the results with the CPU kernels of
// src/kernels/cpu/fused_norm.c and cpu/fused.c (the oracle, called through the dispatch table).
// ctest: fused_norm_emu (label "emu"), so every edit of fused_norm.cu is checked without a GPU.
//
// How: tests/emu/extract_kernels.cmake cuts fused_norm.cu from its first #include up to the
// "registration" banner into fused_norm_kernels.inc (kernels and launchers; the launchers' `<<<...>>>`
// become pt_emu_launch_kernel calls), compiled here against the CUDA shim (tests/emu/shim: the real
// pt_cuda_common.cuh unchanged), the execution model of tests/emu/emu_warp.h (a fiber per CUDA thread,
// __syncthreads, warp shuffles, static __shared__ arrays NaN-filled per block) and proteus's CUDA host
// side of tests/emu/emu_host.h (workspaces NaN-filled and guarded, pt_cuda_sm_count settable). So the
// grids, block sizes, vector-path choices and workspace sizes are the launchers' own, and the launch log
// confirms each case took the path it was written for (k_mix_rms_norm<T, V> against <T, 1>).
//
// Kernels and cases (f32, f64 and bf16 storage each; V = 4, 2, 8 elements per 16-byte access):
//   k_mix_rms_norm (cu_mix_rms_norm)    C = 64 (16-byte path, idle lanes), 1000, 4104 (more vectors than
//                                       1024 threads: the stride loop), 1001 (C not a multiple of V),
//                                       64 with h one element off 16 bytes (unaligned: scalar path),
//                                       2051 (scalar, > 1024 threads); wx on/off, x0_scale, scale
//   k_mix_dx, k_mix_dw_part + _sum      N = 300 (all 128 row chunks, the last 28 empty), C = 40 and 264
//   (cu_mix_bwd)                        (a partial column tile), any of dx, dx0, dwx, dw0 NULL, unaligned
//                                       dx0, and pt_cuda_sm_count 1 and 0 (grids capped to 32 and 1 blocks:
//                                       the grid-stride loops of k_mix_dx and k_mix_dw_sum take 2..40 steps)
//   k_mix_rms_norm_bwd (bf16)           C = 64, 4104 (vector), 1001, 2056 with dx unaligned (scalar)
//   k_normrot_table, k_rms_norm_rotary, k_rms_norm_rotary_bwd, k_normrot_dgain (cu_normrot)
//                                       rows not a multiple of 8 warps (partial last block), D = 64, 40,
//                                       72, 128, 32, 16 (lanes idle in the tails), r = D, 16, 8
//                                       (pass-through tails), 0 (no table), offset, gain on/off, dx and
//                                       dgain each NULL or not, 300 rows a head (dgain's stride loop),
//                                       T·r/2 = 12800 table entries with pt_cuda_sm_count 1 (stride loop)
//   empty shapes (N, C or B = 0; a backward asked for nothing): the launchers launch nothing
// Every output starts as NaN with NaN guard zones (pt_emu_buf), so an element not written, a write
// past a tensor or before an unaligned view, a workspace read before it is written or written out of
// bounds, and a shared-memory entry read before it is written all fail the case.
//
// Tolerances (|got − want| ≤ U·ulp(want) + 4·n·u·M; n the terms of the sum behind the value, u the
// unit roundoff of the kernel's accumulator, 2^-53 for f32/f64 storage and 2^-24 for bf16, M the sum
// of the terms' magnitudes, or the row's largest value where noted). The kernels round every product
// and sum the CPU rounds (the _rn intrinsics; this build has -ffp-contract=off, so the host compiler
// fuses nothing either): only the order of the long sums differs, and the cos/sin table is the same
// libm call on both sides here.
//   exact (U = 0, no n·u·M): y of mix_rms_norm, dx and dx0 of mix_bwd, for every dtype — elementwise
//     products and sums in the CPU's order; bf16 equals the f32 oracle rounded once to bf16.
//   f32: U = 1 for rstd and the sums (dwx, dw0, dgain, dx of the backward): f64 sums of f32 products
//     differ by ~n·2^-53 relative, far below half an f32 ulp, so the f32 rounding agrees or moves by one
//     ulp at a rounding boundary; U = 2 for h and the rotary y (y·r rounded after an r that may be one
//     ulp away moves by at most 2 ulps; in practice all are bitwise equal, the counts are printed); the
//     rotary y also 2 ulps of the row's largest |y| (x1·c + x2·s cancels: each rounded term moves by
//     an ulp of itself, which can be many ulps of their difference).
//   f64: as f32 (U = 1, 2), plus the 4·n·2^-53·M of a sum taken in another order (rstd, h: M = |want|;
//     rotary y: M = the row's largest |y|; dwx, dw0: M = Σ|g·x| from the oracle run on |inputs|;
//     dgain: M = Σ|g·rot|; dx of the backwards: M = the row's largest |dx|, the scale of gn − x·m).
//   bf16: U = 1 ulp of the stored type (bf16; f32 for rstd) for everything not exact: the kernel sums
//     in f32 (error ≤ n·2^-24·M < half a bf16 ulp for these n) and rounds once (half an ulp); the
//     oracle is the f32 CPU kernel on the bf16 values, with h's and rstd's input y rounded to bf16
//     first (the kernel normalises the stored y: a second oracle pass on y_bf16), and the 4·n·2^-24·M
//     term for the f32 sums.
// Output: a line per case, each output with its largest error in ulps of the stored type ("max 2 ulp")
// and how many elements differ at all from the oracle rounded to that type ("3 differ"), or "exact".
//
// What it cannot catch: see attention_emu.cpp (races hidden by the serial fiber order, speed,
// occupancy); here also CUDA's own cos/sin/pow (the GPU's table differs from glibc's in last bits,
// which tests/gpu/test_fused_norm.lua allows for), nvcc contracting the plain a*b+c of the backward's
// f64/f32 expressions into FMAs, and misaligned 16-byte accesses (x86 allows them; this test is built
// with -fsanitize=alignment where the compiler has it, which traps them).
//
// Run: ctest --test-dir build -R fused_norm_emu --output-on-failure   (or build/fused_norm_emu; ~2 s).
// Build by hand (in the repository root; /tmp/emu exists):
//   cmake -DSRC=src/kernels/cuda/fused_norm.cu -DOUT=/tmp/emu/fused_norm_kernels.inc
//     "-DBEGIN1=#include <math.h>"
//     "-DEND1=/* ---------------------------------------------------------------- registration */"
//     -DBEGIN2= -P tests/emu/extract_kernels.cmake
//   (cd /tmp/emu && gcc -O2 -D_GNU_SOURCE -fopenmp -c $OLDPWD/src/kernels/cpu/fused_norm.c
//     $OLDPWD/src/kernels/cpu/fused.c $OLDPWD/src/kernels/dispatch.c $OLDPWD/src/host/status.c)
//   g++ -std=c++20 -O2 -D_GNU_SOURCE -ffp-contract=off -fno-strict-aliasing -Wno-unknown-pragmas
//     -fsanitize=alignment -fno-sanitize-recover=alignment -Itests/emu/shim -I/tmp/emu -Isrc/kernels/cuda
//     tests/emu/fused_norm_emu.cpp /tmp/emu/*.o -fopenmp -lopenblas -o /tmp/emu/fused_norm_emu
//   /tmp/emu/fused_norm_emu
// Mutation checks (manual; each must fail: FAIL and exit 1, or a -fsanitize=alignment trap), added to
// the cmake -P line above as "-DMUTATE_FROM=..." "-DMUTATE_TO=..." (all checked when this test was written):
//   lane < nw ? sh[lane]                 -> lane <= nw ? sh[lane]   block sum reads an unwritten shared entry
//   j = i % a.c                          -> j = i / a.c             dx's weight column (misaligned: trap)
//   t = (row / a.H) % a.T                -> t = (row % a.H) % a.T   rotary position of a row
//   for (int64_t i = i0; i < i1; i++)    -> ... i <= i1 ...         a row chunk one row too long
//   o > 0; o >>= 1                       -> o > 1; o >>= 1          warp sum one step short
//   const M c = cs[j], s = -sn[j];       -> ... s = sn[j];          backward rotates the wrong way
//   return c % pt_fn_vec<T>() == 0       -> ... >= 0                vector path for C % V != 0 (trap)
//   if (t > 1024) t = 1024;              -> ... 1025 ...            a block of 1025 threads (launch check)
//   const size_t bytes = 2 * sizeof(A)   -> 1 * sizeof(A)           workspace overrun (pt_cuda_free check)
//   (nch + ch) * a.c + j] = s0acc        -> ... = sx                dw0's partial takes dwx's sum
//   if (row >= a.B * a.T * a.H) return;  -> if (row > ...           a warp past the last row (guards)
// Equivalent, so not caught: if (w == 0) -> (w == 1) in the block sum, lane == 0 -> 1 for part[row]
// (every lane holds the butterfly's sum), i0 + rows_per_chunk < a.n -> <= (both sides give a.n).
#include <random>

#define PT_EMU_NAME "fused_norm_emu"
#define PT_EMU_SMEM pt_fn_emu_dyn_smem // fused_norm.cu has no dynamic shared memory
#define PT_EMU_INPUTS_WHAT "nothing (fused_norm.cu has no cp.async)"
#include "emu_warp.h" // the CUDA execution model: fibers, barriers, shuffles, shared memory, launches
#include "emu_host.h" // pt_cuda_alloc / pt_cuda_sm_count / streams for the launchers

#include "fused_norm_kernels.inc" // fused_norm.cu: kernels and launchers (cu_mix_rms_norm<T>, ...)

// ---------------------------------------------------------------- dtypes
template <typename T> struct pt_emu_dt;
template <> struct pt_emu_dt<float> {
    typedef float O; // the oracle's element type
    static constexpr pt_dtype dt = PT_F32;
    static constexpr const char *name = "f32";
    static constexpr double u = 0x1p-53; // unit roundoff of the kernel's accumulator
};
template <> struct pt_emu_dt<double> {
    typedef double O;
    static constexpr pt_dtype dt = PT_F64;
    static constexpr const char *name = "f64";
    static constexpr double u = 0x1p-53;
};
template <> struct pt_emu_dt<pt_bf16> {
    typedef float O;
    static constexpr pt_dtype dt = PT_F32;
    static constexpr const char *name = "bf16";
    static constexpr double u = 0x1p-24;
};

static double pt_emu_d(float v) { return v; }
static double pt_emu_d(double v) { return v; }
static double pt_emu_d(pt_bf16 v) { return pt_emu_bf(v.x); }
template <typename S> S pt_emu_to(double v);
template <> float pt_emu_to<float>(double v) { return (float)v; }
template <> double pt_emu_to<double>(double v) { return v; }
template <> pt_bf16 pt_emu_to<pt_bf16>(double v) { return pt_bf16{pt_emu_tobf((float)v)}; }
template <typename S> S pt_emu_nan() {
    S s;
    memset((void *)&s, 0xff, sizeof s); // all-ones: a NaN of every float type
    return s;
}
// the spacing of S's values at |w|
template <typename S> double pt_emu_ulp(double w);
template <> double pt_emu_ulp<float>(double w) {
    const float a = std::fabs((float)w);
    return (double)std::nextafter(a, INFINITY) - (double)a;
}
template <> double pt_emu_ulp<double>(double w) {
    const double a = std::fabs(w);
    return std::nextafter(a, INFINITY) - a;
}
template <> double pt_emu_ulp<pt_bf16>(double w) {
    if (w == 0) return 0x1p-133;
    int e;
    std::frexp(w, &e); // |w| = m·2^e, m in [0.5, 1): 8 significant bits
    return std::ldexp(1.0, std::max(e - 8, -133));
}

// ---------------------------------------------------------------- the CPU oracle
template <typename K> static K pt_emu_cpu(const char *op, pt_dtype dt) {
    K k = (K)pt_kernel_find(op, PT_DEV_CPU, dt);
    if (!k) {
        fprintf(stderr, PT_EMU_NAME ": no CPU kernel %s for %s (src/kernels/cpu not linked?)\nFAIL\n", op,
                pt_dtype_name(dt));
        exit(1);
    }
    return k;
}
static void pt_emu_ok(pt_status s, const char *what) {
    if (s != PT_OK) {
        fprintf(stderr, PT_EMU_NAME ": %s returned %d: %s\nFAIL\n", what, (int)s, pt_last_error());
        exit(1);
    }
}

// ---------------------------------------------------------------- comparisons
struct pt_emu_res {
    bool ok = true;
    std::string log;
};

// got[i] against want[i]: exact (ulps < 0: equal to want rounded to S) or within
// ulps·ulp(want) + slack[i] (slack empty: 0); NaN anywhere fails
template <typename S>
static void pt_emu_cmp(pt_emu_res &r, const char *what, const S *got, const std::vector<double> &want, double ulps,
                       const std::vector<double> &slack = {}) {
    size_t bad = 0, inexact = 0;
    double worst = 0;
    for (size_t i = 0; i < want.size(); i++) {
        const double g = pt_emu_d(got[i]), w = want[i], wr = pt_emu_d(pt_emu_to<S>(w));
        inexact += !(g == wr);
        if (ulps < 0) {
            bad += !(g == wr);
            continue;
        }
        const double e = std::fabs(g - w), tol = ulps * pt_emu_ulp<S>(w) + (slack.empty() ? 0.0 : slack[i]);
        if (!(e <= tol)) bad++;
        const double inu = e / pt_emu_ulp<S>(w);
        worst = std::isnan(inu) ? INFINITY : std::max(worst, inu);
    }
    char b[160];
    if (ulps < 0) snprintf(b, sizeof b, " %s %s;", what, bad ? "NOT EXACT" : "exact");
    else snprintf(b, sizeof b, " %s max %.2g ulp, %zu differ;", what, worst, inexact);
    r.log += b;
    if (bad) {
        snprintf(b, sizeof b, "[%zu/%zu out]", bad, want.size());
        r.log += b;
        r.ok = false;
    }
}
template <typename E> static void pt_emu_guards(pt_emu_res &r, const char *what, const pt_emu_buf<E> &b) {
    if (b.guards_ok()) return;
    r.log += std::string(" GUARD ZONE OF ") + what + " WRITTEN";
    r.ok = false;
}
// the element before an unaligned view stays NaN
template <typename E> static void pt_emu_before(pt_emu_res &r, const char *what, pt_emu_buf<E> &b, int off) {
    if (off && !std::isnan(pt_emu_d(b[0]))) r.log += std::string(" ELEMENT BEFORE ") + what + " WRITTEN", r.ok = false;
}
// the launches of the last op, by the name the launcher writes
static void pt_emu_expect(pt_emu_res &r, std::vector<std::string> names) {
    std::vector<std::string> got;
    for (auto &l : g_pt_emu_launches) got.push_back(l.name);
    if (got != names) {
        r.ok = false;
        r.log += " LAUNCHES [";
        for (auto &n : got) r.log += n + ";";
        r.log += "] EXPECTED [";
        for (auto &n : names) r.log += n + ";";
        r.log += "]";
    }
    if (pt_emu_live_workspaces() != 0) r.ok = false, r.log += " WORKSPACE NOT FREED";
    g_pt_emu_launches.clear();
}
static bool pt_emu_report(const char *head, const pt_emu_res &r) {
    printf("%s:%s %s\n", head, r.log.c_str(), r.ok ? "ok" : "FAIL");
    fflush(stdout);
    return r.ok;
}

template <typename T> static void pt_emu_fill(pt_emu_buf<T> &b, std::mt19937 &rng, double scale, double shift = 0) {
    std::normal_distribution<double> nd(0.0, 1.0);
    for (size_t i = 0; i < b.n; i++) b[i] = pt_emu_to<T>(shift + scale * nd(rng));
}
// the oracle's copy of a tensor (bf16 values are exact in f32)
template <typename O, typename T> static std::vector<O> pt_emu_o(pt_emu_buf<T> &b) {
    std::vector<O> v(b.n);
    for (size_t i = 0; i < b.n; i++) v[i] = (O)pt_emu_d(b[i]);
    return v;
}
static std::vector<double> pt_emu_scaled(const std::vector<double> &w, double k) {
    std::vector<double> s(w.size());
    for (size_t i = 0; i < w.size(); i++) s[i] = k * std::fabs(w[i]);
    return s;
}
// k times the largest |w| of each row of c values, plus `ulps` ulps (of S) of it
template <typename S = double>
static std::vector<double> pt_emu_rowmax(const std::vector<double> &w, int64_t c, double k, double ulps = 0) {
    std::vector<double> s(w.size());
    for (size_t r0 = 0; r0 < w.size(); r0 += (size_t)c) {
        double m = 0;
        for (int64_t j = 0; j < c; j++) m = std::max(m, std::fabs(w[r0 + (size_t)j]));
        for (int64_t j = 0; j < c; j++) s[r0 + (size_t)j] = k * m + (ulps ? ulps * pt_emu_ulp<S>(m) : 0.0);
    }
    return s;
}

// ---------------------------------------------------------------- mix_rms_norm
template <typename T>
static bool pt_emu_mix_fwd(int64_t n, int64_t c, bool wx_on, double s0, double scale, int h_off, bool vec) {
    typedef typename pt_emu_dt<T>::O O;
    typedef typename pt_fn_t<T>::stat S;
    const bool bf = std::is_same_v<T, pt_bf16>;
    const double u = pt_emu_dt<T>::u;
    std::mt19937 rng(77u + (unsigned)(n * 131 + c));
    const size_t nc = (size_t)(n * c);
    pt_emu_buf<T> x(nc, T{}), x0(nc, T{}), wx((size_t)c, T{}), w0((size_t)c, T{});
    pt_emu_buf<T> y(nc, pt_emu_nan<T>()), h(nc + 1, pt_emu_nan<T>());
    pt_emu_buf<S> rs((size_t)n, pt_emu_nan<S>());
    pt_emu_fill(x, rng, 1.0), pt_emu_fill(x0, rng, 1.0), pt_emu_fill(wx, rng, 0.3, 1.0), pt_emu_fill(w0, rng, 0.3, 1.0);
    pt_mixnorm_args a{};
    a.n = n, a.c = c, a.eps = PT_RMS_NORM_EPS, a.scale = scale, a.x0_scale = s0;
    a.x = x.data(), a.x0 = x0.data(), a.wx = wx_on ? wx.data() : nullptr, a.w0 = w0.data();
    a.y = y.data(), a.h = h.data() + h_off, a.rstd = rs.data();
    pt_emu_ok(cu_mix_rms_norm<T>(&a), "cu_mix_rms_norm");
    pt_emu_res r;
    pt_emu_expect(r, {vec ? "k_mix_rms_norm<T, V>" : "k_mix_rms_norm<T, 1>"});

    // oracle: the CPU kernel on the same values; bf16 h and rstd from a second pass over y rounded to bf16
    std::vector<O> ox = pt_emu_o<O>(x), ox0 = pt_emu_o<O>(x0), owx = pt_emu_o<O>(wx), ow0 = pt_emu_o<O>(w0);
    std::vector<O> oy(nc), oh(nc), ors((size_t)n);
    pt_mixnorm_args o = a;
    o.x = ox.data(), o.x0 = ox0.data(), o.wx = wx_on ? owx.data() : nullptr, o.w0 = ow0.data();
    o.y = oy.data(), o.h = oh.data(), o.rstd = ors.data();
    auto cpu = pt_emu_cpu<pt_mixnorm_kernel>("mix_rms_norm", pt_emu_dt<T>::dt);
    pt_emu_ok(cpu(&o), "CPU mix_rms_norm");
    const std::vector<double> want_y(oy.begin(), oy.end());
    if (bf) {
        std::vector<O> yb(nc), zero(nc, 0), zc((size_t)c, 0), y2(nc);
        for (size_t i = 0; i < nc; i++) yb[i] = pt_emu_bf(pt_emu_tobf(oy[i]));
        pt_mixnorm_args o2 = o;
        o2.x = yb.data(), o2.x0 = zero.data(), o2.wx = nullptr, o2.w0 = zc.data(), o2.x0_scale = 1.0;
        o2.y = y2.data(); // = yb (+0)
        pt_emu_ok(cpu(&o2), "CPU mix_rms_norm (second pass)");
    }
    const std::vector<double> want_h(oh.begin(), oh.end()), want_r(ors.begin(), ors.end());
    pt_emu_cmp(r, "y", y.data(), want_y, -1);
    pt_emu_cmp(r, "rstd", rs.data(), want_r, 1, pt_emu_scaled(want_r, 4.0 * (double)c * u));
    pt_emu_cmp(r, "h", h.data() + h_off, want_h, bf ? 1 : 2, pt_emu_scaled(want_h, 4.0 * (double)c * u));
    pt_emu_guards(r, "y", y), pt_emu_guards(r, "h", h), pt_emu_guards(r, "rstd", rs);
    pt_emu_before(r, "h", h, h_off);
    if (!h_off && !std::isnan(pt_emu_d(h[nc]))) r.ok = false, r.log += " ELEMENT AFTER h WRITTEN";
    char head[160];
    snprintf(head, sizeof head, "mix_rms_norm %s N=%lld C=%lld%s%s%s%s", pt_emu_dt<T>::name, (long long)n,
             (long long)c, wx_on ? "" : " wx=NULL", s0 != 1 ? " x0_scale" : "", scale != 1 ? " scale" : "",
             h_off ? " h unaligned" : "");
    return pt_emu_report(head, r);
}

// ---------------------------------------------------------------- mix_bwd
enum { PT_EMU_DX = 1, PT_EMU_DX0 = 2, PT_EMU_DWX = 4, PT_EMU_DW0 = 8 };
template <typename T>
static bool pt_emu_mix_bwd(int64_t n, int64_t c, bool wx_on, double s0, int outs, int dx0_off, int sms, bool vec) {
    typedef typename pt_emu_dt<T>::O O;
    const double u = pt_emu_dt<T>::u;
    std::mt19937 rng(99u + (unsigned)(n * 17 + c * 3 + outs));
    const size_t nc = (size_t)(n * c);
    pt_emu_buf<T> x(nc, T{}), x0(nc, T{}), g(nc, T{}), wx((size_t)c, T{}), w0((size_t)c, T{});
    pt_emu_buf<T> dx(nc, pt_emu_nan<T>()), dx0(nc + 1, pt_emu_nan<T>()), dwx((size_t)c, pt_emu_nan<T>()),
        dw0((size_t)c, pt_emu_nan<T>());
    pt_emu_fill(x, rng, 1.0), pt_emu_fill(x0, rng, 1.0), pt_emu_fill(g, rng, 1.0);
    pt_emu_fill(wx, rng, 0.3, 1.0), pt_emu_fill(w0, rng, 0.3, 1.0);
    pt_mixnorm_args a{};
    a.n = n, a.c = c, a.eps = PT_RMS_NORM_EPS, a.scale = 1.0, a.x0_scale = s0;
    a.x = x.data(), a.x0 = x0.data(), a.wx = wx_on ? wx.data() : nullptr, a.w0 = w0.data(), a.g = g.data();
    a.dx = outs & PT_EMU_DX ? dx.data() : nullptr, a.dx0 = outs & PT_EMU_DX0 ? dx0.data() + dx0_off : nullptr;
    a.dwx = outs & PT_EMU_DWX ? dwx.data() : nullptr, a.dw0 = outs & PT_EMU_DW0 ? dw0.data() : nullptr;
    g_pt_emu_sm_count = sms;
    pt_emu_ok(cu_mix_bwd<T>(&a), "cu_mix_bwd");
    g_pt_emu_sm_count = 132;
    pt_emu_res r;
    std::vector<std::string> want_l;
    if (outs & (PT_EMU_DX | PT_EMU_DX0)) want_l.push_back(vec ? "k_mix_dx<T, V>" : "k_mix_dx<T, 1>");
    if (outs & (PT_EMU_DWX | PT_EMU_DW0)) want_l.push_back("k_mix_dw_part<T>"), want_l.push_back("k_mix_dw_sum<T>");
    pt_emu_expect(r, want_l);

    // oracle, and on |inputs| for the magnitudes Σ|g·x| of the weight sums
    std::vector<O> ox = pt_emu_o<O>(x), ox0 = pt_emu_o<O>(x0), og = pt_emu_o<O>(g), owx = pt_emu_o<O>(wx),
                   ow0 = pt_emu_o<O>(w0);
    std::vector<O> odx(nc), odx0(nc), odwx((size_t)c), odw0((size_t)c), mx((size_t)c), m0((size_t)c);
    pt_mixnorm_args o = a;
    o.x = ox.data(), o.x0 = ox0.data(), o.g = og.data(), o.wx = wx_on ? owx.data() : nullptr, o.w0 = ow0.data();
    o.dx = odx.data(), o.dx0 = odx0.data(), o.dwx = odwx.data(), o.dw0 = odw0.data();
    auto cpu = pt_emu_cpu<pt_mixnorm_kernel>("mix_bwd", pt_emu_dt<T>::dt);
    pt_emu_ok(cpu(&o), "CPU mix_bwd");
    for (auto *v : {&ox, &ox0, &og})
        for (auto &e : *v) e = std::fabs(e);
    pt_mixnorm_args om = o;
    om.x0_scale = std::fabs(s0), om.dx = nullptr, om.dx0 = nullptr, om.dwx = mx.data(), om.dw0 = m0.data();
    pt_emu_ok(cpu(&om), "CPU mix_bwd (magnitudes)");
    auto slack = [&](const std::vector<O> &m) {
        std::vector<double> s(m.size());
        for (size_t i = 0; i < m.size(); i++) s[i] = 4.0 * (double)n * u * (double)m[i];
        return s;
    };
    if (outs & PT_EMU_DX) pt_emu_cmp(r, "dx", dx.data(), std::vector<double>(odx.begin(), odx.end()), -1);
    if (outs & PT_EMU_DX0)
        pt_emu_cmp(r, "dx0", dx0.data() + dx0_off, std::vector<double>(odx0.begin(), odx0.end()), -1);
    if (outs & PT_EMU_DWX)
        pt_emu_cmp(r, "dwx", dwx.data(), std::vector<double>(odwx.begin(), odwx.end()), 1, slack(mx));
    if (outs & PT_EMU_DW0)
        pt_emu_cmp(r, "dw0", dw0.data(), std::vector<double>(odw0.begin(), odw0.end()), 1, slack(m0));
    // outputs not asked for stay NaN entirely
    auto untouched = [&](const char *what, pt_emu_buf<T> &b, bool asked) {
        if (asked) return;
        for (size_t i = 0; i < b.n; i++)
            if (!std::isnan(pt_emu_d(b[i]))) {
                r.ok = false, r.log += std::string(" ") + what + " (NULL) WRITTEN";
                return;
            }
    };
    untouched("dx", dx, outs & PT_EMU_DX), untouched("dx0", dx0, outs & PT_EMU_DX0);
    untouched("dwx", dwx, outs & PT_EMU_DWX), untouched("dw0", dw0, outs & PT_EMU_DW0);
    pt_emu_guards(r, "dx", dx), pt_emu_guards(r, "dx0", dx0);
    pt_emu_guards(r, "dwx", dwx), pt_emu_guards(r, "dw0", dw0);
    if (outs & PT_EMU_DX0) pt_emu_before(r, "dx0", dx0, dx0_off);
    char head[200];
    snprintf(head, sizeof head, "mix_bwd %s N=%lld C=%lld out=%s%s%s%s%s%s%s", pt_emu_dt<T>::name, (long long)n,
             (long long)c, outs & PT_EMU_DX ? "dx," : "", outs & PT_EMU_DX0 ? "dx0," : "",
             outs & PT_EMU_DWX ? "dwx," : "", outs & PT_EMU_DW0 ? "dw0" : "", wx_on ? "" : " wx=NULL",
             dx0_off ? " dx0 unaligned" : "", sms != 132 ? (sms ? " sm_count=1" : " sm_count=0") : "");
    return pt_emu_report(head, r);
}

// ---------------------------------------------------------------- rms_norm_bwd (bf16: k_mix_rms_norm_bwd)
static bool pt_emu_rms_bwd_bf16(int64_t n, int64_t c, double scale, int dx_off, bool vec) {
    std::mt19937 rng(5u + (unsigned)(n * 7 + c));
    const size_t nc = (size_t)(n * c);
    pt_emu_buf<pt_bf16> x(nc, pt_bf16{}), g(nc, pt_bf16{}), dx(nc + 1, pt_emu_nan<pt_bf16>());
    pt_emu_buf<float> rs((size_t)n, 0.f);
    pt_emu_fill(x, rng, 1.0), pt_emu_fill(g, rng, 1.0);
    std::vector<float> ox = pt_emu_o<float>(x), og = pt_emu_o<float>(g), odx(nc);
    for (int64_t i = 0; i < n; i++) { // the forward's 1/rms of each row (f32, as the bf16 forward stores it)
        double ss = 0;
        for (int64_t j = 0; j < c; j++) ss += (double)ox[(size_t)(i * c + j)] * ox[(size_t)(i * c + j)];
        rs[(size_t)i] = (float)(1.0 / std::sqrt(ss / (double)c + PT_RMS_NORM_EPS));
    }
    pt_rmsnorm_args a{};
    a.n = n, a.c = c, a.eps = PT_RMS_NORM_EPS, a.scale = scale, a.x = x.data(), a.g = g.data(), a.rstd = rs.data();
    a.dx = dx.data() + dx_off;
    pt_emu_ok(cu_mix_rms_norm_bwd<pt_bf16>(&a), "cu_mix_rms_norm_bwd");
    pt_emu_res r;
    pt_emu_expect(r, {vec ? "k_mix_rms_norm_bwd<T, V>" : "k_mix_rms_norm_bwd<T, 1>"});
    pt_rmsnorm_args o = a;
    o.x = ox.data(), o.g = og.data(), o.dx = odx.data();
    pt_emu_ok(pt_emu_cpu<pt_rmsnorm_kernel>("rms_norm_bwd", PT_F32)(&o), "CPU rms_norm_bwd");
    const std::vector<double> want(odx.begin(), odx.end());
    pt_emu_cmp(r, "dx", dx.data() + dx_off, want, 1, pt_emu_rowmax(want, c, 4.0 * (double)c * 0x1p-24));
    pt_emu_guards(r, "dx", dx), pt_emu_before(r, "dx", dx, dx_off);
    char head[120];
    snprintf(head, sizeof head, "rms_norm_bwd bf16 N=%lld C=%lld%s%s", (long long)n, (long long)c,
             scale != 1 ? " scale" : "", dx_off ? " dx unaligned" : "");
    return pt_emu_report(head, r);
}

// ---------------------------------------------------------------- rms_norm_rotary and its backward
enum { PT_EMU_GAIN = 1, PT_EMU_BWD_DX = 2, PT_EMU_BWD_DGAIN = 4 };
template <typename T>
static bool pt_emu_rot(int64_t B, int64_t TT, int64_t H, int64_t D, int64_t rd, int64_t offset, int flags, int sms) {
    typedef typename pt_emu_dt<T>::O O;
    typedef typename pt_fn_t<T>::stat S;
    const bool bf = std::is_same_v<T, pt_bf16>, gain_on = flags & PT_EMU_GAIN;
    const double u = pt_emu_dt<T>::u;
    std::mt19937 rng(3u + (unsigned)(B * 1000 + TT * 100 + H * 10 + D));
    const int64_t rows = B * TT * H;
    const size_t nx = (size_t)(rows * D);
    pt_emu_buf<T> x(nx, T{}), g(nx, T{}), gain((size_t)H, T{}), y(nx, pt_emu_nan<T>()), dx(nx, pt_emu_nan<T>()),
        dgain((size_t)H, pt_emu_nan<T>());
    pt_emu_buf<S> rs((size_t)rows, pt_emu_nan<S>());
    pt_emu_fill(x, rng, 1.0), pt_emu_fill(g, rng, 1.0), pt_emu_fill(gain, rng, 0.3, 1.0);
    pt_normrot_args a{};
    a.B = B, a.T = TT, a.H = H, a.D = D, a.r = rd, a.offset = offset, a.eps = PT_RMS_NORM_EPS, a.base = 10000.0;
    a.x = x.data(), a.gain = gain_on ? gain.data() : nullptr, a.y = y.data(), a.rstd = rs.data();
    g_pt_emu_sm_count = sms;
    pt_emu_ok(cu_rms_norm_rotary<T>(&a), "cu_rms_norm_rotary");
    pt_emu_res r;
    if (rd / 2 > 0) pt_emu_expect(r, {"k_normrot_table<M>", "k_rms_norm_rotary<T>"});
    else pt_emu_expect(r, {"k_rms_norm_rotary<T>"}); // r = 0: no table

    // oracle forward (its rstd feeds both backwards), and the rotation alone (gain NULL) for Σ|g·rot|
    std::vector<O> ox = pt_emu_o<O>(x), og = pt_emu_o<O>(g), ogain = pt_emu_o<O>(gain), oy(nx), orot(nx);
    std::vector<O> ors((size_t)rows), ors2((size_t)rows), odx(nx), odg((size_t)H);
    pt_normrot_args o = a;
    o.x = ox.data(), o.gain = gain_on ? ogain.data() : nullptr, o.y = oy.data(), o.rstd = ors.data();
    auto fwd = pt_emu_cpu<pt_normrot_kernel>("rms_norm_rotary", pt_emu_dt<T>::dt);
    pt_emu_ok(fwd(&o), "CPU rms_norm_rotary");
    pt_normrot_args o2 = o;
    o2.gain = nullptr, o2.y = orot.data(), o2.rstd = ors2.data();
    pt_emu_ok(fwd(&o2), "CPU rms_norm_rotary (rotation)");
    const std::vector<double> want_y(oy.begin(), oy.end()), want_r(ors.begin(), ors.end());
    pt_emu_cmp(r, "y", y.data(), want_y, bf ? 1 : 2, pt_emu_rowmax<T>(want_y, D, 4.0 * (double)D * u, bf ? 0 : 2));
    pt_emu_cmp(r, "rstd", rs.data(), want_r, 1, pt_emu_scaled(want_r, 4.0 * (double)D * u));

    // backward: the oracle's rstd as input to both
    const int bwd = flags & (PT_EMU_BWD_DX | PT_EMU_BWD_DGAIN);
    if (bwd) {
        for (int64_t i = 0; i < rows; i++) rs[(size_t)i] = (S)ors[(size_t)i];
        pt_normrot_args b = a;
        b.g = g.data(), b.dx = flags & PT_EMU_BWD_DX ? dx.data() : nullptr;
        b.dgain = flags & PT_EMU_BWD_DGAIN ? dgain.data() : nullptr;
        pt_emu_ok(cu_rms_norm_rotary_bwd<T>(&b), "cu_rms_norm_rotary_bwd");
        std::vector<std::string> want_l = {"k_rms_norm_rotary_bwd<T>"};
        if (rd / 2 > 0) want_l.insert(want_l.begin(), "k_normrot_table<M>");
        if (b.dgain) want_l.push_back("k_normrot_dgain<T>");
        pt_emu_expect(r, want_l);
        pt_normrot_args ob = o;
        ob.g = og.data(), ob.rstd = ors.data(), ob.dx = b.dx ? odx.data() : nullptr;
        ob.dgain = b.dgain ? odg.data() : nullptr;
        auto bwd_cpu = pt_emu_cpu<pt_normrot_kernel>("rms_norm_rotary_bwd", pt_emu_dt<T>::dt);
        pt_emu_ok(bwd_cpu(&ob), "CPU rms_norm_rotary_bwd");
        if (b.dx) {
            const std::vector<double> want(odx.begin(), odx.end());
            pt_emu_cmp(r, "dx", dx.data(), want, 1, pt_emu_rowmax(want, D, 4.0 * (double)D * u));
        }
        if (b.dgain) {
            std::vector<double> m((size_t)H, 0.0);
            for (size_t i = 0; i < nx; i++) m[(i / (size_t)D) % (size_t)H] += std::fabs((double)og[i] * orot[i]);
            for (auto &e : m) e *= 4.0 * (double)(D + B * TT) * u;
            pt_emu_cmp(r, "dgain", dgain.data(), std::vector<double>(odg.begin(), odg.end()), 1, m);
        }
    }
    g_pt_emu_sm_count = 132;
    for (size_t i = 0; i < nx && !(flags & PT_EMU_BWD_DX); i++)
        if (!std::isnan(pt_emu_d(dx[i]))) {
            r.ok = false, r.log += " dx (NULL) WRITTEN";
            break;
        }
    for (int64_t h = 0; h < H && !(flags & PT_EMU_BWD_DGAIN); h++)
        if (!std::isnan(pt_emu_d(dgain[(size_t)h]))) {
            r.ok = false, r.log += " dgain (NULL) WRITTEN";
            break;
        }
    pt_emu_guards(r, "y", y), pt_emu_guards(r, "rstd", rs);
    pt_emu_guards(r, "dx", dx), pt_emu_guards(r, "dgain", dgain);
    char head[200];
    snprintf(head, sizeof head, "rms_norm_rotary %s B=%lld T=%lld H=%lld D=%lld r=%lld%s%s%s%s%s", pt_emu_dt<T>::name,
             (long long)B, (long long)TT, (long long)H, (long long)D, (long long)rd, offset ? " offset" : "",
             gain_on ? " gain" : "", flags & PT_EMU_BWD_DX ? " +dx" : "", flags & PT_EMU_BWD_DGAIN ? " +dgain" : "",
             sms != 132 ? " sm_count=1" : "");
    return pt_emu_report(head, r);
}

// ---------------------------------------------------------------- empty shapes: the launchers launch nothing
template <typename T>
static bool pt_emu_empty() {
    pt_emu_res r;
    T dummy[16] = {};
    typename pt_fn_t<T>::stat rs[16] = {};
    pt_mixnorm_args m{};
    m.c = 8, m.eps = PT_RMS_NORM_EPS, m.scale = 1.0, m.x0_scale = 1.0;
    m.x = m.x0 = m.wx = m.w0 = m.g = dummy;
    m.y = m.h = m.dx = m.dx0 = m.dwx = m.dw0 = dummy, m.rstd = rs;
    pt_emu_ok(cu_mix_rms_norm<T>(&m), "cu_mix_rms_norm (N = 0)");
    pt_emu_ok(cu_mix_bwd<T>(&m), "cu_mix_bwd (N = 0)");
    m.n = 4, m.c = 0;
    pt_emu_ok(cu_mix_rms_norm<T>(&m), "cu_mix_rms_norm (C = 0)");
    pt_emu_ok(cu_mix_bwd<T>(&m), "cu_mix_bwd (C = 0)");
    pt_normrot_args a{};
    a.B = 0, a.T = 3, a.H = 2, a.D = 8, a.r = 8, a.eps = PT_RMS_NORM_EPS, a.base = 10000.0;
    a.x = a.g = a.gain = dummy, a.y = a.dx = a.dgain = dummy, a.rstd = rs;
    pt_emu_ok(cu_rms_norm_rotary<T>(&a), "cu_rms_norm_rotary (B = 0)");
    pt_emu_ok(cu_rms_norm_rotary_bwd<T>(&a), "cu_rms_norm_rotary_bwd (B = 0)");
    a.B = 1, a.dx = nullptr, a.dgain = nullptr;
    pt_emu_ok(cu_rms_norm_rotary_bwd<T>(&a), "cu_rms_norm_rotary_bwd (no output)");
    pt_emu_expect(r, {});
    r.log += " no launches";
    char head[80];
    snprintf(head, sizeof head, "empty shapes %s", pt_emu_dt<T>::name);
    return pt_emu_report(head, r);
}

// ---------------------------------------------------------------- all cases of one dtype
template <typename T>
static bool pt_emu_dtype() {
    bool all = true;
    constexpr int V = pt_fn_vec<T>();
    all &= pt_emu_mix_fwd<T>(3, 64, true, 0.5, 1.3, 0, true);      // 16-byte path, idle lanes
    all &= pt_emu_mix_fwd<T>(2, 1000, true, 1.0, 1.0, 0, true);    // 1000/V vectors
    all &= pt_emu_mix_fwd<T>(3, 4104, false, 1.0, 1.0, 0, true);   // > 1024 vectors for f32, f64: stride
    all &= pt_emu_mix_fwd<T>(2, 1001, true, 0.25, 0.7, 0, false);  // C not a multiple of V
    all &= pt_emu_mix_fwd<T>(3, 64, true, 0.5, 1.3, 1, false);     // h unaligned
    all &= pt_emu_mix_fwd<T>(2, 2051, false, 2.0, 1.0, 0, false);  // scalar, > 1024 elements: stride
    const int all4 = PT_EMU_DX | PT_EMU_DX0 | PT_EMU_DWX | PT_EMU_DW0;
    all &= pt_emu_mix_bwd<T>(300, 40, true, 0.5, all4, 0, 132, true);               // 128 chunks of 3 rows
    all &= pt_emu_mix_bwd<T>(150, 264, false, 1.0, all4, 0, 132, true);             // 2 column tiles
    all &= pt_emu_mix_bwd<T>(37, 8 * V + 1, true, 0.5, PT_EMU_DX | PT_EMU_DW0, 0, 132, false); // C % V != 0
    all &= pt_emu_mix_bwd<T>(20, 64, true, 0.5, PT_EMU_DX0 | PT_EMU_DWX, 1, 132, false);       // dx0 unaligned
    all &= pt_emu_mix_bwd<T>(100, 401, true, 0.5, all4, 0, 1, false);               // 32 blocks: dx strides
    all &= pt_emu_mix_bwd<T>(9, 600, true, 1.5, all4, 0, 0, true);                  // 1 block: every stride loop
    all &= pt_emu_rot<T>(2, 5, 3, 64, 64, 0, PT_EMU_GAIN | PT_EMU_BWD_DX | PT_EMU_BWD_DGAIN, 132);
    all &= pt_emu_rot<T>(1, 7, 2, 40, 16, 5, PT_EMU_BWD_DX, 132);
    all &= pt_emu_rot<T>(1, 3, 4, 72, 8, 0, PT_EMU_GAIN | PT_EMU_BWD_DGAIN, 132);
    all &= pt_emu_rot<T>(1, 3, 4, 72, 8, 0, PT_EMU_GAIN | PT_EMU_BWD_DX, 132);
    all &= pt_emu_rot<T>(1, 200, 1, 128, 128, 3, PT_EMU_GAIN | PT_EMU_BWD_DX | PT_EMU_BWD_DGAIN, 1);
    const int gdd = PT_EMU_GAIN | PT_EMU_BWD_DX | PT_EMU_BWD_DGAIN;
    all &= pt_emu_rot<T>(2, 150, 2, 32, 32, 0, gdd, 132); // dgain: 300 rows a head
    all &= pt_emu_rot<T>(1, 4, 3, 16, 16, 0, gdd, 132);   // D < 32
    all &= pt_emu_rot<T>(1, 4, 3, 24, 0, 0, gdd, 132);    // r = 0: no table
    all &= pt_emu_empty<T>();
    return all;
}

int main() {
    bool all = true;
    all &= pt_emu_dtype<float>();
    all &= pt_emu_dtype<double>();
    all &= pt_emu_dtype<pt_bf16>();
    all &= pt_emu_rms_bwd_bf16(3, 64, 1.0, 0, true);
    all &= pt_emu_rms_bwd_bf16(2, 4104, 1.3, 0, true);
    all &= pt_emu_rms_bwd_bf16(2, 1001, 1.0, 0, false);
    all &= pt_emu_rms_bwd_bf16(2, 2056, 0.8, 1, false);
    printf(all ? "ALL OK\n" : "FAIL\n");
    return all ? 0 : 1;
}
