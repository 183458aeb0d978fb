/* cmd_eval.c: `repro eval MODEL TASK [--shots K] [--limit N] [--seed S] [--json] ...`: score a model on a
 * staged task (eval/task.h) and record the run (experiment "eval", params = the command's options) with
 * one summary per figure. Output: one line per figure, "name = value ± stderr", or one JSON object.
 * The recorded run ends finished, or failed with the error message. */
#include "cli/command.h"
#include "cli/model_cli.h"
#include "cli/run_record.h"
#include "eval/score.h"
#include "util/interrupt.h"
#include <signal.h>
#include "eval/task.h"
#include "util/json.h"
#include "nn/llama.h"
#include "assets/model_resolve.h"
#include "eval/lm_model.h"
#include "util/progress.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

RP_COMMAND(eval, rp_cmd_eval, "score a model on an evaluation task (MMLU, ARC, HellaSwag, ..., perplexity)");

static volatile sig_atomic_t signals_seen;
/* First SIGINT/SIGTERM/SIGHUP: ask the evaluation to stop after the current item; a second one kills. */
static void on_signal(int sig) {
    if (signals_seen++) { signal(sig, SIG_DFL); raise(sig); }
    rp_interrupt_request();
}

static void usage(FILE *f) {
    fputs("usage: repro eval MODEL TASK [--shots K] [--limit N] [--seed S] [--json]\n"
          "                  [--ctx C] [--protocol rolling|llamacpp] [--split test|val|dev] [--db PATH] [--no-record]\n"
          "                  [--device cpu|ref|cuda]\n"
          "  MODEL  an asset name (smollm2-135m-instruct, stories260K) or a model file (GGUF, llama2.c .bin, safetensors)\n"
          "  TASK   mmlu, mmlu_<subject>, mmlu_cloze[_<subject>], arc_easy, arc_challenge, hellaswag, piqa, boolq,\n"
          "         winogrande, truthfulqa_mc1, truthfulqa_mc2, lambada, wikitext2, tinystories\n"
          "         (data through the asset registry: $REPRO_MIRROR, the cache, or a download), or any\n"
          "         task file NAME.json in a $REPRO_TASKS folder (see harness/eval/tasks/ for the format)\n"
          "  --shots K     few-shot examples per question (MMLU: the subject's first K dev questions; others: K\n"
          "                other items drawn with the seed), default 0\n"
          "  --limit N     multiple-choice tasks: N items, a seeded random subset (default: all);\n"
          "                text tasks: N chunks (llamacpp protocol) or the first N bytes (rolling)\n"
          "  --seed S      few-shot draws and the --limit subset (default 1234)\n"
          "  --ctx C       text tasks: chunk / window length in tokens (default 512)\n"
          "  --protocol P  text tasks: rolling (every token once; ppl, bits per byte) or llamacpp\n"
          "                (llama.cpp's perplexity: second half of each chunk scored; ppl ± its stderr)\n"
          "  --json        print one JSON object instead of lines\n"
          "  --device D    the backend the model runs on (default cpu; cuda: the GPU, refused with the reason when\n"
          "                there is none); recorded in the run's provenance\n"
          "  --db PATH     registry (default $REPRO_DB or results/repro.db); --no-record: record nothing\n"
          "Prints accuracy ± standard error (and acc_norm); for MC2 the true-answer probability mass; for text\n"
          "tasks perplexity. Exit: 0 ok, 2 usage, 3 bad data, 4 io, 6 db.\n", f);
}

static int parse_num(const char *opt, const char *v, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long x = v ? strtoll(v, &end, 10) : 0;
    if (!v || errno || *end || end == v || x < lo || x > hi) {
        fprintf(stderr, "repro eval: %s needs an integer in [%lld, %lld], got '%s'\n", opt, lo, hi, v ? v : "");
        return 0;
    }
    *out = x;
    return 1;
}

