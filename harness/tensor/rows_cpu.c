/* rows_cpu.c: the row-wise kernels of a training step on the CPU, split over the backward context's pool
 * (rp_bwd_run): forward RMSNorm, RoPE from a precomputed cos/sin table, SwiGLU and cross-entropy (keeping
 * each row's log-sum-exp), the in-place cross-entropy gradient a trainer uses instead of a second
 * [rows, V] buffer, and the backward kernels of RMSNorm, RoPE, SwiGLU and cross-entropy behind rp_bwd_cpu.
 * Exponentials use simd.h's rp_exp_ps (a few ulp) where AVX-512 is compiled in.
 * Invariants: every kernel computes what its rp_ref_* namesake defines (same layouts; backward kernels
 * accumulate), up to float rounding, checked by tests/test_backward.c (finite differences and cpu vs ref at
 * sizes with vector tails); RMSNorm's dw is summed from per-task partials in a fixed order, so results do
 * not depend on which thread ran which task; nothing is allocated after the context's scratch has grown. */
#include <math.h>
#include <string.h>
#include "tensor/backward.h"
#include "tensor/ops_ref.h"
#include "tensor/simd.h"

#define ROW_TASKS_PER_THREAD 4   /* a descheduled thread's share is taken over by the others */

static int row_tasks(rp_bwd *b, int64_t rows) {
    int64_t n = (int64_t)rp_bwd_threads(b) * ROW_TASKS_PER_THREAD;
    return (int)(rows < n ? (rows > 0 ? rows : 1) : n);
}

/* ---- RMSNorm ---- */

typedef struct rms_job {
    float *out, *dx, *dw_part;
    const float *x, *w, *dout;
    int64_t T, C;
    float eps;
} rms_job;

static void rms_fwd_task(void *ctx, int ith, int nth, int thread) {
    rms_job *j = ctx;
    (void)thread;
    int64_t a, z, C = j->C;
    rp_bwd_split(j->T, ith, nth, 1, &a, &z);
    for (int64_t t = a; t < z; t++) {
        const float *xr = j->x + t * C;
        float r = 1.0f / sqrtf(rp_vdot(xr, xr, C) / (float)C + j->eps), *o = j->out + t * C;
        if (j->w) for (int64_t c = 0; c < C; c++) o[c] = xr[c] * r * j->w[c];
        else for (int64_t c = 0; c < C; c++) o[c] = xr[c] * r;
    }
}

/* RMSNorm forward over rows split across the pool. */
rp_status rp_cpu_rmsnorm_forward(rp_bwd *b, float *out, const float *x, const float *w, int64_t T, int64_t C, float eps) {
    rms_job j = { .out = out, .x = x, .w = w, .T = T, .C = C, .eps = eps };
    rp_bwd_run(b, rms_fwd_task, &j, row_tasks(b, T));
    return RP_OK;
}

/* dx += r·dout∘w − r³/C · x · ⟨dout∘w, x⟩; this task's dw partial gets dout∘x·r. */
static void rms_bwd_task(void *ctx, int ith, int nth, int thread) {
    rms_job *j = ctx;
    (void)thread;
    int64_t a, z, C = j->C;
    rp_bwd_split(j->T, ith, nth, 1, &a, &z);
    float *dw = j->dw_part ? j->dw_part + (int64_t)ith * C : NULL;
    if (dw) memset(dw, 0, (size_t)C * sizeof *dw);
    for (int64_t t = a; t < z; t++) {
        const float *xr = j->x + t * C, *dr = j->dout + t * C;
        float r = 1.0f / sqrtf(rp_vdot(xr, xr, C) / (float)C + j->eps), dot = 0;
        if (j->w) for (int64_t c = 0; c < C; c++) dot += dr[c] * j->w[c] * xr[c];
        else dot = rp_vdot(dr, xr, C);
        float k = r * r * r / (float)C * dot;
        if (j->dx) {
            float *d = j->dx + t * C;
            if (j->w) for (int64_t c = 0; c < C; c++) d[c] += r * dr[c] * j->w[c] - k * xr[c];
            else for (int64_t c = 0; c < C; c++) d[c] += r * dr[c] - k * xr[c];
        }
        if (dw) for (int64_t c = 0; c < C; c++) dw[c] += dr[c] * xr[c] * r;
    }
}

