/* backward_ssm.c: the backward kernels of the Mamba mixer's two sequence ops, causal depthwise conv1d and
 * the selective scan, for both backward tables (backward.h): the reference versions (plain loops, double
 * accumulators, one channel at a time) and the cpu conv1d (float, channels innermost, threads over channel
 * ranges). The cpu selective scan backward is rp_ssm_scan_backward (ssm.c).
 * Invariants: both differentiate a sequence that starts from a zero state (training from scratch: the
 * forward ran with state / h zeros), so no gradient flows to an initial state; gradients are accumulated
 * (+=) and a NULL gradient is skipped, as everywhere in backward.h. */
#include <math.h>
#include <string.h>
#include "tensor/backward.h"

/* Reference conv1d backward: out[t,c] = b[c] + Σ_k w[c,k]·x[t-K+1+k, c] (zeros before t = 0). */
rp_status rp_ref_conv1d_causal_backward(rp_bwd *b, float *dx, float *dw, float *db, const float *dy, const float *x,
                                        int64_t T, int64_t C, const float *w, int K) {
    (void)b;
    if (K < 1) return rp_fail(RP_ERR_INVAL, "conv1d_causal backward: kernel size %d < 1", K);
    for (int64_t c = 0; c < C; c++) {
        double gb = 0;
        for (int64_t t = 0; t < T; t++) gb += dy[t * C + c];
        if (db) db[c] += (float)gb;
        for (int k = 0; k < K; k++) {
            double gw = 0;
            for (int64_t t = 0; t < T; t++) {
                int64_t s = t - K + 1 + k;   /* the input this tap saw; < 0 is the zero state: no gradient */
                if (s < 0) continue;
                gw += (double)dy[t * C + c] * x[s * C + c];
                if (dx) dx[s * C + c] += (float)((double)dy[t * C + c] * w[c * K + k]);
            }
            if (dw) dw[c * K + k] += (float)gw;
        }
    }
    return RP_OK;
}

typedef struct conv_job {
    float *dx, *dw, *db;
    const float *dy, *x, *w;
    int64_t T, C;
    int K;
} conv_job;

/* Channels [c0, c1): each tap adds dy times the weight to the input it saw, dy times that input to the weight. */
static void conv_task(void *ctx, int task, int n_tasks, int thread) {
    (void)thread;
    const conv_job *j = ctx;
    const int64_t C = j->C, K = j->K, c0 = C * task / n_tasks, c1 = C * (task + 1) / n_tasks;
    for (int64_t t = 0; t < j->T; t++) {
        const float *g = j->dy + t * C;
        if (j->db) for (int64_t c = c0; c < c1; c++) j->db[c] += g[c];
        for (int64_t k = 0; k < K; k++) {
            int64_t s = t - K + 1 + k;
            if (s < 0) continue;                   /* the zero state receives no gradient */
            const float *xs = j->x + s * C;
            if (j->dw) for (int64_t c = c0; c < c1; c++) j->dw[c * K + k] += g[c] * xs[c];
            if (j->dx) for (int64_t c = c0; c < c1; c++) j->dx[s * C + c] += g[c] * j->w[c * K + k];
        }
    }
}

/* The cpu conv1d backward: threads over channel ranges (each owns its columns of dx, its rows of dw). */
rp_status rp_cpu_conv1d_causal_backward(rp_bwd *b, float *dx, float *dw, float *db, const float *dy, const float *x,
                                        int64_t T, int64_t C, const float *w, int K) {
    if (K < 1) return rp_fail(RP_ERR_INVAL, "conv1d_causal backward: kernel size %d < 1", K);
    conv_job j = { dx, dw, db, dy, x, w, T, C, K };
    rp_pool *pool = rp_bwd_pool(b);
    int n = pool && T * C * K >= 65536 ? rp_pool_size(pool) * 4 : 1;
    if (n > C) n = (int)C;
    if (n > 1) rp_pool_run(pool, conv_task, &j, n);
    else conv_task(&j, 0, 1, 0);
    return RP_OK;
}

/* Reference scan backward: per channel, the states in double (shared scratch of T·N doubles), then the
 * adjoint recurrence backwards in time: g = dL/ds_t, carried to s_{t-1} as a_t·g. */
rp_status rp_ref_selective_scan_backward(rp_bwd *b, float *du, float *ddt, float *dA, float *dB, float *dC, float *dDp,
                                         const float *dy, const float *u, const float *dt, const float *A,
                                         const float *B, const float *Cm, const float *Dp, int64_t T, int64_t D,
                                         int64_t N, const float *ckpt) {
    (void)ckpt;   /* the states are recomputed in double */
    double *S = rp_bwd_shared(b, (size_t)(T * N + 2 * N) * sizeof *S);
    if (!S) return rp_fail(RP_ERR_NOMEM, "selective_scan backward: %lld doubles of scratch", (long long)(T * N + 2 * N));
    double *g = S + T * N, *gA = g + N;
    for (int64_t c = 0; c < D; c++) {
        for (int64_t t = 0; t < T; t++)
            for (int64_t n = 0; n < N; n++)
                S[t * N + n] = exp((double)dt[t * D + c] * A[c * N + n]) * (t ? S[(t - 1) * N + n] : 0.0)
                               + (double)dt[t * D + c] * B[t * N + n] * u[t * D + c];
        for (int64_t n = 0; n < N; n++) g[n] = gA[n] = 0;
        double gD = 0;
        for (int64_t t = T - 1; t >= 0; t--) {
            double d = dt[t * D + c], x = u[t * D + c], gy = dy[t * D + c], gd = 0, gx = Dp ? gy * Dp[c] : 0.0;
            for (int64_t n = 0; n < N; n++) {
                double a = exp(d * A[c * N + n]), prev = t ? S[(t - 1) * N + n] : 0.0;
                g[n] += gy * Cm[t * N + n];
                if (dC) dC[t * N + n] += (float)(gy * S[t * N + n]);
                double da = g[n] * a * prev;   /* dL/d(dt·A) */
                gd += da * A[c * N + n] + g[n] * B[t * N + n] * x;
                gA[n] += da * d;
                if (dB) dB[t * N + n] += (float)(g[n] * d * x);
                gx += g[n] * d * B[t * N + n];
                g[n] *= a;
            }
            gD += gy * x;
            if (ddt) ddt[t * D + c] += (float)gd;
            if (du) du[t * D + c] += (float)gx;
        }
        if (dA) for (int64_t n = 0; n < N; n++) dA[c * N + n] += (float)gA[n];
        if (dDp && Dp) dDp[c] += (float)gD;
    }
    return RP_OK;
}
