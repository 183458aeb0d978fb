/* ssm_exp.h: the selective scan's vector exponential (internal to tensor/, static inline, AVX-512 only):
 * the decay exp(dt·A) for 16 lanes, with A given as A·log2 e split into a float pair (hi + lo) so the
 * product dt·A·log2 e is carried to about 2^-48 and the result is within 2 ulp of exp(dt·A) computed
 * exactly (tests/test_ssm_exp.c checks it against libm's exp in double over [-104, 88], underflow to
 * 0 and the denormal range included). 11 instructions: 2^u = 2^k·2^f with k = round(u) by the
 * 1.5·2^23 shifter, f = u - k by two fmas, 2^f by a degree-5 near-minimax polynomial on [-1/2, 1/2]
 * (relative error 9.1e-8 in exact arithmetic), 2^k by vscalefps (which underflows to 0 correctly), and
 * a compare that zeroes every lane with k < -160 (for |u| >= 2^22 k is coarse and f is junk).
 * Invariants: any u <= 0 gives exp's value (0 below -103.3·log2 e, -inf included); NaN stays NaN; u
 * above 128 overflows to inf as exp does, but u above about 1e15 (never in the scan: dt > 0, A < 0)
 * may give NaN. */
#ifndef RP_SSM_EXP_H
#define RP_SSM_EXP_H
#if defined(__AVX512F__)
#include <immintrin.h>

#define RP_SSM_LOG2E 1.4426950408889634

/* Splits a·log2 e into *hi + *lo (floats). */
static inline void rp_ssm_exp_split(float a, float *hi, float *lo) {
    double v = (double)a * RP_SSM_LOG2E;
    *hi = (float)v;
    *lo = (float)(v - (double)*hi);
}

/* 2^(d·(hi + lo)) for 16 lanes, i.e. exp(d·a) for hi, lo = rp_ssm_exp_split(a). */
static inline __m512 rp_ssm_exp_ps(__m512 d, __m512 hi, __m512 lo) {
    const __m512 shift = _mm512_set1_ps(12582912.0f);   /* 1.5·2^23: adding it rounds to an integer */
    __m512 k = _mm512_sub_ps(_mm512_fmadd_ps(d, hi, shift), shift);
    __m512 f = _mm512_fmsub_ps(d, hi, k);                /* exact product, one rounding */
    f = _mm512_fmadd_ps(d, lo, f);
    __m512 p = _mm512_set1_ps(1.32647273e-03f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.67151299e-03f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.55073358e-02f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.40222424e-01f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.93147004e-01f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    /* k below -160: the result underflows to 0; the mask keeps a far-off k's junk f out of it (NaN kept) */
    return _mm512_maskz_scalef_ps(_mm512_cmp_ps_mask(k, _mm512_set1_ps(-160.0f), _CMP_NLT_UQ), p, k);
}
#endif
#endif
