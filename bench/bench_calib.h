/* bench_calib.h: what every benchmark measures about the machine in the same run, so that its figures
 * can be compared with perf.md's machine-A numbers: wall and CPU clocks, a median, and the fp32 FMA peak
 * (a register-only AVX-512 FMA loop; perf.md machine A: 117 / 233 GFLOP/s on 1 / 2 threads). Header-only
 * (static functions), included by bench_*.c programs. */
#ifndef RP_BENCH_CALIB_H
#define RP_BENCH_CALIB_H
#include <immintrin.h>
#include <stdlib.h>
#include <time.h>
#include "tensor/pool.h"

static inline double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}
static inline double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}
static inline int cmp_d(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }
static inline double median(double *v, int n) { qsort(v, (size_t)n, sizeof *v, cmp_d); return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]); }

/* ---- machine limits ---- */
typedef struct fma_ctx { long iters; double flops[64]; } fma_ctx;
static inline void fma_task(void *arg, int ith, int nth, int thread) {
    (void)thread;
    fma_ctx *c = arg;
    /* 12 independent chains in named registers: enough to cover the FMA latency on two pipes */
    __m512 a0 = _mm512_set1_ps(1.0f), a1 = _mm512_set1_ps(1.001f), a2 = _mm512_set1_ps(1.002f), a3 = _mm512_set1_ps(1.003f);
    __m512 a4 = _mm512_set1_ps(1.004f), a5 = _mm512_set1_ps(1.005f), a6 = _mm512_set1_ps(1.006f), a7 = _mm512_set1_ps(1.007f);
    __m512 a8 = _mm512_set1_ps(1.008f), a9 = _mm512_set1_ps(1.009f), a10 = _mm512_set1_ps(1.01f), a11 = _mm512_set1_ps(1.011f);
    const __m512 m = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    for (long it = 0; it < c->iters; it++) {
        a0 = _mm512_fmadd_ps(a0, m, b); a1 = _mm512_fmadd_ps(a1, m, b); a2 = _mm512_fmadd_ps(a2, m, b);
        a3 = _mm512_fmadd_ps(a3, m, b); a4 = _mm512_fmadd_ps(a4, m, b); a5 = _mm512_fmadd_ps(a5, m, b);
        a6 = _mm512_fmadd_ps(a6, m, b); a7 = _mm512_fmadd_ps(a7, m, b); a8 = _mm512_fmadd_ps(a8, m, b);
        a9 = _mm512_fmadd_ps(a9, m, b); a10 = _mm512_fmadd_ps(a10, m, b); a11 = _mm512_fmadd_ps(a11, m, b);
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)), _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    c->flops[ith % 64] = _mm512_reduce_add_ps(s);   /* keep the result alive */
    (void)nth;
}
/* GFLOP/s of the FMA loop on nth threads; with cpu != 0 (one thread), per CPU-second. The work is cut
 * into 16 tasks per thread: with one long task per thread, a worker whose vCPU wakes late finds the caller
 * has already taken both, and the "2-thread peak" comes out as the 1-thread one. */
static inline double fma_peak(rp_pool *p, int nth, int cpu) {
    fma_ctx c = { 250000, { 0 } };
    double best = 0;
    for (int r = 0; r < 5; r++) {
        double t0 = cpu ? cpu_s() : now_s();
        rp_pool_run(p, fma_task, &c, 16 * nth);
        double t = (cpu ? cpu_s() : now_s()) - t0, gf = (double)c.iters * 12 * 16 * 2 * 16 * nth / t / 1e9;
        if (gf > best) best = gf;
    }
    return best;
}

#endif
