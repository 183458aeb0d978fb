/* safe_local.c: the in-process local model as a SAFE LLM backend, without HTTP: each call is one user
 * message through the model's chat template (rp_chat_complete, the same code `repro serve` runs). Calls run
 * one after another on one session; the retry index seeds sampling so re-asks at temperature > 0 differ. */
#include "plugins/safe/safe.h"
#include "nn/generate.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct local { rp_model *model; rp_session *session; } local;

static void local_release(void *ctx) {
    local *l = ctx;
    rp_session_free(l->session);
    rp_model_free(l->model);
    free(l);
}

static rp_status local_complete(void *ctx, rp_safe_call *calls, size_t n) {
    local *l = ctx;
    for (size_t i = 0; i < n; i++) {
        rp_safe_call *c = &calls[i];
        rp_chat_msg m = {"user", c->prompt};
        rp_generate_opts o = {.temperature = (float)c->temperature, .top_p = 1.0f, .seed = (uint64_t)c->attempt + 1,
                              .max_tokens = c->max_tokens};
        size_t np = 0, ng = 0;
        const char *finish = NULL;
        c->cached = 0;
        c->st = rp_chat_complete(l->session, &m, 1, &o, &c->text, &np, &ng, &finish);
        if (c->st == RP_ERR_INTERRUPTED) return c->st;
        if (c->st != RP_OK) { snprintf(c->error, sizeof c->error, "%s", rp_errmsg()); continue; }
        c->error[0] = 0;
        c->prompt_tokens = (long)np;
        c->completion_tokens = (long)ng;
        c->cost = 0;
    }
    return RP_OK;
}

rp_status rp_safe_local_new(const char *model_path, int n_ctx, rp_safe_llm *out) {
    memset(out, 0, sizeof *out);
    local *l = calloc(1, sizeof *l);
    if (!l) return rp_fail(RP_ERR_NOMEM, "out of memory");
    rp_status st = rp_model_load(model_path, NULL, &l->model);
    if (st == RP_OK) st = rp_session_new(l->model, n_ctx, 0, 0, &l->session);
    if (st != RP_OK) { local_release(l); return st; }
    const char *base = strrchr(model_path, '/');
    base = base ? base + 1 : model_path;
    out->ctx = l;
    snprintf(out->name, sizeof out->name, "local:%s", base);
    out->complete = local_complete;
    out->release = local_release;
    return RP_OK;
}
