/* pool.h: a small thread pool for data-parallel kernels: rp_pool_run calls fn(ctx, i, n) for i in [0, n)
 * with the calling thread taking i = 0. Workers spin briefly between jobs (single-token decoding issues
 * tens of thousands of short jobs a second), then sleep, so an idle pool costs no CPU.
 * Invariants: one rp_pool_run at a time per pool (not reentrant: a job must not call rp_pool_run on its
 * own pool); n never exceeds rp_pool_size. */
#ifndef RP_POOL_H
#define RP_POOL_H
#include "util/err.h"

typedef struct rp_pool rp_pool;
typedef void (*rp_pool_fn)(void *ctx, int ith, int nth);

/* A pool of n_threads threads in all (the caller counts as one); n_threads <= 0 means the machine's cores. */
rp_status rp_pool_new(int n_threads, rp_pool **out);
/* Stop and join the workers. NULL is fine. */
void rp_pool_free(rp_pool *p);
/* Threads in the pool, the caller included. */
int rp_pool_size(const rp_pool *p);
/* Run fn(ctx, i, nth) for every i < nth (nth clamped to [1, size]) and return when all are done. */
void rp_pool_run(rp_pool *p, rp_pool_fn fn, void *ctx, int nth);
/* Number of online CPUs (at least 1); REPRO_THREADS overrides. */
int rp_cpu_count(void);

#endif
