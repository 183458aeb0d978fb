/* qdot.c: integer dot products on quantized blocks and fast dequantization (see qdot.h).
 * AVX-512 VNNI layout: two blocks (64 weights) per 512-bit register, in the element order of the int8
 * activation row, so one vpdpbusd gives eight int32 partial sums per block; unsigned × signed is exact
 * for nibbles, and q8_0 weights are biased by +128 (xor 0x80) with the bias removed through the
 * activation block sums (s = d · Σq). AVX2 + FMA + F16C builds (no AVX-512) get the f32-activation dot
 * (rp_fdot_row) and the fast dequantization in 8-lane form: that is their decoding path (they build no
 * decode layout, rp_packed_fast); their int8 dot (rp_qdot_row) uses vpmaddubsw + vpmaddwd, whose int16
 * pair sums cannot saturate for these weights. The scalar paths are the reference formulas. */
#include "tensor/qdot.h"
#include <math.h>
#include <string.h>
#include "tensor/simd.h"
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif
#if !defined(__AVX512F__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define AVX2_FAST 1   /* the 8-lane kernels below */
#endif

/* Whether the int8 dot handles t. */
int rp_qdot_supported(rp_dtype t) { return t == RP_Q4_0 || t == RP_Q4_1 || t == RP_Q8_0; }

/* Byte offset of elements [16h, 16h + 16) of block b in a limb array: natural order, or grouped (four
 * blocks' first halves, then their second halves: the lanes of the decode layout). */
static inline size_t q24_off(int64_t b, int h, int grouped) {
    return grouped ? (size_t)((b / 4) * 128 + h * 64 + (b % 4) * 16) : (size_t)(b * 32 + h * 16);
}

#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__F16C__)
static inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

static inline __attribute__((always_inline)) float dot_q4(const void *w, int is_q4_1, const rp_q8_row *a, int64_t nb) {
    const __m512i idx = _mm512_set_epi64(3, 2, 3, 2, 1, 0, 1, 0);
    const __m512i shift = _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0);
    const __m512i low = _mm512_set1_epi8(0x0f);
    __m512 acc = _mm512_setzero_ps(), acc2 = _mm512_setzero_ps();
    float off = 0, off2 = 0;
    size_t bsz = is_q4_1 ? sizeof(rp_block_q4_1) : sizeof(rp_block_q4_0);
    size_t qoff = is_q4_1 ? 4 : 2;
    const uint8_t *p = w;
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2, p += 2 * bsz) {
        __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(p + qoff))),
                                            _mm_loadu_si128((const __m128i *)(p + bsz + qoff)), 1);
        __m512i wq = _mm512_and_si512(_mm512_srlv_epi64(_mm512_permutexvar_epi64(idx, _mm512_castsi256_si512(v)), shift), low);
        __m512i aq = _mm512_loadu_si512((const void *)(a->q + b * 32));
        __m512i dp = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wq, aq);
        uint16_t d0, d1;
        memcpy(&d0, p, 2);
        memcpy(&d1, p + bsz, 2);
        float w0 = h2f(d0), w1 = h2f(d1);
        __m512 sc = _mm512_mask_blend_ps(0xff00, _mm512_set1_ps(w0 * a->d[b]), _mm512_set1_ps(w1 * a->d[b + 1]));
        if (b & 2) acc2 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dp), sc, acc2);
        else acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dp), sc, acc);
        if (is_q4_1) {
            uint16_t m0, m1;
            memcpy(&m0, p + 2, 2);
            memcpy(&m1, p + bsz + 2, 2);
            off += h2f(m0) * a->s[b];
            off2 += h2f(m1) * a->s[b + 1];
        } else {
            off -= 8.0f * w0 * a->s[b];
            off2 -= 8.0f * w1 * a->s[b + 1];
        }
    }
    float r = _mm512_reduce_add_ps(_mm512_add_ps(acc, acc2)) + off + off2;
    if (b < nb) {   /* odd last block */
        rp_q8_row tail = { a->d + b, a->s + b, a->q + b * 32, 1 };
        r += rp_dot_q8_ref(is_q4_1 ? RP_Q4_1 : RP_Q4_0, p, &tail, 32);
    }
    return r;
}

static float dot_q8_0(const void *w, const rp_q8_row *a, int64_t nb) {
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    __m512 acc = _mm512_setzero_ps();
    float off = 0;
    const rp_block_q8_0 *blk = w;
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        __m512i wq = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)blk[b].qs)),
                                        _mm256_loadu_si256((const __m256i *)blk[b + 1].qs), 1);
        __m512i aq = _mm512_loadu_si512((const void *)(a->q + b * 32));
        __m512i dp = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_xor_si512(wq, bias), aq);
        float w0 = h2f(blk[b].d), w1 = h2f(blk[b + 1].d);
        __m512 sc = _mm512_mask_blend_ps(0xff00, _mm512_set1_ps(w0 * a->d[b]), _mm512_set1_ps(w1 * a->d[b + 1]));
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dp), sc, acc);
        off -= 128.0f * (w0 * a->s[b] + w1 * a->s[b + 1]);
    }
    float r = _mm512_reduce_add_ps(acc) + off;
    if (b < nb) {
        rp_q8_row tail = { a->d + b, a->s + b, a->q + b * 32, 1 };
        r += rp_dot_q8_ref(RP_Q8_0, &blk[b], &tail, 32);
    }
    return r;
}

