/* test_cuda_elementwise.c — every CUDA elementwise kernel against the CPU oracle, through the op
 * fronts (pt_ops.h) on fresh random inputs: same shapes, broadcasting, and non-contiguous
 * (transposed) views; plus the backward kernels, casts between all dtypes and fill.
 *
 *   ctest --test-dir build -R test_cuda_elementwise     (or build/test_cuda_elementwise)
 *
 * Each device output is poisoned before its op runs (the block the op will get from the caching
 * allocator is filled with 0xFF bytes = NaN for floats first), so an element the kernel forgot shows.
 * Comparison (METHOD.md): ||gpu - cpu|| / ||cpu|| within 1e-5 (f32), 1e-12 (f64), 1e-2 (bf16; the
 * oracle computes in f32 on the bf16 inputs and rounds once); exact for integers, bools, where,
 * copies and fills; a NaN passes only where the oracle has one. The fast_* tests run the contiguous
 * fast path (16-byte vectors, scalar tail, unaligned views) and the general kernels on the same
 * values and require the same bits from both. Exits 77 without a device.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pt_elementwise.h"
#include "pt_ops.h"
#include "pt_dispatch.h"
#include "pt_test.h"

#ifdef PT_WITH_CUDA
#include "cuda/pt_cuda.h"

static const pt_device CUDA0 = {PT_DEV_CUDA, 0};
static uint64_t rng_s;
static int n_poison_missed;

static double urand(double lo, double hi) {
    rng_s = rng_s * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (double)(rng_s >> 11) / 9007199254740992.0;
}

/* random CPU tensor of dtype dt; integers are whole numbers in [lo, hi], |x| >= minabs */
static pt_tensor *rnd(pt_dtype dt, int ndim, const int64_t *shape, double lo, double hi, double minabs) {
    pt_tensor *f = NULL, *t = NULL;
    PT_CHECK_OK(pt_tensor_empty(&f, PT_F64, PT_CPU, ndim, shape));
    int64_t n = pt_tensor_numel(f);
    for (int64_t i = 0; i < n; i++) {
        double v;
        do {
            v = urand(lo, hi);
            if (pt_dtype_is_int(dt)) v = floor(v + 0.5);
        } while (fabs(v) < minabs);
        pt_tensor_set_flat(f, i, v);
    }
    PT_CHECK_OK(pt_tensor_to(&t, f, dt, PT_CPU, 1));
    pt_tensor_release(f);
    return t;
}

static pt_tensor *up(pt_tensor *t) {
    pt_tensor *g = NULL;
    PT_CHECK_OK(pt_tensor_to(&g, t, t->dtype, CUDA0, 1));
    return g;
}

/* the next device allocation of nbytes gets a block full of 0xFF (LIFO reuse of its size class) */
static void *poison_next(size_t nbytes) {
    void *p = NULL;
    if (!nbytes) return NULL;
    PT_CHECK_OK(pt_cuda_alloc(&p, nbytes, 0));
    unsigned char *h = malloc(nbytes);
    memset(h, 0xFF, nbytes);
    PT_CHECK_OK(pt_cuda_memcpy_h2d(p, h, nbytes, 0));
    free(h);
    pt_cuda_free(p, nbytes, 0);
    return p;
}

static void expect_poisoned(void *p, pt_tensor *out) {
    if (out && p && pt_tensor_data(out) != p) n_poison_missed++;
}

/* compares a device result with the CPU reference; tol 0 = exact */
static void compare(const char *what, pt_tensor *got, pt_tensor *want, double tol) {
    if (!got || !want) {
        printf("  %s: missing result\n", what);
        PT_CHECK(got && want);
        return;
    }
    pt_tensor *g = NULL, *w = NULL;
    PT_CHECK_OK(pt_tensor_to(&g, got, PT_F64, PT_CPU, 1));
    PT_CHECK_OK(pt_tensor_to(&w, want, PT_F64, PT_CPU, 1));
    if (!g || !w) return;
    PT_CHECK(g->ndim == w->ndim && !memcmp(g->shape, w->shape, sizeof(int64_t) * (size_t)g->ndim));
    int64_t n = pt_tensor_numel(w), bad_nan = 0, bad_exact = 0;
    double num = 0, den = 0;
    const double *G = g->storage->data, *W = w->storage->data;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(W[i]) || isnan(G[i])) {
            bad_nan += isnan(W[i]) != isnan(G[i]);
            continue;
        }
        if (isinf(W[i]) || isinf(G[i])) {
            bad_exact += G[i] != W[i];
            continue;
        }
        double d = G[i] - W[i];
        num += d * d;
        den += W[i] * W[i];
        if (tol == 0 && G[i] != W[i]) bad_exact++;
    }
    double rel = den > 0 ? sqrt(num / den) : sqrt(num);
    int ok = bad_nan == 0 && bad_exact == 0 && rel <= tol;
    if (!ok) printf("  %s: rel err %.3g (tol %.1g), %lld NaN mismatches, %lld exact mismatches of %lld\n", what, rel,
                    tol, (long long)bad_nan, (long long)bad_exact, (long long)n);
    PT_CHECK(ok);
    pt_tensor_release(g);
    pt_tensor_release(w);
}

static double tol_of(pt_dtype dt) {
    switch (dt) {
    case PT_F32: return 1e-5;
    case PT_F64: return 1e-12;
    case PT_BF16: return 1e-2;
    default: return 0;
    }
}

/* the oracle's inputs: bf16 computes in f32 on the CPU */
static pt_tensor *cpu_in(pt_tensor *t) {
    pt_tensor *r = NULL;
    PT_CHECK_OK(pt_tensor_to(&r, t, t->dtype == PT_BF16 ? PT_F32 : t->dtype, PT_CPU, 0));
    return r;
}
/* and its output rounded like the device's */
static pt_tensor *cpu_out(pt_tensor *r, pt_dtype dt) {
    if (!r) return NULL;
    if (dt != PT_BF16 || r->dtype != PT_F32) return r;
    pt_tensor *b = NULL;
    PT_CHECK_OK(pt_tensor_to(&b, r, PT_BF16, PT_CPU, 1));
    pt_tensor_release(r);
    return b;
}

