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
 * Batched rows (rp_packed_fdot_tile / _rows) take f32 activations in natural order instead: tiles of 4 rows by
 * 4 weight rows; each q4 block's weights come from a 16-entry table (q·d + m, one fma) looked up by nibble
 * with vpermps and are reused by the tile's rows, so a step of many sequences is bound by f32 fmas (two ports)
 * rather than by three vpdpbusd per row (one port); 16 accumulators are summed together (reduce16).
 * Invariants: results equal dot(dequantize(w), x) up to f32 rounding (the integer sums are exact: the
 * bounds are in the comments); a row's result never depends on which other rows share the call; the
 * plain-C versions are the reference and are what non-VNNI builds run. */
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

/* Element j of block b of a packed row of nb blocks, dequantized (the plain-C references' weight). */
static float packed_weight(rp_dtype t, const uint8_t *p, int64_t nb, int64_t b, int j) {
    const uint16_t *dh = (const uint16_t *)(p + (t == RP_Q8_0 ? 32 : 16) * nb), *mh = dh + nb;
    float d = rp_f16_to_f32(dh[b]);
    if (t == RP_Q8_0) {
        int64_t g = b / 4, in_g = nb - 4 * g < 4 ? nb - 4 * g : 4;
        return (float)(int8_t)p[128 * g + (j / 16) * 16 * in_g + 16 * (b % 4) + j % 16] * d;
    }
    uint8_t q = p[16 * b + j % 16];
    int nib = j < 16 ? q & 15 : q >> 4;
    return t == RP_Q4_1 ? (float)nib * d + rp_f16_to_f32(mh[b]) : (float)(nib - 8) * d;
}

/* Plain-C packed dot (the reference): weights dequantized from the packed layout, X rebuilt from the limbs. */
float rp_packed_dot_ref(rp_dtype t, const void *w, const rp_q24_row *a, int64_t K) {
    int64_t nb = K / 32;
    float r = 0;
    for (int64_t b = 0; b < nb; b++) {
        float acc = 0;
        for (int j = 0; j < 32; j++) {
            size_t gi = gidx(b * 32 + j);
            float X = (float)((int32_t)a->x2[gi] * 65536 + (int32_t)a->x1[gi] * 256 + a->x0[gi]);
            acc += packed_weight(t, w, nb, b, j) * X;
        }
        r += acc * a->d[b];
    }
    return r;
}

