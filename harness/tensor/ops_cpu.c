/* ops_cpu.c: the fast CPU backend ("cpu"): kernels split over the thread pool, SIMD (simd.h, qdot.h)
 * and OpenBLAS (kept single-threaded: our pool does the splitting, each thread calls sgemm on its slice).
 * Matmul routes by shape: 1..16 rows whose weights all come with a decode-layout copy (rp_matmul_part.wp,
 * qdot_packed.c) -> the packed kernels: one row (decoding) with grouped 24-bit activations (memory-bound:
 * the integer path streams the weights fastest), 2..16 rows (batched decoding of up to 16 sequences, short
 * prompts) with f32 activations against weights dequantized once per block for all rows (compute-bound:
 * half the vector work per row of the 24-bit path). Every row of a 2..16-row call gets the arithmetic it
 * would get in any other such call; a sequence decoded alone (one row) and in a batch agree to f32 rounding
 * (both are f32-quality, not bit for bit), which tests/test_llama.c checks as equal greedy text; otherwise
 * one row (decoding) -> q4_0 / q4_1 / q8_0 weights against 24-bit fixed-point activations
 * with VNNI (error about 2^-23 of a block's largest value: f32 quality), other types dequantized in
 * registers against f32 activations (exact), which is what makes greedy decoding agree with llama.cpp's
 * f32 path token for token; 2..7 rows -> rows dequantized once, f32 dots; many rows
 * (prompts, scoring) -> weight tiles dequantized to f32 + sgemm. REPRO_INT8_DOT=decode switches decoding (one
 * row) on q4_0/q4_1/q8_0 to int8-quantized activations (blocks of 32 with scale and sum, as llama.cpp's Q8_1)
 * and VNNI dot products: llama.cpp's own method, faster, with its quantized-path error (SmolLM2 then answers
 * "What is the capital of France?" with the same wrong text llama.cpp's Q4_1 path gives, where the exact
 * default answers "Paris"); REPRO_INT8_DOT=1 uses int8 for every few-row matmul. Builds without AVX-512 VNNI
 * (AVX2 machines) have neither the decode layout nor the 24-bit path: there one row goes to rp_fdot_row for
 * every weight type (AVX2 + FMA + F16C in qdot.c), 2..7 rows to rp_dequantize_row_fast + rp_vdot.
 * Invariants: every kernel computes what backend.h defines, checked against ops_ref.c by test_ops;
 * scratch memory is per thread, grown on first need and reused, so steady-state calls allocate nothing;
 * the backend is not reentrant (one caller thread at a time). */
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "tensor/attn_decode.h"
#include "tensor/backend.h"
#include "tensor/ops_ref.h"
#include "tensor/qdot.h"
#include "tensor/simd.h"
#include "tensor/ssm.h"

#define MAX_THREADS 64
#define SMALL_M 8            /* below this many rows a matmul is done row by row (no dequantized tiles) */
#define PACKED_M RP_MATMUL_PACKED_ROWS   /* up to this many rows (a decoding step of that many sequences) use the decode layout */
#define TILE_BYTES (2u << 20) /* f32 bytes of a dequantized weight tile handed to sgemm */
#define ATT_QB 64            /* query rows per attention task */

typedef struct scratch { void *p; size_t cap; } scratch;

typedef struct cpu_impl {
    scratch tmp[MAX_THREADS];   /* per-thread scratch */
    scratch act;                /* quantized activations shared by all threads of one matmul */
    float rope_base;
    int rope_dim;
    int int8_dot;               /* int8-quantized activations + VNNI for q4_0/q4_1/q8_0: 0 never (default),
                                   1 one-row matmuls only, i.e. decoding (REPRO_INT8_DOT=decode), 2 every few-row one (=1) */
    rp_q24_row q24;             /* the 24-bit activation row of the current single-row matmul */
    double inv_freq[512];       /* cached base^(-2i/rope_dim) */
} cpu_impl;

/* Scratch of at least n bytes for slot s (64-byte aligned; grows, never shrinks). */
static void *scratch_get(scratch *s, size_t n) {
    if (s->cap >= n) return s->p;
    size_t cap = n + n / 2 + 64;
    if (cap < ((size_t)1 << 20)) cap = (size_t)1 << 20;   /* decoding never reallocates below 256k positions */
    void *p = rp_cpu_alloc(NULL, cap);
    if (!p) return NULL;
    rp_cpu_free(NULL, s->p);
    s->p = p;
    s->cap = cap;
    return p;
}

