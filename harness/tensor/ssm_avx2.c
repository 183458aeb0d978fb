/* ssm_avx2.c: the selective scan's N = 16 kernels with AVX2 and FMA where AVX-512 is missing (Zen 3 and
 * other AVX2-only x86): ssm.c's AVX-512 designs on 8 lanes, entered from rp_ssm_scan and
 * rp_ssm_scan_backward (ssm_impl.h). Forward: blocks of 8 channels across the lanes, states in passes of
 * 8 through an L1 step buffer (16 vector registers hold no more), the decays by ssm_exp.h's fast exp
 * where a chunk allows it; in training, each block's states saved every RP_SCAN_CKPT_STEPS steps.
 * Backward: from those checkpoints, chunk by chunk in reverse, the decays and states recomputed into L1,
 * the adjoint in registers, dB and dC reduced 8 lane vectors at a time. The last block of
 * channels goes through maskload/maskstore (slow on AMD, so whole blocks use plain loads and stores).
 * Invariant: the same recurrence in fp32 as ssm.c's other versions; only exp and summation order differ. */
#include <math.h>
#include <string.h>
#include "tensor/ssm.h"
#include "tensor/ssm_exp.h"
#include "tensor/ssm_impl.h"

#if !defined(__AVX512F__) && defined(__AVX2__) && defined(__FMA__)

typedef struct scan_job {
    int64_t T, D;
    const float *x, *dt, *A, *B, *C, *Dskip;
    float *state, *y;
    float *ck;   /* NULL, or the checkpoints: [interval][block][state][lane], each block's states before it */
} scan_job;

/* The AVX-512 design on 8 lanes: a task owns SCAN8_GROUP blocks of 8 channels (one vector) and walks its
 * steps a chunk of SCAN8_CHUNK at a time, block by block. AVX2 has 16 vector registers, so a block's 16
 * states go through a chunk in passes of SCAN8_SUB: the first reads dt and x from their rows (prefetching
 * one chunk ahead) and keeps dt, dt·x and its partial y per step in an L1 buffer, the others add their
 * sums to it, and the last writes y. The exp is
 * rp_ssm_exp8_fast when |dt|·max_n |A·log2 e| < 124 for every lane and step of the block's chunk (checked
 * once per chunk), else rp_ssm_exp8_ps for the whole chunk. */
#define SCAN8_GROUP 32
#define SCAN8_CHUNK 32
#define SCAN8_SUB 8   /* states per pass (4: no spills, but 8% slower on Zen 3) */
_Static_assert(SCAN8_CHUNK % RP_SCAN_CKPT_STEPS == 0, "a chunk holds whole checkpoint intervals");
#define SCAN_UNROLL _Pragma("GCC unroll 16")

/* One block's decay constants (A·log2 e as hi + lo, transposed to [state][lane]), its states, and the
 * largest |hi| of each lane (the fast exp's bound). */
typedef struct scan8_blk { _Alignas(32) float hi[16][8], lo[16][8], st[16][8], hmax[8]; } scan8_blk;

/* A chunk's steps between the passes: dt, dt·x, the partial y. */
typedef struct scan8_buf { _Alignas(32) float d[SCAN8_CHUNK][8], u[SCAN8_CHUNK][8], y[SCAN8_CHUNK][8]; } scan8_buf;

/* The lanes below n (n >= 8: all) as a maskload/maskstore mask. */
static inline __m256i scan8_mask(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n < 8 ? n : 8)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Whether rp_ssm_exp8_fast holds for every state of a step: |d|·hmax < 124 in every lane (hmax: the lane's
 * largest |A·log2 e| over its states, with a margin for the low part; NaN fails). */
static inline int scan8_fast(__m256 d, __m256 hmax) {
    const __m256 a = _mm256_and_ps(d, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)));
    const __m256 far = _mm256_cmp_ps(_mm256_mul_ps(a, hmax), _mm256_set1_ps(124.0f), _CMP_NLT_UQ);
    return _mm256_testz_ps(far, far);
}

