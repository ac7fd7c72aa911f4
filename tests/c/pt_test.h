/* pt_test.h — a tiny C test harness (ctest runs each tests/c/test_*.c as one executable).
 *
 *   PT_TEST(shard_rejects_bad_magic) { ... PT_CHECK(cond); PT_CHECK_OK(pt_fn(...)); ... }
 *   int main(void) { return pt_test_main(); }
 *
 * Prints one line per failed check and, at the end, "N passed, N failed". Exit code 1 on failure.
 */
#ifndef PT_TEST_H
#define PT_TEST_H

#include <math.h>
#include <stdio.h>

#include "pt_status.h"

typedef void (*pt_test_fn)(void);
void pt_test_register(const char *name, pt_test_fn fn);
int pt_test_main(void);
void pt_test_fail(const char *file, int line, const char *what);
int pt_test_current_failed(void);

#define PT_TEST(name)                                                                \
    static void pt_test_##name(void);                                                \
    __attribute__((constructor)) static void pt_test_reg_##name(void) {              \
        pt_test_register(#name, pt_test_##name);                                     \
    }                                                                                \
    static void pt_test_##name(void)

#define PT_CHECK(cond)                                                               \
    do {                                                                             \
        if (!(cond))                                                                 \
            pt_test_fail(__FILE__, __LINE__, #cond);                                 \
    } while (0)
#define PT_CHECK_OK(expr)                                                            \
    do {                                                                             \
        pt_status pt_s_ = (expr);                                                    \
        if (pt_s_ != PT_OK) {                                                        \
            char pt_b_[2300];                                                        \
            snprintf(pt_b_, sizeof pt_b_, "%s -> %s", #expr, pt_last_error());       \
            pt_test_fail(__FILE__, __LINE__, pt_b_);                                 \
        }                                                                            \
    } while (0)
/* expects a failure with the given status whose message contains `needle` */
#define PT_CHECK_ERR(expr, code, needle)                                             \
    do {                                                                             \
        pt_status pt_s_ = (expr);                                                    \
        if (pt_s_ != (code) || !strstr(pt_last_error(), (needle))) {                 \
            char pt_b_[2300];                                                        \
            snprintf(pt_b_, sizeof pt_b_, "%s: expected %s containing '%s', got %s '%s'", \
                     #expr, pt_status_name(code), (needle), pt_status_name(pt_s_),   \
                     pt_last_error());                                               \
            pt_test_fail(__FILE__, __LINE__, pt_b_);                                 \
        }                                                                            \
    } while (0)
#define PT_CHECK_NEAR(a, b, tol)                                                     \
    do {                                                                             \
        double pt_a_ = (a), pt_bv_ = (b);                                            \
        if (!(fabs(pt_a_ - pt_bv_) <= (tol))) {                                      \
            char pt_b_[512];                                                         \
            snprintf(pt_b_, sizeof pt_b_, "%s = %.9g, %s = %.9g (tol %g)", #a, pt_a_, #b, pt_bv_, \
                     (double)(tol));                                                 \
            pt_test_fail(__FILE__, __LINE__, pt_b_);                                 \
        }                                                                            \
    } while (0)

#endif
