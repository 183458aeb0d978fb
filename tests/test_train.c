/* test_train.c: the Llama trainer end to end. The gradient of every trainable tensor (sampled coordinates)
 * against central finite differences of the trainer's own forward loss, for: full training from scratch
 * (tied and untied heads, a prompt mask), a plugin loss over per-sequence log-probabilities (a DPO-style
 * −log σ(β·(lp₀ − lp₁)) whose gradient the test supplies), LoRA on stories260K's f32 base and QLoRA on
 * its NF4 re-quantization (after one step, so that B ≠ 0 and A has a gradient); then that the frozen base
 * never moves, that accumulating two half-batches equals one batch, that a checkpoint resumes bit for bit
 * (dropout on), that bad batches are errors naming the position, and that LoRA / QLoRA adapters merged into
 * dense weights (rp_trainer_export) give the adapter model's logits, and that a bf16-stored frozen base stays
 * within its stated tolerance of the f32 one. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "check.h"
#include "nn/train_llama.h"
#include "model/model_file.h"
#include "test_vectors.h"

typedef struct batch { int B, T; int32_t *tok, *tgt; uint8_t *mask; } batch;

static batch make_batch(int B, int T, int V) {
    batch b = { B, T, malloc((size_t)(B * T) * sizeof(int32_t)), malloc((size_t)(B * T) * sizeof(int32_t)), malloc((size_t)(B * T)) };
    for (int i = 0; i < B * T; i++) {
        b.tok[i] = (int32_t)((rng = rng * 6364136223846793005ull + 1442695040888963407ull) >> 33) % V;
        b.tgt[i] = (int32_t)((rng = rng * 6364136223846793005ull + 1442695040888963407ull) >> 33) % V;
        b.mask[i] = (uint8_t)(i % T >= 2);   /* the first two positions of each sequence are "prompt" */
    }
    return b;
}

static void free_batch(batch *b) { free(b->tok); free(b->tgt); free(b->mask); }

typedef struct dpo { double beta; } dpo;
static rp_status dpo_loss(void *ud, const double *lp, int B, double *loss, double *dlp) {
    double beta = ((dpo *)ud)->beta, z = beta * (lp[0] - lp[1]);
    if (B != 2) return rp_fail(RP_ERR_INVAL, "dpo: %d sequences", B);
    double sig = 1.0 / (1.0 + exp(-z));
    *loss = -log(sig);
    dlp[0] = -(1 - sig) * beta;
    dlp[1] = (1 - sig) * beta;
    return RP_OK;
}

static double eval_loss(rp_trainer *tr, const batch *b, dpo *d) {
    double loss, lp[8];
    if (rp_trainer_eval(tr, b->tok, b->tgt, b->mask, b->B, b->T, &loss, lp) != RP_OK) return NAN;
    if (d) dpo_loss(d, lp, b->B, &loss, lp + 2);
    return loss;
}

/* Every trainable tensor's gradient against central differences (a few coordinates each). */
static void fd_check(const char *label, rp_trainer *tr, const batch *b, dpo *d, double tol) {
    double loss;
    rp_trainer_zero_grad(tr);
    CHECK(rp_trainer_forward_backward(tr, b->tok, b->tgt, b->mask, b->B, b->T, d ? dpo_loss : NULL, d, &loss) == RP_OK);
    CHECK_NEAR(loss, eval_loss(tr, b, d), 1e-6);
    double worst = 0;
    const char *wname = "";
    float *p, *g;
    int64_t n;
    for (int i = 0; rp_trainer_param(tr, i, &p, &g, &n); i++) {
        double gmax = 1e-4;
        for (int64_t k = 0; k < n; k++) gmax = fmax(gmax, fabs(g[k]));
        for (int s = 0; s < 5; s++) {
            int64_t k = (int64_t)((rng = rng * 6364136223846793005ull + 1442695040888963407ull) >> 33) % n;
            float keep = p[k], h = 1e-2f * fmaxf(1.0f, fabsf(keep));
            p[k] = keep + h; double lp = eval_loss(tr, b, d);
            p[k] = keep - h; double lm = eval_loss(tr, b, d);
            p[k] = keep;
            double e = fabs((lp - lm) / (2.0 * h) - g[k]) / gmax;
            if (e > worst) { worst = e; wname = rp_trainer_param(tr, i, &p, &g, &n); }
        }
    }
    CHECK_MSG(worst < tol, "%s: worst gradient error %.3g (of its tensor's largest) in %s", label, worst, wname);
    printf("%s: gradients vs finite differences, worst %.2g of the tensor's largest\n", label, worst);
    rp_trainer_zero_grad(tr);
}