/* A lane's bound for scan8_fast from one of its states' hi (fold over the states from 0). */
static inline float scan8_hmax(float hmax, float hi) { return fmaxf(hmax, fabsf(hi) * (1 + 0x1p-20f)); }

/* One step of SCAN8_SUB states s (those from n0): s = exp(d·A)·s + u·B; *y0 (even) and *y1 (odd) += C·s. */
static inline __attribute__((always_inline)) void scan8_states(__m256 *s, const scan8_blk *w, int n0, __m256 d, __m256 u,
                                                                const float *Bt, const float *Ct, __m256 *y0, __m256 *y1, int fast) {
    SCAN_UNROLL for (int n = 0; n < SCAN8_SUB; n++) {
        const __m256 hi = _mm256_load_ps(w->hi[n0 + n]), lo = _mm256_load_ps(w->lo[n0 + n]);
        const __m256 e = fast ? rp_ssm_exp8_fast(d, hi, lo) : rp_ssm_exp8_ps(d, hi, lo);
        s[n] = _mm256_fmadd_ps(e, s[n], _mm256_mul_ps(u, _mm256_set1_ps(Bt[n0 + n])));
        if (n & 1) *y1 = _mm256_fmadd_ps(_mm256_set1_ps(Ct[n0 + n]), s[n], *y1);
        else *y0 = _mm256_fmadd_ps(_mm256_set1_ps(Ct[n0 + n]), s[n], *y0);
    }
}

/* Whether rp_ssm_exp8_fast holds for every step of t0..t0+L-1 in the block of channels c.. (lanes m). */
static int scan8_chunk_fast(const scan_job *j, const scan8_blk *w, int64_t c, __m256i m, int64_t t0, int64_t L) {
    const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)), hmax = _mm256_load_ps(w->hmax), bound = _mm256_set1_ps(124.0f);
    __m256 far = _mm256_setzero_ps();
    for (int64_t i = 0; i < L; i++) {
        const __m256 d = _mm256_and_ps(_mm256_maskload_ps(j->dt + (t0 + i) * j->D + c, m), absm);
        far = _mm256_or_ps(far, _mm256_cmp_ps(_mm256_mul_ps(d, hmax), bound, _CMP_NLT_UQ));
    }
    return _mm256_testz_ps(far, far);
}

/* Steps t0..t0+L-1 of the block of channels c.. (lanes m; full: all 8, plain loads), the states of one pass
 * (the first reads the rows and fills the buffer, the last reads it and writes y); fast: the chunk's decays
 * all take rp_ssm_exp8_fast (scan8_chunk_fast), so the step loop has no branch and keeps its states in
 * registers. */
