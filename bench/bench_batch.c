/* bench_batch.c: batched decoding throughput (rp_generate_batch) on SmolLM2-135M-Instruct Q4_1, 2 threads:
 * B sequences (B = 1, 4, 8, 16) of an 8-token prompt each, 64 tokens generated per sequence (end-of-text
 * ignored), decoded together; aggregate generated tokens per second over the whole call (prompts included),
 * median of 3. Prints the ratio to our B = 1 rate and, given --peer R1 R4 R8 R16 (llama.cpp's batched
 * decode measured in the same run by bench_peer_llamacpp.sh with the same protocol), the ratio to llama.cpp.
 * Skips without REPRO_MIRROR. Usage: bench_batch [--peer R1 R4 R8 R16] [--only B] [--kernel] [--threads 1] [--cpu]
 * (--threads 1: one thread, rates per CPU-second, for comparing builds on a loaded machine; --cpu: 2 threads,
 * rates per CPU-second of the whole process, so time a thread spends spinning while the other works serially
 * counts against the build: a loaded machine's proxy for the 2-thread efficiency; --only: that batch
 * size alone, for profiling; --kernel: first the batched-decoding matmul kernel alone, rp_packed_fdot_tile on one
 * thread over FFN-sized Q4_1 matrices (gate and down) and the Q8_0 output head, as a fraction of the FMA peak measured here). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/blas_core.h"
#include "nn/generate.h"
#include "nn/llama.h"
#include "tensor/backend.h"
#include "tensor/qdot.h"
#include "tensor/quant.h"
#include "bench_calib.h"

#define GEN 64

static int per_cpu = 0;   /* --threads 1 or --cpu: rates per CPU-second (robust to a shared machine's load) */

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
        double t0 = per_cpu ? cpu_s() : now_s();
        if (rp_generate_batch(m, pr, B, o, B, 128, r) != RP_OK) { fprintf(stderr, "batch %d: %s\n", B, rp_errmsg()); exit(1); }
        double dt = (per_cpu ? cpu_s() : now_s()) - t0;
        size_t n = 0;
        for (int i = 0; i < B; i++) { n += r[i].tokens.n; rp_generate_result_free(&r[i]); }
        v[rep] = (double)n / dt;
    }
    for (int i = 0; i < B; i++) rp_tokens_free(&pr[i]);
    free(pr); free(o); free(r);
    return median(v, 3);
}

/* CPU-seconds per call of rp_packed_fdot_tile: M rows against N x K weights of type t (random), median of 5. */
static double kernel_s(rp_dtype t, int64_t N, int64_t K, int M) {
    size_t ldw = rp_dtype_row_bytes(t, K);
    char *q = malloc(ldw * (size_t)N), *pk = malloc(ldw * (size_t)N);
    float *row = malloc((size_t)K * sizeof *row), *x = malloc((size_t)M * K * sizeof *x), *y = malloc((size_t)M * N * sizeof *y);
    unsigned s = 12345;
    for (int64_t n = 0; n < N; n++) {
        for (int64_t k = 0; k < K; k++) row[k] = (float)((s = s * 1103515245u + 12345u) >> 8) / 16777216.0f - 0.5f;
        if (rp_quantize_row(t, row, q + (size_t)n * ldw, K) != RP_OK) { fprintf(stderr, "%s\n", rp_errmsg()); exit(1); }
    }
    for (int64_t i = 0; i < (int64_t)M * K; i++) x[i] = (float)((s = s * 1103515245u + 12345u) >> 8) / 16777216.0f - 0.5f;
    if (rp_packed_repack(t, q, pk, N, K, ldw) != RP_OK) { fprintf(stderr, "%s\n", rp_errmsg()); exit(1); }
    double v[5];
    for (int rep = 0; rep < 5; rep++) {   /* each figure: calls repeated for at least 20 CPU-ms (one thread) */
        int calls = 0;
        double t0 = cpu_s(), dt;
        do {
            rp_packed_fdot_tile(t, pk, ldw, N, x, K, M, K, y, N);
            calls++;
        } while ((dt = cpu_s() - t0) < 0.02);
        v[rep] = dt / calls;
    }
    free(q); free(pk); free(row); free(x); free(y);
    return median(v, 5);
}

