/* generate.c: the generation loop (generate.h): one forward call per token on the session's planned
 * buffers, sampling, streaming decode through the tokenizer, stop strings with hold-back. */
#include "nn/generate.h"
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

/* Generate after the prompt. */
rp_status rp_generate(rp_session *s, const int32_t *prompt, size_t n_prompt, const rp_generate_opts *o,
                      rp_generate_result *r) {
    memset(r, 0, sizeof *r);
    rp_model *m = rp_session_model(s);
    const rp_tokenizer *tok = rp_model_tokenizer(m);
    if (!tok) return rp_fail(RP_ERR_INVAL, "generate: the model has no tokenizer");
    const int V = rp_model_config(m)->vocab;
    size_t max_stop = 0;
    for (int i = 0; i < o->n_stop; i++) if (strlen(o->stop[i]) > max_stop) max_stop = strlen(o->stop[i]);
    rp_sampler *smp;
    RP_TRY(rp_sampler_new(V, o->temperature, o->top_p, o->seed, &smp));
    rp_status st = RP_OK;
    float *logits = s->host_logits;   /* [V]: the last position's logits, copied out of the session */
    double t0 = now_s();
    int32_t last;
    if (n_prompt > 0) {
        st = rp_session_forward(s, prompt, (int64_t)n_prompt, RP_LOGITS_LAST, logits, NULL);
        last = prompt[n_prompt - 1];
    } else if (rp_session_n_past(s) > 0) {   /* re-run the last cached token for its logits */
        int64_t n = rp_session_n_past(s);
        last = s->cached[n - 1];
        (void)rp_session_truncate(s, n - 1);
        st = rp_session_forward(s, &last, 1, RP_LOGITS_LAST, logits, NULL);
    } else {
        st = rp_fail(RP_ERR_INVAL, "generate: empty prompt and empty session");
    }
    r->n_prompt = n_prompt;
    double t1 = now_s();
    r->prompt_s = t1 - t0;
    r->stop_reason = "max_tokens";
    r->eog_token = -1;
    size_t emitted = 0;
    int prev = last;
    for (int step = 0; st == RP_OK && (o->max_tokens <= 0 || step < o->max_tokens); step++) {
        int next = rp_sampler_sample(smp, logits);
        if (!o->ignore_eog && rp_tokenizer_is_eog(tok, next)) { r->stop_reason = "eog"; r->eog_token = next; break; }
        if ((st = rp_tokens_push(&r->tokens, next)) != RP_OK) break;
        size_t plen = 0;
        const char *piece = rp_tokenizer_piece(tok, prev, next, &plen);
        prev = next;
        size_t before = r->text.len;
        if (piece && plen && (st = rp_buf_append(&r->text, piece, plen)) != RP_OK) break;
        long hit = max_stop ? find_stop(&r->text, before > max_stop ? before - max_stop : 0, o) : -1;
        size_t safe = r->text.len;
        if (hit >= 0) safe = (size_t)hit;
        else if (max_stop) safe = r->text.len > max_stop - 1 ? r->text.len - (max_stop - 1) : 0;
        if (safe < emitted) safe = emitted;
        if (o->on_text && safe > emitted && o->on_text(o->arg, r->text.data + emitted, safe - emitted)) {
            emitted = safe;
            r->stop_reason = "callback";
            break;
        }
        emitted = safe;
        if (hit >= 0) {
            r->text.len = (size_t)hit;
            r->text.data[hit] = 0;
            r->stop_reason = "stop";
            break;
        }
        if (o->max_tokens > 0 && step + 1 >= o->max_tokens) break;
        if (rp_session_n_past(s) >= rp_session_n_ctx(s)) { r->stop_reason = "context"; break; }
        int32_t t = next;
        st = rp_session_forward(s, &t, 1, RP_LOGITS_LAST, logits, NULL);
    }
    if (st == RP_OK && o->on_text && r->text.len > emitted && strcmp(r->stop_reason, "callback") != 0)
        o->on_text(o->arg, r->text.data + emitted, r->text.len - emitted);
    r->gen_s = now_s() - t1;
    r->tokens_per_s = r->gen_s > 0 ? (double)r->tokens.n / r->gen_s : 0;
    rp_sampler_free(smp);
    return st;
}

/* Free the result's buffers. */
void rp_generate_result_free(rp_generate_result *r) {
    rp_tokens_free(&r->tokens);
    rp_buf_free(&r->text);
}
