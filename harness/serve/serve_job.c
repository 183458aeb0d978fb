/* serve_job.c: the engine behind `repro serve` (serve_job.h): one session, one job at a time under a mutex;
 * the prompts of one request that only generate are decoded together (rp_generate_batch).
 * Scoring (echo, logprobs) runs the model over the tokens with every position's logits, in pieces of at most
 * SCORE_CHUNK positions, reusing whatever prefix of the tokens the session's cache already holds (choices of
 * a multiple-choice question share their context, so each pays for its own tokens only). Generation starts
 * from a reset session, as rp_chat_complete does, so served greedy text equals the in-process backend's.
 * Invariant: the mutex is held only while the session is used; callers tokenize and validate before. */
#include "serve/serve_job.h"
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { SCORE_CHUNK = 64 };              /* positions per all-logits forward (the session's n_logits) */

struct rp_serve_engine {
    rp_session *session;
    int n_vocab;
    pthread_mutex_t mu;
};

/* Create the engine's session. */
rp_status rp_serve_engine_new(rp_model *m, int n_ctx, rp_serve_engine **out) {
    *out = NULL;
    rp_serve_engine *e = calloc(1, sizeof *e);
    if (!e) return rp_fail(RP_ERR_NOMEM, "serve: out of memory");
    rp_status st = rp_session_new(m, n_ctx, 0, SCORE_CHUNK, &e->session);
    if (st != RP_OK) { free(e); return st; }
    e->n_vocab = rp_model_config(m)->vocab;
    pthread_mutex_init(&e->mu, NULL);
    *out = e;
    return RP_OK;
}

