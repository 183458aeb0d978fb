/* test_sdpo.c: the sDPO plugin's C core. The DPO loss, rewards, accuracy and margin against closed forms on
 * hand-made log-probabilities; ln 2 whenever policy equals reference; the gradient against central finite
 * differences; the loaders on hand-written records of each format (and malformed ones: the error names file,
 * record and field); the staged mirror files' record counts; the reference cache: round trip, a changed key
 * (a changed reference) reads as stale, a truncated or altered file is an error, never numbers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "check.h"
#include "plugins/sdpo/sdpo.h"
#include "util/buf.h"

static void test_closed_form(void) {
    /* pair 1: γ_θ = 2, γ_ref = 0 -> z = 0.2; pair 2: γ_θ = -1, γ_ref = 1 -> z = -0.2 (β = 0.1) */
    double lp[4] = { -10, -12, -5, -4 }, ref[4] = { -11, -11, -5, -6 }, g[4];
    rp_dpo_stats s;
    CHECK(rp_dpo_loss(lp, ref, 2, 0.1, &s, g) == RP_OK);
    double want = (log(1 + exp(-0.2)) + log(1 + exp(0.2))) / 2;
    CHECK_NEAR(s.loss, want, 1e-15);
    CHECK_NEAR(s.reward_chosen, (0.1 * 1 + 0.1 * 0) / 2, 1e-15);
    CHECK_NEAR(s.reward_rejected, (0.1 * -1 + 0.1 * 2) / 2, 1e-15);
    CHECK_NEAR(s.accuracy, 0.5, 0);
    CHECK_NEAR(s.margin, (0.2 - 0.2) / 2, 1e-15);
    CHECK_NEAR(s.gamma_policy, (2 + -1) / 2.0, 1e-15);
    CHECK_NEAR(s.gamma_ref, (0 + 1) / 2.0, 1e-15);
    /* closed-form gradient: ∂/∂lw = -β σ(-z) / P */
    CHECK_NEAR(g[0], -0.1 / (1 + exp(0.2)) / 2, 1e-15);
    CHECK_NEAR(g[1], 0.1 / (1 + exp(0.2)) / 2, 1e-15);
    CHECK_NEAR(g[2], -0.1 / (1 + exp(-0.2)) / 2, 1e-15);
    /* extreme margins stay finite: loss ≈ e^{-1000} and ≈ 1000 */
    double big[2] = { 0, -10000 }, zero[2] = { 0, 0 };
    CHECK(rp_dpo_loss(big, zero, 1, 0.1, &s, g) == RP_OK && s.loss >= 0 && s.loss < 1e-300 && s.accuracy == 1);
    double neg[2] = { -10000, 0 };
    CHECK(rp_dpo_loss(neg, zero, 1, 0.1, &s, g) == RP_OK);
    CHECK_NEAR(s.loss, 1000, 1e-9);
    CHECK_NEAR(g[0], -0.1, 1e-15);
    CHECK_NEAR(rp_dpo_softplus_neg(0), log(2), 1e-16);
    /* bad input is an error with a message, not a number */
    double nan2[2] = { NAN, 0 };
    CHECK(rp_dpo_loss(nan2, zero, 1, 0.1, &s, g) == RP_ERR_INVAL && strstr(rp_errmsg(), "policy log-probability 1"));
    CHECK(rp_dpo_loss(zero, zero, 1, 0, &s, g) == RP_ERR_INVAL && strstr(rp_errmsg(), "beta"));
    CHECK(rp_dpo_loss(zero, zero, 0, 0.1, &s, g) == RP_ERR_INVAL);
}

static void test_ln2_and_fd(void) {
    enum { P = 5 };
    double lp[2 * P], ref[2 * P], g[2 * P];
    unsigned x = 12345;
    for (int i = 0; i < 2 * P; i++) { x = x * 1103515245u + 12345u; lp[i] = -1.0 - (double)(x % 100000) / 1000.0; }
    rp_dpo_stats s;
    /* target = reference: every logit 0, loss exactly ln 2, zero rewards, accuracy 0 (ties) */
    CHECK(rp_dpo_loss(lp, lp, P, 0.1, &s, g) == RP_OK);
    CHECK(s.loss == log(2.0));
    CHECK(s.reward_chosen == 0 && s.reward_rejected == 0 && s.margin == 0 && s.accuracy == 0);
    for (int i = 0; i < 2 * P; i++) { x = x * 1103515245u + 12345u; ref[i] = lp[i] + ((double)(x % 2000) - 1000) / 50.0; }
    for (double beta = 0.05; beta < 1; beta *= 4) {
        CHECK(rp_dpo_loss(lp, ref, P, beta, &s, g) == RP_OK);
        for (int i = 0; i < 2 * P; i++) {
            double h = 1e-5, keep = lp[i];
            rp_dpo_stats a, b;
            lp[i] = keep + h; rp_dpo_loss(lp, ref, P, beta, &a, NULL);
            lp[i] = keep - h; rp_dpo_loss(lp, ref, P, beta, &b, NULL);
            lp[i] = keep;
            double fd = (a.loss - b.loss) / (2 * h);
            CHECK_MSG(fabs(fd - g[i]) < 1e-8, "beta %g entry %d: fd %.12g analytic %.12g", beta, i, fd, g[i]);
        }
    }
}

