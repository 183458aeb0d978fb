/* backward_cpu.c: the fast CPU backward kernels (table rp_bwd_cpu): the F32 matmul's y = x·Wᵀ, dx += dy·W and
 * dW += dyᵀ·x through our own rp_gemm_f32 (gemm_f32.c) where every side is >= 32, small sides as OpenBLAS sgemm calls
 * split over the thread pool (OpenBLAS itself stays single-threaded, as in ops_cpu.c); quantized weights
 * dequantized a tile at a time into per-thread scratch (rp_cpu_matmul_tiled, also behind NF4 and the
 * training forward rp_cpu_matmul_forward); attention backward one head per task with sgemm for the four
 * products over blocks of query rows that skip the keys the causal mask hides, and the attention forward
 * the training step uses (rp_cpu_attention_forward), blocked the same way. A context set to bf16
 * (rp_bwd_set_bf16: the trainer's precision "bf16") sends the F32 matmuls' three products through rp_gemm_bf16.
 * The row-wise ops (RMSNorm, RoPE, SwiGLU, cross-entropy) are threaded in rows_cpu.c; the rest are memory-bound
 * loops that reuse the reference kernels.
 * Invariants: results equal rp_bwd_ref's up to float rounding (tests/test_backward.c); no allocation after
 * the scratch has grown to the largest shape seen. */
#include <cblas.h>
#include <math.h>
#include <string.h>
#include "tensor/backward.h"
#include "tensor/gemm_bf16.h"
#include "tensor/gemm_f32.h"
#include "tensor/qdot.h"
#include "tensor/quant.h"
#include "tensor/simd.h"
#include "tensor/ssm.h"

#define ATT_BLK 64   /* query rows per attention block: the causal mask skips the keys a block cannot see */

typedef struct mm_job {
    rp_bwd *b;
    float *dx, *dw, *db, *y;
    const float *dy, *x;
    int64_t M, K, N;
    const char *w;
    rp_dtype wt;
    size_t ldw;
} mm_job;

#define DEQ_ROWS 64   /* weight rows dequantized per sgemm call on the quantized path */

typedef struct tiled_job {
    rp_bwd *b;
    float *out;
    const float *in;
    int64_t M, rows, cols, align;
    rp_row_deq_fn deq;
    const void *w;
    int backward, failed;
} tiled_job;

/* Forward: a slice of output columns (weight rows) per task. Backward: a slice of input columns per task,
 * so each weight is dequantized once either way. */
static void tiled_task(void *ctx, int ith, int nth, int thread) {
    tiled_job *j = ctx;
    int64_t R = j->rows, C = j->cols, a, z;
    rp_bwd_split(j->backward ? C : R, ith, nth, j->backward ? j->align : 16, &a, &z);
    if (a >= z) return;
    int64_t width = j->backward ? z - a : C;
    float *buf = rp_bwd_scratch(j->b, thread, (size_t)DEQ_ROWS * (size_t)width * sizeof(float));
    if (!buf) { j->failed = 1; return; }
    int64_t r0 = j->backward ? 0 : a, r1 = j->backward ? R : z;
    for (int64_t r = r0; r < r1; r += DEQ_ROWS) {
        int64_t nr = r1 - r < DEQ_ROWS ? r1 - r : DEQ_ROWS;
        for (int64_t i = 0; i < nr; i++) j->deq(j->w, r + i, j->backward ? a : 0, width, buf + i * width);
        if (j->backward)   /* out[:, a:z] += in[:, r:r+nr] · W[r:r+nr, a:z] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)j->M, (int)width, (int)nr, 1.0f, j->in + r, (int)R, buf,
                        (int)width, 1.0f, j->out + a, (int)C);
        else               /* out[:, r:r+nr] = in · W[r:r+nr]ᵀ */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)j->M, (int)nr, (int)C, 1.0f, j->in, (int)C, buf, (int)C,
                        0.0f, j->out + r, (int)R);
    }
}

/* A matmul through a weight dequantized tile by tile. */
rp_status rp_cpu_matmul_tiled(rp_bwd *b, float *out, const float *in, int64_t M, int64_t rows, int64_t cols,
                              int64_t align, rp_row_deq_fn deq, const void *w, int backward) {
    if (M <= 0) return RP_OK;
    if (M > INT32_MAX || rows > INT32_MAX || cols > INT32_MAX) return rp_fail(RP_ERR_RANGE, "matmul: dimension over 2^31");
    tiled_job j = { .b = b, .out = out, .in = in, .M = M, .rows = rows, .cols = cols, .align = align, .deq = deq, .w = w,
                    .backward = backward };
    rp_bwd_run(b, tiled_task, &j, rp_bwd_threads(b));
    if (j.failed) return rp_fail(RP_ERR_NOMEM, "matmul: out of memory for a dequantized weight tile");
    return RP_OK;
}

