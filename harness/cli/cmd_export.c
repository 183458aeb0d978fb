/* cmd_export.c: `repro export MODEL -o OUT.gguf [--type T] [--adapter CKPT ...] [--drop L,...] [--json]`: a model
 * written as a self-contained GGUF file that `repro generate` and llama.cpp load, optionally with layers dropped (as
 * the prune plugin drops them: model/gguf_layers.c, first, so an adapter healed on the pruned model fits), optionally
 * with a training checkpoint's adapter merged (the trainer built as it was trained: --method, --rank, --alpha,
 * --targets, then rp_trainer_load), and re-quantized to one type or kept in the base's types
 * (nn/train_export.c). Without an adapter the model goes through a rank-1 LoRA trainer whose B is zero, so the
 * weights are the base's exactly (unchanged rows keep their bytes in base types).
 * Invariants: OUT appears only when complete; the temporary pruned file (OUT.layers.tmp) is removed on every
 * path; exit codes: 0 written, 2 bad usage or argument, 3 malformed model or checkpoint, 4 missing file, 1 other. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "assets/model_resolve.h"
#include "cli/command.h"
#include "cli/db_cli.h"
#include "model/gguf_layers.h"
#include "model/tokenizer.h"
#include "nn/train_export.h"
#include "util/buf.h"
#include "util/json.h"

RP_COMMAND(export, rp_cmd_export, "write a model as GGUF: an adapter merged, layers dropped, re-quantized (q4_k, q6_k, ...)");

static const char EXPORT_HELP[] =
    "usage: repro export MODEL -o OUT.gguf [--type T] [--drop L,...] [--adapter CKPT [--method M] [--rank R]\n"
    "                    [--alpha A] [--targets LIST]] [--tokenizer PATH] [--threads N] [--json]\n"
    "  MODEL is a GGUF, llama2.c or safetensors path, or an asset name (repro fetch --list).\n"
    "  --type T      base (default: each tensor in the type the model stores it in), f16, f32, q4_0, q4_1,\n"
    "                q8_0, q4_k or q6_k (matrices; norms stay f32; rows that are not whole blocks fall back,\n"
    "                as llama.cpp's quantize does: q4_k/q6_k to q8_0, the others to f16; the count is printed)\n"
    "  --drop L,...  drop these 0-based layers first (as the prune plugin does; the rest are renumbered)\n"
    "  --adapter CKPT  merge a training checkpoint (trainer:save / rp_trainer_save) into the weights; the trainer\n"
    "                is rebuilt as it was trained: --method lora|qlora|full (default lora), --rank R (8),\n"
    "                --alpha A (16), --targets LIST (attn_q,attn_v), on the model after --drop (qlora writes the\n"
    "                NF4-rounded base the adapter was trained on, plus the adapter)\n"
    "  --tokenizer PATH  a llama2.c tokenizer .bin for a llama2.c model (default: found beside it)\n"
    "  --threads N   conversion threads (default: all cores); the bytes do not depend on it\n"
    "  --json        print what was written as one JSON object\n"
    "exit: 0 written, 2 bad usage or argument, 3 malformed model or checkpoint, 4 no such file, 1 other failure\n";

typedef struct export_args {
    const char *model, *out, *type, *drop, *adapter, *method, *targets, *tokenizer;
    int rank, threads, json;
    double alpha;
} export_args;

/* A whole number in [lo, hi] from s, or -1 after printing a usage error. */
static int parse_int(const char *opt, const char *s, int lo, int hi, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < lo || v > hi) { rp_cli_usage("export", "%s '%s': expected a whole number in [%d, %d]", opt, s, lo, hi); return -1; }
    *out = (int)v;
    return 0;
}

