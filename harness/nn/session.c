/* session.c: a model run with a KV cache: the forward pass over a batch of tokens, logits of the last or
 * of every position, hidden states, and teacher-forced scoring that reuses cached prefixes.
 * Invariants: every tensor the forward pass writes (KV cache, activations, logits, scoring scratch) is a
 * view on one buffer of the model's backend, planned in rp_session_new for n_ctx / n_batch / n_logits
 * and never allocated in forward calls; host memory is touched only through copies in (tokens,
 * positions, targets) and out (logits, hidden states, losses); cached[0 .. n_past) are the tokens whose
 * keys and values sit in kc / vc.
 * The forward pass is split at one seam: forward_piece() runs the layers over rows whose positions are
 * in s->pos (embed -> layers -> final residual in s->x); a packed multi-sequence forward (block-diagonal
 * causal mask) would replace the attention call there and keep everything else. rp_session_step uses the
 * same seam for a batch of sequences with caches of their own: one row each, keys and values staged in
 * att / xb2 and copied into each sequence's cache, attention per row (rows split over the pool by
 * sequence). A forward of at most RP_MATMUL_PACKED_ROWS rows first has the model build its decode-layout
 * weights (once, lazily). */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "nn/llama_impl.h"
#include "nn/pack.h"

#define CALL(op, ...) RP_TRY(RP_BACKEND_CALL(be, op, __VA_ARGS__))
#define F(t) ((float *)rp_tensor_data(&(t)))
#define I(t) ((int32_t *)rp_tensor_data(&(t)))

/* Views of the session's buffer, laid out one after another (64-byte aligned). */
typedef struct plan { size_t off; rp_status st; rp_storage *buf; } plan;

static void carve(plan *p, rp_tensor *t, rp_dtype dt, int ndim, int64_t d0, int64_t d1, int64_t d2) {
    int64_t shape[3] = { d0, d1, d2 };
    size_t n = rp_dtype_block_bytes(dt);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] && n > SIZE_MAX / 2 / (size_t)shape[i]) { p->st = rp_fail(RP_ERR_RANGE, "session: buffer size overflows"); return; }
        n *= (size_t)shape[i];
    }
    if (p->buf && p->st == RP_OK) p->st = rp_tensor_init_view(t, p->buf, p->off, dt, ndim, shape);
    p->off += (n + 63) & ~(size_t)63;
}

static void layout(plan *p, rp_session *s) {
    const rp_llama_config *c = &s->m->cfg;
    int64_t kvd = (int64_t)c->n_head_kv * c->head_dim, B = s->n_batch, NL = s->n_logits;
    carve(p, &s->kc, RP_F32, 3, c->n_layer, s->n_ctx, kvd);
    carve(p, &s->vc, RP_F32, 3, c->n_layer, s->n_ctx, kvd);
    rp_tensor *bc[5] = { &s->x, &s->xb, &s->xb2, &s->q, &s->att };
    for (int i = 0; i < 5; i++) carve(p, bc[i], RP_F32, 2, B, c->dim, 0);
    carve(p, &s->hb, RP_F32, 2, B, c->ffn_dim, 0);
    carve(p, &s->hb2, RP_F32, 2, B, c->ffn_dim, 0);
    carve(p, &s->logits, RP_F32, 2, NL, c->vocab, 0);
    carve(p, &s->loss, RP_F32, 1, NL, 0, 0);
    carve(p, &s->ids, RP_I32, 1, B, 0, 0);
    carve(p, &s->pos, RP_I32, 1, B, 0, 0);
    carve(p, &s->tgt, RP_I32, 1, NL, 0, 0);
    carve(p, &s->best, RP_I32, 1, NL, 0, 0);
}

