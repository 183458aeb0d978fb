/* nf4.c: NF4 with double quantization (see nf4.h): quantize by nearest level (on a thread pool, in runs of whole
 * second-level groups, with the mean absmax summed in block order so the bytes do not depend on the thread count),
 * dequantize by table, and the two matmuls a frozen QLoRA base needs (forward, and the input gradient) through
 * rp_cpu_matmul_tiled. */
#include "tensor/nf4.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The NF4 code book of QLoRA / bitsandbytes (tests/test_nf4.c rebuilds it from normal quantiles). */
const float rp_nf4_levels[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f,
    -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,
    0.24611230194568634f, 0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
};

static int nearest_level(float v) {
    int lo = 0;
    for (int i = 1; i < 16; i++)   /* levels ascend: the nearest is the last whose midpoint v passes */
        if (v > 0.5f * (rp_nf4_levels[i - 1] + rp_nf4_levels[i])) lo = i;
    return lo;
}

typedef struct nf4_job {
    const float *w;
    rp_nf4 *q;
    float *amax;
    int64_t nb, nb2;
    int phase;           /* 0: block absmaxes; 1: second level and codes (needs q->offset) */
} nf4_job;

/* One task: a run of whole second-level groups (256 blocks), so tasks never share a byte or a scale. */
static void nf4_task(void *ctx, int task, int n_tasks, int thread) {
    nf4_job *j = ctx;
    rp_nf4 *q = j->q;
    int64_t g0 = j->nb2 * task / n_tasks, g1 = j->nb2 * (task + 1) / n_tasks;
    int64_t b0 = g0 * RP_NF4_BLOCK2, b1 = g1 * RP_NF4_BLOCK2 < j->nb ? g1 * RP_NF4_BLOCK2 : j->nb;
    if (j->phase == 0) {
        for (int64_t b = b0; b < b1; b++) {
            float m = 0;
            for (int i = 0; i < RP_NF4_BLOCK; i++) m = fmaxf(m, fabsf(j->w[b * RP_NF4_BLOCK + i]));
            j->amax[b] = m;
        }
        return;
    }
    for (int64_t b2 = g0; b2 < g1; b2++) {
        int64_t a = b2 * RP_NF4_BLOCK2, z = a + RP_NF4_BLOCK2 < j->nb ? a + RP_NF4_BLOCK2 : j->nb;
        float m = 0;
        for (int64_t b = a; b < z; b++) m = fmaxf(m, fabsf(j->amax[b] - q->offset));
        float s = m / 127.0f;
        q->scale2[b2] = s;
        for (int64_t b = a; b < z; b++) q->qabsmax[b] = (int8_t)(s > 0 ? lrintf((j->amax[b] - q->offset) / s) : 0);
    }
    for (int64_t b = b0; b < b1; b++) {
        /* codes are chosen against the absmax as it will be dequantized, so the error is the level spacing's */
        float d = q->offset + q->qabsmax[b] * q->scale2[b / RP_NF4_BLOCK2], inv = d > 0 ? 1.0f / d : 0.0f;
        for (int i = 0; i < RP_NF4_BLOCK; i++) {
            int64_t k = b * RP_NF4_BLOCK + i;
            int c = nearest_level(fmaxf(-1.0f, fminf(1.0f, j->w[k] * inv)));
            q->codes[k / 2] |= (uint8_t)(k % 2 ? c << 4 : c);
        }
    }
}

