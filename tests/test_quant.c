/* test_quant.c: quantized block formats and their kernels: half / bfloat16 conversions (exhaustive
 * round trips, hardware F16C as an independent reference, rounding ties), quantize/dequantize error
 * bounds of q4_0 / q4_1 / q8_0 / f16 / bf16 (half a step, or a full step where the format's code range is
 * asymmetric), bit-exact re-quantization of dequantized q4_0 / q4_1 / q8_0 blocks (random, and every block of
 * SmolLM2's file with the mirror), hand-built q4_K and q6_K blocks decoded against the layout's definition, and the fast
 * dot products (int8 VNNI, exact in-register dequantization) against the reference formulas. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "model/model_file.h"
#include "tensor/qdot.h"
#include "tensor/quant.h"
#if defined(__F16C__)
#include <immintrin.h>
#endif

#include "test_vectors.h"

static void test_half(void) {
    /* every finite half round-trips exactly; hardware conversion agrees both ways */
    int bad = 0, hw_bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = rp_f16_to_f32((uint16_t)h);
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) { if (!isnan(f)) bad++; continue; }
        if (rp_f32_to_f16(f) != h) bad++;
#if defined(__F16C__)
        if (_cvtsh_ss((unsigned short)h) != f) hw_bad++;
#endif
    }
    CHECK(bad == 0);
    CHECK(hw_bad == 0);
    CHECK(rp_f32_to_f16(1.0f) == 0x3c00);
    CHECK(rp_f32_to_f16(65504.0f) == 0x7bff);
    CHECK(rp_f32_to_f16(65520.0f) == 0x7c00);
    CHECK(rp_f32_to_f16(ldexpf(1.0f, -24)) == 0x0001);
    CHECK(rp_f32_to_f16(1.0f + ldexpf(1.0f, -11)) == 0x3c00);        /* tie to even */
    CHECK(rp_f32_to_f16(1.0f + 3 * ldexpf(1.0f, -11)) == 0x3c02);
#if defined(__F16C__)
    int mism = 0;
    for (int i = 0; i < 200000; i++) {
        float f = ldexpf(frand(), (int)(frand() * 30));
        if (rp_f32_to_f16(f) != _cvtss_sh(f, 0)) mism++;
    }
    CHECK_MSG(mism == 0, "%d of 200000 float->half conversions differ from F16C", mism);
#endif
    CHECK(rp_bf16_to_f32(0x3f80) == 1.0f);
    CHECK(rp_f32_to_bf16(1.0f) == 0x3f80);
    CHECK(rp_f32_to_bf16(1.0f + ldexpf(1.0f, -8)) == 0x3f80);         /* tie to even */
    CHECK(rp_f32_to_bf16(1.0f + 3 * ldexpf(1.0f, -8)) == 0x3f82);
    CHECK(isnan(rp_bf16_to_f32(rp_f32_to_bf16(NAN))));
}

static void test_quant_roundtrip(void) {
    const int n = 256;
    float *x = randv(n, 3.0f), y[256];
    unsigned char buf[2048];
    rp_dtype types[] = { RP_Q4_0, RP_Q4_1, RP_Q8_0, RP_F16, RP_BF16 };
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        rp_dtype t = types[ti];
        CHECK(rp_quantize_row(t, x, buf, n) == RP_OK);
        CHECK(rp_dequantize_row(t, buf, y, n) == RP_OK);
        for (int b = 0; b < n; b += 32) {
            float amax = 0, lo = x[b], hi = x[b];
            for (int j = 0; j < 32; j++) { amax = fmaxf(amax, fabsf(x[b + j])); lo = fminf(lo, x[b + j]); hi = fmaxf(hi, x[b + j]); }
            /* half a quantization step, plus the f16 rounding of the scale times the largest code */
            float tol = t == RP_Q4_0 ? amax / 8 + amax * 2e-3f   /* codes reach -8d but only +7d: a full step */
                      : t == RP_Q4_1 ? (hi - lo) / 15 * 0.5f + (fabsf(lo) + fabsf(hi)) * 2e-3f
                      : t == RP_Q8_0 ? amax / 127 * 0.5f + amax * 1e-3f
                      : t == RP_F16 ? amax * 1e-3f : amax * 8e-3f;
            for (int j = 0; j < 32; j++) CHECK_MSG(fabsf(y[b + j] - x[b + j]) <= tol, "%s elem %d: %g vs %g", rp_dtype_name(t), b + j, y[b + j], x[b + j]);
        }
    }
    CHECK(rp_dequantize_row(RP_Q4_0, buf, y, 33) == RP_ERR_INVAL);
    CHECK(rp_dequantize_row(RP_I32, buf, y, 32) == RP_ERR_UNSUPPORTED);
    free(x);
}

