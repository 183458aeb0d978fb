/* gguf.c: the GGUF v2/v3 parser (llama.cpp's model file format), little-endian only.
 * Layout: magic "GGUF", u32 version, u64 tensor count, u64 metadata count, the metadata (u64-length
 * strings, typed values, arrays possibly nested), the tensor infos (name, u32 n_dims, u64 ne[n_dims]
 * innermost first, u32 type, u64 offset), padding to general.alignment (default 32), then tensor data.
 * Every read is bounds-checked against the file size before it happens; counts are checked against the
 * bytes left before anything is allocated for them, so a hostile header cannot make us allocate much. */
#include "model/model_file_impl.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GGUF_MAX_DEPTH 8        /* nested arrays deeper than this are refused (stack safety) */
#define GGUF_MAX_NAME 4096      /* longest tensor name / metadata key accepted */

typedef struct cur { const uint8_t *p; size_t pos, size; const char *path; } cur;

static const char *type_names[GGUF_NTYPES] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool",
                                             "string", "array", "u64", "i64", "f64"};

static int left(const cur *c, uint64_t n) { return n <= c->size - c->pos; }

static rp_status truncated(const cur *c, const char *what, const char *name, uint64_t need) {
    return rp_fail(RP_ERR_FORMAT, "%s: %s%s%s needs %llu bytes at offset %zu, past the end of the file (%zu bytes)",
                   c->path, what, name ? " " : "", name ? name : "", (unsigned long long)need, c->pos, c->size);
}

static rp_status rd_u32(cur *c, const char *what, const char *name, uint32_t *v) {
    if (!left(c, 4)) return truncated(c, what, name, 4);
    memcpy(v, c->p + c->pos, 4);
    c->pos += 4;
    return RP_OK;
}

static rp_status rd_u64(cur *c, const char *what, const char *name, uint64_t *v) {
    if (!left(c, 8)) return truncated(c, what, name, 8);
    memcpy(v, c->p + c->pos, 8);
    c->pos += 8;
    return RP_OK;
}

/* A u64-length string; *s points into the file. */
static rp_status rd_str(cur *c, const char *what, const char *name, const char **s, uint64_t *len) {
    RP_TRY(rd_u64(c, what, name, len));
    if (!left(c, *len))
        return rp_fail(RP_ERR_FORMAT, "%s: %s%s%s: string length %llu at offset %zu runs past the end of the file (%zu bytes)",
                       c->path, what, name ? " " : "", name ? name : "", (unsigned long long)*len, c->pos - 8, c->size);
    *s = (const char *)c->p + c->pos;
    c->pos += (size_t)*len;
    return RP_OK;
}

/* Bytes of one value of a fixed-size GGUF type, 0 for strings, arrays and unknown ids. */
int rp_gguf_type_size(uint32_t t) {
    switch (t) {
    case GGUF_U8: case GGUF_I8: case GGUF_BOOL: return 1;
    case GGUF_U16: case GGUF_I16: return 2;
    case GGUF_U32: case GGUF_I32: case GGUF_F32: return 4;
    case GGUF_U64: case GGUF_I64: case GGUF_F64: return 8;
    default: return 0;
    }
}

/* Skip over (and validate) an array value of element type et: used for nested arrays, which we check but
 * do not expose. */
static rp_status skip_array(cur *c, const char *key, int depth) {
    uint32_t et;
    uint64_t n;
    if (depth > GGUF_MAX_DEPTH) return rp_fail(RP_ERR_FORMAT, "%s: metadata %s: arrays nested deeper than %d", c->path, key, GGUF_MAX_DEPTH);
    RP_TRY(rd_u32(c, "metadata array element type of", key, &et));
    if (et >= GGUF_NTYPES) return rp_fail(RP_ERR_FORMAT, "%s: metadata %s: unknown array element type %u", c->path, key, et);
    RP_TRY(rd_u64(c, "metadata array length of", key, &n));
    int fs = rp_gguf_type_size(et);
    uint64_t min = fs ? (uint64_t)fs : et == GGUF_STRING ? 8 : 12;
    if (n > (c->size - c->pos) / min)
        return rp_fail(RP_ERR_FORMAT, "%s: metadata %s: array of %llu %s elements at offset %zu does not fit in the file (%zu bytes)",
                       c->path, key, (unsigned long long)n, type_names[et], c->pos, c->size);
    if (fs) { c->pos += (size_t)(n * (uint64_t)fs); return RP_OK; }
    for (uint64_t i = 0; i < n; i++) {
        if (et == GGUF_STRING) { const char *s; uint64_t len; RP_TRY(rd_str(c, "metadata string element of", key, &s, &len)); }
        else RP_TRY(skip_array(c, key, depth + 1));
    }
    return RP_OK;
}

