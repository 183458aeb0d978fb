/* serve_request.h: an OpenAI request body (POST /v1/chat/completions or /v1/completions) parsed, checked and
 * tokenized, without the model's session: runs on the connection's thread, outside the generation lock.
 * Invariants: every field the server reads is type- and range-checked; a bad one gives a 400 whose message
 * names the field, the value received and what is allowed; unsupported options that would change the answer
 * (n > 1, penalties, logit_bias, best_of, suffix, tools) are refused by name instead of being ignored;
 * fields this server does not know are ignored, as OpenAI-compatible servers commonly do. */
#ifndef RP_SERVE_REQUEST_H
#define RP_SERVE_REQUEST_H
#include <stddef.h>
#include <stdint.h>
#include "model/tokenizer.h"
#include "util/json.h"
#include "util/buf.h"

enum { RP_SERVE_MAX_PROMPTS = 256, RP_SERVE_MAX_STOP = 4, RP_SERVE_MAX_MESSAGES = 1024 };

/* An OpenAI-style error: HTTP status, error type, the offending parameter ("" when none), the message. */
typedef struct rp_serve_error {
    int status;
    const char *type;                   /* "invalid_request_error", "not_found_error", "server_error", ... */
    char param[64];
    char message[1024];
} rp_serve_error;

typedef struct rp_serve_request {
    int chat;                           /* 1: chat completions (one prompt from messages); 0: completions */
    int stream, include_usage;          /* stream: true; stream_options.include_usage */
    int64_t max_tokens;                 /* -1 when absent (the server's default, capped to the context) */
    double temperature, top_p;
    uint64_t seed;
    const char *stop[RP_SERVE_MAX_STOP];   /* point into json */
    int n_stop;
    int logprobs;                       /* -1: none; else top-N alternatives (chat: top_logprobs) */
    int echo;                           /* completions: return the prompt's text and token scores too */
    size_t n_prompts;
    rp_tokens *prompts;                 /* [n_prompts] token ids */
    rp_buf *prompt_text;                /* [n_prompts] the prompt text (decoded when given as ids) */
    rp_json *json;                      /* the parsed body (owns the strings above) */
} rp_serve_request;

/* Parse body (chat: the chat-completions schema; else completions) and tokenize its prompts with tok.
 * Returns 0, or -1 with err filled (status 400, or 500 when memory runs out); r is then freed already. */
int rp_serve_request_parse(const rp_tokenizer *tok, int chat, const char *body, size_t len, rp_serve_request *r,
                           rp_serve_error *err);
/* Release a parsed request. */
void rp_serve_request_free(rp_serve_request *r);
/* Fill err (printf-style message); returns -1 so callers can `return rp_serve_error_set(...)`. */
int rp_serve_error_set(rp_serve_error *err, int status, const char *type, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Append the OpenAI error object {"error":{"message","type","param","code"}} for err to out. */
void rp_serve_error_json(const rp_serve_error *err, rp_buf *out);

#endif