/* Parse argv; 0 on success, else the exit code (2) after the message. */
static int parse_args(int argc, char **argv, export_args *a) {
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int valued = !strcmp(s, "-o") || !strcmp(s, "--out") || !strcmp(s, "--type") || !strcmp(s, "--drop") || !strcmp(s, "--adapter") ||
                     !strcmp(s, "--method") || !strcmp(s, "--rank") || !strcmp(s, "--alpha") || !strcmp(s, "--targets") ||
                     !strcmp(s, "--tokenizer") || !strcmp(s, "--threads");
        if (!strcmp(s, "--json")) { a->json = 1; continue; }
        if (valued && !v) return rp_cli_bad_arg("export", s, "-o --out --type --drop --adapter --method --rank --alpha --targets --tokenizer --threads");
        if (!valued && s[0] == '-') return rp_cli_bad_arg("export", s, "");
        if (!valued) {
            if (a->model) return rp_cli_bad_arg("export", s, "");
            a->model = s;
            continue;
        }
        i++;
        if (!strcmp(s, "-o") || !strcmp(s, "--out")) a->out = v;
        else if (!strcmp(s, "--type")) a->type = v;
        else if (!strcmp(s, "--drop")) a->drop = v;
        else if (!strcmp(s, "--adapter")) a->adapter = v;
        else if (!strcmp(s, "--method")) a->method = v;
        else if (!strcmp(s, "--targets")) a->targets = v;
        else if (!strcmp(s, "--tokenizer")) a->tokenizer = v;
        else if (!strcmp(s, "--rank")) { if (parse_int(s, v, 1, 4096, &a->rank)) return 2; }
        else if (!strcmp(s, "--threads")) { if (parse_int(s, v, 1, 1024, &a->threads)) return 2; }
        else {
            char *end;
            a->alpha = strtod(v, &end);
            if (end == v || *end || !(a->alpha > 0)) return rp_cli_usage("export", "--alpha '%s': expected a positive number", v);
        }
    }
    if (!a->model) return rp_cli_usage("export", "name the model to export");
    if (!a->out) return rp_cli_usage("export", "name the output file with -o OUT.gguf");
    if (!a->adapter && (a->method || a->rank || a->alpha > 0 || a->targets))
        return rp_cli_usage("export", "--method, --rank, --alpha and --targets describe an --adapter checkpoint; none was given");
    return 0;
}

/* The drop mask of list "3,5" for a model of L layers (a message naming the bad entry on error). */
static rp_status parse_drop(const char *list, int L, unsigned char *drop) {
    const char *p = list;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || (*end && *end != ',') || v < 0 || v >= L)
            return rp_fail(RP_ERR_INVAL, "--drop '%s': '%.*s' is not a layer in [0, %d)", list, (int)strcspn(p, ","), p, L);
        drop[v] = 1;
        p = *end ? end + 1 : end;
    }
    return RP_OK;
}

