/* optim.c — op fronts of the optimizer family (formulas, flags and kernel names in pt_optim.h):
 * argument checks with messages that name the op and the offending shape/dtype/value, scratch
 * allocation, and dispatch to the (op, device, dtype) kernels of src/kernels/cpu/optim.c.
 *
 * Everything here updates tensors in place and records no autograd node. Parameters and optimizer
 * state must be contiguous f32 tensors on one device; gradients may be any layout (a contiguous copy
 * is made when needed).
 * The multi-tensor fronts (pt_*_multi, pt_clip_grad_norm_dev) check every list entry (messages name
 * the position, #1 first), convert grads as the single fronts do, and launch the "_multi" kernels
 * over parts of at most PT_MT_MAX tensors; their step scalars stay in a device tensor (never read
 * here), so the launches can be captured in a CUDA graph.
 * Tests: tests/c/test_optim.c, tests/lua/test_optim.lua, tests/lua/test_optim_multi.lua.
 */
#include <math.h>
#include <stdio.h>  /* snprintf */
#include <stdlib.h> /* calloc, free */
#include <string.h>

#include "pt_dispatch.h"
#include "pt_optim.h"

const double pt_ns5_coeffs[1][3] = {{3.4445, -4.7750, 2.0315}};
const double pt_polar_express_coeffs[5][3] = {
    {8.156554524902461, -22.48329292557795, 15.878769915207462},
    {4.042929935166739, -2.808917465908714, 0.5000178451051316},
    {3.8916678022926607, -2.772484153217685, 0.5060648178503393},
    {3.285753657755655, -2.3681294933425376, 0.46449024233003106},
    {2.3465413258596377, -1.7097828382687081, 0.42323551169305323},
};

static int pt_same_shape(const pt_tensor *a, const pt_tensor *b) {
    return a->ndim == b->ndim && memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim) == 0;
}

/* t must be a contiguous f32 tensor with p's shape and device (what = "param", "exp_avg", ...) */
static pt_status pt_check_state(const char *op, const char *what, const pt_tensor *p, const pt_tensor *t) {
    char s1[128], s2[128];
    if (!t) return PT_FAIL(PT_ERR_VALUE, "%s: %s is missing (NULL)", op, what);
    if (t->dtype != PT_F32)
        return PT_FAIL(PT_ERR_DTYPE, "%s: %s has dtype %s; optimizer params and state must be f32", op, what,
                       pt_dtype_name(t->dtype));
    if (!pt_tensor_is_contiguous(t))
        return PT_FAIL(PT_ERR_VALUE, "%s: %s %s is not contiguous; updates are in place on contiguous tensors", op,
                       what, pt_shape_str(t->ndim, t->shape, s1, sizeof s1));
    if (p && p != t) {
        if (!pt_same_shape(p, t))
            return PT_FAIL(PT_ERR_SHAPE, "%s: %s has shape %s but the param has shape %s", op, what,
                           pt_shape_str(t->ndim, t->shape, s1, sizeof s1),
                           pt_shape_str(p->ndim, p->shape, s2, sizeof s2));
        PT_TRY(pt_check_same_device(op, p, t));
    }
    return PT_OK;
}

/* A contiguous f32 version of grad g (new reference: g itself retained when already fine). */
static pt_status pt_grad_f32(const char *op, pt_tensor *p, pt_tensor *g, pt_tensor **out) {
    char s1[128], s2[128];
    if (!g) return PT_FAIL(PT_ERR_VALUE, "%s: grad is missing (NULL)", op);
    if (!pt_same_shape(p, g))
        return PT_FAIL(PT_ERR_SHAPE, "%s: grad has shape %s but the param has shape %s", op,
                       pt_shape_str(g->ndim, g->shape, s1, sizeof s1), pt_shape_str(p->ndim, p->shape, s2, sizeof s2));
    PT_TRY(pt_check_same_device(op, p, g));
    if (!pt_dtype_is_float(g->dtype))
        return PT_FAIL(PT_ERR_DTYPE, "%s: grad has dtype %s; expected a float dtype", op, pt_dtype_name(g->dtype));
    if (g->dtype == PT_F32 && pt_tensor_is_contiguous(g)) {
        pt_tensor_retain(g);
        *out = g;
        return PT_OK;
    }
    return pt_tensor_to(out, g, PT_F32, g->device, 1);
}

static pt_status pt_check_finite(const char *op, const char *what, double x) {
    if (!isfinite(x)) return PT_FAIL(PT_ERR_VALUE, "%s: %s = %g is not finite", op, what, x);
    return PT_OK;
}

/* the AdamW step scalars, checked (shared by the per-tensor front and the multi-tensor rows) */
static pt_status pt_adamw_row(const char *op, double r[PT_ADAMW_NSCAL], int64_t step, double lr, double beta1,
                              double beta2, double eps, double wd, int maximize) {
    if (step < 1) return PT_FAIL(PT_ERR_VALUE, "%s: step = %lld; steps count from 1", op, (long long)step);
    if (!(beta1 >= 0 && beta1 < 1)) return PT_FAIL(PT_ERR_VALUE, "%s: beta1 = %g is not in [0, 1)", op, beta1);
    if (!(beta2 >= 0 && beta2 < 1)) return PT_FAIL(PT_ERR_VALUE, "%s: beta2 = %g is not in [0, 1)", op, beta2);
    if (!(eps >= 0)) return PT_FAIL(PT_ERR_VALUE, "%s: eps = %g must be >= 0", op, eps);
    PT_TRY(pt_check_finite(op, "lr", lr));
    PT_TRY(pt_check_finite(op, "weight_decay", wd));
    r[PT_ADAMW_DECAY] = 1.0 - lr * wd;
    r[PT_ADAMW_BETA1] = beta1;
    r[PT_ADAMW_BETA2] = beta2;
    r[PT_ADAMW_STEP_SIZE] = lr / (1.0 - pow(beta1, (double)step));
    r[PT_ADAMW_BC2_SQRT] = sqrt(1.0 - pow(beta2, (double)step));
    r[PT_ADAMW_EPS] = eps;
    r[PT_ADAMW_MAXIMIZE] = maximize != 0;
    return PT_OK;
}

