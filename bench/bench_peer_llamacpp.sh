#!/usr/bin/env bash
# bench_peer_llamacpp.sh [REPRO]: llama.cpp measured in the same run as the engine (perf.md, "A peer
# measured in the same run"). Installs llama-cpp-python==0.3.36 (its vendored llama.cpp built with
# -DGGML_NATIVE=ON, about 3 minutes on 2 cores) into a virtual environment under build/, times pp512 and
# tg128 on SmolLM2-135M-Instruct Q4_1 through its low-level C API (1 and 2 threads, medians of 3) and its
# batched decode (1/4/8/16 sequences, 2 threads), then runs bench_inference and bench_batch with those figures
# so they print ours / peer ratios. Skips (exit 0) when the model, Python
# or the package build is unavailable. REPRO_PEER_VENV overrides the venv folder; REPRO_PEER_BATCH=0 skips
# llama.cpp's batched decode (minutes on a loaded machine: its 2-thread spin barrier degrades badly there);
# REPRO_PEER_BATCH=only runs the batched part alone (llama.cpp's batched decode, then bench_batch), so that the
# batched table and its peer fit one short locked run.
set -u
repro=${1:-bin/repro}
case "$repro" in *luajit*) build=build/luajit lua=luajit ;; *) build=build/lua5.4 lua=lua5.4 ;; esac
# the bench programs link the library statically: rebuild them first, or a stale binary times old code
make -s LUA=$lua "$build/bench/bench_inference" "$build/bench/bench_batch" >/dev/null || { echo "bench_peer_llamacpp: building the bench programs failed" >&2; exit 1; }
mirror=${REPRO_MIRROR:-../shared/data}
model="$mirror/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
venv=${REPRO_PEER_VENV:-build/peer-venv}
[ -f "$model" ] || { echo "skip: $model not found"; exit 0; }
command -v python3 >/dev/null || { echo "skip: no python3"; exit 0; }
if ! "$venv/bin/python" -c "import llama_cpp" 2>/dev/null; then
  echo "installing llama-cpp-python==0.3.36 into $venv (builds llama.cpp; a few minutes)..."
  python3 -m venv "$venv" >/dev/null 2>&1 || { echo "skip: cannot create a venv"; exit 0; }
  if ! CMAKE_ARGS="-DGGML_NATIVE=ON" "$venv/bin/pip" install -q "llama-cpp-python==0.3.36" > "$venv/install.log" 2>&1; then
    echo "skip: llama-cpp-python did not install (see $venv/install.log)"; exit 0
  fi
