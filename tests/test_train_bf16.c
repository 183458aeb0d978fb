/* test_train_bf16.c: the trainer's precision "bf16" (the linears' products with bf16 inputs and fp32 sums,
 * gemm_bf16.h) against precision "fp32" on the stories260K checkpoint: full fine-tuning, the same seed and the
 * same batches, 10 AdamW steps. Stated tolerance: every step's training loss within 1% (relative) of the fp32
 * run's, and the held-in loss after the last step too; the bf16 run must also learn (its loss falls by a third)
 * and must differ from the fp32 run (else the route was not taken). LoRA with precision "bf16" (the frozen base's
 * dx products on the bf16 route, the rank-8 adapters' products kept fp32) within the same 1%. Without a bf16
 * unit the trainer says "fp32 (no bf16 unit)" and its losses equal the fp32 run's bit for bit; the units below the
 * machine's best (AVX512-BF16 under AMX, and none) are checked here too by capping the unit. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "nn/train_llama.h"
#include "tensor/gemm_bf16.h"

#define BATCH 4
#define SEQ 32
#define STEPS 10

/* B sequences of T + 1 tokens from a small repeating-with-noise stream: inputs and their next tokens. */
static void make_batch(int V, int32_t *tok, int32_t *tgt) {
    uint64_t s = 12345;
    for (int b = 0; b < BATCH; b++) {
        int32_t prev = (int32_t)(b * 37 % V);
        for (int t = 0; t < SEQ; t++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            int32_t next = (s >> 60) < 12 ? (prev * 7 + 3) % V : (int32_t)((s >> 33) % (uint64_t)V);
            tok[b * SEQ + t] = prev;
            tgt[b * SEQ + t] = next;
            prev = next;
        }
    }
}

/* STEPS steps of the given method and precision: the training losses, then the held-in loss. */
static int run(const rp_model_file *f, rp_train_method method, rp_train_precision prec, double *loss, const char **used) {
    rp_train_opts o = { .method = method, .B = BATCH, .T = SEQ, .adamw = { 0.9f, 0.999f, 1e-8f, 0.0f }, .seed = 7, .n_threads = 2,
                        .lora_rank = 8, .lora_alpha = 16, .lora_targets = "attn_q,attn_v,ffn_down", .precision = prec };
    rp_trainer *tr = NULL;
    if (rp_trainer_new(f, NULL, &o, &tr) != RP_OK) { fprintf(stderr, "%s\n", rp_errmsg()); return 0; }
    *used = rp_trainer_precision(tr);
    int V = rp_trainer_config(tr)->vocab, ok = 1;
    int32_t tok[BATCH * SEQ], tgt[BATCH * SEQ];
    make_batch(V, tok, tgt);
    for (int s = 0; s < STEPS && ok; s++)
        ok = rp_trainer_forward_backward(tr, tok, tgt, NULL, BATCH, SEQ, NULL, NULL, &loss[s]) == RP_OK &&
             rp_trainer_update(tr, method == RP_TRAIN_FULL ? 3e-3f : 1e-2f, 1.0f, NULL) == RP_OK;
    ok = ok && rp_trainer_eval(tr, tok, tgt, NULL, BATCH, SEQ, &loss[STEPS], NULL) == RP_OK;
    rp_trainer_free(tr);
    return ok;
}

/* Both precisions of one method: the worst relative gap over the steps and the final held-in loss. */
static void compare(const rp_model_file *f, rp_train_method method, const char *label) {
    double l32[STEPS + 1], l16[STEPS + 1], worst = 0;
    const char *u32 = NULL, *u16 = NULL;
    CHECK(run(f, method, RP_TRAIN_FP32, l32, &u32));
    CHECK(run(f, method, RP_TRAIN_BF16, l16, &u16));
    if (!u32 || !u16) return;
    CHECK(!strcmp(u32, "fp32"));
    int differs = 0;
    for (int s = 0; s <= STEPS; s++) {
        worst = fmax(worst, fabs(l16[s] - l32[s]) / l32[s]);
        differs |= l16[s] != l32[s];
    }
    if (rp_gemm_bf16_unit() == RP_BF16_NONE) {
        CHECK_MSG(!strcmp(u16, "fp32 (no bf16 unit)") && !differs, "%s: no bf16 unit, yet precision %s and losses that differ", label, u16);
        printf("# %s: precision bf16 asked, '%s' ran: losses equal fp32's bit for bit\n", label, u16);
        return;
    }
    CHECK_MSG(!strncmp(u16, "bf16 (", 6), "%s: precision bf16 reported as '%s'", label, u16);
    CHECK_MSG(differs, "%s: bf16 losses equal fp32's bit for bit: the bf16 route was not taken", label);
    CHECK_MSG(worst < 1e-2, "%s: bf16 losses %.3g relative from fp32's (tolerance 1%%)", label, worst);
    CHECK_MSG(l16[STEPS] < l16[0] * 2.0 / 3.0, "%s: bf16 run did not learn (loss %.4f -> %.4f)", label, l16[0], l16[STEPS]);
    printf("# %s, %s: loss %.4f -> %.4f (fp32 %.4f -> %.4f) over %d steps; worst gap %.2g relative (tolerance 1e-2)\n", label, u16,
           l16[0], l16[STEPS], l32[0], l32[STEPS], STEPS, worst);
}

/* The mirror's stories260K checkpoint, or NULL (the reason printed) when there is none. */
static rp_model_file *stories(void) {
    const char *m = getenv("REPRO_MIRROR");
    char path[4096];
    rp_model_file *f = NULL;
    if (m && *m && snprintf(path, sizeof path, "%s/stories260K/stories260K.bin", m) < (int)sizeof path &&
        rp_model_file_open(path, &f) == RP_OK)
        return f;
    fprintf(stderr, "%s\n", m && *m ? rp_errmsg() : "REPRO_MIRROR not set");
    return NULL;
}

int main(void) {
    rp_model_file *f = stories();
    if (!f) {
        printf("skip [mirror]: stories260K.bin not found (REPRO_MIRROR)\n");
        return checks_done("train_bf16");
    }
    rp_bf16_unit best = rp_gemm_bf16_best();
    if (best == RP_BF16_NONE) printf("skip: no bf16 unit here: checking the fp32 fallback only\n");
    compare(f, RP_TRAIN_FULL, "full");
    compare(f, RP_TRAIN_LORA, "lora");
    for (int u = (int)best - 1; u >= RP_BF16_NONE; u--) {   /* the lower units, down to none (the fallback), capped here */
        CHECK(rp_gemm_bf16_use((rp_bf16_unit)u) == RP_OK);
        compare(f, RP_TRAIN_FULL, u ? "full, unit capped" : "full, no unit (capped)");
    }
    CHECK(rp_gemm_bf16_use(best) == RP_OK);
    rp_model_file_free(f);
    rp_train_precision p;
    CHECK(rp_train_precision_parse("bf16", &p) == RP_OK && p == RP_TRAIN_BF16);
    CHECK(rp_train_precision_parse("fp16", &p) == RP_ERR_INVAL && strstr(rp_errmsg(), "fp16"));
    return checks_done("train_bf16");
}
