/* cmd_generate.c: `repro generate MODEL [--prompt TEXT] [--temperature T] [--top-p P] [--steps N] [--seed S]`:
 * a quick look at a model without writing a script. The generated text goes to stdout as it is produced
 * and nothing else does; the speed (tokens/s) goes to stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/command.h"
#include "cli/model_cli.h"

RP_COMMAND(generate, rp_cmd_generate, "generate text from a model (text to stdout, tokens/s to stderr)");

static void usage(FILE *f) {
    fputs("usage: repro generate MODEL [--prompt TEXT] [--temperature T] [--top-p P] [--steps N] [--seed S]\n"
          "                       [--stop TEXT]... [--threads N] [--device cpu|cuda] [--ctx N] [--tokenizer PATH] [--quiet]\n"
          "  MODEL is a GGUF, llama2.c or safetensors path, or an asset name (repro fetch --list). Defaults: temperature 0.8 (0: greedy), top-p 0.9,\n"
          "  256 steps, seed 0. A prompt is tokenized with the model's BOS convention. Text goes to stdout,\n"
          "  the speed to stderr (--quiet: nothing on stderr).\n", f);
}

int rp_cmd_generate(int argc, char **argv) {
    if (rp_cli_wants_help(argc, argv)) { usage(stdout); return 0; }
    rp_cli_model_opts o = { .gen = { .temperature = 0.8f, .top_p = 0.9f, .seed = 0, .max_tokens = 256 } };
    const char *model, *prompt = "";
    int quiet = 0, bad = rp_cli_model_args("generate", argc, argv, &o, "--prompt", &prompt, "--quiet", &quiet, &model);
    if (bad) { if (bad > 0) usage(stderr); return 2; }
    rp_model *m;
    rp_status st = rp_cli_model_open(model, &o, &m);
    if (st != RP_OK) return rp_status_exit_code(st);
    const rp_tokenizer *tok = rp_model_tokenizer(m);
    rp_tokens ids = { 0 };
    st = rp_tokenizer_encode(tok, prompt, strlen(prompt), RP_TOK_DEFAULT, &ids);
    if (st == RP_OK && ids.n == 0) st = rp_tokens_push(&ids, rp_tokenizer_bos(tok) >= 0 ? rp_tokenizer_bos(tok) : 0);
    rp_session *s = NULL;
    if (st == RP_OK) st = rp_session_new(m, o.n_ctx, 0, 1, &s);
    if (st == RP_OK && (int64_t)ids.n >= rp_session_n_ctx(s))
        st = rp_fail(RP_ERR_INVAL, "prompt of %zu tokens does not fit the context of %d (--ctx)", ids.n, rp_session_n_ctx(s));
    rp_generate_result r = { 0 };
    if (st == RP_OK) {
        o.gen.on_text = rp_cli_print_text;
        st = rp_generate(s, ids.ids, ids.n, &o.gen, &r);
        fputc('\n', stdout);
        fflush(stdout);
    }
    if (st != RP_OK) fprintf(stderr, "repro generate: %s\n", rp_errmsg());
    else if (!quiet)
        fprintf(stderr, "[%zu prompt tokens at %.1f tok/s; %zu generated at %.1f tok/s; stop: %s]\n", r.n_prompt,
                r.prompt_s > 0 ? r.n_prompt / r.prompt_s : 0.0, r.tokens.n, r.tokens_per_s, r.stop_reason);
    rp_generate_result_free(&r);
    rp_tokens_free(&ids);
    rp_session_free(s);
    rp_cli_model_close(m, &o);
    return rp_status_exit_code(st);
}