/* Dot product of a weight row with int8 activations (VNNI). */
float rp_qdot_row(rp_dtype t, const void *w, const rp_q8_row *a, int64_t n) {
    int64_t nb = n / 32;
    switch (t) {
    case RP_Q4_0: return dot_q4(w, 0, a, nb);
    case RP_Q4_1: return dot_q4(w, 1, a, nb);
    case RP_Q8_0: return dot_q8_0(w, a, nb);
    default: return rp_dot_q8_ref(t, w, a, n);
    }
}
/* q4 row · 24-bit activations: per pair of blocks, three vpdpbusd combined Horner-style in int32
 * (|Σ| < 5.1e8, no overflow), then one scale per block as in dot_q4. */
static inline __attribute__((always_inline)) float q24dot_q4(const void *w, int is_q4_1, const rp_q24_row *a, int64_t nb) {
    const __m512i idx = _mm512_set_epi64(3, 2, 3, 2, 1, 0, 1, 0);
    const __m512i shift = _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0);
    const __m512i low = _mm512_set1_epi8(0x0f);
    __m512 acc = _mm512_setzero_ps(), acc2 = _mm512_setzero_ps();
    float off = 0, off2 = 0;
    const size_t bsz = is_q4_1 ? sizeof(rp_block_q4_1) : sizeof(rp_block_q4_0), qoff = is_q4_1 ? 4 : 2;
    const uint8_t *p = w;
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2, p += 2 * bsz) {
        __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(p + qoff))),
                                            _mm_loadu_si128((const __m128i *)(p + bsz + qoff)), 1);
        __m512i wq = _mm512_and_si512(_mm512_srlv_epi64(_mm512_permutexvar_epi64(idx, _mm512_castsi256_si512(v)), shift), low);
        __m512i dp = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wq, _mm512_loadu_si512((const void *)(a->x2 + b * 32)));
        dp = _mm512_dpbusd_epi32(_mm512_slli_epi32(dp, 8), _mm512_loadu_si512((const void *)(a->x1 + b * 32)), wq);
        dp = _mm512_dpbusd_epi32(_mm512_slli_epi32(dp, 8), _mm512_loadu_si512((const void *)(a->x0 + b * 32)), wq);
        uint16_t d0, d1;
        memcpy(&d0, p, 2);
        memcpy(&d1, p + bsz, 2);
        float w0 = h2f(d0), w1 = h2f(d1);
        __m512 sc = _mm512_mask_blend_ps(0xff00, _mm512_set1_ps(w0 * a->d[b]), _mm512_set1_ps(w1 * a->d[b + 1]));
        if (b & 2) acc2 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dp), sc, acc2);
        else acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dp), sc, acc);
        if (is_q4_1) {
            uint16_t m0, m1;
            memcpy(&m0, p + 2, 2);
            memcpy(&m1, p + bsz + 2, 2);
            off += h2f(m0) * a->xsum[b];
            off2 += h2f(m1) * a->xsum[b + 1];
        } else {
            off -= 8.0f * w0 * a->xsum[b];
            off2 -= 8.0f * w1 * a->xsum[b + 1];
        }
    }
    float r = _mm512_reduce_add_ps(_mm512_add_ps(acc, acc2)) + off + off2;
    for (; b < nb; b++, p += bsz) {   /* odd last block: from the limbs, in plain C */
        float buf[32];
        rp_dequantize_row(is_q4_1 ? RP_Q4_1 : RP_Q4_0, p, buf, 32);
        for (int i = 0; i < 32; i++) {
            int32_t X = (int32_t)a->x2[b * 32 + i] * 65536 + (int32_t)a->x1[b * 32 + i] * 256 + a->x0[b * 32 + i];
            r += buf[i] * (float)X * a->d[b];
        }
    }
    return r;
}

/* q8_0 row · 24-bit activations: signed weights, so the top limb (signed) multiplies w + 128 (the bias
 * removed through Σ x2), and the two upper stages are combined in int32 (|Σ| < 3.4e7) before the low one
 * is added in float (a third shift could overflow). */
static float q24dot_q8_0(const rp_block_q8_0 *blk, const rp_q24_row *a, int64_t nb) {
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    __m512 acc = _mm512_setzero_ps(), acc2 = _mm512_setzero_ps();
    float off = 0, off2 = 0;
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        __m512i wq = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)blk[b].qs)),
                                        _mm256_loadu_si256((const __m256i *)blk[b + 1].qs), 1);
        __m512i hi = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_xor_si512(wq, bias), _mm512_loadu_si512((const void *)(a->x2 + b * 32)));
        hi = _mm512_dpbusd_epi32(_mm512_slli_epi32(hi, 8), _mm512_loadu_si512((const void *)(a->x1 + b * 32)), wq);
        __m512i lo = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_loadu_si512((const void *)(a->x0 + b * 32)), wq);
        __m512 t = _mm512_fmadd_ps(_mm512_cvtepi32_ps(hi), _mm512_set1_ps(256.0f), _mm512_cvtepi32_ps(lo));
        float s0 = h2f(blk[b].d) * a->d[b], s1 = h2f(blk[b + 1].d) * a->d[b + 1];
        __m512 sc = _mm512_mask_blend_ps(0xff00, _mm512_set1_ps(s0), _mm512_set1_ps(s1));
        if (b & 2) acc2 = _mm512_fmadd_ps(t, sc, acc2);
        else acc = _mm512_fmadd_ps(t, sc, acc);
        off -= s0 * 8388608.0f * a->x2sum[b];        /* 128 · 65536 · Σ x2 */
        off2 -= s1 * 8388608.0f * a->x2sum[b + 1];
    }
    float r = _mm512_reduce_add_ps(_mm512_add_ps(acc, acc2)) + off + off2;
    for (; b < nb; b++) {
        float d = h2f(blk[b].d) * a->d[b];
        for (int i = 0; i < 32; i++)
            r += (float)blk[b].qs[i] * (float)((int32_t)a->x2[b * 32 + i] * 65536 + (int32_t)a->x1[b * 32 + i] * 256 + a->x0[b * 32 + i]) * d;
    }
    return r;
}

