/* ops_ref.c: the reference kernels: one obvious loop nest per op, double accumulators where sums are long,
 * single-threaded. They define what each op means (backend.h) and are what every faster kernel is
 * tested against; keep them plain rather than fast. */
#include "tensor/ops_ref.h"
#include <math.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include "tensor/quant.h"

/* Host memory for CPU backends: 64-byte aligned, zero-filled. Blocks of CPU_MAP_MIN bytes and more are mapped
 * from the kernel (zero pages, no memset) and unmapped when freed; smaller ones come from malloc. Why: once glibc
 * frees one big mapped block it raises its mmap threshold and serves later big blocks from its heap, which then
 * fragments: prune_angular's 960 hidden-state captures of 9 MB each, allocated and freed one after the other,
 * kept 8.9 GB resident for 9 MB live. A CPU_HDR-byte header before each block records its kind and length.
 * Under AddressSanitizer every block comes from malloc, so its redzones guard the big ones too. */
#define CPU_HDR 64
#if defined(__SANITIZE_ADDRESS__)
#define CPU_MAP_MIN SIZE_MAX
#else
#define CPU_MAP_MIN ((size_t)2 << 20)
#endif
typedef struct { size_t len; int mapped; } cpu_block;

void *rp_cpu_alloc(rp_backend *be, size_t nbytes) {
    (void)be;
    size_t n = (nbytes + 63) & ~(size_t)63;
    if (n < nbytes || n > SIZE_MAX - CPU_HDR) return NULL;
    size_t total = CPU_HDR + (n ? n : 64);
    char *base;
    int mapped = total >= CPU_MAP_MIN;
    if (mapped) {
        base = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (base == MAP_FAILED) return NULL;
    } else {
        if (!(base = aligned_alloc(64, total))) return NULL;
        memset(base + CPU_HDR, 0, total - CPU_HDR);
    }
    *(cpu_block *)base = (cpu_block){ total, mapped };
    return base + CPU_HDR;
}

/* Free host memory from rp_cpu_alloc (NULL: nothing). */
void rp_cpu_free(rp_backend *be, void *p) {
    (void)be;
    if (!p) return;
    char *base = (char *)p - CPU_HDR;
    const cpu_block *b = (const cpu_block *)base;
    if (b->mapped) munmap(base, b->len);
    else free(base);
}

/* Host to host: a memcpy (the CPU backends' buffers are host memory). */
rp_status rp_cpu_copy(rp_backend *be, void *dst, const void *src, size_t nbytes) {
    (void)be;
    if (nbytes) memcpy(dst, src, nbytes);
    return RP_OK;
}

/* Nothing to wait for: CPU kernels return when done. */
rp_status rp_cpu_sync(rp_backend *be) { (void)be; return RP_OK; }

/* index of the row maximum, first on ties. */
rp_status rp_ref_argmax(rp_backend *be, int32_t *out, const float *x, int64_t rows, int64_t n) {
    (void)be;
    if (n <= 0 || n > INT32_MAX) return rp_fail(RP_ERR_INVAL, "argmax: rows of %lld", (long long)n);
    for (int64_t r = 0; r < rows; r++) {
        const float *row = x + r * n;
        int64_t best = 0;
        for (int64_t v = 1; v < n; v++) if (row[v] > row[best]) best = v;
        out[r] = (int32_t)best;
    }
    return RP_OK;
}

/* y = x · Wᵀ with each weight row dequantized by the reference dequantizer. */
rp_status rp_ref_matmul(rp_backend *be, float *y, const float *x, int64_t M, int64_t K, const void *w, rp_dtype wt,
                        size_t w_row_bytes, int64_t N) {
    (void)be;
    float *row = malloc((size_t)K * sizeof *row);
    if (!row) return rp_fail(RP_ERR_NOMEM, "matmul: out of memory for a row of %lld", (long long)K);
    for (int64_t n = 0; n < N; n++) {
        rp_status st = rp_dequantize_row(wt, (const char *)w + (size_t)n * w_row_bytes, row, K);
        if (st != RP_OK) { free(row); return st; }
        for (int64_t m = 0; m < M; m++) {
            double acc = 0;
            for (int64_t k = 0; k < K; k++) acc += (double)x[m * K + k] * row[k];
            y[m * N + n] = (float)acc;
        }
    }
    free(row);
    return RP_OK;
}