pt_status pt_adamw_scalars(double row[PT_ADAMW_NSCAL], int64_t step, double lr, double beta1, double beta2,
                           double eps, double wd, int maximize) {
    return pt_adamw_row("adamw_scalars", row, step, lr, beta1, beta2, eps, wd, maximize);
}

pt_status pt_adamw_step(pt_tensor *p, pt_tensor *g, pt_tensor *m, pt_tensor *v, int64_t step, double lr,
                        double beta1, double beta2, double eps, double wd, int maximize) {
    const char *op = "adamw_step";
    PT_TRY(pt_check_state(op, "param", NULL, p));
    PT_TRY(pt_check_state(op, "exp_avg", p, m));
    PT_TRY(pt_check_state(op, "exp_avg_sq", p, v));
    double r[PT_ADAMW_NSCAL];
    PT_TRY(pt_adamw_row(op, r, step, lr, beta1, beta2, eps, wd, maximize));
    pt_adamw_kernel k = (pt_adamw_kernel)pt_kernel_find("optim_adamw", p->device.type, p->dtype);
    if (!k) return pt_kernel_missing("optim_adamw", p->device.type, p->dtype);
    pt_tensor *gc = NULL;
    PT_TRY(pt_grad_f32(op, p, g, &gc));
    pt_adamw_args a = {.n = pt_tensor_numel(p), .p = pt_tensor_data(p), .g = pt_tensor_data(gc),
                       .m = pt_tensor_data(m), .v = pt_tensor_data(v), .decay = r[PT_ADAMW_DECAY],
                       .beta1 = beta1, .beta2 = beta2, .step_size = r[PT_ADAMW_STEP_SIZE],
                       .bc2_sqrt = r[PT_ADAMW_BC2_SQRT], .eps = eps, .maximize = maximize != 0};
    if (a.n > 0) k(&a);
    pt_tensor_release(gc);
    return PT_OK;
}

pt_status pt_sgd_step(pt_tensor *p, pt_tensor *g, pt_tensor *buf, int first, double lr, double momentum,
                      double dampening, double wd, int nesterov, int maximize) {
    const char *op = "sgd_step";
    PT_TRY(pt_check_state(op, "param", NULL, p));
    PT_TRY(pt_check_finite(op, "lr", lr));
    PT_TRY(pt_check_finite(op, "weight_decay", wd));
    if (!(momentum >= 0)) return PT_FAIL(PT_ERR_VALUE, "%s: momentum = %g must be >= 0", op, momentum);
    if (nesterov && (momentum <= 0 || dampening != 0))
        return PT_FAIL(PT_ERR_VALUE, "%s: nesterov needs momentum > 0 and dampening 0 (got momentum %g, dampening %g)",
                       op, momentum, dampening);
    if (momentum != 0) PT_TRY(pt_check_state(op, "momentum_buffer", p, buf));
    pt_sgd_kernel k = (pt_sgd_kernel)pt_kernel_find("optim_sgd", p->device.type, p->dtype);
    if (!k) return pt_kernel_missing("optim_sgd", p->device.type, p->dtype);
    pt_tensor *gc = NULL;
    PT_TRY(pt_grad_f32(op, p, g, &gc));
    pt_sgd_args a = {.n = pt_tensor_numel(p), .p = pt_tensor_data(p), .g = pt_tensor_data(gc),
                     .buf = momentum != 0 ? pt_tensor_data(buf) : NULL, .lr = lr, .momentum = momentum,
                     .dampening = dampening, .wd = wd, .nesterov = nesterov != 0, .first = first != 0,
                     .maximize = maximize != 0};
    if (a.n > 0) k(&a);
    pt_tensor_release(gc);
    return PT_OK;
}

static pt_status pt_ns_check(const char *op, const pt_tensor *G, int steps, const double (*coeffs)[3],
                             int ncoeffs) {
    char s1[128];
    if (G->ndim != 2 && G->ndim != 3)
        return PT_FAIL(PT_ERR_SHAPE, "%s: expected a matrix [rows, cols] or a bank [n, rows, cols], got %s", op,
                       pt_shape_str(G->ndim, G->shape, s1, sizeof s1));
    if (!pt_dtype_is_float(G->dtype))
        return PT_FAIL(PT_ERR_DTYPE, "%s: dtype %s is not a float dtype", op, pt_dtype_name(G->dtype));
    if (steps < 0 || steps > 100) return PT_FAIL(PT_ERR_VALUE, "%s: steps = %d is not in [0, 100]", op, steps);
    if (steps > 0 && (!coeffs || ncoeffs < 1))
        return PT_FAIL(PT_ERR_VALUE, "%s: no coefficients given for %d steps", op, steps);
    if (ncoeffs > 1 && ncoeffs < steps)
        return PT_FAIL(PT_ERR_VALUE,
                       "%s: %d coefficient tuples for %d steps; give one tuple (used every step) or one per step", op,
                       ncoeffs, steps);
    for (int i = 0; i < ncoeffs; i++)
        for (int j = 0; j < 3; j++)
            if (!isfinite(coeffs[i][j]))
                return PT_FAIL(PT_ERR_VALUE, "%s: coefficient %d of tuple %d is %g", op, j + 1, i + 1, coeffs[i][j]);
    return PT_OK;
}

/* runs the NS kernel in place on x (contiguous f32 with G's geometry); the CPU kernel loops over the
 * matrices with one slot of scratch, the CUDA kernel takes the whole bank at once (a slot each) */
