/* ssm.c: the Mamba selective scan (see ssm.h): fast forward (AVX-512, channels across the 16 lanes, two
 * vectors of channels per block, a chunk of steps at a time state by state, the last block masked) and
 * backward (the same layout: checkpointed states per chunk, recomputed, then the adjoint recurrence;
 * plain per channel when N != 16 or without AVX-512).
 * Invariant: every version computes the same recurrence in fp32; only exp and summation order differ. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "tensor/ops_ref.h"
#include "tensor/ssm.h"

#if defined(__AVX512F__)
#include "tensor/ssm_exp.h"

typedef struct scan_job {
    int64_t T, D, N;
    const float *x, *dt, *A, *B, *C, *Dskip;
    float *state, *y;
} scan_job;

/* Rows of x, dt and y are D floats apart (a new page, and for D a multiple of 1024 the same L1 set, every
 * step), so a task reads a chunk of SCAN_CHUNK steps of all its SCAN_GROUP blocks' channels row by row,
 * each row's span in one contiguous pass, into a work space laid out block by block (each block's chunk
 * contiguous, so the compute loop streams it), and writes y back the same way. The decay constants and
 * the states live there too, lane-major, for the whole task. */
#define SCAN_GROUP 8
#define SCAN_CHUNK 32

typedef struct scan_ws {
    _Alignas(64) float in[SCAN_GROUP][SCAN_CHUNK * 96];   /* per block and step: dt, dt·x, y (2 vectors each) */
    _Alignas(64) float hi[SCAN_GROUP][16][32], lo[SCAN_GROUP][16][32], st[SCAN_GROUP][16][32];
} scan_ws;

/* The lane masks of a block of nc <= 32 channels (two vectors of 16). */
static inline void scan_masks(int nc, __mmask16 *m0, __mmask16 *m1) {
    *m0 = (__mmask16)(nc >= 16 ? 0xffffu : (1u << nc) - 1);
    *m1 = (__mmask16)(nc >= 32 ? 0xffffu : nc <= 16 ? 0u : (1u << (nc - 16)) - 1);
}

/* One block's chunk of L steps, state by state: for one n the whole chunk runs with the two channel
 * vectors' states in two registers, so nothing spills, each B and C value is broadcast once for 32
 * channels, and y accumulates in the work space over the 16 states. */
static void scan_block32(float *buf, const float (*hi)[32], const float (*lo)[32], float (*st)[32], const float *B,
                         const float *C, int64_t L) {
    for (int n = 0; n < 16; n++) {
        const __m512 h0 = _mm512_load_ps(hi[n]), h1 = _mm512_load_ps(hi[n] + 16), l0 = _mm512_load_ps(lo[n]), l1 = _mm512_load_ps(lo[n] + 16);
        __m512 s0 = _mm512_load_ps(st[n]), s1 = _mm512_load_ps(st[n] + 16);
        const float *Bn = B + n, *Cn = C + n;
        for (int64_t i = 0; i < L; i++) {
            float *b = buf + i * 96;
            __m512 e0 = rp_ssm_exp_ps(_mm512_load_ps(b), h0, l0);
            __m512 e1 = rp_ssm_exp_ps(_mm512_load_ps(b + 16), h1, l1);
            __m512 bv = _mm512_set1_ps(Bn[i * 16]), cv = _mm512_set1_ps(Cn[i * 16]);
            s0 = _mm512_fmadd_ps(e0, s0, _mm512_mul_ps(_mm512_load_ps(b + 32), bv));
            s1 = _mm512_fmadd_ps(e1, s1, _mm512_mul_ps(_mm512_load_ps(b + 48), bv));
            _mm512_store_ps(b + 64, _mm512_fmadd_ps(cv, s0, _mm512_load_ps(b + 64)));
            _mm512_store_ps(b + 80, _mm512_fmadd_ps(cv, s1, _mm512_load_ps(b + 80)));
        }
        _mm512_store_ps(st[n], s0); _mm512_store_ps(st[n] + 16, s1);
    }
}

