/* tensor.c — tensor headers, refcounted storage, dtypes, devices, copies and casts.
 *
 * The CPU allocator is malloc (64-byte aligned); device storage goes through the allocator hooks
 * that the CUDA backend installs (pt_set_device_allocator). See pt_tensor.h for conventions.
 * Fill (pt_tensor_fill_, pt_tensor_full) on a device runs the device's "tensor_fill" kernel from the
 * kernel table (no host buffer, so it can be captured into a CUDA graph).
 * Tested by tests/c/test_tensor.c and tests/lua/test_tensor.lua.
 */
#include "pt_tensor.h"

#include <math.h>   /* isnan, nearbyint */
#include <stdio.h>  /* snprintf */
#include <stdlib.h> /* aligned_alloc, free */
#include <string.h> /* memcpy, memset, strcmp */

#include "../kernels/pt_dispatch.h" /* pt_kernel_find: the device's "tensor_fill" kernel */
#include "pt_autograd.h"

static int64_t pt_live_tensors, pt_live_storages, pt_host_bytes, pt_device_bytes;

pt_tensor_stats pt_tensor_get_stats(void) {
    pt_tensor_stats s;
    __atomic_load(&pt_live_tensors, &s.live_tensors, __ATOMIC_RELAXED);
    __atomic_load(&pt_live_storages, &s.live_storages, __ATOMIC_RELAXED);
    __atomic_load(&pt_host_bytes, &s.host_bytes, __ATOMIC_RELAXED);
    __atomic_load(&pt_device_bytes, &s.device_bytes, __ATOMIC_RELAXED);
    return s;
}

/* ---- dtypes ---- */
static const struct {
    const char *name;
    size_t size;
} pt_dtypes[PT_NDTYPES] = {
    [PT_F32] = {"f32", 4}, [PT_F64] = {"f64", 8}, [PT_BF16] = {"bf16", 2}, [PT_F16] = {"f16", 2},
    [PT_I64] = {"i64", 8}, [PT_I32] = {"i32", 4}, [PT_U16] = {"u16", 2},  [PT_I8] = {"i8", 1},
    [PT_U8] = {"u8", 1},   [PT_BOOL] = {"bool", 1},
};

size_t pt_dtype_size(pt_dtype dt) { return (unsigned)dt < PT_NDTYPES ? pt_dtypes[dt].size : 0; }
const char *pt_dtype_name(pt_dtype dt) { return (unsigned)dt < PT_NDTYPES ? pt_dtypes[dt].name : "?"; }
int pt_dtype_is_float(pt_dtype dt) { return dt == PT_F32 || dt == PT_F64 || dt == PT_BF16 || dt == PT_F16; }
int pt_dtype_is_int(pt_dtype dt) { return (unsigned)dt < PT_NDTYPES && !pt_dtype_is_float(dt); }

pt_status pt_dtype_parse(const char *name, pt_dtype *out) {
    static const struct {
        const char *alias;
        pt_dtype dt;
    } aliases[] = {
        {"f32", PT_F32},     {"float32", PT_F32},  {"float", PT_F32},     {"f64", PT_F64},
        {"float64", PT_F64}, {"double", PT_F64},   {"bf16", PT_BF16},     {"bfloat16", PT_BF16},
        {"f16", PT_F16},     {"float16", PT_F16},  {"half", PT_F16},      {"i64", PT_I64},
        {"int64", PT_I64},   {"long", PT_I64},     {"i32", PT_I32},       {"int32", PT_I32},
        {"int", PT_I32},     {"u16", PT_U16},      {"uint16", PT_U16},    {"i8", PT_I8},
        {"int8", PT_I8},     {"u8", PT_U8},        {"uint8", PT_U8},      {"bool", PT_BOOL},
    };
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (strcmp(name, aliases[i].alias) == 0) {
            *out = aliases[i].dt;
            return PT_OK;
        }
    return PT_FAIL(PT_ERR_DTYPE,
                   "unknown dtype '%s' (expected one of f32 f64 bf16 f16 i64 i32 u16 i8 u8 bool)", name);
}

pt_status pt_device_parse(const char *name, pt_device *out) {
    if (strcmp(name, "cpu") == 0) {
        *out = PT_CPU;
        return PT_OK;
    }
    if (strncmp(name, "cuda", 4) == 0) {
        int idx = 0;
        if (name[4] == ':') {
            char *end;
            long v = strtol(name + 5, &end, 10);
            if (*end || v < 0 || v > 255)
                return PT_FAIL(PT_ERR_VALUE, "bad device '%s' (expected cpu, cuda or cuda:N)", name);
            idx = (int)v;
        } else if (name[4]) {
            return PT_FAIL(PT_ERR_VALUE, "bad device '%s' (expected cpu, cuda or cuda:N)", name);
        }
        out->type = PT_DEV_CUDA;
        out->index = idx;
        return PT_OK;
    }
    return PT_FAIL(PT_ERR_VALUE, "bad device '%s' (expected cpu, cuda or cuda:N)", name);
}