/* Free the session and the engine. */
void rp_serve_engine_free(rp_serve_engine *e) {
    if (!e) return;
    rp_session_free(e->session);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

/* The session's context length. */
int rp_serve_engine_n_ctx(const rp_serve_engine *e) { return rp_session_n_ctx(e->session); }

/* Check the job's prompt and length against the context and the vocabulary. */
rp_status rp_serve_engine_check(const rp_serve_engine *e, const rp_serve_job *j, int *max_tokens_room) {
    int n_ctx = rp_session_n_ctx(e->session);
    if (j->n_prompt == 0) return rp_fail(RP_ERR_RANGE, "the prompt is empty (it needs at least one token)");
    for (size_t i = 0; i < j->n_prompt; i++)
        if (j->prompt[i] < 0 || j->prompt[i] >= e->n_vocab)
            return rp_fail(RP_ERR_RANGE, "token id %ld at prompt position %zu is not in the vocabulary [0, %d)",
                           (long)j->prompt[i], i, e->n_vocab);
    if ((int64_t)j->n_prompt > n_ctx || ((int64_t)j->n_prompt == n_ctx && j->max_tokens > 0))
        return rp_fail(RP_ERR_RANGE, "the prompt has %zu tokens; this server's context length is %d tokens", j->n_prompt, n_ctx);
    int room = n_ctx - (int)j->n_prompt;
    if (max_tokens_room) *max_tokens_room = room;
    if (j->max_tokens > room)
        return rp_fail(RP_ERR_RANGE, "max_tokens %d plus the prompt's %zu tokens exceed this server's context length of %d "
                       "tokens (at most %d for this prompt)", j->max_tokens, j->n_prompt, n_ctx, room);
    return RP_OK;
}

/* Log-softmax of row[target] and the top n alternatives into t. */
static void score_row(const float *row, int V, int32_t target, int n_top, rp_serve_tokenlp *t) {
    float mx = row[0];
    for (int v = 1; v < V; v++) if (row[v] > mx) mx = row[v];
    double sum = 0;
    for (int v = 0; v < V; v++) sum += exp((double)(row[v] - mx));
    float lse = mx + (float)log(sum);
    t->id = target;
    t->lp = row[target] - lse;
    t->n_top = 0;
    for (int v = 0; v < V && n_top > 0; v++) {           /* insertion into the sorted top list */
        float x = row[v];
        if (t->n_top == n_top && x <= row[t->top_id[n_top - 1]]) continue;
        int k = t->n_top < n_top ? t->n_top++ : n_top - 1;
        while (k > 0 && row[t->top_id[k - 1]] < x) { t->top_id[k] = t->top_id[k - 1]; k--; }
        t->top_id[k] = v;
    }
    for (int k = 0; k < t->n_top; k++) t->top_lp[k] = row[t->top_id[k]] - lse;
}

/* out[i - from] = score of toks[i + 1] after toks[0 .. i], for i in [from, n - 1). */
static rp_status score_range(rp_serve_engine *e, const int32_t *toks, size_t n, size_t from, int n_top, rp_serve_tokenlp *out) {
    rp_session *s = e->session;
    /* keep the longest prefix of the cache that matches toks[0 .. from) */
    int64_t past = rp_session_n_past(s), keep = 0;
    const int32_t *cached = rp_session_tokens(s);
    while (keep < past && (size_t)keep < from && cached[keep] == toks[keep]) keep++;
    RP_TRY(rp_session_truncate(s, keep));
    if ((size_t)keep < from) RP_TRY(rp_session_forward(s, toks + keep, (int64_t)(from - (size_t)keep), RP_LOGITS_NONE, NULL, NULL));
    float *logits = malloc((size_t)SCORE_CHUNK * (size_t)e->n_vocab * sizeof *logits);
    if (!logits) return rp_fail(RP_ERR_NOMEM, "out of memory for %d rows of logits", SCORE_CHUNK);
    rp_status st = RP_OK;
    for (size_t i = from; st == RP_OK && i + 1 < n;) {
        size_t T = n - 1 - i < SCORE_CHUNK ? n - 1 - i : SCORE_CHUNK;
        st = rp_session_forward(s, toks + i, (int64_t)T, RP_LOGITS_ALL, logits, NULL);
        for (size_t t = 0; st == RP_OK && t < T; t++)
            score_row(logits + t * (size_t)e->n_vocab, e->n_vocab, toks[i + t + 1], n_top, &out[i + t - from]);
        i += T;
    }
    free(logits);
    return st;
}

/* finish and n_completion from the generation's result; the generated count (end-of-generation included). */
static size_t finish_job(rp_serve_job *j) {
    const char *why = j->out.stop_reason;
    j->finish = why && (!strcmp(why, "max_tokens") || !strcmp(why, "context")) ? "length" : "stop";
    j->n_completion = j->out.tokens.n + (j->out.eog_token >= 0);
    return j->n_completion;
}

/* The job under the lock: echo scoring, generation, then the generated tokens' scores. */
static rp_status run_locked(rp_serve_engine *e, rp_serve_job *j) {
    rp_session *s = e->session;
    int n_top = j->logprobs > RP_SERVE_TOP_MAX ? RP_SERVE_TOP_MAX : j->logprobs;
    size_t n_echo = j->echo ? j->n_prompt : 0;
    j->finish = "length";
    if (j->echo) {
        j->lp = calloc(j->n_prompt, sizeof *j->lp);
        if (!j->lp) return rp_fail(RP_ERR_NOMEM, "serve: out of memory");
        j->lp[0] = (rp_serve_tokenlp){ .id = j->prompt[0], .lp = NAN };
        j->n_lp = j->n_prompt;
        RP_TRY(score_range(e, j->prompt, j->n_prompt, 0, n_top < 0 ? 0 : n_top, j->lp + 1));
    }
    if (j->max_tokens == 0) return RP_OK;
    rp_generate_opts go = j->gen;
    go.max_tokens = j->max_tokens;
    if (!j->echo) rp_session_reset(s);
    /* after echo the cache holds prompt[0 .. n-1): feed the last prompt token, as a fresh generation would */
    size_t fed = j->echo ? j->n_prompt - 1 : 0;
    if (j->echo) RP_TRY(rp_session_truncate(s, (int64_t)fed));
    RP_TRY(rp_generate(s, j->prompt + fed, j->n_prompt - fed, &go, &j->out));
    size_t n_gen = finish_job(j);
    if (j->logprobs < 0 || n_gen == 0) return RP_OK;
    /* generated tokens' scores (the end-of-generation token too): teacher-forced over prompt + generated,
     * from the last prompt position */
    size_t n_all = j->n_prompt + n_gen;
    int32_t *all = malloc(n_all * sizeof *all);
    rp_serve_tokenlp *lp = realloc(j->lp, (n_echo + n_gen) * sizeof *lp);
    if (!all || !lp) { free(all); if (lp) j->lp = lp; return rp_fail(RP_ERR_NOMEM, "serve: out of memory"); }
    j->lp = lp;
    memcpy(all, j->prompt, j->n_prompt * sizeof *all);
    if (j->out.tokens.n) memcpy(all + j->n_prompt, j->out.tokens.ids, j->out.tokens.n * sizeof *all);   /* none when only the end token came */
    if (j->out.eog_token >= 0) all[n_all - 1] = j->out.eog_token;
    rp_status st = score_range(e, all, n_all, j->n_prompt - 1, n_top, j->lp + n_echo);
    if (st == RP_OK) j->n_lp = n_echo + n_gen;
    free(all);
    return st;
}

/* Run a job on the engine's session. */
rp_status rp_serve_engine_run(rp_serve_engine *e, rp_serve_job *j) {
    RP_TRY(rp_serve_engine_check(e, j, NULL));
    pthread_mutex_lock(&e->mu);
    rp_status st = run_locked(e, j);
    if (st != RP_OK) rp_session_reset(e->session);      /* a failed job leaves no half-written cache behind */
    pthread_mutex_unlock(&e->mu);
    return st;
}

/* Run n jobs (see serve_job.h): plain generations (no echo, no logprobs, no streaming) are decoded together. */
rp_status rp_serve_engine_run_many(rp_serve_engine *e, rp_serve_job *jobs, size_t n) {
    int plain = n > 1;
    for (size_t i = 0; i < n; i++) {
        RP_TRY(rp_serve_engine_check(e, &jobs[i], NULL));
        plain &= !jobs[i].echo && jobs[i].logprobs < 0 && !jobs[i].gen.on_text && jobs[i].max_tokens > 0;
    }
    if (!plain) {
        for (size_t i = 0; i < n; i++) RP_TRY(rp_serve_engine_run(e, &jobs[i]));
        return RP_OK;
    }
    rp_tokens *pr = calloc(n, sizeof *pr);
    rp_generate_opts *go = calloc(n, sizeof *go);
    rp_generate_result *res = calloc(n, sizeof *res);
    rp_status st = pr && go && res ? RP_OK : rp_fail(RP_ERR_NOMEM, "serve: out of memory");
    int n_ctx = 1;
    for (size_t i = 0; st == RP_OK && i < n; i++) {
        pr[i] = (rp_tokens){ (int32_t *)jobs[i].prompt, jobs[i].n_prompt, jobs[i].n_prompt };   /* borrowed, not freed */
        go[i] = jobs[i].gen;
        go[i].max_tokens = jobs[i].max_tokens;
        if ((int)jobs[i].n_prompt + jobs[i].max_tokens > n_ctx) n_ctx = (int)jobs[i].n_prompt + jobs[i].max_tokens;
    }
    if (st == RP_OK) {
        pthread_mutex_lock(&e->mu);
        st = rp_generate_batch(rp_session_model(e->session), pr, (int)n, go, (int)(n < 16 ? n : 16), n_ctx, res);
        pthread_mutex_unlock(&e->mu);
    }
    for (size_t i = 0; res && i < n; i++) {
        if (st == RP_OK) { jobs[i].out = res[i]; finish_job(&jobs[i]); }
        else rp_generate_result_free(&res[i]);
    }
    free(pr); free(go); free(res);
    return st;
}

/* Free a job's results. */
void rp_serve_job_free(rp_serve_job *j) {
    rp_generate_result_free(&j->out);
    free(j->lp);
    j->lp = NULL;
    j->n_lp = 0;
}
