/* backward_ref.c: the reference backward kernels (table rp_bwd_ref): one obvious loop nest per op, double
 * accumulators for long sums, single-threaded. They define each backward as the exact adjoint of the
 * forward in ops_ref.c; tests/test_backward.c checks them against finite differences of those forwards
 * and checks the cpu table against them. Gradients are accumulated (+=), see backward.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "tensor/backward.h"
#include "tensor/ops_ref.h"
#include "tensor/quant.h"

/* Validates the weight arguments of a matmul backward: quantized weights are constants. */
static rp_status check_weight_grad(float *dw, rp_dtype wt) {
    if (!rp_dtype_dequantizable(wt)) return rp_fail(RP_ERR_UNSUPPORTED, "matmul backward: weight dtype %s not supported", rp_dtype_name(wt));
    if (dw && wt != RP_F32)
        return rp_fail(RP_ERR_UNSUPPORTED, "matmul backward: weight gradient asked for a %s weight (quantized weights are constants; train an adapter)",
                       rp_dtype_name(wt));
    return RP_OK;
}

/* dx += dy·W, dw += dyᵀ·x, db += Σ_m dy with W dequantized whole first. */
static rp_status ref_matmul_backward(rp_bwd *b, float *dx, float *dw, float *db, const float *dy, const float *x,
                                     int64_t M, int64_t K, const void *w, rp_dtype wt, size_t w_row_bytes, int64_t N) {
    (void)b;
    RP_TRY(check_weight_grad(dw, wt));
    if (dx) {
        float *W = malloc((size_t)N * (size_t)K * sizeof *W);
        if (!W) return rp_fail(RP_ERR_NOMEM, "matmul backward: out of memory for %lld x %lld weights", (long long)N, (long long)K);
        for (int64_t n = 0; n < N; n++) {
            rp_status st = rp_dequantize_row(wt, (const char *)w + (size_t)n * w_row_bytes, W + n * K, K);
            if (st != RP_OK) { free(W); return st; }
        }
        for (int64_t m = 0; m < M; m++)
            for (int64_t k = 0; k < K; k++) {
                double acc = 0;
                for (int64_t n = 0; n < N; n++) acc += (double)dy[m * N + n] * W[n * K + k];
                dx[m * K + k] += (float)acc;
            }
        free(W);
    }
    if (dw)
        for (int64_t n = 0; n < N; n++) {
            float *row = (float *)((char *)dw + (size_t)n * w_row_bytes);
            for (int64_t k = 0; k < K; k++) {
                double acc = 0;
                for (int64_t m = 0; m < M; m++) acc += (double)dy[m * N + n] * x[m * K + k];
                row[k] += (float)acc;
            }
        }
    if (db)
        for (int64_t n = 0; n < N; n++) {
            double acc = 0;
            for (int64_t m = 0; m < M; m++) acc += dy[m * N + n];
            db[n] += (float)acc;
        }
    return RP_OK;
}

/* An embedding lookup is a row gather: its backward is the same scatter-add. */
rp_status rp_ref_embed_backward(rp_bwd *b, float *dtable, int64_t V, int64_t C, const int32_t *ids, int64_t T,
                                const float *dout) {
    return rp_ref_gather_rows_backward(b, dtable, V, C, ids, T, dout);
}

/* dx = r·(w∘dy) − r³/C · x · Σ(w∘dy∘x), dw += Σ_t dy∘x·r, with r = 1/rms recomputed per row. */
rp_status rp_ref_rmsnorm_backward(rp_bwd *b, float *dx, float *dw, const float *dout, const float *x, const float *w,
                                  int64_t T, int64_t C, float eps) {
    (void)b;
    for (int64_t t = 0; t < T; t++) {
        const float *xr = x + t * C, *dr = dout + t * C;
        double ss = 0, dot = 0;
        for (int64_t c = 0; c < C; c++) ss += (double)xr[c] * xr[c];
        double r = 1.0 / sqrt(ss / (double)C + eps);
        for (int64_t c = 0; c < C; c++) dot += (double)dr[c] * (w ? w[c] : 1.0f) * xr[c];
        if (dx)
            for (int64_t c = 0; c < C; c++)
                dx[t * C + c] += (float)(r * dr[c] * (w ? w[c] : 1.0f) - r * r * r / (double)C * xr[c] * dot);
        if (dw)
            for (int64_t c = 0; c < C; c++) dw[c] += (float)((double)dr[c] * xr[c] * r);
    }
    return RP_OK;
}