/* A task: its (up to) SCAN_GROUP blocks of 32 channels through all steps, a chunk at a time. */
static void scan_task(void *ctx, int task, int n_tasks, int thread) {
    (void)n_tasks; (void)thread;
    const scan_job *j = ctx;
    const int64_t D = j->D, nb_all = (D + 31) / 32, b0 = (int64_t)task * SCAN_GROUP;
    const int nb = (int)(b0 + SCAN_GROUP < nb_all ? SCAN_GROUP : nb_all - b0);
    const int64_t c0 = b0 * 32, ncg = D - c0 < nb * 32 ? D - c0 : nb * 32;   /* the task's channels */
    scan_ws w;
    for (int b = 0; b < nb; b++)
        for (int l = 0; l < 32; l++) {
            int64_t c = c0 + b * 32 + l;
            for (int n = 0; n < 16; n++) {
                if (c < D) {
                    rp_ssm_exp_split(j->A[c * 16 + n], &w.hi[b][n][l], &w.lo[b][n][l]);   /* exp(dt·A) = 2^(dt·A·log2 e) */
                    w.st[b][n][l] = j->state[c * 16 + n];
                } else w.hi[b][n][l] = w.lo[b][n][l] = w.st[b][n][l] = 0;
            }
        }
    for (int64_t t0 = 0; t0 < j->T; t0 += SCAN_CHUNK) {
        const int64_t L = t0 + SCAN_CHUNK < j->T ? SCAN_CHUNK : j->T - t0;
        for (int64_t i = 0; i < L; i++) {   /* row by row: the task's span of x and dt, contiguous */
            const float *xr = j->x + (t0 + i) * D + c0, *dr = j->dt + (t0 + i) * D + c0;
            for (int b = 0; b < nb; b++) {
                __mmask16 m0, m1;
                scan_masks((int)(ncg - b * 32 < 32 ? ncg - b * 32 : 32), &m0, &m1);
                __m512 x0 = _mm512_maskz_loadu_ps(m0, xr + b * 32), d0 = _mm512_maskz_loadu_ps(m0, dr + b * 32);
                __m512 x1 = _mm512_maskz_loadu_ps(m1, xr + b * 32 + 16), d1 = _mm512_maskz_loadu_ps(m1, dr + b * 32 + 16);
                __m512 k0 = j->Dskip ? _mm512_maskz_loadu_ps(m0, j->Dskip + c0 + b * 32) : _mm512_setzero_ps();
                __m512 k1 = j->Dskip ? _mm512_maskz_loadu_ps(m1, j->Dskip + c0 + b * 32 + 16) : _mm512_setzero_ps();
                float *o = w.in[b] + i * 96;
                _mm512_store_ps(o, d0); _mm512_store_ps(o + 16, d1);
                _mm512_store_ps(o + 32, _mm512_mul_ps(d0, x0)); _mm512_store_ps(o + 48, _mm512_mul_ps(d1, x1));
                _mm512_store_ps(o + 64, _mm512_mul_ps(k0, x0)); _mm512_store_ps(o + 80, _mm512_mul_ps(k1, x1));
            }
        }
        for (int b = 0; b < nb; b++) scan_block32(w.in[b], (const float (*)[32])w.hi[b], (const float (*)[32])w.lo[b], w.st[b], j->B + t0 * 16, j->C + t0 * 16, L);
        for (int64_t i = 0; i < L; i++) {
            float *yr = j->y + (t0 + i) * D + c0;
            for (int b = 0; b < nb; b++) {
                __mmask16 m0, m1;
                scan_masks((int)(ncg - b * 32 < 32 ? ncg - b * 32 : 32), &m0, &m1);
                _mm512_mask_storeu_ps(yr + b * 32, m0, _mm512_load_ps(w.in[b] + i * 96 + 64));
                if (m1) _mm512_mask_storeu_ps(yr + b * 32 + 16, m1, _mm512_load_ps(w.in[b] + i * 96 + 80));
            }
        }
    }
    for (int b = 0; b < nb; b++)
        for (int l = 0; l < 32 && c0 + b * 32 + l < D; l++)
            for (int n = 0; n < 16; n++) j->state[(c0 + b * 32 + l) * 16 + n] = w.st[b][n][l];
}
#endif

