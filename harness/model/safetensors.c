/* safetensors.c: reader for a single Hugging Face .safetensors file plus the config.json beside it.
 * Layout: u64 little-endian header length N, N bytes of JSON {"name": {"dtype", "shape", "data_offsets":
 * [begin, end]}, "__metadata__": {...}}, then the data; offsets are relative to byte 8 + N.
 * Hugging Face Llama names map to GGUF names (model.layers.3.self_attn.q_proj.weight ->
 * blk.3.attn_q.weight, ...); config.json's fields become the llama.* metadata that
 * rp_model_file_llama_config reads. HF checkpoints keep q/k in the "rotate halves" RoPE layout, so we set
 * repro.rope_neox = 1 instead of permuting rows. Sharded checkpoints (model-0000x-of-0000y) are not read.
 * Invariant: every weight's [begin, end) is inside the data section and matches dtype x shape exactly. */
#include "model/model_file_impl.h"
#include "util/json.h"
#include "util/buf.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ST_MAX_HEADER (100u << 20)

/* Whether the bytes look like a safetensors file: a sane header length followed by '{'. */
int rp_safetensors_sniff(const uint8_t *p, size_t n) {
    if (n < 10) return 0;
    uint64_t h;
    memcpy(&h, p, 8);
    return h >= 2 && h <= ST_MAX_HEADER && h <= n - 8 && p[8] == '{';
}

static const struct { const char *hf, *gguf; } layer_names[] = {
    {"input_layernorm", "attn_norm"}, {"self_attn.q_proj", "attn_q"}, {"self_attn.k_proj", "attn_k"},
    {"self_attn.v_proj", "attn_v"}, {"self_attn.o_proj", "attn_output"}, {"post_attention_layernorm", "ffn_norm"},
    {"mlp.gate_proj", "ffn_gate"}, {"mlp.up_proj", "ffn_up"}, {"mlp.down_proj", "ffn_down"},
};

/* The GGUF name of a Hugging Face Llama tensor name (unknown names are kept). */
static void gguf_name(const char *hf, char *out, size_t n) {
    if (strcmp(hf, "model.embed_tokens.weight") == 0) { snprintf(out, n, "token_embd.weight"); return; }
    if (strcmp(hf, "model.norm.weight") == 0) { snprintf(out, n, "output_norm.weight"); return; }
    if (strcmp(hf, "lm_head.weight") == 0) { snprintf(out, n, "output.weight"); return; }
    unsigned layer;
    int used = 0;
    if (sscanf(hf, "model.layers.%u.%n", &layer, &used) == 1 && used > 0) {
        const char *rest = hf + used;
        for (size_t i = 0; i < sizeof layer_names / sizeof layer_names[0]; i++) {
            size_t l = strlen(layer_names[i].hf);
            if (strncmp(rest, layer_names[i].hf, l) == 0 && rest[l] == '.') {
                snprintf(out, n, "blk.%u.%s.%s", layer, layer_names[i].gguf, rest + l + 1);
                return;
            }
        }
    }
    snprintf(out, n, "%s", hf);
}

static int st_dtype(const char *s, rp_dtype *dt) {
    static const struct { const char *name; rp_dtype dt; } map[] = {
        {"F32", RP_F32}, {"F16", RP_F16}, {"BF16", RP_BF16}, {"F64", RP_F64}, {"I8", RP_I8}, {"I16", RP_I16}, {"I32", RP_I32},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(s, map[i].name) == 0) { *dt = map[i].dt; return 1; }
    return 0;
}

/* A JSON number that must be a non-negative integer below 2^53. */
static int json_uint(const rp_json *j, uint64_t *out) {
    if (rp_json_typeof(j) != RP_JSON_NUMBER) return 0;
    double v = rp_json_num(j, -1);
    if (!(v >= 0 && v <= 9007199254740992.0) || floor(v) != v) return 0;
    *out = (uint64_t)v;
    return 1;
}