static void rel3(pt_tensor *a, pt_tensor *b, pt_tensor *c) {
    pt_tensor_release(a);
    pt_tensor_release(b);
    pt_tensor_release(c);
}

static const pt_dtype FLOATS[] = {PT_F32, PT_F64, PT_BF16};
static const pt_dtype ALL[] = {PT_F32, PT_F64, PT_BF16, PT_I64, PT_I32};
#define NELEM(x) ((int)(sizeof(x) / sizeof((x)[0])))

/* geometry k: 0 same shape, 1 broadcast [37,1] op [29], 2 transposed a op contiguous b */
static void make_pair(int k, pt_dtype dt, double lo, double hi, double minabs_b, pt_tensor **ca, pt_tensor **cb,
                      pt_tensor **ga, pt_tensor **gb) {
    int64_t s2[2] = {37, 29}, sc[2] = {37, 1}, sr[1] = {29}, st[2] = {29, 37};
    pt_tensor *a0, *b0;
    if (k == 0) {
        a0 = rnd(dt, 2, s2, lo, hi, 0);
        b0 = rnd(dt, 2, s2, lo, hi, minabs_b);
    } else if (k == 1) {
        a0 = rnd(dt, 2, sc, lo, hi, 0);
        b0 = rnd(dt, 1, sr, lo, hi, minabs_b);
    } else {
        a0 = rnd(dt, 2, st, lo, hi, 0);
        b0 = rnd(dt, 2, s2, lo, hi, minabs_b);
    }
    pt_tensor *ga0 = up(a0);
    *gb = up(b0);
    *cb = b0;
    if (k == 2) {
        PT_CHECK_OK(pt_transpose(ca, a0, 0, 1));
        PT_CHECK_OK(pt_transpose(ga, ga0, 0, 1));
        pt_tensor_release(a0);
        pt_tensor_release(ga0);
    } else {
        *ca = a0;
        *ga = ga0;
    }
}

static size_t out_bytes(pt_dtype dt, int64_t n) { return (size_t)n * pt_dtype_size(dt); }

PT_TEST(binary_all_ops_dtypes_geometries) {
    for (int di = 0; di < NELEM(ALL); di++) {
        pt_dtype dt = ALL[di];
        int isint = pt_dtype_is_int(dt);
        for (int op = 0; op < PT_NBINOPS; op++) {
            for (int k = 0; k < 3; k++) {
                double lo = isint ? -20 : -2, hi = isint ? 20 : 2, mb = 0;
                if (op == PT_BIN_DIV) mb = isint ? 1 : 0.25;
                if (op == PT_BIN_POW) { lo = isint ? 0 : 0.1; hi = isint ? 4 : 2; }
                pt_tensor *ca, *cb, *ga, *gb, *go = NULL, *co = NULL;
                make_pair(k, dt, lo, hi, mb, &ca, &cb, &ga, &gb);
                int cmp = op >= PT_BIN_EQ;
                void *p = poison_next(out_bytes(cmp ? PT_BOOL : dt, 37 * 29));
                PT_CHECK_OK(pt_binary(&go, (pt_binop)op, ga, gb));
                expect_poisoned(p, go);
                pt_tensor *fa = cpu_in(ca), *fb = cpu_in(cb);
                PT_CHECK_OK(pt_binary(&co, (pt_binop)op, fa, fb));
                co = cpu_out(co, cmp ? PT_BOOL : dt);
                char what[96];
                snprintf(what, sizeof what, "binary %s %s geometry %d", pt_binop_name((pt_binop)op), pt_dtype_name(dt), k);
                compare(what, go, co, cmp ? 0 : tol_of(dt));
                rel3(ca, cb, ga);
                rel3(gb, go, co);
                rel3(fa, fb, NULL);
            }
        }
    }
    PT_CHECK(n_poison_missed == 0);
}

PT_TEST(binary_scalar_both_sides) {
    int64_t st[2] = {29, 37};
    for (int di = 0; di < NELEM(ALL); di++) {
        pt_dtype dt = ALL[di];
        int isint = pt_dtype_is_int(dt);
        for (int op = 0; op < PT_NBINOPS; op++) {
            for (int sf = 0; sf < 2; sf++) {
                double s = isint ? 3 : 0.75;
                double lo = isint ? -20 : -2, hi = isint ? 20 : 2, minabs = 0;
                if (op == PT_BIN_POW) { lo = isint ? 0 : 0.1; hi = isint ? 4 : 2; }
                if (op == PT_BIN_DIV && sf) minabs = isint ? 1 : 0.25;
                pt_tensor *a0 = rnd(dt, 2, st, lo, hi, minabs), *ga0 = up(a0), *ca = NULL, *ga = NULL, *go = NULL,
                          *co = NULL;
                PT_CHECK_OK(pt_transpose(&ca, a0, 0, 1));
                PT_CHECK_OK(pt_transpose(&ga, ga0, 0, 1));
                PT_CHECK_OK(pt_binary_scalar(&go, (pt_binop)op, ga, s, sf));
                pt_tensor *fa = cpu_in(ca);
                PT_CHECK_OK(pt_binary_scalar(&co, (pt_binop)op, fa, s, sf));
                int exact = op >= PT_BIN_EQ || (isint && go && pt_dtype_is_int(go->dtype));
                co = cpu_out(co, go ? go->dtype : dt);
                char what[96];
                snprintf(what, sizeof what, "binary_scalar %s %s scalar_first=%d", pt_binop_name((pt_binop)op),
                         pt_dtype_name(dt), sf);
                compare(what, go, co, exact ? 0 : tol_of(go ? go->dtype : dt));
                rel3(a0, ga0, ca);
                rel3(ga, go, co);
                pt_tensor_release(fa);
            }
        }
    }
}

