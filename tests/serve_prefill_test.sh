#!/usr/bin/env bash
# serve_prefill_test.sh: `repro serve` with long prompts among streaming clients (SmolLM2-135M-Instruct on
# loopback, --ctx 2048 --slots 5 --prefill-chunk 32): tests/serve_prefill_checks.py checks that slot caches are
# sized to their request and freed after it (VmRSS, /health kv_mb), that a 400-token prompt is prefilled in
# chunks while 3 streams keep receiving text (timestamps of their SSE pieces), and that every answer equals
# the same request served alone. Also: --prefill-chunk out of range is exit 2. Skips without the model.
set -u
. tests/serve_lib.sh
rc=0
"$REPRO" serve "$model" --prefill-chunk -3 >/dev/null 2>"$tmp/bad"; brc=$?
if [ $brc -ne 2 ] || ! grep -q "prefill-chunk -3" "$tmp/bad"; then echo "not ok serve_prefill_test.sh: --prefill-chunk -3 gave exit $brc"; cat "$tmp/bad" >&2; rc=1; fi
serve_start --ctx 2048 --slots 5 --queue 4 --prefill-chunk 32
python3 tests/serve_prefill_checks.py "$url" "$pid" || rc=1
kill -TERM "$pid"
wait "$pid"; src=$?; pid=
[ $src -eq 0 ] || { echo "not ok serve_prefill_test.sh: the server exited $src on SIGTERM"; cat "$tmp/err" >&2; rc=1; }
exit $rc
