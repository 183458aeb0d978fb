#!/usr/bin/env bash
# gpu_check.sh (make gpu-check): the CUDA backend's whole check, prepared to run unattended on a machine with
# an NVIDIA GPU in under 5 minutes:
#   1. build with CUDA (nvcc, warnings as errors): the full build when its libraries are there, else the
#      engine alone (tensor, nn, model, util + CUDA kernels; needs only cblas) into build/gpu-engine;
#   2. tests/test_ops.c: every op of the table on cuda against the reference backend, plus the deeper GPU
#      cases (every weight dtype through both matmul paths, long-context decode attention, range errors);
#      tests/test_ops_backward.c: every backward op (rp_bwd_cuda) against rp_bwd_ref, also under
#      compute-sanitizer memcheck where it is installed; both with REPRO_CUDA_SYNC=1 (a fault names its op);
#   3. tests/test_cuda.c: a Llama model on the GPU vs the CPU: logits, per-token log-probabilities and 32
#      greedy tokens on staged sequences (tolerances printed);
#   4. bench/bench_cuda.c: pp512 and tg128 on the GPU against the CPU measured in the same run, the selective
#      scan against the bandwidth bound measured in the same run, and
#      tools/torch_llama_bench.py: PyTorch eager / transformers generate on the same GPU, same shapes;
#   5. experiments/gpu_check.lua run with --device cuda (full build only): greedy tokens, log-probabilities
#      and decode speed against the CPU, recorded in results/repro.db with the GPU in its provenance.
# The model: $REPRO_GPU_MODEL, else the mirror's SmolLM2-135M-Instruct Q4_1 ($REPRO_MIRROR or ../shared/data),
# else a random-weight GGUF of SmolLM2-135M's shapes (tools/gguf_random.py, q8_0) written to build/gpu-check.
# On the device tool: run(command="tools/gpu_check.sh", carry=[".gpu-deps"], timeout_s=540) after tools/gpu_deps.sh
# here; when $OUT is set, the logs (build/gpu-check, no model files) and results/repro.db are copied there.
# GPU_CHECK_ENGINE_ONLY=1 forces the engine-only build. Logs go to build/gpu-check/. Exit: 0 every check passed on a GPU; 1 a check failed; 2 the build failed;
# 3 no GPU here (built, nothing run on a GPU: the skips say why).
set -u
cd "$(dirname "$0")/.."
t_start=$SECONDS
out=build/gpu-check
mkdir -p "$out"
jobs=$(nproc 2>/dev/null || echo 2)
say() { printf '== gpu-check [%3ds] %s\n' $((SECONDS - t_start)) "$*"; }
: "${REPRO_MIRROR:=$( [ -d ../shared/data ] && cd ../shared/data && pwd )}"
export REPRO_MIRROR REPRO_NO_PROGRESS=1

say "machine: $(uname -n), $(nproc 2>/dev/null) cores; uptime:$(uptime | sed 's/.*load/ load/')"
if command -v nvidia-smi >/dev/null 2>&1; then
  say "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)"
else
  say "GPU: nvidia-smi not found"
fi
nvcc=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
if [ -z "$nvcc" ]; then say "FAIL: nvcc not found (install the CUDA toolkit or put it on PATH)"; exit 2; fi
say "nvcc: $("$nvcc" --version | tail -1)"

