/* test_gguf.c: the GGUF reader on the two staged real files (counts and shapes against their MANIFEST.md,
 * written by an independent parser) and on hostile files built in memory, each of which must fail with the
 * right status and a message naming the problem. Also checks the dtype size table against ggml's layouts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "model/model_file.h"
#include "tensor/dtype.h"
#include "util/buf.h"
#include "../tests/check.h"

/* ---- a tiny GGUF writer for hostile inputs ---- */
static void put(rp_buf *b, const void *p, size_t n) { rp_buf_append(b, p, n); }
static void u32(rp_buf *b, uint32_t v) { put(b, &v, 4); }
static void u64(rp_buf *b, uint64_t v) { put(b, &v, 8); }
static void str(rp_buf *b, const char *s) { u64(b, strlen(s)); put(b, s, strlen(s)); }
static void kv_u32(rp_buf *b, const char *k, uint32_t v) { str(b, k); u32(b, 4); u32(b, v); }
static void kv_str(rp_buf *b, const char *k, const char *v) { str(b, k); u32(b, 8); str(b, v); }
static void tinfo(rp_buf *b, const char *name, int nd, const uint64_t *ne, uint32_t type, uint64_t off) {
    str(b, name); u32(b, (uint32_t)nd);
    for (int i = 0; i < nd; i++) u64(b, ne[i]);
    u32(b, type); u64(b, off);
}
static void pad(rp_buf *b, size_t align) { while (b->len % align) put(b, "", 1); }

/* A valid file: 2 keys (one a nested array), 2 tensors: f32 [4] and q8_0 [32 x 2]. */
static void build_valid(rp_buf *b) {
    rp_buf_clear(b);
    put(b, "GGUF", 4); u32(b, 3); u64(b, 2); u64(b, 3);
    kv_str(b, "general.architecture", "test");
    kv_u32(b, "general.alignment", 32);
    /* nested array: array of 2 arrays of i32 */
    str(b, "test.nested"); u32(b, 9); u32(b, 9); u64(b, 2);
    for (int k = 0; k < 2; k++) { u32(b, 5); u64(b, 3); for (int i = 0; i < 3; i++) u32(b, (uint32_t)i); }
    uint64_t ne1[1] = {4}, ne2[2] = {32, 2};
    tinfo(b, "a", 1, ne1, 0, 0);
    tinfo(b, "b", 2, ne2, 8, 32);
    pad(b, 32);
    float a[8] = {1, 2, 3, 4, 0, 0, 0, 0};
    put(b, a, sizeof a);
    for (int i = 0; i < 68; i++) put(b, "\x01", 1);
}

static void expect_fail(const void *data, size_t len, rp_status want, const char *needle, const char *what) {
    rp_model_file *f = NULL;
    rp_status st = rp_model_file_open_memory(data, len, "hostile.gguf", &f);
    CHECK_MSG(st == want, "%s: status %s (%s), want %s", what, rp_status_name(st), rp_errmsg(), rp_status_name(want));
    CHECK_MSG(st == RP_OK || strstr(rp_errmsg(), needle) != NULL, "%s: message \"%s\" lacks \"%s\"", what, rp_errmsg(), needle);
    CHECK_MSG(st == RP_OK || strstr(rp_errmsg(), "hostile.gguf") != NULL, "%s: message \"%s\" lacks the file name", what, rp_errmsg());
    CHECK(f == NULL);
    rp_model_file_free(f);
}

