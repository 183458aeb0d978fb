/* jamba_train.c: training a Jamba-family model from scratch: a training forward over one sequence that
 * keeps every activation the backward needs, the hand-written backward through the op table's backward
 * kernels (tensor/backward.h: matmul, rmsnorm, rope, attention, swiglu, softmax, cross-entropy, gather /
 * scatter rows, conv1d, selective scan), gradients accumulated over micro-batches, and an AdamW update
 * (nn/adamw.h, the engine's optimizer that repro.train uses).
 * Loss: mean cross-entropy over the T predicted tokens (or their mask-weighted mean) + aux_coef · the load-balancing loss, that loss
 * defined as rp_jamba_forward's (all MoE layers' router rows together; F_i counts are constants).
 * Invariants: the training forward computes exactly what rp_jamba_forward computes from an empty cache
 * (same ops, same order), so rp_jamba_score's loss is its independent check (tests/test_jamba.c: finite
 * differences of that loss against these gradients); gradients live in one buffer per parameter buffer of
 * the model (the model's own allocation list, so a tied LM head shares the embedding's), accumulate until
 * rp_jamba_trainer_update zeroes them; activations and gradient scratch are planned once for max_T, so a
 * step allocates nothing. MoE with renormalised top-K weights (Mixtral) is not differentiated here. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "nn/adamw.h"
#include "plugins/jamba/jamba_impl.h"
#include "tensor/backward.h"
#include "tensor/moe_route.h"

typedef struct tr_layer {   /* one layer's activations for one sequence of T tokens */
    float *h_in, *u1, *h_mid, *u2;                    /* [T, d] */
    float *q, *k, *v, *att;                           /* attention: [T, H·hd], [T, kv], [T, kv], [T, H·hd] */
    float *xz, *xpre, *xc, *dbc, *dtr, *Bm, *Cm, *dtp, *dt, *y, *yg;   /* Mamba (dtr, Bm, Cm after the inner norms) */
    float *ck;                                        /* Mamba: the scan's checkpoints for its backward (backend.h) */
    float *g, *up, *act;                              /* FFN: [rows, F], rows = T (dense) or T·K (MoE, grouped) */
    float *probs, *w, *xg, *yo;                       /* MoE: [T, E], [T·K] grouped weights, [T·K, d], [T·K, d] */
    int32_t *idx, *tok, *slot;                        /* MoE: [T·K] */
    int64_t *offsets;                                 /* MoE: [E + 1] */
} tr_layer;

struct rp_jamba_trainer {
    rp_jamba_model *m;
    const rp_bwd_ops *ops;
    rp_bwd *bw;
    int max_T;
    float aux_coef;
    float **grad, **mom, **vel;                       /* per model allocation */
    int *decay;
    int64_t step;
    tr_layer *L;
    float *h, *u, *logits, *rowloss, *dloss, *A;      /* final stream, normed, [T, V], [T], [T], [Di, N] */
    int32_t *ids, *pos;
    /* gradient scratch */
    float *dh, *du, *dmix, *dlog, *dq, *dk, *dv, *datt, *dxz, *dxpre, *dxc, *ddbc, *ddtr, *dB, *dC, *ddtp, *ddt, *dy, *dyg, *dA;
    float *dg, *dup, *dact, *dxg, *dyo, *dw, *dprobs, *drl;
    float *rl;                                        /* router logits [T, E] */
    float *raw, *graw;                                /* Mamba: dbc's raw dt, B, C columns gathered [T, W], their gradients */
};

#define OP(op, ...) RP_TRY(RP_BACKEND_CALL(t->m->be, op, __VA_ARGS__))
#define BW(op, ...) RP_TRY(t->ops->op(t->bw, __VA_ARGS__))

/* The gradient buffer of a parameter buffer (NULL when p is not one of the model's). */
static float *grad_of(const rp_jamba_trainer *t, const float *p) {
    for (int i = 0; i < t->m->n_allocs; i++) if (t->m->allocs[i].p == p) return t->grad[i];
    return NULL;
}

/* Gradient of a parameter buffer (for tests and diagnostics): NULL when p is not one of the model's. */
const float *rp_jamba_trainer_grad(const rp_jamba_trainer *t, const float *p) { return grad_of(t, p); }

static void mark_decay(rp_jamba_trainer *t, const float *p) {
    for (int i = 0; i < t->m->n_allocs; i++) if (p && t->m->allocs[i].p == p) t->decay[i] = 1;
}

