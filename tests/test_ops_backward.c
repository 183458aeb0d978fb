/* test_ops_backward.c: the backward half of the op tests: every op of the backward table on the GPU
 * (rp_bwd_cuda, backend buffers) against the reference table (rp_bwd_ref, host memory) on the same inputs,
 * with the largest normalized error (max |gpu - ref| / max |ref| over all of a case's gradients) allowed
 * written beside each case. Gradients start from random values, not zeros, so "accumulate (+=)" is
 * checked too; shapes are chosen to cross the kernels' edges (head sizes not a multiple of 32, more keys
 * than warps, padded kv rows and weight strides, scans longer than one checkpoint chunk, repeated indices,
 * masked rows). A bad index must return RP_ERR_RANGE and leave the gradient untouched.
 * The same cases run first with the cpu table on the host (so the cases and thresholds are exercised on every
 * machine). Without a GPU (or in a build without CUDA) it checks what it can (the table is complete in CUDA builds)
 * and prints `skip [gpu]: ...`, counted as a skip by tests/run_all.sh, never as a pass. The forward ops
 * are tests/test_ops.c's table; the reference backward itself is checked by finite differences in
 * tests/test_backward.c. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "tensor/backend_cuda.h"
#include "tensor/backward.h"
#include "tensor/quant.h"

/* One side of a comparison: host memory for ref, cuda buffers for the GPU. Outputs are collected in order. */
typedef struct side {
    rp_backend *be;             /* NULL: host */
    void *p[32];
    int n;
    float *out;                 /* host: where the gradients are copied, one after another */
    size_t n_out;
} side;

