/* test_rng.c — the counter-based RNG: Philox4x32-10 against the Random123 known-answer vectors,
 * the element -> (block, lane) mapping of pt_rng.h (element i computed independently equals the
 * fill), same seed -> same stream, offsets and get/set_state (checkpoint/resume), independence
 * from the thread count, the basic-ops ln/sin/cos of the Box–Muller path against libm, moments of
 * uniform and normal draws (1e6 samples), randint range/uniformity/dtypes, randperm, bf16 and
 * strided views, and errors.
 *
 *   cmake --build build && ctest --test-dir build -R test_rng --output-on-failure
 */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "pt_ops.h"
#include "pt_rng.h"
#include "pt_test.h"

#define SHAPE(...) ((int64_t[]){__VA_ARGS__})

/* deterministic pseudo-random values in [-1, 1) (a 64-bit LCG, independent of the generator tested) */
static double lcg(uint64_t *s) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(*s >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

PT_TEST(philox_known_answers) {
    /* Random123 kat_vectors, "philox4x32 10": counter[4] key[2] -> output[4] */
    static const uint32_t kat[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d, 0x41c83b0e, 0xa20bc7c6,
         0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09, 0x94fdcceb, 0x5001e420,
         0x24126ea1},
    };
    for (int v = 0; v < 3; v++) {
        uint32_t c[4] = {kat[v][0], kat[v][1], kat[v][2], kat[v][3]};
        pt_philox4x32_10(c, kat[v][4], kat[v][5]);
        PT_CHECK(c[0] == kat[v][6] && c[1] == kat[v][7] && c[2] == kat[v][8] && c[3] == kat[v][9]);
    }
    /* block b of seed s is philox((lo b, hi b, 0, 0), (lo s, hi s)) */
    uint32_t x[4];
    pt_rng_block(0xffffffffffffffffULL, 0xffffffffULL | (0xffffffffULL << 32), x);
    uint32_t c[4] = {0xffffffff, 0xffffffff, 0, 0};
    pt_philox4x32_10(c, 0xffffffff, 0xffffffff);
    PT_CHECK(memcmp(x, c, sizeof x) == 0);
}