/* The kernel alone on one thread, per CPU-second (the machine is shared): ns per row per 128 weights and the
 * fraction of the 1-thread FMA peak. */
static void kernel_table(void) {
    rp_pool *p = NULL;
    double peak = rp_pool_new(1, &p) == RP_OK ? fma_peak(p, 1, 1) : 0;
    rp_pool_free(p);
    printf("-- rp_packed_fdot_tile, 1 thread, per CPU-second (FMA peak here, now: %.0f GFLOP/s)\n", peak);
    struct { rp_dtype t; int64_t N, K; const char *what; } mats[3] = { { RP_Q4_1, 1536, 576, "Q4_1 1536x576 (FFN gate)" },
                                                                         { RP_Q4_1, 576, 1536, "Q4_1 576x1536 (FFN down)" },
                                                                         { RP_Q8_0, 49152, 576, "Q8_0 49152x576 (output head)" } };
    int Ms[5] = { 2, 4, 8, 12, 16 };
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 5; j++) {
            double sec = kernel_s(mats[i].t, mats[i].N, mats[i].K, Ms[j]), mac = (double)Ms[j] * mats[i].N * mats[i].K;
            printf("%-30s M = %2d: %5.2f ns per row per 128 weights, %5.1f GFLOP/s = %4.1f%% of peak\n", mats[i].what, Ms[j],
                   sec * 1e9 / (mac / 128), 2 * mac / sec / 1e9, peak > 0 ? 100 * 2 * mac / sec / 1e9 / peak : 0);
        }
}

int main(int argc, char **argv) {
    rp_blas_core_ensure(argv);   /* OpenBLAS on its AVX2 kernels where it would not pick them (cli/blas_core.h) */
    double peer[4] = { 0, 0, 0, 0 };
    int have_peer = 0, only = 0, kernel = 0, threads = 2;
    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--peer") == 0 && a + 4 < argc) {
            for (int i = 0; i < 4; i++) peer[i] = atof(argv[++a]);
            have_peer = 1;
        } else if (strcmp(argv[a], "--threads") == 0 && a + 1 < argc && atoi(argv[a + 1]) == 1) {
            threads = 1;
            per_cpu = 1;
            a++;
        } else if (strcmp(argv[a], "--cpu") == 0) {
            per_cpu = 1;
        } else if (strcmp(argv[a], "--kernel") == 0) {
            kernel = 1;
        } else if (strcmp(argv[a], "--only") == 0 && a + 1 < argc) {
            only = atoi(argv[++a]);
        } else {
            fprintf(stderr, "usage: bench_batch [--peer R1 R4 R8 R16] [--only B] [--kernel] [--threads 1] [--cpu]\n");
            return 2;
        }
    }
    if (kernel) kernel_table();
    const char *mirror = getenv("REPRO_MIRROR");
    if (!mirror) { printf("skip models: REPRO_MIRROR not set\n"); return 0; }
    char path[4096];
    snprintf(path, sizeof path, "%s/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf", mirror);
    rp_backend *be;
    if (rp_backend_cpu_new(threads, &be) != RP_OK) { fprintf(stderr, "%s\n", rp_errmsg()); return 1; }
    rp_model_opts mo = { 0 };
    mo.backend = be;
    rp_model *m;
    if (rp_model_load(path, &mo, &m) != RP_OK) { printf("skip SmolLM2: %s\n", rp_errmsg()); rp_backend_cpu_free(be); return 0; }
    double l1 = 0;
    FILE *la = fopen("/proc/loadavg", "r");
    if (la) { if (fscanf(la, "%lf", &l1) != 1) l1 = 0; fclose(la); }
    printf("== batched decoding, SmolLM2-135M-Instruct Q4_1, %d thread%s, 8-token prompts + %d generated per sequence (load average %.1f on %d CPUs) ==\n",
           threads, per_cpu ? ", tokens per CPU-second" : "s", GEN, l1, rp_cpus_online());
    run(m, 2);   /* warm up */
    if (only > 0) {
        printf("B = %2d: %7.1f tok/s aggregate\n", only, run(m, only));
        rp_model_free(m);
        rp_backend_cpu_free(be);
        return 0;
    }
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
