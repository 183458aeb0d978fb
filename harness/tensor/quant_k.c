/* quant_k.c: reference quantizers for the K-quant super-block formats q4_K and q6_K (256 weights; layouts in
 * quant.h, decoded by rp_dequantize_row), following the search llama.cpp's reference quantizers make so that
 * files we write round-trip as well as theirs:
 *  - q4_K: eight sub-blocks of 32 weights, x ≈ d·sc·q − dmin·m with q in [0, 15] and 6-bit sc, m. Each sub-block's
 *    (scale, min) is a weighted least-squares fit (weights rms(x) + |x|, so large weights count more) over 21
 *    candidate grids, min kept ≤ 0 (the format subtracts a non-negative offset); then the sub-block scales and
 *    mins are coded in 6 bits against the super-block's largest, and the codes chosen again against the coded
 *    scales, which is what the weights will be decoded with.
 *  - q6_K: sixteen sub-blocks of 16 weights, x ≈ d·sc·(q − 32), q in [0, 63], sc an int8. Each sub-block's scale
 *    is the least-squares fit (weights x², favouring the large values) over 19 grids around "largest magnitude
 *    maps to −32"; the sub-block scales are coded as int8 against the largest magnitude (which becomes −128),
 *    and the codes chosen again against the coded scales.
 * Invariants: n is a multiple of 256 and every input is finite (both checked: RP_ERR_INVAL naming the element),
 * and a super-block whose scales would overflow f16 is RP_ERR_RANGE naming it (never a block that decodes to inf);
 * a super-block of zeros is all-zero bytes; rounding is to nearest, ties to even (lrintf). */
#include "tensor/quant.h"
#include <math.h>
#include <string.h>

/* No fused multiply-adds: the search compares near-equal errors, and rounding each product as llama.cpp's portable
 * build does makes our blocks its blocks byte for byte (tests/quant_k_peer_test.sh), not merely as good. */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

/* Round to nearest, ties to even (the default rounding mode). */
static int near_int(float v) { return (int)lrintf(v); }
static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

static rp_status check_input(rp_dtype t, const float *x, int64_t n) {
    if (n < 0 || n % RP_QK_K)
        return rp_fail(RP_ERR_INVAL, "quantize %s: row of %lld elements is not whole super-blocks of %d", rp_dtype_name(t), (long long)n, RP_QK_K);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return rp_fail(RP_ERR_INVAL, "quantize %s: element %lld is %g (not finite)", rp_dtype_name(t), (long long)i, (double)x[i]);
    return RP_OK;
}

/* Fit x[0..n) ≈ scale·q + off with q in [0, nmax], off ≤ 0, minimising Σ w·(scale·q + off − x)²: start from the
 * grid spanning [min(x, 0), max(x)], then try grids of nmax + rmin + rdelta·k steps (k = 0..nstep) over [off, max(x)]
 * with off the best offset found so far, each followed by the closed-form least-squares (scale, off) for its codes. Writes the best codes to q (aux is
 * scratch of n) and returns scale; *neg_off gets −off (≥ 0). */
static float fit_scale_offset(const float *x, const float *w, int n, int nmax, uint8_t *q, uint8_t *aux, float *neg_off) {
    const float rmin = -1.0f, rdelta = 0.1f;
    const int nstep = 20;
    float lo = x[0], hi = x[0], sw = w[0], swx = w[0] * x[0];
    for (int i = 1; i < n; i++) {
        lo = fminf(lo, x[i]);
        hi = fmaxf(hi, x[i]);
        sw += w[i];
        swx += w[i] * x[i];
    }
    if (lo > 0) lo = 0;
    if (hi == lo) {                               /* constant (zero, or negative: all weight in the offset) */
        memset(q, 0, (size_t)n);
        *neg_off = -lo;
        return 0.0f;
    }
    float inv = (float)nmax / (hi - lo), scale = 1.0f / inv, off = lo, best = 0;
    for (int i = 0; i < n; i++) {
        q[i] = (uint8_t)clampi(near_int(inv * (x[i] - lo)), 0, nmax);
        float e = scale * q[i] + lo - x[i];
        best += w[i] * e * e;
    }
    for (int k = 0; k <= nstep; k++) {
        inv = (rmin + rdelta * (float)k + (float)nmax) / (hi - off);   /* grids start at the best offset so far */
        float sl = 0, sl2 = 0, sxl = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(near_int(inv * (x[i] - off)), 0, nmax);
            aux[i] = (uint8_t)l;
            sl += w[i] * l;
            sl2 += w[i] * l * l;
            sxl += w[i] * l * x[i];
        }
        float det = sw * sl2 - sl * sl;
        if (det <= 0) continue;
        float s = (sw * sxl - swx * sl) / det, o = (sl2 * swx - sl * sxl) / det;
        if (o > 0) { o = 0; s = sxl / sl2; }      /* the format's offset cannot be positive: refit the scale alone */
        float err = 0;
        for (int i = 0; i < n; i++) {
            float e = s * aux[i] + o - x[i];
            err += w[i] * e * e;
        }
        if (err < best) {
            memcpy(q, aux, (size_t)n);
            best = err;
            scale = s;
            off = o;
        }
    }
    *neg_off = -off;
    return scale;
}

