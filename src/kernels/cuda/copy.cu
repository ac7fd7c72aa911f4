/* cuda/copy.cu — device-to-device copies between views of any strides and dtypes (the tensor
 * layer's pt_cuda_copy_hook), and fill of a view with a scalar.
 *
 * Kernels:
 *   k_copy_same<W>   same dtype, W-byte elements (1, 2, 4, 8), strided on both sides
 *   k_copy_cast      any dtype pair: load to double, store with the CPU's conversion rules
 *                    (tensor.c pt_load/pt_store: bf16/f16 round to nearest even, integers saturate,
 *                    NaN -> 0 for integers, bool = value != 0)
 *   k_cast_fast<S,D> both sides contiguous, S and D among f32 f64 bf16 f16 (S != D), n < 2^31:
 *                    32-bit indices, 16-byte loads/stores when both pointers are 16-byte aligned
 *                    (a one-at-a-time tail otherwise), k_copy_cast's conversion (pt_cast_ld/st)
 *   k_fill<W>        writes one W-byte pattern (converted once on the host) into a strided view
 * Both sides contiguous with one dtype -> cudaMemcpyAsync on the compute stream. Dims that are contiguous for both sides
 * are merged first, so most views run with ndim 1 or 2. Overlapping source and destination in one
 * storage go through a temporary (the CPU uses memmove there).
 * Tests: tests/gpu/test_elementwise.lua (copy_* cases), tests/c/test_cuda_elementwise.c.
 */
#include <string.h>

#include "pt_cuda_common.cuh"

extern "C" {
#include "../pt_dispatch.h"
#include "pt_cuda.h"
#include "pt_cuda_internal.h"
}

struct pt_copy_geom {
    int ndim;
    int64_t shape[PT_MAX_DIMS];
    int64_t sd[PT_MAX_DIMS], ss[PT_MAX_DIMS];
    int64_t n;
};

/* Drops size-1 dims and merges dims contiguous for both stride sets; ndim >= 1 afterwards. */
static void pt_geom_collapse(pt_copy_geom *g) {
    int w = -1;
    for (int d = 0; d < g->ndim; d++) {
        if (g->shape[d] == 1) continue;
        if (w >= 0 && g->sd[w] == g->sd[d] * g->shape[d] && g->ss[w] == g->ss[d] * g->shape[d]) {
            g->shape[w] *= g->shape[d];
            g->sd[w] = g->sd[d];
            g->ss[w] = g->ss[d];
        } else {
            w++;
            g->shape[w] = g->shape[d];
            g->sd[w] = g->sd[d];
            g->ss[w] = g->ss[d];
        }
    }
    if (w < 0) {
        g->shape[0] = 1;
        g->sd[0] = g->ss[0] = 0;
        w = 0;
    }
    g->ndim = w + 1;
}

template <int W> struct pt_word;
template <> struct pt_word<1> { typedef uint8_t t; };
template <> struct pt_word<2> { typedef uint16_t t; };
template <> struct pt_word<4> { typedef uint32_t t; };
template <> struct pt_word<8> { typedef unsigned long long t; };

template <int W>
__global__ void k_copy_same(pt_copy_geom g, typename pt_word<W>::t *dst, const typename pt_word<W>::t *src) {
    PT_GRID_LOOP(i, g.n) {
        pt_offs o = pt_offsets<2>(i, g.ndim, g.shape, g.sd, g.ss, g.ss);
        dst[o.a] = src[o.b];
    }
}

/* the float dtypes' conversions through double, shared by k_copy_cast and k_cast_fast */
template <int DT> struct pt_cast_t;
template <> struct pt_cast_t<PT_F32> { typedef float t; };
template <> struct pt_cast_t<PT_F64> { typedef double t; };
template <> struct pt_cast_t<PT_BF16> { typedef uint16_t t; };
template <> struct pt_cast_t<PT_F16> { typedef uint16_t t; };

