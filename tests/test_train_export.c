/* test_train_export.c: trained models written as GGUF (rp_trainer_write_gguf) and loaded back by the inference
 * engine. On stories260K (llama2.c, f32): a LoRA-trained model exported as F32 gives the trainer's adapter
 * logits (float tolerance: two different forward implementations), as F16 within a stated tolerance, and the
 * untrained model's export gives the original model's logits bit for bit; the file carries the tokenizer (from
 * tok512.bin) and it encodes and decodes as the llama2.c one. On a quantized stories260K built here (Q4_0, Q4_1,
 * Q8_0 and F16 linears, Q8_0 embeddings): re-quantizing unchanged weights to the base types reproduces every
 * tensor's bytes; a trained model exported in the base types stays within a tolerance of the adapter logits.
 * An F16 GGUF (untied head, its own tokenizer keys) exports unchanged weights byte for byte.
 * A trainer built on a pruned export writes the pruned layer count and names; a from-scratch trainer writes
 * llama metadata of its own; K-quant exports (q4_k / q6_k) write what the quantizer makes of the f32 weights,
 * and a K-quant base exports untrained in its own types byte for byte; bad types and bad paths are errors that
 * name them. Skips without the mirror. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "check.h"
#include "model/gguf_write.h"
#include "model/tokenizer.h"
#include "nn/llama.h"
#include "nn/train_export.h"
#include "plugins/prune/prune.h"
#include "tensor/quant.h"
#include "test_vectors.h"

enum { T = 12 };
static char tmpdir[] = "/tmp/rp_train_export_XXXXXX";

static const char *tmp(const char *name) {
    static char p[8][256];
    static int k;
    char *s = p[k++ % 8];
    snprintf(s, 256, "%s/%s", tmpdir, name);
    return s;
}

/* Logits [T, V] of ids on the model in the GGUF at path (its own tokenizer must load), or NULL. */
static float *model_logits(const char *path, const int32_t *ids, int n, int *V) {
    rp_model *m;
    if (rp_model_load(path, NULL, &m) != RP_OK) { fprintf(stderr, "%s\n", rp_errmsg()); return NULL; }
    *V = rp_model_config(m)->vocab;
    float *out = malloc((size_t)n * (size_t)*V * sizeof *out);
    rp_session *s = NULL;
    if (rp_session_new(m, 64, 64, 64, &s) != RP_OK || rp_session_forward(s, ids, n, RP_LOGITS_ALL, out, NULL) != RP_OK) {
        free(out);
        out = NULL;
    }
    rp_session_free(s);
    rp_model_free(m);
    return out;
}

/* The trainer's eval-mode logits [T, V] on ids (targets: the ids shifted). */
static float *trainer_logits(rp_trainer *tr, const int32_t *ids) {
    int V = rp_trainer_config(tr)->vocab;
    int32_t tgt[T];
    for (int t = 0; t < T; t++) tgt[t] = ids[(t + 1) % T];
    double loss;
    if (rp_trainer_eval(tr, ids, tgt, NULL, 1, T, &loss, NULL) != RP_OK) return NULL;
    float *out = malloc((size_t)T * V * sizeof *out);
    memcpy(out, rp_trainer_logits(tr), (size_t)T * V * sizeof *out);
    return out;
}

static void train_steps(rp_trainer *tr, int steps) {
    int V = rp_trainer_config(tr)->vocab;
    int32_t tok[2 * T], tgt[2 * T];
    for (int i = 0; i < 2 * T; i++) { tok[i] = (int32_t)((i * 53 + 7) % V); tgt[i] = (int32_t)((i * 31 + 3) % V); }
    double loss;
    for (int s = 0; s < steps; s++) {
        CHECK(rp_trainer_forward_backward(tr, tok, tgt, NULL, 2, T, NULL, NULL, &loss) == RP_OK);
        CHECK(rp_trainer_update(tr, 0.05f, 1.0f, NULL) == RP_OK);
    }
}

