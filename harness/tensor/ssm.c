/* ssm.c: the Mamba selective scan (see ssm.h): fast forward (AVX-512, channels across the 16 lanes, one
 * vector of channels per block with its 16 states in registers, a chunk of steps at a time, reading and
 * writing the rows directly with software prefetch one chunk ahead; the last block masked; a training
 * forward also saves each block's states every RP_SCAN_CKPT_STEPS steps) and backward (the same lane
 * layout, a few states at a time: per RP_SCAN_CKPT_STEPS-step chunk in reverse, from those checkpoints,
 * the decays and states are recomputed into L1 and the adjoint recurrence runs back through them in
 * registers; plain per channel when N != 16 or without AVX-512 or AVX2). With AVX2 and FMA instead of AVX-512, the
 * same designs on 8 lanes run from ssm_avx2.c.
 * Invariant: every version computes the same recurrence in fp32; only exp and summation order differ. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "tensor/ops_ref.h"
#include "tensor/ssm.h"
#include "tensor/ssm_impl.h"

#if defined(__AVX512F__)
#include "tensor/ssm_exp.h"

typedef struct scan_job {
    int64_t T, D, N;
    const float *x, *dt, *A, *B, *C, *Dskip;
    float *state, *y;
    float *ck;   /* NULL, or the checkpoints: [chunk][block][state][lane], each block's states before the chunk */
} scan_job;

/* A task owns SCAN_GROUP blocks of 16 channels (one vector, one 64-byte line of a row when D is a multiple of
 * 16) and walks its steps a chunk of SCAN_CHUNK at a time, block by block. Within a block's chunk all 16
 * states stay in registers and the step's output is summed over them in registers, so a step reads its
 * dt and x straight from their rows and writes y once: no work space beyond the block's decay constants and
 * its states between chunks. Rows are D floats apart (a new page every step, which the hardware prefetcher
 * does not follow), so each step also prefetches into L2 the lines its block reads and writes one chunk
 * later. */
#define SCAN_GROUP 16
#define SCAN_CHUNK 32
_Static_assert(SCAN_CHUNK % RP_SCAN_CKPT_STEPS == 0, "a chunk holds whole checkpoint intervals");
#define SCAN_UNROLL _Pragma("GCC unroll 16")

/* One block's decay constants (A·log2 e as hi + lo, transposed to [state][lane]) and its states. */
typedef struct scan_blk { _Alignas(64) float hi[16][16], lo[16][16], st[16][16]; } scan_blk;

/* Steps t0..t0+L-1 of the block of channels c.. (lane mask m): each step's 16 decays, the states through
 * them, y = Σ_n C·s + Dskip·x; then prefetches the block's lines of the step one chunk ahead (x and dt to
 * read, y to write; a prefetch never faults, so past the last row it is harmless). */
static void scan_block16(const scan_job *j, scan_blk *w, int64_t c, __mmask16 m, int64_t t0, int64_t L) {
    const int64_t D = j->D;
    const float *x = j->x + t0 * D + c, *dt = j->dt + t0 * D + c, *B = j->B + t0 * 16, *C = j->C + t0 * 16;
    float *y = j->y + t0 * D + c;
    const __m512 dk = j->Dskip ? _mm512_maskz_loadu_ps(m, j->Dskip + c) : _mm512_setzero_ps();
    __m512 s[16];
    SCAN_UNROLL for (int n = 0; n < 16; n++) s[n] = _mm512_load_ps(w->st[n]);
    for (int64_t i = 0; i < L; i++, x += D, dt += D, y += D, B += 16, C += 16) {
        const __m512 d = _mm512_maskz_loadu_ps(m, dt), xv = _mm512_maskz_loadu_ps(m, x), u = _mm512_mul_ps(d, xv);
        __m512 y0 = _mm512_mul_ps(dk, xv), y1 = _mm512_setzero_ps();
        SCAN_UNROLL for (int n = 0; n < 16; n++) {
            const __m512 e = rp_ssm_exp_ps(d, _mm512_load_ps(w->hi[n]), _mm512_load_ps(w->lo[n]));
            s[n] = _mm512_fmadd_ps(e, s[n], _mm512_mul_ps(u, _mm512_set1_ps(B[n])));
            if (n & 1) y1 = _mm512_fmadd_ps(_mm512_set1_ps(C[n]), s[n], y1);
            else y0 = _mm512_fmadd_ps(_mm512_set1_ps(C[n]), s[n], y0);
        }
        _mm512_mask_storeu_ps(y, m, _mm512_add_ps(y0, y1));
        _mm_prefetch((const char *)(x + SCAN_CHUNK * D), _MM_HINT_T0);
        _mm_prefetch((const char *)(dt + SCAN_CHUNK * D), _MM_HINT_T0);
        __builtin_prefetch(y + SCAN_CHUNK * D, 1, 2);
    }
    SCAN_UNROLL for (int n = 0; n < 16; n++) _mm512_store_ps(w->st[n], s[n]);
}

