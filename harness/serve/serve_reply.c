/* serve_reply.c: OpenAI-shaped response bodies and server-sent-event streams (serve_reply.h).
 * Token strings in logprobs are the bytes each token adds to the text (control tokens show their vocabulary
 * text, e.g. "<|im_end|>"); text_offset counts bytes from the start of the returned text (echo: the prompt's
 * text comes first; otherwise offsets continue after the prompt, as OpenAI's do). */
#include "serve/serve_reply.h"
#include <math.h>
#include <string.h>
#include "net/httpd.h"
#include "util/json.h"

/* The bytes token id adds after prev (control tokens: their vocabulary text). */
static const char *token_str(const rp_tokenizer *tok, int prev, int id, size_t *len) {
    const char *p = rp_tokenizer_piece(tok, prev, id, len);
    if (p && *len == 0) p = rp_tokenizer_token_text(tok, id, len);
    if (!p) { *len = 0; p = ""; }
    return p;
}

static void put_lp(rp_buf *out, float lp) {
    if (isnan(lp)) rp_buf_puts(out, "null");
    else rp_buf_printf(out, "%.8g", isfinite(lp) ? (double)lp : -1e30);   /* -inf is not JSON */
}

/* Completions' logprobs object over the job's scored tokens; text_offset starts at offset0. */
static void completion_logprobs(rp_buf *out, const rp_serve_job *j, const rp_tokenizer *tok, size_t offset0) {
    /* the token before lp[0]: none for echo; the prompt's last one otherwise */
    int prev0 = j->echo ? -1 : j->prompt[j->n_prompt - 1];
    const char *keys[4] = { "tokens", "token_logprobs", "top_logprobs", "text_offset" };
    rp_buf_puts(out, "{");
    for (int k = 0; k < 4; k++) {
        rp_buf_printf(out, "%s\"%s\":[", k ? "," : "", keys[k]);
        size_t off = offset0;
        for (size_t i = 0; i < j->n_lp; i++) {
            const rp_serve_tokenlp *t = &j->lp[i];
            int prev = i ? j->lp[i - 1].id : prev0;
            size_t len;
            const char *s = token_str(tok, prev, t->id, &len);
            if (i) rp_buf_puts(out, ",");
            if (k == 0) rp_json_quote(out, s, len);
            else if (k == 1) put_lp(out, t->lp);
            else if (k == 3) rp_buf_printf(out, "%zu", off);
            else if (isnan(t->lp)) rp_buf_puts(out, "null");
            else {
                rp_buf_puts(out, "{");
                for (int a = 0; a < t->n_top; a++) {
                    size_t al;
                    const char *as = token_str(tok, prev, t->top_id[a], &al);
                    if (a) rp_buf_puts(out, ",");
                    rp_json_quote(out, as, al);
                    rp_buf_puts(out, ":");
                    put_lp(out, t->top_lp[a]);
                }
                rp_buf_puts(out, "}");
            }
            off += len;
        }
        rp_buf_puts(out, "]");
    }
    rp_buf_puts(out, "}");
}

static void bytes_list(rp_buf *out, const char *s, size_t n) {
    rp_buf_puts(out, "[");
    for (size_t i = 0; i < n; i++) rp_buf_printf(out, "%s%u", i ? "," : "", (unsigned char)s[i]);
    rp_buf_puts(out, "]");
}

/* Chat's logprobs object: {"content": [{token, logprob, bytes, top_logprobs: [...]}]} over generated tokens. */
static void chat_logprobs(rp_buf *out, const rp_serve_job *j, const rp_tokenizer *tok) {
    rp_buf_puts(out, "{\"content\":[");
    for (size_t i = 0; i < j->n_lp; i++) {
        const rp_serve_tokenlp *t = &j->lp[i];
        int prev = i ? j->lp[i - 1].id : j->prompt[j->n_prompt - 1];
        size_t len;
        const char *s = token_str(tok, prev, t->id, &len);
        rp_buf_puts(out, i ? ",{\"token\":" : "{\"token\":");
        rp_json_quote(out, s, len);
        rp_buf_puts(out, ",\"logprob\":");
        put_lp(out, t->lp);
        rp_buf_puts(out, ",\"bytes\":");
        bytes_list(out, s, len);
        rp_buf_puts(out, ",\"top_logprobs\":[");
        for (int a = 0; a < t->n_top; a++) {
            size_t al;
            const char *as = token_str(tok, prev, t->top_id[a], &al);
            rp_buf_puts(out, a ? ",{\"token\":" : "{\"token\":");
            rp_json_quote(out, as, al);
            rp_buf_puts(out, ",\"logprob\":");
            put_lp(out, t->top_lp[a]);
            rp_buf_puts(out, ",\"bytes\":");
            bytes_list(out, as, al);
            rp_buf_puts(out, "}");
        }
        rp_buf_puts(out, "]}");
    }
    rp_buf_puts(out, "]}");
}