/* y[T, out] = x[T, in] · W[out, in]^T through the op table (f32 weights). */
static rp_status linear(rp_jamba_trainer *t, const float *x, int64_t T, int64_t in, const float *W, int64_t out, float *y) {
    return RP_BACKEND_CALL(t->m->be, matmul, y, x, T, in, W, RP_F32, (size_t)in * sizeof(float), out);
}
/* Backward of linear: dx += dy·W (dx may be NULL), dW += dyᵀ·x, db += column sums (db may be NULL). */
static rp_status linear_bwd(rp_jamba_trainer *t, float *dx, const float *W, float *db, const float *dy, const float *x, int64_t T,
                            int64_t in, int64_t out) {
    return t->ops->matmul(t->bw, dx, grad_of(t, W), db, dy, x, T, in, W, RP_F32, (size_t)in * sizeof(float), out);
}
#define LIN(...) RP_TRY(linear(t, __VA_ARGS__))
#define LINB(...) RP_TRY(linear_bwd(t, __VA_ARGS__))

static inline float softplus(float v) { return v > 20.0f ? v : log1pf(expf(v)); }
static inline float sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }
static void zero(float *p, int64_t n) { memset(p, 0, (size_t)n * sizeof *p); }

/* Rows of [T, R + 2N] split into [T, R], [T, N], [T, N] (to = 0), or joined back (to = 1). */
static void cols3(float *rows, int64_t T, int64_t R, int64_t N, float *a, float *b, float *c, int to) {
    const int64_t W = R + 2 * N;
    for (int64_t r = 0; r < T; r++) {
        float *parts[3] = { a + r * R, b + r * N, c + r * N }, *row = rows + r * W;
        const int64_t off[3] = { 0, R, R + N }, len[3] = { R, N, N };
        for (int i = 0; i < 3; i++) {
            if (to) memcpy(row + off[i], parts[i], (size_t)len[i] * sizeof(float));
            else memcpy(parts[i], row + off[i], (size_t)len[i] * sizeof(float));
        }
    }
}

/* Free the trainer, its gradients, moments and activations (the model stays). */
void rp_jamba_trainer_free(rp_jamba_trainer *t) {
    if (!t) return;
    for (int i = 0; t->grad && i < t->m->n_allocs; i++) { free(t->grad[i]); free(t->mom[i]); free(t->vel[i]); }
    free(t->grad); free(t->mom); free(t->vel); free(t->decay);
    if (t->L) {
        for (int li = 0; li < t->m->cfg.n_layer; li++) {
            tr_layer *a = &t->L[li];
            float *f[] = { a->h_in, a->u1, a->h_mid, a->u2, a->q, a->k, a->v, a->att, a->xz, a->xpre, a->xc, a->dbc, a->dtr,
                           a->Bm, a->Cm, a->dtp, a->dt, a->y, a->yg, a->ck, a->g, a->up, a->act, a->probs, a->w, a->xg, a->yo };
            for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) free(f[i]);
            free(a->idx); free(a->tok); free(a->slot); free(a->offsets);
        }
        free(t->L);
    }
    float *f[] = { t->h, t->u, t->logits, t->rowloss, t->dloss, t->A, t->dh, t->du, t->dmix, t->dlog, t->dq, t->dk, t->dv,
                   t->datt, t->dxz, t->dxpre, t->dxc, t->ddbc, t->ddtr, t->dB, t->dC, t->ddtp, t->ddt, t->dy, t->dyg, t->dA,
                   t->dg, t->dup, t->dact, t->dxg, t->dyo, t->dw, t->dprobs, t->drl, t->rl, t->raw, t->graw };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) free(f[i]);
    free(t->ids); free(t->pos);
    rp_bwd_free(t->bw);
    free(t);
}