/* A task: its (up to) SCAN_GROUP blocks of 16 channels through all steps, a chunk at a time. */
static void scan_task(void *ctx, int task, int n_tasks, int thread) {
    (void)n_tasks; (void)thread;
    const scan_job *j = ctx;
    const int64_t D = j->D, nb_all = (D + 15) / 16, b0 = (int64_t)task * SCAN_GROUP;
    const int nb = (int)(b0 + SCAN_GROUP < nb_all ? SCAN_GROUP : nb_all - b0);
    scan_blk w[SCAN_GROUP];
    for (int b = 0; b < nb; b++)
        for (int l = 0; l < 16; l++) {
            const int64_t c = (b0 + b) * 16 + l;
            for (int n = 0; n < 16; n++) {
                if (c < D) {
                    rp_ssm_exp_split(j->A[c * 16 + n], &w[b].hi[n][l], &w[b].lo[n][l]);   /* exp(dt·A) = 2^(dt·A·log2 e) */
                    w[b].st[n][l] = j->state[c * 16 + n];
                } else w[b].hi[n][l] = w[b].lo[n][l] = w[b].st[n][l] = 0;
            }
        }
    for (int64_t t0 = 0; t0 < j->T; t0 += SCAN_CHUNK) {
        const int64_t L = t0 + SCAN_CHUNK < j->T ? SCAN_CHUNK : j->T - t0;
        for (int b = 0; b < nb; b++) {
            const int64_t c = (b0 + b) * 16;
            const __mmask16 m = (__mmask16)(D - c >= 16 ? 0xffffu : (1u << (D - c)) - 1);
            if (!j->ck) scan_block16(j, &w[b], c, m, t0, L);
            else   /* training: the states before every RP_SCAN_CKPT_STEPS steps saved for the backward */
                for (int64_t s0 = t0; s0 < t0 + L; s0 += RP_SCAN_CKPT_STEPS) {
                    memcpy(j->ck + ((s0 / RP_SCAN_CKPT_STEPS) * nb_all + b0 + b) * 256, w[b].st, sizeof w[b].st);
                    scan_block16(j, &w[b], c, m, s0, t0 + L - s0 < RP_SCAN_CKPT_STEPS ? t0 + L - s0 : RP_SCAN_CKPT_STEPS);
                }
        }
    }
    for (int b = 0; b < nb; b++)
        for (int l = 0; l < 16 && (b0 + b) * 16 + l < D; l++)
            for (int n = 0; n < 16; n++) j->state[((b0 + b) * 16 + l) * 16 + n] = w[b].st[n][l];
}
#endif

void rp_ssm_scan(rp_pool *pool, int64_t T, int64_t D, int64_t N, const float *x, const float *dt, const float *A,
                 const float *B, const float *C, const float *Dskip, float *state, float *y, float *ckpt) {
#if defined(__AVX512F__)
    if (N == 16) {
        scan_job j = { T, D, N, x, dt, A, B, C, Dskip, state, y, ckpt };
        int n_tasks = (int)(((D + 15) / 16 + SCAN_GROUP - 1) / SCAN_GROUP);
        if (pool && n_tasks > 1 && T * D >= 4096) rp_pool_run(pool, scan_task, &j, n_tasks);
        else for (int i = 0; i < n_tasks; i++) scan_task(&j, i, n_tasks, 0);
        return;
    }
#elif defined(__AVX2__) && defined(__FMA__)
    if (N == 16) { rp_ssm8_scan(pool, T, D, x, dt, A, B, C, Dskip, state, y, ckpt); return; }
#endif
    (void)pool; (void)ckpt;
    rp_ref_selective_scan(NULL, y, x, dt, A, B, C, Dskip, T, D, N, state, NULL);
}

