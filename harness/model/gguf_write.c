/* gguf_write.c: the GGUF v3 writer (see gguf_write.h). Each metadata entry is kept already encoded (the
 * value's type id followed by its bytes as they go on disk), so setting, copying and writing share one
 * representation; tensors keep borrowed data until the write. Layout written: magic, version 3, tensor
 * count, metadata count, the entries in insertion order, the tensor infos (dims innermost first, offsets
 * relative to the data section, each a multiple of the alignment), zero padding, the data.
 * Invariants: keys and names unique; every size is checked for overflow before it is used. */
#include "model/gguf_write.h"
#include "model/model_file_impl.h"
#include "util/buf.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct kv { char *key; rp_buf val; } kv;          /* val: u32 type + value bytes */
typedef struct tinfo { char *name; rp_dtype dt; int ndim; int64_t shape[4]; const void *data; size_t nbytes; } tinfo;

struct rp_gguf_writer {
    kv *kv; int nkv, capkv;
    tinfo *t; int nt, capt;
};

/* Append n little-endian bytes (the host is little-endian, as the reader requires). */
static rp_status put(rp_buf *b, const void *p, size_t n) { return rp_buf_append(b, p, n); }
static rp_status put_u32(rp_buf *b, uint32_t v) { return put(b, &v, 4); }
static rp_status put_u64(rp_buf *b, uint64_t v) { return put(b, &v, 8); }
static rp_status put_str(rp_buf *b, const char *s, size_t n) { RP_TRY(put_u64(b, n)); return put(b, s, n); }

rp_gguf_writer *rp_gguf_writer_new(void) { return calloc(1, sizeof(rp_gguf_writer)); }

void rp_gguf_writer_free(rp_gguf_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->nkv; i++) { free(w->kv[i].key); rp_buf_free(&w->kv[i].val); }
    for (int i = 0; i < w->nt; i++) free(w->t[i].name);
    free(w->kv);
    free(w->t);
    free(w);
}

/* The entry for key, created empty at the end when absent (an existing one is emptied in place). */
static rp_status entry(rp_gguf_writer *w, const char *key, rp_buf **out) {
    if (!key || !*key) return rp_fail(RP_ERR_INVAL, "gguf writer: empty metadata key");
    for (int i = 0; i < w->nkv; i++)
        if (strcmp(w->kv[i].key, key) == 0) { rp_buf_clear(&w->kv[i].val); *out = &w->kv[i].val; return RP_OK; }
    if (w->nkv == w->capkv) {
        int cap = w->capkv ? 2 * w->capkv : 32;
        kv *n = realloc(w->kv, (size_t)cap * sizeof *n);
        if (!n) return rp_fail(RP_ERR_NOMEM, "gguf writer: out of memory for metadata");
        w->kv = n; w->capkv = cap;
    }
    kv *e = &w->kv[w->nkv];
    memset(e, 0, sizeof *e);
    if (!(e->key = strdup(key))) return rp_fail(RP_ERR_NOMEM, "gguf writer: out of memory for key %s", key);
    w->nkv++;
    *out = &e->val;
    return RP_OK;
}

int rp_gguf_writer_remove(rp_gguf_writer *w, const char *key) {
    for (int i = 0; i < w->nkv; i++) {
        if (strcmp(w->kv[i].key, key) != 0) continue;
        free(w->kv[i].key);
        rp_buf_free(&w->kv[i].val);
        memmove(&w->kv[i], &w->kv[i + 1], (size_t)(w->nkv - i - 1) * sizeof *w->kv);
        w->nkv--;
        return 1;
    }
    return 0;
}

/* The value bytes of an integer of type t, range-checked. */
static rp_status int_bytes(const char *key, rp_gguf_type t, int64_t v, uint8_t out[8], int *n) {
    int64_t lo, hi;
    switch (t) {
    case RP_GGUF_U8: lo = 0; hi = UINT8_MAX; *n = 1; break;
    case RP_GGUF_I8: lo = INT8_MIN; hi = INT8_MAX; *n = 1; break;
    case RP_GGUF_BOOL: lo = 0; hi = 1; *n = 1; break;
    case RP_GGUF_U16: lo = 0; hi = UINT16_MAX; *n = 2; break;
    case RP_GGUF_I16: lo = INT16_MIN; hi = INT16_MAX; *n = 2; break;
    case RP_GGUF_U32: lo = 0; hi = UINT32_MAX; *n = 4; break;
    case RP_GGUF_I32: lo = INT32_MIN; hi = INT32_MAX; *n = 4; break;
    case RP_GGUF_U64: lo = 0; hi = INT64_MAX; *n = 8; break;
    case RP_GGUF_I64: lo = INT64_MIN; hi = INT64_MAX; *n = 8; break;
    default: return rp_fail(RP_ERR_INVAL, "gguf writer: metadata %s: type %d is not an integer type", key, (int)t);
    }
    if (v < lo || v > hi) return rp_fail(RP_ERR_INVAL, "gguf writer: metadata %s: value %lld does not fit the type", key, (long long)v);
    memcpy(out, &v, 8);   /* little-endian: the low bytes come first */
    return RP_OK;
}