static pt_status pt_ns_run(pt_tensor *x, int steps, const double (*coeffs)[3], int ncoeffs, int flags) {
    pt_ns_kernel k = (pt_ns_kernel)pt_kernel_find("optim_ns", x->device.type, PT_F32);
    if (!k) return pt_kernel_missing("optim_ns", x->device.type, PT_F32);
    int64_t R = x->shape[x->ndim - 2], C = x->shape[x->ndim - 1], B = x->ndim == 3 ? x->shape[0] : 1;
    if (R * C * B == 0) return PT_OK;
    pt_tensor *work = NULL;
    int64_t slots = x->device.type == PT_DEV_CPU ? 1 : B;
    int64_t wn = pt_ns_work_elems(slots, R, C);
    PT_TRY(pt_tensor_empty(&work, PT_F32, x->device, 1, &wn));
    pt_ns_args a = {.batch = B, .rows = R, .cols = C, .x = pt_tensor_data(x), .work = pt_tensor_data(work),
                    .slots = slots, .steps = steps, .coeffs = coeffs ? &coeffs[0][0] : NULL, .ncoeffs = ncoeffs,
                    .flags = flags};
    k(&a);
    pt_tensor_release(work);
    return PT_OK;
}

pt_status pt_newton_schulz(pt_tensor **out, pt_tensor *G, int steps, const double (*coeffs)[3], int ncoeffs,
                           int flags) {
    PT_TRY(pt_ns_check("newton_schulz", G, steps, coeffs, ncoeffs));
    pt_tensor *x = NULL;
    PT_TRY(pt_tensor_to(&x, G, PT_F32, G->device, 1));
    pt_status s = pt_ns_run(x, steps, coeffs, ncoeffs, flags);
    if (s != PT_OK) {
        pt_tensor_release(x);
        return s;
    }
    *out = x;
    return PT_OK;
}

/* the shape factor: the given one, or √max(1, rows/cols) */
static double pt_muon_factor(double factor, int64_t R, int64_t C) {
    return factor > 0 ? factor : sqrt(fmax(1.0, (double)R / (double)(C ? C : 1)));
}

pt_status pt_muon_step(pt_tensor *p, pt_tensor *g, pt_tensor *buf, const pt_muon_opts *o) {
    const char *op = "muon_step";
    PT_TRY(pt_check_state(op, "param", NULL, p));
    PT_TRY(pt_check_state(op, "momentum_buffer", p, buf));
    PT_TRY(pt_ns_check(op, p, o->ns_steps, o->coeffs, o->ncoeffs));
    PT_TRY(pt_check_finite(op, "lr", o->lr));
    PT_TRY(pt_check_finite(op, "weight_decay", o->wd));
    if (!(o->momentum >= 0 && o->momentum < 1))
        return PT_FAIL(PT_ERR_VALUE, "%s: momentum = %g is not in [0, 1)", op, o->momentum);
    if (o->round < PT_MUON_ROUND_NONE || o->round > PT_MUON_ROUND_UNIT)
        return PT_FAIL(PT_ERR_VALUE, "%s: round mode %d is not 0 (none), 1 (scaled) or 2 (unit)", op, o->round);
    if (!(o->factor <= 0 || isfinite(o->factor)))
        return PT_FAIL(PT_ERR_VALUE, "%s: shape factor %g is not finite", op, o->factor);
    pt_momentum_kernel km = (pt_momentum_kernel)pt_kernel_find("optim_momentum", p->device.type, p->dtype);
    if (!km) return pt_kernel_missing("optim_momentum", p->device.type, p->dtype);
    pt_apply_kernel ka = (pt_apply_kernel)pt_kernel_find("optim_apply", p->device.type, p->dtype);
    if (!ka) return pt_kernel_missing("optim_apply", p->device.type, p->dtype);

    double factor = pt_muon_factor(o->factor, p->shape[p->ndim - 2], p->shape[p->ndim - 1]);
    pt_tensor *gc = NULL, *u = NULL;
    PT_TRY(pt_grad_f32(op, p, g, &gc));
    pt_status s = pt_tensor_empty_like(&u, p);
    if (s == PT_OK) {
        pt_momentum_args ma = {.n = pt_tensor_numel(p), .g = pt_tensor_data(gc), .buf = pt_tensor_data(buf),
                               .u = pt_tensor_data(u), .momentum = o->momentum, .nesterov = o->nesterov != 0};
        if (ma.n > 0) km(&ma);
        s = pt_ns_run(u, o->ns_steps, o->coeffs, o->ncoeffs, o->ns_flags);
    }
    if (s == PT_OK) {
        pt_apply_args aa = {.n = pt_tensor_numel(p), .p = pt_tensor_data(p), .u = pt_tensor_data(u), .lr = o->lr,
                            .wd = o->wd, .factor = factor, .round = o->round};
        if (aa.n > 0) ka(&aa);
    }
    pt_tensor_release(u);
    pt_tensor_release(gc);
    return s;
}

pt_status pt_clip_grad_norm(int n, pt_tensor *const *grads, double max_norm, double *total_norm) {
    const char *op = "clip_grad_norm";
    char s1[128];
    if (n < 0) return PT_FAIL(PT_ERR_VALUE, "%s: n = %d tensors", op, n);
    if (isnan(max_norm)) return PT_FAIL(PT_ERR_VALUE, "%s: max_norm is NaN", op);
    double total = 0;
    for (int i = 0; i < n; i++) {
        pt_tensor *g = grads[i];
        if (!g) continue;
        if (g->dtype != PT_F32 && g->dtype != PT_F64)
            return PT_FAIL(PT_ERR_DTYPE, "%s: gradient %d has dtype %s; expected f32 or f64", op, i + 1,
                           pt_dtype_name(g->dtype));
        if (!pt_tensor_is_contiguous(g))
            return PT_FAIL(PT_ERR_VALUE, "%s: gradient %d %s is not contiguous", op, i + 1,
                           pt_shape_str(g->ndim, g->shape, s1, sizeof s1));
        pt_sumsq_kernel k = (pt_sumsq_kernel)pt_kernel_find("optim_sumsq", g->device.type, g->dtype);
        if (!k) return pt_kernel_missing("optim_sumsq", g->device.type, g->dtype);
        double s = 0;
        pt_sumsq_args a = {.n = pt_tensor_numel(g), .x = pt_tensor_data(g), .out = &s};
        if (a.n > 0) k(&a);
        total += s;
    }
    double norm = sqrt(total);
    *total_norm = norm;
    if (max_norm <= 0 || !isfinite(norm)) return PT_OK;
    double coef = max_norm / (norm + 1e-6);
    if (coef >= 1.0) return PT_OK;
    for (int i = 0; i < n; i++) {
        pt_tensor *g = grads[i];
        if (!g) continue;
        pt_scale_kernel k = (pt_scale_kernel)pt_kernel_find("optim_scale", g->device.type, g->dtype);
        if (!k) return pt_kernel_missing("optim_scale", g->device.type, g->dtype);
        pt_scale_args a = {.n = pt_tensor_numel(g), .x = pt_tensor_data(g), .s = coef};
        if (a.n > 0) k(&a);
    }
    return PT_OK;
}

