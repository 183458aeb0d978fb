/* tokenizer_gguf.c: a loaded SentencePiece-style tokenizer written back as GGUF tokenizer.ggml.* keys, so a
 * model exported from a llama2.c checkpoint (whose tokenizer lives in a separate tokenizer.bin) is one
 * self-contained file that rp_tokenizer_from_model_file and llama.cpp read. Token texts are written with
 * spaces as U+2581 (the GGUF SentencePiece convention); scores, token types, the BOS / EOS / unknown ids and
 * the add-BOS / space-prefix flags are carried over, so the reloaded tokenizer encodes and decodes as the
 * original. Byte-level BPE is refused: its merge list is not kept after loading (a BPE model comes from a
 * GGUF whose tokenizer keys are copied as they are). Invariant: nothing is set unless every key can be. */
#include "model/gguf_write.h"
#include "model/tokenizer_impl.h"
#include <stdlib.h>
#include <string.h>

/* Token i's text with ' ' as U+2581 into a new string (*out, *n); the caller frees it. */
static rp_status escaped(const rp_tokenizer *t, int i, char **out, size_t *n) {
    const char *s = t->arena + t->off[i];
    size_t len = t->len[i], spaces = 0;
    if (!t->escape_spaces) for (size_t k = 0; k < len; k++) spaces += s[k] == ' ';
    char *d = malloc(len + 2 * spaces + 1);
    if (!d) return rp_fail(RP_ERR_NOMEM, "tokenizer to gguf: out of memory");
    size_t j = 0;
    for (size_t k = 0; k < len; k++) {
        if (!t->escape_spaces && s[k] == ' ') { memcpy(d + j, "\xE2\x96\x81", 3); j += 3; }
        else d[j++] = s[k];
    }
    *out = d;
    *n = j;
    return RP_OK;
}

static rp_status write_keys(const rp_tokenizer *t, rp_gguf_writer *w, char **texts, size_t *lens, float *scores, int32_t *types) {
    int n = t->n_vocab;
    for (int i = 0; i < n; i++) {
        RP_TRY(escaped(t, i, &texts[i], &lens[i]));
        scores[i] = t->score[i];
        types[i] = t->type[i] == TT_UNDEF ? TT_NORMAL : t->type[i];
    }
    RP_TRY(rp_gguf_writer_set_string(w, "tokenizer.ggml.model", "llama", 5));
    RP_TRY(rp_gguf_writer_set_string_array(w, "tokenizer.ggml.tokens", (const char *const *)texts, lens, n));
    RP_TRY(rp_gguf_writer_set_array(w, "tokenizer.ggml.scores", RP_GGUF_F32, scores, n));
    RP_TRY(rp_gguf_writer_set_array(w, "tokenizer.ggml.token_type", RP_GGUF_I32, types, n));
    if (t->bos >= 0) RP_TRY(rp_gguf_writer_set_int(w, "tokenizer.ggml.bos_token_id", RP_GGUF_U32, t->bos));
    if (t->eos >= 0) RP_TRY(rp_gguf_writer_set_int(w, "tokenizer.ggml.eos_token_id", RP_GGUF_U32, t->eos));
    if (t->unk >= 0) RP_TRY(rp_gguf_writer_set_int(w, "tokenizer.ggml.unknown_token_id", RP_GGUF_U32, t->unk));
    RP_TRY(rp_gguf_writer_set_int(w, "tokenizer.ggml.add_bos_token", RP_GGUF_BOOL, t->add_bos != 0));
    return rp_gguf_writer_set_int(w, "tokenizer.ggml.add_space_prefix", RP_GGUF_BOOL, t->add_space_prefix != 0);
}

/* Write t's vocabulary as GGUF SentencePiece tokenizer keys into w (BPE: RP_ERR_UNSUPPORTED). */
rp_status rp_tokenizer_write_gguf(const rp_tokenizer *t, rp_gguf_writer *w) {
    if (t->kind != RP_TOKENIZER_SPM)
        return rp_fail(RP_ERR_UNSUPPORTED, "tokenizer to gguf: only SentencePiece-style vocabularies are written (a byte-level BPE "
                                           "tokenizer's keys are copied from its GGUF)");
    int n = t->n_vocab;
    char **texts = calloc((size_t)n, sizeof *texts);
    size_t *lens = calloc((size_t)n, sizeof *lens);
    float *scores = malloc((size_t)n * sizeof *scores);
    int32_t *types = malloc((size_t)n * sizeof *types);
    rp_status st = texts && lens && scores && types ? write_keys(t, w, texts, lens, scores, types)
                                                    : rp_fail(RP_ERR_NOMEM, "tokenizer to gguf: out of memory");
    for (int i = 0; texts && i < n; i++) free(texts[i]);
    free(texts); free(lens); free(scores); free(types);
    return st;
}