/* Plan every buffer for n_ctx positions and batches of n_batch tokens. */
rp_status rp_session_new(rp_model *m, int n_ctx, int n_batch, int n_logits, rp_session **out) {
    const rp_llama_config *c = &m->cfg;
    if (n_ctx <= 0) n_ctx = c->context_len < 2048 ? c->context_len : 2048;
    if (n_batch <= 0) n_batch = 512;
    if (n_logits <= 0) n_logits = 64;
    if (n_batch > n_ctx) n_batch = n_ctx;
    if (n_logits > n_batch) n_logits = n_batch;
    if (n_ctx > (1 << 24)) return rp_fail(RP_ERR_INVAL, "session: n_ctx %d too large", n_ctx);
    rp_session *s = calloc(1, sizeof *s);
    if (!s) return rp_fail(RP_ERR_NOMEM, "session: out of memory");
    s->m = m;
    s->n_ctx = n_ctx;
    s->n_batch = n_batch;
    s->n_logits = n_logits;
    plan p = { 0, RP_OK, NULL };
    layout(&p, s);                 /* sizes only */
    rp_status st = p.st;
    if (st == RP_OK && rp_storage_new(m->be, p.off, &s->buf) != RP_OK)
        st = rp_fail(RP_ERR_NOMEM, "session: backend %s cannot allocate a %d-position cache (%zu MB)", m->be->name, n_ctx, p.off >> 20);
    if (st == RP_OK) {
        plan q = { 0, RP_OK, s->buf };
        layout(&q, s);             /* the views */
        st = q.st;
    }
    s->cached = calloc((size_t)n_ctx, sizeof *s->cached);
    s->host_loss = calloc((size_t)n_logits, sizeof *s->host_loss);
    s->host_best = calloc((size_t)n_logits, sizeof *s->host_best);
    s->host_logits = calloc((size_t)c->vocab, sizeof *s->host_logits);
    s->host_pos = calloc((size_t)n_batch, sizeof *s->host_pos);
    if (st == RP_OK && (!s->cached || !s->host_loss || !s->host_best || !s->host_logits || !s->host_pos)) st = rp_fail(RP_ERR_NOMEM, "session: out of memory");
    if (st != RP_OK) { rp_session_free(s); return st; }
    *out = s;
    return RP_OK;
}

/* Free every buffer. */
void rp_session_free(rp_session *s) {
    if (!s) return;
    rp_storage_release(s->buf);
    free(s->cached); free(s->host_loss); free(s->host_best); free(s->host_logits); free(s->host_pos);
    free(s);
}

/* Empty the cache. */
void rp_session_reset(rp_session *s) { s->n_past = 0; }

/* Keep a prefix of the cache. */
rp_status rp_session_truncate(rp_session *s, int64_t n) {
    if (n < 0 || n > s->n_past) return rp_fail(RP_ERR_RANGE, "session: truncate to %lld of %lld cached positions", (long long)n, (long long)s->n_past);
    s->n_past = n;
    return RP_OK;
}

/* Cached positions. */
int64_t rp_session_n_past(const rp_session *s) { return s->n_past; }
/* Cached tokens. */
const int32_t *rp_session_tokens(const rp_session *s) { return s->cached; }
/* Capacity. */
int rp_session_n_ctx(const rp_session *s) { return s->n_ctx; }
/* The model. */
rp_model *rp_session_model(const rp_session *s) { return s->m; }

static rp_matmul_part part(float *y, const rp_tensor *w, const void *wp, int64_t N) {
    rp_matmul_part p = { y, rp_tensor_data(w), w->dtype, (size_t)w->stride[0], N, wp };
    return p;
}

/* y[T,N] = x[T,K] · wᵀ, with w's decode-layout copy wp (may be NULL) offered to the backend. */
static rp_status mm(rp_backend *be, float *y, const float *x, int64_t T, int64_t K, const rp_tensor *w, const void *wp, int64_t N) {
    if (!wp) return RP_BACKEND_CALL(be, matmul, y, x, T, K, rp_tensor_data(w), w->dtype, (size_t)w->stride[0], N);
    rp_matmul_part p = part(y, w, wp, N);
    return RP_BACKEND_CALL(be, matmul_multi, x, T, K, &p, 1);
}

