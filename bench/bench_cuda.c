/* bench_cuda.c: the CUDA backend's speed on a Llama model against the CPU backend measured in the same
 * run: pp512 (one 512-token prompt, logits of the last token) and tg128 (128 tokens, one forward each,
 * the logits copied to the host and argmaxed there as generation does), tokens/s as medians of
 * repeated runs; for tg, the weight bytes read per second (what bounds decoding). Then the selective scan
 * at d_inner 8192, d_state 16, 4096 steps against the memory-bandwidth bound of its traffic, the bandwidth
 * measured in the same run by the backend's own add op over 3 x 256 MB (two reads, one write). PyTorch on the same
 * GPU is measured by tools/gpu_check.sh (tools/torch_llama_bench.py), which prints the ratios.
 * Model: $REPRO_GPU_MODEL, else the mirror's SmolLM2-135M-Instruct Q4_1. Without a GPU it prints
 * `skip [gpu]: ...` and exits 0. Usage: bench_cuda [--quick] [--json] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nn/llama.h"
#include "tensor/backend.h"
#include "tensor/backend_cuda.h"
#include "bench_calib.h"

typedef struct speed { double pp, tg; } speed;

/* Median tokens/s of `reps` runs of a prompt of n_pp tokens, then of n_tg decoded tokens. */
static rp_status measure(rp_model *m, int n_pp, int n_tg, int reps, speed *out) {
    const int V = rp_model_config(m)->vocab;
    rp_session *s;
    RP_TRY(rp_session_new(m, n_pp + n_tg + 8, n_pp, 8, &s));
    int32_t *toks = malloc((size_t)n_pp * sizeof *toks);
    float *lg = malloc((size_t)V * sizeof *lg);
    double vp[8], vt[8];
    rp_status st = toks && lg ? RP_OK : rp_fail(RP_ERR_NOMEM, "bench: out of memory");
    for (int i = 0; st == RP_OK && i < n_pp; i++) toks[i] = (int32_t)((i * 7919 + 11) % V);
    for (int r = 0; st == RP_OK && r < reps; r++) {
        rp_session_reset(s);
        double t0 = now_s();
        st = rp_session_forward(s, toks, n_pp, RP_LOGITS_LAST, lg, NULL);
        vp[r] = n_pp / (now_s() - t0);
        rp_session_reset(s);
        int32_t tok = 1 % V;
        t0 = now_s();
        for (int i = 0; st == RP_OK && i < n_tg; i++) {
            st = rp_session_forward(s, &tok, 1, RP_LOGITS_LAST, lg, NULL);
            int best = 0;
            for (int k = 1; k < V; k++) if (lg[k] > lg[best]) best = k;
            tok = best;
        }
        vt[r] = n_tg / (now_s() - t0);
    }
    if (st == RP_OK) { out->pp = median(vp, reps); out->tg = median(vt, reps); }
    free(toks); free(lg);
    rp_session_free(s);
    return st;
}

/* Seconds per call of fn (median of reps), synchronized. */
typedef rp_status (*gpu_fn)(rp_backend *be, void *ctx);
static double timed(rp_backend *be, gpu_fn fn, void *ctx, int reps) {
    double v[9];
    if (fn(be, ctx) != RP_OK || rp_backend_sync(be) != RP_OK) return -1;   /* warm-up */
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        if (fn(be, ctx) != RP_OK || rp_backend_sync(be) != RP_OK) return -1;
        v[r] = now_s() - t0;
    }
    return median(v, reps);
}

typedef struct scan_ctx { float *y, *u, *dt, *A, *B, *C, *Dp, *h, *a, *b, *c; int64_t T, D, N, n; } scan_ctx;
static rp_status run_add(rp_backend *be, void *p) {
    scan_ctx *s = p;
    return RP_BACKEND_CALL(be, add, s->c, s->a, s->b, s->n);
}
static rp_status run_scan(rp_backend *be, void *p) {
    scan_ctx *s = p;
    return RP_BACKEND_CALL(be, selective_scan, s->y, s->u, s->dt, s->A, s->B, s->C, s->Dp, s->T, s->D, s->N, s->h);
}

