/* bench_cuda.c: the CUDA backend's speed on a Llama model against the CPU backend measured in the same
 * run: pp512 (one 512-token prompt, logits of the last token) and tg128 (128 tokens, one forward each,
 * the logits copied to the host and argmaxed there as generation does), tokens/s as medians of
 * repeated runs; for tg, the weight bytes read per second (what bounds decoding). PyTorch on the same
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
    return 0;
}