/* One layer's attention of a multi-sequence step, split over the pool by sequence (step_attention). */
typedef struct step_att {
    rp_session *s;
    int l;
    int64_t T;
    const float *q;
    float scale;
    _Atomic int failed;   /* 1 + the first row whose attention call failed, or 0 */
} step_att;

/* Rows ith, ith + nth, ...: the row attends over its sequence's cache alone (the backend's attention with one
 * query; its own split runs inline inside a task). */
static void step_att_task(void *ctx, int ith, int nth, int thread) {
    step_att *j = ctx;
    rp_session *s = j->s;
    rp_backend *be = s->m->be;
    const rp_llama_config *c = &s->m->cfg;
    const int64_t C = c->dim, D = c->head_dim, kvd = (int64_t)c->n_head_kv * D;
    for (int64_t t = ith; t < j->T; t += nth) {
        rp_session *r = s->seqs[t];
        size_t base = (size_t)j->l * r->n_ctx * (size_t)kvd;
        if (RP_BACKEND_CALL(be, attention, F(s->att) + t * C, j->q + t * C, F(r->kc) + base, F(r->vc) + base, 1, r->n_past,
                            c->n_head, c->n_head_kv, (int)D, kvd, j->scale) != RP_OK) {
            int none = 0;
            atomic_compare_exchange_strong(&j->failed, &none, (int)t + 1);
        }
    }
}

/* A multi-sequence step (s->seqs set): row t's key and value (staged in kst / vst, [T, kvd]) go into the
 * cache of seqs[t] at its position, then row t attends over that sequence's cache alone. The rows are split
 * over the backend's pool (each sequence's work is the same whichever thread runs it), so the attention of
 * a step of many short sequences is not serial. Host memory only (rp_session_step checks it). */
static rp_status step_attention(rp_session *s, int l, int64_t T, const float *q, const float *kst, const float *vst, float scale) {
    rp_backend *be = s->m->be;
    const rp_llama_config *c = &s->m->cfg;
    const int64_t D = c->head_dim, kvd = (int64_t)c->n_head_kv * D;
    for (int64_t t = 0; t < T; t++) {   /* all rows first: the attention output rows overwrite the staged keys */
        rp_session *r = s->seqs[t];
        size_t at = ((size_t)l * r->n_ctx + (size_t)r->n_past) * (size_t)kvd;
        memcpy(F(r->kc) + at, kst + t * kvd, (size_t)kvd * sizeof(float));
        memcpy(F(r->vc) + at, vst + t * kvd, (size_t)kvd * sizeof(float));
    }
    step_att j = { .s = s, .l = l, .T = T, .q = q, .scale = scale };
    atomic_init(&j.failed, 0);
    rp_pool_run(T > 1 ? be->pool : NULL, step_att_task, &j, (int)T);
    int bad = atomic_load(&j.failed);
    if (bad) {   /* the call again on this thread, for its message (a bad size fails the same way twice) */
        rp_session *r = s->seqs[bad - 1];
        size_t base = (size_t)l * r->n_ctx * (size_t)kvd;
        CALL(attention, F(s->att) + (bad - 1) * c->dim, q + (bad - 1) * c->dim, F(r->kc) + base, F(r->vc) + base, 1, r->n_past,
             c->n_head, c->n_head_kv, (int)D, kvd, scale);
        return rp_fail(RP_ERR_INVAL, "step: attention of sequence %d failed", bad - 1);
    }
    return RP_OK;
}

/* The layers over the T rows now in s->x at positions s->pos (the seam for other masks); hidden (host)
 * receives each layer's input. */