const char *pt_device_str(pt_device d, char *buf, size_t n) {
    if (d.type == PT_DEV_CPU)
        snprintf(buf, n, "cpu");
    else
        snprintf(buf, n, "cuda:%d", d.index);
    return buf;
}

int pt_device_eq(pt_device a, pt_device b) { return a.type == b.type && (a.type == PT_DEV_CPU || a.index == b.index); }

/* ---- half precision ---- */
uint16_t pt_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN: keep it a (quiet) NaN */
        return (uint16_t)((u >> 16) | 0x40);
    uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)((u + rounding) >> 16);
}

float pt_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t pt_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t absu = u & 0x7fffffffu;
    if (absu > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);  /* NaN */
    if (absu >= 0x477ff000u) {                                  /* overflow (>= 65520) -> inf */
        return (uint16_t)(sign | 0x7c00u);
    }
    if (absu < 0x38800000u) { /* subnormal or zero in f16: value < 2^-14 */
        if (absu < 0x33000000u) return (uint16_t)sign; /* < 2^-25 rounds to 0 */
        uint32_t e = absu >> 23;
        uint32_t mant = (absu & 0x7fffffu) | 0x800000u;
        /* value = mant * 2^(e-150); f16 subnormal unit is 2^-24, so q = mant >> (126 - e) */
        int shift = (int)(126 - e);
        uint32_t q = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1u))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t e = ((absu >> 23) - 127 + 15);
    uint32_t mant = absu & 0x7fffffu;
    uint32_t q = (e << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1u))) q++;
    return (uint16_t)(sign | q);
}

