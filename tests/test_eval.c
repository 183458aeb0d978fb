/* test_eval.c: scoring (score.c, perplexity.c, task.c's few-shot prefixes) against a mock language
 * model whose log-probabilities have a closed form, so every expected figure below is worked out by hand:
 *   tokens are bytes (ids 0..255) plus BOS = 256;
 *   after a byte p, the next byte t has probability 3/258 when t == p+1 (mod 256), else 1/258;
 *   after BOS every byte has probability 1/256.
 * So a "successor" step costs log(258/3) = log 86 nats and any other step log 258 nats, and the greedy
 * token after p is p+1. */
#include "../tests/check.h"
#include "eval/score.h"
#include "eval/task.h"
#include "lua/state.h"
#include "cli/command.h"
#include "db/registry.h"
#include "nn/llama.h"
#include "eval/lm_model.h"
#include <stdio.h>
#include <unistd.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BOS 256
static double LS, LN;   /* log(3/258), log(1/258): a successor step and any other step */

typedef struct mock { int calls, max_nseq, bos_seen_ok; } mock;

static rp_status mock_tok(void *ctx, const char *text, size_t len, int **ids, size_t *n) {
    int *v = malloc((len ? len : 1) * sizeof *v);
    if (!v) return rp_fail(RP_ERR_NOMEM, "oom");
    for (size_t i = 0; i < len; i++) v[i] = (unsigned char)text[i];
    *ids = v;
    *n = len;
    return RP_OK;
}

static double mock_lp(int prev, int t) {
    if (prev == BOS) return log(1.0 / 256);
    return t == (prev + 1) % 256 ? LS : LN;
}

static rp_status mock_logprobs(void *ctx, int nseq, const int *const *seqs, const size_t *lens, const size_t *from,
                               float *const *out, unsigned char *const *greedy) {
    mock *m = ctx;
    m->calls++;
    if (nseq > m->max_nseq) m->max_nseq = nseq;
    for (int s = 0; s < nseq; s++) {
        if (from[s] + 1 >= lens[s] + 1 || lens[s] == 0) return rp_fail(RP_ERR_INVAL, "mock: bad from/len");
        for (size_t i = from[s]; i + 1 < lens[s]; i++) {
            int p = seqs[s][i], t = seqs[s][i + 1];
            out[s][i - from[s]] = (float)mock_lp(p, t);
            if (greedy) greedy[s][i - from[s]] = p != BOS && t == (p + 1) % 256;
        }
    }
    return RP_OK;
}

static rp_lm mock_lm(mock *m, int add_bos, int n_ctx) {
    memset(m, 0, sizeof *m);
    rp_lm lm = {.ctx = m, .n_vocab = 257, .bos = BOS, .add_bos = add_bos, .n_ctx = n_ctx,
                .tokenize = mock_tok, .logprobs = mock_logprobs};
    return lm;
}

static void add(rp_task *t, const char *ctx, const char **ch, int n, int gold) {
    rp_task_item it = {.context = (char *)ctx, .choices = (char **)ch, .n_choices = n, .gold = gold};
    CHECK_MSG(rp_task_add_item(t, &it, "test") == RP_OK, "%s", rp_errmsg());
}

