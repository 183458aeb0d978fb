/* err.c: the thread-local error message behind rp_fail. Messages are truncated, never overflowed. */
#include "util/err.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char rp_msg[2048];

rp_status rp_fail(rp_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rp_msg, sizeof rp_msg, fmt, ap);
    va_end(ap);
    return st;
}

rp_status rp_fail_ctx(rp_status st, const char *fmt, ...) {
    char prefix[1024], old[sizeof rp_msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, rp_msg, sizeof old);
    size_t np = strlen(prefix);
    memcpy(rp_msg, prefix, np);
    size_t rest = sizeof rp_msg - 1 - np;
    size_t no = strnlen(old, rest);
    memcpy(rp_msg + np, old, no);
    rp_msg[np + no] = 0;
    return st;
}

const char *rp_errmsg(void) { return rp_msg; }

const char *rp_status_name(rp_status st) {
    switch (st) {
    case RP_OK: return "ok";
    case RP_ERR_INVAL: return "invalid argument";
    case RP_ERR_IO: return "io";
    case RP_ERR_NOMEM: return "out of memory";
    case RP_ERR_FORMAT: return "format";
    case RP_ERR_NOTFOUND: return "not found";
    case RP_ERR_UNSUPPORTED: return "unsupported";
    case RP_ERR_NET: return "network";
    case RP_ERR_DB: return "database";
    case RP_ERR_INTERRUPTED: return "interrupted";
    case RP_ERR_RANGE: return "out of range";
    case RP_ERR_CHECKSUM: return "checksum";
    }
    return "unknown";
}

int rp_status_exit_code(rp_status st) {
    switch (st) {
    case RP_OK: return 0;
    case RP_ERR_INVAL: return 2;
    case RP_ERR_FORMAT: case RP_ERR_CHECKSUM: return 3;
    case RP_ERR_IO: case RP_ERR_NOTFOUND: return 4;
    case RP_ERR_NET: return 5;
    case RP_ERR_DB: return 6;
    case RP_ERR_INTERRUPTED: return 130;
    default: return 1;
    }
}
