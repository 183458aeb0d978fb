/* model_cli.h: what `repro generate` and `repro chat` share: opening a model named on the command line
 * and parsing the sampling options they both accept. */
#ifndef RP_CLI_MODEL_CLI_H
#define RP_CLI_MODEL_CLI_H
#include "nn/generate.h"
#include "nn/llama.h"

typedef struct rp_cli_model_opts {
    rp_generate_opts gen;
    int threads;              /* 0: the machine's cores */
    const char *tokenizer;    /* llama2.c tokenizer path */
    int n_ctx;
    rp_backend *owned_backend;   /* set when --threads made one (free after the model) */
    const char *device;       /* --device: "cpu" (default), "ref" or "cuda" */
} rp_cli_model_opts;

/* Parse argv[*i] if it is one of the shared options (--temperature T, --top-p P, --seed S, --threads N,
 * --tokenizer PATH, --ctx N, --stop TEXT (repeatable, up to 8), --max-tokens N or its alias --steps N,
 * --device cpu|ref|cuda);
 * advances *i past its value.
 * Returns 1 if consumed, 0 if not a shared option, -1 on a bad value (message printed on stderr). */
int rp_cli_model_opt(int argc, char **argv, int *i, rp_cli_model_opts *o);
/* Parse a whole command line: the shared options, one command option with a value (value_flag, e.g.
 * "--prompt", into *value), one without (bool_flag, may be NULL, sets *flag) and the model, the one
 * positional argument. Returns 0; -1 after a bad value was printed; 1 after an unexpected argument was
 * printed or when no model was named (the caller prints its usage). */
int rp_cli_model_args(const char *cmd, int argc, char **argv, rp_cli_model_opts *o, const char *value_flag, const char **value,
                      const char *bool_flag, int *flag, const char **model);
/* Stream generated text to stdout as it comes (an rp_generate_opts on_text callback). */
int rp_cli_print_text(void *arg, const char *t, size_t n);
/* Open the model a command names: a file path (GGUF, llama2.c, safetensors) or an asset name. Errors are printed on stderr;
 * returns the status. */
rp_status rp_cli_model_open(const char *name, rp_cli_model_opts *o, rp_model **out);
/* --device VALUE of command cmd ("repro eval", ...): "cpu", "ref" or "cuda" is opened into *out and exported as
 * REPRO_DEVICE (read by model.load and by the run's provenance); a bad value, or a backend that cannot start
 * (no GPU, a build without CUDA), is printed on stderr with the reason. Returns 0, or 2 after the message. */
int rp_cli_device_open(const char *cmd, const char *value, rp_backend **out);
/* Free the model and any backend the options created. */
void rp_cli_model_close(rp_model *m, rp_cli_model_opts *o);

#endif
