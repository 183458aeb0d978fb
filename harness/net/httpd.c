/* httpd.c: the embeddable HTTP/1.1 server behind httpd.h.
 * An accept thread hands each connection to a detached thread (at most max_conns at once); the thread
 * reads requests (head up to 64 KiB, Content-Length body up to max_body; chunked request bodies are refused
 * with 501), calls the handler and writes the response, keeping the connection alive unless asked not to.
 * Reads wait with poll() against a deadline (idle timeout before a request's first byte, read timeout from
 * it to the end of its body), so a client sending one byte a minute cannot hold a thread forever.
 * When the slots are full and a client waits in the listen queue, the accept thread closes the slot that
 * has been idle or reading the longest (state READING); slots inside the handler (BUSY) are never closed.
 * Invariants: every open connection fd is in s->fds so rp_httpd_stop can shut it down; a slot's state
 * changes under s->mu only; stop returns only after every connection thread has left; writes use
 * MSG_NOSIGNAL so a vanished peer never raises SIGPIPE. */
#include "net/httpd.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define HEAD_MAX (64u << 10)
#define BODY_MAX ((size_t)64 << 20)

enum { SLOT_READING, SLOT_BUSY, SLOT_EVICTED };

struct rp_httpd {
    rp_httpd_opts o;
    int lfd, port, max_conns, stopping;
    rp_httpd_handler h;
    void *ud;
    pthread_t accept_thr;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int *fds;                       /* open connection fds, -1 for free entries */
    unsigned char *state;           /* per slot: SLOT_* */
    double *since;                  /* per slot: when it last entered SLOT_READING */
    int nconns;
    unsigned long next_conn, served;
};

typedef struct conn { rp_httpd *s; int fd, idx; unsigned long id; } conn;

/* Write all bytes; -1 on error. */
int rp_httpd_write(int fd, const void *data, size_t n) {
    const char *p = data;
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const char *reason(int status) {
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    }
    return "Status";
}

/* Start a chunked reply. */
int rp_httpd_stream_begin(int fd, int status, const char *content_type) {
    char head[512];
    int n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n"
                     "Cache-Control: no-cache\r\nConnection: close\r\n\r\n", status, reason(status),
                     content_type ? content_type : "text/event-stream");
    return n > 0 && n < (int)sizeof head ? rp_httpd_write(fd, head, (size_t)n) : -1;
}

/* Send one chunk. */
int rp_httpd_stream_chunk(int fd, const void *data, size_t n) {
    if (!n) return 0;                              /* an empty chunk would end the stream */
    char len[32];
    int k = snprintf(len, sizeof len, "%zx\r\n", n);
    if (rp_httpd_write(fd, len, (size_t)k) < 0 || rp_httpd_write(fd, data, n) < 0) return -1;
    return rp_httpd_write(fd, "\r\n", 2);
}

/* End a chunked reply. */
int rp_httpd_stream_end(int fd) { return rp_httpd_write(fd, "0\r\n\r\n", 5); }

/* An error the server answers itself, as an OpenAI-style JSON error object (msg is plain ASCII). */
static int send_simple(int fd, int status, const char *msg) {
    char body[512], head[256];
    int b = snprintf(body, sizeof body, "{\"error\":{\"message\":\"%s\",\"type\":\"%s\",\"param\":null,\"code\":%d}}\n",
                     msg, status >= 500 && status != 501 ? "server_error" : "invalid_request_error", status);
    if (b < 0 || b >= (int)sizeof body) return -1;
    int n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                     "Connection: close\r\n\r\n", status, reason(status), b);
    if (rp_httpd_write(fd, head, (size_t)n) < 0) return -1;
    return rp_httpd_write(fd, body, (size_t)b);
}

/* After an early error reply: stop sending, then read and drop what the client still sends (up to 2 s or
 * 64 MiB), so that it reads our reply instead of failing its upload on a reset connection. */
static void drain_close(int fd) {
    shutdown(fd, SHUT_WR);
    char tmp[16384];
    double end = now_s() + 2;
    for (size_t got = 0; got < BODY_MAX;) {
        double left = end - now_s();
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (left <= 0 || poll(&p, 1, (int)(left * 1000) + 1) <= 0) break;
        ssize_t r = recv(fd, tmp, sizeof tmp, 0);
        if (r <= 0) break;
        got += (size_t)r;
    }
}

