/* test_adamw.c: AdamW against its definition restated in double (the first step in closed form:
 * p − lr·(sign(g)·|g|/(|g|+ε) + λp)), a quadratic whose minimizer is known, learning-rate schedules at
 * hand-computed points, global-norm clipping on a 3-4-5 gradient, gradient accumulation, the threaded
 * update against the single-threaded one, and bad hyper-parameters named in the error. */
#include <string.h>
#include "check.h"
#include "nn/adamw.h"
#include "test_vectors.h"

static void test_steps(void) {
    rp_adamw o = { .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f };
    CHECK(rp_adamw_check(&o) == RP_OK);
    enum { N = 37 };
    float p[N], m[N] = { 0 }, v[N] = { 0 }, g[3][N];
    double P[N], M[N] = { 0 }, V[N] = { 0 };
    for (int i = 0; i < N; i++) { p[i] = frand(); P[i] = p[i]; for (int s = 0; s < 3; s++) g[s][i] = frand() * 2; }
    const float lr = 0.01f;
    /* step 1 in closed form: m̂ = g, v̂ = g² */
    CHECK(rp_adamw_update(&o, NULL, p, g[0], m, v, N, 1, lr, 1.0f, 1) == RP_OK);
    double worst = 0;
    for (int i = 0; i < N; i++) {
        double gi = g[0][i], want = P[i] - lr * (gi / (fabs(gi) + 1e-8) + 0.1 * P[i]);
        worst = fmax(worst, fabs(p[i] - want));
    }
    CHECK_MSG(worst < 1e-7, "first step vs closed form: %g", worst);
    /* steps 1..3 against the definition in double */
    for (int s = 0; s < 3; s++) {
        double c1 = 1 - pow(0.9, s + 1), c2 = 1 - pow(0.95, s + 1);
        for (int i = 0; i < N; i++) {
            M[i] = 0.9 * M[i] + 0.1 * g[s][i];
            V[i] = 0.95 * V[i] + 0.05 * (double)g[s][i] * g[s][i];
            P[i] -= lr * (M[i] / c1 / (sqrt(V[i] / c2) + 1e-8) + 0.1 * P[i]);
        }
        if (s) CHECK(rp_adamw_update(&o, NULL, p, g[s], m, v, N, s + 1, lr, 1.0f, 1) == RP_OK);
    }
    worst = 0;
    for (int i = 0; i < N; i++) worst = fmax(worst, fabs(p[i] - P[i]));
    CHECK_MSG(worst < 1e-6, "three steps vs definition: %g", worst);
    /* decay = 0 leaves the parameter alone when the gradient is zero and the moments are zero */
    float q = 3.0f, z = 0, mq = 0, vq = 0;
    CHECK(rp_adamw_update(&o, NULL, &q, &z, &mq, &vq, 1, 1, lr, 1.0f, 0) == RP_OK);
    CHECK(q == 3.0f);
    CHECK(rp_adamw_update(&o, NULL, &q, &z, &mq, &vq, 1, 1, lr, 1.0f, 1) == RP_OK);
    CHECK_NEAR(q, 3.0 * (1 - lr * 0.1), 1e-6);   /* decoupled decay alone: p·(1 − lr·λ) */
}

static void test_quadratic(void) {
    /* f(p) = ½ Σ a_i (p_i − c_i)²: AdamW without decay and a cosine schedule to 0 ends at c */
    rp_adamw o = { .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0 };
    rp_lr_schedule s = { .kind = RP_LR_COSINE, .lr = 0.05f, .lr_min = 0, .warmup = 20, .total = 2000 };
    enum { N = 8 };
    float p[N] = { 0 }, m[N] = { 0 }, v[N] = { 0 }, g[N], a[N], c[N];
    for (int i = 0; i < N; i++) { a[i] = 0.5f + (float)i; c[i] = frand() * 3; }
    for (int64_t t = 0; t < s.total; t++) {
        for (int i = 0; i < N; i++) g[i] = a[i] * (p[i] - c[i]);
        CHECK(rp_adamw_update(&o, NULL, p, g, m, v, N, t + 1, rp_lr_at(&s, t), 1.0f, 1) == RP_OK);
    }
    double worst = 0;
    for (int i = 0; i < N; i++) worst = fmax(worst, fabs(p[i] - c[i]));
    CHECK_MSG(worst < 1e-3, "quadratic minimizer: %g", worst);
}

