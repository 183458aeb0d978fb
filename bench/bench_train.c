/* bench_train.c: training-side benchmarks. AdamW over 134.5M f32 parameters (SmolLM2-135M's count) on 1 and
 * 2 threads against llm.c's ~85 ms on 1 thread (../shared/reference/perf.md, machine A), with the memory
 * traffic it implies (28 bytes per parameter: p, g, m, v read; p, m, v written) as GB/s. The same run
 * measures a plain copy of as many bytes for the machine's bandwidth, since machines of this kind differ.
 * Prints the median of 5 timed steps after a warm-up step. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "nn/adamw.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

int main(void) {
    const int64_t n = 134515008;   /* SmolLM2-135M parameters */
    float *p = malloc((size_t)n * 4), *g = malloc((size_t)n * 4), *m = calloc((size_t)n, 4), *v = calloc((size_t)n, 4);
    if (!p || !g || !m || !v) { fprintf(stderr, "bench_train: out of memory for %lld parameters\n", (long long)n); return 1; }
    for (int64_t i = 0; i < n; i++) { p[i] = (float)(i % 1000) * 1e-3f; g[i] = (float)((i * 7) % 1000) * 1e-3f - 0.5f; }
    rp_adamw o = { 0.9f, 0.95f, 1e-8f, 0.1f };
    double copy_s = 0;
    {   /* bandwidth reference: read 2 arrays, write 1, in the same loop shape */
        double t[5];
        for (int r = 0; r < 6; r++) {
            double t0 = now();
            for (int64_t i = 0; i < n; i++) m[i] = p[i] + g[i];
            if (r) t[r - 1] = now() - t0;
        }
        qsort(t, 5, sizeof *t, cmp);
        copy_s = t[2];
        memset(m, 0, (size_t)n * 4);
    }
    printf("stream a+b (12 B/param, 1 thread): %.1f ms = %.1f GB/s\n", copy_s * 1e3, 12.0 * n / copy_s / 1e9);
    for (int nth = 1; nth <= 2; nth++) {
        rp_pool *pool = NULL;
        if (rp_pool_new(nth, &pool) != RP_OK) return 1;
        double t[5];
        for (int r = 0; r < 6; r++) {
            double t0 = now();
            if (rp_adamw_update(&o, pool, p, g, m, v, n, r + 1, 1e-4f, 1.0f, 1) != RP_OK) return 1;
            if (r) t[r - 1] = now() - t0;
        }
        qsort(t, 5, sizeof *t, cmp);
        printf("AdamW over %lld params, %d thread%s: %.1f ms (median of 5) = %.1f GB/s; llm.c 85 ms on 1 thread (perf.md machine A): %.2fx\n",
               (long long)n, nth, nth > 1 ? "s" : "", t[2] * 1e3, 28.0 * n / t[2] / 1e9, 0.085 / t[2]);
        rp_pool_free(pool);
    }
    free(p); free(g); free(m); free(v);
    return 0;
}
