// tests/emu/fused_emu.cpp — runs the softcapped cross-entropy, ce_mean, rms_norm and rotary kernels of
// src/kernels/cuda/fused.cu on the CPU, by emulation, through the file's own launchers, and compares
// the results with the CPU kernels of src/kernels/cpu/fused.c (the oracle, called through the dispatch
// table). ctest: fused_emu (label "emu"). The attention kernels of fused.cu are not here (the flash ones
// are attention_emu's); xsa, act2, bigram_hash and smear_gate are not covered yet.
//
// How: as tests/emu/fused_norm_emu.cpp (read its header): tests/emu/extract_kernels.cmake cuts two parts
// of fused.cu at build time into fused_kernels.inc — from "#define PT_FZ_THREADS" to the "attention"
// banner (helpers, rms_norm, rotary) and from the "softcapped cross-entropy" banner to the "bigram hash"
// banner (softcap_ce, softcap_ce_bwd, ce_mean and ce_mean's registration) — with the launches rewritten
// for tests/emu/emu_warp.h (a fiber per CUDA thread, __syncthreads, NaN-filled static shared memory) and
// proteus's CUDA host side from tests/emu/emu_host.h. So grids and block sizes are the launchers' own;
// ce_mean is called through the dispatch table (its CUDA registration is in the extracted text).
//
// Cases (f32 and f64 each):
//   softcap_ce      N = 3..5 rows, V = 1, 7, 255, 1000 (4 passes of the 256 threads), 2053 (9 passes, V
//                   odd), softcap 0 and 30 (logits ~20·N(0,1) and a 55 in each row, so the cap bends
//                   them); a row spike of 5000 (V = 777, no cap: a max that misses it overflows exp,
//                   the only way a wrong max shows, since lse = mx + log Σ exp(z − mx)); a bad target
//                   (-1, V, 2^40) in some rows: nll must be NaN there (fused.cu's deferred-check contract),
//                   lse still the row's value, no other row touched
//   softcap_ce_bwd  the "none" reduction (g [N], gstride 1, gscale 1) and the "mean" one (g one value,
//                   gstride 0, gscale 1/N), lse from the oracle, bad targets included (the CPU expression is
//                   defined for them: no one-hot term)
//   ce_mean         n = 1, 7, 1024, 1025, 100003 (the 1024 threads' stride loop, idle threads for n < 1024)
//   rms_norm, _bwd  N = 3, C = 1, 64, 1000, 4097 (17 passes), scale 1 and 1.7
//   rotary          D = 64, r = 64 / 32 (pass-through tail), offset, inverse (the backward)
//   empty shapes    N = 0 (B = 0): the launchers launch nothing
// Tolerances (the _rn intrinsics and -ffp-contract=off: every product and sum rounds as on the CPU; only
// the order of the long f64 sums differs; libm is glibc's on both sides here):
//   exact: softcap_ce_bwd (elementwise, the CPU's expression), rotary, the NaN of a bad target
//   softcap_ce lse, nll: f32 1 ulp, f64 2 ulps, plus 4·V·2^-53 absolute (the f64 sum of V positive terms
//     in another order moves log(sum) by at most ~2·V·2^-53)
//   ce_mean: f32 within 1 ulp of the CPU's row-order f64 sum rounded once (ordered bits; the sums differ by
//     ~n·2^-53 relative, far below half an f32 ulp); f64 |got − want| ≤ 2(n−1)·2^-53·want + 2 ulps (two
//     orders of n positive terms; tests/gpu/test_fused.lua ce_mean_matches_the_row_order_sum)
//   rms_norm: rstd 1 ulp, y 2 ulps (x·r after an r one ulp away), each plus 4·C·2^-53·|want| (f64);
//     rms_norm_bwd dx 1 ulp plus 4·C·2^-53 of the row's largest |dx| (the dot product's order)
// Every output starts as NaN inside NaN guard zones (pt_emu_buf): an element not written or a write past
// a tensor fails the case; the launch log must show the launcher's kernel, grid and block.
// Output: a line per case with the largest error in ulps and how many elements differ at all.
// What it cannot catch: see fused_norm_emu.cpp (races hidden by the serial order, CUDA's own exp / log /
// tanh / pow / sin / cos, nvcc's FMA contraction of plain a*b+c, speed).
//
// Run: ctest --test-dir build -R fused_emu --output-on-failure   (or build/fused_emu; < 1 s).
// Build by hand (in the repository root; /tmp/emu exists):
//   cmake -DSRC=src/kernels/cuda/fused.cu -DOUT=/tmp/emu/fused_kernels.inc "-DBEGIN1=#define PT_FZ_THREADS"
//     "-DEND1=/* ---------------------------------------------------------------- attention"
//     "-DBEGIN2=/* ---------------------------------------------------------------- softcapped cross-entropy */"
//     "-DEND2=/* ---------------------------------------------------------------- bigram hash */"
//     -P tests/emu/extract_kernels.cmake
//   (cd /tmp/emu && gcc -O2 -D_GNU_SOURCE -ffp-contract=off -fopenmp -c $OLDPWD/src/kernels/cpu/fused.c
//     $OLDPWD/src/kernels/dispatch.c $OLDPWD/src/host/status.c)
//   g++ -std=c++20 -O2 -D_GNU_SOURCE -ffp-contract=off -fno-strict-aliasing -Wno-unknown-pragmas
//     -Itests/emu/shim -I/tmp/emu -Isrc/kernels/cuda tests/emu/fused_emu.cpp /tmp/emu/fused.o
//     /tmp/emu/dispatch.o /tmp/emu/status.o -fopenmp -lopenblas -o /tmp/emu/fused_emu && /tmp/emu/fused_emu
// Mutation checks (manual; each must print FAIL and exit 1), added to the cmake -P line above as
// "-DMUTATE_FROM=..." "-DMUTATE_TO=..." (all checked when this test was written):
//   y >= 0 && y < a.V                  -> y >= 0 && y <= a.V         target V reads past its row (nll not NaN)
//   [i * a.gstride] * a.gscale         -> [i] * a.gscale             the mean mode reads g past its one value
//   (j == y ? 1.0 : 0.0)               -> (j == y + 1 ? 1.0 : 0.0)   the one-hot term in the wrong column
//   w > 0; w >>= 1                     -> w > 1; w >>= 1             ce_mean's tree one step short
//   i += PT_CE_MEAN_THREADS)           -> i += PT_CE_MEAN_THREADS / 2)   ce_mean adds terms twice
//   shm[threadIdx.x + s]               -> shm[threadIdx.x + s + 1]   the max tree skips entries (the spike)
//   mx = z > mx ? z : mx;              -> mx = z < mx ? z : mx;      the row minimum instead of the max
//   ss / (double)a.c + a.eps           -> ss / (double)(a.c + 1) + a.eps   rms_norm's mean
//   j < a.c; j += blockDim.x) dx[j]    -> j < a.c - 1; j += blockDim.x) dx[j]   dx's last column unwritten
//   const int64_t j = d < half ? d : d - half;  -> ... d : d - half + 1;   rotary's pair index
#include <random>

