/* fma_rate.h: the register-only fp32 FMA loop that every timing in the project calibrates the machine with
 * (the benchmarks' fp32 peak, bench/bench_calib.h; the jamba plugin's per-run machine probe). One loop, so
 * a "fraction of peak" means the same thing wherever it is printed. */
#ifndef RP_UTIL_FMA_RATE_H
#define RP_UTIL_FMA_RATE_H

/* Lanes of one chain: a full vector register of floats (16 with AVX-512, else 8: twelve 16-lane chains on
 * AVX2's sixteen 256-bit registers spill to the stack, and the loop measured 8 GFLOP/s on a Zen 3 core that
 * does about 100). */
#if defined(__AVX512F__)
#define RP_FMA_LANES 16
#else
#define RP_FMA_LANES 8
#endif

/* Floating-point operations of one iteration of rp_fma_loop: 12 chains x RP_FMA_LANES x 2 (multiply and add). */
#define RP_FMA_FLOPS_PER_ITER (12.0 * RP_FMA_LANES * 2)

/* Run iters iterations of 12 independent RP_FMA_LANES-lane FMA chains in registers; returns a value that
 * depends on every chain (keep it alive, e.g. in a volatile, so the loop is not removed). */
float rp_fma_loop(long iters);

#endif