static cpu_impl *impl_of(rp_backend *be) { return be->impl; }

/* How many tasks a job of `work` multiply-adds that splits into at most `parts` pieces deserves: one
 * (on the caller) when small, else a few per thread so that a descheduled thread's share is taken over. */
static int tasks_for(rp_backend *be, double work, int64_t parts, int per_thread) {
    int n = rp_pool_size(be->pool);
    if (work < 40000 || n == 1) return 1;
    n *= per_thread;
    if (n > parts) n = (int)parts;
    return n < 1 ? 1 : n;
}

/* ---- matmul ---- */

typedef struct mm_job {
    rp_backend *be;
    const float *x;
    int64_t M, K;
    const rp_matmul_part *parts;   /* matrices sharing x; rows are numbered through all of them */
    int nparts;
    int64_t R;                     /* rows in all parts */
    int64_t row0[RP_MATMUL_MAX_PARTS + 1];
    int big;                       /* which part the big-path tasks work on */
    const rp_q8_row *aq;   /* M quantized activation rows (int8 path) */
    const float *xsum;     /* block sums of x (exact single-row path) */
    const rp_q24_row *a24; /* 24-bit activation row (exact-quality integer path for q4_0 / q4_1) */
    const rp_q24_row *ag;  /* M grouped 24-bit activation rows (parts in the decode layout, one row) */
    int packed_f32;        /* parts in the decode layout, 2..PACKED_M f32 rows (batched decoding) */
    int failed;
} mm_job;

static void rows_of(int64_t N, int ith, int nth, int64_t align, int64_t *n0, int64_t *n1) {
    int64_t per = (N + nth - 1) / nth;
    per = (per + align - 1) / align * align;
    *n0 = per * ith < N ? per * ith : N;
    *n1 = per * (ith + 1) < N ? per * (ith + 1) : N;
}

static void mm_small_task(void *ctx, int ith, int nth, int thread) {
    mm_job *j = ctx;
    int64_t r0, r1;
    rows_of(j->R, ith, nth, 4, &r0, &r1);
    float *row = NULL;
    for (int p = 0; p < j->nparts && r0 < r1; p++) {
        int64_t a = j->row0[p], b = j->row0[p + 1];
        if (r0 >= b || r1 <= a) continue;
        const rp_matmul_part *pt = &j->parts[p];
        const char *w = pt->w;
        int64_t n0 = (r0 > a ? r0 : a) - a, n1 = (r1 < b ? r1 : b) - a, N = pt->N;
        if (j->packed_f32) {
            rp_packed_fdot_tile(pt->wt, (const char *)pt->wp + (size_t)n0 * pt->ldw, pt->ldw, n1 - n0, j->x, j->K, (int)j->M, j->K, pt->y + n0, N);
        } else if (j->ag) {
            for (int64_t n = n0; n < n1; n++) rp_packed_dot_rows(pt->wt, (const char *)pt->wp + (size_t)n * pt->ldw, j->ag, (int)j->M, j->K, pt->y + n, N);
        } else if (j->aq) {
            for (int64_t n = n0; n < n1; n++)
                for (int64_t m = 0; m < j->M; m++)
                    pt->y[m * N + n] = rp_qdot_row(pt->wt, w + (size_t)n * pt->ldw, &j->aq[m], j->K);
        } else if (j->a24) {
            for (int64_t n = n0; n < n1; n++) pt->y[n] = rp_q24dot_row(pt->wt, w + (size_t)n * pt->ldw, j->a24, j->K);
        } else if (j->xsum) {
            for (int64_t n = n0; n < n1; n++) pt->y[n] = rp_fdot_row(pt->wt, w + (size_t)n * pt->ldw, j->x, j->xsum, j->K);
        } else if (pt->wt == RP_F32) {
            for (int64_t n = n0; n < n1; n++)
                for (int64_t m = 0; m < j->M; m++)
                    pt->y[m * N + n] = rp_vdot(j->x + m * j->K, (const float *)(w + (size_t)n * pt->ldw), j->K);
        } else {
            if (!row && !(row = scratch_get(&impl_of(j->be)->tmp[thread], (size_t)j->K * sizeof(float)))) { j->failed = 1; return; }
            for (int64_t n = n0; n < n1; n++) {
                rp_dequantize_row_fast(pt->wt, w + (size_t)n * pt->ldw, row, j->K);
                for (int64_t m = 0; m < j->M; m++) pt->y[m * N + n] = rp_vdot(j->x + m * j->K, row, j->K);
            }
        }
    }
}

