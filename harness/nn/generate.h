/* generate.h: text generation with a session: feed a prompt, sample up to max_tokens, stop at an
 * end-of-generation token or a stop string, stream the text through a callback, report tokens/s.
 * Invariants: the text handed to on_text never contains (a prefix of) a stop string that later
 * completes: bytes that might start one are held back until they cannot. */
#ifndef RP_NN_GENERATE_H
#define RP_NN_GENERATE_H
#include <stddef.h>
#include <stdint.h>
#include "model/tokenizer.h"
#include "nn/llama.h"
#include "util/buf.h"

typedef struct rp_generate_opts {
    float temperature;            /* <= 0: greedy */
    float top_p;                  /* (0, 1): nucleus sampling; else off */
    uint64_t seed;
    int max_tokens;               /* tokens to generate (<= 0: until the context is full) */
    const char *const *stop;      /* stop strings (may be NULL) */
    int n_stop;
    int ignore_eog;               /* keep going past end-of-generation tokens */
    /* Streaming: called with each piece of text as it becomes final; a non-zero return stops. May be NULL. */
    int (*on_text)(void *arg, const char *text, size_t len);
    void *arg;
} rp_generate_opts;

typedef struct rp_generate_result {
    rp_tokens tokens;             /* generated ids (the EOG token that stopped it is not included) */
    rp_buf text;                  /* generated text, cut before a stop string */
    size_t n_prompt;
    double prompt_s, gen_s;       /* seconds spent on the prompt and on generated tokens */
    double tokens_per_s;          /* generated tokens / gen_s */
    const char *stop_reason;      /* "eog", "stop", "max_tokens", "context", "callback" */
    int32_t eog_token;            /* the end-of-generation token that stopped it (stop_reason "eog"), else -1 */
} rp_generate_result;

/* Append prompt[0..n_prompt) to the session (n_prompt may be 0 when the session already holds a prompt
 * ending where generation starts: then the last cached position is re-run for its logits) and generate. */
rp_status rp_generate(rp_session *s, const int32_t *prompt, size_t n_prompt, const rp_generate_opts *o,
                      rp_generate_result *r);
/* Batched generation: out[i] receives the generation after prompts[i] with opts[i] (as rp_generate on a
 * fresh session would give it), for i in [0, n). Up to n_slots (<= 0: 8) sequences are decoded together,
 * one forward per token for all of them (rp_session_step); when one finishes its slot takes the next prompt
 * (continuous batching). Each slot's cache holds n_ctx positions (<= 0: min(context length, 2048)). On an
 * error the results produced so far stay in out (free every out[i] either way). */
rp_status rp_generate_batch(rp_model *m, const rp_tokens *prompts, int n, const rp_generate_opts *opts, int n_slots,
                            int n_ctx, rp_generate_result *out);
/* One sequence generating step by step under a caller's scheduler (`repro serve`'s continuous batch, where
 * sequences join and leave between steps): start feeds the prompt on s (as rp_generate does) and leaves the
 * first logits; next samples from the current logits (rp_generate_seq_logits, [V], unchanged by sampling)
 * and returns 0 with the token to run next, or 1 when the sequence is finished (result's stop_reason set);
 * the caller runs the tokens of all its sequences in one rp_session_step and hands each its row with
 * set_logits; end flushes held-back streamed text, times the result and frees the sequence (r stays). The
 * calls are those rp_generate makes, so a sequence's tokens equal rp_generate's whenever the step's rows
 * equal rp_session_forward's. */
typedef struct rp_generate_seq rp_generate_seq;
/* Start a sequence on session s after prompt[0..n_prompt) (r is reset and filled as it goes). */
rp_status rp_generate_seq_start(rp_session *s, const int32_t *prompt, size_t n_prompt, const rp_generate_opts *o,
                                rp_generate_result *r, rp_generate_seq **out);
/* Sample the next token: 0 with *next to run through the model, 1 when finished (*st: an error, if any). */
int rp_generate_seq_next(rp_generate_seq *q, int32_t *next, rp_status *st);
/* The logits the next token is sampled from ([V], the session's host buffer). */
const float *rp_generate_seq_logits(const rp_generate_seq *q);
/* Copy the row of next-token logits computed for this sequence's token. */
void rp_generate_seq_set_logits(rp_generate_seq *q, const float *row);
/* Finish the result (flush streamed text, timing) and free the sequence. NULL is fine. */
void rp_generate_seq_end(rp_generate_seq *q, rp_status st);
/* Release a result's buffers. */
void rp_generate_result_free(rp_generate_result *r);

/* One chat completion on a session (reset first): format msgs with the model's chat template, generate with
 * o (max_tokens is capped to the room left in the context). text receives the answer (replacing it);
 * *n_prompt / *n_gen the token counts; *finish "stop" or "length". A prompt that does not fit the context is
 * RP_ERR_RANGE. Used by the server and by in-process clients (the SAFE plugin's local backend). */
rp_status rp_chat_complete(rp_session *s, const rp_chat_msg *msgs, int n, const rp_generate_opts *o, rp_buf *text,
                           size_t *n_prompt, size_t *n_gen, const char **finish);

/* One chat completion of a batch (rp_chat_complete_many): in msgs / n_msgs / o / text (where the answer goes);
 * out n_prompt, n_gen, finish, and st (RP_OK, or this job's own error, with its message in error). */
typedef struct rp_chat_job {
    const rp_chat_msg *msgs;
    int n_msgs;
    rp_generate_opts o;
    rp_buf *text;
    size_t n_prompt, n_gen;
    const char *finish;
    rp_status st;
    char error[256];
} rp_chat_job;
/* rp_chat_complete for n jobs at once with a context of n_ctx each, up to n_slots decoded together
 * (continuous batching); each job's answer equals what rp_chat_complete on an n_ctx session gives. A job
 * that cannot run (prompt too long) gets its own st and error; the return value is a failure of the batch. */
rp_status rp_chat_complete_many(rp_model *m, int n_ctx, rp_chat_job *jobs, int n, int n_slots);

#endif
