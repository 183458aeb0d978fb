/* score.c: log-likelihood scoring of multiple-choice, MC2 and last-word tasks against an rp_lm.
 *
 * Each choice is tokenized the way lm-evaluation-harness does it: whole = tokenize(prompt + delim +
 * choice), n = |tokenize(prompt)|, and the continuation is whole[n:] (so a tokenizer that merges across
 * the boundary still scores exactly the choice's text). The sequence given to the model is [BOS] + whole
 * when the model uses BOS, cut from the left to its n_ctx. All choices of an item share one logprobs
 * call (they share the prompt as a prefix, which an engine may exploit). Predictions take the first
 * maximum, like numpy's argmax. */
#include "eval/score.h"
#include "util/interrupt.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Mean and standard error (sample std / sqrt(n)) of v[0..n). */
static void mean_se(const double *v, size_t n, double *mean, double *se) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += v[i];
    double m = n ? s / (double)n : NAN;
    double q = 0;
    for (size_t i = 0; i < n; i++) q += (v[i] - m) * (v[i] - m);
    *mean = m;
    *se = n > 1 ? sqrt(q / (double)(n - 1) / (double)n) : NAN;
}

static void add_metric(rp_eval_result *r, const char *name, double v, double se, int dir) {
    if (r->n_metrics >= RP_EVAL_MAX_METRICS) return;
    r->m[r->n_metrics++] = (rp_metric){name, v, se, dir};
}

/* Find a metric by name. */
const rp_metric *rp_eval_metric(const rp_eval_result *r, const char *name) {
    for (int i = 0; i < r->n_metrics; i++)
        if (strcmp(r->m[i].name, name) == 0) return &r->m[i];
    return NULL;
}

static rp_status tok(const rp_lm *lm, const char *s, size_t n, int **ids, size_t *nt) {
    *ids = NULL;
    *nt = 0;
    rp_status st = lm->tokenize(lm->ctx, s, n, ids, nt);
    if (st != RP_OK) return rp_fail_ctx(st, "tokenizing %zu bytes: ", n);
    return RP_OK;
}

