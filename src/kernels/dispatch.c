/* dispatch.c — the (op, device, dtype) -> kernel table (see pt_dispatch.h). */
#include "pt_dispatch.h"

#include <stdint.h>
#include <string.h>

#define PT_KTABLE_CAP 4096 /* power of two */

typedef struct {
    const char *op;
    pt_devtype dev;
    pt_dtype dt;
    pt_kernel_fn fn;
} pt_kentry;

static pt_kentry pt_ktable[PT_KTABLE_CAP];
static int pt_kcount;

static uint32_t pt_khash(const char *op, pt_devtype dev, pt_dtype dt) {
    uint32_t h = 2166136261u;
    for (const char *p = op; *p; p++) h = (h ^ (uint8_t)*p) * 16777619u;
    h = (h ^ (uint32_t)dev) * 16777619u;
    h = (h ^ (uint32_t)dt) * 16777619u;
    return h & (PT_KTABLE_CAP - 1);
}

void pt_kernel_register(const char *op, pt_devtype dev, pt_dtype dt, pt_kernel_fn fn) {
    uint32_t h = pt_khash(op, dev, dt);
    while (pt_ktable[h].op) {
        if (pt_ktable[h].dev == dev && pt_ktable[h].dt == dt && strcmp(pt_ktable[h].op, op) == 0) {
            pt_ktable[h].fn = fn;
            return;
        }
        h = (h + 1) & (PT_KTABLE_CAP - 1);
    }
    if (pt_kcount >= PT_KTABLE_CAP / 2) return; /* full; lookups will report the kernel missing */
    pt_ktable[h] = (pt_kentry){op, dev, dt, fn};
    pt_kcount++;
}

pt_kernel_fn pt_kernel_find(const char *op, pt_devtype dev, pt_dtype dt) {
    uint32_t h = pt_khash(op, dev, dt);
    while (pt_ktable[h].op) {
        if (pt_ktable[h].dev == dev && pt_ktable[h].dt == dt && strcmp(pt_ktable[h].op, op) == 0)
            return pt_ktable[h].fn;
        h = (h + 1) & (PT_KTABLE_CAP - 1);
    }
    return NULL;
}

pt_status pt_kernel_missing(const char *op, pt_devtype dev, pt_dtype dt) {
    return PT_FAIL(PT_ERR_UNSUPPORTED, "op %s has no kernel for dtype %s on %s%s", op, pt_dtype_name(dt),
                   dev == PT_DEV_CPU ? "cpu" : "cuda",
                   dev == PT_DEV_CUDA ? " (not implemented on the GPU yet, or CUDA not built)" : "");
}

void pt_kernel_foreach(void (*fn)(const char *op, pt_devtype dev, pt_dtype dt, void *ud), void *ud) {
    for (int i = 0; i < PT_KTABLE_CAP; i++)
        if (pt_ktable[i].op) fn(pt_ktable[i].op, pt_ktable[i].dev, pt_ktable[i].dt, ud);
}