/* Whether the 24-bit integer dot handles t. */
int rp_q24dot_supported(rp_dtype t) { return t == RP_Q4_0 || t == RP_Q4_1 || t == RP_Q8_0; }

/* Dot product with 24-bit activations (VNNI). */
float rp_q24dot_row(rp_dtype t, const void *w, const rp_q24_row *a, int64_t n) {
    if (t == RP_Q8_0) return q24dot_q8_0(w, a, n / 32);
    return t == RP_Q4_1 ? q24dot_q4(w, 1, a, n / 32) : q24dot_q4(w, 0, a, n / 32);
}

/* 24-bit activations, 16 values at a time; grouped: the limb order of the decode layout (qdot_packed.c). */
static void quantize_q24(const float *x, int64_t n, rp_q24_row *r, int grouped) {
    int64_t nb = n / 32;
    r->nb = nb;
    const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    const __m512i lim = _mm512_set1_epi32(8388607), nlim = _mm512_set1_epi32(-8388607), byte = _mm512_set1_epi32(255);
    for (int64_t b = 0; b < nb; b++, x += 32) {
        __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
        float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_and_ps(v0, absmask), _mm512_and_ps(v1, absmask)));
        float d = amax / 8388607.0f, id = amax != 0 ? 8388607.0f / amax : 0.0f;
        r->d[b] = d;
        r->xsum[b] = _mm512_reduce_add_ps(_mm512_add_ps(v0, v1));
        int x2sum = 0;
        for (int h = 0; h < 2; h++) {
            __m512i X = _mm512_cvtps_epi32(_mm512_mul_ps(h ? v1 : v0, _mm512_set1_ps(id)));
            X = _mm512_max_epi32(_mm512_min_epi32(X, lim), nlim);
            x2sum += _mm512_reduce_add_epi32(_mm512_srai_epi32(X, 16));
            size_t o = q24_off(b, h, grouped);
            _mm_storeu_si128((__m128i *)(r->x0 + o), _mm512_cvtepi32_epi8(_mm512_and_si512(X, byte)));
            _mm_storeu_si128((__m128i *)(r->x1 + o), _mm512_cvtepi32_epi8(_mm512_and_si512(_mm512_srai_epi32(X, 8), byte)));
            _mm_storeu_si128((__m128i *)(r->x2 + o), _mm512_cvtepi32_epi8(_mm512_srai_epi32(X, 16)));
        }
        r->x2sum[b] = (float)x2sum;
    }
}
#else
/* Whether the 24-bit integer dot is available (not in this build). */
int rp_q24dot_supported(rp_dtype t) { (void)t; return 0; }
/* Not available without AVX-512 VNNI: plain C from the limbs. */
float rp_q24dot_row(rp_dtype t, const void *w, const rp_q24_row *a, int64_t n) {
    float buf[32], r = 0;
    size_t bsz = rp_dtype_block_bytes(t);
    for (int64_t b = 0; b < n / 32; b++) {
        rp_dequantize_row(t, (const char *)w + b * bsz, buf, 32);
        for (int i = 0; i < 32; i++)
            r += buf[i] * (float)((int32_t)a->x2[b * 32 + i] * 65536 + (int32_t)a->x1[b * 32 + i] * 256 + a->x0[b * 32 + i]) * a->d[b];
    }
    return r;
}
/* 24-bit activations (plain C); grouped: the limb order of the decode layout (qdot_packed.c). */
static void quantize_q24(const float *x, int64_t n, rp_q24_row *r, int grouped) {
    r->nb = n / 32;
    for (int64_t b = 0; b < r->nb; b++, x += 32) {
        float amax = 0, sum = 0;
        for (int i = 0; i < 32; i++) { amax = fmaxf(amax, fabsf(x[i])); sum += x[i]; }
        float d = amax / 8388607.0f, id = amax != 0 ? 8388607.0f / amax : 0.0f;
        r->d[b] = d;
        r->xsum[b] = sum;
        int x2sum = 0;
        for (int i = 0; i < 32; i++) {
            long X = lrintf(x[i] * id);
            X = X > 8388607 ? 8388607 : X < -8388607 ? -8388607 : X;
            size_t o = q24_off(b, i / 16, grouped) + (size_t)(i % 16);
            r->x0[o] = (uint8_t)(X & 255);
            r->x1[o] = (uint8_t)((X >> 8) & 255);
            r->x2[o] = (int8_t)(X >> 16);
            x2sum += r->x2[o];
        }
        r->x2sum[b] = (float)x2sum;
    }
}
#endif
#if !(defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__F16C__)) && !defined(AVX2_FAST)
/* Dot product of a weight row with int8 activations (plain C). */
float rp_qdot_row(rp_dtype t, const void *w, const rp_q8_row *a, int64_t n) { return rp_dot_q8_ref(t, w, a, n); }
#endif