template <int DT>
__device__ __forceinline__ double pt_cast_ld(typename pt_cast_t<DT>::t v) {
    if constexpr (DT == PT_F32 || DT == PT_F64) return v;
    if constexpr (DT == PT_BF16) return pt_bf16_bits_to_f32(v);
    if constexpr (DT == PT_F16) return __half2float(__ushort_as_half(v));
}

template <int DT>
__device__ __forceinline__ typename pt_cast_t<DT>::t pt_cast_st(double v) {
    if constexpr (DT == PT_F32) return (float)v;
    if constexpr (DT == PT_F64) return v;
    if constexpr (DT == PT_BF16) return pt_f32_to_bf16_bits((float)v);
    if constexpr (DT == PT_F16) return pt_f32_to_f16_bits((float)v);
}

__device__ __forceinline__ double pt_load_any(const char *p, int64_t i, int dt) {
    switch (dt) {
    case PT_F32: return pt_cast_ld<PT_F32>(((const float *)p)[i]);
    case PT_F64: return pt_cast_ld<PT_F64>(((const double *)p)[i]);
    case PT_BF16: return pt_cast_ld<PT_BF16>(((const uint16_t *)p)[i]);
    case PT_F16: return pt_cast_ld<PT_F16>(((const uint16_t *)p)[i]);
    case PT_I64: return (double)((const long long *)p)[i];
    case PT_I32: return ((const int32_t *)p)[i];
    case PT_U16: return ((const uint16_t *)p)[i];
    case PT_I8: return ((const int8_t *)p)[i];
    case PT_U8: return ((const uint8_t *)p)[i];
    case PT_BOOL: return ((const uint8_t *)p)[i] ? 1.0 : 0.0;
    default: return 0;
    }
}

__device__ __forceinline__ long long pt_sat(double v, double lo, double hi) {
    if (v != v) return 0;
    if (v < lo) return (long long)lo;
    if (v > hi) return (long long)hi;
    return (long long)v;
}

__device__ __forceinline__ void pt_store_any(char *p, int64_t i, int dt, double v) {
    switch (dt) {
    case PT_F32: ((float *)p)[i] = pt_cast_st<PT_F32>(v); break;
    case PT_F64: ((double *)p)[i] = pt_cast_st<PT_F64>(v); break;
    case PT_BF16: ((uint16_t *)p)[i] = pt_cast_st<PT_BF16>(v); break;
    case PT_F16: ((uint16_t *)p)[i] = pt_cast_st<PT_F16>(v); break;
    case PT_I64: ((long long *)p)[i] = pt_sat(v, -9223372036854775808.0, 9223372036854774784.0); break;
    case PT_I32: ((int32_t *)p)[i] = (int32_t)pt_sat(v, -2147483648.0, 2147483647.0); break;
    case PT_U16: ((uint16_t *)p)[i] = (uint16_t)pt_sat(v, 0, 65535); break;
    case PT_I8: ((int8_t *)p)[i] = (int8_t)pt_sat(v, -128, 127); break;
    case PT_U8: ((uint8_t *)p)[i] = (uint8_t)pt_sat(v, 0, 255); break;
    case PT_BOOL: ((uint8_t *)p)[i] = v != 0; break;
    default: break;
    }
}

__global__ void k_copy_cast(pt_copy_geom g, char *dst, int ddt, const char *src, int sdt) {
    PT_GRID_LOOP(i, g.n) {
        pt_offs o = pt_offsets<2>(i, g.ndim, g.shape, g.sd, g.ss, g.ss);
        pt_store_any(dst, o.a, ddt, pt_load_any(src, o.b, sdt));
    }
}

/* contiguous cast between two float dtypes: 32-bit indices, V = 16 / (smaller element size) elements
 * per step moved as 16-byte words over the first nvec elements (both pointers 16-byte aligned), the
 * rest one at a time; the same conversion as k_copy_cast */
