/* bench_prune.c: what the prune plugin costs on SmolLM2-135M (Q4_1, 30 layers), each figure a ratio against
 * a reference measured in the same run:
 *   (1) hidden-state capture: forward passes that hand out every layer's input and add them to the angular
 *       statistics (rp_prune_stats_add), tokens/s against the plain forward pass (last logits only);
 *   (2) one evaluation of a pruned model (8 layers skipped in place; and the exported 22-layer GGUF) against a
 *       full forward pass of the unpruned one, with the layer-count ratio 22/30 beside it (the embedding and
 *       the head do not shrink).
 * 8 samples of 128 tokens (ids from a fixed recurrence), median of 3 repeats, wall clock; prints the load.
 * Skips without the model in REPRO_MIRROR. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli/blas_core.h"
#include "bench_calib.h"
#include "nn/llama.h"
#include "plugins/prune/prune.h"

#define N_SAMPLES 8
#define N_TOK 128
#define REPEATS 3

/* Seconds for N_SAMPLES forward passes of N_TOK tokens on m (hidden != NULL: capture into st). */
static double run(rp_model *m, int32_t *ids, float *hidden, rp_prune_stats *st) {
    rp_session *s;
    if (rp_session_new(m, N_TOK, N_TOK, 1, &s) != RP_OK) return -1;
    double t0 = now_s();
    for (int k = 0; k < N_SAMPLES; k++) {
        rp_session_reset(s);
        if (rp_session_forward(s, ids + k * N_TOK, N_TOK, RP_LOGITS_LAST, NULL, hidden) != RP_OK) { rp_session_free(s); return -1; }
        if (st && rp_prune_stats_add(st, hidden, N_TOK, 0) != RP_OK) { rp_session_free(s); return -1; }
    }
    double dt = now_s() - t0;
    rp_session_free(s);
    return dt;
}

static double med(rp_model *m, int32_t *ids, float *hidden, rp_prune_stats *st) {
    double v[REPEATS];
    for (int r = 0; r < REPEATS; r++) if ((v[r] = run(m, ids, hidden, st)) < 0) return -1;
    return median(v, REPEATS);
}

int main(int argc, char **argv) {
    (void)argc;
    rp_blas_core_ensure(argv);   /* OpenBLAS on its AVX2 kernels where it would not pick them (cli/blas_core.h) */
    const char *mirror = getenv("REPRO_MIRROR");
    char path[4096];
    snprintf(path, sizeof path, "%s/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf", mirror ? mirror : "");
    rp_model *m;
    if (!mirror || access(path, R_OK) != 0 || rp_model_load(path, NULL, &m) != RP_OK) {
        printf("skip: bench_prune needs SmolLM2 in REPRO_MIRROR\n");
        return 0;
    }
    const rp_llama_config *c = rp_model_config(m);
    const int L = c->n_layer, C = c->dim, V = c->vocab;
    int32_t *ids = malloc(sizeof *ids * N_SAMPLES * N_TOK);
    float *hidden = malloc(sizeof *hidden * (size_t)(L + 1) * N_TOK * C);
    rp_prune_stats *st;
    if (!ids || !hidden || rp_prune_stats_new(L + 1, C, &st) != RP_OK) { fprintf(stderr, "bench_prune: out of memory\n"); return 1; }
    uint32_t x = 12345;
    for (int i = 0; i < N_SAMPLES * N_TOK; i++) { x = x * 1664525u + 1013904223u; ids[i] = (int32_t)((x >> 8) % (uint32_t)V); }
    double load[3] = {0};
    FILE *la = fopen("/proc/loadavg", "r");
    if (la) { if (fscanf(la, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3) load[0] = -1; fclose(la); }
    printf("SmolLM2-135M Q4_1, %d samples x %d tokens, median of %d, load average %.2f\n", N_SAMPLES, N_TOK, REPEATS, load[0]);

    double plain = med(m, ids, NULL, NULL);
    double cap = med(m, ids, hidden, st);
    const double tok = (double)N_SAMPLES * N_TOK;
    if (plain < 0 || cap < 0) { fprintf(stderr, "bench_prune: %s\n", rp_errmsg()); return 1; }
    printf("  plain forward            %8.1f tokens/s\n", tok / plain);
    printf("  capture + angular stats  %8.1f tokens/s   %.2fx the plain forward's time\n", tok / cap, cap / plain);

    unsigned char mask[64] = {0};
    int n_drop = 8;
    for (int l = L - 1 - n_drop; l < L - 1; l++) mask[l] = 1;
    rp_model_set_skip(m, mask, L);
    double skipped = med(m, ids, NULL, NULL);
    rp_model_set_skip(m, NULL, L);
    char out[] = "/tmp/rp_bench_prune_XXXXXX";
    int fd = mkstemp(out);
    if (fd >= 0) close(fd);
    double exported = -1;
    rp_model *pm = NULL;
    if (rp_prune_export(rp_model_file_of(m), mask, L, out) == RP_OK && rp_model_load(out, NULL, &pm) == RP_OK) exported = med(pm, ids, NULL, NULL);
    double full = med(m, ids, NULL, NULL);
    printf("  unpruned forward (%d layers)    %8.1f tokens/s\n", L, tok / full);
    printf("  %d layers skipped in place      %8.1f tokens/s   %.2fx the unpruned time (layer ratio %.2f)\n", n_drop, tok / skipped,
           skipped / full, (double)(L - n_drop) / L);
    if (exported > 0)
        printf("  exported %d-layer GGUF          %8.1f tokens/s   %.2fx the unpruned time\n", L - n_drop, tok / exported, exported / full);
    else
        printf("  exported GGUF: not measured (%s)\n", rp_errmsg());
    rp_model_free(pm);
    unlink(out);
    rp_prune_stats_free(st);
    rp_model_free(m);
    free(ids);
    free(hidden);
    return 0;
}
