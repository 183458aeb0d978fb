/* pack.c: packed teacher-forced scoring: many short sequences in one forward of at most n_batch tokens.
 *
 * Consecutive sequences that share a prefix covering their context (the choices of one question) form a
 * group: the prefix is laid out once, then each sequence's own suffix. Groups are packed one after the
 * other. Every token's RoPE position is its position in its own sequence, and attention runs segment by
 * segment through the backend's ordinary causal attention op: a prefix attends to itself; suffix j
 * attends to its group's prefix and to itself, after its keys and values are moved (per layer, once the
 * earlier suffixes of that layer are done with theirs) to sit right after the prefix. So each sequence
 * sees exactly the keys it would see alone: a block-diagonal causal mask over groups with a shared
 * prefix inside each, at the cost of one small memmove per suffix and layer. Logits are computed only for
 * the rows that predict a scored token, n_logits rows at a time.
 * Invariants: the session's cache is empty before and after a packed forward (its rows are reordered
 * during one); s->pack is non-NULL only inside rp_session_score_many's forward. A group that does not
 * fit one forward is scored by rp_session_score, unpacked, with its usual prefix reuse; so is everything on a
 * backend without host memory (the in-place row moves are memmoves). */
#include <stdlib.h>
#include <string.h>
#include "nn/llama_impl.h"
#include "nn/pack.h"

#define F(t) ((float *)rp_tensor_data(&(t)))

/* Attention of one packed forward's segments for one layer: kl / vl are the layer's cache rows. */
rp_status rp_pack_attention(rp_session *s, float *kl, float *vl, float scale) {
    const rp_pack *p = s->pack;
    const rp_llama_config *c = &s->m->cfg;
    const int64_t C = c->dim, kvd = (int64_t)c->n_head_kv * c->head_dim;
    for (int64_t i = 0; i < p->n_seg; i++) {
        const rp_pack_seg *g = &p->seg[i];
        if (g->len == 0) continue;
        int64_t dst = g->base + g->pos0;   /* its keys must follow the prefix's */
        if (dst != g->row) {
            memmove(kl + dst * kvd, kl + g->row * kvd, (size_t)(g->len * kvd) * sizeof(float));
            memmove(vl + dst * kvd, vl + g->row * kvd, (size_t)(g->len * kvd) * sizeof(float));
        }
        RP_TRY(RP_BACKEND_CALL(s->m->be, attention, F(s->att) + g->row * C, F(s->q) + g->row * C, kl + g->base * kvd,
                               vl + g->base * kvd, g->len, g->pos0, c->n_head, c->n_head_kv, c->head_dim, kvd, scale));
    }
    return RP_OK;
}

static int64_t common_prefix(const int32_t *a, int64_t na, const int32_t *b, int64_t nb) {
    int64_t k = 0;
    while (k < na && k < nb && a[k] == b[k]) k++;
    return k;
}

/* One scored row: which packed row's logits predict which token, and where the result goes. */
typedef struct score_row { int64_t row; int32_t target; float *lp; unsigned char *greedy; } score_row;

typedef struct packer {
    rp_session *s;
    int32_t *tok, *pos;          /* [n_batch] */
    rp_pack_seg *seg;            /* [n_batch] at most one segment per token */
    score_row *rows;             /* [n_batch] at most one scored row per token */
    int64_t T, n_seg, n_rows;
} packer;

/* Run the packed forward and score its rows, then empty the pack and the cache. */
static rp_status flush(packer *k) {
    if (k->T == 0) return RP_OK;
    rp_session *s = k->s;
    rp_model *m = s->m;
    const rp_llama_config *c = &m->cfg;
    const int64_t C = c->dim, V = c->vocab;
    rp_pack pk = { k->pos, k->seg, k->n_seg };
    rp_session_reset(s);
    s->pack = &pk;
    rp_status st = rp_session_forward(s, k->tok, k->T, RP_LOGITS_NONE, NULL, NULL);
    s->pack = NULL;
    rp_session_reset(s);       /* the cache rows were reordered: nothing in it is reusable */
    /* s->x holds the final residual of every packed row; take the scored ones n_logits at a time. */
    int32_t *targets = k->pos;   /* the positions are no longer needed: reuse them for the targets */
    for (int64_t i = 0; st == RP_OK && i < k->n_rows; i += s->n_logits) {
        int64_t R = k->n_rows - i < s->n_logits ? k->n_rows - i : s->n_logits;
        int need_greedy = 0;
        for (int64_t r = 0; r < R; r++) {
            memcpy(F(s->xb) + r * C, F(s->x) + k->rows[i + r].row * C, (size_t)C * sizeof(float));
            targets[r] = k->rows[i + r].target;
            need_greedy |= k->rows[i + r].greedy != NULL;
        }
        st = RP_BACKEND_CALL(m->be, rmsnorm, F(s->xb), F(s->xb), F(m->out_norm), R, C, c->norm_eps);
        if (st == RP_OK) st = RP_BACKEND_CALL(m->be, matmul, F(s->logits), F(s->xb), R, C, rp_tensor_data(&m->output), m->output.dtype,
                                              (size_t)m->output.stride[0], V);
        if (st == RP_OK) st = rp_tensor_copy_in(&s->tgt, 0, targets, (size_t)R * sizeof(int32_t));
        if (st == RP_OK) st = RP_BACKEND_CALL(m->be, cross_entropy, F(s->loss), F(s->logits), (int32_t *)rp_tensor_data(&s->tgt), R, V);
        if (st == RP_OK) st = rp_tensor_copy_out(&s->loss, 0, s->host_loss, (size_t)R * sizeof(float));
        if (st == RP_OK && need_greedy) st = RP_BACKEND_CALL(m->be, argmax, (int32_t *)rp_tensor_data(&s->best), F(s->logits), R, V);
        if (st == RP_OK && need_greedy) st = rp_tensor_copy_out(&s->best, 0, s->host_best, (size_t)R * sizeof(int32_t));
        for (int64_t r = 0; st == RP_OK && r < R; r++) {
            const score_row *q = &k->rows[i + r];
            *q->lp = -s->host_loss[r];
            if (q->greedy) *q->greedy = s->host_best[r] == q->target;
        }
    }
    k->T = k->n_seg = k->n_rows = 0;
    return st;
}

