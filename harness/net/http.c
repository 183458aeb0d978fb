/* http.c: the libcurl client behind http.h.
 * One scheduler loop per rp_http_do_many call drives a curl multi handle: a request is pending (waiting for
 * its start time, a free slot and the rate limits), active (an easy handle in the multi), or done.
 * Invariants: at most max_concurrent transfers are active; a request is retried only for 429, 5xx or a
 * transport failure (timeout, refused/reset connection, truncated transfer) and at most max_retries times;
 * header values never reach a message; every message names the masked URL. The client's token buckets,
 * counters and PRNG sit behind one mutex; curl's connection cache is shared through a CURLSH handle with
 * its own locks, so keep-alive connections survive across calls and threads. */
#include "net/http.h"
#include "build_id.h"
#include <curl/curl.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

struct rp_http_client {
    rp_http_policy pol;
    pthread_mutex_t mu;
    double rpm, tpm;                /* limits per minute (<= 0: none) */
    double req_tokens, tok_tokens;  /* current bucket levels */
    double last_refill;
    uint64_t rng;
    rp_http_stats stats;
    CURLSH *share;
    pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

static void share_lock(CURL *h, curl_lock_data d, curl_lock_access a, void *ud) {
    (void)h; (void)a;
    rp_http_client *c = ud;
    pthread_mutex_lock(&c->share_mu[(int)d < CURL_LOCK_DATA_LAST ? (int)d : 0]);
}
static void share_unlock(CURL *h, curl_lock_data d, void *ud) {
    (void)h;
    rp_http_client *c = ud;
    pthread_mutex_unlock(&c->share_mu[(int)d < CURL_LOCK_DATA_LAST ? (int)d : 0]);
}

static int (*interrupt_check)(void);

/* Install the process's interrupt test (e.g. the host's SIGINT flag); NULL removes it. */
void rp_http_set_interrupt_check(int (*fn)(void)) { interrupt_check = fn; }

/* The default retry, timeout and size policy. */
rp_http_policy rp_http_policy_default(void) {
    rp_http_policy p = { .max_retries = 5, .backoff_base_s = 0.5, .backoff_cap_s = 30, .honor_retry_after = 1,
                         .retry_after_cap_s = 120, .timeout_s = 120, .connect_timeout_s = 10,
                         .max_body = (size_t)256 << 20 };
    return p;
}

/* Create a client with its rate limits and shared connection cache. */
rp_status rp_http_client_new(const rp_http_policy *policy, double requests_per_min, double tokens_per_min,
                             rp_http_client **out) {
    *out = NULL;
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) return rp_fail(RP_ERR_NET, "libcurl initialisation failed: %s", curl_easy_strerror(curl_init_rc));
    rp_http_policy p = policy ? *policy : rp_http_policy_default();
    if (p.max_retries < 0 || p.max_retries > 100 || !(p.backoff_base_s >= 0) || !(p.backoff_cap_s >= 0) ||
        !(p.timeout_s >= 0) || !(p.connect_timeout_s >= 0) || !(p.retry_after_cap_s >= 0))
        return rp_fail(RP_ERR_INVAL, "http policy: max_retries %d (0..100), backoff/timeout values must be >= 0",
                       p.max_retries);
    if (!p.max_body) p.max_body = rp_http_policy_default().max_body;
    rp_http_client *c = calloc(1, sizeof *c);
    if (!c) return rp_fail(RP_ERR_NOMEM, "out of memory for an http client");
    c->pol = p;
    pthread_mutex_init(&c->mu, NULL);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) pthread_mutex_init(&c->share_mu[i], NULL);
    c->rpm = requests_per_min > 0 ? requests_per_min : 0;
    c->tpm = tokens_per_min > 0 ? tokens_per_min : 0;
    c->last_refill = now_s();
    /* buckets start with one second's worth (at least one request), so a burst cannot exceed the rate */
    c->req_tokens = c->rpm > 0 ? fmax(1.0, c->rpm / 60.0) : 0;
    c->tok_tokens = c->tpm > 0 ? c->tpm / 60.0 : 0;
    c->rng = (uint64_t)(now_s() * 1e9) ^ (uint64_t)(uintptr_t)c ^ 0x9E3779B97F4A7C15ull;
    c->share = curl_share_init();
    if (c->share) {
        curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock);
        curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
        curl_share_setopt(c->share, CURLSHOPT_USERDATA, c);
        curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
        curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
        curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    }
    *out = c;
    return RP_OK;
}