/* RMSNorm backward over rows split across the pool (rp_bwd_cpu.rmsnorm). */
rp_status rp_cpu_rmsnorm_backward(rp_bwd *b, float *dx, float *dw, const float *dout, const float *x, const float *w,
                                      int64_t T, int64_t C, float eps) {
    int n = row_tasks(b, T);
    float *part = NULL;
    if (dw && !(part = rp_bwd_shared(b, (size_t)n * (size_t)C * sizeof(float))))
        return rp_fail(RP_ERR_NOMEM, "rmsnorm backward: out of memory for %d x %lld partial sums", n, (long long)C);
    rms_job j = { .dx = dx, .dw_part = part, .x = x, .w = w, .dout = dout, .T = T, .C = C, .eps = eps };
    rp_bwd_run(b, rms_bwd_task, &j, n);
    if (dw)
        for (int i = 0; i < n; i++) rp_vaxpy(dw, 1.0f, part + (int64_t)i * C, C);
    return RP_OK;
}

/* ---- RoPE ---- */

/* The cos/sin table of positions [0, npos): cs[p·half + i] = cos(p·base^(−2i/rope_dim)), angles in double. */
rp_status rp_rope_table(float *cs, float *sn, int64_t npos, int rope_dim, float base) {
    if (rope_dim < 0 || rope_dim % 2) return rp_fail(RP_ERR_INVAL, "rope: rope_dim %d must be even", rope_dim);
    int half = rope_dim / 2;
    for (int i = 0; i < half; i++) {
        double f = pow((double)base, -2.0 * i / rope_dim);
        for (int64_t p = 0; p < npos; p++) {
            cs[p * half + i] = (float)cos((double)p * f);
            sn[p * half + i] = (float)sin((double)p * f);
        }
    }
    return RP_OK;
}

/* Rotates the H heads of one row by the angles (cs, sn), or by their negatives when sign < 0 (the backward). */
static void rope_row(float *x, int H, int D, int half, int neox, const float *cs, const float *sn, float sign) {
    for (int h = 0; h < H; h++) {
        float *v = x + (int64_t)h * D;
        for (int i = 0; i < half; i++) {
            int a = neox ? i : 2 * i, c = neox ? i + half : 2 * i + 1;
            float x0 = v[a], x1 = v[c], s = sign * sn[i];
            v[a] = x0 * cs[i] - x1 * s;
            v[c] = x0 * s + x1 * cs[i];
        }
    }
}

typedef struct rope_job {
    float *x;
    const float *cs, *sn;
    const int32_t *pos;
    int64_t T, npos;
    float base, sign;
    int H, D, rope_dim, neox, bad;
} rope_job;

static void rope_task(void *ctx, int ith, int nth, int thread) {
    rope_job *j = ctx;
    (void)thread;
    int64_t a, z;
    int half = j->rope_dim / 2;
    rp_bwd_split(j->T, ith, nth, 1, &a, &z);
    float cs[512], sn[512];
    for (int64_t t = a; t < z; t++) {
        const float *c = cs, *s = sn;
        if (j->cs) {
            if (j->pos[t] < 0 || j->pos[t] >= j->npos) { j->bad = 1; return; }
            c = j->cs + (int64_t)j->pos[t] * half;
            s = j->sn + (int64_t)j->pos[t] * half;
        } else {
            for (int i = 0; i < half; i++) {
                double ang = (double)j->pos[t] * pow((double)j->base, -2.0 * i / j->rope_dim);
                cs[i] = (float)cos(ang);
                sn[i] = (float)sin(ang);
            }
        }
        rope_row(j->x + t * j->H * j->D, j->H, j->D, half, j->neox, c, s, j->sign);
    }
}

static rp_status rope_check(int D, int rope_dim) {
    if (rope_dim > D || rope_dim % 2 || rope_dim > 1024 || rope_dim < 0)
        return rp_fail(RP_ERR_INVAL, "rope: rope_dim %d must be even, <= head size %d and <= 1024", rope_dim, D);
    return RP_OK;
}

/* RoPE in place on x[T, H, D] from a table of npos positions (rp_rope_table); inverse != 0 rotates back. */
rp_status rp_cpu_rope_apply(rp_bwd *b, float *x, int64_t T, int H, int D, int rope_dim, const int32_t *pos, const float *cs,
                            const float *sn, int64_t npos, int neox, int inverse) {
    RP_TRY(rope_check(D, rope_dim));
    rope_job j = { .x = x, .cs = cs, .sn = sn, .pos = pos, .T = T, .npos = npos, .sign = inverse ? -1.0f : 1.0f, .H = H, .D = D,
                   .rope_dim = rope_dim, .neox = neox };
    rp_bwd_run(b, rope_task, &j, row_tasks(b, T));
    if (j.bad) return rp_fail(RP_ERR_RANGE, "rope: a position outside the table's [0, %lld)", (long long)npos);
    return RP_OK;
}