/* Whether rp_fdot_row handles t. */
int rp_fdot_supported(rp_dtype t) { return t == RP_Q4_0 || t == RP_Q4_1 || t == RP_Q8_0 || t == RP_F16 || t == RP_BF16 || t == RP_F32; }

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__F16C__)
#define FDOT_SIMD 1
/* q4 row · x: per block d · Σ q·x (+ m · Σx for q4_1, - 8d · Σx for q4_0). The 16 nibble bytes are
 * broadcast to the four 128-bit lanes and spread to one byte per 32-bit lane with an in-lane vpshufb
 * (cheaper than cross-lane widening on Zen 4); byte & 15 gives elements 0..15, byte >> 4 elements 16..31. */
static inline __attribute__((always_inline)) float fdot_q4(const uint8_t *p, int is_q4_1, const float *x, const float *xsum, int64_t nb) {
    const size_t bsz = is_q4_1 ? sizeof(rp_block_q4_1) : sizeof(rp_block_q4_0), qoff = is_q4_1 ? 4 : 2;
    const __m512i spread = _mm512_set_epi32(
        (int)0x8080800f, (int)0x8080800e, (int)0x8080800d, (int)0x8080800c, (int)0x8080800b, (int)0x8080800a, (int)0x80808009, (int)0x80808008,
        (int)0x80808007, (int)0x80808006, (int)0x80808005, (int)0x80808004, (int)0x80808003, (int)0x80808002, (int)0x80808001, (int)0x80808000);
    const __m512i low = _mm512_set1_epi32(0x0f);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    float off0 = 0, off1 = 0;
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2, p += 2 * bsz, x += 64) {
        __m512i q0 = _mm512_shuffle_epi8(_mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(p + qoff))), spread);
        __m512i q1 = _mm512_shuffle_epi8(_mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(p + bsz + qoff))), spread);
        __m512 t0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_and_si512(q0, low)), _mm512_loadu_ps(x));
        __m512 t1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_and_si512(q1, low)), _mm512_loadu_ps(x + 32));
        t0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(q0, 4)), _mm512_loadu_ps(x + 16), t0);
        t1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(q1, 4)), _mm512_loadu_ps(x + 48), t1);
        uint16_t dh0, dh1;
        memcpy(&dh0, p, 2);
        memcpy(&dh1, p + bsz, 2);
        float d0 = _cvtsh_ss(dh0), d1 = _cvtsh_ss(dh1);
        acc0 = _mm512_fmadd_ps(t0, _mm512_set1_ps(d0), acc0);
        acc1 = _mm512_fmadd_ps(t1, _mm512_set1_ps(d1), acc1);
        if (is_q4_1) {
            uint16_t m0, m1;
            memcpy(&m0, p + 2, 2);
            memcpy(&m1, p + bsz + 2, 2);
            off0 += _cvtsh_ss(m0) * xsum[b];
            off1 += _cvtsh_ss(m1) * xsum[b + 1];
        } else {
            off0 -= 8.0f * d0 * xsum[b];
            off1 -= 8.0f * d1 * xsum[b + 1];
        }
    }
    float r = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) + off0 + off1;
    for (; b < nb; b++, p += bsz, x += 32) {   /* odd last block */
        float buf[32];
        rp_dequantize_row(is_q4_1 ? RP_Q4_1 : RP_Q4_0, p, buf, 32);
        for (int i = 0; i < 32; i++) r += buf[i] * x[i];
    }
    return r;
}

/* q8_0 row · x: each 16-byte half of a block broadcast to the four 128-bit lanes, one byte moved to the top
 * of each 32-bit lane by vpshufb and sign-extended by an arithmetic shift (in-lane work only). */
static float fdot_q8_0(const rp_block_q8_0 *blk, const float *x, int64_t nb) {
    const __m512i top = _mm512_set_epi32(
        0x0f808080, 0x0e808080, 0x0d808080, 0x0c808080, 0x0b808080, 0x0a808080, 0x09808080, 0x08808080,
        0x07808080, 0x06808080, 0x05808080, 0x04808080, 0x03808080, 0x02808080, 0x01808080, 0x00808080);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++, x += 32) {
        __m512i lo = _mm512_srai_epi32(_mm512_shuffle_epi8(_mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)blk[b].qs)), top), 24);
        __m512i hi = _mm512_srai_epi32(_mm512_shuffle_epi8(_mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(blk[b].qs + 16))), top), 24);
        __m512 t = _mm512_fmadd_ps(_mm512_cvtepi32_ps(hi), _mm512_loadu_ps(x + 16), _mm512_mul_ps(_mm512_cvtepi32_ps(lo), _mm512_loadu_ps(x)));
        __m512 d = _mm512_set1_ps(_cvtsh_ss(blk[b].d));
        if (b & 1) acc1 = _mm512_fmadd_ps(t, d, acc1);
        else acc0 = _mm512_fmadd_ps(t, d, acc0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

static float fdot_half(const uint16_t *h, int bf16, const float *x, int64_t n) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(h + i)), b = _mm256_loadu_si256((const __m256i *)(h + i + 16));
        __m512 fa = bf16 ? _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(a), 16)) : _mm512_cvtph_ps(a);
        __m512 fb = bf16 ? _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(b), 16)) : _mm512_cvtph_ps(b);
        acc0 = _mm512_fmadd_ps(fa, _mm512_loadu_ps(x + i), acc0);
        acc1 = _mm512_fmadd_ps(fb, _mm512_loadu_ps(x + i + 16), acc1);
    }
    float r = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
    for (; i < n; i++) r += (bf16 ? rp_bf16_to_f32(h[i]) : rp_f16_to_f32(h[i])) * x[i];
    return r;
}
#elif defined(AVX2_FAST)
#define FDOT_SIMD 1
static inline float h2f(const void *p) { uint16_t h; memcpy(&h, p, 2); return _cvtsh_ss(h); }