/* Free the client (no call may be in flight). */
void rp_http_client_free(rp_http_client *c) {
    if (!c) return;
    if (c->share) curl_share_cleanup(c->share);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) pthread_mutex_destroy(&c->share_mu[i]);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Counters so far. */
rp_http_stats rp_http_client_stats(rp_http_client *c) {
    pthread_mutex_lock(&c->mu);
    rp_http_stats s = c->stats;
    pthread_mutex_unlock(&c->mu);
    return s;
}

/* Take one request (and its tokens) from the buckets: 0 when granted, else seconds until it could be.
 * A request wanting more tokens than a bucket holds is granted once the bucket is full (it goes into debt). */
static double limits_take(rp_http_client *c, double tokens) {
    if (c->rpm <= 0 && c->tpm <= 0) return 0;
    pthread_mutex_lock(&c->mu);
    double t = now_s(), dt = t - c->last_refill;
    c->last_refill = t;
    double rcap = fmax(1.0, c->rpm / 60.0), tcap = c->tpm / 60.0;
    if (c->rpm > 0) c->req_tokens = fmin(rcap, c->req_tokens + dt * c->rpm / 60.0);
    if (c->tpm > 0) c->tok_tokens = fmin(tcap, c->tok_tokens + dt * c->tpm / 60.0);
    double wait = 0;
    if (c->rpm > 0 && c->req_tokens < 1.0) wait = fmax(wait, (1.0 - c->req_tokens) * 60.0 / c->rpm);
    double need = fmin(tokens > 0 ? tokens : 0, tcap);
    if (c->tpm > 0 && c->tok_tokens < need) wait = fmax(wait, (need - c->tok_tokens) * 60.0 / c->tpm);
    if (wait == 0) {
        if (c->rpm > 0) c->req_tokens -= 1.0;
        if (c->tpm > 0 && tokens > 0) c->tok_tokens -= tokens;
    }
    pthread_mutex_unlock(&c->mu);
    return wait;
}

/* Correct the token bucket by the difference between a request's estimate and its real usage. */
void rp_http_client_charge(rp_http_client *c, double tokens) {
    if (!c || c->tpm <= 0) return;
    pthread_mutex_lock(&c->mu);
    c->tok_tokens = fmin(c->tpm / 60.0, c->tok_tokens - tokens);
    pthread_mutex_unlock(&c->mu);
}

static double jitter01(rp_http_client *c) {
    pthread_mutex_lock(&c->mu);
    c->rng ^= c->rng << 13; c->rng ^= c->rng >> 7; c->rng ^= c->rng << 17;
    double u = (double)(c->rng >> 11) / 9007199254740992.0;
    pthread_mutex_unlock(&c->mu);
    return u;
}