static void mm_big_task(void *ctx, int ith, int nth, int thread) {
    mm_job *j = ctx;
    const rp_matmul_part *pt = &j->parts[j->big];
    int64_t n0, n1, N = pt->N;
    rows_of(N, ith, nth, 16, &n0, &n1);
    if (n0 >= n1) return;
    const char *w = pt->w;
    if (pt->wt == RP_F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)j->M, (int)(n1 - n0), (int)j->K, 1.0f, j->x, (int)j->K,
                    (const float *)(w + (size_t)n0 * pt->ldw), (int)(pt->ldw / sizeof(float)), 0.0f, pt->y + n0, (int)N);
        return;
    }
    int64_t tile = (int64_t)(TILE_BYTES / ((size_t)j->K * sizeof(float)));
    if (tile < 16) tile = 16;
    if (tile > n1 - n0) tile = n1 - n0;
    float *buf = scratch_get(&impl_of(j->be)->tmp[thread], (size_t)tile * (size_t)j->K * sizeof(float));
    if (!buf) { j->failed = 1; return; }
    for (int64_t r = n0; r < n1; r += tile) {
        int64_t nr = n1 - r < tile ? n1 - r : tile;
        for (int64_t i = 0; i < nr; i++) rp_dequantize_row_fast(pt->wt, w + (size_t)(r + i) * pt->ldw, buf + i * j->K, j->K);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)j->M, (int)nr, (int)j->K, 1.0f, j->x, (int)j->K, buf,
                    (int)j->K, 0.0f, pt->y + r, (int)N);
    }
}

/* Several matmuls sharing x in one dispatch: decoding runs Q, K, V (and gate, up) as one job, with the
 * activation prepared once. */
