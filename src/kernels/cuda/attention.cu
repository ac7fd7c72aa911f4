/* cuda/attention.cu — flash-style causal attention with GQA for bf16 (fp32 accumulation): the fast path
 * of the CUDA "attention" / "attention_bwd" kernels. fused.cu's dispatch calls it (rule and the
 * PROTEUS_ATTN switch at the top of fused.cu); semantics: pt_attention_args in ../pt_fused.h.
 *
 * Dimension letters: B batch, T time, H query heads, Hkv kv heads (query head h reads kv head
 * h / (H/Hkv)), D head dim (64 or 128). Layout: q, y, gy, dq [B,T,H,D]; k, v, dk, dv [B,T,Hkv,D]
 * (rows of one head are H·D or Hkv·D elements apart); lse [B,H,T] in f32, natural log.
 *
 * Kernels (tensor cores through mma.sync m16n8k16 bf16 -> f32; tiles move global -> shared with
 * cp.async, double-buffered, and shared -> registers with ldmatrix; shared rows are padded by 8
 * elements so that ldmatrix's 8 row addresses fall in distinct banks):
 *   k_fa_fwd     block = 4 warps = 64 query rows of one (b, h), 16 rows per warp. Q stays in registers,
 *                K/V tiles of 64 keys stream through shared memory; online softmax in the exp2 domain;
 *                P goes from the S accumulators straight into the A operand of P·V (the m16n8 C layout
 *                of two adjacent n-tiles is the m16k16 A layout). Causal: key tiles after the query
 *                tile are never loaded, only the diagonal tile is masked. Writes y (bf16) and lse.
 *   k_fa_dot     warp per row: dd = rowsum(gy ⊙ y) in f32 (FlashAttention-2's D), into a workspace.
 *   k_fa_bwd_kv  block = 64 keys of one (b, kv head), 16 per warp; K and V stay in registers (D = 64); loops
 *                over the group's query heads and the query tiles from the diagonal on, recomputing
 *                P = exp(S − lse); dV += Pᵀ dO, dPᵀ = V dOᵀ, dSᵀ = Pᵀ ⊙ (dPᵀ − dd), dK += dSᵀ Q.
 *   k_fa_bwd_q   block = 64 query rows of one (b, h); loops over key tiles up to the diagonal:
 *                dQ += dS K. Two passes instead of dQ atomics: deterministic, bit-stable.
 * Padding rows past T are zero-filled in shared memory and never stored; the causal mask removes
 * padded keys for every real query (key j >= T > i), padded queries get lse = +inf (P = 0).
 *
 * Precision: inputs and P, dS as mma operands are bf16, every sum is fp32; y, dq, dk, dv are rounded
 * to bf16 once at the end. Test: tests/gpu/test_attention_flash.lua (against the CPU in f64 and
 * against the simple kernel); bench: bench/gpu_attention.lua. NOT YET RUN ON A GPU (written on a
 * machine without one; compiled for sm_90a with zero warnings).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h> /* snprintf */

#include "pt_cuda_common.cuh"

extern "C" {
#include "../pt_fused.h"
#include "pt_cuda_internal.h"
}
#include "pt_attention.cuh"

#define PT_FA_BM 64       /* query rows per block */
#define PT_FA_BN 64       /* keys per tile (== PT_FA_BM: the diagonal tile is the query tile's index) */
#define PT_FA_THREADS 128 /* 4 warps, 16 rows each */
#define PT_FA_PAD 8       /* bf16 elements of padding per shared row (16 bytes) */
#define PT_FA_LOG2E 1.4426950408889634f
#define PT_FA_LN2 0.6931471805599453f

struct pt_fa_params {
    const uint16_t *q, *k, *v, *y, *gy; /* bf16 bit patterns */
    uint16_t *yo, *dq, *dk, *dv;
    const float *lse_in;
    float *lse_out, *dd;
    int T, H, Hkv, grp;
    float scale, scale_log2; /* softmax scale, and scale·log2(e) for exp2 */
};

