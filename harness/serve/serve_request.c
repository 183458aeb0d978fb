/* serve_request.c: checking and tokenizing OpenAI request bodies (serve_request.h). Each field getter treats
 * an absent field and JSON null alike (the default) and refuses any other type or an out-of-range value with
 * a message of the form "'field' must be ..., got ...". Prompts are tokenized here, on the connection's
 * thread: a huge prompt costs its own client time, never the generation lock. */
#include "serve/serve_request.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fill an error. */
int rp_serve_error_set(rp_serve_error *err, int status, const char *type, const char *param, const char *fmt, ...) {
    err->status = status;
    err->type = type;
    snprintf(err->param, sizeof err->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}

/* Append the error object. */
void rp_serve_error_json(const rp_serve_error *err, rp_buf *out) {
    rp_buf_puts(out, "{\"error\":{\"message\":");
    rp_json_quote(out, err->message, strlen(err->message));
    rp_buf_printf(out, ",\"type\":\"%s\",\"param\":", err->type ? err->type : "invalid_request_error");
    if (err->param[0]) rp_json_quote(out, err->param, strlen(err->param));
    else rp_buf_puts(out, "null");
    rp_buf_printf(out, ",\"code\":%d}}", err->status);
}

/* A short description of a JSON value for error messages ("the string \"abc\"", "a list", ...). */
static const char *describe(const rp_json *v, char *out, size_t n) {
    switch (rp_json_typeof(v)) {
    case RP_JSON_NULL: return "null";
    case RP_JSON_BOOL: return rp_json_bool(v, 0) ? "the boolean true" : "the boolean false";
    case RP_JSON_NUMBER: snprintf(out, n, "the number %.17g", rp_json_num(v, 0)); return out;
    case RP_JSON_STRING: snprintf(out, n, "the string \"%.40s%s\"", rp_json_str(v, ""), strlen(rp_json_str(v, "")) > 40 ? "..." : ""); return out;
    case RP_JSON_ARRAY: return "a list";
    case RP_JSON_OBJECT: return "an object";
    }
    return "a value";
}

static int bad(rp_serve_error *err, const char *field, const char *want, const rp_json *v) {
    char d[96];
    return rp_serve_error_set(err, 400, "invalid_request_error", field, "'%s' must be %s, got %s", field, want, describe(v, d, sizeof d));
}

static int absent(const rp_json *v) { return !v || rp_json_typeof(v) == RP_JSON_NULL; }

/* A number in [lo, hi] (integer when integral is set). */
static int get_num(const rp_json *j, const char *field, double lo, double hi, int integral, const char *want, double *out,
                   rp_serve_error *err) {
    const rp_json *v = rp_json_get(j, field);
    if (absent(v)) return 0;
    double x = rp_json_num(v, NAN);
    if (rp_json_typeof(v) != RP_JSON_NUMBER || !(x >= lo && x <= hi) || (integral && x != floor(x))) return bad(err, field, want, v);
    *out = x;
    return 0;
}

static int get_bool(const rp_json *j, const char *field, int *out, rp_serve_error *err) {
    const rp_json *v = rp_json_get(j, field);
    if (absent(v)) return 0;
    if (rp_json_typeof(v) != RP_JSON_BOOL) return bad(err, field, "true or false", v);
    *out = rp_json_bool(v, 0);
    return 0;
}

/* Options this server does not implement: refused when set to anything but their neutral value. */
static int refuse_unsupported(const rp_json *j, rp_serve_error *err) {
    static const char *const zero_num[] = { "frequency_penalty", "presence_penalty" };
    for (size_t i = 0; i < sizeof zero_num / sizeof *zero_num; i++) {
        const rp_json *v = rp_json_get(j, zero_num[i]);
        if (!absent(v) && !(rp_json_typeof(v) == RP_JSON_NUMBER && rp_json_num(v, 1) == 0))
            return rp_serve_error_set(err, 400, "invalid_request_error", zero_num[i], "'%s' is not supported by repro serve (only 0)", zero_num[i]);
    }
    const rp_json *v = rp_json_get(j, "n");
    if (!absent(v) && !(rp_json_typeof(v) == RP_JSON_NUMBER && rp_json_num(v, 0) == 1)) {
        char d[96];
        return rp_serve_error_set(err, 400, "invalid_request_error", "n", "'n' is %s: repro serve returns one choice per prompt "
                                  "(only n = 1 is supported; send the request again, with another seed, for more)", describe(v, d, sizeof d));
    }
    v = rp_json_get(j, "best_of");
    if (!absent(v) && !(rp_json_typeof(v) == RP_JSON_NUMBER && rp_json_num(v, 0) == 1))
        return rp_serve_error_set(err, 400, "invalid_request_error", "best_of", "'best_of' is not supported by repro serve (only 1)");
    v = rp_json_get(j, "logit_bias");
    if (!absent(v) && !(rp_json_typeof(v) == RP_JSON_OBJECT && rp_json_len(v) == 0))
        return rp_serve_error_set(err, 400, "invalid_request_error", "logit_bias", "'logit_bias' is not supported by repro serve");
    static const char *const never[] = { "suffix", "tools", "functions", "tool_choice", "function_call", "response_format" };
    for (size_t i = 0; i < sizeof never / sizeof *never; i++)
        if (!absent(rp_json_get(j, never[i])))
            return rp_serve_error_set(err, 400, "invalid_request_error", never[i], "'%s' is not supported by repro serve", never[i]);
    return 0;
}

/* The fields shared by both endpoints. */
static int parse_common(const rp_json *j, rp_serve_request *r, rp_serve_error *err) {
    if (refuse_unsupported(j, err)) return -1;
    const rp_json *m = rp_json_get(j, "model");
    if (!absent(m) && rp_json_typeof(m) != RP_JSON_STRING) return bad(err, "model", "a string", m);
    if (get_bool(j, "stream", &r->stream, err)) return -1;
    const rp_json *so = rp_json_get(j, "stream_options");
    if (!absent(so)) {
        if (rp_json_typeof(so) != RP_JSON_OBJECT) return bad(err, "stream_options", "an object", so);
        const rp_json *iu = rp_json_get(so, "include_usage");
        if (!absent(iu) && rp_json_typeof(iu) != RP_JSON_BOOL) return bad(err, "stream_options.include_usage", "true or false", iu);
        r->include_usage = rp_json_bool(iu, 0);
    }
    if (get_num(j, "temperature", 0, 2, 0, "a number in [0, 2]", &r->temperature, err)) return -1;
    if (get_num(j, "top_p", 0, 1, 0, "a number in [0, 1]", &r->top_p, err)) return -1;
    double seed = 0;
    if (get_num(j, "seed", -9223372036854775808.0, 18446744073709551615.0, 1, "an integer", &seed, err)) return -1;
    r->seed = seed < 0 ? (uint64_t)(int64_t)seed : (uint64_t)seed;
    const char *mt_field = r->chat && !absent(rp_json_get(j, "max_completion_tokens")) ? "max_completion_tokens" : "max_tokens";
    double mt = -1;
    if (get_num(j, mt_field, r->chat ? 1 : 0, 2147483647.0, 1, r->chat ? "an integer >= 1" : "an integer >= 0", &mt, err)) return -1;
    r->max_tokens = (int64_t)mt;
    const rp_json *st = rp_json_get(j, "stop");
    if (rp_json_typeof(st) == RP_JSON_STRING) {
        if (rp_json_str(st, "")[0]) r->stop[r->n_stop++] = rp_json_str(st, "");
    } else if (rp_json_typeof(st) == RP_JSON_ARRAY) {
        if (rp_json_len(st) > RP_SERVE_MAX_STOP) return bad(err, "stop", "a string or a list of at most 4 strings", st);
        for (size_t i = 0; i < rp_json_len(st); i++) {
            const rp_json *s = rp_json_at(st, i);
            if (rp_json_typeof(s) != RP_JSON_STRING) return bad(err, "stop", "a string or a list of at most 4 strings", s);
            if (rp_json_str(s, "")[0]) r->stop[r->n_stop++] = rp_json_str(s, "");
        }
    } else if (!absent(st)) {
        return bad(err, "stop", "a string or a list of at most 4 strings", st);
    }
    return 0;
}

/* Message content: a string, or a list of {"type": "text", "text": ...} parts joined. */
static int message_content(const rp_json *c, size_t i, rp_buf *out, rp_serve_error *err) {
    char field[64];
    snprintf(field, sizeof field, "messages[%zu].content", i);
    if (rp_json_typeof(c) == RP_JSON_STRING) { size_t n; const char *s = rp_json_strn(c, &n); return rp_buf_append(out, s, n) == RP_OK ? 0 : -2; }
    if (rp_json_typeof(c) != RP_JSON_ARRAY) return bad(err, field, "a string or a list of text parts", c);
    for (size_t k = 0; k < rp_json_len(c); k++) {
        const rp_json *p = rp_json_at(c, k);
        const rp_json *t = rp_json_get(p, "text");
        if (strcmp(rp_json_str(rp_json_get(p, "type"), ""), "text") || rp_json_typeof(t) != RP_JSON_STRING)
            return bad(err, field, "a string or a list of {\"type\": \"text\", \"text\": ...} parts (only text is supported)", p);
        size_t n;
        const char *s = rp_json_strn(t, &n);
        if (rp_buf_append(out, s, n) != RP_OK) return -2;
    }
    return 0;
}

/* Chat: messages -> the model's chat template -> one prompt. */
static int parse_chat(const rp_tokenizer *tok, const rp_json *j, rp_serve_request *r, rp_serve_error *err) {
    const rp_json *msgs = rp_json_get(j, "messages");
    size_t n = rp_json_len(msgs);
    if (rp_json_typeof(msgs) != RP_JSON_ARRAY || n == 0 || n > RP_SERVE_MAX_MESSAGES)
        return bad(err, "messages", "a non-empty list of at most 1024 messages", msgs);
    int lp = 0;
    double top = 0;
    if (get_bool(j, "logprobs", &lp, err)) return -1;
    if (get_num(j, "top_logprobs", 0, 20, 1, "an integer in [0, 20]", &top, err)) return -1;
    if (!absent(rp_json_get(j, "top_logprobs")) && !lp)
        return rp_serve_error_set(err, 400, "invalid_request_error", "top_logprobs", "'top_logprobs' needs 'logprobs': true");
    r->logprobs = lp ? (int)top : -1;
    rp_chat_msg *cm = calloc(n, sizeof *cm);
    rp_buf *content = calloc(n, sizeof *content);
    int rc = cm && content ? 0 : -2;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const rp_json *m = rp_json_at(msgs, i);
        char field[64];
        snprintf(field, sizeof field, "messages[%zu]", i);
        if (rp_json_typeof(m) != RP_JSON_OBJECT) { rc = bad(err, field, "an object with 'role' and 'content'", m); break; }
        const rp_json *role = rp_json_get(m, "role");
        const char *rs = rp_json_str(role, "");
        snprintf(field, sizeof field, "messages[%zu].role", i);
        if (!strcmp(rs, "developer")) rs = "system";      /* OpenAI's newer name for the system role */
        if (rp_json_typeof(role) != RP_JSON_STRING || (strcmp(rs, "system") && strcmp(rs, "user") && strcmp(rs, "assistant"))) {
            rc = bad(err, field, "one of \"system\", \"user\", \"assistant\" (or \"developer\")", role);
            break;
        }
        cm[i].role = rs;
        rc = message_content(rp_json_get(m, "content"), i, &content[i], err);
        cm[i].content = content[i].data ? content[i].data : "";
    }
    if (rc == 0) {
        r->n_prompts = 1;
        r->prompts = calloc(1, sizeof *r->prompts);
        r->prompt_text = calloc(1, sizeof *r->prompt_text);
        if (!r->prompts || !r->prompt_text) rc = -2;
    }
    if (rc == 0 && (rp_tokenizer_chat_format(tok, cm, (int)n, 1, &r->prompt_text[0]) != RP_OK ||
                    rp_tokenizer_encode(tok, r->prompt_text[0].data, r->prompt_text[0].len, RP_TOK_PARSE_SPECIAL | RP_TOK_NO_BOS,
                                        &r->prompts[0]) != RP_OK))
        rc = rp_serve_error_set(err, 400, "invalid_request_error", "messages", "%s", rp_errmsg());
    for (size_t i = 0; content && i < n; i++) rp_buf_free(&content[i]);
    free(content);
    free(cm);
    if (rc == -2) return rp_serve_error_set(err, 500, "server_error", NULL, "out of memory");
    return rc;
}