/* Find a header value in a raw header block (lines "Name: value\r\n"). */
static int header_in(const char *hdrs, const char *name, char *out, size_t n) {
    size_t nl = strlen(name);
    for (const char *p = hdrs; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1, *ve = p + len;
            while (v < ve && (*v == ' ' || *v == '\t')) v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
            if (n) snprintf(out, n, "%.*s", (int)(ve - v), v);
            return 1;
        }
        p = eol ? eol + 2 : NULL;
    }
    return 0;
}

/* Look up a request header. */
int rp_httpd_header(const rp_httpd_request *req, const char *name, char *out, size_t n) {
    return req && name ? header_in(req->headers, name, out, n) : 0;
}

/* Read more bytes into b before the deadline (monotonic seconds); 0 on EOF/error/deadline. */
static int fill(int fd, rp_buf *b, double deadline) {
    char tmp[16384];
    for (;;) {
        double left = deadline - now_s();
        if (left <= 0) return 0;
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int pr = poll(&p, 1, (int)(left * 1000) + 1);
        if (pr < 0 && errno == EINTR) continue;
        if (pr <= 0) return 0;
        ssize_t r = recv(fd, tmp, sizeof tmp, 0);
        if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (r <= 0) return 0;
        return rp_buf_append(b, tmp, (size_t)r) == RP_OK;
    }
}