/* ---- backward ---- */


/* One channel, plainly: recompute the states, then run the adjoint recurrence backwards in time.
 * g[n] is dL/ds_t[c,n]; it flows back through s_t = a_t·s_{t-1} + ... as g_{t-1} += a_t·g_t.
 * S is T·N floats of the thread's work space. */
static void bwd_channel_ref(const bwd_job *j, int64_t c, float *S, float *dBt, float *dCt) {
    const int64_t T = j->T, D = j->D, N = j->N;
    const float *Ac = j->A + c * N;
    for (int64_t t = 0; t < T; t++) {
        float d = j->dt[t * D + c], xv = j->x[t * D + c];
        for (int64_t n = 0; n < N; n++) {
            float prev = t ? S[(t - 1) * N + n] : 0.0f;
            S[t * N + n] = expf(d * Ac[n]) * prev + d * j->B[t * N + n] * xv;
        }
    }
    float g[256], dAc[256], dD = 0;   /* N <= 256 (checked by the caller) */
    for (int64_t n = 0; n < N; n++) { g[n] = 0; dAc[n] = 0; }
    for (int64_t t = T - 1; t >= 0; t--) {
        float d = j->dt[t * D + c], xv = j->x[t * D + c], gy = j->dy[t * D + c];
        float ddt = 0, dxv = j->Dskip ? gy * j->Dskip[c] : 0.0f;
        for (int64_t n = 0; n < N; n++) {
            float s = S[t * N + n], prev = t ? S[(t - 1) * N + n] : 0.0f, a = expf(d * Ac[n]), Bn = j->B[t * N + n];
            g[n] += gy * j->C[t * N + n];
            dCt[t * N + n] += gy * s;
            float da = g[n] * prev * a;           /* dL/d(d·A) through a = exp(d·A) */
            ddt += da * Ac[n] + g[n] * Bn * xv;
            dAc[n] += da * d;
            dBt[t * N + n] += g[n] * d * xv;
            dxv += g[n] * d * Bn;
            g[n] *= a;                            /* carry to s_{t-1} */
        }
        dD += gy * xv;
        if (j->ddt) j->ddt[t * D + c] += ddt;
        if (j->dx) j->dx[t * D + c] += dxv;
    }
    if (j->dA) for (int64_t n = 0; n < N; n++) j->dA[c * N + n] += dAc[n];
    if (j->dDskip) j->dDskip[c] += dD;
}

/* Channels per task when the plain per-channel path runs. */
#define BWD_REF_CHANNELS 16

static void bwd_task_ref(void *ctx, int task, int n_tasks, int thread) {
    (void)n_tasks;
    const bwd_job *j = ctx;
    size_t tn = (size_t)(j->T * j->N);
    float *dBt = bwd_scratch(j, thread), *dCt = dBt + tn, *S = dCt + tn;
    int64_t c0 = (int64_t)task * BWD_REF_CHANNELS, c1 = c0 + BWD_REF_CHANNELS < j->D ? c0 + BWD_REF_CHANNELS : j->D;
    for (int64_t c = c0; c < c1; c++) bwd_channel_ref(j, c, S, dBt, dCt);
}

#if defined(__AVX512F__)
/* The N = 16 backward in the forward's layout: channels across the lanes of a vector (a block of 16), a
 * task owning a group of up to BWD_GROUP blocks (bwd_group, ssm_impl.h), from the forward's checkpoints (each block's
 * 16 states at the start of every chunk of RP_SCAN_CKPT_STEPS steps). The chunks are taken in reverse.
 * For each, the group's rows of dt, x and dy are copied into a work space (rows are D floats apart: a new
 * page every step); then the scan being independent per (channel, state), the states are taken BWD_SUB
 * at a time (a subset): per block, the chunk's decays a_t = exp(dt_t·A) and states are recomputed from
 * the checkpoint into L1 buffers, and the adjoint runs back through the chunk with dL/ds and the dA sums
 * in registers (dL/ds carried between chunks in the block's work space). Those loops also prefetch, a row
 * per step, the lines of the chunk before that its copy reads and its end updates. Per step, the sums over
 * states of da·A and g·B (da = dL/d(dt·A)) add up over the subsets and become the chunk's dx and ddt at
 * its end. dB and dC sum over channels: the group's lane vectors gather per chunk and subset and are
 * reduced 16 at a time (bwd16_sums). Measured 2026-12-06 at T 2048, D 1024 (Emerald Rapids, 1 thread,
 * best of 30): 16-step chunks against 32 and groups of 16 blocks against 2 took the backward from 3.1x its
 * forward to 1.85x (a smaller L1 footprint per chunk; fewer reductions per channel; longer runs of each row
 * in one page), 32 blocks to 1.75x; 8-step chunks, 8 states per subset, 64 blocks, or two blocks' adjoints
 * in one loop (register spills) were slower. Work space per thread: bwd16_floats. */
