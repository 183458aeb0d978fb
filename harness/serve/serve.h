/* serve.h: a local model behind an OpenAI-compatible HTTP API (POST /v1/chat/completions, GET /v1/models)
 * on the project's small HTTP server, so any client of that API (the SAFE plugin, curl, other tools)
 * can use a model running in this process. Requests are answered one at a time on one session (the model
 * and its KV cache are shared; the CPU is the bottleneck anyway); other requests wait their turn.
 * Invariant: a malformed request gets a 4xx with an OpenAI-shaped error object, never a crash. */
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
} rp_serve_opts;

/* Load the model at path and start serving in background threads. */
rp_status rp_serve_start(const char *model_path, const rp_serve_opts *opts, rp_server **out);
/* The bound port. */
int rp_serve_port(const rp_server *s);
/* Requests answered so far (all paths). */
unsigned long rp_serve_requests(rp_server *s);
/* Stop serving, wait for handlers, free the model. NULL is fine. */
void rp_serve_stop(rp_server *s);

#endif