float pt_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu, u;
    if (e == 0) {
        if (m == 0) {
            u = sign;
        } else { /* subnormal */
            float f = (float)m * 5.9604644775390625e-8f; /* 2^-24 */
            return (h & 0x8000u) ? -f : f;
        }
    } else if (e == 31) {
        u = sign | 0x7f800000u | (m << 13);
    } else {
        u = sign | ((e - 15 + 127) << 23) | (m << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---- allocators ---- */
static const pt_device_allocator *pt_dev_alloc[PT_NDEVTYPES];

void pt_set_device_allocator(pt_devtype type, const pt_device_allocator *a) { pt_dev_alloc[type] = a; }
const pt_device_allocator *pt_get_device_allocator(pt_devtype type) { return pt_dev_alloc[type]; }

static pt_status pt_need_device(pt_device dev, const char *what) {
    if (dev.type == PT_DEV_CPU) return PT_OK;
    if (!pt_dev_alloc[dev.type])
        return PT_FAIL(PT_ERR_UNSUPPORTED,
                       "%s: no CUDA backend in this build or no CUDA device present "
                       "(rebuild with nvcc available, or use device 'cpu')", what);
    return PT_OK;
}

pt_status pt_storage_new(pt_storage **out, size_t nbytes, pt_device dev) {
    *out = NULL;
    PT_TRY(pt_need_device(dev, "allocating a tensor"));
    pt_storage *s = calloc(1, sizeof *s);
    if (!s) return PT_FAIL(PT_ERR_OOM, "out of host memory allocating a storage header");
    s->refcount = 1;
    s->nbytes = nbytes;
    s->device = dev;
    if (dev.type == PT_DEV_CPU) {
        size_t n = (nbytes + 63) & ~(size_t)63;
        s->data = n ? aligned_alloc(64, n) : NULL;
        if (n && !s->data) {
            free(s);
            pt_tensor_stats st = pt_tensor_get_stats();
            return PT_FAIL(PT_ERR_OOM, "out of host memory: asked for %zu bytes, %lld bytes held by tensors",
                           nbytes, (long long)st.host_bytes);
        }
        __atomic_add_fetch(&pt_host_bytes, (int64_t)nbytes, __ATOMIC_RELAXED);
    } else {
        pt_status st = pt_dev_alloc[dev.type]->alloc(&s->data, nbytes, dev.index);
        if (st) {
            free(s);
            return st;
        }
        __atomic_add_fetch(&pt_device_bytes, (int64_t)nbytes, __ATOMIC_RELAXED);
    }
    __atomic_add_fetch(&pt_live_storages, 1, __ATOMIC_RELAXED);
    *out = s;
    return PT_OK;
}

pt_status pt_storage_wrap(pt_storage **out, void *data, size_t nbytes, pt_device dev,
                          void (*free_fn)(pt_storage *), void *free_ctx) {
    pt_storage *s = calloc(1, sizeof *s);
    if (!s) return PT_FAIL(PT_ERR_OOM, "out of host memory allocating a storage header");
    s->refcount = 1;
    s->data = data;
    s->nbytes = nbytes;
    s->device = dev;
    s->free_fn = free_fn;
    s->free_ctx = free_ctx;
    __atomic_add_fetch(&pt_live_storages, 1, __ATOMIC_RELAXED);
    *out = s;
    return PT_OK;
}

void pt_storage_retain(pt_storage *s) { __atomic_add_fetch(&s->refcount, 1, __ATOMIC_RELAXED); }

void pt_storage_release(pt_storage *s) {
    if (!s || __atomic_sub_fetch(&s->refcount, 1, __ATOMIC_ACQ_REL) > 0) return;
    if (s->free_fn) {
        s->free_fn(s);
    } else if (s->device.type == PT_DEV_CPU) {
        free(s->data);
        __atomic_sub_fetch(&pt_host_bytes, (int64_t)s->nbytes, __ATOMIC_RELAXED);
    } else if (s->data) {
        pt_dev_alloc[s->device.type]->free(s->data, s->nbytes, s->device.index);
        __atomic_sub_fetch(&pt_device_bytes, (int64_t)s->nbytes, __ATOMIC_RELAXED);
    }
    __atomic_sub_fetch(&pt_live_storages, 1, __ATOMIC_RELAXED);
    free(s);
}

/* ---- tensors ---- */
int64_t pt_shape_numel(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

int64_t pt_tensor_numel(const pt_tensor *t) { return pt_shape_numel(t->ndim, t->shape); }

int64_t pt_tensor_rows(const pt_tensor *t) { return t->ndim > 1 ? pt_shape_numel(t->ndim - 1, t->shape) : 1; }

int pt_tensor_is_contiguous(const pt_tensor *t) {
    int64_t expect = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != expect) return 0;
        expect *= t->shape[i];
    }
    return 1;
}

void *pt_tensor_data(const pt_tensor *t) {
    if (!t->storage->data) return NULL;
    return (char *)t->storage->data + t->offset * (int64_t)pt_dtype_size(t->dtype);
}

const char *pt_shape_str(int ndim, const int64_t *shape, char *buf, size_t n) {
    size_t used = 0;
    used += (size_t)snprintf(buf + used, n - used, "[");
    for (int i = 0; i < ndim && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (used < n) snprintf(buf + used, n - used, "]");
    return buf;
}

static pt_tensor *pt_tensor_alloc_header(void) {
    pt_tensor *t = calloc(1, sizeof *t);
    if (t) {
        t->refcount = 1;
        __atomic_add_fetch(&pt_live_tensors, 1, __ATOMIC_RELAXED);
    }
    return t;
}

pt_status pt_tensor_empty(pt_tensor **out, pt_dtype dt, pt_device dev, int ndim, const int64_t *shape) {
    *out = NULL;
    if (ndim < 0 || ndim > PT_MAX_DIMS)
        return PT_FAIL(PT_ERR_SHAPE, "tensor with %d dims (at most %d supported)", ndim, PT_MAX_DIMS);
    if ((unsigned)dt >= PT_NDTYPES) return PT_FAIL(PT_ERR_DTYPE, "bad dtype id %d", (int)dt);
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            char b[128];
            return PT_FAIL(PT_ERR_SHAPE, "negative size in shape %s", pt_shape_str(ndim, shape, b, sizeof b));
        }
        if (shape[i] && numel > INT64_MAX / 16 / shape[i]) {
            char b[128];
            return PT_FAIL(PT_ERR_OOM, "shape %s is too large", pt_shape_str(ndim, shape, b, sizeof b));
        }
        numel *= shape[i];
    }
    pt_tensor *t = pt_tensor_alloc_header();
    if (!t) return PT_FAIL(PT_ERR_OOM, "out of host memory allocating a tensor header");
    pt_status st = pt_storage_new(&t->storage, (size_t)numel * pt_dtype_size(dt), dev);
    if (st) {
        free(t);
        __atomic_sub_fetch(&pt_live_tensors, 1, __ATOMIC_RELAXED);
        return st;
    }
    t->dtype = dt;
    t->device = dev;
    t->ndim = ndim;
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        t->shape[i] = shape[i];
        t->stride[i] = s;
        s *= shape[i];
    }
    *out = t;
    return PT_OK;
}

