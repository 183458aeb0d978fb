/* httpd.h: a small embeddable HTTP/1.1 server for `repro serve` and for tests' fixture servers.
 * Loopback by default, one thread per connection (bounded), Content-Length bodies, keep-alive.
 * Slow or idle clients cannot starve others: a request must arrive within a read deadline, an idle
 * keep-alive connection is closed after a timeout, and when every connection slot is taken while a new
 * client waits, the connection idle (or still sending its request) the longest is closed to make room;
 * only connections inside a handler are never closed for room. Errors the server answers itself (bad
 * request line, oversized head or body, chunked bodies) are OpenAI-style JSON error objects.
 * A handler callback sees the parsed request and fills a response; or, for fixtures that misbehave on
 * purpose, writes raw bytes itself (rp_httpd_write) and returns RP_HTTPD_RAW: the server then sends nothing
 * more and closes the connection (so a handler can sleep, drop the connection or send a truncated body).
 * Handlers run concurrently on connection threads: they must be thread-safe. */
#ifndef RP_HTTPD_H
#define RP_HTTPD_H
#include <stddef.h>
#include "util/buf.h"
#include "util/err.h"

typedef struct rp_httpd rp_httpd;

typedef struct rp_httpd_request {
    const char *method;         /* "GET", "POST", ... */
    const char *path;           /* request target as sent, query string included ("/v1/x?a=1") */
    const char *headers;        /* raw header lines, "Name: value\r\n" each */
    const char *body;           /* NUL-terminated copy of the body (may contain NULs; see body_len) */
    size_t body_len;
    int fd;                     /* the connection (for rp_httpd_write) */
    unsigned long conn_id, req_index;   /* connection number, request number on it (0-based) */
} rp_httpd_request;

typedef struct rp_httpd_response {
    int status;                 /* default 200 */
    char content_type[128];     /* default "application/json" */
    rp_buf body;
    rp_buf headers;             /* extra header lines, each ending in "\r\n" (e.g. "Retry-After: 1\r\n") */
    int close;                  /* close the connection after this response */
} rp_httpd_response;

enum { RP_HTTPD_OK = 0, RP_HTTPD_RAW = 1 };

/* Return RP_HTTPD_OK to send resp, or RP_HTTPD_RAW after writing (or not) on req->fd yourself. */
typedef int (*rp_httpd_handler)(void *ud, const rp_httpd_request *req, rp_httpd_response *resp);

typedef struct rp_httpd_opts {
    const char *host;           /* NULL: 127.0.0.1 */
    int port;                   /* 0: an ephemeral port */
    int max_conns;              /* connections at once (<= 0: 64) */
    size_t max_body;            /* largest request body in bytes, larger is a 413 (0: 64 MiB) */
    double idle_timeout_s;      /* keep-alive: wait this long for a next request (<= 0: 60) */
    double read_timeout_s;      /* a request's head and body must arrive within this of its first byte (<= 0: 30) */
    double write_timeout_s;     /* a send blocked this long (peer not reading) fails (<= 0: 30) */
} rp_httpd_opts;

/* Listen on host:port (host NULL: 127.0.0.1; port 0: an ephemeral port) and serve in background threads,
 * at most max_conns connections at once (<= 0: 64), with the default limits of rp_httpd_opts. */
rp_status rp_httpd_start(const char *host, int port, int max_conns, rp_httpd_handler h, void *ud, rp_httpd **out);
/* rp_httpd_start with every limit given (o may be NULL: the defaults). */
rp_status rp_httpd_start_opts(const rp_httpd_opts *o, rp_httpd_handler h, void *ud, rp_httpd **out);
/* The limits in force (defaults filled in). */
rp_httpd_opts rp_httpd_limits(const rp_httpd *s);
/* The bound port. */
int rp_httpd_port(const rp_httpd *s);
/* Stop: close the listener, shut down open connections, wait for handler threads, free. */
void rp_httpd_stop(rp_httpd *s);
/* Write all n bytes on a connection (for raw handlers); -1 when the peer is gone. */
int rp_httpd_write(int fd, const void *data, size_t n);
/* Streaming replies (e.g. server-sent events) from a raw handler: begin writes the status line and headers
 * with chunked transfer encoding, each chunk call sends one chunk (n > 0), end sends the terminating chunk.
 * Each returns -1 once the peer is gone. The handler then returns RP_HTTPD_RAW. */
int rp_httpd_stream_begin(int fd, int status, const char *content_type);
int rp_httpd_stream_chunk(int fd, const void *data, size_t n);
int rp_httpd_stream_end(int fd);
/* Value of a request header (case-insensitive) copied into out; 0 when absent. */
int rp_httpd_header(const rp_httpd_request *req, const char *name, char *out, size_t n);
/* Requests served so far (handler calls). */
unsigned long rp_httpd_count(rp_httpd *s);

#endif
