/* session.c: a model run with a KV cache: the forward pass over a batch of tokens, logits of the last or
 * of every position, hidden states, and teacher-forced scoring that reuses cached prefixes.
 * Invariants: all buffers are allocated in rp_session_new for n_ctx / n_batch / n_logits and never in
 * forward calls; cached[0 .. n_past) are the tokens whose keys and values sit in kc / vc. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "nn/llama_impl.h"
#include "nn/pack.h"

#define CALL(op, ...) RP_TRY(RP_BACKEND_CALL(be, op, __VA_ARGS__))

static size_t wrow(const rp_weight *w) { return rp_dtype_row_bytes(w->dtype, w->shape[w->ndim - 1]); }

static void *xalloc(size_t n, size_t size, int *fail) {
    if (n && size > SIZE_MAX / n) { *fail = 1; return NULL; }
    void *p = calloc(n ? n : 1, size);
    if (!p) *fail = 1;
    return p;
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
    size_t kvd = (size_t)c->n_head_kv * c->head_dim, C = (size_t)c->dim, F = (size_t)c->ffn_dim, B = (size_t)n_batch;
    int fail = 0;
    s->cached = xalloc((size_t)n_ctx, sizeof(int32_t), &fail);
    s->kc = xalloc((size_t)c->n_layer * n_ctx, kvd * sizeof(float), &fail);
    s->vc = xalloc((size_t)c->n_layer * n_ctx, kvd * sizeof(float), &fail);
    s->x = xalloc(B, C * sizeof(float), &fail);
    s->xb = xalloc(B, C * sizeof(float), &fail);
    s->xb2 = xalloc(B, C * sizeof(float), &fail);
    s->q = xalloc(B, C * sizeof(float), &fail);
    s->att = xalloc(B, C * sizeof(float), &fail);
    s->hb = xalloc(B, F * sizeof(float), &fail);
    s->hb2 = xalloc(B, F * sizeof(float), &fail);
    s->logits = xalloc((size_t)n_logits, (size_t)c->vocab * sizeof(float), &fail);
    s->loss = xalloc((size_t)n_logits, sizeof(float), &fail);
    s->pos = xalloc(B, sizeof(int32_t), &fail);
    if (fail) {
        rp_session_free(s);
        return rp_fail(RP_ERR_NOMEM, "session: out of memory for a %d-position cache (%zu MB)", n_ctx,
                       (size_t)c->n_layer * n_ctx * kvd * 8 >> 20);
    }
    *out = s;
    return RP_OK;
}

/* Free every buffer. */
void rp_session_free(rp_session *s) {
    if (!s) return;
    free(s->cached); free(s->kc); free(s->vc); free(s->x); free(s->xb); free(s->xb2); free(s->q); free(s->att);
    free(s->hb); free(s->hb2); free(s->logits); free(s->loss); free(s->pos);
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

static rp_status mm(rp_backend *be, float *y, const float *x, int64_t T, int64_t K, const rp_weight *w, int64_t N) {
    return RP_BACKEND_CALL(be, matmul, y, x, T, K, w->data, w->dtype, wrow(w), N);
}

static rp_matmul_part part(float *y, const rp_weight *w, int64_t N) {
    rp_matmul_part p = { y, w->data, w->dtype, wrow(w), N };
    return p;
}

/* One piece of at most n_batch tokens. */
static rp_status forward_piece(rp_session *s, const int32_t *tokens, int64_t T, rp_logits_mode mode, float *hidden) {
    rp_model *m = s->m;
    rp_backend *be = m->be;
    const rp_llama_config *c = &m->cfg;
    const int64_t C = c->dim, F = c->ffn_dim, D = c->head_dim, kvd = (int64_t)c->n_head_kv * D, V = c->vocab;
    const int64_t n_past = s->n_past;
    const float scale = 1.0f / sqrtf((float)D);
    CALL(embed, s->x, m->tok_embd->data, m->tok_embd->dtype, wrow(m->tok_embd), V, C, tokens, T);
    for (int64_t t = 0; t < T; t++) s->pos[t] = s->pack ? s->pack->pos[t] : (int32_t)(n_past + t);
    for (int l = 0; l < c->n_layer; l++) {
        if (hidden) memcpy(hidden + (size_t)l * T * C, s->x, (size_t)(T * C) * sizeof(float));
        if (m->skip[l]) continue;
        const rp_layer *L = &m->layers[l];
        float *kl = s->kc + ((size_t)l * s->n_ctx) * kvd, *vl = s->vc + ((size_t)l * s->n_ctx) * kvd;
        CALL(rmsnorm, s->xb, s->x, L->attn_norm, T, C, c->norm_eps);
        rp_matmul_part qkv[3] = { part(s->q, L->wq, C), part(kl + n_past * kvd, L->wk, kvd), part(vl + n_past * kvd, L->wv, kvd) };
        CALL(matmul_multi, s->xb, T, C, qkv, 3);
        CALL(rope, s->q, T, c->n_head, (int)D, c->rope_dim, s->pos, c->rope_base, c->rope_neox);
        CALL(rope, kl + n_past * kvd, T, c->n_head_kv, (int)D, c->rope_dim, s->pos, c->rope_base, c->rope_neox);
        if (s->pack) RP_TRY(rp_pack_attention(s, kl, vl, scale));   /* packed: segment by segment */
        else CALL(attention, s->att, s->q, kl, vl, T, n_past, c->n_head, c->n_head_kv, (int)D, kvd, scale);
        RP_TRY(mm(be, s->xb2, s->att, T, C, L->wo, C));
        CALL(add, s->x, s->x, s->xb2, T * C);
        CALL(rmsnorm, s->xb, s->x, L->ffn_norm, T, C, c->norm_eps);
        rp_matmul_part gate_up[2] = { part(s->hb, L->w_gate, F), part(s->hb2, L->w_up, F) };
        CALL(matmul_multi, s->xb, T, C, gate_up, 2);
        CALL(swiglu, s->hb, s->hb, s->hb2, T * F);
        RP_TRY(mm(be, s->xb2, s->hb, T, F, L->w_down, C));
        CALL(add, s->x, s->x, s->xb2, T * C);
    }
    if (hidden) memcpy(hidden + (size_t)c->n_layer * T * C, s->x, (size_t)(T * C) * sizeof(float));
    memcpy(s->cached + n_past, tokens, (size_t)T * sizeof(int32_t));
    s->n_past += T;
    if (mode == RP_LOGITS_LAST) {
        CALL(rmsnorm, s->xb, s->x + (T - 1) * C, m->out_norm, 1, C, c->norm_eps);
        RP_TRY(mm(be, s->logits, s->xb, 1, C, m->output, V));
    } else if (mode == RP_LOGITS_ALL) {
        CALL(rmsnorm, s->xb, s->x, m->out_norm, T, C, c->norm_eps);
        RP_TRY(mm(be, s->logits, s->xb, T, C, m->output, V));
    }
    return RP_OK;
}

/* Forward T tokens, in pieces of n_batch. */
rp_status rp_session_forward(rp_session *s, const int32_t *tokens, int64_t T, rp_logits_mode mode, float **logits,
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
    if (logits) *logits = s->logits;
    return RP_OK;
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
        float *logits;
        rp_status st = rp_session_forward(s, tokens + i, T, RP_LOGITS_ALL, &logits, NULL);
        if (st != RP_OK) return st;
        CALL(cross_entropy, s->loss, logits, tokens + i + 1, T, V);
        for (int64_t r = 0; r < T; r++) {
            int64_t p = i + r;
            lp[p - from] = -s->loss[r];
            if (greedy) {
                const float *row = logits + r * V;
                int64_t best = 0;
                for (int64_t v = 1; v < V; v++) if (row[v] > row[best]) best = v;
                greedy[p - from] = best == tokens[p + 1];
            }
        }
        i += T;
    }
    return RP_OK;
}