#define BWD_GROUP 32
#define BWD_SUB 4
#define BWD_CHUNK RP_SCAN_CKPT_STEPS
#define BWD_UNROLL _Pragma("GCC unroll 16")   /* the subset's states in registers, not a stack array */

/* Floats of work space one thread needs for the vectorized backward (after its dB and dC partials). */
static size_t bwd16_floats(void) {
    const size_t G = BWD_GROUP, L = BWD_CHUNK;
    return G * (5 * 256 + L * (48 + 32))                 /* A, A·log2 e hi, lo, dA lane sums, dL/ds; the chunk's
                                                          * dt, x, dy and Σ_n da·A, Σ_n g·B */
           + (2 * L + 1) * BWD_SUB * 16                  /* a chunk's states and decays */
           + 2 * L * BWD_SUB * 16 + 2 * L * BWD_SUB;     /* its dB, dC lane vectors; their sums */
}

/* The sums of 16 vectors (v: 16 × 16 floats, 64-byte aligned): lane i holds the sum of vector i. */
static inline __m512 bwd16_sums(const float *v) {
    __m512 w[8], z[4], y[2];
    for (int i = 0; i < 8; i++) {   /* 256-bit halves, then 128-bit quarters, then within quarters */
        __m512 a = _mm512_load_ps(v + 32 * i), b = _mm512_load_ps(v + 32 * i + 16);
        w[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));
    }
    for (int i = 0; i < 4; i++)
        z[i] = _mm512_add_ps(_mm512_shuffle_f32x4(w[2 * i], w[2 * i + 1], 0x88), _mm512_shuffle_f32x4(w[2 * i], w[2 * i + 1], 0xDD));
    for (int i = 0; i < 2; i++) y[i] = _mm512_add_ps(_mm512_unpacklo_ps(z[2 * i], z[2 * i + 1]), _mm512_unpackhi_ps(z[2 * i], z[2 * i + 1]));
    __m512 r = _mm512_add_ps(_mm512_shuffle_ps(y[0], y[1], 0x44), _mm512_shuffle_ps(y[0], y[1], 0xEE));   /* lane l: vector (l%4)·4 + l/4 */
    return _mm512_permutexvar_ps(_mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0), r);
}

/* Writes the lane sums of the nvec vectors at p (64-byte aligned) to sums[0..nvec). */
static void bwd16_reduce(const float *p, int64_t nvec, float *sums) {
    int64_t i = 0;
    for (; i + 16 <= nvec; i += 16) _mm512_storeu_ps(sums + i, bwd16_sums(p + i * 16));
    for (; i < nvec; i++) sums[i] = _mm512_reduce_add_ps(_mm512_load_ps(p + i * 16));
}

/* One block's part of a task's work space (carved from the thread's scratch). */
typedef struct bwd16_blk {
    float *At, *A2, *Al, *DA, *G;   /* [16][16]: A transposed to [n][lane]; A·log2 e hi, lo; dA lane sums; dL/ds */
    float *in, *acc;                /* the chunk's [step][3][16]: dt, x, dy; [step][2][16]: Σ_n da·A, Σ_n g·B so far */
} bwd16_blk;

/* The shared chunk buffers: [L+1][BWD_SUB][16] states, [L][BWD_SUB][16] dB and dC lane vectors, sums,
 * [L][BWD_SUB][16] decays. */
typedef struct bwd16_chunk { float *st, *pB, *pC, *sums, *dec; } bwd16_chunk;

