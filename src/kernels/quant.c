/* quant.c — op fronts of the quantization family (formulas and kernel names in pt_quant.h):
 * argument checks whose messages name the op and the offending shape/dtype/value, f32 conversion,
 * and dispatch to the (op, device, dtype) kernels of src/kernels/cpu/quant.c. No autograd: these
 * run after training, on detached weights.
 *
 * pt_quant_gptq also prepares the Hessian (dead columns, damping, permutation by descending
 * diagonal, inverse, upper Cholesky factor) with pt_inverse / pt_cholesky before the sweep.
 * Tests: tests/c/test_quant.c, tests/lua/test_quant.lua.
 */
#include <stdlib.h>
#include <string.h>

#include "pt_dispatch.h"
#include "pt_ops.h"
#include "pt_quant.h"

/* A contiguous f32 copy (or t retained) of t; `what` names it in messages. */
static pt_status pt_q_f32(const char *op, const char *what, pt_tensor *t, pt_tensor **out) {
    *out = NULL;
    if (!t) return PT_FAIL(PT_ERR_VALUE, "%s: %s is missing (NULL)", op, what);
    if (!pt_dtype_is_float(t->dtype))
        return PT_FAIL(PT_ERR_DTYPE, "%s: %s has dtype %s; expected a float tensor", op, what, pt_dtype_name(t->dtype));
    if (t->dtype == PT_F32 && pt_tensor_is_contiguous(t)) {
        pt_tensor_retain(t);
        *out = t;
        return PT_OK;
    }
    return pt_tensor_to(out, t, PT_F32, t->device, 1);
}

/* t must hold n values (any shape); `what` names it. */
static pt_status pt_q_count(const char *op, const char *what, const pt_tensor *t, int64_t n) {
    char b[128];
    if (pt_tensor_numel(t) != n)
        return PT_FAIL(PT_ERR_SHAPE, "%s: %s has shape %s (%lld values); expected %lld (one per row)", op, what,
                       pt_shape_str(t->ndim, t->shape, b, sizeof b), (long long)pt_tensor_numel(t), (long long)n);
    return PT_OK;
}

static pt_status pt_q_range(const char *op, int qmin, int qmax) {
    if (!(qmin >= -128 && qmax <= 127 && qmin < qmax))
        return PT_FAIL(PT_ERR_VALUE, "%s: integer range [%d, %d] must satisfy -128 <= qmin < qmax <= 127", op, qmin, qmax);
    return PT_OK;
}

static void pt_q_release(pt_tensor **ts, int n) {
    for (int i = 0; i < n; i++) pt_tensor_release(ts[i]);
}

pt_status pt_quant_rows(pt_tensor **q, pt_tensor **err, pt_tensor *w, pt_tensor *clip, pt_tensor *scale,
                        pt_tensor *err_scale, int qmin, int qmax) {
    const char *op = "quant_rows";
    char b[128];
    *q = NULL;
    if (err) *err = NULL;
    PT_TRY(pt_q_range(op, qmin, qmax));
    if (!w || w->ndim != 2)
        return PT_FAIL(PT_ERR_SHAPE, "%s: the weight must be 2-D [rows, cols], got %s", op,
                       w ? pt_shape_str(w->ndim, w->shape, b, sizeof b) : "NULL");
    const int64_t R = w->shape[0], C = w->shape[1];
    pt_tensor *t[4] = {NULL, NULL, NULL, NULL}; /* w, clip, scale, err_scale as f32 */
    pt_status st = pt_q_f32(op, "weight", w, &t[0]);
    if (!st && clip) st = pt_q_f32(op, "clip", clip, &t[1]);
    if (!st && clip) st = pt_q_count(op, "clip", t[1], R);
    if (!st) st = pt_q_f32(op, "scale", scale, &t[2]);
    if (!st) st = pt_q_count(op, "scale", t[2], R);
    if (!st && err_scale) st = pt_q_f32(op, "err_scale", err_scale, &t[3]);
    if (!st && err_scale) st = pt_q_count(op, "err_scale", t[3], R);
    for (int i = 1; !st && i < 4; i++)
        if (t[i]) st = pt_check_same_device(op, t[0], t[i]);
    pt_quant_rows_kernel k = NULL;
    if (!st) {
        k = (pt_quant_rows_kernel)pt_kernel_find("quant_rows", w->device.type, PT_F32);
        if (!k) st = pt_kernel_missing("quant_rows", w->device.type, PT_F32);
    }
    if (!st) st = pt_tensor_empty(q, PT_I8, w->device, 2, w->shape);
    if (!st && err && t[3]) st = pt_tensor_empty(err, PT_F64, w->device, 1, &R);
    if (!st) {
        pt_quant_rows_args a = {R, C, pt_tensor_data(t[0]), t[1] ? pt_tensor_data(t[1]) : NULL, pt_tensor_data(t[2]),
                                t[3] ? pt_tensor_data(t[3]) : NULL, pt_tensor_data(*q),
                                (err && *err) ? pt_tensor_data(*err) : NULL, qmin, qmax};
        k(&a);
    }
    pt_q_release(t, 4);
    if (st) {
        pt_tensor_release(*q);
        *q = NULL;
        if (err) {
            pt_tensor_release(*err);
            *err = NULL;
        }
    }
    return st;
}