static rp_status read_meta(cur *c, rp_model_file *f, uint64_t idx) {
    const char *ks;
    uint64_t klen;
    char where[64];
    snprintf(where, sizeof where, "metadata key #%llu", (unsigned long long)idx);
    RP_TRY(rd_str(c, where, NULL, &ks, &klen));
    if (klen == 0 || klen > GGUF_MAX_NAME)
        return rp_fail(RP_ERR_FORMAT, "%s: %s: key length %llu out of range [1, %d]", c->path, where, (unsigned long long)klen, GGUF_MAX_NAME);
    if (memchr(ks, 0, (size_t)klen)) return rp_fail(RP_ERR_FORMAT, "%s: %s: key contains a NUL byte", c->path, where);
    rp_meta *m;
    RP_TRY(rp_mf_add_meta(f, ks, (size_t)klen, &m));
    const char *key = m->key;
    uint32_t t;
    RP_TRY(rd_u32(c, "metadata value type of", key, &t));
    if (t >= GGUF_NTYPES) return rp_fail(RP_ERR_FORMAT, "%s: metadata %s: unknown value type %u", c->path, key, t);
    m->vtype = (int)t;
    int fs = rp_gguf_type_size(t);
    if (fs) {
        if (!left(c, (uint64_t)fs)) return truncated(c, "metadata value of", key, (uint64_t)fs);
        const uint8_t *p = c->p + c->pos;
        c->pos += (size_t)fs;
        m->type = RP_META_INT;
        switch (t) {
        case GGUF_U8: m->i = *p; break;
        case GGUF_I8: m->i = (int8_t)*p; break;
        case GGUF_BOOL:
            if (*p > 1) return rp_fail(RP_ERR_FORMAT, "%s: metadata %s: bool value %u is neither 0 nor 1", c->path, key, *p);
            m->type = RP_META_BOOL; m->i = *p; break;
        case GGUF_U16: { uint16_t v; memcpy(&v, p, 2); m->i = v; break; }
        case GGUF_I16: { int16_t v; memcpy(&v, p, 2); m->i = v; break; }
        case GGUF_U32: { uint32_t v; memcpy(&v, p, 4); m->i = v; break; }
        case GGUF_I32: { int32_t v; memcpy(&v, p, 4); m->i = v; break; }
        case GGUF_U64: { uint64_t v; memcpy(&v, p, 8); m->i = (int64_t)v; m->too_big = v > INT64_MAX; break; }
        case GGUF_I64: { int64_t v; memcpy(&v, p, 8); m->i = v; break; }
        case GGUF_F32: { float v; memcpy(&v, p, 4); m->type = RP_META_FLOAT; m->f = v; break; }
        case GGUF_F64: { double v; memcpy(&v, p, 8); m->type = RP_META_FLOAT; m->f = v; break; }
        }
        return RP_OK;
    }
    if (t == GGUF_STRING) {
        const char *s;
        uint64_t len;
        RP_TRY(rd_str(c, "metadata string value of", key, &s, &len));
        m->type = RP_META_STRING;
        m->str = malloc((size_t)len + 1);
        if (!m->str) return rp_fail(RP_ERR_NOMEM, "%s: metadata %s: out of memory for %llu bytes", c->path, key, (unsigned long long)len);
        memcpy(m->str, s, (size_t)len);
        m->str[len] = 0;
        m->str_len = (size_t)len;
        return RP_OK;
    }
    /* An array: record where its elements are. */
    uint32_t et;
    uint64_t n;
    RP_TRY(rd_u32(c, "metadata array element type of", key, &et));
    if (et >= GGUF_NTYPES) return rp_fail(RP_ERR_FORMAT, "%s: metadata %s: unknown array element type %u", c->path, key, et);
    RP_TRY(rd_u64(c, "metadata array length of", key, &n));
    int es = rp_gguf_type_size(et);
    uint64_t min = es ? (uint64_t)es : et == GGUF_STRING ? 8 : 12;
    if (n > (c->size - c->pos) / min || n > INT64_MAX)
        return rp_fail(RP_ERR_FORMAT, "%s: metadata %s: array of %llu %s elements at offset %zu does not fit in the file (%zu bytes)",
                       c->path, key, (unsigned long long)n, type_names[et], c->pos, c->size);
    m->type = RP_META_ARRAY;
    m->elem_type = (int)et;
    m->n = (int64_t)n;
    if (es) {
        m->arr = c->p + c->pos;
        c->pos += (size_t)(n * (uint64_t)es);
        if (et == GGUF_BOOL)
            for (uint64_t i = 0; i < n; i++)
                if (m->arr[i] > 1) return rp_fail(RP_ERR_FORMAT, "%s: metadata %s[%llu]: bool value %u is neither 0 nor 1", c->path, key, (unsigned long long)i, m->arr[i]);
        return RP_OK;
    }
    if (et == GGUF_STRING) {
        m->strs = malloc((size_t)(n ? n : 1) * sizeof *m->strs);
        if (!m->strs) return rp_fail(RP_ERR_NOMEM, "%s: metadata %s: out of memory for %llu strings", c->path, key, (unsigned long long)n);
        for (uint64_t i = 0; i < n; i++) {
            const char *s;
            uint64_t len;
            m->strs[i] = c->p + c->pos;
            RP_TRY(rd_str(c, "metadata string element of", key, &s, &len));
        }
        return RP_OK;
    }
    for (uint64_t i = 0; i < n; i++) RP_TRY(skip_array(c, key, 2));
    return RP_OK;
}

