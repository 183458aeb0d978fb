/* jamba_forward.c: the forward pass of a Jamba-family model over T new tokens with the hybrid cache
 * (attention layers append to their KV cache; Mamba layers carry their conv and SSM state), the MoE
 * routing with its load-balancing loss, scoring and generation. fp32 throughout; the scan in fp32.
 * Layer math (spec §1.3): h += Mixer(RMSNorm(h)); h += FFN(RMSNorm(h)); final RMSNorm; LM head.
 * Invariants: running T tokens at once or one at a time gives the same logits up to float rounding;
 * the cache position only advances when a forward succeeds (a failed forward may leave the cache
 * partly written: reset it). Every kernel runs through the model's backend op table. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "plugins/jamba/jamba_impl.h"
#include "tensor/moe_route.h"
#include "tensor/ops_ref.h"

#define OP(op, ...) RP_TRY(RP_BACKEND_CALL(m->be, op, __VA_ARGS__))

/* y[T, out] = x[T, in] · W[out, in]^T through the op table (f32 weights). */
static rp_status linear(rp_jamba_model *m, const float *x, int64_t T, int64_t in, const float *W, int64_t out, float *y) {
    return RP_BACKEND_CALL(m->be, matmul, y, x, T, in, W, RP_F32, (size_t)in * sizeof(float), out);
}
#define LINEAR(...) RP_TRY(linear(m, __VA_ARGS__))

static inline float softplus(float v) { return v > 20.0f ? v : log1pf(expf(v)); }