/* The scan's time against the bandwidth bound of its traffic; prints one line, returns the fraction (-1: failed). */
static double scan_vs_bandwidth(rp_backend *be, int json) {
    scan_ctx s = { 0 };
    s.T = 4096, s.D = 8192, s.N = 16, s.n = 64ll << 20;
    size_t td = (size_t)(s.T * s.D) * 4, tn = (size_t)(s.T * s.N) * 4, dn = (size_t)(s.D * s.N) * 4, big = (size_t)s.n * 4;
    float **bufs[11] = { &s.y, &s.u, &s.dt, &s.A, &s.B, &s.C, &s.Dp, &s.h, &s.a, &s.b, &s.c };
    size_t sizes[11] = { td, td, td, dn, tn, tn, (size_t)s.D * 4, dn, big, big, big };
    int ok = 1;
    for (int i = 0; i < 11; i++) ok = ok && (*bufs[i] = be->ops->alloc(be, sizes[i])) != NULL;
    double f = -1;
    if (ok) {   /* inputs stay zero-filled: a zero scan costs what any scan costs (no data-dependent branches) */
        double t_add = timed(be, run_add, &s, 5), t_scan = timed(be, run_scan, &s, 3);
        double bw = 3.0 * (double)big / t_add, bytes = 3.0 * (double)td + 2.0 * (double)tn + 2.0 * (double)dn;
        f = t_add > 0 && t_scan > 0 ? bytes / bw / t_scan : -1;
        if (json) printf("{\"scan_ms\":%.3f,\"bandwidth_gbps\":%.0f,\"scan_fraction_of_bound\":%.3f}\n", t_scan * 1e3, bw / 1e9, f);
        else printf("selective scan d_inner %lld, d_state %lld, %lld steps: %.2f ms; bound %.2f ms at %.0f GB/s (add op, same run): %.0f%% of the bound (target 60%%)\n",
                    (long long)s.D, (long long)s.N, (long long)s.T, t_scan * 1e3, bytes / bw * 1e3, bw / 1e9, 100 * f);
    }
    for (int i = 0; i < 11; i++) if (*bufs[i]) be->ops->free(be, *bufs[i]);
    return f;
}

int main(int argc, char **argv) {
    int quick = 0, json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--json")) json = 1;
        else { fprintf(stderr, "usage: bench_cuda [--quick] [--json]\n"); return 2; }
    }
    rp_backend *gpu;
    if (rp_backend_cuda_open(&gpu) != RP_OK) { printf("skip [gpu]: %s\n", rp_errmsg()); return 0; }
    const char *path = getenv("REPRO_GPU_MODEL"), *mir = getenv("REPRO_MIRROR");
    char buf[4096];
    if (!path || !*path) {
        snprintf(buf, sizeof buf, "%s/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf", mir ? mir : ".");
        path = buf;
    }
    rp_model_file *f;
    if (rp_model_file_open(path, &f) != RP_OK) { printf("skip [mirror]: %s\n", rp_errmsg()); return 0; }
    double wbytes = 0;
    for (int i = 0; i < rp_model_file_n_weights(f); i++) {
        const rp_weight *w = rp_model_file_weight_at(f, i);
        if (strcmp(w->name, "token_embd.weight") == 0 && rp_model_file_weight(f, "output.weight")) continue;   /* lookup only */
        wbytes += (double)w->nbytes;
    }
    rp_model *mg, *mc;
    if (rp_model_new(f, gpu, &mg) != RP_OK || rp_model_new(f, rp_backend_cpu(), &mc) != RP_OK) {
        fprintf(stderr, "bench_cuda: %s\n", rp_errmsg());
        return 1;
    }
    speed g, c;
    int reps = quick ? 3 : 5;
    if (measure(mg, 512, 128, 1, &g) != RP_OK || measure(mg, 512, 128, reps, &g) != RP_OK ||   /* first: warm-up */
        measure(mc, quick ? 128 : 512, quick ? 16 : 32, 1, &c) != RP_OK) {
        fprintf(stderr, "bench_cuda: %s\n", rp_errmsg());
        return 1;
    }
    if (json) {
        printf("{\"model\":\"%s\",\"gpu\":\"%s\",\"pp512\":%.1f,\"tg128\":%.1f,\"cpu_pp\":%.1f,\"cpu_tg\":%.1f,\"tg_weight_gbps\":%.1f}\n",
               path, rp_backend_cuda_device(), g.pp, g.tg, c.pp, c.tg, g.tg * wbytes / 1e9);
    } else {
        printf("model %s, GPU %s\n", path, rp_backend_cuda_device());
        printf("| figure | cuda | cpu (%d cores, same run) | cuda / cpu |\n|---|---:|---:|---:|\n", rp_cpu_count());
        printf("| pp512 tok/s | %.0f | %.0f | %.1fx |\n", g.pp, c.pp, g.pp / c.pp);
        printf("| tg128 tok/s | %.0f | %.0f | %.1fx |\n", g.tg, c.tg, g.tg / c.tg);
        printf("tg128 reads %.0f MB of weights per token: %.0f GB/s on the GPU\n", wbytes / 1e6, g.tg * wbytes / 1e9);
    }
    rp_model_free(mg);
    rp_model_free(mc);
    rp_model_file_free(f);
    if (scan_vs_bandwidth(gpu, json) < 0) { fprintf(stderr, "bench_cuda: scan: %s\n", rp_errmsg()); return 1; }
    return 0;
}