/* The transpose of each 2x2 rotation is the rotation by the negated angle: the forward at position −pos. */
rp_status rp_ref_rope_backward(rp_bwd *b, float *dx, int64_t T, int H, int D, int rope_dim, const int32_t *pos,
                               float base, int neox) {
    (void)b;
    for (int64_t t = 0; t < T; t++) {
        int32_t neg = -pos[t];
        RP_TRY(rp_ref_rope(NULL, dx + t * H * D, 1, H, D, rope_dim, &neg, base, neox));
    }
    return RP_OK;
}

/* Per query and head: recompute the probabilities p, then dS = p∘(dP − ⟨p, dP⟩) with dP = dout·Vᵀ. */
static rp_status ref_attention_backward(rp_bwd *b, float *dq, float *dk, float *dv, const float *dout, const float *q,
                                        const float *k, const float *v, int64_t T, int64_t pos0, int H, int Hkv, int D,
                                        int64_t kv_stride, float scale) {
    (void)b;
    if (Hkv <= 0 || H % Hkv) return rp_fail(RP_ERR_INVAL, "attention backward: %d heads not a multiple of %d kv heads", H, Hkv);
    int group = H / Hkv;
    double *p = malloc((size_t)(pos0 + T) * 2 * sizeof *p);
    if (!p) return rp_fail(RP_ERR_NOMEM, "attention backward: out of memory");
    double *dp = p + pos0 + T;
    for (int64_t t = 0; t < T; t++)
        for (int h = 0; h < H; h++) {
            const float *qv = q + (t * H + h) * D, *go = dout + (t * H + h) * D;
            int g = h / group;
            int64_t nk = pos0 + t + 1;
            double sum = rp_ref_attention_weights(qv, k + g * D, kv_stride, D, nk, scale, p), pdp = 0;
            for (int64_t j = 0; j < nk; j++) {
                p[j] /= sum;
                double s = 0;
                for (int d = 0; d < D; d++) s += (double)go[d] * v[j * kv_stride + g * D + d];
                dp[j] = s;
                pdp += p[j] * s;
            }
            for (int64_t j = 0; j < nk; j++) {
                double ds = p[j] * (dp[j] - pdp) * scale;
                for (int d = 0; d < D; d++) {
                    if (dq) dq[(t * H + h) * D + d] += (float)(ds * k[j * kv_stride + g * D + d]);
                    if (dk) dk[j * kv_stride + g * D + d] += (float)(ds * qv[d]);
                    if (dv) dv[j * kv_stride + g * D + d] += (float)(p[j] * go[d]);
                }
            }
        }
    free(p);
    return RP_OK;
}

/* d silu(g)/dg = σ(g)·(1 + g·(1 − σ(g))). */
rp_status rp_ref_swiglu_backward(rp_bwd *b, float *dgate, float *dup, const float *dout, const float *gate,
                                 const float *up, int64_t n) {
    (void)b;
    for (int64_t i = 0; i < n; i++) {
        double g = gate[i], s = 1.0 / (1.0 + exp(-g)), u = up ? up[i] : 1.0;
        if (dgate) dgate[i] += (float)(dout[i] * u * s * (1.0 + g * (1.0 - s)));
        if (dup) dup[i] += (float)(dout[i] * g * s);
    }
    return RP_OK;
}

/* dx += y∘(dy − ⟨dy, y⟩) per row. */
rp_status rp_ref_softmax_backward(rp_bwd *b, float *dx, const float *dy, const float *y, int64_t rows, int64_t n) {
    (void)b;
    for (int64_t r = 0; r < rows; r++) {
        double dot = 0;
        for (int64_t i = 0; i < n; i++) dot += (double)dy[r * n + i] * y[r * n + i];
        for (int64_t i = 0; i < n; i++) dx[r * n + i] += (float)(y[r * n + i] * (dy[r * n + i] - dot));
    }
    return RP_OK;
}

