/* ssm_impl.h: internal to tensor/ssm.c and ssm_avx2.c: the scan backward's job (shared by the plain,
 * AVX-512 and AVX2 kernels) and the AVX2 kernels' entry points (declared only where they are compiled:
 * AVX2 and FMA without AVX-512).
 * Invariant: a bwd_job's scratch is allocated (rp_bwd_scratch) before any task runs, so tasks
 * never allocate. */
#ifndef RP_SSM_IMPL_H
#define RP_SSM_IMPL_H
#include <stddef.h>
#include <stdint.h>
#include "tensor/backward.h"
#include "tensor/pool.h"

typedef struct bwd_job {
    int64_t T, D, N;
    const float *x, *dt, *A, *B, *C, *Dskip, *dy;
    float *dx, *ddt, *dA, *dDskip;   /* accumulated into; NULL: not wanted */
    rp_bwd *bw;                      /* per part (a range of tasks on one thread, rp_ssm_scan_backward's bwd_part,
                                      * the tasks' thread argument): dB [T, N] and dC [T, N] partials, then work space */
    size_t per_thread;               /* floats of scratch per part (a multiple of 16) */
    const float *ck;                 /* the forward's checkpoints (rp_ssm_scan's ckpt) */
    int group;                       /* vectorized kernels: blocks of channels (16, or 8 with AVX2) per task */
} bwd_job;

/* What the backward's loops over a chunk prefetch for the chunk before (its lines at offset o of the rows;
 * none before the first chunk, kc 0), a row per step: loop 1 of the subsets from states 0, 4 and 8 reads
 * ahead dt, x and dy (*pr), loop 2 of those from 0 and 4 the dx and ddt lines to update (*pw). */
static inline void bwd_prefetch_rows(const bwd_job *j, int64_t kc, int n0, int64_t o, const float **pr, const float **pw) {
    *pr = !kc ? NULL : n0 == 0 ? j->dt + o : n0 == 4 ? j->x + o : n0 == 8 ? j->dy + o : NULL;
    *pw = !kc ? NULL : n0 == 0 && j->dx ? j->dx + o : n0 == 4 && j->ddt ? j->ddt + o : NULL;
}

/* Blocks per task for nblk blocks of channels on nth threads: as many as max (the dB and dC sums over
 * channels are reduced once per group, so larger groups cost less), in a number of tasks that is a
 * multiple of nth (whole rounds). */
static inline int bwd_group(int64_t nblk, int nth, int max) {
    const int64_t rounds = (nblk + (int64_t)max * nth - 1) / ((int64_t)max * nth), tasks = rounds * nth;
    return (int)((nblk + tasks - 1) / tasks);
}

/* Thread th's scratch (sized before the run, so this never allocates). */
static inline float *bwd_scratch(const bwd_job *j, int th) { return rp_bwd_scratch(j->bw, th, j->per_thread * sizeof(float)); }

#if !defined(__AVX512F__) && defined(__AVX2__) && defined(__FMA__)
/* The forward for N = 16 (rp_ssm_scan's arguments without N; ckpt in the 8-lane layout the AVX2 backward reads). */
void rp_ssm8_scan(rp_pool *pool, int64_t T, int64_t D, const float *x, const float *dt, const float *A, const float *B,
                  const float *C, const float *Dskip, float *state, float *y, float *ckpt);
/* Floats of scratch per thread the N = 16 backward needs past its dB and dC partials. */
size_t rp_ssm8_bwd_floats(void);
/* The most blocks of 8 channels one task of the N = 16 backward takes (bwd_group's max): 256 channels,
 * 17.5-18.3 ms against 19.3-22.3 for 8 blocks in an AVX2 build on the Emerald Rapids host, 2026-12-06
 * (Zen 3 not measured). */
#define RP_SSM8_BWD_GROUP 32
/* One of those tasks (an rp_pool_fn; ctx: the bwd_job, with ck from rp_ssm8_scan). */
void rp_ssm8_bwd_task(void *ctx, int task, int n_tasks, int thread);
#endif
#endif