/* The states n0..n0+BWD_SUB-1 of a block over the chunk of steps t0..t0+L-1 whose checkpoint (the block's
 * 16 states before it, [n][lane]) is ck: its decays and states recomputed, then the adjoint back through
 * it. g is dL/ds_t (w->G between chunks); it flows back through s_t = a_t·s_{t-1} + dt·B·x as
 * g_{t-1} = a_t·g_t + dy_{t-1}·C_{t-1}. The step sums over states add to w->acc (set, with first); the
 * lanes' dB and dC terms go to c->pB, c->pC (set, with set). */
static void bwd16_adjoint(const bwd_job *j, const bwd16_blk *w, const bwd16_chunk *c, const float *ck, int n0,
                          int64_t t0, int64_t L, int first, int set, const float *pr, const float *pw) {
    /* local copies: a vector store may alias anything, so fields would be reloaded after every store */
    const float *in = w->in, *At = w->At, *B = j->B, *C = j->C;
    float *acc = w->acc, *st = c->st, *pB = c->pB, *pC = c->pC, *dec = c->dec;
    __m512 g[BWD_SUB], dA[BWD_SUB], s[BWD_SUB], hi[BWD_SUB], lo[BWD_SUB];
    BWD_UNROLL for (int k = 0; k < BWD_SUB; k++) {
        g[k] = _mm512_load_ps(w->G + (n0 + k) * 16); dA[k] = _mm512_load_ps(w->DA + (n0 + k) * 16);
        hi[k] = _mm512_load_ps(w->A2 + (n0 + k) * 16); lo[k] = _mm512_load_ps(w->Al + (n0 + k) * 16);
        s[k] = _mm512_loadu_ps(ck + (n0 + k) * 16);   /* the caller's buffer: any alignment */
        _mm512_store_ps(st + k * 16, s[k]);
    }
    for (int64_t i = 0; i < L; i++) {   /* the chunk's decays, and its states from the checkpoint */
        const __m512 d = _mm512_load_ps(in + i * 48), u = _mm512_mul_ps(d, _mm512_load_ps(in + i * 48 + 16));
        const __m512 dyv = _mm512_load_ps(in + i * 48 + 32);
        const float *Bt = B + (t0 + i) * 16 + n0;
        if (pr) _mm_prefetch((const char *)(pr + i * j->D), _MM_HINT_T0);
        BWD_UNROLL for (int k = 0; k < BWD_SUB; k++) {
            const __m512 a = rp_ssm_exp_ps(d, hi[k], lo[k]);   /* the forward's decay, bit for bit */
            float *pc = pC + (i * BWD_SUB + k) * 16;
            _mm512_store_ps(dec + (i * BWD_SUB + k) * 16, a);
            s[k] = _mm512_fmadd_ps(a, s[k], _mm512_mul_ps(u, _mm512_set1_ps(Bt[k])));
            _mm512_store_ps(st + ((i + 1) * BWD_SUB + k) * 16, s[k]);
            _mm512_store_ps(pc, set ? _mm512_mul_ps(dyv, s[k]) : _mm512_fmadd_ps(dyv, s[k], _mm512_load_ps(pc)));
        }
    }
    for (int64_t i = L - 1; i >= 0; i--) {
        const float *r = in + i * 48, *Bt = B + (t0 + i) * 16 + n0, *Ct = C + (t0 + i) * 16 + n0;
        const __m512 d = _mm512_load_ps(r), dyv = _mm512_load_ps(r + 32), u = _mm512_mul_ps(d, _mm512_load_ps(r + 16));
        __m512 accA = first ? _mm512_setzero_ps() : _mm512_load_ps(acc + i * 32);
        __m512 accB = first ? _mm512_setzero_ps() : _mm512_load_ps(acc + i * 32 + 16);
        if (pw) _mm_prefetch((const char *)(pw + i * j->D), _MM_HINT_T0);
        BWD_UNROLL for (int k = 0; k < BWD_SUB; k++) {
            float *pb = pB + (i * BWD_SUB + k) * 16;
            g[k] = _mm512_fmadd_ps(dyv, _mm512_set1_ps(Ct[k]), g[k]);
            _mm512_store_ps(pb, set ? _mm512_mul_ps(g[k], u) : _mm512_fmadd_ps(g[k], u, _mm512_load_ps(pb)));
            accB = _mm512_fmadd_ps(g[k], _mm512_set1_ps(Bt[k]), accB);
            const __m512 ga = _mm512_mul_ps(g[k], _mm512_load_ps(dec + (i * BWD_SUB + k) * 16));
            const __m512 da = _mm512_mul_ps(ga, _mm512_load_ps(st + (i * BWD_SUB + k) * 16));
            accA = _mm512_fmadd_ps(da, _mm512_load_ps(At + (n0 + k) * 16), accA);
            dA[k] = _mm512_fmadd_ps(da, d, dA[k]);
            g[k] = ga;   /* carry to s_{t-1} */
        }
        _mm512_store_ps(acc + i * 32, accA);
        _mm512_store_ps(acc + i * 32 + 16, accB);
    }
    BWD_UNROLL for (int k = 0; k < BWD_SUB; k++) { _mm512_store_ps(w->G + (n0 + k) * 16, g[k]); _mm512_store_ps(w->DA + (n0 + k) * 16, dA[k]); }
}

