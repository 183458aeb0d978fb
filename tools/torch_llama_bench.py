#!/usr/bin/env python3
"""torch_llama_bench.py: the PyTorch peer of bench_cuda on the same GPU, in the same run: Hugging Face
LlamaForCausalLM with SmolLM2-135M's shapes and random weights (the GPU machines have no pretrained
weights and no network), eager mode, batch 1: pp512 (one forward over a 512-token prompt) and tg128
(model.generate of 128 new tokens, greedy, with its KV cache), and a training step (fp32 weights under bf16
autocast, batch 4 x 512 tokens, cross-entropy, backward, torch.optim.AdamW), tokens/s as medians of repeated
runs. Prints one JSON line; prints `skip [gpu]: ...` and exits 0 when torch, transformers or a GPU is missing.
Usage: torch_llama_bench.py [--dtype bf16|fp32] [--reps N]
"""
import argparse
import json
import statistics
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    try:
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM
    except Exception as e:  # noqa: BLE001 - any import failure means no peer here
        print("skip [gpu]: PyTorch peer unavailable (%s)" % e)
        return 0
    if not torch.cuda.is_available():
        print("skip [gpu]: PyTorch sees no GPU")
        return 0
    cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                      num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
                      rope_theta=100000.0, rms_norm_eps=1e-5, tie_word_embeddings=True)
    dt = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to("cuda", dtype=dt).eval()
    ids = torch.randint(0, cfg.vocab_size, (1, 512), device="cuda")

    def timed(fn):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        return time.perf_counter() - t0

    with torch.inference_mode():
        model(ids)   # warm-up
        pp = statistics.median(512 / timed(lambda: model(ids)) for _ in range(a.reps))
        prompt = ids[:, :8]
        gen = lambda: model.generate(prompt, max_new_tokens=128, min_new_tokens=128, do_sample=False,  # noqa: E731
                                     pad_token_id=0)
        gen()
        tg = statistics.median(128 / timed(gen) for _ in range(max(1, a.reps // 2)))
    del model
    train = train_tokens_per_s(torch, LlamaForCausalLM, cfg, a.reps)
    print(json.dumps({"peer": "pytorch %s eager, transformers generate" % torch.__version__, "dtype": a.dtype,
                      "gpu": torch.cuda.get_device_name(0), "pp512": round(pp, 1), "tg128": round(tg, 1),
                      "train_tok_s": round(train, 1), "train_shape": "4x512, AdamW, bf16 autocast"}))
    return 0


def train_tokens_per_s(torch, model_cls, cfg, reps, batch=4, seq=512):
    """Tokens/s of full training steps: forward under bf16 autocast, loss, backward, AdamW step."""
    torch.manual_seed(1)
    model = model_cls(cfg).to("cuda").train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, cfg.vocab_size, (batch, seq), device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(2):
        step()
    times = []
    for _ in range(max(2, reps)):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return batch * seq / statistics.median(times)


if __name__ == "__main__":
    sys.exit(main())
