/* test_sdpo_train.c: the DPO loss through a real model (stories260K with LoRA adapters, the trainer's per-sequence
 * loss hook). Checks: at the start of a step, with target = reference, the loss through the model is ln 2; the
 * gradient of the DPO loss by a few LoRA parameters equals central finite differences of the loss recomputed from
 * the trainer's forward-only log-probabilities (an independent path: no backward involved); the prompt mask keeps
 * prompt tokens out of the sequence log-probabilities; after rp_trainer_reset_optimizer (sDPO's fresh optimizer per
 * step) the next AdamW update is a first step's closed form, -lr·g/(|g| + eps) per parameter, which the carried
 * moments do not give. Skips without the data mirror. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "nn/train_llama.h"
#include "plugins/sdpo/sdpo.h"

enum { P = 2, B = 2 * P, T = 12, PROMPT = 5 };

typedef struct dpo_ud { const double *ref; double beta; } dpo_ud;

static rp_status dpo_hook(void *ud, const double *lp, int n, double *loss, double *dlp) {
    dpo_ud *u = ud;
    rp_dpo_stats s;
    RP_TRY(rp_dpo_loss(lp, u->ref, n / 2, u->beta, &s, dlp));
    *loss = s.loss;
    return RP_OK;
}

static int32_t tok[B * T], tgt[B * T];
static uint8_t mask[B * T];

static void make_batch(void) {
    unsigned x = 7;
    for (int b = 0; b < B; b++) {
        int32_t seq[T + 1];
        for (int t = 0; t <= T; t++) {
            x = x * 1103515245u + 12345u;
            /* chosen and rejected of a pair share the prompt (positions < PROMPT) */
            seq[t] = (t < PROMPT && b % 2) ? tok[(b - 1) * T + t] : (int32_t)(2 + (x >> 16) % 400);
            if (t < PROMPT && b % 2 && t > 0) seq[t] = tgt[(b - 1) * T + t - 1];
        }
        for (int t = 0; t < T; t++) { tok[b * T + t] = seq[t]; tgt[b * T + t] = seq[t + 1]; mask[b * T + t] = t + 1 >= PROMPT; }
    }
}

static double loss_at(rp_trainer *tr, const double *ref, double beta) {
    double ce, lp[B];
    rp_dpo_stats s;
    if (rp_trainer_eval(tr, tok, tgt, mask, B, T, &ce, lp) != RP_OK) return NAN;
    if (rp_dpo_loss(lp, ref, P, beta, &s, NULL) != RP_OK) return NAN;
    return s.loss;
}

/* Largest |Δp - (-lr·g/(|g| + eps))| over parameters with |g| > 1e-4 after one update from weights p0 with
 * gradients g0 (the closed form of a fresh AdamW's first step, weight decay 0, no clipping); -1 on error. */
static double first_step_deviation(rp_trainer *tr, float **p0, float **g0, float lr) {
    float *p, *g;
    int64_t n;
    if (rp_trainer_update(tr, lr, 0, NULL) != RP_OK) return -1;
    double dev = 0;
    for (int i = 0; rp_trainer_param(tr, i, &p, &g, &n) != NULL; i++)
        for (int64_t j = 0; j < n; j++) {
            double gj = g0[i][j];
            if (fabs(gj) <= 1e-4) continue;
            dev = fmax(dev, fabs((p[j] - p0[i][j]) + lr * gj / (fabs(gj) + 1e-8)));
        }
    return dev;
}

/* The same weights and gradients (recomputed from the same weights) stepped with the carried moments and after a
 * reset: only the reset gives the fresh first step (and a step count of 0 before it). */
static void test_reset_optimizer(rp_trainer *tr, dpo_ud *u) {
    enum { MAXP = 64 };
    float *p0[MAXP] = {0}, *g0[MAXP] = {0}, *p, *g;
    int64_t n;
    int np = 0;
    double loss;
    rp_trainer_zero_grad(tr);
    CHECK(rp_trainer_forward_backward(tr, tok, tgt, mask, B, T, dpo_hook, u, &loss) == RP_OK);
    for (; np < MAXP && rp_trainer_param(tr, np, &p, &g, &n) != NULL; np++) {
        p0[np] = malloc((size_t)n * sizeof *p);
        g0[np] = malloc((size_t)n * sizeof *g);
        if (!p0[np] || !g0[np]) { CHECK(0); return; }
        memcpy(p0[np], p, (size_t)n * sizeof *p);
        memcpy(g0[np], g, (size_t)n * sizeof *g);
    }
    CHECK(np < MAXP && rp_trainer_step_count(tr) == 1);
    const float lr = 1e-3f;
    double carried = first_step_deviation(tr, p0, g0, lr);
    rp_trainer_reset_optimizer(tr);
    CHECK(rp_trainer_step_count(tr) == 0);
    int64_t nonzero = 0;
    for (int i = 0; rp_trainer_param(tr, i, &p, &g, &n) != NULL; i++) {
        for (int64_t j = 0; j < n; j++) nonzero += g[j] != 0;
        memcpy(p, p0[i], (size_t)n * sizeof *p);
    }
    CHECK_MSG(nonzero == 0, "%lld gradients not zeroed by the reset", (long long)nonzero);
    CHECK(rp_trainer_forward_backward(tr, tok, tgt, mask, B, T, dpo_hook, u, &loss) == RP_OK);   /* the same g0 again */
    double fresh = first_step_deviation(tr, p0, g0, lr);
    printf("AdamW after reset: first-step deviation %.3g (carried moments: %.3g), lr %g\n", fresh, carried, lr);
    CHECK_MSG(fresh >= 0 && fresh < 1e-3 * lr, "after reset the update deviates from -lr·g/|g| by %.3g", fresh);
    CHECK_MSG(carried > 0.05 * lr, "carried moments gave the fresh step too (%.3g): the check cannot tell them apart", carried);
    CHECK(rp_trainer_step_count(tr) == 1);
    for (int i = 0; i < np; i++) { free(p0[i]); free(g0[i]); }
}

