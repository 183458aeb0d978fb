/* test_quant_k.c: the q4_K / q6_K quantizers (tensor/quant_k.c). Without arguments (what `make test` runs):
 *  - every code is the nearest one under the block's stored (decoded) scales, except where the format's code range
 *    clamps it (counted, and rare), on Gaussian, heavy-tailed and hand-made edge blocks (zeros, constants, one
 *    spike, small and large magnitudes); a zero super-block is all-zero bytes, and one below f16's smallest scale
 *    decodes to zeros;
 *  - re-quantizing a dequantized block: the fraction of blocks reproduced byte for byte is printed, and every
 *    value of the second round trip stays within one code step of the first (the stated bound: the scale search
 *    may pick another grid for lattice data, so bit-exactness is not what the algorithm promises);
 *  - rows that are not whole super-blocks, NaN / Inf inputs and magnitudes past f16's scales are errors naming
 *    the row length, the element or the super-block; random float bits never crash or decode to non-finite values.
 * With `--dump DIR` it writes the comparison inputs (DIR/inputs.f32: Gaussian, heavy-tailed and, with the mirror,
 * SmolLM2's ffn_down weights dequantized, rows of 1536), and with `--compare DIR` it reads llama.cpp's blocks of
 * the same inputs (DIR/ggml.q4_K, DIR/ggml.q6_K, written by tests/ggml_quantize.py through ggml_quantize_chunk)
 * and checks our squared error is no worse than theirs per data set and that at least 99% of the super-blocks are
 * byte-identical to theirs (measured: all of them; tests/quant_k_peer_test.sh runs both). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "model/model_file.h"
#include "tensor/quant.h"
#include "test_vectors.h"

enum { COLS = 1536 };   /* a row: six super-blocks (SmolLM2's ffn_down rows) */

static float gauss(void) {
    float u = 0.5f * (frand() + 1.0f) + 1e-7f, v = 0.5f * (frand() + 1.0f);
    return sqrtf(-2.0f * logf(u)) * cosf(6.2831853f * v);
}