/* The lane mask of block b (16 channels from c0) of a group whose channels end at D. */
static inline __mmask16 bwd16_mask(int64_t c0, int64_t D) {
    return (__mmask16)(D - c0 >= 16 ? 0xffffu : (1u << (D - c0)) - 1);
}

/* The rows t0..t0+L-1 of dt, x and dy for the nb blocks from block bb0 into their work space (zeros past
 * the last channel). */
static void bwd16_stage(const bwd_job *j, const bwd16_blk *w, int64_t bb0, int64_t nb, int64_t t0, int64_t L) {
    const int64_t D = j->D;
    for (int64_t i = 0; i < L; i++)
        for (int64_t b = 0; b < nb; b++) {
            const int64_t c0 = (bb0 + b) * 16, o = (t0 + i) * D + c0;
            const __mmask16 m = bwd16_mask(c0, D);
            _mm512_store_ps(w[b].in + i * 48, _mm512_maskz_loadu_ps(m, j->dt + o));
            _mm512_store_ps(w[b].in + i * 48 + 16, _mm512_maskz_loadu_ps(m, j->x + o));
            _mm512_store_ps(w[b].in + i * 48 + 32, _mm512_maskz_loadu_ps(m, j->dy + o));
        }
}

/* The chunk's dx += dt·Σ_n g·B + dy·Dskip; ddt += Σ_n da·A + x·Σ_n g·B; dD (per block) += Σ_t dy·x. */
static void bwd16_finish_chunk(const bwd_job *j, const bwd16_blk *w, int64_t bb0, int64_t nb, int64_t t0, int64_t L,
                               const __m512 *dv, __m512 *dD) {
    const int64_t D = j->D;
    for (int64_t i = 0; i < L; i++)
        for (int64_t b = 0; b < nb; b++) {
            const int64_t c0 = (bb0 + b) * 16, o = (t0 + i) * D + c0;
            const __mmask16 m = bwd16_mask(c0, D);
            const float *r = w[b].in + i * 48, *ac = w[b].acc + i * 32;
            const __m512 d = _mm512_load_ps(r), xv = _mm512_load_ps(r + 16), dyv = _mm512_load_ps(r + 32), gb = _mm512_load_ps(ac + 16);
            if (j->dx) _mm512_mask_storeu_ps(j->dx + o, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, j->dx + o), _mm512_fmadd_ps(d, gb, _mm512_mul_ps(dyv, dv[b]))));
            if (j->ddt) _mm512_mask_storeu_ps(j->ddt + o, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, j->ddt + o), _mm512_fmadd_ps(xv, gb, _mm512_load_ps(ac))));
            dD[b] = _mm512_fmadd_ps(dyv, xv, dD[b]);
        }
}

