/* pt_status.h — errors as values (DESIGN invariant 5).
 *
 * Every C function that can fail returns a pt_status. On failure it records a message (with the
 * C file:line that raised it) in a thread-local buffer through PT_FAIL; the binding layer reads it
 * with pt_last_error() and turns it into a Lua error after releasing what it owns. Library code
 * never calls exit() and never longjmps.
 *
 *   pt_status f(void) {
 *       if (bad) return PT_FAIL(PT_ERR_SHAPE, "matmul: shapes [%d,%d] and [%d,%d] do not fit", ...);
 *       PT_TRY(g());          // propagate the status (and message) of g
 *       return PT_OK;
 *   }
 */
#ifndef PT_STATUS_H
#define PT_STATUS_H

#include <stdarg.h>

typedef enum {
    PT_OK = 0,
    PT_ERR_VALUE,       /* bad argument value */
    PT_ERR_SHAPE,       /* shape mismatch */
    PT_ERR_DTYPE,       /* wrong or unsupported dtype */
    PT_ERR_INDEX,       /* index out of range */
    PT_ERR_IO,          /* file could not be opened/read/written */
    PT_ERR_FORMAT,      /* file contents malformed (bad magic, truncated, ...) */
    PT_ERR_OOM,         /* allocation failed */
    PT_ERR_DEVICE,      /* CUDA / NCCL / MPI failure */
    PT_ERR_UNSUPPORTED, /* feature not built in or not implemented for this case */
    PT_ERR_INTERRUPT,   /* Ctrl-C */
    PT_ERR_LEGALITY,    /* score-first ledger violation in legal mode */
} pt_status;

/* Records "file:line: message" for the calling thread and returns code. */
pt_status pt_error(pt_status code, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
pt_status pt_verror(pt_status code, const char *file, int line, const char *fmt, va_list ap);
/* The last message recorded on this thread ("" if none). */
const char *pt_last_error(void);
/* Prefixes the current message with more context ("loading model.ptz: ..."). Returns code. */
pt_status pt_error_context(pt_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *pt_status_name(pt_status s);

#define PT_FAIL(code, ...) pt_error((code), __FILE__, __LINE__, __VA_ARGS__)
#define PT_TRY(expr)                    \
    do {                                \
        pt_status pt_try_s_ = (expr);   \
        if (pt_try_s_ != PT_OK)         \
            return pt_try_s_;           \
    } while (0)

#endif
