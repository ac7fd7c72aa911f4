/* pt_tensor.h — the tensor object: a small view header over refcounted storage (Torch7 THTensor
 * style), dtypes, devices, views, copies and casts. The math lives in src/kernels/; this file only
 * knows memory and layout.
 *
 * Conventions
 *   - shape/stride are in elements; stride may be 0 (expand) and views share storage.
 *   - Every pt_tensor is refcounted: functions that return a tensor through `pt_tensor **out` give the
 *     caller one reference; release it with pt_tensor_release(). Functions never steal references
 *     from their inputs unless their name says so (_steal).
 *   - Errors are pt_status values with a message (pt_status.h).
 *
 * dtypes: f32, f64 (CPU compute types), bf16, f16 (storage; CPU rounds to nearest even on cast),
 *         i64, i32, u16, i8, u8, bool (1 byte, 0/1).
 * devices: cpu, cuda:N (CUDA built in when nvcc was found; see src/kernels/cuda/).
 */
#ifndef PT_TENSOR_H
#define PT_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "pt_status.h"

#define PT_MAX_DIMS 8

typedef enum {
    PT_F32 = 0,
    PT_F64,
    PT_BF16,
    PT_F16,
    PT_I64,
    PT_I32,
    PT_U16,
    PT_I8,
    PT_U8,
    PT_BOOL,
    PT_NDTYPES
} pt_dtype;

typedef enum { PT_DEV_CPU = 0, PT_DEV_CUDA = 1, PT_NDEVTYPES } pt_devtype;

typedef struct {
    pt_devtype type;
    int index; /* CUDA ordinal; 0 for cpu */
} pt_device;

static const pt_device PT_CPU = {PT_DEV_CPU, 0};

typedef struct pt_storage pt_storage;
struct pt_storage {
    int refcount;
    void *data;
    size_t nbytes;
    pt_device device;
    /* how to free data: NULL = the device allocator; else called with free_ctx (mmap, borrowed) */
    void (*free_fn)(pt_storage *s);
    void *free_ctx;
};

struct pt_node; /* autograd node, pt_autograd.h */

typedef struct pt_tensor {
    int refcount;
    pt_dtype dtype;
    pt_device device;
    int ndim;
    int64_t shape[PT_MAX_DIMS];
    int64_t stride[PT_MAX_DIMS];
    int64_t offset; /* elements from storage->data */
    pt_storage *storage;
    /* autograd */
    int requires_grad;        /* leaf flag set by the user, or "some input requires grad" */
    int retain_grad;          /* keep .grad on a non-leaf after backward */
    struct pt_tensor *grad;   /* accumulated gradient (leaves), or during backward */
    struct pt_node *grad_fn;  /* node that produced this tensor, NULL for leaves */
} pt_tensor;

/* ---- dtypes and devices ---- */
size_t pt_dtype_size(pt_dtype dt);
const char *pt_dtype_name(pt_dtype dt);
/* Parses "f32"/"float32"/"float", "bf16"/"bfloat16", "i64"/"int64"/"long", ... */
pt_status pt_dtype_parse(const char *name, pt_dtype *out);
int pt_dtype_is_float(pt_dtype dt); /* f32 f64 bf16 f16 */
int pt_dtype_is_int(pt_dtype dt);   /* i64 i32 u16 i8 u8 bool */
/* "cpu", "cuda", "cuda:1" */
pt_status pt_device_parse(const char *name, pt_device *out);
const char *pt_device_str(pt_device d, char *buf, size_t n);
int pt_device_eq(pt_device a, pt_device b);

/* bf16 / f16 conversions, round to nearest even (NaN stays NaN). */
uint16_t pt_f32_to_bf16(float f);
float pt_bf16_to_f32(uint16_t h);
uint16_t pt_f32_to_f16(float f);
float pt_f16_to_f32(uint16_t h);

/* ---- storage ---- */
pt_status pt_storage_new(pt_storage **out, size_t nbytes, pt_device dev);
/* Wraps memory owned elsewhere; free_fn(s) is called when the last reference goes. */
pt_status pt_storage_wrap(pt_storage **out, void *data, size_t nbytes, pt_device dev,
                          void (*free_fn)(pt_storage *), void *free_ctx);
void pt_storage_retain(pt_storage *s);
void pt_storage_release(pt_storage *s);

