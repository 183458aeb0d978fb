/* safe_http.c: the backends that talk HTTP: any OpenAI-compatible chat-completions endpoint, and Serper.
 * Batches go through rp_http_do_many (curl multi: bounded concurrency, retries with backoff and jitter on
 * 429/5xx/timeouts honouring Retry-After, request and token rate limits). API keys are read from the
 * environment when a backend is created, live only in the backend's header line in memory, and never
 * reach names, cache keys, errors or records. A body that is HTML, truncated or malformed JSON becomes a
 * per-call RP_ERR_FORMAT with the reason; nothing here aborts on a bad answer. */
#include "plugins/safe/safe.h"
#include "net/http.h"
#include "util/json.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

rp_status rp_safe_openai_parse(const char *body, size_t len, rp_safe_call *call) {
    rp_json *j = NULL;
    rp_status st = rp_json_parse(body, len, &j);
    if (st != RP_OK) return rp_fail_ctx(st, "chat completion: response is not JSON (%zu bytes): ", len);
    const rp_json *err = rp_json_get(j, "error");
    const char *content = rp_json_str(rp_json_path(j, "choices.0.message.content"), NULL);
    if (rp_json_typeof(j) != RP_JSON_OBJECT) st = rp_fail(RP_ERR_FORMAT, "chat completion: response is not a JSON object");
    else if (err && rp_json_typeof(err) != RP_JSON_NULL)
        st = rp_fail(RP_ERR_FORMAT, "chat completion: API error: %.300s",
                     rp_json_str(rp_json_get(err, "message"), rp_json_str(err, "(no message)")));
    else if (!content) st = rp_fail(RP_ERR_FORMAT, "chat completion: no choices[0].message.content string");
    if (st == RP_OK) {
        rp_buf_clear(&call->text);
        st = rp_buf_puts(&call->text, content);
        call->prompt_tokens = (long)rp_json_num(rp_json_path(j, "usage.prompt_tokens"), 0);
        call->completion_tokens = (long)rp_json_num(rp_json_path(j, "usage.completion_tokens"), 0);
    }
    rp_json_free(j);
    return st;
}

typedef struct openai {
    rp_http_client *client;
    char *url, *model, *auth;   /* auth: "Authorization: Bearer ..." or NULL */
    double price_in, price_out, timeout_s;
    int max_concurrent;
} openai;

static void openai_release(void *ctx) {
    openai *o = ctx;
    rp_http_client_free(o->client);
    if (o->auth) memset(o->auth, 0, strlen(o->auth));
    free(o->url); free(o->model); free(o->auth);
    free(o);
}