/* ---------------------------------------------------------------- device helpers */
/* cp.async, ldmatrix, mma.sync m16n8k16 and the bf16x2 pack (inline PTX); the emulator has its own */
#include "pt_mma.cuh"

/* Register tiles of one warp (16 rows). Lane l: g = l/4, c = l%4.
 *   accumulator f[n][4] for columns n·8..n·8+7: f[n][0..1] = (row g, cols 2c, 2c+1), f[n][2..3] = row g+8
 *   A operand a[kk][4] for k = kk·16..+15: (g, 2c..), (g+8, 2c..), (g, 2c+8..), (g+8, 2c+8..)
 * so the accumulators f[2kk], f[2kk+1] repack into the A operand a[kk] (pt_fa_to_a). */
__device__ __forceinline__ void pt_fa_to_a(uint32_t a[4], const float f0[4], const float f1[4]) {
    a[0] = pt_mma_pack(f0[0], f0[1]);
    a[1] = pt_mma_pack(f0[2], f0[3]);
    a[2] = pt_mma_pack(f1[0], f1[1]);
    a[3] = pt_mma_pack(f1[2], f1[3]);
}

/* A operand of rows r0..r0+15 of a shared tile (row-major, ld elements), all D/16 k-steps */
template <int D>
__device__ __forceinline__ void pt_fa_load_a(uint32_t a[D / 16][4], const uint16_t *s, int r0, int ld) {
    const int lane = threadIdx.x & 31, mi = lane >> 3;
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++)
        pt_mma_ldsm(a[kk], s + (r0 + (lane & 7) + (mi & 1) * 8) * ld + kk * 16 + (mi >> 1) * 8);
}

/* acc[16 x NB] += a[16 x D] · Xᵀ where X is a shared tile [NB rows][D] (rows = output columns):
 * B operand through plain ldmatrix (X row-major is B "col"-major). */
template <int D, int NB>
__device__ __forceinline__ void pt_fa_mm_nt(float acc[NB / 8][4], const uint32_t a[D / 16][4], const uint16_t *X,
                                            int ld) {
    const int lane = threadIdx.x & 31, mi = lane >> 3;
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++)
#pragma unroll
        for (int np = 0; np < NB / 16; np++) {
            uint32_t b[4];
            pt_mma_ldsm(b, X + (np * 16 + (lane & 7) + (mi >> 1) * 8) * ld + kk * 16 + (mi & 1) * 8);
            pt_mma_m16n8k16(acc[2 * np], a[kk], b[0], b[1]);
            pt_mma_m16n8k16(acc[2 * np + 1], a[kk], b[2], b[3]);
        }
}

/* acc[16 x D] += P[16 x KB] · X where P is given as accumulators p[KB/8][4] and X is a shared tile
 * [KB rows][D]: B operand through ldmatrix.trans. */
template <int D, int KB>
__device__ __forceinline__ void pt_fa_mm_nn(float acc[D / 8][4], const float p[KB / 8][4], const uint16_t *X, int ld) {
    const int lane = threadIdx.x & 31, mi = lane >> 3;
#pragma unroll
    for (int kk = 0; kk < KB / 16; kk++) {
        uint32_t a[4];
        pt_fa_to_a(a, p[2 * kk], p[2 * kk + 1]);
#pragma unroll
        for (int dp = 0; dp < D / 16; dp++) {
            uint32_t b[4];
            pt_mma_ldsm_t(b, X + (kk * 16 + (lane & 7) + (mi & 1) * 8) * ld + dp * 16 + (mi >> 1) * 8);
            pt_mma_m16n8k16(acc[2 * dp], a, b[0], b[1]);
            pt_mma_m16n8k16(acc[2 * dp + 1], a, b[2], b[3]);
        }
    }
}

/* Starts copying rows row0..row0+63 (rows >= T become zeros) of a head whose row t starts at
 * g + t·ld into the shared tile s [64][D + PAD]. */
