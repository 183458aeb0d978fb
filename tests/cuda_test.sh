#!/usr/bin/env bash
# cuda_test.sh: choosing the CUDA backend from the command line and from Lua. `--device` takes cpu, ref or
# cuda (anything else: exit 2 naming the valid ones). Without a GPU (or in a build without CUDA),
# `repro generate --device cuda` and model.load(..., {backend = "cuda"}) fail with a message naming cuda and
# the reason, never falling back to the CPU, and the GPU checks are counted as skipped; with a GPU, greedy
# text from the tiny mirror model is the same on cuda as on the CPU. `repro run`, `repro eval` and `repro serve`
# with --device cuda refuse before recording or serving anything when there is no GPU.
set -u
. "$(dirname "$0")/cli_test_lib.sh"
model=${REPRO_MIRROR:-/nonexistent}/gguf-tiny-random-llama/llama-2-tiny-random.gguf
[ -f "$model" ] || model=/nonexistent/model.gguf

"$REPRO" generate "$model" --device tpu --steps 1 >/dev/null 2>"$tmp/err"; rc=$?
check "--device tpu: exit 2 naming the valid devices (rc $rc: $(cat "$tmp/err"))" "[ $rc = 2 ] && grep -q 'cpu, ref or cuda' '$tmp/err'"
"$REPRO" generate --help | grep -q -- '--device' ; rc=$?
check "generate --help lists --device" "[ $rc = 0 ]"
for cmd in eval serve; do
  "$REPRO" $cmd --help | grep -q -- '--device cpu|ref|cuda' ; rc=$?
  check "$cmd --help lists --device" "[ $rc = 0 ]"
done

cat >"$tmp/load.lua" <<LUA
local model = require("repro.model")
local ok, err = pcall(model.load, "$model", { backend = "cuda" })
if ok then print("loaded on " .. err:info().backend) else print("refused: " .. tostring(err)) end
LUA
lua_out=$("$REPRO" exec "$tmp/load.lua" 2>&1)
if grep -q '^loaded on cuda' <<<"$lua_out"; then gpu=1
elif [ ! -f "$model" ] && ! grep -q cuda <<<"$lua_out"; then gpu=1   # the backend opened; the model is what is missing
else
  gpu=0
  check "model.load on cuda without a GPU: refused naming cuda (got: $lua_out)" "grep -q '^refused: .*cuda' <<<\"\$lua_out\""
fi

if [ $gpu = 0 ]; then
  "$REPRO" generate "$model" --device cuda --steps 4 --temperature 0 >"$tmp/out" 2>"$tmp/err"; rc=$?
  check "generate --device cuda without a GPU: non-zero exit, the reason on stderr, nothing generated (rc $rc: $(cat "$tmp/err"))" \
        "[ $rc != 0 ] && grep -q 'device cuda: .*cuda' '$tmp/err' && [ ! -s '$tmp/out' ]"
  echo "skip [gpu]: generate on the GPU: $(head -1 "$tmp/err")"
  "$REPRO" run experiments/example.lua --preset smoke --device cuda >/dev/null 2>"$tmp/err"; rc=$?
  check "run --device cuda without a GPU: exit 2 before anything is recorded (rc $rc: $(cat "$tmp/err"))" \
        "[ $rc = 2 ] && grep -q 'device cuda: .*cuda' '$tmp/err' && { [ ! -f '$REPRO_DB' ] || [ \"\$(q 'select count(*) from runs')\" = 0 ]; }"
  "$REPRO" eval "$model" arc-easy --device cuda >/dev/null 2>"$tmp/err"; rc=$?
  check "eval --device cuda without a GPU: exit 2 before anything is recorded (rc $rc: $(cat "$tmp/err"))" \
        "[ $rc = 2 ] && grep -q 'eval: --device cuda: .*cuda' '$tmp/err' && { [ ! -f '$REPRO_DB' ] || [ \"\$(q 'select count(*) from runs')\" = 0 ]; }"
  "$REPRO" serve "$model" --port 0 --device cuda >"$tmp/out" 2>"$tmp/err"; rc=$?
  check "serve --device cuda without a GPU: exit 2, nothing served (rc $rc: $(cat "$tmp/err"))" \
        "[ $rc = 2 ] && grep -q 'serve: --device cuda: .*cuda' '$tmp/err' && ! grep -q listening '$tmp/out'"
elif [ -f "$model" ]; then
  a=$("$REPRO" generate "$model" --device cuda --prompt "Once upon a time" --steps 24 --temperature 0 2>/dev/null)
  b=$("$REPRO" generate "$model" --device cpu --prompt "Once upon a time" --steps 24 --temperature 0 2>/dev/null)
  check "greedy text on cuda equals the CPU's (cuda: '$a', cpu: '$b')" "[ -n \"\$a\" ] && [ \"\$a\" = \"\$b\" ]"
else
  echo "skip [mirror]: cuda_test needs gguf-tiny-random-llama in REPRO_MIRROR for the GPU text check"
fi
echo "$([ $fails = 0 ] && echo ok || echo 'not ok') cuda_test: $checks checks, $fails failed"
[ $fails = 0 ]
