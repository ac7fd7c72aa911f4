/* pt_rng.h — the counter-based random number generator (DESIGN invariant 3: one seed, one model).
 *
 * Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3", SC 2011),
 * with the constants of Random123, curand and PyTorch: multipliers M0 = 0xD2511F53, M1 = 0xCD9E8D57,
 * Weyl key increments W0 = 0x9E3779B9, W1 = 0xBB67AE85; 10 rounds, the key bumped before rounds 2..10.
 * One round maps counter (c0, c1, c2, c3) and key (k0, k1) to
 *     (hi(M1*c2) ^ c1 ^ k0,  lo(M1*c2),  hi(M0*c0) ^ c3 ^ k1,  lo(M0*c0)).
 * Verified against the Random123 known-answer vectors (tests/c/test_rng.c).
 *
 * GENERATOR = (seed, offset). key = (lo32(seed), hi32(seed)). `offset` counts 128-bit Philox blocks
 * already consumed. Block b is philox((lo32(b), hi32(b), 0, 0), key) = four u32 lanes x0..x3.
 * Every fill of n elements (in the row-major order of the tensor's view) starts at block
 * `offset` and then advances offset by the number of blocks it used, so the stream depends only
 * on (seed, offset, n, kind, dtype) — never on threads or devices. ELEMENT i OF A FILL:
 *
 *   kind / dtype             block            lanes              value
 *   uniform  f32 (bf16,f16)  off + i/4        x[i%4]             u = (x >> 8) * 2^-24            in [0,1)
 *                                                                out = (float)(lo + (hi-lo)*u)   (double math)
 *   uniform  f64             off + i/2        x[2j], x[2j+1]     u = ((x[2j]<<32 | x[2j+1]) >> 11) * 2^-53
 *                            (j = i%2)                           out = lo + (hi-lo)*u
 *   normal   f32 (bf16,f16)  off + i/4        pair p = (i%4)/2:  u1 = ((x[2p] >> 8) + 1) * 2^-24   in (0,1]
 *                                             x[2p], x[2p+1]     u2 = (x[2p+1] >> 8) * 2^-24      in [0,1)
 *                                                                z = pt_rng_box_muller(u1, u2, i%2)
 *                                                                out = (float)(mean + std*z)    (double math)
 *   normal   f64             off + i/2        all four           u1 = (((x0<<32|x1) >> 11) + 1) * 2^-53
 *                                                                u2 = ((x2<<32|x3) >> 11) * 2^-53
 *                                                                z = pt_rng_box_muller(u1, u2, i%2)
 *                                                                out = mean + std*z
 *   randint  any             off + i/2        x[2j], x[2j+1]     r = x[2j]<<32 | x[2j+1] (u64), R = hi - lo
 *                            (j = i%2)                           out = lo + floor(r * R / 2^64)  (128-bit product)
 *   randperm n               off + i/2        as randint         key_i = r (u64); the permutation lists the
 *                                                                indices i sorted by (key_i, i)
 *   blocks used: ceil(n/4) for f32-stream fills, ceil(n/2) for f64, randint and randperm.
 *
 * Box–Muller (pt_rng_box_muller = pt_rng_bm_radius(u1) · pt_rng_bm_trig(u2, which)): r = sqrt(-2 ln u1),
 * θ = 2π u2, z = r cos θ (which = 0) or r sin θ (which = 1). ln, cos and sin are NOT the C library's: they are the polynomials below, written
 * with + - * / and sqrt only, each correctly rounded in IEEE double, evaluated in a fixed order
 * with no fused multiply-add. That is what makes a CUDA thread produce the same bits as the CPU:
 * the CUDA kernel includes this header and gets the same functions (PT_RNG_HD), whose arithmetic
 * macros map to __dadd_rn/__dmul_rn/__ddiv_rn/__dsqrt_rn on the device (no contraction), and
 * (float) conversions are round-to-nearest (__double2float_rn). The host files that use these
 * functions are compiled with -ffp-contract=off (CMakeLists.txt, end).
 *
 * randint: multiply-shift of a 64-bit uniform (Lemire's method without rejection). Each value of
 * [lo, hi) has probability floor(2^64/R)/2^64 or ceil(2^64/R)/2^64, i.e. a relative bias below
 * R / 2^64 (< 2.4e-10 for any R < 2^32) — negligible for every range a model uses.
 *
 * Threading: a generator is a plain struct; the default generator is process-global and not
 * locked (the Lua host is single-threaded). Fills are parallel inside (OpenMP over blocks) and
 * give the same bits for any thread count.
 *
 * Checkpoint/resume: pt_generator_get_state / set_state save and restore (seed, offset).
 */