/* The whole export, once the arguments are parsed; *rep gets the report. */
static rp_status run(const export_args *a, const char *path, const char *tmp, rp_export_report *rep, int *layers) {
    rp_export_opts eo = { .type = RP_EXPORT_BASE, .n_threads = a->threads };
    rp_train_opts to = { .method = RP_TRAIN_LORA, .B = 1, .T = 1, .lora_rank = 1, .lora_alpha = 1, .lora_targets = "attn_q",
                         .n_threads = a->threads, .adamw = { 0.9f, 0.999f, 1e-8f, 0.0f } };
    RP_TRY(rp_export_type_parse(a->type ? a->type : "base", &eo.type));
    if (a->adapter) {
        to.lora_rank = a->rank ? a->rank : 8;
        to.lora_alpha = a->alpha > 0 ? (float)a->alpha : 16.0f;
        to.lora_targets = a->targets;
        RP_TRY(rp_train_method_parse(a->method ? a->method : "lora", &to.method));
    }
    rp_model_file *f = NULL, *g = NULL;
    rp_trainer *tr = NULL;
    rp_tokenizer *tok = NULL;
    unsigned char *drop = NULL;
    rp_llama_config cfg;
    rp_status st = rp_model_file_open(path, &f);
    if (st == RP_OK) st = rp_model_file_llama_config(f, &cfg);
    if (st == RP_OK && a->drop) {
        drop = calloc((size_t)cfg.n_layer, 1);
        st = drop ? parse_drop(a->drop, cfg.n_layer, drop) : rp_fail(RP_ERR_NOMEM, "out of memory");
        if (st == RP_OK) st = rp_gguf_write_without_layers(f, drop, cfg.n_layer, tmp);
        if (st == RP_OK) st = rp_model_file_open(tmp, &g);
    }
    const rp_model_file *m = g ? g : f;
    if (st == RP_OK) st = rp_trainer_new(m, NULL, &to, &tr);
    if (st == RP_OK) *layers = rp_trainer_config(tr)->n_layer;
    if (st == RP_OK && a->adapter) {
        st = rp_trainer_load(tr, a->adapter);
        if (st != RP_OK)
            st = rp_fail_ctx(st, "merging %s into %s (%d layers%s; the trainer was rebuilt with --method %s --rank %d --targets %s): ",
                             a->adapter, path, *layers, g ? " after --drop" : "", a->method ? a->method : "lora", to.lora_rank,
                             to.lora_targets ? to.lora_targets : "attn_q,attn_v");
    }
    if (st == RP_OK && (a->tokenizer || rp_model_file_meta_type(m, "tokenizer.ggml.model") == RP_META_NONE))
        st = rp_tokenizer_for_model_file(f, a->tokenizer, rp_trainer_config(tr)->vocab, &tok);
    if (st == RP_OK) st = rp_trainer_write_gguf_opts(tr, m, tok, &eo, a->out, rep);
    rp_tokenizer_free(tok);
    rp_trainer_free(tr);
    rp_model_file_free(g);
    rp_model_file_free(f);
    free(drop);
    return st;
}

int rp_cmd_export(int argc, char **argv) {
    if (rp_cli_wants_help(argc, argv)) { fputs(EXPORT_HELP, stdout); return 0; }
    export_args a = { 0 };
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc;
    char path[4096], tmp[4200];
    rp_status st = rp_model_resolve(a.model, path, sizeof path);
    if (st != RP_OK) return rp_cli_fail("export", st);
    snprintf(tmp, sizeof tmp, "%s.layers.tmp", a.out);
    rp_export_report rep = { 0 };
    int layers = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    st = run(&a, path, tmp, &rep, &layers);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    remove(tmp);
    if (st != RP_OK) return rp_cli_fail("export", st);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    struct stat sb;
    long long bytes = stat(a.out, &sb) == 0 ? (long long)sb.st_size : -1;
    const char *type = a.type ? a.type : "base";
    if (a.json) {
        rp_buf b = { 0 };
        st = rp_buf_printf(&b, "{\"path\": ");
        if (st == RP_OK) st = rp_json_quote(&b, a.out, strlen(a.out));
        if (st == RP_OK) st = rp_buf_printf(&b, ", \"model\": ");
        if (st == RP_OK) st = rp_json_quote(&b, path, strlen(path));
        if (st == RP_OK) st = rp_buf_printf(&b, ", \"type\": \"%s\", \"layers\": %d, \"tensors\": %d, \"fallback_tensors\": %d, "
                                                "\"unchanged_tensors\": %d, \"adapter\": %s, \"bytes\": %lld, \"seconds\": %.3f}\n",
                                            type, layers, rep.n_tensors, rep.n_fallback, rep.n_copied_rows_tensors, a.adapter ? "true" : "false",
                                            bytes, secs);
        if (st == RP_OK) fputs(b.data, stdout);
        rp_buf_free(&b);
        if (st != RP_OK) return rp_cli_fail("export", st);
    } else {
        printf("wrote %s: %d layers, %d tensors (%s%s), %lld bytes in %.1f s\n", a.out, layers, rep.n_tensors, type,
               a.adapter ? ", adapter merged" : "", bytes, secs);
        if (rep.n_fallback)
            printf("  %d tensors have rows that are not whole %s blocks and were written as %s (the first: %s)\n", rep.n_fallback, type,
                   !strcmp(type, "q4_k") || !strcmp(type, "q6_k") ? "q8_0 where possible, else f16" : "f16", rep.first_fallback);
    }
    return 0;
}