/* acc / acc_norm on four items whose winners are read off the closed form. */
static void test_mc(int add_bos) {
    mock m;
    rp_lm lm = mock_lm(&m, add_bos, 0);
    rp_task *t;
    CHECK(rp_task_new("t", RP_TASK_MC, "mem", &t) == RP_OK);
    /* Context "x", then " " + choice: the step 'x' -> ' ' and ' ' -> first letter are non-successors (N).
     * A: " ab" = 2N+S = -15.56 beats " ba" = 3N = -16.66 (also per byte); gold 0: acc right, norm right.
     * B: " abcd" = 2N+3S = -24.47 vs " zzz" = 4N = -22.21; gold 1: acc right; per byte -6.12 vs -7.40: norm wrong.
     * C: " qqq" = 4N = -22.21 vs " abc" = 2N+2S = -20.02; gold 0: acc wrong; per byte -7.40 vs -6.67: norm wrong.
     * D: " xy" = 2N+S = -15.56 vs " mm" = 3N = -16.66; gold 1: both wrong.
     * So acc = 2/4 and acc_norm = 1/4. */
    const char *a[] = {"ab", "ba"}, *b[] = {"abcd", "zzz"}, *c[] = {"qqq", "abc"}, *d[] = {"xy", "mm"};
    add(t, "x", a, 2, 0);
    add(t, "x", b, 2, 1);
    add(t, "x", c, 2, 0);
    add(t, "x", d, 2, 1);
    /* Per-item log-likelihoods: the delimiter ' ' and every byte of the choice are scored. */
    double ll[2];
    CHECK(rp_eval_item(&lm, t, 1, "", ll, NULL) == RP_OK);
    CHECK_NEAR(ll[0], 2 * LN + 3 * LS, 1e-5);   /* ' ' a b c d: x->' ' N, ' '->a N, a->b, b->c, c->d S */
    CHECK_NEAR(ll[1], 4 * LN, 1e-5);            /* ' ' z z z */
    rp_eval_result r;
    CHECK(rp_eval_task(&lm, t, NULL, &r) == RP_OK);
    const rp_metric *acc = rp_eval_metric(&r, "acc"), *accn = rp_eval_metric(&r, "acc_norm");
    CHECK(acc && accn && r.n == 4);
    if (acc && accn) {
        CHECK_NEAR(acc->value, 0.5, 1e-12);
        CHECK_NEAR(acc->stderr_, sqrt(0.25 * 4 / 3 / 4), 1e-12);      /* sample std / sqrt(n) */
        CHECK_NEAR(accn->value, 0.25, 1e-12);
        CHECK_NEAR(accn->stderr_, sqrt(0.1875 * 4 / 3 / 4), 1e-12);
    }
    /* rp_eval_item: one logprobs call with the item's choices; the task: one call with every choice of
     * its (few, short) items, so an engine can pack them. */
    CHECK(m.calls == 1 + 1);
    CHECK(m.max_nseq == 8);
    rp_task_free(t);
}

/* acc_norm divides by characters (code points), as lm-eval's len() on a str does, not by bytes.
 * Context "x"; choice 0 "90°C" (4 characters, 5 bytes: '9' '0' C2 B0 'C'): ' ' and every byte are
 * non-successor steps, 6N; choice 1 "zzzz": 5N. Per character 6N/4 = 1.5N < 5N/4 = 1.25N, so "zzzz"
 * (gold) wins; per byte 6N/5 = 1.2N would have picked "90°C". acc picks "zzzz" too (5N > 6N). */
static void test_acc_norm_chars(void) {
    mock m;
    rp_lm lm = mock_lm(&m, 0, 0);
    rp_task *t;
    CHECK(rp_task_new("t", RP_TASK_MC, "mem", &t) == RP_OK);
    const char *a[] = {"90\xC2\xB0" "C", "zzzz"};
    add(t, "x", a, 2, 1);
    double ll[2];
    CHECK(rp_eval_item(&lm, t, 0, "", ll, NULL) == RP_OK);
    CHECK_NEAR(ll[0], 6 * LN, 1e-5);
    CHECK_NEAR(ll[1], 5 * LN, 1e-5);
    rp_eval_result r;
    CHECK(rp_eval_task(&lm, t, NULL, &r) == RP_OK);
    const rp_metric *acc = rp_eval_metric(&r, "acc"), *accn = rp_eval_metric(&r, "acc_norm");
    CHECK(acc && accn && acc->value == 1.0 && accn->value == 1.0);
    rp_task_free(t);
}

