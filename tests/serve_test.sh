#!/usr/bin/env bash
# serve_test.sh: `repro serve` as OpenAI clients see it, with SmolLM2-135M-Instruct on loopback and small
# limits (--ctx 512 --max-tokens 16 --max-body 1048576 --max-conns 8): tests/serve_checks.py sends the bad
# values of issue 22 (each must be a 400 naming its field), checks chat, completions, streaming, logprobs and
# echo (against llama.cpp's scores), slow clients and a huge prompt. Skips when the model is not in the mirror.
set -u
REPRO=${REPRO:-bin/repro}
model=${REPRO_MIRROR:-}/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf
if [ -z "${REPRO_MIRROR:-}" ] || [ ! -f "$model" ]; then echo "skip: serve_test needs SmolLM2-135M-Instruct in REPRO_MIRROR"; exit 0; fi
command -v python3 >/dev/null || { echo "skip: serve_test needs python3"; exit 0; }
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
"$REPRO" serve "$model" --port 0 --ctx 512 --max-tokens 16 --max-body 1048576 --max-conns 8 >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 1 150); do grep -q listening "$tmp/out" 2>/dev/null && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
url=$(sed -n 's/^listening on //p' "$tmp/out")
[ -n "$url" ] || { echo "not ok serve_test.sh: the server did not start"; cat "$tmp/err" >&2; exit 1; }
REPRO_REFERENCE=${REPRO_REFERENCE:-$(dirname "$REPRO_MIRROR")/reference} python3 tests/serve_checks.py "$url"; rc=$?
kill -TERM "$pid"; wait "$pid"; src=$?; pid=
if [ $src -ne 0 ] || ! grep -q stopping "$tmp/err"; then echo "not ok serve_test.sh: SIGTERM did not stop the server cleanly (exit $src)"; rc=1; fi
exit $rc
