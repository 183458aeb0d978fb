/* test_jamba.c: the Jamba plugin and its kernels. Configurations: every named one is valid, bad knobs are
 * clear errors; the released Jamba's counts equal the spec's exact figures; a built model holds exactly
 * the walked tensors. Kernels: the fast selective scan against a naive double-precision recurrence; the
 * cpu scan backward (rp_bwd_cpu.selective_scan) against central finite differences of that recurrence, across
 * backward chunks and channel groups (conv1d's backward: test_backward.c); the load-balancing loss
 * on known routings (uniform -> K, everything on the same two experts -> n). Model: decoding token by
 * token with the hybrid cache gives the logits of one full forward; the per-layer-kind timing adds up. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "check.h"
#include "plugins/jamba/jamba.h"
#include "tensor/moe_route.h"
#include "tensor/ssm.h"

#include "test_vectors.h"

static void test_configs(void) {
    rp_jamba_config c;
    for (const char *const *n = rp_jamba_config_names(); *n; n++) {
        CHECK(rp_jamba_config_get(*n, &c) == RP_OK);
        CHECK_MSG(rp_jamba_config_check(&c) == RP_OK, "%s: %s", *n, rp_errmsg());
    }
    CHECK(rp_jamba_config_get("jamba-v2", &c) == RP_ERR_NOTFOUND && strstr(rp_errmsg(), "jamba-v0.1"));
    rp_jamba_config_get("jamba-v0.1", &c);
    rp_jamba_config b = c;
    b.mamba = 6;       /* 1:6 -> groups of 7 in a block of 8 */
    CHECK(rp_jamba_config_check(&b) == RP_ERR_INVAL && strstr(rp_errmsg(), "a:m = 1:6 does not divide the block of l = 8"));
    b = c; b.top_k = 17;
    CHECK(rp_jamba_config_check(&b) == RP_ERR_INVAL && strstr(rp_errmsg(), "top_k 17 must be in [1, n_experts = 16]"));
    b = c; b.n_layer = 30;
    CHECK(rp_jamba_config_check(&b) == RP_ERR_INVAL && strstr(rp_errmsg(), "n_layer 30"));
    b = c; b.n_head_kv = 5;
    CHECK(rp_jamba_config_check(&b) == RP_ERR_INVAL && strstr(rp_errmsg(), "n_head 32 is not a multiple of n_head_kv 5"));
    b = c; b.moe_offset = 2;
    CHECK(rp_jamba_config_check(&b) == RP_ERR_INVAL && strstr(rp_errmsg(), "moe_offset 2"));
    rp_jamba_model *m = NULL;
    b = c; b.top_k = 0;
    CHECK(rp_jamba_model_new(&b, 1, NULL, &m) == RP_ERR_INVAL && m == NULL);
    /* layer pattern of the release: attention at i % 8 == 4, MoE at odd i */
    int pattern_ok = 1;
    for (int i = 0; i < 32; i++)
        pattern_ok &= rp_jamba_layer_is_attn(&c, i) == (i % 8 == 4) && rp_jamba_layer_is_moe(&c, i) == (i % 2 == 1);
    CHECK(pattern_ok);
}

static void test_counts(void) {
    rp_jamba_config c;
    rp_jamba_counts k;
    rp_jamba_config_get("jamba-v0.1", &c);
    rp_jamba_count(&c, &k);
    CHECK(k.total == 51570323328LL);     /* spec §1.4 */
    CHECK(k.active == 12110311296LL);
    CHECK(k.n_attn == 4 && k.n_mamba == 28 && k.n_moe == 16 && k.n_attn_moe == 0);
    CHECK(k.kv_values_per_token * 2 == 16384);
    CHECK(k.mamba_state_values == 4587520);
    rp_jamba_config_get("mixtral-8x7b", &c);
    rp_jamba_count(&c, &k);
    CHECK(k.kv_values_per_token * 2 * 262144 == 32LL << 30);
    rp_jamba_config_get("llama-2-7b", &c);
    rp_jamba_count(&c, &k);
    CHECK(k.kv_values_per_token * 2 * 262144 == 128LL << 30 && k.total == k.active);
}

typedef struct each_acc { int64_t n, missing, wrong, tensors; } each_acc;
static void each_fn(void *ud, const rp_jamba_tensor *t, float *data, int64_t allocated) {
    each_acc *a = ud;
    a->tensors++;
    if (!data) { a->missing++; return; }
    if (allocated != t->numel) { a->wrong++; fprintf(stderr, "%s: walk %lld, allocated %lld\n", t->name, (long long)t->numel, (long long)allocated); }
    a->n += allocated;
}

