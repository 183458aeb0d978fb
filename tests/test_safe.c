/* test_safe.c: SAFE's pure parts against independent answers: F1@K against the paper's worked cases
 * (App. D.2-D.3) and closed forms; sentence splitting and every step's output parser on messy text;
 * LongFact and FActScore loaders against the counts stated by the paper and the data MANIFEST. */
#define _GNU_SOURCE
#include "tests/check.h"
#include "plugins/safe/safe_text.h"
#include "plugins/safe/safe_data.h"
#include "plugins/safe/safe.h"
#include <unistd.h>
#include <sys/stat.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void test_f1k_known_answers(void) {
    /* one supported fact → 2/(K+1) */
    long ks[] = {1, 2, 48, 64, 84, 100, 178, 1000};
    for (size_t i = 0; i < sizeof ks / sizeof *ks; i++)
        CHECK_NEAR(rp_safe_f1k(1, 0, ks[i]), 2.0 / (double)(ks[i] + 1), 1e-12);
    /* 100 supported, none not supported: 1 when K ≤ 100, else 200/(K+100) */
    for (long k = 1; k <= 400; k += 7) {
        double want = k <= 100 ? 1.0 : 200.0 / (double)(k + 100);
        CHECK_NEAR(rp_safe_f1k(100, 0, k), want, 1e-12);
    }
    CHECK_NEAR(rp_safe_f1k(100, 0, 64), 1.0, 1e-12);
    CHECK_NEAR(rp_safe_f1k(100, 0, 178), 200.0 / 278.0, 1e-12);
    /* only not-supported facts → 0 */
    CHECK(rp_safe_f1k(0, 5, 64) == 0.0);
    CHECK(rp_safe_f1k(0, 0, 178) == 0.0);
    /* F1@1 = 2P/(P+1) for any response with S ≥ 1 */
    for (long s = 1; s <= 30; s += 3)
        for (long ns = 0; ns <= 30; ns += 4) {
            double p = (double)s / (double)(s + ns);
            CHECK_NEAR(rp_safe_f1k(s, ns, 1), 2 * p / (p + 1), 1e-12);
        }
    /* K·F1@K → 2S as K → ∞ */
    for (long s = 1; s <= 50; s += 7) {
        long k = 100000000;
        CHECK_NEAR((double)k * rp_safe_f1k(s, 3, k), 2.0 * (double)s, 1e-4 * (double)s);
    }
    /* a worked case by hand: S=30, NS=10, K=64: P=0.75, R=30/64 → 2PR/(P+R) = 0.576923... */
    CHECK_NEAR(rp_safe_f1k(30, 10, 64), 2 * 0.75 * (30.0 / 64) / (0.75 + 30.0 / 64), 1e-12);
    CHECK_NEAR(rp_safe_f1k(30, 10, 64), 15.0 / 26.0, 1e-12);
    CHECK(isnan(rp_safe_f1k(3, 1, 0)));
    CHECK(isnan(rp_safe_precision(0, 0)));
    CHECK_NEAR(rp_safe_recall_k(200, 178), 1.0, 0);
}

static void test_f1k_average(void) {
    /* per-response then averaged: two responses (S,NS) = (64,0) and (0,10) at K=64 → mean F1 = 0.5,
     * whereas the ratio of means would give P=64/74, R=0.5 → 0.6336 */
    rp_safe_counts c[] = {{64, 0, 2}, {0, 10, 0}, {0, 0, 5}};
    rp_safe_summary s;
    CHECK(rp_safe_summarize(c, 3, 64, &s) == RP_OK);
    CHECK_NEAR(s.f1, (1.0 + 0 + 0) / 3, 1e-12);
    CHECK(s.n_prec == 2);
    CHECK_NEAR(s.prec, (1.0 + 0.0) / 2, 1e-12);
    CHECK_NEAR(s.s, 64.0 / 3, 1e-12);
    CHECK_NEAR(s.ir, 7.0 / 3, 1e-12);
    CHECK_NEAR(s.recall, 1.0 / 3, 1e-12);
    CHECK(rp_safe_summarize(c, 3, 0, &s) != RP_OK);
    rp_safe_counts bad = {-1, 0, 0};
    CHECK(rp_safe_summarize(&bad, 1, 64, &s) != RP_OK);
    CHECK(rp_safe_summarize(c, 0, 64, &s) == RP_OK && isnan(s.f1));
}

