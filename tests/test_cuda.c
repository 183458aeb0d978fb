/* test_cuda.c: model-level checks of the CUDA backend against the CPU: the same model file built on both
 * (rp_model_new: weights copied to the GPU there, wrapped in place on the CPU with exact f32 paths,
 * REPRO_INT8_DOT=0), then on staged token sequences:
 *   - every position's logits: normalized error (max |gpu - cpu| / max |cpu|) <= 1e-3;
 *   - teacher-forced log-probabilities (rp_session_score): max |gpu - cpu| <= 5e-3 nats;
 * (fp32 on both sides: the differences are summation order through every layer; a wrong kernel is off by O(1));
 *   - greedy decoding of 32 tokens, one token per forward against the KV cache: the same tokens.
 * The model: $REPRO_GPU_MODEL (tools/gpu_check.sh makes a random one of SmolLM2-135M's shapes where the
 * mirror is absent), else the mirror's SmolLM2-135M-Instruct Q4_1, else its tiny random Llama.
 * Without a GPU (or without CUDA in the build) it prints `skip [gpu]: ...` and checks only the refusal. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "nn/llama.h"
#include "tensor/backend_cuda.h"

static const char *find_model(char *buf, size_t cap) {
    const char *e = getenv("REPRO_GPU_MODEL"), *m = getenv("REPRO_MIRROR");
    if (e && *e) return e;
    const char *rel[] = { "smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf", "gguf-tiny-random-llama/llama-2-tiny-random.gguf" };
    for (int i = 0; m && *m && i < 2; i++) {
        snprintf(buf, cap, "%s/%s", m, rel[i]);
        FILE *f = fopen(buf, "rb");
        if (f) { fclose(f); return buf; }
    }
    return NULL;
}

static double norm_err(const float *a, const float *b, size_t n) {
    double d = 0, mx = 1e-30;
    for (size_t i = 0; i < n; i++) { d = fmax(d, fabs((double)a[i] - b[i])); mx = fmax(mx, fabs((double)b[i])); }
    return d / mx;
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++) if (x[i] > x[b]) b = i;
    return b;
}

/* Greedy decoding of n tokens after prompt[0..np): one forward per token. */
static rp_status greedy(rp_model *m, const int32_t *prompt, int np, int n, int32_t *out) {
    rp_session *s;
    RP_TRY(rp_session_new(m, np + n + 1, 64, 8, &s));
    int V = rp_model_config(m)->vocab;
    float *lg = malloc((size_t)V * sizeof *lg);
    rp_status st = lg ? rp_session_forward(s, prompt, np, RP_LOGITS_LAST, lg, NULL) : RP_ERR_NOMEM;
    for (int i = 0; st == RP_OK && i < n; i++) {
        out[i] = argmax(lg, V);
        st = rp_session_forward(s, &out[i], 1, RP_LOGITS_LAST, lg, NULL);
    }
    free(lg);
    rp_session_free(s);
    return st;
}