/* Plan everything one step needs for sequences of up to max_T predicted tokens. */
rp_status rp_jamba_trainer_new(rp_jamba_model *m, int max_T, float aux_coef, rp_jamba_trainer **out) {
    *out = NULL;
    const rp_jamba_config *c = &m->cfg;
    if (max_T < 1) return rp_fail(RP_ERR_INVAL, "jamba trainer: max_T %d must be >= 1", max_T);
    if (c->moe_every > 0 && c->moe_renorm)
        return rp_fail(RP_ERR_UNSUPPORTED, "jamba trainer '%s': moe_renorm = 1 (Mixtral's renormalised top-K) is not differentiated; use 0 (released Jamba)", c->name);
    if (!(aux_coef >= 0)) return rp_fail(RP_ERR_INVAL, "jamba trainer: aux_coef %g must be >= 0", (double)aux_coef);
    rp_jamba_trainer *t = calloc(1, sizeof *t);
    if (!t) return rp_fail(RP_ERR_NOMEM, "jamba trainer: out of memory");
    t->m = m; t->max_T = max_T; t->aux_coef = aux_coef;
    t->ops = strcmp(m->be->name, "ref") == 0 ? &rp_bwd_ref : &rp_bwd_cpu;
    rp_status st = rp_bwd_new(m->be->pool, &t->bw);
    if (st != RP_OK) { free(t); return st; }
    const int n = m->n_allocs;
    const size_t T = (size_t)max_T, d = (size_t)c->d_model, q = (size_t)c->n_head * (size_t)c->head_dim;
    const size_t kv = (size_t)c->n_head_kv * (size_t)c->head_dim, Di = (size_t)rp_jamba_d_inner(c), N = (size_t)c->d_state;
    const size_t R = (size_t)c->dt_rank, W = R + 2 * N, F = (size_t)c->ffn_dim, E = (size_t)c->n_experts, V = (size_t)c->vocab;
    const size_t K = c->moe_every > 0 ? (size_t)c->top_k : 1, TK = T * K;
#define A(ptr, cnt) if (!((ptr) = calloc((size_t)(cnt) + 1, sizeof *(ptr)))) goto nomem
    A(t->grad, n); A(t->mom, n); A(t->vel, n); A(t->decay, n);
    for (int i = 0; i < n; i++) { A(t->grad[i], m->allocs[i].n); A(t->mom[i], m->allocs[i].n); A(t->vel[i], m->allocs[i].n); }
    A(t->L, c->n_layer);
    for (int li = 0; li < c->n_layer; li++) {
        const jamba_layer *ml = &m->layers[li];
        tr_layer *a = &t->L[li];
        A(a->h_in, T * d); A(a->u1, T * d); A(a->h_mid, T * d); A(a->u2, T * d);
        if (ml->attn) { A(a->q, T * q); A(a->k, T * kv); A(a->v, T * kv); A(a->att, T * q); }
        else {
            A(a->xz, T * 2 * Di); A(a->xpre, T * Di); A(a->xc, T * Di); A(a->dbc, T * W); A(a->dtr, T * R); A(a->Bm, T * N);
            A(a->Cm, T * N); A(a->dtp, T * Di); A(a->dt, T * Di); A(a->y, T * Di); A(a->yg, T * Di);
            A(a->ck, rp_scan_ckpt_floats(T, Di, N));
        }
        size_t rows = ml->moe ? TK : T;
        A(a->g, rows * F); A(a->up, rows * F); A(a->act, rows * F);
        if (ml->moe) {
            A(a->probs, T * E); A(a->w, TK); A(a->xg, TK * d); A(a->yo, TK * d);
            A(a->idx, TK); A(a->tok, TK); A(a->slot, TK); A(a->offsets, E + 1);
        }
        mark_decay(t, ml->wq); mark_decay(t, ml->wk); mark_decay(t, ml->wv); mark_decay(t, ml->wo);
        mark_decay(t, ml->in_proj); mark_decay(t, ml->x_proj); mark_decay(t, ml->dt_w); mark_decay(t, ml->out_proj);
        mark_decay(t, ml->router);
        for (int e = 0; e < ml->ff_n; e++) { mark_decay(t, ml->gate[e]); mark_decay(t, ml->up[e]); mark_decay(t, ml->down[e]); }
    }
    mark_decay(t, m->embed); mark_decay(t, m->lm_head);
    size_t big = T * (2 * Di > q ? 2 * Di : q);
    A(t->h, T * d); A(t->u, T * d); A(t->logits, T * V); A(t->rowloss, T); A(t->dloss, T); A(t->A, Di * N);
    A(t->ids, T + 1); A(t->pos, T);
    A(t->dh, T * d); A(t->du, T * d); A(t->dmix, T * d); A(t->dlog, T * V); A(t->dq, T * q); A(t->dk, T * kv); A(t->dv, T * kv);
    A(t->datt, T * q); A(t->dxz, big); A(t->dxpre, T * Di); A(t->dxc, T * Di); A(t->ddbc, T * W); A(t->ddtr, T * R);
    A(t->dB, T * N); A(t->dC, T * N); A(t->ddtp, T * Di); A(t->ddt, T * Di); A(t->dy, T * Di); A(t->dyg, T * Di); A(t->dA, Di * N);
    A(t->dg, TK * F); A(t->dup, TK * F); A(t->dact, TK * F); A(t->dxg, TK * d); A(t->dyo, TK * d); A(t->dw, TK);
    A(t->dprobs, T * E); A(t->drl, T * E); A(t->rl, T * E); A(t->raw, T * W); A(t->graw, T * W);
#undef A
    *out = t;
    return RP_OK;
nomem:
    rp_jamba_trainer_free(t);
    return rp_fail(RP_ERR_NOMEM, "jamba trainer '%s': out of memory planning %d tokens", c->name, max_T);
}

