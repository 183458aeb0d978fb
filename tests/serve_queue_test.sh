#!/usr/bin/env bash
# serve_queue_test.sh: `repro serve` with concurrent clients (SmolLM2-135M-Instruct on loopback, --ctx 512
# --slots 4 --queue 2): tests/serve_queue_checks.py checks that concurrent seeded requests give the same
# answers as one at a time, that a full queue answers 429 (OpenAI error object, Retry-After), that clients
# hanging up free their slots, and that SIGTERM answers the waiting with 503; then the server must exit 0.
# Skips when the model is not in the mirror.
set -u
. tests/serve_lib.sh
serve_start --ctx 512 --slots 4 --queue 2
python3 tests/serve_queue_checks.py "$url" "$pid"; rc=$?
# the checks end by sending SIGTERM; when they failed before that, stop the server here
for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && { echo "not ok serve_queue_test.sh: the server was still running after the checks"; kill -TERM "$pid"; rc=1; }
wait "$pid"; src=$?; pid=
if [ $src -ne 0 ] || ! grep -q stopping "$tmp/err"; then echo "not ok serve_queue_test.sh: the server did not stop cleanly on SIGTERM (exit $src)"; cat "$tmp/err" >&2; rc=1; fi
exit $rc
