/* http.h: an HTTP client on libcurl for APIs and downloads: retries with exponential backoff and jitter
 * (429, 5xx, timeouts and connection errors; never other 4xx), Retry-After, request and token rate limits
 * (token buckets shared by every thread using the client), concurrency through curl's multi interface,
 * and counters. A client is thread-safe; connections are reused across calls and threads.
 * Errors name the method, the URL with secret-looking query parameters masked, the HTTP status and a
 * cleaned snippet of the body. Header values (Authorization, X-API-KEY, ...) are never logged or put in
 * messages. A response body that is HTML, truncated or not JSON is just bytes here: nothing is parsed. */
#ifndef RP_HTTP_H
#define RP_HTTP_H
#include <stddef.h>
#include <stdint.h>
#include "util/buf.h"
#include "util/err.h"

typedef struct rp_http_client rp_http_client;

typedef struct rp_http_policy {
    int max_retries;            /* retries after the first attempt (default 5) */
    double backoff_base_s;      /* delay before retry k is in [d/2, d], d = min(cap, base * 2^(k-1)) (0.5) */
    double backoff_cap_s;       /* (30) */
    int honor_retry_after;      /* wait what a 429/5xx's Retry-After says instead of the backoff (1) */
    double retry_after_cap_s;   /* never wait longer than this for one Retry-After (120) */
    double timeout_s;           /* whole-attempt timeout when the request gives none (120) */
    double connect_timeout_s;   /* (10) */
    size_t max_body;            /* largest body kept in memory, bytes (256 MiB); larger is an error */
} rp_http_policy;

typedef struct rp_http_request {
    const char *method;                 /* NULL: GET, or POST when body is set */
    const char *url;
    const char *const *headers;         /* "Name: value" lines */
    size_t n_headers;
    const char *body;                   /* may be NULL */
    size_t body_len;
    double timeout_s;                   /* per attempt; 0: the policy's */
    double tokens;                      /* this request's estimated tokens, for the tokens-per-minute limit */
    const char *out_path;               /* non-NULL: stream the body into this file (truncated per attempt) */
    void (*on_progress)(void *ud, double done, double total);   /* download progress (total <= 0: unknown) */
    void *progress_ud;
} rp_http_request;

typedef struct rp_http_response {
    long status;                /* HTTP status of the final attempt; 0 when no response came */
    rp_buf body;                /* body of the final attempt (empty when out_path was used) */
    rp_buf headers;             /* raw header block of the final response */
    double retry_after_s;       /* the final response's Retry-After in seconds, -1 when absent */
    int attempts;               /* transfers made (1 + retries) */
    double elapsed_s;           /* wall time including waits */
    uint64_t bytes_in;          /* body bytes received over all attempts */
    rp_status st;               /* RP_OK for a 2xx; RP_ERR_NET otherwise (also set in rp_errmsg by rp_http_do) */
    char error[768];            /* the failure message ("" on success) */
} rp_http_response;

typedef struct rp_http_stats {
    uint64_t requests;          /* transfers started, retries included */
    uint64_t retries;
    uint64_t failures;          /* requests that finally failed */
    uint64_t bytes_in, bytes_out;
    double waited_rate_s;       /* time spent waiting on the rate limits */
} rp_http_stats;

/* The default policy. */
rp_http_policy rp_http_policy_default(void);
/* A client (policy NULL: defaults); requests_per_min / tokens_per_min <= 0 mean unlimited. */
rp_status rp_http_client_new(const rp_http_policy *policy, double requests_per_min, double tokens_per_min,
                             rp_http_client **out);
void rp_http_client_free(rp_http_client *c);
/* Perform one request with retries; resp is filled either way (free it with rp_http_response_free). */
rp_status rp_http_do(rp_http_client *c, const rp_http_request *req, rp_http_response *resp);
/* Perform n requests with at most max_concurrent in flight; resps[i] answers reqs[i]. Returns RP_OK when
 * every one succeeded, else RP_ERR_NET with a message counting failures and quoting the first. */
rp_status rp_http_do_many(rp_http_client *c, const rp_http_request *reqs, rp_http_response *resps, size_t n,
                          int max_concurrent);
/* Release a response's buffers (the struct itself is the caller's). */
void rp_http_response_free(rp_http_response *r);
/* Copy the value of the final response's header name (case-insensitive) into out; 0 when absent. */
int rp_http_response_header(const rp_http_response *r, const char *name, char *out, size_t n);
/* Adjust the tokens-per-minute bucket once a response tells the real usage: tokens > 0 takes more (the
 * request's estimate was low), < 0 gives back. No effect without a tokens-per-minute limit. */
void rp_http_client_charge(rp_http_client *c, double tokens);
/* Install a test (e.g. the host's SIGINT flag) polled about five times a second by every running call: when
 * it returns non-zero, unfinished requests are abandoned with RP_ERR_INTERRUPTED (finished ones keep their
 * results). NULL removes it. Process-wide; set it before starting calls. */
void rp_http_set_interrupt_check(int (*fn)(void));
/* The client's counters so far. */
rp_http_stats rp_http_client_stats(rp_http_client *c);
/* Copy url into out with userinfo and secret-looking query values (key, token, secret, password, sig,
 * auth in the name) replaced by "***". */
void rp_http_mask_url(const char *url, char *out, size_t n);

#endif