static rp_status read_tensor(cur *c, rp_model_file *f, uint64_t idx, uint64_t *offsets) {
    const char *ns;
    uint64_t nlen;
    char where[64], name[GGUF_MAX_NAME + 1];
    snprintf(where, sizeof where, "tensor info #%llu", (unsigned long long)idx);
    RP_TRY(rd_str(c, where, NULL, &ns, &nlen));
    if (nlen == 0 || nlen > GGUF_MAX_NAME)
        return rp_fail(RP_ERR_FORMAT, "%s: %s: name length %llu out of range [1, %d]", c->path, where, (unsigned long long)nlen, GGUF_MAX_NAME);
    memcpy(name, ns, (size_t)nlen);
    name[nlen] = 0;
    if (strlen(name) != nlen) return rp_fail(RP_ERR_FORMAT, "%s: %s: name contains a NUL byte", c->path, where);
    uint32_t nd, type;
    RP_TRY(rd_u32(c, "dimension count of tensor", name, &nd));
    if (nd < 1 || nd > 4) return rp_fail(RP_ERR_FORMAT, "%s: tensor %s: %u dimensions, expected 1 to 4", c->path, name, nd);
    uint64_t ne[4];
    for (uint32_t i = 0; i < nd; i++) {
        RP_TRY(rd_u64(c, "dimensions of tensor", name, &ne[i]));
        if (ne[i] > INT64_MAX) return rp_fail(RP_ERR_FORMAT, "%s: tensor %s: dimension %u = %llu is too large", c->path, name, i, (unsigned long long)ne[i]);
    }
    RP_TRY(rd_u32(c, "type of tensor", name, &type));
    if (!rp_dtype_valid((int)type) || type == RP_NF4)
        return rp_fail(RP_ERR_UNSUPPORTED, "%s: tensor %s: unknown or unsupported ggml type %u", c->path, name, type);
    RP_TRY(rd_u64(c, "data offset of tensor", name, &offsets[idx]));
    rp_dtype dt = (rp_dtype)type;
    int blk = rp_dtype_block(dt);
    if (ne[0] % (uint64_t)blk)
        return rp_fail(RP_ERR_FORMAT, "%s: tensor %s: row length %llu is not a multiple of the %s block size %d", c->path, name,
                       (unsigned long long)ne[0], rp_dtype_name(dt), blk);
    /* elements and bytes, overflow-checked */
    uint64_t nel = 1, nbytes;
    int ovf = __builtin_mul_overflow(ne[0] / (uint64_t)blk, (uint64_t)rp_dtype_block_bytes(dt), &nbytes);
    for (uint32_t i = 0; i < nd; i++) {
        ovf |= __builtin_mul_overflow(nel, ne[i], &nel);
        if (i > 0) ovf |= __builtin_mul_overflow(nbytes, ne[i], &nbytes);
    }
    if (ovf || nel > INT64_MAX || nbytes > SIZE_MAX)
        return rp_fail(RP_ERR_FORMAT, "%s: tensor %s: shape [%llu, %llu, %llu, %llu] (innermost first) overflows", c->path, name,
                       (unsigned long long)ne[0], (unsigned long long)(nd > 1 ? ne[1] : 1),
                       (unsigned long long)(nd > 2 ? ne[2] : 1), (unsigned long long)(nd > 3 ? ne[3] : 1));
    int64_t shape[4];
    for (uint32_t i = 0; i < nd; i++) shape[i] = (int64_t)ne[nd - 1 - i];
    return rp_mf_add_weight(f, name, (size_t)nlen, dt, (int)nd, shape, NULL, (size_t)nbytes);
}