/* RoPE backward (the inverse rotation) over rows split across the pool (rp_bwd_cpu.rope). */
rp_status rp_cpu_rope_backward(rp_bwd *b, float *dx, int64_t T, int H, int D, int rope_dim, const int32_t *pos, float base,
                                   int neox) {
    RP_TRY(rope_check(D, rope_dim));
    rope_job j = { .x = dx, .pos = pos, .T = T, .base = base, .sign = -1.0f, .H = H, .D = D, .rope_dim = rope_dim, .neox = neox };
    rp_bwd_run(b, rope_task, &j, row_tasks(b, T));
    return RP_OK;
}

/* ---- SwiGLU ---- */

typedef struct swiglu_job {
    float *out, *dgate, *dup;
    const float *gate, *up, *dout;
    int64_t n;
} swiglu_job;

static void swiglu_fwd_task(void *ctx, int ith, int nth, int thread) {
    swiglu_job *j = ctx;
    (void)thread;
    int64_t a, z;
    rp_bwd_split(j->n, ith, nth, 16, &a, &z);
    if (a < z) rp_vswiglu(j->out + a, j->gate + a, j->up ? j->up + a : NULL, z - a);
}

/* out = silu(gate)·up over n values split across the pool. */
rp_status rp_cpu_swiglu_forward(rp_bwd *b, float *out, const float *gate, const float *up, int64_t n) {
    swiglu_job j = { .out = out, .gate = gate, .up = up, .n = n };
    rp_bwd_run(b, swiglu_fwd_task, &j, row_tasks(b, (n + 4095) / 4096));
    return RP_OK;
}

/* With s = σ(g): dgate += dout·u·s·(1 + g·(1 − s)), dup += dout·g·s. */
static void swiglu_bwd_task(void *ctx, int ith, int nth, int thread) {
    swiglu_job *j = ctx;
    (void)thread;
    int64_t a, z, i;
    rp_bwd_split(j->n, ith, nth, 16, &a, &z);
    i = a;
#if defined(RP_VL)
    for (; i + RP_VL <= z; i += RP_VL) {   /* the scalar loop's arithmetic, a vector at a time */
        const rp_vf g = *(const rp_vf *)(j->gate + i), d = *(const rp_vf *)(j->dout + i);
        const rp_vf u = j->up ? *(const rp_vf *)(j->up + i) : (rp_vf){ 0 } + 1.0f;
        const rp_vf s = 1.0f / (1.0f + rp_vf_exp(-g));
        if (j->dgate) *(rp_vf *)(j->dgate + i) += d * u * (s * (1.0f + g * (1.0f - s)));
        if (j->dup) *(rp_vf *)(j->dup + i) += d * (g * s);
    }
#endif
    for (; i < z; i++) {
        float g = j->gate[i], s = 1.0f / (1.0f + expf(-g)), u = j->up ? j->up[i] : 1.0f;
        if (j->dgate) j->dgate[i] += j->dout[i] * u * s * (1.0f + g * (1.0f - s));
        if (j->dup) j->dup[i] += j->dout[i] * g * s;
    }
}

/* SwiGLU backward over slices split across the pool (rp_bwd_cpu.swiglu). */
rp_status rp_cpu_swiglu_backward(rp_bwd *b, float *dgate, float *dup, const float *dout, const float *gate, const float *up,
                                     int64_t n) {
    swiglu_job j = { .dgate = dgate, .dup = dup, .gate = gate, .up = up, .dout = dout, .n = n };
    rp_bwd_run(b, swiglu_bwd_task, &j, row_tasks(b, (n + 4095) / 4096));
    return RP_OK;
}

/* ---- cross-entropy ---- */

typedef struct ce_job {
    float *loss, *lse, *d;
    const float *logits, *dloss;
    const int32_t *target;
    const uint8_t *mask;
    int64_t rows, n;
    int accumulate, bad;
} ce_job;

static void ce_fwd_task(void *ctx, int ith, int nth, int thread) {
    ce_job *j = ctx;
    (void)thread;
    int64_t a, z;
    rp_bwd_split(j->rows, ith, nth, 1, &a, &z);
    for (int64_t r = a; r < z; r++) {
        if (j->mask && !j->mask[r]) { j->loss[r] = 0; continue; }
        if (j->target[r] < 0 || j->target[r] >= j->n) { j->bad = 1; continue; }
        const float *v = j->logits + r * j->n;
        float mx = rp_vmax(v, j->n), lse = mx + logf(rp_vexp_sum(v, mx, j->n));
        if (j->lse) j->lse[r] = lse;
        j->loss[r] = lse - v[j->target[r]];
    }
}

