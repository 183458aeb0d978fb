/* bench_inference.c: inference speed of the engine against llama.cpp's figures.
 * Measures, in the same run: this machine's fp32 FMA peak (a register-only FMA loop) and read bandwidth
 * (a read-only sum over 256 MB), then SmolLM2-135M-Instruct Q4_1 prompt processing (pp512) and generation
 * (tg128) on 1 and 2 threads, and stories260K's per-token cost. Prints tokens/s, the fraction of peak /
 * bandwidth reached, and ratios against llama.cpp's machine-A figures in shared/reference/perf.md
 * (commit c392e509: pp512 Q4_1 159 / 310, F32 258 / 479; tg128 Q4_1 120 / 166; stories260K 123 µs per
 * token fixed cost). Medians of repeated runs (the host is noisy). Usage: bench_inference [--quick] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cli/blas_core.h"
#include "nn/llama.h"
#include "tensor/backend.h"
#include "tensor/pool.h"
#include "bench_calib.h"
#include "bench_model.h"

/* Tokens per CPU-second of the last pp / tg call (1 thread: what the machine would give unshared). */
static double last_cpu_rate;

typedef struct bw_ctx { const float *x; size_t n; double sum[64]; } bw_ctx;
static void bw_task(void *arg, int ith, int nth, int thread) {
    (void)thread;
    bw_ctx *c = arg;
    size_t per = c->n / (size_t)nth / 64 * 64, i0 = per * (size_t)ith, i1 = ith == nth - 1 ? c->n : i0 + per;
    bench_vf s0 = { 0 }, s1 = { 0 }, s2 = { 0 }, s3 = { 0 };
    const size_t L = RP_FMA_LANES;
    for (size_t i = i0; i + 4 * L <= i1; i += 4 * L) {
        s0 += *(const bench_vf *)(c->x + i);
        s1 += *(const bench_vf *)(c->x + i + L);
        s2 += *(const bench_vf *)(c->x + i + 2 * L);
        s3 += *(const bench_vf *)(c->x + i + 3 * L);
    }
    bench_vf s = (s0 + s1) + (s2 + s3);
    double t = 0;
    for (size_t k = 0; k < L; k++) t += s[k];
    c->sum[ith] = t;
}
static double read_bw(rp_pool *p, int nth, const float *x, size_t n, int cpu) {
    bw_ctx c = { x, n, { 0 } };
    double v[5];
    for (int r = 0; r < 5; r++) {
        double t0 = cpu ? cpu_s() : now_s();
        rp_pool_run(p, bw_task, &c, nth);
        v[r] = (double)n * 4 / ((cpu ? cpu_s() : now_s()) - t0) / 1e9;
    }
    return median(v, 5);
}

/* ---- model workloads ---- */
static double pp(rp_model *m, rp_session *s, int n, int reps) { return bench_pp(m, s, n, reps, &last_cpu_rate); }
static double tg(rp_model *m, rp_session *s, int n, int reps) {
    double v[8], c[8];
    int V = rp_model_config(m)->vocab;
    for (int r = 0; r < reps; r++) {
        rp_session_reset(s);
        int32_t tok = 1 % V;
        float *lg = malloc(sizeof(float) * (size_t)V);   /* the logits copied out each step, as generation does */
        double t0 = now_s(), c0 = cpu_s();
        for (int i = 0; i < n; i++) {
            if (rp_session_forward(s, &tok, 1, RP_LOGITS_LAST, lg, NULL) != RP_OK) { fprintf(stderr, "tg: %s\n", rp_errmsg()); exit(1); }
            int best = 0;
            for (int k = 1; k < V; k++) if (lg[k] > lg[best]) best = k;
            tok = best;
        }
        v[r] = n / (now_s() - t0);
        c[r] = n / (cpu_s() - c0);
        free(lg);
    }
    last_cpu_rate = median(c, reps);
    return median(v, reps);
}