static void bwd_task16(void *ctx, int task, int n_tasks, int thread) {
    (void)n_tasks;
    const bwd_job *j = ctx;
    const int64_t T = j->T, D = j->D, tn = T * 16, nck = (T + BWD_CHUNK - 1) / BWD_CHUNK;
    const int64_t nblk = (D + 15) / 16, bb0 = (int64_t)task * j->group, nb = bb0 + j->group < nblk ? j->group : nblk - bb0;
    float *dBt = bwd_scratch(j, thread), *dCt = dBt + tn, *p = dCt + tn;
    bwd16_blk w[BWD_GROUP];
    for (int b = 0; b < BWD_GROUP; b++) {
        w[b].At = p; w[b].A2 = p + 256; w[b].Al = p + 512; w[b].DA = p + 768; w[b].G = p + 1024; p += 5 * 256;
        w[b].in = p; p += BWD_CHUNK * 48;
        w[b].acc = p; p += BWD_CHUNK * 32;
    }
    float *sums = p + (3 * BWD_CHUNK + 1) * BWD_SUB * 16;
    bwd16_chunk c = { p, p + (BWD_CHUNK + 1) * BWD_SUB * 16, p + (2 * BWD_CHUNK + 1) * BWD_SUB * 16, sums, sums + 2 * BWD_CHUNK * BWD_SUB };
    __m512 dD[BWD_GROUP], dv[BWD_GROUP];
    for (int64_t b = 0; b < nb; b++) {   /* A transposed to [n][lane] (zeros past the last channel), plain and times log2 e (hi, lo) */
        const int64_t c0 = (bb0 + b) * 16;
        for (int n = 0; n < 16; n++)
            for (int l = 0; l < 16; l++) {
                float a = c0 + l < D ? j->A[(c0 + l) * 16 + n] : 0.0f;
                w[b].At[n * 16 + l] = a;
                rp_ssm_exp_split(a, &w[b].A2[n * 16 + l], &w[b].Al[n * 16 + l]);
                w[b].DA[n * 16 + l] = w[b].G[n * 16 + l] = 0;
            }
        dD[b] = _mm512_setzero_ps();
        dv[b] = j->Dskip ? _mm512_maskz_loadu_ps(bwd16_mask(c0, D), j->Dskip + c0) : _mm512_setzero_ps();
    }
    const __mmask16 mk = (__mmask16)((1u << BWD_SUB) - 1);
    for (int64_t kc = nck - 1; kc >= 0; kc--) {
        const int64_t t0 = kc * BWD_CHUNK, L = t0 + BWD_CHUNK < T ? BWD_CHUNK : T - t0;
        bwd16_stage(j, w, bb0, nb, t0, L);
        for (int n0 = 0; n0 < 16; n0 += BWD_SUB) {
            for (int64_t b = 0; b < nb; b++) {
                const float *pr, *pw;   /* the chunk before's lines, spread among the loops' arithmetic */
                bwd_prefetch_rows(j, kc, n0, (t0 - BWD_CHUNK) * D + (bb0 + b) * 16, &pr, &pw);
                bwd16_adjoint(j, &w[b], &c, j->ck + (kc * nblk + bb0 + b) * 256, n0, t0, L, n0 == 0, b == 0, pr, pw);
            }
            bwd16_reduce(c.pB, L * BWD_SUB, c.sums);
            bwd16_reduce(c.pC, L * BWD_SUB, c.sums + BWD_CHUNK * BWD_SUB);
            for (int64_t i = 0; i < L; i++) {
                float *db = dBt + (t0 + i) * 16 + n0, *dc = dCt + (t0 + i) * 16 + n0;
                _mm512_mask_storeu_ps(db, mk, _mm512_add_ps(_mm512_maskz_loadu_ps(mk, db), _mm512_maskz_loadu_ps(mk, c.sums + i * BWD_SUB)));
                _mm512_mask_storeu_ps(dc, mk, _mm512_add_ps(_mm512_maskz_loadu_ps(mk, dc), _mm512_maskz_loadu_ps(mk, c.sums + BWD_CHUNK * BWD_SUB + i * BWD_SUB)));
            }
        }
        bwd16_finish_chunk(j, w, bb0, nb, t0, L, dv, dD);
    }
    for (int64_t b = 0; b < nb; b++) {
        const int64_t c0 = (bb0 + b) * 16;
        _Alignas(64) float dd[16];
        _mm512_store_ps(dd, dD[b]);
        for (int l = 0; l < 16 && c0 + l < D; l++) {
            if (j->dA) for (int n = 0; n < 16; n++) j->dA[(c0 + l) * 16 + n] += w[b].DA[n * 16 + l];
            if (j->dDskip) j->dDskip[c0 + l] += dd[l];
        }
    }
}
#endif

