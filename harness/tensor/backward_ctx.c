/* backward_ctx.c: the backward context (rp_bwd): a borrowed thread pool and per-thread scratch that grows
 * on first need and is then reused, so steady-state backward calls allocate nothing.
 * Invariant: scratch[i] is touched only by the pool thread numbered i. */
#include <cblas.h>
#include <stdlib.h>
#include "tensor/backward.h"
#include "tensor/gemm_bf16.h"

#define BWD_MAX_THREADS 64

struct rp_bwd {
    rp_pool *pool;
    struct { void *p; size_t cap; } tmp[BWD_MAX_THREADS + 1];   /* the last one is shared (rp_bwd_shared) */
    int bf16;   /* F32 matmuls through rp_gemm_bf16 (rp_bwd_set_bf16) */
};

/* A backward context over pool (borrowed, may be NULL). */
rp_status rp_bwd_new(rp_pool *pool, rp_bwd **out) {
    *out = NULL;
    if (pool && rp_pool_size(pool) > BWD_MAX_THREADS)
        return rp_fail(RP_ERR_INVAL, "backward: pool of %d threads (at most %d)", rp_pool_size(pool), BWD_MAX_THREADS);
    rp_bwd *b = calloc(1, sizeof *b);
    if (!b) return rp_fail(RP_ERR_NOMEM, "backward: out of memory");
    b->pool = pool;
    openblas_set_num_threads(1);   /* the pool splits the work; each thread calls a single-threaded sgemm */
    *out = b;
    return RP_OK;
}

/* Release a backward context and its scratch. */
void rp_bwd_free(rp_bwd *b) {
    if (!b) return;
    for (int i = 0; i <= BWD_MAX_THREADS; i++) free(b->tmp[i].p);
    free(b);
}

static void *grow(rp_bwd *b, int thread, size_t nbytes) {
    if (b->tmp[thread].cap >= nbytes) return b->tmp[thread].p;
    size_t cap = (nbytes + nbytes / 2 + 63) & ~(size_t)63;
    if (cap < nbytes) return NULL;
    void *p = aligned_alloc(64, cap);
    if (!p) return NULL;
    free(b->tmp[thread].p);
    b->tmp[thread].p = p;
    b->tmp[thread].cap = cap;
    return p;
}

/* Per-thread scratch, 64-byte aligned, grown by half again when too small. */
void *rp_bwd_scratch(rp_bwd *b, int thread, size_t nbytes) {
    if (!b || thread < 0 || thread >= BWD_MAX_THREADS) return NULL;
    return grow(b, thread, nbytes);
}

/* One buffer shared by all threads of a kernel (each writes its own part), reused across calls. */
void *rp_bwd_shared(rp_bwd *b, size_t nbytes) { return b ? grow(b, BWD_MAX_THREADS, nbytes) : NULL; }

/* The pool of a backward context. */
rp_pool *rp_bwd_pool(const rp_bwd *b) { return b ? b->pool : NULL; }

/* Runs fn over n_tasks tasks on the context's pool, or on the caller's thread when there is none. */
void rp_bwd_run(rp_bwd *b, rp_pool_fn fn, void *ctx, int n_tasks) {
    rp_pool *p = rp_bwd_pool(b);
    if (p) { rp_pool_run(p, fn, ctx, n_tasks); return; }
    for (int i = 0; i < n_tasks; i++) fn(ctx, i, n_tasks, 0);
}

/* Route the context's F32 matmuls through bf16 units, or not. */
void rp_bwd_set_bf16(rp_bwd *b, int on) { if (b) b->bf16 = on != 0; }

/* Whether the context's F32 matmuls take the bf16 route. */
int rp_bwd_bf16(const rp_bwd *b) { return b && b->bf16 && rp_gemm_bf16_unit() != RP_BF16_NONE; }

/* Threads of the context's pool (1 without one). */
int rp_bwd_threads(const rp_bwd *b) { rp_pool *p = rp_bwd_pool(b); return p ? rp_pool_size(p) : 1; }

/* Part i of n of [0, N), its length a multiple of align (the last part takes the rest). */
void rp_bwd_split(int64_t N, int i, int n, int64_t align, int64_t *a, int64_t *z) {
    int64_t per = ((N + n - 1) / n + align - 1) / align * align;
    *a = per * i < N ? per * i : N;
    *z = per * (i + 1) < N ? per * (i + 1) : N;
}
