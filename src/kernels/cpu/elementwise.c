/* cpu/elementwise.c — CPU kernels of the elementwise family (signatures in pt_elementwise.h).
 *
 * Layout: the front collapses contiguous dims, so a kernel sees `rows` of the last dim; each row's
 * input offsets come from the outer index, the inner loop runs over the last dim with its strides
 * (1 or 0 in the common cases, which have their own loops with constant strides so that the compiler
 * vectorises them; the values are the same as the strided loop's). Rows are split over OpenMP threads
 * when the tensor is large. Plain loops: this file is the oracle the CUDA kernels are tested against.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h> /* malloc, free */

#include "../pt_dispatch.h"
#include "../pt_elementwise.h"
#include "../pt_ops.h"

#define PT_OMP_MIN 32768

/* offset of row r (all dims but the last) for strides s */
static inline int64_t pt_row_off(const pt_ew_args *g, const int64_t *s, int64_t r) {
    int64_t off = 0;
    for (int d = g->ndim - 2; d >= 0; d--) {
        off += (r % g->shape[d]) * s[d];
        r /= g->shape[d];
    }
    return off;
}

#define PT_ROWS(g) ((g)->n / (g)->shape[(g)->ndim - 1])
#define PT_INNER(g) ((g)->shape[(g)->ndim - 1])

/* A long last dim (the whole tensor, when the front has collapsed a contiguous operation to one
 * row) is cut into pieces of PT_PIECE elements so that the OpenMP threads share it: the parallel
 * loops run over (row, piece) tasks. Each element is still computed once by the same expression. */
#define PT_PIECE 16384
#define PT_PIECES(inner) ((inner) > PT_PIECE ? ((inner) + PT_PIECE - 1) / PT_PIECE : 1)