static void head(rp_buf *out, const rp_serve_reply_id *rid, const char *object) {
    rp_buf_printf(out, "{\"id\":\"%s\",\"object\":\"%s\",\"created\":%lld,\"model\":", rid->id, object, rid->created);
    rp_json_quote(out, rid->model, strlen(rid->model));
}

static void usage(rp_buf *out, size_t p, size_t c) {
    rp_buf_printf(out, "\"usage\":{\"prompt_tokens\":%zu,\"completion_tokens\":%zu,\"total_tokens\":%zu}", p, c, p + c);
}

/* The whole response. */
void rp_serve_reply_write(rp_buf *out, const rp_serve_reply_id *rid, const rp_serve_request *r, const rp_serve_job *jobs,
                          const rp_tokenizer *tok) {
    size_t np = 0, nc = 0;
    head(out, rid, r->chat ? "chat.completion" : "text_completion");
    rp_buf_puts(out, ",\"choices\":[");
    for (size_t i = 0; i < r->n_prompts; i++) {
        const rp_serve_job *j = &jobs[i];
        const rp_buf *gen = &j->out.text;
        np += j->n_prompt;
        nc += j->n_completion;
        rp_buf_printf(out, "%s{\"index\":%zu,", i ? "," : "", i);
        if (r->chat) {
            rp_buf_puts(out, "\"message\":{\"role\":\"assistant\",\"content\":");
            rp_json_quote(out, gen->data ? gen->data : "", gen->len);
            rp_buf_puts(out, "},\"logprobs\":");
            if (r->logprobs >= 0) chat_logprobs(out, j, tok);
            else rp_buf_puts(out, "null");
        } else {
            rp_buf text = {0};
            if (r->echo) rp_buf_append(&text, r->prompt_text[i].data ? r->prompt_text[i].data : "", r->prompt_text[i].len);
            rp_buf_append(&text, gen->data ? gen->data : "", gen->len);
            rp_buf_puts(out, "\"text\":");
            rp_json_quote(out, text.data ? text.data : "", text.len);
            rp_buf_free(&text);
            rp_buf_puts(out, ",\"logprobs\":");
            if (r->logprobs >= 0) completion_logprobs(out, j, tok, r->echo ? 0 : r->prompt_text[i].len);
            else rp_buf_puts(out, "null");
        }
        rp_buf_printf(out, ",\"finish_reason\":\"%s\"}", j->finish ? j->finish : "stop");
    }
    rp_buf_puts(out, "],");
    usage(out, np, nc);
    rp_buf_puts(out, "}");
}

/* ---- streams ---- */

/* Send s->ev as one event "data: ...\n\n". */
static int send_event(rp_serve_stream *s) {
    if (s->gone) return -1;
    rp_buf_puts(&s->ev, "\n\n");
    if (!s->ev.data || rp_httpd_stream_chunk(s->fd, s->ev.data, s->ev.len) < 0) s->gone = 1;
    rp_buf_clear(&s->ev);
    return s->gone ? -1 : 0;
}

/* Begin a chunk event: "data: {id, object, created, model, choices: [{index, " (the caller adds the rest). */
static void chunk_head(rp_serve_stream *s) {
    rp_buf_clear(&s->ev);
    rp_buf_puts(&s->ev, "data: ");
    head(&s->ev, s->rid, s->chat ? "chat.completion.chunk" : "text_completion");
    rp_buf_printf(&s->ev, ",\"choices\":[{\"index\":%d,", s->index);
}