template <int D>
__device__ __forceinline__ void pt_fa_load_tile(uint16_t *s, const uint16_t *g, int64_t ld, int row0, int T) {
    constexpr int CH = D / 8; /* 16-byte chunks per row */
    for (int c = threadIdx.x; c < PT_FA_BN * CH; c += PT_FA_THREADS) {
        const int r = c / CH, k = c % CH, row = row0 + r;
        const bool ok = row < T;
        pt_mma_cp16(s + r * (D + PT_FA_PAD) + k * 8, g + (int64_t)(ok ? row : 0) * ld + k * 8, ok);
    }
}

/* Stores a warp's accumulator tile (rows r0 + g, r0 + g + 8 of a head; rows >= T skipped) times mul
 * as bf16 pairs. */
template <int D>
__device__ __forceinline__ void pt_fa_store(uint16_t *g, int64_t ld, int r0, int T, const float acc[D / 8][4],
                                            float mul0, float mul1) {
    const int lane = threadIdx.x & 31, gr = lane >> 2, c2 = 2 * (lane & 3);
    const int ra = r0 + gr, rb = ra + 8;
#pragma unroll
    for (int n = 0; n < D / 8; n++) {
        if (ra < T) *(uint32_t *)(g + (int64_t)ra * ld + n * 8 + c2) = pt_mma_pack(acc[n][0] * mul0, acc[n][1] * mul0);
        if (rb < T) *(uint32_t *)(g + (int64_t)rb * ld + n * 8 + c2) = pt_mma_pack(acc[n][2] * mul1, acc[n][3] * mul1);
    }
}

template <int N>
__device__ __forceinline__ void pt_fa_zero(float f[N][4]) {
#pragma unroll
    for (int n = 0; n < N; n++) f[n][0] = f[n][1] = f[n][2] = f[n][3] = 0.f;
}

/* ---------------------------------------------------------------- forward */

/* Step j of a K/V tile loop over nkv tiles, double-buffered: starts copying tile j+1 into the other
 * buffer (when there is one), waits for tile j (buffer cur), then the block barrier. */
