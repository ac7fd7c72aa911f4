/* pt_optim.h — optimizer update kernels: AdamW/Adam, SGD with momentum, Muon (momentum, Newton–Schulz
 * orthogonalisation, decoupled weight decay, bf16-rounded updates), global-norm gradient clipping,
 * EMA and SWA accumulators. All updates are in place and outside autograd.
 *
 * Fronts: src/kernels/optim.c (checks, scratch allocation, dispatch). CPU kernels:
 * src/kernels/cpu/optim.c. Lua: module proteus._optim (src/bindings/optim.c) and the library
 * lua/lib/proteus/optim.lua. Tests: tests/c/test_optim.c (exact small cases),
 * tests/lua/test_optim.lua (10 steps of each optimizer against tests/reference/optim_ref.py, PyTorch),
 * tests/lua/test_optim_multi.lua (the multi-tensor path against the per-tensor one, bitwise).
 *
 * Each update exists per tensor (pt_adamw_step, ...) and over a list of tensors (pt_adamw_multi, ...):
 * the list fronts read their step scalars from a small f64 tensor on the device (filled by
 * pt_*_scalars on the host, copied in before the launch), which is what a CUDA graph replay needs.
 *
 * Numerics follow PyTorch's single-tensor CPU code op by op, in f32 (scalars such as 1 − lr·wd are
 * computed in double and rounded to f32 once, as PyTorch does with a Python float):
 *   AdamW   p ← p·(1 − lr·wd);  m ← m·β1 + (1−β1)·g;  v ← v·β2 + (1−β2)·g·g;
 *           p ← p − (lr/(1−β1^t))·m / (√v/√(1−β2^t) + eps)          (t = step, 1-based; Adam: wd = 0)
 *   SGD     g ← g + wd·p;  buf ← g (first step) or μ·buf + (1−dampening)·g;
 *           g ← nesterov ? g + μ·buf : buf;  p ← p − lr·g            (PyTorch SGD, L2 weight decay)
 *   Muon    buf ← μ·buf + g;  u ← nesterov ? g + μ·buf : buf;  u ← NS(u);
 *           p ← p·(1 − lr·wd);  p ← p − lr·R(f·u)  or  p ← p − lr·f·R(u)   (R = bf16 rounding, see
 *           pt_muon_round; f = shape factor √max(1, rows/cols) unless given)
 *   NS      X = G (rounded to bf16 in bf16 mode); [MuonEq-R: transpose if rows > cols first, then each
 *           row ← row / max(‖row‖, 1e-7)]; X ← X/(‖X‖_F + 1e-7); transpose if rows > cols; per step k
 *           with (a,b,c) = coeffs[k] (or coeffs[0] for all steps when one tuple is given):
 *           A = X Xᵀ; B = b·A + c·A·A; X = a·X + B·X; transpose back.
 *           bf16 mode (the records' numerics, PT_NS_BF16): every intermediate that PyTorch would hold
 *           in a bf16 tensor is rounded to bf16 when it is produced — X after the cast, the norm and
 *           norm + eps, the normalised X, A, A·A, b·A, c·A·A, B, B·X, a·X and the new X. Matmuls take
 *           bf16 inputs and accumulate in f32 (cblas_sgemm). f32 mode (flags 0) rounds nothing and is
 *           what the tests compare with PyTorch to 1e-6.
 *   clip    norm = √Σ g² over all tensors (f64 accumulation); coef = max/(norm + 1e-6); when coef < 1
 *           every g ← g·coef (PyTorch clip_grad_norm_). A non-finite norm is returned and nothing is
 *           scaled (the caller decides; the training loop stops on NaN).
 *   EMA     ema ← ema + (1 − d)·(w − ema)
 *   SWA     sum ← sum + w (in sum's dtype: f32, or bf16 rounded per add as the PROTEUS record does);
 *           average: dst ← cast(sum / count) (division in sum's dtype)
 *
 * Kernel table entries (pt_dispatch.h), all keyed on the parameter/state dtype:
 *   "optim_adamw"      pt_adamw_args      f32
 *   "optim_sgd"        pt_sgd_args        f32
 *   "optim_momentum"   pt_momentum_args   f32   (Muon's momentum + Nesterov, writes u)
 *   "optim_ns"         pt_ns_args         f32   (in place on contiguous [batch, rows, cols])
 *   "optim_apply"      pt_apply_args      f32   (Muon's decoupled wd + update)
 *   "optim_sumsq"      pt_sumsq_args      f32, f64 (Σ x² in double)
 *   "optim_scale"      pt_scale_args      f32, f64 (x ← x·s)
 *   "optim_ema"        pt_ema_args        f32
 *   "optim_swa_add"    pt_swa_args        f32, bf16
 *   "optim_swa_avg"    pt_swa_args        f32, bf16 (out = sum / count, same dtype as sum)
 * Multi-tensor ("foreach") entries, pt_mt_args (one launch per part of at most PT_MT_MAX tensors;
 * operand lists t[0..3] and scalar rows per op):
 *   "optim_adamw_multi"    f32       t = {p, g, m, v}, rows PT_ADAMW_NSCAL
 *   "optim_momentum_multi" f32       t = {g, buf, u}, rows PT_MUON_NSCAL (momentum); flags = nesterov
 *   "optim_apply_multi"    f32       t = {p, u}, rows PT_MUON_NSCAL (lr, wd, factor); flags = pt_muon_round
 *   "optim_ema_multi"      f32       t = {ema, w}, rows PT_EMA_NSCAL (decay)
 *   "optim_sumsq_multi"    f32, f64  t = {x}; sums[j] = Σ x² of tensor j (f64; work: PT_SUMSQ_WORK doubles)
 *   "optim_scale_multi"    f32, f64  t = {x}; scal = the global norm (one f64); x ← x·coef when clipping applies
 *   "optim_norm"           f64       pt_norm_args: *norm = √(Σ_j sums[j], summed in order)
 * A CUDA file adds the same names for PT_DEV_CUDA; every pointer is device memory then.
 */