pt_status pt_quant_dequant(pt_tensor **out, pt_tensor *q, pt_tensor *scale) {
    const char *op = "quant_dequant";
    char b[128];
    *out = NULL;
    if (!q || q->dtype != PT_I8 || q->ndim < 1)
        return PT_FAIL(PT_ERR_DTYPE, "%s: expected an i8 tensor with at least 1 dim, got %s %s", op,
                       q ? pt_dtype_name(q->dtype) : "NULL", q ? pt_shape_str(q->ndim, q->shape, b, sizeof b) : "");
    pt_tensor *qc = NULL, *s = NULL;
    PT_TRY(pt_tensor_contiguous_raw(&qc, q));
    pt_status st = pt_q_f32(op, "scale", scale, &s);
    const int64_t n = pt_tensor_numel(q), R0 = q->shape[0];
    int64_t R = 0;
    if (!st) {
        int64_t ns = pt_tensor_numel(s);
        if (ns == R0 && R0 > 0) R = R0;
        else if (ns == 1) R = 1;
        else
            st = PT_FAIL(PT_ERR_SHAPE, "%s: %lld scales for values of shape %s; expected %lld (per row) or 1 (per tensor)",
                         op, (long long)ns, pt_shape_str(q->ndim, q->shape, b, sizeof b), (long long)R0);
    }
    if (!st) st = pt_check_same_device(op, qc, s);
    pt_quant_dequant_kernel k = NULL;
    if (!st) {
        k = (pt_quant_dequant_kernel)pt_kernel_find("quant_dequant", q->device.type, PT_F32);
        if (!k) st = pt_kernel_missing("quant_dequant", q->device.type, PT_F32);
    }
    if (!st) st = pt_tensor_empty(out, PT_F32, q->device, q->ndim, q->shape);
    if (!st && n > 0) {
        pt_quant_dequant_args a = {R, n / (R ? R : 1), pt_tensor_data(qc), pt_tensor_data(s), pt_tensor_data(*out)};
        k(&a);
    }
    pt_tensor_release(qc);
    pt_tensor_release(s);
    if (st) {
        pt_tensor_release(*out);
        *out = NULL;
    }
    return st;
}

typedef struct {
    float d;
    int64_t i;
} pt_q_diag;

static int pt_q_diag_desc(const void *x, const void *y) {
    const pt_q_diag *a = x, *b = y;
    if (a->d > b->d) return -1;
    if (a->d < b->d) return 1;
    return a->i < b->i ? -1 : a->i > b->i; /* stable: equal diagonals keep their order */
}