static rp_status layers(rp_session *s, int64_t T, float *hidden) {
    rp_model *m = s->m;
    rp_backend *be = m->be;
    const rp_llama_config *c = &m->cfg;
    const int64_t C = c->dim, F = c->ffn_dim, D = c->head_dim, kvd = (int64_t)c->n_head_kv * D;
    const int64_t n_past = s->n_past;
    const float scale = 1.0f / sqrtf((float)D);
    float *x = F(s->x), *xb = F(s->xb), *xb2 = F(s->xb2), *q = F(s->q), *att = F(s->att), *hb = F(s->hb), *hb2 = F(s->hb2);
    const int32_t *pos = I(s->pos);
    if (T <= RP_MATMUL_PACKED_ROWS) RP_TRY(rp_model_decode_layout(m));   /* few rows: the decode-layout kernels */
    for (int l = 0; l < c->n_layer; l++) {
        if (hidden) RP_TRY(rp_tensor_copy_out(&s->x, 0, hidden + (size_t)l * T * C, (size_t)(T * C) * sizeof(float)));
        if (m->skip[l]) continue;
        const rp_layer *L = &m->layers[l];
        float *kl = F(s->kc) + ((size_t)l * s->n_ctx) * kvd, *vl = F(s->vc) + ((size_t)l * s->n_ctx) * kvd;
        CALL(rmsnorm, xb, x, F(L->attn_norm), T, C, c->norm_eps);
        float *kn = s->seqs ? att : kl + n_past * kvd, *vn = s->seqs ? xb2 : vl + n_past * kvd;   /* this piece's keys, values */
        rp_matmul_part qkv[3] = { part(q, &L->wq, L->pq, C), part(kn, &L->wk, L->pk, kvd), part(vn, &L->wv, L->pv, kvd) };
        CALL(matmul_multi, xb, T, C, qkv, 3);
        CALL(rope, q, T, c->n_head, (int)D, c->rope_dim, pos, c->rope_base, c->rope_neox);
        CALL(rope, kn, T, c->n_head_kv, (int)D, c->rope_dim, pos, c->rope_base, c->rope_neox);
        if (s->seqs) RP_TRY(step_attention(s, l, T, q, kn, vn, scale));   /* one row per sequence */
        else if (s->pack) RP_TRY(rp_pack_attention(s, kl, vl, scale));   /* packed: segment by segment */
        else CALL(attention, att, q, kl, vl, T, n_past, c->n_head, c->n_head_kv, (int)D, kvd, scale);
        RP_TRY(mm(be, xb2, att, T, C, &L->wo, L->po, C));
        CALL(add, x, x, xb2, T * C);
        CALL(rmsnorm, xb, x, F(L->ffn_norm), T, C, c->norm_eps);
        rp_matmul_part gate_up[2] = { part(hb, &L->w_gate, L->p_gate, F), part(hb2, &L->w_up, L->p_up, F) };
        CALL(matmul_multi, xb, T, C, gate_up, 2);
        CALL(swiglu, hb, hb, hb2, T * F);
        RP_TRY(mm(be, xb2, hb, T, F, &L->w_down, L->p_down, C));
        CALL(add, x, x, xb2, T * C);
    }
    if (hidden) RP_TRY(rp_tensor_copy_out(&s->x, 0, hidden + (size_t)c->n_layer * T * C, (size_t)(T * C) * sizeof(float)));
    return RP_OK;
}