rp_status rp_gguf_writer_set_int(rp_gguf_writer *w, const char *key, rp_gguf_type t, int64_t iv) {
    uint8_t b[8];
    int n = 0;
    RP_TRY(int_bytes(key, t, iv, b, &n));
    rp_buf *v;
    RP_TRY(entry(w, key, &v));
    RP_TRY(put_u32(v, (uint32_t)t));
    return put(v, b, (size_t)n);
}

rp_status rp_gguf_writer_set_float(rp_gguf_writer *w, const char *key, rp_gguf_type t, double fv) {
    if (t != RP_GGUF_F32 && t != RP_GGUF_F64) return rp_fail(RP_ERR_INVAL, "gguf writer: metadata %s: type %d is not f32 or f64", key, (int)t);
    rp_buf *v;
    RP_TRY(entry(w, key, &v));
    RP_TRY(put_u32(v, (uint32_t)t));
    if (t == RP_GGUF_F64) return put(v, &fv, 8);
    float f = (float)fv;
    return put(v, &f, 4);
}

rp_status rp_gguf_writer_set_string(rp_gguf_writer *w, const char *key, const char *s, size_t len) {
    rp_buf *v;
    RP_TRY(entry(w, key, &v));
    RP_TRY(put_u32(v, RP_GGUF_STRING));
    return put_str(v, s, len);
}

rp_status rp_gguf_writer_set_array(rp_gguf_writer *w, const char *key, rp_gguf_type et, const void *data, int64_t n) {
    int es = rp_gguf_type_size((uint32_t)et);
    if (!es) return rp_fail(RP_ERR_INVAL, "gguf writer: metadata %s: array element type %d is not a fixed-size type", key, (int)et);
    if (n < 0 || (uint64_t)n > SIZE_MAX / (uint64_t)es) return rp_fail(RP_ERR_INVAL, "gguf writer: metadata %s: %lld elements", key, (long long)n);
    rp_buf *v;
    RP_TRY(entry(w, key, &v));
    RP_TRY(put_u32(v, RP_GGUF_ARRAY));
    RP_TRY(put_u32(v, (uint32_t)et));
    RP_TRY(put_u64(v, (uint64_t)n));
    return put(v, data, (size_t)n * (size_t)es);
}

rp_status rp_gguf_writer_set_string_array(rp_gguf_writer *w, const char *key, const char *const *strs,
                                          const size_t *lens, int64_t n) {
    if (n < 0) return rp_fail(RP_ERR_INVAL, "gguf writer: metadata %s: %lld elements", key, (long long)n);
    rp_buf *v;
    RP_TRY(entry(w, key, &v));
    RP_TRY(put_u32(v, RP_GGUF_ARRAY));
    RP_TRY(put_u32(v, RP_GGUF_STRING));
    RP_TRY(put_u64(v, (uint64_t)n));
    for (int64_t i = 0; i < n; i++) RP_TRY(put_str(v, strs[i], lens[i]));
    return RP_OK;
}

