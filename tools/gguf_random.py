#!/usr/bin/env python3
"""gguf_random.py: write a Llama GGUF of given shapes with random weights, for checks and
benchmarks on machines without the data mirror (the GPU machines have no network and no weights).

Default shapes are SmolLM2-135M's (30 layers, dim 576, FFN 1536, 9 heads, 3 KV heads, vocab 49152, tied
embeddings, RoPE base 100000). Weights are q8_0 blocks (random int8, one f16 scale per 32 giving a standard
deviation of about 0.02) or f32 (uniform, same deviation); norm weights are 1; the vocabulary is a minimal
sentencepiece-style one (byte tokens and fillers: the text means nothing). Standard library only, so it
runs anywhere python3 does. Usage: gguf_random.py OUT.gguf [--dtype q8_0|f32] [--layers N] [--seed S]
"""
import argparse
import os
import random
import struct
import sys

ALIGN = 32
T_U32, T_F32, T_STR, T_ARR = 4, 6, 8, 9
GGML_F32, GGML_Q8_0 = 0, 8


def gguf_str(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def kv(key, vtype, value):
    out = gguf_str(key) + struct.pack("<I", vtype)
    if vtype == T_U32:
        return out + struct.pack("<I", value)
    if vtype == T_F32:
        return out + struct.pack("<f", value)
    if vtype == T_ARR:   # an array of strings
        return out + struct.pack("<IQ", T_STR, len(value)) + b"".join(gguf_str(v) for v in value)
    return out + gguf_str(value)


def q8_0_rows(rows, cols, rng):
    """rows x cols q8_0: each 34-byte block is an f16 scale then 32 random int8 values."""
    nb = rows * cols // 32
    data = bytearray(rng.randbytes(nb * 34)) if hasattr(rng, "randbytes") else bytearray(os.urandom(nb * 34))
    scale = struct.pack("<e", 0.02 / 73.0)   # uniform int8 has std ~73
    data[0::34] = scale[0:1] * nb
    data[1::34] = scale[1:2] * nb
    return bytes(data)


def f32_rows(rows, cols, rng):
    a = 0.02 * 3 ** 0.5
    return struct.pack("<%df" % (rows * cols), *(rng.uniform(-a, a) for _ in range(rows * cols)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--dtype", choices=["q8_0", "f32"], default="q8_0")
    ap.add_argument("--layers", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    C, F, H, HKV, V, L = 576, 1536, 9, 3, 49152, a.layers
    D = C // H
    rng = random.Random(a.seed)
    tensors = []   # (name, dims innermost first, ggml type, bytes)
    wtype = GGML_Q8_0 if a.dtype == "q8_0" else GGML_F32
    make = q8_0_rows if a.dtype == "q8_0" else f32_rows

    def mat(name, rows, cols):
        tensors.append((name, [cols, rows], wtype, make(rows, cols, rng)))

    def ones(name, n):
        tensors.append((name, [n], GGML_F32, struct.pack("<%df" % n, *([1.0] * n))))

    mat("token_embd.weight", V, C)
    ones("output_norm.weight", C)
    for l in range(L):
        ones("blk.%d.attn_norm.weight" % l, C)
        ones("blk.%d.ffn_norm.weight" % l, C)
        mat("blk.%d.attn_q.weight" % l, C, C)
        mat("blk.%d.attn_k.weight" % l, HKV * D, C)
        mat("blk.%d.attn_v.weight" % l, HKV * D, C)
        mat("blk.%d.attn_output.weight" % l, C, C)
        mat("blk.%d.ffn_gate.weight" % l, F, C)
        mat("blk.%d.ffn_up.weight" % l, F, C)
        mat("blk.%d.ffn_down.weight" % l, C, F)
    meta = [kv("general.architecture", T_STR, "llama"), kv("general.name", T_STR, "random-smollm2-135m-shapes"),
            kv("general.alignment", T_U32, ALIGN), kv("llama.block_count", T_U32, L),
            kv("llama.embedding_length", T_U32, C), kv("llama.feed_forward_length", T_U32, F),
            kv("llama.attention.head_count", T_U32, H), kv("llama.attention.head_count_kv", T_U32, HKV),
            kv("llama.rope.dimension_count", T_U32, D), kv("llama.context_length", T_U32, 8192),
            kv("llama.rope.freq_base", T_F32, 100000.0), kv("llama.attention.layer_norm_rms_epsilon", T_F32, 1e-5),
            # a minimal sentencepiece-style vocabulary (byte tokens, then fillers), so that model.load and
            # repro generate accept the file; its text is meaningless, token ids are what checks use
            kv("tokenizer.ggml.model", T_STR, "llama"),
            kv("tokenizer.ggml.tokens", T_ARR, ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)] +
               ["\u2581t%d" % i for i in range(V - 259)]),
            kv("tokenizer.ggml.bos_token_id", T_U32, 1), kv("tokenizer.ggml.eos_token_id", T_U32, 2)]
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(meta)) + b"".join(meta)
    infos, off = [], 0
    for name, dims, t, data in tensors:
        infos.append(gguf_str(name) + struct.pack("<I", len(dims)) + struct.pack("<%dQ" % len(dims), *dims) +
                     struct.pack("<IQ", t, off))
        off += (len(data) + ALIGN - 1) // ALIGN * ALIGN
    head += b"".join(infos)
    tmp = a.out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(head)
        f.write(b"\0" * (-len(head) % ALIGN))
        for _, _, _, data in tensors:
            f.write(data)
            f.write(b"\0" * (-len(data) % ALIGN))
    os.replace(tmp, a.out)
    print("wrote %s: %d tensors, %.0f MB (%s, %d layers)" % (a.out, len(tensors), off / 1e6, a.dtype, L), file=sys.stderr)


if __name__ == "__main__":
    main()
