/* err.h: status codes and the thread-local error message of the C core.
 * Library code never exits or raises on bad input: it returns an rp_status and sets a message that
 * names the file, the field and the value that was wrong. Only the Lua binding layer turns a status
 * into a Lua error. */
#ifndef RP_ERR_H
#define RP_ERR_H

typedef enum rp_status {
    RP_OK = 0,
    RP_ERR_INVAL,        /* bad argument or parameter */
    RP_ERR_IO,           /* file system */
    RP_ERR_NOMEM,
    RP_ERR_FORMAT,       /* malformed or hostile input file / record */
    RP_ERR_NOTFOUND,
    RP_ERR_UNSUPPORTED,  /* valid input we do not handle (e.g. an unknown dtype, an op a backend lacks) */
    RP_ERR_NET,          /* HTTP / transport */
    RP_ERR_DB,           /* SQLite */
    RP_ERR_INTERRUPTED,  /* SIGINT / SIGTERM */
    RP_ERR_RANGE,        /* index, size or arithmetic overflow */
    RP_ERR_CHECKSUM,     /* sha256 mismatch */
} rp_status;

/* Set the thread's error message (printf-style) and return st, so callers write `return rp_fail(...)`. */
rp_status rp_fail(rp_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefix the current message with context ("loading x.gguf: ") and return st. */
rp_status rp_fail_ctx(rp_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The current thread's last error message ("" when none). */
const char *rp_errmsg(void);
/* A short stable name for a status ("format", "io", ...). */
const char *rp_status_name(rp_status st);
/* Process exit code for a status: 0 ok, 2 usage/param, 3 input format, 4 io, 5 net, 6 db, 130 interrupted, 1 other. */
int rp_status_exit_code(rp_status st);

#define RP_TRY(expr) do { rp_status rp_try_st_ = (expr); if (rp_try_st_ != RP_OK) return rp_try_st_; } while (0)

#endif
