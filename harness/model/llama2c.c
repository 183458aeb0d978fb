/* llama2c.c: reader for llama2.c checkpoints (the legacy "version 0" export of Karpathy's llama2.c).
 * Layout: 7 little-endian int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a
 * negative vocab_size means the classifier is a separate matrix at the end), then f32 arrays in this order:
 * token_embedding {V, C}, rms_att {L, C}, wq {L, C, C}, wk {L, KV, C}, wv {L, KV, C}, wo {L, C, C},
 * rms_ffn {L, C}, w1 {L, F, C}, w2 {L, C, F}, w3 {L, F, C}, rms_final {C}, freq_cis_real and freq_cis_imag
 * {T, head_size/2} each (skipped: we compute RoPE), and [wcls {V, C}].
 * The weights are exposed per layer under GGUF names with synthesized llama.* metadata; the file size must
 * equal the size the header implies exactly (anything else is not this format or is truncated). */
#include "model/model_file_impl.h"
#include <stdio.h>
#include <string.h>

#define L2C_MAX 0x1000000   /* bound on every header field (keeps all products inside 64 bits) */

static const char *field_names[7] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};

static rp_status add(rp_model_file *f, uint64_t *pos, const char *name, int ndim, int64_t d0, int64_t d1) {
    int64_t shape[2] = {d0, d1};
    uint64_t n = (uint64_t)d0 * (uint64_t)(ndim == 2 ? d1 : 1) * 4;
    RP_TRY(rp_mf_add_weight(f, name, strlen(name), RP_F32, ndim, shape, f->base + *pos, (size_t)n));
    *pos += n;
    return RP_OK;
}

/* Parse a llama2.c checkpoint held in f->base / f->size. */
rp_status rp_llama2c_parse(rp_model_file *f) {
    if (f->size < 28)
        return rp_fail(RP_ERR_FORMAT, "%s: unrecognized model file: no GGUF magic and %zu bytes, shorter than a llama2.c header", f->path, f->size);
    int32_t h[7];
    memcpy(h, f->base, sizeof h);
    for (int i = 0; i < 7; i++) {
        int64_t v = i == 5 && h[i] < 0 ? -(int64_t)h[i] : h[i];
        if (v < 1 || v > L2C_MAX)
            return rp_fail(RP_ERR_FORMAT, "%s: unrecognized model file: no GGUF magic, no safetensors header, and llama2.c header field %s = %d is out of range [1, %d]",
                           f->path, field_names[i], h[i], L2C_MAX);
    }
    int64_t C = h[0], F = h[1], L = h[2], NH = h[3], NKV = h[4], V = h[5] < 0 ? -(int64_t)h[5] : h[5], T = h[6];
    int shared = h[5] > 0;
    if (C % NH) return rp_fail(RP_ERR_FORMAT, "%s: llama2.c header: dim %lld is not a multiple of n_heads %lld", f->path, (long long)C, (long long)NH);
    if (NKV > NH || NH % NKV) return rp_fail(RP_ERR_FORMAT, "%s: llama2.c header: n_heads %lld is not a multiple of n_kv_heads %lld", f->path, (long long)NH, (long long)NKV);
    int64_t HS = C / NH, KV = NKV * HS;
    if (HS % 2) return rp_fail(RP_ERR_FORMAT, "%s: llama2.c header: head size %lld is odd", f->path, (long long)HS);
    /* each field is below 2^24, so every product below fits in 128 bits */
    unsigned __int128 floats = (unsigned __int128)V * C
        + (unsigned __int128)L * (2 * C + 2 * C * C + 2 * KV * C + 3 * F * C)
        + C + (unsigned __int128)T * HS + (shared ? 0 : (unsigned __int128)V * C);
    unsigned __int128 want = 28 + floats * 4;
    if (want != f->size) {
        if (want > ((unsigned __int128)1 << 63))
            return rp_fail(RP_ERR_FORMAT, "%s: llama2.c header (dim %lld, hidden_dim %lld, n_layers %lld, vocab %lld) implies an impossible size", f->path,
                           (long long)C, (long long)F, (long long)L, (long long)V);
        return rp_fail(RP_ERR_FORMAT, "%s: llama2.c header (dim %lld, hidden_dim %lld, n_layers %lld, n_heads %lld, n_kv_heads %lld, vocab %lld, seq_len %lld) implies %llu bytes but the file has %zu",
                       f->path, (long long)C, (long long)F, (long long)L, (long long)NH, (long long)NKV, (long long)V, (long long)T,
                       (unsigned long long)want, f->size);
    }
    uint64_t pos = 28;
    RP_TRY(add(f, &pos, "token_embd.weight", 2, V, C));
    /* per-kind arrays are stacked over layers: remember where each starts */
    static const struct { const char *name; int kind; } parts[] = {
        {"attn_norm", 0}, {"attn_q", 1}, {"attn_k", 2}, {"attn_v", 2}, {"attn_output", 1},
        {"ffn_norm", 0}, {"ffn_gate", 3}, {"ffn_down", 4}, {"ffn_up", 3},
    };
    char name[64];
    for (size_t p = 0; p < sizeof parts / sizeof parts[0]; p++) {
        for (int64_t l = 0; l < L; l++) {
            snprintf(name, sizeof name, "blk.%lld.%s.weight", (long long)l, parts[p].name);
            switch (parts[p].kind) {
            case 0: RP_TRY(add(f, &pos, name, 1, C, 0)); break;
            case 1: RP_TRY(add(f, &pos, name, 2, C, C)); break;
            case 2: RP_TRY(add(f, &pos, name, 2, KV, C)); break;
            case 3: RP_TRY(add(f, &pos, name, 2, F, C)); break;
            case 4: RP_TRY(add(f, &pos, name, 2, C, F)); break;
            }
        }
    }
    RP_TRY(add(f, &pos, "output_norm.weight", 1, C, 0));
    pos += (uint64_t)T * (uint64_t)HS * 4;   /* freq_cis_real, freq_cis_imag */
    if (!shared) RP_TRY(add(f, &pos, "output.weight", 2, V, C));
    RP_TRY(rp_mf_set_string(f, "general.architecture", "llama"));
    RP_TRY(rp_mf_set_int(f, "llama.block_count", L));
    RP_TRY(rp_mf_set_int(f, "llama.embedding_length", C));
    RP_TRY(rp_mf_set_int(f, "llama.feed_forward_length", F));
    RP_TRY(rp_mf_set_int(f, "llama.attention.head_count", NH));
    RP_TRY(rp_mf_set_int(f, "llama.attention.head_count_kv", NKV));
    RP_TRY(rp_mf_set_int(f, "llama.rope.dimension_count", HS));
    RP_TRY(rp_mf_set_int(f, "llama.context_length", T));
    RP_TRY(rp_mf_set_int(f, "llama.vocab_size", V));
    RP_TRY(rp_mf_set_float(f, "llama.rope.freq_base", 10000.0));
    RP_TRY(rp_mf_set_float(f, "llama.attention.layer_norm_rms_epsilon", 1e-5));
    RP_TRY(rp_mf_set_int(f, "repro.rope_neox", 0));
    return RP_OK;
}
