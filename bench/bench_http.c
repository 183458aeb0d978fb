/* bench_http.c: loopback HTTP round trips per second through rp_http_do_many (libcurl multi) against
 * rp_httpd in the same process, at concurrency 1, 4 and 16. Two handlers: one that answers at once (the
 * client + server overhead per request) and one that sleeps a fixed DELAY_MS before answering, whose ideal
 * rate is concurrency / DELAY_MS; the ratio measured / ideal shows how much of the concurrency the client
 * and server really deliver. Each measurement follows an unmeasured warm-up pass (connections opened).
 * Then, when REPRO_MIRROR holds SmolLM2-135M-Instruct, `repro serve` itself (rp_serve_start in this process,
 * 8 slots): the same 8 greedy completion requests (32 tokens each) sent by 1 client (one at a time: the
 * reference), then 4 and 8 clients at once, then 1 again (drift of the machine's load), printing aggregate generated tokens/s, when requests finished (mean and last, from the round start, client queueing included), the mean rows per
 * decoding step (from /health), and each rate's ratio to the one-at-a-time rate measured in the same run.
 * Last, the stall row: the engine (serve_job.h, context 2048, 8 slots) decodes 7 greedy streams while one
 * 1500-token prompt arrives; it prints the streamers' largest gap between two pieces of text during that
 * prompt's prefill beside their median gap (a steady decoding step), the long request's latency, and the
 * process's resident memory (VmRSS) before the engine and after all 8 slots were used; first with each
 * prompt run whole in one step (the reference: what the scheduler did before chunked prefill), then with
 * prefill chunks of 64, 128 (the default) and 256 tokens.
 * `bench_http --serve` runs only the serve parts. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "net/http.h"
#include "net/httpd.h"
#include "serve/serve.h"
#include "serve/serve_job.h"

#define DELAY_MS 5
#define N_FAST 4000         /* requests per fast measurement */
#define PER_SLOT 40         /* delayed requests per unit of concurrency */

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Answer with a small JSON body; paths containing "delay" first sleep DELAY_MS (thread-safe: no state). */
static int handler(void *ud, const rp_httpd_request *rq, rp_httpd_response *rs) {
    (void)ud;
    if (strstr(rq->path, "delay")) usleep(DELAY_MS * 1000);
    rp_buf_printf(&rs->body, "{\"ok\":true,\"n\":%zu}", rq->body_len);
    return RP_HTTPD_OK;
}

static rp_http_request reqs[N_FAST];
static rp_http_response resps[N_FAST];

/* Send the first n prepared requests to url with at most conc in flight; returns requests per second,
 * or exits with the client's message when any request failed. */
static double round_trips(rp_http_client *c, const char *url, size_t n, int conc) {
    for (size_t i = 0; i < n; i++) reqs[i].url = url;
    double t0 = now();
    rp_status st = rp_http_do_many(c, reqs, resps, n, conc);
    double dt = now() - t0;
    for (size_t i = 0; i < n; i++) rp_http_response_free(&resps[i]);
    if (st != RP_OK) { fprintf(stderr, "bench_http: %s\n", rp_errmsg()); exit(1); }
    return (double)n / dt;
}


#define SERVE_REQS 8        /* requests per serve measurement */
#define SERVE_GEN 32        /* tokens each asks for */

/* Mean rows per decoding step so far and the step count, from the server's /health. */
static void serve_steps(rp_http_client *c, const char *health, double *rows, double *steps) {
    rp_http_request rq = { .url = health };
    rp_http_response rs;
    memset(&rs, 0, sizeof rs);
    *rows = *steps = 0;
    if (rp_http_do_many(c, &rq, &rs, 1, 1) == RP_OK && rs.body.data) {
        const char *p = strstr(rs.body.data, "\"steps\":"), *q = strstr(rs.body.data, "\"mean_batch\":");
        if (p && q) { *steps = atof(p + 8); *rows = *steps * atof(q + 13); }
    }
    rp_http_response_free(&rs);
}

