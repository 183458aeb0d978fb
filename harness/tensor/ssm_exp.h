/* ssm_exp.h: the selective scan's vector exponential (internal to tensor/, static inline; AVX-512, or AVX2
 * with FMA): the decay exp(dt·A) for 16 (8) lanes, with A given as A·log2 e split into a float pair (hi + lo) so the
 * product dt·A·log2 e is carried to about 2^-48 and the result is within 2 ulp of exp(dt·A) computed
 * exactly (tests/test_ssm_exp.c checks it against libm's exp in double over [-104, 88], underflow to
 * 0 and the denormal range included). 11 instructions: 2^u = 2^k·2^f with k = round(u) by the
 * 1.5·2^23 shifter, f = u - k by two fmas, 2^f by a degree-5 near-minimax polynomial on [-1/2, 1/2]
 * (relative error 9.1e-8 in exact arithmetic), 2^k by vscalefps (which underflows to 0 correctly), and
 * a compare that zeroes every lane with k < -160 (for |u| >= 2^22 k is coarse and f is junk).
 * AVX2 has no vscalefps: rp_ssm_exp8_ps scales by two powers of two built in the exponent bits (2^(k/2)
 * twice, so a denormal result is rounded once), and rp_ssm_exp8_fast adds k to 2^f's exponent field
 * directly (k read from the shifter's low mantissa bits: 11 instructions) -- right only for |u| <= 124,
 * which the caller checks (rp_ssm_exp8_fast's comment says how the scan does it once per step).
 * Invariants: any u <= 0 gives exp's value (0 below -103.3·log2 e, -inf included); NaN stays NaN; u
 * above 128 overflows to inf as exp does, but u above about 1e15 (never in the scan: dt > 0, A < 0)
 * may give NaN. The 8-lane versions compute the same polynomial, so they equal the 16-lane one lane for
 * lane. */
#ifndef RP_SSM_EXP_H
#define RP_SSM_EXP_H
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#include "tensor/simd.h"   /* rp_ldexp8_ps */

#define RP_SSM_LOG2E 1.4426950408889634

/* Splits a·log2 e into *hi + *lo (floats). */
static inline void rp_ssm_exp_split(float a, float *hi, float *lo) {
    double v = (double)a * RP_SSM_LOG2E;
    *hi = (float)v;
    *lo = (float)(v - (double)*hi);
}

#endif

#if defined(__AVX512F__)
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
#elif defined(__AVX2__) && defined(__FMA__)
/* 2^f of 8 lanes' u = d·(hi + lo) = k + f (the 16-lane polynomial); *t gets the shifter's sum (k in its
 * low mantissa bits), *k gets k as a float. */
static inline __m256 rp_ssm_exp8_frac(__m256 d, __m256 hi, __m256 lo, __m256 *t, __m256 *k) {
    const __m256 shift = _mm256_set1_ps(12582912.0f);   /* 1.5·2^23: adding it rounds to an integer */
    *t = _mm256_fmadd_ps(d, hi, shift);
    *k = _mm256_sub_ps(*t, shift);
    __m256 f = _mm256_fmsub_ps(d, hi, *k);               /* exact product, one rounding */
    f = _mm256_fmadd_ps(d, lo, f);
    /* rp_ssm_exp_ps's polynomial, highest degree first (the AVX-512 code, tuned elsewhere, spells it inline) */
    static const float c[6] = { 1.32647273e-03f, 9.67151299e-03f, 5.55073358e-02f, 2.40222424e-01f, 6.93147004e-01f, 1.0f };
    __m256 p = _mm256_set1_ps(c[0]);
    for (int i = 1; i < 6; i++) p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(c[i]));
    return p;
}

/* exp(d·a) for 8 lanes (hi, lo = rp_ssm_exp_split(a)) where |d·a·log2 e| <= 124: k added to the exponent
 * bits of 2^f (in [0.7, 1.42], so the sum stays a normal float). The scan checks |d|·max_n |hi_n| < 124
 * once per step for a vector of channels and takes rp_ssm_exp8_ps for every state when it fails. */
static inline __m256 rp_ssm_exp8_fast(__m256 d, __m256 hi, __m256 lo) {
    __m256 t, k, p = rp_ssm_exp8_frac(d, hi, lo, &t, &k);
    return _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), _mm256_slli_epi32(_mm256_castps_si256(t), 23)));
}

/* exp(d·a) for 8 lanes anywhere (the 16-lane version's contract): 2^f·2^k1·2^k2 with k1 = floor(k/2),
 * k2 = k - k1 and k clamped to [-200, 200] (past it the result is 0 or inf anyway), so each factor is a
 * normal power of two and only the last product rounds; lanes with k < -160 are zeroed (NaN kept). */
static inline __m256 rp_ssm_exp8_ps(__m256 d, __m256 hi, __m256 lo) {
    __m256 t, k, p = rp_ssm_exp8_frac(d, hi, lo, &t, &k);
    __m256i ki = _mm256_cvttps_epi32(_mm256_max_ps(_mm256_min_ps(k, _mm256_set1_ps(200.0f)), _mm256_set1_ps(-200.0f)));
    __m256 r = rp_ldexp8_ps(p, ki);
    return _mm256_and_ps(r, _mm256_cmp_ps(k, _mm256_set1_ps(-160.0f), _CMP_NLT_UQ));
}
#endif
#endif