static int needs_positive(pt_unop op) {
    return op == PT_UN_LOG || op == PT_UN_SQRT || op == PT_UN_RSQRT || op == PT_UN_RECIPROCAL;
}

PT_TEST(unary_all_ops_strided) {
    int64_t st[2] = {29, 37};
    for (int di = 0; di < NELEM(ALL); di++) {
        pt_dtype dt = ALL[di];
        int isint = pt_dtype_is_int(dt);
        for (int op = 0; op < PT_NUNOPS; op++) {
            if (isint && !(op == PT_UN_NEG || op == PT_UN_ABS || op == PT_UN_SIGN || op == PT_UN_SQUARE)) continue;
            double lo = needs_positive((pt_unop)op) ? 0.1 : -3, hi = 3;
            if (isint) { lo = -1000; hi = 1000; }
            pt_tensor *a0 = rnd(dt, 2, st, lo, hi, 0), *ga0 = up(a0), *ca = NULL, *ga = NULL, *go = NULL, *co = NULL;
            PT_CHECK_OK(pt_transpose(&ca, a0, 0, 1));
            PT_CHECK_OK(pt_transpose(&ga, ga0, 0, 1));
            void *p = poison_next(out_bytes(dt, 37 * 29));
            PT_CHECK_OK(pt_unary(&go, (pt_unop)op, ga));
            expect_poisoned(p, go);
            pt_tensor *fa = cpu_in(ca);
            PT_CHECK_OK(pt_unary(&co, (pt_unop)op, fa));
            co = cpu_out(co, dt);
            char what[96];
            snprintf(what, sizeof what, "unary %s %s", pt_unop_name((pt_unop)op), pt_dtype_name(dt));
            compare(what, go, co, tol_of(dt));
            rel3(a0, ga0, ca);
            rel3(ga, go, co);
            pt_tensor_release(fa);
        }
    }
    PT_CHECK(n_poison_missed == 0);
}

/* runs a *_bwd kernel directly (contiguous x, y, g) on one device */
static pt_tensor *run_bwd(const char *kname, int op, pt_tensor *x, pt_tensor *y, pt_tensor *g, double s, double s2) {
    pt_ew_kernel k = (pt_ew_kernel)pt_kernel_find(kname, g->device.type, g->dtype);
    PT_CHECK(k != NULL);
    if (!k) return NULL;
    pt_tensor *out = NULL;
    if (g->device.type == PT_DEV_CUDA) poison_next(out_bytes(g->dtype, pt_tensor_numel(g)));
    PT_CHECK_OK(pt_tensor_empty_like(&out, g));
    pt_ew_args a;
    memset(&a, 0, sizeof a);
    a.op = op;
    a.n = pt_tensor_numel(g);
    a.ndim = 1;
    a.shape[0] = a.n;
    a.out = pt_tensor_data(out);
    a.a = x ? pt_tensor_data(x) : NULL;
    a.b = y ? pt_tensor_data(y) : NULL;
    a.c = pt_tensor_data(g);
    a.s = s;
    a.s2 = s2;
    k(&a);
    return out;
}

PT_TEST(backward_kernels) {
    int64_t shape[1] = {1000};
    for (int di = 0; di < NELEM(FLOATS); di++) {
        pt_dtype dt = FLOATS[di];
        for (int op = 0; op < PT_NUNOPS + 2; op++) {
            const char *kname = op < PT_NUNOPS ? "ew_unary_bwd" : (op == PT_NUNOPS ? "ew_leaky_bwd" : "ew_clamp_bwd");
            double lo = op < PT_NUNOPS && needs_positive((pt_unop)op) ? 0.1 : -3;
            pt_tensor *x = rnd(dt, 1, shape, lo, 3, 0), *g = rnd(dt, 1, shape, -1, 1, 0), *y = NULL;
            pt_tensor *fx = cpu_in(x), *fg = cpu_in(g);
            if (op < PT_NUNOPS) { /* y = f(x) as the forward would have stored it */
                PT_CHECK_OK(pt_unary(&y, (pt_unop)op, fx));
                y = cpu_out(y, dt);
            }
            pt_tensor *gx = up(x), *gg = up(g), *gy = y ? up(y) : NULL, *fy = y ? cpu_in(y) : NULL;
            int kop = op < PT_NUNOPS ? op : 0;
            double s = op == PT_NUNOPS ? 0.1 : -0.5, s2 = 0.7;
            pt_tensor *go = run_bwd(kname, kop, gx, gy, gg, s, s2);
            pt_tensor *co = cpu_out(run_bwd(kname, kop, fx, fy, fg, s, s2), dt);
            char what[96];
            snprintf(what, sizeof what, "%s %s %s", kname, op < PT_NUNOPS ? pt_unop_name((pt_unop)op) : "", pt_dtype_name(dt));
            compare(what, go, co, tol_of(dt));
            rel3(x, g, y);
            rel3(gx, gg, gy);
            rel3(fx, fg, fy);
            rel3(go, co, NULL);
        }
    }
}

