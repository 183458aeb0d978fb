/* bench_jamba.c: the Jamba plugin's kernels and decoding against references measured in the same run.
 *  1. The selective scan forward at d_inner 1024, d_state 16, length 2048 (batch 1): rp_ssm_scan and the
 *     op table's cpu selective_scan against perf.md's hand-vectorized AVX-512 figure on machine A
 *     (7.5 ms on 1 thread, 4.3 ms on 2), scaled by this machine's fp32 FMA peak measured now against
 *     machine A's (117 / 233 GFLOP/s) -- the scan is exp-bound, i.e. compute-bound. Goal: within 1.3x.
 *     (Issue 17's text says 5.6 ms on 2 threads; the 2-thread ratio against that is printed too.)
 *  2. Its backward against its forward (goal: within 2x), on 1 and 2 threads: the backward as training runs
 *     it (from the checkpoints its forward saved; that saving forward is timed in 1 too) against the plain
 *     inference forward, and the backward that recomputes the checkpoints. One-thread figures are CPU
 *     time of the thread (a shared host's load does not inflate them); two-thread figures are wall clock.
 *     Then the vector ops per element of both as implemented and the bytes each moves (scan_op_counts).
 *  3. The MoE feed-forward (router, grouping, gathered expert SwiGLUs, weighted scatter; 16 experts, top 2,
 *     d 512, F 1792) at several token counts against two references through the same op table: the same
 *     expert matmuls as plain matmul calls at the per-expert token counts (goal: the layer at >= 0.8x
 *     their rate), and one dense matmul of the same active FLOPs (all T·K rows on one weight set).
 *  4. Decode cost per token against context for a Jamba-pattern model (1:7, MoE every 2 layers) and an
 *     attention-only Mixtral-pattern model of the same width, with caches filled synthetically to each
 *     context (no prefill), split by layer kind (rp_jamba_model_time_layers): the Mamba layers' cost should
 *     stay flat, the attention layers' grow linearly, so the hybrid's total grows at its attention share
 *     (1 layer in 8) of attention-only's slope; printed as PASS/FAIL lines with their thresholds. Twice: on
 *     2 threads by wall clock, and on 1 thread by the thread's CPU time, which a shared host's load does not
 *     inflate (the 2-thread table's pool waits it does).
 * Medians of repeated runs; the load average is printed (the host is shared).
 * Usage: bench_jamba [--quick] [--scan] [--moe] [--decode]   (--scan: only the scan's forward and backward, 1 and 2;
 *        --moe: only the MoE table and its PASS/FAIL line, 3; --decode: only the decode table, 4) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/blas_core.h"
#include "bench_calib.h"
#include "plugins/jamba/jamba.h"
#include "tensor/backend.h"
#include "tensor/backward.h"
#include "tensor/ops_ref.h"
#include "tensor/ssm.h"

/* CPU seconds of this thread: what a 1-thread kernel costs whatever else the shared host runs. */
static double thread_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float *rnd(size_t n, float lo, float hi, unsigned *s) {
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) { *s = *s * 1664525u + 1013904223u; v[i] = lo + (hi - lo) * (float)(*s >> 8) / 16777216.0f; }
    return v;
}

typedef struct scan_in { int64_t T, D, N; float *x, *dt, *A, *B, *C, *Dk, *st, *y; } scan_in;

/* Median milliseconds of the scan: wall clock, or with cpu != 0 (one thread, on the caller) CPU time,
 * which a shared host's other load does not inflate. be: the op table's scan; else rp_ssm_scan on pool.
 * ck: NULL (inference), or where a training step's forward saves the checkpoints for its backward. */
static double time_scan(scan_in *s, rp_pool *pool, rp_backend *be, int reps, int cpu, float *ck) {
    double v[16];
    for (int r = -1; r < reps; r++) {   /* one untimed run first: the output's pages touched */
        memset(s->st, 0, (size_t)(s->D * s->N) * sizeof(float));
        double t0 = cpu ? thread_s() : now_s();
        if (be) RP_BACKEND_CALL(be, selective_scan, s->y, s->x, s->dt, s->A, s->B, s->C, s->Dk, s->T, s->D, s->N, s->st, ck);
        else rp_ssm_scan(pool, s->T, s->D, s->N, s->x, s->dt, s->A, s->B, s->C, s->Dk, s->st, s->y, ck);
        if (r >= 0) v[r] = (cpu ? thread_s() : now_s()) - t0;
    }
    return median(v, reps) * 1e3;
}