static rp_train_opts base_opts(void) {
    rp_train_opts o = { .method = RP_TRAIN_FULL, .B = 2, .T = 6, .adamw = { 0.9f, 0.999f, 1e-8f, 0.0f }, .init_std = 0.3f,
                        .seed = 7, .n_threads = 2 };
    return o;
}

static void test_scratch(int tied) {
    rp_llama_config c = { .n_layer = 2, .dim = 16, .n_head = 4, .n_head_kv = 2, .head_dim = 4, .ffn_dim = 24, .vocab = 13,
                          .rope_dim = 4, .rope_neox = tied, .rope_base = 10000.0f, .norm_eps = 1e-5f, .context_len = 64,
                          .tied_embeddings = tied };
    rp_train_opts o = base_opts();
    rp_trainer *tr = NULL;
    CHECK(rp_trainer_new(NULL, &c, &o, &tr) == RP_OK);
    if (!tr) { fprintf(stderr, "%s\n", rp_errmsg()); return; }
    batch b = make_batch(2, 6, c.vocab);
    fd_check(tied ? "scratch, tied head" : "scratch, untied head", tr, &b, NULL, 1e-2);
    dpo d = { 0.5 };
    fd_check("scratch, DPO loss hook", tr, &b, &d, 1e-2);
    /* two half-batches accumulated = one batch of both (each half's loss is its own mean, so use equal counts) */
    float *p, *g;
    int64_t n;
    double l1, l2, gn1, gn2;
    CHECK(rp_trainer_forward_backward(tr, b.tok, b.tgt, b.mask, 2, 6, NULL, NULL, &l1) == RP_OK);
    rp_trainer_param(tr, 1, &p, &g, &n);
    float *g_full = malloc((size_t)n * sizeof *g_full);
    memcpy(g_full, g, (size_t)n * sizeof *g_full);
    rp_trainer_zero_grad(tr);
    CHECK(rp_trainer_forward_backward(tr, b.tok, b.tgt, b.mask, 1, 6, NULL, NULL, &l2) == RP_OK);
    CHECK(rp_trainer_forward_backward(tr, b.tok + 6, b.tgt + 6, b.mask + 6, 1, 6, NULL, NULL, &l2) == RP_OK);
    double e = 0, mx = 1e-9;
    for (int64_t k = 0; k < n; k++) { e = fmax(e, fabs(g[k] * 0.5 - g_full[k])); mx = fmax(mx, fabs(g_full[k])); }
    CHECK_MSG(e / mx < 1e-5, "accumulated half-batches vs whole batch: %g", e / mx);
    CHECK(rp_trainer_update(tr, 1e-2f, 0, &gn2) == RP_OK);
    CHECK(rp_trainer_forward_backward(tr, b.tok, b.tgt, b.mask, 2, 6, NULL, NULL, &l1) == RP_OK);
    CHECK(rp_trainer_update(tr, 1e-2f, 1e-3f, &gn1) == RP_OK && gn1 > 1e-3);   /* clipped step still runs */
    free(g_full);
    /* bad input names where it is */
    b.tok[7] = 13;
    CHECK(rp_trainer_forward_backward(tr, b.tok, b.tgt, b.mask, 2, 6, NULL, NULL, &l1) == RP_ERR_RANGE);
    CHECK(strstr(rp_errmsg(), "sequence 1 position 1") != NULL);
    CHECK(rp_trainer_forward_backward(tr, b.tok, b.tgt, b.mask, 3, 6, NULL, NULL, &l1) == RP_ERR_INVAL);
    CHECK(rp_trainer_update(tr, 1e-2f, 0, NULL) == RP_ERR_INVAL);
    free_batch(&b);
    rp_trainer_free(tr);
}