/* Per-row cross-entropy loss[r] = logsumexp(logits[r]) − logits[r][target[r]] (0 for masked rows) and, when lse
 * is not NULL, each scored row's log-sum-exp for rp_cpu_cross_entropy_grad. */
rp_status rp_cpu_cross_entropy_forward(rp_bwd *b, float *loss, float *lse, const float *logits, const int32_t *target,
                                       const uint8_t *mask, int64_t rows, int64_t n) {
    ce_job j = { .loss = loss, .lse = lse, .logits = logits, .target = target, .mask = mask, .rows = rows, .n = n };
    rp_bwd_run(b, ce_fwd_task, &j, row_tasks(b, rows));
    if (j.bad) return rp_fail(RP_ERR_RANGE, "cross_entropy: a target outside [0, %lld)", (long long)n);
    return RP_OK;
}

/* d = g·(e^(v − lse) − onehot(target)), written or added to d (which may be v itself). */
static void ce_row_grad(float *d, const float *v, int64_t n, float lse, float g, int32_t target, int accumulate) {
    int64_t i = 0;
#if defined(RP_VL)
    for (; i + RP_VL <= n; i += RP_VL) {
        const rp_vf p = g * rp_vf_exp(*(const rp_vf *)(v + i) - lse);
        *(rp_vf *)(d + i) = accumulate ? p + *(const rp_vf *)(d + i) : p;
    }
#endif
    for (; i < n; i++) {
        float p = g * expf(v[i] - lse);
        d[i] = accumulate ? d[i] + p : p;
    }
    d[target] -= g;
}

static void ce_grad_task(void *ctx, int ith, int nth, int thread) {
    ce_job *j = ctx;
    (void)thread;
    int64_t a, z;
    rp_bwd_split(j->rows, ith, nth, 1, &a, &z);
    for (int64_t r = a; r < z; r++) {
        float *d = j->d + r * j->n;
        if (j->mask && !j->mask[r]) { if (!j->accumulate) memset(d, 0, (size_t)j->n * sizeof *d); continue; }
        if (j->target[r] < 0 || j->target[r] >= j->n) { j->bad = 1; continue; }
        const float *v = j->logits + r * j->n;
        float lse = j->lse ? j->lse[r] : rp_vmax(v, j->n);
        if (!j->lse) lse += logf(rp_vexp_sum(v, lse, j->n));
        ce_row_grad(d, v, j->n, lse, j->dloss ? j->dloss[r] : 1.0f, j->target[r], j->accumulate);
    }
}

/* In place: logits[r] becomes dloss[r]·(softmax(logits[r]) − onehot(target[r])) from the lse that
 * rp_cpu_cross_entropy_forward kept (masked rows become 0): the gradient without a second [rows, n] buffer. */
rp_status rp_cpu_cross_entropy_grad(rp_bwd *b, float *logits, const float *lse, const int32_t *target, const float *dloss,
                                    const uint8_t *mask, int64_t rows, int64_t n) {
    ce_job j = { .d = logits, .lse = (float *)lse, .logits = logits, .dloss = dloss, .target = target, .mask = mask, .rows = rows,
                 .n = n };
    rp_bwd_run(b, ce_grad_task, &j, row_tasks(b, rows));
    if (j.bad) return rp_fail(RP_ERR_RANGE, "cross_entropy backward: a target outside [0, %lld)", (long long)n);
    return RP_OK;
}

/* Cross-entropy backward, accumulating, over rows split across the pool (rp_bwd_cpu.cross_entropy). */
rp_status rp_cpu_cross_entropy_backward(rp_bwd *b, float *dlogits, const float *logits, const int32_t *target,
                                            const float *dloss, const uint8_t *mask, int64_t rows, int64_t n) {
    ce_job j = { .d = dlogits, .logits = logits, .dloss = dloss, .target = target, .mask = mask, .rows = rows, .n = n,
                 .accumulate = 1 };
    rp_bwd_run(b, ce_grad_task, &j, row_tasks(b, rows));
    if (j.bad) return rp_fail(RP_ERR_RANGE, "cross_entropy backward: a target outside [0, %lld)", (long long)n);
    return RP_OK;
}