static rp_status cpu_matmul_multi(rp_backend *be, const float *x, int64_t M, int64_t K, const rp_matmul_part *parts, int n) {
    if (n < 1 || n > RP_MATMUL_MAX_PARTS) return rp_fail(RP_ERR_INVAL, "matmul: %d parts (1..%d)", n, RP_MATMUL_MAX_PARTS);
    if (M <= 0) return RP_OK;
    if (K > INT32_MAX || M > INT32_MAX) return rp_fail(RP_ERR_RANGE, "matmul: dimension over 2^31");
    mm_job j = { .be = be, .x = x, .M = M, .K = K, .parts = parts, .nparts = n };
    int all_fdot = 1, all_qdot = 1, all_q24 = 1, all_packed = 1;
    for (int p = 0; p < n; p++) {
        rp_dtype wt = parts[p].wt;
        if (!rp_dtype_dequantizable(wt)) return rp_fail(RP_ERR_UNSUPPORTED, "matmul: weight dtype %s not supported", rp_dtype_name(wt));
        if (parts[p].N < 0 || parts[p].N > INT32_MAX) return rp_fail(RP_ERR_RANGE, "matmul: N = %lld", (long long)parts[p].N);
        j.row0[p] = j.R;
        j.R += parts[p].N;
        all_fdot &= wt != RP_F32 && rp_fdot_supported(wt);
        all_qdot &= rp_qdot_supported(wt);
        all_q24 &= rp_q24dot_supported(wt);
        all_packed &= parts[p].wp != NULL && rp_packed_supported(wt);
    }
    j.row0[n] = j.R;
    cpu_impl *imp = impl_of(be);
    int use8 = imp->int8_dot == 2 || (imp->int8_dot == 1 && M == 1);
    if (M > 1 && M <= PACKED_M && all_packed && !(use8 && all_qdot) && K % 32 == 0) {
        /* batched decoding: every part in the decode layout, weights dequantized once per block for all rows */
        j.packed_f32 = 1;
        rp_pool_run(be->pool, mm_small_task, &j, tasks_for(be, (double)M * j.R * K, j.R / 32 + 1, 4));
    } else if (M == 1 && all_packed && !(use8 && all_qdot) && K % 32 == 0) {
        /* decoding: every part in the decode layout, the row's activations in grouped 24-bit limbs */
        size_t rb = (rp_q24_row_bytes(K) + 63) & ~(size_t)63, hdr = ((size_t)M * sizeof(rp_q24_row) + 63) & ~(size_t)63;
        char *p = scratch_get(&imp->act, hdr + (size_t)M * rb);
        if (!p) return rp_fail(RP_ERR_NOMEM, "matmul: out of memory for activations");
        rp_q24_row *rows = (rp_q24_row *)p;
        for (int64_t m = 0; m < M; m++) {
            rp_q24_row_carve(&rows[m], p + hdr + (size_t)m * rb, K);
            rp_quantize_row_q24g(x + m * K, K, &rows[m]);
        }
        j.ag = rows;
        rp_pool_run(be->pool, mm_small_task, &j, tasks_for(be, (double)M * j.R * K, j.R / 32 + 1, 4));
    } else if (M < SMALL_M) {
        if (M == 1 && !use8 && all_q24 && K % 32 == 0) {
            size_t nb = (size_t)(K / 32);
            char *p = scratch_get(&imp->act, nb * 3 * sizeof(float) + 3 * (size_t)K + 64);
            if (!p) return rp_fail(RP_ERR_NOMEM, "matmul: out of memory for activations");
            imp->q24.d = (float *)p;
            imp->q24.xsum = (float *)p + nb;
            imp->q24.x2sum = (float *)p + 2 * nb;
            imp->q24.x0 = (uint8_t *)(p + nb * 3 * sizeof(float));
            imp->q24.x1 = imp->q24.x0 + K;
            imp->q24.x2 = (int8_t *)(imp->q24.x1 + K);
            rp_quantize_row_q24(x, K, &imp->q24);
            j.a24 = &imp->q24;
        } else if (M == 1 && !(use8 && all_qdot) && all_fdot && K % 32 == 0) {
            float *xs = scratch_get(&imp->act, (size_t)(K / 32) * sizeof(float));
            if (!xs) return rp_fail(RP_ERR_NOMEM, "matmul: out of memory for activations");
            for (int64_t b = 0; b < K / 32; b++) {
                float acc = 0;
                for (int i = 0; i < 32; i++) acc += x[b * 32 + i];
                xs[b] = acc;
            }
            j.xsum = xs;
        } else if (use8 && all_qdot && K % 32 == 0) {
            size_t nb = (size_t)(K / 32);
            size_t need = (size_t)M * (sizeof(rp_q8_row) + nb * 2 * sizeof(float) + (size_t)K) + 64;
            char *p = scratch_get(&imp->act, need);
            if (!p) return rp_fail(RP_ERR_NOMEM, "matmul: out of memory for activations");
            rp_q8_row *rows = (rp_q8_row *)p;
            char *q = p + (size_t)M * sizeof(rp_q8_row);
            for (int64_t m = 0; m < M; m++) {
                rows[m].d = (float *)q; q += nb * sizeof(float);
                rows[m].s = (float *)q; q += nb * sizeof(float);
                rows[m].q = (int8_t *)q; q += K;
                rp_quantize_row_q8_fast(x + m * K, K, &rows[m]);
            }
            j.aq = rows;
        }
        rp_pool_run(be->pool, mm_small_task, &j, tasks_for(be, (double)M * j.R * K, j.R / 32 + 1, 4));
    } else {
        for (int p = 0; p < n && !j.failed; p++) {
            j.big = p;
            rp_pool_run(be->pool, mm_big_task, &j, tasks_for(be, (double)M * parts[p].N * K, parts[p].N / 64 + 1, 2));
        }
    }
    if (j.failed) return rp_fail(RP_ERR_NOMEM, "matmul: out of memory for scratch (%lld rows of %lld)", (long long)j.R, (long long)K);
    return RP_OK;
}

static rp_status cpu_matmul(rp_backend *be, float *y, const float *x, int64_t M, int64_t K, const void *w, rp_dtype wt,
                            size_t w_row_bytes, int64_t N) {
    rp_matmul_part part = { y, w, wt, w_row_bytes, N, NULL };
    return cpu_matmul_multi(be, x, M, K, &part, 1);
}

/* ---- embedding, norms, rope, elementwise ---- */

