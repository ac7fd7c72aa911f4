/* cpu/bf16.c — bf16 storage on the CPU for the ops a bf16-compute GPT runs (nn.lua compute_dtype =
 * "bf16"): matmul, linear_act (+ its backward) and attention (+ its backward) — the ops it runs in bf16. Each
 * kernel widens its bf16 inputs to f32 buffers, runs the table's f32 kernel, and rounds every bf16
 * output to nearest even once — the CUDA kernels' contract ("bf16 is a storage type: loaded to fp32,
 * computed in fp32, rounded once per output"), so the CPU is the oracle of the GPU's bf16 path (up to
 * summation order) and the bf16 model code runs, and is tested, on a machine without a GPU. attention's
 * lse stays f32 (the front allocates it so for bf16 q). Nothing here is fast: the CPU computes in f32
 * and pays two conversions; use f32 on the CPU for speed.
 *
 * Tests: tests/lua/test_bf16_compute.lua (each kernel against the f32 kernel on the rounded inputs,
 * bit for bit; a bf16-compute GPT against the f32 one).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../pt_dispatch.h"
#include "../pt_fused.h"
#include "../pt_linear_act.h"
#include "../pt_matmul.h"

/* a new f32 copy of n bf16 values (n may be 0: a 1-element buffer); NULL when out of memory */
static float *b16_widen(const void *src, int64_t n) {
    float *d = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (!d) return NULL;
    const uint16_t *s = src;
    for (int64_t i = 0; i < n; i++) d[i] = pt_bf16_to_f32(s[i]);
    return d;
}

static void b16_round(void *dst, const float *src, int64_t n) {
    uint16_t *d = dst;
    for (int64_t i = 0; i < n; i++) d[i] = pt_f32_to_bf16(src[i]);
}

static float *b16_zeros(int64_t n) { return calloc((size_t)(n > 0 ? n : 1), sizeof(float)); }

static pt_status b16_oom(const char *op, int64_t n) {
    return PT_FAIL(PT_ERR_OOM, "%s (bf16 on the CPU): no memory for an f32 buffer of %lld elements", op,
                   (long long)n);
}

/* elements a strided operand spans: rows of `ld`, the last one `cols` long, plus the largest offset */
static int64_t b16_extent(int64_t rows, int64_t cols, int64_t ld, const int64_t *off, int64_t batch) {
    int64_t m = 0;
    for (int64_t i = 0; off && i < batch; i++)
        if (off[i] > m) m = off[i];
    return rows > 0 && cols > 0 ? m + (rows - 1) * ld + cols : 0;
}

/* ---- matmul ---- */
static void matmul_bf16(const pt_matmul_args *g) {
    pt_matmul_kernel f = (pt_matmul_kernel)pt_kernel_find("matmul", PT_DEV_CPU, PT_F32);
    const int64_t na = g->ta ? b16_extent(g->k, g->m, g->lda, g->aoff, g->batch)
                             : b16_extent(g->m, g->k, g->lda, g->aoff, g->batch);
    const int64_t nb = g->tb ? b16_extent(g->n, g->k, g->ldb, g->boff, g->batch)
                             : b16_extent(g->k, g->n, g->ldb, g->boff, g->batch);
    const int64_t no = g->batch * g->m * g->n;
    float *a = b16_widen(g->a, na), *b = b16_widen(g->b, nb), *o = malloc(sizeof(float) * (size_t)(no > 0 ? no : 1));
    if (f && a && b && o) {
        pt_matmul_args h = *g;
        h.a = a;
        h.b = b;
        h.out = o;
        f(&h);
        b16_round(g->out, o, no);
    } else {
        /* the matmul kernel signature has no status: NaN out, which the training loop's NaN check
         * stops on (an f32 buffer the size of the operands could not be allocated) */
        uint16_t *d = g->out;
        for (int64_t i = 0; i < no; i++) d[i] = 0x7fc0;
    }
    free(a);
    free(b);
    free(o);
}

/* ---- linear_act: x [m, k], w [n, k] -> h, out [m, n] ---- */
static pt_status linear_act_bf16(const pt_linear_act_args *a) {
    pt_linear_act_kernel f = (pt_linear_act_kernel)pt_kernel_find("linear_act", PT_DEV_CPU, PT_F32);
    if (!f) return pt_kernel_missing("linear_act", PT_DEV_CPU, PT_F32);
    const int64_t nx = a->m * a->k, nw = a->n * a->k, no = a->m * a->n;
    float *x = b16_widen(a->x, nx), *w = b16_widen(a->w, nw), *h = b16_zeros(no), *o = b16_zeros(no);
    pt_status st = (!x || !w || !h || !o) ? b16_oom("linear_act", no) : PT_OK;
    if (!st) {
        pt_linear_act_args s = *a;
        s.x = x;
        s.w = w;
        s.h = h;
        s.out = o;
        st = f(&s);
        if (!st) {
            b16_round(a->h, h, no);
            b16_round(a->out, o, no);
        }
    }
    free(x);
    free(w);
    free(h);
    free(o);
    return st;
}