/* The cpu scan backward and the inference forward in alternation (a round: one of each), so that both see
 * the same share of a shared host: with pool NULL on the caller's thread (CPU time), else on the pool (wall
 * clock); the backward from the forward's checkpoints ck, or recomputing them (ck NULL). Medians in ms, and
 * the median of the rounds' backward / forward ratios; -1 on error (rp_errmsg says why). */
typedef struct scan_pair { double fwd, bwd, ratio; } scan_pair;
static int time_scan_pair(scan_in *s, rp_pool *pool, const float *dy, float *const g[6], int reps, const float *ck, scan_pair *out) {
    double f[16], b[16], q[16];
    rp_bwd *bw = NULL;
    if (rp_bwd_new(pool, &bw) != RP_OK) return -1;
    for (int r = -1; r < reps; r++) {   /* one untimed round first: scratch grown, pages touched */
        memset(s->st, 0, (size_t)(s->D * s->N) * sizeof(float));
        double t0 = pool ? now_s() : thread_s();
        rp_ssm_scan(pool, s->T, s->D, s->N, s->x, s->dt, s->A, s->B, s->C, s->Dk, s->st, s->y, NULL);
        double t1 = pool ? now_s() : thread_s();
        if (rp_bwd_cpu.selective_scan(bw, g[0], g[1], g[2], g[3], g[4], g[5], dy, s->x, s->dt, s->A, s->B, s->C, s->Dk, s->T, s->D,
                                      s->N, ck) != RP_OK) {
            rp_bwd_free(bw);
            return -1;
        }
        double t2 = pool ? now_s() : thread_s();
        if (r >= 0) { f[r] = t1 - t0; b[r] = t2 - t1; q[r] = b[r] / f[r]; }
    }
    rp_bwd_free(bw);
    out->fwd = median(f, reps) * 1e3; out->bwd = median(b, reps) * 1e3; out->ratio = median(q, reps);
    return 0;
}

/* The vector ops per vector element (one step, one state, 16 channels with AVX-512, 8 with AVX2) of
 * tensor/ssm.c's N = 16 kernels as implemented, counted by hand from their loops (recount when those loops
 * change), and the bytes each moves to and from memory at this shape: what bounds the backward / forward
 * ratio whatever the scheduling. */
static void scan_op_counts(const scan_in *s) {
#if !defined(__AVX512F__) && defined(__AVX2__) && defined(__FMA__)
    const int lanes = 8;
    const double fwd_elem = 11 + 1 + 1 + 1;          /* exp (the fast one); u·B; s = a·s + u·B; y += C·s */
    const double fwd_step = (3 + 2 + 4) / 16.0;      /* per step and block: u, Dskip·x, y0 + y1; the other pass's two adds; the fast-exp check */
    const double bwd_red = 2 * (9.0 / 8 + 0.25 / 4) / 32;   /* dB, dC: 8x8 hadd transpose-sums and 4-wide adds, over a 32-block group */
    const double bwd_re = 11 + 1 + 1 + (1 + 4) / 4.0;   /* a chunk's decays again (fast exp) and its states; u and the fast-exp check per step */
    const double bwd_adj = 8 + 1.0 / 4;              /* g += dy·C; dC, dB lane terms; Σ g·B; g·a; da; Σ da·A; dA; u per step */
#else
    const int lanes = 16;
    const double fwd_elem = 11 + 1 + 1 + 1;          /* exp; u·B; s = a·s + u·B; y += C·s */
    const double fwd_step = 3.0 / 16;                /* per step and block: u = dt·x, Dskip·x, y0 + y1; over 16 states */
    const double bwd_red = 2 * (46.0 / 16 + 0.25) / 32;   /* dB, dC: 16x16 transpose-sums and the add, over a 32-block group */
    const double bwd_re = 11 + 1 + 1 + 1 + 1.0 / 4;  /* a chunk's decays again (exp), its states, the dC lane term; u per step */
    const double bwd_adj = 7 + 1.0 / 4;              /* g += dy·C; dB lane term; Σ g·B; g·a; da; Σ da·A; dA; u per step */
#endif
    const double bwd_fin = 6.0 / 16;                 /* dx (3), ddt (2), dDskip (1) per step and block */
    const double f = fwd_elem + fwd_step, b = bwd_re + bwd_adj + bwd_red + bwd_fin;
    const double TD = (double)(s->T * s->D) * 4 / 1e6;
    printf("vector ops per %d-lane element as implemented (counted from ssm.c / ssm_avx2.c): forward %.1f (exp 11), backward\n"
           " from the forward's checkpoints %.1f = decays and states again %.2f + adjoint %.2f + dB/dC reductions %.2f + dx/ddt\n"
           " %.2f: the backward's floor is %.2fx its forward at equal issue rate. Memory: forward reads dt, x and writes y (%.0f MB\n"
           " with y's read for ownership); backward reads dt, x, dy and reads and writes dx, ddt (%.0f MB), and keeps in L1 or L2\n"
           " each chunk's decays and states, so it runs further from its issue bound than the forward does.\n",
           lanes, f, b, bwd_re, bwd_adj, bwd_red, bwd_fin, b / f, 4 * TD, 7 * TD);
}