#define PT_EMU_NAME "fused_emu"
#define PT_EMU_SMEM pt_fz_emu_dyn_smem // these kernels have no dynamic shared memory
#define PT_EMU_INPUTS_WHAT "nothing (fused.cu has no cp.async)"
#include "emu_warp.h" // the CUDA execution model: fibers, barriers, shared memory, launches
#include "emu_host.h" // pt_cuda_alloc / streams / launch checks for the launchers

extern "C" {
#include "../pt_fused.h"
}

#include "fused_kernels.inc" // fused.cu: helpers, rms_norm, rotary, softcap_ce, ce_mean (+ registration)

// ---------------------------------------------------------------- dtypes
template <typename T> struct pt_fe_dt;
template <> struct pt_fe_dt<float> {
    static constexpr pt_dtype dt = PT_F32;
    static constexpr const char *name = "f32";
};
template <> struct pt_fe_dt<double> {
    static constexpr pt_dtype dt = PT_F64;
    static constexpr const char *name = "f64";
};
template <typename T> static T pt_fe_nan() {
    T v;
    memset((void *)&v, 0xff, sizeof v);
    return v;
}
template <typename T> static double pt_fe_ulp(double w) {
    const T a = (T)std::fabs(w);
    return (double)std::nextafter(a, (T)INFINITY) - (double)a;
}
// the position of v on the number line of T (adjacent values differ by 1)
static int64_t pt_fe_ordered(float v) {
    int32_t i;
    memcpy(&i, &v, 4);
    return i < 0 ? (int64_t)INT32_MIN - i : i;
}
static int64_t pt_fe_ordered(double v) {
    int64_t i;
    memcpy(&i, &v, 8);
    return i < 0 ? INT64_MIN - i : i;
}

