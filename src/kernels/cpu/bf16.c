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

/* The f32 buffers of one call: inputs widened from bf16, outputs zeroed and rounded back to bf16 at the
 * end. B16_MAX buffers per call. */
#define B16_MAX 8
typedef struct {
    int n;
    const void *src[B16_MAX]; /* bf16 input, or NULL for an output */
    void *dst[B16_MAX];       /* bf16 output, or NULL for an input */
    int64_t len[B16_MAX];
    float *buf[B16_MAX];
} b16_set;

/* adds an input (src, len) or an output (dst, len); returns its f32 buffer's slot */
static int b16_in(b16_set *s, const void *src, int64_t len) {
    s->src[s->n] = src, s->dst[s->n] = NULL, s->len[s->n] = len;
    return s->n++;
}
static int b16_out(b16_set *s, void *dst, int64_t len) {
    s->src[s->n] = NULL, s->dst[s->n] = dst, s->len[s->n] = len;
    return s->n++;
}

/* allocates every buffer (inputs widened, outputs zero); an error names op when memory runs out */
static pt_status b16_open(b16_set *s, const char *op) {
    for (int i = 0; i < s->n; i++) {
        const int64_t n = s->len[i] > 0 ? s->len[i] : 1;
        s->buf[i] = calloc((size_t)n, sizeof(float));
        if (!s->buf[i])
            return PT_FAIL(PT_ERR_OOM, "%s (bf16 on the CPU): no memory for an f32 buffer of %lld elements", op,
                           (long long)n);
        const uint16_t *src = s->src[i];
        for (int64_t j = 0; src && j < s->len[i]; j++) s->buf[i][j] = pt_bf16_to_f32(src[j]);
    }
    return PT_OK;
}

/* rounds the outputs to bf16 when st is PT_OK; frees everything; returns st */
static pt_status b16_close(b16_set *s, pt_status st) {
    for (int i = 0; i < s->n; i++) {
        uint16_t *d = s->dst[i];
        for (int64_t j = 0; !st && d && s->buf[i] && j < s->len[i]; j++) d[j] = pt_f32_to_bf16(s->buf[i][j]);
        free(s->buf[i]);
    }
    return st;
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
    b16_set s = {0};
    const int a = b16_in(&s, g->a, g->ta ? b16_extent(g->k, g->m, g->lda, g->aoff, g->batch)
                                         : b16_extent(g->m, g->k, g->lda, g->aoff, g->batch));
    const int b = b16_in(&s, g->b, g->tb ? b16_extent(g->n, g->k, g->ldb, g->boff, g->batch)
                                         : b16_extent(g->k, g->n, g->ldb, g->boff, g->batch));
    const int o = b16_out(&s, g->out, g->batch * g->m * g->n);
    pt_status st = f ? b16_open(&s, "matmul") : PT_ERR_UNSUPPORTED;
    if (!st) {
        pt_matmul_args h = *g;
        h.a = s.buf[a], h.b = s.buf[b], h.out = s.buf[o];
        f(&h);
    } else {
        /* the matmul kernel signature has no status: NaN out, which the training loop's NaN check stops
         * on (an f32 buffer the size of the operands could not be allocated) */
        uint16_t *d = g->out;
        for (int64_t i = 0; i < s.len[o]; i++) d[i] = 0x7fc0;
    }
    (void)b16_close(&s, st);
}

/* ---- linear_act: x [m, k], w [n, k] -> h, out [m, n]; backward h, g -> dh ---- */
static pt_status linear_act_bf16(const pt_linear_act_args *a) {
    pt_linear_act_kernel f = (pt_linear_act_kernel)pt_kernel_find("linear_act", PT_DEV_CPU, PT_F32);
    if (!f) return pt_kernel_missing("linear_act", PT_DEV_CPU, PT_F32);
    b16_set s = {0};
    const int x = b16_in(&s, a->x, a->m * a->k), w = b16_in(&s, a->w, a->n * a->k);
    const int h = b16_out(&s, a->h, a->m * a->n), o = b16_out(&s, a->out, a->m * a->n);
    pt_status st = b16_open(&s, "linear_act");
    if (!st) {
        pt_linear_act_args c = *a;
        c.x = s.buf[x], c.w = s.buf[w], c.h = s.buf[h], c.out = s.buf[o];
        st = f(&c);
    }
    return b16_close(&s, st);
}

