/* serve.h: a local model behind an OpenAI-compatible HTTP API (POST /v1/chat/completions, POST
 * /v1/completions, GET /v1/models) on the project's small HTTP server, so any client of that API (the SAFE
 * plugin, the openai Python package, lm-evaluation-harness's local-completions, curl) can use a model
 * running in this process. Requests are parsed, checked and tokenized on their connection's thread; the
 * engine's scheduler thread decodes the jobs of concurrent requests together (serve_job.h), with a bounded
 * queue: a request that does not fit is answered 429 (503 while stopping), with Retry-After.
 * Invariant: a malformed request gets a 4xx with an OpenAI-shaped error object naming the field, never a
 * crash; every limit (body size, context length, max_tokens) is stated with its value when exceeded. */
#ifndef RP_SERVE_H
#define RP_SERVE_H
#include "util/err.h"

#include <stddef.h>
#include "nn/generate.h"
#include "nn/llama.h"
#include "util/buf.h"

typedef struct rp_server rp_server;

typedef struct rp_serve_opts {
    const char *host;        /* NULL: 127.0.0.1 */
    int port;                /* 0: an ephemeral port */
    int n_ctx;               /* session context (<= 0: min(model's, 2048)) */
    int default_max_tokens;  /* when a request gives none (<= 0: 256) */
    const char *model_id;    /* the id reported by /v1/models (NULL: the file's base name) */
    size_t max_body;         /* largest request body in bytes (0: 4 MiB) */
    int max_conns;           /* connections at once (<= 0: 64; idle ones make room for new clients) */
    double idle_timeout_s;   /* keep-alive connections idle this long are closed (<= 0: 30) */
    rp_backend *backend;     /* the model's backend (NULL: the default, cpu); repro serve --device */
    int n_slots;             /* sequences decoded together (<= 0: 8, at most 16) */
    int n_queue;             /* jobs waiting beyond those (0: 64; < 0: none wait) */
    int prefill_chunk;       /* prompt tokens run per decoding step (0: 128; < 0: each prompt whole at once) */
} rp_serve_opts;

/* Load the model at path and start serving in background threads. */
rp_status rp_serve_start(const char *model_path, const rp_serve_opts *opts, rp_server **out);
/* The bound port. */
int rp_serve_port(const rp_server *s);
/* The limits in force (defaults filled in; n_ctx the session's context length). */
rp_serve_opts rp_serve_limits(const rp_server *s);
/* Requests answered so far (all paths). */
unsigned long rp_serve_requests(rp_server *s);
/* Stop serving, wait for handlers, free the model. NULL is fine. */
void rp_serve_stop(rp_server *s);

#endif
