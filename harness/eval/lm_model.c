/* lm_model.c: rp_model_as_lm: tokenize through the model's tokenizer, score through the session the model
 * keeps for scoring (rp_model_scoring_session). One sequence reuses the cached prefix of the previous call;
 * many sequences in one call are packed into forwards of up to 512 tokens (nn/pack.c), the choices of a
 * question sharing their context (REPRO_PACK=0 scores them one by one instead). Uses only the engine's
 * public API (nn/llama.h). */
#include "eval/lm_model.h"
#include <stdlib.h>
#include <string.h>
#include "nn/llama.h"

_Static_assert(sizeof(int) == sizeof(int32_t), "token ids are passed as int");

#define LM_CTX 2048
#define LM_LOGITS 128

static int lm_ctx(const rp_model *m) {
    int n = rp_model_config(m)->context_len;
    return n < LM_CTX ? n : LM_CTX;
}

static rp_status lm_tokenize(void *ctx, const char *text, size_t len, int **ids, size_t *n) {
    const rp_tokenizer *tok = rp_model_tokenizer(ctx);
    if (!tok) return rp_fail(RP_ERR_INVAL, "lm: the model has no tokenizer");
    rp_tokens t = { 0 };
    rp_status st = rp_tokenizer_encode(tok, text, len, RP_TOK_NO_BOS, &t);
    if (st != RP_OK) { rp_tokens_free(&t); return st; }
    *ids = malloc((t.n ? t.n : 1) * sizeof **ids);
    if (!*ids) { rp_tokens_free(&t); return rp_fail(RP_ERR_NOMEM, "lm: out of memory"); }
    memcpy(*ids, t.ids, t.n * sizeof **ids);
    *n = t.n;
    rp_tokens_free(&t);
    return RP_OK;
}

static rp_status lm_logprobs(void *ctx, int nseq, const int *const *seqs, const size_t *lens, const size_t *from,
                             float *const *out, unsigned char *const *greedy) {
    rp_model *m = ctx;
    rp_session *s;
    RP_TRY(rp_model_scoring_session(m, lm_ctx(m), LM_LOGITS, &s));
    const char *pack = getenv("REPRO_PACK");
    if (nseq == 1 || (pack && !strcmp(pack, "0"))) {   /* REPRO_PACK=0: one sequence per forward (for comparisons) */
        for (int i = 0; i < nseq; i++)
            RP_TRY(rp_session_score(s, (const int32_t *)seqs[i], (int64_t)lens[i], (int64_t)from[i], out[i], greedy ? greedy[i] : NULL));
        return RP_OK;
    }
    int64_t *l64 = malloc((size_t)nseq * 2 * sizeof *l64);
    if (!l64) return rp_fail(RP_ERR_NOMEM, "lm: out of memory");
    for (int i = 0; i < nseq; i++) { l64[i] = (int64_t)lens[i]; l64[nseq + i] = (int64_t)from[i]; }
    rp_status st = rp_session_score_many(s, nseq, (const int32_t *const *)seqs, l64, l64 + nseq, out, greedy);
    free(l64);
    return st;
}

/* The model as an rp_lm. */
rp_lm rp_model_as_lm(rp_model *m) {
    rp_lm lm;
    memset(&lm, 0, sizeof lm);
    const rp_tokenizer *tok = rp_model_tokenizer(m);
    lm.ctx = m;
    lm.n_vocab = rp_model_config(m)->vocab;
    lm.bos = tok ? rp_tokenizer_bos(tok) : -1;
    lm.add_bos = tok ? rp_tokenizer_adds_bos(tok) : 0;
    lm.n_ctx = lm_ctx(m);
    lm.tokenize = lm_tokenize;
    lm.logprobs = lm_logprobs;
    return lm;
}