/* Log-likelihoods of the choices of item i. */
rp_status rp_eval_item(const rp_lm *lm, const rp_task *t, size_t i, const char *prefix, double *ll, int *greedy) {
    if (i >= t->n_items) return rp_fail(RP_ERR_INVAL, "task %s: item %zu out of range", t->name, i);
    const rp_task_item *it = &t->items[i];
    int nc = it->n_choices;
    rp_buf text = {0};
    int **seqs = calloc((size_t)nc, sizeof *seqs);
    size_t *lens = calloc((size_t)nc, sizeof *lens), *from = calloc((size_t)nc, sizeof *from);
    float **out = calloc((size_t)nc, sizeof *out);
    unsigned char **gr = calloc((size_t)nc, sizeof *gr);
    int *ctx_ids = NULL;
    size_t n_ctx_ids = 0;
    rp_status st = RP_OK;
    if (!seqs || !lens || !from || !out || !gr) { st = rp_fail(RP_ERR_NOMEM, "out of memory scoring an item"); goto done; }
    int b = lm->add_bos && lm->bos >= 0;
    for (int c = 0; c < nc && st == RP_OK; c++) {
        /* The prompt's tokens: shared by every choice unless contexts differ. */
        if (c == 0 || it->contexts) {
            rp_buf_clear(&text);
            if ((st = rp_buf_puts(&text, prefix ? prefix : "")) != RP_OK) break;
            if ((st = rp_buf_puts(&text, rp_task_item_context(it, c))) != RP_OK) break;
            free(ctx_ids);
            if ((st = tok(lm, text.data, text.len, &ctx_ids, &n_ctx_ids)) != RP_OK) break;
        } else {
            text.len = strlen(prefix ? prefix : "") + strlen(it->context);
            text.data[text.len] = 0;
        }
        if ((st = rp_buf_puts(&text, t->delim)) != RP_OK || (st = rp_buf_puts(&text, it->choices[c])) != RP_OK) break;
        int *w = NULL;
        size_t nw = 0;
        if ((st = tok(lm, text.data, text.len, &w, &nw)) != RP_OK) break;
        size_t nctx = n_ctx_ids < nw ? n_ctx_ids : (nw ? nw - 1 : 0);
        int extra = b || (nctx == 0 && lm->bos >= 0);   /* with an empty prompt, BOS is the only context */
        if (nw == 0 || nctx + extra == 0) {
            free(w);
            st = rp_fail(RP_ERR_INVAL, "task %s: item %zu, choice %d: nothing to condition on (empty prompt, no BOS)", t->name, i, c);
            break;
        }
        size_t total = nw + (size_t)extra;
        int *s = malloc(total * sizeof *s);
        if (!s) { free(w); st = rp_fail(RP_ERR_NOMEM, "out of memory"); break; }
        if (extra) s[0] = lm->bos;
        memcpy(s + extra, w, nw * sizeof *s);
        free(w);
        size_t f = (size_t)extra + nctx - 1;       /* position whose logits predict the first choice token */
        size_t ncont = nw - nctx;
        size_t drop = 0;
        if (lm->n_ctx > 0 && total > (size_t)lm->n_ctx) {
            drop = total - (size_t)lm->n_ctx;
            if (ncont + 1 > (size_t)lm->n_ctx) {
                free(s);
                st = rp_fail(RP_ERR_RANGE, "task %s: item %zu, choice %d: %zu answer tokens do not fit the model's context of %d",
                             t->name, i, c, ncont, lm->n_ctx);
                break;
            }
        }
        seqs[c] = s;
        if (drop) { memmove(s, s + drop, (total - drop) * sizeof *s); }
        lens[c] = total - drop;
        from[c] = f - drop;
        out[c] = malloc(ncont * sizeof(float));
        gr[c] = malloc(ncont);
        if (!out[c] || !gr[c]) { st = rp_fail(RP_ERR_NOMEM, "out of memory"); break; }
    }
    if (st == RP_OK) {
        st = lm->logprobs(lm->ctx, nc, (const int *const *)seqs, lens, from, out, greedy ? gr : NULL);
        if (st != RP_OK) st = rp_fail_ctx(st, "task %s: item %zu: ", t->name, i);
    }
    for (int c = 0; st == RP_OK && c < nc; c++) {
        size_t ncont = lens[c] - 1 - from[c];
        double s = 0;
        int g = 1;
        for (size_t k = 0; k < ncont; k++) {
            s += out[c][k];
            if (greedy) g &= gr[c][k] != 0;
        }
        ll[c] = s;
        if (greedy) greedy[c] = g;
    }
done:
    for (int c = 0; c < nc; c++) {
        if (seqs) free(seqs[c]);
        if (out) free(out[c]);
        if (gr) free(gr[c]);
    }
    free(seqs); free(lens); free(from); free(out); free(gr); free(ctx_ids);
    rp_buf_free(&text);
    return st;
}

/* Length of s in characters (Unicode code points of its UTF-8), what Python's len() gives lm-eval's
 * acc_norm: every byte that does not continue a multi-byte sequence starts a character. */
static size_t utf8_chars(const char *s) {
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) n += (*p & 0xC0) != 0x80;
    return n;
}

static int argmax(const double *v, int n) {
    int a = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[a]) a = i;
    return a;
}