pt_status pt_tensor_zeros(pt_tensor **out, pt_dtype dt, pt_device dev, int ndim, const int64_t *shape) {
    PT_TRY(pt_tensor_empty(out, dt, dev, ndim, shape));
    size_t n = (*out)->storage->nbytes;
    if (dev.type == PT_DEV_CPU) {
        if (n) memset((*out)->storage->data, 0, n);
    } else if (n) {
        pt_status st = pt_dev_alloc[dev.type]->memset0((*out)->storage->data, n, dev.index);
        if (st) {
            pt_tensor_release(*out);
            *out = NULL;
            return st;
        }
    }
    return PT_OK;
}

pt_status pt_tensor_full(pt_tensor **out, pt_dtype dt, pt_device dev, int ndim, const int64_t *shape,
                         double value) {
    PT_TRY(pt_tensor_empty(out, dt, dev, ndim, shape));
    pt_status st = pt_tensor_fill_(*out, value);
    if (st) {
        pt_tensor_release(*out);
        *out = NULL;
    }
    return st;
}

pt_status pt_tensor_empty_like(pt_tensor **out, const pt_tensor *t) {
    return pt_tensor_empty(out, t->dtype, t->device, t->ndim, t->shape);
}

pt_status pt_tensor_zeros_like(pt_tensor **out, const pt_tensor *t) {
    return pt_tensor_zeros(out, t->dtype, t->device, t->ndim, t->shape);
}

pt_status pt_tensor_view_of(pt_tensor **out, const pt_tensor *t, int ndim, const int64_t *shape,
                            const int64_t *stride, int64_t offset) {
    *out = NULL;
    if (ndim < 0 || ndim > PT_MAX_DIMS)
        return PT_FAIL(PT_ERR_SHAPE, "view with %d dims (at most %d supported)", ndim, PT_MAX_DIMS);
    /* bounds: the furthest element must lie inside the storage */
    int64_t lo = offset, hi = offset, numel = 1;
    for (int i = 0; i < ndim; i++) {
        numel *= shape[i];
        if (shape[i] == 0) continue;
        if (stride[i] >= 0)
            hi += stride[i] * (shape[i] - 1);
        else
            lo += stride[i] * (shape[i] - 1);
    }
    int64_t cap = (int64_t)(t->storage->nbytes / pt_dtype_size(t->dtype));
    if (numel > 0 && (lo < 0 || hi >= cap))
        return PT_FAIL(PT_ERR_INDEX, "view [%lld, %lld] outside storage of %lld elements", (long long)lo,
                       (long long)hi, (long long)cap);
    pt_tensor *v = pt_tensor_alloc_header();
    if (!v) return PT_FAIL(PT_ERR_OOM, "out of host memory allocating a tensor header");
    v->dtype = t->dtype;
    v->device = t->device;
    v->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        v->shape[i] = shape[i];
        v->stride[i] = stride[i];
    }
    v->offset = offset;
    v->storage = t->storage;
    pt_storage_retain(t->storage);
    *out = v;
    return PT_OK;
}

void pt_tensor_retain(pt_tensor *t) { __atomic_add_fetch(&t->refcount, 1, __ATOMIC_RELAXED); }

void pt_tensor_release(pt_tensor *t) {
    if (!t || __atomic_sub_fetch(&t->refcount, 1, __ATOMIC_ACQ_REL) > 0) return;
    if (t->grad) pt_tensor_release(t->grad);
    if (t->grad_fn) pt_node_release(t->grad_fn);
    pt_storage_release(t->storage);
    __atomic_sub_fetch(&pt_live_tensors, 1, __ATOMIC_RELAXED);
    free(t);
}

/* ---- element conversion ---- */
static inline double pt_load(const void *p, pt_dtype dt) {
    switch (dt) {
    case PT_F32: return *(const float *)p;
    case PT_F64: return *(const double *)p;
    case PT_BF16: return pt_bf16_to_f32(*(const uint16_t *)p);
    case PT_F16: return pt_f16_to_f32(*(const uint16_t *)p);
    case PT_I64: return (double)*(const int64_t *)p;
    case PT_I32: return *(const int32_t *)p;
    case PT_U16: return *(const uint16_t *)p;
    case PT_I8: return *(const int8_t *)p;
    case PT_U8: return *(const uint8_t *)p;
    case PT_BOOL: return *(const uint8_t *)p ? 1.0 : 0.0;
    default: return 0;
    }
}

/* Saturating conversion to integers (NaN -> 0) so hostile values never hit UB. */
static inline int64_t pt_to_i64(double v, double lo, double hi) {
    if (isnan(v)) return 0;
    if (v < lo) return (int64_t)lo;
    if (v > hi) return (int64_t)hi;
    return (int64_t)v;
}

