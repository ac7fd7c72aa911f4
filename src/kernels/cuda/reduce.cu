/* cuda/reduce.cu — CUDA kernels of the reduction family (signatures in pt_reduce.h; the CPU kernels in
 * src/kernels/cpu/reduce.c are the oracle).
 *
 * Layout: the front hands a contiguous input viewed as [O, N, I] (dimension letters of pt_reduce.h).
 * Every kernel here gives one thread block to one output column (o, i): its threads walk n in a
 * strided loop and combine in shared memory, in f64 for sums (as the CPU), so results agree with the
 * CPU within reassociation. MAX/MIN/ARGMAX keep the CPU's rules exactly: the first index wins ties and
 * the first NaN wins over everything.
 *   k_red<T>           "red"          (every pt_redop)
 *   k_red_scatter<T>   "red_scatter"  (one thread per output column)
 *   k_softmax<T>       "softmax"      (op 0 softmax, op 1 log_softmax)
 *   k_softmax_bwd<T>   "softmax_bwd"
 * dtypes: f32, f64. NOT YET RUN ON A GPU (no device was lent when this was written); the GPU suite
 * tests/gpu/test_reduce.lua compares every op with the CPU.
 */
#include <math.h>

#include "pt_cuda_common.cuh"

extern "C" {
#include "../pt_dispatch.h"
#include "../pt_reduce.h"
#include "pt_cuda_internal.h"
}

#define PT_RED_THREADS 256

/* block-wide sum of one double per thread (all threads receive the result) */
__device__ double pt_block_sum(double v, double *sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    double r = sh[0];
    __syncthreads();
    return r;
}

/* is (v, iv) a better extreme than (b, ib)? first NaN wins, then the strict order, then the lower index */
template <typename T>
__device__ __forceinline__ bool pt_better(T v, int64_t iv, T b, int64_t ib, bool mx) {
    bool vn = v != v, bn = b != b;
    if (vn || bn) return vn && (!bn || iv < ib);
    if (mx ? v > b : v < b) return true;
    if (v == b) return iv < ib;
    return false;
}

template <typename T>
__global__ void k_red(pt_reduce_args a) {
    __shared__ double sh[PT_RED_THREADS];
    __shared__ T shv[PT_RED_THREADS];
    __shared__ int64_t shi[PT_RED_THREADS];
    const int64_t N = a.n, I = a.inner;
    const int64_t col = blockIdx.x; /* o * I + i */
    const int64_t o = col / I, i = col % I;
    const T *x = (const T *)a.x + o * N * I + i;
    T *y = (T *)a.out;
    const int op = a.op;
    if (op == PT_RED_MAX || op == PT_RED_MIN || op == PT_RED_ARGMAX) {
        bool mx = op != PT_RED_MIN;
        T best = 0;
        int64_t bi = -1;
        for (int64_t k = threadIdx.x; k < N; k += blockDim.x) {
            T v = x[k * I];
            if (bi < 0 || pt_better(v, k, best, bi, mx)) {
                best = v;
                bi = k;
            }
        }
        shv[threadIdx.x] = best;
        shi[threadIdx.x] = bi;
        __syncthreads();
        for (int s = blockDim.x / 2; s > 0; s >>= 1) {
            if ((int)threadIdx.x < s) {
                int64_t j = shi[threadIdx.x + s];
                if (j >= 0 && (shi[threadIdx.x] < 0 ||
                               pt_better(shv[threadIdx.x + s], j, shv[threadIdx.x], shi[threadIdx.x], mx))) {
                    shv[threadIdx.x] = shv[threadIdx.x + s];
                    shi[threadIdx.x] = j;
                }
            }
            __syncthreads();
        }
        if (threadIdx.x == 0) {
            if (op != PT_RED_ARGMAX && y) y[col] = shv[0];
            if (a.idx) a.idx[col] = shi[0];
        }
        return;
    }
    double p = a.p;
    if (op == PT_RED_NORM && isinf(p)) { /* max/min of |x|, NaN wins */
        double acc = p > 0 ? 0.0 : INFINITY;
        for (int64_t k = threadIdx.x; k < N; k += blockDim.x) {
            double v = fabs((double)x[k * I]);
            if (p > 0) acc = (v > acc || v != v) ? v : acc;
            else acc = (v < acc || v != v) ? v : acc;
        }
        sh[threadIdx.x] = acc;
        __syncthreads();
        for (int s = blockDim.x / 2; s > 0; s >>= 1) {
            if ((int)threadIdx.x < s) {
                double u = sh[threadIdx.x + s], w = sh[threadIdx.x];
                if (p > 0) sh[threadIdx.x] = (u > w || u != u) && w == w ? u : w;
                else sh[threadIdx.x] = (u < w || u != u) && w == w ? u : w;
            }
            __syncthreads();
        }
        if (threadIdx.x == 0) y[col] = (T)sh[0];
        return;
    }
    double acc = 0;
    for (int64_t k = threadIdx.x; k < N; k += blockDim.x) {
        double v = (double)x[k * I];
        if (op == PT_RED_NORM) {
            v = fabs(v);
            if (p == 2) acc += v * v;
            else if (p == 1) acc += v;
            else if (p == 0) acc += v != 0;
            else acc += pow(v, p);
        } else {
            acc += v;
        }
    }
    double total = pt_block_sum(acc, sh);
    if (op == PT_RED_VAR || op == PT_RED_STD) {
        double mean = total / (double)N, sq = 0;
        for (int64_t k = threadIdx.x; k < N; k += blockDim.x) {
            double d = (double)x[k * I] - mean;
            sq += d * d;
        }
        double ss = pt_block_sum(sq, sh);
        if (threadIdx.x == 0) {
            double div = (double)N - a.correction;
            if (div < 0) div = 0;
            double v = ss / div;
            y[col] = (T)(op == PT_RED_STD ? sqrt(v) : v);
        }
        return;
    }
    if (threadIdx.x == 0) {
        double r = total;
        if (op == PT_RED_MEAN) r = total / (double)N;
        else if (op == PT_RED_NORM) {
            if (p == 2) r = sqrt(r);
            else if (p != 1 && p != 0) r = pow(r, 1.0 / p);
        }
        y[col] = (T)r;
    }
}

