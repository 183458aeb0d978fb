/* jamba_machine.c: what the machine gives a timing run at this moment, so a throughput figure measured on
 * a shared host can say so: the 1-minute load average and a one-thread fp32 FMA rate, measured against
 * the wall clock (what this process got now) and against its own CPU clock (the core's calibrated peak,
 * nearly independent of load). Their ratio is the share of a core the timing ran with.
 * Invariants: no allocation; a loop of 12 independent FMA chains in GCC vector registers (16 floats each,
 * AVX-512 where -march allows, split by the compiler otherwise), its result kept alive; never fails: a
 * missing /proc/loadavg reports -1. */
#include <stdio.h>
#include <time.h>
#include "plugins/jamba/jamba.h"

typedef float v16 __attribute__((vector_size(64)));

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* 12 chains (named, so they stay in registers) x 16 lanes x 2 flops per iteration: enough independent FMAs
 * to cover the latency on two pipes; returns a value depending on every chain. */
static float fma_loop(long iters) {
    v16 m, b, a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11;
    for (int i = 0; i < 16; i++) {
        m[i] = 0.999999f; b[i] = 1e-7f;
        a0[i] = 1.0f; a1[i] = 1.001f; a2[i] = 1.002f; a3[i] = 1.003f; a4[i] = 1.004f; a5[i] = 1.005f;
        a6[i] = 1.006f; a7[i] = 1.007f; a8[i] = 1.008f; a9[i] = 1.009f; a10[i] = 1.01f; a11[i] = 1.011f;
    }
    for (long it = 0; it < iters; it++) {
        a0 = a0 * m + b; a1 = a1 * m + b; a2 = a2 * m + b; a3 = a3 * m + b; a4 = a4 * m + b; a5 = a5 * m + b;
        a6 = a6 * m + b; a7 = a7 * m + b; a8 = a8 * m + b; a9 = a9 * m + b; a10 = a10 * m + b; a11 = a11 * m + b;
    }
    v16 s = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)) + ((a8 + a9) + (a10 + a11));
    float t = 0;
    for (int i = 0; i < 16; i++) t += s[i];
    return t;
}

void rp_jamba_machine_probe(rp_jamba_machine *out) {
    const long iters = 250000;   /* 96 MFLOP: about 1-3 ms on one core */
    volatile float sink = 0;
    double best_wall = 0, best_cpu = 0;
    for (int r = 0; r < 5; r++) {
        double w0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
        sink += fma_loop(iters);
        double w = clock_s(CLOCK_MONOTONIC) - w0, c = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
        double flops = (double)iters * 12 * 16 * 2;
        if (w > 0 && flops / w / 1e9 > best_wall) best_wall = flops / w / 1e9;
        if (c > 0 && flops / c / 1e9 > best_cpu) best_cpu = flops / c / 1e9;
    }
    (void)sink;
    out->gflops_wall = best_wall;
    out->gflops_cpu = best_cpu;
    out->load1 = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) { if (fscanf(f, "%lf", &out->load1) != 1) out->load1 = -1; fclose(f); }
}
