/* pt_linear_act.h — a linear layer fused with the squared ReLU of the MLP (proteus issue 11: "relu² into
 * the MLP GEMM epilogue"): the op front and its autograd node live in src/kernels/linear_act.c, the
 * kernels in src/kernels/cpu/linear_act.c (the "matmul" kernel, then the "act2" kernel of pt_fused.h)
 * and src/kernels/cuda/linear_act.cu (a bf16 tensor-core GEMM whose epilogue writes h and act(h), or
 * cuBLAS + an activation kernel).
 *
 *   pt_linear_act(&out, x, W, act, slope)
 *     h   = x · Wᵀ                     x [..., in], W [out, in]  ->  h [..., out]
 *     out = relu(h)²                   act = PT_LINEAR_ACT_RELU2 (slope unused)
 *         = leaky_relu(h, slope)²      act = PT_LINEAR_ACT_LEAKY_RELU2 (slope finite; 0.5 in #1539)
 *   = F.relu2(x:matmul(W:transpose(1, 2))) / F.leaky_relu2(..., slope), one autograd node. On the CPU
 *   (f32, f64) the forward and both gradients are bit for bit those of that composition for a
 *   contiguous x (same GEMM calls, same activation kernels; tests/c/test_linear_act.c; a strided x is
 *   copied first, where matmul would hand it to BLAS transposed: equal up to rounding). On CUDA: bf16,
 *   f32, f64.
 *
 * Saved for the backward: x, W (contiguous; shared with the caller when they already are) and h (in the
 * input dtype: bf16 on CUDA for bf16 inputs), not out. Backward: dh = g ⊙ act'(h) (kernel
 * "linear_act_bwd": relu² 2h·g for h > 0 else 0; leaky 2h·g for h > 0 else 2h·slope²·g, the
 * expressions of act2_bwd), then dx = dh · W and dW = dhᵀ · x through the "matmul" kernel with the calls
 * the unfused linear's backward makes. Not differentiable twice.
 *
 * CUDA path, PROTEUS_LINEAR_ACT (read at every call, forward only):
 *   unset, "" or "auto"  cuBLAS GEMM + activation kernel for every dtype. The fused kernel is not the
 *                        default until a GPU measurement (bench/gpu_linear_act.lua) says it wins;
 *                        nothing has been measured yet.
 *   "cublas"             the same, explicitly.
 *   "fused"              bf16 only: the fused kernel (K and out multiples of 64, rows <= 8,388,480,
 *                        16-byte aligned x and W); anything else is an error naming the dtype or shape.
 *
 * Dimension letters: M rows of x (all dims but the last), K = in, N = out.
 * Tests: tests/c/test_linear_act.c, tests/lua/test_linear_act.lua, tests/gpu/test_linear_act.lua,
 * ctest linear_act_emu (tests/emu/linear_act_emu.cpp: the CUDA GEMM on a CPU emulator).
 * Bench: bench/gpu_linear_act.lua.
 */
#ifndef PT_LINEAR_ACT_H
#define PT_LINEAR_ACT_H

#include "../host/pt_autograd.h"
#include "../host/pt_tensor.h"

typedef enum { PT_LINEAR_ACT_RELU2 = 0, PT_LINEAR_ACT_LEAKY_RELU2 = 1 } pt_linear_act_kind;

pt_status pt_linear_act(pt_tensor **out, pt_tensor *x, pt_tensor *W, pt_linear_act_kind act, double slope);

/* ---- kernels (registered in the pt_dispatch.h table): every pointer contiguous, at its view offset,
 * m, n, k > 0 and within a BLAS int (the front checks and handles empty shapes).
 * "linear_act":     x [m, k], w [n, k] -> h [m, n] = x · wᵀ, out [m, n] = act(h)
 * "linear_act_bwd": h [m, n], g [m, n] -> dh [m, n] = g ⊙ act'(h)
 * act is a pt_linear_act_kind; slope is read for PT_LINEAR_ACT_LEAKY_RELU2 only. ---- */
typedef struct {
    int act;
    double slope;
    int64_t m, n, k;
    const void *x, *w;
    void *h, *out;
    const void *g;
    void *dh;
} pt_linear_act_args;

typedef pt_status (*pt_linear_act_kernel)(const pt_linear_act_args *a);

#endif
