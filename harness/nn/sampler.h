/* sampler.h: choosing the next token from logits: greedy (temperature <= 0), temperature, nucleus (top-p),
 * with a seeded generator so a seed reproduces a generation exactly.
 * Invariant: a sampler owns scratch for n_vocab candidates, allocated once (no allocation per token). */
#ifndef RP_NN_SAMPLER_H
#define RP_NN_SAMPLER_H
#include <stdint.h>
#include "util/err.h"

typedef struct rp_sampler rp_sampler;

/* temperature <= 0: greedy; top_p outside (0, 1): no nucleus cut. */
rp_status rp_sampler_new(int n_vocab, float temperature, float top_p, uint64_t seed, rp_sampler **out);
void rp_sampler_free(rp_sampler *s);
/* The next token for logits[n_vocab] (logits are not modified). */
int rp_sampler_sample(rp_sampler *s, const float *logits);
/* Index of the largest value (the first one on ties). */
int rp_argmax(const float *x, int n);

#endif
