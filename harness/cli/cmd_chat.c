/* cmd_chat.c: `repro chat MODEL`: talk to an instruct model. Each line read from stdin is a user turn;
 * the conversation is rendered with the model's chat template (ChatML for SmolLM2, with its default
 * system prompt unless --system is given), the KV cache keeps the common prefix between turns, and the
 * reply streams to stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli/command.h"
#include "cli/model_cli.h"

RP_COMMAND(chat, rp_cmd_chat, "chat with an instruct model (user turns from stdin lines)");

static void usage(FILE *f) {
    fputs("usage: repro chat MODEL [--system TEXT] [--max-tokens N] [--temperature T] [--top-p P] [--seed S]\n"
          "                   [--stop TEXT]... [--threads N] [--device cpu|cuda] [--ctx N]\n"
          "  Reads one user message per stdin line and prints the assistant's reply after it (one reply per\n"
          "  line of input, followed by an empty line). Defaults: temperature 0.2, top-p 0.9, 256 tokens per reply.\n", f);
}

typedef struct convo { rp_chat_msg *m; int n, cap; } convo;

static rp_status convo_add(convo *c, const char *role, const char *text, size_t len) {
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 16;
        rp_chat_msg *m = realloc(c->m, (size_t)cap * sizeof *m);
        if (!m) return rp_fail(RP_ERR_NOMEM, "chat: out of memory");
        c->m = m;
        c->cap = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy) return rp_fail(RP_ERR_NOMEM, "chat: out of memory");
    memcpy(copy, text, len);
    copy[len] = 0;
    c->m[c->n].role = role;
    c->m[c->n].content = copy;
    c->n++;
    return RP_OK;
}

/* One turn: render the conversation, reuse the cached prefix, generate the reply. */
static rp_status turn(rp_session *s, const rp_tokenizer *tok, convo *c, rp_cli_model_opts *o) {
    rp_buf prompt = { 0 };
    rp_tokens ids = { 0 };
    rp_generate_result r = { 0 };
    rp_status st = rp_tokenizer_chat_format(tok, c->m, c->n, 1, &prompt);
    if (st == RP_OK) st = rp_tokenizer_encode(tok, prompt.data, prompt.len, RP_TOK_PARSE_SPECIAL | RP_TOK_NO_BOS, &ids);
    if (st == RP_OK && (int64_t)ids.n + 1 >= rp_session_n_ctx(s))
        st = rp_fail(RP_ERR_RANGE, "the conversation (%zu tokens) no longer fits the context of %d tokens (--ctx)", ids.n, rp_session_n_ctx(s));
    if (st == RP_OK) {
        int64_t keep = 0, n_past = rp_session_n_past(s);
        const int32_t *cached = rp_session_tokens(s);
        while (keep < n_past && keep + 1 < (int64_t)ids.n && cached[keep] == ids.ids[keep]) keep++;
        st = rp_session_truncate(s, keep);
        if (st == RP_OK) st = rp_generate(s, ids.ids + keep, ids.n - (size_t)keep, &o->gen, &r);
    }
    if (st == RP_OK) {
        fputs("\n\n", stdout);
        fflush(stdout);
        st = convo_add(c, "assistant", r.text.data ? r.text.data : "", r.text.len);
        if (isatty(2)) fprintf(stderr, "[%zu tokens at %.1f tok/s]\n", r.tokens.n, r.tokens_per_s);
    }
    rp_generate_result_free(&r);
    rp_tokens_free(&ids);
    rp_buf_free(&prompt);
    return st;
}

int rp_cmd_chat(int argc, char **argv) {
    if (rp_cli_wants_help(argc, argv)) { usage(stdout); return 0; }
    rp_cli_model_opts o = { .gen = { .temperature = 0.2f, .top_p = 0.9f, .seed = 0, .max_tokens = 256, .on_text = rp_cli_print_text } };
    const char *model, *system = NULL;
    int bad = rp_cli_model_args("chat", argc, argv, &o, "--system", &system, NULL, NULL, &model);
    if (bad) { if (bad > 0) usage(stderr); return 2; }
    rp_model *m;
    rp_status st = rp_cli_model_open(model, &o, &m);
    if (st != RP_OK) return rp_status_exit_code(st);
    const rp_tokenizer *tok = rp_model_tokenizer(m);
    if (rp_tokenizer_chat_style(tok) == RP_CHAT_PLAIN)
        fprintf(stderr, "repro chat: %s has no chat template; using a plain transcript\n", model);
    rp_session *s = NULL;
    st = rp_session_new(m, o.n_ctx, 0, 1, &s);
    convo c = { 0 };
    if (st == RP_OK && system) st = convo_add(&c, "system", system, strlen(system));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while (st == RP_OK) {
        if (isatty(0)) { fputs("> ", stderr); fflush(stderr); }
        if ((len = getline(&line, &cap, stdin)) < 0) break;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (len == 0) continue;
        st = convo_add(&c, "user", line, (size_t)len);
        if (st == RP_OK) st = turn(s, tok, &c, &o);
    }
    if (st != RP_OK) fprintf(stderr, "repro chat: %s\n", rp_errmsg());
    free(line);
    for (int i = 0; i < c.n; i++) free((void *)c.m[i].content);
    free(c.m);
    rp_session_free(s);
    rp_cli_model_close(m, &o);
    return rp_status_exit_code(st);
}
