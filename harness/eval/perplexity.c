/* perplexity.c: perplexity and bits per byte of a text, by llama.cpp's protocol (so figures compare with
 * llama-perplexity's) and by rolling windows that score every token once (for bits per byte).
 * Log-probabilities come from the model as floats and are accumulated in double. */
#include "eval/score.h"
#include "util/interrupt.h"
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static size_t count_words(const char *s, size_t n) {
    size_t w = 0;
    int in = 0;
    for (size_t i = 0; i < n; i++) {
        int sp = isspace((unsigned char)s[i]);
        if (!sp && !in) w++;
        in = !sp;
    }
    return w;
}

/* Tokenize text, with BOS first when the model uses it. */
static rp_status tokens_of(const rp_lm *lm, const char *text, size_t len, int **out, size_t *n) {
    int *ids = NULL;
    size_t nt = 0;
    rp_status st = lm->tokenize(lm->ctx, text, len, &ids, &nt);
    if (st != RP_OK) return rp_fail_ctx(st, "tokenizing the text (%zu bytes): ", len);
    int b = lm->add_bos && lm->bos >= 0;
    int *v = malloc((nt + (size_t)b + 1) * sizeof *v);
    if (!v) { free(ids); return rp_fail(RP_ERR_NOMEM, "out of memory"); }
    if (b) v[0] = lm->bos;
    if (nt) memcpy(v + b, ids, nt * sizeof *v);
    free(ids);
    *out = v;
    *n = nt + (size_t)b;
    return RP_OK;
}

/* llama.cpp's perplexity protocol. */
rp_status rp_eval_perplexity_llamacpp(const rp_lm *lm, const char *text, size_t len, int c, int max_chunks,
                                      rp_ppl_result *r, void (*progress)(void *, size_t, size_t), void *arg) {
    memset(r, 0, sizeof *r);
    if (c < 4) return rp_fail(RP_ERR_INVAL, "perplexity: context %d is too small (need at least 4)", c);
    if (lm->n_ctx > 0 && c > lm->n_ctx) return rp_fail(RP_ERR_INVAL, "perplexity: context %d exceeds the model's %d", c, lm->n_ctx);
    int *tk;
    size_t nt;
    RP_TRY(tokens_of(lm, text, len, &tk, &nt));
    if (nt < 2 * (size_t)c) {
        free(tk);
        return rp_fail(RP_ERR_INVAL, "perplexity: the text tokenizes to only %zu tokens; a context of %d needs at least %d", nt, c, 2 * c);
    }
    size_t n_chunk = nt / (size_t)c;
    if (max_chunks > 0 && (size_t)max_chunks < n_chunk) n_chunk = (size_t)max_chunks;
    const size_t first = (size_t)c / 2, per = (size_t)c - 1 - first;
    int *seq = malloc((size_t)c * sizeof *seq);
    float *lp = malloc(per * sizeof *lp);
    rp_status st = RP_OK;
    if (!seq || !lp) st = rp_fail(RP_ERR_NOMEM, "out of memory");
    double nll = 0, nll2 = 0;
    size_t count = 0;
    for (size_t i = 0; i < n_chunk && st == RP_OK; i++) {
        memcpy(seq, tk + i * (size_t)c, (size_t)c * sizeof *seq);
        if (lm->add_bos && lm->bos >= 0) seq[0] = lm->bos;
        const int *sp = seq;
        size_t l = (size_t)c, f = first;
        float *op = lp;
        st = lm->logprobs(lm->ctx, 1, &sp, &l, &f, &op, NULL);
        if (st != RP_OK) { st = rp_fail_ctx(st, "perplexity chunk %zu: ", i); break; }
        for (size_t k = 0; k < per; k++) {
            double v = -(double)lp[k];
            nll += v;
            nll2 += v * v;
        }
        count += per;
        if (progress) progress(arg, i + 1, n_chunk);
        if (rp_interrupt_pending()) st = rp_fail(RP_ERR_INTERRUPTED, "perplexity: interrupted after %zu of %zu chunks", i + 1, n_chunk);
    }
    free(seq);
    free(lp);
    free(tk);
    if (st != RP_OK) return st;
    double mean = nll / (double)count, m2 = nll2 / (double)count - mean * mean;
    r->mean_nll = mean;
    r->ppl = exp(mean);
    r->ppl_stderr = m2 > 0 && count > 1 ? sqrt(m2 / (double)(count - 1)) * r->ppl : NAN;
    r->bpb = r->word_ppl = NAN;
    r->n_scored = count;
    r->n_tokens = nt;
    r->n_chunks = n_chunk;
    r->n_bytes = len;
    return RP_OK;
}

/* Rolling windows scoring every token once. */
rp_status rp_eval_perplexity_rolling(const rp_lm *lm, const char *text, size_t len, int w, rp_ppl_result *r,
                                     void (*progress)(void *, size_t, size_t), void *arg) {
    memset(r, 0, sizeof *r);
    if (w < 2) return rp_fail(RP_ERR_INVAL, "perplexity: window %d is too small (need at least 2)", w);
    if (lm->n_ctx > 0 && w > lm->n_ctx) return rp_fail(RP_ERR_INVAL, "perplexity: window %d exceeds the model's %d", w, lm->n_ctx);
    int *tk;
    size_t nt;
    RP_TRY(tokens_of(lm, text, len, &tk, &nt));
    if (nt < 2) { free(tk); return rp_fail(RP_ERR_INVAL, "perplexity: the text gives %zu tokens, nothing to score", nt); }
    size_t step = (size_t)w - 1, n_win = (nt - 1 + step - 1) / step;
    float *lp = malloc(step * sizeof *lp);
    rp_status st = lp ? RP_OK : rp_fail(RP_ERR_NOMEM, "out of memory");
    double nll = 0;
    size_t count = 0;
    for (size_t k = 0; k < n_win && st == RP_OK; k++) {
        size_t s = k * step, l = nt - s < (size_t)w ? nt - s : (size_t)w, f = 0;
        const int *sp = tk + s;
        float *op = lp;
        st = lm->logprobs(lm->ctx, 1, &sp, &l, &f, &op, NULL);
        if (st != RP_OK) { st = rp_fail_ctx(st, "perplexity window %zu: ", k); break; }
        for (size_t j = 0; j + 1 < l; j++) nll -= (double)lp[j];
        count += l - 1;
        if (progress) progress(arg, k + 1, n_win);
        if (rp_interrupt_pending()) st = rp_fail(RP_ERR_INTERRUPTED, "perplexity: interrupted after %zu of %zu windows", k + 1, n_win);
    }
    free(lp);
    free(tk);
    if (st != RP_OK) return st;
    r->n_scored = count;
    r->n_tokens = nt;
    r->n_chunks = n_win;
    r->n_bytes = len;
    r->n_words = count_words(text, len);
    r->mean_nll = nll / (double)count;
    r->ppl = exp(r->mean_nll);
    r->ppl_stderr = NAN;
    r->bpb = nll / log(2.0) / (double)len;
    r->word_ppl = r->n_words ? exp(nll / (double)r->n_words) : NAN;
    return RP_OK;
}
