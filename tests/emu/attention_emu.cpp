// tests/emu/attention_emu.cpp — runs the flash attention kernels of src/kernels/cuda/attention.cu on the
// CPU, by emulation, and compares y, lse, dq, dk, dv with an f64 reference. ctest: attention_emu
// (label "emu"), so every edit of attention.cu is checked on machines without a GPU.
//
// How: tests/emu/extract_kernels.cmake cuts the kernels (k_fa_fwd, k_fa_dot, k_fa_bwd_kv, k_fa_bwd_q and
// their tile helpers) out of attention.cu at build time into attention_kernels.inc, which this file
// #includes after defining what the CUDA code needs: threadIdx / blockIdx, __syncthreads,
// __shfl_xor_sync, and the inline-PTX helpers of src/kernels/cuda/pt_mma.cuh (pt_mma_cp16 / ldsm /
// ldsm_t / m16n8k16 / pack), written from the PTX ISA's definitions (ldmatrix .x4 row addresses and
// fragments, mma.m16n8k16 bf16 A/B/C fragment layouts, cvt.rn.bf16x2); all of it lives in
// tests/emu/emu_warp.h, shared with tests/emu/linear_act_emu.cpp. Each CUDA thread of a block is a fiber
// (ucontext) on one OS thread; barriers and warp collectives switch fibers, so a launch is serial and
// deterministic.
//
// What it catches: wrong index math (fragment layouts, tile offsets, GQA head mapping, causal mask,
// padding past T), missing or misplaced __syncthreads inside a block's program order, reads of shared
// memory never written (shared memory starts as NaN bytes; outputs and guard zones are NaN too), global
// reads outside q/k/v/gy by cp.async, writes past the output tensors (guard zones), unaligned or
// out-of-range ldmatrix / cp.async addresses, shared-memory use beyond the launcher's dynamic size
// (mirrored below in pt_emu_smem_*; also checked against the sm_90 227 KiB limit), divergent
// barriers (deadlock report), numerical errors beyond bf16 tolerances.
// What it cannot catch: cp.async timing hazards (copies land at once here, so a missing
// cp.async.wait_group is invisible), races between threads that the serial fiber order hides, real
// hardware mma behaviour beyond the PTX spec as read here (accumulation order, denormals), register
// spills, speed, occupancy, the launchers themselves (grid, smem sizes: mirrored, not extracted), and
// errors in the inline-PTX helpers, which are replaced.
//
// Run: ctest --test-dir build -L emu --output-on-failure   (or build/attention_emu directly; ~10 s).
// Build by hand: cmake -DSRC=src/kernels/cuda/attention.cu -DOUT=/tmp/emu/attention_kernels.inc
//   -P tests/emu/extract_kernels.cmake && g++ -std=c++20 -O2 -I/tmp/emu -Itests/emu/shim -Isrc/kernels/cuda tests/emu/attention_emu.cpp
// Mutation check (manual; shows the test fails on a one-character mask bug): add
//   -DMUTATE_FROM="diag && col > row" -DMUTATE_TO="diag && col >= row"  to the cmake -P line above,
//   build by hand, run: it must print FAIL and exit 1.
#include <random>

#define PT_EMU_NAME "attention_emu"
#define PT_EMU_SMEM pt_fa_smem
#define PT_EMU_INPUTS_WHAT "q, k, v, gy"
#include "emu_warp.h" // the CUDA surface, fibers, cp.async / ldmatrix / mma, launches, guarded buffers

constexpr int PT_EMU_THREADS = 128; // PT_FA_THREADS

#include "attention_kernels.inc"

// ---------------------------------------------------------------- launches
// Dynamic shared memory of each kernel: a copy of the launchers in attention.cu (pt_fa_fwd, pt_fa_bwd).
// If a kernel's layout changes, change both.
static size_t pt_emu_tile(int D) { return (size_t)PT_FA_BN * (size_t)(D + PT_FA_PAD) * sizeof(uint16_t); }
static size_t pt_emu_smem_fwd(int D) { return 5 * pt_emu_tile(D); }
static size_t pt_emu_smem_bwd_kv(int D) { return 6 * pt_emu_tile(D) + 4 * PT_FA_BM * sizeof(float); }
static size_t pt_emu_smem_bwd_q(int D) { return 6 * pt_emu_tile(D); }
static void pt_emu_launch(const char *name, const std::function<void()> &kern, unsigned gx, unsigned gy, size_t smem) {
    pt_emu_run_grid(name, kern, gx, gy, PT_EMU_THREADS, smem);
}