static int list_eq(const rp_safe_strlist *l, const char *const *want, size_t n) {
    if (l->n != n) {
        fprintf(stderr, "  got %zu items, want %zu:\n", l->n, n);
        for (size_t i = 0; i < l->n; i++) fprintf(stderr, "   [%s]\n", l->items[i]);
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        if (strcmp(l->items[i], want[i]) != 0) { fprintf(stderr, "  item %zu: [%s] vs [%s]\n", i, l->items[i], want[i]); return 0; }
    return 1;
}

static void test_sentences(void) {
    rp_safe_strlist l = {0};
    const char *t = "Sure, here is an answer. J. R. R. Tolkien wrote The Hobbit in 1937. Dr. Smith met Mr. Jones "
                    "in the U.S. in Jan. 1990! Was it 3.5 km away? Yes.\n\nThe novel (a fantasy) sold well.\n"
                    "\"Quoted.\" Then more.";
    CHECK(rp_safe_split_sentences(t, strlen(t), 1, &l) == RP_OK);
    const char *want[] = {"J. R. R. Tolkien wrote The Hobbit in 1937.",
                          "Dr. Smith met Mr. Jones in the U.S. in Jan. 1990!", "Was it 3.5 km away?", "Yes.",
                          "The novel (a fantasy) sold well.", "\"Quoted.\"", "Then more."};
    CHECK(list_eq(&l, want, sizeof want / sizeof *want));
    rp_safe_strlist_free(&l);
    const char *t2 = "Here are some facts about Apollo 13. It launched in 1970. Please verify them.";
    CHECK(rp_safe_split_sentences(t2, strlen(t2), 1, &l) == RP_OK);
    const char *want2[] = {"It launched in 1970."};
    CHECK(list_eq(&l, want2, 1));
    rp_safe_strlist_free(&l);
    CHECK(rp_safe_split_sentences(t2, strlen(t2), 0, &l) == RP_OK);
    CHECK(l.n == 3);
    rp_safe_strlist_free(&l);
    /* "Here are" only counts as boilerplate in the first sentence */
    const char *t3 = "Apollo 13 failed. Here are the crew members.";
    CHECK(rp_safe_split_sentences(t3, strlen(t3), 1, &l) == RP_OK);
    CHECK(l.n == 2);
    rp_safe_strlist_free(&l);
    CHECK(rp_safe_split_sentences("", 0, 1, &l) == RP_OK && l.n == 0);
    CHECK(rp_safe_split_sentences(" \n\n \n", 5, 1, &l) == RP_OK && l.n == 0);
    rp_safe_strlist_free(&l);
}

static void test_parse_facts(void) {
    rp_safe_strlist l = {0};
    const char *t = "Here are the facts:\n- Apollo 13 was a mission.\n  - It launched in 1970.\n-  \n"
                    "- The crew returned\n   safely to Earth.\nThat is all.\n- Not part of the list.";
    CHECK(rp_safe_parse_facts(t, strlen(t), &l) == RP_OK);
    const char *want[] = {"Apollo 13 was a mission.", "It launched in 1970.", "The crew returned safely to Earth."};
    CHECK(list_eq(&l, want, 3));
    rp_safe_strlist_free(&l);
    const char *t2 = "* One fact.\r\n* Two facts.\r\n";
    CHECK(rp_safe_parse_facts(t2, strlen(t2), &l) == RP_OK);
    const char *want2[] = {"One fact.", "Two facts."};
    CHECK(list_eq(&l, want2, 2));
    rp_safe_strlist_free(&l);
    /* "- " wins over "* " when both appear */
    const char *t3 = "* star\n- dash\n";
    CHECK(rp_safe_parse_facts(t3, strlen(t3), &l) == RP_OK && l.n == 1 && strcmp(l.items[0], "dash") == 0);
    rp_safe_strlist_free(&l);
    const char *t4 = "no list at all -here\nnumbered 1.5 km";
    CHECK(rp_safe_parse_facts(t4, strlen(t4), &l) == RP_OK && l.n == 0);
    rp_safe_strlist_free(&l);
    /* a numbered list only when there are no bullets; "8." alone (cut off) is not an item */
    const char *t5 = "1. He was an American.\n2) He was a composer.\n8.";
    CHECK(rp_safe_parse_facts(t5, strlen(t5), &l) == RP_OK && l.n == 2 && strcmp(l.items[1], "He was a composer.") == 0);
    rp_safe_strlist_free(&l);
    const char *t6 = "1. numbered\n- dash wins\n";
    CHECK(rp_safe_parse_facts(t6, strlen(t6), &l) == RP_OK && l.n == 1 && strcmp(l.items[0], "dash wins") == 0);
    rp_safe_strlist_free(&l);
}

static void test_parse_code_block(void) {
    rp_buf b = {0};
    int found;
    const char *t = "Reasoning...\n```\n  Neil Armstrong walked on the Moon.  \n```\nand ```second```";
    CHECK(rp_safe_parse_code_block(t, strlen(t), &b, &found) == RP_OK && found);
    CHECK(found && strcmp(b.data, "Neil Armstrong walked on the Moon.") == 0);
    const char *t2 = "```text\nApollo 13 launch date\n```";
    CHECK(rp_safe_parse_code_block(t2, strlen(t2), &b, &found) == RP_OK && found && strcmp(b.data, "Apollo 13 launch date") == 0);
    const char *t3 = "query: ```Apollo 13 crew```";
    CHECK(rp_safe_parse_code_block(t3, strlen(t3), &b, &found) == RP_OK && found && strcmp(b.data, "Apollo 13 crew") == 0);
    const char *t4 = "```Apollo\n```";   /* a one-word block with no body is the content itself */
    CHECK(rp_safe_parse_code_block(t4, strlen(t4), &b, &found) == RP_OK && found && strcmp(b.data, "Apollo") == 0);
    const char *t5 = "```\nunclosed block";
    CHECK(rp_safe_parse_code_block(t5, strlen(t5), &b, &found) == RP_OK && !found);
    CHECK(rp_safe_parse_code_block("``````", 6, &b, &found) == RP_OK && !found);
    const char *t6 = "When?\n```\n```\n\nThe query is:\n```\nApollo 13 launch date\n```";   /* an empty block first */
    CHECK(rp_safe_parse_code_block(t6, strlen(t6), &b, &found) == RP_OK && found && strcmp(b.data, "Apollo 13 launch date") == 0);
    CHECK(rp_safe_parse_code_block("``", 2, &b, &found) == RP_OK && !found);
    rp_buf_free(&b);
}

static void test_parse_labels(void) {
    struct { const char *t; rp_safe_label want; } rel[] = {
        {"The subjects are related. [Foo]", RP_SAFE_RELEVANT},
        {"... so the answer is [Not Foo].", RP_SAFE_IRRELEVANT},
        {"[ Not  Foo. ]", RP_SAFE_IRRELEVANT},
        {"[\"Foo\"]", RP_SAFE_RELEVANT},
        {"[foo]", RP_SAFE_UNPARSED},           /* exact label match only */
        {"[Foo Bar] then [Foo]", RP_SAFE_UNPARSED},  /* the first bracket decides */
        {"Foo", RP_SAFE_UNPARSED},
        {"[Foo", RP_SAFE_UNPARSED},
        {"", RP_SAFE_UNPARSED},
    };
    for (size_t i = 0; i < sizeof rel / sizeof *rel; i++)
        CHECK_MSG(rp_safe_parse_relevance(rel[i].t, strlen(rel[i].t)) == rel[i].want, "%s", rel[i].t);
    struct { const char *t; rp_safe_label want; } rat[] = {
        {"Summary... [Supported]", RP_SAFE_SUPPORTED},
        {"[Not Supported]", RP_SAFE_NOT_SUPPORTED},
        {"[Not-Supported]", RP_SAFE_UNPARSED},   /* '-' stripped joins the words: "NotSupported" */
        {"[Supported.]", RP_SAFE_SUPPORTED},
        {"[supported]", RP_SAFE_UNPARSED},
        {"[Partially Supported]", RP_SAFE_UNPARSED},
    };
    for (size_t i = 0; i < sizeof rat / sizeof *rat; i++)
        CHECK_MSG(rp_safe_parse_rating(rat[i].t, strlen(rat[i].t)) == rat[i].want, "%s", rat[i].t);
    rp_buf b = {0};
    int found;
    CHECK(rp_safe_parse_bracket("x [] y", 6, &b, &found) == RP_OK && found && b.len == 0);
    rp_buf_free(&b);
}

static void test_prompts(void) {
    rp_buf b = {0};
    const char *f1[] = {"Apollo 13 was a mission.", "Apollo 13 launched in 1970."};
    rp_safe_demo d = {"Apollo 13 was a mission launched in 1970.", f1, 2};
    CHECK(rp_safe_prompt_split(&d, 1, "The Hobbit appeared in 1937.", &b) == RP_OK);
    CHECK(strstr(b.data, "- Apollo 13 launched in 1970.\n") != NULL);
    const char *tail = "The Hobbit appeared in 1937.\n";
    CHECK(b.len > strlen(tail) && strcmp(b.data + b.len - strlen(tail), tail) == 0);
    CHECK(rp_safe_prompt_query(NULL, "X is Y.", &b) == RP_OK && strstr(b.data, "KNOWLEDGE:\nN/A\n"));
    CHECK(rp_safe_prompt_rate("k1\nk2", "X is Y.", &b) == RP_OK && strstr(b.data, "[Not Supported]") && strstr(b.data, "k1\nk2"));
    CHECK(rp_safe_prompt_relevance("Q?", "R.", "S.", &b) == RP_OK && strstr(b.data, "[Not Foo]") && strstr(b.data, "STATEMENT: S."));
    CHECK(rp_safe_prompt_revise("He won.", "Bob ran. He won.", &b) == RP_OK && strstr(b.data, "STATEMENT: He won.\nRESPONSE: Bob ran. He won."));
    rp_buf_free(&b);
}


static const char *mirror_file(char *buf, size_t n, const char *rel) {
    const char *m = getenv("REPRO_MIRROR");
    if (!m || !*m) return NULL;
    snprintf(buf, n, "%s/longfact/%s", m, rel);
    FILE *f = fopen(buf, "rb");
    if (!f) return NULL;
    fclose(f);
    return buf;
}

/* LongFact counts stated by the paper (Sec. 2, App. B.1) and the spec: 38 topics × 30 prompts per subset. */
static void test_longfact(void) {
    char dir[4096];
    if (!mirror_file(dir, sizeof dir, "MANIFEST.md")) { printf("skip [mirror]: REPRO_MIRROR/longfact not available\n"); return; }
    dir[strlen(dir) - strlen("/MANIFEST.md")] = 0;
    const char *subsets[] = {"objects", "concepts"};
    rp_safe_prompts sets[2] = {{0}};
    for (int s = 0; s < 2; s++) {
        rp_safe_prompts *p = &sets[s];
        rp_status st = rp_safe_longfact_load(dir, subsets[s], p);
        CHECK_MSG(st == RP_OK, "%s", rp_errmsg());
        CHECK(p->n == 1140);
        CHECK(rp_safe_prompts_topics(p) == 38);
        /* 30 per topic, lines 0..29 */
        for (size_t i = 0; i < p->n; i++) {
            size_t same = 0;
            for (size_t j = 0; j < p->n; j++) same += strcmp(p->items[i].topic, p->items[j].topic) == 0;
            if (same != 30 || p->items[i].line < 0 || p->items[i].line > 29) { CHECK_MSG(0, "topic %s has %zu prompts", p->items[i].topic, same); break; }
        }
    }
    CHECK(sets[0].n + sets[1].n == 2280);
    /* the spec: 9 cross-topic duplicate prompts in Objects, 1,131 distinct */
    size_t distinct = 0;
    for (size_t i = 0; i < sets[0].n; i++) {
        size_t j = 0;
        while (j < i && strcmp(sets[0].items[i].prompt, sets[0].items[j].prompt) != 0) j++;
        distinct += j == i;
    }
    CHECK_MSG(distinct == 1131, "%zu distinct", distinct);
    /* the 250-prompt benchmark set: all from Objects, each equal to its (topic, line) there, 38 topics */
    char path[4096];
    rp_safe_prompts b = {0};
    CHECK(mirror_file(path, sizeof path, "longfact-objects_benchmark250.jsonl") != NULL);
    CHECK_MSG(rp_safe_benchmark_load(path, &b) == RP_OK, "%s", rp_errmsg());
    CHECK(b.n == 250);
    CHECK(rp_safe_prompts_topics(&b) == 38);
    size_t matched = 0;
    for (size_t i = 0; i < b.n; i++)
        for (size_t j = 0; j < sets[0].n; j++)
            if (strcmp(sets[0].items[j].topic, b.items[i].topic) == 0 && sets[0].items[j].line == b.items[i].line) {
                matched += strcmp(sets[0].items[j].prompt, b.items[i].prompt) == 0;
                break;
            }
    CHECK(matched == 250);
    rp_safe_prompts_free(&b);
    CHECK(b.n == 0);
    CHECK(rp_safe_longfact_load(dir, "nonsense", &b) == RP_ERR_INVAL);
    CHECK(rp_safe_longfact_load("/nonexistent", "objects", &b) != RP_OK);
    rp_safe_prompts_free(&b);
    for (int s = 0; s < 2; s++) rp_safe_prompts_free(&sets[s]);
}

/* FActScore human labels: counts from the data MANIFEST; per-pair means from the spec's regression targets
 * (mean over pairs with ≥ 1 human label; precision over pairs with S+NS > 0). */
static void test_factscore(void) {
    struct { const char *file; size_t annotated, facts; long s, ns, ir; double ms, mns, prec, f64, f178; } want[] = {
        {"ChatGPT.jsonl", 157, 5426, 3194, 1692, 540, 20.3, 10.8, 62.3, 41.5, 19.2},
        {"InstructGPT.jsonl", 182, 4726, 2100, 1971, 655, 11.6, 10.9, 47.4, 25.6, 11.3},
        {"PerplexityAI.jsonl", 166, 5888, 4812, 756, 320, 30.5, 4.8, 84.0, 58.6, 27.9},
    };
    size_t total = 0;
    for (int w = 0; w < 3; w++) {
        char rel[256], path[4096];
        snprintf(rel, sizeof rel, "factscore/labeled_data/%s", want[w].file);
        if (!mirror_file(path, sizeof path, rel)) { printf("skip [mirror]: %s not in REPRO_MIRROR\n", rel); return; }
        rp_safe_factscore f = {0};
        CHECK_MSG(rp_safe_factscore_load(path, &f) == RP_OK, "%s", rp_errmsg());
        CHECK(f.n == 183);
        size_t annotated = 0, facts = 0;
        long s = 0, ns = 0, ir = 0;
        rp_safe_counts *c = calloc(f.n, sizeof *c);
        size_t nc = 0;
        for (size_t i = 0; i < f.n; i++) {
            annotated += !f.items[i].abstained;
            facts += f.items[i].n_facts;
            rp_safe_counts k = rp_safe_fs_counts(&f.items[i]);
            s += k.s; ns += k.ns; ir += k.ir;
            if (f.items[i].n_facts > 0) c[nc++] = k;
        }
        CHECK_MSG(annotated == want[w].annotated, "%s: %zu annotated", want[w].file, annotated);
        CHECK_MSG(facts == want[w].facts, "%s: %zu facts", want[w].file, facts);
        CHECK(s == want[w].s && ns == want[w].ns && ir == want[w].ir);
        rp_safe_summary m64, m178;
        CHECK(rp_safe_summarize(c, nc, 64, &m64) == RP_OK && rp_safe_summarize(c, nc, 178, &m178) == RP_OK);
        CHECK_NEAR(m64.s, want[w].ms, 0.05);
        CHECK_NEAR(m64.ns, want[w].mns, 0.05);
        CHECK_NEAR(100 * m64.prec, want[w].prec, 0.05);
        CHECK_NEAR(100 * m64.f1, want[w].f64, 0.05);
        CHECK_NEAR(100 * m178.f1, want[w].f178, 0.05);
        free(c);
        total += facts;
        rp_safe_factscore_free(&f);
    }
    CHECK(total == 16040);
}

static void test_demos(void) {
    char path[4096];
    if (!mirror_file(path, sizeof path, "factscore/demos/demons.json")) { printf("skip [mirror]: demons.json not in REPRO_MIRROR\n"); return; }
    rp_safe_demos d = {0};
    CHECK_MSG(rp_safe_demos_load(path, &d) == RP_OK, "%s", rp_errmsg());
    CHECK(d.n == 21);
    CHECK(d.n > 0 && strncmp(d.items[0].sentence, "He made his acting debut", 24) == 0 && d.items[0].n_facts == 6);
    size_t idx[8], n = 0;
    /* a target sentence equal to demo 10's sentence must pick demo 10 as the nearest */
    CHECK(d.n > 10 && rp_safe_demos_pick(&d, d.items[10].sentence, 7, 1, idx, &n) == RP_OK);
    CHECK(n == 8 && idx[0] == 0 && idx[6] == 6 && idx[7] == 10);
    rp_safe_demos_free(&d);
}

/* ---- the pipeline over scripted backends ----
 * The fake rater answers from the prompt's own text, so every expected count below follows from the input:
 * split: one fact per clause joined by " and "; a sentence containing "messy" is answered without bullets on
 * the first two attempts. revise: the statement in a code block (never, for "vague"). relevance: [Not Foo] for
 * "banana", no label at all for "confuse" (→ treated relevant), else [Foo]. query: a code block. rate:
 * [Supported] when the knowledge holds "Paris", [Not Supported] otherwise, garbage for "garble". */
typedef struct fake { long calls, fail_after; int fail_first_n; } fake;

static const char *after(const char *p, const char *tag, char *out, size_t n) {
    const char *s = strstr(p, tag);
    if (!s) { out[0] = 0; return out; }
    s += strlen(tag);
    size_t i = 0;
    while (s[i] && s[i] != '\n' && i + 1 < n) { out[i] = s[i]; i++; }
    out[i] = 0;
    return out;
}

static const char *last_line_after(const char *p, const char *tag, char *out, size_t n) {
    const char *s = NULL, *x = p;
    while ((x = strstr(x, tag))) { s = x; x += strlen(tag); }
    if (!s) { out[0] = 0; return out; }
    return after(s, tag, out, n);
}

/* The fake rater's answer to one prompt on its attempt-th try. */
static void fake_answer(const char *p, int attempt, rp_buf *out) {
    char st[512], kn[2048];
    rp_buf_clear(out);
    if (strstr(p, "atomic facts")) {
        last_line_after(p, "atomic facts: ", st, sizeof st);
        if (strstr(st, "messy") && attempt < 2) { rp_buf_puts(out, "I cannot list these."); }
        else {
            char *save = NULL, tmp[512];
            snprintf(tmp, sizeof tmp, "%s", st);
            rp_buf_puts(out, "Sure:\n");
            for (char *tok = strtok_r(tmp, "&", &save); tok; tok = strtok_r(NULL, "&", &save))
                rp_buf_printf(out, "- %s\n", tok[0] == ' ' ? tok + 1 : tok);
        }
    } else if (strstr(p, "Rewrite the STATEMENT")) {
        last_line_after(p, "STATEMENT: ", st, sizeof st);
        if (strstr(st, "vague")) rp_buf_puts(out, "no block here");
        else rp_buf_printf(out, "Reasoning.\n```\n%s\n```", st);
    } else if (strstr(p, "\"Foo\"")) {
        last_line_after(p, "STATEMENT: ", st, sizeof st);
        if (strcasestr(st, "banana")) rp_buf_puts(out, "Unrelated. [Not Foo]");
        else if (strstr(st, "confuse")) rp_buf_puts(out, "I am not sure.");
        else rp_buf_puts(out, "Related. [Foo]");
    } else if (strstr(p, "ONE Google search query")) {
        after(p, "STATEMENT:\n", st, sizeof st);
        if (strstr(st, "noquery")) { rp_buf_puts(out, "I would search for it."); return; }
        rp_buf_printf(out, "```\n%s q%u\n```", st, (unsigned)(strlen(p) % 3));
    } else if (strstr(p, "[Supported] or")) {
        after(p, "STATEMENT:\n", st, sizeof st);
        const char *k = strstr(p, "KNOWLEDGE:\n");
        snprintf(kn, sizeof kn, "%s", k ? k : "");
        char *e = strstr(kn, "STATEMENT:");
        if (e) *e = 0;
        if (strstr(st, "garble")) rp_buf_puts(out, "[Maybe]");
        else rp_buf_puts(out, strstr(kn, "Paris") ? "So [Supported]" : "So [Not Supported]");
    } else rp_buf_puts(out, "??");
}

static rp_status fake_complete(void *ctx, rp_safe_call *calls, size_t n) {
    fake *f = ctx;
    for (size_t i = 0; i < n; i++) {
        rp_safe_call *c = &calls[i];
        if (f->fail_after >= 0 && f->calls >= f->fail_after) return rp_fail(RP_ERR_INTERRUPTED, "fake: interrupted");
        f->calls++;
        if (f->fail_first_n > 0) { f->fail_first_n--; c->st = RP_ERR_NET; snprintf(c->error, sizeof c->error, "HTTP 500"); continue; }
        fake_answer(c->prompt, c->attempt, &c->text);
        c->prompt_tokens = (long)strlen(c->prompt) / 4;
        c->completion_tokens = (long)c->text.len / 4;
        c->cost = 1e-6 * (double)(c->prompt_tokens + 2 * c->completion_tokens);
        c->st = RP_OK;
    }
    return RP_OK;
}

/* The fake search's answer to one query. */
static void fake_result(const char *q, rp_buf *out) {
    rp_buf_clear(out);
    rp_buf_printf(out, "result about %s", strstr(q, "Paris") ? "Paris, France" : "something else");
}

static rp_status fake_search(void *ctx, rp_safe_query *qs, size_t n) {
    long *count = ctx;
    for (size_t i = 0; i < n; i++) {
        (*count)++;
        fake_result(qs[i].q, &qs[i].text);
        qs[i].cost = 0.001;
        qs[i].st = RP_OK;
    }
    return RP_OK;
}

static void setup_fakes(fake *f, long *nsearch, rp_safe_llm *llm, rp_safe_search *srch) {
    memset(llm, 0, sizeof *llm);
    memset(srch, 0, sizeof *srch);
    llm->ctx = f; llm->complete = fake_complete;
    snprintf(llm->name, sizeof llm->name, "fake:rater");
    srch->ctx = nsearch; srch->search = fake_search;
    snprintf(srch->name, sizeof srch->name, "fake:search");
}

static void free_results(rp_safe_result *r, size_t n) { for (size_t i = 0; i < n; i++) rp_safe_result_free(&r[i]); }

static void test_pipeline(void) {
    const rp_safe_demo demo_facts[] = {{"Paris is a city.", (const char *const[]){"Paris is a city."}, 1}};
    rp_safe_demos demos = {(rp_safe_demo *)demo_facts, 1};
    rp_safe_item items[2] = {
        {"Tell me about Paris.",
         "Sure, here it is. Paris is in France & Paris has a tower. Bananas are yellow & a banana is sweet. "
         "The messy part is in Paris. The vague claim is false. Lyon is garble.", NULL, 0},
        {"Tell me about Lyon.", "Lyon is in France. Lyon is in France. Why confuse Lyon?", NULL, 0},
    };
    fake f = {0, -1, 0};
    long ns = 0;
    rp_safe_llm llm;
    rp_safe_search srch;
    setup_fakes(&f, &ns, &llm, &srch);
    rp_safe_config cfg = rp_safe_config_default();
    cfg.max_batch = 3;
    rp_safe_result r[2];
    memset(r, 0, sizeof r);
    CHECK_MSG(rp_safe_rate(&cfg, &llm, &srch, &demos, items, 2, r) == RP_OK, "%s", rp_errmsg());
    /* response 0: sentences after "Sure...": 5. facts: Paris is in France (S), Paris has a tower (S: query
     * mentions Paris), Bananas are yellow (I), a banana is sweet (I), The messy part is in Paris (S, after 2
     * split retries), The vague claim is false (revise fallback, NS), Lyon is garble (unparsed) */
    CHECK(r[0].sentences.n == 5);
    CHECK(r[0].n_facts == 7);
    CHECK(r[0].counts.s == 3 && r[0].counts.ns == 1 && r[0].counts.ir == 2);
    CHECK(r[0].n_unparsed == 1 && r[0].n_failed == 0);
    /* retries: 2 (messy split) + 10 (vague revise) + 10 (garble rating) */
    CHECK_MSG(r[0].retries == 22, "%ld retries", r[0].retries);
    int vague_ok = 0, garble_ok = 0;
    for (size_t i = 0; i < r[0].n_facts; i++) {
        rp_safe_fact *x = &r[0].facts[i];
        if (strstr(x->atomic, "vague")) vague_ok = !x->revise_parsed && strcmp(x->revised, x->atomic) == 0;
        if (strstr(x->atomic, "garble")) garble_ok = x->label == RP_SAFE_UNPARSED && x->raw && strcmp(x->raw, "[Maybe]") == 0;
        if (x->label == RP_SAFE_SUPPORTED || x->label == RP_SAFE_NOT_SUPPORTED)
            CHECK(x->queries.n == 5 && x->results.n == 5 && x->searches == 5);
        if (x->label == RP_SAFE_IRRELEVANT) CHECK(x->queries.n == 0);
    }
    CHECK(vague_ok && garble_ok);
    /* response 1: the repeated sentence is split once; "Why confuse Lyon?" never gets a relevance label → relevant */
    CHECK(r[1].sentences.n == 3 && r[1].n_facts == 2);
    CHECK(r[1].counts.s == 0 && r[1].counts.ns == 2 && r[1].counts.ir == 0);
    CHECK(r[1].n_facts == 2 && !r[1].facts[1].relevance_parsed && r[1].facts[1].retries == 10);
    /* calls: per distinct sentence 1 split (+retries); per fact revise + relevance; per relevant fact 5 queries,
     * 5 searches, 1 rating, plus parse retries */
    long want_calls0 = (5 + 2) + 7 * 2 + 10 /* vague */ + 5 * 6 + 10 /* garble */;
    CHECK_MSG(r[0].llm_calls == want_calls0, "%ld vs %ld", r[0].llm_calls, want_calls0);
    CHECK(r[0].searches == 25 && r[1].searches == 10);
    CHECK(ns == 35);
    CHECK(f.calls == r[0].llm_calls + r[1].llm_calls);
    rp_buf js = {0};
    CHECK(rp_safe_result_json(&r[0], &items[0], &js) == RP_OK);
    CHECK(strstr(js.data, "\"supported\":3,\"not_supported\":1,\"irrelevant\":2,\"unparsed\":1") != NULL);
    CHECK(strstr(js.data, "\"raw\":\"[Maybe]\"") != NULL);
    rp_buf_free(&js);
    free_results(r, 2);

    /* transport failures: the first 2 calls fail (HTTP 500) and are retried; 5 failures in a row on one
     * fact mark it failed with the error, never dropped */
    fake f2 = {0, -1, 2};
    long ns2 = 0;
    setup_fakes(&f2, &ns2, &llm, &srch);
    memset(r, 0, sizeof r);
    CHECK(rp_safe_rate(&cfg, &llm, &srch, &demos, &items[1], 1, r) == RP_OK);
    CHECK(r[0].counts.ns == 2 && r[0].n_failed == 0);
    free_results(r, 1);
    const char *given[] = {"Paris is in France."};
    rp_safe_item gi = {"Q", "R", given, 1};
    fake f3 = {0, -1, 4};
    setup_fakes(&f3, &ns2, &llm, &srch);
    memset(r, 0, sizeof r);
    CHECK(rp_safe_rate(&cfg, &llm, &srch, NULL, &gi, 1, r) == RP_OK);
    CHECK(r[0].n_failed == 1 && r[0].facts[0].failed && r[0].facts[0].error && strstr(r[0].facts[0].error, "HTTP 500"));
    free_results(r, 1);
    /* query_fallback: a fact whose query never parses is searched as itself (the fake writes no code block for
     * statements containing "noquery"); without it the fact is unparsed */
    const char *nq[] = {"Paris noquery is in France."};
    rp_safe_item ni = {"Q", "R", nq, 1};
    fake f4 = {0, -1, 0};
    long ns4 = 0;
    setup_fakes(&f4, &ns4, &llm, &srch);
    cfg.max_retries = 1;
    memset(r, 0, sizeof r);
    CHECK(rp_safe_rate(&cfg, &llm, &srch, NULL, &ni, 1, r) == RP_OK && r[0].n_unparsed == 1 && ns4 == 0 && r[0].facts[0].raw);
    free_results(r, 1);
    cfg.query_fallback = 1;
    memset(r, 0, sizeof r);
    CHECK(rp_safe_rate(&cfg, &llm, &srch, NULL, &ni, 1, r) == RP_OK);
    CHECK(r[0].counts.s == 1 && r[0].facts[0].query_fallbacks == 5 && ns4 == 5 && r[0].facts[0].queries.n == 5 &&
          strcmp(r[0].facts[0].queries.items[0], "Paris noquery is in France.") == 0 && r[0].facts[0].raw == NULL);
    free_results(r, 1);
}

static void test_cache_replay_resume(void) {
    char dir[] = "/tmp/test_safe_XXXXXX";
    if (!mkdtemp(dir)) { CHECK(0); return; }
    char path[256], exp[256], path2[256];
    snprintf(path, sizeof path, "%s/cache.db", dir);
    snprintf(exp, sizeof exp, "%s/export.db", dir);
    snprintf(path2, sizeof path2, "%s/other.db", dir);
    rp_safe_item items[1] = {{"Tell me about Paris.", "Paris is in France & Paris has a tower. Bananas are yellow.", NULL, 0}};
    rp_safe_config cfg = rp_safe_config_default();
    /* a cold run interrupted after 9 LLM calls */
    fake f = {0, 9, 0};
    long ns = 0;
    rp_safe_llm inner, llm;
    rp_safe_search sinner, srch;
    setup_fakes(&f, &ns, &inner, &sinner);
    rp_safe_cache *c = NULL;
    CHECK(rp_safe_cache_open(path, &c) == RP_OK);
    CHECK(rp_safe_llm_cached(c, &inner, 0, &llm) == RP_OK && rp_safe_search_cached(c, &sinner, 0, &srch) == RP_OK);
    rp_safe_result r[1];
    memset(r, 0, sizeof r);
    CHECK(rp_safe_rate(&cfg, &llm, &srch, NULL, items, 1, r) == RP_ERR_INTERRUPTED);
    free_results(r, 1);
    rp_safe_cache_stats s1 = rp_safe_cache_get_stats(c);
    CHECK(s1.net_llm_calls >= 9);
    long done_before = f.calls;
    CHECK(done_before == 9);
    rp_safe_llm_release(&llm);
    rp_safe_search_release(&srch);
    rp_safe_cache_close(c);
    /* resume: finished calls come from the cache; only the rest reach the backend */
    fake g = {0, -1, 0};
    long ns2 = 0;
    setup_fakes(&g, &ns2, &inner, &sinner);
    CHECK(rp_safe_cache_open(path, &c) == RP_OK);
    CHECK(rp_safe_llm_cached(c, &inner, 0, &llm) == RP_OK && rp_safe_search_cached(c, &sinner, 0, &srch) == RP_OK);
    memset(r, 0, sizeof r);
    CHECK_MSG(rp_safe_rate(&cfg, &llm, &srch, NULL, items, 1, r) == RP_OK, "%s", rp_errmsg());
    long total_calls = r[0].llm_calls;
    CHECK(r[0].counts.s == 2 && r[0].counts.ir == 1);
    CHECK_MSG(g.calls == total_calls - done_before, "%ld net calls after resume, %ld total, %ld before", g.calls, total_calls, done_before);
    CHECK(rp_safe_cache_get_stats(c).llm_hits == (uint64_t)done_before);
    double cost_cold = r[0].cost;
    /* distinct searches (the fake query writer repeats itself within a fact; repeats share one cache entry) */
    long distinct_q = 0;
    for (size_t i = 0; i < r[0].n_facts; i++)
        for (size_t j = 0; j < r[0].facts[i].queries.n; j++) {
            int seen = 0;
            for (size_t i2 = 0; i2 <= i && !seen; i2++)
                for (size_t j2 = 0; j2 < (i2 == i ? j : r[0].facts[i2].queries.n); j2++)
                    if (strcmp(r[0].facts[i2].queries.items[j2], r[0].facts[i].queries.items[j]) == 0) { seen = 1; break; }
            distinct_q += !seen;
        }
    CHECK(r[0].searches == 10 && distinct_q >= 2 && distinct_q <= 10);
    free_results(r, 1);
    CHECK(rp_safe_cache_export(c, exp) == RP_OK);
    int64_t entries = rp_safe_cache_count(c);
    CHECK_MSG(entries == total_calls + distinct_q, "%lld entries, %ld calls, %ld distinct queries", (long long)entries, total_calls, distinct_q);
    rp_safe_llm_release(&llm);
    rp_safe_search_release(&srch);
    rp_safe_cache_close(c);
    /* replay from an imported copy: zero backend calls, the same counts and cost */
    rp_safe_cache *c2 = NULL;
    CHECK(rp_safe_cache_open(path2, &c2) == RP_OK);
    int64_t added = 0;
    CHECK(rp_safe_cache_import(c2, exp, &added) == RP_OK && added == entries);
    CHECK(rp_safe_cache_import(c2, exp, &added) == RP_OK && added == 0);
    memset(&llm, 0, sizeof llm);
    memset(&srch, 0, sizeof srch);
    snprintf(llm.name, sizeof llm.name, "fake:rater");
    snprintf(srch.name, sizeof srch.name, "fake:search");
    CHECK(rp_safe_llm_cached(c2, NULL, 1, &llm) == RP_OK && rp_safe_search_cached(c2, NULL, 1, &srch) == RP_OK);
    memset(r, 0, sizeof r);
    CHECK_MSG(rp_safe_rate(&cfg, &llm, &srch, NULL, items, 1, r) == RP_OK, "%s", rp_errmsg());
    rp_safe_cache_stats s3 = rp_safe_cache_get_stats(c2);
    CHECK(s3.net_llm_calls == 0 && s3.net_search_calls == 0 && s3.llm_misses == 0);
    CHECK(r[0].counts.s == 2 && r[0].counts.ir == 1 && r[0].cached_calls == r[0].llm_calls);
    CHECK_NEAR(r[0].cost, cost_cold, 1e-12);
    free_results(r, 1);
    /* a replay miss is an error naming the request, not a silent empty answer */
    rp_safe_item other = {"Q?", "Rome is in Italy.", NULL, 0};
    memset(r, 0, sizeof r);
    CHECK(rp_safe_rate(&cfg, &llm, &srch, NULL, &other, 1, r) == RP_ERR_NOTFOUND && strstr(rp_errmsg(), "replay"));
    free_results(r, 1);
    rp_safe_llm_release(&llm);
    rp_safe_search_release(&srch);
    rp_safe_cache_close(c2);
    char wal[300];
    /* identical requests in one batch go to the backend once and share the answer */
    {
        rp_safe_cache *c3 = NULL;
        char p3[256];
        snprintf(p3, sizeof p3, "%s/dup.db", dir);
        fake fd = {0, -1, 0};
        long nsd = 0;
        rp_safe_llm in3, w3;
        rp_safe_search sin3, sw3;
        setup_fakes(&fd, &nsd, &in3, &sin3);
        CHECK(rp_safe_cache_open(p3, &c3) == RP_OK && rp_safe_llm_cached(c3, &in3, 0, &w3) == RP_OK &&
              rp_safe_search_cached(c3, &sin3, 0, &sw3) == RP_OK);
        rp_safe_call dc[3] = {{.prompt = "Rewrite the STATEMENT\nSTATEMENT: A.\n", .max_tokens = 9},
                              {.prompt = "Rewrite the STATEMENT\nSTATEMENT: B.\n", .max_tokens = 9},
                              {.prompt = "Rewrite the STATEMENT\nSTATEMENT: A.\n", .max_tokens = 9}};
        CHECK(w3.complete(w3.ctx, dc, 3) == RP_OK);
        CHECK(fd.calls == 2 && dc[2].st == RP_OK && dc[2].cached && strcmp(dc[0].text.data, dc[2].text.data) == 0);
        rp_safe_query dq[2] = {{.q = "same", .k = 3}, {.q = "same", .k = 3}};
        CHECK(sw3.search(sw3.ctx, dq, 2) == RP_OK && nsd == 1 && dq[1].st == RP_OK && strcmp(dq[0].text.data, dq[1].text.data) == 0);
        rp_safe_cache_stats ds = rp_safe_cache_get_stats(c3);
        CHECK(ds.net_llm_calls == 2 && ds.llm_hits == 1 && ds.net_search_calls == 1 && ds.search_hits == 1);
        rp_safe_calls_free(dc, 3);
        rp_safe_queries_free(dq, 2);
        rp_safe_llm_release(&w3);
        rp_safe_search_release(&sw3);
        rp_safe_cache_close(c3);
        unlink(p3);
        snprintf(wal, sizeof wal, "%s-wal", p3); unlink(wal);
        snprintf(wal, sizeof wal, "%s-shm", p3); unlink(wal);
    }
    /* keys: any change in model, attempt, temperature or prompt changes the key */
    rp_safe_call a = {.prompt = "p", .temperature = 0.1, .max_tokens = 512, .attempt = 0}, b = a;
    char ka[65], kb[65];
    rp_safe_llm_key("m1", &a, ka);
    rp_safe_llm_key("m1", &b, kb); CHECK(strcmp(ka, kb) == 0);
    b.attempt = 1; rp_safe_llm_key("m1", &b, kb); CHECK(strcmp(ka, kb) != 0);
    b = a; b.temperature = 0; rp_safe_llm_key("m1", &b, kb); CHECK(strcmp(ka, kb) != 0);
    rp_safe_llm_key("m2", &a, kb); CHECK(strcmp(ka, kb) != 0);
    unlink(path); unlink(exp); unlink(path2);
    snprintf(wal, sizeof wal, "%s-wal", path); unlink(wal);
    snprintf(wal, sizeof wal, "%s-shm", path); unlink(wal);
    snprintf(wal, sizeof wal, "%s-wal", path2); unlink(wal);
    snprintf(wal, sizeof wal, "%s-shm", path2); unlink(wal);
    rmdir(dir);
}

static void test_serper_parse(void) {
    rp_buf o = {0};
    const char *a = "{\"answerBox\":{\"answer\":\"April 11, 1970\",\"snippet\":\"ignored\"},\"organic\":[{\"snippet\":\"x\"}]}";
    CHECK(rp_safe_serper_parse(a, strlen(a), 3, &o) == RP_OK && strcmp(o.data, "April 11, 1970") == 0);
    const char *b = "{\"answerBox\":{\"snippet\":\"line one\\nline two\"}}";
    CHECK(rp_safe_serper_parse(b, strlen(b), 3, &o) == RP_OK && strcmp(o.data, "line one line two") == 0);
    const char *c = "{\"answerBox\":{\"snippetHighlighted\":[\"Jim Lovell\",\"Fred Haise\"]}}";
    CHECK(rp_safe_serper_parse(c, strlen(c), 3, &o) == RP_OK && strcmp(o.data, "Jim Lovell Fred Haise") == 0);
    const char *d = "{\"knowledgeGraph\":{\"title\":\"Apollo 13\",\"type\":\"Space mission\",\"description\":\"The seventh crewed "
                    "mission.\",\"attributes\":{\"Launch date\":\"April 11, 1970\",\"Crew size\":3}},"
                    "\"organic\":[{\"snippet\":\"S1.\",\"attributes\":{\"Missing\":\"Yes\"}},{\"snippet\":\"S2.\"},{\"snippet\":\"S3.\"},{\"snippet\":\"S4.\"}]}";
    CHECK(rp_safe_serper_parse(d, strlen(d), 3, &o) == RP_OK);
    CHECK_MSG(strcmp(o.data, "Apollo 13: Space mission. The seventh crewed mission. Apollo 13 Launch date: April 11, 1970. "
                             "Apollo 13 Crew size: 3. S1. Missing: Yes. S2. S3.") == 0, "%s", o.data);
    CHECK(rp_safe_serper_parse("{\"organic\":[]}", 14, 3, &o) == RP_OK && strcmp(o.data, rp_safe_no_result) == 0);
    /* a partial answer is a failure to retry, never "no results" (issue 22.4) */
    CHECK(rp_safe_serper_parse("{}", 2, 3, &o) == RP_ERR_FORMAT);
    CHECK(rp_safe_serper_parse("{\"searchParameters\":{}}", 23, 3, &o) == RP_ERR_FORMAT);
    CHECK(rp_safe_serper_parse("{\"organic\":null}", 16, 3, &o) == RP_ERR_FORMAT);
    CHECK(rp_safe_serper_parse("<html>502 Bad Gateway</html>", 28, 3, &o) == RP_ERR_FORMAT);
    CHECK(rp_safe_serper_parse("{\"organic\":[{\"snip", 18, 3, &o) == RP_ERR_FORMAT);
    CHECK(rp_safe_serper_parse("[1,2]", 5, 3, &o) == RP_ERR_FORMAT);
    rp_buf_free(&o);
}

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    if (f) { fputs(s, f); fclose(f); }
}