/* Send the stream's HTTP head. */
int rp_serve_stream_begin(rp_serve_stream *s) {
    if (rp_httpd_stream_begin(s->fd, 200, "text/event-stream") < 0) s->gone = 1;
    return s->gone ? -1 : 0;
}

/* Open a choice. */
int rp_serve_stream_choice(rp_serve_stream *s, int index) {
    s->index = index;
    rp_buf_clear(&s->held);
    if (!s->chat) return s->gone ? -1 : 0;
    chunk_head(s);
    rp_buf_puts(&s->ev, "\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}");
    return send_event(s);
}

/* Length of the longest prefix of p[0..n) that does not end inside a UTF-8 character. */
static size_t utf8_complete(const char *p, size_t n) {
    size_t i = n, back = 0;
    while (i > 0 && back < 4 && ((unsigned char)p[i - 1] & 0xC0) == 0x80) { i--; back++; }
    if (i == 0) return n;                                   /* no lead byte in reach: not UTF-8, send as is */
    unsigned char lead = (unsigned char)p[i - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    return lead >= 0xC0 && back + 1 < need ? i - 1 : n;
}

static int send_text(rp_serve_stream *s, const char *text, size_t n) {
    chunk_head(s);
    if (s->chat) {
        rp_buf_puts(&s->ev, "\"delta\":{\"content\":");
        rp_json_quote(&s->ev, text, n);
        rp_buf_puts(&s->ev, "},\"logprobs\":null,\"finish_reason\":null}]}");
    } else {
        rp_buf_puts(&s->ev, "\"text\":");
        rp_json_quote(&s->ev, text, n);
        rp_buf_puts(&s->ev, ",\"logprobs\":null,\"finish_reason\":null}]}");
    }
    return send_event(s);
}

/* Stream a piece of generated text. */
int rp_serve_stream_text(void *stream, const char *text, size_t n) {
    rp_serve_stream *s = stream;
    if (s->gone) return 1;
    rp_buf_append(&s->held, text, n);
    size_t ok = s->held.data ? utf8_complete(s->held.data, s->held.len) : 0;
    if (!ok) return 0;
    int rc = send_text(s, s->held.data, ok);
    memmove(s->held.data, s->held.data + ok, s->held.len - ok);
    s->held.len -= ok;
    return rc < 0;
}

/* Close a choice. */
int rp_serve_stream_finish(rp_serve_stream *s, const char *finish) {
    if (s->held.len && send_text(s, s->held.data, s->held.len) < 0) return -1;   /* an incomplete tail, as it is */
    rp_buf_clear(&s->held);
    chunk_head(s);
    rp_buf_printf(&s->ev, "%s,\"logprobs\":null,\"finish_reason\":\"%s\"}]}", s->chat ? "\"delta\":{}" : "\"text\":\"\"", finish);
    return send_event(s);
}

/* Report an error in the stream. */
int rp_serve_stream_error(rp_serve_stream *s, const rp_serve_error *err) {
    rp_buf_clear(&s->ev);
    rp_buf_puts(&s->ev, "data: ");
    rp_serve_error_json(err, &s->ev);
    return send_event(s);
}

/* Usage, [DONE], the end of the chunked body. */
int rp_serve_stream_end(rp_serve_stream *s, int with_usage, size_t prompt_tokens, size_t completion_tokens) {
    if (with_usage) {
        rp_buf_clear(&s->ev);
        rp_buf_puts(&s->ev, "data: ");
        head(&s->ev, s->rid, s->chat ? "chat.completion.chunk" : "text_completion");
        rp_buf_puts(&s->ev, ",\"choices\":[],");
        usage(&s->ev, prompt_tokens, completion_tokens);
        rp_buf_puts(&s->ev, "}");
        send_event(s);
    }
    rp_buf_clear(&s->ev);
    rp_buf_puts(&s->ev, "data: [DONE]");
    send_event(s);
    if (!s->gone && rp_httpd_stream_end(s->fd) < 0) s->gone = 1;
    rp_buf_free(&s->ev);
    rp_buf_free(&s->held);
    return s->gone ? -1 : 0;
}
