/* bench_batch.c: batched decoding throughput (rp_generate_batch) on SmolLM2-135M-Instruct Q4_1, 2 threads:
 * B sequences (B = 1, 4, 8, 16) of an 8-token prompt each, 64 tokens generated per sequence (end-of-text
 * ignored), decoded together; aggregate generated tokens per second over the whole call (prompts included),
 * median of 3. Prints the ratio to our B = 1 rate and, given --peer R1 R4 R8 R16 (llama.cpp's batched
 * decode measured in the same run by bench_peer_llamacpp.sh with the same protocol), the ratio to llama.cpp.
 * Skips without REPRO_MIRROR. Usage: bench_batch [--peer R1 R4 R8 R16] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nn/generate.h"
#include "nn/llama.h"
#include "tensor/backend.h"
#include "bench_calib.h"

#define GEN 64

static double run(rp_model *m, int B) {
    rp_tokens *pr = calloc((size_t)B, sizeof *pr);
    rp_generate_opts *o = calloc((size_t)B, sizeof *o);
    rp_generate_result *r = calloc((size_t)B, sizeof *r);
    int V = rp_model_config(m)->vocab;
    for (int i = 0; i < B; i++) {
        for (int k = 0; k < 8; k++) rp_tokens_push(&pr[i], (int32_t)((i * 131 + k * 7919 + 11) % V));
        o[i].max_tokens = GEN;
        o[i].ignore_eog = 1;
    }
    double v[3];
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now_s();
        if (rp_generate_batch(m, pr, B, o, B, 128, r) != RP_OK) { fprintf(stderr, "batch %d: %s\n", B, rp_errmsg()); exit(1); }
        double dt = now_s() - t0;
        size_t n = 0;
        for (int i = 0; i < B; i++) { n += r[i].tokens.n; rp_generate_result_free(&r[i]); }
        v[rep] = (double)n / dt;
    }
    for (int i = 0; i < B; i++) rp_tokens_free(&pr[i]);
    free(pr); free(o); free(r);
    return median(v, 3);
}

int main(int argc, char **argv) {
    double peer[4] = { 0, 0, 0, 0 };
    int have_peer = argc > 5 && strcmp(argv[1], "--peer") == 0;
    if (have_peer) for (int i = 0; i < 4; i++) peer[i] = atof(argv[2 + i]);
    const char *mirror = getenv("REPRO_MIRROR");
    if (!mirror) { printf("skip models: REPRO_MIRROR not set\n"); return 0; }
    char path[4096];
    snprintf(path, sizeof path, "%s/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf", mirror);
    rp_backend *be;
    if (rp_backend_cpu_new(2, &be) != RP_OK) { fprintf(stderr, "%s\n", rp_errmsg()); return 1; }
    rp_model_opts mo = { 0 };
    mo.backend = be;
    rp_model *m;
    if (rp_model_load(path, &mo, &m) != RP_OK) { printf("skip SmolLM2: %s\n", rp_errmsg()); rp_backend_cpu_free(be); return 0; }
    double l1 = 0;
    FILE *la = fopen("/proc/loadavg", "r");
    if (la) { if (fscanf(la, "%lf", &l1) != 1) l1 = 0; fclose(la); }
    printf("== batched decoding, SmolLM2-135M-Instruct Q4_1, 2 threads, 8-token prompts + %d generated per sequence (load average %.1f on %d CPUs) ==\n",
           GEN, l1, rp_cpu_count());
    run(m, 2);   /* warm up */
    int Bs[4] = { 1, 4, 8, 16 };
    double one = 0;
    for (int i = 0; i < 4; i++) {
        double r = run(m, Bs[i]);
        if (i == 0) one = r;
        printf("B = %2d: %7.1f tok/s aggregate = %5.2fx our B = 1", Bs[i], r, r / one);
        if (have_peer && peer[i] > 0) printf(", llama.cpp %7.1f tok/s -> %.2fx llama.cpp", peer[i], r / peer[i]);
        printf("\n");
    }
    if (!have_peer) printf("(no llama.cpp figures: run bench/bench_peer_llamacpp.sh for the same-run peer)\n");
    rp_model_free(m);
    rp_backend_cpu_free(be);
    return 0;
}
