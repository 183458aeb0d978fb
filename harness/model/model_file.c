/* model_file.c: opening a model file (mmap + content sniffing), weight and metadata lookup, and the Llama
 * configuration derived from the metadata. The format parsers (gguf.c, llama2c.c, safetensors.c) fill the
 * structure in model_file_impl.h; everything here works the same whatever the format.
 * Invariant: lookups go through hash indexes built once by rp_mf_finish; nothing is mutated afterwards. */
#include "model/model_file_impl.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    while (*s) { h ^= (unsigned char)*s++; h *= 1099511628211ull; }
    return h;
}

static char *dup_n(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

/* Append a weight (name copied); the caller has validated data and nbytes against the file. */
rp_status rp_mf_add_weight(rp_model_file *f, const char *name, size_t name_len, rp_dtype dt, int ndim,
                           const int64_t *shape, const void *data, size_t nbytes) {
    if (f->nw == f->capw) {
        int cap = f->capw ? f->capw * 2 : 64;
        rp_weight *w = realloc(f->w, (size_t)cap * sizeof *w);
        if (!w) return rp_fail(RP_ERR_NOMEM, "%s: out of memory for %d weights", f->path, cap);
        f->w = w;
        f->capw = cap;
    }
    rp_weight *w = &f->w[f->nw];
    memset(w, 0, sizeof *w);
    char *nm = dup_n(name, name_len);
    if (!nm) return rp_fail(RP_ERR_NOMEM, "%s: out of memory", f->path);
    w->name = nm;
    w->dtype = dt;
    w->ndim = ndim;
    for (int i = 0; i < ndim && i < 4; i++) w->shape[i] = shape[i];
    w->data = data;
    w->nbytes = nbytes;
    f->nw++;
    return RP_OK;
}

/* Append a metadata entry with a copied key and everything else zero. */
rp_status rp_mf_add_meta(rp_model_file *f, const char *key, size_t key_len, rp_meta **out) {
    if (f->nm == f->capm) {
        int cap = f->capm ? f->capm * 2 : 32;
        rp_meta *m = realloc(f->m, (size_t)cap * sizeof *m);
        if (!m) return rp_fail(RP_ERR_NOMEM, "%s: out of memory for %d metadata keys", f->path, cap);
        f->m = m;
        f->capm = cap;
    }
    rp_meta *m = &f->m[f->nm];
    memset(m, 0, sizeof *m);
    m->key = dup_n(key, key_len);
    if (!m->key) return rp_fail(RP_ERR_NOMEM, "%s: out of memory", f->path);
    f->nm++;
    *out = m;
    return RP_OK;
}

/* Add an integer metadata entry. */
rp_status rp_mf_set_int(rp_model_file *f, const char *key, int64_t v) {
    rp_meta *m;
    RP_TRY(rp_mf_add_meta(f, key, strlen(key), &m));
    m->type = RP_META_INT;
    m->vtype = GGUF_I64;
    m->i = v;
    return RP_OK;
}

/* Add a float metadata entry. */
rp_status rp_mf_set_float(rp_model_file *f, const char *key, double v) {
    rp_meta *m;
    RP_TRY(rp_mf_add_meta(f, key, strlen(key), &m));
    m->type = RP_META_FLOAT;
    m->vtype = GGUF_F64;
    m->f = v;
    return RP_OK;
}

/* Add a string metadata entry (copied). */
rp_status rp_mf_set_string(rp_model_file *f, const char *key, const char *s) {
    rp_meta *m;
    RP_TRY(rp_mf_add_meta(f, key, strlen(key), &m));
    m->type = RP_META_STRING;
    m->vtype = GGUF_STRING;
    m->str_len = strlen(s);
    m->str = dup_n(s, m->str_len);
    if (!m->str) return rp_fail(RP_ERR_NOMEM, "%s: out of memory", f->path);
    return RP_OK;
}

static rp_status build_index(rp_model_file *f, int n, int **tab, size_t *cap, int is_weight) {
    size_t c = 16;
    while (c < (size_t)n * 2 + 1) c *= 2;
    int *t = malloc(c * sizeof *t);
    if (!t) return rp_fail(RP_ERR_NOMEM, "%s: out of memory", f->path);
    for (size_t i = 0; i < c; i++) t[i] = -1;
    *tab = t;
    *cap = c;
    for (int i = 0; i < n; i++) {
        const char *name = is_weight ? f->w[i].name : f->m[i].key;
        size_t h = (size_t)hash_str(name) & (c - 1);
        while (t[h] >= 0) {
            const char *other = is_weight ? f->w[t[h]].name : f->m[t[h]].key;
            if (strcmp(other, name) == 0)
                return rp_fail(RP_ERR_FORMAT, "%s: duplicate %s \"%s\"", f->path, is_weight ? "tensor name" : "metadata key", name);
            h = (h + 1) & (c - 1);
        }
        t[h] = i;
    }
    return RP_OK;
}

/* Build the name indexes; a duplicate weight name or key is a format error. */
rp_status rp_mf_finish(rp_model_file *f) {
    RP_TRY(build_index(f, f->nw, &f->widx, &f->hcap_w, 1));
    return build_index(f, f->nm, &f->midx, &f->hcap_m, 0);
}

static int find(const rp_model_file *f, const char *name, int is_weight) {
    const int *t = is_weight ? f->widx : f->midx;
    size_t c = is_weight ? f->hcap_w : f->hcap_m;
    if (!t || !name) return -1;
    size_t h = (size_t)hash_str(name) & (c - 1);
    while (t[h] >= 0) {
        const char *other = is_weight ? f->w[t[h]].name : f->m[t[h]].key;
        if (strcmp(other, name) == 0) return t[h];
        h = (h + 1) & (c - 1);
    }
    return -1;
}

static rp_status parse(rp_model_file *f) {
    rp_status st;
    if (rp_gguf_sniff(f->base, f->size)) { f->format = "gguf"; st = rp_gguf_parse(f); }
    else if (rp_safetensors_sniff(f->base, f->size)) { f->format = "safetensors"; st = rp_safetensors_parse(f); }
    else { f->format = "llama2c"; st = rp_llama2c_parse(f); }
    if (st == RP_OK) st = rp_mf_finish(f);
    return st;
}

static rp_model_file *new_file(const char *path) {
    rp_model_file *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->path = dup_n(path, strlen(path));
    if (!f->path) { free(f); return NULL; }
    return f;
}

/* Open a model file; format detected from content (GGUF magic, safetensors header, else llama2.c). */
rp_status rp_model_file_open(const char *path, rp_model_file **out) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return rp_fail(errno == ENOENT ? RP_ERR_NOTFOUND : RP_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) { int e = errno; close(fd); return rp_fail(RP_ERR_IO, "%s: %s", path, strerror(e)); }
    if (!S_ISREG(sb.st_mode)) { close(fd); return rp_fail(RP_ERR_IO, "%s: not a regular file", path); }
    if (sb.st_size == 0) { close(fd); return rp_fail(RP_ERR_FORMAT, "%s: empty file", path); }
    if ((uint64_t)sb.st_size > SIZE_MAX) { close(fd); return rp_fail(RP_ERR_RANGE, "%s: file too large", path); }
    void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) return rp_fail(RP_ERR_IO, "%s: mmap: %s", path, strerror(e));
    rp_model_file *f = new_file(path);
    if (!f) { munmap(p, (size_t)sb.st_size); return rp_fail(RP_ERR_NOMEM, "%s: out of memory", path); }
    f->base = p;
    f->size = (size_t)sb.st_size;
    f->mapped = 1;
    rp_status st = parse(f);
    if (st != RP_OK) { rp_model_file_free(f); return st; }
    *out = f;
    return RP_OK;
}

