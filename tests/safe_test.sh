#!/usr/bin/env bash
# safe_test.sh: the HTTP path end to end with the project's own server: `repro serve` runs the local
# SmolLM2-135M model on loopback; the SAFE plugin's OpenAI-compatible backend generates through it into the
# cache; a rerun and a replay make zero network calls and give the same texts; the in-process backend gives
# the served text; malformed requests get
# OpenAI-shaped 4xx errors; SIGTERM stops the server cleanly. Skips when the model is not in the mirror.
set -u
REPRO=${REPRO:-bin/repro}
REPRO=$(cd "$(dirname "$REPRO")" && pwd)/$(basename "$REPRO")
model=${REPRO_MIRROR:-}/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf
if [ -z "${REPRO_MIRROR:-}" ] || [ ! -f "$model" ]; then echo "skip: SmolLM2-135M-Instruct not in REPRO_MIRROR"; exit 0; fi
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fails=0; checks=0
check() { checks=$((checks+1)); if ! eval "$2"; then fails=$((fails+1)); echo "FAIL: $1" >&2; fi; }

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

kill -TERM "$pid"; wait "$pid"; rc=$?; pid=
check "SIGTERM stops the server (exit 0)" "[ $rc -eq 0 ] && grep -q stopping $tmp/err"
echo "$( [ $fails -eq 0 ] && echo ok || echo not ok ) safe_test.sh: $checks checks, $fails failed"
[ $fails -eq 0 ]
