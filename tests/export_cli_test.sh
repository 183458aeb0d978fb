#!/usr/bin/env bash
# export_cli_test.sh: `repro export` end to end.
#  - stories260K (llama2.c f32): exported in its base types, its greedy 200 tokens (repro generate) equal llama2.c's
#    published text; with --drop 1,3 the exported model's per-token log-probabilities equal the in-memory model's with
#    m:skip_layers{1,3}; a LoRA checkpoint saved by repro.train after 3 steps, merged by --adapter (F32), gives the
#    trainer's log-likelihood (rel 1e-4) where the base's differs; --json reports what was written; q4_k on rows of 64
#    falls back to q8_0 and says so.
#  - bad arguments: no model, no -o, an unknown type, a layer out of range, adapter options without --adapter, a
#    checkpoint of another rank, a missing file: each a clear message and its exit code (2, 2, 2, 2, 2, 3, 4).
#  - SmolLM2 (mirror) exported as q4_k and q6_k (ffn_down in the K-quant, the 576-wide rows in q8_0): repro generate
#    and, with the peer venv, llama.cpp load the file and continue a prompt with the same 4 greedy tokens. Ours runs
#    with REPRO_INT8_DOT=decode (activations rounded to int8 as llama.cpp rounds them). The 5th token is a near tie
#    ("The answer" / "The United") that the activation rounding and the thread count decide: we saw both answers from
#    our engine on the q4_k export (alone: United, as llama.cpp; under make test: answer), so the check stops before it.
. tests/cli_test_lib.sh   # REPRO (absolute), $tmp removed at exit
repro=$REPRO dir=$tmp fail=0
mirror=${REPRO_MIRROR:-/nonexistent}
stories=$mirror/stories260K/stories260K.bin smol=$mirror/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf
[ -f "$stories" ] || { echo "skip [mirror]: stories260K not in the mirror"; echo "ok export_cli_test"; exit 0; }
# check RC TEXT: report one check by the exit status of what ran just before
check() { if [ "$1" = 0 ]; then echo "ok: $2"; else echo "FAIL: $2"; fail=1; fi; }

"$repro" export "$stories" -o "$dir/base.gguf" >/dev/null
got=$("$repro" generate "$dir/base.gguf" --steps 200 --temperature 0 --quiet)
[ "$got" = "$(cat "$mirror/stories260K/greedy200.txt")" ]; check $? "exported stories260K: greedy 200 equals llama2.c's"

json=$("$repro" export "$stories" -o "$dir/drop.gguf" --drop 1,3 --json)
case "$json" in *'"layers": 3'*'"tensors": 29'*) check 0 "--drop 1,3 --json: $json";; *) check 1 "--drop --json said $json";; esac
out=$("$repro" export "$stories" -o "$dir/q4k.gguf" --type q4_k)
case "$out" in *"written as q8_0"*) check 0 "q4_k on rows of 64 falls back to q8_0 and says so";; *) check 1 "q4_k fallback not reported: $out";; esac

cat > "$dir/t.lua" <<'LUA'
local train, model = require("repro.train"), require("repro.model")
local src, dir = arg[1], arg[2]
local ids = { 1 }
for i = 2, 17 do ids[i] = (i * 37 + 5) % 512 end
local function score(m)
  local s, lp = 0, m:score(ids)
  for _, v in ipairs(lp) do s = s + v end
  return s, lp
