/* pool.h: a small thread pool for data-parallel kernels. rp_pool_run(p, fn, ctx, n_tasks) runs
 * fn(ctx, task, n_tasks, thread) once for every task in [0, n_tasks); tasks are claimed dynamically by
 * whichever thread is free (the caller takes part), so a worker the OS has descheduled never holds up
 * the others: they take its share. `thread` (in [0, rp_pool_size)) identifies the running thread, for
 * per-thread scratch. Workers spin briefly between jobs (decoding issues tens of thousands of short
 * jobs a second), then sleep, so an idle pool costs no CPU.
 * A task may call rp_pool_run on its own pool: the inner job then runs all its tasks inline on that thread
 * (with that thread's id), so a kernel that splits its work can be called from tasks that split theirs.
 * Invariants: one top-level rp_pool_run at a time per pool; when rp_pool_run returns every task has finished. */
#ifndef RP_POOL_H
#define RP_POOL_H
#include "util/err.h"

typedef struct rp_pool rp_pool;
typedef void (*rp_pool_fn)(void *ctx, int task, int n_tasks, int thread);

/* A pool of n_threads threads in all (the caller counts as one); n_threads <= 0 means the machine's cores. */
rp_status rp_pool_new(int n_threads, rp_pool **out);
/* Stop and join the workers. NULL is fine. */
void rp_pool_free(rp_pool *p);
/* Threads in the pool, the caller included. */
int rp_pool_size(const rp_pool *p);
/* Run fn for every task in [0, n_tasks) and return when all are done (n_tasks <= 0: nothing). */
void rp_pool_run(rp_pool *p, rp_pool_fn fn, void *ctx, int n_tasks);
/* The default thread count: REPRO_THREADS when set, else the online CPUs (at least 1). */
int rp_cpu_count(void);

/* CPUs online (sysconf), for reporting a load average against the machine. */
int rp_cpus_online(void);

#endif
