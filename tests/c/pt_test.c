/* pt_test.c — runner for pt_test.h. */
#include "pt_test.h"

#include <string.h>

#define PT_TEST_MAX 512
static struct {
    const char *name;
    pt_test_fn fn;
} pt_tests[PT_TEST_MAX];
static int pt_ntests, pt_cur_failed;

void pt_test_register(const char *name, pt_test_fn fn) {
    if (pt_ntests < PT_TEST_MAX) {
        pt_tests[pt_ntests].name = name;
        pt_tests[pt_ntests].fn = fn;
        pt_ntests++;
    }
}

void pt_test_fail(const char *file, int line, const char *what) {
    printf("  FAIL %s:%d: %s\n", file, line, what);
    pt_cur_failed++;
}

int pt_test_current_failed(void) { return pt_cur_failed; }

int pt_test_main(void) {
    int passed = 0, failed = 0;
    for (int i = 0; i < pt_ntests; i++) {
        pt_cur_failed = 0;
        pt_tests[i].fn();
        if (pt_cur_failed) {
            printf("not ok %s\n", pt_tests[i].name);
            failed++;
        } else {
            printf("ok %s\n", pt_tests[i].name);
            passed++;
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