/* MC2: probability mass on the true answers. */
static void test_mc2(void) {
    mock m;
    rp_lm lm = mock_lm(&m, 1, 0);
    rp_task *t;
    CHECK(rp_task_new("mc2", RP_TASK_MC2, "mem", &t) == RP_OK);
    /* Context "x": " ab" = N+N+S, " zz" = 3N, " q" = 2N: probabilities in ratio 3/258 : 1/258 : 1
     * -> 3 : 1 : 258; with truth {1,0,0}: 3/262. " ab"," cd"," zz": 3 : 3 : 1, truth {1,1,0}: 6/7. */
    const char *c1[] = {"ab", "zz", "q"}, *c2[] = {"ab", "cd", "zz"};
    unsigned char t1[] = {1, 0, 0}, t2[] = {1, 1, 0};
    rp_task_item i1 = {.context = "x", .choices = (char **)c1, .n_choices = 3, .gold = 0, .truth = t1};
    rp_task_item i2 = {.context = "x", .choices = (char **)c2, .n_choices = 3, .gold = 0, .truth = t2};
    CHECK(rp_task_add_item(t, &i1, "i1") == RP_OK);
    CHECK(rp_task_add_item(t, &i2, "i2") == RP_OK);
    rp_eval_result r;
    CHECK(rp_eval_task(&lm, t, NULL, &r) == RP_OK);
    const rp_metric *mc2 = rp_eval_metric(&r, "mc2");
    double a = 3.0 / 262, b = 6.0 / 7;
    CHECK(mc2 != NULL);
    if (mc2) {
        CHECK_NEAR(mc2->value, (a + b) / 2, 1e-6);
        CHECK_NEAR(mc2->stderr_, fabs(a - b) / 2, 1e-6);
    }
    /* An MC2 item without a false answer is refused. */
    unsigned char t3[] = {1, 1, 1};
    rp_task_item i3 = {.context = "x", .choices = (char **)c2, .n_choices = 3, .gold = 0, .truth = t3};
    CHECK(rp_task_add_item(t, &i3, "i3") == RP_ERR_FORMAT);
    rp_task_free(t);
}

/* WinoGrande-style partial scoring: only the shared continuation is scored, after each context. */
static void test_partial(void) {
    mock m;
    rp_lm lm = mock_lm(&m, 0, 0);
    rp_task *t;
    CHECK(rp_task_new("wg", RP_TASK_MC, "mem", &t) == RP_OK);
    const char *ctxs[] = {"p\x1f", "pq"}, *ch[] = {"!\"", "!\""};
    rp_task_item it = {.contexts = (char **)ctxs, .choices = (char **)ch, .n_choices = 2, .gold = 0};
    CHECK(rp_task_add_item(t, &it, "wg") == RP_OK);
    double ll[2];
    CHECK(rp_eval_item(&lm, t, 0, "", ll, NULL) == RP_OK);
    CHECK_NEAR(ll[0], 3 * LS, 1e-5);         /* 0x1f->' ' , ' '->'!', '!'->'"': all successors */
    CHECK_NEAR(ll[1], LN + 2 * LS, 1e-5);    /* 'q'->' ' is not */
    rp_eval_result r;
    CHECK(rp_eval_task(&lm, t, NULL, &r) == RP_OK);
    CHECK(rp_eval_metric(&r, "acc") && rp_eval_metric(&r, "acc")->value == 1.0);
    rp_task_free(t);
}

/* LAMBADA-style: greedy match of every token, and exp(-mean log-likelihood). */
static void test_lastword(void) {
    mock m;
    rp_lm lm = mock_lm(&m, 1, 0);
    rp_task *t;
    CHECK(rp_task_new("lw", RP_TASK_LASTWORD, "mem", &t) == RP_OK);
    const char *w1[] = {"!\"#"}, *w2[] = {"ab"};
    add(t, "w\x1f", w1, 1, 0);   /* ' ' ! " #: four successor steps: greedy, ll = 4S */
    add(t, "w", w2, 1, 0);       /* 'w'->' ' N, ' '->a N, a->b S: not greedy, ll = 2N + S */
    rp_eval_result r;
    CHECK(rp_eval_task(&lm, t, NULL, &r) == RP_OK);
    const rp_metric *acc = rp_eval_metric(&r, "acc"), *ppl = rp_eval_metric(&r, "ppl");
    CHECK(acc && ppl);
    if (acc && ppl) {
        CHECK_NEAR(acc->value, 0.5, 1e-12);
        CHECK_NEAR(ppl->value / exp(-(4 * LS + 2 * LN + LS) / 2), 1.0, 1e-6);
    }
    rp_task_free(t);
}

