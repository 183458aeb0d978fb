/* test_backward.c: every backward kernel (tensor/backward.h) against central finite differences of the
 * engine's reference forward (ops_ref.c), with the tolerance written per op, and the fast cpu table against
 * the reference table at larger shapes on a 2-thread pool. The loss is L = Σ dy∘forward(inputs) for a fixed
 * random dy, so the analytic gradient of each input is what the backward returns for that dy. Finite
 * differences sample a fixed subset of coordinates of every input. A wrong sign, a missing term or a
 * wrong index fails these checks (errors of order 1 against tolerances of 1e-3..1e-2). */
#include <string.h>
#include "check.h"
#include "tensor/backward.h"
#include "tensor/ops_ref.h"
#include "tensor/quant.h"
#include "test_vectors.h"

typedef double (*loss_fn)(void *ctx);

static double dotd(const float *a, const float *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* Largest |numeric − analytic| over up to `samples` coordinates of param, relative to max |analytic| + floor. */
static double fd_err(loss_fn f, void *ctx, float *param, const float *grad, int64_t n, float h) {
    int64_t step = n > 40 ? n / 40 : 1;
    double worst = 0, scale = 1e-2;
    for (int64_t i = 0; i < n; i++) scale = fmax(scale, fabs(grad[i]));
    for (int64_t i = (int64_t)(rng % (uint64_t)step); i < n; i += step) {
        float keep = param[i];
        param[i] = keep + h; double lp = f(ctx);
        param[i] = keep - h; double lm = f(ctx);
        param[i] = keep;
        double num = (lp - lm) / (2.0 * h);
        worst = fmax(worst, fabs(num - grad[i]));
    }
    return worst / scale;
}

static float *zeros(int64_t n) { return calloc((size_t)n, sizeof(float)); }

/* ---- matmul (F32 weights: dx, dw, db; quantized weights: dx only) ---- */
typedef struct { int64_t M, K, N; float *x, *w, *b, *dy, *y; void *wq; rp_dtype wt; size_t ldw; } mm_c;
static double mm_loss(void *p) {
    mm_c *c = p;
    rp_ref_matmul(NULL, c->y, c->x, c->M, c->K, c->wt == RP_F32 ? (void *)c->w : c->wq, c->wt, c->ldw, c->N);
    double s = dotd(c->y, c->dy, c->M * c->N);
    for (int64_t m = 0; m < c->M; m++) s += dotd(c->b, c->dy + m * c->N, c->N);
    return s;
}

static void test_matmul(const rp_bwd_ops *ops, rp_bwd *bw, rp_dtype wt, double tol) {
    mm_c c = { .M = 5, .K = 64, .N = 7, .wt = wt };
    c.x = randv(c.M * c.K, 1); c.w = randv(c.N * c.K, 0.3f); c.b = randv(c.N, 1); c.dy = randv(c.M * c.N, 1);
    c.y = zeros(c.M * c.N);
    c.ldw = rp_dtype_row_bytes(wt, c.K);
    c.wq = malloc(c.ldw * (size_t)c.N);
    for (int64_t n = 0; n < c.N; n++) rp_quantize_row(wt, c.w + n * c.K, (char *)c.wq + n * c.ldw, c.K);
    float *dx = zeros(c.M * c.K), *dw = zeros(c.N * c.K), *db = zeros(c.N);
    const void *w = wt == RP_F32 ? (void *)c.w : c.wq;
    CHECK(ops->matmul(bw, dx, wt == RP_F32 ? dw : NULL, db, c.dy, c.x, c.M, c.K, w, wt, c.ldw, c.N) == RP_OK);
    double ex = fd_err(mm_loss, &c, c.x, dx, c.M * c.K, 1e-2f), eb = fd_err(mm_loss, &c, c.b, db, c.N, 1e-2f);
    CHECK_MSG(ex < tol && eb < tol, "%s matmul %s: dx %g db %g", ops->name, rp_dtype_name(wt), ex, eb);
    if (wt == RP_F32) {
        double ew = fd_err(mm_loss, &c, c.w, dw, c.N * c.K, 1e-2f);
        CHECK_MSG(ew < tol, "%s matmul dw %g", ops->name, ew);
    } else {
        CHECK(ops->matmul(bw, dx, dw, NULL, c.dy, c.x, c.M, c.K, w, wt, c.ldw, c.N) == RP_ERR_UNSUPPORTED);
        CHECK(strstr(rp_errmsg(), rp_dtype_name(wt)) != NULL);
    }
    free(c.x); free(c.w); free(c.b); free(c.dy); free(c.y); free(c.wq); free(dx); free(dw); free(db);
}

/* ---- embedding and gather (both scatter their gradient back to the rows they read) ---- */
typedef struct { int64_t V, C, T; float *table, *dy, *y; int32_t *ids; int gather; } emb_c;
static double emb_loss(void *p) {
    emb_c *c = p;
    if (c->gather) rp_ref_gather_rows(NULL, c->y, c->table, c->V, c->C, c->ids, c->T);
    else rp_ref_embed(NULL, c->y, c->table, RP_F32, (size_t)c->C * sizeof(float), c->V, c->C, c->ids, c->T);
    return dotd(c->y, c->dy, c->T * c->C);
}

static void test_embed(const rp_bwd_ops *ops, rp_bwd *bw, int gather) {
    emb_c c = { .V = 11, .C = 8, .T = 9, .gather = gather };
    int32_t ids[9] = { 3, 0, 3, 10, 5, 3, 7, 0, 1 };   /* repeats: gradients must add */
    c.ids = ids;
    c.table = randv(c.V * c.C, 1); c.dy = randv(c.T * c.C, 1); c.y = zeros(c.T * c.C);
    float *dt = zeros(c.V * c.C);
    rp_status st = gather ? ops->gather_rows(bw, dt, c.V, c.C, ids, c.T, c.dy) : ops->embed(bw, dt, c.V, c.C, ids, c.T, c.dy);
    CHECK(st == RP_OK);
    double e = fd_err(emb_loss, &c, c.table, dt, c.V * c.C, 1e-2f);
    CHECK_MSG(e < 1e-4, "%s %s: %g", ops->name, gather ? "gather" : "embed", e);
    ids[2] = 11;
    CHECK(ops->embed(bw, dt, c.V, c.C, ids, c.T, c.dy) == RP_ERR_RANGE);
    CHECK(strstr(rp_errmsg(), "11") != NULL);
    free(c.table); free(c.dy); free(c.y); free(dt);
}

/* ---- RMSNorm ---- */
typedef struct { int64_t T, C; float *x, *w, *dy, *y; } rms_c;
static double rms_loss(void *p) {
    rms_c *c = p;
    rp_ref_rmsnorm(NULL, c->y, c->x, c->w, c->T, c->C, 1e-5f);
    return dotd(c->y, c->dy, c->T * c->C);
}

static void test_rmsnorm(const rp_bwd_ops *ops, rp_bwd *bw) {
    rms_c c = { .T = 4, .C = 24 };
    c.x = randv(c.T * c.C, 2); c.w = randv(c.C, 1); c.dy = randv(c.T * c.C, 1); c.y = zeros(c.T * c.C);
    float *dx = zeros(c.T * c.C), *dw = zeros(c.C);
    CHECK(ops->rmsnorm(bw, dx, dw, c.dy, c.x, c.w, c.T, c.C, 1e-5f) == RP_OK);
    double ex = fd_err(rms_loss, &c, c.x, dx, c.T * c.C, 3e-3f), ew = fd_err(rms_loss, &c, c.w, dw, c.C, 3e-3f);
    CHECK_MSG(ex < 2e-3 && ew < 2e-3, "%s rmsnorm: dx %g dw %g", ops->name, ex, ew);
    free(c.x); free(c.w); free(c.dy); free(c.y); free(dx); free(dw);
}

/* ---- RoPE (in place; both pairings, partial rotary dimension) ---- */
typedef struct { int64_t T; int H, D, rd, neox; int32_t *pos; float *x, *dy, *y; } rope_c;
static double rope_loss(void *p) {
    rope_c *c = p;
    memcpy(c->y, c->x, (size_t)(c->T * c->H * c->D) * sizeof(float));
    rp_ref_rope(NULL, c->y, c->T, c->H, c->D, c->rd, c->pos, 10000.0f, c->neox);
    return dotd(c->y, c->dy, c->T * c->H * c->D);
}

static void test_rope(const rp_bwd_ops *ops, rp_bwd *bw, int neox) {
    int32_t pos[3] = { 0, 5, 17 };
    rope_c c = { .T = 3, .H = 2, .D = 8, .rd = 6, .neox = neox, .pos = pos };
    int64_t n = c.T * c.H * c.D;
    c.x = randv(n, 1); c.dy = randv(n, 1); c.y = zeros(n);
    float *dx = malloc((size_t)n * sizeof *dx);
    memcpy(dx, c.dy, (size_t)n * sizeof *dx);
    CHECK(ops->rope(bw, dx, c.T, c.H, c.D, c.rd, pos, 10000.0f, neox) == RP_OK);
    double e = fd_err(rope_loss, &c, c.x, dx, n, 1e-2f);
    CHECK_MSG(e < 1e-4, "%s rope neox=%d: %g", ops->name, neox, e);
    CHECK(ops->rope(bw, dx, c.T, c.H, c.D, 7, pos, 10000.0f, neox) == RP_ERR_INVAL);
    free(c.x); free(c.dy); free(c.y); free(dx);
}

/* ---- grouped-query causal attention (k, v rows with padding, a cached prefix pos0) ---- */
typedef struct { int64_t T, pos0, ld; int H, Hkv, D; float *q, *k, *v, *dy, *y; } att_c;
static double att_loss(void *p) {
    att_c *c = p;
    rp_ref_attention(NULL, c->y, c->q, c->k, c->v, c->T, c->pos0, c->H, c->Hkv, c->D, c->ld, 1.0f / sqrtf((float)c->D));
    return dotd(c->y, c->dy, c->T * c->H * c->D);
}

static void att_grads(const rp_bwd_ops *ops, rp_bwd *bw, att_c *c, float **dq, float **dk, float **dv) {
    int64_t nq = c->T * c->H * c->D, nkv = (c->pos0 + c->T) * c->ld;
    *dq = zeros(nq); *dk = zeros(nkv); *dv = zeros(nkv);
    CHECK(ops->attention(bw, *dq, *dk, *dv, c->dy, c->q, c->k, c->v, c->T, c->pos0, c->H, c->Hkv, c->D, c->ld,
                         1.0f / sqrtf((float)c->D)) == RP_OK);
}

static att_c att_new(int64_t T, int64_t pos0, int H, int Hkv, int D) {
    att_c c = { .T = T, .pos0 = pos0, .ld = (int64_t)Hkv * D + 3, .H = H, .Hkv = Hkv, .D = D };
    int64_t nq = T * H * D, nkv = (pos0 + T) * c.ld;
    c.q = randv(nq, 1); c.k = randv(nkv, 1); c.v = randv(nkv, 1); c.dy = randv(nq, 1); c.y = zeros(nq);
    return c;
}

static void att_free(att_c *c) { free(c->q); free(c->k); free(c->v); free(c->dy); free(c->y); }

static void test_attention(const rp_bwd_ops *ops, rp_bwd *bw) {
    att_c c = att_new(5, 2, 4, 2, 8);
    float *dq, *dk, *dv;
    att_grads(ops, bw, &c, &dq, &dk, &dv);
    int64_t nq = c.T * c.H * c.D, nkv = (c.pos0 + c.T) * c.ld;
    double eq = fd_err(att_loss, &c, c.q, dq, nq, 1e-2f), ek = fd_err(att_loss, &c, c.k, dk, nkv, 1e-2f),
           ev = fd_err(att_loss, &c, c.v, dv, nkv, 1e-2f);
    CHECK_MSG(eq < 1e-3 && ek < 1e-3 && ev < 1e-3, "%s attention: dq %g dk %g dv %g", ops->name, eq, ek, ev);
    float pad = 0;   /* the padding columns of k/v rows are never read, so get no gradient */
    for (int64_t j = 0; j < c.pos0 + c.T; j++) pad += fabsf(dk[j * c.ld + c.ld - 1]) + fabsf(dv[j * c.ld + c.ld - 1]);
    CHECK(pad == 0);
    free(dq); free(dk); free(dv); att_free(&c);
}

/* ---- SwiGLU ---- */
typedef struct { int64_t n; float *g, *u, *dy, *y; } swi_c;
static double swi_loss(void *p) {
    swi_c *c = p;
    rp_ref_swiglu(NULL, c->y, c->g, c->u, c->n);
    return dotd(c->y, c->dy, c->n);
}

static void test_swiglu(const rp_bwd_ops *ops, rp_bwd *bw) {
    swi_c c = { .n = 50 };
    c.g = randv(c.n, 4); c.u = randv(c.n, 2); c.dy = randv(c.n, 1); c.y = zeros(c.n);
    float *dg = zeros(c.n), *du = zeros(c.n);
    CHECK(ops->swiglu(bw, dg, du, c.dy, c.g, c.u, c.n) == RP_OK);
    double eg = fd_err(swi_loss, &c, c.g, dg, c.n, 1e-2f), eu = fd_err(swi_loss, &c, c.u, du, c.n, 1e-2f);
    CHECK_MSG(eg < 1e-4 && eu < 1e-4, "%s swiglu: dgate %g dup %g", ops->name, eg, eu);
    free(c.g); free(c.u); free(c.dy); free(c.y); free(dg); free(du);
}

/* ---- softmax and log-softmax ---- */
typedef struct { int64_t rows, n; int log; float *x, *dy, *y; } sm_c;
static double sm_loss(void *p) {
    sm_c *c = p;
    if (c->log) rp_ref_log_softmax(NULL, c->y, c->x, c->rows, c->n);
    else { memcpy(c->y, c->x, (size_t)(c->rows * c->n) * sizeof(float)); rp_ref_softmax(NULL, c->y, c->rows, c->n); }
    return dotd(c->y, c->dy, c->rows * c->n);
}

static void test_softmax(const rp_bwd_ops *ops, rp_bwd *bw, int log) {
    sm_c c = { .rows = 3, .n = 17, .log = log };
    int64_t n = c.rows * c.n;
    c.x = randv(n, 3); c.dy = randv(n, 1); c.y = zeros(n);
    sm_loss(&c);
    float *y = malloc((size_t)n * sizeof *y), *dx = zeros(n);
    memcpy(y, c.y, (size_t)n * sizeof *y);
    CHECK((log ? ops->log_softmax : ops->softmax)(bw, dx, c.dy, y, c.rows, c.n) == RP_OK);
    double e = fd_err(sm_loss, &c, c.x, dx, n, 1e-2f);
    CHECK_MSG(e < 1e-3, "%s %s: %g", ops->name, log ? "log_softmax" : "softmax", e);
    free(c.x); free(c.dy); free(c.y); free(y); free(dx);
}

/* ---- cross-entropy with per-row weights and a mask ---- */
typedef struct { int64_t rows, n; float *x, *dl, *loss; int32_t *tg; uint8_t *mask; } ce_c;
static double ce_loss(void *p) {
    ce_c *c = p;
    rp_ref_cross_entropy(NULL, c->loss, c->x, c->tg, c->rows, c->n);
    double s = 0;
    for (int64_t r = 0; r < c->rows; r++) if (c->mask[r]) s += (double)c->dl[r] * c->loss[r];
    return s;
}

static void test_cross_entropy(const rp_bwd_ops *ops, rp_bwd *bw) {
    int32_t tg[4] = { 2, 0, 12, 7 };
    uint8_t mask[4] = { 1, 0, 1, 1 };
    ce_c c = { .rows = 4, .n = 13, .tg = tg, .mask = mask };
    c.x = randv(c.rows * c.n, 3); c.dl = randv(c.rows, 1); c.loss = zeros(c.rows);
    float *dx = zeros(c.rows * c.n);
    CHECK(ops->cross_entropy(bw, dx, c.x, tg, c.dl, mask, c.rows, c.n) == RP_OK);
    double e = fd_err(ce_loss, &c, c.x, dx, c.rows * c.n, 1e-2f);
    CHECK_MSG(e < 1e-3, "%s cross_entropy: %g", ops->name, e);
    float masked = 0;
    for (int64_t i = 0; i < c.n; i++) masked += fabsf(dx[c.n + i]);
    CHECK(masked == 0);
    tg[3] = 13;
    CHECK(ops->cross_entropy(bw, dx, c.x, tg, NULL, NULL, c.rows, c.n) == RP_ERR_RANGE);
    free(c.x); free(c.dl); free(c.loss); free(dx);
}

/* ---- weighted scatter-add ---- */
typedef struct { int64_t rows, C, n; float *x, *w, *dy, *y; int32_t *idx; } sc_c;
static double sc_loss(void *p) {
    sc_c *c = p;
    memset(c->y, 0, (size_t)(c->rows * c->C) * sizeof(float));
    rp_ref_scatter_add_rows(NULL, c->y, c->rows, c->x, c->C, c->idx, c->w, c->n);
    return dotd(c->y, c->dy, c->rows * c->C);
}

static void test_scatter(const rp_bwd_ops *ops, rp_bwd *bw) {
    int32_t idx[6] = { 1, 3, 1, 0, 4, 1 };
    sc_c c = { .rows = 5, .C = 7, .n = 6, .idx = idx };
    c.x = randv(c.n * c.C, 1); c.w = randv(c.n, 1); c.dy = randv(c.rows * c.C, 1); c.y = zeros(c.rows * c.C);
    float *dx = zeros(c.n * c.C), *dw = zeros(c.n);
    CHECK(ops->scatter_add_rows(bw, dx, dw, c.dy, c.rows, c.x, c.C, idx, c.w, c.n) == RP_OK);
    double ex = fd_err(sc_loss, &c, c.x, dx, c.n * c.C, 1e-2f), ew = fd_err(sc_loss, &c, c.w, dw, c.n, 1e-2f);
    CHECK_MSG(ex < 1e-4 && ew < 1e-4, "%s scatter_add_rows: dx %g dweight %g", ops->name, ex, ew);
    free(c.x); free(c.w); free(c.dy); free(c.y); free(dx); free(dw);
}

/* ---- causal depthwise conv1d and the selective scan (zero initial state) ---- */
typedef struct { int64_t T, C; int K; float *x, *w, *b, *dy, *y; } cv_c;
static double cv_loss(void *p) {
    cv_c *c = p;
    rp_ref_conv1d_causal(NULL, c->y, c->x, c->T, c->C, c->w, c->b, c->K, NULL);
    return dotd(c->y, c->dy, c->T * c->C);
}

static void test_conv1d(const rp_bwd_ops *ops, rp_bwd *bw) {
    cv_c c = { .T = 11, .C = 7, .K = 4 };
    c.x = randv(c.T * c.C, 1); c.w = randv(c.C * c.K, 1); c.b = randv(c.C, 1); c.dy = randv(c.T * c.C, 1); c.y = zeros(c.T * c.C);
    float *dx = zeros(c.T * c.C), *dw = zeros(c.C * c.K), *db = zeros(c.C);
    CHECK(ops->conv1d_causal(bw, dx, dw, db, c.dy, c.x, c.T, c.C, c.w, c.K) == RP_OK);
    double ex = fd_err(cv_loss, &c, c.x, dx, c.T * c.C, 1e-2f), ew = fd_err(cv_loss, &c, c.w, dw, c.C * c.K, 1e-2f),
           eb = fd_err(cv_loss, &c, c.b, db, c.C, 1e-2f);
    CHECK_MSG(ex < 1e-4 && ew < 1e-4 && eb < 1e-4, "%s conv1d_causal: dx %g dw %g db %g", ops->name, ex, ew, eb);
    CHECK(ops->conv1d_causal(bw, dx, dw, db, c.dy, c.x, c.T, c.C, c.w, 0) == RP_ERR_INVAL);
    free(c.x); free(c.w); free(c.b); free(c.dy); free(c.y); free(dx); free(dw); free(db);
}

typedef struct { int64_t T, D, N; float *u, *dt, *A, *B, *Cm, *Dp, *dy, *y, *h; } ss_c;
static double ss_loss(void *p) {
    ss_c *c = p;
    memset(c->h, 0, (size_t)(c->D * c->N) * sizeof(float));
    rp_ref_selective_scan(NULL, c->y, c->u, c->dt, c->A, c->B, c->Cm, c->Dp, c->T, c->D, c->N, c->h, NULL);
    return dotd(c->y, c->dy, c->T * c->D);
}

/* Inputs as the mixer makes them: dt after softplus (positive), A = -exp(A_log) (negative). */
static ss_c ss_new(int64_t T, int64_t D, int64_t N) {
    ss_c c = { .T = T, .D = D, .N = N };
    c.u = randv(T * D, 1); c.dt = randv(T * D, 1); c.A = randv(D * N, 1); c.B = randv(T * N, 1); c.Cm = randv(T * N, 1);
    c.Dp = randv(D, 1); c.dy = randv(T * D, 1); c.y = zeros(T * D); c.h = zeros(D * N);
    for (int64_t i = 0; i < T * D; i++) c.dt[i] = 0.05f + 0.5f * fabsf(c.dt[i]);
    for (int64_t i = 0; i < D * N; i++) c.A[i] = -(0.2f + 2 * fabsf(c.A[i]));
    return c;
}
static void ss_free(ss_c *c) { free(c->u); free(c->dt); free(c->A); free(c->B); free(c->Cm); free(c->Dp); free(c->dy); free(c->y); free(c->h); }

static void test_selective_scan(const rp_bwd_ops *ops, rp_bwd *bw, int64_t N) {
    ss_c c = ss_new(9, 19, N);
    float *g[6] = { zeros(c.T * c.D), zeros(c.T * c.D), zeros(c.D * N), zeros(c.T * N), zeros(c.T * N), zeros(c.D) };
    CHECK(ops->selective_scan(bw, g[0], g[1], g[2], g[3], g[4], g[5], c.dy, c.u, c.dt, c.A, c.B, c.Cm, c.Dp, c.T, c.D, N, NULL) == RP_OK);
    float *in[6] = { c.u, c.dt, c.A, c.B, c.Cm, c.Dp };
    int64_t n[6] = { c.T * c.D, c.T * c.D, c.D * N, c.T * N, c.T * N, c.D };
    double e[6];
    for (int i = 0; i < 6; i++) e[i] = fd_err(ss_loss, &c, in[i], g[i], n[i], 1e-3f);
    CHECK_MSG(e[0] < 1e-3 && e[1] < 1e-3 && e[2] < 1e-3 && e[3] < 1e-3 && e[4] < 1e-3 && e[5] < 1e-3,
              "%s selective_scan N=%lld: du %g ddt %g dA %g dB %g dC %g dDp %g", ops->name, (long long)N, e[0], e[1], e[2], e[3], e[4], e[5]);
    for (int i = 0; i < 6; i++) free(g[i]);
    ss_free(&c);
}

/* The sequence ops' cpu backward against the reference: past one scan chunk (16 steps) and one task's
 * channels, onto the same nonzero gradients (accumulation), one gradient not wanted (NULL); for N = 16 also
 * with a few steps at dt 1e20, whose |dt·A·log2 e| past 2^22 is the vector exp's far range (ssm_exp.h), and
 * at 2100 channels (several rounds of channel groups on the pool's threads). */
static void test_seq_cpu_vs_ref(rp_bwd *bw) {
    for (int cs = 0; cs < 4; cs++) {
        const int64_t N = cs ? 16 : 5;
        const int far = cs == 2;
        ss_c c = cs == 3 ? ss_new(20, 2100, N) : ss_new(70, 75, N);
        if (far) c.dt[3 * 75 + 7] = c.dt[40 * 75 + 7] = c.dt[41 * 75 + 70] = 1e20f;
        int64_t n[6] = { c.T * c.D, c.T * c.D, c.D * N, c.T * N, c.T * N, c.D };
        float *g[2][6];
        for (int i = 0; i < 6; i++) {
            g[0][i] = randv(n[i], 1);
            g[1][i] = malloc((size_t)n[i] * sizeof(float));
            memcpy(g[1][i], g[0][i], (size_t)n[i] * sizeof(float));
        }
        for (int k = 0; k < 2; k++) {
            const rp_bwd_ops *ops = k ? &rp_bwd_cpu : &rp_bwd_ref;
            CHECK(ops->selective_scan(bw, g[k][0], g[k][1], g[k][2], NULL, g[k][4], g[k][5], c.dy, c.u, c.dt, c.A, c.B,
                                      c.Cm, c.Dp, c.T, c.D, N, NULL) == RP_OK);
        }
        double e = 0;
        for (int i = 0; i < 6; i++) e = fmax(e, rel_err(g[1][i], g[0][i], n[i]));
        CHECK_MSG(e < 1e-4, "cpu selective_scan backward N=%lld D=%lld%s vs ref: %g", (long long)N, (long long)c.D, far ? " (dt 1e20)" : "", e);
        for (int k = 0; k < 2; k++) for (int i = 0; i < 6; i++) free(g[k][i]);
        ss_free(&c);
    }
    int64_t T = 40, C = 300;
    int K = 4;
    float *x = randv(T * C, 1), *w = randv(C * K, 1), *dy = randv(T * C, 1), *g[2][3];
    for (int k = 0; k < 2; k++) {
        g[k][0] = zeros(T * C); g[k][1] = zeros(C * K); g[k][2] = zeros(C);
        g[k][0][5] = g[k][1][3] = g[k][2][1] = 0.5f;
        CHECK((k ? &rp_bwd_cpu : &rp_bwd_ref)->conv1d_causal(bw, g[k][0], g[k][1], g[k][2], dy, x, T, C, w, K) == RP_OK);
    }
    double e = fmax(rel_err(g[1][0], g[0][0], T * C), fmax(rel_err(g[1][1], g[0][1], C * K), rel_err(g[1][2], g[0][2], C)));
    CHECK_MSG(e < 1e-5, "cpu conv1d_causal backward vs ref: %g", e);
    for (int k = 0; k < 2; k++) for (int i = 0; i < 3; i++) free(g[k][i]);
    free(x); free(w); free(dy);
}

/* The cpu table against the reference at shapes where it takes its sgemm / threaded paths. */
static void test_cpu_vs_ref(rp_bwd *bw) {
    const rp_dtype types[4] = { RP_F32, RP_Q4_0, RP_Q4_1, RP_Q8_0 };
    for (int t = 0; t < 4; t++) {
        int64_t M = 33, K = 256, N = 150;
        size_t ldw = rp_dtype_row_bytes(types[t], K);
        float *x = randv(M * K, 1), *w = randv(N * K, 0.2f), *dy = randv(M * N, 1);
        char *wq = malloc(ldw * (size_t)N);
        for (int64_t n = 0; n < N; n++) rp_quantize_row(types[t], w + n * K, wq + n * ldw, K);
        float *dx[2], *dw[2], *db[2];
        dx[0] = randv(M * K, 1); dx[1] = malloc((size_t)(M * K) * sizeof(float));
        memcpy(dx[1], dx[0], (size_t)(M * K) * sizeof(float));   /* accumulation onto the same start */
        for (int k = 0; k < 2; k++) {
            dw[k] = zeros(N * K); db[k] = zeros(N);
            const rp_bwd_ops *ops = k ? &rp_bwd_cpu : &rp_bwd_ref;
            CHECK(ops->matmul(bw, dx[k], types[t] == RP_F32 ? dw[k] : NULL, db[k], dy, x, M, K, wq, types[t], ldw, N) == RP_OK);
        }
        double e = fmax(rel_err(dx[1], dx[0], M * K), fmax(rel_err(dw[1], dw[0], N * K), rel_err(db[1], db[0], N)));
        CHECK_MSG(e < 1e-5, "cpu matmul backward %s vs ref: %g", rp_dtype_name(types[t]), e);
        float *y = zeros(M * N), *yr = zeros(M * N);   /* the training forward against the engine's reference */
        CHECK(rp_cpu_matmul_forward(bw, y, x, M, K, wq, types[t], ldw, N) == RP_OK);
        CHECK(rp_ref_matmul(NULL, yr, x, M, K, wq, types[t], ldw, N) == RP_OK);
        CHECK_MSG(rel_err(y, yr, M * N) < 1e-5, "cpu matmul forward %s vs ref: %g", rp_dtype_name(types[t]), rel_err(y, yr, M * N));
        free(y); free(yr);
        for (int k = 0; k < 2; k++) { free(dx[k]); free(dw[k]); free(db[k]); }
        free(x); free(w); free(dy); free(wq);
    }
    /* one block of query rows, several with a partial last one (the kernel's causal blocks are 64 rows), and
     * enough rows that each head's rows are two tasks (ATT_SPLIT_T) */
    const int64_t shapes[3][2] = { { 37, 4 }, { 150, 5 }, { 300, 3 } };
    for (int s = 0; s < 3; s++) {
        att_c c = att_new(shapes[s][0], shapes[s][1], 6, 2, 16);
        float *g[2][3];
        att_grads(&rp_bwd_ref, bw, &c, &g[0][0], &g[0][1], &g[0][2]);
        att_grads(&rp_bwd_cpu, bw, &c, &g[1][0], &g[1][1], &g[1][2]);
        int64_t nq = c.T * c.H * c.D, nkv = (c.pos0 + c.T) * c.ld;
        double e = fmax(rel_err(g[1][0], g[0][0], nq), fmax(rel_err(g[1][1], g[0][1], nkv), rel_err(g[1][2], g[0][2], nkv)));
        CHECK_MSG(e < 1e-5, "cpu attention backward vs ref, T %lld: %g", (long long)c.T, e);
        float *o = zeros(nq);
        CHECK(rp_cpu_attention_forward(bw, o, c.q, c.k, c.v, c.T, c.pos0, c.H, c.Hkv, c.D, c.ld, 1.0f / sqrtf((float)c.D)) == RP_OK);
        rp_ref_attention(NULL, c.y, c.q, c.k, c.v, c.T, c.pos0, c.H, c.Hkv, c.D, c.ld, 1.0f / sqrtf((float)c.D));
        CHECK_MSG(rel_err(o, c.y, nq) < 1e-5, "cpu attention forward vs ref, T %lld: %g", (long long)c.T, rel_err(o, c.y, nq));
        free(o);
        for (int k = 0; k < 2; k++) for (int i = 0; i < 3; i++) free(g[k][i]);
        att_free(&c);
    }
}

/* Several sequences in one pool run (rp_cpu_attention_*_seqs, what the trainer calls) give exactly what one call
 * per sequence gives: every (sequence, head) is one task with the single-sequence code and the same reduction order. */
static void test_attention_seqs(rp_bwd *bw) {
    enum { S = 3 };
    const int64_t T = 70, pos0 = 5, nk = pos0 + T;
    const int H = 6, Hkv = 2, D = 16;
    const int64_t ld = (int64_t)Hkv * D + 3, nq = T * H * D, nkv = nk * ld;
    const float scale = 1.0f / sqrtf((float)D);
    float *q = randv(S * nq, 1), *k = randv(S * nkv, 1), *v = randv(S * nkv, 1), *dy = randv(S * nq, 1);
    float *o[2] = { zeros(S * nq), zeros(S * nq) }, *dq[2] = { zeros(S * nq), zeros(S * nq) };
    float *dk[2] = { zeros(S * nkv), zeros(S * nkv) }, *dv[2] = { zeros(S * nkv), zeros(S * nkv) };
    CHECK(rp_cpu_attention_forward_seqs(bw, S, o[0], q, k, v, T, pos0, H, Hkv, D, ld, scale) == RP_OK);
    CHECK(rp_cpu_attention_backward_seqs(bw, S, dq[0], dk[0], dv[0], dy, q, k, v, T, pos0, H, Hkv, D, ld, scale) == RP_OK);
    for (int s = 0; s < S; s++) {
        CHECK(rp_cpu_attention_forward(bw, o[1] + s * nq, q + s * nq, k + s * nkv, v + s * nkv, T, pos0, H, Hkv, D, ld, scale) == RP_OK);
        CHECK(rp_bwd_cpu.attention(bw, dq[1] + s * nq, dk[1] + s * nkv, dv[1] + s * nkv, dy + s * nq, q + s * nq, k + s * nkv,
                                   v + s * nkv, T, pos0, H, Hkv, D, ld, scale) == RP_OK);
    }
    CHECK_MSG(!memcmp(o[0], o[1], (size_t)(S * nq) * sizeof(float)), "attention forward: %d sequences at once differ from one by one", S);
    CHECK_MSG(!memcmp(dq[0], dq[1], (size_t)(S * nq) * sizeof(float)) && !memcmp(dk[0], dk[1], (size_t)(S * nkv) * sizeof(float)) &&
              !memcmp(dv[0], dv[1], (size_t)(S * nkv) * sizeof(float)), "attention backward: %d sequences at once differ from one by one", S);
    double e = 0;
    for (int64_t i = 0; i < S * nq; i++) e = fmax(e, fabs(o[0][i]));
    CHECK_MSG(e > 0, "attention forward over sequences wrote nothing");
    free(q); free(k); free(v); free(dy);
    for (int i = 0; i < 2; i++) { free(o[i]); free(dq[i]); free(dk[i]); free(dv[i]); }
}

/* The threaded row kernels (rows_cpu.c) against the reference at sizes with vector tails (C = 37, n = 1000). */
static void test_rows_vs_ref(rp_bwd *bw) {
    int64_t T = 23, C = 37, n = T * C;
    float *x = randv(n, 1), *w = randv(C, 1), *dy = randv(n, 1), *o[2], *dx[2], *dw[2];
    o[0] = zeros(1000); o[1] = zeros(1000);   /* also the swiglu outputs below */
    rp_ref_rmsnorm(NULL, o[0], x, w, T, C, 1e-5f);
    CHECK(rp_cpu_rmsnorm_forward(bw, o[1], x, w, T, C, 1e-5f) == RP_OK);
    CHECK_MSG(rel_err(o[1], o[0], n) < 1e-5, "cpu rmsnorm forward vs ref: %g", rel_err(o[1], o[0], n));
    for (int k = 0; k < 2; k++) { dx[k] = zeros(n); dw[k] = zeros(C); dw[k][3] = 1.0f; }
    CHECK(rp_ref_rmsnorm_backward(bw, dx[0], dw[0], dy, x, w, T, C, 1e-5f) == RP_OK);
    CHECK(rp_cpu_rmsnorm_backward(bw, dx[1], dw[1], dy, x, w, T, C, 1e-5f) == RP_OK);
    double e = fmax(rel_err(dx[1], dx[0], n), rel_err(dw[1], dw[0], C));
    CHECK_MSG(e < 1e-5, "cpu rmsnorm backward vs ref: %g", e);
    /* swiglu over 1000 values: 62 vectors and a tail of 8 */
    int64_t m = 1000;
    float *g = randv(m, 3), *u = randv(m, 1), *d = randv(m, 1), *a[2], *b[2];
    CHECK(rp_ref_swiglu(NULL, o[0], g, u, m) == RP_OK);
    CHECK(rp_cpu_swiglu_forward(bw, o[1], g, u, m) == RP_OK);
    CHECK_MSG(rel_err(o[1], o[0], m) < 1e-5, "cpu swiglu forward vs ref: %g", rel_err(o[1], o[0], m));
    for (int k = 0; k < 2; k++) { a[k] = zeros(m); b[k] = zeros(m); }
    CHECK(rp_ref_swiglu_backward(bw, a[0], b[0], d, g, u, m) == RP_OK);
    CHECK(rp_cpu_swiglu_backward(bw, a[1], b[1], d, g, u, m) == RP_OK);
    e = fmax(rel_err(a[1], a[0], m), rel_err(b[1], b[0], m));
    CHECK_MSG(e < 1e-5, "cpu swiglu backward vs ref: %g", e);
    /* rope from the table, forward and inverse, both layouts, against the reference's per-angle doubles */
    int H = 3, D = 16, rd = 12, half = rd / 2;
    int32_t pos[23];
    for (int t = 0; t < T; t++) pos[t] = (t * 7) % 29;
    float *cs = zeros(29 * half), *sn = zeros(29 * half), *q[2];
    CHECK(rp_rope_table(cs, sn, 29, rd, 10000.0f) == RP_OK);
    for (int neox = 0; neox < 2; neox++) {
        q[0] = randv(T * H * D, 1); q[1] = malloc((size_t)(T * H * D) * sizeof(float));
        memcpy(q[1], q[0], (size_t)(T * H * D) * sizeof(float));
        rp_ref_rope(NULL, q[0], T, H, D, rd, pos, 10000.0f, neox);
        CHECK(rp_cpu_rope_apply(bw, q[1], T, H, D, rd, pos, cs, sn, 29, neox, 0) == RP_OK);
        CHECK_MSG(rel_err(q[1], q[0], T * H * D) < 1e-5, "cpu rope (table) vs ref neox=%d: %g", neox, rel_err(q[1], q[0], T * H * D));
        CHECK(rp_ref_rope_backward(bw, q[0], T, H, D, rd, pos, 10000.0f, neox) == RP_OK);
        CHECK(rp_cpu_rope_apply(bw, q[1], T, H, D, rd, pos, cs, sn, 29, neox, 1) == RP_OK);
        CHECK_MSG(rel_err(q[1], q[0], T * H * D) < 1e-5, "cpu rope inverse vs ref neox=%d: %g", neox, rel_err(q[1], q[0], T * H * D));
        free(q[0]); free(q[1]);
    }
    pos[5] = 29;
    q[0] = zeros(T * H * D);
    CHECK(rp_cpu_rope_apply(bw, q[0], T, H, D, rd, pos, cs, sn, 29, 0, 0) == RP_ERR_RANGE);
    free(q[0]);
    /* cross-entropy: forward with lse, the in-place gradient and the accumulating backward, rows of 1000 */
    int64_t R = 5;
    float *lg = randv(R * m, 4), *loss[2], lse[5], dl[5] = { 1, 0.5f, 2, 1, 0.25f }, *gd[2];
    int32_t tg[5] = { 0, 999, 17, 500, 3 };
    uint8_t mask[5] = { 1, 1, 0, 1, 1 };
    loss[0] = zeros(R); loss[1] = zeros(R);
    for (int64_t r = 0; r < R; r++) if (mask[r]) rp_ref_cross_entropy(NULL, loss[0] + r, lg + r * m, tg + r, 1, m);
    CHECK(rp_cpu_cross_entropy_forward(bw, loss[1], lse, lg, tg, mask, R, m) == RP_OK);
    CHECK_MSG(rel_err(loss[1], loss[0], R) < 1e-5, "cpu cross_entropy forward vs ref: %g", rel_err(loss[1], loss[0], R));
    gd[0] = zeros(R * m); gd[1] = malloc((size_t)(R * m) * sizeof(float));
    memcpy(gd[1], lg, (size_t)(R * m) * sizeof(float));
    CHECK(rp_ref_cross_entropy_backward(bw, gd[0], lg, tg, dl, mask, R, m) == RP_OK);
    CHECK(rp_cpu_cross_entropy_grad(bw, gd[1], lse, tg, dl, mask, R, m) == RP_OK);
    CHECK_MSG(rel_err(gd[1], gd[0], R * m) < 1e-5, "cpu cross_entropy in-place gradient vs ref: %g", rel_err(gd[1], gd[0], R * m));
    tg[1] = 1000;
    CHECK(rp_cpu_cross_entropy_forward(bw, loss[1], lse, lg, tg, mask, R, m) == RP_ERR_RANGE);
    free(gd[0]); free(gd[1]); free(loss[0]); free(loss[1]); free(lg); free(cs); free(sn);
    for (int k = 0; k < 2; k++) { free(o[k]); free(dx[k]); free(dw[k]); free(a[k]); free(b[k]); }
    free(x); free(w); free(dy); free(g); free(u); free(d);
}

int main(void) {
    rp_pool *pool = NULL;
    rp_bwd *bw = NULL;
    CHECK(rp_pool_new(2, &pool) == RP_OK);
    CHECK(rp_bwd_new(pool, &bw) == RP_OK);
    const rp_bwd_ops *tables[2] = { &rp_bwd_ref, &rp_bwd_cpu };
    for (int i = 0; i < 2; i++) {
        const rp_bwd_ops *ops = tables[i];
        /* quantized weights round the forward's weights, not its input: the same tolerance holds */
        test_matmul(ops, bw, RP_F32, 1e-3);
        test_matmul(ops, bw, RP_Q4_0, 1e-3);
        test_matmul(ops, bw, RP_Q4_1, 1e-3);
        test_matmul(ops, bw, RP_Q8_0, 1e-3);
        test_embed(ops, bw, 0);
        test_embed(ops, bw, 1);
        test_rmsnorm(ops, bw);
        test_rope(ops, bw, 0);
        test_rope(ops, bw, 1);
        test_attention(ops, bw);
        test_swiglu(ops, bw);
        test_softmax(ops, bw, 0);
        test_softmax(ops, bw, 1);
        test_cross_entropy(ops, bw);
        test_scatter(ops, bw);
        test_conv1d(ops, bw);
        test_selective_scan(ops, bw, 16);
        test_selective_scan(ops, bw, 5);
    }
    test_cpu_vs_ref(bw);
    test_attention_seqs(bw);
    test_rows_vs_ref(bw);
    test_seq_cpu_vs_ref(bw);
    rp_bwd_free(bw);
    rp_pool_free(pool);
    return checks_done("backward");
}