/* A random init drawn on 1 and on 2 threads (tensors over one 64K-element task): the same weights. */
static void test_init_threads(void) {
    rp_llama_config c = { .n_layer = 1, .dim = 16, .n_head = 4, .n_head_kv = 2, .head_dim = 4, .ffn_dim = 24, .vocab = 9001,
                          .rope_dim = 4, .rope_base = 10000.0f, .norm_eps = 1e-5f, .context_len = 64, .tied_embeddings = 1 };
    rp_train_opts o = base_opts();
    rp_trainer *tr[2] = { NULL, NULL };
    for (int k = 0; k < 2; k++) {
        o.n_threads = k + 1;
        CHECK(rp_trainer_new(NULL, &c, &o, &tr[k]) == RP_OK);
    }
    if (!tr[0] || !tr[1]) { rp_trainer_free(tr[0]); rp_trainer_free(tr[1]); return; }
    float *p[2], *g;
    int64_t n[2];
    CHECK(!strcmp(rp_trainer_param(tr[0], 0, &p[0], &g, &n[0]), "token_embd.weight"));
    rp_trainer_param(tr[1], 0, &p[1], &g, &n[1]);
    CHECK(n[0] == 9001 * 16 && n[1] == n[0] && memcmp(p[0], p[1], (size_t)n[0] * sizeof(float)) == 0);
    double s = 0, s2 = 0;   /* and they are N(0, 0.3²): mean and spread within 4 standard errors */
    for (int64_t i = 0; i < n[0]; i++) { s += p[0][i]; s2 += (double)p[0][i] * p[0][i]; }
    double mean = s / (double)n[0], sd = sqrt(s2 / (double)n[0] - mean * mean);
    CHECK_MSG(fabs(mean) < 4 * 0.3 / sqrt((double)n[0]) && fabs(sd - 0.3) < 4 * 0.3 / sqrt(2.0 * (double)n[0]),
              "init mean %g sd %g (N(0, 0.3^2))", mean, sd);
    for (int k = 0; k < 2; k++) rp_trainer_free(tr[k]);
}

static const char *stories(void) {
    static char p[4096];
    const char *m = getenv("REPRO_MIRROR");
    if (!m || !*m) return NULL;
    snprintf(p, sizeof p, "%s/stories260K/stories260K.bin", m);
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    fclose(f);
    return p;
}

/* The frozen base's weights, summed, to see that training leaves them alone. */
static double base_sum(const rp_model_file *f) {
    double s = 0;
    const rp_weight *w = rp_model_file_weight(f, "blk.0.attn_q.weight");
    for (int64_t i = 0; i < w->shape[0] * w->shape[1]; i++) s += ((const float *)w->data)[i];
    return s;
}