/* The tasks split into n_parts ranges run in order, part k with scratch k: each part's dB and dC partials
 * hold the same tasks, summed in the same order, whichever thread claims it, so the gradients do not
 * depend on the pool's scheduling (only on its size). */
typedef struct bwd_parts { rp_pool_fn fn; const bwd_job *job; int n_tasks; } bwd_parts;

static void bwd_part(void *ctx, int k, int n_parts, int thread) {
    (void)thread;
    const bwd_parts *s = ctx;
    for (int i = (int)((int64_t)s->n_tasks * k / n_parts); i < (int)((int64_t)s->n_tasks * (k + 1) / n_parts); i++)
        s->fn((void *)s->job, i, s->n_tasks, k);
}

/* The selective scan's backward (rp_bwd_cpu.selective_scan; see ssm.h). */
rp_status rp_ssm_scan_backward(rp_bwd *bw, float *dx, float *ddt, float *dA, float *dB, float *dC, float *dDskip,
                               const float *dy, const float *x, const float *dt, const float *A, const float *B,
                               const float *C, const float *Dskip, int64_t T, int64_t D, int64_t N, const float *ckpt) {
    if (N > 256) return rp_fail(RP_ERR_UNSUPPORTED, "selective_scan backward: d_state %lld above 256", (long long)N);
    rp_pool *pool = rp_bwd_pool(bw);
    size_t tn = (size_t)(T * N), work = tn;   /* the plain path: one channel's states */
    rp_pool_fn fn = bwd_task_ref;
    int group = 0, n_tasks = (int)((D + BWD_REF_CHANNELS - 1) / BWD_REF_CHANNELS);
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
    if (N == 16 && T > 0) {
        if (!ckpt) {   /* no saved forward: run it for its checkpoints (y and the end state discarded) */
            size_t nck = rp_scan_ckpt_floats(T, D, N), ny = (size_t)(T * D), ns = (size_t)(D * N);
            float *ck = rp_bwd_shared(bw, (nck + ny + ns) * sizeof(float));
            if (!ck) return rp_fail(RP_ERR_NOMEM, "selective_scan backward: %zu floats of checkpoints", nck + ny + ns);
            memset(ck + nck + ny, 0, ns * sizeof(float));
            rp_ssm_scan(pool, T, D, N, x, dt, A, B, C, NULL, ck + nck + ny, ck + nck, ck);
            ckpt = ck;
        }
#if defined(__AVX512F__)
        const int64_t nblk = (D + 15) / 16;
        work = bwd16_floats(); fn = bwd_task16; group = bwd_group(nblk, pool ? rp_pool_size(pool) : 1, BWD_GROUP);
#else
        const int64_t nblk = (D + 7) / 8;
        work = rp_ssm8_bwd_floats(); fn = rp_ssm8_bwd_task; group = bwd_group(nblk, pool ? rp_pool_size(pool) : 1, RP_SSM8_BWD_GROUP);
#endif
        n_tasks = (int)((nblk + group - 1) / group);
    }
#endif
    bwd_job j = { T, D, N, x, dt, A, B, C, Dskip, dy, dx, ddt, dA, dDskip, bw, (2 * tn + work + 15) / 16 * 16, ckpt, group };
    int n_parts = pool ? rp_pool_size(pool) : 1;
    if (n_parts > n_tasks) n_parts = n_tasks > 0 ? n_tasks : 1;
    for (int k = 0; k < n_parts; k++) {   /* every part's scratch exists before the run: tasks never allocate */
        float *sc = bwd_scratch(&j, k);
        if (!sc) return rp_fail(RP_ERR_NOMEM, "selective_scan backward: %zu floats of scratch per thread", j.per_thread);
        memset(sc, 0, 2 * tn * sizeof *sc);
    }
    bwd_parts parts = { fn, &j, n_tasks };
    if (pool && n_parts > 1) rp_pool_run(pool, bwd_part, &parts, n_parts);
    else bwd_part(&parts, 0, 1, 0);
    for (int k = 0; k < n_parts; k++) {
        const float *sc = bwd_scratch(&j, k);
        if (dB) for (size_t i = 0; i < tn; i++) dB[i] += sc[i];
        if (dC) for (size_t i = 0; i < tn; i++) dC[i] += sc[tn + i];
    }
    return RP_OK;
}