static rp_jamba_config decode_config(const char *base, int attention_only) {
    rp_jamba_config c;
    rp_jamba_config_get(base, &c);
    c.n_layer = 8; c.block_len = 8; c.d_model = 256; c.n_head = 8; c.n_head_kv = 2; c.head_dim = 32; c.ffn_dim = 896;
    c.vocab = 1024; c.dt_rank = 16;
    if (attention_only) { c.attn = 1; c.mamba = 0; c.attn_offset = 0; c.block_len = 1; }
    return c;
}

/* One decoding step's wall milliseconds, in all and per layer kind, as samples pooled over rounds. */
typedef struct decode_samples { int n; double total[256], attn[256], mamba[256], ffn[256], other[256]; } decode_samples;

/* `steps` timed decoding steps of m after ctx cached tokens (a fresh cache filled synthetically, then `warm`
 * untimed steps so that first-touch costs fall outside), each split per layer kind; appended to d. cpu: the
 * calling thread's CPU time (for a one-thread backend), else wall clock. */
static void decode_steps(rp_jamba_model *m, int ctx, int warm, int steps, int cpu, decode_samples *d) {
    rp_jamba_cache *k = NULL;
    if (rp_jamba_cache_new(m, ctx + warm + steps, &k) != RP_OK || rp_jamba_cache_fill(k, ctx, 7) != RP_OK) {
        fprintf(stderr, "decode: %s\n", rp_errmsg()); exit(1);
    }
    int32_t tok = 1;
    for (int i = 0; i < warm + steps; i++) {
        rp_jamba_layer_times t = { 0, 0, 0, 0, 0, cpu };
        rp_jamba_model_time_layers(m, &t);
        double t0 = cpu ? thread_s() : now_s();
        if (rp_jamba_forward(m, k, &tok, 1, NULL, 1, NULL) != RP_OK) { fprintf(stderr, "decode: %s\n", rp_errmsg()); exit(1); }
        double dt = (cpu ? thread_s() : now_s()) - t0;
        rp_jamba_model_time_layers(m, NULL);
        if (i < warm || d->n >= 256) continue;
        d->total[d->n] = dt * 1e3; d->attn[d->n] = t.attn * 1e3; d->mamba[d->n] = t.mamba * 1e3;
        d->ffn[d->n] = (t.moe + t.mlp) * 1e3; d->other[d->n] = t.other * 1e3;
        d->n++;
    }
    rp_jamba_cache_free(k);
}

