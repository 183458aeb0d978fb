/* generate.c: the generation loops (generate.h): one sequence (one forward call per token on the session's
 * planned buffers) or many (continuous batching: one rp_session_step per token for every active sequence,
 * a finished sequence's slot refilled with the next prompt); sampling, streaming decode through the
 * tokenizer, stop strings with hold-back, all in the per-sequence stream functions both loops share.
 * Invariant: a sequence sees the same calls in both loops (prompt forward, then sample / step), so batched
 * results equal one-at-a-time results whenever rp_session_step equals rp_session_forward row for row. */
#include "nn/generate.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "nn/llama_impl.h"
#include "nn/sampler.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Earliest occurrence of any stop string in text[from..len), or -1. */
static long find_stop(const rp_buf *text, size_t from, const rp_generate_opts *o) {
    long best = -1;
    for (int i = 0; i < o->n_stop; i++) {
        size_t sl = strlen(o->stop[i]);
        if (!sl || sl > text->len) continue;
        for (size_t p = from; p + sl <= text->len; p++)
            if (memcmp(text->data + p, o->stop[i], sl) == 0) { if (best < 0 || (long)p < best) best = (long)p; break; }
    }
    return best;
}

/* One sequence's generation state: its result, options, sampler, and the streaming position. */
typedef struct stream {
    const rp_generate_opts *o;
    rp_generate_result *r;
    rp_sampler *smp;
    const rp_tokenizer *tok;
    size_t max_stop, emitted;
    int prev, steps;
    double t1;
} stream;

static rp_status stream_start(stream *g, rp_session *s, const rp_generate_opts *o, rp_generate_result *r) {
    memset(g, 0, sizeof *g);
    g->o = o;
    g->r = r;
    g->tok = rp_model_tokenizer(rp_session_model(s));
    if (!g->tok) return rp_fail(RP_ERR_INVAL, "generate: the model has no tokenizer");
    for (int i = 0; i < o->n_stop; i++) if (strlen(o->stop[i]) > g->max_stop) g->max_stop = strlen(o->stop[i]);
    return rp_sampler_new(rp_model_config(rp_session_model(s))->vocab, o->temperature, o->top_p, o->seed, &g->smp);
}

/* Feed the prompt (or re-run the last cached token) for the first logits, into s->host_logits. */
static rp_status stream_prompt(stream *g, rp_session *s, const int32_t *prompt, size_t n_prompt) {
    double t0 = now_s();
    rp_status st;
    if (n_prompt > 0) {
        st = rp_session_forward(s, prompt, (int64_t)n_prompt, RP_LOGITS_LAST, s->host_logits, NULL);
        g->prev = prompt[n_prompt - 1];
    } else if (rp_session_n_past(s) > 0) {   /* re-run the last cached token for its logits */
        int64_t n = rp_session_n_past(s);
        int32_t last = s->cached[n - 1];
        (void)rp_session_truncate(s, n - 1);
        st = rp_session_forward(s, &last, 1, RP_LOGITS_LAST, s->host_logits, NULL);
        g->prev = last;
    } else {
        st = rp_fail(RP_ERR_INVAL, "generate: empty prompt and empty session");
    }
    g->r->n_prompt = n_prompt;
    g->t1 = now_s();
    g->r->prompt_s = g->t1 - t0;
    g->r->stop_reason = "max_tokens";
    g->r->eog_token = -1;
    return st;
}

/* Sample from s->host_logits and take the token: 1 when this sequence is finished (stop reason set), 0 when
 * the token must be run through the model for the next logits. */
