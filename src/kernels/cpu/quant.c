/* cpu/quant.c — CPU kernels of the quantization family (signatures and formulas in pt_quant.h).
 *
 * Plain loops over contiguous f32 rows; rint() under the default rounding mode is torch.round's
 * round-half-to-even. The GPTQ block propagation W[:, rest] −= E · U[block, rest] is one cblas_sgemm.
 * This file is the oracle the CUDA kernels will be tested against.
 *
 * Dimension letters: R rows (output channels), C columns (input channels), K block width.
 * Tests: tests/c/test_quant.c, tests/lua/test_quant.lua.
 */
#include <cblas.h> /* cblas_sgemm (OpenBLAS) */
#include <math.h>  /* rintf */
#include <stdint.h>

#include "../pt_dispatch.h"
#include "../pt_quant.h"

static inline int8_t quant_one(float x, float s, int qmin, int qmax) {
    float r = rintf(x / s);
    if (r < (float)qmin) r = (float)qmin;
    if (r > (float)qmax) r = (float)qmax;
    return (int8_t)r;
}

static void quant_rows_f32(const pt_quant_rows_args *a) {
    const int64_t R = a->rows, C = a->cols;
#pragma omp parallel for if (R * C > 65536)
    for (int64_t r = 0; r < R; r++) {
        const float *w = a->w + r * C;
        int8_t *q = a->q + r * C;
        const float s = a->scale[r];
        const float c = a->clip ? a->clip[r] : INFINITY;
        for (int64_t j = 0; j < C; j++) {
            float x = w[j];
            if (x > c) x = c;
            if (x < -c) x = -c;
            q[j] = quant_one(x, s, a->qmin, a->qmax);
        }
        if (a->err && a->err_scale) {
            const double es = (double)a->err_scale[r];
            double e = 0;
            for (int64_t j = 0; j < C; j++) {
                double d = (double)w[j] - (double)q[j] * es;
                e += d * d;
            }
            a->err[r] = e;
        }
    }
}
PT_REGISTER_KERNEL(quant_rows, PT_DEV_CPU, PT_F32, quant_rows_f32)

static void quant_dequant_f32(const pt_quant_dequant_args *a) {
    const int64_t R = a->rows, C = a->cols;
#pragma omp parallel for if (R * C > 65536)
    for (int64_t r = 0; r < R; r++) {
        const float s = a->scale[r];
        for (int64_t j = 0; j < C; j++) a->out[r * C + j] = (float)a->q[r * C + j] * s;
    }
}
PT_REGISTER_KERNEL(quant_dequant, PT_DEV_CPU, PT_F32, quant_dequant_f32)

static void quant_gptq_sweep_f32(const pt_quant_gptq_args *a) {
    const int64_t R = a->rows, C = a->cols, K = a->block;
    float *W = a->w, *E = a->err;
    const float *U = a->u;
    for (int64_t i1 = 0; i1 < C; i1 += K) {
        const int64_t i2 = i1 + K < C ? i1 + K : C, nb = i2 - i1;
#pragma omp parallel for if (R * nb > 16384)
        for (int64_t r = 0; r < R; r++) {
            float *w = W + r * C;
            const float s = a->scale[r];
            for (int64_t j = 0; j < nb; j++) {
                const int64_t i = i1 + j;
                const int8_t qv = quant_one(w[i], s, a->qmin, a->qmax);
                a->q[r * C + i] = qv;
                const float e = (w[i] - (float)qv * s) / U[i * C + i];
                E[r * K + j] = e;
                for (int64_t k = i + 1; k < i2; k++) w[k] -= e * U[i * C + k];
            }
        }
        if (i2 < C) /* W[:, i2:] -= E[:, :nb] · U[i1:i2, i2:] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)R, (int)(C - i2), (int)nb, -1.0f, E, (int)K,
                        U + i1 * C + i2, (int)C, 1.0f, W + i2, (int)C);
    }
}
PT_REGISTER_KERNEL(quant_gptq_sweep, PT_DEV_CPU, PT_F32, quant_gptq_sweep_f32)
