/* serve.c: the OpenAI-compatible endpoints over a local model (see serve.h): routing, the request ->
 * job -> reply flow for /v1/chat/completions and /v1/completions (streamed as server-sent events on
 * request), /v1/models, /health, and the server's lifecycle. A handler submits its request's jobs to the
 * engine's queue (429 when full, 503 while stopping, each with Retry-After) and waits for them, polling its
 * connection so a client that hangs up cancels its jobs and frees their slots. Checking and tokenizing happen before a job reaches the
 * engine (serve_request.c); the engine runs the model (serve_job.c); serve_reply.c writes the answers. */
#define _GNU_SOURCE                     /* POLLRDHUP */
#include "serve/serve.h"
#include "net/httpd.h"
#include "util/json.h"
#include "nn/generate.h"
#include "nn/llama.h"
#include "assets/model_resolve.h"
#include "serve/serve_job.h"
#include "serve/serve_reply.h"
#include "serve/serve_request.h"
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct rp_server {
    rp_model *model;
    rp_serve_engine *engine;
    rp_httpd *httpd;
    char model_id[256];
    rp_serve_opts limits;
    unsigned long served;
    int in_flight;                      /* completion handlers running (stop lets them answer before closing connections) */
};

/* An OpenAI-shaped error response. */
static int fail(rp_httpd_response *r, const rp_serve_error *err) {
    r->status = err->status;
    rp_buf_clear(&r->body);
    rp_serve_error_json(err, &r->body);
    return RP_HTTPD_OK;
}

static int models(rp_server *s, rp_httpd_response *r) {
    rp_buf_puts(&r->body, "{\"object\":\"list\",\"data\":[{\"id\":");
    rp_json_quote(&r->body, s->model_id, strlen(s->model_id));
    rp_buf_printf(&r->body, ",\"object\":\"model\",\"created\":0,\"owned_by\":\"repro\",\"context_length\":%d}]}",
                  rp_serve_engine_n_ctx(s->engine));
    return RP_HTTPD_OK;
}

/* Jobs for each prompt of q, checked against the context; -1 with err filled when one does not fit. */
static int make_jobs(rp_server *s, const rp_serve_request *q, rp_serve_job *jobs, rp_serve_error *err) {
    for (size_t i = 0; i < q->n_prompts; i++) {
        rp_serve_job *j = &jobs[i];
        j->prompt = q->prompts[i].ids;
        j->n_prompt = q->prompts[i].n;
        j->logprobs = q->logprobs;
        j->echo = q->echo;
        j->gen = (rp_generate_opts){ .temperature = q->top_p == 0 ? 0 : (float)q->temperature, .top_p = (float)q->top_p,
                                     .seed = q->seed, .stop = q->stop, .n_stop = q->n_stop };
        char field[48];
        if (q->chat) snprintf(field, sizeof field, "messages");
        else if (q->n_prompts > 1) snprintf(field, sizeof field, "prompt[%zu]", i);
        else snprintf(field, sizeof field, "prompt");
        int room = 0;
        j->max_tokens = 0;
        if (rp_serve_engine_check(s->engine, j, &room) != RP_OK) {
            if (q->n_prompts > 1) return rp_serve_error_set(err, 400, "invalid_request_error", field, "%s: %s", field, rp_errmsg());
            return rp_serve_error_set(err, 400, "invalid_request_error", field, "%s", rp_errmsg());
        }
        if (q->max_tokens > room) {                     /* the check's message names the real limits */
            j->max_tokens = (int)q->max_tokens;
            rp_serve_engine_check(s->engine, j, NULL);
            return rp_serve_error_set(err, 400, "invalid_request_error", q->chat && rp_json_get(q->json, "max_completion_tokens")
                                      ? "max_completion_tokens" : "max_tokens", "%s", rp_errmsg());
        }
        j->max_tokens = q->max_tokens >= 0 ? (int)q->max_tokens
                                           : s->limits.default_max_tokens < room ? s->limits.default_max_tokens : room;
        if (q->chat && j->max_tokens == 0)
            return rp_serve_error_set(err, 400, "invalid_request_error", "messages", "the conversation has %zu tokens and fills this "
                                      "server's context length of %d tokens: no room for an answer", j->n_prompt, rp_serve_engine_n_ctx(s->engine));
    }
    return 0;
}