static inline void pt_store(void *p, pt_dtype dt, double v) {
    switch (dt) {
    case PT_F32: *(float *)p = (float)v; break;
    case PT_F64: *(double *)p = v; break;
    case PT_BF16: *(uint16_t *)p = pt_f32_to_bf16((float)v); break;
    case PT_F16: *(uint16_t *)p = pt_f32_to_f16((float)v); break;
    case PT_I64: *(int64_t *)p = pt_to_i64(v, -9223372036854775808.0, 9223372036854774784.0); break;
    case PT_I32: *(int32_t *)p = (int32_t)pt_to_i64(v, -2147483648.0, 2147483647.0); break;
    case PT_U16: *(uint16_t *)p = (uint16_t)pt_to_i64(v, 0, 65535); break;
    case PT_I8: *(int8_t *)p = (int8_t)pt_to_i64(v, -128, 127); break;
    case PT_U8: *(uint8_t *)p = (uint8_t)pt_to_i64(v, 0, 255); break;
    case PT_BOOL: *(uint8_t *)p = v != 0; break;
    default: break;
    }
}

/* Iterates a view in row-major order, giving the element offset (in elements) of each item. */
typedef struct {
    int ndim;
    int64_t idx[PT_MAX_DIMS];
    const int64_t *shape, *stride;
    int64_t off;
} pt_iter;

static void pt_iter_init(pt_iter *it, const pt_tensor *t) {
    it->ndim = t->ndim;
    it->shape = t->shape;
    it->stride = t->stride;
    it->off = t->offset;
    memset(it->idx, 0, sizeof it->idx);
}

static inline void pt_iter_next(pt_iter *it) {
    for (int d = it->ndim - 1; d >= 0; d--) {
        it->idx[d]++;
        it->off += it->stride[d];
        if (it->idx[d] < it->shape[d]) return;
        it->off -= it->stride[d] * it->shape[d];
        it->idx[d] = 0;
    }
}

/* A copy's loop nest after merging dims: dims where both dst and src step contiguously across the
 * boundary (stride[d] == stride[d+1]·shape[d+1] on both sides) become one, and size-1 dims go; the
 * last merged dim is the inner loop. */
typedef struct {
    int nd;
    int64_t shape[PT_MAX_DIMS], ds[PT_MAX_DIMS], ss[PT_MAX_DIMS];
} pt_copy_plan;

static void pt_copy_plan_init(pt_copy_plan *p, const pt_tensor *dst, const pt_tensor *src) {
    p->nd = 0;
    for (int d = 0; d < dst->ndim; d++) {
        if (dst->shape[d] == 1) continue;
        int k = p->nd;
        if (k > 0 && p->ds[k - 1] == dst->stride[d] * dst->shape[d] && p->ss[k - 1] == src->stride[d] * dst->shape[d]) {
            p->shape[k - 1] *= dst->shape[d];
            p->ds[k - 1] = dst->stride[d];
            p->ss[k - 1] = src->stride[d];
            continue;
        }
        p->shape[k] = dst->shape[d];
        p->ds[k] = dst->stride[d];
        p->ss[k] = src->stride[d];
        p->nd++;
    }
    if (p->nd == 0) { /* one element */
        p->nd = 1;
        p->shape[0] = 1;
        p->ds[0] = p->ss[0] = 0;
    }
}

/* element offsets (dst, src) of row r: the row index spells the outer dims 0..nd-2. (One thread:
 * a copy is memory-bound, and two OpenMP threads measured no faster on the 2-core dev machine.) */
static inline void pt_copy_row_off(const pt_copy_plan *p, int64_t r, int64_t *doff, int64_t *soff) {
    int64_t d_ = 0, s_ = 0;
    for (int d = p->nd - 2; d >= 0; d--) {
        int64_t i = r % p->shape[d];
        r /= p->shape[d];
        d_ += i * p->ds[d];
        s_ += i * p->ss[d];
    }
    *doff = d_;
    *soff = s_;
}

/* same-dtype strided copy of one element size: memcpy per row when both inner strides are 1 */
#define PT_COPY_SAME(T)                                                                             \
    do {                                                                                            \
        T *D = (T *)dbase + dst->offset;                                                            \
        const T *S = (const T *)sbase + src->offset;                                                \
        for (int64_t r = 0; r < rows; r++) {                                                        \
            int64_t doff, soff;                                                                     \
            pt_copy_row_off(&p, r, &doff, &soff);                                                   \
            T *pd = D + doff;                                                                       \
            const T *ps = S + soff;                                                                 \
            if (li == 1 && lj == 1) memcpy(pd, ps, sizeof(T) * (size_t)inner);                     \
            else if (lj == 0) { T v = ps[0]; for (int64_t i = 0; i < inner; i++) pd[i * li] = v; } \
            else for (int64_t i = 0; i < inner; i++) pd[i * li] = ps[i * lj];                       \
        }                                                                                           \
    } while (0)

