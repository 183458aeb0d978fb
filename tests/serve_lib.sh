# serve_lib.sh: sourced by the tests/serve_*_test.sh scripts: the model check (skip when it is not in the
# mirror) and `serve_start ARGS...`, which starts `repro serve MODEL --port 0 ARGS...` in the background and
# polls its stdout for the "listening on" line (no fixed sleeps), setting $pid, $url and $tmp (removed, and
# the server killed, on exit). Exits 1 with the server's stderr when it does not start.
REPRO=${REPRO:-bin/repro}
model=${REPRO_MIRROR:-}/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf
serve_name=$(basename "$0")
if [ -z "${REPRO_MIRROR:-}" ] || [ ! -f "$model" ]; then echo "skip [mirror]: ${serve_name%.sh} needs SmolLM2-135M-Instruct in REPRO_MIRROR"; exit 0; fi
command -v python3 >/dev/null || { echo "skip: ${serve_name%.sh} needs python3"; exit 0; }
tmp=$(mktemp -d)
pid=
serve_cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap serve_cleanup EXIT

serve_start() {
  "$REPRO" serve "$model" --port 0 "$@" >"$tmp/out" 2>"$tmp/err" &
  pid=$!
  for _ in $(seq 1 300); do grep -q listening "$tmp/out" 2>/dev/null && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  url=$(sed -n 's/^listening on //p' "$tmp/out")
  [ -n "$url" ] || { echo "not ok $serve_name: the server did not start"; cat "$tmp/err" >&2; exit 1; }
}
