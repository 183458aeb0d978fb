/* test_llama.c: reference checks of the Llama engine on real models against llama.cpp / llama2.c outputs
 * (/work/shared/reference, the mirror's greedy200.txt), plus internal consistency (batched vs
 * incremental forward, fast vs reference backend, hidden states, layer skipping).
 * Tolerances for SmolLM2 come from the reference README's yardstick: llama.cpp's own q4_1 and f32 paths
 * differ by 0.047-0.054 nats per token on average (max 0.35) and by 0.32% in perplexity; our batched
 * path dequantizes weights exactly and computes in f32, so it must sit well inside that gap from f32. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "eval/score.h"
#include "util/json.h"
#include "nn/generate.h"
#include "nn/sampler.h"
#include "nn/llama.h"
#include "nn/llama_impl.h"
#include "tensor/qdot.h"
#include "eval/lm_model.h"
#include "util/buf.h"

static char path_buf[4096];
static const char *mirror_path(const char *rel) {
    const char *m = getenv("REPRO_MIRROR");
    if (!m || !*m) return NULL;
    snprintf(path_buf, sizeof path_buf, "%s/%s", m, rel);
    FILE *f = fopen(path_buf, "rb");
    if (!f) return NULL;
    fclose(f);
    return path_buf;
}
static const char *ref_dir(void) {
    const char *m = getenv("REPRO_MIRROR");
    static char d[4096];
    snprintf(d, sizeof d, "%s/../reference", m ? m : "/nonexistent");
    return d;
}

/* Lines of a jsonl file parsed; returns count (0 when missing). */
static int read_jsonl(const char *path, rp_json **out, int max) {
    rp_buf b = { 0 };
    if (rp_read_file(path, &b) != RP_OK) return 0;
    int n = 0;
    char *p = b.data, *end = b.data + b.len;
    while (p < end && n < max) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (len > 0 && rp_json_parse(p, len, &out[n]) == RP_OK) n++;
        p += len + 1;
    }
    rp_buf_free(&b);
    return n;
}

static int collect_text(void *arg, const char *t, size_t n) { return rp_buf_append(arg, t, n) != RP_OK; }

/* ---------------- stories260K ---------------- */

static void test_stories_greedy(rp_model *m, const char *label) {
    rp_buf want = { 0 };
    const char *gp = mirror_path("stories260K/greedy200.txt");
    if (!gp || rp_read_file(gp, &want) != RP_OK) { printf("skip [mirror]: greedy200.txt not found\n"); return; }
    rp_session *s;
    CHECK(rp_session_new(m, 0, 0, 0, &s) == RP_OK);
    int32_t bos = rp_tokenizer_bos(rp_model_tokenizer(m));
    rp_buf streamed = { 0 };
    rp_generate_opts o = { .temperature = 0, .max_tokens = 200, .on_text = collect_text, .arg = &streamed };
    rp_generate_result r;
    CHECK(rp_generate(s, &bos, 1, &o, &r) == RP_OK);
    CHECK_MSG(r.text.len == want.len && memcmp(r.text.data, want.data, want.len) == 0,
              "%s: greedy 200 differs from greedy200.txt:\n--- got (%zu bytes)\n%s\n--- want (%zu bytes)\n%s", label, r.text.len,
              r.text.data ? r.text.data : "", want.len, want.data);
    CHECK(streamed.len == r.text.len && memcmp(streamed.data, r.text.data, r.text.len) == 0);
    CHECK(r.tokens.n == 200);
    printf("stories260K %s greedy 200: %s, %.0f tokens/s\n", label, r.text.len == want.len ? "byte-exact" : "DIFFERS", r.tokens_per_s);
    rp_generate_result_free(&r);
    rp_buf_free(&streamed);
    rp_buf_free(&want);
    rp_session_free(s);
}