static pt_status pt_copy_cpu(pt_tensor *dst, const pt_tensor *src) {
    int64_t n = pt_tensor_numel(dst);
    size_t ds = pt_dtype_size(dst->dtype), ss = pt_dtype_size(src->dtype);
    char *dbase = dst->storage->data, *sbase = src->storage->data;
    if (dst->dtype == src->dtype && pt_tensor_is_contiguous(dst) && pt_tensor_is_contiguous(src)) {
        if (n) memmove(dbase + dst->offset * ds, sbase + src->offset * ss, (size_t)n * ds);
        return PT_OK;
    }
    if (!n) return PT_OK;
    pt_copy_plan p;
    pt_copy_plan_init(&p, dst, src);
    int64_t inner = p.shape[p.nd - 1], rows = n / inner, li = p.ds[p.nd - 1], lj = p.ss[p.nd - 1];
    /* Row-wise copies assume dst and src do not share storage (a view copied onto an overlapping
     * view is done in order, one element at a time, as before). */
    int overlap = dst->storage == src->storage;
    if (dst->dtype == src->dtype && !overlap) {
        switch (ds) {
        case 1: PT_COPY_SAME(uint8_t); return PT_OK;
        case 2: PT_COPY_SAME(uint16_t); return PT_OK;
        case 4: PT_COPY_SAME(uint32_t); return PT_OK;
        case 8: PT_COPY_SAME(uint64_t); return PT_OK;
        default: break;
        }
    }
    pt_iter di, si;
    pt_iter_init(&di, dst);
    pt_iter_init(&si, src);
    if (dst->dtype == src->dtype) {
        for (int64_t i = 0; i < n; i++) {
            memcpy(dbase + di.off * ds, sbase + si.off * ss, ds);
            pt_iter_next(&di);
            pt_iter_next(&si);
        }
    } else if (dst->dtype == PT_F32 && src->dtype == PT_BF16) {
        for (int64_t i = 0; i < n; i++) {
            *(float *)(dbase + di.off * ds) = pt_bf16_to_f32(*(uint16_t *)(sbase + si.off * ss));
            pt_iter_next(&di);
            pt_iter_next(&si);
        }
    } else {
        for (int64_t i = 0; i < n; i++) {
            pt_store(dbase + di.off * ds, dst->dtype, pt_load(sbase + si.off * ss, src->dtype));
            pt_iter_next(&di);
            pt_iter_next(&si);
        }
    }
    return PT_OK;
}

pt_status pt_tensor_contiguous_raw(pt_tensor **out, pt_tensor *t) {
    if (pt_tensor_is_contiguous(t)) {
        pt_tensor_retain(t);
        *out = t;
        return PT_OK;
    }
    PT_TRY(pt_tensor_empty(out, t->dtype, t->device, t->ndim, t->shape));
    pt_status st = pt_tensor_copy_(*out, t);
    if (st) {
        pt_tensor_release(*out);
        *out = NULL;
    }
    return st;
}

/* Hook for device copies with casts or strides: set by the CUDA backend. */
pt_status (*pt_cuda_copy_hook)(pt_tensor *dst, const pt_tensor *src);