/* Add the scored rows of sequence tokens[0..n) (from: first predicting position) whose prefix of P
 * tokens sits at packed row gs and whose own tokens (positions P..n-1) sit at row own. */
static void add_rows(packer *k, const int32_t *tokens, int64_t n, int64_t from, int64_t P, int64_t gs, int64_t own,
                     float *lp, unsigned char *greedy) {
    for (int64_t p = from; p < n - 1; p++) {
        score_row *q = &k->rows[k->n_rows++];
        q->row = p < P ? gs + p : own + (p - P);
        q->target = tokens[p + 1];
        q->lp = lp + (p - from);
        q->greedy = greedy ? greedy + (p - from) : NULL;
    }
}

/* Score sequences [a, b) as one group (shared prefix P) in the pack, flushing first when it does not fit. */
static rp_status add_group(packer *k, int a, int b, int64_t P, const int32_t *const *seqs, const int64_t *lens,
                           const int64_t *from, float *const *out, unsigned char *const *greedy) {
    int64_t need = P, rows = 0;
    for (int i = a; i < b; i++) {
        need += lens[i] - P;
        rows += lens[i] - 1 - from[i] > 0 ? lens[i] - 1 - from[i] : 0;
    }
    if (need > k->s->n_batch || rows > k->s->n_batch || b - a + 1 > k->s->n_batch) {
        /* Too big for one forward: unpacked, with the session's prefix reuse. */
        RP_TRY(flush(k));
        for (int i = a; i < b; i++) RP_TRY(rp_session_score(k->s, seqs[i], lens[i], from[i], out[i], greedy ? greedy[i] : NULL));
        rp_session_reset(k->s);
        return RP_OK;
    }
    if (k->T + need > k->s->n_batch || k->n_rows + rows > k->s->n_batch || k->n_seg + (b - a + 1) > k->s->n_batch) RP_TRY(flush(k));
    int64_t gs = k->T;
    memcpy(k->tok + gs, seqs[a], (size_t)P * sizeof(int32_t));
    for (int64_t t = 0; t < P; t++) k->pos[gs + t] = (int32_t)t;
    k->seg[k->n_seg++] = (rp_pack_seg){ gs, gs, P, 0 };
    k->T += P;
    for (int i = a; i < b; i++) {
        int64_t own = k->T, L = lens[i] - P;
        memcpy(k->tok + own, seqs[i] + P, (size_t)L * sizeof(int32_t));
        for (int64_t t = 0; t < L; t++) k->pos[own + t] = (int32_t)(P + t);
        k->seg[k->n_seg++] = (rp_pack_seg){ own, gs, L, P };
        k->T += L;
        if (from[i] < lens[i] - 1) add_rows(k, seqs[i], lens[i], from[i], P, gs, own, out[i], greedy ? greedy[i] : NULL);
    }
    return RP_OK;
}

/* Score many sequences through packed forwards. */
rp_status rp_session_score_many(rp_session *s, int nseq, const int32_t *const *seqs, const int64_t *lens, const int64_t *from,
                                float *const *out, unsigned char *const *greedy) {
    for (int i = 0; i < nseq; i++) {
        if (from[i] < 0) return rp_fail(RP_ERR_INVAL, "score: sequence %d: from = %lld", i, (long long)from[i]);
        if (lens[i] - 1 > s->n_ctx) return rp_fail(RP_ERR_RANGE, "score: sequence %d of %lld tokens exceeds the context of %d", i, (long long)lens[i], s->n_ctx);
    }
    if (!s->m->be->ops->host_memory) {   /* the rows are moved in place with memmove: host-memory backends only */
        for (int i = 0; i < nseq; i++)
            RP_TRY(rp_session_score(s, seqs[i], lens[i], from[i], out[i], greedy ? greedy[i] : NULL));
        return RP_OK;
    }
    packer k = { .s = s };
    size_t B = (size_t)s->n_batch;
    k.tok = malloc(B * sizeof *k.tok);
    k.pos = malloc(B * sizeof *k.pos);
    k.seg = malloc(B * sizeof *k.seg);
    k.rows = malloc(B * sizeof *k.rows);
    rp_status st = RP_OK;
    if (!k.tok || !k.pos || !k.seg || !k.rows) st = rp_fail(RP_ERR_NOMEM, "score: out of memory for a pack");
    for (int a = 0; st == RP_OK && a < nseq;) {
        /* The group: following sequences whose common prefix with the first covers their context. */
        int64_t P = lens[a];
        int b = a + 1;
        for (; b < nseq; b++) {
            int64_t cp = common_prefix(seqs[a], lens[a], seqs[b], lens[b]);
            int64_t ctx = from[a] < from[b] ? from[a] : from[b];
            if (cp == 0 || cp < ctx) break;
            if (cp < P) P = cp;
        }
        st = add_group(&k, a, b, P, seqs, lens, from, out, greedy);
        a = b;
    }
    if (st == RP_OK) st = flush(&k);
    s->pack = NULL;
    rp_session_reset(s);
    free(k.tok); free(k.pos); free(k.seg); free(k.rows);
    return st;
}
