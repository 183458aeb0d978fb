/* test_ssm_exp.c: the selective scan's vector exponential (tensor/ssm_exp.h) against libm's exp in double,
 * rounded to float: within 2 ulp over [-104, 88.7] (every 97th float bit pattern, about 22M values, and
 * the denormal results of [-103.3, -87.3] densely), exactly 0 below the smallest denormal (down to -inf), and as the scan
 * uses it, exp(dt·A) for random dt in (0, 10] and A in [-100, -0.01]: within 2 ulp of the exact product's
 * exponential. The maximum ulp error seen is printed. Without AVX-512 the same checks run on the AVX2 version
 * (rp_ssm_exp8_ps), and its fast version must equal it bit for bit over the scan's range. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "check.h"
#include "tensor/ssm_exp.h"

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
/* out = exp(d·a) for 16 lanes (hi, lo from rp_ssm_exp_split): one AVX-512 vector or two AVX2 ones (the
 * general rp_ssm_exp8_ps; the fast version is checked against it in test_fast). */
static void exp16(float *out, const float *d, const float *hi, const float *lo) {
#if defined(__AVX512F__)
    _mm512_storeu_ps(out, rp_ssm_exp_ps(_mm512_loadu_ps(d), _mm512_loadu_ps(hi), _mm512_loadu_ps(lo)));
#else
    for (int h = 0; h < 16; h += 8)
        _mm256_storeu_ps(out + h, rp_ssm_exp8_ps(_mm256_loadu_ps(d + h), _mm256_loadu_ps(hi + h), _mm256_loadu_ps(lo + h)));
#endif
}

static uint32_t bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float from_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* Distance in units in the last place between two non-negative floats (both finite). */
static int64_t ulps(float a, float b) { return (int64_t)bits(a) - (int64_t)bits(b) < 0 ? (int64_t)bits(b) - bits(a) : (int64_t)bits(a) - bits(b); }

/* Max ulp error of exp over the 16·n arguments in d (a = 1: exp(d)), or of exp(d·a) with per-lane a. */
static int64_t worst(const float *d, const float *a, int n, float *at) {
    int64_t w = 0;
    for (int i = 0; i < n; i += 16) {
        float hi[16], lo[16], out[16];
        for (int l = 0; l < 16; l++) rp_ssm_exp_split(a ? a[i + l] : 1.0f, &hi[l], &lo[l]);
        exp16(out, d + i, hi, lo);
        for (int l = 0; l < 16; l++) {
            float want = (float)exp((double)d[i + l] * (a ? (double)a[i + l] : 1.0));
            int64_t e = ulps(out[l], want);
            if (e > w) { w = e; *at = d[i + l]; }
        }
    }
    return w;
}

static void test_range(void) {
    static float buf[4096];
    int n = 0;
    int64_t w = 0;
    float at = 0;
    /* negative arguments down to -104 (bit patterns of 0 .. -104 by 97), then positive up to 88.7 */
    for (int side = 0; side < 2; side++) {
        uint32_t top = side ? bits(88.7f) : bits(-104.0f), sign = side ? 0 : 0x80000000u;
        for (uint32_t u = sign; u <= top; u += 97) {
            buf[n++] = from_bits(u);
            if (n == 4096) { float a; int64_t e = worst(buf, NULL, n, &a); if (e > w) { w = e; at = a; } n = 0; }
        }
    }
    /* denormal results, densely */
    for (float x = -103.3f; x < -87.3f; x += 1.0f / 1024) {
        buf[n++] = x;
        if (n == 4096) { float a; int64_t e = worst(buf, NULL, n, &a); if (e > w) { w = e; at = a; } n = 0; }
    }
    while (n % 16) buf[n++] = 0;
    float a; int64_t e = worst(buf, NULL, n, &a); if (e > w) { w = e; at = a; }
    printf("# exp over [-104, 88.7]: max error %lld ulp (at %.9g)\n", (long long)w, at);
    CHECK_MSG(w <= 2, "exp: %lld ulp at %.9g", (long long)w, at);
    /* underflow: 0 exactly, down to the largest finite products */
    float big[16] = { -104.0f, -110.0f, -150.0f, -1000.0f, -1e5f, -4194303.0f, -4194305.0f, -1e7f, -1e10f, -1e20f, -1e30f, -2e38f, -120, -INFINITY, -3e6f, -5e6f };
    float hi[16], lo[16], out[16];
    for (int l = 0; l < 16; l++) rp_ssm_exp_split(1.0f, &hi[l], &lo[l]);
    exp16(out, big, hi, lo);
    for (int l = 0; l < 16; l++) CHECK_MSG(out[l] == 0.0f, "exp(%g) = %g, want 0", big[l], out[l]);
}