/* Open a model held in memory (GGUF or llama2.c; safetensors needs its config.json, so only from a path).
 * The bytes are borrowed: they must outlive the returned file. name is used in messages. */
rp_status rp_model_file_open_memory(const void *data, size_t len, const char *name, rp_model_file **out) {
    *out = NULL;
    if (!name) name = "<memory>";
    if (!data || len == 0) return rp_fail(RP_ERR_FORMAT, "%s: empty file", name);
    rp_model_file *f = new_file(name);
    if (!f) return rp_fail(RP_ERR_NOMEM, "%s: out of memory", name);
    f->base = data;
    f->size = len;
    rp_status st = parse(f);
    if (st != RP_OK) { rp_model_file_free(f); return st; }
    *out = f;
    return RP_OK;
}

/* Close and unmap; NULL is fine. */
void rp_model_file_free(rp_model_file *f) {
    if (!f) return;
    for (int i = 0; i < f->nw; i++) free((char *)f->w[i].name);
    for (int i = 0; i < f->nm; i++) { free(f->m[i].key); free(f->m[i].str); free(f->m[i].strs); }
    free(f->w);
    free(f->m);
    free(f->widx);
    free(f->midx);
    free(f->owned);
    if (f->mapped) munmap((void *)f->base, f->size);
    free(f->path);
    free(f);
}