static void test_schedules(void) {
    rp_lr_schedule s = { .kind = RP_LR_LINEAR, .lr = 1.0f, .lr_min = 0.1f, .warmup = 10, .total = 110 };
    CHECK(rp_lr_check(&s) == RP_OK);
    CHECK_NEAR(rp_lr_at(&s, 0), 0.1, 1e-7);
    CHECK_NEAR(rp_lr_at(&s, 9), 1.0, 1e-7);
    CHECK_NEAR(rp_lr_at(&s, 10), 1.0, 1e-7);
    CHECK_NEAR(rp_lr_at(&s, 60), 0.55, 1e-6);
    CHECK_NEAR(rp_lr_at(&s, 85), 0.325, 1e-6);
    CHECK_NEAR(rp_lr_at(&s, 110), 0.1, 1e-7);
    CHECK_NEAR(rp_lr_at(&s, 500), 0.1, 1e-7);
    s.kind = RP_LR_COSINE;
    CHECK_NEAR(rp_lr_at(&s, 60), 0.55, 1e-6);
    CHECK_NEAR(rp_lr_at(&s, 35), 0.1 + 0.45 * (1 + sqrt(0.5)), 1e-6);
    CHECK_NEAR(rp_lr_at(&s, 85), 0.1 + 0.45 * (1 - sqrt(0.5)), 1e-6);
    s.kind = RP_LR_CONSTANT;
    CHECK_NEAR(rp_lr_at(&s, 5), 0.6, 1e-7);
    CHECK_NEAR(rp_lr_at(&s, 1000), 1.0, 1e-7);
    rp_lr_kind k;
    CHECK(rp_lr_kind_parse("cosine", &k) == RP_OK && k == RP_LR_COSINE);
    CHECK(rp_lr_kind_parse("cosin", &k) == RP_ERR_INVAL && strstr(rp_errmsg(), "cosin") != NULL);
    s.warmup = 200;
    CHECK(rp_lr_check(&s) == RP_ERR_INVAL && strstr(rp_errmsg(), "warmup") != NULL);
    s.warmup = 0; s.lr_min = 2;
    CHECK(rp_lr_check(&s) == RP_ERR_INVAL && strstr(rp_errmsg(), "lr_min") != NULL);
}

static void test_clip_and_accumulate(void) {
    float g[2] = { 3, 4 };
    double norm = sqrt(rp_grad_sumsq(g, 2));
    CHECK_NEAR(norm, 5.0, 1e-12);
    CHECK_NEAR(rp_grad_clip_scale(norm, 1.0f), 0.2, 1e-6);
    CHECK(rp_grad_clip_scale(norm, 10.0f) == 1.0f);
    CHECK(rp_grad_clip_scale(norm, 0.0f) == 1.0f);
    /* two micro-batches accumulated and averaged by grad_scale = one step on their mean gradient */
    rp_adamw o = { .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f };
    enum { N = 64 };
    float a[N], b[N], acc[N] = { 0 }, mean[N], p1[N], p2[N], m1[N] = { 0 }, v1[N] = { 0 }, m2[N] = { 0 }, v2[N] = { 0 };
    for (int i = 0; i < N; i++) { a[i] = frand(); b[i] = frand(); p1[i] = p2[i] = frand(); }
    for (int i = 0; i < N; i++) acc[i] += a[i];
    for (int i = 0; i < N; i++) acc[i] += b[i];
    for (int i = 0; i < N; i++) mean[i] = (a[i] + b[i]) * 0.5f;
    for (int t = 1; t <= 3; t++) {
        CHECK(rp_adamw_update(&o, NULL, p1, acc, m1, v1, N, t, 1e-2f, 0.5f, 1) == RP_OK);
        CHECK(rp_adamw_update(&o, NULL, p2, mean, m2, v2, N, t, 1e-2f, 1.0f, 1) == RP_OK);
    }
    CHECK(memcmp(p1, p2, sizeof p1) == 0);
}

