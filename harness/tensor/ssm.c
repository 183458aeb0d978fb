/* ssm.c: the Mamba selective scan (see ssm.h): fast forward (AVX-512, channels across the 16 lanes, two
 * vectors of channels per block, a chunk of steps at a time state by state, the last block masked) and
 * backward (the same layout: checkpointed states per chunk, recomputed, then the adjoint recurrence;
 * plain per channel when N != 16 or without AVX-512).
 * Invariant: every version computes the same recurrence in fp32; only exp and summation order differ. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "tensor/ops_ref.h"
#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#include "tensor/ssm.h"

#if defined(__AVX512F__)
/* 2^u for 16 lanes, u <= 0 in the scan (dt > 0, A < 0): u = n + f, |f| <= 1/2, 2^f = e^(f ln2) by its
 * degree-6 Taylor polynomial (relative error below 1.3e-7), times 2^n by adding n to the exponent bits.
 * u is clamped below at -126 (a decay factor under 1.2e-38 counts as 1.2e-38) and must stay below 128.
 * 12 instructions, none of them vscalefps or vroundscaleps, against rp_exp_ps's 14. */
static inline __m512 scan_exp2_ps(__m512 u) {
    u = _mm512_max_ps(u, _mm512_set1_ps(-126.0f));
    __m512i ni = _mm512_cvtps_epi32(u);                                 /* round to nearest */
    __m512 f = _mm512_sub_ps(u, _mm512_cvtepi32_ps(ni));
    __m512 p = _mm512_set1_ps(1.5403530393381606e-04f);                 /* ln2^6 / 6! */
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3333558146428443e-03f)); /* ln2^5 / 5! */
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6181291076284772e-03f)); /* ln2^4 / 4! */
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5504108664821580e-02f)); /* ln2^3 / 3! */
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022650695910071e-01f)); /* ln2^2 / 2! */
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718055994531e-01f)); /* ln2 */
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(p), _mm512_slli_epi32(ni, 23)));   /* · 2^n */
}
#define SCAN_LOG2E 1.44269504088896341f

typedef struct scan_job {
    int64_t T, D, N;
    const float *x, *dt, *A, *B, *C, *Dskip;
    float *state, *y;
} scan_job;

/* Rows of x, dt and y are D floats apart, so one block of 32 channels touches a new page every step; a
 * task therefore runs SCAN_GROUP blocks through SCAN_CHUNK steps at a time, so the pages and lines a chunk
 * brings in serve all the blocks of the group, and a chunk's buffers stay in L1 / L2. */
#define SCAN_GROUP 4
#define SCAN_CHUNK 64

/* Time steps [t0, t1) (t1 - t0 <= SCAN_CHUNK) of channels [c0, c0+nc), nc <= 32 (two vectors of 16; the
 * lanes past nc are masked), with N = 16, state by state: for one n the whole chunk runs with the two
 * channel vectors' states in two registers, so nothing spills, each B and C value is broadcast once for 32
 * channels, and the chunk's dt, dt·x and y rows sit in an L1 buffer (y accumulates there over the 16
 * states, then goes out once). */
