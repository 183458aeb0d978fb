/* bench_model.h: model workloads shared by the benchmarks that time the engine: pp (prompt processing of
 * n tokens in one forward, the llama-bench pp512 figure). Header-only (static functions), included by
 * bench_*.c programs after bench_calib.h. Token ids are a fixed arithmetic sequence, the same in every
 * benchmark, so rates are comparable across programs and commits. */
#ifndef RP_BENCH_MODEL_H
#define RP_BENCH_MODEL_H
#include <stdio.h>
#include <stdlib.h>
#include "nn/llama.h"

/* Median tokens per wall second of reps forwards of n tokens from an empty cache (logits of the last
 * token only); *cpu_rate (may be NULL) receives the median per CPU-second of the process. Exits the
 * benchmark on an engine error (a benchmark, not library code). */
static inline double bench_pp(rp_model *m, rp_session *s, int n, int reps, double *cpu_rate) {
    int32_t *t = malloc((size_t)n * sizeof *t);
    int V = rp_model_config(m)->vocab;
    if (!t || reps > 8) { fprintf(stderr, "bench_pp: bad arguments\n"); exit(1); }
    for (int i = 0; i < n; i++) t[i] = (int32_t)((i * 7919 + 11) % V);
    double v[8], c[8];
    for (int r = 0; r < reps; r++) {
        rp_session_reset(s);
        double t0 = now_s(), c0 = cpu_s();
        if (rp_session_forward(s, t, n, RP_LOGITS_LAST, NULL, NULL) != RP_OK) { fprintf(stderr, "pp: %s\n", rp_errmsg()); exit(1); }
        v[r] = n / (now_s() - t0);
        c[r] = n / (cpu_s() - c0);
    }
    free(t);
    if (cpu_rate) *cpu_rate = median(c, reps);
    return median(v, reps);
}

#endif