typedef struct prog { rp_progress *p; } prog;
static void on_progress(void *arg, size_t done, size_t total) {
    (void)total;
    rp_progress_update(((prog *)arg)->p, (double)done);
}

/* Entry point of `repro eval`. */
int rp_cmd_eval(int argc, char **argv) {
    if (rp_cli_wants_help(argc, argv)) { usage(stdout); return 0; }
    const char *pos[2] = {0}, *db_path = NULL, *split = NULL, *protocol = "rolling";
    rp_backend *backend = NULL;   /* --device: NULL is the default (cpu) */
    int npos = 0, as_json = 0, record = 1;
    long long shots = 0, limit = 0, seed = 1234, ctx = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (!strcmp(a, "--shots")) { ok = parse_num(a, v, 0, 1000, &shots); i++; }
        else if (!strcmp(a, "--limit")) { ok = parse_num(a, v, 0, 1LL << 40, &limit); i++; }
        else if (!strcmp(a, "--seed")) { ok = parse_num(a, v, 0, 1LL << 53, &seed); i++; }
        else if (!strcmp(a, "--ctx")) { ok = parse_num(a, v, 4, 1 << 20, &ctx); i++; }
        else if (!strcmp(a, "--protocol") && v) { protocol = v; i++; }
        else if (!strcmp(a, "--split") && v) { split = v; i++; }
        else if (!strcmp(a, "--db") && v) { db_path = v; i++; }
        else if (!strcmp(a, "--device") && v) { if (rp_cli_device_open("repro eval", v, &backend)) return 2; i++; }
        else if (!strcmp(a, "--json")) as_json = 1;
        else if (!strcmp(a, "--no-record")) record = 0;
        else if (a[0] == '-' && a[1]) { fprintf(stderr, "repro eval: unknown option %s (see --help)\n", a); return 2; }
        else if (npos < 2) pos[npos++] = a;
        else { fprintf(stderr, "repro eval: unexpected argument '%s'\n", a); return 2; }
        if (!ok) return 2;
    }
    if (npos != 2) { usage(stderr); return 2; }
    if (strcmp(protocol, "rolling") && strcmp(protocol, "llamacpp")) {
        fprintf(stderr, "repro eval: --protocol must be rolling or llamacpp, not '%s'\n", protocol);
        return 2;
    }
    const char *model_path = pos[0], *task_name = pos[1];

    rp_task_opts to = {.split = split};
    rp_task *task = NULL;
    rp_status st = rp_task_load(task_name, &to, &task);
    if (st != RP_OK) { fprintf(stderr, "repro eval: %s\n", rp_errmsg()); return rp_status_exit_code(st); }

    /* The run's params, as JSON. */
    rp_json *params = rp_json_new_object();
    rp_json_set(params, "model", rp_json_new_string(model_path));
    rp_json_set(params, "task", rp_json_new_string(task_name));
    rp_json_set(params, "shots", rp_json_new_number((double)shots));
    rp_json_set(params, "limit", rp_json_new_number((double)limit));
    if (split) rp_json_set(params, "split", rp_json_new_string(split));
    if (task->kind == RP_TASK_TEXT) {
        rp_json_set(params, "ctx", rp_json_new_number((double)(ctx ? ctx : 512)));
        rp_json_set(params, "protocol", rp_json_new_string(protocol));
    }
    rp_buf pj = {0};
    rp_json_write(params, &pj, 0);
    rp_json_free(params);

    rp_db *db = NULL;
    int64_t run_id = 0;
    if (record && (st = rp_run_record_begin(db_path, "eval", NULL, pj.data, seed, &db, &run_id)) != RP_OK) {
        fprintf(stderr, "repro eval: recording the run: %s\n", rp_errmsg());
        rp_buf_free(&pj);
        rp_task_free(task);
        return rp_status_exit_code(st);
    }

    signal(SIGINT, on_signal);   /* stop between items; the run is then recorded as killed */
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);   /* a closed terminal: like SIGTERM */
    rp_model *model = NULL;
    rp_eval_result res;
    rp_model_opts mo = { .backend = backend };
    st = rp_model_load_named(model_path, &mo, &model);
    if (st == RP_OK) {
        rp_lm lm = rp_model_as_lm(model);
        rp_eval_opts o = {.shots = (int)shots, .limit = (size_t)limit, .seed = (uint64_t)seed, .ctx = (int)ctx,
                          .protocol = strcmp(protocol, "llamacpp") ? RP_PPL_ROLLING : RP_PPL_LLAMACPP};
        char label[128];
        snprintf(label, sizeof label, "eval %s", task_name);
        size_t total = task->kind == RP_TASK_TEXT ? 0 : (limit && (size_t)limit < task->n_items ? (size_t)limit : task->n_items);
        prog pr = {rp_progress_new(label, (double)total, task->kind == RP_TASK_TEXT ? "chunks" : "items")};
        o.progress = on_progress;
        o.progress_arg = &pr;
        st = rp_eval_task(&lm, task, &o, &res);
        rp_progress_done(pr.p);
    }
    char err[2048] = "";
    if (st != RP_OK) snprintf(err, sizeof err, "%s", rp_errmsg());
    if (db) {
        rp_status s2 = RP_OK;
        for (int i = 0; st == RP_OK && s2 == RP_OK && i < res.n_metrics; i++)
            s2 = rp_db_summary(db, run_id, res.m[i].name, res.m[i].value, res.m[i].stderr_, (int64_t)res.n, res.m[i].direction);
        if (s2 != RP_OK) fprintf(stderr, "repro eval: recording a summary: %s\n", rp_errmsg());
        rp_run_status rs = st == RP_OK ? RP_RUN_FINISHED : st == RP_ERR_INTERRUPTED ? RP_RUN_KILLED : RP_RUN_FAILED;
        if (rp_db_run_end(db, run_id, rs, st == RP_OK ? NULL : err, NULL) != RP_OK)
            fprintf(stderr, "repro eval: ending the run: %s\n", rp_errmsg());
        rp_db_close(db);
    }
    if (st != RP_OK) {
        fprintf(stderr, "repro eval: %s\n", err);
    } else if (as_json) {
        rp_json *o = rp_json_new_object(), *m = rp_json_new_object();
        rp_json_set(o, "task", rp_json_new_string(task_name));
        rp_json_set(o, "model", rp_json_new_string(model_path));
        rp_json_set(o, "n", rp_json_new_number((double)res.n));
        rp_json_set(o, "shots", rp_json_new_number((double)shots));
        rp_json_set(o, "seed", rp_json_new_number((double)seed));
        for (int i = 0; i < res.n_metrics; i++) {
            rp_json *e = rp_json_new_object();
            rp_json_set(e, "value", rp_json_new_number(res.m[i].value));
            rp_json_set(e, "stderr", rp_json_new_number(res.m[i].stderr_));   /* NaN is written as null */
            rp_json_set(m, res.m[i].name, e);
        }
        rp_json_set(o, "metrics", m);
        rp_json_set(o, "run_id", record ? rp_json_new_number((double)run_id) : rp_json_new_null());
        rp_buf b = {0};
        rp_json_write(o, &b, 1);
        puts(b.data ? b.data : "{}");
        rp_buf_free(&b);
        rp_json_free(o);
    } else {
        printf("%s  %s  n=%zu  shots=%lld\n", task_name, model_path, res.n, shots);
        for (int i = 0; i < res.n_metrics; i++) {
            if (isnan(res.m[i].stderr_)) printf("  %-9s = %.4f\n", res.m[i].name, res.m[i].value);
            else printf("  %-9s = %.4f ± %.4f\n", res.m[i].name, res.m[i].value, res.m[i].stderr_);
        }
        if (record) printf("  run %lld recorded\n", (long long)run_id);
    }
    rp_model_free(model);
    rp_task_free(task);
    rp_buf_free(&pj);
    return st == RP_OK ? 0 : rp_status_exit_code(st);
}