static rp_trainer *lora(const rp_model_file *f) {
    rp_train_opts o = { .method = RP_TRAIN_LORA, .B = 2, .T = T, .adamw = { 0.9f, 0.999f, 1e-8f, 0.0f }, .seed = 3, .n_threads = 2,
                        .lora_rank = 4, .lora_alpha = 8, .lora_targets = "attn_q,attn_k,attn_v,attn_output,ffn_gate,ffn_up,ffn_down" };
    rp_trainer *tr = NULL;
    if (rp_trainer_new(f, NULL, &o, &tr) != RP_OK) fprintf(stderr, "%s\n", rp_errmsg());
    CHECK(tr != NULL);
    return tr;
}

/* Export tr as type to name, reload it, and return the largest logit difference from want relative to want's
 * largest magnitude (-1 when something failed). */
static double export_diff(rp_trainer *tr, const rp_model_file *f, const rp_tokenizer *tok, rp_export_type type, const char *name,
                          const int32_t *ids, const float *want) {
    if (rp_trainer_write_gguf(tr, f, tok, type, tmp(name)) != RP_OK) { fprintf(stderr, "%s\n", rp_errmsg()); return -1; }
    int V;
    float *got = model_logits(tmp(name), ids, T, &V);
    double e = got ? rel_err(got, want, (int64_t)T * V) : -1;
    free(got);
    return e;
}

/* The exported tokenizer encodes and decodes texts as the llama2.c one it was written from. */
static void check_tokenizer(const char *path, const rp_tokenizer *ref) {
    rp_model_file *f;
    rp_tokenizer *t = NULL;
    CHECK(rp_model_file_open(path, &f) == RP_OK && rp_tokenizer_from_model_file(f, &t) == RP_OK);
    if (!t) { rp_model_file_free(f); return; }
    CHECK(rp_tokenizer_n_vocab(t) == rp_tokenizer_n_vocab(ref) && rp_tokenizer_bos(t) == rp_tokenizer_bos(ref) &&
          rp_tokenizer_eos(t) == rp_tokenizer_eos(ref) && rp_tokenizer_adds_bos(t) == rp_tokenizer_adds_bos(ref));
    static const char *texts[] = { "Once upon a time, there was a little girl named Lily.", "  two  spaces\nand a newline",
                                   "caf\xc3\xa9 \xe2\x82\xac 42!", "" };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        rp_tokens a = {0}, b = {0};
        rp_buf da = {0}, db = {0};
        CHECK(rp_tokenizer_encode(t, texts[i], strlen(texts[i]), RP_TOK_DEFAULT, &a) == RP_OK);
        CHECK(rp_tokenizer_encode(ref, texts[i], strlen(texts[i]), RP_TOK_DEFAULT, &b) == RP_OK);
        CHECK_MSG(a.n == b.n && (a.n == 0 || memcmp(a.ids, b.ids, a.n * sizeof *a.ids) == 0), "text %zu: %zu vs %zu ids", i, a.n, b.n);
        CHECK(rp_tokenizer_decode(t, a.ids, a.n, 0, &da) == RP_OK && rp_tokenizer_decode(ref, b.ids, b.n, 0, &db) == RP_OK);
        CHECK_MSG(da.len == db.len && (da.len == 0 || memcmp(da.data, db.data, da.len) == 0), "text %zu decodes differently", i);
        rp_tokens_free(&a); rp_tokens_free(&b); rp_buf_free(&da); rp_buf_free(&db);
    }
    rp_tokenizer_free(t);
    rp_model_file_free(f);
}

