/* safe_local.c: the in-process local model as a SAFE LLM backend, without HTTP: each call is one user
 * message through the model's chat template (rp_chat_complete_many: the same code `repro serve` runs, the
 * calls of one batch decoded together, 8 at a time, each answered as one call alone would be); the retry
 * index seeds sampling so re-asks at temperature > 0 differ.
 * With label scoring on, a call that lists choices (the relevance and rating steps) is answered by the
 * engine's teacher-forced scoring instead: the choice whose tokens have the highest total log-probability
 * after the templated prompt (ties: the first), so the answer always parses. */
#include "plugins/safe/safe.h"
#include "nn/generate.h"
#include "model/tokenizer.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct local { rp_model *model; rp_session *session; int score_labels; } local;

static void local_release(void *ctx) {
    local *l = ctx;
    rp_session_free(l->session);
    rp_model_free(l->model);
    free(l);
}

/* Answer a call with choices by log-likelihood: text = the likeliest choice. */
static rp_status score_choices(local *l, rp_safe_call *c) {
    const rp_tokenizer *tok = rp_model_tokenizer(l->model);
    if (!tok) return rp_fail(RP_ERR_UNSUPPORTED, "label scoring: the model has no tokenizer");
    rp_chat_msg m = {"user", c->prompt};
    rp_buf prompt = {0};
    rp_tokens ids = {0};
    float *lp = NULL;
    int best = -1;
    double best_ll = 0;
    rp_status st = rp_tokenizer_chat_format(tok, &m, 1, 1, &prompt);
    if (st == RP_OK) st = rp_tokenizer_encode(tok, prompt.data, prompt.len, RP_TOK_PARSE_SPECIAL | RP_TOK_NO_BOS, &ids);
    size_t n_prompt = ids.n;
    if (st == RP_OK && n_prompt == 0) st = rp_fail(RP_ERR_INVAL, "label scoring: empty prompt");
    for (int k = 0; st == RP_OK && k < c->n_choices; k++) {
        ids.n = n_prompt;   /* the prompt's tokens stay; the session reuses their cache across choices */
        st = rp_tokenizer_encode(tok, c->choices[k], strlen(c->choices[k]), RP_TOK_NO_BOS, &ids);
        size_t nc = ids.n - n_prompt;
        if (st == RP_OK && nc == 0) st = rp_fail(RP_ERR_INVAL, "label scoring: choice %d is empty", k);
        if (st == RP_OK && ids.n > (size_t)rp_session_n_ctx(l->session))
            st = rp_fail(RP_ERR_RANGE, "label scoring: prompt of %zu tokens and choice '%s' do not fit the context of %d",
                         n_prompt, c->choices[k], rp_session_n_ctx(l->session));
        float *g = st == RP_OK ? realloc(lp, nc * sizeof *lp) : NULL;
        if (st == RP_OK && !g) st = rp_fail(RP_ERR_NOMEM, "out of memory");
        if (st == RP_OK) lp = g;
        if (st == RP_OK) st = rp_session_score(l->session, ids.ids, (int64_t)ids.n, (int64_t)n_prompt - 1, lp, NULL);
        double ll = 0;
        for (size_t t = 0; st == RP_OK && t < nc; t++) ll += lp[t];
        if (st == RP_OK && (best < 0 || ll > best_ll)) { best = k; best_ll = ll; }
    }
    if (st == RP_OK) {
        rp_buf_clear(&c->text);
        st = rp_buf_puts(&c->text, c->choices[best]);
        c->prompt_tokens = (long)n_prompt;
        c->completion_tokens = 0;
    }
    free(lp);
    rp_tokens_free(&ids);
    rp_buf_free(&prompt);
    return st;
}

static rp_status local_complete(void *ctx, rp_safe_call *calls, size_t n) {
    local *l = ctx;
    rp_chat_job *jobs = calloc(n ? n : 1, sizeof *jobs);
    rp_chat_msg *msgs = calloc(n ? n : 1, sizeof *msgs);
    size_t *which = calloc(n ? n : 1, sizeof *which), nj = 0;
    if (!jobs || !msgs || !which) { free(jobs); free(msgs); free(which); return rp_fail(RP_ERR_NOMEM, "out of memory"); }
    for (size_t i = 0; i < n; i++) {
        rp_safe_call *c = &calls[i];
        c->cached = 0;
        c->cost = 0;
        if (l->score_labels && c->n_choices > 0) {
            c->st = score_choices(l, c);
            if (c->st == RP_ERR_INTERRUPTED) { free(jobs); free(msgs); free(which); return c->st; }
            if (c->st != RP_OK) snprintf(c->error, sizeof c->error, "%s", rp_errmsg());
            else c->error[0] = 0;
            continue;
        }
        msgs[nj] = (rp_chat_msg){"user", c->prompt};
        jobs[nj] = (rp_chat_job){.msgs = &msgs[nj], .n_msgs = 1, .text = &c->text,
                                 .o = {.temperature = (float)c->temperature, .top_p = 1.0f, .seed = (uint64_t)c->attempt + 1,
                                       .max_tokens = c->max_tokens}};
        which[nj++] = i;
    }
    /* the generating calls decoded together: each answer equals its one-at-a-time rp_chat_complete */
    rp_status st = nj ? rp_chat_complete_many(l->model, rp_session_n_ctx(l->session), jobs, (int)nj, 8) : RP_OK;
    for (size_t k = 0; k < nj; k++) {
        rp_safe_call *c = &calls[which[k]];
        c->st = st != RP_OK ? st : jobs[k].st;
        if (c->st != RP_OK) { snprintf(c->error, sizeof c->error, "%s", st != RP_OK ? rp_errmsg() : jobs[k].error); continue; }
        c->error[0] = 0;
        c->prompt_tokens = (long)jobs[k].n_prompt;
        c->completion_tokens = (long)jobs[k].n_gen;
    }
    free(jobs); free(msgs); free(which);
    return st == RP_ERR_INTERRUPTED ? st : RP_OK;
}

rp_status rp_safe_local_new(const char *model_path, int n_ctx, int score_labels, rp_safe_llm *out) {
    memset(out, 0, sizeof *out);
    local *l = calloc(1, sizeof *l);
    if (!l) return rp_fail(RP_ERR_NOMEM, "out of memory");
    rp_status st = rp_model_load(model_path, NULL, &l->model);
    if (st == RP_OK) st = rp_session_new(l->model, n_ctx, 0, 0, &l->session);
    if (st != RP_OK) { local_release(l); return st; }
    l->score_labels = score_labels;
    const char *base = strrchr(model_path, '/');
    base = base ? base + 1 : model_path;
    out->ctx = l;
    snprintf(out->name, sizeof out->name, "%s:%s", score_labels ? "local-scored" : "local", base);
    out->complete = local_complete;
    out->release = local_release;
    return RP_OK;
}
