/* bench_http.c: loopback HTTP round trips per second through rp_http_do_many (libcurl multi) against
 * rp_httpd in the same process, at concurrency 1, 4 and 16. Two handlers: one that answers at once (the
 * client + server overhead per request) and one that sleeps a fixed DELAY_MS before answering, whose ideal
 * rate is concurrency / DELAY_MS; the ratio measured / ideal shows how much of the concurrency the client
 * and server really deliver. Each measurement follows an unmeasured warm-up pass (connections opened). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "net/http.h"
#include "net/httpd.h"

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

int main(void) {
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
    return s.retries || s.failures ? 1 : 0;
}
