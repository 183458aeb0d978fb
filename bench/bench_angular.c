/* bench_angular.c: the prune paper's per-layer measurement (angular distance between the hidden states
 * entering layer l and layer l+n, last token, averaged over samples, for every (l, n) pair) on 256
 * samples of SmolLM2-135M hidden states, computed three ways: (a) repro.tensor methods on Lua 5.4,
 * (b) plain loops over t:ffi() on LuaJIT, (c) here in C. The samples are the first 256 lines of
 * WikiText-2's test set with at least 200 bytes, tokenized and cut to 32 tokens; their ids go to a file
 * the Lua side reads, so all three see the same inputs. Times cover the distance loops only (hidden
 * states are computed beforehand by each); the three checksums (sum of mean distances) must agree.
 * Skips without the model or the data in REPRO_MIRROR; the Lua runs need REPRO_BIN (set by make). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cli/blas_core.h"
#include "nn/llama.h"

#define N_SAMPLES 256
#define N_TOK 32

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Run the Lua side; returns its seconds and sets *sum, or -1 when it did not run. */
static double run_lua(const char *bin, const char *model, const char *ids, const char *mode, double *sum) {
    char cmd[8192], out[256], got[32];
    snprintf(cmd, sizeof cmd, "'%s' exec bench/angular.lua '%s' '%s' %s", bin, model, ids, mode);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    double secs = -1;
    while (fgets(out, sizeof out, p))
        if (sscanf(out, "angular %31s %lf %lf", got, &secs, sum) != 3) secs = -1;
    return pclose(p) == 0 ? secs : -1;
}

int main(int argc, char **argv) {
    (void)argc;
    rp_blas_core_ensure(argv);   /* OpenBLAS on its AVX2 kernels where it would not pick them (cli/blas_core.h) */
    const char *mirror = getenv("REPRO_MIRROR"), *bin = getenv("REPRO_BIN");
    char model_path[4096], text_path[4096], ids_path[] = "build/angular_ids.txt";
    snprintf(model_path, sizeof model_path, "%s/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf", mirror ? mirror : "");
    snprintf(text_path, sizeof text_path, "%s/wikitext2/wiki.test.raw", mirror ? mirror : "");
    FILE *tf = fopen(text_path, "rb");
    rp_model *m = NULL;
    if (!tf || rp_model_load(model_path, NULL, &m) != RP_OK) {
        printf("skip: bench_angular needs SmolLM2 and WikiText-2 in REPRO_MIRROR\n");
        if (tf) fclose(tf);
        return 0;
    }
    const rp_llama_config *c = rp_model_config(m);
    const int L1 = c->n_layer + 1, C = c->dim;
    float *H = malloc(sizeof(float) * (size_t)N_SAMPLES * L1 * C), *h = malloc(sizeof(float) * (size_t)L1 * N_TOK * C);
    FILE *idf = fopen(ids_path, "w");
    rp_session *s;
    if (!H || !h || !idf || rp_session_new(m, 64, N_TOK, 1, &s) != RP_OK) { fprintf(stderr, "bench_angular: set-up failed\n"); return 1; }
    char line[1 << 16];
    int ns = 0;
    while (ns < N_SAMPLES && fgets(line, sizeof line, tf)) {
        if (strlen(line) < 200) continue;
        rp_tokens ids = { 0 };
        if (rp_tokenizer_encode(rp_model_tokenizer(m), line, strlen(line), RP_TOK_DEFAULT, &ids) != RP_OK || ids.n < N_TOK) { rp_tokens_free(&ids); continue; }
        for (int t = 0; t < N_TOK; t++) fprintf(idf, "%d%c", ids.ids[t], t + 1 < N_TOK ? ' ' : '\n');
        rp_session_reset(s);
        if (rp_session_forward(s, ids.ids, N_TOK, RP_LOGITS_NONE, NULL, h) != RP_OK) { fprintf(stderr, "bench_angular: %s\n", rp_errmsg()); return 1; }
        for (int l = 0; l < L1; l++) memcpy(H + ((size_t)ns * L1 + l) * C, h + ((size_t)l * N_TOK + N_TOK - 1) * C, sizeof(float) * C);
        rp_tokens_free(&ids);
        ns++;
    }
    fclose(tf);
    fclose(idf);
    /* (c) C */
    double *D = calloc((size_t)L1 * L1, sizeof *D);
    double t0 = cpu_s();
    for (int si = 0; si < ns; si++) {
        const float *hs = H + (size_t)si * L1 * C;
        for (int l = 0; l < L1 - 1; l++)
            for (int n = 1; n < L1 - l; n++) {
                const float *a = hs + (size_t)l * C, *b = hs + (size_t)(l + n) * C;
                double ab = 0, aa = 0, bb = 0;
                for (int k = 0; k < C; k++) { ab += (double)a[k] * b[k]; aa += (double)a[k] * a[k]; bb += (double)b[k] * b[k]; }
                double cs = aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0;
                D[l * L1 + n] += acos(cs > 1 ? 1 : cs < -1 ? -1 : cs) / M_PI;
            }
    }
    double c_s = cpu_s() - t0, c_sum = 0;
    for (int l = 0; l < L1 - 1; l++) for (int n = 1; n < L1 - l; n++) c_sum += D[l * L1 + n] / ns;
    printf("angular distance, %d (layer, block) pairs x %d samples of SmolLM2 hidden states (dim %d):\n", L1 * (L1 - 1) / 2, ns, C);
    printf("  (c) C loops                  %8.2f ms  checksum %.6f\n", c_s * 1e3, c_sum);
    char lj[4200];
    double a_sum = 0, b_sum = 0, a_s = -1, b_s = -1;
    if (bin) {
        a_s = run_lua(bin, model_path, ids_path, "methods", &a_sum);
        snprintf(lj, sizeof lj, "%s", bin);
        char *base = strrchr(lj, '/');
        snprintf(base ? base + 1 : lj, sizeof lj - (size_t)(base ? base + 1 - lj : 0), "repro-luajit");
        FILE *f = fopen(lj, "rb");
        if (f) { fclose(f); b_s = run_lua(lj, model_path, ids_path, "ffi", &b_sum); }
    }
    int bad = 0;
    if (a_s >= 0) {
        printf("  (a) repro.tensor methods, Lua 5.4 %8.2f ms  checksum %.6f  %.1fx C\n", a_s * 1e3, a_sum, a_s / c_s);
        if (fabs(a_sum - c_sum) > 1e-4 * fabs(c_sum)) { printf("  checksums differ: (a) vs (c)\n"); bad = 1; }
    } else printf("  (a) not run (REPRO_BIN unset or the Lua script failed)\n");
    if (b_s >= 0) {
        printf("  (b) t:ffi() loops, LuaJIT     %8.2f ms  checksum %.6f  %.1fx C\n", b_s * 1e3, b_sum, b_s / c_s);
        if (fabs(b_sum - c_sum) > 1e-4 * fabs(c_sum)) { printf("  checksums differ: (b) vs (c)\n"); bad = 1; }
        if (a_s >= 0) printf("  (a) / (b): %.1fx\n", a_s / b_s);
    } else printf("  (b) not run (build bin/repro-luajit: make LUA=luajit)\n");
    rp_session_free(s);
    rp_model_free(m);
    free(H); free(h); free(D);
    return bad;
}
