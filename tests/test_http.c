/* test_http.c: the HTTP client against the embedded server on an ephemeral loopback port: 429 with
 * Retry-After then 200, 500s then success, a timeout, HTML error pages, truncated and malformed bodies,
 * dropped connections, concurrency 1/4/16 (checked at the server), request and token rate limits (lower
 * bounds from the token-bucket arithmetic), retry counters, keep-alive reuse, and secret masking; and the
 * server against malformed requests sent on a raw socket (bad request line, bad or over-long
 * Content-Length, oversized body, oversized head, chunked bodies): a 4xx/5xx status, never a crash. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "net/http.h"
#include "net/httpd.h"
#include "util/json.h"
#include "tests/check.h"

static int hits_429, hits_500, hits_trunc, hits_drop, inflight, max_inflight;
static char last_auth[128];
#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_SEQ_CST)
static unsigned long ok_conn = (unsigned long)-1, ok_conn_changes;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double interrupt_at;
static int interrupt_after(void) { return now_s() >= interrupt_at; }

static int handler(void *ud, const rp_httpd_request *rq, rp_httpd_response *rs) {
    (void)ud;
    const char *p = rq->path;
    if (!strncmp(p, "/ok", 3)) {
        if (rq->conn_id != __atomic_exchange_n(&ok_conn, rq->conn_id, __ATOMIC_SEQ_CST))
            __atomic_fetch_add(&ok_conn_changes, 1, __ATOMIC_SEQ_CST);
        rp_buf_printf(&rs->body, "{\"ok\":true,\"len\":%zu}", rq->body_len);
        return RP_HTTPD_OK;
    }
    if (!strcmp(p, "/echo")) {
        rp_httpd_header(rq, "Authorization", last_auth, sizeof last_auth);
        rp_buf_append(&rs->body, rq->body, rq->body_len);
        snprintf(rs->content_type, sizeof rs->content_type, "application/octet-stream");
        return RP_HTTPD_OK;
    }
    if (!strcmp(p, "/429")) {
        if (__atomic_fetch_add(&hits_429, 1, __ATOMIC_SEQ_CST) == 0) {
            rs->status = 429;
            rp_buf_puts(&rs->headers, "Retry-After: 1\r\n");
            rp_buf_puts(&rs->body, "{\"error\":{\"message\":\"Rate limit reached\"}}");
        } else rp_buf_puts(&rs->body, "{\"ok\":true}");
        return RP_HTTPD_OK;
    }
    if (!strcmp(p, "/500x2")) {
        if (__atomic_fetch_add(&hits_500, 1, __ATOMIC_SEQ_CST) < 2) { rs->status = 500; rp_buf_puts(&rs->body, "oops"); }
        else rp_buf_puts(&rs->body, "{\"ok\":true}");
        return RP_HTTPD_OK;
    }
    if (!strcmp(p, "/500")) { rs->status = 503; rp_buf_puts(&rs->body, "<html><body><h1>503 Service Unavailable</h1></body></html>"); return RP_HTTPD_OK; }
    if (!strncmp(p, "/html404", 8)) {
        rs->status = 404;
        snprintf(rs->content_type, sizeof rs->content_type, "text/html");
        rp_buf_puts(&rs->body, "<!DOCTYPE html>\n<html><head><title>Not Found</title></head>\n<body>Page \x01 Not Found</body></html>");
        return RP_HTTPD_OK;
    }
    if (!strcmp(p, "/400")) { rs->status = 400; rp_buf_puts(&rs->body, "{\"error\":\"bad\"}"); return RP_HTTPD_OK; }
    if (!strcmp(p, "/slow")) { usleep(1500000); rp_buf_puts(&rs->body, "{}"); return RP_HTTPD_OK; }
    if (!strcmp(p, "/busy")) {
        int now = __atomic_add_fetch(&inflight, 1, __ATOMIC_SEQ_CST);
        int m = __atomic_load_n(&max_inflight, __ATOMIC_SEQ_CST);
        while (now > m && !__atomic_compare_exchange_n(&max_inflight, &m, now, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {}
        usleep(40000);
        __atomic_sub_fetch(&inflight, 1, __ATOMIC_SEQ_CST);
        rp_buf_puts(&rs->body, "{\"ok\":true}");
        return RP_HTTPD_OK;
    }
    if (!strcmp(p, "/truncated")) {     /* promises 100 bytes, sends 20, closes */
        __atomic_fetch_add(&hits_trunc, 1, __ATOMIC_SEQ_CST);
        const char *h = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"choices\":[{\"text\":";
        rp_httpd_write(rq->fd, h, strlen(h));
        return RP_HTTPD_RAW;
    }
    if (!strcmp(p, "/stream")) {      /* server-sent events in three chunks */
        rp_httpd_stream_begin(rq->fd, 200, "text/event-stream");
        const char *ev[3] = { "data: {\"delta\":\"Hel\"}\n\n", "data: {\"delta\":\"lo\"}\n\n", "data: [DONE]\n\n" };
        for (int i = 0; i < 3; i++) { rp_httpd_stream_chunk(rq->fd, ev[i], strlen(ev[i])); usleep(10000); }
        rp_httpd_stream_end(rq->fd);
        return RP_HTTPD_RAW;
    }
    if (!strcmp(p, "/drop")) { __atomic_fetch_add(&hits_drop, 1, __ATOMIC_SEQ_CST); return RP_HTTPD_RAW; }
    if (!strcmp(p, "/truncjson")) { rp_buf_puts(&rs->body, "{\"choices\": [{\"message\": {\"content\": \"hel"); return RP_HTTPD_OK; }
    if (!strcmp(p, "/malformed")) { rp_buf_puts(&rs->body, "{\"a\": 1,, \"b\": [}"); return RP_HTTPD_OK; }
    rs->status = 404;
    rp_buf_puts(&rs->body, "no such path");
    return RP_HTTPD_OK;
}