static rp_status one_tensor(rp_model_file *f, const char *name, const rp_json *t, const uint8_t *data, uint64_t data_len) {
    const char *ds = rp_json_str(rp_json_get(t, "dtype"), NULL);
    const rp_json *shape = rp_json_get(t, "shape"), *offs = rp_json_get(t, "data_offsets");
    if (!ds || rp_json_typeof(shape) != RP_JSON_ARRAY || rp_json_typeof(offs) != RP_JSON_ARRAY || rp_json_len(offs) != 2)
        return rp_fail(RP_ERR_FORMAT, "%s: tensor %s: needs dtype, shape and data_offsets [begin, end]", f->path, name);
    rp_dtype dt;
    if (!st_dtype(ds, &dt)) return rp_fail(RP_ERR_UNSUPPORTED, "%s: tensor %s: dtype \"%s\" not supported (F32, F16, BF16, F64, I8, I16, I32)", f->path, name, ds);
    size_t nd = rp_json_len(shape);
    if (nd > 4) return rp_fail(RP_ERR_FORMAT, "%s: tensor %s: %zu dimensions (at most 4)", f->path, name, nd);
    int64_t sh[4] = {1, 1, 1, 1};
    uint64_t nel = 1;
    for (size_t i = 0; i < nd; i++) {
        uint64_t d;
        if (!json_uint(rp_json_at(shape, i), &d)) return rp_fail(RP_ERR_FORMAT, "%s: tensor %s: shape[%zu] is not a non-negative integer", f->path, name, i);
        if (__builtin_mul_overflow(nel, d, &nel) || nel > INT64_MAX)
            return rp_fail(RP_ERR_FORMAT, "%s: tensor %s: shape overflows", f->path, name);
        sh[i] = (int64_t)d;
    }
    uint64_t b, e, nbytes;
    if (!json_uint(rp_json_at(offs, 0), &b) || !json_uint(rp_json_at(offs, 1), &e) || b > e)
        return rp_fail(RP_ERR_FORMAT, "%s: tensor %s: data_offsets are not integers 0 <= begin <= end", f->path, name);
    if (__builtin_mul_overflow(nel, (uint64_t)rp_dtype_block_bytes(dt), &nbytes) || nbytes != e - b)
        return rp_fail(RP_ERR_FORMAT, "%s: tensor %s: data_offsets [%llu, %llu) hold %llu bytes, dtype %s x shape needs %llu",
                       f->path, name, (unsigned long long)b, (unsigned long long)e, (unsigned long long)(e - b), ds, (unsigned long long)nbytes);
    if (e > data_len)
        return rp_fail(RP_ERR_FORMAT, "%s: tensor %s: data ends at %llu, past the end of the data section (%llu bytes)", f->path, name,
                       (unsigned long long)e, (unsigned long long)data_len);
    char gname[512];
    gguf_name(name, gname, sizeof gname);
    return rp_mf_add_weight(f, gname, strlen(gname), dt, nd ? (int)nd : 1, sh, data + b, (size_t)nbytes);
}