/* Re-quantizing dequantized blocks gives the blocks back bit for bit (what makes exporting an unchanged model in
 * its base types lossless): random blocks over scales from 1e-4 to 1e3, then, with the mirror, every q4_1 / q8_0
 * block of SmolLM2's GGUF. A block holding both signs' extremes would not (q4_0 reaches -8d but only +7d), so
 * random blocks are made by the quantizer itself, as every block in a file is. */
static int requant_mismatches(rp_dtype t, const void *blocks, int64_t n, unsigned char *buf, float *y) {
    size_t bb = rp_dtype_block_bytes(t);
    int bad = 0;
    for (int64_t b = 0; b < n / RP_QK; b++) {
        const unsigned char *src = (const unsigned char *)blocks + b * bb;
        rp_dequantize_row(t, src, y, RP_QK);
        rp_quantize_row(t, y, buf, RP_QK);
        bad += memcmp(src, buf, bb) != 0;
    }
    return bad;
}

static void test_requant_exact(void) {
    rp_dtype types[] = { RP_Q4_0, RP_Q4_1, RP_Q8_0 };
    unsigned char q[8 * 34], back[34];
    float y[32];
    for (size_t ti = 0; ti < 3; ti++) {
        int bad = 0;
        for (int k = 0; k < 2000; k++) {
            float scale = powf(10.0f, -4.0f + 7.0f * (float)(k % 100) / 100.0f), shift = k % 3 == 0 ? scale * 0.7f : 0.0f;
            float x[256];
            for (int i = 0; i < 256; i++) x[i] = frand() * scale + shift;
            rp_quantize_row(types[ti], x, q, 256);
            bad += requant_mismatches(types[ti], q, 256, back, y);
        }
        CHECK_MSG(bad == 0, "%s: %d of 16000 random blocks changed when re-quantized", rp_dtype_name(types[ti]), bad);
    }
    const char *mirror = getenv("REPRO_MIRROR");
    char path[4096];
    snprintf(path, sizeof path, "%s/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf", mirror ? mirror : "");
    rp_model_file *f;
    if (!mirror || rp_model_file_open(path, &f) != RP_OK) { printf("skip [mirror]: SmolLM2 not in REPRO_MIRROR (real-block re-quantization)\n"); return; }
    int64_t blocks = 0, bad = 0;
    for (int i = 0; i < rp_model_file_n_weights(f); i++) {
        const rp_weight *w = rp_model_file_weight_at(f, i);
        if (w->dtype != RP_Q4_1 && w->dtype != RP_Q8_0 && w->dtype != RP_Q4_0) continue;
        int64_t n = (int64_t)(w->nbytes / rp_dtype_block_bytes(w->dtype)) * RP_QK;
        bad += requant_mismatches(w->dtype, w->data, n, back, y);
        blocks += n / RP_QK;
    }
    rp_model_file_free(f);
    CHECK_MSG(blocks > 1000000 && bad == 0, "SmolLM2: %lld of %lld blocks changed when re-quantized", (long long)bad, (long long)blocks);
    printf("re-quantization: every one of %lld SmolLM2 q4_1/q8_0 blocks and 48000 random blocks comes back bit for bit\n", (long long)blocks);
}