static void scan_block32(const scan_job *j, int64_t c0, int nc, int64_t t0, int64_t t1) {
    const int64_t D = j->D, L = t1 - t0;
    const __mmask16 m0 = (__mmask16)(nc >= 16 ? 0xffffu : (1u << nc) - 1);
    const __mmask16 m1 = (__mmask16)(nc >= 32 ? 0xffffu : nc <= 16 ? 0u : (1u << (nc - 16)) - 1);
    /* per step: dt (2 vectors), dt·x (2), y (2) */
    _Alignas(64) float buf[SCAN_CHUNK * 96];
    __m512 dv0 = j->Dskip ? _mm512_maskz_loadu_ps(m0, j->Dskip + c0) : _mm512_setzero_ps();
    __m512 dv1 = j->Dskip ? _mm512_maskz_loadu_ps(m1, j->Dskip + c0 + 16) : _mm512_setzero_ps();
    for (int64_t i = 0; i < L; i++) {
        const float *xr = j->x + (t0 + i) * D + c0, *dr = j->dt + (t0 + i) * D + c0;
        __m512 x0 = _mm512_maskz_loadu_ps(m0, xr), d0 = _mm512_maskz_loadu_ps(m0, dr);
        __m512 x1 = _mm512_maskz_loadu_ps(m1, xr + 16), d1 = _mm512_maskz_loadu_ps(m1, dr + 16);
        float *b = buf + i * 96;
        _mm512_store_ps(b, d0); _mm512_store_ps(b + 16, d1);
        _mm512_store_ps(b + 32, _mm512_mul_ps(d0, x0)); _mm512_store_ps(b + 48, _mm512_mul_ps(d1, x1));
        _mm512_store_ps(b + 64, _mm512_mul_ps(dv0, x0)); _mm512_store_ps(b + 80, _mm512_mul_ps(dv1, x1));
    }
    for (int n = 0; n < 16; n++) {
        float ta[32] = { 0 }, ts[32] = { 0 };
        for (int i = 0; i < nc; i++) {
            ta[i] = j->A[(c0 + i) * 16 + n] * SCAN_LOG2E;   /* exp(dt·A) = 2^(dt·A·log2 e) */
            ts[i] = j->state[(c0 + i) * 16 + n];
        }
        const __m512 a0 = _mm512_loadu_ps(ta), a1 = _mm512_loadu_ps(ta + 16);
        __m512 s0 = _mm512_loadu_ps(ts), s1 = _mm512_loadu_ps(ts + 16);
        const float *Bn = j->B + t0 * 16 + n, *Cn = j->C + t0 * 16 + n;
        for (int64_t i = 0; i < L; i++) {
            float *b = buf + i * 96;
            __m512 e0 = scan_exp2_ps(_mm512_mul_ps(_mm512_load_ps(b), a0));
            __m512 e1 = scan_exp2_ps(_mm512_mul_ps(_mm512_load_ps(b + 16), a1));
            __m512 bv = _mm512_set1_ps(Bn[i * 16]), cv = _mm512_set1_ps(Cn[i * 16]);
            s0 = _mm512_fmadd_ps(e0, s0, _mm512_mul_ps(_mm512_load_ps(b + 32), bv));
            s1 = _mm512_fmadd_ps(e1, s1, _mm512_mul_ps(_mm512_load_ps(b + 48), bv));
            _mm512_store_ps(b + 64, _mm512_fmadd_ps(cv, s0, _mm512_load_ps(b + 64)));
            _mm512_store_ps(b + 80, _mm512_fmadd_ps(cv, s1, _mm512_load_ps(b + 80)));
        }
        _mm512_storeu_ps(ts, s0); _mm512_storeu_ps(ts + 16, s1);
        for (int i = 0; i < nc; i++) j->state[(c0 + i) * 16 + n] = ts[i];
    }
    for (int64_t i = 0; i < L; i++) {
        float *yr = j->y + (t0 + i) * D + c0;
        _mm512_mask_storeu_ps(yr, m0, _mm512_load_ps(buf + i * 96 + 64));
        if (m1) _mm512_mask_storeu_ps(yr + 16, m1, _mm512_load_ps(buf + i * 96 + 80));
    }
}


static void scan_task(void *ctx, int task, int n_tasks, int thread) {
    (void)n_tasks; (void)thread;
    const scan_job *j = ctx;
    const int64_t nb = (j->D + 31) / 32, b0 = (int64_t)task * SCAN_GROUP, b1 = b0 + SCAN_GROUP < nb ? b0 + SCAN_GROUP : nb;
    for (int64_t t0 = 0; t0 < j->T; t0 += SCAN_CHUNK) {
        int64_t t1 = t0 + SCAN_CHUNK < j->T ? t0 + SCAN_CHUNK : j->T;
        for (int64_t b = b0; b < b1; b++) scan_block32(j, b * 32, (int)(j->D - b * 32 < 32 ? j->D - b * 32 : 32), t0, t1);
    }
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
    float *dx, *ddt, *dA, *dDskip;
    float *scratch;   /* per thread: states [T, N], dB [T, N], dC [T, N] */
} bwd_job;

/* One channel, plainly: recompute the states, then run the adjoint recurrence backwards in time.
 * g[n] is dL/ds_t[c,n]; it flows back through s_t = a_t·s_{t-1} + ... as g_{t-1} += a_t·g_t. */
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
        j->ddt[t * D + c] = ddt;
        j->dx[t * D + c] = dxv;
    }
    for (int64_t n = 0; n < N; n++) j->dA[c * N + n] = dAc[n];
    if (j->dDskip) j->dDskip[c] = dD;
}