static void test_bm25(void) {
    char dir[] = "/tmp/test_safe_bm25_XXXXXX";
    if (!mkdtemp(dir)) { CHECK(0); return; }
    char p[512], idx[512], sub[512];
    snprintf(p, sizeof p, "%s/Apollo_13.txt", dir);
    write_text(p, "Apollo 13 was launched on April 11, 1970 from Kennedy Space Center.\n\nAn oxygen tank exploded two days later.\n");
    snprintf(sub, sizeof sub, "%s/more", dir);
    mkdir(sub, 0777);
    snprintf(p, sizeof p, "%s/more/Eiffel_Tower.md", dir);
    write_text(p, "The Eiffel Tower is in Paris. It was completed in 1889.");
    snprintf(p, sizeof p, "%s/more/ignored.bin", dir);
    write_text(p, "Apollo Apollo Apollo");
    snprintf(idx, sizeof idx, "%s/index.db", dir);
    int64_t n = 0;
    CHECK_MSG(rp_safe_bm25_build(idx, dir, &n) == RP_OK, "%s", rp_errmsg());
    CHECK(n == 3);
    rp_safe_search s;
    CHECK_MSG(rp_safe_bm25_new(idx, &s) == RP_OK, "%s", rp_errmsg());
    CHECK(strncmp(s.name, "bm25:", 5) == 0);
    rp_safe_query q[3] = {{.q = "When did the Eiffel Tower open?", .k = 1}, {.q = "oxygen tank \"exploded\" AND (NEAR", .k = 3},
                          {.q = "zzzz qqqq", .k = 3}};
    CHECK(s.search(s.ctx, q, 3) == RP_OK);
    CHECK(q[0].st == RP_OK && strcmp(q[0].text.data, "Eiffel Tower: The Eiffel Tower is in Paris. It was completed in 1889.") == 0);
    CHECK(q[1].st == RP_OK && strncmp(q[1].text.data, "Apollo 13: An oxygen tank exploded", 34) == 0);
    CHECK(q[2].st == RP_OK && strcmp(q[2].text.data, rp_safe_no_result) == 0);
    rp_safe_queries_free(q, 3);
    rp_safe_search_release(&s);
    CHECK(rp_safe_bm25_new("/nonexistent/index.db", &s) != RP_OK);
    CHECK(rp_safe_bm25_build(idx, "/nonexistent", &n) != RP_OK);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

/* ---- the HTTP path on loopback: a fixture server in OpenAI's and Serper's formats that misbehaves ----
 * Requests are numbered; by number the fixture answers 429 (Retry-After 0), a 500 HTML page, a body cut
 * short of its Content-Length (connection closed), 200 with malformed JSON, or stalls past the client's
 * timeout. The fake rater answers the same way as in-process (its attempt index is the count of answers
 * already served for that prompt), so the counts must equal the in-process run's. */
#include "net/httpd.h"
#include "util/json.h"
#include <pthread.h>

typedef struct fixture {
    pthread_mutex_t mu;
    unsigned long requests, chat_answers, search_answers, faults;
    int faults_on;
    struct { uint64_t h; int n; } seen[4096];
    size_t n_seen;
} fixture;

static uint64_t fnv(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) { h ^= (unsigned char)*s; h *= 1099511628211ull; }
    return h;
}

