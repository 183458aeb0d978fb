/* ssm.c: the Mamba selective scan (see ssm.h): fast forward (AVX-512, 16 channels per vector, the N = 16
 * states of those channels in 16 registers, the last block masked) and backward (plain per channel;
 * AVX-512 over the 16 states of a channel when N = 16).
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

/* Rows of x, dt and y are D floats apart, so one block of 16 channels touches a new page every step and
 * the prefetchers cannot follow; a task therefore runs SCAN_GROUP blocks through SCAN_CHUNK steps at a
 * time, so the pages and lines a chunk brings in serve all the blocks of the group. */
#define SCAN_GROUP 8
#define SCAN_CHUNK 16
#define SCAN_AHEAD 6   /* steps to prefetch ahead: a step of one block is about 16 exps (~150 cycles) */

/* Time steps [t0, t1) of channels [c0, c0+nc), nc <= 16, with N = 16: the states of those channels live
 * in s[0..15], one vector per n (loaded from and stored back to state, [D, N]). */
static void scan_block16(const scan_job *j, int64_t c0, int nc, int64_t t0, int64_t t1) {
    const int64_t D = j->D;
    const __mmask16 m = (__mmask16)((1u << nc) - 1);
    __m512 at[16], s[16];
    float tmp[16] = { 0 };
    /* y rows go out after the chunk: stored row by row they sit a multiple of 4 KiB from the next x and dt
     * loads (D = 1024 floats is one page), and every load waits on a false store-forwarding match */
    _Alignas(64) float ybuf[SCAN_CHUNK * 16];
    for (int n = 0; n < 16; n++) {
        for (int i = 0; i < nc; i++) tmp[i] = j->A[(c0 + i) * 16 + n] * SCAN_LOG2E;   /* exp(dt·A) = 2^(dt·A·log2 e) */
        at[n] = _mm512_loadu_ps(tmp);
        for (int i = 0; i < nc; i++) tmp[i] = j->state[(c0 + i) * 16 + n];
        s[n] = _mm512_loadu_ps(tmp);
    }
    __m512 dv = j->Dskip ? _mm512_maskz_loadu_ps(m, j->Dskip + c0) : _mm512_setzero_ps();
    for (int64_t t = t0; t < t1; t++) {
        if (t + SCAN_AHEAD < j->T) {   /* rows are a page apart: the prefetchers cannot guess them */
            _mm_prefetch((const char *)(j->x + (t + SCAN_AHEAD) * D + c0), _MM_HINT_T0);
            _mm_prefetch((const char *)(j->dt + (t + SCAN_AHEAD) * D + c0), _MM_HINT_T0);
            _mm_prefetch((const char *)(j->y + (t + SCAN_AHEAD) * D + c0), _MM_HINT_T0);
        }
        __m512 xv = _mm512_maskz_loadu_ps(m, j->x + t * D + c0), dtv = _mm512_maskz_loadu_ps(m, j->dt + t * D + c0);
        __m512 dx = _mm512_mul_ps(dtv, xv), y0 = _mm512_mul_ps(dv, xv), y1 = _mm512_setzero_ps();
        __m512 y2 = _mm512_setzero_ps(), y3 = _mm512_setzero_ps();   /* four sums: short dependency chains */
        const float *Bt = j->B + t * 16, *Ct = j->C + t * 16;
        for (int n = 0; n < 16; n += 4) {
            __m512 a0 = scan_exp2_ps(_mm512_mul_ps(dtv, at[n])), a1 = scan_exp2_ps(_mm512_mul_ps(dtv, at[n + 1]));
            __m512 a2 = scan_exp2_ps(_mm512_mul_ps(dtv, at[n + 2])), a3 = scan_exp2_ps(_mm512_mul_ps(dtv, at[n + 3]));
            s[n] = _mm512_fmadd_ps(a0, s[n], _mm512_mul_ps(dx, _mm512_set1_ps(Bt[n])));
            s[n + 1] = _mm512_fmadd_ps(a1, s[n + 1], _mm512_mul_ps(dx, _mm512_set1_ps(Bt[n + 1])));
            s[n + 2] = _mm512_fmadd_ps(a2, s[n + 2], _mm512_mul_ps(dx, _mm512_set1_ps(Bt[n + 2])));
            s[n + 3] = _mm512_fmadd_ps(a3, s[n + 3], _mm512_mul_ps(dx, _mm512_set1_ps(Bt[n + 3])));
            y0 = _mm512_fmadd_ps(_mm512_set1_ps(Ct[n]), s[n], y0);
            y1 = _mm512_fmadd_ps(_mm512_set1_ps(Ct[n + 1]), s[n + 1], y1);
            y2 = _mm512_fmadd_ps(_mm512_set1_ps(Ct[n + 2]), s[n + 2], y2);
            y3 = _mm512_fmadd_ps(_mm512_set1_ps(Ct[n + 3]), s[n + 3], y3);
        }
        _mm512_store_ps(ybuf + (t - t0) * 16, _mm512_add_ps(_mm512_add_ps(y0, y1), _mm512_add_ps(y2, y3)));
    }
    for (int64_t t = t0; t < t1; t++) _mm512_mask_storeu_ps(j->y + t * D + c0, m, _mm512_load_ps(ybuf + (t - t0) * 16));
    for (int n = 0; n < 16; n++) {
        _mm512_storeu_ps(tmp, s[n]);
        for (int i = 0; i < nc; i++) j->state[(c0 + i) * 16 + n] = tmp[i];
    }
}


static void scan_task(void *ctx, int task, int n_tasks, int thread) {
    (void)n_tasks; (void)thread;
    const scan_job *j = ctx;
    const int64_t nb = (j->D + 15) / 16, b0 = (int64_t)task * SCAN_GROUP, b1 = b0 + SCAN_GROUP < nb ? b0 + SCAN_GROUP : nb;
    for (int64_t t0 = 0; t0 < j->T; t0 += SCAN_CHUNK) {
        int64_t t1 = t0 + SCAN_CHUNK < j->T ? t0 + SCAN_CHUNK : j->T;
        for (int64_t b = b0; b < b1; b++) scan_block16(j, b * 16, (int)(j->D - b * 16 < 16 ? j->D - b * 16 : 16), t0, t1);
    }
}
#endif

void rp_ssm_scan(rp_pool *pool, int64_t T, int64_t D, int64_t N, const float *x, const float *dt, const float *A,
                 const float *B, const float *C, const float *Dskip, float *state, float *y) {
#if defined(__AVX512F__)
    if (N == 16) {
        scan_job j = { T, D, N, x, dt, A, B, C, Dskip, state, y };
        int n_tasks = (int)(((D + 15) / 16 + SCAN_GROUP - 1) / SCAN_GROUP);
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