/* One piece of at most n_batch tokens: tokens and positions in, embed, layers, logits. */
static rp_status forward_piece(rp_session *s, const int32_t *tokens, int64_t T, rp_logits_mode mode, float *hidden) {
    rp_model *m = s->m;
    rp_backend *be = m->be;
    const rp_llama_config *c = &m->cfg;
    const int64_t C = c->dim, V = c->vocab, n_past = s->n_past;
    for (int64_t t = 0; t < T; t++) s->host_pos[t] = s->pack ? s->pack->pos[t] : (int32_t)(n_past + t);
    RP_TRY(rp_tensor_copy_in(&s->ids, 0, tokens, (size_t)T * sizeof(int32_t)));
    RP_TRY(rp_tensor_copy_in(&s->pos, 0, s->host_pos, (size_t)T * sizeof(int32_t)));
    CALL(embed, F(s->x), rp_tensor_data(&m->tok_embd), m->tok_embd.dtype, (size_t)m->tok_embd.stride[0], V, C, I(s->ids), T);
    RP_TRY(layers(s, T, hidden));
    memcpy(s->cached + n_past, tokens, (size_t)T * sizeof(int32_t));
    s->n_past += T;
    s->logit_rows = 0;
    if (mode == RP_LOGITS_LAST) {
        CALL(rmsnorm, F(s->xb), F(s->x) + (T - 1) * C, F(m->out_norm), 1, C, c->norm_eps);
        RP_TRY(mm(be, F(s->logits), F(s->xb), 1, C, &m->output, m->p_output, V));
        s->logit_rows = 1;
    } else if (mode == RP_LOGITS_ALL) {
        CALL(rmsnorm, F(s->xb), F(s->x), F(m->out_norm), T, C, c->norm_eps);
        RP_TRY(mm(be, F(s->logits), F(s->xb), T, C, &m->output, m->p_output, V));
        s->logit_rows = T;
    }
    return RP_OK;
}

/* Forward T tokens, in pieces of n_batch. */
rp_status rp_session_forward(rp_session *s, const int32_t *tokens, int64_t T, rp_logits_mode mode, float *logits,
                             float *hidden) {
    if (T <= 0) return rp_fail(RP_ERR_INVAL, "forward: %lld tokens", (long long)T);
    if (T > s->n_ctx - s->n_past)
        return rp_fail(RP_ERR_RANGE, "forward: %lld tokens after %lld cached positions exceed the context of %d", (long long)T, (long long)s->n_past, s->n_ctx);
    if (mode == RP_LOGITS_ALL && T > s->n_logits)
        return rp_fail(RP_ERR_INVAL, "forward: all logits of %lld tokens requested, the session holds %d rows", (long long)T, s->n_logits);
    if (hidden && T > s->n_batch)
        return rp_fail(RP_ERR_INVAL, "forward: hidden states of %lld tokens requested, batches hold %d", (long long)T, s->n_batch);
    for (int64_t i = 0; i < T; i += s->n_batch) {
        int64_t n = T - i < s->n_batch ? T - i : s->n_batch;
        rp_logits_mode md = i + n == T ? mode : RP_LOGITS_NONE;
        rp_status st = forward_piece(s, tokens + i, n, md, hidden);
        if (st != RP_OK) return st;   /* pieces already run stay cached */
    }
    if (logits && s->logit_rows)
        RP_TRY(rp_tensor_copy_out(&s->logits, 0, logits, (size_t)(s->logit_rows * s->m->cfg.vocab) * sizeof(float)));
    return RP_OK;
}