/* stories260K (f32, llama2.c): F32 / F16 exports of a LoRA-trained model, the untrained export, the tokenizer. */
static void test_f32_base(const char *path, const int32_t *ids) {
    rp_model_file *f;
    if (rp_model_file_open(path, &f) != RP_OK) { CHECK(0); return; }
    rp_tokenizer *tok = NULL;
    CHECK(rp_tokenizer_for_model_file(f, NULL, 512, &tok) == RP_OK);
    rp_trainer *tr = lora(f);
    if (!tr || !tok) { rp_trainer_free(tr); rp_tokenizer_free(tok); rp_model_file_free(f); return; }
    int V;
    float *orig = model_logits(path, ids, T, &V);
    double e0 = export_diff(tr, f, tok, RP_EXPORT_BASE, "untrained.gguf", ids, orig);
    CHECK_MSG(e0 == 0, "untrained f32 export: logits %g from the original model's (want bit-identical)", e0);
    check_tokenizer(tmp("untrained.gguf"), tok);
    train_steps(tr, 3);
    float *want = trainer_logits(tr, ids);
    double moved = orig && want ? rel_err(orig, want, (int64_t)T * V) : 0;
    double e32 = export_diff(tr, f, tok, RP_EXPORT_F32, "lora_f32.gguf", ids, want);
    double e16 = export_diff(tr, f, tok, RP_EXPORT_F16, "lora_f16.gguf", ids, want);
    CHECK_MSG(moved > 1e-2, "training moved the logits only %g: the export checks would be vacuous", moved);
    CHECK_MSG(e32 >= 0 && e32 < 1e-5, "F32 export vs adapter logits: %g (tolerance 1e-5)", e32);
    CHECK_MSG(e16 >= 0 && e16 < 1e-2, "F16 export vs adapter logits: %g (tolerance 1e-2)", e16);
    printf("stories260K LoRA (logits moved %.3g from the base): exported F32 within %.2g of the adapter logits (tol 1e-5), F16 "
           "within %.2g (tol 1e-2); untrained export bit-identical; tokenizer keys round-trip\n", moved, e32, e16);
    free(orig); free(want);
    rp_trainer_free(tr);
    rp_tokenizer_free(tok);
    rp_model_file_free(f);
}

/* stories260K with its linears quantized (mixed types) as a GGUF: the quantized base of the next test. */
static rp_status write_quantized(const rp_model_file *f, const rp_tokenizer *tok, const char *out, void **bufs) {
    rp_gguf_writer *w = rp_gguf_writer_new();
    rp_status st = rp_gguf_writer_copy_all_meta(w, f);
    if (st == RP_OK) st = rp_tokenizer_write_gguf(tok, w);
    static const struct { const char *part; rp_dtype dt; } types[] = {
        { "attn_q", RP_Q4_0 }, { "attn_k", RP_Q8_0 }, { "attn_v", RP_Q4_1 }, { "attn_output", RP_Q8_0 }, { "ffn_gate", RP_Q4_1 },
        { "ffn_up", RP_Q4_0 }, { "ffn_down", RP_F16 }, { "token_embd", RP_Q8_0 } };
    for (int i = 0; i < rp_model_file_n_weights(f) && st == RP_OK; i++) {
        const rp_weight *wt = rp_model_file_weight_at(f, i);
        rp_dtype dt = RP_F32;
        for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) if (strstr(wt->name, types[k].part)) dt = types[k].dt;
        int64_t rows = wt->ndim == 2 ? wt->shape[0] : 1, cols = wt->shape[wt->ndim - 1];
        size_t rb = rp_dtype_row_bytes(dt, cols);
        char *b = bufs[i] = malloc(rb * (size_t)rows);
        for (int64_t r = 0; r < rows && st == RP_OK; r++) st = rp_quantize_row(dt, (const float *)wt->data + r * cols, b + r * rb, cols);
        if (st == RP_OK) st = rp_gguf_writer_add_tensor(w, wt->name, dt, wt->ndim, wt->shape, b, rb * (size_t)rows);
    }
    if (st == RP_OK) st = rp_gguf_writer_write(w, out);
    rp_gguf_writer_free(w);
    return st;
}

/* Every tensor of b has a's type and bytes. Returns the number that differ. */
static int tensors_differ(const char *pa, const char *pb) {
    rp_model_file *a, *b;
    if (rp_model_file_open(pa, &a) != RP_OK) return -1;
    if (rp_model_file_open(pb, &b) != RP_OK) { rp_model_file_free(a); return -1; }
    int bad = rp_model_file_n_weights(a) != rp_model_file_n_weights(b);
    for (int i = 0; i < rp_model_file_n_weights(a); i++) {
        const rp_weight *x = rp_model_file_weight_at(a, i), *y = rp_model_file_weight(b, x->name);
        if (!y || y->dtype != x->dtype || y->nbytes != x->nbytes || memcmp(x->data, y->data, x->nbytes)) {
            bad++;
            fprintf(stderr, "  %s differs (%s vs %s)\n", x->name, rp_dtype_name(x->dtype), y ? rp_dtype_name(y->dtype) : "missing");
        }
    }
    rp_model_file_free(a);
    rp_model_file_free(b);
    return bad;
}

