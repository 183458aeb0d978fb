#!/usr/bin/env python3
"""serve_checks.py URL (run by serve_test.sh): `repro serve` (SmolLM2-135M-Instruct, --ctx 512 --max-tokens 16 --max-body 1048576
--max-conns 8) probed with the standard library only: wrong types and ranges are 400 errors naming the field
(OpenAI error objects, 404/405/413 included, limits stated with their values); chat and completions answer;
streaming sends the same text as server-sent events with [DONE] and usage; /v1/completions takes every prompt
form, returns top-N logprobs and echo scores that match llama.cpp's (an independent implementation:
../shared/reference/smollm2/score_f32.jsonl); idle, half-open and trickling connections do not block a new
client; a huge prompt is tokenized outside the generation lock. Prints one line per failed check; exits 1 on
any failure."""
import json
import os
import socket
import sys
import threading
import time
import urllib.error
import urllib.request

from checklib import check, host_port, summary

URL = sys.argv[1]
HOST, PORT = host_port(URL)
REF = os.path.join(os.environ.get("REPRO_REFERENCE", "../shared/reference"), "smollm2", "score_f32.jsonl")


def post(path, body, timeout=120):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(URL + path, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def error_of(status, ctype, text):
    """The error object of an answer, or None when it is not an OpenAI-style one."""
    try:
        e = json.loads(text)["error"]
        return e if "application/json" in ctype and isinstance(e["message"], str) and e["code"] == status else None
    except (ValueError, KeyError, TypeError):
        return None


MSG = [{"role": "user", "content": "What is the capital of France?"}]

# --- wrong types and ranges: 400 naming the field -------------------------------------------------------
bad = [
    ("chat", {"messages": MSG, "temperature": "abc"}, "temperature", "abc"),
    ("chat", {"messages": MSG, "max_tokens": "10"}, "max_tokens", "10"),
    ("chat", {"messages": MSG, "stream": "yes"}, "stream", "yes"),
    ("chat", {"messages": MSG, "top_p": 5}, "top_p", "5"),
    ("chat", {"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role", "wizard"),
    ("chat", {"messages": MSG, "n": 2}, "n", "n = 1"),
    ("chat", {"messages": MSG, "max_tokens": 1e9}, "max_tokens", "context length of 512"),
    ("chat", {"messages": MSG, "temperature": -1}, "temperature", "[0, 2]"),
    ("chat", {"messages": MSG, "seed": 1.5}, "seed", "integer"),
    ("chat", {"messages": MSG, "stop": [1]}, "stop", "string"),
    ("chat", {"messages": [{"role": "user", "content": 5}]}, "messages[0].content", "5"),
    ("chat", {"messages": []}, "messages", "non-empty"),
    ("chat", {"messages": MSG, "presence_penalty": 1}, "presence_penalty", "not supported"),
    ("chat", {"messages": MSG, "stream_options": {"include_usage": True}}, "stream_options", "stream"),
    ("comp", {"prompt": "Hi", "logprobs": "x"}, "logprobs", "integer"),
    ("comp", {"prompt": "Hi", "logprobs": 21}, "logprobs", "[0, 20]"),
    ("comp", {"prompt": "Hi", "echo": 1}, "echo", "true or false"),
    ("comp", {"prompt": [1.5]}, "prompt[0]", "token id"),
    ("comp", {"prompt": [[1, 2], [99999999]]}, "prompt[1][0]", "token id in [0, 49152)"),
    ("comp", {"prompt": 7}, "prompt", "string"),
    ("comp", {"prompt": "Hi", "max_tokens": 600}, "max_tokens", "context length of 512"),
    ("comp", {"prompt": list(range(600))}, "prompt", "context length is 512"),
    ("comp", {"prompt": "Hi", "max_tokens": -1}, "max_tokens", ">= 0"),
    ("comp", {"prompt": "Hi", "stream": True, "logprobs": 1}, "logprobs", "stream"),
]
for ep, body, field, says in bad:
    st, ct, text = post("/chat/completions" if ep == "chat" else "/completions", body)
    e = error_of(st, ct, text)
    check(f"{ep} {json.dumps(body)[:70]} -> 400 naming '{field}'",
          st == 400 and e is not None and e.get("param") == field and field in e["message"] and says in e["message"],
          f"(got {st} {text[:300]})")

# errors the HTTP layer answers itself are JSON too, with the limit stated
st, ct, text = post("/completions", b'{"prompt": "' + b"a" * (1 << 20) + b'"}')
e = error_of(st, ct, text)
check("a body over --max-body is a JSON 413 stating the limit", st == 413 and e is not None and "1048576" in e["message"], f"(got {st} {text[:200]})")
st, ct, text = post("/chat/completions", b'{"messages":')
check("bad JSON is a JSON 400", st == 400 and error_of(st, ct, text) is not None, text[:200])
st, ct, text = post("/nope", {})
check("unknown path is a JSON 404", st == 404 and error_of(st, ct, text) is not None, text[:200])
try:
    urllib.request.urlopen(URL + "/completions", timeout=30)
    st, ct, text = 200, "", ""
except urllib.error.HTTPError as ex:
    st, ct, text = ex.code, ex.headers.get("Content-Type", ""), ex.read().decode()
check("GET on /completions is a JSON 405", st == 405 and error_of(st, ct, text) is not None, text[:200])
s = socket.create_connection((HOST, PORT), timeout=30)
s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
raw = b""
while True:   # the reply closes the connection; headers and body may arrive in separate reads
    part = s.recv(4096)
    if not part: break
    raw += part
raw = raw.decode(errors="replace")
s.close()
check("a chunked request body is a JSON 501", raw.startswith("HTTP/1.1 501") and '"error"' in raw, raw[:200])

# --- chat, plain and streamed ------------------------------------------------------------------------
st, ct, text = post("/chat/completions", {"messages": MSG, "max_tokens": 12})
chat = json.loads(text) if st == 200 else {}
answer = chat.get("choices", [{}])[0].get("message", {}).get("content", "")
check("chat answers Paris", st == 200 and "Paris" in answer and chat["object"] == "chat.completion", text[:300])


def stream(path, body):
    """POST with stream: true; returns the list of data payloads (strings) of the events."""
    data = json.dumps(body).encode()
    req = urllib.request.Request(URL + path, data=data, headers={"Content-Type": "application/json"})
    events = []
    with urllib.request.urlopen(req, timeout=120) as r:
        ctype = r.headers.get("Content-Type", "")
        for line in r:
            line = line.decode().rstrip("\n")
            if line.startswith("data: "):
                events.append(line[6:])
            elif line:
                events.append("BAD LINE " + line)
    return ctype, events


ctype, ev = stream("/chat/completions", {"messages": MSG, "max_tokens": 12, "stream": True, "stream_options": {"include_usage": True}})
chunks = [json.loads(x) for x in ev[:-1]]
streamed = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
check("chat stream: text/event-stream, ends with [DONE]", "text/event-stream" in ctype and ev[-1] == "[DONE]", str(ev[-3:]))
check("chat stream: first delta has the role, text equals the non-streamed answer",
      chunks[0]["choices"][0]["delta"].get("role") == "assistant" and streamed == answer, f"{streamed!r} vs {answer!r}")
check("chat stream: last chunk carries usage equal to the non-streamed one",
      chunks[-1]["choices"] == [] and chunks[-1]["usage"] == chat.get("usage"), str(chunks[-1]))
check("chat stream: a finish_reason before the usage chunk",
      chunks[-2]["choices"][0]["finish_reason"] == chat["choices"][0]["finish_reason"], str(chunks[-2]))

# --- completions ---------------------------------------------------------------------------------------
st, ct, text = post("/completions", {"prompt": "The capital of France is", "max_tokens": 4, "logprobs": 3})
c = json.loads(text) if st == 200 else {}
lp = c.get("choices", [{}])[0].get("logprobs") or {}
ok = st == 200 and c["choices"][0]["text"].startswith(" Paris") and len(lp["tokens"]) == 4 and len(lp["top_logprobs"]) == 4
ok = ok and all(len(t) == 3 for t in lp["top_logprobs"]) and "".join(lp["tokens"]) == c["choices"][0]["text"]
# greedy: every generated token is the most likely one, with the same log-probability as in its top list
ok = ok and all(abs(t - max(top.values())) < 1e-6 for t, top in zip(lp["token_logprobs"], lp["top_logprobs"]))
ok = ok and lp["text_offset"][0] == len("The capital of France is") and c["usage"]["completion_tokens"] == 4
check("completions: greedy ' Paris' with top-3 logprobs per token, offsets after the prompt", ok, text[:400])

st, ct, text = post("/completions", {"prompt": ["The capital of France is", [504, 3575, 282, 4649, 314]], "max_tokens": 3})
c = json.loads(text) if st == 200 else {}
check("completions: a list of prompts (text and ids) gives one choice each, same ids same text",
      st == 200 and len(c["choices"]) == 2 and c["choices"][0]["text"] == c["choices"][1]["text"] and c["usage"]["prompt_tokens"] == 10,
      text[:300])
st, ct, text = post("/completions", {"prompt": [[504, 3575], [504]], "max_tokens": 1})
check("completions: a list of token-id lists", st == 200 and [x["index"] for x in json.loads(text)["choices"]] == [0, 1], text[:200])
many = ["Once upon a time", "The capital of France is", "def main():", "Once upon a time"]
st, ct, text = post("/completions", {"prompt": many, "max_tokens": 12, "temperature": 0.9, "seed": 5})
one = [json.loads(post("/completions", {"prompt": p, "max_tokens": 12, "temperature": 0.9, "seed": 5})[2])["choices"][0]["text"] for p in many]
check("completions: a list of prompts decoded together equals one request per prompt",
      st == 200 and [x["text"] for x in json.loads(text)["choices"]] == one, text[:300] + " vs " + str(one))
st, ct, text = post("/completions", {"prompt": "Count: one, two,", "max_tokens": 16, "stop": [","]})
check("completions: a stop string ends the text before it", st == 200 and "," not in json.loads(text)["choices"][0]["text"]
      and json.loads(text)["choices"][0]["finish_reason"] == "stop", text[:300])
texts = [json.loads(post("/completions", {"prompt": "Once upon a time", "max_tokens": 8, "temperature": 1.0, "seed": s})[2])["choices"][0]["text"]
         for s in (7, 7, 8)]
check("completions: the same seed gives the same sampled text", texts[0] == texts[1], str(texts))
ctype, ev = stream("/completions", {"prompt": "The capital of France is", "max_tokens": 4, "stream": True})
streamed = "".join(json.loads(x)["choices"][0]["text"] for x in ev[:-1])
check("completions stream: the same text as the non-streamed one", ev[-1] == "[DONE]" and streamed.startswith(" Paris"), str(ev))

# echo scores against llama.cpp's F32 path (independent implementation, same weights)
if os.path.exists(REF):
    for line in open(REF):
        d = json.loads(line)
        st, ct, text = post("/completions", {"prompt": d["tokens"], "max_tokens": 0, "echo": True, "logprobs": 5})
        r = json.loads(text)["choices"][0] if st == 200 else {}
        lp = r.get("logprobs") or {}
        ours, ref = lp.get("token_logprobs", [None])[1:], [p["logprob"] for p in d["positions"]]
        diffs = [abs(a - b) for a, b in zip(ours, ref)] or [1e9]
        top_diffs = [abs(max(t.values()) - p["top5"][0][1]) for t, p in zip(lp.get("top_logprobs", [None])[1:], d["positions"])] or [1e9]
        check(f"echo of {d['name']}: {len(ours)} token log-probs within 0.005 (mean) / 0.05 (max) of llama.cpp F32",
              st == 200 and lp["token_logprobs"][0] is None and len(ours) == len(ref) and r["text"] == d["text"]
              and sum(diffs) / len(diffs) < 0.005 and max(diffs) < 0.05 and max(top_diffs) < 0.05,
              f"(mean {sum(diffs) / len(diffs):.5f}, max {max(diffs):.4f}, top-1 max {max(top_diffs):.4f})")
else:
    print(f"note: {REF} not found; the echo reference check did not run")

# lm-evaluation-harness's loglikelihood request (local-completions): echo + max_tokens 1 + logprobs 1
ctx, cont = [504, 3575, 282, 4649, 314], [7042]
st, ct, text = post("/completions", {"prompt": [ctx + cont], "max_tokens": 1, "logprobs": 1, "echo": True, "temperature": 0, "seed": 1234})
ch = json.loads(text)["choices"][0] if st == 200 else {}
lps = ch.get("logprobs", {}).get("token_logprobs", [])
tops = ch.get("logprobs", {}).get("top_logprobs", [])
greedy = all(t == max(top.values()) for t, top in zip(lps[len(ctx):-1], tops[len(ctx):-1]))
check("lm-eval's loglikelihood request: prompt + 1 generated token scored, ' Paris' greedy after the context",
      st == 200 and len(lps) == len(ctx) + len(cont) + 1 and greedy and -1 < sum(lps[len(ctx):-1]) < 0, text[:300])

# the same request when the one generated token is the end of generation: still scored (lm-eval drops it
# with [:-1], so without it the continuation's last token would be lost)
eog_prompt = "Question: Research in which of these areas has the greatest impact on the environment?\nAnswer: bacteria to clean up oil spills"
st, ct, text = post("/completions", {"prompt": eog_prompt, "max_tokens": 1, "logprobs": 1, "echo": True, "temperature": 0})
ch = json.loads(text)["choices"][0] if st == 200 else {}
n_prompt = json.loads(text)["usage"]["prompt_tokens"] if st == 200 else 0
toks = ch.get("logprobs", {}).get("tokens", [])
check("echo + max_tokens 1 ending at end-of-generation: the end token is scored, counted and not in the text",
      st == 200 and len(toks) == n_prompt + 1 and toks[-2] == " spills" and toks[-1].startswith("<|")
      and ch["text"] == eog_prompt and json.loads(text)["usage"]["completion_tokens"] == 1, text[-400:])

# --- slow and idle clients cannot starve others ------------------------------------------------------------
idle = []
for k in range(24):                       # 3x --max-conns: idle, half-open (partial head), trickling
    s = socket.create_connection((HOST, PORT), timeout=30)
    if k % 3 == 1:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n")
    elif k % 3 == 2:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nContent-Length: 1000\r\n\r\n{")
    idle.append(s)
time.sleep(0.3)
t0 = time.time()
st, ct, text = post("/completions", {"prompt": "Hello", "max_tokens": 1}, timeout=20)
dt = time.time() - t0
check("a new client is answered while 24 idle/half-open/trickling connections fill 8 slots", st == 200 and dt < 10, f"(status {st}, {dt:.1f} s)")
for s in idle:
    s.close()

# --- a huge prompt is tokenized outside the generation lock ----------------------------------------------------
big = {"prompt": "word " * 200000, "max_tokens": 1}          # ~1 MB: well past the context once tokenized
res = {}


def send_big():
    t = time.time()
    res["big"] = post("/completions", big, timeout=120)
    res["big_t"] = time.time() - t


th = threading.Thread(target=send_big)
t0 = time.time()
th.start()
time.sleep(0.05)
st, ct, text = post("/completions", {"prompt": "Hello", "max_tokens": 1}, timeout=60)
small_t = time.time() - t0
th.join()
e = error_of(*res["big"])
check("a huge prompt gets a 400 stating the context length", res["big"][0] == 400 and e and "512" in e["message"], str(res["big"])[:300])
check("a small request is not held behind a huge prompt's tokenization",
      st == 200 and (small_t < res["big_t"] or small_t < 1.0), f"(small {small_t:.2f} s, huge {res.get('big_t', 0):.2f} s)")

sys.exit(summary("serve_checks.py"))
