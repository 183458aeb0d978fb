/* moe_route.h: mixture-of-experts routing on plain float pointers: softmax router probabilities, top-K
 * selection (released Jamba: weights are the probabilities, not renormalised; Mixtral: renormalised over
 * the K chosen), the Switch-style load-balancing loss, and the grouping of (token, slot) pairs by expert
 * so that each expert runs on its own tokens as one matmul (with the op table's gather_rows and
 * scatter_add_rows around it).
 * Shapes: logits, probs [T, E]; idx [T, K] (expert ids, in decreasing probability, ties to the lower id);
 * weight [T, K]. Invariant: every token has K distinct experts; 1 <= K <= E (checked by the caller's config). */
#ifndef RP_MOE_ROUTE_H
#define RP_MOE_ROUTE_H
#include <stdint.h>

/* Softmax over each row of logits into probs, then each row's top-K experts and their weights
 * (renorm != 0: divided by the sum of the K chosen probabilities). */
void rp_moe_route(int64_t T, int64_t E, int64_t K, const float *logits, float *probs, int32_t *idx, float *weight, int renorm);
/* Load-balancing loss E·Σ_i F_i·P_i, F_i = (token, slot) assignments to expert i per token (Σ F_i = K),
 * P_i = mean router probability of i: uniform routing gives K, all tokens on the same K experts gives E
 * when those hold all the probability. T = 0 gives 0. */
double rp_moe_aux_loss(int64_t T, int64_t E, int64_t K, const float *probs, const int32_t *idx);
/* Group the T·K assignments by expert: offsets [E+1] (expert i owns rows offsets[i] .. offsets[i+1]),
 * tok [T·K] the token of each grouped row, slot [T·K] its index into idx/weight (t·K + k). Stable in t. */
void rp_moe_group(int64_t T, int64_t E, int64_t K, const int32_t *idx, int64_t *offsets, int32_t *tok, int32_t *slot);

#endif