/* ---- training forward ---- */

static rp_status fwd_attention(rp_jamba_trainer *t, int li, int64_t T, float *mix) {
    const rp_jamba_config *c = &t->m->cfg;
    const jamba_layer *L = &t->m->layers[li];
    tr_layer *a = &t->L[li];
    const int H = c->n_head, KV = c->n_head_kv, hd = c->head_dim;
    const int64_t d = c->d_model, kvd = (int64_t)KV * hd;
    LIN(a->u1, T, d, L->wq, (int64_t)H * hd, a->q);
    LIN(a->u1, T, d, L->wk, kvd, a->k);
    LIN(a->u1, T, d, L->wv, kvd, a->v);
    if (c->rope) {
        OP(rope, a->q, T, H, hd, hd, t->pos, c->rope_theta, 1);
        OP(rope, a->k, T, KV, hd, hd, t->pos, c->rope_theta, 1);
    }
    OP(attention, a->att, a->q, a->k, a->v, T, 0, H, KV, hd, kvd, 1.0f / sqrtf((float)hd));
    LIN(a->att, T, (int64_t)H * hd, L->wo, d, mix);
    return RP_OK;
}

static rp_status fwd_mamba(rp_jamba_trainer *t, int li, int64_t T, float *mix, double *max_inner) {
    const rp_jamba_config *c = &t->m->cfg;
    const jamba_layer *L = &t->m->layers[li];
    tr_layer *a = &t->L[li];
    const int64_t d = c->d_model, Di = rp_jamba_d_inner(c), N = c->d_state, R = c->dt_rank, W = R + 2 * N;
    LIN(a->u1, T, d, L->in_proj, 2 * Di, a->xz);
    for (int64_t r = 0; r < T; r++) memcpy(a->xc + r * Di, a->xz + r * 2 * Di, (size_t)Di * sizeof(float));   /* x part */
    OP(conv1d_causal, a->xpre, a->xc, T, Di, L->conv_w, L->conv_b, c->d_conv, NULL);
    OP(swiglu, a->xc, a->xpre, NULL, T * Di);
    LIN(a->xc, T, Di, L->x_proj, W, a->dbc);
    cols3(a->dbc, T, R, N, a->dtr, a->Bm, a->Cm, 0);
    for (int64_t i = 0; i < T * W; i++) if (fabs(a->dbc[i]) > *max_inner) *max_inner = fabs(a->dbc[i]);
    if (c->inner_norms) {
        OP(rmsnorm, a->dtr, a->dtr, L->dt_norm, T, R, c->norm_eps);
        OP(rmsnorm, a->Bm, a->Bm, L->b_norm, T, N, c->norm_eps);
        OP(rmsnorm, a->Cm, a->Cm, L->c_norm, T, N, c->norm_eps);
    }
    LIN(a->dtr, T, R, L->dt_w, Di, a->dtp);
    for (int64_t r = 0; r < T; r++)
        for (int64_t i = 0; i < Di; i++) {
            a->dtp[r * Di + i] += L->dt_b[i];
            a->dt[r * Di + i] = softplus(a->dtp[r * Di + i]);
        }
    for (int64_t i = 0; i < Di * N; i++) t->A[i] = -expf(L->A_log[i]);
    zero(t->dA, Di * N);   /* the scan's state: zeros for a fresh sequence (dA is free until the backward) */
    OP(selective_scan, a->y, a->xc, a->dt, t->A, a->Bm, a->Cm, L->Dskip, T, Di, N, t->dA, a->ck);
    for (int64_t r = 0; r < T; r++)   /* z part, then gate: yg = y · SiLU(z) */
        memcpy(a->yg + r * Di, a->xz + r * 2 * Di + Di, (size_t)Di * sizeof(float));
    OP(swiglu, a->yg, a->yg, a->y, T * Di);
    LIN(a->yg, T, Di, L->out_proj, d, mix);
    return RP_OK;
}

/* The SwiGLU MLP of expert e (0 for a dense layer) on n rows of x, its activations kept at row offset r0. */
static rp_status fwd_mlp(rp_jamba_trainer *t, const jamba_layer *L, tr_layer *a, int e, int64_t r0, int64_t n, const float *x, float *out) {
    const int64_t d = t->m->cfg.d_model, F = t->m->cfg.ffn_dim;
    float *g = a->g + r0 * F, *up = a->up + r0 * F, *act = a->act + r0 * F;
    LIN(x, n, d, L->gate[e], F, g);
    LIN(x, n, d, L->up[e], F, up);
    OP(swiglu, act, g, up, n * F);
    LIN(act, n, F, L->down[e], d, out);
    return RP_OK;
}

