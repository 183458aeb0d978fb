/* fma_rate.h: the register-only fp32 FMA loop that every timing in the project calibrates the machine with
 * (the benchmarks' fp32 peak, bench/bench_calib.h; the jamba plugin's per-run machine probe). One loop, so
 * a "fraction of peak" means the same thing wherever it is printed. */
#ifndef RP_UTIL_FMA_RATE_H
#define RP_UTIL_FMA_RATE_H

/* Floating-point operations of one iteration of rp_fma_loop: 12 chains x 16 lanes x 2 (multiply and add). */
#define RP_FMA_FLOPS_PER_ITER (12.0 * 16 * 2)

/* Run iters iterations of 12 independent 16-lane FMA chains in registers; returns a value that depends on
 * every chain (keep it alive, e.g. in a volatile, so the loop is not removed). */
float rp_fma_loop(long iters);

#endif
