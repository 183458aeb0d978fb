/* qdot_packed.c: the decode layout of q4_0 / q4_1 / q8_0 weight rows and their dot products with 24-bit
 * activations in the grouped limb order (qdot.h, "Decode layout").
 * Layout of one packed row of K = 32·nb elements (the same byte count as the GGUF row, so ldw is kept):
 *   q4_0 / q4_1: the nb blocks' 16 nibble bytes one after another, then nb f16 scales d, then (q4_1) nb f16
 *                mins m. Byte j of block b holds element j (low nibble) and j + 16 (high nibble), as in GGUF.
 *   q8_0:        per group of four blocks, the four blocks' first 16 bytes, then their last 16 bytes (a
 *                last partial group keeps the same order over its blocks), then nb f16 scales.
 * So 64 weight bytes (4 blocks, one 128-bit lane each) are one aligned-size load, nibbles unpack with one
 * and + one shift + and, and the scales of 4 blocks are one 8-byte load: no per-block scalar work.
 * Grouped activation limbs (rp_quantize_row_q24g) put, per group g of 4 blocks, elements 0..15 of the
 * blocks in bytes [128g, 128g+64) and elements 16..31 in [128g+64, 128g+128), matching the lanes above.
 * Invariants: results equal dot(dequantize(w), x) up to f32 rounding (the integer sums are exact: the
 * bounds are in the comments); the plain-C versions are the reference and are what non-VNNI builds run. */
#include <math.h>
#include <string.h>
#include "tensor/qdot.h"
#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__F16C__)
#include <immintrin.h>
#define HAVE_VNNI 1
#endif
#ifndef PREFETCH
#define PREFETCH 1024   /* bytes ahead of the weight stream the kernels prefetch */
#endif

/* Whether rp_packed_repack has a decode layout for t. */
int rp_packed_supported(rp_dtype t) { return t == RP_Q4_0 || t == RP_Q4_1 || t == RP_Q8_0; }

/* Whether the packed dot runs at VNNI speed here (else it is plain C: only worth using in tests). */
int rp_packed_fast(void) {
#ifdef HAVE_VNNI
    return 1;
#else
    return 0;
#endif
}

/* Repack rows of GGUF blocks into the decode layout (see the file header). */
rp_status rp_packed_repack(rp_dtype t, const void *src, void *dst, int64_t rows, int64_t K, size_t ldw) {
    if (!rp_packed_supported(t)) return rp_fail(RP_ERR_UNSUPPORTED, "repack: no decode layout for %s", rp_dtype_name(t));
    if (K <= 0 || K % 32) return rp_fail(RP_ERR_INVAL, "repack: row length %lld not a multiple of 32", (long long)K);
    int64_t nb = K / 32;
    if (ldw < rp_dtype_row_bytes(t, K)) return rp_fail(RP_ERR_INVAL, "repack: row stride %zu below the row size", ldw);
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *s = (const uint8_t *)src + (size_t)r * ldw;
        uint8_t *d = (uint8_t *)dst + (size_t)r * ldw;
        if (t == RP_Q8_0) {
            const rp_block_q8_0 *blk = (const rp_block_q8_0 *)s;
            uint16_t *dh = (uint16_t *)(d + 32 * nb);
            for (int64_t b = 0; b < nb; b++) {
                int64_t g = b / 4, k = b % 4, in_g = nb - 4 * g < 4 ? nb - 4 * g : 4;
                memcpy(d + 128 * g + 16 * k, blk[b].qs, 16);
                memcpy(d + 128 * g + 16 * in_g + 16 * k, blk[b].qs + 16, 16);
                memcpy(dh + b, &blk[b].d, 2);
            }
        } else {
            size_t bsz = t == RP_Q4_1 ? sizeof(rp_block_q4_1) : sizeof(rp_block_q4_0), qoff = t == RP_Q4_1 ? 4 : 2;
            uint16_t *dh = (uint16_t *)(d + 16 * nb), *mh = dh + nb;
            for (int64_t b = 0; b < nb; b++) {
                memcpy(d + 16 * b, s + b * bsz + qoff, 16);
                memcpy(dh + b, s + b * bsz, 2);
                if (t == RP_Q4_1) memcpy(mh + b, s + b * bsz + 2, 2);
            }
        }
    }
    return RP_OK;
}