/* A GGUF-typed weight as rp_cpu_matmul_tiled sees it. */
typedef struct gguf_w { const char *w; rp_dtype wt; size_t ldw; } gguf_w;

static void gguf_deq(const void *p, int64_t r, int64_t c0, int64_t n, float *y) {
    const gguf_w *g = p;
    rp_dequantize_row_fast(g->wt, g->w + (size_t)r * g->ldw + rp_dtype_row_bytes(g->wt, c0), y, n);
}

/* dx += dy · W for an F32 weight: a column slice of dx per task. */
static void mm_dx_task(void *ctx, int ith, int nth, int thread) {
    mm_job *j = ctx;
    (void)thread;
    int64_t k0, k1;
    rp_bwd_split(j->K, ith, nth, 16, &k0, &k1);
    if (k0 >= k1) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)j->M, (int)(k1 - k0), (int)j->N, 1.0f, j->dy, (int)j->N,
                (const float *)j->w + k0, (int)(j->ldw / sizeof(float)), 1.0f, j->dx + k0, (int)j->K);
}

/* y = x · Wᵀ for an F32 weight: a slice of output columns per task. */
static void mm_fwd_task(void *ctx, int ith, int nth, int thread) {
    mm_job *j = ctx;
    (void)thread;
    int64_t n0, n1;
    rp_bwd_split(j->N, ith, nth, 16, &n0, &n1);
    if (n0 >= n1) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)j->M, (int)(n1 - n0), (int)j->K, 1.0f, j->x, (int)j->K,
                (const float *)(j->w + (size_t)n0 * j->ldw), (int)(j->ldw / sizeof(float)), 0.0f, j->y + n0, (int)j->N);
}

/* The training forward matmul. */
rp_status rp_cpu_matmul_forward(rp_bwd *b, float *y, const float *x, int64_t M, int64_t K, const void *w, rp_dtype wt,
                                size_t w_row_bytes, int64_t N) {
    if (!rp_dtype_dequantizable(wt)) return rp_fail(RP_ERR_UNSUPPORTED, "matmul: weight dtype %s not supported", rp_dtype_name(wt));
    if (M > INT32_MAX || K > INT32_MAX || N > INT32_MAX) return rp_fail(RP_ERR_RANGE, "matmul: dimension over 2^31");
    if (M <= 0) return RP_OK;
    if (wt != RP_F32) {
        gguf_w g = { .w = w, .wt = wt, .ldw = w_row_bytes };
        return rp_cpu_matmul_tiled(b, y, x, M, N, K, rp_dtype_block(wt), gguf_deq, &g, 0);
    }
    if (rp_bwd_bf16(b) && rp_gemm_bf16_wanted(M, N, K))   /* the trainer's precision "bf16" */
        return rp_gemm_bf16(b, 0, 1, M, N, K, x, K, w, (int64_t)(w_row_bytes / sizeof(float)), 0, y, N);
    if (rp_gemm_f32_wanted(M, N, K))
        return rp_gemm_f32(b, 0, 1, M, N, K, x, K, w, (int64_t)(w_row_bytes / sizeof(float)), 0, y, N);
    mm_job j = { .b = b, .y = y, .x = x, .M = M, .K = K, .N = N, .w = w, .wt = wt, .ldw = w_row_bytes };
    rp_bwd_run(b, mm_fwd_task, &j, rp_bwd_threads(b));
    return RP_OK;
}

/* dw[n0:n1] += dy[:, n0:n1]ᵀ · x and db[n0:n1] += column sums: a row slice of W per task. */
static void mm_dw_task(void *ctx, int ith, int nth, int thread) {
    mm_job *j = ctx;
    (void)thread;
    int64_t n0, n1;
    rp_bwd_split(j->N, ith, nth, 16, &n0, &n1);
    if (n0 >= n1) return;
    if (j->dw)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)(n1 - n0), (int)j->K, (int)j->M, 1.0f, j->dy + n0, (int)j->N,
                    j->x, (int)j->K, 1.0f, (float *)((char *)j->dw + (size_t)n0 * j->ldw), (int)(j->ldw / sizeof(float)));
    if (j->db)
        for (int64_t m = 0; m < j->M; m++)
            for (int64_t n = n0; n < n1; n++) j->db[n] += j->dy[m * j->N + n];
}

