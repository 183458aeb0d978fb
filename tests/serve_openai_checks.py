#!/usr/bin/env python3
"""serve_openai_checks.py URL (run by serve_openai_test.sh): the official `openai` Python package against
`repro serve`: models.list, a chat completion, the same chat streamed (text equal, usage in the last chunk),
a completion with top-N logprobs, an echo-scored completion, and a 400 surfacing as openai.BadRequestError
with the field named. Exits 1 on any failure."""
import sys

import openai
from checklib import check, summary

client = openai.OpenAI(base_url=sys.argv[1], api_key="unused", max_retries=0, timeout=120)


models = client.models.list()
mid = models.data[0].id
check("models.list names the served model", len(models.data) == 1 and "SmolLM2" in mid, str(models))

msgs = [{"role": "user", "content": "What is the capital of France?"}]
r = client.chat.completions.create(model=mid, messages=msgs, max_tokens=12, temperature=0)
answer = r.choices[0].message.content
check("chat: answers Paris", "Paris" in answer and r.usage.completion_tokens > 0, str(r))

text, usage, finish = "", None, None
for chunk in client.chat.completions.create(model=mid, messages=msgs, max_tokens=12, temperature=0, stream=True,
                                            stream_options={"include_usage": True}):
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
        finish = chunk.choices[0].finish_reason or finish
    if chunk.usage:
        usage = chunk.usage
check("chat stream: same text, usage in the last chunk", text == answer and usage is not None
      and usage.total_tokens == r.usage.total_tokens and finish == r.choices[0].finish_reason, f"{text!r} {usage}")

r = client.chat.completions.create(model=mid, messages=msgs, max_tokens=4, temperature=0, logprobs=True, top_logprobs=2)
content = r.choices[0].logprobs.content
check("chat logprobs: one entry per token with 2 alternatives, greedy token first",
      len(content) == r.usage.completion_tokens and all(len(c.top_logprobs) == 2 and c.top_logprobs[0].logprob == c.logprob
                                                        for c in content), str(r.choices[0].logprobs)[:300])

c = client.completions.create(model=mid, prompt="The capital of France is", max_tokens=4, temperature=0, logprobs=3)
plain = c.choices[0].text
lp = c.choices[0].logprobs
check("completions: ' Paris' with top-3 logprobs per token",
      c.choices[0].text.startswith(" Paris") and len(lp.tokens) == 4 and all(len(t) == 3 for t in lp.top_logprobs)
      and abs(lp.token_logprobs[0] - max(lp.top_logprobs[0].values())) < 1e-6, str(c)[:400])

c = client.completions.create(model=mid, prompt=[[504, 3575, 282, 4649, 314, 7042]], max_tokens=0, echo=True, logprobs=1)
lp = c.choices[0].logprobs
check("completions echo: the prompt's own log-probs, first null, ' Paris' the top choice after the context",
      c.choices[0].text == "The capital of France is Paris" and lp.token_logprobs[0] is None and len(lp.token_logprobs) == 6
      and lp.token_logprobs[5] == max(lp.top_logprobs[5].values()), str(c)[:400])

text = "".join(ch.choices[0].text for ch in client.completions.create(model=mid, prompt="The capital of France is", max_tokens=4,
                                                                        temperature=0, stream=True))
check("completions stream: same text as without streaming", text == plain, f"{text!r} vs {plain!r}")

try:
    client.chat.completions.create(model=mid, messages=msgs, temperature=5)
    check("a bad value raises BadRequestError", False, "no error")
except openai.BadRequestError as e:
    check("a bad value raises BadRequestError naming the field", e.status_code == 400 and "temperature" in str(e), str(e))

sys.exit(summary(f"serve_openai_checks.py (openai {openai.__version__})"))