/* Mask userinfo and secret-looking query values so a URL can go into a message or a log. */
void rp_http_mask_url(const char *url, char *out, size_t n) {
    if (!n) return;
    rp_buf b = {0};
    const char *s = url ? url : "";
    const char *scheme = strstr(s, "://");
    const char *host = scheme ? scheme + 3 : s;
    const char *path = host + strcspn(host, "/?#");
    const char *at = memchr(host, '@', (size_t)(path - host));
    rp_buf_append(&b, s, (size_t)(host - s));
    if (at) { rp_buf_puts(&b, "***@"); host = at + 1; }
    const char *q = strchr(path, '?');
    if (!q) rp_buf_puts(&b, host);
    else {
        rp_buf_append(&b, host, (size_t)(q + 1 - host));
        const char *p = q + 1;
        while (*p && *p != '#') {
            size_t len = strcspn(p, "&#");
            const char *eq = memchr(p, '=', len);
            size_t nlen = eq ? (size_t)(eq - p) : len;
            char name[128];
            size_t k = nlen < sizeof name - 1 ? nlen : sizeof name - 1;
            for (size_t i = 0; i < k; i++) name[i] = (char)tolower((unsigned char)p[i]);
            name[k] = 0;
            int secret = strstr(name, "key") || strstr(name, "token") || strstr(name, "secret") ||
                         strstr(name, "password") || strstr(name, "sig") || strstr(name, "auth");
            if (eq && secret) { rp_buf_append(&b, p, nlen + 1); rp_buf_puts(&b, "***"); }
            else rp_buf_append(&b, p, len);
            p += len;
            if (*p == '&') { rp_buf_append(&b, "&", 1); p++; }
        }
        rp_buf_puts(&b, p);
    }
    snprintf(out, n, "%s", b.data ? b.data : "");
    rp_buf_free(&b);
}

/* ---- one transfer ---- */

enum { ST_PENDING, ST_ACTIVE, ST_DONE };

typedef struct slot {
    rp_http_client *c;
    const rp_http_request *req;
    rp_http_response *resp;
    CURL *easy;
    struct curl_slist *hdrs;
    FILE *sink;
    int state;
    double ready_at, t0;
    int overflow;                       /* body exceeded max_body */
    int sink_err;
    char curl_err[CURL_ERROR_SIZE];
} slot;

static size_t on_body(char *p, size_t sz, size_t nm, void *ud) {
    slot *s = ud;
    size_t n = sz * nm;
    s->resp->bytes_in += n;
    long code = 0;
    if (s->sink && curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code >= 300) {
        /* an error page is kept in memory (for the message), never written into the download */
        fclose(s->sink);
        s->sink = NULL;
        unlink(s->req->out_path);
    }
    if (s->sink) {
        if (fwrite(p, 1, n, s->sink) != n) { s->sink_err = errno ? errno : EIO; return 0; }
        return n;
    }
    if (s->resp->body.len + n > s->c->pol.max_body) { s->overflow = 1; return 0; }
    if (rp_buf_append(&s->resp->body, p, n) != RP_OK) { s->overflow = 1; return 0; }
    return n;
}

static size_t on_header(char *p, size_t sz, size_t nm, void *ud) {
    slot *s = ud;
    size_t n = sz * nm;
    if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) rp_buf_clear(&s->resp->headers);   /* a new response (redirect, 100) */
    if (s->resp->headers.len + n <= (1u << 20)) rp_buf_append(&s->resp->headers, p, n);
    return n;
}

static int on_xfer(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ult, curl_off_t uln) {
    (void)ult; (void)uln;
    slot *s = ud;
    if (s->req->on_progress) s->req->on_progress(s->req->progress_ud, (double)dlnow, (double)dltotal);
    return 0;
}

static void slot_release(slot *s) {
    if (s->easy) curl_easy_cleanup(s->easy);
    s->easy = NULL;
    curl_slist_free_all(s->hdrs);
    s->hdrs = NULL;
    if (s->sink) fclose(s->sink);
    s->sink = NULL;
}

static void finish_fail(slot *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void finish_fail(slot *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->resp->error, sizeof s->resp->error, fmt, ap);
    va_end(ap);
    s->resp->st = RP_ERR_NET;
    s->state = ST_DONE;
}