PT_TEST(leaky_clamp_where_forward) {
    int64_t st[2] = {29, 37}, sc[2] = {37, 1}, sr[1] = {29};
    for (int di = 0; di < NELEM(ALL); di++) {
        pt_dtype dt = ALL[di];
        pt_tensor *a0 = rnd(dt, 2, st, -3, 3, 0), *ga0 = up(a0), *ca = NULL, *ga = NULL;
        PT_CHECK_OK(pt_transpose(&ca, a0, 0, 1));
        PT_CHECK_OK(pt_transpose(&ga, ga0, 0, 1));
        pt_tensor *fa = cpu_in(ca);
        char what[96];
        if (!pt_dtype_is_int(dt)) {
            for (int which = 0; which < 2; which++) {
                pt_tensor *go = NULL, *co = NULL;
                if (which == 0) {
                    PT_CHECK_OK(pt_leaky_relu(&go, ga, 0.1));
                    PT_CHECK_OK(pt_leaky_relu(&co, fa, 0.1));
                } else {
                    PT_CHECK_OK(pt_clamp(&go, ga, -0.5, 0.7));
                    PT_CHECK_OK(pt_clamp(&co, fa, -0.5, 0.7));
                }
                co = cpu_out(co, dt);
                snprintf(what, sizeof what, "%s %s", which ? "clamp" : "leaky_relu", pt_dtype_name(dt));
                compare(what, go, co, tol_of(dt));
                rel3(go, co, NULL);
            }
        }
        /* where(cond [37,1], a transposed [37,29], b [29]) */
        pt_tensor *c0 = rnd(PT_F32, 2, sc, -1, 1, 0), *cond = NULL, *gcond = NULL, *b = rnd(dt, 1, sr, -3, 3, 0);
        PT_CHECK_OK(pt_binary_scalar(&cond, PT_BIN_GT, c0, 0, 0));
        gcond = up(cond);
        pt_tensor *gb = up(b), *fb = cpu_in(b), *go = NULL, *co = NULL;
        void *p = poison_next(out_bytes(dt, 37 * 29));
        PT_CHECK_OK(pt_where(&go, gcond, ga, gb));
        expect_poisoned(p, go);
        PT_CHECK_OK(pt_where(&co, cond, fa, fb));
        co = cpu_out(co, dt);
        snprintf(what, sizeof what, "where %s", pt_dtype_name(dt));
        compare(what, go, co, 0);
        rel3(a0, ga0, ca);
        rel3(ga, fa, c0);
        rel3(cond, gcond, b);
        rel3(gb, fb, go);
        pt_tensor_release(co);
    }
    PT_CHECK(n_poison_missed == 0);
}

PT_TEST(sum_to_shape_and_axpy) {
    int64_t s3[3] = {5, 7, 33};
    struct { int nd; int64_t shape[3]; } targets[] = {{1, {33}}, {2, {7, 1}}, {3, {5, 1, 33}}, {1, {1}}, {3, {1, 7, 1}}};
    for (int di = 0; di < NELEM(FLOATS); di++) {
        pt_dtype dt = FLOATS[di];
        pt_tensor *a = rnd(dt, 3, s3, -1, 1, 0), *ga = up(a), *fa = cpu_in(a);
        for (int k = 0; k < NELEM(targets); k++) {
            pt_tensor *go = NULL, *co = NULL;
            PT_CHECK_OK(pt_sum_to_shape(&go, ga, targets[k].nd, targets[k].shape));
            PT_CHECK_OK(pt_sum_to_shape(&co, fa, targets[k].nd, targets[k].shape));
            co = cpu_out(co, dt);
            char what[96];
            snprintf(what, sizeof what, "sum_to target %d %s", k, pt_dtype_name(dt));
            compare(what, go, co, dt == PT_BF16 ? 1e-2 : (dt == PT_F32 ? 1e-6 : 1e-12));
            rel3(go, co, NULL);
        }
        rel3(a, ga, fa);
        /* many terms, few outputs: the block-per-output path, reducing outer and inner dims */
        int64_t tall[2] = {4096, 8}, wide[2] = {8, 4096}, t1[1] = {8}, t2[2] = {8, 1};
        for (int w = 0; w < 2; w++) {
            pt_tensor *b = rnd(dt, 2, w ? wide : tall, -1, 1, 0), *gb = up(b), *fb = cpu_in(b), *go = NULL, *co = NULL;
            PT_CHECK_OK(pt_sum_to_shape(&go, gb, w ? 2 : 1, w ? t2 : t1));
            PT_CHECK_OK(pt_sum_to_shape(&co, fb, w ? 2 : 1, w ? t2 : t1));
            co = cpu_out(co, dt);
            compare(w ? "sum_to [8,4096]->[8,1]" : "sum_to [4096,8]->[8]", go, co, dt == PT_BF16 ? 1e-2 : (dt == PT_F32 ? 1e-5 : 1e-12));
            rel3(b, gb, fb);
            rel3(go, co, NULL);
        }
        /* axpy: a += 0.3 * b, b broadcast [29] and transposed */
        int64_t s2[2] = {37, 29}, sr[1] = {29}, st[2] = {29, 37};
        for (int k = 0; k < 2; k++) {
            pt_tensor *x = rnd(dt, 2, s2, -1, 1, 0), *y0 = rnd(dt, k ? 2 : 1, k ? st : sr, -1, 1, 0);
            pt_tensor *gx = up(x), *gy0 = up(y0), *fx = NULL, *y = NULL, *gy = NULL, *fy = cpu_in(y0);
            PT_CHECK_OK(pt_tensor_to(&fx, x, dt == PT_BF16 ? PT_F32 : dt, PT_CPU, 1));
            if (k) {
                PT_CHECK_OK(pt_transpose(&y, fy, 0, 1));
                PT_CHECK_OK(pt_transpose(&gy, gy0, 0, 1));
            } else {
                y = fy;
                pt_tensor_retain(y);
                gy = gy0;
                pt_tensor_retain(gy);
            }
            PT_CHECK_OK(pt_add_(gx, gy, 0.3));
            PT_CHECK_OK(pt_add_(fx, y, 0.3));
            fx = cpu_out(fx, dt);
            compare(k ? "axpy transposed" : "axpy broadcast", gx, fx, tol_of(dt));
            rel3(x, y0, gx);
            rel3(gy0, fx, y);
            rel3(gy, fy, NULL);
        }
    }
}