PT_TEST(fill_matches_documented_mapping) {
    pt_generator g;
    pt_generator_seed(&g, 0);
    pt_tensor *t = NULL;
    PT_CHECK_OK(pt_tensor_empty(&t, PT_F32, PT_CPU, 1, SHAPE(10)));
    PT_CHECK_OK(pt_generator_uniform_(&g, t, 0, 1));
    const float *p = pt_tensor_data(t);
    /* seed 0, block 0 is the first KAT vector: element 0 = (0x6627e8d5 >> 8) * 2^-24 */
    PT_CHECK(p[0] == (float)((0x6627e8d5u >> 8) / 16777216.0));
    PT_CHECK(p[3] == (float)((0x9b00dbd8u >> 8) / 16777216.0));
    PT_CHECK(g.offset == 3); /* ceil(10 / 4) blocks */
    /* every element computed on its own from the table in pt_rng.h */
    int ok = 1;
    for (int64_t i = 0; i < 10; i++) {
        uint32_t x[4];
        pt_rng_block(0, (uint64_t)(i / 4), x);
        ok &= p[i] == (float)(0.0 + 1.0 * ((double)(x[i % 4] >> 8) / 16777216.0));
    }
    PT_CHECK(ok);
    /* uniform f64 [-2, 3) at offset 3 */
    pt_tensor *d = NULL;
    PT_CHECK_OK(pt_tensor_empty(&d, PT_F64, PT_CPU, 1, SHAPE(5)));
    PT_CHECK_OK(pt_generator_uniform_(&g, d, -2, 3));
    PT_CHECK(g.offset == 6);
    for (int64_t i = 0; i < 5; i++) {
        uint32_t x[4];
        pt_rng_block(0, 3 + (uint64_t)(i / 2), x);
        int j = (int)(i % 2);
        double u = (double)((((uint64_t)x[2 * j] << 32) | x[2 * j + 1]) >> 11) / 9007199254740992.0;
        ok &= ((double *)pt_tensor_data(d))[i] == -2 + 5 * u;
    }
    PT_CHECK(ok);
    /* normal f32: element i uses the pair (i%4)/2 of block i/4 */
    pt_generator_seed(&g, 1234);
    PT_CHECK_OK(pt_generator_normal_(&g, t, 0.5, 2));
    for (int64_t i = 0; i < 10; i++) {
        uint32_t x[4];
        pt_rng_block(1234, (uint64_t)(i / 4), x);
        int pr = (int)(i % 4) / 2;
        double u1 = (double)((x[2 * pr] >> 8) + 1) / 16777216.0, u2 = (double)(x[2 * pr + 1] >> 8) / 16777216.0;
        ok &= p[i] == (float)(0.5 + 2 * pt_rng_box_muller(u1, u2, (int)(i % 2)));
    }
    PT_CHECK(ok);
    /* normal f64: element i uses the whole block i/2 (u1 from lanes 0,1; u2 from lanes 2,3) */
    uint64_t off = g.offset;
    PT_CHECK_OK(pt_generator_normal_(&g, d, -1, 3));
    for (int64_t i = 0; i < 5; i++) {
        uint32_t x[4];
        pt_rng_block(1234, off + (uint64_t)(i / 2), x);
        double u1 = (double)(((((uint64_t)x[0] << 32) | x[1]) >> 11) + 1) / 9007199254740992.0;
        double u2 = (double)((((uint64_t)x[2] << 32) | x[3]) >> 11) / 9007199254740992.0;
        ok &= ((double *)pt_tensor_data(d))[i] == -1 + 3 * pt_rng_box_muller(u1, u2, (int)(i % 2));
    }
    PT_CHECK(ok && g.offset == off + 3);
    pt_tensor_release(d);
    pt_tensor_release(t);
}

PT_TEST(same_seed_same_stream_and_state) {
    pt_tensor *a = NULL, *b = NULL, *c = NULL;
    PT_CHECK_OK(pt_tensor_empty(&a, PT_F32, PT_CPU, 2, SHAPE(7, 9)));
    PT_CHECK_OK(pt_tensor_empty(&b, PT_F32, PT_CPU, 2, SHAPE(7, 9)));
    PT_CHECK_OK(pt_tensor_empty(&c, PT_F32, PT_CPU, 1, SHAPE(126)));
    pt_rng_manual_seed(42);
    PT_CHECK_OK(pt_rng_normal_(a, 0, 1));
    pt_rng_state s = pt_rng_get_state();
    PT_CHECK(s.seed == 42 && s.offset == 16); /* ceil(63/4) */
    PT_CHECK_OK(pt_rng_normal_(b, 0, 1));
    PT_CHECK(memcmp(pt_tensor_data(a), pt_tensor_data(b), 63 * sizeof(float)) != 0);
    /* resume from the saved state: the same second draw */
    pt_tensor *b2 = NULL;
    PT_CHECK_OK(pt_tensor_empty(&b2, PT_F32, PT_CPU, 2, SHAPE(7, 9)));
    pt_rng_set_state(s);
    PT_CHECK_OK(pt_rng_normal_(b2, 0, 1));
    PT_CHECK(memcmp(pt_tensor_data(b), pt_tensor_data(b2), 63 * sizeof(float)) == 0);
    /* re-seeding restarts the stream */
    pt_rng_manual_seed(42);
    PT_CHECK_OK(pt_rng_normal_(b2, 0, 1));
    PT_CHECK(memcmp(pt_tensor_data(a), pt_tensor_data(b2), 63 * sizeof(float)) == 0);
    /* two fills of 64 = one fill of 128 (block aligned) */
    pt_tensor *h1 = NULL, *h2 = NULL, *whole = NULL;
    PT_CHECK_OK(pt_tensor_empty(&h1, PT_F32, PT_CPU, 1, SHAPE(64)));
    PT_CHECK_OK(pt_tensor_empty(&h2, PT_F32, PT_CPU, 1, SHAPE(64)));
    PT_CHECK_OK(pt_tensor_empty(&whole, PT_F32, PT_CPU, 1, SHAPE(128)));
    pt_rng_manual_seed(7);
    PT_CHECK_OK(pt_rng_uniform_(h1, 0, 1));
    PT_CHECK_OK(pt_rng_uniform_(h2, 0, 1));
    pt_rng_manual_seed(7);
    PT_CHECK_OK(pt_rng_uniform_(whole, 0, 1));
    const float *w = pt_tensor_data(whole);
    PT_CHECK(memcmp(w, pt_tensor_data(h1), 256) == 0 && memcmp(w + 64, pt_tensor_data(h2), 256) == 0);
    /* explicit generators do not touch the default one */
    pt_generator g;
    pt_generator_seed(&g, 42);
    pt_rng_state before = pt_rng_get_state();
    PT_CHECK_OK(pt_generator_normal_(&g, b2, 0, 1));
    PT_CHECK(memcmp(pt_tensor_data(a), pt_tensor_data(b2), 63 * sizeof(float)) == 0);
    pt_rng_state after = pt_rng_get_state();
    PT_CHECK(before.seed == after.seed && before.offset == after.offset);
    pt_generator_seed(&g, 43);
    PT_CHECK_OK(pt_generator_normal_(&g, b2, 0, 1));
    PT_CHECK(memcmp(pt_tensor_data(a), pt_tensor_data(b2), 63 * sizeof(float)) != 0);
    pt_tensor_release(h1);
    pt_tensor_release(h2);
    pt_tensor_release(whole);
    pt_tensor_release(b2);
    pt_tensor_release(a);
    pt_tensor_release(b);
    pt_tensor_release(c);
}