// ---------------------------------------------------------------- the CPU oracle
template <typename K> static K pt_fe_cpu(const char *op, pt_dtype dt) {
    K k = (K)pt_kernel_find(op, PT_DEV_CPU, dt);
    if (!k) {
        fprintf(stderr, PT_EMU_NAME ": no CPU kernel %s for %s (src/kernels/cpu/fused.c not linked?)\nFAIL\n", op,
                pt_dtype_name(dt));
        exit(1);
    }
    return k;
}
static void pt_fe_ok(pt_status s, const char *what) {
    if (s != PT_OK) {
        fprintf(stderr, PT_EMU_NAME ": %s returned %d: %s\nFAIL\n", what, (int)s, pt_last_error());
        exit(1);
    }
}

// ---------------------------------------------------------------- comparisons
struct pt_fe_res {
    bool ok = true;
    std::string log;
    void fail(const std::string &why) { ok = false, log += " " + why; }
};

// got[i] against want[i] (entries where skip[i] are left out): exact (ulps < 0: got == want) or within
// ulps·ulp(want) + slack[i]; NaN anywhere fails
template <typename T>
static void pt_fe_cmp(pt_fe_res &r, const char *what, const T *got, const std::vector<double> &want, double ulps,
                      const std::vector<double> &slack = {}, const std::vector<bool> &skip = {}) {
    size_t bad = 0, differ = 0, first = SIZE_MAX;
    double worst = 0;
    for (size_t i = 0; i < want.size(); i++) {
        if (!skip.empty() && skip[i]) continue;
        const double g = (double)got[i], w = want[i];
        differ += !(g == w);
        const double e = std::fabs(g - w), inu = e / pt_fe_ulp<T>(w);
        worst = std::isnan(inu) ? INFINITY : std::max(worst, inu);
        const bool ok = ulps < 0 ? g == w : e <= ulps * pt_fe_ulp<T>(w) + (slack.empty() ? 0.0 : slack[i]);
        if (!ok && bad++ == 0) first = i;
    }
    char b[200];
    if (ulps < 0) snprintf(b, sizeof b, " %s %s;", what, differ ? "NOT EXACT" : "exact");
    else snprintf(b, sizeof b, " %s max %.2g ulp, %zu differ;", what, worst, differ);
    r.log += b;
    if (bad) {
        snprintf(b, sizeof b, "[%zu/%zu out, first at %zu: %.17g, want %.17g]", bad, want.size(), first,
                 (double)got[first], want[first]);
        r.fail(b);
    }
}
template <typename E> static void pt_fe_guards(pt_fe_res &r, const char *what, const pt_emu_buf<E> &b) {
    if (!b.guards_ok()) r.fail(std::string("GUARD ZONE OF ") + what + " WRITTEN");
}
// the launches of the last op: names as the launcher writes them, grids and blocks
struct pt_fe_launch {
    std::string name;
    unsigned grid, block;
};
static void pt_fe_expect(pt_fe_res &r, const std::vector<pt_fe_launch> &want) {
    bool same = g_pt_emu_launches.size() == want.size();
    for (size_t i = 0; same && i < want.size(); i++) {
        const auto &l = g_pt_emu_launches[i];
        same = l.name == want[i].name && l.grid.x == want[i].grid && l.grid.y == 1 && l.block.x == want[i].block &&
               l.block.y == 1 && l.smem == 0;
    }
    if (!same) {
        std::string s = "LAUNCHES [";
        for (auto &l : g_pt_emu_launches)
            s += l.name + " grid " + std::to_string(l.grid.x) + " block " + std::to_string(l.block.x) + ";";
        s += "] EXPECTED [";
        for (auto &l : want)
            s += l.name + " grid " + std::to_string(l.grid) + " block " + std::to_string(l.block) + ";";
        r.fail(s + "]");
    }
    if (pt_emu_live_workspaces() != 0) r.fail("WORKSPACE NOT FREED");
    g_pt_emu_launches.clear();
}
static bool pt_fe_report(const std::string &head, const pt_fe_res &r) {
    printf("%s:%s %s\n", head.c_str(), r.log.c_str(), r.ok ? "ok" : "FAIL");
    fflush(stdout);
    return r.ok;
}
template <typename T> static std::vector<double> pt_fe_vec(const T *p, size_t n) {
    return std::vector<double>(p, p + n);
}
template <typename T> static std::vector<double> pt_fe_vec(const std::vector<T> &v) {
    return std::vector<double>(v.begin(), v.end());
}

