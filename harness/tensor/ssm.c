/* ssm.c: the Mamba selective scan (see ssm.h): fast forward (AVX-512, 16 channels per vector, the N = 16
 * states of those channels in 16 registers, the last block masked) and backward (plain per channel;
 * AVX-512 over the 16 states of a channel when N = 16).
 * Invariant: every version computes the same recurrence in fp32; only exp and summation order differ. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "tensor/ops_ref.h"
#include "tensor/simd.h"
#include "tensor/ssm.h"

#if defined(__AVX512F__)
typedef struct scan_job {
    int64_t T, D, N;
    const float *x, *dt, *A, *B, *C, *Dskip;
    float *state, *y;
} scan_job;

/* Channels [c0, c0+nc), nc <= 16, with N = 16: their states live in s[0..15], one vector per n. */
static void scan_block16(const scan_job *j, int64_t c0, int nc) {
    const int64_t T = j->T, D = j->D;
    const __mmask16 m = (__mmask16)((1u << nc) - 1);
    __m512 at[16], s[16];
    float tmp[16] = { 0 };
    for (int n = 0; n < 16; n++) {
        for (int i = 0; i < nc; i++) tmp[i] = j->A[(c0 + i) * 16 + n];
        at[n] = _mm512_loadu_ps(tmp);
        for (int i = 0; i < nc; i++) tmp[i] = j->state[(c0 + i) * 16 + n];
        s[n] = _mm512_loadu_ps(tmp);
    }
    __m512 dv = j->Dskip ? _mm512_maskz_loadu_ps(m, j->Dskip + c0) : _mm512_setzero_ps();
    for (int64_t t = 0; t < T; t++) {
        __m512 xv = _mm512_maskz_loadu_ps(m, j->x + t * D + c0), dtv = _mm512_maskz_loadu_ps(m, j->dt + t * D + c0);
        __m512 dx = _mm512_mul_ps(dtv, xv), yv = _mm512_mul_ps(dv, xv);
        const float *Bt = j->B + t * 16, *Ct = j->C + t * 16;
        for (int n = 0; n < 16; n++) {
            __m512 a = rp_exp_ps(_mm512_mul_ps(dtv, at[n]));
            s[n] = _mm512_fmadd_ps(a, s[n], _mm512_mul_ps(dx, _mm512_set1_ps(Bt[n])));
            yv = _mm512_fmadd_ps(_mm512_set1_ps(Ct[n]), s[n], yv);
        }
        _mm512_mask_storeu_ps(j->y + t * D + c0, m, yv);
    }
    for (int n = 0; n < 16; n++) {
        _mm512_storeu_ps(tmp, s[n]);
        for (int i = 0; i < nc; i++) j->state[(c0 + i) * 16 + n] = tmp[i];
    }
}

static void scan_task(void *ctx, int task, int n_tasks, int thread) {
    (void)n_tasks; (void)thread;
    const scan_job *j = ctx;
    int64_t c0 = (int64_t)task * 16;
    scan_block16(j, c0, (int)(j->D - c0 < 16 ? j->D - c0 : 16));
}
#endif

void rp_ssm_scan(rp_pool *pool, int64_t T, int64_t D, int64_t N, const float *x, const float *dt, const float *A,
                 const float *B, const float *C, const float *Dskip, float *state, float *y) {
#if defined(__AVX512F__)
    if (N == 16) {
        scan_job j = { T, D, N, x, dt, A, B, C, Dskip, state, y };
        int n_tasks = (int)((D + 15) / 16);
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
    const __m512 Ac = _mm512_loadu_ps(j->A + c * 16);
    __m512 s = _mm512_setzero_ps();
    for (int64_t t = 0; t < T; t++) {
        float d = j->dt[t * D + c], xv = j->x[t * D + c];
        __m512 a = rp_exp_ps(_mm512_mul_ps(_mm512_set1_ps(d), Ac));
        s = _mm512_fmadd_ps(a, s, _mm512_mul_ps(_mm512_set1_ps(d * xv), _mm512_loadu_ps(j->B + t * 16)));
        _mm512_storeu_ps(S + t * 16, s);
    }
    __m512 g = _mm512_setzero_ps(), dAc = _mm512_setzero_ps();
    float dD = 0, Dc = j->Dskip ? j->Dskip[c] : 0.0f;
    for (int64_t t = T - 1; t >= 0; t--) {
        float d = j->dt[t * D + c], xv = j->x[t * D + c], gy = j->dy[t * D + c];
        __m512 vd = _mm512_set1_ps(d), Bn = _mm512_loadu_ps(j->B + t * 16), st = _mm512_loadu_ps(S + t * 16);
        __m512 prev = t ? _mm512_loadu_ps(S + (t - 1) * 16) : _mm512_setzero_ps();
        __m512 a = rp_exp_ps(_mm512_mul_ps(vd, Ac));
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