/* A list of token ids (prompt element at index k, or the whole prompt when k < 0) into out. */
static int token_list(const rp_tokenizer *tok, const rp_json *a, long k, rp_tokens *out, rp_buf *text, rp_serve_error *err) {
    char field[48];
    if (k < 0) snprintf(field, sizeof field, "prompt");
    else snprintf(field, sizeof field, "prompt[%ld]", k);
    int V = rp_tokenizer_n_vocab(tok);
    for (size_t i = 0; i < rp_json_len(a); i++) {
        const rp_json *v = rp_json_at(a, i);
        double x = rp_json_num(v, NAN);
        if (rp_json_typeof(v) != RP_JSON_NUMBER || x != floor(x) || x < 0 || x >= V) {
            char f[96], want[64];
            snprintf(f, sizeof f, "%s[%zu]", field, i);
            snprintf(want, sizeof want, "a token id in [0, %d)", V);
            return bad(err, f, want, v);
        }
        if (rp_tokens_push(out, (int32_t)x) != RP_OK) return rp_serve_error_set(err, 500, "server_error", NULL, "out of memory");
    }
    if (rp_tokenizer_decode(tok, out->ids, out->n, 0, text) != RP_OK) return rp_serve_error_set(err, 400, "invalid_request_error", field, "%s", rp_errmsg());
    return 0;
}

