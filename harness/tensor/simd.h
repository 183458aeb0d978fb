/* simd.h: the few vector primitives the fast CPU kernels share (dot, axpy, scale, exp over arrays; rp_vf, a
 * machine vector as a GCC vector type with its exp and sqrt, for kernels written once), in AVX-512 when the
 * compiler targets it, in AVX2 + FMA (8 lanes, tails through vmaskmov) on machines without it, and plain C
 * otherwise. Internal to the engine (tensor/, and nn/adamw.c's update; static inline).
 * Invariant: results match the plain loops up to float rounding (exp: a few ulp, see rp_exp_ps / rp_exp8_ps;
 * the two give the same bits lane for lane, tests/test_ops.c checks the AVX2 one against libm). */
#ifndef RP_SIMD_H
#define RP_SIMD_H
#include <math.h>
#include <stdint.h>
#if defined(__AVX512F__)
#include <immintrin.h>

/* e^x for 16 lanes: x = n·ln2 + r, |r| <= ln2/2, e^r by its degree-7 Taylor polynomial (relative
 * error below 1e-7 on the reduced range), scaled by 2^n with vscalefps (which also handles underflow). */
static inline __m512 rp_exp_ps(__m512 x) {
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.7f)), _mm512_set1_ps(-104.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.4286068203094172e-06f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* One machine vector of floats as a GCC vector type (arithmetic by operators, unaligned loads and stores by
 * dereference), RP_VL lanes, with its exp and sqrt: kernels written once for AVX-512 and AVX2. */
#define RP_VL 16
typedef float rp_vf __attribute__((vector_size(64), aligned(4)));
static inline rp_vf rp_vf_exp(rp_vf x) { return (rp_vf)rp_exp_ps((__m512)x); }
static inline rp_vf rp_vf_sqrt(rp_vf x) { return (rp_vf)_mm512_sqrt_ps((__m512)x); }

static inline float rp_vdot(const float *a, const float *b, int64_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
    }
    for (; i + 16 <= n; i += 16) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

/* y[i] += a[i] · x[i] */
static inline void rp_vmul_add(float *y, const float *a, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a[i] * x[i];
}

/* y += a·x */
static inline void rp_vaxpy(float *y, float a, const float *x, int64_t n) {
    __m512 va = _mm512_set1_ps(a);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
    }
}

/* x[i] = e^(x[i] - mx); returns the sum. */
static inline float rp_vexp_sub_sum(float *x, float mx, int64_t n) {
    __m512 vm = _mm512_set1_ps(mx), s = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 e = rp_exp_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm));
        _mm512_storeu_ps(x + i, e);
        s = _mm512_add_ps(s, e);
    }
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        __m512 e = rp_exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vm));
        _mm512_mask_storeu_ps(x + i, m, e);
        s = _mm512_add_ps(s, _mm512_maskz_mov_ps(m, e));
    }
    return _mm512_reduce_add_ps(s);
}

/* Σ e^(x[i] - mx) without storing. */
static inline float rp_vexp_sum(const float *x, float mx, int64_t n) {
    __m512 vm = _mm512_set1_ps(mx), s = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) s = _mm512_add_ps(s, rp_exp_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        s = _mm512_add_ps(s, _mm512_maskz_mov_ps(m, rp_exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vm))));
    }
    return _mm512_reduce_add_ps(s);
}

static inline float rp_vmax(const float *x, int64_t n) {
    __m512 m = _mm512_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) m = _mm512_max_ps(m, _mm512_loadu_ps(x + i));
    float r = _mm512_reduce_max_ps(m);
    for (; i < n; i++) r = x[i] > r ? x[i] : r;
    return r;
}

static inline void rp_vscale(float *x, float a, int64_t n) {
    __m512 va = _mm512_set1_ps(a);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(va, _mm512_loadu_ps(x + i)));
    for (; i < n; i++) x[i] *= a;
}

/* out = silu(g) · u (u may be NULL). */
static inline void rp_vswiglu(float *out, const float *g, const float *u, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 x = _mm512_loadu_ps(g + i);
        __m512 e = rp_exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), x));
        __m512 s = _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
        if (u) s = _mm512_mul_ps(s, _mm512_loadu_ps(u + i));
        _mm512_storeu_ps(out + i, s);
    }
    for (; i < n; i++) out[i] = g[i] / (1.0f + expf(-g[i])) * (u ? u[i] : 1.0f);
}

#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

/* Sum of the 8 lanes. */
static inline float rp_hsum8_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

/* Lane mask of the first k lanes (0 <= k <= 8) for vmaskmovps: masked-off lanes load as 0, store nothing. */
static inline __m256i rp_mask8(int64_t k) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* p · 2^k for 8 lanes, k in [-252, 254] (AVX2 has no vscalefps): 2^(k>>1) · 2^(k - (k>>1)), both normal
 * powers of two built in the exponent bits, so the first product is exact and only the second rounds (a
 * denormal result is rounded once). Shared by every AVX2 exp (this file's, ssm_exp.h's). */
static inline __m256 rp_ldexp8_ps(__m256 p, __m256i k) {
    const __m256i k1 = _mm256_srai_epi32(k, 1), k2 = _mm256_sub_epi32(k, k1), bias = _mm256_set1_epi32(127);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k1, bias), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k2, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