template <int D>
__device__ __forceinline__ void pt_fa_next_kv(uint16_t *sK, uint16_t *sV, int cur, const uint16_t *K,
                                              const uint16_t *V, int64_t ldk, int j, int nkv, int T) {
    constexpr int TILE = PT_FA_BN * (D + PT_FA_PAD);
    if (j + 1 < nkv) {
        pt_fa_load_tile<D>(sK + (cur ^ 1) * TILE, K, ldk, (j + 1) * PT_FA_BN, T);
        pt_fa_load_tile<D>(sV + (cur ^ 1) * TILE, V, ldk, (j + 1) * PT_FA_BN, T);
        pt_mma_commit();
        pt_mma_wait<1>();
    } else {
        pt_mma_wait<0>();
    }
    __syncthreads();
}
template <int D>
__global__ void __launch_bounds__(PT_FA_THREADS) k_fa_fwd(pt_fa_params p) {
    constexpr int LD = D + PT_FA_PAD, TILE = PT_FA_BN * LD;
    extern __shared__ __align__(16) unsigned char pt_fa_smem[];
    uint16_t *sQ = (uint16_t *)pt_fa_smem, *sK = sQ + TILE, *sV = sK + 2 * TILE; /* sK, sV: 2 buffers each */

    const int T = p.T, nq = (T + PT_FA_BM - 1) / PT_FA_BM;
    const int qt = nq - 1 - (int)blockIdx.y; /* longest rows first */
    const int bh = (int)blockIdx.x, b = bh / p.H, h = bh % p.H, gk = h / p.grp;
    const int64_t ldq = (int64_t)p.H * D, ldk = (int64_t)p.Hkv * D;
    const int64_t qbase = (int64_t)b * T * ldq + (int64_t)h * D, kbase = (int64_t)b * T * ldk + (int64_t)gk * D;
    const uint16_t *Q = p.q + qbase, *K = p.k + kbase, *V = p.v + kbase;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gr = lane >> 2, c2 = 2 * (lane & 3);
    const int q0 = qt * PT_FA_BM, r0 = q0 + warp * 16; /* this warp's rows r0 + gr, r0 + gr + 8 */

    pt_fa_load_tile<D>(sQ, Q, ldq, q0, T);
    pt_fa_load_tile<D>(sK, K, ldk, 0, T);
    pt_fa_load_tile<D>(sV, V, ldk, 0, T);
    pt_mma_commit();

    uint32_t qf[D / 16][4];
    float o[D / 8][4];
    pt_fa_zero<D / 8>(o);
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
    const int nkv = qt + 1;
    for (int j = 0; j < nkv; j++) {
        const int cur = j & 1;
        pt_fa_next_kv<D>(sK, sV, cur, K, V, ldk, j, nkv, T);
        if (j == 0) pt_fa_load_a<D>(qf, sQ, warp * 16, LD);

        float s[PT_FA_BN / 8][4];
        pt_fa_zero<PT_FA_BN / 8>(s);
        pt_fa_mm_nt<D, PT_FA_BN>(s, qf, sK + cur * TILE, LD);

        /* scale into the exp2 domain, causal mask on the diagonal tile, new running max */
        const bool diag = j == qt;
        float mx[2] = {m[0], m[1]};
#pragma unroll
        for (int n = 0; n < PT_FA_BN / 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int col = j * PT_FA_BN + n * 8 + c2 + (e & 1), row = r0 + gr + (e >> 1) * 8;
                float x = s[n][e] * p.scale_log2;
                if (diag && col > row) x = -INFINITY;
                s[n][e] = x;
                mx[e >> 1] = fmaxf(mx[e >> 1], x);
            }
        float corr[2], mu[2];
#pragma unroll
        for (int r = 0; r < 2; r++) {
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
            mu[r] = mx[r] == -INFINITY ? 0.f : mx[r]; /* a row with nothing seen yet stays at 0 */
            corr[r] = exp2f(m[r] - mu[r]);
            m[r] = mx[r];
        }
        float ls[2] = {0.f, 0.f};
#pragma unroll
        for (int n = 0; n < PT_FA_BN / 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                s[n][e] = exp2f(s[n][e] - mu[e >> 1]);
                ls[e >> 1] += s[n][e];
            }
#pragma unroll
        for (int r = 0; r < 2; r++) l[r] = l[r] * corr[r] + ls[r]; /* per-lane partial sums; reduced at the end */
#pragma unroll
        for (int n = 0; n < D / 8; n++) {
            o[n][0] *= corr[0];
            o[n][1] *= corr[0];
            o[n][2] *= corr[1];
            o[n][3] *= corr[1];
        }
        pt_fa_mm_nn<D, PT_FA_BN>(o, s, sV + cur * TILE, LD);
        __syncthreads(); /* the next iteration's prefetch overwrites the buffer just read */
    }

#pragma unroll
    for (int r = 0; r < 2; r++) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    }
    pt_fa_store<D>(p.yo + qbase, ldq, r0, T, o, l[0] > 0.f ? 1.f / l[0] : 0.f, l[1] > 0.f ? 1.f / l[1] : 0.f);
    if ((lane & 3) == 0) {
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int row = r0 + gr + 8 * r;
            if (row < T) p.lse_out[(int64_t)bh * T + row] = (m[r] + log2f(l[r])) * PT_FA_LN2;
        }
    }
}

/* ---------------------------------------------------------------- backward */
/* dd[(b·H + h)·T + t] = Σ_d gy·y over one row (warp per row; rows in [B,T,H] order) */
template <int D>
__global__ void k_fa_dot(pt_fa_params p, int64_t rows) {
    const int64_t w = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    if (w >= rows) return;
    const uint16_t *y = p.y + w * D, *g = p.gy + w * D;
    float s = 0.f;
#pragma unroll
    for (int d = lane; d < D; d += 32) s += pt_bf16_bits_to_f32(y[d]) * pt_bf16_bits_to_f32(g[d]);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (lane == 0) {
        const int64_t h = w % p.H, bt = w / p.H, t = bt % p.T, b = bt / p.T;
        p.dd[(b * p.H + h) * p.T + t] = s;
    }
}

/* lse (in the exp2 domain) and dd of query rows q0..q0+63 of row block bh into shared memory;
 * rows >= T get +inf and 0 so that their P is 0 */