/* Completions: prompt as a string, a list of strings, a list of ids or a list of id lists. */
static int parse_completions(const rp_tokenizer *tok, const rp_json *j, rp_serve_request *r, rp_serve_error *err) {
    const rp_json *p = rp_json_get(j, "prompt");
    const char *want = "a string, a list of strings, a list of token ids or a list of token-id lists";
    double lp = -1;
    if (get_num(j, "logprobs", 0, 20, 1, "an integer in [0, 20]", &lp, err)) return -1;
    r->logprobs = (int)lp;
    if (get_bool(j, "echo", &r->echo, err)) return -1;
    rp_json_type t = rp_json_typeof(p);
    if (t != RP_JSON_STRING && t != RP_JSON_ARRAY) return bad(err, "prompt", want, p);
    size_t n = t == RP_JSON_STRING ? 1 : rp_json_len(p);
    int ids_flat = t == RP_JSON_ARRAY && n > 0 && rp_json_typeof(rp_json_at(p, 0)) == RP_JSON_NUMBER;
    if (ids_flat) n = 1;
    if (n == 0 || n > RP_SERVE_MAX_PROMPTS) return bad(err, "prompt", "a non-empty list of at most 256 prompts", p);
    r->prompts = calloc(n, sizeof *r->prompts);
    r->prompt_text = calloc(n, sizeof *r->prompt_text);
    if (!r->prompts || !r->prompt_text) return rp_serve_error_set(err, 500, "server_error", NULL, "out of memory");
    r->n_prompts = n;
    if (ids_flat) return token_list(tok, p, -1, &r->prompts[0], &r->prompt_text[0], err);
    for (size_t i = 0; i < n; i++) {
        const rp_json *e = t == RP_JSON_STRING ? p : rp_json_at(p, i);
        char field[48];
        snprintf(field, sizeof field, "prompt[%zu]", i);
        if (rp_json_typeof(e) == RP_JSON_ARRAY) {
            if (token_list(tok, e, (long)i, &r->prompts[i], &r->prompt_text[i], err)) return -1;
            continue;
        }
        if (rp_json_typeof(e) != RP_JSON_STRING) return bad(err, t == RP_JSON_STRING ? "prompt" : field, want, e);
        size_t len;
        const char *s = rp_json_strn(e, &len);
        if (rp_buf_append(&r->prompt_text[i], s, len) != RP_OK ||
            rp_tokenizer_encode(tok, s, len, RP_TOK_DEFAULT, &r->prompts[i]) != RP_OK)
            return rp_serve_error_set(err, 400, "invalid_request_error", field, "%s", rp_errmsg());
    }
    return 0;
}