/* w as a contiguous tensor of dtype dt with ref's shape (new reference) */
static pt_status pt_like(const char *op, const pt_tensor *ref, pt_tensor *w, pt_dtype dt, pt_tensor **out) {
    char s1[128], s2[128];
    if (!w) return PT_FAIL(PT_ERR_VALUE, "%s: weights tensor is missing (NULL)", op);
    if (!pt_same_shape(ref, w))
        return PT_FAIL(PT_ERR_SHAPE, "%s: weights have shape %s but the accumulator has shape %s", op,
                       pt_shape_str(w->ndim, w->shape, s1, sizeof s1), pt_shape_str(ref->ndim, ref->shape, s2, sizeof s2));
    PT_TRY(pt_check_same_device(op, ref, w));
    if (!pt_dtype_is_float(w->dtype))
        return PT_FAIL(PT_ERR_DTYPE, "%s: weights have dtype %s; expected a float dtype", op, pt_dtype_name(w->dtype));
    if (w->dtype == dt && pt_tensor_is_contiguous(w)) {
        pt_tensor_retain(w);
        *out = w;
        return PT_OK;
    }
    return pt_tensor_to(out, w, dt, w->device, 1);
}

pt_status pt_ema_update(pt_tensor *ema, pt_tensor *w, double decay) {
    const char *op = "ema_update";
    PT_TRY(pt_check_state(op, "ema", NULL, ema));
    if (!(decay >= 0 && decay <= 1)) return PT_FAIL(PT_ERR_VALUE, "%s: decay = %g is not in [0, 1]", op, decay);
    pt_ema_kernel k = (pt_ema_kernel)pt_kernel_find("optim_ema", ema->device.type, ema->dtype);
    if (!k) return pt_kernel_missing("optim_ema", ema->device.type, ema->dtype);
    pt_tensor *wc = NULL;
    PT_TRY(pt_like(op, ema, w, PT_F32, &wc));
    pt_ema_args a = {.n = pt_tensor_numel(ema), .ema = pt_tensor_data(ema), .w = pt_tensor_data(wc), .decay = decay};
    if (a.n > 0) k(&a);
    pt_tensor_release(wc);
    return PT_OK;
}

static pt_status pt_check_swa_sum(const char *op, const pt_tensor *sum) {
    char s1[128];
    if (!sum) return PT_FAIL(PT_ERR_VALUE, "%s: sum is missing (NULL)", op);
    if (sum->dtype != PT_F32 && sum->dtype != PT_BF16)
        return PT_FAIL(PT_ERR_DTYPE, "%s: sum has dtype %s; SWA sums are f32 or bf16", op, pt_dtype_name(sum->dtype));
    if (!pt_tensor_is_contiguous(sum))
        return PT_FAIL(PT_ERR_VALUE, "%s: sum %s is not contiguous", op, pt_shape_str(sum->ndim, sum->shape, s1, sizeof s1));
    return PT_OK;
}

pt_status pt_swa_add(pt_tensor *sum, pt_tensor *w) {
    const char *op = "swa_add";
    PT_TRY(pt_check_swa_sum(op, sum));
    pt_swa_kernel k = (pt_swa_kernel)pt_kernel_find("optim_swa_add", sum->device.type, sum->dtype);
    if (!k) return pt_kernel_missing("optim_swa_add", sum->device.type, sum->dtype);
    pt_tensor *wc = NULL;
    PT_TRY(pt_like(op, sum, w, sum->dtype, &wc));
    pt_swa_args a = {.n = pt_tensor_numel(sum), .sum = pt_tensor_data(sum), .w = pt_tensor_data(wc)};
    if (a.n > 0) k(&a);
    pt_tensor_release(wc);
    return PT_OK;
}

pt_status pt_swa_average(pt_tensor *dst, pt_tensor *sum, int64_t count) {
    const char *op = "swa_average";
    PT_TRY(pt_check_swa_sum(op, sum));
    if (count < 1) return PT_FAIL(PT_ERR_VALUE, "%s: count = %lld; need at least one snapshot", op, (long long)count);
    if (!dst) return PT_FAIL(PT_ERR_VALUE, "%s: destination is missing (NULL)", op);
    char s1[128], s2[128];
    if (!pt_same_shape(dst, sum))
        return PT_FAIL(PT_ERR_SHAPE, "%s: destination has shape %s but the sum has shape %s", op,
                       pt_shape_str(dst->ndim, dst->shape, s1, sizeof s1), pt_shape_str(sum->ndim, sum->shape, s2, sizeof s2));
    pt_swa_kernel k = (pt_swa_kernel)pt_kernel_find("optim_swa_avg", sum->device.type, sum->dtype);
    if (!k) return pt_kernel_missing("optim_swa_avg", sum->device.type, sum->dtype);
    pt_tensor *avg = NULL;
    PT_TRY(pt_tensor_empty_like(&avg, sum));
    pt_swa_args a = {.n = pt_tensor_numel(sum), .sum = pt_tensor_data(sum), .out = pt_tensor_data(avg),
                     .count = (double)count};
    if (a.n > 0) k(&a);
    pt_status s = pt_tensor_copy_(dst, avg);
    pt_tensor_release(avg);
    return s;
}

