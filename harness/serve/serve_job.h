/* serve_job.h: the request -> generation interface of `repro serve`. A job is one tokenized prompt and what
 * to do with it (generate up to max_tokens, score the prompt's own tokens, report top-N log-probabilities);
 * the HTTP layer parses, validates and tokenizes into jobs without touching the model, and the engine runs
 * them. Today the engine runs one job at a time on one session (a mutex held for the job's forward passes
 * only); a batched decoder replaces rp_serve_engine_run with a queue that decodes several jobs per forward,
 * and the HTTP layer stays as it is.
 * Invariants: a job handed to rp_serve_engine_run has 1 <= n_prompt, ids in [0, n_vocab), and
 * n_prompt + max_tokens <= n_ctx (rp_serve_engine_check says so, with the real limits in the message);
 * gen.on_text (streaming) is called on the thread that runs the job; log-probabilities are those of the
 * model's distribution (log-softmax of the logits), whatever the sampling temperature. */
#ifndef RP_SERVE_JOB_H
#define RP_SERVE_JOB_H
#include <stddef.h>
#include <stdint.h>
#include "nn/generate.h"
#include "nn/llama.h"
#include "util/err.h"

enum { RP_SERVE_TOP_MAX = 20 };   /* most alternatives per token (OpenAI allows 5 on completions, 20 on chat) */

typedef struct rp_serve_tokenlp {
    int32_t id;
    float lp;                           /* log p(id | text before it); NAN for the text's first token */
    int n_top;                          /* alternatives below, most likely first (0 for the first token) */
    int32_t top_id[RP_SERVE_TOP_MAX];
    float top_lp[RP_SERVE_TOP_MAX];
} rp_serve_tokenlp;

typedef struct rp_serve_job {
    /* in */
    const int32_t *prompt;              /* borrowed; valid while the job runs */
    size_t n_prompt;
    int max_tokens;                     /* >= 0; 0: no generation (echo-only scoring) */
    rp_generate_opts gen;               /* sampling, stop strings, streaming callback (max_tokens is set from above) */
    int logprobs;                       /* < 0: none; 0 .. RP_SERVE_TOP_MAX: the sampled token's plus top-N */
    int echo;                           /* also score the prompt's own tokens (lp[0 .. n_prompt)) */
    /* out */
    rp_generate_result out;             /* generated tokens and text (empty when max_tokens == 0) */
    const char *finish;                 /* "stop" or "length" */
    size_t n_completion;                /* generated tokens, a closing end-of-generation token included (usage) */
    rp_serve_tokenlp *lp;               /* echo: prompt tokens then generated ones (the closing end-of-generation
                                         * token included, so max_tokens 1 always scores one token); else generated only */
    size_t n_lp;
} rp_serve_job;

typedef struct rp_serve_engine rp_serve_engine;

/* An engine over model m (borrowed) with a context of n_ctx positions (<= 0: min(model's, 2048)). */
rp_status rp_serve_engine_new(rp_model *m, int n_ctx, rp_serve_engine **out);
/* Free the engine (not the model). NULL is fine. */
void rp_serve_engine_free(rp_serve_engine *e);
/* The context length jobs must fit. */
int rp_serve_engine_n_ctx(const rp_serve_engine *e);
/* Check a job against the engine's limits without running it: RP_ERR_RANGE naming the limit when the prompt
 * plus max_tokens do not fit the context or an id is not in the vocabulary; *max_tokens_room receives the
 * most max_tokens this prompt allows (may be NULL). */
rp_status rp_serve_engine_check(const rp_serve_engine *e, const rp_serve_job *j, int *max_tokens_room);
/* Run one job to completion (blocking; thread-safe): fills j->out, j->finish and j->lp. */
rp_status rp_serve_engine_run(rp_serve_engine *e, rp_serve_job *j);
/* Run n jobs of one request: when there are several and none echoes, asks for logprobs or streams, they are
 * decoded together (rp_generate_batch: up to 16 per forward; each result equals its rp_serve_engine_run),
 * else one after another. */
rp_status rp_serve_engine_run_many(rp_serve_engine *e, rp_serve_job *jobs, size_t n);
/* Release a job's results (not its borrowed prompt). */
void rp_serve_job_free(rp_serve_job *j);

#endif
