/* pool.c: the thread pool behind rp_pool_run. A job is published by bumping a generation counter;
 * workers spin on it for a short while (a few hundred microseconds) and then sleep on a condition
 * variable. The caller waits for every worker's acknowledgement, so ctx may live on its stack. */
#include "tensor/pool.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

#define SPIN_NS 300000L   /* how long an idle worker spins before sleeping */

struct rp_pool {
    int n;                       /* threads including the caller */
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int sleepers, quit;
    _Atomic unsigned long gen;   /* bumped once per job */
    _Atomic int done;            /* workers finished with the current job */
    rp_pool_fn fn;
    void *ctx;
    int nth;
};

typedef struct worker_arg { rp_pool *p; int id; } worker_arg;

static long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static void *worker_main(void *arg) {
    worker_arg *wa = arg;
    rp_pool *p = wa->p;
    int id = wa->id;
    free(wa);
    unsigned long seen = 0;
    for (;;) {
        unsigned long g = atomic_load_explicit(&p->gen, memory_order_acquire);
        if (g == seen) {
            long t0 = now_ns();
            int spins = 0;
            while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen) {
                CPU_RELAX();
                if (++spins % 256 == 0 && now_ns() - t0 > SPIN_NS) {
                    pthread_mutex_lock(&p->mu);
                    p->sleepers++;
                    while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen && !p->quit)
                        pthread_cond_wait(&p->cv, &p->mu);
                    p->sleepers--;
                    pthread_mutex_unlock(&p->mu);
                    break;
                }
            }
        }
        seen = g;
        if (p->quit) return NULL;
        if (id < p->nth) p->fn(p->ctx, id, p->nth);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_acq_rel);
    }
}

/* Number of online CPUs, or REPRO_THREADS when set to a positive integer. */
int rp_cpu_count(void) {
    const char *e = getenv("REPRO_THREADS");
    if (e && atoi(e) > 0) return atoi(e);
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
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_acq_rel);
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

/* Run a job on the pool and wait for it. */
void rp_pool_run(rp_pool *p, rp_pool_fn fn, void *ctx, int nth) {
    if (nth < 1) nth = 1;
    if (!p || p->n == 1 || nth == 1) { for (int i = 0; i < nth; i++) fn(ctx, i, nth); return; }
    if (nth > p->n) nth = p->n;
    p->fn = fn;
    p->ctx = ctx;
    p->nth = nth;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_acq_rel);
    if (p->sleepers) pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    fn(ctx, 0, nth);
    while (atomic_load_explicit(&p->done, memory_order_acquire) < p->n - 1) CPU_RELAX();
}
