/* task.h: the in-memory form of an evaluation task, shared by every loader (tasks_*.c), the scorer
 * (score.c), the `repro eval` command and the Lua binding.
 *
 * A multiple-choice item is scored as: prompt(item) = group header + K few-shot examples + context, then
 * for each choice the log-likelihood of delim + choice given the prompt. The strings are stored without
 * the delimiter so that acc_norm can divide by the choice's own length, as lm-evaluation-harness does.
 * Invariants (kept by rp_task_add_item and checked by every loader): n_choices >= 1; every choice is
 * non-empty; 0 <= gold < n_choices; truth (MC2 only) has at least one 1 and one 0; contexts, when
 * present, has n_choices entries (WinoGrande's partial scoring: each choice has its own context and
 * all share one continuation); group < task->n_groups. */
#ifndef RP_EVAL_TASK_H
#define RP_EVAL_TASK_H
#include <stddef.h>
#include <stdint.h>
#include "util/buf.h"
#include "util/err.h"

typedef enum rp_task_kind {
    RP_TASK_MC,        /* one gold choice: acc, acc_norm */
    RP_TASK_MC2,       /* a set of true choices: normalized probability mass on them (TruthfulQA MC2) */
    RP_TASK_LASTWORD,  /* one continuation: greedy-match accuracy and perplexity (LAMBADA) */
    RP_TASK_TEXT,      /* a plain text for perplexity / bits per byte (WikiText-2, TinyStories) */
} rp_task_kind;

typedef struct rp_task_item {
    char *context;          /* the text before the answer (NULL when contexts is used) */
    char **contexts;        /* per-choice contexts (partial scoring), else NULL */
    char **choices;         /* n_choices answers, without the task's delimiter */
    int n_choices;
    int gold;               /* index of the correct choice (MC2: the first true one) */
    unsigned char *truth;   /* MC2: truth[c] = 1 when choice c is true; NULL otherwise */
    int group;              /* index into rp_task.groups (the MMLU subject); 0 for one-group tasks */
} rp_task_item;

/* A group of items sharing a prompt header and a few-shot pool. */
typedef struct rp_task_group {
    char *name;
    char *header;           /* text put before the few-shot examples (MMLU's subject line), "" if none */
    rp_task_item *shots;    /* few-shot pool (a dev/train split); NULL: draw from the task's other items */
    size_t n_shots;
    int shots_in_order;     /* take the pool's first K in order (MMLU's protocol) instead of seeded draws */
} rp_task_group;

typedef struct rp_task {
    char *name;
    rp_task_kind kind;
    char *source;           /* the file(s) it was read from, for messages and run records */
    const char *delim;      /* put between context and choice (" " for every staged task) */
    const char *shot_sep;   /* put after each few-shot example ("\n\n") */
    rp_task_item *items;
    size_t n_items, cap_items;
    rp_task_group *groups;
    size_t n_groups;
    char *text;             /* RP_TASK_TEXT: the whole text */
    size_t text_len;
} rp_task;

/* Options of rp_task_load. Zero-initialized means defaults. */
typedef struct rp_task_opts {
    const char *mirror;     /* folder laid out as <asset>/<file>; NULL: the asset registry */
    const char *split;      /* MMLU: "test" (default), "val" or "dev" */
} rp_task_opts;

/* An empty task of the given kind with one group named like the task (header ""). */
rp_status rp_task_new(const char *name, rp_task_kind kind, const char *source, rp_task **out);
/* Free a task and everything it owns; NULL is fine. */
void rp_task_free(rp_task *t);
/* Append a copy of *it (its strings are copied) after checking the invariants above; errors name where. */
rp_status rp_task_add_item(rp_task *t, const rp_task_item *it, const char *where);
/* Append a group (copies name and header); *index receives its index. */
rp_status rp_task_add_group(rp_task *t, const char *name, const char *header, int shots_in_order, size_t *index);
/* Move the items of `pool` (checked as above) into group g's few-shot pool; pool is freed. */
rp_status rp_task_set_shots(rp_task *t, size_t g, rp_task *pool);
/* The context the model sees before choice c of an item (without header and few-shot examples). */
const char *rp_task_item_context(const rp_task_item *it, int c);