pt_status pt_tensor_copy_(pt_tensor *dst, const pt_tensor *src) {
    if (dst->ndim != src->ndim || memcmp(dst->shape, src->shape, sizeof(int64_t) * (size_t)dst->ndim)) {
        char a[128], b[128];
        return PT_FAIL(PT_ERR_SHAPE, "copy: destination shape %s and source shape %s differ",
                       pt_shape_str(dst->ndim, dst->shape, a, sizeof a),
                       pt_shape_str(src->ndim, src->shape, b, sizeof b));
    }
    if (dst->device.type == PT_DEV_CPU && src->device.type == PT_DEV_CPU) return pt_copy_cpu(dst, src);
    /* Cross-device: stage through contiguous same-dtype buffers, then cast where the data lives. */
    const pt_device_allocator *da = pt_dev_alloc[PT_DEV_CUDA];
    if (!da) return pt_need_device(dst->device.type == PT_DEV_CPU ? src->device : dst->device, "copy");
    if (dst->device.type != PT_DEV_CPU && src->device.type != PT_DEV_CPU && pt_cuda_copy_hook)
        return pt_cuda_copy_hook(dst, src);
    pt_status st = PT_OK;
    if (src->device.type != PT_DEV_CPU) { /* device -> host */
        pt_tensor *sc = NULL, *h = NULL;
        if (pt_tensor_is_contiguous(src)) {
            sc = (pt_tensor *)src;
            pt_tensor_retain(sc);
        } else if (pt_cuda_copy_hook) {
            st = pt_tensor_empty(&sc, src->dtype, src->device, src->ndim, src->shape);
            if (!st) st = pt_cuda_copy_hook(sc, src);
        } else {
            return PT_FAIL(PT_ERR_UNSUPPORTED, "copy: strided device tensor without the CUDA backend");
        }
        if (!st) st = pt_tensor_empty(&h, src->dtype, PT_CPU, src->ndim, src->shape);
        if (!st) st = da->memcpy_d2h(h->storage->data, pt_tensor_data(sc), h->storage->nbytes, src->device.index);
        if (!st) st = pt_copy_cpu(dst, h);
        pt_tensor_release(sc);
        pt_tensor_release(h);
        return st;
    }
    /* host -> device */
    pt_tensor *h = NULL;
    st = pt_tensor_empty(&h, dst->dtype, PT_CPU, dst->ndim, dst->shape);
    if (!st) st = pt_copy_cpu(h, src);
    if (!st) {
        if (pt_tensor_is_contiguous(dst)) {
            st = da->memcpy_h2d(pt_tensor_data(dst), h->storage->data, h->storage->nbytes, dst->device.index);
        } else if (pt_cuda_copy_hook) {
            pt_tensor *dc = NULL;
            st = pt_tensor_empty(&dc, dst->dtype, dst->device, dst->ndim, dst->shape);
            if (!st) st = da->memcpy_h2d(pt_tensor_data(dc), h->storage->data, h->storage->nbytes, dst->device.index);
            if (!st) st = pt_cuda_copy_hook(dst, dc);
            pt_tensor_release(dc);
        } else {
            st = PT_FAIL(PT_ERR_UNSUPPORTED, "copy: strided device tensor without the CUDA backend");
        }
    }
    pt_tensor_release(h);
    return st;
}

pt_status pt_tensor_to(pt_tensor **out, pt_tensor *t, pt_dtype dt, pt_device dev, int force_copy) {
    if (!force_copy && dt == t->dtype && pt_device_eq(dev, t->device)) {
        pt_tensor_retain(t);
        *out = t;
        return PT_OK;
    }
    PT_TRY(pt_tensor_empty(out, dt, dev, t->ndim, t->shape));
    pt_status st = pt_tensor_copy_(*out, t);
    if (st) {
        pt_tensor_release(*out);
        *out = NULL;
    }
    return st;
}

/* ("tensor_fill", device, dtype) kernels: set every element of the view t (any strides) to value,
 * converted with the CPU's rules (src/kernels/cuda/copy.cu, pt_fill_kernel in pt_cuda.h) */
typedef pt_status (*pt_tensor_fill_kernel)(pt_tensor *t, double value);

pt_status pt_tensor_fill_(pt_tensor *t, double value) {
    if (t->device.type != PT_DEV_CPU) {
        /* on the device: no host buffer, no transfer (so it can be captured into a CUDA graph) */
        pt_tensor_fill_kernel k = (pt_tensor_fill_kernel)pt_kernel_find("tensor_fill", t->device.type, t->dtype);
        if (k) return k(t, value);
        /* a device without a fill kernel: through a host tensor of the view's shape */
        pt_tensor *h = NULL;
        PT_TRY(pt_tensor_full(&h, t->dtype, PT_CPU, t->ndim, t->shape, value));
        pt_status st = pt_tensor_copy_(t, h);
        pt_tensor_release(h);
        return st;
    }
    int64_t n = pt_tensor_numel(t);
    size_t es = pt_dtype_size(t->dtype);
    char *base = t->storage->data;
    if (pt_tensor_is_contiguous(t)) {
        char *p = base + t->offset * (int64_t)es;
        if (t->dtype == PT_F32) {
            float v = (float)value;
            for (int64_t i = 0; i < n; i++) ((float *)p)[i] = v;
        } else {
            if (n) pt_store(p, t->dtype, value);
            for (int64_t i = 1; i < n; i++) memcpy(p + i * (int64_t)es, p, es);
        }
        return PT_OK;
    }
    pt_iter it;
    pt_iter_init(&it, t);
    for (int64_t i = 0; i < n; i++) {
        pt_store(base + it.off * (int64_t)es, t->dtype, value);
        pt_iter_next(&it);
    }
    return PT_OK;
}