/* Move slot idx to state st (never out of SLOT_EVICTED); 0 when the slot was evicted. */
static int set_state(rp_httpd *s, int idx, int st) {
    pthread_mutex_lock(&s->mu);
    int ok = s->state[idx] != SLOT_EVICTED;
    if (ok) {
        s->state[idx] = (unsigned char)st;
        if (st == SLOT_READING) s->since[idx] = now_s();
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return ok;
}

static void serve_conn(conn *cn) {
    rp_httpd *s = cn->s;
    int fd = cn->fd;
    rp_buf in = {0}, out = {0};
    rp_httpd_response resp;
    memset(&resp, 0, sizeof resp);
    for (unsigned long reqi = 0;; reqi++) {
        /* the request head: its first byte within the idle timeout, the rest within the read timeout */
        char *end;
        double deadline = now_s() + (in.len ? s->o.read_timeout_s : s->o.idle_timeout_s);
        while (!in.data || !(end = strstr(in.data, "\r\n\r\n"))) {
            if (in.len > HEAD_MAX) { send_simple(fd, 431, "request head too large (limit 65536 bytes)"); goto out; }
            int was_empty = in.len == 0;
            if (!fill(fd, &in, deadline)) goto out;
            if (was_empty) deadline = now_s() + s->o.read_timeout_s;
        }
        size_t head_len = (size_t)(end - in.data) + 4;
        end[2] = 0;                                 /* head = request line + header lines, NUL after last CRLF */
        char *line_end = strstr(in.data, "\r\n");
        *line_end = 0;
        char method[16], target[8192], version[16];
        if (sscanf(in.data, "%15s %8191s %15s", method, target, version) != 3 || strncmp(version, "HTTP/1.", 7) != 0) {
            send_simple(fd, 400, "bad request line");
            goto out;
        }
        const char *hdrs = line_end + 2;
        char v[64];
        size_t clen = 0;
        if (header_in(hdrs, "Transfer-Encoding", v, sizeof v)) { send_simple(fd, 501, "chunked request bodies are not supported (send Content-Length)"); drain_close(fd); goto out; }
        if (header_in(hdrs, "Content-Length", v, sizeof v)) {
            char *e;
            errno = 0;
            unsigned long long cl = strtoull(v, &e, 10);
            /* a value filling v was cut: refuse it rather than read a truncated length */
            if (!v[0] || *e || errno || v[0] == '-' || strlen(v) == sizeof v - 1) { send_simple(fd, 400, "bad Content-Length"); goto out; }
            if (cl > s->o.max_body) {
                char m[160];
                snprintf(m, sizeof m, "request body of %llu bytes exceeds this server's limit of %zu bytes", cl, s->o.max_body);
                send_simple(fd, 413, m);
                drain_close(fd);
                goto out;
            }
            clen = (size_t)cl;
        }
        int keep = strcmp(version, "HTTP/1.1") == 0;
        if (header_in(hdrs, "Connection", v, sizeof v)) {
            if (strcasecmp(v, "close") == 0) keep = 0;
            else if (strcasecmp(v, "keep-alive") == 0) keep = 1;
        }
        if (clen && header_in(hdrs, "Expect", v, sizeof v) && strcasecmp(v, "100-continue") == 0 &&
            in.len - head_len < clen)
            rp_httpd_write(fd, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        while (in.len - head_len < clen)
            if (!fill(fd, &in, deadline)) goto out;
        /* the body: copy so that it is NUL-terminated independently of the head */
        char *body = malloc(clen + 1);
        if (!body) { send_simple(fd, 500, "out of memory"); goto out; }
        memcpy(body, in.data + head_len, clen);
        body[clen] = 0;
        rp_httpd_request req = { method, target, hdrs, body, clen, fd, cn->id, reqi };
        rp_buf_clear(&resp.body);
        rp_buf_clear(&resp.headers);
        resp.status = 200;
        snprintf(resp.content_type, sizeof resp.content_type, "application/json");
        resp.close = 0;
        if (!set_state(s, cn->idx, SLOT_BUSY)) { free(body); goto out; }
        int rc = s->h(s->ud, &req, &resp);
        pthread_mutex_lock(&s->mu);
        s->served++;
        pthread_mutex_unlock(&s->mu);
        free(body);
        if (rc == RP_HTTPD_RAW) goto out;
        if (resp.close) keep = 0;
        rp_buf_clear(&out);
        int st = resp.status >= 100 && resp.status <= 999 ? resp.status : 500;
        rp_buf_printf(&out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%sConnection: %s\r\n\r\n",
                      st, reason(st), resp.content_type, resp.body.len, resp.headers.data ? resp.headers.data : "",
                      keep ? "keep-alive" : "close");
        if (strcmp(method, "HEAD") != 0 && resp.body.len) rp_buf_append(&out, resp.body.data, resp.body.len);
        if (!out.data || rp_httpd_write(fd, out.data, out.len) < 0 || !keep) goto out;
        if (!set_state(s, cn->idx, SLOT_READING)) goto out;
        /* keep what follows this request (pipelining) */
        size_t used = head_len + clen, rest = in.len - used;
        memmove(in.data, in.data + used, rest);
        in.len = rest;
        in.data[rest] = 0;
    }
out:
    rp_buf_free(&in);
    rp_buf_free(&out);
    rp_buf_free(&resp.body);
    rp_buf_free(&resp.headers);
}

static void *conn_main(void *arg) {
    conn *cn = arg;
    rp_httpd *s = cn->s;
    serve_conn(cn);
    shutdown(cn->fd, SHUT_RDWR);
    close(cn->fd);
    pthread_mutex_lock(&s->mu);
    s->fds[cn->idx] = -1;
    s->nconns--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    free(cn);
    return NULL;
}

/* With every slot taken: when a client waits to be accepted, close the slot reading (or idle) the longest.
 * Called with s->mu held. */
static void make_room(rp_httpd *s) {
    pthread_mutex_unlock(&s->mu);
    struct pollfd p = { .fd = s->lfd, .events = POLLIN };
    int waiting = poll(&p, 1, 100) > 0 && (p.revents & POLLIN);
    pthread_mutex_lock(&s->mu);
    if (waiting && !s->stopping && s->nconns >= s->max_conns) {
        int best = -1;
        for (int i = 0; i < s->max_conns; i++)
            if (s->fds[i] >= 0 && s->state[i] == SLOT_READING && (best < 0 || s->since[i] < s->since[best])) best = i;
        if (best >= 0) {
            s->state[best] = SLOT_EVICTED;
            shutdown(s->fds[best], SHUT_RDWR);          /* its thread sees EOF and frees the slot */
        }
    }
    if (!s->stopping && s->nconns >= s->max_conns) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
}

static void *accept_main(void *arg) {
    rp_httpd *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->stopping && s->nconns >= s->max_conns) make_room(s);
        int stop = s->stopping;
        pthread_mutex_unlock(&s->mu);
        if (stop) break;
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            pthread_mutex_lock(&s->mu);
            stop = s->stopping;
            pthread_mutex_unlock(&s->mu);
            if (stop) break;
            usleep(10000);                        /* e.g. EMFILE: back off instead of spinning */
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        double wt = s->o.write_timeout_s;
        struct timeval tv = { (time_t)wt, (suseconds_t)((wt - (double)(time_t)wt) * 1e6) };
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        conn *cn = malloc(sizeof *cn);
        pthread_mutex_lock(&s->mu);
        int idx = -1;
        for (int i = 0; i < s->max_conns; i++) if (s->fds[i] < 0) { idx = i; break; }
        if (!cn || idx < 0 || s->stopping) {
            pthread_mutex_unlock(&s->mu);
            free(cn);
            close(fd);
            continue;
        }
        s->fds[idx] = fd;
        s->state[idx] = SLOT_READING;
        s->since[idx] = now_s();
        s->nconns++;
        *cn = (conn){ s, fd, idx, s->next_conn++ };
        pthread_mutex_unlock(&s->mu);
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&at, 1 << 20);
        if (pthread_create(&t, &at, conn_main, cn) != 0) {
            pthread_mutex_lock(&s->mu);
            s->fds[idx] = -1;
            s->nconns--;
            pthread_mutex_unlock(&s->mu);
            close(fd);
            free(cn);
        }
        pthread_attr_destroy(&at);
    }
    return NULL;
}

