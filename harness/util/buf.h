/* buf.h: a growable byte buffer (always NUL-terminated) and whole-file reading.
 * Invariant: data[len] == 0 whenever data != NULL. */
#ifndef RP_BUF_H
#define RP_BUF_H
#include <stddef.h>
#include "util/err.h"

typedef struct rp_buf { char *data; size_t len, cap; } rp_buf;

/* Append n bytes. */
rp_status rp_buf_append(rp_buf *b, const void *p, size_t n);
/* Append a NUL-terminated string. */
rp_status rp_buf_puts(rp_buf *b, const char *s);
/* Append printf-style. */
rp_status rp_buf_printf(rp_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Empty the buffer, keeping its memory. */
void rp_buf_clear(rp_buf *b);
/* Release the memory; the buffer is empty and reusable afterwards. */
void rp_buf_free(rp_buf *b);
/* Read a whole file into b (replacing its content); errors name the path. */
rp_status rp_read_file(const char *path, rp_buf *b);
/* Write len bytes to path atomically (temp file + rename). */
rp_status rp_write_file(const char *path, const void *data, size_t len);
/* mkdir -p. */
rp_status rp_mkdirs(const char *path);

#endif
