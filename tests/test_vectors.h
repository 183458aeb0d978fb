/* test_vectors.h: deterministic random vectors and a relative-error measure shared by the kernel tests
 * (test_ops.c, test_quant.c). The generator is a fixed xorshift, so every run tests the same inputs. */
#ifndef RP_TEST_VECTORS_H
#define RP_TEST_VECTORS_H
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static inline float frand(void) {   /* uniform in [-1, 1) */
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / (1ull << 24))) * 2.0f - 1.0f;
}
static inline float *randv(int64_t n, float scale) {
    float *v = malloc((size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++) v[i] = frand() * scale;
    return v;
}
/* Largest |a - b| relative to the largest |b| (plus a floor). */
static inline double rel_err(const float *a, const float *b, int64_t n) {
    double mx = 1e-6, e = 0;
    for (int64_t i = 0; i < n; i++) { mx = fmax(mx, fabs(b[i])); e = fmax(e, fabs((double)a[i] - b[i])); }
    return e / mx;
}
#endif