/* Truncation to the model's context keeps the answer; an answer longer than the context is an error. */
static void test_truncation(void) {
    mock m;
    rp_lm lm = mock_lm(&m, 1, 6);
    rp_task *t;
    CHECK(rp_task_new("tr", RP_TASK_MC, "mem", &t) == RP_OK);
    const char *ch[] = {"ab", "abcdefgh"};
    add(t, "a long context that does not fit", ch, 2, 0);
    double ll[2];
    CHECK(rp_eval_item(&lm, t, 0, "", ll, NULL) == RP_ERR_RANGE);
    rp_task_free(t);
    CHECK(rp_task_new("tr", RP_TASK_MC, "mem", &t) == RP_OK);
    const char *ch2[] = {"ab", "zz"};
    add(t, "a long context that does not fit", ch2, 2, 0);
    CHECK(rp_eval_item(&lm, t, 0, "", ll, NULL) == RP_OK);
    CHECK_NEAR(ll[0], 2 * LN + LS, 1e-5);   /* 't'->' ' N, ' '->a N, a->b S: the cut prefix is not needed */
    CHECK_NEAR(ll[1], 3 * LN, 1e-5);
    rp_task_free(t);
}

/* Few-shot prefixes: header, examples in order or seeded draws, never the item itself. */
static void test_fewshot(void) {
    rp_task *t, *pool;
    CHECK(rp_task_new("fs", RP_TASK_MC, "mem", &t) == RP_OK);
    const char *ch[] = {"A", "B"};
    char ctx[16];
    for (int i = 0; i < 10; i++) { snprintf(ctx, sizeof ctx, "Q%d", i); add(t, ctx, ch, 2, i % 2); }
    rp_buf b = {0}, b2 = {0};
    /* No pool: K other items, seeded. */
    CHECK(rp_task_prefix(t, 3, 4, 7, &b) == RP_OK);
    CHECK(rp_task_prefix(t, 3, 4, 7, &b2) == RP_OK);
    CHECK(b.data && b2.data && strcmp(b.data, b2.data) == 0);        /* deterministic */
    CHECK(b.data && strstr(b.data, "Q3 ") == NULL);                  /* not the item itself */
    int n = 0;
    for (const char *p = b.data; p && (p = strstr(p, "\n\n")); p += 2) n++;
    CHECK(n == 4);
    /* Each example is context + " " + gold answer + "\n\n": Qi is followed by A for even i, B for odd. */
    for (int i = 0; i < 10; i++) {
        char bad[16];
        snprintf(bad, sizeof bad, "Q%d %c\n\n", i, i % 2 ? 'A' : 'B');
        CHECK(strstr(b.data, bad) == NULL);
    }
    /* K larger than the pool is capped at the 9 other items, all distinct. */
    CHECK(rp_task_prefix(t, 0, 50, 1, &b) == RP_OK);
    for (int i = 1; i < 10; i++) { snprintf(ctx, sizeof ctx, "Q%d ", i); CHECK(strstr(b.data, ctx) != NULL); }
    /* A pool taken in order, with a header. */
    size_t g;
    CHECK(rp_task_add_group(t, "sub", "Header.\n\n", 1, &g) == RP_OK && g == 1);
    CHECK(rp_task_new("pool", RP_TASK_MC, "mem", &pool) == RP_OK);
    add(pool, "d0", ch, 2, 1);
    add(pool, "d1", ch, 2, 0);
    add(pool, "d2", ch, 2, 0);
    CHECK(rp_task_set_shots(t, g, pool) == RP_OK);
    rp_task_item it = {.context = "Qx", .choices = (char **)ch, .n_choices = 2, .gold = 0, .group = (int)g};
    CHECK(rp_task_add_item(t, &it, "x") == RP_OK);
    CHECK(rp_task_prefix(t, 10, 2, 99, &b) == RP_OK);
    CHECK(b.data && strcmp(b.data, "Header.\n\nd0 B\n\nd1 A\n\n") == 0);
    CHECK(rp_task_prefix(t, 10, 0, 99, &b) == RP_OK);
    CHECK(b.data && strcmp(b.data, "Header.\n\n") == 0);
    /* The scorer puts the prefix before the context: with the mock only the last byte matters, so the
     * 2-shot log-likelihood equals the zero-shot one here; check the call succeeds and the count of
     * sequences is the item's choices. */
    mock m;
    rp_lm lm = mock_lm(&m, 1, 0);
    rp_eval_opts o = {.shots = 2, .seed = 5};
    rp_eval_result r;
    CHECK(rp_eval_task(&lm, t, &o, &r) == RP_OK && r.n == 11);
    rp_buf_free(&b);
    rp_buf_free(&b2);
    rp_task_free(t);
}