static rp_status fwd_ffn(rp_jamba_trainer *t, int li, int64_t T, float *out) {
    const rp_jamba_config *c = &t->m->cfg;
    const jamba_layer *L = &t->m->layers[li];
    tr_layer *a = &t->L[li];
    const int64_t d = c->d_model, E = c->n_experts, K = c->top_k;
    if (!L->moe) return fwd_mlp(t, L, a, 0, 0, T, a->u2, out);
    LIN(a->u2, T, d, L->router, E, t->rl);
    rp_moe_route(T, E, K, t->rl, a->probs, a->idx, t->dw, 0);
    rp_moe_group(T, E, K, a->idx, a->offsets, a->tok, a->slot);
    for (int64_t r = 0; r < T * K; r++) a->w[r] = t->dw[a->slot[r]];   /* weights in grouped order */
    zero(out, T * d);
    for (int64_t e = 0; e < E; e++) {
        int64_t r0 = a->offsets[e], n = a->offsets[e + 1] - r0;
        if (!n) continue;
        OP(gather_rows, a->xg + r0 * d, a->u2, T, d, a->tok + r0, n);
        RP_TRY(fwd_mlp(t, L, a, (int)e, r0, n, a->xg + r0 * d, a->yo + r0 * d));
        OP(scatter_add_rows, out, T, a->yo + r0 * d, d, a->tok + r0, a->w + r0, n);
    }
    return RP_OK;
}

/* ---- backward ---- */

/* Backward of fwd_mlp: dout [n, d] -> dx [n, d] (accumulated), weight gradients. */
static rp_status bwd_mlp(rp_jamba_trainer *t, const jamba_layer *L, tr_layer *a, int e, int64_t r0, int64_t n, const float *x,
                         const float *dout, float *dx) {
    const int64_t d = t->m->cfg.d_model, F = t->m->cfg.ffn_dim;
    const float *g = a->g + r0 * F, *up = a->up + r0 * F, *act = a->act + r0 * F;
    zero(t->dact, n * F); zero(t->dg, n * F); zero(t->dup, n * F);
    LINB(t->dact, L->down[e], NULL, dout, act, n, F, d);
    BW(swiglu, t->dg, t->dup, t->dact, g, up, n * F);
    LINB(dx, L->gate[e], NULL, t->dg, x, n, d, F);
    LINB(dx, L->up[e], NULL, t->dup, x, n, d, F);
    return RP_OK;
}

/* Backward of the feed-forward: dout [T, d] -> t->du (the gradient of u2, overwritten). The router's
 * probabilities also receive the load-balancing loss's gradient, daux [E] per row (NULL: none). */
static rp_status bwd_ffn(rp_jamba_trainer *t, int li, int64_t T, const float *dout, const float *daux) {
    const rp_jamba_config *c = &t->m->cfg;
    const jamba_layer *L = &t->m->layers[li];
    tr_layer *a = &t->L[li];
    const int64_t d = c->d_model, E = c->n_experts, K = c->top_k;
    zero(t->du, T * d);
    if (!L->moe) return bwd_mlp(t, L, a, 0, 0, T, a->u2, dout, t->du);
    zero(t->dw, T * K);
    for (int64_t e = 0; e < E; e++) {
        int64_t r0 = a->offsets[e], n = a->offsets[e + 1] - r0;
        if (!n) continue;
        zero(t->dyo, n * d); zero(t->dxg, n * d);
        BW(scatter_add_rows, t->dyo, t->dw + r0, dout, T, a->yo + r0 * d, d, a->tok + r0, a->w + r0, n);
        RP_TRY(bwd_mlp(t, L, a, (int)e, r0, n, a->xg + r0 * d, t->dyo, t->dxg));
        BW(gather_rows, t->du, T, d, a->tok + r0, n, t->dxg);
    }
    zero(t->dprobs, T * E);
    for (int64_t r = 0; r < T * K; r++) {   /* weight = the chosen probability (no renormalisation) */
        int64_t s = a->slot[r], tt = s / K;
        t->dprobs[tt * E + a->idx[s]] += t->dw[r];
    }
    if (daux) for (int64_t tt = 0; tt < T; tt++) for (int64_t e = 0; e < E; e++) t->dprobs[tt * E + e] += daux[e];
    zero(t->drl, T * E);
    BW(softmax, t->drl, t->dprobs, a->probs, T, E);
    LINB(t->du, L->router, NULL, t->drl, a->u2, T, d, E);
    return RP_OK;
}

