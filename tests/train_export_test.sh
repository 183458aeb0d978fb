#!/usr/bin/env bash
# train_export_test.sh: trainer:export_gguf from Lua, checked through the CLI and, when present, llama.cpp.
#  - stories260K (llama2.c f32 + tok512.bin): the untrained model exported in its base type is one
#    self-contained GGUF (tokenizer keys written from tok512.bin) whose `repro generate` greedy 200 tokens from
#    BOS equal llama2.c's published output (greedy200.txt); after 3 LoRA steps the F32 export's per-sequence
#    log-likelihood (m:score) equals the trainer's (tr:eval) within 1e-4 relative, F16 within 1e-2; bad options
#    are errors naming the key or value; a from-scratch trainer exports with the tokenizer .bin it is given.
#  - SmolLM2 Q4_1 (skipped without the mirror): the untrained model exported in its base types (Q4_1 / Q8_0
#    re-quantized) continues a prompt in `repro generate` exactly as the original file does, and, when
#    llama-cpp-python is in the peer venv (REPRO_PEER_VENV, default build/peer-venv, made by make bench),
#    llama.cpp loads the exported file and continues as it does from the original (counted skip otherwise; with
#    the venv, llama.cpp also loads the stories260K exports, untrained and trained, and continues as we do).
set -u
repro=${REPRO:-bin/repro}
mirror=${REPRO_MIRROR:-/nonexistent}
stories=$mirror/stories260K/stories260K.bin
smol=$mirror/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf
[ -f "$stories" ] || { echo "skip [mirror]: stories260K not in the mirror"; echo "ok train_export_test"; exit 0; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail=0

cat > "$dir/stories.lua" <<'LUA'
local train, model = require("repro.train"), require("repro.model")
local src, dir = arg[1], arg[2]
local tr = train.new { model = src, method = "lora", rank = 4, alpha = 8, batch = 2, seq_len = 16, seed = 3,
                       targets = "attn_q,attn_k,attn_v,attn_output,ffn_gate,ffn_up,ffn_down", optimizer = { lr = 0.05 } }
tr:export_gguf(dir .. "/untrained.gguf")
local function expect_error(fn, want)
  local ok, err = pcall(fn)
  assert(not ok and tostring(err):find(want, 1, true), "want an error naming " .. want .. ", got " .. tostring(err))
end
expect_error(function() tr:export_gguf(dir .. "/x.gguf", { type = "q5_0" }) end, "q5_0")
expect_error(function() tr:export_gguf(dir .. "/x.gguf", { typo = "f16" }) end, "typo")
expect_error(function() tr:export_gguf(dir .. "/no/such/dir/x.gguf") end, "no/such/dir")
local ids = { 1 }
for i = 2, 17 do ids[i] = (i * 37 + 5) % 512 end
local rows = { ids, {} }
for i = 1, 17 do rows[2][i] = (i * 53 + 11) % 512 end
for _ = 1, 3 do tr:step { tokens = rows } end
local _, lp = tr:eval { tokens = { ids } }
tr:export_gguf(dir .. "/lora_f32.gguf", { type = "f32" })
tr:export_gguf(dir .. "/lora_f16.gguf", { type = "f16" })
local function score(path)
  local m = model.load(path)
  local s = 0
  for _, v in ipairs(m:score(ids)) do s = s + v end
  m:close()
  return s
end
local base, e32, e16 = score(src), score(dir .. "/lora_f32.gguf"), score(dir .. "/lora_f16.gguf")
local r32, r16 = math.abs(e32 - lp[1]) / math.abs(lp[1]), math.abs(e16 - lp[1]) / math.abs(lp[1])
print(string.format("stories260K LoRA: trainer log-likelihood %.5f (base %.5f); F32 export %.5f (rel %.2g, tol 1e-4), F16 %.5f (rel %.2g, tol 1e-2)",
                    lp[1], base, e32, r32, e16, r16))
assert(math.abs(base - lp[1]) > 0.1, "training did not move the log-likelihood: the check would be vacuous")
assert(r32 < 1e-4 and r16 < 1e-2, "exported log-likelihood off")
tr:close()
-- from scratch: llama metadata from the config, the tokenizer from the .bin named
local tok = src:gsub("[^/]*$", "") .. "tok512.bin"
local sc = train.new { config = { n_layer = 1, dim = 32, n_head = 4, ffn_dim = 64, vocab = 512 }, batch = 1, seq_len = 8, seed = 1 }
sc:export_gguf(dir .. "/scratch.gguf", { type = "f16", tokenizer = tok })
local sm = model.load(dir .. "/scratch.gguf")
assert(sm:info().n_layer == 1 and sm:info().dim == 32, "from-scratch export: wrong shape")
assert(table.concat(sm:tokenize("Once upon a time")) == table.concat(model.load(src):tokenize("Once upon a time")), "from-scratch export: tokenizer")
LUA
"$repro" exec "$dir/stories.lua" "$stories" "$dir" || { echo "FAIL: stories260K export through repro.train"; fail=1; }
if [ -f "$dir/untrained.gguf" ]; then
  got=$("$repro" generate "$dir/untrained.gguf" --steps 200 --temperature 0 --quiet)
  if [ "$got" = "$(cat "$mirror/stories260K/greedy200.txt")" ]; then echo "exported stories260K (GGUF with its tokenizer): greedy 200 equals llama2.c's"
  else echo "FAIL: exported stories260K's greedy text differs from greedy200.txt: $(printf '%q' "${got:0:120}")"; fail=1; fi
fi

venv=${REPRO_PEER_VENV:-build/peer-venv}
have_peer=0; "$venv/bin/python" -c "import llama_cpp" 2>/dev/null && have_peer=1
if [ $have_peer = 1 ]; then   # llama.cpp reads the tokenizer keys written from tok512.bin, and the trained weights
  for f in untrained lora_f32; do
    ours=$("$repro" generate "$dir/$f.gguf" --prompt "Once upon a time" --steps 30 --temperature 0 --quiet)
    peer=$("$venv/bin/python" tests/llamacpp_greedy.py "$dir/$f.gguf" "Once upon a time" 30 2>"$dir/peer.log") || { echo "FAIL: llama.cpp did not load $f.gguf"; tail -5 "$dir/peer.log"; fail=1; }
    if [ "$peer" = "5"$'\n'"$ours" ]; then echo "llama.cpp loads the stories260K export $f.gguf (5 layers, its tokenizer): same greedy 30 tokens"
    else echo "FAIL: llama.cpp continues $f.gguf with $(printf '%q' "$peer"), we with $(printf '%q' "$ours")"; fail=1; fi
  done
fi

if [ ! -f "$smol" ]; then
  echo "skip [mirror]: SmolLM2 not in the mirror (quantized-base export)"
else
  cat > "$dir/smol.lua" <<'LUA'
require("repro.train").new { model = arg[1], method = "lora", rank = 2, batch = 1, seq_len = 8 }:export_gguf(arg[2])
LUA
  "$repro" exec "$dir/smol.lua" "$smol" "$dir/smol.gguf" || { echo "FAIL: SmolLM2 export"; fail=1; }
  prompt="The capital of France is"
  want=$("$repro" generate "$smol" --prompt "$prompt" --steps 8 --temperature 0 --quiet)
  ours=$("$repro" generate "$dir/smol.gguf" --prompt "$prompt" --steps 8 --temperature 0 --quiet) || { echo "FAIL: repro generate on the export"; fail=1; }
  if [ -n "$ours" ] && [ "$ours" = "$want" ]; then echo "SmolLM2 exported in its base types: same greedy continuation $(printf '%q' "$ours")"
  else echo "FAIL: SmolLM2 export continues $(printf '%q' "$ours"), the original $(printf '%q' "$want")"; fail=1; fi
  if [ $have_peer = 0 ]; then
    echo "skip: llama-cpp-python not in $venv (make bench builds it): llama.cpp load check not run"
  else
    # llama.cpp against itself on the original file: its Q4_1 path (activations quantized to 8 bits) and ours
    # part ways at the 4th token of this prompt on the original file already, so that is not the export's doing
    peer=$("$venv/bin/python" tests/llamacpp_greedy.py "$dir/smol.gguf" "$prompt" 8 2>"$dir/peer.log") || { echo "FAIL: llama.cpp did not load the export"; tail -5 "$dir/peer.log"; fail=1; }
    orig=$("$venv/bin/python" tests/llamacpp_greedy.py "$smol" "$prompt" 8 2>>"$dir/peer.log")
    if [ -n "$peer" ] && [ "$peer" = "$orig" ]; then echo "llama.cpp loads the exported SmolLM2 (30 layers): same greedy continuation as from the original, $(printf '%q' "${peer#*$'\n'}")"
    else echo "FAIL: llama.cpp continues the export with $(printf '%q' "$peer"), the original with $(printf '%q' "$orig")"; fail=1; fi
  fi
fi
[ $fail = 0 ] && echo "ok train_export_test" || { echo "not ok train_export_test"; exit 1; }