static rp_status cpu_embed(rp_backend *be, float *out, const void *table, rp_dtype dt, size_t row_bytes, int64_t V,
                           int64_t C, const int32_t *ids, int64_t T) {
    (void)be;
    if (!rp_dtype_dequantizable(dt)) return rp_fail(RP_ERR_UNSUPPORTED, "embed: dtype %s not supported", rp_dtype_name(dt));
    for (int64_t t = 0; t < T; t++) {
        if (ids[t] < 0 || ids[t] >= V)
            return rp_fail(RP_ERR_RANGE, "embed: token id %d at position %lld outside vocabulary [0, %lld)", ids[t], (long long)t, (long long)V);
        rp_dequantize_row_fast(dt, (const char *)table + (size_t)ids[t] * row_bytes, out + t * C, C);
    }
    return RP_OK;
}

static rp_status cpu_rmsnorm(rp_backend *be, float *out, const float *x, const float *w, int64_t T, int64_t C, float eps) {
    (void)be;
    for (int64_t t = 0; t < T; t++) {
        const float *xr = x + t * C;
        float r = 1.0f / sqrtf(rp_vdot(xr, xr, C) / (float)C + eps);
        float *o = out + t * C;
        if (w) for (int64_t c = 0; c < C; c++) o[c] = xr[c] * r * w[c];
        else for (int64_t c = 0; c < C; c++) o[c] = xr[c] * r;
    }
    return RP_OK;
}

static rp_status cpu_rope(rp_backend *be, float *x, int64_t T, int H, int D, int rope_dim, const int32_t *pos, float base,
                          int neox) {
    cpu_impl *im = impl_of(be);
    if (rope_dim > D || rope_dim % 2 || rope_dim > 1024)
        return rp_fail(RP_ERR_INVAL, "rope: rope_dim %d must be even, <= head size %d and <= 1024", rope_dim, D);
    int half = rope_dim / 2;
    if (im->rope_base != base || im->rope_dim != rope_dim) {
        for (int i = 0; i < half; i++) im->inv_freq[i] = pow((double)base, -2.0 * i / rope_dim);
        im->rope_base = base;
        im->rope_dim = rope_dim;
    }
    float cs[512], sn[512];
    for (int64_t t = 0; t < T; t++) {
        for (int i = 0; i < half; i++) {
            double ang = (double)pos[t] * im->inv_freq[i];
            cs[i] = (float)cos(ang);
            sn[i] = (float)sin(ang);
        }
        for (int h = 0; h < H; h++) {
            float *v = x + (t * H + h) * D;
            if (neox) {
                for (int i = 0; i < half; i++) {
                    float x0 = v[i], x1 = v[i + half];
                    v[i] = x0 * cs[i] - x1 * sn[i];
                    v[i + half] = x0 * sn[i] + x1 * cs[i];
                }
            } else {
                for (int i = 0; i < half; i++) {
                    float x0 = v[2 * i], x1 = v[2 * i + 1];
                    v[2 * i] = x0 * cs[i] - x1 * sn[i];
                    v[2 * i + 1] = x0 * sn[i] + x1 * cs[i];
                }
            }
        }
    }
    return RP_OK;
}

static rp_status cpu_swiglu(rp_backend *be, float *out, const float *gate, const float *up, int64_t n) {
    (void)be;
    rp_vswiglu(out, gate, up, n);
    return RP_OK;
}

static rp_status cpu_softmax(rp_backend *be, float *x, int64_t rows, int64_t n) {
    (void)be;
    for (int64_t r = 0; r < rows; r++) {
        float *v = x + r * n;
        float s = rp_vexp_sub_sum(v, rp_vmax(v, n), n);
        rp_vscale(v, 1.0f / s, n);
    }
    return RP_OK;
}

static rp_status cpu_log_softmax(rp_backend *be, float *out, const float *x, int64_t rows, int64_t n) {
    (void)be;
    for (int64_t r = 0; r < rows; r++) {
        const float *v = x + r * n;
        float mx = rp_vmax(v, n);
        float lse = mx + logf(rp_vexp_sum(v, mx, n));
        for (int64_t i = 0; i < n; i++) out[r * n + i] = v[i] - lse;
    }
    return RP_OK;
}