static uint64_t rng;
static float frand(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}
static float *randv(int64_t n, float s) {
    float *v = malloc((size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++) v[i] = frand() * s;
    return v;
}

/* The side's copy of host bytes. */
static void *put(side *s, const void *host, size_t nb) {
    void *p;
    if (s->be) {
        p = s->be->ops->alloc(s->be, nb ? nb : 1);
        CHECK(p != NULL);
        if (p && nb) CHECK(rp_backend_copy_from_host(s->be, p, host, nb) == RP_OK);
    } else {
        p = malloc(nb ? nb : 1);
        memcpy(p, host, nb);
    }
    s->p[s->n++] = p;
    return p;
}
/* A gradient initialised to n random floats (the same on both sides: the case reseeds). */
static float *grad(side *s, int64_t n) {
    float *h = randv(n, 0.5f);
    float *p = put(s, h, (size_t)n * sizeof(float));
    free(h);
    return p;
}
/* Append n floats of gradient p to the side's outputs. */
static void collect(side *s, const float *p, int64_t n) {
    s->out = realloc(s->out, (s->n_out + (size_t)n) * sizeof(float));
    if (s->be) CHECK(rp_backend_copy_to_host(s->be, s->out + s->n_out, p, (size_t)n * sizeof(float)) == RP_OK);
    else memcpy(s->out + s->n_out, p, (size_t)n * sizeof(float));
    s->n_out += (size_t)n;
}
static void release(side *s) {
    for (int i = 0; i < s->n; i++) {
        if (s->be) s->be->ops->free(s->be, s->p[i]);
        else free(s->p[i]);
    }
    s->n = 0;
}

typedef rp_status (*case_fn)(const rp_bwd_ops *ops, rp_bwd *bw, side *s);

static rp_status c_matmul(const rp_bwd_ops *o, rp_bwd *bw, side *s, rp_dtype wt) {
    int64_t M = 9, K = 96, N = 40;
    int f32 = wt == RP_F32;
    size_t ldw = f32 ? (size_t)(K + 4) * 4 : rp_dtype_row_bytes(wt, K);   /* padded f32 rows: dw keeps the stride */
    unsigned char *w = calloc((size_t)N, ldw);
    float *row = randv(K, 0.5f), *dy = randv(M * N, 1.0f), *x = randv(M * K, 1.0f);
    for (int64_t n = 0; n < N; n++) {
        for (int64_t k = 0; k < K; k++) row[k] = frand() * 0.5f;
        CHECK(rp_quantize_row(wt, row, w + (size_t)n * ldw, K) == RP_OK);
    }
    float *gx = grad(s, M * K), *gw = f32 ? grad(s, (int64_t)(ldw / 4) * N) : NULL, *gb = grad(s, N);
    rp_status st = o->matmul(bw, gx, gw, gb, put(s, dy, (size_t)(M * N) * 4), put(s, x, (size_t)(M * K) * 4), M, K,
                             put(s, w, ldw * (size_t)N), wt, ldw, N);
    collect(s, gx, M * K);
    if (gw) collect(s, gw, (int64_t)(ldw / 4) * N);
    collect(s, gb, N);
    free(w); free(row); free(dy); free(x);
    return st;
}
static rp_status c_matmul_f32(const rp_bwd_ops *o, rp_bwd *bw, side *s) { return c_matmul(o, bw, s, RP_F32); }
static rp_status c_matmul_q4_0(const rp_bwd_ops *o, rp_bwd *bw, side *s) { return c_matmul(o, bw, s, RP_Q4_0); }
static rp_status c_matmul_q8_0(const rp_bwd_ops *o, rp_bwd *bw, side *s) { return c_matmul(o, bw, s, RP_Q8_0); }

/* Rows scattered back by index (embedding rows, or gathered rows), with repeats so the atomics sum. */
static rp_status c_rows(const rp_bwd_ops *o, rp_bwd *bw, side *s, int embed) {
    int64_t V = 10, C = 33, T = 12;
    int32_t ids[12] = { 3, 1, 3, 9, 0, 3, 7, 7, 2, 9, 1, 3 };
    float *dout = randv(T * C, 1.0f), *g = grad(s, V * C);
    const int32_t *pi = put(s, ids, sizeof ids);
    const float *pd = put(s, dout, (size_t)(T * C) * 4);
    rp_status st = embed ? o->embed(bw, g, V, C, pi, T, pd) : o->gather_rows(bw, g, V, C, pi, T, pd);
    collect(s, g, V * C);
    free(dout);
    return st;
}
static rp_status c_embed(const rp_bwd_ops *o, rp_bwd *bw, side *s) { return c_rows(o, bw, s, 1); }
static rp_status c_gather_rows(const rp_bwd_ops *o, rp_bwd *bw, side *s) { return c_rows(o, bw, s, 0); }

static rp_status c_rmsnorm(const rp_bwd_ops *o, rp_bwd *bw, side *s) {
    int64_t T = 5, C = 300;
    float *x = randv(T * C, 2.0f), *w = randv(C, 1.0f), *dout = randv(T * C, 1.0f), *gx = grad(s, T * C), *gw = grad(s, C);
    rp_status st = o->rmsnorm(bw, gx, gw, put(s, dout, (size_t)(T * C) * 4), put(s, x, (size_t)(T * C) * 4), put(s, w, (size_t)C * 4), T, C, 1e-5f);
    collect(s, gx, T * C);
    collect(s, gw, C);
    free(x); free(w); free(dout);
    return st;
}

static rp_status c_rope(const rp_bwd_ops *o, rp_bwd *bw, side *s) {
    int64_t T = 4;
    int H = 3, D = 16;
    int32_t pos[4] = { 0, 5, 17, 1000 };
    float *g = grad(s, T * H * D);
    const int32_t *pp = put(s, pos, sizeof pos);
    rp_status st = o->rope(bw, g, T, H, D, 12, pp, 10000.0f, 0);
    if (st == RP_OK) st = o->rope(bw, g, T, H, D, 16, pp, 500000.0f, 1);   /* and the neox pairing */
    collect(s, g, T * H * D);
    return st;
}

static rp_status c_attention_shape(const rp_bwd_ops *o, rp_bwd *bw, side *s, int64_t T, int64_t pos0, int H, int Hkv, int D) {
    int64_t ks = (int64_t)Hkv * D + 8, nkv = pos0 + T;   /* padded kv rows */
    float *q = randv(T * H * D, 1.0f), *k = randv(nkv * ks, 1.0f), *v = randv(nkv * ks, 1.0f), *dout = randv(T * H * D, 1.0f);
    float *gq = grad(s, T * H * D), *gk = grad(s, nkv * ks), *gv = grad(s, nkv * ks);
    rp_status st = o->attention(bw, gq, gk, gv, put(s, dout, (size_t)(T * H * D) * 4), put(s, q, (size_t)(T * H * D) * 4),
                                put(s, k, (size_t)(nkv * ks) * 4), put(s, v, (size_t)(nkv * ks) * 4), T, pos0, H, Hkv, D, ks,
                                1.0f / sqrtf((float)D));
    collect(s, gq, T * H * D);
    collect(s, gk, nkv * ks);
    collect(s, gv, nkv * ks);
    free(q); free(k); free(v); free(dout);
    return st;
}
static rp_status c_attention(const rp_bwd_ops *o, rp_bwd *bw, side *s) {
    rp_status st = c_attention_shape(o, bw, s, 5, 3, 4, 2, 40);   /* D not a multiple of 32, GQA group 2, a cache prefix */
    return st == RP_OK ? c_attention_shape(o, bw, s, 33, 0, 3, 1, 64) : st;   /* more keys than warps */
}

static rp_status c_swiglu(const rp_bwd_ops *o, rp_bwd *bw, side *s) {
    int64_t n = 1000;
    float *gt = randv(n, 4.0f), *up = randv(n, 1.0f), *dout = randv(n, 1.0f), *gg = grad(s, n), *gu = grad(s, n);
    rp_status st = o->swiglu(bw, gg, gu, put(s, dout, (size_t)n * 4), put(s, gt, (size_t)n * 4), put(s, up, (size_t)n * 4), n);
    collect(s, gg, n);
    collect(s, gu, n);
    free(gt); free(up); free(dout);
    return st;
}

static rp_status c_softmax_mode(const rp_bwd_ops *o, rp_bwd *bw, side *s, int log) {
    int64_t rows = 3, n = 700;
    float *x = randv(rows * n, 3.0f), *dy = randv(rows * n, 1.0f), *g = grad(s, rows * n);
    for (int64_t r = 0; r < rows; r++) {   /* y = (log-)softmax(x), as the forward left it */
        double mx = -INFINITY, sum = 0;
        for (int64_t i = 0; i < n; i++) mx = fmax(mx, x[r * n + i]);
        for (int64_t i = 0; i < n; i++) sum += exp(x[r * n + i] - mx);
        for (int64_t i = 0; i < n; i++) x[r * n + i] = log ? (float)(x[r * n + i] - mx - logf((float)sum)) : (float)(exp(x[r * n + i] - mx) / sum);
    }
    const float *py = put(s, x, (size_t)(rows * n) * 4), *pdy = put(s, dy, (size_t)(rows * n) * 4);
    rp_status st = log ? o->log_softmax(bw, g, pdy, py, rows, n) : o->softmax(bw, g, pdy, py, rows, n);
    collect(s, g, rows * n);
    free(x); free(dy);
    return st;
}
static rp_status c_softmax(const rp_bwd_ops *o, rp_bwd *bw, side *s) { return c_softmax_mode(o, bw, s, 0); }
static rp_status c_log_softmax(const rp_bwd_ops *o, rp_bwd *bw, side *s) { return c_softmax_mode(o, bw, s, 1); }

static rp_status c_cross_entropy(const rp_bwd_ops *o, rp_bwd *bw, side *s) {
    int64_t rows = 4, n = 500;
    int32_t tg[4] = { 7, 499, -1, 0 };   /* row 2 is masked: its target is never read */
    uint8_t mask[4] = { 1, 1, 0, 1 };
    float *lg = randv(rows * n, 5.0f), *dl = randv(rows, 1.0f), *g = grad(s, rows * n);
    rp_status st = o->cross_entropy(bw, g, put(s, lg, (size_t)(rows * n) * 4), put(s, tg, sizeof tg), put(s, dl, (size_t)rows * 4),
                                    put(s, mask, sizeof mask), rows, n);
    collect(s, g, rows * n);
    free(lg); free(dl);
    return st;
}

static rp_status c_scatter_add_rows(const rp_bwd_ops *o, rp_bwd *bw, side *s) {
    int64_t rows_out = 5, C = 70, n = 8;
    int32_t idx[8] = { 4, 4, 0, 1, 3, 0, 2, 4 };
    float *dout = randv(rows_out * C, 1.0f), *x = randv(n * C, 1.0f), *wt = randv(n, 1.0f), *gx = grad(s, n * C), *gw = grad(s, n);
    rp_status st = o->scatter_add_rows(bw, gx, gw, put(s, dout, (size_t)(rows_out * C) * 4), rows_out, put(s, x, (size_t)(n * C) * 4), C,
                                       put(s, idx, sizeof idx), put(s, wt, (size_t)n * 4), n);
    collect(s, gx, n * C);
    collect(s, gw, n);
    free(dout); free(x); free(wt);
    return st;
}

static rp_status c_conv1d(const rp_bwd_ops *o, rp_bwd *bw, side *s) {
    int64_t T = 10, C = 24;
    int K = 4;
    float *x = randv(T * C, 1.0f), *w = randv(C * K, 1.0f), *dout = randv(T * C, 1.0f);
    float *gx = grad(s, T * C), *gw = grad(s, C * K), *gb = grad(s, C);
    rp_status st = o->conv1d_causal(bw, gx, gw, gb, put(s, dout, (size_t)(T * C) * 4), put(s, x, (size_t)(T * C) * 4), T, C,
                                    put(s, w, (size_t)(C * K) * 4), K);
    collect(s, gx, T * C);
    collect(s, gw, C * K);
    collect(s, gb, C);
    free(x); free(w); free(dout);
    return st;
}

static rp_status c_scan_shape(const rp_bwd_ops *o, rp_bwd *bw, side *s, int64_t T, int64_t D, int64_t N) {
    float *u = randv(T * D, 1.0f), *dt = randv(T * D, 0.5f), *A = randv(D * N, 1.0f), *B = randv(T * N, 1.0f), *Cm = randv(T * N, 1.0f),
          *Dp = randv(D, 1.0f), *dy = randv(T * D, 1.0f);
    for (int64_t i = 0; i < T * D; i++) dt[i] = fabsf(dt[i]) + 0.01f;
    for (int64_t i = 0; i < D * N; i++) A[i] = -fabsf(A[i]) - 0.1f;
    float *gu = grad(s, T * D), *gdt = grad(s, T * D), *gA = grad(s, D * N), *gB = grad(s, T * N), *gC = grad(s, T * N), *gD = grad(s, D);
    rp_status st = o->selective_scan(bw, gu, gdt, gA, gB, gC, gD, put(s, dy, (size_t)(T * D) * 4), put(s, u, (size_t)(T * D) * 4),
                                     put(s, dt, (size_t)(T * D) * 4), put(s, A, (size_t)(D * N) * 4), put(s, B, (size_t)(T * N) * 4),
                                     put(s, Cm, (size_t)(T * N) * 4), put(s, Dp, (size_t)D * 4), T, D, N, NULL);
    collect(s, gu, T * D);
    collect(s, gdt, T * D);
    collect(s, gA, D * N);
    collect(s, gB, T * N);
    collect(s, gC, T * N);
    collect(s, gD, D);
    free(u); free(dt); free(A); free(B); free(Cm); free(Dp); free(dy);
    return st;
}
static rp_status c_selective_scan(const rp_bwd_ops *o, rp_bwd *bw, side *s) {
    rp_status st = c_scan_shape(o, bw, s, 70, 20, 16);   /* three checkpoint chunks, two channels per warp */
    return st == RP_OK ? c_scan_shape(o, bw, s, 9, 7, 5) : st;   /* N not a power of two: idle lanes */
}

/* One row per backward op, in rp_bwd_ops order, with the largest normalized error allowed against ref:
 * 1e-5 where the GPU sums in float what ref sums in double (sgemm, atomics in another order), 1e-4 for
 * the scan (float states through 70 steps and float adjoints against ref's doubles). */
static const struct bw_case { const char *op; double tol; case_fn run; } cases[] = {
    { "matmul f32 (dx dw db)", 1e-5, c_matmul_f32 },
    { "matmul q4_0 (dx db)", 1e-5, c_matmul_q4_0 },
    { "matmul q8_0 (dx db)", 1e-5, c_matmul_q8_0 },
    { "embed", 1e-6, c_embed },
    { "rmsnorm", 1e-5, c_rmsnorm },
    { "rope", 1e-5, c_rope },
    { "attention", 1e-5, c_attention },
    { "swiglu", 1e-5, c_swiglu },
    { "softmax", 1e-5, c_softmax },
    { "log_softmax", 1e-5, c_log_softmax },
    { "cross_entropy", 1e-5, c_cross_entropy },
    { "gather_rows", 1e-6, c_gather_rows },
    { "scatter_add_rows", 1e-6, c_scatter_add_rows },
    { "conv1d_causal", 1e-5, c_conv1d },
    { "selective_scan", 1e-4, c_selective_scan },
};

static double norm_err(const float *a, const float *b, size_t n) {
    double d = 0, mx = 1e-30;
    for (size_t i = 0; i < n; i++) { d = fmax(d, fabs((double)a[i] - b[i])); mx = fmax(mx, fabs((double)b[i])); }
    return d / mx;
}

/* Every slot of the table filled (a NULL slot would be a backward the GPU silently lacks). */
static void check_table(const rp_bwd_ops *t) {
    CHECK(t->name && strcmp(t->name, "cuda") == 0);
    CHECK(t->matmul && t->embed && t->rmsnorm && t->rope && t->attention && t->swiglu && t->softmax && t->log_softmax &&
          t->cross_entropy && t->gather_rows && t->scatter_add_rows && t->conv1d_causal && t->selective_scan);
}

/* A bad index leaves the gradient as it was and names the index. */
static void check_bad_index(rp_backend *be, const rp_bwd_ops *t) {
    side s = { be, { 0 }, 0, NULL, 0 };
    rng = 7;
    int32_t idx[3] = { 0, 6, 1 };
    float *dout = randv(3 * 4, 1.0f), *g = grad(&s, 6 * 4), before[24], after[24];
    CHECK(rp_backend_copy_to_host(be, before, g, sizeof before) == RP_OK);
    CHECK(t->gather_rows(NULL, g, 6, 4, put(&s, idx, sizeof idx), 3, put(&s, dout, sizeof(float) * 12)) == RP_ERR_RANGE);
    CHECK(strstr(rp_errmsg(), "index 6 at 1") != NULL);
    int32_t tg[2] = { 0, 9 };
    CHECK(t->cross_entropy(NULL, g, put(&s, dout, 8 * sizeof(float)), put(&s, tg, sizeof tg), NULL, NULL, 2, 4) == RP_ERR_RANGE);
    CHECK(strstr(rp_errmsg(), "target 9 of row 1") != NULL);
    CHECK(rp_backend_copy_to_host(be, after, g, sizeof after) == RP_OK);
    CHECK(memcmp(before, after, sizeof before) == 0);
    CHECK(t->matmul(NULL, g, g, NULL, g, g, 1, 32, g, RP_Q8_0, 34, 1) == RP_ERR_UNSUPPORTED);   /* dw of a quantized weight */
    CHECK(rp_backend_sync(be) == RP_OK);
    release(&s);
    free(dout);
}

/* Every case on table t (on be's buffers, or host memory when be is NULL) against ref on the host. */
static void run_cases(const rp_bwd_ops *t, rp_backend *be, rp_bwd *bw) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        side sr = { NULL, { 0 }, 0, NULL, 0 }, sg = { be, { 0 }, 0, NULL, 0 };
        rng = 1234 + i;
        rp_status a = cases[i].run(&rp_bwd_ref, bw, &sr);
        rng = 1234 + i;
        rp_status b = cases[i].run(t, be ? NULL : bw, &sg);
        CHECK_MSG(a == RP_OK && b == RP_OK, "%s: ref %d, %s %d: %s", cases[i].op, (int)a, t->name, (int)b, rp_errmsg());
        if (be) CHECK(rp_backend_sync(be) == RP_OK);
        CHECK(sr.n_out == sg.n_out && sr.n_out > 0);
        double e = sr.n_out == sg.n_out ? norm_err(sg.out, sr.out, sr.n_out) : INFINITY;
        CHECK_MSG(e <= cases[i].tol, "backward %s on %s: normalized error %g > %g", cases[i].op, t->name, e, cases[i].tol);
        printf("  backward %-22s %-4s vs ref: normalized error %.2g (threshold %.0g)\n", cases[i].op, t->name, e, cases[i].tol);
        release(&sr);
        release(&sg);
        free(sr.out);
        free(sg.out);
    }
}

int main(void) {
    rp_bwd *bw;
    CHECK(rp_bwd_new(NULL, &bw) == RP_OK);
    run_cases(&rp_bwd_cpu, NULL, bw);   /* the cases themselves, on the host: the cpu table meets the same thresholds */
    const rp_bwd_ops *gpu_ops = rp_backend_cuda_bwd();
    if (rp_backend_cuda_built()) check_table(gpu_ops);
    else CHECK(gpu_ops == NULL);
    rp_backend *be;
    if (rp_backend_cuda_open(&be) != RP_OK) {
        CHECK(strstr(rp_errmsg(), "cuda") != NULL);
        printf("skip [gpu]: backward ops on the cuda backend: %s\n", rp_errmsg());
    } else {
        run_cases(gpu_ops, be, bw);
        check_bad_index(be, gpu_ops);
    }
    rp_bwd_free(bw);
    return checks_done("test_ops_backward");
}