/* The decoded step of element i's sub-block and whether its code sits at an end of the range. */
static float step_of(rp_dtype t, const void *blk, int i, int *at_end) {
    if (t == RP_Q6_K) {
        const rp_block_q6_K *b = blk;
        int h = i / 128, l = i % 32, g = (i % 128) / 32;
        const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
        int lo = g == 0 ? ql[l] & 15 : g == 1 ? ql[l + 32] & 15 : g == 2 ? ql[l] >> 4 : ql[l + 32] >> 4;
        int q = lo | (((qh[l] >> (2 * g)) & 3) << 4);
        *at_end = q == 0 || q == 63;
        return fabsf(rp_f16_to_f32(b->d) * (float)b->scales[i / 16]);
    }
    const rp_block_q4_K *b = blk;
    int j = i / 32, sc;
    const uint8_t *s = b->scales;
    sc = j < 4 ? s[j] & 63 : (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
    int g = i / 64, l = i % 32, q = (i % 64) < 32 ? b->qs[32 * g + l] & 15 : b->qs[32 * g + l] >> 4;
    *at_end = q == 0 || q == 15;
    return rp_f16_to_f32(b->d) * (float)sc;
}

/* Quantize n values of x as t and check each decoded value is within half a step of x unless clamped; returns the
 * clamped count, adds the squared error to *se. */
static int64_t check_nearest(rp_dtype t, const float *x, int64_t n, double *se, const char *what) {
    size_t bb = rp_dtype_block_bytes(t);
    uint8_t *q = malloc(rp_dtype_row_bytes(t, n));
    float *y = malloc((size_t)n * sizeof *y);
    int64_t clamped = 0, bad = 0;
    CHECK(rp_quantize_row(t, x, q, n) == RP_OK && rp_dequantize_row(t, q, y, n) == RP_OK);
    for (int64_t i = 0; i < n; i++) {
        int end;
        float st = step_of(t, q + (size_t)(i / RP_QK_K) * bb, (int)(i % RP_QK_K), &end);
        float e = fabsf(y[i] - x[i]);
        *se += (double)e * e;
        if (e <= 0.5f * st * 1.0001f + 1e-30f) continue;
        if (end) clamped++;
        else if (bad++ < 3) fprintf(stderr, "%s %s: element %lld: %g decodes to %g (step %g)\n", what, rp_dtype_name(t), (long long)i, x[i], y[i], st);
    }
    CHECK_MSG(bad == 0, "%s %s: %lld values not at their nearest code", what, rp_dtype_name(t), (long long)bad);
    free(q);
    free(y);
    return clamped;
}

static void test_nearest_and_error(void) {
    const rp_dtype types[2] = { RP_Q4_K, RP_Q6_K };
    int64_t n = 256 * COLS;
    float *x = malloc((size_t)n * sizeof *x);
    for (int ti = 0; ti < 2; ti++) {
        for (int64_t i = 0; i < n; i++) x[i] = 0.02f * gauss();
        double se = 0, ss = 0;
        for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
        int64_t cl = check_nearest(types[ti], x, n, &se, "gaussian");
        double rel = sqrt(se / ss);
        printf("%s gaussian: relative rms error %.4f, %lld of %lld values clamped\n", rp_dtype_name(types[ti]), rel, (long long)cl, (long long)n);
        /* a uniform 4-bit (6-bit) grid over ±3σ alone gives about 0.12 (0.029): the fit must beat a plain grid */
        CHECK(rel < (types[ti] == RP_Q4_K ? 0.12 : 0.029));
        CHECK(cl < n / 100);
        for (int64_t i = 0; i < n; i++) x[i] = 0.02f * gauss() * (frand() > 0.98f ? 10.0f : 1.0f);
        se = 0;
        cl = check_nearest(types[ti], x, n, &se, "heavy-tailed");
        CHECK(cl < n / 100);
        /* edge blocks: zeros, constants of each sign, one spike, tiny and large magnitudes */
        float e[7 * 256];
        for (int i = 0; i < 7 * 256; i++) {
            int k = i / 256;
            e[i] = k == 0 ? 0.0f : k == 1 ? -0.5f : k == 2 ? 0.75f : k == 3 ? (i % 256 == 17 ? 3.0f : 0.0f)
                 : k == 4 ? 1e-3f * frand() : k == 5 ? 1000.0f * frand() : (i % 2 ? 1.0f : -1.0f);
        }
        se = 0;
        check_nearest(types[ti], e, 7 * 256, &se, "edge blocks");
        uint8_t blk[256], zero[256] = {0};
        CHECK(rp_quantize_row(types[ti], e, blk, 256) == RP_OK);
        CHECK(memcmp(blk, zero, rp_dtype_block_bytes(types[ti])) == 0);
        /* below f16's smallest scale (6e-8 per step) a block decodes to zeros: the format's floor, not an error */
        float tiny[256], back[256];
        for (int i = 0; i < 256; i++) tiny[i] = 1e-9f * frand();
        CHECK(rp_quantize_row(types[ti], tiny, blk, 256) == RP_OK && rp_dequantize_row(types[ti], blk, back, 256) == RP_OK);
        for (int i = 0; i < 256; i++) CHECK_NEAR(back[i], 0, 2e-9);
    }
    free(x);
}

static void test_requantize(void) {
    const rp_dtype types[2] = { RP_Q4_K, RP_Q6_K };
    int64_t n = 64 * COLS;
    float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y), *z = malloc((size_t)n * sizeof *z);
    for (int ti = 0; ti < 2; ti++) {
        rp_dtype t = types[ti];
        size_t bb = rp_dtype_block_bytes(t), rb = rp_dtype_row_bytes(t, n);
        uint8_t *a = malloc(rb), *b = malloc(rb);
        for (int64_t i = 0; i < n; i++) x[i] = 0.02f * gauss();
        rp_quantize_row(t, x, a, n);
        rp_dequantize_row(t, a, y, n);
        rp_quantize_row(t, y, b, n);
        rp_dequantize_row(t, b, z, n);
        int64_t same = 0, nb = n / RP_QK_K, beyond = 0;
        for (int64_t k = 0; k < nb; k++) same += memcmp(a + k * bb, b + k * bb, bb) == 0;
        for (int64_t i = 0; i < n; i++) {
            int end;
            float st = step_of(t, a + (size_t)(i / RP_QK_K) * bb, (int)(i % RP_QK_K), &end);
            if (fabsf(z[i] - y[i]) > st * 1.0001f + 1e-30f) beyond++;
        }
        printf("%s re-quantized: %lld of %lld super-blocks byte-identical; %lld values moved more than one step\n", rp_dtype_name(t),
               (long long)same, (long long)nb, (long long)beyond);
        CHECK(beyond == 0);
        free(a);
        free(b);
    }
    free(x);
    free(y);
    free(z);
}

