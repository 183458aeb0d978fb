#!/usr/bin/env bash
# prune_export_test.sh: a pruned SmolLM2 exported as GGUF (layers 20 and 21 dropped) loads back in
# `repro generate`, and, when llama-cpp-python is in the peer venv that `make bench` builds
# (bench/bench_peer_llamacpp.sh; REPRO_PEER_VENV overrides the folder), llama.cpp loads it with 28 layers and
# its greedy continuation equals ours. Installing llama-cpp-python compiles llama.cpp for minutes, too long
# for `make test`, so without that venv this check counts as a skip. Skips without the mirror.
set -u
repro=${REPRO:-bin/repro}
model=${REPRO_MIRROR:-/nonexistent}/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf
[ -f "$model" ] || { echo "skip [mirror]: SmolLM2 not in the mirror"; echo "ok prune_export_test"; exit 0; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail=0
cat > "$dir/export.lua" <<'LUA'
require("repro.prune").export(arg[1], arg[2], { 20, 21 })
LUA
"$repro" exec "$dir/export.lua" "$model" "$dir/pruned.gguf" || { echo "FAIL: export"; exit 1; }
prompt="The capital of France is"
ours=$("$repro" generate "$dir/pruned.gguf" --prompt "$prompt" --steps 8 --temperature 0 --quiet) || { echo "FAIL: repro generate on the pruned file"; exit 1; }
[ -n "$ours" ] || { echo "FAIL: repro generate printed nothing"; fail=1; }
echo "repro generate (28 layers): $(printf '%q' "$ours")"

venv=${REPRO_PEER_VENV:-build/peer-venv}
if ! "$venv/bin/python" -c "import llama_cpp" 2>/dev/null; then
  echo "skip: llama-cpp-python not in $venv (make bench builds it): llama.cpp load check not run"
else
  # llama.cpp's own greedy loop (tests/llamacpp_greedy.py)
  peer=$("$venv/bin/python" tests/llamacpp_greedy.py "$dir/pruned.gguf" "$prompt" 8 2>"$dir/peer.log") || { echo "FAIL: llama.cpp did not load or run the pruned file (see below)"; tail -5 "$dir/peer.log"; exit 1; }
  layers=${peer%%$'\n'*}; text=${peer#*$'\n'}
  [ "$layers" = 28 ] || { echo "FAIL: llama.cpp reads block_count $layers, want 28"; fail=1; }
  if [ "$text" != "$ours" ]; then echo "FAIL: llama.cpp continues $(printf '%q' "$text"), we continue $(printf '%q' "$ours")"; fail=1
  else echo "llama.cpp loads the pruned file (28 layers), same greedy continuation"; fi
fi
[ $fail = 0 ] && echo "ok prune_export_test" || { echo "not ok prune_export_test"; exit 1; }