/* Each part through the reference matmul. */
rp_status rp_ref_matmul_multi(rp_backend *be, const float *x, int64_t M, int64_t K, const rp_matmul_part *parts, int n) {
    if (n < 1 || n > RP_MATMUL_MAX_PARTS) return rp_fail(RP_ERR_INVAL, "matmul: %d parts (1..%d)", n, RP_MATMUL_MAX_PARTS);
    for (int p = 0; p < n; p++) RP_TRY(rp_ref_matmul(be, parts[p].y, x, M, K, parts[p].w, parts[p].wt, parts[p].ldw, parts[p].N));
    return RP_OK;
}

/* Rows of an embedding table, dequantized. */
rp_status rp_ref_embed(rp_backend *be, float *out, const void *table, rp_dtype dt, size_t row_bytes, int64_t V,
                       int64_t C, const int32_t *ids, int64_t T) {
    (void)be;
    for (int64_t t = 0; t < T; t++) {
        if (ids[t] < 0 || ids[t] >= V)
            return rp_fail(RP_ERR_RANGE, "embed: token id %d at position %lld outside vocabulary [0, %lld)", ids[t], (long long)t, (long long)V);
        RP_TRY(rp_dequantize_row(dt, (const char *)table + (size_t)ids[t] * row_bytes, out + t * C, C));
    }
    return RP_OK;
}

/* RMSNorm over the last dimension. */
rp_status rp_ref_rmsnorm(rp_backend *be, float *out, const float *x, const float *w, int64_t T, int64_t C, float eps) {
    (void)be;
    for (int64_t t = 0; t < T; t++) {
        double ss = 0;
        for (int64_t c = 0; c < C; c++) ss += (double)x[t * C + c] * x[t * C + c];
        float r = (float)(1.0 / sqrt(ss / (double)C + eps));
        for (int64_t c = 0; c < C; c++) out[t * C + c] = x[t * C + c] * r * (w ? w[c] : 1.0f);
    }
    return RP_OK;
}

/* Rotary embedding, computing each angle from scratch in double. */
rp_status rp_ref_rope(rp_backend *be, float *x, int64_t T, int H, int D, int rope_dim, const int32_t *pos, float base,
                      int neox) {
    (void)be;
    if (rope_dim > D || rope_dim % 2) return rp_fail(RP_ERR_INVAL, "rope: rope_dim %d must be even and <= head size %d", rope_dim, D);
    int half = rope_dim / 2;
    for (int64_t t = 0; t < T; t++)
        for (int h = 0; h < H; h++) {
            float *v = x + (t * H + h) * D;
            for (int i = 0; i < half; i++) {
                double ang = (double)pos[t] * pow((double)base, -2.0 * i / rope_dim);
                double c = cos(ang), s = sin(ang);
                int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
                double x0 = v[a], x1 = v[b];
                v[a] = (float)(x0 * c - x1 * s);
                v[b] = (float)(x0 * s + x1 * c);
            }
        }
    return RP_OK;
}

/* The unnormalized causal attention weights of one query row against nk keys (stable: the max is
 * subtracted before exp); returns their sum. */
double rp_ref_attention_weights(const float *qv, const float *kh, int64_t kv_stride, int D, int64_t nk, float scale,
                                double *p) {
    double mx = -INFINITY, sum = 0;
    for (int64_t j = 0; j < nk; j++) {
        double s = 0;
        for (int d = 0; d < D; d++) s += (double)qv[d] * kh[j * kv_stride + d];
        p[j] = s * scale;
        if (p[j] > mx) mx = p[j];
    }
    for (int64_t j = 0; j < nk; j++) { p[j] = exp(p[j] - mx); sum += p[j]; }
    return sum;
}