/* SERVE_REQS completions with at most conc at once: aggregate tokens/s; mean / max latency, rows per step. */
static double serve_round(rp_http_client *c, const char *url, const char *health, char (*bodies)[256], int conc,
                          double *lat_mean, double *lat_max, double *batch) {
    static const char *const headers[] = { "Content-Type: application/json" };
    rp_http_request rq[SERVE_REQS];
    rp_http_response rs[SERVE_REQS];
    for (int i = 0; i < SERVE_REQS; i++)
        rq[i] = (rp_http_request){ .url = url, .body = bodies[i], .body_len = strlen(bodies[i]), .headers = headers, .n_headers = 1,
                                   .timeout_s = 600 };
    memset(rs, 0, sizeof rs);
    double r0, s0, r1, s1;
    serve_steps(c, health, &r0, &s0);
    double t0 = now();
    rp_status st = rp_http_do_many(c, rq, rs, SERVE_REQS, conc);
    double dt = now() - t0;
    serve_steps(c, health, &r1, &s1);
    long toks = 0;
    *lat_mean = *lat_max = 0;
    for (int i = 0; i < SERVE_REQS; i++) {
        const char *u = rs[i].body.data ? strstr(rs[i].body.data, "\"completion_tokens\":") : NULL;
        if (u) toks += atol(u + 20);
        *lat_mean += rs[i].elapsed_s / SERVE_REQS;
        if (rs[i].elapsed_s > *lat_max) *lat_max = rs[i].elapsed_s;
        rp_http_response_free(&rs[i]);
    }
    if (st != RP_OK) { fprintf(stderr, "bench_http: serve: %s\n", rp_errmsg()); exit(1); }
    *batch = s1 > s0 ? (r1 - r0) / (s1 - s0) : 0;
    return (double)toks / dt;
}

#define STALL_STREAMS 7     /* short streaming requests decoding while the long prompt arrives */
#define STALL_LONG 1500     /* tokens of the long prompt */
#define STALL_GEN 96        /* tokens each stream generates (outlasting the long prefill: 1500 / chunk steps) */
#define STALL_MAX_EV 1024

/* One streaming job and the times its text arrived. */
typedef struct stall_stream {
    rp_serve_engine *e;
    rp_serve_job job;
    int32_t prompt[8];
    double t[STALL_MAX_EV];
    int n;                              /* arrivals recorded (atomic: the main thread polls it) */
} stall_stream;

/* Waiter thread: take the job's text as it comes, timestamping each arrival. */
static void *stall_wait(void *arg) {
    stall_stream *w = arg;
    rp_buf text = {0};
    for (;;) {
        size_t before = text.len;
        int more = rp_serve_engine_wait(w->e, &w->job, &text, 0);
        int n = __atomic_load_n(&w->n, __ATOMIC_RELAXED);
        if (text.len > before && n < STALL_MAX_EV) { w->t[n] = now(); __atomic_store_n(&w->n, n + 1, __ATOMIC_RELEASE); }
        if (!more) break;
    }
    rp_buf_free(&text);
    return NULL;
}

/* Resident memory of this process in MB (VmRSS), or -1. */
static double rss_mb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) kb = atof(line + 6);
    if (f) fclose(f);
    return kb < 0 ? -1 : kb / 1024;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One stall measurement on a fresh engine with the given options; prints its row. Returns 0 or 1. */