PT_TEST(copy_cast_every_dtype_pair_strided) {
    int64_t st[2] = {23, 41};
    for (int sd = 0; sd < PT_NDTYPES; sd++) {
        for (int dd = 0; dd < PT_NDTYPES; dd++) {
            /* values that exercise rounding, saturation and NaN -> 0 for the integer targets */
            pt_tensor *f = rnd(PT_F64, 2, st, -300, 300, 0);
            pt_tensor_set_flat(f, 5, NAN);
            pt_tensor_set_flat(f, 6, 1e30);
            pt_tensor_set_flat(f, 7, -1e30);
            pt_tensor_set_flat(f, 8, 2.5);
            pt_tensor_set_flat(f, 9, 0.0);
            pt_tensor *src = NULL;
            PT_CHECK_OK(pt_tensor_to(&src, f, (pt_dtype)sd, PT_CPU, 1));
            pt_tensor *gsrc = up(src), *cv = NULL, *gv = NULL, *co = NULL, *go = NULL;
            PT_CHECK_OK(pt_transpose(&cv, src, 0, 1));
            PT_CHECK_OK(pt_transpose(&gv, gsrc, 0, 1));
            int64_t ts[2] = {41, 23};
            PT_CHECK_OK(pt_tensor_empty(&co, (pt_dtype)dd, PT_CPU, 2, ts));
            void *p = poison_next(out_bytes((pt_dtype)dd, 41 * 23));
            PT_CHECK_OK(pt_tensor_empty(&go, (pt_dtype)dd, CUDA0, 2, ts));
            expect_poisoned(p, go);
            PT_CHECK_OK(pt_tensor_copy_(co, cv));
            PT_CHECK_OK(pt_tensor_copy_(go, gv));
            /* exact, NaN where the CPU has NaN (payloads may differ: the GPU's conversions make canonical NaNs) */
            char what[96];
            snprintf(what, sizeof what, "copy %s -> %s (transposed source)", pt_dtype_name((pt_dtype)sd),
                     pt_dtype_name((pt_dtype)dd));
            compare(what, go, co, 0);
            rel3(f, src, gsrc);
            rel3(cv, gv, co);
            pt_tensor_release(go);
        }
    }
    PT_CHECK(n_poison_missed == 0);
}

PT_TEST(fill_strided_every_dtype) {
    int64_t s[2] = {19, 13}, ts[2] = {13, 19}, tstr[2] = {1, 13};
    for (int dt = 0; dt < PT_NDTYPES; dt++) {
        pt_tensor *c = rnd((pt_dtype)dt, 2, s, 0, 5, 0), *g = up(c), *cv = NULL, *gv = NULL, *back = NULL;
        PT_CHECK_OK(pt_tensor_view_of(&cv, c, 2, ts, tstr, 0));
        PT_CHECK_OK(pt_tensor_view_of(&gv, g, 2, ts, tstr, 0));
        pt_fill_kernel k = (pt_fill_kernel)pt_kernel_find("tensor_fill", PT_DEV_CUDA, (pt_dtype)dt);
        PT_CHECK(k != NULL);
        if (k) PT_CHECK_OK(k(gv, -3.7));
        PT_CHECK_OK(pt_tensor_fill_(cv, -3.7));
        PT_CHECK_OK(pt_tensor_to(&back, g, (pt_dtype)dt, PT_CPU, 0));
        PT_CHECK(back && memcmp(back->storage->data, c->storage->data, out_bytes((pt_dtype)dt, 19 * 13)) == 0);
        rel3(c, g, cv);
        rel3(gv, back, NULL);
    }
}

/* ---- the contiguous fast path (elementwise.cu k_fast, copy.cu k_cast_fast) against the general
 * kernels, bit for bit, and against the CPU; sizes around the vector width and a view one element
 * into its storage (not 16-byte aligned) for the scalar-tail and unaligned fallbacks ---- */
static const int64_t FAST_SIZES[] = {1, 3, 4, 7, 1023, 4097};

/* one set of values as three tensors: cpu (CPU, contiguous at element offset off of its storage),
 * fast (the same on the device: the fast path; off = 1 is not 16-byte aligned) and slow (the device,
 * every other element of a [n, 2] storage: strided, so the general kernels run) */
typedef struct {
    pt_tensor *cpu, *fast, *slow;
} trio;

static trio make_trio(pt_dtype dt, int nd, const int64_t *shape, int off, double lo, double hi, double minabs) {
    trio t = {NULL, NULL, NULL};
    int64_t n = 1, st[PT_MAX_DIMS], st2[PT_MAX_DIMS];
    for (int d = nd - 1; d >= 0; d--) {
        st[d] = n;
        st2[d] = 2 * n;
        n *= shape[d];
    }
    int64_t nb[1] = {n + off}, flat[1] = {n}, one[1] = {1}, two[1] = {2}, w2[2] = {n, 2};
    pt_tensor *base = rnd(dt, 1, nb, lo, hi, minabs), *gbase = up(base), *w = rnd(dt, 2, w2, lo, hi, minabs);
    pt_tensor *col = NULL, *src = NULL, *gw = NULL;
    PT_CHECK_OK(pt_tensor_view_of(&t.cpu, base, nd, shape, st, off));
    PT_CHECK_OK(pt_tensor_view_of(&t.fast, gbase, nd, shape, st, off));
    PT_CHECK_OK(pt_tensor_view_of(&col, w, 1, flat, two, 0));
    PT_CHECK_OK(pt_tensor_view_of(&src, base, 1, flat, one, off));
    PT_CHECK_OK(pt_tensor_copy_(col, src));
    gw = up(w);
    PT_CHECK_OK(pt_tensor_view_of(&t.slow, gw, nd, shape, st2, 0));
    rel3(base, gbase, w);
    rel3(col, src, gw);
    return t;
}

static void free_trio(trio *t) { rel3(t->cpu, t->fast, t->slow); }