rp_status rp_gguf_writer_copy_meta(rp_gguf_writer *w, const rp_model_file *f, const char *key) {
    const rp_meta *m = NULL;
    for (int i = 0; i < f->nm && !m; i++)
        if (strcmp(f->m[i].key, key) == 0) m = &f->m[i];
    if (!m) return rp_fail(RP_ERR_NOTFOUND, "%s: no metadata key %s to copy", f->path, key);
    switch (m->type) {
    case RP_META_INT: case RP_META_BOOL:
        if (m->too_big) return rp_fail(RP_ERR_UNSUPPORTED, "%s: metadata %s: u64 above INT64_MAX is not copied", f->path, key);
        return rp_gguf_writer_set_int(w, key, (rp_gguf_type)m->vtype, m->i);
    case RP_META_FLOAT: return rp_gguf_writer_set_float(w, key, (rp_gguf_type)m->vtype, m->f);
    case RP_META_STRING: return rp_gguf_writer_set_string(w, key, m->str, m->str_len);
    case RP_META_ARRAY: break;
    default: return rp_fail(RP_ERR_UNSUPPORTED, "%s: metadata %s: no value to copy", f->path, key);
    }
    if (rp_gguf_type_size((uint32_t)m->elem_type)) return rp_gguf_writer_set_array(w, key, (rp_gguf_type)m->elem_type, m->arr, m->n);
    if (m->elem_type != GGUF_STRING) return rp_fail(RP_ERR_UNSUPPORTED, "%s: metadata %s: nested arrays are not copied", f->path, key);
    rp_buf *v;
    RP_TRY(entry(w, key, &v));
    RP_TRY(put_u32(v, RP_GGUF_ARRAY));
    RP_TRY(put_u32(v, RP_GGUF_STRING));
    RP_TRY(put_u64(v, (uint64_t)m->n));
    for (int64_t i = 0; i < m->n; i++) {   /* strs[i] points at the u64 length prefix, validated by the reader */
        uint64_t len;
        memcpy(&len, m->strs[i], 8);
        RP_TRY(put(v, m->strs[i], 8 + (size_t)len));
    }
    return RP_OK;
}

/* Every metadata entry of f: a GGUF's with their types, another format's synthesized integers and floats as
 * u32 (i64 past that range) and f32, the types llama.cpp reads those keys as. */
rp_status rp_gguf_writer_copy_all_meta(rp_gguf_writer *w, const rp_model_file *f) {
    int is_gguf = strcmp(rp_model_file_format(f), "gguf") == 0;
    for (int i = 0; i < f->nm; i++) {
        const rp_meta *m = &f->m[i];
        if (!is_gguf && m->type == RP_META_INT)
            RP_TRY(rp_gguf_writer_set_int(w, m->key, m->i >= 0 && m->i <= UINT32_MAX ? RP_GGUF_U32 : RP_GGUF_I64, m->i));
        else if (!is_gguf && m->type == RP_META_FLOAT) RP_TRY(rp_gguf_writer_set_float(w, m->key, RP_GGUF_F32, m->f));
        else RP_TRY(rp_gguf_writer_copy_meta(w, f, m->key));
    }
    return RP_OK;
}

rp_status rp_gguf_writer_add_tensor(rp_gguf_writer *w, const char *name, rp_dtype dt, int ndim, const int64_t *shape,
                                    const void *data, size_t nbytes) {
    if (!name || !*name) return rp_fail(RP_ERR_INVAL, "gguf writer: empty tensor name");
    if (!rp_dtype_valid((int)dt)) return rp_fail(RP_ERR_INVAL, "gguf writer: tensor %s: unknown dtype %d", name, (int)dt);
    if (ndim < 1 || ndim > 4) return rp_fail(RP_ERR_INVAL, "gguf writer: tensor %s: %d dimensions (1 to 4)", name, ndim);
    int64_t blk = rp_dtype_block(dt);
    if (shape[ndim - 1] < 0 || shape[ndim - 1] % blk)
        return rp_fail(RP_ERR_INVAL, "gguf writer: tensor %s: row length %lld is not a multiple of the %s block size %lld", name,
                       (long long)shape[ndim - 1], rp_dtype_name(dt), (long long)blk);
    uint64_t want = (uint64_t)(shape[ndim - 1] / blk) * rp_dtype_block_bytes(dt);
    for (int i = 0; i < ndim - 1; i++) {
        if (shape[i] < 0 || __builtin_mul_overflow(want, (uint64_t)shape[i], &want))
            return rp_fail(RP_ERR_INVAL, "gguf writer: tensor %s: dimension %d = %lld is out of range", name, i, (long long)shape[i]);
    }
    if (want != nbytes)
        return rp_fail(RP_ERR_INVAL, "gguf writer: tensor %s: %zu bytes given, its %s shape needs %llu", name, nbytes,
                       rp_dtype_name(dt), (unsigned long long)want);
    for (int i = 0; i < w->nt; i++)
        if (strcmp(w->t[i].name, name) == 0) return rp_fail(RP_ERR_INVAL, "gguf writer: tensor %s added twice", name);
    if (w->nt == w->capt) {
        int cap = w->capt ? 2 * w->capt : 64;
        tinfo *n = realloc(w->t, (size_t)cap * sizeof *n);
        if (!n) return rp_fail(RP_ERR_NOMEM, "gguf writer: out of memory for tensor infos");
        w->t = n; w->capt = cap;
    }
    tinfo *t = &w->t[w->nt];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name))) return rp_fail(RP_ERR_NOMEM, "gguf writer: out of memory for tensor %s", name);
    t->dt = dt; t->ndim = ndim; t->data = data; t->nbytes = nbytes;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    w->nt++;
    return RP_OK;
}

