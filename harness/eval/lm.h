/* lm.h: what the evaluation module needs from a language model, as a small vtable, so evaluation code
 * knows nothing of the engine's internals (the engine provides an adapter: rp_model_as_lm in nn/). */
#ifndef RP_EVAL_LM_H
#define RP_EVAL_LM_H
#include <stddef.h>
#include "util/err.h"

typedef struct rp_lm {
    void *ctx;
    int n_vocab;
    int bos;          /* BOS id, -1 when the model has none */
    int add_bos;      /* whether sequences should start with BOS (llama2.c/Llama: 1, SmolLM2: 0) */
    int n_ctx;        /* longest sequence logprobs accepts */
    /* Tokenize text (no BOS added). *ids is malloc'd, the caller frees. */
    rp_status (*tokenize)(void *ctx, const char *text, size_t len, int **ids, size_t *n);
    /* Teacher-forced scoring of nseq sequences in one call: for sequence s with tokens seqs[s][0..lens[s]),
     * write into out[s][i - from[s]] the log-probability of seqs[s][i+1] given seqs[s][0..i], for
     * i in [from[s], lens[s]-1); when greedy != NULL, greedy[s][i-from[s]] = 1 iff seqs[s][i+1] is the argmax. */
    rp_status (*logprobs)(void *ctx, int nseq, const int *const *seqs, const size_t *lens, const size_t *from,
                          float *const *out, unsigned char *const *greedy);
} rp_lm;

#endif