/* Plain-C f32 packed dot (the reference of rp_packed_fdot_rows): dequantized weights times natural-order x. */
float rp_packed_fdot_ref(rp_dtype t, const void *w, const float *x, int64_t K) {
    int64_t nb = K / 32;
    float r = 0;
    for (int64_t b = 0; b < nb; b++)
        for (int j = 0; j < 32; j++) r += packed_weight(t, w, nb, b, j) * x[b * 32 + j];
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
/* Sum of each of 16 accumulators, in one vector: out[4·(i % 4) + i / 4] = Σ lanes of a[i]. Every
 * accumulator is summed by the same tree (lane e + e⊕8, then ⊕4, ⊕2, ⊕1), whatever its slot, so a sum does
 * not depend on which other accumulators share the call. About 3 instructions per accumulator where a
 * reduction of its own costs 8. */
static inline __attribute__((always_inline)) __m512 reduce16(const __m512 *a) {
    __m512 c[8], d[4], e[2];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++)
        c[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
        d[i] = _mm512_add_ps(_mm512_shuffle_f32x4(c[2 * i], c[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_f32x4(c[2 * i], c[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
#pragma GCC unroll 2
    for (int i = 0; i < 2; i++)
        e[i] = _mm512_add_ps(_mm512_shuffle_ps(d[2 * i], d[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(d[2 * i], d[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    return _mm512_add_ps(_mm512_shuffle_ps(e[0], e[1], _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_ps(e[0], e[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

/* R f32 activation rows (x, ldx floats apart) against NW packed rows (w, ldw bytes apart), R·NW <= 16.
 * Per block and weight row, a q4 block's 32 weights come from a 16-entry table (q·d + m for q = 0..15, one
 * fma: the same rounding as dequantizing each weight) indexed by its nibbles with vpermps, whose index is
 * the low 4 bits of each lane: 5 vector instructions per block shared by R rows, against 2 fmas per row.
 * The blocks' f16 scales are converted to f32 on the stack 64 blocks at a time, so the per-block broadcasts
 * are loads. Accumulator (r, n) takes w·x of elements 0..15 then 16..31 of each block in order, and reduce16
 * sums it: a row's result is the same whatever R and NW are. */
static inline __attribute__((always_inline)) void fdot_tile(rp_dtype t, const uint8_t *w, size_t ldw, int NW, const float *x,
                                                            int64_t ldx, int R, int64_t nb, float *y, int64_t ldy) {
    const __m512 iota = _mm512_set_ps(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    __m512 acc[16];
    float ds[4][64], ms[4][64];   /* scales (and mins) of up to 64 blocks per weight row, as f32 */
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) acc[i] = _mm512_setzero_ps();
    for (int64_t b0 = 0; b0 < nb; b0 += 64) {
        int64_t nbc = nb - b0 < 64 ? nb - b0 : 64;
        /* converted a whole chunk ahead of its blocks: the broadcasts below read stores long retired (a
         * 64-byte store read back 4 bytes at a time right after stalls store forwarding) */
#pragma GCC unroll 4
        for (int n = 0; n < NW; n++) {
            const uint16_t *dh = (const uint16_t *)(w + (size_t)n * ldw + (t == RP_Q8_0 ? 32 : 16) * nb) + b0;
            _mm_prefetch((const char *)dh + NW * ldw, _MM_HINT_T0);
            for (int64_t c = 0; c < nbc; c += 16) {
                __mmask16 k = (__mmask16)(nbc - c < 16 ? (1u << (nbc - c)) - 1 : 0xffffu);
                __m512 d = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, dh + c));
                _mm512_storeu_ps(ds[n] + c, d);
                if (t == RP_Q4_1) _mm512_storeu_ps(ms[n] + c, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, dh + nb + c)));
                else if (t == RP_Q4_0) _mm512_storeu_ps(ms[n] + c, _mm512_mul_ps(d, _mm512_set1_ps(-8.0f)));
            }
        }
        for (int64_t b = b0; b < b0 + nbc; b++) {
#pragma GCC unroll 4
            for (int n = 0; n < NW; n++) {
                const uint8_t *wn = w + (size_t)n * ldw;
                __m512 d = _mm512_set1_ps(ds[n][b - b0]), w0, w1;
                if (t == RP_Q8_0) {
                    int64_t g = b / 4, in_g = nb - 4 * g < 4 ? nb - 4 * g : 4;
                    const uint8_t *q = wn + 128 * g + 16 * (b % 4);
                    if ((b & 3) == 0) _mm_prefetch((const char *)q + NW * ldw, _MM_HINT_T0);   /* the next tile's rows */
                    w0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)q))), d);
                    w1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(q + 16 * in_g)))), d);
                } else {
                    if ((b & 3) == 0) _mm_prefetch((const char *)wn + NW * ldw + 16 * b, _MM_HINT_T0);   /* the next tile's rows */
                    __m512 tab = _mm512_fmadd_ps(iota, d, _mm512_set1_ps(ms[n][b - b0]));
                    __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(wn + 16 * b)));
                    w0 = _mm512_permutexvar_ps(q, tab);
                    w1 = _mm512_permutexvar_ps(_mm512_srli_epi32(q, 4), tab);
                }
#pragma GCC unroll 16
                for (int r = 0; r < R; r++) {
                    const float *xr = x + r * ldx + 32 * b;
                    acc[r * NW + n] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xr), acc[r * NW + n]);
                    acc[r * NW + n] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xr + 16), acc[r * NW + n]);
                }
            }
        }
    }
    float out[16];
    _mm512_storeu_ps(out, reduce16(acc));