static int stream_next(stream *g, rp_session *s, int32_t *next_out, rp_status *st) {
    const rp_generate_opts *o = g->o;
    rp_generate_result *r = g->r;
    if (o->max_tokens > 0 && g->steps >= o->max_tokens) return 1;
    int next = rp_sampler_sample(g->smp, s->host_logits);
    g->steps++;
    if (!o->ignore_eog && rp_tokenizer_is_eog(g->tok, next)) { r->stop_reason = "eog"; r->eog_token = next; return 1; }
    if ((*st = rp_tokens_push(&r->tokens, next)) != RP_OK) return 1;
    size_t plen = 0;
    const char *piece = rp_tokenizer_piece(g->tok, g->prev, next, &plen);
    g->prev = next;
    size_t before = r->text.len;
    if (piece && plen && (*st = rp_buf_append(&r->text, piece, plen)) != RP_OK) return 1;
    long hit = g->max_stop ? find_stop(&r->text, before > g->max_stop ? before - g->max_stop : 0, o) : -1;
    size_t safe = r->text.len;
    if (hit >= 0) safe = (size_t)hit;
    else if (g->max_stop) safe = r->text.len > g->max_stop - 1 ? r->text.len - (g->max_stop - 1) : 0;
    if (safe < g->emitted) safe = g->emitted;
    if (o->on_text && safe > g->emitted && o->on_text(o->arg, r->text.data + g->emitted, safe - g->emitted)) {
        g->emitted = safe;
        r->stop_reason = "callback";
        return 1;
    }
    g->emitted = safe;
    if (hit >= 0) {
        r->text.len = (size_t)hit;
        r->text.data[hit] = 0;
        r->stop_reason = "stop";
        return 1;
    }
    if (o->max_tokens > 0 && g->steps >= o->max_tokens) return 1;
    if (rp_session_n_past(s) >= rp_session_n_ctx(s)) { r->stop_reason = "context"; return 1; }
    *next_out = next;
    return 0;
}

/* Flush held-back text, time the generation, free the sampler. */
static void stream_end(stream *g, rp_status st) {
    rp_generate_result *r = g->r;
    if (st == RP_OK && g->o->on_text && r->text.len > g->emitted && strcmp(r->stop_reason, "callback") != 0)
        g->o->on_text(g->o->arg, r->text.data + g->emitted, r->text.len - g->emitted);
    r->gen_s = now_s() - g->t1;
    r->tokens_per_s = r->gen_s > 0 ? (double)r->tokens.n / r->gen_s : 0;
    rp_sampler_free(g->smp);
    g->smp = NULL;
}

/* Generate after the prompt. */
rp_status rp_generate(rp_session *s, const int32_t *prompt, size_t n_prompt, const rp_generate_opts *o,
                      rp_generate_result *r) {
    memset(r, 0, sizeof *r);
    stream g;
    RP_TRY(stream_start(&g, s, o, r));
    rp_status st = stream_prompt(&g, s, prompt, n_prompt);
    int32_t t;
    while (st == RP_OK && !stream_next(&g, s, &t, &st)) st = rp_session_forward(s, &t, 1, RP_LOGITS_LAST, s->host_logits, NULL);
    stream_end(&g, st);
    return st;
}

/* One slot of batched generation: its session and the prompt it works on (-1: idle). */
typedef struct slot { rp_session *s; stream g; int job; } slot;

/* Put prompt i into slot k: reset its cache, run the prompt. */
static rp_status slot_fill(slot *k, int i, const rp_tokens *prompts, const rp_generate_opts *opts, rp_generate_result *out) {
    memset(&out[i], 0, sizeof out[i]);
    k->job = -1;
    rp_session_reset(k->s);
    if (prompts[i].n == 0) return rp_fail(RP_ERR_INVAL, "generate: prompt %d is empty", i);
    if ((int64_t)prompts[i].n >= rp_session_n_ctx(k->s))
        return rp_fail(RP_ERR_RANGE, "generate: prompt %d has %zu tokens, the context holds %d", i, prompts[i].n, rp_session_n_ctx(k->s));
    RP_TRY(stream_start(&k->g, k->s, &opts[i], &out[i]));
    k->job = i;
    return stream_prompt(&k->g, k->s, prompts[i].ids, prompts[i].n);
}