static void test_stories_prompts(rp_model *m) {
    char p[4200];
    snprintf(p, sizeof p, "%s/stories260K/greedy.jsonl", ref_dir());
    rp_json *lines[16];
    int n = read_jsonl(p, lines, 16);
    if (!n) { printf("skip [mirror]: %s not found\n", p); return; }
    const rp_tokenizer *tok = rp_model_tokenizer(m);
    rp_session *s;
    CHECK(rp_session_new(m, 0, 0, 0, &s) == RP_OK);
    for (int i = 0; i < n; i++) {
        const char *prompt = rp_json_str(rp_json_get(lines[i], "prompt"), "");
        const char *want = rp_json_str(rp_json_get(lines[i], "continuation"), "");
        int np = (int)rp_json_num(rp_json_get(lines[i], "n_predict"), 0);
        rp_tokens ids = { 0 };
        CHECK(rp_tokenizer_encode(tok, prompt, strlen(prompt), RP_TOK_ADD_BOS, &ids) == RP_OK);
        rp_session_reset(s);
        rp_generate_opts o = { .temperature = 0, .max_tokens = np };
        rp_generate_result r;
        CHECK(rp_generate(s, ids.ids, ids.n, &o, &r) == RP_OK);
        CHECK_MSG(r.text.len == strlen(want) && memcmp(r.text.data, want, r.text.len) == 0, "prompt %d: got\n%s\nwant\n%s", i, r.text.data ? r.text.data : "", want);
        rp_generate_result_free(&r);
        rp_tokens_free(&ids);
        rp_json_free(lines[i]);
    }
    rp_session_free(s);
}

static void test_stories_ppl(rp_model *m) {
    const char *tp = mirror_path("tinystories-valid-slice/tinystories_val.txt");
    if (!tp) { printf("skip [mirror]: tinystories_val.txt not found\n"); return; }
    rp_buf text = { 0 };
    CHECK(rp_read_file(tp, &text) == RP_OK);
    rp_lm lm = rp_model_as_lm(m);
    rp_ppl_result r;
    CHECK(rp_eval_perplexity_llamacpp(&lm, text.data, text.len, 512, 50, &r, NULL, NULL) == RP_OK);
    printf("stories260K perplexity (c 512, 50 chunks): %.4f ± %.5f over %zu tokens (llama.cpp 3.8662)\n", r.ppl, r.ppl_stderr, r.n_scored);
    CHECK_MSG(fabs(r.ppl / 3.8662 - 1) < 0.005, "ppl %.4f vs 3.8662", r.ppl);
    rp_buf_free(&text);
}

