/* adamw.c: AdamW, learning-rate schedules and global-norm clipping (see adamw.h). The update is one fused
 * pass over p, g, m, v (optionally zeroing g in it) cut into fixed 64K-parameter tasks over the pool, in
 * vectors of 16 lanes with AVX-512 or 8 with AVX2 (simd.h's rp_vf: the same operations as the scalar loop,
 * which handles the tail; results agree up to rounding and do not depend on the thread count); it is
 * memory-bound (16 bytes read and 12 written per parameter, 16 with the zeroing) once vectorized. The
 * gradient norm's Σ g² is summed in fixed chunks. */
#include "nn/adamw.h"
#include <math.h>
#include <string.h>
#include "tensor/simd.h"

/* Validates AdamW's hyper-parameters. */
rp_status rp_adamw_check(const rp_adamw *o) {
    if (!(o->beta1 >= 0 && o->beta1 < 1)) return rp_fail(RP_ERR_INVAL, "adamw: beta1 = %g outside [0, 1)", o->beta1);
    if (!(o->beta2 >= 0 && o->beta2 < 1)) return rp_fail(RP_ERR_INVAL, "adamw: beta2 = %g outside [0, 1)", o->beta2);
    if (!(o->eps > 0)) return rp_fail(RP_ERR_INVAL, "adamw: eps = %g must be > 0", o->eps);
    if (!(o->weight_decay >= 0)) return rp_fail(RP_ERR_INVAL, "adamw: weight_decay = %g must be >= 0", o->weight_decay);
    return RP_OK;
}

typedef struct adamw_job {
    float *p, *m, *v;
    float *g;       /* written (zeroed) only when zero_g */
    int64_t n;
    float b1, b2, eps, lr, wd, gs, c1, c2;
    int zero_g;
} adamw_job;

#define ADAMW_TASK 65536   /* parameters per task: many tasks per thread, so a late-waking worker costs little */

static void adamw_task(void *ctx, int ith, int nth, int thread) {
    adamw_job *j = ctx;
    (void)thread; (void)nth;
    int64_t a = (int64_t)ith * ADAMW_TASK, z = a + ADAMW_TASK < j->n ? a + ADAMW_TASK : j->n;
    float *restrict p = j->p, *restrict m = j->m, *restrict v = j->v, *restrict g = j->g;
    const int zero_g = j->zero_g;
    const float b1 = j->b1, b2 = j->b2, eps = j->eps, lr = j->lr, wd = j->wd, gs = j->gs, c1 = j->c1, c2 = j->c2;
    int64_t i = a;
#if defined(RP_VL)
    for (; i + RP_VL <= z; i += RP_VL) {   /* the same arithmetic as the scalar loop below, a vector at a time */
        rp_vf *pv = (rp_vf *)(p + i), *mv = (rp_vf *)(m + i), *vv = (rp_vf *)(v + i), *gv = (rp_vf *)(g + i);
        const rp_vf gi = *gv * gs, pi = *pv;
        const rp_vf mi = b1 * *mv + (1.0f - b1) * gi;
        const rp_vf vi = b2 * *vv + (1.0f - b2) * gi * gi;
        *mv = mi;
        *vv = vi;
        *pv = pi - lr * (mi * c1 / (rp_vf_sqrt(vi * c2) + eps) + wd * pi);
        if (zero_g) *gv = (rp_vf){ 0 };
    }
#endif
    for (; i < z; i++) {
        float gi = g[i] * gs;
        float mi = b1 * m[i] + (1.0f - b1) * gi;
        float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] -= lr * (mi * c1 / (sqrtf(vi * c2) + eps) + wd * p[i]);
        if (zero_g) g[i] = 0.0f;
    }
}

static rp_status adamw_run(const rp_adamw *o, rp_pool *pool, float *p, float *g, float *m, float *v, int64_t n,
                           int64_t t, float lr, float grad_scale, int decay, int zero_g) {
    if (t < 1) return rp_fail(RP_ERR_INVAL, "adamw: step %lld must be >= 1", (long long)t);
    if (!isfinite(grad_scale)) return rp_fail(RP_ERR_INVAL, "adamw: gradient scale %g is not finite", grad_scale);
    adamw_job j = { .p = p, .m = m, .v = v, .g = g, .n = n, .b1 = o->beta1, .b2 = o->beta2, .eps = o->eps, .lr = lr,
                    .wd = decay ? o->weight_decay : 0.0f, .gs = grad_scale,
                    .c1 = (float)(1.0 / (1.0 - pow(o->beta1, (double)t))), .c2 = (float)(1.0 / (1.0 - pow(o->beta2, (double)t))),
                    .zero_g = zero_g };
    int64_t tasks = (n + ADAMW_TASK - 1) / ADAMW_TASK;
    if (pool && tasks > 1 && rp_pool_size(pool) > 1) rp_pool_run(pool, adamw_task, &j, (int)tasks);
    else
        for (int64_t i = 0; i < tasks; i++) adamw_task(&j, (int)i, (int)tasks, 0);
    return RP_OK;
}

/* One fused AdamW step over n parameters. */
rp_status rp_adamw_update(const rp_adamw *o, rp_pool *pool, float *p, const float *g, float *m, float *v, int64_t n,
                          int64_t t, float lr, float grad_scale, int decay) {
    return adamw_run(o, pool, p, (float *)g, m, v, n, t, lr, grad_scale, decay, 0);   /* g is only read when zero_g = 0 */
}