template <int SDT, int DDT>
__global__ void __launch_bounds__(PT_THREADS)
    k_cast_fast(typename pt_cast_t<DDT>::t *dst, const typename pt_cast_t<SDT>::t *src, uint32_t n, uint32_t nvec) {
    typedef typename pt_cast_t<SDT>::t S;
    typedef typename pt_cast_t<DDT>::t D;
    constexpr int V = 16 / (sizeof(S) < sizeof(D) ? sizeof(S) : sizeof(D));
    const uint32_t t = blockIdx.x * blockDim.x + threadIdx.x, step = gridDim.x * blockDim.x;
    for (uint32_t i = t * V; i < nvec; i += step * V) {
        pt_pack<S, V> ps;
        pt_pack<D, V> pd;
        pt_pack_ld(ps, src + i);
#pragma unroll
        for (int j = 0; j < V; j++) pd.e[j] = pt_cast_st<DDT>(pt_cast_ld<SDT>(ps.e[j]));
        pt_pack_st(dst + i, pd);
    }
    for (uint32_t i = nvec + t; i < n; i += step) dst[i] = pt_cast_st<DDT>(pt_cast_ld<SDT>(src[i]));
}

template <int SDT, int DDT>
static void pt_launch_cast_fast(void *dst, const void *src, uint32_t n) {
    typedef typename pt_cast_t<SDT>::t S;
    typedef typename pt_cast_t<DDT>::t D;
    constexpr uint32_t V = 16 / (sizeof(S) < sizeof(D) ? sizeof(S) : sizeof(D));
    uint32_t nvec = pt_aligned16(dst) && pt_aligned16(src) ? n - n % V : 0;
    k_cast_fast<SDT, DDT><<<pt_cuda_blocks((int64_t)(nvec / V) + (int64_t)(n - nvec), PT_THREADS), PT_THREADS, 0,
                            pt_cuda_compute_stream()>>>((D *)dst, (const S *)src, n, nvec);
}

/* contiguous cast between f32, f64, bf16 and f16 with n < 2^31 on the fast kernel; false = not covered */
static bool pt_cast_fast(void *dst, pt_dtype ddt, const void *src, pt_dtype sdt, int64_t n) {
    if (n <= 0 || n > 2147483647LL) return false;
#define PT_CF(S, D) \
    if (sdt == S && ddt == D) { pt_launch_cast_fast<S, D>(dst, src, (uint32_t)n); return true; }
    PT_CF(PT_F32, PT_BF16)
    PT_CF(PT_BF16, PT_F32)
    PT_CF(PT_F32, PT_F64)
    PT_CF(PT_F64, PT_F32)
    PT_CF(PT_BF16, PT_F64)
    PT_CF(PT_F64, PT_BF16)
    PT_CF(PT_F32, PT_F16)
    PT_CF(PT_F16, PT_F32)
    PT_CF(PT_F16, PT_F64)
    PT_CF(PT_F64, PT_F16)
    PT_CF(PT_BF16, PT_F16)
    PT_CF(PT_F16, PT_BF16)
#undef PT_CF
    return false;
}

template <int W>
__global__ void k_fill(pt_copy_geom g, typename pt_word<W>::t *dst, typename pt_word<W>::t v) {
    PT_GRID_LOOP(i, g.n) {
        pt_offs o = pt_offsets<1>(i, g.ndim, g.shape, g.sd, g.sd, g.sd);
        dst[o.a] = v;
    }
}

/* element range [lo, hi] of a view, in bytes from the storage base */
static void pt_byte_range(const pt_tensor *t, int64_t *lo, int64_t *hi) {
    int64_t a = t->offset, b = t->offset;
    for (int d = 0; d < t->ndim; d++) {
        if (t->stride[d] >= 0)
            b += t->stride[d] * (t->shape[d] - 1);
        else
            a += t->stride[d] * (t->shape[d] - 1);
    }
    int64_t es = (int64_t)pt_dtype_size(t->dtype);
    *lo = a * es;
    *hi = b * es + es - 1;
}