/* Whether the bytes start with the GGUF magic. */
int rp_gguf_sniff(const uint8_t *p, size_t n) { return n >= 4 && memcmp(p, "GGUF", 4) == 0; }

/* Parse a GGUF file held in f->base / f->size into weights and metadata. */
rp_status rp_gguf_parse(rp_model_file *f) {
    cur c = {f->base, 0, f->size, f->path};
    uint32_t magic = 0, version = 0;
    uint64_t nt, nkv;
    RP_TRY(rd_u32(&c, "magic", NULL, &magic));
    if (memcmp(f->base, "GGUF", 4) != 0) return rp_fail(RP_ERR_FORMAT, "%s: bad magic 0x%08x, expected \"GGUF\"", f->path, magic);
    RP_TRY(rd_u32(&c, "version", NULL, &version));
    if (version == 1) return rp_fail(RP_ERR_UNSUPPORTED, "%s: GGUF version 1 is not supported (only 2 and 3)", f->path);
    if (version != 2 && version != 3) {
        uint32_t sw = __builtin_bswap32(version);
        if (sw >= 1 && sw <= 3) return rp_fail(RP_ERR_UNSUPPORTED, "%s: big-endian GGUF (version %u byte-swapped) is not supported", f->path, sw);
        return rp_fail(RP_ERR_FORMAT, "%s: bad GGUF version %u (expected 2 or 3)", f->path, version);
    }
    RP_TRY(rd_u64(&c, "tensor count", NULL, &nt));
    RP_TRY(rd_u64(&c, "metadata count", NULL, &nkv));
    /* smallest tensor info: 8 (name length) + 1 + 4 + 8 + 4 + 8; smallest key/value: 8 + 1 + 4 + 1 */
    if (nt > (c.size - c.pos) / 33 || nt > INT32_MAX)
        return rp_fail(RP_ERR_FORMAT, "%s: tensor count %llu cannot fit in the file (%zu bytes)", f->path, (unsigned long long)nt, f->size);
    if (nkv > (c.size - c.pos) / 14 || nkv > INT32_MAX)
        return rp_fail(RP_ERR_FORMAT, "%s: metadata count %llu cannot fit in the file (%zu bytes)", f->path, (unsigned long long)nkv, f->size);
    for (uint64_t i = 0; i < nkv; i++) RP_TRY(read_meta(&c, f, i));
    /* alignment */
    uint64_t align = 32;
    for (int i = 0; i < f->nm; i++) {
        if (strcmp(f->m[i].key, "general.alignment") != 0) continue;
        const rp_meta *m = &f->m[i];
        if (m->type != RP_META_INT || m->vtype != GGUF_U32)
            return rp_fail(RP_ERR_FORMAT, "%s: metadata general.alignment must be a u32, found type %s", f->path, type_names[m->vtype]);
        if (m->i == 0 || (m->i & (m->i - 1)))
            return rp_fail(RP_ERR_FORMAT, "%s: metadata general.alignment = %lld is not a power of two", f->path, (long long)m->i);
        align = (uint64_t)m->i;
    }
    uint64_t *offsets = malloc((size_t)(nt ? nt : 1) * sizeof *offsets);
    if (!offsets) return rp_fail(RP_ERR_NOMEM, "%s: out of memory for %llu tensor infos", f->path, (unsigned long long)nt);
    rp_status st = RP_OK;
    for (uint64_t i = 0; i < nt && st == RP_OK; i++) st = read_tensor(&c, f, i, offsets);
    if (st != RP_OK) { free(offsets); return st; }
    uint64_t data_start = ((uint64_t)c.pos + align - 1) / align * align;
    for (int i = 0; i < f->nw && st == RP_OK; i++) {
        rp_weight *w = &f->w[i];
        uint64_t off = offsets[i];
        if (off % align)
            st = rp_fail(RP_ERR_FORMAT, "%s: tensor %s: data offset %llu is not a multiple of the alignment %llu", f->path,
                         w->name, (unsigned long long)off, (unsigned long long)align);
        else if (data_start > f->size || off > f->size - data_start || w->nbytes > f->size - data_start - off)
            st = rp_fail(RP_ERR_FORMAT, "%s: tensor %s: data [%llu, +%zu) at offset %llu runs past the end of the file (%zu bytes)",
                         f->path, w->name, (unsigned long long)off, w->nbytes, (unsigned long long)data_start, f->size);
        else w->data = f->base + data_start + off;
    }
    free(offsets);
    return st;
}