/* Least-squares slope of y against x (n points) and the fit's R^2. */
static double fit_slope(const double *x, const double *y, int n, double *r2) {
    double mx = 0, my = 0, sxx = 0, sxy = 0, syy = 0;
    for (int i = 0; i < n; i++) { mx += x[i] / n; my += y[i] / n; }
    for (int i = 0; i < n; i++) { sxx += (x[i] - mx) * (x[i] - mx); sxy += (x[i] - mx) * (y[i] - my); syy += (y[i] - my) * (y[i] - my); }
    *r2 = syy > 0 ? sxy * sxy / (sxx * syy) : 1;
    return sxy / sxx;
}

/* Median wall milliseconds of the three SwiGLU matmuls (gate, up: [M, d]·[F, d]^T; down: [M, F]·[d, F]^T)
 * on `parts` row blocks of M rows each, each block on its own weights (parts experts) or all on one. */
static double ffn_matmuls_ms(rp_backend *be, int64_t M, int parts, int64_t d, int64_t F, const float *x, float *g, float *u,
                             float *y, float *const *w, int reps) {
    double v[16];
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        for (int p = 0; p < parts; p++) {
            const float *wg = w[3 * p], *wu = w[3 * p + 1], *wd = w[3 * p + 2];
            if (RP_BACKEND_CALL(be, matmul, g, x, M, d, wg, RP_F32, (size_t)d * 4, F) != RP_OK ||
                RP_BACKEND_CALL(be, matmul, u, x, M, d, wu, RP_F32, (size_t)d * 4, F) != RP_OK ||
                RP_BACKEND_CALL(be, swiglu, g, g, u, M * F) != RP_OK ||
                RP_BACKEND_CALL(be, matmul, y, g, M, F, wd, RP_F32, (size_t)F * 4, d) != RP_OK) { fprintf(stderr, "%s\n", rp_errmsg()); exit(1); }
        }
        v[r] = now_s() - t0;
    }
    return median(v, reps) * 1e3;
}

static int moe_bench(rp_backend *be, int quick) {
    rp_jamba_config c = decode_config("jamba-v0.1-tiny", 0);
    c.d_model = 512; c.n_head = 8; c.head_dim = 64; c.ffn_dim = 1792;
    int layer = 0;
    while (layer < c.n_layer && !rp_jamba_layer_is_moe(&c, layer)) layer++;
    rp_jamba_model *m = NULL;
    rp_jamba_cache *k = NULL;
    const int64_t d = c.d_model, F = c.ffn_dim, E = c.n_experts, K = c.top_k, Tmax = quick ? 512 : 2048;
    if (E > 16) { fprintf(stderr, "moe bench: %lld experts (at most 16)\n", (long long)E); return 1; }
    if (layer == c.n_layer || rp_jamba_model_new(&c, 3, be, &m) != RP_OK || rp_jamba_cache_new(m, (int)Tmax, &k) != RP_OK) {
        fprintf(stderr, "moe bench: %s\n", layer == c.n_layer ? "no MoE layer" : rp_errmsg()); return 1;
    }
    unsigned seed = 5;
    float *u = rnd((size_t)(Tmax * d), -1, 1, &seed), *out = malloc((size_t)(Tmax * d) * 4);
    float *xg = rnd((size_t)(Tmax * K * d), -1, 1, &seed), *g = malloc((size_t)(Tmax * K * F) * 4), *up = malloc((size_t)(Tmax * K * F) * 4);
    float *yo = malloc((size_t)(Tmax * K * d) * 4), *w[48];
    for (int i = 0; i < 3 * E; i++) w[i] = rnd((size_t)(d * F), -0.05f, 0.05f, &seed);
    printf("\n== MoE feed-forward (%lld experts, top %lld, d %lld, F %lld; 2 threads, wall clock) vs matmuls of the same active FLOPs ==\n",
           (long long)E, (long long)K, (long long)d, (long long)F);
    printf("%7s %9s %11s %22s %20s %12s %12s\n", "tokens", "per-exp.", "MoE ms", "per-expert matmuls ms", "dense matmul ms", "MoE/per-exp", "MoE/dense");
    int reps = quick ? 3 : 7;
    double worst = INFINITY;
    int64_t worst_T = 0;
    for (int64_t T = 64; T <= Tmax; T *= 4) {
        double v[16];
        for (int r = 0; r < reps; r++) {
            double t0 = now_s();
            if (rp_jamba_ffn_forward(m, k, layer, u, (int)T, out) != RP_OK) { fprintf(stderr, "%s\n", rp_errmsg()); return 1; }
            v[r] = now_s() - t0;
        }
        double moe = median(v, reps) * 1e3, Me = (double)(T * K) / (double)E;
        double per = ffn_matmuls_ms(be, T * K / E, (int)E, d, F, xg, g, up, yo, w, reps);
        double dense = ffn_matmuls_ms(be, T * K, 1, d, F, xg, g, up, yo, w, reps);
        printf("%7lld %9.0f %11.2f %22.2f %20.2f %11.2fx %11.2fx\n", (long long)T, Me, moe, per, dense, per / moe, dense / moe);
        if (per / moe < worst) { worst = per / moe; worst_T = T; }
    }
    printf("(a ratio is the reference's time over the MoE layer's: the layer's rate as a fraction of the reference's; goal >= 0.8x\n against the per-expert matmuls; routing is random-init, so per-expert counts vary around the mean shown)\n");
    printf("%s  MoE layer at >= 0.8x the sgemm rate at its per-expert token counts: worst x%.2f (%lld tokens)   [pass: >= 0.80x at every count]\n",
           worst >= 0.8 ? "PASS" : "FAIL", worst, (long long)worst_T);
    for (int i = 0; i < 3 * E; i++) free(w[i]);
    free(u); free(out); free(xg); free(g); free(up); free(yo);
    rp_jamba_cache_free(k);
    rp_jamba_model_free(m);
    return 0;
}