static pt_status linear_act_bwd_bf16(const pt_linear_act_args *a) {
    pt_linear_act_kernel f = (pt_linear_act_kernel)pt_kernel_find("linear_act_bwd", PT_DEV_CPU, PT_F32);
    if (!f) return pt_kernel_missing("linear_act_bwd", PT_DEV_CPU, PT_F32);
    const int64_t no = a->m * a->n;
    float *h = b16_widen(a->h, no), *g = b16_widen(a->g, no), *dh = b16_zeros(no);
    pt_status st = (!h || !g || !dh) ? b16_oom("linear_act_bwd", no) : PT_OK;
    if (!st) {
        pt_linear_act_args s = *a;
        s.h = h;
        s.g = g;
        s.dh = dh;
        st = f(&s);
        if (!st) b16_round(a->dh, dh, no);
    }
    free(h);
    free(g);
    free(dh);
    return st;
}

/* ---- attention: q [B,T,H,D], k, v [B,T,Hkv,D]; lse [B,H,T] f32 either way ---- */
static pt_status attention_bf16(const pt_attention_args *a) {
    pt_attention_kernel f = (pt_attention_kernel)pt_kernel_find("attention", PT_DEV_CPU, PT_F32);
    if (!f) return pt_kernel_missing("attention", PT_DEV_CPU, PT_F32);
    const int64_t nq = a->B * a->T * a->H * a->D, nk = a->B * a->T * a->Hkv * a->D;
    float *q = b16_widen(a->q, nq), *k = b16_widen(a->k, nk), *v = b16_widen(a->v, nk), *y = b16_zeros(nq);
    pt_status st = (!q || !k || !v || !y) ? b16_oom("attention", nq) : PT_OK;
    if (!st) {
        pt_attention_args s = *a;
        s.q = q;
        s.k = k;
        s.v = v;
        s.y = y;
        st = f(&s);
        if (!st) b16_round(a->y, y, nq);
    }
    free(q);
    free(k);
    free(v);
    free(y);
    return st;
}

static pt_status attention_bwd_bf16(const pt_attention_args *a) {
    pt_attention_kernel f = (pt_attention_kernel)pt_kernel_find("attention_bwd", PT_DEV_CPU, PT_F32);
    if (!f) return pt_kernel_missing("attention_bwd", PT_DEV_CPU, PT_F32);
    const int64_t nq = a->B * a->T * a->H * a->D, nk = a->B * a->T * a->Hkv * a->D;
    float *q = b16_widen(a->q, nq), *k = b16_widen(a->k, nk), *v = b16_widen(a->v, nk);
    float *y = b16_widen(a->y, nq), *gy = b16_widen(a->gy, nq);
    float *dq = b16_zeros(nq), *dk = b16_zeros(nk), *dv = b16_zeros(nk);
    pt_status st = (!q || !k || !v || !y || !gy || !dq || !dk || !dv) ? b16_oom("attention_bwd", nq) : PT_OK;
    if (!st) {
        pt_attention_args s = *a;
        s.q = q;
        s.k = k;
        s.v = v;
        s.y = y;
        s.gy = gy;
        s.dq = dq;
        s.dk = dk;
        s.dv = dv;
        st = f(&s);
        if (!st) {
            b16_round(a->dq, dq, nq);
            b16_round(a->dk, dk, nk);
            b16_round(a->dv, dv, nk);
        }
    }
    free(q);
    free(k);
    free(v);
    free(y);
    free(gy);
    free(dq);
    free(dk);
    free(dv);
    return st;
}

PT_REGISTER_KERNEL(matmul, PT_DEV_CPU, PT_BF16, matmul_bf16)
PT_REGISTER_KERNEL(linear_act, PT_DEV_CPU, PT_BF16, linear_act_bf16)
PT_REGISTER_KERNEL(linear_act_bwd, PT_DEV_CPU, PT_BF16, linear_act_bwd_bf16)
PT_REGISTER_KERNEL(attention, PT_DEV_CPU, PT_BF16, attention_bf16)
PT_REGISTER_KERNEL(attention_bwd, PT_DEV_CPU, PT_BF16, attention_bwd_bf16)