#ifndef PT_RNG_H
#define PT_RNG_H

#include <stdint.h>

#include "pt_tensor.h"

/* ---- generators ---- */
typedef struct {
    uint64_t seed;
    uint64_t offset; /* Philox blocks consumed */
} pt_generator;

typedef struct {
    uint64_t seed;
    uint64_t offset;
} pt_rng_state;

#define PT_RNG_DEFAULT_SEED 0ULL

/* The process-global default generator (seed PT_RNG_DEFAULT_SEED at start). */
pt_generator *pt_rng_default(void);
/* Seeds a generator: seed as given, offset 0. */
void pt_generator_seed(pt_generator *g, uint64_t seed);
pt_rng_state pt_generator_get_state(const pt_generator *g);
void pt_generator_set_state(pt_generator *g, pt_rng_state s);

/* Fills (t may be any CPU tensor, also a non-contiguous view; CUDA tensors use the kernels a CUDA
 * file registers under the same names). uniform/normal need a float tensor; randint any numeric
 * dtype whose range holds [lo, hi). */
pt_status pt_generator_uniform_(pt_generator *g, pt_tensor *t, double lo, double hi);
pt_status pt_generator_normal_(pt_generator *g, pt_tensor *t, double mean, double std);
/* integers in [lo, hi) */
pt_status pt_generator_randint_(pt_generator *g, pt_tensor *t, int64_t lo, int64_t hi);
/* a new i64 CPU tensor [n] holding a permutation of 0..n-1; _on: the tensor on dev, made there by dev's
 * rng_randperm kernel (the same permutation as the CPU's for the same generator state) */
pt_status pt_generator_randperm(pt_generator *g, pt_tensor **out, int64_t n);
pt_status pt_generator_randperm_on(pt_generator *g, pt_tensor **out, int64_t n, pt_device dev);

/* The same on the default generator. */
void pt_rng_manual_seed(uint64_t seed);
pt_rng_state pt_rng_get_state(void);
void pt_rng_set_state(pt_rng_state s);
pt_status pt_rng_uniform_(pt_tensor *t, double lo, double hi);
pt_status pt_rng_normal_(pt_tensor *t, double mean, double std);
pt_status pt_rng_randint_(pt_tensor *t, int64_t lo, int64_t hi);
pt_status pt_rng_randperm(pt_tensor **out, int64_t n);
pt_status pt_rng_randperm_on(pt_tensor **out, int64_t n, pt_device dev);

/* ---- kernels (registered in pt_dispatch.h's table by src/kernels/cpu/rng.c) ----
 *   "rng_uniform"  (dev, F32/F64)      out[i] per the table above, a = lo, b = hi
 *   "rng_normal"   (dev, F32/F64)      a = mean, b = std
 *   "rng_randint"  (dev, any numeric)  lo, range
 *   "rng_randperm" (cpu, I64)          out = permutation of 0..n-1 (needs scratch: returns OOM)
 * `out` is contiguous with n elements; the front advances the generator afterwards. */
typedef struct {
    uint64_t seed, offset;
    int64_t n;
    void *out;
    double a, b;
    int64_t lo;
    uint64_t range;
} pt_rng_args;
typedef pt_status (*pt_rng_kernel)(const pt_rng_args *args);

