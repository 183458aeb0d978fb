/* test_llama2c.c: the llama2.c checkpoint reader on stories260K (header and layout as documented in the
 * mirror's MANIFEST.md: offsets computed here in closed form) and on small checkpoints built in memory
 * (untied classifier, wrong sizes, bad header fields). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model/model_file.h"
#include "util/buf.h"
#include "../tests/check.h"

static void test_stories260k(void) {
    const char *m = getenv("REPRO_MIRROR");
    char path[4096];
    snprintf(path, sizeof path, "%s/stories260K/stories260K.bin", m ? m : "");
    rp_buf raw = {0};
    if (!m || rp_read_file(path, &raw) != RP_OK) { printf("skip [mirror]: stories260K.bin not in REPRO_MIRROR\n"); return; }
    rp_model_file *f = NULL;
    rp_status st = rp_model_file_open(path, &f);
    CHECK_MSG(st == RP_OK, "%s", rp_errmsg());
    if (st != RP_OK) { rp_buf_free(&raw); return; }
    CHECK(strcmp(rp_model_file_format(f), "llama2c") == 0);
    rp_llama_config c;
    st = rp_model_file_llama_config(f, &c);
    CHECK_MSG(st == RP_OK, "%s", rp_errmsg());
    CHECK(c.dim == 64 && c.ffn_dim == 172 && c.n_layer == 5 && c.n_head == 8 && c.n_head_kv == 4 && c.vocab == 512);
    CHECK(c.context_len == 512 && c.head_dim == 8 && c.rope_dim == 8 && c.rope_neox == 0 && c.tied_embeddings);
    CHECK(c.rope_base == 10000.0f && c.norm_eps == 1e-5f);
    CHECK(rp_model_file_n_weights(f) == 1 + 5 * 9 + 1);
    /* closed-form offsets (in floats, after the 7-int header) from the MANIFEST's layout */
    const long C = 64, F = 172, L = 5, KV = 32, V = 512;
    struct { const char *name; long off; } at[] = {
        {"token_embd.weight", 0},
        {"blk.0.attn_norm.weight", V * C},
        {"blk.4.attn_norm.weight", V * C + 4 * C},
        {"blk.2.attn_q.weight", V * C + L * C + 2 * C * C},
        {"blk.1.attn_k.weight", V * C + L * C + L * C * C + 1 * KV * C},
        {"blk.3.attn_v.weight", V * C + L * C + L * C * C + L * KV * C + 3 * KV * C},
        {"blk.0.attn_output.weight", V * C + L * C + L * C * C + 2 * L * KV * C},
        {"blk.2.ffn_norm.weight", V * C + L * C + 2 * L * C * C + 2 * L * KV * C + 2 * C},
        {"blk.1.ffn_gate.weight", V * C + 2 * L * C + 2 * L * C * C + 2 * L * KV * C + 1 * F * C},
        {"blk.1.ffn_down.weight", V * C + 2 * L * C + 2 * L * C * C + 2 * L * KV * C + L * F * C + 1 * F * C},
        {"blk.4.ffn_up.weight", V * C + 2 * L * C + 2 * L * C * C + 2 * L * KV * C + 2 * L * F * C + 4 * F * C},
        {"output_norm.weight", V * C + 2 * L * C + 2 * L * C * C + 2 * L * KV * C + 3 * L * F * C},
    };
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        const rp_weight *w = rp_model_file_weight(f, at[i].name);
        CHECK_MSG(w != NULL, "%s missing", at[i].name);
        if (!w) continue;
        CHECK_MSG(memcmp(w->data, raw.data + 28 + 4 * at[i].off, w->nbytes) == 0, "%s: data differs from offset %ld", at[i].name, at[i].off);
    }
    const rp_weight *w = rp_model_file_weight(f, "blk.0.ffn_down.weight");
    CHECK(w && w->shape[0] == 64 && w->shape[1] == 172 && w->nbytes == 64 * 172 * 4);
    rp_model_file_free(f);

    /* truncated by one float: refused with both sizes in the message */
    rp_model_file *g = NULL;
    st = rp_model_file_open_memory(raw.data, raw.len - 4, "short.bin", &g);
    CHECK(st == RP_ERR_FORMAT && strstr(rp_errmsg(), "implies 1056540 bytes but the file has 1056536"));
    rp_buf_free(&raw);
}

static void test_synthetic(void) {
    /* dim 4, hidden 8, 1 layer, 2 heads, 1 kv head, vocab -3 (untied), seq 2 */
    int32_t h[7] = {4, 8, 1, 2, 1, -3, 2};
    long C = 4, F = 8, KV = 2, V = 3, T = 2, HS = 2;
    long nf = V * C + C + C * C + 2 * KV * C + C * C + C + 3 * F * C + C + T * HS + V * C;
    size_t n = 28 + 4 * (size_t)nf;
    unsigned char *buf = malloc(n);
    memcpy(buf, h, 28);
    float *x = (float *)(buf + 28);
    for (long i = 0; i < nf; i++) x[i] = (float)i;
    rp_model_file *f = NULL;
    rp_status st = rp_model_file_open_memory(buf, n, "untied.bin", &f);
    CHECK_MSG(st == RP_OK, "%s", rp_errmsg());
    if (st == RP_OK) {
        rp_llama_config c;
        st = rp_model_file_llama_config(f, &c);
        CHECK_MSG(st == RP_OK, "%s", rp_errmsg());
        CHECK(!c.tied_embeddings && c.vocab == 3 && c.n_head_kv == 1 && c.head_dim == 2);
        const rp_weight *w = rp_model_file_weight(f, "output.weight");
        CHECK(w && ((const float *)w->data)[0] == (float)(nf - V * C));
        rp_model_file_free(f);
    }
    /* one float too many */
    unsigned char *big = malloc(n + 4);
    memcpy(big, buf, n);
    memset(big + n, 0, 4);
    f = NULL;
    st = rp_model_file_open_memory(big, n + 4, "long.bin", &f);
    CHECK(st == RP_ERR_FORMAT && strstr(rp_errmsg(), "long.bin") && strstr(rp_errmsg(), "but the file has"));
    /* bad fields */
    int32_t bad[4][7] = {{4, 8, 1, 3, 1, 3, 2}, {4, 8, 1, 2, 0, 3, 2}, {4, 8, 0, 2, 1, 3, 2}, {4, 8, 1, 2, 1, 3, -1}};
    const char *needle[4] = {"not a multiple of n_heads", "n_kv_heads = 0", "n_layers = 0", "seq_len = -1"};
    for (int k = 0; k < 4; k++) {
        memcpy(buf, bad[k], 28);
        f = NULL;
        st = rp_model_file_open_memory(buf, n, "bad.bin", &f);
        CHECK_MSG(st == RP_ERR_FORMAT && strstr(rp_errmsg(), needle[k]), "case %d: %s", k, rp_errmsg());
    }
    st = rp_model_file_open_memory(buf, 20, "tiny.bin", &f);
    CHECK(st == RP_ERR_FORMAT && strstr(rp_errmsg(), "tiny.bin"));
    free(big);
    free(buf);
}

int main(void) {
    test_stories260k();
    test_synthetic();
    return checks_done("llama2c");
}