static void test_hostile(void) {
    rp_buf b = {0};
    build_valid(&b);
    rp_model_file *f = NULL;
    rp_status st = rp_model_file_open_memory(b.data, b.len, "valid.gguf", &f);
    CHECK_MSG(st == RP_OK, "%s", rp_errmsg());
    if (st == RP_OK) {
        CHECK(rp_model_file_n_weights(f) == 2);
        const rp_weight *w = rp_model_file_weight(f, "b");
        CHECK(w && w->ndim == 2 && w->shape[0] == 2 && w->shape[1] == 32 && w->dtype == RP_Q8_0 && w->nbytes == 68);
        w = rp_model_file_weight(f, "a");
        CHECK(w && w->ndim == 1 && w->shape[0] == 4 && ((const float *)w->data)[3] == 4.0f);
        CHECK(rp_model_file_meta_type(f, "test.nested") == RP_META_ARRAY);
        CHECK(rp_model_file_meta_array_len(f, "test.nested") == 2);
        int64_t al = 0;
        CHECK(rp_model_file_meta_int(f, "general.alignment", &al) && al == 32);
        CHECK(strcmp(rp_model_file_meta_string(f, "general.architecture"), "test") == 0);
        rp_llama_config cfg;
        CHECK(rp_model_file_llama_config(f, &cfg) == RP_ERR_UNSUPPORTED);
        rp_model_file_free(f);
    }
    /* every truncation of a valid file fails cleanly with a format error */
    int all_fail = 1;
    for (size_t n = 1; n < b.len; n++) {
        char *copy = malloc(n);
        memcpy(copy, b.data, n);
        f = NULL;
        st = rp_model_file_open_memory(copy, n, "t.gguf", &f);
        if (st != RP_ERR_FORMAT) { all_fail = 0; fprintf(stderr, "truncated at %zu: %s\n", n, rp_errmsg()); }
        rp_model_file_free(f);
        free(copy);
    }
    CHECK(all_fail);
    expect_fail(b.data, 12, RP_ERR_FORMAT, "tensor count needs 8 bytes at offset 8, past the end", "truncated header");
    expect_fail(b.data, 60, RP_ERR_FORMAT, "tensor count 2 cannot fit", "truncated metadata");

    rp_buf h = {0};
    put(&h, b.data, b.len); memcpy(h.data, "GGUG", 4);
    expect_fail(h.data, h.len, RP_ERR_FORMAT, "magic", "bad magic");
    h.data[0] = 'G'; h.data[3] = 'F';
    uint32_t v = 7; memcpy(h.data + 4, &v, 4);
    expect_fail(h.data, h.len, RP_ERR_FORMAT, "version 7", "bad version");
    v = 1; memcpy(h.data + 4, &v, 4);
    expect_fail(h.data, h.len, RP_ERR_UNSUPPORTED, "version 1", "version 1");
    v = 3; memcpy(h.data + 4, &v, 4);
    uint64_t big = 1ull << 40;
    memcpy(h.data + 8, &big, 8);
    expect_fail(h.data, h.len, RP_ERR_FORMAT, "tensor count 1099511627776", "tensor count past end");
    memcpy(h.data + 8, &(uint64_t){2}, 8);
    memcpy(h.data + 16, &big, 8);
    expect_fail(h.data, h.len, RP_ERR_FORMAT, "metadata count", "kv count past end");
    rp_buf_free(&h);

    /* string length past the end */
    rp_buf_clear(&h);
    put(&h, "GGUF", 4); u32(&h, 3); u64(&h, 0); u64(&h, 1);
    u64(&h, 1000); put(&h, "general.x", 9);
    expect_fail(h.data, h.len, RP_ERR_FORMAT, "string length 1000", "string past end");
    /* unknown value type */
    rp_buf_clear(&h);
    put(&h, "GGUF", 4); u32(&h, 3); u64(&h, 0); u64(&h, 1);
    str(&h, "general.x"); u32(&h, 42); u64(&h, 0);
    expect_fail(h.data, h.len, RP_ERR_FORMAT, "unknown value type 42", "bad value type");
    /* array count past the end */
    rp_buf_clear(&h);
    put(&h, "GGUF", 4); u32(&h, 3); u64(&h, 0); u64(&h, 1);
    str(&h, "general.arr"); u32(&h, 9); u32(&h, 8); u64(&h, 1ull << 60); u64(&h, 0);
    expect_fail(h.data, h.len, RP_ERR_FORMAT, "general.arr", "array count past end");

    /* tensor-level problems */
    uint64_t ne_big[2] = {1ull << 40, 1ull << 40}, ne4[1] = {4}, ne_q[1] = {31};
    struct { const uint64_t *ne; int nd; uint32_t type; uint64_t off; rp_status want; const char *needle; const char *what; } cases[] = {
        {ne_big, 2, 0, 0, RP_ERR_FORMAT, "overflows", "overflowing shape"},
        {ne4, 1, 77, 0, RP_ERR_UNSUPPORTED, "type 77", "unknown type"},
        {ne4, 1, 0, 1ull << 50, RP_ERR_FORMAT, "past the end", "offset past end"},
        {ne4, 1, 0, 4, RP_ERR_FORMAT, "alignment", "misaligned offset"},
        {ne_q, 1, 8, 0, RP_ERR_FORMAT, "block size", "partial block"},
        {ne4, 5, 0, 0, RP_ERR_FORMAT, "dimensions", "too many dims"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        rp_buf_clear(&h);
        put(&h, "GGUF", 4); u32(&h, 2); u64(&h, 1); u64(&h, 0);
        if (cases[k].nd == 5) { uint64_t ne5[5] = {4, 1, 1, 1, 1}; tinfo(&h, "blk.0.w", 5, ne5, 0, 0); }
        else tinfo(&h, "blk.0.w", cases[k].nd, cases[k].ne, cases[k].type, cases[k].off);
        pad(&h, 32);
        float z[4] = {0};
        put(&h, z, sizeof z);
        expect_fail(h.data, h.len, cases[k].want, cases[k].needle, cases[k].what);
        CHECK_MSG(strstr(rp_errmsg(), "blk.0.w") != NULL, "%s: message \"%s\" lacks the tensor name", cases[k].what, rp_errmsg());
    }
    /* truncated data: the tensor's bytes end past the file */
    rp_buf_clear(&h);
    put(&h, "GGUF", 4); u32(&h, 3); u64(&h, 1); u64(&h, 0);
    uint64_t ne8[1] = {8};
    tinfo(&h, "w", 1, ne8, 0, 0);
    pad(&h, 32);
    put(&h, (float[4]){0}, 16);
    expect_fail(h.data, h.len, RP_ERR_FORMAT, "tensor w", "truncated data");
    /* duplicate tensor names */
    rp_buf_clear(&h);
    put(&h, "GGUF", 4); u32(&h, 3); u64(&h, 2); u64(&h, 0);
    tinfo(&h, "w", 1, ne4, 0, 0);
    tinfo(&h, "w", 1, ne4, 0, 0);
    pad(&h, 32);
    put(&h, (float[4]){0}, 16);
    expect_fail(h.data, h.len, RP_ERR_FORMAT, "duplicate", "duplicate name");
    /* bad alignment value */
    rp_buf_clear(&h);
    put(&h, "GGUF", 4); u32(&h, 3); u64(&h, 0); u64(&h, 1);
    kv_u32(&h, "general.alignment", 24);
    expect_fail(h.data, h.len, RP_ERR_FORMAT, "power of two", "bad alignment");
    rp_buf_free(&h);
    rp_buf_free(&b);
}

static const char *mirror_file(char *buf, size_t n, const char *rel) {
    const char *m = getenv("REPRO_MIRROR");
    if (!m) return NULL;
    snprintf(buf, n, "%s/%s", m, rel);
    FILE *fp = fopen(buf, "rb");
    if (!fp) return NULL;
    fclose(fp);
    return buf;
}

static void test_smollm2(void) {
    char path[4096];
    if (!mirror_file(path, sizeof path, "smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf")) {
        printf("skip [mirror]: SmolLM2 GGUF not in REPRO_MIRROR\n");
        return;
    }
    rp_model_file *f = NULL;
    rp_status st = rp_model_file_open(path, &f);
    CHECK_MSG(st == RP_OK, "%s", rp_errmsg());
    if (st != RP_OK) return;
    CHECK(strcmp(rp_model_file_format(f), "gguf") == 0);
    CHECK(rp_model_file_n_weights(f) == 272);
    CHECK(rp_model_file_n_meta(f) == 33);
    int nq41 = 0, nf32 = 0, nq80 = 0;
    for (int i = 0; i < rp_model_file_n_weights(f); i++) {
        const rp_weight *w = rp_model_file_weight_at(f, i);
        nq41 += w->dtype == RP_Q4_1; nf32 += w->dtype == RP_F32; nq80 += w->dtype == RP_Q8_0;
    }
    CHECK(nq41 == 210 && nf32 == 61 && nq80 == 1);
    const rp_weight *e = rp_model_file_weight(f, "token_embd.weight");
    CHECK(e && e->dtype == RP_Q8_0 && e->ndim == 2 && e->shape[0] == 49152 && e->shape[1] == 576);
    CHECK(e && e->nbytes == 49152ull * 576 / 32 * 34);
    CHECK(rp_model_file_weight(f, "output.weight") == NULL);
    const rp_weight *q = rp_model_file_weight(f, "blk.0.ffn_down.weight");
    CHECK(q && q->dtype == RP_Q4_1 && q->shape[0] == 576 && q->shape[1] == 1536);
    rp_llama_config c;
    st = rp_model_file_llama_config(f, &c);
    CHECK_MSG(st == RP_OK, "%s", rp_errmsg());
    CHECK(c.n_layer == 30 && c.dim == 576 && c.ffn_dim == 1536 && c.n_head == 9 && c.n_head_kv == 3 && c.head_dim == 64);
    CHECK(c.rope_dim == 64 && c.rope_neox == 0 && c.context_len == 8192 && c.vocab == 49152 && c.tied_embeddings);
    CHECK_NEAR(c.rope_base, 100000.0, 1e-3);
    CHECK_NEAR(c.norm_eps, 1e-5, 1e-9);
    CHECK(strcmp(rp_model_file_meta_string(f, "tokenizer.ggml.model"), "gpt2") == 0);
    CHECK(strcmp(rp_model_file_meta_string(f, "tokenizer.ggml.pre"), "smollm") == 0);
    CHECK(rp_model_file_meta_array_len(f, "tokenizer.ggml.tokens") == 49152);
    CHECK(rp_model_file_meta_array_len(f, "tokenizer.ggml.merges") == 48900);
    size_t len = 0;
    const char *s = rp_model_file_meta_array_string(f, "tokenizer.ggml.tokens", 1, &len);
    CHECK(s && len == 12 && memcmp(s, "<|im_start|>", 12) == 0);
    int64_t bos = -1;
    CHECK(rp_model_file_meta_int(f, "tokenizer.ggml.bos_token_id", &bos) && bos == 1);
    const char *tmpl = rp_model_file_meta_string(f, "tokenizer.chat_template");
    CHECK(tmpl && strstr(tmpl, "You are a helpful AI assistant named SmolLM, trained by Hugging Face"));
    /* every weight lies inside the file */
    int inside = 1;
    for (int i = 0; i < rp_model_file_n_weights(f); i++) {
        const rp_weight *w = rp_model_file_weight_at(f, i);
        if (!w->data || w->nbytes == 0) inside = 0;
    }
    CHECK(inside);
    rp_model_file_free(f);
}

static void test_tiny_random(void) {
    char path[4096];
    if (!mirror_file(path, sizeof path, "gguf-tiny-random-llama/llama-2-tiny-random.gguf")) {
        printf("skip [mirror]: tiny random GGUF not in REPRO_MIRROR\n");
        return;
    }
    rp_model_file *f = NULL;
    rp_status st = rp_model_file_open(path, &f);
    CHECK_MSG(st == RP_OK, "%s", rp_errmsg());
    if (st != RP_OK) return;
    CHECK(rp_model_file_n_weights(f) == 12);
    CHECK(rp_model_file_n_meta(f) == 18);
    const rp_weight *w = rp_model_file_weight(f, "output.weight");
    CHECK(w && w->dtype == RP_F16 && w->shape[0] == 32000 && w->shape[1] == 8);
    /* the last tensor ends exactly at the end of the file (MANIFEST) */
    size_t end = 0;
    const unsigned char *base = NULL;
    for (int i = 0; i < rp_model_file_n_weights(f); i++) {
        const rp_weight *x = rp_model_file_weight_at(f, i);
        if (!base || (const unsigned char *)x->data < base) base = x->data;
    }
    for (int i = 0; i < rp_model_file_n_weights(f); i++) {
        const rp_weight *x = rp_model_file_weight_at(f, i);
        size_t e = (size_t)((const unsigned char *)x->data - base) + x->nbytes;
        if (e > end) end = e;
    }
    CHECK(724416 + end == 1750560);
    rp_llama_config c;
    st = rp_model_file_llama_config(f, &c);
    CHECK_MSG(st == RP_OK, "%s", rp_errmsg());
    CHECK(c.n_layer == 1 && c.dim == 8 && c.ffn_dim == 32 && c.n_head == 2 && c.n_head_kv == 2 && c.rope_dim == 4);
    CHECK(c.vocab == 32000 && !c.tied_embeddings && c.rope_base == 10000.0f && c.context_len == 4096);
    CHECK(rp_model_file_meta_array_len(f, "tokenizer.ggml.scores") == 32000);
    double sc = 0;
    CHECK(rp_model_file_meta_array_float(f, "tokenizer.ggml.scores", 0, &sc));
    int64_t tt = 0;
    CHECK(rp_model_file_meta_array_int(f, "tokenizer.ggml.token_type", 3, &tt) && tt == 6);  /* <0x00> is a byte token */
    rp_model_file_free(f);
}

static void test_dtype(void) {
    /* block sizes from ggml's block structs */
    CHECK(rp_dtype_row_bytes(RP_Q4_0, 64) == 36);
    CHECK(rp_dtype_row_bytes(RP_Q4_1, 32) == 20);
    CHECK(rp_dtype_row_bytes(RP_Q8_0, 32) == 34);
    CHECK(rp_dtype_row_bytes(RP_Q4_K, 256) == 144);
    CHECK(rp_dtype_row_bytes(RP_Q6_K, 512) == 420);
    CHECK(rp_dtype_row_bytes(RP_BF16, 3) == 6);
    CHECK(rp_dtype_row_bytes(RP_Q8_0, 33) == 0);
    CHECK(rp_dtype_row_bytes(RP_F32, INT64_MAX) == 0);
    CHECK(!rp_dtype_valid(5) && rp_dtype_valid(30) && strcmp(rp_dtype_name(RP_Q6_K), "q6_K") == 0);
}

/* ---- safetensors + config.json, written to a temporary folder ---- */
static void st_tensor(rp_buf *hdr, rp_buf *data, const char *name, const char *dtype, int nd, const int *shape, int elsize, int first) {
    size_t nel = 1;
    for (int i = 0; i < nd; i++) nel *= (size_t)shape[i];
    rp_buf_printf(hdr, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", first ? "" : ",", name, dtype);
    for (int i = 0; i < nd; i++) rp_buf_printf(hdr, "%s%d", i ? "," : "", shape[i]);
    rp_buf_printf(hdr, "],\"data_offsets\":[%zu,%zu]}", data->len, data->len + nel * (size_t)elsize);
    for (size_t i = 0; i < nel; i++) { float v = (float)(data->len / 4); rp_buf_append(data, &v, 4); }
}

static void write_st(const char *path, const rp_buf *hdr, const rp_buf *data) {
    rp_buf all = {0};
    uint64_t n = hdr->len;
    rp_buf_append(&all, &n, 8);
    rp_buf_append(&all, hdr->data, hdr->len);
    rp_buf_append(&all, data->data, data->len);
    rp_write_file(path, all.data, all.len);
    rp_buf_free(&all);
}

static void test_safetensors(void) {
    char dir[] = "/tmp/rp_st_XXXXXX", path[256], cfg[256];
    if (!mkdtemp(dir)) { CHECK_MSG(0, "mkdtemp"); return; }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    const char *config = "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"hidden_size\":4,"
                         "\"intermediate_size\":8,\"num_hidden_layers\":1,\"num_attention_heads\":2,\"num_key_value_heads\":1,"
                         "\"rms_norm_eps\":1e-06,\"rope_theta\":500000.0,\"max_position_embeddings\":64,\"vocab_size\":3,"
                         "\"tie_word_embeddings\":true,\"rope_scaling\":null}";
    rp_write_file(cfg, config, strlen(config));
    rp_buf hdr = {0}, data = {0};
    rp_buf_puts(&hdr, "{\"__metadata__\":{\"format\":\"pt\"},");
    struct { const char *name; int nd, s0, s1; } t[] = {
        {"model.embed_tokens.weight", 2, 3, 4}, {"model.layers.0.input_layernorm.weight", 1, 4, 0},
        {"model.layers.0.self_attn.q_proj.weight", 2, 4, 4}, {"model.layers.0.self_attn.k_proj.weight", 2, 2, 4},
        {"model.layers.0.self_attn.v_proj.weight", 2, 2, 4}, {"model.layers.0.self_attn.o_proj.weight", 2, 4, 4},
        {"model.layers.0.post_attention_layernorm.weight", 1, 4, 0}, {"model.layers.0.mlp.gate_proj.weight", 2, 8, 4},
        {"model.layers.0.mlp.up_proj.weight", 2, 8, 4}, {"model.layers.0.mlp.down_proj.weight", 2, 4, 8},
        {"model.norm.weight", 1, 4, 0},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        int shape[2] = {t[i].s0, t[i].s1};
        st_tensor(&hdr, &data, t[i].name, "F32", t[i].nd, shape, 4, i == 0);
    }
    rp_buf_puts(&hdr, "}");
    write_st(path, &hdr, &data);
    rp_model_file *f = NULL;
    rp_status st = rp_model_file_open(path, &f);
    CHECK_MSG(st == RP_OK, "%s", rp_errmsg());
    if (st == RP_OK) {
        CHECK(strcmp(rp_model_file_format(f), "safetensors") == 0 && rp_model_file_n_weights(f) == 11);
        const rp_weight *w = rp_model_file_weight(f, "blk.0.ffn_down.weight");
        CHECK(w && w->ndim == 2 && w->shape[0] == 4 && w->shape[1] == 8 && w->dtype == RP_F32 && w->nbytes == 128);
        /* its first float is its element offset in the data section (how st_tensor filled it) */
        float first = 0;   /* a safetensors data section need not be 4-byte aligned: copy, do not cast */
        if (w) memcpy(&first, w->data, sizeof first);
        CHECK(w && first == (float)(12 + 4 + 16 + 8 + 8 + 16 + 4 + 32 + 32));
        rp_llama_config c;
        st = rp_model_file_llama_config(f, &c);
        CHECK_MSG(st == RP_OK, "%s", rp_errmsg());
        CHECK(c.dim == 4 && c.n_layer == 1 && c.n_head == 2 && c.n_head_kv == 1 && c.ffn_dim == 8 && c.vocab == 3);
        CHECK(c.rope_neox == 1 && c.tied_embeddings && c.context_len == 64 && c.rope_base == 500000.0f && c.norm_eps == 1e-6f);
        rp_model_file_free(f);
    }
    /* a config that declares an untied head the file lacks */
    const char *untied = "{\"model_type\":\"llama\",\"hidden_size\":4,\"tie_word_embeddings\":false}";
    rp_write_file(cfg, untied, strlen(untied));
    f = NULL;
    st = rp_model_file_open(path, &f);
    CHECK_MSG(st == RP_ERR_FORMAT && strstr(rp_errmsg(), "lm_head.weight"), "%s", rp_errmsg());
    rp_model_file_free(f);
    /* hostile variants */
    struct { const char *hdr; const char *needle; rp_status want; } bad[] = {
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1000],\"data_offsets\":[0,4000]}}", "past the end of the data section", RP_ERR_FORMAT},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,12]}}", "needs 16", RP_ERR_FORMAT},
        {"{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[0,4]}}", "F8_E4M3", RP_ERR_UNSUPPORTED},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,4]}}", "overflows", RP_ERR_FORMAT},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", "shape[0]", RP_ERR_FORMAT},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", "begin <= end", RP_ERR_FORMAT},
        {"{\"w\":[1,2", "safetensors header", RP_ERR_FORMAT},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        rp_buf h = {0}, d = {0};
        rp_buf_puts(&h, bad[k].hdr);
        rp_buf_append(&d, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16);
        write_st(path, &h, &d);
        f = NULL;
        st = rp_model_file_open(path, &f);
        CHECK_MSG(st == bad[k].want && strstr(rp_errmsg(), bad[k].needle) && strstr(rp_errmsg(), "model.safetensors"),
                  "case %zu: %s: %s", k, rp_status_name(st), rp_errmsg());
        rp_model_file_free(f);
        rp_buf_free(&h);
        rp_buf_free(&d);
    }
    unlink(path);
    unlink(cfg);
    rmdir(dir);
    rp_buf_free(&hdr);
    rp_buf_free(&data);
}

int main(void) {
    test_safetensors();
    test_dtype();
    test_hostile();
    test_smollm2();
    test_tiny_random();
    return checks_done("gguf");
}
