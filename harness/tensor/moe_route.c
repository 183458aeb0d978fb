/* moe_route.c: router softmax and top-K, the load-balancing loss, and the per-expert grouping (see
 * moe_route.h). Invariant: the top-K order is by decreasing probability with ties going
 * to the lower expert id, so routing is deterministic. */
#include <math.h>
#include <string.h>
#include "tensor/moe_route.h"

void rp_moe_route(int64_t T, int64_t E, int64_t K, const float *logits, float *probs, int32_t *idx, float *weight, int renorm) {
    for (int64_t t = 0; t < T; t++) {
        const float *l = logits + t * E;
        float *p = probs + t * E, mx = l[0], sum = 0;
        for (int64_t e = 1; e < E; e++) mx = l[e] > mx ? l[e] : mx;
        for (int64_t e = 0; e < E; e++) { p[e] = expf(l[e] - mx); sum += p[e]; }
        for (int64_t e = 0; e < E; e++) p[e] /= sum;
        int32_t *id = idx + t * K;
        float *w = weight + t * K, wsum = 0;
        for (int64_t k = 0; k < K; k++) {            /* K is small (2): selection by repeated scans */
            int32_t best = -1;
            for (int64_t e = 0; e < E; e++) {
                int taken = 0;
                for (int64_t q = 0; q < k; q++) taken |= id[q] == e;
                if (!taken && (best < 0 || p[e] > p[best])) best = (int32_t)e;
            }
            id[k] = best;
            w[k] = p[best];
            wsum += p[best];
        }
        if (renorm) for (int64_t k = 0; k < K; k++) w[k] /= wsum;
    }
}

double rp_moe_aux_loss(int64_t T, int64_t E, int64_t K, const float *probs, const int32_t *idx) {
    if (T <= 0) return 0;
    double loss = 0;
    for (int64_t e = 0; e < E; e++) {
        double f = 0, p = 0;
        for (int64_t t = 0; t < T; t++) {
            p += probs[t * E + e];
            for (int64_t k = 0; k < K; k++) f += idx[t * K + k] == e;
        }
        loss += (f / (double)T) * (p / (double)T);
    }
    return (double)E * loss;
}

void rp_moe_group(int64_t T, int64_t E, int64_t K, const int32_t *idx, int64_t *offsets, int32_t *tok, int32_t *slot) {
    memset(offsets, 0, (size_t)(E + 1) * sizeof *offsets);
    for (int64_t i = 0; i < T * K; i++) offsets[idx[i] + 1]++;
    for (int64_t e = 0; e < E; e++) offsets[e + 1] += offsets[e];
    for (int64_t i = 0; i < T * K; i++) {      /* offsets[e] is expert e's write cursor here ... */
        int64_t r = offsets[idx[i]]++;
        tok[r] = (int32_t)(i / K);
        slot[r] = (int32_t)i;
    }
    for (int64_t e = E; e > 0; e--) offsets[e] = offsets[e - 1];   /* ... and now expert e's end: shift back */
    offsets[0] = 0;
}