/* Hand-built K-quant blocks: the values follow from the documented GGML layout. */
static void test_kquants(void) {
    rp_block_q4_K b;
    memset(&b, 0, sizeof b);
    b.d = rp_f32_to_f16(0.5f);
    b.dmin = rp_f32_to_f16(0.25f);
    int sc[8] = { 1, 2, 3, 4, 5, 6, 7, 40 }, mn[8] = { 0, 1, 2, 3, 9, 10, 11, 33 };
    for (int j = 0; j < 4; j++) { b.scales[j] = (uint8_t)sc[j]; b.scales[j + 4] = (uint8_t)mn[j]; }
    for (int j = 4; j < 8; j++) {   /* 6-bit values: low 4 bits in bytes 8..11, top 2 bits in bytes 0..7's top bits */
        b.scales[j + 4] = (uint8_t)((sc[j] & 15) | ((mn[j] & 15) << 4));
        b.scales[j - 4] |= (uint8_t)((sc[j] >> 4) << 6);
        b.scales[j] |= (uint8_t)((mn[j] >> 4) << 6);
    }
    for (int i = 0; i < 128; i++) b.qs[i] = (uint8_t)((i * 7) & 0xff);
    float y[256];
    CHECK(rp_dequantize_row(RP_Q4_K, &b, y, 256) == RP_OK);
    int bad = 0;
    for (int e = 0; e < 256; e++) {
        int j = e / 32, l = e % 32;
        int q = (j % 2 == 0) ? (b.qs[32 * (j / 2) + l] & 15) : (b.qs[32 * (j / 2) + l] >> 4);
        float want = 0.5f * (float)sc[j] * (float)q - 0.25f * (float)mn[j];
        if (fabsf(y[e] - want) > 1e-5f) bad++;
    }
    CHECK_MSG(bad == 0, "q4_K: %d of 256 values wrong", bad);

    rp_block_q6_K c;
    memset(&c, 0, sizeof c);
    c.d = rp_f32_to_f16(0.125f);
    for (int i = 0; i < 16; i++) c.scales[i] = (int8_t)(i - 8);
    for (int i = 0; i < 128; i++) c.ql[i] = (uint8_t)((i * 13 + 5) & 0xff);
    for (int i = 0; i < 64; i++) c.qh[i] = (uint8_t)((i * 29 + 3) & 0xff);
    CHECK(rp_dequantize_row(RP_Q6_K, &c, y, 256) == RP_OK);
    bad = 0;
    for (int e = 0; e < 256; e++) {   /* element e: half h = e/128, quarter k = (e%128)/32, lane l = e%32 */
        int h = e / 128, k = (e % 128) / 32, l = e % 32;
        uint8_t lb = c.ql[64 * h + l + 32 * (k & 1)];
        int low = k < 2 ? (lb & 15) : (lb >> 4);
        int high = (c.qh[32 * h + l] >> (2 * k)) & 3;
        int q = (low | (high << 4)) - 32;
        float want = 0.125f * (float)c.scales[8 * h + 2 * k + l / 16] * (float)q;
        if (fabsf(y[e] - want) > 1e-5f) bad++;
    }
    CHECK_MSG(bad == 0, "q6_K: %d of 256 values wrong", bad);
}