/* Perplexity on "abcabc...": steps into 'a' (after 'c') are non-successors, the rest successors. */
static void test_perplexity(void) {
    char text[31];
    for (int i = 0; i < 30; i++) text[i] = "abc"[i % 3];
    text[30] = 0;
    for (int add_bos = 0; add_bos <= 1; add_bos++) {
        mock m;
        rp_lm lm = mock_lm(&m, add_bos, 64);
        rp_ppl_result r;
        /* llama.cpp protocol, c = 8: positions 4..6 of each chunk predict tokens 5..7; in every chunk one
         * of the three is an 'a' (worked out per chunk for both offsets), so the mean NLL is
         * (2 log 86 + log 258)/3, PPL = (86^2 * 258)^(1/3), and the population variance of the NLLs is
         * (2/9)(log 3)^2, giving llama.cpp's ± = sqrt(var/(count-1)) * PPL. 30 (31) tokens: 3 chunks. */
        CHECK(rp_eval_perplexity_llamacpp(&lm, text, 30, 8, 0, &r, NULL, NULL) == RP_OK);
        double ppl = cbrt(86.0 * 86.0 * 258.0);
        CHECK(r.n_chunks == 3 && r.n_scored == 9);
        CHECK_NEAR(r.ppl, ppl, 1e-4);
        CHECK_NEAR(r.ppl_stderr, sqrt(2.0 / 9 * log(3) * log(3) / 8) * ppl, 1e-4);
        /* max_chunks limits; a too-short text is an error, as in llama.cpp. */
        CHECK(rp_eval_perplexity_llamacpp(&lm, text, 30, 8, 2, &r, NULL, NULL) == RP_OK && r.n_chunks == 2);
        CHECK(rp_eval_perplexity_llamacpp(&lm, text, 30, 16, 0, &r, NULL, NULL) == RP_ERR_INVAL);
        /* Rolling: every token once. With BOS: log 256 for the first, then 9 'a' steps of log 258 and 20
         * successor steps of log 86 (30 tokens). Without BOS the first token is not scored. */
        for (int w = 2; w <= 64; w += 9) {
            CHECK(rp_eval_perplexity_rolling(&lm, text, 30, w, &r, NULL, NULL) == RP_OK);
            double nll = 9 * log(258.0) + 20 * log(86.0) + (add_bos ? log(256.0) : 0);
            size_t cnt = add_bos ? 30 : 29;
            CHECK(r.n_scored == cnt);
            CHECK_NEAR(r.mean_nll, nll / cnt, 1e-5);
            CHECK_NEAR(r.bpb, nll / log(2.0) / 30, 1e-5);
            CHECK_NEAR(r.word_ppl, exp(nll), 1e-2 * exp(nll));   /* one word */
        }
    }
    /* Through a TEXT task with a byte limit cut back to a line end: "abc\nab" limited to 5 -> "abc\n". */
    mock m;
    rp_lm lm = mock_lm(&m, 1, 64);
    rp_task *t;
    CHECK(rp_task_new("txt", RP_TASK_TEXT, "mem", &t) == RP_OK);
    t->text = strdup("abc\nab");
    t->text_len = 6;
    rp_eval_opts o = {.limit = 5, .ctx = 16};
    rp_eval_result r;
    CHECK(rp_eval_task(&lm, t, &o, &r) == RP_OK);
    /* BOS->a log 256, a->b, b->c successors, c->'\n' non-successor. */
    double nll = log(256.0) + 2 * log(86.0) + log(258.0);
    CHECK(r.n == 4);
    CHECK(rp_eval_metric(&r, "bpb") && fabs(rp_eval_metric(&r, "bpb")->value - nll / log(2.0) / 4) < 1e-5);
    rp_task_free(t);
}