/* The 32 weights of a q4 block as f32 before scale and offset (v[k]: elements 8k .. 8k+8): the 16 nibble
 * bytes broadcast to both 128-bit lanes and spread to one byte per 32-bit lane by in-lane vpshufb (bytes
 * 0..7, then 8..15); & 15 gives elements 0..15, >> 4 elements 16..31 (as the AVX-512 fdot_q4 does). */
static inline __attribute__((always_inline)) void q4_block_ps(const uint8_t *qs, __m256 v[4]) {
    const __m256i spread0 = _mm256_setr_epi32((int)0x80808000, (int)0x80808001, (int)0x80808002, (int)0x80808003,
                                              (int)0x80808004, (int)0x80808005, (int)0x80808006, (int)0x80808007);
    const __m256i spread1 = _mm256_add_epi32(spread0, _mm256_set1_epi32(8)), low = _mm256_set1_epi32(0x0f);
    __m256i q = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    __m256i a = _mm256_shuffle_epi8(q, spread0), b = _mm256_shuffle_epi8(q, spread1);
    v[0] = _mm256_cvtepi32_ps(_mm256_and_si256(a, low));
    v[1] = _mm256_cvtepi32_ps(_mm256_and_si256(b, low));
    v[2] = _mm256_cvtepi32_ps(_mm256_srli_epi32(a, 4));
    v[3] = _mm256_cvtepi32_ps(_mm256_srli_epi32(b, 4));
}

/* The 32 weights of a q8_0 block as f32 before scale (v[k]: elements 8k .. 8k+8, sign-extended from memory). */
static inline __attribute__((always_inline)) void q8_block_ps(const int8_t *qs, __m256 v[4]) {
    v[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)qs)));   /* unrolled: a loop */
    v[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(qs + 8))));   /* kept v on the stack */
    v[2] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(qs + 16))));
    v[3] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(qs + 24))));
}

/* 8 halves (f16, or bf16: the top half of an f32) as f32. */
static inline __attribute__((always_inline)) __m256 half8_ps(const uint16_t *h, int bf16) {
    __m128i v = _mm_loadu_si128((const __m128i *)h);
    return bf16 ? _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16)) : _mm256_cvtph_ps(v);
}

/* Σ v[k] · x[8k .. 8k+8) over a block of 32: one chain (blocks overlap out of order; a second chain per
 * block made GCC spill an accumulator to the stack in the q4 loop). */
static inline __attribute__((always_inline)) __m256 block_dot(const __m256 v[4], const float *x) {
    __m256 t = _mm256_mul_ps(v[0], _mm256_loadu_ps(x));
    t = _mm256_fmadd_ps(v[1], _mm256_loadu_ps(x + 8), t);
    t = _mm256_fmadd_ps(v[2], _mm256_loadu_ps(x + 16), t);
    return _mm256_fmadd_ps(v[3], _mm256_loadu_ps(x + 24), t);
}

/* Scales of blocks b and b+1 of a q4 row as f32 lanes [d0, m0, d1, m1] (m = 0 for q4_0, whose 16-bit
 * loads never read the nibbles): one conversion for both headers. */
static inline __attribute__((always_inline)) __m128 q4_pair_scales(const uint8_t *p, size_t bsz, int is_q4_1) {
    uint32_t h0 = 0, h1 = 0;
    memcpy(&h0, p, is_q4_1 ? 4 : 2);
    memcpy(&h1, p + bsz, is_q4_1 ? 4 : 2);
    return _mm_cvtph_ps(_mm_insert_epi32(_mm_cvtsi32_si128((int)h0), (int)h1, 1));
}

/* q4 row · x: per block d · Σ q·x (+ m · Σx for q4_1, - 8d · Σx for q4_0); even and odd blocks in
 * separate accumulators (two dependency chains), the offsets of a pair in one 4-lane fma. */
static inline __attribute__((always_inline)) float fdot_q4(const uint8_t *p, int is_q4_1, const float *x, const float *xsum, int64_t nb) {
    const size_t bsz = is_q4_1 ? sizeof(rp_block_q4_1) : sizeof(rp_block_q4_0), qoff = is_q4_1 ? 4 : 2;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    __m128 off = _mm_setzero_ps();   /* lanes 1, 3: Σ m·Σx (q4_1); lanes 0, 2: Σ d·Σx (q4_0) */
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2, p += 2 * bsz, x += 64) {
        __m256 v0[4], v1[4];
        q4_block_ps(p + qoff, v0);
        q4_block_ps(p + bsz + qoff, v1);
        __m128 hd = q4_pair_scales(p, bsz, is_q4_1);
        acc0 = _mm256_fmadd_ps(block_dot(v0, x), _mm256_broadcastss_ps(hd), acc0);
        acc1 = _mm256_fmadd_ps(block_dot(v1, x + 32), _mm256_permutevar8x32_ps(_mm256_castps128_ps256(hd), _mm256_set1_epi32(2)), acc1);
        __m128 xs = _mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)(xsum + b)));
        off = _mm_fmadd_ps(hd, is_q4_1 ? _mm_unpacklo_ps(_mm_setzero_ps(), xs) : _mm_unpacklo_ps(xs, _mm_setzero_ps()), off);
    }
    off = _mm_add_ps(off, _mm_movehl_ps(off, off));
    float r = is_q4_1 ? _mm_cvtss_f32(_mm_movehdup_ps(off)) : -8.0f * _mm_cvtss_f32(off);
    if (b < nb) {   /* odd last block */
        __m256 v[4];
        q4_block_ps(p + qoff, v);
        float d = h2f(p);
        acc0 = _mm256_fmadd_ps(block_dot(v, x), _mm256_set1_ps(d), acc0);
        r += (is_q4_1 ? h2f(p + 2) : -8.0f * d) * xsum[b];
    }
    return rp_hsum8_ps(_mm256_add_ps(acc0, acc1)) + r;
}

