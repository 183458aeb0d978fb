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

/* The token sequences of one item's choices, ready for a logprobs call, and its results' buffers. */
typedef struct item_seqs {
    int nc;
    int **seqs;
    size_t *lens, *from;
    float **out;
    unsigned char **gr;
} item_seqs;

static void item_free(item_seqs *q) {
    for (int c = 0; c < q->nc; c++) {
        if (q->seqs) free(q->seqs[c]);
        if (q->out) free(q->out[c]);
        if (q->gr) free(q->gr[c]);
    }
    free(q->seqs); free(q->lens); free(q->from); free(q->out); free(q->gr);
    memset(q, 0, sizeof *q);
}

/* Tokenize item i's choices (after prefix + its context) into q. */
static rp_status item_prepare(const rp_lm *lm, const rp_task *t, size_t i, const char *prefix, item_seqs *q) {
    memset(q, 0, sizeof *q);
    if (i >= t->n_items) return rp_fail(RP_ERR_INVAL, "task %s: item %zu out of range", t->name, i);
    const rp_task_item *it = &t->items[i];
    int nc = it->n_choices;
    rp_buf text = {0};
    q->nc = nc;
    q->seqs = calloc((size_t)nc, sizeof *q->seqs);
    q->lens = calloc((size_t)nc, sizeof *q->lens);
    q->from = calloc((size_t)nc, sizeof *q->from);
    q->out = calloc((size_t)nc, sizeof *q->out);
    q->gr = calloc((size_t)nc, sizeof *q->gr);
    int *ctx_ids = NULL;
    size_t n_ctx_ids = 0;
    rp_status st = RP_OK;
    if (!q->seqs || !q->lens || !q->from || !q->out || !q->gr) { st = rp_fail(RP_ERR_NOMEM, "out of memory scoring an item"); goto done; }
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
        int *sq = malloc(total * sizeof *sq);
        if (!sq) { free(w); st = rp_fail(RP_ERR_NOMEM, "out of memory"); break; }
        if (extra) sq[0] = lm->bos;
        memcpy(sq + extra, w, nw * sizeof *sq);
        free(w);
        size_t f = (size_t)extra + nctx - 1;       /* position whose logits predict the first choice token */
        size_t ncont = nw - nctx;
        size_t drop = 0;
        if (lm->n_ctx > 0 && total > (size_t)lm->n_ctx) {
            drop = total - (size_t)lm->n_ctx;
            if (ncont + 1 > (size_t)lm->n_ctx) {
                free(sq);
                st = rp_fail(RP_ERR_RANGE, "task %s: item %zu, choice %d: %zu answer tokens do not fit the model's context of %d",
                             t->name, i, c, ncont, lm->n_ctx);
                break;
            }
        }
        q->seqs[c] = sq;
        if (drop) { memmove(sq, sq + drop, (total - drop) * sizeof *sq); }
        q->lens[c] = total - drop;
        q->from[c] = f - drop;
        q->out[c] = malloc(ncont * sizeof(float));
        q->gr[c] = malloc(ncont ? ncont : 1);
        if (!q->out[c] || !q->gr[c]) { st = rp_fail(RP_ERR_NOMEM, "out of memory"); break; }
    }
done:
    free(ctx_ids);
    rp_buf_free(&text);
    if (st != RP_OK) item_free(q);
    return st;
}

/* Sum each choice's token log-probabilities (and greedy matches) once the logprobs call filled q. */
static void item_sum(const item_seqs *q, double *ll, int *greedy) {
    for (int c = 0; c < q->nc; c++) {
        size_t ncont = q->lens[c] - 1 - q->from[c];
        double s = 0;
        int g = 1;
        for (size_t k = 0; k < ncont; k++) {
            s += q->out[c][k];
            if (greedy) g &= q->gr[c][k] != 0;
        }
        ll[c] = s;
        if (greedy) greedy[c] = g;
    }
}

/* One logprobs call for the choices of items q[0..n): all their sequences together, so an engine can
 * pack them into few forwards. */
