/* quant.c: reference conversions between f32 and the quantized block formats (GGML layouts), written
 * for clarity: faster kernels elsewhere are tested against these.
 * Invariant: callers pass n as a multiple of the dtype's block size (checked, RP_ERR_INVAL otherwise). */
#include "tensor/quant.h"
#include <math.h>
#include <string.h>

static uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* IEEE half to float: exact. */
float rp_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    if (exp == 0) {                      /* zero or subnormal: mant * 2^-24 */
        float v = (float)mant * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    if (exp == 31) return bits_f32(sign | 0x7f800000u | (mant << 13));
    return bits_f32(sign | ((exp - 15 + 127) << 23) | (mant << 13));
}

/* Float to IEEE half, round to nearest even; overflow gives infinity. */
uint16_t rp_f32_to_f16(float f) {
    uint32_t x = f32_bits(f), sign = (x >> 16) & 0x8000;
    x &= 0x7fffffffu;
    if (x >= 0x7f800000u) return (uint16_t)(sign | 0x7c00 | (x > 0x7f800000u ? 0x200 : 0));
    if (x >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);          /* >= 65520 rounds to inf */
    if (x < 0x38800000u) {                                           /* below 2^-14: subnormal half */
        long q = lrintf(bits_f32(x) * 16777216.0f);                  /* exact scaling, RNE */
        return (uint16_t)(sign | (uint32_t)q);
    }
    uint32_t mant = x & 0x7fffff, h = ((((x >> 23) - 127 + 15)) << 10) | (mant >> 13), rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

/* bfloat16 to float: the high half of the float's bits. */
float rp_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

/* Float to bfloat16, round to nearest even, NaN kept quiet. */
uint16_t rp_f32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);
    return (uint16_t)((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

/* Whether rp_dequantize_row handles t. */
int rp_dtype_dequantizable(rp_dtype t) {
    switch (t) {
    case RP_F32: case RP_F16: case RP_BF16: case RP_Q4_0: case RP_Q4_1: case RP_Q8_0: case RP_Q4_K: case RP_Q6_K:
        return 1;
    default:
        return 0;
    }
}

/* The 6-bit scale and min of sub-block j of a q4_K super-block (packed in 12 bytes). */
static void q4k_scale_min(int j, const uint8_t *s, int *sc, int *mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
        *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

static void deq_q4_K(const rp_block_q4_K *b, float *y) {
    float d = rp_f16_to_f32(b->d), dmin = rp_f16_to_f32(b->dmin);
    const uint8_t *q = b->qs;
    for (int j = 0; j < 8; j += 2) {          /* 64 values per step: low nibbles then high nibbles */
        int sc, mn;
        q4k_scale_min(j, b->scales, &sc, &mn);
        float d1 = d * (float)sc, m1 = dmin * (float)mn;
        q4k_scale_min(j + 1, b->scales, &sc, &mn);
        float d2 = d * (float)sc, m2 = dmin * (float)mn;
        for (int l = 0; l < 32; l++) *y++ = d1 * (float)(q[l] & 0x0f) - m1;
        for (int l = 0; l < 32; l++) *y++ = d2 * (float)(q[l] >> 4) - m2;
        q += 32;
    }
}

static void deq_q6_K(const rp_block_q6_K *b, float *y) {
    float d = rp_f16_to_f32(b->d);
    const uint8_t *ql = b->ql, *qh = b->qh;
    const int8_t *sc = b->scales;
    for (int n = 0; n < RP_QK_K; n += 128) {  /* 128 values: four groups of 32 sharing ql/qh bytes */
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = (int)((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32;
            int q2 = (int)((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
            int q3 = (int)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            int q4 = (int)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * (float)sc[is + 0] * (float)q1;
            y[l + 32] = d * (float)sc[is + 2] * (float)q2;
            y[l + 64] = d * (float)sc[is + 4] * (float)q3;
            y[l + 96] = d * (float)sc[is + 6] * (float)q4;
        }
        y += 128; ql += 64; qh += 32; sc += 8;
    }
}

/* Reference dequantization of one row of n elements. */
rp_status rp_dequantize_row(rp_dtype t, const void *src, float *y, int64_t n) {
    int bs = rp_dtype_block(t);
    if (!rp_dtype_dequantizable(t)) return rp_fail(RP_ERR_UNSUPPORTED, "dequantize: dtype %s (%d) not supported", rp_dtype_name(t), (int)t);
    if (n < 0 || n % bs) return rp_fail(RP_ERR_INVAL, "dequantize %s: row of %lld elements is not whole blocks of %d", rp_dtype_name(t), (long long)n, bs);
    int64_t nb = n / bs;
    switch (t) {
    case RP_F32: memcpy(y, src, (size_t)n * 4); break;
    case RP_F16: { const uint16_t *h = src; for (int64_t i = 0; i < n; i++) y[i] = rp_f16_to_f32(h[i]); } break;
    case RP_BF16: { const uint16_t *h = src; for (int64_t i = 0; i < n; i++) y[i] = rp_bf16_to_f32(h[i]); } break;
    case RP_Q4_0: {
        const rp_block_q4_0 *b = src;
        for (int64_t i = 0; i < nb; i++, y += RP_QK) {
            float d = rp_f16_to_f32(b[i].d);
            for (int j = 0; j < 16; j++) {
                y[j] = (float)((b[i].qs[j] & 0x0f) - 8) * d;
                y[j + 16] = (float)((b[i].qs[j] >> 4) - 8) * d;
            }
        }
    } break;
    case RP_Q4_1: {
        const rp_block_q4_1 *b = src;
        for (int64_t i = 0; i < nb; i++, y += RP_QK) {
            float d = rp_f16_to_f32(b[i].d), m = rp_f16_to_f32(b[i].m);
            for (int j = 0; j < 16; j++) {
                y[j] = (float)(b[i].qs[j] & 0x0f) * d + m;
                y[j + 16] = (float)(b[i].qs[j] >> 4) * d + m;
            }
        }
    } break;
    case RP_Q8_0: {
        const rp_block_q8_0 *b = src;
        for (int64_t i = 0; i < nb; i++, y += RP_QK) {
            float d = rp_f16_to_f32(b[i].d);
            for (int j = 0; j < 32; j++) y[j] = (float)b[i].qs[j] * d;
        }
    } break;
    case RP_Q4_K: { const rp_block_q4_K *b = src; for (int64_t i = 0; i < nb; i++) deq_q4_K(&b[i], y + i * RP_QK_K); } break;
    case RP_Q6_K: { const rp_block_q6_K *b = src; for (int64_t i = 0; i < nb; i++) deq_q6_K(&b[i], y + i * RP_QK_K); } break;
    default: break;
    }
    return RP_OK;
}

/* Reference quantization of one row (q4_0, q4_1, q8_0, f16, bf16, f32; q4_K, q6_K in quant_k.c). */
rp_status rp_quantize_row(rp_dtype t, const float *x, void *dst, int64_t n) {
    int bs = rp_dtype_block(t);
    if (bs == 0 || n < 0 || n % bs) return rp_fail(RP_ERR_INVAL, "quantize %s: row of %lld elements is not whole blocks", rp_dtype_name(t), (long long)n);
    int64_t nb = n / bs;
    switch (t) {
    case RP_F32: memcpy(dst, x, (size_t)n * 4); return RP_OK;
    case RP_F16: { uint16_t *h = dst; for (int64_t i = 0; i < n; i++) h[i] = rp_f32_to_f16(x[i]); } return RP_OK;
    case RP_BF16: { uint16_t *h = dst; for (int64_t i = 0; i < n; i++) h[i] = rp_f32_to_bf16(x[i]); } return RP_OK;
    case RP_Q8_0: {
        rp_block_q8_0 *b = dst;
        for (int64_t i = 0; i < nb; i++, x += RP_QK) {
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
            float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
            b[i].d = rp_f32_to_f16(d);
            for (int j = 0; j < 32; j++) b[i].qs[j] = (int8_t)roundf(x[j] * id);
        }
    } return RP_OK;
    case RP_Q4_0: {
        rp_block_q4_0 *b = dst;
        for (int64_t i = 0; i < nb; i++, x += RP_QK) {
            float amax = 0, vmax = 0;              /* the value of largest magnitude, with its sign */
            for (int j = 0; j < 32; j++) if (fabsf(x[j]) > amax) { amax = fabsf(x[j]); vmax = x[j]; }
            float d = vmax / -8.0f, id = d != 0 ? 1.0f / d : 0.0f;
            b[i].d = rp_f32_to_f16(d);
            for (int j = 0; j < 16; j++) {
                int q0 = (int)(x[j] * id + 8.5f), q1 = (int)(x[j + 16] * id + 8.5f);
                q0 = q0 > 15 ? 15 : q0 < 0 ? 0 : q0;
                q1 = q1 > 15 ? 15 : q1 < 0 ? 0 : q1;
                b[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
            }
        }
    } return RP_OK;
    case RP_Q4_1: {
        rp_block_q4_1 *b = dst;
        for (int64_t i = 0; i < nb; i++, x += RP_QK) {
            float lo = x[0], hi = x[0];
            for (int j = 1; j < 32; j++) { lo = fminf(lo, x[j]); hi = fmaxf(hi, x[j]); }
            float d = (hi - lo) / 15.0f, id = d != 0 ? 1.0f / d : 0.0f;
            b[i].d = rp_f32_to_f16(d);
            b[i].m = rp_f32_to_f16(lo);
            for (int j = 0; j < 16; j++) {
                int q0 = (int)((x[j] - lo) * id + 0.5f), q1 = (int)((x[j + 16] - lo) * id + 0.5f);
                q0 = q0 > 15 ? 15 : q0 < 0 ? 0 : q0;
                q1 = q1 > 15 ? 15 : q1 < 0 ? 0 : q1;
                b[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
            }
        }
    } return RP_OK;
    case RP_Q4_K: case RP_Q6_K: return rp_quantize_row_k(t, x, dst, n);
    default:
        return rp_fail(RP_ERR_UNSUPPORTED, "quantize: dtype %s has no quantizer", rp_dtype_name(t));
    }
}

/* Quantize an activation row to int8 blocks of 32 (scale = max|x|/127, round to nearest). */
void rp_quantize_row_q8(const float *x, int64_t n, rp_q8_row *r) {
    int64_t nb = n / RP_QK;
    r->nb = nb;
    for (int64_t b = 0; b < nb; b++, x += RP_QK) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            int q = (int)lrintf(x[j] * id);
            r->q[b * RP_QK + j] = (int8_t)q;
            sum += q;
        }
        r->d[b] = d;
        r->s[b] = d * (float)sum;
    }
}

/* Reference integer dot product: per block d_w * d_a * sum(qw * qa), plus the offset terms. */
float rp_dot_q8_ref(rp_dtype t, const void *w, const rp_q8_row *a, int64_t n) {
    int64_t nb = n / RP_QK;
    float acc = 0;
    for (int64_t b = 0; b < nb; b++) {
        const int8_t *qa = a->q + b * RP_QK;
        int isum = 0;
        float dw, off = 0;
        if (t == RP_Q8_0) {
            const rp_block_q8_0 *blk = (const rp_block_q8_0 *)w + b;
            for (int j = 0; j < 32; j++) isum += blk->qs[j] * qa[j];
            dw = rp_f16_to_f32(blk->d);
        } else if (t == RP_Q4_0) {
            const rp_block_q4_0 *blk = (const rp_block_q4_0 *)w + b;
            for (int j = 0; j < 16; j++) isum += (blk->qs[j] & 0x0f) * qa[j] + (blk->qs[j] >> 4) * qa[j + 16];
            dw = rp_f16_to_f32(blk->d);
            off = -8.0f * dw * a->s[b];
        } else {
            const rp_block_q4_1 *blk = (const rp_block_q4_1 *)w + b;
            for (int j = 0; j < 16; j++) isum += (blk->qs[j] & 0x0f) * qa[j] + (blk->qs[j] >> 4) * qa[j + 16];
            dw = rp_f16_to_f32(blk->d);
            off = rp_f16_to_f32(blk->m) * a->s[b];
        }
        acc += dw * a->d[b] * (float)isum + off;
    }
    return acc;
}
