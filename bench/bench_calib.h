/* bench_calib.h: what every benchmark measures about the machine in the same run, so that its figures
 * can be compared with perf.md's machine-A numbers: wall and CPU clocks, a median, and the fp32 FMA peak
 * (util/fma_rate.h's register-only FMA loop; perf.md machine A: 117 / 233 GFLOP/s on 1 / 2 threads). Header-only
 * (static functions), included by bench_*.c programs. */
#ifndef RP_BENCH_CALIB_H
#define RP_BENCH_CALIB_H
#include <stdlib.h>
#include <time.h>
#include "tensor/pool.h"
#include "util/fma_rate.h"

/* A vector of one machine register of floats (16 lanes with AVX-512, else 8), unaligned loads allowed: what
 * the benchmarks' own memory-stream loops use, so they build and mean the same on AVX2 and AVX-512 hosts. */
typedef float bench_vf __attribute__((vector_size(RP_FMA_LANES * 4), aligned(4)));

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
/* CPU seconds of the calling thread alone. */
static inline double thread_cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}
static inline int cmp_d(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }
static inline double median(double *v, int n) { qsort(v, (size_t)n, sizeof *v, cmp_d); return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]); }

/* ---- machine limits ---- */
typedef struct fma_ctx { long iters; double flops[64]; int by_thread[64]; } fma_ctx;
static inline void fma_task(void *arg, int ith, int nth, int thread) {
    (void)nth;
    fma_ctx *c = arg;
    c->flops[ith % 64] = rp_fma_loop(c->iters);   /* keep the result alive */
    c->by_thread[thread % 64]++;
}
/* GFLOP/s of the FMA loop on nth threads; with cpu != 0, per CPU-second of the calling thread alone. The work is cut
 * into 16 short tasks per thread (about 0.1 ms each): with one long task per thread, a worker whose vCPU wakes late
 * finds the caller has already taken both, and the "2-thread peak" comes out as the 1-thread one. For the same
 * reason the pool is first kept busy for about 20 ms (its workers awake and spinning, the clocks up), and the
 * figure is the best of 12 repeats of about 2 ms in which every thread ran tasks (a repeat that one thread ran
 * alone measures that thread, not the pool; if none qualifies, the best of all is returned). */
static inline double fma_peak(rp_pool *p, int nth, int cpu) {
    fma_ctx c = { 62500, { 0 }, { 0 } };
    if (!cpu)
        for (double t0 = now_s(); now_s() - t0 < 0.02;) rp_pool_run(p, fma_task, &c, 4 * nth);   /* warm-up */
    double best = 0, best_any = 0;
    for (int r = 0; r < 12; r++) {
        for (int i = 0; i < 64; i++) c.by_thread[i] = 0;
        double t0 = cpu ? thread_cpu_s() : now_s();
        if (cpu)   /* in the calling thread: a pool worker spinning beside it would count as CPU time */
            for (int k = 0; k < 16; k++) fma_task(&c, k, 16, 0);
        else rp_pool_run(p, fma_task, &c, 16 * nth);
        double t = (cpu ? thread_cpu_s() : now_s()) - t0, gf = (double)c.iters * RP_FMA_FLOPS_PER_ITER * 16 * nth / t / 1e9;
        int all = 1;
        for (int i = 0; i < (cpu ? 1 : nth) && i < 64; i++) all &= c.by_thread[i] > 0;
        if (gf > best_any) best_any = gf;
        if (all && gf > best) best = gf;
    }
    return best > 0 ? best : best_any;
}

#endif
