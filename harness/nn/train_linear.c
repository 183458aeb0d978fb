/* train_linear.c: a linear layer as training sees it: a base weight that is either trainable f32 (full
 * fine-tuning), frozen as the file stores it (f32 or a GGUF quantized type) or frozen as NF4 (QLoRA), plus
 * an optional LoRA adapter y += (alpha/r) · dropout(x) · Aᵀ · Bᵀ (Hu et al. 2021: A random, B zero, so
 * training starts from the base model). Dropout masks come from tr_hash(seed, step, linear, element), so
 * they need no stored state and a resumed run draws the same ones. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "nn/train_impl.h"

/* Counter-based hash (splitmix64 finalizer over a mix of the inputs). */
uint64_t tr_hash(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
    uint64_t z = seed ^ (a * 0x9e3779b97f4a7c15ull) ^ (b * 0xc2b2ae3d27d4eb4full) ^ (c * 0x165667b19e3779f9ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Whether dropout drops element i of this linear's input at the current step. */
static int dropped(const rp_trainer *tr, const tr_linear *l, int64_t i) {
    uint64_t thr = (uint64_t)((double)l->dropout * 18446744073709551616.0);
    return tr_hash(tr->o.seed, (uint64_t)tr->step, (uint64_t)l->id, (uint64_t)i) < thr;
}

static const char *const kinds[7][2] = {
    { "attn_q", "q_proj" }, { "attn_k", "k_proj" }, { "attn_v", "v_proj" }, { "attn_output", "o_proj" },
    { "ffn_gate", "gate_proj" }, { "ffn_up", "up_proj" }, { "ffn_down", "down_proj" },
};

/* Whether kind (a GGUF short name) is among the comma-separated targets. */
rp_status tr_lora_is_target(const char *targets, const char *kind, int *out) {
    *out = 0;
    const char *s = targets ? targets : "attn_q,attn_v";
    while (*s) {
        size_t n = strcspn(s, ",");
        int known = 0;
        for (int i = 0; i < 7; i++)
            for (int j = 0; j < 2; j++)
                if (strlen(kinds[i][j]) == n && !strncmp(s, kinds[i][j], n)) {
                    known = 1;
                    if (!strcmp(kinds[i][0], kind)) *out = 1;
                }
        if (!known)
            return rp_fail(RP_ERR_INVAL, "lora: target '%.*s' unknown (attn_q attn_k attn_v attn_output ffn_gate ffn_up ffn_down, "
                           "or q_proj k_proj v_proj o_proj gate_proj up_proj down_proj)", (int)n, s);
        s += n;
        if (*s == ',') s++;
    }
    return RP_OK;
}

/* Register a trainable tensor and allocate its AdamW moments. */
rp_status tr_add_param(rp_trainer *tr, const char *name, float *p, float *g, int64_t n, int decay) {
    if (tr->n_params >= TR_MAX_PARAMS) return rp_fail(RP_ERR_RANGE, "trainer: more than %d trainable tensors", TR_MAX_PARAMS);
    tr_param *q = &tr->params[tr->n_params++];
    snprintf(q->name, sizeof q->name, "%s", name);
    q->p = p; q->g = g; q->n = n; q->decay = decay;
    q->m = tr_alloc(tr, n); q->v = tr_alloc(tr, n);
    if (!q->m || !q->v) return rp_fail(RP_ERR_NOMEM, "trainer: out of memory for the optimizer state of %s", name);
    return RP_OK;
}

/* Plan the adapter (A ~ U(-1/√in, 1/√in) as PyTorch's default init, B = 0) and, for trainable bases, register the weight. */
rp_status tr_linear_plan(rp_trainer *tr, tr_linear *l, const char *name, int lora) {
    int64_t BT = (int64_t)tr->o.B * tr->o.T;
    if (l->dw) RP_TRY(tr_add_param(tr, name, (float *)l->w, l->dw, l->in * l->out, 1));
    if (!lora) return RP_OK;
    int r = tr->o.lora_rank;
    l->r = r;
    l->scale = tr->o.lora_alpha / (float)r;
    l->dropout = tr->o.lora_dropout;
    l->A = tr_alloc(tr, r * l->in); l->dA = tr_alloc(tr, r * l->in);
    l->B = tr_alloc(tr, l->out * r); l->dB = tr_alloc(tr, l->out * r);
    l->xa = tr_alloc(tr, BT * r);
    if (l->dropout > 0) l->xd = tr_alloc(tr, BT * l->in);
    if (!l->A || !l->dA || !l->B || !l->dB || !l->xa || (l->dropout > 0 && !l->xd))
        return rp_fail(RP_ERR_NOMEM, "trainer: out of memory for the adapter of %s", name);
    float bound = 1.0f / sqrtf((float)l->in);
    for (int64_t i = 0; i < r * l->in; i++)
        l->A[i] = bound * (float)((double)(tr_hash(tr->o.seed, 1000003u + (uint64_t)l->id, 0, (uint64_t)i) >> 11) * 0x1.0p-53 * 2.0 - 1.0);
    char an[96];
    snprintf(an, sizeof an, "%s.lora_a", name);
    RP_TRY(tr_add_param(tr, an, l->A, l->dA, r * l->in, 0));
    snprintf(an, sizeof an, "%s.lora_b", name);
    return tr_add_param(tr, an, l->B, l->dB, l->out * r, 0);
}

/* Forward of the base and the adapter. */
rp_status tr_linear_forward(rp_trainer *tr, tr_linear *l, const float *x, float *y, int64_t M) {
    if (l->nf4) RP_TRY(rp_nf4_matmul(tr->bw, y, x, M, l->nf4));
    else RP_TRY(rp_cpu_matmul_forward(tr->bw, y, x, M, l->in, l->w, l->wt, l->ldw, l->out));
    if (!l->r) return RP_OK;
    const float *xin = x;
    if (l->dropout > 0) {
        float keep = tr->training ? 1.0f / (1.0f - l->dropout) : 1.0f;
        for (int64_t i = 0; i < M * l->in; i++) l->xd[i] = tr->training && dropped(tr, l, i) ? 0.0f : x[i] * keep;
        xin = l->xd;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, l->r, (int)l->in, l->scale, xin, (int)l->in, l->A, (int)l->in,
                0.0f, l->xa, l->r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)l->out, l->r, 1.0f, l->xa, l->r, l->B, l->r, 1.0f, y,
                (int)l->out);
    return RP_OK;
}

/* Backward of the base (dx, and dw when trainable) and the adapter (dA, dB, and its part of dx). */
rp_status tr_linear_backward(rp_trainer *tr, tr_linear *l, const float *dy, const float *x, float *dx, int64_t M) {
    if (l->nf4) RP_TRY(rp_nf4_matmul_backward(tr->bw, dx, dy, M, l->nf4));
    else RP_TRY(rp_bwd_cpu.matmul(tr->bw, dx, l->dw, NULL, dy, x, M, l->in, l->w, l->wt, l->ldw, l->out));
    if (!l->r) return RP_OK;
    /* y += xa·Bᵀ with xa = scale·xd·Aᵀ */
    memset(tr->dxa, 0, (size_t)(M * l->r) * sizeof(float));
    RP_TRY(rp_bwd_cpu.matmul(tr->bw, tr->dxa, l->dB, NULL, dy, l->xa, M, l->r, l->B, RP_F32, (size_t)l->r * sizeof(float), l->out));
    for (int64_t i = 0; i < M * l->r; i++) tr->dxa[i] *= l->scale;
    const float *xin = l->dropout > 0 ? l->xd : x;
    float *dxin = dx;
    if (l->dropout > 0) { dxin = tr->dxd; memset(dxin, 0, (size_t)(M * l->in) * sizeof(float)); }
    RP_TRY(rp_bwd_cpu.matmul(tr->bw, dxin, l->dA, NULL, tr->dxa, xin, M, l->in, l->A, RP_F32, (size_t)l->in * sizeof(float), l->r));
    if (l->dropout > 0) {   /* the mask is recomputed from its hash rather than stored */
        float keep = 1.0f / (1.0f - l->dropout);
        for (int64_t i = 0; i < M * l->in; i++) if (!dropped(tr, l, i)) dx[i] += dxin[i] * keep;
    }
    return RP_OK;
}