/* Batched vs one-at-a-time logits, fast vs reference backend, hidden states, layer skipping. */
static void test_consistency(rp_model *m) {
    const rp_llama_config *c = rp_model_config(m);
    const int T = 40, V = c->vocab, C = c->dim, L = c->n_layer;
    int32_t toks[40];
    for (int i = 0; i < T; i++) toks[i] = (int32_t)((i * 37 + 1) % V);
    toks[0] = 1;
    rp_session *s;
    CHECK(rp_session_new(m, 128, 64, 64, &s) == RP_OK);
    float *all = malloc(sizeof(float) * (size_t)T * V), *one = malloc(sizeof(float) * (size_t)V);
    float *hid = malloc(sizeof(float) * (size_t)(L + 1) * T * C);
    CHECK(rp_session_forward(s, toks, T, RP_LOGITS_ALL, all, hid) == RP_OK);
    {   /* the logits also stay in the session's tensor; copied out they are the same bytes */
        int64_t rows = 0;
        const rp_tensor *lt = rp_session_logits(s, &rows);
        CHECK(rows == T && lt->dtype == RP_F32 && lt->shape[1] == V);
        float *row5 = malloc(sizeof(float) * (size_t)V);
        CHECK(rp_tensor_copy_out(lt, (size_t)5 * V * sizeof(float), row5, sizeof(float) * (size_t)V) == RP_OK);
        CHECK(memcmp(row5, all + (size_t)5 * V, sizeof(float) * (size_t)V) == 0);
        CHECK(rp_tensor_copy_out(lt, (size_t)rp_tensor_nbytes(lt), row5, 4) == RP_ERR_RANGE);
        free(row5);
    }
    float *batched = malloc(sizeof(float) * (size_t)T * V);
    memcpy(batched, all, sizeof(float) * (size_t)T * V);
    rp_session_reset(s);
    double e = 0;
    for (int t = 0; t < T; t++) {
        CHECK(rp_session_forward(s, &toks[t], 1, RP_LOGITS_LAST, one, NULL) == RP_OK);
        for (int v = 0; v < V; v++) e = fmax(e, fabs(one[v] - batched[t * V + v]));
    }
    CHECK_MSG(e < 1e-3, "batched vs incremental logits differ by %g", e);
    /* reference backend on the same tokens */
    rp_backend *fast = rp_model_backend(m);
    rp_model_set_backend(m, rp_backend_ref());
    rp_session_reset(s);
    CHECK(rp_session_forward(s, toks, T, RP_LOGITS_ALL, all, NULL) == RP_OK);
    e = 0;
    for (int i = 0; i < T * V; i++) e = fmax(e, fabs(all[i] - batched[i]));
    CHECK_MSG(e < 1e-3, "cpu vs ref backend logits differ by %g", e);
    rp_model_set_backend(m, fast);
    /* hidden[0] is the embedding: token 1's row of the (f32) table */
    const rp_weight *emb = rp_model_file_weight(rp_model_file_of(m), "token_embd.weight");
    if (emb && emb->dtype == RP_F32) CHECK(memcmp(hid, (const float *)emb->data + 1 * C, sizeof(float) * C) == 0);
    /* skipping layer 1: layer 2's input equals layer 1's input; layer 0 is unchanged */
    unsigned char *skip = calloc((size_t)L, 1);
    float *hid2 = malloc(sizeof(float) * (size_t)(L + 1) * T * C);
    if (L < 3) goto scoring;
    skip[1] = 1;
    CHECK(rp_model_set_skip(m, skip, L) == RP_OK);
    rp_session_reset(s);
    CHECK(rp_session_forward(s, toks, T, RP_LOGITS_LAST, NULL, hid2) == RP_OK);
    CHECK(memcmp(hid2 + (size_t)1 * T * C, hid + (size_t)1 * T * C, sizeof(float) * T * C) == 0);
    CHECK(memcmp(hid2 + (size_t)2 * T * C, hid2 + (size_t)1 * T * C, sizeof(float) * T * C) == 0);
    CHECK(memcmp(hid2 + (size_t)2 * T * C, hid + (size_t)2 * T * C, sizeof(float) * T * C) != 0);
    CHECK(rp_model_set_skip(m, skip, L - 1) == RP_ERR_INVAL);
    CHECK(rp_model_set_skip(m, NULL, 0) == RP_OK);
scoring:
    /* scoring equals the log-softmax of the batched logits, also when the cache holds a shared prefix */
    float lp[40];
    unsigned char gr[40];
    rp_session_reset(s);
    CHECK(rp_session_forward(s, toks, 10, RP_LOGITS_NONE, NULL, NULL) == RP_OK);
    CHECK(rp_session_score(s, toks, T, 5, lp, gr) == RP_OK);
    e = 0;
    for (int t = 5; t < T - 1; t++) {
        const float *row = batched + (size_t)t * V;
        double mx = row[0], sum = 0;
        int best = 0;
        for (int v = 0; v < V; v++) { if (row[v] > mx) mx = row[v]; if (row[v] > row[best]) best = v; }
        for (int v = 0; v < V; v++) sum += exp(row[v] - mx);
        e = fmax(e, fabs(lp[t - 5] - (row[toks[t + 1]] - mx - log(sum))));
        CHECK(gr[t - 5] == (best == toks[t + 1]));
    }
    CHECK_MSG(e < 1e-3, "score vs logits: %g", e);
    /* errors: context overflow, bad token */
    rp_session_reset(s);
    int32_t bad = V + 5;
    CHECK(rp_session_forward(s, &bad, 1, RP_LOGITS_LAST, NULL, NULL) == RP_ERR_RANGE);
    int32_t many[200] = { 0 };
    CHECK(rp_session_forward(s, many, 200, RP_LOGITS_NONE, NULL, NULL) == RP_ERR_RANGE);
    free(skip); free(hid); free(hid2); free(batched); free(all); free(one);
    rp_session_free(s);
}

static void test_batched(rp_model *m, const int32_t *const *prompts, const size_t *lens, int n, const char *label);

static void test_stories(void) {
    const char *mp = mirror_path("stories260K/stories260K.bin");
    if (!mp) { printf("skip [mirror]: stories260K.bin not found\n"); CHECK(1); return; }
    rp_model *m;
    rp_status st = rp_model_load(mp, NULL, &m);
    CHECK_MSG(st == RP_OK, "%s", rp_errmsg());
    if (st != RP_OK) return;
    test_stories_greedy(m, "cpu");
    test_consistency(m);
    test_stories_prompts(m);
    test_stories_ppl(m);
    {
        static const int32_t a[] = { 1, 403, 407, 261, 378 }, b[] = { 1, 320, 280 }, c[] = { 1 };
        const int32_t *p[5] = { a, b, c, b, a };
        size_t l[5] = { 5, 3, 1, 2, 4 };
        test_batched(m, p, l, 5, "stories260K");
    }
    rp_model_set_backend(m, rp_backend_ref());
    test_stories_greedy(m, "ref");
    rp_model_free(m);
}