PT_TEST(thread_count_does_not_change_bits) {
    const int64_t n = 300001;
    pt_dtype dts[] = {PT_F32, PT_F64};
    for (int k = 0; k < 2; k++) {
        pt_tensor *a = NULL, *b = NULL;
        PT_CHECK_OK(pt_tensor_empty(&a, dts[k], PT_CPU, 1, &n));
        PT_CHECK_OK(pt_tensor_empty(&b, dts[k], PT_CPU, 1, &n));
        int prev = omp_get_max_threads();
        pt_generator g;
        omp_set_num_threads(1);
        pt_generator_seed(&g, 5);
        PT_CHECK_OK(pt_generator_normal_(&g, a, 0, 1));
        omp_set_num_threads(prev > 1 ? prev : 2);
        pt_generator_seed(&g, 5);
        PT_CHECK_OK(pt_generator_normal_(&g, b, 0, 1));
        omp_set_num_threads(prev);
        PT_CHECK(memcmp(pt_tensor_data(a), pt_tensor_data(b), (size_t)n * pt_dtype_size(dts[k])) == 0);
        pt_tensor_release(a);
        pt_tensor_release(b);
    }
}

PT_TEST(box_muller_math_matches_libm) {
    /* ln on (0, 1], sin/cos of 2πu on [0, 1): the basic-ops versions agree with libm to ~1e-15 */
    double worst_log = 0, worst_trig = 0;
    uint64_t s = 3;
    for (int i = 0; i < 200000; i++) {
        double u = (double)((lcg(&s) + 1) * 0.5);
        if (i < 60) u = ldexp(1.0, -i); /* powers of two down to 2^-59 */
        if (u <= 0) continue;
        double e = fabs(pt_rng_log(u) - log(u)) / fmax(1e-300, fabs(log(u)));
        if (log(u) == 0) e = fabs(pt_rng_log(u));
        worst_log = fmax(worst_log, e);
        double u2 = (lcg(&s) + 1) * 0.5;
        if (u2 >= 1) continue;
        double z0 = pt_rng_box_muller(1.0 / M_E, u2, 0), z1 = pt_rng_box_muller(1.0 / M_E, u2, 1);
        /* r = sqrt(2) for u1 = 1/e */
        worst_trig = fmax(worst_trig, fabs(z0 - sqrt(2.0) * cos(2 * M_PI * u2)));
        worst_trig = fmax(worst_trig, fabs(z1 - sqrt(2.0) * sin(2 * M_PI * u2)));
    }
    PT_CHECK(worst_log < 1e-15); /* about 2 ulp at worst (u just below sqrt(1/2)) */
    PT_CHECK(worst_trig < 4e-15);
    PT_CHECK(pt_rng_log(1.0) == 0.0);
    PT_CHECK_NEAR(pt_rng_box_muller(exp(-0.5), 0.0, 0), 1.0, 1e-15); /* r = 1, θ = 0 */
    PT_CHECK_NEAR(pt_rng_box_muller(exp(-0.5), 0.25, 1), 1.0, 1e-15);
    PT_CHECK_NEAR(pt_rng_box_muller(exp(-0.5), 0.5, 0), -1.0, 1e-15);
    PT_CHECK_NEAR(pt_rng_box_muller(exp(-0.5), 0.75, 1), -1.0, 1e-15);
}

