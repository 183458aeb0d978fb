/* conv1d.c: the backward of the causal depthwise convolution (see conv1d.h): each output tap sends its
 * gradient back to the weight (times the input it saw) and to the input (times the weight).
 * Invariant: inputs before t = 0 are zeros and receive no gradient. */
#include <string.h>
#include "tensor/conv1d.h"

void rp_conv1d_causal_backward(int64_t T, int64_t D, int64_t K, const float *x, const float *w, const float *dy,
                               float *dx, float *dw, float *db) {
    memset(dx, 0, (size_t)(T * D) * sizeof *dx);
    memset(dw, 0, (size_t)(D * K) * sizeof *dw);
    if (db) memset(db, 0, (size_t)D * sizeof *db);
    for (int64_t t = 0; t < T; t++) {
        const float *g = dy + t * D;
        if (db) for (int64_t c = 0; c < D; c++) db[c] += g[c];
        for (int64_t k = 0; k < K; k++) {
            int64_t s = t - K + 1 + k;
            if (s < 0) continue;                   /* zero initial state: no gradient flows there */
            for (int64_t c = 0; c < D; c++) {
                dw[c * K + k] += g[c] * x[s * D + c];
                dx[s * D + c] += g[c] * w[c * K + k];
            }
        }
    }
}