static pt_status pt_need_cpu(const pt_tensor *t, const char *what) {
    if (t->device.type != PT_DEV_CPU)
        return PT_FAIL(PT_ERR_DEVICE, "%s needs a cpu tensor (move it with :to('cpu') first)", what);
    return PT_OK;
}

/* storage offset (elements) of flat index i in row-major view order */
static pt_status pt_flat_offset(const pt_tensor *t, int64_t i, int64_t *off_out) {
    int64_t n = pt_tensor_numel(t);
    if (i < 0 || i >= n)
        return PT_FAIL(PT_ERR_INDEX, "flat index %lld out of range for %lld elements", (long long)i, (long long)n);
    int64_t off = t->offset;
    for (int d = t->ndim - 1; d >= 0; d--) {
        off += (i % t->shape[d]) * t->stride[d];
        i /= t->shape[d];
    }
    *off_out = off;
    return PT_OK;
}

pt_status pt_tensor_get_flat(const pt_tensor *t, int64_t i, double *v) {
    PT_TRY(pt_need_cpu(t, "element access"));
    int64_t off;
    PT_TRY(pt_flat_offset(t, i, &off));
    *v = pt_load((char *)t->storage->data + off * (int64_t)pt_dtype_size(t->dtype), t->dtype);
    return PT_OK;
}

pt_status pt_tensor_get_flat_i64(const pt_tensor *t, int64_t i, int64_t *v) {
    if (t->dtype != PT_I64) {
        double d;
        PT_TRY(pt_tensor_get_flat(t, i, &d));
        *v = (int64_t)d;
        return PT_OK;
    }
    PT_TRY(pt_need_cpu(t, "element access"));
    int64_t off;
    PT_TRY(pt_flat_offset(t, i, &off));
    *v = ((const int64_t *)t->storage->data)[off];
    return PT_OK;
}

pt_status pt_tensor_set_flat(pt_tensor *t, int64_t i, double v) {
    PT_TRY(pt_need_cpu(t, "element access"));
    int64_t off;
    PT_TRY(pt_flat_offset(t, i, &off));
    pt_store((char *)t->storage->data + off * (int64_t)pt_dtype_size(t->dtype), t->dtype, v);
    return PT_OK;
}

pt_status pt_tensor_get(const pt_tensor *t, const int64_t *idx, double *v) {
    PT_TRY(pt_need_cpu(t, "element access"));
    int64_t off = t->offset;
    for (int d = 0; d < t->ndim; d++) {
        if (idx[d] < 0 || idx[d] >= t->shape[d])
            return PT_FAIL(PT_ERR_INDEX, "index %lld out of range for dim %d of size %lld", (long long)idx[d], d,
                           (long long)t->shape[d]);
        off += idx[d] * t->stride[d];
    }
    *v = pt_load((char *)t->storage->data + off * (int64_t)pt_dtype_size(t->dtype), t->dtype);
    return PT_OK;
}

pt_status pt_check_same_device(const char *op, const pt_tensor *a, const pt_tensor *b) {
    if (!pt_device_eq(a->device, b->device)) {
        char x[32], y[32];
        return PT_FAIL(PT_ERR_DEVICE, "%s: tensors on different devices (%s and %s)", op,
                       pt_device_str(a->device, x, sizeof x), pt_device_str(b->device, y, sizeof y));
    }
    return PT_OK;
}

pt_status pt_check_dtype(const char *op, const pt_tensor *t, pt_dtype dt) {
    if (t->dtype != dt)
        return PT_FAIL(PT_ERR_DTYPE, "%s: expected dtype %s, got %s", op, pt_dtype_name(dt), pt_dtype_name(t->dtype));
    return PT_OK;
}

pt_status pt_check_float(const char *op, const pt_tensor *t) {
    if (t->dtype != PT_F32 && t->dtype != PT_F64 && !(t->device.type == PT_DEV_CUDA && t->dtype == PT_BF16))
        return PT_FAIL(PT_ERR_DTYPE, "%s: expected a f32 or f64 tensor, got %s (convert with :to('f32'))", op,
                       pt_dtype_name(t->dtype));
    return PT_OK;
}

pt_status pt_check_ndim(const char *op, const pt_tensor *t, int ndim) {
    if (t->ndim != ndim) {
        char b[128];
        return PT_FAIL(PT_ERR_SHAPE, "%s: expected a %d-d tensor, got shape %s", op, ndim,
                       pt_shape_str(t->ndim, t->shape, b, sizeof b));
    }
    return PT_OK;
}