#ifndef PT_OPTIM_H
#define PT_OPTIM_H

#include <stdint.h>

#include "../host/pt_tensor.h"

/* ---- kernel arguments ---- */
typedef struct {
    int64_t n;
    void *p;
    const void *g;
    void *m, *v;
    double decay;     /* 1 − lr·wd */
    double beta1, beta2;
    double step_size; /* lr / (1 − β1^t) */
    double bc2_sqrt;  /* √(1 − β2^t) */
    double eps;
    int maximize;
} pt_adamw_args;

typedef struct {
    int64_t n;
    void *p;
    const void *g;
    void *buf;        /* NULL when momentum == 0 */
    double lr, momentum, dampening, wd;
    int nesterov, first, maximize;
} pt_sgd_args;

typedef struct {
    int64_t n;
    const void *g;
    void *buf, *u;
    double momentum;
    int nesterov;
} pt_momentum_args;

#define PT_NS_BF16 1     /* round intermediates to bf16 as the records do */
#define PT_NS_ROW_NORM 2 /* MuonEq-R: row-normalise the (possibly transposed) matrix first */

typedef struct {
    int64_t batch, rows, cols;
    void *x;             /* [batch, rows, cols] contiguous, in place */
    void *work;          /* scratch of pt_ns_work_elems(slots, rows, cols) elements of x's dtype */
    int64_t slots;       /* matrices the scratch holds at once (1..batch): the CPU kernel loops one
                            matrix at a time (1 slot); the CUDA kernel runs `slots` matrices per pass
                            through strided-batched GEMMs (the fronts give it one slot per matrix) */
    int steps;
    const double *coeffs; /* ncoeffs tuples (a, b, c) */
    int ncoeffs;
    int flags;           /* PT_NS_* */
} pt_ns_args;
/* scratch layout (M = min(rows, cols), N = max): X [slots, M, N], A [slots, M, M], A2 [slots, M, M],
 * BX [slots, M, N], den [slots] */
int64_t pt_ns_work_elems(int64_t slots, int64_t rows, int64_t cols);

typedef enum {
    PT_MUON_ROUND_NONE = 0,   /* p ← p − lr·(f·u) in f32 */
    PT_MUON_ROUND_SCALED = 1, /* §2.3 baseline/PROTEUS: u ← bf16(f·u); p ← p − lr·u */
    PT_MUON_ROUND_UNIT = 2,   /* §4.3: u ← bf16(u); p ← p − (lr·f)·u */
} pt_muon_round;

typedef struct {
    int64_t n;
    void *p;
    const void *u;
    double lr, wd, factor;
    int round; /* pt_muon_round */
} pt_apply_args;

typedef struct {
    int64_t n;
    const void *x;
    double *out; /* host double */
} pt_sumsq_args;

typedef struct {
    int64_t n;
    void *x;
    double s;
} pt_scale_args;