/* q8_0 row · x: per block d · Σ q·x, even and odd blocks in separate accumulators. */
static float fdot_q8_0(const rp_block_q8_0 *blk, const float *x, int64_t nb) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2, x += 64) {
        __m256 v0[4], v1[4];
        q8_block_ps(blk[b].qs, v0);
        q8_block_ps(blk[b + 1].qs, v1);
        acc0 = _mm256_fmadd_ps(block_dot(v0, x), _mm256_set1_ps(_cvtsh_ss(blk[b].d)), acc0);
        acc1 = _mm256_fmadd_ps(block_dot(v1, x + 32), _mm256_set1_ps(_cvtsh_ss(blk[b + 1].d)), acc1);
    }
    if (b < nb) {
        __m256 v[4];
        q8_block_ps(blk[b].qs, v);
        acc0 = _mm256_fmadd_ps(block_dot(v, x), _mm256_set1_ps(_cvtsh_ss(blk[b].d)), acc0);
    }
    return rp_hsum8_ps(_mm256_add_ps(acc0, acc1));
}

static float fdot_half(const uint16_t *h, int bf16, const float *x, int64_t n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(half8_ps(h + i, bf16), _mm256_loadu_ps(x + i), acc0);
        acc1 = _mm256_fmadd_ps(half8_ps(h + i + 8, bf16), _mm256_loadu_ps(x + i + 8), acc1);
    }
    for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(half8_ps(h + i, bf16), _mm256_loadu_ps(x + i), acc0);
    float r = rp_hsum8_ps(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) r += (bf16 ? rp_bf16_to_f32(h[i]) : rp_f16_to_f32(h[i])) * x[i];
    return r;
}

/* Σ u·s over 32 byte pairs (u unsigned, s signed) as 8 int32 sums: vpmaddubsw adds pairs into int16, which
 * cannot saturate here (|u| <= 128 and |s| <= 127 give at most 32512), vpmaddwd pairs those into int32. */
static inline __m256i dot_u8s8(__m256i u, __m256i s) { return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)); }

/* Integer sums of one q4 block with its int8 activations: nibbles in the activation's element order (the
 * 16 low nibbles, then the 16 high ones). */
static inline __attribute__((always_inline)) __m256i qdot_q4_block(const uint8_t *qs, const int8_t *aq) {
    const __m128i low = _mm_set1_epi8(0x0f);
    __m128i q = _mm_loadu_si128((const __m128i *)qs);
    __m256i w = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), low), _mm_and_si128(q, low));
    return dot_u8s8(w, _mm256_loadu_si256((const __m256i *)aq));
}

/* q4 row · int8 activations, per block d_w · d_a · Σ q·qa plus the offset (m · s_a, or -8 d_w · s_a), two
 * blocks per step in separate accumulators. */
static inline __attribute__((always_inline)) float qdot_q4(const uint8_t *p, int is_q4_1, const rp_q8_row *a, int64_t nb) {
    const size_t bsz = is_q4_1 ? sizeof(rp_block_q4_1) : sizeof(rp_block_q4_0), qoff = is_q4_1 ? 4 : 2;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    float off0 = 0, off1 = 0;
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2, p += 2 * bsz) {
        __m256i s0 = qdot_q4_block(p + qoff, a->q + b * 32), s1 = qdot_q4_block(p + bsz + qoff, a->q + b * 32 + 32);
        float d0 = h2f(p), d1 = h2f(p + bsz);
        acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s0), _mm256_set1_ps(d0 * a->d[b]), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s1), _mm256_set1_ps(d1 * a->d[b + 1]), acc1);
        off0 += (is_q4_1 ? h2f(p + 2) : -8.0f * d0) * a->s[b];
        off1 += (is_q4_1 ? h2f(p + bsz + 2) : -8.0f * d1) * a->s[b + 1];
    }
    if (b < nb) {   /* odd last block */
        float d = h2f(p);
        acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(qdot_q4_block(p + qoff, a->q + b * 32)), _mm256_set1_ps(d * a->d[b]), acc0);
        off0 += (is_q4_1 ? h2f(p + 2) : -8.0f * d) * a->s[b];
    }
    return rp_hsum8_ps(_mm256_add_ps(acc0, acc1)) + off0 + off1;
}

/* q8_0 row · int8 activations: signed × signed through vpmaddubsw as |w| × (a with w's sign). */
static float qdot_q8_0(const rp_block_q8_0 *blk, const rp_q8_row *a, int64_t nb) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i w = _mm256_loadu_si256((const __m256i *)blk[b].qs), x = _mm256_loadu_si256((const __m256i *)(a->q + b * 32));
        __m256 t = _mm256_cvtepi32_ps(dot_u8s8(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w)));
        __m256 sc = _mm256_set1_ps(_cvtsh_ss(blk[b].d) * a->d[b]);
        if (b & 1) acc1 = _mm256_fmadd_ps(t, sc, acc1);
        else acc0 = _mm256_fmadd_ps(t, sc, acc0);
    }
    return rp_hsum8_ps(_mm256_add_ps(acc0, acc1));
}