template <typename T>
__global__ void k_red_scatter(pt_reduce_args a, int64_t ncols) {
    int64_t col = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (col >= ncols) return;
    const int64_t N = a.n, I = a.inner, o = col / I, i = col % I;
    ((T *)a.out)[(o * N + a.gidx[col]) * I + i] = ((const T *)a.g)[col];
}

template <typename T>
__global__ void k_softmax(pt_reduce_args a) {
    __shared__ double sh[PT_RED_THREADS];
    __shared__ T shm[PT_RED_THREADS];
    const int64_t N = a.n, I = a.inner, col = blockIdx.x, o = col / I, i = col % I;
    const T *x = (const T *)a.x + o * N * I + i;
    T *y = (T *)a.out + o * N * I + i;
    const bool lg = a.op == 1;
    T m = -INFINITY;
    for (int64_t k = threadIdx.x; k < N; k += blockDim.x) {
        T v = x[k * I];
        m = (v > m || v != v) ? v : m;
    }
    shm[threadIdx.x] = m;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) {
            T u = shm[threadIdx.x + s], w = shm[threadIdx.x];
            shm[threadIdx.x] = (u > w || u != u) && w == w ? u : w;
        }
        __syncthreads();
    }
    m = shm[0];
    if (isinf((double)m)) m = 0; /* all -inf row: keep exp(x - m) defined; NaN rows stay NaN */
    double s = 0;
    for (int64_t k = threadIdx.x; k < N; k += blockDim.x) {
        T e = pt_exp((T)(x[k * I] - m));
        if (!lg) y[k * I] = e;
        s += (double)e;
    }
    double sum = pt_block_sum(s, sh);
    if (lg) {
        double ls = log(sum);
        for (int64_t k = threadIdx.x; k < N; k += blockDim.x) y[k * I] = (T)((double)(x[k * I] - m) - ls);
    } else {
        double inv = 1.0 / sum;
        for (int64_t k = threadIdx.x; k < N; k += blockDim.x) y[k * I] = (T)(y[k * I] * inv);
    }
}