/* A quantized base: bit-exact re-quantization of unchanged weights, and a trained export in the base types. */
static void test_quantized_base(const char *path, const int32_t *ids) {
    rp_model_file *src, *f = NULL;
    if (rp_model_file_open(path, &src) != RP_OK) { CHECK(0); return; }
    rp_tokenizer *tok = NULL;
    void *bufs[64] = {0};
    CHECK(rp_tokenizer_for_model_file(src, NULL, 512, &tok) == RP_OK);
    CHECK(rp_model_file_n_weights(src) <= 64);
    CHECK(tok && write_quantized(src, tok, tmp("q.gguf"), bufs) == RP_OK);
    CHECK(rp_model_file_open(tmp("q.gguf"), &f) == RP_OK);
    rp_trainer *tr = f ? lora(f) : NULL;
    if (tr) {
        CHECK(rp_trainer_write_gguf(tr, f, NULL, RP_EXPORT_BASE, tmp("q_untrained.gguf")) == RP_OK);
        int d = tensors_differ(tmp("q.gguf"), tmp("q_untrained.gguf"));
        CHECK_MSG(d == 0, "re-quantizing unchanged weights changed %d tensors", d);
        /* the yardstick: how far quantizing the f32 model to these types moved its logits in the first place */
        int V;
        float *fl = model_logits(path, ids, T, &V), *ql = model_logits(tmp("q.gguf"), ids, T, &V);
        double qerr = fl && ql ? rel_err(ql, fl, (int64_t)T * V) : -1;
        train_steps(tr, 3);
        float *want = trainer_logits(tr, ids);
        double eb = export_diff(tr, f, NULL, RP_EXPORT_BASE, "q_lora.gguf", ids, want);
        double e32 = export_diff(tr, f, NULL, RP_EXPORT_F32, "q_lora_f32.gguf", ids, want);
        CHECK_MSG(e32 >= 0 && e32 < 1e-5, "quantized base, F32 export vs adapter logits: %g (tolerance 1e-5)", e32);
        CHECK_MSG(qerr > 0 && eb >= 0 && eb < 2 * qerr, "quantized base, export in the base types vs adapter logits: %g (tolerance: "
                  "twice the base quantization's own error, %g)", eb, qerr);
        printf("quantized stories260K (q4_0/q4_1/q8_0/f16): unchanged weights re-quantize to identical bytes; LoRA export in the base "
               "types within %.3g of the adapter logits (tolerance 2x %.3g, what quantizing the f32 model cost), F32 within %.2g\n", eb,
               qerr, e32);
        free(want); free(fl); free(ql);
    }
    rp_trainer_free(tr);
    rp_model_file_free(f);
    for (int i = 0; i < 64; i++) free(bufs[i]);
    rp_tokenizer_free(tok);
    rp_model_file_free(src);
}

/* A trainer built on a pruned export (layer 2 of 5 dropped) exports 4 layers, renumbered, the prune note kept. */
static void test_pruned(const char *path, const int32_t *ids) {
    rp_model_file *src, *f = NULL;
    if (rp_model_file_open(path, &src) != RP_OK) { CHECK(0); return; }
    unsigned char drop[5] = { 0, 0, 1, 0, 0 };
    CHECK(rp_prune_export(src, drop, 5, tmp("pruned.gguf")) == RP_OK);
    CHECK(rp_model_file_open(tmp("pruned.gguf"), &f) == RP_OK);
    rp_trainer *tr = f ? lora(f) : NULL;
    if (tr) {
        train_steps(tr, 2);
        float *want = trainer_logits(tr, ids);
        double e = export_diff(tr, f, NULL, RP_EXPORT_BASE, "pruned_lora.gguf", ids, want);
        CHECK_MSG(e >= 0 && e < 1e-5, "pruned + LoRA export vs adapter logits: %g", e);
        rp_model_file *g;
        int64_t bc = 0;
        CHECK(rp_model_file_open(tmp("pruned_lora.gguf"), &g) == RP_OK);
        CHECK(rp_model_file_meta_int(g, "llama.block_count", &bc) && bc == 4);
        CHECK(rp_model_file_weight(g, "blk.3.ffn_down.weight") && !rp_model_file_weight(g, "blk.4.ffn_down.weight"));
        const char *dropped = rp_model_file_meta_string(g, "repro.prune.dropped");
        CHECK(dropped && strcmp(dropped, "2") == 0);
        CHECK(rp_model_file_meta_string(g, "tokenizer.ggml.model") != NULL);
        rp_model_file_free(g);
        free(want);
    }
    rp_trainer_free(tr);
    rp_model_file_free(f);
    rp_model_file_free(src);
}