__device__ __forceinline__ void pt_fa_load_stats(float *sL, float *sD, const pt_fa_params &p, int64_t bh, int q0) {
    if (threadIdx.x < PT_FA_BM) {
        const int t = q0 + (int)threadIdx.x;
        const bool ok = t < p.T;
        sL[threadIdx.x] = ok ? p.lse_in[bh * p.T + t] * PT_FA_LOG2E : INFINITY;
        sD[threadIdx.x] = ok ? p.dd[bh * p.T + t] : 0.f;
    }
}

template <int D>
__global__ void __launch_bounds__(PT_FA_THREADS) k_fa_bwd_kv(pt_fa_params p) {
    constexpr int LD = D + PT_FA_PAD, TILE = PT_FA_BN * LD;
    extern __shared__ __align__(16) unsigned char pt_fa_smem[];
    uint16_t *sK = (uint16_t *)pt_fa_smem, *sV = sK + TILE, *sQ = sV + TILE, *sO = sQ + 2 * TILE; /* sQ, sO: 2 each */
    float *sL = (float *)(sO + 2 * TILE), *sD = sL + 2 * PT_FA_BM;                                /* 2 each */

    const int T = p.T, nt = (T + PT_FA_BN - 1) / PT_FA_BN;
    const int kt = (int)blockIdx.y; /* tile 0 has the most query tiles: first */
    const int bg = (int)blockIdx.x, b = bg / p.Hkv, gk = bg % p.Hkv;
    const int64_t ldq = (int64_t)p.H * D, ldk = (int64_t)p.Hkv * D;
    const int64_t kbase = (int64_t)b * T * ldk + (int64_t)gk * D;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gr = lane >> 2, c2 = 2 * (lane & 3);
    const int k0 = kt * PT_FA_BN, kr = warp * 16 + gr; /* this warp's keys k0 + kr, k0 + kr + 8 */
    const int nqt = nt - kt, n_it = p.grp * nqt;

    /* iteration it: query head gk·grp + it / nqt, query tile kt + it % nqt */
#define PT_FA_KV_LOAD(it, buf)                                                                              \
    do {                                                                                                    \
        const int h_ = gk * p.grp + (it) / nqt, q0_ = (kt + (it) % nqt) * PT_FA_BM;                         \
        const int64_t qb_ = (int64_t)b * T * ldq + (int64_t)h_ * D;                                         \
        pt_fa_load_tile<D>(sQ + (buf) * TILE, p.q + qb_, ldq, q0_, T);                                      \
        pt_fa_load_tile<D>(sO + (buf) * TILE, p.gy + qb_, ldq, q0_, T);                                     \
        pt_fa_load_stats(sL + (buf) * PT_FA_BM, sD + (buf) * PT_FA_BM, p, (int64_t)b * p.H + h_, q0_);      \
    } while (0)

    pt_fa_load_tile<D>(sK, p.k + kbase, ldk, k0, T);
    pt_fa_load_tile<D>(sV, p.v + kbase, ldk, k0, T);
    PT_FA_KV_LOAD(0, 0);
    pt_mma_commit();

    uint32_t kf[D / 16][4], vf[D / 16][4];
    float dk[D / 8][4], dv[D / 8][4];
    pt_fa_zero<D / 8>(dk);
    pt_fa_zero<D / 8>(dv);
    for (int it = 0; it < n_it; it++) {
        const int cur = it & 1;
        if (it + 1 < n_it) {
            PT_FA_KV_LOAD(it + 1, cur ^ 1);
            pt_mma_commit();
            pt_mma_wait<1>();
        } else {
            pt_mma_wait<0>();
        }
        __syncthreads();
        /* D = 64 keeps K and V in registers; D = 128 reloads them from shared memory where they are
         * used (keeping both spills) */
        if (it == 0 || D > 64) pt_fa_load_a<D>(kf, sK, warp * 16, LD);
        const uint16_t *q_s = sQ + cur * TILE, *o_s = sO + cur * TILE;
        const float *L = sL + cur * PT_FA_BM, *Dd = sD + cur * PT_FA_BM;
        const bool diag = (it % nqt) == 0; /* query tile kt */

        /* Pᵀ [16 keys x 64 queries] = exp2(K Qᵀ·scale·log2e − lse·log2e), causal on the diagonal */
        float pt[PT_FA_BM / 8][4];
        pt_fa_zero<PT_FA_BM / 8>(pt);
        pt_fa_mm_nt<D, PT_FA_BM>(pt, kf, q_s, LD);
#pragma unroll
        for (int n = 0; n < PT_FA_BM / 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int qc = n * 8 + c2 + (e & 1), kc = kr + (e >> 1) * 8; /* within the tiles */
                const float x = exp2f(pt[n][e] * p.scale_log2 - L[qc]);
                pt[n][e] = (diag && kc > qc) ? 0.f : x;
            }
        pt_fa_mm_nn<D, PT_FA_BM>(dv, pt, o_s, LD); /* dV += Pᵀ dO */

        /* dPᵀ = V dOᵀ ; dSᵀ = Pᵀ ⊙ (dPᵀ − dd) */
        float dp[PT_FA_BM / 8][4];
        pt_fa_zero<PT_FA_BM / 8>(dp);
        if (it == 0 || D > 64) pt_fa_load_a<D>(vf, sV, warp * 16, LD);
        pt_fa_mm_nt<D, PT_FA_BM>(dp, vf, o_s, LD);
#pragma unroll
        for (int n = 0; n < PT_FA_BM / 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) dp[n][e] = pt[n][e] * (dp[n][e] - Dd[n * 8 + c2 + (e & 1)]);
        pt_fa_mm_nn<D, PT_FA_BM>(dk, dp, q_s, LD); /* dK += dSᵀ Q (scale applied at the store) */
        __syncthreads();
    }
#undef PT_FA_KV_LOAD
    pt_fa_store<D>(p.dk + kbase, ldk, k0 + warp * 16, T, dk, p.scale, p.scale);
    pt_fa_store<D>(p.dv + kbase, ldk, k0 + warp * 16, T, dv, 1.f, 1.f);
}