static void test_threads_and_errors(void) {
    rp_adamw o = { .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.1f };
    int64_t n = 300001;
    float *p[2], *m[2], *v[2], *g = randv(n, 1), *p0 = randv(n, 1);
    rp_pool *pool = NULL;
    CHECK(rp_pool_new(2, &pool) == RP_OK);
    for (int k = 0; k < 2; k++) {
        p[k] = malloc((size_t)n * sizeof(float)); memcpy(p[k], p0, (size_t)n * sizeof(float));
        m[k] = calloc((size_t)n, sizeof(float)); v[k] = calloc((size_t)n, sizeof(float));
        for (int t = 1; t <= 2; t++) CHECK(rp_adamw_update(&o, k ? pool : NULL, p[k], g, m[k], v[k], n, t, 1e-3f, 0.7f, 1) == RP_OK);
    }
    CHECK(memcmp(p[0], p[1], (size_t)n * sizeof(float)) == 0 && memcmp(v[0], v[1], (size_t)n * sizeof(float)) == 0);
    /* the zeroing update: the same p, m, v as the plain one (one more step each), and g left all zero */
    float *gz = malloc((size_t)n * sizeof(float));
    memcpy(gz, g, (size_t)n * sizeof(float));
    CHECK(rp_adamw_update(&o, NULL, p[0], g, m[0], v[0], n, 3, 1e-3f, 0.7f, 1) == RP_OK);
    CHECK(rp_adamw_update_zero(&o, pool, p[1], gz, m[1], v[1], n, 3, 1e-3f, 0.7f, 1) == RP_OK);
    CHECK(memcmp(p[0], p[1], (size_t)n * sizeof(float)) == 0 && memcmp(m[0], m[1], (size_t)n * sizeof(float)) == 0);
    int64_t nonzero = 0;
    for (int64_t i = 0; i < n; i++) nonzero += gz[i] != 0.0f;
    CHECK(nonzero == 0);
    /* Σ g² over the pool: the same double on 1 and 2 threads, and within rounding of a plain double sum */
    double plain = 0;
    for (int64_t i = 0; i < n; i++) plain += (double)g[i] * g[i];
    double s1 = rp_grad_sumsq_pool(NULL, g, n), s2 = rp_grad_sumsq_pool(pool, g, n);
    CHECK(s1 == s2);
    CHECK_NEAR(s2, plain, 1e-12 * plain);
    free(gz);
    for (int k = 0; k < 2; k++) { free(p[k]); free(m[k]); free(v[k]); }
    free(g); free(p0);
    rp_pool_free(pool);
    o.beta1 = 1.0f;
    CHECK(rp_adamw_check(&o) == RP_ERR_INVAL && strstr(rp_errmsg(), "beta1") != NULL);
    o.beta1 = 0.9f; o.eps = 0;
    CHECK(rp_adamw_check(&o) == RP_ERR_INVAL && strstr(rp_errmsg(), "eps") != NULL);
    float x = 0;
    CHECK(rp_adamw_update(&o, NULL, &x, &x, &x, &x, 1, 0, 1e-3f, 1.0f, 1) == RP_ERR_INVAL);
}

int main(void) {
    test_steps();
    test_quadratic();
    test_schedules();
    test_clip_and_accumulate();
    test_threads_and_errors();
    return checks_done("adamw");
}