/* Seconds on the clock the layer timing asked for: monotonic wall clock, or this thread's CPU time. */
static double clock_of(const rp_jamba_layer_times *t) {
    struct timespec ts;
    clock_gettime(t->cpu_clock ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Time per layer kind (see jamba.h). */
void rp_jamba_model_time_layers(rp_jamba_model *m, rp_jamba_layer_times *t) { m->times = t; }

void rp_jamba_scratch_free(jamba_scratch *s) {
    float **f[] = { &s->h, &s->u, &s->mix, &s->q, &s->att, &s->scores, &s->kb, &s->vb, &s->xz, &s->x, &s->z, &s->xc, &s->dbc, &s->dtr,
                    &s->Bm, &s->Cm, &s->dt, &s->y, &s->A, &s->rl, &s->probs, &s->w, &s->xg, &s->g, &s->up, &s->yo };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) { free(*f[i]); *f[i] = NULL; }
    free(s->idx); free(s->tok); free(s->slot); free(s->pos); free(s->offsets);
    s->idx = s->tok = s->slot = s->pos = NULL; s->offsets = NULL;
    s->T = 0;
}

/* Make the scratch hold T tokens. */
static rp_status scratch_reserve(rp_jamba_cache *k, int T) {
    jamba_scratch *s = &k->s;
    if (s->T >= T) return RP_OK;
    rp_jamba_scratch_free(s);
    const rp_jamba_config *c = &k->m->cfg;
    const size_t d = (size_t)c->d_model, q = (size_t)c->n_head * (size_t)c->head_dim, Di = (size_t)rp_jamba_d_inner(c);
    const size_t N = (size_t)c->d_state, R = (size_t)c->dt_rank, E = (size_t)c->n_experts, F = (size_t)c->ffn_dim;
    const size_t Kx = c->moe_every > 0 ? (size_t)c->top_k : 1, n_moe = (size_t)(c->moe_every > 0 ? c->n_layer : 0), t = (size_t)T;
    const size_t kvd = (size_t)c->n_head_kv * (size_t)c->head_dim;
#define A(ptr, n) if (!((ptr) = malloc(((size_t)(n) + 1) * sizeof *(ptr)))) goto nomem
    A(s->h, t * d); A(s->u, t * d); A(s->mix, t * d); A(s->q, t * q); A(s->att, t * q); A(s->scores, (size_t)k->n_ctx); A(s->kb, t * kvd); A(s->vb, t * kvd);
    A(s->xz, t * 2 * Di); A(s->x, t * Di); A(s->z, t * Di); A(s->xc, t * Di); A(s->dbc, t * (R + 2 * N)); A(s->dtr, t * R);
    A(s->Bm, t * N); A(s->Cm, t * N); A(s->dt, t * Di); A(s->y, t * Di); A(s->A, Di * N);
    A(s->rl, t * E); A(s->probs, n_moe * t * E); A(s->w, t * Kx); A(s->xg, t * Kx * d); A(s->g, t * Kx * F);
    A(s->up, t * Kx * F); A(s->yo, t * Kx * d);
    A(s->idx, n_moe * t * Kx); A(s->tok, t * Kx); A(s->slot, t * Kx); A(s->pos, t); A(s->offsets, E + 1);
#undef A
    s->T = T;
    return RP_OK;
nomem:
    rp_jamba_scratch_free(s);
    return rp_fail(RP_ERR_NOMEM, "jamba forward: out of memory for scratch of %d tokens", T);
}

/* Writes the requested rows of attention probabilities (m->cap) of this layer: the cache's keys kc
 * [pos + Tn, kvd] and the new tokens' queries q [Tn, H·hd] (both after RoPE, as the op saw them). */
static void capture_maps(const rp_jamba_model *m, const float *kc, const float *q, int64_t pos, int64_t Tn) {
    const jamba_capture *cp = m->cap;
    const int H = m->cfg.n_head, KV = m->cfg.n_head_kv, hd = m->cfg.head_dim;
    const int64_t kvd = (int64_t)KV * hd;
    for (int i = 0; i < cp->nq; i++) {
        const int64_t t = cp->qpos[i] - pos;
        if (t < 0 || t >= Tn) continue;   /* not among these tokens */
        for (int h = 0; h < H; h++) {
            const int64_t nk = pos + t + 1;
            double sum = rp_ref_attention_weights(q + (t * H + h) * hd, kc + (int64_t)(h / (H / KV)) * hd, kvd, hd, nk,
                                                  1.0f / sqrtf((float)hd), cp->p);
            float *o = cp->out + ((int64_t)i * H + h) * cp->n;
            for (int64_t j = 0; j < cp->n; j++) o[j] = j < nk ? (float)(cp->p[j] / sum) : 0.0f;
        }
    }
}

/* Causal grouped-query attention of nseq sequences of Tn new tokens each (rows grouped by sequence; u
 * normalised input) into s->mix; sequence i appends to its own KV cache ks[i]. RoPE when configured
 * (rotate-half pairing, as HF Llama / Mistral). */
static rp_status attention(rp_jamba_model *m, rp_jamba_cache *const *ks, int nseq, int li, int64_t Tn) {
    const rp_jamba_config *c = &m->cfg;
    const jamba_layer *L = &m->layers[li];
    jamba_scratch *s = &ks[0]->s;
    const int H = c->n_head, KV = c->n_head_kv, hd = c->head_dim;
    const int64_t d = c->d_model, q = (int64_t)H * hd, kvd = (int64_t)KV * hd, T = (int64_t)nseq * Tn;
    LINEAR(s->u, T, d, L->wq, q, s->q);
    LINEAR(s->u, T, d, L->wk, kvd, s->kb);
    LINEAR(s->u, T, d, L->wv, kvd, s->vb);
    for (int i = 0; i < nseq; i++) {
        rp_jamba_cache *k = ks[i];
        const int64_t pos = k->pos, r0 = (int64_t)i * Tn;
        float *kc = k->k[li] + pos * kvd, *vc = k->v[li] + pos * kvd;
        memcpy(kc, s->kb + r0 * kvd, (size_t)(Tn * kvd) * sizeof(float));
        memcpy(vc, s->vb + r0 * kvd, (size_t)(Tn * kvd) * sizeof(float));
        if (c->rope) {
            for (int64_t t = 0; t < Tn; t++) s->pos[t] = (int32_t)(pos + t);
            OP(rope, s->q + r0 * q, Tn, H, hd, hd, s->pos, c->rope_theta, 1);
            OP(rope, kc, Tn, KV, hd, hd, s->pos, c->rope_theta, 1);
        }
        OP(attention, s->att + r0 * q, s->q + r0 * q, k->k[li], k->v[li], Tn, pos, H, KV, hd, kvd, 1.0f / sqrtf((float)hd));
        if (m->cap && m->cap->layer == li && nseq == 1) capture_maps(m, k->k[li], s->q + r0 * q, pos, Tn);
    }
    LINEAR(s->att, T, q, L->wo, d, s->mix);
    return RP_OK;
}

/* The Mamba mixer (spec §1.3 steps 1-8) of nseq sequences of Tn new tokens each into s->mix; sequence i
 * carries the conv and SSM state of its cache ks[i]. */
static rp_status mamba(rp_jamba_model *m, rp_jamba_cache *const *ks, int nseq, int li, int64_t Tn) {
    const rp_jamba_config *c = &m->cfg;
    const jamba_layer *L = &m->layers[li];
    jamba_scratch *s = &ks[0]->s;
    const int64_t d = c->d_model, Di = rp_jamba_d_inner(c), N = c->d_state, R = c->dt_rank, W = R + 2 * N, T = (int64_t)nseq * Tn;
    LINEAR(s->u, T, d, L->in_proj, 2 * Di, s->xz);                          /* 1. [x; z] = W_in h */
    for (int64_t t = 0; t < T; t++) {
        memcpy(s->x + t * Di, s->xz + t * 2 * Di, (size_t)Di * sizeof(float));
        memcpy(s->z + t * Di, s->xz + t * 2 * Di + Di, (size_t)Di * sizeof(float));
    }
    for (int i = 0; i < nseq; i++)                                           /* 2. conv + SiLU */
        OP(conv1d_causal, s->xc + i * Tn * Di, s->x + i * Tn * Di, Tn, Di, L->conv_w, L->conv_b, c->d_conv, ks[i]->conv[li]);
    OP(swiglu, s->xc, s->xc, NULL, T * Di);
    LINEAR(s->xc, T, Di, L->x_proj, W, s->dbc);                              /* 3. [dt~; B~; C~] = W_x x' */
    for (int64_t t = 0; t < T; t++) {
        memcpy(s->dtr + t * R, s->dbc + t * W, (size_t)R * sizeof(float));
        memcpy(s->Bm + t * N, s->dbc + t * W + R, (size_t)N * sizeof(float));
        memcpy(s->Cm + t * N, s->dbc + t * W + R + N, (size_t)N * sizeof(float));
    }
    if (c->inner_norms) {                                                    /* 4. Jamba's inner RMSNorms */
        OP(rmsnorm, s->dtr, s->dtr, L->dt_norm, T, R, c->norm_eps);
        OP(rmsnorm, s->Bm, s->Bm, L->b_norm, T, N, c->norm_eps);
        OP(rmsnorm, s->Cm, s->Cm, L->c_norm, T, N, c->norm_eps);
    }
    LINEAR(s->dtr, T, R, L->dt_w, Di, s->dt);                                /* 5. dt = softplus(W_dt dt^ + b) */
    for (int64_t t = 0; t < T; t++) for (int64_t i = 0; i < Di; i++) s->dt[t * Di + i] = softplus(s->dt[t * Di + i] + L->dt_b[i]);
    for (int64_t i = 0; i < Di * N; i++) s->A[i] = -expf(L->A_log[i]);      /* 6. A = -exp(A_log) */
    for (int i = 0; i < nseq; i++) {                                         /* 7-8. scan, D skip */
        const int64_t r0 = (int64_t)i * Tn;
        OP(selective_scan, s->y + r0 * Di, s->xc + r0 * Di, s->dt + r0 * Di, s->A, s->Bm + r0 * N, s->Cm + r0 * N, L->Dskip, Tn, Di,
           N, ks[i]->ssm[li], NULL);
    }
    OP(swiglu, s->y, s->z, s->y, T * Di);                                    /* gate: y · SiLU(z) */
    LINEAR(s->y, T, Di, L->out_proj, d, s->mix);                             /* out-proj */
    return RP_OK;
}

/* SwiGLU MLP of expert e on n rows of xg into s->yo. */
static rp_status swiglu(rp_jamba_model *m, const jamba_layer *L, int e, int64_t n, const float *xg, jamba_scratch *s) {
    const int64_t d = m->cfg.d_model, F = m->cfg.ffn_dim;
    LINEAR(xg, n, d, L->gate[e], F, s->g);
    LINEAR(xg, n, d, L->up[e], F, s->up);
    OP(swiglu, s->g, s->g, s->up, n * F);
    LINEAR(s->g, n, F, L->down[e], d, s->yo);
    return RP_OK;
}

/* Feed-forward of T tokens (u normalised input) into s->mix: dense MLP, or MoE routed per token; moe_i is
 * the index of this MoE layer among the model's, for where its router outputs go. */
static rp_status feed_forward(rp_jamba_model *m, rp_jamba_cache *k, int li, int64_t T, int moe_i) {
    const rp_jamba_config *c = &m->cfg;
    const jamba_layer *L = &m->layers[li];
    jamba_scratch *s = &k->s;
    const int64_t d = c->d_model, E = c->n_experts, K = c->top_k;
    if (!L->moe) {
        RP_TRY(swiglu(m, L, 0, T, s->u, s));
        memcpy(s->mix, s->yo, (size_t)(T * d) * sizeof(float));
        return RP_OK;
    }
    float *probs = s->probs + (int64_t)moe_i * T * E;
    int32_t *idx = s->idx + (int64_t)moe_i * T * K;
    LINEAR(s->u, T, d, L->router, E, s->rl);
    rp_moe_route(T, E, K, s->rl, probs, idx, s->w, c->moe_renorm);
    rp_moe_group(T, E, K, idx, s->offsets, s->tok, s->slot);
    for (int64_t r = 0; r < T * K; r++) s->xg[r] = s->w[s->slot[r]];        /* weights in grouped order */
    memcpy(s->w, s->xg, (size_t)(T * K) * sizeof(float));
    memset(s->mix, 0, (size_t)(T * d) * sizeof(float));
    for (int64_t e = 0; e < E; e++) {
        int64_t r0 = s->offsets[e], n = s->offsets[e + 1] - r0;
        if (!n) continue;
        OP(gather_rows, s->xg, s->u, T, d, s->tok + r0, n);
        RP_TRY(swiglu(m, L, (int)e, n, s->xg, s));
        OP(scatter_add_rows, s->mix, T, s->yo, d, s->tok + r0, s->w + r0, n);
    }
    return RP_OK;
}

/* The forward of nseq sequences of Tn tokens each (ids grouped by sequence), sequence i after the tokens
 * in ks[i]; scratch is ks[0]'s; logits [nseq·Tn, V] or, when last_only, [nseq, V] (each sequence's last). */
static rp_status forward_multi(rp_jamba_model *m, rp_jamba_cache *const *ks, int nseq, const int32_t *ids, int Tn, float *logits,
                               int last_only, double *aux) {
    const rp_jamba_config *c = &m->cfg;
    if (aux) *aux = 0;
    if (Tn < 1 || nseq < 1) return rp_fail(RP_ERR_INVAL, "jamba forward: need at least one token and one sequence (got %d, %d)", Tn, nseq);
    const int64_t T = (int64_t)nseq * Tn;
    if (T > INT32_MAX) return rp_fail(RP_ERR_RANGE, "jamba forward: %d sequences of %d tokens", nseq, Tn);
    for (int i = 0; i < nseq; i++) {
        const rp_jamba_cache *k = ks[i];
        if (k->m != m) return rp_fail(RP_ERR_INVAL, "jamba forward: the cache of sequence %d belongs to another model", i);
        for (int j = 0; j < i; j++)
            if (ks[j] == k) return rp_fail(RP_ERR_INVAL, "jamba forward: sequences %d and %d share one cache", j, i);
        if ((int64_t)k->pos + Tn > k->n_ctx)
            return rp_fail(RP_ERR_RANGE, "jamba forward: %d tokens after %d do not fit the cache of %d", Tn, k->pos, k->n_ctx);
    }
    for (int64_t t = 0; t < T; t++)
        if (ids[t] < 0 || ids[t] >= c->vocab)
            return rp_fail(RP_ERR_INVAL, "jamba forward: token id %d at position %lld outside the vocabulary [0, %d)", ids[t], (long long)t, c->vocab);
    rp_jamba_layer_times *tm = m->times;   /* per layer kind; "other" is the whole forward less the kinds */
    double t_start = tm ? clock_of(tm) : 0, t_kinds = 0, t0 = 0;
    RP_TRY(scratch_reserve(ks[0], (int)T));
    jamba_scratch *s = &ks[0]->s;
    const int64_t d = c->d_model;
    OP(embed, s->h, m->embed, RP_F32, (size_t)d * sizeof(float), c->vocab, d, ids, T);
    int moe_i = 0;
    for (int li = 0; li < c->n_layer; li++) {
        const jamba_layer *L = &m->layers[li];
        OP(rmsnorm, s->u, s->h, L->in_norm, T, d, c->norm_eps);
        if (tm) t0 = clock_of(tm);
        RP_TRY(L->attn ? attention(m, ks, nseq, li, Tn) : mamba(m, ks, nseq, li, Tn));
        if (tm) { double dt = clock_of(tm) - t0; *(L->attn ? &tm->attn : &tm->mamba) += dt; t_kinds += dt; }
        OP(add, s->h, s->h, s->mix, T * d);
        OP(rmsnorm, s->u, s->h, L->ff_norm, T, d, c->norm_eps);
        if (tm) t0 = clock_of(tm);
        RP_TRY(feed_forward(m, ks[0], li, T, moe_i));
        if (tm) { double dt = clock_of(tm) - t0; *(L->moe ? &tm->moe : &tm->mlp) += dt; t_kinds += dt; }
        moe_i += L->moe;
        OP(add, s->h, s->h, s->mix, T * d);
    }
    for (int i = 0; i < nseq; i++) ks[i]->pos += Tn;
    if (aux && moe_i) *aux = rp_moe_aux_loss((int64_t)moe_i * T, c->n_experts, c->top_k, s->probs, s->idx);
    if (logits) {
        if (last_only)   /* each sequence's last row, gathered to the front of h */
            for (int i = 0; i < nseq; i++) memmove(s->h + i * d, s->h + ((int64_t)i * Tn + Tn - 1) * d, (size_t)d * sizeof(float));
        int64_t n = last_only ? nseq : T;
        OP(rmsnorm, s->u, s->h, m->final_norm, n, d, c->norm_eps);
        LINEAR(s->u, n, d, m->lm_head, c->vocab, logits);
    }
    if (tm) tm->other += clock_of(tm) - t_start - t_kinds;
    return RP_OK;
}

rp_status rp_jamba_forward(rp_jamba_model *m, rp_jamba_cache *k, const int32_t *ids, int T, float *logits,
                           int last_only, double *aux) {
    return forward_multi(m, &k, 1, ids, T, logits, last_only, aux);
}

/* One decoding step of nseq sequences at once (see jamba.h). */
rp_status rp_jamba_decode_batch(rp_jamba_model *m, rp_jamba_cache *const *ks, int nseq, const int32_t *ids, float *logits) {
    return forward_multi(m, ks, nseq, ids, 1, logits, 1, NULL);
}

/* One layer's feed-forward alone (see jamba.h). */
rp_status rp_jamba_ffn_forward(rp_jamba_model *m, rp_jamba_cache *k, int layer, const float *u, int T, float *out) {
    if (layer < 0 || layer >= m->cfg.n_layer || T < 1)
        return rp_fail(RP_ERR_INVAL, "jamba ffn forward: layer %d of %d, %d tokens", layer, m->cfg.n_layer, T);
    if (k->m != m) return rp_fail(RP_ERR_INVAL, "jamba ffn forward: the cache belongs to another model");
    RP_TRY(scratch_reserve(k, T));
    const size_t n = (size_t)T * (size_t)m->cfg.d_model;
    memcpy(k->s.u, u, n * sizeof *u);
    RP_TRY(feed_forward(m, k, layer, T, 0));
    memcpy(out, k->s.mix, n * sizeof *out);
    return RP_OK;
}

rp_status rp_jamba_predict(rp_jamba_model *m, const int32_t *ids, int n, double *lp, int32_t *top, double *aux) {
    if (n < 1 || (lp && n < 2)) return rp_fail(RP_ERR_INVAL, "jamba predict: need at least %d tokens (got %d)", lp ? 2 : 1, n);
    const int64_t V = m->cfg.vocab;
    rp_jamba_cache *k = NULL;
    RP_TRY(rp_jamba_cache_new(m, n, &k));
    float *logits = malloc((size_t)((int64_t)n * V) * sizeof *logits);
    if (!logits) { rp_jamba_cache_free(k); return rp_fail(RP_ERR_NOMEM, "jamba predict: out of memory for %d x %lld logits", n, (long long)V); }
    rp_status st = rp_jamba_forward(m, k, ids, n, logits, 0, aux);
    for (int i = 0; st == RP_OK && i < n; i++) {
        const float *l = logits + (int64_t)i * V;
        int64_t best = 0;
        for (int64_t j = 1; j < V; j++) best = l[j] > l[best] ? j : best;
        if (top) top[i] = (int32_t)best;
        if (!lp || i == n - 1) continue;
        double sum = 0;
        for (int64_t j = 0; j < V; j++) sum += exp((double)l[j] - l[best]);
        lp[i] = (double)l[ids[i + 1]] - l[best] - log(sum);
    }
    free(logits);
    rp_jamba_cache_free(k);
    return st;
}

/* Attention probabilities of one attention layer for chosen query positions (see jamba.h). */
rp_status rp_jamba_attention_maps(rp_jamba_model *m, const int32_t *ids, int n, int layer, const int *qpos, int nq, float *out) {
    const rp_jamba_config *c = &m->cfg;
    if (n < 1 || nq < 1) return rp_fail(RP_ERR_INVAL, "jamba attention maps: %d tokens, %d query positions (need >= 1 each)", n, nq);
    if (layer < 0 || layer >= c->n_layer || !rp_jamba_layer_is_attn(c, layer)) {
        int first = -1;
        for (int i = 0; i < c->n_layer && first < 0; i++) if (rp_jamba_layer_is_attn(c, i)) first = i;
        return rp_fail(RP_ERR_INVAL, "jamba attention maps: layer %d is %s (the first attention layer is %d; %d layers)", layer,
                       layer < 0 || layer >= c->n_layer ? "out of range" : "a Mamba layer", first, c->n_layer);
    }
    for (int i = 0; i < nq; i++)
        if (qpos[i] < 0 || qpos[i] >= n) return rp_fail(RP_ERR_INVAL, "jamba attention maps: query position %d outside [0, %d)", qpos[i], n);
    double *p = malloc((size_t)n * sizeof *p);
    rp_jamba_cache *k = NULL;
    if (!p) return rp_fail(RP_ERR_NOMEM, "jamba attention maps: out of memory for %d tokens", n);
    rp_status st = rp_jamba_cache_new(m, n, &k);
    if (st == RP_OK) {
        jamba_capture cp = { layer, nq, n, qpos, out, p };
        m->cap = &cp;
        st = rp_jamba_forward(m, k, ids, n, NULL, 1, NULL);
        m->cap = NULL;
    }
    rp_jamba_cache_free(k);
    free(p);
    return st;
}

rp_status rp_jamba_score(rp_jamba_model *m, const int32_t *ids, int n, double *lp, double *aux) {
    if (n < 2) return rp_fail(RP_ERR_INVAL, "jamba score: need at least two tokens (got %d)", n);
    return rp_jamba_predict(m, ids, n, lp, NULL, aux);
}

static uint64_t mix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Greedy (temperature <= 0) or sampled next token from logits [V]. */
static int32_t pick(const float *l, int64_t V, float temperature, uint64_t *rng) {
    int64_t best = 0;
    for (int64_t j = 1; j < V; j++) if (l[j] > l[best]) best = j;
    if (temperature <= 0) return (int32_t)best;
    double sum = 0, r = ((mix64(rng) >> 11) * (1.0 / 9007199254740992.0));
    for (int64_t j = 0; j < V; j++) sum += exp((l[j] - l[best]) / temperature);
    double acc = 0;
    for (int64_t j = 0; j < V; j++) {
        acc += exp((l[j] - l[best]) / temperature) / sum;
        if (r < acc) return (int32_t)j;
    }
    return (int32_t)best;
}

rp_status rp_jamba_generate(rp_jamba_model *m, const int32_t *prompt, int n_prompt, int max_new, float temperature,
                            uint64_t seed, int32_t *out, int *n_out) {
    *n_out = 0;
    if (n_prompt < 1 || max_new < 0)
        return rp_fail(RP_ERR_INVAL, "jamba generate: need a prompt (got %d tokens) and max_tokens >= 0 (got %d)", n_prompt, max_new);
    rp_jamba_cache *k = NULL;
    RP_TRY(rp_jamba_cache_new(m, n_prompt + max_new, &k));
    float *logits = malloc((size_t)m->cfg.vocab * sizeof *logits);
    rp_status st = logits ? RP_OK : rp_fail(RP_ERR_NOMEM, "jamba generate: out of memory");
    if (st == RP_OK) st = rp_jamba_forward(m, k, prompt, n_prompt, logits, 1, NULL);
    uint64_t rng = seed;
    for (int i = 0; st == RP_OK && i < max_new; i++) {
        int32_t tok = pick(logits, m->cfg.vocab, temperature, &rng);
        out[(*n_out)++] = tok;
        if (i + 1 < max_new) st = rp_jamba_forward(m, k, &tok, 1, logits, 1, NULL);
    }
    free(logits);
    rp_jamba_cache_free(k);
    return st;
}