/* "gguf", "llama2c" or "safetensors". */
const char *rp_model_file_format(const rp_model_file *f) { return f->format; }

/* The path (or memory name) the file was opened with. */
const char *rp_model_file_path(const rp_model_file *f) { return f->path; }

/* Number of weights. */
int rp_model_file_n_weights(const rp_model_file *f) { return f->nw; }

/* The i-th weight in file order, NULL when out of range. */
const rp_weight *rp_model_file_weight_at(const rp_model_file *f, int i) {
    return i >= 0 && i < f->nw ? &f->w[i] : NULL;
}

/* Weight by name, NULL when absent. */
const rp_weight *rp_model_file_weight(const rp_model_file *f, const char *name) {
    int i = find(f, name, 1);
    return i >= 0 ? &f->w[i] : NULL;
}

/* Number of metadata entries. */
int rp_model_file_n_meta(const rp_model_file *f) { return f->nm; }

/* Key of the i-th metadata entry in file order, NULL when out of range. */
const char *rp_model_file_meta_key_at(const rp_model_file *f, int i) { return i >= 0 && i < f->nm ? f->m[i].key : NULL; }

static const rp_meta *meta(const rp_model_file *f, const char *key) {
    int i = find(f, key, 0);
    return i >= 0 ? &f->m[i] : NULL;
}

/* Type of the metadata entry (RP_META_NONE when absent). */
rp_meta_type rp_model_file_meta_type(const rp_model_file *f, const char *key) {
    const rp_meta *m = meta(f, key);
    return m ? m->type : RP_META_NONE;
}

/* Integer (or bool) value: 1 and *out set when present and representable, else 0. */
int rp_model_file_meta_int(const rp_model_file *f, const char *key, int64_t *out) {
    const rp_meta *m = meta(f, key);
    if (!m || (m->type != RP_META_INT && m->type != RP_META_BOOL) || m->too_big) return 0;
    *out = m->i;
    return 1;
}

/* Float value (integers convert): 1 and *out set when present, else 0. */
int rp_model_file_meta_float(const rp_model_file *f, const char *key, double *out) {
    const rp_meta *m = meta(f, key);
    if (!m) return 0;
    if (m->type == RP_META_FLOAT) { *out = m->f; return 1; }
    if (m->type == RP_META_INT) { *out = m->too_big ? (double)(uint64_t)m->i : (double)m->i; return 1; }
    return 0;
}

/* String value (NUL-terminated copy owned by f), NULL when absent or not a string. */
const char *rp_model_file_meta_string(const rp_model_file *f, const char *key) {
    const rp_meta *m = meta(f, key);
    return m && m->type == RP_META_STRING ? m->str : NULL;
}

/* Element count of an array entry, -1 when absent or not an array. */
int64_t rp_model_file_meta_array_len(const rp_model_file *f, const char *key) {
    const rp_meta *m = meta(f, key);
    return m && m->type == RP_META_ARRAY ? m->n : -1;
}

static uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* i-th string of a string array: bytes in the mapping (NOT NUL-terminated) and *len; NULL when not one. */
const char *rp_model_file_meta_array_string(const rp_model_file *f, const char *key, int64_t i, size_t *len) {
    const rp_meta *m = meta(f, key);
    if (!m || m->type != RP_META_ARRAY || m->elem_type != GGUF_STRING || !m->strs || i < 0 || i >= m->n) return NULL;
    *len = (size_t)rd64(m->strs[i]);
    return (const char *)m->strs[i] + 8;
}

/* Decode one fixed-size element; is_float tells which of *iv / *fv holds it. */
static int elem_get(const rp_meta *m, int64_t i, int64_t *iv, double *fv, int *is_float, int *too_big) {
    if (!m || m->type != RP_META_ARRAY || !m->arr || i < 0 || i >= m->n) return 0;
    int es = rp_gguf_type_size(m->elem_type);
    if (!es) return 0;
    const uint8_t *p = m->arr + (size_t)i * (size_t)es;
    *is_float = 0;
    *too_big = 0;
    switch (m->elem_type) {
    case GGUF_U8: case GGUF_BOOL: *iv = *p; break;
    case GGUF_I8: *iv = (int8_t)*p; break;
    case GGUF_U16: { uint16_t v; memcpy(&v, p, 2); *iv = v; break; }
    case GGUF_I16: { int16_t v; memcpy(&v, p, 2); *iv = v; break; }
    case GGUF_U32: { uint32_t v; memcpy(&v, p, 4); *iv = v; break; }
    case GGUF_I32: { int32_t v; memcpy(&v, p, 4); *iv = v; break; }
    case GGUF_U64: { uint64_t v = rd64(p); *iv = (int64_t)v; *too_big = v > INT64_MAX; *fv = (double)v; break; }
    case GGUF_I64: { int64_t v; memcpy(&v, p, 8); *iv = v; break; }
    case GGUF_F32: { float v; memcpy(&v, p, 4); *fv = v; *is_float = 1; break; }
    case GGUF_F64: { double v; memcpy(&v, p, 8); *fv = v; *is_float = 1; break; }
    default: return 0;
    }
    return 1;
}

