/* bench_safe.c: SAFE pipeline throughput (facts rated per second) through the HTTP path against a local
 * OpenAI/Serper-format endpoint at 1, 4 and 16 concurrent requests, and a fully cached rerun (which must
 * make zero network calls). The endpoint is an in-process fixture that answers every step validly after a
 * fixed delay standing in for model latency (default 20 ms; SAFE_BENCH_DELAY_MS), so the numbers measure
 * the pipeline, the HTTP client's concurrency and the cache, not a model. Prints ratios against 1 request
 * in flight (the ideal is the concurrency itself while the fixture's delay dominates). */
#include "net/httpd.h"
#include "util/json.h"
#include "plugins/safe/safe.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int delay_ms = 20;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Text after the last occurrence of tag up to the end of that line. */
static void line_after(const char *p, const char *tag, char *out, size_t n) {
    const char *s = NULL, *x = p;
    while ((x = strstr(x, tag))) { s = x + strlen(tag); x = s; }
    size_t i = 0;
    while (s && s[i] && s[i] != '\n' && i + 1 < n) { out[i] = s[i]; i++; }
    out[i] = 0;
}

static int handler(void *ud, const rp_httpd_request *req, rp_httpd_response *r) {
    (void)ud;
    usleep((useconds_t)delay_ms * 1000);
    rp_json *j = NULL;
    if (rp_json_parse(req->body, req->body_len, &j) != RP_OK) { r->status = 400; rp_buf_puts(&r->body, "{}"); return RP_HTTPD_OK; }
    rp_buf t = {0};
    char st[1024];
    if (strstr(req->path, "/search")) {
        rp_buf_puts(&r->body, "{\"organic\":[{\"snippet\":\"A snippet about ");
        const char *q = rp_json_str(rp_json_get(j, "q"), "");
        rp_json_quote(&t, q, strlen(q));
        rp_buf_append(&r->body, t.data + 1, t.len - 2);
        rp_buf_puts(&r->body, ".\"}]}");
    } else {
        const char *p = rp_json_str(rp_json_path(j, "messages.0.content"), "");
        rp_buf a = {0};
        if (strstr(p, "atomic facts")) { line_after(p, "atomic facts: ", st, sizeof st); rp_buf_printf(&a, "- %s\n", st); }
        else if (strstr(p, "Rewrite the STATEMENT")) { line_after(p, "STATEMENT: ", st, sizeof st); rp_buf_printf(&a, "```\n%s\n```", st); }
        else if (strstr(p, "\"Foo\"")) rp_buf_puts(&a, "They are related. [Foo]");
        else if (strstr(p, "ONE Google search query")) {
            const char *x = strstr(p, "STATEMENT:\n");
            size_t k = 0;
            x = x ? x + 11 : "";
            while (x[k] && x[k] != '\n' && k + 1 < sizeof st) { st[k] = x[k]; k++; }
            st[k] = 0;
            rp_buf_printf(&a, "```\n%s %zu\n```", st, strlen(p));   /* distinct per fact and step */
        }
        else rp_buf_puts(&a, "The knowledge supports it. [Supported]");
        rp_buf_puts(&r->body, "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":");
        rp_json_quote(&r->body, a.data, a.len);
        rp_buf_printf(&r->body, "}}],\"usage\":{\"prompt_tokens\":%zu,\"completion_tokens\":%zu}}", strlen(p) / 4, a.len / 4);
        rp_buf_free(&a);
    }
    rp_buf_free(&t);
    rp_json_free(j);
    return RP_HTTPD_OK;
}

int main(void) {
    const char *d = getenv("SAFE_BENCH_DELAY_MS");
    if (d && atoi(d) >= 0) delay_ms = atoi(d);
    int n_items = 8, sentences = 3;
    rp_httpd *srv = NULL;
    if (rp_httpd_start("127.0.0.1", 0, 128, handler, NULL, &srv) != RP_OK) { fprintf(stderr, "bench_safe: %s\n", rp_errmsg()); return 1; }
    char base[128], surl[128], dir[] = "/tmp/bench_safe_XXXXXX";
    snprintf(base, sizeof base, "http://127.0.0.1:%d/v1", rp_httpd_port(srv));
    snprintf(surl, sizeof surl, "http://127.0.0.1:%d/search", rp_httpd_port(srv));
    if (!mkdtemp(dir)) return 1;
    /* responses: distinct sentences, one fact each */
    char (*resp)[512] = calloc((size_t)n_items, sizeof *resp);
    rp_safe_item *items = calloc((size_t)n_items, sizeof *items);
    for (int i = 0; i < n_items; i++) {
        size_t o = 0;
        for (int s = 0; s < sentences; s++)
            o += (size_t)snprintf(resp[i] + o, sizeof resp[i] - o, "Fact number %d of response %d is true. ", s, i);
        items[i] = (rp_safe_item){"Tell me facts.", resp[i], NULL, 0};
    }
    rp_safe_config cfg = rp_safe_config_default();
    printf("bench_safe: %d responses x %d one-fact sentences, %d searches per fact, fixture delay %d ms per request\n",
           n_items, sentences, cfg.n_queries, delay_ms);
    int conc[] = {1, 4, 16};
    double base_rate = 0;
    for (int ci = 0; ci < 3; ci++) {
        int c = conc[ci];
        rp_safe_openai_config oc = {.base_url = base, .model = "fixture", .max_concurrent = c, .max_retries = 2};
        rp_safe_serper_config sc = {.url = surl, .max_concurrent = c, .max_retries = 2};
        rp_safe_llm llm, cl;
        rp_safe_search srch, cs;
        char path[256];
        snprintf(path, sizeof path, "%s/cache-%d.db", dir, c);
        rp_safe_cache *cache = NULL;
        if (rp_safe_openai_new(&oc, &llm) != RP_OK || rp_safe_serper_new(&sc, &srch) != RP_OK || rp_safe_cache_open(path, &cache) != RP_OK ||
            rp_safe_llm_cached(cache, &llm, 0, &cl) != RP_OK || rp_safe_search_cached(cache, &srch, 0, &cs) != RP_OK) {
            fprintf(stderr, "bench_safe: %s\n", rp_errmsg());
            return 1;
        }
        cfg.max_batch = (size_t)c;
        for (int pass = 0; pass < 2; pass++) {
            rp_safe_result *res = calloc((size_t)n_items, sizeof *res);
            rp_safe_cache_stats before = rp_safe_cache_get_stats(cache);
            unsigned long req0 = rp_httpd_count(srv);
            double t0 = now();
            rp_status st = rp_safe_rate(&cfg, &cl, &cs, NULL, items, (size_t)n_items, res);
            double dt = now() - t0;
            rp_safe_cache_stats after = rp_safe_cache_get_stats(cache);
            long facts = 0, supported = 0;
            for (int i = 0; i < n_items; i++) { facts += (long)res[i].n_facts; supported += res[i].counts.s; rp_safe_result_free(&res[i]); }
            free(res);
            if (st != RP_OK || supported != facts) { fprintf(stderr, "bench_safe: run failed (%s), %ld/%ld supported\n", rp_errmsg(), supported, facts); return 1; }
            double rate = (double)facts / dt;
            unsigned long net = (unsigned long)((after.net_llm_calls - before.net_llm_calls) + (after.net_search_calls - before.net_search_calls));
            if (pass == 0) {
                if (c == 1) base_rate = rate;
                printf("concurrency %2d: %ld facts in %.2f s = %.2f facts/s (%.2fx vs 1 in flight), %lu network calls, %lu HTTP requests\n",
                       c, facts, dt, rate, rate / base_rate, net, rp_httpd_count(srv) - req0);
            } else {
                printf("concurrency %2d, fully cached rerun: %.0f facts/s, %lu network calls, %lu HTTP requests%s\n", c, rate, net,
                       rp_httpd_count(srv) - req0, net == 0 && rp_httpd_count(srv) == req0 ? "" : "  <-- expected zero");
                if (net != 0) return 1;
            }
        }
        rp_safe_llm_release(&cl); rp_safe_search_release(&cs); rp_safe_cache_close(cache);
        rp_safe_llm_release(&llm); rp_safe_search_release(&srch);
    }
    rp_httpd_stop(srv);
    free(resp); free(items);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) return 1;
    return 0;
}