/* Decode cost per token against context, in all and per layer kind, for the hybrid and attention-only
 * (section 4), with pass/fail lines for the three claims: the Mamba layers' cost flat, the attention layers'
 * linear in context, the hybrid's growth about its attention share (1 layer in 8) of attention-only's.
 * be: the backend (its threads); cpu: time by the calling thread's CPU clock (a one-thread backend). */
static int decode_bench(rp_backend *be2, int quick, int cpu) {
    rp_jamba_config cj = decode_config("jamba-v0.1-tiny", 0), ca = decode_config("mixtral-8x7b-tiny", 1);
    rp_jamba_model *mj = NULL, *ma = NULL;
    if (rp_jamba_model_new(&cj, 1, be2, &mj) != RP_OK || rp_jamba_model_new(&ca, 1, be2, &ma) != RP_OK) { fprintf(stderr, "%s\n", rp_errmsg()); return 1; }
    rp_jamba_counts kj, ka;
    rp_jamba_count(&cj, &kj); rp_jamba_count(&ca, &ka);
    enum { NCTX = 7 };
    const int rounds = quick ? 1 : 3, steps = quick ? 5 : 9, warm = 3, n_ctx = quick ? 5 : NCTX;
    static decode_samples sj[NCTX], sa[NCTX];
    memset(sj, 0, sizeof sj); memset(sa, 0, sizeof sa);
    int ctxs[NCTX];
    for (int i = 0; i < n_ctx; i++) ctxs[i] = 512 << i;
    /* rounds over the whole sweep, the two models interleaved: a burst of load on the shared host lands in
     * one round's samples of a few contexts, and the medians over all rounds' steps drop it */
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < n_ctx; i++) { decode_steps(mj, ctxs[i], warm, steps, cpu, &sj[i]); decode_steps(ma, ctxs[i], warm, steps, cpu, &sa[i]); }
    printf("\n== decode cost per token vs context, split by layer kind (%d thread%s, %s; d 256, 8 layers; caches filled to the context;\n"
           "   medians of %d steps: %d rounds over the sweep x %d steps after %d warm-up steps) ==\n", rp_pool_size(be2->pool),
           rp_pool_size(be2->pool) > 1 ? "s" : "", cpu ? "CPU time of the thread" : "wall clock", rounds * steps, rounds, steps, warm);
    printf("hybrid: 1:7 attention:Mamba (%d attention, %d Mamba layers), MoE every 2 (16 experts, top 2), %.2fM active params;\n"
           "attention-only: %d attention layers, MoE every layer (8 experts, top 2), %.2fM active. ms per token:\n",
           kj.n_attn, kj.n_mamba, kj.active / 1e6, ka.n_attn, ka.active / 1e6);
    printf("%8s | %8s %8s %8s %8s %8s | %8s %8s %8s %8s | %7s\n", "context", "hybrid", "Mamba", "attn", "FFN", "other", "attn-only", "attn", "FFN",
           "other", "ratio");
    double x[NCTX], jt[NCTX], jm[NCTX], ja[NCTX], at[NCTX], aa[NCTX];
    for (int i = 0; i < n_ctx; i++) {
        decode_samples *j = &sj[i], *a = &sa[i];
        x[i] = ctxs[i];
        jt[i] = median(j->total, j->n); jm[i] = median(j->mamba, j->n); ja[i] = median(j->attn, j->n);
        at[i] = median(a->total, a->n); aa[i] = median(a->attn, a->n);
        printf("%8d | %8.3f %8.3f %8.3f %8.3f %8.3f | %9.3f %8.3f %8.3f %8.3f | %6.2fx\n", ctxs[i], jt[i], jm[i], ja[i], median(j->ffn, j->n),
               median(j->other, j->n), at[i], aa[i], median(a->ffn, a->n), median(a->other, a->n), at[i] / jt[i]);
    }
    const int l = n_ctx - 1, maxc = ctxs[l];
    double r2a, r2j, slope_a = fit_slope(x, aa, n_ctx, &r2a) / ka.n_attn, slope_j = fit_slope(x, ja, n_ctx, &r2j) / kj.n_attn;
    /* the flat check's base: the mean of the two shortest contexts (one row alone moves by 10-20% on a shared host) */
    double mbase = n_ctx > 1 ? 0.5 * (jm[0] + jm[1]) : jm[0], mamba_growth = jm[l] / mbase, share = (double)kj.n_attn / ka.n_attn;
    double growth_ratio = (jt[l] - jt[0]) / (at[l] - at[0]);
    printf("from 512 to %d tokens (x%d): hybrid total x%.2f, attention-only total x%.2f\n", maxc, maxc / 512, jt[l] / jt[0], at[l] / at[0]);
    printf("%s  Mamba layers' cost flat: x%.2f from 512-1024 to %d tokens (%.3f -> %.3f ms for %d layers)   [pass: <= 1.20x]\n",
           mamba_growth <= 1.2 ? "PASS" : "FAIL", mamba_growth, maxc, mbase, jm[l], kj.n_mamba);
    printf("%s  attention layers' cost linear in context: per layer %.2f us per 1K tokens (attention-only, R^2 %.3f), %.2f (hybrid, R^2 %.3f)   [pass: R^2 >= 0.95 both]\n",
           r2a >= 0.95 && r2j >= 0.95 ? "PASS" : "FAIL", slope_a * 1e6, r2a, slope_j * 1e6, r2j);
    printf("%s  per-layer attention slope the same in both models: hybrid / attention-only %.2f   [pass: within 0.67-1.5]\n",
           slope_j / slope_a >= 0.67 && slope_j / slope_a <= 1.5 ? "PASS" : "FAIL", slope_j / slope_a);
    printf("%s  hybrid's growth / attention-only's growth (512 -> %d): %.3f, its attention share %d/%d = %.3f   [pass: within 1.5x of the share]\n",
           growth_ratio >= share / 1.5 && growth_ratio <= share * 1.5 ? "PASS" : "FAIL", maxc, growth_ratio, kj.n_attn, ka.n_attn, share);
    rp_jamba_model_free(mj); rp_jamba_model_free(ma);
    return 0;
}