/* Causal attention one query and one head at a time. */
rp_status rp_ref_attention(rp_backend *be, float *out, const float *q, const float *k, const float *v, int64_t T,
                           int64_t pos0, int H, int Hkv, int D, int64_t kv_stride, float scale) {
    (void)be;
    if (Hkv <= 0 || H % Hkv) return rp_fail(RP_ERR_INVAL, "attention: %d heads not a multiple of %d kv heads", H, Hkv);
    int group = H / Hkv;
    double *p = malloc((size_t)(pos0 + T) * sizeof *p);
    if (!p) return rp_fail(RP_ERR_NOMEM, "attention: out of memory");
    for (int64_t t = 0; t < T; t++)
        for (int h = 0; h < H; h++) {
            const float *qv = q + (t * H + h) * D;
            int g = h / group;
            int64_t nk = pos0 + t + 1;
            double sum = rp_ref_attention_weights(qv, k + g * D, kv_stride, D, nk, scale, p);
            for (int d = 0; d < D; d++) {
                double acc = 0;
                for (int64_t j = 0; j < nk; j++) acc += p[j] * v[j * kv_stride + g * D + d];
                out[(t * H + h) * D + d] = (float)(acc / sum);
            }
        }
    free(p);
    return RP_OK;
}

/* silu(gate) · up. */
rp_status rp_ref_swiglu(rp_backend *be, float *out, const float *gate, const float *up, int64_t n) {
    (void)be;
    for (int64_t i = 0; i < n; i++) {
        double g = gate[i];
        out[i] = (float)(g / (1.0 + exp(-g)) * (up ? up[i] : 1.0f));
    }
    return RP_OK;
}

/* Elementwise sum. */
rp_status rp_ref_add(rp_backend *be, float *y, const float *a, const float *b, int64_t n) {
    (void)be;
    for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
    return RP_OK;
}

/* Softmax of each row, max-subtracted. */
rp_status rp_ref_softmax(rp_backend *be, float *x, int64_t rows, int64_t n) {
    (void)be;
    for (int64_t r = 0; r < rows; r++) {
        float *v = x + r * n;
        double mx = -INFINITY, sum = 0;
        for (int64_t i = 0; i < n; i++) if (v[i] > mx) mx = v[i];
        for (int64_t i = 0; i < n; i++) sum += exp((double)v[i] - mx);
        for (int64_t i = 0; i < n; i++) v[i] = (float)(exp((double)v[i] - mx) / sum);
    }
    return RP_OK;
}

/* log softmax of each row via log-sum-exp. */
rp_status rp_ref_log_softmax(rp_backend *be, float *out, const float *x, int64_t rows, int64_t n) {
    (void)be;
    for (int64_t r = 0; r < rows; r++) {
        const float *v = x + r * n;
        double mx = -INFINITY, sum = 0;
        for (int64_t i = 0; i < n; i++) if (v[i] > mx) mx = v[i];
        for (int64_t i = 0; i < n; i++) sum += exp((double)v[i] - mx);
        double lse = mx + log(sum);
        for (int64_t i = 0; i < n; i++) out[r * n + i] = (float)((double)v[i] - lse);
    }
    return RP_OK;
}

/* Negative log-likelihood of each row's target. */
rp_status rp_ref_cross_entropy(rp_backend *be, float *loss, const float *logits, const int32_t *target, int64_t rows,
                               int64_t n) {
    (void)be;
    for (int64_t r = 0; r < rows; r++) {
        if (target[r] < 0 || target[r] >= n)
            return rp_fail(RP_ERR_RANGE, "cross_entropy: target %d of row %lld outside [0, %lld)", target[r], (long long)r, (long long)n);
        const float *v = logits + r * n;
        double mx = -INFINITY, sum = 0;
        for (int64_t i = 0; i < n; i++) if (v[i] > mx) mx = v[i];
        for (int64_t i = 0; i < n; i++) sum += exp((double)v[i] - mx);
        loss[r] = (float)(mx + log(sum) - v[target[r]]);
    }
    return RP_OK;
}

/* Row gather. */
rp_status rp_ref_gather_rows(rp_backend *be, float *out, const float *x, int64_t rows_x, int64_t C, const int32_t *idx,
                             int64_t n) {
    (void)be;
    for (int64_t i = 0; i < n; i++) {
        if (idx[i] < 0 || idx[i] >= rows_x)
            return rp_fail(RP_ERR_RANGE, "gather_rows: index %d at %lld outside [0, %lld)", idx[i], (long long)i, (long long)rows_x);
        memcpy(out + i * C, x + (int64_t)idx[i] * C, (size_t)C * sizeof *out);
    }
    return RP_OK;
}