static inline __attribute__((always_inline)) void scan8_pass(const scan_job *j, scan8_blk *w, scan8_buf *b, int64_t c, __m256i m,
                                                              int full, int fast, int64_t t0, int64_t L, int pass) {
    const int64_t D = j->D;
    const float *x = j->x + t0 * D + c, *dt = j->dt + t0 * D + c, *B = j->B + t0 * 16, *C = j->C + t0 * 16;
    float *y = j->y + t0 * D + c;
    const int n0 = pass * SCAN8_SUB, first = pass == 0, last = pass == 16 / SCAN8_SUB - 1;
    const __m256 dk = j->Dskip ? _mm256_maskload_ps(j->Dskip + c, m) : _mm256_setzero_ps();
    __m256 s[SCAN8_SUB];
    SCAN_UNROLL for (int n = 0; n < SCAN8_SUB; n++) s[n] = _mm256_load_ps(w->st[n0 + n]);
    for (int64_t i = 0; i < L; i++, x += D, dt += D, y += D, B += 16, C += 16) {
        __m256 d, u, y0, y1 = _mm256_setzero_ps();
        if (first) {
            const __m256 xv = full ? _mm256_loadu_ps(x) : _mm256_maskload_ps(x, m);
            d = full ? _mm256_loadu_ps(dt) : _mm256_maskload_ps(dt, m);
            u = _mm256_mul_ps(d, xv);
            y0 = _mm256_mul_ps(dk, xv);
            _mm256_store_ps(b->d[i], d);
            _mm256_store_ps(b->u[i], u);
            _mm_prefetch((const char *)(x + SCAN8_CHUNK * D), _MM_HINT_T0);
            _mm_prefetch((const char *)(dt + SCAN8_CHUNK * D), _MM_HINT_T0);
        } else {
            d = _mm256_load_ps(b->d[i]); u = _mm256_load_ps(b->u[i]); y0 = _mm256_load_ps(b->y[i]);
        }
        scan8_states(s, w, n0, d, u, B, C, &y0, &y1, fast);
        if (!last) _mm256_store_ps(b->y[i], _mm256_add_ps(y0, y1));
        else if (full) _mm256_storeu_ps(y, _mm256_add_ps(y0, y1));
        else _mm256_maskstore_ps(y, m, _mm256_add_ps(y0, y1));
        if (last) __builtin_prefetch(y + SCAN8_CHUNK * D, 1, 2);
    }
    SCAN_UNROLL for (int n = 0; n < SCAN8_SUB; n++) _mm256_store_ps(w->st[n0 + n], s[n]);
}

/* Steps t0..t0+L-1 of the block of channels c.. (lanes m), all passes. */
static void scan8_chunk(const scan_job *j, scan8_blk *w, scan8_buf *buf, int64_t c, __m256i m, int64_t t0, int64_t L) {
    const int full = j->D - c >= 8, fast = scan8_chunk_fast(j, w, c, m, t0, L);
    if (full && fast) SCAN_UNROLL for (int p = 0; p < 16 / SCAN8_SUB; p++) scan8_pass(j, w, buf, c, m, 1, 1, t0, L, p);
    else SCAN_UNROLL for (int p = 0; p < 16 / SCAN8_SUB; p++) scan8_pass(j, w, buf, c, m, full, fast, t0, L, p);
}

/* A task: its (up to) SCAN8_GROUP blocks of 8 channels through all steps, a chunk at a time. */
static void scan_task(void *ctx, int task, int n_tasks, int thread) {
    (void)n_tasks; (void)thread;
    const scan_job *j = ctx;
    const int64_t D = j->D, nb_all = (D + 7) / 8, b0 = (int64_t)task * SCAN8_GROUP;
    const int nb = (int)(b0 + SCAN8_GROUP < nb_all ? SCAN8_GROUP : nb_all - b0);
    scan8_blk w[SCAN8_GROUP];
    scan8_buf buf;
    for (int b = 0; b < nb; b++)
        for (int l = 0; l < 8; l++) {
            const int64_t c = (b0 + b) * 8 + l;
            w[b].hmax[l] = 0;
            for (int n = 0; n < 16; n++) {
                if (c < D) {
                    rp_ssm_exp_split(j->A[c * 16 + n], &w[b].hi[n][l], &w[b].lo[n][l]);   /* exp(dt·A) = 2^(dt·A·log2 e) */
                    w[b].st[n][l] = j->state[c * 16 + n];
                    w[b].hmax[l] = scan8_hmax(w[b].hmax[l], w[b].hi[n][l]);
                } else w[b].hi[n][l] = w[b].lo[n][l] = w[b].st[n][l] = 0;
            }
        }
    for (int64_t t0 = 0; t0 < j->T; t0 += SCAN8_CHUNK) {
        const int64_t L = t0 + SCAN8_CHUNK < j->T ? SCAN8_CHUNK : j->T - t0;
        for (int b = 0; b < nb; b++) {
            const int64_t c = (b0 + b) * 8;
            const __m256i m = scan8_mask(D - c);
            if (!j->ck) scan8_chunk(j, &w[b], &buf, c, m, t0, L);
            else   /* training: the states before every RP_SCAN_CKPT_STEPS steps saved for the backward */
                for (int64_t s0 = t0; s0 < t0 + L; s0 += RP_SCAN_CKPT_STEPS) {
                    memcpy(j->ck + ((s0 / RP_SCAN_CKPT_STEPS) * nb_all + b0 + b) * 128, w[b].st, sizeof w[b].st);
                    scan8_chunk(j, &w[b], &buf, c, m, s0, t0 + L - s0 < RP_SCAN_CKPT_STEPS ? t0 + L - s0 : RP_SCAN_CKPT_STEPS);
                }
        }
    }
    for (int b = 0; b < nb; b++)
        for (int l = 0; l < 8 && (b0 + b) * 8 + l < D; l++)
            for (int n = 0; n < 16; n++) j->state[((b0 + b) * 8 + l) * 16 + n] = w[b].st[n][l];
}