fi
peer=$("$venv/bin/python" - "$model" "$(dirname "$0")/../tools" 2>"$venv/peer-run.log" <<'PY'
import sys, time, statistics, ctypes
sys.path.insert(0, sys.argv[2])
from llamacpp_load import load
L, model = load(sys.argv[1])
vocab = L.llama_n_vocab(L.llama_model_get_vocab(model)) if hasattr(L, "llama_model_get_vocab") else 49152
def ctx_for(threads):
    cp = L.llama_context_default_params()
    cp.n_ctx, cp.n_batch, cp.n_ubatch = 1024, 512, 512
    cp.n_threads = cp.n_threads_batch = threads
    return L.llama_init_from_model(model, cp)
def pp(threads):
    toks = (L.llama_token * 512)(*[(i * 7919 + 11) % vocab for i in range(512)])
    rates = []
    for _ in range(3):
        ctx = ctx_for(threads)
        t0 = time.perf_counter()
        if L.llama_decode(ctx, L.llama_batch_get_one(toks, 512)) != 0: sys.exit("decode failed")
        rates.append(512 / (time.perf_counter() - t0))
        L.llama_free(ctx)
    return statistics.median(rates)
def tg(threads):
    rates = []
    for _ in range(3):
        ctx = ctx_for(threads)
        tok = (L.llama_token * 1)(1)
        t0 = time.perf_counter()
        for i in range(128):
            if L.llama_decode(ctx, L.llama_batch_get_one(tok, 1)) != 0: sys.exit("decode failed")
            tok[0] = (i * 31 + 7) % vocab
        rates.append(128 / (time.perf_counter() - t0))
        L.llama_free(ctx)
    return statistics.median(rates)
model_plain = model   # batched decoding uses the same plain-kernel model
def batched(B, threads=2, gen=64):
    # B sequences of an 8-token prompt each, decoded together: one llama_decode per step with B tokens
    # (one per sequence id), all logits kept; aggregate generated tokens/s over the whole run, prompts included
    # (bench_batch.c's protocol)
    rates = []
    for _ in range(3):
        cp = L.llama_context_default_params()
        cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.n_seq_max = 128 * B, 512, 512, B
        cp.n_threads = cp.n_threads_batch = threads
        ctx = L.llama_init_from_model(model_plain, cp)
        batch = L.llama_batch_init(max(8 * B, B), 0, 1)
        t0 = time.perf_counter()
        n = 0
        for i in range(B):
            for k in range(8):
                batch.token[n] = (i * 131 + k * 7919 + 11) % vocab; batch.pos[n] = k
                batch.n_seq_id[n] = 1; batch.seq_id[n][0] = i; batch.logits[n] = k == 7; n += 1
        batch.n_tokens = n
        if L.llama_decode(ctx, batch) != 0: sys.exit("batched prefill failed")
        for step in range(gen):
            for i in range(B):
                batch.token[i] = (step * 31 + i * 7 + 5) % vocab; batch.pos[i] = 8 + step
                batch.n_seq_id[i] = 1; batch.seq_id[i][0] = i; batch.logits[i] = 1
            batch.n_tokens = B
            if L.llama_decode(ctx, batch) != 0: sys.exit("batched decode failed")
        rates.append(B * gen / (time.perf_counter() - t0))
        L.llama_batch_free(batch)
        L.llama_free(ctx)
    return statistics.median(rates)
import os
mode = os.environ.get("REPRO_PEER_BATCH", "1")
nb = [batched(b) for b in (1, 4, 8, 16)] if mode != "0" else [0, 0, 0, 0]
single = (pp(1), pp(2), tg(1), tg(2)) if mode != "only" else (0, 0, 0, 0)
print("%.1f %.1f %.1f %.1f %.1f %.1f %.1f %.1f" % (single + tuple(nb)))
PY
) || { echo "skip: the peer run failed (see $venv/peer-run.log)"; exit 0; }
set -- $peer
if [ "${REPRO_PEER_BATCH:-1}" = only ]; then
  echo "llama.cpp batched decode (2 threads, 8-token prompts + 64 tokens per sequence): $5 / $6 / $7 / $8 tok/s at 1 / 4 / 8 / 16 sequences"
  [ -x "$build/bench/bench_batch" ] || { echo "skip: $build/bench/bench_batch not built"; exit 0; }
  exec "$build/bench/bench_batch" --peer "$5" "$6" "$7" "$8"
fi
echo "llama.cpp (llama-cpp-python 0.3.36, plain CPU kernels (AMX repacking off), this machine, now): pp512 $1 / $2 tok/s, tg128 $3 / $4 tok/s (1 / 2 threads)"
[ -x "$build/bench/bench_inference" ] || { echo "skip: $build/bench/bench_inference not built"; exit 0; }
echo "-- repro, default exact decoding (activations kept at f32 precision):"
"$build/bench/bench_inference" --peer "$1" "$2" "$3" "$4"
echo "-- repro, REPRO_INT8_DOT=decode (int8 activations in decoding: llama.cpp's own method for this file):"
REPRO_INT8_DOT=decode "$build/bench/bench_inference" --peer "$1" "$2" "$3" "$4"
[ "${REPRO_PEER_BATCH:-1}" = 0 ] || echo "llama.cpp batched decode (2 threads, 8-token prompts + 64 tokens per sequence): $5 / $6 / $7 / $8 tok/s at 1 / 4 / 8 / 16 sequences"
if [ "${REPRO_PEER_BATCH:-1}" = 0 ]; then [ -x "$build/bench/bench_batch" ] && "$build/bench/bench_batch"
else [ -x "$build/bench/bench_batch" ] && "$build/bench/bench_batch" --peer "$5" "$6" "$7" "$8"; fi