// ---------------------------------------------------------------- one case against f64
template <int D>
static bool pt_emu_case(int B, int T, int H, int Hkv) {
    std::mt19937 rng(1234u + (unsigned)T * 7u + (unsigned)H);
    std::normal_distribution<float> nd(0.f, 1.f);
    const size_t nq = (size_t)B * T * H * D, nk = (size_t)B * T * Hkv * D, nl = (size_t)B * H * T;
    const uint16_t nan16 = 0x7fc1;
    float nan32;
    const uint32_t nanbits = 0x7fc00001u;
    memcpy(&nan32, &nanbits, 4);
    pt_emu_buf<uint16_t> q(nq, 0), k(nk, 0), v(nk, 0), gy(nq, 0), y(nq, nan16), dq(nq, nan16), dk(nk, nan16),
        dv(nk, nan16);
    pt_emu_buf<float> lse(nl, nan32), dd(nl, nan32);
    for (size_t i = 0; i < nq; i++) q[i] = pt_emu_tobf(nd(rng) * 1.5f); // sharper softmax than unit scale
    for (size_t i = 0; i < nk; i++) k[i] = pt_emu_tobf(nd(rng));
    for (size_t i = 0; i < nk; i++) v[i] = pt_emu_tobf(nd(rng));
    for (size_t i = 0; i < nq; i++) gy[i] = pt_emu_tobf(nd(rng));
    const double scale = 1.0 / std::sqrt((double)D);

    pt_fa_params p;
    p.q = q.data(), p.k = k.data(), p.v = v.data(), p.y = y.data(), p.gy = gy.data();
    p.yo = y.data(), p.dq = dq.data(), p.dk = dk.data(), p.dv = dv.data();
    p.lse_in = lse.data(), p.lse_out = lse.data(), p.dd = dd.data();
    p.T = T, p.H = H, p.Hkv = Hkv, p.grp = H / Hkv;
    p.scale = (float)scale, p.scale_log2 = (float)(scale * 1.4426950408889634);
    g_inputs = {{(const char *)q.data(), nq * 2}, {(const char *)k.data(), nk * 2},
                {(const char *)v.data(), nk * 2}, {(const char *)gy.data(), nq * 2}};

    const unsigned nt = (unsigned)((T + PT_FA_BM - 1) / PT_FA_BM);
    const int64_t rows = (int64_t)B * T * H;
    pt_emu_launch("k_fa_fwd", [&] { k_fa_fwd<D>(p); }, (unsigned)(B * H), nt, pt_emu_smem_fwd(D));
    pt_emu_launch("k_fa_dot", [&] { k_fa_dot<D>(p, rows); }, (unsigned)((rows * 32 + PT_EMU_THREADS - 1) / PT_EMU_THREADS),
                  1, 0);
    pt_emu_launch("k_fa_bwd_kv", [&] { k_fa_bwd_kv<D>(p); }, (unsigned)(B * Hkv), nt, pt_emu_smem_bwd_kv(D));
    pt_emu_launch("k_fa_bwd_q", [&] { k_fa_bwd_q<D>(p); }, (unsigned)(B * H), nt, pt_emu_smem_bwd_q(D));

    // f64 reference from the same bf16 inputs
    const int grp = H / Hkv;
    std::vector<double> ry(nq, 0), rdq(nq, 0), rdk(nk, 0), rdv(nk, 0), rl(nl);
    auto at = [&](pt_emu_buf<uint16_t> &a, int heads, int b, int t, int h, int d) {
        return (double)pt_emu_bf(a[(((size_t)b * T + t) * heads + h) * D + d]);
    };
    std::vector<double> s(T), P(T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const int g = h / grp;
            for (int t = 0; t < T; t++) {
                double mx = -1e300;
                for (int j = 0; j <= t; j++) {
                    double z = 0;
                    for (int d = 0; d < D; d++) z += at(q, H, b, t, h, d) * at(k, Hkv, b, j, g, d);
                    s[j] = z * scale;
                    mx = std::max(mx, s[j]);
                }
                double sum = 0;
                for (int j = 0; j <= t; j++) sum += std::exp(s[j] - mx);
                const double L = mx + std::log(sum);
                rl[((size_t)b * H + h) * T + t] = L;
                for (int j = 0; j <= t; j++) P[j] = std::exp(s[j] - L);
                const size_t off = (((size_t)b * T + t) * H + h) * D;
                for (int d = 0; d < D; d++) {
                    double a = 0;
                    for (int j = 0; j <= t; j++) a += P[j] * at(v, Hkv, b, j, g, d);
                    ry[off + d] = a;
                }
                double Di = 0;
                for (int d = 0; d < D; d++) Di += ry[off + d] * pt_emu_bf(gy[off + d]);
                for (int j = 0; j <= t; j++) {
                    double dp = 0;
                    for (int d = 0; d < D; d++) dp += pt_emu_bf(gy[off + d]) * at(v, Hkv, b, j, g, d);
                    const double ds = P[j] * (dp - Di);
                    const size_t ko = (((size_t)b * T + j) * Hkv + g) * D;
                    for (int d = 0; d < D; d++) {
                        rdq[off + d] += scale * ds * at(k, Hkv, b, j, g, d);
                        rdk[ko + d] += scale * ds * at(q, H, b, t, h, d);
                        rdv[ko + d] += P[j] * pt_emu_bf(gy[off + d]);
                    }
                }
            }
        }

    // relative Frobenius error (NaN anywhere = failure); the floor keeps all-tiny references sane
    auto relerr = [](pt_emu_buf<uint16_t> &got, const std::vector<double> &want) {
        double e2 = 0, w2 = 0;
        for (size_t i = 0; i < want.size(); i++) {
            const double e = pt_emu_bf(got[i]) - want[i];
            if (std::isnan(e)) return 1e30;
            e2 += e * e, w2 += want[i] * want[i];
        }
        return std::sqrt(e2) / std::max(std::sqrt(w2), 1e-3 * std::sqrt((double)want.size()));
    };
    double el = 0;
    for (size_t i = 0; i < nl; i++) {
        const double e = std::fabs(lse[i] - rl[i]);
        el = std::isnan(e) ? 1e30 : std::max(el, e);
    }
    const double ey = relerr(y, ry), eq = relerr(dq, rdq), ek = relerr(dk, rdk), ev = relerr(dv, rdv);
    // worst single row of dq, relative to its norm plus a quarter of the rms row norm
    double gn = 0;
    for (double x : rdq) gn += x * x;
    gn = std::sqrt(gn / (double)(nq / D));
    double wr = 0;
    for (size_t r = 0; r < nq / D; r++) {
        double e2 = 0, n2 = 0;
        for (int d = 0; d < D; d++) {
            const double x = pt_emu_bf(dq[r * D + d]) - rdq[r * D + d];
            e2 += x * x, n2 += rdq[r * D + d] * rdq[r * D + d];
        }
        const double rel = std::sqrt(e2) / (std::sqrt(n2) + 0.25 * gn + 1e-3);
        wr = std::isnan(rel) ? 1e30 : std::max(wr, rel);
    }
    const bool guards = q.guards_ok() && k.guards_ok() && v.guards_ok() && gy.guards_ok() && y.guards_ok() &&
                        dq.guards_ok() && dk.guards_ok() && dv.guards_ok() && lse.guards_ok() && dd.guards_ok();
    const bool ok = guards && ey < 1e-2 && eq < 2e-2 && ek < 2e-2 && ev < 2e-2 && el < 1e-3 && wr < 5e-2;
    printf("D=%d B=%d T=%d H=%d Hkv=%d: y %.2e lse(max abs) %.2e dq %.2e (worst row %.2e) dk %.2e dv %.2e%s %s\n", D, B,
           T, H, Hkv, ey, el, eq, wr, ek, ev, guards ? "" : " GUARD ZONE WRITTEN", ok ? "ok" : "FAIL");
    fflush(stdout);
    return ok;
}

int main() {
    bool all = true;
    for (int T : {1, 17, 64, 65, 130}) all &= pt_emu_case<64>(2, T, 4, 2); // GQA group 2
    all &= pt_emu_case<64>(1, 130, 4, 1);                                   // GQA group 4
    all &= pt_emu_case<128>(1, 70, 2, 1);                                   // D = 128
    printf(all ? "ALL OK\n" : "FAIL\n");
    return all ? 0 : 1;
}