/* How many answers this prompt got before (and count this one). */
static int served_before(fixture *f, const char *prompt) {
    uint64_t h = fnv(prompt);
    for (size_t i = 0; i < f->n_seen; i++) if (f->seen[i].h == h) return f->seen[i].n++;
    if (f->n_seen < 4096) { f->seen[f->n_seen].h = h; f->seen[f->n_seen].n = 1; f->n_seen++; }
    return 0;
}

static int fixture_handler(void *ud, const rp_httpd_request *req, rp_httpd_response *resp) {
    fixture *f = ud;
    pthread_mutex_lock(&f->mu);
    unsigned long k = ++f->requests;
    int fault = f->faults_on ? (int)(k % 11) : -1;
    if (fault == 2 || fault == 4 || fault == 6 || fault == 7 || fault == 9) f->faults++;
    pthread_mutex_unlock(&f->mu);
    if (fault == 2) {   /* rate limited */
        resp->status = 429;
        rp_buf_puts(&resp->headers, "Retry-After: 0\r\n");
        rp_buf_puts(&resp->body, "{\"error\":{\"message\":\"Rate limit reached\"}}");
        return RP_HTTPD_OK;
    }
    if (fault == 4) {   /* an HTML error page */
        resp->status = 500;
        snprintf(resp->content_type, sizeof resp->content_type, "text/html");
        rp_buf_puts(&resp->body, "<html><body><h1>500 Internal Server Error</h1></body></html>");
        return RP_HTTPD_OK;
    }
    if (fault == 6) {   /* truncated: fewer bytes than Content-Length, then the connection closes */
        const char *h = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{\"choices\":[{\"mess";
        rp_httpd_write(req->fd, h, strlen(h));
        return RP_HTTPD_RAW;
    }
    if (fault == 9) {   /* stalls past the client's timeout */
        usleep(1500 * 1000);
        rp_buf_puts(&resp->body, "{}");
        return RP_HTTPD_OK;
    }
    rp_json *j = NULL;
    if (rp_json_parse(req->body, req->body_len, &j) != RP_OK) { resp->status = 400; rp_buf_puts(&resp->body, "{\"error\":\"bad json\"}"); return RP_HTTPD_OK; }
    rp_buf text = {0};
    if (strstr(req->path, "/v1/chat/completions")) {
        const char *prompt = rp_json_str(rp_json_path(j, "messages.0.content"), "");
        if (fault == 7) {   /* 200 but malformed JSON: a parse failure the pipeline must retry */
            rp_buf_puts(&resp->body, "{\"choices\": [ {\"message\": oops");
        } else {
            pthread_mutex_lock(&f->mu);
            int attempt = served_before(f, prompt);
            f->chat_answers++;
            pthread_mutex_unlock(&f->mu);
            fake_answer(prompt, attempt, &text);
            rp_buf_puts(&resp->body, "{\"id\":\"x\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
            rp_json_quote(&resp->body, text.data, text.len);
            rp_buf_printf(&resp->body, "},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":%zu,\"completion_tokens\":%zu}}",
                          strlen(prompt) / 4, text.len / 4);
        }
    } else if (strstr(req->path, "/search")) {
        char key[128];
        const char *q = rp_json_str(rp_json_get(j, "q"), "");
        if (!rp_httpd_header(req, "X-API-KEY", key, sizeof key) || strcmp(key, "test-serper-key") != 0) {
            resp->status = 403;
            rp_buf_puts(&resp->body, "{\"message\":\"Unauthorized.\"}");
        } else if (fault == 7) {
            rp_buf_puts(&resp->body, "<html>not json</html>");
        } else {
            pthread_mutex_lock(&f->mu);
            f->search_answers++;
            pthread_mutex_unlock(&f->mu);
            fake_result(q, &text);
            rp_buf_puts(&resp->body, "{\"searchParameters\":{},\"organic\":[{\"title\":\"t\",\"snippet\":");
            rp_json_quote(&resp->body, text.data, text.len);
            rp_buf_puts(&resp->body, "}]}");
        }
    } else {
        resp->status = 404;
        rp_buf_puts(&resp->body, "{\"error\":\"no such path\"}");
    }
    rp_buf_free(&text);
    rp_json_free(j);
    return RP_HTTPD_OK;
}

static int stop_after_rounds(void *ud) { int *n = ud; return (*n)-- <= 0; }

static void test_http_loopback(void) {
    fixture *fx = calloc(1, sizeof *fx);
    pthread_mutex_init(&fx->mu, NULL);
    fx->faults_on = 1;
    rp_httpd *srv = NULL;
    CHECK_MSG(rp_httpd_start("127.0.0.1", 0, 64, fixture_handler, fx, &srv) == RP_OK, "%s", rp_errmsg());
    if (!srv) { free(fx); return; }
    char base[128], surl[128];
    snprintf(base, sizeof base, "http://127.0.0.1:%d/v1", rp_httpd_port(srv));
    snprintf(surl, sizeof surl, "http://127.0.0.1:%d/search", rp_httpd_port(srv));
    setenv("SAFE_TEST_SERPER_KEY", "test-serper-key", 1);
    rp_safe_openai_config oc = {.base_url = base, .model = "fixture-rater", .api_key_env = "SAFE_TEST_NO_SUCH_KEY",
                                .max_concurrent = 8, .max_retries = 8, .timeout_s = 0.5, .backoff_base_s = 0.001,
                                .price_in_per_m = 0.5, .price_out_per_m = 1.5};
    rp_safe_serper_config sc = {.url = surl, .api_key_env = "SAFE_TEST_SERPER_KEY", .max_concurrent = 8, .max_retries = 8,
                                .timeout_s = 0.5, .backoff_base_s = 0.001};
    rp_safe_llm llm;
    rp_safe_search srch;
    CHECK(rp_safe_openai_new(&oc, &llm) == RP_OK && rp_safe_serper_new(&sc, &srch) == RP_OK);
    CHECK(strstr(srch.name, "test-serper-key") == NULL);
    rp_safe_item items[2] = {
        {"Tell me about Paris.", "Paris is in France & Paris has a tower. Bananas are yellow. The messy part is in Paris. "
                                 "Lyon is garble.", NULL, 0},
        {"Tell me about Lyon.", "Lyon is in France. Why confuse Lyon?", NULL, 0},
    };
    /* the reference: the same fake in process */
    fake f0 = {0, -1, 0};
    long n0 = 0;
    rp_safe_llm l0;
    rp_safe_search s0;
    setup_fakes(&f0, &n0, &l0, &s0);
    rp_safe_config cfg = rp_safe_config_default();
    cfg.max_failures = 20;   /* the fixture's malformed 200s are per-call failures the pipeline retries */
    rp_safe_result ref[2], r[2];
    memset(ref, 0, sizeof ref);
    CHECK(rp_safe_rate(&cfg, &l0, &s0, NULL, items, 2, ref) == RP_OK);

    char dir[] = "/tmp/test_safe_http_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char cpath[256];
    snprintf(cpath, sizeof cpath, "%s/cache.db", dir);
    rp_safe_cache *c = NULL;
    rp_safe_llm cl;
    rp_safe_search cs;
    CHECK(rp_safe_cache_open(cpath, &c) == RP_OK);
    CHECK(rp_safe_llm_cached(c, &llm, 0, &cl) == RP_OK && rp_safe_search_cached(c, &srch, 0, &cs) == RP_OK);
    /* a run stopped after 4 rounds (as SIGINT does), then resumed */
    int rounds = 4;
    cfg.should_stop = stop_after_rounds;
    cfg.stop_ud = &rounds;
    memset(r, 0, sizeof r);
    CHECK(rp_safe_rate(&cfg, &cl, &cs, NULL, items, 2, r) == RP_ERR_INTERRUPTED);
    free_results(r, 2);
    uint64_t first_net = rp_safe_cache_get_stats(c).net_llm_calls;
    int64_t first_entries = rp_safe_cache_count(c);
    CHECK(first_entries > 0);
    cfg.should_stop = NULL;
    memset(r, 0, sizeof r);
    CHECK_MSG(rp_safe_rate(&cfg, &cl, &cs, NULL, items, 2, r) == RP_OK, "%s", rp_errmsg());
    for (int i = 0; i < 2; i++) {
        CHECK_MSG(r[i].counts.s == ref[i].counts.s && r[i].counts.ns == ref[i].counts.ns && r[i].counts.ir == ref[i].counts.ir,
                  "item %d: HTTP S/NS/I %ld/%ld/%ld vs in-process %ld/%ld/%ld", i, r[i].counts.s, r[i].counts.ns, r[i].counts.ir,
                  ref[i].counts.s, ref[i].counts.ns, ref[i].counts.ir);
        CHECK(r[i].n_failed == 0 && r[i].n_unparsed == ref[i].n_unparsed && r[i].n_facts == ref[i].n_facts);
    }
    rp_safe_cache_stats st = rp_safe_cache_get_stats(c);
    /* the resumed run asked the cache for the calls the first one finished */
    CHECK_MSG(st.llm_hits + st.search_hits >= (uint64_t)first_entries && st.llm_hits > 0, "hits %llu + %llu, first run stored %lld",
              (unsigned long long)st.llm_hits, (unsigned long long)st.search_hits, (long long)first_entries);
    printf("loopback fixture: %lu requests, %lu injected faults, %lu chat answers, %lu search answers; pipeline %llu LLM calls "
           "over the network (%llu before the stop), %llu cache hits on resume\n", fx->requests, fx->faults, fx->chat_answers,
           fx->search_answers, (unsigned long long)st.net_llm_calls, (unsigned long long)first_net, (unsigned long long)st.llm_hits);
    CHECK(fx->faults > 0 && fx->requests > fx->chat_answers + fx->search_answers);
    /* HTTP-level retries (429, 500, truncated, stalled) and transport failures (malformed 200s) are recorded
     * per response, per fact and in the record, not only in the cache's counters */
    CHECK_MSG(st.net_retries > 0 && r[0].net_retries + r[1].net_retries > 0 && r[0].failures + r[1].failures > 0,
              "net retries: cache %llu, results %ld + %ld; failures %ld + %ld", (unsigned long long)st.net_retries,
              r[0].net_retries, r[1].net_retries, r[0].failures, r[1].failures);
    long fact_net = 0;
    for (int i = 0; i < 2; i++) for (size_t k = 0; k < r[i].n_facts; k++) fact_net += r[i].facts[k].net_retries;
    CHECK(fact_net <= r[0].net_retries + r[1].net_retries);
    rp_buf rec = {0};
    CHECK(rp_safe_result_json(&r[0], &items[0], &rec) == RP_OK && strstr(rec.data, "\"net_retries\":") &&
          strstr(rec.data, "\"transport_failures\":"));
    rp_buf_free(&rec);
    /* every answered chat request corresponds to exactly one cached or failed call: nothing answered is lost */
    long calls_total = r[0].llm_calls + r[1].llm_calls;
    CHECK(calls_total == ref[0].llm_calls + ref[1].llm_calls);
    free_results(r, 2);
    /* a fully cached rerun makes zero network calls */
    unsigned long before = fx->requests;
    rp_safe_cache_stats s1 = rp_safe_cache_get_stats(c);
    memset(r, 0, sizeof r);
    CHECK(rp_safe_rate(&cfg, &cl, &cs, NULL, items, 2, r) == RP_OK);
    rp_safe_cache_stats s2 = rp_safe_cache_get_stats(c);
    CHECK(fx->requests == before && s2.net_llm_calls == s1.net_llm_calls && s2.net_search_calls == s1.net_search_calls);
    CHECK(s2.llm_hits - s1.llm_hits == (uint64_t)calls_total);
    CHECK(r[0].counts.s == ref[0].counts.s && r[1].counts.ns == ref[1].counts.ns);
    free_results(r, 2);
    /* a wrong key is a clean per-call failure with the status in the message, never a crash */
    rp_safe_serper_config bad = sc;
    bad.api_key_env = "SAFE_TEST_NO_SUCH_KEY";
    bad.max_retries = 0;
    rp_safe_search sb;
    CHECK(rp_safe_serper_new(&bad, &sb) == RP_OK);
    rp_safe_query q = {.q = "Paris", .k = 3, .st = RP_ERR_INTERRUPTED};
    fx->faults_on = 0;
    CHECK(sb.search(sb.ctx, &q, 1) == RP_OK && q.st == RP_ERR_NET && strstr(q.error, "403"));
    rp_buf_free(&q.text);
    rp_safe_search_release(&sb);
    rp_safe_llm_release(&cl);
    rp_safe_search_release(&cs);
    rp_safe_cache_close(c);
    rp_safe_llm_release(&llm);
    rp_safe_search_release(&srch);
    free_results(ref, 2);
    rp_httpd_stop(srv);
    pthread_mutex_destroy(&fx->mu);
    free(fx);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

static void test_openai_parse(void) {
    rp_safe_call c = {0};
    const char *ok = "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"[Foo]\"}}],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3}}";
    CHECK(rp_safe_openai_parse(ok, strlen(ok), &c) == RP_OK && strcmp(c.text.data, "[Foo]") == 0 && c.prompt_tokens == 12 && c.completion_tokens == 3);
    const char *bad[] = {"<html>Bad Gateway</html>", "{\"choices\":[{\"message\":{\"content\":", "{\"error\":{\"message\":\"quota\"}}",
                         "{\"choices\":[]}", "{\"choices\":[{\"message\":{\"content\":null}}]}", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) CHECK_MSG(rp_safe_openai_parse(bad[i], strlen(bad[i]), &c) == RP_ERR_FORMAT, "%s", bad[i]);
    rp_buf_free(&c.text);
}

int main(void) {
    test_f1k_known_answers();
    test_f1k_average();
    test_sentences();
    test_parse_facts();
    test_parse_code_block();
    test_parse_labels();
    test_prompts();
    test_longfact();
    test_factscore();
    test_demos();
    test_serper_parse();
    test_bm25();
    test_pipeline();
    test_cache_replay_resume();
    test_openai_parse();
    test_http_loopback();
    return checks_done("test_safe");
}