/* Matmul backward: dx and dW through rp_gemm_f32 (OpenBLAS for small sides); quantized weights give dx only. */
static rp_status cpu_matmul_backward(rp_bwd *b, float *dx, float *dw, float *db, const float *dy, const float *x,
                                     int64_t M, int64_t K, const void *w, rp_dtype wt, size_t w_row_bytes, int64_t N) {
    if (!rp_dtype_dequantizable(wt)) return rp_fail(RP_ERR_UNSUPPORTED, "matmul backward: weight dtype %s not supported", rp_dtype_name(wt));
    if (dw && wt != RP_F32)
        return rp_fail(RP_ERR_UNSUPPORTED, "matmul backward: weight gradient asked for a %s weight (quantized weights are constants; train an adapter)",
                       rp_dtype_name(wt));
    if (M > INT32_MAX || K > INT32_MAX || N > INT32_MAX) return rp_fail(RP_ERR_RANGE, "matmul backward: dimension over 2^31");
    if (M <= 0) return RP_OK;
    mm_job j = { .b = b, .dx = dx, .dw = dw, .db = db, .dy = dy, .x = x, .M = M, .K = K, .N = N, .w = w, .wt = wt, .ldw = w_row_bytes };
    int nth = rp_bwd_threads(b), own = rp_gemm_f32_wanted(M, N, K);
    int64_t ldw = (int64_t)(w_row_bytes / sizeof(float));
    int bf16 = wt == RP_F32 && rp_bwd_bf16(b) && rp_gemm_bf16_wanted(M, N, K);   /* the trainer's precision "bf16" */
    if (dx && bf16) RP_TRY(rp_gemm_bf16(b, 0, 0, M, K, N, dy, N, (const float *)w, ldw, 1, dx, K));
    else if (dx && wt == RP_F32 && own) RP_TRY(rp_gemm_f32(b, 0, 0, M, K, N, dy, N, (const float *)w, ldw, 1, dx, K));
    else if (dx && wt == RP_F32) rp_bwd_run(b, mm_dx_task, &j, nth);
    if (dx && wt != RP_F32) {
        gguf_w g = { .w = w, .wt = wt, .ldw = w_row_bytes };
        RP_TRY(rp_cpu_matmul_tiled(b, dx, dy, M, N, K, rp_dtype_block(wt), gguf_deq, &g, 1));
    }
    /* dW[N,K] += dyᵀ·x: on the bf16 route through rp_gemm_bf16, else op(A) = dyᵀ read in place (ta), x packed
     * once for all of W's row blocks (gemm_f32.c); the bias (if any) below */
    if (dw && bf16) {
        RP_TRY(rp_gemm_bf16(b, 1, 0, N, K, M, dy, N, x, K, 1, dw, ldw));
        j.dw = NULL;
    } else if (dw && rp_gemm_f32_wanted(N, K, M)) {
        RP_TRY(rp_gemm_f32(b, 1, 0, N, K, M, dy, N, x, K, 1, dw, ldw));
        j.dw = NULL;
    }
    if (j.dw || db) rp_bwd_run(b, mm_dw_task, &j, nth);
    return RP_OK;
}

typedef struct att_job {
    rp_bwd *b;
    float *dq, *dkh, *dvh;     /* dkh, dvh: [nseq][H][nk][D] per-head contributions, summed into dk, dv after */
    float *dk, *dv;
    const float *dout, *q, *k, *v;
    int64_t T, pos0, nk, kv_stride;
    int H, Hkv, D, nseq;       /* nseq sequences, each T rows of q / out after the last and nk rows of k / v */
    int parts;                 /* each head's query rows in parts (1 or 2) of about equal causal work: [0, split), [split, T) */
    int64_t split;
    float scale;
    int failed;
} att_job;

#define ATT_SPLIT_T 256   /* from this many query rows on, each head's rows are two tasks (a shape rule, not a thread one) */

/* The parts of each head's rows: two from ATT_SPLIT_T rows on, split at the block boundary that halves the causal work
 * (a block's work grows with the keys it sees), so that 9 heads on 2 threads do not leave one thread a head idle. */