typedef struct {
    int64_t n;
    void *ema;
    const void *w;
    double decay;
} pt_ema_args;

typedef struct {
    int64_t n;
    void *sum; /* swa_add: accumulator; swa_avg: source */
    const void *w; /* swa_add: the weights (same dtype as sum); unused by swa_avg */
    void *out;     /* swa_avg: destination (same dtype as sum) */
    double count;
} pt_swa_args;

/* ---- multi-tensor ("foreach") kernels ----
 * Step scalars live in rows of f64: the kernels read them at run time (from device memory on CUDA),
 * so a captured CUDA graph sees the values the host copied in before each replay. Tensor j of a
 * launch uses row scal + j·scal_stride (scal_stride 0: one row shared by every tensor). */
#define PT_MT_MAX 48         /* tensors per launch; fronts split longer lists */
#define PT_SUMSQ_PARTS 1024  /* most partial sums per tensor in the CUDA sum of squares */
#define PT_SUMSQ_WORK (PT_MT_MAX * PT_SUMSQ_PARTS) /* doubles of scratch per sumsq launch */

/* AdamW row: what pt_adamw_step computes from its arguments (pt_adamw_scalars fills it) */
enum { PT_ADAMW_DECAY, PT_ADAMW_BETA1, PT_ADAMW_BETA2, PT_ADAMW_STEP_SIZE, PT_ADAMW_BC2_SQRT, PT_ADAMW_EPS,
       PT_ADAMW_MAXIMIZE, PT_ADAMW_NSCAL };
/* Muon row (momentum and apply read the same row): factor = the shape factor already resolved */
enum { PT_MUON_MOMENTUM, PT_MUON_LR, PT_MUON_WD, PT_MUON_FACTOR, PT_MUON_NSCAL };
/* EMA row: the decay d of ema ← ema + (1 − d)(w − ema) */
#define PT_EMA_NSCAL 1

typedef struct {
    int n;                 /* tensors in this launch, 1..PT_MT_MAX */
    int64_t numel[PT_MT_MAX];
    void *t[4][PT_MT_MAX]; /* operand lists, see the kernel table above */
    const double *scal;    /* rows (scale_multi: the norm) */
    int64_t scal_stride;   /* doubles per row; 0: one shared row */
    int flags;             /* momentum: nesterov; apply: pt_muon_round */
    double max_norm;       /* scale_multi: the clip threshold (<= 0: never scale) */
    double *sums;          /* sumsq_multi: n sums out */
    double *work;          /* sumsq_multi: PT_SUMSQ_WORK doubles of scratch (unused by the CPU) */
} pt_mt_args;

typedef struct {
    const double *sums;
    int64_t n;
    double *norm;
} pt_norm_args;

typedef void (*pt_mt_kernel)(const pt_mt_args *a);
typedef void (*pt_norm_kernel)(const pt_norm_args *a);

typedef void (*pt_adamw_kernel)(const pt_adamw_args *a);
typedef void (*pt_sgd_kernel)(const pt_sgd_args *a);
typedef void (*pt_momentum_kernel)(const pt_momentum_args *a);
typedef void (*pt_ns_kernel)(const pt_ns_args *a);
typedef void (*pt_apply_kernel)(const pt_apply_args *a);
typedef void (*pt_sumsq_kernel)(const pt_sumsq_args *a);
typedef void (*pt_scale_kernel)(const pt_scale_args *a);
typedef void (*pt_ema_kernel)(const pt_ema_args *a);
typedef void (*pt_swa_kernel)(const pt_swa_args *a);

/* ---- coefficient sets ---- */
/* modded-nanogpt quintic, used for every step (§2.3): (3.4445, −4.7750, 2.0315) */
extern const double pt_ns5_coeffs[1][3];
/* Polar Express per-step tuples (§4.3); the records use the first 4 (PT_POLAR_EXPRESS_STEPS) */
#define PT_POLAR_EXPRESS_STEPS 4
extern const double pt_polar_express_coeffs[5][3];

/* ---- fronts (all in place, no autograd; param and state f32 and contiguous, same shape/device) ---- */

/* step = 1 on the first update (the count after incrementing, as PyTorch's state["step"]) */
pt_status pt_adamw_step(pt_tensor *p, pt_tensor *g, pt_tensor *m, pt_tensor *v, int64_t step, double lr,
                        double beta1, double beta2, double eps, double wd, int maximize);