static void test_errors(void) {
    float x[512];
    uint8_t q[512];
    for (int i = 0; i < 512; i++) x[i] = frand();
    CHECK(rp_quantize_row(RP_Q4_K, x, q, 100) == RP_ERR_INVAL && strstr(rp_errmsg(), "100"));
    CHECK(rp_quantize_row_k(RP_Q6_K, x, q, 300) == RP_ERR_INVAL && strstr(rp_errmsg(), "300"));
    CHECK(rp_quantize_row_k(RP_Q8_0, x, q, 256) == RP_ERR_UNSUPPORTED);
    x[5] = NAN;
    CHECK(rp_quantize_row(RP_Q4_K, x, q, 256) == RP_ERR_INVAL && strstr(rp_errmsg(), "element 5"));
    x[5] = 0;
    x[300] = -INFINITY;
    CHECK(rp_quantize_row(RP_Q6_K, x, q, 512) == RP_ERR_INVAL && strstr(rp_errmsg(), "element 300"));
    x[300] = 3e12f;
    CHECK(rp_quantize_row(RP_Q6_K, x, q, 512) == RP_ERR_RANGE && strstr(rp_errmsg(), "super-block 1"));
    CHECK(rp_quantize_row(RP_Q4_K, x, q, 512) == RP_ERR_RANGE && strstr(rp_errmsg(), "super-block 1"));
    x[300] = 1e25f;   /* x² overflows f32 in the fit's weighted sums: an error too, never a block silently zeroed */
    CHECK(rp_quantize_row(RP_Q6_K, x, q, 512) == RP_ERR_RANGE && strstr(rp_errmsg(), "super-block 1"));
    CHECK(rp_quantize_row(RP_Q4_K, x, q, 512) == RP_ERR_RANGE && strstr(rp_errmsg(), "super-block 1"));
    /* random float bits: either a clear error or blocks that decode to finite values */
    int bad = 0, ok = 0;
    uint32_t s = 12345;
    for (int it = 0; it < 2000; it++) {
        for (int i = 0; i < 256; i++) {
            s = s * 1664525u + 1013904223u;
            uint32_t u = s;
            if (it % 2) u = (u & 0x807fffffu) | ((uint32_t)(100 + (u >> 24) % 60) << 23);   /* half the runs: moderate exponents */
            memcpy(&x[i], &u, 4);
        }
        for (int ti = 0; ti < 2; ti++) {
            rp_dtype t = ti ? RP_Q6_K : RP_Q4_K;
            if (rp_quantize_row(t, x, q, 256) != RP_OK) continue;
            ok++;
            float y[256];
            rp_dequantize_row(t, q, y, 256);
            for (int i = 0; i < 256; i++) bad += !isfinite(y[i]);
        }
    }
    CHECK_MSG(bad == 0 && ok > 0, "random bits: %d non-finite decoded values (%d rows accepted)", bad, ok);
}

/* The comparison inputs: rows of COLS floats. */
static float *make_inputs(int64_t *rows, int *sets, int64_t set_rows[3]) {
    int64_t nr = 128 + 128, cap = nr + 576 * 2;
    float *x = malloc((size_t)cap * COLS * sizeof *x);
    for (int64_t i = 0; i < 128 * COLS; i++) x[i] = 0.02f * gauss();
    for (int64_t i = 128 * COLS; i < 256 * COLS; i++) x[i] = 0.02f * gauss() * (frand() > 0.98f ? 10.0f : 1.0f);
    set_rows[0] = set_rows[1] = 128;
    set_rows[2] = 0;
    *sets = 2;
    const char *mirror = getenv("REPRO_MIRROR");
    char path[4096];
    snprintf(path, sizeof path, "%s/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf", mirror ? mirror : "");
    rp_model_file *f;
    if (mirror && rp_model_file_open(path, &f) == RP_OK) {
        const char *names[2] = { "blk.0.ffn_down.weight", "blk.20.ffn_down.weight" };
        for (int k = 0; k < 2; k++) {
            const rp_weight *w = rp_model_file_weight(f, names[k]);
            if (!w || w->shape[1] != COLS) continue;
            size_t rb = rp_dtype_row_bytes(w->dtype, COLS);
            for (int64_t r = 0; r < w->shape[0]; r++) rp_dequantize_row(w->dtype, (const uint8_t *)w->data + r * rb, x + (nr + r) * COLS, COLS);
            nr += w->shape[0];
            set_rows[2] += w->shape[0];
        }
        rp_model_file_free(f);
        *sets = 3;
    } else printf("skip [mirror]: SmolLM2 not in REPRO_MIRROR (real weights left out of the llama.cpp comparison)\n");
    *rows = nr;
    return x;
}