static void att_plan(att_job *j) {
    j->parts = 1;
    j->split = j->T;
    if (j->T < ATT_SPLIT_T) return;
    double total = 0, run = 0;
    for (int64_t t0 = 0; t0 < j->T; t0 += ATT_BLK) total += (double)(j->pos0 + (t0 + ATT_BLK < j->T ? t0 + ATT_BLK : j->T));
    for (int64_t t0 = 0; t0 < j->T; t0 += ATT_BLK) {
        run += (double)(j->pos0 + (t0 + ATT_BLK < j->T ? t0 + ATT_BLK : j->T));
        if (2 * run >= total) { j->split = t0 + ATT_BLK < j->T ? t0 + ATT_BLK : j->T; break; }
    }
    if (j->split < j->T) j->parts = 2;
}

/* Task t of an attention job is part t % parts of head (t / parts) % H of sequence t / (parts·H): its offsets into
 * q / out and k / v and its rows [r0, r1). */
static void att_seq(const att_job *j, int task, int *h, int64_t *qo, int64_t *ko, int64_t *r0, int64_t *r1) {
    int part = task % j->parts, hs = task / j->parts, s = hs / j->H;
    *h = hs % j->H;
    *qo = (int64_t)s * j->T * j->H * j->D;
    *ko = (int64_t)s * j->nk * j->kv_stride;
    *r0 = part ? j->split : 0;
    *r1 = part || j->parts == 1 ? j->T : j->split;
}

static void att_probs(float *P, const float *qh, int ldq, const float *kg, int64_t kv_stride, int64_t r0, int64_t T, int64_t nk,
                      int64_t pos0, int D, float scale);

/* One head, a block of ATT_BLK query rows at a time, each block's products over only the keys it can see
 * (n1 = pos0 + t1): S = scale·Q·Kᵀ, P = causal softmax, dP = dO·Vᵀ, dS = P∘(dP − ⟨P, dP⟩), then dQ, dK, dV
 * by sgemm, dK and dV accumulated over the blocks in order. */
static void att_head_task(void *ctx, int task, int nth, int thread) {
    att_job *j = ctx;
    (void)nth;
    int64_t T = j->T, nk = j->nk, qo, ko, r0, r1;
    int h;
    att_seq(j, task, &h, &qo, &ko, &r0, &r1);
    int D = j->D, g = h / (j->H / j->Hkv), ldq = j->H * D, ldk = (int)j->kv_stride;
    float *P = rp_bwd_scratch(j->b, thread, (size_t)2 * (size_t)T * (size_t)nk * sizeof(float));
    if (!P) { j->failed = 1; return; }
    float *dP = P + T * nk;
    const float *qh = j->q + qo + h * D, *kg = j->k + ko + g * D, *vg = j->v + ko + g * D, *doh = j->dout + qo + h * D;
    float *dkh = j->dkh + (int64_t)task * nk * D, *dvh = j->dvh + (int64_t)task * nk * D, *dq = j->dq ? j->dq + qo : NULL;
    memset(dkh, 0, (size_t)(nk * D) * sizeof(float));
    memset(dvh, 0, (size_t)(nk * D) * sizeof(float));
    att_probs(P, qh, ldq, kg, j->kv_stride, r0, r1, nk, j->pos0, D, j->scale);
    for (int64_t t0 = r0; t0 < r1; t0 += ATT_BLK) {
        int64_t t1 = t0 + ATT_BLK < r1 ? t0 + ATT_BLK : r1, n1 = j->pos0 + t1;
        int rows = (int)(t1 - t0);
        float *pb = P + t0 * nk, *dpb = dP + t0 * nk;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, (int)n1, D, 1.0f, doh + t0 * ldq, ldq, vg, ldk, 0.0f, dpb, (int)nk);
        for (int64_t t = t0; t < t1; t++) {
            float *p = P + t * nk, *dp = dP + t * nk;
            float pdp = rp_vdot(p, dp, n1);   /* p is 0 past the diagonal */
            for (int64_t i = 0; i < n1; i++) dp[i] = p[i] * (dp[i] - pdp) * j->scale;
        }
        if (dq)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, D, (int)n1, 1.0f, dpb, (int)nk, kg, ldk, 1.0f,
                        dq + t0 * ldq + h * D, ldq);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n1, D, rows, 1.0f, dpb, (int)nk, qh + t0 * ldq, ldq, 1.0f, dkh, D);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n1, D, rows, 1.0f, pb, (int)nk, doh + t0 * ldq, ldq, 1.0f, dvh, D);
    }
}

