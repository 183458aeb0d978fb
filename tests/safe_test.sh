#!/usr/bin/env bash
# safe_test.sh: the HTTP path end to end with the project's own server: `repro serve` runs the local
# SmolLM2-135M model on loopback; the SAFE plugin's OpenAI-compatible backend generates through it into the
# cache; a rerun and a replay make zero network calls and give the same texts; the in-process backend gives
# the served text; malformed requests get
# OpenAI-shaped 4xx errors; SIGTERM stops the server cleanly; the local backend's label scoring gives every
# rated fact a verdict. Skips when the model is not in the mirror.
set -u
REPRO=${REPRO:-bin/repro}
REPRO=$(cd "$(dirname "$REPRO")" && pwd)/$(basename "$REPRO")
model=${REPRO_MIRROR:-}/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf
if [ -z "${REPRO_MIRROR:-}" ] || [ ! -f "$model" ]; then echo "skip [mirror]: SmolLM2-135M-Instruct not in REPRO_MIRROR"; exit 0; fi
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
. "$(dirname "$0")/check.sh"

"$REPRO" serve "$model" --port 0 --ctx 512 --max-tokens 16 >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 1 100); do grep -q listening "$tmp/out" 2>/dev/null && break; sleep 0.2; done
url=$(sed -n 's/^listening on //p' "$tmp/out")
check "server started" "[ -n '$url' ]"
[ -n "$url" ] || { cat "$tmp/err" >&2; exit 1; }

code() { curl -s -o "$tmp/body" -w '%{http_code}' "$@"; }
check "models listed" "[ \"\$(code $url/models)\" = 200 ] && grep -q SmolLM2 $tmp/body"
check "bad JSON is a 400 error object" "[ \"\$(code -d '{\"messages\":' $url/chat/completions)\" = 400 ] && grep -q '\"error\"' $tmp/body"
check "missing messages is a 400" "[ \"\$(code -d '{}' $url/chat/completions)\" = 400 ]"
check "a bad field is a 400 naming it" "[ \"\$(code -d '{\"stream\":\"yes\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}' $url/chat/completions)\" = 400 ] && grep -q '\"param\":\"stream\"' $tmp/body"
check "unknown path is a 404" "[ \"\$(code $url/nope)\" = 404 ]"
check "GET on completions is a 405" "[ \"\$(code $url/chat/completions)\" = 405 ]"

cat >"$tmp/gen.lua" <<LUA
local C = require("repro.safe")
local url, dir, model = arg[1], arg[2], arg[3]
local prompts = { "Say hello.", "Name one color." }
local function run(llm, replay)
  local cache = C.cache(dir .. "/cache.db")
  local g = C.generate(llm, prompts, { cache = cache, replay = replay, llm_name = "openai:smol", max_tokens = 8 })
  local st = cache:stats()
  cache:close()
  return g, st
end
local llm = C.openai { base_url = url, model = "smol", max_retries = 2, timeout = 300 }
local g1, s1 = run(llm, false)
local g2, s2 = run(llm, false)
local g3, s3 = run(nil, true)
local ok = true
for i = 1, #prompts do
  ok = ok and type(g1[i].text) == "string" and #g1[i].text > 0 and g1[i].completion_tokens >= 1
  ok = ok and g2[i].text == g1[i].text and g3[i].text == g1[i].text and g2[i].cached and g3[i].cached
end
-- the in-process backend (no HTTP) answers greedy requests exactly as the server does
local loc = C.local_model(model, { ctx = 512 })
local same_local = loc:complete(prompts[1], { max_tokens = 8 }) == g1[1].text
loc:close()
ok = ok and same_local
print(string.format("net calls: first %d, rerun %d, replay %d; same texts: %s; local = served: %s", s1.net_llm_calls,
  s2.net_llm_calls, s3.net_llm_calls, tostring(ok), tostring(same_local)))
if not (ok and s1.net_llm_calls == 2 and s2.net_llm_calls == 0 and s3.net_llm_calls == 0) then os.exit(1) end
LUA
check "generate through repro serve, cached rerun and replay make zero network calls" "\"$REPRO\" exec $tmp/gen.lua $url $tmp $model"

cat >"$tmp/score.lua" <<'LUA'
-- label scoring (rater_labels=score): the local model answers a label step with its likeliest allowed label
local C = require("repro.safe")
local model, dir = arg[1], arg[2]
local sc = C.local_model(model, { ctx = 1024, score_labels = true })
local q = "What is the capital of France? Answer with one word."
local a = sc:complete(q, { choices = { "Paris", "Zzyzx qwv" } })
local b = sc:complete(q, { choices = { "Zzyzx qwv", "Paris" } })
assert(os.execute("mkdir -p '" .. dir .. "/docs'"))
local f = assert(io.open(dir .. "/docs/Paris.txt", "wb"))
f:write("Paris\n\nParis is the capital and most populous city of France.\n")
f:close()
C.bm25_build(dir .. "/bm25.db", dir .. "/docs")
local search = C.bm25(dir .. "/bm25.db")
local items = { { question = "Tell me about Paris.", response = "Paris is the capital of France. Paris is in Germany.",
                  facts = { "Paris is the capital of France.", "Paris is in Germany." } } }
local res = C.rate(sc, search, items, { n_queries = 1, max_retries = 1, max_tokens = 32, query_fallback = true })
local labelled = 0
for _, l in ipairs(res[1].labels) do
  if l == "supported" or l == "not_supported" or l == "irrelevant" then labelled = labelled + 1 end
end
print(string.format("label scoring: %s; '%s' / '%s' (order swapped); %d of %d facts labelled (%s)", sc:name(), a, b, labelled,
  #res[1].labels, table.concat(res[1].labels, ", ")))
sc:close()
if not (sc and a == "Paris" and b == "Paris" and labelled == 2 and res[1].unparsed == 0) then os.exit(1) end
LUA
check "label scoring answers with the likeliest allowed label; every rated fact gets a verdict" "\"$REPRO\" exec $tmp/score.lua $model $tmp"

kill -TERM "$pid"; wait "$pid"; rc=$?; pid=
check "SIGTERM stops the server (exit 0)" "[ $rc -eq 0 ] && grep -q stopping $tmp/err"
checks_done safe_test.sh