/* ---- the shared arithmetic (host and CUDA device) ---- */
#if defined(__CUDACC__)
#define PT_RNG_HD __host__ __device__ __forceinline__
#else
#define PT_RNG_HD static inline
#endif
#if defined(__CUDA_ARCH__)
#define PT_RNG_ADD(a, b) __dadd_rn((a), (b))
#define PT_RNG_SUB(a, b) __dsub_rn((a), (b))
#define PT_RNG_MUL(a, b) __dmul_rn((a), (b))
#define PT_RNG_DIV(a, b) __ddiv_rn((a), (b))
#define PT_RNG_SQRT(a) __dsqrt_rn(a)
#else
#define PT_RNG_ADD(a, b) ((a) + (b))
#define PT_RNG_SUB(a, b) ((a) - (b))
#define PT_RNG_MUL(a, b) ((a) * (b))
#define PT_RNG_DIV(a, b) ((a) / (b))
#define PT_RNG_SQRT(a) __builtin_sqrt(a)
#endif

#define PT_PHILOX_M0 0xD2511F53u
#define PT_PHILOX_M1 0xCD9E8D57u
#define PT_PHILOX_W0 0x9E3779B9u
#define PT_PHILOX_W1 0xBB67AE85u

/* Philox4x32-10: c (counter, 4 words) is replaced by the output. */
PT_RNG_HD void pt_philox4x32_10(uint32_t c[4], uint32_t k0, uint32_t k1) {
    for (int r = 0; r < 10; r++) {
        if (r) {
            k0 += PT_PHILOX_W0;
            k1 += PT_PHILOX_W1;
        }
        uint64_t p0 = (uint64_t)PT_PHILOX_M0 * c[0], p1 = (uint64_t)PT_PHILOX_M1 * c[2];
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c[1] ^ k0, n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c[3] ^ k1, n3 = (uint32_t)p0;
        c[0] = n0;
        c[1] = n1;
        c[2] = n2;
        c[3] = n3;
    }
}

/* The four lanes of block b for generator seed `seed`. */
PT_RNG_HD void pt_rng_block(uint64_t seed, uint64_t b, uint32_t x[4]) {
    x[0] = (uint32_t)b;
    x[1] = (uint32_t)(b >> 32);
    x[2] = 0;
    x[3] = 0;
    pt_philox4x32_10(x, (uint32_t)seed, (uint32_t)(seed >> 32));
}

/* ln(u) for u in (0, 1]: u = m·2^e with m in [sqrt(1/2), sqrt(2)) (exact scaling by powers of 2),
 * ln m = 2·atanh(s), s = (m-1)/(m+1), |s| <= 0.1716, series to s^23 (error < 1e-17 relative). */
PT_RNG_HD double pt_rng_log(double u) {
    int e = 0;
    double m = u;
    while (m < 0.70710678118654752440) { /* exact: multiplications by 2 */
        m = PT_RNG_MUL(m, 2.0);
        e--;
    }
    double s = PT_RNG_DIV(PT_RNG_SUB(m, 1.0), PT_RNG_ADD(m, 1.0));
    double s2 = PT_RNG_MUL(s, s);
    double p = 1.0 / 23.0;
    p = PT_RNG_ADD(PT_RNG_MUL(p, s2), 1.0 / 21.0);
    p = PT_RNG_ADD(PT_RNG_MUL(p, s2), 1.0 / 19.0);
    p = PT_RNG_ADD(PT_RNG_MUL(p, s2), 1.0 / 17.0);
    p = PT_RNG_ADD(PT_RNG_MUL(p, s2), 1.0 / 15.0);
    p = PT_RNG_ADD(PT_RNG_MUL(p, s2), 1.0 / 13.0);
    p = PT_RNG_ADD(PT_RNG_MUL(p, s2), 1.0 / 11.0);
    p = PT_RNG_ADD(PT_RNG_MUL(p, s2), 1.0 / 9.0);
    p = PT_RNG_ADD(PT_RNG_MUL(p, s2), 1.0 / 7.0);
    p = PT_RNG_ADD(PT_RNG_MUL(p, s2), 1.0 / 5.0);
    p = PT_RNG_ADD(PT_RNG_MUL(p, s2), 1.0 / 3.0);
    p = PT_RNG_ADD(PT_RNG_MUL(p, s2), 1.0);
    double lnm = PT_RNG_MUL(PT_RNG_MUL(2.0, s), p);
    return PT_RNG_ADD(PT_RNG_MUL((double)e, 0.69314718055994530942), lnm);
}