static void test_built_model(void) {
    for (const char *const *n = rp_jamba_config_names(); *n; n++) {
        if (!strstr(*n, "-tiny")) continue;
        rp_jamba_config c;
        rp_jamba_counts k;
        rp_jamba_config_get(*n, &c);
        rp_jamba_count(&c, &k);
        rp_jamba_model *m = NULL;
        CHECK(rp_jamba_model_new(&c, 7, rp_backend_ref(), &m) == RP_OK);
        if (!m) continue;
        each_acc a = { 0, 0, 0, 0 };
        rp_jamba_model_each(m, each_fn, &a);
        CHECK_MSG(a.missing == 0 && a.wrong == 0 && a.tensors == k.n_tensors, "%s", *n);
        CHECK_MSG(rp_jamba_model_n_params(m) == k.total && a.n == k.total, "%s: built %lld, walked %lld", *n,
                  (long long)rp_jamba_model_n_params(m), (long long)k.total);
        rp_jamba_model_free(m);
    }
}

static void test_aux_loss(void) {
    enum { T = 64, E = 16, K = 2 };
    float probs[T * E];
    int32_t idx[T * K];
    for (int i = 0; i < T * E; i++) probs[i] = 1.0f / E;
    for (int t = 0; t < T; t++) { idx[t * K] = (2 * t) % E; idx[t * K + 1] = (2 * t + 1) % E; }
    CHECK_NEAR(rp_moe_aux_loss(T, E, K, probs, idx), K, 1e-6);           /* uniform routing: K */
    for (int t = 0; t < T; t++) {
        for (int e = 0; e < E; e++) probs[t * E + e] = e < 2 ? 0.5f : 0.0f;
        idx[t * K] = 0; idx[t * K + 1] = 1;
    }
    CHECK_NEAR(rp_moe_aux_loss(T, E, K, probs, idx), E, 1e-6);           /* all on the same two: n */
    /* routing from logits: top-2 in order, ties to the lower id, weights not renormalised unless asked */
    float logits[2 * 4] = { 0, 3, 1, 3, 5, 0, 0, 4 }, p[8], w[4];
    int32_t id[4];
    rp_moe_route(2, 4, 2, logits, p, id, w, 0);
    CHECK(id[0] == 1 && id[1] == 3 && id[2] == 0 && id[3] == 3);
    CHECK_NEAR(w[0], p[1], 1e-7);
    CHECK_NEAR(p[0] + p[1] + p[2] + p[3], 1, 1e-6);
    rp_moe_route(2, 4, 2, logits, p, id, w, 1);
    CHECK_NEAR(w[0] + w[1], 1, 1e-6);
    int64_t off[5];
    int32_t tok[4], slot[4];
    rp_moe_group(2, 4, 2, id, off, tok, slot);
    CHECK(off[0] == 0 && off[1] == 1 && off[2] == 2 && off[3] == 2 && off[4] == 4);
    CHECK(tok[0] == 1 && tok[1] == 0 && tok[2] == 0 && tok[3] == 1 && slot[2] == 1 && slot[3] == 3);
}

/* The scan plainly in double: the oracle. Returns Σ_t,c r[t,c]·y[t,c] when r is given. */
static double naive_scan(int T, int D, int N, const double *x, const double *dt, const double *A, const double *B,
                         const double *C, const double *Dk, const double *r, double *y, double *state) {
    double L = 0;
    for (int c = 0; c < D; c++)
        for (int n = 0; n < N; n++) {
            double s = state ? state[c * N + n] : 0;
            for (int t = 0; t < T; t++) {
                s = exp(dt[t * D + c] * A[c * N + n]) * s + dt[t * D + c] * B[t * N + n] * x[t * D + c];
                double v = C[t * N + n] * s + (n == 0 ? Dk[c] * x[t * D + c] : 0);
                if (y) { if (n == 0) y[t * D + c] = 0; y[t * D + c] += v; }
                if (r) L += r[t * D + c] * v;
            }
            if (state) state[c * N + n] = s;
        }
    return L;
}

static double *to_d(const float *f, int n) { double *d = malloc((size_t)n * sizeof *d); for (int i = 0; i < n; i++) d[i] = f[i]; return d; }

/* With scan_far set, every 7th step from step scan_far - 1 on (3, 10, ...) has dt 60, so dt·A reaches -130 and
 * those decays take the vector exp's general path (underflow and denormals; AVX2's fast one holds for
 * |dt·A| below 86, checked per 32-step chunk in the forward, so scan_far 36 leaves the first chunk fast). */
static int scan_far = 0;

static void scan_inputs(int T, int D, int N, float **x, float **dt, float **A, float **B, float **C, float **Dk) {
    *x = randv(T * D, 1); *dt = randv(T * D, 1); *A = randv(D * N, 1); *B = randv(T * N, 1); *C = randv(T * N, 1); *Dk = randv(D, 1);
    for (int i = 0; i < T * D; i++) (*dt)[i] = 0.05f + 0.5f * fabsf((*dt)[i]);   /* softplus outputs: positive */
    if (scan_far) for (int i = 0; i < T * D; i++) if ((i / D) % 7 == 3 && i / D >= scan_far - 1) (*dt)[i] = 60;
    for (int i = 0; i < D * N; i++) (*A)[i] = -(0.2f + 2 * fabsf((*A)[i]));         /* -exp(A_log): negative */
}

