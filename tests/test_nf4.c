/* test_nf4.c: NF4 with double quantization. The 16 levels are rebuilt independently from standard-normal
 * quantiles (QLoRA's construction, offset 0.9677083); every weight of a Gaussian matrix must get the
 * level nearest to it among the 16 (so its error is at most half the local level spacing), each block
 * takes at most 16 values, the double-quantized absmax is within half a second-level step of the true
 * one, storage is 4.127 bits per weight, and the on-the-fly matmuls equal products with the dequantized
 * matrix computed in double. Quantization on a thread pool gives the same bytes on no pool, 1 and 2 threads (its times printed). */
#include <string.h>
#include <time.h>
#include "check.h"
#include "tensor/nf4.h"
#include "test_vectors.h"

static double norm_ppf(double p) {   /* inverse standard-normal CDF by bisection on erfc */
    double lo = -10, hi = 10;
    for (int i = 0; i < 200; i++) {
        double mid = 0.5 * (lo + hi);
        if (0.5 * erfc(-mid / sqrt(2.0)) < p) lo = mid; else hi = mid;
    }
    return 0.5 * (lo + hi);
}

static void test_levels(void) {
    const double off = 0.9677083;
    double v[16];
    int n = 0;
    for (int i = 0; i < 8; i++) v[n++] = norm_ppf(off + (0.5 - off) * i / 8.0);    /* linspace(off, .5, 9)[:-1] */
    v[n++] = 0;
    for (int i = 0; i < 7; i++) v[n++] = -norm_ppf(off + (0.5 - off) * i / 7.0);   /* linspace(off, .5, 8)[:-1] */
    for (int i = 0; i < 16; i++)
        for (int j = i + 1; j < 16; j++) if (v[j] < v[i]) { double t = v[i]; v[i] = v[j]; v[j] = t; }
    double worst = 0;
    for (int i = 0; i < 16; i++) worst = fmax(worst, fabs(v[i] / v[15] - rp_nf4_levels[i]));
    CHECK_MSG(worst < 1e-6, "NF4 levels vs normal quantiles: %g", worst);
}

static float gauss(void) {
    double u = 0.5 * (frand() + 1.0) + 1e-9, w = 0.5 * (frand() + 1.0);
    return (float)(sqrt(-2 * log(u)) * cos(2 * M_PI * w));
}

static void test_round_trip(void) {
    int64_t R = 96, C = 320, n = R * C;
    float *w = malloc((size_t)n * sizeof *w), *y = malloc((size_t)C * sizeof *y);
    for (int64_t i = 0; i < n; i++) w[i] = gauss() * 0.02f * (1.0f + (float)(i / C % 7));   /* rows of differing scale */
    rp_nf4 *q = NULL;
    CHECK(rp_nf4_quantize(w, R, C, &q) == RP_OK);
    CHECK_NEAR(rp_nf4_bytes(q) * 8.0 / (double)n, 4.0 + 8.0 / 64 + 32.0 * ((n / 64 + 255) / 256) / (double)n, 1e-9);
    int not_nearest = 0, too_many = 0, amax_bad = 0;
    double sse = 0, ss = 0;
    for (int64_t r = 0; r < R; r++) {
        rp_nf4_dequantize(q, r, 0, C, y);
        for (int64_t b = 0; b < C / 64; b++) {
            const float *x = w + r * C + b * 64, *d = y + b * 64;
            float amax = 0, dq = 0;
            for (int i = 0; i < 64; i++) { amax = fmaxf(amax, fabsf(x[i])); dq = fmaxf(dq, fabsf(d[i])); }
            int64_t blk = (r * C) / 64 + b;
            float scale = q->offset + q->qabsmax[blk] * q->scale2[blk / 256];
            if (fabsf(scale - amax) > 0.5f * q->scale2[blk / 256] + 1e-7f) amax_bad++;
            float vals[64];
            int nv = 0;
            for (int i = 0; i < 64; i++) {
                double best = 1e30, mine = fabs(d[i] - x[i]);
                for (int l = 0; l < 16; l++) best = fmin(best, fabs(rp_nf4_levels[l] * scale - x[i]));
                if (mine > best + 1e-6 * scale) not_nearest++;
                int seen = 0;
                for (int k = 0; k < nv; k++) seen |= vals[k] == d[i];
                if (!seen) vals[nv++] = d[i];
                sse += (mine) * (mine); ss += (double)x[i] * x[i];
            }
            if (nv > 16) too_many++;
        }
    }
    CHECK_MSG(not_nearest == 0, "%d weights not on their nearest level", not_nearest);
    CHECK(too_many == 0);
    CHECK_MSG(amax_bad == 0, "%d absmaxes off by more than half a second-level step", amax_bad);
    /* the error of 16 normal-quantile levels on Gaussian blocks of 64: about 10% of the RMS */
    double rel = sqrt(sse / ss);
    CHECK_MSG(rel > 0.05 && rel < 0.12, "relative RMS error %g", rel);
    rp_nf4_free(q);
    CHECK(rp_nf4_quantize(w, 3, 100, &q) == RP_ERR_INVAL && strstr(rp_errmsg(), "100") != NULL);
    free(w); free(y);
}

