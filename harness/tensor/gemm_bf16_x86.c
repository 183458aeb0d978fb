/* gemm_bf16_x86.c: the packing of fp32 operands into bf16 tiles (layout in gemm_bf16_impl.h) and the
 * AVX512-BF16 kernel of rp_gemm_bf16. Compiled for AVX512-BF16 by function attributes whatever -march says, and
 * called only when rp_gemm_bf16_best found the unit.
 * Packing rounds fp32 to bf16 to nearest even (VCVTNE2PS2BF16); pairs along k are interleaved with one word
 * permute, and the two operands that need k across a register (op(A) transposed, op(B) not) go through a 16 × 16
 * dword transpose of (k pair × row) blocks. Masked loads make rows, columns and k past the matrix zeros.
 * Kernel invariant: an element is C (accumulate) or 0, plus k blocks in ascending order, each pair p of a block
 * in ascending order, one VDPBF16PS per pair. */
#include "tensor/gemm_bf16_impl.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512bf16")))

static inline __mmask16 first(int64_t n) { return n >= 16 ? (__mmask16)0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1); }

/* 32 floats along k (n of them real) as 16 dwords, dword p = the bf16 pair (k = 2p, 2p + 1). */
BF16_TARGET static inline __m512i cvt32(const float *src, int64_t n) {
    __m512 lo = _mm512_maskz_loadu_ps(first(n), src), hi = _mm512_maskz_loadu_ps(first(n - 16), src + 16);
    return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

/* Two rows of 16 floats (k and k + 1; cols of them real, NULL a zero row) as 16 dwords, dword c = (r0[c], r1[c]). */
BF16_TARGET static inline __m512i pair16(const float *r0, const float *r1, int cols) {
    static const int16_t il[32] = { 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
                                    8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31 };
    __mmask16 m = first(cols);
    __m512 a = r0 ? _mm512_maskz_loadu_ps(m, r0) : _mm512_setzero_ps(), b = r1 ? _mm512_maskz_loadu_ps(m, r1) : _mm512_setzero_ps();
    return _mm512_permutexvar_epi16(_mm512_loadu_si512(il), (__m512i)_mm512_cvtne2ps_pbh(b, a));
}

/* Transpose 16 × 16 dwords held as 16 rows: at each scale h (8, 4, 2, 1) swap the off-diagonal h × h blocks of
 * every 2h × 2h block, two rows at a time with one two-source permute each. idx[s][0][j] picks row i's new j-th
 * dword from (row i, row i + h) = (0..15, 16..31): its left block, then row i + h's left block; idx[s][1] row
 * i + h's: row i's right block, then its own right block. */
static const int32_t tr_idx[4][2][16] = {
    { { 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23 },
      { 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31 } },
    { { 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27 },
      { 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31 } },
    { { 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29 },
      { 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31 } },
    { { 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30 },
      { 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31 } },
};

BF16_TARGET static void transpose16(__m512i r[16]) {
    for (int s = 0, h = 8; s < 4; s++, h >>= 1) {
        __m512i il = _mm512_loadu_si512(tr_idx[s][0]), ih = _mm512_loadu_si512(tr_idx[s][1]);
        for (int i = 0; i < 16; i++) {
            if (i & h) continue;
            __m512i a = r[i], b = r[i + h];
            r[i] = _mm512_permutex2var_epi32(a, il, b);
            r[i + h] = _mm512_permutex2var_epi32(a, ih, b);
        }
    }
}

/* Pack rows of op(A) into row tiles. */
BF16_TARGET void rp_gemm_bf16_pack_a(int ta, const float *A, int64_t lda, int64_t i0, int64_t rows, int64_t n_rt, int64_t K,
                                     int64_t kb0, int64_t nkb, uint16_t *a) {
    for (int64_t rt = 0; rt < n_rt; rt++)
        for (int64_t kb = 0; kb < nkb; kb++) {
            uint16_t *t = a + (rt * nkb + kb) * RP_BF16_TILE;
            int64_t k0 = (kb0 + kb) * 32, r0 = rt * 16, nr = rows - r0 < 0 ? 0 : rows - r0 > 16 ? 16 : rows - r0;
            if (!ta) {   /* op(A)(i, k) = A[i·lda + k]: each row's k run is contiguous */
                for (int r = 0; r < 16; r++)
                    _mm512_storeu_si512(t + r * 32, r < nr ? cvt32(A + (i0 + r0 + r) * lda + k0, K - k0) : _mm512_setzero_si512());
                continue;
            }
            __m512i v[16];   /* op(A)(i, k) = A[k·lda + i]: pairs of k rows, then (pair × row) transposed to (row × pair) */
            for (int p = 0; p < 16; p++) {
                int64_t k = k0 + 2 * p;
                const float *s = A + i0 + r0;
                v[p] = pair16(k < K && nr ? s + k * lda : NULL, k + 1 < K && nr ? s + (k + 1) * lda : NULL, (int)nr);
            }
            transpose16(v);
            for (int r = 0; r < 16; r++) _mm512_storeu_si512(t + r * 32, v[r]);
        }
}

/* Pack a 32-column strip of op(B) into column tiles. */
BF16_TARGET void rp_gemm_bf16_pack_b(int tb, const float *B, int64_t ldb, int64_t j0, int cols, int64_t K, int64_t kb0,
                                     int64_t nkb, uint16_t *b) {
    for (int ct = 0; ct < 2; ct++)
        for (int64_t kb = 0; kb < nkb; kb++) {
            uint16_t *t = b + (ct * nkb + kb) * RP_BF16_TILE;
            int64_t k0 = (kb0 + kb) * 32;
            int nc = cols - 16 * ct < 0 ? 0 : cols - 16 * ct > 16 ? 16 : cols - 16 * ct;
            const float *s = B + (tb ? (j0 + 16 * ct) * ldb : j0 + 16 * ct);
            if (!tb) {   /* op(B)(k, j) = B[k·ldb + j]: rows k, k + 1 interleaved are a tile row already */
                for (int p = 0; p < 16; p++) {
                    int64_t k = k0 + 2 * p;
                    _mm512_storeu_si512(t + p * 32, pair16(k < K && nc ? s + k * ldb : NULL, k + 1 < K && nc ? s + (k + 1) * ldb : NULL, nc));
                }
                continue;
            }
            __m512i v[16];   /* op(B)(k, j) = B[j·ldb + k]: each column's k run converted, (column × pair) transposed */
            for (int c = 0; c < 16; c++) v[c] = c < nc ? cvt32(s + c * ldb + k0, K - k0) : _mm512_setzero_si512();
            transpose16(v);
            for (int p = 0; p < 16; p++) _mm512_storeu_si512(t + p * 32, v[p]);
        }
}

/* Rows [r0, r0 + 8) of a 32 × 32 block: 8 × 2 accumulators, A's pair broadcast per row, B's two tile rows per pair. */
BF16_TARGET static void k8x32(const uint16_t *a, const uint16_t *b, int64_t nkb, float *c, int64_t ldc, int rows, int cols,
                              int acc) {
    __m512 r[8][2];
    __mmask16 m0 = first(cols), m1 = first(cols - 16);
    for (int i = 0; i < 8; i++) {
        r[i][0] = acc && i < rows ? _mm512_maskz_loadu_ps(m0, c + i * ldc) : _mm512_setzero_ps();
        r[i][1] = acc && i < rows ? _mm512_maskz_loadu_ps(m1, c + i * ldc + 16) : _mm512_setzero_ps();
    }
    const uint16_t *b1 = b + nkb * RP_BF16_TILE;
    for (int64_t kb = 0; kb < nkb; kb++) {
        const int32_t *aw = (const int32_t *)(a + kb * RP_BF16_TILE);
        const uint16_t *bt0 = b + kb * RP_BF16_TILE, *bt1 = b1 + kb * RP_BF16_TILE;
        for (int p = 0; p < 16; p++) {
            __m512bh v0 = (__m512bh)_mm512_loadu_si512(bt0 + p * 32), v1 = (__m512bh)_mm512_loadu_si512(bt1 + p * 32);
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++) {
                __m512bh ai = (__m512bh)_mm512_set1_epi32(aw[i * 16 + p]);
                r[i][0] = _mm512_dpbf16_ps(r[i][0], ai, v0);
                r[i][1] = _mm512_dpbf16_ps(r[i][1], ai, v1);
            }
        }
    }
    for (int i = 0; i < 8 && i < rows; i++) {
        _mm512_mask_storeu_ps(c + i * ldc, m0, r[i][0]);
        _mm512_mask_storeu_ps(c + i * ldc + 16, m1, r[i][1]);
    }
}

/* One 32 × 32 block of C on AVX512-BF16: four 8-row passes, those past the real rows skipped. */
BF16_TARGET void rp_gemm_bf16_block_avx512(const uint16_t *a, const uint16_t *b, int64_t nkb, float *c, int64_t ldc, int rows,
                                           int cols, int acc) {
    for (int s = 0; s < 4 && 8 * s < rows; s++)
        k8x32(a + (s / 2) * nkb * RP_BF16_TILE + (s % 2) * 8 * 32, b, nkb, c + 8 * s * ldc, ldc, rows - 8 * s, cols, acc);
}
#endif