static int stall_row(rp_model *m, const rp_serve_engine_opts *eo, const char *label) {
    double rss0 = rss_mb();
    rp_serve_engine *e;
    if (rp_serve_engine_new(m, eo, &e) != RP_OK) { fprintf(stderr, "bench_http: stall: %s\n", rp_errmsg()); return 1; }
    static stall_stream w[STALL_STREAMS];
    static int32_t long_prompt[STALL_LONG];
    pthread_t thr[STALL_STREAMS];
    for (int i = 0; i < STALL_LONG; i++) long_prompt[i] = 200 + (int32_t)((i * 7919) % 40000);
    for (int s = 0; s < STALL_STREAMS; s++) {
        memset(&w[s], 0, sizeof w[s]);
        w[s].e = e;
        for (int i = 0; i < 8; i++) w[s].prompt[i] = 300 + 97 * s + 13 * i;
        w[s].job = (rp_serve_job){ .prompt = w[s].prompt, .n_prompt = 8, .max_tokens = STALL_GEN, .logprobs = -1, .stream = 1,
                                   .gen = { .temperature = 0, .ignore_eog = 1 } };
        if (rp_serve_engine_submit(e, &w[s].job, 1) != RP_SERVE_ADMITTED) { fprintf(stderr, "bench_http: stall: refused\n"); return 1; }
        pthread_create(&thr[s], NULL, stall_wait, &w[s]);
    }
    /* the long prompt arrives once every stream is decoding steadily */
    for (int s = 0; s < STALL_STREAMS; s++)
        while (__atomic_load_n(&w[s].n, __ATOMIC_ACQUIRE) < 8) { struct timespec ts = { 0, 2000000 }; nanosleep(&ts, NULL); }
    rp_serve_job lj = { .prompt = long_prompt, .n_prompt = STALL_LONG, .max_tokens = 1, .logprobs = -1, .gen = { .temperature = 0 } };
    double t0 = now();
    if (rp_serve_engine_run_many(e, &lj, 1) != RP_SERVE_ADMITTED || lj.st != RP_OK) { fprintf(stderr, "bench_http: stall: long job failed\n"); return 1; }
    double t1 = now();
    for (int s = 0; s < STALL_STREAMS; s++) pthread_join(thr[s], NULL);
    double rss1 = rss_mb();
    /* gaps: the largest one overlapping the long request's life, and the median of all (a steady step) */
    static double gaps[STALL_STREAMS * STALL_MAX_EV];
    int ng = 0, late = 0;
    double worst = 0;
    for (int s = 0; s < STALL_STREAMS; s++) {
        if (w[s].n == 0 || w[s].t[w[s].n - 1] < t1) late = 1;       /* a stream ended before the long prefill did */
        for (int i = 1; i < w[s].n; i++) {
            double g = w[s].t[i] - w[s].t[i - 1];
            gaps[ng++] = g;
            if (w[s].t[i] > t0 && w[s].t[i - 1] < t1 && g > worst) worst = g;
        }
        rp_serve_job_free(&w[s].job);
    }
    qsort(gaps, (size_t)ng, sizeof *gaps, cmp_double);
    double med = ng ? gaps[ng / 2] : 0;
    printf("%-28s streamers' max gap during the long prefill %7.0f ms  median gap %5.0f ms  (max / median %6.1fx)  long request %6.2f s  VmRSS %4.0f -> %4.0f MB%s\n",
           label, worst * 1e3, med * 1e3, med > 0 ? worst / med : 0, t1 - t0, rss0, rss1, late ? "  (a stream ended before the long prefill: gap undercounted)" : "");
    rp_serve_job_free(&lj);
    rp_serve_engine_free(e);
    return 0;
}

/* The stall rows: one 1500-token prompt arriving among 7 streams (8 slots, context 2048). */
static int bench_stall(const char *path) {
    rp_model *m;
    if (rp_model_load(path, NULL, &m) != RP_OK) { fprintf(stderr, "bench_http: %s\n", rp_errmsg()); return 1; }
    double l1 = 0;
    FILE *la = fopen("/proc/loadavg", "r");
    if (la) { if (fscanf(la, "%lf", &l1) != 1) l1 = 0; fclose(la); }
    printf("== repro serve engine: %d greedy streams of %d tokens, one %d-token prompt arriving among them, 8 slots, context 2048 (load average %.1f) ==\n",
           STALL_STREAMS, STALL_GEN, STALL_LONG, l1);
    /* whole prompts (the scheduler before chunked prefill) is the reference; then chunk sizes, 128 the default */
    static const int chunks[] = { -1, 64, 128, 256 };
    int rc = 0;
    for (int i = 0; i < 4 && rc == 0; i++) {
        rp_serve_engine_opts eo = { .n_ctx = 2048, .n_slots = 8, .prefill_chunk = chunks[i] };
        char label[64];
        if (chunks[i] < 0) snprintf(label, sizeof label, "whole prompts (chunk 0):");
        else snprintf(label, sizeof label, "prefill chunk %d%s:", chunks[i], chunks[i] == 128 ? " (default)" : "");
        rc = stall_row(m, &eo, label);
    }
    rp_model_free(m);
    return rc;
}

