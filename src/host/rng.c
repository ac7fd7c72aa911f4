/* rng.c — generator state and the fill fronts of the counter-based RNG (the stream is specified in
 * pt_rng.h; the per-element kernels are in src/kernels/cpu/rng.c and, for CUDA, a .cu registering
 * the same kernel names). A front checks the dtype and range, picks a contiguous target (bf16/f16
 * and non-contiguous views are filled through a contiguous f32/own-dtype temporary in view order,
 * then copied), runs the kernel at the generator's offset and advances the offset by the blocks
 * used.
 * Tests: tests/c/test_rng.c.
 */
#include "pt_rng.h"

#include <math.h> /* isfinite */

#include "../kernels/pt_dispatch.h" /* pt_kernel_find */

static pt_generator pt_default_gen = {PT_RNG_DEFAULT_SEED, 0};

pt_generator *pt_rng_default(void) { return &pt_default_gen; }

void pt_generator_seed(pt_generator *g, uint64_t seed) {
    g->seed = seed;
    g->offset = 0;
}

pt_rng_state pt_generator_get_state(const pt_generator *g) {
    pt_rng_state s = {g->seed, g->offset};
    return s;
}

void pt_generator_set_state(pt_generator *g, pt_rng_state s) {
    g->seed = s.seed;
    g->offset = s.offset;
}

enum { PT_RNG_UNIFORM, PT_RNG_NORMAL, PT_RNG_RANDINT };
static const char *pt_rng_knames[] = {"rng_uniform", "rng_normal", "rng_randint"};
static const char *pt_rng_opnames[] = {"uniform_", "normal_", "randint_"};

/* blocks consumed by a fill of n elements of kernel dtype kdt */
static uint64_t pt_rng_blocks(int kind, pt_dtype kdt, int64_t n) {
    if (kind != PT_RNG_RANDINT && kdt == PT_F32) return (uint64_t)(n + 3) / 4;
    return (uint64_t)(n + 1) / 2;
}

static pt_status pt_rng_fill(pt_generator *g, int kind, pt_tensor *t, pt_rng_args args) {
    const char *op = pt_rng_opnames[kind], *kname = pt_rng_knames[kind];
    int64_t n = pt_tensor_numel(t);
    /* the kernel dtype: t's own if a kernel exists, else f32 for bf16/f16 */
    pt_dtype kdt = t->dtype;
    pt_rng_kernel k = (pt_rng_kernel)pt_kernel_find(kname, t->device.type, kdt);
    if (!k && (kdt == PT_BF16 || kdt == PT_F16)) {
        kdt = PT_F32;
        k = (pt_rng_kernel)pt_kernel_find(kname, t->device.type, kdt);
    }
    if (!k) {
        if (kind != PT_RNG_RANDINT && !pt_dtype_is_float(t->dtype))
            return PT_FAIL(PT_ERR_DTYPE, "%s: needs a floating point tensor, got %s", op, pt_dtype_name(t->dtype));
        return pt_kernel_missing(kname, t->device.type, t->dtype);
    }
    if (n == 0) return PT_OK;
    pt_tensor *dst = t;
    pt_status st = PT_OK;
    if (kdt != t->dtype || !pt_tensor_is_contiguous(t))
        st = pt_tensor_empty(&dst, kdt, t->device, t->ndim, t->shape);
    if (!st) {
        args.seed = g->seed;
        args.offset = g->offset;
        args.n = n;
        args.out = pt_tensor_data(dst);
        st = k(&args);
    }
    if (!st && dst != t) st = pt_tensor_copy_(t, dst);
    if (dst != t) pt_tensor_release(dst);
    if (!st) g->offset += pt_rng_blocks(kind, kdt, n);
    return st;
}

pt_status pt_generator_uniform_(pt_generator *g, pt_tensor *t, double lo, double hi) {
    if (!(lo <= hi) || !isfinite(hi - lo))
        return PT_FAIL(PT_ERR_VALUE, "uniform_: needs finite lo <= hi, got lo = %g, hi = %g", lo, hi);
    pt_rng_args a = {0};
    a.a = lo;
    a.b = hi;
    return pt_rng_fill(g, PT_RNG_UNIFORM, t, a);
}