static void test_lora(rp_model_file *f, rp_train_method method) {
    rp_train_opts o = base_opts();
    o.method = method; o.lora_rank = 2; o.lora_alpha = 4; o.lora_targets = "q_proj,attn_v,ffn_up,ffn_down";
    rp_trainer *tr = NULL;
    CHECK(rp_trainer_new(f, NULL, &o, &tr) == RP_OK);
    if (!tr) { fprintf(stderr, "%s\n", rp_errmsg()); return; }
    const rp_llama_config *c = rp_trainer_config(tr);
    int64_t want = 0;   /* r·(in + out) per targeted linear: q (64→64), v (64→32), up (64→172), down (172→64) */
    want = (int64_t)c->n_layer * 2 * ((64 + 64) + (64 + 32) + (64 + 172) + (172 + 64));
    CHECK_MSG(rp_trainer_n_params(tr) == want, "%lld adapter parameters, want %lld", (long long)rp_trainer_n_params(tr), (long long)want);
    batch b = make_batch(2, 6, c->vocab);
    double before = base_sum(f), loss;
    CHECK(rp_trainer_forward_backward(tr, b.tok, b.tgt, b.mask, 2, 6, NULL, NULL, &loss) == RP_OK);
    CHECK(rp_trainer_update(tr, 0.05f, 0, NULL) == RP_OK);
    fd_check(method == RP_TRAIN_LORA ? "lora on stories260K" : "qlora (nf4) on stories260K", tr, &b, NULL, 1e-2);
    CHECK(base_sum(f) == before);
    free_batch(&b);
    rp_trainer_free(tr);
    o.lora_targets = "attn_q,wq";
    CHECK(rp_trainer_new(f, NULL, &o, &tr) == RP_ERR_INVAL && strstr(rp_errmsg(), "'wq'") != NULL);
}

/* Losses of steps [from, to) with dropout on; a checkpoint written after step `save_at` when path != NULL. */
static void run_steps(rp_trainer *tr, const batch *b, int from, int to, double *losses, const char *path, int save_at) {
    for (int s = from; s < to; s++) {
        int off = s % 2;   /* deterministic data order: alternate sequences */
        CHECK(rp_trainer_forward_backward(tr, b->tok + off * 6, b->tgt + off * 6, b->mask + off * 6, 1, 6, NULL, NULL, &losses[s]) == RP_OK);
        CHECK(rp_trainer_update(tr, 0.02f, 1.0f, NULL) == RP_OK);
        if (path && s + 1 == save_at) CHECK(rp_trainer_save(tr, path) == RP_OK);
    }
}

static void test_resume(rp_model_file *f) {
    rp_train_opts o = base_opts();
    o.method = RP_TRAIN_LORA; o.lora_rank = 4; o.lora_alpha = 8; o.lora_dropout = 0.1f; o.lora_targets = "attn_q,attn_k,attn_v,attn_output";
    o.adamw.weight_decay = 0.01f;
    rp_trainer *a = NULL, *r = NULL;
    CHECK(rp_trainer_new(f, NULL, &o, &a) == RP_OK && rp_trainer_new(f, NULL, &o, &r) == RP_OK);
    if (!a || !r) return;
    batch b = make_batch(2, 6, 512);
    double la[8], lr[8];
    char path[] = "/tmp/rp_test_train_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    run_steps(a, &b, 0, 8, la, path, 4);
    CHECK(rp_trainer_load(r, path) == RP_OK);
    CHECK(rp_trainer_step_count(r) == 4);
    run_steps(r, &b, 4, 8, lr, NULL, 0);
    int same = 1;
    for (int s = 4; s < 8; s++) same &= la[s] == lr[s];
    CHECK_MSG(same, "resumed losses differ: %.9g vs %.9g", la[7], lr[7]);
    CHECK(la[7] < la[1]);
    /* a checkpoint of another shape is refused, naming the tensor, and the trainer keeps its state */
    o.lora_rank = 2;
    rp_trainer *other = NULL;
    CHECK(rp_trainer_new(f, NULL, &o, &other) == RP_OK);
    if (other) {
        CHECK(rp_trainer_load(other, path) == RP_ERR_FORMAT);
        CHECK(strstr(rp_errmsg(), "lora_a") != NULL && strstr(rp_errmsg(), path) != NULL);
        CHECK(rp_trainer_step_count(other) == 0);
        rp_trainer_free(other);
    }
    remove(path);
    free_batch(&b);
    rp_trainer_free(a);
    rp_trainer_free(r);
}