/* ---------------- SmolLM2-135M-Instruct Q4_1 ---------------- */

typedef struct score_stats { double sum_abs, max_abs, nll; int n, top1; } score_stats;

static void test_smollm_scores(rp_model *m) {
    char p[2][4200];
    snprintf(p[0], sizeof p[0], "%s/smollm2/score_q4_1.jsonl", ref_dir());
    snprintf(p[1], sizeof p[1], "%s/smollm2/score_f32.jsonl", ref_dir());
    rp_json *ref[2][4];
    int n0 = read_jsonl(p[0], ref[0], 4), n1 = read_jsonl(p[1], ref[1], 4);
    if (!n0 || n0 != n1) { printf("skip [mirror]: score_*.jsonl not found\n"); return; }
    rp_session *s;
    CHECK(rp_session_new(m, 1024, 512, 128, &s) == RP_OK);
    for (int i = 0; i < n0; i++) {
        const rp_json *tj = rp_json_get(ref[0][i], "tokens");
        size_t n = rp_json_len(tj);
        int32_t *toks = malloc(n * sizeof *toks);
        for (size_t k = 0; k < n; k++) toks[k] = (int32_t)rp_json_num(rp_json_at(tj, k), 0);
        float *lp = malloc(n * sizeof *lp);
        unsigned char *gr = malloc(n);
        rp_session_reset(s);
        CHECK(rp_session_score(s, toks, (int64_t)n, 0, lp, gr) == RP_OK);
        score_stats st[2] = { { 0 } };
        double nll = 0;
        for (size_t k = 0; k + 1 < n; k++) nll -= lp[k];
        nll /= (double)(n - 1);
        for (int r = 0; r < 2; r++) {
            const rp_json *pos = rp_json_get(ref[r][i], "positions");
            for (size_t k = 0; k + 1 < n && k < rp_json_len(pos); k++) {
                const rp_json *pk = rp_json_at(pos, k);
                double want = rp_json_num(rp_json_get(pk, "logprob"), 0);
                double d = fabs(lp[k] - want);
                st[r].sum_abs += d;
                st[r].max_abs = fmax(st[r].max_abs, d);
                st[r].n++;
                int top = (int)rp_json_num(rp_json_at(rp_json_at(rp_json_get(pk, "top5"), 0), 0), -1);
                st[r].top1 += gr[k] == (top == toks[k + 1]);
            }
        }
        const char *name = rp_json_str(rp_json_get(ref[0][i], "name"), "?");
        double ref_nll_f32 = rp_json_num(rp_json_get(ref[1][i], "mean_nll"), 0), ref_nll_q = rp_json_num(rp_json_get(ref[0][i], "mean_nll"), 0);
        printf("smollm2 score %s: %zu tokens, mean NLL %.4f (llama.cpp f32 %.4f, q4_1 %.4f); |Δ logprob| vs f32 mean %.4f max %.4f, vs q4_1 mean %.4f max %.4f; "
               "greedy flags agree with f32 top-1 %.1f%%\n", name, n, nll, ref_nll_f32, ref_nll_q, st[1].sum_abs / st[1].n, st[1].max_abs,
               st[0].sum_abs / st[0].n, st[0].max_abs, 100.0 * st[1].top1 / st[1].n);
        /* the yardstick (q4_1 vs f32) is mean 0.047-0.054, max 0.30-0.35: exact dequantization must sit
         * within a third of it from f32 on average and below its max */
        CHECK_MSG(st[1].sum_abs / st[1].n < 0.018, "%s: mean |Δ| vs f32 %.4f", name, st[1].sum_abs / st[1].n);
        CHECK_MSG(st[1].max_abs < 0.30, "%s: max |Δ| vs f32 %.4f", name, st[1].max_abs);
        CHECK_MSG(fabs(nll - ref_nll_f32) < 0.01, "%s: mean NLL %.4f vs f32 %.4f", name, nll, ref_nll_f32);
        free(toks); free(lp); free(gr);
    }
    for (int r = 0; r < 2; r++) for (int i = 0; i < n0; i++) rp_json_free(ref[r][i]);
    rp_session_free(s);
}