# 1. build. The libraries of the full build come from the system (pkg-config), else from .gpu-deps/ (the .deb
# files tools/gpu_deps.sh fetched on a CPU machine, carried along): unpacked into .gpu-deps/root, never into /,
# and linked with an rpath (DT_RPATH, so the libraries they load are found there too).
deps_pc="lua5.4 sqlite3 libcurl openblas zlib"
full_make=()
if [ -z "${GPU_CHECK_ENGINE_ONLY:-}" ] && ! pkg-config --exists $deps_pc 2>/dev/null && ls .gpu-deps/*.deb >/dev/null 2>&1; then
  root=$PWD/.gpu-deps/root L=$PWD/.gpu-deps/root/usr/lib/x86_64-linux-gnu
  rm -rf "$root"; mkdir -p "$root"
  for f in .gpu-deps/*.deb; do dpkg-deb -x "$f" "$root" || { say "FAIL: cannot unpack $f"; exit 2; }; done
  full_make=(PKG_CFLAGS="-I$root/usr/include -I$root/usr/include/lua5.4 -I$root/usr/include/x86_64-linux-gnu -I$root/usr/include/x86_64-linux-gnu/openblas-pthread"
             PKG_LIBS="-L$L -L$L/openblas-pthread -Wl,--disable-new-dtags -Wl,-rpath,$L -Wl,-rpath,$L/openblas-pthread -Wl,-rpath-link,$L -llua5.4 -lsqlite3 -lcurl -lopenblas -lz")
  export LD_LIBRARY_PATH="$L:$L/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  say "build: libraries from .gpu-deps ($(ls .gpu-deps/*.deb | wc -l) packages unpacked into $root)"
fi
if [ -z "${GPU_CHECK_ENGINE_ONLY:-}" ] && { [ ${#full_make[@]} -gt 0 ] || pkg-config --exists $deps_pc 2>/dev/null; }; then
  B=build/lua5.4
  say "build: make -j$jobs CUDA=1 (full build)"
  if ! make -j"$jobs" CUDA=1 NVCC="$nvcc" "${full_make[@]}" all "$B/bench/bench_cuda" >"$out/build.log" 2>&1; then
    tail -30 "$out/build.log"; say "FAIL: build (log: $out/build.log)"; exit 2
  fi
else
  B=build/gpu-engine
  say "build: engine only into $B (missing for the full build: $(for p in $deps_pc; do pkg-config --exists $p 2>/dev/null || printf '%s ' $p; done); no .gpu-deps/ either: run tools/gpu_deps.sh on a CPU machine and carry it)"
  cuda_home=$(dirname "$(dirname "$nvcc")")
  blas_inc=$(pkg-config --cflags openblas 2>/dev/null || echo -I/usr/include/openblas -I/usr/include/x86_64-linux-gnu/openblas-pthread)
  blas_lib=$(pkg-config --libs openblas 2>/dev/null || echo -lopenblas)
  rm -rf "$B"; mkdir -p "$B/obj" "$B/tests" "$B/bench"
  bg() { ( "$@" || touch "$B/FAILED" ) & [ "$(jobs -r | wc -l)" -lt "$jobs" ] || wait -n; }   # a compile, $jobs at a time
  objs=()
  for f in harness/tensor/cuda/*.cu; do
    o="$B/obj/$(basename "$f" .cu).cu.o"; objs+=("$o")
    bg "$nvcc" -std=c++17 -O2 -lineinfo -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90 \
      -Werror all-warnings -Xcompiler -Wall,-Wextra,-Werror,-Wno-unused-parameter -Iharness -I. -c "$f" -o "$o"
  done >"$out/build.log" 2>&1
  for f in harness/tensor/*.c harness/nn/*.c harness/model/*.c harness/util/*.c; do
    o="$B/obj/$(echo "$f" | tr / _).o"; objs+=("$o")
    # shellcheck disable=SC2086
    bg cc -std=gnu11 -O2 -march=native -fno-math-errno -Wall -Wextra -Werror -Wno-unused-parameter -pthread -Iharness -I. \
      $blas_inc -DRP_CUDA=1 -c "$f" -o "$o"
  done >>"$out/build.log" 2>&1
  wait
  libs="$blas_lib -lm -ldl -pthread -L$cuda_home/lib64 -Wl,-rpath,$cuda_home/lib64 -lcublas -lcudart -lstdc++"
  for t in tests/test_ops.c tests/test_ops_backward.c tests/test_cuda.c bench/bench_cuda.c; do
    [ -e "$B/FAILED" ] && break
    d=$([ "${t%%/*}" = bench ] && echo bench || echo tests)
    # shellcheck disable=SC2086
    cc -std=gnu11 -O2 -march=native -Wall -Wextra -Werror -Wno-unused-parameter -pthread -Iharness -I. $blas_inc \
      -DRP_CUDA=1 -o "$B/$d/$(basename "$t" .c)" "$t" "${objs[@]}" $libs >>"$out/build.log" 2>&1 || touch "$B/FAILED"
  done
  if [ -e "$B/FAILED" ]; then tail -30 "$out/build.log"; say "FAIL: engine build (log: $out/build.log)"; exit 2; fi
fi
say "build: ok"

# The model for the model-level checks and the benchmark.
if [ -z "${REPRO_GPU_MODEL:-}" ]; then
  m="${REPRO_MIRROR:-/nonexistent}/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
  if [ -f "$m" ]; then REPRO_GPU_MODEL=$m
  else
    REPRO_GPU_MODEL=$out/random-smollm2-135m-q8_0.gguf
    [ -f "$REPRO_GPU_MODEL" ] || python3 tools/gguf_random.py "$REPRO_GPU_MODEL" --dtype q8_0 || { say "FAIL: cannot write a random model"; exit 2; }
  fi
fi
export REPRO_GPU_MODEL
say "model: $REPRO_GPU_MODEL"

# 2-4. the checks (each with its own time limit so the whole stays under 5 minutes)
fails=0; skips=0
step() {   # step NAME LIMIT CMD...: run, log, count a failure or a [gpu] skip
  local name=$1 limit=$2; shift 2
  say "$name: $*"
  timeout "$limit" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  grep -E '^(skip|  op |  backward |  prompt|  model|ok|not ok|FAIL|=========|\||model |\{|repro: run)' "$out/$name.log" | head -80
  if grep -q '^skip \[gpu\]' "$out/$name.log"; then skips=$((skips + 1)); say "$name: SKIPPED on no GPU"
  elif [ $rc -ne 0 ]; then fails=$((fails + 1)); say "$name: FAIL (exit $rc$([ $rc = 124 ] && echo ', timed out'); log: $out/$name.log)"
  else say "$name: ok"; fi
}
export REPRO_CUDA_SYNC=1   # op tests: a kernel fault is reported against the op that made it
step op-tests 120 "$B/tests/test_ops"
step backward-tests 60 "$B/tests/test_ops_backward"
if command -v compute-sanitizer >/dev/null 2>&1; then   # out-of-bounds accesses and races that the numbers may hide
  step memcheck 90 compute-sanitizer --tool memcheck --error-exitcode 9 "$B/tests/test_ops_backward"
else
  say "memcheck: skipped (no compute-sanitizer on PATH)"
fi
unset REPRO_CUDA_SYNC
step model-check 90 "$B/tests/test_cuda"
step bench 90 "$B/bench/bench_cuda" --quick --json
step torch-peer 120 python3 tools/torch_llama_bench.py --reps 3
if grep -q '^skip \[gpu\]' "$out/op-tests.log"; then
  say "registry-run: skipped (no GPU: --device cuda would be refused)"
elif [ -x bin/repro ] && [ "$B" = build/lua5.4 ]; then   # the model check again as a run in the registry (results/repro.db)
  step registry-run 90 bin/repro run experiments/gpu_check.lua --preset demo --device cuda model="$REPRO_GPU_MODEL"
  if grep -q 'targets ([1-9][0-9]* outside tolerance)' "$out/registry-run.log"; then
    fails=$((fails + 1)); say "registry-run: FAIL (targets outside tolerance; bin/repro show for the run)"
  fi
else
  say "registry-run: skipped (the engine-only build has no bin/repro)"
fi

ours=$(grep '^{"model"' "$out/bench.log" 2>/dev/null | tail -1)
scan=$(grep '^{"scan_ms"' "$out/bench.log" 2>/dev/null | tail -1)
peer=$(grep '^{' "$out/torch-peer.log" 2>/dev/null | tail -1)
if [ -n "$ours" ]; then
  python3 - "$ours" "${peer:-{\}}" "${scan:-{\}}" <<'PY'
import json, sys
o, p, s = json.loads(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])
peer = "%s, %s" % (p["peer"], p["dtype"]) if p else "PyTorch peer: not measured"
print("model %s on %s" % (o["model"], o["gpu"]))
print("| figure | repro cuda | repro cpu (same run) | cuda / cpu | %s | repro / peer |" % peer)
print("|---|---:|---:|---:|---:|---:|")
for k, c in (("pp512", "cpu_pp"), ("tg128", "cpu_tg")):
    pk = "%.0f | %.2fx" % (p[k], o[k] / p[k]) if p else "- | -"
    print("| %s tok/s | %.0f | %.0f | %.1fx | %s |" % (k, o[k], o[c], o[k] / o[c], pk))
print("tg128 weight traffic on the GPU: %.0f GB/s" % o["tg_weight_gbps"])
if p.get("train_tok_s"):
    print("| train step tok/s (%s) | not on the GPU yet (the trainer runs on the host) | - | - | %.0f | - |"
          % (p.get("train_shape", "?"), p["train_tok_s"]))
if s:
    print("selective scan (d_inner 8192, d_state 16, 4096 steps): %.2f ms, %.0f%% of the bandwidth bound at %.0f GB/s "
          "(target 60%%)" % (s["scan_ms"], 100 * s["scan_fraction_of_bound"], s["bandwidth_gbps"]))
print("targets (issue 16): pp512 >= 1.5x PyTorch eager, tg128 >= 2x transformers generate (repro: fp32 activations "
      "on the file's weights; the peer: random weights of the same shapes)")
PY
fi
say "total $((SECONDS - t_start)) s: $fails failed, $skips skipped for want of a GPU (logs in $out/)"
if [ -n "${OUT:-}" ] && [ -d "$OUT" ]; then   # the device tool's return folder: logs and the registry come back
  tar czf "$OUT/gpu-check-logs.tar.gz" --exclude='*.gguf' -C build gpu-check 2>/dev/null
  [ -f results/repro.db ] && cp results/repro.db "$OUT/gpu-check-runs.db"   # fold in here with: bin/repro merge
  say "copied the logs$([ -f results/repro.db ] && echo ' and the registry') to $OUT"
fi
[ $fails -gt 0 ] && exit 1
[ $skips -gt 0 ] && exit 3
exit 0