void rp_ssm_scan(rp_pool *pool, int64_t T, int64_t D, int64_t N, const float *x, const float *dt, const float *A,
                 const float *B, const float *C, const float *Dskip, float *state, float *y) {
#if defined(__AVX512F__)
    if (N == 16) {
        scan_job j = { T, D, N, x, dt, A, B, C, Dskip, state, y };
        int n_tasks = (int)(((D + 31) / 32 + SCAN_GROUP - 1) / SCAN_GROUP);
        if (pool && n_tasks > 1 && T * D >= 4096) rp_pool_run(pool, scan_task, &j, n_tasks);
        else for (int i = 0; i < n_tasks; i++) scan_task(&j, i, n_tasks, 0);
        return;
    }
#endif
    (void)pool;
    rp_ref_selective_scan(NULL, y, x, dt, A, B, C, Dskip, T, D, N, state);
}

/* ---- backward ---- */

typedef struct bwd_job {
    int64_t T, D, N;
    const float *x, *dt, *A, *B, *C, *Dskip, *dy;
    float *dx, *ddt, *dA, *dDskip;   /* accumulated into; NULL: not wanted */
    rp_bwd *bw;                      /* per thread: dB [T, N] and dC [T, N] partial sums, then work space */
    size_t per_thread;               /* floats of scratch per thread (a multiple of 16) */
} bwd_job;

/* Thread th's scratch (sized before the run, so this never allocates). */
static float *bwd_scratch(const bwd_job *j, int th) { return rp_bwd_scratch(j->bw, th, j->per_thread * sizeof(float)); }

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
 * task owning BWD_GROUP blocks. A first pass runs the scan state by state and keeps each state at the
 * start of every chunk of BWD_CHUNK steps (checkpoints); then the chunks go in reverse: for each block and
 * state, the chunk's states and decays are recomputed from the checkpoint into L1 buffers and the adjoint
 * runs back through them with dL/ds in a register. dB and dC sum over channels: the lanes' partial sums
 * for the chunk gather in [L, 16] vector buffers shared by the group's blocks and are reduced once per
 * chunk. Work space per thread: bwd16_floats. */
#define BWD_CHUNK 32
#define BWD_GROUP 4

/* Floats of work space one thread needs for the vectorized backward (after its dB and dC partials). */
static size_t bwd16_floats(int64_t T) {
    size_t nck = (size_t)((T + BWD_CHUNK - 1) / BWD_CHUNK);
    return (size_t)BWD_GROUP * (nck * 256 + 5 * 256 + 16)   /* checkpoints; dL/ds, dA, A, A·log2 e hi, lo; dD */
           + 2 * BWD_CHUNK * 256                            /* dB, dC lane partials of a chunk */
           + BWD_CHUNK * 64 + BWD_CHUNK * 32                /* the chunk's dt, x, dy, dt·x; dt·A and gB sums */
           + (BWD_CHUNK + 1) * 16 + BWD_CHUNK * 16;         /* one state's chunk of states and decays */
}

/* Loads the chunk's [t0, t0+L) rows of dt, x, dy (masked) into in[L][4][16] with dt·x as the 4th. */
static void bwd16_load(const bwd_job *j, int64_t c0, __mmask16 m, int64_t t0, int64_t L, float *in) {
    for (int64_t i = 0; i < L; i++) {
        const int64_t o = (t0 + i) * j->D + c0;
        __m512 d = _mm512_maskz_loadu_ps(m, j->dt + o), xv = _mm512_maskz_loadu_ps(m, j->x + o);
        _mm512_store_ps(in + i * 64, d);
        _mm512_store_ps(in + i * 64 + 16, xv);
        _mm512_store_ps(in + i * 64 + 32, _mm512_maskz_loadu_ps(m, j->dy + o));
        _mm512_store_ps(in + i * 64 + 48, _mm512_mul_ps(d, xv));
    }
}