static void test_smollm_greedy(rp_model *m) {
    char p[2][4200];
    snprintf(p[0], sizeof p[0], "%s/smollm2/greedy_q4_1.jsonl", ref_dir());
    snprintf(p[1], sizeof p[1], "%s/smollm2/greedy_f32.jsonl", ref_dir());
    rp_json *ref[2][8];
    int n0 = read_jsonl(p[0], ref[0], 8), n1 = read_jsonl(p[1], ref[1], 8);
    if (!n0 || n0 != n1) { printf("skip [mirror]: greedy_*.jsonl not found\n"); return; }
    rp_session *s;
    CHECK(rp_session_new(m, 1024, 512, 64, &s) == RP_OK);
    for (int i = 0; i < n0; i++) {
        const rp_json *pj = rp_json_get(ref[0][i], "prompt_tokens");
        size_t np = rp_json_len(pj);
        int32_t *pt = malloc(np * sizeof *pt);
        for (size_t k = 0; k < np; k++) pt[k] = (int32_t)rp_json_num(rp_json_at(pj, k), 0);
        /* first-step logits */
        float *logits = malloc(sizeof(float) * (size_t)rp_model_config(m)->vocab);
        rp_session_reset(s);
        CHECK(rp_session_forward(s, pt, (int64_t)np, RP_LOGITS_LAST, logits, NULL) == RP_OK);
        double dmax[2] = { 0, 0 };
        for (int r = 0; r < 2; r++) {
            const rp_json *top = rp_json_get(ref[r][i], "first_top5_logits");
            for (size_t k = 0; k < rp_json_len(top); k++) {
                int id = (int)rp_json_num(rp_json_at(rp_json_at(top, k), 0), 0);
                double want = rp_json_num(rp_json_at(rp_json_at(top, k), 1), 0);
                dmax[r] = fmax(dmax[r], fabs(logits[id] - want));
            }
        }
        /* greedy continuation: tokens shared with each path's continuation */
        int npred = (int)rp_json_num(rp_json_get(ref[0][i], "n_predict"), 0);
        rp_session_reset(s);
        rp_generate_opts o = { .temperature = 0, .max_tokens = npred };
        rp_generate_result g;
        CHECK(rp_generate(s, pt, np, &o, &g) == RP_OK);
        int shared[2] = { 0, 0 };
        size_t nref[2];
        for (int r = 0; r < 2; r++) {
            const rp_json *gj = rp_json_get(ref[r][i], "generated");
            nref[r] = rp_json_len(gj);
            while ((size_t)shared[r] < g.tokens.n && (size_t)shared[r] < nref[r] &&
                   g.tokens.ids[shared[r]] == (int32_t)rp_json_num(rp_json_at(gj, (size_t)shared[r]), -1))
                shared[r]++;
        }
        printf("smollm2 greedy %d: first-step top-5 logits max |Δ| f32 %.3f q4_1 %.3f; continuation shares %d/%zu tokens with f32, %d/%zu with q4_1\n",
               i, dmax[1], dmax[0], shared[1], nref[1], shared[0], nref[0]);
        /* yardstick: the two llama.cpp paths' first-step logits differ by 0.03-0.3; we compute the f32 path
         * (weights dequantized exactly, f32 activations), so we must sit 10x closer to it than that */
        CHECK_MSG(dmax[1] < 0.03, "greedy %d: first-step logits off f32 by %.3f", i, dmax[1]);
        /* and then greedy decoding is expected to reproduce the f32 path's continuation exactly */
        CHECK_MSG((size_t)shared[1] == nref[1] && g.tokens.n == nref[1], "greedy %d: shares %d of %zu tokens with f32 (generated %zu)", i,
                  shared[1], nref[1], g.tokens.n);
        const char *want = rp_json_str(rp_json_get(ref[1][i], "continuation"), "");
        CHECK_MSG(g.text.len == strlen(want) && memcmp(g.text.data, want, g.text.len) == 0, "greedy %d text:\n%s\nwant\n%s", i,
                  g.text.data ? g.text.data : "", want);
        rp_generate_result_free(&g);
        free(pt); free(logits);
    }
    for (int r = 0; r < 2; r++) for (int i = 0; i < n0; i++) rp_json_free(ref[r][i]);
    rp_session_free(s);
}

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_SANITIZER 1
#else
#define UNDER_SANITIZER 0
#endif