/* From scratch (no base file): llama metadata from the config; the file loads and gives the trainer's logits. */
static void test_scratch(void) {
    rp_llama_config c = { .n_layer = 2, .dim = 32, .n_head = 4, .n_head_kv = 2, .head_dim = 8, .ffn_dim = 64, .vocab = 40,
                          .rope_dim = 8, .rope_base = 10000.0f, .norm_eps = 1e-5f, .context_len = 64 };
    rp_train_opts o = { .method = RP_TRAIN_FULL, .B = 2, .T = T, .adamw = { 0.9f, 0.999f, 1e-8f, 0.0f }, .init_std = 0.3f, .seed = 5,
                        .n_threads = 2 };
    rp_trainer *tr = NULL;
    CHECK(rp_trainer_new(NULL, &c, &o, &tr) == RP_OK);
    if (!tr) return;
    int32_t ids[T];
    for (int t = 0; t < T; t++) ids[t] = (int32_t)((t * 7 + 2) % c.vocab);
    float *want = trainer_logits(tr, ids);
    CHECK(rp_trainer_write_gguf(tr, NULL, NULL, RP_EXPORT_F32, tmp("scratch.gguf")) == RP_OK);
    rp_model_file *f;
    rp_model *m = NULL;
    CHECK(rp_model_file_open(tmp("scratch.gguf"), &f) == RP_OK);
    CHECK(rp_model_new(f, NULL, &m) == RP_OK);
    if (m) {
        float *got = malloc((size_t)T * c.vocab * sizeof *got);
        rp_session *s = NULL;
        CHECK(rp_session_new(m, 64, 64, 64, &s) == RP_OK && rp_session_forward(s, ids, T, RP_LOGITS_ALL, got, NULL) == RP_OK);
        double e = rel_err(got, want, (int64_t)T * c.vocab);
        CHECK_MSG(e < 1e-5, "from-scratch export vs trainer logits: %g", e);
        CHECK(rp_model_config(m)->n_head_kv == 2 && rp_model_config(m)->ffn_dim == 64 && !rp_model_config(m)->tied_embeddings);
        rp_session_free(s);
        free(got);
        rp_model_free(m);
    }
    rp_model_file_free(f);
    /* errors: an unknown type name, an unwritable path (nothing left behind) */
    rp_export_type et;
    CHECK(rp_export_type_parse("q5_0", &et) == RP_ERR_INVAL && strstr(rp_errmsg(), "q5_0") && strstr(rp_errmsg(), "f16"));
    CHECK(rp_trainer_write_gguf(tr, NULL, NULL, RP_EXPORT_F16, "/nonexistent/dir/x.gguf") != RP_OK);
    CHECK(strstr(rp_errmsg(), "/nonexistent/dir/x.gguf") != NULL);
    CHECK(access("/nonexistent/dir/x.gguf", F_OK) != 0);
    free(want);
    rp_trainer_free(tr);
}

/* An F16 GGUF with an untied head and its own SentencePiece keys: the untrained export in its base type has the
 * same tensors byte for byte (F16 -> F32 -> F16 is exact) and the same tokenizer keys. */
