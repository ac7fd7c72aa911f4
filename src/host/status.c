/* status.c — thread-local error messages for pt_status (see pt_status.h). */
#include "pt_status.h"

#include <stdio.h>  /* vsnprintf */
#include <string.h> /* strrchr, memmove, strlen */

#define PT_ERRMSG_MAX 2048
static _Thread_local char pt_errmsg[PT_ERRMSG_MAX];

static const char *pt_basename(const char *path) {
    /* keep "host/tensor.c" rather than the whole build path */
    const char *s = strstr(path, "src/");
    return s ? s + 4 : path;
}

pt_status pt_verror(pt_status code, const char *file, int line, const char *fmt, va_list ap) {
    vsnprintf(pt_errmsg, sizeof pt_errmsg, fmt, ap);
    if (file) {
        size_t len = strlen(pt_errmsg);
        snprintf(pt_errmsg + len, sizeof pt_errmsg - len, " [%s:%d]", pt_basename(file), line);
    }
    return code;
}

pt_status pt_error(pt_status code, const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    pt_verror(code, file, line, fmt, ap);
    va_end(ap);
    return code;
}

pt_status pt_error_context(pt_status code, const char *fmt, ...) {
    char prefix[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    size_t lp = strlen(prefix), lo = strlen(pt_errmsg);
    if (lp + 2 + lo >= PT_ERRMSG_MAX) lo = PT_ERRMSG_MAX - 1 - lp - 2;
    memmove(pt_errmsg + lp + 2, pt_errmsg, lo);
    memcpy(pt_errmsg, prefix, lp);
    pt_errmsg[lp] = ':';
    pt_errmsg[lp + 1] = ' ';
    pt_errmsg[lp + 2 + lo] = 0;
    return code;
}

const char *pt_last_error(void) { return pt_errmsg; }

const char *pt_status_name(pt_status s) {
    switch (s) {
    case PT_OK: return "ok";
    case PT_ERR_VALUE: return "value error";
    case PT_ERR_SHAPE: return "shape error";
    case PT_ERR_DTYPE: return "dtype error";
    case PT_ERR_INDEX: return "index error";
    case PT_ERR_IO: return "i/o error";
    case PT_ERR_FORMAT: return "format error";
    case PT_ERR_OOM: return "out of memory";
    case PT_ERR_DEVICE: return "device error";
    case PT_ERR_UNSUPPORTED: return "unsupported";
    case PT_ERR_INTERRUPT: return "interrupted";
    case PT_ERR_LEGALITY: return "legality violation";
    }
    return "unknown error";
}