static void test_smollm_ppl(rp_model *m) {
    const char *tp = mirror_path("wikitext2/wiki.test.raw");
    if (!tp) { printf("skip [mirror]: wiki.test.raw not found\n"); return; }
    rp_buf text = { 0 };
    CHECK(rp_read_file(tp, &text) == RP_OK);
    rp_lm lm = rp_model_as_lm(m);
    CHECK(lm.add_bos == 0);
    rp_ppl_result r;
    CHECK(rp_eval_perplexity_llamacpp(&lm, text.data, text.len, 512, 50, &r, NULL, NULL) == RP_OK);
    printf("smollm2 wikitext2 perplexity (c 512, 50 chunks): %.4f ± %.5f (llama.cpp f32 22.7347, q4_1 22.8080)\n", r.ppl, r.ppl_stderr);
    /* the two llama.cpp paths differ by 0.32%: we must be within half of that of f32 */
    CHECK_MSG(fabs(r.ppl / 22.7347 - 1) < 0.0016, "ppl %.4f vs f32 22.7347", r.ppl);
    rp_buf_free(&text);
}

/* The int8-activation decoding path (REPRO_INT8_DOT, llama.cpp's method for its q4_1 path): greedy
 * continuations must share at least the 5 tokens that llama.cpp's own two paths always share. */
static void test_smollm_int8(rp_model *m) {
    char p[2][4200];
    snprintf(p[0], sizeof p[0], "%s/smollm2/greedy_q4_1.jsonl", ref_dir());
    snprintf(p[1], sizeof p[1], "%s/smollm2/greedy_f32.jsonl", ref_dir());
    rp_json *ref[2][8];
    int n0 = read_jsonl(p[0], ref[0], 8), n1 = read_jsonl(p[1], ref[1], 8);
    if (!n0 || n0 != n1) { printf("skip [mirror]: greedy_*.jsonl not found\n"); return; }
    setenv("REPRO_INT8_DOT", "1", 1);
    rp_backend *be8;
    CHECK(rp_backend_cpu_new(2, &be8) == RP_OK);
    setenv("REPRO_INT8_DOT", "0", 1);
    rp_backend *saved = rp_model_backend(m);
    rp_model_set_backend(m, be8);
    rp_session *s;
    CHECK(rp_session_new(m, 1024, 512, 1, &s) == RP_OK);
    for (int i = 0; i < n0; i++) {
        const rp_json *pj = rp_json_get(ref[0][i], "prompt_tokens");
        size_t np = rp_json_len(pj);
        int32_t pt[64];
        for (size_t k = 0; k < np && k < 64; k++) pt[k] = (int32_t)rp_json_num(rp_json_at(pj, k), 0);
        rp_generate_opts o = { .temperature = 0, .max_tokens = (int)rp_json_num(rp_json_get(ref[0][i], "n_predict"), 0) };
        rp_generate_result g;
        rp_session_reset(s);
        CHECK(rp_generate(s, pt, np < 64 ? np : 64, &o, &g) == RP_OK);
        int shared[2] = { 0, 0 };
        for (int r = 0; r < 2; r++) {
            const rp_json *gj = rp_json_get(ref[r][i], "generated");
            while ((size_t)shared[r] < g.tokens.n && (size_t)shared[r] < rp_json_len(gj) &&
                   g.tokens.ids[shared[r]] == (int32_t)rp_json_num(rp_json_at(gj, (size_t)shared[r]), -1))
                shared[r]++;
        }
        printf("smollm2 int8 decoding, greedy %d: shares %d tokens with f32, %d with q4_1\n", i, shared[1], shared[0]);
        CHECK_MSG(shared[0] >= 5 || shared[1] >= 5, "int8 greedy %d shares %d / %d tokens", i, shared[1], shared[0]);
        rp_generate_result_free(&g);
    }
    for (int r = 0; r < 2; r++) for (int i = 0; i < n0; i++) rp_json_free(ref[r][i]);
    rp_session_free(s);
    rp_model_set_backend(m, saved);
    rp_backend_cpu_free(be8);
}

/* Batched generation (continuous batching over 3 slots, prompts of different lengths, different
 * max_tokens, greedy and sampled) equals one-at-a-time generation token for token. */