// ---------------------------------------------------------------- softcap_ce and its backward
template <typename T> static bool pt_fe_ce(int64_t n, int64_t V, double cap, bool bad, bool spike = false) {
    std::mt19937 rng(11u + (unsigned)(n * 1000 + V) + (cap > 0 ? 7u : 0u));
    std::normal_distribution<double> nd(0.0, 1.0);
    const size_t nv = (size_t)(n * V);
    pt_emu_buf<T> x(nv, T{}), nll((size_t)n, pt_fe_nan<T>()), lse((size_t)n, pt_fe_nan<T>());
    pt_emu_buf<int64_t> tg((size_t)n, 0);
    // logits ~ 20·N(0,1): some beyond ±30, so a softcap of 30 bends them; one large logit per row, in
    // another thread's slice each row (spike: 5000, so that a max that missed it overflows exp)
    for (size_t i = 0; i < nv; i++) x[i] = (T)(20.0 * nd(rng));
    for (int64_t i = 0; i < n; i++) {
        x[(size_t)(i * V + (i * 131) % V)] = (T)(spike ? 5000.0 : 55.0 + (double)i);
        tg[(size_t)i] = (int64_t)(rng() % (uint64_t)V);
    }
    std::vector<bool> badrow((size_t)n, false);
    if (bad) // rows 0, 2, 4, ...: -1, V (the next row's first logit, unless it is the last row), 2^40, -1, ...
        for (int64_t i = 0; i < n; i += 2) {
            const int64_t k = i / 2 % 3;
            tg[(size_t)i] = k == 0 ? -1 : k == 1 ? V : (int64_t)1 << 40;
            badrow[(size_t)i] = true;
        }
    pt_ce_args a{};
    a.n = n, a.V = V, a.cap = cap, a.logits = x.data(), a.targets = tg.data(), a.nll = nll.data(), a.lse = lse.data();
    pt_fe_ok(cu_softcap_ce<T>(&a), "cu_softcap_ce");
    pt_fe_res r;
    pt_fe_expect(r, {{"k_softcap_ce<T>", (unsigned)n, PT_FZ_THREADS}});

    // oracle: bad targets replaced by 0 (lse does not depend on the target; the CPU reads z[target])
    std::vector<int64_t> otg(tg.data(), tg.data() + n);
    for (int64_t i = 0; i < n; i++)
        if (badrow[(size_t)i]) otg[(size_t)i] = 0;
    std::vector<T> onll((size_t)n), olse((size_t)n);
    pt_ce_args o = a;
    o.targets = otg.data(), o.nll = onll.data(), o.lse = olse.data();
    pt_fe_ok(pt_fe_cpu<pt_ce_kernel>("softcap_ce", pt_fe_dt<T>::dt)(&o), "CPU softcap_ce");
    const bool f32 = std::is_same_v<T, float>;
    const std::vector<double> slack((size_t)n, 4.0 * (double)V * 0x1p-53);
    pt_fe_cmp(r, "lse", lse.data(), pt_fe_vec(olse), f32 ? 1 : 2, slack);
    pt_fe_cmp(r, "nll", nll.data(), pt_fe_vec(onll), f32 ? 1 : 2, slack, badrow);
    size_t nan_ok = 0, nbad = 0;
    for (int64_t i = 0; i < n; i++)
        if (badrow[(size_t)i]) nbad++, nan_ok += std::isnan((double)nll[(size_t)i]);
    if (nbad) {
        if (nan_ok != nbad) r.fail("BAD TARGET WITHOUT A NaN nll");
        else r.log += " bad targets: NaN nll;";
    }
    pt_fe_guards(r, "nll", nll), pt_fe_guards(r, "lse", lse);

    // backward, both reduction modes; lse is the oracle's for both sides
    for (int mean = 0; mean < 2; mean++) {
        pt_emu_buf<T> g((size_t)n, T{}), dx(nv, pt_fe_nan<T>());
        for (int64_t i = 0; i < n; i++) g[(size_t)i] = (T)(0.5 + 0.25 * nd(rng));
        for (int64_t i = 0; i < n; i++) lse[(size_t)i] = olse[(size_t)i];
        pt_ce_args b = a;
        b.g = g.data(), b.gstride = mean ? 0 : 1, b.gscale = mean ? 1.0 / (double)n : 1.0, b.dlogits = dx.data();
        if (mean) // the mean's one upstream value: a one-element tensor (guards right after it)
            b.g = g.data() + (n - 1);
        pt_fe_ok(cu_softcap_ce_bwd<T>(&b), "cu_softcap_ce_bwd");
        pt_fe_expect(r, {{"k_softcap_ce_bwd<T>", (unsigned)n, PT_FZ_THREADS}});
        std::vector<T> odx(nv);
        pt_ce_args ob = b;
        ob.lse = olse.data(), ob.dlogits = odx.data();
        pt_fe_ok(pt_fe_cpu<pt_ce_kernel>("softcap_ce_bwd", pt_fe_dt<T>::dt)(&ob), "CPU softcap_ce_bwd");
        pt_fe_cmp(r, mean ? "dx(mean)" : "dx(none)", dx.data(), pt_fe_vec(odx), -1);
        pt_fe_guards(r, "dx", dx);
    }
    char head[160];
    snprintf(head, sizeof head, "softcap_ce %s N=%lld V=%lld cap=%g%s%s", pt_fe_dt<T>::name, (long long)n, (long long)V,
             cap, bad ? " bad targets" : "", spike ? " spike" : "");
    return pt_fe_report(head, r);
}