/* Backward of the attention mixer: dmix [T, d] -> t->du (overwritten). */
static rp_status bwd_attention(rp_jamba_trainer *t, int li, int64_t T, const float *dmix) {
    const rp_jamba_config *c = &t->m->cfg;
    const jamba_layer *L = &t->m->layers[li];
    tr_layer *a = &t->L[li];
    const int H = c->n_head, KV = c->n_head_kv, hd = c->head_dim;
    const int64_t d = c->d_model, q = (int64_t)H * hd, kvd = (int64_t)KV * hd;
    zero(t->datt, T * q); zero(t->dq, T * q); zero(t->dk, T * kvd); zero(t->dv, T * kvd); zero(t->du, T * d);
    LINB(t->datt, L->wo, NULL, dmix, a->att, T, q, d);
    BW(attention, t->dq, t->dk, t->dv, t->datt, a->q, a->k, a->v, T, 0, H, KV, hd, kvd, 1.0f / sqrtf((float)hd));
    if (c->rope) {
        BW(rope, t->dq, T, H, hd, hd, t->pos, c->rope_theta, 1);
        BW(rope, t->dk, T, KV, hd, hd, t->pos, c->rope_theta, 1);
    }
    LINB(t->du, L->wq, NULL, t->dq, a->u1, T, d, q);
    LINB(t->du, L->wk, NULL, t->dk, a->u1, T, d, kvd);
    LINB(t->du, L->wv, NULL, t->dv, a->u1, T, d, kvd);
    return RP_OK;
}

/* Backward of the Mamba mixer: dmix [T, d] -> t->du (overwritten). */
static rp_status bwd_mamba(rp_jamba_trainer *t, int li, int64_t T, const float *dmix) {
    const rp_jamba_config *c = &t->m->cfg;
    const jamba_layer *L = &t->m->layers[li];
    tr_layer *a = &t->L[li];
    const int64_t d = c->d_model, Di = rp_jamba_d_inner(c), N = c->d_state, R = c->dt_rank, W = R + 2 * N;
    zero(t->dyg, T * Di); zero(t->dy, T * Di); zero(t->dxz, T * 2 * Di); zero(t->dxc, T * Di); zero(t->ddt, T * Di);
    zero(t->dA, Di * N); zero(t->dB, T * N); zero(t->dC, T * N); zero(t->ddtr, T * R); zero(t->ddbc, T * W);
    zero(t->dxpre, T * Di); zero(t->du, T * d);
    LINB(t->dyg, L->out_proj, NULL, dmix, a->yg, T, Di, d);
    /* yg = y · SiLU(z), z the second half of xz's rows: gathered into ddtp, its gradient into dxpre (both free) */
    for (int64_t r = 0; r < T; r++) memcpy(t->ddtp + r * Di, a->xz + r * 2 * Di + Di, (size_t)Di * sizeof(float));
    BW(swiglu, t->dxpre, t->dy, t->dyg, t->ddtp, a->y, T * Di);
    for (int64_t r = 0; r < T; r++) memcpy(t->dxz + r * 2 * Di + Di, t->dxpre + r * Di, (size_t)Di * sizeof(float));
    zero(t->dxpre, T * Di);
    for (int64_t i = 0; i < Di * N; i++) t->A[i] = -expf(L->A_log[i]);
    BW(selective_scan, t->dxc, t->ddt, t->dA, t->dB, t->dC, grad_of(t, L->Dskip), t->dy, a->xc, a->dt, t->A, a->Bm, a->Cm,
       L->Dskip, T, Di, N, a->ck);
    float *gA = grad_of(t, L->A_log);
    for (int64_t i = 0; i < Di * N; i++) gA[i] += t->dA[i] * t->A[i];   /* A = -exp(A_log): dA/dA_log = A */
    for (int64_t i = 0; i < T * Di; i++) t->ddtp[i] = t->ddt[i] * sigmoid(a->dtp[i]);   /* softplus' = sigmoid */
    LINB(t->ddtr, L->dt_w, grad_of(t, L->dt_b), t->ddtp, a->dtr, T, R, Di);
    /* the inner norms (their inputs are the raw columns of dbc), or straight into ddbc */
    float *rawd = t->raw, *rawB = rawd + T * R, *rawC = rawB + T * N;
    cols3(a->dbc, T, R, N, rawd, rawB, rawC, 0);
    float *gd = t->graw, *gB = gd + T * R, *gC = gB + T * N;   /* gradients of the raw columns */
    zero(gd, T * W);
    if (c->inner_norms) {
        BW(rmsnorm, gd, grad_of(t, L->dt_norm), t->ddtr, rawd, L->dt_norm, T, R, c->norm_eps);
        BW(rmsnorm, gB, grad_of(t, L->b_norm), t->dB, rawB, L->b_norm, T, N, c->norm_eps);
        BW(rmsnorm, gC, grad_of(t, L->c_norm), t->dC, rawC, L->c_norm, T, N, c->norm_eps);
    } else {
        memcpy(gd, t->ddtr, (size_t)(T * R) * sizeof(float));
        memcpy(gB, t->dB, (size_t)(T * N) * sizeof(float));
        memcpy(gC, t->dC, (size_t)(T * N) * sizeof(float));
    }
    cols3(t->ddbc, T, R, N, gd, gB, gC, 1);
    LINB(t->dxc, L->x_proj, NULL, t->ddbc, a->xc, T, Di, W);
    BW(swiglu, t->dxpre, NULL, t->dxc, a->xpre, NULL, T * Di);
    /* the conv's input is the x half of xz: its gradient lands in a [T, Di] buffer, then into dxz's first half */
    float *xin = t->dyg, *gx = t->dy;   /* both free now */
    for (int64_t r = 0; r < T; r++) memcpy(xin + r * Di, a->xz + r * 2 * Di, (size_t)Di * sizeof(float));
    zero(gx, T * Di);
    BW(conv1d_causal, gx, grad_of(t, L->conv_w), L->conv_b ? grad_of(t, L->conv_b) : NULL, t->dxpre, xin, T, Di, L->conv_w, c->d_conv);
    for (int64_t r = 0; r < T; r++) memcpy(t->dxz + r * 2 * Di, gx + r * Di, (size_t)Di * sizeof(float));
    LINB(t->du, L->in_proj, NULL, t->dxz, a->u1, T, d, 2 * Di);
    return RP_OK;
}

