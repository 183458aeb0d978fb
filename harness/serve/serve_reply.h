/* serve_reply.h: the JSON `repro serve` answers with, in OpenAI's shapes: a whole chat.completion or
 * text_completion object, or a stream of server-sent events ("data: {chunk}\n\n" lines, each a
 * chat.completion.chunk or text_completion object, then "data: [DONE]\n\n"; with include_usage a last
 * chunk with empty choices carries the usage, as OpenAI does).
 * Invariants: every string written is valid JSON (invalid UTF-8 becomes U+FFFD); a stream never splits a
 * UTF-8 character across two events (a partial character is held back until it completes); log-probabilities
 * that are undefined (a text's first token) are null. */
#ifndef RP_SERVE_REPLY_H
#define RP_SERVE_REPLY_H
#include <stddef.h>
#include "model/tokenizer.h"
#include "serve/serve_job.h"
#include "serve/serve_request.h"
#include "util/buf.h"

/* Identity of one response: the id ("chatcmpl-..." / "cmpl-..."), creation time and model name. */
typedef struct rp_serve_reply_id {
    char id[64];
    long long created;
    const char *model;
} rp_serve_reply_id;

/* Append the whole (non-streaming) response for request r whose jobs (one per prompt) have run. */
void rp_serve_reply_write(rp_buf *out, const rp_serve_reply_id *rid, const rp_serve_request *r, const rp_serve_job *jobs,
                          const rp_tokenizer *tok);

/* A server-sent-event stream on a connection. */
typedef struct rp_serve_stream {
    int fd;
    int chat;
    const rp_serve_reply_id *rid;
    int index;                          /* the choice being streamed */
    rp_buf held;                        /* bytes of an incomplete UTF-8 character */
    rp_buf ev;                          /* scratch for one event */
    int gone;                           /* the peer went away: stop generating */
} rp_serve_stream;

/* Send the HTTP head of the event stream. Returns -1 when the peer is gone. */
int rp_serve_stream_begin(rp_serve_stream *s);
/* Start choice index (chat: the event with the assistant role). */
int rp_serve_stream_choice(rp_serve_stream *s, int index);
/* rp_generate_opts.on_text: send text as one event; non-zero (stop generating) when the peer is gone. */
int rp_serve_stream_text(void *stream, const char *text, size_t n);
/* End the current choice with its finish_reason. */
int rp_serve_stream_finish(rp_serve_stream *s, const char *finish);
/* Send an error event (after which the stream ends). */
int rp_serve_stream_error(rp_serve_stream *s, const rp_serve_error *err);
/* Send the usage event (when usage != NULL... counts given), then "data: [DONE]" and end the stream; frees s's buffers. */
int rp_serve_stream_end(rp_serve_stream *s, int with_usage, size_t prompt_tokens, size_t completion_tokens);

#endif