/* Generate after n prompts, n_slots at a time (see generate.h). */
rp_status rp_generate_batch(rp_model *m, const rp_tokens *prompts, int n, const rp_generate_opts *opts, int n_slots,
                            int n_ctx, rp_generate_result *out) {
    if (n <= 0) return RP_OK;
    if (n_slots <= 0) n_slots = 8;
    if (n_slots > n) n_slots = n;
    const int V = rp_model_config(m)->vocab;
    slot *sl = calloc((size_t)n_slots, sizeof *sl);
    rp_session **rows = calloc((size_t)n_slots, sizeof *rows);
    int *row_slot = calloc((size_t)n_slots, sizeof *row_slot);
    int32_t *toks = calloc((size_t)n_slots, sizeof *toks);
    float *logits = malloc((size_t)n_slots * (size_t)V * sizeof *logits);
    rp_session *work = NULL;
    rp_status st = sl && rows && row_slot && toks && logits ? RP_OK : rp_fail(RP_ERR_NOMEM, "generate: out of memory");
    for (int i = 0; i < n; i++) memset(&out[i], 0, sizeof out[i]);
    if (st == RP_OK) st = rp_session_new(m, n_slots, n_slots, n_slots, &work);
    for (int k = 0; k < n_slots && st == RP_OK; k++) {
        sl[k].job = -1;
        st = rp_session_new(m, n_ctx, 512, 1, &sl[k].s);
    }
    int next_job = 0, active = 0;
    for (int k = 0; k < n_slots && st == RP_OK; k++, active++) st = slot_fill(&sl[k], next_job++, prompts, opts, out);
    while (st == RP_OK && active > 0) {
        int nr = 0;
        for (int k = 0; k < n_slots && st == RP_OK; k++) {
            slot *q = &sl[k];
            while (q->job >= 0 && st == RP_OK) {   /* sample; a finished slot takes the next prompt at once */
                int32_t t;
                if (!stream_next(&q->g, q->s, &t, &st)) { rows[nr] = q->s; row_slot[nr] = k; toks[nr++] = t; break; }
                stream_end(&q->g, st);
                q->job = -1;
                active--;
                if (st == RP_OK && next_job < n) { active++; st = slot_fill(q, next_job++, prompts, opts, out); }
            }
        }
        if (st != RP_OK || nr == 0) break;
        st = rp_session_step(work, rows, toks, nr, logits);
        for (int r = 0; r < nr && st == RP_OK; r++) memcpy(sl[row_slot[r]].s->host_logits, logits + (size_t)r * V, (size_t)V * sizeof *logits);
    }
    for (int k = 0; sl && k < n_slots; k++) {
        if (sl[k].job >= 0) stream_end(&sl[k].g, st);
        rp_session_free(sl[k].s);
    }
    rp_session_free(work);
    free(sl); free(rows); free(row_slot); free(toks); free(logits);
    return st;
}

/* A stepwise sequence: its stream and the session it runs on. */
struct rp_generate_seq { stream g; rp_session *s; };

/* Start a sequence: sampler, prompt forward. */
rp_status rp_generate_seq_start(rp_session *s, const int32_t *prompt, size_t n_prompt, const rp_generate_opts *o,
                                rp_generate_result *r, rp_generate_seq **out) {
    *out = NULL;
    memset(r, 0, sizeof *r);
    rp_generate_seq *q = calloc(1, sizeof *q);
    if (!q) return rp_fail(RP_ERR_NOMEM, "generate: out of memory");
    q->s = s;
    rp_status st = stream_start(&q->g, s, o, r);
    if (st == RP_OK) st = stream_prompt(&q->g, s, prompt, n_prompt);
    if (st != RP_OK) { rp_generate_seq_end(q, st); return st; }
    *out = q;
    return RP_OK;
}

/* Sample and take the next token. */
int rp_generate_seq_next(rp_generate_seq *q, int32_t *next, rp_status *st) {
    *st = RP_OK;
    return stream_next(&q->g, q->s, next, st);
}

/* The current logits. */
const float *rp_generate_seq_logits(const rp_generate_seq *q) { return q->s->host_logits; }

/* Take this sequence's row of a step. */
void rp_generate_seq_set_logits(rp_generate_seq *q, const float *row) {
    memcpy(q->s->host_logits, row, (size_t)rp_model_config(rp_session_model(q->s))->vocab * sizeof *row);
}

/* End and free. */
void rp_generate_seq_end(rp_generate_seq *q, rp_status st) {
    if (!q) return;
    stream_end(&q->g, st);
    free(q);
}

/* Free the result's buffers. */
void rp_generate_result_free(rp_generate_result *r) {
    rp_tokens_free(&r->tokens);
    rp_buf_free(&r->text);
}