/* Load a task by name through its task file (tasks_load.c): the built-ins in harness/eval/tasks/
 * (mmlu, mmlu_<subject>, mmlu_cloze, mmlu_cloze_<subject>, arc_easy, arc_challenge, hellaswag, piqa,
 * boolq, winogrande, truthfulqa_mc1, truthfulqa_mc2, lambada, wikitext2, tinystories) or <name>.json
 * in a $REPRO_TASKS folder. Errors: unknown name (listing the valid ones), a bad task file (naming
 * the file and field), missing data files, bad records. */
rp_status rp_task_load(const char *name, const rp_task_opts *opts, rp_task **out);
/* The names rp_task_load accepts (without the per-subject names), sorted, NULL-terminated; valid until
 * the next call. */
const char *const *rp_task_names(void);

/* Build the few-shot prefix of item i (header + K examples, each context + delim + gold choice +
 * shot_sep) into out (replacing its content). Examples come from the group's pool (the first K when
 * shots_in_order, else K distinct ones drawn with a generator seeded by seed and i), or, with no pool,
 * from the task's other items. K is capped by the pool size. */
rp_status rp_task_prefix(const rp_task *t, size_t i, int k, uint64_t seed, rp_buf *out);

/* A deterministic seeded order of n indices (Fisher-Yates with splitmix64); used for --limit subsets. */
void rp_task_shuffle(size_t *idx, size_t n, uint64_t seed);

/* Parsers of the staged formats from memory (what the loaders and the fuzz target call). `path` only
 * names the data in messages. Each fills a new task. */
rp_status rp_tasks_parse_mmlu_csv(const char *path, const char *data, size_t len, const char *subject,
                                  int cloze, rp_task **out);
rp_status rp_tasks_parse_hellaswag(const char *path, const char *data, size_t len, rp_task **out);
/* The generic JSON-lines format of a task file: prompt and choice templates ("{field}" is the record's
 * string field), choices from a field holding a list or from templates, gold from an integer field or
 * from a labels file (one integer per line, the records in order). */
#define RP_TASKS_MAX_CHOICE_TEMPLATES 16
typedef struct rp_tasks_jsonl {
    const char *prompt;                   /* template of the context */
    const char *choices_field;            /* field holding the list of choices, or NULL: templates */
    const char *const *choice_templates;  /* n_choice_templates templates, one per choice */
    int n_choice_templates;
    const char *gold_field;               /* integer field with the gold index, or NULL: labels */
    const char *labels_path, *labels;     /* the labels file (name for messages, content) */
    size_t labels_len;
} rp_tasks_jsonl;
rp_status rp_tasks_parse_jsonl(const char *name, const char *path, const char *data, size_t len,
                               const rp_tasks_jsonl *spec, rp_task **out);
/* {"query", "choices", "gold"} lines (ARC, BoolQ, PIQA Gauntlet copy); suffix is appended to query. */
rp_status rp_tasks_parse_query_jsonl(const char *name, const char *path, const char *data, size_t len,
                                     const char *suffix, rp_task **out);
/* PIQA authors' files: {"goal","sol1","sol2"} lines and a labels file with one 0/1 per line. */
rp_status rp_tasks_parse_piqa(const char *path, const char *data, size_t len, const char *labels_path,
                              const char *labels, size_t labels_len, rp_task **out);
rp_status rp_tasks_parse_winogrande(const char *path, const char *data, size_t len, rp_task **out);
rp_status rp_tasks_parse_lambada(const char *path, const char *data, size_t len, rp_task **out);
/* TruthfulQA MC JSON array; mc = 1 or 2. */
rp_status rp_tasks_parse_truthfulqa(const char *path, const char *data, size_t len, int mc, rp_task **out);

/* RFC 4180 CSV: parse one record starting at *pos (fields may be quoted, with "" for a quote and
 * embedded newlines; CRLF or LF ends a record). Fields are written NUL-terminated into *fields (a buffer
 * the caller frees), their starts into starts[0..max); *nf receives the count; *pos moves past the
 * record; *line is advanced by the newlines consumed. Errors name path, line and what was wrong. */
rp_status rp_csv_record(const char *path, const char *data, size_t len, size_t *pos, size_t *line,
                        rp_buf *fields, size_t *starts, int max, int *nf);

#endif
