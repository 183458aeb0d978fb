/* attn_decode.c: one decoding query's attention for a range of query heads over a KV cache that is usually
 * far larger than the L2 cache and is read once per token. Two passes over the cache, each in chunks of rows
 * (about 8 KB of the columns the range reads): scores (every head's dot products with a chunk's keys while the
 * chunk sits in L1), then the values (likewise). Reading each cache row once for all heads of the range
 * (grouped-query attention: all query heads of a KV head; one thread: all KV heads of a row, which keeps the
 * read one sequential stream) divides the cache traffic by the group size against one matrix-vector product
 * per head, and with it the other layers' weights that a long cache pushes out of the caches each token.
 * Measured (bench_jamba --decode, 1 thread): non-temporal prefetches of the next chunk made the attention
 * 1.4-2x slower here and flushing read lines (clflushopt) slowed it without keeping the weights resident, so
 * neither is used; the hardware prefetchers stream the rows.
 * AVX-512 and AVX2 + FMA builds (the AVX2 kernels take the same D = 16·NV and work in 8-lane halves, the
 * value sums 64 columns at a time so that they stay in the 16 ymm registers), head dims 32 / 64 / 128
 * (rp_attn_decode_supported); other builds keep sgemv.
 * Invariants: the result is the plain softmax attention (max-subtracted exponentials, their sum, the
 * weighted sum of value rows) up to float rounding; nothing is allocated (the caller passes the scratch). */
#include "tensor/attn_decode.h"
#include <string.h>
#include "tensor/simd.h"

#define CHUNK_BYTES 8192   /* cache bytes of one chunk of rows (the columns read): stays in L1 across heads */
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#define ATTN_SIMD 1
#endif

#if defined(__AVX512F__)
/* Scores S[i, j] = scale · q_h · k_j (i = h - h0; each head against its KV head's column) with D = 16·NV,
 * NV a compile-time constant after inlining, so q_h and the sums stay in registers. */
static inline __attribute__((always_inline)) void scores_v(float *S, const float *q, const float *k, int64_t nk, int h0, int h1,
                                                           int group, int64_t ks, float scale, int64_t ch, const int NV) {
    const int D = 16 * NV;
    for (int64_t j0 = 0; j0 < nk; j0 += ch) {
        const int64_t n = nk - j0 < ch ? nk - j0 : ch;
        for (int h = h0; h < h1; h++) {
            __m512 qv[8];
            for (int u = 0; u < NV; u++) qv[u] = _mm512_loadu_ps(q + (int64_t)h * D + 16 * u);
            float *s = S + (int64_t)(h - h0) * nk + j0;
            const float *kr = k + j0 * ks + (int64_t)(h / group) * D;
            for (int64_t j = 0; j < n; j++, kr += ks) {
                __m512 a = _mm512_mul_ps(qv[0], _mm512_loadu_ps(kr));
                for (int u = 1; u < NV; u++) a = _mm512_fmadd_ps(qv[u], _mm512_loadu_ps(kr + 16 * u), a);
                s[j] = scale * _mm512_reduce_add_ps(a);
            }
        }
    }
}

/* out_h += Σ_j S[i, j] · v_j with D = 16·NV (out zeroed by the caller); two sets of sums (even and odd rows)
 * so that the FMA latency does not serialise short rows. */
static inline __attribute__((always_inline)) void values_v(float *out, const float *S, const float *v, int64_t nk, int h0, int h1,
                                                           int group, int64_t ks, int64_t ch, const int NV) {
    const int D = 16 * NV;
    for (int64_t j0 = 0; j0 < nk; j0 += ch) {
        const int64_t n = nk - j0 < ch ? nk - j0 : ch;
        for (int h = h0; h < h1; h++) {
            __m512 a0[8], a1[8];
            float *o = out + (int64_t)h * D;
            for (int u = 0; u < NV; u++) { a0[u] = _mm512_loadu_ps(o + 16 * u); a1[u] = _mm512_setzero_ps(); }
            const float *s = S + (int64_t)(h - h0) * nk + j0, *vr = v + j0 * ks + (int64_t)(h / group) * D;
            int64_t j = 0;
            for (; j + 2 <= n; j += 2, vr += 2 * ks) {
                const __m512 p0 = _mm512_set1_ps(s[j]), p1 = _mm512_set1_ps(s[j + 1]);
                for (int u = 0; u < NV; u++) {
                    a0[u] = _mm512_fmadd_ps(p0, _mm512_loadu_ps(vr + 16 * u), a0[u]);
                    a1[u] = _mm512_fmadd_ps(p1, _mm512_loadu_ps(vr + ks + 16 * u), a1[u]);
                }
            }
            if (j < n) {
                const __m512 p0 = _mm512_set1_ps(s[j]);
                for (int u = 0; u < NV; u++) a0[u] = _mm512_fmadd_ps(p0, _mm512_loadu_ps(vr + 16 * u), a0[u]);
            }
            for (int u = 0; u < NV; u++) _mm512_storeu_ps(o + 16 * u, _mm512_add_ps(a0[u], a1[u]));
        }
    }
}
#elif defined(ATTN_SIMD)
/* Scores as above in 8-lane halves (D = 16·NV: 2·NV vectors, two chains), q read from L1. */
static inline __attribute__((always_inline)) void scores_v(float *S, const float *q, const float *k, int64_t nk, int h0, int h1,
                                                           int group, int64_t ks, float scale, int64_t ch, const int NV) {
    const int D = 16 * NV;
    for (int64_t j0 = 0; j0 < nk; j0 += ch) {
        const int64_t n = nk - j0 < ch ? nk - j0 : ch;
        for (int h = h0; h < h1; h++) {
            const float *qh = q + (int64_t)h * D;
            float *s = S + (int64_t)(h - h0) * nk + j0;
            const float *kr = k + j0 * ks + (int64_t)(h / group) * D;
            for (int64_t j = 0; j < n; j++, kr += ks) {
                __m256 a0 = _mm256_mul_ps(_mm256_loadu_ps(qh), _mm256_loadu_ps(kr));
                __m256 a1 = _mm256_mul_ps(_mm256_loadu_ps(qh + 8), _mm256_loadu_ps(kr + 8));
                for (int u = 16; u < D; u += 16) {
                    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(qh + u), _mm256_loadu_ps(kr + u), a0);
                    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(qh + u + 8), _mm256_loadu_ps(kr + u + 8), a1);
                }
                s[j] = scale * rp_hsum8_ps(_mm256_add_ps(a0, a1));
            }
        }
    }
}