/* --limit picks a seeded subset of the requested size. */
static void test_limit(void) {
    mock m;
    rp_lm lm = mock_lm(&m, 1, 0);
    rp_task *t;
    CHECK(rp_task_new("lim", RP_TASK_MC, "mem", &t) == RP_OK);
    const char *ch[] = {"ab", "zz"};
    for (int i = 0; i < 20; i++) add(t, "x", ch, 2, 0);
    rp_eval_opts o = {.limit = 7, .seed = 3};
    rp_eval_result r;
    CHECK(rp_eval_task(&lm, t, &o, &r) == RP_OK);
    CHECK(r.n == 7 && m.calls == 1 && m.max_nseq == 14);   /* the 7 chosen items' choices in one call */
    CHECK(rp_eval_metric(&r, "acc")->value == 1.0);
    size_t a[20], b[20];
    for (int i = 0; i < 20; i++) a[i] = b[i] = (size_t)i;
    rp_task_shuffle(a, 20, 3);
    rp_task_shuffle(b, 20, 3);
    CHECK(memcmp(a, b, sizeof a) == 0);
    int moved = 0;
    for (int i = 0; i < 20; i++) moved += a[i] != (size_t)i;
    CHECK(moved > 0);
    rp_task_free(t);
}

/* The Lua binding, driven by a Lua-table model with the same closed form. */
static const char *lua_src =
    "local eval = require('repro.eval')\n"
    "local S, N = math.log(3/258), math.log(1/258)\n"
    "local lm = { n_ctx = 0, bos = 256, add_bos = true,\n"
    "  tokenize = function(text) local t = {} for i = 1, #text do t[i] = text:byte(i) end return t end,\n"
    "  logprobs = function(seqs, from)\n"
    "    local out, gr = {}, {}\n"
    "    for s = 1, #seqs do\n"
    "      local q, o, g = seqs[s], {}, {}\n"
    "      for i = from[s] + 1, #q - 1 do\n"
    "        local p, t = q[i], q[i + 1]\n"
    "        o[#o + 1] = (p == 256) and math.log(1/256) or (t == (p + 1) % 256 and S or N)\n"
    "        g[#g + 1] = p ~= 256 and t == (p + 1) % 256\n"
    "      end\n"
    "      out[s], gr[s] = o, g\n"
    "    end\n"
    "    return out, gr\n"
    "  end }\n"
    "local function near(a, b, tol) return math.abs(a - b) <= tol end\n"
    "local fails = {}\n"
    "local function check(c, what) if not c then fails[#fails + 1] = what end end\n"
    /* the four items of test_mc: acc 1/2, acc_norm 1/4 */
    "local t = eval.task{ name = 'lua_mc', items = {\n"
    "  { context = 'x', choices = {'ab', 'ba'}, gold = 1 }, { context = 'x', choices = {'abcd', 'zzz'}, gold = 2 },\n"
    "  { context = 'x', choices = {'qqq', 'abc'}, gold = 1 }, { context = 'x', choices = {'xy', 'mm'}, gold = 2 } } }\n"
    "check(t:size() == 4 and t:kind() == 'mc' and t:item(2).gold == 2, 'task accessors')\n"
    "local r = eval.evaluate(lm, t, { per_item = true })\n"
    "check(r.n == 4 and r.acc == 0.5 and r.acc_norm == 0.25, 'acc ' .. tostring(r.acc) .. ' acc_norm ' .. tostring(r.acc_norm))\n"
    "check(near(r.acc_stderr, math.sqrt(1/12), 1e-12), 'acc stderr')\n"
    "check(#r.items == 4 and near(r.items[2].ll[1], 2*N + 3*S, 1e-5) and r.items[2].pred == 2, 'per-item ll')\n"
    /* MC2 */
    "local t2 = eval.task{ kind = 'mc2', items = { { context = 'x', choices = {'ab', 'zz', 'q'}, truth = {true, false, false} } } }\n"
    "check(near(eval.evaluate(lm, t2).mc2, 3/262, 1e-6), 'mc2')\n"
    /* llama.cpp perplexity on 'abcabc...' (see test_perplexity) */
    "local p = eval.perplexity(lm, string.rep('abc', 10), { ctx = 8, protocol = 'llamacpp' })\n"
    "check(near(p.ppl, (86*86*258)^(1/3), 1e-4) and p.n_chunks == 3, 'llama.cpp ppl ' .. p.ppl)\n"
    /* errors: unknown option, bad model, an error inside the model, use after close */
    "local ok, err = pcall(eval.evaluate, lm, t, { shot = 1 })\n"
    "check(not ok and err:find(\"unknown option 'shot'\", 1, true), 'unknown option: ' .. tostring(err))\n"
    "local bad = { tokenize = lm.tokenize, logprobs = function() error('boom') end }\n"
    "ok, err = pcall(eval.evaluate, bad, t)\n"
    "check(not ok and err:find('lm.logprobs', 1, true) and err:find('boom', 1, true), 'model error: ' .. tostring(err))\n"
    "ok, err = pcall(eval.task, { items = { { context = 'x', choices = {'a', 'b'}, gold = 3 } } })\n"
    "check(not ok and err:find('gold', 1, true), 'bad gold: ' .. tostring(err))\n"
    "t:close()\n"
    "ok, err = pcall(t.size, t)\n"
    "check(not ok and err:find('used after close', 1, true), 'use after close')\n"
    "local mirror = os.getenv('REPRO_MIRROR')\n"
    "if mirror and mirror ~= '' then\n"
    "  local arc = eval.load('arc_easy')\n"
    "  check(arc:size() == 2376 and arc:item(1).gold == 1, 'arc_easy via Lua')\n"
    "  local r2 = eval.evaluate(lm, arc, { limit = 5, shots = 2 })\n"
    "  check(r2.n == 5, 'limit via Lua')\n"
    /* a repro.model object (when the engine's binding is built in), scored in C: llama.cpp's figure */
    "  local okm, model = pcall(require, 'repro.model')\n"
    "  if okm then\n"
    "    local m = model.load(mirror .. '/stories260K/stories260K.bin')\n"
    "    local p2 = eval.perplexity(m, eval.load('tinystories'):text(), { ctx = 128, chunks = 50, protocol = 'llamacpp' })\n"
    "    check(math.abs(p2.ppl / 3.9143 - 1) < 0.005, 'repro.model perplexity ' .. p2.ppl)\n"
    "    local r3 = eval.evaluate(m, arc, { limit = 3 })\n"
    "    check(r3.n == 3 and r3.acc >= 0 and r3.acc <= 1, 'repro.model evaluate')\n"
    "    m:close()\n"
    "  end\n"
    "end\n"
    "return table.concat(fails, '; ')\n";