static void moments(const pt_tensor *t, double *mean, double *std, double *kurt, double *lo, double *hi) {
    int64_t n = pt_tensor_numel(t);
    double s = 0, s2 = 0, s4 = 0;
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        double v = t->dtype == PT_F32 ? ((const float *)pt_tensor_data(t))[i] : ((const double *)pt_tensor_data(t))[i];
        s += v;
        *lo = fmin(*lo, v);
        *hi = fmax(*hi, v);
    }
    *mean = s / (double)n;
    for (int64_t i = 0; i < n; i++) {
        double v = t->dtype == PT_F32 ? ((const float *)pt_tensor_data(t))[i] : ((const double *)pt_tensor_data(t))[i];
        double d = v - *mean;
        s2 += d * d;
        s4 += d * d * d * d;
    }
    *std = sqrt(s2 / (double)n);
    *kurt = (s4 / (double)n) / ((s2 / (double)n) * (s2 / (double)n));
}

PT_TEST(distribution_moments) {
    const int64_t n = 1000000;
    pt_dtype dts[] = {PT_F32, PT_F64};
    for (int k = 0; k < 2; k++) {
        pt_tensor *t = NULL;
        PT_CHECK_OK(pt_tensor_empty(&t, dts[k], PT_CPU, 1, &n));
        double m, sd, ku, lo, hi;
        pt_rng_manual_seed(2024);
        PT_CHECK_OK(pt_rng_normal_(t, 0, 1));
        moments(t, &m, &sd, &ku, &lo, &hi);
        PT_CHECK(fabs(m) < 0.005 && fabs(sd - 1) < 0.005 && fabs(ku - 3) < 0.05);
        PT_CHECK(lo < -4 && hi > 4 && lo > -6.5 && hi < 6.5);
        PT_CHECK_OK(pt_rng_normal_(t, 3, 0.5));
        moments(t, &m, &sd, &ku, &lo, &hi);
        PT_CHECK(fabs(m - 3) < 0.003 && fabs(sd - 0.5) < 0.003);
        PT_CHECK_OK(pt_rng_uniform_(t, -1, 3));
        moments(t, &m, &sd, &ku, &lo, &hi);
        PT_CHECK(fabs(m - 1) < 0.01 && fabs(sd - 4 / sqrt(12.0)) < 0.01 && lo >= -1 && hi < 3);
        PT_CHECK(lo < -0.999 && hi > 2.999);
        pt_tensor_release(t);
    }
}