static void test_scan_forward(int D) {
    const int T = 50, N = 16;   /* D not a multiple of 16: the masked last block; D > 256: several tasks */
    float *x, *dt, *A, *B, *C, *Dk;
    scan_inputs(T, D, N, &x, &dt, &A, &B, &C, &Dk);
    float *y = calloc((size_t)(T * D), sizeof *y), *st = calloc((size_t)(D * N), sizeof *st);
    double *yd = calloc((size_t)(T * D), sizeof *yd);
    double *xd = to_d(x, T * D), *dtd = to_d(dt, T * D), *Ad = to_d(A, D * N), *Bd = to_d(B, T * N), *Cd = to_d(C, T * N), *Dd = to_d(Dk, D);
    naive_scan(T, D, N, xd, dtd, Ad, Bd, Cd, Dd, NULL, yd, NULL);
    rp_pool *pool = NULL;
    rp_pool_new(2, &pool);
    /* in two pieces with the state carried (prefill 20 tokens, then 30) */
    rp_ssm_scan(pool, 20, D, N, x, dt, A, B, C, Dk, st, y, NULL);
    rp_ssm_scan(pool, T - 20, D, N, x + 20 * D, dt + 20 * D, A, B + 20 * N, C + 20 * N, Dk, st, y + 20 * D, NULL);
    float *yf = malloc((size_t)(T * D) * sizeof *yf);
    for (int i = 0; i < T * D; i++) yf[i] = (float)yd[i];
    CHECK_MSG(rel_err(y, yf, T * D) < 2e-5, "fast scan vs naive: %g", rel_err(y, yf, T * D));
    /* one token at a time (the recurrent step) */
    memset(st, 0, (size_t)(D * N) * sizeof *st);
    for (int t = 0; t < T; t++) rp_ssm_scan(NULL, 1, D, N, x + t * D, dt + t * D, A, B + t * N, C + t * N, Dk, st, y + t * D, NULL);
    CHECK_MSG(rel_err(y, yf, T * D) < 2e-5, "step-by-step scan vs naive: %g", rel_err(y, yf, T * D));
    /* N != 16 takes the reference path */
    const int N2 = 5;
    float *A2 = randv(D * N2, 1), *B2 = randv(T * N2, 1), *C2 = randv(T * N2, 1), *st2 = calloc((size_t)(D * N2), sizeof *st2);
    for (int i = 0; i < D * N2; i++) A2[i] = -fabsf(A2[i]) - 0.1f;
    double *A2d = to_d(A2, D * N2), *B2d = to_d(B2, T * N2), *C2d = to_d(C2, T * N2);
    naive_scan(T, D, N2, xd, dtd, A2d, B2d, C2d, Dd, NULL, yd, NULL);
    rp_ssm_scan(pool, T, D, N2, x, dt, A2, B2, C2, Dk, st2, y, NULL);
    for (int i = 0; i < T * D; i++) yf[i] = (float)yd[i];
    CHECK_MSG(rel_err(y, yf, T * D) < 2e-5, "scan N=5 vs naive: %g", rel_err(y, yf, T * D));
    rp_pool_free(pool);
    free(x); free(dt); free(A); free(B); free(C); free(Dk); free(y); free(st); free(yd); free(yf);
    free(xd); free(dtd); free(Ad); free(Bd); free(Cd); free(Dd); free(A2); free(B2); free(C2); free(st2); free(A2d); free(B2d); free(C2d);
}

/* Central difference of the naive scan's loss along parameter p[i]. */
static double fd(double *p, int i, int T, int D, int N, double *x, double *dt, double *A, double *B, double *C, double *Dk, const double *r) {
    const double h = 1e-5, v = p[i];
    p[i] = v + h; double lp = naive_scan(T, D, N, x, dt, A, B, C, Dk, r, NULL, NULL);
    p[i] = v - h; double lm = naive_scan(T, D, N, x, dt, A, B, C, Dk, r, NULL, NULL);
    p[i] = v;
    return (lp - lm) / (2 * h);
}

/* Largest gap between g and the finite differences over every step-th entry (offset by 1 so that a step
 * co-prime to the row lengths visits every channel, state and chunk position over the entries). */