static rp_status score_items(const rp_lm *lm, const rp_task *t, item_seqs *q, size_t n, int want_greedy) {
    size_t ns = 0;
    for (size_t k = 0; k < n; k++) ns += (size_t)q[k].nc;
    if (ns > INT32_MAX) return rp_fail(RP_ERR_RANGE, "task %s: %zu sequences in one call", t->name, ns);
    const int **seqs = malloc(ns * sizeof *seqs);
    size_t *lens = malloc(ns * sizeof *lens), *from = malloc(ns * sizeof *from);
    float **out = malloc(ns * sizeof *out);
    unsigned char **gr = malloc(ns * sizeof *gr);
    rp_status st = RP_OK;
    if (!seqs || !lens || !from || !out || !gr) st = rp_fail(RP_ERR_NOMEM, "out of memory");
    for (size_t k = 0, j = 0; st == RP_OK && k < n; k++)
        for (int c = 0; c < q[k].nc; c++, j++) {
            seqs[j] = q[k].seqs[c];
            lens[j] = q[k].lens[c];
            from[j] = q[k].from[c];
            out[j] = q[k].out[c];
            gr[j] = q[k].gr[c];
        }
    if (st == RP_OK) {
        st = lm->logprobs(lm->ctx, (int)ns, (const int *const *)seqs, lens, from, out, want_greedy ? gr : NULL);
        if (st != RP_OK) st = rp_fail_ctx(st, "task %s: ", t->name);
    }
    free(seqs); free(lens); free(from); free(out); free(gr);
    return st;
}

/* Log-likelihoods of the choices of item i. */
rp_status rp_eval_item(const rp_lm *lm, const rp_task *t, size_t i, const char *prefix, double *ll, int *greedy) {
    item_seqs q;
    RP_TRY(item_prepare(lm, t, i, prefix, &q));
    rp_status st = score_items(lm, t, &q, 1, greedy != NULL);
    if (st == RP_OK) item_sum(&q, ll, greedy);
    else st = rp_fail_ctx(st, "item %zu: ", i);
    item_free(&q);
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

#define EVAL_BLOCK_TOKENS 4096   /* tokens of sequences per logprobs call (about 8 forwards of 512) */
#define EVAL_BLOCK_ITEMS 256

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
    /* Items go to the model in blocks of about EVAL_BLOCK_TOKENS tokens: one logprobs call each, which an
     * engine may pack into few forwards; the figures are the same as item by item. */
    item_seqs *blk = calloc(EVAL_BLOCK_ITEMS, sizeof *blk);
    if (!blk && st == RP_OK) st = rp_fail(RP_ERR_NOMEM, "out of memory");
    for (size_t k0 = 0; k0 < m && st == RP_OK;) {
        size_t nb = 0, tokens = 0;
        while (k0 + nb < m && nb < EVAL_BLOCK_ITEMS && tokens < EVAL_BLOCK_TOKENS && st == RP_OK) {
            size_t i = order[k0 + nb];
            if ((st = rp_task_prefix(t, i, o->shots, o->seed, &prefix)) != RP_OK) break;
            if ((st = item_prepare(lm, t, i, prefix.data, &blk[nb])) != RP_OK) break;
            for (int c = 0; c < blk[nb].nc; c++) tokens += blk[nb].lens[c];
            nb++;
        }
        if (st == RP_OK) st = score_items(lm, t, blk, nb, t->kind == RP_TASK_LASTWORD);
        for (size_t b = 0; b < nb && st == RP_OK; b++) {
            size_t k = k0 + b, i = order[k];
            const rp_task_item *it = &t->items[i];
            item_sum(&blk[b], ll, greedy);
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
        }
        for (size_t b = 0; b < nb; b++) item_free(&blk[b]);
        k0 += nb;
        if (st == RP_OK && o->progress) o->progress(o->progress_arg, k0, m);
        if (st == RP_OK && rp_interrupt_pending()) st = rp_fail(RP_ERR_INTERRUPTED, "%s: interrupted after %zu of %zu items", t->name, k0, m);
    }
    free(blk);
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