static pt_status linear_act_bwd_bf16(const pt_linear_act_args *a) {
    pt_linear_act_kernel f = (pt_linear_act_kernel)pt_kernel_find("linear_act_bwd", PT_DEV_CPU, PT_F32);
    if (!f) return pt_kernel_missing("linear_act_bwd", PT_DEV_CPU, PT_F32);
    b16_set s = {0};
    const int h = b16_in(&s, a->h, a->m * a->n), g = b16_in(&s, a->g, a->m * a->n);
    const int dh = b16_out(&s, a->dh, a->m * a->n);
    pt_status st = b16_open(&s, "linear_act_bwd");
    if (!st) {
        pt_linear_act_args c = *a;
        c.h = s.buf[h], c.g = s.buf[g], c.dh = s.buf[dh];
        st = f(&c);
    }
    return b16_close(&s, st);
}

/* ---- attention: q [B,T,H,D], k, v [B,T,Hkv,D]; lse [B,H,T] is f32 either way and passes through ---- */
static pt_status attention_bf16(const pt_attention_args *a) {
    pt_attention_kernel f = (pt_attention_kernel)pt_kernel_find("attention", PT_DEV_CPU, PT_F32);
    if (!f) return pt_kernel_missing("attention", PT_DEV_CPU, PT_F32);
    const int64_t nq = a->B * a->T * a->H * a->D, nk = a->B * a->T * a->Hkv * a->D;
    b16_set s = {0};
    const int q = b16_in(&s, a->q, nq), k = b16_in(&s, a->k, nk), v = b16_in(&s, a->v, nk);
    const int y = b16_out(&s, a->y, nq);
    pt_status st = b16_open(&s, "attention");
    if (!st) {
        pt_attention_args c = *a;
        c.q = s.buf[q], c.k = s.buf[k], c.v = s.buf[v], c.y = s.buf[y];
        st = f(&c);
    }
    return b16_close(&s, st);
}

static pt_status attention_bwd_bf16(const pt_attention_args *a) {
    pt_attention_kernel f = (pt_attention_kernel)pt_kernel_find("attention_bwd", PT_DEV_CPU, PT_F32);
    if (!f) return pt_kernel_missing("attention_bwd", PT_DEV_CPU, PT_F32);
    const int64_t nq = a->B * a->T * a->H * a->D, nk = a->B * a->T * a->Hkv * a->D;
    b16_set s = {0};
    const int q = b16_in(&s, a->q, nq), k = b16_in(&s, a->k, nk), v = b16_in(&s, a->v, nk);
    const int y = b16_in(&s, a->y, nq), gy = b16_in(&s, a->gy, nq);
    const int dq = b16_out(&s, a->dq, nq), dk = b16_out(&s, a->dk, nk), dv = b16_out(&s, a->dv, nk);
    pt_status st = b16_open(&s, "attention_bwd");
    if (!st) {
        pt_attention_args c = *a;
        c.q = s.buf[q], c.k = s.buf[k], c.v = s.buf[v], c.y = s.buf[y], c.gy = s.buf[gy];
        c.dq = s.buf[dq], c.dk = s.buf[dk], c.dv = s.buf[dv];
        st = f(&c);
    }
    return b16_close(&s, st);
}

PT_REGISTER_KERNEL(matmul, PT_DEV_CPU, PT_BF16, matmul_bf16)
PT_REGISTER_KERNEL(linear_act, PT_DEV_CPU, PT_BF16, linear_act_bf16)
PT_REGISTER_KERNEL(linear_act_bwd, PT_DEV_CPU, PT_BF16, linear_act_bwd_bf16)
PT_REGISTER_KERNEL(attention, PT_DEV_CPU, PT_BF16, attention_bf16)
PT_REGISTER_KERNEL(attention_bwd, PT_DEV_CPU, PT_BF16, attention_bwd_bf16)