/* The same step, zeroing g in the same pass (one pass over memory instead of an update and a memset). */
rp_status rp_adamw_update_zero(const rp_adamw *o, rp_pool *pool, float *p, float *g, float *m, float *v, int64_t n,
                               int64_t t, float lr, float grad_scale, int decay) {
    return adamw_run(o, pool, p, g, m, v, n, t, lr, grad_scale, decay, 1);
}

/* Validates a learning-rate schedule. */
rp_status rp_lr_check(const rp_lr_schedule *s) {
    if (!(s->lr > 0) || !isfinite(s->lr)) return rp_fail(RP_ERR_INVAL, "schedule: lr = %g must be a finite value > 0", s->lr);
    if (!(s->lr_min >= 0 && s->lr_min <= s->lr)) return rp_fail(RP_ERR_INVAL, "schedule: lr_min = %g outside [0, lr = %g]", s->lr_min, s->lr);
    if (s->total < 1) return rp_fail(RP_ERR_INVAL, "schedule: total = %lld steps must be >= 1", (long long)s->total);
    if (s->warmup < 0 || s->warmup > s->total)
        return rp_fail(RP_ERR_INVAL, "schedule: warmup = %lld outside [0, total = %lld]", (long long)s->warmup, (long long)s->total);
    if (s->kind != RP_LR_CONSTANT && s->kind != RP_LR_LINEAR && s->kind != RP_LR_COSINE)
        return rp_fail(RP_ERR_INVAL, "schedule: kind %d unknown", (int)s->kind);
    return RP_OK;
}

/* Learning rate at a 0-based step. */
float rp_lr_at(const rp_lr_schedule *s, int64_t step) {
    if (step < s->warmup) return s->lr * (float)(step + 1) / (float)s->warmup;
    if (s->kind == RP_LR_CONSTANT) return s->lr;
    int64_t span = s->total - s->warmup;
    if (span <= 0 || step >= s->total) return s->lr_min;
    double frac = (double)(step - s->warmup) / (double)span;
    double k = s->kind == RP_LR_LINEAR ? 1.0 - frac : 0.5 * (1.0 + cos(M_PI * frac));
    return (float)(s->lr_min + (s->lr - s->lr_min) * k);
}

/* Parse a schedule kind name. */
rp_status rp_lr_kind_parse(const char *name, rp_lr_kind *out) {
    static const char *names[] = { "constant", "linear", "cosine" };
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, names[i])) { *out = (rp_lr_kind)i; return RP_OK; }
    return rp_fail(RP_ERR_INVAL, "schedule: kind '%s' unknown (constant, linear, cosine)", name);
}

/* Σ g² in double. */
double rp_grad_sumsq(const float *g, int64_t n) {
    double s = 0;
    int64_t i = 0;
#if defined(__AVX512F__)
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (; i + 16 <= n; i += 16) {
        __m512d lo = _mm512_cvtps_pd(_mm256_loadu_ps(g + i)), hi = _mm512_cvtps_pd(_mm256_loadu_ps(g + i + 8));
        s0 = _mm512_fmadd_pd(lo, lo, s0);
        s1 = _mm512_fmadd_pd(hi, hi, s1);
    }
    s = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
#endif
    for (; i < n; i++) s += (double)g[i] * g[i];
    return s;
}

typedef struct sumsq_job { const float *g; int64_t n; double *part; } sumsq_job;

#define SUMSQ_CHUNK 262144   /* values per partial sum: fixed, so the total does not depend on the thread count */

static void sumsq_task(void *ctx, int ith, int nth, int thread) {
    sumsq_job *j = ctx;
    (void)nth; (void)thread;
    int64_t a = (int64_t)ith * SUMSQ_CHUNK, z = a + SUMSQ_CHUNK < j->n ? a + SUMSQ_CHUNK : j->n;
    j->part[ith] = rp_grad_sumsq(j->g + a, z - a);
}

/* Σ g² in fixed chunks over the pool, partial sums added in chunk order. */
double rp_grad_sumsq_pool(rp_pool *pool, const float *g, int64_t n) {
    enum { MAXP = 64 };
    double part[MAXP], s = 0;
    for (int64_t b = 0; b < n; b += (int64_t)MAXP * SUMSQ_CHUNK) {   /* blocks of MAXP chunks, so no allocation */
        int64_t nb = n - b < (int64_t)MAXP * SUMSQ_CHUNK ? n - b : (int64_t)MAXP * SUMSQ_CHUNK;
        sumsq_job j = { g + b, nb, part };
        int tasks = (int)((nb + SUMSQ_CHUNK - 1) / SUMSQ_CHUNK);
        if (pool && tasks > 1 && rp_pool_size(pool) > 1) rp_pool_run(pool, sumsq_task, &j, tasks);
        else
            for (int i = 0; i < tasks; i++) sumsq_task(&j, i, tasks, 0);
        for (int i = 0; i < tasks; i++) s += part[i];
    }
    return s;
}

/* Clipping factor for a global norm. */
float rp_grad_clip_scale(double norm, float max_norm) {
    if (max_norm <= 0 || !(norm > max_norm)) return 1.0f;
    return (float)(max_norm / (norm + 1e-6));
}