/* Sums the per-head dK, dV of each kv group into dk, dv (heads in ascending order), a slice of the positions of
 * all sequences per task. */
static void att_reduce_task(void *ctx, int ith, int nth, int thread) {
    att_job *j = ctx;
    (void)thread;
    int64_t a, z;
    rp_bwd_split((int64_t)j->nseq * j->nk, ith, nth, 1, &a, &z);
    int group = j->H / j->Hkv, D = j->D;
    for (int64_t r = a; r < z; r++) {
        int64_t s = r / j->nk, i = r % j->nk;
        for (int hp = 0; hp < j->H * j->parts; hp++) {   /* heads ascending, each head's parts in order */
            int g = hp / j->parts / group;
            const float *sk = j->dkh + ((s * j->H * j->parts + hp) * j->nk + i) * D, *sv = j->dvh + ((s * j->H * j->parts + hp) * j->nk + i) * D;
            if (j->dk) for (int d = 0; d < D; d++) j->dk[r * j->kv_stride + g * D + d] += sk[d];
            if (j->dv) for (int d = 0; d < D; d++) j->dv[r * j->kv_stride + g * D + d] += sv[d];
        }
    }
}

/* Attention backward of nseq sequences, one (sequence, head) per task; row blocks skip most of the masked upper
 * triangle. */
rp_status rp_cpu_attention_backward_seqs(rp_bwd *b, int nseq, float *dq, float *dk, float *dv, const float *dout,
                                         const float *q, const float *k, const float *v, int64_t T, int64_t pos0, int H,
                                         int Hkv, int D, int64_t kv_stride, float scale) {
    if (Hkv <= 0 || H % Hkv) return rp_fail(RP_ERR_INVAL, "attention backward: %d heads not a multiple of %d kv heads", H, Hkv);
    if (T <= 0 || nseq <= 0) return RP_OK;
    if (pos0 + T > INT32_MAX / 2 || (int64_t)nseq * H > INT32_MAX)
        return rp_fail(RP_ERR_RANGE, "attention backward: %d sequences of %lld positions", nseq, (long long)(pos0 + T));
    int64_t nk = pos0 + T;
    att_job j = { .b = b, .dq = dq, .dk = dk, .dv = dv, .dout = dout, .q = q, .k = k, .v = v, .T = T, .pos0 = pos0, .nk = nk,
                  .kv_stride = kv_stride, .H = H, .Hkv = Hkv, .D = D, .nseq = nseq, .scale = scale };
    att_plan(&j);
    int64_t per = (int64_t)nseq * H * j.parts * nk * D;
    float *acc = rp_bwd_shared(b, (size_t)2 * (size_t)per * sizeof(float));
    if (!acc) return rp_fail(RP_ERR_NOMEM, "attention backward: out of memory for %d x %d heads x %lld positions", nseq, H, (long long)nk);
    j.dkh = acc;
    j.dvh = acc + per;
    rp_bwd_run(b, att_head_task, &j, nseq * H * j.parts);
    if (j.failed) return rp_fail(RP_ERR_NOMEM, "attention backward: out of memory for %lld x %lld scores", (long long)T, (long long)nk);
    if (dk || dv) rp_bwd_run(b, att_reduce_task, &j, rp_bwd_threads(b));
    return RP_OK;
}

static rp_status cpu_attention_backward(rp_bwd *b, float *dq, float *dk, float *dv, const float *dout, const float *q,
                                        const float *k, const float *v, int64_t T, int64_t pos0, int H, int Hkv, int D,
                                        int64_t kv_stride, float scale) {
    return rp_cpu_attention_backward_seqs(b, 1, dq, dk, dv, dout, q, k, v, T, pos0, H, Hkv, D, kv_stride, scale);
}

/* Scores of one head's rows [r0, T) (r0 a multiple of ATT_BLK): P[t, nk] = causal softmax(scale · Q·Kᵀ), a block of
 * ATT_BLK rows at a time over the keys the
 * block sees (n1 = pos0 + t1); within that width each row is zero past its diagonal (what lies beyond n1 is
 * left unwritten: no product reads it). */