static void test_through_model(const rp_model_file *f) {
    rp_train_opts o = { .method = RP_TRAIN_LORA, .B = B, .T = T, .lora_rank = 4, .lora_alpha = 8, .lora_dropout = 0,
                        .lora_targets = "attn_q,attn_v,ffn_up", .adamw = { 0.9f, 0.999f, 1e-8f, 0 }, .seed = 3, .n_threads = 1 };
    rp_trainer *tr = NULL;
    CHECK(rp_trainer_new(f, NULL, &o, &tr) == RP_OK);
    if (!tr) return;
    make_batch();
    double ce, ref[B];
    CHECK(rp_trainer_eval(tr, tok, tgt, mask, B, T, &ce, ref) == RP_OK);
    /* masking: a mask on the response only gives a smaller magnitude than scoring every position */
    double all[B];
    CHECK(rp_trainer_eval(tr, tok, tgt, NULL, B, T, &ce, all) == RP_OK);
    for (int b = 0; b < B; b++) CHECK(ref[b] < 0 && all[b] < ref[b]);
    dpo_ud u = { ref, 0.5 };
    double loss;
    CHECK(rp_trainer_forward_backward(tr, tok, tgt, mask, B, T, dpo_hook, &u, &loss) == RP_OK);
    CHECK_MSG(fabs(loss - log(2.0)) < 1e-6, "step start loss %.12g vs ln 2", loss);
    /* one real step so that both LoRA factors are non-zero (B starts at 0), then the reference moves away */
    CHECK(rp_trainer_update(tr, 2e-3f, 0, NULL) == RP_OK);
    for (int b = 0; b < B; b++) ref[b] += (b % 2 ? 0.3 : -0.2);
    rp_trainer_zero_grad(tr);
    CHECK(rp_trainer_forward_backward(tr, tok, tgt, mask, B, T, dpo_hook, &u, &loss) == RP_OK);
    CHECK_MSG(fabs(loss - loss_at(tr, ref, u.beta)) < 1e-6, "forward_backward loss %.9g vs eval %.9g", loss, loss_at(tr, ref, u.beta));
    printf("loss after one step, reference moved: %.6f\n", loss);
    CHECK(loss > 0.05 && loss < 5);   /* not saturated: the gradient is not vanishing */
    int checked = 0, bad = 0;
    float *p, *g;
    int64_t n;
    const char *name;
    for (int i = 0; (name = rp_trainer_param(tr, i, &p, &g, &n)) != NULL; i++) {
        for (int k = 0; k < 3; k++) {
            int64_t j = (int64_t)((k * 7919 + i * 104729) % n);
            float keep = p[j];
            double h = 1e-2;   /* float32 forward: loss noise ~1e-6, so FD noise ~1e-4 */
            p[j] = keep + (float)h; double a = loss_at(tr, ref, u.beta);
            p[j] = keep - (float)h; double c = loss_at(tr, ref, u.beta);
            p[j] = keep;
            double fd = (a - c) / (2 * h);
            double tol = 4e-4 + 0.05 * fabs(fd);
            checked++;
            if (getenv("SDPO_VERBOSE")) fprintf(stderr, "%s[%lld] fd %.6g an %.6g\n", name, (long long)j, fd, g[j]);
            if (fabs(fd - g[j]) > tol) { bad++; fprintf(stderr, "%s[%lld]: fd %.6g analytic %.6g\n", name, (long long)j, fd, g[j]); }
        }
    }
    CHECK_MSG(checked >= 30 && bad == 0, "%d of %d LoRA parameters disagree with finite differences", bad, checked);
    printf("dpo through stories260K + LoRA: %d parameters checked against finite differences\n", checked);
    test_reset_optimizer(tr, &u);
    rp_trainer_free(tr);
}

int main(void) {
    const char *m = getenv("REPRO_MIRROR");
    char path[4096];
    snprintf(path, sizeof path, "%s/stories260K/stories260K.bin", m ? m : "");
    rp_model_file *f = NULL;
    if (!m || !*m || rp_model_file_open(path, &f) != RP_OK) {
        printf("skip [mirror]: stories260K.bin not found (REPRO_MIRROR)\n");
        return checks_done("test_sdpo_train");
    }
    test_through_model(f);
    rp_model_file_free(f);
    return checks_done("test_sdpo_train");
}
