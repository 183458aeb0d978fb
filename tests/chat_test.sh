#!/usr/bin/env bash
# chat_test.sh: SmolLM2-135M-Instruct through the quick-look commands. `repro chat` answers a factual
# question coherently (greedy, exact decoding: "Paris"; llama.cpp's Q4_1 path answers this one with
# unrelated French words, and so does REPRO_INT8_DOT=decode), and `repro generate` writes only the text to
# stdout. Skips without the model in the mirror.
set -u
REPRO=${REPRO:-bin/repro}
model=${REPRO_MIRROR:-}/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf
[ -f "$model" ] || { echo "skip [mirror]: chat_test needs SmolLM2 in REPRO_MIRROR"; exit 0; }
fails=0; checks=0
check() { checks=$((checks+1)); if ! eval "$2"; then fails=$((fails+1)); echo "FAIL: $1" >&2; fi; }
out=$(printf 'What is the capital of France?\n' | "$REPRO" chat smollm2-135m-instruct --temperature 0 --max-tokens 24 2>/dev/null)
check "chat answers Paris (got: $out)" "grep -q Paris <<<\"\$out\""
gen=$("$REPRO" generate smollm2-135m-instruct --prompt "The capital of France is" --steps 8 --temperature 0 2>/dev/null)
check "generate: the continuation only on stdout (got: $gen)" "[ -n \"\$gen\" ] && ! grep -q 'tok/s' <<<\"\$gen\" && grep -q Paris <<<\"\$gen\""
"$REPRO" generate /nonexistent.gguf --steps 1 >/dev/null 2>&1; rc=$?
check "generate: missing model exits non-zero" "[ $rc -ne 0 ]"
echo "$([ $fails = 0 ] && echo ok || echo 'not ok') chat_test: $checks checks, $fails failed"
[ $fails = 0 ]