static rp_status openai_complete(void *ctx, rp_safe_call *calls, size_t n) {
    openai *o = ctx;
    if (n == 0) return RP_OK;
    rp_http_request *req = calloc(n, sizeof *req);
    rp_http_response *resp = calloc(n, sizeof *resp);
    rp_buf *bodies = calloc(n, sizeof *bodies);
    const char *headers[2] = {"Content-Type: application/json", o->auth};
    rp_status st = (!req || !resp || !bodies) ? rp_fail(RP_ERR_NOMEM, "out of memory") : RP_OK;
    for (size_t i = 0; st == RP_OK && i < n; i++) {
        rp_buf *b = &bodies[i];
        st = rp_buf_puts(b, "{\"model\":");
        if (st == RP_OK) st = rp_json_quote(b, o->model, strlen(o->model));
        if (st == RP_OK) st = rp_buf_puts(b, ",\"messages\":[{\"role\":\"user\",\"content\":");
        if (st == RP_OK) st = rp_json_quote(b, calls[i].prompt, strlen(calls[i].prompt));
        if (st == RP_OK) st = rp_buf_printf(b, "}],\"temperature\":%.17g,\"max_tokens\":%d}", calls[i].temperature, calls[i].max_tokens);
        req[i] = (rp_http_request){ .method = "POST", .url = o->url, .headers = headers, .n_headers = o->auth ? 2 : 1,
                                    .body = b->data, .body_len = b->len, .timeout_s = o->timeout_s,
                                    .tokens = (double)strlen(calls[i].prompt) / 4.0 + calls[i].max_tokens };
    }
    if (st == RP_OK) {
        rp_http_do_many(o->client, req, resp, n, o->max_concurrent);   /* per-call outcomes below */
        for (size_t i = 0; i < n; i++) {
            rp_safe_call *c = &calls[i];
            c->cached = 0;
            c->net_retries = resp[i].attempts > 1 ? resp[i].attempts - 1 : 0;
            if (resp[i].st != RP_OK) {
                c->st = RP_ERR_NET;
                snprintf(c->error, sizeof c->error, "%s", resp[i].error[0] ? resp[i].error : "request failed");
            } else if ((c->st = rp_safe_openai_parse(resp[i].body.data ? resp[i].body.data : "", resp[i].body.len, c)) != RP_OK) {
                snprintf(c->error, sizeof c->error, "%s", rp_errmsg());
            } else {
                c->error[0] = 0;
                c->cost = (o->price_in * (double)c->prompt_tokens + o->price_out * (double)c->completion_tokens) / 1e6;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (resp) rp_http_response_free(&resp[i]);
        if (bodies) rp_buf_free(&bodies[i]);
    }
    free(req); free(resp); free(bodies);
    return st;
}

/* The key from the environment as a header line ("" or unset: none). */
static rp_status key_header(const char *env, const char *fmt, char **out) {
    *out = NULL;
    const char *k = env && *env ? getenv(env) : NULL;
    if (!k || !*k) return RP_OK;
    size_t n = strlen(fmt) + strlen(k) + 1;
    if (!(*out = malloc(n))) return rp_fail(RP_ERR_NOMEM, "out of memory");
    snprintf(*out, n, fmt, k);
    return RP_OK;
}

static rp_status new_client(int retries, double base, double rpm, double tpm, double timeout_s, rp_http_client **out) {
    rp_http_policy pol = rp_http_policy_default();
    if (retries >= 0) pol.max_retries = retries;
    if (base > 0) pol.backoff_base_s = base;
    if (timeout_s > 0) pol.timeout_s = timeout_s;
    return rp_http_client_new(&pol, rpm, tpm, out);
}

rp_status rp_safe_openai_new(const rp_safe_openai_config *cfg, rp_safe_llm *out) {
    memset(out, 0, sizeof *out);
    if (!cfg->base_url || !*cfg->base_url || !cfg->model || !*cfg->model)
        return rp_fail(RP_ERR_INVAL, "OpenAI backend: base_url and model are required");
    openai *o = calloc(1, sizeof *o);
    if (!o) return rp_fail(RP_ERR_NOMEM, "out of memory");
    size_t ul = strlen(cfg->base_url);
    while (ul && cfg->base_url[ul - 1] == '/') ul--;
    o->url = malloc(ul + 32);
    o->model = strdup(cfg->model);
    o->price_in = cfg->price_in_per_m;
    o->price_out = cfg->price_out_per_m;
    o->max_concurrent = cfg->max_concurrent > 0 ? cfg->max_concurrent : 4;
    o->timeout_s = cfg->timeout_s > 0 ? cfg->timeout_s : 120;
    rp_status st = (!o->url || !o->model) ? rp_fail(RP_ERR_NOMEM, "out of memory") : RP_OK;
    if (st == RP_OK) snprintf(o->url, ul + 32, "%.*s/chat/completions", (int)ul, cfg->base_url);
    if (st == RP_OK) st = key_header(cfg->api_key_env, "Authorization: Bearer %s", &o->auth);
    if (st == RP_OK) st = new_client(cfg->max_retries > 0 ? cfg->max_retries : 5, cfg->backoff_base_s, cfg->requests_per_min,
                                     cfg->tokens_per_min, o->timeout_s, &o->client);
    if (st != RP_OK) { openai_release(o); return st; }
    out->ctx = o;
    snprintf(out->name, sizeof out->name, "openai:%s", cfg->model);
    out->complete = openai_complete;
    out->release = openai_release;
    return RP_OK;
}

typedef struct serper {
    rp_http_client *client;
    char *url, *auth;
    double price, timeout_s;
    int max_concurrent;
} serper;

static void serper_release(void *ctx) {
    serper *s = ctx;
    rp_http_client_free(s->client);
    if (s->auth) memset(s->auth, 0, strlen(s->auth));
    free(s->url); free(s->auth);
    free(s);
}

static rp_status serper_search(void *ctx, rp_safe_query *qs, size_t n) {
    serper *s = ctx;
    if (n == 0) return RP_OK;
    rp_http_request *req = calloc(n, sizeof *req);
    rp_http_response *resp = calloc(n, sizeof *resp);
    rp_buf *bodies = calloc(n, sizeof *bodies);
    const char *headers[2] = {"Content-Type: application/json", s->auth};
    rp_status st = (!req || !resp || !bodies) ? rp_fail(RP_ERR_NOMEM, "out of memory") : RP_OK;
    for (size_t i = 0; st == RP_OK && i < n; i++) {
        st = rp_buf_puts(&bodies[i], "{\"q\":");
        if (st == RP_OK) st = rp_json_quote(&bodies[i], qs[i].q, strlen(qs[i].q));
        if (st == RP_OK) st = rp_buf_printf(&bodies[i], ",\"gl\":\"us\",\"hl\":\"en\",\"num\":%d}", qs[i].k);
        req[i] = (rp_http_request){ .method = "POST", .url = s->url, .headers = headers, .n_headers = s->auth ? 2 : 1,
                                    .body = bodies[i].data, .body_len = bodies[i].len, .timeout_s = s->timeout_s };
    }
    if (st == RP_OK) {
        rp_http_do_many(s->client, req, resp, n, s->max_concurrent);
        for (size_t i = 0; i < n; i++) {
            rp_safe_query *q = &qs[i];
            q->cached = 0;
            q->net_retries = resp[i].attempts > 1 ? resp[i].attempts - 1 : 0;
            if (resp[i].st != RP_OK) {
                q->st = RP_ERR_NET;
                snprintf(q->error, sizeof q->error, "%s", resp[i].error[0] ? resp[i].error : "request failed");
            } else if ((q->st = rp_safe_serper_parse(resp[i].body.data ? resp[i].body.data : "", resp[i].body.len, q->k, &q->text)) != RP_OK) {
                snprintf(q->error, sizeof q->error, "%s", rp_errmsg());
            } else {
                q->error[0] = 0;
                q->cost = s->price;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (resp) rp_http_response_free(&resp[i]);
        if (bodies) rp_buf_free(&bodies[i]);
    }
    free(req); free(resp); free(bodies);
    return st;
}

rp_status rp_safe_serper_new(const rp_safe_serper_config *cfg, rp_safe_search *out) {
    memset(out, 0, sizeof *out);
    serper *s = calloc(1, sizeof *s);
    if (!s) return rp_fail(RP_ERR_NOMEM, "out of memory");
    s->url = strdup(cfg->url && *cfg->url ? cfg->url : "https://google.serper.dev/search");
    s->price = cfg->price_per_query > 0 ? cfg->price_per_query : 0.001;
    s->max_concurrent = cfg->max_concurrent > 0 ? cfg->max_concurrent : 4;
    s->timeout_s = cfg->timeout_s > 0 ? cfg->timeout_s : 60;
    rp_status st = s->url ? RP_OK : rp_fail(RP_ERR_NOMEM, "out of memory");
    if (st == RP_OK) st = key_header(cfg->api_key_env && *cfg->api_key_env ? cfg->api_key_env : "SERPER_API_KEY", "X-API-KEY: %s", &s->auth);
    if (st == RP_OK) st = new_client(cfg->max_retries > 0 ? cfg->max_retries : 5, cfg->backoff_base_s, cfg->requests_per_min, 0,
                                     s->timeout_s, &s->client);
    if (st != RP_OK) { serper_release(s); return st; }
    out->ctx = s;
    snprintf(out->name, sizeof out->name, "serper:%s", s->url);
    out->search = serper_search;
    out->release = serper_release;
    return RP_OK;
}