static int fd_step = 1;
static double grad_err(const float *g, double *p, int n, int T, int D, int N, double *x, double *dt, double *A, double *B,
                       double *C, double *Dk, const double *r) {
    double e = 0, mx = 1e-6;
    for (int i = fd_step > 1 ? 1 : 0; i < n; i += fd_step) {
        double f = fd(p, i, T, D, N, x, dt, A, B, C, Dk, r);
        e = fmax(e, fabs(f - g[i]));
        mx = fmax(mx, fabs(f));
    }
    return e / mx;
}

/* T past one backward chunk (32 steps) and D past one task's group of channel blocks (32) exercise the
 * checkpoints and the masked last block; those sizes check a sample of the entries (fd_step). */
static void test_scan_backward(int T, int D, int N, rp_pool *pool) {
    float *x, *dt, *A, *B, *C, *Dk;
    scan_inputs(T, D, N, &x, &dt, &A, &B, &C, &Dk);
    float *r = randv(T * D, 1);
    float *dx = calloc((size_t)(T * D), sizeof(float)), *ddt = calloc((size_t)(T * D), sizeof(float)), *dA = calloc((size_t)(D * N), sizeof(float));
    float *dB = calloc((size_t)(T * N), sizeof(float)), *dC = calloc((size_t)(T * N), sizeof(float)), *dD = calloc((size_t)D, sizeof(float));
    rp_bwd *bw = NULL;
    CHECK(rp_bwd_new(pool, &bw) == RP_OK);
    CHECK(rp_ssm_scan_backward(bw, dx, ddt, dA, dB, dC, dD, r, x, dt, A, B, C, Dk, T, D, N, NULL) == RP_OK);
    /* again from the checkpoints a training forward saves: the same gradients, bit for bit */
    float *ck = calloc(rp_scan_ckpt_floats(T, D, N) + 1, sizeof(float)), *st = calloc((size_t)(D * N), sizeof(float));
    float *y = calloc((size_t)(T * D), sizeof(float)), *g2[6];
    const int64_t gn[6] = { T * D, T * D, D * N, T * N, T * N, D };
    for (int i = 0; i < 6; i++) g2[i] = calloc((size_t)gn[i], sizeof(float));
    rp_ssm_scan(pool, T, D, N, x, dt, A, B, C, Dk, st, y, ck);
    CHECK(rp_ssm_scan_backward(bw, g2[0], g2[1], g2[2], g2[3], g2[4], g2[5], r, x, dt, A, B, C, Dk, T, D, N, ck) == RP_OK);
    const float *g1[6] = { dx, ddt, dA, dB, dC, dD };
    const char *name[6] = { "dx", "ddt", "dA", "dB", "dC", "dD" };
    for (int i = 0; i < 6; i++)
        CHECK_MSG(memcmp(g1[i], g2[i], (size_t)gn[i] * sizeof(float)) == 0,
                  "T=%d D=%d N=%d scan backward: %s from the forward's checkpoints differs from the one that recomputes them", T, D, N, name[i]);
    for (int i = 0; i < 6; i++) free(g2[i]);
    free(ck); free(st); free(y);
    rp_bwd_free(bw);
    double *xd = to_d(x, T * D), *dtd = to_d(dt, T * D), *Ad = to_d(A, D * N), *Bd = to_d(B, T * N), *Cd = to_d(C, T * N), *Dd = to_d(Dk, D), *rd = to_d(r, T * D);
    double ex = grad_err(dx, xd, T * D, T, D, N, xd, dtd, Ad, Bd, Cd, Dd, rd), edt = grad_err(ddt, dtd, T * D, T, D, N, xd, dtd, Ad, Bd, Cd, Dd, rd);
    double eA = grad_err(dA, Ad, D * N, T, D, N, xd, dtd, Ad, Bd, Cd, Dd, rd), eB = grad_err(dB, Bd, T * N, T, D, N, xd, dtd, Ad, Bd, Cd, Dd, rd);
    double eC = grad_err(dC, Cd, T * N, T, D, N, xd, dtd, Ad, Bd, Cd, Dd, rd), eD = grad_err(dD, Dd, D, T, D, N, xd, dtd, Ad, Bd, Cd, Dd, rd);
    CHECK_MSG(ex < 1e-4 && edt < 1e-4 && eA < 1e-4 && eB < 1e-4 && eC < 1e-4 && eD < 1e-4,
              "T=%d D=%d N=%d scan backward vs finite differences: dx %g ddt %g dA %g dB %g dC %g dD %g", T, D, N, ex, edt, eA, eB, eC, eD);
    free(x); free(dt); free(A); free(B); free(C); free(Dk); free(r); free(dx); free(ddt); free(dA); free(dB); free(dC); free(dD);
    free(xd); free(dtd); free(Ad); free(Bd); free(Cd); free(Dd); free(rd);
}