/* exact: the same bytes (NaN payloads included) */
static void same_bits(const char *what, pt_tensor *got, pt_tensor *want) {
    if (!got || !want) {
        printf("  %s: missing result\n", what);
        PT_CHECK(got && want);
        return;
    }
    pt_tensor *g = NULL, *w = NULL;
    PT_CHECK_OK(pt_tensor_to(&g, got, got->dtype, PT_CPU, 1));
    PT_CHECK_OK(pt_tensor_to(&w, want, want->dtype, PT_CPU, 1));
    int ok = g && w && g->dtype == w->dtype && g->ndim == w->ndim &&
             !memcmp(g->shape, w->shape, sizeof(int64_t) * (size_t)g->ndim);
    if (ok) {
        size_t es = pt_dtype_size(g->dtype), n = (size_t)pt_tensor_numel(g);
        const unsigned char *G = pt_tensor_data(g), *W = pt_tensor_data(w);
        for (size_t i = 0; i < n && ok; i++)
            if (memcmp(G + i * es, W + i * es, es)) {
                printf("  %s: element %zu of %zu differs between the fast and the general kernel\n", what, i, n);
                ok = 0;
            }
    } else {
        printf("  %s: dtype or shape differs\n", what);
    }
    PT_CHECK(ok);
    pt_tensor_release(g);
    pt_tensor_release(w);
}

/* fast vs general (bits) and vs the CPU oracle (tol_of; exact for bool) */
static void check3(const char *what, pt_tensor *fast, pt_tensor *slow, pt_tensor *cpu, double tol) {
    same_bits(what, fast, slow);
    compare(what, fast, cpu, tol);
    rel3(fast, slow, cpu);
}

static void bin_ranges(int op, double *lo, double *hi, double *mb) {
    *lo = -2, *hi = 2, *mb = 0;
    if (op == PT_BIN_DIV) *mb = 0.25;
    if (op == PT_BIN_POW) *lo = 0.1;
}

PT_TEST(fast_binary_same_shape_sizes_and_misaligned) {
    for (int di = 0; di < NELEM(FLOATS); di++) {
        pt_dtype dt = FLOATS[di];
        for (int si = 0; si < NELEM(FAST_SIZES); si++) {
            for (int off = 0; off < 2; off++) {
                for (int op = 0; op < PT_NBINOPS; op++) {
                    double lo, hi, mb;
                    bin_ranges(op, &lo, &hi, &mb);
                    int cmp = op >= PT_BIN_EQ;
                    trio a = make_trio(dt, 1, &FAST_SIZES[si], off, lo, hi, 0);
                    trio b = make_trio(dt, 1, &FAST_SIZES[si], 0, lo, hi, mb);
                    pt_tensor *f = NULL, *s = NULL, *c = NULL, *fa = cpu_in(a.cpu), *fb = cpu_in(b.cpu);
                    PT_CHECK_OK(pt_binary(&f, (pt_binop)op, a.fast, b.fast));
                    PT_CHECK_OK(pt_binary(&s, (pt_binop)op, a.slow, b.slow));
                    PT_CHECK_OK(pt_binary(&c, (pt_binop)op, fa, fb));
                    c = cpu_out(c, cmp ? PT_BOOL : dt);
                    char what[128];
                    snprintf(what, sizeof what, "fast binary %s %s n=%lld offset %d", pt_binop_name((pt_binop)op),
                             pt_dtype_name(dt), (long long)FAST_SIZES[si], off);
                    check3(what, f, s, c, cmp ? 0 : tol_of(dt));
                    /* scalar on either side */
                    for (int sf = 0; sf < 2; sf++) {
                        f = s = c = NULL;
                        double sv = op == PT_BIN_POW && sf ? 1.5 : 0.75;
                        PT_CHECK_OK(pt_binary_scalar(&f, (pt_binop)op, b.fast, sv, sf));
                        PT_CHECK_OK(pt_binary_scalar(&s, (pt_binop)op, b.slow, sv, sf));
                        PT_CHECK_OK(pt_binary_scalar(&c, (pt_binop)op, fb, sv, sf));
                        c = cpu_out(c, cmp ? PT_BOOL : dt);
                        snprintf(what, sizeof what, "fast binary_s %s %s n=%lld scalar_first=%d",
                                 pt_binop_name((pt_binop)op), pt_dtype_name(dt), (long long)FAST_SIZES[si], sf);
                        check3(what, f, s, c, cmp ? 0 : tol_of(dt));
                    }
                    free_trio(&a);
                    free_trio(&b);
                    rel3(fa, fb, NULL);
                }
            }
        }
    }
}

PT_TEST(fast_binary_row_and_one_element_broadcast) {
    /* [N, C] op [C], [C] op [N, C], [N, C] op [1], [1] op [N, C]; C a multiple of every vector width
     * (8, 1024) or not (3, 7); the [C] / [1] operand at offset 0 or 1 */
    int64_t rows[][2] = {{5, 8}, {3, 7}, {4, 1024}, {2, 3}, {9, 1}};
    const int ops[] = {PT_BIN_ADD, PT_BIN_SUB, PT_BIN_MUL, PT_BIN_DIV, PT_BIN_POW, PT_BIN_MAX, PT_BIN_LT};
    for (int di = 0; di < NELEM(FLOATS); di++) {
        pt_dtype dt = FLOATS[di];
        for (int ri = 0; ri < NELEM(rows); ri++) {
            for (int off = 0; off < 2; off++) {
                for (int oi = 0; oi < NELEM(ops); oi++) {
                    int op = ops[oi], cmp = op >= PT_BIN_EQ;
                    double lo, hi, mb;
                    bin_ranges(op, &lo, &hi, &mb);
                    for (int form = 0; form < 4; form++) {
                        int64_t one[1] = {1};
                        const int64_t *vs = form < 2 ? &rows[ri][1] : one;
                        trio m = make_trio(dt, 2, rows[ri], 0, lo, hi, mb);
                        trio v = make_trio(dt, 1, vs, off, lo, hi, mb);
                        int vfirst = form == 1 || form == 3;
                        pt_tensor *f = NULL, *s = NULL, *c = NULL, *fm = cpu_in(m.cpu), *fv = cpu_in(v.cpu);
                        PT_CHECK_OK(pt_binary(&f, (pt_binop)op, vfirst ? v.fast : m.fast, vfirst ? m.fast : v.fast));
                        PT_CHECK_OK(pt_binary(&s, (pt_binop)op, vfirst ? v.slow : m.slow, vfirst ? m.slow : v.slow));
                        PT_CHECK_OK(pt_binary(&c, (pt_binop)op, vfirst ? fv : fm, vfirst ? fm : fv));
                        c = cpu_out(c, cmp ? PT_BOOL : dt);
                        char what[128];
                        snprintf(what, sizeof what, "fast binary %s %s [%lld,%lld] form %d offset %d",
                                 pt_binop_name((pt_binop)op), pt_dtype_name(dt), (long long)rows[ri][0],
                                 (long long)rows[ri][1], form, off);
                        check3(what, f, s, c, cmp ? 0 : tol_of(dt));
                        free_trio(&m);
                        free_trio(&v);
                        rel3(fm, fv, NULL);
                    }
                }
            }
        }
    }
}