/* e^x for 8 lanes, the arithmetic of rp_exp_ps (AVX-512) without vscalefps: x clamped to [-104, 88.7],
 * x = n·ln2 + r, e^r by the degree-7 Taylor polynomial (relative error below 1e-7 on |r| <= ln2/2), then
 * 2^n (n in [-150, 128]) applied as 2^(n>>1) · 2^(n - (n>>1)), both factors normal floats built in the
 * exponent bits: the first product is exact and the second rounds once, so overflow (never: e^88.7 <
 * FLT_MAX), the denormal range and underflow to 0 (x <= -104, -inf) come out as vscalefps gives them. */
static inline __m256 rp_exp8_ps(__m256 x) {
    x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.7f)), _mm256_set1_ps(-104.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.4286068203094172e-06f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    return rp_ldexp8_ps(p, _mm256_cvtps_epi32(n));
}

/* rp_vf on 8 lanes (see the AVX-512 section). */
#define RP_VL 8
typedef float rp_vf __attribute__((vector_size(32), aligned(4)));
static inline rp_vf rp_vf_exp(rp_vf x) { return (rp_vf)rp_exp8_ps((__m256)x); }
static inline rp_vf rp_vf_sqrt(rp_vf x) { return (rp_vf)_mm256_sqrt_ps((__m256)x); }

static inline float rp_vdot(const float *a, const float *b, int64_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    if (i < n) {
        __m256i m = rp_mask8(n - i);
        s1 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m), s1);
    }
    return rp_hsum8_ps(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

/* y[i] += a[i] · x[i] */
static inline void rp_vmul_add(float *y, const float *a, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a[i] * x[i];
}

/* y += a·x */
static inline void rp_vaxpy(float *y, float a, const float *x, int64_t n) {
    __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    if (i < n) {
        __m256i m = rp_mask8(n - i);
        _mm256_maskstore_ps(y + i, m, _mm256_fmadd_ps(va, _mm256_maskload_ps(x + i, m), _mm256_maskload_ps(y + i, m)));
    }
}

/* x[i] = e^(x[i] - mx); returns the sum. */
static inline float rp_vexp_sub_sum(float *x, float mx, int64_t n) {
    __m256 vm = _mm256_set1_ps(mx), s = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = rp_exp8_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        _mm256_storeu_ps(x + i, e);
        s = _mm256_add_ps(s, e);
    }
    if (i < n) {
        __m256i m = rp_mask8(n - i);
        __m256 e = _mm256_and_ps(rp_exp8_ps(_mm256_sub_ps(_mm256_maskload_ps(x + i, m), vm)), _mm256_castsi256_ps(m));
        _mm256_maskstore_ps(x + i, m, e);
        s = _mm256_add_ps(s, e);
    }
    return rp_hsum8_ps(s);
}

/* Σ e^(x[i] - mx) without storing. */
static inline float rp_vexp_sum(const float *x, float mx, int64_t n) {
    __m256 vm = _mm256_set1_ps(mx), s = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) s = _mm256_add_ps(s, rp_exp8_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm)));
    if (i < n) {
        __m256i m = rp_mask8(n - i);
        s = _mm256_add_ps(s, _mm256_and_ps(rp_exp8_ps(_mm256_sub_ps(_mm256_maskload_ps(x + i, m), vm)), _mm256_castsi256_ps(m)));
    }
    return rp_hsum8_ps(s);
}

static inline float rp_vmax(const float *x, int64_t n) {
    __m256 m = _mm256_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    float r = _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
    for (; i < n; i++) r = x[i] > r ? x[i] : r;
    return r;
}

static inline void rp_vscale(float *x, float a, int64_t n) {
    __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(va, _mm256_loadu_ps(x + i)));
    for (; i < n; i++) x[i] *= a;
}

/* out = silu(g) · u (u may be NULL). */
static inline void rp_vswiglu(float *out, const float *g, const float *u, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(g + i);
        __m256 e = rp_exp8_ps(_mm256_sub_ps(_mm256_setzero_ps(), x));
        __m256 s = _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
        if (u) s = _mm256_mul_ps(s, _mm256_loadu_ps(u + i));
        _mm256_storeu_ps(out + i, s);
    }
    for (; i < n; i++) out[i] = g[i] / (1.0f + expf(-g[i])) * (u ? u[i] : 1.0f);
}

#else  /* plain C versions */

static inline float rp_vdot(const float *a, const float *b, int64_t n) {
    float s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}
static inline void rp_vaxpy(float *y, float a, const float *x, int64_t n) { for (int64_t i = 0; i < n; i++) y[i] += a * x[i]; }
static inline void rp_vmul_add(float *y, const float *a, const float *x, int64_t n) { for (int64_t i = 0; i < n; i++) y[i] += a[i] * x[i]; }
static inline float rp_vexp_sub_sum(float *x, float mx, int64_t n) {
    float s = 0;
    for (int64_t i = 0; i < n; i++) { x[i] = expf(x[i] - mx); s += x[i]; }
    return s;
}
static inline float rp_vexp_sum(const float *x, float mx, int64_t n) {
    float s = 0;
    for (int64_t i = 0; i < n; i++) s += expf(x[i] - mx);
    return s;
}
static inline float rp_vmax(const float *x, int64_t n) {
    float r = -INFINITY;
    for (int64_t i = 0; i < n; i++) r = x[i] > r ? x[i] : r;
    return r;
}
static inline void rp_vscale(float *x, float a, int64_t n) { for (int64_t i = 0; i < n; i++) x[i] *= a; }
static inline void rp_vswiglu(float *out, const float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = g[i] / (1.0f + expf(-g[i])) * (u ? u[i] : 1.0f);
}
#endif

#endif