static void test_f16_gguf(const char *path) {
    rp_model_file *f;
    if (rp_model_file_open(path, &f) != RP_OK) { CHECK(0); return; }
    rp_trainer *tr = lora(f);
    if (tr) {
        CHECK(rp_trainer_write_gguf(tr, f, NULL, RP_EXPORT_BASE, tmp("f16.gguf")) == RP_OK);
        int d = tensors_differ(path, tmp("f16.gguf"));
        CHECK_MSG(d == 0, "F16 GGUF: %d tensors changed by an untrained export", d);
        rp_model_file *g;
        CHECK(rp_model_file_open(tmp("f16.gguf"), &g) == RP_OK);
        CHECK(rp_model_file_meta_array_len(g, "tokenizer.ggml.tokens") == rp_model_file_meta_array_len(f, "tokenizer.ggml.tokens"));
        CHECK(rp_model_file_weight(g, "output.weight") != NULL);
        rp_model_file_free(g);
    }
    rp_trainer_free(tr);
    rp_model_file_free(f);
}

/* K-quant bases and types: a from-scratch model (rows of 256) exported as q4_k / q6_k writes every matrix as the
 * quantizer makes it from the f32 weights (the quantizer is checked against llama.cpp's in test_quant_k), vectors
 * F32, with no fallback; a base with q6_K and q4_K tensors exports untrained in its own types byte for byte (rows
 * kept from the base), and an F16 export works too; bad type names are errors listing the valid ones. */