template <int D>
__global__ void __launch_bounds__(PT_FA_THREADS) k_fa_bwd_q(pt_fa_params p) {
    constexpr int LD = D + PT_FA_PAD, TILE = PT_FA_BN * LD;
    extern __shared__ __align__(16) unsigned char pt_fa_smem[];
    uint16_t *sQ = (uint16_t *)pt_fa_smem, *sO = sQ + TILE, *sK = sO + TILE, *sV = sK + 2 * TILE; /* sK, sV: 2 each */

    const int T = p.T, nq = (T + PT_FA_BM - 1) / PT_FA_BM;
    const int qt = nq - 1 - (int)blockIdx.y;
    const int bh = (int)blockIdx.x, b = bh / p.H, h = bh % p.H, gk = h / p.grp;
    const int64_t ldq = (int64_t)p.H * D, ldk = (int64_t)p.Hkv * D;
    const int64_t qbase = (int64_t)b * T * ldq + (int64_t)h * D, kbase = (int64_t)b * T * ldk + (int64_t)gk * D;
    const uint16_t *K = p.k + kbase, *V = p.v + kbase;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gr = lane >> 2, c2 = 2 * (lane & 3);
    const int q0 = qt * PT_FA_BM, r0 = q0 + warp * 16;

    pt_fa_load_tile<D>(sQ, p.q + qbase, ldq, q0, T);
    pt_fa_load_tile<D>(sO, p.gy + qbase, ldq, q0, T);
    pt_fa_load_tile<D>(sK, K, ldk, 0, T);
    pt_fa_load_tile<D>(sV, V, ldk, 0, T);
    pt_mma_commit();

    float lse2[2], drow[2]; /* rows r0 + gr, r0 + gr + 8 */
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int row = r0 + gr + 8 * r;
        const bool ok = row < T;
        lse2[r] = ok ? p.lse_in[(int64_t)bh * T + row] * PT_FA_LOG2E : INFINITY;
        drow[r] = ok ? p.dd[(int64_t)bh * T + row] : 0.f;
    }

    uint32_t qf[D / 16][4], of[D / 16][4];
    float dq[D / 8][4];
    pt_fa_zero<D / 8>(dq);
    const int nkv = qt + 1;
    for (int j = 0; j < nkv; j++) {
        const int cur = j & 1;
        pt_fa_next_kv<D>(sK, sV, cur, K, V, ldk, j, nkv, T);
        if (j == 0) {
            pt_fa_load_a<D>(qf, sQ, warp * 16, LD);
            pt_fa_load_a<D>(of, sO, warp * 16, LD);
        }
        const uint16_t *k_s = sK + cur * TILE, *v_s = sV + cur * TILE;
        const bool diag = j == qt;

        float s[PT_FA_BN / 8][4], dp[PT_FA_BN / 8][4];
        pt_fa_zero<PT_FA_BN / 8>(s);
        pt_fa_zero<PT_FA_BN / 8>(dp);
        pt_fa_mm_nt<D, PT_FA_BN>(s, qf, k_s, LD);  /* S = Q Kᵀ */
        pt_fa_mm_nt<D, PT_FA_BN>(dp, of, v_s, LD); /* dP = dO Vᵀ */
#pragma unroll
        for (int n = 0; n < PT_FA_BN / 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int col = j * PT_FA_BN + n * 8 + c2 + (e & 1), row = r0 + gr + (e >> 1) * 8;
                const float pv = exp2f(s[n][e] * p.scale_log2 - lse2[e >> 1]);
                s[n][e] = (diag && col > row) ? 0.f : pv * (dp[n][e] - drow[e >> 1]); /* dS */
            }
        pt_fa_mm_nn<D, PT_FA_BN>(dq, s, k_s, LD); /* dQ += dS K */
        __syncthreads();
    }
    pt_fa_store<D>(p.dq + qbase, ldq, r0, T, dq, p.scale, p.scale);
}