template <typename T>
__global__ void k_softmax_bwd(pt_reduce_args a) {
    __shared__ double sh[PT_RED_THREADS];
    const int64_t N = a.n, I = a.inner, col = blockIdx.x, o = col / I, i = col % I;
    const int64_t base = o * N * I + i;
    const T *y = (const T *)a.y + base, *g = (const T *)a.g + base;
    T *dx = (T *)a.out + base;
    const bool lg = a.op == 1;
    double s = 0;
    for (int64_t k = threadIdx.x; k < N; k += blockDim.x)
        s += lg ? (double)g[k * I] : (double)g[k * I] * (double)y[k * I];
    double sum = pt_block_sum(s, sh);
    for (int64_t k = threadIdx.x; k < N; k += blockDim.x) {
        if (lg) dx[k * I] = (T)((double)g[k * I] - exp((double)y[k * I]) * sum);
        else dx[k * I] = (T)((double)y[k * I] * ((double)g[k * I] - sum));
    }
}

/* ---------------------------------------------------------------- launchers */
template <typename T>
static void pt_red_launch(const pt_reduce_args *a) {
    int64_t cols = a->outer * a->inner;
    if (cols == 0) return;
    if (a->n == 0 && (a->op == PT_RED_MAX || a->op == PT_RED_MIN || a->op == PT_RED_ARGMAX)) {
        pt_cuda_set_pending("red: max/min over an empty dim");
        return;
    }
    if (cols > 0x7fffffffLL) {
        pt_cuda_set_pending("red: %lld output columns exceed the grid limit", (long long)cols);
        return;
    }
    k_red<T><<<(unsigned)cols, PT_RED_THREADS, 0, pt_cuda_compute_stream()>>>(*a);
    pt_cuda_launch_check("red");
}

template <typename T>
static void pt_red_scatter_launch(const pt_reduce_args *a) {
    int64_t cols = a->outer * a->inner;
    if (cols == 0) return;
    unsigned blocks = (unsigned)((cols + PT_RED_THREADS - 1) / PT_RED_THREADS);
    k_red_scatter<T><<<blocks, PT_RED_THREADS, 0, pt_cuda_compute_stream()>>>(*a, cols);
    pt_cuda_launch_check("red_scatter");
}

template <typename T>
static void pt_softmax_launch(const pt_reduce_args *a) {
    int64_t cols = a->outer * a->inner;
    if (cols == 0 || a->n == 0) return;
    k_softmax<T><<<(unsigned)cols, PT_RED_THREADS, 0, pt_cuda_compute_stream()>>>(*a);
    pt_cuda_launch_check("softmax");
}

template <typename T>
static void pt_softmax_bwd_launch(const pt_reduce_args *a) {
    int64_t cols = a->outer * a->inner;
    if (cols == 0 || a->n == 0) return;
    k_softmax_bwd<T><<<(unsigned)cols, PT_RED_THREADS, 0, pt_cuda_compute_stream()>>>(*a);
    pt_cuda_launch_check("softmax_bwd");
}

#define PT_DEFINE_RED(SFX, T, DT)                                                               \
    static void cu_red_##SFX(const pt_reduce_args *a) { pt_red_launch<T>(a); }                 \
    static void cu_red_scatter_##SFX(const pt_reduce_args *a) { pt_red_scatter_launch<T>(a); } \
    static void cu_softmax_##SFX(const pt_reduce_args *a) { pt_softmax_launch<T>(a); }         \
    static void cu_softmax_bwd_##SFX(const pt_reduce_args *a) { pt_softmax_bwd_launch<T>(a); } \
    PT_REGISTER_KERNEL(red, PT_DEV_CUDA, DT, cu_red_##SFX)                                     \
    PT_REGISTER_KERNEL(red_scatter, PT_DEV_CUDA, DT, cu_red_scatter_##SFX)                     \
    PT_REGISTER_KERNEL(softmax, PT_DEV_CUDA, DT, cu_softmax_##SFX)                             \
    PT_REGISTER_KERNEL(softmax_bwd, PT_DEV_CUDA, DT, cu_softmax_bwd_##SFX)

PT_DEFINE_RED(f32, float, PT_F32)
PT_DEFINE_RED(f64, double, PT_F64)