/* Element i of a grouped limb array (see rp_quantize_row_q24g). */
static inline size_t gidx(int64_t i) {
    int64_t b = i / 32, j = i % 32;
    return (size_t)((b / 4) * 128 + (j / 16) * 64 + (b % 4) * 16 + j % 16);
}

/* Plain-C packed dot (the reference): weights dequantized from the packed layout, X rebuilt from the limbs. */
float rp_packed_dot_ref(rp_dtype t, const void *w, const rp_q24_row *a, int64_t K) {
    int64_t nb = K / 32;
    const uint8_t *p = w;
    const uint16_t *dh = (const uint16_t *)(p + (t == RP_Q8_0 ? 32 : 16) * nb), *mh = dh + nb;
    float r = 0;
    for (int64_t b = 0; b < nb; b++) {
        float d = rp_f16_to_f32(dh[b]), acc = 0;
        for (int j = 0; j < 32; j++) {
            size_t gi = gidx(b * 32 + j);
            float X = (float)((int32_t)a->x2[gi] * 65536 + (int32_t)a->x1[gi] * 256 + a->x0[gi]);
            float wv;
            if (t == RP_Q8_0) {
                int64_t g = b / 4, in_g = nb - 4 * g < 4 ? nb - 4 * g : 4;
                wv = (float)(int8_t)p[128 * g + (j / 16) * 16 * in_g + 16 * (b % 4) + j % 16] * d;
            } else {
                uint8_t q = p[16 * b + j % 16];
                int nib = j < 16 ? q & 15 : q >> 4;
                wv = t == RP_Q4_1 ? (float)nib * d + rp_f16_to_f32(mh[b]) : (float)(nib - 8) * d;
            }
            acc += wv * X;
        }
        r += acc * a->d[b];
    }
    return r;
}

#ifdef HAVE_VNNI
static inline float hsum128(__m128 v) {
    v = _mm_add_ps(v, _mm_movehl_ps(v, v));
    return _mm_cvtss_f32(_mm_add_ss(v, _mm_movehdup_ps(v)));
}

/* R (1..4) activation rows against one q4 row: the weights are loaded and unpacked once per group for all
 * R rows, and each row's arithmetic is the same whatever R is.
 * Per lane (4 bytes of one block) and group: 8 products w·x2 (|.| <= 15·128), ·256, + 8 w·x1 (<= 15·255),
 * ·256, + 8 w·x0: |Σ| < 1.02e9 < 2^31, so the three stages combine exactly in int32. */