static const char UF[] =
    "{\"prompt\": \"2+2?\", \"chosen\": \"4\", \"rejected\": \"5\", \"metadata\": {\"score_chosen\": 9, \"score_rejected\": 2.5}}\n"
    "\n"
    "{\"prompt\": \"hi\", \"chosen\": \"hello\", \"rejected\": \"go away\"}";
static const char ORCA[] =
    "{\"input\": {\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"Q?\"}]},"
    " \"preferred_output\": [{\"role\": \"assistant\", \"content\": \"good\"}],"
    " \"non_preferred_output\": [{\"role\": \"assistant\", \"content\": \"bad\"}]}\n";
static const char HH[] =
    "{\"chosen\": \"\\n\\nHuman: Hi\\n\\nAssistant: Hello.\\n\\nHuman: Tell me a fact.\\n\\nAssistant: Water is wet.\","
    " \"rejected\": \"\\n\\nHuman: Hi\\n\\nAssistant: Hello.\\n\\nHuman: Tell me a fact.\\n\\nAssistant: No.\"}\n";

static void test_loaders(void) {
    rp_pref_set s = { 0 };
    CHECK(rp_pref_parse(UF, strlen(UF), RP_PREF_ULTRAFEEDBACK, "uf.jsonl", &s) == RP_OK);
    CHECK(s.n == 2 && s.pairs[0].n_msgs == 1 && !strcmp(s.pairs[0].msgs[0].role, "user") && !strcmp(s.pairs[0].chosen, "4"));
    CHECK_NEAR(s.pairs[0].score, 6.5, 0);
    CHECK(isnan(s.pairs[1].score) && s.pairs[1].record == 3 && !strcmp(s.pairs[1].rejected, "go away"));
    CHECK(rp_pref_parse(ORCA, strlen(ORCA), RP_PREF_ORCA_AZURE, "orca.jsonl", &s) == RP_OK && s.n == 3);
    rp_pref_pair *o = &s.pairs[2];
    CHECK(o->n_msgs == 2 && !strcmp(o->msgs[0].role, "system") && !strcmp(o->msgs[1].content, "Q?") && !strcmp(o->chosen, "good"));
    CHECK(rp_pref_parse(HH, strlen(HH), RP_PREF_HH, "hh.jsonl", &s) == RP_OK && s.n == 4);
    rp_pref_pair *h = &s.pairs[3];
    CHECK_MSG(h->n_msgs == 3, "hh turns %d", h->n_msgs);
    if (h->n_msgs == 3) {
        CHECK(!strcmp(h->msgs[0].role, "user") && !strcmp(h->msgs[0].content, "Hi"));
        CHECK(!strcmp(h->msgs[1].role, "assistant") && !strcmp(h->msgs[1].content, "Hello."));
        CHECK(!strcmp(h->msgs[2].content, "Tell me a fact."));
    }
    CHECK(!strcmp(h->chosen, "Water is wet.") && !strcmp(h->rejected, "No."));
    /* malformed records: file, record and field named; what came before is kept */
    static const struct { rp_pref_format f; const char *text, *want; } bad[] = {
        { RP_PREF_ULTRAFEEDBACK, "{\"prompt\": \"x\", \"chosen\": \"y\"}", "record 1: field 'rejected'" },
        { RP_PREF_ULTRAFEEDBACK, "\n{\"prompt\": 3, \"chosen\": \"y\", \"rejected\": \"z\"}", "record 2: field 'prompt'" },
        { RP_PREF_ULTRAFEEDBACK, "{\"prompt\": \"x\", \"chosen\": \"y\", \"rejected\": \"z\", \"metadata\": {\"score_chosen\": \"9\"}}",
          "field 'metadata.score_chosen'" },
        { RP_PREF_ULTRAFEEDBACK, "{\"prompt\": \"x\",", "record 1: not JSON" },
        { RP_PREF_ULTRAFEEDBACK, "[1, 2]", "record 1: not a JSON object" },
        { RP_PREF_ORCA_AZURE, "{\"input\": {\"messages\": []}}", "field 'input.messages'" },
        { RP_PREF_ORCA_AZURE, "{\"input\": {\"messages\": [{\"role\": \"bot\", \"content\": \"x\"}]}}", "field 'input.messages.0'" },
        { RP_PREF_ORCA_AZURE, "{\"input\": {\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}, \"preferred_output\": []}",
          "field 'preferred_output'" },
        { RP_PREF_HH, "{\"chosen\": \"no markers\", \"rejected\": \"x\"}", "field 'chosen'" },
        { RP_PREF_HH, "{\"chosen\": \"\\n\\nHuman: a\\n\\nAssistant: b\", \"rejected\": \"\\n\\nHuman: c\\n\\nAssistant: b\"}",
          "field 'rejected'" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t before = s.n;
        rp_status st = rp_pref_parse(bad[i].text, strlen(bad[i].text), bad[i].f, "bad.jsonl", &s);
        CHECK_MSG(st == RP_ERR_FORMAT && strstr(rp_errmsg(), "bad.jsonl") && strstr(rp_errmsg(), bad[i].want), "case %zu: %s", i,
                  rp_errmsg());
        CHECK(s.n == before);
    }
    rp_pref_format f;
    CHECK(rp_pref_format_parse("orca", &f) == RP_OK && f == RP_PREF_ORCA_AZURE);
    CHECK(rp_pref_format_parse("dpo", &f) == RP_ERR_INVAL && strstr(rp_errmsg(), "'dpo'"));
    rp_pref_set_free(&s);
    CHECK(rp_pref_load("/nonexistent/x.jsonl", RP_PREF_HH, &s) == RP_ERR_IO && strstr(rp_errmsg(), "/nonexistent/x.jsonl"));
}

static void test_mirror(void) {
    const char *mirror = getenv("REPRO_MIRROR");
    static const struct { const char *path; rp_pref_format f; size_t n; } files[] = {
        { "orca-dpo-pairs-slice/validation.jsonl", RP_PREF_ORCA_AZURE, 284 },
        { "ultrafeedback-binarized-slice/train_clean.jsonl", RP_PREF_ULTRAFEEDBACK, 1000 },
        { "ultrafeedback-binarized-slice/eval_clean.jsonl", RP_PREF_ULTRAFEEDBACK, 200 },
        { "hh-rlhf/helpful-base-test.jsonl.gz", RP_PREF_HH, 2354 },
        { "hh-rlhf/harmless-base-test.jsonl.gz", RP_PREF_HH, 2312 },
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", mirror ? mirror : "", files[i].path);
        if (!mirror || access(path, R_OK) != 0) { printf("skip [mirror]: %s not available\n", files[i].path); continue; }
        rp_pref_set s = { 0 };
        rp_status st = rp_pref_load(path, files[i].f, &s);
        CHECK_MSG(st == RP_OK && s.n == files[i].n, "%s: %s, %zu records", files[i].path, rp_errmsg(), s.n);
        rp_pref_set_free(&s);
    }
}

static void test_cache(void) {
    char dir[] = "/tmp/rp_sdpo_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/ref.bin", dir);
    rp_sha256_ctx c;
    rp_ref_key k1, k2;
    rp_ref_key_begin(&c); rp_ref_key_part(&c, "model", "abc", 3); rp_ref_key_part(&c, "data", "d", 1); rp_ref_key_end(&c, &k1);
    /* the reference changed (new adapters): another key; and parts do not alias ("ab"+"cd" vs "abc"+"d") */
    rp_ref_key_begin(&c); rp_ref_key_part(&c, "model", "ab", 2); rp_ref_key_part(&c, "data", "cd", 2); rp_ref_key_end(&c, &k2);
    CHECK(strcmp(k1.hex, k2.hex) != 0);
    double v[3] = { -1.5, -2.25, 1e-300 }, w[3] = { 7, 7, 7 };
    CHECK(rp_ref_cache_read(path, &k1, w, 3) == RP_ERR_NOTFOUND);
    CHECK(rp_ref_cache_write(path, &k1, v, 3) == RP_OK);
    CHECK(rp_ref_cache_read(path, &k1, w, 3) == RP_OK && !memcmp(v, w, sizeof v));
    double u[3] = { 7, 7, 7 };
    CHECK(rp_ref_cache_read(path, &k2, u, 3) == RP_ERR_NOTFOUND && strstr(rp_errmsg(), "another reference") && u[0] == 7);
    CHECK(rp_ref_cache_read(path, &k1, u, 2) == RP_ERR_FORMAT && u[0] == 7);
    /* no temporary file left beside it */
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    CHECK(access(tmp, F_OK) != 0);
    rp_buf b = { 0 };
    CHECK(rp_read_file(path, &b) == RP_OK);
    /* every truncation is an error, never values */
    for (size_t cut = 0; cut < b.len; cut += (cut < 100 ? 1 : 7)) {
        CHECK(rp_write_file(path, b.data, cut) == RP_OK);
        rp_status st = rp_ref_cache_read(path, &k1, u, 3);
        CHECK_MSG(st == RP_ERR_FORMAT && u[0] == 7, "cut at %zu: status %d", cut, (int)st);
    }
    /* a flipped bit in a value: checksum mismatch */
    b.data[8 + 4 + 64 + 8 + 3] ^= 1;
    CHECK(rp_write_file(path, b.data, b.len) == RP_OK);
    CHECK(rp_ref_cache_read(path, &k1, u, 3) == RP_ERR_FORMAT && strstr(rp_errmsg(), "checksum") && strstr(rp_errmsg(), path));
    rp_buf_free(&b);
    unlink(path);
    rmdir(dir);
}

int main(void) {
    test_closed_form();
    test_ln2_and_fd();
    test_loaders();
    test_mirror();
    test_cache();
    return checks_done("test_sdpo");
}
