/* fma_rate.c: rp_fma_loop (fma_rate.h). Twelve chains in GCC vector registers of RP_FMA_LANES floats, one
 * machine register each (the FMAs are contracted from a*m+b): enough independent chains to cover the FMA
 * latency on two pipes, few enough to stay in registers. No allocation, no failure. */
#include "util/fma_rate.h"

typedef float vf __attribute__((vector_size(RP_FMA_LANES * 4)));

/* The loop (fma_rate.h). */
float rp_fma_loop(long iters) {
    vf m, b, a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11;
    for (int i = 0; i < RP_FMA_LANES; i++) {
        m[i] = 0.999999f; b[i] = 1e-7f;
        a0[i] = 1.0f; a1[i] = 1.001f; a2[i] = 1.002f; a3[i] = 1.003f; a4[i] = 1.004f; a5[i] = 1.005f;
        a6[i] = 1.006f; a7[i] = 1.007f; a8[i] = 1.008f; a9[i] = 1.009f; a10[i] = 1.01f; a11[i] = 1.011f;
    }
    for (long it = 0; it < iters; it++) {
        a0 = a0 * m + b; a1 = a1 * m + b; a2 = a2 * m + b; a3 = a3 * m + b; a4 = a4 * m + b; a5 = a5 * m + b;
        a6 = a6 * m + b; a7 = a7 * m + b; a8 = a8 * m + b; a9 = a9 * m + b; a10 = a10 * m + b; a11 = a11 * m + b;
    }
    vf s = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)) + ((a8 + a9) + (a10 + a11));
    float t = 0;
    for (int i = 0; i < RP_FMA_LANES; i++) t += s[i];
    return t;
}