/* ---------------------------------------------------------------- multi-tensor fronts */

/* the operand lists of one multi call: data pointers per operand, element counts, and the tensors
 * this front made (f32 copies of grads/weights, banks) to release at the end */
typedef struct {
    int n;
    void **ptr[4];
    int64_t *numel;
    pt_tensor **tmp; /* up to 2n */
    int ntmp;
} pt_mt_lists;

static pt_status pt_mt_lists_init(const char *op, pt_mt_lists *L, int n) {
    memset(L, 0, sizeof *L);
    L->n = n;
    size_t nn = (size_t)(n > 0 ? n : 1);
    for (int o = 0; o < 4; o++) L->ptr[o] = calloc(nn, sizeof(void *));
    L->numel = calloc(nn, sizeof(int64_t));
    L->tmp = calloc(2 * nn, sizeof(pt_tensor *));
    if (!L->ptr[0] || !L->ptr[1] || !L->ptr[2] || !L->ptr[3] || !L->numel || !L->tmp) {
        for (int o = 0; o < 4; o++) free(L->ptr[o]);
        free(L->numel);
        free(L->tmp);
        memset(L, 0, sizeof *L);
        return PT_FAIL(PT_ERR_OOM, "%s: out of host memory for the lists of %d tensors", op, n);
    }
    return PT_OK;
}

static void pt_mt_lists_free(pt_mt_lists *L) {
    for (int i = 0; i < L->ntmp; i++) pt_tensor_release(L->tmp[i]);
    for (int o = 0; o < 4; o++) free(L->ptr[o]);
    free(L->numel);
    free(L->tmp);
    memset(L, 0, sizeof *L);
}

/* runs k over the lists in parts of PT_MT_MAX tensors; a carries the per-op fields */
static void pt_mt_run(pt_mt_kernel k, const pt_mt_lists *L, int nops, pt_mt_args *a, const double *scal,
                      int64_t stride, double *sums) {
    for (int off = 0; off < L->n; off += PT_MT_MAX) {
        int m = L->n - off < PT_MT_MAX ? L->n - off : PT_MT_MAX;
        a->n = m;
        for (int j = 0; j < m; j++) {
            a->numel[j] = L->numel[off + j];
            for (int o = 0; o < nops; o++) a->t[o][j] = L->ptr[o][off + j];
        }
        a->scal = scal ? scal + off * stride : NULL;
        a->scal_stride = stride;
        a->sums = sums ? sums + off : NULL;
        k(a);
    }
}


/* list entry t (position i) must be a contiguous f32 tensor; with ref (param #i) the same shape and
 * device, without ref (a param) on the device of first (param #1) */
static pt_status pt_check_entry(const char *op, const char *what, int i, const pt_tensor *ref, const pt_tensor *first,
                                const pt_tensor *t) {
    char s1[128], s2[128];
    if (!t) return PT_FAIL(PT_ERR_VALUE, "%s: %s #%d is missing (NULL)", op, what, i + 1);
    if (t->dtype != PT_F32)
        return PT_FAIL(PT_ERR_DTYPE, "%s: %s #%d has dtype %s; optimizer params and state must be f32", op, what, i + 1,
                       pt_dtype_name(t->dtype));
    if (!pt_tensor_is_contiguous(t))
        return PT_FAIL(PT_ERR_VALUE, "%s: %s #%d %s is not contiguous; updates are in place on contiguous tensors", op,
                       what, i + 1, pt_shape_str(t->ndim, t->shape, s1, sizeof s1));
    if (ref && ref != t) {
        if (!pt_same_shape(ref, t))
            return PT_FAIL(PT_ERR_SHAPE, "%s: %s #%d has shape %s but param #%d has shape %s", op, what, i + 1,
                           pt_shape_str(t->ndim, t->shape, s1, sizeof s1), i + 1,
                           pt_shape_str(ref->ndim, ref->shape, s2, sizeof s2));
        if (!pt_device_eq(ref->device, t->device))
            return PT_FAIL(PT_ERR_DEVICE, "%s: %s #%d is on %s but param #%d is on %s", op, what, i + 1,
                           pt_device_str(t->device, s1, sizeof s1), i + 1, pt_device_str(ref->device, s2, sizeof s2));
    }
    if (!ref && first && !pt_device_eq(first->device, t->device))
        return PT_FAIL(PT_ERR_DEVICE, "%s: %s #%d is on %s but %s #1 is on %s; a multi-tensor call takes one device",
                       op, what, i + 1, pt_device_str(t->device, s1, sizeof s1), what,
                       pt_device_str(first->device, s2, sizeof s2));
    return PT_OK;
}

/* x (position i, e.g. a grad) as a contiguous f32 tensor with ref's shape and device: its data pointer
 * goes to *data; a copy made here is kept in L->tmp */
