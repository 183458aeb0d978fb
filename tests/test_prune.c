/* test_prune.c: the prune plugin's C against independent computations. The angular distance on closed forms
 * (identical 0, orthogonal 1/2, opposite 1) and the accumulated statistics against a direct two-pass
 * computation on random vectors; the selection rules' index sets; on stories260K (mirror): dropping no
 * layer leaves every logit bit-identical, and a model with layer 2 skipped gives the same logits as the
 * exported GGUF built without that layer (renumbered blocks, block_count 4); bad masks are errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "nn/llama.h"
#include "plugins/prune/prune.h"
#include "../tests/check.h"

static double urand(unsigned *s) { *s = *s * 1664525u + 1013904223u; return (double)(*s >> 8) / (double)(1u << 24) - 0.5; }

static void test_closed_forms(void) {
    float a[3] = {1, 2, 3}, b[3] = {2, 4, 6}, o[3] = {-3, 0, 1}, n[3] = {-1, -2, -3}, z[3] = {0, 0, 0};
    CHECK_NEAR(rp_prune_angular(a, b, 3), 0, 1e-6);
    CHECK_NEAR(rp_prune_angular(a, o, 3), 0.5, 1e-12);
    CHECK_NEAR(rp_prune_angular(a, n, 3), 1, 1e-6);
    CHECK(rp_prune_angular(a, z, 3) == 0);
}

/* S states of C dims, K samples of T tokens: stats vs a direct computation (mean, stderr, influence). */
static void test_stats_direct(void) {
    enum { S = 6, C = 7, T = 3, K = 9 };
    float h[K][S * T * C];
    unsigned seed = 7;
    for (int k = 0; k < K; k++)
        for (int i = 0; i < S * T * C; i++) h[k][i] = (float)urand(&seed) + (i % C == 0 ? 0.7f : 0.0f);
    rp_prune_stats *st;
    CHECK(rp_prune_stats_new(S, C, &st) == RP_OK);
    for (int k = 0; k < K; k++) CHECK(rp_prune_stats_add(st, h[k], T, 0) == RP_OK);
    CHECK(rp_prune_stats_count(st) == K);
    for (int l = 0; l < S - 1; l++)
        for (int n = 1; l + n < S; n++) {
            double d[K], mean = 0, var = 0;
            for (int k = 0; k < K; k++) {   /* direct: last token, cosine from scratch */
                const float *x = h[k] + (l * T + T - 1) * C, *y = h[k] + ((l + n) * T + T - 1) * C;
                double xy = 0, xx = 0, yy = 0;
                for (int c = 0; c < C; c++) { xy += (double)x[c] * y[c]; xx += (double)x[c] * x[c]; yy += (double)y[c] * y[c]; }
                d[k] = acos(xy / sqrt(xx * yy)) / M_PI;
                mean += d[k] / K;
            }
            for (int k = 0; k < K; k++) var += (d[k] - mean) * (d[k] - mean) / (K - 1);
            double se, got = rp_prune_stats_distance(st, l, n, &se);
            CHECK_NEAR(got, mean, 1e-9);
            CHECK_NEAR(se, sqrt(var / K), 1e-9);
        }
    CHECK(isnan(rp_prune_stats_distance(st, 0, S, NULL)) && isnan(rp_prune_stats_distance(st, 3, 0, NULL)));
    for (int l = 0; l < S - 1; l++) {
        double sum = 0;
        for (int k = 0; k < K; k++)
            for (int t = 0; t < T; t++) {
                const float *x = h[k] + (l * T + t) * C, *y = h[k] + ((l + 1) * T + t) * C;
                double xy = 0, xx = 0, yy = 0;
                for (int c = 0; c < C; c++) { xy += (double)x[c] * y[c]; xx += (double)x[c] * x[c]; yy += (double)y[c] * y[c]; }
                sum += xy / sqrt(xx * yy);
            }
        CHECK_NEAR(rp_prune_stats_influence(st, l), 1 - sum / (K * T), 1e-9);
    }
    /* the paper's rule = the argmin of the direct row; the other rules' sets */
    int out[8], l_star;
    for (int n = 1; n < S; n++) {
        CHECK(rp_prune_select_angular(st, n, &l_star, out) == RP_OK);
        for (int l = 0; l + n < S; l++) CHECK(rp_prune_stats_distance(st, l_star, n, NULL) <= rp_prune_stats_distance(st, l, n, NULL));
        CHECK(out[0] == l_star && out[n - 1] == l_star + n - 1);
    }
    CHECK(rp_prune_select_angular(st, S, &l_star, out) == RP_ERR_INVAL && strstr(rp_errmsg(), "n = 6"));
    CHECK(rp_prune_select_influence(st, 2, out) == RP_OK);
    for (int l = 0; l < S - 1; l++)
        if (l != out[0] && l != out[1])
            CHECK(rp_prune_stats_influence(st, l) >= rp_prune_stats_influence(st, out[0]) &&
                  rp_prune_stats_influence(st, l) >= rp_prune_stats_influence(st, out[1]));
    rp_prune_stats_free(st);

    CHECK(rp_prune_select_heuristic(30, 3, out) == RP_OK && out[0] == 26 && out[1] == 27 && out[2] == 28);
    CHECK(rp_prune_select_heuristic(30, 30, out) == RP_ERR_INVAL);
    int r1[8], r2[8];
    CHECK(rp_prune_select_random(30, 8, 1, r1) == RP_OK && rp_prune_select_random(30, 8, 1, r2) == RP_OK);
    CHECK(memcmp(r1, r2, sizeof r1) == 0);
    for (int i = 1; i < 8; i++) CHECK(r1[i] > r1[i - 1] && r1[i] < 30 && r1[0] >= 0);
    CHECK(rp_prune_select_random(30, 8, 2, r2) == RP_OK && memcmp(r1, r2, sizeof r1) != 0);
    CHECK(rp_prune_stats_new(1, 4, &st) == RP_ERR_INVAL);
}