/* Export sink: copy each merged weight into the full trainer's tensor of the same name. */
typedef struct load_into { rp_trainer *tr; int matched, bad; } load_into;
static rp_status copy_weight(void *ud, const char *name, const float *data, int64_t rows, int64_t cols) {
    load_into *li = ud;
    float *p, *g;
    int64_t n;
    const char *pn;
    for (int i = 0; (pn = rp_trainer_param(li->tr, i, &p, &g, &n)); i++)
        if (!strcmp(pn, name)) {
            if (n != rows * cols) { li->bad++; return rp_fail(RP_ERR_FORMAT, "%s: %lld values, want %lld", name, (long long)(rows * cols), (long long)n); }
            memcpy(p, data, (size_t)n * sizeof *p);
            li->matched++;
            return RP_OK;
        }
    li->bad++;
    return rp_fail(RP_ERR_NOTFOUND, "export gave %s, which the full trainer lacks", name);
}

static double logits_diff(const float *a, const float *b, int64_t n) {
    double e = 0, mx = 1e-9;
    for (int64_t i = 0; i < n; i++) { e = fmax(e, fabs((double)a[i] - b[i])); mx = fmax(mx, fabs(a[i])); }
    return e / mx;
}

/* LoRA (or QLoRA) trained a few steps, merged into dense weights and loaded into a full trainer: the merged
 * model's logits equal the adapter model's (eval mode), and differ from the untouched base's. */
static void test_merge(rp_model_file *f, rp_train_method method) {
    rp_train_opts o = base_opts();
    o.method = method; o.lora_rank = 4; o.lora_alpha = 8; o.lora_dropout = 0.1f;
    o.lora_targets = "attn_q,attn_k,attn_v,attn_output,ffn_gate,ffn_up,ffn_down";
    rp_trainer *a = NULL, *full = NULL;
    CHECK(rp_trainer_new(f, NULL, &o, &a) == RP_OK);
    rp_train_opts of = base_opts();
    CHECK(rp_trainer_new(f, NULL, &of, &full) == RP_OK);
    if (!a || !full) { rp_trainer_free(a); rp_trainer_free(full); return; }
    batch b = make_batch(2, 6, 512);
    double loss, la, lm, l0;
    for (int s = 0; s < 3; s++) {
        CHECK(rp_trainer_forward_backward(a, b.tok, b.tgt, b.mask, 2, 6, NULL, NULL, &loss) == RP_OK);
        CHECK(rp_trainer_update(a, 0.05f, 1.0f, NULL) == RP_OK);
    }
    int64_t n = 2 * 6 * (int64_t)rp_trainer_config(a)->vocab;
    float *base = malloc((size_t)n * sizeof *base), *adapted = malloc((size_t)n * sizeof *adapted);
    CHECK(rp_trainer_eval(full, b.tok, b.tgt, b.mask, 2, 6, &l0, NULL) == RP_OK);
    memcpy(base, rp_trainer_logits(full), (size_t)n * sizeof *base);
    CHECK(rp_trainer_eval(a, b.tok, b.tgt, b.mask, 2, 6, &la, NULL) == RP_OK);
    memcpy(adapted, rp_trainer_logits(a), (size_t)n * sizeof *adapted);
    load_into li = { full, 0, 0 };
    CHECK(rp_trainer_export(a, copy_weight, &li) == RP_OK);
    int n_full = 0;
    float *p, *g;
    int64_t k;
    while (rp_trainer_param(full, n_full, &p, &g, &k)) n_full++;
    CHECK_MSG(li.matched == n_full && !li.bad, "export matched %d of %d tensors (%d bad)", li.matched, n_full, li.bad);
    CHECK(rp_trainer_eval(full, b.tok, b.tgt, b.mask, 2, 6, &lm, NULL) == RP_OK);
    double e = logits_diff(rp_trainer_logits(full), adapted, n), moved = logits_diff(base, adapted, n);
    const char *label = method == RP_TRAIN_LORA ? "lora" : "qlora";
    CHECK_MSG(e < 1e-5, "%s merged logits vs adapter logits: %g", label, e);
    CHECK_MSG(moved > 1e-3, "%s adapter left the logits where the base had them (%g): the merge check would be vacuous", label, moved);
    printf("%s merged into dense f32: logits within %.2g of the adapter model's (which moved %.2g from the base); loss %.6f vs %.6f\n",
           label, e, moved, lm, la);
    free(base); free(adapted);
    free_batch(&b);
    rp_trainer_free(a);
    rp_trainer_free(full);
}

