// tests/emu/linear_act_emu.cpp — runs the fused GEMM + activation kernel k_la_gemm_act of
// src/kernels/cuda/linear_act.cu on the CPU, by emulation, and compares h = x·Wᵀ and out = act(h) with
// an f64 reference. ctest: linear_act_emu (label "emu"), so every edit of the kernel is checked on
// machines without a GPU.
//
// How: tests/emu/extract_kernels.cmake cuts the kernel part of linear_act.cu (from "#define PT_LA_BM" to
// the "device helpers" banner: constants, pt_la_params; from the "GEMM tiles" banner to the "launchers"
// banner: pt_la_act, the stage loader, the warp's products, the epilogue, the kernel) at build time into
// linear_act_kernels.inc, which this file #includes after tests/emu/emu_warp.h (the emulated CUDA
// surface, shared with attention_emu: fibers per CUDA thread, ldmatrix / mma.m16n8k16 fragments from the
// PTX spec, cp.async landing at once, and the pt_mma.cuh helper names the extraction drops).
// The grid, block size and shared-memory size are the launcher's (PT_LA_SMEM_BYTES comes from the
// extracted text itself, so it cannot drift).
//
// Checks per case: every element of h within 2^-8·|h_ref| + 1e-4·Σ_k|x_k·w_k| of the f64 product of the
// same bf16 inputs (one bf16 rounding plus fp32 accumulation; a wrong index or fragment is off by the
// size of h itself), every element of out bitwise equal to bf16(act(h)) computed here in f32 from the
// kernel's own h (the arithmetic the epilogue and the cuBLAS path's activation kernel must both do),
// outputs of blocks not launched still NaN (a block writes only its own tile), guard zones around h
// and out untouched, cp.async reading only x and W, shared memory within the launch's size.
// Shapes: M not a multiple of the 128-row tile (200, 130, 70, 40), K = 64, 128, 512, N = 128, 192 (a
// half-empty column tile), 2048 (K = 64 whole, K = 512 sliced to its first, a middle and its last
// column tile), relu² and leaky relu² (slope 0.5). What it cannot catch: see attention_emu.cpp (cp.async
// timing, races hidden by the serial order, real mma rounding, speed; the inline PTX itself).
//
// Run: ctest --test-dir build -R linear_act_emu --output-on-failure   (or build/linear_act_emu; ~15 s).
// Build by hand: cmake -DSRC=src/kernels/cuda/linear_act.cu -DOUT=/tmp/emu/linear_act_kernels.inc
//   "-DBEGIN1=#define PT_LA_BM"
//   "-DEND1=/* ---------------------------------------------------------------- device helpers */"
//   "-DBEGIN2=/* ---------------------------------------------------------------- GEMM tiles */"
//   "-DEND2=/* ---------------------------------------------------------------- launchers */"
//   -P tests/emu/extract_kernels.cmake && g++ -std=c++20 -O2 -I/tmp/emu -Itests/emu/shim -Isrc/kernels/cuda tests/emu/linear_act_emu.cpp
// Mutation checks (manual; each must print FAIL and exit 1), added to the cmake -P line above:
//   "-DMUTATE_FROM=b[j][2], b[j][3]" "-DMUTATE_TO=b[j][3], b[j][2]"   (swapped B fragment registers)
//   "-DMUTATE_FROM=row < p.M" "-DMUTATE_TO=row <= p.M"                 (loads one row past x)
//   "-DMUTATE_FROM=(mi & 1) * 8) * PT_LA_LD" "-DMUTATE_TO=(mi >> 1) * 8) * PT_LA_LD"  (A fragment rows)
//   "-DMUTATE_FROM=v * slope : 0.f" "-DMUTATE_TO=v : 0.f"              (leaky slope dropped in the epilogue)
// (all four checked when this test was written: FAIL with h or act(h) errors, or the cp.async bound).
#include <random>

#define PT_EMU_NAME "linear_act_emu"
#define PT_EMU_SMEM pt_la_smem
#define PT_EMU_INPUTS_WHAT "x, W"
#include "emu_warp.h" // the CUDA surface, fibers, cp.async / ldmatrix / mma, launches, guarded buffers

#include "linear_act_kernels.inc"