/* Device allocator hooks (the CUDA backend installs its caching allocator here). */
typedef struct {
    pt_status (*alloc)(void **ptr, size_t nbytes, int device);
    void (*free)(void *ptr, size_t nbytes, int device);
    pt_status (*memcpy_h2d)(void *dst, const void *src, size_t n, int device);
    pt_status (*memcpy_d2h)(void *dst, const void *src, size_t n, int device);
    pt_status (*memcpy_d2d)(void *dst, const void *src, size_t n, int device);
    pt_status (*memset0)(void *dst, size_t n, int device);
} pt_device_allocator;
void pt_set_device_allocator(pt_devtype type, const pt_device_allocator *a);
const pt_device_allocator *pt_get_device_allocator(pt_devtype type);

/* ---- tensors ---- */
int64_t pt_shape_numel(int ndim, const int64_t *shape);
int64_t pt_tensor_numel(const pt_tensor *t);
/* The product of all dims but the last (the rows of a [..., C] tensor; 1 for a scalar or a 1-d tensor). */
int64_t pt_tensor_rows(const pt_tensor *t);
int pt_tensor_is_contiguous(const pt_tensor *t);
/* Pointer to element 0 of the view (storage data + offset); NULL for empty CUDA storage. */
void *pt_tensor_data(const pt_tensor *t);
/* "[2, 3, 4]" */
const char *pt_shape_str(int ndim, const int64_t *shape, char *buf, size_t n);

pt_status pt_tensor_empty(pt_tensor **out, pt_dtype dt, pt_device dev, int ndim, const int64_t *shape);
pt_status pt_tensor_zeros(pt_tensor **out, pt_dtype dt, pt_device dev, int ndim, const int64_t *shape);
pt_status pt_tensor_full(pt_tensor **out, pt_dtype dt, pt_device dev, int ndim, const int64_t *shape,
                         double value);
/* A tensor with the same dtype/device/shape as t (contiguous). */
pt_status pt_tensor_empty_like(pt_tensor **out, const pt_tensor *t);
pt_status pt_tensor_zeros_like(pt_tensor **out, const pt_tensor *t);
/* A new view header over t's storage with the given geometry (no checks beyond bounds). */
pt_status pt_tensor_view_of(pt_tensor **out, const pt_tensor *t, int ndim, const int64_t *shape,
                            const int64_t *stride, int64_t offset);
void pt_tensor_retain(pt_tensor *t);
void pt_tensor_release(pt_tensor *t);

/* Raw (non-autograd) layout operations; the differentiable versions are in pt_ops.h. */
pt_status pt_tensor_contiguous_raw(pt_tensor **out, pt_tensor *t); /* retains t if already contiguous */
/* Copies src into dst elementwise (shapes must match, dtypes may differ: cast). Any devices. */
pt_status pt_tensor_copy_(pt_tensor *dst, const pt_tensor *src);
/* New tensor with dtype dt and device dev (a copy, or t itself retained when nothing changes and
 * force_copy is 0). */
pt_status pt_tensor_to(pt_tensor **out, pt_tensor *t, pt_dtype dt, pt_device dev, int force_copy);
pt_status pt_tensor_fill_(pt_tensor *t, double value);

/* Element access for scalars and tests (CPU only): flat index in view order. */
pt_status pt_tensor_get_flat(const pt_tensor *t, int64_t i, double *v);
pt_status pt_tensor_set_flat(pt_tensor *t, int64_t i, double v);
/* Exact integer read for integer dtypes (no trip through double). */
pt_status pt_tensor_get_flat_i64(const pt_tensor *t, int64_t i, int64_t *v);
/* Reads element at a multi-index (ndim entries). */
pt_status pt_tensor_get(const pt_tensor *t, const int64_t *idx, double *v);

/* Checks: return PT_ERR_* with a message naming what (op) and both shapes/dtypes. */
pt_status pt_check_same_device(const char *op, const pt_tensor *a, const pt_tensor *b);
pt_status pt_check_dtype(const char *op, const pt_tensor *t, pt_dtype dt);
pt_status pt_check_float(const char *op, const pt_tensor *t);   /* f32 or f64 on cpu */
pt_status pt_check_ndim(const char *op, const pt_tensor *t, int ndim);

/* Numbers of live tensors/storages and host bytes held (for leak tests). */
typedef struct {
    int64_t live_tensors;
    int64_t live_storages;
    int64_t host_bytes;
    int64_t device_bytes;
} pt_tensor_stats;
pt_tensor_stats pt_tensor_get_stats(void);

#endif
