#!/usr/bin/env python3
"""serve_queue_checks.py URL PID (run by serve_queue_test.sh): `repro serve` (SmolLM2-135M-Instruct, --ctx 512
--slots 4 --queue 2) under concurrent clients, standard library only:
1. the same requests (seeded sampling, greedy, a stop string, top-N logprobs, echo, chat, streaming) give the
   same answers sent all at once as sent one at a time, and /health shows they really shared decoding steps;
2. with 4 long generations in the slots and 2 requests waiting, the next request is a 429 with an OpenAI error
   object and Retry-After (streaming or not), the waiting ones still complete;
3. clients that hang up mid-stream free their slots (counted as cancelled in /health);
4. SIGTERM (to PID) while requests run and wait: the waiting one gets a 503 with Retry-After, the streams end
   with an error event, the server exits (the shell checks exit 0).
Waits poll /health for the state they need, never sleep a fixed time and hope. Exits 1 on any failure."""
import http.client
import json
import os
import signal
import sys
import threading
import time

from checklib import check, get_json, host_port, summary

URL, PID = sys.argv[1], int(sys.argv[2])
HOST, PORT = host_port(URL)


def request(path, body, timeout=300):
    """POST /v1 + path; returns (status, headers dict, text)."""
    c = http.client.HTTPConnection(HOST, PORT, timeout=timeout)
    c.request("POST", "/v1" + path, json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    out = (r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode())
    c.close()
    return out


def health():
    return get_json(HOST, PORT, "/health")


def wait_for(cond, what, limit=120):
    """Poll /health until cond(h) holds; False (and a failed check) after limit seconds."""
    t0 = time.time()
    while time.time() - t0 < limit:
        h = health()
        if cond(h):
            return True
        time.sleep(0.05)
    check(f"waiting for {what}", False, f"(last /health: {health()})")
    return False


def stream_events(path, body):
    """POST with stream: true; returns the data payloads."""
    c = http.client.HTTPConnection(HOST, PORT, timeout=300)
    c.request("POST", "/v1" + path, json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    ev = [line.decode().rstrip("\n")[6:] for line in r if line.startswith(b"data: ")]
    c.close()
    return r.status, ev


def answer(kind, body):
    """One request's comparable result: texts, finish reasons, tokens and their log-probabilities."""
    if kind == "stream":
        st, ev = stream_events("/completions", body)
        text = "".join(json.loads(x)["choices"][0]["text"] for x in ev[:-1] if json.loads(x)["choices"])
        return {"status": st, "text": text, "done": ev[-1:] == ["[DONE]"]}
    st, _, text = request("/chat/completions" if kind == "chat" else "/completions", body)
    if st != 200:
        return {"status": st, "body": text[:300]}
    d = json.loads(text)
    out = {"status": st, "usage": d["usage"], "choices": []}
    for ch in d["choices"]:
        lp = ch.get("logprobs") or {}
        if kind == "chat":
            c = {"text": ch["message"]["content"], "finish": ch["finish_reason"],
                 "tokens": [t["token"] for t in (lp.get("content") or [])], "lps": [t["logprob"] for t in (lp.get("content") or [])]}
        else:
            c = {"text": ch["text"], "finish": ch["finish_reason"], "tokens": lp.get("tokens", []),
                 "lps": lp.get("token_logprobs", []), "top": [sorted(t) if t else t for t in lp.get("top_logprobs", [])]}
        out["choices"].append(c)
    return out


def same(a, b):
    """Equal answers: everything exact except log-probabilities, which may differ by f32 rounding of a batched step."""
    if a.keys() != b.keys():
        return False
    for k in a:
        if k == "choices":
            if len(a[k]) != len(b[k]):
                return False
            for x, y in zip(a[k], b[k]):
                if {i: x[i] for i in x if i != "lps"} != {i: y[i] for i in y if i != "lps"}:
                    return False
                if len(x["lps"]) != len(y["lps"]) or any((p is None) != (q is None) or (p is not None and abs(p - q) > 2e-3)
                                                          for p, q in zip(x["lps"], y["lps"])):
                    return False
        elif a[k] != b[k]:
            return False
    return True


# --- 1. concurrent == one at a time (6 prompts: 4 slots + 2 waiting) ------------------------------------------------------------------------
JOBS = [
    ("comp", {"prompt": "Once upon a time", "max_tokens": 24, "temperature": 0.9, "seed": 11}),
    ("comp", {"prompt": "Count: one, two, three,", "max_tokens": 20, "temperature": 0, "logprobs": 3, "stop": [" six"]}),
    ("comp", {"prompt": ["def main():", "My favourite colour is"], "max_tokens": 24, "temperature": 1.0, "top_p": 0.9, "seed": 3}),
    ("chat", {"messages": [{"role": "user", "content": "Name three fruits."}], "max_tokens": 24, "temperature": 0.7, "seed": 5,
              "logprobs": True, "top_logprobs": 2}),
    ("stream", {"prompt": "In the morning I", "max_tokens": 24, "temperature": 0.8, "seed": 9, "stream": True}),
]
ECHO = ("comp", {"prompt": [504, 3575, 282, 4649, 314, 7042], "max_tokens": 2, "echo": True, "logprobs": 2, "temperature": 0})

alone = [answer(k, b) for k, b in JOBS]
echo_alone = answer(*ECHO)
check("every request answers alone", all(a["status"] == 200 for a in alone + [echo_alone]), str(alone)[:400])
h0 = health()
together = [None] * len(JOBS)


def run(i):
    together[i] = answer(*JOBS[i])


threads = [threading.Thread(target=run, args=(i,)) for i in range(len(JOBS))]
for t in threads:
    t.start()
for t in threads:
    t.join()
h1 = health()
steps, rows = h1["steps"] - h0["steps"], h1["mean_batch"] * h1["steps"] - h0["mean_batch"] * h0["steps"]
check("the concurrent requests shared decoding steps (mean rows per step > 1.5)", steps > 0 and rows / steps > 1.5,
      f"({rows:.0f} rows in {steps} steps)")
for i, (k, b) in enumerate(JOBS):
    check(f"concurrent {k} {json.dumps(b)[:60]} equals the same request served alone", same(alone[i], together[i]),
          f"\n  alone:    {json.dumps(alone[i])[:500]}\n  together: {json.dumps(together[i])[:500]}")

# echo scoring as a job's prefill while others decode
bg = [threading.Thread(target=run, args=(i,)) for i in (0, 3)]
for t in bg:
    t.start()
echo_busy = answer(*ECHO)
for t in bg:
    t.join()
check("echo + logprobs while other requests decode equals echo alone", same(echo_alone, echo_busy),
      f"{json.dumps(echo_alone)[:300]} vs {json.dumps(echo_busy)[:300]}")

# --- 2. queue full: 429 --------------------------------------------------------------------------------
LONG = {"prompt": "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,", "max_tokens": 480, "temperature": 0, "stream": True}


def open_stream(body):
    """Start a streamed request and read its first event; returns the open connection and response."""
    c = http.client.HTTPConnection(HOST, PORT, timeout=300)
    c.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    first = r.readline()
    while first and not first.startswith(b"data: "):
        first = r.readline()
    return c, r, first


h0 = health()
longs = [open_stream(LONG) for _ in range(4)]
check("4 long streams started", all(r.status == 200 and f.startswith(b"data: ") for _, r, f in longs), str([f for _, _, f in longs]))
wait_for(lambda h: h["active"] == 4, "4 active slots")
queued = [None, None]


def run_queued(i):
    queued[i] = request("/completions", {"prompt": "Hello, my name is", "max_tokens": 4, "temperature": 0})


qt = [threading.Thread(target=run_queued, args=(i,)) for i in range(2)]
for t in qt:
    t.start()
wait_for(lambda h: h["waiting"] == 2, "2 waiting requests")
for kind, body in (("plain", {"prompt": "Hi", "max_tokens": 2}), ("streaming", {"prompt": "Hi", "max_tokens": 2, "stream": True})):
    st, hd, text = request("/completions", body)
    try:
        e = json.loads(text)["error"]
    except (ValueError, KeyError, TypeError):
        e = None
    check(f"a {kind} request beyond 4 slots + 2 waiting is a 429 with an OpenAI error object and Retry-After",
          st == 429 and e is not None and e["code"] == 429 and e["type"] and "param" in e and "--queue" in e["message"]
          and "application/json" in hd.get("content-type", "") and hd.get("retry-after", "").isdigit(), f"({st} {hd} {text[:300]})")
check("/health counts the refusals", health()["refused"] - h0["refused"] == 2, str(health()))

# --- 3. hanging up frees the slot ------------------------------------------------------------------------
for c, r, _ in longs:
    r.close()                             # the response holds the socket (the stream answers Connection: close)
    c.close()
wait_for(lambda h: h["cancelled"] - h0["cancelled"] >= 4 and h["active"] == 0 and h["waiting"] == 0, "the 4 hung-up streams cancelled")
for t in qt:
    t.join()
check("the waiting requests are served once slots free up", all(q and q[0] == 200 for q in queued), str(queued)[:300])
st, _, text = request("/completions", {"prompt": "Hi", "max_tokens": 2})
check("the server takes requests again", st == 200, text[:200])

# --- 4. SIGTERM: 503 for the waiting, an error event for the streaming -------------------------------------
longs = [open_stream(LONG) for _ in range(4)]
wait_for(lambda h: h["active"] == 4, "4 active slots before SIGTERM")
queued = [None]
qt = [threading.Thread(target=run_queued, args=(0,))]
qt[0].start()
wait_for(lambda h: h["waiting"] == 1, "1 waiting request before SIGTERM")
os.kill(PID, signal.SIGTERM)
qt[0].join()
st, hd, text = queued[0]
check("SIGTERM: the waiting request is a 503 with Retry-After", st == 503 and "retry-after" in hd and '"code":503' in text,
      f"({st} {hd} {text[:200]})")
tails = []
for c, r, _ in longs:
    try:
        tails.append([line.decode().strip() for line in r if line.startswith(b"data: ")][-2:])
    except (OSError, http.client.HTTPException) as ex:
        tails.append([f"exception {ex}"])
check("SIGTERM: each stream ends with a 503 error event and [DONE]",
      all(len(t) == 2 and '"code":503' in t[0] and t[1] == "data: [DONE]" for t in tails), str(tails)[:400])

sys.exit(summary("serve_queue_checks.py"))