/* Pack sub-block j's 6-bit scale and min into a q4_K block's 12 scale bytes (the inverse of the decoder's
 * unpacking: j < 4 in the low 6 bits of bytes j and j+4; j >= 4 as nibbles in byte j+4 with their top two bits
 * in the high bits of bytes j-4 and j). */
static void q4k_put_scale_min(uint8_t *s, int j, int sc, int mn) {
    if (j < 4) {
        s[j] = (uint8_t)((s[j] & 0xc0) | sc);
        s[j + 4] = (uint8_t)((s[j + 4] & 0xc0) | mn);
    } else {
        s[j + 4] = (uint8_t)((sc & 0x0f) | ((mn & 0x0f) << 4));
        s[j - 4] |= (uint8_t)((sc >> 4) << 6);
        s[j] |= (uint8_t)((mn >> 4) << 6);
    }
}

/* Quantize one super-block; 0, or -1 when its scales overflow f16 (or the fit's sums overflow f32). */
static int quantize_q4_K_block(const float *x, rp_block_q4_K *b) {
    uint8_t codes[RP_QK_K], aux[32];
    float w[32], scale[8], mn[8], max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        float ss = 0;
        for (int l = 0; l < 32; l++) ss += xs[l] * xs[l];
        float rms = sqrtf(ss / 32);
        for (int l = 0; l < 32; l++) w[l] = rms + fabsf(xs[l]);
        scale[j] = fit_scale_offset(xs, w, 32, 15, codes + 32 * j, aux, &mn[j]);
        if (!isfinite(scale[j]) || !isfinite(mn[j])) return -1;   /* sums overflowed: magnitudes far past f16's */
        if (scale[j] > max_scale) max_scale = scale[j];
        if (mn[j] > max_min) max_min = mn[j];       /* (a −0 min leaves +0: an all-zero block is all-zero bytes) */
    }
    memset(b, 0, sizeof *b);
    float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f, inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    for (int j = 0; j < 8; j++)
        q4k_put_scale_min(b->scales, j, clampi(near_int(inv_scale * scale[j]), 0, 63), clampi(near_int(inv_min * mn[j]), 0, 63));
    b->d = rp_f32_to_f16(max_scale / 63.0f);
    b->dmin = rp_f32_to_f16(max_min / 63.0f);
    float d = rp_f16_to_f32(b->d), dmin = rp_f16_to_f32(b->dmin);
    if (!isfinite(d) || !isfinite(dmin)) return -1;
    for (int j = 0; j < 8; j++) {                 /* the codes again, against the scales as they will be decoded */
        int sc = 0, m = 0;
        if (j < 4) { sc = b->scales[j] & 63; m = b->scales[j + 4] & 63; }
        else { sc = (b->scales[j + 4] & 0x0f) | ((b->scales[j - 4] >> 6) << 4); m = (b->scales[j + 4] >> 4) | ((b->scales[j] >> 6) << 4); }
        float ds = d * (float)sc, dm = dmin * (float)m;
        if (ds == 0) continue;                    /* the fit's codes stand (they decode to −dm whatever they are) */
        for (int l = 0; l < 32; l++) codes[32 * j + l] = (uint8_t)clampi(near_int((x[32 * j + l] + dm) / ds), 0, 15);
    }
    for (int g = 0; g < 4; g++)                   /* 64 weights per 32 bytes: low nibbles first, then high */
        for (int l = 0; l < 32; l++) b->qs[32 * g + l] = (uint8_t)(codes[64 * g + l] | (codes[64 * g + 32 + l] << 4));
    return 0;
}

/* Symmetric fit of x[0..n) ≈ scale·q, q in [−nmax, nmax−1], minimising Σ x²·(scale·q − x)²: the grid that maps
 * the largest magnitude to −nmax, then 18 grids (nmax ± 0.1·k) beside it, each with its least-squares scale. Codes
 * (offset by nmax) into q; returns the (signed) scale, 0 for an all-zero run. */