/* 1 when the client has closed its side of the connection (it will read nothing more). */
static int client_gone(int fd) {
    struct pollfd p = { .fd = fd, .events = POLLRDHUP };
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* A refused submission: 429 when the queue is full, 503 while shutting down; both with Retry-After. */
static int refuse(rp_server *s, rp_httpd_response *r, rp_serve_admit a, size_t n_jobs) {
    rp_serve_error err;
    rp_serve_engine_stats k = rp_serve_engine_stats_now(s->engine);
    if (a == RP_SERVE_FULL)
        rp_serve_error_set(&err, 429, "rate_limit_error", NULL, "repro serve is busy: %d sequences decoding and %d waiting fill its %d slots "
                           "and its queue of %d (--slots, --queue); this request has %zu prompt(s); retry later", k.active, k.waiting,
                           k.n_slots, k.n_queue, n_jobs);
    else
        rp_serve_error_set(&err, 503, "server_error", NULL, "repro serve is shutting down");
    fail(r, &err);
    rp_buf_puts(&r->headers, "Retry-After: 1\r\n");
    return RP_HTTPD_OK;
}

/* Wait until every job is done, cancelling them all when the client goes away. */
static void wait_all(rp_server *s, int fd, rp_serve_job *jobs, size_t n) {
    rp_buf none = {0};                                   /* non-streaming jobs leave no text: only timeouts */
    for (size_t i = 0; i < n; i++)
        while (rp_serve_engine_wait(s->engine, &jobs[i], &none, 0.2)) {
            rp_buf_clear(&none);
            if (client_gone(fd)) rp_serve_engine_cancel(s->engine, jobs, n);
        }
    rp_buf_free(&none);
}

/* The first job's failure as an error (503 when the server closed, 400 for a limit, else 500); 0 if none. */
static int job_error(const rp_serve_job *jobs, size_t n, rp_serve_error *err) {
    for (size_t i = 0; i < n; i++) {
        if (jobs[i].closed == RP_SERVE_CLOSED) return rp_serve_error_set(err, 503, "server_error", NULL, "repro serve is shutting down");
        if (jobs[i].st != RP_OK)
            return rp_serve_error_set(err, jobs[i].st == RP_ERR_RANGE ? 400 : 500, jobs[i].st == RP_ERR_RANGE ? "invalid_request_error"
                                      : "server_error", NULL, "%s", jobs[i].error);
    }
    return 0;
}

/* Submit q's jobs and stream their text as server-sent events, choice after choice (all decode together). */
static int stream_jobs(rp_server *s, const rp_httpd_request *req, rp_httpd_response *r, const rp_serve_request *q,
                       rp_serve_job *jobs, const rp_serve_reply_id *rid) {
    for (size_t i = 0; i < q->n_prompts; i++) jobs[i].stream = 1;
    rp_serve_admit a = rp_serve_engine_submit(s->engine, jobs, q->n_prompts);
    if (a != RP_SERVE_ADMITTED) return refuse(s, r, a, q->n_prompts);
    rp_serve_stream st = { .fd = req->fd, .chat = q->chat, .rid = rid };
    size_t np = 0, nc = 0;
    rp_buf text = {0};
    int ok = rp_serve_stream_begin(&st) == 0;
    for (size_t i = 0; ok && i < q->n_prompts; i++) {
        rp_serve_job *j = &jobs[i];
        if (rp_serve_stream_choice(&st, (int)i) < 0) break;
        for (int more = 1; more && !st.gone;) {
            more = rp_serve_engine_wait(s->engine, j, &text, 0.2);
            if (text.len) rp_serve_stream_text(&st, text.data, text.len);
            rp_buf_clear(&text);
            if (client_gone(req->fd)) st.gone = 1;
        }
        if (st.gone) break;                                  /* the client left: its jobs are cancelled below */
        rp_serve_error err;
        if (job_error(j, 1, &err)) { rp_serve_stream_error(&st, &err); break; }
        np += j->n_prompt;
        nc += j->n_completion;
        if (rp_serve_stream_finish(&st, j->finish) < 0) break;
    }
    rp_buf_free(&text);
    rp_serve_engine_cancel(s->engine, jobs, q->n_prompts);   /* jobs not done yet (an early end) stop now */
    wait_all(s, req->fd, jobs, q->n_prompts);
    rp_serve_stream_end(&st, q->include_usage, np, nc);
    return RP_HTTPD_RAW;
}

/* POST /v1/chat/completions (chat = 1) or /v1/completions. */
static int complete(rp_server *s, const rp_httpd_request *req, rp_httpd_response *r, int chat) {
    rp_serve_request q;
    rp_serve_error err;
    const rp_tokenizer *tok = rp_model_tokenizer(s->model);
    if (rp_serve_request_parse(tok, chat, req->body, req->body_len, &q, &err)) return fail(r, &err);
    rp_serve_job *jobs = calloc(q.n_prompts, sizeof *jobs);
    int rc;
    if (!jobs) rc = fail(r, (rp_serve_error_set(&err, 500, "server_error", NULL, "out of memory"), &err));
    else if (make_jobs(s, &q, jobs, &err)) rc = fail(r, &err);
    else {
        rp_serve_reply_id rid = { .created = (long long)time(NULL), .model = s->model_id };
        snprintf(rid.id, sizeof rid.id, "%s-%lu-%lu", chat ? "chatcmpl" : "cmpl", req->conn_id, req->req_index);
        if (q.stream) rc = stream_jobs(s, req, r, &q, jobs, &rid);
        else {
            rp_serve_admit a = rp_serve_engine_submit(s->engine, jobs, q.n_prompts);
            if (a != RP_SERVE_ADMITTED) rc = refuse(s, r, a, q.n_prompts);
            else {
                wait_all(s, req->fd, jobs, q.n_prompts);
                if (job_error(jobs, q.n_prompts, &err)) {
                    rc = fail(r, &err);
                    if (err.status == 503) rp_buf_puts(&r->headers, "Retry-After: 1\r\n");
                }
                else {
                    rp_serve_reply_write(&r->body, &rid, &q, jobs, tok);
                    rc = RP_HTTPD_OK;
                }
            }
        }
    }
    for (size_t i = 0; jobs && i < q.n_prompts; i++) rp_serve_job_free(&jobs[i]);
    free(jobs);
    rp_serve_request_free(&q);
    return rc;
}

/* GET /health: the engine's slots, queue and counters (readiness for scripts, load for operators). */
static int health(rp_server *s, rp_httpd_response *r) {
    rp_serve_engine_stats k = rp_serve_engine_stats_now(s->engine);
    rp_buf_printf(&r->body, "{\"status\":\"ok\",\"slots\":%d,\"active\":%d,\"queue\":%d,\"waiting\":%d,\"done\":%lu,"
                  "\"refused\":%lu,\"cancelled\":%lu,\"steps\":%lu,\"mean_batch\":%.3f,\"prefilling\":%d,"
                  "\"prefill_tokens\":%lu,\"prefill_chunk\":%d,\"kv_mb\":%.1f}", k.n_slots, k.active, k.n_queue,
                  k.waiting, k.done, k.refused, k.cancelled, k.steps, k.steps ? (double)k.step_rows / (double)k.steps : 0.0,
                  k.prefilling, k.prefill_tokens, s->limits.prefill_chunk, k.kv_mb);
    return RP_HTTPD_OK;
}

/* Does the request path (query string aside) equal p? */
static int path_is(const rp_httpd_request *req, const char *p) {
    const char *q = strchr(req->path, '?');
    size_t pl = q ? (size_t)(q - req->path) : strlen(req->path);
    return pl == strlen(p) && !strncmp(req->path, p, pl);
}

static int handler(void *ud, const rp_httpd_request *req, rp_httpd_response *r) {
    rp_server *s = ud;
    rp_serve_error err;
    __atomic_add_fetch(&s->served, 1, __ATOMIC_RELAXED);
    static const char *const posts[] = { "/v1/chat/completions", "/v1/completions" };
    if (path_is(req, "/health") || path_is(req, "/v1/health")) {
        if (strcmp(req->method, "GET")) return fail(r, (rp_serve_error_set(&err, 405, "invalid_request_error", NULL, "use GET for /health"), &err));
        return health(s, r);
    }
    if (path_is(req, "/v1/models")) {
        if (strcmp(req->method, "GET")) return fail(r, (rp_serve_error_set(&err, 405, "invalid_request_error", NULL, "use GET for /v1/models"), &err));
        return models(s, r);
    }
    for (int k = 0; k < 2; k++) {
        if (!path_is(req, posts[k])) continue;
        if (strcmp(req->method, "POST"))
            return fail(r, (rp_serve_error_set(&err, 405, "invalid_request_error", NULL, "use POST for %s", posts[k]), &err));
        __atomic_add_fetch(&s->in_flight, 1, __ATOMIC_SEQ_CST);
        int rc = complete(s, req, r, k == 0);
        __atomic_sub_fetch(&s->in_flight, 1, __ATOMIC_SEQ_CST);
        return rc;
    }
    return fail(r, (rp_serve_error_set(&err, 404, "not_found_error", NULL, "unknown path '%.200s' (serving POST /v1/chat/completions, "
                                       "POST /v1/completions, GET /v1/models and GET /health)", req->path), &err));
}

/* Load the model and start the HTTP server. */
rp_status rp_serve_start(const char *model_path, const rp_serve_opts *opts, rp_server **out) {
    *out = NULL;
    rp_serve_opts o = opts ? *opts : (rp_serve_opts){0};
    rp_server *s = calloc(1, sizeof *s);
    if (!s) return rp_fail(RP_ERR_NOMEM, "out of memory");
    if (o.default_max_tokens <= 0) o.default_max_tokens = 256;
    if (!o.max_body) o.max_body = (size_t)4 << 20;
    if (o.max_conns <= 0) o.max_conns = 64;
    if (o.idle_timeout_s <= 0) o.idle_timeout_s = 30;
    const char *base = strrchr(model_path, '/');
    base = base ? base + 1 : model_path;
    snprintf(s->model_id, sizeof s->model_id, "%s", o.model_id ? o.model_id : base);
    char *dot = o.model_id ? NULL : strrchr(s->model_id, '.');
    if (dot && (!strcmp(dot, ".gguf") || !strcmp(dot, ".bin"))) *dot = 0;
    rp_model_opts mo = { .backend = o.backend };
    rp_status st = rp_model_load_named(model_path, &mo, &s->model);
    if (st == RP_OK && !rp_model_tokenizer(s->model)) st = rp_fail(RP_ERR_UNSUPPORTED, "%s: the model has no tokenizer", model_path);
    rp_serve_engine_opts eo = { .n_ctx = o.n_ctx, .n_slots = o.n_slots, .n_queue = o.n_queue, .prefill_chunk = o.prefill_chunk };
    if (st == RP_OK) st = rp_serve_engine_new(s->model, &eo, &s->engine);
    if (st == RP_OK) {
        eo = rp_serve_engine_limits(s->engine);
        o.n_ctx = eo.n_ctx;
        o.n_slots = eo.n_slots;
        o.n_queue = eo.n_queue;
        o.prefill_chunk = eo.prefill_chunk;
    }
    o.model_id = s->model_id;
    s->limits = o;                                  /* before the first request can read it */
    rp_httpd_opts ho = { .host = o.host, .port = o.port, .max_conns = o.max_conns, .max_body = o.max_body,
                         .idle_timeout_s = o.idle_timeout_s };
    if (st == RP_OK) st = rp_httpd_start_opts(&ho, handler, s, &s->httpd);
    if (st != RP_OK) { rp_serve_stop(s); return st; }
    *out = s;
    return RP_OK;
}

/* The bound port. */
int rp_serve_port(const rp_server *s) { return rp_httpd_port(s->httpd); }

/* The limits in force. */
rp_serve_opts rp_serve_limits(const rp_server *s) { return s->limits; }

/* Requests answered so far. */
unsigned long rp_serve_requests(rp_server *s) { return __atomic_load_n(&s->served, __ATOMIC_RELAXED); }

/* Stop the server and free the model. */
void rp_serve_stop(rp_server *s) {
    if (!s) return;
    if (s->engine) rp_serve_engine_close(s->engine);    /* waiting handlers wake with 503 ... */
    for (int i = 0; i < 500 && __atomic_load_n(&s->in_flight, __ATOMIC_SEQ_CST) > 0; i++) {
        struct timespec ts = { 0, 10 * 1000 * 1000 };     /* ... and get up to 5 s to send it before connections close */
        nanosleep(&ts, NULL);
    }
    if (s->httpd) rp_httpd_stop(s->httpd);
    rp_serve_engine_free(s->engine);
    rp_model_free(s->model);
    free(s);
}