// ---------------------------------------------------------------- ce_mean (through the dispatch table)
template <typename T> static bool pt_fe_ce_mean(int64_t n) {
    std::mt19937 rng(29u + (unsigned)n);
    std::uniform_real_distribution<double> ud(1e-6, 1.0);
    pt_emu_buf<T> nll((size_t)n, T{}), out(1, pt_fe_nan<T>());
    for (int64_t i = 0; i < n; i++) nll[(size_t)i] = (T)(-3.0 * std::log(ud(rng))); // NLL-like values >= 0
    auto k = (pt_ce_mean_kernel)pt_kernel_find("ce_mean", PT_DEV_CUDA, pt_fe_dt<T>::dt);
    pt_fe_res r;
    if (!k) {
        r.fail("NO CUDA ce_mean REGISTERED (extraction lost the registration?)");
        return pt_fe_report("ce_mean", r);
    }
    pt_fe_ok(k(nll.data(), n, out.data()), "CUDA ce_mean");
    pt_fe_expect(r, {{"k_ce_mean<T>", 1u, PT_CE_MEAN_THREADS}});
    T want;
    pt_fe_ok(pt_fe_cpu<pt_ce_mean_kernel>("ce_mean", pt_fe_dt<T>::dt)(nll.data(), n, &want), "CPU ce_mean");
    const T got = out[0];
    const int64_t ulps = std::llabs(pt_fe_ordered(got) - pt_fe_ordered(want));
    char b[200];
    if (std::is_same_v<T, float>) {
        snprintf(b, sizeof b, " %.9g vs row order %.9g: %lld ulp (bound 1);", (double)got, (double)want,
                 (long long)ulps);
        r.log += b;
        if (!(ulps <= 1)) r.fail("OUT OF BOUND");
    } else {
        const double bound = 2.0 * (double)(n - 1) * 0x1p-53 * (double)want + 2 * pt_fe_ulp<double>(want);
        snprintf(b, sizeof b, " %.17g vs row order %.17g: %lld ulp (bound %.3g);", (double)got, (double)want,
                 (long long)ulps, bound);
        r.log += b;
        if (!(std::fabs((double)got - (double)want) <= bound)) r.fail("OUT OF BOUND");
    }
    pt_fe_guards(r, "out", out);
    char head[80];
    snprintf(head, sizeof head, "ce_mean %s n=%lld", pt_fe_dt<T>::name, (long long)n);
    return pt_fe_report(head, r);
}