static void test_batched(rp_model *m, const int32_t *const *prompts, const size_t *lens, int n, const char *label) {
    rp_tokens *pr = calloc((size_t)n, sizeof *pr);
    rp_generate_opts *o = calloc((size_t)n, sizeof *o);
    rp_generate_result *got = calloc((size_t)n, sizeof *got);
    for (int i = 0; i < n; i++) {
        for (size_t k = 0; k < lens[i]; k++) CHECK(rp_tokens_push(&pr[i], prompts[i][k]) == RP_OK);
        o[i].max_tokens = 6 + 7 * (i % 4);
        o[i].temperature = i % 2 ? 0.8f : 0.0f;
        o[i].top_p = 0.95f;
        o[i].seed = 100 + (uint64_t)i;
    }
    CHECK(rp_generate_batch(m, pr, n, o, 3, 256, got) == RP_OK);
    rp_session *s;
    CHECK(rp_session_new(m, 256, 512, 1, &s) == RP_OK);
    int same = 0;
    for (int i = 0; i < n; i++) {
        rp_generate_result one;
        rp_session_reset(s);
        CHECK(rp_generate(s, pr[i].ids, pr[i].n, &o[i], &one) == RP_OK);
        int eq = one.tokens.n == got[i].tokens.n && !memcmp(one.tokens.ids, got[i].tokens.ids, one.tokens.n * sizeof(int32_t)) &&
                 one.text.len == got[i].text.len && !strcmp(one.stop_reason, got[i].stop_reason);
        CHECK_MSG(eq, "%s batched %d: %zu tokens (%s) vs one at a time %zu (%s)", label, i, got[i].tokens.n, got[i].stop_reason, one.tokens.n, one.stop_reason);
        same += eq;
        rp_generate_result_free(&one);
        rp_generate_result_free(&got[i]);
        rp_tokens_free(&pr[i]);
    }
    printf("%s: batched generation (3 slots, %d prompts) equals one-at-a-time in %d of %d\n", label, n, same, n);
    rp_session_free(s);
    free(pr); free(o); free(got);
}

/* Resident memory of this process in MB (VmRSS), or -1. */
static double rss_mb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f)) if (!strncmp(line, "VmRSS:", 6)) kb = strtol(line + 6, NULL, 10);
    if (f) fclose(f);
    return kb < 0 ? -1 : kb / 1024.0;
}

struct layout_arg { rp_model *m; rp_status *st; };
static void *layout_thread(void *p) {
    struct layout_arg *a = p;
    *a->st = rp_model_decode_layout(a->m);
    return NULL;
}

/* The decode-layout copy is built when decoding first needs it, not at load: scoring (a forward of more
 * than 16 rows) leaves it unbuilt, a one-token forward builds it (resident memory printed at each stage). */
static void test_smollm_lazy_layout(rp_model *m) {
    double r0 = rss_mb();
    CHECK(rp_model_decode_layout_bytes(m) == 0);
    rp_session *s;
    CHECK(rp_session_new(m, 64, 64, 64, &s) == RP_OK);
    int32_t toks[40];
    for (int i = 0; i < 40; i++) toks[i] = 100 + 37 * i;
    CHECK(rp_session_forward(s, toks, 40, RP_LOGITS_ALL, NULL, NULL) == RP_OK);
    double r1 = rss_mb();
    CHECK(rp_model_decode_layout_bytes(m) == 0);
    pthread_t th[2];   /* two threads (e.g. serve's queue and the caller) ask for the layout at once: built once */
    rp_status ths[2] = { RP_ERR_INVAL, RP_ERR_INVAL };
    struct layout_arg la[2] = { { m, &ths[0] }, { m, &ths[1] } };
    for (int i = 0; i < 2; i++) CHECK(pthread_create(&th[i], NULL, layout_thread, &la[i]) == 0);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    CHECK(ths[0] == RP_OK && ths[1] == RP_OK);
    size_t b = rp_model_decode_layout_bytes(m);
    CHECK_MSG(b < 98362432, "decode layout %zu bytes: larger than the file, built twice", b);   /* the file's size */
    CHECK(rp_session_forward(s, toks, 1, RP_LOGITS_LAST, NULL, NULL) == RP_OK);
    double r2 = rss_mb();
    CHECK(rp_model_decode_layout_bytes(m) == b);   /* decoding found it built */
    CHECK(b > 0 || !rp_packed_fast());
    printf("smollm2 resident memory: %.0f MB loaded, %.0f MB after scoring 40 tokens, %.0f MB after the first decoding step (decode layout %.1f MB)\n",
           r0, r1, r2, b / 1048576.0);
    rp_session_free(s);
}