/* sin x (want_sin = 1) or cos x (0) for x in [0, pi/2]: Taylor series to x^23 / x^22, nested as
 * sin x = x(1 - x²/(2·3)(1 - x²/(4·5)(1 - ...))), cos x = 1 - x²/(1·2)(1 - x²/(3·4)(1 - ...)); the
 * reciprocals 1/(j(j+1)) are compile-time constants (correctly rounded by any IEEE compiler). */
#define PT_RNG_NEST(c) p = PT_RNG_SUB(1.0, PT_RNG_MUL(PT_RNG_MUL(x2, p), (c)))
PT_RNG_HD double pt_rng_sin_or_cos_q(double x, int want_sin) {
    double x2 = PT_RNG_MUL(x, x), p = 1.0;
    if (want_sin) {
        PT_RNG_NEST(1.0 / (22.0 * 23.0)); PT_RNG_NEST(1.0 / (20.0 * 21.0)); PT_RNG_NEST(1.0 / (18.0 * 19.0));
        PT_RNG_NEST(1.0 / (16.0 * 17.0)); PT_RNG_NEST(1.0 / (14.0 * 15.0)); PT_RNG_NEST(1.0 / (12.0 * 13.0));
        PT_RNG_NEST(1.0 / (10.0 * 11.0)); PT_RNG_NEST(1.0 / (8.0 * 9.0));   PT_RNG_NEST(1.0 / (6.0 * 7.0));
        PT_RNG_NEST(1.0 / (4.0 * 5.0));   PT_RNG_NEST(1.0 / (2.0 * 3.0));
        return PT_RNG_MUL(x, p);
    }
    PT_RNG_NEST(1.0 / (21.0 * 22.0)); PT_RNG_NEST(1.0 / (19.0 * 20.0)); PT_RNG_NEST(1.0 / (17.0 * 18.0));
    PT_RNG_NEST(1.0 / (15.0 * 16.0)); PT_RNG_NEST(1.0 / (13.0 * 14.0)); PT_RNG_NEST(1.0 / (11.0 * 12.0));
    PT_RNG_NEST(1.0 / (9.0 * 10.0));  PT_RNG_NEST(1.0 / (7.0 * 8.0));   PT_RNG_NEST(1.0 / (5.0 * 6.0));
    PT_RNG_NEST(1.0 / (3.0 * 4.0));   PT_RNG_NEST(1.0 / (1.0 * 2.0));
    return p;
}
#undef PT_RNG_NEST

/* Box–Muller radius r = sqrt(-2 ln u1), u1 in (0, 1]. */
PT_RNG_HD double pt_rng_bm_radius(double u1) { return PT_RNG_SQRT(PT_RNG_MUL(-2.0, pt_rng_log(u1))); }

/* cos(2π u2) (which = 0) or sin(2π u2) (which = 1), u2 in [0, 1). The angle is reduced exactly:
 * q = floor(4 u2) (the quadrant), f = 4 u2 - q, x = f·(π/2); then cos/sin(qπ/2 + x) is ±cos x or
 * ±sin x: sin x is used when q + which is odd, and the sign is negative when (q - which) mod 4 is
 * 1 or 2. */
PT_RNG_HD double pt_rng_bm_trig(double u2, int which) {
    double u4 = PT_RNG_MUL(u2, 4.0);
    int q = (int)u4;
    double f = PT_RNG_SUB(u4, (double)q);
    double v = pt_rng_sin_or_cos_q(PT_RNG_MUL(f, 1.57079632679489661923), (q + which) & 1);
    int t = (q - which) & 3;
    return (t == 1 || t == 2) ? -v : v;
}

/* Box–Muller: z = r·cos(2π u2) (which = 0) or r·sin(2π u2) (which = 1). */
PT_RNG_HD double pt_rng_box_muller(double u1, double u2, int which) {
    return PT_RNG_MUL(pt_rng_bm_radius(u1), pt_rng_bm_trig(u2, which));
}

#endif