static rp_status cpu_cross_entropy(rp_backend *be, float *loss, const float *logits, const int32_t *target, int64_t rows,
                                   int64_t n) {
    (void)be;
    for (int64_t r = 0; r < rows; r++) {
        if (target[r] < 0 || target[r] >= n)
            return rp_fail(RP_ERR_RANGE, "cross_entropy: target %d of row %lld outside [0, %lld)", target[r], (long long)r, (long long)n);
        const float *v = logits + r * n;
        float mx = rp_vmax(v, n);
        loss[r] = mx + logf(rp_vexp_sum(v, mx, n)) - v[target[r]];
    }
    return RP_OK;
}

/* ---- attention ---- */

typedef struct att_job {
    rp_backend *be;
    float *out;
    const float *q, *k, *v;
    int64_t T, pos0, kv_stride;
    int H, Hkv, D, nqb;
    float scale;
    int failed;
    int hsplit;          /* decoding: parts each KV head's query heads are split in (one task each) */
} att_job;

/* Decoding (one query row). hsplit 0: task t = query heads [64t, 64t + 64), every KV head they read in
 * one sweep over the cache rows (one thread: the cache is read once, as one stream); hsplit >= 1: task =
 * (KV head, one of hsplit parts of its query heads), which read that KV head's columns together, once. */
static void att_decode_range(const att_job *j, int task, int *h0, int *h1) {
    const int group = j->H / j->Hkv;
    if (j->hsplit == 0) { *h0 = task * RP_ATTN_DECODE_MAX_HEADS; *h1 = *h0 + RP_ATTN_DECODE_MAX_HEADS < j->H ? *h0 + RP_ATTN_DECODE_MAX_HEADS : j->H; return; }
    const int g = task / j->hsplit, p = task % j->hsplit;
    *h0 = g * group + p * group / j->hsplit;
    *h1 = g * group + (p + 1) * group / j->hsplit;
}

static void att_decode_task(void *ctx, int ith, int nth, int thread) {
    att_job *j = ctx;
    const int group = j->H / j->Hkv;
    const int ntask = j->hsplit ? j->Hkv * j->hsplit : (j->H + RP_ATTN_DECODE_MAX_HEADS - 1) / RP_ATTN_DECODE_MAX_HEADS;
    const int most = j->hsplit ? (group + j->hsplit - 1) / j->hsplit : (j->H < RP_ATTN_DECODE_MAX_HEADS ? j->H : RP_ATTN_DECODE_MAX_HEADS);
    const int64_t nk = j->pos0 + 1;
    float *S = scratch_get(&impl_of(j->be)->tmp[thread], (size_t)most * (size_t)nk * sizeof(float));
    if (!S) { j->failed = 1; return; }
    for (int task = ith; task < ntask; task += nth) {
        int h0, h1;
        att_decode_range(j, task, &h0, &h1);
        rp_attn_decode_heads(j->out, j->q, j->k, j->v, nk, h0, h1, group, j->D, j->kv_stride, j->scale, S);
    }
}

static void att_task(void *ctx, int ith, int nth, int thread) {
    att_job *j = ctx;
    int group = j->H / j->Hkv;
    int64_t ntask = (int64_t)j->H * j->nqb;
    int64_t qb_rows = j->T < ATT_QB ? j->T : ATT_QB;
    float *S = scratch_get(&impl_of(j->be)->tmp[thread], (size_t)qb_rows * (size_t)(j->pos0 + j->T) * sizeof(float));
    if (!S) { j->failed = 1; return; }
    int64_t ldq = (int64_t)j->H * j->D;
    for (int64_t task = ith; task < ntask; task += nth) {
        int h = (int)(task % j->H), g = h / group;
        int64_t t0 = (task / j->H) * ATT_QB, nt = j->T - t0 < ATT_QB ? j->T - t0 : ATT_QB;
        int64_t nk = j->pos0 + t0 + nt;           /* keys the last query of the block sees */
        const float *qh = j->q + t0 * ldq + (int64_t)h * j->D;
        const float *kh = j->k + (int64_t)g * j->D, *vh = j->v + (int64_t)g * j->D;
        float *oh = j->out + t0 * ldq + (int64_t)h * j->D;
        if (nt == 1) {   /* decoding: matrix-vector products (sgemm with M = 1 is 5x slower than sgemv) */
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)nk, j->D, j->scale, kh, (int)j->kv_stride, qh, 1, 0.0f, S, 1);
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nt, (int)nk, j->D, j->scale, qh, (int)ldq, kh,
                        (int)j->kv_stride, 0.0f, S, (int)nk);
        }
        for (int64_t i = 0; i < nt; i++) {        /* causal softmax: row i sees keys [0, pos0 + t0 + i] */
            float *row = S + i * nk;
            int64_t len = j->pos0 + t0 + i + 1;
            float sum = rp_vexp_sub_sum(row, rp_vmax(row, len), len);
            rp_vscale(row, 1.0f / sum, len);
            memset(row + len, 0, (size_t)(nk - len) * sizeof(float));
        }
        if (nt == 1) {
            cblas_sgemv(CblasRowMajor, CblasTrans, (int)nk, j->D, 1.0f, vh, (int)j->kv_stride, S, 1, 0.0f, oh, 1);
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nt, j->D, (int)nk, 1.0f, S, (int)nk, vh,
                        (int)j->kv_stride, 0.0f, oh, (int)ldq);
        }
    }
}