static rp_jamba_config small_config(int rope) {
    rp_jamba_config c;
    rp_jamba_config_get("jamba-v0.1-tiny", &c);
    c.n_layer = 8; c.attn = 1; c.mamba = 3; c.attn_offset = 1; c.n_experts = 4; c.d_model = 48; c.n_head = 4; c.n_head_kv = 2;
    c.head_dim = 12; c.ffn_dim = 96; c.vocab = 97; c.dt_rank = 3; c.rope = rope; c.init_std = 0.3f;
    return c;
}

static void test_decode_equals_forward(rp_backend *be, int rope) {
    rp_jamba_config c = small_config(rope);
    rp_jamba_model *m = NULL;
    CHECK(rp_jamba_model_new(&c, 11, be, &m) == RP_OK);
    if (!m) return;
    enum { T = 13 };
    int32_t ids[T];
    for (int t = 0; t < T; t++) ids[t] = (int32_t)((t * 37 + 5) % c.vocab);
    const int V = c.vocab;
    float *full = malloc(sizeof(float) * T * V), *step = malloc(sizeof(float) * T * V);
    rp_jamba_cache *k = NULL;
    double aux = -1;
    CHECK(rp_jamba_cache_new(m, T, &k) == RP_OK);
    CHECK(rp_jamba_forward(m, k, ids, T, full, 0, &aux) == RP_OK);
    CHECK_MSG(aux >= 1.0 && aux <= c.n_experts, "aux loss %g outside [1, n]", aux);   /* >= 1 by Cauchy-Schwarz-like bound for K = 2 */
    rp_jamba_cache_reset(k);
    CHECK(rp_jamba_forward(m, k, ids, 5, step, 0, NULL) == RP_OK);                     /* prefill 5, then one at a time */
    for (int t = 5; t < T; t++) CHECK(rp_jamba_forward(m, k, ids + t, 1, step + t * V, 1, NULL) == RP_OK);
    CHECK_MSG(rel_err(step, full, T * V) < 1e-4, "%s%s: decode vs full forward %g", be->name, rope ? " +rope" : "", rel_err(step, full, T * V));
    double spread = 0;   /* the logits do depend on the context (the test can fail) */
    for (int v = 0; v < V; v++) spread = fmax(spread, fabs(full[(T - 1) * V + v] - full[(T - 2) * V + v]));
    CHECK(spread > 1e-3);
    CHECK(rp_jamba_forward(m, k, ids, 1, step, 1, NULL) == RP_ERR_RANGE);              /* cache full */
    rp_jamba_cache_reset(k);
    int32_t bad = c.vocab;
    CHECK(rp_jamba_forward(m, k, &bad, 1, step, 1, NULL) == RP_ERR_INVAL && strstr(rp_errmsg(), "token id 97"));
    double lp[T - 1];
    CHECK(rp_jamba_score(m, ids, T, lp, NULL) == RP_OK);
    double mx = -INFINITY, sum = 0;   /* lp[T-2] from the full forward's last-but-one row */
    for (int v = 0; v < V; v++) mx = fmax(mx, full[(T - 2) * V + v]);
    for (int v = 0; v < V; v++) sum += exp(full[(T - 2) * V + v] - mx);
    CHECK_NEAR(lp[T - 2], full[(T - 2) * V + ids[T - 1]] - mx - log(sum), 1e-4);
    int32_t out[6];
    int n_out = 0;
    CHECK(rp_jamba_generate(m, ids, 4, 6, 0, 1, out, &n_out) == RP_OK && n_out == 6);
    rp_jamba_cache_free(k);
    rp_jamba_model_free(m);
    free(full); free(step);
}

/* Decoding three sequences of different lengths in one batch gives each one's logits of decoding it alone. */
static void test_decode_batch(rp_backend *be) {
    rp_jamba_config c = small_config(1);
    rp_jamba_model *m = NULL;
    CHECK(rp_jamba_model_new(&c, 5, be, &m) == RP_OK);
    if (!m) return;
    enum { NS = 3, STEPS = 3 };
    rp_jamba_cache *kb[NS] = { 0 }, *ka[NS] = { 0 };
    int32_t prompt[12];
    for (int i = 0; i < 12; i++) prompt[i] = (i * 13 + 5) % c.vocab;
    const int len[NS] = { 5, 12, 1 };
    float *lb = malloc(sizeof(float) * NS * (size_t)c.vocab), *la = malloc(sizeof(float) * (size_t)c.vocab);
    for (int i = 0; i < NS; i++) {
        CHECK(rp_jamba_cache_new(m, 32, &kb[i]) == RP_OK && rp_jamba_cache_new(m, 32, &ka[i]) == RP_OK);
        CHECK(rp_jamba_forward(m, kb[i], prompt, len[i], NULL, 1, NULL) == RP_OK);
        CHECK(rp_jamba_forward(m, ka[i], prompt, len[i], NULL, 1, NULL) == RP_OK);
    }
    double worst = 0;
    for (int step = 0; step < STEPS; step++) {
        int32_t ids[NS] = { (int32_t)(3 + step), (int32_t)(40 + step), (int32_t)(90 - step) };
        CHECK(rp_jamba_decode_batch(m, kb, NS, ids, lb) == RP_OK);
        for (int i = 0; i < NS; i++) {
            CHECK(rp_jamba_forward(m, ka[i], &ids[i], 1, la, 1, NULL) == RP_OK);
            double e = rel_err(lb + (size_t)i * c.vocab, la, c.vocab);
            if (e > worst) worst = e;
        }
    }
    CHECK_MSG(worst < 1e-4, "%s: batched decode vs one sequence at a time: %g", be->name, worst);
    rp_jamba_cache *same[2] = { kb[0], kb[0] };
    int32_t two[2] = { 1, 2 };
    CHECK(rp_jamba_decode_batch(m, same, 2, two, NULL) == RP_ERR_INVAL);   /* one cache twice is a clear error */
    for (int i = 0; i < NS; i++) { rp_jamba_cache_free(kb[i]); rp_jamba_cache_free(ka[i]); }
    free(lb); free(la);
    rp_jamba_model_free(m);
}

