/* buf.c: growable buffers and small file helpers used across the core. */
#include "util/buf.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static rp_status reserve(rp_buf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap) return RP_OK;
    if (extra > ((size_t)-1) / 2 - b->len) return rp_fail(RP_ERR_RANGE, "buffer size overflow");
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) return rp_fail(RP_ERR_NOMEM, "out of memory growing a buffer to %zu bytes", cap);
    b->data = p;
    b->cap = cap;
    return RP_OK;
}

rp_status rp_buf_append(rp_buf *b, const void *p, size_t n) {
    RP_TRY(reserve(b, n));
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return RP_OK;
}

rp_status rp_buf_puts(rp_buf *b, const char *s) { return rp_buf_append(b, s, strlen(s)); }

rp_status rp_buf_printf(rp_buf *b, const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) { va_end(ap2); return rp_fail(RP_ERR_INVAL, "bad format string"); }
    rp_status st = reserve(b, (size_t)n);
    if (st == RP_OK) {
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
        b->len += (size_t)n;
    }
    va_end(ap2);
    return st;
}

void rp_buf_clear(rp_buf *b) { b->len = 0; if (b->data) b->data[0] = 0; }

void rp_buf_free(rp_buf *b) { free(b->data); b->data = NULL; b->len = b->cap = 0; }

rp_status rp_read_file(const char *path, rp_buf *b) {
    FILE *f = fopen(path, "rb");
    if (!f) return rp_fail(errno == ENOENT ? RP_ERR_NOTFOUND : RP_ERR_IO, "%s: %s", path, strerror(errno));
    rp_buf_clear(b);
    char tmp[65536];
    size_t n;
    rp_status st = RP_OK;
    while (st == RP_OK && (n = fread(tmp, 1, sizeof tmp, f)) > 0) st = rp_buf_append(b, tmp, n);
    if (st == RP_OK && ferror(f)) st = rp_fail(RP_ERR_IO, "%s: read error", path);
    if (st == RP_OK && !b->data) st = rp_buf_append(b, "", 0);
    fclose(f);
    return st;
}

rp_status rp_write_file(const char *path, const void *data, size_t len) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return rp_fail(RP_ERR_IO, "%s: %s", tmp, strerror(errno));
    size_t w = fwrite(data, 1, len, f);
    int bad = (w != len) | (fclose(f) != 0);
    if (bad || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return rp_fail(RP_ERR_IO, "%s: %s", path, strerror(e));
    }
    return RP_OK;
}

rp_status rp_mkdirs(const char *path) {
    char p[4096];
    size_t n = strlen(path);
    if (n >= sizeof p) return rp_fail(RP_ERR_INVAL, "path too long: %s", path);
    memcpy(p, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] == '/' || p[i] == 0) {
            char c = p[i];
            p[i] = 0;
            if (mkdir(p, 0777) != 0 && errno != EEXIST)
                return rp_fail(RP_ERR_IO, "cannot create directory %s: %s", p, strerror(errno));
            p[i] = c;
        }
    }
    return RP_OK;
}