/* The forward (rp_ssm_scan for N = 16): tasks of SCAN8_GROUP blocks on the pool's threads. */
void rp_ssm8_scan(rp_pool *pool, int64_t T, int64_t D, const float *x, const float *dt, const float *A, const float *B,
                  const float *C, const float *Dskip, float *state, float *y, float *ckpt) {
    scan_job j = { T, D, x, dt, A, B, C, Dskip, state, y, ckpt };
    int n_tasks = (int)(((D + 7) / 8 + SCAN8_GROUP - 1) / SCAN8_GROUP);
    if (pool && n_tasks > 1 && T * D >= 4096) rp_pool_run(pool, scan_task, &j, n_tasks);
    else for (int i = 0; i < n_tasks; i++) scan_task(&j, i, n_tasks, 0);
}

/* ---- backward ---- */

/* The AVX-512 backward's design (ssm.c, bwd_task16) on 8 lanes: blocks of 8 channels, a task owning a group
 * of up to BWD8_GROUP of them (bwd_group, ssm_impl.h), from the forward's checkpoints (each block's 16 states
 * every RP_SCAN_CKPT_STEPS steps), chunk by chunk in reverse: the group's rows copied, then per subset of
 * BWD8_SUB states and block the chunk's decays (rp_ssm_exp8_fast when scan8_fast holds for the step, else
 * rp_ssm_exp8_ps) and states recomputed into L1, the adjoint run back through them in registers, the
 * previous chunk's rows prefetched a row per step; dB and dC reduced 8 lane vectors at a time (bwd8_sums).
 * Work space per thread: rp_ssm8_bwd_floats. */
#define BWD8_GROUP RP_SSM8_BWD_GROUP
#define BWD8_SUB 4
#define BWD8_CHUNK RP_SCAN_CKPT_STEPS
#define BWD_UNROLL _Pragma("GCC unroll 16")   /* the subset's states in registers, not a stack array */

/* Floats of work space one thread needs for the AVX2 backward (after its dB and dC partials). */
size_t rp_ssm8_bwd_floats(void) {
    const size_t G = BWD8_GROUP, L = BWD8_CHUNK;
    return G * (6 * 128 + L * (24 + 16))                 /* A, A·log2 e hi, lo, dA lane sums, dL/ds, fast-exp bound;
                                                          * the chunk's dt, x, dy and Σ_n da·A, Σ_n g·B */
           + (2 * L + 1) * BWD8_SUB * 8                  /* a chunk's states and decays */
           + 2 * L * BWD8_SUB * 8 + 2 * L * BWD8_SUB;    /* its dB, dC lane vectors; their sums */
}

/* The sums of 8 vectors (v: 8 × 8 floats, 32-byte aligned): lane i holds the sum of vector i. */
static inline __m256 bwd8_sums(const float *v) {
    __m256 a[4];
    for (int i = 0; i < 4; i++) a[i] = _mm256_hadd_ps(_mm256_load_ps(v + 16 * i), _mm256_load_ps(v + 16 * i + 8));
    const __m256 b0 = _mm256_hadd_ps(a[0], a[1]), b1 = _mm256_hadd_ps(a[2], a[3]);   /* 128-bit halves: vectors 0-3, 4-7 */
    return _mm256_add_ps(_mm256_permute2f128_ps(b0, b1, 0x20), _mm256_permute2f128_ps(b0, b1, 0x31));
}

