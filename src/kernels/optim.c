/* optim.c — op fronts of the optimizer family (formulas, flags and kernel names in pt_optim.h):
 * argument checks with messages that name the op and the offending shape/dtype/value, scratch
 * allocation, and dispatch to the (op, device, dtype) kernels of src/kernels/cpu/optim.c.
 *
 * Everything here updates tensors in place and records no autograd node. Parameters and optimizer
 * state must be contiguous f32 tensors on one device; gradients may be any layout (a contiguous copy
 * is made when needed).
 * Tests: tests/c/test_optim.c, tests/lua/test_optim.lua.
 */
#include <math.h>
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

pt_status pt_adamw_step(pt_tensor *p, pt_tensor *g, pt_tensor *m, pt_tensor *v, int64_t step, double lr,
                        double beta1, double beta2, double eps, double wd, int maximize) {
    const char *op = "adamw_step";
    PT_TRY(pt_check_state(op, "param", NULL, p));
    PT_TRY(pt_check_state(op, "exp_avg", p, m));
    PT_TRY(pt_check_state(op, "exp_avg_sq", p, v));
    if (step < 1) return PT_FAIL(PT_ERR_VALUE, "%s: step = %lld; steps count from 1", op, (long long)step);
    if (!(beta1 >= 0 && beta1 < 1)) return PT_FAIL(PT_ERR_VALUE, "%s: beta1 = %g is not in [0, 1)", op, beta1);
    if (!(beta2 >= 0 && beta2 < 1)) return PT_FAIL(PT_ERR_VALUE, "%s: beta2 = %g is not in [0, 1)", op, beta2);
    if (!(eps >= 0)) return PT_FAIL(PT_ERR_VALUE, "%s: eps = %g must be >= 0", op, eps);
    PT_TRY(pt_check_finite(op, "lr", lr));
    PT_TRY(pt_check_finite(op, "weight_decay", wd));
    pt_adamw_kernel k = (pt_adamw_kernel)pt_kernel_find("optim_adamw", p->device.type, p->dtype);
    if (!k) return pt_kernel_missing("optim_adamw", p->device.type, p->dtype);
    pt_tensor *gc = NULL;
    PT_TRY(pt_grad_f32(op, p, g, &gc));
    pt_adamw_args a = {
        .n = pt_tensor_numel(p), .p = pt_tensor_data(p), .g = pt_tensor_data(gc), .m = pt_tensor_data(m),
        .v = pt_tensor_data(v), .decay = 1.0 - lr * wd, .beta1 = beta1, .beta2 = beta2,
        .step_size = lr / (1.0 - pow(beta1, (double)step)), .bc2_sqrt = sqrt(1.0 - pow(beta2, (double)step)),
        .eps = eps, .maximize = maximize != 0};
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

/* runs the NS kernel in place on x (contiguous f32 with G's geometry) */
static pt_status pt_ns_run(pt_tensor *x, int steps, const double (*coeffs)[3], int ncoeffs, int flags) {
    pt_ns_kernel k = (pt_ns_kernel)pt_kernel_find("optim_ns", x->device.type, PT_F32);
    if (!k) return pt_kernel_missing("optim_ns", x->device.type, PT_F32);
    int64_t R = x->shape[x->ndim - 2], C = x->shape[x->ndim - 1], B = x->ndim == 3 ? x->shape[0] : 1;
    if (R * C * B == 0) return PT_OK;
    pt_tensor *work = NULL;
    int64_t wn = pt_ns_work_elems(R, C);
    PT_TRY(pt_tensor_empty(&work, PT_F32, x->device, 1, &wn));
    pt_ns_args a = {.batch = B, .rows = R, .cols = C, .x = pt_tensor_data(x), .work = pt_tensor_data(work),
                    .steps = steps, .coeffs = coeffs ? &coeffs[0][0] : NULL, .ncoeffs = ncoeffs, .flags = flags};
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

    int64_t R = p->shape[p->ndim - 2], C = p->shape[p->ndim - 1];
    double factor = o->factor > 0 ? o->factor : sqrt(fmax(1.0, (double)R / (double)(C ? C : 1)));
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