static pt_status pt_entry_f32(const char *op, const char *what, int i, const pt_tensor *ref, pt_tensor *x,
                              pt_mt_lists *L, void **data) {
    char s1[128], s2[128];
    if (!x) return PT_FAIL(PT_ERR_VALUE, "%s: %s #%d is missing (NULL)", op, what, i + 1);
    if (!pt_same_shape(ref, x))
        return PT_FAIL(PT_ERR_SHAPE, "%s: %s #%d has shape %s but param #%d has shape %s", op, what, i + 1,
                       pt_shape_str(x->ndim, x->shape, s1, sizeof s1), i + 1,
                       pt_shape_str(ref->ndim, ref->shape, s2, sizeof s2));
    if (!pt_device_eq(ref->device, x->device))
        return PT_FAIL(PT_ERR_DEVICE, "%s: %s #%d is on %s but param #%d is on %s", op, what, i + 1,
                       pt_device_str(x->device, s1, sizeof s1), i + 1, pt_device_str(ref->device, s2, sizeof s2));
    if (!pt_dtype_is_float(x->dtype))
        return PT_FAIL(PT_ERR_DTYPE, "%s: %s #%d has dtype %s; expected a float dtype", op, what, i + 1,
                       pt_dtype_name(x->dtype));
    if (x->dtype == PT_F32 && pt_tensor_is_contiguous(x)) {
        *data = pt_tensor_data(x);
        return PT_OK;
    }
    pt_tensor *c = NULL;
    PT_TRY(pt_tensor_to(&c, x, PT_F32, x->device, 1));
    L->tmp[L->ntmp++] = c;
    *data = pt_tensor_data(c);
    return PT_OK;
}

/* scal: contiguous f64 on ref's device with K (shared row) or n·K values; *stride = 0 or K */
static pt_status pt_check_scal(const char *op, const pt_tensor *scal, int n, int K, const pt_tensor *ref,
                               int64_t *stride) {
    char s1[64], s2[64];
    if (!scal) return PT_FAIL(PT_ERR_VALUE, "%s: the step-scalar tensor is missing (NULL)", op);
    if (scal->dtype != PT_F64)
        return PT_FAIL(PT_ERR_DTYPE, "%s: the step scalars have dtype %s; expected f64", op, pt_dtype_name(scal->dtype));
    if (!pt_tensor_is_contiguous(scal)) return PT_FAIL(PT_ERR_VALUE, "%s: the step-scalar tensor is not contiguous", op);
    if (!pt_device_eq(scal->device, ref->device))
        return PT_FAIL(PT_ERR_DEVICE, "%s: the step scalars are on %s but param #1 is on %s; put them on the params' device",
                       op, pt_device_str(scal->device, s1, sizeof s1), pt_device_str(ref->device, s2, sizeof s2));
    int64_t ne = pt_tensor_numel(scal);
    if (ne == K) *stride = 0;
    else if (ne == (int64_t)n * K) *stride = K;
    else
        return PT_FAIL(PT_ERR_SHAPE,
                       "%s: the step scalars have %lld values; expected %d (one row for every tensor) or %d x %d (a row "
                       "per tensor)",
                       op, (long long)ne, K, n, K);
    return PT_OK;
}

static pt_status pt_check_lists(const char *op, int n, const void *a, const void *b, const void *c, const void *d) {
    if (n < 0) return PT_FAIL(PT_ERR_VALUE, "%s: n = %d tensors", op, n);
    if (n > 0 && (!a || !b || !c || !d)) return PT_FAIL(PT_ERR_VALUE, "%s: a tensor list is missing (NULL)", op);
    return PT_OK;
}

pt_status pt_adamw_multi(int n, pt_tensor *const *p, pt_tensor *const *g, pt_tensor *const *m,
                         pt_tensor *const *v, const pt_tensor *scal) {
    const char *op = "adamw_multi";
    PT_TRY(pt_check_lists(op, n, p, g, m, v));
    if (n == 0) return PT_OK;
    for (int i = 0; i < n; i++) {
        PT_TRY(pt_check_entry(op, "param", i, NULL, p[0], p[i]));
        PT_TRY(pt_check_entry(op, "exp_avg", i, p[i], NULL, m[i]));
        PT_TRY(pt_check_entry(op, "exp_avg_sq", i, p[i], NULL, v[i]));
    }
    int64_t stride = 0;
    PT_TRY(pt_check_scal(op, scal, n, PT_ADAMW_NSCAL, p[0], &stride));
    pt_mt_kernel k = (pt_mt_kernel)pt_kernel_find("optim_adamw_multi", p[0]->device.type, PT_F32);
    if (!k) return pt_kernel_missing("optim_adamw_multi", p[0]->device.type, PT_F32);
    pt_mt_lists L;
    PT_TRY(pt_mt_lists_init(op, &L, n));
    pt_status s = PT_OK;
    for (int i = 0; i < n && s == PT_OK; i++) {
        L.ptr[0][i] = pt_tensor_data(p[i]);
        s = pt_entry_f32(op, "grad", i, p[i], g[i], &L, &L.ptr[1][i]);
        L.ptr[2][i] = pt_tensor_data(m[i]);
        L.ptr[3][i] = pt_tensor_data(v[i]);
        L.numel[i] = pt_tensor_numel(p[i]);
    }
    if (s == PT_OK) {
        pt_mt_args a;
        memset(&a, 0, sizeof a);
        pt_mt_run(k, &L, 4, &a, pt_tensor_data(scal), stride, NULL);
    }
    pt_mt_lists_free(&L);
    return s;
}

pt_status pt_muon_scalars(double row[PT_MUON_NSCAL], double lr, double momentum, double wd, double factor,
                          int64_t rows, int64_t cols) {
    const char *op = "muon_scalars";
    PT_TRY(pt_check_finite(op, "lr", lr));
    PT_TRY(pt_check_finite(op, "weight_decay", wd));
    if (!(momentum >= 0 && momentum < 1))
        return PT_FAIL(PT_ERR_VALUE, "%s: momentum = %g is not in [0, 1)", op, momentum);
    if (!(factor <= 0 || isfinite(factor))) return PT_FAIL(PT_ERR_VALUE, "%s: shape factor %g is not finite", op, factor);
    if (rows < 0 || cols < 0)
        return PT_FAIL(PT_ERR_SHAPE, "%s: matrix size %lld x %lld", op, (long long)rows, (long long)cols);
    row[PT_MUON_MOMENTUM] = momentum;
    row[PT_MUON_LR] = lr;
    row[PT_MUON_WD] = wd;
    row[PT_MUON_FACTOR] = pt_muon_factor(factor, rows, cols);
    return PT_OK;
}

