/* serve.c: the OpenAI-compatible chat-completions endpoint over a local model (see serve.h).
 * Request fields used: messages (role + content strings), temperature, top_p, max_tokens, seed, stop
 * (string or list); "stream": true is refused. The conversation is formatted with the model's chat
 * template and generated greedily at temperature 0. finish_reason is "length" when max_tokens ran out. */
#include "serve/serve.h"
#include "net/httpd.h"
#include "util/json.h"
#include "nn/generate.h"
#include "nn/llama.h"
#include "assets/model_resolve.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct rp_server {
    rp_model *model;
    rp_session *session;
    rp_httpd *httpd;
    pthread_mutex_t mu;       /* one generation at a time */
    char model_id[256];
    int default_max_tokens;
    unsigned long served;
};

/* An OpenAI-shaped error response. */
static int fail(rp_httpd_response *r, int status, const char *type, const char *msg) {
    r->status = status;
    rp_buf_clear(&r->body);
    rp_buf_puts(&r->body, "{\"error\":{\"message\":");
    rp_json_quote(&r->body, msg, strlen(msg));
    rp_buf_printf(&r->body, ",\"type\":\"%s\"}}", type);
    return RP_HTTPD_OK;
}

static int models(rp_server *s, rp_httpd_response *r) {
    rp_buf_puts(&r->body, "{\"object\":\"list\",\"data\":[{\"id\":");
    rp_json_quote(&r->body, s->model_id, strlen(s->model_id));
    rp_buf_puts(&r->body, ",\"object\":\"model\",\"owned_by\":\"repro\"}]}");
    return RP_HTTPD_OK;
}