static void bwd_task16(void *ctx, int task, int n_tasks, int thread) {
    (void)n_tasks;
    const bwd_job *j = ctx;
    const int64_t T = j->T, D = j->D, tn = T * 16, nck = (T + BWD_CHUNK - 1) / BWD_CHUNK;
    const int64_t nblk = (D + 15) / 16, bb0 = (int64_t)task * BWD_GROUP, nb = bb0 + BWD_GROUP < nblk ? BWD_GROUP : nblk - bb0;
    float *dBt = bwd_scratch(j, thread), *dCt = dBt + tn;
    float *ck = dCt + tn, *G = ck + BWD_GROUP * nck * 256, *DA = G + BWD_GROUP * 256, *At = DA + BWD_GROUP * 256;
    float *A2 = At + BWD_GROUP * 256, *Al = A2 + BWD_GROUP * 256, *DD = Al + BWD_GROUP * 256, *pB = DD + BWD_GROUP * 16, *pC = pB + BWD_CHUNK * 256;
    float *in = pC + BWD_CHUNK * 256, *acc = in + BWD_CHUNK * 64, *Sb = acc + BWD_CHUNK * 32, *Ab = Sb + (BWD_CHUNK + 1) * 16;
    /* A of each block transposed to [n][lane] (zeros past the last channel), plain and times log2 e (hi, lo) */
    for (int64_t b = 0; b < nb; b++) {
        const int64_t c0 = (bb0 + b) * 16;
        for (int n = 0; n < 16; n++)
            for (int l = 0; l < 16; l++) {
                float a = c0 + l < D ? j->A[(c0 + l) * 16 + n] : 0.0f;
                At[b * 256 + n * 16 + l] = a;
                rp_ssm_exp_split(a, &A2[b * 256 + n * 16 + l], &Al[b * 256 + n * 16 + l]);
            }
    }
    /* pass 1: checkpoints (the state before each chunk, from zeros) */
    for (int64_t b = 0; b < nb; b++) {
        const int64_t c0 = (bb0 + b) * 16;
        const __mmask16 m = (__mmask16)(D - c0 >= 16 ? 0xffffu : (1u << (D - c0)) - 1);
        float *cb = ck + b * nck * 256;
        for (int n = 0; n < 16; n++) _mm512_store_ps(G + b * 256 + n * 16, _mm512_setzero_ps());   /* running state */
        for (int64_t k = 0; k < nck; k++) {
            const int64_t t0 = k * BWD_CHUNK, L = t0 + BWD_CHUNK < T ? BWD_CHUNK : T - t0;
            bwd16_load(j, c0, m, t0, L, in);
            for (int n = 0; n < 16; n++) {
                const __m512 a2 = _mm512_load_ps(A2 + b * 256 + n * 16), al = _mm512_load_ps(Al + b * 256 + n * 16);
                __m512 s = _mm512_load_ps(G + b * 256 + n * 16);
                _mm512_store_ps(cb + k * 256 + n * 16, s);
                const float *Bn = j->B + t0 * 16 + n;
                for (int64_t i = 0; i < L; i++) {
                    __m512 a = rp_ssm_exp_ps(_mm512_load_ps(in + i * 64), a2, al);
                    s = _mm512_fmadd_ps(a, s, _mm512_mul_ps(_mm512_load_ps(in + i * 64 + 48), _mm512_set1_ps(Bn[i * 16])));
                }
                _mm512_store_ps(G + b * 256 + n * 16, s);
            }
        }
    }
    /* pass 2: the chunks in reverse; G now holds dL/ds (zero after the last step), DA the dA lane sums */
    memset(G, 0, (size_t)nb * 256 * sizeof *G);
    memset(DA, 0, (size_t)nb * 256 * sizeof *DA);
    memset(DD, 0, (size_t)nb * 16 * sizeof *DD);
    for (int64_t k = nck - 1; k >= 0; k--) {
        const int64_t t0 = k * BWD_CHUNK, L = t0 + BWD_CHUNK < T ? BWD_CHUNK : T - t0;
        memset(pB, 0, (size_t)L * 256 * sizeof *pB);
        memset(pC, 0, (size_t)L * 256 * sizeof *pC);
        for (int64_t b = 0; b < nb; b++) {
            const int64_t c0 = (bb0 + b) * 16;
            const __mmask16 m = (__mmask16)(D - c0 >= 16 ? 0xffffu : (1u << (D - c0)) - 1);
            bwd16_load(j, c0, m, t0, L, in);
            memset(acc, 0, (size_t)L * 32 * sizeof *acc);
            for (int n = 0; n < 16; n++) {
                const __m512 a2 = _mm512_load_ps(A2 + b * 256 + n * 16), al = _mm512_load_ps(Al + b * 256 + n * 16);
                const __m512 An = _mm512_load_ps(At + b * 256 + n * 16);
                const float *Bn = j->B + t0 * 16 + n, *Cn = j->C + t0 * 16 + n;
                __m512 s = _mm512_load_ps(ck + (b * nck + k) * 256 + n * 16);
                _mm512_store_ps(Sb, s);
                for (int64_t i = 0; i < L; i++) {   /* recompute the chunk's decays and states */
                    __m512 a = rp_ssm_exp_ps(_mm512_load_ps(in + i * 64), a2, al);
                    s = _mm512_fmadd_ps(a, s, _mm512_mul_ps(_mm512_load_ps(in + i * 64 + 48), _mm512_set1_ps(Bn[i * 16])));
                    _mm512_store_ps(Ab + i * 16, a);
                    _mm512_store_ps(Sb + (i + 1) * 16, s);
                }
                __m512 g = _mm512_load_ps(G + b * 256 + n * 16), dAn = _mm512_load_ps(DA + b * 256 + n * 16);
                for (int64_t i = L - 1; i >= 0; i--) {   /* the adjoint, back through the chunk */
                    const float *r = in + i * 64;
                    __m512 dyv = _mm512_load_ps(r + 32), bv = _mm512_set1_ps(Bn[i * 16]);
                    g = _mm512_fmadd_ps(dyv, _mm512_set1_ps(Cn[i * 16]), g);
                    _mm512_store_ps(pC + i * 256 + n * 16, _mm512_fmadd_ps(dyv, _mm512_load_ps(Sb + (i + 1) * 16),
                                                                           _mm512_load_ps(pC + i * 256 + n * 16)));
                    __m512 ga = _mm512_mul_ps(g, _mm512_load_ps(Ab + i * 16));
                    __m512 da = _mm512_mul_ps(ga, _mm512_load_ps(Sb + i * 16));   /* dL/d(dt·A) */
                    _mm512_store_ps(acc + i * 32, _mm512_fmadd_ps(da, An, _mm512_load_ps(acc + i * 32)));
                    dAn = _mm512_fmadd_ps(da, _mm512_load_ps(r), dAn);
                    _mm512_store_ps(acc + i * 32 + 16, _mm512_fmadd_ps(g, bv, _mm512_load_ps(acc + i * 32 + 16)));
                    _mm512_store_ps(pB + i * 256 + n * 16, _mm512_fmadd_ps(g, _mm512_load_ps(r + 48),
                                                                           _mm512_load_ps(pB + i * 256 + n * 16)));
                    g = ga;   /* carry to s_{t-1} */
                }
                _mm512_store_ps(G + b * 256 + n * 16, g);
                _mm512_store_ps(DA + b * 256 + n * 16, dAn);
            }
            /* dx = dt·Σ_n g·B + dy·Dskip; ddt = Σ_n da·A + x·Σ_n g·B; dDskip = Σ_t dy·x */
            __m512 dv = j->Dskip ? _mm512_maskz_loadu_ps(m, j->Dskip + c0) : _mm512_setzero_ps(), dd = _mm512_load_ps(DD + b * 16);
            for (int64_t i = 0; i < L; i++) {
                const float *r = in + i * 64;
                __m512 gb = _mm512_load_ps(acc + i * 32 + 16), dyv = _mm512_load_ps(r + 32), xv = _mm512_load_ps(r + 16);
                const int64_t o = (t0 + i) * D + c0;
                if (j->dx)
                    _mm512_mask_storeu_ps(j->dx + o, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, j->dx + o),
                                                                      _mm512_fmadd_ps(_mm512_load_ps(r), gb, _mm512_mul_ps(dyv, dv))));
                if (j->ddt)
                    _mm512_mask_storeu_ps(j->ddt + o, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, j->ddt + o),
                                                                       _mm512_fmadd_ps(xv, gb, _mm512_load_ps(acc + i * 32))));
                dd = _mm512_fmadd_ps(dyv, xv, dd);
            }
            _mm512_store_ps(DD + b * 16, dd);
        }
        for (int64_t i = 0; i < L; i++)
            for (int n = 0; n < 16; n++) {
                dBt[(t0 + i) * 16 + n] += _mm512_reduce_add_ps(_mm512_load_ps(pB + i * 256 + n * 16));
                dCt[(t0 + i) * 16 + n] += _mm512_reduce_add_ps(_mm512_load_ps(pC + i * 256 + n * 16));
            }
    }
    for (int64_t b = 0; b < nb; b++) {
        const int64_t c0 = (bb0 + b) * 16;
        for (int l = 0; l < 16 && c0 + l < D; l++) {
            if (j->dA) for (int n = 0; n < 16; n++) j->dA[(c0 + l) * 16 + n] += DA[b * 256 + n * 16 + l];
            if (j->dDskip) j->dDskip[c0 + l] += DD[b * 16 + l];
        }
    }
}
#endif