static rp_status cpu_attention(rp_backend *be, float *out, const float *q, const float *k, const float *v, int64_t T,
                               int64_t pos0, int H, int Hkv, int D, int64_t kv_stride, float scale) {
    if (Hkv <= 0 || H % Hkv) return rp_fail(RP_ERR_INVAL, "attention: %d heads not a multiple of %d kv heads", H, Hkv);
    if (T <= 0) return RP_OK;
    if (pos0 + T > INT32_MAX || kv_stride > INT32_MAX) return rp_fail(RP_ERR_RANGE, "attention: sizes over 2^31");
    att_job j = { be, out, q, k, v, T, pos0, kv_stride, H, Hkv, D, (int)((T + ATT_QB - 1) / ATT_QB), scale, 0, 1 };
    double work = (double)H * T * (pos0 + T) * D;
    if (T == 1 && rp_attn_decode_supported(D)) {   /* decoding: one sweep over the cache on one thread; else one task per KV head (or part of one) */
        const int group = H / Hkv, nthr = rp_pool_size(be->pool), max_g = RP_ATTN_DECODE_MAX_HEADS;
        if (work < 40000 || nthr == 1) {
            j.hsplit = 0;
            rp_pool_run(be->pool, att_decode_task, &j, 1);
        } else {
            int split = Hkv >= nthr ? 1 : (nthr + Hkv - 1) / Hkv;
            if (split < (group + max_g - 1) / max_g) split = (group + max_g - 1) / max_g;
            j.hsplit = split < group ? split : group;
            rp_pool_run(be->pool, att_decode_task, &j, Hkv * j.hsplit);
        }
        if (j.failed) return rp_fail(RP_ERR_NOMEM, "attention: out of memory for scores");
        return RP_OK;
    }
    /* one task per (head, query block) when worth it; otherwise everything on the caller */
    int64_t parts = (int64_t)H * j.nqb;
    rp_pool_run(be->pool, att_task, &j, work < 40000 || rp_pool_size(be->pool) == 1 ? 1 : (int)(parts < (1 << 20) ? parts : (1 << 20)));
    if (j.failed) return rp_fail(RP_ERR_NOMEM, "attention: out of memory for scores");
    return RP_OK;
}

/* ---- causal depthwise conv1d: channels innermost, so each tap is an axpy over C ---- */

