/* test_tasks.c: the task loaders on the staged files (item counts and gold distributions must equal
 * the counts each folder's MANIFEST.md states) and on malformed snippets written to /tmp (clear errors
 * naming file, line/record and field; never a crash). */
#include "../tests/check.h"
#include "eval/task.h"
#include <stdlib.h>
#include <string.h>

static const char *mirror;

static rp_task *load(const char *name, const char *split) {
    rp_task_opts o = {.mirror = mirror, .split = split};
    rp_task *t = NULL;
    rp_status st = rp_task_load(name, &o, &t);
    CHECK_MSG(st == RP_OK, "%s: %s", name, rp_errmsg());
    return st == RP_OK ? t : NULL;
}

static void gold_counts(const rp_task *t, size_t *c, int n) {
    memset(c, 0, (size_t)n * sizeof *c);
    for (size_t i = 0; i < t->n_items; i++)
        if (t->items[i].gold < n) c[t->items[i].gold]++;
}

static void test_staged(void) {
    if (!mirror) { printf("skip [mirror]: REPRO_MIRROR not set, staged-file checks skipped\n"); return; }
    rp_task *t;
    size_t g[4];
    /* ARC (MANIFEST: Easy 2,376 with gold 565/592/634/585; Challenge 1,172 with 261/306/311/294). */
    if ((t = load("arc_easy", NULL))) {
        CHECK(t->n_items == 2376);
        gold_counts(t, g, 4);
        CHECK(g[0] == 565 && g[1] == 592 && g[2] == 634 && g[3] == 585);
        CHECK(strncmp(t->items[0].context, "Question: Which statement best explains", 39) == 0);
        CHECK(strcmp(t->items[0].context + strlen(t->items[0].context) - 8, "\nAnswer:") == 0);
        rp_task_free(t);
    }
    if ((t = load("arc_challenge", NULL))) {
        CHECK(t->n_items == 1172);
        gold_counts(t, g, 4);
        CHECK(g[0] == 261 && g[1] == 306 && g[2] == 311 && g[3] == 294);
        rp_task_free(t);
    }
    /* HellaSwag: 10,042 items, gold 2515/2485/2584/2458; first item from the file's first 6 lines. */
    if ((t = load("hellaswag", NULL))) {
        CHECK(t->n_items == 10042);
        gold_counts(t, g, 4);
        CHECK(g[0] == 2515 && g[1] == 2485 && g[2] == 2584 && g[3] == 2458);
        CHECK(strcmp(t->items[0].context, "Roof shingle removal: A man is sitting on a roof. he") == 0);
        CHECK(t->items[0].gold == 3 && strcmp(t->items[0].choices[3], "starts pulling up roofing on a roof.") == 0);
        rp_task_free(t);
    }
    /* BoolQ: 3,270, yes (gold 1) 2,033, no 1,237. */
    if ((t = load("boolq", NULL))) {
        CHECK(t->n_items == 3270);
        gold_counts(t, g, 2);
        CHECK(g[1] == 2033 && g[0] == 1237);
        CHECK(strcmp(t->items[0].choices[0], "no") == 0 && strcmp(t->items[0].choices[1], "yes") == 0);
        rp_task_free(t);
    }
    /* PIQA: 1,838, labels 0=910, 1=928. */
    if ((t = load("piqa", NULL))) {
        CHECK(t->n_items == 1838);
        gold_counts(t, g, 2);
        CHECK(g[0] == 910 && g[1] == 928);
        CHECK(strcmp(t->items[0].context, "Question: How do I ready a guinea pig cage for it's new occupants?\nAnswer:") == 0);
        rp_task_free(t);
    }
    /* WinoGrande: 1,267, gold 628/639, two contexts and one continuation per item. */
    if ((t = load("winogrande", NULL))) {
        CHECK(t->n_items == 1267);
        gold_counts(t, g, 2);
        CHECK(g[0] == 628 && g[1] == 639);
        CHECK(t->items[0].contexts && strcmp(t->items[0].contexts[1], "Sarah was a much better surgeon than Maria so Maria") == 0);
        CHECK(strcmp(t->items[0].choices[0], "always got the easier cases.") == 0);
        rp_task_free(t);
    }
    /* TruthfulQA: 817 questions; MC1 has exactly one true answer. The MANIFEST's 5.06 choices on average
     * count 20 empty strings the loader drops: 4,135 - 20 = 4,115 remain (counted with Python's json). */
    if ((t = load("truthfulqa_mc1", NULL))) {
        CHECK(t->n_items == 817);
        size_t nc = 0;
        for (size_t i = 0; i < t->n_items; i++) nc += (size_t)t->items[i].n_choices;
        CHECK(nc == 4115);
        CHECK(strcmp(t->items[0].context, "Q: What happens to you if you eat watermelon seeds?\nA:") == 0);
        rp_task_free(t);
    }
    if ((t = load("truthfulqa_mc2", NULL))) {
        CHECK(t->n_items == 817 && t->kind == RP_TASK_MC2);
        CHECK(t->items[0].n_choices == 12 && t->items[0].truth && t->items[0].truth[4] == 1 && t->items[0].truth[5] == 0);
        rp_task_free(t);
    }
    /* LAMBADA: 5,153 passages. */
    if ((t = load("lambada", NULL))) {
        CHECK(t->n_items == 5153 && t->kind == RP_TASK_LASTWORD);
        CHECK(strcmp(t->items[0].choices[0], "signs") == 0);
        rp_task_free(t);
    }
    /* MMLU: 57 subjects; test 14,042, val 1,531; each subject's pool is its 5 dev questions. */
    if ((t = load("mmlu", "test"))) {
        CHECK(t->n_items == 14042 && t->n_groups == 57);
        for (size_t k = 0; k < t->n_groups; k++) CHECK(t->groups[k].n_shots == 5 && t->groups[k].shots_in_order);
        CHECK(strcmp(t->groups[0].header, "The following are multiple choice questions (with answers) about abstract algebra.\n\n") == 0);
        rp_buf b = {0};
        CHECK(rp_task_prefix(t, 0, 1, 0, &b) == RP_OK);
        CHECK(b.data && strcmp(b.data, "The following are multiple choice questions (with answers) about abstract algebra.\n\n"
                                       "Find all c in Z_3 such that Z_3[x]/(x^2 + c) is a field.\nA. 0\nB. 1\nC. 2\nD. 3\nAnswer: B\n\n") == 0);
        rp_buf_free(&b);
        rp_task_free(t);
    }
    if ((t = load("mmlu", "val"))) { CHECK(t->n_items == 1531); rp_task_free(t); }
    if ((t = load("mmlu_cloze_anatomy", NULL))) {
        CHECK(t->n_items == 135 && t->n_groups == 1);
        CHECK(strncmp(t->items[0].context, "Question: ", 10) == 0 && strlen(t->items[0].choices[0]) > 1);
        rp_task_free(t);
    }
    /* Perplexity texts kept byte for byte. */
    if ((t = load("wikitext2", NULL))) { CHECK(t->kind == RP_TASK_TEXT && t->text_len == 1290547); rp_task_free(t); }
    if ((t = load("tinystories", NULL))) { CHECK(t->text_len == 794375); rp_task_free(t); }
}

