/* conv1d.h: the backward of the causal depthwise 1-D convolution of the Mamba mixer (channel c sees only
 * its own past K inputs), on plain float pointers. The forward is the op table's conv1d_causal
 * (tensor/backend.h): y_t[c] = b[c] + Σ_{k<K} w[c,k]·x_{t-K+1+k}[c].
 * Shapes: x, dy, dx [T, D] (token-major); w, dw [D, K]; db [D].
 * Invariant: the gradient is that of a sequence starting from a zero state (training from scratch). */
#ifndef RP_CONV1D_H
#define RP_CONV1D_H
#include <stdint.h>

/* Given dy [T, D], writes dx [T, D], dw [D, K] and db [D] (NULL: skipped); overwrites, never accumulates. */
void rp_conv1d_causal_backward(int64_t T, int64_t D, int64_t K, const float *x, const float *w, const float *dy,
                               float *dx, float *dw, float *db);

#endif
