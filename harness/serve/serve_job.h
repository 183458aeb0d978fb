/* serve_job.h: the request -> generation interface of `repro serve`. A job is one tokenized prompt and what
 * to do with it (generate up to max_tokens, score the prompt's own tokens, report top-N log-probabilities);
 * the HTTP layer parses, validates and tokenizes into jobs without touching the model, then submits them to
 * the engine and waits (or takes their streamed text as it comes).
 * The engine is one scheduler thread that owns the model's decoding: it admits queued jobs into free slots
 * (up to n_slots sequences, each with a session and cache of its own, allocated when the job starts and sized
 * to its prompt + max_tokens, freed when it ends), prefills new ones in chunks (at most prefill_chunk prompt
 * tokens per scheduler step, the prefilling jobs taking turns, so the decoding slots keep getting a token every step while a
 * long prompt is ingested; echo scoring is that prefill, with every position's logits), steps all decoding
 * sequences together with one rp_session_step per token (continuous batching: a finished job's slot takes the
 * next queued job between steps), and hands each job its tokens, log-probabilities and streamed text. A
 * prompt's chunk boundaries depend only on the prompt and prefill_chunk, never on what else runs, so a job's
 * result is the same alone or in company. Each job has its own sampler (seeded from its
 * request), so a seeded request's output does not depend on what else is in the batch (up to the f32
 * rounding of a batched step, see rp_session_step).
 * Invariants: the scheduler thread is the only thread that runs the model: it builds the lazy decode layout
 * (first decode step) and it alone uses the slot sessions, so no forward pass races another; other threads
 * read only n_ctx and the vocabulary size (fixed at creation) and the tokenizer (read-only).
 * A submitted job is the engine's until rp_serve_engine_wait reports it done: the submitter keeps it (and
 * its borrowed prompt) alive and untouched until then, and frees it after. At most n_queue jobs wait beyond
 * the active ones (a request whose jobs do not fit is refused whole, unless nothing waits at all, so a
 * request of many prompts can run on an idle server); after rp_serve_engine_close nothing is admitted and
 * every unfinished job ends with RP_SERVE_CLOSED.
 * A job given to the engine has 1 <= n_prompt, ids in [0, n_vocab), and n_prompt + max_tokens <= n_ctx
 * (rp_serve_engine_check says so, with the real limits in the message); log-probabilities are those of the
 * model's distribution (log-softmax of the logits), whatever the sampling temperature. */
#ifndef RP_SERVE_JOB_H
#define RP_SERVE_JOB_H
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include "nn/generate.h"
#include "nn/llama.h"
#include "util/buf.h"
#include "util/err.h"

enum { RP_SERVE_TOP_MAX = 20 };   /* most alternatives per token (OpenAI allows 5 on completions, 20 on chat) */

typedef struct rp_serve_tokenlp {
    int32_t id;
    float lp;                           /* log p(id | text before it); NAN for the text's first token */
    int n_top;                          /* alternatives below, most likely first (0 for the first token) */
    int32_t top_id[RP_SERVE_TOP_MAX];
    float top_lp[RP_SERVE_TOP_MAX];
} rp_serve_tokenlp;

/* How a submission or a job ended, beyond rp_status: refused because the queue is full, or the server closing. */
typedef enum rp_serve_admit { RP_SERVE_ADMITTED = 0, RP_SERVE_FULL, RP_SERVE_CLOSED } rp_serve_admit;

typedef struct rp_serve_job {
    /* in */
    const int32_t *prompt;              /* borrowed; valid until the job is done */
    size_t n_prompt;
    int max_tokens;                     /* >= 0; 0: no generation (echo-only scoring) */
    rp_generate_opts gen;               /* sampling, stop strings (max_tokens and on_text are set by the engine) */
    int logprobs;                       /* < 0: none; 0 .. RP_SERVE_TOP_MAX: the sampled token's plus top-N */
    int echo;                           /* also score the prompt's own tokens (lp[0 .. n_prompt)) */
    int stream;                         /* hand the text out as it becomes final (rp_serve_engine_wait with text) */
    /* out (read after the job is done) */
    rp_status st;                       /* RP_OK, or the job's error (message in error) */
    rp_serve_admit closed;              /* RP_SERVE_CLOSED when the server stopped before the job finished */
    char error[512];
    rp_generate_result out;             /* generated tokens and text (empty when max_tokens == 0) */
    const char *finish;                 /* "stop" or "length" */
    size_t n_completion;                /* generated tokens, a closing end-of-generation token included (usage) */
    rp_serve_tokenlp *lp;               /* echo: prompt tokens then generated ones (the closing end-of-generation
                                         * token included, so max_tokens 1 always scores one token); else generated only */
    size_t n_lp;
    /* the engine's (under its lock) */
    int state;                          /* 0 new, 1 queued, 2 active, 3 done */
    int cancel;                         /* the client went away: stop at the next token */
    rp_buf pending;                     /* streamed text not yet taken by the waiter */
    pthread_cond_t cv;                  /* signalled on new text and when done */
    struct rp_serve_job *next;          /* queue link */
} rp_serve_job;