/* ---- training gradients against finite differences of rp_jamba_score's loss (an independent forward) ---- */
typedef struct fd_ctx {
    rp_jamba_model *m;
    const rp_jamba_trainer *tr;
    const int32_t *ids;
    int T;
    float coef;
    double worst, scale;
    int n, skipped, kinks;
} fd_ctx;

/* Cross-entropy from rp_jamba_score over the T + 1 tokens; the load-balancing loss from rp_jamba_forward
 * over the T input tokens (the rows the trainer routes). */
static double score_loss(fd_ctx *f) {
    double lp[64], aux = 0, s = 0;
    rp_jamba_cache *k = NULL;
    if (rp_jamba_score(f->m, f->ids, f->T + 1, lp, NULL) != RP_OK || rp_jamba_cache_new(f->m, f->T, &k) != RP_OK) return NAN;
    rp_status st = rp_jamba_forward(f->m, k, f->ids, f->T, NULL, 0, &aux);
    rp_jamba_cache_free(k);
    if (st != RP_OK) return NAN;
    for (int i = 0; i < f->T; i++) s -= lp[i];
    return s / f->T + f->coef * aux;
}

/* Two entries of every tensor: the central difference of the loss against the trainer's gradient. The
 * top-K routing makes the loss piecewise smooth: where steps h and h/2 disagree, a routing flipped inside
 * the step and the entry is counted as a kink instead (the test bounds their number). Steps of 5e-3: the float
 * forward's loss is good to about 1e-6, so differences are good to about 2e-4, hence the 5e-3 floor. */
static void fd_tensor(void *ud, const rp_jamba_tensor *t, float *data, int64_t allocated) {
    fd_ctx *f = ud;
    if (!data) return;
    const float *g = rp_jamba_trainer_grad(f->tr, data);
    if (!g) { f->skipped++; return; }
    for (int j = 0; j < 2; j++) {
        int64_t i = (allocated * (2 * j + 1)) / 4;
        float keep = data[i];
        double fdh[2], e = 0;
        for (int q = 0; q < 2; q++) {   /* h = 5e-3; where that disagrees with the gradient, h = 1e-2 tells a kink */
            const float h = q ? 1e-2f : 5e-3f;
            data[i] = keep + h; double lp = score_loss(f);
            data[i] = keep - h; double lm = score_loss(f);
            data[i] = keep;
            fdh[q] = (lp - lm) / (2.0 * h);
            /* the float forward's loss is good to about 1e-6, so a difference is good to about 1e-6 / h */
            e = fabs(fdh[0] - g[i]) / (fabs(fdh[0]) + 5e-3);
            if (e < 0.02) break;
        }
        if (e >= 0.02 && fabs(fdh[0] - fdh[1]) > 0.05 * fabs(fdh[0]) + 1e-3) { f->kinks++; continue; }
        if (e > f->worst) { f->worst = e; if (e > 0.02) fprintf(stderr, "  %s[%lld]: fd %.6g grad %.6g\n", t->name, (long long)i, fdh[0], g[i]); }
        f->n++;
    }
}