/* Quantize a weight matrix to NF4 with double-quantized absmaxes, on a pool (see nf4.h). */
rp_status rp_nf4_quantize_pool(const float *w, int64_t rows, int64_t cols, rp_pool *pool, rp_nf4 **out) {
    *out = NULL;
    if (rows < 1 || cols < 1 || cols % RP_NF4_BLOCK)
        return rp_fail(RP_ERR_INVAL, "nf4: shape %lld x %lld (columns must be a positive multiple of %d)", (long long)rows,
                       (long long)cols, RP_NF4_BLOCK);
    if (rows > INT64_MAX / cols) return rp_fail(RP_ERR_RANGE, "nf4: shape %lld x %lld overflows", (long long)rows, (long long)cols);
    int64_t n = rows * cols, nb = n / RP_NF4_BLOCK, nb2 = (nb + RP_NF4_BLOCK2 - 1) / RP_NF4_BLOCK2;
    rp_nf4 *q = calloc(1, sizeof *q);
    float *amax = malloc((size_t)nb * sizeof *amax);
    if (q) { q->codes = calloc((size_t)(n / 2), 1); q->qabsmax = malloc((size_t)nb); q->scale2 = malloc((size_t)nb2 * sizeof(float)); }
    if (!q || !amax || !q->codes || !q->qabsmax || !q->scale2) {
        free(amax); rp_nf4_free(q);
        return rp_fail(RP_ERR_NOMEM, "nf4: out of memory for %lld x %lld weights", (long long)rows, (long long)cols);
    }
    q->rows = rows; q->cols = cols;
    nf4_job j = { .w = w, .q = q, .amax = amax, .nb = nb, .nb2 = nb2 };
    int tasks = nb2 < 64 ? (int)nb2 : 64;
    if (pool) rp_pool_run(pool, nf4_task, &j, tasks);
    else for (int t = 0; t < tasks; t++) nf4_task(&j, t, tasks, 0);
    double mean = 0;                      /* in block order whatever the threads: the bytes do not depend on them */
    for (int64_t b = 0; b < nb; b++) mean += amax[b];
    q->offset = (float)(mean / (double)nb);
    j.phase = 1;
    if (pool) rp_pool_run(pool, nf4_task, &j, tasks);
    else for (int t = 0; t < tasks; t++) nf4_task(&j, t, tasks, 0);
    free(amax);
    *out = q;
    return RP_OK;
}

/* Quantize a weight matrix to NF4 with double-quantized absmaxes (on the calling thread). */
rp_status rp_nf4_quantize(const float *w, int64_t rows, int64_t cols, rp_nf4 **out) {
    return rp_nf4_quantize_pool(w, rows, cols, NULL, out);
}

/* Release an NF4 tensor. */
void rp_nf4_free(rp_nf4 *q) {
    if (!q) return;
    free(q->codes); free(q->qabsmax); free(q->scale2); free(q);
}

/* Storage bytes. */
size_t rp_nf4_bytes(const rp_nf4 *q) {
    int64_t n = q->rows * q->cols, nb = n / RP_NF4_BLOCK;
    return (size_t)(n / 2) + (size_t)nb + (size_t)((nb + RP_NF4_BLOCK2 - 1) / RP_NF4_BLOCK2) * sizeof(float);
}

/* Dequantize a block-aligned column range of one row. */
void rp_nf4_dequantize(const rp_nf4 *q, int64_t r, int64_t c0, int64_t n, float *y) {
    int64_t k0 = r * q->cols + c0;
    for (int64_t j = 0; j < n; j += RP_NF4_BLOCK) {
        int64_t b = (k0 + j) / RP_NF4_BLOCK;
        float d = q->offset + q->qabsmax[b] * q->scale2[b / RP_NF4_BLOCK2];
        const uint8_t *c = q->codes + (k0 + j) / 2;
        for (int i = 0; i < RP_NF4_BLOCK / 2; i++) {
            y[j + 2 * i] = rp_nf4_levels[c[i] & 15] * d;
            y[j + 2 * i + 1] = rp_nf4_levels[c[i] >> 4] * d;
        }
    }
}

static void nf4_deq(const void *w, int64_t r, int64_t c0, int64_t n, float *y) { rp_nf4_dequantize(w, r, c0, n, y); }

/* Forward matmul through NF4 weights. */
rp_status rp_nf4_matmul(rp_bwd *b, float *y, const float *x, int64_t M, const rp_nf4 *q) {
    return rp_cpu_matmul_tiled(b, y, x, M, q->rows, q->cols, RP_NF4_BLOCK, nf4_deq, q, 0);
}

/* Input gradient through NF4 weights. */
rp_status rp_nf4_matmul_backward(rp_bwd *b, float *dx, const float *dy, int64_t M, const rp_nf4 *q) {
    return rp_cpu_matmul_tiled(b, dx, dy, M, q->rows, q->cols, RP_NF4_BLOCK, nf4_deq, q, 1);
}