// one case: x [M, K], W [N, K] -> h, out [M, N]; blocks = the column tiles to run (empty: all)
static bool pt_emu_case(int M, int N, int K, int act, float slope, std::vector<unsigned> cols = {}) {
    std::mt19937 rng(4321u + (unsigned)M * 13u + (unsigned)N * 7u + (unsigned)K);
    std::normal_distribution<float> nd(0.f, 1.f);
    const size_t nx = (size_t)M * K, nw = (size_t)N * K, nh = (size_t)M * N;
    const uint16_t nan16 = 0x7fc1;
    pt_emu_buf<uint16_t> x(nx, 0), w(nw, 0), h(nh, nan16), a(nh, nan16);
    const float ws = 1.f / std::sqrt((float)K); // h ~ N(0, 1): both signs, so both branches of act
    for (size_t i = 0; i < nx; i++) x[i] = pt_emu_tobf(nd(rng));
    for (size_t i = 0; i < nw; i++) w[i] = pt_emu_tobf(nd(rng) * ws);

    pt_la_params p;
    p.x = x.data(), p.w = w.data(), p.h = h.data(), p.a = a.data();
    p.M = M, p.N = N, p.K = K, p.act = act, p.slope = slope;
    g_inputs = {{(const char *)x.data(), nx * 2}, {(const char *)w.data(), nw * 2}};
    const unsigned gx = (unsigned)((N + PT_LA_BN - 1) / PT_LA_BN), gy = (unsigned)((M + PT_LA_BM - 1) / PT_LA_BM);
    auto ran = [&](unsigned bx) { return cols.empty() || std::find(cols.begin(), cols.end(), bx) != cols.end(); };
    pt_emu_run_grid("k_la_gemm_act", [&] { k_la_gemm_act(p); }, gx, gy, PT_LA_THREADS, PT_LA_SMEM_BYTES,
                    [&](unsigned bx, unsigned) { return ran(bx); });

    // f64 reference from the same bf16 inputs; exact epilogue check from the kernel's own h
    double eh = 0, worst = 0, e2 = 0, w2 = 0;
    size_t bad_h = 0, bad_a = 0, bad_skip = 0, checked = 0, neg = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            const size_t o = (size_t)i * N + j;
            if (!ran((unsigned)(j / PT_LA_BN))) {
                bad_skip += h[o] != nan16 || a[o] != nan16;
                continue;
            }
            double ref = 0, mag = 0;
            for (int k = 0; k < K; k++) {
                const double t = (double)pt_emu_bf(x[(size_t)i * K + k]) * (double)pt_emu_bf(w[(size_t)j * K + k]);
                ref += t, mag += std::fabs(t);
            }
            const double got = pt_emu_bf(h[o]), err = std::fabs(got - ref);
            const double tol = std::ldexp(std::fabs(ref), -8) + 1e-4 * mag;
            if (!(err <= tol)) bad_h++;
            eh = std::max(eh, std::isnan(err) ? 1e30 : err);
            worst = std::max(worst, std::isnan(err) ? 1e30 : err / tol);
            e2 += err * err, w2 += ref * ref;
            const float v = pt_emu_bf(h[o]), r = v > 0.f ? v : (act == PT_LA_LEAKY ? v * slope : 0.f);
            const uint16_t want = pt_emu_tobf(r * r); // written here, not the kernel's pt_la_act
            bad_a += a[o] != want;
            neg += ref < 0;
            checked++;
        }
    const bool guards = x.guards_ok() && w.guards_ok() && h.guards_ok() && a.guards_ok();
    const double rel = std::sqrt(e2) / std::max(std::sqrt(w2), 1e-300);
    const bool ok = guards && bad_h == 0 && bad_a == 0 && bad_skip == 0 && checked > 0 && neg > 0 && neg < checked;
    printf("M=%d N=%d K=%d %s%s: h rel %.2e, max abs %.2e (%.2f of tol), %zu/%zu outside; act(h) %zu not bitwise; "
           "%zu written outside the run blocks%s %s\n",
           M, N, K, act == PT_LA_LEAKY ? "leaky_relu2" : "relu2", cols.empty() ? "" : " (column tiles sliced)", rel, eh,
           worst, bad_h, checked, bad_a, bad_skip, guards ? "" : " GUARD ZONE WRITTEN", ok ? "ok" : "FAIL");
    fflush(stdout);
    return ok;
}

int main() {
    bool all = true;
    all &= pt_emu_case(200, 128, 64, 0, 0.f);                        // two row tiles, the second partial
    all &= pt_emu_case(130, 128, 512, PT_LA_LEAKY, 0.5f);            // 2 rows in the last tile: idle warps
    all &= pt_emu_case(70, 192, 128, 0, 0.f);                        // a half-empty column tile
    all &= pt_emu_case(40, 2048, 64, PT_LA_LEAKY, 0.5f);             // 16 column tiles
    all &= pt_emu_case(200, 2048, 512, 0, 0.f, {0u, 7u, 15u});       // K of the v9 MLP, sliced
    printf(all ? "ALL OK\n" : "FAIL\n");
    return all ? 0 : 1;
}