static void test_train_gradients(void) {
    for (int rope = 0; rope <= 1; rope++) {
        rp_jamba_config c = small_config(rope);
        c.n_layer = 4; c.block_len = 4; c.moe_every = 2; c.moe_offset = 1; c.top_k = 2;
        rp_jamba_model *m = NULL, *mc = NULL;
        rp_jamba_trainer *tr = NULL, *tc = NULL;
        CHECK(rp_jamba_model_new(&c, 21, rp_backend_ref(), &m) == RP_OK);
        CHECK(rp_jamba_model_new(&c, 21, rp_backend_cpu(), &mc) == RP_OK);
        enum { T = 20 };
        int32_t ids[T + 1];
        for (int i = 0; i <= T; i++) ids[i] = (i * 37 + 11) % c.vocab;
        const float coef = 0.5f;
        CHECK(rp_jamba_trainer_new(m, T, coef, &tr) == RP_OK);
        CHECK(rp_jamba_trainer_new(mc, T, coef, &tc) == RP_OK);
        if (!tr || !tc) return;
        rp_jamba_train_stats st, sc;
        CHECK(rp_jamba_trainer_forward_backward(tr, ids, T, &st) == RP_OK);
        CHECK(rp_jamba_trainer_forward_backward(tc, ids, T, &sc) == RP_OK);
        fd_ctx f = { m, tr, ids, T, coef, 0, 0, 0, 0, 0 };
        double ref_loss = score_loss(&f);
        CHECK_MSG(fabs(st.loss + coef * st.aux - ref_loss) < 1e-4, "training loss %.6f + %.1f x aux %.6f vs score's %.6f",
                  st.loss, coef, st.aux, ref_loss);
        CHECK_MSG(fabs(sc.loss - st.loss) < 1e-4 && fabs(sc.aux - st.aux) < 1e-6, "cpu loss %.6f aux %.6f vs ref %.6f %.6f", sc.loss, sc.aux, st.loss, st.aux);
        rp_jamba_model_each(m, fd_tensor, &f);
        CHECK_MSG(f.worst < 0.02 && f.skipped == 0 && f.n > 80 && f.kinks < f.n / 10,
                  "rope %d: training gradients vs finite differences of the score: worst relative %.3g over %d entries (%d kinks skipped, %d tensors without gradient)",
                  rope, f.worst, f.n, f.kinks, f.skipped);
        /* a bad sequence is a clear error, and an update moves the weights and zeroes the gradients */
        ids[3] = c.vocab;
        CHECK(rp_jamba_trainer_forward_backward(tr, ids, T, &st) == RP_ERR_INVAL);
        rp_adamw opt = { 0.9f, 0.999f, 1e-8f, 0.0f };
        double gn = 0;
        CHECK(rp_jamba_trainer_update(tr, &opt, 1e-3f, 1.0f, 1.0f, &gn) == RP_OK && gn > 0);
        rp_jamba_trainer_free(tr); rp_jamba_trainer_free(tc);
        rp_jamba_model_free(m); rp_jamba_model_free(mc);
    }
}

/* Attention maps (rp_jamba_attention_maps): in an attention-only model without positions, a sequence of one
 * repeated token gives every position the same hidden state, so every head of every layer must weigh the
 * keys uniformly, 1/(q+1) (a closed form); on varied tokens the rows are causal (later tokens change
 * nothing), sum to 1 and are not uniform; a Mamba layer is a clear error. */
static void test_attention_maps(void) {
    rp_jamba_config c = small_config(0);
    c.attn = 1; c.mamba = 0; c.attn_offset = 0; c.block_len = 1;
    rp_jamba_model *m = NULL;
    CHECK(rp_jamba_model_new(&c, 3, rp_backend_cpu(), &m) == RP_OK);
    if (!m) return;
    enum { T = 11 };
    const int H = c.n_head, qpos[3] = { 0, 6, 10 };
    int32_t same[T], ids[T], ids2[T];
    float out[3 * 4 * T], out2[3 * 4 * T];
    for (int t = 0; t < T; t++) { same[t] = 5; ids[t] = ids2[t] = (int32_t)((t * 29 + 3) % c.vocab); }
    double worst = 0;
    for (int layer = 0; layer < c.n_layer; layer += 3) {
        CHECK(rp_jamba_attention_maps(m, same, T, layer, qpos, 3, out) == RP_OK);
        for (int i = 0; i < 3; i++)
            for (int h = 0; h < H; h++)
                for (int j = 0; j < T; j++)
                    worst = fmax(worst, fabs(out[(i * H + h) * T + j] - (j <= qpos[i] ? 1.0 / (qpos[i] + 1) : 0.0)));
    }
    CHECK_MSG(worst < 1e-5, "repeated token: attention off uniform by %g", worst);
    ids2[8] = (ids2[8] + 1) % c.vocab;   /* after the query positions 0 and 6 */
    CHECK(rp_jamba_attention_maps(m, ids, T, 2, qpos, 3, out) == RP_OK);
    CHECK(rp_jamba_attention_maps(m, ids2, T, 2, qpos, 3, out2) == RP_OK);
    double causal = 0, sum_err = 0, spread = 0;
    for (int i = 0; i < 3; i++)
        for (int h = 0; h < H; h++) {
            double sum = 0;
            for (int j = 0; j < T; j++) {
                float p = out[(i * H + h) * T + j];
                sum += p;
                if (i < 2) causal = fmax(causal, fabs(p - out2[(i * H + h) * T + j]));
                if (j <= qpos[i]) spread = fmax(spread, fabs(p - 1.0 / (qpos[i] + 1)));
            }
            sum_err = fmax(sum_err, fabs(sum - 1));
        }
    CHECK_MSG(causal < 1e-6 && sum_err < 1e-5 && spread > 1e-3, "causal %g, row sums off by %g, spread %g", causal, sum_err, spread);
    int bad = T;
    CHECK(rp_jamba_attention_maps(m, ids, T, 0, &bad, 1, out) == RP_ERR_INVAL && strstr(rp_errmsg(), "query position 11"));
    rp_jamba_model_free(m);
    c = small_config(0);   /* the hybrid: layer 1 is its attention layer, layer 0 a Mamba layer */
    CHECK(rp_jamba_model_new(&c, 3, rp_backend_cpu(), &m) == RP_OK);
    if (!m) return;
    CHECK(rp_jamba_attention_maps(m, ids, T, 0, qpos, 3, out) == RP_ERR_INVAL && strstr(rp_errmsg(), "layer 0 is a Mamba layer (the first attention layer is 1"));
    CHECK(rp_jamba_attention_maps(m, ids, T, 1, qpos, 3, out) == RP_OK);
    rp_jamba_model_free(m);
}