static void test_lua(void) {
    lua_State *L = rp_lua_state_new(".", NULL, 1);
    CHECK(L != NULL);
    if (!L) return;
    int st = luaL_loadstring(L, lua_src);
    if (st == LUA_OK) st = rp_lua_pcall_tb(L, 0, 1);
    CHECK_MSG(st == LUA_OK, "%s", lua_tostring(L, -1));
    if (st == LUA_OK) CHECK_MSG(lua_tostring(L, -1) && !*lua_tostring(L, -1), "Lua checks failed: %s", lua_tostring(L, -1));
    lua_close(L);
}

int rp_cmd_eval(int argc, char **argv);

/* A real model against llama.cpp's published figures (../shared/reference/stories260K/README.md):
 * stories260K on the TinyStories slice, llama.cpp's protocol, 50 chunks: c = 128 gives 3.9143 ± 0.12473,
 * c = 512 gives 3.8662 ± 0.06273; the issue asks for agreement within 0.5%. */
static void test_real_perplexity(void) {
    const char *mirror = getenv("REPRO_MIRROR");
    if (!mirror || !*mirror) { printf("skip [mirror]: REPRO_MIRROR not set, llama.cpp perplexity check skipped\n"); return; }
    char path[4096];
    snprintf(path, sizeof path, "%s/stories260K/stories260K.bin", mirror);
    if (access(path, R_OK) != 0) { printf("skip [mirror]: %s missing\n", path); return; }
    rp_model *m = NULL;
    rp_task *t = NULL;
    rp_task_opts to = {.mirror = mirror};
    CHECK_MSG(rp_model_load(path, NULL, &m) == RP_OK, "%s", rp_errmsg());
    CHECK_MSG(rp_task_load("tinystories", &to, &t) == RP_OK, "%s", rp_errmsg());
    if (m && t) {
        rp_lm lm = rp_model_as_lm(m);
        CHECK(lm.add_bos == 1 && lm.bos >= 0);
        const int c[2] = {128, 512};
        const double ppl[2] = {3.9143, 3.8662}, se[2] = {0.12473, 0.06273};
        for (int k = 0; k < 2; k++) {
            rp_ppl_result r;
            CHECK_MSG(rp_eval_perplexity_llamacpp(&lm, t->text, t->text_len, c[k], 50, &r, NULL, NULL) == RP_OK, "%s", rp_errmsg());
            CHECK(r.n_chunks == 50 && r.n_scored == (size_t)50 * (c[k] - 1 - c[k] / 2));
            CHECK_MSG(fabs(r.ppl / ppl[k] - 1) < 0.005, "c=%d: ppl %.4f vs llama.cpp %.4f", c[k], r.ppl, ppl[k]);
            CHECK_MSG(fabs(r.ppl_stderr / se[k] - 1) < 0.02, "c=%d: ± %.5f vs llama.cpp %.5f", c[k], r.ppl_stderr, se[k]);
        }
    }
    rp_task_free(t);
    rp_model_free(m);

    /* The command records a finished run with one summary per figure. */
    const char *db = "/tmp/repro_test_eval.db";
    unlink(db);
    char *argv[] = {"eval", path, "tinystories", "--protocol", "llamacpp", "--ctx", "128", "--limit", "3", "--db", (char *)db, "--json", NULL};
    int rc = rp_cmd_eval(12, argv);
    CHECK(rc == 0);
    rp_db *d = NULL;
    if (rp_db_open(db, &d) == RP_OK) {
        rp_buf b = {0};
        CHECK_MSG(rp_db_get_run(d, 1, &b) == RP_OK, "%s", rp_errmsg());
        CHECK(b.data && strstr(b.data, "\"finished\"") && strstr(b.data, "\"ppl\"") && strstr(b.data, "\"eval\""));
        rp_buf_free(&b);
        rp_db_close(d);
    } else CHECK_MSG(0, "%s", rp_errmsg());
    /* Usage errors exit 2; a bad task name is a usage error too, naming the valid ones. */
    char *bad[] = {"eval", path, "nosuch", "--no-record", NULL};
    CHECK(rp_cmd_eval(4, bad) == 2);
    char *bad2[] = {"eval", path, "arc_easy", "--shots", "x", NULL};
    CHECK(rp_cmd_eval(5, bad2) == 2);
    unlink(db);
}

int main(void) {
    LS = log(3.0 / 258);
    LN = log(1.0 / 258);
    test_mc(0);
    test_mc(1);
    test_acc_norm_chars();
    test_mc2();
    test_partial();
    test_lastword();
    test_truncation();
    test_fewshot();
    test_perplexity();
    test_limit();
    test_lua();
    test_real_perplexity();
    return checks_done("test_eval");
}
