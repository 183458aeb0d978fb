/* score.h: scoring a task (task.h) with a language model (lm.h): multiple choice by log-likelihood,
 * TruthfulQA MC2, LAMBADA-style last-word prediction, and perplexity / bits per byte of a text, both by
 * rolling windows over the whole text and by llama.cpp's `perplexity` protocol.
 * Every figure comes with its standard error where one is defined: the sample standard deviation of the
 * per-item values over sqrt(n) (lm-evaluation-harness's mean_stderr), and for llama.cpp's protocol
 * llama.cpp's own formula. */
#ifndef RP_EVAL_SCORE_H
#define RP_EVAL_SCORE_H
#include <stddef.h>
#include <stdint.h>
#include "eval/lm.h"
#include "eval/task.h"

typedef enum rp_ppl_protocol {
    RP_PPL_ROLLING,    /* every token scored once: windows of `ctx` tokens overlapping by one token */
    RP_PPL_LLAMACPP,   /* llama.cpp: chunks of ctx tokens, BOS first when the model uses it, second half scored */
} rp_ppl_protocol;

typedef struct rp_eval_opts {
    int shots;             /* few-shot examples per item (0: zero-shot) */
    size_t limit;          /* MC tasks: score this many items (0: all), a seeded subset; text tasks: the
                              llama.cpp protocol's number of chunks, or the rolling protocol's bytes of text */
    uint64_t seed;         /* few-shot draws and the --limit subset */
    int ctx;               /* text tasks: window / chunk length in tokens (0: 512, capped by the model's n_ctx) */
    rp_ppl_protocol protocol;
    /* Called after each item / window with (done, total); may be NULL. */
    void (*progress)(void *arg, size_t done, size_t total);
    void *progress_arg;
    /* Called after each scored item with its index, per-choice log-likelihoods and prediction; may be NULL. */
    void (*on_item)(void *arg, size_t item, const double *ll, int n_choices, int pred, int pred_norm);
    void *on_item_arg;
} rp_eval_opts;

#define RP_EVAL_MAX_METRICS 8
typedef struct rp_metric {
    const char *name;      /* "acc", "acc_norm", "mc2", "ppl", "bpb", "word_ppl", ... (static strings) */
    double value, stderr_; /* stderr_ NaN when not defined */
    int direction;         /* +1 higher is better, -1 lower is better */
} rp_metric;

typedef struct rp_eval_result {
    size_t n;              /* items scored (text tasks: tokens scored) */
    int n_metrics;
    rp_metric m[RP_EVAL_MAX_METRICS];
} rp_eval_result;

/* Score a task: MC -> acc, acc_norm; MC2 -> mc2; LASTWORD -> acc, ppl; TEXT -> ppl, bpb, word_ppl
 * (rolling) or ppl (llama.cpp). acc_norm divides each log-likelihood by the length of the choice in
 * characters (UTF-8 code points, without the delimiter), as lm-evaluation-harness's len() on a str
 * does: "90°C" is 4 characters, not 5 bytes. Each item's choices go to
 * the model in one logprobs call. */
rp_status rp_eval_task(const rp_lm *lm, const rp_task *t, const rp_eval_opts *o, rp_eval_result *r);
/* A metric of a result by name (NULL when absent). */
const rp_metric *rp_eval_metric(const rp_eval_result *r, const char *name);

/* Log-likelihood of each choice of item i given prefix (header + few-shot text) + its context, in one
 * logprobs call; ll has n_choices entries; greedy (may be NULL) receives 1 where every token of the
 * choice is the model's argmax. Over-long sequences are cut from the left to the model's n_ctx. */
rp_status rp_eval_item(const rp_lm *lm, const rp_task *t, size_t i, const char *prefix, double *ll, int *greedy);

typedef struct rp_ppl_result {
    double ppl, ppl_stderr;    /* exp(mean NLL); ± as llama.cpp prints it (llama.cpp protocol), else NaN */
    double mean_nll;           /* nats per scored token */
    double bpb;                /* bits per byte: total NLL / ln 2 / bytes (rolling protocol), else NaN */
    double word_ppl;           /* exp(total NLL / whitespace-separated words) (rolling protocol), else NaN */
    size_t n_scored, n_tokens, n_chunks, n_bytes, n_words;
} rp_ppl_result;

/* llama.cpp's perplexity protocol on text: tokens = [BOS if lm->add_bos] + tokenize(text); chunk i is
 * tokens [i*c, (i+1)*c) with its first token replaced by BOS when lm->add_bos; positions c/2 .. c-2 of
 * each chunk predict the next token; PPL = exp(mean NLL), ± = sqrt((E[nll^2]-E[nll]^2)/(count-1))*PPL.
 * max_chunks <= 0: all whole chunks. Needs at least 2c tokens, as llama.cpp does. */
rp_status rp_eval_perplexity_llamacpp(const rp_lm *lm, const char *text, size_t len, int c, int max_chunks,
                                      rp_ppl_result *r, void (*progress)(void *, size_t, size_t), void *arg);
/* Every token of text scored once (the first one given BOS when lm->add_bos, else it is not scored):
 * windows of w tokens overlapping by one token. bpb and word perplexity are over the whole text. */
rp_status rp_eval_perplexity_rolling(const rp_lm *lm, const char *text, size_t len, int w, rp_ppl_result *r,
                                     void (*progress)(void *, size_t, size_t), void *arg);

#endif