pt_status pt_generator_normal_(pt_generator *g, pt_tensor *t, double mean, double std) {
    if (!(std >= 0) || !isfinite(std) || !isfinite(mean))
        return PT_FAIL(PT_ERR_VALUE, "normal_: needs a finite mean and std >= 0, got mean = %g, std = %g", mean, std);
    pt_rng_args a = {0};
    a.a = mean;
    a.b = std;
    return pt_rng_fill(g, PT_RNG_NORMAL, t, a);
}

/* the closed range of values a dtype holds exactly (floats: integers up to 2^mantissa) */
static void pt_int_range(pt_dtype dt, double *lo, double *hi) {
    switch (dt) {
    case PT_I64: *lo = -9223372036854775808.0; *hi = 9223372036854775807.0; break;
    case PT_I32: *lo = -2147483648.0; *hi = 2147483647.0; break;
    case PT_U16: *lo = 0; *hi = 65535; break;
    case PT_I8: *lo = -128; *hi = 127; break;
    case PT_U8: *lo = 0; *hi = 255; break;
    case PT_BOOL: *lo = 0; *hi = 1; break;
    case PT_F64: *lo = -9007199254740992.0; *hi = 9007199254740992.0; break;
    case PT_F32: *lo = -16777216.0; *hi = 16777216.0; break;
    default: *lo = -256; *hi = 256; break; /* bf16, f16: exact small integers */
    }
}

pt_status pt_generator_randint_(pt_generator *g, pt_tensor *t, int64_t lo, int64_t hi) {
    if (hi <= lo) return PT_FAIL(PT_ERR_VALUE, "randint_: needs lo < hi, got lo = %lld, hi = %lld", (long long)lo,
                                 (long long)hi);
    double dlo, dhi;
    pt_int_range(t->dtype, &dlo, &dhi);
    if ((double)lo < dlo || (double)(hi - 1) > dhi)
        return PT_FAIL(PT_ERR_VALUE, "randint_: range [%lld, %lld) does not fit dtype %s", (long long)lo,
                       (long long)hi, pt_dtype_name(t->dtype));
    pt_rng_args a = {0};
    a.lo = lo;
    a.range = (uint64_t)hi - (uint64_t)lo;
    return pt_rng_fill(g, PT_RNG_RANDINT, t, a);
}

pt_status pt_generator_randperm_on(pt_generator *g, pt_tensor **out, int64_t n, pt_device dev) {
    *out = NULL;
    if (n < 0) return PT_FAIL(PT_ERR_VALUE, "randperm: n = %lld must be >= 0", (long long)n);
    pt_rng_kernel k = (pt_rng_kernel)pt_kernel_find("rng_randperm", dev.type, PT_I64);
    if (!k) return pt_kernel_missing("rng_randperm", dev.type, PT_I64);
    PT_TRY(pt_tensor_empty(out, PT_I64, dev, 1, &n));
    pt_rng_args a = {0};
    a.seed = g->seed;
    a.offset = g->offset;
    a.n = n;
    a.out = pt_tensor_data(*out);
    pt_status st = n ? k(&a) : PT_OK;
    if (st) {
        pt_tensor_release(*out);
        *out = NULL;
        return st;
    }
    g->offset += (uint64_t)(n + 1) / 2;
    return PT_OK;
}

pt_status pt_generator_randperm(pt_generator *g, pt_tensor **out, int64_t n) {
    return pt_generator_randperm_on(g, out, n, PT_CPU);
}

void pt_rng_manual_seed(uint64_t seed) { pt_generator_seed(&pt_default_gen, seed); }
pt_rng_state pt_rng_get_state(void) { return pt_generator_get_state(&pt_default_gen); }
void pt_rng_set_state(pt_rng_state s) { pt_generator_set_state(&pt_default_gen, s); }
pt_status pt_rng_uniform_(pt_tensor *t, double lo, double hi) { return pt_generator_uniform_(&pt_default_gen, t, lo, hi); }
pt_status pt_rng_normal_(pt_tensor *t, double mean, double std) {
    return pt_generator_normal_(&pt_default_gen, t, mean, std);
}
pt_status pt_rng_randint_(pt_tensor *t, int64_t lo, int64_t hi) {
    return pt_generator_randint_(&pt_default_gen, t, lo, hi);
}
pt_status pt_rng_randperm(pt_tensor **out, int64_t n) { return pt_generator_randperm(&pt_default_gen, out, n); }
pt_status pt_rng_randperm_on(pt_tensor **out, int64_t n, pt_device dev) {
    return pt_generator_randperm_on(&pt_default_gen, out, n, dev);
}