/* One sequence forward (activations kept) and backward (gradients added), the loss weighted by mask. */
rp_status rp_jamba_trainer_forward_backward_masked(rp_jamba_trainer *t, const int32_t *ids, int Ti, const float *mask,
                                                   rp_jamba_train_stats *out) {
    rp_jamba_model *m = t->m;
    const rp_jamba_config *c = &m->cfg;
    memset(out, 0, sizeof *out);
    if (Ti < 1 || Ti > t->max_T)
        return rp_fail(RP_ERR_INVAL, "jamba train step: %d predicted tokens outside [1, %d] (the planned length)", Ti, t->max_T);
    for (int i = 0; i <= Ti; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab)
            return rp_fail(RP_ERR_INVAL, "jamba train step: token id %d at position %d outside the vocabulary [0, %d)", ids[i], i, c->vocab);
    double wsum = 0;
    for (int i = 0; i < Ti; i++) {
        if (mask && !(mask[i] >= 0 && isfinite(mask[i])))
            return rp_fail(RP_ERR_INVAL, "jamba train step: loss mask %g at position %d (must be finite and >= 0)", mask[i], i);
        wsum += mask ? mask[i] : 1.0;
    }
    if (!(wsum > 0)) return rp_fail(RP_ERR_INVAL, "jamba train step: the loss mask weights no position (%d zeros)", Ti);
    const int64_t T = Ti, d = c->d_model, V = c->vocab, E = c->n_experts, K = c->top_k;
    for (int64_t i = 0; i < T; i++) t->pos[i] = (int32_t)i;
    /* forward */
    OP(embed, t->h, m->embed, RP_F32, (size_t)d * sizeof(float), V, d, ids, T);
    double max_inner = 0;
    int n_moe = 0;
    for (int li = 0; li < c->n_layer; li++) {
        const jamba_layer *L = &m->layers[li];
        tr_layer *a = &t->L[li];
        memcpy(a->h_in, t->h, (size_t)(T * d) * sizeof(float));
        OP(rmsnorm, a->u1, t->h, L->in_norm, T, d, c->norm_eps);
        RP_TRY(L->attn ? fwd_attention(t, li, T, t->dmix) : fwd_mamba(t, li, T, t->dmix, &max_inner));
        OP(add, t->h, t->h, t->dmix, T * d);
        memcpy(a->h_mid, t->h, (size_t)(T * d) * sizeof(float));
        OP(rmsnorm, a->u2, t->h, L->ff_norm, T, d, c->norm_eps);
        RP_TRY(fwd_ffn(t, li, T, t->dmix));
        OP(add, t->h, t->h, t->dmix, T * d);
        n_moe += L->moe;
    }
    double max_resid = 0;
    for (int64_t i = 0; i < T * d; i++) if (fabs(t->h[i]) > max_resid) max_resid = fabs(t->h[i]);
    OP(rmsnorm, t->u, t->h, m->final_norm, T, d, c->norm_eps);
    LIN(t->u, T, d, m->lm_head, V, t->logits);
    OP(cross_entropy, t->rowloss, t->logits, ids + 1, T, V);
    double loss = 0;
    for (int64_t i = 0; i < T; i++) loss += (mask ? mask[i] : 1.0) * t->rowloss[i];
    loss /= wsum;
    /* the load-balancing loss over all MoE layers' rows (rp_jamba_forward's definition) and its gradient:
     * aux = E·Σ_i F_i·P_i over n_moe·T rows; d aux / d probs[row, i] = E·F_i / (n_moe·T), F_i constant */
    double aux = 0;
    float daux[256];
    if (n_moe) {
        if (E > 256) return rp_fail(RP_ERR_UNSUPPORTED, "jamba train step: %lld experts (at most 256)", (long long)E);
        double F[256] = { 0 }, P[256] = { 0 };
        const double rows = (double)n_moe * (double)T;
        for (int li = 0; li < c->n_layer; li++) {
            if (!m->layers[li].moe) continue;
            const tr_layer *a = &t->L[li];
            for (int64_t i = 0; i < T * K; i++) F[a->idx[i]] += 1.0 / rows;
            for (int64_t i = 0; i < T * E; i++) P[i % E] += a->probs[i] / rows;
        }
        for (int64_t e = 0; e < E; e++) { aux += (double)E * F[e] * P[e]; daux[e] = (float)(t->aux_coef * E * F[e] / rows); }
    }
    out->loss = loss; out->aux = aux; out->max_inner = max_inner; out->max_resid = max_resid;
    /* backward */
    for (int64_t i = 0; i < T; i++) t->dloss[i] = (float)((mask ? mask[i] : 1.0) / wsum);
    zero(t->dlog, T * V); zero(t->du, T * d); zero(t->dh, T * d);
    BW(cross_entropy, t->dlog, t->logits, ids + 1, t->dloss, NULL, T, V);
    LINB(t->du, m->lm_head, NULL, t->dlog, t->u, T, d, V);
    BW(rmsnorm, t->dh, grad_of(t, m->final_norm), t->du, t->h, m->final_norm, T, d, c->norm_eps);
    for (int li = c->n_layer - 1; li >= 0; li--) {
        const jamba_layer *L = &m->layers[li];
        tr_layer *a = &t->L[li];
        /* h_out = h_mid + FFN(RMSNorm(h_mid)): dh stays (residual) and gains the FFN branch */
        RP_TRY(bwd_ffn(t, li, T, t->dh, L->moe && t->aux_coef > 0 ? daux : NULL));
        BW(rmsnorm, t->dh, grad_of(t, L->ff_norm), t->du, a->h_mid, L->ff_norm, T, d, c->norm_eps);
        RP_TRY(L->attn ? bwd_attention(t, li, T, t->dh) : bwd_mamba(t, li, T, t->dh));
        BW(rmsnorm, t->dh, grad_of(t, L->in_norm), t->du, a->h_in, L->in_norm, T, d, c->norm_eps);
    }
    BW(embed, grad_of(t, m->embed), V, d, ids, T, t->dh);
    return RP_OK;
}