/* ---------------------------------------------------------------- launchers */
static size_t pt_fa_tile_bytes(int64_t D) { return (size_t)PT_FA_BN * (size_t)(D + PT_FA_PAD) * sizeof(uint16_t); }

static int pt_fa_aligned(const void *ptr) { return ((uintptr_t)ptr & 15u) == 0; }

int pt_flash_attention_supported(const pt_attention_args *a, int bwd, char *why, size_t why_len) {
    const char *bad = NULL;
    if (a->D != 64 && a->D != 128) {
        snprintf(why, why_len, "head dim D = %lld (flash supports 64 and 128)", (long long)a->D);
        return 0;
    }
    const int64_t nq = (a->T + PT_FA_BM - 1) / PT_FA_BM;
    if (a->T > INT32_MAX || nq > 65535) {
        snprintf(why, why_len, "T = %lld (flash supports T <= %d)", (long long)a->T, 65535 * PT_FA_BM);
        return 0;
    }
    if (a->B * a->H > INT32_MAX || a->H > INT32_MAX) {
        snprintf(why, why_len, "B·H = %lld (flash supports at most %d)", (long long)(a->B * a->H), INT32_MAX);
        return 0;
    }
    if (!pt_fa_aligned(a->q)) bad = "q";
    else if (!pt_fa_aligned(a->k)) bad = "k";
    else if (!pt_fa_aligned(a->v)) bad = "v";
    else if (!pt_fa_aligned(a->y)) bad = "y";
    else if (bwd && !pt_fa_aligned(a->gy)) bad = "gy";
    else if (bwd && !pt_fa_aligned(a->dq)) bad = "dq";
    else if (bwd && !pt_fa_aligned(a->dk)) bad = "dk";
    else if (bwd && !pt_fa_aligned(a->dv)) bad = "dv";
    if (bad) {
        snprintf(why, why_len, "%s is not 16-byte aligned (a view at an odd offset; flash loads 16 bytes at a time)",
                 bad);
        return 0;
    }
    return 1;
}