/* config.json fields -> GGUF keys (integers, then floats). */
static rp_status read_config(rp_model_file *f, const char *cfg_path) {
    rp_buf b = {0};
    rp_status st = rp_read_file(cfg_path, &b);
    if (st == RP_ERR_NOTFOUND) { rp_buf_free(&b); return RP_OK; }   /* weights without hyper-parameters */
    if (st != RP_OK) return st;
    rp_json *j = NULL;
    st = rp_json_parse(b.data, b.len, &j);
    rp_buf_free(&b);
    if (st != RP_OK) return rp_fail_ctx(st, "%s: ", cfg_path);
    if (rp_json_typeof(j) != RP_JSON_OBJECT) { rp_json_free(j); return rp_fail(RP_ERR_FORMAT, "%s: not a JSON object", cfg_path); }
    static const struct { const char *hf, *gguf; int is_float; } keys[] = {
        {"num_hidden_layers", "llama.block_count", 0}, {"hidden_size", "llama.embedding_length", 0},
        {"intermediate_size", "llama.feed_forward_length", 0}, {"num_attention_heads", "llama.attention.head_count", 0},
        {"num_key_value_heads", "llama.attention.head_count_kv", 0}, {"max_position_embeddings", "llama.context_length", 0},
        {"vocab_size", "llama.vocab_size", 0}, {"rope_theta", "llama.rope.freq_base", 1},
        {"rms_norm_eps", "llama.attention.layer_norm_rms_epsilon", 1},
    };
    const char *mt = rp_json_str(rp_json_get(j, "model_type"), "llama");
    st = rp_mf_set_string(f, "general.architecture", strcmp(mt, "mistral") == 0 ? "llama" : mt);
    for (size_t i = 0; st == RP_OK && i < sizeof keys / sizeof keys[0]; i++) {
        const rp_json *v = rp_json_get(j, keys[i].hf);
        if (!v || rp_json_typeof(v) == RP_JSON_NULL) continue;
        if (rp_json_typeof(v) != RP_JSON_NUMBER) { st = rp_fail(RP_ERR_FORMAT, "%s: %s is not a number", cfg_path, keys[i].hf); break; }
        double d = rp_json_num(v, 0);
        if (keys[i].is_float) st = rp_mf_set_float(f, keys[i].gguf, d);
        else if (floor(d) != d || fabs(d) > 1e15) st = rp_fail(RP_ERR_FORMAT, "%s: %s = %g is not an integer", cfg_path, keys[i].hf, d);
        else st = rp_mf_set_int(f, keys[i].gguf, (int64_t)d);
    }
    if (st == RP_OK) st = rp_mf_set_int(f, "repro.rope_neox", 1);
    /* an untied head that is missing would otherwise be taken for a tied one */
    if (st == RP_OK && rp_json_typeof(rp_json_get(j, "tie_word_embeddings")) == RP_JSON_BOOL && !rp_json_bool(rp_json_get(j, "tie_word_embeddings"), 1)) {
        int has_head = 0;
        for (int i = 0; i < f->nw; i++) has_head |= strcmp(f->w[i].name, "output.weight") == 0;
        if (!has_head) st = rp_fail(RP_ERR_FORMAT, "%s: tie_word_embeddings is false but %s has no lm_head.weight", cfg_path, f->path);
    }
    rp_json_free(j);
    return st;
}

/* Parse a safetensors file held in f->base / f->size, and the config.json in the same folder. */
rp_status rp_safetensors_parse(rp_model_file *f) {
    uint64_t hlen;
    memcpy(&hlen, f->base, 8);
    if (hlen > ST_MAX_HEADER || hlen > f->size - 8)
        return rp_fail(RP_ERR_FORMAT, "%s: safetensors header length %llu past the end of the file (%zu bytes)", f->path, (unsigned long long)hlen, f->size);
    rp_json *h = NULL;
    rp_status st = rp_json_parse((const char *)f->base + 8, (size_t)hlen, &h);
    if (st != RP_OK) return rp_fail_ctx(st, "%s: safetensors header: ", f->path);
    if (rp_json_typeof(h) != RP_JSON_OBJECT) { rp_json_free(h); return rp_fail(RP_ERR_FORMAT, "%s: safetensors header is not a JSON object", f->path); }
    const uint8_t *data = f->base + 8 + hlen;
    uint64_t data_len = f->size - 8 - hlen;
    for (size_t i = 0; st == RP_OK && i < rp_json_len(h); i++) {
        const char *name = rp_json_key_at(h, i);
        if (strcmp(name, "__metadata__") == 0) continue;
        if (strlen(name) > 400) { st = rp_fail(RP_ERR_FORMAT, "%s: tensor name of %zu bytes is too long", f->path, strlen(name)); break; }
        st = one_tensor(f, name, rp_json_at(h, i), data, data_len);
    }
    rp_json_free(h);
    if (st != RP_OK) return st;
    /* config.json beside the file */
    const char *slash = strrchr(f->path, '/');
    rp_buf cfg = {0};
    if (slash) st = rp_buf_append(&cfg, f->path, (size_t)(slash - f->path + 1));
    if (st == RP_OK) st = rp_buf_puts(&cfg, "config.json");
    if (st == RP_OK) st = read_config(f, cfg.data);
    rp_buf_free(&cfg);
    return st;
}