// ---------------------------------------------------------------- rms_norm and its backward
template <typename T> static bool pt_fe_rms(int64_t n, int64_t c, double scale) {
    std::mt19937 rng(41u + (unsigned)(n * 100 + c));
    std::normal_distribution<double> nd(0.0, 1.0);
    const size_t nc = (size_t)(n * c);
    pt_emu_buf<T> x(nc, T{}), g(nc, T{}), y(nc, pt_fe_nan<T>()), rs((size_t)n, pt_fe_nan<T>()), dx(nc, pt_fe_nan<T>());
    for (size_t i = 0; i < nc; i++) x[i] = (T)(1.5 * nd(rng) + 0.2), g[i] = (T)nd(rng);
    pt_rmsnorm_args a{};
    a.n = n, a.c = c, a.eps = 1e-6, a.scale = scale, a.x = x.data(), a.y = y.data(), a.rstd = rs.data();
    pt_fe_ok(cu_rms_norm<T>(&a), "cu_rms_norm");
    pt_fe_res r;
    pt_fe_expect(r, {{"k_rms_norm<T>", (unsigned)n, PT_FZ_THREADS}});
    std::vector<T> oy(nc), ors((size_t)n), odx(nc);
    pt_rmsnorm_args o = a;
    o.y = oy.data(), o.rstd = ors.data();
    pt_fe_ok(pt_fe_cpu<pt_rmsnorm_kernel>("rms_norm", pt_fe_dt<T>::dt)(&o), "CPU rms_norm");
    const std::vector<double> wy = pt_fe_vec(oy), wr = pt_fe_vec(ors);
    auto rel = [&](const std::vector<double> &w) {
        std::vector<double> s(w.size());
        for (size_t i = 0; i < w.size(); i++) s[i] = 4.0 * (double)c * 0x1p-53 * std::fabs(w[i]);
        return s;
    };
    pt_fe_cmp(r, "rstd", rs.data(), wr, 1, rel(wr));
    pt_fe_cmp(r, "y", y.data(), wy, 2, rel(wy));

    // backward with the oracle's rstd on both sides
    for (int64_t i = 0; i < n; i++) rs[(size_t)i] = ors[(size_t)i];
    pt_rmsnorm_args b = a;
    b.g = g.data(), b.dx = dx.data();
    pt_fe_ok(cu_rms_norm_bwd<T>(&b), "cu_rms_norm_bwd");
    pt_fe_expect(r, {{"k_rms_norm_bwd<T>", (unsigned)n, PT_FZ_THREADS}});
    pt_rmsnorm_args ob = b;
    ob.rstd = ors.data(), ob.dx = odx.data();
    pt_fe_ok(pt_fe_cpu<pt_rmsnorm_kernel>("rms_norm_bwd", pt_fe_dt<T>::dt)(&ob), "CPU rms_norm_bwd");
    const std::vector<double> wd = pt_fe_vec(odx);
    std::vector<double> sd(nc);
    for (int64_t i = 0; i < n; i++) {
        double m = 0;
        for (int64_t j = 0; j < c; j++) m = std::max(m, std::fabs(wd[(size_t)(i * c + j)]));
        for (int64_t j = 0; j < c; j++) sd[(size_t)(i * c + j)] = 4.0 * (double)c * 0x1p-53 * m;
    }
    pt_fe_cmp(r, "dx", dx.data(), wd, 1, sd);
    pt_fe_guards(r, "y", y), pt_fe_guards(r, "rstd", rs), pt_fe_guards(r, "dx", dx);
    char head[120];
    snprintf(head, sizeof head, "rms_norm %s N=%lld C=%lld%s", pt_fe_dt<T>::name, (long long)n, (long long)c,
             scale != 1 ? " scale" : "");
    return pt_fe_report(head, r);
}