/* `repro serve` under 1, 4 and 8 concurrent clients against the same requests one at a time. */
static int bench_serve(void) {
    const char *mirror = getenv("REPRO_MIRROR");
    char path[4096];
    snprintf(path, sizeof path, "%s/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf", mirror ? mirror : "");
    if (!mirror || access(path, R_OK) != 0) { printf("skip serve: SmolLM2-135M-Instruct is not in REPRO_MIRROR\n"); return 0; }
    rp_serve_opts o = { .host = "127.0.0.1", .port = 0, .n_ctx = 256, .n_slots = 8 };
    rp_server *srv;
    rp_http_client *c;
    if (rp_serve_start(path, &o, &srv) != RP_OK || rp_http_client_new(NULL, 0, 0, &c) != RP_OK) {
        fprintf(stderr, "bench_http: %s\n", rp_errmsg());
        return 1;
    }
    char url[128], health[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/completions", rp_serve_port(srv));
    snprintf(health, sizeof health, "http://127.0.0.1:%d/health", rp_serve_port(srv));
    static char bodies[SERVE_REQS][256];
    for (int i = 0; i < SERVE_REQS; i++)     /* counting from different places: no early end of generation */
        snprintf(bodies[i], sizeof bodies[i], "{\"prompt\":\"%d, %d, %d, %d,\",\"max_tokens\":%d,\"temperature\":0}",
                 10 * i + 1, 10 * i + 2, 10 * i + 3, 10 * i + 4, SERVE_GEN);
    double l1 = 0;
    FILE *la = fopen("/proc/loadavg", "r");
    if (la) { if (fscanf(la, "%lf", &l1) != 1) l1 = 0; fclose(la); }
    printf("== repro serve, SmolLM2-135M-Instruct Q4_1, %d greedy completions of %d tokens, 8 slots (load average %.1f) ==\n",
           SERVE_REQS, SERVE_GEN, l1);
    double lm, lx, b;
    serve_round(c, url, health, bodies, 8, &lm, &lx, &b);              /* warm-up: the decode layout is built */
    /* 1 client is the one-at-a-time reference; it runs again last, so drift in the machine's load shows */
    static const int levels[] = { 1, 4, 8, 1 };
    double seq = 0;
    for (int k = 0; k < 4; k++) {
        double r = serve_round(c, url, health, bodies, levels[k], &lm, &lx, &b);
        if (k == 0) seq = r;
        printf("%d client%s at once%s: %7.1f tok/s aggregate  requests done after mean %6.2f s, last %6.2f s (from the round start)  rows/step %.2f  ratio to one at a time: %.2fx\n",
               levels[k], levels[k] > 1 ? "s" : " ", k == 3 ? " (again)" : "        ", r, lm, lx, b, r / seq);
    }
    rp_http_client_free(c);
    rp_serve_stop(srv);
    return bench_stall(path);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--serve")) return bench_serve();
    rp_httpd *srv;
    rp_http_client *c;
    if (rp_httpd_start(NULL, 0, 64, handler, NULL, &srv) != RP_OK || rp_http_client_new(NULL, 0, 0, &c) != RP_OK) {
        fprintf(stderr, "bench_http: %s\n", rp_errmsg());
        return 1;
    }
    char fast[128], slow[128];
    snprintf(fast, sizeof fast, "http://127.0.0.1:%d/v1/fast", rp_httpd_port(srv));
    snprintf(slow, sizeof slow, "http://127.0.0.1:%d/v1/delay", rp_httpd_port(srv));
    static const char body[] = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    static const char *const headers[] = { "Content-Type: application/json", "Authorization: Bearer x" };
    for (size_t i = 0; i < N_FAST; i++)
        reqs[i] = (rp_http_request){ .body = body, .body_len = sizeof body - 1, .headers = headers, .n_headers = 2 };

    static const int levels[] = { 1, 4, 16 };
    double base = 0;
    for (int k = 0; k < 3; k++) {
        round_trips(c, fast, N_FAST / 4, levels[k]);                         /* warm-up */
        double r = round_trips(c, fast, N_FAST, levels[k]);
        if (k == 0) base = r;
        printf("http POST, instant handler, concurrency %2d: %8.0f round trips/s  ratio to concurrency 1: %.2fx\n",
               levels[k], r, r / base);
    }
    for (int k = 0; k < 3; k++) {
        size_t n = (size_t)levels[k] * PER_SLOT;
        round_trips(c, slow, (size_t)levels[k], levels[k]);                  /* warm-up: one per slot */
        double r = round_trips(c, slow, n, levels[k]);
        double ideal = levels[k] * 1000.0 / DELAY_MS;
        printf("http POST, %d ms handler, concurrency %2d:  %8.0f round trips/s  ideal %5.0f/s  ratio to ideal: %.2f\n",
               DELAY_MS, levels[k], r, ideal, r / ideal);
    }
    rp_http_stats s = rp_http_client_stats(c);
    printf("http client counters: %llu requests, %llu retries, %llu failures, %llu bytes in, %llu bytes out\n",
           (unsigned long long)s.requests, (unsigned long long)s.retries, (unsigned long long)s.failures,
           (unsigned long long)s.bytes_in, (unsigned long long)s.bytes_out);
    rp_http_client_free(c);
    rp_httpd_stop(srv);
    if (s.retries || s.failures) return 1;
    return bench_serve();
}
