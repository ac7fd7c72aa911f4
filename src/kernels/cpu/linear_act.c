/* cpu/linear_act.c — CPU kernels of the fused linear + squared activation (pt_linear_act.h), f32 and f64.
 * They compose kernels of the table, so the values are by construction those of the unfused
 * F.relu2(x:matmul(W:transpose(1, 2))) on the CPU:
 *   "linear_act"      the "matmul" kernel (OpenBLAS; x [m, k] row-major, w [n, k] passed transposed with
 *                     ldb = k: the call pt_matmul makes for x · Wᵀ), then the "act2" kernel (pt_fused.h)
 *                     over h.
 *   "linear_act_bwd"  the "act2_bwd" kernel with x = h: dh = g ⊙ act'(h).
 * The CPU gains nothing from the fusion (h is written and read once either way); the op exists so that
 * one model code path runs on every device. Tests: tests/c/test_linear_act.c.
 */
#include "../pt_dispatch.h"
#include "../pt_fused.h"
#include "../pt_linear_act.h"
#include "../pt_matmul.h"

static int la_act2_op(int act) { return act == PT_LINEAR_ACT_LEAKY_RELU2 ? PT_ACT2_LEAKY2 : PT_ACT2_RELU2; }

static pt_status la_forward(const pt_linear_act_args *a, pt_dtype dt) {
    pt_matmul_kernel mm = (pt_matmul_kernel)pt_kernel_find("matmul", PT_DEV_CPU, dt);
    if (!mm) return pt_kernel_missing("matmul", PT_DEV_CPU, dt);
    pt_act2_kernel act = (pt_act2_kernel)pt_kernel_find("act2", PT_DEV_CPU, dt);
    if (!act) return pt_kernel_missing("act2", PT_DEV_CPU, dt);
    /* W passed transposed (tb = 1, ldb = K); pt_matmul hands a Wᵀ view with a unit dim to BLAS
     * untransposed (matmul.c, pt_mm_layout): the same call here, so that even these shapes match the
     * unfused path bit for bit */
    int tb = 1;
    int64_t ldb = a->k;
    if (a->n == 1) tb = 0, ldb = 1;
    else if (a->k == 1) tb = 0, ldb = a->n;
    pt_matmul_2d(mm, a->m, a->n, a->k, a->x, 0, a->k, a->w, tb, ldb, a->h);
    pt_act2_args s = {.op = la_act2_op(a->act), .n = a->m, .c = a->n, .slope = a->slope, .x = a->h, .out = a->out};
    return act(&s);
}

static pt_status la_backward(const pt_linear_act_args *a, pt_dtype dt) {
    pt_act2_kernel bwd = (pt_act2_kernel)pt_kernel_find("act2_bwd", PT_DEV_CPU, dt);
    if (!bwd) return pt_kernel_missing("act2_bwd", PT_DEV_CPU, dt);
    pt_act2_args s = {.op = la_act2_op(a->act), .n = a->m, .c = a->n, .slope = a->slope, .x = a->h, .g = a->g,
                      .dx = a->dh};
    return bwd(&s);
}

static pt_status linear_act_f32(const pt_linear_act_args *a) { return la_forward(a, PT_F32); }
static pt_status linear_act_f64(const pt_linear_act_args *a) { return la_forward(a, PT_F64); }
static pt_status linear_act_bwd_f32(const pt_linear_act_args *a) { return la_backward(a, PT_F32); }
static pt_status linear_act_bwd_f64(const pt_linear_act_args *a) { return la_backward(a, PT_F64); }

PT_REGISTER_KERNEL(linear_act, PT_DEV_CPU, PT_F32, linear_act_f32)
PT_REGISTER_KERNEL(linear_act, PT_DEV_CPU, PT_F64, linear_act_f64)
PT_REGISTER_KERNEL(linear_act_bwd, PT_DEV_CPU, PT_F32, linear_act_bwd_f32)
PT_REGISTER_KERNEL(linear_act_bwd, PT_DEV_CPU, PT_F64, linear_act_bwd_f64)
