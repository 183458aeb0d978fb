/* model_cli.c: shared command-line handling of `repro generate` and `repro chat` (model_cli.h). */
#include "cli/model_cli.h"
#include "assets/model_resolve.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *stops[8];

static int num(const char *opt, const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !(v >= lo && v <= hi)) {
        fprintf(stderr, "repro: %s: invalid value '%s' (expected a number in [%g, %g])\n", opt, s, lo, hi);
        return -1;
    }
    *out = v;
    return 1;
}

/* Parse a generate / chat command line. */
int rp_cli_model_args(const char *cmd, int argc, char **argv, rp_cli_model_opts *o, const char *value_flag, const char **value,
                      const char *bool_flag, int *flag, const char **model) {
    *model = NULL;
    for (int i = 1; i < argc; i++) {
        int r = rp_cli_model_opt(argc, argv, &i, o);
        if (r < 0) return -1;
        if (r) continue;
        if (!strcmp(argv[i], value_flag) && i + 1 < argc) *value = argv[++i];
        else if (bool_flag && !strcmp(argv[i], bool_flag)) *flag = 1;
        else if (argv[i][0] == '-' || *model) { fprintf(stderr, "repro %s: unexpected argument '%s'\n", cmd, argv[i]); return 1; }
        else *model = argv[i];
    }
    return *model ? 0 : 1;
}

/* Parse one shared option. */
int rp_cli_model_opt(int argc, char **argv, int *i, rp_cli_model_opts *o) {
    const char *a = argv[*i];
    static const char *with_value[] = { "--temperature", "--top-p", "--seed", "--threads", "--tokenizer", "--ctx", "--stop",
                                        "--max-tokens", "--steps", "--device", NULL };
    int known = 0;
    for (int k = 0; with_value[k]; k++) if (!strcmp(a, with_value[k])) known = 1;
    if (!known) return 0;
    if (*i + 1 >= argc) { fprintf(stderr, "repro: %s needs a value\n", a); return -1; }
    const char *v = argv[++*i];
    double d;
    if (!strcmp(a, "--temperature")) { if (num(a, v, 0, 100, &d) < 0) return -1; o->gen.temperature = (float)d; }
    else if (!strcmp(a, "--top-p")) { if (num(a, v, 0, 1, &d) < 0) return -1; o->gen.top_p = (float)d; }
    else if (!strcmp(a, "--seed")) { if (num(a, v, 0, 9007199254740992.0, &d) < 0 || d != (double)(uint64_t)d) { fprintf(stderr, "repro: --seed: integer expected\n"); return -1; } o->gen.seed = (uint64_t)d; }
    else if (!strcmp(a, "--threads")) { if (num(a, v, 1, 256, &d) < 0 || d != (int)d) return -1; o->threads = (int)d; }
    else if (!strcmp(a, "--max-tokens") || !strcmp(a, "--steps")) {
        if (num(a, v, 1, 1 << 20, &d) < 0 || d != (int)d) return -1;
        o->gen.max_tokens = (int)d;
    }
    else if (!strcmp(a, "--ctx")) { if (num(a, v, 1, 1 << 20, &d) < 0 || d != (int)d) return -1; o->n_ctx = (int)d; }
    else if (!strcmp(a, "--tokenizer")) o->tokenizer = v;
    else if (!strcmp(a, "--device")) {
        rp_backend *be;
        if (rp_cli_device_open("repro", v, &be)) return -1;
        o->device = v;
    }
    else if (!strcmp(a, "--stop")) {
        if (o->gen.n_stop >= 8) { fprintf(stderr, "repro: at most 8 --stop strings\n"); return -1; }
        stops[o->gen.n_stop++] = v;
        o->gen.stop = stops;
    }
    return 1;
}

/* Open the backend --device names and export it as REPRO_DEVICE; 2 after a message on failure. */
int rp_cli_device_open(const char *cmd, const char *value, rp_backend **out) {
    if (strcmp(value, "cpu") && strcmp(value, "ref") && strcmp(value, "cuda")) {
        fprintf(stderr, "%s: --device: invalid value '%s' (expected cpu, ref or cuda)\n", cmd, value);
        return 2;
    }
    if (rp_backend_open(value, out) != RP_OK) {   /* cuda says why: no GPU, no driver, a build without CUDA */
        fprintf(stderr, "%s: --device %s: %s\n", cmd, value, rp_errmsg());
        return 2;
    }
    setenv("REPRO_DEVICE", value, 1);
    return 0;
}

/* Stream generated text to stdout as it comes (the on_text callback of both commands). */
int rp_cli_print_text(void *arg, const char *t, size_t n) {
    (void)arg;
    fwrite(t, 1, n, stdout);
    fflush(stdout);
    return 0;
}

/* Open a model named by path or asset name. */
rp_status rp_cli_model_open(const char *name, rp_cli_model_opts *o, rp_model **out) {
    rp_model_opts mo = { .tokenizer_path = o->tokenizer };
    if (o->device && strcmp(o->device, "cpu") != 0) {   /* ref or cuda; cuda says why when there is no GPU */
        rp_status st = rp_backend_open(o->device, &mo.backend);
        if (st != RP_OK) { fprintf(stderr, "repro: --device %s: %s\n", o->device, rp_errmsg()); return st; }
    } else if (o->threads > 0) {
        rp_status st = rp_backend_cpu_new(o->threads, &o->owned_backend);
        if (st != RP_OK) { fprintf(stderr, "repro: %s\n", rp_errmsg()); return st; }
        mo.backend = o->owned_backend;
    }
    rp_status st = rp_model_load_named(name, &mo, out);
    if (st != RP_OK) {
        fprintf(stderr, "repro: cannot load model %s: %s\n", name, rp_errmsg());
        rp_backend_cpu_free(o->owned_backend);
        o->owned_backend = NULL;
    }
    return st;
}

/* Free the model and the backend the options made. */
void rp_cli_model_close(rp_model *m, rp_cli_model_opts *o) {
    rp_model_free(m);
    rp_backend_cpu_free(o->owned_backend);
    o->owned_backend = NULL;
}