/* Writes the lane sums of the nvec vectors at p (32-byte aligned) to sums[0..nvec). */
static void bwd8_reduce(const float *p, int64_t nvec, float *sums) {
    int64_t i = 0;
    for (; i + 8 <= nvec; i += 8) _mm256_storeu_ps(sums + i, bwd8_sums(p + i * 8));
    for (; i < nvec; i++) {
        float t = 0;
        for (int l = 0; l < 8; l++) t += p[i * 8 + l];
        sums[i] = t;
    }
}

/* One block's part of a task's work space (carved from the thread's scratch). */
typedef struct bwd8_blk {
    float *At, *A2, *Al, *DA, *G, *H;   /* [16][8]: A transposed to [n][lane]; A·log2 e hi, lo; dA lane sums; dL/ds; [8] bound */
    float *in, *acc;                    /* the chunk's [step][3][8]: dt, x, dy; [step][2][8]: Σ_n da·A, Σ_n g·B so far */
} bwd8_blk;

/* The shared chunk buffers: [L+1][BWD8_SUB][8] states, [L][BWD8_SUB][8] dB and dC lane vectors, sums,
 * [L][BWD8_SUB][8] decays. */
typedef struct bwd8_chunk { float *st, *pB, *pC, *sums, *dec; } bwd8_chunk;

/* One step of the subset from n0 (fast: rp_ssm_exp8_fast holds): decays into dec, states advanced into st. */
static inline __attribute__((always_inline)) void bwd8_step(__m256 *s, const __m256 *hi, const __m256 *lo, __m256 d, __m256 u,
                                                             const float *Bt, float *dec, float *st, int fast) {
    BWD_UNROLL for (int k = 0; k < BWD8_SUB; k++) {
        __m256 a = fast ? rp_ssm_exp8_fast(d, hi[k], lo[k]) : rp_ssm_exp8_ps(d, hi[k], lo[k]);
        _mm256_store_ps(dec + k * 8, a);
        s[k] = _mm256_fmadd_ps(a, s[k], _mm256_mul_ps(u, _mm256_set1_ps(Bt[k])));
        _mm256_store_ps(st + k * 8, s[k]);
    }
}

/* The states n0..n0+BWD8_SUB-1 of a block over the chunk of steps t0..t0+L-1 whose checkpoint (the block's
 * 16 states before it, [n][lane]) is ck: bwd16_adjoint's recurrences on 8 lanes (ssm.c), the decays and
 * states recomputed, then the adjoint back through them; a row of pr and of pw (NULL: none) prefetched per
 * step of each loop. */