/* The selective scan's backward (rp_bwd_cpu.selective_scan; see ssm.h). */
rp_status rp_ssm_scan_backward(rp_bwd *bw, float *dx, float *ddt, float *dA, float *dB, float *dC, float *dDskip,
                               const float *dy, const float *x, const float *dt, const float *A, const float *B,
                               const float *C, const float *Dskip, int64_t T, int64_t D, int64_t N) {
    if (N > 256) return rp_fail(RP_ERR_UNSUPPORTED, "selective_scan backward: d_state %lld above 256", (long long)N);
    rp_pool *pool = rp_bwd_pool(bw);
    int nth = pool ? rp_pool_size(pool) : 1;
    size_t tn = (size_t)(T * N), work = tn;   /* the plain path: one channel's states */
    rp_pool_fn fn = bwd_task_ref;
    int n_tasks = (int)((D + BWD_REF_CHANNELS - 1) / BWD_REF_CHANNELS);
#if defined(__AVX512F__)
    if (N == 16) { work = bwd16_floats(T); fn = bwd_task16; n_tasks = (int)(((D + 15) / 16 + BWD_GROUP - 1) / BWD_GROUP); }
#endif
    bwd_job j = { T, D, N, x, dt, A, B, C, Dskip, dy, dx, ddt, dA, dDskip, bw, (2 * tn + work + 15) / 16 * 16 };
    for (int th = 0; th < nth; th++) {   /* every thread's scratch exists before the run: tasks never allocate */
        float *sc = bwd_scratch(&j, th);
        if (!sc) return rp_fail(RP_ERR_NOMEM, "selective_scan backward: %zu floats of scratch per thread", j.per_thread);
        memset(sc, 0, 2 * tn * sizeof *sc);
    }
    if (pool && n_tasks > 1) rp_pool_run(pool, fn, &j, n_tasks);
    else for (int i = 0; i < n_tasks; i++) fn(&j, i, n_tasks, 0);
    for (int th = 0; th < nth; th++) {
        const float *sc = bwd_scratch(&j, th);
        if (dB) for (size_t i = 0; i < tn; i++) dB[i] += sc[i];
        if (dC) for (size_t i = 0; i < tn; i++) dC[i] += sc[tn + i];
    }
    return RP_OK;
}
