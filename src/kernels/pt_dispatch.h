/* pt_dispatch.h — the kernel table, keyed by (op name, device type, dtype).
 *
 * Kernel files register their functions at load time:
 *
 *   static void add_f32(const pt_binary_args *a) { ... }
 *   PT_REGISTER_KERNEL(binary_add, PT_DEV_CPU, PT_F32, add_f32)
 *
 * and op fronts (src/kernels/<family>.c) look them up:
 *
 *   pt_binary_kernel k = (pt_binary_kernel)pt_kernel_find("binary_add", dev, dt);
 *   if (!k) return pt_kernel_missing("binary_add", dev, dt);   // clear "not implemented" error
 *
 * Each family's header (pt_ops.h / the family header) documents its kernel signature. The table is a
 * small open-addressing hash filled by constructors, so a CUDA or CPU file adds kernels without
 * editing any central list.
 */
#ifndef PT_DISPATCH_H
#define PT_DISPATCH_H

#include "../host/pt_tensor.h"

typedef void (*pt_kernel_fn)(void);

void pt_kernel_register(const char *op, pt_devtype dev, pt_dtype dt, pt_kernel_fn fn);
pt_kernel_fn pt_kernel_find(const char *op, pt_devtype dev, pt_dtype dt);
/* Returns PT_ERR_UNSUPPORTED with "op X has no kernel for dtype Y on device Z". */
pt_status pt_kernel_missing(const char *op, pt_devtype dev, pt_dtype dt);
/* Calls fn(op, dev, dt) for every registered kernel (for the test that every CPU op has CUDA). */
void pt_kernel_foreach(void (*fn)(const char *op, pt_devtype dev, pt_dtype dt, void *ud), void *ud);

#define PT_REGISTER_KERNEL(opname, dev, dt, fn)                                              \
    __attribute__((constructor)) static void pt_reg_##opname##_##dt##_##fn(void) {           \
        pt_kernel_register(#opname, dev, dt, (pt_kernel_fn)(fn));                            \
    }

#endif
