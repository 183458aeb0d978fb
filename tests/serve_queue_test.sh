#!/usr/bin/env bash
# serve_queue_test.sh: `repro serve` with concurrent clients (SmolLM2-135M-Instruct on loopback, --ctx 512
# --slots 4 --queue 2): tests/serve_queue_checks.py checks that concurrent seeded requests give the same
# answers as one at a time, that a full queue answers 429 (OpenAI error object, Retry-After), that clients
# hanging up free their slots, and that SIGTERM answers the waiting with 503; then the server must exit 0.
# Skips when the model is not in the mirror.
set -u
REPRO=${REPRO:-bin/repro}
model=${REPRO_MIRROR:-}/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf
if [ -z "${REPRO_MIRROR:-}" ] || [ ! -f "$model" ]; then echo "skip [mirror]: serve_queue_test needs SmolLM2-135M-Instruct in REPRO_MIRROR"; exit 0; fi
command -v python3 >/dev/null || { echo "skip: serve_queue_test needs python3"; exit 0; }
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
"$REPRO" serve "$model" --port 0 --ctx 512 --slots 4 --queue 2 >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 1 300); do grep -q listening "$tmp/out" 2>/dev/null && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
url=$(sed -n 's/^listening on //p' "$tmp/out")
[ -n "$url" ] || { echo "not ok serve_queue_test.sh: the server did not start"; cat "$tmp/err" >&2; exit 1; }
python3 tests/serve_queue_checks.py "$url" "$pid"; rc=$?
# the checks end by sending SIGTERM; when they failed before that, stop the server here
for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && { echo "not ok serve_queue_test.sh: the server was still running after the checks"; kill -TERM "$pid"; rc=1; }
wait "$pid"; src=$?; pid=
if [ $src -ne 0 ] || ! grep -q stopping "$tmp/err"; then echo "not ok serve_queue_test.sh: the server did not stop cleanly on SIGTERM (exit $src)"; cat "$tmp/err" >&2; rc=1; fi
exit $rc