/* i-th element of a numeric array as a float: 1 on success. */
int rp_model_file_meta_array_float(const rp_model_file *f, const char *key, int64_t i, double *out) {
    int64_t iv = 0; double fv = 0; int isf, big;
    if (!elem_get(meta(f, key), i, &iv, &fv, &isf, &big)) return 0;
    *out = isf || big ? fv : (double)iv;
    return 1;
}

/* i-th element of an integer array: 1 on success (0 for float arrays and u64 values above INT64_MAX). */
int rp_model_file_meta_array_int(const rp_model_file *f, const char *key, int64_t i, int64_t *out) {
    int64_t iv = 0; double fv = 0; int isf, big;
    if (!elem_get(meta(f, key), i, &iv, &fv, &isf, &big) || isf || big) return 0;
    *out = iv;
    return 1;
}

/* Read an integer hyper-parameter into *out, range-checked; missing is an error unless def >= 0. */
static rp_status hparam(const rp_model_file *f, const char *key, int64_t def, int64_t lo, int64_t hi, int *out) {
    int64_t v;
    rp_meta_type t = rp_model_file_meta_type(f, key);
    if (t == RP_META_NONE) {
        if (def < 0) return rp_fail(RP_ERR_FORMAT, "%s: missing metadata key %s", f->path, key);
        *out = (int)def;
        return RP_OK;
    }
    if (!rp_model_file_meta_int(f, key, &v)) return rp_fail(RP_ERR_FORMAT, "%s: metadata %s is not an integer", f->path, key);
    if (v < lo || v > hi) return rp_fail(RP_ERR_FORMAT, "%s: metadata %s = %lld out of range [%lld, %lld]", f->path, key, (long long)v, (long long)lo, (long long)hi);
    *out = (int)v;
    return RP_OK;
}

static rp_status fparam(const rp_model_file *f, const char *key, double def, double lo, double hi, float *out) {
    double v;
    if (rp_model_file_meta_type(f, key) == RP_META_NONE) { *out = (float)def; return RP_OK; }
    if (!rp_model_file_meta_float(f, key, &v)) return rp_fail(RP_ERR_FORMAT, "%s: metadata %s is not a number", f->path, key);
    if (!(v >= lo && v <= hi)) return rp_fail(RP_ERR_FORMAT, "%s: metadata %s = %g out of range [%g, %g]", f->path, key, v, lo, hi);
    *out = (float)v;
    return RP_OK;
}

/* Check that weight name exists with exactly the given shape (ndim 1 or 2). */
static rp_status expect(const rp_model_file *f, const char *name, int ndim, int64_t d0, int64_t d1) {
    const rp_weight *w = rp_model_file_weight(f, name);
    if (!w) return rp_fail(RP_ERR_FORMAT, "%s: missing tensor %s", f->path, name);
    int ok = w->ndim == ndim && w->shape[0] == d0 && (ndim == 1 || w->shape[1] == d1);
    if (!ok) {
        if (ndim == 1)
            return rp_fail(RP_ERR_FORMAT, "%s: tensor %s has shape %s, expected {%lld}", f->path, name,
                           w->ndim == 1 ? "of another length" : "of another rank", (long long)d0);
        return rp_fail(RP_ERR_FORMAT, "%s: tensor %s has shape {%lld, %lld} (ndim %d), expected {%lld, %lld}", f->path,
                       name, (long long)w->shape[0], (long long)(w->ndim > 1 ? w->shape[1] : 0), w->ndim,
                       (long long)d0, (long long)d1);
    }
    return RP_OK;
}

