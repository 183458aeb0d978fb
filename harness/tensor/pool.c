/* pool.c: the thread pool behind rp_pool_run.
 * A job is published in one of four descriptor slots (slot = generation % 4) and announced through one
 * 64-bit atomic word holding (generation << 32 | next task). Threads claim a task with a compare-and-swap
 * on that word, which also proves the job they read is still the current one: a slot is rewritten only
 * three generations later, and the generation only grows. The caller waits for the finished-task count,
 * not for the workers, so a descheduled worker costs nothing unless it holds a task.
 * Idle workers spin for SPIN_NS, then sleep on a condition variable. A thread running a task records the
 * pool and its thread id (thread-local), so an rp_pool_run on the same pool from inside a task runs inline. */
#include "tensor/pool.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

#define SPIN_NS 200000L   /* how long an idle worker spins before sleeping */

typedef struct job { rp_pool_fn fn; void *ctx; int n_tasks; } job;

struct rp_pool {
    int n;                          /* threads including the caller */
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    _Atomic int sleepers;           /* workers asleep (or about to be) on cv */
    int quit;
    job slots[4];
    _Atomic uint64_t state;         /* generation << 32 | next unclaimed task */
    _Atomic int done;               /* tasks finished in the current job */
    uint32_t gen;                   /* caller side: the current generation */
};

typedef struct worker_arg { rp_pool *p; int id; } worker_arg;

static _Thread_local const rp_pool *task_pool;   /* the pool whose task this thread is running, if any */
static _Thread_local int task_thread;            /* and its thread id there */

/* Run task i of a job on this thread, marked as inside p's task. */
static void run_task(const rp_pool *p, rp_pool_fn fn, void *ctx, int i, int n, int thread) {
    const rp_pool *outer = task_pool;
    int outer_thread = task_thread;
    task_pool = p;
    task_thread = thread;
    fn(ctx, i, n, thread);
    task_pool = outer;
    task_thread = outer_thread;
}

static long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/* Claim and run tasks of generation g until none is left (or the job changed). */
static void work_on(rp_pool *p, uint32_t g, int thread) {
    const job *j = &p->slots[g % 4];
    rp_pool_fn fn = j->fn;
    void *ctx = j->ctx;
    uint32_t n = (uint32_t)j->n_tasks;
    uint64_t s = atomic_load_explicit(&p->state, memory_order_acquire);
    for (;;) {
        if ((uint32_t)(s >> 32) != g || (uint32_t)s >= n) return;
        if (atomic_compare_exchange_weak_explicit(&p->state, &s, s + 1, memory_order_acq_rel, memory_order_acquire)) {
            run_task(p, fn, ctx, (int)(uint32_t)s, (int)n, thread);
            atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
            s = atomic_load_explicit(&p->state, memory_order_acquire);
        }
    }
}

static void *worker_main(void *arg) {
    worker_arg *wa = arg;
    rp_pool *p = wa->p;
    int id = wa->id;
    free(wa);
    uint32_t seen = 0;
    for (;;) {
        uint32_t g = (uint32_t)(atomic_load_explicit(&p->state, memory_order_acquire) >> 32);
        if (g == seen) {
            long t0 = now_ns();
            int spins = 0;
            while ((g = (uint32_t)(atomic_load_explicit(&p->state, memory_order_acquire) >> 32)) == seen) {
                CPU_RELAX();
                if (++spins % 128 == 0 && now_ns() - t0 > SPIN_NS) {
                    pthread_mutex_lock(&p->mu);
                    atomic_fetch_add(&p->sleepers, 1);   /* seq_cst: pairs with the caller's store of state */
                    while ((g = (uint32_t)(atomic_load(&p->state) >> 32)) == seen && !p->quit)
                        pthread_cond_wait(&p->cv, &p->mu);
                    atomic_fetch_sub(&p->sleepers, 1);
                    int quit = p->quit;
                    pthread_mutex_unlock(&p->mu);
                    if (quit) return NULL;
                    break;
                }
            }
        }
        seen = g;
        work_on(p, g, id);
    }
}

/* Number of online CPUs, or REPRO_THREADS when set to a positive integer. */
int rp_cpu_count(void) {
    const char *e = getenv("REPRO_THREADS");
    if (e && atoi(e) > 0) return atoi(e);
    return rp_cpus_online();
}

/* CPUs online: what a load average is measured against, whatever REPRO_THREADS says. */
int rp_cpus_online(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* Start n_threads - 1 workers. */
rp_status rp_pool_new(int n_threads, rp_pool **out) {
    if (n_threads <= 0) n_threads = rp_cpu_count();
    if (n_threads > 256) return rp_fail(RP_ERR_INVAL, "thread pool: %d threads is too many (max 256)", n_threads);
    rp_pool *p = calloc(1, sizeof *p);
    if (!p) return rp_fail(RP_ERR_NOMEM, "thread pool: out of memory");
    p->n = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    if (!p->threads) { free(p); return rp_fail(RP_ERR_NOMEM, "thread pool: out of memory"); }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (wa) { wa->p = p; wa->id = i; }
        if (!wa || pthread_create(&p->threads[i], NULL, worker_main, wa) != 0) {
            free(wa);
            p->n = i;
            rp_pool_free(p);
            return rp_fail(RP_ERR_NOMEM, "thread pool: cannot start thread %d of %d", i, n_threads);
        }
    }
    *out = p;
    return RP_OK;
}

/* Stop and join the workers. */
void rp_pool_free(rp_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    p->gen++;
    p->slots[p->gen % 4] = (job){ NULL, NULL, 0 };
    atomic_store_explicit(&p->state, (uint64_t)p->gen << 32, memory_order_release);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p);
}

/* Threads in the pool, caller included. */
int rp_pool_size(const rp_pool *p) { return p ? p->n : 1; }

/* Publish a job, take part in it, wait for every task to finish. */
void rp_pool_run(rp_pool *p, rp_pool_fn fn, void *ctx, int n_tasks) {
    if (n_tasks <= 0) return;
    if (p && task_pool == p) {   /* called from one of p's tasks: inline, on this thread's scratch */
        for (int i = 0; i < n_tasks; i++) fn(ctx, i, n_tasks, task_thread);
        return;
    }
    if (!p || p->n == 1 || n_tasks == 1) { for (int i = 0; i < n_tasks; i++) fn(ctx, i, n_tasks, 0); return; }
    uint32_t g = ++p->gen;
    if (g == 0) g = ++p->gen;   /* generation 0 means "nothing yet" to a fresh worker */
    p->slots[g % 4] = (job){ fn, ctx, n_tasks };
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    atomic_store(&p->state, (uint64_t)g << 32);   /* seq_cst: either we see a sleeper or it sees the job */
    if (atomic_load(&p->sleepers)) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    work_on(p, g, 0);
    for (int spins = 0; atomic_load_explicit(&p->done, memory_order_acquire) < n_tasks; spins++) {
        if (spins < 4096) CPU_RELAX();
        else sched_yield();   /* a worker holding a task was descheduled: let it run */
    }
}