#pragma GCC unroll 16
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int n = 0; n < NW; n++) {
            int i = r * NW + n;
            y[r * ldy + n] = out[4 * (i % 4) + i / 4];
        }
}

/* One tile with R and NW as constants: 4 weight rows (wide), or 1 (a tail of the weight rows). */
#define TILE(T, R_) do { if (wide) fdot_tile(T, w, ldw, 4, x, ldx, R_, nb, y, ldy); else fdot_tile(T, w, ldw, 1, x, ldx, R_, nb, y, ldy); } while (0)
#define TILE_CASES(T) \
    switch (R) { case 4: TILE(T, 4); break; case 3: TILE(T, 3); break; case 2: TILE(T, 2); break; default: TILE(T, 1); break; }
/* 4 weight rows (wide) or one against R <= 4 rows. */
static void fdot_pass(rp_dtype t, const uint8_t *w, size_t ldw, int wide, const float *x, int64_t ldx, int R, int64_t nb, float *y, int64_t ldy) {
    if (t == RP_Q8_0) { TILE_CASES(RP_Q8_0) }
    else if (t == RP_Q4_1) { TILE_CASES(RP_Q4_1) }
    else { TILE_CASES(RP_Q4_0) }
}
#undef TILE_CASES
#undef TILE

/* y[m·ldy + n] = packed weight row n (w + n·ldw) · f32 row x[m·ldx ..], m in [0, M), n in [0, N): tiles of up
 * to 4 rows by 4 weight rows (see fdot_tile; measured by bench_batch --kernel: 4 x 4 ran faster per row than
 * 8 x 2 or 16 x 1, whose larger share of the dequantization did not pay for their x traffic), all rows' tiles
 * of 4 weight rows one after another so that the weights stream from memory once. */
void rp_packed_fdot_tile(rp_dtype t, const void *w, size_t ldw, int64_t N, const float *x, int64_t ldx, int M, int64_t K,
                         float *y, int64_t ldy) {
    int64_t nb = K / 32;
    for (int64_t n = 0; n < N;) {   /* weight rows outer: a tile's weights are read from memory once, for all M rows */
        int wide = N - n >= 4;
        const uint8_t *wn = (const uint8_t *)w + (size_t)n * ldw;
        for (int m = 0; m < M; m += 4) fdot_pass(t, wn, ldw, wide, x + m * ldx, ldx, M - m < 4 ? M - m : 4, nb, y + (int64_t)m * ldy + n, ldy);
        n += wide ? 4 : 1;
    }
}
#else
/* y[m·ldy] = packed weight row w · activation row a[m], for m in [0, M) (plain C). */
void rp_packed_dot_rows(rp_dtype t, const void *w, const rp_q24_row *a, int M, int64_t K, float *y, int64_t ldy) {
    for (int m = 0; m < M; m++) y[(int64_t)m * ldy] = rp_packed_dot_ref(t, w, &a[m], K);
}
/* y[m·ldy + n] = packed weight row n · f32 row x[m·ldx ..], m in [0, M), n in [0, N) (plain C). */
void rp_packed_fdot_tile(rp_dtype t, const void *w, size_t ldw, int64_t N, const float *x, int64_t ldx, int M, int64_t K,
                         float *y, int64_t ldy) {
    for (int64_t n = 0; n < N; n++)
        for (int m = 0; m < M; m++) y[(int64_t)m * ldy + n] = rp_packed_fdot_ref(t, (const char *)w + (size_t)n * ldw, x + m * ldx, K);
}
#endif

/* y[m·ldy] = packed weight row w · f32 row x[m·ldx ..], m in [0, M): one weight row of rp_packed_fdot_tile. */
void rp_packed_fdot_rows(rp_dtype t, const void *w, const float *x, int64_t ldx, int M, int64_t K, float *y, int64_t ldy) {
    rp_packed_fdot_tile(t, w, 0, 1, x, ldx, M, K, y, ldy);
}