end
-- dropped layers: the export against the in-memory model with the same layers skipped
local m = model.load(src)
m:skip_layers { 1, 3 }
local _, want = score(m)
local d = model.load(dir .. "/drop.gguf")
local _, got = score(d)
local worst = 0
for i = 1, #want do worst = math.max(worst, math.abs(want[i] - got[i])) end
print(string.format("--drop 1,3: per-token log-probabilities within %.2g of m:skip_layers{1,3} (tol 1e-4)", worst))
assert(#got == #want and worst < 1e-4, "dropped-layer export differs from skip_layers")
-- an adapter checkpoint
local tr = train.new { model = src, method = "lora", rank = 4, alpha = 8, batch = 2, seq_len = 16, seed = 3,
                       targets = "attn_q,attn_v,ffn_up", optimizer = { lr = 0.05 } }
local rows = { ids, {} }
for i = 1, 17 do rows[2][i] = (i * 53 + 11) % 512 end
for _ = 1, 3 do tr:step { tokens = rows } end
local _, lp = tr:eval { tokens = { ids } }
tr:save(dir .. "/lora.ckpt")
tr:close()
local f = io.open(dir .. "/trainer_lp.txt", "w")
f:write(string.format("%.9g\n%.9g\n", lp[1], (score(m:skip_layers {} or m))))
f:close()
LUA
"$repro" exec "$dir/t.lua" "$stories" "$dir"; check $? "--drop against skip_layers; a LoRA checkpoint saved"
if [ -f "$dir/lora.ckpt" ]; then
  "$repro" export "$stories" -o "$dir/merged.gguf" --type f32 --adapter "$dir/lora.ckpt" --rank 4 --alpha 8 --targets attn_q,attn_v,ffn_up >/dev/null
  check $? "--adapter merged"
  cat > "$dir/s.lua" <<'LUA'
local model = require("repro.model")
local ids = { 1 }
for i = 2, 17 do ids[i] = (i * 37 + 5) % 512 end
local f = io.open(arg[2] .. "/trainer_lp.txt")
local want, base = f:read("n"), f:read("n")
f:close()
local s = 0
for _, v in ipairs(model.load(arg[1]):score(ids)) do s = s + v end
print(string.format("--adapter: exported log-likelihood %.5f, trainer's %.5f (rel %.2g, tol 1e-4), base %.5f", s, want, math.abs(s - want) / math.abs(want), base))
assert(math.abs(base - want) > 0.1, "training did not move the log-likelihood: the check would be vacuous")
assert(math.abs(s - want) / math.abs(want) < 1e-4, "merged export differs from the trainer")
LUA
  "$repro" exec "$dir/s.lua" "$dir/merged.gguf" "$dir"; check $? "--adapter export gives the trainer's log-likelihood"
  "$repro" export "$stories" -o "$dir/x.gguf" --adapter "$dir/lora.ckpt" --rank 2 --targets attn_q,attn_v,ffn_up 2>"$dir/err"; rc=$?
  [ $rc = 3 ] && grep -q "rank 2" "$dir/err"; check $? "a checkpoint of another rank: exit 3 naming the rank ($(head -c 160 "$dir/err"))"
fi

bad() {  # bad WANT_RC WANT_TEXT ARGS...: a bad invocation exits WANT_RC with a message holding WANT_TEXT
  local want=$1 text=$2; shift 2
  "$repro" export "$@" >/dev/null 2>"$dir/err"; local rc=$?
  [ $rc = "$want" ] && grep -q -- "$text" "$dir/err"; check $? "bad arguments ($*): exit $rc, $(head -1 "$dir/err")"
}
bad 2 "name the model"
bad 2 "-o OUT" "$stories"
bad 2 "q5_k" "$stories" -o "$dir/x.gguf" --type q5_k
bad 2 "'7' is not a layer" "$stories" -o "$dir/x.gguf" --drop 1,7
bad 2 "describe an --adapter" "$stories" -o "$dir/x.gguf" --rank 4
bad 4 "no such file" "$dir/missing.gguf" -o "$dir/x.gguf"
[ ! -e "$dir/x.gguf" ] && [ ! -e "$dir/x.gguf.layers.tmp" ]; check $? "failed exports leave no file behind"

if [ ! -f "$smol" ]; then echo "skip [mirror]: SmolLM2 not in the mirror (K-quant export)"
else
  venv=${REPRO_PEER_VENV:-build/peer-venv}
  have_peer=0; "$venv/bin/python" -c "import llama_cpp" 2>/dev/null && have_peer=1
  prompt="The capital of France is"
  for t in q4_k q6_k; do
    "$repro" export "$smol" -o "$dir/smol_$t.gguf" --type $t --threads 2 >/dev/null; check $? "SmolLM2 exported as $t"
    ours=$(REPRO_INT8_DOT=decode "$repro" generate "$dir/smol_$t.gguf" --prompt "$prompt" --steps 4 --temperature 0 --quiet)
    [ -n "$ours" ]; check $? "repro generate loads the $t export: $(printf '%q' "$ours")"
    if [ $have_peer = 1 ]; then
      peer=$("$venv/bin/python" tests/llamacpp_greedy.py "$dir/smol_$t.gguf" "$prompt" 4 2>"$dir/peer.log")
      [ "$peer" = "30"$'\n'"$ours" ]; check $? "llama.cpp loads the $t export (30 layers) and continues it as we do: $(printf '%q' "$peer")"
    fi
  done
  [ $have_peer = 1 ] || echo "skip: llama-cpp-python not in $venv (make bench builds it): llama.cpp load of the K-quant exports not run"
fi
[ $fail = 0 ] && echo "ok export_cli_test" || { echo "not ok export_cli_test"; exit 1; }