/* Make an easy handle for the next attempt; on failure the slot is finished with the reason. */
static int slot_start(slot *s, CURLM *m) {
    rp_http_client *c = s->c;
    const rp_http_request *r = s->req;
    char murl[512];
    rp_http_mask_url(r->url, murl, sizeof murl);
    rp_buf_clear(&s->resp->body);
    rp_buf_clear(&s->resp->headers);
    s->overflow = s->sink_err = 0;
    s->curl_err[0] = 0;
    if (r->out_path && !(s->sink = fopen(r->out_path, "wb"))) {
        finish_fail(s, "%s: cannot write %s: %s", murl, r->out_path, strerror(errno));
        return 0;
    }
    CURL *e = s->easy = curl_easy_init();
    if (!e) { finish_fail(s, "%s: curl_easy_init failed", murl); return 0; }
    const char *method = r->method ? r->method : (r->body ? "POST" : "GET");
    curl_easy_setopt(e, CURLOPT_URL, r->url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 8L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "repro/" RP_GIT_DESCRIBE);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, s->curl_err);
    double to = r->timeout_s > 0 ? r->timeout_s : c->pol.timeout_s;
    if (to > 0) curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(to * 1000));
    if (c->pol.connect_timeout_s > 0) curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(c->pol.connect_timeout_s * 1000));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, s);
    if (r->on_progress) {
        curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_xfer);
        curl_easy_setopt(e, CURLOPT_XFERINFODATA, s);
        curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    }
    if (c->share) curl_easy_setopt(e, CURLOPT_SHARE, c->share);
    if (strcmp(method, "GET") == 0) curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    else if (strcmp(method, "HEAD") == 0) curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    else {
        if (strcmp(method, "POST") == 0 || r->body) {
            curl_easy_setopt(e, CURLOPT_POST, 1L);
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body ? r->body : "");
        }
        if (strcmp(method, "POST") != 0) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    }
    struct curl_slist *h = curl_slist_append(NULL, "Expect:");   /* no 100-continue round trip */
    for (size_t i = 0; h && i < r->n_headers; i++) {
        struct curl_slist *h2 = curl_slist_append(h, r->headers[i]);
        if (!h2) { curl_slist_free_all(h); h = NULL; }
        else h = h2;
    }
    s->hdrs = h;
    if (!h) { finish_fail(s, "%s: out of memory for headers", murl); return 0; }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_PRIVATE, s);
    if (curl_multi_add_handle(m, e) != CURLM_OK) { finish_fail(s, "%s: curl_multi_add_handle failed", murl); return 0; }
    s->state = ST_ACTIVE;
    s->resp->attempts++;
    pthread_mutex_lock(&c->mu);
    c->stats.requests++;
    c->stats.bytes_out += r->body_len;
    pthread_mutex_unlock(&c->mu);
    return 1;
}

/* A printable snippet of a body for messages: control bytes and bytes >= 0x80 become spaces/'?'. */
static void snippet(const rp_buf *b, char *out, size_t n) {
    size_t k = 0;
    int sp = 0;
    for (size_t i = 0; i < b->len && k + 4 < n && i < 300; i++) {
        unsigned char ch = (unsigned char)b->data[i];
        if (ch < 0x20 || ch == 0x7F) { if (!sp && k) out[k++] = ' '; sp = 1; continue; }
        out[k++] = ch >= 0x80 ? '?' : (char)ch;
        sp = 0;
    }
    if (b->len > 300 && k + 4 < n) { memcpy(out + k, "...", 3); k += 3; }
    out[k] = 0;
}

static int retryable_curl(CURLcode rc) {
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT: case CURLE_COULDNT_CONNECT: case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY: case CURLE_RECV_ERROR: case CURLE_SEND_ERROR: case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE: case CURLE_SSL_CONNECT_ERROR: case CURLE_HTTP2: case CURLE_HTTP2_STREAM:
        return 1;
    default:
        return 0;
    }
}