pt_status pt_muon_multi(int n, pt_tensor *const *p, pt_tensor *const *g, pt_tensor *const *buf,
                        const pt_tensor *scal, const pt_muon_opts *o, int batched) {
    const char *op = "muon_multi";
    PT_TRY(pt_check_lists(op, n, p, g, buf, o));
    if (n == 0) return PT_OK;
    for (int i = 0; i < n; i++) {
        PT_TRY(pt_check_entry(op, "param", i, NULL, p[0], p[i]));
        if (p[i]->ndim != 2 && p[i]->ndim != 3) {
            char s1[128];
            return PT_FAIL(PT_ERR_SHAPE, "%s: param #%d has shape %s; Muon updates matrices [rows, cols] or banks [n, rows, cols]",
                           op, i + 1, pt_shape_str(p[i]->ndim, p[i]->shape, s1, sizeof s1));
        }
        PT_TRY(pt_check_entry(op, "momentum_buffer", i, p[i], NULL, buf[i]));
    }
    PT_TRY(pt_ns_check(op, p[0], o->ns_steps, o->coeffs, o->ncoeffs));
    if (o->round < PT_MUON_ROUND_NONE || o->round > PT_MUON_ROUND_UNIT)
        return PT_FAIL(PT_ERR_VALUE, "%s: round mode %d is not 0 (none), 1 (scaled) or 2 (unit)", op, o->round);
    int64_t stride = 0;
    PT_TRY(pt_check_scal(op, scal, n, PT_MUON_NSCAL, p[0], &stride));
    pt_devtype dev = p[0]->device.type;
    pt_mt_kernel km = (pt_mt_kernel)pt_kernel_find("optim_momentum_multi", dev, PT_F32);
    if (!km) return pt_kernel_missing("optim_momentum_multi", dev, PT_F32);
    pt_mt_kernel ka = (pt_mt_kernel)pt_kernel_find("optim_apply_multi", dev, PT_F32);
    if (!ka) return pt_kernel_missing("optim_apply_multi", dev, PT_F32);

    pt_mt_lists L;
    PT_TRY(pt_mt_lists_init(op, &L, n));
    /* banks: bank[i] = the bank of param i, moff[i] = its first matrix there; brows/bcols/bcount per bank */
    int64_t *meta = calloc((size_t)n * 5, sizeof(int64_t));
    if (!meta) {
        pt_mt_lists_free(&L);
        return PT_FAIL(PT_ERR_OOM, "%s: out of host memory for %d tensors", op, n);
    }
    int64_t *bank = meta, *moff = meta + n, *brows = meta + 2 * n, *bcols = meta + 3 * n, *bcount = meta + 4 * n;
    int nbanks = 0;
    for (int i = 0; i < n; i++) {
        const pt_tensor *t = p[i];
        int64_t R = t->shape[t->ndim - 2], C = t->shape[t->ndim - 1], k = t->ndim == 3 ? t->shape[0] : 1;
        int b = -1;
        if (batched)
            for (int j = 0; j < nbanks && b < 0; j++)
                if (brows[j] == R && bcols[j] == C) b = j;
        if (b < 0) {
            b = nbanks++;
            brows[b] = R;
            bcols[b] = C;
            bcount[b] = 0;
        }
        bank[i] = b;
        moff[i] = bcount[b];
        bcount[b] += k;
    }
    pt_status s = PT_OK;
    for (int i = 0; i < n && s == PT_OK; i++) s = pt_entry_f32(op, "grad", i, p[i], g[i], &L, &L.ptr[0][i]);
    pt_tensor **u = L.tmp + L.ntmp; /* the banks of u follow the grad copies in L.tmp */
    for (int b = 0; b < nbanks && s == PT_OK; b++) {
        int64_t shape[3] = {bcount[b], brows[b], bcols[b]};
        s = pt_tensor_empty(&L.tmp[L.ntmp], PT_F32, p[0]->device, 3, shape);
        if (s == PT_OK) L.ntmp++;
    }
    if (s == PT_OK) {
        for (int i = 0; i < n; i++) {
            L.ptr[1][i] = pt_tensor_data(buf[i]);
            L.ptr[2][i] = (float *)pt_tensor_data(u[bank[i]]) + moff[i] * brows[bank[i]] * bcols[bank[i]];
            L.numel[i] = pt_tensor_numel(p[i]);
        }
        pt_mt_args a;
        memset(&a, 0, sizeof a);
        a.flags = o->nesterov != 0;
        pt_mt_run(km, &L, 3, &a, pt_tensor_data(scal), stride, NULL);
        for (int b = 0; b < nbanks && s == PT_OK; b++) s = pt_ns_run(u[b], o->ns_steps, o->coeffs, o->ncoeffs, o->ns_flags);
    }
    if (s == PT_OK) {
        for (int i = 0; i < n; i++) {
            L.ptr[0][i] = pt_tensor_data(p[i]);
            L.ptr[1][i] = L.ptr[2][i];
        }
        pt_mt_args a;
        memset(&a, 0, sizeof a);
        a.flags = o->round;
        pt_mt_run(ka, &L, 2, &a, pt_tensor_data(scal), stride, NULL);
    }
    free(meta);
    pt_mt_lists_free(&L);
    return s;
}

pt_status pt_ema_scalars(double row[PT_EMA_NSCAL], double decay) {
    if (!(decay >= 0 && decay <= 1)) return PT_FAIL(PT_ERR_VALUE, "ema_scalars: decay = %g is not in [0, 1]", decay);
    row[0] = decay;
    return PT_OK;
}