static void att_probs(float *P, const float *qh, int ldq, const float *kg, int64_t kv_stride, int64_t r0, int64_t T, int64_t nk,
                      int64_t pos0, int D, float scale) {
    for (int64_t t0 = r0; t0 < T; t0 += ATT_BLK) {
        int64_t t1 = t0 + ATT_BLK < T ? t0 + ATT_BLK : T, n1 = pos0 + t1;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(t1 - t0), (int)n1, D, scale, qh + t0 * ldq, ldq, kg,
                    (int)kv_stride, 0.0f, P + t0 * nk, (int)nk);
        for (int64_t t = t0; t < t1; t++) {
            float *p = P + t * nk;
            int64_t n = pos0 + t + 1;
            float mx = rp_vmax(p, n), sum = rp_vexp_sub_sum(p, mx, n);
            rp_vscale(p, 1.0f / sum, n);
            memset(p + n, 0, (size_t)(n1 - n) * sizeof(float));
        }
    }
}

static void att_fwd_task(void *ctx, int task, int nth, int thread) {
    att_job *j = ctx;
    (void)nth;
    int64_t qo, ko, r0, r1;
    int h;
    att_seq(j, task, &h, &qo, &ko, &r0, &r1);
    int D = j->D, g = h / (j->H / j->Hkv), ldq = j->H * D;
    float *P = rp_bwd_scratch(j->b, thread, (size_t)j->T * (size_t)j->nk * sizeof(float));
    if (!P) { j->failed = 1; return; }
    att_probs(P, j->q + qo + h * D, ldq, j->k + ko + g * D, j->kv_stride, r0, r1, j->nk, j->pos0, D, j->scale);
    for (int64_t t0 = r0; t0 < r1; t0 += ATT_BLK) {   /* each block of rows over the keys it sees */
        int64_t t1 = t0 + ATT_BLK < r1 ? t0 + ATT_BLK : r1;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(t1 - t0), D, (int)(j->pos0 + t1), 1.0f, P + t0 * j->nk,
                    (int)j->nk, j->v + ko + g * D, (int)j->kv_stride, 0.0f, j->dq + qo + t0 * ldq + h * D, ldq);
    }
}

/* Attention forward for training over nseq sequences, one (sequence, head) per task. */
rp_status rp_cpu_attention_forward_seqs(rp_bwd *b, int nseq, float *out, const float *q, const float *k, const float *v,
                                        int64_t T, int64_t pos0, int H, int Hkv, int D, int64_t kv_stride, float scale) {
    if (Hkv <= 0 || H % Hkv) return rp_fail(RP_ERR_INVAL, "attention: %d heads not a multiple of %d kv heads", H, Hkv);
    if (T <= 0 || nseq <= 0) return RP_OK;
    if (pos0 + T > INT32_MAX / 2 || (int64_t)nseq * H > INT32_MAX)
        return rp_fail(RP_ERR_RANGE, "attention: %d sequences of %lld positions", nseq, (long long)(pos0 + T));
    att_job j = { .b = b, .dq = out, .q = q, .k = k, .v = v, .T = T, .pos0 = pos0, .nk = pos0 + T, .kv_stride = kv_stride,
                  .H = H, .Hkv = Hkv, .D = D, .nseq = nseq, .scale = scale };
    att_plan(&j);
    rp_bwd_run(b, att_fwd_task, &j, nseq * H * j.parts);
    if (j.failed) return rp_fail(RP_ERR_NOMEM, "attention: out of memory for %lld x %lld scores", (long long)T, (long long)(pos0 + T));
    return RP_OK;
}

/* Attention forward for training, one sequence. */
rp_status rp_cpu_attention_forward(rp_bwd *b, float *out, const float *q, const float *k, const float *v, int64_t T,
                                   int64_t pos0, int H, int Hkv, int D, int64_t kv_stride, float scale) {
    return rp_cpu_attention_forward_seqs(b, 1, out, q, k, v, T, pos0, H, Hkv, D, kv_stride, scale);
}

const rp_bwd_ops rp_bwd_cpu = {
    .name = "cpu", .matmul = cpu_matmul_backward, .embed = rp_ref_embed_backward, .rmsnorm = rp_cpu_rmsnorm_backward,
    .rope = rp_cpu_rope_backward, .attention = cpu_attention_backward, .swiglu = rp_cpu_swiglu_backward,
    .softmax = rp_ref_softmax_backward, .log_softmax = rp_ref_log_softmax_backward,
    .cross_entropy = rp_cpu_cross_entropy_backward, .gather_rows = rp_ref_gather_rows_backward,
    .scatter_add_rows = rp_ref_scatter_add_rows_backward,
    .conv1d_causal = rp_cpu_conv1d_causal_backward, .selective_scan = rp_ssm_scan_backward,
};