static void bwd8_adjoint(const bwd_job *j, const bwd8_blk *w, const bwd8_chunk *c, const float *ck, int n0, int64_t t0,
                         int64_t L, int first, int set, const float *pr, const float *pw) {
    /* local copies: a vector store may alias anything, so fields would be reloaded after every store */
    const float *in = w->in, *At = w->At, *B = j->B, *C = j->C;
    float *acc = w->acc, *st = c->st, *pB = c->pB, *pC = c->pC, *dec = c->dec;
    const __m256 hmax = _mm256_load_ps(w->H);
    __m256 hi[BWD8_SUB], lo[BWD8_SUB], s[BWD8_SUB];
    BWD_UNROLL for (int k = 0; k < BWD8_SUB; k++) {
        hi[k] = _mm256_load_ps(w->A2 + (n0 + k) * 8); lo[k] = _mm256_load_ps(w->Al + (n0 + k) * 8);
        s[k] = _mm256_loadu_ps(ck + (n0 + k) * 8);   /* the caller's buffer: any alignment */
        _mm256_store_ps(st + k * 8, s[k]);
    }
    for (int64_t i = 0; i < L; i++) {   /* the chunk's decays, and its states from the checkpoint */
        const __m256 d = _mm256_load_ps(in + i * 24), u = _mm256_mul_ps(d, _mm256_load_ps(in + i * 24 + 8));
        const float *Bt = B + (t0 + i) * 16 + n0;
        if (pr) _mm_prefetch((const char *)(pr + i * j->D), _MM_HINT_T0);
        if (scan8_fast(d, hmax)) bwd8_step(s, hi, lo, d, u, Bt, dec + i * BWD8_SUB * 8, st + (i + 1) * BWD8_SUB * 8, 1);
        else bwd8_step(s, hi, lo, d, u, Bt, dec + i * BWD8_SUB * 8, st + (i + 1) * BWD8_SUB * 8, 0);
    }
    __m256 g[BWD8_SUB], dA[BWD8_SUB];
    BWD_UNROLL for (int k = 0; k < BWD8_SUB; k++) { g[k] = _mm256_load_ps(w->G + (n0 + k) * 8); dA[k] = _mm256_load_ps(w->DA + (n0 + k) * 8); }
    for (int64_t i = L - 1; i >= 0; i--) {
        const float *r = in + i * 24, *Bt = B + (t0 + i) * 16 + n0, *Ct = C + (t0 + i) * 16 + n0;
        const __m256 d = _mm256_load_ps(r), dyv = _mm256_load_ps(r + 16), u = _mm256_mul_ps(d, _mm256_load_ps(r + 8));
        __m256 accA = first ? _mm256_setzero_ps() : _mm256_load_ps(acc + i * 16);
        __m256 accB = first ? _mm256_setzero_ps() : _mm256_load_ps(acc + i * 16 + 8);
        if (pw) _mm_prefetch((const char *)(pw + i * j->D), _MM_HINT_T0);
        BWD_UNROLL for (int k = 0; k < BWD8_SUB; k++) {
            float *pc = pC + (i * BWD8_SUB + k) * 8, *pb = pB + (i * BWD8_SUB + k) * 8;
            g[k] = _mm256_fmadd_ps(dyv, _mm256_set1_ps(Ct[k]), g[k]);
            const __m256 sc = _mm256_load_ps(st + ((i + 1) * BWD8_SUB + k) * 8);
            _mm256_store_ps(pc, set ? _mm256_mul_ps(dyv, sc) : _mm256_fmadd_ps(dyv, sc, _mm256_load_ps(pc)));
            _mm256_store_ps(pb, set ? _mm256_mul_ps(g[k], u) : _mm256_fmadd_ps(g[k], u, _mm256_load_ps(pb)));
            accB = _mm256_fmadd_ps(g[k], _mm256_set1_ps(Bt[k]), accB);
            const __m256 ga = _mm256_mul_ps(g[k], _mm256_load_ps(dec + (i * BWD8_SUB + k) * 8));
            const __m256 da = _mm256_mul_ps(ga, _mm256_load_ps(st + (i * BWD8_SUB + k) * 8));
            accA = _mm256_fmadd_ps(da, _mm256_load_ps(At + (n0 + k) * 8), accA);
            dA[k] = _mm256_fmadd_ps(da, d, dA[k]);
            g[k] = ga;   /* carry to s_{t-1} */
        }
        _mm256_store_ps(acc + i * 16, accA);
        _mm256_store_ps(acc + i * 16 + 8, accB);
    }
    BWD_UNROLL for (int k = 0; k < BWD8_SUB; k++) { _mm256_store_ps(w->G + (n0 + k) * 8, g[k]); _mm256_store_ps(w->DA + (n0 + k) * 8, dA[k]); }
}

/* p[lanes m] += v; full: all 8 lanes, with plain loads and stores (masked ones are slow on AMD). */
static inline void bwd8_add(float *p, __m256i m, int full, __m256 v) {
    if (full) _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), v));
    else _mm256_maskstore_ps(p, m, _mm256_add_ps(_mm256_maskload_ps(p, m), v));
}

