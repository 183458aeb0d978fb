/* model_file_impl.h: the inside of rp_model_file, shared by the format parsers (gguf.c, llama2c.c,
 * safetensors.c) and model_file.c, which owns opening, lookup and the Llama config. Not for other modules.
 * Invariants once a parser returned RP_OK and rp_mf_finish ran: every weight's data..data+nbytes lies
 * inside the file (or inside memory the file owns), names and keys are unique, and the hash indexes
 * hold every weight and key. */
#ifndef RP_MODEL_FILE_IMPL_H
#define RP_MODEL_FILE_IMPL_H
#include <stddef.h>
#include <stdint.h>
#include "model/model_file.h"

/* GGUF metadata value type ids (the on-disk numbering; the other formats use them too). */
enum { GGUF_U8, GGUF_I8, GGUF_U16, GGUF_I16, GGUF_U32, GGUF_I32, GGUF_F32, GGUF_BOOL, GGUF_STRING,
       GGUF_ARRAY, GGUF_U64, GGUF_I64, GGUF_F64, GGUF_NTYPES };

typedef struct rp_meta {
    char *key;
    rp_meta_type type;
    int vtype;              /* GGUF value type (for arrays: GGUF_ARRAY) */
    int64_t i;              /* RP_META_INT / RP_META_BOOL */
    int too_big;            /* a u64 above INT64_MAX: meta_int refuses it */
    double f;               /* RP_META_FLOAT */
    char *str;              /* RP_META_STRING: owned, NUL-terminated copy */
    size_t str_len;
    int elem_type;          /* RP_META_ARRAY: GGUF type of the elements */
    int64_t n;              /* RP_META_ARRAY: element count */
    const uint8_t *arr;     /* fixed-size elements, little-endian, in the mapping */
    const uint8_t **strs;   /* string elements: pointer to each u64 length prefix (owned array) */
} rp_meta;

struct rp_model_file {
    const char *format;
    char *path;
    const uint8_t *base;    /* the whole file */
    size_t size;
    int mapped;             /* base came from mmap (unmap on free) */
    void *owned;            /* extra memory the file owns (freed on free) */
    rp_weight *w;
    int nw, capw;
    rp_meta *m;
    int nm, capm;
    int *widx, *midx;       /* open-addressing hash tables of indexes (-1 empty), size hcap_w / hcap_m */
    size_t hcap_w, hcap_m;
};

/* Append a weight (name copied); the caller has validated data and nbytes against the file. */
rp_status rp_mf_add_weight(rp_model_file *f, const char *name, size_t name_len, rp_dtype dt, int ndim,
                           const int64_t *shape, const void *data, size_t nbytes);
/* Append a metadata entry with a copied key and everything else zero; *out points into f until the next add. */
rp_status rp_mf_add_meta(rp_model_file *f, const char *key, size_t key_len, rp_meta **out);
/* Convenience adders for the formats that synthesize GGUF-style metadata. */
rp_status rp_mf_set_int(rp_model_file *f, const char *key, int64_t v);
rp_status rp_mf_set_float(rp_model_file *f, const char *key, double v);
rp_status rp_mf_set_string(rp_model_file *f, const char *key, const char *s);
/* Build the name indexes; a duplicate weight name or key is a format error. */
rp_status rp_mf_finish(rp_model_file *f);

/* The format parsers: fill f from f->base / f->size; messages start with f->path. */
rp_status rp_gguf_parse(rp_model_file *f);
rp_status rp_llama2c_parse(rp_model_file *f);
rp_status rp_safetensors_parse(rp_model_file *f);

/* Bytes of one value of a fixed-size GGUF type, 0 for strings, arrays and unknown ids. */
int rp_gguf_type_size(uint32_t t);

/* Whether the bytes look like a GGUF / safetensors file (content sniffing for rp_model_file_open). */
int rp_gguf_sniff(const uint8_t *p, size_t n);
int rp_safetensors_sniff(const uint8_t *p, size_t n);

#endif
