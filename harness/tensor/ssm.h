/* ssm.h: the Mamba selective scan (state-spaces/mamba's selective_scan_ref semantics, fp32) on plain
 * float pointers: the cpu backend's selective_scan op (AVX-512, or AVX2 with FMA, with channels across the
 * lanes, so no horizontal sum per step; threads over channel blocks; T = 1 is the recurrent decoding step)
 * and the cpu backward table's. The plain references are rp_ref_selective_scan (ops_ref.h) and
 * rp_ref_selective_scan_backward (backward.h), with the same argument meaning.
 * Shapes (row-major, token-major): x, dt, y [T, D]; A [D, N]; B, C [T, N]; Dskip [D] (NULL: no skip);
 * state [D, N]. dt is the step size after softplus. For every channel c and state n:
 *   s_t = exp(dt_t[c]·A[c,n])·s_{t-1} + dt_t[c]·B_t[n]·x_t[c],   y_t[c] = Σ_n C_t[n]·s_t[c,n] + Dskip[c]·x_t[c].
 * Invariants: state holds s_{-1} on entry and s_{T-1} on return (zeros for a fresh sequence). rp_ssm_scan
 * equals the reference up to float rounding (its decay exp is ssm_exp.h's, within 2 ulp of exp). */
#ifndef RP_SSM_H
#define RP_SSM_H
#include <stdint.h>
#include "tensor/backend.h"   /* rp_scan_ckpt_floats */
#include "tensor/backward.h"
#include "tensor/pool.h"

/* The selective scan on the pool's threads (pool NULL: the calling thread), vectorized over channels;
 * without AVX-512 or AVX2, or when N != 16, it runs the plain reference. ckpt (NULL: none) gets, on the
 * vectorized paths, the states before every RP_SCAN_CKPT_STEPS steps (rp_scan_ckpt_floats(T, D, N) floats,
 * backend.h; laid out for this build's backward) for rp_ssm_scan_backward; the plain path leaves it unused. */
void rp_ssm_scan(rp_pool *pool, int64_t T, int64_t D, int64_t N, const float *x, const float *dt, const float *A,
                 const float *B, const float *C, const float *Dskip, float *state, float *y, float *ckpt);
/* Backward of the scan from a zero initial state (the cpu table's selective_scan backward, backward.h):
 * given dy [T, D], ACCUMULATES into dx, ddt [T, D], dA [D, N], dB, dC [T, N] and dDskip [D] (any may be
 * NULL: not wanted; dDskip is unused when Dskip is NULL). N = 16 with AVX-512: channels across the lanes
 * as in the forward, chunk by chunk in reverse from ckpt (what rp_ssm_scan saved there with these inputs;
 * NULL: that forward is run first into bw's shared scratch), 4 states at a time, each chunk's decays and
 * states recomputed into L1 from its checkpoint; 2·T·N floats of bw's per-thread scratch plus about 340 KB
 * (a group of up to 32 blocks of 16 channels per task). With AVX2 instead, the same design on 8 lanes.
 * Otherwise one channel at a time, recomputing the states (2·T·N floats plus one channel's states). Scratch grows on first need; threads from bw's pool; RP_ERR_NOMEM if the scratch cannot grow,
 * RP_ERR_UNSUPPORTED for N > 256. */
rp_status rp_ssm_scan_backward(rp_bwd *bw, float *dx, float *ddt, float *dA, float *dB, float *dC, float *dDskip,
                               const float *dy, const float *x, const float *dt, const float *A, const float *B,
                               const float *C, const float *Dskip, int64_t T, int64_t D, int64_t N, const float *ckpt);

#endif