typedef struct rp_serve_engine rp_serve_engine;

/* Engine limits: context per slot, sequences decoded together, jobs waiting beyond those. */
typedef struct rp_serve_engine_opts {
    int n_ctx;                          /* <= 0: min(model's, 2048) */
    int n_slots;                        /* <= 0: 8 (at most 16: rp_session_step's rows) */
    int n_queue;                        /* 0: 64; < 0: none wait (a job is refused when every slot is busy) */
    int prefill_chunk;                  /* prompt tokens run per scheduler step beside the decoding rows (0: 128);
                                         * < 0: each prompt whole in one step (the other slots wait for it) */
} rp_serve_engine_opts;

/* Engine counters for /health: now and since the start. */
typedef struct rp_serve_engine_stats {
    int active, waiting, n_slots, n_queue;
    unsigned long done, refused, cancelled;
    unsigned long steps, step_rows;     /* batched forwards and the rows they ran (rows / steps: mean batch) */
    int prefilling;                     /* active jobs whose prompt is still being run (now) */
    unsigned long prefill_tokens;       /* prompt tokens run (echo scoring included) since the start */
    double kv_mb;                       /* KV cache memory the slot sessions hold now (each sized to its job) */
} rp_serve_engine_stats;

/* An engine over model m (borrowed; the engine's thread is then the only one to run it); starts the scheduler. */
rp_status rp_serve_engine_new(rp_model *m, const rp_serve_engine_opts *o, rp_serve_engine **out);
/* Stop the scheduler (unfinished jobs end RP_SERVE_CLOSED), free the engine (not the model). NULL is fine. */
void rp_serve_engine_free(rp_serve_engine *e);
/* The context length jobs must fit. */
int rp_serve_engine_n_ctx(const rp_serve_engine *e);
/* The limits in force (defaults filled in). */
rp_serve_engine_opts rp_serve_engine_limits(const rp_serve_engine *e);
/* Counters now. */
rp_serve_engine_stats rp_serve_engine_stats_now(rp_serve_engine *e);
/* Check a job against the engine's limits without running it: RP_ERR_RANGE naming the limit when the prompt
 * plus max_tokens do not fit the context or an id is not in the vocabulary; *max_tokens_room receives the
 * most max_tokens this prompt allows (may be NULL). */
rp_status rp_serve_engine_check(const rp_serve_engine *e, const rp_serve_job *j, int *max_tokens_room);
/* Queue n checked jobs, all or none: RP_SERVE_FULL when the queue has no room for them, RP_SERVE_CLOSED
 * after rp_serve_engine_close. Admitted jobs must be waited for (rp_serve_engine_wait) before they are freed. */
rp_serve_admit rp_serve_engine_submit(rp_serve_engine *e, rp_serve_job *jobs, size_t n);
/* Wait for job j. With text == NULL: until it is done (returns 0). With text: until it has new streamed text
 * (appended to text; returns 1) or is done (returns 0, text holding what was left); a timeout_s > 0 also
 * returns 1 after that long with nothing new, so the waiter can check its client. */
int rp_serve_engine_wait(rp_serve_engine *e, rp_serve_job *j, rp_buf *text, double timeout_s);
/* Ask the engine to drop jobs whose client went away (queued: at once; active: before their next token). */
void rp_serve_engine_cancel(rp_serve_engine *e, rp_serve_job *jobs, size_t n);
/* Refuse new jobs from now on and end every queued and active one with RP_SERVE_CLOSED (waiters wake). */
void rp_serve_engine_close(rp_serve_engine *e);
/* Submit n jobs and wait for all of them (the non-streaming path and in-process callers); RP_OK when
 * admitted and run (each job's own st says how it went), else the refusal in *admit. */
rp_serve_admit rp_serve_engine_run_many(rp_serve_engine *e, rp_serve_job *jobs, size_t n);
/* Release a job's results and its engine state (not its borrowed prompt). */
void rp_serve_job_free(rp_serve_job *j);

#endif