PT_TEST(fast_unary_leaky_clamp_sizes_and_misaligned) {
    for (int di = 0; di < NELEM(FLOATS); di++) {
        pt_dtype dt = FLOATS[di];
        for (int si = 0; si < NELEM(FAST_SIZES); si++) {
            for (int off = 0; off < 2; off++) {
                for (int op = 0; op < PT_NUNOPS + 2; op++) {
                    double lo = op < PT_NUNOPS && needs_positive((pt_unop)op) ? 0.1 : -3;
                    trio a = make_trio(dt, 1, &FAST_SIZES[si], off, lo, 3, 0);
                    pt_tensor *f = NULL, *s = NULL, *c = NULL, *fa = cpu_in(a.cpu);
                    if (op < PT_NUNOPS) {
                        PT_CHECK_OK(pt_unary(&f, (pt_unop)op, a.fast));
                        PT_CHECK_OK(pt_unary(&s, (pt_unop)op, a.slow));
                        PT_CHECK_OK(pt_unary(&c, (pt_unop)op, fa));
                    } else if (op == PT_NUNOPS) {
                        PT_CHECK_OK(pt_leaky_relu(&f, a.fast, 0.1));
                        PT_CHECK_OK(pt_leaky_relu(&s, a.slow, 0.1));
                        PT_CHECK_OK(pt_leaky_relu(&c, fa, 0.1));
                    } else {
                        PT_CHECK_OK(pt_clamp(&f, a.fast, -0.5, 0.7));
                        PT_CHECK_OK(pt_clamp(&s, a.slow, -0.5, 0.7));
                        PT_CHECK_OK(pt_clamp(&c, fa, -0.5, 0.7));
                    }
                    c = cpu_out(c, dt);
                    char what[128];
                    snprintf(what, sizeof what, "fast %s %s n=%lld offset %d",
                             op < PT_NUNOPS ? pt_unop_name((pt_unop)op) : (op == PT_NUNOPS ? "leaky_relu" : "clamp"),
                             pt_dtype_name(dt), (long long)FAST_SIZES[si], off);
                    check3(what, f, s, c, tol_of(dt));
                    free_trio(&a);
                    pt_tensor_release(fa);
                }
            }
        }
    }
}

/* the *_bwd kernels are contiguous by contract (always the fast kernel below 2^31 elements): against
 * the CPU, with misaligned inputs and sizes around the vector width */
PT_TEST(fast_backward_kernels_sizes_and_misaligned) {
    for (int di = 0; di < NELEM(FLOATS); di++) {
        pt_dtype dt = FLOATS[di];
        for (int si = 0; si < NELEM(FAST_SIZES); si++) {
            for (int off = 0; off < 2; off++) {
                for (int op = 0; op < PT_NUNOPS + 2; op++) {
                    const char *kname = op < PT_NUNOPS ? "ew_unary_bwd" : (op == PT_NUNOPS ? "ew_leaky_bwd" : "ew_clamp_bwd");
                    double lo = op < PT_NUNOPS && needs_positive((pt_unop)op) ? 0.1 : -3;
                    trio x = make_trio(dt, 1, &FAST_SIZES[si], off, lo, 3, 0);
                    trio g = make_trio(dt, 1, &FAST_SIZES[si], 1 - off, -1, 1, 0);
                    pt_tensor *fx = cpu_in(x.cpu), *fg = cpu_in(g.cpu), *y = NULL, *gy = NULL, *fy = NULL;
                    if (op < PT_NUNOPS) {
                        PT_CHECK_OK(pt_unary(&y, (pt_unop)op, fx));
                        y = cpu_out(y, dt);
                        gy = up(y);
                        fy = cpu_in(y);
                    }
                    int kop = op < PT_NUNOPS ? op : 0;
                    pt_tensor *go = run_bwd(kname, kop, x.fast, gy, g.fast, op == PT_NUNOPS ? 0.1 : -0.5, 0.7);
                    pt_tensor *co = cpu_out(run_bwd(kname, kop, fx, fy, fg, op == PT_NUNOPS ? 0.1 : -0.5, 0.7), dt);
                    char what[128];
                    snprintf(what, sizeof what, "fast %s %s %s n=%lld offset %d", kname,
                             op < PT_NUNOPS ? pt_unop_name((pt_unop)op) : "", pt_dtype_name(dt),
                             (long long)FAST_SIZES[si], off);
                    compare(what, go, co, tol_of(dt));
                    free_trio(&x);
                    free_trio(&g);
                    rel3(fx, fg, y);
                    rel3(gy, fy, go);
                    pt_tensor_release(co);
                }
            }
        }
    }
}