/* One decoding step of n sequences together (see llama.h). */
rp_status rp_session_step(rp_session *s, rp_session *const *seqs, const int32_t *tokens, int n, float *logits) {
    rp_model *m = s->m;
    rp_backend *be = m->be;
    const rp_llama_config *c = &m->cfg;
    const int64_t C = c->dim, V = c->vocab;
    if (n <= 0 || n > s->n_batch || n > s->n_logits)
        return rp_fail(RP_ERR_INVAL, "step: %d sequences for a work session of %d rows (%d logit rows)", n, s->n_batch, s->n_logits);
    if (!be->ops->host_memory) return rp_fail(RP_ERR_UNSUPPORTED, "step: batched decoding needs a host-memory backend, not %s", be->name);
    for (int t = 0; t < n; t++) {
        const rp_session *r = seqs[t];
        if (r->m != m) return rp_fail(RP_ERR_INVAL, "step: sequence %d belongs to another model", t);
        if (r->n_past >= r->n_ctx) return rp_fail(RP_ERR_RANGE, "step: sequence %d is full (%d positions)", t, r->n_ctx);
        if (r == s) return rp_fail(RP_ERR_INVAL, "step: sequence %d is the work session itself", t);
        for (int u = 0; u < t; u++) if (seqs[u] == r) return rp_fail(RP_ERR_INVAL, "step: sequences %d and %d are the same session", u, t);
        s->host_pos[t] = (int32_t)r->n_past;
    }
    RP_TRY(rp_tensor_copy_in(&s->ids, 0, tokens, (size_t)n * sizeof(int32_t)));
    RP_TRY(rp_tensor_copy_in(&s->pos, 0, s->host_pos, (size_t)n * sizeof(int32_t)));
    CALL(embed, F(s->x), rp_tensor_data(&m->tok_embd), m->tok_embd.dtype, (size_t)m->tok_embd.stride[0], V, C, I(s->ids), n);
    s->seqs = seqs;
    rp_status st = layers(s, n, NULL);
    s->seqs = NULL;
    RP_TRY(st);
    for (int t = 0; t < n; t++) seqs[t]->cached[seqs[t]->n_past++] = tokens[t];
    CALL(rmsnorm, F(s->xb), F(s->x), F(m->out_norm), n, C, c->norm_eps);
    RP_TRY(mm(be, F(s->logits), F(s->xb), n, C, &m->output, m->p_output, V));
    s->logit_rows = n;
    if (logits) RP_TRY(rp_tensor_copy_out(&s->logits, 0, logits, (size_t)n * (size_t)V * sizeof(float)));
    return RP_OK;
}

/* The logits tensor and its rows. */
const rp_tensor *rp_session_logits(const rp_session *s, int64_t *rows) {
    if (rows) *rows = s->logit_rows;
    return &s->logits;
}

/* Teacher-forced log-probabilities with prefix reuse. */
rp_status rp_session_score(rp_session *s, const int32_t *tokens, int64_t n, int64_t from, float *lp, unsigned char *greedy) {
    if (from < 0) return rp_fail(RP_ERR_INVAL, "score: from = %lld", (long long)from);
    if (n < 2 || from >= n - 1) return RP_OK;
    if (n - 1 > s->n_ctx) return rp_fail(RP_ERR_RANGE, "score: sequence of %lld tokens exceeds the context of %d", (long long)n, s->n_ctx);
    int64_t common = 0;
    while (common < s->n_past && common < n && s->cached[common] == tokens[common]) common++;
    int64_t keep = common < from ? common : from;
    RP_TRY(rp_session_truncate(s, keep));
    rp_backend *be = s->m->be;
    const int64_t V = s->m->cfg.vocab;
    if (keep < from) RP_TRY(rp_session_forward(s, tokens + keep, from - keep, RP_LOGITS_NONE, NULL, NULL));
    for (int64_t i = from; i < n - 1;) {
        int64_t T = n - 1 - i < s->n_logits ? n - 1 - i : s->n_logits;
        RP_TRY(rp_session_forward(s, tokens + i, T, RP_LOGITS_ALL, NULL, NULL));
        RP_TRY(rp_tensor_copy_in(&s->tgt, 0, tokens + i + 1, (size_t)T * sizeof(int32_t)));
        CALL(cross_entropy, F(s->loss), F(s->logits), I(s->tgt), T, V);
        RP_TRY(rp_tensor_copy_out(&s->loss, 0, s->host_loss, (size_t)T * sizeof(float)));
        if (greedy) {
            CALL(argmax, I(s->best), F(s->logits), T, V);
            RP_TRY(rp_tensor_copy_out(&s->best, 0, s->host_best, (size_t)T * sizeof(int32_t)));
        }
        for (int64_t r = 0; r < T; r++) {
            lp[i + r - from] = -s->host_loss[r];
            if (greedy) greedy[i + r - from] = s->host_best[r] == tokens[i + r + 1];
        }
        i += T;
    }
    return RP_OK;
}