static inline __attribute__((always_inline)) void dot_q4(const uint8_t *w, int is_q4_1, const rp_q24_row *a, int R, int64_t nb,
                                                         float *y, int64_t ldy) {
    const uint16_t *dh = (const uint16_t *)(w + 16 * nb), *mh = dh + nb;
    const __m512i low = _mm512_set1_epi8(0x0f);
    const __m512i spread = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    __m512 acc[4];
    __m128 macc[4];
    for (int r = 0; r < R; r++) { acc[r] = _mm512_setzero_ps(); macc[r] = _mm_setzero_ps(); }
    for (int64_t g = 0; 4 * g < nb; g++) {
        int64_t left = nb - 4 * g;
        __m512i v;
        __m128 dw, mw = _mm_setzero_ps();
        if (left >= 4) {
            v = _mm512_loadu_si512((const void *)(w + 64 * g));
            dw = _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)(dh + 4 * g)));
            if (is_q4_1) mw = _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)(mh + 4 * g)));
        } else {   /* a last partial group: masked loads, absent blocks read as zero weights and scales */
            v = _mm512_maskz_loadu_epi8(((__mmask64)1 << (16 * left)) - 1, w + 64 * g);
            __mmask8 k = (__mmask8)((1u << left) - 1);
            dw = _mm_cvtph_ps(_mm_maskz_loadu_epi16(k, dh + 4 * g));
            if (is_q4_1) mw = _mm_cvtph_ps(_mm_maskz_loadu_epi16(k, mh + 4 * g));
        }
        _mm_prefetch((const char *)w + 64 * g + PREFETCH, _MM_HINT_T0);   /* rows follow each other: stream ahead */
        __m512i wl = _mm512_and_si512(v, low), wh = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
        __m128 m8 = _mm_mul_ps(dw, _mm_set1_ps(8.0f));
        for (int r = 0; r < R; r++) {
            const uint8_t *x0 = a[r].x0 + 128 * g, *x1 = a[r].x1 + 128 * g;
            const int8_t *x2 = a[r].x2 + 128 * g;
            __m512i dp = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wl, _mm512_loadu_si512((const void *)x2));
            dp = _mm512_dpbusd_epi32(dp, wh, _mm512_loadu_si512((const void *)(x2 + 64)));
            dp = _mm512_dpbusd_epi32(_mm512_slli_epi32(dp, 8), _mm512_loadu_si512((const void *)x1), wl);
            dp = _mm512_dpbusd_epi32(dp, _mm512_loadu_si512((const void *)(x1 + 64)), wh);
            dp = _mm512_dpbusd_epi32(_mm512_slli_epi32(dp, 8), _mm512_loadu_si512((const void *)x0), wl);
            dp = _mm512_dpbusd_epi32(dp, _mm512_loadu_si512((const void *)(x0 + 64)), wh);
            __m128 s4 = _mm_mul_ps(dw, _mm_loadu_ps(a[r].d + 4 * g));
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dp), _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(s4)), acc[r]);
            if (is_q4_1) macc[r] = _mm_fmadd_ps(mw, _mm_loadu_ps(a[r].xsum + 4 * g), macc[r]);
            else macc[r] = _mm_fnmadd_ps(m8, _mm_loadu_ps(a[r].xsum + 4 * g), macc[r]);
        }
    }
    for (int r = 0; r < R; r++) y[r * ldy] = _mm512_reduce_add_ps(acc[r]) + hsum128(macc[r]);
}

/* q8_0, R rows as above: weights are signed, so the top limb multiplies w + 128 (bias removed through Σ x2)
 * and only the two upper stages combine in int32 (8·255·128·257 < 2^31); the low stage is added in float. */