PT_TEST(randint_range_and_dtypes) {
    const int64_t n = 70000;
    pt_tensor *t = NULL;
    PT_CHECK_OK(pt_tensor_empty(&t, PT_I64, PT_CPU, 1, &n));
    pt_rng_manual_seed(11);
    PT_CHECK_OK(pt_rng_randint_(t, -3, 4));
    PT_CHECK(pt_rng_get_state().offset == 35000);
    int64_t counts[7] = {0};
    int ok = 1;
    for (int64_t i = 0; i < n; i++) {
        int64_t v = ((int64_t *)pt_tensor_data(t))[i];
        if (v < -3 || v >= 4) ok = 0;
        else counts[v + 3]++;
    }
    PT_CHECK(ok);
    for (int k = 0; k < 7; k++) PT_CHECK(counts[k] > 9600 && counts[k] < 10400); /* 10000 ± 4.3 sigma */
    /* the documented mapping: lo + floor(r * R / 2^64) */
    uint32_t x[4];
    pt_rng_block(11, 0, x);
    uint64_t r = ((uint64_t)x[2] << 32) | x[3];
    PT_CHECK(((int64_t *)pt_tensor_data(t))[1] == -3 + (int64_t)(((unsigned __int128)r * 7) >> 64));
    /* the full u8 range, u16 tokens, f32 tensors */
    pt_tensor *u = NULL, *f = NULL, *tk = NULL;
    PT_CHECK_OK(pt_tensor_empty(&u, PT_U8, PT_CPU, 1, SHAPE(5000)));
    PT_CHECK_OK(pt_rng_randint_(u, 0, 256));
    int seen[256] = {0}, all = 1;
    for (int i = 0; i < 5000; i++) seen[((uint8_t *)pt_tensor_data(u))[i]] = 1;
    for (int i = 0; i < 256; i++) all &= seen[i];
    PT_CHECK(all);
    PT_CHECK_OK(pt_tensor_empty(&tk, PT_U16, PT_CPU, 2, SHAPE(4, 8)));
    PT_CHECK_OK(pt_rng_randint_(tk, 0, 1024));
    for (int i = 0; i < 32; i++) ok &= ((uint16_t *)pt_tensor_data(tk))[i] < 1024;
    PT_CHECK(ok);
    PT_CHECK_OK(pt_tensor_empty(&f, PT_F32, PT_CPU, 1, SHAPE(100)));
    PT_CHECK_OK(pt_rng_randint_(f, 10, 12));
    for (int i = 0; i < 100; i++) {
        float v = ((float *)pt_tensor_data(f))[i];
        ok &= v == 10 || v == 11;
    }
    PT_CHECK(ok);
    /* errors */
    PT_CHECK_ERR(pt_rng_randint_(u, 0, 300), PT_ERR_VALUE, "randint_: range [0, 300) does not fit dtype u8");
    PT_CHECK_ERR(pt_rng_randint_(t, 5, 5), PT_ERR_VALUE, "randint_: needs lo < hi, got lo = 5, hi = 5");
    PT_CHECK_ERR(pt_rng_uniform_(t, 0, 1), PT_ERR_DTYPE, "uniform_: needs a floating point tensor, got i64");
    PT_CHECK_ERR(pt_rng_normal_(f, 0, -1), PT_ERR_VALUE, "normal_: needs a finite mean and std >= 0");
    PT_CHECK_ERR(pt_rng_uniform_(f, 2, 1), PT_ERR_VALUE, "uniform_: needs finite lo <= hi, got lo = 2, hi = 1");
    pt_tensor_release(tk);
    pt_tensor_release(f);
    pt_tensor_release(u);
    pt_tensor_release(t);
}