/* buf may be NULL when momentum == 0; first = 1 on the first step (buf ← g) */
pt_status pt_sgd_step(pt_tensor *p, pt_tensor *g, pt_tensor *buf, int first, double lr, double momentum,
                      double dampening, double wd, int nesterov, int maximize);

/* out = NS(G) for G [rows, cols] or [n, rows, cols] (any float dtype; computed in f32 with the
 * bf16 roundings of `flags`); ncoeffs = 1 (one tuple for every step) or ncoeffs >= steps. */
pt_status pt_newton_schulz(pt_tensor **out, pt_tensor *G, int steps, const double (*coeffs)[3], int ncoeffs,
                           int flags);

typedef struct {
    double lr, momentum, wd;
    int nesterov;
    double factor;            /* <= 0: √max(1, rows/cols) */
    int ns_steps;
    const double (*coeffs)[3];
    int ncoeffs;
    int ns_flags;             /* PT_NS_* */
    int round;                /* pt_muon_round */
} pt_muon_opts;
/* p, g, buf: [rows, cols] or a bank [n, rows, cols]. */
pt_status pt_muon_step(pt_tensor *p, pt_tensor *g, pt_tensor *buf, const pt_muon_opts *o);

/* Global L2 norm of n gradients (f64), scaled in place when above max_norm (max_norm <= 0: only
 * measure). NULL entries are skipped. */
pt_status pt_clip_grad_norm(int n, pt_tensor *const *grads, double max_norm, double *total_norm);

pt_status pt_ema_update(pt_tensor *ema, pt_tensor *w, double decay);

/* ---- multi-tensor fronts ----
 * n tensors per list, all on one device; params and state f32 contiguous with matching shapes (grads
 * and EMA weights of another float dtype or layout are copied to f32 first). Errors name the list
 * position (#1 = first). `scal` is a contiguous f64 tensor on the tensors' device holding one row
 * (K doubles, shared) or n rows (n·K doubles). The updates are bitwise those of the single-tensor
 * fronts given the same scalars; nothing here reads the scalars on the host or synchronises. */

/* the AdamW row of pt_adamw_step's arguments (same checks and messages as pt_adamw_step) */
pt_status pt_adamw_scalars(double row[PT_ADAMW_NSCAL], int64_t step, double lr, double beta1, double beta2,
                           double eps, double wd, int maximize);
pt_status pt_adamw_multi(int n, pt_tensor *const *p, pt_tensor *const *g, pt_tensor *const *m,
                         pt_tensor *const *v, const pt_tensor *scal);

/* the Muon row: factor <= 0 resolves to √max(1, rows/cols) as pt_muon_step does */
pt_status pt_muon_scalars(double row[PT_MUON_NSCAL], double lr, double momentum, double wd, double factor,
                          int64_t rows, int64_t cols);
/* Muon over a list: momentum for all (one launch per part), Newton–Schulz, apply (one launch per
 * part). batched: same-shaped matrices (2-D params and the matrices of 3-D banks, in list order) go
 * through pt_newton_schulz's kernel as one bank [k, rows, cols]; 0: one NS run per param as
 * pt_muon_step. o supplies nesterov, ns_steps, coeffs, ncoeffs, ns_flags, round (its lr, momentum,
 * wd and factor are not used: those come from scal). */
pt_status pt_muon_multi(int n, pt_tensor *const *p, pt_tensor *const *g, pt_tensor *const *buf,
                        const pt_tensor *scal, const pt_muon_opts *o, int batched);

pt_status pt_ema_scalars(double row[PT_EMA_NSCAL], double decay);
pt_status pt_ema_multi(int n, pt_tensor *const *ema, pt_tensor *const *w, const pt_tensor *scal);

/* pt_clip_grad_norm without a host round trip: the norm goes to `norm` (an f64 tensor of one element
 * on the gradients' device), the coefficient max_norm/(norm + 1e-6) is formed on the device and the
 * gradients are scaled by kernels reading it (a non-finite norm or coef >= 1 scales nothing).
 * Gradients: f32 or f64 (all one dtype), contiguous, one device; NULL entries are skipped. Bitwise
 * the norm and gradients of pt_clip_grad_norm. */
pt_status pt_clip_grad_norm_dev(int n, pt_tensor *const *grads, double max_norm, pt_tensor *norm);
pt_status pt_swa_add(pt_tensor *sum, pt_tensor *w);
/* dst (any float dtype, same shape) ← sum / count computed in sum's dtype */
pt_status pt_swa_average(pt_tensor *dst, pt_tensor *sum, int64_t count);

#endif