static rp_status cpu_conv1d_causal(rp_backend *be, float *out, const float *x, int64_t T, int64_t C, const float *w,
                                   const float *b, int K, float *state) {
    if (K < 1 || K > 65) return rp_fail(RP_ERR_INVAL, "conv1d_causal: kernel size %d outside [1, 65]", K);
    cpu_impl *im = impl_of(be);
    /* wT[k, c] = w[c, k]; hist[j, c] = input at time j - (K-1) for j < K-1 (from state), so that
     * input(t') for t' in [-(K-1), T) is hist[t' + K-1] or x[t'] */
    float *wT = scratch_get(&im->tmp[0], ((size_t)K + (size_t)K) * (size_t)C * sizeof(float));
    if (!wT) return rp_fail(RP_ERR_NOMEM, "conv1d_causal: out of memory");
    float *hist = wT + (size_t)K * C;
    for (int k = 0; k < K; k++)
        for (int64_t c = 0; c < C; c++) wT[k * C + c] = w[c * K + k];
    for (int j = 0; j < K - 1; j++)
        for (int64_t c = 0; c < C; c++) hist[j * C + c] = state ? state[c * (K - 1) + j] : 0.0f;
    for (int64_t t = 0; t < T; t++) {
        float *o = out + t * C;
        if (b) memcpy(o, b, (size_t)C * sizeof(float));
        else memset(o, 0, (size_t)C * sizeof(float));
        for (int k = 0; k < K; k++) {
            int64_t src = t - K + 1 + k;
            const float *in = src >= 0 ? x + src * C : hist + (src + K - 1) * C;
            rp_vmul_add(o, wT + (size_t)k * C, in, C);
        }
    }
    if (state && K > 1)
        for (int j = 0; j < K - 1; j++) {
            int64_t src = T - (K - 1) + j;
            const float *in = src >= 0 ? x + src * C : hist + (src + K - 1) * C;
            for (int64_t c = 0; c < C; c++) state[c * (K - 1) + j] = in[c];
        }
    return RP_OK;
}

/* ---- selective scan: tensor/ssm.c (channels across the lanes, threads over channel blocks) ---- */

static rp_status cpu_selective_scan(rp_backend *be, float *y, const float *u, const float *dt, const float *A,
                                    const float *B, const float *Cm, const float *Dp, int64_t T, int64_t D, int64_t N,
                                    float *h, float *ckpt) {
    rp_ssm_scan(be->pool, T, D, N, u, dt, A, B, Cm, Dp, h, y, ckpt);
    return RP_OK;
}

static const rp_backend_ops cpu_ops = {
    .host_memory = 1, .alloc = rp_cpu_alloc, .free = rp_cpu_free, .copy_to_host = rp_cpu_copy,
    .copy_from_host = rp_cpu_copy, .sync = rp_cpu_sync, .argmax = rp_ref_argmax,
    .matmul = cpu_matmul, .matmul_multi = cpu_matmul_multi, .embed = cpu_embed, .rmsnorm = cpu_rmsnorm, .rope = cpu_rope,
    .attention = cpu_attention, .swiglu = cpu_swiglu, .add = rp_ref_add, .softmax = cpu_softmax,
    .log_softmax = cpu_log_softmax, .cross_entropy = cpu_cross_entropy, .gather_rows = rp_ref_gather_rows,
    .scatter_add_rows = rp_ref_scatter_add_rows, .conv1d_causal = cpu_conv1d_causal,
    .selective_scan = cpu_selective_scan,
};

/* OpenBLAS stays single-threaded (our pool splits the work); set once per process, since every call
 * wakes OpenBLAS's own idle threads, which then spin for a while. */
static void blas_single_thread(void) { openblas_set_num_threads(1); }
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

/* Build the fast CPU backend with a pool of n_threads (<= 0: the machine's cores). */
rp_status rp_backend_cpu_new(int n_threads, rp_backend **out) {
    rp_backend *be = calloc(1, sizeof *be);
    cpu_impl *im = calloc(1, sizeof *im);
    if (!be || !im) { free(be); free(im); return rp_fail(RP_ERR_NOMEM, "cpu backend: out of memory"); }
    rp_status st = rp_pool_new(n_threads, &be->pool);
    if (st != RP_OK) { free(be); free(im); return st; }
    if (rp_pool_size(be->pool) > MAX_THREADS) { rp_pool_free(be->pool); free(be); free(im); return rp_fail(RP_ERR_INVAL, "cpu backend: more than %d threads", MAX_THREADS); }
    pthread_once(&blas_once, blas_single_thread);
    const char *e = getenv("REPRO_INT8_DOT");
    im->int8_dot = !e || !*e || !strcmp(e, "0") ? 0 : !strcmp(e, "decode") ? 1 : 2;
    be->name = "cpu";
    be->ops = &cpu_ops;
    be->impl = im;
    *out = be;
    return RP_OK;
}

/* Free a backend made by rp_backend_cpu_new. */
void rp_backend_cpu_free(rp_backend *be) {
    if (!be) return;
    cpu_impl *im = be->impl;
    for (int i = 0; i < MAX_THREADS; i++) rp_cpu_free(NULL, im->tmp[i].p);
    rp_cpu_free(NULL, im->act.p);
    free(im);
    rp_pool_free(be->pool);
    free(be);
}
