#!/usr/bin/env python3
"""lmeval_protocol.py URL ITEMS.jsonl (run by bench/serve_lmeval.sh): multiple-choice scoring through an
OpenAI-compatible /v1/completions endpoint as lm-evaluation-harness's `local-completions` model does it
(lm_eval/models/openai_completions.py: payload {prompt, max_tokens: 1, logprobs: 1, echo: true,
temperature: 0, seed}; loglikelihood = sum(token_logprobs[ctxlen:-1]); is_greedy = each of those equals the
max of its top_logprobs), with the context's token count taken from the server's tokenization of the context
alone, as lm-eval's _encode_pair does with its tokenizer. Each ITEMS line: context, choices, gold and `ll`,
the in-process log-likelihoods of `repro eval`. Prints acc / acc_norm (length in characters, as lm-eval) for
both and the largest log-likelihood difference; exits 1 when the accuracies differ by more than one
standard error."""
import json
import math
import sys
import urllib.request

url, path = sys.argv[1], sys.argv[2]


def post(body):
    req = urllib.request.Request(url + "/completions", json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as r:
        return json.loads(r.read())


def acc_se(xs):
    m = sum(xs) / len(xs)
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1) / len(xs)) if len(xs) > 1 else 0.0


items = [json.loads(line) for line in open(path)]
served_acc, served_norm, eval_acc, eval_norm, worst = [], [], [], [], 0.0
for it in items:
    ctx = it["context"]
    ctxlen = len(post({"prompt": ctx, "max_tokens": 0, "echo": True, "logprobs": 0})["choices"][0]["logprobs"]["tokens"])
    out = post({"prompt": [ctx + " " + c for c in it["choices"]], "max_tokens": 1, "logprobs": 1, "echo": True,
                "temperature": 0, "seed": 1234})
    lls = []
    for ch in sorted(out["choices"], key=lambda c: c["index"]):
        lps = ch["logprobs"]["token_logprobs"][ctxlen:-1]
        lls.append(sum(lps))
    diff = max(abs(a - b) for a, b in zip(lls, it["ll"]))
    if diff > 1e-2:
        print(f"item {it['index']}: served {lls} vs repro eval {it['ll']}", file=sys.stderr)
    worst = max(worst, diff)
    lens = [len(" " + c) for c in it["choices"]]
    for got, src in ((served_acc, lls), (eval_acc, it["ll"])):
        got.append(1.0 if max(range(len(src)), key=lambda k: src[k]) == it["gold"] else 0.0)
    for got, src in ((served_norm, lls), (eval_norm, it["ll"])):
        got.append(1.0 if max(range(len(src)), key=lambda k: src[k] / lens[k]) == it["gold"] else 0.0)
sa, sse = acc_se(served_acc)
ea, ese = acc_se(eval_acc)
na, nse = acc_se(served_norm)
ena, ense = acc_se(eval_norm)
print(f"arc_easy, {len(items)} items: repro serve + lm-eval protocol acc {100 * sa:.2f} ± {100 * sse:.2f}, acc_norm {100 * na:.2f} ± {100 * nse:.2f}")
print(f"                      repro eval (in-process)      acc {100 * ea:.2f} ± {100 * ese:.2f}, acc_norm {100 * ena:.2f} ± {100 * ense:.2f}")
print(f"largest per-choice log-likelihood difference: {worst:.2e}")
sys.exit(0 if abs(sa - ea) <= max(sse, ese) else 1)