static int dump(const char *dir) {
    int64_t rows, set_rows[3];
    int sets;
    float *x = make_inputs(&rows, &sets, set_rows);
    char p[4096];
    snprintf(p, sizeof p, "%s/inputs.f32", dir);
    FILE *f = fopen(p, "wb");
    int ok = f && fwrite(x, sizeof(float) * COLS, (size_t)rows, f) == (size_t)rows;
    if (f) ok = fclose(f) == 0 && ok;
    free(x);
    if (!ok) { fprintf(stderr, "cannot write %s\n", p); return 1; }
    printf("%lld rows of %d\n", (long long)rows, COLS);
    return 0;
}

static int compare(const char *dir) {
    int64_t rows, set_rows[3];
    int sets;
    float *x = make_inputs(&rows, &sets, set_rows);
    const char *set_name[3] = { "gaussian", "heavy-tailed", "SmolLM2 ffn_down" };
    const rp_dtype types[2] = { RP_Q4_K, RP_Q6_K };
    float *y = malloc(COLS * sizeof *y);
    for (int ti = 0; ti < 2; ti++) {
        rp_dtype t = types[ti];
        size_t rb = rp_dtype_row_bytes(t, COLS), bb = rp_dtype_block_bytes(t);
        uint8_t *ours = malloc(rb * (size_t)rows), *theirs = malloc(rb * (size_t)rows);
        char p[4096];
        snprintf(p, sizeof p, "%s/ggml.%s", dir, rp_dtype_name(t));
        FILE *f = fopen(p, "rb");
        int ok = f && fread(theirs, rb, (size_t)rows, f) == (size_t)rows;
        if (f) fclose(f);
        CHECK_MSG(ok, "cannot read %lld rows from %s", (long long)rows, p);
        if (!ok) { free(ours); free(theirs); continue; }
        for (int64_t r = 0; r < rows; r++) CHECK(rp_quantize_row(t, x + r * COLS, ours + r * rb, COLS) == RP_OK);
        int64_t r0 = 0;
        for (int s = 0; s < sets; s++) {
            double se_o = 0, se_t = 0, ss = 0;
            int64_t same = 0, nb = set_rows[s] * (COLS / RP_QK_K);
            for (int64_t r = r0; r < r0 + set_rows[s]; r++) {
                const float *xr = x + r * COLS;
                rp_dequantize_row(t, ours + r * rb, y, COLS);
                for (int i = 0; i < COLS; i++) { se_o += (double)(y[i] - xr[i]) * (y[i] - xr[i]); ss += (double)xr[i] * xr[i]; }
                rp_dequantize_row(t, theirs + r * rb, y, COLS);
                for (int i = 0; i < COLS; i++) se_t += (double)(y[i] - xr[i]) * (y[i] - xr[i]);
                for (int k = 0; k < COLS / RP_QK_K; k++) same += memcmp(ours + r * rb + k * bb, theirs + r * rb + k * bb, bb) == 0;
            }
            printf("%s %s: relative rms error ours %.6f, llama.cpp %.6f (ratio %.6f); %lld of %lld super-blocks byte-identical\n",
                   rp_dtype_name(t), set_name[s], sqrt(se_o / ss), sqrt(se_t / ss), sqrt(se_o / se_t), (long long)same, (long long)nb);
            CHECK_MSG(se_o <= se_t * 1.0001, "%s %s: our squared error %g is above llama.cpp's %g", rp_dtype_name(t), set_name[s], se_o, se_t);
            CHECK_MSG(same * 100 >= nb * 99, "%s %s: only %lld of %lld super-blocks equal llama.cpp's", rp_dtype_name(t), set_name[s], (long long)same, (long long)nb);
            r0 += set_rows[s];
        }
        free(ours);
        free(theirs);
    }
    free(x);
    free(y);
    return checks_done("test_quant_k --compare");
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--dump")) return dump(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "--compare")) return compare(argv[2]);
    test_nearest_and_error();
    test_requantize();
    test_errors();
    return checks_done("test_quant_k");
}