#if defined(__AVX512F__)
/* The same for N = 16, the 16 states of the channel in one vector. */
static void bwd_channel16(const bwd_job *j, int64_t c, float *S, float *dBt, float *dCt) {
    const int64_t T = j->T, D = j->D;
    const __m512 Ac = _mm512_loadu_ps(j->A + c * 16), Ac2 = _mm512_mul_ps(Ac, _mm512_set1_ps(SCAN_LOG2E));
    __m512 s = _mm512_setzero_ps();
    for (int64_t t = 0; t < T; t++) {
        float d = j->dt[t * D + c], xv = j->x[t * D + c];
        __m512 a = scan_exp2_ps(_mm512_mul_ps(_mm512_set1_ps(d), Ac2));
        s = _mm512_fmadd_ps(a, s, _mm512_mul_ps(_mm512_set1_ps(d * xv), _mm512_loadu_ps(j->B + t * 16)));
        _mm512_storeu_ps(S + t * 16, s);
    }
    __m512 g = _mm512_setzero_ps(), dAc = _mm512_setzero_ps();
    float dD = 0, Dc = j->Dskip ? j->Dskip[c] : 0.0f;
    for (int64_t t = T - 1; t >= 0; t--) {
        float d = j->dt[t * D + c], xv = j->x[t * D + c], gy = j->dy[t * D + c];
        __m512 vd = _mm512_set1_ps(d), Bn = _mm512_loadu_ps(j->B + t * 16), st = _mm512_loadu_ps(S + t * 16);
        __m512 prev = t ? _mm512_loadu_ps(S + (t - 1) * 16) : _mm512_setzero_ps();
        __m512 a = scan_exp2_ps(_mm512_mul_ps(vd, Ac2));
        g = _mm512_fmadd_ps(_mm512_set1_ps(gy), _mm512_loadu_ps(j->C + t * 16), g);
        _mm512_storeu_ps(dCt + t * 16, _mm512_fmadd_ps(_mm512_set1_ps(gy), st, _mm512_loadu_ps(dCt + t * 16)));
        __m512 da = _mm512_mul_ps(_mm512_mul_ps(g, prev), a);
        __m512 gB = _mm512_mul_ps(g, Bn);
        j->ddt[t * D + c] = _mm512_reduce_add_ps(_mm512_fmadd_ps(da, Ac, _mm512_mul_ps(gB, _mm512_set1_ps(xv))));
        dAc = _mm512_fmadd_ps(da, vd, dAc);
        _mm512_storeu_ps(dBt + t * 16, _mm512_fmadd_ps(g, _mm512_set1_ps(d * xv), _mm512_loadu_ps(dBt + t * 16)));
        j->dx[t * D + c] = d * _mm512_reduce_add_ps(gB) + gy * Dc;
        g = _mm512_mul_ps(g, a);
        dD += gy * xv;
    }
    _mm512_storeu_ps(j->dA + c * 16, dAc);
    if (j->dDskip) j->dDskip[c] = dD;
}
#endif

static void bwd_task(void *ctx, int task, int n_tasks, int thread) {
    (void)n_tasks;
    const bwd_job *j = ctx;
    size_t tn = (size_t)(j->T * j->N);
    float *S = j->scratch + (size_t)thread * 3 * tn, *dBt = S + tn, *dCt = dBt + tn;
    int64_t c0 = (int64_t)task * 16, c1 = c0 + 16 < j->D ? c0 + 16 : j->D;
    for (int64_t c = c0; c < c1; c++) {
#if defined(__AVX512F__)
        if (j->N == 16) { bwd_channel16(j, c, S, dBt, dCt); continue; }
#endif
        bwd_channel_ref(j, c, S, dBt, dCt);
    }
}

rp_status rp_ssm_scan_backward(rp_pool *pool, int64_t T, int64_t D, int64_t N, const float *x, const float *dt,
                               const float *A, const float *B, const float *C, const float *Dskip, const float *dy,
                               float *dx, float *ddt, float *dA, float *dB, float *dC, float *dDskip) {
    if (N > 256) return rp_fail(RP_ERR_UNSUPPORTED, "ssm scan backward: d_state %lld above 256", (long long)N);
    int nth = pool ? rp_pool_size(pool) : 1;
    size_t tn = (size_t)(T * N);
    float *scratch = calloc((size_t)nth * 3 * tn + 1, sizeof *scratch);
    if (!scratch) return rp_fail(RP_ERR_NOMEM, "ssm scan backward: %zu floats of scratch", (size_t)nth * 3 * tn);
    bwd_job j = { T, D, N, x, dt, A, B, C, Dskip, dy, dx, ddt, dA, dDskip, scratch };
    int n_tasks = (int)((D + 15) / 16);
    if (pool && n_tasks > 1) rp_pool_run(pool, bwd_task, &j, n_tasks);
    else for (int i = 0; i < n_tasks; i++) bwd_task(&j, i, n_tasks, 0);
    for (size_t i = 0; i < tn; i++) {
        float b = 0, c = 0;
        for (int th = 0; th < nth; th++) { b += scratch[(size_t)th * 3 * tn + tn + i]; c += scratch[(size_t)th * 3 * tn + 2 * tn + i]; }
        dB[i] = b; dC[i] = c;
    }
    free(scratch);
    return RP_OK;
}