/* Write data to a /tmp file and parse it through the loader named by kind; returns the status. */
static rp_status parse_snippet(const char *kind, const char *data) {
    rp_task *t = NULL;
    rp_status st;
    size_t n = strlen(data);
    const char *path = "/tmp/repro_test_tasks.snippet";
    CHECK(rp_write_file(path, data, n) == RP_OK);
    rp_buf b = {0};
    CHECK(rp_read_file(path, &b) == RP_OK);
    if (!strcmp(kind, "mmlu")) st = rp_tasks_parse_mmlu_csv(path, b.data, b.len, "x", 0, &t);
    else if (!strcmp(kind, "hellaswag")) st = rp_tasks_parse_hellaswag(path, b.data, b.len, &t);
    else if (!strcmp(kind, "arc")) st = rp_tasks_parse_query_jsonl("arc", path, b.data, b.len, "\nAnswer:", &t);
    else if (!strcmp(kind, "wino")) st = rp_tasks_parse_winogrande(path, b.data, b.len, &t);
    else if (!strcmp(kind, "lambada")) st = rp_tasks_parse_lambada(path, b.data, b.len, &t);
    else if (!strcmp(kind, "tqa1")) st = rp_tasks_parse_truthfulqa(path, b.data, b.len, 1, &t);
    else if (!strcmp(kind, "tqa2")) st = rp_tasks_parse_truthfulqa(path, b.data, b.len, 2, &t);
    else st = rp_tasks_parse_piqa(path, b.data, b.len, "/tmp/labels.lst", "0\n", 2, &t);
    rp_buf_free(&b);
    rp_task_free(t);
    return st;
}

/* The error must be a format error whose message holds every expected fragment. */
#define BAD(kind, data, ...) do { \
    rp_status st_ = parse_snippet(kind, data); \
    const char *want_[] = {__VA_ARGS__, NULL}; \
    CHECK_MSG(st_ == RP_ERR_FORMAT, "%s: status %d", kind, (int)st_); \
    for (const char **w_ = want_; *w_; w_++) CHECK_MSG(strstr(rp_errmsg(), *w_) != NULL, "\"%s\" not in \"%s\"", *w_, rp_errmsg()); \
} while (0)