/* rp_jamba_model_time_layers: a forward's thread CPU time split by layer kind adds up to the time measured
 * around it; each kind the model has gets time, the kinds it lacks none; stopping adds nothing more. */
static void test_layer_times(const char *name, int has_mamba, int has_mlp) {
    rp_jamba_config c;
    CHECK(rp_jamba_config_get(name, &c) == RP_OK);
    rp_jamba_model *m = NULL;
    rp_jamba_cache *k = NULL;
    CHECK(rp_jamba_model_new(&c, 3, rp_backend_ref(), &m) == RP_OK);
    if (!m) return;
    CHECK(rp_jamba_cache_new(m, 64, &k) == RP_OK);
    int32_t ids[16];
    for (int i = 0; i < 16; i++) ids[i] = (i * 7 + 1) % c.vocab;
    rp_jamba_layer_times t = { 0, 0, 0, 0, 0, 1 };
    struct timespec a, b;
    rp_jamba_model_time_layers(m, &t);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
    CHECK(rp_jamba_forward(m, k, ids, 16, NULL, 1, NULL) == RP_OK);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
    rp_jamba_model_time_layers(m, NULL);
    double outer = (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) * 1e-9, sum = t.attn + t.mamba + t.moe + t.mlp + t.other;
    CHECK_MSG(sum <= outer && sum >= 0.9 * outer, "%s: kinds sum to %g s of %g s", name, sum, outer);
    CHECK_MSG(t.attn > 0 && t.moe > 0 && t.other >= 0 && (t.mamba > 0) == has_mamba && (t.mlp > 0) == has_mlp,
              "%s: attn %g mamba %g moe %g mlp %g other %g", name, t.attn, t.mamba, t.moe, t.mlp, t.other);
    rp_jamba_layer_times before = t;
    CHECK(rp_jamba_forward(m, k, ids, 4, NULL, 1, NULL) == RP_OK);
    CHECK(memcmp(&before, &t, sizeof t) == 0);
    rp_jamba_cache_free(k);
    rp_jamba_model_free(m);
}

int main(void) {
    test_configs();
    test_counts();
    test_built_model();
    test_aux_loss();
    test_scan_forward(37);
    test_scan_forward(300);
    scan_far = 36;
    test_scan_forward(37);
    scan_far = 0;
    test_attention_maps();
    rp_pool *pool = NULL;
    rp_pool_new(2, &pool);
    test_scan_backward(9, 19, 16, pool);
    test_scan_backward(9, 19, 16, NULL);
    test_scan_backward(9, 19, 4, pool);
    fd_step = 29;
    test_scan_backward(77, 70, 16, pool);
    test_scan_backward(77, 70, 16, NULL);
    fd_step = 1;
    scan_far = 1;
    test_scan_backward(9, 19, 16, NULL);
    fd_step = 7;
    test_scan_backward(40, 19, 16, NULL);
    fd_step = 1;
    scan_far = 0;
    rp_pool_free(pool);
    test_decode_equals_forward(rp_backend_ref(), 0);
    test_decode_equals_forward(rp_backend_cpu(), 0);
    test_decode_equals_forward(rp_backend_cpu(), 1);
    test_decode_batch(rp_backend_ref());
    test_decode_batch(rp_backend_cpu());
    test_train_gradients();
    test_layer_times("jamba-v0.1-tiny", 1, 1);
    test_layer_times("mixtral-8x7b-tiny", 0, 0);
    return checks_done("test_jamba");
}