static void check_model(const char *path, rp_backend *gpu) {
    rp_model_file *f;
    CHECK_MSG(rp_model_file_open(path, &f) == RP_OK, "%s", rp_errmsg());
    setenv("REPRO_INT8_DOT", "0", 1);
    rp_backend *cpu;
    CHECK(rp_backend_cpu_new(0, &cpu) == RP_OK);
    rp_model *mc = NULL, *mg = NULL;
    CHECK_MSG(rp_model_new(f, cpu, &mc) == RP_OK, "cpu model: %s", rp_errmsg());
    rp_status st = rp_model_new(f, gpu, &mg);
    CHECK_MSG(st == RP_OK, "cuda model: %s", rp_errmsg());
    if (!mc || !mg) { rp_model_free(mc); rp_model_free(mg); rp_backend_cpu_free(cpu); rp_model_file_free(f); return; }
    const rp_llama_config *c = rp_model_config(mc);
    const int V = c->vocab;
    printf("  model %s: %d layers, dim %d, vocab %d; GPU %s\n", path, c->n_layer, c->dim, V, rp_backend_cuda_device());

    /* staged sequences: fixed pseudo-random ids (same on every machine), 3 prompts of 7, 20 and 48 tokens */
    const int lens[3] = { 7, 20, 48 };
    uint32_t r = 12345;
    for (int p = 0; p < 3; p++) {
        int T = lens[p];
        int32_t ids[48];
        for (int t = 0; t < T; t++) { r = r * 1664525u + 1013904223u; ids[t] = (int32_t)((r >> 8) % (uint32_t)V); }
        rp_session *sc, *sg;
        CHECK(rp_session_new(mc, 128, 64, 64, &sc) == RP_OK);
        CHECK(rp_session_new(mg, 128, 64, 64, &sg) == RP_OK);
        float *lc = malloc((size_t)T * V * sizeof *lc), *lgp = malloc((size_t)T * V * sizeof *lgp);
        CHECK(rp_session_forward(sc, ids, T, RP_LOGITS_ALL, lc, NULL) == RP_OK);
        CHECK_MSG(rp_session_forward(sg, ids, T, RP_LOGITS_ALL, lgp, NULL) == RP_OK, "%s", rp_errmsg());
        double e = norm_err(lgp, lc, (size_t)T * V);
        CHECK_MSG(e <= 1e-3, "prompt %d: logits normalized error %g > 1e-3", p, e);
        float lpc[48], lpg[48];
        rp_session_reset(sc);
        rp_session_reset(sg);
        CHECK(rp_session_score(sc, ids, T, 1, lpc, NULL) == RP_OK);
        CHECK_MSG(rp_session_score(sg, ids, T, 1, lpg, NULL) == RP_OK, "%s", rp_errmsg());
        double dl = 0;
        for (int i = 0; i < T - 2; i++) dl = fmax(dl, fabs((double)lpc[i] - lpg[i]));
        CHECK_MSG(dl <= 5e-3, "prompt %d: log-prob max abs difference %g > 5e-3", p, dl);
        int32_t gc[32], gg[32];
        CHECK(greedy(mc, ids, T, 32, gc) == RP_OK);
        CHECK_MSG(greedy(mg, ids, T, 32, gg) == RP_OK, "%s", rp_errmsg());
        int same = 0;
        while (same < 32 && gc[same] == gg[same]) same++;
        CHECK_MSG(same == 32, "prompt %d: greedy tokens differ from token %d (cpu %d, gpu %d)", p, same, gc[same < 32 ? same : 31], gg[same < 32 ? same : 31]);
        printf("  prompt %d (%d tokens): logits error %.2g (<= 1e-3), log-prob diff %.2g nats (<= 5e-3), greedy %d/32 tokens equal\n",
               p, T, e, dl, same);
        free(lc); free(lgp);
        rp_session_free(sc); rp_session_free(sg);
    }
    rp_model_free(mc);
    rp_model_free(mg);
    rp_backend_cpu_free(cpu);
    rp_model_file_free(f);
}

int main(void) {
    rp_backend *gpu = NULL;
    rp_status st = rp_backend_cuda_open(&gpu);
    if (st != RP_OK) {   /* the refusal is clear and typed; a model cannot be moved there */
        CHECK(st == RP_ERR_UNSUPPORTED && strstr(rp_errmsg(), "cuda") != NULL);
        printf("skip [gpu]: model checks on the cuda backend: %s\n", rp_errmsg());
        return checks_done("test_cuda");
    }
    char buf[4096];
    const char *path = find_model(buf, sizeof buf);
    if (!path) {
        printf("skip [mirror]: no model for the GPU model checks (set REPRO_GPU_MODEL or REPRO_MIRROR)\n");
        return checks_done("test_cuda");
    }
    check_model(path, gpu);
    return checks_done("test_cuda");
}
