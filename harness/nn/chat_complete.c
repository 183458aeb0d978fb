/* chat_complete.c: chat completions: the conversation through the model's chat template, then generation
 * with the room left in the context (generate.h); one on a session, or many decoded together
 * (rp_generate_batch). Shared by `repro serve` and in-process clients (the SAFE plugin's local backend), so
 * both answer a conversation the same way.
 * Invariant: the session is reset first; on error the text buffer is left as it was; a batch of completions
 * gives each the result the one-at-a-time call would. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nn/generate.h"

/* The conversation's prompt ids, checked against the context; go = o with max_tokens capped to the room. */
static rp_status chat_prompt(const rp_tokenizer *tok, const rp_chat_msg *msgs, int n, int n_ctx, const rp_generate_opts *o,
                             rp_tokens *ids, rp_generate_opts *go) {
    if (!tok) return rp_fail(RP_ERR_UNSUPPORTED, "chat completion: the model has no tokenizer");
    rp_buf prompt = {0};
    rp_status st = rp_tokenizer_chat_format(tok, msgs, n, 1, &prompt);
    if (st == RP_OK) st = rp_tokenizer_encode(tok, prompt.data, prompt.len, RP_TOK_PARSE_SPECIAL | RP_TOK_NO_BOS, ids);
    rp_buf_free(&prompt);
    if (st == RP_OK && (int64_t)ids->n + 1 > n_ctx)
        st = rp_fail(RP_ERR_RANGE, "prompt of %zu tokens does not fit the context of %d", ids->n, n_ctx);
    *go = *o;
    int room = n_ctx - (int)ids->n;
    if (go->max_tokens <= 0 || go->max_tokens > room) go->max_tokens = room;
    return st;
}

/* text, counts and finish reason from a generation result. */
static rp_status chat_result(const rp_generate_result *res, size_t n_prompt, rp_buf *text, size_t *np, size_t *ng, const char **finish) {
    rp_buf_clear(text);
    RP_TRY(rp_buf_append(text, res->text.data ? res->text.data : "", res->text.len));
    *np = n_prompt;
    *ng = res->tokens.n;
    *finish = (res->stop_reason && (!strcmp(res->stop_reason, "max_tokens") || !strcmp(res->stop_reason, "context"))) ? "length" : "stop";
    return RP_OK;
}

/* Format, encode, generate. */
rp_status rp_chat_complete(rp_session *s, const rp_chat_msg *msgs, int n, const rp_generate_opts *o, rp_buf *text,
                           size_t *n_prompt, size_t *n_gen, const char **finish) {
    rp_tokens ids = {0};
    rp_generate_result res = {0};
    rp_generate_opts go;
    rp_status st = chat_prompt(rp_model_tokenizer(rp_session_model(s)), msgs, n, rp_session_n_ctx(s), o, &ids, &go);
    if (st == RP_OK) {
        rp_session_reset(s);
        st = rp_generate(s, ids.ids, ids.n, &go, &res);
    }
    if (st == RP_OK) st = chat_result(&res, ids.n, text, n_prompt, n_gen, finish);
    rp_generate_result_free(&res);
    rp_tokens_free(&ids);
    return st;
}

/* Many chat completions decoded together (see generate.h). */
rp_status rp_chat_complete_many(rp_model *m, int n_ctx, rp_chat_job *jobs, int n, int n_slots) {
    const rp_tokenizer *tok = rp_model_tokenizer(m);
    rp_tokens *ids = calloc((size_t)n, sizeof *ids), *run = calloc((size_t)n, sizeof *run);
    rp_generate_opts *go = calloc((size_t)n, sizeof *go);
    rp_generate_result *res = calloc((size_t)n, sizeof *res);
    int *which = calloc((size_t)n, sizeof *which), nr = 0, need = 1;
    rp_status st = ids && run && go && res && which ? RP_OK : rp_fail(RP_ERR_NOMEM, "chat completion: out of memory");
    for (int i = 0; st == RP_OK && i < n; i++) {
        rp_chat_job *j = &jobs[i];
        j->st = chat_prompt(tok, j->msgs, j->n_msgs, n_ctx, &j->o, &ids[i], &go[nr]);
        if (j->st != RP_OK) { snprintf(j->error, sizeof j->error, "%s", rp_errmsg()); continue; }
        run[nr] = ids[i];
        if ((int)ids[i].n + go[nr].max_tokens > need) need = (int)ids[i].n + go[nr].max_tokens;
        which[nr++] = i;
    }
    /* the slots' caches hold what the longest job needs (<= n_ctx): the same results, less memory */
    if (st == RP_OK && nr > 0) st = rp_generate_batch(m, run, nr, go, n_slots, need, res);
    for (int r = 0; st == RP_OK && r < nr; r++) {
        rp_chat_job *j = &jobs[which[r]];
        j->st = chat_result(&res[r], run[r].n, j->text, &j->n_prompt, &j->n_gen, &j->finish);
        if (j->st != RP_OK) snprintf(j->error, sizeof j->error, "%s", rp_errmsg());
    }
    for (int i = 0; res && i < n; i++) rp_generate_result_free(&res[i]);
    for (int i = 0; ids && i < n; i++) rp_tokens_free(&ids[i]);
    free(ids); free(run); free(go); free(res); free(which);
    return st;
}