/* Logits of ids on m (every position). */
static float *logits(rp_model *m, const int32_t *ids, int T) {
    int V = rp_model_config(m)->vocab;
    float *out = malloc((size_t)T * V * sizeof *out);
    rp_session *s;
    if (rp_session_new(m, 64, 64, 64, &s) != RP_OK) { free(out); return NULL; }
    if (rp_session_forward(s, ids, T, RP_LOGITS_ALL, out, NULL) != RP_OK) { free(out); out = NULL; }
    rp_session_free(s);
    return out;
}

static void test_stories(void) {
    const char *mirror = getenv("REPRO_MIRROR");
    char path[4096];
    snprintf(path, sizeof path, "%s/stories260K/stories260K.bin", mirror ? mirror : "");
    rp_model *m;
    if (!mirror || access(path, R_OK) != 0 || rp_model_load(path, NULL, &m) != RP_OK) {
        printf("skip [mirror]: stories260K not in REPRO_MIRROR (export and skip checks)\n");
        return;
    }
    enum { T = 24 };
    int32_t ids[T];
    for (int t = 0; t < T; t++) ids[t] = (int32_t)((t * 37 + 1) % rp_model_config(m)->vocab);
    const int L = rp_model_config(m)->n_layer, V = rp_model_config(m)->vocab;
    float *full = logits(m, ids, T);
    unsigned char mask[16] = {0};
    CHECK(rp_model_set_skip(m, mask, L) == RP_OK);
    float *none = logits(m, ids, T);
    CHECK(full && none && memcmp(full, none, (size_t)T * V * sizeof(float)) == 0);   /* no layer dropped: bit-identical */
    mask[2] = 1;
    CHECK(rp_model_set_skip(m, mask, L) == RP_OK);
    float *skipped = logits(m, ids, T);
    char out[] = "/tmp/rp_prune_XXXXXX";
    int fd = mkstemp(out);
    if (fd >= 0) close(fd);
    CHECK(rp_prune_export(rp_model_file_of(m), mask, L, out) == RP_OK);
    rp_model_file *f;
    rp_model *pm = NULL;
    CHECK(rp_model_file_open(out, &f) == RP_OK);
    CHECK(rp_model_new(f, NULL, &pm) == RP_OK);
    if (pm) {
        int64_t bc;
        CHECK(rp_model_file_meta_int(f, "llama.block_count", &bc) && bc == L - 1 && rp_model_config(pm)->n_layer == L - 1);
        CHECK(strcmp(rp_model_file_meta_string(f, "repro.prune.dropped"), "2") == 0);
        const rp_weight *w3 = rp_model_file_weight(rp_model_file_of(m), "blk.3.attn_q.weight");
        const rp_weight *w2 = rp_model_file_weight(f, "blk.2.attn_q.weight");
        CHECK(w2 && w3 && w2->nbytes == w3->nbytes && memcmp(w2->data, w3->data, w2->nbytes) == 0);   /* renumbered */
        CHECK(rp_model_file_weight(f, "blk.4.attn_q.weight") == NULL);
        float *exported = logits(pm, ids, T);
        double maxd = 0;
        for (int i = 0; exported && skipped && i < T * V; i++) maxd = fmax(maxd, fabs(exported[i] - skipped[i]));
        CHECK_MSG(exported && skipped && maxd == 0, "exported vs skipped: max |diff| %g", maxd);
        double diff = 0;
        for (int i = 0; skipped && i < T * V; i++) diff = fmax(diff, fabs(skipped[i] - full[i]));
        CHECK_MSG(diff > 1e-3, "skipping layer 2 changed nothing (max |diff| %g)", diff);
        free(exported);
        rp_model_free(pm);
    }
    rp_model_file_free(f);
    unsigned char all[16];
    memset(all, 1, sizeof all);
    CHECK(rp_prune_export(rp_model_file_of(m), all, L, out) == RP_ERR_INVAL && strstr(rp_errmsg(), "leaves no model"));
    CHECK(rp_prune_export(rp_model_file_of(m), mask, L + 1, out) == RP_ERR_INVAL && strstr(rp_errmsg(), "has 5"));
    CHECK(rp_model_set_skip(m, mask, L + 1) != RP_OK);
    unlink(out);
    free(full); free(none); free(skipped);
    rp_model_free(m);
}

int main(void) {
    test_closed_forms();
    test_stats_direct();
    test_stories();
    return checks_done("test_prune");
}