/* The alignment: general.alignment when set (a u32 power of two), else 32. */
static rp_status alignment(const rp_gguf_writer *w, uint64_t *align) {
    *align = 32;
    for (int i = 0; i < w->nkv; i++) {
        if (strcmp(w->kv[i].key, "general.alignment") != 0) continue;
        uint32_t t, a;
        memcpy(&t, w->kv[i].val.data, 4);
        if (t != RP_GGUF_U32) return rp_fail(RP_ERR_INVAL, "gguf writer: general.alignment must be a u32 (type %u)", t);
        memcpy(&a, w->kv[i].val.data + 4, 4);
        if (a == 0 || (a & (a - 1))) return rp_fail(RP_ERR_INVAL, "gguf writer: general.alignment = %u is not a power of two", a);
        *align = a;
    }
    return RP_OK;
}

/* The header (everything before the data section), padded to the alignment. */
static rp_status header(const rp_gguf_writer *w, uint64_t align, rp_buf *h) {
    RP_TRY(put(h, "GGUF", 4));
    RP_TRY(put_u32(h, 3));
    RP_TRY(put_u64(h, (uint64_t)w->nt));
    RP_TRY(put_u64(h, (uint64_t)w->nkv));
    for (int i = 0; i < w->nkv; i++) {
        RP_TRY(put_str(h, w->kv[i].key, strlen(w->kv[i].key)));
        RP_TRY(put(h, w->kv[i].val.data, w->kv[i].val.len));
    }
    uint64_t off = 0;
    for (int i = 0; i < w->nt; i++) {
        const tinfo *t = &w->t[i];
        RP_TRY(put_str(h, t->name, strlen(t->name)));
        RP_TRY(put_u32(h, (uint32_t)t->ndim));
        for (int d = t->ndim - 1; d >= 0; d--) RP_TRY(put_u64(h, (uint64_t)t->shape[d]));   /* innermost first */
        RP_TRY(put_u32(h, (uint32_t)t->dt));
        RP_TRY(put_u64(h, off));
        off += (t->nbytes + align - 1) / align * align;
    }
    static const uint8_t zeros[256];
    size_t pad = (size_t)((align - h->len % align) % align);
    while (pad) { size_t k = pad < sizeof zeros ? pad : sizeof zeros; RP_TRY(put(h, zeros, k)); pad -= k; }
    return RP_OK;
}

/* Write header and data to an open stream. */
static rp_status write_all(const rp_gguf_writer *w, uint64_t align, FILE *fp, const char *path) {
    rp_buf h = {0};
    rp_status st = header(w, align, &h);
    if (st == RP_OK && fwrite(h.data, 1, h.len, fp) != h.len) st = rp_fail(RP_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    rp_buf_free(&h);
    static const uint8_t zeros[256];
    for (int i = 0; i < w->nt && st == RP_OK; i++) {
        const tinfo *t = &w->t[i];
        if (t->nbytes && fwrite(t->data, 1, t->nbytes, fp) != t->nbytes) st = rp_fail(RP_ERR_IO, "%s: writing tensor %s: %s", path, t->name, strerror(errno));
        size_t pad = (size_t)((align - t->nbytes % align) % align);
        if (st == RP_OK && pad && fwrite(zeros, 1, pad, fp) != pad) st = rp_fail(RP_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    }
    return st;
}

rp_status rp_gguf_writer_write(rp_gguf_writer *w, const char *path) {
    uint64_t align;
    RP_TRY(alignment(w, &align));
    if (align > 256) return rp_fail(RP_ERR_INVAL, "gguf writer: general.alignment %llu above 256 is not supported", (unsigned long long)align);
    size_t n = strlen(path);
    char *tmp = malloc(n + 5);
    if (!tmp) return rp_fail(RP_ERR_NOMEM, "out of memory");
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmp", 5);
    FILE *fp = fopen(tmp, "wb");
    if (!fp) { rp_status st = rp_fail(RP_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno)); free(tmp); return st; }
    rp_status st = write_all(w, align, fp, tmp);
    if (fclose(fp) != 0 && st == RP_OK) st = rp_fail(RP_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
    if (st == RP_OK && rename(tmp, path) != 0) st = rp_fail(RP_ERR_IO, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    if (st != RP_OK) remove(tmp);
    free(tmp);
    return st;
}