/* Weighted row scatter-add. */
rp_status rp_ref_scatter_add_rows(rp_backend *be, float *out, int64_t rows_out, const float *x, int64_t C,
                                  const int32_t *idx, const float *weight, int64_t n) {
    (void)be;
    for (int64_t i = 0; i < n; i++) {
        if (idx[i] < 0 || idx[i] >= rows_out)
            return rp_fail(RP_ERR_RANGE, "scatter_add_rows: index %d at %lld outside [0, %lld)", idx[i], (long long)i, (long long)rows_out);
        float wgt = weight ? weight[i] : 1.0f;
        for (int64_t c = 0; c < C; c++) out[(int64_t)idx[i] * C + c] += wgt * x[i * C + c];
    }
    return RP_OK;
}

/* Causal depthwise conv1d with carried state. */
rp_status rp_ref_conv1d_causal(rp_backend *be, float *out, const float *x, int64_t T, int64_t C, const float *w,
                               const float *b, int K, float *state) {
    (void)be;
    if (K < 1) return rp_fail(RP_ERR_INVAL, "conv1d_causal: kernel size %d < 1", K);
    for (int64_t c = 0; c < C; c++) {
        for (int64_t t = 0; t < T; t++) {
            double acc = b ? b[c] : 0.0;
            for (int k = 0; k < K; k++) {
                int64_t src = t - K + 1 + k;      /* < 0: from the state (the K-1 inputs before t = 0) */
                double xv = src >= 0 ? x[src * C + c] : (state ? state[c * (K - 1) + (K - 1 + src)] : 0.0);
                acc += (double)w[c * K + k] * xv;
            }
            out[t * C + c] = (float)acc;
        }
    }
    if (state && K > 1) {
        for (int64_t c = 0; c < C; c++) {
            float tmp[64];
            float *hist = K - 1 <= 64 ? tmp : NULL;
            if (!hist) return rp_fail(RP_ERR_UNSUPPORTED, "conv1d_causal: kernel size %d > 65", K);
            for (int i = 0; i < K - 1; i++) {        /* new state: the last K-1 inputs of [state, x] */
                int64_t src = T - (K - 1) + i;
                hist[i] = src >= 0 ? x[src * C + c] : state[c * (K - 1) + (K - 1 + src)];
            }
            memcpy(state + c * (K - 1), hist, (size_t)(K - 1) * sizeof *hist);
        }
    }
    return RP_OK;
}

/* Sequential selective scan, libm exp. */
rp_status rp_ref_selective_scan(rp_backend *be, float *y, const float *u, const float *dt, const float *A,
                                const float *B, const float *Cm, const float *Dp, int64_t T, int64_t D, int64_t N,
                                float *h, float *ckpt) {
    (void)be; (void)ckpt;   /* its backward saves nothing */
    for (int64_t t = 0; t < T; t++)
        for (int64_t d = 0; d < D; d++) {
            float dtv = dt[t * D + d], uv = u[t * D + d];
            double acc = 0;
            for (int64_t n = 0; n < N; n++) {
                float *hs = &h[d * N + n];
                *hs = expf(dtv * A[d * N + n]) * *hs + dtv * B[t * N + n] * uv;
                acc += (double)Cm[t * N + n] * *hs;
            }
            y[t * D + d] = (float)acc + (Dp ? Dp[d] * uv : 0.0f);
        }
    return RP_OK;
}

const rp_backend_ops rp_ref_ops = {
    .host_memory = 1, .alloc = rp_cpu_alloc, .free = rp_cpu_free, .copy_to_host = rp_cpu_copy,
    .copy_from_host = rp_cpu_copy, .sync = rp_cpu_sync, .argmax = rp_ref_argmax,
    .matmul = rp_ref_matmul, .matmul_multi = rp_ref_matmul_multi, .embed = rp_ref_embed, .rmsnorm = rp_ref_rmsnorm, .rope = rp_ref_rope,
    .attention = rp_ref_attention, .swiglu = rp_ref_swiglu, .add = rp_ref_add, .softmax = rp_ref_softmax,
    .log_softmax = rp_ref_log_softmax, .cross_entropy = rp_ref_cross_entropy, .gather_rows = rp_ref_gather_rows,
    .scatter_add_rows = rp_ref_scatter_add_rows, .conv1d_causal = rp_ref_conv1d_causal,
    .selective_scan = rp_ref_selective_scan,
};