/* The rows t0..t0+L-1 of dt, x, dy for the nb blocks from block bb0 into their work space (zeros past the
 * last channel; plain loads where the block is whole: masked ones are slow on AMD). */
static void bwd8_stage(const bwd_job *j, const bwd8_blk *w, int64_t bb0, int64_t nb, int64_t t0, int64_t L) {
    const int64_t D = j->D;
    for (int64_t i = 0; i < L; i++)
        for (int64_t b = 0; b < nb; b++) {
            const int64_t c0 = (bb0 + b) * 8, o = (t0 + i) * D + c0;
            float *r = w[b].in + i * 24;
            if (D - c0 >= 8) {
                _mm256_store_ps(r, _mm256_loadu_ps(j->dt + o));
                _mm256_store_ps(r + 8, _mm256_loadu_ps(j->x + o));
                _mm256_store_ps(r + 16, _mm256_loadu_ps(j->dy + o));
            } else {
                const __m256i m = scan8_mask(D - c0);
                _mm256_store_ps(r, _mm256_maskload_ps(j->dt + o, m));
                _mm256_store_ps(r + 8, _mm256_maskload_ps(j->x + o, m));
                _mm256_store_ps(r + 16, _mm256_maskload_ps(j->dy + o, m));
            }
        }
}

/* The chunk's dx += dt·Σ_n g·B + dy·Dskip; ddt += Σ_n da·A + x·Σ_n g·B; dD (per block) += Σ_t dy·x. */
static void bwd8_finish_chunk(const bwd_job *j, const bwd8_blk *w, int64_t bb0, int64_t nb, int64_t t0, int64_t L,
                              const __m256 *dv, __m256 *dD) {
    const int64_t D = j->D;
    for (int64_t i = 0; i < L; i++)
        for (int64_t b = 0; b < nb; b++) {
            const int64_t c0 = (bb0 + b) * 8, o = (t0 + i) * D + c0;
            const __m256i m = scan8_mask(D - c0);
            const float *r = w[b].in + i * 24, *ac = w[b].acc + i * 16;
            const __m256 d = _mm256_load_ps(r), xv = _mm256_load_ps(r + 8), dyv = _mm256_load_ps(r + 16), gb = _mm256_load_ps(ac + 8);
            if (j->dx) bwd8_add(j->dx + o, m, D - c0 >= 8, _mm256_fmadd_ps(d, gb, _mm256_mul_ps(dyv, dv[b])));
            if (j->ddt) bwd8_add(j->ddt + o, m, D - c0 >= 8, _mm256_fmadd_ps(xv, gb, _mm256_load_ps(ac)));
            dD[b] = _mm256_fmadd_ps(dyv, xv, dD[b]);
        }
}

