/* jamba_machine.c: what the machine gives a timing run at this moment, so a throughput figure measured on
 * a shared host can say so: the 1-minute load average and a one-thread fp32 FMA rate, measured against
 * the wall clock (what this process got now) and against its own CPU clock (the core's calibrated peak,
 * nearly independent of load). Their ratio is the share of a core the timing ran with.
 * Invariants: no allocation; the FMA loop is the benchmarks' own (util/fma_rate.h), its result kept alive;
 * never fails: a missing /proc/loadavg reports -1. */
#include <stdio.h>
#include <time.h>
#include "plugins/jamba/jamba.h"
#include "util/fma_rate.h"

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void rp_jamba_machine_probe(rp_jamba_machine *out) {
    const long iters = 250000;   /* 96 MFLOP: about 1-3 ms on one core */
    volatile float sink = 0;
    double best_wall = 0, best_cpu = 0;
    for (int r = 0; r < 5; r++) {
        double w0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
        sink += rp_fma_loop(iters);
        double w = clock_s(CLOCK_MONOTONIC) - w0, c = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
        double flops = (double)iters * RP_FMA_FLOPS_PER_ITER;
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