/* out_h += Σ_j S[i, j] · v_j as above, 64 columns (8 sums, one per 8 columns: enough independent chains) at
 * a time. */
static inline __attribute__((always_inline)) void values_v(float *out, const float *S, const float *v, int64_t nk, int h0, int h1,
                                                           int group, int64_t ks, int64_t ch, const int NV) {
    const int D = 16 * NV, NC = D < 64 ? D / 8 : 8;
    for (int64_t j0 = 0; j0 < nk; j0 += ch) {
        const int64_t n = nk - j0 < ch ? nk - j0 : ch;
        for (int h = h0; h < h1; h++) {
            const float *s = S + (int64_t)(h - h0) * nk + j0;
            for (int c0 = 0; c0 < D; c0 += 8 * NC) {
                float *o = out + (int64_t)h * D + c0;
                const float *vr = v + j0 * ks + (int64_t)(h / group) * D + c0;
                __m256 a[8];
                for (int u = 0; u < NC; u++) a[u] = _mm256_loadu_ps(o + 8 * u);
                for (int64_t j = 0; j < n; j++, vr += ks) {
                    const __m256 p = _mm256_set1_ps(s[j]);
                    for (int u = 0; u < NC; u++) a[u] = _mm256_fmadd_ps(p, _mm256_loadu_ps(vr + 8 * u), a[u]);
                }
                for (int u = 0; u < NC; u++) _mm256_storeu_ps(o + 8 * u, a[u]);
            }
        }
    }
}
#endif

/* Whether rp_attn_decode_heads has a kernel for head dimension D. */
int rp_attn_decode_supported(int D) {
#if defined(ATTN_SIMD)
    return D == 32 || D == 64 || D == 128;
#else
    (void)D;
    return 0;
#endif
}

/* Attention of one decoding query for query heads [h0, h1) (see attn_decode.h). */
void rp_attn_decode_heads(float *out, const float *q, const float *k, const float *v, int64_t nk, int h0, int h1, int group,
                          int D, int64_t kv_stride, float scale, float *S) {
#if defined(ATTN_SIMD)
    const int kv_heads = (h1 - 1) / group - h0 / group + 1;   /* columns of a row the range reads */
    int64_t ch = CHUNK_BYTES / ((int64_t)kv_heads * D * (int64_t)sizeof(float));
    if (ch < 4) ch = 4;
    if (D == 32) scores_v(S, q, k, nk, h0, h1, group, kv_stride, scale, ch, 2);
    else if (D == 64) scores_v(S, q, k, nk, h0, h1, group, kv_stride, scale, ch, 4);
    else scores_v(S, q, k, nk, h0, h1, group, kv_stride, scale, ch, 8);
    float inv[RP_ATTN_DECODE_MAX_HEADS];   /* 1 / Σ e^(s - max) per head, applied to the output */
    for (int h = h0; h < h1; h++) {
        float *s = S + (int64_t)(h - h0) * nk;
        inv[h - h0] = 1.0f / rp_vexp_sub_sum(s, rp_vmax(s, nk), nk);
    }
    memset(out + (int64_t)h0 * D, 0, (size_t)(h1 - h0) * (size_t)D * sizeof(float));
    if (D == 32) values_v(out, S, v, nk, h0, h1, group, kv_stride, ch, 2);
    else if (D == 64) values_v(out, S, v, nk, h0, h1, group, kv_stride, ch, 4);
    else values_v(out, S, v, nk, h0, h1, group, kv_stride, ch, 8);
    for (int h = h0; h < h1; h++) rp_vscale(out + (int64_t)h * D, inv[h - h0], D);
#else
    (void)out; (void)q; (void)k; (void)v; (void)nk; (void)h0; (void)h1; (void)group; (void)D; (void)kv_stride; (void)scale; (void)S;
#endif
}