/* One task of the AVX2 backward (ctx: the bwd_job, whose group is bwd_group's for RP_SSM8_BWD_GROUP). */
void rp_ssm8_bwd_task(void *ctx, int task, int n_tasks, int thread) {
    (void)n_tasks;
    const bwd_job *j = ctx;
    const int64_t T = j->T, D = j->D, tn = T * 16, nck = (T + BWD8_CHUNK - 1) / BWD8_CHUNK;
    const int64_t nblk = (D + 7) / 8, bb0 = (int64_t)task * j->group, nb = bb0 + j->group < nblk ? j->group : nblk - bb0;
    float *dBt = bwd_scratch(j, thread), *dCt = dBt + tn, *p = dCt + tn;
    bwd8_blk w[BWD8_GROUP];
    for (int b = 0; b < BWD8_GROUP; b++) {
        w[b].At = p; w[b].A2 = p + 128; w[b].Al = p + 256; w[b].DA = p + 384; w[b].G = p + 512; w[b].H = p + 640; p += 6 * 128;
        w[b].in = p; p += BWD8_CHUNK * 24;
        w[b].acc = p; p += BWD8_CHUNK * 16;
    }
    float *sums = p + (3 * BWD8_CHUNK + 1) * BWD8_SUB * 8;
    bwd8_chunk c = { p, p + (BWD8_CHUNK + 1) * BWD8_SUB * 8, p + (2 * BWD8_CHUNK + 1) * BWD8_SUB * 8, sums, sums + 2 * BWD8_CHUNK * BWD8_SUB };
    __m256 dD[BWD8_GROUP], dv[BWD8_GROUP];
    for (int64_t b = 0; b < nb; b++) {   /* A transposed to [n][lane] (zeros past the last channel), plain and times log2 e (hi, lo) */
        const int64_t c0 = (bb0 + b) * 8;
        for (int l = 0; l < 8; l++) w[b].H[l] = 0;
        for (int n = 0; n < 16; n++)
            for (int l = 0; l < 8; l++) {
                float a = c0 + l < D ? j->A[(c0 + l) * 16 + n] : 0.0f;
                w[b].At[n * 8 + l] = a;
                rp_ssm_exp_split(a, &w[b].A2[n * 8 + l], &w[b].Al[n * 8 + l]);
                w[b].H[l] = scan8_hmax(w[b].H[l], w[b].A2[n * 8 + l]);
                w[b].DA[n * 8 + l] = w[b].G[n * 8 + l] = 0;
            }
        dD[b] = _mm256_setzero_ps();
        dv[b] = j->Dskip ? _mm256_maskload_ps(j->Dskip + c0, scan8_mask(D - c0)) : _mm256_setzero_ps();
    }
    for (int64_t kc = nck - 1; kc >= 0; kc--) {
        const int64_t t0 = kc * BWD8_CHUNK, L = t0 + BWD8_CHUNK < T ? BWD8_CHUNK : T - t0;
        bwd8_stage(j, w, bb0, nb, t0, L);
        for (int n0 = 0; n0 < 16; n0 += BWD8_SUB) {
            for (int64_t b = 0; b < nb; b++) {
                const float *pr, *pw;
                bwd_prefetch_rows(j, kc, n0, (t0 - BWD8_CHUNK) * D + (bb0 + b) * 8, &pr, &pw);
                bwd8_adjoint(j, &w[b], &c, j->ck + (kc * nblk + bb0 + b) * 128, n0, t0, L, n0 == 0, b == 0, pr, pw);
            }
            bwd8_reduce(c.pB, L * BWD8_SUB, c.sums);
            bwd8_reduce(c.pC, L * BWD8_SUB, c.sums + BWD8_CHUNK * BWD8_SUB);
            for (int64_t i = 0; i < L; i++)
                for (int k = 0; k < BWD8_SUB; k += 4) {
                    float *db = dBt + (t0 + i) * 16 + n0 + k, *dc = dCt + (t0 + i) * 16 + n0 + k;
                    _mm_storeu_ps(db, _mm_add_ps(_mm_loadu_ps(db), _mm_loadu_ps(c.sums + i * BWD8_SUB + k)));
                    _mm_storeu_ps(dc, _mm_add_ps(_mm_loadu_ps(dc), _mm_loadu_ps(c.sums + (BWD8_CHUNK + i) * BWD8_SUB + k)));
                }
        }
        bwd8_finish_chunk(j, w, bb0, nb, t0, L, dv, dD);
    }
    for (int64_t b = 0; b < nb; b++) {
        const int64_t c0 = (bb0 + b) * 8;
        _Alignas(32) float dd[8];
        _mm256_store_ps(dd, dD[b]);
        for (int l = 0; l < 8 && c0 + l < D; l++) {
            if (j->dA) for (int n = 0; n < 16; n++) j->dA[(c0 + l) * 16 + n] += w[b].DA[n * 8 + l];
            if (j->dDskip) j->dDskip[c0 + l] += dd[l];
        }
    }
}
#endif