template <int W>
static void pt_launch_copy_same(const pt_copy_geom &g, void *dst, const void *src) {
    typedef typename pt_word<W>::t T;
    k_copy_same<W><<<pt_cuda_blocks(g.n, PT_THREADS), PT_THREADS, 0, pt_cuda_compute_stream()>>>(g, (T *)dst,
                                                                                                  (const T *)src);
}

extern "C" pt_status pt_cuda_copy(pt_tensor *dst, const pt_tensor *src) {
    if (dst->device.type != PT_DEV_CUDA || src->device.type != PT_DEV_CUDA)
        return PT_FAIL(PT_ERR_DEVICE, "pt_cuda_copy: both tensors must be on a CUDA device");
    if (dst->ndim != src->ndim || memcmp(dst->shape, src->shape, sizeof(int64_t) * (size_t)dst->ndim)) {
        char a[128], b[128];
        return PT_FAIL(PT_ERR_SHAPE, "copy: destination shape %s and source shape %s differ",
                       pt_shape_str(dst->ndim, dst->shape, a, sizeof a), pt_shape_str(src->ndim, src->shape, b, sizeof b));
    }
    int64_t n = pt_tensor_numel(dst);
    PT_TRY(pt_cuda_use(dst->device.index));
    PT_TRY(pt_cuda_check_pending());
    if (n == 0) return PT_OK;
    size_t es = pt_dtype_size(dst->dtype);
    int contiguous = pt_tensor_is_contiguous(dst) && pt_tensor_is_contiguous(src);

    if (dst->device.index != src->device.index) {
        if (!contiguous || dst->dtype != src->dtype)
            return PT_FAIL(PT_ERR_UNSUPPORTED,
                           "copy from cuda:%d to cuda:%d with a cast or strides is not supported yet "
                           "(make the tensor contiguous with the target dtype on its own device first)",
                           src->device.index, dst->device.index);
        PT_TRY(pt_cuda_synchronize(src->device.index)); /* the source is complete */
        PT_TRY(pt_cuda_use(dst->device.index));
        PT_CUDA_CHECK(cudaMemcpyPeerAsync(pt_tensor_data(dst), dst->device.index, pt_tensor_data(src),
                                          src->device.index, (size_t)n * es, pt_cuda_compute_stream()));
        return PT_OK;
    }

    if (dst->storage == src->storage) {
        int64_t dl, dh, sl, sh;
        pt_byte_range(dst, &dl, &dh);
        pt_byte_range(src, &sl, &sh);
        if (dl <= sh && sl <= dh && !(dst->offset == src->offset && dst->dtype == src->dtype &&
                                      !memcmp(dst->stride, src->stride, sizeof(int64_t) * (size_t)dst->ndim))) {
            pt_tensor *tmp = NULL;
            PT_TRY(pt_tensor_empty(&tmp, src->dtype, src->device, src->ndim, src->shape));
            pt_status st = pt_cuda_copy(tmp, src);
            if (st == PT_OK) st = pt_cuda_copy(dst, tmp);
            pt_tensor_release(tmp);
            return st;
        }
    }

    if (contiguous && dst->dtype == src->dtype) {
        if (pt_tensor_data(dst) != pt_tensor_data(src))
            PT_CUDA_CHECK(cudaMemcpyAsync(pt_tensor_data(dst), pt_tensor_data(src), (size_t)n * es,
                                          cudaMemcpyDeviceToDevice, pt_cuda_compute_stream()));
        return PT_OK;
    }

    void *dp = pt_tensor_data(dst);
    const void *sp = pt_tensor_data(src);
    if (contiguous && pt_cast_fast(dp, dst->dtype, sp, src->dtype, n)) {
        cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess) return pt_cuda_fail(e, "k_cast_fast launch", __FILE__, __LINE__);
        pt_cuda_launch_check("k_cast_fast");
        return PT_OK;
    }

    pt_copy_geom g;
    memset(&g, 0, sizeof g);
    g.ndim = dst->ndim;
    g.n = n;
    for (int d = 0; d < dst->ndim; d++) {
        g.shape[d] = dst->shape[d];
        g.sd[d] = dst->stride[d];
        g.ss[d] = src->stride[d];
    }
    pt_geom_collapse(&g);
    if (dst->dtype == src->dtype) {
        switch (es) {
        case 1: pt_launch_copy_same<1>(g, dp, sp); break;
        case 2: pt_launch_copy_same<2>(g, dp, sp); break;
        case 4: pt_launch_copy_same<4>(g, dp, sp); break;
        default: pt_launch_copy_same<8>(g, dp, sp); break;
        }
    } else {
        k_copy_cast<<<pt_cuda_blocks(n, PT_THREADS), PT_THREADS, 0, pt_cuda_compute_stream()>>>(
            g, (char *)dp, (int)dst->dtype, (const char *)sp, (int)src->dtype);
    }
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return pt_cuda_fail(e, "k_copy launch", __FILE__, __LINE__);
    pt_cuda_launch_check("k_copy");
    return PT_OK;
}

