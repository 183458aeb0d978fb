/* chat_complete.c: one chat completion on a session: the conversation through the model's chat template,
 * then generation with the room left in the context (generate.h). Shared by `repro serve` and in-process
 * clients (the SAFE plugin's local backend), so both answer a conversation the same way.
 * Invariant: the session is reset first; on error the text buffer is left as it was. */
#include <string.h>
#include "nn/generate.h"

/* Format, encode, generate. */
rp_status rp_chat_complete(rp_session *s, const rp_chat_msg *msgs, int n, const rp_generate_opts *o, rp_buf *text,
                           size_t *n_prompt, size_t *n_gen, const char **finish) {
    const rp_tokenizer *tok = rp_model_tokenizer(rp_session_model(s));
    if (!tok) return rp_fail(RP_ERR_UNSUPPORTED, "chat completion: the model has no tokenizer");
    rp_buf prompt = {0};
    rp_tokens ids = {0};
    rp_generate_result res = {0};
    rp_status st = rp_tokenizer_chat_format(tok, msgs, n, 1, &prompt);
    if (st == RP_OK) st = rp_tokenizer_encode(tok, prompt.data, prompt.len, RP_TOK_PARSE_SPECIAL | RP_TOK_NO_BOS, &ids);
    int n_ctx = rp_session_n_ctx(s);
    if (st == RP_OK && (int64_t)ids.n + 1 > n_ctx)
        st = rp_fail(RP_ERR_RANGE, "prompt of %zu tokens does not fit the context of %d", ids.n, n_ctx);
    if (st == RP_OK) {
        rp_generate_opts go = *o;
        int room = n_ctx - (int)ids.n;
        if (go.max_tokens <= 0 || go.max_tokens > room) go.max_tokens = room;
        rp_session_reset(s);
        st = rp_generate(s, ids.ids, ids.n, &go, &res);
    }
    if (st == RP_OK) {
        rp_buf_clear(text);
        st = rp_buf_append(text, res.text.data ? res.text.data : "", res.text.len);
        *n_prompt = ids.n;
        *n_gen = res.tokens.n;
        *finish = (res.stop_reason && (!strcmp(res.stop_reason, "max_tokens") || !strcmp(res.stop_reason, "context"))) ? "length" : "stop";
    }
    rp_generate_result_free(&res);
    rp_tokens_free(&ids);
    rp_buf_free(&prompt);
    return st;
}
