#!/usr/bin/env bash
# serve_lmeval.sh [N] [REPRO]: arc_easy through `repro serve` the way lm-evaluation-harness's
# local-completions model scores multiple choice, beside `repro eval` on the same N items (default 100,
# the seeded subset `repro eval --limit N` takes). Run by hand (not part of make test or make bench).
# lm-eval itself needs torch, which PyPI serves only as a multi-GB CUDA build: so tests/lmeval_protocol.py
# repeats lm-eval's request and parsing (echo, max_tokens 1, logprobs 1; sum of token_logprobs[ctxlen:-1];
# is_greedy from top_logprobs), with ctxlen from the server's own tokenization of the context. Prints both
# accuracies with their standard errors and the largest per-choice log-likelihood difference.
set -u
n=${1:-100}
REPRO=${2:-bin/repro}
model=${REPRO_MIRROR:-../shared/data}/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf
[ -f "$model" ] || { echo "skip: $model not found"; exit 0; }
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
cat >"$tmp/items.lua" <<'LUA'
-- the seeded subset and per-choice log-likelihoods of `repro eval`, one JSON line per item
local eval = require("repro.eval")
local model = require("repro.model")
local n, path = tonumber(arg[1]), arg[2]
local t = eval.load("arc_easy")
local m = model.load(path)
local r = eval.evaluate(m, t, { limit = n, per_item = true })
local function q(s) return '"' .. s:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"' end
for _, it in ipairs(r.items) do
  local item = t:item(it.index)
  local ch, ll = {}, {}
  for c = 1, #item.choices do ch[c] = q(item.choices[c]); ll[c] = string.format("%.17g", it.ll[c]) end
  print(string.format('{"index":%d,"context":%s,"choices":[%s],"gold":%d,"ll":[%s]}', it.index,
    q(t:prefix(it.index, 0) .. item.context), table.concat(ch, ","), item.gold - 1, table.concat(ll, ",")))
end
LUA
echo "repro eval: scoring $n arc_easy items in-process ..."
t0=$(date +%s)
"$REPRO" exec "$tmp/items.lua" "$n" "$model" >"$tmp/items.jsonl" || { echo "the in-process scoring failed"; exit 1; }
t1=$(date +%s)
"$REPRO" serve "$model" --port 0 --ctx 2048 >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 1 150); do grep -q listening "$tmp/out" 2>/dev/null && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
url=$(sed -n 's/^listening on //p' "$tmp/out")
[ -n "$url" ] || { echo "the server did not start"; cat "$tmp/err"; exit 1; }
echo "repro serve: the same items through lm-eval's local-completions requests at $url ..."
python3 tests/lmeval_protocol.py "$url" "$tmp/items.jsonl"; rc=$?
echo "(in-process scoring $((t1 - t0)) s; load: $(uptime | sed 's/.*load average: //'))"
exit $rc