template <int W>
static void pt_launch_fill(const pt_copy_geom &g, void *dst, const unsigned char *pattern) {
    typedef typename pt_word<W>::t T;
    T v;
    memcpy(&v, pattern, W);
    k_fill<W><<<pt_cuda_blocks(g.n, PT_THREADS), PT_THREADS, 0, pt_cuda_compute_stream()>>>(g, (T *)dst, v);
}

extern "C" pt_status pt_cuda_fill(pt_tensor *t, double value) {
    if (t->device.type != PT_DEV_CUDA) return PT_FAIL(PT_ERR_DEVICE, "pt_cuda_fill: tensor is not on a CUDA device");
    int64_t n = pt_tensor_numel(t);
    PT_TRY(pt_cuda_use(t->device.index));
    PT_TRY(pt_cuda_check_pending());
    if (n == 0) return PT_OK;
    /* convert the value once, with the CPU's rules, through a one-element host tensor */
    pt_tensor *h = NULL;
    PT_TRY(pt_tensor_full(&h, t->dtype, PT_CPU, 0, NULL, value));
    unsigned char pattern[8] = {0};
    size_t es = pt_dtype_size(t->dtype);
    memcpy(pattern, h->storage->data, es);
    pt_tensor_release(h);
    pt_copy_geom g;
    memset(&g, 0, sizeof g);
    g.ndim = t->ndim;
    g.n = n;
    for (int d = 0; d < t->ndim; d++) {
        g.shape[d] = t->shape[d];
        g.sd[d] = g.ss[d] = t->stride[d];
    }
    pt_geom_collapse(&g);
    void *p = pt_tensor_data(t);
    switch (es) {
    case 1: pt_launch_fill<1>(g, p, pattern); break;
    case 2: pt_launch_fill<2>(g, p, pattern); break;
    case 4: pt_launch_fill<4>(g, p, pattern); break;
    default: pt_launch_fill<8>(g, p, pattern); break;
    }
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return pt_cuda_fail(e, "k_fill launch", __FILE__, __LINE__);
    pt_cuda_launch_check("k_fill");
    return PT_OK;
}

#define PT_REG_FILL(DT) PT_REGISTER_KERNEL(tensor_fill, PT_DEV_CUDA, DT, pt_cuda_fill)
PT_REG_FILL(PT_F32)
PT_REG_FILL(PT_F64)
PT_REG_FILL(PT_BF16)
PT_REG_FILL(PT_F16)
PT_REG_FILL(PT_I64)
PT_REG_FILL(PT_I32)
PT_REG_FILL(PT_U16)
PT_REG_FILL(PT_I8)
PT_REG_FILL(PT_U8)
PT_REG_FILL(PT_BOOL)
