#!/usr/bin/env bash
# serve_test.sh: `repro serve` as OpenAI clients see it, with SmolLM2-135M-Instruct on loopback and small
# limits (--ctx 512 --max-tokens 16 --max-body 1048576 --max-conns 8): tests/serve_checks.py sends the bad
# values of issue 22 (each must be a 400 naming its field), checks chat, completions, streaming, logprobs and
# echo (against llama.cpp's scores), slow clients and a huge prompt. Skips when the model is not in the mirror.
set -u
. tests/serve_lib.sh
serve_start --ctx 512 --max-tokens 16 --max-body 1048576 --max-conns 8
REPRO_REFERENCE=${REPRO_REFERENCE:-$(dirname "$REPRO_MIRROR")/reference} python3 tests/serve_checks.py "$url"; rc=$?
kill -TERM "$pid"; wait "$pid"; src=$?; pid=
if [ $src -ne 0 ] || ! grep -q stopping "$tmp/err"; then echo "not ok serve_test.sh: SIGTERM did not stop the server cleanly (exit $src)"; rc=1; fi
exit $rc