int main(int argc, char **argv) {
    rp_blas_core_ensure(argv);   /* OpenBLAS on its AVX2 kernels where it would not pick them (cli/blas_core.h) */
    int quick = 0, scan_only = 0, decode_only = 0, moe_only = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) quick = 1;
        else if (strcmp(argv[i], "--scan") == 0) scan_only = 1;
        else if (strcmp(argv[i], "--decode") == 0) decode_only = 1;
        else if (strcmp(argv[i], "--moe") == 0) moe_only = 1;
        else { fprintf(stderr, "bench_jamba: unknown argument '%s' (usage: bench_jamba [--quick] [--scan] [--moe] [--decode])\n", argv[i]); return 2; }
    }
    rp_backend *be1, *be2;
    if (rp_backend_cpu_new(1, &be1) != RP_OK || rp_backend_cpu_new(2, &be2) != RP_OK) { fprintf(stderr, "%s\n", rp_errmsg()); return 1; }
    double peak1 = fma_peak(be1->pool, 1, 0), peak2 = fma_peak(be2->pool, 2, 0), peak1c = fma_peak(be1->pool, 1, 1), l1 = 0;
    FILE *la = fopen("/proc/loadavg", "r");
    if (la) { if (fscanf(la, "%lf", &l1) != 1) l1 = 0; fclose(la); }
    printf("== machine (measured now) ==\nfp32 FMA peak %.0f GFLOP/s (1 thread), %.0f (2 threads), %.0f per CPU-second  [perf.md machine A: 117 / 233]; load average %.1f on %d CPUs\n",
           peak1, peak2, peak1c, l1, rp_cpus_online());
    if (moe_only) {
        int rc = moe_bench(be2, quick);
        rp_backend_cpu_free(be1); rp_backend_cpu_free(be2);
        return rc;
    }
    if (decode_only) {
        int rc = decode_bench(be2, quick, 0) || decode_bench(be1, quick, 1);
        rp_backend_cpu_free(be1); rp_backend_cpu_free(be2);
        return rc;
    }

    /* 1. scan forward */
    unsigned seed = 1;
    scan_in s = { 2048, 1024, 16, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL };
    size_t TD = (size_t)(s.T * s.D), DN = (size_t)(s.D * s.N), TN = (size_t)(s.T * s.N);
    s.x = rnd(TD, -1, 1, &seed); s.dt = rnd(TD, 0.001f, 0.1f, &seed); s.B = rnd(TN, -1, 1, &seed); s.C = rnd(TN, -1, 1, &seed);
    s.Dk = rnd((size_t)s.D, 0.5f, 1.5f, &seed); s.A = malloc(DN * sizeof(float)); s.st = calloc(DN, sizeof(float)); s.y = malloc(TD * sizeof(float));
    for (int64_t c = 0; c < s.D; c++) for (int n = 0; n < 16; n++) s.A[c * 16 + n] = -(float)(n + 1);
    int reps = quick ? 3 : 9;
    float *ck = calloc(rp_scan_ckpt_floats(s.T, s.D, s.N), sizeof(float));
    double ours1 = time_scan(&s, be1->pool, NULL, reps, 1, NULL), ours2 = time_scan(&s, be2->pool, NULL, reps, 0, NULL);
    double op1 = time_scan(&s, NULL, be1, reps, 1, NULL), op2 = time_scan(&s, NULL, be2, reps, 0, NULL);
    double sv1 = time_scan(&s, be1->pool, NULL, reps, 1, ck), sv2 = time_scan(&s, be2->pool, NULL, reps, 0, ck);
    double ref_t0 = thread_s();
    rp_ref_selective_scan(NULL, s.y, s.x, s.dt, s.A, s.B, s.C, s.Dk, s.T, s.D, s.N, s.st, NULL);
    double plain = (thread_s() - ref_t0) * 1e3;
    /* perf.md's hand-vectorized figure scaled to this machine: 1 thread by the per-CPU-second peak (CPU
     * time), 2 threads by the 2-thread wall-clock peak (wall time) */
    double hv1 = 7.5 * 117 / peak1c, hv2 = 4.3 * 233 / peak2, hv2_issue = 5.6 * 233 / peak2;
    printf("\n== selective scan forward, d_inner 1024, d_state 16, length 2048 (median of %d) ==\n", reps);
    printf("%-44s %14s %14s\n", "", "1 thread (CPU)", "2 threads (wall)");
    printf("%-44s %11.2f ms %11.2f ms\n", "rp_ssm_scan (tensor/ssm.c)", ours1, ours2);
    printf("%-44s %11.2f ms %11.2f ms\n", "op table cpu selective_scan", op1, op2);
    printf("%-44s %11.2f ms %11.2f ms\n", "rp_ssm_scan saving checkpoints (training)", sv1, sv2);
    printf("%-44s %11.2f ms   (perf.md: 111.5 ms)\n", "plain reference (libm expf)", plain);
    /* a 2-thread calibration well under twice the 1-thread one means the second CPU was busy (the host is shared):
     * scaling by it would make the 2-thread goal too easy, so no 2-thread ratio is printed then */
    const int two = peak2 >= 1.6 * peak1;
    if (two) printf("%-44s %11.2f ms %11.2f ms   (7.5 / 4.3 ms on machine A, scaled by the FMA peak)\n", "perf.md hand-vectorized AVX-512", hv1, hv2);
    else printf("%-44s %11.2f ms %14s   (7.5 ms on machine A, scaled by the FMA peak)\n", "perf.md hand-vectorized AVX-512", hv1, "-");
    printf("calibrations: 2-thread wall %.0f GFLOP/s = %.2fx the 1-thread wall %.0f%s\n", peak2, peak2 / peak1, peak1,
           two ? "" : " (below 1.6x: the second CPU was busy, so no 2-thread ratio below)");
    if (two) {
        printf("rp_ssm_scan / hand-vectorized: %.2fx (1 thread), %.2fx (2 threads)   [goal <= 1.3x]\n", ours1 / hv1, ours2 / hv2);
        printf("2 threads against issue 17's \"5.6 ms at 2 threads on machine A\" instead of perf.md's 4.3 ms: %.2fx (the goal uses perf.md's 4.3)\n",
               ours2 / hv2_issue);
        printf("op table scan / hand-vectorized: %.2fx (1 thread), %.2fx (2 threads)\n", op1 / hv1, op2 / hv2);
    } else {
        printf("rp_ssm_scan / hand-vectorized: %.2fx (1 thread)   [goal <= 1.3x]\n", ours1 / hv1);
        printf("op table scan / hand-vectorized: %.2fx (1 thread)\n", op1 / hv1);
    }

    /* 2. backward */
    float *dy = rnd(TD, -1, 1, &seed), *g[6] = { calloc(TD, 4), calloc(TD, 4), calloc(DN, 4), calloc(TN, 4), calloc(TN, 4), calloc((size_t)s.D, 4) };
    scan_pair p1, p2, r1, r2;
    if (time_scan_pair(&s, NULL, dy, g, reps, ck, &p1) || time_scan_pair(&s, be2->pool, dy, g, reps, ck, &p2) ||
        time_scan_pair(&s, NULL, dy, g, reps, NULL, &r1) || time_scan_pair(&s, be2->pool, dy, g, reps, NULL, &r2)) {
        fprintf(stderr, "%s\n", rp_errmsg());
        return 1;
    }
    printf("\n== selective scan backward (same shape; 1 thread CPU time, 2 threads wall clock; median of %d rounds of forward + backward) ==\n", reps);
    printf("from the training forward's checkpoints (as training runs it), against the inference forward of the same rounds:\n");
    printf("backward %.2f ms = %.2fx its forward (%.2f ms), 1 thread   [goal <= 2x]\n", p1.bwd, p1.ratio, p1.fwd);
    printf("backward %.2f ms = %.2fx its forward (%.2f ms), 2 threads\n", p2.bwd, p2.ratio, p2.fwd);
    printf("recomputing the checkpoints (no saved forward): %.2f ms = %.2fx (1 thread), %.2f ms = %.2fx (2 threads)\n",
           r1.bwd, r1.ratio, r2.bwd, r2.ratio);
    scan_op_counts(&s);

    /* 3. MoE feed-forward against matmuls of the same FLOPs; 4. decode cost per token against context */
    if (!scan_only && (moe_bench(be2, quick) != 0 || decode_bench(be2, quick, 0) != 0 || decode_bench(be1, quick, 1) != 0)) return 1;

    free(s.x); free(s.dt); free(s.B); free(s.C); free(s.Dk); free(s.A); free(s.st); free(s.y);
    free(dy); free(ck);
    for (int i = 0; i < 6; i++) free(g[i]);
    rp_backend_cpu_free(be1); rp_backend_cpu_free(be2);
    return 0;
}