/* An attempt ended: decide done (success or final failure) or retry later. */
static void slot_finished(slot *s, CURLM *m, CURLcode rc, double now) {
    rp_http_client *c = s->c;
    rp_http_response *resp = s->resp;
    long status = 0;
    curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_off_t ra = -1;
    if (curl_easy_getinfo(s->easy, CURLINFO_RETRY_AFTER, &ra) != CURLE_OK) ra = -1;
    curl_multi_remove_handle(m, s->easy);
    int sink_err = s->sink_err;
    slot_release(s);
    resp->status = status;
    char rav[64];   /* curl reports 0 both for "Retry-After: 0" and for no header: look at the header */
    resp->retry_after_s = rp_http_response_header(resp, "Retry-After", rav, sizeof rav) && ra >= 0 ? (double)ra : -1;
    char murl[512], snip[320], what[400];
    rp_http_mask_url(s->req->url, murl, sizeof murl);
    const char *method = s->req->method ? s->req->method : (s->req->body ? "POST" : "GET");
    int retry = 0;
    if (rc == CURLE_OK && status >= 200 && status < 300) {
        resp->st = RP_OK;
        resp->error[0] = 0;
        s->state = ST_DONE;
        goto done;
    }
    if (rc != CURLE_OK) {
        if (s->overflow) snprintf(what, sizeof what, "body larger than the %zu-byte limit", c->pol.max_body);
        else if (sink_err) snprintf(what, sizeof what, "writing %s: %s", s->req->out_path, strerror(sink_err));
        else snprintf(what, sizeof what, "%s%s%s", curl_easy_strerror(rc), s->curl_err[0] ? ": " : "", s->curl_err);
        retry = !s->overflow && !sink_err && retryable_curl(rc);
        if (status) {   /* a transport failure after a status line (e.g. a truncated body) */
            size_t w = strlen(what);
            snprintf(what + w, sizeof what - w, " (HTTP %ld)", status);
        }
    } else {
        snippet(&resp->body, snip, sizeof snip);
        snprintf(what, sizeof what, "HTTP %ld%s%s", status, snip[0] ? ": " : "", snip);
        retry = status == 429 || (status >= 500 && status <= 599);
    }
    if (retry && resp->attempts <= c->pol.max_retries) {
        double d;
        if (c->pol.honor_retry_after && resp->retry_after_s >= 0) d = fmin(resp->retry_after_s, c->pol.retry_after_cap_s);
        else {
            double full = fmin(c->pol.backoff_cap_s, c->pol.backoff_base_s * pow(2.0, resp->attempts - 1));
            d = full / 2 + full / 2 * jitter01(c);
        }
        s->ready_at = now + d;
        s->state = ST_PENDING;
        pthread_mutex_lock(&c->mu);
        c->stats.retries++;
        pthread_mutex_unlock(&c->mu);
        resp->elapsed_s = now - s->t0;
        return;
    }
    finish_fail(s, "%s %s: %s (after %d attempt%s)", method, murl, what, resp->attempts, resp->attempts == 1 ? "" : "s");
done:
    pthread_mutex_lock(&c->mu);
    c->stats.bytes_in += resp->bytes_in;
    if (resp->st != RP_OK) c->stats.failures++;
    pthread_mutex_unlock(&c->mu);
    resp->elapsed_s = now - s->t0;
}