static void test_qdot(void) {
    const int n = 576;   /* 18 blocks: even count; n = 608 gives an odd tail */
    for (int pass = 0; pass < 2; pass++) {
        int K = pass ? 608 : n;
        float *x = randv(K, 2.0f), *w = randv(K, 0.5f), wd[608];
        float d[32], s[32], d2[32], s2[32];
        int8_t q[608], q2[608];
        rp_q8_row a = { d, s, q, 0 }, a2 = { d2, s2, q2, 0 };
        rp_quantize_row_q8(x, K, &a);
        rp_quantize_row_q8_fast(x, K, &a2);
        int qbad = 0;
        for (int i = 0; i < K; i++) qbad += q[i] != q2[i];
        CHECK(qbad == 0);
        rp_dtype types[] = { RP_Q4_0, RP_Q4_1, RP_Q8_0 };
        unsigned char buf[2 * 608];   /* the largest row below: f16/bf16 of up to 608 elements */
        for (int ti = 0; ti < 3; ti++) {
            CHECK(rp_dtype_row_bytes(types[ti], K) <= sizeof buf);
            rp_quantize_row(types[ti], w, buf, K);
            rp_dequantize_row(types[ti], buf, wd, K);
            double exact = 0, mag = 0;
            for (int i = 0; i < K; i++) { exact += (double)wd[i] * x[i]; mag += fabs((double)wd[i] * x[i]); }
            float r = rp_dot_q8_ref(types[ti], buf, &a, K), f = rp_qdot_row(types[ti], buf, &a, K);
            CHECK_MSG(fabs(r - exact) <= 0.01 * mag, "%s: int8 dot %g vs f32 %g", rp_dtype_name(types[ti]), r, exact);
            CHECK_NEAR(f, r, 1e-4 * mag);
            float yf[608], xs[19];
            rp_dequantize_row_fast(types[ti], buf, yf, K);
            CHECK(rel_err(yf, wd, K) < 1e-6);
            for (int b = 0; b < K / 32; b++) { xs[b] = 0; for (int i = 0; i < 32; i++) xs[b] += x[b * 32 + i]; }
            CHECK_NEAR(rp_fdot_row(types[ti], buf, x, xs, K), exact, 1e-5 * mag);
            {   /* 24-bit activations: f32 quality */
                float d24[19], s24[19], s2[19];
                uint8_t x0[608], x1[608];
                int8_t x2[608];
                rp_q24_row a24 = { d24, s24, s2, x0, x1, x2, 0 };
                rp_quantize_row_q24(x, K, &a24);
                int limbs_bad = 0;
                for (int i = 0; i < K; i++) {
                    double X = (double)x2[i] * 65536 + (double)x1[i] * 256 + x0[i];
                    if (fabs(X * d24[i / 32] - x[i]) > 2 * d24[i / 32]) {   /* within two steps of 2^-23 of the block max (rounding + float error of x/d) */
                        if (!limbs_bad) fprintf(stderr, "limb %d: X %g d %g x %g\n", i, X, d24[i / 32], x[i]);
                        limbs_bad++;
                    }
                }
                CHECK(limbs_bad == 0);
                CHECK_NEAR(rp_q24dot_row(types[ti], buf, &a24, K), exact, 1e-6 * mag);
            }
            {   /* decode layout (qdot_packed.c): repacked row, grouped limbs, partial last group (18 and 19
                 * blocks); the fast kernel, the plain-C reference, and two rows at once against the f32 dot */
                unsigned char pk[1024];
                static unsigned char mem[2][8192] __attribute__((aligned(64)));
                CHECK(rp_q24_row_bytes(K) <= sizeof mem[0]);
                CHECK(rp_packed_repack(types[ti], buf, pk, 1, K, rp_dtype_row_bytes(types[ti], K)) == RP_OK);
                rp_q24_row g[2];
                float *xneg = malloc((size_t)K * sizeof *xneg);
                for (int i = 0; i < K; i++) xneg[i] = -0.5f * x[i];
                rp_q24_row_carve(&g[0], mem[0], K);
                rp_q24_row_carve(&g[1], mem[1], K);
                rp_quantize_row_q24g(x, K, &g[0]);
                rp_quantize_row_q24g(xneg, K, &g[1]);
                float y2[2];
                rp_packed_dot_rows(types[ti], pk, g, 2, K, y2, 1);
                CHECK_MSG(fabs(y2[0] - exact) <= 1e-6 * mag, "%s K=%d: packed dot %g vs f32 %g", rp_dtype_name(types[ti]), K, y2[0], exact);
                CHECK_NEAR(y2[1], -0.5 * exact, 1e-6 * mag);
                CHECK_NEAR(rp_packed_dot_ref(types[ti], pk, &g[0], K), exact, 1e-6 * mag);
                float y1;
                rp_packed_dot_rows(types[ti], pk, &g[1], 1, K, &y1, 1);
                CHECK(y1 == y2[1]);   /* a row's result does not depend on the batch */
                /* f32 rows (batched decoding): 11 rows (a pass of 8 and one of 3) of alternating x, -x/2 */
                float *xs11 = malloc((size_t)11 * K * sizeof *xs11), y11[11], y3[3];
                for (int r = 0; r < 11; r++) memcpy(xs11 + (size_t)r * K, r % 2 ? xneg : x, (size_t)K * sizeof(float));
                rp_packed_fdot_rows(types[ti], pk, xs11, K, 11, K, y11, 1);
                for (int r = 0; r < 11; r++)
                    CHECK_MSG(fabs(y11[r] - (r % 2 ? -0.5 : 1.0) * exact) <= 1e-6 * mag, "%s K=%d: packed f32 row %d: %g vs %g", rp_dtype_name(types[ti]), K, r, y11[r], (r % 2 ? -0.5 : 1.0) * exact);
                CHECK_NEAR(rp_packed_fdot_ref(types[ti], pk, x, K), exact, 1e-6 * mag);
                rp_packed_fdot_rows(types[ti], pk, xs11 + K, K, 3, K, y3, 1);
                CHECK(y3[0] == y11[1] && y3[1] == y11[2] && y3[2] == y11[3]);   /* independent of the batch here too */
                /* tiles of several weight rows (batched decoding's matmul): 7 different weight rows (w rotated by
                 * n blocks: a tile of 4, then 3 single rows) against 11 different rows, and 6 of them against 3
                 * rows, equal the one-row calls bit for bit (a mixed-up output slot would show) */
                enum { PK = sizeof pk };
                uint8_t *pk7 = malloc(7 * PK);
                float *wr = malloc((size_t)K * sizeof *wr), *xs = malloc((size_t)11 * K * sizeof *xs), y77[11 * 7], y37[3 * 7], y1r[11];
                for (int r = 0; r < 11; r++) for (int i = 0; i < K; i++) xs[(size_t)r * K + i] = x[i] * (1.0f + 0.25f * r) - 0.01f * r;
                for (int n = 0; n < 7; n++) {
                    for (int i = 0; i < K; i++) wr[i] = w[(i + 32 * n) % K];
                    rp_quantize_row(types[ti], wr, buf, K);
                    CHECK(rp_packed_repack(types[ti], buf, pk7 + (size_t)n * PK, 1, K, PK) == RP_OK);
                }
                rp_packed_fdot_tile(types[ti], pk7, PK, 7, xs, K, 11, K, y77, 7);
                rp_packed_fdot_tile(types[ti], pk7 + PK, PK, 6, xs + K, K, 3, K, y37, 7);
                int same = 1;
                for (int n = 0; n < 7; n++) {
                    rp_packed_fdot_rows(types[ti], pk7 + (size_t)n * PK, xs, K, 11, K, y1r, 1);
                    for (int r = 0; r < 11; r++) same &= y77[r * 7 + n] == y1r[r] && (n == 0 || r < 1 || r > 3 || y37[(r - 1) * 7 + n - 1] == y1r[r]);
                }
                CHECK_MSG(same, "%s K=%d: a tile's results differ from the one-row calls", rp_dtype_name(types[ti]), K);
                free(pk7); free(wr); free(xs);
                free(xs11);
                CHECK(rp_packed_repack(RP_F16, buf, pk, 1, K, 4096) == RP_ERR_UNSUPPORTED);
                free(xneg);
            }
        }
        rp_dtype ht[2] = { RP_F16, RP_BF16 };
        for (int ti = 0; ti < 2; ti++) {   /* exact dot for half types, odd tails included */
            CHECK(rp_dtype_row_bytes(ht[ti], K - 3) <= sizeof buf);
            rp_quantize_row(ht[ti], w, buf, K - 3);
            rp_dequantize_row(ht[ti], buf, wd, K - 3);
            double exact = 0, mag = 0;
            for (int i = 0; i < K - 3; i++) { exact += (double)wd[i] * x[i]; mag += fabs((double)wd[i] * x[i]); }
            CHECK_NEAR(rp_fdot_row(ht[ti], buf, x, NULL, K - 3), exact, 1e-5 * mag);
            float yf[608];
            rp_dequantize_row_fast(ht[ti], buf, yf, K - 3);   /* conversions are exact: bit for bit */
            CHECK_MSG(memcmp(yf, wd, (size_t)(K - 3) * sizeof(float)) == 0, "%s: fast dequantization differs", rp_dtype_name(ht[ti]));
        }
        {   /* f32 weights: the plain dot (vector body, 8-lane and masked tails) */
            double exact = 0, mag = 0;
            for (int i = 0; i < K - 3; i++) { exact += (double)w[i] * x[i]; mag += fabs((double)w[i] * x[i]); }
            CHECK_NEAR(rp_fdot_row(RP_F32, w, x, NULL, K - 3), exact, 1e-5 * mag);
        }
        free(x);
        free(w);
    }
}

int main(void) {
    test_half();
    test_quant_roundtrip();
    test_requant_exact();
    test_kquants();
    test_qdot();
    return checks_done("test_quant");
}