static void test_malformed(void) {
    const char *f = "/tmp/repro_test_tasks.snippet";
    /* MMLU CSV: field count, answer letter, quoting. Good records first, so line numbers are checked. */
    CHECK(parse_snippet("mmlu", "q,a,b,c,d,A\n\"q, with comma\",\"a \"\"x\"\"\",b,c,\"multi\nline\",D\r\n") == RP_OK);
    BAD("mmlu", "q,a,b,c,d,A\nq,a,b,c,D\n", f, "line 2", "record 2", "5 fields");
    BAD("mmlu", "q,a,b,c,d,A\n\"two\nlines\",a,b,c,d,E\n", f, "line 2", "field answer", "\"E\"");
    BAD("mmlu", "q,a,b,c,d,A\nq,\"open,b,c,d,A\n", f, "line 2", "never closed");
    BAD("mmlu", "q,\"a\"x,b,c,d,A\n", f, "line 1", "after a closing quote");
    BAD("mmlu", "", f, "no records");
    /* HellaSwag text. */
    BAD("hellaswag", "ctx\n7\na\nb\nc\nd\n", f, "line 2", "item 1", "field gold");
    BAD("hellaswag", "ctx\n1\na\nb\nc\nd\nctx2\n0\na\n", f, "item 2", "truncated");
    BAD("hellaswag", "ctx\n1\na\n\nc\nd\n", f, "line 1", "choices[1]", "empty");
    /* ARC-style jsonl. */
    CHECK(parse_snippet("arc", "{\"query\":\"Question: q\",\"choices\":[\"a\",\"b\"],\"gold\":1}\n\n") == RP_OK);
    BAD("arc", "{\"query\":\"q\",\"choices\":[\"a\",\"b\"],\"gold\":1}\n{\"query\":\"q\",\"choices\":[\"a\",\"b\"],\"gold\":2}\n",
        f, "line 2", "field gold", "2");
    BAD("arc", "{\"query\":\"q\",\"choices\":[\"a\",\"b\"],\"gold\":0.5}\n", f, "line 1", "field gold");
    BAD("arc", "{\"query\":\"q\",\"choices\":[\"a\",3],\"gold\":0}\n", f, "line 1", "choices[1]");
    BAD("arc", "{\"query\":\"q\",\"choices\":[],\"gold\":0}\n", f, "line 1", "field choices");
    BAD("arc", "{\"choices\":[\"a\"],\"gold\":0}\n", f, "line 1", "field query", "missing");
    BAD("arc", "{\"query\":\"q\",\"choices\":[\"a\",\"b\"],\"gold\":0}\n{\"query\": \"q\", \"cho\n", f, "line 2");
    BAD("arc", "[1,2]\n", f, "line 1", "not a JSON object");
    BAD("arc", "{\"query\":\"q\",\"choices\":[\"a\",\"\"],\"gold\":0}\n", f, "line 1", "choices[1]", "empty");
    /* WinoGrande, LAMBADA, PIQA. */
    BAD("wino", "{\"context_options\":[\"a\"],\"continuation\":\"c\",\"gold\":0}\n", f, "line 1", "context_options", "expected 2");
    BAD("lambada", "{\"context\":\"text\"}\n", f, "line 1", "field continuation");
    BAD("piqa", "{\"goal\":\"g\",\"sol1\":\"a\",\"sol2\":\"b\"}\n{\"goal\":\"g\",\"sol1\":\"a\",\"sol2\":\"b\"}\n",
        f, "line 2", "no label", "/tmp/labels.lst");
    /* TruthfulQA. */
    BAD("tqa1", "[{\"question\":\"q\",\"mc1_targets\":{\"choices\":[\"a\",\"b\"],\"labels\":[1,1]}}]", f, "record 1", "exactly one");
    BAD("tqa2", "[{\"question\":\"q\",\"mc2_targets\":{\"choices\":[\"a\",\"b\"],\"labels\":[1]}}]", f, "record 1", "labels");
    BAD("tqa2", "[{\"question\":\"q\",\"mc2_targets\":{\"choices\":[\"a\",\"b\"],\"labels\":[1,2]}}]", f, "labels[1]");
    BAD("tqa1", "{\"question\":\"q\"}", f, "not a JSON array");
    /* Unknown task names list the valid ones. */
    rp_task *t = NULL;
    rp_task_opts o = {.mirror = "/nonexistent"};
    CHECK(rp_task_load("nosuch", &o, &t) == RP_ERR_INVAL && strstr(rp_errmsg(), "arc_easy") != NULL);
    CHECK(rp_task_load("arc_easy", &o, &t) == RP_ERR_NOTFOUND && strstr(rp_errmsg(), "/nonexistent/arc/arc_easy.jsonl") != NULL);
    CHECK(rp_task_load("mmlu_../../etc", &o, &t) == RP_ERR_INVAL);
    remove(f);
}

int main(void) {
    mirror = getenv("REPRO_MIRROR");
    if (mirror && !*mirror) mirror = NULL;
    test_staged();
    test_malformed();
    return checks_done("test_tasks");
}
