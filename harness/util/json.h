/* json.h: a small JSON DOM (parse with depth and size limits; build; serialize) used for datasets (jsonl),
 * HTTP APIs and the registry. Parse errors give the byte offset and what was expected. */
#ifndef RP_JSON_H
#define RP_JSON_H
#include <stddef.h>
#include <stdint.h>
#include "util/buf.h"
#include "util/err.h"

typedef enum rp_json_type { RP_JSON_NULL, RP_JSON_BOOL, RP_JSON_NUMBER, RP_JSON_STRING, RP_JSON_ARRAY, RP_JSON_OBJECT } rp_json_type;
typedef struct rp_json rp_json;

/* Parse len bytes (need not be NUL-terminated). On error returns RP_ERR_FORMAT with "offset N: expected ...".
 * Nesting is limited to 512 levels; invalid UTF-8 is an error; a lone \uD800-\uDFFF escape becomes U+FFFD. */
rp_status rp_json_parse(const char *text, size_t len, rp_json **out);
void rp_json_free(rp_json *j);
rp_json_type rp_json_typeof(const rp_json *j);
/* Object member by key (NULL when j is not an object or lacks it). */
const rp_json *rp_json_get(const rp_json *j, const char *key);
/* Array length / element (0 / NULL when not an array or out of range). Objects: number of members, i-th value. */
size_t rp_json_len(const rp_json *j);
const rp_json *rp_json_at(const rp_json *j, size_t i);
/* i-th key of an object. */
const char *rp_json_key_at(const rp_json *j, size_t i);
/* Scalars; NULL j or wrong type gives the fallback. Strings are UTF-8, NUL-terminated; *len if non-NULL. */
const char *rp_json_str(const rp_json *j, const char *fallback);
const char *rp_json_strn(const rp_json *j, size_t *len);
double rp_json_num(const rp_json *j, double fallback);
int rp_json_bool(const rp_json *j, int fallback);
/* Path lookup "a.b.0.c" (numeric parts index arrays). */
const rp_json *rp_json_path(const rp_json *j, const char *path);

/* Builders (the returned node is owned by its parent once added; on failure set/push free it, and a NULL
 * val from a failed allocation is reported as RP_ERR_NOMEM, so builder calls can be nested safely). */
rp_json *rp_json_new_object(void);
rp_json *rp_json_new_array(void);
rp_json *rp_json_new_string(const char *s);
rp_json *rp_json_new_stringn(const char *s, size_t n);
rp_json *rp_json_new_number(double v);
rp_json *rp_json_new_bool(int v);
rp_json *rp_json_new_null(void);
rp_status rp_json_set(rp_json *obj, const char *key, rp_json *val);   /* replaces an existing key */
rp_status rp_json_push(rp_json *arr, rp_json *val);
/* Serialize compactly (pretty != 0: two-space indent). NaN/Inf are written as null. */
rp_status rp_json_write(const rp_json *j, rp_buf *out, int pretty);
/* Append s as a JSON string literal (with quotes, escaped) to out. */
rp_status rp_json_quote(rp_buf *out, const char *s, size_t n);

#endif