/* FLOPs per token of a forward over T tokens (matmuls of the layers + attention; head once per batch). */
static double flops_per_token(const rp_llama_config *c, int T) {
    double C = c->dim, kvd = (double)c->n_head_kv * c->head_dim, F = c->ffn_dim;
    double lin = 2.0 * (2 * C * C + 2 * C * kvd + 3 * C * F) * c->n_layer;
    double att = 2.0 * 2.0 * C * ((T + 1) / 2.0) * c->n_layer;
    return lin + att + 2.0 * C * c->vocab / T;
}
/* Bytes of weights read per generated token. */
static double weight_bytes(const rp_model_file *f) {
    double b = 0;
    for (int i = 0; i < rp_model_file_n_weights(f); i++) {
        const rp_weight *w = rp_model_file_weight_at(f, i);
        if (strcmp(w->name, "token_embd.weight") == 0 && rp_model_file_weight(f, "output.weight")) continue;  /* lookup only */
        b += (double)w->nbytes;
    }
    return b;
}

int main(int argc, char **argv) {
    rp_blas_core_ensure(argv);   /* OpenBLAS on its AVX2 kernels where it would not pick them (cli/blas_core.h) */
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    /* --peer PP1 PP2 TG1 TG2: llama.cpp measured in this run (bench_peer_llamacpp.sh) replaces perf.md's figures */
    double peer[4] = { 0, 0, 0, 0 };
    int have_peer = argc > 5 && strcmp(argv[1], "--peer") == 0;
    if (have_peer) for (int i = 0; i < 4; i++) peer[i] = atof(argv[2 + i]);
    const char *mirror = getenv("REPRO_MIRROR");
    char path[4096];
    rp_backend *be1, *be2;
    if (rp_backend_cpu_new(1, &be1) != RP_OK || rp_backend_cpu_new(2, &be2) != RP_OK) { fprintf(stderr, "%s\n", rp_errmsg()); return 1; }
    printf("== machine limits (measured now) ==\n");
    double peak1 = fma_peak(be1->pool, 1, 0), peak2 = fma_peak(be2->pool, 2, 0), peak1c = fma_peak(be1->pool, 1, 1);
    double l1 = 0;
    FILE *la = fopen("/proc/loadavg", "r");
    if (la) { if (fscanf(la, "%lf", &l1) != 1) l1 = 0; fclose(la); }
    printf("load average %.1f on %d CPUs%s\n", l1, rp_cpus_online(), l1 > rp_cpus_online() ? " (shared machine: wall-clock figures understate; see CPU-time rates)" : "");
    size_t nbw = (size_t)64 << 20;
    float *buf = aligned_alloc(64, nbw * 4);
    for (size_t i = 0; i < nbw; i++) buf[i] = (float)(i & 7);
    double bw1 = read_bw(be1->pool, 1, buf, nbw, 0), bw2 = read_bw(be2->pool, 2, buf, nbw, 0), bw1c = read_bw(be1->pool, 1, buf, nbw, 1);
    free(buf);
    printf("fp32 FMA peak: %.0f GFLOP/s (1 thread), %.0f (2 threads)   [perf.md machine A: 117 / 233]\n", peak1, peak2);
    printf("read bandwidth: %.1f GB/s (1 thread), %.1f (2 threads)   [machine A: 24.7 / 31.4]\n", bw1, bw2);
    printf("per CPU-second (1 thread): fp32 peak %.0f GFLOP/s, read bandwidth %.1f GB/s\n", peak1c, bw1c);

    if (mirror) {
        snprintf(path, sizeof path, "%s/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf", mirror);
        rp_model *m;
        rp_model_opts o = { 0 };
        if (rp_model_load(path, &o, &m) == RP_OK) {
            const rp_llama_config *c = rp_model_config(m);
            double fpt = flops_per_token(c, 512), wb = weight_bytes(rp_model_file_of(m));
            printf("\n== SmolLM2-135M-Instruct Q4_1 (%.1f MB of weights read per token, %.3f GFLOP per token at 512) ==\n", wb / 1e6, fpt / 1e9);
            rp_session *s;
            if (rp_session_new(m, 1024, 512, 1, &s) != RP_OK) { fprintf(stderr, "%s\n", rp_errmsg()); return 1; }
            int reps = quick ? 1 : 3;
            rp_backend *bes[2] = { be1, be2 };
            double pk[2] = { peak1, peak2 }, bw[2] = { bw1, bw2 };
            double ref_pp[2] = { 159, 310 }, ref_pp_f32[2] = { 258, 479 }, ref_tg[2] = { 120, 166 };
            if (have_peer) {
                ref_pp[0] = peer[0]; ref_pp[1] = peer[1]; ref_tg[0] = peer[2]; ref_tg[1] = peer[3];
                printf("ratios below are against llama.cpp measured now (Q4_1 rows); F32 ratios still use perf.md machine A\n");
            } else {
                printf("ratios below are against perf.md machine A (llama.cpp c392e509)\n");
            }
            for (int k = 0; k < 2; k++) {
                rp_model_set_backend(m, bes[k]);
                pp(m, s, 64, 1);   /* warm up scratch and caches */
                double p = pp(m, s, 512, reps), pc = last_cpu_rate, g = tg(m, s, 128, reps), gc = last_cpu_rate;
                printf("%d thread%s: pp512 %7.1f tok/s (%4.1f%% of fp32 peak) = %.2fx llama.cpp Q4_1 (%g), %.2fx its F32 (%g)\n", k + 1, k ? "s" : " ",
                       p, 100 * p * fpt / 1e9 / pk[k], p / ref_pp[k], ref_pp[k], p / ref_pp_f32[k], ref_pp_f32[k]);
                printf("           tg128 %7.1f tok/s (%4.1f%% of read bandwidth) = %.2fx llama.cpp Q4_1 (%g, %4.1f%% of read bandwidth)\n", g,
                       100 * g * wb / 1e9 / bw[k], g / ref_tg[k], ref_tg[k], 100 * ref_tg[k] * wb / 1e9 / bw[k]);
                if (k == 0)   /* one thread: CPU time is what an unshared core would give */
                    printf("           per CPU-second: pp512 %.1f tok/s (%.2fx llama.cpp Q4_1, %.2fx its F32; %.0f%% of fp32 peak), tg128 %.1f tok/s (%.2fx; %.0f%% of read bandwidth)\n",
                           pc, pc / ref_pp[0], pc / ref_pp_f32[0], 100 * pc * fpt / 1e9 / peak1c, gc, gc / ref_tg[0], 100 * gc * wb / 1e9 / bw1c);
            }
            rp_session_free(s);
            rp_model_free(m);
        } else {
            printf("skip SmolLM2: %s\n", rp_errmsg());
        }
        snprintf(path, sizeof path, "%s/stories260K/stories260K.bin", mirror);
        if (rp_model_load(path, &o, &m) == RP_OK) {
            rp_session *s;
            rp_session_new(m, 512, 512, 1, &s);
            printf("\n== stories260K ==\n");
            rp_model_set_backend(m, be1);
            double p1 = pp(m, s, 512, 3), g1 = tg(m, s, 256, 5), g1c = last_cpu_rate;
            rp_model_set_backend(m, be2);
            double p2 = pp(m, s, 512, 3), g2 = tg(m, s, 256, 5);
            printf("pp512 %.0f / %.0f tok/s (1 / 2 threads) [llama.cpp 4231 / 7489]; tg %.0f / %.0f tok/s [llama.cpp 8142 / 6014]\n", p1, p2, g1, g2);
            printf("per-token cost (1 thread): %.1f us wall, %.1f us CPU = %.2fx llama.cpp's 123 us fixed cost (target <= 2x)\n", 1e6 / g1, 1e6 / g1c,
                   1e6 / g1c / 123);
            rp_session_free(s);
            rp_model_free(m);
        } else {
            printf("skip stories260K: %s\n", rp_errmsg());
        }
    } else {
        printf("skip models: REPRO_MIRROR not set\n");
    }
    rp_backend_cpu_free(be1);
    rp_backend_cpu_free(be2);
    return 0;
}