static float fit_scale_symmetric(const float *x, int n, int nmax, uint8_t *q) {
    float amax = 0, vmax = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) { amax = fabsf(x[i]); vmax = x[i]; }
    if (amax < 1e-15f) { memset(q, 0, (size_t)n); return 0.0f; }
    float best_scale = 0, best = 0;
    for (int k = 0; k <= 18; k++) {
        int step = k == 0 ? 0 : k <= 9 ? k - 10 : k - 9;   /* the plain grid first, then −9..−1, 1..9 */
        float inv = -((float)nmax + 0.1f * (float)step) / vmax, sxl = 0, sl2 = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(near_int(inv * x[i]), -nmax, nmax - 1);
            float w = x[i] * x[i];
            sxl += w * x[i] * l;
            sl2 += w * l * l;
        }
        /* at its least-squares scale sxl/sl2 a grid's weighted error is Σw·x² − sxl²/sl2: keep the largest sxl²/sl2 */
        if (k > 0 && !(sl2 > 0 && sxl * sxl > best * sl2)) continue;
        best_scale = sl2 > 0 ? sxl / sl2 : 0.0f;
        best = best_scale * sxl;
        for (int i = 0; i < n; i++) q[i] = (uint8_t)(nmax + clampi(near_int(inv * x[i]), -nmax, nmax - 1));
    }
    return best_scale;
}

/* Quantize one super-block; 0, or -1 when its scale overflows f16. */
static int quantize_q6_K_block(const float *x, rp_block_q6_K *b) {
    uint8_t codes[RP_QK_K];
    float scale[16], max_scale = 0, max_abs = 0;
    for (int j = 0; j < 16; j++) {
        scale[j] = fit_scale_symmetric(x + 16 * j, 16, 32, codes + 16 * j);
        if (!isfinite(scale[j])) return -1;
        if (fabsf(scale[j]) > max_abs) { max_abs = fabsf(scale[j]); max_scale = scale[j]; }
    }
    memset(b, 0, sizeof *b);
    if (max_abs < 1e-15f) return 0;               /* all zero: d = 0, every code 0 */
    float inv = -128.0f / max_scale;
    b->d = rp_f32_to_f16(1.0f / inv);
    for (int j = 0; j < 16; j++) b->scales[j] = (int8_t)(near_int(inv * scale[j]) > 127 ? 127 : near_int(inv * scale[j]));
    float d = rp_f16_to_f32(b->d);
    if (!isfinite(d)) return -1;
    for (int j = 0; j < 16; j++) {                /* the codes again, against the coded scales */
        float ds = d * (float)b->scales[j];
        if (ds == 0) continue;
        for (int l = 0; l < 16; l++) codes[16 * j + l] = (uint8_t)(32 + clampi(near_int(x[16 * j + l] / ds), -32, 31));
    }
    for (int h = 0; h < 2; h++) {                 /* each half of 128: four runs of 32 share the ql / qh bytes */
        const uint8_t *c = codes + 128 * h;
        uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
        for (int l = 0; l < 32; l++) {
            ql[l] = (uint8_t)((c[l] & 0x0f) | ((c[l + 64] & 0x0f) << 4));
            ql[l + 32] = (uint8_t)((c[l + 32] & 0x0f) | ((c[l + 96] & 0x0f) << 4));
            qh[l] = (uint8_t)((c[l] >> 4) | ((c[l + 32] >> 4) << 2) | ((c[l + 64] >> 4) << 4) | ((c[l + 96] >> 4) << 6));
        }
    }
    return 0;
}

/* Reference q4_K / q6_K quantization of one row of n (a multiple of 256) finite values. */
rp_status rp_quantize_row_k(rp_dtype t, const float *x, void *dst, int64_t n) {
    if (t != RP_Q4_K && t != RP_Q6_K) return rp_fail(RP_ERR_UNSUPPORTED, "quantize: %s is not a K-quant this quantizer writes", rp_dtype_name(t));
    RP_TRY(check_input(t, x, n));
    for (int64_t i = 0; i < n / RP_QK_K; i++) {
        const float *xb = x + i * RP_QK_K;
        int rc = t == RP_Q4_K ? quantize_q4_K_block(xb, (rp_block_q4_K *)dst + i) : quantize_q6_K_block(xb, (rp_block_q6_K *)dst + i);
        if (rc) {
            float amax = 0;
            for (int j = 0; j < RP_QK_K; j++) amax = fmaxf(amax, fabsf(xb[j]));
            return rp_fail(RP_ERR_RANGE, "quantize %s: super-block %lld (elements %lld..%lld) holds magnitudes up to %g, past what its f16 scales can hold",
                           rp_dtype_name(t), (long long)i, (long long)(i * RP_QK_K), (long long)(i * RP_QK_K + RP_QK_K - 1), (double)amax);
        }
    }
    return RP_OK;
}