static void test_kquant(void) {
    rp_llama_config c = { .n_layer = 1, .dim = 256, .n_head = 4, .n_head_kv = 4, .head_dim = 64, .ffn_dim = 256, .vocab = 16,
                          .rope_dim = 64, .rope_base = 10000.0f, .norm_eps = 1e-5f, .context_len = 64 };
    rp_train_opts o = { .method = RP_TRAIN_FULL, .B = 1, .T = 4, .adamw = { 0.9f, 0.999f, 1e-8f, 0.0f }, .seed = 5, .n_threads = 2 };
    rp_trainer *tr = NULL, *lo = NULL;
    rp_model_file *f = NULL, *q = NULL;
    CHECK(rp_trainer_new(NULL, &c, &o, &tr) == RP_OK);
    CHECK(tr && rp_trainer_write_gguf(tr, NULL, NULL, RP_EXPORT_F32, tmp("k.gguf")) == RP_OK);
    CHECK(rp_model_file_open(tmp("k.gguf"), &f) == RP_OK);
    if (!f) { rp_trainer_free(tr); return; }
    const rp_dtype kt[2] = { RP_Q4_K, RP_Q6_K };
    const char *kn[2] = { "q4_k", "q6_k" };
    for (int k = 0; k < 2; k++) {
        rp_export_type et;
        rp_export_report rep;
        CHECK(rp_export_type_parse(kn[k], &et) == RP_OK);
        rp_export_opts eo = { .type = et, .n_threads = 1 + k };
        CHECK(rp_trainer_write_gguf_opts(tr, NULL, NULL, &eo, tmp("kq.gguf"), &rep) == RP_OK);
        CHECK(rep.n_fallback == 0 && rep.n_tensors == rp_model_file_n_weights(f));
        rp_model_file *g = NULL;
        CHECK(rp_model_file_open(tmp("kq.gguf"), &g) == RP_OK);
        int bad = 0, nk = 0;
        for (int i = 0; g && i < rp_model_file_n_weights(f); i++) {
            const rp_weight *a = rp_model_file_weight_at(f, i), *b = rp_model_file_weight(g, a->name);
            if (!b) { bad++; continue; }
            if (a->ndim == 1) { bad += b->dtype != RP_F32 || memcmp(a->data, b->data, a->nbytes) != 0; continue; }
            size_t n = (size_t)(a->nbytes / 4), qb = rp_dtype_row_bytes(kt[k], (int64_t)n);
            void *want = malloc(qb);
            bad += b->dtype != kt[k] || b->nbytes != qb || rp_quantize_row(kt[k], a->data, want, (int64_t)n) != RP_OK ||
                   memcmp(want, b->data, qb) != 0;
            free(want);
            nk++;
        }
        CHECK_MSG(bad == 0 && nk >= 8, "%s export: %d of %d tensors not as quantized from the f32 weights", kn[k], bad, rp_model_file_n_weights(f));
        rp_model_file_free(g);
    }
    /* a base with K-quant tensors: ffn_up q6_K, ffn_down q4_K, quantized from the f32 weights */
    rp_gguf_writer *w = rp_gguf_writer_new();
    void *kbuf[2] = {0};
    CHECK(rp_gguf_writer_copy_all_meta(w, f) == RP_OK);
    for (int i = 0; i < rp_model_file_n_weights(f); i++) {
        const rp_weight *wt = rp_model_file_weight_at(f, i);
        int k = strcmp(wt->name, "blk.0.ffn_down.weight") == 0 ? 0 : strcmp(wt->name, "blk.0.ffn_up.weight") == 0 ? 1 : -1;
        if (k < 0) { CHECK(rp_gguf_writer_add_tensor(w, wt->name, wt->dtype, wt->ndim, wt->shape, wt->data, wt->nbytes) == RP_OK); continue; }
        int64_t n = (int64_t)(wt->nbytes / 4);
        size_t qb = rp_dtype_row_bytes(kt[k], n);
        kbuf[k] = malloc(qb);
        CHECK(rp_quantize_row(kt[k], wt->data, kbuf[k], n) == RP_OK);
        CHECK(rp_gguf_writer_add_tensor(w, wt->name, kt[k], wt->ndim, wt->shape, kbuf[k], qb) == RP_OK);
    }
    CHECK(rp_gguf_writer_write(w, tmp("k6.gguf")) == RP_OK);
    rp_gguf_writer_free(w);
    free(kbuf[0]);
    free(kbuf[1]);
    CHECK(rp_model_file_open(tmp("k6.gguf"), &q) == RP_OK);
    o.method = RP_TRAIN_LORA; o.lora_rank = 2; o.lora_alpha = 2; o.lora_targets = "ffn_up,ffn_down";
    CHECK(q && rp_trainer_new(q, NULL, &o, &lo) == RP_OK);
    if (lo) {
        rp_export_report rep;
        rp_export_opts eo = { .type = RP_EXPORT_BASE, .n_threads = 2 };
        CHECK(rp_trainer_write_gguf_opts(lo, q, NULL, &eo, tmp("k6_out.gguf"), &rep) == RP_OK);
        int d = tensors_differ(tmp("k6.gguf"), tmp("k6_out.gguf"));
        CHECK_MSG(d == 0, "K-quant base: %d tensors changed by an untrained export", d);
        CHECK(rep.n_copied_rows_tensors >= 2);
        CHECK(rp_trainer_write_gguf(lo, q, NULL, RP_EXPORT_F16, tmp("k6_f16.gguf")) == RP_OK);
    }
    rp_export_type et;
    CHECK(rp_export_type_parse("q5_k", &et) == RP_ERR_INVAL && strstr(rp_errmsg(), "q5_k") && strstr(rp_errmsg(), "q6_k"));
    rp_trainer_free(lo);
    rp_trainer_free(tr);
    rp_model_file_free(q);
    rp_model_file_free(f);
}

int main(void) {
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    test_scratch();
    test_kquant();
    const char *mirror = getenv("REPRO_MIRROR");
    char path[4096];
    snprintf(path, sizeof path, "%s/stories260K/stories260K.bin", mirror ? mirror : "");
    if (!mirror || access(path, R_OK) != 0) {
        printf("skip [mirror]: stories260K not in REPRO_MIRROR (export checks on a real model)\n");
    } else {
        int32_t ids[T];
        for (int t = 0; t < T; t++) ids[t] = (int32_t)(t == 0 ? 1 : (t * 37 + 5) % 512);
        test_f32_base(path, ids);
        test_quantized_base(path, ids);
        test_pruned(path, ids);
    }
    snprintf(path, sizeof path, "%s/gguf-tiny-random-llama/llama-2-tiny-random.gguf", mirror ? mirror : "");
    if (!mirror || access(path, R_OK) != 0) printf("skip [mirror]: llama-2-tiny-random.gguf not in REPRO_MIRROR (F16 GGUF export)\n");
    else test_f16_gguf(path);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return checks_done("train_export");
}