static void test_matmul(void) {
    int64_t M = 7, N = 150, K = 192;
    float *w = randv(N * K, 0.1f), *x = randv(M * K, 1), *dy = randv(M * N, 1), *W = malloc((size_t)(N * K) * sizeof(float));
    float *y = malloc((size_t)(M * N) * sizeof(float)), *dx = calloc((size_t)(M * K), sizeof(float));
    float *yr = malloc((size_t)(M * N) * sizeof(float)), *dxr = malloc((size_t)(M * K) * sizeof(float));
    rp_nf4 *q = NULL;
    rp_pool *pool = NULL;
    rp_bwd *b = NULL;
    CHECK(rp_nf4_quantize(w, N, K, &q) == RP_OK);
    CHECK(rp_pool_new(2, &pool) == RP_OK && rp_bwd_new(pool, &b) == RP_OK);
    for (int64_t r = 0; r < N; r++) rp_nf4_dequantize(q, r, 0, K, W + r * K);
    for (int64_t m = 0; m < M; m++) {
        for (int64_t n = 0; n < N; n++) { double s = 0; for (int64_t k = 0; k < K; k++) s += (double)x[m * K + k] * W[n * K + k]; yr[m * N + n] = (float)s; }
        for (int64_t k = 0; k < K; k++) { double s = 0; for (int64_t n = 0; n < N; n++) s += (double)dy[m * N + n] * W[n * K + k]; dxr[m * K + k] = (float)s; }
    }
    CHECK(rp_nf4_matmul(b, y, x, M, q) == RP_OK);
    CHECK(rp_nf4_matmul_backward(b, dx, dy, M, q) == RP_OK);
    double ey = rel_err(y, yr, M * N), ed = rel_err(dx, dxr, M * K);
    CHECK_MSG(ey < 1e-5 && ed < 1e-5, "nf4 matmul %g, backward %g", ey, ed);
    rp_bwd_free(b); rp_pool_free(pool); rp_nf4_free(q);
    free(w); free(x); free(dy); free(W); free(y); free(dx); free(yr); free(dxr);
}

/* Threaded quantization gives the same bytes on no pool, 1 and 2 threads (a shape whose last second-level group
 * is partial, over more groups than tasks), and its time is printed beside the single-threaded one. */
static void test_threads(void) {
    int64_t R = 576, C = 1536;   /* SmolLM2's ffn_down: 13,824 blocks, 54 groups */
    float *w = randv(R * C, 0.05f);
    rp_nf4 *q[3] = {0};
    rp_pool *p1 = NULL, *p2 = NULL;
    CHECK(rp_pool_new(1, &p1) == RP_OK && rp_pool_new(2, &p2) == RP_OK);
    struct timespec t[4];
    clock_gettime(CLOCK_MONOTONIC, &t[0]);
    CHECK(rp_nf4_quantize(w, R, C, &q[0]) == RP_OK);
    clock_gettime(CLOCK_MONOTONIC, &t[1]);
    CHECK(rp_nf4_quantize_pool(w, R, C, p1, &q[1]) == RP_OK);
    clock_gettime(CLOCK_MONOTONIC, &t[2]);
    CHECK(rp_nf4_quantize_pool(w, R, C, p2, &q[2]) == RP_OK);
    clock_gettime(CLOCK_MONOTONIC, &t[3]);
    for (int k = 1; k < 3 && q[0] && q[k]; k++) {
        size_t nb = (size_t)(R * C / RP_NF4_BLOCK), nb2 = (nb + RP_NF4_BLOCK2 - 1) / RP_NF4_BLOCK2;
        CHECK(memcmp(q[0]->codes, q[k]->codes, (size_t)(R * C / 2)) == 0);
        CHECK(memcmp(q[0]->qabsmax, q[k]->qabsmax, nb) == 0);
        CHECK(memcmp(q[0]->scale2, q[k]->scale2, nb2 * sizeof(float)) == 0);
        CHECK(q[0]->offset == q[k]->offset);
    }
    rp_nf4 *odd = NULL, *odd2 = NULL;   /* 3 rows of 64: one partial group, fewer groups than threads */
    CHECK(rp_nf4_quantize(w, 3, 64, &odd) == RP_OK && rp_nf4_quantize_pool(w, 3, 64, p2, &odd2) == RP_OK);
    CHECK(odd && odd2 && memcmp(odd->codes, odd2->codes, 96) == 0 && odd->scale2[0] == odd2->scale2[0]);
    double ms[3];
    for (int k = 0; k < 3; k++) ms[k] = 1e3 * (double)(t[k + 1].tv_sec - t[k].tv_sec) + 1e-6 * (double)(t[k + 1].tv_nsec - t[k].tv_nsec);
    printf("nf4 quantization of %lld x %lld: identical bytes on 0/1/2 threads; %.1f / %.1f / %.1f ms (a timing, not a benchmark)\n",
           (long long)R, (long long)C, ms[0], ms[1], ms[2]);
    for (int k = 0; k < 3; k++) rp_nf4_free(q[k]);
    rp_nf4_free(odd); rp_nf4_free(odd2);
    rp_pool_free(p1); rp_pool_free(p2);
    free(w);
}

int main(void) {
    test_levels();
    test_threads();
    test_round_trip();
    test_matmul();
    return checks_done("nf4");
}