/* ---- binary ---- */
#define BIN_LOOP(TO, TI, EXPR)                                                              \
    do {                                                                                    \
        const TI *A = g->a, *B = g->b;                                                      \
        TO *O = g->out;                                                                     \
        int64_t rows = PT_ROWS(g), inner0 = PT_INNER(g), np = PT_PIECES(inner0);            \
        int64_t la = g->sa[g->ndim - 1], lb = g->sb[g->ndim - 1];                           \
        _Pragma("omp parallel for if (g->n > PT_OMP_MIN)")                                  \
        for (int64_t task = 0; task < rows * np; task++) {                                  \
            const int64_t r = task / np, i0 = (task % np) * PT_PIECE;                       \
            const int64_t inner = inner0 - i0 < PT_PIECE || np == 1 ? inner0 - i0 : PT_PIECE; \
            const TI *pa = A + pt_row_off(g, g->sa, r) + i0 * la;                           \
            const TI *pb = B + pt_row_off(g, g->sb, r) + i0 * lb;                           \
            TO *po = O + r * inner0 + i0;                                                   \
            if (la == 1 && lb == 1) {                                                       \
                for (int64_t i = 0; i < inner; i++) {                                       \
                    TI x = pa[i], y = pb[i];                                                \
                    po[i] = (EXPR);                                                         \
                }                                                                           \
            } else if (la == 1 && lb == 0) {                                                \
                const TI y = pb[0];                                                         \
                for (int64_t i = 0; i < inner; i++) {                                       \
                    TI x = pa[i];                                                           \
                    po[i] = (EXPR);                                                         \
                }                                                                           \
            } else if (la == 0 && lb == 1) {                                                \
                const TI x = pa[0];                                                         \
                for (int64_t i = 0; i < inner; i++) {                                       \
                    TI y = pb[i];                                                           \
                    po[i] = (EXPR);                                                         \
                }                                                                           \
            } else {                                                                        \
                for (int64_t i = 0; i < inner; i++) {                                       \
                    TI x = pa[i * la], y = pb[i * lb];                                      \
                    po[i] = (EXPR);                                                         \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
    } while (0)

#define BIN_KERNEL_FLOAT(NAME, T, POW, FMAX, FMIN)                                          \
    static void NAME(const pt_ew_args *g) {                                                 \
        switch ((pt_binop)g->op) {                                                          \
        case PT_BIN_ADD: BIN_LOOP(T, T, x + y); break;                                      \
        case PT_BIN_SUB: BIN_LOOP(T, T, x - y); break;                                      \
        case PT_BIN_MUL: BIN_LOOP(T, T, x * y); break;                                      \
        case PT_BIN_DIV: BIN_LOOP(T, T, x / y); break;                                      \
        case PT_BIN_POW: BIN_LOOP(T, T, POW(x, y)); break;                                  \
        case PT_BIN_MAX: BIN_LOOP(T, T, (x != x || x >= y) ? x : y); break;                 \
        case PT_BIN_MIN: BIN_LOOP(T, T, (x != x || x <= y) ? x : y); break;                 \
        case PT_BIN_EQ: BIN_LOOP(uint8_t, T, x == y); break;                                \
        case PT_BIN_NE: BIN_LOOP(uint8_t, T, x != y); break;                                \
        case PT_BIN_LT: BIN_LOOP(uint8_t, T, x < y); break;                                 \
        case PT_BIN_LE: BIN_LOOP(uint8_t, T, x <= y); break;                                \
        case PT_BIN_GT: BIN_LOOP(uint8_t, T, x > y); break;                                 \
        case PT_BIN_GE: BIN_LOOP(uint8_t, T, x >= y); break;                                \
        default: break;                                                                     \
        }                                                                                   \
    }
BIN_KERNEL_FLOAT(bin_f32, float, powf, fmaxf, fminf)
BIN_KERNEL_FLOAT(bin_f64, double, pow, fmax, fmin)

static inline int64_t pt_ipow(int64_t b, int64_t e) {
    if (e < 0) return b == 1 ? 1 : (b == -1 ? ((e & 1) ? -1 : 1) : 0);
    uint64_t r = 1, x = (uint64_t)b;
    while (e) {
        if (e & 1) r *= x;
        x *= x;
        e >>= 1;
    }
    return (int64_t)r;
}
/* integer division by zero is defined here as 0 (the front reports it as an error first) */
#define BIN_KERNEL_INT(NAME, T, UT)                                                         \
    static void NAME(const pt_ew_args *g) {                                                 \
        switch ((pt_binop)g->op) {                                                          \
        case PT_BIN_ADD: BIN_LOOP(T, T, (T)((UT)x + (UT)y)); break;                         \
        case PT_BIN_SUB: BIN_LOOP(T, T, (T)((UT)x - (UT)y)); break;                         \
        case PT_BIN_MUL: BIN_LOOP(T, T, (T)((UT)x * (UT)y)); break;                         \
        case PT_BIN_DIV: BIN_LOOP(T, T, y == 0 ? 0 : (y == -1 ? (T)(0 - (UT)x) : x / y)); break; \
        case PT_BIN_POW: BIN_LOOP(T, T, (T)pt_ipow(x, y)); break;                           \
        case PT_BIN_MAX: BIN_LOOP(T, T, x >= y ? x : y); break;                             \
        case PT_BIN_MIN: BIN_LOOP(T, T, x <= y ? x : y); break;                             \
        case PT_BIN_EQ: BIN_LOOP(uint8_t, T, x == y); break;                                \
        case PT_BIN_NE: BIN_LOOP(uint8_t, T, x != y); break;                                \
        case PT_BIN_LT: BIN_LOOP(uint8_t, T, x < y); break;                                 \
        case PT_BIN_LE: BIN_LOOP(uint8_t, T, x <= y); break;                                \
        case PT_BIN_GT: BIN_LOOP(uint8_t, T, x > y); break;                                 \
        case PT_BIN_GE: BIN_LOOP(uint8_t, T, x >= y); break;                                \
        default: break;                                                                     \
        }                                                                                   \
    }
BIN_KERNEL_INT(bin_i64, int64_t, uint64_t)
BIN_KERNEL_INT(bin_i32, int32_t, uint32_t)

PT_REGISTER_KERNEL(ew_binary, PT_DEV_CPU, PT_F32, bin_f32)
PT_REGISTER_KERNEL(ew_binary, PT_DEV_CPU, PT_F64, bin_f64)
PT_REGISTER_KERNEL(ew_binary, PT_DEV_CPU, PT_I64, bin_i64)
PT_REGISTER_KERNEL(ew_binary, PT_DEV_CPU, PT_I32, bin_i32)

/* ---- binary with a scalar: implemented as binary with b broadcast from a one-element buffer ---- */
#define BINS_KERNEL(NAME, T, BINK)                                                          \
    static void NAME(const pt_ew_args *g) {                                                 \
        pt_ew_args h = *g;                                                                  \
        T s = (T)g->s;                                                                      \
        for (int d = 0; d < h.ndim; d++) h.sb[d] = 0;                                       \
        if (g->scalar_first) {                                                              \
            for (int d = 0; d < h.ndim; d++) { h.sb[d] = g->sa[d]; h.sa[d] = 0; }           \
            h.b = g->a;                                                                     \
            h.a = &s;                                                                       \
        } else {                                                                            \
            h.b = &s;                                                                       \
        }                                                                                   \
        BINK(&h);                                                                           \
    }
BINS_KERNEL(bins_f32, float, bin_f32)
BINS_KERNEL(bins_f64, double, bin_f64)
BINS_KERNEL(bins_i64, int64_t, bin_i64)
BINS_KERNEL(bins_i32, int32_t, bin_i32)
PT_REGISTER_KERNEL(ew_binary_s, PT_DEV_CPU, PT_F32, bins_f32)
PT_REGISTER_KERNEL(ew_binary_s, PT_DEV_CPU, PT_F64, bins_f64)
PT_REGISTER_KERNEL(ew_binary_s, PT_DEV_CPU, PT_I64, bins_i64)
PT_REGISTER_KERNEL(ew_binary_s, PT_DEV_CPU, PT_I32, bins_i32)

/* ---- unary ---- */
#define UN_LOOP(T, EXPR)                                                                    \
    do {                                                                                    \
        const T *A = g->a;                                                                  \
        T *O = g->out;                                                                      \
        int64_t rows = PT_ROWS(g), inner0 = PT_INNER(g), la = g->sa[g->ndim - 1];           \
        int64_t np = PT_PIECES(inner0);                                                     \
        _Pragma("omp parallel for if (g->n > PT_OMP_MIN)")                                  \
        for (int64_t task = 0; task < rows * np; task++) {                                  \
            const int64_t r = task / np, i0 = (task % np) * PT_PIECE;                       \
            const int64_t inner = inner0 - i0 < PT_PIECE || np == 1 ? inner0 - i0 : PT_PIECE; \
            const T *pa = A + pt_row_off(g, g->sa, r) + i0 * la;                            \
            T *po = O + r * inner0 + i0;                                                    \
            if (la == 1) {                                                                  \
                for (int64_t i = 0; i < inner; i++) {                                      \
                    T x = pa[i];                                                            \
                    po[i] = (EXPR);                                                         \
                }                                                                           \
            } else {                                                                        \
                for (int64_t i = 0; i < inner; i++) {                                       \
                    T x = pa[i * la];                                                       \
                    po[i] = (EXPR);                                                         \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
    } while (0)

#define UN_KERNEL(NAME, T, SFX)                                                             \
    static void NAME(const pt_ew_args *g) {                                                 \
        switch ((pt_unop)g->op) {                                                           \
        case PT_UN_NEG: UN_LOOP(T, -x); break;                                              \
        case PT_UN_EXP: UN_LOOP(T, exp##SFX(x)); break;                                     \
        case PT_UN_LOG: UN_LOOP(T, log##SFX(x)); break;                                     \
        case PT_UN_TANH: UN_LOOP(T, tanh##SFX(x)); break;                                   \
        case PT_UN_SIGMOID: UN_LOOP(T, x >= 0 ? (T)1 / ((T)1 + exp##SFX(-x))                \
                                              : exp##SFX(x) / ((T)1 + exp##SFX(x))); break; \
        case PT_UN_RELU: UN_LOOP(T, x > 0 ? x : (T)0); break;                               \
        case PT_UN_SQRT: UN_LOOP(T, sqrt##SFX(x)); break;                                   \
        case PT_UN_RSQRT: UN_LOOP(T, (T)1 / sqrt##SFX(x)); break;                           \
        case PT_UN_ABS: UN_LOOP(T, fabs##SFX(x)); break;                                    \
        case PT_UN_SIGN: UN_LOOP(T, (T)((x > 0) - (x < 0))); break;                         \
        case PT_UN_ROUND: UN_LOOP(T, nearbyint##SFX(x)); break;                             \
        case PT_UN_SIN: UN_LOOP(T, sin##SFX(x)); break;                                     \
        case PT_UN_COS: UN_LOOP(T, cos##SFX(x)); break;                                     \
        case PT_UN_SQUARE: UN_LOOP(T, x * x); break;                                        \
        case PT_UN_RECIPROCAL: UN_LOOP(T, (T)1 / x); break;                                 \
        default: break;                                                                     \
        }                                                                                   \
    }
UN_KERNEL(un_f32, float, f)
UN_KERNEL(un_f64, double, )
PT_REGISTER_KERNEL(ew_unary, PT_DEV_CPU, PT_F32, un_f32)
PT_REGISTER_KERNEL(ew_unary, PT_DEV_CPU, PT_F64, un_f64)

/* integer unary ops that make sense: neg, abs, sign, square */
#define UN_KERNEL_INT(NAME, T, UT)                                                          \
    static void NAME(const pt_ew_args *g) {                                                 \
        switch ((pt_unop)g->op) {                                                           \
        case PT_UN_NEG: UN_LOOP(T, (T)(0 - (UT)x)); break;                                  \
        case PT_UN_ABS: UN_LOOP(T, x < 0 ? (T)(0 - (UT)x) : x); break;                      \
        case PT_UN_SIGN: UN_LOOP(T, (T)((x > 0) - (x < 0))); break;                         \
        case PT_UN_SQUARE: UN_LOOP(T, (T)((UT)x * (UT)x)); break;                           \
        default: break;                                                                     \
        }                                                                                   \
    }
UN_KERNEL_INT(un_i64, int64_t, uint64_t)
UN_KERNEL_INT(un_i32, int32_t, uint32_t)
PT_REGISTER_KERNEL(ew_unary, PT_DEV_CPU, PT_I64, un_i64)
PT_REGISTER_KERNEL(ew_unary, PT_DEV_CPU, PT_I32, un_i32)

/* ---- unary backward: a = x, b = y = f(x), c = g; all contiguous, same shape ---- */
#define UNB_LOOP(T, EXPR)                                                                   \
    do {                                                                                    \
        const T *X = g->a, *Y = g->b, *G = g->c;                                            \
        T *O = g->out;                                                                      \
        (void)X; (void)Y;                                                                   \
        _Pragma("omp parallel for if (g->n > PT_OMP_MIN)")                                  \
        for (int64_t i = 0; i < g->n; i++) {                                                \
            T x = X ? X[i] : 0, y = Y ? Y[i] : 0, gr = G[i];                                \
            (void)x; (void)y; (void)gr;                                                     \
            O[i] = (EXPR);                                                                  \
        }                                                                                   \
    } while (0)

#define UNB_KERNEL(NAME, T, SFX)                                                            \
    static void NAME(const pt_ew_args *g) {                                                 \
        switch ((pt_unop)g->op) {                                                           \
        case PT_UN_NEG: UNB_LOOP(T, -gr); break;                                            \
        case PT_UN_EXP: UNB_LOOP(T, gr * y); break;                                         \
        case PT_UN_LOG: UNB_LOOP(T, gr / x); break;                                         \
        case PT_UN_TANH: UNB_LOOP(T, gr * ((T)1 - y * y)); break;                           \
        case PT_UN_SIGMOID: UNB_LOOP(T, gr * y * ((T)1 - y)); break;                        \
        case PT_UN_RELU: UNB_LOOP(T, x > 0 ? gr : (T)0); break;                             \
        case PT_UN_SQRT: UNB_LOOP(T, gr * (T)0.5 / y); break;                               \
        case PT_UN_RSQRT: UNB_LOOP(T, gr * (T)-0.5 * y * y * y); break;                     \
        case PT_UN_ABS: UNB_LOOP(T, gr * (T)((x > 0) - (x < 0))); break;                    \
        case PT_UN_SIGN: UNB_LOOP(T, (T)0); break;                                          \
        case PT_UN_ROUND: UNB_LOOP(T, (T)0); break;                                         \
        case PT_UN_SIN: UNB_LOOP(T, gr * cos##SFX(x)); break;                               \
        case PT_UN_COS: UNB_LOOP(T, -gr * sin##SFX(x)); break;                              \
        case PT_UN_SQUARE: UNB_LOOP(T, (T)2 * x * gr); break;                               \
        case PT_UN_RECIPROCAL: UNB_LOOP(T, -gr * y * y); break;                             \
        default: break;                                                                     \
        }                                                                                   \
    }
UNB_KERNEL(unb_f32, float, f)
UNB_KERNEL(unb_f64, double, )
PT_REGISTER_KERNEL(ew_unary_bwd, PT_DEV_CPU, PT_F32, unb_f32)
PT_REGISTER_KERNEL(ew_unary_bwd, PT_DEV_CPU, PT_F64, unb_f64)

/* ---- leaky relu, clamp (forward strided a; backward contiguous a, c) ---- */
#define LEAKY(NAME, T)                                                                      \
    static void NAME(const pt_ew_args *g) {                                                 \
        T s = (T)g->s;                                                                      \
        UN_LOOP(T, x > 0 ? x : s * x);                                                      \
    }                                                                                       \
    static void NAME##_bwd(const pt_ew_args *g) {                                           \
        T s = (T)g->s;                                                                      \
        UNB_LOOP(T, x > 0 ? gr : s * gr);                                                   \
    }
LEAKY(leaky_f32, float)
LEAKY(leaky_f64, double)
PT_REGISTER_KERNEL(ew_leaky, PT_DEV_CPU, PT_F32, leaky_f32)
PT_REGISTER_KERNEL(ew_leaky, PT_DEV_CPU, PT_F64, leaky_f64)
PT_REGISTER_KERNEL(ew_leaky_bwd, PT_DEV_CPU, PT_F32, leaky_f32_bwd)
PT_REGISTER_KERNEL(ew_leaky_bwd, PT_DEV_CPU, PT_F64, leaky_f64_bwd)

#define CLAMP(NAME, T)                                                                      \
    static void NAME(const pt_ew_args *g) {                                                 \
        T lo = (T)g->s, hi = (T)g->s2;                                                      \
        UN_LOOP(T, x < lo ? lo : (x > hi ? hi : x));                                        \
    }                                                                                       \
    static void NAME##_bwd(const pt_ew_args *g) {                                           \
        T lo = (T)g->s, hi = (T)g->s2;                                                      \
        UNB_LOOP(T, (x >= lo && x <= hi) ? gr : (T)0);                                      \
    }
CLAMP(clamp_f32, float)
CLAMP(clamp_f64, double)
PT_REGISTER_KERNEL(ew_clamp, PT_DEV_CPU, PT_F32, clamp_f32)
PT_REGISTER_KERNEL(ew_clamp, PT_DEV_CPU, PT_F64, clamp_f64)
PT_REGISTER_KERNEL(ew_clamp_bwd, PT_DEV_CPU, PT_F32, clamp_f32_bwd)
PT_REGISTER_KERNEL(ew_clamp_bwd, PT_DEV_CPU, PT_F64, clamp_f64_bwd)

/* ---- where: c is the condition (any dtype; the front converts it to u8) ---- */
#define WHERE(NAME, T)                                                                      \
    static void NAME(const pt_ew_args *g) {                                                 \
        const T *A = g->a, *B = g->b;                                                       \
        const uint8_t *C = g->c;                                                            \
        T *O = g->out;                                                                      \
        int64_t rows = PT_ROWS(g), inner = PT_INNER(g);                                     \
        int64_t la = g->sa[g->ndim - 1], lb = g->sb[g->ndim - 1], lc = g->sc[g->ndim - 1];  \
        _Pragma("omp parallel for if (g->n > PT_OMP_MIN)")                                  \
        for (int64_t r = 0; r < rows; r++) {                                                \
            const T *pa = A + pt_row_off(g, g->sa, r), *pb = B + pt_row_off(g, g->sb, r);   \
            const uint8_t *pc = C + pt_row_off(g, g->sc, r);                                \
            for (int64_t i = 0; i < inner; i++)                                             \
                O[r * inner + i] = pc[i * lc] ? pa[i * la] : pb[i * lb];                    \
        }                                                                                   \
    }
WHERE(where_f32, float)
WHERE(where_f64, double)
WHERE(where_i64, int64_t)
WHERE(where_i32, int32_t)
PT_REGISTER_KERNEL(ew_where, PT_DEV_CPU, PT_F32, where_f32)
PT_REGISTER_KERNEL(ew_where, PT_DEV_CPU, PT_F64, where_f64)
PT_REGISTER_KERNEL(ew_where, PT_DEV_CPU, PT_I64, where_i64)
PT_REGISTER_KERNEL(ew_where, PT_DEV_CPU, PT_I32, where_i32)

/* ---- sum_to: out[reduced index] += a[i]; a contiguous with shape ashape; out strides sa ----
 * The sums run in double for both f32 and f64 (f32 outputs get an f64 accumulator buffer, rounded
 * once at the end: a parity review found the gradients of single-number parameters, which sum
 * B·T terms, 2e-5 off when accumulated in f32). a is walked row by row over its last dim: a row whose
 * last dim is kept adds into a run of outputs (vectorised), a row whose last dim is reduced is summed
 * in a register first. One thread, in a's order, so the result never depends on the thread count. */
static void pt_sumto_acc(const pt_ew_args *g, const float *Af, const double *Ad, double *acc) {
    int nd = g->andim;
    int64_t inner = nd ? g->ashape[nd - 1] : 1, li = nd ? g->sa[nd - 1] : 0;
    int64_t rows = inner ? pt_shape_numel(g->andim, g->ashape) / inner : 0;
    int64_t idx[PT_MAX_DIMS] = {0}, off = 0; /* output offset of the row start (dims 0..nd-2) */
    for (int64_t r = 0; r < rows; r++) {
        double *o = acc + off;
        if (Af) {
            const float *pa = Af + r * inner;
            if (li == 0) {
                double t = 0;
                for (int64_t i = 0; i < inner; i++) t += pa[i];
                o[0] += t;
            } else {
                for (int64_t i = 0; i < inner; i++) o[i * li] += pa[i];
            }
        } else {
            const double *pa = Ad + r * inner;
            if (li == 0) {
                double t = 0;
                for (int64_t i = 0; i < inner; i++) t += pa[i];
                o[0] += t;
            } else {
                for (int64_t i = 0; i < inner; i++) o[i * li] += pa[i];
            }
        }
        for (int d = nd - 2; d >= 0; d--) {
            idx[d]++;
            off += g->sa[d];
            if (idx[d] < g->ashape[d]) break;
            off -= g->sa[d] * g->ashape[d];
            idx[d] = 0;
        }
    }
}

/* the output's extent in elements: 1 + the largest offset the strides reach */
static int64_t pt_sumto_extent(const pt_ew_args *g) {
    int64_t e = 1;
    for (int d = 0; d < g->andim; d++) e += (g->ashape[d] - 1) * g->sa[d];
    return e;
}

static void sumto_f32(const pt_ew_args *g) {
    int64_t m = pt_sumto_extent(g);
    double small[256];
    double *acc = m <= 256 ? small : malloc(sizeof(double) * (size_t)m);
    float *O = g->out;
    if (!acc) { /* out of memory for the buffer: accumulate in f32 (the old behaviour) */
        const float *A = g->a;
        int64_t n = pt_shape_numel(g->andim, g->ashape), idx[PT_MAX_DIMS] = {0}, off = 0;
        for (int64_t i = 0; i < n; i++) {
            O[off] += A[i];
            for (int d = g->andim - 1; d >= 0; d--) {
                idx[d]++;
                off += g->sa[d];
                if (idx[d] < g->ashape[d]) break;
                off -= g->sa[d] * g->ashape[d];
                idx[d] = 0;
            }
        }
        return;
    }
    for (int64_t j = 0; j < m; j++) acc[j] = O[j];
    pt_sumto_acc(g, g->a, NULL, acc);
    for (int64_t j = 0; j < m; j++) O[j] = (float)acc[j];
    if (acc != small) free(acc);
}

static void sumto_f64(const pt_ew_args *g) {
    pt_sumto_acc(g, NULL, g->a, g->out);
}
PT_REGISTER_KERNEL(ew_sum_to, PT_DEV_CPU, PT_F32, sumto_f32)
PT_REGISTER_KERNEL(ew_sum_to, PT_DEV_CPU, PT_F64, sumto_f64)

/* ---- axpy in place: out (contiguous, shape) += s * b (strided) ---- */
#define AXPY(NAME, T)                                                                       \
    static void NAME(const pt_ew_args *g) {                                                 \
        const T *B = g->b;                                                                  \
        T *O = g->out;                                                                      \
        T s = (T)g->s;                                                                      \
        int64_t rows = PT_ROWS(g), inner0 = PT_INNER(g), lb = g->sb[g->ndim - 1];           \
        int64_t np = PT_PIECES(inner0);                                                     \
        _Pragma("omp parallel for if (g->n > PT_OMP_MIN)")                                  \
        for (int64_t task = 0; task < rows * np; task++) {                                  \
            const int64_t r = task / np, i0 = (task % np) * PT_PIECE;                       \
            const int64_t inner = inner0 - i0 < PT_PIECE || np == 1 ? inner0 - i0 : PT_PIECE; \
            const T *pb = B + pt_row_off(g, g->sb, r) + i0 * lb;                            \
            T *po = O + r * inner0 + i0;                                                    \
            if (lb == 1)                                                                    \
                for (int64_t i = 0; i < inner; i++) po[i] += s * pb[i];                     \
            else                                                                            \
                for (int64_t i = 0; i < inner; i++) po[i] += s * pb[i * lb];                \
        }                                                                                   \
    }
AXPY(axpy_f32, float)
AXPY(axpy_f64, double)
PT_REGISTER_KERNEL(ew_axpy, PT_DEV_CPU, PT_F32, axpy_f32)
PT_REGISTER_KERNEL(ew_axpy, PT_DEV_CPU, PT_F64, axpy_f64)