/* One sequence forward and backward, every predicted token weighted alike. */
rp_status rp_jamba_trainer_forward_backward(rp_jamba_trainer *t, const int32_t *ids, int Ti, rp_jamba_train_stats *out) {
    return rp_jamba_trainer_forward_backward_masked(t, ids, Ti, NULL, out);
}

/* Clip, AdamW step over every parameter buffer, zero the gradients. */
rp_status rp_jamba_trainer_update(rp_jamba_trainer *t, const rp_adamw *opt, float lr, float grad_scale, float clip, double *gnorm) {
    RP_TRY(rp_adamw_check(opt));
    double ss = 0;
    for (int i = 0; i < t->m->n_allocs; i++) ss += rp_grad_sumsq(t->grad[i], t->m->allocs[i].n);
    double norm = sqrt(ss) * grad_scale;
    if (gnorm) *gnorm = norm;
    if (!isfinite(norm)) return rp_fail(RP_ERR_RANGE, "jamba train update: gradient norm is %g (the loss diverged)", norm);
    float scale = grad_scale * rp_grad_clip_scale(norm, clip);
    t->step++;
    for (int i = 0; i < t->m->n_allocs; i++) {
        jamba_alloc *p = &t->m->allocs[i];
        RP_TRY(rp_adamw_update(opt, t->m->be->pool, p->p, t->grad[i], t->mom[i], t->vel[i], p->n, t->step, lr, scale, t->decay[i]));
        zero(t->grad[i], p->n);
    }
    return RP_OK;
}
