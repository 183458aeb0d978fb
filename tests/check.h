/* check.h: the minimal TAP-style assertions every C test uses. A failed CHECK prints file:line and the
 * expression, and the test exits non-zero at the end (checks_done). */
#ifndef RP_CHECK_H
#define RP_CHECK_H
#include <math.h>
#include <stdio.h>

static int checks_run, checks_failed;
#define CHECK(cond) do { checks_run++; if (!(cond)) { checks_failed++; \
    fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define CHECK_MSG(cond, ...) do { checks_run++; if (!(cond)) { checks_failed++; \
    fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)
#define CHECK_NEAR(a, b, tol) CHECK_MSG(fabs((double)(a) - (double)(b)) <= (tol), "%.9g vs %.9g (tol %g)", (double)(a), (double)(b), (double)(tol))
static inline int checks_done(const char *name) {
    printf("%s %s: %d checks, %d failed\n", checks_failed ? "not ok" : "ok", name, checks_run, checks_failed);
    return checks_failed ? 1 : 0;
}
#endif
