#!/usr/bin/env python3
"""serve_prefill_checks.py URL PID (run by serve_prefill_test.sh): `repro serve` (SmolLM2-135M-Instruct, --ctx 2048
--slots 5 --prefill-chunk 32) with long prompts arriving while other requests stream, standard library only:
1. slot caches are sized to the request and freed after it: 4 concurrent short requests raise the server's
   resident memory (VmRSS of PID) by less than one full 2048-position cache would, and /health's kv_mb is back
   to 0 once they are done (before: every slot kept a 2048-position cache, about 110 MB each);
2. a 400-token prompt arriving while 3 greedy streams decode is prefilled in chunks between their tokens:
   each stream receives at least 3 pieces of text between the long request's arrival and its first token
   (before: none, the whole prefill ran between two of their steps), and /health counts its prompt tokens; a
   short prompt sent during that prefill gets its first token before the long one does (prefills take turns);
3. the long request's text, and each stream's, equal the same requests served without the others; an echo
   request with logprobs of a 400-token prompt (scored in pieces) equals itself served alone.
Exits 1 on any failure."""
import http.client
import json
import sys
import threading
import time

from checklib import check, get_json, host_port, summary

URL, PID = sys.argv[1], int(sys.argv[2])
HOST, PORT = host_port(URL)


def request(body, timeout=600):
    """POST /v1/completions; returns (status, parsed body or text)."""
    c = http.client.HTTPConnection(HOST, PORT, timeout=timeout)
    c.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    st, text = r.status, r.read().decode()
    c.close()
    try:
        return st, json.loads(text)
    except ValueError:
        return st, text


def health():
    return get_json(HOST, PORT, "/health")