PT_TEST(fast_axpy_where_sizes_and_misaligned) {
    for (int di = 0; di < NELEM(ALL); di++) {
        pt_dtype dt = ALL[di];
        for (int si = 0; si < NELEM(FAST_SIZES); si++) {
            for (int off = 0; off < 2; off++) {
                int64_t n = FAST_SIZES[si];
                char what[128];
                /* where(cond, a, b), all contiguous (cond at the other offset) */
                trio cd = make_trio(PT_BOOL, 1, &n, 1 - off, 0, 1, 0);
                trio a = make_trio(dt, 1, &n, off, -3, 3, 0), b = make_trio(dt, 1, &n, 0, -3, 3, 0);
                pt_tensor *f = NULL, *s = NULL, *c = NULL, *fa = cpu_in(a.cpu), *fb = cpu_in(b.cpu);
                PT_CHECK_OK(pt_where(&f, cd.fast, a.fast, b.fast));
                PT_CHECK_OK(pt_where(&s, cd.slow, a.slow, b.slow));
                PT_CHECK_OK(pt_where(&c, cd.cpu, fa, fb));
                c = cpu_out(c, dt);
                snprintf(what, sizeof what, "fast where %s n=%lld offset %d", pt_dtype_name(dt), (long long)n, off);
                check3(what, f, s, c, 0);
                rel3(fa, fb, NULL);
                if (!pt_dtype_is_int(dt)) {
                    /* out (contiguous, at offset off) += 0.3 * y with y [n] over [n], [n] over the rows of
                     * [3, n], or [1] over [n] */
                    for (int form = 0; form < 3; form++) {
                        int64_t shp[2] = {3, n}, one[1] = {1};
                        trio o = form == 1 ? make_trio(dt, 2, shp, off, -1, 1, 0) : make_trio(dt, 1, &n, off, -1, 1, 0);
                        trio y = make_trio(dt, 1, form == 2 ? one : &n, form == 0 ? 0 : off, -1, 1, 0);
                        pt_tensor *os = NULL, *co = NULL, *fy = cpu_in(y.cpu);
                        PT_CHECK_OK(pt_tensor_to(&os, o.fast, dt, CUDA0, 1)); /* an aligned copy for the general kernel */
                        PT_CHECK_OK(pt_tensor_to(&co, o.cpu, dt == PT_BF16 ? PT_F32 : dt, PT_CPU, 1));
                        PT_CHECK_OK(pt_add_(o.fast, y.fast, 0.3));
                        PT_CHECK_OK(pt_add_(os, y.slow, 0.3));
                        PT_CHECK_OK(pt_add_(co, fy, 0.3));
                        co = cpu_out(co, dt);
                        snprintf(what, sizeof what, "fast axpy %s n=%lld form %d offset %d", pt_dtype_name(dt),
                                 (long long)n, form, off);
                        pt_tensor_retain(o.fast);
                        check3(what, o.fast, os, co, tol_of(dt));
                        free_trio(&o);
                        free_trio(&y);
                        pt_tensor_release(fy);
                    }
                }
                free_trio(&cd);
                free_trio(&a);
                free_trio(&b);
            }
        }
    }
}

PT_TEST(fast_contiguous_casts_and_copies) {
    const pt_dtype FL[] = {PT_F32, PT_F64, PT_BF16, PT_F16};
    for (int si = 0; si < NELEM(FAST_SIZES); si++) {
        for (int off = 0; off < 2; off++) {
            for (int sd = 0; sd < NELEM(FL); sd++) {
                trio a = make_trio(FL[sd], 1, &FAST_SIZES[si], off, -300, 300, 0);
                if (FAST_SIZES[si] > 4) { /* NaN, overflow to inf in the narrow types, a tie */
                    PT_CHECK_OK(pt_tensor_set_flat(a.cpu, 1, NAN));
                    PT_CHECK_OK(pt_tensor_set_flat(a.cpu, 2, 1e30));
                    PT_CHECK_OK(pt_tensor_set_flat(a.cpu, 3, 2.5));
                    pt_tensor *g = NULL;
                    PT_CHECK_OK(pt_tensor_to(&g, a.cpu, FL[sd], CUDA0, 1));
                    PT_CHECK_OK(pt_tensor_copy_(a.fast, g));
                    PT_CHECK_OK(pt_tensor_copy_(a.slow, g));
                    pt_tensor_release(g);
                }
                for (int dd = 0; dd < NELEM(FL); dd++) {
                    pt_tensor *f = NULL, *s = NULL, *c = NULL;
                    PT_CHECK_OK(pt_tensor_to(&f, a.fast, FL[dd], CUDA0, 1));
                    PT_CHECK_OK(pt_tensor_to(&s, a.slow, FL[dd], CUDA0, 1));
                    PT_CHECK_OK(pt_tensor_to(&c, a.cpu, FL[dd], PT_CPU, 1));
                    char what[128];
                    snprintf(what, sizeof what, "fast copy %s -> %s n=%lld offset %d", pt_dtype_name(FL[sd]),
                             pt_dtype_name(FL[dd]), (long long)FAST_SIZES[si], off);
                    same_bits(what, f, s);
                    compare(what, f, c, 0);
                    rel3(f, s, c);
                }
                free_trio(&a);
            }
        }
    }
}

PT_TEST(no_pending_error_and_no_leak) {
    PT_CHECK_OK(pt_cuda_synchronize(0));
    pt_tensor_stats s = pt_tensor_get_stats();
    PT_CHECK(s.device_bytes == 0);
    pt_cuda_mem_stats m;
    PT_CHECK_OK(pt_cuda_memory_stats(0, &m));
    PT_CHECK(m.allocated_bytes == 0);
}

int main(void) {
    if (pt_cuda_device_count() == 0) {
        printf("skip: no CUDA device (%s)\n", pt_cuda_unavailable_reason());
        return 77;
    }
    const char *seed = getenv("PT_TEST_SEED");
    rng_s = seed ? strtoull(seed, NULL, 10) : (uint64_t)time(NULL);
    printf("seed %llu (rerun with PT_TEST_SEED=%llu)\n", (unsigned long long)rng_s, (unsigned long long)rng_s);
    return pt_test_main();
}

#else

int main(void) {
    printf("skip: CUDA not built into this proteus (nvcc was not found at build time)\n");
    return 77;
}

#endif