static inline __attribute__((always_inline)) void dot_q8(const uint8_t *w, const rp_q24_row *a, int R, int64_t nb, float *y, int64_t ldy) {
    const uint16_t *dh = (const uint16_t *)(w + 32 * nb);
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    const __m512i spread = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    __m512 acc[4];
    __m128 bacc[4];
    for (int r = 0; r < R; r++) { acc[r] = _mm512_setzero_ps(); bacc[r] = _mm_setzero_ps(); }
    for (int64_t g = 0; 4 * g < nb; g++) {
        int64_t left = nb - 4 * g;
        __m512i wl, wh;
        __m128 dw;
        if (left >= 4) {
            wl = _mm512_loadu_si512((const void *)(w + 128 * g));
            wh = _mm512_loadu_si512((const void *)(w + 128 * g + 64));
            dw = _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)(dh + 4 * g)));
        } else {
            __mmask64 k = ((__mmask64)1 << (16 * left)) - 1;
            wl = _mm512_maskz_loadu_epi8(k, w + 128 * g);
            wh = _mm512_maskz_loadu_epi8(k, w + 128 * g + 16 * left);
            dw = _mm_cvtph_ps(_mm_maskz_loadu_epi16((__mmask8)((1u << left) - 1), dh + 4 * g));
        }
        _mm_prefetch((const char *)w + 128 * g + PREFETCH, _MM_HINT_T0);
        _mm_prefetch((const char *)w + 128 * g + 64 + PREFETCH, _MM_HINT_T0);
        __m512i bl = _mm512_xor_si512(wl, bias), bh = _mm512_xor_si512(wh, bias);
        for (int r = 0; r < R; r++) {
            const uint8_t *x0 = a[r].x0 + 128 * g, *x1 = a[r].x1 + 128 * g;
            const int8_t *x2 = a[r].x2 + 128 * g;
            __m512i hi = _mm512_dpbusd_epi32(_mm512_setzero_si512(), bl, _mm512_loadu_si512((const void *)x2));
            hi = _mm512_dpbusd_epi32(hi, bh, _mm512_loadu_si512((const void *)(x2 + 64)));
            hi = _mm512_dpbusd_epi32(_mm512_slli_epi32(hi, 8), _mm512_loadu_si512((const void *)x1), wl);
            hi = _mm512_dpbusd_epi32(hi, _mm512_loadu_si512((const void *)(x1 + 64)), wh);
            __m512i lo = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_loadu_si512((const void *)x0), wl);
            lo = _mm512_dpbusd_epi32(lo, _mm512_loadu_si512((const void *)(x0 + 64)), wh);
            __m512 t = _mm512_fmadd_ps(_mm512_cvtepi32_ps(hi), _mm512_set1_ps(256.0f), _mm512_cvtepi32_ps(lo));
            __m128 s4 = _mm_mul_ps(dw, _mm_loadu_ps(a[r].d + 4 * g));
            acc[r] = _mm512_fmadd_ps(t, _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(s4)), acc[r]);
            bacc[r] = _mm_fmadd_ps(s4, _mm_loadu_ps(a[r].x2sum + 4 * g), bacc[r]);   /* Σ 128·65536·x2 per block, removed below */
        }
    }
    for (int r = 0; r < R; r++) y[r * ldy] = _mm512_reduce_add_ps(acc[r]) - 8388608.0f * hsum128(bacc[r]);
}

static inline __attribute__((always_inline)) void packed_rows(rp_dtype t, const void *w, const rp_q24_row *a, int R, int64_t nb,
                                                              float *y, int64_t ldy) {
    if (t == RP_Q8_0) dot_q8(w, a, R, nb, y, ldy);
    else if (t == RP_Q4_1) dot_q4(w, 1, a, R, nb, y, ldy);
    else dot_q4(w, 0, a, R, nb, y, ldy);
}

/* y[m·ldy] = packed weight row w · activation row a[m], for m in [0, M), four rows at a time: the same
 * arithmetic for every M, so a row's result does not depend on which other rows share the call. */
void rp_packed_dot_rows(rp_dtype t, const void *w, const rp_q24_row *a, int M, int64_t K, float *y, int64_t ldy) {
    int64_t nb = K / 32;
    int m = 0;
    for (; m + 4 <= M; m += 4) packed_rows(t, w, a + m, 4, nb, y + (int64_t)m * ldy, ldy);
    switch (M - m) {
    case 3: packed_rows(t, w, a + m, 3, nb, y + (int64_t)m * ldy, ldy); break;
    case 2: packed_rows(t, w, a + m, 2, nb, y + (int64_t)m * ldy, ldy); break;
    case 1: packed_rows(t, w, a + m, 1, nb, y + (int64_t)m * ldy, ldy); break;
    default: break;
    }
}
#else
/* y[m·ldy] = packed weight row w · activation row a[m], for m in [0, M) (plain C). */
void rp_packed_dot_rows(rp_dtype t, const void *w, const rp_q24_row *a, int M, int64_t K, float *y, int64_t ldy) {
    for (int m = 0; m < M; m++) y[(int64_t)m * ldy] = rp_packed_dot_ref(t, w, &a[m], K);
}
#endif