pt_status pt_ema_multi(int n, pt_tensor *const *ema, pt_tensor *const *w, const pt_tensor *scal) {
    const char *op = "ema_multi";
    PT_TRY(pt_check_lists(op, n, ema, w, ema, w));
    if (n == 0) return PT_OK;
    for (int i = 0; i < n; i++) PT_TRY(pt_check_entry(op, "ema", i, NULL, ema[0], ema[i]));
    int64_t stride = 0;
    PT_TRY(pt_check_scal(op, scal, n, PT_EMA_NSCAL, ema[0], &stride));
    pt_mt_kernel k = (pt_mt_kernel)pt_kernel_find("optim_ema_multi", ema[0]->device.type, PT_F32);
    if (!k) return pt_kernel_missing("optim_ema_multi", ema[0]->device.type, PT_F32);
    pt_mt_lists L;
    PT_TRY(pt_mt_lists_init(op, &L, n));
    pt_status s = PT_OK;
    for (int i = 0; i < n && s == PT_OK; i++) {
        L.ptr[0][i] = pt_tensor_data(ema[i]);
        s = pt_entry_f32(op, "weights", i, ema[i], w[i], &L, &L.ptr[1][i]);
        L.numel[i] = pt_tensor_numel(ema[i]);
    }
    if (s == PT_OK) {
        pt_mt_args a;
        memset(&a, 0, sizeof a);
        pt_mt_run(k, &L, 2, &a, pt_tensor_data(scal), stride, NULL);
    }
    pt_mt_lists_free(&L);
    return s;
}

pt_status pt_clip_grad_norm_dev(int n, pt_tensor *const *grads, double max_norm, pt_tensor *norm) {
    const char *op = "clip_grad_norm_dev";
    char s1[128], s2[128];
    if (n < 0) return PT_FAIL(PT_ERR_VALUE, "%s: n = %d tensors", op, n);
    if (n > 0 && !grads) return PT_FAIL(PT_ERR_VALUE, "%s: the gradient list is missing (NULL)", op);
    if (isnan(max_norm)) return PT_FAIL(PT_ERR_VALUE, "%s: max_norm is NaN", op);
    if (!norm) return PT_FAIL(PT_ERR_VALUE, "%s: the norm tensor is missing (NULL)", op);
    if (norm->dtype != PT_F64 || pt_tensor_numel(norm) != 1)
        return PT_FAIL(PT_ERR_VALUE, "%s: the norm goes to an f64 tensor of one element, got %s %s", op,
                       pt_dtype_name(norm->dtype), pt_shape_str(norm->ndim, norm->shape, s1, sizeof s1));
    const pt_tensor *first = NULL;
    int live = 0;
    for (int i = 0; i < n; i++) {
        pt_tensor *g = grads[i];
        if (!g) continue;
        if (g->dtype != PT_F32 && g->dtype != PT_F64)
            return PT_FAIL(PT_ERR_DTYPE, "%s: gradient #%d has dtype %s; expected f32 or f64", op, i + 1,
                           pt_dtype_name(g->dtype));
        if (first && g->dtype != first->dtype)
            return PT_FAIL(PT_ERR_DTYPE, "%s: gradient #%d has dtype %s but the first gradient has %s; one dtype per call",
                           op, i + 1, pt_dtype_name(g->dtype), pt_dtype_name(first->dtype));
        if (!pt_tensor_is_contiguous(g))
            return PT_FAIL(PT_ERR_VALUE, "%s: gradient #%d %s is not contiguous", op, i + 1,
                           pt_shape_str(g->ndim, g->shape, s1, sizeof s1));
        if (!pt_device_eq(g->device, norm->device))
            return PT_FAIL(PT_ERR_DEVICE, "%s: gradient #%d is on %s but the norm tensor is on %s", op, i + 1,
                           pt_device_str(g->device, s1, sizeof s1), pt_device_str(norm->device, s2, sizeof s2));
        if (!first) first = g;
        live++;
    }
    if (!pt_tensor_is_contiguous(norm)) return PT_FAIL(PT_ERR_VALUE, "%s: the norm tensor is not contiguous", op);
    if (live == 0) return pt_tensor_fill_(norm, 0.0);
    pt_devtype dev = first->device.type;
    pt_dtype dt = first->dtype;
    pt_mt_kernel ks = (pt_mt_kernel)pt_kernel_find("optim_sumsq_multi", dev, dt);
    if (!ks) return pt_kernel_missing("optim_sumsq_multi", dev, dt);
    pt_norm_kernel kn = (pt_norm_kernel)pt_kernel_find("optim_norm", dev, PT_F64);
    if (!kn) return pt_kernel_missing("optim_norm", dev, PT_F64);
    pt_mt_kernel kc = (pt_mt_kernel)pt_kernel_find("optim_scale_multi", dev, dt);
    if (!kc) return pt_kernel_missing("optim_scale_multi", dev, dt);

    pt_mt_lists L;
    PT_TRY(pt_mt_lists_init(op, &L, live));
    for (int i = 0, j = 0; i < n; i++)
        if (grads[i]) {
            L.ptr[0][j] = pt_tensor_data(grads[i]);
            L.numel[j++] = pt_tensor_numel(grads[i]);
        }
    /* scratch: the per-tensor sums, then (off the CPU) the partial sums of one launch */
    pt_tensor *work = NULL;
    int64_t wn = live + (dev == PT_DEV_CPU ? 0 : PT_SUMSQ_WORK);
    pt_status s = pt_tensor_empty(&work, PT_F64, first->device, 1, &wn);
    if (s == PT_OK) {
        double *sums = pt_tensor_data(work);
        pt_mt_args a;
        memset(&a, 0, sizeof a);
        a.work = dev == PT_DEV_CPU ? NULL : sums + live;
        pt_mt_run(ks, &L, 1, &a, NULL, 0, sums);
        pt_norm_args na = {.sums = sums, .n = live, .norm = pt_tensor_data(norm)};
        kn(&na);
        if (max_norm > 0) {
            memset(&a, 0, sizeof a);
            a.max_norm = max_norm;
            pt_mt_run(kc, &L, 1, &a, pt_tensor_data(norm), 0, NULL);
        }
        pt_tensor_release(work);
    }
    pt_mt_lists_free(&L);
    return s;
}