def rss_mb():
    with open(f"/proc/{PID}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return -1


def stream(body, arrivals):
    """POST a streaming completion; appends (time, text) per non-empty text piece; returns the whole text."""
    c = http.client.HTTPConnection(HOST, PORT, timeout=600)
    c.request("POST", "/v1/completions", json.dumps(dict(body, stream=True)), {"Content-Type": "application/json"})
    r = c.getresponse()
    text = ""
    for line in r:
        if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
            continue
        d = json.loads(line[6:])
        piece = "".join(ch.get("text", "") for ch in d.get("choices", []))
        if piece:
            arrivals.append((time.time(), piece))
            text += piece
    c.close()
    return text


# --- 1. caches sized to the request, freed after it -------------------------------------------------------
SHORT = {"prompt": "The weather today is", "max_tokens": 8, "temperature": 0}
st, _ = request(SHORT)                                  # warm-up: the decode layout is built
check("a short request answers", st == 200)
rss0 = rss_mb()
res = [None] * 4


def run_short(i):
    res[i] = request(dict(SHORT, prompt=f"Item {i}: the weather today is"))


ts = [threading.Thread(target=run_short, args=(i,)) for i in range(4)]
for t in ts:
    t.start()
for t in ts:
    t.join()
rss1 = rss_mb()
h = health()
check("4 concurrent short requests answer", all(r and r[0] == 200 for r in res), str(res)[:300])
check("4 slots used for short requests add less than one 2048-position cache to VmRSS (< 64 MB)", rss1 - rss0 < 64,
      f"(VmRSS {rss0:.0f} -> {rss1:.0f} MB)")
check("/health: no slot holds a cache when idle (kv_mb 0), the chunk is reported", h.get("kv_mb") == 0 and h.get("prefill_chunk") == 32,
      str(h))

# --- 2. a long prompt arriving among streams ------------------------------------------------------------------
LONG_IDS = [200 + (i * 7919) % 40000 for i in range(400)]
LONG = {"prompt": LONG_IDS, "max_tokens": 6, "temperature": 0}
STREAMS = [{"prompt": f"{a}, {a + 1}, {a + 2}, {a + 3}, {a + 4},", "max_tokens": 32, "temperature": 0} for a in (1, 20, 300)]

QUICK = {"prompt": "Hello, my name is", "max_tokens": 4, "temperature": 0}
long_alone = stream(LONG, [])
quick_alone = stream(QUICK, [])
streams_alone = [None] * 3


def run_stream(i, out, arr):
    out[i] = stream(STREAMS[i], arr[i])


def run_streams(out, arr):
    th = [threading.Thread(target=run_stream, args=(i, out, arr)) for i in range(3)]
    for t in th:
        t.start()
    return th


for t in run_streams(streams_alone, [[], [], []]):
    t.join()
h0 = health()
streams_busy, arr = [None] * 3, [[], [], []]
th = run_streams(streams_busy, arr)
t_wait = time.time()
while min(len(a) for a in arr) < 3 and time.time() - t_wait < 300 and any(t.is_alive() for t in th):
    time.sleep(0.01)
long_arr, long_out = [], [None]
t0 = time.time()
lt = threading.Thread(target=lambda: long_out.__setitem__(0, stream(LONG, long_arr)))
lt.start()
# a short prompt arriving once the long one's prefill is under way takes its turn between the long one's pieces
t_wait = time.time()
while health()["prefill_tokens"] - h0["prefill_tokens"] < 64 and time.time() - t_wait < 300 and lt.is_alive():
    time.sleep(0.005)
quick_arr = []
t_quick = time.time()
quick_busy = stream(QUICK, quick_arr)
lt.join()
for t in th:
    t.join()
long_busy = long_out[0]
h1 = health()
t1 = long_arr[0][0] if long_arr else time.time()
during = [sum(1 for t, _ in a if t0 < t < t1) for a in arr]
check("each stream got >= 3 pieces of text while the 400-token prompt was prefilled", min(during) >= 3,
      f"(pieces during the {t1 - t0:.2f} s prefill: {during}; chunk 32)")
check("each stream went on after the long prompt's first token (the check saw the whole prefill)",
      all(a and a[-1][0] > t1 for a in arr), str([len(a) for a in arr]))
check("/health counts the long prompt's tokens as prefill", h1["prefill_tokens"] - h0["prefill_tokens"] >= 400,
      f"({h0['prefill_tokens']} -> {h1['prefill_tokens']})")
check("a short prompt sent during the long one's prefill got its first token before the long one did (prefill takes turns)",
      quick_arr and long_arr and quick_arr[0][0] < long_arr[0][0],
      f"(short sent at +{t_quick - t0:.2f} s, its first token at +{quick_arr[0][0] - t0 if quick_arr else -1:.2f} s, "
      f"the long one's at +{t1 - t0:.2f} s)")
check("the short prompt's text equals it served alone", quick_busy == quick_alone, f"{quick_alone!r} vs {quick_busy!r}")
check("the long prompt's text among streams equals it served alone", long_busy == long_alone and long_alone,
      f"\n  alone: {long_alone!r}\n  busy:  {long_busy!r}")
check("each stream's text equals it served without the long prompt", streams_busy == streams_alone,
      f"\n  alone: {streams_alone}\n  busy:  {streams_busy}")

# --- 3. a long echo scored in pieces while others decode ----------------------------------------------------
ECHO = {"prompt": LONG_IDS, "max_tokens": 2, "echo": True, "logprobs": 2, "temperature": 0}
st_a, echo_alone = request(ECHO)
bg = run_streams([None] * 3, [[], [], []])
st_b, echo_busy = request(ECHO)
for t in bg:
    t.join()
ok = st_a == 200 and st_b == 200
la = echo_alone["choices"][0]["logprobs"] if ok else {}
lb = echo_busy["choices"][0]["logprobs"] if ok else {}
check("echo of a 400-token prompt scores every token (402 entries, the first null)",
      ok and len(la["token_logprobs"]) == 402 and la["token_logprobs"][0] is None, str(echo_alone)[:300])
check("echo of a 400-token prompt while others decode equals it alone (tokens, text, top lists; log-probs within 2e-3)",
      ok and la["tokens"] == lb["tokens"] and echo_alone["choices"][0]["text"] == echo_busy["choices"][0]["text"]
      and [sorted(t) if t else t for t in la["top_logprobs"]] == [sorted(t) if t else t for t in lb["top_logprobs"]]
      and all((p is None) == (q is None) and (p is None or abs(p - q) <= 2e-3) for p, q in zip(la["token_logprobs"], lb["token_logprobs"])),
      f"({st_a}, {st_b})")

sys.exit(summary("serve_prefill_checks.py"))