// ---------------------------------------------------------------- rotary (exact)
template <typename T>
static bool pt_fe_rotary(int64_t B, int64_t TT, int64_t H, int64_t D, int64_t rd, int64_t offset, int inverse) {
    std::mt19937 rng(53u + (unsigned)(TT * 10 + rd + inverse));
    std::normal_distribution<double> nd(0.0, 1.0);
    const size_t nx = (size_t)(B * TT * H * D);
    pt_emu_buf<T> x(nx, T{}), y(nx, pt_fe_nan<T>());
    for (size_t i = 0; i < nx; i++) x[i] = (T)nd(rng);
    pt_rotary_args a{};
    a.B = B, a.T = TT, a.H = H, a.D = D, a.r = rd, a.offset = offset, a.base = 10000.0, a.inverse = inverse;
    a.x = x.data(), a.y = y.data();
    pt_fe_ok(cu_rotary<T>(&a), "cu_rotary");
    pt_fe_res r;
    pt_fe_expect(r, {{"k_rotary<T>", pt_fz_blocks((int64_t)nx), PT_FZ_THREADS}});
    std::vector<T> oy(nx);
    pt_rotary_args o = a;
    o.y = oy.data();
    pt_fe_ok(pt_fe_cpu<pt_rotary_kernel>("rotary", pt_fe_dt<T>::dt)(&o), "CPU rotary");
    pt_fe_cmp(r, "y", y.data(), pt_fe_vec(oy), -1);
    pt_fe_guards(r, "y", y);
    char head[160];
    snprintf(head, sizeof head, "rotary %s B=%lld T=%lld H=%lld D=%lld r=%lld%s%s", pt_fe_dt<T>::name, (long long)B,
             (long long)TT, (long long)H, (long long)D, (long long)rd, offset ? " offset" : "",
             inverse ? " inverse" : "");
    return pt_fe_report(head, r);
}

// ---------------------------------------------------------------- empty shapes: nothing launched
template <typename T> static bool pt_fe_empty() {
    T dummy[4] = {};
    int64_t tg[4] = {};
    pt_ce_args c{};
    c.n = 0, c.V = 5, c.logits = c.g = dummy, c.nll = c.lse = c.dlogits = dummy, c.targets = tg, c.gscale = 1;
    pt_fe_ok(cu_softcap_ce<T>(&c), "cu_softcap_ce (N = 0)");
    pt_fe_ok(cu_softcap_ce_bwd<T>(&c), "cu_softcap_ce_bwd (N = 0)");
    pt_rmsnorm_args m{};
    m.n = 0, m.c = 8, m.eps = 1e-6, m.scale = 1, m.x = m.g = dummy, m.y = m.rstd = m.dx = dummy;
    pt_fe_ok(cu_rms_norm<T>(&m), "cu_rms_norm (N = 0)");
    pt_fe_ok(cu_rms_norm_bwd<T>(&m), "cu_rms_norm_bwd (N = 0)");
    pt_rotary_args ro{};
    ro.B = 0, ro.T = 3, ro.H = 2, ro.D = 8, ro.r = 8, ro.base = 10000.0, ro.x = dummy, ro.y = dummy;
    pt_fe_ok(cu_rotary<T>(&ro), "cu_rotary (B = 0)");
    pt_fe_res r;
    pt_fe_expect(r, {});
    r.log += " no launches;";
    return pt_fe_report(std::string("empty shapes ") + pt_fe_dt<T>::name, r);
}

template <typename T> static bool pt_fe_dtype() {
    bool all = true;
    all &= pt_fe_ce<T>(3, 1, 0.0, false);    // one class: nll = 0
    all &= pt_fe_ce<T>(4, 7, 30.0, true);    // V below the block, bad targets
    all &= pt_fe_ce<T>(3, 255, 0.0, false);  // one thread idle
    all &= pt_fe_ce<T>(5, 1000, 30.0, true); // 4 passes per row
    all &= pt_fe_ce<T>(5, 1000, 0.0, false);
    all &= pt_fe_ce<T>(3, 2053, 30.0, false);     // 9 passes, the last partial
    all &= pt_fe_ce<T>(6, 777, 0.0, false, true); // the max must find the spike (else exp overflows)
    for (int64_t n : {1, 7, 1024, 1025, 100003}) all &= pt_fe_ce_mean<T>(n);
    all &= pt_fe_rms<T>(3, 1, 1.0);
    all &= pt_fe_rms<T>(3, 64, 1.7);
    all &= pt_fe_rms<T>(3, 1000, 1.0);
    all &= pt_fe_rms<T>(2, 4097, 1.7);
    all &= pt_fe_rotary<T>(2, 5, 3, 64, 64, 0, 0);
    all &= pt_fe_rotary<T>(1, 7, 2, 64, 32, 5, 0); // pass-through half, offset
    all &= pt_fe_rotary<T>(1, 7, 2, 64, 32, 5, 1); // the backward
    all &= pt_fe_empty<T>();
    return all;
}

int main() {
    bool all = true;
    all &= pt_fe_dtype<float>();
    all &= pt_fe_dtype<double>();
    printf(all ? "ALL OK\n" : "FAIL\n");
    return all ? 0 : 1;
}