/* Fill a Llama config from the metadata, checking that every weight it implies exists with the right shape. */
rp_status rp_model_file_llama_config(const rp_model_file *f, rp_llama_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    const char *arch = rp_model_file_meta_string(f, "general.architecture");
    if (!arch) return rp_fail(RP_ERR_FORMAT, "%s: missing metadata general.architecture", f->path);
    if (strcmp(arch, "llama") != 0)
        return rp_fail(RP_ERR_UNSUPPORTED, "%s: general.architecture = \"%s\", only \"llama\" is supported", f->path, arch);
    const int big = 1 << 24;
    RP_TRY(hparam(f, "llama.block_count", -1, 1, 100000, &cfg->n_layer));
    RP_TRY(hparam(f, "llama.embedding_length", -1, 1, big, &cfg->dim));
    RP_TRY(hparam(f, "llama.feed_forward_length", -1, 1, big, &cfg->ffn_dim));
    RP_TRY(hparam(f, "llama.attention.head_count", -1, 1, big, &cfg->n_head));
    RP_TRY(hparam(f, "llama.attention.head_count_kv", cfg->n_head, 1, cfg->n_head, &cfg->n_head_kv));
    if (cfg->dim % cfg->n_head)
        return rp_fail(RP_ERR_FORMAT, "%s: llama.embedding_length %d is not a multiple of llama.attention.head_count %d", f->path, cfg->dim, cfg->n_head);
    if (cfg->n_head % cfg->n_head_kv)
        return rp_fail(RP_ERR_FORMAT, "%s: llama.attention.head_count %d is not a multiple of head_count_kv %d", f->path, cfg->n_head, cfg->n_head_kv);
    cfg->head_dim = cfg->dim / cfg->n_head;
    RP_TRY(hparam(f, "llama.rope.dimension_count", cfg->head_dim, 2, cfg->head_dim, &cfg->rope_dim));
    if (cfg->rope_dim % 2) return rp_fail(RP_ERR_FORMAT, "%s: llama.rope.dimension_count %d is odd", f->path, cfg->rope_dim);
    RP_TRY(hparam(f, "llama.context_length", 2048, 1, 1 << 30, &cfg->context_len));
    RP_TRY(hparam(f, "repro.rope_neox", 0, 0, 1, &cfg->rope_neox));
    RP_TRY(fparam(f, "llama.rope.freq_base", 10000.0, 1e-3, 1e12, &cfg->rope_base));
    RP_TRY(fparam(f, "llama.attention.layer_norm_rms_epsilon", 1e-5, 0.0, 1.0, &cfg->norm_eps));

    const rp_weight *emb = rp_model_file_weight(f, "token_embd.weight");
    if (!emb) return rp_fail(RP_ERR_FORMAT, "%s: missing tensor token_embd.weight", f->path);
    if (emb->ndim != 2 || emb->shape[0] < 1 || emb->shape[0] > INT_MAX || emb->shape[1] != cfg->dim)
        return rp_fail(RP_ERR_FORMAT, "%s: tensor token_embd.weight has shape {%lld, %lld}, expected {vocab, %d}", f->path,
                       (long long)emb->shape[0], (long long)(emb->ndim > 1 ? emb->shape[1] : 0), cfg->dim);
    cfg->vocab = (int)emb->shape[0];
    int64_t V = cfg->vocab, C = cfg->dim, F = cfg->ffn_dim, Q = (int64_t)cfg->n_head * cfg->head_dim,
            KV = (int64_t)cfg->n_head_kv * cfg->head_dim;
    char name[96];
    for (int l = 0; l < cfg->n_layer; l++) {
#define EXPECT(suffix, nd, a, b) do { snprintf(name, sizeof name, "blk.%d." suffix ".weight", l); RP_TRY(expect(f, name, nd, a, b)); } while (0)
        EXPECT("attn_norm", 1, C, 0);
        EXPECT("attn_q", 2, Q, C);
        EXPECT("attn_k", 2, KV, C);
        EXPECT("attn_v", 2, KV, C);
        EXPECT("attn_output", 2, C, Q);
        EXPECT("ffn_norm", 1, C, 0);
        EXPECT("ffn_gate", 2, F, C);
        EXPECT("ffn_up", 2, F, C);
        EXPECT("ffn_down", 2, C, F);
#undef EXPECT
    }
    RP_TRY(expect(f, "output_norm.weight", 1, C, 0));
    cfg->tied_embeddings = rp_model_file_weight(f, "output.weight") == NULL;
    if (!cfg->tied_embeddings) RP_TRY(expect(f, "output.weight", 2, V, C));
    return RP_OK;
}