/* Dot product of a weight row with int8 activations (AVX2: vpmaddubsw + vpmaddwd, llama.cpp's method). */
float rp_qdot_row(rp_dtype t, const void *w, const rp_q8_row *a, int64_t n) {
    switch (t) {
    case RP_Q4_0: return qdot_q4(w, 0, a, n / 32);
    case RP_Q4_1: return qdot_q4(w, 1, a, n / 32);
    case RP_Q8_0: return qdot_q8_0(w, a, n / 32);
    default: return rp_dot_q8_ref(t, w, a, n);
    }
}
#endif

/* Exact-weight dot product (see qdot.h). */
float rp_fdot_row(rp_dtype t, const void *w, const float *x, const float *xsum, int64_t n) {
#if defined(FDOT_SIMD)
    switch (t) {
    case RP_Q4_0: return fdot_q4(w, 0, x, xsum, n / 32);
    case RP_Q4_1: return fdot_q4(w, 1, x, xsum, n / 32);
    case RP_Q8_0: return fdot_q8_0(w, x, n / 32);
    case RP_F16: return fdot_half(w, 0, x, n);
    case RP_BF16: return fdot_half(w, 1, x, n);
#if defined(AVX2_FAST)
    case RP_F32: return rp_vdot(w, x, n);
#endif
    default: break;
    }
#endif
    float buf[256], acc = 0;
    int64_t bs = t == RP_F32 ? n : 256;
    if (t == RP_F32) { const float *f = w; for (int64_t i = 0; i < n; i++) acc += f[i] * x[i]; return acc; }
    (void)xsum;
    for (int64_t i = 0; i < n; i += bs) {   /* plain C: dequantize 256 at a time */
        int64_t len = n - i < bs ? n - i : bs;
        rp_dequantize_row(t, (const char *)w + rp_dtype_row_bytes(t, i), buf, len);
        for (int64_t k = 0; k < len; k++) acc += buf[k] * x[i + k];
    }
    return acc;
}

#if defined(__AVX512F__) && defined(__F16C__)
/* Activation quantization, 32 values at a time. */
void rp_quantize_row_q8_fast(const float *x, int64_t n, rp_q8_row *r) {
    int64_t nb = n / 32;
    r->nb = nb;
    const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    for (int64_t b = 0; b < nb; b++, x += 32) {
        __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
        float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_and_ps(v0, absmask), _mm512_and_ps(v1, absmask)));
        float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
        __m512 vid = _mm512_set1_ps(id);
        __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, vid)), q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, vid));
        _mm_storeu_si128((__m128i *)(r->q + b * 32), _mm512_cvtsepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(r->q + b * 32 + 16), _mm512_cvtsepi32_epi8(q1));
        r->d[b] = d;
        r->s[b] = d * (float)_mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    }
}

/* Row dequantization with SIMD for the 32-element block types and f16. */
void rp_dequantize_row_fast(rp_dtype t, const void *src, float *y, int64_t n) {
    int64_t nb = n / 32;
    if (t == RP_Q4_1 || t == RP_Q4_0) {
        const uint8_t *p = src;
        size_t bsz = t == RP_Q4_1 ? sizeof(rp_block_q4_1) : sizeof(rp_block_q4_0), qoff = t == RP_Q4_1 ? 4 : 2;
        for (int64_t b = 0; b < nb; b++, p += bsz, y += 32) {
            uint16_t dh, mh = 0;
            memcpy(&dh, p, 2);
            if (t == RP_Q4_1) memcpy(&mh, p + 2, 2);
            __m512 d = _mm512_set1_ps(_cvtsh_ss(dh));
            __m512 m = t == RP_Q4_1 ? _mm512_set1_ps(_cvtsh_ss(mh)) : _mm512_mul_ps(d, _mm512_set1_ps(-8.0f));
            __m128i q = _mm_loadu_si128((const __m128i *)(p + qoff));
            __m128i lo = _mm_and_si128(q, _mm_set1_epi8(0x0f)), hi = _mm_and_si128(_mm_srli_epi16(q, 4), _mm_set1_epi8(0x0f));
            _mm512_storeu_ps(y, _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(lo)), d, m));
            _mm512_storeu_ps(y + 16, _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(hi)), d, m));
        }
        return;
    }
    if (t == RP_Q8_0) {
        const rp_block_q8_0 *blk = src;
        for (int64_t b = 0; b < nb; b++, y += 32) {
            __m512 d = _mm512_set1_ps(_cvtsh_ss(blk[b].d));
            _mm512_storeu_ps(y, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)blk[b].qs))), d));
            _mm512_storeu_ps(y + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk[b].qs + 16)))), d));
        }
        return;
    }
    if (t == RP_F16) {
        const uint16_t *h = src;
        int64_t i = 0;
        for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(h + i))));
        for (; i < n; i++) y[i] = rp_f16_to_f32(h[i]);
        return;
    }
    if (t == RP_BF16) {   /* bf16 is the top half of an f32: widen and shift */
        const uint16_t *h = src;
        int64_t i = 0;
        for (; i + 16 <= n; i += 16)
            _mm512_storeu_ps(y + i, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(h + i))), 16)));
        for (; i < n; i++) y[i] = rp_bf16_to_f32(h[i]);
        return;
    }
    rp_dequantize_row(t, src, y, n);
}
#elif defined(AVX2_FAST)
/* Activation quantization, 32 values at a time: 8-lane rounding (RNE, as lrintf), then saturating packs
 * whose lane interleave one vpermd undoes. */