static rp_status eval_items(const rp_lm *lm, const rp_task *t, const rp_eval_opts *o, rp_eval_result *r) {
    size_t n = t->n_items;
    size_t *order = malloc((n ? n : 1) * sizeof *order);
    if (!order) return rp_fail(RP_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) order[i] = i;
    size_t m = n;
    if (o->limit && o->limit < n) {
        /* A seeded subset, scored in file order (so a subset of a subset is not implied). */
        rp_task_shuffle(order, n, o->seed);
        m = o->limit;
        for (size_t a = 1; a < m; a++)   /* insertion sort of the chosen indices */
            for (size_t b2 = a; b2 > 0 && order[b2 - 1] > order[b2]; b2--) {
                size_t tmp = order[b2]; order[b2] = order[b2 - 1]; order[b2 - 1] = tmp;
            }
    }
    int maxc = 1;
    for (size_t i = 0; i < n; i++) if (t->items[i].n_choices > maxc) maxc = t->items[i].n_choices;
    double *acc = calloc(m ? m : 1, sizeof *acc), *accn = calloc(m ? m : 1, sizeof *accn), *llv = calloc(m ? m : 1, sizeof *llv);
    double *ll = malloc((size_t)maxc * sizeof *ll), *lln = malloc((size_t)maxc * sizeof *lln);
    int *greedy = malloc((size_t)maxc * sizeof *greedy);
    rp_buf prefix = {0};
    rp_status st = RP_OK;
    if (!acc || !accn || !llv || !ll || !lln || !greedy) st = rp_fail(RP_ERR_NOMEM, "out of memory");
    for (size_t k = 0; k < m && st == RP_OK; k++) {
        size_t i = order[k];
        const rp_task_item *it = &t->items[i];
        if ((st = rp_task_prefix(t, i, o->shots, o->seed, &prefix)) != RP_OK) break;
        if ((st = rp_eval_item(lm, t, i, prefix.data, ll, greedy)) != RP_OK) break;
        for (int c = 0; c < it->n_choices; c++) lln[c] = ll[c] / (double)utf8_chars(it->choices[c]);
        int pred = argmax(ll, it->n_choices), predn = argmax(lln, it->n_choices);
        if (t->kind == RP_TASK_MC2) {
            /* Normalized probability mass on the true answers (max-shifted for range). */
            double mx = ll[0], num = 0, den = 0;
            for (int c = 1; c < it->n_choices; c++) if (ll[c] > mx) mx = ll[c];
            for (int c = 0; c < it->n_choices; c++) {
                double p = exp(ll[c] - mx);
                den += p;
                if (it->truth[c]) num += p;
            }
            acc[k] = num / den;
        } else if (t->kind == RP_TASK_LASTWORD) {
            acc[k] = greedy[0];
            llv[k] = ll[0];
        } else {
            acc[k] = pred == it->gold;
            accn[k] = predn == it->gold;
        }
        if (o->on_item) o->on_item(o->on_item_arg, i, ll, it->n_choices, pred, predn);
        if (o->progress) o->progress(o->progress_arg, k + 1, m);
        if (rp_interrupt_pending()) st = rp_fail(RP_ERR_INTERRUPTED, "%s: interrupted after %zu of %zu items", t->name, k + 1, m);
    }
    if (st == RP_OK) {
        double v, se;
        r->n = m;
        if (t->kind == RP_TASK_MC2) {
            mean_se(acc, m, &v, &se);
            add_metric(r, "mc2", v, se, 1);
        } else if (t->kind == RP_TASK_LASTWORD) {
            mean_se(acc, m, &v, &se);
            add_metric(r, "acc", v, se, 1);
            mean_se(llv, m, &v, &se);
            /* lm-eval's LAMBADA perplexity: exp(-mean log-likelihood of the word); ± by the delta method. */
            add_metric(r, "ppl", exp(-v), exp(-v) * se, -1);
        } else {
            mean_se(acc, m, &v, &se);
            add_metric(r, "acc", v, se, 1);
            mean_se(accn, m, &v, &se);
            add_metric(r, "acc_norm", v, se, 1);
        }
    }
    rp_buf_free(&prefix);
    free(order); free(acc); free(accn); free(llv); free(ll); free(lln); free(greedy);
    return st;
}

/* Score a whole task. */
rp_status rp_eval_task(const rp_lm *lm, const rp_task *t, const rp_eval_opts *o, rp_eval_result *r) {
    rp_eval_opts def = {0};
    if (!o) o = &def;
    memset(r, 0, sizeof *r);
    if (o->shots < 0) return rp_fail(RP_ERR_INVAL, "shots: %d is negative", o->shots);
    if (t->kind != RP_TASK_TEXT) return eval_items(lm, t, o, r);
    int c = o->ctx > 0 ? o->ctx : 512;
    if (lm->n_ctx > 0 && c > lm->n_ctx) c = lm->n_ctx;
    rp_ppl_result p;
    if (o->protocol == RP_PPL_LLAMACPP) {
        if (o->limit > (size_t)1 << 30) return rp_fail(RP_ERR_INVAL, "limit: %zu chunks is too many", o->limit);
        RP_TRY(rp_eval_perplexity_llamacpp(lm, t->text, t->text_len, c, (int)o->limit, &p, o->progress, o->progress_arg));
        r->n = p.n_scored;
        add_metric(r, "ppl", p.ppl, p.ppl_stderr, -1);
        add_metric(r, "nll", p.mean_nll, NAN, -1);
        return RP_OK;
    }
    size_t len = t->text_len;
    if (o->limit && o->limit < len) {
        /* Score the first `limit` bytes, cut back to a line end so no word is split. */
        len = o->limit;
        while (len > 0 && t->text[len - 1] != '\n') len--;
        if (len == 0) len = o->limit;
    }
    RP_TRY(rp_eval_perplexity_rolling(lm, t->text, len, c, &p, o->progress, o->progress_arg));
    r->n = p.n_scored;
    add_metric(r, "ppl", p.ppl, NAN, -1);
    add_metric(r, "bpb", p.bpb, NAN, -1);
    add_metric(r, "word_ppl", p.word_ppl, NAN, -1);
    return RP_OK;
}