static rp_http_client *client(int retries, double rpm, double tpm) {
    rp_http_policy pol = rp_http_policy_default();
    pol.max_retries = retries;
    pol.backoff_base_s = 0.01;
    pol.backoff_cap_s = 0.05;
    pol.timeout_s = 5;
    rp_http_client *c = NULL;
    CHECK(rp_http_client_new(&pol, rpm, tpm, &c) == RP_OK);
    return c;
}

/* Send raw bytes to the server on port and return the status code of its answer (0: no answer). */
static int raw_status(int port, const char *req, size_t len) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = { 5, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char reply[256] = "";
    int code = 0;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        size_t off = 0;
        while (off < len) {
            ssize_t w = send(fd, req + off, len - off, MSG_NOSIGNAL);
            if (w <= 0) break;                    /* the server may answer and close before reading it all */
            off += (size_t)w;
        }
        ssize_t r = recv(fd, reply, sizeof reply - 1, 0);
        if (r > 0) { reply[r] = 0; if (sscanf(reply, "HTTP/1.1 %d", &code) != 1) code = 0; }
    }
    close(fd);
    return code;
}

/* Malformed requests: each is answered with the documented error status; the server keeps serving. */
static void test_server_bad_input(rp_httpd *srv) {
    int port = rp_httpd_port(srv);
    struct { const char *req, *what; int want; } cases[] = {
        { "NONSENSE\r\n\r\n", "bad request line", 400 },
        { "GET / SPDY/3\r\n\r\n", "not HTTP/1.x", 400 },
        { "POST /echo HTTP/1.1\r\nContent-Length: 12x\r\n\r\n", "Content-Length with junk", 400 },
        { "POST /echo HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "negative Content-Length", 400 },
        { "POST /echo HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", "Content-Length overflow", 400 },
        { "POST /echo HTTP/1.1\r\nContent-Length: 0000000000000000000000000000000000000000000000000000000000000000000005\r\n\r\nhello",
          "Content-Length longer than the server reads", 400 },
        { "POST /echo HTTP/1.1\r\nContent-Length: 67108865\r\n\r\n", "body over 64 MiB", 413 },
        { "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "chunked body", 501 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int code = raw_status(port, cases[i].req, strlen(cases[i].req));
        CHECK_MSG(code == cases[i].want, "%s: status %d, want %d", cases[i].what, code, cases[i].want);
    }
    size_t n = (64u << 10) + 4096;
    char *head = malloc(n);
    if (head) {
        memcpy(head, "GET / HTTP/1.1\r\nX-Big: ", 24);
        memset(head + 24, 'a', n - 24);
        int code = raw_status(port, head, n);
        CHECK_MSG(code == 431, "head over 64 KiB: status %d, want 431", code);
        free(head);
    }
    const char ok[] = "GET /ok HTTP/1.1\r\nConnection: close\r\n\r\n";
    CHECK_MSG(raw_status(port, ok, sizeof ok - 1) == 200, "server still answers after malformed requests");
}

int main(void) {
    rp_httpd *srv = NULL;
    CHECK(rp_httpd_start(NULL, 0, 64, handler, NULL, &srv) == RP_OK);
    if (!srv) return checks_done("http");
    char base[64], url[256];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", rp_httpd_port(srv));
    rp_http_client *c = client(3, 0, 0);
    rp_http_response r;

    /* plain GET and POST with a secret header echoed back (the server sees it; messages never do) */
    snprintf(url, sizeof url, "%s/ok", base);
    rp_http_request rq = { .url = url };
    CHECK(rp_http_do(c, &rq, &r) == RP_OK && r.status == 200 && r.attempts == 1);
    rp_json *j = NULL;
    CHECK(rp_json_parse(r.body.data, r.body.len, &j) == RP_OK && rp_json_bool(rp_json_get(j, "ok"), 0) == 1);
    rp_json_free(j);
    rp_http_response_free(&r);
    snprintf(url, sizeof url, "%s/echo", base);
    const char *hdrs[] = { "Authorization: Bearer sk-SECRET456", "Content-Type: application/json" };
    char big[5000];
    memset(big, 'x', sizeof big);
    big[0] = 0; big[17] = '\n';                       /* binary-safe body */
    rp_http_request post = { .url = url, .headers = hdrs, .n_headers = 2, .body = big, .body_len = sizeof big };
    CHECK(rp_http_do(c, &post, &r) == RP_OK && r.body.len == sizeof big && memcmp(r.body.data, big, sizeof big) == 0);
    CHECK(strcmp(last_auth, "Bearer sk-SECRET456") == 0);
    rp_http_response_free(&r);

    /* 429 with Retry-After: 1, then 200: one retry, waited the server's second (not the 10 ms backoff) */
    snprintf(url, sizeof url, "%s/429", base);
    rp_http_request r429 = { .url = url };
    double t0 = now_s();
    CHECK(rp_http_do(c, &r429, &r) == RP_OK && r.status == 200 && r.attempts == 2 && LOAD(hits_429) == 2);
    CHECK_MSG(now_s() - t0 >= 0.95, "waited %.3f s", now_s() - t0);
    rp_http_response_free(&r);

    /* 500, 500, 200 */
    rp_http_stats s0 = rp_http_client_stats(c);
    snprintf(url, sizeof url, "%s/500x2", base);
    rp_http_request r500 = { .url = url };
    CHECK(rp_http_do(c, &r500, &r) == RP_OK && r.attempts == 3 && LOAD(hits_500) == 3);
    rp_http_stats s1 = rp_http_client_stats(c);
    CHECK(s1.retries - s0.retries == 2 && s1.requests - s0.requests == 3);
    rp_http_response_free(&r);

    /* always 503 with an HTML page: 1 + 3 retries, then an error naming URL, status and a snippet */
    snprintf(url, sizeof url, "%s/500", base);
    rp_http_request r503 = { .url = url };
    CHECK(rp_http_do(c, &r503, &r) == RP_ERR_NET && r.attempts == 4 && r.status == 503);
    CHECK_MSG(strstr(rp_errmsg(), "/500") && strstr(rp_errmsg(), "HTTP 503") && strstr(rp_errmsg(), "Service Unavailable") &&
              strstr(rp_errmsg(), "4 attempts"), "%s", rp_errmsg());
    rp_http_response_free(&r);

    /* 404 HTML: never retried; secret query value and header masked out of the message */
    snprintf(url, sizeof url, "%s/html404?q=cats&api_key=SECRET123&num=3", base);
    rp_http_request r404 = { .url = url, .headers = hdrs, .n_headers = 1 };
    CHECK(rp_http_do(c, &r404, &r) == RP_ERR_NET && r.attempts == 1 && r.status == 404);
    CHECK_MSG(strstr(rp_errmsg(), "HTTP 404") && strstr(rp_errmsg(), "Not Found") && strstr(rp_errmsg(), "api_key=***&num=3") &&
              !strstr(rp_errmsg(), "SECRET") && !strchr(rp_errmsg(), '\n') && !strchr(rp_errmsg(), '\x01'), "%s", rp_errmsg());
    CHECK(strcmp(r.error, rp_errmsg()) == 0);
    rp_http_response_free(&r);
    snprintf(url, sizeof url, "%s/400", base);
    rp_http_request r400 = { .url = url };
    CHECK(rp_http_do(c, &r400, &r) == RP_ERR_NET && r.attempts == 1 && r.status == 400);
    rp_http_response_free(&r);

    /* a timeout (server sleeps 1.5 s, client allows 0.2 s): retried, then a timeout error */
    rp_http_client *c1 = client(1, 0, 0);
    snprintf(url, sizeof url, "%s/slow", base);
    rp_http_request rslow = { .url = url, .timeout_s = 0.2 };
    t0 = now_s();
    CHECK(rp_http_do(c1, &rslow, &r) == RP_ERR_NET && r.attempts == 2);
    CHECK_MSG(strstr(rp_errmsg(), "imeout") || strstr(rp_errmsg(), "timed out"), "%s", rp_errmsg());
    CHECK(now_s() - t0 < 1.4);
    rp_http_response_free(&r);

    /* an interrupt 0.3 s into a batch: the fast requests keep their results, the slow one is abandoned at once */
    rp_http_request mixi[2] = { { .url = url, .timeout_s = 5 }, { .url = base } };
    char okurl[256];
    snprintf(okurl, sizeof okurl, "%s/ok", base);
    mixi[1].url = okurl;
    rp_http_response ri[2];
    interrupt_at = now_s() + 0.3;
    rp_http_set_interrupt_check(interrupt_after);
    t0 = now_s();
    CHECK(rp_http_do_many(c1, mixi, ri, 2, 2) == RP_ERR_INTERRUPTED && strstr(rp_errmsg(), "1 of 2"));
    CHECK(now_s() - t0 < 1.3 && ri[0].st == RP_ERR_INTERRUPTED && ri[1].st == RP_OK && ri[1].status == 200);
    rp_http_set_interrupt_check(NULL);
    rp_http_response_free(&ri[0]);
    rp_http_response_free(&ri[1]);

    /* a body cut short (Content-Length 100, 20 sent): retried, then a clean error */
    snprintf(url, sizeof url, "%s/truncated", base);
    rp_http_request rtr = { .url = url };
    CHECK(rp_http_do(c1, &rtr, &r) == RP_ERR_NET && r.attempts == 2 && LOAD(hits_trunc) == 2);
    CHECK_MSG(strstr(rp_errmsg(), "/truncated") && strstr(rp_errmsg(), "HTTP 200"), "%s", rp_errmsg());
    rp_http_response_free(&r);
    /* a dropped connection: retried, then an error */
    snprintf(url, sizeof url, "%s/drop", base);
    rp_http_request rdrop = { .url = url };
    CHECK(rp_http_do(c1, &rdrop, &r) == RP_ERR_NET && r.attempts == 2 && LOAD(hits_drop) == 2 && r.status == 0);
    rp_http_response_free(&r);
    /* connection refused (nothing listens on port 1) */
    rp_http_request rref = { .url = "http://127.0.0.1:1/x" };
    CHECK(rp_http_do(c1, &rref, &r) == RP_ERR_NET && r.attempts == 2);
    rp_http_response_free(&r);
    rp_http_client_free(c1);

    /* truncated / malformed JSON with a 200: the transfer succeeds; the parser reports where */
    snprintf(url, sizeof url, "%s/truncjson", base);
    rp_http_request rtj = { .url = url };
    CHECK(rp_http_do(c, &rtj, &r) == RP_OK);
    j = NULL;
    CHECK(rp_json_parse(r.body.data, r.body.len, &j) == RP_ERR_FORMAT && j == NULL && strstr(rp_errmsg(), "offset 41"));
    rp_http_response_free(&r);
    snprintf(url, sizeof url, "%s/malformed", base);
    rp_http_request rmf = { .url = url };
    CHECK(rp_http_do(c, &rmf, &r) == RP_OK);
    CHECK(rp_json_parse(r.body.data, r.body.len, &j) == RP_ERR_FORMAT && strstr(rp_errmsg(), "offset 8: expected a string key"));
    rp_http_response_free(&r);

    /* concurrency 1/4/16: the server never sees more in flight than asked, and sees overlap when allowed */
    enum { N = 32 };
    rp_http_request many[N];
    rp_http_response resps[N];
    snprintf(url, sizeof url, "%s/busy", base);
    for (int i = 0; i < N; i++) many[i] = (rp_http_request){ .url = url };
    int levels[3] = { 1, 4, 16 };
    for (int k = 0; k < 3; k++) {
        __atomic_store_n(&max_inflight, 0, __ATOMIC_SEQ_CST);
        CHECK(rp_http_do_many(c, many, resps, N, levels[k]) == RP_OK);
        int ok = 0;
        for (int i = 0; i < N; i++) { ok += resps[i].st == RP_OK && resps[i].status == 200; rp_http_response_free(&resps[i]); }
        CHECK(ok == N);
        CHECK_MSG(LOAD(max_inflight) <= levels[k] && (levels[k] == 1 || LOAD(max_inflight) >= 2), "conc %d: server saw %d", levels[k], LOAD(max_inflight));
    }
    /* mixed batch: failures are per request, and the summary counts them */
    rp_http_request mix[3] = { { .url = url }, { .url = "http://127.0.0.1:1/x" }, { .url = url } };
    rp_http_response mr[3];
    rp_http_client *c0 = client(0, 0, 0);
    CHECK(rp_http_do_many(c0, mix, mr, 3, 4) == RP_ERR_NET && strstr(rp_errmsg(), "1 of 3 requests failed; first (request 1)"));
    CHECK(mr[0].st == RP_OK && mr[1].st == RP_ERR_NET && mr[2].st == RP_OK);
    for (int i = 0; i < 3; i++) rp_http_response_free(&mr[i]);
    rp_http_client_free(c0);

    /* keep-alive: 20 sequential calls reuse a connection (the server counts connections) */
    snprintf(url, sizeof url, "%s/ok", base);
    rp_http_request rok = { .url = url };
    unsigned long served0 = rp_httpd_count(srv);
    __atomic_store_n(&ok_conn_changes, 0, __ATOMIC_SEQ_CST);
    for (int i = 0; i < 20; i++) { rp_http_do(c, &rok, &r); rp_http_response_free(&r); }
    CHECK(rp_httpd_count(srv) - served0 == 20);
    CHECK_MSG(LOAD(ok_conn_changes) <= 1, "20 sequential requests used %lu connections", LOAD(ok_conn_changes));

    /* request rate limit: 1200/min = 20/s with a 20-request bucket: 40 requests need >= 1 s, at any concurrency */
    for (int k = 0; k < 2; k++) {
        rp_http_client *cl = client(0, 1200, 0);
        for (int i = 0; i < N; i++) many[i] = (rp_http_request){ .url = url };
        t0 = now_s();
        rp_http_request r40[40];
        rp_http_response p40[40];
        for (int i = 0; i < 40; i++) r40[i] = (rp_http_request){ .url = url };
        CHECK(rp_http_do_many(cl, r40, p40, 40, k ? 16 : 4) == RP_OK);
        double dt = now_s() - t0;
        CHECK_MSG(dt >= 0.95 && dt < 3.0, "40 requests at 20/s took %.3f s", dt);
        for (int i = 0; i < 40; i++) rp_http_response_free(&p40[i]);
        CHECK(rp_http_client_stats(cl).requests == 40);
        rp_http_client_free(cl);
    }
    /* token rate limit: 6000/min = 100/s, bucket 100; 10 requests of 25 tokens need >= 1.5 s */
    {
        rp_http_client *cl = client(0, 0, 6000);
        rp_http_request r10[10];
        rp_http_response p10[10];
        for (int i = 0; i < 10; i++) r10[i] = (rp_http_request){ .url = url, .tokens = 25 };
        t0 = now_s();
        CHECK(rp_http_do_many(cl, r10, p10, 10, 16) == RP_OK);
        double dt = now_s() - t0;
        CHECK_MSG(dt >= 1.4 && dt < 3.0, "250 tokens at 100/s after a 100 burst took %.3f s", dt);
        for (int i = 0; i < 10; i++) rp_http_response_free(&p10[i]);
        /* real usage reported above the estimate: 50 more tokens owed means one 25-token request waits >= 0.75 s */
        rp_http_client_charge(cl, 50);
        t0 = now_s();
        CHECK(rp_http_do(cl, &r10[0], &p10[0]) == RP_OK);
        dt = now_s() - t0;
        CHECK_MSG(dt >= 0.7 && dt < 2.0, "after a 50-token charge: %.3f s", dt);
        rp_http_response_free(&p10[0]);
        rp_http_client_free(cl);
    }

    /* a chunked (streamed) reply arrives whole */
    snprintf(url, sizeof url, "%s/stream", base);
    rp_http_request rst = { .url = url };
    CHECK(rp_http_do(c, &rst, &r) == RP_OK && r.status == 200);
    CHECK_MSG(r.body.data && strcmp(r.body.data, "data: {\"delta\":\"Hel\"}\n\ndata: {\"delta\":\"lo\"}\n\ndata: [DONE]\n\n") == 0,
              "%s", r.body.data ? r.body.data : "(null)");
    rp_http_response_free(&r);

    /* URL masking */
    char m[256];
    rp_http_mask_url("https://user:pw@serper.dev/search?key=abc&q=x&access_token=t#frag", m, sizeof m);
    CHECK_MSG(strcmp(m, "https://***@serper.dev/search?key=***&q=x&access_token=***#frag") == 0, "%s", m);
    rp_http_mask_url("http://h/p", m, sizeof m);
    CHECK(strcmp(m, "http://h/p") == 0);

    test_server_bad_input(srv);

    rp_http_stats st = rp_http_client_stats(c);
    CHECK(st.failures >= 3 && st.retries >= 6 && st.bytes_in > 5000 && st.bytes_out >= 5000);
    rp_http_client_free(c);
    rp_httpd_stop(srv);
    return checks_done("http");
}