PT_TEST(randperm_is_a_permutation) {
    pt_tensor *p = NULL, *q = NULL;
    pt_rng_manual_seed(9);
    PT_CHECK_OK(pt_rng_randperm(&p, 1001));
    PT_CHECK(p && p->dtype == PT_I64 && p->ndim == 1 && p->shape[0] == 1001);
    PT_CHECK(pt_rng_get_state().offset == 501);
    char *seen = calloc(1001, 1);
    int ok = 1, moved = 0;
    for (int64_t i = 0; i < 1001; i++) {
        int64_t v = ((int64_t *)pt_tensor_data(p))[i];
        if (v < 0 || v >= 1001 || seen[v]) ok = 0;
        else seen[v] = 1;
        moved += v != i;
    }
    free(seen);
    PT_CHECK(ok && moved > 900);
    pt_rng_manual_seed(9);
    PT_CHECK_OK(pt_rng_randperm(&q, 1001));
    PT_CHECK(memcmp(pt_tensor_data(p), pt_tensor_data(q), 1001 * 8) == 0);
    pt_tensor_release(q);
    /* small cases: sorting the keys of block 0 by hand */
    pt_generator g;
    pt_generator_seed(&g, 0);
    PT_CHECK_OK(pt_generator_randperm(&g, &q, 2));
    uint64_t k0 = ((uint64_t)0x6627e8d5 << 32) | 0xe169c58d, k1 = ((uint64_t)0xbc57ac4c << 32) | 0x9b00dbd8;
    int64_t *pq = pt_tensor_data(q);
    PT_CHECK(k0 < k1 ? (pq[0] == 0 && pq[1] == 1) : (pq[0] == 1 && pq[1] == 0));
    pt_tensor_release(q);
    PT_CHECK_OK(pt_rng_randperm(&q, 0));
    PT_CHECK(q && q->shape[0] == 0);
    pt_tensor_release(q);
    PT_CHECK_ERR(pt_rng_randperm(&q, -1), PT_ERR_VALUE, "randperm: n = -1 must be >= 0");
    pt_tensor_release(p);
}

PT_TEST(bf16_and_strided_fills) {
    /* bf16 = the f32 stream rounded to nearest even */
    pt_tensor *b = NULL, *f = NULL, *fb = NULL;
    PT_CHECK_OK(pt_tensor_empty(&b, PT_BF16, PT_CPU, 2, SHAPE(3, 5)));
    PT_CHECK_OK(pt_tensor_empty(&f, PT_F32, PT_CPU, 2, SHAPE(3, 5)));
    pt_rng_manual_seed(77);
    PT_CHECK_OK(pt_rng_normal_(b, 0, 1));
    pt_rng_state sb = pt_rng_get_state();
    pt_rng_manual_seed(77);
    PT_CHECK_OK(pt_rng_normal_(f, 0, 1));
    PT_CHECK(sb.offset == pt_rng_get_state().offset);
    PT_CHECK_OK(pt_tensor_to(&fb, f, PT_BF16, PT_CPU, 1));
    PT_CHECK(memcmp(pt_tensor_data(b), pt_tensor_data(fb), 15 * 2) == 0);
    /* a transposed view is filled in its own (view) order */
    pt_tensor *base = NULL, *tv = NULL, *ref = NULL;
    PT_CHECK_OK(pt_tensor_zeros(&base, PT_F64, PT_CPU, 2, SHAPE(3, 4)));
    PT_CHECK_OK(pt_transpose(&tv, base, 0, 1));
    PT_CHECK_OK(pt_tensor_empty(&ref, PT_F64, PT_CPU, 2, SHAPE(4, 3)));
    pt_rng_manual_seed(5);
    PT_CHECK_OK(pt_rng_uniform_(tv, 0, 1));
    pt_rng_manual_seed(5);
    PT_CHECK_OK(pt_rng_uniform_(ref, 0, 1));
    int ok = 1;
    for (int64_t i = 0; i < 12; i++) {
        double a, c;
        pt_tensor_get_flat(tv, i, &a);
        pt_tensor_get_flat(ref, i, &c);
        ok &= a == c;
    }
    PT_CHECK(ok);
    pt_tensor_release(ref);
    pt_tensor_release(tv);
    pt_tensor_release(base);
    pt_tensor_release(fb);
    pt_tensor_release(f);
    pt_tensor_release(b);
}

int main(void) { return pt_test_main(); }