static void test_smollm(void) {
    const char *mp = mirror_path("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    if (!mp) { printf("skip [mirror]: SmolLM2 gguf not found\n"); CHECK(1); return; }
    rp_model *m;
    rp_status st = rp_model_load(mp, NULL, &m);
    CHECK_MSG(st == RP_OK, "%s", rp_errmsg());
    if (st != RP_OK) return;
    test_smollm_lazy_layout(m);
    test_smollm_scores(m);
    test_smollm_greedy(m);
    test_smollm_int8(m);
    {
        static const int32_t a[] = { 1, 9690, 2468, 253, 655, 28 }, b[] = { 504, 3575, 282, 4649, 314 }, c[] = { 1, 2, 3 };
        const int32_t *p[7] = { a, b, c, b, a, c, a };
        size_t l[7] = { 6, 5, 3, 4, 2, 1, 6 };
        test_batched(m, p, l, 7, "smollm2");
    }
    /* 50 chunks of 512 tokens: about a minute in the plain builds, several under ASan, where the same
     * kernels are already exercised above; skipped there, and counted as a skip. */
    if (getenv("REPRO_QUICK")) printf("skip: smollm2 wikitext2 perplexity (REPRO_QUICK set)\n");
    else if (UNDER_SANITIZER) printf("skip: smollm2 wikitext2 perplexity (50 chunks) under the sanitizers: checked in the plain builds\n");
    else test_smollm_ppl(m);
    rp_model_free(m);
}

/* A GGUF with f16 weights, an untied head and sizes that are not multiples of 32 (random weights: only
 * internal consistency can be checked). */
static void test_tiny_f16(void) {
    const char *mp = mirror_path("gguf-tiny-random-llama/llama-2-tiny-random.gguf");
    if (!mp) { printf("skip [mirror]: llama-2-tiny-random.gguf not found\n"); return; }
    rp_model *m;
    rp_status st = rp_model_load(mp, NULL, &m);
    CHECK_MSG(st == RP_OK, "%s", rp_errmsg());
    if (st != RP_OK) return;
    CHECK(!rp_model_config(m)->tied_embeddings);
    test_consistency(m);
    rp_model_free(m);
}

/* rp_argmax (two vector passes) against the plain first-index-of-the-maximum loop: random rows of the
 * vocabulary's size with planted ties, NaNs, signed zeros and infinities, and short rows. */
static void test_argmax(void) {
    enum { N = 49157 };
    float *x = malloc(N * sizeof *x);
    unsigned s = 99;
    int bad = 0;
    for (int trial = 0; trial < 200; trial++) {
        int n = trial < 20 ? 1 + trial * 7 : N - (trial % 19);
        for (int i = 0; i < n; i++) x[i] = (float)((s = s * 1103515245u + 12345u) >> 12) / 1048576.0f - 2048.0f;
        int k = (int)((s = s * 1103515245u + 12345u) >> 8) % n, k2 = (int)((s = s * 1103515245u + 12345u) >> 8) % n;
        switch (trial % 6) {
        case 1: x[k] = x[k2] = 5000.0f; break;                          /* a tie: the first wins */
        case 2: x[k] = NAN; x[k2] = 4096.0f; break;                       /* NaNs are skipped */
        case 3: x[0] = NAN; break;                                      /* a leading NaN: index 0 */
        case 4: for (int i = 0; i < n; i++) x[i] = -1.0f; x[k] = -0.0f; x[k2] = 0.0f; break;   /* -0 == +0 */
        case 5: x[k] = INFINITY; break;
        default: break;
        }
        int want = 0;
        for (int i = 1; i < n; i++) if (x[i] > x[want]) want = i;
        bad += rp_argmax(x, n) != want;
    }
    CHECK_MSG(bad == 0, "rp_argmax differs from the plain loop in %d of 200 rows", bad);
    free(x);
}

int main(void) {
    test_argmax();
    /* The reference checks below hold the exact (default) decoding path to llama.cpp's f32 figures; the
     * opt-in int8 decoding path is checked against both of llama.cpp's paths in test_smollm_int8. */
    setenv("REPRO_INT8_DOT", "0", 1);
    test_tiny_f16();
    test_stories();
    test_smollm();
    return checks_done("test_llama");
}