/* Start with the default limits. */
rp_status rp_httpd_start(const char *host, int port, int max_conns, rp_httpd_handler h, void *ud, rp_httpd **out) {
    rp_httpd_opts o = { .host = host, .port = port, .max_conns = max_conns };
    return rp_httpd_start_opts(&o, h, ud, out);
}

/* The limits in force. */
rp_httpd_opts rp_httpd_limits(const rp_httpd *s) { return s->o; }

/* Bind, listen and start the accept thread. */
rp_status rp_httpd_start_opts(const rp_httpd_opts *opts, rp_httpd_handler h, void *ud, rp_httpd **out) {
    *out = NULL;
    rp_httpd_opts o = opts ? *opts : (rp_httpd_opts){0};
    const char *host = o.host;
    int port = o.port, max_conns = o.max_conns;
    if (!h) return rp_fail(RP_ERR_INVAL, "httpd: no handler");
    if (port < 0 || port > 65535) return rp_fail(RP_ERR_INVAL, "httpd: port %d out of range 0..65535", port);
    const char *hn = host ? host : "127.0.0.1";
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    if (inet_pton(AF_INET, hn, &a.sin_addr) != 1) return rp_fail(RP_ERR_INVAL, "httpd: host '%s' is not an IPv4 address", hn);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return rp_fail(RP_ERR_NET, "httpd: socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 128) != 0) {
        int e = errno;
        close(fd);
        return rp_fail(RP_ERR_NET, "httpd: cannot listen on %s:%d: %s", hn, port, strerror(e));
    }
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    rp_httpd *s = calloc(1, sizeof *s);
    if (max_conns <= 0) max_conns = 64;
    if (s) {
        s->fds = malloc((size_t)max_conns * sizeof *s->fds);
        s->state = calloc((size_t)max_conns, sizeof *s->state);
        s->since = calloc((size_t)max_conns, sizeof *s->since);
    }
    if (!s || !s->fds || !s->state || !s->since) {
        if (s) { free(s->fds); free(s->state); free(s->since); free(s); }
        close(fd);
        return rp_fail(RP_ERR_NOMEM, "httpd: out of memory");
    }
    o.max_conns = max_conns;
    if (!o.max_body) o.max_body = BODY_MAX;
    if (o.idle_timeout_s <= 0) o.idle_timeout_s = 60;
    if (o.read_timeout_s <= 0) o.read_timeout_s = 30;
    if (o.write_timeout_s <= 0) o.write_timeout_s = 30;
    s->o = o;
    for (int i = 0; i < max_conns; i++) s->fds[i] = -1;
    s->lfd = fd;
    s->port = ntohs(a.sin_port);
    s->max_conns = max_conns;
    s->h = h;
    s->ud = ud;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (pthread_create(&s->accept_thr, NULL, accept_main, s) != 0) {
        close(fd);
        free(s->fds);
        free(s->state);
        free(s->since);
        free(s);
        return rp_fail(RP_ERR_NET, "httpd: cannot start the accept thread");
    }
    *out = s;
    return RP_OK;
}

/* The port the server listens on. */
int rp_httpd_port(const rp_httpd *s) { return s ? s->port : 0; }

/* Handler calls so far. */
unsigned long rp_httpd_count(rp_httpd *s) {
    pthread_mutex_lock(&s->mu);
    unsigned long n = s->served;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* Stop accepting, end every connection and free the server. */
void rp_httpd_stop(rp_httpd *s) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    shutdown(s->lfd, SHUT_RDWR);                   /* wakes accept() */
    pthread_join(s->accept_thr, NULL);
    close(s->lfd);
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->max_conns; i++) if (s->fds[i] >= 0) shutdown(s->fds[i], SHUT_RDWR);
    while (s->nconns > 0) pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s->fds);
    free(s->state);
    free(s->since);
    free(s);
}