/* The scan's use: decays exp(dt·A) with the exact product (the split carries A·log2 e to about 2^-48). */
static void test_decays(void) {
    static float d[1 << 16], a[1 << 16];
    uint32_t s = 7;
    for (int i = 0; i < 1 << 16; i++) {
        s = s * 1664525u + 1013904223u; d[i] = 1e-4f + 10.0f * (float)(s >> 8) / 16777216.0f;
        s = s * 1664525u + 1013904223u; a[i] = -expf(-4.6f + 9.2f * (float)(s >> 8) / 16777216.0f);   /* -0.01 .. -100 */
    }
    float at = 0;
    int64_t w = worst(d, a, 1 << 16, &at);
    printf("# exp(dt*A), dt in (0, 10], A in [-100, -0.01]: max error %lld ulp\n", (long long)w);
    CHECK_MSG(w <= 2, "decay: %lld ulp (dt %g)", (long long)w, at);
}
#endif

#if !defined(__AVX512F__) && defined(__AVX2__) && defined(__FMA__)
/* The AVX2 fast version (exponent bits added directly) equals the general one bit for bit wherever the scan
 * uses it, |u| <= 124 (every 13th float bit pattern of [-85, 85] with a = 1, u = 85·log2 e < 124), and NaN
 * stays NaN. */
static void test_fast(void) {
    float hi[8], lo[8], d[8], a[8], b[8];
    for (int l = 0; l < 8; l++) rp_ssm_exp_split(1.0f, &hi[l], &lo[l]);
    const __m256 h = _mm256_loadu_ps(hi), o = _mm256_loadu_ps(lo);
    int64_t bad = 0, n = 0;
    for (int side = 0; side < 2; side++)
        for (uint32_t u = side ? 0 : 0x80000000u, top = bits(side ? 85.0f : -85.0f); u <= top; u += 13 * 8) {
            for (int l = 0; l < 8; l++) d[l] = from_bits(u + (uint32_t)(13 * l) <= top ? u + (uint32_t)(13 * l) : top);
            _mm256_storeu_ps(a, rp_ssm_exp8_fast(_mm256_loadu_ps(d), h, o));
            _mm256_storeu_ps(b, rp_ssm_exp8_ps(_mm256_loadu_ps(d), h, o));
            for (int l = 0; l < 8; l++, n++) bad += bits(a[l]) != bits(b[l]);
        }
    printf("# fast exp over [-85, 85]: %lld of %lld values differ from the general one\n", (long long)bad, (long long)n);
    CHECK_MSG(bad == 0, "fast exp: %lld values differ", (long long)bad);
    for (int l = 0; l < 8; l++) d[l] = NAN;
    _mm256_storeu_ps(a, rp_ssm_exp8_fast(_mm256_loadu_ps(d), h, o));
    _mm256_storeu_ps(b, rp_ssm_exp8_ps(_mm256_loadu_ps(d), h, o));
    CHECK(isnan(a[0]) && isnan(b[0]));
}
#endif

int main(void) {
#if defined(__AVX512F__)
    test_range();
    test_decays();
#elif defined(__AVX2__) && defined(__FMA__)
    test_range();
    test_decays();
    test_fast();
#else
    printf("skip: built without AVX-512 or AVX2 (the scan's vector exp is not compiled)\n");
    CHECK(1);
#endif
    return checks_done("test_ssm_exp");
}