/* Run n requests through one multi handle with at most max_concurrent active. */
rp_status rp_http_do_many(rp_http_client *c, const rp_http_request *reqs, rp_http_response *resps, size_t n,
                          int max_concurrent) {
    if (!c || (!reqs && n) || (!resps && n)) return rp_fail(RP_ERR_INVAL, "http: NULL client or request array");
    if (max_concurrent < 1) max_concurrent = 1;
    if (n == 0) return RP_OK;
    slot *s = calloc(n, sizeof *s);
    CURLM *m = curl_multi_init();
    if (!s || !m) { free(s); if (m) curl_multi_cleanup(m); return rp_fail(RP_ERR_NOMEM, "http: out of memory for %zu requests", n); }
    curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)max_concurrent);
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        memset(&resps[i], 0, sizeof resps[i]);
        resps[i].retry_after_s = -1;
        s[i] = (slot){ .c = c, .req = &reqs[i], .resp = &resps[i], .state = ST_PENDING, .ready_at = t0, .t0 = t0 };
        if (!reqs[i].url || !reqs[i].url[0]) finish_fail(&s[i], "http: request %zu has no URL", i);
    }
    size_t done = 0, active = 0, first = 0;   /* first: lowest index that may still be pending */
    for (size_t i = 0; i < n; i++) done += s[i].state == ST_DONE;
    double waited = 0, limited_at = -1;
    while (done < n) {
        double now = now_s(), wake = now + 1.0;
        if (interrupt_check && interrupt_check()) {   /* abandon everything not yet finished */
            for (size_t i = 0; i < n; i++) {
                if (s[i].state == ST_DONE) continue;
                if (s[i].state == ST_ACTIVE) { curl_multi_remove_handle(m, s[i].easy); slot_release(&s[i]); }
                char murl[512];
                rp_http_mask_url(s[i].req->url, murl, sizeof murl);
                finish_fail(&s[i], "%s: interrupted", murl);
                s[i].resp->st = RP_ERR_INTERRUPTED;
                s[i].resp->elapsed_s = now - t0;
            }
            break;
        }
        if (interrupt_check) wake = now + 0.2;      /* poll the interrupt flag five times a second */
        if (limited_at >= 0) { waited += now - limited_at; limited_at = -1; }
        /* start what may start, in index order: retries whose time has come and fresh requests */
        while (first < n && s[first].state == ST_DONE) first++;
        for (size_t i = first; i < n && active < (size_t)max_concurrent; i++) {
            if (s[i].state != ST_PENDING) continue;
            if (s[i].ready_at > now) { wake = fmin(wake, s[i].ready_at); continue; }
            double w = limits_take(c, s[i].req->tokens);
            if (w > 0) { wake = fmin(wake, now + w); limited_at = now; break; }
            if (slot_start(&s[i], m)) active++;
            else done++;
        }
        if (done == n) break;
        int running = 0;
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left, finished = 0;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            slot *sl = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&sl);
            if (!sl) continue;
            active--;
            finished++;
            slot_finished(sl, m, msg->data.result, now_s());
            if (sl->state == ST_PENDING) wake = fmin(wake, sl->ready_at);
            else done++;
        }
        if (done == n) break;
        if (finished) continue;                    /* a slot came free: start the next without waiting */
        now = now_s();
        int ms = (int)fmax(0, fmin(1000, (wake - now) * 1000));
        if (active) curl_multi_poll(m, NULL, 0, ms ? ms : 1, NULL);
        else if (ms > 0) { struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L }; nanosleep(&ts, NULL); }
    }
    curl_multi_cleanup(m);
    pthread_mutex_lock(&c->mu);
    c->stats.waited_rate_s += waited;
    pthread_mutex_unlock(&c->mu);
    size_t failed = 0, bad = n, intr = 0;
    for (size_t i = 0; i < n; i++) {
        if (resps[i].st != RP_OK) { failed++; if (bad == n) bad = i; }
        intr += resps[i].st == RP_ERR_INTERRUPTED;
    }
    free(s);
    if (!failed) return RP_OK;
    if (intr) return rp_fail(RP_ERR_INTERRUPTED, "interrupted with %zu of %zu requests unfinished", intr, n);
    if (n == 1) return rp_fail(RP_ERR_NET, "%s", resps[0].error);
    return rp_fail(RP_ERR_NET, "%zu of %zu requests failed; first (request %zu): %s", failed, n, bad, resps[bad].error);
}

/* One request, with retries. */
rp_status rp_http_do(rp_http_client *c, const rp_http_request *req, rp_http_response *resp) {
    return rp_http_do_many(c, req, resp, 1, 1);
}

/* Free a response's buffers. */
void rp_http_response_free(rp_http_response *r) {
    if (!r) return;
    rp_buf_free(&r->body);
    rp_buf_free(&r->headers);
}

/* Look up a header of the final response. */
int rp_http_response_header(const rp_http_response *r, const char *name, char *out, size_t n) {
    if (!r || !r->headers.data || !name) return 0;
    size_t nl = strlen(name);
    const char *p = r->headers.data, *end = p + r->headers.len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t')) v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) ve--;
            if (n) snprintf(out, n, "%.*s", (int)(ve - v), v);
            return 1;
        }
        p = eol + 1;
    }
    return 0;
}