static pt_fa_params pt_fa_params_of(const pt_attention_args *a) {
    pt_fa_params p;
    p.q = (const uint16_t *)a->q;
    p.k = (const uint16_t *)a->k;
    p.v = (const uint16_t *)a->v;
    p.y = (const uint16_t *)a->y;
    p.gy = (const uint16_t *)a->gy;
    p.yo = (uint16_t *)a->y;
    p.dq = (uint16_t *)a->dq;
    p.dk = (uint16_t *)a->dk;
    p.dv = (uint16_t *)a->dv;
    p.lse_in = (const float *)a->lse;
    p.lse_out = (float *)a->lse;
    p.dd = NULL;
    p.T = (int)a->T;
    p.H = (int)a->H;
    p.Hkv = (int)a->Hkv;
    p.grp = (int)(a->H / a->Hkv);
    p.scale = (float)a->scale;
    p.scale_log2 = (float)(a->scale * 1.4426950408889634);
    return p;
}

/* launches kern with dynamic shared memory smem (raising the per-kernel limit above 48 KiB) */
template <typename K>
static pt_status pt_fa_launch(K kern, dim3 grid, size_t smem, const pt_fa_params &p, const char *what) {
    if (smem > 48 * 1024)
        PT_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    kern<<<grid, PT_FA_THREADS, smem, pt_cuda_compute_stream()>>>(p);
    pt_cuda_launch_check(what);
    return PT_OK;
}

template <int D>
static pt_status pt_fa_fwd(const pt_attention_args *a) {
    const pt_fa_params p = pt_fa_params_of(a);
    const unsigned nq = (unsigned)((a->T + PT_FA_BM - 1) / PT_FA_BM);
    return pt_fa_launch(k_fa_fwd<D>, dim3((unsigned)(a->B * a->H), nq), 5 * pt_fa_tile_bytes(D), p,
                        "attention forward (flash, bf16)");
}

template <int D>
static pt_status pt_fa_bwd(const pt_attention_args *a) {
    pt_fa_params p = pt_fa_params_of(a);
    const int64_t rows = a->B * a->T * a->H;
    const size_t dd_bytes = sizeof(float) * (size_t)rows;
    int dev = 0;
    PT_CUDA_CHECK(cudaGetDevice(&dev));
    void *dd = NULL;
    PT_TRY(pt_cuda_alloc(&dd, dd_bytes, dev));
    p.dd = (float *)dd;
    const unsigned nt = (unsigned)((a->T + PT_FA_BM - 1) / PT_FA_BM);
    const int64_t dot_blocks = (rows * 32 + PT_FA_THREADS - 1) / PT_FA_THREADS;
    k_fa_dot<D><<<(unsigned)dot_blocks, PT_FA_THREADS, 0, pt_cuda_compute_stream()>>>(p, rows);
    pt_cuda_launch_check("attention backward (flash, bf16): rowsum(gy*y)");
    pt_status st = pt_fa_launch(k_fa_bwd_kv<D>, dim3((unsigned)(a->B * a->Hkv), nt),
                                6 * pt_fa_tile_bytes(D) + 4 * PT_FA_BM * sizeof(float), p,
                                "attention backward (flash, bf16): dk, dv");
    if (!st)
        st = pt_fa_launch(k_fa_bwd_q<D>, dim3((unsigned)(a->B * a->H), nt), 6 * pt_fa_tile_bytes(D), p,
                          "attention backward (flash, bf16): dq");
    /* the allocator reuses blocks in compute-stream order, so the kernels above still see dd */
    pt_cuda_free(dd, dd_bytes, dev);
    return st;
}

pt_status pt_flash_attention_fwd(const pt_attention_args *a) {
    if (a->B * a->H * a->T == 0) return PT_OK;
    pt_status st = a->D == 64 ? pt_fa_fwd<64>(a) : pt_fa_fwd<128>(a);
    if (st) return st;
    return pt_cuda_check_pending();
}

pt_status pt_flash_attention_bwd(const pt_attention_args *a) {
    if (a->B * a->H * a->T == 0) return PT_OK;
    pt_status st = a->D == 64 ? pt_fa_bwd<64>(a) : pt_fa_bwd<128>(a);
    if (st) return st;
    return pt_cuda_check_pending();
}