/* Parse and tokenize a request body. */
int rp_serve_request_parse(const rp_tokenizer *tok, int chat, const char *body, size_t len, rp_serve_request *r,
                           rp_serve_error *err) {
    memset(r, 0, sizeof *r);
    r->chat = chat;
    r->max_tokens = -1;
    r->top_p = 1;
    r->logprobs = -1;
    if (rp_json_parse(body, len, &r->json) != RP_OK)
        return rp_serve_error_set(err, 400, "invalid_request_error", NULL, "the request body is not JSON: %s", rp_errmsg());
    int rc;
    if (rp_json_typeof(r->json) != RP_JSON_OBJECT) {
        char d[96];
        rc = rp_serve_error_set(err, 400, "invalid_request_error", NULL, "the request body must be a JSON object, got %s", describe(r->json, d, sizeof d));
    } else {
        rc = parse_common(r->json, r, err);
        if (rc == 0) rc = chat ? parse_chat(tok, r->json, r, err) : parse_completions(tok, r->json, r, err);
    }
    if (rc == 0 && r->stream && (r->logprobs >= 0 || r->echo))
        rc = rp_serve_error_set(err, 400, "invalid_request_error", r->echo ? "echo" : "logprobs",
                                "'%s' with 'stream': true is not supported by repro serve (ask without streaming)", r->echo ? "echo" : "logprobs");
    if (rc == 0 && r->include_usage && !r->stream)
        rc = rp_serve_error_set(err, 400, "invalid_request_error", "stream_options", "'stream_options' is only allowed with 'stream': true");
    if (rc) rp_serve_request_free(r);
    return rc;
}

/* Free a request. */
void rp_serve_request_free(rp_serve_request *r) {
    for (size_t i = 0; i < r->n_prompts; i++) {
        if (r->prompts) rp_tokens_free(&r->prompts[i]);
        if (r->prompt_text) rp_buf_free(&r->prompt_text[i]);
    }
    free(r->prompts);
    free(r->prompt_text);
    rp_json_free(r->json);
    memset(r, 0, sizeof *r);
}
