#!/usr/bin/env bash
# bench_sdpo.sh REPRO: DPO training throughput on SmolLM2-135M-Instruct with LoRA (pairs per CPU-second),
# as a ratio to cross-entropy steps on the same rows measured in the same run, and the share of an epoch
# spent on reference log-probabilities before and after caching (bench/sdpo.lua). CPU times are process
# CPU seconds (2 threads); the machine's load is printed beside them.
set -u
REPRO=${1:-bin/repro}
if [ -z "${REPRO_MIRROR:-}" ] || [ ! -f "$REPRO_MIRROR/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then
  echo "sdpo  skipped: SmolLM2 not in the mirror"; exit 0
fi
echo "sdpo  load: $(uptime | sed 's/.*load average: //')"
"$REPRO" exec bench/sdpo.lua "${SDPO_BENCH_PAIRS:-8}" "${SDPO_BENCH_T:-128}"