/* LoRA over the f32 stories260K base stored as bf16 (8 mantissa bits: 2^-9 relative per weight): logits within
 * the stated 1% of their largest magnitude of the f32 base's, and the losses of 4 identical steps within 2%. */
static void test_bf16(rp_model_file *f) {
    rp_train_opts o = base_opts();
    o.method = RP_TRAIN_LORA; o.lora_rank = 4; o.lora_alpha = 8; o.lora_targets = "attn_q,attn_v,ffn_down";
    rp_trainer *a = NULL, *h = NULL;
    CHECK(rp_trainer_new(f, NULL, &o, &a) == RP_OK);
    o.bf16_base = 1;
    CHECK(rp_trainer_new(f, NULL, &o, &h) == RP_OK);
    if (!a || !h) { rp_trainer_free(a); rp_trainer_free(h); return; }
    batch b = make_batch(2, 6, 512);
    int64_t n = 2 * 6 * (int64_t)rp_trainer_config(a)->vocab;
    float *la = malloc((size_t)n * sizeof *la);
    double first = 0, worst_loss = 0, loss_a, loss_h;
    for (int s = 0; s < 4; s++) {
        CHECK(rp_trainer_eval(a, b.tok, b.tgt, b.mask, 2, 6, &loss_a, NULL) == RP_OK);
        memcpy(la, rp_trainer_logits(a), (size_t)n * sizeof *la);
        CHECK(rp_trainer_eval(h, b.tok, b.tgt, b.mask, 2, 6, &loss_h, NULL) == RP_OK);
        if (s == 0) first = logits_diff(la, rp_trainer_logits(h), n);
        worst_loss = fmax(worst_loss, fabs(loss_h - loss_a) / loss_a);
        CHECK(rp_trainer_forward_backward(a, b.tok, b.tgt, b.mask, 2, 6, NULL, NULL, &loss_a) == RP_OK && rp_trainer_update(a, 0.02f, 1.0f, NULL) == RP_OK);
        CHECK(rp_trainer_forward_backward(h, b.tok, b.tgt, b.mask, 2, 6, NULL, NULL, &loss_h) == RP_OK && rp_trainer_update(h, 0.02f, 1.0f, NULL) == RP_OK);
    }
    CHECK_MSG(first < 1e-2, "bf16 base: logits %.3g of their largest from the f32 base's (tolerance 1%%)", first);
    CHECK_MSG(first > 0, "bf16 base gave the f32 logits exactly: the base was not converted");
    CHECK_MSG(worst_loss < 2e-2, "bf16 base: held-in loss %.3g relative from the f32 run's over 4 steps (tolerance 2%%)", worst_loss);
    printf("lora on a bf16-stored base: logits within %.2g of the f32 base's largest (tolerance 1e-2); losses over 4 steps within "
           "%.2g relative (tolerance 2e-2)\n", first, worst_loss);
    free(la);
    free_batch(&b);
    rp_trainer_free(a);
    rp_trainer_free(h);
}

int main(void) {
    test_scratch(0);
    test_scratch(1);
    test_init_threads();
    const char *sp = stories();
    rp_model_file *f = NULL;
    if (!sp || rp_model_file_open(sp, &f) != RP_OK) {
        printf("skip: stories260K.bin not found (REPRO_MIRROR)\n");
    } else {
        test_lora(f, RP_TRAIN_LORA);
        test_lora(f, RP_TRAIN_QLORA);
        test_resume(f);
        test_merge(f, RP_TRAIN_LORA);
        test_merge(f, RP_TRAIN_QLORA);
        test_bf16(f);
        rp_model_file_free(f);
    }
    return checks_done("train");
}