void rp_quantize_row_q8_fast(const float *x, int64_t n, rp_q8_row *r) {
    int64_t nb = n / 32;
    r->nb = nb;
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t b = 0; b < nb; b++, x += 32) {
        __m256 v[4], mx = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) mx = _mm256_max_ps(mx, _mm256_and_ps(v[k] = _mm256_loadu_ps(x + 8 * k), absmask));
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        float amax = _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
        float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
        __m256 vid = _mm256_set1_ps(id);
        __m256i q[4];
        for (int k = 0; k < 4; k++) q[k] = _mm256_cvtps_epi32(_mm256_mul_ps(v[k], vid));
        __m256i s = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        _mm256_storeu_si256((__m256i *)(r->q + b * 32), _mm256_permutevar8x32_epi32(p, order));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
        r->d[b] = d;
        r->s[b] = d * (float)_mm_cvtsi128_si32(s4);
    }
}

/* Row dequantization in 8-lane AVX2 for the 32-element block types, f16 and bf16 (the block helpers of
 * rp_fdot_row, so both paths read the same weights). */
void rp_dequantize_row_fast(rp_dtype t, const void *src, float *y, int64_t n) {
    int64_t nb = n / 32;
    if (t == RP_Q4_1 || t == RP_Q4_0) {
        const uint8_t *p = src;
        size_t bsz = t == RP_Q4_1 ? sizeof(rp_block_q4_1) : sizeof(rp_block_q4_0), qoff = t == RP_Q4_1 ? 4 : 2;
        for (int64_t b = 0; b < nb; b++, p += bsz, y += 32) {
            __m256 v[4], d = _mm256_set1_ps(h2f(p));
            __m256 m = t == RP_Q4_1 ? _mm256_set1_ps(h2f(p + 2)) : _mm256_mul_ps(d, _mm256_set1_ps(-8.0f));
            q4_block_ps(p + qoff, v);
            for (int k = 0; k < 4; k++) _mm256_storeu_ps(y + 8 * k, _mm256_fmadd_ps(v[k], d, m));
        }
        return;
    }
    if (t == RP_Q8_0) {
        const rp_block_q8_0 *blk = src;
        for (int64_t b = 0; b < nb; b++, y += 32) {
            __m256 v[4], d = _mm256_set1_ps(_cvtsh_ss(blk[b].d));
            q8_block_ps(blk[b].qs, v);
            for (int k = 0; k < 4; k++) _mm256_storeu_ps(y + 8 * k, _mm256_mul_ps(v[k], d));
        }
        return;
    }
    if (t == RP_F16 || t == RP_BF16) {
        const uint16_t *h = src;
        int bf16 = t == RP_BF16;
        int64_t i = 0;
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, half8_ps(h + i, bf16));
        for (; i < n; i++) y[i] = bf16 ? rp_bf16_to_f32(h[i]) : rp_f16_to_f32(h[i]);
        return;
    }
    rp_dequantize_row(t, src, y, n);
}
#else
/* Activation quantization (plain C). */
void rp_quantize_row_q8_fast(const float *x, int64_t n, rp_q8_row *r) { rp_quantize_row_q8(x, n, r); }
/* Row dequantization (plain C). */
void rp_dequantize_row_fast(rp_dtype t, const void *src, float *y, int64_t n) { rp_dequantize_row(t, src, y, n); }
#endif

/* 24-bit activations in natural limb order. */
void rp_quantize_row_q24(const float *x, int64_t n, rp_q24_row *r) { quantize_q24(x, n, r, 0); }

/* 24-bit activations in grouped limb order, padded with zeros to whole groups of four blocks. */
void rp_quantize_row_q24g(const float *x, int64_t n, rp_q24_row *r) {
    int64_t nb = n / 32, padded = (nb + 3) / 4 * 4;
    for (int64_t b = nb; b < padded; b++) {
        r->d[b] = r->xsum[b] = r->x2sum[b] = 0;
        for (int h = 0; h < 2; h++) {
            size_t o = q24_off(b, h, 1);
            memset(r->x0 + o, 0, 16);
            memset(r->x1 + o, 0, 16);
            memset(r->x2 + o, 0, 16);
        }
    }
    quantize_q24(x, n, r, 1);
}

/* Bytes rp_q24_row_carve needs for a row of n elements (either limb order). */
size_t rp_q24_row_bytes(int64_t n) {
    size_t ng = (size_t)(n / 32 + 3) / 4;
    return 3 * ((16 * ng + 63) & ~(size_t)63) + 3 * 128 * ng;
}

/* Point r's arrays into mem (rp_q24_row_bytes(n) bytes, 64-byte aligned). */
void rp_q24_row_carve(rp_q24_row *r, void *mem, int64_t n) {
    size_t ng = (size_t)(n / 32 + 3) / 4, fb = (16 * ng + 63) & ~(size_t)63;
    char *p = mem;
    r->d = (float *)p;
    r->xsum = (float *)(p + fb);
    r->x2sum = (float *)(p + 2 * fb);
    r->x0 = (uint8_t *)(p + 3 * fb);
    r->x1 = r->x0 + 128 * ng;
    r->x2 = (int8_t *)(r->x1 + 128 * ng);
    r->nb = n / 32;
}