/* dx += dy − exp(y)·Σdy per row. */
rp_status rp_ref_log_softmax_backward(rp_bwd *b, float *dx, const float *dy, const float *y, int64_t rows, int64_t n) {
    (void)b;
    for (int64_t r = 0; r < rows; r++) {
        double sum = 0;
        for (int64_t i = 0; i < n; i++) sum += dy[r * n + i];
        for (int64_t i = 0; i < n; i++) dx[r * n + i] += (float)(dy[r * n + i] - exp((double)y[r * n + i]) * sum);
    }
    return RP_OK;
}

/* dlogits += dloss·(softmax − onehot) for each scored row. */
rp_status rp_ref_cross_entropy_backward(rp_bwd *b, float *dlogits, const float *logits, const int32_t *target,
                                        const float *dloss, const uint8_t *mask, int64_t rows, int64_t n) {
    (void)b;
    for (int64_t r = 0; r < rows; r++) {
        if (mask && !mask[r]) continue;
        if (target[r] < 0 || target[r] >= n)
            return rp_fail(RP_ERR_RANGE, "cross_entropy backward: target %d of row %lld outside [0, %lld)", target[r], (long long)r, (long long)n);
        const float *v = logits + r * n;
        double mx = -INFINITY, sum = 0, g = dloss ? dloss[r] : 1.0;
        for (int64_t i = 0; i < n; i++) if (v[i] > mx) mx = v[i];
        for (int64_t i = 0; i < n; i++) sum += exp((double)v[i] - mx);
        for (int64_t i = 0; i < n; i++) dlogits[r * n + i] += (float)(g * (exp((double)v[i] - mx) / sum - (i == target[r])));
    }
    return RP_OK;
}

/* dx[idx[i]] += dout[i]. */
rp_status rp_ref_gather_rows_backward(rp_bwd *b, float *dx, int64_t rows_x, int64_t C, const int32_t *idx, int64_t n,
                                      const float *dout) {
    (void)b;
    for (int64_t i = 0; i < n; i++) {
        if (idx[i] < 0 || idx[i] >= rows_x)
            return rp_fail(RP_ERR_RANGE, "gather backward: index %d at %lld outside [0, %lld)", idx[i], (long long)i, (long long)rows_x);
        for (int64_t c = 0; c < C; c++) dx[(int64_t)idx[i] * C + c] += dout[i * C + c];
    }
    return RP_OK;
}

/* dx[i] += weight[i]·dout[idx[i]], dweight[i] += ⟨dout[idx[i]], x[i]⟩. */
rp_status rp_ref_scatter_add_rows_backward(rp_bwd *b, float *dx, float *dweight, const float *dout, int64_t rows_out,
                                           const float *x, int64_t C, const int32_t *idx, const float *weight, int64_t n) {
    (void)b;
    for (int64_t i = 0; i < n; i++) {
        if (idx[i] < 0 || idx[i] >= rows_out)
            return rp_fail(RP_ERR_RANGE, "scatter_add backward: index %d at %lld outside [0, %lld)", idx[i], (long long)i, (long long)rows_out);
        const float *g = dout + (int64_t)idx[i] * C;
        float wgt = weight ? weight[i] : 1.0f;
        double dot = 0;
        for (int64_t c = 0; c < C; c++) {
            if (dx) dx[i * C + c] += wgt * g[c];
            dot += (double)g[c] * x[i * C + c];
        }
        if (dweight) dweight[i] += (float)dot;
    }
    return RP_OK;
}

const rp_bwd_ops rp_bwd_ref = {
    .name = "ref", .matmul = ref_matmul_backward, .embed = rp_ref_embed_backward, .rmsnorm = rp_ref_rmsnorm_backward,
    .rope = rp_ref_rope_backward, .attention = ref_attention_backward, .swiglu = rp_ref_swiglu_backward,
    .softmax = rp_ref_softmax_backward, .log_softmax = rp_ref_log_softmax_backward,
    .cross_entropy = rp_ref_cross_entropy_backward, .gather_rows = rp_ref_gather_rows_backward,
    .scatter_add_rows = rp_ref_scatter_add_rows_backward,
    .conv1d_causal = rp_ref_conv1d_causal_backward, .selective_scan = rp_ref_selective_scan_backward,
};