static int chat(rp_server *s, const rp_httpd_request *req, rp_httpd_response *r) {
    rp_json *j = NULL;
    if (rp_json_parse(req->body, req->body_len, &j) != RP_OK) {
        char msg[600];
        snprintf(msg, sizeof msg, "request body is not JSON: %s", rp_errmsg());
        return fail(r, 400, "invalid_request_error", msg);
    }
    int rc;
    const rp_json *msgs = rp_json_get(j, "messages");
    size_t n = rp_json_len(msgs);
    if (rp_json_typeof(j) != RP_JSON_OBJECT || rp_json_typeof(msgs) != RP_JSON_ARRAY || n == 0 || n > 256) {
        rc = fail(r, 400, "invalid_request_error", "'messages' must be a non-empty list (at most 256)");
        rp_json_free(j);
        return rc;
    }
    if (rp_json_bool(rp_json_get(j, "stream"), 0)) {
        rc = fail(r, 400, "invalid_request_error", "streaming is not supported by repro serve");
        rp_json_free(j);
        return rc;
    }
    rp_chat_msg *cm = calloc(n, sizeof *cm);
    for (size_t i = 0; cm && i < n; i++) {
        const rp_json *m = rp_json_at(msgs, i);
        cm[i].role = rp_json_str(rp_json_get(m, "role"), NULL);
        cm[i].content = rp_json_str(rp_json_get(m, "content"), NULL);
        if (!cm[i].role || !cm[i].content) {
            free(cm);
            rc = fail(r, 400, "invalid_request_error", "each message needs string 'role' and 'content'");
            rp_json_free(j);
            return rc;
        }
    }
    double temp = rp_json_num(rp_json_get(j, "temperature"), 0);
    double top_p = rp_json_num(rp_json_get(j, "top_p"), 1);
    double maxt = rp_json_num(rp_json_get(j, "max_tokens"), s->default_max_tokens);
    double seed = rp_json_num(rp_json_get(j, "seed"), 0);
    if (!(temp >= 0 && temp <= 2) || !(maxt >= 1 && maxt <= 1e6)) {
        free(cm);
        rc = fail(r, 400, "invalid_request_error", "temperature must be in [0, 2] and max_tokens >= 1");
        rp_json_free(j);
        return rc;
    }
    const char *stops[4];
    int n_stop = 0;
    const rp_json *sj = rp_json_get(j, "stop");
    if (rp_json_typeof(sj) == RP_JSON_STRING) stops[n_stop++] = rp_json_str(sj, "");
    for (size_t i = 0; rp_json_typeof(sj) == RP_JSON_ARRAY && i < rp_json_len(sj) && n_stop < 4; i++)
        if (rp_json_str(rp_json_at(sj, i), NULL)) stops[n_stop++] = rp_json_str(rp_json_at(sj, i), NULL);

    rp_buf text = {0};
    size_t n_prompt = 0, n_gen = 0;
    const char *finish = "stop";
    rp_generate_opts o = {.temperature = (float)temp, .top_p = (float)top_p, .seed = (uint64_t)seed, .max_tokens = (int)maxt,
                          .stop = stops, .n_stop = n_stop};
    rp_status st = RP_OK;
    if (!cm) st = rp_fail(RP_ERR_NOMEM, "out of memory");
    if (st == RP_OK) {
        pthread_mutex_lock(&s->mu);
        st = rp_chat_complete(s->session, cm, (int)n, &o, &text, &n_prompt, &n_gen, &finish);
        pthread_mutex_unlock(&s->mu);
    }
    free(cm);
    if (st != RP_OK) {
        char msg[700];
        snprintf(msg, sizeof msg, "%s", rp_errmsg());
        rc = st == RP_ERR_RANGE ? fail(r, 400, "invalid_request_error", msg) : fail(r, 500, "server_error", msg);
    } else {
        rp_buf_printf(&r->body, "{\"id\":\"chatcmpl-%lu\",\"object\":\"chat.completion\",\"created\":%lld,\"model\":",
                      req->conn_id * 1000 + req->req_index, (long long)time(NULL));
        rp_json_quote(&r->body, s->model_id, strlen(s->model_id));
        rp_buf_puts(&r->body, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
        rp_json_quote(&r->body, text.data ? text.data : "", text.len);
        rp_buf_printf(&r->body, "},\"finish_reason\":\"%s\"}],\"usage\":{\"prompt_tokens\":%zu,\"completion_tokens\":%zu,"
                                "\"total_tokens\":%zu}}", finish, n_prompt, n_gen, n_prompt + n_gen);
        rc = RP_HTTPD_OK;
    }
    rp_buf_free(&text);
    rp_json_free(j);
    return rc;
}

static int handler(void *ud, const rp_httpd_request *req, rp_httpd_response *r) {
    rp_server *s = ud;
    __atomic_add_fetch(&s->served, 1, __ATOMIC_RELAXED);
    const char *q = strchr(req->path, '?');
    size_t pl = q ? (size_t)(q - req->path) : strlen(req->path);
    if (pl == strlen("/v1/models") && !strncmp(req->path, "/v1/models", pl)) {
        if (strcmp(req->method, "GET")) return fail(r, 405, "invalid_request_error", "use GET for /v1/models");
        return models(s, r);
    }
    if (pl == strlen("/v1/chat/completions") && !strncmp(req->path, "/v1/chat/completions", pl)) {
        if (strcmp(req->method, "POST")) return fail(r, 405, "invalid_request_error", "use POST for /v1/chat/completions");
        return chat(s, req, r);
    }
    return fail(r, 404, "invalid_request_error", "unknown path (serving /v1/chat/completions and /v1/models)");
}

rp_status rp_serve_start(const char *model_path, const rp_serve_opts *opts, rp_server **out) {
    *out = NULL;
    rp_serve_opts o = opts ? *opts : (rp_serve_opts){0};
    rp_server *s = calloc(1, sizeof *s);
    if (!s) return rp_fail(RP_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&s->mu, NULL);
    s->default_max_tokens = o.default_max_tokens > 0 ? o.default_max_tokens : 256;
    const char *base = strrchr(model_path, '/');
    base = base ? base + 1 : model_path;
    snprintf(s->model_id, sizeof s->model_id, "%s", o.model_id ? o.model_id : base);
    char *dot = o.model_id ? NULL : strrchr(s->model_id, '.');
    if (dot && (!strcmp(dot, ".gguf") || !strcmp(dot, ".bin"))) *dot = 0;
    rp_status st = rp_model_load_named(model_path, NULL, &s->model);
    if (st == RP_OK && !rp_model_tokenizer(s->model)) st = rp_fail(RP_ERR_UNSUPPORTED, "%s: the model has no tokenizer", model_path);
    if (st == RP_OK) st = rp_session_new(s->model, o.n_ctx, 0, 0, &s->session);
    if (st == RP_OK) st = rp_httpd_start(o.host, o.port, 64, handler, s, &s->httpd);
    if (st != RP_OK) { rp_serve_stop(s); return st; }
    *out = s;
    return RP_OK;
}

int rp_serve_port(const rp_server *s) { return rp_httpd_port(s->httpd); }

unsigned long rp_serve_requests(rp_server *s) { return __atomic_load_n(&s->served, __ATOMIC_RELAXED); }

void rp_serve_stop(rp_server *s) {
    if (!s) return;
    if (s->httpd) rp_httpd_stop(s->httpd);
    rp_session_free(s->session);
    rp_model_free(s->model);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