pt_status pt_quant_gptq(pt_tensor **q, pt_tensor *w, pt_tensor *h, pt_tensor *scale, int qmin, int qmax,
                        double damp, int64_t block) {
    const char *op = "quant_gptq";
    char b1[128], b2[128];
    *q = NULL;
    PT_TRY(pt_q_range(op, qmin, qmax));
    if (!w || w->ndim != 2 || !h || h->ndim != 2 || h->shape[0] != h->shape[1] || h->shape[0] != w->shape[1])
        return PT_FAIL(PT_ERR_SHAPE, "%s: weight %s needs a square Hessian [cols, cols], got %s", op,
                       w ? pt_shape_str(w->ndim, w->shape, b1, sizeof b1) : "NULL",
                       h ? pt_shape_str(h->ndim, h->shape, b2, sizeof b2) : "NULL");
    if (!(block >= 1)) return PT_FAIL(PT_ERR_VALUE, "%s: block = %lld must be >= 1", op, (long long)block);
    if (!(damp >= 0)) return PT_FAIL(PT_ERR_VALUE, "%s: damp = %g must be >= 0", op, damp);
    /* The Hessian preparation (sort, inverse, Cholesky) runs on the CPU; the sweep runs on the weight's
     * device (the CUDA kernel reads W, U, scale and the error scratch from device memory). */
    const pt_device dev = w->device;
    PT_TRY(pt_check_same_device(op, w, h));
    if (scale) PT_TRY(pt_check_same_device(op, w, scale));
    pt_tensor *host[3] = {NULL, NULL, NULL}; /* w, h, scale on the CPU when dev is not */
    if (dev.type != PT_DEV_CPU) {
        pt_status s0 = pt_tensor_to(&host[0], w, w->dtype, PT_CPU, 0);
        if (!s0) s0 = pt_tensor_to(&host[1], h, h->dtype, PT_CPU, 0);
        if (!s0 && scale) s0 = pt_tensor_to(&host[2], scale, scale->dtype, PT_CPU, 0);
        if (s0) {
            pt_q_release(host, 3);
            return s0;
        }
        w = host[0];
        h = host[1];
        if (scale) scale = host[2];
    }
    const int64_t R = w->shape[0], C = w->shape[1];
    pt_tensor *t[8] = {NULL};
    enum { TW, TH, TS, TWP, THP, TINV, TU, TQP };
    pt_q_diag *diag = NULL;
    float *err = NULL;
    pt_status st = pt_q_f32(op, "weight", w, &t[TW]);
    if (!st) st = pt_q_f32(op, "hessian", h, &t[TH]);
    if (!st) st = pt_q_f32(op, "scale", scale, &t[TS]);
    if (!st) st = pt_q_count(op, "scale", t[TS], R);
    if (!st) st = pt_tensor_empty(&t[TWP], PT_F32, PT_CPU, 2, w->shape);
    if (!st) st = pt_tensor_empty(&t[THP], PT_F32, PT_CPU, 2, h->shape);
    if (!st && !(diag = malloc(sizeof *diag * (size_t)(C ? C : 1))))
        st = PT_FAIL(PT_ERR_OOM, "%s: out of memory for %lld columns", op, (long long)C);
    if (!st && !(err = malloc(sizeof *err * (size_t)(R * block > 0 ? R * block : 1))))
        st = PT_FAIL(PT_ERR_OOM, "%s: out of memory for the error block [%lld, %lld]", op, (long long)R, (long long)block);
    if (!st) {
        const float *H = pt_tensor_data(t[TH]), *W = pt_tensor_data(t[TW]);
        float *Hp = pt_tensor_data(t[THP]), *Wp = pt_tensor_data(t[TWP]);
        /* dead columns and the damping, on a copy of the diagonal */
        double mean = 0;
        for (int64_t j = 0; j < C; j++) {
            float d = H[j * C + j];
            diag[j].d = d == 0.0f ? 1.0f : d;
            diag[j].i = j;
            mean += diag[j].d;
        }
        mean = C ? mean / (double)C : 0;
        const float add = (float)damp * (float)mean; /* f32 product, as torch scalar·tensor */
        for (int64_t j = 0; j < C; j++) diag[j].d += add;
        /* the damped diagonal by original index; then the column order by descending diagonal */
        float *dd = malloc(sizeof(float) * (size_t)(C ? C : 1));
        if (!dd) st = PT_FAIL(PT_ERR_OOM, "%s: out of memory for %lld columns", op, (long long)C);
        if (!st) {
            for (int64_t j = 0; j < C; j++) dd[j] = diag[j].d;
            qsort(diag, (size_t)C, sizeof *diag, pt_q_diag_desc);
            for (int64_t a = 0; a < C; a++) {
                const int64_t pa = diag[a].i;
                for (int64_t c = 0; c < C; c++) {
                    const int64_t pc = diag[c].i;
                    Hp[a * C + c] = pa == pc ? dd[pa] : H[pa * C + pc];
                }
            }
            for (int64_t r = 0; r < R; r++)
                for (int64_t c = 0; c < C; c++) {
                    const int64_t pc = diag[c].i;
                    Wp[r * C + c] = H[pc * C + pc] == 0.0f ? 0.0f : W[r * C + pc]; /* dead columns zeroed */
                }
        }
        free(dd);
    }
    if (!st) st = pt_inverse(&t[TINV], t[THP]);
    if (!st) st = pt_cholesky(&t[TU], t[TINV], 1);
    if (!st) st = pt_tensor_empty(&t[TQP], PT_I8, dev, 2, w->shape);
    pt_quant_gptq_kernel k = NULL;
    if (!st) {
        k = (pt_quant_gptq_kernel)pt_kernel_find("quant_gptq_sweep", dev.type, PT_F32);
        if (!k) st = pt_kernel_missing("quant_gptq_sweep", dev.type, PT_F32);
    }
    if (!st) {
        pt_tensor *u = NULL, *dw = NULL, *du = NULL, *ds = NULL, *de = NULL; /* device copies (dev != CPU) */
        st = pt_tensor_contiguous_raw(&u, t[TU]);
        if (!st && dev.type != PT_DEV_CPU) {
            const int64_t es[2] = {R, block};
            st = pt_tensor_to(&dw, t[TWP], PT_F32, dev, 1);
            if (!st) st = pt_tensor_to(&du, u, PT_F32, dev, 1);
            if (!st) st = pt_tensor_to(&ds, t[TS], PT_F32, dev, 1);
            if (!st) st = pt_tensor_empty(&de, PT_F32, dev, 2, es);
        }
        if (!st) {
            const int on_dev = dev.type != PT_DEV_CPU;
            pt_quant_gptq_args a = {R, C, block, pt_tensor_data(on_dev ? dw : t[TWP]), pt_tensor_data(on_dev ? du : u),
                                    pt_tensor_data(on_dev ? ds : t[TS]), pt_tensor_data(t[TQP]),
                                    on_dev ? (float *)pt_tensor_data(de) : err, qmin, qmax};
            k(&a);
        }
        pt_tensor_release(u);
        pt_tensor_release(dw);
        pt_tensor_release(du);
        pt_tensor_release(ds);
        pt_tensor_release(de);
    }
    if (!st && dev.type != PT_DEV_CPU) { /* the permuted q back to the CPU (reports a pending launch error) */
        pt_tensor *qh = NULL;
        st = pt_tensor_to(&qh, t[TQP], PT_I8, PT_CPU, 1);
        pt_tensor_release(t[TQP]);
        t[TQP] = qh;
    }
    if (!st) st = pt_tensor_empty(q, PT_I8, PT_CPU, 2, w->shape);
    if (!st) { /* un-permute: column c of the sweep is original column diag[c].i */
        const int8_t *qp = pt_tensor_data(t[TQP]);
        int8_t *qo = pt_tensor_data(*q);
        for (int64_t r = 0; r < R; r++)
            for (int64_t c = 0; c < C; c++) qo[r * C + diag[c].i] = qp[r * C + c];
    }
    if (!st && dev.type != PT_DEV_CPU) { /* q on the weight's device */
        pt_tensor *qd = NULL;
        st = pt_tensor_to(&qd, *q, PT_I8, dev, 1);
        pt_tensor_release(*q);
        *q = qd;
    }
    if (st) pt_error_context(st, "%s of a %s weight: ", op, pt_shape_str(w->ndim, w->shape, b1, sizeof b1));
    pt_q_release(t, 8);
    pt_q_release(host, 3);
    free(diag);
    free(err);
    if (st) {
        pt_tensor_release(*q);
        *q = NULL;
    }
    return st;
}
